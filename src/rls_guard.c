/*
 * rls_guard.c
 *		Tenant isolation that no migration switches off by accident.
 *
 * domi.enable_tenant_rls() records every table it isolates in the registry
 * domi._isolated_tables: the table by OID (regclass, which dumps as a
 * qualified name and restores to the new OID) and the tenant column it was
 * isolated on, by name.  It is an extension configuration table, so pg_dump
 * keeps it, and it remembers a table's tenant column after its policy is
 * gone, for domi.rls_audit().
 *
 * On a registered table the statements that switch isolation off are
 * refused, whatever domi.rls_guard says:
 *
 *	ALTER TABLE ... DISABLE ROW LEVEL SECURITY
 *	ALTER TABLE ... NO FORCE ROW LEVEL SECURITY
 *	DROP POLICY domi_tenant_isolation, and every statement that drops it
 *		along (ALTER TABLE ... DROP COLUMN ... CASCADE of the tenant column,
 *		DROP FUNCTION domi.current_tenant() CASCADE)
 *	ALTER POLICY domi_tenant_isolation ... RENAME TO
 *	ALTER POLICY domi_tenant_isolation that leaves it without the tenant
 *		check in USING or WITH CHECK, or applies it to some roles only (an
 *		ALTER POLICY that keeps it isolating, such as a new form of the same
 *		check, is allowed)
 *	ALTER TABLE ... INHERIT, ALTER TABLE ... ATTACH PARTITION that puts it
 *		under a parent that is not registered: a query on the parent applies
 *		the parent's policies, so the rows would be readable through it
 *
 * drizzle-kit push runs exactly such statements for a table whose schema
 * does not declare domi's policy, and reports success; domi.rls_guard
 * cannot stop it, since its default only warns and drizzle-kit never prints
 * server notices.  So the refusal does not depend on any setting: the
 * override is the drop guard's, a SET LOCAL domi.allow_drop in the same
 * transaction naming schema.table.domi_tenant_isolation (guard.c reads it
 * from the setting's GUC stack, so a session-wide value never counts).
 *
 * Allowed: DROP TABLE (the rows go with their isolation; the registry
 * forgets the table), and domi.disable_tenant_rls(), the deliberate way
 * back, which takes the table out of the registry before it drops the
 * policy.  Tables are matched by OID and domi's policy by its name, never by
 * the text of its expression, so a new form of the policy changes nothing
 * here.
 *
 * Two event triggers, ENABLE ALWAYS (they fire under
 * session_replication_role = replica too):
 *
 *	ddl_command_end	ALTER TABLE and ALTER POLICY, read from the parse tree;
 *					also follows a rename of a registered tenant column.
 *	sql_drop		domi's policy among the dropped objects, on a table that
 *					still exists; and dropped tables leave the registry.
 *
 * The registry is read and written as its owner (owner_spi.c), the way a
 * SECURITY DEFINER function would; the caller's own privileges are checked
 * first.
 *
 * Also here: domi._rls_guard_effect(), which tells the older guard
 * (domi._rls_guard(), PL/pgSQL) what an ALTER TABLE did, so that its
 * message names the statement's real effect.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "storage/lmgr.h"
#include "tcop/cmdtag.h"
#include "tcop/deparse_utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "domi.h"
#include "guard.h"

PG_FUNCTION_INFO_V1(domi_isolation_remember);
PG_FUNCTION_INFO_V1(domi_isolation_forget);
PG_FUNCTION_INFO_V1(domi_isolation_ddl_end);
PG_FUNCTION_INFO_V1(domi_isolation_sql_drop);
PG_FUNCTION_INFO_V1(domi_rls_guard_effect);

#define ISOLATION_POLICY	"domi_tenant_isolation"
#define ISOLATION_SCHEMA	"domi"
#define ISOLATION_REGISTRY	"_isolated_tables"

/* What a statement would do to a registered table's isolation. */
typedef enum IsolationAction
{
	ISOLATION_DISABLE,			/* DISABLE ROW LEVEL SECURITY */
	ISOLATION_NO_FORCE,			/* NO FORCE ROW LEVEL SECURITY */
	ISOLATION_DROP_POLICY,		/* drops domi's policy */
	ISOLATION_RENAME_POLICY,	/* renames it */
	ISOLATION_WEAKEN_CHECK,		/* ALTER POLICY without the tenant check */
	ISOLATION_NARROW_ROLES,		/* ALTER POLICY ... TO some roles */
	ISOLATION_EXPOSE			/* INHERIT or ATTACH PARTITION under a parent
								 * that is not isolated */
} IsolationAction;

