/*
 * keyring.c
 *		Per-tenant data keys: stored wrapped in domi.tenant_keys, created on
 *		first use, rotated, retired and destroyed; cached unwrapped in each
 *		backend.  The SQL functions that encrypt and decrypt with them are in
 *		keyring_sql.c.
 *
 * The table is readable by its owner (the extension owner) only.  The SQL
 * functions are C functions that application roles are granted; they read
 * and write the table as its owner, switching user only around their own
 * fixed, parameterized queries (with search_path pinned), the way a
 * SECURITY DEFINER function would.  They are not declared SECURITY DEFINER
 * because that costs a user and setting switch on every call, and
 * domi.encrypt must cost no more than domi.secretbox on a cache hit.
 *
 * Cache coherence: a statement trigger on domi.tenant_keys sends a relcache
 * invalidation of the table with every change; every backend's relcache
 * callback wipes its cache when the table is invalidated.  Invalidations
 * are transactional (sent at commit, replayed locally at abort), and
 * read at every keyring call (not only when a statement takes a lock it
 * does not hold yet, which inside a transaction may be never), so a
 * rotation, retirement or destruction committed in one session is seen by
 * the next call of every other, even inside an open transaction.  The
 * keyring reads the table with the latest snapshot, so what it caches is
 * never older than the invalidations it has processed; only in a parallel
 * query, which must use the query's snapshot, is the cache wiped at
 * transaction end instead.
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

PG_FUNCTION_INFO_V1(domi_keyring_changed);

/* Unwrapped keys in one guarded arena; slot 0 is scratch for one-off keys. */
#define KEY_ARENA_SLOTS		4096

/*
 * Tenants remembered at most, keyed or not.  A tenant without keys takes no
 * arena slot, so without a bound a caller naming ever new tenants (each
 * call an error) would grow the backend's memory without end.
 */
#define KEY_CACHE_TENANTS	4096

/*
 * Tenant key creation and rotation take this transaction-level advisory
 * lock per tenant.  SQL's advisory lock functions set the fourth field to 1
 * or 2, so this value never collides with an application's locks.
 */
#define KEYRING_LOCK_FIELD4	100

static const char *const key_state_names[] = {"active", "decrypt_only", "retired", "destroyed"};

/* A tenant's decryptable keys in the cache: [0] is the active one if any. */
typedef struct TenantKeyring
{
	pg_uuid_t	tenant;			/* hash key */
	bool		has_rows;		/* the tenant has key rows at all */
	bool		destroyed;		/* ... and they were destroyed */
	bool		has_active;
	int			nkeys;
	int32	   *versions;
	int		   *slots;			/* in key_arena */
} TenantKeyring;

static MemoryContext cache_context = NULL;
static HTAB *cache = NULL;
static TenantKeyring *last_used = NULL;
static unsigned char *key_arena = NULL;
static int	arena_used = 1;
static bool flush_at_transaction_end = false;
static Oid	tenant_keys_relid = InvalidOid;

/* ---------------------------------------------------------------------
 * The cache
 * ---------------------------------------------------------------------
 */

void
keyring_cache_flush(void)
{
	if (key_arena != NULL)
		sodium_memzero(key_arena, (size_t) KEY_ARENA_SLOTS * DOMI_KEY_BYTES);
	arena_used = 1;
	last_used = NULL;
	cache = NULL;
	if (cache_context != NULL)
		MemoryContextReset(cache_context);
	flush_at_transaction_end = false;
}

static void
keyring_relcache_callback(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == tenant_keys_relid)
		keyring_cache_flush();
}

static void
keyring_xact_callback(XactEvent event, void *arg)
{
	if (flush_at_transaction_end &&
		(event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		 event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT ||
		 event == XACT_EVENT_PREPARE))
		keyring_cache_flush();
}

unsigned char *
keyring_arena_slot(int slot)
{
	return key_arena + (size_t) slot * DOMI_KEY_BYTES;
}

