-- Tenant lookup over a user column that is not text: a uuid (the Drizzle
-- and Prisma choice, a foreign key to users.id) and an integer.  The
-- functions take the user id as text and compare it in the column's type;
-- text that is no value of that type is refused (22P02, 22003).

SET domi.rls_guard = off;
CREATE SCHEMA ut;
CREATE TABLE ut.users (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), email text);
CREATE TABLE ut.tenants (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), name text);
CREATE TABLE ut.memberships (
	user_id uuid NOT NULL REFERENCES ut.users (id),
	tenant_id uuid NOT NULL REFERENCES ut.tenants (id),
	created_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (user_id, tenant_id));
CREATE INDEX memberships_lookup ON ut.memberships (user_id, created_at, tenant_id);
SELECT domi.enable_tenant_rls('ut.memberships');
SELECT domi.enable_tenant_rls('ut.tenants', 'id');
RESET domi.rls_guard;

INSERT INTO ut.users (id, email) VALUES
	('11111111-1111-1111-1111-111111111111', 'ann@example.com'),
	('22222222-2222-2222-2222-222222222222', 'ben@example.com'),
	('33333333-3333-3333-3333-333333333333', 'cat@example.com');
INSERT INTO ut.tenants (id, name) VALUES
	('aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa', 'Acme'),
	('bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb', 'Globex');
INSERT INTO ut.memberships VALUES
	('11111111-1111-1111-1111-111111111111', 'bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb', '2024-02-01'),
	('11111111-1111-1111-1111-111111111111', 'aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa', '2024-01-01'),
	('22222222-2222-2222-2222-222222222222', 'bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb', '2024-01-01');

CREATE ROLE domi_ut_app;
GRANT EXECUTE ON FUNCTION domi.user_tenant(text), domi.user_tenants(text),
	domi.is_member(text, uuid), domi.enter_tenant(text, uuid),
	domi.bootstrap_tenant(text, jsonb) TO domi_ut_app;

-- A uuid user column is accepted.
SELECT domi.configure_tenancy('ut.memberships', tenants => 'ut.tenants');

-- Lookups through the lookup index (user_id, created_at, tenant_id): the
-- id compares as a uuid, so its upper-case and brace forms find the user.
SET ROLE domi_ut_app;
BEGIN;
SELECT domi.user_tenant('11111111-1111-1111-1111-111111111111') AS ann_first,
	domi.user_tenant('{22222222-2222-2222-2222-222222222222}') AS ben_braces,
	domi.user_tenant('33333333-3333-3333-3333-333333333333') IS NULL AS cat_none;
SELECT array_agg(t) AS ann_all FROM domi.user_tenants('11111111-1111-1111-1111-111111111111') t;
SELECT domi.is_member('11111111-1111-1111-1111-111111111111', 'bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb') AS ann_in_b,
	domi.is_member('22222222-2222-2222-2222-222222222222', 'aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa') AS ben_in_a;
SELECT domi.enter_tenant('22222222-2222-2222-2222-222222222222') AS ben_entered;
RESET ROLE;
SELECT pg_stat_get_xact_numscans('ut.memberships_lookup'::regclass) > 0 AS lookup_index_scanned;
COMMIT;

