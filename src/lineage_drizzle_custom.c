/*
 * lineage_drizzle_custom.c
 *		The Drizzle checks of --custom migrations: a custom migration's
 *		snapshot that no longer describes the schema before it (stale after
 *		a merge), and a custom migration whose SQL is still empty.
 *
 * Part of the Drizzle checker (lineage_drizzle.c); the types it shares are
 * in lineage_drizzle.h.
 */
#include "postgres.h"

#include "access/xact.h"
#include "common/hashfn.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "lineage_drizzle.h"

/*
 * Stale custom snapshots: "generate --custom" copies its parent's schema,
 * so a custom migration's snapshot must describe the same tables as the
 * snapshot before it in journal order.  After a merge re-chains it onto
 * another branch's migration, it still describes the old parent.
 */
static bool
json_values_equal(JsonbValue *a, JsonbValue *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	if (a->type != b->type)
		return false;
	switch (a->type)
	{
		case jbvBinary:
			return compareJsonbContainers(a->val.binary.data, b->val.binary.data) == 0;
		case jbvString:
			return a->val.string.len == b->val.string.len &&
				memcmp(a->val.string.val, b->val.string.val, a->val.string.len) == 0;
		case jbvNumeric:
			return DatumGetBool(DirectFunctionCall2(numeric_eq,
													NumericGetDatum(a->val.numeric),
													NumericGetDatum(b->val.numeric)));
		case jbvBool:
			return a->val.boolean == b->val.boolean;
		default:
			return true;		/* jbvNull */
	}
}

typedef struct Differences
{
	StringInfoData names;
	int			count;
} Differences;

static void
add_difference(Differences *diff, const char *what)
{
	if (diff->count < MAX_NAMED_DIFFERENCES)
		appendStringInfo(&diff->names, "%s%s", diff->count ? ", " : "", what);
	diff->count++;
}

