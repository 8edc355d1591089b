/*
 * lineage.c
 *		domi.lineage_check(manifest jsonb, migrations_table regclass): checks
 *		an ORM's migration folder against itself and against the database's
 *		record of what ran, and returns one row per finding.
 *
 * The manifest carries the folder's files by name, each as its exact text,
 * so that the sha256 we compute is over the bytes the migrator hashed:
 *
 *		{"format": "drizzle" | "prisma",
 *		 "files": {"meta/_journal.json": "...", "0000_init.sql": "...", ...}}
 *
 * This file holds the SQL function, the manifest and the helpers both
 * checkers share (string maps, JSON, sha256, the migrations
 * table).  The Drizzle checks are in lineage_drizzle.c (with the readers
 * of its journal and snapshots in lineage_journal.c and lineage_snapshot.c),
 * the Prisma checks in lineage_prisma.c.
 *
 * The function only reads: the files come from the manifest and the
 * migrations table is read through SPI with the caller's rights, so reading
 * it needs the caller's SELECT privilege on it.  All the work happens in a
 * memory context of its own, deleted before returning; every lookup is a
 * hash table, so the time grows linearly with the number of migrations
 * (bench/lineage).  The memory is bounded by a small multiple of the
 * manifest whatever it holds: at most max_findings_per_code findings of a
 * code are kept (lineage_findings.c), snapshots are read by a walk that
 * keeps their names, not built, and what is kept per journal entry is a
 * few fixed-size fields (bench/lineage measures the peak).
 */
#include "postgres.h"

#include <sodium.h>

#include "catalog/namespace.h"
#include "common/hashfn.h"
#include "common/jsonapi.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "nodes/makefuncs.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "lineage.h"
#include "ledger_lineage.h"

PG_FUNCTION_INFO_V1(domi_lineage_check);

/* The string map: simplehash over NUL-terminated keys. */
#define SH_PREFIX		strmap
#define SH_ELEMENT_TYPE StrMapEntry
#define SH_KEY_TYPE		const char *
#define SH_KEY			key
#define SH_HASH_KEY(tb, k)	hash_bytes((const unsigned char *) (k), strlen(k))
#define SH_EQUAL(tb, a, b)	(strcmp(a, b) == 0)
#define SH_STORE_HASH
#define SH_GET_HASH(tb, a)	((a)->hash)
#define SH_SCOPE		extern
#define SH_DEFINE
#include "lib/simplehash.h"

strmap_hash *
lineage_strmap_create(int expected)
{
	return strmap_create(CurrentMemoryContext, Max(expected, 16), NULL);
}

void *
lineage_strmap_get(strmap_hash *map, const char *key)
{
	StrMapEntry *entry = strmap_lookup(map, key);

	return entry ? entry->value : NULL;
}

void *
lineage_strmap_put(strmap_hash *map, const char *key, void *value)
{
	bool		found;
	StrMapEntry *entry = strmap_insert(map, key, &found);

	if (!found)
		entry->value = value;
	return entry->value;
}

/*
 * Hashing and JSON
 */
void
lineage_sha256_hex(const char *text, int len, char *hex)
{
	unsigned char digest[crypto_hash_sha256_BYTES];

	lineage_sha256(text, len, digest);
	sodium_bin2hex(hex, LINEAGE_SHA256_HEX, digest, sizeof(digest));
}

void
lineage_sha256(const char *text, int len, unsigned char *digest)
{
	const char *utf8 = text;

	StaticAssertStmt(LINEAGE_SHA256_BYTES == crypto_hash_sha256_BYTES,
					 "sha256 digest size");

	/* The migrators hash UTF-8; jsonb text is in the database encoding. */
	if (GetDatabaseEncoding() != PG_UTF8)
		utf8 = pg_server_to_any(text, len, PG_UTF8);
	if (utf8 != text)
		len = strlen(utf8);
	crypto_hash_sha256(digest, (const unsigned char *) utf8, len);
	if (utf8 != text)
		pfree(unconstify(char *, utf8));
}

/*
 * Counts brackets outside strings, in one pass over the bytes; the text need
 * not be valid JSON (an unterminated string just ends the count).
 */
bool
lineage_json_too_deep(const char *text, int len)
{
	int			depth = 0;
	int			i = 0;

	while (i < len)
	{
		char		c = text[i++];

		if (c == '"')
		{
			while (i < len && text[i] != '"')
				i += (text[i] == '\\') ? 2 : 1;
			i++;
		}
		else if (c == '{' || c == '[')
		{
			if (++depth > LINEAGE_JSON_MAX_DEPTH)
				return true;
		}
		else if (c == '}' || c == ']')
			depth--;
	}
	return false;
}

