// The JavaScript domi-lineage (dist/cli.js) and lineageCheck() on folders
// that real drizzle-kit generate and migrate made: exit codes 0 / 1 / 2 as
// the C client's, --fail-on warning, DATABASE_URL; and, when the C client
// is built (DOMI_LINEAGE), the same output from both.
import test from 'node:test';
import assert from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Client } from 'pg';
import { lineageCheck, LineageCheckError } from '@domi/drizzle';
import { PKG, createDatabase, drizzleKit, migrateApp, readMigration, sqlFiles, url, writeMigration } from './helpers';

const DB = 'drizzle_lineage';
const BIN = path.join(PKG, 'dist', 'cli.js');
const C_CLIENT = process.env.DOMI_LINEAGE;
let out: string;

interface Run { status: number | null; stdout: string; stderr: string }

// The environment of a CI job that has only DATABASE_URL: no PG* variables.
function ciEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
	const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
	for (const v of ['PGHOST', 'PGPORT', 'PGUSER', 'PGDATABASE']) delete env[v];
	return env;
}

function jsLineage(args: string[], databaseUrl = url(DB, 'migrator')): Run {
	const r = spawnSync(process.execPath, [BIN, ...args], {
		cwd: PKG, encoding: 'utf8', timeout: 60000, env: ciEnv({ DATABASE_URL: databaseUrl }),
	});
	if (r.error) throw r.error;
	return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

// The C client, given the same database with -d; null when it is not built.
function cLineage(args: string[], databaseUrl = url(DB, 'migrator')): Run | null {
	if (!C_CLIENT || !fs.existsSync(C_CLIENT)) return null;
	const r = spawnSync(C_CLIENT, ['-d', databaseUrl, ...args], { cwd: PKG, encoding: 'utf8', timeout: 60000, env: ciEnv() });
	if (r.error) throw r.error;
	return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function sameAsC(js: Run, args: string[]): void {
	const c = cLineage(args);
	if (c === null) return;
	assert.strictEqual(js.stdout, c.stdout, 'the same findings as the C client');
	assert.strictEqual(js.status, c.status, 'the same exit status as the C client');
}

test.before(async () => {
	await createDatabase(DB);
	out = migrateApp(DB, 'lineage');
});

test('a folder as drizzle-kit migrate applied it: exit 0, connecting with DATABASE_URL alone', () => {
	const r = jsLineage([out]);
	assert.strictEqual(r.status, 0, r.stdout + r.stderr);
	assert.strictEqual(r.stdout, `domi-lineage: 0 errors, 0 warnings, 0 info in ${out}\n`);
	sameAsC(r, [out]);
	assert.strictEqual(jsLineage(['--fail-on', 'warning', out]).status, 0);
});

test('lineageCheck() returns the findings', async () => {
	const client = new Client({ connectionString: url(DB, 'migrator') });
	await client.connect();
	try {
		const result = await lineageCheck(client, path.join(PKG, out));
		assert.deepStrictEqual(result, { findings: [], errors: 0, warnings: 0, infos: 0 });
		await assert.rejects(lineageCheck(client, path.join(PKG, 'no-such-folder')), LineageCheckError);
	} finally {
		await client.end();
	}
});

test('an empty --custom placeholder: exit 0 by default, 1 with --fail-on warning', () => {
	const r0 = drizzleKit(['generate', '--custom', '--name', 'backfill'],
		{ DOMI_SCHEMA: './test/schema/app.ts', DOMI_OUT: out, DOMI_URL: url(DB, 'migrator') });
	assert.strictEqual(r0.status, 0, r0.output);
	assert.deepStrictEqual(sqlFiles(out).slice(-1), ['0002_backfill.sql']);
	let r = jsLineage([out]);
	assert.strictEqual(r.status, 0, r.stdout + r.stderr);
	assert.match(r.stdout, /^warning: custom_migration_empty: 0002_backfill: /m);
	assert.match(r.stdout, /domi-lineage: 0 errors, 1 warning, 1 info in /);
	sameAsC(r, [out]);
	r = jsLineage(['--fail-on', 'warning', out]);
	assert.strictEqual(r.status, 1, r.stdout + r.stderr);
	assert.match(r.stdout, /^warning: custom_migration_empty: 0002_backfill: /m);
	// written: a pending migration, no warning any more
	writeMigration(out, '0002_backfill.sql', `UPDATE invoices SET customer = initcap(customer);\n`);
	r = jsLineage(['--fail-on', 'warning', out]);
	assert.strictEqual(r.status, 0, r.stdout);
	assert.match(r.stdout, /^info: pending: 0002_backfill: /m);
});

test('an applied migration edited afterwards: exit 1, naming it', () => {
	const file = sqlFiles(out)[1];
	const text = readMigration(out, file);
	writeMigration(out, file, text + `\n--> statement-breakpoint\nSELECT domi.enable_tenant_rls('tenants', 'id');\n`);
	try {
		const r = jsLineage([out]);
		assert.strictEqual(r.status, 1, r.stdout + r.stderr);
		assert.match(r.stdout, /^error: applied_hash_mismatch: 0001_domi_isolation: /m);
		assert.match(r.stdout, /domi-lineage: 1 error, /);
		sameAsC(r, [out]);
	} finally {
		writeMigration(out, file, text);
	}
});

test('could not check: exit 2 (no connection, no folder, no domi, bad arguments)', () => {
	// a port nothing listens on
	let r = jsLineage([out], url(DB, 'migrator', '1'));
	assert.strictEqual(r.status, 2, r.stdout + r.stderr);
	assert.match(r.stderr, /^domi-lineage: could not check: /);
	assert.strictEqual(r.stdout, '');
	r = jsLineage([path.join(out, 'no-such-folder')]);
	assert.strictEqual(r.status, 2);
	assert.match(r.stderr, /is not a directory/);
	const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'domi-empty-'));
	r = jsLineage([empty]);
	assert.strictEqual(r.status, 2);
	assert.match(r.stderr, /holds no migration files/);
	fs.rmSync(empty, { recursive: true });
	r = jsLineage([out], url('postgres'));
	assert.strictEqual(r.status, 2);
	assert.match(r.stderr, /the domi extension is not installed in this database/);
	assert.strictEqual(jsLineage(['--fail-on', 'info', out]).status, 2);
	assert.strictEqual(jsLineage([]).status, 2);
	assert.strictEqual(jsLineage(['--help']).status, 0);
});

