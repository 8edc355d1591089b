/*
 * guard.c
 *		The drop guard: columns that no DDL may drop, rename or retype unless
 *		the transaction says, with SET LOCAL domi.allow_drop, that it means to.
 *
 * Protections live in the registry domi._protected_columns (an extension
 * configuration table, so pg_dump keeps them): the table by OID (regclass,
 * which dumps as a qualified name and restores to the new OID), the column
 * by name, and its type and type modifier as they were when it was
 * protected.  Names, not attribute numbers, because attribute numbers change
 * when a dump is restored (dropped columns are not recreated).
 *
 * Three event triggers, all ENABLE ALWAYS so that they fire under
 * session_replication_role = replica as well:
 *
 *	sql_drop			pg_event_trigger_dropped_objects() lists everything a
 *						statement drops, CASCADE included (the column of
 *						ALTER TABLE ... DROP COLUMN, every table of DROP SCHEMA
 *						... CASCADE, the columns of a type that DROP TYPE or
 *						DROP EXTENSION ... CASCADE takes).  Compared with the
 *						registry by OID: the registry still holds the OID of a
 *						table that is being dropped.
 *	ddl_command_end		for ALTER TABLE and ALTER TYPE (and ALTER VIEW, ALTER
 *						MATERIALIZED VIEW, ALTER FOREIGN TABLE, which can rename
 *						a table's column): the protected columns of every table
 *						the statement touched (and of their partitions, children
 *						and typed tables) must still exist under their name and
 *						with their recorded type.  This compares states, so it
 *						does not matter how the type was changed (a domain, a
 *						typed table's ALTER TYPE); ALTER COLUMN ... TYPE ...
 *						USING that keeps the type is read from the parse tree.
 *	ddl_command_start	DROP EXTENSION domi, DROP SCHEMA domi and DROP OWNED BY
 *						the extension's owner would drop the guard itself, and
 *						a trigger cannot see its own drop at sql_drop time.
 *						They would also drop the keyring, domi.tenant_keys:
 *						while it holds a key that is not destroyed, that is an
 *						accidental crypto-shredding of every tenant, refused
 *						unless domi.allow_drop names domi.tenant_keys.
 *
 * Raising an error in an event trigger rolls the whole statement back.
 *
 * The override must come from the same transaction.  The assign hook cannot
 * tell SET from SET LOCAL, and it runs again when ROLLBACK TO SAVEPOINT puts
 * back an older session-level value, so remembering "the transaction that
 * assigned it" would honour a value set in an earlier transaction.  Instead
 * we read the setting's GUC stack: its top entry says whether the value now
 * in force was set with SET LOCAL (or set_config(..., true)) in this
 * transaction.  There is a stack entry only while a transaction changed the
 * value, so session values (SET, ALTER ROLE ... SET, PGOPTIONS,
 * postgresql.conf) never count.
 *
 * The registry is not readable by PUBLIC.  The C functions do their own
 * privilege checks as the caller, and then read and write the registry as
 * its owner (the role that created the extension), with search_path pinned
 * to pg_catalog, the way a SECURITY DEFINER function would.
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
#include "guard.h"

PG_FUNCTION_INFO_V1(domi_protect_column);
PG_FUNCTION_INFO_V1(domi_unprotect_column);
PG_FUNCTION_INFO_V1(domi_guard_sql_drop);
PG_FUNCTION_INFO_V1(domi_guard_ddl_end);
PG_FUNCTION_INFO_V1(domi_guard_ddl_start);

#define ALLOW_DROP_SETTING	"domi.allow_drop"
#define REGISTRY_SCHEMA		"domi"
#define REGISTRY_TABLE		"_protected_columns"
#define KEYRING_TABLE		"tenant_keys"

/* One SQLSTATE for every refusal, so that migration tooling can catch one. */
#define DOMI_ERRCODE_PROTECTED_COLUMN	DOMI_ERRCODE_GUARD_REFUSAL

/*
 * Parsed domi.allow_drop, the GUC machinery's "extra": count entries of
 * three NUL-terminated names each (schema, table, column), one after another.
 * The entry domi.tenant_keys, which allows dropping the keyring with domi,
 * has an empty column name.
 */
typedef struct AllowDropList
{
	int			count;
	char		names[FLEXIBLE_ARRAY_MEMBER];
} AllowDropList;

static char *allow_drop_setting = NULL;
static const AllowDropList *allow_drop_list = NULL;

/* The setting's own GUC record, to read its stack (see the file header). */
static struct config_generic *allow_drop_guc = NULL;

/* What a statement would do to a protected column. */
typedef enum GuardAction
{
	GUARD_DROP,					/* drops the column (or its table) */
	GUARD_RETYPE,				/* changes its type or type modifier */
	GUARD_REWRITE,				/* rewrites it with ALTER COLUMN TYPE ... USING,
								 * keeping its type */
	GUARD_DROP_FIELD,			/* drops an attribute of the composite type its
								 * values are made of */
	GUARD_RENAME,				/* renames it */
	GUARD_VANISHED,				/* it is gone from a table the statement altered */
	GUARD_UNGUARD				/* drops the guard itself (DROP EXTENSION domi) */
} GuardAction;

typedef struct GuardHit
{
	GuardAction action;
	Oid			relid;
	char	   *schema;
	char	   *table;
	char	   *column;
	char	   *new_name;		/* GUARD_RENAME */
	Oid			new_type;		/* GUARD_RETYPE, GUARD_REWRITE */
	int32		new_typmod;
} GuardHit;

/* State saved while the registry is accessed as its owner. */
typedef DomiOwnerSpi RegistryAccess;

/* ---------------------------------------------------------------------
 * domi.allow_drop
 * ---------------------------------------------------------------------
 */

