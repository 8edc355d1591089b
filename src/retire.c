/*
 * retire.c
 *		What makes retiring a key version safe: no transaction that may still
 *		commit a value sealed under it, and no value under it in the columns
 *		that the keyring knows hold its values.
 *
 * A value is sealed under the key that was active when domi.encrypt ran,
 * and it is stored when its transaction commits, which may be long after a
 * rotation.  A re-key or a retirement that looked only at committed rows
 * would miss it: CALL domi.rekey() says "done", the old version is retired,
 * and the late commit stores a value that never opens again.  So both first
 * wait until every transaction that was open when they started has ended,
 * as CREATE INDEX CONCURRENTLY waits for older snapshots: any transaction
 * that starts later sees the rotation (the keyring reads invalidations at
 * every call) and seals under the new key.  Unlike CREATE INDEX
 * CONCURRENTLY, a transaction without a snapshot is waited for too: a READ
 * COMMITTED transaction idle between two statements has none, yet holds
 * the rows it inserted.
 *
 * Then the retirement looks at every registered column (domi.rekey
 * registers the column it re-keys; domi.register_encrypted_column names
 * others) and refuses while one of the tenant's values there opens under
 * the version.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/sinvaladt.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "domi.h"
#include "keyring.h"

PG_FUNCTION_INFO_V1(domi_wait_for_older_transactions);
PG_FUNCTION_INFO_V1(domi_register_encrypted_column);
PG_FUNCTION_INFO_V1(domi_unregister_encrypted_column);

/*
 * A transaction waiting for older ones holds this advisory lock (shared)
 * until it ends.  Two such waiters would otherwise wait for each other
 * (a deadlock): each skips the other, which seals nothing while it waits.
 * The fourth field differs from the keyring's tenant locks (100) and from
 * SQL's advisory locks (1 and 2).
 */
#define WAITER_LOCK_FIELD4	101

/* Rows fetched per round when a column is checked. */
#define CHECK_FETCH_ROWS	1000

static bool
vxid_in(VirtualTransactionId vxid, const VirtualTransactionId *list)
{
	for (; list != NULL && VirtualTransactionIdIsValid(*list); list++)
		if (VirtualTransactionIdEquals(vxid, *list))
			return true;
	return false;
}

/*
 * Wait until every transaction of this database that is open now, other
 * than this one and other waiters, has ended.  "what" names the caller in
 * the NOTICE.  Interruptible, and subject to lock_timeout like any lock
 * wait.
 */
void
domi_keyring_wait_for_older(const char *what)
{
	LOCKTAG		marker;
	VirtualTransactionId *older;
	VirtualTransactionId *waiters;
	int			nolder;
	int			i;

	if (RecoveryInProgress())
		return;					/* nothing can seal or retire on a standby */

	SET_LOCKTAG_ADVISORY(marker, MyDatabaseId, 0, 0, WAITER_LOCK_FIELD4);
	(void) LockAcquire(&marker, ShareLock, false, false);

	/* The marker first: a waiter that comes later sees us, and skips us. */
	older = GetCurrentVirtualXIDs(InvalidTransactionId, false, false,
								  PROC_IS_AUTOVACUUM | PROC_IN_VACUUM, &nolder);
	waiters = GetLockConflicts(&marker, ExclusiveLock, NULL);

	for (i = 0; i < nolder; i++)
	{
		PGPROC	   *proc;

		if (vxid_in(older[i], waiters))
			continue;
		if (VirtualXactLock(older[i], false))
			continue;			/* it has ended already */
		proc = older[i].backendId != InvalidBackendId ? BackendIdGetProc(older[i].backendId) : NULL;
		ereport(NOTICE,
				(errmsg("%s waits for the transaction of process %d, open since before it started",
						what, proc != NULL ? proc->pid : 0),
				 errdetail("That transaction may have encrypted values under a key version that is no longer active.")));
		(void) VirtualXactLock(older[i], true);
	}
}

/* domi._wait_for_older_transactions() returns void: the first step of domi.rekey */
Datum
domi_wait_for_older_transactions(PG_FUNCTION_ARGS)
{
	domi_keyring_wait_for_older("rekey");
	PG_RETURN_VOID();
}

/* ---------------------------------------------------------------------
 * The registry of encrypted columns, domi.encrypted_columns
 * ---------------------------------------------------------------------
 */

static Oid
registry_owner(void)
{
	Oid			owner = domi_table_owner("encrypted_columns", NULL);

	if (!OidIsValid(owner))
		ereport(ERROR,
				(errcode(DOMI_ERRCODE_KEYRING_STATE),
				 errmsg("the registry domi.encrypted_columns does not exist"),
				 errhint("Run ALTER EXTENSION domi UPDATE.")));
	return owner;
}