typedef struct IsolationHit
{
	IsolationAction action;
	Oid			relid;
	char	   *schema;
	char	   *table;
	char	   *tenant_column;
	Oid			parent;			/* ISOLATION_EXPOSE: the new parent */
} IsolationHit;

/* ---------------------------------------------------------------------
 * Registry access
 * ---------------------------------------------------------------------
 */

/*
 * SPI as the registry's owner.  False, connecting nothing, when there is no
 * registry: the extension is being created, dropped or is older than 0.3.0.
 */
static bool
isolation_registry_open(DomiOwnerSpi *access)
{
	Oid			owner = domi_table_owner(ISOLATION_REGISTRY, NULL);

	if (!OidIsValid(owner))
		return false;
	domi_spi_connect_as(owner, access);
	return true;
}

/*
 * Each registry statement is planned once per backend and kept: every DROP
 * statement of every client comes through sql_drop, so it must stay cheap.
 * The plan cache re-plans a kept plan when the registry is dropped and
 * created again (DROP and CREATE EXTENSION).
 */
#define MAX_ISOLATION_PLANS 8

typedef struct IsolationPlan
{
	const char *sql;
	SPIPlanPtr	plan;
} IsolationPlan;

static IsolationPlan isolation_plans[MAX_ISOLATION_PLANS];
static int	isolation_plan_count = 0;

static SPIPlanPtr
isolation_plan(const char *sql, int nargs, Oid *types)
{
	SPIPlanPtr	plan;
	int			i;

	for (i = 0; i < isolation_plan_count; i++)
	{
		if (strcmp(isolation_plans[i].sql, sql) == 0)
			return isolation_plans[i].plan;
	}
	plan = SPI_prepare(sql, nargs, types);
	if (plan == NULL)
		elog(ERROR, "could not prepare tenant isolation registry query: %s",
			 SPI_result_code_string(SPI_result));
	if (isolation_plan_count == MAX_ISOLATION_PLANS)
		return plan;			/* not kept: freed with the SPI context */
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "could not keep tenant isolation registry query");
	isolation_plans[isolation_plan_count].sql = sql;
	isolation_plans[isolation_plan_count].plan = plan;
	isolation_plan_count++;
	return plan;
}

/*
 * The latest snapshot, not the transaction's: under REPEATABLE READ a
 * registration committed after the transaction began must still count, as
 * PostgreSQL's own catalog checks see the latest state.
 */
static void
isolation_execute(const char *sql, int nargs, Oid *types, Datum *values, int expected)
{
	int			ret = SPI_execute_snapshot(isolation_plan(sql, nargs, types), values, NULL,
										   GetLatestSnapshot(), InvalidSnapshot,
										   false, true, 0);

	if (ret != expected)
		elog(ERROR, "tenant isolation registry query failed: %s", SPI_result_code_string(ret));
}

static char *
spi_text(uint64 row, int col)
{
	char	   *value = SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col);

	if (value == NULL)
		elog(ERROR, "unexpected NULL in tenant isolation registry query");
	return value;
}

static bool
spi_bool(uint64 row, int col)
{
	bool		isnull;
	Datum		value = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, &isnull);

	return !isnull && DatumGetBool(value);
}

/* The registered tenant column of relid, or NULL when it is not registered. */
static char *
registered_tenant_column(Oid relid)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(relid)};

	isolation_execute("SELECT tenant_column::text FROM domi._isolated_tables WHERE tbl = $1",
						  1, types, values, SPI_OK_SELECT);
	return SPI_processed > 0 ? spi_text(0, 1) : NULL;
}

