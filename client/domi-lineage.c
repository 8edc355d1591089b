/*
 * domi-lineage.c
 *		Checks a migrations folder against the database before it is
 *		migrated: sends the folder's files to domi.lineage_check() and prints
 *		the findings for a person.
 *
 *	domi-lineage [--prisma] [--schema-truth] [--migrations-table NAME] [-d CONNSTR]
 *				 [--fail-on error|warning] [--max-findings N] [--] DIR
 *
 * DIR is a drizzle-kit "out" folder (meta/_journal.json, meta/NAME.json,
 * *.sql) or, with --prisma, a prisma/migrations folder (NAME/migration.sql,
 * migration_lock.toml).  The connection comes from -d (a connection string
 * or URI) or the usual libpq environment (PGHOST, PGDATABASE, ...).
 *
 * Exit status: 0 no error-level finding, 1 at least one, 2 could not check
 * (no folder, no connection, no domi extension, the server refused).  With
 * --fail-on warning, a warning fails too (1): an empty --custom placeholder
 * waiting to be migrated is a warning.  Made for a CI step before
 * "drizzle-kit migrate" or "prisma migrate deploy".
 *
 * The server lists at most --max-findings findings of each code (default
 * 100) and one summary row per code for the rest; the totals printed at
 * the end count every finding, listed or not.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "libpq-fe.h"

#define EXIT_CLEAN		0
#define EXIT_FINDINGS	1
#define EXIT_CANNOT		2

static const char *progname = "domi-lineage";

/* A growing string: the manifest as JSON. */
typedef struct Buffer
{
	char	   *data;
	size_t		len;
	size_t		cap;
} Buffer;

static void fail(const char *fmt,...) __attribute__((format(printf, 1, 2), noreturn));

static void
fail(const char *fmt,...)
{
	va_list		args;

	fprintf(stderr, "%s: could not check: ", progname);
	va_start(args, fmt);
	vfprintf(stderr, fmt, args);
	va_end(args);
	fputc('\n', stderr);
	exit(EXIT_CANNOT);
}

/* libpq's message without its final newline, for fail(). */
static const char *
pq_message(PGconn *conn)
{
	static char message[4096];
	size_t		len;

	snprintf(message, sizeof(message), "%s", PQerrorMessage(conn));
	len = strlen(message);
	while (len > 0 && message[len - 1] == '\n')
		message[--len] = '\0';
	return message;
}

static void
buffer_append(Buffer *buf, const char *data, size_t len)
{
	if (buf->len + len + 1 > buf->cap)
	{
		size_t		cap = buf->cap ? buf->cap : 4096;

		while (buf->len + len + 1 > cap)
			cap *= 2;
		buf->data = realloc(buf->data, cap);
		if (buf->data == NULL)
			fail("out of memory");
		buf->cap = cap;
	}
	memcpy(buf->data + buf->len, data, len);
	buf->len += len;
	buf->data[buf->len] = '\0';
}

static void
buffer_puts(Buffer *buf, const char *s)
{
	buffer_append(buf, s, strlen(s));
}

/* A JSON string: quotes, backslashes and control characters escaped. */
static void
buffer_json_string(Buffer *buf, const char *s, size_t len)
{
	size_t		i;

	buffer_puts(buf, "\"");
	for (i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];
		char		escape[8];

		if (c == '"' || c == '\\')
		{
			escape[0] = '\\';
			escape[1] = (char) c;
			buffer_append(buf, escape, 2);
		}
		else if (c < 0x20)
		{
			snprintf(escape, sizeof(escape), "\\u%04x", c);
			buffer_puts(buf, escape);
		}
		else
			buffer_append(buf, (const char *) &s[i], 1);
	}
	buffer_puts(buf, "\"");
}

static char *
path_join(const char *dir, const char *name)
{
	size_t		len = strlen(dir) + strlen(name) + 2;
	char	   *path = malloc(len);

	if (path == NULL)
		fail("out of memory");
	snprintf(path, len, "%s/%s", dir, name);
	return path;
}

static bool
has_suffix(const char *name, const char *suffix)
{
	size_t		len = strlen(name);
	size_t		slen = strlen(suffix);

	return len > slen && strcmp(name + len - slen, suffix) == 0;
}

