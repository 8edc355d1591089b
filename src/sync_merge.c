/*
 * sync_merge.c
 *		Field-level sync: apply changes that replicas made elsewhere
 *		(domi.merge, domi.merge_batch, domi.merge_delete) and seed
 *		singleton rows (domi.bootstrap_row).
 *
 * The merge takes an incoming field iff its (at, client, value) is greater
 * than the stored one: at as a time, client as bytes, and on a full tie the
 * value, by jsonb's total order of the value as the column's type prints
 * it.  A total order over the writes, so replicas that apply the same set
 * of changes in any order end with the same row.
 *
 * A delete leaves a tombstone, and a tombstone is final for merges: no
 * later merge brings the row back, however new its stamps.  That rule
 * needs no comparison between a delete and the fields, so it converges
 * whatever order the changes arrive in (a rule "newer writes resurrect"
 * has to decide what the fields older than the delete hold, and gets
 * different rows on different replicas).  A plain INSERT on the server is
 * a new life of the key and clears the tombstone.
 *
 * A conflict (a row of domi.sync_conflict_log) is recorded only when the
 * stored field that loses was written by a user, by another client than
 * the incoming write, with another value, and the call is not an initial
 * hydration: history replays, agent and system writes, and a bootstrapped
 * twin collapse silently.
 *
 * The user's table is read and written as the caller, under the caller's
 * privileges and row level security; the stamps, as the shadow's owner,
 * for the current tenant (sync.c).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "domi.h"
#include "sync.h"

PG_FUNCTION_INFO_V1(domi_sync_merge);
PG_FUNCTION_INFO_V1(domi_sync_merge_batch);
PG_FUNCTION_INFO_V1(domi_sync_merge_delete);
PG_FUNCTION_INFO_V1(domi_sync_bootstrap_row);

/* One field of an incoming change. */
typedef struct IncomingField
{
	char	   *name;
	AttrNumber	attnum;
	SyncStamp	stamp;
	bool		taken;
} IncomingField;

/* What one merge call did, added up over a batch. */
typedef struct MergeTally
{
	StringInfoData applied;		/* JSON array items of column names */
	StringInfoData rejected;
	int			napplied;
	int			nrejected;
	int			nunchanged;
	int			nconflicts;
	int			ninserted;
	int			ndeleted;
} MergeTally;

static void
append_name(StringInfo list, int *count, const char *name)
{
	if (list->data != NULL)
	{
		if (list->len > 0)
			appendStringInfoString(list, ", ");
		escape_json(list, name);
	}
	(*count)++;
}

/* ----------------------------------------------------------------------
 * Reading the input
 * ----------------------------------------------------------------------
 */

static bool
is_pk(SyncTable *t, AttrNumber attnum)
{
	int			i;

	for (i = 0; i < t->npk; i++)
		if (t->pk_attnums[i] == attnum)
			return true;
	return false;
}

/* The column "name" of a JSON key, with the errors a bad key deserves. */
static AttrNumber
row_column(SyncTable *t, const char *name)
{
	AttrNumber	attnum = get_attnum(t->relid, name);

	if (attnum == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation \"%s\" does not exist", name, get_rel_name(t->relid))));
	if (get_attgenerated(t->relid, attnum))
		ereport(ERROR,
				(errcode(ERRCODE_GENERATED_ALWAYS),
				 errmsg("column \"%s\" is a generated column and cannot be merged", name)));
	return attnum;
}

/* "name type" for jsonb_to_record's column list, the type fully qualified. */
static void
append_column_def(StringInfo buf, Oid relid, AttrNumber attnum)
{
	Oid			type;
	int32		typmod;
	Oid			collation;

	get_atttypetypmodcoll(relid, attnum, &type, &typmod, &collation);
	if (buf->len > 0)
		appendStringInfoString(buf, ", ");
	appendStringInfo(buf, "%s %s", quote_identifier(get_attname(relid, attnum, false)),
					 format_type_extended(type, typmod,
										  FORMAT_TYPE_TYPEMOD_GIVEN | FORMAT_TYPE_FORCE_QUALIFY));
}

