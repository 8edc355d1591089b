/*
 * sync_feed.c
 *		Field-level sync: the change feed (domi.changes) and the purge of
 *		old tombstones (domi.purge_tombstones).
 *
 * Every write of a shadow row records the writing transaction's xid8 and a
 * new number of the shadow's own sequence (xid, seq).  The feed returns
 * shadow rows in (xid, seq) order, after the caller's cursor, and only
 * those whose xid is below the xmin of the reader's snapshot: every
 * transaction below it has ended, and every transaction that ends later
 * has (or will get) an xid at or above it.  So once a cursor (x, s) was
 * handed out, no committed change can ever appear below it: a cursor never
 * skips a commit, whatever order the writers commit in.  The price is
 * latency: a change is sent only once every transaction that was running
 * (with an xid, in any database of the cluster) when it committed has
 * ended too; one long transaction holds the feed back, never loses it.
 *
 * One shadow row per primary key, so a row changed a million times comes
 * once, with its latest fields.  The values come from the user's table,
 * read as the caller under its row level security, in the same snapshot
 * as the shadow rows.
 *
 * The cursor is opaque text: a version, the (xid, seq), and a 64-bit
 * checksum over them and the table's oid and the tenant.  It is not a MAC:
 * it catches a cursor that was cut, altered by hand, or belongs to another
 * table or tenant; someone who knows the scheme can make a valid one, and
 * gets nothing from it: the feed shows the current tenant's rows only,
 * whatever the cursor says.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/transam.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/uuid.h"
#include "utils/xid8.h"

#include "domi.h"
#include "sync.h"

PG_FUNCTION_INFO_V1(domi_sync_changes);
PG_FUNCTION_INFO_V1(domi_sync_purge_tombstones);

/* SQLSTATE DMRSY: the cursor is older than the purge horizon. */
#define ERRCODE_DOMI_RESYNC_NEEDED MAKE_SQLSTATE('D','M','R','S','Y')

#define CURSOR_VERSION 1
#define CURSOR_BYTES 25			/* version, xid, seq, checksum */
#define CURSOR_SEED UINT64CONST(0x646f6d6966656564)

/* A position in a table's feed. */
typedef struct FeedPos
{
	uint64		xid;
	int64		seq;
} FeedPos;

/* One shadow row the feed will send. */
typedef struct FeedEntry
{
	FeedPos		pos;
	Jsonb	   *pk;
	Jsonb	   *meta;			/* the stamps to send (filtered) */
	Jsonb	   *tombstone;
	Jsonb	   *row;			/* the table's row, as the caller sees it */
} FeedEntry;

/* ----------------------------------------------------------------------
 * Cursors
 * ----------------------------------------------------------------------
 */

static void
put_u64(unsigned char *p, uint64 v)
{
	int			i;

	for (i = 7; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char) (v & 0xff);
}

