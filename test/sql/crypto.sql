-- Encryption core: gen_key, secretbox, secretbox_open, secretbox_text,
-- secretbox_open_text.  Errors are shown with their detail and SQLSTATE, so
-- the expected output shows that no message quotes a key or plaintext.

-- Volatility, strictness and parallel labels are part of the contract:
-- anything that draws a nonce is VOLATILE; decryption is IMMUTABLE.
SELECT p.oid::regprocedure AS function, provolatile, proisstrict, proparallel
FROM pg_catalog.pg_proc p
WHERE pronamespace = 'domi'::regnamespace
	AND proname IN ('gen_key', 'secretbox', 'secretbox_open', 'secretbox_text', 'secretbox_open_text')
ORDER BY proname;

-- gen_key: 32 bytes, different every call.
SELECT length(domi.gen_key()) AS key_length,
	domi.gen_key() <> domi.gen_key() AS keys_differ;

CREATE TEMP TABLE k AS SELECT domi.gen_key() AS key, domi.gen_key() AS other;

-- A box is 40 bytes longer than its plaintext, and opens to it.
SELECT length(domi.secretbox('hello', key)) AS box_length,
	domi.secretbox_open(domi.secretbox('hello', key), key) AS opened
FROM k;

-- Empty plaintext round-trips in a 40-byte box.
SELECT length(domi.secretbox('', key)) AS empty_box_length,
	domi.secretbox_open(domi.secretbox('', key), key) = '' AS empty_opens_empty
FROM k;

-- Every byte value survives.
SELECT domi.secretbox_open(domi.secretbox(b, key), key) = b AS all_bytes_round_trip
FROM k, (SELECT string_agg(set_byte('\x00'::bytea, 0, g), '' ORDER BY g) AS b
	FROM generate_series(0, 255) g) bytes;

-- A known box, sealed by libsodium's crypto_secretbox_easy outside domi
-- (key 00 01 ... 1f, nonce a0 a1 ... b7): the wire format is nonce || MAC || ciphertext.
SELECT convert_from(domi.secretbox_open(
	'\xa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b771670f2a7089bf31f3e3b92ddb147a815ef0db76ed4ac7ca184652',
	'\x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f'), 'UTF8') AS known_box;

-- Same plaintext, same key: a fresh nonce every call, so different boxes.
SELECT domi.secretbox('same', key) <> domi.secretbox('same', key) AS boxes_differ FROM k;

-- Fresh nonces in INSERT ... SELECT, and under a cached (generic) plan.
CREATE TEMP TABLE boxes (box bytea, key bytea);
INSERT INTO boxes SELECT domi.secretbox('same', key), key FROM k, generate_series(1, 1000);
PREPARE seal(bytea) AS INSERT INTO boxes SELECT domi.secretbox('same', $1), $1;
SET plan_cache_mode = force_generic_plan;
EXECUTE seal('\x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f');
EXECUTE seal('\x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f');
EXECUTE seal('\x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f');
RESET plan_cache_mode;
SELECT count(*) AS boxes, count(DISTINCT substr(box, 1, 24)) AS distinct_nonces,
	count(*) FILTER (WHERE domi.secretbox_open(box, key) = 'same') AS open_to_same
FROM boxes;

-- NULL in, NULL out (STRICT).
SELECT domi.secretbox(NULL, key) IS NULL AS null_plaintext,
	domi.secretbox('x', NULL) IS NULL AS null_key,
	domi.secretbox_open(NULL, key) IS NULL AS null_box,
	domi.secretbox_text(NULL, key) IS NULL AS null_text,
	domi.secretbox_open_text(NULL, key) IS NULL AS null_text_box
FROM k;

-- Text: the UTF-8 bytes are sealed; multi-byte characters round-trip.
SELECT domi.secretbox_open_text(domi.secretbox_text('héllo wörld ✓ 😀', key), key) AS text_round_trip,
	length(domi.secretbox_text('😀', key)) AS four_byte_char_box_length,
	domi.secretbox_open(domi.secretbox_text('héllo ✓', key), key) = convert_to('héllo ✓', 'UTF8') AS sealed_utf8_bytes,
	domi.secretbox_open_text(domi.secretbox_text('', key), key) = '' AS empty_text
FROM k;

-- Large values: 20 MB each way.
SELECT length(box) AS large_box_length,
	md5(domi.secretbox_open(box, key)) = md5(plain) AS large_round_trip
FROM k, (SELECT convert_to(repeat('0123456789abcdef', 20 * 65536), 'UTF8') AS plain) p,
	LATERAL (SELECT domi.secretbox(plain, key) AS box) b;

---------------------------------------------------------------------------
-- Bad input: each kind has its own SQLSTATE, and nothing leaks.
---------------------------------------------------------------------------

-- Key not 32 bytes: 22023.
SELECT domi.secretbox('secret plaintext', '\x00112233445566778899aabbccddeeff00112233445566778899aabbccddee');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.secretbox('secret plaintext', key || '\x00') FROM k;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.secretbox_open(domi.secretbox('x', key), '') FROM k;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.secretbox_text('secret plaintext', '\x01');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.secretbox_open_text(domi.secretbox('x', key), substr(key, 1, 16)) FROM k;
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- Box shorter than 40 bytes: 22P03, for both open functions.
SELECT domi.secretbox_open('', key) FROM k;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.secretbox_open(substr(domi.secretbox('', key), 1, 39), key) FROM k;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.secretbox_open_text('\x0102', key) FROM k;
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- Authentication failure: 39000, whether the nonce, the MAC or the
-- ciphertext was altered, the key is wrong, or the box was truncated.
CREATE TEMP TABLE sealed AS
	SELECT domi.secretbox_text('secret plaintext', key) AS box FROM k;
SELECT domi.secretbox_open(set_byte(box, 0, get_byte(box, 0) # 1), key) FROM sealed, k;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.secretbox_open(set_byte(box, 30, get_byte(box, 30) # 128), key) FROM sealed, k;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.secretbox_open_text(set_byte(box, 45, get_byte(box, 45) # 1), key) FROM sealed, k;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.secretbox_open_text(box, other) FROM sealed, k;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.secretbox_open(substr(box, 1, length(box) - 1), key) FROM sealed, k;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.secretbox_open(box || '\x00', key) FROM sealed, k;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- The 40-byte box of the empty string, with one bit of its MAC flipped.
SELECT domi.secretbox_open(set_byte(b, 24, get_byte(b, 24) # 1), key)
FROM k, LATERAL (SELECT domi.secretbox('', key) AS b) e;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- The untouched box still opens.
SELECT domi.secretbox_open_text(box, key) AS untouched FROM sealed, k;

-- Authentic boxes whose plaintext is not UTF-8 text: 22021 from
-- secretbox_open_text (the bytes are not quoted), while secretbox_open works.
SELECT domi.secretbox_open_text(domi.secretbox('\xc328', key), key) FROM k;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.secretbox_open_text(domi.secretbox('\x61ff62', key), key) FROM k;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.secretbox_open_text(domi.secretbox('\x610062', key), key) FROM k;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.secretbox_open(domi.secretbox('\xc328', key), key) AS raw_bytes_open FROM k;

DROP TABLE k, boxes, sealed;
DEALLOCATE seal;
