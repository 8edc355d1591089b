\echo '--- 4. Tenant lookup: no privileged "bootstrap" connection ------------'
\echo 'With FORCEd row level security on memberships, an application cannot'
\echo 'ask which tenant a user belongs to before a tenant is set, so apps keep'
\echo 'a second connection that bypasses RLS. domi answers that question with'
\echo 'SECURITY DEFINER functions that an unprivileged role may execute.'
\echo
SET domi.rls_guard = off;   -- tables are protected right below
CREATE SCHEMA saas;
CREATE TABLE saas.orgs (id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	name text NOT NULL, plan text NOT NULL DEFAULT 'free');
CREATE TABLE saas.org_members (user_id text NOT NULL, tenant_id uuid NOT NULL REFERENCES saas.orgs,
	created_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (user_id, tenant_id));
CREATE INDEX ON saas.org_members (user_id, created_at, tenant_id);
CREATE TABLE saas.projects (id int PRIMARY KEY, tenant_id uuid NOT NULL, title text);
CREATE INDEX ON saas.projects (tenant_id);
SELECT domi.enable_tenant_rls('saas.org_members') AS m, domi.enable_tenant_rls('saas.orgs', 'id') AS o,
	domi.enable_tenant_rls('saas.projects') AS p \gset
RESET domi.rls_guard;
SELECT relname, relrowsecurity AS rls, relforcerowsecurity AS forced
	FROM pg_class WHERE relnamespace = 'saas'::regnamespace AND relkind = 'r' ORDER BY relname;
INSERT INTO saas.orgs (id, name) VALUES
	('11111111-1111-1111-1111-111111111111', 'Acme'),
	('22222222-2222-2222-2222-222222222222', 'Globex');
INSERT INTO saas.org_members VALUES
	('ada', '11111111-1111-1111-1111-111111111111', '2024-01-01'),
	('ada', '22222222-2222-2222-2222-222222222222', '2024-06-01');
INSERT INTO saas.projects VALUES
	(1, '11111111-1111-1111-1111-111111111111', 'acme: rollout'),
	(2, '22222222-2222-2222-2222-222222222222', 'globex: audit');
\echo 'The owner names the tables once (stored by identity, dumped by pg_dump):'
\echo
\echo '  SELECT domi.configure_tenancy(''saas.org_members'', tenants => ''saas.orgs'');'
SELECT domi.configure_tenancy('saas.org_members', tenants => 'saas.orgs') AS configured \gset
\echo
\echo 'The application role gets EXECUTE, and nothing on the two tables:'
CREATE ROLE demo_tenancy_app;
GRANT USAGE ON SCHEMA saas TO demo_tenancy_app;
GRANT SELECT ON saas.projects TO demo_tenancy_app;
GRANT EXECUTE ON FUNCTION domi.user_tenant(text), domi.user_tenants(text),
	domi.is_member(text, uuid), domi.enter_tenant(text, uuid),
	domi.bootstrap_tenant(text, jsonb) TO demo_tenancy_app;
SET ROLE demo_tenancy_app;
\set ON_ERROR_STOP 0
SELECT * FROM saas.org_members;
\set ON_ERROR_STOP 1
\echo
\echo 'Yet it can ask which tenants a user belongs to (first membership first):'
SELECT domi.user_tenant('ada') AS "user_tenant('ada')",
	domi.is_member('ada', '22222222-2222-2222-2222-222222222222') AS "is_member(ada, globex)";
SELECT t AS "user_tenants('ada')" FROM domi.user_tenants('ada') t;
\echo 'enter_tenant checks the membership, then sets the tenant for this'
\echo 'transaction exactly as domi.set_tenant does; RLS does the rest:'
BEGIN;
SELECT domi.enter_tenant('ada', '22222222-2222-2222-2222-222222222222') AS "enter_tenant(ada, globex)";
SELECT id, title FROM saas.projects;
COMMIT;
\echo 'A user who is not a member is refused (42501), and nothing is set:'
\set ON_ERROR_STOP 0
BEGIN;
SELECT domi.enter_tenant('mallory', '11111111-1111-1111-1111-111111111111');
ROLLBACK;
\set ON_ERROR_STOP 1
\echo
\echo 'A new user signs up: bootstrap_tenant creates the tenant (columns from'
\echo 'the jsonb, defaults for the rest) and the first membership in one step,'
\echo 'the one write the policies cannot allow yet. Called twice, or by two'
\echo 'sessions at once, it makes one tenant:'
SELECT domi.bootstrap_tenant('grace', '{"name": "Grace Labs", "plan": "pro"}') AS new_tenant \gset
SELECT domi.bootstrap_tenant('grace', '{"name": "again"}') = :'new_tenant' AS "same tenant the second time";
\echo 'It sets only the tenant''s own columns, never its id:'
\set ON_ERROR_STOP 0
SELECT domi.bootstrap_tenant('eve', '{"id": "11111111-1111-1111-1111-111111111111"}');
\set ON_ERROR_STOP 1
RESET ROLE;
SELECT o.name, o.plan, m.user_id FROM saas.orgs o JOIN saas.org_members m ON m.tenant_id = o.id
	WHERE m.user_id = 'grace';
\echo
