/*
 * keyring_sql.c
 *		The SQL entry points of the keyring: domi.encrypt and domi.decrypt
 *		(bytea and text), rotating, retiring, destroying, importing and
 *		re-wrapping tenant keys, and domi._root_key_info.
 *
 * They work through the key table access and the cache of keyring.c
 * (keyring_internal.h); see keyring.c for how they read the table as its
 * owner and how the cache stays coherent.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "citus.h"
#include "domi.h"
#include "keyring_internal.h"

PG_FUNCTION_INFO_V1(domi_encrypt);
PG_FUNCTION_INFO_V1(domi_decrypt);
PG_FUNCTION_INFO_V1(domi_encrypt_text);
PG_FUNCTION_INFO_V1(domi_decrypt_text);
PG_FUNCTION_INFO_V1(domi_rotate_tenant_key);
PG_FUNCTION_INFO_V1(domi_retire_tenant_key);
PG_FUNCTION_INFO_V1(domi_destroy_tenant_keys);
PG_FUNCTION_INFO_V1(domi_import_tenant_key);
PG_FUNCTION_INFO_V1(domi_rewrap_tenant_keys);
PG_FUNCTION_INFO_V1(domi_root_key_info);

/* ---------------------------------------------------------------------
 * SQL functions
 * ---------------------------------------------------------------------
 */

/*
 * The tenant argument at position argno, or the current tenant for the
 * forms without one.
 */
static const pg_uuid_t *
tenant_argument(FunctionCallInfo fcinfo, int argno)
{
	if (PG_NARGS() <= argno)
		return domi_required_tenant();
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(DOMI_ERRCODE_NULL_ARGUMENT),
				 errmsg("tenant must not be null")));
	return PG_GETARG_UUID_P(argno);
}

static bytea *
keyring_seal(const char *msg, Size len, const pg_uuid_t *tenant)
{
	return domi_seal(msg, len, domi_keyring_active_key(tenant));
}

static bytea *
keyring_open_datum(FunctionCallInfo fcinfo)
{
	bytea	   *box = PG_GETARG_BYTEA_PP(0);
	bool		under_active;

	return domi_keyring_open(VARDATA_ANY(box), VARSIZE_ANY_EXHDR(box),
							 tenant_argument(fcinfo, 1), &under_active);
}

/* domi.encrypt(plaintext bytea [, tenant uuid]) returns bytea */
Datum
domi_encrypt(PG_FUNCTION_ARGS)
{
	bytea	   *plaintext;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	plaintext = PG_GETARG_BYTEA_PP(0);
	PG_RETURN_BYTEA_P(keyring_seal(VARDATA_ANY(plaintext), VARSIZE_ANY_EXHDR(plaintext),
								   tenant_argument(fcinfo, 1)));
}

/* domi.decrypt(box bytea [, tenant uuid]) returns bytea */
Datum
domi_decrypt(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	PG_RETURN_BYTEA_P(keyring_open_datum(fcinfo));
}

/* domi.encrypt_text(plaintext text [, tenant uuid]) returns bytea */
Datum
domi_encrypt_text(PG_FUNCTION_ARGS)
{
	Size		len;
	const char *utf8;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	utf8 = domi_text_to_utf8(PG_GETARG_TEXT_PP(0), &len);
	PG_RETURN_BYTEA_P(keyring_seal(utf8, len, tenant_argument(fcinfo, 1)));
}

/* domi.decrypt_text(box bytea [, tenant uuid]) returns text */
Datum
domi_decrypt_text(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(domi_utf8_to_text(keyring_open_datum(fcinfo)));
}

/* domi.rotate_tenant_key(tenant uuid) returns int: the new active version */
Datum
domi_rotate_tenant_key(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(keyring_add_active_key(tenant_argument(fcinfo, 0), false));
}

/*
 * The key row of a retirement, read as the table's owner (with the tenant's
 * lock and a row lock when lock): its state, whether this transaction
 * demoted it (rotated away from it), and its wrapped key.
 */
