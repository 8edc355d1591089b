/*
 * lineage_snapshot_diff.c
 *		What a generated snapshot lacks of the snapshot before it in
 *		journal order.
 *
 * drizzle-kit generate writes each snapshot as the whole schema at that
 * time, and the next generate diffs the schema in code against the newest
 * snapshot.  So a generated snapshot has every table and column of the one
 * before it, except those its own SQL dropped or renamed.  After two
 * branches generated from one parent are merged, the second one's snapshot
 * lacks what the first added: re-chaining its prevId satisfies drizzle-kit
 * check, but the next generate adds those tables and columns again, and
 * migrate fails on them ("already exists").  Here that shows as a lack.
 *
 * A table or column counts as dropped or renamed when the migration's SQL
 * says so the way drizzle-kit writes it (DROP TABLE "t" or "s"."t",
 * "t" RENAME TO, "t" SET SCHEMA, DROP COLUMN "c", RENAME COLUMN "c", IF
 * EXISTS allowed), keywords in any letter case.  The caller runs this in a
 * memory context it resets.
 */
#include "postgres.h"

#include "lib/stringinfo.h"

#include "lineage.h"

static int
string_order(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

static int
table_order(const void *a, const void *b)
{
	return strcmp(((const SnapshotTable *) a)->name, ((const SnapshotTable *) b)->name);
}

void
lineage_sort_snapshot_names(SnapshotNames *names)
{
	int			i;

	if (names->ntables > 1)
		qsort(names->tables, names->ntables, sizeof(SnapshotTable), table_order);
	for (i = 0; i < names->ntables; i++)
	{
		if (names->tables[i].ncolumns > 1)
			qsort(names->tables[i].columns, names->tables[i].ncolumns,
				  sizeof(char *), string_order);
	}
}

/* The names the SQL drops or renames: tables by their bare name. */
typedef struct Dropped
{
	strmap_hash *tables;
	strmap_hash *columns;
} Dropped;

static bool
at_keyword(const char *p, const char *end, const char *keyword)
{
	size_t		klen = strlen(keyword);

	return (size_t) (end - p) >= klen && pg_strncasecmp(p, keyword, klen) == 0;
}

/* At a double quote: the identifier up to the next one, or NULL. */
static char *
quoted_at(const char **p, const char *end)
{
	const char *close;

	if (*p >= end || **p != '"')
		return NULL;
	close = memchr(*p + 1, '"', end - *p - 1);
	if (close == NULL)
		return NULL;
	{
		char	   *name = pnstrdup(*p + 1, close - *p - 1);

		*p = close + 1;
		return name;
	}
}

/*
 * One pass over the SQL: the identifier after DROP COLUMN, RENAME COLUMN
 * and DROP TABLE (the last of "schema"."name"), and the one before RENAME
 * TO and SET SCHEMA.  Cost: the length of the SQL, once per migration.
 */
static void
read_dropped(const char *sql, int len, Dropped *dropped)
{
	const char *end = sql + len;
	const char *p;

	dropped->tables = lineage_strmap_create(8);
	dropped->columns = lineage_strmap_create(8);
	for (p = sql; p < end; p++)
	{
		strmap_hash *into = NULL;
		const char *q = NULL;
		char	   *name;

		if (*p != 'D' && *p != 'd' && *p != 'R' && *p != 'r' && *p != ' ')
			continue;
		if (at_keyword(p, end, "DROP COLUMN "))
			q = p + 12, into = dropped->columns;
		else if (at_keyword(p, end, "RENAME COLUMN "))
			q = p + 14, into = dropped->columns;
		else if (at_keyword(p, end, "DROP TABLE "))
			q = p + 11, into = dropped->tables;
		else if ((at_keyword(p, end, " RENAME TO") || at_keyword(p, end, " SET SCHEMA")) &&
				 p > sql && p[-1] == '"')
		{
			/* back to the quote that opens the name before */
			for (q = p - 2; q >= sql && *q != '"'; q--)
				;
			if (q >= sql && (name = quoted_at(&q, end)) != NULL)
				lineage_strmap_put(dropped->tables, name, name);
			continue;
		}
		else
			continue;
		if (at_keyword(q, end, "IF EXISTS "))
			q += 10;
		name = quoted_at(&q, end);
		/* "schema"."name": the name is the last one */
		while (name && into == dropped->tables && q < end && *q == '.')
		{
			q++;
			name = quoted_at(&q, end);
		}
		if (name)
			lineage_strmap_put(into, name, name);
	}
}

static bool
drops_table(Dropped *dropped, const char *key)
{
	const char *dot = strchr(key, '.');

	return lineage_strmap_get(dropped->tables, dot ? dot + 1 : key) != NULL;
}

/* Counts one lack; names the first LINEAGE_MAX_NAMED. */
static void
add_lack(SnapshotLack *lack, const char *what, const char *table, const char *column)
{
	if (lack->nnamed < LINEAGE_MAX_NAMED)
		lack->named[lack->nnamed++] = column
			? psprintf("%s %s.%s", what, table, column)
			: psprintf("%s %s", what, table);
	lack->count++;
}

/*
 * The tables and columns of parent that child lacks and sql does not drop.
 * Both are sorted (lineage_sort_snapshot_names), so this is one merge.
 */
void
lineage_snapshot_lacks(SnapshotNames *parent, SnapshotNames *child,
					   const char *sql, int sql_len, SnapshotLack *lack)
{
	int			p = 0;
	int			c = 0;
	Dropped		dropped;

	memset(lack, 0, sizeof(SnapshotLack));
	if (!parent->known || !child->known)
		return;
	read_dropped(sql, sql_len, &dropped);
	for (p = 0; p < parent->ntables; p++)
	{
		SnapshotTable *pt = &parent->tables[p];
		SnapshotTable *ct;
		int			cmp = 1;
		int			pc;
		int			cc = 0;

		while (c < child->ntables && (cmp = strcmp(child->tables[c].name, pt->name)) < 0)
			c++;
		if (c >= child->ntables || cmp != 0)
		{
			if (!drops_table(&dropped, pt->name))
				add_lack(lack, "table", pt->name, NULL);
			continue;
		}
		ct = &child->tables[c];
		for (pc = 0; pc < pt->ncolumns; pc++)
		{
			int			ccmp = 1;

			while (cc < ct->ncolumns && (ccmp = strcmp(ct->columns[cc], pt->columns[pc])) < 0)
				cc++;
			if ((cc >= ct->ncolumns || ccmp != 0) &&
				lineage_strmap_get(dropped.columns, pt->columns[pc]) == NULL)
				add_lack(lack, "column", pt->name, pt->columns[pc]);
		}
	}
}

/* "column public.a.b, table public.c and 3 more" */
char *
lineage_lack_list(SnapshotLack *lack)
{
	StringInfoData list;
	int			i;

	initStringInfo(&list);
	for (i = 0; i < lack->nnamed; i++)
		appendStringInfo(&list, "%s%s", i == 0 ? "" : (i == lack->count - 1 ? " and " : ", "),
						 lack->named[i]);
	if (lack->count > lack->nnamed)
		appendStringInfo(&list, " and %d more", lack->count - lack->nnamed);
	return list.data;
}
