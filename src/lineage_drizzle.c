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

#include "lineage.h"

#define JOURNAL_FILE		"meta/_journal.json"
#define SNAPSHOT_VERSION	"7"
#define ORIGIN_ID			"00000000-0000-0000-0000-000000000000"

/*
 * A "when" this far ahead of the server's clock is in the future; less may
 * be clock skew between the machine that generated it and the server.
 */
#define FUTURE_TOLERANCE_MS	(10 * 60 * 1000)

/* At most this many differing tables/columns named in one finding. */
#define MAX_NAMED_DIFFERENCES 20

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

typedef struct Snapshot Snapshot;

/* One journal entry and its files. */
typedef struct Migration
{
	int			position;		/* in the journal */
	int64		idx;
	int64		when;
	const char *tag;
	ManifestFile *sql;			/* NULL when the file is missing */
	char	   *hash;			/* of sql, when there is one */
	Snapshot   *snapshot;		/* NULL when missing or malformed */
	bool		snapshot_unreadable;	/* its snapshot is there but malformed */
	bool		custom;			/* the SQL starts with the --custom placeholder */
	bool		placeholder_only;	/* the SQL is the placeholder (or empty) */
	const char *applied_row;	/* id of the row that recorded it, or NULL */
	int			lacks;			/* tables and columns of the snapshot before it
								 * that its (generated) snapshot lacks */
} Migration;

struct Snapshot
{
	ManifestFile *file;
	const char *id;
	const char *prev_id;
	const char *version;		/* NULL when missing */
	Migration  *migration;		/* its journal entry, or NULL */
	bool		unreadable;		/* doc could not be built */
	bool		duplicate;		/* another snapshot before it has its id */
	Snapshot   *parent;			/* the snapshot its prevId names, or NULL */
	List	   *children;		/* the snapshots whose prevId is its id */
	int			walk;			/* cycle search: last walk that reached it */
	bool		walked;			/* cycle search: done with it */
	int			fix_round;		/* collision fix: last fix that queued it */
	bool		in_collision_fix;	/* a collision's fix sets its prevId */
};

typedef struct DrizzleCheck
{
	LineageFindings *findings;
	Manifest   *manifest;
	int			nmigrations;
	Migration  *migrations;		/* journal order */
	int			nsnapshots;
	Snapshot  **snapshots;		/* journal order, then the others by name */
	strmap_hash *by_id;			/* id -> first Snapshot with it */
	strmap_hash *orphans;		/* prevId naming no snapshot -> List of Snapshot */
	strmap_hash *placeholders;	/* sha256 -> placeholder text it is of */
	bool		collision_found;
	int			fix_rounds;		/* collision fixes written so far */
	int			nunreadable;	/* snapshots reported as malformed */
	bool		table_known;	/* the migrations table was read */
	MemoryContext scratch;		/* reset after each snapshot is read */
} DrizzleCheck;

/* A finding; its texts are formatted only when it is kept (lineage.h). */
#define report(check, ...) lineage_report((check)->findings, __VA_ARGS__)

/* The migration a snapshot belongs to, or the snapshot file when none. */
static const char *
snapshot_label(Snapshot *s)
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
static char *
snapshot_file_for_tag(const char *tag)
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

/*
 * Snapshots
 */