/* ---------------------------------------------------------------------
 * domi._isolation_remember and domi._isolation_forget
 * ---------------------------------------------------------------------
 */

/*
 * The table behind a regclass argument, checked as the caller: only its
 * owner may change its isolation, as only its owner may run the DDL.
 * Locked until the transaction ends.
 */
static Oid
check_isolation_table(FunctionCallInfo fcinfo, bool *temporary)
{
	Oid			relid;
	HeapTuple	tuple;
	Form_pg_class form;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("table must not be null")));
	relid = PG_GETARG_OID(0);
	LockRelationOid(relid, AccessShareLock);
	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tuple))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	form = (Form_pg_class) GETSTRUCT(tuple);
	if (form->relkind != RELKIND_RELATION && form->relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a table", NameStr(form->relname))));
	*temporary = form->relpersistence == RELPERSISTENCE_TEMP;
	if (!pg_class_ownercheck(relid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, get_relkind_objtype(form->relkind),
					   NameStr(form->relname));
	ReleaseSysCache(tuple);
	return relid;
}

static void
report_missing_isolation_registry(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("tenant isolation registry \"%s.%s\" does not exist",
					ISOLATION_SCHEMA, ISOLATION_REGISTRY),
			 errhint("Update the extension with ALTER EXTENSION domi UPDATE.")));
}

/*
 * domi._isolation_remember(tbl regclass, tenant_column name) returns void
 *
 * Called by domi.enable_tenant_rls once the table is isolated.  Temporary
 * tables are not recorded: they vanish at the end of their session without
 * running event triggers, and nobody else can see them.
 */
Datum
domi_isolation_remember(PG_FUNCTION_ARGS)
{
	bool		temporary;
	Oid			relid = check_isolation_table(fcinfo, &temporary);
	Oid			types[3] = {OIDOID, NAMEOID, NAMEOID};
	Datum		values[3];
	DomiOwnerSpi access;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("tenant column must not be null")));
	if (temporary)
		PG_RETURN_VOID();
	values[0] = ObjectIdGetDatum(relid);
	values[1] = NameGetDatum(PG_GETARG_NAME(1));
	values[2] = DirectFunctionCall1(namein,
									CStringGetDatum(GetUserNameFromId(GetUserId(), false)));
	if (!isolation_registry_open(&access))
		report_missing_isolation_registry();
	isolation_execute("INSERT INTO domi._isolated_tables (tbl, tenant_column, isolated_by)"
					  " VALUES ($1, $2, $3) ON CONFLICT (tbl) DO UPDATE"
					  " SET tenant_column = EXCLUDED.tenant_column",
					  3, types, values, SPI_OK_INSERT);
	domi_spi_finish_as(&access);
	PG_RETURN_VOID();
}

/*
 * domi._isolation_forget(tbl regclass) returns boolean
 *
 * Called by domi.disable_tenant_rls, and by domi.enable_tenant_rls before
 * it re-creates the policy (it records the table again at its end, in the
 * same transaction).  True when the table was registered.
 */
Datum
domi_isolation_forget(PG_FUNCTION_ARGS)
{
	bool		temporary;
	Oid			relid = check_isolation_table(fcinfo, &temporary);
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(relid)};
	DomiOwnerSpi access;
	bool		removed;

	if (!isolation_registry_open(&access))
		report_missing_isolation_registry();
	isolation_execute("DELETE FROM domi._isolated_tables WHERE tbl = $1",
					  1, types, values, SPI_OK_DELETE);
	removed = SPI_processed > 0;
	domi_spi_finish_as(&access);
	PG_RETURN_BOOL(removed);
}

/* ---------------------------------------------------------------------
 * Refusal and override
 * ---------------------------------------------------------------------
 */

/* The value of domi.allow_drop that lets the statement through for hit. */
static char *
isolation_allow_value(const IsolationHit *hit)
{
	return psprintf("%s.%s", quote_qualified_identifier(hit->schema, hit->table),
					ISOLATION_POLICY);
}

/* "switched ... off" in the override notice */
static char *
qualified_name(Oid relid)
{
	return psprintf("%s.%s", get_namespace_name(get_rel_namespace(relid)), get_rel_name(relid));
}

