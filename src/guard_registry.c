/*
 * guard_registry.c
 *		The registry of protected columns, domi._protected_columns: reading
 *		and writing it as its owner, and the SQL functions that fill it,
 *		domi.protect_column and domi.unprotect_column.
 *
 * See guard.c for what the drop guard protects and why the registry is
 * read as its owner; the shared types are in guard_internal.h.
 */
#include "postgres.h"

#include <ctype.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_class.h"
#include "catalog/pg_depend.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "parser/scansup.h"
#include "storage/lmgr.h"
#include "tcop/cmdtag.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/guc_tables.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "domi.h"
#include "guard_internal.h"

PG_FUNCTION_INFO_V1(domi_protect_column);
PG_FUNCTION_INFO_V1(domi_unprotect_column);

/* ---------------------------------------------------------------------
 * Registry access
 * ---------------------------------------------------------------------
 */

/*
 * Connect to SPI as the registry's owner with search_path pinned.  Returns
 * false, connecting nothing, when there is no registry: the extension is
 * being created or dropped, and nothing can be protected.  Errors need no
 * cleanup: (sub)transaction abort restores the user and the settings.
 */
bool
guard_registry_open(RegistryAccess *access)
{
	Oid			owner = domi_table_owner(REGISTRY_TABLE, NULL);

	if (!OidIsValid(owner))
		return false;
	domi_spi_connect_as(owner, access);
	return true;
}

void
guard_registry_close(RegistryAccess *access)
{
	domi_spi_finish_as(access);
}

/*
 * Every registry statement is planned once per backend and kept: DDL that
 * touches no protected column must stay cheap (bench/guard).  A kept plan is
 * re-planned by the plan cache when the registry is dropped and re-created
 * (DROP and CREATE EXTENSION), and search_path is always the pinned one.
 */
#define MAX_REGISTRY_PLANS 16

typedef struct RegistryPlan
{
	const char *sql;
	SPIPlanPtr	plan;
} RegistryPlan;

static RegistryPlan registry_plans[MAX_REGISTRY_PLANS];
static int	registry_plan_count = 0;

static SPIPlanPtr
registry_plan(const char *sql, int nargs, Oid *types)
{
	SPIPlanPtr	plan;
	int			i;

	for (i = 0; i < registry_plan_count; i++)
	{
		if (registry_plans[i].sql == sql || strcmp(registry_plans[i].sql, sql) == 0)
			return registry_plans[i].plan;
	}
	plan = SPI_prepare(sql, nargs, types);
	if (plan == NULL)
		elog(ERROR, "could not prepare drop guard registry query: %s",
			 SPI_result_code_string(SPI_result));
	if (registry_plan_count == MAX_REGISTRY_PLANS)
		return plan;			/* not kept: freed with the SPI context */
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "could not keep drop guard registry query");
	registry_plans[registry_plan_count].sql = sql;
	registry_plans[registry_plan_count].plan = plan;
	registry_plan_count++;
	return plan;
}

/*
 * Run with the latest snapshot, not the transaction's: under REPEATABLE READ
 * a protection committed after the transaction began must still stop its
 * DROP, as PostgreSQL's own catalog checks see the latest state.
 */
void
guard_registry_execute(const char *sql, int nargs, Oid *types, Datum *values,
					   int expected)
{
	int			ret = SPI_execute_snapshot(registry_plan(sql, nargs, types), values, NULL,
										   GetLatestSnapshot(), InvalidSnapshot,
										   false, true, 0);

	if (ret != expected)
		elog(ERROR, "drop guard registry query failed: %s", SPI_result_code_string(ret));
}

char *
guard_spi_text(int row, int col)
{
	char	   *value = SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col);

	if (value == NULL)
		elog(ERROR, "unexpected NULL in drop guard registry query");
	return value;
}

Datum
guard_spi_datum(int row, int col)
{
	bool		isnull;
	Datum		value = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, &isnull);

	if (isnull)
		elog(ERROR, "unexpected NULL in drop guard registry query");
	return value;
}

/*
 * Hits from the current SPI result, whose first four columns are relid,
 * schema, table and column.  Allocated in the SPI procedure context, which
 * lives until guard_registry_close.
 */
List *
guard_hits_from_result(GuardAction action)
{
	List	   *hits = NIL;
	uint64		row;

	for (row = 0; row < SPI_processed; row++)
	{
		GuardHit   *hit = palloc0(sizeof(GuardHit));

		hit->action = action;
		hit->relid = DatumGetObjectId(guard_spi_datum(row, 1));
		hit->schema = guard_spi_text(row, 2);
		hit->table = guard_spi_text(row, 3);
		hit->column = guard_spi_text(row, 4);
		hits = lappend(hits, hit);
	}
	return hits;
}

/* After an allowed statement, the registry follows what it did. */
void
guard_registry_follow(const GuardHit *hit)
{
	Oid			types[4] = {OIDOID, NAMEOID, OIDOID, INT4OID};
	Datum		values[4];

	values[0] = ObjectIdGetDatum(hit->relid);
	values[1] = DirectFunctionCall1(namein, CStringGetDatum(hit->column));
	switch (hit->action)
	{
		case GUARD_DROP:
		case GUARD_VANISHED:
			guard_registry_execute("DELETE FROM domi._protected_columns WHERE tbl = $1 AND col = $2",
								   2, types, values, SPI_OK_DELETE);
			break;
		case GUARD_REWRITE:
		case GUARD_DROP_FIELD:
			/* Same type: nothing to record. */
			break;
		case GUARD_RETYPE:
			values[2] = ObjectIdGetDatum(hit->new_type);
			values[3] = Int32GetDatum(hit->new_typmod);
			guard_registry_execute("UPDATE domi._protected_columns SET typ = $3, typmod = $4 WHERE tbl = $1 AND col = $2",
								   4, types, values, SPI_OK_UPDATE);
			break;
		case GUARD_RENAME:
			types[2] = NAMEOID;
			values[2] = DirectFunctionCall1(namein, CStringGetDatum(hit->new_name));
			guard_registry_execute("UPDATE domi._protected_columns SET col = $3 WHERE tbl = $1 AND col = $2",
								   3, types, values, SPI_OK_UPDATE);
			break;
		case GUARD_UNGUARD:
			/* The registry goes with the extension. */
			break;
	}
}

