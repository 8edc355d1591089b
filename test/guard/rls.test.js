// Tenant isolation against a real `drizzle-kit push --force` (issue 19): the
// schema declares the tenant tables but not domi's policy, so drizzle-kit
// runs ALTER TABLE ... DISABLE ROW LEVEL SECURITY and DROP POLICY
// domi_tenant_isolation on each of them, one statement at a time through
// node-postgres.  domi refuses each, so every table stays as it was.  Run by
// suite_guard in scripts/test with PGHOST (the socket directory), PGPORT and
// PGUSER set.
'use strict';

const test = require('node:test');
const assert = require('node:assert');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { Client } = require('pg');

const database = 'guard_rls';
// The same tables isolated by hand with the same statements, which domi does not guard.
const controlDatabase = 'guard_rls_control';
const appRole = 'guard_rls_app';
const drizzleKit = path.join(__dirname, 'node_modules', '.bin', 'drizzle-kit');
const tenantA = 'aaaaaaaa-0000-4000-8000-000000000001';
const tenantB = 'bbbbbbbb-0000-4000-8000-000000000002';
// Each isolated table and the tenant column domi.enable_tenant_rls was given.
const isolated = { tenants: 'id', conversations: 'tenant_id', messages: 'tenant_id', documents: 'tenant_id' };

function url(db, user = process.env.PGUSER) {
	const host = encodeURIComponent(process.env.PGHOST);
	return `postgresql://${user}@localhost/${db}?host=${host}&port=${process.env.PGPORT}`;
}

async function sql(db, text, params, user) {
	const client = new Client({ connectionString: url(db, user) });
	await client.connect();
	try {
		return (await client.query(text, params)).rows;
	} finally {
		await client.end();
	}
}

// drizzle-kit push, non-interactive (no stdin, as in CI), auto-approving.
function push(env = {}, db = database) {
	const run = spawnSync(drizzleKit, [
		'push', '--force', '--dialect', 'postgresql',
		'--schema', path.join(__dirname, 'schema', 'tenant_tables.js'),
		'--url', url(db),
	], { cwd: __dirname, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', timeout: 120000,
		env: { ...process.env, ...env } });
	assert.strictEqual(run.error, undefined, `drizzle-kit could not run: ${run.error}`);
	return { status: run.status, out: run.stdout + run.stderr };
}

// Row level security, FORCE and the policies of every table, as one string each.
async function rlsState(db = database) {
	const rows = await sql(db, `SELECT c.relname, c.relrowsecurity AS rls, c.relforcerowsecurity AS force,
			coalesce((SELECT string_agg(polname, ',' ORDER BY polname) FROM pg_policy WHERE polrelid = c.oid), '') AS policies
		FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' ORDER BY 1`);
	return Object.fromEntries(rows.map((r) => [r.relname, `rls=${r.rls} force=${r.force} policies=${r.policies}`]));
}

const isolatedState = 'rls=true force=true policies=domi_tenant_isolation';

// What the application role sees under each tenant, and with none.
async function appView(db = database) {
	const client = new Client({ connectionString: url(db, appRole) });
	await client.connect();
	try {
		const seen = {};
		for (const [label, tenant] of [['none', null], ['A', tenantA], ['B', tenantB]]) {
			await client.query('BEGIN');
			if (tenant) await client.query('SELECT domi.set_tenant($1)', [tenant]);
			const counts = [];
			for (const [table, column] of Object.entries(isolated)) {
				const rows = (await client.query(`SELECT ${column}::text AS t FROM ${table}`)).rows;
				counts.push(`${table}:${rows.length}${rows.every((r) => r.t === tenant) ? '' : ':FOREIGN'}`);
			}
			await client.query('COMMIT');
			seen[label] = counts.join(' ');
		}
		return seen;
	} finally {
		await client.end();
	}
}

// A database with the tables as `drizzle-kit push` makes them, rows of two
// tenants, and each tenant table isolated: by domi.enable_tenant_rls, or
// (byHand) with the very statements it runs but without it.
async function setUp(db, byHand) {
	await sql('postgres', `DROP DATABASE IF EXISTS ${db}`);
	await sql('postgres', `CREATE DATABASE ${db}`);
	await sql(db, 'CREATE EXTENSION domi');
	const { out } = push({}, db);
	assert.match(out, /Changes applied/, out);
	await sql(db, `INSERT INTO tenants VALUES ($1, 'A'), ($2, 'B')`, [tenantA, tenantB]);
	for (const table of ['conversations', 'messages', 'documents', 'notes']) {
		await sql(db, `INSERT INTO ${table} (tenant_id, ${table === 'conversations' ? 'title' : 'body'})
			VALUES ($1, 'a1'), ($1, 'a2'), ($2, 'b1')`, [tenantA, tenantB]);
	}
	await sql(db, `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ${appRole}`);
	for (const [table, column] of Object.entries(isolated)) {
		if (byHand) {
			await sql(db, `SET domi.rls_guard = off;
				CREATE POLICY domi_tenant_isolation ON ${table} USING (${column} = (SELECT domi.current_tenant()));
				ALTER TABLE ${table} ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY`);
		} else {
			await sql(db, 'SELECT domi.enable_tenant_rls($1, $2)', [table, column]);
		}
	}
	// Isolation written by hand under another name, which domi does not guard.
	await sql(db, `ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
		CREATE POLICY notes_by_hand ON notes USING (tenant_id = domi.current_tenant())`);
}

