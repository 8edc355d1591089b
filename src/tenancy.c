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
 *
 * This file builds the state from the configuration and opens and closes
 * a call; the configuration itself is in tenancy_config.c, the lookups in
 * tenancy_lookup.c, bootstrap_tenant in tenancy_bootstrap.c.  They share
 * tenancy.h.
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

TenancyState tenancy_state;

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
	if (relid == InvalidOid || relid == tenancy_state.config_relid ||
		relid == tenancy_state.memberships || relid == tenancy_state.tenants ||
		relid == tenancy_state.lookup_index)
		tenancy_generation++;
}

void
domi_tenancy_init(void)
{
	CacheRegisterRelcacheCallback(tenancy_relcache_callback, (Datum) 0);
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
char *
tenancy_qualified_relation_name(Oid relid)
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
	tenancy_state.valid = false;
	if (tenancy_context == NULL)
		tenancy_context = AllocSetContextCreate(TopMemoryContext, "domi tenancy",
												ALLOCSET_SMALL_SIZES);
	else
		MemoryContextReset(tenancy_context);
	tenancy_state.tenants_id_column = NULL;
	tenancy_state.lookup_index = InvalidOid;
	tenancy_state.lookup_index_xmin = InvalidTransactionId;
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
	Relation	heap = table_open(tenancy_state.memberships, AccessShareLock);
	AttrNumber	keys[3];
	int			nkeys = 0;
	List	   *indexes;
	ListCell   *lc;

	tenancy_state.lookup_index = InvalidOid;
	keys[nkeys++] = resolved->user.attnum;
	if (resolved->order.attnum != 0)
		keys[nkeys++] = resolved->order.attnum;
	keys[nkeys++] = resolved->tenant_attnum;
	tenancy_state.tenant_keyno = nkeys;

	/*
	 * Not a Citus table either: on the coordinator its heap is an empty
	 * shell, the rows are in the shards, which only a query reaches
	 * (tenancy_lookup.c, lookup_by_query).
	 */
	tenancy_state.memberships_is_citus = domi_is_citus_table(tenancy_state.memberships);
	indexes = heap->rd_rel->relkind == RELKIND_RELATION &&
		heap->rd_rel->relam == HEAP_TABLE_AM_OID &&
		!heap->rd_rel->relhassubclass &&
		!tenancy_state.memberships_is_citus ? RelationGetIndexList(heap) : NIL;
	foreach(lc, indexes)
	{
		Relation	index = index_open(lfirst_oid(lc), AccessShareLock);

		if (index_answers_lookups(heap, index, keys, nkeys))
		{
			tenancy_state.lookup_index = RelationGetRelid(index);
			tenancy_state.lookup_index_xmin = index->rd_index->indcheckxmin ?
				HeapTupleHeaderGetXmin(index->rd_indextuple->t_data) : InvalidTransactionId;
			tenancy_state.user_key_type = index->rd_opcintype[0];
			tenancy_state.user_key_collation = index->rd_indcollation[0];
			tenancy_state.user_key_equality =
				get_opcode(get_opfamily_member(index->rd_opfamily[0], index->rd_opcintype[0],
											   index->rd_opcintype[0], BTEqualStrategyNumber));
		}
		index_close(index, NoLock);
		if (OidIsValid(tenancy_state.lookup_index) && RegProcedureIsValid(tenancy_state.user_key_equality))
			break;
		tenancy_state.lookup_index = InvalidOid;
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

	tenancy_state.user_base_type = getBaseType(resolved->user.atttypid);
	tenancy_state.user_collation = resolved->user.attcollation;
	tenancy_state.user_is_text = tenancy_is_text_like(tenancy_state.user_base_type);
	getTypeInputInfo(tenancy_state.user_base_type, &tenancy_state.user_input, &tenancy_state.user_ioparam);
	type = lookup_type_cache(tenancy_state.user_base_type, TYPECACHE_EQ_OPR | TYPECACHE_HASH_PROC);
	if (!OidIsValid(type->eq_opr) || !OidIsValid(type->hash_proc))
		elog(ERROR, "no equality or hash function for type %s",
			 format_type_be(tenancy_state.user_base_type));
	fmgr_info_cxt(get_opcode(type->eq_opr), &tenancy_state.user_eq, tenancy_context);
	fmgr_info_cxt(type->hash_proc, &tenancy_state.user_hash, tenancy_context);

	if (resolved->order.attnum != 0)
	{
		type = lookup_type_cache(resolved->order.atttypid, TYPECACHE_CMP_PROC);
		if (!OidIsValid(type->cmp_proc))
			elog(ERROR, "no comparison function for type %s",
				 format_type_be(resolved->order.atttypid));
		fmgr_info_cxt(type->cmp_proc, &tenancy_state.order_cmp, tenancy_context);
		tenancy_state.order_collation = resolved->order.attcollation;
		tenancy_state.order_typlen = resolved->order.attlen;
		tenancy_state.order_typbyval = resolved->order.attbyval;
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
	tenancy_state.config_relid = tenancy_config_table_relid();
	if (!tenancy_load_config(&cfg))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the tenant lookup is not configured"),
				 errhint("Call domi.configure_tenancy() as the owner of extension domi.")));
	tenancy_state.memberships = cfg.memberships;
	tenancy_state.tenants = cfg.tenants;
	tenancy_check_config(&cfg, true, &resolved);
	tenancy_state.user_column = cfg.user_column;
	tenancy_state.tenant_column = cfg.tenant_column;
	tenancy_state.order_column = cfg.order_column;
	tenancy_state.has_order_column = cfg.has_order_column;
	resolve_user_and_order_types(&resolved);
	choose_lookup_index(&resolved);

	if (OidIsValid(cfg.tenants))
	{
		tenancy_state.tenants_id_column = MemoryContextStrdup(tenancy_context,
													  quote_identifier(NameStr(cfg.tenants_id_column)));
		tenancy_state.tenants_id_attnum = resolved.tenants_id.attnum;
		tenancy_state.tenants_id_generated = resolved.tenants_id.attgenerated;
		tenancy_state.tenants_id_unique = tenancy_tenants_id_is_unique(cfg.tenants, resolved.tenants_id.attnum);
	}

	tenancy_state.generation = generation;
	tenancy_state.valid = true;
}

