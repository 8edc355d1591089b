/*
 * sync.c
 *		Field-level sync: the settings, the registry of synced tables, the
 *		triggers that stamp each changed field, and the readers of the
 *		stamps (domi.field_meta, domi.updated_at, domi.latest_rows).
 *
 * Each synced table has a shadow table in the schema domi_sync, made by
 * domi.enable_field_sync(): the table's primary key, its tenant column, the
 * stamps {"col": {"at", "origin", "client"}} as jsonb and a tombstone.  The
 * shadow belongs to the extension owner, as domi.tenant_keys does, and
 * only domi's C code reads or writes it, switching to that owner around its
 * own queries: so a table's owner cannot get code of theirs run there, and
 * a reader sees the stamps of the current tenant's rows only, because every
 * query on the shadow names the tenant.
 *
 * The stamping triggers are in sync_stamp.c, the merge (domi.merge and
 * friends) in sync_merge.c, the change feed in sync_feed.c.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/relation.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "commands/event_trigger.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "common/hashfn.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"
#include "utils/uuid.h"

#include "domi.h"
#include "sync.h"

extern Datum domi_current_tenant(PG_FUNCTION_ARGS);

PG_FUNCTION_INFO_V1(domi_field_meta);
PG_FUNCTION_INFO_V1(domi_sync_updated_at);
PG_FUNCTION_INFO_V1(domi_sync_latest_rows);
PG_FUNCTION_INFO_V1(domi_sync_now_text);
PG_FUNCTION_INFO_V1(domi_enable_field_sync);
PG_FUNCTION_INFO_V1(domi_disable_field_sync);
PG_FUNCTION_INFO_V1(domi_sync_ddl_end);
PG_FUNCTION_INFO_V1(domi_sync_later_stamp);

Oid			sync_merging_relid = InvalidOid;
const char *sync_origin_override = NULL;

/* ----------------------------------------------------------------------
 * Settings: domi.origin and domi.client_id
 * ----------------------------------------------------------------------
 */

static char *origin_setting = NULL;
static char *client_id_setting = NULL;

static const char *const origins[] = {"user", "agent", "system", "migration"};

/* The static copy of a valid origin, or NULL. */
const char *
sync_valid_origin(const char *origin)
{
	int			i;

	for (i = 0; i < lengthof(origins); i++)
		if (strcmp(origin, origins[i]) == 0)
			return origins[i];
	return NULL;
}

static bool
check_origin(char **newval, void **extra, GucSource source)
{
	if (*newval == NULL || sync_valid_origin(*newval) != NULL)
		return true;
	GUC_check_errcode(ERRCODE_INVALID_PARAMETER_VALUE);
	GUC_check_errmsg("invalid value for domi.origin: \"%s\"", *newval);
	GUC_check_errhint("The origin of a write is one of user, agent, system, migration.");
	return false;
}

static bool
check_client_id(char **newval, void **extra, GucSource source)
{
	if (*newval == NULL || (**newval != '\0' && strlen(*newval) <= 200))
		return true;
	GUC_check_errcode(ERRCODE_INVALID_PARAMETER_VALUE);
	GUC_check_errmsg("domi.client_id must be between 1 and 200 bytes long");
	return false;
}

void
domi_sync_init(void)
{
	/*
	 * USERSET: the origin says which pipeline writes (a migration script, an
	 * agent), not who may do what; it decides only which lost writes are
	 * worth showing a person.  Meant to be SET LOCAL, per transaction.
	 */
	DefineCustomStringVariable("domi.origin",
							   "Which pipeline this transaction's writes to synced tables come from.",
							   "user, agent, system or migration; SET LOCAL it per transaction.",
							   &origin_setting,
							   "user",
							   PGC_USERSET,
							   0,
							   check_origin, NULL, NULL);
	DefineCustomStringVariable("domi.client_id",
							   "The replica that writes to synced tables; stamped on each changed field.",
							   NULL,
							   &client_id_setting,
							   "server",
							   PGC_USERSET,
							   0,
							   check_client_id, NULL, NULL);
}