/* ---------------------------------------------------------------------
 * domi.protect_column and domi.unprotect_column
 * ---------------------------------------------------------------------
 */

/*
 * The table behind a regclass argument, checked as the caller: it exists,
 * is a permanent ordinary or partitioned table, and the caller owns it.
 * Locked against concurrent DROP and ALTER until the transaction ends.
 */
static void
check_protectable_table(FunctionCallInfo fcinfo, Oid *relid, char **schema, char **table)
{
	HeapTuple	tuple;
	Form_pg_class form;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("table and column must not be NULL")));
	*relid = PG_GETARG_OID(0);
	LockRelationOid(*relid, AccessShareLock);
	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(*relid));
	if (!HeapTupleIsValid(tuple))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", *relid)));
	form = (Form_pg_class) GETSTRUCT(tuple);
	*schema = get_namespace_name(form->relnamespace);
	*table = pstrdup(NameStr(form->relname));
	if (form->relkind != RELKIND_RELATION && form->relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a table", quote_qualified_identifier(*schema, *table)),
				 errdetail("Only columns of ordinary and partitioned tables can be protected.")));
	if (form->relpersistence == RELPERSISTENCE_TEMP)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot protect a column of temporary table \"%s\"", NameStr(form->relname)),
				 errdetail("Temporary tables are dropped at the end of their session without running event triggers.")));
	if (!pg_class_ownercheck(*relid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, get_relkind_objtype(form->relkind), *table);
	ReleaseSysCache(tuple);
}

/*
 * Only a superuser's ALTER EXTENSION domi DROP TABLE and DROP TABLE of the
 * registry lead here: say so rather than fail as if it could not happen.
 */
static void
report_missing_registry(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("drop guard registry \"%s.%s\" does not exist", REGISTRY_SCHEMA, REGISTRY_TABLE),
			 errhint("Reinstall the extension with DROP EXTENSION domi and CREATE EXTENSION domi.")));
}

/*
 * domi.protect_column(tbl regclass, col name) returns boolean
 *
 * True when the column became protected, false when it already was.
 */
Datum
domi_protect_column(PG_FUNCTION_ARGS)
{
	Oid			relid;
	char	   *schema;
	char	   *table;
	Name		column;
	HeapTuple	atttuple;
	Form_pg_attribute att;
	Oid			types[5] = {OIDOID, NAMEOID, OIDOID, INT4OID, NAMEOID};
	Datum		values[5];
	RegistryAccess access;
	bool		added;

	check_protectable_table(fcinfo, &relid, &schema, &table);
	column = PG_GETARG_NAME(1);
	atttuple = SearchSysCacheAttName(relid, NameStr(*column));
	if (!HeapTupleIsValid(atttuple))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation \"%s\" does not exist",
						NameStr(*column), table)));
	att = (Form_pg_attribute) GETSTRUCT(atttuple);
	if (att->attnum <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot protect system column \"%s\"", NameStr(*column))));

	values[0] = ObjectIdGetDatum(relid);
	values[1] = NameGetDatum(column);
	values[2] = ObjectIdGetDatum(att->atttypid);
	values[3] = Int32GetDatum(att->atttypmod);
	values[4] = DirectFunctionCall1(namein,
									CStringGetDatum(GetUserNameFromId(GetUserId(), false)));
	ReleaseSysCache(atttuple);

	if (!guard_registry_open(&access))
		report_missing_registry();
	guard_registry_execute("INSERT INTO domi._protected_columns (tbl, col, typ, typmod, protected_by)"
						   " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tbl, col) DO NOTHING",
						   5, types, values, SPI_OK_INSERT);
	added = SPI_processed > 0;
	guard_registry_close(&access);
	PG_RETURN_BOOL(added);
}

/*
 * domi.unprotect_column(tbl regclass, col name) returns boolean
 *
 * True when a protection was removed, false when there was none.  The column
 * need not exist any more: a protection whose column was lost can be removed.
 */
Datum
domi_unprotect_column(PG_FUNCTION_ARGS)
{
	Oid			relid;
	char	   *schema;
	char	   *table;
	Oid			types[2] = {OIDOID, NAMEOID};
	Datum		values[2];
	RegistryAccess access;
	bool		removed;

	check_protectable_table(fcinfo, &relid, &schema, &table);
	values[0] = ObjectIdGetDatum(relid);
	values[1] = NameGetDatum(PG_GETARG_NAME(1));

	if (!guard_registry_open(&access))
		report_missing_registry();
	guard_registry_execute("DELETE FROM domi._protected_columns WHERE tbl = $1 AND col = $2",
						   2, types, values, SPI_OK_DELETE);
	removed = SPI_processed > 0;
	guard_registry_close(&access);
	if (removed)
		ereport(LOG_SERVER_ONLY,
				(errmsg("column \"%s\" of table \"%s.%s\" is no longer protected",
						NameStr(*PG_GETARG_NAME(1)), schema, table),
				 errdetail("Role \"%s\" ran domi.unprotect_column().",
						   GetUserNameFromId(GetUserId(), false))));
	PG_RETURN_BOOL(removed);
}
