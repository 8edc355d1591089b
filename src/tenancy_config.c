/*
 * tenancy_config.c
 *		The tenancy configuration, domi.tenancy_config: reading it, checking
 *		it against the catalogs, and the SQL functions that set it
 *		(domi.configure_tenancy) and watch it (its table's trigger).
 *
 * See tenancy.c for how the configuration is used and why the lookups run
 * no query; the shared types and state are in tenancy.h.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/visibilitymap.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_class.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_index.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "rewrite/rewriteHandler.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "storage/predicate.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/typcache.h"
#include "utils/uuid.h"

#include "citus.h"
#include "domi.h"
#include "tenancy.h"

PG_FUNCTION_INFO_V1(domi_configure_tenancy);
PG_FUNCTION_INFO_V1(domi_tenancy_config_changed);
/* ---------------------------------------------------------------------
 * The configuration: reading it and checking it against the catalogs
 * ---------------------------------------------------------------------
 */

Oid
tenancy_config_table_relid(void)
{
	Oid			schema = get_namespace_oid(CONFIG_SCHEMA, true);
	Oid			relid = OidIsValid(schema) ? get_relname_relid(CONFIG_TABLE, schema) : InvalidOid;

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation \"%s.%s\" does not exist", CONFIG_SCHEMA, CONFIG_TABLE),
				 errhint("Update the extension: ALTER EXTENSION domi UPDATE.")));
	return relid;
}

Oid
tenancy_relation_owner(Oid relid)
{
	HeapTuple	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;

	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);
	return owner;
}

static void
read_name_column(HeapTuple tuple, TupleDesc desc, const char *column,
				 NameData *out, bool *isnull)
{
	Datum		value = SPI_getbinval(tuple, desc, SPI_fnumber(desc, column), isnull);

	if (*isnull)
		MemSet(out, 0, sizeof(NameData));
	else
		namestrcpy(out, NameStr(*DatumGetName(value)));
}

/* Fill cfg from a row of domi.tenancy_config (a query result or a trigger's tuple). */
static void
config_from_tuple(HeapTuple tuple, TupleDesc desc, TenancyConfig *cfg)
{
	bool		isnull;
	Datum		value;

	value = SPI_getbinval(tuple, desc, SPI_fnumber(desc, "memberships"), &isnull);
	cfg->memberships = isnull ? InvalidOid : DatumGetObjectId(value);
	read_name_column(tuple, desc, "user_column", &cfg->user_column, &isnull);
	read_name_column(tuple, desc, "tenant_column", &cfg->tenant_column, &isnull);
	read_name_column(tuple, desc, "order_column", &cfg->order_column, &isnull);
	cfg->has_order_column = !isnull;
	value = SPI_getbinval(tuple, desc, SPI_fnumber(desc, "tenants"), &isnull);
	cfg->tenants = isnull ? InvalidOid : DatumGetObjectId(value);
	read_name_column(tuple, desc, "tenants_id_column", &cfg->tenants_id_column, &isnull);
}

/* Read the configuration row (inside SPI); false when there is none. */
bool
tenancy_load_config(TenancyConfig *cfg)
{
	int			rc;

	rc = SPI_execute("SELECT memberships, user_column, tenant_column, order_column,"
					 " tenants, tenants_id_column FROM " CONFIG_SCHEMA "." CONFIG_TABLE,
					 true, 2);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read %s.%s: %s", CONFIG_SCHEMA, CONFIG_TABLE,
			 SPI_result_code_string(rc));
	if (SPI_processed == 0)
		return false;
	config_from_tuple(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, cfg);
	return true;
}

/*
 * A configured table must be an ordinary or partitioned table that every
 * session sees.  "what" names its part: "memberships" or "tenants".
 * stored: the OID comes from the stored configuration (and the table was
 * dropped since), not from an argument.
 */