const char *
sync_origin(void)
{
	if (sync_origin_override != NULL)
		return sync_origin_override;
	return sync_valid_origin(origin_setting ? origin_setting : "user");
}

const char *
sync_client_id(void)
{
	return client_id_setting && *client_id_setting ? client_id_setting : "server";
}

/* ----------------------------------------------------------------------
 * Stamps as JSON
 * ----------------------------------------------------------------------
 */

/*
 * Times are written in UTC with an explicit offset, whatever the session's
 * TimeZone: domi.updated_at() can then be IMMUTABLE, and every replica
 * writes the same text for the same instant.
 */
static void
append_utc_time(StringInfo buf, TimestampTz at)
{
	char		text[MAXDATELEN + 1];
	int			utc = 0;

	JsonEncodeDateTime(text, TimestampTzGetDatum(at), TIMESTAMPTZOID, &utc);
	appendStringInfoChar(buf, '"');
	appendStringInfoString(buf, text);
	appendStringInfoChar(buf, '"');
}

/* "column": {"at": ..., "origin": ..., "client": ...} */
void
sync_stamp_json(StringInfo buf, const char *column, const SyncStamp *stamp)
{
	escape_json(buf, column);
	appendStringInfoString(buf, ": {\"at\": ");
	append_utc_time(buf, stamp->at);
	appendStringInfoString(buf, ", \"origin\": ");
	escape_json(buf, stamp->origin);
	appendStringInfoString(buf, ", \"client\": ");
	escape_json(buf, stamp->client);
	appendStringInfoChar(buf, '}');
}

Datum
domi_sync_now_text(PG_FUNCTION_ARGS)
{
	StringInfoData buf;

	initStringInfo(&buf);
	append_utc_time(&buf, GetCurrentStatementStartTimestamp());
	/* without the quotes */
	buf.data[buf.len - 1] = '\0';
	PG_RETURN_TEXT_P(cstring_to_text(buf.data + 1));
}

/* The current tenant as a uuid Datum; *isnull when none is set. */
Datum
sync_current_tenant_datum(bool *isnull)
{
	LOCAL_FCINFO(fcinfo, 0);
	Datum		result;

	InitFunctionCallInfoData(*fcinfo, NULL, 0, InvalidOid, NULL, NULL);
	result = domi_current_tenant(fcinfo);
	*isnull = fcinfo->isnull;
	return result;
}

static char *
jsonb_string_key(JsonbContainer *object, const char *key, const char *what, const char *column)
{
	JsonbValue *v = getKeyJsonValueFromContainer(object, key, strlen(key), NULL);

	if (v == NULL || v->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("stamp of field \"%s\" has no %s", column, what),
				 errhint("A stamp is {\"at\": \"<timestamptz>\", \"origin\": \"user|agent|system|migration\", \"client\": \"<text>\"}.")));
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/* Parse {"at", "origin", "client"}; errors name the field. */
void
sync_parse_stamp(JsonbValue *v, const char *column, SyncStamp *stamp)
{
	JsonbContainer *object;
	char	   *at,
			   *origin;

	if (v == NULL || v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("field \"%s\" has no stamp object in meta", column)));
	object = v->val.binary.data;
	at = jsonb_string_key(object, "at", "\"at\" string", column);
	stamp->at = DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in, CStringGetDatum(at),
														ObjectIdGetDatum(InvalidOid),
														Int32GetDatum(-1)));
	if (TIMESTAMP_NOT_FINITE(stamp->at))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_DATETIME_FORMAT),
				 errmsg("stamp of field \"%s\" has an infinite \"at\"", column)));
	origin = jsonb_string_key(object, "origin", "\"origin\" string", column);
	stamp->origin = sync_valid_origin(origin);
	if (stamp->origin == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("stamp of field \"%s\" has an invalid origin \"%s\"", column, origin),
				 errhint("The origin of a write is one of user, agent, system, migration.")));
	stamp->client = jsonb_string_key(object, "client", "\"client\" string", column);
	if (*stamp->client == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("stamp of field \"%s\" has an empty client", column)));
}