Jsonb *
lineage_parse_json(const char *text, int len, char **problem)
{
	JsonLexContext *lex;
	JsonParseErrorType result;

	/*
	 * Validate first with the lexer, which reports instead of throwing, so
	 * that a malformed file is a finding and not an aborted call.  With
	 * escapes decoded it also refuses what jsonb_in would (\u0000, and
	 * non-ASCII escapes in a database that is not UTF-8).
	 */
	char	   *copy = pnstrdup(text, len);	/* jsonb_in wants a C string */
	Jsonb	   *doc;

	lex = makeJsonLexContextCstringLen(copy, len, GetDatabaseEncoding(), true);
	result = pg_parse_json(lex, &nullSemAction);
	if (result != JSON_SUCCESS)
	{
		*problem = json_errdetail(result, lex);
		return NULL;
	}
	doc = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(copy)));
	pfree(copy);
	return doc;
}

JsonbValue *
lineage_json_member(JsonbContainer *object, const char *key)
{
	if (object == NULL || !JsonContainerIsObject(object))
		return NULL;
	return getKeyJsonValueFromContainer(object, key, strlen(key), NULL);
}

char *
lineage_json_string(JsonbValue *value)
{
	if (value == NULL || value->type != jbvString)
		return NULL;
	return pnstrdup(value->val.string.val, value->val.string.len);
}

/*
 * The migrations table
 */
char *
lineage_table_name(Oid relid)
{
	char	   *relname = get_rel_name(relid);

	if (relname == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("migrations table with OID %u does not exist", relid)));
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  relname);
}

/* Refuse a table that is not the migrator's, before querying it. */
void
lineage_require_columns(Oid relid, const char *kind, const char *const *columns)
{
	for (; *columns; columns++)
	{
		if (get_attnum(relid, *columns) == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("table %s is not a %s migrations table",
							lineage_table_name(relid), kind),
					 errdetail("It has no column \"%s\".", *columns)));
	}
}

List *
lineage_read_rows(Oid relid, const char *columns, int ncolumns,
				  const char *order_by)
{
	MemoryContext work = CurrentMemoryContext;
	char	   *query;
	List	   *rows = NIL;
	int			ret;
	uint64		i;

	/* The table name is quoted; there are no values to pass. */
	query = psprintf("SELECT %s FROM %s ORDER BY %s",
					 columns, lineage_table_name(relid), order_by);
	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
	ret = SPI_execute(query, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(ret));
	if (SPI_tuptable->tupdesc->natts != ncolumns)
		elog(ERROR, "migrations table query returned %d columns, expected %d",
			 SPI_tuptable->tupdesc->natts, ncolumns);

	/* Copy the rows out of SPI's memory, which SPI_finish frees. */
	for (i = 0; i < SPI_processed; i++)
	{
		MemoryContext spi = MemoryContextSwitchTo(work);
		char	  **row = palloc(sizeof(char *) * ncolumns);
		int			col;

		for (col = 0; col < ncolumns; col++)
			row[col] = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc,
									col + 1);
		rows = lappend(rows, row);
		MemoryContextSwitchTo(spi);
	}
	SPI_finish();
	return rows;
}

/*
 * The manifest
 */
static void
invalid_manifest(const char *message, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s", message),
			 detail ? errdetail("%s", detail) : 0,
			 errhint("The manifest is {\"format\": \"drizzle\" or \"prisma\", \"files\": {\"name\": \"text\", ...}}; domi-lineage builds it from a migrations folder.")));
}

