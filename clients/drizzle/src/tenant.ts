// Tenant transactions: the tenant lives exactly as long as one transaction.
//
// domi.set_tenant() and domi.enter_tenant() set domi.tenant_id for the
// current transaction only (and refuse outside one), so a pooled connection
// goes back to the pool with no tenant: the next checkout, whoever makes it,
// starts with domi.current_tenant() NULL and the policies match no row.
import { sql } from 'drizzle-orm';
import type { PgDatabase, PgQueryResultHKT, PgTransaction, PgTransactionConfig } from 'drizzle-orm/pg-core';
import type { TablesRelationalConfig } from 'drizzle-orm/relations';

/** The transaction handle withTenant and enterTenant give to fn. */
export type TenantTransaction<
	TQueryResult extends PgQueryResultHKT,
	TFullSchema extends Record<string, unknown>,
	TSchema extends TablesRelationalConfig,
> = PgTransaction<TQueryResult, TFullSchema, TSchema>;

// The first row of a db.execute() result: node-postgres gives { rows },
// postgres.js an array of rows.
function firstRow(result: unknown): Record<string, unknown> | undefined {
	if (Array.isArray(result)) return result[0] as Record<string, unknown> | undefined;
	const rows = (result as { rows?: unknown[] } | null)?.rows;
	return rows?.[0] as Record<string, unknown> | undefined;
}

function requireText(value: unknown, what: string): string {
	if (typeof value !== 'string' || value === '') {
		throw new TypeError(`${what} must be a non-empty string, got ${value === '' ? 'an empty string' : typeof value}`);
	}
	return value;
}

/**
 * Runs fn in one transaction acting for tenantId: BEGIN, SELECT
 * domi.set_tenant(tenantId), fn(tx), COMMIT (ROLLBACK when fn throws).
 * Never a session-wide setting.  Returns what fn returns.
 */
export async function withTenant<
	TQueryResult extends PgQueryResultHKT,
	TFullSchema extends Record<string, unknown>,
	TSchema extends TablesRelationalConfig,
	T,
>(
	db: PgDatabase<TQueryResult, TFullSchema, TSchema>,
	tenantId: string,
	fn: (tx: TenantTransaction<TQueryResult, TFullSchema, TSchema>) => Promise<T>,
	config?: PgTransactionConfig,
): Promise<T> {
	// A missing tenant would be set_tenant(NULL): no tenant, every query
	// seeing no rows.  That is a bug in the caller; say so before BEGIN.
	const tenant = requireText(tenantId, 'withTenant: tenantId');
	return db.transaction(async (tx) => {
		await tx.execute(sql`SELECT domi.set_tenant(${tenant}::uuid)`);
		return fn(tx);
	}, config);
}

/**
 * Runs fn in one transaction acting for the tenant of userId, found with
 * domi's lookup (domi.enter_tenant: the user's first membership, or the
 * given tenantId after checking the membership; error 42501 when the user
 * is not a member, or has no membership).  fn gets the transaction and the
 * tenant id.  The application role needs EXECUTE on domi.enter_tenant(text,
 * uuid), and the extension owner must have run domi.configure_tenancy().
 */
export async function enterTenant<
	TQueryResult extends PgQueryResultHKT,
	TFullSchema extends Record<string, unknown>,
	TSchema extends TablesRelationalConfig,
	T,
>(
	db: PgDatabase<TQueryResult, TFullSchema, TSchema>,
	userId: string,
	fn: (tx: TenantTransaction<TQueryResult, TFullSchema, TSchema>, tenantId: string) => Promise<T>,
	options: { tenantId?: string; config?: PgTransactionConfig } = {},
): Promise<T> {
	const user = requireText(userId, 'enterTenant: userId');
	const wanted = options.tenantId === undefined ? null : requireText(options.tenantId, 'enterTenant: tenantId');
	return db.transaction(async (tx) => {
		const result = await tx.execute(sql`SELECT domi.enter_tenant(${user}::text, ${wanted}::uuid) AS tenant`);
		const tenant = firstRow(result)?.tenant;
		if (typeof tenant !== 'string') {
			// enter_tenant raises 42501 itself; this is a driver we do not know.
			throw new Error('enterTenant: domi.enter_tenant() returned no tenant');
		}
		return fn(tx, tenant);
	}, options.config);
}