static uint64
get_u64(const unsigned char *p)
{
	uint64		v = 0;
	int			i;

	for (i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

/* The checksum binds a position to the table and the tenant. */
static uint64
cursor_check(Oid relid, const pg_uuid_t *tenant, const unsigned char *pos16)
{
	unsigned char buf[4 + UUID_LEN + 16];

	memset(buf, 0, sizeof(buf));
	buf[0] = (relid >> 24) & 0xff;
	buf[1] = (relid >> 16) & 0xff;
	buf[2] = (relid >> 8) & 0xff;
	buf[3] = relid & 0xff;
	if (tenant)
		memcpy(buf + 4, tenant->data, UUID_LEN);
	memcpy(buf + 4 + UUID_LEN, pos16, 16);
	return hash_bytes_extended(buf, sizeof(buf), CURSOR_SEED);
}

static char *
encode_cursor(Oid relid, const pg_uuid_t *tenant, FeedPos pos)
{
	unsigned char raw[CURSOR_BYTES];
	static const char hex[] = "0123456789abcdef";
	char	   *out = palloc(CURSOR_BYTES * 2 + 1);
	int			i;

	raw[0] = CURSOR_VERSION;
	put_u64(raw + 1, pos.xid);
	put_u64(raw + 9, (uint64) pos.seq);
	put_u64(raw + 17, cursor_check(relid, tenant, raw + 1));
	for (i = 0; i < CURSOR_BYTES; i++)
	{
		out[2 * i] = hex[raw[i] >> 4];
		out[2 * i + 1] = hex[raw[i] & 0xf];
	}
	out[CURSOR_BYTES * 2] = '\0';
	return out;
}

static int
hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static void
decode_cursor(const char *text, Oid relid, const pg_uuid_t *tenant, FeedPos *pos)
{
	unsigned char raw[CURSOR_BYTES];
	int			i;

	if (strlen(text) != CURSOR_BYTES * 2)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid change feed cursor"),
				 errdetail("A cursor is the text domi.changes() returned in its column \"cursor\".")));
	for (i = 0; i < CURSOR_BYTES; i++)
	{
		int			hi = hex_value(text[2 * i]),
					lo = hex_value(text[2 * i + 1]);

		if (hi < 0 || lo < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid change feed cursor"),
					 errdetail("A cursor is the text domi.changes() returned in its column \"cursor\".")));
		raw[i] = (unsigned char) (hi << 4 | lo);
	}
	if (raw[0] != CURSOR_VERSION)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid change feed cursor"),
				 errdetail("The cursor has an unrecognized version %d.", raw[0])));
	if (get_u64(raw + 17) != cursor_check(relid, tenant, raw + 1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("change feed cursor does not belong to table \"%s\"%s",
						get_rel_name(relid), tenant ? " and the current tenant" : ""),
				 errdetail("The cursor was made for another table or tenant, or was altered.")));
	pos->xid = get_u64(raw + 1);
	pos->seq = (int64) get_u64(raw + 9);

	/* checksummed, but naming a transaction that never ran here */
	if (pos->xid >= U64FromFullTransactionId(ReadNextFullTransactionId()) || pos->seq < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid change feed cursor"),
				 errdetail("The cursor names a transaction that has not run on this server.")));
}

/* ----------------------------------------------------------------------
 * Reading the shadow and the table
 * ----------------------------------------------------------------------
 */

/* The purge horizon of the table's feed; false when nothing was purged. */
static bool
feed_horizon(SyncTable *t, FeedPos *horizon)
{
	Oid			argtypes[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(t->relid)};
	bool		isnull1,
				isnull2;
	Datum		x,
				s;
	int			rc;

	static SPIPlanPtr plan = NULL;

	/* planned once per backend: planning cost more than the lookup */
	if (plan == NULL)
		plan = sync_keep_plan("SELECT s.feed_horizon_xid, s.feed_horizon_seq FROM domi.sync_tables s"
							  " WHERE s.tbl::pg_catalog.oid OPERATOR(pg_catalog.=) $1",
							  1, argtypes);
	rc = SPI_execute_plan(plan, values, NULL, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "reading the change feed horizon failed: %s", SPI_result_code_string(rc));
	if (SPI_processed != 1)
		return false;
	x = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull1);
	s = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull2);
	if (isnull1 || isnull2)
		return false;
	horizon->xid = U64FromFullTransactionId(DatumGetFullTransactionId(x));
	horizon->seq = DatumGetInt64(s);
	return true;
}

static int
compare_pos(FeedPos a, FeedPos b)
{
	if (a.xid != b.xid)
		return a.xid < b.xid ? -1 : 1;
	if (a.seq != b.seq)
		return a.seq < b.seq ? -1 : 1;
	return 0;
}

/*
 * The next shadow rows after pos, as the owner: (xid, seq) > pos and xid
 * below the snapshot's xmin, in that order, by the (tenant, xid, seq)
 * index.  read_only: the statement's snapshot, the same for every chunk
 * and for the table's rows read afterwards.
 */
static SPIPlanPtr feed_plan_for(SyncTable *t);

typedef struct FeedPlanCache
{
	Oid			relid;
	char	   *names;			/* every name the plans' SQL holds */
	SPIPlanPtr	scan;
	SPIPlanPtr	rows;
} FeedPlanCache;