void
keyring_cache_prepare(void)
{
	if (key_arena == NULL)
	{
		key_arena = sodium_malloc((size_t) KEY_ARENA_SLOTS * DOMI_KEY_BYTES);
		if (key_arena == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("could not allocate guarded memory for tenant keys")));
		sodium_memzero(key_arena, (size_t) KEY_ARENA_SLOTS * DOMI_KEY_BYTES);
	}
	if (cache_context == NULL)
		cache_context = AllocSetContextCreate(TopMemoryContext, "domi keyring cache",
											  ALLOCSET_SMALL_SIZES);
	if (cache == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(pg_uuid_t);
		ctl.entrysize = sizeof(TenantKeyring);
		ctl.hcxt = cache_context;
		cache = hash_create("domi keyring cache", 64, &ctl,
							HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
}

/* ---------------------------------------------------------------------
 * Reading and writing domi.tenant_keys as its owner
 * ---------------------------------------------------------------------
 */

/* The owner of domi.tenant_keys; remembers the table's oid for the callback. */
static Oid
tenant_keys_owner(void)
{
	Oid			relid;
	Oid			owner = domi_table_owner("tenant_keys", &relid);

	if (!OidIsValid(owner))
		ereport(ERROR,
				(errcode(DOMI_ERRCODE_KEYRING_STATE),
				 errmsg("the keyring table domi.tenant_keys does not exist"),
				 errhint("Run ALTER EXTENSION domi UPDATE.")));
	tenant_keys_relid = relid;
	return owner;
}

/*
 * Connect to SPI and act as the table's owner with search_path pinned, for
 * our own queries only.  An error unwinds both with the (sub)transaction.
 */
void
keyring_owner_spi_connect(OwnerSpi *spi)
{
	Oid			owner = tenant_keys_owner();

	spi->caller_context = CurrentMemoryContext;
	domi_spi_connect_as(owner, &spi->as_owner);
}

void
keyring_owner_spi_finish(OwnerSpi *spi)
{
	domi_spi_finish_as(&spi->as_owner);
}

/*
 * Run one of our queries.  Outside parallel mode each reads the latest
 * committed state (and this transaction's own changes), whatever the
 * isolation level: the keyring is server state, like the catalogs, and a
 * REPEATABLE READ snapshot would hide keys committed since it was taken
 * (a stale cache, and a second "version 1" for a tenant another session
 * just gave its first key).  A parallel worker may take no new snapshot;
 * it reads with the query's.
 */
int
keyring_owner_spi_run(const char *sql, int nargs, Oid *types, Datum *values,
					  const char *nulls, int expected)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, types);
	int			rc;

	if (plan == NULL)
		elog(ERROR, "keyring query could not be prepared: %s",
			 SPI_result_code_string(SPI_result));
	if (IsInParallelMode())
		rc = SPI_execute_plan(plan, values, nulls, true, 0);
	else
		rc = SPI_execute_snapshot(plan, values, nulls, GetLatestSnapshot(),
								  InvalidSnapshot, false, true, 0);
	if (rc != expected)
		elog(ERROR, "keyring query failed: %s", SPI_result_code_string(rc));
	SPI_freeplan(plan);
	return rc;
}

KeyState
keyring_parse_key_state(const char *name)
{
	int			i;

	if (name == NULL)
		ereport(ERROR,
				(errcode(DOMI_ERRCODE_BAD_WRAPPED),
				 errmsg("a tenant key in domi.tenant_keys has no state")));
	for (i = 0; i < lengthof(key_state_names); i++)
		if (strcmp(name, key_state_names[i]) == 0)
			return (KeyState) i;
	elog(ERROR, "unrecognized tenant key state \"%s\"", name);
	return KEY_DESTROYED;		/* keep the compiler quiet */
}

bytea *
keyring_copy_bytea_column(HeapTuple tuple, TupleDesc desc, int column, MemoryContext context)
{
	bool		isnull;
	Datum		value = SPI_getbinval(tuple, desc, column, &isnull);
	MemoryContext old;
	bytea	   *copy;

	if (isnull)
		return NULL;
	old = MemoryContextSwitchTo(context);
	copy = DatumGetByteaPCopy(value);
	MemoryContextSwitchTo(old);
	return copy;
}

/*
 * The tenant's key rows, newest first, copied into the caller's memory;
 * retired ones only when asked (they open nothing, so they are read only
 * to explain why a value no longer opens).
 */
