/*
 * rls.c
 *		Row-level security: the guard settings and the reading of policy
 *		expressions as trees for domi.rls_audit().
 *
 * The installers, the audit's catalog queries, the isolation proof and the
 * guard's event trigger are SQL and PL/pgSQL (sql/domi--0.1.0.sql): they are
 * catalog DDL and queries, which a C wrapper would only embed as strings.
 * What needs C is reading pg_policy.polqual and polwithcheck: they are
 * serialized expression trees (pg_node_tree), and a text pattern over
 * pg_get_expr() output cannot tell "tenant_id = x AND ..." from
 * "tenant_id = x OR true", nor a call inside a sub-select (evaluated once per
 * query, as an initplan) from the same call evaluated for every row.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_policy.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "nodes/primnodes.h"
#include "nodes/supportnodes.h"
#include "optimizer/optimizer.h"
#include "nodes/pathnodes.h"
#include "parser/parse_func.h"
#include "rewrite/rewriteManip.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/ruleutils.h"

#include "domi.h"

PG_FUNCTION_INFO_V1(domi_policy_compares_tenant);
PG_FUNCTION_INFO_V1(domi_policy_per_row_calls);
PG_FUNCTION_INFO_V1(domi_policy_initplan_form);
PG_FUNCTION_INFO_V1(domi_tenant_support);

/* domi.rls_guard: what the event trigger does with an unprotected tenant table */
typedef enum RlsGuardMode
{
	RLS_GUARD_OFF,
	RLS_GUARD_WARN,
	RLS_GUARD_ERROR,
	RLS_GUARD_ENABLE
} RlsGuardMode;

static const struct config_enum_entry rls_guard_options[] = {
	{"off", RLS_GUARD_OFF, false},
	{"warn", RLS_GUARD_WARN, false},
	{"error", RLS_GUARD_ERROR, false},
	{"enable", RLS_GUARD_ENABLE, false},
	{NULL, 0, false}
};

static int	rls_guard_mode = RLS_GUARD_WARN;
static char *rls_tenant_column = NULL;

