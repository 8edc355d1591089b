-- Keyring hardening (0.3.0): retirement refuses while a registered column
-- holds values under the version; first keys only for tenants that exist
-- (tenants table) or for members of domi.first_key_role; the drop guard
-- answers a role that may not drop domi with the permission error, not the
-- key count; decrypting under a tenant without keys says that the value may
-- be another tenant's.  Concurrent sessions (a transaction open across
-- rotate, rekey and retire) are test/t/026_keyring_retire_race.pl.

SET domi.rls_guard = off;
\set ta '''a0a0a0a0-0000-4000-8000-0000000000a1'''
\set tb '''b0b0b0b0-0000-4000-8000-0000000000b2'''
\set tn '''e0e0e0e0-0000-4000-8000-0000000000e5'''
SELECT current_user AS owner \gset

--------------------------------------------------------------------------
-- Retirement checks the registered columns
--------------------------------------------------------------------------
CREATE TABLE kh_notes (id int PRIMARY KEY, tenant_id uuid, body bytea);
INSERT INTO kh_notes SELECT g, CASE WHEN g % 2 = 0 THEN :ta::uuid ELSE :tb::uuid END,
	domi.encrypt_text('note ' || g, CASE WHEN g % 2 = 0 THEN :ta::uuid ELSE :tb::uuid END)
FROM generate_series(1, 10) g;
SELECT domi.rotate_tenant_key(:ta) AS ta_version, domi.rotate_tenant_key(:tb) AS tb_version;