static const char *
isolation_effect_done(const IsolationHit *hit)
{
	switch (hit->action)
	{
		case ISOLATION_DISABLE:
			return "row level security turned off";
		case ISOLATION_NO_FORCE:
			return "row level security no longer forced";
		case ISOLATION_DROP_POLICY:
			return "policy \"" ISOLATION_POLICY "\" dropped";
		case ISOLATION_RENAME_POLICY:
			return "policy \"" ISOLATION_POLICY "\" renamed";
		case ISOLATION_WEAKEN_CHECK:
			return "tenant check of policy \"" ISOLATION_POLICY "\" changed";
		case ISOLATION_NARROW_ROLES:
			return "policy \"" ISOLATION_POLICY "\" applied to some roles only";
		case ISOLATION_EXPOSE:
			return psprintf("rows made readable through table \"%s\"", qualified_name(hit->parent));
	}
	return "isolation changed";	/* keep the compiler quiet */
}

static void
report_isolation_refusal(const IsolationHit *hit, List *others, CommandTag tag)
{
	const char *command = GetCommandTagName(tag);
	char	   *table = psprintf("%s.%s", hit->schema, hit->table);
	StringInfoData detail;
	StringInfoData allow;
	ListCell   *lc;
	const char *primary = NULL;

	initStringInfo(&detail);
	switch (hit->action)
	{
		case ISOLATION_DISABLE:
			primary = "turn row level security off on tenant table";
			appendStringInfo(&detail, "%s would turn row level security off on it: every role with privileges on the table would read and write every tenant's rows.",
							 command);
			break;
		case ISOLATION_NO_FORCE:
			primary = "stop forcing row level security on tenant table";
			appendStringInfo(&detail, "%s would exempt the table's owner from its tenant policy: the owner, and every member of that role, would read and write every tenant's rows.",
							 command);
			break;
		case ISOLATION_DROP_POLICY:
			primary = "drop the tenant policy of table";
			appendStringInfo(&detail, "%s would drop policy \"%s\", which keeps each tenant to its own rows of the table.",
							 command, ISOLATION_POLICY);
			break;
		case ISOLATION_RENAME_POLICY:
			primary = "rename the tenant policy of table";
			appendStringInfo(&detail, "%s would rename policy \"%s\": domi finds the tenant policy of a table by that name.",
							 command, ISOLATION_POLICY);
			break;
		case ISOLATION_WEAKEN_CHECK:
			primary = "change the tenant check of table";
			appendStringInfo(&detail, "%s would leave policy \"%s\" without the condition %s = domi.current_tenant() (joined by AND) in its USING or WITH CHECK expression: rows of other tenants would pass it.",
							 command, ISOLATION_POLICY, quote_identifier(hit->tenant_column));
			break;
		case ISOLATION_NARROW_ROLES:
			primary = "change the roles of the tenant policy of table";
			appendStringInfo(&detail, "%s would apply policy \"%s\" to some roles only: every other role would lose its tenant's rows, or see other tenants' rows through another policy.",
							 command, ISOLATION_POLICY);
			break;
		case ISOLATION_EXPOSE:
			primary = "put a table without tenant isolation over tenant table";
			appendStringInfo(&detail, "%s would make table \"%s\" its parent, and its rows readable through that table: a query on a parent applies the parent's row level security and policies, not those of its partitions and children.",
							 command, qualified_name(hit->parent));
			break;
	}
	initStringInfo(&allow);
	appendStringInfoString(&allow, isolation_allow_value(hit));
	if (others != NIL)
	{
		appendStringInfo(&detail, " It would do the same to %d more tenant table%s:",
						 list_length(others), list_length(others) == 1 ? "" : "s");
		foreach(lc, others)
		{
			const IsolationHit *other = lfirst(lc);

			appendStringInfo(&detail, "%s %s.%s", lc == list_head(others) ? "" : ",",
							 other->schema, other->table);
			appendStringInfo(&allow, ", %s", isolation_allow_value(other));
		}
		appendStringInfoChar(&detail, '.');
	}
	if (domi_allow_drop_set_but_not_locally())
		appendStringInfoString(&detail, " domi.allow_drop is set, but not with SET LOCAL in this transaction: only that counts.");

	if (hit->action == ISOLATION_EXPOSE)
		ereport(ERROR,
				(errcode(DOMI_ERRCODE_GUARD_REFUSAL),
				 errmsg("cannot %s \"%s\", isolated by domi", primary, table),
				 errdetail_internal("%s", detail.data),
				 errhint("Isolate the parent first with SELECT domi.enable_tenant_rls(%s, %s), or SET LOCAL domi.allow_drop = %s first in the same transaction.",
						 quote_literal_cstr(quote_qualified_identifier(get_namespace_name(get_rel_namespace(hit->parent)),
																	   get_rel_name(hit->parent))),
						 quote_literal_cstr(hit->tenant_column),
						 quote_literal_cstr(allow.data))));
	ereport(ERROR,
			(errcode(DOMI_ERRCODE_GUARD_REFUSAL),
			 errmsg("cannot %s \"%s\", isolated by domi", primary, table),
			 errdetail_internal("%s", detail.data),
			 errhint("To switch isolation off on purpose, run SELECT domi.disable_tenant_rls(%s), or SET LOCAL domi.allow_drop = %s first in the same transaction.",
					 quote_literal_cstr(quote_qualified_identifier(hit->schema, hit->table)),
					 quote_literal_cstr(allow.data))));
}

