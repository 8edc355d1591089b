/*
 * domi.h
 *		Shared declarations for the domi extension: one init function per
 *		concern, called from _PG_init in domi.c.
 */
#ifndef DOMI_H
#define DOMI_H

/* tenant.c: the domi.tenant_id setting and the tenant context functions */
extern void domi_tenant_init(void);

struct pg_uuid_t;

/* the current tenant for C callers, with domi.require_tenant()'s error */
extern const struct pg_uuid_t *domi_required_tenant(void);

/*
 * Set the tenant for the current transaction (NULL clears it); error 25P01
 * outside a transaction block, the check that
 * domi_require_transaction_block() makes alone.
 */
extern void domi_set_local_tenant(const struct pg_uuid_t *tenant);
extern void domi_require_transaction_block(void);

/* crypto.c: libsodium and the random generator (internal API in crypto.h) */
extern void domi_crypto_init(void);

/* rls.c: the domi.rls_guard and domi.tenant_column settings, policy trees */
extern void domi_rls_init(void);

/*
 * owner_spi.c: SPI_connect as the owner of a domi table, with the user id
 * switched and search_path pinned to pg_catalog, pg_temp; and back.
 */
typedef struct DomiOwnerSpi
{
	Oid			saved_userid;	/* the caller */
	int			saved_sec_context;
	int			saved_nestlevel;
} DomiOwnerSpi;

extern void domi_spi_connect_as(Oid owner, DomiOwnerSpi *spi);
extern void domi_spi_finish_as(DomiOwnerSpi *spi);

/* keyring.c, rootkey.c: the root key and tenant keys (internal API in keyring.h) */
extern void domi_keyring_init(void);

/* tenancy.c: tenant lookup; drops its prepared plans when the configuration changes */
extern void domi_tenancy_init(void);

/* guard.c: the drop guard (domi.allow_drop, protected columns, event triggers) */
extern void domi_guard_init(void);

/* sync.c: field-level sync (domi.origin, domi.client_id); internal API in sync.h */
extern void domi_sync_init(void);

#endif							/* DOMI_H */