/* drizzle-kit stops on a version above its own: Number(version) > 7 */
static bool
snapshot_version_is_newer(const char *version)
{
	char	   *end;
	double		number;

	errno = 0;
	number = strtod(version, &end);
	while (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r')
		end++;
	return end != version && *end == '\0' && errno == 0 &&
		number > atoi(SNAPSHOT_VERSION);
}

static Snapshot *
read_snapshot(DrizzleCheck *check, ManifestFile *file, Migration *m,
			  SnapshotNames *names)
{
	char	   *problem = NULL;
	SnapshotHeader header;
	Snapshot   *s;

	file->referenced = true;
	if (lineage_json_too_deep(file->text, file->len))
	{
		report(check, LINEAGE_ERROR, "snapshot_malformed", m ? m->tag : file->name,
			   psprintf("%s nests arrays or objects more than %d levels deep, which drizzle-kit never writes and the checker does not read.",
						file->name, LINEAGE_JSON_MAX_DEPTH),
			   psprintf("Restore %s from version control.", file->name));
		return NULL;
	}
	if (!lineage_read_snapshot_header(file->text, file->len, &header, &problem,
									  check->scratch, names))
	{
		report(check, LINEAGE_ERROR, "snapshot_malformed", m ? m->tag : file->name,
			   problem
			   ? psprintf("%s is not valid JSON: %s", file->name, problem)
			   : psprintf("%s is not a JSON object.", file->name),
			   psprintf("Restore %s from version control; drizzle-kit generate cannot diff against it.", file->name));
		return NULL;
	}
	s = palloc0(sizeof(Snapshot));
	s->file = file;
	s->migration = m;
	s->id = header.id;
	s->prev_id = header.prev_id;
	s->version = header.version;
	if (s->id == NULL || s->prev_id == NULL)
	{
		report(check, LINEAGE_ERROR, "snapshot_malformed", snapshot_label(s),
			   psprintf("%s has no string \"id\" or \"prevId\".", file->name),
			   psprintf("Restore %s from version control.", file->name));
		return NULL;
	}

	if (header.version && snapshot_version_is_newer(header.version))
		report(check, LINEAGE_WARNING, "snapshot_version_outdated", snapshot_label(s),
			   psprintf("%s has version \"%s\", newer than the version " SNAPSHOT_VERSION " this drizzle-kit reads: drizzle-kit generate stops on it (\"snapshot is of unsupported version\").",
						file->name, header.version),
			   "Update drizzle-kit to the version that wrote it (drizzle-kit up cannot go back).");
	else if (header.version == NULL || strcmp(header.version, SNAPSHOT_VERSION) != 0)
		report(check, LINEAGE_WARNING, "snapshot_version_outdated", snapshot_label(s),
			   psprintf("%s has version %s%s%s; the current drizzle-kit writes and reads version " SNAPSHOT_VERSION ".",
						file->name, header.version ? "\"" : "",
						header.version ? header.version : "(none)",
						header.version ? "\"" : ""),
			   "Run drizzle-kit up to bring the snapshots to the current version.");
	return s;
}

/*
 * The whole snapshot as jsonb, in the current memory context, which the
 * caller resets after comparing: kept, the snapshots of a folder of
 * --custom migrations would take several times the manifest.  It is valid
 * JSON, but may hold what no jsonb can (\u0000): then it cannot be
 * compared, which is reported once, and NULL returned.
 */
static JsonbContainer *
snapshot_doc(DrizzleCheck *check, Snapshot *s)
{
	char	   *problem;
	Jsonb	   *doc;

	if (s->unreadable)
		return NULL;
	doc = lineage_parse_json(s->file->text, s->file->len, &problem);
	if (doc)
		return &doc->root;
	s->unreadable = true;
	report(check, LINEAGE_ERROR, "snapshot_malformed", snapshot_label(s),
		   psprintf("%s cannot be read as jsonb to compare it: %s", s->file->name, problem),
		   psprintf("Restore %s from version control.", s->file->name));
	return NULL;
}

static int
snapshot_name_order(const void *a, const void *b)
{
	const Snapshot *sa = *(Snapshot *const *) a;
	const Snapshot *sb = *(Snapshot *const *) b;

	return strcmp(sa->file->name, sb->file->name);
}

/*
 * Whether m's snapshot is compared with the one before it: a generated
 * migration (a --custom one is compared whole, check_custom_snapshots),
 * right after the entry before it in the journal, both snapshots of one
 * version (the layout of "tables" changed between versions; drizzle-kit up
 * brings them all to one).
 */
static bool
compared_with_previous(DrizzleCheck *check, Migration *m)
{
	return m != &check->migrations[0] && m[-1].position == m->position - 1 &&
		m->sql != NULL && !m->custom && m->snapshot && m[-1].snapshot &&
		m->snapshot->version && m[-1].snapshot->version &&
		strcmp(m->snapshot->version, m[-1].snapshot->version) == 0;
}

/*
 * The tables and columns of the snapshot before m that m's lacks: a count,
 * and with list not NULL the first ones named, in the caller's context.
 * Both snapshots are read again, in memory of their own: this runs for the
 * findings that are reported, not for every migration.
 */
static int
snapshot_lacks(DrizzleCheck *check, Migration *m, char **list)
{
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext work = AllocSetContextCreate(caller, "domi lineage snapshot diff",
											   ALLOCSET_DEFAULT_SIZES);
	SnapshotNames names[2];
	SnapshotHeader header;
	SnapshotLack lack;
	char	   *problem;
	int			i;

	MemoryContextSwitchTo(work);
	for (i = 0; i < 2; i++)
	{
		ManifestFile *file = (i == 0 ? m[-1].snapshot : m->snapshot)->file;

		memset(&names[i], 0, sizeof(SnapshotNames));
		names[i].context = work;
		if (!lineage_read_snapshot_header(file->text, file->len, &header, &problem,
										  check->scratch, &names[i]))
			names[i].known = false;
		lineage_sort_snapshot_names(&names[i]);
	}
	lineage_snapshot_lacks(&names[0], &names[1], m->sql->text, m->sql->len, &lack);
	MemoryContextSwitchTo(caller);
	if (list)
		*list = pstrdup(lineage_lack_list(&lack));
	MemoryContextDelete(work);
	return lack.count;
}

/* Every snapshot: the journal's in journal order, then the others by name. */
static void
read_snapshots(DrizzleCheck *check)
{
	int			i;
	int			first_unlisted;
	SnapshotNames names[2];		/* of the snapshot just read, and the one before */
	int			current = 0;
	Migration  *named = NULL;	/* whose names are in names[1 - current] */
	MemoryContext diff;

	for (i = 0; i < 2; i++)
		names[i].context = AllocSetContextCreate(CurrentMemoryContext,
												 "domi lineage snapshot names",
												 ALLOCSET_DEFAULT_SIZES);
	diff = AllocSetContextCreate(CurrentMemoryContext, "domi lineage snapshot diff",
								 ALLOCSET_DEFAULT_SIZES);

	check->snapshots = palloc0(sizeof(Snapshot *) * Max(check->manifest->nfiles, 1));
	for (i = 0; i < check->nmigrations; i++)
	{
		Migration  *m = &check->migrations[i];
		char	   *snapshot_name = snapshot_file_for_tag(m->tag);
		ManifestFile *file = lineage_strmap_get(check->manifest->by_name, snapshot_name);

		if (file == NULL)
		{
			report(check, LINEAGE_WARNING, "snapshot_missing", m->tag,
				   psprintf("%s has no %s: drizzle-kit generate diffs against the newest snapshot it finds, so the next migration may repeat or miss changes.",
							m->tag, snapshot_name),
				   psprintf("Restore %s from version control.", snapshot_name));
			pfree(snapshot_name);
			named = NULL;
			continue;
		}
		if (file->owner)
		{
			Migration  *owner = file->owner;

			/* Two branches generated the same number, and one snapshot is lost. */
			report(check, LINEAGE_ERROR, "snapshot_shared", m->tag,
				   psprintf("%s and %s both have the prefix of %s: one of them has no snapshot of its own (two branches generated the same number, and one snapshot was lost in the merge).",
							owner->tag, m->tag, snapshot_name),
				   psprintf("Give %s a number no other migration has (rename %s.sql and set its tag in meta/_journal.json; %04lld is free after the last entry), and restore its own snapshot from its branch under that number, with prevId set to the id of the snapshot before it.",
							m->tag, m->tag,
							(long long) check->migrations[check->nmigrations - 1].idx + 1));
			pfree(snapshot_name);
			named = NULL;
			continue;
		}
		pfree(snapshot_name);
		file->owner = m;
		MemoryContextReset(names[current].context);
		m->snapshot = read_snapshot(check, file, m, &names[current]);
		if (m->snapshot == NULL)
		{
			m->snapshot_unreadable = true;
			check->nunreadable++;
			named = NULL;
			continue;
		}
		check->snapshots[check->nsnapshots++] = m->snapshot;

		/*
		 * Compared with the snapshot before it while both are read: only
		 * the names of two snapshots are in memory at a time.
		 */
		lineage_sort_snapshot_names(&names[current]);
		if (named == m - 1 && compared_with_previous(check, m))
		{
			SnapshotLack lack;
			MemoryContext caller = MemoryContextSwitchTo(diff);

			lineage_snapshot_lacks(&names[1 - current], &names[current],
								   m->sql->text, m->sql->len, &lack);
			m->lacks = lack.count;
			MemoryContextSwitchTo(caller);
			MemoryContextReset(diff);
		}
		named = m;
		current = 1 - current;
	}
	for (i = 0; i < 2; i++)
		MemoryContextDelete(names[i].context);
	MemoryContextDelete(diff);

	first_unlisted = check->nsnapshots;
	for (i = 0; i < check->manifest->nfiles; i++)
	{
		ManifestFile *file = &check->manifest->files[i];
		size_t		len = strlen(file->name);
		Snapshot   *s;

		if (file->referenced || strncmp(file->name, "meta/", 5) != 0 || len <= 14 ||
			strcmp(file->name + len - 14, "_snapshot.json") != 0)
			continue;
		s = read_snapshot(check, file, NULL, NULL);
		file->referenced = false;	/* still reported as not in the journal */
		if (s)
			check->snapshots[check->nsnapshots++] = s;
		else
			check->nunreadable++;
	}
	qsort(check->snapshots + first_unlisted, check->nsnapshots - first_unlisted,
		  sizeof(Snapshot *), snapshot_name_order);
}

/* The id this snapshot's prevId should have: its journal predecessor's. */
static const char *
expected_prev_id(DrizzleCheck *check, Snapshot *s, const char **parent_file)
{
	Migration  *prev;

	*parent_file = NULL;
	if (s->migration == NULL)
		return NULL;
	if (s->migration->position == 0)
		return ORIGIN_ID;
	/* Unknown when it is the first readable entry but not the first entry. */
	if (s->migration == &check->migrations[0])
		return NULL;
	prev = s->migration - 1;
	/* Unknown when the entry before it in the journal could not be read. */
	if (prev->snapshot == NULL || prev->position != s->migration->position - 1)
		return NULL;
	*parent_file = prev->snapshot->file->name;
	return prev->snapshot->id;
}

/*
 * Ids first, then each snapshot's parent and its parent's children, so that
 * the checks below follow pointers and do no lookups.
 */
static void
index_snapshots(DrizzleCheck *check)
{
	int			i;

	check->by_id = lineage_strmap_create(check->nsnapshots);
	check->orphans = lineage_strmap_create(16);
	for (i = 0; i < check->nsnapshots; i++)
	{
		Snapshot   *s = check->snapshots[i];
		Snapshot   *first = lineage_strmap_put(check->by_id, s->id, s);

		if (first == s)
			continue;
		s->duplicate = true;
		report(check, LINEAGE_ERROR, "snapshot_duplicate_id", snapshot_label(s),
			   psprintf("%s and %s have the same id \"%s\": one was copied from the other, and the chain of prevIds cannot tell them apart.",
						first->file->name, s->file->name, s->id),
			   psprintf("Give %s a new id (a random uuid), and set the prevId of the snapshot after it to that id.",
						s->file->name));
	}
	for (i = 0; i < check->nsnapshots; i++)
	{
		Snapshot   *s = check->snapshots[i];

		s->parent = lineage_strmap_get(check->by_id, s->prev_id);
		if (s->parent)
			s->parent->children = lappend(s->parent->children, s);
		else
		{
			StrMapEntry *entry;
			bool		found;

			entry = strmap_insert(check->orphans, s->prev_id, &found);
			entry->value = lappend(found ? (List *) entry->value : NIL, s);
		}
	}
}

/* The snapshots with the same prevId as s, s included, in snapshot order. */
static List *
siblings(DrizzleCheck *check, Snapshot *s)
{
	return s->parent ? s->parent->children : lineage_strmap_get(check->orphans, s->prev_id);
}

/* The snapshots whose prevId is id (a snapshot's, or one no snapshot has). */
static List *
children_of(DrizzleCheck *check, const char *id)
{
	Snapshot   *parent = lineage_strmap_get(check->by_id, id);

	return parent ? parent->children : lineage_strmap_get(check->orphans, id);
}

/* Queue each of list's snapshots not in journal order, once per fix. */
static List *
queue_misplaced(DrizzleCheck *check, List *queue, List *list)
{
	ListCell   *lc;

	foreach(lc, list)
	{
		Snapshot   *child = lfirst(lc);
		const char *parent_file;
		const char *expected = expected_prev_id(check, child, &parent_file);

		if (child->fix_round == check->fix_rounds ||
			(expected && strcmp(expected, child->prev_id) == 0))
			continue;
		child->fix_round = check->fix_rounds;
		queue = lappend(queue, child);
	}
	return queue;
}

/*
 * What to do with a generated snapshot that lacks tables or columns of the
 * snapshot before it (after a merge): for a migration no database has
 * applied, generate it again, which writes its change against the merged
 * schema; for an applied one, which must stay as it ran, copy what its
 * snapshot lacks into it.  Applied or not is known only when the
 * migrations table was read, and only for this database.
 */
static const char *
regenerate_fix(Migration *m)
{
	return psprintf("delete %s.sql, %s and the entry of %s in meta/_journal.json, and run drizzle-kit generate again (it writes the same change against the merged schema)",
					m->tag, m->snapshot->file->name, m->tag);
}

static const char *
copy_fix(Migration *m, const char *list)
{
	return psprintf("copy into \"tables\" of %s, from %s, %s (a table's whole entry; a column's entry into its table's \"columns\"), keeping its id, with prevId \"%s\" (the id of %s)",
					m->snapshot->file->name, m[-1].snapshot->file->name, list,
					m[-1].snapshot->id, m[-1].snapshot->file->name);
}

static char *
stale_fix(DrizzleCheck *check, Migration *m, const char *list)
{
	if (!check->table_known)
		return psprintf("If %s is applied in no database: %s. If a database has applied it: %s.",
						m->tag, regenerate_fix(m), copy_fix(m, list));
	if (m->applied_row)
		return psprintf("It is applied, so keep it and %s.", copy_fix(m, list));
	return psprintf("It is not applied here; if no other database has applied it either: %s. Otherwise: %s.",
					regenerate_fix(m), copy_fix(m, list));
}

/*
 * "set prevId of X to "id" (the id of Y)" for each child not in journal
 * order.  Re-pointing X at Y makes it a sibling of Y's other children, so
 * those not in journal order are re-pointed too (and theirs after them):
 * applied as written, the fix leaves no collision behind, and these
 * snapshots form one chain in journal order.  A generated X that lacks
 * what Y has would then pass drizzle-kit check and make the next generate
 * add Y's changes again: for it the fix says so, and what to do instead.
 * Without describe, only the snapshots are marked (the finding is counted,
 * not listed) and NULL returned.
 */
static char *
collision_fix(DrizzleCheck *check, List *children, bool describe)
{
	StringInfoData fix;
	StringInfoData stale;
	List	   *queue;
	int			i;

	initStringInfo(&fix);
	initStringInfo(&stale);
	check->fix_rounds++;
	queue = queue_misplaced(check, NIL, children);
	for (i = 0; i < list_length(queue); i++)
	{
		Snapshot   *child = list_nth(queue, i);
		const char *parent_file;
		const char *expected = expected_prev_id(check, child, &parent_file);

		child->in_collision_fix = true;
		if (!describe)
		{
			if (expected)
				queue = queue_misplaced(check, queue, children_of(check, expected));
			continue;
		}
		if (fix.len > 0)
			appendStringInfoString(&fix, "; ");
		if (expected == NULL)
		{
			appendStringInfo(&fix, "delete %s or give it a journal entry (it has no place in journal order)",
							 child->file->name);
			continue;
		}
		if (parent_file == NULL)
			appendStringInfo(&fix, "set prevId of %s to \"%s\" (it is the first migration)",
							 child->file->name, expected);
		else
			appendStringInfo(&fix, "set prevId of %s to \"%s\" (the id of %s)",
							 child->file->name, expected, parent_file);
		if (child->migration && child->migration->lacks > 0)
		{
			Migration  *m = child->migration;
			char	   *list;

			(void) snapshot_lacks(check, m, &list);
			appendStringInfo(&stale, " But %s lacks %s of %s, which %s.sql does not drop, and the next drizzle-kit generate would add them again (snapshot_stale_after_merge): if %s is applied in no database, %s instead of setting its prevId; if a database has applied it, also %s.",
							 child->file->name, list, parent_file, m->tag, m->tag,
							 regenerate_fix(m), copy_fix(m, list));
		}
		queue = queue_misplaced(check, queue, children_of(check, expected));
	}
	if (fix.len == 0)
		return NULL;
	fix.data[0] = pg_toupper((unsigned char) fix.data[0]);
	appendStringInfo(&fix, ", so that the snapshots form one chain in journal order.%s", stale.data);
	return fix.data;
}

/* The tag of the first child whose prevId must change, else the first child. */
static const char *
collision_label(DrizzleCheck *check, List *children)
{
	ListCell   *lc;

	foreach(lc, children)
	{
		Snapshot   *child = lfirst(lc);
		const char *parent_file;
		const char *expected = expected_prev_id(check, child, &parent_file);

		if (expected == NULL || strcmp(expected, child->prev_id) != 0)
			return snapshot_label(child);
	}
	return snapshot_label(linitial(children));
}

static void
check_collisions(DrizzleCheck *check)
{
	int			i;

	for (i = 0; i < check->nsnapshots; i++)
	{
		Snapshot   *s = check->snapshots[i];
		List	   *children = siblings(check, s);
		Snapshot   *parent = s->parent;
		StringInfoData detail;
		ListCell   *lc;
		bool		describe;
		char	   *fix;

		/* Once per group of siblings: at its first member. */
		if (list_length(children) < 2 || linitial(children) != s)
			continue;
		check->collision_found = true;

		/* The fix marks the snapshots it re-points, listed or not. */
		describe = lineage_finding_wanted(check->findings, "snapshot_prev_collision");
		fix = collision_fix(check, children, describe);
		if (!describe)
		{
			report(check, LINEAGE_ERROR, "snapshot_prev_collision", NULL, NULL, NULL);
			continue;
		}

		initStringInfo(&detail);
		foreach(lc, children)
		{
			Snapshot   *child = lfirst(lc);

			if (lc != list_head(children))
				appendStringInfoString(&detail, lnext(children, lc) ? ", " : " and ");
			appendStringInfoString(&detail, child->file->name);
			if (child->migration)
				appendStringInfo(&detail, " (%s)", child->migration->tag);
		}
		appendStringInfo(&detail, " %s prevId \"%s\", ",
						 list_length(children) == 2 ? "both have" : "all have", s->prev_id);
		if (parent)
			appendStringInfo(&detail, "the id of %s%s%s%s",
							 parent->file->name,
							 parent->migration ? " (" : "",
							 parent->migration ? parent->migration->tag : "",
							 parent->migration ? ")" : "");
		else if (strcmp(s->prev_id, ORIGIN_ID) == 0)
			appendStringInfoString(&detail, "the start of the chain");
		else
			appendStringInfoString(&detail, "which no snapshot has");
		appendStringInfoString(&detail, ": they were generated on parallel branches from one parent, and drizzle-kit generate refuses to go on.");

		report(check, LINEAGE_ERROR, "snapshot_prev_collision",
			   collision_label(check, children), detail.data, fix);
	}
}

/* Whether the snapshot before s in journal order is there but malformed. */
static bool
predecessor_unreadable(DrizzleCheck *check, Snapshot *s)
{
	Migration  *prev;

	if (s->migration == NULL || s->migration == &check->migrations[0])
		return false;
	prev = s->migration - 1;
	return prev->position == s->migration->position - 1 && prev->snapshot_unreadable;
}

/* A prevId naming no snapshot, or a chain out of journal order. */
static void
check_prev_ids(DrizzleCheck *check)
{
	int			i;

	for (i = 0; i < check->nsnapshots; i++)
	{
		Snapshot   *s = check->snapshots[i];
		const char *parent_file;
		const char *expected = expected_prev_id(check, s, &parent_file);
		bool		known = s->parent != NULL || strcmp(s->prev_id, ORIGIN_ID) == 0;
		char	   *fix;

		if (known && (expected == NULL || strcmp(expected, s->prev_id) == 0))
			continue;
		/* A sibling in a collision is reported, with its fix, there. */
		if (known && (list_length(siblings(check, s)) > 1 || s->in_collision_fix))
			continue;
		/* Its parent is likely the malformed snapshot before it: restore that. */
		if (!known && predecessor_unreadable(check, s))
			continue;

		if (expected == NULL)
			fix = psprintf("Set prevId of %s to the id of the snapshot before it.", s->file->name);
		else
			fix = psprintf("Set prevId of %s to \"%s\"%s%s%s.", s->file->name, expected,
						   parent_file ? " (the id of " : " (it is the first migration",
						   parent_file ? parent_file : "", ")");
		if (!known)
			report(check, LINEAGE_ERROR, "snapshot_prev_unknown", snapshot_label(s),
				   psprintf("%s has prevId \"%s\", which is the id of no snapshot in the folder: drizzle-kit cannot tell what it was generated from.",
							s->file->name, s->prev_id),
				   fix);
		else
			report(check, LINEAGE_WARNING, "snapshot_chain_out_of_order", snapshot_label(s),
				   psprintf("%s has prevId \"%s\", which is not the id of the snapshot before it in journal order: the chain and the journal disagree on the order.",
							s->file->name, s->prev_id),
				   fix);
	}
}

/*
 * Each snapshot has one parent, so following prevIds from any snapshot ends
 * at the start, at an unknown id, or in a cycle.  Each walk marks what it
 * reaches with its number; reaching a snapshot of the same walk again is a
 * cycle.  Every snapshot is walked once, so this is linear.
 */
static void
check_cycles(DrizzleCheck *check)
{
	int			walk = 0;
	int			i;

	for (i = 0; i < check->nsnapshots; i++)
	{
		Snapshot   *s;

		walk++;
		for (s = check->snapshots[i]; s && !s->walked && s->walk != walk;
			 s = s->parent)
			s->walk = walk;

		if (s && !s->walked && s->walk == walk &&
			!lineage_finding_wanted(check->findings, "snapshot_prev_cycle"))
			report(check, LINEAGE_ERROR, "snapshot_prev_cycle", NULL, NULL, NULL);
		else if (s && !s->walked && s->walk == walk)
		{
			StringInfoData members;
			Snapshot   *member = s;

			initStringInfo(&members);
			do
			{
				appendStringInfo(&members, "%s%s", members.len ? " -> " : "", member->file->name);
				member = member->parent;
			} while (member != s);
			appendStringInfo(&members, " -> %s", s->file->name);
			report(check, LINEAGE_ERROR, "snapshot_prev_cycle", snapshot_label(s),
				   psprintf("The prevIds form a cycle: %s. drizzle-kit cannot find where the chain starts.",
							members.data),
				   "Set each snapshot's prevId to the id of the snapshot before it in journal order (the first one's to \"" ORIGIN_ID "\").");
		}

		for (s = check->snapshots[i]; s && !s->walked; s = s->parent)
			s->walked = true;
	}
}

/* Heads: snapshots no other names as its parent.  One chain has one. */
static void
check_heads(DrizzleCheck *check)
{
	StringInfoData heads;
	int			nheads = 0;
	int			i;

	if (check->collision_found)
		return;					/* siblings are heads; the collision says it all */
	if (check->nunreadable > 0)
		return;					/* a malformed snapshot cuts the chain: restore it first */
	initStringInfo(&heads);
	for (i = 0; i < check->nsnapshots; i++)
	{
		Snapshot   *s = check->snapshots[i];

		if (s->children != NIL || s->duplicate)
			continue;			/* not a head, or a duplicate id (reported) */
		if (nheads < LINEAGE_MAX_NAMED)
			appendStringInfo(&heads, "%s%s", nheads ? ", " : "", s->file->name);
		nheads++;
	}
	if (nheads > LINEAGE_MAX_NAMED)
		appendStringInfo(&heads, " and %d more", nheads - LINEAGE_MAX_NAMED);
	if (nheads > 1)
		report(check, LINEAGE_ERROR, "snapshot_multiple_heads", NULL,
			   psprintf("%d snapshots are the newest of their chain (%s): the folder holds more than one line of migrations, and drizzle-kit generate diffs against only one.",
						nheads, heads.data),
			   "Set each snapshot's prevId to the id of the snapshot before it in journal order, so that there is one chain.");
}

/*
 * Stale custom snapshots: "generate --custom" copies its parent's schema,
 * so a custom migration's snapshot must describe the same tables as the
 * snapshot before it in journal order.  After a merge re-chains it onto
 * another branch's migration, it still describes the old parent.
 */
static bool
json_values_equal(JsonbValue *a, JsonbValue *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	if (a->type != b->type)
		return false;
	switch (a->type)
	{
		case jbvBinary:
			return compareJsonbContainers(a->val.binary.data, b->val.binary.data) == 0;
		case jbvString:
			return a->val.string.len == b->val.string.len &&
				memcmp(a->val.string.val, b->val.string.val, a->val.string.len) == 0;
		case jbvNumeric:
			return DatumGetBool(DirectFunctionCall2(numeric_eq,
													NumericGetDatum(a->val.numeric),
													NumericGetDatum(b->val.numeric)));
		case jbvBool:
			return a->val.boolean == b->val.boolean;
		default:
			return true;		/* jbvNull */
	}
}

typedef struct Differences
{
	StringInfoData names;
	int			count;
} Differences;

static void
add_difference(Differences *diff, const char *what)
{
	if (diff->count < MAX_NAMED_DIFFERENCES)
		appendStringInfo(&diff->names, "%s%s", diff->count ? ", " : "", what);
	diff->count++;
}

static JsonbContainer *
member_object(JsonbContainer *object, const char *key)
{
	JsonbValue *v = lineage_json_member(object, key);

	if (v == NULL || v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
		return NULL;
	return v->val.binary.data;
}

/*
 * Keys of object a missing from b, or (when both) with a different value:
 * "what key (only in a_name)" or "what key (differs)".  With compare off,
 * only the missing keys.
 */
static void
diff_object_keys(Differences *diff, JsonbContainer *a, JsonbContainer *b,
				 const char *what, const char *prefix, const char *a_name,
				 bool compare)
{
	JsonbIterator *it;
	JsonbValue	key;
	JsonbValue	value;
	JsonbIteratorToken token;

	if (a == NULL)
		return;
	it = JsonbIteratorInit(a);
	while ((token = JsonbIteratorNext(&it, &key, true)) != WJB_DONE)
	{
		JsonbValue *other;
		char	   *name;

		if (token != WJB_KEY)
			continue;
		(void) JsonbIteratorNext(&it, &value, true);
		name = pnstrdup(key.val.string.val, key.val.string.len);
		other = b ? getKeyJsonValueFromContainer(b, key.val.string.val, key.val.string.len, NULL) : NULL;
		if (other == NULL)
			add_difference(diff, psprintf("%s %s%s (only in %s)", what, prefix, name, a_name));
		else if (compare && !json_values_equal(&value, other))
			add_difference(diff, psprintf("%s %s%s (differs)", what, prefix, name));
	}
}

static void
diff_tables(Differences *diff, JsonbContainer *parent, JsonbContainer *child,
			const char *parent_name, const char *child_name)
{
	JsonbIterator *it;
	JsonbValue	key;
	JsonbValue	value;
	JsonbIteratorToken token;

	diff_object_keys(diff, parent, child, "table", "", parent_name, false);
	diff_object_keys(diff, child, parent, "table", "", child_name, false);
	if (parent == NULL || child == NULL)
		return;

	/* Tables in both: their columns, then the rest (indexes, keys, ...). */
	it = JsonbIteratorInit(parent);
	while ((token = JsonbIteratorNext(&it, &key, true)) != WJB_DONE)
	{
		JsonbValue *other;
		char	   *table;
		JsonbContainer *pcols;
		JsonbContainer *ccols;
		int			before;

		if (token != WJB_KEY)
			continue;
		(void) JsonbIteratorNext(&it, &value, true);
		other = getKeyJsonValueFromContainer(child, key.val.string.val, key.val.string.len, NULL);
		if (other == NULL || json_values_equal(&value, other))
			continue;
		table = psprintf("%s.", pnstrdup(key.val.string.val, key.val.string.len));
		pcols = value.type == jbvBinary ? member_object(value.val.binary.data, "columns") : NULL;
		ccols = other->type == jbvBinary ? member_object(other->val.binary.data, "columns") : NULL;
		before = diff->count;
		diff_object_keys(diff, pcols, ccols, "column", table, parent_name, true);
		diff_object_keys(diff, ccols, pcols, "column", table, child_name, false);
		if (diff->count == before)
		{
			table[strlen(table) - 1] = '\0';
			add_difference(diff, psprintf("table %s (indexes, keys or constraints differ)", table));
		}
	}
}

static void
check_custom_snapshots(DrizzleCheck *check)
{
	static const char *const other_keys[] = {"enums", "schemas", "sequences", "roles", "policies", "views", NULL};
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext compare = AllocSetContextCreate(caller, "domi lineage snapshot compare",
												  ALLOCSET_DEFAULT_SIZES);
	int			i;

	for (i = 1; i < check->nmigrations; i++)
	{
		Migration  *m = &check->migrations[i];
		Snapshot   *parent = m[-1].snapshot;
		Differences diff;
		const char *const *key;
		JsonbContainer *parent_doc;
		JsonbContainer *child_doc;

		if (!m->custom || m->snapshot == NULL || parent == NULL ||
			m[-1].position != m->position - 1)
			continue;
		MemoryContextReset(compare);
		MemoryContextSwitchTo(compare);
		parent_doc = snapshot_doc(check, parent);
		child_doc = snapshot_doc(check, m->snapshot);
		if (parent_doc == NULL || child_doc == NULL)
		{
			MemoryContextSwitchTo(caller);
			continue;
		}
		initStringInfo(&diff.names);
		diff.count = 0;
		diff_tables(&diff, member_object(parent_doc, "tables"),
					member_object(child_doc, "tables"),
					parent->file->name, m->snapshot->file->name);
		for (key = other_keys; *key; key++)
		{
			if (!json_values_equal(lineage_json_member(parent_doc, *key),
								   lineage_json_member(child_doc, *key)))
				add_difference(&diff, psprintf("\"%s\" (differs)", *key));
		}
		if (diff.count == 0)
		{
			MemoryContextSwitchTo(caller);
			continue;
		}
		if (diff.count > MAX_NAMED_DIFFERENCES)
			appendStringInfo(&diff.names, " and %d more", diff.count - MAX_NAMED_DIFFERENCES);
		report(check, LINEAGE_ERROR, "custom_snapshot_stale", m->tag,
			   psprintf("%s is a --custom migration, so %s should describe the same schema as %s before it in journal order, but it differs: %s. It was copied from another parent's snapshot (on a branch, then merged), so the next drizzle-kit generate diffs against the wrong schema and writes those changes again, or undoes them.",
						m->tag, m->snapshot->file->name, parent->file->name, diff.names.data),
			   psprintf("Copy \"tables\" (and the other schema keys) of %s into %s, keeping its id and setting its prevId to \"%s\".",
						parent->file->name, m->snapshot->file->name, parent->id));
		MemoryContextSwitchTo(caller);
	}
	MemoryContextDelete(compare);
}

/* Generated snapshots that lack what the snapshot before them has. */
static void
check_stale_snapshots(DrizzleCheck *check)
{
	int			i;

	for (i = 0; i < check->nmigrations; i++)
	{
		Migration  *m = &check->migrations[i];
		char	   *list = NULL;

		if (m->lacks == 0)
			continue;
		/* Named only for a finding that is listed: it reads both again. */
		if (lineage_finding_wanted(check->findings, "snapshot_stale_after_merge"))
			(void) snapshot_lacks(check, m, &list);
		report(check, LINEAGE_ERROR, "snapshot_stale_after_merge", m->tag,
			   psprintf("%s was written by drizzle-kit generate, so %s should hold every table and column of %s, the snapshot before it in journal order, except what %s.sql drops; but it lacks %s. It was generated on a branch from an older parent and merged after %s. drizzle-kit check does not see it; a drizzle-kit generate that diffs against it adds them again, and drizzle-kit migrate then fails (\"already exists\").",
						m->tag, m->snapshot->file->name, m[-1].snapshot->file->name,
						m->tag, list, m[-1].tag),
			   stale_fix(check, m, list));
	}
}

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

static void
check_database(DrizzleCheck *check, Oid relid)
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

/*
 * A --custom migration still empty.  Pending, it would be recorded as
 * applied with nothing run; applied so already, SQL written into it now
 * would never run.
 */
static void
check_empty_custom(DrizzleCheck *check)
{
	int			i;

	for (i = 0; i < check->nmigrations; i++)
	{
		Migration  *m = &check->migrations[i];
		const char *what;

		if (!m->placeholder_only)
			continue;
		what = m->sql->len > 0 ? "drizzle-kit's --custom placeholder" : "empty";
		if (m->applied_row == NULL)
			report(check, LINEAGE_WARNING, "custom_migration_empty", m->tag,
				   psprintf("%s.sql is still %s: drizzle-kit migrate would record it as applied with no SQL, and SQL written into it afterwards would never run.",
							m->tag, what),
				   psprintf("Write the SQL into %s.sql before running drizzle-kit migrate, or delete the migration (its journal entry, SQL file and snapshot).",
							m->tag));
		else
			report(check, LINEAGE_WARNING, "custom_migration_applied_empty", m->tag,
				   psprintf("%s.sql was applied while %s, so it ran nothing; SQL written into it now would never run.",
							m->tag, what),
				   psprintf("Leave %s.sql as it is, and put the SQL it was meant for into a new migration (drizzle-kit generate --custom).",
							m->tag));
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
	read_snapshots(&check);
	check_unlisted_files(&check);
	index_snapshots(&check);
	check_collisions(&check);
	check_prev_ids(&check);
	check_cycles(&check);
	check_heads(&check);
	check_custom_snapshots(&check);
	if (OidIsValid(table))
		check_database(&check, table);
	check_stale_snapshots(&check);
	check_empty_custom(&check);
}
