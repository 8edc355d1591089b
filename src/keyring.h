/*
 * keyring.h
 *		Internal C API of the keyring: the tenant keys and their per-backend
 *		cache (keyring*.c), and the re-key of stored values (rekey.c,
 *		retire.c, firstkey.c).  The root key is in rootkey.h; the sizes and
 *		SQLSTATEs that both share are in keyring_common.h.  Arrows point one
 *		way: keyring.h -> rootkey.h -> keyring_common.h.
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
#include "rootkey.h"

/* keyring.c */
extern const unsigned char *domi_keyring_active_key(const pg_uuid_t *tenant);
extern bool domi_keyring_destroyed(const pg_uuid_t *tenant);
extern bytea *domi_keyring_open(const char *box, Size boxlen,
								const pg_uuid_t *tenant, bool *under_active);

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