// The files as the C client (and drizzle-orm's migrator) read them: an
// ill-formed UTF-8 sequence becomes U+FFFD, a FIFO named like a migration is
// skipped rather than waited on, a NUL byte stops the check.
test('odd files: read as the C client reads them', () => {
	const copy = path.join('.test-build', 'work', 'lineage-odd');
	fs.rmSync(path.join(PKG, copy), { recursive: true, force: true });
	fs.cpSync(path.join(PKG, out), path.join(PKG, copy), { recursive: true });
	fs.writeFileSync(path.join(PKG, copy, '0009_latin1.sql'), Buffer.from('SELECT 1; -- caf\xe9 \xff\xfe\n', 'latin1'));
	assert.strictEqual(spawnSync('mkfifo', [path.join(PKG, copy, '0010_fifo.sql')]).status, 0);
	let r = jsLineage([copy]);
	assert.strictEqual(r.status, 1, r.stdout + r.stderr);
	assert.match(r.stdout, /^error: migration_not_in_journal: .*0009_latin1/m);
	assert.doesNotMatch(r.stdout, /0010_fifo/);
	sameAsC(r, [copy]);
	fs.writeFileSync(path.join(PKG, copy, '0011_nul.sql'), Buffer.from('SELECT 1;\0\n'));
	r = jsLineage([copy]);
	assert.strictEqual(r.status, 2);
	assert.match(r.stderr, /0011_nul\.sql" contains a NUL byte/);
	const c = cLineage([copy]);
	if (c !== null) assert.deepStrictEqual([r.status, r.stderr], [c.status, c.stderr]);
	fs.rmSync(path.join(PKG, copy), { recursive: true, force: true });
});

test('installable from npm pack: the package and its domi-lineage bin', () => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'domi-pack-'));
	try {
		const npm = (args: string[], cwd: string) => {
			const r = spawnSync('npm', args, { cwd, encoding: 'utf8', timeout: 180000, env: process.env });
			assert.strictEqual(r.status, 0, `npm ${args.join(' ')}:\n${r.stdout}\n${r.stderr}`);
			return r.stdout;
		};
		const tarball = npm(['pack', '--silent', '--ignore-scripts', '--pack-destination', dir], PKG).trim().split('\n').pop()!;
		fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'app', private: true }));
		npm(['install', '--prefer-offline', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error', path.join(dir, tarball)], dir);
		const api = spawnSync(process.execPath, ['-e',
			`const d = require('@domi/drizzle'); console.log(['withTenant', 'enterTenant', 'bytea', 'encryptText', 'decryptText', 'domiTenantPolicy', 'lineageCheck'].map((k) => typeof d[k]).join(' '))`],
		{ cwd: dir, encoding: 'utf8' });
		assert.strictEqual(api.stdout.trim(), Array(7).fill('function').join(' '), api.stderr);
		const bin = spawnSync(path.join(dir, 'node_modules', '.bin', 'domi-lineage'), [path.join(PKG, out)],
			{ cwd: dir, encoding: 'utf8', env: ciEnv({ DATABASE_URL: url(DB, 'migrator') }) });
		assert.strictEqual(bin.status, 0, bin.stdout + bin.stderr);
		assert.match(bin.stdout, /domi-lineage: 0 errors, 0 warnings, 1 info in /);
	} finally {
		fs.rmSync(dir, { recursive: true, force: true });
	}
});

// The Prisma folder of test/lineage (scripts/test passes its path): the
// JavaScript client reads it as the C client does.
test('--prisma: the same findings as the C client', (t) => {
	const fixtures = process.env.DOMI_PRISMA_FIXTURES;
	if (!fixtures || !fs.existsSync(fixtures)) {
		t.skip('DOMI_PRISMA_FIXTURES is not set');
		return;
	}
	const r = jsLineage(['--prisma', fixtures]);
	assert.strictEqual(r.status, 0, r.stdout + r.stderr);
	assert.match(r.stdout, /^info: no_migrations_table: /m);
	assert.match(r.stdout, /^domi-lineage: 0 errors, 0 warnings, \d+ info in /m);
	sameAsC(r, ['--prisma', fixtures]);
});