/*
 * Refuse unless the transaction named every table; if it did, say so to
 * the client and, with the role that ran it, in the server log.  The
 * registry keeps the table: domi.rls_audit() reports it until it is
 * isolated again or domi.disable_tenant_rls() forgets it.
 */
static void
isolation_enforce(List *hits, CommandTag tag, Oid caller)
{
	List	   *refused = NIL;
	ListCell   *lc;

	foreach(lc, hits)
	{
		IsolationHit *hit = lfirst(lc);

		if (!domi_allow_drop_names(hit->schema, hit->table, ISOLATION_POLICY))
			refused = lappend(refused, hit);
	}
	if (refused != NIL)
	{
		const IsolationHit *first = linitial(refused);
		List	   *others = NIL;
		List	   *seen = list_make1_oid(first->relid);

		/* The other tables, each once: one table can take several hits. */
		foreach(lc, refused)
		{
			IsolationHit *hit = lfirst(lc);

			if (list_member_oid(seen, hit->relid))
				continue;
			seen = lappend_oid(seen, hit->relid);
			others = lappend(others, hit);
		}
		report_isolation_refusal(first, others, tag);
	}

	foreach(lc, hits)
	{
		IsolationHit *hit = lfirst(lc);

		ereport(LOG_SERVER_ONLY,
				(errmsg("tenant table \"%s.%s\": %s under domi.allow_drop",
						hit->schema, hit->table, isolation_effect_done(hit)),
				 errdetail("Role \"%s\" ran %s with SET LOCAL domi.allow_drop naming %s.",
						   GetUserNameFromId(caller, false), GetCommandTagName(tag),
						   isolation_allow_value(hit))));
		ereport(NOTICE,
				(errmsg("tenant table \"%s.%s\": %s under domi.allow_drop",
						hit->schema, hit->table, isolation_effect_done(hit))));
	}
}

static EventTriggerData *
isolation_trigger_data(FunctionCallInfo fcinfo, const char *event)
{
	EventTriggerData *trigdata;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo) ||
		strcmp(((EventTriggerData *) fcinfo->context)->event, event) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_EVENT_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function can only be called as an event trigger on %s", event)));
	trigdata = (EventTriggerData *) fcinfo->context;
	return trigdata;
}

static IsolationHit *
make_hit(IsolationAction action, Oid relid, const char *tenant_column)
{
	IsolationHit *hit = palloc0(sizeof(IsolationHit));

	hit->action = action;
	hit->relid = relid;
	hit->schema = get_namespace_name(get_rel_namespace(relid));
	hit->table = get_rel_name(relid);
	hit->tenant_column = pstrdup(tenant_column);
	return hit;
}

