/*
 * keyring_common.h
 *		Sizes, SQLSTATEs, the root-match verdict and the one helper shared
 *		by the root key (rootkey.c) and the tenant keys (keyring*.c).  It
 *		needs neither side, so both include it without including each other.
 */
#ifndef DOMI_KEYRING_COMMON_H
#define DOMI_KEYRING_COMMON_H

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/uuid.h"

#include "crypto.h"

/* Fingerprint of a root key: keyed BLAKE2b under a subkey derived from it. */
#define DOMI_FINGERPRINT_BYTES	16

/*
 * A wrapped tenant key: XChaCha20-Poly1305 nonce (24) || ciphertext of the
 * 32-byte key || tag (16).  The tenant and the version are authenticated as
 * associated data, so a wrapped key copied to another row does not unwrap.
 */
#define DOMI_WRAP_NONCE_BYTES	24
#define DOMI_WRAP_TAG_BYTES		16
#define DOMI_WRAPPED_KEY_BYTES	(DOMI_WRAP_NONCE_BYTES + DOMI_KEY_BYTES + DOMI_WRAP_TAG_BYTES)

/* SQLSTATEs of the keyring beyond those of the encryption core (README.md). */
#define DOMI_ERRCODE_KEYRING_STATE	ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE	/* 55000 */
#define DOMI_ERRCODE_UNKNOWN_KEY	ERRCODE_UNDEFINED_OBJECT	/* 42704 */
#define DOMI_ERRCODE_NULL_ARGUMENT	ERRCODE_NULL_VALUE_NOT_ALLOWED	/* 22004 */
#define DOMI_ERRCODE_BAD_WRAPPED	ERRCODE_DATA_CORRUPTED	/* XX001 */

/* Which root key wrapped a tenant key, judged by its stored fingerprint. */
typedef enum DomiRootMatch
{
	DOMI_ROOT_CURRENT,
	DOMI_ROOT_PREVIOUS,
	DOMI_ROOT_OTHER
} DomiRootMatch;

/* A tenant's uuid as text, for messages. */
static inline char *
domi_uuid_text(const pg_uuid_t *uuid)
{
	return DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(uuid)));
}

#endif							/* DOMI_KEYRING_COMMON_H */
