-- The tenant isolation guard: on a table domi.enable_tenant_rls isolated,
-- the statements that switch isolation off (the ones drizzle-kit push runs
-- for a schema that does not declare domi's policy) are refused whatever
-- domi.rls_guard says, unless SET LOCAL domi.allow_drop names
-- schema.table.domi_tenant_isolation in the same transaction.
\set SHOW_CONTEXT never
CREATE ROLE rg_owner;
CREATE ROLE rg_app;
CREATE SCHEMA rg AUTHORIZATION rg_owner;
GRANT USAGE ON SCHEMA rg TO rg_app;
SET ROLE rg_owner;
CREATE TABLE rg.tenants (id uuid PRIMARY KEY, name text);
CREATE TABLE rg.conversations (id int, tenant_id uuid NOT NULL, title text);
CREATE TABLE rg.messages (id int, tenant_id uuid NOT NULL, body text);
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA rg TO rg_app;
INSERT INTO rg.tenants VALUES ('aaaaaaaa-0000-0000-0000-000000000001', 'A'),
                              ('bbbbbbbb-0000-0000-0000-000000000002', 'B');
INSERT INTO rg.conversations VALUES (1, 'aaaaaaaa-0000-0000-0000-000000000001', 'a1'),
                                    (2, 'bbbbbbbb-0000-0000-0000-000000000002', 'b1');
INSERT INTO rg.messages VALUES (1, 'aaaaaaaa-0000-0000-0000-000000000001', 'hello a'),
                               (2, 'bbbbbbbb-0000-0000-0000-000000000002', 'hello b');
SELECT domi.enable_tenant_rls('rg.tenants', 'id');
SELECT domi.enable_tenant_rls('rg.conversations');
SELECT domi.enable_tenant_rls('rg.messages');
-- The registry: each table with the column it was isolated on.
SELECT schema_name, table_name, tenant_column, allow_drop, isolated_by
FROM domi.isolated_tables WHERE schema_name = 'rg' ORDER BY table_name;
-- Running the installer again keeps one registration (and is not refused).
SELECT domi.enable_tenant_rls('rg.messages');
SELECT count(*) AS messages_registrations FROM domi.isolated_tables WHERE tbl = 'rg.messages'::regclass;

-- What drizzle-kit push runs, one statement at a time: refused with every
-- value of domi.rls_guard, the default first.
ALTER TABLE rg.conversations DISABLE ROW LEVEL SECURITY;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
DROP POLICY domi_tenant_isolation ON rg.conversations;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SET domi.rls_guard = off;
ALTER TABLE rg.conversations DISABLE ROW LEVEL SECURITY;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
DROP POLICY domi_tenant_isolation ON rg.tenants;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SET domi.rls_guard = error;
ALTER TABLE rg.tenants DISABLE ROW LEVEL SECURITY;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SET domi.rls_guard = enable;
DROP POLICY IF EXISTS domi_tenant_isolation ON rg.messages;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET domi.rls_guard;

-- The other ways to switch it off.
ALTER TABLE rg.conversations NO FORCE ROW LEVEL SECURITY;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ALTER TABLE rg.conversations ADD COLUMN note text, DISABLE ROW LEVEL SECURITY;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ALTER TABLE rg.conversations NO FORCE ROW LEVEL SECURITY, DISABLE ROW LEVEL SECURITY;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ALTER POLICY domi_tenant_isolation ON rg.conversations RENAME TO conversations_policy;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ALTER POLICY domi_tenant_isolation ON rg.conversations USING (true);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ALTER POLICY domi_tenant_isolation ON rg.conversations
  USING (tenant_id = domi.current_tenant() OR title = 'public');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ALTER POLICY domi_tenant_isolation ON rg.conversations WITH CHECK (true);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ALTER POLICY domi_tenant_isolation ON rg.conversations TO rg_app;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- Under a parent that is not isolated, an isolated table's rows would be
-- readable through the parent (its policies apply, not the child's).
CREATE TABLE rg.all_conversations (id int, tenant_id uuid NOT NULL, title text);
ALTER TABLE rg.conversations INHERIT rg.all_conversations;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
CREATE TABLE rg.conversations_by_title (id int, tenant_id uuid NOT NULL, title text)
  PARTITION BY LIST (title);
ALTER TABLE rg.conversations_by_title ATTACH PARTITION rg.conversations DEFAULT;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- Under an isolated parent it may.
SELECT domi.enable_tenant_rls('rg.all_conversations');
ALTER TABLE rg.conversations INHERIT rg.all_conversations;
ALTER TABLE rg.conversations NO INHERIT rg.all_conversations;
DROP TABLE rg.all_conversations, rg.conversations_by_title;
-- Dropping the tenant column with CASCADE would take the policy along.
RESET ROLE;
ALTER TABLE rg.messages DROP COLUMN tenant_id CASCADE;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SET ROLE rg_owner;
-- An ALTER POLICY that keeps the tenant check (here the plain call instead
-- of the sub-select) is allowed, and so is a narrower one.
ALTER POLICY domi_tenant_isolation ON rg.conversations
  USING (tenant_id = domi.current_tenant()) WITH CHECK (tenant_id = domi.current_tenant());
ALTER POLICY domi_tenant_isolation ON rg.conversations
  USING (title IS NOT NULL AND tenant_id = (SELECT domi.current_tenant()));
SELECT domi.enable_tenant_rls('rg.conversations');

-- A session-wide override (SET, ALTER ROLE ... SET, PGOPTIONS) does not
-- count, in a transaction or outside one.
SET domi.allow_drop = 'rg.conversations.domi_tenant_isolation';
ALTER TABLE rg.conversations DISABLE ROW LEVEL SECURITY;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
BEGIN;
DROP POLICY domi_tenant_isolation ON rg.conversations;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK;
RESET domi.allow_drop;
-- A SET LOCAL of an earlier transaction is gone with it.
BEGIN;
SET LOCAL domi.allow_drop = 'rg.conversations.domi_tenant_isolation';
COMMIT;
ALTER TABLE rg.conversations NO FORCE ROW LEVEL SECURITY;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- SET LOCAL naming another table does not count either.
BEGIN;
SET LOCAL domi.allow_drop = 'rg.messages.domi_tenant_isolation';
ALTER TABLE rg.conversations DISABLE ROW LEVEL SECURITY;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK;

-- After all that, every table is as it was.
SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
       (SELECT string_agg(polname, ', ') FROM pg_policy WHERE polrelid = c.oid) AS policies
FROM pg_class c WHERE c.relnamespace = 'rg'::regnamespace AND c.relkind = 'r' ORDER BY 1;
-- And the application role sees only its tenant's rows, none without one.
RESET ROLE;
SET ROLE rg_app;
SELECT count(*) AS no_tenant_rows FROM rg.conversations;
BEGIN;
SELECT domi.set_tenant('aaaaaaaa-0000-0000-0000-000000000001');
SELECT title FROM rg.conversations ORDER BY id;
SELECT name FROM rg.tenants ORDER BY name;
SELECT body FROM rg.messages ORDER BY id;
COMMIT;
RESET ROLE;

-- The override: SET LOCAL in the same transaction.  Notices say what went.
SET ROLE rg_owner;
BEGIN;
SET LOCAL domi.allow_drop = 'rg.conversations.domi_tenant_isolation';
ALTER TABLE rg.conversations DISABLE ROW LEVEL SECURITY, NO FORCE ROW LEVEL SECURITY;
SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = 'rg.conversations'::regclass;
ROLLBACK;
SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = 'rg.conversations'::regclass;

-- rls_audit remembers the tenant column of a table whose policy was dropped
-- under the override: rg.tenants, isolated on "id", which domi.tenant_column
-- (tenant_id) would never find.
BEGIN;
SET LOCAL domi.allow_drop = 'rg.tenants.domi_tenant_isolation';
DROP POLICY domi_tenant_isolation ON rg.tenants;
COMMIT;
RESET ROLE;
SELECT severity, check_name, object, detail, fix FROM domi.rls_audit()
WHERE object LIKE 'rg.%' ORDER BY check_name, object;
-- Still guarded: turning RLS off as well needs the override again.
SET ROLE rg_owner;
ALTER TABLE rg.tenants DISABLE ROW LEVEL SECURITY;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
BEGIN;
SET LOCAL domi.allow_drop = 'rg.tenants.domi_tenant_isolation';
ALTER TABLE rg.tenants DISABLE ROW LEVEL SECURITY;
COMMIT;
RESET ROLE;
SELECT check_name, object, detail FROM domi.rls_audit()
WHERE object LIKE 'rg.%' ORDER BY check_name, object;
-- The fix puts it back and the finding goes.
SET ROLE rg_owner;
SELECT domi.enable_tenant_rls('rg.tenants', 'id');
RESET ROLE;
SELECT count(*) AS rg_findings FROM domi.rls_audit() WHERE object LIKE 'rg.%'
  AND check_name NOT IN ('unindexed_tenant_column');

-- A renamed tenant column is followed.
SET ROLE rg_owner;
ALTER TABLE rg.messages RENAME COLUMN tenant_id TO org_id;
SELECT tenant_column FROM domi.isolated_tables WHERE tbl = 'rg.messages'::regclass;
ALTER TABLE rg.messages RENAME COLUMN org_id TO tenant_id;

-- The deliberate way back, disable_tenant_rls, works and forgets the table;
-- then the table is an ordinary one again.
SELECT domi.disable_tenant_rls('rg.messages');
SELECT count(*) AS messages_registered FROM domi.isolated_tables WHERE tbl = 'rg.messages'::regclass;
SET domi.rls_guard = off;
ALTER TABLE rg.messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE rg.messages DISABLE ROW LEVEL SECURITY;
RESET domi.rls_guard;
-- disable_tenant_rls of a table whose policy was dropped under the override.
BEGIN;
SET LOCAL domi.allow_drop = 'rg.tenants.domi_tenant_isolation';
DROP POLICY domi_tenant_isolation ON rg.tenants;
COMMIT;
SELECT domi.disable_tenant_rls('rg.tenants');
SELECT count(*) AS tenants_registered FROM domi.isolated_tables WHERE tbl = 'rg.tenants'::regclass;

-- DROP TABLE of an isolated table is allowed, and it leaves the registry.
SELECT table_name FROM domi.isolated_tables WHERE schema_name = 'rg';
DROP TABLE rg.conversations;
SELECT count(*) AS rg_registered FROM domi.isolated_tables WHERE schema_name = 'rg';
RESET ROLE;
SELECT count(*) AS stale_registrations FROM domi._isolated_tables
WHERE tbl::oid NOT IN (SELECT oid FROM pg_class);

-- Only the table's owner may register or forget it.
SET ROLE rg_app;
SELECT domi._isolation_forget('rg.tenants');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;

-- The older guard (domi.rls_guard) names what the statement did, on a
-- table with the tenant column that domi did not isolate.
SET ROLE rg_owner;
CREATE TABLE rg.hand (id int, tenant_id uuid);
ALTER TABLE rg.hand ENABLE ROW LEVEL SECURITY;
CREATE POLICY by_hand ON rg.hand USING (tenant_id = domi.current_tenant());
CREATE TABLE rg.plain (id int);
SET domi.rls_guard = error;
ALTER TABLE rg.hand DISABLE ROW LEVEL SECURITY;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ALTER TABLE rg.plain ADD COLUMN tenant_id uuid;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ALTER TABLE rg.plain ADD COLUMN org uuid;
ALTER TABLE rg.plain RENAME COLUMN org TO tenant_id;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
CREATE TABLE rg.fresh (tenant_id uuid);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET domi.rls_guard;
ALTER TABLE rg.plain ADD COLUMN tenant_id uuid;
ALTER TABLE rg.plain ADD COLUMN note text;
RESET ROLE;

DROP SCHEMA rg CASCADE;
DROP ROLE rg_owner;
DROP ROLE rg_app;