/* (at, client) of a and b: <0, 0, >0. */
int
sync_compare_stamps(const SyncStamp *a, const SyncStamp *b)
{
	if (a->at != b->at)
		return a->at < b->at ? -1 : 1;
	return strcmp(a->client, b->client);
}

/*
 * domi._sync_later_stamp(a, b): the later of two tombstones, by (at,
 * client, origin), so that replicas keep the same one whatever order the
 * deletes arrive in.
 */
Datum
domi_sync_later_stamp(PG_FUNCTION_ARGS)
{
	Jsonb	   *a,
			   *b;
	JsonbValue	va,
				vb;
	SyncStamp	sa,
				sb;
	int			cmp;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
	{
		if (PG_ARGISNULL(0) && PG_ARGISNULL(1))
			PG_RETURN_NULL();
		PG_RETURN_DATUM(PG_ARGISNULL(0) ? PG_GETARG_DATUM(1) : PG_GETARG_DATUM(0));
	}
	a = PG_GETARG_JSONB_P(0);
	b = PG_GETARG_JSONB_P(1);
	va.type = vb.type = jbvBinary;
	va.val.binary.data = &a->root;
	va.val.binary.len = VARSIZE(a) - VARHDRSZ;
	vb.val.binary.data = &b->root;
	vb.val.binary.len = VARSIZE(b) - VARHDRSZ;
	sync_parse_stamp(&va, "deleted", &sa);
	sync_parse_stamp(&vb, "deleted", &sb);
	cmp = sync_compare_stamps(&sa, &sb);
	if (cmp == 0)
		cmp = strcmp(sa.origin, sb.origin);
	PG_RETURN_JSONB_P(cmp >= 0 ? a : b);
}

/* ----------------------------------------------------------------------
 * The registry, cached per backend
 * ----------------------------------------------------------------------
 */

static HTAB *sync_tables = NULL;
static MemoryContext sync_context = NULL;

/*
 * Any change to a synced table, its shadow or the registry may rename what
 * the cached SQL names: forget the entry.  Its plans are left behind, not
 * freed: one of them may be running right now (the callback can fire while
 * it takes a lock).  DDL on synced tables is rare, so the leak is small.
 */
static void
sync_relcache_callback(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS status;
	SyncTable  *t;

	if (sync_tables == NULL)
		return;
	hash_seq_init(&status, sync_tables);
	while ((t = hash_seq_search(&status)) != NULL)
		if (relid == InvalidOid || t->relid == relid || t->shadow == relid || !t->valid)
			t->valid = false;
}

static void
sync_cache_init(void)
{
	HASHCTL		ctl;

	sync_context = AllocSetContextCreate(TopMemoryContext, "domi field sync",
										 ALLOCSET_SMALL_SIZES);
	ctl.keysize = sizeof(Oid);
	ctl.entrysize = sizeof(SyncTable);
	ctl.hcxt = sync_context;
	sync_tables = hash_create("domi synced tables", 16, &ctl,
							  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	CacheRegisterRelcacheCallback(sync_relcache_callback, (Datum) 0);
}

static Oid
rel_owner(Oid relid)
{
	HeapTuple	tuple;
	Oid			owner;

	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tuple))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	owner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);
	return owner;
}

static char *
qualified_rel_name(Oid relid)
{
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  get_rel_name(relid));
}

/* Read the registry row of relid: its shadow and tenant column. */
static bool
registry_lookup(Oid relid, Oid *shadow, char **tenant_column)
{
	Oid			argtypes[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(relid)};
	bool		found = false;
	int			rc;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	rc = SPI_execute_with_args("SELECT s.shadow::pg_catalog.oid, s.tenant_column::pg_catalog.text"
							   " FROM domi.sync_tables s WHERE s.tbl::pg_catalog.oid OPERATOR(pg_catalog.=) $1",
							   1, argtypes, values, NULL, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "reading domi.sync_tables failed: %s", SPI_result_code_string(rc));
	if (SPI_processed == 1)
	{
		bool		isnull;
		char	   *tcol;

		found = true;
		*shadow = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		tcol = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
		*tenant_column = tcol ? MemoryContextStrdup(sync_context, tcol) : NULL;
	}
	SPI_finish();
	return found;
}

