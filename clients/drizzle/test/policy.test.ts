// domiTenantPolicy against real drizzle-kit: generate writes exactly the
// policy domi.enable_tenant_rls() installs, and once domi has isolated the
// tables, generate finds nothing to do and push reports no changes.  The
// expression is checked against a live enable_tenant_rls(), so a change of
// domi's policy fails here, not in production.
import test from 'node:test';
import assert from 'node:assert';
import { PgDialect } from 'drizzle-orm/pg-core';
import {
	domiTenantPolicy, quoteIdent, tenantPolicyExpression, lineageCheck,
	DOMI_TENANT_POLICY_NAME,
} from '@domi/drizzle';
import * as path from 'node:path';
import { Client, Pool } from 'pg';
import { drizzle } from 'drizzle-orm/node-postgres';
import { pushSchema } from 'drizzle-kit/api';
import * as before from './schema/before';
import * as after from './schema/after';
import {
	PKG, createDatabase, drizzleKit, migrateApp, readMigration, sql, sqlFiles, url, workDir, writeMigration,
} from './helpers';

const DB = 'drizzle_policy';
const ADOPT = 'drizzle_adopt';
let out: string;

interface PolicyRow {
	policyname: string;
	permissive: string;
	roles: string;
	cmd: string;
	qual: string;
	with_check: string;
}

async function policies(table: string, db = DB, schema = 'public'): Promise<PolicyRow[]> {
	return sql<PolicyRow>(db, `SELECT policyname, permissive, roles::text, cmd, qual, with_check
		FROM pg_policies WHERE schemaname = $2 AND tablename = $1 ORDER BY policyname`, [table, schema]);
}

async function forced(table: string, db = DB): Promise<{ relrowsecurity: boolean; relforcerowsecurity: boolean }> {
	const rows = await sql(db, `SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = $1::regclass`, [table]);
	return rows[0] as { relrowsecurity: boolean; relforcerowsecurity: boolean };
}

// The policy as drizzle-kit serializes it (its sqlToQuery of USING and WITH
// CHECK), in pg_policies' terms.
function declared(column: string): PolicyRow {
	const policy = domiTenantPolicy(column);
	const dialect = new PgDialect();
	return {
		policyname: policy.name,
		permissive: policy.as!.toUpperCase(),
		roles: `{${policy.to}}`,
		cmd: policy.for!.toUpperCase(),
		qual: dialect.sqlToQuery(policy.using!).sql,
		with_check: dialect.sqlToQuery(policy.withCheck!).sql,
	};
}

function env(schema: string, folder: string, db = DB) {
	return { DOMI_SCHEMA: schema, DOMI_OUT: folder, DOMI_URL: url(db, 'migrator') };
}

test.before(async () => {
	await createDatabase(DB);
	out = migrateApp(DB, 'policy');
});

test('the declared policy is the one a live domi.enable_tenant_rls() installs', async () => {
	// Tables isolated by domi alone, with tenant columns plain, quoted and a
	// keyword (in a schema of their own, out of drizzle-kit's sight).
	await sql(DB, `CREATE SCHEMA probe;
		CREATE TABLE probe.plain (tenant_id uuid);
		CREATE TABLE probe.quoted ("Tenant Key" uuid);
		CREATE TABLE probe.keyword ("user" uuid);
		SELECT domi.enable_tenant_rls('probe.plain');
		SELECT domi.enable_tenant_rls('probe.quoted', 'Tenant Key');
		SELECT domi.enable_tenant_rls('probe.keyword', 'user')`);
	assert.deepStrictEqual(await policies('plain', DB, 'probe'), [declared('tenant_id')]);
	assert.deepStrictEqual(await policies('quoted', DB, 'probe'), [declared('Tenant Key')]);
	assert.deepStrictEqual(await policies('keyword', DB, 'probe'), [declared('user')]);
	assert.strictEqual(declared('tenant_id').qual, tenantPolicyExpression('tenant_id'));
	assert.strictEqual(DOMI_TENANT_POLICY_NAME, 'domi_tenant_isolation');
});

test('quoteIdent writes every name as the server\'s quote_ident()', async () => {
	const names = (await sql(DB, 'SELECT word FROM pg_get_keywords()')).map((r) => r.word as string);
	names.push('tenant_id', 'TenantId', 'org id', 'a"b', '1tenant', '_x9', 'été', 'x$');
	const server = await sql(DB, 'SELECT n, quote_ident(n) AS q FROM unnest($1::text[]) n', [names]);
	assert.deepStrictEqual(server.map((r) => quoteIdent(r.n)), server.map((r) => r.q));
});

test('drizzle-kit generate writes domi\'s policy for a new tenant table', () => {
	const init = readMigration(out, sqlFiles(out)[0]);
	const e = tenantPolicyExpression('tenant_id');
	assert.ok(init.includes(`ALTER TABLE "invoices" ENABLE ROW LEVEL SECURITY;`), init);
	assert.ok(init.includes(
		`CREATE POLICY "domi_tenant_isolation" ON "invoices" AS PERMISSIVE FOR ALL TO public USING (${e}) WITH CHECK (${e});`), init);
});

test('after migrate: exactly domi\'s policy, with FORCE from enable_tenant_rls', async () => {
	for (const table of ['invoices', 'memberships']) {
		assert.deepStrictEqual(await policies(table), [declared('tenant_id')], table);
		assert.deepStrictEqual(await forced(table), { relrowsecurity: true, relforcerowsecurity: true }, table);
	}
	// and domi's own record of it (the comment enable_tenant_rls writes)
	const [state] = await sql(DB, `SELECT domi._tenant_policy_state('invoices') AS s`);
	assert.strictEqual(state.s.tenant_column, 'tenant_id');
	const audit = await sql(DB, `SELECT check_name, object FROM domi.rls_audit(ARRAY['app_user'])
		WHERE severity = 'error' AND object LIKE '%invoices%'`);
	assert.deepStrictEqual(audit, []);
	// and protect_column, run by the migrator in the same --custom migration
	const protectedColumns = await sql(DB, 'SELECT table_name, column_name FROM domi.protected_columns');
	assert.deepStrictEqual(protectedColumns, [{ table_name: 'invoices', column_name: 'notes' }]);
});

