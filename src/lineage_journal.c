/*
 * lineage_journal.c
 *		Reads drizzle-kit's meta/_journal.json in one streaming pass of
 *		PostgreSQL's JSON parser, keeping only what the checker uses from
 *		each entry (idx, when, tag).
 *
 * The journal grows by one entry per migration; building it as jsonb first
 * (jsonb_in) costs more than everything else the checker does with it, and
 * grows faster than linearly with its size (bench/lineage).  Here the
 * parser's callbacks fill an array of entries directly.
 */
#include "postgres.h"

#include "common/jsonapi.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "lineage.h"

typedef struct JournalParse
{
	MemoryContext caller;		/* where the entries and tags go */
	int			depth;			/* of objects and arrays */
	bool		root_is_object;
	bool		field_is_entries;	/* the root member being read is "entries" */
	bool		in_entries;		/* inside the "entries" array */
	const char *entry_field;	/* "idx", "when", "tag" or NULL */
	JournalEntry *entries;
	int			nentries;
	int			capacity;
	bool		has_entries;
} JournalParse;

/* Depths: 1 the root object, 2 the entries array, 3 an entry. */
#define ENTRIES_DEPTH	2
#define ENTRY_DEPTH		3

static void
journal_object_start(void *state)
{
	JournalParse *parse = state;

	if (parse->depth == 0)
		parse->root_is_object = true;
	parse->depth++;
	if (parse->in_entries && parse->depth == ENTRY_DEPTH)
		parse->entries[parse->nentries - 1].is_object = true;
	parse->entry_field = NULL;
}

static void
journal_array_start(void *state)
{
	JournalParse *parse = state;

	parse->depth++;
	if (parse->depth == ENTRIES_DEPTH && parse->field_is_entries)
	{
		/* A root key given twice: JSON.parse keeps the last, so do we. */
		parse->in_entries = true;
		parse->has_entries = true;
		parse->nentries = 0;
	}
	parse->entry_field = NULL;
}

static void
journal_end(void *state)
{
	JournalParse *parse = state;

	if (parse->depth == ENTRIES_DEPTH)
		parse->in_entries = false;
	parse->depth--;
}

static void
journal_element_start(void *state, bool isnull)
{
	JournalParse *parse = state;

	if (!parse->in_entries || parse->depth != ENTRIES_DEPTH)
		return;
	if (parse->nentries == parse->capacity)
	{
		parse->capacity = parse->capacity ? parse->capacity * 2 : 64;
		parse->entries = parse->entries
			? repalloc(parse->entries, sizeof(JournalEntry) * parse->capacity)
			: MemoryContextAlloc(parse->caller, sizeof(JournalEntry) * parse->capacity);
	}
	memset(&parse->entries[parse->nentries++], 0, sizeof(JournalEntry));
}

static void
journal_field(void *state, char *fname, bool isnull)
{
	JournalParse *parse = state;

	if (parse->depth == 1)
		parse->field_is_entries = strcmp(fname, "entries") == 0;
	parse->entry_field = NULL;
	if (parse->in_entries && parse->depth == ENTRY_DEPTH)
	{
		JournalEntry *entry = &parse->entries[parse->nentries - 1];

		/*
		 * A member given twice counts by its last value, as in JSON.parse:
		 * forget the earlier one, and take the value only if it fits.
		 */
		if (strcmp(fname, "idx") == 0)
		{
			parse->entry_field = "idx";
			entry->has_idx = false;
		}
		else if (strcmp(fname, "when") == 0)
		{
			parse->entry_field = "when";
			entry->has_when = false;
		}
		else if (strcmp(fname, "tag") == 0)
		{
			parse->entry_field = "tag";
			entry->tag = NULL;
		}
	}
	pfree(fname);
}

/* A JSON number that is an integer in int64 range. */
static bool
parse_int64(const char *token, int64 *result)
{
	char	   *end;

	errno = 0;
	*result = strtoi64(token, &end, 10);
	return errno == 0 && *end == '\0' && end != token;
}

static void
journal_scalar(void *state, char *token, JsonTokenType tokentype)
{
	JournalParse *parse = state;
	JournalEntry *entry;

	if (parse->entry_field == NULL || parse->depth != ENTRY_DEPTH)
	{
		pfree(token);
		return;
	}
	entry = &parse->entries[parse->nentries - 1];
	if (strcmp(parse->entry_field, "tag") == 0)
	{
		if (tokentype == JSON_TOKEN_STRING)
			entry->tag = MemoryContextStrdup(parse->caller, token);
	}
	else if (tokentype == JSON_TOKEN_NUMBER)
	{
		if (strcmp(parse->entry_field, "idx") == 0)
			entry->has_idx = parse_int64(token, &entry->idx);
		else
			entry->has_when = parse_int64(token, &entry->when);
	}
	parse->entry_field = NULL;
	pfree(token);
}

bool
lineage_read_journal(const char *text, int len, Journal *journal, char **problem)
{
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext scratch = AllocSetContextCreate(caller, "domi lineage journal",
												  ALLOCSET_DEFAULT_SIZES);
	JournalParse parse;
	JsonSemAction sem = {0};
	JsonLexContext *lex;
	JsonParseErrorType result;

	memset(&parse, 0, sizeof(parse));
	parse.caller = caller;
	sem.semstate = &parse;
	sem.object_start = journal_object_start;
	sem.object_end = journal_end;
	sem.array_start = journal_array_start;
	sem.array_end = journal_end;
	sem.array_element_start = journal_element_start;
	sem.object_field_start = journal_field;
	sem.scalar = journal_scalar;

	MemoryContextSwitchTo(scratch);
	lex = makeJsonLexContextCstringLen(unconstify(char *, text), len,
									   GetDatabaseEncoding(), true);
	result = pg_parse_json(lex, &sem);
	MemoryContextSwitchTo(caller);

	*problem = NULL;			/* valid JSON but not an object: no problem text */
	if (result != JSON_SUCCESS)
		*problem = pstrdup(json_errdetail(result, lex));
	MemoryContextDelete(scratch);

	journal->entries = parse.entries;
	journal->nentries = parse.nentries;
	journal->has_entries = parse.has_entries;
	return result == JSON_SUCCESS && parse.root_is_object;
}