/* The primary key part of row, as its own object. */
static Jsonb *
pk_of_row(SyncTable *t, Jsonb *row)
{
	JsonbParseState *state = NULL;
	JsonbValue *result;
	int			i;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	for (i = 0; i < t->npk; i++)
	{
		JsonbValue	key;
		JsonbValue *value = getKeyJsonValueFromContainer(&row->root, t->pk_names[i],
														 strlen(t->pk_names[i]), NULL);

		if (value == NULL || value->type == jbvNull)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("row lacks the primary key column \"%s\"", t->pk_names[i])));
		key.type = jbvString;
		key.val.string.val = t->pk_names[i];
		key.val.string.len = strlen(t->pk_names[i]);
		pushJsonbValue(&state, WJB_KEY, &key);
		pushJsonbValue(&state, WJB_VALUE, value);
	}
	result = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	return JsonbValueToJsonb(result);
}

/* ----------------------------------------------------------------------
 * Comparing and deciding
 * ----------------------------------------------------------------------
 */

/* The value of key in object as a Jsonb of its own (JSON null if absent). */
static Jsonb *
field_value(Jsonb *object, const char *key)
{
	JsonbValue *v = object ? getKeyJsonValueFromContainer(&object->root, key, strlen(key), NULL) : NULL;
	JsonbValue	null;

	if (v == NULL)
	{
		null.type = jbvNull;
		v = &null;
	}
	return JsonbValueToJsonb(v);
}

static int
compare_values(Jsonb *a, Jsonb *b)
{
	return compareJsonbContainers(&a->root, &b->root);
}

/* ----------------------------------------------------------------------
 * SQL on the user's table (as the caller) and on the shadow (as its owner)
 * ----------------------------------------------------------------------
 */

/* Run a one-parameter statement through the plan cache. */
static int
execute_cached(const char *sql, Oid *argtypes, Datum *values, bool read_only)
{
	bool		transient;
	SPIPlanPtr	plan = sync_cached_plan(sql, 1, argtypes, &transient);
	int			rc = SPI_execute_plan(plan, values, NULL, read_only, 0);

	if (transient)
		SPI_freeplan(plan);
	return rc;
}

/* The incoming values as the columns' types print them: validates them too. */
static Jsonb *
normalized_row(SyncTable *t, Jsonb *row, const char *coldefs)
{
	Oid			argtypes[1] = {JSONBOID};
	Datum		values[1] = {JsonbPGetDatum(row)};
	int			rc;
	bool		isnull;

	rc = execute_cached(psprintf("SELECT pg_catalog.to_jsonb(r) FROM pg_catalog.jsonb_to_record($1) AS r(%s)",
								 coldefs), argtypes, values, true);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "reading the incoming row failed: %s", SPI_result_code_string(rc));
	return DatumGetJsonbP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/* The stored row named by pk, locked, as the caller sees it; NULL if none. */