static void
check_table(Oid relid, const char *what, bool stored)
{
	HeapTuple	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Form_pg_class form;

	if (!HeapTupleIsValid(tuple) && stored)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("the configured %s table no longer exists", what),
				 errhint("Call domi.configure_tenancy() with the table that holds the %s now.", what)));
	if (!HeapTupleIsValid(tuple))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("%s table with OID %u does not exist", what, relid),
				 errhint("Call domi.configure_tenancy() with the table that holds the %s.", what)));
	form = (Form_pg_class) GETSTRUCT(tuple);
	if (form->relkind != RELKIND_RELATION && form->relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a table", NameStr(form->relname)),
				 errdetail("The %s must be an ordinary or partitioned table.", what)));
	if (form->relpersistence == RELPERSISTENCE_TEMP)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is a temporary table", NameStr(form->relname)),
				 errdetail("A temporary table belongs to one session; the %s table must be seen by every session.", what)));
	ReleaseSysCache(tuple);
}

/*
 * The attribute of a configured column, or an error naming its part
 * ("user id", "tenant id", "order", "tenants id").  Returns a copy of the
 * attribute row.
 */
static FormData_pg_attribute
resolve_column(Oid relid, const NameData *column, const char *what)
{
	HeapTuple	tuple = SearchSysCacheAttName(relid, NameStr(*column));
	FormData_pg_attribute att;

	if (!HeapTupleIsValid(tuple) || ((Form_pg_attribute) GETSTRUCT(tuple))->attnum <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation \"%s\" does not exist",
						NameStr(*column), get_rel_name(relid)),
				 errdetail("It is the %s column of the tenant lookup.", what),
				 errhint("Call domi.configure_tenancy() with an existing column as the %s column.", what)));
	att = *(Form_pg_attribute) GETSTRUCT(tuple);
	ReleaseSysCache(tuple);
	return att;
}

static void
require_column_type(Oid relid, const FormData_pg_attribute *att, bool fits,
					const char *expected)
{
	if (!fits)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("column \"%s\" of relation \"%s\" has type %s",
						NameStr(att->attname), get_rel_name(relid),
						format_type_be(att->atttypid)),
				 errdetail("The tenant lookup needs %s there.", expected)));
}

bool
tenancy_is_text_like(Oid typid)
{
	Oid			base = getBaseType(typid);

	return base == TEXTOID || base == VARCHAROID;
}

/*
 * The types a user column may have: text and varchar (an application's
 * own ids), uuid (a foreign key to an auth table's uuid id, as Drizzle and
 * Prisma schemas declare it) and the integer types, or domains over them.
 * The functions take the id as text and convert it to the column's type.
 */
static bool
is_user_id_type(Oid typid)
{
	Oid			base = getBaseType(typid);

	return tenancy_is_text_like(base) || base == UUIDOID ||
		base == INT2OID || base == INT4OID || base == INT8OID;
}

/*
 * Check a configuration against the catalogs: the tables exist and are
 * tables, the columns exist with fitting types.  Errors say which part is
 * wrong.  stored: cfg is the configuration in use, read from the table.
 * Filled in for the caller (if not NULL): the attributes.
 */
void
tenancy_check_config(const TenancyConfig *cfg, bool stored, ResolvedColumns *resolved)
{
	FormData_pg_attribute att;
	ResolvedColumns local;

	if (resolved == NULL)
		resolved = &local;
	MemSet(resolved, 0, sizeof(ResolvedColumns));
	check_table(cfg->memberships, "memberships", stored);
	att = resolve_column(cfg->memberships, &cfg->user_column, "user id");
	require_column_type(cfg->memberships, &att, is_user_id_type(att.atttypid),
						"text, varchar, uuid, smallint, integer or bigint");
	resolved->user = att;
	att = resolve_column(cfg->memberships, &cfg->tenant_column, "tenant id");
	require_column_type(cfg->memberships, &att, getBaseType(att.atttypid) == UUIDOID, "uuid");
	resolved->tenant_attnum = att.attnum;
	if (cfg->has_order_column)
	{
		TypeCacheEntry *type;

		att = resolve_column(cfg->memberships, &cfg->order_column, "order");
		resolved->order = att;
		type = lookup_type_cache(att.atttypid, TYPECACHE_LT_OPR | TYPECACHE_CMP_PROC);
		if (!OidIsValid(type->lt_opr) || !OidIsValid(type->cmp_proc))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_FUNCTION),
					 errmsg("could not identify an ordering operator for type %s",
							format_type_be(att.atttypid)),
					 errdetail("The order column \"%s\" must have a type with a default sort order.",
							   NameStr(cfg->order_column))));
	}
	if (OidIsValid(cfg->tenants))
	{
		check_table(cfg->tenants, "tenants", stored);
		att = resolve_column(cfg->tenants, &cfg->tenants_id_column, "tenants id");
		require_column_type(cfg->tenants, &att, getBaseType(att.atttypid) == UUIDOID, "uuid");
		resolved->tenants_id = att;
	}
}

