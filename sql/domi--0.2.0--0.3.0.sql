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
-- recorded again at the end, all in the caller's one transaction.
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
			' USING (%2$I = (SELECT domi.current_tenant())) WITH CHECK (%2$I = (SELECT domi.current_tenant()))',
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
-- Privileges of internal helpers
--------------------------------------------------------------------------

-- The event trigger functions run for every role's DDL without an EXECUTE
-- check (PostgreSQL checks none when an event trigger fires), so no role
-- needs the right to call them directly.
REVOKE ALL ON FUNCTION domi._rls_guard() FROM PUBLIC;
REVOKE ALL ON FUNCTION domi._drop_guard_sql_drop() FROM PUBLIC;
REVOKE ALL ON FUNCTION domi._drop_guard_ddl_end() FROM PUBLIC;
REVOKE ALL ON FUNCTION domi._drop_guard_ddl_start() FROM PUBLIC;

-- Internal helpers that stay executable by PUBLIC, because functions that
-- every role may call run them with the caller's rights:
--   domi._policy_compares_tenant, _policy_per_row_calls, _policy_initplan_form
--     (domi.rls_audit()): they accept only the expression of a policy
--     (pg_policy.polqual or polwithcheck, with that policy's relation) and
--     refuse any other catalog node tree with 22023 (src/rls.c);
--   domi._tenant_column_attnum, _tenant_policy_state (domi.enable_tenant_rls,
--     domi.disable_tenant_rls and the RLS guard, which runs as the role that
--     runs the DDL) and domi._tenant_tables (domi.rls_audit()): they read
--     catalogs every role can read.
-- test/sql/zz_privileges.sql calls every function of the extension as a
-- role without grants and lists those it may call.


--------------------------------------------------------------------------
-- Citus
--------------------------------------------------------------------------

