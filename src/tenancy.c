/*
 * tenancy.c
 *		Tenant lookup: which tenants a user belongs to, answered for an
 *		unprivileged application role by SECURITY DEFINER functions over the
 *		application's own memberships and tenants tables.
 *
 * Applications FORCE row-level security on their memberships table, and
 * then cannot ask which tenant a user belongs to before a tenant is set.
 * These functions run with the extension owner's rights (a superuser or a
 * BYPASSRLS role, checked at every call) and answer exactly that question,
 * nothing more: they return tenant ids of the user id they are given.
 *
 * No code of the tables' owners runs with the extension owner's rights
 * (the owner of a configured table need not be trusted like a superuser):
 *
 * - The lookups run no query.  Planning a query folds the constant parts of
 *   the table's index expressions and predicates (and partition keys,
 *   statistics expressions), calling the owner's immutable functions as
 *   the role that plans.  The lookups scan the tables themselves instead:
 *   when the memberships table (a plain table without inheritance
 *   children) has an index whose order is exactly the lookup's (user,
 *   order column, tenant id), an index-only scan of it, by OID, as the
 *   planner would choose, without the cost of SPI and an executor per call
 *   (the benchmark's reason); otherwise every partition or child through
 *   an index on the user column, or sequentially, sorted in memory.  Like
 *   the planner, they leave an index built over broken HOT chains alone
 *   while the transaction's snapshots are older than it.
 * - bootstrap_tenant writes as the tables' owners (owner_spi.c: a local
 *   user id change inside a security-restricted operation), with the
 *   tenant set to the new tenant's id, so that FORCEd policies hold the
 *   owners to the new tenant: a trigger, a column default, a constraint or
 *   an index expression runs with its owner's rights.
 *
 * The configuration (domi.tenancy_config, one row) names the tables by OID
 * and the columns by name.  Each backend builds its lookups from it once,
 * columns resolved and type-checked, and builds them again when the
 * configuration or a configured table changes (relcache invalidations; the
 * configuration table's trigger sends one).  Before every use we lock the
 * configured tables by OID: once we hold the lock, no DDL can rename or
 * alter a table before the scan or insert runs; bootstrap_tenant's inserts
 * name the tables by their current names, built from the OIDs per call.
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

PG_FUNCTION_INFO_V1(domi_configure_tenancy);
PG_FUNCTION_INFO_V1(domi_tenancy_config_changed);
PG_FUNCTION_INFO_V1(domi_user_tenant);
PG_FUNCTION_INFO_V1(domi_user_tenants);
PG_FUNCTION_INFO_V1(domi_is_member);
PG_FUNCTION_INFO_V1(domi_enter_tenant);
PG_FUNCTION_INFO_V1(domi_bootstrap_tenant);

#define CONFIG_SCHEMA "domi"
#define CONFIG_TABLE "tenancy_config"

/*
 * bootstrap_tenant serializes the calls for one user with a transaction
 * lock on an advisory lock tag that SQL cannot name: pg_advisory_lock and
 * its kin set the tag's fourth field to 1 (one bigint) or 2 (two ints),
 * never to this value, so no role can hold the lock and block a user's
 * sign-up.  The keyring uses 100 for its own tags (src/keyring.c).  The
 * other fields: the database, the class id "domi" in ASCII, the hash of
 * the user id.
 */
#define BOOTSTRAP_LOCK_CLASS 0x646f6d69
#define BOOTSTRAP_LOCK_FIELD4 101

/* The configuration row: tables by OID, columns by name. */
typedef struct TenancyConfig
{
	Oid			memberships;
	NameData	user_column;
	NameData	tenant_column;
	bool		has_order_column;
	NameData	order_column;
	Oid			tenants;		/* InvalidOid: no tenants table */
	NameData	tenants_id_column;
} TenancyConfig;

/* The attributes a configuration names, as check_config resolved them. */
typedef struct ResolvedColumns
{
	FormData_pg_attribute user;
	AttrNumber	tenant_attnum;
	FormData_pg_attribute order;	/* attnum 0: no order column */
	FormData_pg_attribute tenants_id;	/* only with a tenants table */
} ResolvedColumns;

/* What the calls need, built from the configuration once per backend. */
typedef struct TenancyState
{
	bool		valid;
	uint64		generation;		/* tenancy_generation when built */
	Oid			config_relid;
	Oid			memberships;
	Oid			tenants;
	/* the columns by name: a partition or child has its own attnums */
	NameData	user_column;
	NameData	tenant_column;
	NameData	order_column;
	bool		has_order_column;

	/*
	 * The user column: the arguments (text) are converted to its base type
	 * by that type's input function, and compared with its "=" under its
	 * collation; its hash names the bootstrap lock.  Text and varchar need
	 * no conversion.
	 */
	Oid			user_base_type;
	Oid			user_collation;
	bool		user_is_text;
	Oid			user_input;
	Oid			user_ioparam;
	FmgrInfo	user_eq;
	FmgrInfo	user_hash;
	/* the order column's default sort order (ORDER BY col, ascending) */
	Oid			order_collation;
	FmgrInfo	order_cmp;
	int16		order_typlen;
	bool		order_typbyval;

	/* for bootstrap_tenant, which builds its INSERTs per call */
	AttrNumber	tenants_id_attnum;
	char		tenants_id_generated;	/* attgenerated of the id column */
	bool		tenants_id_unique;	/* see tenants_id_is_unique() */
	char	   *tenants_id_column;	/* quoted */

	/*
	 * The index that answers the lookups directly, without a query
	 * (InvalidOid: none fits, the general scan answers), and its scan key.
	 */
	Oid			lookup_index;
	bool		memberships_is_citus;	/* its rows are in Citus shards */
	AttrNumber	tenant_keyno;	/* the tenant column's place in the index */
	/*
	 * The index was built over broken HOT chains (pg_index.indcheckxmin):
	 * the xmin of its pg_index row, which every snapshot that scans it must
	 * postdate (InvalidTransactionId: no such condition).
	 */
	TransactionId lookup_index_xmin;
	Oid			user_key_type;
	Oid			user_key_collation;
	RegProcedure user_key_equality;
} TenancyState;

static TenancyState state;

/* Holds the strings of state; reset at every rebuild. */
static MemoryContext tenancy_context = NULL;

/* Counts the invalidations that make state stale (see the callback). */
static uint64 tenancy_generation = 0;

/*
 * The configuration table changed (its trigger sent an invalidation), or
 * one of the configured tables or the lookup index did (renamed, an index
 * created or dropped, a column renamed...): build everything again at the
 * next call.
 */