static Jsonb *
current_row(SyncTable *t, Jsonb *pk)
{
	Datum		values[1] = {JsonbPGetDatum(pk)};
	int			rc;
	bool		isnull;

	if (t->row_plan == NULL)
	{
		Oid			argtypes[1] = {JSONBOID};

		t->row_plan = sync_keep_plan(psprintf("SELECT pg_catalog.to_jsonb(s) FROM %s s,"
											  " pg_catalog.jsonb_to_record($1) AS r(%s)"
											  " WHERE %s FOR UPDATE OF s",
											  t->table_name, t->pk_recdef, t->pk_match),
									 1, argtypes);
	}
	rc = SPI_execute_plan(t->row_plan, values, NULL, false, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "reading the stored row failed: %s", SPI_result_code_string(rc));
	if (SPI_processed == 0)
		return NULL;
	return DatumGetJsonbP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/* Run a statement on the user's table with the stamping trigger quiet. */
static uint64
write_table(SyncTable *t, const char *sql, Jsonb *row, int expected)
{
	Oid			argtypes[1] = {JSONBOID};
	Datum		values[1] = {JsonbPGetDatum(row)};
	Oid			saved = sync_merging_relid;
	int			rc;

	sync_merging_relid = t->relid;
	PG_TRY();
	{
		rc = execute_cached(sql, argtypes, values, false);
	}
	PG_FINALLY();
	{
		sync_merging_relid = saved;
	}
	PG_END_TRY();
	if (rc != expected)
		elog(ERROR, "writing the merged row failed: %s", SPI_result_code_string(rc));
	return SPI_processed;
}

/*
 * Upsert stamps (or a tombstone) of the row named by pk, as the shadow's
 * owner, for the current tenant.
 */
static void
write_shadow(SyncTable *t, Jsonb *pk, Jsonb *json, bool tombstone)
{
	SPIPlanPtr *plan = tombstone ? &t->bury_plan : &t->write_plan;
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};
	bool		tenant_null;
	Oid			saved_user;
	int			saved_context;
	int			rc;
	bool		tenant_column = t->tenant_attnum && !t->tenant_in_pk;

	sync_become_owner(t, &saved_user, &saved_context);
	if (*plan == NULL)
	{
		Oid			argtypes[3] = {JSONBOID, JSONBOID, UUIDOID};
		const char *tcol = tenant_column ?
		quote_identifier(get_attname(t->relid, t->tenant_attnum, false)) : NULL;

		*plan = sync_keep_plan(psprintf("INSERT INTO %s AS s (%s%s%s, %s)"
										" SELECT %s%s, $2 FROM pg_catalog.jsonb_to_record($1) AS r(%s)"
										" ON CONFLICT (%s) DO UPDATE SET %s",
										t->shadow_name, t->pk_list,
										tcol ? ", " : "", tcol ? tcol : "",
										tombstone ? "tombstone" : "meta",
										t->pk_list, tcol ? ", $3" : "", t->pk_recdef, t->pk_list,
										tombstone ? "tombstone = domi._sync_later_stamp(s.tombstone, EXCLUDED.tombstone), meta = '{}'" SYNC_FEED_RESTAMP :
										"meta = s.meta OPERATOR(pg_catalog.||) EXCLUDED.meta, tombstone = NULL" SYNC_FEED_RESTAMP),
							   tenant_column ? 3 : 2, argtypes);
	}
	values[0] = JsonbPGetDatum(pk);
	values[1] = JsonbPGetDatum(json);
	values[2] = sync_current_tenant_datum(&tenant_null);
	if (tenant_null)
		nulls[2] = 'n';
	rc = SPI_execute_plan(*plan, values, nulls, false, 0);
	sync_restore_user(saved_user, saved_context);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "writing field stamps failed: %s", SPI_result_code_string(rc));
}

static Jsonb *
stamp_jsonb(const char *column, const SyncStamp *stamp, bool inner)
{
	StringInfoData buf;
	Datum		object;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	sync_stamp_json(&buf, column, stamp);
	appendStringInfoChar(&buf, '}');
	object = DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data));
	if (inner)
		return DatumGetJsonbP(DirectFunctionCall2(jsonb_object_field, object,
												  CStringGetTextDatum(column)));
	return DatumGetJsonbP(object);
}

static void
record_conflict(SyncTable *t, Jsonb *pk, const char *column, const SyncStamp *winner,
				const SyncStamp *loser, Jsonb *loser_value)
{
	Oid			argtypes[6] = {OIDOID, JSONBOID, TEXTOID, JSONBOID, JSONBOID, JSONBOID};
	Datum		values[6];
	Oid			saved_user;
	int			saved_context;
	int			rc;

	values[0] = ObjectIdGetDatum(t->relid);
	values[1] = JsonbPGetDatum(pk);
	values[2] = CStringGetTextDatum(column);
	values[3] = JsonbPGetDatum(stamp_jsonb(column, winner, true));
	values[4] = JsonbPGetDatum(stamp_jsonb(column, loser, true));
	values[5] = JsonbPGetDatum(loser_value);
	sync_become_owner(t, &saved_user, &saved_context);
	rc = SPI_execute_with_args("INSERT INTO domi.sync_conflict_log"
							   " (tbl, tenant_id, pk, column_name, winner, loser, loser_value)"
							   " VALUES ($1::pg_catalog.oid::pg_catalog.regclass, domi.current_tenant(),"
							   " $2, $3::pg_catalog.name, $4, $5, $6)",
							   6, argtypes, values, NULL, false, 0);
	sync_restore_user(saved_user, saved_context);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "recording a sync conflict failed: %s", SPI_result_code_string(rc));
}