/*
 * Read one name of an allow_drop entry at *p into out, SQL-style: double
 * quotes keep case and allow any character ("" is a quote), an unquoted
 * name is down-cased and ends at '.', ',', a quote or white space.  Returns
 * the number of bytes written (the name and its NUL), or -1 with the GUC
 * error detail set.
 */
static int
read_allow_drop_name(const char **p, char *out)
{
	const char *s = *p;
	int			len = 0;

	if (*s == '"')
	{
		s++;
		for (;;)
		{
			if (*s == '\0')
			{
				GUC_check_errdetail("A quoted name is not closed.");
				return -1;
			}
			if (*s == '"')
			{
				if (s[1] != '"')
					break;
				s++;
			}
			out[len++] = *s++;
		}
		s++;					/* the closing quote */
		if (len == 0)
		{
			GUC_check_errdetail("A quoted name is empty.");
			return -1;
		}
	}
	else
	{
		const char *start = s;
		char	   *lower;

		while (*s != '\0' && *s != '.' && *s != ',' && *s != '"' &&
			   !isspace((unsigned char) *s))
			s++;
		if (s == start)
		{
			GUC_check_errdetail("Each entry must be schema.table.column, separated by commas.");
			return -1;
		}
		if (s - start == 1 && *start == '*')
		{
			GUC_check_errdetail("Wildcards are not supported: name each column.");
			return -1;
		}
		lower = downcase_identifier(start, s - start, false, false);
		len = strlen(lower);
		memcpy(out, lower, len);
		pfree(lower);
	}
	out[len++] = '\0';
	*p = s;
	return len;
}

static inline const char *
skip_space(const char *p)
{
	while (isspace((unsigned char) *p))
		p++;
	return p;
}

/* Is the entry parsed so far (schema and table) domi.tenant_keys? */
static bool
is_keyring_entry(const char *entry)
{
	return strcmp(entry, REGISTRY_SCHEMA) == 0 &&
		strcmp(entry + strlen(entry) + 1, KEYRING_TABLE) == 0;
}

/*
 * The check hook parses the list once, at SET time, so that a typo is an
 * error there and not a silent "nothing allowed" at DROP time.  The parsed
 * names never take more than two bytes per byte of text, plus two.
 */
static bool
check_allow_drop(char **newval, void **extra, GucSource source)
{
	const char *p = *newval ? *newval : "";
	size_t		room = 2 * strlen(p) + 2;
	AllowDropList *list;
	char	   *out;

	list = malloc(offsetof(AllowDropList, names) + room);
	if (list == NULL)
		return false;
	list->count = 0;
	out = list->names;

	p = skip_space(p);
	while (*p != '\0')
	{
		const char *entry = out;
		int			part;

		for (part = 0; part < 3; part++)
		{
			int			len;

			p = skip_space(p);
			len = read_allow_drop_name(&p, out);
			if (len < 0)
			{
				free(list);
				GUC_check_errcode(ERRCODE_INVALID_PARAMETER_VALUE);
				return false;
			}
			out += len;
			p = skip_space(p);
			if (part == 1 && *p != '.' && is_keyring_entry(entry))
			{
				*out++ = '\0';	/* no column: the whole key table */
				break;
			}
			if (part < 2 && *p++ != '.')
			{
				free(list);
				GUC_check_errcode(ERRCODE_INVALID_PARAMETER_VALUE);
				GUC_check_errdetail("Each entry must be schema.table.column, with double quotes around names that need them.");
				return false;
			}
		}
		list->count++;
		if (*p == ',')
		{
			p = skip_space(p + 1);
			if (*p == '\0')
			{
				free(list);
				GUC_check_errcode(ERRCODE_INVALID_PARAMETER_VALUE);
				GUC_check_errdetail("The list ends with a comma.");
				return false;
			}
		}
		else if (*p != '\0')
		{
			free(list);
			GUC_check_errcode(ERRCODE_INVALID_PARAMETER_VALUE);
			GUC_check_errdetail("Each entry must be schema.table.column, separated by commas.");
			return false;
		}
	}
	*extra = list;
	return true;
}

static void
assign_allow_drop(const char *newval, void *extra)
{
	allow_drop_list = (const AllowDropList *) extra;
}

/* Was the value now in force set with SET LOCAL in this transaction? */
static bool
allow_drop_set_locally(void)
{
	GucStack   *top;

	if (allow_drop_guc == NULL)
		return false;
	top = allow_drop_guc->stack;
	return top != NULL && (top->state == GUC_LOCAL || top->state == GUC_SET_LOCAL);
}

static bool
allow_drop_has_value(void)
{
	return allow_drop_list != NULL && allow_drop_list->count > 0;
}

/*
 * Does the transaction's SET LOCAL domi.allow_drop name this column (or,
 * with an empty column, this table)?
 */
static bool
allow_drop_names_path(const char *schema, const char *table_name, const char *column_name)
{
	const char *name;
	int			i;

	if (!allow_drop_has_value() || !allow_drop_set_locally())
		return false;
	name = allow_drop_list->names;
	for (i = 0; i < allow_drop_list->count; i++)
	{
		const char *table = name + strlen(name) + 1;
		const char *column = table + strlen(table) + 1;

		if (strcmp(name, schema) == 0 && strcmp(table, table_name) == 0 &&
			strcmp(column, column_name) == 0)
			return true;
		name = column + strlen(column) + 1;
	}
	return false;
}

/* For the other guards (guard.h). */
bool
domi_allow_drop_names(const char *schema, const char *table, const char *name)
{
	return allow_drop_names_path(schema, table, name);
}

bool
domi_allow_drop_set_but_not_locally(void)
{
	return allow_drop_has_value() && !allow_drop_set_locally();
}

