/*
 * tenancy_bootstrap.c
 *		domi.bootstrap_tenant: a user's first tenant and membership, written
 *		as the tables' owners with the tenant set to the new tenant's id.
 *
 * See tenancy.c for why the inserts run as the owners; the shared types
 * and state are in tenancy.h.
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

PG_FUNCTION_INFO_V1(domi_bootstrap_tenant);
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
						len, key, get_rel_name(tenancy_state.tenants))));
	MemSet(&name, 0, sizeof(name));
	memcpy(NameStr(name), key, len);
	tuple = SearchSysCacheAttName(tenancy_state.tenants, NameStr(name));
	if (!HeapTupleIsValid(tuple))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation \"%s\" does not exist",
						NameStr(name), get_rel_name(tenancy_state.tenants)),
				 errdetail("The keys of the tenant object name columns of the tenants table.")));
	att = (Form_pg_attribute) GETSTRUCT(tuple);
	if (att->attnum <= 0 || att->attnum == tenancy_state.tenants_id_attnum ||
		att->attgenerated != '\0' || att->attidentity == ATTRIBUTE_IDENTITY_ALWAYS)
		ereport(ERROR,
				(errcode(ERRCODE_GENERATED_ALWAYS),
				 errmsg("cannot set column \"%s\" of a new tenant", NameStr(name)),
				 att->attnum == tenancy_state.tenants_id_attnum ?
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
	char	   *tenants = tenancy_qualified_relation_name(tenancy_state.tenants);
	StringInfoData targets;
	StringInfoData values;
	StringInfoData definitions;
	ListCell   *lc;

	if (columns == NIL)
		return psprintf("INSERT INTO %s (%s) VALUES ($2) RETURNING %s",
						tenants, tenancy_state.tenants_id_column, tenancy_state.tenants_id_column);

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
					tenants, targets.data, tenancy_state.tenants_id_column, values.data,
					definitions.data, tenancy_state.tenants_id_column);
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
	uint32		hash = DatumGetUInt32(FunctionCall1Coll(&tenancy_state.user_hash, tenancy_state.user_collation,
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
					tenancy_qualified_relation_name(relid), (unsigned long long) processed),
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
	Node	   *expr = build_column_default(tenants, tenancy_state.tenants_id_attnum);
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
						   tenancy_state.tenants_id_column, tenancy_qualified_relation_name(tenancy_state.tenants))));
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
	Relation	rel = table_open(tenancy_state.tenants, NoLock);	/* locked by tenancy_begin */
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
		report_skipped_insert(tenancy_state.tenants, SPI_processed);
	value = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull || memcmp(DatumGetUUIDP(value)->data, id->data, UUID_LEN) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the insert into %s changed the new tenant's id",
						tenancy_qualified_relation_name(tenancy_state.tenants)),
				 errdetail("A trigger or rule of the table changed the insert of bootstrap_tenant.")));
	domi_spi_finish_as(&spi);
	table_close(rel, NoLock);
}

/* Insert the membership as the memberships table's owner (see insert_tenant). */
static void
insert_membership(Datum user_id, const pg_uuid_t *tenant)
{
	Oid			argtypes[2] = {tenancy_state.user_is_text ? TEXTOID : tenancy_state.user_base_type, UUIDOID};
	Datum		values[2];
	char	   *sql = psprintf("INSERT INTO %s (%s, %s) VALUES ($1, $2)",
							   tenancy_qualified_relation_name(tenancy_state.memberships),
							   quote_identifier(NameStr(tenancy_state.user_column)),
							   quote_identifier(NameStr(tenancy_state.tenant_column)));
	DomiOwnerSpi spi;
	int			rc;

	domi_spi_connect_as(tenancy_relation_owner(tenancy_state.memberships), &spi);
	set_scope_tenant(tenant);
	values[0] = user_id;
	values[1] = UUIDPGetDatum(tenant);
	rc = SPI_execute_with_args(sql, 2, argtypes, values, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "could not insert the membership: %s", SPI_result_code_string(rc));
	if (SPI_processed != 1)
		report_skipped_insert(tenancy_state.memberships, SPI_processed);
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

	tenancy_require_user_id(fcinfo);
	tenant = PG_ARGISNULL(1) ? NULL : PG_GETARG_JSONB_P(1);

	tenancy_begin(&call, true);
	if (!OidIsValid(tenancy_state.tenants))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the tenant lookup has no tenants table"),
				 errdetail("domi.bootstrap_tenant() creates a row in the tenants table."),
				 errhint("Call domi.configure_tenancy() with tenants => the table of tenants.")));
	if (!tenancy_state.tenants_id_unique)
		tenancy_report_tenants_id_not_unique(tenancy_state.tenants, tenancy_state.tenants_id_attnum);
	if (tenancy_state.tenants_id_generated != '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TABLE_DEFINITION),
				 errmsg("column %s of relation %s is a generated column",
						tenancy_state.tenants_id_column, tenancy_qualified_relation_name(tenancy_state.tenants)),
				 errdetail("bootstrap_tenant sets the tenant to the new id before it inserts the tenant, so the id must come from a default.")));
	user_id = tenancy_user_id_argument(fcinfo);
	if (tenant == NULL)
		tenant = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
	columns = tenant_columns(tenant);

	lock_user_bootstrap(user_id);
	if (!tenancy_first_tenant(user_id, LOOKUP_LATEST, &id))
	{
		insert_tenant(columns, tenant, &id);
		insert_membership(user_id, &id);
	}
	tenancy_end(&call);
	PG_RETURN_DATUM(tenancy_uuid_result(&id));
}
