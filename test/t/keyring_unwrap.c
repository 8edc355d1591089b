/*
 * keyring_unwrap.c — a test helper for test/t/024_keyring_log_scan.pl,
 * written from the documented key format (README.md, "Keyring"), not from
 * src/rootkey.c, so that the test has the real keys only if the format is
 * what the README says:
 *
 *   wrap subkey  = crypto_kdf_derive_from_key(32, id 1, "domiroot", root)
 *   fingerprint  = BLAKE2b-128("domi root key fingerprint",
 *                      key = crypto_kdf_derive_from_key(32, id 2, "domiroot", root))
 *   wrapped      = nonce (24) || XChaCha20-Poly1305-IETF(tenant key, wrap subkey,
 *                      ad = "domi tenant key" || tenant uuid (16) || version (4, big-endian))
 *
 *   keyring_unwrap derive ROOT_HEX                          -> "FINGERPRINT WRAP_SUBKEY"
 *   keyring_unwrap unwrap ROOT_HEX TENANT VERSION WRAPPED   -> "TENANT_KEY"
 *   keyring_unwrap open KEY_HEX BOX_HEX                     -> plaintext (secretbox)
 *
 * Everything in hex; exit status 1 when something does not authenticate.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned char *
from_hex(const char *hex, size_t *len)
{
	size_t		max = strlen(hex) / 2 + 1;
	unsigned char *out = malloc(max);

	if (out == NULL || sodium_hex2bin(out, max, hex, strlen(hex), "-", len, NULL) != 0)
	{
		fprintf(stderr, "invalid hex\n");
		exit(2);
	}
	return out;
}

static void
print_hex(const unsigned char *bin, size_t len)
{
	char	   *hex = malloc(len * 2 + 1);

	sodium_bin2hex(hex, len * 2 + 1, bin, len);
	fputs(hex, stdout);
	free(hex);
}

static void
derive(unsigned char *wrap, unsigned char *fingerprint, const unsigned char *root)
{
	static const char label[] = "domi root key fingerprint";
	unsigned char fpkey[32];

	crypto_kdf_derive_from_key(wrap, 32, 1, "domiroot", root);
	crypto_kdf_derive_from_key(fpkey, 32, 2, "domiroot", root);
	crypto_generichash(fingerprint, 16, (const unsigned char *) label, strlen(label), fpkey, 32);
}

int
main(int argc, char **argv)
{
	size_t		len;

	if (sodium_init() < 0)
		return 2;
	if (argc == 3 && strcmp(argv[1], "derive") == 0)
	{
		unsigned char wrap[32], fingerprint[16];

		derive(wrap, fingerprint, from_hex(argv[2], &len));
		print_hex(fingerprint, 16);
		putchar(' ');
		print_hex(wrap, 32);
		putchar('\n');
		return 0;
	}
	if (argc == 6 && strcmp(argv[1], "unwrap") == 0)
	{
		unsigned char wrap[32], fingerprint[16], ad[15 + 16 + 4], key[32];
		unsigned char *tenant = from_hex(argv[3], &len);
		unsigned long version = strtoul(argv[4], NULL, 10);
		size_t		wrapped_len;
		unsigned char *wrapped = from_hex(argv[5], &wrapped_len);

		derive(wrap, fingerprint, from_hex(argv[2], &len));
		memcpy(ad, "domi tenant key", 15);
		memcpy(ad + 15, tenant, 16);
		ad[31] = version >> 24;
		ad[32] = version >> 16;
		ad[33] = version >> 8;
		ad[34] = version;
		if (wrapped_len != 72 ||
			crypto_aead_xchacha20poly1305_ietf_decrypt(key, NULL, NULL, wrapped + 24, 48,
													   ad, sizeof(ad), wrapped, wrap) != 0)
			return 1;
		print_hex(key, 32);
		putchar('\n');
		return 0;
	}
	if (argc == 4 && strcmp(argv[1], "open") == 0)
	{
		unsigned char *key = from_hex(argv[2], &len);
		size_t		box_len;
		unsigned char *box = from_hex(argv[3], &box_len);
		unsigned char *plain = malloc(box_len + 1);

		if (box_len < 40 ||
			crypto_secretbox_open_easy(plain, box + 24, box_len - 24, box, key) != 0)
			return 1;
		fwrite(plain, 1, box_len - 40, stdout);
		putchar('\n');
		return 0;
	}
	fprintf(stderr, "usage: see the comment at the top of keyring_unwrap.c\n");
	return 2;
}