static void
tenancy_relcache_callback(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == state.config_relid ||
		relid == state.memberships || relid == state.tenants ||
		relid == state.lookup_index)
		tenancy_generation++;
}

void
domi_tenancy_init(void)
{
	CacheRegisterRelcacheCallback(tenancy_relcache_callback, (Datum) 0);
}

/* ---------------------------------------------------------------------
 * The configuration: reading it and checking it against the catalogs
 * ---------------------------------------------------------------------
 */

static Oid
config_table_relid(void)
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

static Oid
relation_owner(Oid relid)
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
static bool
load_config(TenancyConfig *cfg)
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

static bool
is_text_like(Oid typid)
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

	return is_text_like(base) || base == UUIDOID ||
		base == INT2OID || base == INT4OID || base == INT8OID;
}

/*
 * Check a configuration against the catalogs: the tables exist and are
 * tables, the columns exist with fitting types.  Errors say which part is
 * wrong.  stored: cfg is the configuration in use, read from the table.
 * Filled in for the caller (if not NULL): the attributes.
 */
static void
check_config(const TenancyConfig *cfg, bool stored, ResolvedColumns *resolved)
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
static bool
tenants_id_is_unique(Oid relid, AttrNumber attnum)
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

static void
report_tenants_id_not_unique(Oid relid, AttrNumber attnum)
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
 * The state built from the configuration
 * ---------------------------------------------------------------------
 */

/*
 * The quoted, schema-qualified name of a configured table.  The catalogs
 * were checked a moment ago, but a concurrent DROP may have been processed
 * since (a lock taken in between reads pending invalidations): an error,
 * not a NULL name.
 */
static char *
qualified_relation_name(Oid relid)
{
	char	   *relname = get_rel_name(relid);
	char	   *nspname = relname ? get_namespace_name(get_rel_namespace(relid)) : NULL;

	if (relname == NULL || nspname == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("a configured table was dropped concurrently")));
	return quote_qualified_identifier(nspname, relname);
}

static void
forget_state(void)
{
	state.valid = false;
	if (tenancy_context == NULL)
		tenancy_context = AllocSetContextCreate(TopMemoryContext, "domi tenancy",
												ALLOCSET_SMALL_SIZES);
	else
		MemoryContextReset(tenancy_context);
	state.tenants_id_column = NULL;
	state.lookup_index = InvalidOid;
	state.lookup_index_xmin = InvalidTransactionId;
}

/*
 * Does this index answer the lookups as the equivalent query would?  A
 * valid btree index without predicate or expressions whose first keys are
 * (user, order, tenant), or (user, tenant) without an order column, each with the
 * default operator class of its column's type, the column's collation,
 * ascending and NULLS LAST: then the index order is the query's ORDER BY,
 * and its equality is its "=".
 */
static bool
index_answers_lookups(Relation heap, Relation index, const AttrNumber *keys, int nkeys)
{
	Form_pg_index form = index->rd_index;
	int			i;

	if (index->rd_rel->relam != BTREE_AM_OID || !form->indisvalid ||
		form->indnkeyatts < nkeys ||
		!heap_attisnull(index->rd_indextuple, Anum_pg_index_indpred, NULL) ||
		!heap_attisnull(index->rd_indextuple, Anum_pg_index_indexprs, NULL))
		return false;
	for (i = 0; i < nkeys; i++)
	{
		Form_pg_attribute att = TupleDescAttr(RelationGetDescr(heap), keys[i] - 1);
		Oid			opclass = GetDefaultOpClass(att->atttypid, BTREE_AM_OID);

		if (form->indkey.values[i] != keys[i] || !OidIsValid(opclass) ||
			index->rd_opfamily[i] != get_opclass_family(opclass) ||
			index->rd_opcintype[i] != get_opclass_input_type(opclass) ||
			index->rd_indcollation[i] != att->attcollation ||
			index->rd_indoption[i] != 0)
			return false;
	}
	return true;
}

/*
 * Find an index that answers the lookups (see above) and remember how to
 * scan it; none: the general scan answers.  Only for a plain heap table
 * without inheritance children: the lookups read a partitioned table's
 * partitions and an inherited table's children, which that one index does
 * not cover, and the scan reads the heap's visibility map.
 */
static void
choose_lookup_index(const ResolvedColumns *resolved)
{
	Relation	heap = table_open(state.memberships, AccessShareLock);
	AttrNumber	keys[3];
	int			nkeys = 0;
	List	   *indexes;
	ListCell   *lc;

	state.lookup_index = InvalidOid;
	keys[nkeys++] = resolved->user.attnum;
	if (resolved->order.attnum != 0)
		keys[nkeys++] = resolved->order.attnum;
	keys[nkeys++] = resolved->tenant_attnum;
	state.tenant_keyno = nkeys;

	/*
	 * Not a Citus table either: on the coordinator its heap is an empty
	 * shell, the rows are in the shards, which only a query reaches
	 * (lookup_by_query).
	 */
	state.memberships_is_citus = domi_is_citus_table(state.memberships);
	indexes = heap->rd_rel->relkind == RELKIND_RELATION &&
		heap->rd_rel->relam == HEAP_TABLE_AM_OID &&
		!heap->rd_rel->relhassubclass &&
		!state.memberships_is_citus ? RelationGetIndexList(heap) : NIL;
	foreach(lc, indexes)
	{
		Relation	index = index_open(lfirst_oid(lc), AccessShareLock);

		if (index_answers_lookups(heap, index, keys, nkeys))
		{
			state.lookup_index = RelationGetRelid(index);
			state.lookup_index_xmin = index->rd_index->indcheckxmin ?
				HeapTupleHeaderGetXmin(index->rd_indextuple->t_data) : InvalidTransactionId;
			state.user_key_type = index->rd_opcintype[0];
			state.user_key_collation = index->rd_indcollation[0];
			state.user_key_equality =
				get_opcode(get_opfamily_member(index->rd_opfamily[0], index->rd_opcintype[0],
											   index->rd_opcintype[0], BTEqualStrategyNumber));
		}
		index_close(index, NoLock);
		if (OidIsValid(state.lookup_index) && RegProcedureIsValid(state.user_key_equality))
			break;
		state.lookup_index = InvalidOid;
	}
	list_free(indexes);
	table_close(heap, NoLock);
}

/*
 * How to convert, compare and hash user ids, and how to order the order
 * column: the base types' built-in input functions and default operator
 * classes (a domain's constraints are not checked on a lookup's argument:
 * they belong to the table's writes, not to a question about them).
 */
