/*
 * lineage_drizzle_database.c
 *		The Drizzle checks against the database's record: the rows of
 *		drizzle.__drizzle_migrations matched to journal entries (by
 *		created_at, then by hash), edited or placeholder migrations that
 *		ran, and what drizzle-kit migrate would run next.
 *
 * Part of the Drizzle checker (lineage_drizzle.c, whose header comment
 * says how drizzle-orm's migrator reads the table); the types it shares
 * are in lineage_drizzle.h.
 */
#include "postgres.h"

#include "access/xact.h"
#include "common/hashfn.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "lineage_drizzle.h"

/*
 * The database's record: drizzle.__drizzle_migrations (id, hash, created_at)
 */
typedef struct AppliedRow
{
	const char *id;
	const char *hash;
	bool		has_created_at;
	int64		created_at;
} AppliedRow;

/* journal "when" -> the first Migration with it: a map on the integer */
typedef struct WhenEntry
{
	int64		when;
	Migration  *migration;
	char		status;
} WhenEntry;

#define SH_PREFIX		whenmap
#define SH_ELEMENT_TYPE WhenEntry
#define SH_KEY_TYPE		int64
#define SH_KEY			when
#define SH_HASH_KEY(tb, k)	murmurhash32((uint32) (k) ^ (uint32) ((uint64) (k) >> 32))
#define SH_EQUAL(tb, a, b)	((a) == (b))
#define SH_SCOPE		static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

static Migration *
migration_by_when(whenmap_hash *map, int64 when)
{
	WhenEntry  *entry = whenmap_lookup(map, when);

	return entry ? entry->migration : NULL;
}

/*
 * sha256 -> Migration, built on first use: rows are matched by created_at,
 * and only one that matches no "when" needs its hash looked up.
 */
static Migration *
migration_by_hash(DrizzleCheck *check, strmap_hash **map, const char *hash)
{
	if (*map == NULL)
	{
		int			i;

		*map = lineage_strmap_create(check->nmigrations);
		for (i = 0; i < check->nmigrations; i++)
		{
			if (check->migrations[i].sql)
				lineage_strmap_put(*map, check->migrations[i].hash, &check->migrations[i]);
		}
	}
	return lineage_strmap_get(*map, hash);
}

/*
 * A row's id as it goes into the SQL of a fix: drizzle's id is a serial, but
 * the table may be anyone's, and a person runs what the fix says, so any
 * other text is a quoted literal.
 */
static const char *
sql_row_id(const char *id)
{
	const char *p = id;

	if (*p == '-')
		p++;
	if (*p == '\0')
		return quote_literal_cstr(id);
	for (; *p; p++)
	{
		if (*p < '0' || *p > '9')
			return quote_literal_cstr(id);
	}
	return id;
}

/* A row whose created_at is a journal "when": the same migration. */
static void
check_matched_row(DrizzleCheck *check, const char *table, AppliedRow *row,
				  Migration *m)
{
	const char *placeholder;

	if (m->applied_row)
	{
		report(check, LINEAGE_WARNING, "applied_twice", m->tag,
			   psprintf("Rows %s and %s of %s both record %s (created_at %lld).",
						m->applied_row, row->id, table, m->tag, (long long) row->created_at),
			   psprintf("Check whether %s.sql ran twice, and delete the extra row: DELETE FROM %s WHERE id = %s.",
						m->tag, table, sql_row_id(row->id)));
		return;
	}
	m->applied_row = row->id;
	if (m->sql == NULL || strcmp(row->hash, m->hash) == 0)
		return;

	placeholder = lineage_strmap_get(check->placeholders, row->hash);
	if (placeholder)
		report(check, LINEAGE_ERROR, "applied_placeholder", m->tag,
			   psprintf("Row %s of %s recorded %s.sql while it was still %s; the SQL written into it since never ran, and drizzle-kit migrate will never run it (it does not compare hashes again).",
						row->id, table, m->tag,
						placeholder[0] ? "drizzle-kit's --custom placeholder" : "empty"),
			   psprintf("Move the SQL of %s.sql into a new migration (drizzle-kit generate --custom) and put %s.sql back as it was when it ran (%s).",
						m->tag, m->tag,
						placeholder[0] ? "the placeholder line" : "empty"));
	else
		report(check, LINEAGE_ERROR, "applied_hash_mismatch", m->tag,
			   psprintf("%s.sql was edited after it ran: its sha256 is %s, row %s of %s recorded %s. drizzle-kit migrate does not run it again, so the edit never reaches this database.",
						m->tag, m->hash, row->id, table, row->hash),
			   psprintf("Restore %s.sql to the text that ran (sha256 %s, see version control) and put the change into a new migration.",
						m->tag, row->hash));
}