-- Text that is no uuid: 22P02, with the type named; nothing looked up.
SET ROLE domi_ut_app;
SELECT domi.user_tenant('ann@example.com');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.is_member('', 'aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.bootstrap_tenant('not-a-uuid', '{"name": "Nope"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- bootstrap_tenant inserts the uuid (a member of ut.users: the foreign key holds).
SELECT domi.bootstrap_tenant('33333333-3333-3333-3333-333333333333', '{"name": "Cat Co"}') AS cat_tenant \gset
SELECT domi.user_tenant('33333333-3333-3333-3333-333333333333') = :'cat_tenant' AS cat_bootstrapped,
	domi.bootstrap_tenant('33333333-3333-3333-3333-333333333333') = :'cat_tenant' AS same_tenant;
-- A user id that is no user: the table's own foreign key refuses it (23503).
\set VERBOSITY terse
SELECT domi.bootstrap_tenant('44444444-4444-4444-4444-444444444444', '{"name": "Ghost"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
\set VERBOSITY default
RESET ROLE;
SELECT count(*) AS ghost_tenants FROM ut.tenants WHERE name = 'Ghost';
SELECT m.user_id, t.name FROM ut.memberships m JOIN ut.tenants t ON t.id = m.tenant_id
WHERE m.user_id = '33333333-3333-3333-3333-333333333333';

-- Without the lookup index, through an index on the user column alone
-- (rows sorted in memory), then with no index at all: the same answers.
DROP INDEX ut.memberships_lookup;
ALTER TABLE ut.memberships DROP CONSTRAINT memberships_pkey;
CREATE INDEX memberships_user ON ut.memberships (user_id);
BEGIN;
SET LOCAL ROLE domi_ut_app;
SELECT domi.user_tenant('11111111-1111-1111-1111-111111111111') AS ann_first,
	(SELECT array_agg(t) FROM domi.user_tenants('11111111-1111-1111-1111-111111111111') t) AS ann_all,
	domi.is_member('22222222-2222-2222-2222-222222222222', 'bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb') AS ben_in_b;
RESET ROLE;
SELECT pg_stat_get_xact_numscans('ut.memberships_user'::regclass) > 0 AS user_index_scanned;
COMMIT;
DROP INDEX ut.memberships_user;
SET ROLE domi_ut_app;
SELECT domi.user_tenant('11111111-1111-1111-1111-111111111111') AS ann_first,
	(SELECT array_agg(t) FROM domi.user_tenants('11111111-1111-1111-1111-111111111111') t) AS ann_all,
	domi.is_member('22222222-2222-2222-2222-222222222222', 'bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb') AS ben_in_b;
RESET ROLE;

-- A partitioned memberships table, by hash of the uuid user.
SET domi.rls_guard = off;
CREATE TABLE ut.part_members (user_id uuid NOT NULL, tenant_id uuid NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()) PARTITION BY HASH (user_id);
CREATE TABLE ut.part_members_0 PARTITION OF ut.part_members FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE ut.part_members_1 PARTITION OF ut.part_members FOR VALUES WITH (MODULUS 2, REMAINDER 1);
CREATE INDEX ON ut.part_members (user_id);
RESET domi.rls_guard;
INSERT INTO ut.part_members SELECT user_id, tenant_id, created_at FROM ut.memberships;
SELECT domi.configure_tenancy('ut.part_members', tenants => 'ut.tenants');
SET ROLE domi_ut_app;
SELECT domi.user_tenant('11111111-1111-1111-1111-111111111111') AS ann_first,
	(SELECT array_agg(t) FROM domi.user_tenants('11111111-1111-1111-1111-111111111111') t) AS ann_all;
SELECT domi.bootstrap_tenant('55555555-5555-5555-5555-555555555555', '{"name": "Partitioned"}') IS NOT NULL AS bootstrapped;
RESET ROLE;
SELECT t.name FROM ut.part_members m JOIN ut.tenants t ON t.id = m.tenant_id
WHERE m.user_id = '55555555-5555-5555-5555-555555555555';

-- An integer user column (a serial users.id), with a domain over it.
SET domi.rls_guard = off;
CREATE DOMAIN ut.user_ref AS integer CHECK (VALUE > 0);
CREATE TABLE ut.int_members (user_id ut.user_ref NOT NULL, tenant_id uuid NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX ON ut.int_members (user_id, created_at, tenant_id);
RESET domi.rls_guard;
INSERT INTO ut.int_members VALUES (42, 'aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa', '2024-01-01');
SELECT domi.configure_tenancy('ut.int_members', tenants => 'ut.tenants');
SET ROLE domi_ut_app;
SELECT domi.user_tenant('42') AS user_42, domi.user_tenant(' 42 ') AS spaces, domi.user_tenant('7') IS NULL AS user_7_none;
SELECT domi.user_tenant('forty-two');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.user_tenant('99999999999');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.bootstrap_tenant('7', '{"name": "Seven"}') IS NOT NULL AS seven_bootstrapped;
-- the domain's check is the table's: the insert refuses 0 (23514)
\set VERBOSITY terse
SELECT domi.bootstrap_tenant('0', '{"name": "Zero"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
\set VERBOSITY default
RESET ROLE;
SELECT m.user_id, t.name FROM ut.int_members m JOIN ut.tenants t ON t.id = m.tenant_id ORDER BY m.user_id;

-- Other types are refused (42804), and nothing is stored.
SET domi.rls_guard = off;
CREATE TABLE ut.bad_members (user_id numeric, tenant_id uuid);
RESET domi.rls_guard;
SELECT domi.configure_tenancy('ut.bad_members', order_column => NULL);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT memberships FROM domi.tenancy_config;

-- Clean up.
DELETE FROM domi.tenancy_config;
DROP SCHEMA ut CASCADE;
DROP OWNED BY domi_ut_app;
DROP ROLE domi_ut_app;
