/*
 * lineage_snapshot.c
 *		Reads "id", "prevId" and "version" of a drizzle-kit snapshot without
 *		building it.
 *
 * Snapshots are most of a manifest (each holds the whole schema), and most
 * need nothing but those three members.  The text is first validated by
 * PostgreSQL's JSON lexer without decoding escapes (the cheapest complete
 * check); then, since it is valid JSON, a walk over the top level finds the
 * three members with no grammar to check (skipping the other members' values
 * byte by byte).  A key or wanted value with an escape in it takes the slow
 * path: the parser again, escapes decoded.
 *
 * \u0000 is valid JSON (Node reads it) but no PostgreSQL text: it does not
 * make a snapshot malformed unless it is in one of the three members.
 *
 * On request the same walk reads the names of "tables" and of each table's
 * "columns" (and skips the rest of each table), so that a snapshot can be
 * compared with the one before it without building either: a snapshot is
 * read once, and what is kept of it is its names.  A key with an escape in
 * it there leaves the names unknown (drizzle-kit writes identifiers as
 * they are; an escape needs a quote, backslash or control character in
 * one).
 */
#include "postgres.h"

#include "common/jsonapi.h"
#include "mb/pg_wchar.h"
#include "utils/memutils.h"

#include "lineage.h"

/* The parser's callbacks for lineage_read_snapshot_header. */
typedef struct HeaderParse
{
	SnapshotHeader *header;
	int			depth;			/* of objects and arrays */
	bool		root_is_object;
	char	  **member;			/* where the current top-level string goes */
} HeaderParse;

static void
header_nest(void *state)
{
	HeaderParse *parse = state;

	parse->depth++;
}

static void
header_object_start(void *state)
{
	HeaderParse *parse = state;

	if (parse->depth == 0)
		parse->root_is_object = true;
	parse->depth++;
}

static void
header_unnest(void *state)
{
	HeaderParse *parse = state;

	parse->depth--;
}

static void
header_field(void *state, char *fname, bool isnull)
{
	HeaderParse *parse = state;

	parse->member = NULL;
	if (parse->depth != 1)
		return;
	if (strcmp(fname, "id") == 0)
		parse->member = &parse->header->id;
	else if (strcmp(fname, "prevId") == 0)
		parse->member = &parse->header->prev_id;
	else if (strcmp(fname, "version") == 0)
		parse->member = &parse->header->version;
	/* A member given twice counts by its last value, as in JSON.parse. */
	if (parse->member)
		*parse->member = NULL;
}

static void
header_scalar(void *state, char *token, JsonTokenType tokentype)
{
	HeaderParse *parse = state;

	if (parse->depth == 1 && parse->member && tokentype == JSON_TOKEN_STRING)
		*parse->member = token;
	parse->member = NULL;
}

/* A copy in the caller's context of what the parse left in scratch memory */
static char *
copy_out(MemoryContext caller, const char *value)
{
	return value ? MemoryContextStrdup(caller, value) : NULL;
}

/*
 * The slow path: PostgreSQL's parser with escapes decoded, callbacks keeping
 * the three members.  In scratch, which the caller resets.
 */
static bool
parse_header(const char *text, int len, SnapshotHeader *header,
			 char **problem, MemoryContext caller)
{
	JsonLexContext *lex;
	JsonParseErrorType result;
	SnapshotHeader found = {NULL, NULL, NULL};
	HeaderParse parse = {&found, 0, false, NULL};
	JsonSemAction sem = {0};

	sem.semstate = &parse;
	sem.object_start = header_object_start;
	sem.object_end = header_unnest;
	sem.array_start = header_nest;
	sem.array_end = header_unnest;
	sem.object_field_start = header_field;
	sem.scalar = header_scalar;

	lex = makeJsonLexContextCstringLen(unconstify(char *, text), len,
									   GetDatabaseEncoding(), true);
	result = pg_parse_json(lex, &sem);
	*problem = NULL;			/* valid JSON but not an object: no problem text */
	if (result != JSON_SUCCESS)
		*problem = copy_out(caller, json_errdetail(result, lex));
	header->id = copy_out(caller, found.id);
	header->prev_id = copy_out(caller, found.prev_id);
	header->version = copy_out(caller, found.version);
	return result == JSON_SUCCESS && parse.root_is_object;
}


/* A position in valid JSON text; end guards every step all the same. */
typedef struct Scan
{
	const char *p;
	const char *end;
} Scan;

