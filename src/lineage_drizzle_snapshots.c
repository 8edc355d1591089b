/*
 * lineage_drizzle_snapshots.c
 *		The Drizzle checks of the snapshot chain: reading meta/NNNN_snapshot.json,
 *		what a generated snapshot lacks of the one before it, and the chain
 *		itself (collisions, prevIds naming no snapshot, cycles, heads).
 *
 * Part of the Drizzle checker (lineage_drizzle.c, whose header comment
 * says how drizzle-kit writes snapshots); the types it shares are in
 * lineage_drizzle.h.
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
 * Snapshots
 */

/* drizzle-kit stops on a version above its own: Number(version) > 7 */
static bool
snapshot_version_is_newer(const char *version)
{
	char	   *end;
	double		number;

	errno = 0;
	number = strtod(version, &end);
	while (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r')
		end++;
	return end != version && *end == '\0' && errno == 0 &&
		number > atoi(SNAPSHOT_VERSION);
}

static Snapshot *
read_snapshot(DrizzleCheck *check, ManifestFile *file, Migration *m,
			  SnapshotNames *names)
{
	char	   *problem = NULL;
	SnapshotHeader header;
	Snapshot   *s;

	file->referenced = true;
	if (lineage_json_too_deep(file->text, file->len))
	{
		report(check, LINEAGE_ERROR, "snapshot_malformed", m ? m->tag : file->name,
			   psprintf("%s nests arrays or objects more than %d levels deep, which drizzle-kit never writes and the checker does not read.",
						file->name, LINEAGE_JSON_MAX_DEPTH),
			   psprintf("Restore %s from version control.", file->name));
		return NULL;
	}
	if (!lineage_read_snapshot_header(file->text, file->len, &header, &problem,
									  check->scratch, names))
	{
		report(check, LINEAGE_ERROR, "snapshot_malformed", m ? m->tag : file->name,
			   problem
			   ? psprintf("%s is not valid JSON: %s", file->name, problem)
			   : psprintf("%s is not a JSON object.", file->name),
			   psprintf("Restore %s from version control; drizzle-kit generate cannot diff against it.", file->name));
		return NULL;
	}
	s = palloc0(sizeof(Snapshot));
	s->file = file;
	s->migration = m;
	s->id = header.id;
	s->prev_id = header.prev_id;
	s->version = header.version;
	if (s->id == NULL || s->prev_id == NULL)
	{
		report(check, LINEAGE_ERROR, "snapshot_malformed", drizzle_snapshot_label(s),
			   psprintf("%s has no string \"id\" or \"prevId\".", file->name),
			   psprintf("Restore %s from version control.", file->name));
		return NULL;
	}

	if (header.version && snapshot_version_is_newer(header.version))
		report(check, LINEAGE_WARNING, "snapshot_version_outdated", drizzle_snapshot_label(s),
			   psprintf("%s has version \"%s\", newer than the version " SNAPSHOT_VERSION " this drizzle-kit reads: drizzle-kit generate stops on it (\"snapshot is of unsupported version\").",
						file->name, header.version),
			   "Update drizzle-kit to the version that wrote it (drizzle-kit up cannot go back).");
	else if (header.version == NULL || strcmp(header.version, SNAPSHOT_VERSION) != 0)
		report(check, LINEAGE_WARNING, "snapshot_version_outdated", drizzle_snapshot_label(s),
			   psprintf("%s has version %s%s%s; the current drizzle-kit writes and reads version " SNAPSHOT_VERSION ".",
						file->name, header.version ? "\"" : "",
						header.version ? header.version : "(none)",
						header.version ? "\"" : ""),
			   "Run drizzle-kit up to bring the snapshots to the current version.");
	return s;
}

/*
 * The whole snapshot as jsonb, in the current memory context, which the
 * caller resets after comparing: kept, the snapshots of a folder of
 * --custom migrations would take several times the manifest.  It is valid
 * JSON, but may hold what no jsonb can (\u0000): then it cannot be
 * compared, which is reported once, and NULL returned.
 */
JsonbContainer *
drizzle_snapshot_doc(DrizzleCheck *check, Snapshot *s)
{
	char	   *problem;
	Jsonb	   *doc;

	if (s->unreadable)
		return NULL;
	doc = lineage_parse_json(s->file->text, s->file->len, &problem);
	if (doc)
		return &doc->root;
	s->unreadable = true;
	report(check, LINEAGE_ERROR, "snapshot_malformed", drizzle_snapshot_label(s),
		   psprintf("%s cannot be read as jsonb to compare it: %s", s->file->name, problem),
		   psprintf("Restore %s from version control.", s->file->name));
	return NULL;
}

static int
snapshot_name_order(const void *a, const void *b)
{
	const Snapshot *sa = *(Snapshot *const *) a;
	const Snapshot *sb = *(Snapshot *const *) b;

	return strcmp(sa->file->name, sb->file->name);
}

/*
 * Whether m's snapshot is compared with the one before it: a generated
 * migration (a --custom one is compared whole, drizzle_check_custom_snapshots),
 * right after the entry before it in the journal, both snapshots of one
 * version (the layout of "tables" changed between versions; drizzle-kit up
 * brings them all to one).
 */
static bool
compared_with_previous(DrizzleCheck *check, Migration *m)
{
	return m != &check->migrations[0] && m[-1].position == m->position - 1 &&
		m->sql != NULL && !m->custom && m->snapshot && m[-1].snapshot &&
		m->snapshot->version && m[-1].snapshot->version &&
		strcmp(m->snapshot->version, m[-1].snapshot->version) == 0;
}

/*
 * The tables and columns of the snapshot before m that m's lacks: a count,
 * and with list not NULL the first ones named, in the caller's context.
 * Both snapshots are read again, in memory of their own: this runs for the
 * findings that are reported, not for every migration.
 */
int
drizzle_snapshot_lacks(DrizzleCheck *check, Migration *m, char **list)
{
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext work = AllocSetContextCreate(caller, "domi lineage snapshot diff",
											   ALLOCSET_DEFAULT_SIZES);
	SnapshotNames names[2];
	SnapshotHeader header;
	SnapshotLack lack;
	char	   *problem;
	int			i;

	MemoryContextSwitchTo(work);
	for (i = 0; i < 2; i++)
	{
		ManifestFile *file = (i == 0 ? m[-1].snapshot : m->snapshot)->file;

		memset(&names[i], 0, sizeof(SnapshotNames));
		names[i].context = work;
		if (!lineage_read_snapshot_header(file->text, file->len, &header, &problem,
										  check->scratch, &names[i]))
			names[i].known = false;
		lineage_sort_snapshot_names(&names[i]);
	}
	lineage_snapshot_lacks(&names[0], &names[1], m->sql->text, m->sql->len, &lack);
	MemoryContextSwitchTo(caller);
	if (list)
		*list = pstrdup(lineage_lack_list(&lack));
	MemoryContextDelete(work);
	return lack.count;
}

/* Every snapshot: the journal's in journal order, then the others by name. */
void
drizzle_read_snapshots(DrizzleCheck *check)
{
	int			i;
	int			first_unlisted;
	SnapshotNames names[2];		/* of the snapshot just read, and the one before */
	int			current = 0;
	Migration  *named = NULL;	/* whose names are in names[1 - current] */
	MemoryContext diff;

	for (i = 0; i < 2; i++)
		names[i].context = AllocSetContextCreate(CurrentMemoryContext,
												 "domi lineage snapshot names",
												 ALLOCSET_DEFAULT_SIZES);
	diff = AllocSetContextCreate(CurrentMemoryContext, "domi lineage snapshot diff",
								 ALLOCSET_DEFAULT_SIZES);

	check->snapshots = palloc0(sizeof(Snapshot *) * Max(check->manifest->nfiles, 1));
	for (i = 0; i < check->nmigrations; i++)
	{
		Migration  *m = &check->migrations[i];
		char	   *snapshot_name = drizzle_snapshot_file_for_tag(m->tag);
		ManifestFile *file = lineage_strmap_get(check->manifest->by_name, snapshot_name);

		if (file == NULL)
		{
			report(check, LINEAGE_WARNING, "snapshot_missing", m->tag,
				   psprintf("%s has no %s: drizzle-kit generate diffs against the newest snapshot it finds, so the next migration may repeat or miss changes.",
							m->tag, snapshot_name),
				   psprintf("Restore %s from version control.", snapshot_name));
			pfree(snapshot_name);
			named = NULL;
			continue;
		}
		if (file->owner)
		{
			Migration  *owner = file->owner;

			/* Two branches generated the same number, and one snapshot is lost. */
			report(check, LINEAGE_ERROR, "snapshot_shared", m->tag,
				   psprintf("%s and %s both have the prefix of %s: one of them has no snapshot of its own (two branches generated the same number, and one snapshot was lost in the merge).",
							owner->tag, m->tag, snapshot_name),
				   psprintf("Give %s a number no other migration has (rename %s.sql and set its tag in meta/_journal.json; %04lld is free after the last entry), and restore its own snapshot from its branch under that number, with prevId set to the id of the snapshot before it.",
							m->tag, m->tag,
							(long long) check->migrations[check->nmigrations - 1].idx + 1));
			pfree(snapshot_name);
			named = NULL;
			continue;
		}
		pfree(snapshot_name);
		file->owner = m;
		MemoryContextReset(names[current].context);
		m->snapshot = read_snapshot(check, file, m, &names[current]);
		if (m->snapshot == NULL)
		{
			m->snapshot_unreadable = true;
			check->nunreadable++;
			named = NULL;
			continue;
		}
		check->snapshots[check->nsnapshots++] = m->snapshot;

		/*
		 * Compared with the snapshot before it while both are read: only
		 * the names of two snapshots are in memory at a time.
		 */
		lineage_sort_snapshot_names(&names[current]);
		if (named == m - 1 && compared_with_previous(check, m))
		{
			SnapshotLack lack;
			MemoryContext caller = MemoryContextSwitchTo(diff);

			lineage_snapshot_lacks(&names[1 - current], &names[current],
								   m->sql->text, m->sql->len, &lack);
			m->lacks = lack.count;
			MemoryContextSwitchTo(caller);
			MemoryContextReset(diff);
		}
		named = m;
		current = 1 - current;
	}
	for (i = 0; i < 2; i++)
		MemoryContextDelete(names[i].context);
	MemoryContextDelete(diff);

	first_unlisted = check->nsnapshots;
	for (i = 0; i < check->manifest->nfiles; i++)
	{
		ManifestFile *file = &check->manifest->files[i];
		size_t		len = strlen(file->name);
		Snapshot   *s;

		if (file->referenced || strncmp(file->name, "meta/", 5) != 0 || len <= 14 ||
			strcmp(file->name + len - 14, "_snapshot.json") != 0)
			continue;
		s = read_snapshot(check, file, NULL, NULL);
		file->referenced = false;	/* still reported as not in the journal */
		if (s)
			check->snapshots[check->nsnapshots++] = s;
		else
			check->nunreadable++;
	}
	qsort(check->snapshots + first_unlisted, check->nsnapshots - first_unlisted,
		  sizeof(Snapshot *), snapshot_name_order);
}

/* The id this snapshot's prevId should have: its journal predecessor's. */
static const char *
expected_prev_id(DrizzleCheck *check, Snapshot *s, const char **parent_file)
{
	Migration  *prev;

	*parent_file = NULL;
	if (s->migration == NULL)
		return NULL;
	if (s->migration->position == 0)
		return ORIGIN_ID;
	/* Unknown when it is the first readable entry but not the first entry. */
	if (s->migration == &check->migrations[0])
		return NULL;
	prev = s->migration - 1;
	/* Unknown when the entry before it in the journal could not be read. */
	if (prev->snapshot == NULL || prev->position != s->migration->position - 1)
		return NULL;
	*parent_file = prev->snapshot->file->name;
	return prev->snapshot->id;
}

/*
 * Ids first, then each snapshot's parent and its parent's children, so that
 * the checks below follow pointers and do no lookups.
 */
void
drizzle_index_snapshots(DrizzleCheck *check)
{
	int			i;

	check->by_id = lineage_strmap_create(check->nsnapshots);
	check->orphans = lineage_strmap_create(16);
	for (i = 0; i < check->nsnapshots; i++)
	{
		Snapshot   *s = check->snapshots[i];
		Snapshot   *first = lineage_strmap_put(check->by_id, s->id, s);

		if (first == s)
			continue;
		s->duplicate = true;
		report(check, LINEAGE_ERROR, "snapshot_duplicate_id", drizzle_snapshot_label(s),
			   psprintf("%s and %s have the same id \"%s\": one was copied from the other, and the chain of prevIds cannot tell them apart.",
						first->file->name, s->file->name, s->id),
			   psprintf("Give %s a new id (a random uuid), and set the prevId of the snapshot after it to that id.",
						s->file->name));
	}
	for (i = 0; i < check->nsnapshots; i++)
	{
		Snapshot   *s = check->snapshots[i];

		s->parent = lineage_strmap_get(check->by_id, s->prev_id);
		if (s->parent)
			s->parent->children = lappend(s->parent->children, s);
		else
		{
			StrMapEntry *entry;
			bool		found;

			entry = strmap_insert(check->orphans, s->prev_id, &found);
			entry->value = lappend(found ? (List *) entry->value : NIL, s);
		}
	}
}

/* The snapshots with the same prevId as s, s included, in snapshot order. */
static List *
siblings(DrizzleCheck *check, Snapshot *s)
{
	return s->parent ? s->parent->children : lineage_strmap_get(check->orphans, s->prev_id);
}

/* The snapshots whose prevId is id (a snapshot's, or one no snapshot has). */
static List *
children_of(DrizzleCheck *check, const char *id)
{
	Snapshot   *parent = lineage_strmap_get(check->by_id, id);

	return parent ? parent->children : lineage_strmap_get(check->orphans, id);
}

/* Queue each of list's snapshots not in journal order, once per fix. */
static List *
queue_misplaced(DrizzleCheck *check, List *queue, List *list)
{
	ListCell   *lc;

	foreach(lc, list)
	{
		Snapshot   *child = lfirst(lc);
		const char *parent_file;
		const char *expected = expected_prev_id(check, child, &parent_file);

		if (child->fix_round == check->fix_rounds ||
			(expected && strcmp(expected, child->prev_id) == 0))
			continue;
		child->fix_round = check->fix_rounds;
		queue = lappend(queue, child);
	}
	return queue;
}

/*
 * What to do with a generated snapshot that lacks tables or columns of the
 * snapshot before it (after a merge): for a migration no database has
 * applied, generate it again, which writes its change against the merged
 * schema; for an applied one, which must stay as it ran, copy what its
 * snapshot lacks into it.  Applied or not is known only when the
 * migrations table was read, and only for this database.
 */
static const char *
regenerate_fix(Migration *m)
{
	return psprintf("delete %s.sql, %s and the entry of %s in meta/_journal.json, and run drizzle-kit generate again (it writes the same change against the merged schema)",
					m->tag, m->snapshot->file->name, m->tag);
}

static const char *
copy_fix(Migration *m, const char *list)
{
	return psprintf("copy into \"tables\" of %s, from %s, %s (a table's whole entry; a column's entry into its table's \"columns\"), keeping its id, with prevId \"%s\" (the id of %s)",
					m->snapshot->file->name, m[-1].snapshot->file->name, list,
					m[-1].snapshot->id, m[-1].snapshot->file->name);
}

char *
drizzle_stale_fix(DrizzleCheck *check, Migration *m, const char *list)
{
	if (!check->table_known)
		return psprintf("If %s is applied in no database: %s. If a database has applied it: %s.",
						m->tag, regenerate_fix(m), copy_fix(m, list));
	if (m->applied_row)
		return psprintf("It is applied, so keep it and %s.", copy_fix(m, list));
	return psprintf("It is not applied here; if no other database has applied it either: %s. Otherwise: %s.",
					regenerate_fix(m), copy_fix(m, list));
}

/*
 * "set prevId of X to "id" (the id of Y)" for each child not in journal
 * order.  Re-pointing X at Y makes it a sibling of Y's other children, so
 * those not in journal order are re-pointed too (and theirs after them):
 * applied as written, the fix leaves no collision behind, and these
 * snapshots form one chain in journal order.  A generated X that lacks
 * what Y has would then pass drizzle-kit check and make the next generate
 * add Y's changes again: for it the fix says so, and what to do instead.
 * Without describe, only the snapshots are marked (the finding is counted,
 * not listed) and NULL returned.
 */
static char *
collision_fix(DrizzleCheck *check, List *children, bool describe)
{
	StringInfoData fix;
	StringInfoData stale;
	List	   *queue;
	int			i;

	initStringInfo(&fix);
	initStringInfo(&stale);
	check->fix_rounds++;
	queue = queue_misplaced(check, NIL, children);
	for (i = 0; i < list_length(queue); i++)
	{
		Snapshot   *child = list_nth(queue, i);
		const char *parent_file;
		const char *expected = expected_prev_id(check, child, &parent_file);

		child->in_collision_fix = true;
		if (!describe)
		{
			if (expected)
				queue = queue_misplaced(check, queue, children_of(check, expected));
			continue;
		}
		if (fix.len > 0)
			appendStringInfoString(&fix, "; ");
		if (expected == NULL)
		{
			appendStringInfo(&fix, "delete %s or give it a journal entry (it has no place in journal order)",
							 child->file->name);
			continue;
		}
		if (parent_file == NULL)
			appendStringInfo(&fix, "set prevId of %s to \"%s\" (it is the first migration)",
							 child->file->name, expected);
		else
			appendStringInfo(&fix, "set prevId of %s to \"%s\" (the id of %s)",
							 child->file->name, expected, parent_file);
		if (child->migration && child->migration->lacks > 0)
		{
			Migration  *m = child->migration;
			char	   *list;

			(void) drizzle_snapshot_lacks(check, m, &list);
			appendStringInfo(&stale, " But %s lacks %s of %s, which %s.sql does not drop, and the next drizzle-kit generate would add them again (snapshot_stale_after_merge): if %s is applied in no database, %s instead of setting its prevId; if a database has applied it, also %s.",
							 child->file->name, list, parent_file, m->tag, m->tag,
							 regenerate_fix(m), copy_fix(m, list));
		}
		queue = queue_misplaced(check, queue, children_of(check, expected));
	}
	if (fix.len == 0)
		return NULL;
	fix.data[0] = pg_toupper((unsigned char) fix.data[0]);
	appendStringInfo(&fix, ", so that the snapshots form one chain in journal order.%s", stale.data);
	return fix.data;
}

/* The tag of the first child whose prevId must change, else the first child. */
static const char *
collision_label(DrizzleCheck *check, List *children)
{
	ListCell   *lc;

	foreach(lc, children)
	{
		Snapshot   *child = lfirst(lc);
		const char *parent_file;
		const char *expected = expected_prev_id(check, child, &parent_file);

		if (expected == NULL || strcmp(expected, child->prev_id) != 0)
			return drizzle_snapshot_label(child);
	}
	return drizzle_snapshot_label(linitial(children));
}

void
drizzle_check_collisions(DrizzleCheck *check)
{
	int			i;

	for (i = 0; i < check->nsnapshots; i++)
	{
		Snapshot   *s = check->snapshots[i];
		List	   *children = siblings(check, s);
		Snapshot   *parent = s->parent;
		StringInfoData detail;
		ListCell   *lc;
		bool		describe;
		char	   *fix;

		/* Once per group of siblings: at its first member. */
		if (list_length(children) < 2 || linitial(children) != s)
			continue;
		check->collision_found = true;

		/* The fix marks the snapshots it re-points, listed or not. */
		describe = lineage_finding_wanted(check->findings, "snapshot_prev_collision");
		fix = collision_fix(check, children, describe);
		if (!describe)
		{
			report(check, LINEAGE_ERROR, "snapshot_prev_collision", NULL, NULL, NULL);
			continue;
		}

		initStringInfo(&detail);
		foreach(lc, children)
		{
			Snapshot   *child = lfirst(lc);

			if (lc != list_head(children))
				appendStringInfoString(&detail, lnext(children, lc) ? ", " : " and ");
			appendStringInfoString(&detail, child->file->name);
			if (child->migration)
				appendStringInfo(&detail, " (%s)", child->migration->tag);
		}
		appendStringInfo(&detail, " %s prevId \"%s\", ",
						 list_length(children) == 2 ? "both have" : "all have", s->prev_id);
		if (parent)
			appendStringInfo(&detail, "the id of %s%s%s%s",
							 parent->file->name,
							 parent->migration ? " (" : "",
							 parent->migration ? parent->migration->tag : "",
							 parent->migration ? ")" : "");
		else if (strcmp(s->prev_id, ORIGIN_ID) == 0)
			appendStringInfoString(&detail, "the start of the chain");
		else
			appendStringInfoString(&detail, "which no snapshot has");
		appendStringInfoString(&detail, ": they were generated on parallel branches from one parent, and drizzle-kit generate refuses to go on.");

		report(check, LINEAGE_ERROR, "snapshot_prev_collision",
			   collision_label(check, children), detail.data, fix);
	}
}

/* Whether the snapshot before s in journal order is there but malformed. */
static bool
predecessor_unreadable(DrizzleCheck *check, Snapshot *s)
{
	Migration  *prev;

	if (s->migration == NULL || s->migration == &check->migrations[0])
		return false;
	prev = s->migration - 1;
	return prev->position == s->migration->position - 1 && prev->snapshot_unreadable;
}

/* A prevId naming no snapshot, or a chain out of journal order. */
void
drizzle_check_prev_ids(DrizzleCheck *check)
{
	int			i;

	for (i = 0; i < check->nsnapshots; i++)
	{
		Snapshot   *s = check->snapshots[i];
		const char *parent_file;
		const char *expected = expected_prev_id(check, s, &parent_file);
		bool		known = s->parent != NULL || strcmp(s->prev_id, ORIGIN_ID) == 0;
		char	   *fix;

		if (known && (expected == NULL || strcmp(expected, s->prev_id) == 0))
			continue;
		/* A sibling in a collision is reported, with its fix, there. */
		if (known && (list_length(siblings(check, s)) > 1 || s->in_collision_fix))
			continue;
		/* Its parent is likely the malformed snapshot before it: restore that. */
		if (!known && predecessor_unreadable(check, s))
			continue;

		if (expected == NULL)
			fix = psprintf("Set prevId of %s to the id of the snapshot before it.", s->file->name);
		else
			fix = psprintf("Set prevId of %s to \"%s\"%s%s%s.", s->file->name, expected,
						   parent_file ? " (the id of " : " (it is the first migration",
						   parent_file ? parent_file : "", ")");
		if (!known)
			report(check, LINEAGE_ERROR, "snapshot_prev_unknown", drizzle_snapshot_label(s),
				   psprintf("%s has prevId \"%s\", which is the id of no snapshot in the folder: drizzle-kit cannot tell what it was generated from.",
							s->file->name, s->prev_id),
				   fix);
		else
			report(check, LINEAGE_WARNING, "snapshot_chain_out_of_order", drizzle_snapshot_label(s),
				   psprintf("%s has prevId \"%s\", which is not the id of the snapshot before it in journal order: the chain and the journal disagree on the order.",
							s->file->name, s->prev_id),
				   fix);
	}
}

/*
 * Each snapshot has one parent, so following prevIds from any snapshot ends
 * at the start, at an unknown id, or in a cycle.  Each walk marks what it
 * reaches with its number; reaching a snapshot of the same walk again is a
 * cycle.  Every snapshot is walked once, so this is linear.
 */
void
drizzle_check_cycles(DrizzleCheck *check)
{
	int			walk = 0;
	int			i;

	for (i = 0; i < check->nsnapshots; i++)
	{
		Snapshot   *s;

		walk++;
		for (s = check->snapshots[i]; s && !s->walked && s->walk != walk;
			 s = s->parent)
			s->walk = walk;

		if (s && !s->walked && s->walk == walk &&
			!lineage_finding_wanted(check->findings, "snapshot_prev_cycle"))
			report(check, LINEAGE_ERROR, "snapshot_prev_cycle", NULL, NULL, NULL);
		else if (s && !s->walked && s->walk == walk)
		{
			StringInfoData members;
			Snapshot   *member = s;

			initStringInfo(&members);
			do
			{
				appendStringInfo(&members, "%s%s", members.len ? " -> " : "", member->file->name);
				member = member->parent;
			} while (member != s);
			appendStringInfo(&members, " -> %s", s->file->name);
			report(check, LINEAGE_ERROR, "snapshot_prev_cycle", drizzle_snapshot_label(s),
				   psprintf("The prevIds form a cycle: %s. drizzle-kit cannot find where the chain starts.",
							members.data),
				   "Set each snapshot's prevId to the id of the snapshot before it in journal order (the first one's to \"" ORIGIN_ID "\").");
		}

		for (s = check->snapshots[i]; s && !s->walked; s = s->parent)
			s->walked = true;
	}
}

/* Heads: snapshots no other names as its parent.  One chain has one. */
void
drizzle_check_heads(DrizzleCheck *check)
{
	StringInfoData heads;
	int			nheads = 0;
	int			i;

	if (check->collision_found)
		return;					/* siblings are heads; the collision says it all */
	if (check->nunreadable > 0)
		return;					/* a malformed snapshot cuts the chain: restore it first */
	initStringInfo(&heads);
	for (i = 0; i < check->nsnapshots; i++)
	{
		Snapshot   *s = check->snapshots[i];

		if (s->children != NIL || s->duplicate)
			continue;			/* not a head, or a duplicate id (reported) */
		if (nheads < LINEAGE_MAX_NAMED)
			appendStringInfo(&heads, "%s%s", nheads ? ", " : "", s->file->name);
		nheads++;
	}
	if (nheads > LINEAGE_MAX_NAMED)
		appendStringInfo(&heads, " and %d more", nheads - LINEAGE_MAX_NAMED);
	if (nheads > 1)
		report(check, LINEAGE_ERROR, "snapshot_multiple_heads", NULL,
			   psprintf("%d snapshots are the newest of their chain (%s): the folder holds more than one line of migrations, and drizzle-kit generate diffs against only one.",
						nheads, heads.data),
			   "Set each snapshot's prevId to the id of the snapshot before it in journal order, so that there is one chain.");
}