static bool
allow_drop_names(const GuardHit *hit)
{
	return allow_drop_names_path(hit->schema, hit->table, hit->column);
}

void
domi_guard_init(void)
{
	struct config_generic **vars;
	int			nvars;
	int			i;

	DefineCustomStringVariable(ALLOW_DROP_SETTING,
							   "Protected columns the current transaction may drop, rename, retype or rewrite, and tenant tables whose isolation it may switch off.",
							   "A comma-separated list of schema.table.column (schema.table.domi_tenant_isolation for a tenant table). Only SET LOCAL in the transaction that runs the DDL counts.",
							   &allow_drop_setting,
							   "",
							   PGC_USERSET,
							   GUC_NOT_IN_SAMPLE,
							   check_allow_drop,
							   assign_allow_drop,
							   NULL);

	/* Without its record we never honour the setting: the guard fails closed. */
	vars = get_guc_variables();
	nvars = GetNumConfigOptions();
	for (i = 0; i < nvars; i++)
	{
		if (strcmp(vars[i]->name, ALLOW_DROP_SETTING) == 0)
		{
			allow_drop_guc = vars[i];
			break;
		}
	}
}

/* ---------------------------------------------------------------------
 * Names
 * ---------------------------------------------------------------------
 */

/* schema.table.column, each quoted as needed: the value allow_drop takes. */
static char *
column_path(const GuardHit *hit)
{
	return psprintf("%s.%s",
					quote_qualified_identifier(hit->schema, hit->table),
					quote_identifier(hit->column));
}

/*
 * schema.table as messages show it, in double quotes like every name: not
 * quoted for SQL (the hint gives the SQL form).
 */
static char *
table_path(const GuardHit *hit)
{
	return psprintf("%s.%s", hit->schema, hit->table);
}

static const char *
command_name(CommandTag tag)
{
	return GetCommandTagName(tag);
}

/* ---------------------------------------------------------------------
 * Registry access
 * ---------------------------------------------------------------------
 */

static Oid
registry_relid(void)
{
	Oid			nsp = get_namespace_oid(REGISTRY_SCHEMA, true);

	if (!OidIsValid(nsp))
		return InvalidOid;
	return get_relname_relid(REGISTRY_TABLE, nsp);
}

/*
 * Connect to SPI as the registry's owner with search_path pinned.  Returns
 * false, connecting nothing, when there is no registry: the extension is
 * being created or dropped, and nothing can be protected.  Errors need no
 * cleanup: (sub)transaction abort restores the user and the settings.
 */
static bool
registry_open(RegistryAccess *access)
{
	Oid			relid = registry_relid();
	HeapTuple	tuple;
	Oid			owner;

	if (!OidIsValid(relid))
		return false;
	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tuple))
		return false;
	owner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);

	domi_spi_connect_as(owner, access);
	return true;
}

static void
registry_close(RegistryAccess *access)
{
	domi_spi_finish_as(access);
}

/*
 * Every registry statement is planned once per backend and kept: DDL that
 * touches no protected column must stay cheap (bench/guard).  A kept plan is
 * re-planned by the plan cache when the registry is dropped and re-created
 * (DROP and CREATE EXTENSION), and search_path is always the pinned one.
 */
#define MAX_REGISTRY_PLANS 16

typedef struct RegistryPlan
{
	const char *sql;
	SPIPlanPtr	plan;
} RegistryPlan;

static RegistryPlan registry_plans[MAX_REGISTRY_PLANS];
static int	registry_plan_count = 0;

static SPIPlanPtr
registry_plan(const char *sql, int nargs, Oid *types)
{
	SPIPlanPtr	plan;
	int			i;

	for (i = 0; i < registry_plan_count; i++)
	{
		if (registry_plans[i].sql == sql || strcmp(registry_plans[i].sql, sql) == 0)
			return registry_plans[i].plan;
	}
	plan = SPI_prepare(sql, nargs, types);
	if (plan == NULL)
		elog(ERROR, "could not prepare drop guard registry query: %s",
			 SPI_result_code_string(SPI_result));
	if (registry_plan_count == MAX_REGISTRY_PLANS)
		return plan;			/* not kept: freed with the SPI context */
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "could not keep drop guard registry query");
	registry_plans[registry_plan_count].sql = sql;
	registry_plans[registry_plan_count].plan = plan;
	registry_plan_count++;
	return plan;
}

/*
 * Run with the latest snapshot, not the transaction's: under REPEATABLE READ
 * a protection committed after the transaction began must still stop its
 * DROP, as PostgreSQL's own catalog checks see the latest state.
 */
static void
registry_execute(const char *sql, int nargs, Oid *types, Datum *values,
				 int expected)
{
	int			ret = SPI_execute_snapshot(registry_plan(sql, nargs, types), values, NULL,
										   GetLatestSnapshot(), InvalidSnapshot,
										   false, true, 0);

	if (ret != expected)
		elog(ERROR, "drop guard registry query failed: %s", SPI_result_code_string(ret));
}

static char *
spi_text(int row, int col)
{
	char	   *value = SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col);

	if (value == NULL)
		elog(ERROR, "unexpected NULL in drop guard registry query");
	return value;
}

static Datum
spi_datum(int row, int col)
{
	bool		isnull;
	Datum		value = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, &isnull);

	if (isnull)
		elog(ERROR, "unexpected NULL in drop guard registry query");
	return value;
}

/*
 * Hits from the current SPI result, whose first four columns are relid,
 * schema, table and column.  Allocated in the SPI procedure context, which
 * lives until registry_close.
 */
