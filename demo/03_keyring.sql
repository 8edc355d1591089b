\echo '--- 3. Keyring: per-tenant keys that never appear in SQL -------------'
\echo 'The server read a root key from domi.root_key_file when it started. Each'
\echo 'tenant gets its own random data key, stored only wrapped by the root key.'
\echo 'SQL never sees a key: only its fingerprint.'
\echo
SET domi.rls_guard = off;   -- the RLS part comes later
SELECT root_key_loaded, root_key_fingerprint FROM domi.keyring_status();
\echo
\echo 'domi.encrypt() seals under the current tenant''s key (made on first use):'
CREATE TABLE patients (id int PRIMARY KEY, tenant_id uuid NOT NULL, notes bytea);
BEGIN;
SELECT domi.set_tenant('11111111-1111-1111-1111-111111111111') \g /dev/null
INSERT INTO patients VALUES (1, domi.current_tenant(), domi.encrypt_text('allergic to penicillin'));
SELECT id, length(notes) AS box_bytes, domi.decrypt_text(notes) AS notes FROM patients;
COMMIT;
INSERT INTO patients VALUES (100, '22222222-2222-2222-2222-222222222222',
	domi.encrypt_text('no known allergies', '22222222-2222-2222-2222-222222222222'));
\echo
\echo 'Another tenant''s key does not open it (no key is named, none shown):'
\set ON_ERROR_STOP 0
SELECT domi.decrypt_text(notes, '22222222-2222-2222-2222-222222222222') FROM patients WHERE id = 1;
\set ON_ERROR_STOP 1
\echo
\echo 'Moving from one app-wide key: the app stored nonce || secretbox under a'
\echo 'single key, for every tenant. Import that key as a decrypt-only version'
\echo '(a one-time step: the key is in that statement''s text), re-key in place,'
\echo 'then retire it. The stored format never changes.'
CREATE TEMP TABLE app_key AS SELECT domi.gen_key() AS key;
INSERT INTO patients
	SELECT g, CASE WHEN g % 2 = 0 THEN '11111111-1111-1111-1111-111111111111'::uuid
		ELSE '22222222-2222-2222-2222-222222222222'::uuid END,
		domi.secretbox_text('visit ' || g, key)
	FROM generate_series(2, 7) g, app_key;
SELECT domi.import_tenant_key(t::uuid, key) AS imported_version
	FROM app_key, (VALUES ('11111111-1111-1111-1111-111111111111'),
		('22222222-2222-2222-2222-222222222222')) v(t) \g /dev/null
CALL domi.rekey('patients', 'notes');
SELECT tenant, version, state FROM domi.tenant_keys ORDER BY tenant, version;
SELECT domi.retire_tenant_key(tenant, version) FROM domi.tenant_keys WHERE state = 'decrypt_only' \g /dev/null
\echo 'Every row still opens, now under its tenant''s own key; the old key opens nothing:'
SELECT id, tenant_id, domi.decrypt_text(notes, tenant_id) AS notes FROM patients ORDER BY id;
\set ON_ERROR_STOP 0
SELECT domi.secretbox_open_text(notes, key) FROM patients, app_key WHERE id = 2;
\set ON_ERROR_STOP 1
\echo
\echo 'Rotation adds a version; the old one keeps decrypting until retired:'
SELECT domi.rotate_tenant_key('11111111-1111-1111-1111-111111111111') AS new_version;
SELECT count(*) AS rows_still_open FROM patients WHERE domi.decrypt_text(notes, tenant_id) IS NOT NULL;
\echo
\echo 'Crypto-shredding: destroy a tenant''s keys and its values are gone for good:'
SELECT domi.destroy_tenant_keys('22222222-2222-2222-2222-222222222222') AS destroyed_versions;
\set ON_ERROR_STOP 0
SELECT domi.decrypt_text(notes, tenant_id) FROM patients WHERE id = 3;
\set ON_ERROR_STOP 1
SELECT tenants, active_keys, decrypt_only_keys, retired_keys, destroyed_keys FROM domi.keyring_status();
\echo
