\echo
\echo '=== domi: multi-tenant safety inside PostgreSQL ==='
\echo
CREATE EXTENSION domi;

\echo '--- 1. Tenant context ------------------------------------------------'
\echo 'Each transaction says which tenant it acts for. Outside BEGIN, a'
\echo 'transaction-local setting would vanish before the next statement, so'
\echo 'domi.set_tenant() refuses instead of silently doing nothing:'
\echo
\echo '  SELECT domi.set_tenant(...);   -- no BEGIN'
\set ON_ERROR_STOP 0
SELECT domi.set_tenant('11111111-1111-1111-1111-111111111111');
\set ON_ERROR_STOP 1
\echo
\echo 'Inside a transaction it works, and ends with the transaction:'
CREATE TABLE notes (tenant_id uuid NOT NULL, body text);
INSERT INTO notes VALUES
	('11111111-1111-1111-1111-111111111111', 'acme: quarterly plan'),
	('22222222-2222-2222-2222-222222222222', 'globex: launch date');
BEGIN;
SELECT domi.set_tenant('11111111-1111-1111-1111-111111111111') AS "set_tenant (in BEGIN)";
SELECT body AS "notes WHERE tenant_id = domi.current_tenant()"
	FROM notes WHERE tenant_id = domi.current_tenant();
COMMIT;
\echo 'After COMMIT no tenant is set, and a filter on current_tenant() fails'
\echo 'closed (no rows) instead of erroring:'
SELECT domi.current_tenant() AS "current_tenant (after COMMIT)",
	(SELECT count(*) FROM notes WHERE tenant_id = domi.current_tenant()) AS "rows visible";
\echo 'domi.require_tenant() is the strict variant for code that must not run'
\echo 'without a tenant:'
\set ON_ERROR_STOP 0
SELECT domi.require_tenant();
\set ON_ERROR_STOP 1
\echo
\echo 'The setting refuses anything that is not a uuid, at SET time:'
BEGIN;
\set ON_ERROR_STOP 0
SET LOCAL domi.tenant_id = 'acme';
\set ON_ERROR_STOP 1
ROLLBACK;
\echo
\echo 'A tenant for the whole session is refused: behind a transaction pooler'
\echo '(PgBouncer in transaction mode) it would outlive the client that set it:'
\set ON_ERROR_STOP 0
SET domi.tenant_id = '11111111-1111-1111-1111-111111111111';
\set ON_ERROR_STOP 1
\echo
