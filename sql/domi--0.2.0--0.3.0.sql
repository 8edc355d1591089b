-- domi 0.2.0 -> 0.3.0
\echo Use "ALTER EXTENSION domi UPDATE TO '0.3.0'" to load this file. \quit

-- 0.3.0 hardens what 0.2.0 promised for the deployments teams run: a
-- migrator's push cannot switch tenant isolation off, a session-wide tenant
-- cannot outlive its client behind a pooler, the tenant bootstrap runs no
-- table owner's code with the extension owner's rights, a rotation cannot
-- strand a value, and roles without privileges cannot exhaust a backend or
-- mint keys.  A fresh CREATE EXTENSION runs domi--0.1.0.sql, then
-- domi--0.1.0--0.2.0.sql, then this script.  Each concern has its own
-- section below; add to your own section only, so that work on different
-- concerns merges cleanly.

--------------------------------------------------------------------------
-- Tenant context
--------------------------------------------------------------------------


--------------------------------------------------------------------------
-- Keyring
--------------------------------------------------------------------------

-- (src/keyring.c, src/retire.c, src/firstkey.c)
--
-- The columns that hold keyring values, for retirement: a version is
-- retired only when no value of the tenant in these columns is under it
-- (src/retire.c).  domi.rekey registers the column it re-keys;
-- domi.register_encrypted_column names others.  A configuration table, so
-- pg_dump keeps its rows (a regclass is dumped as its name).
CREATE TABLE domi.encrypted_columns (
	tbl pg_catalog.regclass NOT NULL,
	col name NOT NULL,
	tenant_col name NOT NULL,
	registered_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tbl, col)
);
REVOKE ALL ON domi.encrypted_columns FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('domi.encrypted_columns', '');

-- The caller needs UPDATE on the table (as domi.rekey does).
CREATE FUNCTION domi.register_encrypted_column(tbl regclass, col name,
		tenant_col name DEFAULT 'tenant_id') RETURNS void
	AS 'MODULE_PATHNAME', 'domi_register_encrypted_column'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION domi.unregister_encrypted_column(tbl regclass, col name) RETURNS boolean
	AS 'MODULE_PATHNAME', 'domi_unregister_encrypted_column'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
-- Wait until every transaction open now has ended: the first step of rekey.
CREATE FUNCTION domi._wait_for_older_transactions() RETURNS void
	AS 'MODULE_PATHNAME', 'domi_wait_for_older_transactions'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
REVOKE ALL ON FUNCTION domi.register_encrypted_column(regclass, name, name),
	domi.unregister_encrypted_column(regclass, name),
	domi._wait_for_older_transactions() FROM PUBLIC;

-- Roles that could re-key before may still: rekey now calls these two.
DO $$
DECLARE
	grantee regrole;
BEGIN
	FOR grantee IN
		SELECT DISTINCT a.grantee::regrole FROM pg_catalog.pg_proc p,
			pg_catalog.aclexplode(p.proacl) a
		WHERE p.oid = 'domi.rekey(regclass, name, name, int)'::pg_catalog.regprocedure
			AND a.privilege_type = 'EXECUTE' AND a.grantee <> 0
	LOOP
		EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION domi.register_encrypted_column(regclass, name, name), domi._wait_for_older_transactions() TO %s', grantee);
	END LOOP;
END
$$;

