-- Tenant context: domi.tenant_id, set_tenant, current_tenant, require_tenant.

-- Nothing set: current_tenant is NULL (fail closed), require_tenant errors.
SELECT domi.current_tenant() IS NULL AS no_tenant;
SHOW domi.tenant_id;
SELECT domi.require_tenant();
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- Outside a transaction block set_tenant refuses (25P01), and sets nothing.
SELECT domi.set_tenant('11111111-1111-1111-1111-111111111111');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.current_tenant() IS NULL AS still_no_tenant;

-- Inside BEGIN ... COMMIT it sets the tenant for that transaction only.
BEGIN;
SELECT domi.set_tenant('11111111-1111-1111-1111-111111111111');
SELECT domi.current_tenant(), domi.require_tenant();
SHOW domi.tenant_id;
COMMIT;
-- The tenant did not survive its transaction.
SELECT domi.current_tenant() IS NULL AS gone_after_commit;

BEGIN;
SELECT domi.set_tenant('22222222-2222-2222-2222-222222222222');
ROLLBACK;
SELECT domi.current_tenant() IS NULL AS gone_after_rollback;

-- A multi-statement simple query is an implicit transaction block: it works
-- there, and the tenant is gone once that query string is done.
SELECT domi.set_tenant('33333333-3333-3333-3333-333333333333') \; SELECT domi.current_tenant() AS in_same_query;
SELECT domi.current_tenant() IS NULL AS gone_after_implicit_block;

-- NULL clears the tenant inside the transaction.
BEGIN;
SELECT domi.set_tenant('11111111-1111-1111-1111-111111111111');
SELECT domi.set_tenant(NULL) IS NULL AS cleared;
SELECT domi.current_tenant() IS NULL AS none_after_clear;
COMMIT;

-- Savepoints: ROLLBACK TO restores the tenant in force at the savepoint.
BEGIN;
SELECT domi.set_tenant('11111111-1111-1111-1111-111111111111');
SAVEPOINT a;
SELECT domi.set_tenant('22222222-2222-2222-2222-222222222222');
SAVEPOINT b;
SELECT domi.set_tenant('33333333-3333-3333-3333-333333333333');
SELECT domi.current_tenant() AS in_b;
ROLLBACK TO SAVEPOINT b;
SELECT domi.current_tenant() AS back_to_b;
ROLLBACK TO SAVEPOINT a;
SELECT domi.current_tenant() AS back_to_a;
SAVEPOINT c;
SELECT domi.set_tenant('44444444-4444-4444-4444-444444444444');
RELEASE SAVEPOINT c;
SELECT domi.current_tenant() AS kept_after_release;
COMMIT;
SELECT domi.current_tenant() IS NULL AS gone_after_savepoints;

-- A failed subtransaction (plpgsql exception block) restores the tenant too.
BEGIN;
SELECT domi.set_tenant('11111111-1111-1111-1111-111111111111');
DO $$
BEGIN
	PERFORM domi.set_tenant('22222222-2222-2222-2222-222222222222');
	RAISE division_by_zero;
EXCEPTION WHEN division_by_zero THEN
	NULL;
END $$;
SELECT domi.current_tenant() AS after_failed_subxact;
COMMIT;

-- SET LOCAL works, and so does set_config(..., true); both end with the transaction.
BEGIN;
SET LOCAL domi.tenant_id = '55555555-5555-5555-5555-555555555555';
SELECT domi.current_tenant() AS via_set_local;
SELECT set_config('domi.tenant_id', '66666666-6666-6666-6666-666666666666', true) AS via_set_config;
SELECT domi.current_tenant();
COMMIT;
SELECT domi.current_tenant() IS NULL AS gone_after_set_local;

-- The setting stores the canonical form of every spelling uuid accepts.
BEGIN;
SET LOCAL domi.tenant_id = '{A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11}';
SHOW domi.tenant_id;
SET LOCAL domi.tenant_id = 'a0eebc999c0b4ef8bb6d6bb9bd380a11';
SHOW domi.tenant_id;
SET LOCAL domi.tenant_id = 'a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11';
SELECT domi.current_tenant();
COMMIT;