static void
load_primary_key(SyncTable *t)
{
	Relation	rel = relation_open(t->relid, AccessShareLock);
	Oid			pkindex = RelationGetPrimaryKeyIndex(rel);
	HeapTuple	indtuple;
	Form_pg_index index;
	StringInfoData list,
				recdef,
				match,
				object;
	int			i;

	if (!OidIsValid(pkindex))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TABLE_DEFINITION),
				 errmsg("table \"%s\" has no primary key", RelationGetRelationName(rel)),
				 errhint("Field-level sync names rows by their primary key.")));
	indtuple = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(pkindex));
	if (!HeapTupleIsValid(indtuple))
		elog(ERROR, "cache lookup failed for index %u", pkindex);
	index = (Form_pg_index) GETSTRUCT(indtuple);

	initStringInfo(&list);
	initStringInfo(&recdef);
	initStringInfo(&match);
	initStringInfo(&object);
	t->npk = index->indnkeyatts;
	t->pk_names = MemoryContextAlloc(sync_context, sizeof(char *) * t->npk);
	for (i = 0; i < t->npk; i++)
	{
		AttrNumber	attnum = index->indkey.values[i];
		Form_pg_attribute att = TupleDescAttr(RelationGetDescr(rel), attnum - 1);
		const char *name = quote_identifier(NameStr(att->attname));

		t->pk_attnums[i] = attnum;
		t->pk_types[i] = att->atttypid;
		t->pk_names[i] = MemoryContextStrdup(sync_context, NameStr(att->attname));
		if (attnum == t->tenant_attnum)
			t->tenant_in_pk = true;
		appendStringInfo(&list, "%s%s", i ? ", " : "", name);
		appendStringInfo(&recdef, "%s%s %s", i ? ", " : "", name,
						 format_type_extended(att->atttypid, att->atttypmod,
											  FORMAT_TYPE_TYPEMOD_GIVEN | FORMAT_TYPE_FORCE_QUALIFY));
		appendStringInfo(&match, "%ss.%s OPERATOR(pg_catalog.=) r.%s", i ? " AND " : "", name, name);
		appendStringInfo(&object, "%s%s, s.%s", i ? ", " : "",
						 quote_literal_cstr(NameStr(att->attname)), name);
	}
	ReleaseSysCache(indtuple);
	relation_close(rel, AccessShareLock);

	t->pk_list = MemoryContextStrdup(sync_context, list.data);
	t->pk_recdef = MemoryContextStrdup(sync_context, recdef.data);
	t->pk_match = MemoryContextStrdup(sync_context, match.data);
	t->pk_object = MemoryContextStrdup(sync_context,
									   psprintf("pg_catalog.jsonb_build_object(%s)", object.data));
}

/*
 * The cache entry of a synced table, loaded on first use.  Not synced:
 * NULL if missing_ok, else an error.
 */
SyncTable *
sync_table(Oid relid, bool missing_ok)
{
	SyncTable  *t;
	bool		found;
	Oid			shadow;
	char	   *tenant_column = NULL;

	if (sync_tables == NULL)
		sync_cache_init();
	t = hash_search(sync_tables, &relid, HASH_FIND, NULL);
	if (t != NULL && t->valid)
		return t;

	if (!registry_lookup(relid, &shadow, &tenant_column))
	{
		if (missing_ok)
			return NULL;
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"%s\" does not sync field by field", get_rel_name(relid)),
				 errhint("Call domi.enable_field_sync() for it first.")));
	}

	t = hash_search(sync_tables, &relid, HASH_ENTER, &found);
	memset(((char *) t) + sizeof(Oid), 0, sizeof(SyncTable) - sizeof(Oid));
	t->shadow = shadow;
	t->shadow_owner = rel_owner(shadow);
	t->table_name = MemoryContextStrdup(sync_context, qualified_rel_name(relid));
	t->shadow_name = MemoryContextStrdup(sync_context, qualified_rel_name(shadow));
	t->tenant_attnum = tenant_column ? get_attnum(relid, tenant_column) : InvalidAttrNumber;
	load_primary_key(t);
	t->tenant_filter = t->tenant_attnum == InvalidAttrNumber ? "" :
		MemoryContextStrdup(sync_context,
							psprintf(" AND s.%s OPERATOR(pg_catalog.=) $2", quote_identifier(tenant_column)));
	t->valid = true;
	return t;
}

