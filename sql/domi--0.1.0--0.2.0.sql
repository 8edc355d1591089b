-- domi 0.1.0 -> 0.2.0
\echo Use "ALTER EXTENSION domi UPDATE TO '0.2.0'" to load this file. \quit

-- 0.2.0 adds the keyring, the tenant lookup, the migration-lineage checker
-- and the drop guard, and makes the RLS guard work without preloading.  A
-- fresh CREATE EXTENSION runs domi--0.1.0.sql and then this script
-- (PostgreSQL follows the update chain when no domi--0.2.0.sql exists), so
-- a new install and an upgraded one are the same by construction.  Each
-- feature has its own section below.

--------------------------------------------------------------------------
-- Row-level security guard (fix)
--------------------------------------------------------------------------

-- In 0.1.0 the guard read domi.rls_guard before anything had loaded domi's
-- library, so without shared_preload_libraries the first CREATE TABLE of a
-- session failed with "unrecognized configuration parameter".  Calling one
-- of domi's C functions loads the library and defines its settings (a value
-- set earlier in the session is kept and checked then).  The rest of the
-- function is unchanged.
CREATE OR REPLACE FUNCTION domi._rls_guard() RETURNS event_trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	mode text;
	col name;
	r record;
	parent_state jsonb;
BEGIN
	-- Load domi's library first: it defines the settings read below.
	PERFORM domi.current_tenant();
	mode := pg_catalog.current_setting('domi.rls_guard');
	col := pg_catalog.current_setting('domi.tenant_column');
	IF mode = 'off' THEN
		RETURN;
	END IF;
	FOR r IN
		SELECT DISTINCT c.oid::pg_catalog.regclass AS tbl, c.relkind, c.relispartition,
				c.relrowsecurity,
				EXISTS (SELECT FROM pg_catalog.pg_policy p WHERE p.polrelid = c.oid) AS has_policy,
				EXISTS (SELECT FROM domi._tenant_tables(col) t WHERE t.relid = c.oid) AS has_column
			FROM pg_catalog.pg_event_trigger_ddl_commands() cmd
			JOIN pg_catalog.pg_class c ON c.oid = cmd.objid
			JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
			WHERE cmd.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
				AND cmd.command_tag IN ('CREATE TABLE', 'ALTER TABLE', 'CREATE TABLE AS', 'SELECT INTO')
				AND c.relkind IN ('r', 'p') AND c.relpersistence <> 't'
				AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'domi')
				AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d
					WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
						AND d.objid = c.oid AND d.deptype = 'e')
			ORDER BY 1
	LOOP
		-- A partition of a table with domi's policy.
		IF r.relispartition AND domi._tenant_policy_state(r.tbl) IS NULL THEN
			SELECT domi._tenant_policy_state(a.relid) INTO parent_state
				FROM pg_catalog.pg_partition_ancestors(r.tbl) a(relid)
				WHERE a.relid <> r.tbl AND domi._tenant_policy_state(a.relid) IS NOT NULL
				LIMIT 1;
			IF parent_state IS NOT NULL THEN
				PERFORM domi.enable_tenant_rls(r.tbl, coalesce(parent_state ->> 'tenant_column', col));
				CONTINUE;
			END IF;
		END IF;
		-- Partitions attached to a table with domi's policy.
		IF r.relkind = 'p' AND domi._tenant_policy_state(r.tbl) IS NOT NULL
			AND EXISTS (SELECT FROM pg_catalog.pg_partition_tree(r.tbl) pt
				WHERE pt.relid <> r.tbl AND domi._tenant_policy_state(pt.relid) IS NULL) THEN
			PERFORM domi.enable_tenant_rls(r.tbl,
				coalesce(domi._tenant_policy_state(r.tbl) ->> 'tenant_column', col));
			CONTINUE;
		END IF;
		IF NOT r.has_column OR (r.relrowsecurity AND r.has_policy) THEN
			CONTINUE;
		END IF;
		IF mode = 'enable' THEN
			PERFORM domi.enable_tenant_rls(r.tbl, col);
			RAISE NOTICE 'tenant row level security installed on table "%"', r.tbl;
		ELSIF mode = 'error' THEN
			RAISE EXCEPTION 'table "%" has a tenant column "%" but no tenant row level security', r.tbl, col
				USING ERRCODE = 'invalid_table_definition',
					DETAIL = 'domi.rls_guard is "error".',
					HINT = pg_catalog.format('Set domi.rls_guard to "enable" to install it with the table, or in one transaction SET LOCAL domi.rls_guard = off, create the table and run SELECT domi.enable_tenant_rls(%L).', r.tbl::text);
		ELSE
			RAISE WARNING 'table "%" has a tenant column "%" but no tenant row level security', r.tbl, col
				USING HINT = pg_catalog.format('SELECT domi.enable_tenant_rls(%L);', r.tbl::text);
		END IF;
	END LOOP;
