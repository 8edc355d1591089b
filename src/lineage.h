/*
 * lineage.h
 *		Internal API of the migration-lineage checker: the manifest (lineage.c),
 *		string maps, JSON and hashing helpers (lineage_util.c), the findings and their
 *		bound (lineage_findings.c), the journal and snapshot readers
 *		(lineage_journal.c, lineage_snapshot.c) and the snapshot comparison
 *		(lineage_snapshot_diff.c), shared by the Drizzle checks
 *		(lineage_drizzle*.c) and the Prisma checks (lineage_prisma.c).
 *		The checkers themselves are declared in lineage_checks.h, which only
 *		the dispatcher (lineage.c) and they include: nothing here calls up.
 *
 * Everything here is allocated in the checker's per-call memory context,
 * which domi.lineage_check() deletes when it has returned its rows.
 */
#ifndef DOMI_LINEAGE_H
#define DOMI_LINEAGE_H

#include "access/tupdesc.h"
#include "nodes/pg_list.h"
#include "utils/tuplestore.h"
#include "utils/jsonb.h"

/* 64 hex digits and a terminator: a sha256 as the migrators store it */
#define LINEAGE_SHA256_HEX	65

/* A string-keyed hash map (simplehash): file names, ids, hashes. */
typedef struct StrMapEntry
{
	const char *key;
	void	   *value;
	uint32		hash;
	char		status;
} StrMapEntry;

#define SH_PREFIX		strmap
#define SH_ELEMENT_TYPE StrMapEntry
#define SH_KEY_TYPE		const char *
#define SH_SCOPE		extern
#define SH_DECLARE
#include "lib/simplehash.h"

extern strmap_hash *lineage_strmap_create(int expected);
extern void *lineage_strmap_get(strmap_hash *map, const char *key);

/* Puts value under key unless key is there; returns the value now under key. */
extern void *lineage_strmap_put(strmap_hash *map, const char *key, void *value);

/* One file of the manifest: its name in the folder and its exact text. */
typedef struct ManifestFile
{
	const char *name;
	const char *text;			/* points into the manifest: not NUL-terminated */
	int			len;
	bool		referenced;		/* named by the journal (or a Prisma folder) */
	void	   *owner;			/* the checker's record that claimed it, or NULL */
} ManifestFile;

typedef struct Manifest
{
	int			nfiles;
	ManifestFile *files;		/* in the manifest's (jsonb key) order */
	strmap_hash *by_name;		/* name -> ManifestFile */
} Manifest;

typedef enum LineageSeverity
{
	LINEAGE_ERROR,				/* a schema change is or will be lost or skipped */
	LINEAGE_WARNING,			/* something is wrong, nothing lost yet */
	LINEAGE_INFO				/* for the record */
} LineageSeverity;

/*
 * lineage_findings.c: the findings of one call.  At most max_per_code
 * findings of each code are kept (copied into the findings' own context);
 * the others are only counted, and each code with findings left out gets
 * one summary row.  So a folder with a million broken entries costs the
 * memory of a few thousand findings, not of a million.
 */
#define LINEAGE_DEFAULT_MAX_PER_CODE	100
#define LINEAGE_MAX_MAX_PER_CODE		100000

typedef struct LineageFindings
{
	MemoryContext context;		/* the kept findings and their text */
	int			max_per_code;
	int			nfound;			/* every finding, kept or not: its order */
	List	   *items;			/* the kept ones (Finding) */
	strmap_hash *codes;	/* code -> its counts */
} LineageFindings;

extern void lineage_findings_init(LineageFindings *findings, int max_per_code);

/*
 * Counts one finding of code; true when it is to be kept (reported in
 * full).  lineage_finding_wanted tells the same without counting, for a
 * caller that builds a long text before it reports.
 */
extern bool lineage_finding_counted(LineageFindings *findings,
									LineageSeverity severity, const char *code);
extern bool lineage_finding_wanted(LineageFindings *findings, const char *code);
extern void lineage_finding_add(LineageFindings *findings, LineageSeverity severity,
								const char *code, const char *migration,
								const char *detail, const char *fix);

/*
 * Reports a finding.  A macro, as ereport is, so that the text of a finding
 * that is only counted is never formatted: detail and fix (usually
 * psprintf calls) are evaluated only for a kept finding.  Arguments must
 * have no side effects the checker relies on.
 */
#define lineage_report(findings, severity, code, migration, detail, fix) \
	do { \
		LineageFindings *lineage_findings_ = (findings); \
		LineageSeverity lineage_severity_ = (severity); \
		const char *lineage_code_ = (code); \
		if (lineage_finding_counted(lineage_findings_, lineage_severity_, lineage_code_)) \
			lineage_finding_add(lineage_findings_, lineage_severity_, lineage_code_, \
								(migration), (detail), (fix)); \
	} while (0)

/* Puts the findings into the result: errors, warnings, info, each in order found. */
extern void lineage_emit_findings(LineageFindings *findings, Tuplestorestate *store,
								  TupleDesc desc);

