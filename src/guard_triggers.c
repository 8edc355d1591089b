/*
 * guard_triggers.c
 *		The event triggers of the drop guard on protected columns: sql_drop
 *		(the dropped objects, CASCADE included) and ddl_command_end (the
 *		protected columns of every table an ALTER touched must still be
 *		there, under their name and with their type).
 *
 * See guard.c for the design; the ddl_command_start trigger, which keeps
 * domi itself and its keyring from being dropped, is in guard_self.c.
 */
#include "postgres.h"

#include <ctype.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_class.h"
#include "catalog/pg_depend.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "parser/scansup.h"
#include "storage/lmgr.h"
#include "tcop/cmdtag.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/guc_tables.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "domi.h"
#include "guard_internal.h"

PG_FUNCTION_INFO_V1(domi_guard_sql_drop);
PG_FUNCTION_INFO_V1(domi_guard_ddl_end);

/* ---------------------------------------------------------------------
 * Event triggers
 * ---------------------------------------------------------------------
 */

/*
 * sql_drop: protected columns among the dropped objects.  A dropped table
 * takes all its protected columns; a dropped column is matched by name
 * (address_names is schema, table, column), as its catalog row is gone.
 *
 * A registry name can be stale: the column was renamed while the guard's
 * triggers were disabled.  Matching by name alone would then let the column
 * drop unseen, so when any column of a table with such a protection drops,
 * the protection is reported as lost (the last output column), as the ALTER
 * TABLE check does.
 */
static const char *const dropped_protected_sql =
"SELECT r.tbl::oid, d.address_names[1], d.address_names[2], r.col::text,"
"       bool_and(d.objsubid <> 0 AND d.address_names[3] <> r.col::text)"
"  FROM pg_event_trigger_dropped_objects() d"
"  JOIN domi._protected_columns r ON r.tbl = d.objid"
" WHERE d.classid = 'pg_class'::regclass"
"   AND (d.objsubid = 0 OR d.address_names[3] = r.col::text"
"        OR NOT EXISTS (SELECT FROM pg_attribute a"
"                        WHERE a.attrelid = r.tbl AND a.attname = r.col AND NOT a.attisdropped))"
" GROUP BY 1, 2, 3, 4"
" ORDER BY 2, 3, 4";

/*
 * sql_drop, the other way to lose a protected column's data: an attribute
 * dropped from a composite type (ALTER TYPE ... DROP ATTRIBUTE, or ALTER
 * TABLE ... DROP COLUMN of a table whose row type is used as a column type)
 * takes that part of every value of each column made of the type, directly
 * or through arrays, domains, ranges and other composite types.  PostgreSQL
 * allows it (it refuses only to change an attribute's type).
 *
 * The users of a type are found in pg_depend, the way PostgreSQL finds them
 * before such a type change: a column depends on its type; an array, domain,
 * range or multirange on its element, base, subtype or range.  Walked in C
 * through the index, because every DROP COLUMN of every table comes here and
 * almost always finds only the row type's array type, with no users.
 */
static const char *const dropped_column_relations_sql =
"SELECT DISTINCT objid FROM pg_event_trigger_dropped_objects()"
" WHERE classid = 'pg_class'::regclass AND objsubid <> 0";

/* The columns (relids and attnums) made of typid, at any depth. */
static void
columns_made_of(Oid typid, List **relids, List **attnums)
{
	Relation	depend = table_open(DependRelationId, AccessShareLock);
	List	   *types = list_make1_oid(typid);
	ListCell   *lc;

	/* The list grows as we go, and lists each type once. */
	foreach(lc, types)
	{
		ScanKeyData key[2];
		SysScanDesc scan;
		HeapTuple	tuple;

		ScanKeyInit(&key[0], Anum_pg_depend_refclassid, BTEqualStrategyNumber,
					F_OIDEQ, ObjectIdGetDatum(TypeRelationId));
		ScanKeyInit(&key[1], Anum_pg_depend_refobjid, BTEqualStrategyNumber,
					F_OIDEQ, ObjectIdGetDatum(lfirst_oid(lc)));
		scan = systable_beginscan(depend, DependReferenceIndexId, true, NULL, 2, key);
		while (HeapTupleIsValid(tuple = systable_getnext(scan)))
		{
			Form_pg_depend dep = (Form_pg_depend) GETSTRUCT(tuple);

			if (dep->classid == TypeRelationId)
				types = list_append_unique_oid(types, dep->objid);
			else if (dep->classid == RelationRelationId && dep->objsubid > 0)
			{
				Oid			rowtype = get_rel_type_id(dep->objid);

				*relids = lappend_oid(*relids, dep->objid);
				*attnums = lappend_int(*attnums, dep->objsubid);
				/* A composite type or table made of it is a user too. */
				if (OidIsValid(rowtype))
					types = list_append_unique_oid(types, rowtype);
			}
		}
		systable_endscan(scan);
	}
	table_close(depend, AccessShareLock);
}

static Datum
int2_array(List *ints)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(list_length(ints), 1));
	ListCell   *lc;
	int			n = 0;

	foreach(lc, ints)
		elems[n++] = Int16GetDatum((int16) lfirst_int(lc));
	return PointerGetDatum(construct_array(elems, n, INT2OID, sizeof(int16), true, TYPALIGN_SHORT));
}

