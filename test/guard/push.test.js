// The drop guard against a real `drizzle-kit push --force`: the DDL comes
// from drizzle-kit through node-postgres, not from us.  Run by suite_guard in
// scripts/test with PGHOST (the socket directory), PGPORT and PGUSER set.
//
// drizzle-kit push exits 0 even when the database refuses one of its
// statements (it prints the error), so every test checks the database itself.
'use strict';

const test = require('node:test');
const assert = require('node:assert');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { Client } = require('pg');

const database = 'guard_push';
const drizzleKit = path.join(__dirname, 'node_modules', '.bin', 'drizzle-kit');

function url(db) {
	const host = encodeURIComponent(process.env.PGHOST);
	return `postgresql://${process.env.PGUSER}@localhost/${db}?host=${host}&port=${process.env.PGPORT}`;
}

async function sql(db, text, params) {
	const client = new Client({ connectionString: url(db) });
	await client.connect();
	try {
		return (await client.query(text, params)).rows;
	} finally {
		await client.end();
	}
}

// drizzle-kit push, non-interactive (no stdin, as in CI), auto-approving data loss.
function push(schemaFile, env = {}) {
	const run = spawnSync(drizzleKit, [
		'push', '--force', '--dialect', 'postgresql',
		'--schema', path.join(__dirname, 'schema', schemaFile),
		'--url', url(database),
	], { cwd: __dirname, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', timeout: 120000,
		env: { ...process.env, ...env } });
	assert.strictEqual(run.error, undefined, `drizzle-kit could not run: ${run.error}`);
	return run.stdout + run.stderr;
}

async function columns() {
	const rows = await sql(database, `SELECT attname, format_type(atttypid, atttypmod) AS type
		FROM pg_attribute WHERE attrelid = 'public.customers'::regclass AND attnum > 0 AND NOT attisdropped
		ORDER BY attnum`);
	return rows.map((r) => `${r.attname} ${r.type}`).join(', ');
}

const everything = 'id integer, name text, nickname text, tax_id text';

test.before(async () => {
	await sql('postgres', `DROP DATABASE IF EXISTS ${database}`);
	await sql('postgres', `CREATE DATABASE ${database}`);
	await sql(database, 'CREATE EXTENSION domi');
	// The table as `drizzle-kit push` of schema/with_column.js makes it.
	const out = push('with_column.js');
	assert.match(out, /Changes applied|applied/i, out);
	await sql(database, `INSERT INTO customers (name, nickname, tax_id) VALUES ('Ada', 'ada', 'GB-123')`);
	await sql(database, `SELECT domi.protect_column('customers', 'tax_id')`);
});

test('the first push made the table drizzle-kit would make', async () => {
	assert.strictEqual(await columns(), everything);
	const rows = await sql(database, 'SELECT column_name FROM domi.protected_columns');
	assert.deepStrictEqual(rows, [{ column_name: 'tax_id' }]);
});

test('push of a schema without the protected column is refused, and the column survives', async () => {
	const out = push('without_column.js');
	assert.match(out, /cannot drop protected column "tax_id" of table "public.customers"/, out);
	assert.match(out, /2BP01/, out);
	assert.match(out, /SET LOCAL domi\.allow_drop = 'public\.customers\.tax_id'/, out);
	assert.strictEqual(await columns(), everything);
	const rows = await sql(database, 'SELECT tax_id FROM customers');
	assert.deepStrictEqual(rows, [{ tax_id: 'GB-123' }]);
});

test('push that would change the protected column\'s type is refused', async () => {
	const out = push('retyped.js');
	assert.match(out, /cannot change the type of protected column "tax_id"/, out);
	assert.strictEqual(await columns(), everything);
});

test('an override in the connection options (PGOPTIONS) does not count', async () => {
	const out = push('without_column.js', { PGOPTIONS: '-c domi.allow_drop=public.customers.tax_id' });
	assert.match(out, /cannot drop protected column "tax_id"/, out);
	assert.match(out, /not with SET LOCAL in this transaction/, out);
	assert.strictEqual(await columns(), everything);
});

test('with the column back in the schema, push passes and changes nothing', async () => {
	const out = push('with_column.js');
	assert.match(out, /No changes detected/, out);
	assert.doesNotMatch(out, /error/i, out);
	assert.strictEqual(await columns(), everything);
	const rows = await sql(database, 'SELECT count(*)::int AS n FROM domi.protected_columns');
	assert.deepStrictEqual(rows, [{ n: 1 }]);
});

// The control: the same push does drop a column nobody protected, so the
// refusals above are the guard's and not drizzle-kit holding back.
test('push still drops an unprotected column', async () => {
	const out = push('without_nickname.js');
	assert.doesNotMatch(out, /error/i, out);
	assert.strictEqual(await columns(), 'id integer, name text, tax_id text');
});

test.after(async () => {
	await sql('postgres', `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
});