/* sha256 of the text's UTF-8 bytes, in lower-case hex, as Node's digest('hex') */
extern void lineage_sha256_hex(const char *text, int len, char *hex);

/* The same digest as 32 bytes (Prisma compares it in two spellings). */
#define LINEAGE_SHA256_BYTES 32
extern void lineage_sha256(const char *text, int len, unsigned char *digest);

/*
 * PostgreSQL's JSON parser recurses once per nested array or object and
 * stops the whole call with "stack depth limit exceeded" far below what
 * Node's JSON.parse reads.  drizzle-kit writes a handful of levels; text
 * nested deeper than this is reported as unreadable before it is parsed.
 */
#define LINEAGE_JSON_MAX_DEPTH 1000
extern bool lineage_json_too_deep(const char *text, int len);

/*
 * Parses JSON text without throwing on bad syntax: returns NULL and sets
 * *problem to the parser's description when the text is not valid JSON.
 */
extern Jsonb *lineage_parse_json(const char *text, int len, char **problem);

/*
 * The names a snapshot's "tables" holds: each table's key ("schema.name")
 * and the keys of its "columns", as drizzle-kit generate diffs them.
 * known is false when they could not be read on the fast path (a key with
 * an escape in it): such a snapshot is not compared.
 */
typedef struct SnapshotTable
{
	char	   *name;
	int			ncolumns;
	char	  **columns;		/* sorted by lineage_sort_snapshot_names */
} SnapshotTable;

typedef struct SnapshotNames
{
	bool		known;
	int			ntables;
	SnapshotTable *tables;		/* sorted by lineage_sort_snapshot_names */
	MemoryContext context;		/* where the names go */
} SnapshotNames;

/*
 * Reads the string members "id", "prevId" and "version" of a JSON object in
 * one pass of the lexer, without building it: snapshots are most of a
 * manifest, and most of them need no more.  Returns false when the text is
 * not valid JSON (*problem says why) or not an object (*problem is NULL); a
 * member that is missing or not a string is NULL.  The parser's own
 * allocations go into scratch, which it resets.  With names not NULL, the
 * same pass reads the table and column names into names->context.
 */
typedef struct SnapshotHeader
{
	char	   *id;
	char	   *prev_id;
	char	   *version;
} SnapshotHeader;

extern bool lineage_read_snapshot_header(const char *text, int len,
										 SnapshotHeader *header, char **problem,
										 MemoryContext scratch,
										 SnapshotNames *names);

/*
 * lineage_snapshot_diff.c: what a generated snapshot lacks of the snapshot
 * before it, which its own SQL did not drop or rename: after a merge, what
 * the next drizzle-kit generate would add again.  Each name is "table K" or
 * "column K.C"; the first LINEAGE_MAX_NAMED are listed, all are counted.
 */
#define LINEAGE_MAX_NAMED 20

typedef struct SnapshotLack
{
	int			count;
	int			nnamed;
	char	   *named[LINEAGE_MAX_NAMED];
} SnapshotLack;

extern void lineage_sort_snapshot_names(SnapshotNames *names);
extern void lineage_snapshot_lacks(SnapshotNames *parent, SnapshotNames *child,
								   const char *sql, int sql_len, SnapshotLack *lack);
extern char *lineage_lack_list(SnapshotLack *lack);

/*
 * lineage_journal.c: drizzle-kit's meta/_journal.json, entry by entry.
 * Returns false when the text is not valid JSON (*problem says why) or not
 * an object (*problem is NULL).  An entry that is not an object, or whose
 * "tag" is not a string or "idx"/"when" not an integer, says so in its
 * fields.
 */
typedef struct JournalEntry
{
	bool		is_object;
	char	   *tag;			/* NULL when missing or not a string */
	bool		has_idx;
	bool		has_when;
	int64		idx;
	int64		when;
} JournalEntry;

typedef struct Journal
{
	bool		has_entries;	/* the root has an "entries" array */
	int			nentries;
	JournalEntry *entries;
} Journal;

extern bool lineage_read_journal(const char *text, int len, Journal *journal,
								 char **problem);

/* Whether text (len bytes, not NUL-terminated) starts with prefix. */
static inline bool
lineage_starts_with(const char *text, int len, const char *prefix)
{
	size_t		plen = strlen(prefix);

	return (size_t) len >= plen && memcmp(text, prefix, plen) == 0;
}

/* A member of a JSON object, or NULL; and its value as a string, or NULL. */
extern JsonbValue *lineage_json_member(JsonbContainer *object, const char *key);
extern char *lineage_json_string(JsonbValue *value);

/*
 * The migrations table.  lineage_read_rows runs "SELECT columns FROM table
 * ORDER BY order_by" through SPI with the caller's rights (read-only) and
 * returns one char *[ncolumns] per row, each value as text or NULL.
 */
extern char *lineage_table_name(Oid relid);
extern void lineage_require_columns(Oid relid, const char *kind,
									const char *const *columns);
extern List *lineage_read_rows(Oid relid, const char *columns, int ncolumns,
							   const char *order_by);

#endif							/* DOMI_LINEAGE_H */