/* ----------------------------------------------------------------------
 * One change
 * ----------------------------------------------------------------------
 */

/* The stored stamp of column in meta; false when there is none. */
static bool
stored_stamp(Jsonb *meta, const char *column, SyncStamp *stamp)
{
	JsonbValue *v;

	if (meta == NULL)
		return false;
	v = getKeyJsonValueFromContainer(&meta->root, column, strlen(column), NULL);
	if (v == NULL)
		return false;
	sync_parse_stamp(v, column, stamp);
	return true;
}

/* Apply one incoming change (row + meta) to the table.  Inside SPI. */
static void
merge_one(SyncTable *t, Jsonb *row, Jsonb *meta, bool hydration, MergeTally *tally)
{
	IncomingField *fields;
	int			nfields = 0,
				ntaken = 0,
				i;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	StringInfoData alldefs,
				takendefs,
				set,
				cols,
				taken_meta;
	AttrNumber	tenant_given = InvalidAttrNumber;
	Jsonb	   *pk,
			   *norm,
			   *cur,
			   *stored,
			   *tombstone;

	if (row == NULL || !JB_ROOT_IS_OBJECT(row) || JB_ROOT_IS_SCALAR(row))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("row must be a JSON object")));
	if (meta == NULL || !JB_ROOT_IS_OBJECT(meta) || JB_ROOT_IS_SCALAR(meta))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("meta must be a JSON object")));
	pk = pk_of_row(t, row);

	/* The fields: every key of row that is not the key or the tenant. */
	fields = palloc0(sizeof(IncomingField) * JsonContainerSize(&row->root));
	initStringInfo(&alldefs);
	it = JsonbIteratorInit(&row->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *name;
		AttrNumber	attnum;

		if (tok != WJB_KEY)
			continue;
		name = pnstrdup(v.val.string.val, v.val.string.len);
		attnum = row_column(t, name);
		append_column_def(&alldefs, t->relid, attnum);
		if (is_pk(t, attnum))
			continue;
		if (attnum == t->tenant_attnum)
		{
			tenant_given = attnum;
			continue;
		}
		fields[nfields].name = name;
		fields[nfields].attnum = attnum;
		sync_parse_stamp(getKeyJsonValueFromContainer(&meta->root, name, strlen(name), NULL),
					name, &fields[nfields].stamp);
		nfields++;
	}
	/* Every stamp must belong to a field of the row. */
	it = JsonbIteratorInit(&meta->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		bool		known = false;

		if (tok != WJB_KEY)
			continue;
		for (i = 0; i < nfields && !known; i++)
			known = strlen(fields[i].name) == v.val.string.len &&
				memcmp(fields[i].name, v.val.string.val, v.val.string.len) == 0;
		if (!known)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("meta has a stamp for \"%s\", which is not a field of the row",
							pnstrdup(v.val.string.val, v.val.string.len))));
	}

	norm = normalized_row(t, row, alldefs.data);
	cur = current_row(t, pk);
	stored = sync_read_meta(t, pk, true, &tombstone);

	/* A tombstone is final: nothing of this change applies. */
	if (cur == NULL && tombstone != NULL)
	{
		for (i = 0; i < nfields; i++)
			append_name(&tally->rejected, &tally->nrejected, fields[i].name);
		return;
	}

	initStringInfo(&taken_meta);
	appendStringInfoChar(&taken_meta, '{');
	for (i = 0; i < nfields; i++)
	{
		IncomingField *f = &fields[i];
		SyncStamp	old = {0};
		int			cmp;
		Jsonb	   *newval = field_value(norm, f->name);
		Jsonb	   *oldval = NULL;

		if (cur == NULL || !stored_stamp(stored, f->name, &old))
			cmp = 1;
		else
		{
			cmp = sync_compare_stamps(&f->stamp, &old);
			oldval = field_value(cur, f->name);
			if (cmp == 0)
				cmp = compare_values(newval, oldval);
			/* the origin last, so that equal writes of two pipelines agree too */
			if (cmp == 0)
				cmp = strcmp(f->stamp.origin, old.origin);
		}

		if (cmp > 0)
		{
			f->taken = true;
			if (ntaken++ > 0)
				appendStringInfoString(&taken_meta, ", ");
			sync_stamp_json(&taken_meta, f->name, &f->stamp);
			append_name(&tally->applied, &tally->napplied, f->name);
			if (oldval != NULL && !hydration &&
				strcmp(old.origin, SYNC_ORIGIN_USER) == 0 &&
				strcmp(old.client, f->stamp.client) != 0 &&
				compare_values(newval, oldval) != 0)
			{
				record_conflict(t, pk, f->name, &f->stamp, &old, oldval);
				tally->nconflicts++;
			}
		}
		else if (cmp < 0)
			append_name(&tally->rejected, &tally->nrejected, f->name);
		else
			tally->nunchanged++;
	}
	appendStringInfoChar(&taken_meta, '}');
	if (ntaken == 0 && cur != NULL)
		return;

	/* Write the taken fields, as the caller, under row level security. */
	initStringInfo(&takendefs);
	initStringInfo(&set);
	initStringInfo(&cols);
	appendStringInfoString(&takendefs, t->pk_recdef);
	appendStringInfoString(&cols, t->pk_list);
	if (cur == NULL && tenant_given != InvalidAttrNumber)
	{
		append_column_def(&takendefs, t->relid, tenant_given);
		appendStringInfo(&cols, ", %s", quote_identifier(get_attname(t->relid, tenant_given, false)));
	}
	for (i = 0; i < nfields; i++)
	{
		const char *name = quote_identifier(fields[i].name);

		if (!fields[i].taken)
			continue;
		append_column_def(&takendefs, t->relid, fields[i].attnum);
		appendStringInfo(&set, "%s%s = r.%s", set.len ? ", " : "", name, name);
		appendStringInfo(&cols, ", %s", name);
	}
	if (cur != NULL)
	{
		if (write_table(t, psprintf("UPDATE %s AS s SET %s FROM pg_catalog.jsonb_to_record($1) AS r(%s)"
									" WHERE %s", t->table_name, set.data, takendefs.data, t->pk_match),
						row, SPI_OK_UPDATE) != 1)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("row of table \"%s\" could not be updated", get_rel_name(t->relid)),
					 errdetail("Row level security let the row be read but not updated.")));
	}
	else
	{
		write_table(t, psprintf("INSERT INTO %s (%s) SELECT %s FROM pg_catalog.jsonb_to_record($1) AS r(%s)",
								t->table_name, cols.data, cols.data, takendefs.data),
					row, SPI_OK_INSERT);
		tally->ninserted++;
	}
	write_shadow(t, pk, DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(taken_meta.data))),
				 false);
}