static KeyRow *
fetch_key_rows(const pg_uuid_t *tenant, bool retired_only, int *nrows)
{
	OwnerSpi	spi;
	Oid			types[2] = {UUIDOID, BOOLOID};
	Datum		values[2] = {UUIDPGetDatum(tenant), BoolGetDatum(retired_only)};
	KeyRow	   *rows;
	uint64		i;

	keyring_owner_spi_connect(&spi);
	/* On a Citus worker this runs inside a query on a shard. */
	domi_citus_allow_nested_read();
	keyring_owner_spi_run("SELECT version, state, wrapped, root_fingerprint FROM domi.tenant_keys"
						  " WHERE tenant = $1 AND (NOT $2 OR state = 'retired')"
						  " ORDER BY version DESC",
						  2, types, values, NULL, SPI_OK_SELECT);
	rows = MemoryContextAllocZero(spi.caller_context, sizeof(KeyRow) * (SPI_processed + 1));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tuple = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		rows[i].version = DatumGetInt32(SPI_getbinval(tuple, desc, 1, &isnull));
		rows[i].state = keyring_parse_key_state(SPI_getvalue(tuple, desc, 2));
		rows[i].wrapped = keyring_copy_bytea_column(tuple, desc, 3, spi.caller_context);
		rows[i].fingerprint = keyring_copy_bytea_column(tuple, desc, 4, spi.caller_context);
	}
	*nrows = (int) SPI_processed;
	keyring_owner_spi_finish(&spi);
	return rows;
}

/*
 * Unwrap one stored key into key (guarded memory): a root key the server
 * does not have, or a wrapped key that does not authenticate for its
 * tenant and version, is an error that names which.
 */
void
keyring_unwrap_row(unsigned char *key, const KeyRow *row, const pg_uuid_t *tenant)
{
	const unsigned char *fingerprint;
	Size		fingerprint_len;
	DomiRootMatch root;

	if (row->wrapped == NULL)
		ereport(ERROR,
				(errcode(DOMI_ERRCODE_BAD_WRAPPED),
				 errmsg("key version %d of tenant %s has no wrapped key",
						row->version, domi_uuid_text(tenant))));
	if (row->fingerprint == NULL)
		ereport(ERROR,
				(errcode(DOMI_ERRCODE_BAD_WRAPPED),
				 errmsg("key version %d of tenant %s has no root key fingerprint",
						row->version, domi_uuid_text(tenant))));
	fingerprint = (const unsigned char *) VARDATA_ANY(row->fingerprint);
	fingerprint_len = VARSIZE_ANY_EXHDR(row->fingerprint);
	root = domi_root_match(fingerprint, fingerprint_len);
	if (root == DOMI_ROOT_OTHER)
		domi_report_root_mismatch(tenant, row->version, fingerprint, fingerprint_len);
	if (!domi_unwrap_tenant_key(key, (const unsigned char *) VARDATA_ANY(row->wrapped),
								VARSIZE_ANY_EXHDR(row->wrapped), root, tenant, row->version))
	{
		sodium_memzero(key, DOMI_KEY_BYTES);
		ereport(ERROR,
				(errcode(DOMI_ERRCODE_BAD_WRAPPED),
				 errmsg("key version %d of tenant %s cannot be unwrapped",
						row->version, domi_uuid_text(tenant)),
				 errdetail("The wrapped key is not authentic for this tenant and version under the root key that wrapped it: it was altered or copied from another row.")));
	}
}

static bool
is_decryptable(KeyState state)
{
	return state == KEY_ACTIVE || state == KEY_DECRYPT_ONLY;
}

/* Unwrap a stored key into the next arena slot, as the entry's next key. */
static void
cache_add_key(TenantKeyring *kr, const KeyRow *row, const pg_uuid_t *tenant)
{
	int			slot = arena_used++;

	keyring_unwrap_row(keyring_arena_slot(slot), row, tenant);
	kr->versions[kr->nkeys] = row->version;
	kr->slots[kr->nkeys++] = slot;
	if (row->state == KEY_ACTIVE)
		kr->has_active = true;
}