/*
 * The table argument: an ordinary or partitioned table on which the caller
 * may UPDATE (as domi.rekey needs).  Registering costs the retirements a
 * scan, so not everyone may add to it.
 */
static Oid
checked_table(FunctionCallInfo fcinfo)
{
	Oid			relid;
	char		relkind;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(DOMI_ERRCODE_NULL_ARGUMENT),
				 errmsg("table and column must not be null")));
	relid = PG_GETARG_OID(0);
	relkind = get_rel_relkind(relid);
	if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a table", get_rel_name(relid) ? get_rel_name(relid) : "?")));
	if (pg_class_aclcheck(relid, GetUserId(), ACL_UPDATE) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_TABLE, get_rel_name(relid));
	return relid;
}

static void
check_column_type(Oid relid, const char *column, Oid type, const char *type_name,
				  const char *hint)
{
	AttrNumber	attnum = get_attnum(relid, column);

	if (attnum <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation \"%s\" does not exist",
						column, get_rel_name(relid)),
				 hint ? errhint("%s", hint) : 0));
	if (getBaseType(get_atttype(relid, attnum)) != type)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("column \"%s\" of relation \"%s\" is not of type %s",
						column, get_rel_name(relid), type_name),
				 hint ? errhint("%s", hint) : 0));
}

/*
 * domi.register_encrypted_column(tbl regclass, col name, tenant_col name)
 * returns void: retirements check this column from now on.
 */