END;
$$;

--------------------------------------------------------------------------
-- Keyring (src/keyring.c, src/rekey.c)
--------------------------------------------------------------------------

-- Per-tenant data keys, stored only wrapped by the root key (which is read
-- at server start and never stored here).  Readable by the extension owner
-- alone: the keyring functions below read it as that owner.  A
-- configuration table, so pg_dump includes its rows; a restore onto a
-- server with the same root key opens everything.
--   active        encrypts and decrypts; at most one version per tenant
--   decrypt_only  decrypts: rotated away from, or imported
--   retired       opens nothing (kept wrapped to name the cause)
--   destroyed     the key is gone (crypto-shredding)
CREATE TABLE domi.tenant_keys (
	tenant uuid NOT NULL,
	version int NOT NULL CHECK (version > 0),
	state text NOT NULL
		CHECK (state IN ('active', 'decrypt_only', 'retired', 'destroyed')),
	wrapped bytea CHECK ((wrapped IS NULL) = (state = 'destroyed')),
	root_fingerprint bytea CHECK ((root_fingerprint IS NULL) = (wrapped IS NULL)),
	created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	changed_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant, version)
);
CREATE UNIQUE INDEX tenant_keys_one_active ON domi.tenant_keys (tenant)
	WHERE state = 'active';
-- Finding a key wrapped by another root key is a range scan.
CREATE INDEX tenant_keys_root_fingerprint ON domi.tenant_keys (root_fingerprint);
REVOKE ALL ON domi.tenant_keys FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('domi.tenant_keys', '');

-- Every change tells every backend's key cache to forget the table
-- (a relcache invalidation: sent at commit, replayed at abort).
CREATE FUNCTION domi._keyring_changed() RETURNS trigger
	AS 'MODULE_PATHNAME', 'domi_keyring_changed'
	LANGUAGE C;
REVOKE ALL ON FUNCTION domi._keyring_changed() FROM PUBLIC;
CREATE TRIGGER tenant_keys_changed
	AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON domi.tenant_keys
	FOR EACH STATEMENT EXECUTE FUNCTION domi._keyring_changed();

-- Encrypt and decrypt under the current tenant (domi.require_tenant()) or a
-- named one.  Boxes are plain secretbox boxes (nonce || MAC || ciphertext)
-- under the tenant's data key.  Encrypting draws a nonce and may create the
-- tenant's first key (a write): VOLATILE, PARALLEL UNSAFE.  Decrypting reads
-- keyring state: STABLE, not IMMUTABLE.  The forms with a tenant are not
-- STRICT: a NULL tenant is an error (22004), never a NULL value stored.
CREATE FUNCTION domi.encrypt(plaintext bytea) RETURNS bytea
	AS 'MODULE_PATHNAME', 'domi_encrypt'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
CREATE FUNCTION domi.encrypt(plaintext bytea, tenant uuid) RETURNS bytea
	AS 'MODULE_PATHNAME', 'domi_encrypt'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION domi.decrypt(box bytea) RETURNS bytea
	AS 'MODULE_PATHNAME', 'domi_decrypt'
	LANGUAGE C STABLE STRICT PARALLEL SAFE;
CREATE FUNCTION domi.decrypt(box bytea, tenant uuid) RETURNS bytea
	AS 'MODULE_PATHNAME', 'domi_decrypt'
	LANGUAGE C STABLE PARALLEL SAFE;
CREATE FUNCTION domi.encrypt_text(plaintext text) RETURNS bytea
	AS 'MODULE_PATHNAME', 'domi_encrypt_text'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
CREATE FUNCTION domi.encrypt_text(plaintext text, tenant uuid) RETURNS bytea
	AS 'MODULE_PATHNAME', 'domi_encrypt_text'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION domi.decrypt_text(box bytea) RETURNS text
	AS 'MODULE_PATHNAME', 'domi_decrypt_text'
	LANGUAGE C STABLE STRICT PARALLEL SAFE;