test.before(async () => {
	await sql('postgres', `DROP ROLE IF EXISTS ${appRole}`);
	await sql('postgres', `CREATE ROLE ${appRole} LOGIN`);
	await setUp(database, false);
	await setUp(controlDatabase, true);
});

test('before the push: every tenant table is isolated, and the app sees only its tenant', async () => {
	const state = await rlsState();
	for (const table of Object.keys(isolated)) assert.strictEqual(state[table], isolatedState, table);
	assert.deepStrictEqual(await appView(), {
		none: 'tenants:0 conversations:0 messages:0 documents:0',
		A: 'tenants:1 conversations:2 messages:2 documents:2',
		B: 'tenants:1 conversations:1 messages:1 documents:1',
	});
});

test('push of a schema without the policy is refused, and isolation stays intact', async (t) => {
	const { status, out } = push();
	// drizzle-kit stops at the first refused statement, prints the error and
	// still exits 0 (drizzle-kit 0.31): the database itself is what counts.
	t.diagnostic(`drizzle-kit push exit status: ${status}`);
	assert.doesNotMatch(out, /Changes applied/, out);
	// drizzle-kit shows the database's refusal; the first statement it ran is refused.
	assert.match(out, /cannot (turn row level security off on tenant table|drop the tenant policy of table) "public\.\w+", isolated by domi/, out);
	assert.match(out, /SET LOCAL domi\.allow_drop = 'public\.\w+\.domi_tenant_isolation'/, out);
	const state = await rlsState();
	for (const table of Object.keys(isolated)) assert.strictEqual(state[table], isolatedState, `${table}\n${out}`);
	assert.deepStrictEqual(await appView(), {
		none: 'tenants:0 conversations:0 messages:0 documents:0',
		A: 'tenants:1 conversations:2 messages:2 documents:2',
		B: 'tenants:1 conversations:1 messages:1 documents:1',
	});
	const registered = await sql(database, 'SELECT table_name, tenant_column FROM domi.isolated_tables ORDER BY 1');
	assert.deepStrictEqual(registered.map((r) => `${r.table_name}.${r.tenant_column}`),
		['conversations.tenant_id', 'documents.tenant_id', 'messages.tenant_id', 'tenants.id']);
});

test('an override in the connection options (PGOPTIONS) does not count', async () => {
	const { out } = push({ PGOPTIONS: '-c domi.allow_drop=public.conversations.domi_tenant_isolation,public.messages.domi_tenant_isolation,public.documents.domi_tenant_isolation,public.tenants.domi_tenant_isolation' });
	assert.match(out, /isolated by domi/, out);
	assert.match(out, /not with SET LOCAL in this transaction/, out);
	const state = await rlsState();
	for (const table of Object.keys(isolated)) assert.strictEqual(state[table], isolatedState, table);
});

// The control: the same push against the same tables isolated by hand,
// which domi does not guard, switches isolation off everywhere and reports
// success, as in issue 19; so the refusals above are domi's.
test('without domi\'s isolation guard the same push opens every table', async () => {
	const { out } = push({}, controlDatabase);
	assert.match(out, /Changes applied/, out);
	const state = await rlsState(controlDatabase);
	// drizzle-kit leaves FORCE alone, which means nothing with RLS off.
	for (const table of Object.keys(isolated)) {
		assert.strictEqual(state[table], 'rls=false force=true policies=', table);
	}
	assert.strictEqual(state.notes, 'rls=false force=false policies=');
	const seen = await appView(controlDatabase);
	assert.strictEqual(seen.none, 'tenants:2:FOREIGN conversations:3:FOREIGN messages:3:FOREIGN documents:3:FOREIGN', JSON.stringify(seen));
});

test.after(async () => {
	await sql('postgres', `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
	await sql('postgres', `DROP DATABASE IF EXISTS ${controlDatabase} WITH (FORCE)`);
	await sql('postgres', `DROP ROLE IF EXISTS ${appRole}`);
});
