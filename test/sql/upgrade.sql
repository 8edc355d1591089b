-- Upgrade path: an installation of 0.1.0 with data in use updates to the
-- current version, and keeps what it had.  Runs last (alphabetical order)
-- and leaves the extension installed at the default version.
-- The keys the earlier files made go with it: the test means that, and
-- says so to the drop guard.
BEGIN;
SET LOCAL domi.allow_drop = 'domi.tenant_keys';
DROP EXTENSION domi CASCADE;
COMMIT;
CREATE EXTENSION domi VERSION '0.1.0';
SELECT extversion FROM pg_extension WHERE extname = 'domi';

-- Something made under 0.1.0: a table with domi's policy.
CREATE TABLE upgrade_notes (id int, tenant_id uuid);
SELECT domi.enable_tenant_rls('upgrade_notes');

ALTER EXTENSION domi UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'domi';

-- The policy made under 0.1.0 is still there and still calls the function.
SELECT polname, pg_get_expr(polqual, polrelid) AS using_expr
FROM pg_policy WHERE polrelid = 'upgrade_notes'::regclass;
SELECT domi.current_tenant() IS NULL AS no_tenant;

-- 0.3.0 registers the tables isolated before it, and guards them.
SELECT tbl, tenant_column FROM domi.isolated_tables;
ALTER TABLE upgrade_notes DISABLE ROW LEVEL SECURITY;
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- Every object the update created belongs to the extension.
SELECT count(*) AS loose_domi_functions
FROM pg_proc p
WHERE p.pronamespace = 'domi'::regnamespace
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                    AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e');

DROP TABLE upgrade_notes;