static List *
hits_from_result(GuardAction action)
{
	List	   *hits = NIL;
	uint64		row;

	for (row = 0; row < SPI_processed; row++)
	{
		GuardHit   *hit = palloc0(sizeof(GuardHit));

		hit->action = action;
		hit->relid = DatumGetObjectId(spi_datum(row, 1));
		hit->schema = spi_text(row, 2);
		hit->table = spi_text(row, 3);
		hit->column = spi_text(row, 4);
		hits = lappend(hits, hit);
	}
	return hits;
}

/* After an allowed statement, the registry follows what it did. */
static void
registry_follow(const GuardHit *hit)
{
	Oid			types[4] = {OIDOID, NAMEOID, OIDOID, INT4OID};
	Datum		values[4];

	values[0] = ObjectIdGetDatum(hit->relid);
	values[1] = DirectFunctionCall1(namein, CStringGetDatum(hit->column));
	switch (hit->action)
	{
		case GUARD_DROP:
		case GUARD_VANISHED:
			registry_execute("DELETE FROM domi._protected_columns WHERE tbl = $1 AND col = $2",
							 2, types, values, SPI_OK_DELETE);
			break;
		case GUARD_REWRITE:
		case GUARD_DROP_FIELD:
			/* Same type: nothing to record. */
			break;
		case GUARD_RETYPE:
			values[2] = ObjectIdGetDatum(hit->new_type);
			values[3] = Int32GetDatum(hit->new_typmod);
			registry_execute("UPDATE domi._protected_columns SET typ = $3, typmod = $4 WHERE tbl = $1 AND col = $2",
							 4, types, values, SPI_OK_UPDATE);
			break;
		case GUARD_RENAME:
			types[2] = NAMEOID;
			values[2] = DirectFunctionCall1(namein, CStringGetDatum(hit->new_name));
			registry_execute("UPDATE domi._protected_columns SET col = $3 WHERE tbl = $1 AND col = $2",
							 3, types, values, SPI_OK_UPDATE);
			break;
		case GUARD_UNGUARD:
			/* The registry goes with the extension. */
			break;
	}
}

/* ---------------------------------------------------------------------
 * Refusal and override
 * ---------------------------------------------------------------------
 */

static const char *
action_verb(GuardAction action)
{
	switch (action)
	{
		case GUARD_DROP:
			return "drop";
		case GUARD_RETYPE:
			return "change the type of";
		case GUARD_REWRITE:
			return "rewrite";
		case GUARD_DROP_FIELD:
			return "drop a field of";
		case GUARD_RENAME:
			return "rename";
		case GUARD_VANISHED:
			return "lose";
		case GUARD_UNGUARD:
			return "remove the protection of";
	}
	return "change";			/* keep the compiler quiet */
}

/* The same, as "would ... it" in a sentence. */
static const char *
action_effect(GuardAction action)
{
	switch (action)
	{
		case GUARD_DROP:
			return "drop it";
		case GUARD_RETYPE:
			return "change its type";
		case GUARD_REWRITE:
			return "rewrite its values with USING";
		case GUARD_DROP_FIELD:
			return "drop an attribute of its composite type, and that part of every value";
		case GUARD_RENAME:
			return "rename it";
		case GUARD_VANISHED:
			return "find it missing";	/* reported apart, see report_refusal */
		case GUARD_UNGUARD:
			return "remove its protection";
	}
	return "change it";			/* keep the compiler quiet */
}

/* The exact value of domi.allow_drop that lets the whole statement through. */
static char *
allow_drop_value_for(List *hits)
{
	StringInfoData buf;
	List	   *seen = NIL;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, hits)
	{
		char	   *path = column_path(lfirst(lc));
		ListCell   *prev;
		bool		repeated = false;

		foreach(prev, seen)
			repeated |= strcmp(lfirst(prev), path) == 0;
		if (repeated)
			continue;
		seen = lappend(seen, path);
		if (buf.len > 0)
			appendStringInfoString(&buf, ", ");
		appendStringInfoString(&buf, path);
	}
	return buf.data;
}

/* Say why a session-level domi.allow_drop did not count. */
static void
append_not_local_note(StringInfo detail)
{
	if (allow_drop_has_value() && !allow_drop_set_locally())
		appendStringInfoString(detail, " domi.allow_drop is set, but not with SET LOCAL in this transaction: only that counts.");
}

static void
report_refusal(List *hits, List *refused, CommandTag tag)
{
	const GuardHit *first = linitial(refused);
	StringInfoData detail;

	initStringInfo(&detail);
	if (list_length(refused) == 1 && first->action == GUARD_VANISHED)
		appendStringInfoString(&detail, "The column is protected with domi.protect_column(), but the table has no column of that name any more (it was renamed or dropped while the guard's event triggers were disabled).");
	else if (list_length(refused) == 1)
		appendStringInfo(&detail, "The column is protected with domi.protect_column(), and %s would %s.",
						 command_name(tag), action_effect(first->action));
	else
	{
		ListCell   *lc;

		appendStringInfo(&detail, "%s would affect %d protected columns:",
						 command_name(tag), list_length(refused));
		foreach(lc, refused)
		{
			const GuardHit *hit = lfirst(lc);

			appendStringInfo(&detail, "%s %s (%s)", lc == list_head(refused) ? "" : ",",
							 column_path(hit),
							 hit->action == GUARD_VANISHED ? "missing" : action_effect(hit->action));
		}
		appendStringInfoChar(&detail, '.');
	}
	append_not_local_note(&detail);

	switch (first->action)
	{
		case GUARD_UNGUARD:
			ereport(ERROR,
					(errcode(DOMI_ERRCODE_PROTECTED_COLUMN),
					 errmsg("cannot drop extension \"domi\" while column \"%s\" of table \"%s\" is protected",
							first->column, table_path(first)),
					 errdetail_internal("%s", detail.data),
					 errhint("Run domi.unprotect_column() for each protected column first, or SET LOCAL domi.allow_drop = %s in the same transaction.",
							 quote_literal_cstr(allow_drop_value_for(hits)))));
			break;
		case GUARD_VANISHED:
			ereport(ERROR,
					(errcode(DOMI_ERRCODE_PROTECTED_COLUMN),
					 errmsg("protected column \"%s\" of table \"%s\" no longer exists",
							first->column, table_path(first)),
					 errdetail_internal("%s", detail.data),
					 errhint("Give the column its name back, or SET LOCAL domi.allow_drop = %s in the same transaction to drop its protection.",
							 quote_literal_cstr(allow_drop_value_for(hits)))));
			break;
		default:
			ereport(ERROR,
					(errcode(DOMI_ERRCODE_PROTECTED_COLUMN),
					 errmsg("cannot %s protected column \"%s\" of table \"%s\"",
							action_verb(first->action), first->column, table_path(first)),
					 errdetail_internal("%s", detail.data),
					 errhint("To go ahead, run SET LOCAL domi.allow_drop = %s first in the same transaction.",
							 quote_literal_cstr(allow_drop_value_for(hits)))));
			break;
	}
}