CREATE FUNCTION domi.decrypt_text(box bytea, tenant uuid) RETURNS text
	AS 'MODULE_PATHNAME', 'domi_decrypt_text'
	LANGUAGE C STABLE PARALLEL SAFE;

-- Administration.
CREATE FUNCTION domi.rotate_tenant_key(tenant uuid) RETURNS int
	AS 'MODULE_PATHNAME', 'domi_rotate_tenant_key'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION domi.retire_tenant_key(tenant uuid, version int) RETURNS void
	AS 'MODULE_PATHNAME', 'domi_retire_tenant_key'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION domi.destroy_tenant_keys(tenant uuid) RETURNS int
	AS 'MODULE_PATHNAME', 'domi_destroy_tenant_keys'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION domi.import_tenant_key(tenant uuid, key bytea) RETURNS int
	AS 'MODULE_PATHNAME', 'domi_import_tenant_key'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION domi.rewrap_tenant_keys() RETURNS int
	AS 'MODULE_PATHNAME', 'domi_rewrap_tenant_keys'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- Fingerprints and reasons of the root keys, never key bytes.
CREATE FUNCTION domi._root_key_info(OUT loaded boolean, OUT fingerprint bytea,
		OUT problem text, OUT previous_loaded boolean,
		OUT previous_fingerprint bytea, OUT previous_problem text)
	RETURNS record
	AS 'MODULE_PATHNAME', 'domi_root_key_info'
	LANGUAGE C STABLE PARALLEL SAFE;

-- Whether the root key is loaded, its fingerprint, and the tenant keys by
-- state and by the root key that wrapped them.
CREATE FUNCTION domi.keyring_status(
		OUT root_key_loaded boolean, OUT root_key_fingerprint text,
		OUT root_key_problem text, OUT previous_root_key_loaded boolean,
		OUT previous_root_key_fingerprint text, OUT previous_root_key_problem text,
		OUT tenants bigint, OUT active_keys bigint, OUT decrypt_only_keys bigint,
		OUT retired_keys bigint, OUT destroyed_keys bigint,
		OUT keys_under_previous_root bigint, OUT keys_under_unknown_root bigint)
	RETURNS record
	LANGUAGE sql STABLE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT r.loaded, encode(r.fingerprint, 'hex'), r.problem,
		r.previous_loaded, encode(r.previous_fingerprint, 'hex'), r.previous_problem,
		count(DISTINCT k.tenant),
		count(k.tenant) FILTER (WHERE k.state = 'active'),
		count(k.tenant) FILTER (WHERE k.state = 'decrypt_only'),
		count(k.tenant) FILTER (WHERE k.state = 'retired'),
		count(k.tenant) FILTER (WHERE k.state = 'destroyed'),
		CASE WHEN r.loaded THEN count(k.tenant) FILTER (
			WHERE k.root_fingerprint = r.previous_fingerprint) END,
		CASE WHEN r.loaded THEN count(k.tenant) FILTER (
			WHERE k.root_fingerprint IS DISTINCT FROM r.fingerprint
			AND k.root_fingerprint IS DISTINCT FROM r.previous_fingerprint
			AND k.wrapped IS NOT NULL) END
	FROM domi._root_key_info() r LEFT JOIN domi.tenant_keys k ON true
	GROUP BY r.loaded, r.fingerprint, r.problem, r.previous_loaded,
		r.previous_fingerprint, r.previous_problem
$$;

-- The per-value step of domi.rekey(): NULL when the box is already under
-- the tenant's active key, else the value sealed again under it.
CREATE FUNCTION domi._rekey_value(box bytea, tenant uuid) RETURNS bytea
	AS 'MODULE_PATHNAME', 'domi_rekey_value'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;

-- Re-encrypt in place every value of tbl.col that is not under its tenant's
-- active key, in batches of about batch_size rows, each its own committed
-- transaction: only row locks, interruptible at any point, and every value
-- stays readable (the old version opens until it is retired).  Batches are
-- ranges of pages (a TID range scan), so no primary key is needed, and the
-- UPDATE joins on ctid: a row another session changed in the meantime is
-- left alone by that batch.  Such a row can keep a value under an old key
-- (an update of another column, often to the same page), so a pass that
-- rewrote anything is followed by another over the whole table, until one
-- finds nothing to rewrite: "done" means a full pass found every value
-- under the active key.  Runs with the caller's rights: it needs UPDATE on
-- the table.
-- A procedure that COMMITs cannot have a SET clause, so search_path is
-- pinned for each batch's transaction instead.
CREATE PROCEDURE domi.rekey(tbl regclass, col name, tenant_col name DEFAULT 'tenant_id',
		batch_size int DEFAULT 1000)
	LANGUAGE plpgsql
