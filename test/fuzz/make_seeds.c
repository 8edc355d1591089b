/*
 * make_seeds.c
 *		Writes the binary seeds of the secretbox and wrapped_key corpora:
 *		valid boxes and wrapped keys, which random mutation alone would
 *		never produce (they carry MACs).  Run once; its output is committed
 *		under test/fuzz/corpus/.
 *
 *   clang-14 -o /tmp/make_seeds test/fuzz/make_seeds.c -lsodium
 *   /tmp/make_seeds test/fuzz/corpus
 *
 * The keys are the harnesses' fixed test keys (fuzz_secretbox.c,
 * fuzz_wrapped_key.c), and the wrapping follows src/rootkey.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

static void
put(const char *dir, const char *name, const unsigned char *data, size_t len)
{
	char		path[4096];
	FILE	   *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0)
	{
		perror(path);
		exit(1);
	}
}

static void
secretbox_seeds(const char *dir)
{
	static const unsigned char key[32] = "domi fuzz key, not a secret....";
	static const size_t lengths[] = {0, 1, 31, 200, 479, 480, 481, 1000};
	unsigned char in[1 + 24 + 16 + 1000];

	for (size_t i = 0; i < sizeof(lengths) / sizeof(lengths[0]); i++)
	{
		size_t		len = lengths[i];
		unsigned char msg[1000];
		char		name[64];

		/* UTF-8 text, so that flag 2 (open as text) passes too. */
		for (size_t j = 0; j < len; j++)
			msg[j] = 'a' + j % 26;
		in[0] = 2;
		randombytes_buf(in + 1, 24);
		crypto_secretbox_easy(in + 1 + 24, msg, len, in + 1, key);
		snprintf(name, sizeof(name), "box_%zu", len);
		put(dir, name, in, 1 + 24 + 16 + len);
	}
}

static void
wrapped_key_seeds(const char *dir)
{
	static const char label[] = "domi tenant key";
	static const char flabel[] = "domi root key fingerprint";
	unsigned char in[1 + 1 + 16 + 4 + 16 + 24 + 32 + 16];
	unsigned char root[32];
	unsigned char wrap_key[32];
	unsigned char fp_key[32];
	unsigned char tenant_key[32];
	unsigned char ad[sizeof(label) - 1 + 16 + 4];
	unsigned char *p;

	for (int previous = 0; previous < 2; previous++)
	{
		memset(root, previous ? 0x22 : 0x11, sizeof(root));
		crypto_kdf_derive_from_key(wrap_key, 32, 1, "domiroot", root);
		crypto_kdf_derive_from_key(fp_key, 32, 2, "domiroot", root);
		p = in;
		*p++ = 0;				/* the keyring case */
		*p++ = 16;
		crypto_generichash(p, 16, (const unsigned char *) flabel, sizeof(flabel) - 1, fp_key, 32);
		p += 16;
		memcpy(p, "\x00\x00\x00\x03", 4);	/* version 3 */
		memcpy(ad + sizeof(label) - 1 + 16, p, 4);
		p += 4;
		randombytes_buf(p, 16);	/* the tenant */
		memcpy(ad, label, sizeof(label) - 1);
		memcpy(ad + sizeof(label) - 1, p, 16);
		p += 16;
		randombytes_buf(tenant_key, 32);
		randombytes_buf(p, 24);
		crypto_aead_xchacha20poly1305_ietf_encrypt(p + 24, NULL, tenant_key, 32,
												   ad, sizeof(ad), NULL, p, wrap_key);
		put(dir, previous ? "wrapped_previous" : "wrapped_current", in, sizeof(in));
	}
	put(dir, "root_key_text", (const unsigned char *)
		"\x01" "00112233445566778899aabbccddeeffFFEEDDCCBBAA99887766554433221100\n", 66);
}

int
main(int argc, char **argv)
{
	char		dir[4096];

	if (argc != 2 || sodium_init() < 0)
	{
		fprintf(stderr, "usage: make_seeds CORPUSDIR\n");
		return 1;
	}
	snprintf(dir, sizeof(dir), "%s/secretbox", argv[1]);
	secretbox_seeds(dir);
	snprintf(dir, sizeof(dir), "%s/wrapped_key", argv[1]);
	wrapped_key_seeds(dir);
	return 0;
}