static inline void
skip_space(Scan *s)
{
	while (s->p < s->end &&
		   (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
		s->p++;
}

/*
 * At a quote: moves past the closing one; false when it did not find it.
 * memchr finds each candidate quote; one after an odd run of backslashes
 * is escaped (the text is valid JSON, so the run is all escapes).
 */
static bool
scan_string(Scan *s, const char **start, int *len, bool *escaped)
{
	const char *p = ++s->p;

	*start = p;
	for (;;)
	{
		const char *quote = memchr(p, '"', s->end - p);
		const char *run;

		if (quote == NULL)
		{
			s->p = s->end;
			return false;
		}
		for (run = quote; run > *start && run[-1] == '\\'; run--)
			;
		if ((quote - run) % 2 == 0)
		{
			*len = (int) (quote - *start);
			*escaped = memchr(*start, '\\', *len) != NULL;
			s->p = quote + 1;
			return true;
		}
		p = quote + 1;
	}
}

/* The bytes a walk over nested values must stop at. */
static const bool structural[256] = {
	['"'] = true, ['{'] = true, ['}'] = true, ['['] = true, [']'] = true,
};

/* Moves past one value: a string, a scalar, or a nested object or array. */
static bool
skip_value(Scan *s)
{
	int			depth = 0;

	if (s->p < s->end && !structural[(unsigned char) *s->p])
	{
		/* A number, true, false or null: up to what ends it. */
		while (s->p < s->end && *s->p != ',' && *s->p != '}' && *s->p != ']' &&
			   *s->p != ' ' && *s->p != '\t' && *s->p != '\n' && *s->p != '\r')
			s->p++;
		return true;
	}
	while (s->p < s->end)
	{
		char		c = *s->p;

		if (c == '"')
		{
			const char *start;
			int			len;
			bool		escaped;

			if (!scan_string(s, &start, &len, &escaped))
				return false;
			if (depth == 0)
				return true;
		}
		else
		{
			if (c == '{' || c == '[')
				depth++;
			else if (--depth == 0)
			{
				s->p++;
				return true;
			}
			s->p++;
		}
		/* Inside a nested value only brackets and strings matter. */
		while (s->p < s->end && !structural[(unsigned char) *s->p])
			s->p++;
	}
	return false;
}

/* Appends a table to names (in names->context); it takes the columns read next. */
static SnapshotTable *
add_table(SnapshotNames *names, const char *key, int keylen, int *capacity)
{
	MemoryContext caller = MemoryContextSwitchTo(names->context);
	SnapshotTable *table;

	if (names->ntables == *capacity)
	{
		*capacity = *capacity ? *capacity * 2 : 16;
		names->tables = names->tables
			? repalloc(names->tables, sizeof(SnapshotTable) * *capacity)
			: palloc(sizeof(SnapshotTable) * *capacity);
	}
	table = &names->tables[names->ntables++];
	table->name = pnstrdup(key, keylen);
	table->ncolumns = 0;
	table->columns = NULL;
	MemoryContextSwitchTo(caller);
	return table;
}

static void
add_column(SnapshotNames *names, SnapshotTable *table, const char *key, int keylen,
		   int *capacity)
{
	MemoryContext caller = MemoryContextSwitchTo(names->context);

	if (table->ncolumns == *capacity)
	{
		*capacity = *capacity ? *capacity * 2 : 16;
		table->columns = table->columns
			? repalloc(table->columns, sizeof(char *) * *capacity)
			: palloc(sizeof(char *) * *capacity);
	}
	table->columns[table->ncolumns++] = pnstrdup(key, keylen);
	MemoryContextSwitchTo(caller);
}

/*
 * At an object's '{': calls each member with the walk at its value; the
 * member moves past the value.  False when the walk cannot follow (an
 * escaped key, or what a member says).
 */
typedef bool (*MemberWalk) (Scan *s, const char *key, int keylen, void *arg);

static bool
walk_object(Scan *s, MemberWalk member, void *arg)
{
	if (s->p >= s->end || *s->p != '{')
		return false;
	s->p++;
	for (;;)
	{
		const char *key;
		int			keylen;
		bool		escaped;

		skip_space(s);
		if (s->p < s->end && *s->p == '}')
		{
			s->p++;
			return true;
		}
		if (s->p >= s->end || *s->p != '"' || !scan_string(s, &key, &keylen, &escaped) || escaped)
			return false;
		skip_space(s);
		if (s->p >= s->end || *s->p != ':')
			return false;
		s->p++;
		skip_space(s);
		if (!member(s, key, keylen, arg))
			return false;
		skip_space(s);
		if (s->p < s->end && *s->p == ',')
			s->p++;
	}
}

typedef struct NamesWalk
{
	SnapshotNames *names;
	SnapshotTable *table;		/* the table whose members are walked */
	int			table_capacity;
	int			column_capacity;
} NamesWalk;

/* A member of "columns": its key is a column name. */
static bool
walk_column(Scan *s, const char *key, int keylen, void *arg)
{
	NamesWalk  *walk = arg;

	add_column(walk->names, walk->table, key, keylen, &walk->column_capacity);
	return skip_value(s);
}

/* A member of a table: "columns" is walked, the rest skipped. */
static bool
walk_table_member(Scan *s, const char *key, int keylen, void *arg)
{
	NamesWalk  *walk = arg;

	if (keylen == 7 && memcmp(key, "columns", 7) == 0 && s->p < s->end && *s->p == '{')
	{
		/* Given twice, the last counts (JSON.parse). */
		walk->table->ncolumns = 0;
		return walk_object(s, walk_column, walk);
	}
	return skip_value(s);
}

/* A member of "tables": its key is a table's. */
static bool
walk_tables_member(Scan *s, const char *key, int keylen, void *arg)
{
	NamesWalk  *walk = arg;

	walk->table = add_table(walk->names, key, keylen, &walk->table_capacity);
	walk->column_capacity = 0;
	if (s->p < s->end && *s->p == '{')
		return walk_object(s, walk_table_member, walk);
	return skip_value(s);
}

typedef enum WalkResult
{
	WALK_FOUND,					/* the members were read (or are absent) */
	WALK_NOT_OBJECT,
	WALK_SLOW_PATH				/* an escape, or text the walk cannot follow */
} WalkResult;

/*
 * The whole top level, not just up to the three members: a member given
 * twice counts by its last value, as in JSON.parse, and one that is not a
 * string is NULL.
 */
static WalkResult
walk_header(const char *text, int len, SnapshotHeader *header, SnapshotNames *names)
{
	Scan		s = {text, text + len};

	skip_space(&s);
	if (s.p >= s.end || *s.p != '{')
		return WALK_NOT_OBJECT;
	s.p++;
	for (;;)
	{
		const char *key;
		int			keylen;
		bool		escaped;
		char	  **member = NULL;

		skip_space(&s);
		if (s.p < s.end && *s.p == '}')
			break;
		if (s.p >= s.end || *s.p != '"' || !scan_string(&s, &key, &keylen, &escaped) || escaped)
			return WALK_SLOW_PATH;
		skip_space(&s);
		if (s.p >= s.end || *s.p != ':')
			return WALK_SLOW_PATH;
		s.p++;
		skip_space(&s);

		if (keylen == 2 && memcmp(key, "id", 2) == 0)
			member = &header->id;
		else if (keylen == 6 && memcmp(key, "prevId", 6) == 0)
			member = &header->prev_id;
		else if (keylen == 7 && memcmp(key, "version", 7) == 0)
			member = &header->version;

		if (member)
			*member = NULL;
		if (names && keylen == 6 && memcmp(key, "tables", 6) == 0 &&
			s.p < s.end && *s.p == '{')
		{
			NamesWalk	walk = {names, NULL, 0, 0};

			/* Given twice, the last counts (JSON.parse). */
			names->ntables = 0;
			names->tables = NULL;
			if (!walk_object(&s, walk_tables_member, &walk))
				return WALK_SLOW_PATH;
		}
		else if (member && s.p < s.end && *s.p == '"')
		{
			const char *value;
			int			valuelen;

			if (!scan_string(&s, &value, &valuelen, &escaped) || escaped)
				return WALK_SLOW_PATH;
			*member = pnstrdup(value, valuelen);
		}
		else if (!skip_value(&s))
			return WALK_SLOW_PATH;
		skip_space(&s);
		if (s.p < s.end && *s.p == ',')
			s.p++;
	}
	return WALK_FOUND;
}

bool
lineage_read_snapshot_header(const char *text, int len, SnapshotHeader *header,
							 char **problem, MemoryContext scratch,
							 SnapshotNames *names)
{
	MemoryContext caller = MemoryContextSwitchTo(scratch);
	JsonLexContext *lex;
	JsonParseErrorType result;
	WalkResult walk;
	bool		ok;

	memset(header, 0, sizeof(SnapshotHeader));
	*problem = NULL;
	lex = makeJsonLexContextCstringLen(unconstify(char *, text), len,
									   GetDatabaseEncoding(), false);
	result = pg_parse_json(lex, &nullSemAction);
	MemoryContextSwitchTo(caller);
	if (result != JSON_SUCCESS)
	{
		*problem = pstrdup(json_errdetail(result, lex));
		MemoryContextReset(scratch);
		return false;
	}

	if (names)
	{
		names->known = false;
		names->ntables = 0;
		names->tables = NULL;
	}
	walk = walk_header(text, len, header, names);
	if (names)
		names->known = walk == WALK_FOUND;
	if (walk == WALK_FOUND)
		ok = true;
	else if (walk == WALK_NOT_OBJECT)
		ok = false;
	else
	{
		/* The names are not read on the slow path: not compared. */
		if (names)
			names->ntables = 0;
		memset(header, 0, sizeof(SnapshotHeader));
		MemoryContextSwitchTo(scratch);
		ok = parse_header(text, len, header, problem, caller);
		MemoryContextSwitchTo(caller);
	}
	MemoryContextReset(scratch);
	return ok;
}