/* ----------------------------------------------------------------------
 * Running domi's queries on the shadow as its owner
 * ----------------------------------------------------------------------
 */

/*
 * Only the user id changes, not search_path: every query run as the owner
 * names its tables, functions, operators and types with their schema
 * (types with FORMAT_TYPE_FORCE_QUALIFY), so the caller's path cannot stand
 * in for any of them.  That keeps the per-row trigger cheap.
 */
void
sync_become_owner(SyncTable *t, Oid *saved_user, int *saved_context)
{
	GetUserIdAndSecContext(saved_user, saved_context);
	SetUserIdAndSecContext(t->shadow_owner, *saved_context |
						   SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
}

void
sync_restore_user(Oid saved_user, int saved_context)
{
	SetUserIdAndSecContext(saved_user, saved_context);
}

SPIPlanPtr
sync_keep_plan(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

	if (plan == NULL)
		elog(ERROR, "preparing \"%s\" failed: %s", sql, SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "SPI_keepplan failed");
	return plan;
}

/*
 * The same, always generic: for a statement with LIMIT $n the plan cache
 * keeps preferring a custom plan (its estimate with the real limit is
 * cheaper), and so planned it again on every call.
 */
SPIPlanPtr
sync_keep_generic_plan(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, argtypes, CURSOR_OPT_GENERIC_PLAN);

	if (plan == NULL)
		elog(ERROR, "preparing \"%s\" failed: %s", sql, SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "SPI_keepplan failed");
	return plan;
}

/*
 * Plans of the merge's statements, which differ by the set of columns a
 * change names: kept by their SQL text, so that a client sending the same
 * shape of change again does not parse and plan it again.  Bounded: past
 * SYNC_PLAN_CACHE_SIZE texts, new ones are planned each time.  A renamed
 * table or column changes the text, so a stale plan is never used.
 */
#define SYNC_PLAN_CACHE_SIZE 1024

typedef struct SyncCachedPlan
{
	uint32		hash;			/* key */
	char	   *sql;
	SPIPlanPtr	plan;
} SyncCachedPlan;

static HTAB *plan_cache = NULL;

