/*
 * crypto.c
 *		The encryption core: libsodium crypto_secretbox (XSalsa20-Poly1305)
 *		as SQL functions, byte-compatible with Node applications.
 *
 * A box is nonce (24 bytes) || crypto_secretbox_easy(plaintext) (16-byte
 * MAC || ciphertext): exactly what an application stores when it calls
 * libsodium-wrappers' crypto_secretbox_easy or tweetnacl's secretbox with a
 * random nonce and prepends the nonce.  Either side opens what the other
 * sealed.
 *
 * Every length is checked before libsodium sees a pointer, and every error
 * names the problem without quoting key bytes or plaintext.
 */
#include "postgres.h"

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/memutils.h"

#include "crypto.h"
#include "domi.h"

PG_FUNCTION_INFO_V1(domi_gen_key);
PG_FUNCTION_INFO_V1(domi_secretbox);
PG_FUNCTION_INFO_V1(domi_secretbox_open);
PG_FUNCTION_INFO_V1(domi_secretbox_text);
PG_FUNCTION_INFO_V1(domi_secretbox_open_text);

/* The largest plaintext whose box still fits in one bytea value. */
#define MAX_PLAINTEXT_BYTES (MaxAllocSize - VARHDRSZ - DOMI_BOX_OVERHEAD)

/*
 * Short values, the common case for column encryption, get their own path.
 * NaCl defines secretbox as: subkey = HSalsa20(key, nonce[0..16]); stream =
 * Salsa20(subkey, nonce[16..24]); the first 32 stream bytes are the Poly1305
 * key and the rest is XORed with the message.  crypto_secretbox_easy asks
 * for that stream in pieces shorter than 256 bytes when the message is
 * short, and libsodium's vectorised Salsa20 computes such pieces one 64-byte
 * block at a time; asked for whole 256-byte runs it computes 4 or 8 blocks
 * at once, about three times faster per 200-byte value (bench/crypto).  So
 * for short values we take the whole stream at once, rounded up to 256
 * bytes, and apply it ourselves: the same bytes (test/interop checks every
 * length on both paths against libsodium-wrappers and tweetnacl).
 */
#define SHORT_STREAM_BYTES	512
#define STREAM_RUN_BYTES	256
#define POLY_KEY_BYTES		crypto_onetimeauth_poly1305_KEYBYTES	/* 32 */
#define SHORT_MAX_BYTES		(SHORT_STREAM_BYTES - POLY_KEY_BYTES)

/* Fill stream with the secretbox keystream for nonce and key, whole runs. */
static void
short_stream(unsigned char *stream, size_t len, const unsigned char *nonce,
			 const unsigned char *key)
{
	unsigned char subkey[crypto_core_hsalsa20_OUTPUTBYTES];
	size_t		runs = (POLY_KEY_BYTES + len + STREAM_RUN_BYTES - 1) / STREAM_RUN_BYTES;

	crypto_core_hsalsa20(subkey, nonce, key, NULL);
	crypto_stream_salsa20(stream, runs * STREAM_RUN_BYTES, nonce + 16, subkey);
	sodium_memzero(subkey, sizeof(subkey));
}

static inline void
xor_bytes(unsigned char *out, const unsigned char *in, const unsigned char *pad,
		  size_t len)
{
	size_t		i;

	for (i = 0; i < len; i++)
		out[i] = in[i] ^ pad[i];
}

void
domi_seal_raw(unsigned char *box, const unsigned char *msg, size_t len,
			  const unsigned char *key)
{
	unsigned char *mac = box + DOMI_NONCE_BYTES;
	unsigned char *ciphertext = box + DOMI_BOX_OVERHEAD;
	unsigned char stream[SHORT_STREAM_BYTES];

	domi_random_bytes(box, DOMI_NONCE_BYTES);
	if (len > SHORT_MAX_BYTES)
	{
		/* Cannot fail: it only rejects lengths beyond what we can allocate. */
		(void) crypto_secretbox_easy(mac, msg, len, box, key);
		return;
	}
	short_stream(stream, len, box, key);
	xor_bytes(ciphertext, msg, stream + POLY_KEY_BYTES, len);
	crypto_onetimeauth_poly1305(mac, ciphertext, len, stream);
	sodium_memzero(stream, sizeof(stream));
}

