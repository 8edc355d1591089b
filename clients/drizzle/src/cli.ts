#!/usr/bin/env node
// domi-lineage, in JavaScript: the C client's options, output and exit
// codes over node-postgres (no libpq, no compiler), for CI jobs that have
// Node only.
//
//   domi-lineage [--prisma] [--migrations-table NAME] [-d URL|DBNAME]
//                [--fail-on error|warning] [--] DIR
//
// The connection: -d, else DATABASE_URL, else the PG* environment.
// Exit status: 0 nothing at the --fail-on level (default error), 1 at least
// one finding at that level or above, 2 could not check.
import { Client, type ClientConfig } from 'pg';
import { formatFinding, lineageCheck, LineageCheckError } from './lineage.js';

const progname = 'domi-lineage';
const EXIT_CLEAN = 0;
const EXIT_FINDINGS = 1;
const EXIT_CANNOT = 2;

function usage(): string {
	return `Usage: ${progname} [--prisma] [--migrations-table NAME] [-d URL] [--fail-on error|warning] [--] DIR

Checks the migrations folder DIR (drizzle-kit's, or prisma/migrations with
--prisma) and the database's record of what ran, with domi.lineage_check().

  --prisma                 DIR is a Prisma migrations folder
  --migrations-table NAME  the migrations table (default drizzle.__drizzle_migrations,
                           or _prisma_migrations with --prisma)
  -d, --dbname URL         a postgresql:// URI or a database name
                           (default: DATABASE_URL, else the PG* environment)
  --fail-on LEVEL          exit 1 on findings of LEVEL or worse: error (default)
                           or warning (a pending empty --custom migration fails too)

Exit status: 0 no finding at that level, 1 at least one, 2 could not check.
`;
}

interface Args {
	prisma: boolean;
	table?: string;
	conn?: string;
	failOn: 'error' | 'warning';
	dir: string;
}

function parseArgs(argv: string[]): Args | 'help' | null {
	const args: Partial<Args> = { prisma: false, failOn: 'error' };
	for (let i = 0; i < argv.length; i++) {
		const a = argv[i];
		if (a === '--prisma') args.prisma = true;
		else if (a === '--migrations-table' && i + 1 < argv.length) args.table = argv[++i];
		else if ((a === '-d' || a === '--dbname') && i + 1 < argv.length) args.conn = argv[++i];
		else if (a === '--fail-on' && i + 1 < argv.length) {
			const level = argv[++i];
			if (level !== 'error' && level !== 'warning') return null;
			args.failOn = level;
		} else if (a === '--help' || a === '-h') return 'help';
		else if (a === '--' && i + 2 === argv.length && args.dir === undefined) args.dir = argv[++i];
		else if (a.startsWith('-') || args.dir !== undefined) return null;
		else args.dir = a;
	}
	return args.dir === undefined ? null : (args as Args);
}

// As psql -d: a URI, or a database name (the rest from the environment).
function clientConfig(conn: string | undefined): ClientConfig {
	const base: ClientConfig & { fallback_application_name?: string } = { fallback_application_name: progname };
	const target = conn ?? process.env.DATABASE_URL;
	if (target === undefined || target === '') return base;
	if (/^postgres(ql)?:\/\//.test(target)) return { ...base, connectionString: target };
	return { ...base, database: target };
}

async function main(argv: string[]): Promise<number> {
	const args = parseArgs(argv);
	if (args === 'help') {
		process.stdout.write(usage());
		return EXIT_CLEAN;
	}
	if (args === null) {
		process.stderr.write(usage());
		return EXIT_CANNOT;
	}
	const client = new Client(clientConfig(args.conn));
	// A connection that drops later is an 'error' event: report, not crash.
	client.on('error', () => undefined);
	try {
		try {
			await client.connect();
		} catch (err) {
			throw new LineageCheckError((err as Error).message || String(err), { cause: err });
		}
		const result = await lineageCheck(client, args.dir, { prisma: args.prisma, migrationsTable: args.table });
		for (const f of result.findings) process.stdout.write(formatFinding(f) + '\n');
		const s = (n: number) => (n === 1 ? '' : 's');
		process.stdout.write(`${progname}: ${result.errors} error${s(result.errors)}, ${result.warnings} warning${s(result.warnings)}, ${result.infos} info in ${args.dir}\n`);
		const failing = result.errors + (args.failOn === 'warning' ? result.warnings : 0);
		return failing > 0 ? EXIT_FINDINGS : EXIT_CLEAN;
	} catch (err) {
		const message = err instanceof Error ? err.message : String(err);
		process.stderr.write(`${progname}: could not check: ${message}\n`);
		return EXIT_CANNOT;
	} finally {
		await client.end().catch(() => undefined);
	}
}

main(process.argv.slice(2)).then(
	(code) => {
		process.exitCode = code;
	},
	(err) => {
		process.stderr.write(`${progname}: could not check: ${err instanceof Error ? err.message : String(err)}\n`);
		process.exitCode = EXIT_CANNOT;
	},
);