AS $$
DECLARE
	parts regclass[];
	part regclass;
	col_type oid;
	stmt text;
	blocks bigint;
	first_page bigint;
	last_page bigint;
	pages bigint;
	scanned bigint;
	rewritten bigint;
	needed bigint;
	orphans bigint;
	pass_orphans bigint;
	total bigint := 0;
	pass int := 0;
	pass_total bigint;
	pass_needed bigint;
	label text;
	est_tuples real;
	est_pages int;
BEGIN
	PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
	IF col IS NULL THEN
		RAISE EXCEPTION 'column must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF batch_size IS NULL OR batch_size < 1 THEN
		RAISE EXCEPTION 'batch size must be a positive number of rows'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	-- A table or partitioned table, with a uuid tenant column (42809, 42703, 42804).
	PERFORM domi._tenant_column_attnum(tbl, tenant_col);
	SELECT a.atttypid INTO col_type FROM pg_catalog.pg_attribute a
		WHERE a.attrelid = tbl AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'column "%" of relation "%" does not exist', col, tbl
			USING ERRCODE = 'undefined_column';
	END IF;
	IF col_type <> 'pg_catalog.bytea'::pg_catalog.regtype THEN
		RAISE EXCEPTION 'column "%" of relation "%" is not of type bytea', col, tbl
			USING ERRCODE = 'datatype_mismatch',
				DETAIL = pg_catalog.format('It is of type %s.', col_type::pg_catalog.regtype);
	END IF;

	-- The table itself, or every leaf partition (pg_partition_tree lists
	-- nothing for a table that is not partitioned).
	parts := ARRAY(SELECT t.relid FROM pg_catalog.pg_partition_tree(tbl) t
		JOIN pg_catalog.pg_class c ON c.oid = t.relid
		WHERE t.isleaf AND c.relkind = 'r' ORDER BY t.level, t.relid::pg_catalog.oid);
	IF pg_catalog.cardinality(parts) = 0 THEN
		parts := ARRAY[tbl];
	END IF;
	LOOP
		pass := pass + 1;
		pass_total := 0;
		pass_needed := 0;
		pass_orphans := 0;
		FOREACH part IN ARRAY parts LOOP
			label := pg_catalog.format('%s.%s', part, pg_catalog.quote_ident(col));
			IF pass > 1 THEN
				label := pg_catalog.format('%s, pass %s', label, pass);
			END IF;
			IF pass = 1 AND pg_catalog.row_security_active(part) THEN
				RAISE WARNING 'row-level security is active on "%" for this role: only the rows it can see are re-keyed', part
					USING HINT = 'Run domi.rekey() as a role with BYPASSRLS, or once per tenant with that tenant set.';
			END IF;
			stmt := pg_catalog.format($q$
			WITH batch AS MATERIALIZED (
				SELECT ctid AS row_ctid, domi._rekey_value(%1$I, %2$I) AS box,
					%2$I IS NULL AND %1$I IS NOT NULL AS orphan
				FROM ONLY %3$s WHERE ctid >= $1 AND ctid < $2),
			done AS (
				UPDATE ONLY %3$s AS t SET %1$I = batch.box FROM batch
				WHERE t.ctid >= $1 AND t.ctid < $2 AND t.ctid = batch.row_ctid
					AND batch.box IS NOT NULL
				RETURNING 1)
			SELECT (SELECT count(*) FROM batch), (SELECT count(*) FROM batch WHERE box IS NOT NULL),
				(SELECT count(*) FROM done), (SELECT count(*) FROM batch WHERE orphan)$q$,
				col, tenant_col, part);
			-- Pages that existed at the start; rows written later are under the
			-- active key already (ours, and those of sessions that noticed it),
			-- or found by the next pass.
			blocks := pg_catalog.pg_relation_size(part)
				/ pg_catalog.current_setting('block_size')::bigint;
			SELECT c.reltuples, c.relpages INTO est_tuples, est_pages
				FROM pg_catalog.pg_class c WHERE c.oid = part;
			pages := CASE WHEN est_pages > 0 AND est_tuples > 0
				THEN greatest(1, floor(batch_size / (est_tuples / est_pages)))::bigint ELSE 1 END;
			first_page := 0;
			WHILE first_page < blocks LOOP
				last_page := least(first_page + pages, blocks);
				EXECUTE stmt INTO scanned, needed, rewritten, orphans
					USING pg_catalog.format('(%s,0)', first_page)::pg_catalog.tid,
						pg_catalog.format('(%s,0)', last_page)::pg_catalog.tid;
				total := total + rewritten;
				pass_total := pass_total + rewritten;
				pass_needed := pass_needed + needed;
				pass_orphans := pass_orphans + orphans;
				RAISE NOTICE 'rekey of %: pages % to % of %, % of % rows rewritten',
					label, first_page, last_page - 1, blocks, rewritten, scanned;
				COMMIT;
				PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
				first_page := last_page;
				-- Aim the next batch at batch_size rows; after empty pages grow
				-- at most to batch_size pages (a page holds a row or more).
				pages := least(batch_size, CASE WHEN scanned > 0
					THEN greatest(1, least(pages * 4, (pages * batch_size) / scanned))
					ELSE pages * 2 END);
			END LOOP;
		END LOOP;
		-- Done when a whole pass found every value under the active key.
		EXIT WHEN pass_needed = 0;
		IF pass_total = 0 THEN
			RAISE WARNING 'rekey of %.%: % values are not under the active key, and the UPDATE left them all alone',
				tbl, pg_catalog.quote_ident(col), pass_needed
				USING DETAIL = 'A BEFORE UPDATE trigger may skip the rows, or a row-level security policy may let this role see them but not update them.',
					HINT = 'Do not retire the old versions: values under them would no longer open.';
			RETURN;
		END IF;
		IF pass = 10 THEN
			RAISE WARNING 'rekey of %.%: stopped after % passes, the last of which still rewrote % values',
				tbl, pg_catalog.quote_ident(col), pass, pass_total
				USING DETAIL = 'Other sessions keep writing values under old keys, or updating rows while they are re-keyed.',
					HINT = 'Run it again when they are done, and retire an old version only after a run that ends with "done".';
			RETURN;
		END IF;
		RAISE NOTICE 'rekey of %.%: % values rewritten in pass %; checking every value again (rows that other sessions updated meanwhile may still be under an old key)',
			tbl, pg_catalog.quote_ident(col), pass_total, pass;
	END LOOP;
	-- A value without a tenant cannot be re-keyed (whose key?): not done.
	IF pass_orphans > 0 THEN
		RAISE WARNING 'rekey of %.%: % values have no tenant (% is null) and were left as they are',
			tbl, pg_catalog.quote_ident(col), pass_orphans, pg_catalog.quote_ident(tenant_col)
			USING HINT = 'Set their tenant and run it again; until then do not retire the versions they may be under.';
		RETURN;
	END IF;
	RAISE NOTICE 'rekey of %.%: done, % values rewritten', tbl, pg_catalog.quote_ident(col), total;
