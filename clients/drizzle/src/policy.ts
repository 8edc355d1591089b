// domi's tenant policy, declared for drizzle-kit.
//
// domi.enable_tenant_rls() installs one policy per table.  Declaring the very
// same policy in the drizzle schema lets drizzle-kit agree with the database:
// push compares a policy's name, AS, FOR, TO and table, and generate compares
// the USING and WITH CHECK text as well, against the previous snapshot.  The
// text is written here as PostgreSQL prints it back (pg_get_expr, which
// drizzle-kit pull reads from pg_policies), so that what drizzle-kit
// introspects, what it generates and what domi installs are one policy.
import { sql, type SQL } from 'drizzle-orm';
import { pgPolicy, type PgColumn, type PgPolicy } from 'drizzle-orm/pg-core';

/** The name domi.enable_tenant_rls gives its policy. */
export const DOMI_TENANT_POLICY_NAME = 'domi_tenant_isolation';

/**
 * USING and WITH CHECK of domi's policy as pg_get_expr prints them, with
 * {column} for the tenant column (as quote_ident would write it).  The one
 * place that knows the expression: the tests compare it with what a live
 * domi.enable_tenant_rls() installs, so a change on either side fails there.
 */
export const DOMI_TENANT_POLICY_EXPRESSION = '({column} = domi.current_tenant())';

// Keywords that quote_ident() quotes: every PostgreSQL 15 keyword that is
// not unreserved (reserved, type/function-name and column-name keywords).
const QUOTED_KEYWORDS = new Set([
	'all', 'analyse', 'analyze', 'and', 'any', 'array', 'as', 'asc', 'asymmetric', 'authorization',
	'between', 'bigint', 'binary', 'bit', 'boolean', 'both', 'case', 'cast', 'char', 'character', 'check',
	'coalesce', 'collate', 'collation', 'column', 'concurrently', 'constraint', 'create', 'cross',
	'current_catalog', 'current_date', 'current_role', 'current_schema', 'current_time',
	'current_timestamp', 'current_user', 'dec', 'decimal', 'default', 'deferrable', 'desc',
	'distinct', 'do', 'else', 'end', 'except', 'exists', 'extract', 'false', 'fetch', 'float', 'for',
	'foreign', 'freeze', 'from', 'full', 'grant', 'greatest', 'group', 'grouping', 'having', 'ilike', 'in',
	'initially', 'inner', 'inout', 'int', 'integer', 'intersect', 'interval', 'into', 'is', 'isnull',
	'join', 'lateral', 'leading', 'least', 'left', 'like', 'limit', 'localtime', 'localtimestamp',
	'national', 'natural', 'nchar', 'none', 'normalize', 'not', 'notnull', 'null', 'nullif', 'numeric',
	'offset', 'on', 'only', 'or', 'order', 'out', 'outer', 'overlaps', 'overlay', 'placing', 'position',
	'precision', 'primary', 'real', 'references', 'returning', 'right', 'row', 'select',
	'session_user', 'setof', 'similar', 'smallint', 'some', 'substring', 'symmetric', 'table',
	'tablesample', 'then', 'time', 'timestamp', 'to', 'trailing', 'treat', 'trim', 'true', 'union',
	'unique', 'user', 'using', 'values', 'varchar', 'variadic', 'verbose', 'when', 'where', 'window',
	'with', 'xmlattributes', 'xmlconcat', 'xmlelement', 'xmlexists', 'xmlforest',
	'xmlnamespaces', 'xmlparse', 'xmlpi', 'xmlroot', 'xmlserialize', 'xmltable',
]);

/** An identifier as PostgreSQL's quote_ident() writes it. */
export function quoteIdent(name: string): string {
	if (/^[a-z_][a-z0-9_]*$/.test(name) && !QUOTED_KEYWORDS.has(name)) return name;
	return '"' + name.replace(/"/g, '""') + '"';
}

/** The policy expression for a tenant column, as pg_get_expr prints it. */
export function tenantPolicyExpression(tenantColumn: string): string {
	return DOMI_TENANT_POLICY_EXPRESSION.replace('{column}', quoteIdent(tenantColumn));
}

function columnName(column: PgColumn | string): string {
	const name = typeof column === 'string' ? column : column?.name;
	if (typeof name !== 'string' || name === '') {
		throw new TypeError('domiTenantPolicy: give the tenant column (table.tenantId) or its name');
	}
	return name;
}

/**
 * The policy domi.enable_tenant_rls(table, column) installs, for the third
 * argument of pgTable:
 *
 *   pgTable('invoices', { ..., tenantId: uuid('tenant_id').notNull() },
 *     (t) => [domiTenantPolicy(t.tenantId)])
 *
 * Name domi_tenant_isolation, AS PERMISSIVE, FOR ALL, TO public, USING and
 * WITH CHECK tenant column = domi.current_tenant().  Give the column
 * a database name of its own (uuid('tenant_id')), not one derived by casing.
 */
export function domiTenantPolicy(tenantColumn: PgColumn | string): PgPolicy {
	const expression: SQL = sql.raw(tenantPolicyExpression(columnName(tenantColumn)));
	return pgPolicy(DOMI_TENANT_POLICY_NAME, {
		as: 'permissive',
		for: 'all',
		to: 'public',
		using: expression,
		withCheck: expression,
	});
}