/* Plans per table, by relid; a renamed table or key column replans. */
static FeedPlanCache *feed_plans = NULL;
static int	nfeed_plans = 0;
static int	max_feed_plans = 0;

static FeedPlanCache *
feed_cache(SyncTable *t)
{
	int			i;
	FeedPlanCache *c = NULL;
	char	   *names = psprintf("%s|%s|%s|%s|%s|%d", t->shadow_name, t->table_name, t->pk_object,
								 t->pk_recdef, t->pk_match, t->tenant_attnum);

	for (i = 0; i < nfeed_plans && c == NULL; i++)
		if (feed_plans[i].relid == t->relid)
			c = &feed_plans[i];
	if (c != NULL && strcmp(c->names, names) == 0)
		return c;
	if (c == NULL)
	{
		if (nfeed_plans == max_feed_plans)
		{
			max_feed_plans = max_feed_plans ? max_feed_plans * 2 : 8;
			feed_plans = feed_plans ?
				repalloc(feed_plans, sizeof(FeedPlanCache) * max_feed_plans) :
				MemoryContextAlloc(TopMemoryContext, sizeof(FeedPlanCache) * max_feed_plans);
		}
		c = &feed_plans[nfeed_plans++];
		c->relid = t->relid;
	}
	/* stale plans are left behind, as sync.c leaves them: DDL is rare */
	c->names = MemoryContextStrdup(TopMemoryContext, names);
	c->scan = c->rows = NULL;
	return c;
}

static SPIPlanPtr
feed_plan_for(SyncTable *t)
{
	FeedPlanCache *c = feed_cache(t);

	if (c->scan == NULL)
	{
		Oid			argtypes[4] = {XID8OID, INT8OID, INT4OID, UUIDOID};
		const char *tcol = t->tenant_attnum ?
		quote_identifier(get_attname(t->relid, t->tenant_attnum, false)) : NULL;

		c->scan = sync_keep_generic_plan(psprintf("SELECT %s, s.meta, s.tombstone, s.xid, s.seq FROM %s s"
										  " WHERE (s.xid, s.seq) OPERATOR(pg_catalog.>) ($1, $2)"
										  " AND s.xid OPERATOR(pg_catalog.<) pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot())"
										  "%s%s%s"
										  " ORDER BY s.xid, s.seq LIMIT $3",
										  t->pk_object, t->shadow_name,
										  tcol ? " AND s." : "", tcol ? tcol : "",
										  tcol ? " OPERATOR(pg_catalog.=) $4" : ""),
								 tcol ? 4 : 3, argtypes);
	}
	return c->scan;
}

/*
 * The table's rows for a JSON array of primary key objects, as the caller:
 * (ordinal, row as jsonb).  One statement per page.
 */
static SPIPlanPtr
rows_plan_for(SyncTable *t)
{
	FeedPlanCache *c = feed_cache(t);

	if (c->rows == NULL)
	{
		Oid			argtypes[1] = {JSONBOID};

		/*
		 * A lateral lookup per key: one primary key index probe each,
		 * whatever the planner guesses for the size of the array (a hash
		 * join would read the whole table for every page).
		 */
		c->rows = sync_keep_generic_plan(psprintf("SELECT r.domi_ord__, x.row FROM"
										  " ROWS FROM (pg_catalog.jsonb_to_recordset($1) AS (%s))"
										  " WITH ORDINALITY AS r(%s, domi_ord__),"
										  " LATERAL (SELECT pg_catalog.to_jsonb(s) AS row FROM %s s"
										  " WHERE %s LIMIT 1) x",
										  t->pk_recdef, t->pk_list, t->table_name, t->pk_match),
								 1, argtypes);
	}
	return c->rows;
}

/* Did client write every field of meta (or the tombstone)? */
static bool
stamp_by(JsonbValue *stamp, const char *client)
{
	JsonbValue *v;

	if (stamp->type != jbvBinary || !JsonContainerIsObject(stamp->val.binary.data))
		return false;
	v = getKeyJsonValueFromContainer(stamp->val.binary.data, "client", 6, NULL);
	return v != NULL && v->type == jbvString &&
		v->val.string.len == strlen(client) &&
		memcmp(v->val.string.val, client, v->val.string.len) == 0;
}