/* ---------------------------------------------------------------------
 * ddl_command_end: ALTER TABLE and ALTER POLICY
 * ---------------------------------------------------------------------
 */

static bool
is_isolation_policy(const char *name)
{
	return name != NULL && strcmp(name, ISOLATION_POLICY) == 0;
}

/*
 * What an ALTER POLICY left of domi's policy: NULL when it still applies to
 * PUBLIC and both its expressions compare the tenant column with the tenant
 * (in any form that domi._policy_compares_tenant() accepts, so that a new
 * form of domi's own check passes).  Runs inside the registry connection.
 */
static bool
altered_policy_action(Oid relid, const char *tenant_column, IsolationAction *action)
{
	Oid			types[2] = {OIDOID, NAMEOID};
	Datum		values[2];

	values[0] = ObjectIdGetDatum(relid);
	values[1] = DirectFunctionCall1(namein, CStringGetDatum(tenant_column));
	isolation_execute("SELECT p.polroles = '{0}'::pg_catalog.oid[],"
						  "       p.polqual IS NOT NULL AND a.attnum IS NOT NULL"
						  "         AND domi._policy_compares_tenant(p.polqual, a.attnum),"
						  "       p.polwithcheck IS NULL OR (a.attnum IS NOT NULL"
						  "         AND domi._policy_compares_tenant(p.polwithcheck, a.attnum))"
						  "  FROM pg_catalog.pg_policy p"
						  "  LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = p.polrelid"
						  "   AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped"
						  " WHERE p.polrelid = $1 AND p.polname = '" ISOLATION_POLICY "'",
						  2, types, values, SPI_OK_SELECT);
	if (SPI_processed == 0)
	{
		*action = ISOLATION_RENAME_POLICY;	/* cannot happen: ALTER keeps the name */
		return true;
	}
	if (!spi_bool(0, 2) || !spi_bool(0, 3))
	{
		*action = ISOLATION_WEAKEN_CHECK;
		return true;
	}
	if (!spi_bool(0, 1))
	{
		*action = ISOLATION_NARROW_ROLES;
		return true;
	}
	return false;
}

/* A registered tenant column renamed: the registry follows. */
static void
follow_column_rename(Oid relid, RenameStmt *stmt)
{
	Oid			types[3] = {OIDOID, NAMEOID, NAMEOID};
	Datum		values[3];

	values[0] = ObjectIdGetDatum(relid);
	values[1] = DirectFunctionCall1(namein, CStringGetDatum(stmt->subname));
	values[2] = DirectFunctionCall1(namein, CStringGetDatum(stmt->newname));
	isolation_execute("UPDATE domi._isolated_tables SET tenant_column = $3"
					  " WHERE tbl = $1 AND tenant_column = $2",
					  3, types, values, SPI_OK_UPDATE);
}

/*
 * A registered table that became a child or partition of a table that is not
 * registered: its rows are now readable through the parent, whose row level
 * security does not keep tenants apart.  pairs holds (child, parent)
 * RangeVars; runs inside the registry connection.
 */
static List *
exposed_tables(List *pairs)
{
	List	   *hits = NIL;
	ListCell   *lc;

	foreach(lc, pairs)
	{
		List	   *pair = lfirst(lc);
		Oid			child = RangeVarGetRelid(linitial(pair), NoLock, true);
		Oid			parent = RangeVarGetRelid(lsecond(pair), NoLock, true);
		char	   *tenant_column;
		IsolationHit *hit;

		if (!OidIsValid(child) || !OidIsValid(parent))
			continue;
		tenant_column = registered_tenant_column(child);
		if (tenant_column == NULL || registered_tenant_column(parent) != NULL)
			continue;
		hit = make_hit(ISOLATION_EXPOSE, child, tenant_column);
		hit->parent = parent;
		hits = lappend(hits, hit);
	}
	return hits;
}