END
$$;

REVOKE ALL ON FUNCTION domi.encrypt(bytea), domi.encrypt(bytea, uuid),
	domi.decrypt(bytea), domi.decrypt(bytea, uuid),
	domi.encrypt_text(text), domi.encrypt_text(text, uuid),
	domi.decrypt_text(bytea), domi.decrypt_text(bytea, uuid),
	domi.rotate_tenant_key(uuid), domi.retire_tenant_key(uuid, int),
	domi.destroy_tenant_keys(uuid), domi.import_tenant_key(uuid, bytea),
	domi.rewrap_tenant_keys(), domi._root_key_info(), domi.keyring_status(),
	domi._rekey_value(bytea, uuid) FROM PUBLIC;
REVOKE ALL ON PROCEDURE domi.rekey(regclass, name, name, int) FROM PUBLIC;

COMMENT ON TABLE domi.tenant_keys IS 'per-tenant data keys, wrapped by the root key';
COMMENT ON FUNCTION domi.encrypt(bytea) IS 'encrypt under the current tenant''s active key';
COMMENT ON FUNCTION domi.encrypt(bytea, uuid) IS 'encrypt under the tenant''s active key';
COMMENT ON FUNCTION domi.decrypt(bytea) IS 'decrypt a value of the current tenant';
COMMENT ON FUNCTION domi.decrypt(bytea, uuid) IS 'decrypt a value of the tenant';
COMMENT ON FUNCTION domi.encrypt_text(text) IS 'domi.encrypt of the text''s UTF-8 bytes';
COMMENT ON FUNCTION domi.encrypt_text(text, uuid) IS 'domi.encrypt of the text''s UTF-8 bytes';
COMMENT ON FUNCTION domi.decrypt_text(bytea) IS 'domi.decrypt, checked as UTF-8 and returned as text';
COMMENT ON FUNCTION domi.decrypt_text(bytea, uuid) IS 'domi.decrypt, checked as UTF-8 and returned as text';
COMMENT ON FUNCTION domi.rotate_tenant_key(uuid) IS 'make a new active key version; the previous one keeps decrypting';
COMMENT ON FUNCTION domi.retire_tenant_key(uuid, int) IS 'stop a key version from opening anything';
COMMENT ON FUNCTION domi.destroy_tenant_keys(uuid) IS 'crypto-shredding: every key of the tenant is gone';
COMMENT ON FUNCTION domi.import_tenant_key(uuid, bytea) IS 'add an existing 32-byte key as a decrypt-only version of the tenant';
COMMENT ON FUNCTION domi.rewrap_tenant_keys() IS 're-wrap tenant keys wrapped by the previous root key under the current one';
COMMENT ON FUNCTION domi.keyring_status() IS 'root key fingerprint and tenant key counts';
COMMENT ON PROCEDURE domi.rekey(regclass, name, name, int) IS 're-encrypt a column in place under each tenant''s active key, in committed batches';