static void
resolve_user_and_order_types(const ResolvedColumns *resolved)
{
	TypeCacheEntry *type;

	state.user_base_type = getBaseType(resolved->user.atttypid);
	state.user_collation = resolved->user.attcollation;
	state.user_is_text = is_text_like(state.user_base_type);
	getTypeInputInfo(state.user_base_type, &state.user_input, &state.user_ioparam);
	type = lookup_type_cache(state.user_base_type, TYPECACHE_EQ_OPR | TYPECACHE_HASH_PROC);
	if (!OidIsValid(type->eq_opr) || !OidIsValid(type->hash_proc))
		elog(ERROR, "no equality or hash function for type %s",
			 format_type_be(state.user_base_type));
	fmgr_info_cxt(get_opcode(type->eq_opr), &state.user_eq, tenancy_context);
	fmgr_info_cxt(type->hash_proc, &state.user_hash, tenancy_context);

	if (resolved->order.attnum != 0)
	{
		type = lookup_type_cache(resolved->order.atttypid, TYPECACHE_CMP_PROC);
		if (!OidIsValid(type->cmp_proc))
			elog(ERROR, "no comparison function for type %s",
				 format_type_be(resolved->order.atttypid));
		fmgr_info_cxt(type->cmp_proc, &state.order_cmp, tenancy_context);
		state.order_collation = resolved->order.attcollation;
		state.order_typlen = resolved->order.attlen;
		state.order_typbyval = resolved->order.attbyval;
	}
}

/* Build state from the configuration row (inside SPI). */
static void
build_state(void)
{
	uint64		generation = tenancy_generation;
	TenancyConfig cfg;
	ResolvedColumns resolved;

	forget_state();
	state.config_relid = config_table_relid();
	if (!load_config(&cfg))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the tenant lookup is not configured"),
				 errhint("Call domi.configure_tenancy() as the owner of extension domi.")));
	state.memberships = cfg.memberships;
	state.tenants = cfg.tenants;
	check_config(&cfg, true, &resolved);
	state.user_column = cfg.user_column;
	state.tenant_column = cfg.tenant_column;
	state.order_column = cfg.order_column;
	state.has_order_column = cfg.has_order_column;
	resolve_user_and_order_types(&resolved);
	choose_lookup_index(&resolved);

	if (OidIsValid(cfg.tenants))
	{
		state.tenants_id_column = MemoryContextStrdup(tenancy_context,
													  quote_identifier(NameStr(cfg.tenants_id_column)));
		state.tenants_id_attnum = resolved.tenants_id.attnum;
		state.tenants_id_generated = resolved.tenants_id.attgenerated;
		state.tenants_id_unique = tenants_id_is_unique(cfg.tenants, resolved.tenants_id.attnum);
	}

	state.generation = generation;
	state.valid = true;
}

static bool
state_usable(void)
{
	return state.valid && state.generation == tenancy_generation;
}

/*
 * The functions run as the extension owner, who must read the tables past
 * their row-level security: a superuser or a BYPASSRLS role.  Anyone else
 * would see only what the policies let it see, and with no tenant set that
 * is nothing: a wrong "no membership" instead of an error.  Checked by
 * configure_tenancy and at every call, since role attributes can change
 * after the configuration.
 */
static void
require_rls_bypass(Oid role)
{
	if (!superuser_arg(role) && !has_bypassrls_privilege(role))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("the tenant lookup runs as role \"%s\", which is subject to row level security",
						GetUserNameFromId(role, false)),
				 errdetail("The lookup functions run as their owner, the owner of extension domi, and must read the memberships past their policies."),
				 errhint("Make that role a superuser or give it BYPASSRLS.")));
}

/* One call of a lookup function: connected to SPI only when it needs to be. */
typedef struct TenancyCall
{
	bool		spi_connected;
} TenancyCall;

static void
call_spi(TenancyCall *call)
{
	int			rc;

	if (call->spi_connected)
		return;
	rc = SPI_connect();
	if (rc != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(rc));
	call->spi_connected = true;
}