static KeyState
read_retiring_row(const pg_uuid_t *tenant, int32 version, bool lock, KeyRow *row,
				  bool *demoted_here)
{
	OwnerSpi	spi;
	Oid			types[2] = {UUIDOID, INT4OID};
	Datum		values[2] = {UUIDPGetDatum(tenant), Int32GetDatum(version)};
	HeapTuple	tuple;
	TupleDesc	desc;
	char	   *xmin;

	keyring_owner_spi_connect(&spi);
	if (lock)
		keyring_lock_tenant_keys(tenant);
	keyring_owner_spi_run(lock ?
						  "SELECT state, wrapped, root_fingerprint, xmin::text FROM domi.tenant_keys"
						  " WHERE tenant = $1 AND version = $2 FOR UPDATE" :
						  "SELECT state, wrapped, root_fingerprint, xmin::text FROM domi.tenant_keys"
						  " WHERE tenant = $1 AND version = $2",
						  2, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(DOMI_ERRCODE_UNKNOWN_KEY),
				 errmsg("tenant %s has no key version %d", domi_uuid_text(tenant), version)));
	tuple = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	row->version = version;
	row->state = keyring_parse_key_state(SPI_getvalue(tuple, desc, 1));
	row->wrapped = keyring_copy_bytea_column(tuple, desc, 2, spi.caller_context);
	row->fingerprint = keyring_copy_bytea_column(tuple, desc, 3, spi.caller_context);
	xmin = SPI_getvalue(tuple, desc, 4);
	*demoted_here = TransactionIdIsCurrentTransactionId((TransactionId) strtoul(xmin, NULL, 10));
	keyring_owner_spi_finish(&spi);
	if (row->state == KEY_ACTIVE)
		ereport(ERROR,
				(errcode(DOMI_ERRCODE_KEYRING_STATE),
				 errmsg("cannot retire the active key version %d of tenant %s",
						version, domi_uuid_text(tenant)),
				 errdetail("New values are encrypted under it."),
				 errhint("Call domi.rotate_tenant_key() first, then re-key with CALL domi.rekey().")));
	if (row->state == KEY_DESTROYED)
		keyring_report_destroyed(tenant);
	return row->state;
}

/*
 * Refuse while a registered column holds a value of the tenant under the
 * version.  The key is unwrapped into guarded memory of its own: the arena
 * may be wiped by an invalidation while the columns are read.
 */
static void
check_version_unused(const pg_uuid_t *tenant, const KeyRow *row)
{
	List	   *columns = domi_registered_columns();
	unsigned char *key;

	if (columns == NIL)
		return;
	domi_require_root_key();
	key = sodium_malloc(DOMI_KEY_BYTES);
	if (key == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not allocate guarded memory for a tenant key")));
	PG_TRY();
	{
		keyring_unwrap_row(key, row, tenant);
		domi_check_no_values_under(columns, tenant, key, row->version);
	}
	PG_FINALLY();
	{
		sodium_free(key);
	}
	PG_END_TRY();
}

/*
 * domi.retire_tenant_key(tenant uuid, version int) returns void
 *
 * Retires a decrypt_only version only when no value can be left under it:
 * it waits until every transaction open when it started has ended (one may
 * commit a value sealed before the rotation), then refuses while a
 * registered column holds one of the tenant's values under the version
 * (that check needs the root key).  A version demoted in this very
 * transaction is refused: until the rotation commits, other sessions still
 * seal under it.
 */
Datum
domi_retire_tenant_key(PG_FUNCTION_ARGS)
{
	const pg_uuid_t *tenant = tenant_argument(fcinfo, 0);
	int32		version;
	OwnerSpi	spi;
	Oid			types[2] = {UUIDOID, INT4OID};
	Datum		values[2];
	KeyRow		row;
	bool		demoted_here;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(DOMI_ERRCODE_NULL_ARGUMENT),
				 errmsg("key version must not be null")));
	version = PG_GETARG_INT32(1);
	values[0] = UUIDPGetDatum(tenant);
	values[1] = Int32GetDatum(version);

	/* Errors and the no-op first, without waiting for anyone. */
	if (read_retiring_row(tenant, version, false, &row, &demoted_here) == KEY_RETIRED)
		PG_RETURN_VOID();
	if (demoted_here)
		ereport(ERROR,
				(errcode(DOMI_ERRCODE_KEYRING_STATE),
				 errmsg("cannot retire key version %d of tenant %s in the transaction that made it decrypt-only",
						version, domi_uuid_text(tenant)),
				 errdetail("Until the rotation commits, other sessions still encrypt under it."),
				 errhint("Commit the rotation, re-key with CALL domi.rekey(), then retire.")));

	domi_keyring_wait_for_older("retire_tenant_key");

	if (read_retiring_row(tenant, version, true, &row, &demoted_here) == KEY_RETIRED)
		PG_RETURN_VOID();
	check_version_unused(tenant, &row);

	keyring_owner_spi_connect(&spi);
	keyring_owner_spi_run("UPDATE domi.tenant_keys SET state = 'retired', changed_at = now()"
						  " WHERE tenant = $1 AND version = $2",
						  2, types, values, NULL, SPI_OK_UPDATE);
	keyring_owner_spi_finish(&spi);
	keyring_cache_flush();
	PG_RETURN_VOID();
}

