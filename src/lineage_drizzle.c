/*
 * lineage_drizzle.c
 *		The Drizzle checks of domi.lineage_check(): a drizzle-kit migrations
 *		folder (meta/_journal.json, meta/NNNN_snapshot.json, NNNN_name.sql)
 *		against itself and against drizzle.__drizzle_migrations.
 *
 * How drizzle-orm's migrator behaves (drizzle-orm 0.45.4, migrator.js and
 * pg-core/dialect.js; the same since 0.2x), which is what makes these
 * findings errors:
 *
 *	- it reads the journal's entries in order, and for each the file
 *	  <tag>.sql, whose sha256 (hex of the UTF-8 text) it stores as "hash";
 *	- it stores the entry's "when" as "created_at" and never compares a
 *	  recorded hash with the file again;
 *	- it reads only the newest row ("ORDER BY created_at DESC LIMIT 1", so a
 *	  NULL created_at sorts first and counts as 0) and applies exactly the
 *	  entries whose "when" is later than that row's created_at.
 *
 * So rows are matched to journal entries by created_at = when, and then
 * their hash is compared with the file's.
 *
 * drizzle-kit (0.31.11, the current version) writes snapshots of version
 * "7" for PostgreSQL, the first with prevId "00000000-0000-0000-0000-
 * 000000000000"; "generate --custom" copies the previous snapshot with a new
 * id and writes the placeholder SQL below, without a trailing newline.
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
 * The first line "drizzle-kit generate --custom" writes.  Versions 0.19 to
 * 0.28.0 (checked: 0.19.13, 0.20.18, 0.22.8, 0.24.2, 0.25.0, 0.26.2, 0.27.2,
 * 0.28.0) wrote "put you code"; 0.28.1 and later (checked: 0.28.1, 0.31.11)
 * write "put your code".  Before 0.19 there was no --custom.
 */
static const char *const custom_placeholders[] = {
	"-- Custom SQL migration file, put your code below! --",
	"-- Custom SQL migration file, put you code below! --",
	NULL
};


/* The migration a snapshot belongs to, or the snapshot file when none. */
const char *
drizzle_snapshot_label(Snapshot *s)
{
	return s->migration ? s->migration->tag : s->file->name;
}

/* The hashes a file had while it was still the placeholder, or empty. */
static void
build_placeholder_hashes(DrizzleCheck *check)
{
	static const char *const endings[] = {"", "\n", "\r\n", NULL};
	const char *const *text;
	const char *const *ending;

	check->placeholders = lineage_strmap_create(16);
	for (text = custom_placeholders; *text; text++)
	{
		for (ending = endings; *ending; ending++)
		{
			char	   *variant = psprintf("%s%s", *text, *ending);
			char	   *hash = palloc(LINEAGE_SHA256_HEX);

			lineage_sha256_hex(variant, strlen(variant), hash);
			lineage_strmap_put(check->placeholders, hash, variant);
		}
	}
	{
		char	   *hash = palloc(LINEAGE_SHA256_HEX);

		lineage_sha256_hex("", 0, hash);
		lineage_strmap_put(check->placeholders, hash, "");
	}
}

static bool
starts_with_placeholder(const ManifestFile *sql)
{
	const char *const *text;

	for (text = custom_placeholders; *text; text++)
	{
		if (lineage_starts_with(sql->text, sql->len, *text))
			return true;
	}
	return false;
}

/* "0007_name" -> "meta/0007_snapshot.json" (drizzle-kit's prefix is up to the first "_") */
char *
drizzle_snapshot_file_for_tag(const char *tag)
{
	const char *underscore = strchr(tag, '_');
	int			prefix = underscore ? (int) (underscore - tag) : (int) strlen(tag);

	return psprintf("meta/%.*s_snapshot.json", prefix, tag);
}