static void
finish_spi(void)
{
	int			rc = SPI_finish();

	if (rc != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed: %s", SPI_result_code_string(rc));
}

/*
 * Make the lookups ready.  The tables the call reads are locked first (the
 * tenants table only for bootstrap_tenant): taking a lock processes pending
 * invalidations, and once we hold it no DDL can rename or alter the table
 * before our scan or insert runs.
 */
static void
tenancy_begin(TenancyCall *call, bool with_tenants)
{
	call->spi_connected = false;
	require_rls_bypass(GetUserId());
	for (;;)
	{
		if (!state_usable())
		{
			call_spi(call);
			build_state();
		}
		LockRelationOid(state.memberships, AccessShareLock);
		if (with_tenants && OidIsValid(state.tenants))
			LockRelationOid(state.tenants, AccessShareLock);
		if (state_usable())
			break;
	}
}

static void
tenancy_end(TenancyCall *call)
{
	if (call->spi_connected)
		finish_spi();
	call->spi_connected = false;
}

/*
 * Which snapshot a lookup reads with.  STATEMENT: the calling query's (the
 * STABLE lookups).  FRESH: a new one that sees this transaction's own
 * writes so far (enter_tenant after bootstrap_tenant in one statement).
 * LATEST: the latest committed state, whatever the isolation level
 * (bootstrap_tenant's look after waiting for the lock).
 */
typedef enum LookupSnapshot
{
	LOOKUP_STATEMENT,
	LOOKUP_FRESH,
	LOOKUP_LATEST
} LookupSnapshot;

/* What a scan of the user's memberships stops at. */
typedef enum LookupGoal
{
	LOOKUP_FIRST,				/* the first membership */
	LOOKUP_TENANT,				/* a membership in the given tenant */
	LOOKUP_ALL					/* every membership, into a tuplestore */
} LookupGoal;

typedef struct Lookup
{
	LookupGoal	goal;
	const pg_uuid_t *tenant;	/* LOOKUP_TENANT */
	Tuplestorestate *store;		/* LOOKUP_ALL */
	TupleDesc	store_desc;
	bool		found;
	pg_uuid_t	result;			/* LOOKUP_FIRST: the tenant */
} Lookup;

/*
 * Take one membership's tenant; true when the lookup needs no more rows.
 * A row whose tenant is NULL is no membership: skipped (as the equivalent
 * query, WHERE tenant IS NOT NULL, would).
 */
static bool
lookup_take(Lookup *lookup, const pg_uuid_t *tenant)
{
	if (tenant == NULL)
		return false;
	switch (lookup->goal)
	{
		case LOOKUP_FIRST:
			lookup->found = true;
			lookup->result = *tenant;
			return true;
		case LOOKUP_TENANT:
			lookup->found = memcmp(tenant->data, lookup->tenant->data, UUID_LEN) == 0;
			return lookup->found;
		case LOOKUP_ALL:
			{
				Datum		value = UUIDPGetDatum(tenant);
				bool		isnull = false;

				tuplestore_putvalues(lookup->store, lookup->store_desc, &value, &isnull);
				lookup->found = true;
				return false;
			}
	}
	return true;
}

static Snapshot
lookup_snapshot(LookupSnapshot which)
{
	switch (which)
	{
		case LOOKUP_STATEMENT:
			return GetActiveSnapshot();
		case LOOKUP_FRESH:
			CommandCounterIncrement();
			return GetTransactionSnapshot();
		case LOOKUP_LATEST:
			return GetLatestSnapshot();
	}
	return GetActiveSnapshot();
}

/*
 * The lookup through the index, in its order, which is the queries' ORDER
 * BY: no query to plan or execute.  An index-only scan, as the planner
 * would make: the tenant comes from the index entry, and the table is read
 * only for pages not known to be all-visible.  The owner's right to read
 * the table is checked here, as the executor would.  Row-level security is
 * not applied, as it would not be for the owner (a superuser or BYPASSRLS,
 * checked).
 */
static void
lookup_by_index(Lookup *lookup, Datum user_id, LookupSnapshot which)
{
	AclResult	aclresult = pg_class_aclcheck(state.memberships, GetUserId(), ACL_SELECT);
	Relation	heap;
	Relation	index;
	TupleTableSlot *slot = NULL;
	Buffer		vmbuffer = InvalidBuffer;
	IndexScanDesc scan;
	ScanKeyData key;
	ItemPointer tid;

	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, OBJECT_TABLE, get_rel_name(state.memberships));

	heap = table_open(state.memberships, NoLock);	/* locked by tenancy_begin */
	index = index_open(state.lookup_index, AccessShareLock);
	ScanKeyEntryInitialize(&key, 0, 1, BTEqualStrategyNumber, state.user_key_type,
						   state.user_key_collation, state.user_key_equality, user_id);
	PushActiveSnapshot(lookup_snapshot(which));
	scan = index_beginscan(heap, index, GetActiveSnapshot(), 1, 0);
	scan->xs_want_itup = true;
	index_rescan(scan, &key, 1, NULL, 0);
	while ((tid = index_getnext_tid(scan, ForwardScanDirection)) != NULL)
	{
		bool		isnull;
		Datum		value;

		if (VM_ALL_VISIBLE(heap, ItemPointerGetBlockNumber(tid), &vmbuffer))
			PredicateLockPage(heap, ItemPointerGetBlockNumber(tid), GetActiveSnapshot());
		else
		{
			if (slot == NULL)
				slot = table_slot_create(heap, NULL);
			if (!index_fetch_heap(scan, slot))
				continue;		/* no version of this row is visible */
		}
		value = index_getattr(scan->xs_itup, state.tenant_keyno, scan->xs_itupdesc, &isnull);
		if (lookup_take(lookup, isnull ? NULL : DatumGetUUIDP(value)))
			break;
	}
	if (BufferIsValid(vmbuffer))
		ReleaseBuffer(vmbuffer);
	index_endscan(scan);
	PopActiveSnapshot();
	if (slot)
		ExecDropSingleTupleTableSlot(slot);
	index_close(index, NoLock);
	table_close(heap, NoLock);
}

/*
 * The general lookup, for memberships without an index that answers it
 * directly: a partitioned table, inheritance children, another index or
 * none.  A scan of every table that holds rows (the table itself, its
 * partitions or children), through a btree index on the user column where
 * one fits, else sequentially; the rows found are sorted as the ORDER BY
 * would (order column ascending, NULLS LAST, under its collation; ties by
 * tenant id).
 *
 * It runs no query: a query of the extension owner over the table would be
 * planned as the extension owner, and planning folds the constant parts of
 * the table's index expressions and predicates, partition keys and
 * extended statistics, calling the table owner's immutable functions with
 * the extension owner's rights (a function declared immutable may still
 * call a volatile one).  A scan calls nothing but the built-in "=" and
 * comparison of the columns' types.  Row-level security is not applied, as
 * it would not be for the extension owner (a superuser or BYPASSRLS,
 * checked).
 */
typedef struct FoundMembership
{
	pg_uuid_t	tenant;
	Datum		order;
	bool		order_isnull;
} FoundMembership;

typedef struct FoundMemberships
{
	FoundMembership *rows;
	int			count;
	int			allocated;
} FoundMemberships;

/* Order as ORDER BY order_column, tenant_column: ascending, NULLS LAST. */
static int
found_membership_cmp(const void *a, const void *b, void *arg)
{
	const FoundMembership *x = a;
	const FoundMembership *y = b;

	if (state.has_order_column)
	{
		if (x->order_isnull != y->order_isnull)
			return x->order_isnull ? 1 : -1;
		if (!x->order_isnull)
		{
			int32		c = DatumGetInt32(FunctionCall2Coll(&state.order_cmp, state.order_collation,
															x->order, y->order));

			if (c != 0)
				return c;
		}
	}
	return memcmp(x->tenant.data, y->tenant.data, UUID_LEN);
}

/*
 * Take a row of the user's (slot): true when the lookup needs no more rows
 * (a membership in the tenant asked about).
 */
static bool
found_row(Lookup *lookup, FoundMemberships *found, TupleTableSlot *slot,
		  AttrNumber tenant_att, AttrNumber order_att)
{
	FoundMembership *row;
	bool		isnull;
	Datum		tenant = slot_getattr(slot, tenant_att, &isnull);

	if (isnull)
		return false;			/* no membership */
	if (lookup->goal == LOOKUP_TENANT)
		return lookup_take(lookup, DatumGetUUIDP(tenant));
	if (found->count == found->allocated)
	{
		found->allocated = found->allocated == 0 ? 4 : found->allocated * 2;
		found->rows = found->rows == NULL ?
			palloc(sizeof(FoundMembership) * found->allocated) :
			repalloc(found->rows, sizeof(FoundMembership) * found->allocated);
	}
	row = &found->rows[found->count++];
	row->tenant = *DatumGetUUIDP(tenant);
	row->order = (Datum) 0;
	row->order_isnull = true;
	if (order_att != InvalidAttrNumber)
	{
		Datum		order = slot_getattr(slot, order_att, &row->order_isnull);

		if (!row->order_isnull)
			row->order = datumCopy(order, state.order_typbyval, state.order_typlen);
	}
	return false;
}

