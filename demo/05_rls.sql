\echo '--- 5. Row-level security: install, prove, audit, guard ----------------'
\echo 'One call makes a table tenant-isolated: ENABLE + FORCE row level security'
\echo 'and one policy comparing tenant_id with (SELECT domi.current_tenant()).'
\echo
CREATE ROLE demo_app;
SET domi.rls_guard = off;   -- the guard (at the end) would warn between CREATE and enable
CREATE TABLE invoices (id int PRIMARY KEY, tenant_id uuid NOT NULL, amount int);
CREATE INDEX ON invoices (tenant_id);
INSERT INTO invoices VALUES
	(1, '11111111-1111-1111-1111-111111111111', 100),
	(2, '11111111-1111-1111-1111-111111111111', 250),
	(3, '22222222-2222-2222-2222-222222222222', 990);
GRANT SELECT, INSERT, UPDATE, DELETE ON invoices TO demo_app;
SELECT domi.enable_tenant_rls('invoices');
RESET domi.rls_guard;
SELECT policyname, cmd, qual FROM pg_policies WHERE tablename = 'invoices';
\echo 'The tenant is an initplan: evaluated once per query, and the index is used.'
SET ROLE demo_app;
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT * FROM invoices;
RESET enable_seqscan;
\echo 'As the application role: no tenant, no rows; under tenant 1111..., its rows only.'
SELECT count(*) AS "rows with no tenant" FROM invoices;
BEGIN;
SELECT domi.set_tenant('11111111-1111-1111-1111-111111111111') IS NOT NULL AS tenant_set;
SELECT id, amount FROM invoices ORDER BY id;
\echo 'Writing a row for another tenant is refused:'
\set ON_ERROR_STOP 0
INSERT INTO invoices VALUES (4, '22222222-2222-2222-2222-222222222222', 1);
\set ON_ERROR_STOP 1
ROLLBACK;
RESET ROLE;
\echo
\echo 'domi.assert_isolation proves it on the live table, as the application'
\echo 'role, and rolls everything back (it raises P0004 if a check fails):'
SELECT * FROM domi.assert_isolation('invoices', 'demo_app');
\echo
\echo 'domi.rls_audit lists what falls short, each finding with its fix.'
\echo 'A hand-written table: policy on current_setting(), not forced, a view'
\echo 'that runs as its owner, and a BYPASSRLS application role:'
SET domi.rls_guard = off;
CREATE TABLE orders (tenant_id uuid NOT NULL, total int);
CREATE INDEX ON orders (tenant_id);
ALTER TABLE orders ENABLE ROW LEVEL SECURITY;
CREATE POLICY by_hand ON orders USING (tenant_id = current_setting('app.tenant_id')::uuid);
CREATE VIEW order_totals AS SELECT tenant_id, sum(total) FROM orders GROUP BY 1;
CREATE ROLE demo_reporting BYPASSRLS;
RESET domi.rls_guard;
SELECT severity, check_name, object, fix
	FROM domi.rls_audit(ARRAY['demo_app', 'demo_reporting'])
	WHERE object LIKE '%orders%' OR object LIKE 'demo_%' OR object = 'public.order_totals';
\echo
\echo 'The guard (domi.rls_guard = off | warn | error | enable, default warn)'
\echo 'watches CREATE TABLE and ALTER TABLE for a new tenant column:'
CREATE TABLE payments (tenant_id uuid NOT NULL, amount int);
SET domi.rls_guard = error;
\set ON_ERROR_STOP 0
CREATE TABLE refunds (tenant_id uuid NOT NULL, amount int);
\set ON_ERROR_STOP 1
SET domi.rls_guard = enable;
CREATE TABLE refunds (tenant_id uuid NOT NULL, amount int);
RESET domi.rls_guard;
SELECT tablename, policyname FROM pg_policies WHERE tablename IN ('payments', 'refunds');
DROP VIEW order_totals;
DROP TABLE invoices, orders, payments, refunds;
DROP ROLE demo_app;
DROP ROLE demo_reporting;
\echo
