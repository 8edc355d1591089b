/*
 * sync_stamp.c
 *		Field-level sync: the triggers that stamp each changed field of a
 *		synced table with {at, origin, client}, leave a tombstone for a
 *		delete, and empty the shadow on TRUNCATE.  They write the shadow as
 *		its owner (sync.c).
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

PG_FUNCTION_INFO_V1(domi_sync_stamp);
PG_FUNCTION_INFO_V1(domi_sync_truncate);

/* Was the column changed?  IS DISTINCT FROM, by the type's equality. */
static bool
column_changed(HeapTuple oldtup, HeapTuple newtup, TupleDesc desc, int attnum)
{
	Form_pg_attribute att = TupleDescAttr(desc, attnum - 1);
	bool		oldnull,
				newnull;
	Datum		oldval = heap_getattr(oldtup, attnum, desc, &oldnull);
	Datum		newval = heap_getattr(newtup, attnum, desc, &newnull);
	TypeCacheEntry *type;

	if (oldnull || newnull)
		return oldnull != newnull;
	type = lookup_type_cache(att->atttypid, TYPECACHE_EQ_OPR_FINFO);
	/* json, xml, point...: no equality; then the same bytes mean the same */
	if (!OidIsValid(type->eq_opr_finfo.fn_oid))
		return !datum_image_eq(oldval, newval, att->attbyval, att->attlen);
	return !DatumGetBool(FunctionCall2Coll(&type->eq_opr_finfo, att->attcollation,
										   oldval, newval));
}

static bool
is_pk_column(SyncTable *t, int attnum)
{
	int			i;

	for (i = 0; i < t->npk; i++)
		if (t->pk_attnums[i] == attnum)
			return true;
	return false;
}

/* The fields a stamp applies to: not the key, not the tenant, not generated. */
static bool
is_stamped_column(SyncTable *t, Form_pg_attribute att)
{
	return !att->attisdropped && !att->attgenerated &&
		att->attnum != t->tenant_attnum && !is_pk_column(t, att->attnum);
}

static bool
pk_changed(SyncTable *t, HeapTuple oldtup, HeapTuple newtup, TupleDesc desc)
{
	int			i;

	for (i = 0; i < t->npk; i++)
		if (column_changed(oldtup, newtup, desc, t->pk_attnums[i]))
			return true;
	return false;
}

/* Stamps for the changed fields of newtup (all of them when oldtup is NULL). */
static Jsonb *
changed_fields_meta(SyncTable *t, HeapTuple oldtup, HeapTuple newtup, TupleDesc desc,
					int *nchanged)
{
	StringInfoData buf;
	SyncStamp	stamp;
	int			i;

	stamp.at = GetCurrentStatementStartTimestamp();
	stamp.origin = sync_origin();
	stamp.client = sync_client_id();

	*nchanged = 0;
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	for (i = 1; i <= desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i - 1);

		if (!is_stamped_column(t, att))
			continue;
		if (oldtup != NULL && !column_changed(oldtup, newtup, desc, i))
			continue;
		if ((*nchanged)++ > 0)
			appendStringInfoString(&buf, ", ");
		sync_stamp_json(&buf, NameStr(att->attname), &stamp);
	}
	appendStringInfoChar(&buf, '}');
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data)));
}

/* The prepared upsert of stamps (or of a tombstone) keyed by pk datums. */
static SPIPlanPtr
stamp_plan(SyncTable *t, bool tombstone)
{
	SPIPlanPtr *plan = tombstone ? &t->tombstone_plan : &t->stamp_plan;
	Oid			argtypes[INDEX_MAX_KEYS + 2];
	StringInfoData sql,
				params;
	int			nargs = 0,
				i;

	if (*plan != NULL)
		return *plan;

	initStringInfo(&params);
	for (i = 0; i < t->npk; i++)
	{
		argtypes[nargs++] = t->pk_types[i];
		appendStringInfo(&params, "%s$%d", i ? ", " : "", nargs);
	}
	initStringInfo(&sql);
	appendStringInfo(&sql, "INSERT INTO %s AS s (%s", t->shadow_name, t->pk_list);
	if (t->tenant_attnum && !t->tenant_in_pk)
	{
		argtypes[nargs++] = UUIDOID;
		appendStringInfo(&params, ", $%d", nargs);
		appendStringInfo(&sql, ", %s",
						 quote_identifier(get_attname(t->relid, t->tenant_attnum, false)));
	}
	argtypes[nargs++] = JSONBOID;
	appendStringInfo(&params, ", $%d", nargs);
	if (tombstone)
		appendStringInfo(&sql, ", tombstone) VALUES (%s) ON CONFLICT (%s) DO UPDATE"
						 " SET tombstone = domi._sync_later_stamp(s.tombstone, EXCLUDED.tombstone), meta = '{}'"
						 SYNC_FEED_RESTAMP,
						 params.data, t->pk_list);
	else
		appendStringInfo(&sql, ", meta) VALUES (%s) ON CONFLICT (%s) DO UPDATE"
						 " SET meta = s.meta OPERATOR(pg_catalog.||) EXCLUDED.meta, tombstone = NULL"
						 SYNC_FEED_RESTAMP,
						 params.data, t->pk_list);
	*plan = sync_keep_plan(sql.data, nargs, argtypes);
	return *plan;
}