Datum
domi_isolation_ddl_end(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata = isolation_trigger_data(fcinfo, "ddl_command_end");
	Node	   *tree = trigdata->parsetree;
	RangeVar   *relation = NULL;
	RenameStmt *column_rename = NULL;
	bool		alter_policy = false;
	List	   *actions = NIL;
	List	   *new_parents = NIL;
	Oid			relid;
	DomiOwnerSpi access;
	char	   *tenant_column;
	List	   *hits = NIL;
	ListCell   *lc;

	/* Read the parse tree first: most DDL needs no registry look-up at all. */
	if (tree == NULL)
		PG_RETURN_VOID();
	if (IsA(tree, AlterTableStmt))
	{
		AlterTableStmt *stmt = (AlterTableStmt *) tree;

		bool		disable = false;
		bool		no_force = false;

		foreach(lc, stmt->cmds)
		{
			AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);

			disable |= cmd->subtype == AT_DisableRowSecurity;
			no_force |= cmd->subtype == AT_NoForceRowSecurity;
			/* (child, parent) pairs: the table INHERITs, or ATTACHes a partition */
			if (cmd->subtype == AT_AddInherit && cmd->def != NULL && IsA(cmd->def, RangeVar))
				new_parents = lappend(new_parents,
									  list_make2(stmt->relation, cmd->def));
			else if (cmd->subtype == AT_AttachPartition && cmd->def != NULL &&
					 IsA(cmd->def, PartitionCmd))
				new_parents = lappend(new_parents,
									  list_make2(((PartitionCmd *) cmd->def)->name, stmt->relation));
		}
		/* The worse first: the refusal names it. */
		if (disable)
			actions = lappend_int(actions, ISOLATION_DISABLE);
		if (no_force)
			actions = lappend_int(actions, ISOLATION_NO_FORCE);
		relation = stmt->relation;
	}
	else if (IsA(tree, AlterPolicyStmt))
	{
		AlterPolicyStmt *stmt = (AlterPolicyStmt *) tree;

		alter_policy = is_isolation_policy(stmt->policy_name);
		relation = stmt->table;
	}
	else if (IsA(tree, RenameStmt))
	{
		RenameStmt *stmt = (RenameStmt *) tree;

		if (stmt->renameType == OBJECT_POLICY && is_isolation_policy(stmt->subname))
			actions = list_make1_int(ISOLATION_RENAME_POLICY);
		else if (stmt->renameType == OBJECT_COLUMN)
			column_rename = stmt;
		relation = stmt->relation;
	}
	if (relation == NULL ||
		(actions == NIL && !alter_policy && column_rename == NULL && new_parents == NIL))
		PG_RETURN_VOID();

	/* The statement holds its lock: the name resolves as it did for it. */
	relid = RangeVarGetRelid(relation, NoLock, true);
	if (!OidIsValid(relid) || !isolation_registry_open(&access))
		PG_RETURN_VOID();
	tenant_column = registered_tenant_column(relid);
	if (tenant_column != NULL)
	{
		IsolationAction action;

		if (column_rename != NULL)
			follow_column_rename(relid, column_rename);
		if (alter_policy && altered_policy_action(relid, tenant_column, &action))
			actions = lappend_int(actions, action);
		foreach(lc, actions)
			hits = lappend(hits, make_hit((IsolationAction) lfirst_int(lc), relid, tenant_column));
	}
	hits = list_concat(hits, exposed_tables(new_parents));
	isolation_enforce(hits, trigdata->tag, access.saved_userid);
	domi_spi_finish_as(&access);
	PG_RETURN_VOID();
}

/* ---------------------------------------------------------------------
 * sql_drop: domi's policy dropped from a table that stays
 * ---------------------------------------------------------------------
 */

/*
 * One statement, since every DROP of every client comes here: dropped tables
 * leave the registry (DROP TABLE is always allowed), and the rows returned
 * are the registered tables that lost domi's policy and still exist.  A
 * dropped policy's address_names are schema, table and policy name; its
 * table is looked up by name, because a table dropped by the same statement
 * is gone from pg_class by now (its policy went with it, as it may).  The
 * main query does not see the CTE's deletions, nor needs to: it joins only
 * tables that still exist.
 */
