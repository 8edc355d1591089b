// domi-lineage, the client, against the drizzle-kit fixtures applied with
// the real "drizzle-kit migrate", edited the way each scenario says; and
// against a hand-made Prisma folder.  Checks what it prints and its exit
// status: 0 no error-level finding, 1 at least one, 2 could not check.
//
// Needs: PG* variables for a server with domi installed, DOMI_LINEAGE (the
// built client), and this folder's packages (npm ci).  scripts/test
// (suite "lineage") sets all of it up.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { Client } = require('pg');

const CLIENT = process.env.DOMI_LINEAGE;
const HERE = __dirname;
const WORK = 'work';			// relative: drizzle-kit prefixes "./" to its out folder

let dbCounter = 0;

async function sql(database, text, params) {
  const client = new Client({ database });
  await client.connect();
  try {
    return await client.query(text, params);
  } finally {
    await client.end();
  }
}

// A fresh database with domi, and a copy of a fixture folder to edit.
async function scenario(fixture) {
  const database = `lineage_${process.pid}_${++dbCounter}`;
  await sql('postgres', `CREATE DATABASE ${database}`);
  await sql(database, 'CREATE EXTENSION domi');
  const dir = path.join(WORK, database);
  fs.rmSync(path.join(HERE, dir), { recursive: true, force: true });
  if (fixture) fs.cpSync(path.join(HERE, 'fixtures', fixture), path.join(HERE, dir), { recursive: true });
  return { database, dir, abs: path.join(HERE, dir) };
}

function run(cmd, args, env) {
  const r = spawnSync(cmd, args, { cwd: HERE, encoding: 'utf8', env: { ...process.env, ...env } });
  if (r.error) throw r.error;
  return r;
}

// drizzle-kit migrate with drizzle.config.ts, for one folder and database.
function migrate(s, extraEnv = {}) {
  const r = run('npx', ['--no-install', 'drizzle-kit', 'migrate'],
    { DOMI_MIGRATIONS: s.dir, PGDATABASE: s.database, ...extraEnv });
  assert.equal(r.status, 0, `drizzle-kit migrate failed:\n${r.stdout}\n${r.stderr}`);
  return r;
}

// domi-lineage; returns its status, finding lines (parsed) and output.
function lineage(s, args = [], env = {}) {
  const r = run(CLIENT, [...args, s.abs ?? s], { PGDATABASE: s.database, ...env });
  const lines = r.stdout.split('\n').filter((l) => l !== '');
  const findings = [];
  for (const line of lines.slice(0, -1)) {
    const m = /^(error|warning|info): ([a-z_]+): (?:([^ :]+): )?(.*)$/.exec(line);
    assert.ok(m, `finding line in the expected form: ${line}`);
    findings.push({ severity: m[1], code: m[2], migration: m[3], text: m[4], line });
  }
  return { status: r.status, findings, stdout: r.stdout, stderr: r.stderr, summary: lines[lines.length - 1] };
}

const codes = (result) => result.findings.map((f) => `${f.severity} ${f.code} ${f.migration ?? '-'}`);
const readJson = (file) => JSON.parse(fs.readFileSync(file, 'utf8'));
const writeJson = (file, value) => fs.writeFileSync(file, JSON.stringify(value, null, 2));

test('clean folder: exit 0 before and after drizzle-kit migrate', async () => {
  const s = await scenario('clean');
  let r = lineage(s);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.deepEqual(codes(r), ['info no_migrations_table -']);
  assert.match(r.summary, /^domi-lineage: 0 errors, 0 warnings, 1 info in /);

  migrate(s);
  r = lineage(s);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.deepEqual(codes(r), []);
  assert.match(r.summary, /^domi-lineage: 0 errors, 0 warnings, 0 info in /);
});

