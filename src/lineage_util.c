/*
 * lineage_util.c
 *		The helpers every lineage checker shares (declared in lineage.h):
 *		string maps, sha256, JSON, and reading the migrations table.
 *
 * They know nothing of the checkers: lineage.c (the SQL function and the
 * dispatcher) calls the checkers through lineage_checks.h, and the
 * checkers call these, so the arrows point one way.
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