static bool
state_usable(void)
{
	return tenancy_state.valid && tenancy_state.generation == tenancy_generation;
}

/*
 * The functions run as the extension owner, who must read the tables past
 * their row-level security: a superuser or a BYPASSRLS role.  Anyone else
 * would see only what the policies let it see, and with no tenant set that
 * is nothing: a wrong "no membership" instead of an error.  Checked by
 * configure_tenancy and at every call, since role attributes can change
 * after the configuration.
 */
void
tenancy_require_rls_bypass(Oid role)
{
	if (!superuser_arg(role) && !has_bypassrls_privilege(role))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("the tenant lookup runs as role \"%s\", which is subject to row level security",
						GetUserNameFromId(role, false)),
				 errdetail("The lookup functions run as their owner, the owner of extension domi, and must read the memberships past their policies."),
				 errhint("Make that role a superuser or give it BYPASSRLS.")));
}

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

void
tenancy_finish_spi(void)
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
void
tenancy_begin(TenancyCall *call, bool with_tenants)
{
	call->spi_connected = false;
	tenancy_require_rls_bypass(GetUserId());
	for (;;)
	{
		if (!state_usable())
		{
			call_spi(call);
			build_state();
		}
		LockRelationOid(tenancy_state.memberships, AccessShareLock);
		if (with_tenants && OidIsValid(tenancy_state.tenants))
			LockRelationOid(tenancy_state.tenants, AccessShareLock);
		if (state_usable())
			break;
	}
}

void
tenancy_end(TenancyCall *call)
{
	if (call->spi_connected)
		tenancy_finish_spi();
	call->spi_connected = false;
}

