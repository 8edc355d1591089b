/*
 * ledger.c
 *		The DDL ledger: every DDL statement, from any client, written to
 *		domi._ddl_ledger by an event trigger, with its time, roles,
 *		application, transaction (xid8), command tag, the objects it touched
 *		and its text with secrets redacted (ledger_redact.c).
 *
 * Two event triggers, ENABLE ALWAYS (they fire under
 * session_replication_role = replica too):
 *
 *	sql_drop			keeps the statement's dropped objects for the
 *						ddl_command_end of the same statement (only sql_drop
 *						may call pg_event_trigger_dropped_objects()).
 *	ddl_command_end		writes the row: one INSERT, its objects read from
 *						pg_event_trigger_ddl_commands() inside the INSERT.
 *
 * Which text: a query string may hold several statements ("ALTER ROLE a
 * PASSWORD 'x'; CREATE TABLE t ()"), and DDL run by a function comes from
 * that function's query, not from debug_query_string.  A ProcessUtility
 * hook remembers the statement being executed (its query string, location,
 * length and parse tree) while it runs; the event trigger fires inside it
 * and records exactly that statement.  When the hook was not installed when
 * the statement began (domi not in shared_preload_libraries and loaded by
 * this very event trigger), we record debug_query_string with every one of
 * its statements redacted on its own.
 *
 * Not recorded: the commands that an extension's script runs (the CREATE
 * EXTENSION or ALTER EXTENSION statement itself is), and what PostgreSQL
 * does not fire event triggers for: roles, databases, tablespaces, event
 * triggers themselves (see docs/schema-truth.md).
 *
 * The row is written as the ledger table's owner (the extension owner),
 * with search_path pinned, so that any role's DDL is recorded and no role
 * needs a privilege on the ledger.  domi.ddl_ledger = off (PGC_SUSET: only a
 * superuser, postgresql.conf, ALTER SYSTEM or ALTER DATABASE/ROLE ... SET by
 * a superuser can change it) stops the recording.
 *
 * A migrations table (drizzle's __drizzle_migrations, Prisma's
 * _prisma_migrations) that a statement creates is tracked right away: the
 * SQL function domi._ledger_track_created() puts a row trigger on it that
 * records the transactions that insert migrations (domi._migration_xacts).
 * The trigger is internal (like a foreign key's), so pg_dump leaves it out
 * and the restore's CREATE TABLE of the migrations table tracks it anew,
 * instead of failing on the dumped trigger's name.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "commands/extension.h"
#include "commands/trigger.h"
#include "catalog/pg_trigger.h"
#include "access/xact.h"
#include "nodes/makefuncs.h"
#include "nodes/value.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "domi.h"
#include "ledger.h"

PG_FUNCTION_INFO_V1(domi_ledger_ddl_end);
PG_FUNCTION_INFO_V1(domi_ledger_sql_drop);
PG_FUNCTION_INFO_V1(domi_ledger_track);

#define LEDGER_SCHEMA	"domi"
#define LEDGER_TABLE	"_ddl_ledger"

static bool ledger_enabled = true;

/* The utility statement being executed, innermost first (hook frames). */
typedef struct LedgerStatement
{
	const char *query;
	int			location;		/* -1: unknown */
	int			len;			/* 0: the rest of the string */
	Node	   *stmt;
	uint64		seq;			/* distinguishes statements, for the drops */
} LedgerStatement;

static ProcessUtility_hook_type prev_process_utility = NULL;
static LedgerStatement *current_statement = NULL;
static uint64 statement_seq = 0;

/* Objects that sql_drop saw, for the ddl_command_end of the same statement. */
static char *pending_drops = NULL;	/* jsonb text, in TopMemoryContext */
static uint64 pending_drops_seq = 0;
static LocalTransactionId pending_drops_lxid = InvalidLocalTransactionId;

/* Set while we run our own SPI queries: DDL they cause is not recorded. */
static bool ledger_busy = false;

/* Kept for the life of the backend: planning them per statement costs more than running them. */
static SPIPlanPtr insert_plan = NULL;
static SPIPlanPtr drops_plan = NULL;

static void
ledger_process_utility(PlannedStmt *pstmt, const char *queryString,
					   bool readOnlyTree, ProcessUtilityContext context,
					   ParamListInfo params, QueryEnvironment *queryEnv,
					   DestReceiver *dest, QueryCompletion *qc)
{
	LedgerStatement here;
	LedgerStatement *outer = current_statement;

	here.query = queryString;
	here.location = pstmt->stmt_location;
	here.len = pstmt->stmt_len;
	here.stmt = pstmt->utilityStmt;
	here.seq = ++statement_seq;
	current_statement = &here;
	PG_TRY();
	{
		if (prev_process_utility)
			prev_process_utility(pstmt, queryString, readOnlyTree, context,
								 params, queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
									params, queryEnv, dest, qc);
	}
	PG_FINALLY();
	{
		current_statement = outer;
	}
	PG_END_TRY();
}