static const char *const dropped_isolation_sql =
"WITH dropped AS (SELECT * FROM pg_catalog.pg_event_trigger_dropped_objects()),"
"     forgotten AS (DELETE FROM domi._isolated_tables r USING dropped d"
"                    WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass"
"                      AND d.objsubid = 0 AND d.objid = r.tbl::pg_catalog.oid)"
"SELECT DISTINCT r.tbl::pg_catalog.oid, r.tenant_column::text, n.nspname, c.relname"
"  FROM dropped d"
"  JOIN pg_catalog.pg_namespace n ON n.nspname = d.address_names[1]"
"  JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = d.address_names[2]"
"  JOIN domi._isolated_tables r ON r.tbl = c.oid"
" WHERE d.classid = 'pg_catalog.pg_policy'::pg_catalog.regclass"
"   AND d.address_names[3] = '" ISOLATION_POLICY "'"
" ORDER BY n.nspname, c.relname";

Datum
domi_isolation_sql_drop(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata = isolation_trigger_data(fcinfo, "sql_drop");
	DomiOwnerSpi access;
	List	   *hits = NIL;
	uint64		row;

	if (!isolation_registry_open(&access))
		PG_RETURN_VOID();
	isolation_execute(dropped_isolation_sql, 0, NULL, NULL, SPI_OK_SELECT);
	for (row = 0; row < SPI_processed; row++)
	{
		bool		isnull;
		Oid			relid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[row],
														   SPI_tuptable->tupdesc, 1, &isnull));

		hits = lappend(hits, make_hit(ISOLATION_DROP_POLICY, relid, spi_text(row, 2)));
	}
	isolation_enforce(hits, trigdata->tag, access.saved_userid);
	domi_spi_finish_as(&access);
	PG_RETURN_VOID();
}

/* ---------------------------------------------------------------------
 * domi._rls_guard_effect: what a command did, for the older guard
 * ---------------------------------------------------------------------
 */

/*
 * domi._rls_guard_effect(cmd pg_ddl_command, tenant_column name) returns text
 *
 * One command of pg_event_trigger_ddl_commands(): 'disable' when it turned
 * row level security off, 'no_force' when it stopped forcing it,
 * 'tenant_column' when it added the tenant column or renamed a column to
 * it, 'create' when it created the table, and NULL for anything else.
 * pg_ddl_command has no input function: its values come from
 * pg_event_trigger_ddl_commands() alone.
 */
Datum
domi_rls_guard_effect(PG_FUNCTION_ARGS)
{
	CollectedCommand *cmd;
	const char *tenant_column;
	const char *effect = NULL;
	ListCell   *lc;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	cmd = (CollectedCommand *) PG_GETARG_POINTER(0);
	tenant_column = NameStr(*PG_GETARG_NAME(1));

	if (cmd->type == SCT_AlterTable)
	{
		foreach(lc, cmd->d.alterTable.subcmds)
		{
			CollectedATSubcmd *sub = lfirst(lc);
			AlterTableCmd *atc = (AlterTableCmd *) sub->parsetree;

			if (atc == NULL || !IsA(atc, AlterTableCmd))
				continue;
			if (atc->subtype == AT_DisableRowSecurity)
				effect = "disable";
			else if (atc->subtype == AT_NoForceRowSecurity && effect == NULL)
				effect = "no_force";
			else if ((atc->subtype == AT_AddColumn || atc->subtype == AT_AddColumnRecurse) &&
					 atc->def != NULL && IsA(atc->def, ColumnDef) &&
					 strcmp(((ColumnDef *) atc->def)->colname, tenant_column) == 0 &&
					 effect == NULL)
				effect = "tenant_column";
		}
	}
	else if (cmd->parsetree != NULL)
	{
		Node	   *tree = cmd->parsetree;

		if (IsA(tree, RenameStmt) && ((RenameStmt *) tree)->renameType == OBJECT_COLUMN &&
			strcmp(((RenameStmt *) tree)->newname, tenant_column) == 0)
			effect = "tenant_column";
		else if (IsA(tree, CreateStmt) || IsA(tree, CreateTableAsStmt))
			effect = "create";
	}
	if (effect == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(effect));
}