/*
 * The server log gets who did it (the role that ran the statement, not the
 * registry's owner we act as now); the client gets a notice.
 */
static void
report_override(const GuardHit *hit, CommandTag tag, Oid caller)
{
	const char *role = GetUserNameFromId(caller, false);
	char	   *what;

	switch (hit->action)
	{
		case GUARD_DROP:
			what = pstrdup("dropped");
			break;
		case GUARD_RETYPE:
			what = psprintf("changed to type %s, and stays protected",
							format_type_with_typemod(hit->new_type, hit->new_typmod));
			break;
		case GUARD_REWRITE:
			what = pstrdup("rewritten with USING, and stays protected");
			break;
		case GUARD_DROP_FIELD:
			what = pstrdup("lost an attribute of its composite type, and stays protected");
			break;
		case GUARD_RENAME:
			what = psprintf("renamed to \"%s\", and stays protected", hit->new_name);
			break;
		case GUARD_VANISHED:
			what = pstrdup("no longer protected");
			break;
		default:
			what = pstrdup("left unprotected by dropping the extension");
			break;
	}
	ereport(LOG_SERVER_ONLY,
			(errmsg("protected column \"%s\" of table \"%s\" %s under domi.allow_drop",
					hit->column, table_path(hit), what),
			 errdetail("Role \"%s\" ran %s with SET LOCAL domi.allow_drop naming %s.",
					   role, command_name(tag), column_path(hit))));
	ereport(NOTICE,
			(errmsg("protected column \"%s\" of table \"%s\" %s under domi.allow_drop",
					hit->column, table_path(hit), what)));
}

/*
 * Refuse the statement unless the transaction allowed every hit; if it did,
 * log each and bring the registry up to date.  Runs inside registry_open.
 */
static void
guard_enforce(List *hits, CommandTag tag, const RegistryAccess *access)
{
	List	   *refused = NIL;
	ListCell   *lc;

	foreach(lc, hits)
	{
		if (!allow_drop_names(lfirst(lc)))
			refused = lappend(refused, lfirst(lc));
	}
	if (refused != NIL)
		report_refusal(hits, refused, tag);

	foreach(lc, hits)
	{
		report_override(lfirst(lc), tag, access->saved_userid);
		registry_follow(lfirst(lc));
	}
}

static EventTriggerData *
event_trigger_data(FunctionCallInfo fcinfo, const char *event)
{
	EventTriggerData *trigdata;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_EVENT_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function can only be called as an event trigger on %s", event)));
	trigdata = (EventTriggerData *) fcinfo->context;
	if (strcmp(trigdata->event, event) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_EVENT_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function can only be called as an event trigger on %s", event)));
	return trigdata;
}

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

static Datum
oid_array(List *oids)
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

	registry_execute(dropped_column_relations_sql, 0, NULL, NULL, SPI_OK_SELECT);
	for (row = 0; row < SPI_processed; row++)
		dropped_from = lappend_oid(dropped_from, DatumGetObjectId(spi_datum(row, 1)));
	foreach(lc, dropped_from)
	{
		Oid			rowtype = get_rel_type_id(lfirst_oid(lc));

		if (OidIsValid(rowtype))
			columns_made_of(rowtype, &relids, &attnums);
	}
	if (relids == NIL)
		return NIL;

	values[0] = oid_array(relids);
	values[1] = int2_array(attnums);
	registry_execute("SELECT DISTINCT r.tbl::oid, n.nspname::text, c.relname::text, r.col::text"
					 "  FROM unnest($1, $2) u(rel, att)"
					 "  JOIN pg_attribute a ON a.attrelid = u.rel AND a.attnum = u.att AND NOT a.attisdropped"
					 "  JOIN domi._protected_columns r ON r.tbl = a.attrelid AND r.col = a.attname"
					 "  JOIN pg_class c ON c.oid = r.tbl"
					 "  JOIN pg_namespace n ON n.oid = c.relnamespace"
					 " ORDER BY 2, 3, 4",
					 2, types, values, SPI_OK_SELECT);
	return hits_from_result(GUARD_DROP_FIELD);
}

