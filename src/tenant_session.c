/*
 * tenant_session.c
 *		Who may set a tenant for the whole session: domi.allow_session_tenant,
 *		and the hooks that refuse a session-wide tenant where one is made.
 *
 * Behind a transaction pooler a session-wide tenant outlives the client that
 * set it and applies to the next client's transactions, so by default only
 * scoped tenants count (tenant.c reads the GUC stack to tell them apart, and
 * ignores a session value: fail closed).  That alone would leave a client
 * that runs SET domi.tenant_id believing it has a tenant, so where a session
 * value is being made we say so with an error instead:
 *
 *	SET [SESSION] domi.tenant_id = '...', SET ... FROM CURRENT
 *	ALTER ROLE / DATABASE / SYSTEM ... SET domi.tenant_id = '...'
 *						the ProcessUtility hook, before the statement runs;
 *	set_config('domi.tenant_id', '...', false)
 *						an ordinary function call: the executor hooks see the
 *						session value it made when its query ends (and any
 *						query that starts while it is in force), and the
 *						error rolls it back.
 *
 * RESET, SET ... TO DEFAULT and setting the empty string (no tenant) stay
 * allowed.  PGOPTIONS and values that an ALTER ROLE or DATABASE SET made
 * before domi was loaded are only ignored: a connection cannot be refused
 * for them, and the allow setting may not yet have its final value when
 * they are applied.
 *
 * The allow setting is PGC_SUSET: a superuser sets it in postgresql.conf,
 * with ALTER DATABASE or ALTER ROLE ... SET, or grants SET on it.  The hooks
 * exist only in backends that loaded the library; preload it
 * (shared_preload_libraries) so that the errors come everywhere.  Without
 * them tenant.c still ignores the value.
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "nodes/parsenodes.h"
#include "nodes/plannodes.h"
#include "tcop/utility.h"
#include "utils/guc.h"

#include "domi.h"

#define TENANT_SETTING			"domi.tenant_id"
#define ALLOW_SESSION_SETTING	"domi.allow_session_tenant"

static bool allow_session_tenant = false;

static ProcessUtility_hook_type prev_process_utility = NULL;
static ExecutorStart_hook_type prev_executor_start = NULL;
static ExecutorEnd_hook_type prev_executor_end = NULL;

bool
domi_session_tenant_allowed(void)
{
	return allow_session_tenant;
}

static void
refuse_session_tenant(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_CANT_CHANGE_RUNTIME_PARAM),
			 errmsg("cannot set a session-wide tenant"),
			 errdetail("A session-wide domi.tenant_id would outlive the client that set it behind a transaction pooler, and domi.allow_session_tenant is off."),
			 errhint("Use SET LOCAL domi.tenant_id or domi.set_tenant() inside a transaction.")));
}

/* Does this SET (not SET LOCAL) make the tenant a non-empty session value? */
static bool
sets_session_tenant(VariableSetStmt *stmt)
{
	const char *value;

	if (stmt == NULL || stmt->name == NULL || stmt->is_local ||
		pg_strcasecmp(stmt->name, TENANT_SETTING) != 0)
		return false;

	switch (stmt->kind)
	{
		case VAR_SET_VALUE:
			value = ExtractSetVariableArgs(stmt);
			break;
		case VAR_SET_CURRENT:
			value = GetConfigOption(TENANT_SETTING, true, false);
			break;
		default:
			/* RESET, SET ... TO DEFAULT, RESET ALL */
			return false;
	}
	return value != NULL && value[0] != '\0';
}

static void
domi_tenant_process_utility(PlannedStmt *pstmt, const char *queryString,
							bool readOnlyTree, ProcessUtilityContext context,
							ParamListInfo params, QueryEnvironment *queryEnv,
							DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;
	VariableSetStmt *setstmt = NULL;

	switch (nodeTag(parsetree))
	{
		case T_VariableSetStmt:
			setstmt = (VariableSetStmt *) parsetree;
			break;
		case T_AlterRoleSetStmt:
			setstmt = ((AlterRoleSetStmt *) parsetree)->setstmt;
			break;
		case T_AlterDatabaseSetStmt:
			setstmt = ((AlterDatabaseSetStmt *) parsetree)->setstmt;
			break;
		case T_AlterSystemStmt:
			setstmt = ((AlterSystemStmt *) parsetree)->setstmt;
			break;
		default:
			break;
	}
	if (!allow_session_tenant && sets_session_tenant(setstmt))
		refuse_session_tenant();

	if (prev_process_utility)
		prev_process_utility(pstmt, queryString, readOnlyTree, context,
							 params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
}

/*
 * A set_config(..., false) of this transaction: refuse it.  Not while the
 * transaction is being aborted (open cursors run their ExecutorEnd then),
 * which undoes the value anyway.
 */
static void
refuse_tenant_set_in_transaction(void)
{
	if (!allow_session_tenant && IsTransactionState() &&
		domi_tenant_origin() == DOMI_TENANT_SET_IN_XACT)
		refuse_session_tenant();
}

static void
domi_tenant_executor_start(QueryDesc *queryDesc, int eflags)
{
	refuse_tenant_set_in_transaction();

	/*
	 * A parallel worker cannot see whether the leader's session value counts
	 * (tenant.c): a value set with SET in an earlier transaction and ignored
	 * here would count there.  That happens only when the library was loaded
	 * after the SET, or the allow setting was turned off after it; then the
	 * query runs without workers, on a copy of the plan so that a cached plan
	 * stays parallel for later executions.
	 */
	if (queryDesc->plannedstmt->parallelModeNeeded && !allow_session_tenant &&
		domi_tenant_origin() == DOMI_TENANT_SESSION_SET)
	{
		PlannedStmt *serial = palloc(sizeof(PlannedStmt));

		memcpy(serial, queryDesc->plannedstmt, sizeof(PlannedStmt));
		serial->parallelModeNeeded = false;
		queryDesc->plannedstmt = serial;
	}

	if (prev_executor_start)
		prev_executor_start(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
}

static void
domi_tenant_executor_end(QueryDesc *queryDesc)
{
	if (prev_executor_end)
		prev_executor_end(queryDesc);
	else
		standard_ExecutorEnd(queryDesc);

	refuse_tenant_set_in_transaction();
}

void
domi_tenant_session_init(void)
{
	DefineCustomBoolVariable(ALLOW_SESSION_SETTING,
							 "Lets a tenant set for the whole session count.",
							 "Off by default: behind a transaction pooler a session-wide domi.tenant_id would apply to other clients' transactions. Only a superuser can turn it on.",
							 &allow_session_tenant,
							 false,
							 PGC_SUSET,
							 0,
							 NULL,
							 NULL,
							 NULL);

	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = domi_tenant_process_utility;
	prev_executor_start = ExecutorStart_hook;
	ExecutorStart_hook = domi_tenant_executor_start;
	prev_executor_end = ExecutorEnd_hook;
	ExecutorEnd_hook = domi_tenant_executor_end;
}