test('placeholder applied, then edited: applied_placeholder, and the SQL really never runs', async () => {
  const s = await scenario('placeholder');
  let r = lineage(s);
  assert.equal(r.status, 0);
  assert.deepEqual(codes(r), ['warning custom_migration_empty 0001_seed', 'info no_migrations_table -']);

  migrate(s);
  r = lineage(s);
  assert.equal(r.status, 0, 'the placeholder as applied matches its record');
  assert.deepEqual(codes(r), ['warning custom_migration_applied_empty 0001_seed']);

  fs.appendFileSync(path.join(s.abs, '0001_seed.sql'), "\nINSERT INTO users (name) VALUES ('admin');\n");
  r = lineage(s);
  assert.equal(r.status, 1, r.stdout);
  assert.deepEqual(codes(r), ['error applied_placeholder 0001_seed']);
  assert.match(r.findings[0].text, /recorded 0001_seed\.sql while it was still drizzle-kit's --custom placeholder.* Fix: Move the SQL of 0001_seed\.sql into a new migration/);

  // The migrator agrees that there is nothing to do: the insert never runs.
  migrate(s);
  const { rows } = await sql(s.database, 'SELECT count(*)::int AS n FROM users');
  assert.equal(rows[0].n, 0, 'drizzle-kit migrate did not run the edited placeholder');
});

test('parallel branches merged: collision and stale custom snapshot, fixed as the findings say', async () => {
  const s = await scenario('collision');
  migrate(s);
  let r = lineage(s);
  assert.equal(r.status, 1, r.stdout);
  assert.deepEqual(codes(r), ['error snapshot_prev_collision 0003_backfill', 'error custom_snapshot_stale 0003_backfill']);

  const meta = path.join(s.abs, 'meta');
  const ids = Object.fromEntries(['0001', '0002', '0003'].map((n) => [n, readJson(path.join(meta, `${n}_snapshot.json`)).id]));
  // Every child and the real parent named, and the exact prevId to set.
  assert.match(r.findings[0].text, new RegExp(`meta/0002_snapshot\\.json \\(0002_user_email\\) and meta/0003_snapshot\\.json \\(0003_backfill\\) both have prevId "${ids['0001']}", the id of meta/0001_snapshot\\.json \\(0001_posts\\)`));
  const fix = /Fix: Set prevId of (meta\/\d+_snapshot\.json) to "([0-9a-f-]+)" \(the id of (meta\/\d+_snapshot\.json)\)/.exec(r.findings[0].text);
  assert.ok(fix, r.findings[0].text);
  assert.deepEqual([fix[1], fix[2], fix[3]], ['meta/0003_snapshot.json', ids['0002'], 'meta/0002_snapshot.json']);
  assert.match(r.findings[1].text, /differs: column public\.users\.email \(only in meta\/0002_snapshot\.json\)/);

  // drizzle-kit itself refuses too (naming a wrong parent file).
  const check = () => run('npx', ['--no-install', 'drizzle-kit', 'check', '--dialect=postgresql', `--out=${s.dir}`]);
  assert.notEqual(check().status, 0, 'drizzle-kit check sees the collision');

  // The fixes, as written: prevId, then the parent's tables.
  const child = readJson(path.join(s.abs, fix[1]));
  child.prevId = fix[2];
  writeJson(path.join(s.abs, fix[1]), child);
  r = lineage(s);
  assert.deepEqual(codes(r), ['error custom_snapshot_stale 0003_backfill']);
  assert.equal(check().status, 0, 'drizzle-kit check is happy with the re-chained snapshots');

  child.tables = readJson(path.join(meta, '0002_snapshot.json')).tables;
  writeJson(path.join(s.abs, fix[1]), child);
  r = lineage(s);
  assert.equal(r.status, 0, r.stdout);
  assert.deepEqual(codes(r), []);
});

test('a merged migration with an earlier "when": drizzle-kit migrate skips it, domi-lineage says so', async () => {
  const s = await scenario('skipped/before');
  migrate(s);
  assert.equal(lineage(s).status, 0);

  // The merge lands: the branch's 0002_tags, generated before 0001_comments.
  fs.rmSync(s.abs, { recursive: true });
  fs.cpSync(path.join(HERE, 'fixtures/skipped/after'), s.abs, { recursive: true });
  let r = lineage(s);
  assert.equal(r.status, 1);
  // The branch's snapshot also lacks main's table comments (it was
  // generated before it): snapshot_stale_after_merge, taken up at the end.
  assert.deepEqual(codes(r), ['error journal_when_not_increasing 0002_tags', 'error pending_skipped_by_migrator 0002_tags',
    'error snapshot_stale_after_merge 0002_tags']);

  // Really skipped: migrate succeeds and creates nothing.
  migrate(s);
  const exists = async () => (await sql(s.database, "SELECT to_regclass('public.tags') IS NOT NULL AS e")).rows[0].e;
  assert.equal(await exists(), false, 'drizzle-kit migrate skipped 0002_tags without a word');
  assert.deepEqual(codes(lineage(s)), codes(r));

  // The fix, as written, and the migrator runs it.
  const fix = /Fix: Set "when" of 0002_tags in meta\/_journal\.json to (\d+) or later\.$/.exec(r.findings[1].text);
  assert.ok(fix, r.findings[1].text);
  const journal = readJson(path.join(s.abs, 'meta/_journal.json'));
  journal.entries[2].when = Number(fix[1]);
  writeJson(path.join(s.abs, 'meta/_journal.json'), journal);
  r = lineage(s);
  assert.deepEqual(codes(r), ['error snapshot_stale_after_merge 0002_tags', 'info pending 0002_tags']);
  migrate(s);
  assert.equal(await exists(), true, 'after the fix drizzle-kit migrate runs 0002_tags');

  // Applied now, so the stale snapshot is mended by copying, as the fix says.
  r = lineage(s);
  assert.deepEqual(codes(r), ['error snapshot_stale_after_merge 0002_tags']);
  applyCopyFix(s, r.findings[0]);
  r = lineage(s);
  assert.equal(r.status, 0, r.stdout);
  assert.deepEqual(codes(r), []);
});

// drizzle-kit generate from a schema file into the scenario's folder; the
// SQL files it wrote (none when it found no change).
function generate(s, schema) {
  const before = new Set(fs.readdirSync(s.abs));
  const r = run('npx', ['--no-install', 'drizzle-kit', 'generate', '--dialect=postgresql',
    `--schema=schema/${schema}.ts`, `--out=${s.dir}`]);
  assert.equal(r.status, 0, `drizzle-kit generate failed:\n${r.stdout}\n${r.stderr}`);
  return fs.readdirSync(s.abs).filter((f) => !before.has(f) && f.endsWith('.sql'))
    .map((f) => ({ name: f, text: fs.readFileSync(path.join(s.abs, f), 'utf8') }));
}

// snapshot_stale_after_merge's fix for an applied migration, done as a
// person reads it: copy each named table or column from the snapshot
// before into the stale one, and set its prevId.
function applyCopyFix(s, finding) {
  const m = /copy into "tables" of (meta\/\d+_snapshot\.json), from (meta\/\d+_snapshot\.json), (.*?) \(a table's whole entry; a column's entry into its table's "columns"\), keeping its id, with prevId "([0-9a-f-]+)"/.exec(finding.text);
  assert.ok(m, finding.text);
  const [, childFile, parentFile, list, prevId] = m;
  const child = readJson(path.join(s.abs, childFile));
  const parent = readJson(path.join(s.abs, parentFile));
  for (const item of list.split(/, | and /)) {
    const [kind, name] = item.split(' ');
    if (kind === 'table') {
      child.tables[name] = parent.tables[name];
    } else {
      const dot = name.lastIndexOf('.');
      const [table, column] = [name.slice(0, dot), name.slice(dot + 1)];
      child.tables[table].columns[column] = parent.tables[table].columns[column];
    }
  }
  child.prevId = prevId;
  writeJson(path.join(s.abs, childFile), child);
}

// Issue 19: two branches each generated a migration from one parent; after
// the merge, setting the second snapshot's prevId (all that drizzle-kit's
// collision asks for) passed drizzle-kit check, and the next generate wrote
// a duplicate ADD COLUMN "archived_at".
async function mergedScenario() {
  const s = await scenario('merged/before');
  migrate(s);
  fs.rmSync(s.abs, { recursive: true });
  fs.cpSync(path.join(HERE, 'fixtures/merged/after'), s.abs, { recursive: true });
  return s;
}

const checkFolder = (s) => run('npx', ['--no-install', 'drizzle-kit', 'check', '--dialect=postgresql', `--out=${s.dir}`]);

test('merged generated migrations, not applied: the fix is to generate again, and the next generate writes nothing', async () => {
  const s = await mergedScenario();
  const meta = path.join(s.abs, 'meta');
  let r = lineage(s);
  assert.equal(r.status, 1, r.stdout);
  assert.deepEqual(codes(r), ['error snapshot_prev_collision 0002_edited', 'error snapshot_stale_after_merge 0002_edited',
    'info pending 0002_edited']);
  // The collision's fix says that re-pointing is not enough, and what to do.
  assert.match(r.findings[0].text, /Fix: Set prevId of meta\/0002_snapshot\.json to "[0-9a-f-]+" \(the id of meta\/0001_snapshot\.json\), so that the snapshots form one chain in journal order\. But meta\/0002_snapshot\.json lacks column public\.conversations\.archived_at of meta\/0001_snapshot\.json, .* if 0002_edited is applied in no database, delete 0002_edited\.sql, meta\/0002_snapshot\.json and the entry of 0002_edited in meta\/_journal\.json, and run drizzle-kit generate again .* instead of setting its prevId/);
  assert.match(r.findings[1].text, /lacks column public\.conversations\.archived_at\./);

  // What the team did: only the prevId.  drizzle-kit check is satisfied,
  // domi-lineage is not, and the next generate proves it right.
  const saved = Object.fromEntries(['0002_snapshot.json', '_journal.json'].map((f) => [f, fs.readFileSync(path.join(meta, f))]));
  const child = readJson(path.join(meta, '0002_snapshot.json'));
  child.prevId = readJson(path.join(meta, '0001_snapshot.json')).id;
  writeJson(path.join(meta, '0002_snapshot.json'), child);
  assert.equal(checkFolder(s).status, 0, 'drizzle-kit check sees nothing wrong');
  r = lineage(s);
  assert.equal(r.status, 1, r.stdout);
  assert.deepEqual(codes(r), ['error snapshot_stale_after_merge 0002_edited', 'info pending 0002_edited']);
  const duplicate = generate(s, 'chat-both');
  assert.equal(duplicate.length, 1);
  assert.match(duplicate[0].text, /ADD COLUMN "archived_at"/, 'the stale snapshot makes generate add archived_at again');
  // Undo that generate and the prevId edit.
  for (const f of fs.readdirSync(meta)) if (!['0000_snapshot.json', '0001_snapshot.json'].includes(f)) fs.rmSync(path.join(meta, f));
  fs.rmSync(path.join(s.abs, duplicate[0].name));
  for (const [f, text] of Object.entries(saved)) fs.writeFileSync(path.join(meta, f), text);
  assert.deepEqual(codes(lineage(s)), ['error snapshot_prev_collision 0002_edited', 'error snapshot_stale_after_merge 0002_edited',
    'info pending 0002_edited']);

  // The fix of snapshot_stale_after_merge, as written for a migration not applied.
  r = lineage(s);
  const fix = /Fix: It is not applied here; if no other database has applied it either: delete (\S+\.sql), (meta\/\S+\.json) and the entry of (\S+) in meta\/_journal\.json, and run drizzle-kit generate again/.exec(r.findings[1].text);
  assert.ok(fix, r.findings[1].text);
  fs.rmSync(path.join(s.abs, fix[1]));
  fs.rmSync(path.join(s.abs, fix[2]));
  const journal = readJson(path.join(meta, '_journal.json'));
  journal.entries = journal.entries.filter((e) => e.tag !== fix[3]);
  writeJson(path.join(meta, '_journal.json'), journal);
  const regenerated = generate(s, 'chat-both');
  assert.equal(regenerated.length, 1);
  assert.match(regenerated[0].text, /ADD COLUMN "edited_at"/);
  assert.doesNotMatch(regenerated[0].text, /archived_at/);
  const tag = regenerated[0].name.replace(/\.sql$/, '');
  assert.deepEqual(codes(lineage(s)), [`info pending ${tag}`]);

  migrate(s);
  assert.deepEqual(generate(s, 'chat-both'), [], 'the next drizzle-kit generate writes no migration');
  r = lineage(s);
  assert.equal(r.status, 0, r.stdout);
  assert.deepEqual(codes(r), []);
});

test('merged generated migrations, both applied: the fix is to copy what the snapshot lacks, and the next generate writes nothing', async () => {
  const s = await mergedScenario();
  migrate(s);
  let r = lineage(s);
  assert.equal(r.status, 1, r.stdout);
  assert.deepEqual(codes(r), ['error snapshot_prev_collision 0002_edited', 'error snapshot_stale_after_merge 0002_edited']);
  assert.match(r.findings[1].text, /Fix: It is applied, so keep it and copy into "tables" of meta\/0002_snapshot\.json, from meta\/0001_snapshot\.json, column public\.conversations\.archived_at /);

  applyCopyFix(s, r.findings[1]);
  r = lineage(s);
  assert.equal(r.status, 0, r.stdout);
  assert.deepEqual(codes(r), []);
  assert.equal(checkFolder(s).status, 0);
  assert.deepEqual(generate(s, 'chat-both'), [], 'the next drizzle-kit generate writes no migration');
});

test('--fail-on warning: a pending empty --custom placeholder fails the check', async () => {
  const s = await scenario('placeholder');
  let r = lineage(s);
  assert.equal(r.status, 0, 'warnings do not fail by default');
  assert.deepEqual(codes(r), ['warning custom_migration_empty 0001_seed', 'info no_migrations_table -']);
  r = lineage(s, ['--fail-on', 'warning']);
  assert.equal(r.status, 1, r.stdout);
  assert.deepEqual(codes(r), ['warning custom_migration_empty 0001_seed', 'info no_migrations_table -']);
  assert.equal(lineage(s, ['--fail-on', 'error']).status, 0);
  // Once its SQL is written, the warning is gone and so is the failure.
  fs.appendFileSync(path.join(s.abs, '0001_seed.sql'), "\nINSERT INTO users (name) VALUES ('admin');\n");
  r = lineage(s, ['--fail-on', 'warning']);
  assert.equal(r.status, 0, r.stdout);
  for (const args of [['--fail-on', 'info'], ['--fail-on'], ['--max-findings', '-1'], ['--max-findings', 'x']]) {
    const bad = run(CLIENT, [...args, s.abs], { PGDATABASE: s.database });
    assert.equal(bad.status, 2, `${args.join(' ')}: ${bad.stdout}${bad.stderr}`);
    assert.match(bad.stderr, /Usage: domi-lineage/);
  }
});

test('many findings: a few listed per code, a summary row for the rest, and totals that count them all', async () => {
  const s = await scenario('clean');
  const journal = readJson(path.join(s.abs, 'meta/_journal.json'));
  const last = journal.entries[journal.entries.length - 1];
  for (let i = 1; i <= 150; i++) {
    journal.entries.push({ ...last, idx: last.idx + i, when: last.when + i, tag: `${String(last.idx + i).padStart(4, '0')}_lost` });
  }
  writeJson(path.join(s.abs, 'meta/_journal.json'), journal);
  let r = lineage(s, ['--max-findings', '5']);
  assert.equal(r.status, 1);
  const missing = r.findings.filter((f) => f.code === 'migration_file_missing');
  assert.equal(missing.length, 6);
  assert.equal(missing[5].migration, undefined);
  assert.match(missing[5].text, /^145 more migration_file_missing findings left out: only the first 5 of 150 are listed\./);
  assert.equal(r.findings.filter((f) => f.code === 'snapshot_missing').length, 6);
  assert.match(r.summary, /^domi-lineage: 150 errors, 150 warnings, 1 info in /);
  // The default: 100 listed.
  r = lineage(s);
  assert.equal(r.findings.filter((f) => f.code === 'migration_file_missing').length, 101);
  assert.match(r.summary, /^domi-lineage: 150 errors, 150 warnings, 1 info in /);
});

test('edited after it ran, and a row applied from elsewhere', async () => {
  const s = await scenario('clean');
  migrate(s);
  await sql(s.database, "INSERT INTO drizzle.__drizzle_migrations (hash, created_at) VALUES ($1, 1700000000000)",
    [crypto.createHash('sha256').update('ALTER TABLE users ADD COLUMN hotfix int;').digest('hex')]);
  let r = lineage(s);
  assert.equal(r.status, 0, 'a warning alone does not fail the check');
  assert.deepEqual(codes(r), ['warning applied_unknown -']);

  fs.appendFileSync(path.join(s.abs, '0001_posts.sql'), '\nCREATE INDEX ON posts (title);');
  r = lineage(s);
  assert.equal(r.status, 1);
  assert.deepEqual(codes(r), ['error applied_hash_mismatch 0001_posts', 'warning applied_unknown -']);
});

test('--migrations-table: drizzle-kit configured with another table', async () => {
  const s = await scenario('clean');
  migrate(s, { DOMI_MIGRATIONS_TABLE: 'app_migrations', DOMI_MIGRATIONS_SCHEMA: 'public' });
  assert.deepEqual(codes(lineage(s)), ['info no_migrations_table -']);
  fs.appendFileSync(path.join(s.abs, '0000_init.sql'), '\n-- edited');
  const r = lineage(s, ['--migrations-table', 'public.app_migrations']);
  assert.equal(r.status, 1);
  assert.deepEqual(codes(r), ['error applied_hash_mismatch 0000_init']);
});

test('exit 2 when it cannot check', async () => {
  const s = await scenario('clean');
  const cases = [
    [[], {}, /Usage: domi-lineage/],
    [['--no-such-option', s.abs], {}, /Usage: domi-lineage/],
    [[path.join(s.abs, 'missing')], {}, /could not check: ".*missing" is not a directory/],
    [[path.join(s.abs, 'meta', '..', '..')], {}, /holds no migration files/],
    [[s.abs], { PGPORT: '1' }, /could not check: .*(connect|connection)/],
    [['--migrations-table', 'no_such_table', s.abs], {}, /could not check: .*no_such_table.* does not exist/],
    [[s.abs], { PGDATABASE: 'postgres' }, /the domi extension is not installed in this database/],
    [['-d', 'dbname=no_such_database', s.abs], {}, /could not check: .*no_such_database/],
  ];
  for (const [args, env, expected] of cases) {
    const r = run(CLIENT, args, { PGDATABASE: s.database, ...env });
    assert.equal(r.status, 2, `exit 2 for ${JSON.stringify(args)} ${JSON.stringify(env)}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, expected);
    assert.equal(r.stdout, '', 'nothing on stdout when it could not check');
  }
  // -d with a connection string reaches the right database.
  const r = run(CLIENT, ['-d', `dbname=${s.database}`, s.abs], { PGDATABASE: 'postgres' });
  assert.equal(r.status, 0, r.stderr);
});

test('a file that is not valid UTF-8: hashed as drizzle-orm reads it (U+FFFD), as drizzle-kit migrate recorded it', async () => {
  const s = await scenario('clean');
  const file = path.join(s.abs, '0000_init.sql');
  // In a comment: Latin-1 "é", a truncated three-byte sequence, a lone
  // continuation byte.
  fs.writeFileSync(file, Buffer.concat([Buffer.from('-- caf'), Buffer.from([0xe9, 0x20, 0xe2, 0x82, 0x20, 0x80, 0x0a]), fs.readFileSync(file)]));
  migrate(s);
  let r = lineage(s);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.deepEqual(codes(r), []);
  fs.appendFileSync(file, '\n-- edited');
  r = lineage(s);
  assert.equal(r.status, 1, r.stdout + r.stderr);
  assert.deepEqual(codes(r), ['error applied_hash_mismatch 0000_init']);
});

test('files that are not regular are skipped without blocking; a NUL byte, a huge folder or an unreadable one exit 2', async () => {
  const s = await scenario('clean');
  const spawn = (args) => spawnSync(CLIENT, args, { cwd: HERE, encoding: 'utf8', timeout: 30000, env: { ...process.env, PGDATABASE: s.database } });
  // A FIFO named like a migration (opening it to read would wait for a writer).
  assert.equal(spawnSync('mkfifo', [path.join(s.abs, '0003_fifo.sql')]).status, 0);
  let r = spawn([s.abs]);
  assert.equal(r.error, undefined, 'domi-lineage did not block on the FIFO');
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /^domi-lineage: 0 errors, 0 warnings, 1 info in /m);
  fs.rmSync(path.join(s.abs, '0003_fifo.sql'));
  // A folder whose name starts with "-", after "--".
  fs.renameSync(s.abs, path.join(HERE, WORK, '-dash'));
  r = spawnSync(CLIENT, ['--', '-dash'], { cwd: path.join(HERE, WORK), encoding: 'utf8', timeout: 30000, env: { ...process.env, PGDATABASE: s.database } });
  fs.renameSync(path.join(HERE, WORK, '-dash'), s.abs);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /^domi-lineage: 0 errors, 0 warnings, 1 info in -dash$/m);

  const cases = [
    ['0000_init.sql', (f) => fs.writeFileSync(f, 'SELECT 1;\0'), /could not check: ".*0000_init\.sql" contains a NUL byte/],
    ['0009_big.sql', (f) => fs.truncateSync(f, 300 * 1024 * 1024), /could not check: the files in .* total more than 268435455 bytes/],
  ];
  for (const [name, make, expected] of cases) {
    const f = path.join(s.abs, name);
    const saved = fs.existsSync(f) ? fs.readFileSync(f) : null;
    if (!saved) fs.writeFileSync(f, '');
    make(f);
    r = spawn([s.abs]);
    assert.equal(r.status, 2, `${name}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, expected);
    assert.equal(r.stdout, '');
    if (saved) fs.writeFileSync(f, saved); else fs.rmSync(f);
  }
  // An unreadable meta/ is not a missing journal (root reads it anyway).
  if (process.getuid() !== 0) {
    fs.chmodSync(path.join(s.abs, 'meta'), 0o000);
    r = spawn([s.abs]);
    fs.chmodSync(path.join(s.abs, 'meta'), 0o755);
    assert.equal(r.status, 2, r.stdout + r.stderr);
    assert.match(r.stderr, /could not check: cannot read directory ".*meta": Permission denied/);
  }
});

// Prisma: the CLI needs its engines from the internet, so the folder is
// hand-made and applied here as "prisma migrate deploy" does: the SQL, and a
// row with the sha256 of migration.sql.
const PRISMA_DDL = `CREATE TABLE "_prisma_migrations" (
  "id" VARCHAR(36) NOT NULL,
  "checksum" VARCHAR(64) NOT NULL,
  "finished_at" TIMESTAMPTZ,
  "migration_name" VARCHAR(255) NOT NULL,
  "logs" TEXT,
  "rolled_back_at" TIMESTAMPTZ,
  "started_at" TIMESTAMPTZ NOT NULL DEFAULT now(),
  "applied_steps_count" INTEGER NOT NULL DEFAULT 0,
  CONSTRAINT "_prisma_migrations_pkey" PRIMARY KEY ("id")
)`;

async function prismaDeploy(s, names) {
  await sql(s.database, PRISMA_DDL);
  for (const name of names) {
    const script = fs.readFileSync(path.join(s.abs, name, 'migration.sql'), 'utf8');
    await sql(s.database, script);
    await sql(s.database, `INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name, applied_steps_count)
      VALUES ($1, $2, now(), $3, 1)`, [crypto.randomUUID(), crypto.createHash('sha256').update(script).digest('hex'), name]);
  }
}

test('Prisma: clean, CRLF checkout, failed migration, edited, missing locally', async () => {
  const s = await scenario(null);
  fs.cpSync(path.join(HERE, 'prisma/migrations'), s.abs, { recursive: true });
  const names = fs.readdirSync(s.abs).filter((n) => n !== 'migration_lock.toml').sort();
  await prismaDeploy(s, names.slice(0, 2));
  let r = lineage(s, ['--prisma']);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.deepEqual(codes(r), [`info pending ${names[2]}`]);

  // A checkout with CRLF line endings still matches.
  const first = path.join(s.abs, names[0], 'migration.sql');
  fs.writeFileSync(first, fs.readFileSync(first, 'utf8').replace(/\n/g, '\r\n'));
  assert.deepEqual(codes(lineage(s, ['--prisma'])), [`info pending ${names[2]}`]);

  // The third started and failed; the second was edited; a fourth ran
  // elsewhere.
  await sql(s.database, `INSERT INTO _prisma_migrations (id, checksum, migration_name) VALUES ('f1', $1, $2)`, ['0'.repeat(64), names[2]]);
  await sql(s.database, `INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name) VALUES ('e1', $1, now(), '20990101000000_elsewhere')`, ['1'.repeat(64)]);
  fs.appendFileSync(path.join(s.abs, names[1], 'migration.sql'), '\n-- edited\n');
  r = lineage(s, ['--prisma']);
  assert.equal(r.status, 1);
  assert.deepEqual(codes(r), [
    `error prisma_checksum_mismatch ${names[1]}`,
    `error prisma_failed_migration ${names[2]}`,
    'error prisma_applied_missing_locally 20990101000000_elsewhere',
  ]);
  assert.match(r.findings[1].text, new RegExp(`prisma migrate resolve --rolled-back ${names[2]}`));

  // Prisma's engine cannot read a migration.sql that is not UTF-8.
  fs.appendFileSync(path.join(s.abs, names[0], 'migration.sql'), Buffer.from([0x2d, 0x2d, 0x20, 0xe9, 0x0a]));
  r = lineage(s, ['--prisma']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, new RegExp(`could not check: ".*${names[0]}/migration\\.sql" is not valid UTF-8`));
});
