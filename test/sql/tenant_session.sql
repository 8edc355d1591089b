-- A tenant set for the whole session is refused by default: behind a
-- transaction pooler it would outlive the client that set it.  See
-- docs/pooling.md.
\set VERBOSITY default
SHOW domi.allow_session_tenant;
SELECT context FROM pg_settings WHERE name = 'domi.allow_session_tenant';

-- SET (and SET SESSION, in any spelling) is refused with 55P02 and a hint,
-- and sets nothing.
SET domi.tenant_id = '77777777-7777-7777-7777-777777777777';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SET SESSION domi.tenant_id = '77777777-7777-7777-7777-777777777777';
SET "DOMI.Tenant_ID" TO '77777777-7777-7777-7777-777777777777';
SHOW domi.tenant_id;
SELECT domi.current_tenant() IS NULL AS no_tenant_after_refused_set;

-- Inside a transaction the same: the error aborts it.
BEGIN;
SET domi.tenant_id = '77777777-7777-7777-7777-777777777777';
ROLLBACK;

-- set_config(..., false) is refused when its query ends, and rolled back.
SELECT set_config('domi.tenant_id', '77777777-7777-7777-7777-777777777777', false);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SHOW domi.tenant_id;
-- While it is in force, before its query ends, it does not count (fail
-- closed): a function in the same query sees no tenant.
CREATE FUNCTION tenant_session_peek() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
	RAISE NOTICE 'tenant while the session value is in force: %', coalesce(domi.current_tenant()::text, 'none');
	RETURN true;
END$$;
SELECT set_config('domi.tenant_id', '77777777-7777-7777-7777-777777777777', false) IS NOT NULL AS set,
	tenant_session_peek();
DROP FUNCTION tenant_session_peek();
SHOW domi.tenant_id;

-- From PL/pgSQL: SET, EXECUTE 'SET ...' and PERFORM set_config(..., false).
DO $$BEGIN SET domi.tenant_id = '77777777-7777-7777-7777-777777777777'; END$$;
DO $$BEGIN EXECUTE 'SET domi.tenant_id = ''77777777-7777-7777-7777-777777777777'''; END$$;
DO $$BEGIN PERFORM set_config('domi.tenant_id', '77777777-7777-7777-7777-777777777777', false); END$$;
-- Caught in an exception block, the subtransaction rolls the value back.
DO $$
BEGIN
	BEGIN
		PERFORM set_config('domi.tenant_id', '77777777-7777-7777-7777-777777777777', false);
	EXCEPTION WHEN cant_change_runtime_param THEN
		RAISE NOTICE 'refused: %', SQLERRM;
	END;
	RAISE NOTICE 'tenant after the exception block: %', coalesce(domi.current_tenant()::text, 'none');
END$$;
SHOW domi.tenant_id;

-- SET ... FROM CURRENT would make a SET LOCAL value session-wide: refused.
BEGIN;
SET LOCAL domi.tenant_id = '77777777-7777-7777-7777-777777777777';
SET domi.tenant_id FROM CURRENT;
ROLLBACK;

-- Allowed: RESET, SET ... TO DEFAULT, RESET ALL, and the empty string (no tenant).
RESET domi.tenant_id;
SET domi.tenant_id TO DEFAULT;
SET domi.tenant_id = DEFAULT;
SET domi.tenant_id = '';
RESET ALL;
SELECT domi.current_tenant() IS NULL AS still_no_tenant;

-- Transaction-scoped forms are unchanged: SET LOCAL, set_config(..., true),
-- set_tenant(), and a function's SET clause (for the duration of the call).
BEGIN;
SET LOCAL domi.tenant_id = '11111111-1111-1111-1111-111111111111';
SELECT domi.current_tenant() AS via_set_local;
SELECT set_config('domi.tenant_id', '22222222-2222-2222-2222-222222222222', true) IS NOT NULL AS set,
	domi.current_tenant() AS via_set_config_local;
SELECT domi.set_tenant('33333333-3333-3333-3333-333333333333') IS NOT NULL AS set,
	domi.current_tenant() AS via_set_tenant;
COMMIT;
CREATE FUNCTION tenant_session_as_44() RETURNS uuid LANGUAGE sql
	SET domi.tenant_id = '44444444-4444-4444-4444-444444444444'
	AS 'SELECT domi.current_tenant()';
SELECT tenant_session_as_44() AS in_function, domi.current_tenant() IS NULL AS none_outside;
DROP FUNCTION tenant_session_as_44();