/*
 * The stamps of meta not written by client (all when client is NULL);
 * NULL when none is left.
 */
static Jsonb *
stamps_except(Jsonb *meta, const char *client)
{
	JsonbParseState *state = NULL;
	JsonbIterator *it;
	JsonbValue	k,
				v;
	JsonbIteratorToken tok;
	JsonbValue *result;
	int			kept = 0;

	if (client == NULL)
		return meta;
	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	it = JsonbIteratorInit(&meta->root);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		if (tok != WJB_KEY)
			continue;
		tok = JsonbIteratorNext(&it, &v, true);
		if (stamp_by(&v, client))
			continue;
		pushJsonbValue(&state, WJB_KEY, &k);
		pushJsonbValue(&state, WJB_VALUE, &v);
		kept++;
	}
	result = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	return kept ? JsonbValueToJsonb(result) : NULL;
}

/* The fields of row that meta stamps, as one object. */
static Jsonb *
fields_of(Jsonb *row, Jsonb *meta)
{
	JsonbParseState *state = NULL;
	JsonbIterator *it;
	JsonbValue	k,
				v;
	JsonbIteratorToken tok;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	it = JsonbIteratorInit(&meta->root);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		JsonbValue *value;
		JsonbValue	null;

		if (tok != WJB_KEY)
			continue;
		(void) JsonbIteratorNext(&it, &v, true);
		value = getKeyJsonValueFromContainer(&row->root, k.val.string.val, k.val.string.len, NULL);
		if (value == NULL)
		{
			/* a stamp of a dropped column: no value to send */
			null.type = jbvNull;
			value = &null;
		}
		pushJsonbValue(&state, WJB_KEY, &k);
		pushJsonbValue(&state, WJB_VALUE, value);
	}
	return JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL));
}

/* Attach the table's rows to the live entries, as the caller. */
static void
fetch_rows(SyncTable *t, FeedEntry *entries, int n)
{
	JsonbParseState *state = NULL;
	JsonbValue	elem;
	Datum		values[1];
	int			i,
				live = 0,
				rc;
	int		   *index = palloc(sizeof(int) * (n + 1));
	uint64		r;

	pushJsonbValue(&state, WJB_BEGIN_ARRAY, NULL);
	for (i = 0; i < n; i++)
	{
		if (entries[i].tombstone != NULL)
			continue;
		elem.type = jbvBinary;
		elem.val.binary.data = &entries[i].pk->root;
		elem.val.binary.len = VARSIZE(entries[i].pk) - VARHDRSZ;
		pushJsonbValue(&state, WJB_ELEM, &elem);
		index[++live] = i;		/* ordinals count from 1 */
	}
	if (live == 0)
		return;
	values[0] = JsonbPGetDatum(JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_ARRAY, NULL)));
	rc = SPI_execute_plan(rows_plan_for(t), values, NULL, true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "reading the changed rows failed: %s", SPI_result_code_string(rc));
	for (r = 0; r < SPI_processed; r++)
	{
		bool		isnull;
		int64		ord = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull));
		Datum		row = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2, &isnull);

		if (ord < 1 || ord > live)
			elog(ERROR, "changed row out of range");
		entries[index[ord]].row = DatumGetJsonbP(row);
	}
}

/* ----------------------------------------------------------------------
 * domi.changes(tbl, since, max_rows, except_client)
 * ----------------------------------------------------------------------
 */

/* With except_client, how many shadow rows one call reads at most. */
static int64
scan_bound(int32 max_rows)
{
	return (int64) max_rows * 10 + 1000;
}