-- Re-key, now: registers the column, and first waits for the transactions
-- that may still commit values under an old key (src/retire.c).
CREATE OR REPLACE PROCEDURE domi.rekey(tbl regclass, col name, tenant_col name DEFAULT 'tenant_id',
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
	-- Retirements check this column for values under the version they retire.
	PERFORM domi.register_encrypted_column(tbl, col, tenant_col);
	COMMIT;
	PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
	-- A transaction open since before the rotation may still commit a value
	-- sealed under the old key, after the pass that would have re-keyed it:
	-- wait until every transaction open now has ended.  Later ones seal
	-- under the active key.  Then commit, so that no other re-key or
	-- retirement waits for this one's batches as for a waiter.
	PERFORM domi._wait_for_older_transactions();
	COMMIT;
	PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
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

COMMENT ON TABLE domi.encrypted_columns IS 'columns that hold keyring values: retire_tenant_key checks them';
COMMENT ON FUNCTION domi.register_encrypted_column(regclass, name, name) IS 'have retire_tenant_key check this column for values under the version it retires';
COMMENT ON FUNCTION domi.unregister_encrypted_column(regclass, name) IS 'stop checking a column on retirement';
COMMENT ON FUNCTION domi.retire_tenant_key(uuid, int) IS 'stop a key version from opening anything, once no transaction or registered column can hold a value under it';


--------------------------------------------------------------------------
-- Tenant lookup and bootstrap
--------------------------------------------------------------------------

-- The functions keep their signatures; what changes is in src/tenancy.c:
-- - No code of a configured table's owner runs with the extension owner's
--   rights: the lookups scan the tables instead of planning a query (which
--   folds the owner's immutable functions in index expressions), and
--   bootstrap_tenant evaluates the id default and inserts as each table's
--   owner, in a security-restricted operation, with the tenant set to the
--   new id.  The extension owner now needs only SELECT on the memberships
--   table (and BYPASSRLS, or to be a superuser).
-- - bootstrap_tenant serializes on a lock tag that no pg_advisory_*
--   function can take (objsubid 101), not on the advisory lock
--   (1685024105, hashtext(user_id)) that any role could hold.
-- - The user column may be uuid, smallint, integer or bigint as well as
--   text or varchar; the text argument is converted to its type (22P02).
COMMENT ON FUNCTION domi.user_tenant(text) IS 'the tenant of the user''s first membership, or NULL (the id is compared in the user column''s type)';


--------------------------------------------------------------------------
-- Row-level security and its guards
--------------------------------------------------------------------------

-- Tenant isolation that no migrator switches off by accident
-- (src/rls_guard.c, docs/rls-guard.md).  drizzle-kit push of a schema that
-- does not declare domi's policy runs ALTER TABLE ... DISABLE ROW LEVEL
-- SECURITY and DROP POLICY domi_tenant_isolation on every isolated table
-- and reports success; domi.rls_guard only warned, in the server log.

-- The registry of isolated tables: every table domi.enable_tenant_rls
-- isolated, with the tenant column it was isolated on (by name: attribute
-- numbers change in a dump and restore; renames are followed).  The guard
-- protects exactly these tables, and domi.rls_audit() still knows a table's
-- tenant column once its policy is gone.  A configuration table, so pg_dump
-- keeps it; regclass dumps as a qualified name and restores to the new OID.
-- Only the C functions write it, as its owner.
CREATE TABLE domi._isolated_tables (
	tbl regclass PRIMARY KEY,
	tenant_column name NOT NULL,
	isolated_by name NOT NULL,
	isolated_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
REVOKE ALL ON domi._isolated_tables FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('domi._isolated_tables', '');

COMMENT ON TABLE domi._isolated_tables IS 'tenant isolation registry: read domi.isolated_tables instead';

-- Tables isolated before 0.3.0: their policy's comment names the column.
INSERT INTO domi._isolated_tables (tbl, tenant_column, isolated_by)
	SELECT c.oid::pg_catalog.regclass, s.state ->> 'tenant_column', pg_catalog.pg_get_userbyid(c.relowner)
		FROM pg_catalog.pg_class c
		CROSS JOIN LATERAL (SELECT domi._tenant_policy_state(c.oid::pg_catalog.regclass) AS state) s
		WHERE c.relkind IN ('r', 'p') AND c.relpersistence <> 't'
			AND s.state ? 'tenant_column';

-- Readable by everyone: names only.  allow_drop is the value of
-- domi.allow_drop that lets one transaction switch the table's isolation off.
CREATE VIEW domi.isolated_tables AS
	SELECT r.tbl,
		n.nspname AS schema_name,
		c.relname AS table_name,
		r.tenant_column,
		pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.'
			OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c.relname)
			OPERATOR(pg_catalog.||) '.domi_tenant_isolation' AS allow_drop,
		r.isolated_by,
		r.isolated_at
	FROM domi._isolated_tables r
	JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) r.tbl
	JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace;
GRANT SELECT ON domi.isolated_tables TO PUBLIC;

COMMENT ON VIEW domi.isolated_tables IS 'tables domi.enable_tenant_rls isolated, with their tenant column and the domi.allow_drop value that lets a transaction switch isolation off';

-- Record and forget a table; the caller must own it (checked as the
-- caller).  Used by enable_tenant_rls and disable_tenant_rls.
CREATE FUNCTION domi._isolation_remember(tbl regclass, tenant_column name) RETURNS void
	LANGUAGE C VOLATILE
	AS 'MODULE_PATHNAME', 'domi_isolation_remember';

CREATE FUNCTION domi._isolation_forget(tbl regclass) RETURNS boolean
	LANGUAGE C VOLATILE
	AS 'MODULE_PATHNAME', 'domi_isolation_forget';

-- enable_tenant_rls as in 0.1.0, and: the table leaves the registry while
-- its policy is re-created (the guard would refuse that DROP POLICY) and is
-- recorded again at the end, all in the caller's one transaction.  The
-- policy is the plain call "tenant_column = domi.current_tenant()", which
-- Citus accepts on distributed tables; the support function of the Citus
-- section below plans it as an initplan, once per query.
CREATE OR REPLACE FUNCTION domi.enable_tenant_rls(tbl regclass, tenant_column name DEFAULT 'tenant_id')
	RETURNS void
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
	SET domi.rls_guard = off
AS $$
DECLARE
	state jsonb;
	part regclass;
BEGIN
	PERFORM domi._tenant_column_attnum(tbl, tenant_column);
	PERFORM domi._isolation_forget(tbl);

	-- Remember what was there before domi, the first time only.
	state := domi._tenant_policy_state(tbl);
	IF state IS NULL OR NOT state ? 'rls_was_enabled' THEN
		SELECT pg_catalog.jsonb_build_object('rls_was_enabled', c.relrowsecurity,
				'rls_was_forced', c.relforcerowsecurity)
			INTO state
			FROM pg_catalog.pg_class c WHERE c.oid = tbl;
	END IF;
	state := state || pg_catalog.jsonb_build_object('tenant_column', tenant_column);

	IF domi._tenant_policy_state(tbl) IS NOT NULL THEN
		EXECUTE pg_catalog.format('DROP POLICY domi_tenant_isolation ON %s', tbl);
	END IF;
	EXECUTE pg_catalog.format('CREATE POLICY domi_tenant_isolation ON %s AS PERMISSIVE FOR ALL TO PUBLIC'
			' USING (%2$I = domi.current_tenant()) WITH CHECK (%2$I = domi.current_tenant())',
			tbl, tenant_column);
	EXECUTE pg_catalog.format('COMMENT ON POLICY domi_tenant_isolation ON %s IS %L',
			tbl, 'domi tenant isolation ' || state::text);
	EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY', tbl);
	PERFORM domi._isolation_remember(tbl, tenant_column);

	FOR part IN
		SELECT i.inhrelid::pg_catalog.regclass
			FROM pg_catalog.pg_inherits i
			JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
			WHERE i.inhparent = tbl AND c.relispartition AND c.relkind IN ('r', 'p')
			ORDER BY 1
	LOOP
		PERFORM domi.enable_tenant_rls(part, tenant_column);
	END LOOP;
END;
$$;

-- disable_tenant_rls as in 0.1.0, and: the table leaves the registry first,
-- so the guard lets this deliberate way back through.  A table whose policy
-- was already dropped (under domi.allow_drop) is forgotten too.
CREATE OR REPLACE FUNCTION domi.disable_tenant_rls(tbl regclass) RETURNS void
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
	SET domi.rls_guard = off
AS $$
DECLARE
	state jsonb;
	part regclass;
	forgotten boolean;
BEGIN
	IF tbl IS NULL THEN
		RAISE EXCEPTION 'table must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;

	FOR part IN
		SELECT i.inhrelid::pg_catalog.regclass
			FROM pg_catalog.pg_inherits i
			JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
			WHERE i.inhparent = tbl AND c.relispartition
			ORDER BY 1
	LOOP
		PERFORM domi.disable_tenant_rls(part);
	END LOOP;

	forgotten := domi._isolation_forget(tbl);
	state := domi._tenant_policy_state(tbl);
	IF state IS NULL THEN
		IF forgotten THEN
			RAISE NOTICE 'table "%" had lost its domi tenant policy: domi no longer guards its isolation', tbl;
		ELSE
			RAISE NOTICE 'table "%" has no domi tenant policy, nothing to remove', tbl;
		END IF;
		RETURN;
	END IF;
	EXECUTE pg_catalog.format('DROP POLICY domi_tenant_isolation ON %s', tbl);
	IF NOT coalesce((state ->> 'rls_was_forced')::boolean, false) THEN
		EXECUTE pg_catalog.format('ALTER TABLE %s NO FORCE ROW LEVEL SECURITY', tbl);
	END IF;
	IF NOT coalesce((state ->> 'rls_was_enabled')::boolean, false) THEN
		EXECUTE pg_catalog.format('ALTER TABLE %s DISABLE ROW LEVEL SECURITY', tbl);
	END IF;
END;
$$;

-- The guard's event triggers.  ENABLE ALWAYS: they fire under
-- session_replication_role = replica too.  Named to sort before
-- domi_rls_guard, so that on an isolated table this refusal, which names
-- what the statement would do, comes first.
CREATE FUNCTION domi._isolation_guard_ddl_end() RETURNS event_trigger
	LANGUAGE C
	AS 'MODULE_PATHNAME', 'domi_isolation_ddl_end';

CREATE FUNCTION domi._isolation_guard_sql_drop() RETURNS event_trigger
	LANGUAGE C
	AS 'MODULE_PATHNAME', 'domi_isolation_sql_drop';

CREATE EVENT TRIGGER domi_isolation_guard_alter ON ddl_command_end
	WHEN TAG IN ('ALTER TABLE', 'ALTER POLICY')
	EXECUTE FUNCTION domi._isolation_guard_ddl_end();
ALTER EVENT TRIGGER domi_isolation_guard_alter ENABLE ALWAYS;

CREATE EVENT TRIGGER domi_isolation_guard_drop ON sql_drop
	EXECUTE FUNCTION domi._isolation_guard_sql_drop();
ALTER EVENT TRIGGER domi_isolation_guard_drop ENABLE ALWAYS;

-- What one command of pg_event_trigger_ddl_commands() did to a table, for
-- the messages of domi._rls_guard(): 'disable', 'no_force',
-- 'tenant_column', 'create' or NULL.
CREATE FUNCTION domi._rls_guard_effect(cmd pg_ddl_command, tenant_column name) RETURNS text
	AS 'MODULE_PATHNAME', 'domi_rls_guard_effect'
	LANGUAGE C STABLE;

-- The older guard (domi.rls_guard) as in 0.2.0, with messages that name
-- what the statement did: in 0.2.0 every refusal talked about creating a
-- table, even for ALTER TABLE ... DISABLE ROW LEVEL SECURITY.
CREATE OR REPLACE FUNCTION domi._rls_guard() RETURNS event_trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	mode text;
	col name;
	r record;
	parent_state jsonb;
	msg text;
	hint text;
BEGIN
	-- Load domi's library first: it defines the settings read below.
	PERFORM domi.current_tenant();
	mode := pg_catalog.current_setting('domi.rls_guard');
	col := pg_catalog.current_setting('domi.tenant_column');
	IF mode = 'off' THEN
		RETURN;
	END IF;
	FOR r IN
		SELECT c.oid::pg_catalog.regclass AS tbl, c.relkind, c.relispartition,
				c.relrowsecurity,
				EXISTS (SELECT FROM pg_catalog.pg_policy p WHERE p.polrelid = c.oid) AS has_policy,
				EXISTS (SELECT FROM domi._tenant_tables(col) t WHERE t.relid = c.oid) AS has_column,
				x.effects
			FROM (SELECT cmd.objid,
						pg_catalog.array_agg(domi._rls_guard_effect(cmd.command, col)) AS effects
					FROM pg_catalog.pg_event_trigger_ddl_commands() cmd
					WHERE cmd.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
						AND cmd.command_tag IN ('CREATE TABLE', 'ALTER TABLE', 'CREATE TABLE AS', 'SELECT INTO')
					GROUP BY cmd.objid) x
			JOIN pg_catalog.pg_class c ON c.oid = x.objid
			JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
			WHERE c.relkind IN ('r', 'p') AND c.relpersistence <> 't'
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
			CONTINUE;
		END IF;

		-- Say what the statement did, and what to do about that.
		IF 'disable' = ANY (r.effects) THEN
			msg := pg_catalog.format('ALTER TABLE turns row level security off on table "%s", which has the tenant column "%s"', r.tbl, col);
			hint := 'Leave row level security on; to turn it off on purpose, SET LOCAL domi.rls_guard = off in the same transaction.';
		ELSIF r.relrowsecurity THEN
			msg := pg_catalog.format('table "%s" has the tenant column "%s" and row level security, but no policy', r.tbl, col);
			hint := pg_catalog.format('SELECT domi.enable_tenant_rls(%L);', r.tbl::text);
		ELSIF 'tenant_column' = ANY (r.effects) AND NOT 'create' = ANY (r.effects) THEN
			msg := pg_catalog.format('ALTER TABLE gives table "%s" the tenant column "%s" without tenant row level security', r.tbl, col);
			hint := pg_catalog.format('Run SELECT domi.enable_tenant_rls(%L) in the same transaction, or set domi.rls_guard to "enable" to install it with the column.', r.tbl::text);
		ELSIF 'create' = ANY (r.effects) THEN
			msg := pg_catalog.format('table "%s" has a tenant column "%s" but no tenant row level security', r.tbl, col);
			hint := pg_catalog.format('Set domi.rls_guard to "enable" to install it with the table, or in one transaction SET LOCAL domi.rls_guard = off, create the table and run SELECT domi.enable_tenant_rls(%L).', r.tbl::text);
		ELSE
			msg := pg_catalog.format('ALTER TABLE changes table "%s", which has a tenant column "%s" but no tenant row level security', r.tbl, col);
			hint := pg_catalog.format('Run SELECT domi.enable_tenant_rls(%L) first, or SET LOCAL domi.rls_guard = off in the same transaction.', r.tbl::text);
		END IF;
		IF mode = 'error' THEN
			RAISE EXCEPTION '%', msg
				USING ERRCODE = 'invalid_table_definition',
					DETAIL = 'domi.rls_guard is "error".',
					HINT = hint;
		ELSE
			RAISE WARNING '%', msg
				USING HINT = pg_catalog.format('SELECT domi.enable_tenant_rls(%L);', r.tbl::text);
		END IF;
	END LOOP;
END;
$$;

-- rls_audit as in 0.1.0, over the tables with the tenant column named by
-- domi.tenant_column and every table in the registry, each under its own
-- tenant column; and a new check, isolation_policy_missing.
CREATE FUNCTION domi._audited_tenant_tables(tenant_column name)
	RETURNS TABLE (relid oid, attnum int2, column_name name, isolated boolean)
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT r.tbl::pg_catalog.oid, a.attnum, r.tenant_column, true
		FROM domi.isolated_tables r
		LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = r.tbl AND a.attname = r.tenant_column
			AND a.attnum > 0 AND NOT a.attisdropped
	UNION ALL
	SELECT t.relid, t.attnum, tenant_column, false
		FROM domi._tenant_tables(tenant_column) t
		WHERE NOT EXISTS (SELECT FROM domi.isolated_tables r WHERE r.tbl = t.relid)
$$;

-- Findings, in the spirit of database linters: one row per problem, with
-- the SQL that resolves it.  app_roles: the roles the application connects
-- or SET ROLEs as; the role checks run only when they are given.
CREATE OR REPLACE FUNCTION domi.rls_audit(app_roles name[] DEFAULT NULL)
	RETURNS TABLE (severity text, check_name text, object text, detail text, fix text)
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	col name := pg_catalog.current_setting('domi.tenant_column');
	missing name;
BEGIN
	SELECT r INTO missing FROM pg_catalog.unnest(app_roles) r
		WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = r) LIMIT 1;
	IF FOUND THEN
		RAISE EXCEPTION 'role "%" does not exist', missing USING ERRCODE = 'undefined_object';
	END IF;

	RETURN QUERY SELECT f.severity, f.check_name, f.object, f.detail, f.fix FROM (
	-- Tenant tables: RLS off, not forced, no policy, no index.
	SELECT 'error' AS severity, 'tenant_table_rls_disabled' AS check_name, c.oid::regclass::text AS object,
			pg_catalog.format('Table %s has the tenant column %I but row level security is disabled: every role with privileges on it sees and writes every tenant''s rows.', c.oid::regclass, t.column_name)
				|| CASE WHEN c.relispartition THEN pg_catalog.format(' It is a partition of %s: the policies of a partitioned table do not apply to queries that name a partition.', i.inhparent::regclass) ELSE '' END AS detail,
			pg_catalog.format('SELECT domi.enable_tenant_rls(%L, %L);', c.oid::regclass::text, t.column_name) AS fix
		FROM domi._audited_tenant_tables(col) t JOIN pg_catalog.pg_class c ON c.oid = t.relid
		LEFT JOIN pg_catalog.pg_inherits i ON i.inhrelid = c.oid AND c.relispartition
		WHERE NOT c.relrowsecurity
	UNION ALL
	SELECT 'error', 'rls_not_forced', c.oid::regclass::text,
			pg_catalog.format('Row level security on %s is enabled but not forced: its owner %I (and members of that role) bypass every policy.', c.oid::regclass, c.relowner::regrole),
			pg_catalog.format('ALTER TABLE %s FORCE ROW LEVEL SECURITY;', c.oid::regclass)
		FROM domi._audited_tenant_tables(col) t JOIN pg_catalog.pg_class c ON c.oid = t.relid
		WHERE c.relrowsecurity AND NOT c.relforcerowsecurity
	UNION ALL
	SELECT 'warning', 'rls_enabled_no_policy', c.oid::regclass::text,
			pg_catalog.format('Row level security on %s is enabled but the table has no policy: no role subject to it sees any row.', c.oid::regclass),
			pg_catalog.format('SELECT domi.enable_tenant_rls(%L, %L);', c.oid::regclass::text, t.column_name)
		FROM domi._audited_tenant_tables(col) t JOIN pg_catalog.pg_class c ON c.oid = t.relid
		WHERE c.relrowsecurity
			AND NOT EXISTS (SELECT FROM pg_catalog.pg_policy p WHERE p.polrelid = c.oid)
			AND NOT t.isolated
	UNION ALL
	-- A table domi isolated whose policy is gone (dropped under
	-- domi.allow_drop, or before 0.3.0 guarded it): listed under the tenant
	-- column it was isolated on, whatever domi.tenant_column says.
	SELECT 'error', 'isolation_policy_missing', c.oid::regclass::text,
			pg_catalog.format('Table %s was isolated by domi.enable_tenant_rls() on tenant column %I, but its policy domi_tenant_isolation is gone: %s',
				c.oid::regclass, t.column_name,
				CASE WHEN NOT c.relrowsecurity THEN 'row level security is off too, and every role with privileges on it reads and writes every tenant''s rows.'
					WHEN EXISTS (SELECT FROM pg_catalog.pg_policy p WHERE p.polrelid = c.oid) THEN 'only its other policies decide which rows each role sees.'
					ELSE 'no role subject to row level security sees any of its rows.' END),
			pg_catalog.format('SELECT domi.enable_tenant_rls(%L, %L);', c.oid::regclass::text, t.column_name)
		FROM domi._audited_tenant_tables(col) t JOIN pg_catalog.pg_class c ON c.oid = t.relid
		WHERE t.isolated
			AND NOT EXISTS (SELECT FROM pg_catalog.pg_policy p
				WHERE p.polrelid = c.oid AND p.polname = 'domi_tenant_isolation')
	UNION ALL
	SELECT 'warning', 'unindexed_tenant_column', c.oid::regclass::text,
			pg_catalog.format('No index of %s starts with the tenant column %I: every query under a tenant reads the whole table.', c.oid::regclass, t.column_name),
			pg_catalog.format('CREATE INDEX ON %s (%I);', c.oid::regclass, t.column_name)
		FROM domi._audited_tenant_tables(col) t JOIN pg_catalog.pg_class c ON c.oid = t.relid
		WHERE t.attnum IS NOT NULL AND NOT EXISTS (SELECT FROM pg_catalog.pg_index i
			WHERE i.indrelid = c.oid AND i.indkey[0] = t.attnum AND i.indpred IS NULL)
	UNION ALL
	-- A unique key without the tenant column is shared by all tenants: one
	-- tenant learns another's values from conflicts (ON CONFLICT DO NOTHING
	-- inserts nothing, a plain INSERT fails) and cannot use them itself.
	SELECT 'warning', 'unique_key_without_tenant_column', c.oid::regclass::text,
			pg_catalog.format('Unique index %s on %s does not include the tenant column %I: its values are unique across all tenants, and a conflict tells one tenant that another has the value.', i.indexrelid::regclass, c.oid::regclass, t.column_name),
			CASE WHEN con.conname IS NOT NULL THEN
				pg_catalog.format('ALTER TABLE %s DROP CONSTRAINT %I, ADD CONSTRAINT %I UNIQUE (%I, %s);',
					c.oid::regclass, con.conname, con.conname, t.column_name, cols.list)
			ELSE
				pg_catalog.format('DROP INDEX %s; CREATE UNIQUE INDEX %I ON %s (%I, %s);',
					i.indexrelid::regclass, ic.relname, c.oid::regclass, t.column_name, cols.list)
			END
		FROM domi._audited_tenant_tables(col) t
		JOIN pg_catalog.pg_class c ON c.oid = t.relid
		JOIN pg_catalog.pg_index i ON i.indrelid = c.oid
		JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
		LEFT JOIN pg_catalog.pg_constraint con ON con.conindid = i.indexrelid AND con.contype = 'u'
		CROSS JOIN LATERAL (
			SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY k.ord) AS list
				FROM pg_catalog.unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
				JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum) cols
		WHERE i.indisunique AND NOT i.indisprimary AND i.indexprs IS NULL AND i.indpred IS NULL
			AND NOT t.attnum = ANY (i.indkey::int2[])

	-- Policies read as trees.
	UNION ALL
	SELECT 'error', 'policy_missing_tenant_check',
			pg_catalog.format('%I on %s', p.polname, c.oid::regclass),
			pg_catalog.format('Permissive policy %I on %s does not require %I = domi.current_tenant() (as a condition joined by AND) in its %s: rows of other tenants pass it, and permissive policies are combined with OR.',
				p.polname, c.oid::regclass, t.column_name,
				CASE WHEN p.polqual IS NOT NULL AND NOT domi._policy_compares_tenant(p.polqual, t.attnum)
					THEN 'USING expression' ELSE 'WITH CHECK expression' END),
			pg_catalog.format('DROP POLICY %I ON %s; SELECT domi.enable_tenant_rls(%L, %L);',
				p.polname, c.oid::regclass, c.oid::regclass::text, t.column_name)
		FROM domi._audited_tenant_tables(col) t
		JOIN pg_catalog.pg_class c ON c.oid = t.relid
		JOIN pg_catalog.pg_policy p ON p.polrelid = c.oid
		WHERE p.polpermissive
			AND ((p.polqual IS NOT NULL AND NOT domi._policy_compares_tenant(p.polqual, t.attnum))
				OR (p.polwithcheck IS NOT NULL AND NOT domi._policy_compares_tenant(p.polwithcheck, t.attnum)))

	UNION ALL
	SELECT CASE WHEN calls <@ ARRAY['domi.current_tenant()', 'domi.require_tenant()'] THEN 'info' ELSE 'warning' END,
			'policy_per_row_function_call',
			pg_catalog.format('%I on %s', p.polname, c.oid::regclass),
			pg_catalog.format('Policy %I on %s calls %s for every row; as a sub-select it is evaluated once per query (an initplan).',
				p.polname, c.oid::regclass, pg_catalog.array_to_string(calls, ', ')),
			pg_catalog.format('ALTER POLICY %I ON %s%s%s;', p.polname, c.oid::regclass,
				' USING (' || coalesce(domi._policy_initplan_form(p.polqual, c.oid),
					pg_catalog.pg_get_expr(p.polqual, c.oid)) || ')',
				' WITH CHECK (' || coalesce(domi._policy_initplan_form(p.polwithcheck, c.oid),
					pg_catalog.pg_get_expr(p.polwithcheck, c.oid)) || ')')
		FROM pg_catalog.pg_policy p
		JOIN pg_catalog.pg_class c ON c.oid = p.polrelid
		CROSS JOIN LATERAL (SELECT ARRAY(SELECT DISTINCT x FROM pg_catalog.unnest(
				coalesce(domi._policy_per_row_calls(p.polqual, c.oid), '{}')
				|| coalesce(domi._policy_per_row_calls(p.polwithcheck, c.oid), '{}')) x ORDER BY 1) AS calls) pc
		WHERE pg_catalog.cardinality(pc.calls) > 0

	-- Views that run with their owner's rights over RLS or tenant tables.
	UNION ALL
	SELECT DISTINCT 'error', 'view_not_security_invoker', v.oid::regclass::text,
			pg_catalog.format('View %s reads %s with the rights of its owner %I, not of the querying role: a superuser, BYPASSRLS or table-owning view owner makes it show every tenant''s rows.', v.oid::regclass, c.oid::regclass, v.relowner::regrole),
			pg_catalog.format('ALTER VIEW %s SET (security_invoker = true);', v.oid::regclass)
		FROM pg_catalog.pg_class v
		JOIN pg_catalog.pg_rewrite rw ON rw.ev_class = v.oid
		JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
			AND d.objid = rw.oid AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
		JOIN pg_catalog.pg_class c ON c.oid = d.refobjid AND c.oid <> v.oid
		JOIN pg_catalog.pg_namespace vn ON vn.oid = v.relnamespace
		WHERE v.relkind = 'v'
			AND vn.nspname NOT IN ('pg_catalog', 'information_schema', 'domi')
			AND (c.relrowsecurity OR c.oid IN (SELECT relid FROM domi._audited_tenant_tables(col)))
			AND NOT coalesce(pg_catalog.array_to_string(v.reloptions, ',') ~ '(^|,)security_invoker=(true|on|yes|1)(,|$)', false)

	-- SECURITY DEFINER functions outside the system and extensions.
	UNION ALL
	SELECT 'warning', 'function_search_path_mutable', p.oid::regprocedure::text,
			pg_catalog.format('SECURITY DEFINER function %s does not set search_path: a caller can put its own objects ahead of the ones it means and run them with the owner''s rights.', p.oid::regprocedure),
			pg_catalog.format('ALTER FUNCTION %s SET search_path = pg_catalog, pg_temp;', p.oid::regprocedure)
		FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
		WHERE p.prosecdef AND n.nspname NOT IN ('pg_catalog', 'information_schema')
			AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d
				WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.objid = p.oid AND d.deptype = 'e')
			AND NOT EXISTS (SELECT FROM pg_catalog.unnest(p.proconfig) s WHERE s LIKE 'search\_path=%')
	UNION ALL
	SELECT 'warning', 'security_definer_executable_by_public', p.oid::regprocedure::text,
			pg_catalog.format('SECURITY DEFINER function %s runs with the rights of %I and every role may execute it.', p.oid::regprocedure, p.proowner::regrole),
			pg_catalog.format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC;', p.oid::regprocedure)
		FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
		WHERE p.prosecdef AND n.nspname NOT IN ('pg_catalog', 'information_schema')
			AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d
				WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.objid = p.oid AND d.deptype = 'e')
			AND EXISTS (SELECT FROM pg_catalog.aclexplode(coalesce(p.proacl, pg_catalog.acldefault('f', p.proowner))) a
				WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE')

	-- The application roles.
	UNION ALL
	SELECT 'error', 'app_role_bypasses_rls', pg_catalog.quote_ident(r.rolname),
			pg_catalog.format('Application role %I %s: row level security does not apply to it at all.', r.rolname,
				CASE WHEN r.rolsuper THEN 'is a superuser' ELSE 'has BYPASSRLS' END)
				|| CASE WHEN r.rolcanlogin THEN ' It can log in.' ELSE '' END,
			pg_catalog.format('ALTER ROLE %I %s;', r.rolname, CASE WHEN r.rolsuper THEN 'NOSUPERUSER NOBYPASSRLS' ELSE 'NOBYPASSRLS' END)
		FROM pg_catalog.pg_roles r
		WHERE r.rolname = ANY (app_roles) AND (r.rolsuper OR r.rolbypassrls)
	UNION ALL
	SELECT 'error', 'app_role_owns_tenant_table', c.oid::regclass::text,
			pg_catalog.format('Application role %I %s tenant table %s: an owner can turn FORCE and row level security off and drop the policies%s.',
				r.rolname,
				CASE WHEN r.oid = c.relowner THEN 'owns' ELSE pg_catalog.format('has the rights of %I, owner of', c.relowner::regrole) END,
				c.oid::regclass,
				CASE WHEN c.relforcerowsecurity THEN '' ELSE ', and without FORCE it bypasses them already' END),
			pg_catalog.format('ALTER TABLE %s OWNER TO %I;', c.oid::regclass, current_user)
		FROM pg_catalog.pg_roles r
		CROSS JOIN domi._audited_tenant_tables(col) t
		JOIN pg_catalog.pg_class c ON c.oid = t.relid
		WHERE r.rolname = ANY (app_roles) AND pg_catalog.pg_has_role(r.oid, c.relowner, 'USAGE')
	) f
		ORDER BY CASE f.severity WHEN 'error' THEN 1 WHEN 'warning' THEN 2 ELSE 3 END,
			f.check_name, f.object;