SPIPlanPtr
sync_cached_plan(const char *sql, int nargs, Oid *argtypes, bool *transient)
{
	uint32		hash = hash_bytes((const unsigned char *) sql, strlen(sql));
	SyncCachedPlan *entry;
	bool		found;
	SPIPlanPtr	plan;

	if (plan_cache == NULL)
	{
		HASHCTL		ctl;

		if (sync_context == NULL)
			sync_cache_init();
		ctl.keysize = sizeof(uint32);
		ctl.entrysize = sizeof(SyncCachedPlan);
		ctl.hcxt = sync_context;
		plan_cache = hash_create("domi sync plans", 64, &ctl,
								 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	entry = hash_search(plan_cache, &hash, HASH_FIND, NULL);
	if (entry != NULL && strcmp(entry->sql, sql) == 0)
	{
		*transient = false;
		return entry->plan;
	}
	if (entry != NULL || hash_get_num_entries(plan_cache) >= SYNC_PLAN_CACHE_SIZE)
	{
		/* a hash collision or a full cache: plan for this call only */
		plan = SPI_prepare(sql, nargs, argtypes);
		if (plan == NULL)
			elog(ERROR, "preparing \"%s\" failed: %s", sql, SPI_result_code_string(SPI_result));
		*transient = true;
		return plan;
	}
	plan = sync_keep_plan(sql, nargs, argtypes);
	entry = hash_search(plan_cache, &hash, HASH_ENTER, &found);
	entry->sql = MemoryContextStrdup(sync_context, sql);
	entry->plan = plan;
	*transient = false;
	return plan;
}

/*
 * The stamps (and tombstone) of the row named by pk, for the current
 * tenant; NULL when there are none.  Inside an SPI connection; switches to
 * the owner itself.  The result is in the caller's memory context.
 */
Jsonb *
sync_read_meta(SyncTable *t, Jsonb *pk, bool lock, Jsonb **tombstone)
{
	SPIPlanPtr *plan = lock ? &t->lock_plan : &t->read_plan;
	Datum		values[2];
	char		nulls[2] = {' ', ' '};
	bool		tenant_null;
	Oid			saved_user;
	int			saved_context;
	int			rc;
	Jsonb	   *meta = NULL;

	*tombstone = NULL;
	values[0] = JsonbPGetDatum(pk);
	values[1] = sync_current_tenant_datum(&tenant_null);
	if (tenant_null)
	{
		if (t->tenant_attnum)
			return NULL;		/* no tenant: no tenant's stamps */
		nulls[1] = 'n';
	}

	/* as the owner from here on: the plan too names domi_sync */
	sync_become_owner(t, &saved_user, &saved_context);
	if (*plan == NULL)
	{
		Oid			argtypes[2] = {JSONBOID, UUIDOID};
		char	   *sql = psprintf("SELECT s.meta, s.tombstone FROM %s s,"
								   " pg_catalog.jsonb_to_record($1) AS r(%s)"
								   " WHERE %s%s%s",
								   t->shadow_name, t->pk_recdef, t->pk_match, t->tenant_filter,
								   lock ? " FOR UPDATE OF s" : "");

		*plan = sync_keep_plan(sql, t->tenant_attnum ? 2 : 1, argtypes);
	}
	rc = SPI_execute_plan(*plan, values, nulls, !lock, 1);
	sync_restore_user(saved_user, saved_context);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "reading field stamps failed: %s", SPI_result_code_string(rc));
	if (SPI_processed == 1)
	{
		bool		isnull;
		Datum		d;

		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		meta = DatumGetJsonbPCopy(d);
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
		if (!isnull)
			*tombstone = DatumGetJsonbPCopy(d);
	}
	return meta;
}

/* ----------------------------------------------------------------------
 * Readers
 * ----------------------------------------------------------------------
 */

static void
require_select(Oid relid)
{
	if (pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s", get_rel_name(relid))));
}

/* The primary key object must name each key column and nothing else. */
static void
check_pk_object(SyncTable *t, Jsonb *pk)
{
	int			i;

	if (!JB_ROOT_IS_OBJECT(pk))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("primary key must be a JSON object")));
	for (i = 0; i < t->npk; i++)
		if (getKeyJsonValueFromContainer(&pk->root, t->pk_names[i],
										 strlen(t->pk_names[i]), NULL) == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("primary key object lacks the column \"%s\"", t->pk_names[i])));
	if (JsonContainerSize(&pk->root) != t->npk)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("primary key object names columns that are not the primary key of table \"%s\"",
						get_rel_name(t->relid))));
}

/* domi.field_meta(tbl, pk): the stamps of one row of the current tenant. */
Datum
domi_field_meta(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	Jsonb	   *pk = PG_GETARG_JSONB_P(1);
	SyncTable  *t = sync_table(relid, false);
	Jsonb	   *meta,
			   *tombstone;
	MemoryContext caller = CurrentMemoryContext;

	require_select(relid);
	check_pk_object(t, pk);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	meta = sync_read_meta(t, pk, false, &tombstone);
	if (meta != NULL)
	{
		MemoryContext spi = MemoryContextSwitchTo(caller);

		meta = DatumGetJsonbPCopy(JsonbPGetDatum(meta));
		MemoryContextSwitchTo(spi);
	}
	SPI_finish();
	if (meta == NULL)
		PG_RETURN_NULL();
	PG_RETURN_JSONB_P(meta);
}

/* The "at" of one stamp object, or false when it has none. */
static bool
stamp_at(JsonbValue *stamp, TimestampTz *at)
{
	JsonbValue *v;

	if (stamp->type != jbvBinary || !JsonContainerIsObject(stamp->val.binary.data))
		return false;
	v = getKeyJsonValueFromContainer(stamp->val.binary.data, "at", 2, NULL);
	if (v == NULL || v->type != jbvString)
		return false;
	*at = DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in,
												  CStringGetDatum(pnstrdup(v->val.string.val, v->val.string.len)),
												  ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
	return true;
}