static Manifest *
manifest_from_jsonb(Jsonb *doc, const char **format)
{
	JsonbValue *format_value;
	JsonbValue *files_value;
	Manifest   *manifest;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken token;
	int			n = 0;

	if (!JB_ROOT_IS_OBJECT(doc))
		invalid_manifest("manifest must be a JSON object", NULL);

	format_value = lineage_json_member(&doc->root, "format");
	if (format_value == NULL)
		*format = "drizzle";
	else if ((*format = lineage_json_string(format_value)) == NULL ||
			 (strcmp(*format, "drizzle") != 0 && strcmp(*format, "prisma") != 0))
		invalid_manifest("unrecognized migrations format in the manifest",
						 "\"format\" must be \"drizzle\" or \"prisma\".");

	files_value = lineage_json_member(&doc->root, "files");
	if (files_value == NULL || files_value->type != jbvBinary ||
		!JsonContainerIsObject(files_value->val.binary.data))
		invalid_manifest("manifest has no \"files\" object",
						 "\"files\" must map each file name to its text.");

	manifest = palloc0(sizeof(Manifest));
	manifest->nfiles = JsonContainerSize(files_value->val.binary.data);
	manifest->files = palloc0(sizeof(ManifestFile) * Max(manifest->nfiles, 1));
	manifest->by_name = lineage_strmap_create(manifest->nfiles);

	it = JsonbIteratorInit(files_value->val.binary.data);
	while ((token = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		ManifestFile *file;

		if (token == WJB_KEY)
		{
			file = &manifest->files[n];
			file->name = pnstrdup(v.val.string.val, v.val.string.len);
			continue;
		}
		if (token != WJB_VALUE)
			continue;
		file = &manifest->files[n];
		if (v.type != jbvString)
			invalid_manifest("manifest file is not a string",
							 psprintf("The value of \"%s\" in \"files\" must be the file's text.",
									  file->name));
		/* No copy: the manifest stays in memory for the whole call. */
		file->text = v.val.string.val;
		file->len = v.val.string.len;
		lineage_strmap_put(manifest->by_name, file->name, file);
		n++;
	}
	return manifest;
}

/* The default migrations table of each format, when it exists. */
static Oid
default_migrations_table(const char *format)
{
	RangeVar   *rv;

	if (strcmp(format, "drizzle") == 0)
		rv = makeRangeVar("drizzle", "__drizzle_migrations", -1);
	else
		rv = makeRangeVar(NULL, "_prisma_migrations", -1);
	return RangeVarGetRelid(rv, NoLock, true);
}

/*
 * The third argument, when the SQL declaration has it (0.3.0; 0.2.0's has
 * two): NULL means the default.
 */
static int
max_findings_per_code(FunctionCallInfo fcinfo)
{
	int32		max;

	if (PG_NARGS() < 3 || PG_ARGISNULL(2))
		return LINEAGE_DEFAULT_MAX_PER_CODE;
	max = PG_GETARG_INT32(2);
	if (max < 0 || max > LINEAGE_MAX_MAX_PER_CODE)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_findings_per_code must be between 0 and %d",
						LINEAGE_MAX_MAX_PER_CODE),
				 errdetail("It was %d.", max)));
	return max;
}

/*
 * domi.lineage_check(manifest jsonb, migrations_table regclass DEFAULT NULL,
 *					  max_findings_per_code integer DEFAULT 100)
 *	returns table (severity text, code text, migration text, detail text, fix text)
 */
Datum
domi_lineage_check(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext work;
	MemoryContext caller;
	LineageFindings findings;
	int			max_per_code;
	Manifest   *manifest;
	const char *format;
	Oid			table;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("manifest must not be null")));

	max_per_code = max_findings_per_code(fcinfo);
	InitMaterializedSRF(fcinfo, 0);

	work = AllocSetContextCreate(CurrentMemoryContext, "domi lineage_check",
								 ALLOCSET_DEFAULT_SIZES);
	caller = MemoryContextSwitchTo(work);
	lineage_findings_init(&findings, max_per_code);

	manifest = manifest_from_jsonb(PG_GETARG_JSONB_P(0), &format);
	table = PG_ARGISNULL(1) ? default_migrations_table(format) : PG_GETARG_OID(1);
	if (!OidIsValid(table))
		lineage_report(&findings, LINEAGE_INFO, "no_migrations_table", NULL,
					   strcmp(format, "drizzle") == 0
					   ? "There is no table drizzle.__drizzle_migrations: only the files were checked, not what the database ran."
					   : "There is no table _prisma_migrations on the search path: only the files were checked, not what the database ran.",
					   "Pass the migrations table as the second argument (domi-lineage --migrations-table) if it has another name.");

	if (strcmp(format, "drizzle") == 0)
		lineage_check_drizzle(&findings, manifest, table);
	else
		lineage_check_prisma(&findings, manifest, table);
	/* schema truth (ledger_lineage.c): only with "schema_truth": true */
	ledger_lineage_findings(&findings, PG_GETARG_JSONB_P(0), table);

	MemoryContextSwitchTo(caller);
	lineage_emit_findings(&findings, rsinfo->setResult, rsinfo->setDesc);
	MemoryContextDelete(work);
	return (Datum) 0;
}
