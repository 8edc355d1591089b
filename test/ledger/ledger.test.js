// The DDL ledger and schema drift against the real drizzle-kit: generate
// and migrate (recorded in-chain), DDL by hand (out-of-chain until adopted),
// push (drift, and the column it drops), and a password next to DDL (never
// stored).  domi-lineage --schema-truth reports what the database knows.
//
// Needs: PG* variables for a server with domi preloaded, DOMI_LINEAGE (the
// built client), and this folder's packages (npm ci).  scripts/test (suite
// "ledger") sets all of it up.  The tests run in order, on one database.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { Client } = require('pg');

const CLIENT = process.env.DOMI_LINEAGE;
const HERE = __dirname;
const database = `ledger_${process.pid}`;
const out = 'work/migrations';	// relative: drizzle-kit prefixes "./" to its out folder
const drizzleKit = path.join(HERE, 'node_modules', '.bin', 'drizzle-kit');

async function sql(text, params, options = {}) {
  const client = new Client({ database: options.database ?? database, application_name: options.app });
  await client.connect();
  try {
    return (await client.query(text, params)).rows;
  } finally {
    await client.end();
  }
}

function run(cmd, args, env = {}) {
  const r = spawnSync(cmd, args, {
    cwd: HERE, encoding: 'utf8', timeout: 180000, stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PGDATABASE: database, DOMI_MIGRATIONS: out, ...env },
  });
  if (r.error) throw r.error;
  return r;
}

function drizzle(args) {
  const r = run(drizzleKit, args);
  assert.equal(r.status, 0, `drizzle-kit ${args[0]} failed:\n${r.stdout}\n${r.stderr}`);
  return r.stdout + r.stderr;
}

// domi-lineage --schema-truth: status, findings "severity code", output.
function lineage() {
  const r = run(CLIENT, ['--schema-truth', path.join(HERE, out)]);
  const lines = r.stdout.split('\n').filter((l) => l !== '');
  const findings = lines.slice(0, -1).map((line) => {
    const m = /^(error|warning|info): ([a-z_]+): (?:([^ :]+): )?(.*)$/.exec(line);
    assert.ok(m, `finding line in the expected form: ${line}`);
    return { severity: m[1], code: m[2], text: m[4], line };
  });
  return { status: r.status, findings, codes: findings.map((f) => `${f.severity} ${f.code}`), out: r.stdout + r.stderr };
}

test.before(async () => {
  await sql(`CREATE DATABASE ${database}`, [], { database: 'postgres' });
  await sql('CREATE EXTENSION domi');
  fs.rmSync(path.join(HERE, 'work'), { recursive: true, force: true });
});

test('drizzle-kit generate + migrate: every statement recorded, all in-chain', async () => {
  drizzle(['generate', '--dialect=postgresql', '--schema=schema/v1.js', `--out=${out}`, '--name=init']);
  drizzle(['migrate', '--config=drizzle.config.js']);
  const rows = await sql(`SELECT command_tag, in_chain, migration, statement FROM domi.ddl_ledger ORDER BY at`);
  const tags = rows.map((r) => r.command_tag);
  // the migrator's bookkeeping, then the migration's own CREATE TABLE
  assert.deepEqual(tags, ['CREATE SCHEMA', 'CREATE TABLE', 'CREATE TABLE'], JSON.stringify(rows));
  assert.ok(rows.every((r) => r.in_chain), JSON.stringify(rows));
  const [hash] = await sql('SELECT hash FROM drizzle.__drizzle_migrations');
  assert.equal(rows[2].migration, hash.hash);
  assert.match(rows[2].statement, /^CREATE TABLE "users"/);
  const r = lineage();
  assert.equal(r.status, 0, r.out);
  assert.deepEqual(r.codes, []);
});