Datum
domi_guard_sql_drop(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata = event_trigger_data(fcinfo, "sql_drop");
	RegistryAccess access;
	List	   *hits;
	ListCell   *lc;
	int			row = 0;

	if (!registry_open(&access))
		PG_RETURN_VOID();
	registry_execute(dropped_protected_sql, 0, NULL, NULL, SPI_OK_SELECT);
	hits = hits_from_result(GUARD_DROP);
	foreach(lc, hits)
	{
		if (DatumGetBool(spi_datum(row++, 5)))
			((GuardHit *) lfirst(lc))->action = GUARD_VANISHED;
	}
	hits = list_concat(hits, narrowed_protected_columns());
	guard_enforce(hits, trigdata->tag, &access);
	registry_close(&access);
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

	registry_execute("SELECT oid FROM pg_class WHERE reloftype = $1", 1, types, values, SPI_OK_SELECT);
	for (row = 0; row < SPI_processed; row++)
		relids = list_append_unique_oid(relids, DatumGetObjectId(spi_datum(row, 1)));
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

	registry_execute("SELECT classid, objid FROM pg_event_trigger_ddl_commands()",
					 0, NULL, NULL, SPI_OK_SELECT);
	for (row = 0; row < SPI_processed; row++)
	{
		ObjectAddress *address = palloc(sizeof(ObjectAddress));

		address->classId = DatumGetObjectId(spi_datum(row, 1));
		address->objectId = DatumGetObjectId(spi_datum(row, 2));
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
	EventTriggerData *trigdata = event_trigger_data(fcinfo, "ddl_command_end");
	RegistryAccess access;
	List	   *relids;
	List	   *hits = NIL;
	List	   *using_columns = columns_rewritten_by_using(trigdata->parsetree);
	Oid			types[1] = {OIDARRAYOID};
	Datum		values[1];
	uint64		row;

	if (!registry_open(&access))
		PG_RETURN_VOID();
	relids = touched_tables();
	if (relids != NIL)
	{
		values[0] = oid_array(relids);
		registry_execute("SELECT tbl::oid, col::text, typ::oid, typmod FROM domi._protected_columns"
						 " WHERE tbl = ANY ($1) ORDER BY tbl, col",
						 1, types, values, SPI_OK_SELECT);
		for (row = 0; row < SPI_processed; row++)
		{
			GuardHit   *hit = check_protected_column(DatumGetObjectId(spi_datum(row, 1)),
													 spi_text(row, 2),
													 DatumGetObjectId(spi_datum(row, 3)),
													 DatumGetInt32(spi_datum(row, 4)),
													 trigdata->parsetree,
													 using_columns);

			if (hit)
				hits = lappend(hits, hit);
		}
	}
	guard_enforce(hits, trigdata->tag, &access);
	registry_close(&access);
	PG_RETURN_VOID();
}

static bool
names_domi(List *names)
{
	ListCell   *lc;

	foreach(lc, names)
	{
		if (strcmp(strVal(lfirst(lc)), REGISTRY_SCHEMA) == 0)
			return true;
	}
	return false;
}

/*
 * The roles of DROP OWNED BY, resolved as the caller: CURRENT_USER must mean
 * the caller, not the registry's owner we later act as.
 */
static List *
drop_owned_roles(Node *parsetree)
{
	List	   *roles = NIL;
	ListCell   *lc;

	if (parsetree == NULL || !IsA(parsetree, DropOwnedStmt))
		return NIL;
	foreach(lc, ((DropOwnedStmt *) parsetree)->roles)
		roles = lappend_oid(roles, get_rolespec_oid(lfirst(lc), true));
	return roles;
}

/*
 * Does DROP EXTENSION ... CASCADE of these extensions take domi with it?  It
 * does when one of domi's objects depends on an object of one of them (its
 * PL/pgSQL functions on plpgsql's language), or domi requires one of them,
 * directly or through the extensions they require: PostgreSQL then drops
 * the whole of domi, guard included, and no sql_drop trigger of domi's is
 * left to see it.
 */
static const char *const extensions_domi_needs_sql =
"WITH RECURSIVE needs(ext) AS ("
"    SELECT x.refobjid FROM pg_extension e"
"      JOIN pg_depend m ON m.refclassid = 'pg_extension'::regclass AND m.refobjid = e.oid AND m.deptype = 'e'"
"      JOIN pg_depend d ON d.classid = m.classid AND d.objid = m.objid AND d.deptype = 'n'"
"      JOIN pg_depend x ON x.classid = d.refclassid AND x.objid = d.refobjid AND x.deptype = 'e'"
"     WHERE e.extname = 'domi'"
"  UNION"
"    SELECT r.refobjid FROM pg_extension e"
"      JOIN pg_depend r ON r.classid = 'pg_extension'::regclass AND r.objid = e.oid"
"       AND r.refclassid = 'pg_extension'::regclass AND r.deptype = 'n'"
"     WHERE e.extname = 'domi'"
"  UNION"
"    SELECT r.refobjid FROM needs n"
"      JOIN pg_depend r ON r.classid = 'pg_extension'::regclass AND r.objid = n.ext"
"       AND r.refclassid = 'pg_extension'::regclass AND r.deptype = 'n')"
"SELECT FROM needs WHERE ext = ANY ($1)";

static bool
cascades_to_domi(List *names)
{
	List	   *extensions = NIL;
	ListCell   *lc;
	Oid			types[1] = {OIDARRAYOID};
	Datum		values[1];

	foreach(lc, names)
	{
		Oid			ext = get_extension_oid(strVal(lfirst(lc)), true);

		if (OidIsValid(ext))
			extensions = lappend_oid(extensions, ext);
	}
	if (extensions == NIL)
		return false;
	values[0] = oid_array(extensions);
	registry_execute(extensions_domi_needs_sql, 1, types, values, SPI_OK_SELECT);
	return SPI_processed > 0;
}

/*
 * Would this statement drop the extension, and with it the guard?  DROP
 * OWNED BY drops it when the role owns the extension, or owns its schema
 * (a schema domi made before CREATE EXTENSION) and the statement cascades.
 */
static bool
drops_the_guard(Node *parsetree, List *owned_by)
{
	Oid			types[2] = {OIDOID, BOOLOID};
	ListCell   *lc;

	if (parsetree != NULL && IsA(parsetree, DropStmt))
	{
		DropStmt   *stmt = (DropStmt *) parsetree;

		/* The extension and its schema are both called domi. */
		if ((stmt->removeType == OBJECT_EXTENSION ||
			 stmt->removeType == OBJECT_SCHEMA) && names_domi(stmt->objects))
			return true;
		return stmt->removeType == OBJECT_EXTENSION && stmt->behavior == DROP_CASCADE &&
			cascades_to_domi(stmt->objects);
	}
	foreach(lc, owned_by)
	{
		bool		cascade = ((DropOwnedStmt *) parsetree)->behavior == DROP_CASCADE;
		Datum		values[2] = {ObjectIdGetDatum(lfirst_oid(lc)), BoolGetDatum(cascade)};

		registry_execute("SELECT FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
						 " WHERE e.extname = 'domi' AND (e.extowner = $1 OR (n.nspowner = $1 AND $2))",
						 2, types, values, SPI_OK_SELECT);
		if (SPI_processed > 0)
			return true;
	}
	return false;
}

/*
 * The keys in domi.tenant_keys that are not destroyed, read as the registry's
 * owner (inside registry_open): the keyring goes with the extension, and with
 * it every value encrypted under them.  No root key is needed to count them.
 */
static int64
live_tenant_keys(void)
{
	if (!OidIsValid(get_relname_relid(KEYRING_TABLE, get_namespace_oid(REGISTRY_SCHEMA, false))))
		return 0;
	registry_execute("SELECT count(*) FROM domi.tenant_keys WHERE state <> 'destroyed'",
					 0, NULL, NULL, SPI_OK_SELECT);
	return DatumGetInt64(spi_datum(0, 1));
}

/*
 * Before the keyring's refusal tells how many keys are live: a caller who
 * may not drop what the statement names gets PostgreSQL's own permission
 * error, and learns nothing of the keyring (the checks DROP itself makes
 * later, made first).
 */
static void
check_may_drop(Node *parsetree, List *owned_by, Oid caller)
{
	ListCell   *lc;

	if (parsetree != NULL && IsA(parsetree, DropStmt))
	{
		DropStmt   *stmt = (DropStmt *) parsetree;

		foreach(lc, stmt->objects)
		{
			const char *name;
			Oid			oid;

			if (!IsA(lfirst(lc), String))
				continue;
			name = strVal(lfirst(lc));
			if (stmt->removeType == OBJECT_EXTENSION &&
				OidIsValid(oid = get_extension_oid(name, true)) &&
				!pg_extension_ownercheck(oid, caller))
				aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_EXTENSION, name);
			if (stmt->removeType == OBJECT_SCHEMA &&
				OidIsValid(oid = get_namespace_oid(name, true)) &&
				!pg_namespace_ownercheck(oid, caller))
				aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_SCHEMA, name);
		}
	}
	foreach(lc, owned_by)
		if (OidIsValid(lfirst_oid(lc)) && !has_privs_of_role(caller, lfirst_oid(lc)))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied to drop objects")));
}

