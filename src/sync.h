/*
 * sync.h
 *		Field-level sync: what sync.c (registry, stamping, readers) and
 *		sync_merge.c (the merge) share.
 */
#ifndef DOMI_SYNC_H
#define DOMI_SYNC_H

#include "access/attnum.h"
#include "executor/spi.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

/* The four pipelines a write can come from, in domi.origin. */
#define SYNC_ORIGIN_USER "user"

/*
 * Every update of a shadow row moves it to the end of the change feed: the
 * writing transaction's xid and a new number of the shadow's sequence
 * (an insert gets both from the columns' defaults).
 */
#define SYNC_FEED_RESTAMP ", xid = pg_catalog.pg_current_xact_id(), seq = DEFAULT"

/* One field's stamp: when, from which pipeline, from which replica. */
typedef struct SyncStamp
{
	TimestampTz at;
	const char *origin;			/* one of the four, a static string */
	const char *client;
} SyncStamp;

/*
 * A synced table, as the backend caches it.  Names are quoted and
 * schema-qualified, types fully qualified: the SQL built from them runs as
 * the shadow's owner under the caller's search_path and must mean the same
 * whatever that path holds.
 */
typedef struct SyncTable
{
	Oid			relid;			/* hash key */
	bool		valid;
	Oid			shadow;
	Oid			shadow_owner;	/* the extension owner */
	char	   *table_name;
	char	   *shadow_name;
	int			npk;
	AttrNumber	pk_attnums[INDEX_MAX_KEYS];
	Oid			pk_types[INDEX_MAX_KEYS];
	char	  **pk_names;		/* unquoted */
	AttrNumber	tenant_attnum;	/* 0: the table is not tenant-isolated */
	bool		tenant_in_pk;
	char	   *pk_list;		/* a, b */
	char	   *pk_recdef;		/* a pg_catalog.int4, b pg_catalog.text */
	char	   *pk_match;		/* s.a OPERATOR(pg_catalog.=) r.a AND ... */
	char	   *pk_object;		/* pg_catalog.jsonb_build_object('a', s.a, ...) */
	char	   *tenant_filter;	/* AND s.tenant_id OPERATOR(pg_catalog.=) $2, or "" */
	SPIPlanPtr	stamp_plan;		/* trigger: upsert stamps by pk datums */
	SPIPlanPtr	tombstone_plan; /* trigger: a delete's tombstone by pk datums */
	SPIPlanPtr	read_plan;		/* meta, tombstone by pk jsonb (+ tenant) */
	SPIPlanPtr	lock_plan;		/* the same, FOR UPDATE */
	SPIPlanPtr	write_plan;		/* merge: upsert stamps by pk jsonb */
	SPIPlanPtr	row_plan;		/* merge: the row as jsonb, FOR UPDATE, as the caller */
	SPIPlanPtr	bury_plan;		/* merge: a tombstone by pk jsonb */
	SPIPlanPtr	latest_plan;	/* latest_rows: by the updated_at index */
} SyncTable;

/* sync.c */
extern SyncTable *sync_table(Oid relid, bool missing_ok);
extern const char *sync_origin(void);
extern const char *sync_client_id(void);
extern const char *sync_valid_origin(const char *origin);
extern void sync_stamp_json(StringInfo buf, const char *column, const SyncStamp *stamp);
extern Datum sync_current_tenant_datum(bool *isnull);
extern void sync_become_owner(SyncTable *t, Oid *saved_user, int *saved_context);
extern void sync_restore_user(Oid saved_user, int saved_context);
extern SPIPlanPtr sync_keep_plan(const char *sql, int nargs, Oid *argtypes);
extern SPIPlanPtr sync_keep_generic_plan(const char *sql, int nargs, Oid *argtypes);
extern SPIPlanPtr sync_cached_plan(const char *sql, int nargs, Oid *argtypes, bool *transient);
extern void sync_parse_stamp(JsonbValue *v, const char *column, SyncStamp *stamp);
extern int	sync_compare_stamps(const SyncStamp *a, const SyncStamp *b);
extern Jsonb *sync_read_meta(SyncTable *t, Jsonb *pk, bool lock, Jsonb **tombstone);

/* Set while domi.merge() writes a table, so its trigger leaves the stamps to it. */
extern Oid	sync_merging_relid;
/* Set while domi.bootstrap_row() inserts: the origin its stamps carry. */
extern const char *sync_origin_override;

#endif							/* DOMI_SYNC_H */