-- (end of keyring)

--------------------------------------------------------------------------
-- Tenant lookup (src/tenancy.c)
--------------------------------------------------------------------------

-- Which tables and columns hold memberships and tenants: one row, written by
-- domi.configure_tenancy().  The tables are regclass: the row stores their
-- OIDs, so renaming a table or changing search_path cannot point the lookups
-- at another table; pg_dump writes a regclass out as a schema-qualified name,
-- which the restore resolves to the restored table (the OIDs differ there).
-- Columns are stored by name and resolved, and type-checked, when used: a
-- column renamed away is an error, never a silent match with another one.
-- An extension configuration table, so pg_dump dumps its row.  Only the
-- extension owner may read or write it.
CREATE TABLE domi.tenancy_config (
	singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	memberships pg_catalog.regclass NOT NULL,
	user_column name NOT NULL,
	tenant_column name NOT NULL,
	order_column name,
	tenants pg_catalog.regclass,
	tenants_id_column name
);
SELECT pg_catalog.pg_extension_config_dump('domi.tenancy_config', '');
REVOKE ALL ON domi.tenancy_config FROM PUBLIC;

-- Every write checks the row (also a restore or a direct UPDATE by the
-- owner) and tells every backend to re-prepare its lookups.
CREATE FUNCTION domi._tenancy_config_changed() RETURNS trigger
	AS 'MODULE_PATHNAME', 'domi_tenancy_config_changed'
	LANGUAGE C;
CREATE TRIGGER tenancy_config_check BEFORE INSERT OR UPDATE ON domi.tenancy_config
	FOR EACH ROW EXECUTE FUNCTION domi._tenancy_config_changed();
CREATE TRIGGER tenancy_config_removed AFTER DELETE OR TRUNCATE ON domi.tenancy_config
	FOR EACH STATEMENT EXECUTE FUNCTION domi._tenancy_config_changed();
REVOKE ALL ON FUNCTION domi._tenancy_config_changed() FROM PUBLIC;

-- Runs with the caller's rights, and refuses (42501) anyone but the
-- extension owner or a superuser.  order_column NULL: order by tenant id
-- only.  tenants NULL: no bootstrap_tenant.
CREATE FUNCTION domi.configure_tenancy(memberships regclass,
		user_column name DEFAULT 'user_id',
		tenant_column name DEFAULT 'tenant_id',
		order_column name DEFAULT 'created_at',
		tenants regclass DEFAULT NULL,
		tenants_id_column name DEFAULT 'id')
	RETURNS void
	AS 'MODULE_PATHNAME', 'domi_configure_tenancy'
	LANGUAGE C VOLATILE
	SET search_path = pg_catalog, pg_temp;