/* Read a tenant's keys from the table and cache them unwrapped. */
static TenantKeyring *
cache_load(const pg_uuid_t *tenant)
{
	int			nrows;
	KeyRow	   *rows = fetch_key_rows(tenant, false, &nrows);
	int			ndecryptable = 0;
	int			i;
	TenantKeyring *kr;
	bool		found;

	for (i = 0; i < nrows; i++)
		if (is_decryptable(rows[i].state))
			ndecryptable++;
	if (ndecryptable >= KEY_ARENA_SLOTS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("tenant %s has too many key versions that decrypt", domi_uuid_text(tenant)),
				 errhint("Re-key its values and retire old versions.")));

	/* No SPI from here on: an invalidation cannot flush us half-way. */
	keyring_cache_prepare();
	if (arena_used + ndecryptable > KEY_ARENA_SLOTS ||
		hash_get_num_entries(cache) >= KEY_CACHE_TENANTS)
		keyring_cache_flush();
	keyring_cache_prepare();

	kr = hash_search(cache, tenant, HASH_ENTER, &found);
	kr->has_rows = nrows > 0;
	kr->destroyed = nrows > 0 && rows[0].state == KEY_DESTROYED;
	kr->has_active = false;
	kr->nkeys = 0;
	kr->versions = MemoryContextAlloc(cache_context, sizeof(int32) * (ndecryptable + 1));
	kr->slots = MemoryContextAlloc(cache_context, sizeof(int) * (ndecryptable + 1));

	/* The active key first, then the others newest first. */
	PG_TRY();
	{
		for (i = 0; i < nrows; i++)
			if (rows[i].state == KEY_ACTIVE)
				cache_add_key(kr, &rows[i], tenant);
		for (i = 0; i < nrows; i++)
			if (rows[i].state == KEY_DECRYPT_ONLY)
				cache_add_key(kr, &rows[i], tenant);
	}
	PG_CATCH();
	{
		/* A half-built entry must not stay behind. */
		keyring_cache_flush();
		PG_RE_THROW();
	}
	PG_END_TRY();

	if (IsInParallelMode())
		flush_at_transaction_end = true;
	return kr;
}

static TenantKeyring *
cache_lookup(const pg_uuid_t *tenant)
{
	TenantKeyring *kr;

	domi_require_root_key();

	/*
	 * PostgreSQL reads invalidations when a transaction starts and when it
	 * takes a lock it does not hold yet.  Inside a transaction that holds
	 * its locks already, that may be never again: without this, a session
	 * would go on sealing under a rotated key, opening under a retired one
	 * and using a destroyed one until its transaction ends.  When no
	 * message is queued this is a read of one shared flag.
	 */
	AcceptInvalidationMessages();
	if (last_used != NULL && memcmp(&last_used->tenant, tenant, sizeof(pg_uuid_t)) == 0)
		return last_used;
	kr = cache != NULL ? hash_search(cache, tenant, HASH_FIND, NULL) : NULL;
	if (kr == NULL)
		kr = cache_load(tenant);
	last_used = kr;
	return kr;
}

/* ---------------------------------------------------------------------
 * Changing the keyring
 * ---------------------------------------------------------------------
 */

void
keyring_report_destroyed(const pg_uuid_t *tenant)
{
	ereport(ERROR,
			(errcode(DOMI_ERRCODE_KEYRING_STATE),
			 errmsg("the keys of tenant %s have been destroyed", domi_uuid_text(tenant)),
			 errdetail("Its values can never be opened again, and no new key is made for it.")));
}

/* Serialize key creation and rotation for one tenant until transaction end. */
void
keyring_lock_tenant_keys(const pg_uuid_t *tenant)
{
	LOCKTAG		tag;
	uint32		words[3];

	memcpy(words, tenant->data, sizeof(words));
	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, words[0] ^ words[2], words[1], KEYRING_LOCK_FIELD4);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);
}