void
domi_ledger_init(void)
{
	DefineCustomBoolVariable("domi.ddl_ledger",
							 "Records every DDL statement in domi.ddl_ledger.",
							 "Only a superuser (or ALTER DATABASE/ALTER SYSTEM by one) can turn it off, so that no role can hide its own DDL.",
							 &ledger_enabled,
							 true,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = ledger_process_utility;
}

static EventTriggerData *
ledger_trigger_data(FunctionCallInfo fcinfo, const char *event)
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

/* Whether this firing is one to record at all. */
static bool
ledger_wanted(void)
{
	return ledger_enabled && !creating_extension && !ledger_busy &&
		IsUnderPostmaster;
}

/* The ledger table's owner, or InvalidOid while it does not exist. */
static Oid
ledger_owner(void)
{
	Oid			nsp = get_namespace_oid(LEDGER_SCHEMA, true);
	Oid			relid;
	HeapTuple	tuple;
	Oid			owner;

	if (!OidIsValid(nsp))
		return InvalidOid;
	relid = get_relname_relid(LEDGER_TABLE, nsp);
	if (!OidIsValid(relid))
		return InvalidOid;
	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tuple))
		return InvalidOid;
	owner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);
	return owner;
}

/* The text of the statement being recorded, redacted. */
static char *
statement_text(void)
{
	if (current_statement != NULL && current_statement->query != NULL)
	{
		const char *query = current_statement->query;
		int			total = strlen(query);
		int			location = current_statement->location;
		int			len = current_statement->len;

		if (location < 0 || location > total)
		{
			/* location unknown: the whole string, each statement on its own */
			return ledger_redact_query_string(query);
		}
		if (len <= 0 || location + len > total)
			len = total - location;
		return ledger_redact_statement(query + location, len, current_statement->stmt);
	}
	if (debug_query_string != NULL)
		return ledger_redact_query_string(debug_query_string);
	return pstrdup("<unknown>");
}

static uint64
current_seq(void)
{
	return current_statement ? current_statement->seq : 0;
}

/* Run our own query as the ledger's owner; DDL it causes is not recorded. */
static void
run_as_owner(Oid owner, const char *query, int nargs, Oid *argtypes,
			 Datum *values, const char *nulls, bool insert)
{
	DomiOwnerSpi spi;
	int			ret;

	ledger_busy = true;
	PG_TRY();
	{
		domi_spi_connect_as(owner, &spi);
		if (insert)
		{
			if (insert_plan == NULL)
			{
				SPIPlanPtr	plan = SPI_prepare(query, nargs, argtypes);

				if (plan == NULL)
					elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
				if (SPI_keepplan(plan) != 0)
					elog(ERROR, "SPI_keepplan failed");
				insert_plan = plan;
			}
			ret = SPI_execute_plan(insert_plan, values, nulls, false, 0);
		}
		else
			ret = SPI_execute_with_args(query, nargs, argtypes, values, nulls, false, 0);
		if (ret < 0)
			elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(ret));
		domi_spi_finish_as(&spi);
	}
	PG_FINALLY();
	{
		ledger_busy = false;
	}
	PG_END_TRY();
}

static const char insert_query[] =
"INSERT INTO domi._ddl_ledger (role, command_tag, statement, objects, xid,"
"  session_role, application_name)"
" SELECT $1, $2, $3,"
"  COALESCE((SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object("
"      'type', c.object_type, 'identity', c.object_identity))"
"    FROM pg_catalog.pg_event_trigger_ddl_commands() c), '[]'::pg_catalog.jsonb)"
"  OPERATOR(pg_catalog.||) COALESCE($4::pg_catalog.jsonb, '[]'::pg_catalog.jsonb),"
"  pg_catalog.pg_current_xact_id(), $5, pg_catalog.current_setting('application_name')";

/*
 * A CREATE TABLE of a table named like a migrator's migrations table:
 * track it, so that its migrations' transactions are known (in-chain).
 */
static void
track_if_migrations_table(Oid owner, Node *parsetree)
{
	CreateStmt *create;
	Oid			relid;
	Oid			argtypes[1] = {OIDOID};
	Datum		values[1];

	if (parsetree == NULL || !IsA(parsetree, CreateStmt))
		return;
	create = (CreateStmt *) parsetree;
	if (strcmp(create->relation->relname, "__drizzle_migrations") != 0 &&
		strcmp(create->relation->relname, "_prisma_migrations") != 0)
		return;
	relid = RangeVarGetRelid(create->relation, NoLock, true);
	if (!OidIsValid(relid))
		return;
	values[0] = ObjectIdGetDatum(relid);
	run_as_owner(owner, "SELECT domi._ledger_track_created($1)", 1, argtypes,
				 values, NULL, false);
}

