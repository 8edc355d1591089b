/*
 * domi.h
 *		Shared declarations for the domi extension: one init function per
 *		concern, called from _PG_init in domi.c.
 */
#ifndef DOMI_H
#define DOMI_H

/* tenant.c: the domi.tenant_id setting and the tenant context functions */
extern void domi_tenant_init(void);

/* crypto.c: libsodium and the random generator (internal API in crypto.h) */
extern void domi_crypto_init(void);

/* rls.c: the domi.rls_guard and domi.tenant_column settings, policy trees */
extern void domi_rls_init(void);

/* guard.c: the drop guard (domi.allow_drop, protected columns, event triggers) */
extern void domi_guard_init(void);

#endif							/* DOMI_H */