test('drizzle-kit generate finds nothing to do for the tables domi isolated', () => {
	const before = sqlFiles(out);
	const r = drizzleKit(['generate'], env('./test/schema/app.ts', out));
	assert.strictEqual(r.status, 0, r.output);
	assert.match(r.output, /No schema changes, nothing to migrate/, r.output);
	assert.deepStrictEqual(sqlFiles(out), before);
});

test('drizzle-kit push reports no changes, and the policy and FORCE stay', async () => {
	const r = drizzleKit(['push', '--force'], env('./test/schema/app.ts', out));
	assert.strictEqual(r.status, 0, r.output);
	assert.match(r.output, /No changes detected/, r.output);
	assert.doesNotMatch(r.output, /POLICY|ROW LEVEL SECURITY|error/i, r.output);
	assert.deepStrictEqual(await policies('invoices'), [declared('tenant_id')]);
	assert.deepStrictEqual(await forced('invoices'), { relrowsecurity: true, relforcerowsecurity: true });
});

// A table domi isolated in a --custom migration before the schema declared
// the policy: push agrees at once; generate emits the policy once, and
// docs/drizzle.md says to replace that migration's SQL with the installer.
test('a table isolated before it declared the policy: push agrees, generate is replaced by the installer', async () => {
	await createDatabase(ADOPT);
	const folder = workDir('adopt');
	let r = drizzleKit(['generate', '--name', 'projects'], env('./test/schema/before.ts', folder, ADOPT));
	assert.strictEqual(r.status, 0, r.output);
	r = drizzleKit(['generate', '--custom', '--name', 'isolate_projects'], env('./test/schema/before.ts', folder, ADOPT));
	assert.strictEqual(r.status, 0, r.output);
	writeMigration(folder, '0001_isolate_projects.sql', `SELECT domi.enable_tenant_rls('projects');\n`);
	r = drizzleKit(['migrate'], env('./test/schema/before.ts', folder, ADOPT));
	assert.strictEqual(r.status, 0, r.output);
	assert.deepStrictEqual(await policies('projects', ADOPT), [declared('tenant_id')]);

	// push with the policy declared: nothing to do
	r = drizzleKit(['push', '--force'], env('./test/schema/after.ts', folder, ADOPT));
	assert.match(r.output, /No changes detected/, r.output);

	// generate: the two statements domi already ran, and nothing else
	r = drizzleKit(['generate', '--name', 'declare_projects_policy'], env('./test/schema/after.ts', folder, ADOPT));
	assert.strictEqual(r.status, 0, r.output);
	const file = '0002_declare_projects_policy.sql';
	const e = tenantPolicyExpression('tenant_id');
	assert.strictEqual(readMigration(folder, file).trim(), [
		'ALTER TABLE "projects" ENABLE ROW LEVEL SECURITY;--> statement-breakpoint',
		`CREATE POLICY "domi_tenant_isolation" ON "projects" AS PERMISSIVE FOR ALL TO public USING (${e}) WITH CHECK (${e});`,
	].join('\n'));
	// docs/drizzle.md: replace them with the installer (idempotent)
	writeMigration(folder, file, `SELECT domi.enable_tenant_rls('projects');\n`);
	r = drizzleKit(['migrate'], env('./test/schema/after.ts', folder, ADOPT));
	assert.strictEqual(r.status, 0, r.output);
	assert.deepStrictEqual(await policies('projects', ADOPT), [declared('tenant_id')]);
	assert.deepStrictEqual(await forced('projects', ADOPT), { relrowsecurity: true, relforcerowsecurity: true });

	r = drizzleKit(['generate'], env('./test/schema/after.ts', folder, ADOPT));
	assert.match(r.output, /No schema changes, nothing to migrate/, r.output);
	const client = new Client({ connectionString: url(ADOPT, 'migrator') });
	await client.connect();
	try {
		const result = await lineageCheck(client, path.join(PKG, folder));
		assert.deepStrictEqual([result.errors, result.warnings], [0, 0], JSON.stringify(result.findings));
	} finally {
		await client.end();
	}
});

// The push hazard, with drizzle-kit's own push planner (drizzle-kit/api
// pushSchema: the statements push would run, not run): a schema that does
// not declare the policy makes push switch the table's isolation off; the
// declaration makes it leave the table alone.
test('push hazard: without domiTenantPolicy push would drop the policy and disable RLS; with it, nothing', async () => {
	const pool = new Pool({ connectionString: url(ADOPT, 'migrator'), max: 1 });
	try {
		const db = drizzle(pool);
		const without = await pushSchema(before, db);
		assert.deepStrictEqual(without.statementsToExecute.map((s) => s.trim()).sort(), [
			'ALTER TABLE "projects" DISABLE ROW LEVEL SECURITY;',
			'DROP POLICY "domi_tenant_isolation" ON "projects" CASCADE;',
		], without.statementsToExecute.join('\n'));
		const declaredIt = await pushSchema(after, db);
		assert.deepStrictEqual(declaredIt.statementsToExecute, []);
	} finally {
		await pool.end();
	}
	assert.deepStrictEqual(await forced('projects', ADOPT), { relrowsecurity: true, relforcerowsecurity: true }, 'nothing was applied');
});