Datum
guard_oid_array(List *oids)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(list_length(oids), 1));
	ListCell   *lc;
	int			n = 0;

	foreach(lc, oids)
		elems[n++] = ObjectIdGetDatum(lfirst_oid(lc));
	return PointerGetDatum(construct_array(elems, n, OIDOID, sizeof(Oid), true, TYPALIGN_INT));
}

/* Protected columns that lose part of their values: GUARD_DROP_FIELD hits. */
static List *
narrowed_protected_columns(void)
{
	List	   *dropped_from = NIL;
	List	   *relids = NIL;
	List	   *attnums = NIL;
	ListCell   *lc;
	uint64		row;
	Oid			types[2] = {OIDARRAYOID, INT2ARRAYOID};
	Datum		values[2];

	guard_registry_execute(dropped_column_relations_sql, 0, NULL, NULL, SPI_OK_SELECT);
	for (row = 0; row < SPI_processed; row++)
		dropped_from = lappend_oid(dropped_from, DatumGetObjectId(guard_spi_datum(row, 1)));
	foreach(lc, dropped_from)
	{
		Oid			rowtype = get_rel_type_id(lfirst_oid(lc));

		if (OidIsValid(rowtype))
			columns_made_of(rowtype, &relids, &attnums);
	}
	if (relids == NIL)
		return NIL;

	values[0] = guard_oid_array(relids);
	values[1] = int2_array(attnums);
	guard_registry_execute("SELECT DISTINCT r.tbl::oid, n.nspname::text, c.relname::text, r.col::text"
						   "  FROM unnest($1, $2) u(rel, att)"
						   "  JOIN pg_attribute a ON a.attrelid = u.rel AND a.attnum = u.att AND NOT a.attisdropped"
						   "  JOIN domi._protected_columns r ON r.tbl = a.attrelid AND r.col = a.attname"
						   "  JOIN pg_class c ON c.oid = r.tbl"
						   "  JOIN pg_namespace n ON n.oid = c.relnamespace"
						   " ORDER BY 2, 3, 4",
						   2, types, values, SPI_OK_SELECT);
	return guard_hits_from_result(GUARD_DROP_FIELD);
}

Datum
domi_guard_sql_drop(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata = guard_event_trigger_data(fcinfo, "sql_drop");
	RegistryAccess access;
	List	   *hits;
	ListCell   *lc;
	int			row = 0;

	if (!guard_registry_open(&access))
		PG_RETURN_VOID();
	guard_registry_execute(dropped_protected_sql, 0, NULL, NULL, SPI_OK_SELECT);
	hits = guard_hits_from_result(GUARD_DROP);
	foreach(lc, hits)
	{
		if (DatumGetBool(guard_spi_datum(row++, 5)))
			((GuardHit *) lfirst(lc))->action = GUARD_VANISHED;
	}
	hits = list_concat(hits, narrowed_protected_columns());
	guard_enforce(hits, trigdata->tag, &access);
	guard_registry_close(&access);
	PG_RETURN_VOID();
}

/* The new name when the statement is a rename of this column. */
static char *
renamed_to(Node *parsetree, const char *column)
{
	RenameStmt *stmt;

	if (parsetree == NULL || !IsA(parsetree, RenameStmt))
		return NULL;
	stmt = (RenameStmt *) parsetree;
	if ((stmt->renameType != OBJECT_COLUMN && stmt->renameType != OBJECT_ATTRIBUTE) ||
		stmt->subname == NULL || strcmp(stmt->subname, column) != 0)
		return NULL;
	return pstrdup(stmt->newname);
}

/* Add the typed tables of a composite type (ALTER TYPE ... CASCADE reaches them). */
static List *
add_typed_tables(List *relids, Oid typid)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(typid)};
	uint64		row;

	guard_registry_execute("SELECT oid FROM pg_class WHERE reloftype = $1", 1, types, values, SPI_OK_SELECT);
	for (row = 0; row < SPI_processed; row++)
		relids = list_append_unique_oid(relids, DatumGetObjectId(guard_spi_datum(row, 1)));
	return relids;
}

/*
 * The tables an ALTER TABLE / ALTER TYPE touched: the ones it reports, their
 * inheritance children and partitions (ALTER TABLE recurses into them and
 * reports only the table it was given), and the typed tables of an altered
 * composite type.  The statement holds its locks on all of them.
 */