END;
$$;

COMMENT ON FUNCTION domi.rls_audit(name[]) IS 'findings (severity, check_name, object, detail, fix) about tenant isolation; app_roles: the roles the application uses';


--------------------------------------------------------------------------
-- Migration lineage
--------------------------------------------------------------------------

-- domi.lineage_check gains max_findings_per_code: at most that many rows
-- per finding code, then one summary row per code with the count left out,
-- so that a folder with a million broken entries cannot make a backend
-- hold a million findings (issue 18).  A new argument is a new signature:
-- the old function is replaced, and calls with one or two arguments mean
-- what they meant.  Still executable by every role: it reads only the
-- manifest it is given and, with the caller's rights, the migrations table,
-- and its memory is bounded by a small multiple of the manifest.
DROP FUNCTION domi.lineage_check(jsonb, regclass);

CREATE FUNCTION domi.lineage_check(manifest jsonb, migrations_table regclass DEFAULT NULL,
								   max_findings_per_code integer DEFAULT 100)
RETURNS TABLE (severity text, code text, migration text, detail text, fix text)
AS 'MODULE_PATHNAME', 'domi_lineage_check'
LANGUAGE C STABLE;

COMMENT ON FUNCTION domi.lineage_check(jsonb, regclass, integer) IS
'Checks a Drizzle or Prisma migrations folder (the manifest) against itself and against the database''s migrations table; one row per finding, errors first, at most max_findings_per_code (0 to 100000, NULL = 100) per code and then a row with the count left out.';


--------------------------------------------------------------------------
-- Schema truth: the DDL ledger and drift (src/ledger*.c, docs/schema-truth.md)
--------------------------------------------------------------------------

-- Every DDL statement, written by the event triggers below as the table's
-- owner.  A configuration table, so pg_dump keeps the rows; the ids are
-- uuids so that rows restored next to the restore's own DDL never collide.
-- Nobody but the owner reads it: domi.ddl_ledger is the view to grant.
CREATE TABLE domi._ddl_ledger (
	id uuid PRIMARY KEY DEFAULT pg_catalog.gen_random_uuid(),
	at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
	role name NOT NULL,
	session_role name NOT NULL,
	application_name text NOT NULL DEFAULT '',
	xid xid8 NOT NULL,
	command_tag text NOT NULL,
	objects jsonb NOT NULL DEFAULT '[]',
	statement text NOT NULL,
	adopted_by name,
	adopted_at timestamptz,
	adopt_note text
);
-- No other index: every DDL statement pays for each one, and readers look
-- up _migration_xacts by xid, not the ledger.
REVOKE ALL ON domi._ddl_ledger FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('domi._ddl_ledger', '');
COMMENT ON TABLE domi._ddl_ledger IS 'DDL ledger: read domi.ddl_ledger instead';

