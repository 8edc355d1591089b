// Shared by the tests: connections to the test cluster (PGHOST is its socket
// directory, PGPORT and PGUSER the superuser, as scripts/test sets them),
// the roles of docs/drizzle.md, and drizzle-kit run as a team runs it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Client } from 'pg';

/** The package's folder (the tests run from .test-build). */
export const PKG = path.resolve(__dirname, '..');
const DRIZZLE_KIT = path.join(PKG, 'node_modules', '.bin', 'drizzle-kit');

export function url(database: string, user = process.env.PGUSER ?? 'postgres', port = process.env.PGPORT ?? '5432'): string {
	const host = encodeURIComponent(process.env.PGHOST ?? 'localhost');
	return `postgresql://${user}@localhost/${database}?host=${host}&port=${port}`;
}

/** One query on a fresh connection (as the superuser unless told). */
export async function sql<T = Record<string, any>>(database: string, text: string, params: unknown[] = [], user?: string): Promise<T[]> {
	const client = new Client({ connectionString: url(database, user) });
	await client.connect();
	try {
		return (await client.query(text, params)).rows as T[];
	} finally {
		await client.end();
	}
}

// Several test files run at once: a role another one created in the
// meantime is fine.
async function createRole(name: string): Promise<void> {
	try {
		await sql('postgres', `CREATE ROLE ${name} LOGIN`);
	} catch (err) {
		const code = (err as { code?: string }).code;
		if (code !== '42710' && code !== '23505') throw err;
	}
}

/**
 * A fresh database set up as docs/drizzle.md says: the extension created by
 * the superuser, the migrator owning what it creates, app_user with the
 * privileges the application needs and nothing more.
 */
export async function createDatabase(database: string): Promise<void> {
	await sql('postgres', `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
	await sql('postgres', `CREATE DATABASE ${database}`);
	await createRole('migrator');
	await createRole('app_user');
	for (const statement of [
		// docs/drizzle.md "Once, as the superuser"
		'CREATE EXTENSION domi',
		`GRANT CREATE ON DATABASE ${database} TO migrator`,
		'GRANT CREATE, USAGE ON SCHEMA public TO migrator',
		'GRANT USAGE ON SCHEMA public TO app_user',
		`ALTER DEFAULT PRIVILEGES FOR ROLE migrator IN SCHEMA public
			GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO app_user`,
		`ALTER DEFAULT PRIVILEGES FOR ROLE migrator IN SCHEMA public
			GRANT USAGE ON SEQUENCES TO app_user`,
		`GRANT EXECUTE ON FUNCTION domi.encrypt_text(text), domi.decrypt_text(bytea),
			domi.enter_tenant(text, uuid) TO app_user`,
	]) {
		await sql(database, statement);
	}
}

export interface Run {
	status: number | null;
	stdout: string;
	stderr: string;
	output: string;
}

/** drizzle-kit with test/drizzle.config.ts; env: DOMI_SCHEMA, DOMI_OUT, DOMI_URL. */
export function drizzleKit(args: string[], env: Record<string, string>): Run {
	const r = spawnSync(DRIZZLE_KIT, [...args, '--config', 'test/drizzle.config.ts'], {
		cwd: PKG, encoding: 'utf8', timeout: 120000, stdio: ['ignore', 'pipe', 'pipe'],
		env: { ...process.env, ...env },
	});
	if (r.error) throw r.error;
	return { status: r.status, stdout: r.stdout, stderr: r.stderr, output: r.stdout + r.stderr };
}

/** An empty migrations folder, relative to PKG (drizzle-kit prefixes "./"). */
export function workDir(name: string): string {
	const rel = path.join('.test-build', 'work', name);
	fs.rmSync(path.join(PKG, rel), { recursive: true, force: true });
	fs.mkdirSync(path.join(PKG, rel), { recursive: true });
	return rel;
}

/** The SQL files of a migrations folder, in order. */
export function sqlFiles(out: string): string[] {
	return fs.readdirSync(path.join(PKG, out)).filter((f) => f.endsWith('.sql')).sort();
}

export function writeMigration(out: string, file: string, text: string): void {
	fs.writeFileSync(path.join(PKG, out, file), text);
}

export function readMigration(out: string, file: string): string {
	return fs.readFileSync(path.join(PKG, out, file), 'utf8');
}

/**
 * The migrations of docs/drizzle.md for test/schema/app.ts: generate (the
 * tables, with domi's policy), then a --custom migration with
 * domi.enable_tenant_rls() for each tenant table, then migrate as the
 * migrator.  Returns the folder.
 */
export function migrateApp(database: string, name: string): string {
	const out = workDir(name);
	const env = { DOMI_SCHEMA: './test/schema/app.ts', DOMI_OUT: out, DOMI_URL: url(database, 'migrator') };
	let r = drizzleKit(['generate', '--name', 'init'], env);
	if (r.status !== 0) throw new Error(`drizzle-kit generate failed:\n${r.output}`);
	r = drizzleKit(['generate', '--custom', '--name', 'domi_isolation'], env);
	if (r.status !== 0) throw new Error(`drizzle-kit generate --custom failed:\n${r.output}`);
	writeMigration(out, '0001_domi_isolation.sql', DOMI_MIGRATION);
	r = drizzleKit(['migrate'], env);
	if (r.status !== 0) throw new Error(`drizzle-kit migrate failed:\n${r.output}`);
	return out;
}

/** The --custom migration of docs/drizzle.md. */
export const DOMI_MIGRATION = `SELECT domi.enable_tenant_rls('memberships');
--> statement-breakpoint
SELECT domi.enable_tenant_rls('invoices');
--> statement-breakpoint
SELECT domi.protect_column('invoices', 'notes');
`;