/* Delete the row named by pk, with the tombstone stamp.  Inside SPI. */
static bool
merge_delete_one(SyncTable *t, Jsonb *pk, JsonbValue *stamp_value)
{
	SyncStamp	stamp;
	Jsonb	   *cur,
			   *tombstone;
	bool		deleted = false;

	if (pk == NULL || !JB_ROOT_IS_OBJECT(pk) || JB_ROOT_IS_SCALAR(pk))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("primary key must be a JSON object")));
	pk = pk_of_row(t, pk);
	sync_parse_stamp(stamp_value, "deleted", &stamp);
	cur = current_row(t, pk);
	(void) sync_read_meta(t, pk, true, &tombstone);
	if (cur != NULL)
	{
		write_table(t, psprintf("DELETE FROM %s AS s USING pg_catalog.jsonb_to_record($1) AS r(%s) WHERE %s",
								t->table_name, t->pk_recdef, t->pk_match),
					pk, SPI_OK_DELETE);
		deleted = SPI_processed > 0;
	}
	write_shadow(t, pk, stamp_jsonb("deleted", &stamp, true), true);
	return deleted;
}

/* ----------------------------------------------------------------------
 * SQL entry points
 * ----------------------------------------------------------------------
 */

static Jsonb *
tally_result(MergeTally *tally, bool lists)
{
	StringInfoData buf;

	initStringInfo(&buf);
	if (lists)
		appendStringInfo(&buf, "{\"applied\": [%s], \"rejected\": [%s], ",
						 tally->applied.data, tally->rejected.data);
	else
		appendStringInfo(&buf, "{\"applied\": %d, \"rejected\": %d, ",
						 tally->napplied, tally->nrejected);
	appendStringInfo(&buf, "\"unchanged\": %d, \"conflicts\": %d, \"inserted\": %d, \"deleted\": %d}",
					 tally->nunchanged, tally->nconflicts, tally->ninserted, tally->ndeleted);
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data)));
}