-- The transactions that recorded a migration, written by the row trigger
-- domi_ledger_migrations on each tracked migrations table: drizzle inserts
-- its row in the transaction that ran the migration's SQL (xid); Prisma
-- runs the script between inserting its row and setting finished_at, in
-- other transactions, so for Prisma the window started_at..finished_at.
CREATE TABLE domi._migration_xacts (
	xid xid8,
	started_at timestamptz,
	finished_at timestamptz,
	tbl text NOT NULL,
	migration text,
	recorded_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE INDEX _migration_xacts_xid ON domi._migration_xacts (xid);
REVOKE ALL ON domi._migration_xacts FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('domi._migration_xacts', '');
COMMENT ON TABLE domi._migration_xacts IS 'transactions (drizzle) and time windows (Prisma) in which migrations were recorded';

-- The row trigger function.  SECURITY DEFINER: the migrator's role needs
-- no privilege on domi's tables.  Identifies the migration by drizzle's
-- hash or Prisma's migration_name.
CREATE FUNCTION domi._ledger_migration_row() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r jsonb := pg_catalog.to_jsonb(NEW);
	name text := COALESCE(r OPERATOR(pg_catalog.->>) 'hash', r OPERATOR(pg_catalog.->>) 'migration_name',
		r OPERATOR(pg_catalog.->>) 'id');
	tbl text := pg_catalog.format('%I.%I', TG_TABLE_SCHEMA, TG_TABLE_NAME);
BEGIN
	IF TG_OP = 'INSERT' THEN
		INSERT INTO domi._migration_xacts (xid, tbl, migration)
		VALUES (pg_catalog.pg_current_xact_id(), tbl, name);
	END IF;
	IF r ? 'started_at' AND (r OPERATOR(pg_catalog.->>) 'finished_at') IS NOT NULL
		AND (TG_OP = 'INSERT' OR (pg_catalog.to_jsonb(OLD) OPERATOR(pg_catalog.->>) 'finished_at') IS NULL) THEN
		INSERT INTO domi._migration_xacts (tbl, migration, started_at, finished_at)
		VALUES (tbl, name, (r OPERATOR(pg_catalog.->>) 'started_at')::timestamptz,
			(r OPERATOR(pg_catalog.->>) 'finished_at')::timestamptz);
	END IF;
	RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION domi._ledger_migration_row() FROM PUBLIC;

-- Track a migrations table: its inserts mark their transactions in-chain.
-- Owner-only.  The ledger calls the internal variant by itself when a
-- statement creates a table named __drizzle_migrations or
-- _prisma_migrations; it never fails the user's statement.  The trigger is
-- internal (src/ledger.c): pg_dump leaves it out, so a restore does not
-- collide with the one the restored CREATE TABLE gets; a table of another
-- name needs domi.track_migrations() again after a restore.
CREATE FUNCTION domi._ledger_track(tbl regclass) RETURNS void
	LANGUAGE C STRICT
	AS 'MODULE_PATHNAME', 'domi_ledger_track';
REVOKE ALL ON FUNCTION domi._ledger_track(regclass) FROM PUBLIC;

CREATE FUNCTION domi._ledger_tracked(tbl regclass) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT EXISTS (SELECT 1 FROM pg_trigger t
		WHERE t.tgrelid = tbl AND t.tgfoid = 'domi._ledger_migration_row()'::regprocedure)
$$;

CREATE FUNCTION domi.track_migrations(tbl regclass) RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF tbl IS NULL THEN
		RAISE EXCEPTION 'migrations table must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF NOT pg_has_role((SELECT c.relowner FROM pg_class c WHERE c.oid = tbl), 'USAGE') THEN
		RAISE EXCEPTION 'must be owner of table %', tbl USING ERRCODE = 'insufficient_privilege';
	END IF;
	IF domi._ledger_tracked(tbl) THEN
		RETURN false;
	END IF;
	PERFORM domi._ledger_track(tbl);
	RETURN true;
END
$$;
REVOKE ALL ON FUNCTION domi.track_migrations(regclass) FROM PUBLIC;
COMMENT ON FUNCTION domi.track_migrations(regclass) IS 'record the transactions that insert into this migrations table, so that their DDL counts as in-chain; true if newly tracked';

CREATE FUNCTION domi._ledger_track_created(tbl oid) RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT domi._ledger_track(tbl::regclass) WHERE NOT domi._ledger_tracked(tbl::regclass)
$$;
REVOKE ALL ON FUNCTION domi._ledger_track_created(oid) FROM PUBLIC;

-- An update from 0.2.0 tracks the migrations tables that exist already.
SELECT domi._ledger_track(c.oid)
FROM pg_catalog.pg_class c
WHERE c.relname OPERATOR(pg_catalog.=) ANY (ARRAY['__drizzle_migrations', '_prisma_migrations']::pg_catalog.name[])
  AND c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p']::"char"[])
  AND NOT domi._ledger_tracked(c.oid);

-- The migrator's own bookkeeping is in-chain: creating a tracked migrations
-- table, its sequence and index, and its schema.
CREATE FUNCTION domi._ledger_bookkeeping(objects jsonb) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT jsonb_array_length(objects) > 0 AND NOT EXISTS (
		SELECT 1 FROM jsonb_array_elements(objects) o
		WHERE NOT EXISTS (
			SELECT 1
			FROM pg_trigger t
			JOIN pg_class c ON c.oid = t.tgrelid
			JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE t.tgfoid = 'domi._ledger_migration_row()'::regprocedure
			  AND ((o->>'type' = 'schema' AND o->>'identity' = quote_ident(n.nspname))
				OR (o->>'type' IN ('table', 'sequence', 'index')
					AND (to_regclass(o->>'identity') = c.oid
						OR EXISTS (SELECT 1 FROM pg_depend d
							WHERE d.classid = 'pg_class'::regclass AND d.objid = to_regclass(o->>'identity')
							  AND d.refclassid = 'pg_class'::regclass AND d.refobjid = c.oid)
						OR EXISTS (SELECT 1 FROM pg_index i
							WHERE i.indexrelid = to_regclass(o->>'identity') AND i.indrelid = c.oid))))))
$$;
REVOKE ALL ON FUNCTION domi._ledger_bookkeeping(jsonb) FROM PUBLIC;

-- The ledger as people read it.  in_chain: the statement's transaction
-- recorded a migration (or ran inside a Prisma migration's window), or it
-- is the migrator's bookkeeping.  Not readable by PUBLIC: statements name
-- objects and hold code; GRANT SELECT to the roles that audit.
CREATE VIEW domi.ddl_ledger AS
	SELECT l.id, l.at, l.role, l.session_role, l.application_name, l.xid,
		l.command_tag, l.objects, l.statement,
		(m.migration IS NOT NULL OR domi._ledger_bookkeeping(l.objects)) AS in_chain,
		m.migration,
		l.adopted_by, l.adopted_at, l.adopt_note
	FROM domi._ddl_ledger l
	LEFT JOIN LATERAL (
		SELECT COALESCE(
			(SELECT COALESCE(x.migration, x.tbl) FROM domi._migration_xacts x
				WHERE x.xid OPERATOR(pg_catalog.=) l.xid LIMIT 1),
			(SELECT COALESCE(x.migration, x.tbl) FROM domi._migration_xacts x
				WHERE x.xid IS NULL AND l.at OPERATOR(pg_catalog.>=) x.started_at
				  AND l.at OPERATOR(pg_catalog.<=) x.finished_at LIMIT 1)) AS migration
	) m ON true;
REVOKE ALL ON domi.ddl_ledger FROM PUBLIC;
COMMENT ON VIEW domi.ddl_ledger IS 'every DDL statement: when, who, what, the objects, the text (secrets redacted), and whether a migration accounts for it';

-- Adopt a statement once a migration accounts for it: its finding goes
-- away, with who adopted it, when and why.  Granted by the owner.
CREATE FUNCTION domi.adopt_ddl(id uuid, note text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF id IS NULL THEN
		RAISE EXCEPTION 'ledger id must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF note IS NULL OR btrim(note) = '' THEN
		RAISE EXCEPTION 'adopting a DDL statement needs a note'
			USING ERRCODE = 'null_value_not_allowed',
				HINT = 'Say which migration now accounts for it.';
	END IF;
	UPDATE domi._ddl_ledger l SET adopted_by = session_user, adopted_at = now(), adopt_note = note
	WHERE l.id = adopt_ddl.id AND l.adopted_at IS NULL;
	IF FOUND THEN
		RETURN true;
	END IF;
	IF NOT EXISTS (SELECT 1 FROM domi._ddl_ledger l WHERE l.id = adopt_ddl.id) THEN
		RAISE EXCEPTION 'DDL ledger entry "%" does not exist', id USING ERRCODE = 'undefined_object';
	END IF;
	RETURN false;
END
$$;
REVOKE ALL ON FUNCTION domi.adopt_ddl(uuid, text) FROM PUBLIC;
COMMENT ON FUNCTION domi.adopt_ddl(uuid, text) IS 'mark an out-of-chain DDL statement as accounted for by a migration; false if it already was';

-- Retention: delete what is older than the interval.  With the caller's
-- rights, so only the ledger's owner (DELETE on it) can.
CREATE FUNCTION domi.prune_ddl_ledger(older_than interval) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n bigint;
BEGIN
	IF older_than IS NULL OR older_than < interval '0' THEN
		RAISE EXCEPTION 'retention interval must be zero or positive' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	DELETE FROM domi._ddl_ledger WHERE at < now() - older_than;
	GET DIAGNOSTICS n = ROW_COUNT;
	DELETE FROM domi._migration_xacts WHERE recorded_at < now() - older_than;
	RETURN n;
END
$$;
REVOKE ALL ON FUNCTION domi.prune_ddl_ledger(interval) FROM PUBLIC;
COMMENT ON FUNCTION domi.prune_ddl_ledger(interval) IS 'delete ledger entries older than the interval (owner only); returns how many';

-- Out-of-chain DDL as lineage findings, oldest first.  A caller who may
-- not read the ledger gets one info finding saying so, not an error.
CREATE FUNCTION domi.ddl_ledger_findings()
RETURNS TABLE (severity text, code text, migration text, detail text, fix text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NOT has_table_privilege('domi.ddl_ledger', 'SELECT') THEN
		RETURN QUERY SELECT 'info'::text, 'ddl_ledger_not_readable'::text, NULL::text,
			format('Role %s may not read domi.ddl_ledger: DDL run outside migrations was not checked.', current_user),
			'GRANT SELECT ON domi.ddl_ledger TO the role that checks lineage.'::text;
		RETURN;
	END IF;
	RETURN QUERY
	SELECT 'warning'::text, 'out_of_chain_ddl'::text, NULL::text,
		format('%s by %s%s at %s (transaction %s, application %s) on %s, no migration accounts for it: %s',
			l.command_tag, quote_ident(l.role),
			CASE WHEN l.session_role <> l.role THEN format(' (session %s)', quote_ident(l.session_role)) ELSE '' END,
			to_char(l.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), l.xid,
			quote_literal(l.application_name),
			COALESCE((SELECT string_agg(DISTINCT o->>'identity', ', ')
				FROM jsonb_array_elements(l.objects) o WHERE o->>'identity' IS NOT NULL), '(no named object)'),
			CASE WHEN length(l.statement) > 300
				THEN left(regexp_replace(l.statement, '\s+', ' ', 'g'), 300) || '...'
				ELSE regexp_replace(l.statement, '\s+', ' ', 'g') END),
		format('Write a migration that does the same (drizzle-kit generate --custom), then adopt the statement: SELECT domi.adopt_ddl(%L, ''<migration>'');', l.id)
	FROM domi.ddl_ledger l
	WHERE NOT l.in_chain AND l.adopted_at IS NULL
	  AND l.objects <> '[]'::jsonb
	  -- temporary objects are not schema
	  AND EXISTS (SELECT 1 FROM jsonb_array_elements(l.objects) o
			WHERE COALESCE(o->>'identity', '') NOT LIKE 'pg\_temp%')
	ORDER BY l.at, l.id;
END
$$;
COMMENT ON FUNCTION domi.ddl_ledger_findings() IS 'out-of-chain DDL statements that no one adopted, as lineage findings (out_of_chain_ddl)';

-- The event triggers.  ENABLE ALWAYS, like the drop guard's.  They do not
-- exist until this script creates them, so CREATE EXTENSION domi itself is
-- not recorded; the commands of any extension script are not either (only
-- the CREATE or ALTER EXTENSION statement that ran it).
CREATE FUNCTION domi._ledger_ddl_end() RETURNS event_trigger
	LANGUAGE C
	AS 'MODULE_PATHNAME', 'domi_ledger_ddl_end';

CREATE FUNCTION domi._ledger_sql_drop() RETURNS event_trigger
	LANGUAGE C
	AS 'MODULE_PATHNAME', 'domi_ledger_sql_drop';

CREATE EVENT TRIGGER domi_ddl_ledger ON ddl_command_end
	EXECUTE FUNCTION domi._ledger_ddl_end();
ALTER EVENT TRIGGER domi_ddl_ledger ENABLE ALWAYS;

CREATE EVENT TRIGGER domi_ddl_ledger_drop ON sql_drop
	EXECUTE FUNCTION domi._ledger_sql_drop();
ALTER EVENT TRIGGER domi_ddl_ledger_drop ENABLE ALWAYS;

-- Drift: the live catalog against a drizzle snapshot (meta/NNNN_snapshot.json).

-- Does a live column's type match a drizzle snapshot column's "type"
-- (and "typeSchema", for enums and types in a schema)?  Drizzle writes
-- SQL spellings ("serial", "varchar(100)", "numeric(10, 2)", "timestamp
-- with time zone", "text[]"); we resolve the base name with to_regtype()
-- and compare type OIDs, then the modifiers as written.
CREATE FUNCTION domi._drizzle_type_matches(col jsonb, typid oid, typmod int4) RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	want text := lower(btrim(regexp_replace(col->>'type', '\s+', ' ', 'g')));
	type_schema text := col->>'typeSchema';
	dims int := 0;
	base text;
	mods text;
	want_oid oid;
	live text := format_type(typid, typmod);
	live_elem oid := typid;
	live_dims int := 0;
BEGIN
	IF want IS NULL THEN
		RETURN false;
	END IF;
	want := replace(replace(want, ', ', ','), ' (', '(');
	WHILE right(want, 2) = '[]' LOOP
		want := left(want, -2);
		dims := dims + 1;
	END LOOP;
	WHILE (SELECT t.typcategory = 'A' AND t.typelem <> 0 FROM pg_type t WHERE t.oid = live_elem) LOOP
		live_elem := (SELECT t.typelem FROM pg_type t WHERE t.oid = live_elem);
		live_dims := live_dims + 1;
	END LOOP;
	-- Array dimensions are not enforced by PostgreSQL: text[][] is text[].
	IF (dims > 0) <> (live_dims > 0) THEN
		RETURN false;
	END IF;
	base := btrim(regexp_replace(want, '\(.*\)', ''));
	mods := substring(want from '\(([^)]*)\)');
	base := CASE base WHEN 'serial' THEN 'integer' WHEN 'serial4' THEN 'integer'
		WHEN 'bigserial' THEN 'bigint' WHEN 'serial8' THEN 'bigint'
		WHEN 'smallserial' THEN 'smallint' WHEN 'serial2' THEN 'smallint'
		WHEN 'char' THEN 'character' ELSE base END;
	IF type_schema IS NOT NULL AND type_schema <> '' THEN
		base := regexp_replace(base, '^.*\.', '');	-- "app.mood" or "mood"
		RETURN EXISTS (SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
			WHERE t.oid = live_elem AND n.nspname = type_schema AND t.typname = btrim(base, '"'));
	END IF;
	-- "timestamp(3) with time zone": the modifier sits inside the name
	base := btrim(regexp_replace(base, '\s+', ' ', 'g'));
	want_oid := to_regtype(base);
	IF want_oid IS NULL THEN
		-- not a type PostgreSQL knows by that name here: compare the spelling
		RETURN EXISTS (SELECT 1 FROM pg_type t WHERE t.oid = live_elem AND t.typname = btrim(base, '"'))
			AND COALESCE(mods, '') = COALESCE(substring(replace(live, ', ', ',') from '\(([^)]*)\)'), '');
	END IF;
	RETURN want_oid = live_elem
		AND COALESCE(mods, '') = COALESCE(substring(replace(live, ', ', ',') from '\(([^)]*)\)'), '');
END
$$;

-- Types drizzle-orm's pg-core can declare (format_type names, arrays and
-- enums apart).  A column of any other type cannot be in a drizzle schema
-- short of a customType, so drizzle-kit push drops it.
CREATE FUNCTION domi._drizzle_modelled(typid oid) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT EXISTS (
		SELECT 1 FROM pg_type t
		WHERE t.oid = CASE WHEN (SELECT typcategory = 'A' FROM pg_type WHERE oid = typid)
				THEN (SELECT typelem FROM pg_type WHERE oid = typid) ELSE typid END
		  AND (t.typtype = 'e'
			OR (t.typnamespace = 'pg_catalog'::regnamespace AND t.typname IN (
				'int2', 'int4', 'int8', 'bool', 'text', 'varchar', 'bpchar', 'numeric',
				'float4', 'float8', 'json', 'jsonb', 'date', 'time', 'timetz',
				'timestamp', 'timestamptz', 'interval', 'uuid', 'inet', 'cidr',
				'macaddr', 'macaddr8', 'point', 'line', 'bit', 'varbit'))))
$$;

-- Defaults compare without the casts PostgreSQL adds ('a'::text).
CREATE FUNCTION domi._drift_default(expr text) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT NULLIF(btrim(regexp_replace(regexp_replace(expr,
		'::"?[\w.]+"?( \w+)*(\([0-9, ]*\))?(\[\])*', '', 'g'), '^\((.*)\)$', '\1')), '')
$$;

CREATE FUNCTION domi._drift_fk_action(action "char") RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT CASE action WHEN 'a' THEN 'no action' WHEN 'r' THEN 'restrict' WHEN 'c' THEN 'cascade'
		WHEN 'n' THEN 'set null' WHEN 'd' THEN 'set default' END
$$;

CREATE FUNCTION domi.schema_drift(snapshot jsonb)
RETURNS TABLE (severity text, code text, migration text, detail text, fix text)
LANGUAGE sql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
WITH snap_tables AS (
	SELECT COALESCE(NULLIF(t.value->>'schema', ''), 'public') AS nsp,
		t.value->>'name' AS relname, t.value AS def
	FROM jsonb_each(CASE WHEN jsonb_typeof(snapshot->'tables') = 'object'
		THEN snapshot->'tables' ELSE '{}' END) t
	WHERE jsonb_typeof(t.value) = 'object' AND t.value ? 'name'
), tables AS (
	SELECT s.*, format('%I.%I', s.nsp, s.relname) AS qname, c.oid AS relid
	FROM snap_tables s
	LEFT JOIN pg_namespace n ON n.nspname = s.nsp
	LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.relname
		AND c.relkind IN ('r', 'p')
), snap_cols AS (
	SELECT t.qname, t.relid, col.value->>'name' AS colname, col.value AS def
	FROM tables t, jsonb_each(CASE WHEN jsonb_typeof(t.def->'columns') = 'object'
		THEN t.def->'columns' ELSE '{}' END) col
	WHERE t.relid IS NOT NULL
), live_cols AS (
	SELECT t.qname, t.relid, a.attname::text AS colname, a.atttypid, a.atttypmod,
		a.attnotnull, a.attidentity, a.attgenerated,
		format_type(a.atttypid, a.atttypmod) AS live_type,
		pg_get_expr(d.adbin, d.adrelid) AS live_default
	FROM tables t
	JOIN pg_attribute a ON a.attrelid = t.relid AND a.attnum > 0 AND NOT a.attisdropped
	LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
), cols AS (
	SELECT s.qname, s.colname, s.def, l.atttypid, l.atttypmod, l.attnotnull,
		l.attidentity, l.attgenerated, l.live_type, l.live_default,
		l.colname IS NOT NULL AS live
	FROM snap_cols s
	LEFT JOIN live_cols l ON l.relid = s.relid AND l.colname = s.colname
), live_cons AS (
	SELECT t.qname, t.relid, k.conname::text AS conname, k.contype,
		ARRAY(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY u(attnum, i)
			JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.attnum ORDER BY u.i) AS cols,
		k.confrelid, k.confdeltype, k.confupdtype,
		ARRAY(SELECT a.attname::text FROM unnest(k.confkey) WITH ORDINALITY u(attnum, i)
			JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.attnum ORDER BY u.i) AS ref_cols,
		k.conindid
	FROM tables t JOIN pg_constraint k ON k.conrelid = t.relid
), snap_pk AS (
	SELECT t.qname,
		COALESCE((SELECT array_agg(c.value->>'name' ORDER BY c.value->>'name')
			FROM jsonb_each(t.def->'columns') c WHERE (c.value->>'primaryKey')::boolean),
			(SELECT array_agg(x ORDER BY x) FROM jsonb_each(t.def->'compositePrimaryKeys') p,
				jsonb_array_elements_text(p.value->'columns') x)) AS cols
	FROM tables t WHERE t.relid IS NOT NULL
), snap_unique AS (
	SELECT t.qname, u.value->>'name' AS conname,
		ARRAY(SELECT jsonb_array_elements_text(u.value->'columns')) AS cols
	FROM tables t, jsonb_each(CASE WHEN jsonb_typeof(t.def->'uniqueConstraints') = 'object'
		THEN t.def->'uniqueConstraints' ELSE '{}' END) u
	WHERE t.relid IS NOT NULL
	UNION ALL
	SELECT t.qname, COALESCE(c.value->>'uniqueName', format('%s_%s_unique', t.relname, c.value->>'name')),
		ARRAY[c.value->>'name']
	FROM tables t, jsonb_each(t.def->'columns') c
	WHERE t.relid IS NOT NULL AND (c.value->>'isUnique')::boolean
), snap_fks AS (
	SELECT t.qname, f.value->>'name' AS conname,
		ARRAY(SELECT jsonb_array_elements_text(f.value->'columnsFrom')) AS cols,
		format('%I.%I', COALESCE(NULLIF(f.value->>'schemaTo', ''), 'public'), f.value->>'tableTo') AS ref,
		ARRAY(SELECT jsonb_array_elements_text(f.value->'columnsTo')) AS ref_cols,
		COALESCE(f.value->>'onDelete', 'no action') AS on_delete,
		COALESCE(f.value->>'onUpdate', 'no action') AS on_update
	FROM tables t, jsonb_each(CASE WHEN jsonb_typeof(t.def->'foreignKeys') = 'object'
		THEN t.def->'foreignKeys' ELSE '{}' END) f
	WHERE t.relid IS NOT NULL
), snap_indexes AS (
	SELECT t.qname, t.relid, i.value->>'name' AS idxname,
		COALESCE((i.value->>'isUnique')::boolean, false) AS is_unique
	FROM tables t, jsonb_each(CASE WHEN jsonb_typeof(t.def->'indexes') = 'object'
		THEN t.def->'indexes' ELSE '{}' END) i
	WHERE t.relid IS NOT NULL
), live_indexes AS (
	SELECT t.qname, t.relid, c.relname::text AS idxname, i.indisunique
	FROM tables t JOIN pg_index i ON i.indrelid = t.relid
	JOIN pg_class c ON c.oid = i.indexrelid
	WHERE NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid
		AND k.conrelid = t.relid AND k.contype IN ('p', 'u', 'x'))
), snap_enums AS (
	SELECT COALESCE(NULLIF(e.value->>'schema', ''), 'public') AS nsp, e.value->>'name' AS typname,
		ARRAY(SELECT jsonb_array_elements_text(e.value->'values')) AS labels
	FROM jsonb_each(CASE WHEN jsonb_typeof(snapshot->'enums') = 'object'
		THEN snapshot->'enums' ELSE '{}' END) e
), findings AS (
	-- tables
	SELECT 1 AS ord, 'error' AS severity, 'drift_table_missing' AS code,
		format('Table %s is in the snapshot but not in the database.', t.qname) AS detail,
		'Run the migration that creates it, or find who dropped it in domi.ddl_ledger.' AS fix
	FROM tables t WHERE t.relid IS NULL
	UNION ALL
	-- columns
	SELECT 2, 'error', 'drift_column_missing',
		format('Column %s.%I (%s) is in the snapshot but not in the database.', c.qname, c.colname, c.def->>'type'),
		'Restore it with a migration, or generate one that drops it so the snapshot agrees.'
	FROM cols c WHERE NOT c.live
	UNION ALL
	SELECT 3, 'error', 'drift_column_type',
		format('Column %s.%I is %s in the database but %s in the snapshot.', c.qname, c.colname, c.live_type, c.def->>'type'),
		'Write a migration for the type change (drizzle-kit generate), or change the schema back.'
	FROM cols c WHERE c.live AND NOT domi._drizzle_type_matches(c.def, c.atttypid, c.atttypmod)
	UNION ALL
	SELECT 4, 'warning', 'drift_column_nullable',
		format('Column %s.%I is %s in the database but %s in the snapshot.', c.qname, c.colname,
			CASE WHEN c.attnotnull THEN 'NOT NULL' ELSE 'nullable' END,
			CASE WHEN c.attnotnull THEN 'nullable' ELSE 'NOT NULL' END),
		'Write a migration that sets or drops NOT NULL, or change the schema to match.'
	FROM cols c
	WHERE c.live AND c.attnotnull <> COALESCE((c.def->>'notNull')::boolean OR (c.def->>'primaryKey')::boolean, false)
	UNION ALL
	SELECT 5, 'warning', 'drift_column_default',
		format('Column %s.%I has default %s in the database but %s in the snapshot.', c.qname, c.colname,
			COALESCE(c.live_default, 'none'), COALESCE(c.def->>'default', 'none')),
		'Write a migration that sets the default, or change the schema to match.'
	FROM cols c
	WHERE c.live AND c.attidentity = '' AND c.attgenerated = ''
	  AND lower(c.def->>'type') NOT IN ('serial', 'bigserial', 'smallserial')
	  AND domi._drift_default(c.live_default) IS DISTINCT FROM domi._drift_default(c.def->>'default')
	UNION ALL
	SELECT 6, CASE WHEN domi._drizzle_modelled(l.atttypid) THEN 'warning' ELSE 'error' END,
		CASE WHEN domi._drizzle_modelled(l.atttypid) THEN 'drift_column_extra' ELSE 'drift_unmodelled_type' END,
		CASE WHEN domi._drizzle_modelled(l.atttypid)
			THEN format('Column %s.%I (%s) is in the database but not in the snapshot: drizzle-kit push would drop it.',
				l.qname, l.colname, l.live_type)
			ELSE format('Column %s.%I is of type %s, which drizzle cannot model (unmodelled, would be dropped by drizzle-kit push).',
				l.qname, l.colname, l.live_type) END,
		CASE WHEN domi._drizzle_modelled(l.atttypid)
			THEN 'Add it to the drizzle schema and generate a migration, or drop it in one.'
			ELSE 'Declare it with a drizzle customType so the schema has it, and never run drizzle-kit push against this database.' END
	FROM live_cols l
	WHERE NOT EXISTS (SELECT 1 FROM snap_cols s WHERE s.relid = l.relid AND s.colname = l.colname)
	UNION ALL
	-- keys
	SELECT 7, 'error', 'drift_primary_key',
		format('Table %s has primary key (%s) in the database but (%s) in the snapshot.', p.qname,
			COALESCE((SELECT array_to_string(array_agg(x ORDER BY x), ', ') FROM live_cons k, unnest(k.cols) x
				WHERE k.qname = p.qname AND k.contype = 'p'), 'none'),
			COALESCE(array_to_string(p.cols, ', '), 'none')),
		'Write a migration for the primary key, or change the schema to match.'
	FROM snap_pk p
	WHERE p.cols IS DISTINCT FROM (SELECT array_agg(x ORDER BY x) FROM live_cons k, unnest(k.cols) x
		WHERE k.qname = p.qname AND k.contype = 'p')
	UNION ALL
	SELECT 8, 'warning', 'drift_unique_missing',
		format('Unique constraint %I on %s (%s) is in the snapshot but not in the database.', u.conname, u.qname,
			array_to_string(u.cols, ', ')),
		'Run the migration that creates it, or generate one that drops it.'
	FROM snap_unique u
	WHERE NOT EXISTS (SELECT 1 FROM live_cons k WHERE k.qname = u.qname AND k.contype = 'u'
		AND k.conname = u.conname AND k.cols = u.cols)
	UNION ALL
	SELECT 9, 'warning', 'drift_unique_extra',
		format('Unique constraint %I on %s (%s) is in the database but not in the snapshot: drizzle-kit push would drop it.',
			k.conname, k.qname, array_to_string(k.cols, ', ')),
		'Add it to the drizzle schema (unique()) and generate a migration.'
	FROM live_cons k
	WHERE k.contype = 'u' AND NOT EXISTS (SELECT 1 FROM snap_unique u WHERE u.qname = k.qname AND u.conname = k.conname)
	UNION ALL
	SELECT 10, 'error', 'drift_foreign_key_missing',
		format('Foreign key %I on %s (%s) references %s (%s) in the snapshot but is not in the database.',
			f.conname, f.qname, array_to_string(f.cols, ', '), f.ref, array_to_string(f.ref_cols, ', ')),
		'Run the migration that creates it, or generate one that drops it.'
	FROM snap_fks f
	WHERE NOT EXISTS (SELECT 1 FROM live_cons k WHERE k.qname = f.qname AND k.contype = 'f' AND k.conname = f.conname)
	UNION ALL
	SELECT 11, 'error', 'drift_foreign_key',
		format('Foreign key %I on %s is (%s) -> %s (%s) ON DELETE %s ON UPDATE %s in the database but (%s) -> %s (%s) ON DELETE %s ON UPDATE %s in the snapshot.',
			f.conname, f.qname, array_to_string(k.cols, ', '), k.confrelid::regclass, array_to_string(k.ref_cols, ', '),
			domi._drift_fk_action(k.confdeltype), domi._drift_fk_action(k.confupdtype),
			array_to_string(f.cols, ', '), f.ref, array_to_string(f.ref_cols, ', '), f.on_delete, f.on_update),
		'Write a migration that recreates the foreign key, or change the schema to match.'
	FROM snap_fks f JOIN live_cons k ON k.qname = f.qname AND k.contype = 'f' AND k.conname = f.conname
	WHERE k.cols <> f.cols OR k.ref_cols <> f.ref_cols OR k.confrelid <> to_regclass(f.ref)
		OR domi._drift_fk_action(k.confdeltype) <> lower(f.on_delete)
		OR domi._drift_fk_action(k.confupdtype) <> lower(f.on_update)
	UNION ALL
	SELECT 12, 'warning', 'drift_foreign_key_extra',
		format('Foreign key %I on %s (%s) -> %s is in the database but not in the snapshot: drizzle-kit push would drop it.',
			k.conname, k.qname, array_to_string(k.cols, ', '), k.confrelid::regclass),
		'Add it to the drizzle schema (references()) and generate a migration.'
	FROM live_cons k
	WHERE k.contype = 'f' AND NOT EXISTS (SELECT 1 FROM snap_fks f WHERE f.qname = k.qname AND f.conname = k.conname)
	UNION ALL
	-- indexes
	SELECT 13, 'warning', 'drift_index_missing',
		format('Index %I on %s is in the snapshot but not in the database.', i.idxname, i.qname),
		'Run the migration that creates it, or generate one that drops it.'
	FROM snap_indexes i
	WHERE NOT EXISTS (SELECT 1 FROM live_indexes l WHERE l.relid = i.relid AND l.idxname = i.idxname)
	UNION ALL
	SELECT 14, 'warning', 'drift_index',
		format('Index %I on %s is %s in the database but %s in the snapshot.', i.idxname, i.qname,
			CASE WHEN l.indisunique THEN 'unique' ELSE 'not unique' END,
			CASE WHEN i.is_unique THEN 'unique' ELSE 'not unique' END),
		'Write a migration that recreates the index, or change the schema to match.'
	FROM snap_indexes i JOIN live_indexes l ON l.relid = i.relid AND l.idxname = i.idxname
	WHERE l.indisunique <> i.is_unique
	UNION ALL
	SELECT 15, 'warning', 'drift_index_extra',
		format('Index %I on %s is in the database but not in the snapshot: drizzle-kit push would drop it.', l.idxname, l.qname),
		'Add it to the drizzle schema (index()) and generate a migration.'
	FROM live_indexes l
	WHERE NOT EXISTS (SELECT 1 FROM snap_indexes i WHERE i.relid = l.relid AND i.idxname = l.idxname)
	UNION ALL
	-- enums
	SELECT 16, 'error', 'drift_enum_missing',
		format('Enum %I.%I is in the snapshot but not in the database.', e.nsp, e.typname),
		'Run the migration that creates it, or generate one that drops it.'
	FROM snap_enums e
	WHERE NOT EXISTS (SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
		WHERE n.nspname = e.nsp AND t.typname = e.typname AND t.typtype = 'e')
	UNION ALL
	SELECT 17, 'error', 'drift_enum_values',
		format('Enum %I.%I has values (%s) in the database but (%s) in the snapshot.', e.nsp, e.typname,
			array_to_string(lv.labels, ', '), array_to_string(e.labels, ', ')),
		'Write a migration that adds the values (ALTER TYPE ... ADD VALUE), or change the schema to match.'
	FROM snap_enums e
	JOIN pg_namespace n ON n.nspname = e.nsp
	JOIN pg_type t ON t.typnamespace = n.oid AND t.typname = e.typname AND t.typtype = 'e'
	CROSS JOIN LATERAL (SELECT ARRAY(SELECT x.enumlabel::text FROM pg_enum x WHERE x.enumtypid = t.oid
		ORDER BY x.enumsortorder) AS labels) lv
	WHERE lv.labels <> e.labels
)
SELECT f.severity, f.code, NULL::text, f.detail, f.fix
FROM findings f
ORDER BY CASE f.severity WHEN 'error' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END, f.ord, f.detail
$$;
COMMENT ON FUNCTION domi.schema_drift(jsonb) IS 'differences between the live catalog and a drizzle snapshot''s tables and enums, as findings (drift_*)';

-- The snapshot of the newest migration the database has applied, from the
-- manifest (NULL for Prisma, or when it cannot be told).  Drizzle's
-- migrator applies a journal entry when its "when" is newer than the
-- newest created_at in the migrations table, so the applied ones are
-- those with "when" <= that.
CREATE FUNCTION domi._applied_snapshot(manifest jsonb, migrations_table regclass) RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	tbl regclass := COALESCE(migrations_table, to_regclass('drizzle.__drizzle_migrations'));
	journal jsonb;
	last_when numeric;
	tag text;
	snap text;
BEGIN
	IF COALESCE(manifest->>'format', 'drizzle') <> 'drizzle' OR tbl IS NULL
		OR NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = tbl AND attname = 'created_at' AND NOT attisdropped) THEN
		RETURN NULL;
	END IF;
	BEGIN
		journal := (manifest->'files'->>'meta/_journal.json')::jsonb;
	EXCEPTION WHEN invalid_text_representation THEN
		RETURN NULL;		-- lineage_check reports the journal itself
	END;
	EXECUTE format('SELECT max(created_at)::numeric FROM %s', tbl) INTO last_when;
	IF last_when IS NULL OR jsonb_typeof(journal->'entries') IS DISTINCT FROM 'array' THEN
		RETURN NULL;
	END IF;
	SELECT e->>'tag' INTO tag
	FROM jsonb_array_elements(journal->'entries') e
	WHERE jsonb_typeof(e->'when') = 'number' AND (e->>'when')::numeric <= last_when
	ORDER BY (e->>'when')::numeric DESC LIMIT 1;
	snap := manifest->'files'->>format('meta/%s_snapshot.json', split_part(tag, '_', 1));
	IF snap IS NULL THEN
		RETURN NULL;
	END IF;
	BEGIN
		RETURN snap::jsonb;
	EXCEPTION WHEN invalid_text_representation THEN
		RETURN NULL;
	END;
END
$$;

-- domi.lineage_check (src/lineage.c) adds these findings, through
-- src/ledger_lineage.c, when the manifest says "schema_truth": true
-- (domi-lineage --schema-truth); without it, its findings are as before.
COMMENT ON FUNCTION domi.lineage_check(jsonb, regclass, integer) IS
'Checks a Drizzle or Prisma migrations folder (the manifest) against itself and against the database''s migrations table, and, with "schema_truth": true in the manifest, the newest applied drizzle snapshot against the live schema (drift_*) and DDL that no migration accounts for (out_of_chain_ddl); one row per finding, errors first, at most max_findings_per_code (0 to 100000, NULL = 100) per code and then a row with the count left out.';

-- (end of schema truth)


--------------------------------------------------------------------------
-- Privileges of internal helpers
--------------------------------------------------------------------------

-- The event trigger functions run for every role's DDL without an EXECUTE
-- check (PostgreSQL checks none when an event trigger fires), so no role
-- needs the right to call them directly.
REVOKE ALL ON FUNCTION domi._rls_guard() FROM PUBLIC;
REVOKE ALL ON FUNCTION domi._drop_guard_sql_drop() FROM PUBLIC;
REVOKE ALL ON FUNCTION domi._drop_guard_ddl_end() FROM PUBLIC;
REVOKE ALL ON FUNCTION domi._drop_guard_ddl_start() FROM PUBLIC;
REVOKE ALL ON FUNCTION domi._isolation_guard_ddl_end() FROM PUBLIC;
REVOKE ALL ON FUNCTION domi._isolation_guard_sql_drop() FROM PUBLIC;
REVOKE ALL ON FUNCTION domi._ledger_ddl_end() FROM PUBLIC;
REVOKE ALL ON FUNCTION domi._ledger_sql_drop() FROM PUBLIC;

-- Internal helpers that stay executable by PUBLIC, because functions that
-- every role may call run them with the caller's rights:
--   domi._policy_compares_tenant, _policy_per_row_calls, _policy_initplan_form
--     (domi.rls_audit()): they accept only the expression of a policy
--     (pg_policy.polqual or polwithcheck, with that policy's relation) and
--     refuse any other catalog node tree with 22023 (src/rls.c);
--   domi._isolation_remember, _isolation_forget (domi.enable_tenant_rls and
--     disable_tenant_rls; they check the caller owns the table),
--     _audited_tenant_tables (domi.rls_audit()) and _rls_guard_effect (the
--     RLS guard, run as the role that runs the DDL);
--   domi.schema_drift, ddl_ledger_findings, _applied_snapshot, _drift_*,
--     _drizzle_*, _ledger_tracked (domi.lineage_check(), as its caller;
--     ddl_ledger_findings checks the caller may read domi.ddl_ledger);
--   domi._tenant_column_attnum, _tenant_policy_state (domi.enable_tenant_rls,
--     domi.disable_tenant_rls and the RLS guard, which runs as the role that
--     runs the DDL) and domi._tenant_tables (domi.rls_audit()): they read
--     catalogs every role can read.
-- test/sql/zz_privileges.sql calls every function of the extension as a
-- role without grants and lists those it may call.


--------------------------------------------------------------------------
-- Citus
--------------------------------------------------------------------------


-- The tenant in policies as a plain call, planned as an initplan.  Citus
-- refuses sub-selects in policies of distributed tables ("Subqueries are not
-- supported in policies on distributed tables") and accepts
-- "tenant_id = domi.current_tenant()".  A planner support function makes the
-- planner plan each call of the tenant functions as "(SELECT ...)", an
-- initplan evaluated once per execution (never folded into a cached plan),
-- so the plain call costs what the sub-select did.
CREATE FUNCTION domi._tenant_support(internal) RETURNS internal
	AS 'MODULE_PATHNAME', 'domi_tenant_support'
	LANGUAGE C STRICT;
REVOKE ALL ON FUNCTION domi._tenant_support(internal) FROM PUBLIC;
ALTER FUNCTION domi.current_tenant() SUPPORT domi._tenant_support;
ALTER FUNCTION domi.require_tenant() SUPPORT domi._tenant_support;

-- domi.enable_tenant_rls (Row-level security section) installs the policy
-- in this plain form.

-- Rewrite the policies that domi installed before 0.3.0 to the plain form,
-- so that their tables can be distributed with Citus.  Only domi's own
-- policy (by name and by its comment), and only while it is still the
-- sub-select form enable_tenant_rls made.
DO $$
DECLARE
	r record;
BEGIN
	FOR r IN
		SELECT p.polrelid::pg_catalog.regclass AS tbl, a.attname AS col
			FROM pg_catalog.pg_policy p
			JOIN pg_catalog.pg_description d
				ON d.classoid = 'pg_catalog.pg_policy'::pg_catalog.regclass AND d.objoid = p.oid
			CROSS JOIN LATERAL (SELECT pg_catalog.substring(d.description, '\{.*\}$')::jsonb ->> 'tenant_column' AS name) s
			JOIN pg_catalog.pg_attribute a ON a.attrelid = p.polrelid AND a.attname = s.name
			WHERE p.polname = 'domi_tenant_isolation'
				AND d.description LIKE 'domi tenant isolation %'
				-- pg_get_expr() qualifies the call only when domi is not
				-- on the search_path, as it is in this script.
				AND pg_catalog.replace(pg_catalog.pg_get_expr(p.polqual, p.polrelid), 'domi.', '')
					= pg_catalog.format('(%I = ( SELECT current_tenant() AS current_tenant))', a.attname)
				AND pg_catalog.replace(pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid), 'domi.', '')
					= pg_catalog.format('(%I = ( SELECT current_tenant() AS current_tenant))', a.attname)
			ORDER BY 1
	LOOP
		EXECUTE pg_catalog.format('ALTER POLICY domi_tenant_isolation ON %s'
				' USING (%2$I = domi.current_tenant()) WITH CHECK (%2$I = domi.current_tenant())',
				r.tbl, r.col);
	END LOOP;
END;
$$;

-- One keyring for the cluster.  Citus runs domi.encrypt/decrypt on whichever
-- node holds a shard, and each node has its own domi.tenant_keys: a value
-- encrypted on one node could not be opened on another, and two nodes could
-- each make a different first key for the same tenant.  As a Citus reference
-- table, domi.tenant_keys has one copy on every node, written on all of them
-- in one transaction, and its unique keys hold across the cluster.  Run once
-- on the coordinator after the workers are added (Citus copies reference
-- tables to nodes added later).  Returns false when it already was.
CREATE FUNCTION domi.citus_distribute_keyring() RETURNS boolean
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
		RAISE EXCEPTION 'Citus is not installed in this database'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				HINT = 'Create the extension citus first; a single server needs no distributed keyring.';
	END IF;
	IF EXISTS (SELECT FROM pg_catalog.pg_dist_partition
			WHERE logicalrelid = 'domi.tenant_keys'::pg_catalog.regclass) THEN
		RETURN false;
	END IF;
	-- Citus refuses tables with triggers unless told; the keyring's trigger
	-- only tells the key caches of the node it fires on to forget the table,
	-- which is what every node's copy needs.
	PERFORM pg_catalog.set_config('citus.enable_unsafe_triggers', 'on', true);
	PERFORM create_reference_table('domi.tenant_keys');
	RETURN true;
END;
$$;
REVOKE ALL ON FUNCTION domi.citus_distribute_keyring() FROM PUBLIC;
COMMENT ON FUNCTION domi.citus_distribute_keyring() IS 'make domi.tenant_keys a Citus reference table: one keyring for the cluster';
--------------------------------------------------------------------------
-- Field-level sync
--------------------------------------------------------------------------

-- Per-field metadata lives beside each synced row, in a "shadow" table of
-- the schema domi_sync: never a column of the user's table, which an ORM
-- would see and drop.  The shadow has the table's primary key columns, its
-- tenant column (isolated by domi's own policy), the fields' stamps as
-- jsonb {"col": {"at", "origin", "client"}}, and a tombstone stamp once the
-- row is deleted.  Shadow tables are ordinary tables, not members of the
-- extension: pg_dump dumps them with their rows.
CREATE SCHEMA domi_sync;
REVOKE ALL ON SCHEMA domi_sync FROM PUBLIC;
COMMENT ON SCHEMA domi_sync IS 'per-field sync metadata of the tables domi.enable_field_sync() was called for';

-- Which table syncs through which shadow.  regclass columns: the link
-- follows renames, and a dump names both tables, so a restore finds them
-- under their new OIDs.
CREATE TABLE domi.sync_tables (
	tbl regclass PRIMARY KEY,
	shadow regclass NOT NULL UNIQUE,
	tenant_column name,
	-- The change feed's purge horizon: tombstones up to this (xid, seq)
	-- were purged (or the table truncated), so a cursor older than it
	-- would miss deletes.  NULL: nothing purged.
	feed_horizon_xid xid8,
	feed_horizon_seq bigint
);
SELECT pg_catalog.pg_extension_config_dump('domi.sync_tables', '');
GRANT SELECT ON domi.sync_tables TO PUBLIC;

-- Conflicts: a field that a user wrote lost to a newer write of another
-- client.  Written by domi.merge() as this table's owner; readable per
-- tenant through the view domi.sync_conflicts.
CREATE TABLE domi.sync_conflict_log (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	tbl regclass NOT NULL,
	tenant_id uuid,
	pk jsonb NOT NULL,
	column_name name NOT NULL,
	winner jsonb NOT NULL,
	loser jsonb NOT NULL,
	loser_value jsonb,
	recorded_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
SELECT pg_catalog.pg_extension_config_dump('domi.sync_conflict_log', '');
REVOKE ALL ON domi.sync_conflict_log FROM PUBLIC;

-- The current tenant's conflicts, on tables the reader may read.
CREATE VIEW domi.sync_conflicts WITH (security_barrier) AS
	SELECT l.id, l.tbl, l.pk, l.column_name,
		l.winner, l.loser, l.loser_value, l.recorded_at
	FROM domi.sync_conflict_log l
	WHERE l.tenant_id IS NOT DISTINCT FROM domi.current_tenant()
	  AND pg_catalog.has_table_privilege(l.tbl, 'SELECT');
GRANT SELECT ON domi.sync_conflicts TO PUBLIC;

-- A conflict is dealt with once a person has seen it.
CREATE FUNCTION domi.resolve_sync_conflict(conflict_id bigint) RETURNS boolean
	LANGUAGE sql
	SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
	WITH gone AS (
		DELETE FROM domi.sync_conflict_log l
		WHERE l.id = conflict_id
		  AND l.tenant_id IS NOT DISTINCT FROM domi.current_tenant()
		  AND pg_catalog.has_table_privilege(pg_catalog.session_user, l.tbl, 'SELECT')
		RETURNING 1)
	SELECT pg_catalog.count(*) > 0 FROM gone
$$;
REVOKE ALL ON FUNCTION domi.resolve_sync_conflict(bigint) FROM PUBLIC;

-- The C side: stamping triggers, the merge, the metadata readers.
CREATE FUNCTION domi._sync_stamp() RETURNS trigger
	LANGUAGE C AS 'MODULE_PATHNAME', 'domi_sync_stamp';
CREATE FUNCTION domi._sync_truncate() RETURNS trigger
	LANGUAGE C AS 'MODULE_PATHNAME', 'domi_sync_truncate';

CREATE FUNCTION domi.field_meta(tbl regclass, pk jsonb) RETURNS jsonb
	LANGUAGE C STABLE STRICT AS 'MODULE_PATHNAME', 'domi_field_meta';
CREATE FUNCTION domi.merge(tbl regclass, "row" jsonb, meta jsonb,
		initial_hydration boolean DEFAULT false) RETURNS jsonb
	LANGUAGE C VOLATILE AS 'MODULE_PATHNAME', 'domi_sync_merge';
CREATE FUNCTION domi.merge_batch(tbl regclass, changes jsonb,
		initial_hydration boolean DEFAULT false) RETURNS jsonb
	LANGUAGE C VOLATILE AS 'MODULE_PATHNAME', 'domi_sync_merge_batch';
CREATE FUNCTION domi.merge_delete(tbl regclass, pk jsonb, stamp jsonb) RETURNS boolean
	LANGUAGE C VOLATILE STRICT AS 'MODULE_PATHNAME', 'domi_sync_merge_delete';
CREATE FUNCTION domi.latest_rows(tbl regclass, max_rows integer)
	RETURNS TABLE (pk jsonb, updated_at timestamptz)
	LANGUAGE C STABLE STRICT ROWS 20 AS 'MODULE_PATHNAME', 'domi_sync_latest_rows';
CREATE FUNCTION domi.bootstrap_row(tbl regclass, "row" jsonb) RETURNS boolean
	LANGUAGE C VOLATILE STRICT AS 'MODULE_PATHNAME', 'domi_sync_bootstrap_row';

-- The latest "at" over a row's fields: IMMUTABLE (stamps are stored in UTC
-- with an explicit offset), so it can be indexed on the shadow table.
CREATE FUNCTION domi.updated_at(meta jsonb) RETURNS timestamptz
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'domi_sync_updated_at';
CREATE FUNCTION domi.updated_at(tbl regclass, pk jsonb) RETURNS timestamptz
	LANGUAGE sql STABLE STRICT
	SET search_path = pg_catalog, pg_temp
AS $$ SELECT domi.updated_at(domi.field_meta(tbl, pk)) $$;

-- Name of a table's shadow: schema and table, cut to fit NAMEDATALEN, with
-- the table's oid when cut (two long names must not meet).
CREATE FUNCTION domi._sync_shadow_name(tbl regclass) RETURNS name
	LANGUAGE sql STABLE STRICT
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT CASE WHEN pg_catalog.octet_length(n) <= 63 THEN n::name
		ELSE (pg_catalog.left(n, 50) || '_' || tbl::oid::text)::name END
	FROM (SELECT ns.nspname || '__' || c.relname AS n
		FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace ns ON ns.oid = c.relnamespace
		WHERE c.oid = tbl) s
$$;

-- Make a table sync field by field: create its shadow, fill it with a stamp
-- of origin "migration" for every field of the rows already there, and add
-- the stamping triggers.  Called by domi.enable_field_sync() (C), which
-- checks that the caller owns the table and then runs this as the
-- extension owner: the shadow belongs to domi, like domi.tenant_keys, so
-- that the table's owner cannot plant a trigger or an index on it that
-- would run when domi writes there.  For the same reason the primary key
-- columns must be of built-in types: their comparison functions run when
-- domi writes the shadow.
CREATE FUNCTION domi._enable_field_sync(tbl regclass) RETURNS void
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
	SET domi.rls_guard = off
AS $$
DECLARE
	rel pg_catalog.pg_class;
	pk_cols text[];
	pk_defs text;
	tcol name;
	shadow_name name;
	shadow regclass;
	stamp text;
BEGIN
	IF tbl IS NULL THEN
		RAISE EXCEPTION 'table must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT * INTO rel FROM pg_catalog.pg_class WHERE oid = tbl;
	IF rel.relkind <> 'r' OR rel.relpersistence <> 'p' THEN
		RAISE EXCEPTION 'table "%" cannot sync field by field', tbl
			USING ERRCODE = 'wrong_object_type',
			DETAIL = 'Only ordinary, permanent tables can (not partitioned, temporary or unlogged ones, not views).';
	END IF;
	IF EXISTS (SELECT 1 FROM domi.sync_tables s WHERE s.tbl = _enable_field_sync.tbl) THEN
		RETURN;
	END IF;

	SELECT pg_catalog.array_agg(pg_catalog.quote_ident(a.attname) ORDER BY k.ord),
		pg_catalog.string_agg(pg_catalog.quote_ident(a.attname) || ' '
			|| pg_catalog.format_type(a.atttypid, a.atttypmod) || ' NOT NULL', ', ' ORDER BY k.ord)
		INTO pk_cols, pk_defs
		FROM pg_catalog.pg_index i
		CROSS JOIN LATERAL pg_catalog.unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
		JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
		WHERE i.indrelid = tbl AND i.indisprimary;
	IF pk_cols IS NULL THEN
		RAISE EXCEPTION 'table "%" has no primary key', tbl
			USING ERRCODE = 'invalid_table_definition',
			HINT = 'Field-level sync names rows by their primary key.';
	END IF;
	IF EXISTS (SELECT 1 FROM pg_catalog.pg_index i
			CROSS JOIN LATERAL pg_catalog.unnest(i.indkey) AS k(attnum)
			JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
			JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
			WHERE i.indrelid = tbl AND i.indisprimary
			  AND t.typnamespace <> 'pg_catalog'::pg_catalog.regnamespace) THEN
		RAISE EXCEPTION 'table "%" has a primary key column of a type that is not built in', tbl
			USING ERRCODE = 'feature_not_supported',
			DETAIL = 'domi compares primary keys in its own tables as their owner; a type defined in the database would run its code there.';
	END IF;

	-- The tenant column: the one domi's policy was made with, else none.
	tcol := domi._tenant_policy_state(tbl) ->> 'tenant_column';

	shadow_name := domi._sync_shadow_name(tbl);
	-- xid, seq: the transaction that last changed the row and the order of
	-- that change, for the change feed (domi.changes); every write of the
	-- shadow sets both anew.
	EXECUTE pg_catalog.format('CREATE TABLE domi_sync.%I (%s%s, meta jsonb NOT NULL DEFAULT %L,'
			' tombstone jsonb, xid xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id(),'
			' seq bigint GENERATED BY DEFAULT AS IDENTITY, PRIMARY KEY (%s))',
		shadow_name, pk_defs,
		CASE WHEN tcol IS NULL OR pg_catalog.quote_ident(tcol) = ANY (pk_cols) THEN ''
			ELSE ', ' || pg_catalog.quote_ident(tcol) || ' uuid' END,
		'{}', pg_catalog.array_to_string(pk_cols, ', '));
	shadow := pg_catalog.format('domi_sync.%I', shadow_name)::regclass;
	IF tcol IS NOT NULL THEN
		PERFORM domi.enable_tenant_rls(shadow, tcol);
		EXECUTE pg_catalog.format('CREATE INDEX ON %s (%I, domi.updated_at(meta) DESC)', shadow, tcol);
		EXECUTE pg_catalog.format('CREATE INDEX ON %s (%I, xid, seq)', shadow, tcol);
	ELSE
		EXECUTE pg_catalog.format('CREATE INDEX ON %s (domi.updated_at(meta) DESC)', shadow);
		EXECUTE pg_catalog.format('CREATE INDEX ON %s (xid, seq)', shadow);
	END IF;

	-- Rows already there: every field stamped once, origin migration.
	SELECT pg_catalog.string_agg(pg_catalog.format('%L, pg_catalog.jsonb_build_object(%L, %L, %L, %L, %L, %L)',
			a.attname, 'at', domi._sync_now_text(), 'origin', 'migration', 'client',
			pg_catalog.current_setting('domi.client_id')), ', ' ORDER BY a.attnum)
		INTO stamp
		FROM pg_catalog.pg_attribute a
		WHERE a.attrelid = tbl AND a.attnum > 0 AND NOT a.attisdropped
		  AND NOT pg_catalog.quote_ident(a.attname) = ANY (pk_cols);
	EXECUTE pg_catalog.format('INSERT INTO %s (%s%s, meta) SELECT %s%s, pg_catalog.jsonb_build_object(%s) FROM %s t',
		shadow, pg_catalog.array_to_string(pk_cols, ', '),
		CASE WHEN tcol IS NULL OR pg_catalog.quote_ident(tcol) = ANY (pk_cols) THEN ''
			ELSE ', ' || pg_catalog.quote_ident(tcol) END,
		(SELECT pg_catalog.string_agg('t.' || c, ', ') FROM pg_catalog.unnest(pk_cols) c),
		CASE WHEN tcol IS NULL OR pg_catalog.quote_ident(tcol) = ANY (pk_cols) THEN ''
			ELSE ', t.' || pg_catalog.quote_ident(tcol) END,
		coalesce(stamp, ''), tbl);

	INSERT INTO domi.sync_tables (tbl, shadow, tenant_column) VALUES (tbl, shadow, tcol);

	EXECUTE pg_catalog.format('CREATE TRIGGER domi_field_sync AFTER INSERT OR UPDATE OR DELETE ON %s'
		' FOR EACH ROW EXECUTE FUNCTION domi._sync_stamp()', tbl);
	EXECUTE pg_catalog.format('CREATE TRIGGER domi_field_sync_truncate AFTER TRUNCATE ON %s'
		' FOR EACH STATEMENT EXECUTE FUNCTION domi._sync_truncate()', tbl);
END;
$$;

-- Stop syncing: the triggers and the shadow (with every stamp) go.  Run as
-- the extension owner by domi.disable_field_sync() (C), as above.
CREATE FUNCTION domi._disable_field_sync(tbl regclass) RETURNS void
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	shadow_rel regclass;
BEGIN
	DELETE FROM domi.sync_tables s WHERE s.tbl = _disable_field_sync.tbl RETURNING s.shadow INTO shadow_rel;
	IF shadow_rel IS NULL THEN
		RAISE NOTICE 'table "%" does not sync field by field, nothing to remove', tbl;
		RETURN;
	END IF;
	EXECUTE pg_catalog.format('DROP TRIGGER IF EXISTS domi_field_sync ON %s', tbl);
	EXECUTE pg_catalog.format('DROP TRIGGER IF EXISTS domi_field_sync_truncate ON %s', tbl);
	EXECUTE pg_catalog.format('DROP TABLE %s', shadow_rel);
	DELETE FROM domi.sync_conflict_log l WHERE l.tbl = _disable_field_sync.tbl;
END;
$$;
REVOKE ALL ON FUNCTION domi._enable_field_sync(regclass) FROM PUBLIC;
REVOKE ALL ON FUNCTION domi._disable_field_sync(regclass) FROM PUBLIC;

CREATE FUNCTION domi.enable_field_sync(tbl regclass) RETURNS void
	LANGUAGE C STRICT AS 'MODULE_PATHNAME', 'domi_enable_field_sync';
CREATE FUNCTION domi.disable_field_sync(tbl regclass) RETURNS void
	LANGUAGE C STRICT AS 'MODULE_PATHNAME', 'domi_disable_field_sync';

CREATE FUNCTION domi._sync_later_stamp(a jsonb, b jsonb) RETURNS jsonb
	LANGUAGE C IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'domi_sync_later_stamp';
CREATE FUNCTION domi._sync_now_text() RETURNS text
	LANGUAGE C STABLE AS 'MODULE_PATHNAME', 'domi_sync_now_text';

-- A column renamed: its stamps follow it (and the shadow's own column, for
-- a primary key or tenant column).  C, on ddl_command_end, reading the
-- statement's parse tree for the old and new names.
CREATE FUNCTION domi._sync_ddl_end() RETURNS event_trigger
	LANGUAGE C AS 'MODULE_PATHNAME', 'domi_sync_ddl_end';
CREATE EVENT TRIGGER domi_sync_ddl_end ON ddl_command_end
	WHEN TAG IN ('ALTER TABLE')
	EXECUTE FUNCTION domi._sync_ddl_end();
ALTER EVENT TRIGGER domi_sync_ddl_end ENABLE ALWAYS;
-- Trigger and event trigger functions: PostgreSQL checks no EXECUTE right
-- when they fire, and domi creates the triggers as the extension owner.
REVOKE ALL ON FUNCTION domi._sync_ddl_end() FROM PUBLIC;
REVOKE ALL ON FUNCTION domi._sync_stamp() FROM PUBLIC;
REVOKE ALL ON FUNCTION domi._sync_truncate() FROM PUBLIC;
-- Used only as the extension owner: by _enable_field_sync and in the
-- queries on the shadow tables.
REVOKE ALL ON FUNCTION domi._sync_now_text() FROM PUBLIC;
REVOKE ALL ON FUNCTION domi._sync_shadow_name(regclass) FROM PUBLIC;
REVOKE ALL ON FUNCTION domi._sync_later_stamp(jsonb, jsonb) FROM PUBLIC;

-- A synced table dropped: its shadow and registry row go with it.
CREATE FUNCTION domi._sync_sql_drop() RETURNS event_trigger
	LANGUAGE plpgsql
	SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	gone record;
BEGIN
	FOR gone IN
		DELETE FROM domi.sync_tables s
		USING pg_catalog.pg_event_trigger_dropped_objects() d
		WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
		  AND d.objsubid = 0 AND d.objid = s.tbl::oid
		RETURNING s.tbl::oid AS tbl, s.shadow
	LOOP
		DELETE FROM domi.sync_conflict_log l WHERE l.tbl::oid = gone.tbl;
		IF EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE oid = gone.shadow::oid) THEN
			EXECUTE pg_catalog.format('DROP TABLE %s', gone.shadow);
		END IF;
	END LOOP;
END;
$$;
REVOKE ALL ON FUNCTION domi._sync_sql_drop() FROM PUBLIC;
CREATE EVENT TRIGGER domi_sync_sql_drop ON sql_drop
	EXECUTE FUNCTION domi._sync_sql_drop();
ALTER EVENT TRIGGER domi_sync_sql_drop ENABLE ALWAYS;

-- The change feed (src/sync_feed.c): the current tenant's changes of a
-- synced table after a cursor, in (xid, seq) order, only of transactions
-- older than the reader's snapshot xmin, so that a late commit is never
-- skipped.  See docs/sync.md.
CREATE FUNCTION domi.changes(tbl regclass, since text, max_rows integer,
		except_client text DEFAULT NULL)
	RETURNS TABLE (pk jsonb, "row" jsonb, meta jsonb, deleted boolean, "cursor" text)
	LANGUAGE C STABLE ROWS 1000 AS 'MODULE_PATHNAME', 'domi_sync_changes';

-- Purge tombstones older than a time, for every tenant of the table, and
-- move the feed's horizon past them: a cursor from before it gets an error
-- that says to resync, never a silent gap.  Run as the extension owner by
-- domi.purge_tombstones() (C), which checks that the caller owns the table.
CREATE FUNCTION domi._purge_tombstones(tbl regclass, older_than timestamptz) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	shadow_rel regclass;
	purged bigint;
	top_xid xid8;
	top_seq bigint;
BEGIN
	SELECT s.shadow INTO shadow_rel FROM domi.sync_tables s WHERE s.tbl = _purge_tombstones.tbl;
	IF shadow_rel IS NULL THEN
		RAISE EXCEPTION 'table "%" does not sync field by field', tbl
			USING ERRCODE = 'object_not_in_prerequisite_state';
	END IF;
	EXECUTE pg_catalog.format('WITH gone AS (DELETE FROM %s s WHERE s.tombstone IS NOT NULL'
			' AND (s.tombstone OPERATOR(pg_catalog.->>) ''at'')::pg_catalog.timestamptz OPERATOR(pg_catalog.<) $1'
			' RETURNING s.xid, s.seq)'
			' SELECT (SELECT pg_catalog.count(*) FROM gone), t.xid, t.seq'
			' FROM (SELECT 1) one LEFT JOIN (SELECT g.xid, g.seq FROM gone g'
			' ORDER BY g.xid DESC, g.seq DESC LIMIT 1) t ON true', shadow_rel)
		INTO purged, top_xid, top_seq USING older_than;
	IF purged > 0 THEN
		UPDATE domi.sync_tables s SET feed_horizon_xid = top_xid, feed_horizon_seq = top_seq
		WHERE s.tbl = _purge_tombstones.tbl
		  AND (s.feed_horizon_xid IS NULL OR (s.feed_horizon_xid, s.feed_horizon_seq) < (top_xid, top_seq));
	END IF;
	RETURN purged;
END;
$$;
REVOKE ALL ON FUNCTION domi._purge_tombstones(regclass, timestamptz) FROM PUBLIC;
CREATE FUNCTION domi.purge_tombstones(tbl regclass, older_than timestamptz) RETURNS bigint
	LANGUAGE C STRICT AS 'MODULE_PATHNAME', 'domi_sync_purge_tombstones';
