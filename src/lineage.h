/*
 * lineage.h
 *		Internal API of the migration-lineage checker: the manifest, string
 *		maps, findings, JSON and hashing helpers (lineage.c), the journal and
 *		snapshot readers (lineage_journal.c, lineage_snapshot.c), shared by
 *		the Drizzle checks (lineage_drizzle.c) and the Prisma checks
 *		(lineage_prisma.c).
 *
 * Everything here is allocated in the checker's per-call memory context,
 * which domi.lineage_check() deletes when it has returned its rows.
 */
#ifndef DOMI_LINEAGE_H
#define DOMI_LINEAGE_H

#include "nodes/pg_list.h"
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

/* The findings of one call, in the order they were found. */
typedef struct LineageFindings
{
	List	   *items;
} LineageFindings;

extern void lineage_report(LineageFindings *findings, LineageSeverity severity,
						   const char *code, const char *migration,
						   const char *detail, const char *fix);

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
 * Reads the string members "id", "prevId" and "version" of a JSON object in
 * one pass of the lexer, without building it: snapshots are most of a
 * manifest, and most of them need no more.  Returns false when the text is
 * not valid JSON (*problem says why) or not an object (*problem is NULL); a
 * member that is missing or not a string is NULL.  The parser's own
 * allocations go into scratch, which it resets.
 */
typedef struct SnapshotHeader
{
	char	   *id;
	char	   *prev_id;
	char	   *version;
} SnapshotHeader;

extern bool lineage_read_snapshot_header(const char *text, int len,
										 SnapshotHeader *header, char **problem,
										 MemoryContext scratch);

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

/* lineage_drizzle.c */
extern void lineage_check_drizzle(LineageFindings *findings, Manifest *manifest,
								  Oid table);

/* lineage_prisma.c */
extern void lineage_check_prisma(LineageFindings *findings, Manifest *manifest,
								 Oid table);

#endif							/* DOMI_LINEAGE_H */
