// The chat service end to end: a fresh database set up as db/setup.sql says,
// the committed migrations applied with drizzle-kit migrate as the migrator
// and checked with domi-lineage, then the real server (dist/src/main.js,
// connected as app_user) answering real HTTP requests.
// PGHOST (the socket directory), PGPORT and PGUSER (a superuser) name the
// cluster, which has domi preloaded and a keyring root key.
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { Client } from 'pg';

const ROOT = path.resolve(__dirname, '..', '..');   // examples/chat (the tests run from dist/test)
const BIN = path.join(ROOT, 'node_modules', '.bin');
const DB = 'chat_test';

function url(database: string, user = process.env.PGUSER ?? 'postgres'): string {
	const host = encodeURIComponent(process.env.PGHOST ?? 'localhost');
	return `postgresql://${user}@localhost/${database}?host=${host}&port=${process.env.PGPORT ?? '5432'}`;
}

async function sql(text: string, params: unknown[] = [], user?: string, database = DB): Promise<any[]> {
	const client = new Client({ connectionString: url(database, user) });
	await client.connect();
	try {
		return (await client.query(text, params)).rows;
	} finally {
		await client.end();
	}
}

function run(bin: string, args: string[], env: Record<string, string>) {
	const r = spawnSync(path.join(BIN, bin), args, { cwd: ROOT, encoding: 'utf8', timeout: 120000, env: { ...process.env, ...env } });
	return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

let server: ChildProcess;
let base = '';

async function call(method: string, route: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: any }> {
	const res = await fetch(base + route, {
		method, headers: { 'content-type': 'application/json', ...headers },
		body: body === undefined ? undefined : JSON.stringify(body),
	});
	return { status: res.status, json: await res.json() };
}

const as = (token: string, tenant?: string) => ({ authorization: `Bearer ${token}`, ...(tenant ? { 'x-tenant-id': tenant } : {}) });

let lineageBefore: ReturnType<typeof run>;
let migrate: ReturnType<typeof run>;
let lineageAfter: ReturnType<typeof run>;

before(async () => {
	await sql(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`, [], undefined, 'postgres');
	await sql(`CREATE DATABASE ${DB}`, [], undefined, 'postgres');
	await sql(fs.readFileSync(path.join(ROOT, 'db', 'setup.sql'), 'utf8'));
	const asMigrator = { DATABASE_URL: url(DB, 'migrator') };
	lineageBefore = run('domi-lineage', ['--fail-on', 'warning', 'drizzle'], asMigrator);
	migrate = run('drizzle-kit', ['migrate'], asMigrator);
	lineageAfter = run('domi-lineage', ['--fail-on', 'warning', 'drizzle'], asMigrator);
	await sql(fs.readFileSync(path.join(ROOT, 'db', 'configure.sql'), 'utf8'));

	server = spawn(process.execPath, [path.join(ROOT, 'dist', 'src', 'main.js')], {
		env: { ...process.env, APP_DATABASE_URL: url(DB, 'app_user'), SESSION_SECRET: 'test secret', PORT: '0' },
		stdio: ['ignore', 'pipe', 'inherit'],
	});
	base = await new Promise<string>((resolve, reject) => {
		server.once('exit', (code) => reject(new Error(`the server exited (${code})`)));
		server.stdout!.on('data', (chunk: Buffer) => {
			const m = chunk.toString().match(/listening on (http:\S+)/);
			if (m) resolve(m[1]);
		});
	});
});

after(async () => {
	server?.kill('SIGTERM');
});

test('the committed migrations apply with drizzle-kit migrate, and domi-lineage finds nothing wrong', async () => {
	assert.equal(lineageBefore.status, 0, lineageBefore.output);
	assert.equal(migrate.status, 0, migrate.output);
	assert.equal(lineageAfter.status, 0, lineageAfter.output);
	const [{ n }] = await sql('SELECT count(*)::int AS n FROM drizzle.__drizzle_migrations');
	assert.equal(n, fs.readdirSync(path.join(ROOT, 'drizzle')).filter((f) => f.endsWith('.sql')).length);
	// The committed migrations are what drizzle-kit makes of src/schema.ts.
	const generate = run('drizzle-kit', ['generate'], { DATABASE_URL: url(DB, 'migrator') });
	assert.equal(generate.status, 0, generate.output);
	assert.match(generate.output, /No schema changes, nothing to migrate/);
	const isolated = await sql('SELECT table_name FROM domi.isolated_tables ORDER BY 1');
	assert.deepEqual(isolated.map((r) => r.table_name), ['memberships', 'messages', 'tenants', 'threads']);
});

let alice = '', bob = '', tenantA = '', tenantB = '', threadA = 0;

test('sign-up and sign-in: domi.enter_tenant resolves each user\'s tenant', async () => {
	for (const [user, tenant] of [['alice', 'Acme'], ['bob', 'Globex']]) {
		const r = await call('POST', '/signup', { user, name: user, password: `${user}-pw`, tenant });
		assert.equal(r.status, 201, JSON.stringify(r.json));
	}
	let r = await call('POST', '/signin', { user: 'alice', password: 'alice-pw' });
	assert.equal(r.status, 200, JSON.stringify(r.json));
	assert.equal(r.json.tenant.name, 'Acme');
	[alice, tenantA] = [r.json.token, r.json.tenant.id];
	r = await call('POST', '/signin', { user: 'bob', password: 'bob-pw' });
	assert.equal(r.json.tenant.name, 'Globex');
	[bob, tenantB] = [r.json.token, r.json.tenant.id];
	assert.notEqual(tenantA, tenantB);
	assert.equal((await call('POST', '/signin', { user: 'bob', password: 'wrong' })).status, 401);
	// bob names alice's tenant at sign-in: not a member.
	assert.equal((await call('POST', '/signin', { user: 'bob', password: 'bob-pw', tenant: tenantA })).status, 401);
	// The app's connections are app_user's: neither superuser nor BYPASSRLS.
	const roles = await sql(`SELECT DISTINCT a.usename, r.rolsuper, r.rolbypassrls FROM pg_stat_activity a
		JOIN pg_roles r ON r.rolname = a.usename WHERE a.datname = $1 AND a.usename <> current_user`, [DB]);
	assert.deepEqual(roles, [{ usename: 'app_user', rolsuper: false, rolbypassrls: false }]);
});

test('a message written in one tenant is invisible to the other, and stored encrypted', async () => {
	let r = await call('POST', '/threads', { title: 'launch' }, as(alice));
	assert.equal(r.status, 201);
	threadA = r.json.id;
	r = await call('POST', `/threads/${threadA}/messages`, { body: 'the launch code is 0000' }, as(alice));
	assert.equal(r.status, 201);
	r = await call('GET', `/threads/${threadA}/messages`, undefined, as(alice));
	assert.equal(r.status, 200);
	assert.deepEqual(r.json.map((m: any) => [m.author, m.body]), [['alice', 'the launch code is 0000']]);

	assert.deepEqual((await call('GET', '/threads', undefined, as(bob))).json, []);
	assert.equal((await call('GET', `/threads/${threadA}/messages`, undefined, as(bob))).status, 404);
	assert.equal((await call('POST', `/threads/${threadA}/messages`, { body: 'hi' }, as(bob))).status, 404);

	// On disk: ciphertext, not the text.
	const rows = await sql('SELECT body FROM messages');
	assert.equal(rows.length, 1);
	assert.ok(!rows[0].body.toString('latin1').includes('launch code'));
});

test('a forged tenant (header, token or body) is refused and writes nothing', async () => {
	const count = async () => (await sql('SELECT count(*)::int AS n FROM messages'))[0].n;
	const before = await count();
	// bob names alice's tenant: domi.enter_tenant refuses (42501).
	let r = await call('GET', '/threads', undefined, as(bob, tenantA));
	assert.equal(r.status, 403);
	r = await call('POST', `/threads/${threadA}/messages`, { body: 'forged' }, as(bob, tenantA));
	assert.equal(r.status, 403);
	assert.equal((await call('GET', '/threads', undefined, as(bob, 'not-a-uuid'))).status, 400);
	// A token for alice made without the secret.
	const forged = `${Buffer.from('alice').toString('base64url')}.${bob.split('.')[1]}`;
	assert.equal((await call('GET', '/threads', undefined, as(forged))).status, 401);
	assert.equal(await count(), before);
	// A tenant id in the body is not a way in either: the app takes the
	// tenant from the transaction, so bob's thread lands in bob's tenant.
	r = await call('POST', '/threads', { title: 'mine', tenantId: tenantA, tenant_id: tenantA }, as(bob));
	assert.equal(r.status, 201);
	const [{ tenant_id }] = await sql('SELECT tenant_id FROM threads WHERE id = $1', [r.json.id]);
	assert.equal(tenant_id, tenantB);
	assert.equal((await call('POST', `/threads/${r.json.id}/messages`, { body: 'bob was here' }, as(bob))).status, 201);
	assert.deepEqual((await call('GET', `/threads/${r.json.id}/messages`, undefined, as(alice))).status, 404);
	assert.deepEqual((await call('GET', '/threads', undefined, as(alice))).json.map((t: any) => t.title), ['launch']);
});

test('a member of two tenants picks one with X-Tenant-Id, checked by domi', async () => {
	assert.equal((await call('POST', '/signup', { user: 'carol', name: 'Carol', password: 'carol-pw', tenant: 'Initech' })).status, 201);
	const carol = (await call('POST', '/signin', { user: 'carol', password: 'carol-pw' })).json.token;
	assert.equal((await call('GET', '/threads', undefined, as(carol, tenantA))).status, 403);
	assert.equal((await call('POST', '/members', { user: 'carol' }, as(alice))).status, 201);
	assert.deepEqual((await call('GET', '/threads', undefined, as(carol))).json, []);   // her first tenant
	const r = await call('GET', `/threads/${threadA}/messages`, undefined, as(carol, tenantA));
	assert.equal(r.status, 200);
	assert.equal(r.json[0].body, 'the launch code is 0000');
});

test('domi.assert_isolation proves every tenant table isolated for app_user', async () => {
	for (const [table, column] of [['tenants', 'id'], ['memberships', 'tenant_id'], ['threads', 'tenant_id'], ['messages', 'tenant_id']]) {
		const checks = await sql('SELECT check_name, passed, detail FROM domi.assert_isolation($1, $2, $3)', [table, 'app_user', column]);
		assert.ok(checks.length > 0);
		assert.deepEqual(checks.filter((c) => c.passed !== true), [], `${table}: ${JSON.stringify(checks)}`);
	}
	const errors = await sql(`SELECT * FROM domi.rls_audit(ARRAY['app_user']) WHERE severity = 'error'`);
	assert.deepEqual(errors, []);
});

test('a new tenant table without a policy is caught: the RLS guard refuses it, rls_audit reports it', async () => {
	const client = new Client({ connectionString: url(DB, 'migrator') });
	await client.connect();
	try {
		const ddl = 'CREATE TABLE reactions (id serial PRIMARY KEY, tenant_id uuid NOT NULL, emoji text NOT NULL)';
		await client.query('SET domi.rls_guard = error');
		await assert.rejects(client.query(ddl), (err: any) => err.code === '42P16');
		await client.query('RESET domi.rls_guard');   // warn: created, with a warning
		await client.query(ddl);
		const findings = await sql(`SELECT object FROM domi.rls_audit(ARRAY['app_user']) WHERE severity = 'error'`);
		assert.ok(findings.some((f) => f.object.includes('reactions')), JSON.stringify(findings));
		await client.query('DROP TABLE reactions');
	} finally {
		await client.end();
	}
});
