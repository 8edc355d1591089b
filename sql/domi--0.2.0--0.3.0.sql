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


--------------------------------------------------------------------------
-- Row-level security and its guards
--------------------------------------------------------------------------


--------------------------------------------------------------------------
-- Migration lineage
--------------------------------------------------------------------------


--------------------------------------------------------------------------
-- Privileges of internal helpers
--------------------------------------------------------------------------


--------------------------------------------------------------------------
-- Citus
--------------------------------------------------------------------------

