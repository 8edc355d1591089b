/*
 * rootkey.h
 *		The root key (rootkey.c): loaded by the postmaster, it wraps and
 *		unwraps the tenant keys.  rootkey.c knows nothing of the tenant key
 *		table or its cache: it includes this header and keyring_common.h,
 *		never keyring.h.
 */
#ifndef DOMI_ROOTKEY_H
#define DOMI_ROOTKEY_H

#include "utils/uuid.h"

#include "keyring_common.h"

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

#endif							/* DOMI_ROOTKEY_H */
