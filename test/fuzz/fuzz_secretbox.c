/*
 * fuzz_secretbox.c
 *		libFuzzer harness: the sealed-box format of domi.secretbox_open and
 *		domi.secretbox_open_text (src/crypto.c), on arbitrary bytes.
 *
 * Input: one flags byte, then the box.  Flag bit 0 takes the key from
 * the next 32 bytes instead of the fixed key; bit 1 also checks the
 * opened bytes as text.  Beyond "no crash", the harness checks the format
 * both ways: domi_open agrees with libsodium's crypto_secretbox_open_easy
 * on every box (domi has its own path for short values), and every
 * plaintext sealed by domi_seal opens with libsodium to the same bytes.
 */
#include "postgres.h"

#include "pgshim.h"
#include "../../src/crypto.h"

static const unsigned char fixed_key[DOMI_KEY_BYTES] = "domi fuzz key, not a secret....";

/* src/random.c needs the postmaster; libsodium's generator will do here. */
void
domi_random_bytes(void *buf, size_t len)
{
	randombytes_buf(buf, len);
}

void
domi_random_init(void)
{
}

typedef struct Input
{
	const uint8_t *data;
	size_t		size;
} Input;

static void
check_box(void *arg)
{
	Input	   *in = arg;
	const unsigned char *key = fixed_key;
	const uint8_t *box = in->data + 1;
	size_t		boxlen = in->size - 1;
	uint8_t		flags = in->data[0];
	unsigned char *expected;
	bool		sodium_ok;
	bytea	   *plain;

	if ((flags & 1) && boxlen >= DOMI_KEY_BYTES)
	{
		key = box;
		box += DOMI_KEY_BYTES;
		boxlen -= DOMI_KEY_BYTES;
	}

	/* libsodium's verdict first: domi's must be the same. */
	expected = palloc(boxlen + 1);
	sodium_ok = boxlen >= DOMI_BOX_OVERHEAD &&
		crypto_secretbox_open_easy(expected, box + DOMI_NONCE_BYTES,
								   boxlen - DOMI_NONCE_BYTES, box, key) == 0;

	/* Seal the box's bytes as a plaintext: libsodium opens it to them. */
	{
		bytea	   *sealed = domi_seal((const char *) box, boxlen, key);
		unsigned char *opened = palloc(boxlen + 1);

		if (VARSIZE(sealed) - VARHDRSZ != boxlen + DOMI_BOX_OVERHEAD ||
			crypto_secretbox_open_easy(opened,
									   (unsigned char *) VARDATA(sealed) + DOMI_NONCE_BYTES,
									   boxlen + DOMI_BOX_OVERHEAD - DOMI_NONCE_BYTES,
									   (unsigned char *) VARDATA(sealed), key) != 0 ||
			memcmp(opened, box, boxlen) != 0)
		{
			fprintf(stderr, "fuzz_secretbox: libsodium does not open what domi sealed\n");
			abort();
		}
	}

	PG_TRY();
	{
		plain = domi_open((const char *) box, boxlen, key);
	}
	PG_CATCH();
	{
		if (sodium_ok)
		{
			fprintf(stderr, "fuzz_secretbox: domi refused a box libsodium opens\n");
			abort();
		}
		PG_RE_THROW();
	}
	PG_END_TRY();
	if (!sodium_ok || VARSIZE(plain) - VARHDRSZ != boxlen - DOMI_BOX_OVERHEAD ||
		memcmp(VARDATA(plain), expected, boxlen - DOMI_BOX_OVERHEAD) != 0)
	{
		fprintf(stderr, "fuzz_secretbox: domi opened a box differently from libsodium\n");
		abort();
	}
	if (flags & 2)
		(void) domi_utf8_to_text(plain);
}

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int			LLVMFuzzerInitialize(int *argc, char ***argv);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	if (sodium_init() < 0)
		abort();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Input		in = {data, size};

	if (size < 1 || size > 1024 * 1024)
		return 0;
	(void) shim_run(check_box, &in);
	return 0;
}
