// The migration lineage check over node-postgres: reads a drizzle-kit (or
// Prisma) migrations folder exactly as client/domi-lineage.c does, sends it
// as the manifest to domi.lineage_check(), and returns the findings.
import * as fs from 'node:fs';
import * as path from 'node:path';

/** One row of domi.lineage_check(). */
export interface LineageFinding {
	severity: 'error' | 'warning' | 'info';
	code: string;
	migration: string | null;
	detail: string;
	fix: string | null;
}

export interface LineageResult {
	findings: LineageFinding[];
	errors: number;
	warnings: number;
	infos: number;
}

export interface LineageOptions {
	/** The folder is prisma/migrations (NAME/migration.sql, migration_lock.toml). */
	prisma?: boolean;
	/** The migrations table (default: drizzle.__drizzle_migrations, or _prisma_migrations). */
	migrationsTable?: string;
}

/** Anything with node-postgres's query(text, values): a Client, a Pool, a PoolClient. */
export interface Queryable {
	query(text: string, values?: unknown[]): Promise<{ rows: any[] }>;
}

/**
 * The check could not run (no folder, no files, an unreadable or unsendable
 * file, the server refused): domi-lineage exits with 2 for it.
 */
export class LineageCheckError extends Error {
	constructor(message: string, options?: { cause?: unknown }) {
		super(message);
		this.name = 'LineageCheckError';
		if (options?.cause !== undefined) (this as { cause?: unknown }).cause = options.cause;
	}
}

// jsonb holds at most 2^28 - 1 bytes, so the files of one manifest cannot
// total more: say so before reading gigabytes (as the C client).
export const MANIFEST_MAX_BYTES = 268435455;

interface Manifest {
	format: 'drizzle' | 'prisma';
	files: Record<string, string>;
	total: number;
}

function tooLarge(folder: string): never {
	throw new LineageCheckError(`the files in "${folder}" total more than ${MANIFEST_MAX_BYTES} bytes, more than the manifest (one jsonb value) can hold`);
}

function errnoOf(err: unknown): string | undefined {
	return (err as NodeJS.ErrnoException)?.code;
}