static void
refuse_keyring_drop(int64 keys, CommandTag tag)
{
	StringInfoData detail;

	initStringInfo(&detail);
	appendStringInfo(&detail, "%s would drop domi.tenant_keys with the extension, and no copy of its keys is kept.",
					 command_name(tag));
	append_not_local_note(&detail);
	ereport(ERROR,
			(errcode(DOMI_ERRCODE_PROTECTED_COLUMN),
			 errmsg_plural("cannot drop extension \"domi\": it would destroy %lld tenant key and make the data encrypted under it unreadable",
						   "cannot drop extension \"domi\": it would destroy %lld tenant keys and make the data encrypted under them unreadable",
						   keys, (long long) keys),
			 errdetail_internal("%s", detail.data),
			 errhint("Dump them first (pg_dump keeps them: domi.tenant_keys is an extension configuration table), "
					 "destroy them on purpose with domi.destroy_tenant_keys(), "
					 "or SET LOCAL domi.allow_drop = 'domi.tenant_keys' in the same transaction.")));
}

static void
report_keyring_override(int64 keys, CommandTag tag, Oid caller)
{
	const char *role = GetUserNameFromId(caller, false);

	ereport(LOG_SERVER_ONLY,
			(errmsg_plural("%lld tenant key destroyed with extension \"domi\" under domi.allow_drop",
						   "%lld tenant keys destroyed with extension \"domi\" under domi.allow_drop",
						   keys, (long long) keys),
			 errdetail("Role \"%s\" ran %s with SET LOCAL domi.allow_drop naming domi.tenant_keys.",
					   role, command_name(tag))));
	ereport(NOTICE,
			(errmsg_plural("%lld tenant key destroyed with extension \"domi\" under domi.allow_drop",
						   "%lld tenant keys destroyed with extension \"domi\" under domi.allow_drop",
						   keys, (long long) keys)));
}

Datum
domi_guard_ddl_start(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata = event_trigger_data(fcinfo, "ddl_command_start");
	List	   *owned_by = drop_owned_roles(trigdata->parsetree);
	RegistryAccess access;

	if (!registry_open(&access))
		PG_RETURN_VOID();
	if (drops_the_guard(trigdata->parsetree, owned_by))
	{
		int64		keys;

		check_may_drop(trigdata->parsetree, owned_by, access.saved_userid);
		keys = live_tenant_keys();

		if (keys > 0 && !allow_drop_names_path(REGISTRY_SCHEMA, KEYRING_TABLE, ""))
			refuse_keyring_drop(keys, trigdata->tag);
		registry_execute("SELECT r.tbl::oid, n.nspname::text, c.relname::text, r.col::text"
						 "  FROM domi._protected_columns r"
						 "  JOIN pg_class c ON c.oid = r.tbl"
						 "  JOIN pg_namespace n ON n.oid = c.relnamespace"
						 " ORDER BY 2, 3, 4",
						 0, NULL, NULL, SPI_OK_SELECT);
		guard_enforce(hits_from_result(GUARD_UNGUARD), trigdata->tag, &access);
		if (keys > 0)
			report_keyring_override(keys, trigdata->tag, access.saved_userid);
	}
	registry_close(&access);
	PG_RETURN_VOID();
}

