/*
 * secretbox_direct.c
 *		The limit for bench/crypto: libsodium crypto_secretbox_easy called
 *		directly from C on N messages of M bytes, no database involved.
 *
 * Prints two lines, "random_nonce NS" and "counter_nonce NS", the cost per
 * message in nanoseconds: with a nonce from randombytes_buf per message (how
 * an application calls libsodium) and with an incremented nonce (the cipher
 * and MAC alone).
 *
 *		usage: secretbox_direct ROWS BYTES
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

static double
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int
main(int argc, char **argv)
{
	long		rows;
	size_t		bytes;
	unsigned char key[crypto_secretbox_KEYBYTES];
	unsigned char *msg;
	unsigned char *box;
	unsigned long long checksum = 0;
	double		start;
	long		i;

	if (argc != 3 || (rows = atol(argv[1])) <= 0 || (long) (bytes = (size_t) atol(argv[2])) <= 0)
	{
		fprintf(stderr, "usage: secretbox_direct ROWS BYTES\n");
		return 2;
	}
	if (sodium_init() < 0)
		return 1;
	msg = malloc(bytes);
	box = malloc(bytes + crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES);
	if (msg == NULL || box == NULL)
		return 1;
	randombytes_buf(key, sizeof(key));
	randombytes_buf(msg, bytes);

	/* What an application does: a fresh nonce from the OS per message. */
	start = now_ns();
	for (i = 0; i < rows; i++)
	{
		randombytes_buf(box, crypto_secretbox_NONCEBYTES);
		crypto_secretbox_easy(box + crypto_secretbox_NONCEBYTES, msg, bytes, box, key);
		checksum += box[crypto_secretbox_NONCEBYTES];
	}
	printf("random_nonce %.1f\n", (now_ns() - start) / rows);

	/* The cipher and MAC alone: an incremented nonce costs nothing. */
	memset(box, 0, crypto_secretbox_NONCEBYTES);
	start = now_ns();
	for (i = 0; i < rows; i++)
	{
		sodium_increment(box, crypto_secretbox_NONCEBYTES);
		crypto_secretbox_easy(box + crypto_secretbox_NONCEBYTES, msg, bytes, box, key);
		checksum += box[crypto_secretbox_NONCEBYTES];
	}
	printf("counter_nonce %.1f\n", (now_ns() - start) / rows);

	/* Keeps the compiler from dropping the loops. */
	fprintf(stderr, "checksum %llu\n", checksum);
	free(msg);
	free(box);
	return 0;
}
