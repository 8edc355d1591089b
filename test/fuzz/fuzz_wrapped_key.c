/*
 * fuzz_wrapped_key.c
 *		libFuzzer harness: the wrapped tenant key format and the root key
 *		text (src/rootkey.c): domi_root_match() on a stored fingerprint,
 *		domi_unwrap_tenant_key() on stored wrapped bytes, as keyring.c's
 *		unwrap_row() calls them, and decode_root_key() on the text of a key
 *		file, on arbitrary bytes.
 *
 * Input: one byte selecting the case, then (for the keyring case) a
 * fingerprint length byte and the fingerprint, a 4-byte version, a 16-byte
 * tenant and the wrapped bytes.  Beyond "no crash": an unwrap succeeds
 * only for bytes that libsodium's AEAD accepts with the same associated
 * data, and a decoded root key is exactly the hex it was given.  The file
 * is compiled into the harness to set its root keys and reach
 * decode_root_key().
 */
#include "../../src/rootkey.c"

#include "pgshim.h"

void
domi_random_bytes(void *buf, size_t len)
{
	randombytes_buf(buf, len);
}

typedef struct Input
{
	const uint8_t *data;
	size_t		size;
} Input;

/* Root keys of the harness: fixed, so that a seed corpus can hold keys they wrapped. */
static void
load_fixed_root_keys(void)
{
	unsigned char key[DOMI_KEY_BYTES];

	root_keys = sodium_malloc(sizeof(RootKeys));
	if (root_keys == NULL)
		abort();
	memset(root_keys, 0, sizeof(RootKeys));
	memset(key, 0x11, sizeof(key));
	derive_root_key(&root_keys->current, key);
	memset(key, 0x22, sizeof(key));
	derive_root_key(&root_keys->previous, key);
	preloaded = true;
}

static void
check_unwrap(const uint8_t *p, size_t n)
{
	size_t		fplen;
	const uint8_t *fp;
	int32		version;
	pg_uuid_t	tenant;
	DomiRootMatch root;
	unsigned char key[DOMI_KEY_BYTES];
	unsigned char expected[DOMI_KEY_BYTES];
	unsigned char ad[WRAP_AD_BYTES];
	bool		ok;
	bool		sodium_ok;

	if (n < 1)
		return;
	fplen = p[0];
	p++, n--;
	if (n < fplen + 4 + UUID_LEN)
		return;
	fp = p;
	p += fplen, n -= fplen;
	version = (int32) (((uint32) p[0] << 24) | ((uint32) p[1] << 16) | ((uint32) p[2] << 8) | p[3]);
	p += 4, n -= 4;
	memcpy(tenant.data, p, UUID_LEN);
	p += UUID_LEN, n -= UUID_LEN;

	/* As unwrap_row() does: the fingerprint says which root key, if any. */
	root = domi_root_match(fp, fplen);
	if (root == DOMI_ROOT_OTHER)
		return;
	ok = domi_unwrap_tenant_key(key, p, n, root, &tenant, version);

	wrap_associated_data(ad, &tenant, version);
	sodium_ok = n == DOMI_WRAPPED_KEY_BYTES &&
		crypto_aead_xchacha20poly1305_ietf_decrypt(expected, NULL, NULL,
												   p + DOMI_WRAP_NONCE_BYTES,
												   n - DOMI_WRAP_NONCE_BYTES,
												   ad, sizeof(ad), p,
												   root == DOMI_ROOT_CURRENT ?
												   root_keys->current.wrap_key :
												   root_keys->previous.wrap_key) == 0;
	if (ok != sodium_ok || (ok && memcmp(key, expected, DOMI_KEY_BYTES) != 0))
	{
		fprintf(stderr, "fuzz_wrapped_key: unwrap disagrees with the AEAD\n");
		abort();
	}
}

static void
check_root_key_text(const uint8_t *p, size_t n)
{
	unsigned char key[DOMI_KEY_BYTES];
	char		problem[256];
	char	   *text = shim_cstring(p, n);

	if (decode_root_key(key, text, n, "the fuzz input", problem, sizeof(problem)))
	{
		char		hex[DOMI_KEY_BYTES * 2 + 1];

		sodium_bin2hex(hex, sizeof(hex), key, sizeof(key));
		if (n < ROOT_KEY_HEX_CHARS || pg_strncasecmp(hex, text, ROOT_KEY_HEX_CHARS) != 0)
			abort();
	}
}

static void
check_input(void *arg)
{
	Input	   *in = arg;

	if (in->data[0] & 1)
		check_root_key_text(in->data + 1, in->size - 1);
	else
		check_unwrap(in->data + 1, in->size - 1);
}

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int			LLVMFuzzerInitialize(int *argc, char ***argv);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	if (sodium_init() < 0)
		abort();
	load_fixed_root_keys();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Input		in = {data, size};

	if (size < 1)
		return 0;
	(void) shim_run(check_input, &in);
	return 0;
}