/* A row whose created_at is no journal "when". */
static void
check_unmatched_row(DrizzleCheck *check, const char *table, AppliedRow *row,
					strmap_hash **by_hash, int64 newest)
{
	Migration  *m = migration_by_hash(check, by_hash, row->hash);

	if (m && m->applied_row == NULL)
	{
		m->applied_row = row->id;
		report(check, m->when > newest ? LINEAGE_ERROR : LINEAGE_WARNING,
			   "applied_when_mismatch", m->tag,
			   psprintf("Row %s of %s recorded %s.sql with created_at %lld, but its journal \"when\" is %lld%s.",
						row->id, table, m->tag, (long long) row->created_at,
						(long long) m->when,
						m->when > newest ? ": the migrator will run it again" : ""),
			   psprintf("If the journal is right: UPDATE %s SET created_at = %lld WHERE id = %s.",
						table, (long long) m->when, sql_row_id(row->id)));
		return;
	}
	report(check, LINEAGE_WARNING, "applied_unknown", NULL,
		   psprintf("Row %s of %s (created_at %lld, hash %s) matches no migration in the folder: it was applied from another branch or folder, by hand, or the files were rewritten since.",
					row->id, table, (long long) row->created_at, row->hash),
		   "Find the migration with that sha256 (version control, other branches) and restore it into the folder and the journal; if the row was inserted by hand, check that its SQL really ran.");
}

/*
 * A row without created_at, matched by its hash.  When another row already
 * records that migration, this one is an extra to delete, not to date.
 */
static void
check_null_row(DrizzleCheck *check, const char *table, AppliedRow *row,
			   strmap_hash **by_hash)
{
	Migration  *m = migration_by_hash(check, by_hash, row->hash);
	char	   *fix;

	if (m == NULL)
		fix = psprintf("Set created_at of row %s to the \"when\" of the migration it records, or delete the row if it records none.",
					   row->id);
	else if (m->applied_row)
		fix = psprintf("DELETE FROM %s WHERE id = %s (row %s records %s already).",
					   table, sql_row_id(row->id), m->applied_row, m->tag);
	else
	{
		fix = psprintf("UPDATE %s SET created_at = %lld WHERE id = %s (the \"when\" of %s, whose hash it has).",
					   table, (long long) m->when, sql_row_id(row->id), m->tag);
		m->applied_row = row->id;
	}
	report(check, LINEAGE_ERROR, "applied_created_at_null", m ? m->tag : NULL,
		   psprintf("Row %s of %s has no created_at. The migrator reads its newest row with ORDER BY created_at DESC, which puts this row first, takes 0 as the newest time and runs every migration again.",
					row->id, table),
		   fix);
}

