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
 *
 * This file holds the setting domi.allow_drop and the refusal or override
 * of a statement; the registry and domi.protect_column are in
 * guard_registry.c, the sql_drop and ddl_command_end triggers in
 * guard_triggers.c, the ddl_command_start trigger (the guard's and the
 * keyring's own protection) in guard_self.c.  They share guard_internal.h.
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
bool
guard_allow_drop_names_path(const char *schema, const char *table_name, const char *column_name)
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
	return guard_allow_drop_names_path(schema, table, name);
}

bool
domi_allow_drop_set_but_not_locally(void)
{
	return allow_drop_has_value() && !allow_drop_set_locally();
}

static bool
allow_drop_names(const GuardHit *hit)
{
	return guard_allow_drop_names_path(hit->schema, hit->table, hit->column);
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

const char *
guard_command_name(CommandTag tag)
{
	return GetCommandTagName(tag);
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
void
guard_append_not_local_note(StringInfo detail)
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
						 guard_command_name(tag), action_effect(first->action));
	else
	{
		ListCell   *lc;

		appendStringInfo(&detail, "%s would affect %d protected columns:",
						 guard_command_name(tag), list_length(refused));
		foreach(lc, refused)
		{
			const GuardHit *hit = lfirst(lc);

			appendStringInfo(&detail, "%s %s (%s)", lc == list_head(refused) ? "" : ",",
							 column_path(hit),
							 hit->action == GUARD_VANISHED ? "missing" : action_effect(hit->action));
		}
		appendStringInfoChar(&detail, '.');
	}
	guard_append_not_local_note(&detail);

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
					   role, guard_command_name(tag), column_path(hit))));
	ereport(NOTICE,
			(errmsg("protected column \"%s\" of table \"%s\" %s under domi.allow_drop",
					hit->column, table_path(hit), what)));
}

/*
 * Refuse the statement unless the transaction allowed every hit; if it did,
 * log each and bring the registry up to date.  Runs inside guard_registry_open.
 */
void
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
		guard_registry_follow(lfirst(lc));
	}
}

EventTriggerData *
guard_event_trigger_data(FunctionCallInfo fcinfo, const char *event)
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

