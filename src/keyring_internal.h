/*
 * keyring_internal.h
 *		What the files of the keyring share among themselves and with no
 *		one else: the rows of domi.tenant_keys, the owner's SPI access to
 *		the table, and the cache (keyring.c), used by the SQL entry points
 *		(keyring_sql.c).  Other concerns use keyring.h.
 */
#ifndef DOMI_KEYRING_INTERNAL_H
#define DOMI_KEYRING_INTERNAL_H

#include "access/htup.h"
#include "access/tupdesc.h"

#include "domi.h"
#include "keyring.h"

typedef enum KeyState
{
	KEY_ACTIVE,					/* encrypts and decrypts; one per tenant */
	KEY_DECRYPT_ONLY,			/* decrypts: rotated away from, or imported */
	KEY_RETIRED,				/* kept wrapped, opens nothing */
	KEY_DESTROYED				/* the key is gone */
} KeyState;

/* One row of domi.tenant_keys, copied out of SPI. */
typedef struct KeyRow
{
	int32		version;
	KeyState	state;
	bytea	   *wrapped;		/* NULL when destroyed */
	bytea	   *fingerprint;
} KeyRow;

typedef struct OwnerSpi
{
	DomiOwnerSpi as_owner;
	MemoryContext caller_context;
} OwnerSpi;

typedef struct TenantSummary
{
	int32		max_version;
	bool		has_active;
	bool		destroyed;
} TenantSummary;

/* keyring.c */
extern int32 keyring_add_active_key(const pg_uuid_t *tenant, bool only_if_none);
extern void keyring_unwrap_row(unsigned char *key, const KeyRow *row,
							   const pg_uuid_t *tenant);
extern void keyring_owner_spi_connect(OwnerSpi *spi);
extern int keyring_owner_spi_run(const char *sql, int nargs, Oid *types,
								 Datum *values, const char *nulls,
								 int expected);
extern void keyring_owner_spi_finish(OwnerSpi *spi);
extern void keyring_cache_flush(void);
extern void keyring_lock_tenant_keys(const pg_uuid_t *tenant);
extern TenantSummary keyring_begin_adding_version(OwnerSpi *spi,
												  const pg_uuid_t *tenant);
extern void keyring_check_no_foreign_root(void);
extern void keyring_insert_key(const pg_uuid_t *tenant, int32 version,
							   KeyState state, const unsigned char *key);
extern bytea *keyring_copy_bytea_column(HeapTuple tuple, TupleDesc desc,
										int column, MemoryContext context);
extern void keyring_cache_prepare(void);
extern unsigned char *keyring_arena_slot(int slot);
extern bytea *keyring_wrap_to_bytea(const unsigned char *key,
									const pg_uuid_t *tenant, int32 version);
extern bytea *keyring_fingerprint_to_bytea(const unsigned char *fingerprint);
extern KeyState keyring_parse_key_state(const char *name);
extern void keyring_report_destroyed(const pg_uuid_t *tenant);

#endif							/* DOMI_KEYRING_INTERNAL_H */