-- A clean registry (keyring.sql's re-keys registered their columns).
DELETE FROM domi.encrypted_columns;
SELECT domi.register_encrypted_column('kh_notes', 'body');
SELECT tbl, col, tenant_col FROM domi.encrypted_columns;
-- Registering again changes nothing; bad arguments change nothing.
SELECT domi.register_encrypted_column('kh_notes', 'body', 'tenant_id');
\set VERBOSITY terse
SELECT domi.register_encrypted_column('kh_notes', 'id');
SELECT domi.register_encrypted_column('kh_notes', 'body', 'id');
SELECT domi.register_encrypted_column('kh_notes', 'nothing');
SELECT domi.register_encrypted_column('kh_notes', NULL);
SELECT domi.register_encrypted_column('pg_class', 'relname');
\set VERBOSITY default
SELECT count(*) AS registered FROM domi.encrypted_columns;

-- Version 1 of tenant a still encrypts five values: retiring it is refused,
-- naming the column and the re-key that fixes it; nothing changes.
SELECT domi.retire_tenant_key(:ta, 1);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT state FROM domi.tenant_keys WHERE tenant = :ta ORDER BY version;
SELECT count(*) AS opens FROM kh_notes WHERE domi.decrypt_text(body, tenant_id) = 'note ' || id;

-- Re-keyed, it retires, and every value opens.
CALL domi.rekey('kh_notes', 'body');
SELECT domi.retire_tenant_key(:ta, 1), domi.retire_tenant_key(:tb, 1);
SELECT tenant = :ta AS ta, version, state FROM domi.tenant_keys
WHERE tenant IN (:ta, :tb) ORDER BY 1 DESC, 2;
SELECT count(*) AS opens FROM kh_notes WHERE domi.decrypt_text(body, tenant_id) = 'note ' || id;

-- A value sealed under version 2 and kept outside the table, stored after
-- a rotation and a re-key (an application that holds boxes): the
-- retirement of version 2 finds it; after another re-key it goes through.
SELECT domi.encrypt_text('kept outside', :ta) AS kept \gset
SELECT domi.rotate_tenant_key(:ta) AS ta_version;
CALL domi.rekey('kh_notes', 'body');
INSERT INTO kh_notes VALUES (11, :ta, :'kept');
SELECT domi.retire_tenant_key(:ta, 2);
CALL domi.rekey('kh_notes', 'body');
SELECT domi.retire_tenant_key(:ta, 2);
SELECT domi.decrypt_text(body, tenant_id) FROM kh_notes WHERE id = 11;

-- A version demoted in this very transaction cannot be retired in it:
-- other sessions still seal under it until the rotation commits.
BEGIN;
SELECT domi.rotate_tenant_key(:tb) AS tb_version;
SELECT domi.retire_tenant_key(:tb, 2);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK;

-- The check reads every row, whatever the policies: a role under
-- row-level security is refused rather than trusted.
CREATE ROLE kh_admin;
GRANT EXECUTE ON FUNCTION domi.retire_tenant_key(uuid, int), domi.rotate_tenant_key(uuid) TO kh_admin;
GRANT SELECT ON kh_notes TO kh_admin;
ALTER TABLE kh_notes ENABLE ROW LEVEL SECURITY;
CREATE POLICY kh_all ON kh_notes USING (true);
SELECT domi.rotate_tenant_key(:tb) AS tb_version;
SET ROLE kh_admin;
SELECT domi.retire_tenant_key(:tb, 2);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;
ALTER TABLE kh_notes DISABLE ROW LEVEL SECURITY;
-- Without SELECT on the table: PostgreSQL's permission error.
REVOKE SELECT ON kh_notes FROM kh_admin;
SET ROLE kh_admin;
\set VERBOSITY terse
SELECT domi.retire_tenant_key(:tb, 2);
\set VERBOSITY default
RESET ROLE;
-- Registering needs UPDATE on the table.
GRANT EXECUTE ON FUNCTION domi.register_encrypted_column(regclass, name, name) TO kh_admin;
SET ROLE kh_admin;
\set VERBOSITY terse
SELECT domi.register_encrypted_column('kh_notes', 'body');
\set VERBOSITY default
RESET ROLE;

-- A registered column renamed away: the retirement stops and says what to do.
ALTER TABLE kh_notes RENAME body TO body_renamed;
SELECT domi.retire_tenant_key(:tb, 2);
ALTER TABLE kh_notes RENAME body_renamed TO body;
-- Unregistered, the column is not checked any more; a dropped table is
-- skipped.
SELECT domi.unregister_encrypted_column('kh_notes', 'body') AS removed,
	domi.unregister_encrypted_column('kh_notes', 'body') AS removed_again;
CREATE TABLE kh_gone (tenant_id uuid, body bytea);
SELECT domi.register_encrypted_column('kh_gone', 'body');
DROP TABLE kh_gone;
SELECT domi.retire_tenant_key(:tb, 2);
SELECT state FROM domi.tenant_keys WHERE tenant = :tb AND version = 2;

--------------------------------------------------------------------------
-- Decrypting under a tenant without keys
--------------------------------------------------------------------------
-- The box carries no tenant, so the error cannot name its owner; it says
-- that the value is under no key of the tenant asked for and may belong to
-- another one.  No key is made.
SELECT domi.decrypt_text(body, :tn) FROM kh_notes WHERE id = 2;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
BEGIN;
SELECT domi.set_tenant(:tn);
SELECT domi.decrypt_text(body) FROM kh_notes WHERE id = 2;
ROLLBACK;
-- A tenant with keys of its own: none of them opens it.
SELECT domi.decrypt_text(body, :tb) FROM kh_notes WHERE id = 2;
SELECT count(*) AS tn_keys FROM domi.tenant_keys WHERE tenant = :tn;

--------------------------------------------------------------------------
-- First keys: domi.first_key_role
--------------------------------------------------------------------------
CREATE ROLE kh_app;
CREATE ROLE kh_provisioner;
GRANT EXECUTE ON FUNCTION domi.encrypt(bytea), domi.encrypt_text(text),
	domi.decrypt_text(bytea) TO kh_app;
SELECT name, setting, context FROM pg_settings WHERE name = 'domi.first_key_role';
-- Only superusers set it (or ALTER DATABASE ... SET by a superuser, or a
-- role granted SET on the parameter).
SET ROLE kh_app;
SET domi.first_key_role = 'kh_app';
RESET ROLE;
SET domi.first_key_role = 'kh_provisioner';
SET ROLE kh_app;
-- An existing tenant's key is used as before.
BEGIN;
SELECT domi.set_tenant(:ta);
SELECT domi.decrypt_text(domi.encrypt_text('still fine')) AS existing_tenant;
COMMIT;
-- A first key is refused, and nothing is stored.
BEGIN;
SELECT domi.set_tenant(:tn);
SELECT domi.encrypt_text('made up');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK;
RESET ROLE;
SELECT count(*) AS tn_keys FROM domi.tenant_keys WHERE tenant = :tn;
-- A member of the role may.
GRANT kh_provisioner TO kh_app;
SET ROLE kh_app;
BEGIN;
SELECT domi.set_tenant(:tn);
SELECT length(domi.encrypt_text('provisioned')) AS sealed;
COMMIT;
RESET ROLE;
SELECT count(*) AS tn_keys FROM domi.tenant_keys WHERE tenant = :tn;
REVOKE kh_provisioner FROM kh_app;
-- A role that does not exist allows nobody (fails closed), not everybody.
SET domi.first_key_role = 'kh_no_such_role';
SELECT domi.encrypt_text('x', 'f0f0f0f0-0000-4000-8000-0000000000f6');
RESET domi.first_key_role;

--------------------------------------------------------------------------
-- First keys: a configured tenants table
--------------------------------------------------------------------------
CREATE TABLE kh_tenants (id uuid PRIMARY KEY, name text);
CREATE TABLE kh_members (user_id text, tenant_id uuid REFERENCES kh_tenants, created_at timestamptz DEFAULT now());
INSERT INTO kh_tenants VALUES ('11110000-0000-4000-8000-000000000001', 'one');
SELECT domi.configure_tenancy('kh_members', tenants => 'kh_tenants');
-- RLS that hides every row from everyone, forced: the check still sees the
-- tenant (it does not run the policy, nor any of the table owner's code).
ALTER TABLE kh_tenants ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
SET ROLE kh_app;
-- An id that is not a tenant: refused (23503), nothing stored.
BEGIN;
SELECT domi.set_tenant('22220000-0000-4000-8000-000000000002');
SELECT domi.encrypt_text('made up');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK;
-- A tenant that exists gets its first key.
BEGIN;
SELECT domi.set_tenant('11110000-0000-4000-8000-000000000001');
SELECT domi.decrypt_text(domi.encrypt_text('real tenant')) AS existing_row;
COMMIT;
RESET ROLE;
SELECT tenant, version, state FROM domi.tenant_keys
WHERE tenant IN ('11110000-0000-4000-8000-000000000001', '22220000-0000-4000-8000-000000000002');
-- The same for rotation and import of a tenant without keys.
SELECT domi.rotate_tenant_key('33330000-0000-4000-8000-000000000003');
SELECT domi.import_tenant_key('33330000-0000-4000-8000-000000000003', decode(repeat('ab', 32), 'hex'));
-- A tenant created earlier in the same transaction counts.
BEGIN;
INSERT INTO kh_tenants VALUES ('33330000-0000-4000-8000-000000000003', 'three');
SELECT length(domi.encrypt_text('new tenant', '33330000-0000-4000-8000-000000000003')) AS sealed;
ROLLBACK;
-- Without an index on the id column the heap is scanned; still no SQL.
ALTER TABLE kh_members DROP CONSTRAINT kh_members_tenant_id_fkey;
ALTER TABLE kh_tenants DROP CONSTRAINT kh_tenants_pkey;
INSERT INTO kh_tenants VALUES ('44440000-0000-4000-8000-000000000004', 'four');
SELECT length(domi.encrypt_text('by heap scan', '44440000-0000-4000-8000-000000000004')) AS sealed;
SELECT domi.encrypt_text('by heap scan', '55550000-0000-4000-8000-000000000005');
-- A partitioned tenants table: its partitions are looked in.
DELETE FROM domi.tenancy_config;
CREATE TABLE kh_ptenants (id uuid PRIMARY KEY, region text) PARTITION BY HASH (id);
CREATE TABLE kh_ptenants_0 PARTITION OF kh_ptenants FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE kh_ptenants_1 PARTITION OF kh_ptenants FOR VALUES WITH (MODULUS 2, REMAINDER 1);
INSERT INTO kh_ptenants SELECT ('66660000-0000-4000-8000-00000000000' || g)::uuid, 'eu' FROM generate_series(1, 4) g;
SELECT domi.configure_tenancy('kh_members', tenants => 'kh_ptenants');
SELECT count(length(domi.encrypt_text('partitioned', ('66660000-0000-4000-8000-00000000000' || g)::uuid)))
	AS sealed FROM generate_series(1, 4) g;
SELECT domi.encrypt_text('partitioned', '66660000-0000-4000-8000-000000000009');
DELETE FROM domi.tenancy_config;

--------------------------------------------------------------------------
-- The drop guard answers a role that may not drop domi with PostgreSQL's
-- permission error, and tells it nothing of the keyring
--------------------------------------------------------------------------
CREATE ROLE kh_nobody;
CREATE ROLE kh_owner_member;
GRANT :"owner" TO kh_owner_member;
SET ROLE kh_nobody;
DROP EXTENSION domi;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
DROP EXTENSION domi CASCADE;
DROP SCHEMA domi CASCADE;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
DROP OWNED BY :"owner" CASCADE;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;
-- A role with the owner's privileges gets the keyring's refusal (the
-- count depends on the files before this one).
SET ROLE kh_owner_member;
DO $$
BEGIN
	DROP EXTENSION domi;
EXCEPTION WHEN dependent_objects_still_exist THEN
	RAISE NOTICE '%', regexp_replace(SQLERRM, '[0-9]+', 'N');
END
$$;
RESET ROLE;
SELECT extname FROM pg_extension WHERE extname = 'domi';

-- Clean up: later files start from a clean state.
DROP TABLE kh_notes, kh_members, kh_tenants, kh_ptenants;
DELETE FROM domi.encrypted_columns;
SELECT sum(domi.destroy_tenant_keys(t)) > 0 AS destroyed
FROM unnest(ARRAY[:ta, :tb, :tn, '11110000-0000-4000-8000-000000000001',
	'44440000-0000-4000-8000-000000000004']::uuid[]
	|| ARRAY(SELECT ('66660000-0000-4000-8000-00000000000' || g)::uuid FROM generate_series(1, 4) g)) t;
DROP OWNED BY kh_admin, kh_app;
DROP ROLE kh_admin, kh_app, kh_provisioner, kh_nobody, kh_owner_member;
