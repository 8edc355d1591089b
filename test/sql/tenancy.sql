-- Tenant lookup: configure_tenancy, user_tenant, user_tenants, is_member,
-- enter_tenant and bootstrap_tenant, called by an unprivileged role over
-- tables with FORCEd row level security, and the attacks they must resist.

-- The application's tables, tenant-isolated with domi's installer.
SET domi.rls_guard = off;
CREATE SCHEMA app;
CREATE TABLE app.tenants (
	id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	name text NOT NULL DEFAULT 'unnamed',
	plan text NOT NULL DEFAULT 'free',
	slug text GENERATED ALWAYS AS (lower(name)) STORED,
	created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE app.memberships (
	user_id text NOT NULL,
	tenant_id uuid NOT NULL REFERENCES app.tenants,
	role text NOT NULL DEFAULT 'owner',
	meta json,
	created_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (user_id, tenant_id));
CREATE INDEX ON app.memberships (user_id, created_at, tenant_id);
CREATE TABLE app.invoices (id int, tenant_id uuid NOT NULL, amount int);
SELECT domi.enable_tenant_rls('app.memberships');
SELECT domi.enable_tenant_rls('app.tenants', 'id');
SELECT domi.enable_tenant_rls('app.invoices');
RESET domi.rls_guard;
SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class
WHERE relnamespace = 'app'::regnamespace AND relkind = 'r' ORDER BY relname;

-- Tenants A, B, C.  alice: A (first), then B.  bob: B.  tie: B and C at
-- the same instant (the tenant id breaks the tie: B).
INSERT INTO app.tenants (id, name) VALUES
	('aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa', 'Acme'),
	('bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb', 'Globex'),
	('cccccccc-cccc-cccc-cccc-cccccccccccc', 'Initech');
INSERT INTO app.memberships (user_id, tenant_id, created_at) VALUES
	('alice', 'bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb', '2024-02-01'),
	('alice', 'aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa', '2024-01-01'),
	('bob', 'bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb', '2024-01-01'),
	('tie', 'cccccccc-cccc-cccc-cccc-cccccccccccc', '2024-03-01'),
	('tie', 'bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb', '2024-03-01');
INSERT INTO app.invoices VALUES
	(1, 'aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa', 100),
	(2, 'bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb', 200);

-- The application role: USAGE on the schema, SELECT on invoices, and
-- EXECUTE on the lookups; nothing on memberships or tenants.
CREATE ROLE domi_tenancy_app;
GRANT USAGE ON SCHEMA app TO domi_tenancy_app;
GRANT SELECT ON app.invoices TO domi_tenancy_app;
GRANT EXECUTE ON FUNCTION domi.user_tenant(text), domi.user_tenants(text),
	domi.is_member(text, uuid), domi.enter_tenant(text, uuid),
	domi.bootstrap_tenant(text, jsonb) TO domi_tenancy_app;
SELECT t AS tbl, has_table_privilege('domi_tenancy_app', t, 'SELECT, INSERT, UPDATE, DELETE') AS any_privilege
FROM unnest(ARRAY['app.memberships', 'app.tenants', 'domi.tenancy_config']) t;

-- Declared properties: SECURITY DEFINER with search_path pinned (pg_temp
-- last), not executable by PUBLIC; the lookups STABLE and STRICT.
SELECT p.proname, p.prosecdef, p.provolatile, p.proisstrict, p.proparallel, p.proconfig,
	has_function_privilege('public', p.oid, 'EXECUTE') AS public_execute
FROM pg_proc p
WHERE p.pronamespace = 'domi'::regnamespace
  AND p.proname IN ('configure_tenancy', 'user_tenant', 'user_tenants', 'is_member',
                    'enter_tenant', 'bootstrap_tenant')
ORDER BY p.proname;
-- The configuration is an extension configuration table: pg_dump dumps it.
SELECT 'domi.tenancy_config'::regclass = ANY (extconfig) AS config_table_dumped
FROM pg_extension WHERE extname = 'domi';

-- Before configuration: a clear error.
SET ROLE domi_tenancy_app;
SELECT domi.user_tenant('alice');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;

-- Configuration errors, each with its SQLSTATE; none is stored.
SELECT domi.configure_tenancy(NULL);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.configure_tenancy('app.memberships', user_column => 'uid');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.configure_tenancy('app.memberships', tenant_column => 'role');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.configure_tenancy('app.memberships', user_column => 'created_at');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.configure_tenancy('app.memberships', order_column => 'meta');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.configure_tenancy('app.memberships', tenants => 'app.tenants', tenants_id_column => 'name');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.configure_tenancy('app.memberships', tenants => 'app.tenants', tenants_id_column => NULL);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
CREATE VIEW app.memberships_view AS SELECT * FROM app.memberships;
SELECT domi.configure_tenancy('app.memberships_view');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
CREATE TEMP TABLE temp_memberships (user_id text, tenant_id uuid, created_at timestamptz);
SELECT domi.configure_tenancy('temp_memberships');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
DROP TABLE temp_memberships;
SELECT domi.configure_tenancy(4000000000::oid::regclass);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- A tenants id column that nothing keeps unique (here its default is a
-- constant: every new tenant would get an existing tenant's id), or only a
-- deferrable constraint (checked at commit, after the caller has entered
-- that tenant): refused (42P16).
CREATE TABLE app.loose_tenants (id uuid DEFAULT '00000000-0000-0000-0000-000000000001', name text);
CREATE TABLE app.deferred_tenants (id uuid DEFAULT gen_random_uuid() UNIQUE DEFERRABLE, name text);
SELECT domi.configure_tenancy('app.memberships', tenants => 'app.loose_tenants');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.configure_tenancy('app.memberships', tenants => 'app.deferred_tenants');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
DROP TABLE app.loose_tenants, app.deferred_tenants;
SELECT count(*) AS configurations FROM domi.tenancy_config;

-- Not the extension owner: refused, whether or not EXECUTE was granted,
-- and the table cannot be written directly either.
CREATE ROLE domi_tenancy_admin;
GRANT USAGE ON SCHEMA app TO domi_tenancy_admin;
GRANT EXECUTE ON FUNCTION domi.configure_tenancy(regclass, name, name, name, regclass, name) TO domi_tenancy_admin;
SET ROLE domi_tenancy_app;
SELECT domi.configure_tenancy('app.memberships');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SET ROLE domi_tenancy_admin;
SELECT domi.configure_tenancy('app.memberships');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO domi.tenancy_config (memberships, user_column, tenant_column) VALUES ('app.memberships', 'user_id', 'tenant_id');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT count(*) AS configurations FROM domi.tenancy_config;

-- The owner configures it; the tables are stored by identity.
SELECT domi.configure_tenancy('app.memberships', tenants => 'app.tenants');
SELECT memberships, user_column, tenant_column, order_column, tenants, tenants_id_column
FROM domi.tenancy_config;
SELECT memberships = 'app.memberships'::regclass::oid AS stores_the_oid FROM domi.tenancy_config;
-- Writing the row by hand is checked too.
UPDATE domi.tenancy_config SET user_column = 'uid';
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- The application role: lookups work, the tables themselves stay closed.
SET ROLE domi_tenancy_app;
SELECT count(*) FROM app.memberships;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT count(*) FROM app.tenants;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.user_tenant('alice') AS alice_first, domi.user_tenant('bob') AS bob_first,
	domi.user_tenant('tie') AS tie_first, domi.user_tenant('nobody') IS NULL AS nobody_none,
	domi.user_tenant(NULL) IS NULL AS null_user_none;
SELECT * FROM domi.user_tenants('alice');
SELECT * FROM domi.user_tenants('tie');
SELECT count(*) AS nobody_tenants FROM domi.user_tenants('nobody');
SELECT domi.is_member('alice', 'bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb') AS alice_in_b,
	domi.is_member('bob', 'aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa') AS bob_in_a,
	domi.is_member('bob', NULL) IS NULL AS null_tenant_null;
-- Called once per row of a query:
SELECT u, domi.user_tenant(u) FROM unnest(ARRAY['alice', 'bob', 'nobody']) u ORDER BY u;

-- enter_tenant: outside a transaction block refused (25P01), nothing set.
SELECT domi.enter_tenant('alice');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.current_tenant() IS NULL AS no_tenant;
-- In a transaction: the first membership, then a named one; the invoices
-- the role may read follow the tenant.
BEGIN;
SELECT domi.enter_tenant('alice') AS entered;
SELECT domi.current_tenant(), id, amount FROM app.invoices;
SELECT domi.enter_tenant('alice', 'bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb') AS entered;
SELECT domi.current_tenant(), id, amount FROM app.invoices;
-- A non-member is refused (42501) and the tenant stays what it was.
SAVEPOINT s;
SELECT domi.enter_tenant('bob', 'aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO SAVEPOINT s;
SELECT domi.current_tenant() AS still_b;
SELECT domi.enter_tenant('nobody');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SELECT domi.enter_tenant('nobody', 'aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SELECT domi.enter_tenant(NULL, 'aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK;
-- The tenant ends with the transaction, as with set_tenant.
BEGIN;
SELECT domi.enter_tenant('bob') AS entered;
COMMIT;
SELECT domi.current_tenant() IS NULL AS gone_after_commit;

-- Attack: a temporary table named like the configured one, first in
-- search_path, claiming that mallory is a member of A.  Harmless: the
-- functions read the configured table (by OID, names qualified, their own
-- search_path).
CREATE TEMP TABLE memberships (user_id text, tenant_id uuid, created_at timestamptz);
CREATE TEMP TABLE tenants (id uuid, name text);
INSERT INTO memberships VALUES ('mallory', 'aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa', now());
SET search_path = pg_temp, app, public;
SELECT count(*) AS fake_rows FROM memberships;
SELECT domi.user_tenant('mallory') IS NULL AS mallory_none,
	domi.is_member('mallory', 'aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa') AS mallory_in_a;
BEGIN;
SELECT domi.enter_tenant('mallory', 'aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK;
RESET search_path;
DROP TABLE pg_temp.memberships, pg_temp.tenants;
RESET ROLE;

-- Attack: a schema of the application role's, first in search_path, with a
-- table and a function named like the configured table, an "=" for text
-- that is always true, and a gen_random_uuid() that returns tenant A's id
-- (so a bootstrap would join A if the functions resolved names through the
-- caller's search_path).  Harmless.
CREATE SCHEMA evil AUTHORIZATION domi_tenancy_app;
SET ROLE domi_tenancy_app;
SET domi.rls_guard = off;
CREATE TABLE evil.memberships (user_id text, tenant_id uuid, created_at timestamptz);
INSERT INTO evil.memberships VALUES ('mallory', 'aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa', now());
CREATE FUNCTION evil.memberships() RETURNS SETOF evil.memberships
	LANGUAGE sql AS 'SELECT * FROM evil.memberships';
CREATE FUNCTION evil.always_true(text, text) RETURNS boolean
	LANGUAGE sql AS 'SELECT true';
CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.always_true);
CREATE FUNCTION evil.gen_random_uuid() RETURNS uuid
	LANGUAGE sql AS $$SELECT 'aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa'::uuid$$;
CREATE FUNCTION evil.jsonb_populate_record(anyelement, jsonb) RETURNS anyelement
	LANGUAGE sql AS 'SELECT $1';
CREATE FUNCTION evil.jsonb_to_record(jsonb) RETURNS record
	LANGUAGE sql AS $$SELECT ROW('Evil')$$;
CREATE DOMAIN evil.text AS pg_catalog.text CHECK (VALUE = 'never');
RESET domi.rls_guard;
SET search_path = evil, app, pg_catalog, public;
SELECT 'x'::text = 'y'::text AS evil_equals_in_force;
SELECT domi.user_tenant('mallory') IS NULL AS mallory_none,
	domi.user_tenant('nobody') IS NULL AS nobody_none,
	domi.is_member('mallory', 'aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa') AS mallory_in_a;
SELECT domi.bootstrap_tenant('mallory', '{"name": "Mallory"}') <> 'aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa' AS mallory_got_a_new_tenant;
RESET search_path;
RESET ROLE;
SELECT t.name, t.plan, m.role FROM app.memberships m JOIN app.tenants t ON t.id = m.tenant_id
WHERE m.user_id = 'mallory';
SELECT count(*) AS members_of_a FROM app.memberships
WHERE tenant_id = 'aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa';

-- Attack: user ids with quotes and SQL are values, never text of a query.
SET ROLE domi_tenancy_app;
SELECT domi.user_tenant($$x' OR '1'='1$$) IS NULL AS injection_none,
	domi.is_member($$alice' --$$, 'aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa') AS injection_member;
SELECT domi.bootstrap_tenant($$'); DELETE FROM app.memberships; --$$) IS NOT NULL AS created;
RESET ROLE;
SELECT user_id FROM app.memberships WHERE user_id LIKE '%DELETE%';
SELECT count(*) AS memberships_left FROM app.memberships;

-- bootstrap_tenant: a new tenant from the jsonb, defaults for the rest,
-- and the first membership.  (The lookups are STABLE: they see what the
-- statement's snapshot sees, so each check is a statement of its own.)
SET ROLE domi_tenancy_app;
SELECT domi.bootstrap_tenant('carol', '{"name": "Carol & Co", "plan": "pro"}') AS carol_tenant \gset
SELECT domi.user_tenant('carol') = :'carol_tenant' AS carol_bootstrapped;
-- Again: the same tenant back, nothing inserted.
SELECT domi.bootstrap_tenant('carol', '{"name": "Another"}') = :'carol_tenant' AS same_tenant;
-- An existing member gets their first tenant.
SELECT domi.bootstrap_tenant('alice', '{"name": "Alice again"}') AS alice_existing;
-- Defaults only (the jsonb may be omitted, or NULL).
SELECT domi.bootstrap_tenant('erin') AS erin_tenant \gset
SELECT domi.user_tenant('erin') = :'erin_tenant' AS erin_defaults;
SELECT domi.bootstrap_tenant('frank', NULL) AS frank_tenant \gset
SELECT domi.user_tenant('frank') = :'frank_tenant' AS frank_null_object;
-- Bootstrap and enter in one statement.
BEGIN;
SELECT domi.enter_tenant('dave', domi.bootstrap_tenant('dave', '{"name": "Dave"}')) = domi.current_tenant() AS dave_entered;
COMMIT;
RESET ROLE;
SELECT m.user_id, t.name, t.plan, t.slug, m.role FROM app.memberships m
JOIN app.tenants t ON t.id = m.tenant_id
WHERE m.user_id IN ('carol', 'dave', 'erin', 'frank') ORDER BY m.user_id;
SELECT count(*) AS tenants, (SELECT count(*) FROM app.memberships) AS memberships FROM app.tenants;

-- Bad tenant objects: refused with their SQLSTATE, nothing inserted.
SET ROLE domi_tenancy_app;
SELECT domi.bootstrap_tenant('gina', '{"nope": 1}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.bootstrap_tenant('gina', '{"id": "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.bootstrap_tenant('gina', '{"user_id": "alice"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.bootstrap_tenant('gina', '{"tenant_id": "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.bootstrap_tenant('gina', '{"slug": "taken"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.bootstrap_tenant('gina', '{"ctid": "(0,1)"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.bootstrap_tenant('gina', '{"name\"); DROP TABLE app.tenants; --": 1}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.bootstrap_tenant('gina', '["name"]');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.bootstrap_tenant('gina', '"Gina"');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.bootstrap_tenant('gina', '{"created_at": "not a time"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- (terse: the detail would show the failing row, with its random id)
\set VERBOSITY terse
SELECT domi.bootstrap_tenant('gina', '{"name": null}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
\set VERBOSITY default
SELECT domi.bootstrap_tenant(NULL, '{"name": "Nobody"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.user_tenant('gina') IS NULL AS gina_has_none;
RESET ROLE;
SELECT count(*) AS tenants, (SELECT count(*) FROM app.memberships) AS memberships FROM app.tenants;

-- The tenant object sets only the columns it names, each typed by its
-- column (a domain's checks, a varchar's length): a column of a domain
-- that refuses NULL, left out, keeps its default.
CREATE DOMAIN app.tier AS text NOT NULL CHECK (VALUE IN ('basic', 'gold'));
ALTER TABLE app.tenants ADD COLUMN tier app.tier DEFAULT 'basic', ADD COLUMN code varchar(3);
SET ROLE domi_tenancy_app;
SELECT domi.bootstrap_tenant('ivan', '{"name": "Ivan"}') IS NOT NULL AS ivan_bootstrapped;
SELECT domi.bootstrap_tenant('judy', '{"name": "Judy", "tier": "gold", "code": "jdy"}') IS NOT NULL AS judy_bootstrapped;
SELECT domi.bootstrap_tenant('kim', '{"tier": "platinum"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.bootstrap_tenant('kim', '{"tier": null}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.bootstrap_tenant('kim', '{"code": "kimberly"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT m.user_id, t.name, t.tier, t.code FROM app.tenants t JOIN app.memberships m ON m.tenant_id = t.id
WHERE m.user_id IN ('ivan', 'judy', 'kim') ORDER BY m.user_id;
ALTER TABLE app.tenants DROP COLUMN tier, DROP COLUMN code;
DROP DOMAIN app.tier;

-- A trigger of the application's that skips the membership's insert, or
-- the tenant's: an error (55000) rather than a tenant without its
-- membership, and nothing is left behind.
CREATE FUNCTION app.skip_row() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END';
CREATE TRIGGER skip_membership BEFORE INSERT ON app.memberships
	FOR EACH ROW EXECUTE FUNCTION app.skip_row();
SET ROLE domi_tenancy_app;
SELECT domi.bootstrap_tenant('hank', '{"name": "Hank"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;
DROP TRIGGER skip_membership ON app.memberships;
CREATE TRIGGER skip_tenant BEFORE INSERT ON app.tenants
	FOR EACH ROW EXECUTE FUNCTION app.skip_row();
SET ROLE domi_tenancy_app;
SELECT domi.bootstrap_tenant('hank', '{"name": "Hank"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;
DROP TRIGGER skip_tenant ON app.tenants;
DROP FUNCTION app.skip_row();
SELECT count(*) AS hank_tenants, (SELECT count(*) FROM app.memberships WHERE user_id = 'hank') AS hank_memberships
FROM app.tenants WHERE name = 'Hank';

-- The table renamed: the lookups follow its identity.  A new table under
-- the old name, with a forged membership, is not read.
ALTER TABLE app.memberships RENAME TO members;
SET domi.rls_guard = off;
CREATE TABLE app.memberships (user_id text, tenant_id uuid, created_at timestamptz);
RESET domi.rls_guard;
INSERT INTO app.memberships VALUES ('trudy', 'aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa', '2000-01-01');
SELECT memberships FROM domi.tenancy_config;
SET ROLE domi_tenancy_app;
SELECT domi.user_tenant('alice') AS alice_first, domi.is_member('trudy', 'aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa') AS trudy_in_a;
RESET ROLE;
DROP TABLE app.memberships;
ALTER TABLE app.members RENAME TO memberships;

-- The tenants table renamed, and a decoy under its old name:
-- bootstrap_tenant writes into the configured table (the lookups were
-- ready before the rename).
SET ROLE domi_tenancy_app;
SELECT domi.bootstrap_tenant('alice') AS alice_first;
RESET ROLE;
ALTER TABLE app.tenants RENAME TO organisations;
CREATE TABLE app.tenants (id uuid DEFAULT gen_random_uuid(), name text, plan text, slug text,
	created_at timestamptz);
SET ROLE domi_tenancy_app;
SELECT domi.bootstrap_tenant('uma', '{"name": "Uma"}') IS NOT NULL AS uma_bootstrapped;
RESET ROLE;
SELECT (SELECT count(*) FROM app.tenants) AS rows_in_decoy,
	(SELECT count(*) FROM app.organisations WHERE name = 'Uma') AS uma_in_configured;
DROP TABLE app.tenants;
ALTER TABLE app.organisations RENAME TO tenants;

-- The schema renamed, and a new schema under the old name with a forged
-- table: the lookups are built again from the OIDs, not re-parsed.
SET ROLE domi_tenancy_app;
SELECT domi.user_tenant('trudy') IS NULL AS trudy_none;
RESET ROLE;
ALTER SCHEMA app RENAME TO app_moved;
CREATE SCHEMA app;
SET domi.rls_guard = off;
CREATE TABLE app.memberships (user_id text, tenant_id uuid, created_at timestamptz);
RESET domi.rls_guard;
INSERT INTO app.memberships VALUES ('trudy', 'aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa', '2000-01-01');
GRANT USAGE ON SCHEMA app TO domi_tenancy_app;
SET ROLE domi_tenancy_app;
SELECT domi.user_tenant('trudy') IS NULL AS trudy_none, domi.user_tenant('alice') AS alice_first;
RESET ROLE;
DROP SCHEMA app CASCADE;
ALTER SCHEMA app_moved RENAME TO app;

-- With an index on (user, order, tenant) the lookups scan it directly;
-- without one, the general scan answers.  The answers are the same, and an
-- index whose order or rows differ from the query's is not used: one
-- descending on the order column, one partial (it lacks alice's first
-- membership).  (The primary key (user_id, tenant_id) does not fit either.)
CREATE TEMP TABLE expected_answers AS
SELECT domi.user_tenant('alice') AS alice_first,
	(SELECT array_agg(t) FROM domi.user_tenants('alice') t) AS alice_all,
	(SELECT array_agg(t) FROM domi.user_tenants('tie') t) AS tie_all,
	domi.is_member('bob', 'bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb') AS bob_in_b,
	domi.is_member('bob', 'aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa') AS bob_in_a;
SELECT * FROM expected_answers;
CREATE FUNCTION pg_temp.answers_unchanged() RETURNS boolean LANGUAGE sql AS $$
	SELECT (domi.user_tenant('alice'),
		(SELECT array_agg(t) FROM domi.user_tenants('alice') t),
		(SELECT array_agg(t) FROM domi.user_tenants('tie') t),
		domi.is_member('bob', 'bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb'),
		domi.is_member('bob', 'aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa'))
		IS NOT DISTINCT FROM
		(SELECT (alice_first, alice_all, tie_all, bob_in_b, bob_in_a) FROM expected_answers)
$$;
DROP INDEX app.memberships_user_id_created_at_tenant_id_idx;
SELECT pg_temp.answers_unchanged() AS without_index;
CREATE INDEX memberships_desc ON app.memberships (user_id, created_at DESC, tenant_id);
SELECT pg_temp.answers_unchanged() AS with_descending_index;
DROP INDEX app.memberships_desc;
CREATE INDEX memberships_partial ON app.memberships (user_id, created_at, tenant_id)
	WHERE created_at > '2024-01-15';
SELECT pg_temp.answers_unchanged() AS with_partial_index;
DROP INDEX app.memberships_partial;
CREATE INDEX memberships_lookup ON app.memberships (user_id, created_at, tenant_id);
SELECT pg_temp.answers_unchanged() AS with_lookup_index_again;
BEGIN;
SELECT domi.enter_tenant('alice') = 'aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa' AS entered_by_index;
ROLLBACK;
-- Deleted rows are not seen (the index still has their entries until
-- vacuum), in either path.
BEGIN;
DELETE FROM app.memberships WHERE user_id = 'alice' AND tenant_id = 'aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa';
SELECT domi.user_tenant('alice') AS alice_first_after_delete;
ROLLBACK;
SELECT domi.user_tenant('alice') AS alice_first_after_rollback;

-- A configured column renamed away: a clear error until reconfigured.
ALTER TABLE app.memberships RENAME COLUMN user_id TO account_id;
SET ROLE domi_tenancy_app;
SELECT domi.user_tenant('alice');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;
ALTER TABLE app.memberships RENAME COLUMN account_id TO user_id;
SET ROLE domi_tenancy_app;
SELECT domi.user_tenant('alice') AS alice_first;
RESET ROLE;

-- Reconfiguring takes effect in the same session (the lookups are
-- rebuilt): a second pair of tables whose tenants have no id default, so
-- that bootstrap_tenant generates it; no order column (by tenant id only).
SET domi.rls_guard = off;
CREATE TABLE app.orgs (org uuid PRIMARY KEY, title text);
CREATE TABLE app.org_members (account varchar(40), org_id uuid REFERENCES app.orgs);
RESET domi.rls_guard;
INSERT INTO app.orgs VALUES ('cccccccc-cccc-cccc-cccc-cccccccccccc', 'C'), ('bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb', 'B');
INSERT INTO app.org_members VALUES ('alice', 'cccccccc-cccc-cccc-cccc-cccccccccccc'), ('alice', 'bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb');
SELECT domi.configure_tenancy('app.org_members', 'account', 'org_id', NULL, 'app.orgs', 'org');
SET ROLE domi_tenancy_app;
SELECT * FROM domi.user_tenants('alice');
SELECT domi.bootstrap_tenant('zoe', '{"title": "Zoe"}') AS zoe_tenant \gset
SELECT domi.user_tenant('zoe') = :'zoe_tenant' AS zoe_bootstrapped;
RESET ROLE;
SELECT o.title, o.org IS NOT NULL AS has_id FROM app.orgs o JOIN app.org_members m ON m.org_id = o.org
WHERE m.account = 'zoe';

-- A partitioned memberships table (the general scan answers; bootstrap_tenant
-- inserts through the parent into a partition).
SET domi.rls_guard = off;
CREATE TABLE app.part_members (user_id text NOT NULL, tenant_id uuid NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()) PARTITION BY HASH (user_id);
CREATE TABLE app.part_members_0 PARTITION OF app.part_members FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE app.part_members_1 PARTITION OF app.part_members FOR VALUES WITH (MODULUS 2, REMAINDER 1);
CREATE INDEX ON app.part_members (user_id, created_at, tenant_id);
RESET domi.rls_guard;
INSERT INTO app.part_members VALUES
	('alice', 'bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb', '2024-05-01'),
	('alice', 'cccccccc-cccc-cccc-cccc-cccccccccccc', '2024-04-01');
SELECT domi.configure_tenancy('app.part_members', tenants => 'app.orgs', tenants_id_column => 'org');
SET ROLE domi_tenancy_app;
SELECT * FROM domi.user_tenants('alice');
SELECT domi.bootstrap_tenant('yves', '{"title": "Yves"}') AS yves_tenant \gset
SELECT domi.user_tenant('yves') = :'yves_tenant' AS yves_bootstrapped;
RESET ROLE;
SELECT tableoid::regclass AS stored_in FROM app.part_members WHERE user_id = 'yves';
SELECT domi.configure_tenancy('app.org_members', 'account', 'org_id', NULL, 'app.orgs', 'org');
DROP TABLE app.part_members;

-- A configured table dropped: a clear error.
DROP TABLE app.org_members;
SET ROLE domi_tenancy_app;
SELECT domi.user_tenant('alice');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;

-- The tenants id column's key dropped after the configuration:
-- bootstrap_tenant refuses (42P16) rather than trust the id default (now a
-- constant); the lookups still answer.
CREATE TABLE app.keyed_orgs (id uuid PRIMARY KEY DEFAULT gen_random_uuid());
SELECT domi.configure_tenancy('app.memberships', tenants => 'app.keyed_orgs');
ALTER TABLE app.keyed_orgs DROP CONSTRAINT keyed_orgs_pkey;
ALTER TABLE app.keyed_orgs ALTER COLUMN id SET DEFAULT '00000000-0000-0000-0000-00000000000a';
SET ROLE domi_tenancy_app;
SELECT domi.user_tenant('alice') AS alice_first;
SELECT domi.bootstrap_tenant('yann');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT count(*) AS keyed_orgs FROM app.keyed_orgs;
DROP TABLE app.keyed_orgs;

-- Without a tenants table there is nothing to bootstrap.
SELECT domi.configure_tenancy('app.memberships');
SET ROLE domi_tenancy_app;
SELECT domi.user_tenant('alice') AS alice_first;
SELECT domi.bootstrap_tenant('yann');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;

-- The index path against the plain query, on random memberships (a varchar
-- user column; ties on the order column, NULL orders, rows without a
-- tenant, which are no memberships, repeated memberships): the answers of
-- all three lookups for every user, compared
-- with those of queries that read the table without any index.  Without
-- the index (the general scan answers), with it, inside a transaction that
-- deletes and updates rows (HOT updates and others, user ids changed),
-- after its rollback and after its commit, after a VACUUM (which makes
-- pages all-visible if no other snapshot holds it back: then the
-- index-only scan skips the heap; TAP 043 checks that case for sure), and
-- with an
-- inheritance child, whose rows the queries read and the index has not
-- (the general scan answers then, through the parent's index too).
SET domi.rls_guard = off;
CREATE TABLE app.rand_members (user_id varchar(10), tenant_id uuid, created_at date, pad int);
RESET domi.rls_guard;
SELECT setseed(0.5);
INSERT INTO app.rand_members
SELECT CASE WHEN random() < 0.03 THEN NULL ELSE 'u' || (random() * 30)::int END,
	CASE WHEN random() < 0.05 THEN NULL
		ELSE ('0000000' || (random() * 5)::int || '-0000-0000-0000-000000000000')::uuid END,
	CASE WHEN random() < 0.1 THEN NULL ELSE date '2024-01-01' + (random() * 4)::int END,
	0
FROM generate_series(1, 400);
SELECT domi.configure_tenancy('app.rand_members');
CREATE FUNCTION pg_temp.query_all(u text) RETURNS uuid[] LANGUAGE sql STABLE
	SET enable_indexscan = off SET enable_indexonlyscan = off SET enable_bitmapscan = off
	AS $$SELECT array_agg(tenant_id ORDER BY created_at, tenant_id) FROM app.rand_members
		WHERE user_id = u AND tenant_id IS NOT NULL$$;
CREATE FUNCTION pg_temp.lookup_all(u text) RETURNS uuid[] LANGUAGE sql STABLE
	AS $$SELECT array_agg(t ORDER BY n) FROM domi.user_tenants(u) WITH ORDINALITY x(t, n)$$;
-- users: all of the table's, and one with none
CREATE FUNCTION pg_temp.lookup_mismatches() RETURNS TABLE (users bigint, with_tenant bigint, mismatches bigint)
	LANGUAGE sql AS $$
	SELECT count(*), count(*) FILTER (WHERE pg_temp.query_all(u) IS NOT NULL),
		count(*) FILTER (WHERE
			domi.user_tenant(u) IS DISTINCT FROM (pg_temp.query_all(u))[1]
			OR pg_temp.lookup_all(u) IS DISTINCT FROM pg_temp.query_all(u)
			OR EXISTS (SELECT FROM generate_series(0, 5) i,
					LATERAL (SELECT ('0000000' || i || '-0000-0000-0000-000000000000')::uuid AS t) x
				WHERE domi.is_member(u, x.t) IS DISTINCT FROM coalesce(x.t = ANY (pg_temp.query_all(u)), false)))
	FROM (SELECT DISTINCT user_id::text AS u FROM app.rand_members WHERE user_id IS NOT NULL
		UNION SELECT 'nobody') users
$$;
CREATE FUNCTION pg_temp.compare(label text) RETURNS TABLE (label text, users bigint, mismatches bigint, lookup_index_scanned boolean)
	LANGUAGE sql AS $$
	SELECT label, users, mismatches,
		coalesce(pg_stat_get_xact_numscans(to_regclass('app.rand_lookup')) > 0, false)
	FROM pg_temp.lookup_mismatches()
$$;
SELECT users > 25 AS many_users, with_tenant > 25 AS most_with_tenants FROM pg_temp.lookup_mismatches();
BEGIN;
SELECT * FROM pg_temp.compare('no index');
COMMIT;
CREATE INDEX rand_lookup ON app.rand_members (user_id, created_at, tenant_id);
BEGIN;
SELECT * FROM pg_temp.compare('lookup index');
DELETE FROM app.rand_members WHERE random() < 0.2;
UPDATE app.rand_members SET pad = pad + 1 WHERE random() < 0.3;
UPDATE app.rand_members SET tenant_id = ('0000000' || (random() * 5)::int || '-0000-0000-0000-000000000000')::uuid
WHERE random() < 0.2;
UPDATE app.rand_members SET user_id = 'u' || (random() * 35)::int WHERE random() < 0.2;
INSERT INTO app.rand_members VALUES ('u7', '00000005-0000-0000-0000-000000000000', '2023-12-31', 0);
SELECT * FROM pg_temp.compare('changes in the transaction');
ROLLBACK;
BEGIN;
SELECT * FROM pg_temp.compare('after the rollback');
DELETE FROM app.rand_members WHERE random() < 0.2;
UPDATE app.rand_members SET pad = pad + 1 WHERE random() < 0.3;
UPDATE app.rand_members SET created_at = created_at + 1 WHERE random() < 0.2;
UPDATE app.rand_members SET user_id = 'u' || (random() * 35)::int WHERE random() < 0.2;
COMMIT;
BEGIN;
SELECT * FROM pg_temp.compare('after the commit');
COMMIT;
VACUUM (FREEZE) app.rand_members;
BEGIN;
SELECT * FROM pg_temp.compare('vacuumed');
UPDATE app.rand_members SET tenant_id = NULL WHERE user_id = 'u3';
SELECT * FROM pg_temp.compare('vacuumed, then changed');
COMMIT;
SET domi.rls_guard = off;
CREATE TABLE app.rand_child () INHERITS (app.rand_members);
RESET domi.rls_guard;
INSERT INTO app.rand_child VALUES ('u5', '00000009-0000-0000-0000-000000000000', '2000-01-01', 0),
	('child only', '00000009-0000-0000-0000-000000000000', NULL, 0);
BEGIN;
SELECT * FROM pg_temp.compare('inheritance child');
COMMIT;
SELECT domi.user_tenant('u5') AS u5_first, domi.user_tenant('child only') AS child_only_first;
DROP TABLE app.rand_child;
DROP TABLE app.rand_members;

-- An index whose order column has another collation than the column is
-- not the queries' order, and is not used: under the ICU root collation
-- 'b' sorts before 'B', under "C" after it.
SET domi.rls_guard = off;
CREATE TABLE app.ranked_members (user_id text, tenant_id uuid, rank text COLLATE "und-x-icu");
RESET domi.rls_guard;
CREATE INDEX ON app.ranked_members (user_id, rank COLLATE "C", tenant_id);
INSERT INTO app.ranked_members VALUES
	('alice', 'aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa', 'b'),
	('alice', 'bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb', 'B');
SELECT domi.configure_tenancy('app.ranked_members', order_column => 'rank');
SELECT domi.user_tenant('alice') AS alice_first,
	(SELECT tenant_id FROM app.ranked_members WHERE user_id = 'alice' ORDER BY rank, tenant_id LIMIT 1) AS query_first;
-- A row without a tenant is no membership: the lookups skip it, and
-- bootstrap_tenant makes one tenant for that user, once (the row sorts
-- first: taken for the first membership, it would make the user seem to
-- have none, and a new tenant at every call).
SELECT domi.configure_tenancy('app.ranked_members', order_column => 'rank',
	tenants => 'app.orgs', tenants_id_column => 'org');
INSERT INTO app.ranked_members VALUES ('nina', NULL, 'a'), ('alice', NULL, 'a');
SET ROLE domi_tenancy_app;
SELECT domi.user_tenant('nina') IS NULL AS nina_none, domi.user_tenant('alice') AS alice_first,
	(SELECT array_agg(t) FROM domi.user_tenants('alice') t) AS alice_all;
SELECT domi.bootstrap_tenant('nina', '{"title": "Nina"}') AS nina_tenant \gset
SELECT domi.bootstrap_tenant('nina', '{"title": "Nina again"}') = :'nina_tenant' AS same_tenant,
	domi.user_tenant('nina') = :'nina_tenant' AS nina_bootstrapped;
RESET ROLE;
SELECT count(*) AS nina_tenants FROM app.orgs WHERE title LIKE 'Nina%';
DROP TABLE app.ranked_members;
SELECT domi.configure_tenancy('app.memberships');

-- Clean up (roles are cluster-wide).
DELETE FROM domi.tenancy_config;
DROP SCHEMA app CASCADE;
DROP SCHEMA evil CASCADE;
DROP OWNED BY domi_tenancy_app, domi_tenancy_admin;
DROP ROLE domi_tenancy_app, domi_tenancy_admin;
