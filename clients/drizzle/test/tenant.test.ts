// withTenant, enterTenant, bytea and the keyring helpers, as app_user
// through node-postgres, on tables that drizzle-kit migrate created with
// domi's policy (test/schema/app.ts).
import test from 'node:test';
import assert from 'node:assert';
import { Pool } from 'pg';
import { eq, sql as dsql } from 'drizzle-orm';
import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres';
import { withTenant, enterTenant, encryptText, decryptText } from '@domi/drizzle';
import { invoices } from './schema/app';
import { createDatabase, migrateApp, sql, url } from './helpers';

const DB = 'drizzle_tenant';
const A = '0a000000-0000-4000-8000-00000000000a';
const B = '0b000000-0000-4000-8000-00000000000b';

// One connection: every test below runs on the same pooled connection, as
// the next request behind a pooler would.
let pool: Pool;
let db: NodePgDatabase;

test.before(async () => {
	await createDatabase(DB);
	migrateApp(DB, 'tenant');
	// docs/drizzle.md "Tenant lookup": as the extension owner.
	await sql(DB, `SELECT domi.configure_tenancy(memberships => 'public.memberships', tenants => 'public.tenants')`);
	await sql(DB, `INSERT INTO tenants (id, name) VALUES ($1, 'Acme'), ($2, 'Globex')`, [A, B]);
	await sql(DB, `INSERT INTO memberships (user_id, tenant_id, created_at) VALUES
		('alice', $1, '2026-01-01'), ('bob', $2, '2026-01-01'),
		('carol', $1, '2026-01-01'), ('carol', $2, '2026-02-01')`, [A, B]);
	pool = new Pool({ connectionString: url(DB, 'app_user'), max: 1 });
	db = drizzle(pool);
});

test.after(async () => {
	await pool.end();
});