/* Write stamps or a tombstone for the row tuple, as the shadow's owner. */
static void
write_stamps(SyncTable *t, HeapTuple tuple, TupleDesc desc, Jsonb *json, bool tombstone)
{
	Datum		values[INDEX_MAX_KEYS + 2];
	char		nulls[INDEX_MAX_KEYS + 2];
	int			n = 0,
				i,
				rc;
	bool		isnull;
	Oid			saved_user;
	int			saved_context;
	SPIPlanPtr	plan;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	sync_become_owner(t, &saved_user, &saved_context);
	plan = stamp_plan(t, tombstone);
	for (i = 0; i < t->npk; i++)
	{
		values[n] = heap_getattr(tuple, t->pk_attnums[i], desc, &isnull);
		nulls[n++] = isnull ? 'n' : ' ';
	}
	if (t->tenant_attnum && !t->tenant_in_pk)
	{
		values[n] = heap_getattr(tuple, t->tenant_attnum, desc, &isnull);
		nulls[n++] = isnull ? 'n' : ' ';
	}
	values[n] = JsonbPGetDatum(json);
	nulls[n++] = ' ';

	rc = SPI_execute_plan(plan, values, nulls, false, 0);
	sync_restore_user(saved_user, saved_context);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "writing field stamps failed: %s", SPI_result_code_string(rc));
	SPI_finish();
}

static Jsonb *
tombstone_json(void)
{
	StringInfoData buf;
	SyncStamp	stamp;

	stamp.at = GetCurrentStatementStartTimestamp();
	stamp.origin = sync_origin();
	stamp.client = sync_client_id();
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	sync_stamp_json(&buf, "deleted", &stamp);
	appendStringInfoChar(&buf, '}');
	/* {"deleted": {...}} -> the inner object */
	return DatumGetJsonbP(DirectFunctionCall2(jsonb_object_field,
											  DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data)),
											  CStringGetTextDatum("deleted")));
}

/*
 * AFTER INSERT OR UPDATE OR DELETE FOR EACH ROW: stamp the fields that
 * changed with the statement's clock, domi.origin and domi.client_id; a
 * delete leaves a tombstone.  An update of the primary key is a delete of
 * the old key and an insert of the new one.
 */
Datum
domi_sync_stamp(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Relation	rel;
	TupleDesc	desc;
	SyncTable  *t;
	int			nchanged;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("domi._sync_stamp() must be an AFTER ... FOR EACH ROW trigger")));
	rel = trigdata->tg_relation;
	desc = RelationGetDescr(rel);

	/* domi.merge() writes its own stamps, the incoming ones */
	if (RelationGetRelid(rel) == sync_merging_relid)
		return PointerGetDatum(NULL);
	t = sync_table(RelationGetRelid(rel), false);

	if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		write_stamps(t, trigdata->tg_trigtuple, desc,
					 changed_fields_meta(t, NULL, trigdata->tg_trigtuple, desc, &nchanged), false);
	else if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
		write_stamps(t, trigdata->tg_trigtuple, desc, tombstone_json(), true);
	else if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
	{
		HeapTuple	oldtup = trigdata->tg_trigtuple;
		HeapTuple	newtup = trigdata->tg_newtuple;

		if (pk_changed(t, oldtup, newtup, desc))
		{
			write_stamps(t, oldtup, desc, tombstone_json(), true);
			write_stamps(t, newtup, desc, changed_fields_meta(t, NULL, newtup, desc, &nchanged), false);
		}
		else
		{
			Jsonb	   *meta = changed_fields_meta(t, oldtup, newtup, desc, &nchanged);

			if (nchanged > 0)
				write_stamps(t, newtup, desc, meta, false);
		}
	}
	return PointerGetDatum(NULL);
}

/* AFTER TRUNCATE: the rows are gone, so are their stamps. */
Datum
domi_sync_truncate(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	SyncTable  *t;
	Oid			saved_user;
	int			saved_context;
	int			rc;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("domi._sync_truncate() must be an ON TRUNCATE trigger")));
	t = sync_table(RelationGetRelid(trigdata->tg_relation), false);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	sync_become_owner(t, &saved_user, &saved_context);
	rc = SPI_execute(psprintf("TRUNCATE %s", t->shadow_name), false, 0);
	if (rc != SPI_OK_UTILITY)
		elog(ERROR, "truncating field stamps failed: %s", SPI_result_code_string(rc));

	/*
	 * The tombstones went too: a change feed cursor from before this
	 * transaction would miss the deletes, so it must resync.
	 */
	{
		Oid			argtypes[1] = {OIDOID};
		Datum		values[1] = {ObjectIdGetDatum(t->relid)};

		rc = SPI_execute_with_args("UPDATE domi.sync_tables SET feed_horizon_xid = pg_catalog.pg_current_xact_id(),"
								   " feed_horizon_seq = 0"
								   " WHERE tbl::pg_catalog.oid OPERATOR(pg_catalog.=) $1",
								   1, argtypes, values, NULL, false, 0);
		if (rc != SPI_OK_UPDATE)
			elog(ERROR, "moving the change feed horizon failed: %s", SPI_result_code_string(rc));
	}
	sync_restore_user(saved_user, saved_context);
	SPI_finish();
	return PointerGetDatum(NULL);
}

