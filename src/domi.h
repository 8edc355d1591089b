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

/*
 * How the tenant value now in force was set.  Only a scoped value counts,
 * unless a superuser allows session-wide tenants (domi.allow_session_tenant).
 */
typedef enum DomiTenantOrigin
{
	DOMI_TENANT_UNSET,			/* no tenant (empty) */
	DOMI_TENANT_SCOPED,			/* SET LOCAL, set_tenant(), a function's SET
								 * clause: ends with the transaction or call */
	DOMI_TENANT_SET_IN_XACT,	/* plain SET or set_config(..., false) in
								 * this transaction */
	DOMI_TENANT_SESSION_SET,	/* a plain SET of an earlier transaction */
	DOMI_TENANT_SESSION_CONFIG	/* PGOPTIONS, ALTER ROLE/DATABASE/SYSTEM SET */
} DomiTenantOrigin;

extern DomiTenantOrigin domi_tenant_origin(void);

struct config_generic;
extern struct config_generic *domi_find_guc(const char *name);

/*
 * tenant_session.c: domi.allow_session_tenant, and the hooks that refuse a
 * session-wide tenant where one is being made
 */
extern void domi_tenant_session_init(void);
extern bool domi_session_tenant_allowed(void);

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
/* the owner of domi's table name, InvalidOid when it does not exist */
extern Oid	domi_table_owner(const char *name, Oid *relid);

/* keyring.c, rootkey.c: the root key and tenant keys (internal API in keyring.h) */
extern void domi_keyring_init(void);

/* tenancy.c: tenant lookup; drops its prepared plans when the configuration changes */
extern void domi_tenancy_init(void);

/* guard.c: the drop guard (domi.allow_drop, protected columns, event triggers) */
extern void domi_guard_init(void);

/* ledger.c: the DDL ledger (domi.ddl_ledger setting, statement hook, event triggers) */
extern void domi_ledger_init(void);

/* sync.c: field-level sync (domi.origin, domi.client_id); internal API in sync.h */
extern void domi_sync_init(void);

#endif							/* DOMI_H */