/* ---------------------------------------------------------------------
 * domi.protect_column and domi.unprotect_column
 * ---------------------------------------------------------------------
 */

/*
 * The table behind a regclass argument, checked as the caller: it exists,
 * is a permanent ordinary or partitioned table, and the caller owns it.
 * Locked against concurrent DROP and ALTER until the transaction ends.
 */
static void
check_protectable_table(FunctionCallInfo fcinfo, Oid *relid, char **schema, char **table)
{
	HeapTuple	tuple;
	Form_pg_class form;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("table and column must not be NULL")));
	*relid = PG_GETARG_OID(0);
	LockRelationOid(*relid, AccessShareLock);
	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(*relid));
	if (!HeapTupleIsValid(tuple))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", *relid)));
	form = (Form_pg_class) GETSTRUCT(tuple);
	*schema = get_namespace_name(form->relnamespace);
	*table = pstrdup(NameStr(form->relname));
	if (form->relkind != RELKIND_RELATION && form->relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a table", quote_qualified_identifier(*schema, *table)),
				 errdetail("Only columns of ordinary and partitioned tables can be protected.")));
	if (form->relpersistence == RELPERSISTENCE_TEMP)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot protect a column of temporary table \"%s\"", NameStr(form->relname)),
				 errdetail("Temporary tables are dropped at the end of their session without running event triggers.")));
	if (!pg_class_ownercheck(*relid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, get_relkind_objtype(form->relkind), *table);
	ReleaseSysCache(tuple);
}

/*
 * Only a superuser's ALTER EXTENSION domi DROP TABLE and DROP TABLE of the
 * registry lead here: say so rather than fail as if it could not happen.
 */
static void
report_missing_registry(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("drop guard registry \"%s.%s\" does not exist", REGISTRY_SCHEMA, REGISTRY_TABLE),
			 errhint("Reinstall the extension with DROP EXTENSION domi and CREATE EXTENSION domi.")));
}

/*
 * domi.protect_column(tbl regclass, col name) returns boolean
 *
 * True when the column became protected, false when it already was.
 */
Datum
domi_protect_column(PG_FUNCTION_ARGS)
{
	Oid			relid;
	char	   *schema;
	char	   *table;
	Name		column;
	HeapTuple	atttuple;
	Form_pg_attribute att;
	Oid			types[5] = {OIDOID, NAMEOID, OIDOID, INT4OID, NAMEOID};
	Datum		values[5];
	RegistryAccess access;
	bool		added;

	check_protectable_table(fcinfo, &relid, &schema, &table);
	column = PG_GETARG_NAME(1);
	atttuple = SearchSysCacheAttName(relid, NameStr(*column));
	if (!HeapTupleIsValid(atttuple))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation \"%s\" does not exist",
						NameStr(*column), table)));
	att = (Form_pg_attribute) GETSTRUCT(atttuple);
	if (att->attnum <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot protect system column \"%s\"", NameStr(*column))));

	values[0] = ObjectIdGetDatum(relid);
	values[1] = NameGetDatum(column);
	values[2] = ObjectIdGetDatum(att->atttypid);
	values[3] = Int32GetDatum(att->atttypmod);
	values[4] = DirectFunctionCall1(namein,
									CStringGetDatum(GetUserNameFromId(GetUserId(), false)));
	ReleaseSysCache(atttuple);

	if (!registry_open(&access))
		report_missing_registry();
	registry_execute("INSERT INTO domi._protected_columns (tbl, col, typ, typmod, protected_by)"
					 " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tbl, col) DO NOTHING",
					 5, types, values, SPI_OK_INSERT);
	added = SPI_processed > 0;
	registry_close(&access);
	PG_RETURN_BOOL(added);
}

/*
 * domi.unprotect_column(tbl regclass, col name) returns boolean
 *
 * True when a protection was removed, false when there was none.  The column
 * need not exist any more: a protection whose column was lost can be removed.
 */
Datum
domi_unprotect_column(PG_FUNCTION_ARGS)
{
	Oid			relid;
	char	   *schema;
	char	   *table;
	Oid			types[2] = {OIDOID, NAMEOID};
	Datum		values[2];
	RegistryAccess access;
	bool		removed;

	check_protectable_table(fcinfo, &relid, &schema, &table);
	values[0] = ObjectIdGetDatum(relid);
	values[1] = NameGetDatum(PG_GETARG_NAME(1));

	if (!registry_open(&access))
		report_missing_registry();
	registry_execute("DELETE FROM domi._protected_columns WHERE tbl = $1 AND col = $2",
					 2, types, values, SPI_OK_DELETE);
	removed = SPI_processed > 0;
	registry_close(&access);
	if (removed)
		ereport(LOG_SERVER_ONLY,
				(errmsg("column \"%s\" of table \"%s.%s\" is no longer protected",
						NameStr(*PG_GETARG_NAME(1)), schema, table),
				 errdetail("Role \"%s\" ran domi.unprotect_column().",
						   GetUserNameFromId(GetUserId(), false))));
	PG_RETURN_BOOL(removed);
}