/* Under the tenant lock: its newest version and what state it is in. */
static TenantSummary
tenant_summary(const pg_uuid_t *tenant)
{
	Oid			types[1] = {UUIDOID};
	Datum		values[1] = {UUIDPGetDatum(tenant)};
	TenantSummary summary;
	bool		isnull;
	HeapTuple	tuple;
	TupleDesc	desc;

	keyring_owner_spi_run("SELECT coalesce(max(version), 0), coalesce(bool_or(state = 'active'), false),"
						  " coalesce(bool_or(state = 'destroyed'), false)"
						  " FROM domi.tenant_keys WHERE tenant = $1",
						  1, types, values, NULL, SPI_OK_SELECT);
	tuple = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	summary.max_version = DatumGetInt32(SPI_getbinval(tuple, desc, 1, &isnull));
	summary.has_active = DatumGetBool(SPI_getbinval(tuple, desc, 2, &isnull));
	summary.destroyed = DatumGetBool(SPI_getbinval(tuple, desc, 3, &isnull));
	return summary;
}

bytea *
keyring_fingerprint_to_bytea(const unsigned char *fingerprint)
{
	bytea	   *value = palloc(VARHDRSZ + DOMI_FINGERPRINT_BYTES);

	SET_VARSIZE(value, VARHDRSZ + DOMI_FINGERPRINT_BYTES);
	memcpy(VARDATA(value), fingerprint, DOMI_FINGERPRINT_BYTES);
	return value;
}

/* key wrapped for tenant and version under the current root key */
bytea *
keyring_wrap_to_bytea(const unsigned char *key, const pg_uuid_t *tenant, int32 version)
{
	bytea	   *wrapped = palloc(VARHDRSZ + DOMI_WRAPPED_KEY_BYTES);

	SET_VARSIZE(wrapped, VARHDRSZ + DOMI_WRAPPED_KEY_BYTES);
	domi_wrap_tenant_key((unsigned char *) VARDATA(wrapped), key, tenant, version);
	return wrapped;
}

/*
 * Refuse to add a key while any stored key was wrapped by a root key the
 * server does not have: that is a server started with the wrong root key,
 * and keys made now would be wrapped by it.  The index on root_fingerprint
 * makes the two ranges around the current fingerprint cheap to scan.
 */
void
keyring_check_no_foreign_root(void)
{
	const unsigned char *current = domi_root_fingerprint(false);
	const unsigned char *previous = domi_root_fingerprint(true);
	Oid			types[2] = {BYTEAOID, BYTEAOID};
	Datum		values[2];
	char		nulls[2] = {' ', previous ? ' ' : 'n'};

	values[0] = PointerGetDatum(keyring_fingerprint_to_bytea(current));
	values[1] = previous ? PointerGetDatum(keyring_fingerprint_to_bytea(previous)) : (Datum) 0;
	keyring_owner_spi_run("SELECT tenant, version, root_fingerprint FROM domi.tenant_keys"
						  " WHERE (root_fingerprint < $1 OR root_fingerprint > $1)"
						  " AND root_fingerprint IS DISTINCT FROM $2 LIMIT 1",
						  2, types, values, nulls, SPI_OK_SELECT);
	if (SPI_processed > 0)
	{
		HeapTuple	tuple = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		pg_uuid_t  *other = DatumGetUUIDP(SPI_getbinval(tuple, desc, 1, &isnull));
		int32		version = DatumGetInt32(SPI_getbinval(tuple, desc, 2, &isnull));
		bytea	   *fingerprint = DatumGetByteaPP(SPI_getbinval(tuple, desc, 3, &isnull));

		domi_report_root_mismatch(other, version,
								  (const unsigned char *) VARDATA_ANY(fingerprint),
								  VARSIZE_ANY_EXHDR(fingerprint));
	}
}

/* Wrap key for tenant and version and insert it in the given state. */
void
keyring_insert_key(const pg_uuid_t *tenant, int32 version, KeyState state,
				   const unsigned char *key)
{
	Oid			types[5] = {UUIDOID, INT4OID, TEXTOID, BYTEAOID, BYTEAOID};
	Datum		values[5];

	values[0] = UUIDPGetDatum(tenant);
	values[1] = Int32GetDatum(version);
	values[2] = CStringGetTextDatum(key_state_names[state]);
	values[3] = PointerGetDatum(keyring_wrap_to_bytea(key, tenant, version));
	values[4] = PointerGetDatum(keyring_fingerprint_to_bytea(domi_root_fingerprint(false)));
	keyring_owner_spi_run("INSERT INTO domi.tenant_keys (tenant, version, state, wrapped, root_fingerprint)"
						  " VALUES ($1, $2, $3, $4, $5)",
						  5, types, values, NULL, SPI_OK_INSERT);
}