static SyncTable *
merge_table(FunctionCallInfo fcinfo)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("table must not be null")));
	return sync_table(PG_GETARG_OID(0), false);
}

static Jsonb *
finish_result(Jsonb *result, MemoryContext caller)
{
	MemoryContext spi = MemoryContextSwitchTo(caller);
	Jsonb	   *copy = DatumGetJsonbPCopy(JsonbPGetDatum(result));

	MemoryContextSwitchTo(spi);
	SPI_finish();
	return copy;
}

/* domi.merge(tbl, row, meta, initial_hydration) */
Datum
domi_sync_merge(PG_FUNCTION_ARGS)
{
	SyncTable  *t = merge_table(fcinfo);
	MemoryContext caller = CurrentMemoryContext;
	MergeTally	tally;

	memset(&tally, 0, sizeof(tally));
	initStringInfo(&tally.applied);
	initStringInfo(&tally.rejected);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	merge_one(t, PG_ARGISNULL(1) ? NULL : PG_GETARG_JSONB_P(1),
			  PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2),
			  !PG_ARGISNULL(3) && PG_GETARG_BOOL(3), &tally);
	PG_RETURN_JSONB_P(finish_result(tally_result(&tally, true), caller));
}

/*
 * domi.merge_batch(tbl, changes, initial_hydration): changes is an array of
 * {"row": ..., "meta": ...} and {"pk": ..., "deleted": <stamp>}; the counts.
 */
Datum
domi_sync_merge_batch(PG_FUNCTION_ARGS)
{
	SyncTable  *t = merge_table(fcinfo);
	Jsonb	   *changes;
	bool		hydration = !PG_ARGISNULL(2) && PG_GETARG_BOOL(2);
	MemoryContext per_change;
	MergeTally	tally;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			n = 0;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("changes must not be null")));
	changes = PG_GETARG_JSONB_P(1);
	if (!JB_ROOT_IS_ARRAY(changes) || JB_ROOT_IS_SCALAR(changes))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("changes must be a JSON array")));
	memset(&tally, 0, sizeof(tally));	/* counts only, no lists */
	per_change = AllocSetContextCreate(CurrentMemoryContext, "domi merge batch", ALLOCSET_DEFAULT_SIZES);
	it = JsonbIteratorInit(&changes->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		MemoryContext old;
		JsonbContainer *change;
		JsonbValue *row,
				   *meta,
				   *pk,
				   *deleted;

		if (tok != WJB_ELEM)
			continue;
		n++;
		if (v.type != jbvBinary || !JsonContainerIsObject(v.val.binary.data))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("change %d is not a JSON object", n)));
		change = v.val.binary.data;

		/*
		 * One SPI connection per change: each SPI call returns to SPI's
		 * own context, which only SPI_finish frees, so a connection held
		 * over the whole batch grew by every change's allocations.
		 */
		old = MemoryContextSwitchTo(per_change);
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		row = getKeyJsonValueFromContainer(change, "row", 3, NULL);
		meta = getKeyJsonValueFromContainer(change, "meta", 4, NULL);
		pk = getKeyJsonValueFromContainer(change, "pk", 2, NULL);
		deleted = getKeyJsonValueFromContainer(change, "deleted", 7, NULL);
		if (row != NULL && meta != NULL && pk == NULL && deleted == NULL)
			merge_one(t, JsonbValueToJsonb(row), JsonbValueToJsonb(meta), hydration, &tally);
		else if (pk != NULL && deleted != NULL && row == NULL && meta == NULL)
		{
			if (merge_delete_one(t, JsonbValueToJsonb(pk), deleted))
				tally.ndeleted++;
		}
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("change %d is neither {\"row\", \"meta\"} nor {\"pk\", \"deleted\"}", n)));
		SPI_finish();
		MemoryContextSwitchTo(old);
		MemoryContextReset(per_change);
	}
	MemoryContextDelete(per_change);
	PG_RETURN_JSONB_P(tally_result(&tally, false));
}