/*
 * An index of rel that finds the user's rows: a valid btree index whose
 * first key is the plain user column with the default operator class of
 * its type and the column's collation, without predicate, that this
 * transaction may scan (see lookup_index_usable).  NULL: none.
 */
static Relation
user_index(Relation rel, AttrNumber user_att)
{
	List	   *indexes = RelationGetIndexList(rel);
	Oid			opclass = GetDefaultOpClass(state.user_base_type, BTREE_AM_OID);
	ListCell   *lc;

	foreach(lc, indexes)
	{
		Relation	index = index_open(lfirst_oid(lc), AccessShareLock);
		Form_pg_index form = index->rd_index;

		if (index->rd_rel->relam == BTREE_AM_OID && form->indisvalid &&
			form->indnkeyatts >= 1 && form->indkey.values[0] == user_att &&
			OidIsValid(opclass) &&
			index->rd_opfamily[0] == get_opclass_family(opclass) &&
			index->rd_opcintype[0] == get_opclass_input_type(opclass) &&
			index->rd_indcollation[0] == state.user_collation &&
			heap_attisnull(index->rd_indextuple, Anum_pg_index_indpred, NULL) &&
			(!form->indcheckxmin ||
			 TransactionIdPrecedes(HeapTupleHeaderGetXmin(index->rd_indextuple->t_data),
								   TransactionXmin)))
		{
			list_free(indexes);
			return index;
		}
		index_close(index, AccessShareLock);
	}
	list_free(indexes);
	return NULL;
}

static AttrNumber
column_of(Relation rel, const NameData *column)
{
	AttrNumber	attnum = get_attnum(RelationGetRelid(rel), NameStr(*column));

	if (attnum == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation \"%s\" does not exist",
						NameStr(*column), RelationGetRelationName(rel))));
	return attnum;
}

/* Scan one table that holds rows; true when the lookup needs no more rows. */
static bool
scan_memberships(Relation rel, Lookup *lookup, FoundMemberships *found,
				 Datum user_id, Snapshot snapshot)
{
	AttrNumber	user_att = column_of(rel, &state.user_column);
	AttrNumber	tenant_att = column_of(rel, &state.tenant_column);
	AttrNumber	order_att = state.has_order_column ? column_of(rel, &state.order_column) :
		InvalidAttrNumber;
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	Relation	index = user_index(rel, user_att);
	bool		done = false;

	if (index != NULL)
	{
		IndexScanDesc scan = index_beginscan(rel, index, snapshot, 1, 0);
		ScanKeyData key;

		ScanKeyEntryInitialize(&key, 0, 1, BTEqualStrategyNumber, index->rd_opcintype[0],
							   index->rd_indcollation[0],
							   get_opcode(get_opfamily_member(index->rd_opfamily[0],
															  index->rd_opcintype[0],
															  index->rd_opcintype[0],
															  BTEqualStrategyNumber)),
							   user_id);
		index_rescan(scan, &key, 1, NULL, 0);
		while (!done && index_getnext_slot(scan, ForwardScanDirection, slot))
			done = found_row(lookup, found, slot, tenant_att, order_att);
		index_endscan(scan);
		index_close(index, NoLock);
	}
	else
	{
		TableScanDesc scan;

		/* as a sequential scan of the executor: the whole table is read */
		PredicateLockRelation(rel, snapshot);
		scan = table_beginscan(rel, snapshot, 0, NULL);
		while (!done && table_scan_getnextslot(scan, ForwardScanDirection, slot))
		{
			bool		isnull;
			Datum		value = slot_getattr(slot, user_att, &isnull);

			if (!isnull &&
				DatumGetBool(FunctionCall2Coll(&state.user_eq, state.user_collation,
											   value, user_id)))
				done = found_row(lookup, found, slot, tenant_att, order_att);
		}
		table_endscan(scan);
	}
	ExecDropSingleTupleTableSlot(slot);
	return done;
}

static void
lookup_by_scan(Lookup *lookup, Datum user_id, LookupSnapshot which)
{
	AclResult	aclresult = pg_class_aclcheck(state.memberships, GetUserId(), ACL_SELECT);
	FoundMemberships found = {NULL, 0, 0};
	List	   *tables;
	ListCell   *lc;
	int			i;

	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, OBJECT_TABLE, get_rel_name(state.memberships));

	/* the table and every partition or child, locked as a query would */
	tables = find_all_inheritors(state.memberships, AccessShareLock, NULL);
	PushActiveSnapshot(lookup_snapshot(which));
	foreach(lc, tables)
	{
		Relation	rel = table_open(lfirst_oid(lc), NoLock);
		bool		done = false;

		if (rel->rd_rel->relkind == RELKIND_FOREIGN_TABLE)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("the memberships partition \"%s\" is a foreign table",
							RelationGetRelationName(rel)),
					 errdetail("The tenant lookup reads memberships in this database only.")));
		if (RELKIND_HAS_STORAGE(rel->rd_rel->relkind))
			done = scan_memberships(rel, lookup, &found, user_id, GetActiveSnapshot());
		table_close(rel, NoLock);
		if (done)
			break;
	}
	PopActiveSnapshot();
	list_free(tables);

	if (lookup->goal == LOOKUP_TENANT || found.count == 0)
		return;
	qsort_arg(found.rows, found.count, sizeof(FoundMembership), found_membership_cmp, NULL);
	for (i = 0; i < found.count; i++)
		if (lookup_take(lookup, &found.rows[i].tenant))
			break;
}

/*
 * May this transaction scan the lookup index?  An index built while the
 * table had broken HOT chains (indcheckxmin) holds, for such a chain, the
 * values of its newest version only: a snapshot older than the index could
 * see an older version of the row through that entry, with another user or
 * tenant than the entry says.  The planner skips such an index until
 * TransactionXmin passes the xmin of its pg_index row; so do we, and the
 * general scan answers meanwhile.
 */
static bool
lookup_index_usable(void)
{
	return OidIsValid(state.lookup_index) &&
		(!TransactionIdIsValid(state.lookup_index_xmin) ||
		 TransactionIdPrecedes(state.lookup_index_xmin, TransactionXmin));
}

/*
 * On a Citus node the memberships table's own heap is an empty shell: its
 * rows are in shards, which only a query planned by Citus reaches.  So for
 * a Citus table the lookup is a query, run as the extension owner under the
 * statement's snapshot.  That plans the owner's index predicates and
 * expressions as the extension owner, which the scans above avoid (see
 * docs/citus.md: on Citus, the memberships table's owner must be trusted
 * as the extension owner is).
 */