/*
 * jsonb holds at most 2^28 - 1 bytes (JENTRY_OFFLENMASK), so the files of
 * one manifest cannot total more: say so before reading gigabytes.
 */
#define MANIFEST_MAX_BYTES	268435455

/* The manifest being built from a folder. */
typedef struct Folder
{
	const char *dir;
	bool		prisma;
	Buffer		manifest;
	int			nfiles;
	size_t		total;			/* bytes of file text so far */
} Folder;

static void
too_large(Folder *folder)
{
	fail("the files in \"%s\" total more than %d bytes, more than the manifest (one jsonb value) can hold",
		 folder->dir, MANIFEST_MAX_BYTES);
}

/*
 * The length of the well-formed UTF-8 sequence at s, or 0 when it is not
 * one; *consumed is then the length of its maximal ill-formed prefix, which
 * a decoder replaces by one U+FFFD (the WHATWG Encoding Standard's UTF-8
 * decoder, which Node's Buffer.toString() follows).
 */
static size_t
utf8_sequence(const unsigned char *s, size_t avail, size_t *consumed)
{
	unsigned char lo = 0x80;
	unsigned char hi = 0xBF;
	size_t		need;
	size_t		i;

	if (s[0] < 0x80)
		need = 0;
	else if (s[0] >= 0xC2 && s[0] <= 0xDF)
		need = 1;
	else if (s[0] >= 0xE0 && s[0] <= 0xEF)
	{
		need = 2;
		if (s[0] == 0xE0)
			lo = 0xA0;			/* overlong */
		if (s[0] == 0xED)
			hi = 0x9F;			/* surrogates */
	}
	else if (s[0] >= 0xF0 && s[0] <= 0xF4)
	{
		need = 3;
		if (s[0] == 0xF0)
			lo = 0x90;			/* overlong */
		if (s[0] == 0xF4)
			hi = 0x8F;			/* above U+10FFFF */
	}
	else
	{
		*consumed = 1;
		return 0;
	}
	for (i = 1; i <= need; i++)
	{
		if (i >= avail || s[i] < lo || s[i] > hi)
		{
			*consumed = i;
			return 0;
		}
		lo = 0x80;
		hi = 0xBF;
	}
	*consumed = need + 1;
	return need + 1;
}

/*
 * The text as drizzle-orm's migrator reads and hashes it:
 * fs.readFileSync(path).toString(), every ill-formed UTF-8 sequence made
 * U+FFFD.  Returns the number of replacements; with replace off, only
 * counts them.
 */
static size_t
node_utf8(const char *text, size_t len, Buffer *out, bool replace)
{
	const unsigned char *s = (const unsigned char *) text;
	size_t		replaced = 0;
	size_t		i = 0;

	while (i < len)
	{
		size_t		consumed;

		if (utf8_sequence(s + i, len - i, &consumed) == 0)
		{
			replaced++;
			if (replace)
				buffer_append(out, "\xEF\xBF\xBD", 3);
		}
		else if (replace)
			buffer_append(out, text + i, consumed);
		i += consumed;
	}
	return replaced;
}

/*
 * Adds "name": "<text of path>" to the manifest when path is a regular file
 * (after symlinks, as the migrators read it); returns whether it did.
 * Opened before it is looked at, and without waiting, so that a FIFO or a
 * device named like a migration is skipped instead of blocking or being
 * read forever.
 */