static JsonbContainer *
member_object(JsonbContainer *object, const char *key)
{
	JsonbValue *v = lineage_json_member(object, key);

	if (v == NULL || v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
		return NULL;
	return v->val.binary.data;
}

/*
 * Keys of object a missing from b, or (when both) with a different value:
 * "what key (only in a_name)" or "what key (differs)".  With compare off,
 * only the missing keys.
 */
static void
diff_object_keys(Differences *diff, JsonbContainer *a, JsonbContainer *b,
				 const char *what, const char *prefix, const char *a_name,
				 bool compare)
{
	JsonbIterator *it;
	JsonbValue	key;
	JsonbValue	value;
	JsonbIteratorToken token;

	if (a == NULL)
		return;
	it = JsonbIteratorInit(a);
	while ((token = JsonbIteratorNext(&it, &key, true)) != WJB_DONE)
	{
		JsonbValue *other;
		char	   *name;

		if (token != WJB_KEY)
			continue;
		(void) JsonbIteratorNext(&it, &value, true);
		name = pnstrdup(key.val.string.val, key.val.string.len);
		other = b ? getKeyJsonValueFromContainer(b, key.val.string.val, key.val.string.len, NULL) : NULL;
		if (other == NULL)
			add_difference(diff, psprintf("%s %s%s (only in %s)", what, prefix, name, a_name));
		else if (compare && !json_values_equal(&value, other))
			add_difference(diff, psprintf("%s %s%s (differs)", what, prefix, name));
	}
}

static void
diff_tables(Differences *diff, JsonbContainer *parent, JsonbContainer *child,
			const char *parent_name, const char *child_name)
{
	JsonbIterator *it;
	JsonbValue	key;
	JsonbValue	value;
	JsonbIteratorToken token;

	diff_object_keys(diff, parent, child, "table", "", parent_name, false);
	diff_object_keys(diff, child, parent, "table", "", child_name, false);
	if (parent == NULL || child == NULL)
		return;

	/* Tables in both: their columns, then the rest (indexes, keys, ...). */
	it = JsonbIteratorInit(parent);
	while ((token = JsonbIteratorNext(&it, &key, true)) != WJB_DONE)
	{
		JsonbValue *other;
		char	   *table;
		JsonbContainer *pcols;
		JsonbContainer *ccols;
		int			before;

		if (token != WJB_KEY)
			continue;
		(void) JsonbIteratorNext(&it, &value, true);
		other = getKeyJsonValueFromContainer(child, key.val.string.val, key.val.string.len, NULL);
		if (other == NULL || json_values_equal(&value, other))
			continue;
		table = psprintf("%s.", pnstrdup(key.val.string.val, key.val.string.len));
		pcols = value.type == jbvBinary ? member_object(value.val.binary.data, "columns") : NULL;
		ccols = other->type == jbvBinary ? member_object(other->val.binary.data, "columns") : NULL;
		before = diff->count;
		diff_object_keys(diff, pcols, ccols, "column", table, parent_name, true);
		diff_object_keys(diff, ccols, pcols, "column", table, child_name, false);
		if (diff->count == before)
		{
			table[strlen(table) - 1] = '\0';
			add_difference(diff, psprintf("table %s (indexes, keys or constraints differ)", table));
		}
	}
}

void
drizzle_check_custom_snapshots(DrizzleCheck *check)
{
	static const char *const other_keys[] = {"enums", "schemas", "sequences", "roles", "policies", "views", NULL};
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext compare = AllocSetContextCreate(caller, "domi lineage snapshot compare",
												  ALLOCSET_DEFAULT_SIZES);
	int			i;

	for (i = 1; i < check->nmigrations; i++)
	{
		Migration  *m = &check->migrations[i];
		Snapshot   *parent = m[-1].snapshot;
		Differences diff;
		const char *const *key;
		JsonbContainer *parent_doc;
		JsonbContainer *child_doc;

		if (!m->custom || m->snapshot == NULL || parent == NULL ||
			m[-1].position != m->position - 1)
			continue;
		MemoryContextReset(compare);
		MemoryContextSwitchTo(compare);
		parent_doc = drizzle_snapshot_doc(check, parent);
		child_doc = drizzle_snapshot_doc(check, m->snapshot);
		if (parent_doc == NULL || child_doc == NULL)
		{
			MemoryContextSwitchTo(caller);
			continue;
		}
		initStringInfo(&diff.names);
		diff.count = 0;
		diff_tables(&diff, member_object(parent_doc, "tables"),
					member_object(child_doc, "tables"),
					parent->file->name, m->snapshot->file->name);
		for (key = other_keys; *key; key++)
		{
			if (!json_values_equal(lineage_json_member(parent_doc, *key),
								   lineage_json_member(child_doc, *key)))
				add_difference(&diff, psprintf("\"%s\" (differs)", *key));
		}
		if (diff.count == 0)
		{
			MemoryContextSwitchTo(caller);
			continue;
		}
		if (diff.count > MAX_NAMED_DIFFERENCES)
			appendStringInfo(&diff.names, " and %d more", diff.count - MAX_NAMED_DIFFERENCES);
		report(check, LINEAGE_ERROR, "custom_snapshot_stale", m->tag,
			   psprintf("%s is a --custom migration, so %s should describe the same schema as %s before it in journal order, but it differs: %s. It was copied from another parent's snapshot (on a branch, then merged), so the next drizzle-kit generate diffs against the wrong schema and writes those changes again, or undoes them.",
						m->tag, m->snapshot->file->name, parent->file->name, diff.names.data),
			   psprintf("Copy \"tables\" (and the other schema keys) of %s into %s, keeping its id and setting its prevId to \"%s\".",
						parent->file->name, m->snapshot->file->name, parent->id));
		MemoryContextSwitchTo(caller);
	}
	MemoryContextDelete(compare);
}

/* Generated snapshots that lack what the snapshot before them has. */
void
drizzle_check_stale_snapshots(DrizzleCheck *check)
{
	int			i;

	for (i = 0; i < check->nmigrations; i++)
	{
		Migration  *m = &check->migrations[i];
		char	   *list = NULL;

		if (m->lacks == 0)
			continue;
		/* Named only for a finding that is listed: it reads both again. */
		if (lineage_finding_wanted(check->findings, "snapshot_stale_after_merge"))
			(void) drizzle_snapshot_lacks(check, m, &list);
		report(check, LINEAGE_ERROR, "snapshot_stale_after_merge", m->tag,
			   psprintf("%s was written by drizzle-kit generate, so %s should hold every table and column of %s, the snapshot before it in journal order, except what %s.sql drops; but it lacks %s. It was generated on a branch from an older parent and merged after %s. drizzle-kit check does not see it; a drizzle-kit generate that diffs against it adds them again, and drizzle-kit migrate then fails (\"already exists\").",
						m->tag, m->snapshot->file->name, m[-1].snapshot->file->name,
						m->tag, list, m[-1].tag),
			   drizzle_stale_fix(check, m, list));
	}
}

/*
 * A --custom migration still empty.  Pending, it would be recorded as
 * applied with nothing run; applied so already, SQL written into it now
 * would never run.
 */
void
drizzle_check_empty_custom(DrizzleCheck *check)
{
	int			i;

	for (i = 0; i < check->nmigrations; i++)
	{
		Migration  *m = &check->migrations[i];
		const char *what;

		if (!m->placeholder_only)
			continue;
		what = m->sql->len > 0 ? "drizzle-kit's --custom placeholder" : "empty";
		if (m->applied_row == NULL)
			report(check, LINEAGE_WARNING, "custom_migration_empty", m->tag,
				   psprintf("%s.sql is still %s: drizzle-kit migrate would record it as applied with no SQL, and SQL written into it afterwards would never run.",
							m->tag, what),
				   psprintf("Write the SQL into %s.sql before running drizzle-kit migrate, or delete the migration (its journal entry, SQL file and snapshot).",
							m->tag));
		else
			report(check, LINEAGE_WARNING, "custom_migration_applied_empty", m->tag,
				   psprintf("%s.sql was applied while %s, so it ran nothing; SQL written into it now would never run.",
							m->tag, what),
				   psprintf("Leave %s.sql as it is, and put the SQL it was meant for into a new migration (drizzle-kit generate --custom).",
							m->tag));
	}
}