bool
domi_open_raw(unsigned char *msg, const unsigned char *box, size_t boxlen,
			  const unsigned char *key)
{
	const unsigned char *mac = box + DOMI_NONCE_BYTES;
	const unsigned char *ciphertext = box + DOMI_BOX_OVERHEAD;
	size_t		len;
	unsigned char stream[SHORT_STREAM_BYTES];
	bool		authentic;

	Assert(boxlen >= DOMI_BOX_OVERHEAD);
	len = boxlen - DOMI_BOX_OVERHEAD;
	if (len > SHORT_MAX_BYTES)
		return crypto_secretbox_open_easy(msg, mac, boxlen - DOMI_NONCE_BYTES,
										  box, key) == 0;

	short_stream(stream, len, box, key);
	/* Constant-time check of the MAC, and nothing decrypted unless it holds. */
	authentic = crypto_onetimeauth_poly1305_verify(mac, ciphertext, len, stream) == 0;
	if (authentic)
		xor_bytes(msg, ciphertext, stream + POLY_KEY_BYTES, len);
	sodium_memzero(stream, sizeof(stream));
	return authentic;
}

bytea *
domi_seal(const char *msg, Size len, const unsigned char *key)
{
	bytea	   *box;

	if (len > MAX_PLAINTEXT_BYTES)
		ereport(ERROR,
				(errcode(DOMI_ERRCODE_TOO_LARGE),
				 errmsg("plaintext is too large to encrypt"),
				 errdetail("The plaintext has %zu bytes; the largest that fits in one value with its %d-byte nonce and MAC is %zu bytes.",
						   (size_t) len, DOMI_BOX_OVERHEAD,
						   (size_t) MAX_PLAINTEXT_BYTES)));

	box = palloc(VARHDRSZ + DOMI_BOX_OVERHEAD + len);
	SET_VARSIZE(box, VARHDRSZ + DOMI_BOX_OVERHEAD + len);
	domi_seal_raw((unsigned char *) VARDATA(box),
				  (const unsigned char *) msg, len, key);
	return box;
}

bytea *
domi_open(const char *box, Size boxlen, const unsigned char *key)
{
	bytea	   *plain;
	Size		len;

	if (boxlen < DOMI_BOX_OVERHEAD)
		ereport(ERROR,
				(errcode(DOMI_ERRCODE_BOX_TOO_SHORT),
				 errmsg("encrypted value is too short"),
				 errdetail("A value made by secretbox has at least %d bytes (nonce and MAC); this one has %zu.",
						   DOMI_BOX_OVERHEAD, (size_t) boxlen)));

	len = boxlen - DOMI_BOX_OVERHEAD;
	plain = palloc(VARHDRSZ + len);
	SET_VARSIZE(plain, VARHDRSZ + len);
	if (!domi_open_raw((unsigned char *) VARDATA(plain),
					   (const unsigned char *) box, boxlen, key))
	{
		/* Nothing was written to it: a failed box yields no bytes at all. */
		pfree(plain);
		ereport(ERROR,
				(errcode(DOMI_ERRCODE_AUTH_FAILED),
				 errmsg("encrypted value failed authentication"),
				 errdetail("The key is wrong, or the value was altered or truncated.")));
	}
	return plain;
}

/* The 32 key bytes, or an error that says the length without the bytes. */
const unsigned char *
domi_key_from_bytea(bytea *key)
{
	if (VARSIZE_ANY_EXHDR(key) != DOMI_KEY_BYTES)
		ereport(ERROR,
				(errcode(DOMI_ERRCODE_INVALID_KEY),
				 errmsg("invalid key length"),
				 errdetail("A key must have exactly %d bytes; this one has %zu.",
						   DOMI_KEY_BYTES, (size_t) VARSIZE_ANY_EXHDR(key)),
				 errhint("Make a key with domi.gen_key().")));
	return (const unsigned char *) VARDATA_ANY(key);
}

/*
 * The UTF-8 bytes of a text value, *len of them.  In a UTF-8 database that
 * is the value itself, not a copy; otherwise a converted copy, which cannot
 * fail (every server encoding maps into UTF-8).
 */
const char *
domi_text_to_utf8(text *plaintext, Size *len)
{
	const char *data = VARDATA_ANY(plaintext);
	char	   *utf8;

	*len = VARSIZE_ANY_EXHDR(plaintext);
	utf8 = pg_server_to_any(data, *len, PG_UTF8);
	if (utf8 != data)
		*len = strlen(utf8);
	return utf8;
}

/*
 * Text from decrypted bytes that claim to be UTF-8.  PostgreSQL's own
 * checks would quote the offending bytes in their messages, and those
 * bytes are plaintext: validate quietly, and replace a conversion error by
 * one that quotes nothing.  Text and bytea share one representation, so in
 * a UTF-8 database the result is the argument itself.
 */