-- ALTER ROLE / DATABASE / SYSTEM SET would give every later session a tenant:
-- refused; RESET is allowed.
CREATE ROLE domi_session_user;
ALTER ROLE domi_session_user SET domi.tenant_id = '77777777-7777-7777-7777-777777777777';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ALTER ROLE domi_session_user IN DATABASE contrib_regression SET domi.tenant_id = '77777777-7777-7777-7777-777777777777';
ALTER DATABASE contrib_regression SET domi.tenant_id = '77777777-7777-7777-7777-777777777777';
ALTER SYSTEM SET domi.tenant_id = '77777777-7777-7777-7777-777777777777';
ALTER ROLE domi_session_user RESET domi.tenant_id;
ALTER ROLE domi_session_user SET domi.tenant_id = '';
ALTER ROLE domi_session_user RESET ALL;
SELECT count(*) AS stored_role_settings FROM pg_db_role_setting s
	WHERE array_to_string(s.setconfig, ',') ILIKE '%domi.tenant_id%';

-- Only a superuser can allow session-wide tenants: not a plain role, neither
-- by SET nor by set_config nor for itself with ALTER ROLE.
SET ROLE domi_session_user;
SET domi.allow_session_tenant = on;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT set_config('domi.allow_session_tenant', 'on', false);
ALTER ROLE domi_session_user SET domi.allow_session_tenant = on;
SHOW domi.allow_session_tenant;
-- And the plain role is refused a session-wide tenant like everyone.
SET domi.tenant_id = '77777777-7777-7777-7777-777777777777';
RESET ROLE;

-- A superuser may allow it for a role or a database (it takes effect in
-- new sessions; test/t/004_tenant_session.pl connects with it).
ALTER ROLE domi_session_user SET domi.allow_session_tenant = on;
SELECT array_to_string(setconfig, ',') AS role_settings FROM pg_db_role_setting
	WHERE setrole = 'domi_session_user'::regrole;
ALTER ROLE domi_session_user RESET ALL;
-- Or let a role choose, with GRANT SET ON PARAMETER.
GRANT SET ON PARAMETER domi.allow_session_tenant TO domi_session_user;
SET ROLE domi_session_user;
SET domi.allow_session_tenant = on;
SET domi.tenant_id = '77777777-7777-7777-7777-777777777777';
SELECT domi.current_tenant() AS granted_role_session_tenant;
RESET domi.tenant_id;
RESET domi.allow_session_tenant;
RESET ROLE;
REVOKE SET ON PARAMETER domi.allow_session_tenant FROM domi_session_user;

-- With the setting on, a session-wide tenant is the caller's choice and
-- lasts until RESET; set_tenant() still scopes a transaction's tenant.
SET domi.allow_session_tenant = on;
SET domi.tenant_id = '55555555-5555-5555-5555-555555555555';
SELECT domi.current_tenant() AS session_tenant;
BEGIN;
SELECT domi.set_tenant('66666666-6666-6666-6666-666666666666') IS NOT NULL AS set,
	domi.current_tenant() AS transaction_tenant;
COMMIT;
SELECT domi.current_tenant() AS session_tenant_again;
SELECT set_config('domi.tenant_id', '77777777-7777-7777-7777-777777777777', false) IS NOT NULL AS set_config_allowed;
SELECT domi.current_tenant() AS session_tenant_from_set_config;

-- Fail closed: once the setting is off again, the session value that still
-- exists does not count; require_tenant() says why.
SET domi.allow_session_tenant = off;
SHOW domi.tenant_id;
SELECT domi.current_tenant() IS NULL AS session_value_ignored;
SELECT domi.require_tenant();
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- A scoped tenant over it counts, and the session value stays ignored after.
BEGIN;
SELECT domi.set_tenant('11111111-1111-1111-1111-111111111111') IS NOT NULL AS set,
	domi.current_tenant() AS scoped_over_session_value;
COMMIT;
SELECT domi.current_tenant() IS NULL AS ignored_again;
-- A policy comparing with current_tenant() matches nothing.
CREATE TABLE tenant_session_rows (owner_tenant uuid, v int);
INSERT INTO tenant_session_rows VALUES ('77777777-7777-7777-7777-777777777777', 1);
SELECT count(*) AS rows_of_session_tenant FROM tenant_session_rows
	WHERE owner_tenant = domi.current_tenant();
DROP TABLE tenant_session_rows;
RESET domi.tenant_id;
RESET domi.allow_session_tenant;
DROP ROLE domi_session_user;