/*
 * Start adding a key version for tenant: with the root key, as the table's
 * owner, under the tenant's lock, refusing a destroyed tenant.  Returns what
 * the tenant has now.
 */
TenantSummary
keyring_begin_adding_version(OwnerSpi *spi, const pg_uuid_t *tenant)
{
	TenantSummary summary;

	domi_require_root_key();
	keyring_owner_spi_connect(spi);
	keyring_lock_tenant_keys(tenant);
	summary = tenant_summary(tenant);
	if (summary.destroyed)
		keyring_report_destroyed(tenant);
	/* A tenant's first key: only for a tenant that exists, by a role allowed to. */
	if (summary.max_version == 0)
		domi_check_first_key(tenant, spi->as_owner.saved_userid);
	return summary;
}

/*
 * Make a fresh random key the tenant's active version, demoting the one
 * before to decrypt_only.  With only_if_none, do nothing when another
 * session made an active key first (first use).  Returns the active
 * version.
 */
int32
keyring_add_active_key(const pg_uuid_t *tenant, bool only_if_none)
{
	OwnerSpi	spi;
	TenantSummary summary;
	unsigned char *key;
	Oid			types[1] = {UUIDOID};
	Datum		values[1] = {UUIDPGetDatum(tenant)};

	summary = keyring_begin_adding_version(&spi, tenant);
	if (only_if_none && summary.has_active)
	{
		keyring_owner_spi_finish(&spi);
		keyring_cache_flush();
		return summary.max_version;
	}
	keyring_check_no_foreign_root();
	if (summary.has_active)
		keyring_owner_spi_run("UPDATE domi.tenant_keys SET state = 'decrypt_only', changed_at = now()"
							  " WHERE tenant = $1 AND state = 'active'",
							  1, types, values, NULL, SPI_OK_UPDATE);

	keyring_cache_prepare();
	key = keyring_arena_slot(0);
	domi_random_bytes(key, DOMI_KEY_BYTES);
	PG_TRY();
	{
		keyring_insert_key(tenant, summary.max_version + 1, KEY_ACTIVE, key);
	}
	PG_FINALLY();
	{
		sodium_memzero(key, DOMI_KEY_BYTES);
	}
	PG_END_TRY();
	keyring_owner_spi_finish(&spi);
	/* Our own invalidation arrives at the next command; do not wait for it. */
	keyring_cache_flush();
	return summary.max_version + 1;
}

/* The tenant's active key, made on first use. */
const unsigned char *
domi_keyring_active_key(const pg_uuid_t *tenant)
{
	TenantKeyring *kr = cache_lookup(tenant);

	if (kr->destroyed)
		keyring_report_destroyed(tenant);
	if (!kr->has_active)
	{
		(void) keyring_add_active_key(tenant, true);
		kr = cache_lookup(tenant);
		if (!kr->has_active)
			elog(ERROR, "tenant key was created but is not visible");
	}
	return keyring_arena_slot(kr->slots[0]);
}

/* Were the tenant's keys destroyed (crypto-shredded)? */
bool
domi_keyring_destroyed(const pg_uuid_t *tenant)
{
	return cache_lookup(tenant)->destroyed;
}

/* ---------------------------------------------------------------------
 * Opening a box
 * ---------------------------------------------------------------------
 */

/*
 * No decryptable key opened the box: say whether a retired version would
 * have (the cause is then known), else that nothing of this tenant does.
 */
