/*
 * lineage.h
 *		Internal API of the migration-lineage checker: the manifest, string
 *		maps, findings, JSON and hashing helpers shared by the Drizzle checks
 *		(lineage.c) and the Prisma checks (lineage_prisma.c).
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

/* A string-keyed hash map (simplehash): file names, ids, tags, hashes. */
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
	const char *text;			/* NUL-terminated; may contain no NUL */
	int			len;
	bool		referenced;		/* named by the journal (or a Prisma folder) */
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

/*
 * Parses JSON text without throwing on bad syntax: returns NULL and sets
 * *problem to the parser's description when the text is not valid JSON.
 */
extern Jsonb *lineage_parse_json(const char *text, int len, char **problem);

/* A member of a JSON object, or NULL; and its value as a string or integer. */
extern JsonbValue *lineage_json_member(JsonbContainer *object, const char *key);
extern char *lineage_json_string(JsonbValue *value);
extern bool lineage_json_int64(JsonbValue *value, int64 *result);

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