/*
 * ddl_command_end: one row per statement.
 */
Datum
domi_ledger_ddl_end(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata = ledger_trigger_data(fcinfo, "ddl_command_end");
	Oid			owner;
	Oid			argtypes[5] = {NAMEOID, TEXTOID, TEXTOID, TEXTOID, NAMEOID};
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', 'n', ' '};
	Oid			saved_userid;
	int			saved_sec_context;

	if (!ledger_wanted())
		PG_RETURN_VOID();
	owner = ledger_owner();
	if (!OidIsValid(owner))
		PG_RETURN_VOID();

	/* The caller's role, before we act as the ledger's owner. */
	GetUserIdAndSecContext(&saved_userid, &saved_sec_context);
	values[0] = DirectFunctionCall1(namein,
									CStringGetDatum(GetUserNameFromId(saved_userid, false)));
	values[1] = CStringGetTextDatum(GetCommandTagName(trigdata->tag));
	values[2] = CStringGetTextDatum(statement_text());
	if (pending_drops != NULL && pending_drops_seq == current_seq() &&
		pending_drops_lxid == MyProc->lxid)
	{
		values[3] = CStringGetTextDatum(pending_drops);
		nulls[3] = ' ';
	}
	if (pending_drops != NULL)
	{
		pfree(pending_drops);
		pending_drops = NULL;
	}
	values[4] = DirectFunctionCall1(namein,
									CStringGetDatum(GetUserNameFromId(GetSessionUserId(), false)));

	run_as_owner(owner, insert_query, 5, argtypes, values, nulls, true);
	track_if_migrations_table(owner, trigdata->parsetree);
	PG_RETURN_VOID();
}

static const char drops_query[] =
"SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object("
"  'type', d.object_type, 'identity', d.object_identity, 'dropped', true))::pg_catalog.text"
" FROM pg_catalog.pg_event_trigger_dropped_objects() d"
" WHERE d.original OR d.normal";

/*
 * sql_drop: the dropped objects, kept for the statement's ddl_command_end.
 * Read in the caller's own right: pg_event_trigger_dropped_objects() needs
 * no privilege.
 */
Datum
domi_ledger_sql_drop(PG_FUNCTION_ARGS)
{
	int			ret;
	char	   *drops = NULL;

	(void) ledger_trigger_data(fcinfo, "sql_drop");
	if (!ledger_wanted() || !OidIsValid(ledger_owner()))
		PG_RETURN_VOID();

	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
	if (drops_plan == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare(drops_query, 0, NULL);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "SPI_keepplan failed");
		drops_plan = plan;
	}
	ret = SPI_execute_plan(drops_plan, NULL, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 1)
	{
		char	   *value = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		if (value != NULL)
			drops = MemoryContextStrdup(TopMemoryContext, value);
	}
	SPI_finish();

	if (pending_drops != NULL)
		pfree(pending_drops);
	pending_drops = drops;
	pending_drops_seq = current_seq();
	pending_drops_lxid = MyProc->lxid;
	PG_RETURN_VOID();
}

/*
 * domi._ledger_track(tbl regclass): the internal row trigger on a migrations
 * table.  Internal triggers skip CreateTrigger's privilege checks, so the
 * SQL callers decide who may (domi.track_migrations is not granted to
 * PUBLIC; the ledger calls it for tables that a statement just created).
 * Not recorded in the ledger: no utility statement runs.
 */
Datum
domi_ledger_track(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	char	   *relname = get_rel_name(relid);
	CreateTrigStmt *stmt;

	if (relname == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));

	stmt = makeNode(CreateTrigStmt);
	stmt->trigname = "domi_ledger_migrations";
	stmt->relation = makeRangeVar(get_namespace_name(get_rel_namespace(relid)), relname, -1);
	stmt->funcname = list_make2(makeString(LEDGER_SCHEMA), makeString("_ledger_migration_row"));
	stmt->row = true;
	stmt->timing = TRIGGER_TYPE_AFTER;
	stmt->events = TRIGGER_TYPE_INSERT | TRIGGER_TYPE_UPDATE;
	(void) CreateTrigger(stmt, NULL, relid, InvalidOid, InvalidOid, InvalidOid,
						 InvalidOid, InvalidOid, NULL, true, false);
	CommandCounterIncrement();
	PG_RETURN_VOID();
}