/* Journal entries no row records: pending, or skipped by the migrator. */
static void
check_pending(DrizzleCheck *check, const char *table, bool any_rows,
			  int64 newest, const char *newest_tag)
{
	int			last_applied = -1;
	int			i;

	for (i = 0; i < check->nmigrations; i++)
	{
		if (check->migrations[i].applied_row)
			last_applied = i;
	}
	for (i = 0; i < check->nmigrations; i++)
	{
		Migration  *m = &check->migrations[i];

		if (m->applied_row || m->sql == NULL)
			continue;
		if (!any_rows || m->when > newest)
		{
			report(check, LINEAGE_INFO, "pending", m->tag,
				   psprintf("%s is not applied yet; drizzle-kit migrate will run it.", m->tag),
				   NULL);
			continue;
		}
		report(check, LINEAGE_ERROR, "pending_skipped_by_migrator", m->tag,
			   psprintf("%s is not recorded in %s, and its \"when\" %lld is not later than the newest applied created_at %lld%s%s%s: drizzle-kit migrate skips it without a word.",
						m->tag, table, (long long) m->when, (long long) newest,
						newest_tag ? " (" : "", newest_tag ? newest_tag : "",
						newest_tag ? ")" : ""),
			   i > last_applied
			   ? psprintf("Set \"when\" of %s in meta/_journal.json to %lld or later.",
						  m->tag, (long long) newest + 1)
			   : psprintf("Move %s after %s: give it the next idx and file prefix and a \"when\" of %lld or later; or run %s.sql by hand and record it: INSERT INTO %s (hash, created_at) VALUES ('%s', %lld).",
						  m->tag, check->migrations[last_applied].tag,
						  (long long) newest + 1, m->tag, table, m->hash,
						  (long long) m->when));
	}
}

void
drizzle_check_database(DrizzleCheck *check, Oid relid)
{
	static const char *const columns[] = {"id", "hash", "created_at", NULL};
	const char *table = lineage_table_name(relid);
	List	   *rows;
	ListCell   *lc;
	whenmap_hash *by_when;
	strmap_hash *by_hash = NULL;
	AppliedRow *applied;
	int			nrows = 0;
	int64		newest = PG_INT64_MIN;
	const char *newest_tag = NULL;
	bool		any_null = false;
	int			i;

	lineage_require_columns(relid, "Drizzle", columns);
	check->table_known = true;
	rows = lineage_read_rows(relid, "id::text, hash::text, created_at::bigint::text", 3, "id");

	by_when = whenmap_create(CurrentMemoryContext, Max(check->nmigrations, 16), NULL);
	for (i = 0; i < check->nmigrations; i++)
	{
		bool		found;
		WhenEntry  *entry = whenmap_insert(by_when, check->migrations[i].when, &found);

		if (!found)
			entry->migration = &check->migrations[i];
	}

	/*
	 * The newest created_at is what the migrator compares with; with a NULL
	 * one it reads that row (NULLs sort first in DESC) and compares with 0,
	 * set below.
	 */
	applied = palloc0(sizeof(AppliedRow) * Max(list_length(rows), 1));
	foreach(lc, rows)
	{
		char	  **values = lfirst(lc);
		AppliedRow *row = &applied[nrows++];

		row->id = values[0] ? values[0] : "NULL";
		row->hash = values[1] ? values[1] : "";
		row->has_created_at = values[2] != NULL;
		any_null |= !row->has_created_at;
		if (row->has_created_at)
		{
			row->created_at = strtoi64(values[2], NULL, 10);
			if (row->created_at > newest)
			{
				Migration  *m = migration_by_when(by_when, row->created_at);

				newest = row->created_at;
				newest_tag = m ? m->tag : NULL;
			}
		}
	}

	if (any_null)
	{
		newest = 0;
		newest_tag = NULL;
	}

	for (i = 0; i < nrows; i++)
	{
		AppliedRow *row = &applied[i];
		Migration  *m;

		if (!row->has_created_at)
			continue;			/* after the others, which may record it */
		m = migration_by_when(by_when, row->created_at);
		if (m)
			check_matched_row(check, table, row, m);
		else
			check_unmatched_row(check, table, row, &by_hash, newest);
	}
	for (i = 0; i < nrows; i++)
	{
		if (!applied[i].has_created_at)
			check_null_row(check, table, &applied[i], &by_hash);
	}
	check_pending(check, table, newest != PG_INT64_MIN, newest, newest_tag);
}
