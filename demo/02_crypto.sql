\echo '--- 2. Encryption: libsodium secretbox in SQL -------------------------'
\echo 'domi.secretbox seals a value the way Node apps do with libsodium-wrappers'
\echo 'or tweetnacl: nonce (24 bytes) || MAC (16 bytes) || ciphertext. Either'
\echo 'side opens what the other sealed. (Explicit keys are for interop and'
\echo 'tests; the keyring keeps keys out of SQL text.)'
\echo
CREATE TEMP TABLE demo_key AS SELECT domi.gen_key() AS key;
CREATE TABLE customers (id int PRIMARY KEY, email_box bytea NOT NULL);
INSERT INTO customers
	SELECT 1, domi.secretbox_text('ada@example.com', key) FROM demo_key
	UNION ALL
	SELECT 2, domi.secretbox_text('grüße@例え.jp', key) FROM demo_key;
\echo 'Stored: 40 bytes more than the plaintext, random-looking.'
SELECT id, length(email_box) AS box_bytes, encode(substr(email_box, 1, 12), 'hex') || '...' AS box_starts
	FROM customers ORDER BY id;
\echo 'Opened with the key (UTF-8 text round-trips):'
SELECT id, domi.secretbox_open_text(email_box, key) AS email
	FROM customers, demo_key ORDER BY id;
\echo
\echo 'Sealing the same value twice gives different boxes (a fresh nonce per call):'
SELECT domi.secretbox_text('same', key) <> domi.secretbox_text('same', key) AS boxes_differ
	FROM demo_key;
\echo
\echo 'A box that was altered, or a wrong key, is refused, never returned as'
\echo 'garbage; the message names the problem and shows no plaintext or key:'
\set ON_ERROR_STOP 0
\set VERBOSITY default
SELECT domi.secretbox_open_text(set_byte(email_box, 30, get_byte(email_box, 30) # 1), key)
	FROM customers, demo_key WHERE id = 1;
SELECT domi.secretbox_open_text(email_box, domi.gen_key()) FROM customers WHERE id = 1;
SELECT domi.secretbox_open_text(email_box, '\x0102') FROM customers WHERE id = 1;
SELECT domi.secretbox_open_text('\x00', key) FROM demo_key;
\set ON_ERROR_STOP 1
\echo