static List *
touched_tables(void)
{
	List	   *reported = NIL;
	List	   *relids = NIL;
	ListCell   *lc;
	uint64		row;

	guard_registry_execute("SELECT classid, objid FROM pg_event_trigger_ddl_commands()",
						   0, NULL, NULL, SPI_OK_SELECT);
	for (row = 0; row < SPI_processed; row++)
	{
		ObjectAddress *address = palloc(sizeof(ObjectAddress));

		address->classId = DatumGetObjectId(guard_spi_datum(row, 1));
		address->objectId = DatumGetObjectId(guard_spi_datum(row, 2));
		address->objectSubId = 0;
		reported = lappend(reported, address);
	}
	foreach(lc, reported)
	{
		ObjectAddress *address = lfirst(lc);

		if (address->classId == TypeRelationId)
			relids = add_typed_tables(relids, address->objectId);
		else if (address->classId != RelationRelationId)
			continue;
		else if (get_rel_relkind(address->objectId) == RELKIND_COMPOSITE_TYPE)
			relids = add_typed_tables(relids, get_rel_type_id(address->objectId));
		else
			relids = list_append_unique_oid(relids, address->objectId);
	}
	foreach(lc, relids)
	{
		/* The list grows as we go: children of typed tables are covered too. */
		relids = list_concat_unique_oid(relids,
										find_all_inheritors(lfirst_oid(lc), NoLock, NULL));
	}
	return relids;
}

/*
 * The columns that an ALTER TABLE rewrites with ALTER COLUMN ... TYPE ...
 * USING.  Kept apart because USING can replace every value (USING NULL)
 * while the type stays the same, so comparing types does not show it.
 */
static List *
columns_rewritten_by_using(Node *parsetree)
{
	List	   *columns = NIL;
	ListCell   *lc;

	if (parsetree == NULL || !IsA(parsetree, AlterTableStmt))
		return NIL;
	foreach(lc, ((AlterTableStmt *) parsetree)->cmds)
	{
		AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);

		if (cmd->subtype == AT_AlterColumnType && cmd->name != NULL &&
			cmd->def != NULL && IsA(cmd->def, ColumnDef) &&
			((ColumnDef *) cmd->def)->raw_default != NULL)
			columns = lappend(columns, cmd->name);
	}
	return columns;
}

static bool
name_in_list(List *names, const char *name)
{
	ListCell   *lc;

	foreach(lc, names)
	{
		if (strcmp(lfirst(lc), name) == 0)
			return true;
	}
	return false;
}

/*
 * A protected column of a touched table, compared with its catalog entry:
 * a hit when its name is gone (renamed, if the statement renamed it), its
 * type or type modifier is not the recorded one, or the statement rewrote
 * it with USING.  NULL when all is well.
 */
static GuardHit *
check_protected_column(Oid relid, const char *column, Oid typid, int32 typmod,
					   Node *parsetree, List *using_columns)
{
	HeapTuple	tuple = SearchSysCacheAttName(relid, column);
	GuardHit   *hit;

	if (HeapTupleIsValid(tuple))
	{
		Form_pg_attribute att = (Form_pg_attribute) GETSTRUCT(tuple);
		bool		same = att->atttypid == typid && att->atttypmod == typmod;
		bool		rewritten = name_in_list(using_columns, column);

		hit = (same && !rewritten) ? NULL : palloc0(sizeof(GuardHit));
		if (hit)
		{
			hit->action = same ? GUARD_REWRITE : GUARD_RETYPE;
			hit->new_type = att->atttypid;
			hit->new_typmod = att->atttypmod;
		}
		ReleaseSysCache(tuple);
		if (hit == NULL)
			return NULL;
	}
	else
	{
		hit = palloc0(sizeof(GuardHit));
		hit->new_name = renamed_to(parsetree, column);
		hit->action = hit->new_name ? GUARD_RENAME : GUARD_VANISHED;
	}
	hit->relid = relid;
	hit->schema = get_namespace_name(get_rel_namespace(relid));
	hit->table = get_rel_name(relid);
	hit->column = pstrdup(column);
	return hit;
}

/*
 * ddl_command_end of ALTER TABLE / ALTER TYPE: the protected columns of every
 * touched table must keep their name and their recorded type.  Comparing
 * states catches a change however it was written (USING, a typed table's
 * ALTER TYPE, a rename of an inherited column).
 */
Datum
domi_guard_ddl_end(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata = guard_event_trigger_data(fcinfo, "ddl_command_end");
	RegistryAccess access;
	List	   *relids;
	List	   *hits = NIL;
	List	   *using_columns = columns_rewritten_by_using(trigdata->parsetree);
	Oid			types[1] = {OIDARRAYOID};
	Datum		values[1];
	uint64		row;

	if (!guard_registry_open(&access))
		PG_RETURN_VOID();
	relids = touched_tables();
	if (relids != NIL)
	{
		values[0] = guard_oid_array(relids);
		guard_registry_execute("SELECT tbl::oid, col::text, typ::oid, typmod FROM domi._protected_columns"
							   " WHERE tbl = ANY ($1) ORDER BY tbl, col",
							   1, types, values, SPI_OK_SELECT);
		for (row = 0; row < SPI_processed; row++)
		{
			GuardHit   *hit = check_protected_column(DatumGetObjectId(guard_spi_datum(row, 1)),
													 guard_spi_text(row, 2),
													 DatumGetObjectId(guard_spi_datum(row, 3)),
													 DatumGetInt32(guard_spi_datum(row, 4)),
													 trigdata->parsetree,
													 using_columns);

			if (hit)
				hits = lappend(hits, hit);
		}
	}
	guard_enforce(hits, trigdata->tag, &access);
	guard_registry_close(&access);
	PG_RETURN_VOID();
}