/*
 * Is the tenants id column unique by itself: a valid, immediate unique
 * index (or primary key) on that one column, without predicate?
 * bootstrap_tenant relies on it: a new tenant's id comes from the column's
 * default, and a default that can repeat an existing id (a constant, a
 * function of other columns) would make the caller a member of that
 * tenant.  Not deferrable: a deferred check fails only at commit, after
 * the caller has entered the other tenant and read its rows.
 */
bool
tenancy_tenants_id_is_unique(Oid relid, AttrNumber attnum)
{
	Relation	rel = table_open(relid, AccessShareLock);
	List	   *indexes = RelationGetIndexList(rel);
	ListCell   *lc;
	bool		unique = false;

	foreach(lc, indexes)
	{
		HeapTuple	tuple = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(lfirst_oid(lc)));
		Form_pg_index index;

		if (!HeapTupleIsValid(tuple))
			elog(ERROR, "cache lookup failed for index %u", lfirst_oid(lc));
		index = (Form_pg_index) GETSTRUCT(tuple);
		unique = index->indisunique && index->indimmediate && index->indisvalid &&
			index->indnkeyatts == 1 && index->indkey.values[0] == attnum &&
			heap_attisnull(tuple, Anum_pg_index_indpred, NULL);
		ReleaseSysCache(tuple);
		if (unique)
			break;
	}
	list_free(indexes);
	table_close(rel, NoLock);
	return unique;
}

void
tenancy_report_tenants_id_not_unique(Oid relid, AttrNumber attnum)
{
	char	   *column = get_attname(relid, attnum, false);

	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TABLE_DEFINITION),
			 errmsg("column \"%s\" of relation \"%s\" is not unique",
					column, get_rel_name(relid)),
			 errdetail("A new tenant's id must differ from every existing one, or its first member would join that tenant: the tenants id column needs a primary key or unique constraint of its own."),
			 errhint("Add one, not deferrable: ALTER TABLE ... ADD PRIMARY KEY (%s).",
					 quote_identifier(column))));
}

/* ---------------------------------------------------------------------
 * Configuration
 * ---------------------------------------------------------------------
 */

/*
 * The owner of the configuration table is the extension's owner, the role
 * the lookups run as: check that it may read the tables past their
 * policies and has the table privileges the functions use.
 */
static void
check_owner_rights(const TenancyConfig *cfg, Oid owner)
{
	tenancy_require_rls_bypass(owner);
	if (pg_class_aclcheck(cfg->memberships, owner, ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\" may not read the configured memberships table",
						GetUserNameFromId(owner, false)),
				 errdetail("The tenant lookup runs as the owner of extension domi, and needs SELECT on the memberships table. bootstrap_tenant writes as the owners of the tables.")));
}

static void
require_name_argument(FunctionCallInfo fcinfo, int argno, const char *what)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what)));
}

static void
name_argument(FunctionCallInfo fcinfo, int argno, NameData *out, bool *given)
{
	*given = !PG_ARGISNULL(argno);
	if (*given)
		namestrcpy(out, NameStr(*PG_GETARG_NAME(argno)));
	else
		MemSet(out, 0, sizeof(NameData));
}

/*
 * domi.configure_tenancy(memberships regclass, user_column name,
 *		tenant_column name, order_column name, tenants regclass,
 *		tenants_id_column name) returns void
 *
 * Runs with the caller's rights: the caller must own the configuration
 * table (be the extension owner, or a member of it, or a superuser).
 */
