/*
 * tenancy_lookup.c
 *		The tenant lookups: scanning the memberships table (an index-only
 *		scan of an index in the lookup's order, else through an index on the
 *		user column or sequentially), and the SQL functions domi.user_tenant,
 *		domi.user_tenants, domi.is_member and domi.enter_tenant.
 *
 * See tenancy.c for why the lookups run no query; the shared types and
 * state are in tenancy.h.
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

PG_FUNCTION_INFO_V1(domi_user_tenant);
PG_FUNCTION_INFO_V1(domi_user_tenants);
PG_FUNCTION_INFO_V1(domi_is_member);
PG_FUNCTION_INFO_V1(domi_enter_tenant);

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
	AclResult	aclresult = pg_class_aclcheck(tenancy_state.memberships, GetUserId(), ACL_SELECT);
	Relation	heap;
	Relation	index;
	TupleTableSlot *slot = NULL;
	Buffer		vmbuffer = InvalidBuffer;
	IndexScanDesc scan;
	ScanKeyData key;
	ItemPointer tid;

	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, OBJECT_TABLE, get_rel_name(tenancy_state.memberships));

	heap = table_open(tenancy_state.memberships, NoLock);	/* locked by tenancy_begin */
	index = index_open(tenancy_state.lookup_index, AccessShareLock);
	ScanKeyEntryInitialize(&key, 0, 1, BTEqualStrategyNumber, tenancy_state.user_key_type,
						   tenancy_state.user_key_collation, tenancy_state.user_key_equality, user_id);
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
		value = index_getattr(scan->xs_itup, tenancy_state.tenant_keyno, scan->xs_itupdesc, &isnull);
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

	if (tenancy_state.has_order_column)
	{
		if (x->order_isnull != y->order_isnull)
			return x->order_isnull ? 1 : -1;
		if (!x->order_isnull)
		{
			int32		c = DatumGetInt32(FunctionCall2Coll(&tenancy_state.order_cmp, tenancy_state.order_collation,
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
			row->order = datumCopy(order, tenancy_state.order_typbyval, tenancy_state.order_typlen);
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
	Oid			opclass = GetDefaultOpClass(tenancy_state.user_base_type, BTREE_AM_OID);
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
			index->rd_indcollation[0] == tenancy_state.user_collation &&
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
	AttrNumber	user_att = column_of(rel, &tenancy_state.user_column);
	AttrNumber	tenant_att = column_of(rel, &tenancy_state.tenant_column);
	AttrNumber	order_att = tenancy_state.has_order_column ? column_of(rel, &tenancy_state.order_column) :
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
				DatumGetBool(FunctionCall2Coll(&tenancy_state.user_eq, tenancy_state.user_collation,
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
	AclResult	aclresult = pg_class_aclcheck(tenancy_state.memberships, GetUserId(), ACL_SELECT);
	FoundMemberships found = {NULL, 0, 0};
	List	   *tables;
	ListCell   *lc;
	int			i;

	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, OBJECT_TABLE, get_rel_name(tenancy_state.memberships));

	/* the table and every partition or child, locked as a query would */
	tables = find_all_inheritors(tenancy_state.memberships, AccessShareLock, NULL);
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
	return OidIsValid(tenancy_state.lookup_index) &&
		(!TransactionIdIsValid(tenancy_state.lookup_index_xmin) ||
		 TransactionIdPrecedes(tenancy_state.lookup_index_xmin, TransactionXmin));
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
	Oid			argtypes[1] = {tenancy_state.user_base_type};
	Datum		values[1] = {user_id};
	char	   *table = tenancy_qualified_relation_name(tenancy_state.memberships);
	const char *tenant = quote_identifier(NameStr(tenancy_state.tenant_column));
	const char *user = quote_identifier(NameStr(tenancy_state.user_column));
	const char *order = tenancy_state.has_order_column ?
	quote_identifier(NameStr(tenancy_state.order_column)) : NULL;
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
	if (tenancy_state.memberships_is_citus)
		lookup_by_query(lookup, user_id);
	else if (lookup_index_usable())
		lookup_by_index(lookup, user_id, which);
	else
		lookup_by_scan(lookup, user_id, which);
}

/* The tenant of the user's first membership; false if none. */
bool
tenancy_first_tenant(Datum user_id, LookupSnapshot which, pg_uuid_t *tenant)
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

Datum
tenancy_uuid_result(const pg_uuid_t *tenant)
{
	pg_uuid_t  *result = palloc(sizeof(pg_uuid_t));

	*result = *tenant;
	return UUIDPGetDatum(result);
}

void
tenancy_require_user_id(FunctionCallInfo fcinfo)
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
Datum
tenancy_user_id_argument(FunctionCallInfo fcinfo)
{
	if (tenancy_state.user_is_text)
		return PG_GETARG_DATUM(0);
	return OidInputFunctionCall(tenancy_state.user_input, TextDatumGetCString(PG_GETARG_DATUM(0)),
								tenancy_state.user_ioparam, -1);
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
	found = tenancy_first_tenant(tenancy_user_id_argument(fcinfo), LOOKUP_STATEMENT, &tenant);
	tenancy_end(&call);
	if (!found)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(tenancy_uuid_result(&tenant));
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
	run_lookup(&lookup, tenancy_user_id_argument(fcinfo), LOOKUP_STATEMENT);
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
	member = member_of(tenancy_user_id_argument(fcinfo), PG_GETARG_UUID_P(1), LOOKUP_STATEMENT);
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

	tenancy_require_user_id(fcinfo);
	domi_require_transaction_block();

	tenancy_begin(&call, false);
	if (PG_ARGISNULL(1))
		member = tenancy_first_tenant(tenancy_user_id_argument(fcinfo), LOOKUP_FRESH, &tenant);
	else
	{
		tenant = *PG_GETARG_UUID_P(1);
		member = member_of(tenancy_user_id_argument(fcinfo), &tenant, LOOKUP_FRESH);
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
	PG_RETURN_DATUM(tenancy_uuid_result(&tenant));
}
