-- Keyring: per-tenant keys wrapped by the root key (scripts/test starts this
-- cluster with a fresh random domi.root_key_file), encrypt/decrypt, rotation,
-- retirement, destruction, import of an application-wide key, re-keying in
-- place, privileges and the attacks they stop.  Restarts, other root keys,
-- several sessions and the log scan are TAP tests (test/t/02x_keyring_*.pl).

-- The RLS guard's warnings about these test tables are not the subject here.
SET domi.rls_guard = off;

-- Tenants of this file only.
\set ta '''aaaaaaaa-0000-4000-8000-000000000001'''
\set tb '''bbbbbbbb-0000-4000-8000-000000000002'''
\set tc '''cccccccc-0000-4000-8000-000000000003'''
\set td '''dddddddd-0000-4000-8000-000000000004'''

-- The contract: encrypt is VOLATILE and PARALLEL UNSAFE (a nonce, and
-- perhaps the tenant's first key, a write); decrypt is STABLE (it reads
-- keyring state), never IMMUTABLE; the forms with a tenant are not STRICT.
SELECT p.oid::regprocedure AS function, provolatile, proisstrict, proparallel, prosecdef
FROM pg_catalog.pg_proc p
WHERE pronamespace = 'domi'::regnamespace
	AND proname IN ('encrypt', 'decrypt', 'encrypt_text', 'decrypt_text', 'rotate_tenant_key',
		'retire_tenant_key', 'destroy_tenant_keys', 'import_tenant_key', 'rewrap_tenant_keys',
		'keyring_status', 'rekey', '_rekey_value')
ORDER BY 1::text;

-- The key table is an extension configuration table (pg_dump keeps its rows)
-- and nobody but its owner may read it.
SELECT 'domi.tenant_keys'::regclass = ANY (extconfig) AS dumped_by_pg_dump
FROM pg_extension WHERE extname = 'domi';
SELECT relacl FROM pg_class WHERE oid = 'domi.tenant_keys'::regclass;

-- The root key is loaded; its fingerprint is 16 bytes of hex, and the
-- setting shows a path, never the key.
SELECT root_key_loaded, length(root_key_fingerprint) AS fingerprint_hex_chars,
	root_key_problem, previous_root_key_loaded
FROM domi.keyring_status();
SELECT current_setting('domi.root_key_file') LIKE '%/keys/regress.key' AS setting_is_a_path;
SET domi.root_key_file = '/tmp/other.key';
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- A tenant's first key is made on first use: version 1, active.
SELECT count(*) AS keys_before FROM domi.tenant_keys WHERE tenant = :ta;
CREATE TEMP TABLE boxes AS
	SELECT 'a1' AS name, domi.encrypt_text('alpha', :ta) AS box;
SELECT version, state, length(wrapped) AS wrapped_bytes, length(root_fingerprint) AS fingerprint_bytes
FROM domi.tenant_keys WHERE tenant = :ta;
SELECT domi.decrypt_text(box, :ta) FROM boxes WHERE name = 'a1';

-- A box is a plain secretbox box: 40 bytes longer than the plaintext, and a
-- new nonce every call.
SELECT length(domi.encrypt('', :ta)) AS empty_box, length(domi.encrypt('12345', :ta)) AS five_byte_box,
	domi.encrypt('same', :ta) <> domi.encrypt('same', :ta) AS nonces_differ;
SELECT domi.decrypt(domi.encrypt('', :ta), :ta) = '' AS empty_round_trips,
	domi.decrypt(domi.encrypt(b, :ta), :ta) = b AS all_bytes_round_trip
FROM (SELECT string_agg(set_byte('\x00'::bytea, 0, g), '' ORDER BY g) AS b
	FROM generate_series(0, 255) g) s;
SELECT domi.decrypt_text(domi.encrypt_text('grüße, 例え', :ta), :ta) AS utf8_round_trip;
-- Long values (past the short-value path of the encryption core) too.
SELECT length(domi.decrypt(domi.encrypt(convert_to(repeat('long ', 200000), 'UTF8'), :ta), :ta))
	AS one_megabyte_round_trip;

-- The current tenant: the forms without a tenant use it, with
-- domi.require_tenant()'s error when none is set.
SELECT domi.encrypt('x');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.decrypt_text(box) FROM boxes WHERE name = 'a1';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
BEGIN;
SELECT domi.set_tenant(:ta) IS NOT NULL AS tenant_set;
INSERT INTO boxes VALUES ('a2', domi.encrypt_text('beta'));
SELECT name, domi.decrypt_text(box) FROM boxes ORDER BY name;
-- The same box under the named tenant.
SELECT domi.decrypt_text(box, :ta) FROM boxes WHERE name = 'a2';
COMMIT;