text *
domi_utf8_to_text(bytea *utf8)
{
	const char *data = VARDATA_ANY(utf8);
	int			len = VARSIZE_ANY_EXHDR(utf8);
	char	   *converted = NULL;
	text	   *result;

	if (pg_verify_mbstr_len(PG_UTF8, data, len, true) < 0)
		ereport(ERROR,
				(errcode(DOMI_ERRCODE_INVALID_UTF8),
				 errmsg("decrypted value is not valid UTF-8 text"),
				 errdetail("The value was sealed from bytes that are not UTF-8 text (an invalid sequence or a zero byte); open it with domi.secretbox_open() instead.")));

	if (GetDatabaseEncoding() == PG_UTF8 || GetDatabaseEncoding() == PG_SQL_ASCII)
		converted = (char *) data;
	else
	{
		MemoryContext oldcontext = CurrentMemoryContext;

		PG_TRY();
		{
			converted = pg_any_to_server(data, len, PG_UTF8);
		}
		PG_CATCH();
		{
			MemoryContextSwitchTo(oldcontext);
			FlushErrorState();
			ereport(ERROR,
					(errcode(ERRCODE_UNTRANSLATABLE_CHARACTER),
					 errmsg("decrypted value has characters the database encoding \"%s\" cannot hold",
							GetDatabaseEncodingName()),
					 errhint("Open it with domi.secretbox_open() and convert_from() to a client that accepts UTF-8.")));
		}
		PG_END_TRY();
	}
	if (converted == data)
		return (text *) utf8;

	len = strlen(converted);
	result = palloc(VARHDRSZ + len);
	SET_VARSIZE(result, VARHDRSZ + len);
	memcpy(VARDATA(result), converted, len);
	return result;
}

/* domi.gen_key() returns bytea: 32 random bytes. */
Datum
domi_gen_key(PG_FUNCTION_ARGS)
{
	bytea	   *key = palloc(VARHDRSZ + DOMI_KEY_BYTES);

	SET_VARSIZE(key, VARHDRSZ + DOMI_KEY_BYTES);
	domi_random_bytes(VARDATA(key), DOMI_KEY_BYTES);
	PG_RETURN_BYTEA_P(key);
}

/* domi.secretbox(plaintext bytea, key bytea) returns bytea */
Datum
domi_secretbox(PG_FUNCTION_ARGS)
{
	bytea	   *plaintext = PG_GETARG_BYTEA_PP(0);
	const unsigned char *key = domi_key_from_bytea(PG_GETARG_BYTEA_PP(1));

	PG_RETURN_BYTEA_P(domi_seal(VARDATA_ANY(plaintext),
								VARSIZE_ANY_EXHDR(plaintext), key));
}

/* domi.secretbox_open(box bytea, key bytea) returns bytea */
Datum
domi_secretbox_open(PG_FUNCTION_ARGS)
{
	bytea	   *box = PG_GETARG_BYTEA_PP(0);
	const unsigned char *key = domi_key_from_bytea(PG_GETARG_BYTEA_PP(1));

	PG_RETURN_BYTEA_P(domi_open(VARDATA_ANY(box), VARSIZE_ANY_EXHDR(box), key));
}

/* domi.secretbox_text(plaintext text, key bytea) returns bytea */
Datum
domi_secretbox_text(PG_FUNCTION_ARGS)
{
	text	   *plaintext = PG_GETARG_TEXT_PP(0);
	const unsigned char *key = domi_key_from_bytea(PG_GETARG_BYTEA_PP(1));
	Size		len;
	const char *utf8 = domi_text_to_utf8(plaintext, &len);

	PG_RETURN_BYTEA_P(domi_seal(utf8, len, key));
}

/* domi.secretbox_open_text(box bytea, key bytea) returns text */
Datum
domi_secretbox_open_text(PG_FUNCTION_ARGS)
{
	bytea	   *box = PG_GETARG_BYTEA_PP(0);
	const unsigned char *key = domi_key_from_bytea(PG_GETARG_BYTEA_PP(1));
	bytea	   *utf8 = domi_open(VARDATA_ANY(box), VARSIZE_ANY_EXHDR(box), key);

	PG_RETURN_TEXT_P(domi_utf8_to_text(utf8));
}

/* Called once from _PG_init. */
void
domi_crypto_init(void)
{
	if (sodium_init() < 0)
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("could not initialize libsodium")));
	domi_random_init();
}