static void
lookup_by_query(Lookup *lookup, Datum user_id)
{
	Oid			argtypes[1] = {state.user_base_type};
	Datum		values[1] = {user_id};
	char	   *table = qualified_relation_name(state.memberships);
	const char *tenant = quote_identifier(NameStr(state.tenant_column));
	const char *user = quote_identifier(NameStr(state.user_column));
	const char *order = state.has_order_column ?
	quote_identifier(NameStr(state.order_column)) : NULL;
	uint64		i;
	int			rc;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	rc = SPI_execute_with_args(psprintf("SELECT m.%s FROM %s m WHERE m.%s OPERATOR(pg_catalog.=) $1"
										" AND m.%s IS NOT NULL ORDER BY %s%s%s m.%s",
										tenant, table, user, tenant,
										order ? "m." : "", order ? order : "",
										order ? " NULLS LAST," : "", tenant),
							   1, argtypes, values, NULL, true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "reading the memberships failed: %s", SPI_result_code_string(rc));
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Datum		t = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
		pg_uuid_t	copy;

		if (isnull)
			continue;
		copy = *DatumGetUUIDP(t);
		if (lookup_take(lookup, &copy))
			break;
	}
	SPI_finish();
}

static void
run_lookup(Lookup *lookup, Datum user_id, LookupSnapshot which)
{
	if (state.memberships_is_citus)
		lookup_by_query(lookup, user_id);
	else if (lookup_index_usable())
		lookup_by_index(lookup, user_id, which);
	else
		lookup_by_scan(lookup, user_id, which);
}

/* The tenant of the user's first membership; false if none. */
static bool
first_tenant(Datum user_id, LookupSnapshot which, pg_uuid_t *tenant)
{
	Lookup		lookup = {LOOKUP_FIRST};

	run_lookup(&lookup, user_id, which);
	if (lookup.found)
		*tenant = lookup.result;
	return lookup.found;
}

static bool
member_of(Datum user_id, const pg_uuid_t *tenant, LookupSnapshot which)
{
	Lookup		lookup = {LOOKUP_TENANT};

	lookup.tenant = tenant;
	run_lookup(&lookup, user_id, which);
	return lookup.found;
}

static Datum
uuid_result(const pg_uuid_t *tenant)
{
	pg_uuid_t  *result = palloc(sizeof(pg_uuid_t));

	*result = *tenant;
	return UUIDPGetDatum(result);
}

static void
require_user_id(FunctionCallInfo fcinfo)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("user id must not be null")));
}

/*
 * The user id argument (text) as a value of the user column's base type,
 * compared in that type: text as it is, a uuid or integer through its
 * type's input function (22P02 for text that is no such value, 22003 for
 * an integer out of range).  After tenancy_begin.
 */
static Datum
user_id_argument(FunctionCallInfo fcinfo)
{
	if (state.user_is_text)
		return PG_GETARG_DATUM(0);
	return OidInputFunctionCall(state.user_input, TextDatumGetCString(PG_GETARG_DATUM(0)),
								state.user_ioparam, -1);
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
	require_rls_bypass(owner);
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
	Oid			config_relid = config_table_relid();
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

	check_config(&cfg, false, NULL);
	check_owner_rights(&cfg, relation_owner(config_relid));
	/*
	 * Here, not in check_config: a restore loads the configuration row
	 * before it creates the tenants table's keys.  bootstrap_tenant checks
	 * it at every call.
	 */
	if (OidIsValid(cfg.tenants))
	{
		AttrNumber	id_attnum = get_attnum(cfg.tenants, NameStr(cfg.tenants_id_column));

		if (!tenants_id_is_unique(cfg.tenants, id_attnum))
			report_tenants_id_not_unique(cfg.tenants, id_attnum);
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
	finish_spi();
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
		check_config(&cfg, false, NULL);
	}
	return PointerGetDatum(newtuple);
}

/* ---------------------------------------------------------------------
 * Lookups
 * ---------------------------------------------------------------------
 */

/* domi.user_tenant(user_id text) returns uuid: the first membership's tenant, or NULL */
Datum
domi_user_tenant(PG_FUNCTION_ARGS)
{
	TenancyCall call;
	pg_uuid_t	tenant;
	bool		found;

	tenancy_begin(&call, false);
	found = first_tenant(user_id_argument(fcinfo), LOOKUP_STATEMENT, &tenant);
	tenancy_end(&call);
	if (!found)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(uuid_result(&tenant));
}

/*
 * domi.user_tenants(user_id text) returns setof uuid
 *
 * All the user's tenants, first membership first.  Materialized: a user
 * has few memberships, and the SPI result is gone after SPI_finish.
 */
Datum
domi_user_tenants(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TenancyCall call;
	Lookup		lookup = {LOOKUP_ALL};
	MemoryContext old;

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) ||
		(rsinfo->allowedModes & SFRM_Materialize) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("set-valued function called in context that cannot accept a set")));

	old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	lookup.store_desc = CreateTemplateTupleDesc(1);
	TupleDescInitEntry(lookup.store_desc, (AttrNumber) 1, "user_tenants", UUIDOID, -1, 0);
	lookup.store = tuplestore_begin_heap(true, false, work_mem);
	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult = lookup.store;
	rsinfo->setDesc = lookup.store_desc;
	MemoryContextSwitchTo(old);

	tenancy_begin(&call, false);
	run_lookup(&lookup, user_id_argument(fcinfo), LOOKUP_STATEMENT);
	tenancy_end(&call);
	return (Datum) 0;
}

/* domi.is_member(user_id text, tenant uuid) returns boolean */
Datum
domi_is_member(PG_FUNCTION_ARGS)
{
	TenancyCall call;
	bool		member;

	tenancy_begin(&call, false);
	member = member_of(user_id_argument(fcinfo), PG_GETARG_UUID_P(1), LOOKUP_STATEMENT);
	tenancy_end(&call);
	PG_RETURN_BOOL(member);
}

/*
 * domi.enter_tenant(user_id text, tenant uuid DEFAULT NULL) returns uuid
 *
 * Checks the membership (NULL: takes the first one), then sets the tenant
 * for the current transaction as domi.set_tenant() does.  A non-member is
 * refused and nothing is set.  The transaction block is checked first, so
 * that outside one the answer is the same for members and non-members.
 */