-- Bad values are refused at SET time with SQLSTATE 22P02, and change nothing.
BEGIN;
SET LOCAL domi.tenant_id = '11111111-1111-1111-1111-111111111111';
SAVEPOINT s;
SET LOCAL domi.tenant_id = 'not-a-uuid';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO SAVEPOINT s;
SET LOCAL domi.tenant_id = '11111111-1111-1111-1111-11111111111';
ROLLBACK TO SAVEPOINT s;
SET LOCAL domi.tenant_id = '11111111-1111-1111-1111-1111111111111';
ROLLBACK TO SAVEPOINT s;
SET LOCAL domi.tenant_id = '11111111-1111-1111-1111-11111111111g';
ROLLBACK TO SAVEPOINT s;
SET LOCAL domi.tenant_id = ' 11111111-1111-1111-1111-111111111111';
ROLLBACK TO SAVEPOINT s;
SET LOCAL domi.tenant_id = '{11111111-1111-1111-1111-111111111111';
ROLLBACK TO SAVEPOINT s;
SET LOCAL domi.tenant_id = '11111111--1111-1111-1111-111111111111';
ROLLBACK TO SAVEPOINT s;
SELECT set_config('domi.tenant_id', 'robert''); DROP TABLE students; --', true);
ROLLBACK TO SAVEPOINT s;
SELECT domi.current_tenant() AS unchanged_after_bad_values;
COMMIT;

-- The empty string means no tenant; so does RESET.
BEGIN;
SET LOCAL domi.tenant_id = '11111111-1111-1111-1111-111111111111';
SET LOCAL domi.tenant_id = '';
SELECT domi.current_tenant() IS NULL AS empty_means_none;
COMMIT;

-- A session-wide SET is refused by default (test/sql/tenant_session.sql);
-- with domi.allow_session_tenant on it is the caller's explicit choice and
-- lasts until RESET.
SET domi.allow_session_tenant = on;
SET domi.tenant_id = '77777777-7777-7777-7777-777777777777';
SELECT domi.current_tenant() AS session_tenant;
BEGIN;
SELECT domi.set_tenant('88888888-8888-8888-8888-888888888888');
COMMIT;
SELECT domi.current_tenant() AS session_tenant_again;
RESET domi.tenant_id;
SELECT domi.current_tenant() IS NULL AS none_after_reset;
RESET domi.allow_session_tenant;

-- Typos in the domi prefix are refused rather than silently accepted.
SET domi.tenantid = 'x';

-- A policy comparing with current_tenant() matches nothing when unset.
CREATE TABLE tenant_rows (tenant_id uuid, v int);
INSERT INTO tenant_rows VALUES
	('11111111-1111-1111-1111-111111111111', 1),
	('22222222-2222-2222-2222-222222222222', 2);
SELECT count(*) AS visible_without_tenant FROM tenant_rows WHERE tenant_id = domi.current_tenant();
BEGIN;
SELECT domi.set_tenant('22222222-2222-2222-2222-222222222222');
SELECT v FROM tenant_rows WHERE tenant_id = domi.current_tenant();
COMMIT;
DROP TABLE tenant_rows;

-- Declared properties: volatility, parallel safety, strictness, and that
-- PUBLIC may execute all three (they carry no privilege).
SELECT p.proname, p.provolatile, p.proparallel, p.proisstrict,
	has_function_privilege('public', p.oid, 'EXECUTE') AS public_execute
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'domi' AND p.proname IN ('set_tenant', 'current_tenant', 'require_tenant')
ORDER BY p.proname;

-- Any role may set and read its tenant.
CREATE ROLE domi_tenant_plain_user;
SET ROLE domi_tenant_plain_user;
BEGIN;
SELECT domi.set_tenant('99999999-9999-9999-9999-999999999999');
SELECT domi.require_tenant();
COMMIT;
BEGIN;
SET LOCAL domi.tenant_id = '99999999-9999-9999-9999-999999999999';
SELECT domi.require_tenant() AS via_set_local;
COMMIT;
RESET domi.tenant_id;
RESET ROLE;
DROP ROLE domi_tenant_plain_user;