-- The lookups: SECURITY DEFINER (they read past the application's
-- row-level security with the extension owner's rights), search_path
-- pinned, revoked from PUBLIC: GRANT EXECUTE to the application role.
-- PARALLEL RESTRICTED: they keep per-backend state (plans, the chosen index)
-- and run in the leader only.
CREATE FUNCTION domi.user_tenant(user_id text) RETURNS uuid
	AS 'MODULE_PATHNAME', 'domi_user_tenant'
	LANGUAGE C STABLE STRICT PARALLEL RESTRICTED SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION domi.user_tenants(user_id text) RETURNS SETOF uuid
	AS 'MODULE_PATHNAME', 'domi_user_tenants'
	LANGUAGE C STABLE STRICT PARALLEL RESTRICTED SECURITY DEFINER ROWS 3
	SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION domi.is_member(user_id text, tenant uuid) RETURNS boolean
	AS 'MODULE_PATHNAME', 'domi_is_member'
	LANGUAGE C STABLE STRICT PARALLEL RESTRICTED SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;

-- Not STRICT: a NULL tenant means "the first membership"; a NULL user is an
-- error (22004).  Sets the tenant exactly as domi.set_tenant() does.
CREATE FUNCTION domi.enter_tenant(user_id text, tenant uuid DEFAULT NULL) RETURNS uuid
	AS 'MODULE_PATHNAME', 'domi_enter_tenant'
	LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;

-- Not STRICT: a NULL user is an error (22004), a NULL tenant is '{}'.
CREATE FUNCTION domi.bootstrap_tenant(user_id text, tenant jsonb DEFAULT '{}') RETURNS uuid
	AS 'MODULE_PATHNAME', 'domi_bootstrap_tenant'
	LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;

REVOKE ALL ON FUNCTION domi.configure_tenancy(regclass, name, name, name, regclass, name) FROM PUBLIC;
REVOKE ALL ON FUNCTION domi.user_tenant(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION domi.user_tenants(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION domi.is_member(text, uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION domi.enter_tenant(text, uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION domi.bootstrap_tenant(text, jsonb) FROM PUBLIC;

COMMENT ON TABLE domi.tenancy_config IS 'the tables and columns of memberships and tenants, written by domi.configure_tenancy';
COMMENT ON FUNCTION domi.configure_tenancy(regclass, name, name, name, regclass, name) IS 'record which tables and columns hold memberships and tenants (extension owner only)';
COMMENT ON FUNCTION domi.user_tenant(text) IS 'the tenant of the user''s first membership, or NULL';
COMMENT ON FUNCTION domi.user_tenants(text) IS 'the tenants of all the user''s memberships, first first';
COMMENT ON FUNCTION domi.is_member(text, uuid) IS 'is the user a member of the tenant?';
COMMENT ON FUNCTION domi.enter_tenant(text, uuid) IS 'check membership, then set the tenant for the current transaction';
COMMENT ON FUNCTION domi.bootstrap_tenant(text, jsonb) IS 'create a tenant and the user''s first membership, or return the tenant the user already has';

-- (end of tenant lookup)

--------------------------------------------------------------------------
-- Migration lineage (src/lineage.c)
--------------------------------------------------------------------------

-- The manifest is {"format": "drizzle" | "prisma", "files": {name: text}}:
-- a migrations folder's files, each as its exact text (README.md, "Migration
-- lineage").  Read-only, with the caller's rights: reading the migrations
-- table needs the caller's SELECT on it.  Not STRICT: a NULL table means the
-- format's default table, when it exists.
CREATE FUNCTION domi.lineage_check(manifest jsonb, migrations_table regclass DEFAULT NULL)
RETURNS TABLE (severity text, code text, migration text, detail text, fix text)
AS 'MODULE_PATHNAME', 'domi_lineage_check'
LANGUAGE C STABLE;

COMMENT ON FUNCTION domi.lineage_check(jsonb, regclass) IS
'Checks a Drizzle or Prisma migrations folder (the manifest) against itself and against the database''s migrations table; one row per finding, errors first.';

-- (end of migration lineage)

--------------------------------------------------------------------------
-- Drop guard (src/guard.c)
--------------------------------------------------------------------------

-- The registry of protected columns.  A configuration table, so pg_dump
-- keeps its rows: tbl is a regclass (dumped as a qualified name, restored to
-- the new OID), the column is kept by name (attribute numbers change on
-- restore), and the type as it was when the column was protected, for the
-- type-change check.  Only the C functions read and write it, as its owner.
CREATE TABLE domi._protected_columns (
	tbl regclass NOT NULL,
	col name NOT NULL,
	typ regtype NOT NULL,
	typmod integer NOT NULL,
	protected_by name NOT NULL,
	protected_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tbl, col)
);
REVOKE ALL ON domi._protected_columns FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('domi._protected_columns', '');

COMMENT ON TABLE domi._protected_columns IS 'drop guard registry: read domi.protected_columns instead';

-- Only the table's owner (or a superuser) may protect or unprotect a column:
-- the functions check that as the caller.  Not STRICT: a NULL argument is an
-- error (22004), never a silent "nothing protected".
CREATE FUNCTION domi.protect_column(tbl regclass, col name) RETURNS boolean
	LANGUAGE C VOLATILE
	AS 'MODULE_PATHNAME', 'domi_protect_column';

COMMENT ON FUNCTION domi.protect_column(regclass, name) IS 'refuse DDL that drops, renames or retypes this column unless the transaction sets domi.allow_drop; true if newly protected';

CREATE FUNCTION domi.unprotect_column(tbl regclass, col name) RETURNS boolean
	LANGUAGE C VOLATILE
	AS 'MODULE_PATHNAME', 'domi_unprotect_column';

COMMENT ON FUNCTION domi.unprotect_column(regclass, name) IS 'remove a column''s protection; true if it was protected';

-- Readable by everyone: it shows names only.  allow_drop is the exact value
-- that lets a transaction drop the column.
CREATE VIEW domi.protected_columns AS
	SELECT n.nspname AS schema_name,
		c.relname AS table_name,
		r.col AS column_name,
		pg_catalog.format_type(r.typ, r.typmod) AS column_type,
		pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.'
			OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c.relname)
			OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(r.col) AS allow_drop,
		r.protected_by,
		r.protected_at
	FROM domi._protected_columns r
	JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) r.tbl
	JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace;
GRANT SELECT ON domi.protected_columns TO PUBLIC;

COMMENT ON VIEW domi.protected_columns IS 'columns protected by the drop guard, with the domi.allow_drop value that allows dropping each';

-- The event triggers.  ENABLE ALWAYS: they fire under
-- session_replication_role = replica too, where ordinary event triggers are
-- skipped.  Creating event triggers needs a superuser, so CREATE EXTENSION
-- domi does.
CREATE FUNCTION domi._drop_guard_sql_drop() RETURNS event_trigger
	LANGUAGE C
	AS 'MODULE_PATHNAME', 'domi_guard_sql_drop';

CREATE FUNCTION domi._drop_guard_ddl_end() RETURNS event_trigger
	LANGUAGE C
	AS 'MODULE_PATHNAME', 'domi_guard_ddl_end';

CREATE FUNCTION domi._drop_guard_ddl_start() RETURNS event_trigger
	LANGUAGE C
	AS 'MODULE_PATHNAME', 'domi_guard_ddl_start';

CREATE EVENT TRIGGER domi_drop_guard_drop ON sql_drop
	EXECUTE FUNCTION domi._drop_guard_sql_drop();
ALTER EVENT TRIGGER domi_drop_guard_drop ENABLE ALWAYS;

-- ALTER VIEW, ALTER MATERIALIZED VIEW and ALTER FOREIGN TABLE too: PostgreSQL
-- lets each of them rename a column of an ordinary table.
CREATE EVENT TRIGGER domi_drop_guard_alter ON ddl_command_end
	WHEN TAG IN ('ALTER TABLE', 'ALTER TYPE', 'ALTER VIEW', 'ALTER MATERIALIZED VIEW',
		'ALTER FOREIGN TABLE')
	EXECUTE FUNCTION domi._drop_guard_ddl_end();
ALTER EVENT TRIGGER domi_drop_guard_alter ENABLE ALWAYS;

CREATE EVENT TRIGGER domi_drop_guard_self ON ddl_command_start
	WHEN TAG IN ('DROP EXTENSION', 'DROP SCHEMA', 'DROP OWNED')
	EXECUTE FUNCTION domi._drop_guard_ddl_start();
ALTER EVENT TRIGGER domi_drop_guard_self ENABLE ALWAYS;

-- (end of drop guard)