Datum
domi_enter_tenant(PG_FUNCTION_ARGS)
{
	TenancyCall call;
	pg_uuid_t	tenant;
	bool		member;

	require_user_id(fcinfo);
	domi_require_transaction_block();

	tenancy_begin(&call, false);
	if (PG_ARGISNULL(1))
		member = first_tenant(user_id_argument(fcinfo), LOOKUP_FRESH, &tenant);
	else
	{
		tenant = *PG_GETARG_UUID_P(1);
		member = member_of(user_id_argument(fcinfo), &tenant, LOOKUP_FRESH);
	}
	tenancy_end(&call);

	if (!member && PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("the user is not a member of any tenant"),
				 errhint("domi.bootstrap_tenant() creates a user's first tenant.")));
	if (!member)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("the user is not a member of tenant %s",
						DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(&tenant))))));

	domi_set_local_tenant(&tenant);
	PG_RETURN_DATUM(uuid_result(&tenant));
}

/* ---------------------------------------------------------------------
 * Bootstrap
 * ---------------------------------------------------------------------
 */

/* A column the tenant object sets: its quoted name, its qualified type. */
typedef struct TenantColumn
{
	char	   *name;
	char	   *type;
} TenantColumn;

/*
 * A key of the tenant jsonb names a column to set.  It must be a user
 * column of the tenants table that an INSERT may set, and not the id:
 * the id of a new tenant is always new (its default, or a random uuid), so
 * that no caller can make a membership in an existing tenant.
 */
static TenantColumn *
checked_tenant_column(const char *key, int len)
{
	TenantColumn *column = palloc(sizeof(TenantColumn));
	NameData	name;
	HeapTuple	tuple;
	Form_pg_attribute att;

	if (len >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%.*s\" of relation \"%s\" does not exist",
						len, key, get_rel_name(state.tenants))));
	MemSet(&name, 0, sizeof(name));
	memcpy(NameStr(name), key, len);
	tuple = SearchSysCacheAttName(state.tenants, NameStr(name));
	if (!HeapTupleIsValid(tuple))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation \"%s\" does not exist",
						NameStr(name), get_rel_name(state.tenants)),
				 errdetail("The keys of the tenant object name columns of the tenants table.")));
	att = (Form_pg_attribute) GETSTRUCT(tuple);
	if (att->attnum <= 0 || att->attnum == state.tenants_id_attnum ||
		att->attgenerated != '\0' || att->attidentity == ATTRIBUTE_IDENTITY_ALWAYS)
		ereport(ERROR,
				(errcode(ERRCODE_GENERATED_ALWAYS),
				 errmsg("cannot set column \"%s\" of a new tenant", NameStr(name)),
				 att->attnum == state.tenants_id_attnum ?
				 errdetail("A new tenant always gets a new id.") :
				 errdetail("It is a system, generated or identity column.")));
	column->name = pstrdup(quote_identifier(NameStr(name)));
	/* schema-qualified, with its typmod: varchar(40) stays varchar(40) */
	column->type = format_type_extended(att->atttypid, att->atttypmod,
										FORMAT_TYPE_TYPEMOD_GIVEN | FORMAT_TYPE_FORCE_QUALIFY);
	ReleaseSysCache(tuple);
	return column;
}

/* The columns the tenant object sets (TenantColumn), checked. */
static List *
tenant_columns(Jsonb *tenant)
{
	List	   *columns = NIL;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken token;

	if (!JB_ROOT_IS_OBJECT(tenant) || JB_ROOT_IS_SCALAR(tenant))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the tenant must be a JSON object"),
				 errdetail("Its keys name columns of the tenants table, its values are their values.")));
	it = JsonbIteratorInit(&tenant->root);
	while ((token = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (token == WJB_KEY)
			columns = lappend(columns, checked_tenant_column(v.val.string.val, v.val.string.len));
	}
	return columns;
}

/*
 * INSERT INTO tenants (columns, id) SELECT r.columns, $2 FROM
 * jsonb_to_record($1) AS r(column type, ...) RETURNING id: the values
 * typed by their columns' types, never pasted into the text; the id is the
 * one new_tenant_id() made; every other column gets its default.  Only the
 * named columns are read from the object: jsonb_populate_record of the
 * whole row type would read every other column as a NULL of its type,
 * which a domain that refuses NULL refuses even where the column has a
 * default.
 */
static char *
tenant_insert_sql(List *columns)
{
	char	   *tenants = qualified_relation_name(state.tenants);
	StringInfoData targets;
	StringInfoData values;
	StringInfoData definitions;
	ListCell   *lc;

	if (columns == NIL)
		return psprintf("INSERT INTO %s (%s) VALUES ($2) RETURNING %s",
						tenants, state.tenants_id_column, state.tenants_id_column);

	initStringInfo(&targets);
	initStringInfo(&values);
	initStringInfo(&definitions);
	foreach(lc, columns)
	{
		const TenantColumn *column = lfirst(lc);
		const char *separator = targets.len > 0 ? ", " : "";

		appendStringInfo(&targets, "%s%s", separator, column->name);
		appendStringInfo(&values, "%sr.%s", separator, column->name);
		appendStringInfo(&definitions, "%s%s %s", separator, column->name, column->type);
	}
	return psprintf("INSERT INTO %s (%s, %s) SELECT %s, $2 FROM pg_catalog.jsonb_to_record($1) AS r(%s) RETURNING %s",
					tenants, targets.data, state.tenants_id_column, values.data,
					definitions.data, state.tenants_id_column);
}

/*
 * Serialize bootstrap_tenant calls for one user until the end of the
 * transaction, on a lock that no SQL function can take (see
 * BOOTSTRAP_LOCK_FIELD4).  Two users whose ids hash alike merely wait for
 * each other.  The hash is the user column's type's, under the column's
 * collation: ids that its "=" calls equal are one user, and under a
 * nondeterministic collation ('Alice' and 'ALICE' case-insensitively) they
 * must hash alike too.
 */
static void
lock_user_bootstrap(Datum user_id)
{
	uint32		hash = DatumGetUInt32(FunctionCall1Coll(&state.user_hash, state.user_collation,
														 user_id));
	LOCKTAG		tag;

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, BOOTSTRAP_LOCK_CLASS, hash, BOOTSTRAP_LOCK_FIELD4);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);
}

/*
 * An INSERT of one row made no row, or several: a BEFORE trigger that
 * returned NULL, or a rule.  Then bootstrap_tenant would return a tenant
 * without the membership (and the next call would make another one): an
 * error instead, and the transaction's rows go with it.
 */
static void
report_skipped_insert(Oid relid, uint64 processed)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("the insert into %s made %llu rows instead of one",
					qualified_relation_name(relid), (unsigned long long) processed),
			 errdetail("A trigger or rule of the table changed the insert of bootstrap_tenant.")));
}