async function backendPid(): Promise<number> {
	return (await pool.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
}

async function sessionTenant(): Promise<string | null> {
	return (await pool.query('SELECT domi.current_tenant() AS tenant')).rows[0].tenant;
}

test('withTenant: rows of one tenant are invisible to the other', async () => {
	await withTenant(db, A, async (tx) => {
		await tx.insert(invoices).values([{ tenantId: A, customer: 'Ada' }, { tenantId: A, customer: 'Alan' }]);
	});
	await withTenant(db, B, async (tx) => {
		await tx.insert(invoices).values({ tenantId: B, customer: 'Grace' });
	});
	const seenByA = await withTenant(db, A, (tx) => tx.select({ customer: invoices.customer }).from(invoices).orderBy(invoices.customer));
	const seenByB = await withTenant(db, B, (tx) => tx.select({ customer: invoices.customer }).from(invoices));
	assert.deepStrictEqual(seenByA.map((r) => r.customer), ['Ada', 'Alan']);
	assert.deepStrictEqual(seenByB.map((r) => r.customer), ['Grace']);
	// B cannot change A's rows either: the update matches nothing.
	const updated = await withTenant(db, B, (tx) =>
		tx.update(invoices).set({ customer: 'Mallory' }).where(eq(invoices.customer, 'Ada')).returning());
	assert.strictEqual(updated.length, 0);
	// Nor write a row for A (WITH CHECK).
	await assert.rejects(
		withTenant(db, B, (tx) => tx.insert(invoices).values({ tenantId: A, customer: 'Eve' })),
		(err: any) => err.cause?.code === '42501' || err.code === '42501',
	);
	const all = await sql(DB, 'SELECT customer FROM invoices ORDER BY customer');
	assert.deepStrictEqual(all.map((r) => r.customer), ['Ada', 'Alan', 'Grace']);
});

test('withTenant leaves no tenant behind on the pooled connection', async () => {
	const inside = await withTenant(db, A, async (tx) => {
		const r = await tx.execute(dsql`SELECT pg_backend_pid() AS pid, domi.current_tenant() AS tenant`);
		return r.rows[0] as { pid: number; tenant: string };
	});
	assert.strictEqual(inside.tenant, A);
	assert.strictEqual(await backendPid(), inside.pid, 'the next query runs on the same connection');
	assert.strictEqual(await sessionTenant(), null, 'no tenant after the transaction');
	assert.deepStrictEqual(await db.select().from(invoices), [], 'and no rows without a tenant');

	// fn throws: rolled back, and no tenant either.
	await assert.rejects(withTenant(db, A, async (tx) => {
		await tx.insert(invoices).values({ tenantId: A, customer: 'Rolled back' });
		throw new Error('boom');
	}), /boom/);
	assert.strictEqual(await sessionTenant(), null);
	const rows = await sql(DB, `SELECT count(*)::int AS n FROM invoices WHERE customer = 'Rolled back'`);
	assert.strictEqual(rows[0].n, 0);
});

test('withTenant refuses a missing tenant before it opens a transaction, and the server a malformed one', async () => {
	await assert.rejects(withTenant(db, undefined as unknown as string, async () => 1), TypeError);
	await assert.rejects(withTenant(db, '', async () => 1), TypeError);
	await assert.rejects(withTenant(db, 'not-a-uuid', async () => 1),
		(err: any) => (err.cause?.code ?? err.code) === '22P02');
	assert.strictEqual(await sessionTenant(), null);
});

test('enterTenant: the user\'s tenant from domi\'s lookup, for one transaction', async () => {
	const [tenant, customers] = await enterTenant(db, 'alice', async (tx, tenantId) => {
		const rows = await tx.select({ customer: invoices.customer }).from(invoices).orderBy(invoices.customer);
		return [tenantId, rows.map((r) => r.customer)] as const;
	});
	assert.strictEqual(tenant, A);
	assert.deepStrictEqual(customers, ['Ada', 'Alan']);
	assert.strictEqual(await sessionTenant(), null);

	// carol's first membership is A; she may name her other one.
	assert.strictEqual(await enterTenant(db, 'carol', async (_tx, t) => t), A);
	const other = await enterTenant(db, 'carol', async (tx, t) => {
		const rows = await tx.select({ customer: invoices.customer }).from(invoices);
		return { t, customers: rows.map((r) => r.customer) };
	}, { tenantId: B });
	assert.deepStrictEqual(other, { t: B, customers: ['Grace'] });

	// Not a member: 42501, and fn never runs.
	let ran = false;
	const code = (err: any) => err.cause?.code ?? err.code;
	await assert.rejects(enterTenant(db, 'bob', async () => { ran = true; }, { tenantId: A }), (e) => code(e) === '42501');
	await assert.rejects(enterTenant(db, 'mallory', async () => { ran = true; }), (e) => code(e) === '42501');
	assert.strictEqual(ran, false);
	assert.strictEqual(await sessionTenant(), null);
});

test('bytea: a Buffer goes in and comes out byte for byte', async () => {
	const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
	const back = await withTenant(db, A, async (tx) => {
		const [row] = await tx.insert(invoices)
			.values({ tenantId: A, customer: 'Bytes', attachment: bytes })
			.returning({ id: invoices.id });
		const [empty] = await tx.insert(invoices)
			.values({ tenantId: A, customer: 'Empty', attachment: Buffer.alloc(0) })
			.returning({ attachment: invoices.attachment });
		const [read] = await tx.select({ attachment: invoices.attachment }).from(invoices).where(eq(invoices.id, row.id));
		return { read: read.attachment, empty: empty.attachment };
	});
	assert.ok(Buffer.isBuffer(back.read));
	assert.ok(bytes.equals(back.read!));
	assert.deepStrictEqual(back.empty, Buffer.alloc(0));
	const stored = await sql(DB, `SELECT attachment FROM invoices WHERE customer = 'Bytes'`);
	assert.ok(bytes.equals(stored[0].attachment), 'stored as bytea, not as text');
});

test('encryptText / decryptText: sealed under the tenant\'s keyring key, read back as text', async () => {
	const note = 'allergic to penicillin — ペニシリン';
	const { id, notes } = await withTenant(db, A, async (tx) => {
		const [row] = await tx.insert(invoices)
			.values({ tenantId: A, customer: 'Patient', notes: encryptText(note) })
			.returning({ id: invoices.id, notes: invoices.notes });
		return row;
	});
	assert.ok(Buffer.isBuffer(notes));
	assert.strictEqual(notes!.length, Buffer.byteLength(note) + 40, 'nonce || MAC || ciphertext');
	assert.ok(!notes!.includes(Buffer.from('penicillin')));

	const read = await withTenant(db, A, (tx) =>
		tx.select({ notes: decryptText(invoices.notes) }).from(invoices).where(eq(invoices.id, id)));
	assert.deepStrictEqual(read, [{ notes: note }]);

	// Another tenant's key does not open it (and the policy hides the row).
	await withTenant(db, B, (tx) => tx.insert(invoices).values({ tenantId: B, customer: 'B', notes: encryptText('b') }));
	await assert.rejects(withTenant(db, B, (tx) =>
		tx.execute(dsql`SELECT ${decryptText(dsql`${notes}::bytea`)} AS notes`)),
	(err: any) => (err.cause?.code ?? err.code) === '39000');
	// NULL stays NULL.
	const nulls = await withTenant(db, A, (tx) =>
		tx.select({ notes: decryptText(invoices.notes) }).from(invoices).where(eq(invoices.customer, 'Ada')));
	assert.deepStrictEqual(nulls, [{ notes: null }]);
});