/* domi.updated_at(meta): the latest "at" over the fields; NULL for none. */
Datum
domi_sync_updated_at(PG_FUNCTION_ARGS)
{
	Jsonb	   *meta = PG_GETARG_JSONB_P(0);
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	TimestampTz latest = 0;
	bool		any = false;

	if (!JB_ROOT_IS_OBJECT(meta))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("field metadata must be a JSON object")));
	it = JsonbIteratorInit(&meta->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		TimestampTz at;

		if (tok != WJB_VALUE)
			continue;
		if (!stamp_at(&v, &at))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("field metadata has a stamp without \"at\"")));
		if (!any || at > latest)
			latest = at;
		any = true;
	}
	if (!any)
		PG_RETURN_NULL();
	PG_RETURN_TIMESTAMPTZ(latest);
}

/*
 * domi.latest_rows(tbl, max_rows): the current tenant's most recently
 * changed rows, newest first, by the index on the shadow's derived
 * updated_at; join them to the table by their primary key.
 */
Datum
domi_sync_latest_rows(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	int32		max_rows = PG_GETARG_INT32(1);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	SyncTable  *t = sync_table(relid, false);
	Datum		values[2];
	char		nulls[2] = {' ', ' '};
	Oid			argtypes[2] = {INT4OID, UUIDOID};
	bool		tenant_null;
	Oid			saved_user;
	int			saved_context;
	uint64		i;
	int			rc;
	const char *tenant_col;

	require_select(relid);
	if (max_rows < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_rows must not be negative")));
	InitMaterializedSRF(fcinfo, 0);

	values[0] = Int32GetDatum(max_rows);
	values[1] = sync_current_tenant_datum(&tenant_null);
	if (t->tenant_attnum && tenant_null)
		return (Datum) 0;		/* no tenant: nothing */
	tenant_col = t->tenant_attnum ? quote_identifier(get_attname(relid, t->tenant_attnum, false)) : NULL;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	sync_become_owner(t, &saved_user, &saved_context);
	/* planned once per table and backend: planning cost more than the scan */
	if (t->latest_plan == NULL)
		t->latest_plan = sync_keep_generic_plan(psprintf("SELECT %s, domi.updated_at(s.meta)"
												 " FROM %s s WHERE s.tombstone IS NULL%s%s%s"
												 " ORDER BY domi.updated_at(s.meta) DESC LIMIT $1",
												 t->pk_object, t->shadow_name,
												 tenant_col ? " AND s." : "",
												 tenant_col ? tenant_col : "",
												 tenant_col ? " OPERATOR(pg_catalog.=) $2" : ""),
										tenant_col ? 2 : 1, argtypes);
	rc = SPI_execute_plan(t->latest_plan, values, nulls, true, 0);
	sync_restore_user(saved_user, saved_context);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "reading the latest rows failed: %s", SPI_result_code_string(rc));
	for (i = 0; i < SPI_processed; i++)
	{
		Datum		out[2];
		bool		outnull[2];

		out[0] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &outnull[0]);
		out[1] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &outnull[1]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, out, outnull);
	}
	SPI_finish();
	return (Datum) 0;
}

/* ----------------------------------------------------------------------
 * enable_field_sync, disable_field_sync
 * ----------------------------------------------------------------------
 */

/*
 * The caller must own the table; the work is done by the SQL function of
 * the same name with a leading underscore, run as the extension owner (the
 * owner of domi.sync_tables), which alone may create tables in domi_sync.
 */
