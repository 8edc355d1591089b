/*
 * random.c
 *		Random bytes for nonces and keys: a per-process buffered generator
 *		seeded from the operating system.
 *
 * A nonce per row must not cost a system call per row, so bytes come from
 * a buffer of ChaCha20 keystream.  The buffer is refilled with "fast key
 * erasure": each refill produces a new stream key along with the output and
 * overwrites the old key, so bytes already handed out cannot be recomputed
 * from the state later.
 *
 * The danger is fork.  A buffer or stream key that exists in the postmaster
 * (or in any process that forks) would be copied into every child, and each
 * child would hand out the same nonces.  Two independent guards prevent it:
 *
 *	- The state records the pid of the process that seeded it, and every
 *	  call compares it with MyProcPid, which PostgreSQL sets in each new
 *	  backend, parallel worker and background worker right after fork.
 *	- A pthread_atfork child handler wipes the state in any forked child,
 *	  even one PostgreSQL did not make.
 *
 * Either one alone makes a child seed itself from the OS on first use.
 */
#include "postgres.h"

#include <pthread.h>
#include <unistd.h>

#include "miscadmin.h"

#include "crypto.h"

/* Output bytes per refill; a nonce is 24, so about 170 nonces per refill. */
#define RANDOM_POOL_BYTES	4096

typedef struct RandomState
{
	pid_t		owner;			/* process that seeded this state; 0: none */
	size_t		available;		/* unread bytes at the end of pool */
	unsigned char key[crypto_stream_chacha20_KEYBYTES];
	unsigned char pool[RANDOM_POOL_BYTES];
} RandomState;

static RandomState state;

/* Forget everything, so that the next call seeds afresh from the OS. */
static void
random_forget(void)
{
	sodium_memzero(&state, sizeof(state));
}

/*
 * Produce RANDOM_POOL_BYTES of output and the next stream key in one
 * keystream.  The key is used for one refill only, so a zero nonce is safe.
 */
static void
random_refill(void)
{
	static const unsigned char zero_nonce[crypto_stream_chacha20_NONCEBYTES];
	unsigned char stream[crypto_stream_chacha20_KEYBYTES + RANDOM_POOL_BYTES];

	crypto_stream_chacha20(stream, sizeof(stream), zero_nonce, state.key);
	memcpy(state.key, stream, sizeof(state.key));
	memcpy(state.pool, stream + sizeof(state.key), RANDOM_POOL_BYTES);
	sodium_memzero(stream, sizeof(stream));
	state.available = RANDOM_POOL_BYTES;
}

/* A new process: take a fresh stream key from the operating system. */
static void
random_seed(void)
{
	random_forget();
	randombytes_buf(state.key, sizeof(state.key));
	state.owner = MyProcPid;
	random_refill();
}

void
domi_random_bytes(void *buf, size_t len)
{
	unsigned char *out = buf;

	/* Cheap per call: MyProcPid is a variable, not a system call. */
	if (unlikely(state.owner != MyProcPid))
		random_seed();

	while (len > 0)
	{
		size_t		n;
		unsigned char *from;

		if (state.available == 0)
			random_refill();
		n = Min(len, state.available);
		from = state.pool + RANDOM_POOL_BYTES - state.available;
		memcpy(out, from, n);
		/* Bytes handed out must not stay behind in the pool. */
		sodium_memzero(from, n);
		state.available -= n;
		out += n;
		len -= n;
	}
}

/*
 * Called once from _PG_init, after sodium_init().  The generator is seeded
 * right away, which with shared_preload_libraries means in the postmaster:
 * every backend and parallel worker then inherits a seeded state and must
 * replace it, so the fork guards are exercised on every connection and the
 * nonce test (test/t/002_crypto_nonces.pl) fails if they ever stop working.
 */
void
domi_random_init(void)
{
	if (pthread_atfork(NULL, NULL, random_forget) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not register the fork handler of the random generator")));
	random_seed();
}