Datum
domi_configure_tenancy(PG_FUNCTION_ARGS)
{
	TenancyConfig cfg;
	Oid			config_relid = tenancy_config_table_relid();
	Oid			argtypes[6] = {REGCLASSOID, NAMEOID, NAMEOID, NAMEOID, REGCLASSOID, NAMEOID};
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};
	bool		given;
	int			rc;

	if (!pg_class_ownercheck(config_relid, GetUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to configure the tenant lookup"),
				 errdetail("Only the owner of extension domi or a superuser may change the tenant lookup's configuration.")));

	require_name_argument(fcinfo, 0, "memberships table");
	require_name_argument(fcinfo, 1, "user column");
	require_name_argument(fcinfo, 2, "tenant column");
	cfg.memberships = PG_GETARG_OID(0);
	name_argument(fcinfo, 1, &cfg.user_column, &given);
	name_argument(fcinfo, 2, &cfg.tenant_column, &given);
	name_argument(fcinfo, 3, &cfg.order_column, &cfg.has_order_column);
	cfg.tenants = PG_ARGISNULL(4) ? InvalidOid : PG_GETARG_OID(4);
	name_argument(fcinfo, 5, &cfg.tenants_id_column, &given);
	if (OidIsValid(cfg.tenants))
		require_name_argument(fcinfo, 5, "tenants id column");

	tenancy_check_config(&cfg, false, NULL);
	check_owner_rights(&cfg, tenancy_relation_owner(config_relid));
	/*
	 * Here, not in check_config: a restore loads the configuration row
	 * before it creates the tenants table's keys.  bootstrap_tenant checks
	 * it at every call.
	 */
	if (OidIsValid(cfg.tenants))
	{
		AttrNumber	id_attnum = get_attnum(cfg.tenants, NameStr(cfg.tenants_id_column));

		if (!tenancy_tenants_id_is_unique(cfg.tenants, id_attnum))
			tenancy_report_tenants_id_not_unique(cfg.tenants, id_attnum);
	}

	values[0] = ObjectIdGetDatum(cfg.memberships);
	values[1] = NameGetDatum(&cfg.user_column);
	values[2] = NameGetDatum(&cfg.tenant_column);
	values[3] = NameGetDatum(&cfg.order_column);
	values[4] = ObjectIdGetDatum(cfg.tenants);
	values[5] = NameGetDatum(&cfg.tenants_id_column);
	if (!cfg.has_order_column)
		nulls[3] = 'n';
	if (!OidIsValid(cfg.tenants))
		nulls[4] = nulls[5] = 'n';

	rc = SPI_connect();
	if (rc != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(rc));
	rc = SPI_execute_with_args("INSERT INTO " CONFIG_SCHEMA "." CONFIG_TABLE
							   " (memberships, user_column, tenant_column, order_column, tenants, tenants_id_column)"
							   " VALUES ($1, $2, $3, $4, $5, $6)"
							   " ON CONFLICT (singleton) DO UPDATE SET"
							   " memberships = excluded.memberships, user_column = excluded.user_column,"
							   " tenant_column = excluded.tenant_column, order_column = excluded.order_column,"
							   " tenants = excluded.tenants, tenants_id_column = excluded.tenants_id_column",
							   6, argtypes, values, nulls, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "could not write %s.%s: %s", CONFIG_SCHEMA, CONFIG_TABLE,
			 SPI_result_code_string(rc));
	tenancy_finish_spi();
	PG_RETURN_VOID();
}

/*
 * domi._tenancy_config_changed() trigger on domi.tenancy_config
 *
 * Row-level BEFORE INSERT OR UPDATE: check the new row, whoever writes it
 * (configure_tenancy, the owner by hand, a restore).  Statement-level AFTER
 * DELETE OR TRUNCATE: nothing to check.  Both tell every backend, at
 * commit, to build its lookups again.
 */
Datum
domi_tenancy_config_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	HeapTuple	newtuple = NULL;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function domi._tenancy_config_changed must be called as a trigger")));

	CacheInvalidateRelcacheByRelid(RelationGetRelid(trigdata->tg_relation));

	if (TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) &&
		(TRIGGER_FIRED_BY_INSERT(trigdata->tg_event) || TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event)))
	{
		TenancyConfig cfg;

		newtuple = TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ?
			trigdata->tg_newtuple : trigdata->tg_trigtuple;
		config_from_tuple(newtuple, RelationGetDescr(trigdata->tg_relation), &cfg);
		tenancy_check_config(&cfg, false, NULL);
	}
	return PointerGetDatum(newtuple);
}