/* domi.merge_delete(tbl, pk, stamp): true when a row was deleted. */
Datum
domi_sync_merge_delete(PG_FUNCTION_ARGS)
{
	SyncTable  *t = merge_table(fcinfo);
	Jsonb	   *stamp = PG_GETARG_JSONB_P(2);
	JsonbValue	stamp_value;
	bool		deleted;

	stamp_value.type = jbvBinary;
	stamp_value.val.binary.data = &stamp->root;
	stamp_value.val.binary.len = VARSIZE(stamp) - VARHDRSZ;
	if (JB_ROOT_IS_SCALAR(stamp))
		stamp_value.type = jbvNull;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	deleted = merge_delete_one(t, PG_GETARG_JSONB_P(1), &stamp_value);
	SPI_finish();
	PG_RETURN_BOOL(deleted);
}

/*
 * domi.bootstrap_row(tbl, row): insert the row with origin system unless
 * a row with its key exists; true when it inserted.  ON CONFLICT DO
 * NOTHING makes concurrent calls safe: one inserts, the others see it.
 */
Datum
domi_sync_bootstrap_row(PG_FUNCTION_ARGS)
{
	SyncTable  *t = merge_table(fcinfo);
	Jsonb	   *row = PG_GETARG_JSONB_P(1);
	StringInfoData defs,
				cols;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	Oid			argtypes[1] = {JSONBOID};
	Datum		values[1] = {JsonbPGetDatum(row)};
	const char *saved = sync_origin_override;
	int			rc;
	bool		inserted;

	if (!JB_ROOT_IS_OBJECT(row) || JB_ROOT_IS_SCALAR(row))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("row must be a JSON object")));
	(void) pk_of_row(t, row);
	initStringInfo(&defs);
	initStringInfo(&cols);
	it = JsonbIteratorInit(&row->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		AttrNumber	attnum;

		if (tok != WJB_KEY)
			continue;
		attnum = row_column(t, pnstrdup(v.val.string.val, v.val.string.len));
		append_column_def(&defs, t->relid, attnum);
		appendStringInfo(&cols, "%s%s", cols.len ? ", " : "",
						 quote_identifier(get_attname(t->relid, attnum, false)));
	}
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	sync_origin_override = "system";
	PG_TRY();
	{
		rc = SPI_execute_with_args(psprintf("INSERT INTO %s (%s) SELECT %s FROM pg_catalog.jsonb_to_record($1) AS r(%s)"
											" ON CONFLICT DO NOTHING",
											t->table_name, cols.data, cols.data, defs.data),
								   1, argtypes, values, NULL, false, 0);
	}
	PG_FINALLY();
	{
		sync_origin_override = saved;
	}
	PG_END_TRY();
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "inserting the bootstrap row failed: %s", SPI_result_code_string(rc));
	inserted = SPI_processed > 0;
	SPI_finish();
	PG_RETURN_BOOL(inserted);
}