static void
report_unopenable(const char *box, Size boxlen, const pg_uuid_t *tenant)
{
	int			nrows;
	KeyRow	   *rows = fetch_key_rows(tenant, true, &nrows);
	unsigned char *key;
	unsigned char *scratch = palloc(boxlen - DOMI_BOX_OVERHEAD + 1);
	int			i;

	keyring_cache_prepare();
	key = keyring_arena_slot(0);
	for (i = 0; i < nrows; i++)
	{
		bool		opens;

		keyring_unwrap_row(key, &rows[i], tenant);
		opens = domi_open_raw(scratch, (const unsigned char *) box, boxlen, key);
		sodium_memzero(key, DOMI_KEY_BYTES);
		if (opens)
		{
			sodium_memzero(scratch, boxlen - DOMI_BOX_OVERHEAD);
			ereport(ERROR,
					(errcode(DOMI_ERRCODE_KEYRING_STATE),
					 errmsg("encrypted value is under a retired key"),
					 errdetail("It was sealed under key version %d of tenant %s, which was retired.",
							   rows[i].version, domi_uuid_text(tenant)),
					 errhint("Values under a retired version no longer open; re-key a column with CALL domi.rekey() before retiring the versions it uses.")));
		}
	}
	ereport(ERROR,
			(errcode(DOMI_ERRCODE_AUTH_FAILED),
			 errmsg("encrypted value failed authentication"),
			 errdetail("No key of tenant %s opens it: it was sealed for another tenant, or it was altered or truncated.",
					   domi_uuid_text(tenant))));
}

/*
 * The plaintext of box under the tenant's keys: the active one first, then
 * the other decryptable versions newest first (a box has no version
 * header).  *under_active tells whether the active key opened it.
 */
bytea *
domi_keyring_open(const char *box, Size boxlen, const pg_uuid_t *tenant,
				  bool *under_active)
{
	TenantKeyring *kr = cache_lookup(tenant);
	bytea	   *plain;
	int			i;

	if (kr->destroyed)
		keyring_report_destroyed(tenant);
	if (!kr->has_rows)
	{
		/*
		 * A box carries neither tenant nor version (nonce || MAC ||
		 * ciphertext), so which tenant it belongs to cannot be told; most
		 * often it is another tenant's value, read under the wrong tenant.
		 */
		char	   *name = domi_uuid_text(tenant);

		ereport(ERROR,
				(errcode(DOMI_ERRCODE_UNKNOWN_KEY),
				 errmsg("encrypted value is not under any key of tenant %s (it may belong to another tenant)", name),
				 errdetail("Tenant %s has no key: nothing was ever encrypted for it through the keyring.", name),
				 errhint("Check which tenant is set (domi.current_tenant()) or named: a value opens only under the keys of the tenant it was encrypted for.")));
	}
	if (boxlen < DOMI_BOX_OVERHEAD)
	{
		/* domi_open reports a short box before it looks at the key. */
		(void) domi_open(box, boxlen, keyring_arena_slot(kr->nkeys > 0 ? kr->slots[0] : 0));
	}

	plain = palloc(VARHDRSZ + boxlen - DOMI_BOX_OVERHEAD);
	SET_VARSIZE(plain, VARHDRSZ + boxlen - DOMI_BOX_OVERHEAD);
	for (i = 0; i < kr->nkeys; i++)
	{
		if (domi_open_raw((unsigned char *) VARDATA(plain), (const unsigned char *) box,
						  boxlen, keyring_arena_slot(kr->slots[i])))
		{
			*under_active = (i == 0 && kr->has_active);
			return plain;
		}
	}
	pfree(plain);
	report_unopenable(box, boxlen, tenant);
	return NULL;				/* not reached */
}

/*
 * Statement trigger on domi.tenant_keys: every backend's cache must forget
 * the table's contents when this transaction commits (or, here, when it
 * aborts).
 */
Datum
domi_keyring_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("domi._keyring_changed() must be called as a trigger")));
	CacheInvalidateRelcacheByRelid(RelationGetRelid(trigdata->tg_relation));
	/*
	 * With the keyring a Citus reference table, the trigger fires on each
	 * node's shard of it, while the caches listen to domi.tenant_keys.
	 */
	(void) tenant_keys_owner();	/* looks tenant_keys_relid up */
	if (RelationGetRelid(trigdata->tg_relation) != tenant_keys_relid)
		CacheInvalidateRelcacheByRelid(tenant_keys_relid);
	return PointerGetDatum(NULL);
}

/* Called once from _PG_init, in the postmaster when preloaded. */
void
domi_keyring_init(void)
{
	domi_rootkey_init();
	domi_firstkey_init();
	CacheRegisterRelcacheCallback(keyring_relcache_callback, (Datum) 0);
	RegisterXactCallback(keyring_xact_callback, NULL);
}