// Byte order, as the C client's strcmp sort (JavaScript's default sort
// compares UTF-16 code units, which differs beyond the BMP).
function byteOrder(a: string, b: string): number {
	return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

// The entries of dir, sorted; null when it does not exist.  A folder that
// exists but cannot be read stops the check: a missing journal would be
// reported for what is only a permission problem.
function listDir(dir: string): string[] | null {
	try {
		return fs.readdirSync(dir).sort(byteOrder);
	} catch (err) {
		if (errnoOf(err) === 'ENOENT') return null;
		throw new LineageCheckError(`cannot read directory "${dir}": ${(err as Error).message}`, { cause: err });
	}
}

// Adds the text of file (a regular file after symlinks, as the migrators
// read it) to the manifest under name; returns whether it did.  Opened
// without waiting and looked at before it is read, so that a FIFO or a
// device named like a migration is skipped, not waited on.
function addFile(manifest: Manifest, folder: string, name: string, file: string): boolean {
	let fd: number;
	try {
		fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
	} catch (err) {
		const code = errnoOf(err);
		if (code === 'ENOENT' || code === 'ENOTDIR') return false;
		throw new LineageCheckError(`cannot open "${file}": ${(err as Error).message}`, { cause: err });
	}
	let bytes: Buffer;
	try {
		const st = fs.fstatSync(fd);
		if (!st.isFile()) return false;
		if (st.size > MANIFEST_MAX_BYTES - manifest.total) tooLarge(folder);
		bytes = fs.readFileSync(fd);
	} catch (err) {
		if (err instanceof LineageCheckError) throw err;
		throw new LineageCheckError(`cannot read "${file}": ${(err as Error).message}`, { cause: err });
	} finally {
		fs.closeSync(fd);
	}
	if (bytes.length > MANIFEST_MAX_BYTES - manifest.total) tooLarge(folder); // it grew
	if (bytes.includes(0)) {
		throw new LineageCheckError(`"${file}" contains a NUL byte, which PostgreSQL text cannot hold`);
	}
	// drizzle-orm's migrator hashes readFileSync(path).toString(): every
	// ill-formed UTF-8 sequence becomes U+FFFD.  Prisma's engine refuses such
	// a file.
	const text = bytes.toString('utf8');
	if (manifest.format === 'prisma' && !Buffer.from(text, 'utf8').equals(bytes)) {
		throw new LineageCheckError(`"${file}" is not valid UTF-8, and Prisma cannot read it either`);
	}
	const size = Buffer.byteLength(text, 'utf8');
	if (size > MANIFEST_MAX_BYTES - manifest.total) tooLarge(folder);
	manifest.total += size;
	manifest.files[name] = text;
	return true;
}

function addDrizzleFiles(manifest: Manifest, folder: string): void {
	for (const name of listDir(folder) ?? []) {
		if (name.length > 4 && name.endsWith('.sql')) addFile(manifest, folder, name, path.join(folder, name));
	}
	const meta = path.join(folder, 'meta');
	for (const name of listDir(meta) ?? []) {
		if (name.length > 5 && name.endsWith('.json')) addFile(manifest, folder, `meta/${name}`, path.join(meta, name));
	}
}

function addPrismaFiles(manifest: Manifest, folder: string): void {
	addFile(manifest, folder, 'migration_lock.toml', path.join(folder, 'migration_lock.toml'));
	for (const name of listDir(folder) ?? []) {
		addFile(manifest, folder, `${name}/migration.sql`, path.join(folder, name, 'migration.sql'));
	}
}

/**
 * The manifest domi.lineage_check() takes: {"format", "files": {path: text}},
 * the folder's migration files by their path in the folder.
 */
export function readMigrationsFolder(folder: string, options: LineageOptions = {}): { format: string; files: Record<string, string> } {
	let st: fs.Stats;
	try {
		st = fs.statSync(folder);
	} catch {
		throw new LineageCheckError(`"${folder}" is not a directory`);
	}
	if (!st.isDirectory()) throw new LineageCheckError(`"${folder}" is not a directory`);
	const manifest: Manifest = { format: options.prisma ? 'prisma' : 'drizzle', files: {}, total: 0 };
	if (options.prisma) addPrismaFiles(manifest, folder);
	else addDrizzleFiles(manifest, folder);
	if (Object.keys(manifest.files).length === 0) {
		throw new LineageCheckError(`"${folder}" holds no migration files (${options.prisma
			? 'NAME/migration.sql' : 'meta/_journal.json, meta/NAME.json, *.sql'})`);
	}
	return { format: manifest.format, files: manifest.files };
}

/**
 * Checks the migrations folder against the database with
 * domi.lineage_check(): the folder's files and the migrations table.
 * Throws LineageCheckError when it cannot check.
 */
export async function lineageCheck(client: Queryable, folder: string, options: LineageOptions = {}): Promise<LineageResult> {
	const manifest = readMigrationsFolder(folder, options);
	let rows: LineageFinding[];
	try {
		const result = await client.query(
			'SELECT severity, code, migration, detail, fix FROM domi.lineage_check($1::jsonb, $2::regclass)',
			[JSON.stringify(manifest), options.migrationsTable ?? null],
		);
		rows = result.rows;
	} catch (err) {
		const sqlstate = (err as { code?: string }).code;
		const message = (err as Error).message;
		if (sqlstate === '3F000') {
			throw new LineageCheckError(`the domi extension is not installed in this database (CREATE EXTENSION domi): ${message}`, { cause: err });
		}
		if (sqlstate === '42883') {
			throw new LineageCheckError(`this database's domi has no lineage_check (ALTER EXTENSION domi UPDATE to 0.2.0 or later): ${message}`, { cause: err });
		}
		throw new LineageCheckError(message, { cause: err });
	}
	const count = (severity: string) => rows.filter((r) => r.severity === severity).length;
	return { findings: rows, errors: count('error'), warnings: count('warning'), infos: rows.length - count('error') - count('warning') };
}

/** One finding as domi-lineage prints it: "severity: code: migration: detail Fix: fix". */
export function formatFinding(f: LineageFinding): string {
	return `${f.severity}: ${f.code}: ${f.migration !== null ? `${f.migration}: ` : ''}${f.detail}${f.fix !== null ? ` Fix: ${f.fix}` : ''}`;
}
