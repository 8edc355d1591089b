/*
 * lineage_prisma.c
 *		The Prisma checks of domi.lineage_check(): a prisma/migrations
 *		folder (NAME/migration.sql, migration_lock.toml) against
 *		_prisma_migrations.
 *
 * How Prisma Migrate records what ran (prisma-engines, schema-engine's
 * checksum module and its migration persistence): one row per attempt with
 * the folder name as migration_name, checksum = sha256 hex of
 * migration.sql, started_at, finished_at (NULL until it succeeded) and
 * rolled_back_at (set by "migrate resolve --rolled-back").  A checksum
 * matches (schema-engine's script_matches_checksum) when it is the sha256
 * of the script as it is, of the script with every CRLF made LF, or of the
 * script with every LF made CRLF: git changes line endings on checkout.
 * The comparison is of lower-case hex strings; a recorded checksum that is
 * not 64 characters long is compared with the digest written without
 * zero-padding ("{:x}" per byte), as an early schema engine wrote them
 * (prisma-engines issue 1887).  Folders are applied in the order of their
 * names.
 */
#include "postgres.h"

#include "lib/stringinfo.h"

#include "lineage_checks.h"

#define MIGRATION_SUFFIX	"/migration.sql"
#define LOCK_FILE			"migration_lock.toml"

typedef struct PrismaMigration
{
	const char *name;			/* the folder name */
	ManifestFile *sql;
	/* sha256 of the script as it is, with CRLF made LF, with LF made CRLF */
	unsigned char digest[3][LINEAGE_SHA256_BYTES];
	char		checksum[LINEAGE_SHA256_HEX];	/* of the script as it is */
	bool		applied;
	bool		failed;
} PrismaMigration;

static int
prisma_name_order(const void *a, const void *b)
{
	return strcmp(((const PrismaMigration *) a)->name,
				  ((const PrismaMigration *) b)->name);
}

/*
 * text with every "\r\n" made "\n" (to_crlf false), or every "\n" made
 * "\r\n" (to_crlf true; as Rust's replace, a "\r\n" becomes "\r\r\n")
 */
static void
convert_line_endings(StringInfo out, const char *text, int len, bool to_crlf)
{
	int			i;

	initStringInfo(out);
	for (i = 0; i < len; i++)
	{
		if (!to_crlf && text[i] == '\r' && i + 1 < len && text[i + 1] == '\n')
			continue;
		if (to_crlf && text[i] == '\n')
			appendStringInfoChar(out, '\r');
		appendStringInfoChar(out, text[i]);
	}
}

static void
compute_checksums(PrismaMigration *m)
{
	StringInfoData lf;
	StringInfoData crlf;

	convert_line_endings(&lf, m->sql->text, m->sql->len, false);
	convert_line_endings(&crlf, m->sql->text, m->sql->len, true);
	lineage_sha256(m->sql->text, m->sql->len, m->digest[0]);
	lineage_sha256(lf.data, lf.len, m->digest[1]);
	lineage_sha256(crlf.data, crlf.len, m->digest[2]);
	pfree(lf.data);
	pfree(crlf.data);
	lineage_sha256_hex(m->sql->text, m->sql->len, m->checksum);
}

/* A digest as Prisma writes it, or as its early versions did (unpadded). */
static void
format_checksum(const unsigned char *digest, bool padded, char *out)
{
	int			i;

	out[0] = '\0';
	for (i = 0; i < LINEAGE_SHA256_BYTES; i++)
		sprintf(out + strlen(out), padded ? "%02x" : "%x", digest[i]);
}

static bool
checksum_matches(PrismaMigration *m, const char *checksum)
{
	bool		padded = checksum[0] == '\0' || strlen(checksum) == LINEAGE_SHA256_HEX - 1;
	char		expected[LINEAGE_SHA256_HEX];
	int			i;

	for (i = 0; i < 3; i++)
	{
		format_checksum(m->digest[i], padded, expected);
		if (strcmp(expected, checksum) == 0)
			return true;
	}
	return false;
}

/* The local migrations, in the order Prisma applies them. */
static PrismaMigration *
read_folders(Manifest *manifest, int *count)
{
	PrismaMigration *migrations = palloc0(sizeof(PrismaMigration) * Max(manifest->nfiles, 1));
	size_t		suffix = strlen(MIGRATION_SUFFIX);
	int			n = 0;
	int			i;

	for (i = 0; i < manifest->nfiles; i++)
	{
		ManifestFile *file = &manifest->files[i];
		size_t		len = strlen(file->name);
		const char *slash = strchr(file->name, '/');

		if (len <= suffix || strcmp(file->name + len - suffix, MIGRATION_SUFFIX) != 0 ||
			slash != file->name + len - suffix)
			continue;
		file->referenced = true;
		migrations[n].name = pnstrdup(file->name, len - suffix);
		migrations[n].sql = file;
		compute_checksums(&migrations[n]);
		n++;
	}
	qsort(migrations, n, sizeof(PrismaMigration), prisma_name_order);
	*count = n;
	return migrations;
}