-- NULLs: a NULL value is NULL; a NULL tenant is an error, never a NULL stored.
SELECT domi.encrypt(NULL) IS NULL AS null_encrypts_to_null,
	domi.decrypt(NULL) IS NULL AS null_decrypts_to_null,
	domi.encrypt(NULL, :ta) IS NULL AS null_value_named_tenant,
	domi.decrypt_text(NULL, :ta) IS NULL AS null_box_named_tenant;
SELECT domi.encrypt('x', NULL);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.decrypt(box, NULL) FROM boxes WHERE name = 'a1';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.rotate_tenant_key(NULL);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.retire_tenant_key(:ta, NULL);
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- A box of another tenant does not open; nor does an altered or a short one.
SELECT length(domi.encrypt('b', :tb)) AS tenant_b_has_a_key;
SELECT domi.decrypt(box, :tb) FROM boxes WHERE name = 'a1';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.decrypt(set_byte(box, 44, get_byte(box, 44) # 1), :ta) FROM boxes WHERE name = 'a1';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.decrypt(substr(box, 1, 39), :ta) FROM boxes WHERE name = 'a1';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- Text that is not UTF-8 is refused by decrypt_text, and opens as bytes.
SELECT domi.decrypt_text(domi.encrypt('\xff00', :ta), :ta);
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- A tenant without keys: decrypt says so, and makes no key (it only reads).
SELECT domi.decrypt(box, :tc) FROM boxes WHERE name = 'a1';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT count(*) AS tenant_c_keys FROM domi.tenant_keys WHERE tenant = :tc;

-- Rotation: a new active version; values under the old one still open,
-- new values are under the new one.
SELECT domi.rotate_tenant_key(:ta) AS new_version;
SELECT version, state FROM domi.tenant_keys WHERE tenant = :ta ORDER BY version;
INSERT INTO boxes VALUES ('a3', domi.encrypt_text('gamma', :ta));
SELECT name, domi.decrypt_text(box, :ta) FROM boxes ORDER BY name;

-- Retiring: refused for the active version, an unknown version, and then
-- values under the retired version no longer open, and the error says why.
SELECT domi.retire_tenant_key(:ta, 2);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.retire_tenant_key(:ta, 7);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.retire_tenant_key(:ta, 1);
SELECT domi.retire_tenant_key(:ta, 1) AS retiring_again_is_a_no_op;
SELECT version, state FROM domi.tenant_keys WHERE tenant = :ta ORDER BY version;
SELECT domi.decrypt_text(box, :ta) FROM boxes WHERE name = 'a1';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- a3 was sealed after the rotation: it opens, so it is not under version 1.
SELECT domi.decrypt_text(box, :ta) AS a3 FROM boxes WHERE name = 'a3';

-- A rotation that rolls back leaves nothing behind, in the table or in this
-- session's cache: a value sealed inside it and kept outside the database
-- (here a psql variable) does not open afterwards, and new values are under
-- version 2 again.
BEGIN;
SELECT domi.rotate_tenant_key(:ta) AS rolled_back_version;
SELECT domi.encrypt_text('delta', :ta) AS a4 \gset
SELECT domi.decrypt_text(:'a4', :ta) AS a4_inside;
ROLLBACK;
SELECT max(version) AS max_version FROM domi.tenant_keys WHERE tenant = :ta;
SELECT domi.decrypt_text(:'a4', :ta);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.decrypt_text(domi.encrypt_text('epsilon', :ta), :ta) AS after_rollback;

-- Destroying: every key of the tenant is gone; nothing opens, nothing new is
-- sealed, nothing is rotated.  The rows stay (versions are never reused).
SELECT domi.destroy_tenant_keys(:ta) AS destroyed_versions;
SELECT version, state, wrapped IS NULL AS key_gone, root_fingerprint IS NULL AS fingerprint_gone
FROM domi.tenant_keys WHERE tenant = :ta ORDER BY version;
SELECT domi.decrypt_text(box, :ta) FROM boxes WHERE name = 'a3';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.encrypt('x', :ta);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.rotate_tenant_key(:ta);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.retire_tenant_key(:ta, 2);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.import_tenant_key(:ta, domi.gen_key());
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.destroy_tenant_keys(:ta) AS destroyed_again;
-- Other tenants are untouched.
SELECT domi.decrypt_text(domi.encrypt_text('still here', :tb), :tb) AS tenant_b;

-- The move from one application-wide key: values sealed by the application
-- with domi.secretbox (or libsodium/tweetnacl) under one key, for two tenants.
CREATE TABLE keyring_notes (id int PRIMARY KEY, tenant_id uuid NOT NULL, body bytea);
CREATE TEMP TABLE app_key AS SELECT domi.gen_key() AS key;
INSERT INTO keyring_notes
	SELECT g, CASE WHEN g % 2 = 0 THEN :tc::uuid ELSE :td::uuid END,
		domi.secretbox_text('note ' || g, key)
	FROM generate_series(1, 50) g, app_key;
UPDATE keyring_notes SET body = NULL WHERE id = 50;
-- 1. Import the old key as a decrypt-only version of each tenant.
SELECT domi.import_tenant_key(:tc, key) AS c_version, domi.import_tenant_key(:td, key) AS d_version
FROM app_key;
SELECT tenant, version, state FROM domi.tenant_keys WHERE tenant IN (:tc, :td) ORDER BY 1, 2;
-- 2. domi.decrypt opens the old values: the format did not change.
SELECT count(*) FILTER (WHERE domi.decrypt_text(body, tenant_id) = 'note ' || id) AS opened
FROM keyring_notes;
-- 3. Re-key in place: every value is sealed again under a fresh active key
--    (made on first use: the imported key never encrypts).
CALL domi.rekey('keyring_notes', 'body');
SELECT tenant, version, state FROM domi.tenant_keys WHERE tenant IN (:tc, :td) ORDER BY 1, 2;
-- A second run has nothing left to do.
CALL domi.rekey('keyring_notes', 'body', batch_size => 7);
-- 4. Retire the imported versions; every value still opens, none with the old key.
SELECT domi.retire_tenant_key(:tc, 1), domi.retire_tenant_key(:td, 1);
SELECT count(*) FILTER (WHERE domi.decrypt_text(body, tenant_id) = 'note ' || id) AS opened,
	count(*) FILTER (WHERE body IS NULL) AS still_null
FROM keyring_notes;
SELECT domi.secretbox_open(body, key) FROM keyring_notes, app_key WHERE id = 1;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- Import checks the key's length.
SELECT domi.import_tenant_key(:tc, '\x0102');
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- rekey after a rotation, in batches of about batch_size rows (whole pages,
-- so at least one page); each batch reports and commits.
SELECT domi.rotate_tenant_key(:tc) AS c_rotated;
CALL domi.rekey('keyring_notes', 'body', 'tenant_id', 10);
SELECT count(*) FILTER (WHERE domi.decrypt_text(body, tenant_id) = 'note ' || id) AS opened
FROM keyring_notes;

-- rekey refuses bad arguments, and changes nothing.
CREATE TABLE keyring_bad (id int, tenant_id text, org uuid, body text, box bytea);
CALL domi.rekey('keyring_notes', 'nothing');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
CALL domi.rekey('keyring_notes', 'body', 'org');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
CALL domi.rekey('keyring_bad', 'box');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
CALL domi.rekey('keyring_bad', 'body', 'org');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
CALL domi.rekey('keyring_notes', 'body', batch_size => 0);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
CALL domi.rekey('pg_class', 'relname');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
CREATE VIEW keyring_view AS SELECT * FROM keyring_notes;
CALL domi.rekey('keyring_view', 'body');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- Inside a transaction block its batches cannot commit.
BEGIN;
CALL domi.rekey('keyring_notes', 'body');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK;
-- A value that no key of its tenant opens stops the run with the decrypt
-- error: re-keying never drops a value (the batches before stay committed).
INSERT INTO keyring_notes VALUES (51, :tc, domi.encrypt('other tenant', :td));
SELECT domi.rotate_tenant_key(:td) AS d_rotated;
CALL domi.rekey('keyring_notes', 'body');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
DELETE FROM keyring_notes WHERE id = 51;

-- Names are quoted, never pasted: a table and columns named like SQL.
CREATE SCHEMA "keyring odd";
CREATE TABLE "keyring odd"."notes; DROP TABLE keyring_notes; --" ("Tenant" uuid, "Body ""x""" bytea);
INSERT INTO "keyring odd"."notes; DROP TABLE keyring_notes; --"
	SELECT tenant_id, body FROM keyring_notes WHERE id <= 4;
SELECT domi.rotate_tenant_key(:tc) AS c_rotated;
CALL domi.rekey('"keyring odd"."notes; DROP TABLE keyring_notes; --"', 'Body "x"', 'Tenant');
SELECT count(*) FILTER (WHERE domi.decrypt_text("Body ""x""", "Tenant") LIKE 'note _') AS opened
FROM "keyring odd"."notes; DROP TABLE keyring_notes; --";
SELECT to_regclass('keyring_notes') IS NOT NULL AS keyring_notes_still_there;
DROP SCHEMA "keyring odd" CASCADE;

-- rekey of a partitioned table goes through every partition.
CREATE TABLE keyring_parted (id int, tenant_id uuid, body bytea) PARTITION BY LIST (tenant_id);
CREATE TABLE keyring_parted_c PARTITION OF keyring_parted FOR VALUES IN ('cccccccc-0000-4000-8000-000000000003');
CREATE TABLE keyring_parted_d PARTITION OF keyring_parted FOR VALUES IN ('dddddddd-0000-4000-8000-000000000004');
INSERT INTO keyring_parted SELECT id, tenant_id, body FROM keyring_notes;
SELECT domi.rotate_tenant_key(:tc) AS c_rotated, domi.rotate_tenant_key(:td) AS d_rotated;
CALL domi.rekey('keyring_parted', 'body');
SELECT count(*) FILTER (WHERE domi.decrypt_text(body, tenant_id) = 'note ' || id) AS opened
FROM keyring_parted;

-- Privileges.  Nothing of the keyring is executable by PUBLIC; an
-- application role gets encrypt/decrypt, an administrator the rest
-- (README.md shows these GRANTs).
CREATE ROLE keyring_app;
CREATE ROLE keyring_admin;
GRANT EXECUTE ON FUNCTION domi.encrypt(bytea), domi.decrypt(bytea),
	domi.encrypt_text(text), domi.decrypt_text(bytea) TO keyring_app;
GRANT EXECUTE ON FUNCTION domi.rotate_tenant_key(uuid), domi.retire_tenant_key(uuid, int),
	domi.destroy_tenant_keys(uuid), domi.import_tenant_key(uuid, bytea),
	domi.rewrap_tenant_keys(), domi.keyring_status(),
	domi._rekey_value(bytea, uuid), domi.register_encrypted_column(regclass, name, name),
	domi.unregister_encrypted_column(regclass, name),
	domi._wait_for_older_transactions() TO keyring_admin;
GRANT EXECUTE ON PROCEDURE domi.rekey(regclass, name, name, int) TO keyring_admin;
GRANT SELECT, UPDATE ON keyring_notes TO keyring_admin;
GRANT SELECT ON keyring_notes TO keyring_app;
SELECT p.oid::regprocedure AS function
FROM pg_proc p
WHERE pronamespace = 'domi'::regnamespace
	AND (p.oid::regprocedure::text ~ '^domi\.(en|de)crypt|tenant_key|keyring|rekey'
		OR proname = '_root_key_info')
	AND has_function_privilege('public', p.oid, 'EXECUTE')
ORDER BY 1::text;

SET ROLE keyring_app;
-- The application role encrypts and decrypts for the tenant it acts for...
BEGIN;
SELECT domi.set_tenant(:tc) IS NOT NULL AS tenant_set;
SELECT domi.decrypt_text(domi.encrypt_text('app value')) AS app_round_trip;
SELECT count(*) FILTER (WHERE domi.decrypt_text(body) = 'note ' || id) AS app_opens_tenant_c
FROM keyring_notes WHERE tenant_id = domi.current_tenant();
COMMIT;
-- ...and cannot name another tenant, read the keys, or administer them.
SELECT domi.encrypt('x', :tc);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM domi.tenant_keys;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.rotate_tenant_key(:tc);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.destroy_tenant_keys(:tc);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM domi.keyring_status();
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi._rekey_value(body, tenant_id) FROM keyring_notes LIMIT 1;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
CALL domi.rekey('keyring_notes', 'body');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- Writing the key table directly is refused too (no key swapping).
UPDATE domi.tenant_keys SET state = 'active';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;

-- The administrator rotates and re-keys (with its own rights on the table:
-- UPDATE on keyring_notes), but still cannot read the keys.
SET ROLE keyring_admin;
SELECT domi.rotate_tenant_key(:tc) AS admin_rotated;
CALL domi.rekey('keyring_notes', 'body');
SELECT active_keys > 0 AS admin_sees_status FROM domi.keyring_status();
SELECT count(*) FROM domi.tenant_keys;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- The admin may not rekey a table it cannot update.
CALL domi.rekey('keyring_parted', 'body');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;

-- Under row-level security the procedure re-keys only the rows its role can
-- see, and warns; with a tenant set, that tenant's rows.
SELECT domi.enable_tenant_rls('keyring_notes');
SELECT domi.rotate_tenant_key(:tc) AS c_rotated, domi.rotate_tenant_key(:td) AS d_rotated;
-- The procedure commits in batches, so the tenant must be session-wide:
-- a superuser allows that for this maintenance session.
SET domi.allow_session_tenant = on;
SET ROLE keyring_admin;
CALL domi.rekey('keyring_notes', 'body');
SET domi.tenant_id = :tc;
CALL domi.rekey('keyring_notes', 'body');
RESET domi.tenant_id;
RESET ROLE;
RESET domi.allow_session_tenant;
SELECT tenant_id = :tc AS tenant_c, count(*) AS rows,
	count(*) FILTER (WHERE domi._rekey_value(body, tenant_id) IS NULL) AS under_active_key
FROM keyring_notes WHERE body IS NOT NULL GROUP BY 1 ORDER BY 1;
SELECT domi.disable_tenant_rls('keyring_notes');

-- search_path cannot redirect the keyring's own queries: a caller's schema
-- with its own tenant_keys table and a uuid "=" operator that reports its
-- arguments is ignored.
CREATE SCHEMA keyring_evil;
CREATE TABLE keyring_evil.tenant_keys (LIKE domi.tenant_keys);
CREATE FUNCTION keyring_evil.spy_eq(uuid, uuid) RETURNS boolean LANGUAGE plpgsql AS
	$$BEGIN RAISE NOTICE 'spy saw %', $1; RETURN $1 OPERATOR(pg_catalog.=) $2; END$$;
CREATE OPERATOR keyring_evil.= (LEFTARG = uuid, RIGHTARG = uuid, FUNCTION = keyring_evil.spy_eq);
SET search_path = keyring_evil, pg_catalog, public;
SELECT domi.rotate_tenant_key(:tc) IS NOT NULL AS rotated_under_evil_path;
SELECT domi.decrypt_text(body, tenant_id) AS opened_under_evil_path FROM public.keyring_notes WHERE id = 2;
SELECT count(*) AS evil_table_untouched FROM keyring_evil.tenant_keys;
RESET search_path;
DROP SCHEMA keyring_evil CASCADE;

-- A wrapped key is bound to its tenant and version: a superuser who copies
-- tenant d's wrapped key into tenant c's row gets an error naming the key,
-- not tenant d's key under tenant c's name.
BEGIN;
UPDATE domi.tenant_keys k SET wrapped = d.wrapped
FROM domi.tenant_keys d
WHERE k.tenant = :tc AND k.state = 'active' AND d.tenant = :td AND d.state = 'active';
SELECT domi.encrypt('x', :tc);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK;
-- After the rollback tenant c's own key is back.
SELECT domi.decrypt_text(body, tenant_id) AS c_after_rollback FROM keyring_notes WHERE id = 2;

-- A superuser who drops the table's CHECK constraints and leaves a key row
-- without its root key fingerprint, or without a state, gets an error that
-- names it, not a crashed server.
BEGIN;
ALTER TABLE domi.tenant_keys DROP CONSTRAINT tenant_keys_check1,
	DROP CONSTRAINT tenant_keys_state_check, ALTER COLUMN state DROP NOT NULL;
UPDATE domi.tenant_keys SET root_fingerprint = NULL WHERE tenant = :tc AND state = 'active';
SAVEPOINT broken;
SELECT domi.rewrap_tenant_keys();
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO broken;
SELECT domi.encrypt('x', :tc);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO broken;
UPDATE domi.tenant_keys SET state = NULL WHERE tenant = :td AND state = 'active';
SELECT domi.decrypt('\x00', :td);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK;

-- keyring_status counts keys by state (this file's tenants only, so other
-- tests' tenants do not matter) and nothing is under another root key.
SELECT state, count(*) FROM domi.tenant_keys
WHERE tenant IN (:ta, :tb, :tc, :td) GROUP BY state ORDER BY state;
SELECT keys_under_previous_root, keys_under_unknown_root FROM domi.keyring_status();

-- rewrap with no previous root key has nothing to do.
SELECT domi.rewrap_tenant_keys() AS rewrapped;

-- A tenant whose keys were destroyed does not stop the re-key of the other
-- tenants in the table: its values can never open again, so they are left
-- as they are (nothing to re-key), and the others are re-keyed.
\set te '''eeeeeeee-0000-4000-8000-000000000005'''
\set tf '''ffffffff-0000-4000-8000-000000000006'''
CREATE TABLE keyring_shred (id int, tenant_id uuid, body bytea);
INSERT INTO keyring_shred SELECT g, t, domi.encrypt_text('shred ' || g, t)
FROM generate_series(1, 6) g, LATERAL (SELECT (CASE WHEN g % 2 = 0 THEN :tf ELSE :te END)::uuid AS t) x;
CREATE TEMP TABLE keyring_shred_before AS SELECT id, body FROM keyring_shred;
SELECT domi.destroy_tenant_keys(:te) AS e_destroyed, domi.rotate_tenant_key(:tf) AS f_rotated;
CALL domi.rekey('keyring_shred', 'body');
SELECT s.tenant_id = :tf AS live_tenant, count(*) AS n,
	count(*) FILTER (WHERE s.body = b.body) AS unchanged,
	count(*) FILTER (WHERE domi._rekey_value(s.body, s.tenant_id) IS NULL) AS nothing_to_rekey
FROM keyring_shred s JOIN keyring_shred_before b USING (id) GROUP BY 1 ORDER BY 1;
SELECT domi.retire_tenant_key(:tf, 1);
SELECT count(*) FILTER (WHERE domi.decrypt_text(body, tenant_id) = 'shred ' || id) AS live_opened
FROM keyring_shred WHERE tenant_id = :tf;
SELECT domi.decrypt_text(body, tenant_id) FROM keyring_shred WHERE id = 1;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
DROP TABLE keyring_shred, keyring_shred_before;

-- An UPDATE that leaves the rows alone (here a BEFORE UPDATE trigger that
-- skips them) is not reported as done: the values are still under the old
-- key, and retiring it would make them unreadable.
CREATE TABLE keyring_frozen (id int, tenant_id uuid, body bytea);
INSERT INTO keyring_frozen SELECT g, :tf, domi.encrypt_text('frozen ' || g, :tf)
FROM generate_series(1, 3) g;
CREATE FUNCTION keyring_skip() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NULL; END$$;
CREATE TRIGGER skip BEFORE UPDATE ON keyring_frozen FOR EACH ROW EXECUTE FUNCTION keyring_skip();
SELECT domi.rotate_tenant_key(:tf) AS f_rotated;
CALL domi.rekey('keyring_frozen', 'body');
SELECT count(*) FILTER (WHERE domi._rekey_value(body, tenant_id) IS NOT NULL) AS still_under_old_key
FROM keyring_frozen;
DROP TABLE keyring_frozen;
DROP FUNCTION keyring_skip();

-- A value whose tenant is NULL cannot be re-keyed (under whose key?): the
-- run says so and does not say done.
CREATE TABLE keyring_orphan (id int, tenant_id uuid, body bytea);
INSERT INTO keyring_orphan VALUES (1, :tf, domi.encrypt_text('kept', :tf)),
	(2, NULL, domi.encrypt_text('no tenant', :tf)), (3, NULL, NULL);
SELECT domi.rotate_tenant_key(:tf) AS f_rotated;
CALL domi.rekey('keyring_orphan', 'body');
SELECT id, domi._rekey_value(body, :tf) IS NOT NULL AS under_an_old_key
FROM keyring_orphan WHERE body IS NOT NULL ORDER BY id;
DROP TABLE keyring_orphan;

-- A caller that names ever new tenants (each call an error: no key) does
-- not grow the backend's key cache without end: 40,000 names here would
-- take about 6 MB if every one were remembered.
DO $$
BEGIN
	FOR i IN 1..40000 LOOP
		BEGIN
			PERFORM domi.decrypt('\x00', md5(i::text)::uuid);
		EXCEPTION WHEN undefined_object THEN NULL;
		END;
	END LOOP;
END $$;
SELECT sum(total_bytes) < 2 * 1024 * 1024 AS key_cache_bounded
FROM pg_backend_memory_contexts WHERE name = 'domi keyring cache';

DROP TABLE keyring_notes, keyring_bad, keyring_parted CASCADE;
DROP OWNED BY keyring_app, keyring_admin;
DROP ROLE keyring_app, keyring_admin;