Datum
domi_sync_changes(PG_FUNCTION_ARGS)
{
	Oid			relid;
	SyncTable  *t;
	int32		max_rows;
	const char *except = NULL;
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	bool		tenant_null = true;
	Datum		tenant = (Datum) 0;
	pg_uuid_t  *tenant_uuid = NULL;
	FeedPos		pos = {0, 0},
				horizon,
				last_scanned = {0, 0};
	bool		scanned_any = false;
	FeedEntry  *entries;
	int			nentries = 0,
				maxentries,
				i;
	int64		scanned = 0;
	Oid			saved_user;
	int			saved_context;
	bool		more = true;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("table must not be null")));
	if (PG_ARGISNULL(2) || PG_GETARG_INT32(2) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_rows must be zero or more")));
	relid = PG_GETARG_OID(0);
	max_rows = PG_GETARG_INT32(2);
	if (!PG_ARGISNULL(3))
		except = text_to_cstring(PG_GETARG_TEXT_PP(3));
	t = sync_table(relid, false);
	if (pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s", get_rel_name(relid))));
	if (t->tenant_attnum)
	{
		tenant = sync_current_tenant_datum(&tenant_null);
		if (!tenant_null)
			tenant_uuid = DatumGetUUIDP(tenant);
	}
	if (!PG_ARGISNULL(1))
		decode_cursor(text_to_cstring(PG_GETARG_TEXT_PP(1)), relid, tenant_uuid, &pos);

	InitMaterializedSRF(fcinfo, 0);
	/* a tenant-isolated table and no tenant: no tenant's changes */
	if (max_rows == 0 || (t->tenant_attnum && tenant_null))
		return (Datum) 0;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (!PG_ARGISNULL(1) && feed_horizon(t, &horizon) && compare_pos(pos, horizon) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_DOMI_RESYNC_NEEDED),
				 errmsg("change feed cursor of table \"%s\" is older than its purge horizon",
						get_rel_name(relid)),
				 errdetail("Deletes after this cursor were purged, or the table was truncated."),
				 errhint("Resync from scratch: drop the local copy and call domi.changes() with since = NULL.")));

	maxentries = Min(max_rows, 1024);
	entries = palloc(sizeof(FeedEntry) * maxentries);
	while (more && nentries < max_rows)
	{
		Datum		values[4];
		char		nulls[4] = {' ', ' ', ' ', ' '};
		int32		chunk = except ? Max(max_rows - nentries, 100) : max_rows - nentries;
		uint64		r;
		int			rc;

		values[0] = FullTransactionIdGetDatum(FullTransactionIdFromU64(pos.xid));
		values[1] = Int64GetDatum(pos.seq);
		values[2] = Int32GetDatum(chunk);
		values[3] = tenant;
		sync_become_owner(t, &saved_user, &saved_context);
		rc = SPI_execute_plan(feed_plan_for(t), values, nulls, true, 0);
		sync_restore_user(saved_user, saved_context);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "reading the change feed failed: %s", SPI_result_code_string(rc));
		more = SPI_processed == (uint64) chunk;
		for (r = 0; r < SPI_processed && nentries < max_rows; r++)
		{
			HeapTuple	tup = SPI_tuptable->vals[r];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			bool		isnull;
			FeedEntry  *e;
			Datum		d;

			if (nentries == maxentries)
			{
				maxentries = Min((int64) maxentries * 2, max_rows);
				entries = repalloc(entries, sizeof(FeedEntry) * maxentries);
			}
			e = &entries[nentries];

			pos.xid = U64FromFullTransactionId(DatumGetFullTransactionId(SPI_getbinval(tup, desc, 4, &isnull)));
			pos.seq = DatumGetInt64(SPI_getbinval(tup, desc, 5, &isnull));
			last_scanned = pos;
			scanned_any = true;
			scanned++;
			memset(e, 0, sizeof(*e));
			e->pos = pos;
			e->pk = DatumGetJsonbP(SPI_getbinval(tup, desc, 1, &isnull));
			d = SPI_getbinval(tup, desc, 3, &isnull);
			if (!isnull)
			{
				JsonbValue	stamp;

				e->tombstone = DatumGetJsonbP(d);
				stamp.type = jbvBinary;
				stamp.val.binary.data = &e->tombstone->root;
				stamp.val.binary.len = VARSIZE(e->tombstone) - VARHDRSZ;
				if (except && stamp_by(&stamp, except))
					continue;
			}
			else
			{
				e->meta = stamps_except(DatumGetJsonbP(SPI_getbinval(tup, desc, 2, &isnull)), except);
				if (e->meta == NULL)
					continue;	/* all of it written by that client */
			}
			nentries++;
		}
		if (r < SPI_processed)
			more = true;
		if (scanned >= scan_bound(max_rows))
			break;
	}

	fetch_rows(t, entries, nentries);

	/* The tuplestore copies the values: SPI's memory may hold them till then. */
	{
		FeedPos		last_sent = {0, 0};
		bool		sent_any = false;

		for (i = 0; i < nentries; i++)
		{
			FeedEntry  *e = &entries[i];
			Datum		out[5];
			bool		outnull[5] = {false, false, false, false, false};

			if (e->tombstone == NULL && e->row == NULL)
				continue;		/* the caller may not see it (its policies) */
			out[0] = JsonbPGetDatum(e->pk);
			if (e->tombstone != NULL)
			{
				JsonbParseState *state = NULL;
				JsonbValue	key,
							stamp;

				key.type = jbvString;
				key.val.string.val = "deleted";
				key.val.string.len = 7;
				stamp.type = jbvBinary;
				stamp.val.binary.data = &e->tombstone->root;
				stamp.val.binary.len = VARSIZE(e->tombstone) - VARHDRSZ;
				pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
				pushJsonbValue(&state, WJB_KEY, &key);
				pushJsonbValue(&state, WJB_VALUE, &stamp);
				outnull[1] = true;
				out[2] = JsonbPGetDatum(JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL)));
			}
			else
			{
				out[1] = JsonbPGetDatum(fields_of(e->row, e->meta));
				out[2] = JsonbPGetDatum(e->meta);
			}
			out[3] = BoolGetDatum(e->tombstone != NULL);
			out[4] = CStringGetTextDatum(encode_cursor(relid, tenant_uuid, e->pos));
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, out, outnull);
			last_sent = e->pos;
			sent_any = true;
		}

		/*
		 * Rows were read past the last one sent (the client's own writes,
		 * or rows its policies hide): one more row with only a cursor, so
		 * that the next call starts after them instead of reading them
		 * again.  It takes the place of a row left out, so a page never
		 * has more than max_rows rows.
		 */
		if (scanned_any && (!sent_any || compare_pos(last_sent, last_scanned) < 0))
		{
			Datum		out[5];
			bool		outnull[5] = {true, true, true, true, false};

			out[4] = CStringGetTextDatum(encode_cursor(relid, tenant_uuid, last_scanned));
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, out, outnull);
		}
	}
	SPI_finish();
	return (Datum) 0;
}