/*
 * domi.destroy_tenant_keys(tenant uuid) returns int: versions destroyed
 *
 * Crypto-shredding.  The rows stay, without their keys, so that the tenant
 * is known as destroyed (nothing is encrypted for it again) and versions
 * are never reused.  Needs no root key.
 */
Datum
domi_destroy_tenant_keys(PG_FUNCTION_ARGS)
{
	const pg_uuid_t *tenant = tenant_argument(fcinfo, 0);
	OwnerSpi	spi;
	Oid			types[1] = {UUIDOID};
	Datum		values[1] = {UUIDPGetDatum(tenant)};
	int32		destroyed;

	keyring_owner_spi_connect(&spi);
	keyring_lock_tenant_keys(tenant);
	keyring_owner_spi_run("UPDATE domi.tenant_keys SET state = 'destroyed', wrapped = NULL,"
						  " root_fingerprint = NULL, changed_at = now()"
						  " WHERE tenant = $1 AND state <> 'destroyed'",
						  1, types, values, NULL, SPI_OK_UPDATE);
	destroyed = (int32) SPI_processed;
	keyring_owner_spi_finish(&spi);
	keyring_cache_flush();
	PG_RETURN_INT32(destroyed);
}

/*
 * domi.import_tenant_key(tenant uuid, key bytea) returns int: the version
 *
 * The move from one application-wide key to per-tenant keys: the old key
 * becomes a decrypt_only version of the tenant, so domi.decrypt opens the
 * values the application sealed with it, and CALL domi.rekey() rewrites
 * them under a fresh active key.  It is never used to encrypt.
 */
Datum
domi_import_tenant_key(PG_FUNCTION_ARGS)
{
	const pg_uuid_t *tenant = tenant_argument(fcinfo, 0);
	const unsigned char *key;
	OwnerSpi	spi;
	TenantSummary summary;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(DOMI_ERRCODE_NULL_ARGUMENT),
				 errmsg("key must not be null")));
	key = domi_key_from_bytea(PG_GETARG_BYTEA_PP(1));
	summary = keyring_begin_adding_version(&spi, tenant);
	keyring_check_no_foreign_root();
	keyring_insert_key(tenant, summary.max_version + 1, KEY_DECRYPT_ONLY, key);
	keyring_owner_spi_finish(&spi);
	keyring_cache_flush();
	PG_RETURN_INT32(summary.max_version + 1);
}

/*
 * domi.rewrap_tenant_keys() returns int: keys re-wrapped
 *
 * After a root key rotation: every key wrapped by the previous root key is
 * wrapped again by the current one.  Stored ciphertext is not touched (the
 * tenant keys do not change).  A key under neither root key is an error,
 * and then nothing changes.
 */
