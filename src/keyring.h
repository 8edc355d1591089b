/*
 * keyring.h
 *		Internal C API of the keyring: the root key (rootkey.c), the tenant
 *		keys and their per-backend cache (keyring.c), and the re-key of
 *		stored values (rekey.c).
 *
 * Key material lives only in libsodium-guarded memory: the root key's
 * derived subkeys (loaded by the postmaster, read-only, inherited by fork)
 * and the unwrapped tenant keys (a per-backend arena).  Nothing here ever
 * puts key bytes into a message.
 */
#ifndef DOMI_KEYRING_H
#define DOMI_KEYRING_H

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

/* rootkey.c */
extern void domi_rootkey_init(void);
extern void domi_require_root_key(void);
extern bool domi_root_key_loaded(void);
extern const unsigned char *domi_root_fingerprint(bool previous);
extern const char *domi_root_key_problem(bool previous);
extern DomiRootMatch domi_root_match(const unsigned char *fingerprint, Size len);
extern void domi_wrap_tenant_key(unsigned char *wrapped, const unsigned char *key,
								 const pg_uuid_t *tenant, int32 version);
extern bool domi_unwrap_tenant_key(unsigned char *key, const unsigned char *wrapped,
								   Size wrapped_len, DomiRootMatch root,
								   const pg_uuid_t *tenant, int32 version);
extern void domi_report_root_mismatch(const pg_uuid_t *tenant, int32 version,
									  const unsigned char *fingerprint, Size len);

/* keyring.c */
extern const unsigned char *domi_keyring_active_key(const pg_uuid_t *tenant);
extern bool domi_keyring_destroyed(const pg_uuid_t *tenant);
extern bytea *domi_keyring_open(const char *box, Size boxlen,
								const pg_uuid_t *tenant, bool *under_active);
extern char *domi_uuid_text(const pg_uuid_t *uuid);

/* retire.c */
struct List;
extern void domi_keyring_wait_for_older(const char *what);
extern struct List *domi_registered_columns(void);
extern void domi_check_no_values_under(struct List *columns, const pg_uuid_t *tenant,
									   const unsigned char *key, int32 version);

/* firstkey.c */
extern void domi_firstkey_init(void);
extern void domi_check_first_key(const pg_uuid_t *tenant, Oid caller);

#endif							/* DOMI_KEYRING_H */