static bool
add_file(Folder *folder, const char *name, const char *path)
{
	int			fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	Buffer		text = {NULL, 0, 0};
	char		chunk[65536];
	ssize_t		n;

	if (fd < 0)
	{
		if (errno == ENOENT || errno == ENOTDIR)
			return false;
		fail("cannot open \"%s\": %s", path, strerror(errno));
	}
	if (fstat(fd, &st) != 0)
		fail("cannot stat \"%s\": %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode))
	{
		close(fd);
		return false;
	}
	if ((size_t) st.st_size > MANIFEST_MAX_BYTES - folder->total)
		too_large(folder);

	buffer_append(&text, "", 0);
	while ((n = read(fd, chunk, sizeof(chunk))) != 0)
	{
		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			fail("cannot read \"%s\": %s", path, strerror(errno));
		}
		if ((size_t) n > MANIFEST_MAX_BYTES - folder->total - text.len)
			too_large(folder);	/* it grew while we read it */
		buffer_append(&text, chunk, n);
	}
	close(fd);

	if (memchr(text.data, '\0', text.len) != NULL)
		fail("\"%s\" contains a NUL byte, which PostgreSQL text cannot hold", path);
	if (node_utf8(text.data, text.len, NULL, false) > 0)
	{
		Buffer		decoded = {NULL, 0, 0};

		/* Prisma's engine refuses such a file; drizzle-orm hashes U+FFFD. */
		if (folder->prisma)
			fail("\"%s\" is not valid UTF-8, and Prisma cannot read it either", path);
		buffer_append(&decoded, "", 0);
		node_utf8(text.data, text.len, &decoded, true);
		free(text.data);
		text = decoded;
		if (text.len > MANIFEST_MAX_BYTES - folder->total)
			too_large(folder);
	}
	folder->total += text.len;

	if (folder->nfiles++ > 0)
		buffer_puts(&folder->manifest, ",");
	buffer_json_string(&folder->manifest, name, strlen(name));
	buffer_puts(&folder->manifest, ":");
	buffer_json_string(&folder->manifest, text.data, text.len);
	free(text.data);
	return true;
}