test('a hand-applied CREATE OR REPLACE FUNCTION is out-of-chain until adopted', async () => {
  await sql(`CREATE OR REPLACE FUNCTION user_count() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM users'`,
    [], { app: 'hotfix-script' });
  let r = lineage();
  assert.equal(r.status, 0, r.out);	// a warning: nothing lost
  assert.deepEqual(r.codes, ['warning out_of_chain_ddl']);
  assert.match(r.findings[0].text,
    /^CREATE FUNCTION by \S+ at \S+ \(transaction \d+, application 'hotfix-script'\) on public\.user_count\(\), no migration accounts for it: CREATE OR REPLACE FUNCTION user_count\(\)/);
  const id = /domi\.adopt_ddl\('([0-9a-f-]{36})'/.exec(r.findings[0].text)[1];
  const [adopted] = await sql('SELECT domi.adopt_ddl($1, $2) AS ok', [id, 'now in 0001_user_count.sql']);
  assert.equal(adopted.ok, true);
  r = lineage();
  assert.deepEqual(r.codes, []);
  const [row] = await sql('SELECT adopted_by, adopt_note FROM domi.ddl_ledger WHERE id = $1', [id]);
  assert.deepEqual(row, { adopted_by: process.env.PGUSER, adopt_note: 'now in 0001_user_count.sql' });
});

test('drizzle-kit push drops an unmodelled citext column and retypes another: drift says so first', async () => {
  await sql('CREATE EXTENSION citext');
  await sql('ALTER TABLE users ADD COLUMN nick citext');
  let r = lineage();
  assert.equal(r.status, 1, r.out);
  assert.deepEqual(r.codes, ['error drift_unmodelled_type', 'warning out_of_chain_ddl', 'warning out_of_chain_ddl']);
  assert.match(r.findings[0].text, /Column public\.users\.nick is of type public\.citext, which drizzle cannot model \(unmodelled, would be dropped by drizzle-kit push\)/);

  // What the finding warned about: push, auto-approving data loss.
  const pushed = drizzle(['push', '--force', '--dialect=postgresql', '--schema=schema/v2.js',
    `--url=postgresql://${process.env.PGUSER}@localhost/${database}?host=${encodeURIComponent(process.env.PGHOST)}&port=${process.env.PGPORT}`]);
  const cols = await sql(`SELECT attname, format_type(atttypid, atttypmod) AS type FROM pg_attribute
    WHERE attrelid = 'users'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`);
  assert.deepEqual(cols.map((c) => `${c.attname} ${c.type}`),
    ['id integer', 'name character varying(100)', 'email text'], pushed);

  r = lineage();
  assert.equal(r.status, 1, r.out);
  const drift = r.findings.filter((f) => f.code.startsWith('drift_'));
  assert.deepEqual(drift.map((f) => f.code), ['drift_column_type']);
  assert.match(drift[0].text, /Column public\.users\.name is character varying\(100\) in the database but text in the snapshot/);
  // push records no migration: its ALTER TABLE statements are out-of-chain
  const pushRows = await sql(`SELECT statement FROM domi.ddl_ledger
    WHERE command_tag = 'ALTER TABLE' AND NOT in_chain AND statement ~ 'DROP COLUMN "nick"'`);
  assert.equal(pushRows.length, 1, JSON.stringify(await sql('SELECT command_tag, statement FROM domi.ddl_ledger')));
});

test('a password next to DDL in one query string is never stored', async () => {
  await sql('CREATE ROLE ledger_node_role');
  await sql(`ALTER ROLE ledger_node_role PASSWORD 'node-secret-1'; CREATE TABLE pw_neighbour (x int)`);
  await sql(`CREATE TABLE keys_copy AS SELECT domi.secretbox_text('node-secret-2', domi.gen_key()) AS box`);
  const leaked = await sql(`SELECT statement FROM domi.ddl_ledger WHERE statement ~ 'node-secret'`);
  assert.deepEqual(leaked, []);
  const rows = await sql(`SELECT command_tag, statement FROM domi.ddl_ledger
    WHERE command_tag IN ('CREATE TABLE', 'CREATE TABLE AS') ORDER BY at DESC LIMIT 2`);
  assert.deepEqual(rows, [
    { command_tag: 'CREATE TABLE AS', statement: '<redacted>' },
    { command_tag: 'CREATE TABLE', statement: 'CREATE TABLE pw_neighbour (x int)' },
  ]);
  await sql('DROP ROLE ledger_node_role');
});

test.after(async () => {
  await sql(`DROP DATABASE IF EXISTS ${database}`, [], { database: 'postgres' });
});
