-- domi 0.1.0 -> 0.2.0
\echo Use "ALTER EXTENSION domi UPDATE TO '0.2.0'" to load this file. \quit

-- 0.2.0 adds the keyring, the tenant lookup, the migration-lineage checker
-- and the drop guard.  A fresh CREATE EXTENSION runs domi--0.1.0.sql and
-- then this script (PostgreSQL follows the update chain when no
-- domi--0.2.0.sql exists), so a new install and an upgraded one are the
-- same by construction.  Each feature has its own section below.

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

-- (end of tenant lookup)

--------------------------------------------------------------------------
-- Migration lineage (src/lineage.c)
--------------------------------------------------------------------------

-- (end of migration lineage)

--------------------------------------------------------------------------
-- Drop guard (src/guard.c)
--------------------------------------------------------------------------

-- (end of drop guard)