/* ----------------------------------------------------------------------
 * domi.purge_tombstones(tbl, older_than)
 * ----------------------------------------------------------------------
 */

static Oid
registry_owner(Oid registry)
{
	HeapTuple	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(registry));
	Oid			owner;

	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for relation %u", registry);
	owner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);
	return owner;
}

/*
 * The caller must own the table; the purge (every tenant's tombstones) is
 * done by domi._purge_tombstones() as the extension owner.
 */
Datum
domi_sync_purge_tombstones(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	SyncTable  *t = sync_table(relid, false);
	Oid			registry = get_relname_relid("sync_tables", get_namespace_oid("domi", false));
	DomiOwnerSpi spi;
	Oid			argtypes[2] = {REGCLASSOID, TIMESTAMPTZOID};
	Datum		values[2] = {ObjectIdGetDatum(relid), PG_GETARG_DATUM(1)};
	bool		isnull;
	int64		purged;
	int			rc;

	(void) t;
	if (!pg_class_ownercheck(relid, GetUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of table %s", get_rel_name(relid))));
	domi_spi_connect_as(registry_owner(registry), &spi);
	rc = SPI_execute_with_args("SELECT domi._purge_tombstones($1, $2)", 2, argtypes, values,
							   NULL, false, 0);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "domi._purge_tombstones failed: %s", SPI_result_code_string(rc));
	purged = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	domi_spi_finish_as(&spi);
	PG_RETURN_INT64(purged);
}