static int64
now_unix_ms(void)
{
	TimestampTz now = GetCurrentTransactionStartTimestamp();

	return now / 1000 + (int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * 1000;
}

/*
 * The journal
 */
static void journal_malformed(DrizzleCheck *check, const char *fmt,...) pg_attribute_printf(2, 3);

/* The detail is formatted only when the finding is kept. */
static void
journal_malformed(DrizzleCheck *check, const char *fmt,...)
{
	va_list		args;
	StringInfoData detail;

	if (!lineage_finding_counted(check->findings, LINEAGE_ERROR, "journal_malformed"))
		return;
	initStringInfo(&detail);
	for (;;)
	{
		int			needed;

		va_start(args, fmt);
		needed = appendStringInfoVA(&detail, fmt, args);
		va_end(args);
		if (needed == 0)
			break;
		enlargeStringInfo(&detail, needed);
	}
	lineage_finding_add(check->findings, LINEAGE_ERROR, "journal_malformed", NULL, detail.data,
						"Restore meta/_journal.json from version control (drizzle-kit and its migrator cannot read it).");
	pfree(detail.data);
}

/* Takes one entry; false (and a finding) when it lacks idx, when or tag. */
static bool
read_journal_entry(DrizzleCheck *check, JournalEntry *entry, int position,
				   Migration *m)
{
	if (!entry->is_object)
	{
		journal_malformed(check, "Entry %d of meta/_journal.json is not an object.", position);
		return false;
	}
	if (entry->tag == NULL || !entry->has_idx || !entry->has_when)
	{
		journal_malformed(check, "Entry %d of meta/_journal.json lacks a string \"tag\" or an integer \"idx\" or \"when\".",
						  position);
		return false;
	}
	m->position = position;
	m->tag = entry->tag;
	m->idx = entry->idx;
	m->when = entry->when;
	return true;
}

/* idx and when of one entry against the entry before it. */
static void
check_journal_order(DrizzleCheck *check, Migration *m, Migration *prev,
					int64 now)
{
	int64		expected_idx = prev ? prev->idx + 1 : 0;

	if (m->idx != expected_idx)
		report(check, LINEAGE_WARNING, "journal_idx_gap", m->tag,
			   psprintf("Entry %s has idx %lld where %lld was expected: the journal was edited or merged by hand, and drizzle-kit numbers the next migration from the last idx.",
						m->tag, (long long) m->idx, (long long) expected_idx),
			   psprintf("Set \"idx\" of %s in meta/_journal.json to %lld.",
						m->tag, (long long) expected_idx));

	if (prev && m->when <= prev->when)
		report(check, LINEAGE_ERROR, "journal_when_not_increasing", m->tag,
			   psprintf("Entry %s has \"when\" %lld, not later than %lld of %s before it: a database that has applied %s skips %s without a word.",
						m->tag, (long long) m->when, (long long) prev->when,
						prev->tag, prev->tag, m->tag),
			   psprintf("Set \"when\" of %s in meta/_journal.json to %lld or later (and later than every entry a database has applied).",
						m->tag, (long long) prev->when + 1));

	if (m->when > now + FUTURE_TOLERANCE_MS)
		report(check, LINEAGE_ERROR, "journal_when_in_future", m->tag,
			   psprintf("Entry %s has \"when\" %lld, %lld ms in the future: once it is applied, every migration generated before that time is skipped by the migrator.",
						m->tag, (long long) m->when, (long long) (m->when - now)),
			   psprintf("Set \"when\" of %s in meta/_journal.json to the time it was generated (milliseconds since 1970, no later than %lld).",
						m->tag, (long long) now));
}

/*
 * Attach the entry's SQL file.  Names are formatted, looked up and freed:
 * what is kept per entry is what a journal of a million entries multiplies.
 */
static void
attach_files(DrizzleCheck *check, Migration *m)
{
	char	   *sql_name = psprintf("%s.sql", m->tag);

	m->sql = lineage_strmap_get(check->manifest->by_name, sql_name);
	if (m->sql == NULL)
		report(check, LINEAGE_ERROR, "migration_file_missing", m->tag,
			   psprintf("meta/_journal.json lists %s, but there is no %s: drizzle-kit migrate stops with an error.",
						m->tag, sql_name),
			   psprintf("Restore %s from version control, or remove its entry from meta/_journal.json.", sql_name));
	else
	{
		/* The SQL file says which entry claimed it first: a duplicate tag. */
		if (m->sql->owner)
			report(check, LINEAGE_ERROR, "journal_duplicate_tag", m->tag,
				   psprintf("The tag \"%s\" appears more than once in meta/_journal.json: the migrator runs %s once for each entry.",
							m->tag, sql_name),
				   "Remove the duplicate entry from meta/_journal.json.");
		m->sql->owner = m;
		m->sql->referenced = true;
		m->hash = palloc(LINEAGE_SHA256_HEX);
		lineage_sha256_hex(m->sql->text, m->sql->len, m->hash);
		m->custom = starts_with_placeholder(m->sql);
		m->placeholder_only = lineage_strmap_get(check->placeholders, m->hash) != NULL;
	}
	pfree(sql_name);
}

static void
read_journal(DrizzleCheck *check)
{
	ManifestFile *file = lineage_strmap_get(check->manifest->by_name, JOURNAL_FILE);
	char	   *problem = NULL;
	Journal		journal;
	Migration  *prev = NULL;
	int64		now = now_unix_ms();
	int			i;

	if (file == NULL)
	{
		report(check, LINEAGE_ERROR, "journal_missing", NULL,
			   "The manifest has no meta/_journal.json: drizzle-kit migrate cannot run this folder.",
			   "Send the whole migrations folder (the one drizzle.config.ts names as \"out\").");
		return;
	}
	file->referenced = true;
	if (lineage_json_too_deep(file->text, file->len))
	{
		journal_malformed(check, "meta/_journal.json nests arrays or objects more than %d levels deep, which drizzle-kit never writes and the checker does not read.",
						  LINEAGE_JSON_MAX_DEPTH);
		return;
	}
	if (!lineage_read_journal(file->text, file->len, &journal, &problem))
	{
		if (problem)
			journal_malformed(check, "meta/_journal.json is not valid JSON: %s", problem);
		else
			journal_malformed(check, "meta/_journal.json is not a JSON object.");
		return;
	}
	if (!journal.has_entries)
	{
		journal_malformed(check, "meta/_journal.json has no \"entries\" array.");
		return;
	}

	check->migrations = palloc0(sizeof(Migration) * Max(journal.nentries, 1));
	for (i = 0; i < journal.nentries; i++)
	{
		Migration  *m = &check->migrations[check->nmigrations];

		if (!read_journal_entry(check, &journal.entries[i], i, m))
		{
			prev = NULL;
			continue;
		}
		/* After an unreadable entry there is nothing to compare with. */
		if (prev || i == 0)
			check_journal_order(check, m, prev, now);
		attach_files(check, m);
		check->nmigrations++;
		prev = m;
	}
	if (journal.entries)
		pfree(journal.entries);
}

/* SQL files and snapshots that no journal entry names. */
static void
check_unlisted_files(DrizzleCheck *check)
{
	int			i;

	for (i = 0; i < check->manifest->nfiles; i++)
	{
		ManifestFile *file = &check->manifest->files[i];
		const char *name = file->name;
		size_t		len = strlen(name);

		if (file->referenced)
			continue;
		if (len > 4 && strcmp(name + len - 4, ".sql") == 0 && strchr(name, '/') == NULL)
			report(check, LINEAGE_ERROR, "migration_not_in_journal", name,
				   psprintf("%s has no entry in meta/_journal.json: drizzle-kit migrate never runs it.", name),
				   psprintf("Make it a migration: run drizzle-kit generate --custom and move the SQL of %s into the new file; or delete %s.",
							name, name));
		else if (strncmp(name, "meta/", 5) == 0 && len > 14 &&
				 strcmp(name + len - 14, "_snapshot.json") == 0)
			report(check, LINEAGE_WARNING, "snapshot_not_in_journal", name,
				   psprintf("%s belongs to no entry of meta/_journal.json; drizzle-kit still reads it when it checks the snapshot chain.", name),
				   psprintf("Delete %s, or restore its journal entry and SQL file.", name));
	}
}

void
lineage_check_drizzle(LineageFindings *findings, Manifest *manifest, Oid table)
{
	DrizzleCheck check;

	memset(&check, 0, sizeof(check));
	check.findings = findings;
	check.manifest = manifest;
	check.scratch = AllocSetContextCreate(CurrentMemoryContext, "domi lineage snapshot",
										  ALLOCSET_SMALL_SIZES);
	build_placeholder_hashes(&check);

	read_journal(&check);
	drizzle_read_snapshots(&check);
	check_unlisted_files(&check);
	drizzle_index_snapshots(&check);
	drizzle_check_collisions(&check);
	drizzle_check_prev_ids(&check);
	drizzle_check_cycles(&check);
	drizzle_check_heads(&check);
	drizzle_check_custom_snapshots(&check);
	if (OidIsValid(table))
		drizzle_check_database(&check, table);
	drizzle_check_stale_snapshots(&check);
	drizzle_check_empty_custom(&check);
}