void
domi_rls_init(void)
{
	/*
	 * Both settings are USERSET: the guard catches a forgotten policy, it is
	 * not a security boundary (a table's owner may disable RLS on it
	 * anyway), and migrations must be able to say SET LOCAL
	 * domi.rls_guard = off around a deliberate exception.
	 */
	DefineCustomEnumVariable("domi.rls_guard",
							 "What to do when a table gains the tenant column without tenant row-level security.",
							 "off: nothing; warn: a warning; error: refuse the DDL; enable: install domi's tenant policy.",
							 &rls_guard_mode,
							 RLS_GUARD_WARN,
							 rls_guard_options,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomStringVariable("domi.tenant_column",
							   "The name of the tenant column that the RLS guard and audit look for.",
							   NULL,
							   &rls_tenant_column,
							   "tenant_id",
							   PGC_USERSET,
							   0,
							   NULL, NULL, NULL);
}

/*
 * The functions that yield the current tenant: domi.current_tenant() and
 * domi.require_tenant().  Looked up by name each call; the audit calls us
 * once per policy, so caching would buy nothing.
 */
typedef struct TenantFuncs
{
	Oid			current_tenant;
	Oid			require_tenant;
} TenantFuncs;

static void
lookup_tenant_funcs(TenantFuncs *funcs)
{
	funcs->current_tenant =
		LookupFuncName(list_make2(makeString("domi"), makeString("current_tenant")),
					   0, NULL, true);
	funcs->require_tenant =
		LookupFuncName(list_make2(makeString("domi"), makeString("require_tenant")),
					   0, NULL, true);
}

static Node *
strip_relabel(Node *node)
{
	while (node && IsA(node, RelabelType))
		node = (Node *) ((RelabelType *) node)->arg;
	return node;
}

/* A call of domi.current_tenant() or domi.require_tenant(). */
static bool
is_tenant_call(Node *node, const TenantFuncs *funcs)
{
	FuncExpr   *func;

	node = strip_relabel(node);
	if (node == NULL || !IsA(node, FuncExpr))
		return false;
	func = (FuncExpr *) node;
	return OidIsValid(func->funcid) &&
		(func->funcid == funcs->current_tenant ||
		 func->funcid == funcs->require_tenant);
}

/*
 * The current tenant, called directly or as "(SELECT domi.current_tenant())":
 * a scalar sub-select with no FROM, no WHERE and that one output column.
 */
static bool
is_tenant_source(Node *node, const TenantFuncs *funcs)
{
	SubLink    *sublink;
	Query	   *query;
	TargetEntry *tle;

	node = strip_relabel(node);
	if (is_tenant_call(node, funcs))
		return true;
	if (node == NULL || !IsA(node, SubLink))
		return false;
	sublink = (SubLink *) node;
	if (sublink->subLinkType != EXPR_SUBLINK || !IsA(sublink->subselect, Query))
		return false;
	query = (Query *) sublink->subselect;
	if (query->commandType != CMD_SELECT || query->rtable != NIL ||
		query->jointree == NULL || query->jointree->quals != NULL ||
		query->setOperations != NULL || query->hasAggs || query->hasWindowFuncs ||
		query->hasTargetSRFs || list_length(query->targetList) != 1)
		return false;
	tle = linitial_node(TargetEntry, query->targetList);
	return is_tenant_call((Node *) tle->expr, funcs);
}

/* The policy's own relation's column attnum (range table entry 1). */
static bool
is_tenant_var(Node *node, AttrNumber attnum)
{
	Var		   *var;

	node = strip_relabel(node);
	if (node == NULL || !IsA(node, Var))
		return false;
	var = (Var *) node;
	return var->varno == 1 && var->varlevelsup == 0 && var->varattno == attnum;
}

/*
 * True when the expression, read as a conjunction, has a conjunct
 * "column = current tenant" with the uuid equality operator.  Only top-level
 * AND arms count: under OR or NOT the comparison no longer restricts rows.
 */
static bool
conjunct_compares_tenant(Node *node, AttrNumber attnum, const TenantFuncs *funcs)
{
	if (node == NULL)
		return false;
	if (IsA(node, BoolExpr) && ((BoolExpr *) node)->boolop == AND_EXPR)
	{
		ListCell   *lc;

		foreach(lc, ((BoolExpr *) node)->args)
		{
			if (conjunct_compares_tenant(lfirst(lc), attnum, funcs))
				return true;
		}
		return false;
	}
	if (IsA(node, OpExpr))
	{
		OpExpr	   *op = (OpExpr *) node;
		Node	   *left;
		Node	   *right;

		if (list_length(op->args) != 2 || get_opcode(op->opno) != F_UUID_EQ)
			return false;
		left = linitial(op->args);
		right = lsecond(op->args);
		return (is_tenant_var(left, attnum) && is_tenant_source(right, funcs)) ||
			(is_tenant_var(right, attnum) && is_tenant_source(left, funcs));
	}
	return false;
}

/*
 * Is the tree, as stored, the USING or WITH CHECK expression of a policy on
 * the relation (any relation when relid is InvalidOid)?
 *
 * These functions are executable by every role, because domi.rls_audit()
 * runs with its caller's rights, and any role can read other node trees
 * from the catalogs: a view's rule (a list of queries), a partition bound,
 * a trigger's WHEN clause with its OLD and NEW, or a policy of another
 * relation.  The walkers and the deparser below would end in internal
 * errors on those ("unrecognized node type", "bogus varno", "invalid
 * attnum"), so only the trees they are written for get through.
 */
static bool
is_policy_expression(text *expr, Oid relid)
{
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tuple;
	bool		found = false;
	static const AttrNumber columns[] = {Anum_pg_policy_polqual, Anum_pg_policy_polwithcheck};

	ScanKeyInit(&key, Anum_pg_policy_polrelid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	rel = table_open(PolicyRelationId, AccessShareLock);
	scan = systable_beginscan(rel, PolicyPolrelidPolnameIndexId, OidIsValid(relid),
							  NULL, OidIsValid(relid) ? 1 : 0, &key);
	while (!found && HeapTupleIsValid(tuple = systable_getnext(scan)))
	{
		for (int i = 0; i < lengthof(columns) && !found; i++)
		{
			bool		isnull;
			Datum		stored = heap_getattr(tuple, columns[i],
											  RelationGetDescr(rel), &isnull);
			text	   *form;

			if (isnull)
				continue;
			form = DatumGetTextPP(stored);
			found = VARSIZE_ANY_EXHDR(form) == VARSIZE_ANY_EXHDR(expr) &&
				memcmp(VARDATA_ANY(form), VARDATA_ANY(expr), VARSIZE_ANY_EXHDR(expr)) == 0;
		}
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * The policy expression argument as a tree.  With of_relation, it must be
 * a policy of the relation relid, which the caller deparses it for;
 * otherwise a policy of any relation.
 */
static Node *
policy_expr_arg(FunctionCallInfo fcinfo, int argno, bool of_relation, Oid relid)
{
	text	   *expr = PG_GETARG_TEXT_PP(argno);
	char	   *relname = NULL;

	if (!of_relation)
		relid = InvalidOid;
	else if ((relname = get_rel_name(relid)) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	if (is_policy_expression(expr, relid))
		return (Node *) stringToNode(text_to_cstring(expr));
	if (relname != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("node tree is not the expression of a policy on relation \"%s\"",
						relname),
				 errdetail("Only pg_policy.polqual and pg_policy.polwithcheck are read, with the policy's own relation.")));
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("node tree is not the expression of a policy"),
			 errdetail("Only pg_policy.polqual and pg_policy.polwithcheck are read.")));
	pg_unreachable();
}

/*
 * domi._policy_compares_tenant(expr pg_node_tree, attnum int2) returns bool
 */
Datum
domi_policy_compares_tenant(PG_FUNCTION_ARGS)
{
	Node	   *expr;
	TenantFuncs funcs;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_BOOL(false);
	expr = policy_expr_arg(fcinfo, 0, false, InvalidOid);
	lookup_tenant_funcs(&funcs);
	PG_RETURN_BOOL(conjunct_compares_tenant(expr, PG_GETARG_INT16(1), &funcs));
}

/*
 * Collects the largest subexpressions that read no column of the row, call
 * a function that is not IMMUTABLE, and are not already inside a sub-select:
 * those are evaluated again for every row, where "(SELECT ...)" would make
 * the planner evaluate them once per query as an initplan.
 */
typedef struct PerRowContext
{
	List	   *calls;
	TenantFuncs funcs;
} PerRowContext;

static bool
mutable_checker(Oid func_id, void *context)
{
	return func_volatile(func_id) != PROVOLATILE_IMMUTABLE;
}

/*
 * contain_mutable_functions(), except that calls of the tenant functions do
 * not count: the planner turns each of them into an initplan (see
 * domi_tenant_support below), so they are evaluated once per query however
 * they are written.
 */
static bool
mutable_beside_tenant_walker(Node *node, const TenantFuncs *funcs)
{
	if (node == NULL)
		return false;
	if (is_tenant_call(node, funcs))
		return false;
	if (check_functions_in_node(node, mutable_checker, NULL))
		return true;
	if (IsA(node, SQLValueFunction) || IsA(node, NextValueExpr))
		return true;
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, mutable_beside_tenant_walker,
								 (void *) funcs, 0);
	return expression_tree_walker(node, mutable_beside_tenant_walker, (void *) funcs);
}

static bool
per_row_walker(Node *node, PerRowContext *context)
{
	if (node == NULL)
		return false;
	/* A sub-select is planned as an initplan or subplan, not per row. */
	if (IsA(node, SubLink))
		return false;
	if (IsA(node, Const) || IsA(node, Param) || IsA(node, Var))
		return false;
	if (!contain_var_clause(node) && !checkExprHasSubLink(node) &&
		mutable_beside_tenant_walker(node, &context->funcs))
	{
		context->calls = lappend(context->calls, node);
		return false;
	}
	return expression_tree_walker(node, per_row_walker, (void *) context);
}

static List *
per_row_calls(Node *expr)
{
	PerRowContext context = {NIL};

	lookup_tenant_funcs(&context.funcs);
	(void) per_row_walker(expr, &context);
	return context.calls;
}

static List *
policy_deparse_context(Oid relid)
{
	char	   *relname = get_rel_name(relid);

	if (relname == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	return deparse_context_for(relname, relid);
}

/*
 * domi._policy_per_row_calls(expr pg_node_tree, rel oid) returns text[]
 *
 * The deparsed per-row calls, or NULL when there are none.
 */
Datum
domi_policy_per_row_calls(PG_FUNCTION_ARGS)
{
	Node	   *expr;
	List	   *calls;
	List	   *dpcontext;
	Datum	   *elems;
	ListCell   *lc;
	int			n = 0;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	expr = policy_expr_arg(fcinfo, 0, true, PG_GETARG_OID(1));
	calls = per_row_calls(expr);
	if (calls == NIL)
		PG_RETURN_NULL();

	dpcontext = policy_deparse_context(PG_GETARG_OID(1));
	elems = palloc(sizeof(Datum) * list_length(calls));
	foreach(lc, calls)
		elems[n++] = CStringGetTextDatum(deparse_expression(lfirst(lc), dpcontext,
															false, false));
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/*
 * "(SELECT expr)": a scalar sub-select over a query with that one output
 * column and no FROM.
 */
static Node *
scalar_sublink(Expr *expr)
{
	Query	   *query = makeNode(Query);
	SubLink    *sublink = makeNode(SubLink);

	query->commandType = CMD_SELECT;
	query->querySource = QSRC_ORIGINAL;
	query->canSetTag = true;
	query->jointree = makeFromExpr(NIL, NULL);
	query->targetList = list_make1(makeTargetEntry(expr, 1, NULL, false));
	sublink->subLinkType = EXPR_SUBLINK;
	sublink->subLinkId = 0;
	sublink->testexpr = NULL;
	sublink->operName = NIL;
	sublink->subselect = (Node *) query;
	sublink->location = -1;
	return (Node *) sublink;
}

/*
 * Wraps each collected call in a scalar sub-select, "(SELECT call)": a
 * SubLink over a query with that one output column and no FROM.  Nodes are
 * matched by identity, so equal calls elsewhere and text that merely looks
 * like a call (inside a string constant, say) are left alone.
 */
static Node *
wrap_calls_mutator(Node *node, List *calls)
{
	if (node == NULL)
		return NULL;
	if (list_member_ptr(calls, node))
		return scalar_sublink((Expr *) copyObject(node));
	/* Sub-selects already in the policy are copied as they are. */
	if (IsA(node, Query))
		return (Node *) copyObject(node);
	return expression_tree_mutator(node, wrap_calls_mutator, (void *) calls);
}

/*
 * domi._policy_initplan_form(expr pg_node_tree, rel oid) returns text
 *
 * The expression as SQL with each per-row call wrapped in "(SELECT ...)",
 * for the audit's fix; NULL when there is nothing to wrap.
 */
Datum
domi_policy_initplan_form(PG_FUNCTION_ARGS)
{
	Node	   *expr;
	List	   *calls;
	Node	   *wrapped;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	expr = policy_expr_arg(fcinfo, 0, true, PG_GETARG_OID(1));
	calls = per_row_calls(expr);
	if (calls == NIL)
		PG_RETURN_NULL();

	wrapped = wrap_calls_mutator(expr, calls);
	PG_RETURN_TEXT_P(cstring_to_text(deparse_expression(wrapped,
														policy_deparse_context(PG_GETARG_OID(1)),
														false, false)));
}

/*
 * domi._tenant_support(internal) returns internal
 *
 * The planner support function of domi.current_tenant() and
 * domi.require_tenant().  A policy written with the plain call,
 * "tenant_id = domi.current_tenant()", is the form Citus accepts on
 * distributed tables, but evaluated for every row it costs a function call
 * per row, where "(SELECT domi.current_tenant())" costs one initplan per
 * query.  When the planner simplifies a call (SupportRequestSimplify) we hand
 * it that very sub-select, so it plans the call as an initplan: the plain
 * policy then costs what the sub-select one does, while the stored policy
 * stays the plain call.
 *
 * The value is not folded into a constant: an initplan is evaluated at every
 * execution, so a cached or prepared plan reads the tenant of the
 * transaction that runs it, not of the one that planned it.
 *
 * Left alone: expressions simplified outside a planner run (no root: column
 * defaults in COPY, index expressions, ...), where nothing would plan a
 * sub-select; and queries without a table, which evaluate the call once
 * anyway -- among them the sub-select we make, which ends the recursion, and
 * PL/pgSQL's simple expressions, which must stay simple.
 */
Datum
domi_tenant_support(PG_FUNCTION_ARGS)
{
	Node	   *rawreq = (Node *) PG_GETARG_POINTER(0);
	SupportRequestSimplify *req;
	PlannerInfo *root;
	ListCell   *lc;
	bool		reads_tables = false;

	if (!IsA(rawreq, SupportRequestSimplify))
		PG_RETURN_POINTER(NULL);
	req = (SupportRequestSimplify *) rawreq;
	root = req->root;
	if (root == NULL || root->parse == NULL || req->fcall->args != NIL)
		PG_RETURN_POINTER(NULL);

	foreach(lc, root->parse->rtable)
	{
		if (lfirst_node(RangeTblEntry, lc)->rtekind != RTE_RESULT)
		{
			reads_tables = true;
			break;
		}
	}
	if (!reads_tables)
		PG_RETURN_POINTER(NULL);

	/*
	 * The planner turns sub-selects into initplans only in queries it knows
	 * to have them.
	 */
	root->parse->hasSubLinks = true;
	PG_RETURN_POINTER(scalar_sublink((Expr *) copyObject(req->fcall)));
}