/*
 * Set the tenant while bootstrap_tenant writes as a table's owner (inside
 * domi_spi_connect_as, which restores it with the other settings): a table
 * with FORCE ROW LEVEL SECURITY holds its owner to its policies, and the
 * new rows belong to the new tenant.
 */
static void
set_scope_tenant(const pg_uuid_t *tenant)
{
	(void) set_config_option("domi.tenant_id",
							 DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(tenant))),
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
}

/*
 * The id of a new tenant: the id column's default (or its type's, a
 * domain's), evaluated here, before the insert, so that the tenant can be
 * set to it first; gen_random_uuid() without a default.  Called as the
 * tenants table's owner: the default is that owner's code, planned (its
 * immutable parts folded) and run with that owner's rights.
 */
static void
new_tenant_id(Relation tenants, pg_uuid_t *id)
{
	Node	   *expr = build_column_default(tenants, state.tenants_id_attnum);
	Datum		value;
	bool		isnull = false;

	if (expr == NULL)
	{
		*id = *DatumGetUUIDP(OidFunctionCall0(F_GEN_RANDOM_UUID));
		return;
	}
	else
	{
		EState	   *estate = CreateExecutorState();
		ExprState  *exprstate = ExecPrepareExpr((Expr *) expr, estate);

		value = ExecEvalExprSwitchContext(exprstate, GetPerTupleExprContext(estate), &isnull);
		if (!isnull)
			*id = *DatumGetUUIDP(value);
		FreeExecutorState(estate);
	}
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NOT_NULL_VIOLATION),
				 errmsg("the new tenant's id is null"),
				 errdetail("The default of column %s of relation %s gave null.",
						   state.tenants_id_column, qualified_relation_name(state.tenants))));
}

/*
 * Insert the new tenant as the owner of the tenants table: its id default,
 * triggers, constraints, index expressions and policies run with that
 * owner's rights inside a security-restricted operation, never with the
 * extension owner's, and with the tenant set to the new id.  A trigger
 * that changes the id is refused: the membership would point elsewhere.
 */
static void
insert_tenant(List *columns, Jsonb *tenant, pg_uuid_t *id)
{
	Relation	rel = table_open(state.tenants, NoLock);	/* locked by tenancy_begin */
	Oid			argtypes[2] = {JSONBOID, UUIDOID};
	Datum		values[2];
	char	   *sql = tenant_insert_sql(columns);
	DomiOwnerSpi spi;
	int			rc;
	bool		isnull;
	Datum		value;

	domi_spi_connect_as(rel->rd_rel->relowner, &spi);
	new_tenant_id(rel, id);
	set_scope_tenant(id);
	values[0] = JsonbPGetDatum(tenant);
	values[1] = UUIDPGetDatum(id);
	rc = SPI_execute_with_args(sql, 2, argtypes, values, NULL, false, 0);
	if (rc != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "could not insert the tenant: %s", SPI_result_code_string(rc));
	if (SPI_processed != 1)
		report_skipped_insert(state.tenants, SPI_processed);
	value = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull || memcmp(DatumGetUUIDP(value)->data, id->data, UUID_LEN) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the insert into %s changed the new tenant's id",
						qualified_relation_name(state.tenants)),
				 errdetail("A trigger or rule of the table changed the insert of bootstrap_tenant.")));
	domi_spi_finish_as(&spi);
	table_close(rel, NoLock);
}

/* Insert the membership as the memberships table's owner (see insert_tenant). */
static void
insert_membership(Datum user_id, const pg_uuid_t *tenant)
{
	Oid			argtypes[2] = {state.user_is_text ? TEXTOID : state.user_base_type, UUIDOID};
	Datum		values[2];
	char	   *sql = psprintf("INSERT INTO %s (%s, %s) VALUES ($1, $2)",
							   qualified_relation_name(state.memberships),
							   quote_identifier(NameStr(state.user_column)),
							   quote_identifier(NameStr(state.tenant_column)));
	DomiOwnerSpi spi;
	int			rc;

	domi_spi_connect_as(relation_owner(state.memberships), &spi);
	set_scope_tenant(tenant);
	values[0] = user_id;
	values[1] = UUIDPGetDatum(tenant);
	rc = SPI_execute_with_args(sql, 2, argtypes, values, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "could not insert the membership: %s", SPI_result_code_string(rc));
	if (SPI_processed != 1)
		report_skipped_insert(state.memberships, SPI_processed);
	domi_spi_finish_as(&spi);
}

/*
 * domi.bootstrap_tenant(user_id text, tenant jsonb DEFAULT '{}') returns uuid
 *
 * Creates a tenant and the user's first membership, and returns the
 * tenant; a user who already has a membership gets that tenant back and
 * nothing is inserted.  Concurrent calls for one user wait for each other
 * (the bootstrap lock), and the one that waited looks again with a fresh
 * snapshot, which sees the other's committed membership even under
 * REPEATABLE READ: one tenant, however many calls.  The look runs no code
 * of the tables' owners; the inserts run as those owners.
 */
Datum
domi_bootstrap_tenant(PG_FUNCTION_ARGS)
{
	TenancyCall call;
	Datum		user_id;
	Jsonb	   *tenant;
	List	   *columns;
	pg_uuid_t	id;

	require_user_id(fcinfo);
	tenant = PG_ARGISNULL(1) ? NULL : PG_GETARG_JSONB_P(1);

	tenancy_begin(&call, true);
	if (!OidIsValid(state.tenants))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the tenant lookup has no tenants table"),
				 errdetail("domi.bootstrap_tenant() creates a row in the tenants table."),
				 errhint("Call domi.configure_tenancy() with tenants => the table of tenants.")));
	if (!state.tenants_id_unique)
		report_tenants_id_not_unique(state.tenants, state.tenants_id_attnum);
	if (state.tenants_id_generated != '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TABLE_DEFINITION),
				 errmsg("column %s of relation %s is a generated column",
						state.tenants_id_column, qualified_relation_name(state.tenants)),
				 errdetail("bootstrap_tenant sets the tenant to the new id before it inserts the tenant, so the id must come from a default.")));
	user_id = user_id_argument(fcinfo);
	if (tenant == NULL)
		tenant = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
	columns = tenant_columns(tenant);

	lock_user_bootstrap(user_id);
	if (!first_tenant(user_id, LOOKUP_LATEST, &id))
	{
		insert_tenant(columns, tenant, &id);
		insert_membership(user_id, &id);
	}
	tenancy_end(&call);
	PG_RETURN_DATUM(uuid_result(&id));
}