static void
check_lock_file(LineageFindings *findings, Manifest *manifest)
{
	ManifestFile *lock = lineage_strmap_get(manifest->by_name, LOCK_FILE);

	if (lock && strstr(pnstrdup(lock->text, lock->len), "\"postgresql\"") == NULL)
		lineage_report(findings, LINEAGE_WARNING, "prisma_lock_provider", LOCK_FILE,
					   "migration_lock.toml does not name the provider \"postgresql\": these migrations were made for another database.",
					   "Check the datasource provider in schema.prisma; if it is postgresql, set provider = \"postgresql\" in migration_lock.toml.");
}

void
lineage_check_prisma(LineageFindings *findings, Manifest *manifest, Oid relid)
{
	static const char *const columns[] = {"id", "checksum", "finished_at", "migration_name",
	"rolled_back_at", "started_at", NULL};
	PrismaMigration *migrations;
	int			nmigrations;
	strmap_hash *by_name;
	const char *table;
	const char *newest = NULL;
	List	   *rows;
	ListCell   *lc;
	int			i;

	check_lock_file(findings, manifest);
	migrations = read_folders(manifest, &nmigrations);
	by_name = lineage_strmap_create(nmigrations);
	for (i = 0; i < nmigrations; i++)
		lineage_strmap_put(by_name, migrations[i].name, &migrations[i]);
	if (!OidIsValid(relid))
		return;

	table = lineage_table_name(relid);
	lineage_require_columns(relid, "Prisma", columns);
	rows = lineage_read_rows(relid,
							 "id::text, checksum::text, (finished_at IS NOT NULL)::text, migration_name::text, (rolled_back_at IS NOT NULL)::text",
							 5, "started_at, migration_name");
	foreach(lc, rows)
	{
		char	  **row = lfirst(lc);
		const char *name = row[3] ? row[3] : "";
		bool		finished = row[2] && row[2][0] == 't';
		bool		rolled_back = row[4] && row[4][0] == 't';
		PrismaMigration *m = lineage_strmap_get(by_name, name);

		/* A rolled-back attempt is history: Prisma applies the folder again. */
		if (rolled_back)
			continue;
		if (!finished)
		{
			if (m)
				m->failed = true;
			lineage_report(findings, LINEAGE_ERROR, "prisma_failed_migration", name,
						   psprintf("%s started but neither finished nor was rolled back (row %s of %s): prisma migrate deploy refuses to apply anything until it is resolved, and part of its SQL may have run.",
									name, row[0] ? row[0] : "NULL", table),
						   psprintf("Repair the database by hand, then run prisma migrate resolve --rolled-back %s (to run it again) or prisma migrate resolve --applied %s (if you completed it by hand).",
									name, name));
			continue;
		}
		if (newest == NULL || strcmp(name, newest) > 0)
			newest = name;
		if (m == NULL)
		{
			lineage_report(findings, LINEAGE_ERROR, "prisma_applied_missing_locally", name,
						   psprintf("%s is applied in %s but there is no %s" MIGRATION_SUFFIX " in the folder: prisma migrate dev reports drift and offers to reset the database.",
									name, table, name),
						   psprintf("Restore the folder %s from version control (or from the branch that made it); if it was renamed, rename it back.", name));
			continue;
		}
		if (m->applied)
			continue;			/* recorded twice: compared once */
		m->applied = true;
		if (!checksum_matches(m, row[1] ? row[1] : ""))
			lineage_report(findings, LINEAGE_ERROR, "prisma_checksum_mismatch", name,
						   psprintf("%s" MIGRATION_SUFFIX " was edited after it ran: its sha256 is %s, and neither it nor the file with other line endings is the %s that %s recorded. prisma migrate deploy does not run it again, so the edit never reaches this database.",
									name, m->checksum, row[1] ? row[1] : "NULL", table),
						   psprintf("Restore %s" MIGRATION_SUFFIX " to the text that ran (see version control) and put the change into a new migration (prisma migrate dev --create-only).",
									name));
	}

	for (i = 0; i < nmigrations; i++)
	{
		PrismaMigration *m = &migrations[i];

		if (m->applied || m->failed)
			continue;
		if (newest && strcmp(m->name, newest) < 0)
			lineage_report(findings, LINEAGE_WARNING, "prisma_pending_out_of_order", m->name,
						   psprintf("%s is not applied, and its name sorts before %s, which is: it will run after migrations it was not written against (a merged branch).",
									m->name, newest),
						   psprintf("Rename the folder %s so that it sorts after %s (a later timestamp), after checking that its SQL still fits the schema.",
									m->name, newest));
		else
			lineage_report(findings, LINEAGE_INFO, "pending", m->name,
						   psprintf("%s is not applied yet; prisma migrate deploy will run it.", m->name),
						   NULL);
	}
}
