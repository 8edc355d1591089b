-- The plain call domi.current_tenant() in a policy (the form Citus accepts
-- on distributed tables) is planned as an initplan: evaluated once per
-- execution, never folded into a cached plan.
CREATE SCHEMA ts;
SET search_path = ts, public;
CREATE TABLE docs (tenant_id uuid NOT NULL, id int, body text);
INSERT INTO docs SELECT CASE WHEN i % 2 = 0
		THEN 'aaaaaaaa-0000-0000-0000-00000000000a'::uuid
		ELSE 'bbbbbbbb-0000-0000-0000-00000000000b'::uuid END, i, 'doc ' || i
	FROM generate_series(1, 10) i;
SELECT domi.enable_tenant_rls('docs');
SELECT pg_get_expr(polqual, polrelid) AS using_expr FROM pg_policy
	WHERE polrelid = 'docs'::regclass;
CREATE ROLE domi_ts_app;
GRANT USAGE ON SCHEMA ts TO domi_ts_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON docs TO domi_ts_app;
SET ROLE domi_ts_app;

-- The stored policy is the plain call; the plan has an initplan.
EXPLAIN (COSTS OFF) SELECT * FROM docs;
-- So has a hand-written WHERE with the plain call, and require_tenant().
EXPLAIN (COSTS OFF) SELECT id FROM docs WHERE tenant_id = domi.require_tenant();
-- Without a table the call is evaluated once anyway: no initplan.
EXPLAIN (COSTS OFF) SELECT domi.current_tenant();

-- A generic cached plan reads the tenant at every execution.
SET plan_cache_mode = force_generic_plan;
PREPARE visible AS SELECT count(*), min(id) FROM docs;
BEGIN;
SELECT domi.set_tenant('aaaaaaaa-0000-0000-0000-00000000000a') IS NOT NULL AS set_a;
EXECUTE visible;
SELECT domi.set_tenant('bbbbbbbb-0000-0000-0000-00000000000b') IS NOT NULL AS set_b;
EXECUTE visible;
SELECT domi.set_tenant(NULL) IS NULL AS cleared;
EXECUTE visible;
COMMIT;
DEALLOCATE visible;
RESET plan_cache_mode;

-- Writes: WITH CHECK refuses another tenant's row; a column default with
-- the plain call works in INSERT (planned) and in COPY (not planned; COPY
-- refuses tables under row level security, so a table without).
RESET ROLE;
ALTER TABLE docs ALTER COLUMN tenant_id SET DEFAULT domi.current_tenant();
SET domi.rls_guard = off;
CREATE TABLE copied (tenant_id uuid DEFAULT domi.current_tenant(), id int);
RESET domi.rls_guard;
GRANT INSERT, SELECT ON copied TO domi_ts_app;
CREATE FUNCTION ts.count_per_tenant() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	result text := '';
	t uuid;
BEGIN
	FOREACH t IN ARRAY ARRAY['aaaaaaaa-0000-0000-0000-00000000000a',
			'bbbbbbbb-0000-0000-0000-00000000000b']::uuid[] LOOP
		PERFORM domi.set_tenant(t);
		result := result || left(domi.current_tenant()::text, 1) || ':'
			|| (SELECT count(*) FROM ts.docs) || ' ';
	END LOOP;
	RETURN result;
END;
$$;
CREATE FUNCTION ts.is_mine(uuid) RETURNS boolean LANGUAGE sql STABLE
	AS 'SELECT $1 = domi.current_tenant()';
SET ROLE domi_ts_app;
BEGIN;
SELECT domi.set_tenant('aaaaaaaa-0000-0000-0000-00000000000a') IS NOT NULL AS set_a;
INSERT INTO docs VALUES ('bbbbbbbb-0000-0000-0000-00000000000b', 13, 'cross');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SELECT domi.set_tenant('aaaaaaaa-0000-0000-0000-00000000000a') IS NOT NULL AS set_a;
INSERT INTO docs (id, body) VALUES (11, 'by default');
COPY copied (id) FROM stdin;
12
\.
SELECT id, body FROM docs WHERE id > 10 ORDER BY id;
SELECT tenant_id, id FROM copied;
UPDATE docs SET body = 'updated';
SELECT count(*) AS updated FROM docs WHERE body = 'updated';
COMMIT;
RESET ROLE;
SELECT count(*) AS updated_of_all FROM docs WHERE body = 'updated';
SET ROLE domi_ts_app;

-- PL/pgSQL: simple expressions stay simple and read the tenant each time;
-- a query in a loop gets the initplan.
BEGIN;
SELECT ts.count_per_tenant();
ROLLBACK;

-- An inlined SQL function with the call.
BEGIN;
SELECT domi.set_tenant('bbbbbbbb-0000-0000-0000-00000000000b') IS NOT NULL AS set_b;
SELECT count(*) AS mine FROM docs WHERE ts.is_mine(tenant_id);
EXPLAIN (COSTS OFF) SELECT count(*) FROM docs WHERE ts.is_mine(tenant_id);
ROLLBACK;

-- require_tenant() in an initplan still refuses to run without a tenant.
SELECT count(*) FROM docs WHERE tenant_id = domi.require_tenant();
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;

-- A table partitioned by tenant: the initplan prunes at run time.
CREATE TABLE parted (tenant_id uuid NOT NULL, n int) PARTITION BY LIST (tenant_id);
CREATE TABLE parted_a PARTITION OF parted FOR VALUES IN ('aaaaaaaa-0000-0000-0000-00000000000a');
CREATE TABLE parted_b PARTITION OF parted FOR VALUES IN ('bbbbbbbb-0000-0000-0000-00000000000b');
INSERT INTO parted VALUES ('aaaaaaaa-0000-0000-0000-00000000000a', 1), ('bbbbbbbb-0000-0000-0000-00000000000b', 2);
SELECT domi.enable_tenant_rls('parted');
GRANT SELECT ON parted TO domi_ts_app;
SET ROLE domi_ts_app;
BEGIN;
SELECT domi.set_tenant('bbbbbbbb-0000-0000-0000-00000000000b') IS NOT NULL AS set_b;
SELECT n FROM parted;
EXPLAIN (ANALYZE, COSTS OFF, SUMMARY OFF, TIMING OFF) SELECT n FROM parted;
ROLLBACK;
RESET ROLE;

-- The audit has no per-row finding for domi's plain policy.
SELECT count(*) AS per_row_findings FROM domi.rls_audit(ARRAY['domi_ts_app'])
	WHERE check_name = 'policy_per_row_function_call' AND object LIKE '%ts.%';

DROP SCHEMA ts CASCADE;
RESET search_path;
DROP ROLE domi_ts_app;