Datum
domi_register_encrypted_column(PG_FUNCTION_ARGS)
{
	Oid			relid = checked_table(fcinfo);
	Name		col = PG_GETARG_NAME(1);
	Name		tenant_col;
	DomiOwnerSpi spi;
	Oid			types[3] = {OIDOID, NAMEOID, NAMEOID};
	Datum		values[3];

	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(DOMI_ERRCODE_NULL_ARGUMENT),
				 errmsg("tenant column must not be null")));
	tenant_col = PG_GETARG_NAME(2);
	check_column_type(relid, NameStr(*col), BYTEAOID, "bytea", NULL);
	check_column_type(relid, NameStr(*tenant_col), UUIDOID, "uuid", NULL);
	values[0] = ObjectIdGetDatum(relid);
	values[1] = NameGetDatum(col);
	values[2] = NameGetDatum(tenant_col);

	domi_spi_connect_as(registry_owner(), &spi);
	if (SPI_execute_with_args("INSERT INTO domi.encrypted_columns AS e (tbl, col, tenant_col)"
							  " VALUES ($1::pg_catalog.oid::pg_catalog.regclass, $2, $3)"
							  " ON CONFLICT (tbl, col) DO UPDATE SET tenant_col = excluded.tenant_col"
							  " WHERE e.tenant_col IS DISTINCT FROM excluded.tenant_col",
							  3, types, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not register the encrypted column");
	domi_spi_finish_as(&spi);
	PG_RETURN_VOID();
}

/* domi.unregister_encrypted_column(tbl regclass, col name) returns boolean */
Datum
domi_unregister_encrypted_column(PG_FUNCTION_ARGS)
{
	Oid			relid = checked_table(fcinfo);
	DomiOwnerSpi spi;
	Oid			types[2] = {OIDOID, NAMEOID};
	Datum		values[2] = {ObjectIdGetDatum(relid), PG_GETARG_DATUM(1)};
	bool		removed;

	domi_spi_connect_as(registry_owner(), &spi);
	if (SPI_execute_with_args("DELETE FROM domi.encrypted_columns"
							  " WHERE tbl = $1::pg_catalog.oid::pg_catalog.regclass AND col = $2",
							  2, types, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not unregister the encrypted column");
	removed = SPI_processed > 0;
	domi_spi_finish_as(&spi);
	PG_RETURN_BOOL(removed);
}

typedef struct RegisteredColumn
{
	Oid			relid;
	char	   *col;
	char	   *tenant_col;
} RegisteredColumn;

/*
 * The registered columns whose table still exists, read as the registry's
 * owner.  A column dropped or renamed since is reported when it is checked.
 */
List *
domi_registered_columns(void)
{
	DomiOwnerSpi spi;
	MemoryContext caller = CurrentMemoryContext;
	List	   *columns = NIL;
	uint64		i;

	domi_spi_connect_as(registry_owner(), &spi);
	if (SPI_execute("SELECT e.tbl::pg_catalog.oid, e.col::pg_catalog.text, e.tenant_col::pg_catalog.text"
					" FROM domi.encrypted_columns e JOIN pg_catalog.pg_class c ON c.oid = e.tbl"
					" ORDER BY 1, 2", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the encrypted columns");
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tuple = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		MemoryContext old = MemoryContextSwitchTo(caller);
		RegisteredColumn *c = palloc(sizeof(RegisteredColumn));

		c->relid = DatumGetObjectId(SPI_getbinval(tuple, desc, 1, &isnull));
		c->col = SPI_getvalue(tuple, desc, 2);
		c->tenant_col = SPI_getvalue(tuple, desc, 3);
		columns = lappend(columns, c);
		MemoryContextSwitchTo(old);
	}
	domi_spi_finish_as(&spi);
	return columns;
}

/*
 * Does any of the tenant's values in the column open under key?  Read as
 * the caller (who retires, and needs SELECT), with a snapshot taken now
 * (after the wait: also in REPEATABLE READ, a value committed since the
 * transaction's snapshot counts), and with row_security off: a policy that
 * hid rows would make the check pass wrongly, so it must see every row or
 * fail.
 */
static bool
column_holds_version(const RegisteredColumn *c, const pg_uuid_t *tenant,
					 const unsigned char *key, int32 version)
{
	char	   *table = quote_qualified_identifier(get_namespace_name(get_rel_namespace(c->relid)),
												   get_rel_name(c->relid));
	char	   *sql;
	SPIPlanPtr	plan;
	Portal		portal;
	Oid			types[1] = {UUIDOID};
	Datum		values[1] = {UUIDPGetDatum(tenant)};
	int			nestlevel;
	bool		found = false;
	char	   *hint;

	hint = psprintf("The column is registered for the checks of retirements; if it no longer holds encrypted values, call domi.unregister_encrypted_column('%s', '%s').",
					table, c->col);
	check_column_type(c->relid, c->col, BYTEAOID, "bytea", hint);
	check_column_type(c->relid, c->tenant_col, UUIDOID, "uuid", hint);
	if (check_enable_rls(c->relid, InvalidOid, true) == RLS_ENABLED)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cannot check %s.%s for values under key version %d: row-level security applies to this role",
						table, quote_identifier(c->col), version),
				 errdetail("Before a version is retired, every registered column is checked for values under it, and this role would not see them all."),
				 errhint("Retire as a role with BYPASSRLS or as the table's owner (without FORCE ROW LEVEL SECURITY).")));

	sql = psprintf("SELECT %s FROM %s WHERE %s OPERATOR(pg_catalog.=) $1 AND %s IS NOT NULL",
				   quote_identifier(c->col), table, quote_identifier(c->tenant_col),
				   quote_identifier(c->col));
	nestlevel = NewGUCNestLevel();
	(void) set_config_option("row_security", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	plan = SPI_prepare(sql, 1, types);
	if (plan == NULL)
		elog(ERROR, "could not prepare the check of %s: %s", table,
			 SPI_result_code_string(SPI_result));
	PushActiveSnapshot(GetLatestSnapshot());
	portal = SPI_cursor_open(NULL, plan, values, NULL, true);
	while (!found)
	{
		uint64		i;

		SPI_cursor_fetch(portal, true, CHECK_FETCH_ROWS);
		if (SPI_processed == 0)
			break;
		for (i = 0; i < SPI_processed && !found; i++)
		{
			bool		isnull;
			bytea	   *box = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[i],
															SPI_tuptable->tupdesc, 1, &isnull));
			Size		len = VARSIZE_ANY_EXHDR(box);
			unsigned char *scratch;

			if (isnull || len < DOMI_BOX_OVERHEAD)
				continue;
			scratch = palloc(len - DOMI_BOX_OVERHEAD + 1);
			found = domi_open_raw(scratch, (const unsigned char *) VARDATA_ANY(box), len, key);
			sodium_memzero(scratch, len - DOMI_BOX_OVERHEAD);
			pfree(scratch);
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	PopActiveSnapshot();
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed");
	AtEOXact_GUC(true, nestlevel);
	if (found)
		ereport(ERROR,
				(errcode(DOMI_ERRCODE_KEYRING_STATE),
				 errmsg("cannot retire key version %d of tenant %s: %s.%s still holds values under it",
						version, domi_uuid_text(tenant), table, quote_identifier(c->col)),
				 errdetail("Values under a retired version no longer open."),
				 errhint("Re-key the column first with CALL domi.rekey('%s', '%s', '%s').",
						 table, c->col, c->tenant_col)));
	return found;
}

/*
 * Refuse (55000) while a registered column holds a value of the tenant that
 * opens under key, its version "version".
 */
void
domi_check_no_values_under(List *columns, const pg_uuid_t *tenant,
						   const unsigned char *key, int32 version)
{
	ListCell   *lc;

	foreach(lc, columns)
		(void) column_holds_version((RegisteredColumn *) lfirst(lc), tenant, key, version);
}