static void
run_as_extension_owner(const char *function, Oid relid)
{
	Oid			owner = domi_table_owner("sync_tables", NULL);
	DomiOwnerSpi spi;
	Oid			argtypes[1] = {REGCLASSOID};
	Datum		values[1] = {ObjectIdGetDatum(relid)};
	int			rc;

	if (!get_rel_name(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	if (!pg_class_ownercheck(relid, GetUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of table %s", get_rel_name(relid))));
	if (!OidIsValid(owner))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the registry domi.sync_tables does not exist"),
				 errhint("Run ALTER EXTENSION domi UPDATE.")));
	domi_spi_connect_as(owner, &spi);
	rc = SPI_execute_with_args(psprintf("SELECT domi.%s($1)", function),
							   1, argtypes, values, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "domi.%s failed: %s", function, SPI_result_code_string(rc));
	domi_spi_finish_as(&spi);
	sync_relcache_callback((Datum) 0, relid);
}

Datum
domi_enable_field_sync(PG_FUNCTION_ARGS)
{
	run_as_extension_owner("_enable_field_sync", PG_GETARG_OID(0));
	PG_RETURN_VOID();
}

Datum
domi_disable_field_sync(PG_FUNCTION_ARGS)
{
	run_as_extension_owner("_disable_field_sync", PG_GETARG_OID(0));
	PG_RETURN_VOID();
}

/* ----------------------------------------------------------------------
 * Renames
 * ----------------------------------------------------------------------
 */

/*
 * ALTER TABLE ... RENAME COLUMN on a synced table: the stamps are keyed by
 * column name, so they move to the new name; a key or tenant column is
 * renamed in the shadow too.  Run as the shadow's owner.
 */
Datum
domi_sync_ddl_end(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata = (EventTriggerData *) fcinfo->context;
	RenameStmt *stmt;
	Oid			relid;
	SyncTable  *t;
	Oid			saved_user;
	int			saved_context;
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		values[2];
	bool		shadow_column = false;
	AttrNumber	renamed;
	int			i,
				rc;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("domi._sync_ddl_end() must be an event trigger")));
	if (!IsA(trigdata->parsetree, RenameStmt))
		PG_RETURN_VOID();
	stmt = (RenameStmt *) trigdata->parsetree;
	if (stmt->renameType != OBJECT_COLUMN || stmt->relation == NULL)
		PG_RETURN_VOID();
	relid = RangeVarGetRelid(stmt->relation, NoLock, true);
	if (!OidIsValid(relid) || (t = sync_table(relid, true)) == NULL)
		PG_RETURN_VOID();

	/* by number: the cache may already hold the new names */
	renamed = get_attnum(relid, stmt->newname);
	for (i = 0; i < t->npk; i++)
		if (t->pk_attnums[i] == renamed)
			shadow_column = true;
	if (t->tenant_attnum && renamed == t->tenant_attnum)
		shadow_column = true;

	values[0] = CStringGetTextDatum(stmt->subname);
	values[1] = CStringGetTextDatum(stmt->newname);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	sync_become_owner(t, &saved_user, &saved_context);
	if (shadow_column)
	{
		rc = SPI_execute(psprintf("ALTER TABLE %s RENAME COLUMN %s TO %s", t->shadow_name,
								  quote_identifier(stmt->subname), quote_identifier(stmt->newname)),
						 false, 0);
		if (rc != SPI_OK_UTILITY)
			elog(ERROR, "renaming a shadow column failed: %s", SPI_result_code_string(rc));
		rc = SPI_execute_with_args("UPDATE domi.sync_tables SET tenant_column = $2::pg_catalog.name"
								   " WHERE tenant_column OPERATOR(pg_catalog.=) $1::pg_catalog.name",
								   2, argtypes, values, NULL, false, 0);
	}
	else
	{
		/*
		 * The stamps of every tenant's rows move: the extension owner is a
		 * superuser or has BYPASSRLS (README), so the shadow's policy does
		 * not narrow this to the current tenant.
		 */
		rc = SPI_execute_with_args(psprintf("UPDATE %s SET meta = (meta OPERATOR(pg_catalog.-) $1)"
											" OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object($2, meta OPERATOR(pg_catalog.->) $1)"
											" WHERE meta OPERATOR(pg_catalog.?) $1", t->shadow_name),
								   2, argtypes, values, NULL, false, 0);
		if (rc != SPI_OK_UPDATE)
			elog(ERROR, "renaming field stamps failed: %s", SPI_result_code_string(rc));
	}
	sync_restore_user(saved_user, saved_context);
	SPI_finish();
	sync_relcache_callback((Datum) 0, relid);
	PG_RETURN_VOID();
}