Datum
domi_rewrap_tenant_keys(PG_FUNCTION_ARGS)
{
	OwnerSpi	spi;
	int			nrows;
	int			i;
	int32		rewrapped = 0;
	unsigned char *key;
	MemoryContext rows_context = CurrentMemoryContext;
	pg_uuid_t  *tenants;
	int32	   *versions;
	bytea	  **wrapped;
	bytea	  **fingerprints;

	domi_require_root_key();
	keyring_owner_spi_connect(&spi);
	keyring_owner_spi_run("SELECT tenant, version, wrapped, root_fingerprint FROM domi.tenant_keys"
						  " WHERE wrapped IS NOT NULL ORDER BY tenant, version FOR UPDATE",
						  0, NULL, NULL, NULL, SPI_OK_SELECT);
	nrows = (int) SPI_processed;
	tenants = MemoryContextAlloc(rows_context, sizeof(pg_uuid_t) * (nrows + 1));
	versions = MemoryContextAlloc(rows_context, sizeof(int32) * (nrows + 1));
	wrapped = MemoryContextAlloc(rows_context, sizeof(bytea *) * (nrows + 1));
	fingerprints = MemoryContextAlloc(rows_context, sizeof(bytea *) * (nrows + 1));
	for (i = 0; i < nrows; i++)
	{
		HeapTuple	tuple = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		tenants[i] = *DatumGetUUIDP(SPI_getbinval(tuple, desc, 1, &isnull));
		versions[i] = DatumGetInt32(SPI_getbinval(tuple, desc, 2, &isnull));
		wrapped[i] = keyring_copy_bytea_column(tuple, desc, 3, rows_context);
		fingerprints[i] = keyring_copy_bytea_column(tuple, desc, 4, rows_context);
	}

	keyring_cache_prepare();
	key = keyring_arena_slot(0);
	for (i = 0; i < nrows; i++)
	{
		KeyRow		row = {versions[i], KEY_ACTIVE, wrapped[i], fingerprints[i]};

		/* A row without a fingerprint (its CHECK dropped) errors in keyring_unwrap_row. */
		if (fingerprints[i] != NULL &&
			domi_root_match((const unsigned char *) VARDATA_ANY(fingerprints[i]),
							VARSIZE_ANY_EXHDR(fingerprints[i])) == DOMI_ROOT_CURRENT)
			continue;
		PG_TRY();
		{
			Oid			types[4] = {UUIDOID, INT4OID, BYTEAOID, BYTEAOID};
			Datum		values[4];

			keyring_unwrap_row(key, &row, &tenants[i]);
			values[0] = UUIDPGetDatum(&tenants[i]);
			values[1] = Int32GetDatum(versions[i]);
			values[2] = PointerGetDatum(keyring_wrap_to_bytea(key, &tenants[i], versions[i]));
			values[3] = PointerGetDatum(keyring_fingerprint_to_bytea(domi_root_fingerprint(false)));
			/* The same key, so the same state and stored values. */
			keyring_owner_spi_run("UPDATE domi.tenant_keys SET wrapped = $3, root_fingerprint = $4"
								  " WHERE tenant = $1 AND version = $2",
								  4, types, values, NULL, SPI_OK_UPDATE);
		}
		PG_FINALLY();
		{
			sodium_memzero(key, DOMI_KEY_BYTES);
		}
		PG_END_TRY();
		rewrapped++;
	}
	keyring_owner_spi_finish(&spi);
	keyring_cache_flush();
	PG_RETURN_INT32(rewrapped);
}

/*
 * domi._root_key_info() returns (loaded, fingerprint, problem,
 * previous_loaded, previous_fingerprint, previous_problem), for
 * domi.keyring_status(): fingerprints and reasons, never key bytes.
 */
Datum
domi_root_key_info(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Datum		values[6];
	bool		nulls[6] = {false};
	int			i;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	for (i = 0; i < 2; i++)
	{
		const unsigned char *fingerprint = domi_root_fingerprint(i == 1);
		const char *problem = domi_root_key_problem(i == 1);

		values[i * 3] = BoolGetDatum(fingerprint != NULL);
		if (fingerprint != NULL)
			values[i * 3 + 1] = PointerGetDatum(keyring_fingerprint_to_bytea(fingerprint));
		else
			nulls[i * 3 + 1] = true;
		if (problem != NULL)
			values[i * 3 + 2] = CStringGetTextDatum(problem);
		else
			nulls[i * 3 + 2] = true;
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}