static int
name_order(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/*
 * The entries of dir, sorted, without "." and ".."; NULL when dir does not
 * exist.  A folder that exists but cannot be read stops the check: a
 * missing journal would be reported for what is only a permission problem.
 */
static char **
list_dir(const char *dir, int *count)
{
	DIR		   *d = opendir(dir);
	struct dirent *e;
	char	  **names = NULL;
	int			n = 0;
	int			cap = 0;

	*count = 0;
	if (d == NULL)
	{
		if (errno == ENOENT)
			return NULL;
		fail("cannot read directory \"%s\": %s", dir, strerror(errno));
	}
	errno = 0;
	while ((e = readdir(d)) != NULL)
	{
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (n == cap)
		{
			cap = cap ? cap * 2 : 64;
			names = realloc(names, sizeof(char *) * cap);
			if (names == NULL)
				fail("out of memory");
		}
		names[n] = strdup(e->d_name);
		if (names[n] == NULL)
			fail("out of memory");
		n++;
		errno = 0;
	}
	if (errno != 0)
		fail("cannot read directory \"%s\": %s", dir, strerror(errno));
	closedir(d);
	if (n > 0)
		qsort(names, n, sizeof(char *), name_order);
	*count = n;
	return names;
}

static void
free_names(char **names, int n)
{
	int			i;

	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* A drizzle-kit folder: *.sql at the top, meta/NAME.json below. */
static void
add_drizzle_files(Folder *folder)
{
	char	   *meta = path_join(folder->dir, "meta");
	char	  **names;
	int			n;
	int			i;

	names = list_dir(folder->dir, &n);
	for (i = 0; i < n; i++)
	{
		char	   *path = path_join(folder->dir, names[i]);

		if (has_suffix(names[i], ".sql"))
			add_file(folder, names[i], path);
		free(path);
	}
	free_names(names, n);
	names = list_dir(meta, &n);
	for (i = 0; i < n; i++)
	{
		char	   *path = path_join(meta, names[i]);
		char	   *name = path_join("meta", names[i]);

		if (has_suffix(names[i], ".json"))
			add_file(folder, name, path);
		free(path);
		free(name);
	}
	free_names(names, n);
	free(meta);
}

/* A prisma/migrations folder: NAME/migration.sql and migration_lock.toml. */
static void
add_prisma_files(Folder *folder)
{
	char	  **names;
	int			n;
	int			i;
	char	   *lock = path_join(folder->dir, "migration_lock.toml");

	add_file(folder, "migration_lock.toml", lock);
	free(lock);
	names = list_dir(folder->dir, &n);
	for (i = 0; i < n; i++)
	{
		char	   *sub = path_join(folder->dir, names[i]);
		char	   *path = path_join(sub, "migration.sql");
		char	   *name = path_join(names[i], "migration.sql");

		add_file(folder, name, path);
		free(sub);
		free(path);
		free(name);
	}
	free_names(names, n);
}

static void
usage(FILE *out)
{
	fprintf(out,
			"Usage: %s [--prisma] [--schema-truth] [--migrations-table NAME] [-d CONNSTR]\n"
			"       [--fail-on error|warning] [--max-findings N] [--] DIR\n"
			"\n"
			"Checks the migrations folder DIR (drizzle-kit's, or prisma/migrations with\n"
			"--prisma) and the database's record of what ran, with domi.lineage_check().\n"
			"\n"
			"  --prisma                 DIR is a Prisma migrations folder\n"
			"  --schema-truth           also the live schema's drift from the newest applied\n"
			"                           snapshot and DDL run outside migrations (domi.ddl_ledger)\n"
			"  --migrations-table NAME  the migrations table (default drizzle.__drizzle_migrations,\n"
			"                           or _prisma_migrations with --prisma)\n"
			"  -d, --dbname CONNSTR     connection string or URI (default: PG* environment)\n"
			"  --fail-on error|warning  exit 1 on any error (default), or on any error or warning\n"
			"  --max-findings N         list at most N findings of each code, and count the rest\n"
			"                           (default 100; 0 only counts)\n"
			"\n"
			"Exit status: 0 no finding at the --fail-on level or above, 1 at least one,\n"
			"2 could not check.\n",
			progname);
}

/*
 * How many findings a row stands for: 1, or for the server's summary row of
 * a code (migration NULL, detail "N more CODE findings left out: ..." or
 * "N CODE findings left out: ..."), the N it left out.
 */
static long long
findings_in_row(PGresult *res, int row)
{
	const char *detail = PQgetvalue(res, row, 3);
	const char *code = PQgetvalue(res, row, 1);
	size_t		codelen = strlen(code);
	char	   *end;
	long long	n;

	if (!PQgetisnull(res, row, 2))
		return 1;
	errno = 0;
	n = strtoll(detail, &end, 10);
	if (end == detail || errno != 0 || n < 0 || *end != ' ')
		return 1;
	end++;
	if (strncmp(end, "more ", 5) == 0)
		end += 5;
	if (strncmp(end, code, codelen) != 0 || end[codelen] != ' ' ||
		(strncmp(end + codelen, " finding left out: ", 19) != 0 &&
		 strncmp(end + codelen, " findings left out: ", 20) != 0))
		return 1;
	return n;
}

typedef struct Totals
{
	long long	errors;
	long long	warnings;
	long long	infos;
} Totals;

/* Prints one finding per line and the totals; counts them into totals. */
static void
print_findings(PGresult *res, const char *dir, Totals *totals)
{
	long long	errors = 0;
	long long	warnings = 0;
	long long	infos = 0;
	int			i;

	for (i = 0; i < PQntuples(res); i++)
	{
		const char *severity = PQgetvalue(res, i, 0);

		printf("%s: %s: ", severity, PQgetvalue(res, i, 1));
		if (!PQgetisnull(res, i, 2))
			printf("%s: ", PQgetvalue(res, i, 2));
		printf("%s", PQgetvalue(res, i, 3));
		if (!PQgetisnull(res, i, 4))
			printf(" Fix: %s", PQgetvalue(res, i, 4));
		printf("\n");
		if (strcmp(severity, "error") == 0)
			errors += findings_in_row(res, i);
		else if (strcmp(severity, "warning") == 0)
			warnings += findings_in_row(res, i);
		else
			infos += findings_in_row(res, i);
	}
	printf("%s: %lld error%s, %lld warning%s, %lld info in %s\n", progname,
		   errors, errors == 1 ? "" : "s", warnings, warnings == 1 ? "" : "s",
		   infos, dir);
	totals->errors = errors;
	totals->warnings = warnings;
	totals->infos = infos;
}

int
main(int argc, char **argv)
{
	const char *conninfo = NULL;
	const char *table = NULL;
	const char *dir = NULL;
	bool		prisma = false;
	bool		fail_on_warning = false;
	const char *max_findings = NULL;
	bool		schema_truth = false;
	Folder		folder;
	PGconn	   *conn;
	PGresult   *res;
	const char *params[3];
	Totals		totals;
	int			i;
	struct stat st;

	for (i = 1; i < argc; i++)
	{
		if (strcmp(argv[i], "--prisma") == 0)
			prisma = true;
		else if (strcmp(argv[i], "--schema-truth") == 0)
			schema_truth = true;
		else if (strcmp(argv[i], "--migrations-table") == 0 && i + 1 < argc)
			table = argv[++i];
		else if ((strcmp(argv[i], "-d") == 0 || strcmp(argv[i], "--dbname") == 0) && i + 1 < argc)
			conninfo = argv[++i];
		else if (strcmp(argv[i], "--fail-on") == 0 && i + 1 < argc &&
				 (strcmp(argv[i + 1], "error") == 0 || strcmp(argv[i + 1], "warning") == 0))
			fail_on_warning = strcmp(argv[++i], "warning") == 0;
		else if (strcmp(argv[i], "--max-findings") == 0 && i + 1 < argc &&
				 argv[i + 1][0] >= '0' && argv[i + 1][0] <= '9' &&
				 strspn(argv[i + 1], "0123456789") == strlen(argv[i + 1]))
			max_findings = argv[++i];	/* the server checks the range */
		else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
		{
			usage(stdout);
			return EXIT_CLEAN;
		}
		else if (strcmp(argv[i], "--") == 0 && i + 2 == argc && dir == NULL)
			dir = argv[++i];	/* a folder whose name starts with "-" */
		else if (argv[i][0] == '-' || dir != NULL)
		{
			usage(stderr);
			return EXIT_CANNOT;
		}
		else
			dir = argv[i];
	}
	if (dir == NULL)
	{
		usage(stderr);
		return EXIT_CANNOT;
	}
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
		fail("\"%s\" is not a directory", dir);

	memset(&folder, 0, sizeof(folder));
	folder.dir = dir;
	folder.prisma = prisma;
	buffer_puts(&folder.manifest, prisma ? "{\"format\":\"prisma\"," : "{\"format\":\"drizzle\",");
	/* drift and out-of-chain DDL too (docs/schema-truth.md) */
	if (schema_truth)
		buffer_puts(&folder.manifest, "\"schema_truth\":true,");
	buffer_puts(&folder.manifest, "\"files\":{");
	if (prisma)
		add_prisma_files(&folder);
	else
		add_drizzle_files(&folder);
	buffer_puts(&folder.manifest, "}}");
	if (folder.nfiles == 0)
		fail("\"%s\" holds no migration files (%s)", dir,
			 prisma ? "NAME/migration.sql" : "meta/_journal.json, meta/NAME.json, *.sql");

	{
		/* As psql -d: a database name, a connection string or a URI. */
		const char *keywords[] = {"dbname", "fallback_application_name", NULL};
		const char *values[] = {conninfo, progname, NULL};

		conn = PQconnectdbParams(keywords, values, 1);
	}
	if (PQstatus(conn) != CONNECTION_OK)
		fail("%s", pq_message(conn));
	/* The files are UTF-8, as the migrators read them. */
	if (PQsetClientEncoding(conn, "UTF8") != 0)
		fail("%s", pq_message(conn));

	params[0] = folder.manifest.data;
	params[1] = table;
	params[2] = max_findings;
	/* Only with --max-findings the third argument: 0.2.0's function has two. */
	res = PQexecParams(conn,
					   max_findings
					   ? "SELECT severity, code, migration, detail, fix "
					   "FROM domi.lineage_check($1::jsonb, $2::regclass, $3::integer)"
					   : "SELECT severity, code, migration, detail, fix "
					   "FROM domi.lineage_check($1::jsonb, $2::regclass)",
					   max_findings ? 3 : 2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		const char *sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);

		if (sqlstate && strcmp(sqlstate, "3F000") == 0)
			fail("the domi extension is not installed in this database (CREATE EXTENSION domi): %s",
				 pq_message(conn));
		if (sqlstate && strcmp(sqlstate, "42883") == 0)
			fail("this database's domi has no lineage_check (ALTER EXTENSION domi UPDATE to 0.2.0 or later): %s",
				 pq_message(conn));
		fail("%s", pq_message(conn));
	}
	print_findings(res, dir, &totals);
	PQclear(res);
	PQfinish(conn);
	free(folder.manifest.data);
	if (totals.errors > 0 || (fail_on_warning && totals.warnings > 0))
		return EXIT_FINDINGS;
	return EXIT_CLEAN;
}
