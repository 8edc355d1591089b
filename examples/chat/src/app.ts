// The chat service: Node's http server, drizzle-orm over node-postgres,
// connected as app_user (no superuser, no BYPASSRLS, owns nothing).
//
// The pattern: every request that touches tenant data is ONE transaction
// that first sets the tenant (withTenant / enterTenant from @domi/drizzle).
// domi keeps the tenant for that transaction only, the policies show and
// accept only that tenant's rows, and the pooled connection goes back with
// no tenant at all.  The tenant a client names (header X-Tenant-Id) is never
// trusted: domi.enter_tenant checks the signed-in user's membership first.
import * as http from 'node:http';
import { createHmac, randomBytes, randomUUID, scryptSync, timingSafeEqual } from 'node:crypto';
import { asc, eq } from 'drizzle-orm';
import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres';
import { Pool } from 'pg';
import { decryptText, encryptText, enterTenant, withTenant } from '@domi/drizzle';
import { memberships, messages, tenants, threads, users } from './schema';

type Db = NodePgDatabase<Record<string, never>>;
type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];

class HttpError extends Error {
	constructor(readonly status: number, message: string) { super(message); }
}

// --- passwords and session tokens (deliberately minimal) -----------------

function hashPassword(password: string): string {
	const salt = randomBytes(16);
	return `${salt.toString('hex')}:${scryptSync(password, salt, 32).toString('hex')}`;
}

function checkPassword(password: string, stored: string): boolean {
	const [salt, hash] = stored.split(':');
	return timingSafeEqual(scryptSync(password, Buffer.from(salt, 'hex'), 32), Buffer.from(hash, 'hex'));
}

// A token names the user only, signed with the server's secret.  The tenant
// is not in it: it is checked against the memberships on every request.
function signToken(secret: string, userId: string): string {
	const user = Buffer.from(userId).toString('base64url');
	return `${user}.${createHmac('sha256', secret).update(user).digest('base64url')}`;
}

function verifyToken(secret: string, header: string | undefined): string {
	const [user, mac] = (header ?? '').replace(/^Bearer /, '').split('.');
	const expected = createHmac('sha256', secret).update(user ?? '').digest();
	const given = Buffer.from(mac ?? '', 'base64url');
	if (!user || given.length !== expected.length || !timingSafeEqual(given, expected)) {
		throw new HttpError(401, 'not signed in');
	}
	return Buffer.from(user, 'base64url').toString();
}

// --- HTTP plumbing --------------------------------------------------------

async function readJson(req: http.IncomingMessage): Promise<Record<string, unknown>> {
	let text = '';
	for await (const chunk of req) text += chunk;
	try {
		const value = text === '' ? {} : JSON.parse(text);
		if (typeof value === 'object' && value !== null) return value;
	} catch { /* below */ }
	throw new HttpError(400, 'the body must be a JSON object');
}

function field(body: Record<string, unknown>, name: string): string {
	const value = body[name];
	if (typeof value !== 'string' || value === '') throw new HttpError(400, `"${name}" must be a non-empty string`);
	return value;
}

// The SQLSTATE of a failed query (drizzle wraps node-postgres' error).
function sqlstate(err: unknown): string | undefined {
	const e = err as { code?: string; cause?: { code?: string } };
	return e.code ?? e.cause?.code;
}

// PostgreSQL's answers the client may see, by SQLSTATE.
function statusOf(err: unknown): [number, string] {
	if (err instanceof HttpError) return [err.status, err.message];
	const code = sqlstate(err);
	if (code === '42501') return [403, 'not a member of that tenant'];   // domi.enter_tenant, or a policy
	if (code === '22P02' || code === '22003') return [400, 'malformed id'];
	if (code === '23505') return [409, 'already exists'];
	if (code === '23503') return [404, 'no such user or thread'];
	console.error(err);
	return [500, 'internal error'];
}

// --- the service ----------------------------------------------------------

export function createApp(pool: Pool, secret: string): http.Server {
	const db: Db = drizzle(pool);

	// The signed-in user's tenant transaction: domi.enter_tenant(user, the
	// X-Tenant-Id header or NULL for the first membership), then fn.
	function asMember<T>(req: http.IncomingMessage, fn: (tx: Tx, tenantId: string, user: string) => Promise<T>): Promise<T> {
		const user = verifyToken(secret, req.headers.authorization);
		const tenant = req.headers['x-tenant-id'];
		return enterTenant(db, user, (tx, tenantId) => fn(tx, tenantId, user),
			{ tenantId: typeof tenant === 'string' ? tenant : undefined });
	}

	async function route(req: http.IncomingMessage): Promise<[number, unknown]> {
		const url = new URL(req.url ?? '/', 'http://localhost');
		const path = `${req.method} ${url.pathname}`;
		let m: RegExpMatchArray | null;

		// A new user with a new tenant: one transaction acting for the new
		// tenant (its id chosen here), so the policies accept its rows.
		if (path === 'POST /signup') {
			const body = await readJson(req);
			const userId = field(body, 'user');
			const tenantId = randomUUID();
			await withTenant(db, tenantId, async (tx) => {
				await tx.insert(users).values({ id: userId, name: field(body, 'name'), passwordHash: hashPassword(field(body, 'password')) });
				await tx.insert(tenants).values({ id: tenantId, name: field(body, 'tenant') });
				await tx.insert(memberships).values({ userId, tenantId });
			});
			return [201, { user: userId, tenant: tenantId }];
		}

		// Sign-in: domi's lookup finds the user's tenant (the first
		// membership, or the one named) with no privileged connection.
		if (path === 'POST /signin') {
			const body = await readJson(req);
			const userId = field(body, 'user');
			const password = field(body, 'password');
			const wanted = typeof body.tenant === 'string' ? body.tenant : undefined;
			try {
				return await enterTenant(db, userId, async (tx, tenantId) => {
					const [user] = await tx.select().from(users).where(eq(users.id, userId));
					if (!user || !checkPassword(password, user.passwordHash)) throw new HttpError(401, 'wrong user or password');
					const [tenant] = await tx.select().from(tenants);   // the policy: only the current one
					return [200, { token: signToken(secret, userId), tenant }];
				}, { tenantId: wanted });
			} catch (err) {
				// Not a member (42501): as unhelpful as a wrong password.
				if (sqlstate(err) === '42501') throw new HttpError(401, 'wrong user or password');
				throw err;
			}
		}

		if (path === 'POST /members') {
			const body = await readJson(req);
			return asMember(req, async (tx, tenantId) => {
				await tx.insert(memberships).values({ userId: field(body, 'user'), tenantId });
				return [201, { user: body.user, tenant: tenantId }];
			});
		}

		if (path === 'GET /threads') {
			return asMember(req, async (tx) => [200, await tx.select({ id: threads.id, title: threads.title, createdBy: threads.createdBy })
				.from(threads).orderBy(asc(threads.id))]);
		}

		if (path === 'POST /threads') {
			const body = await readJson(req);
			return asMember(req, async (tx, tenantId, user) => {
				const [thread] = await tx.insert(threads).values({ tenantId, title: field(body, 'title'), createdBy: user })
					.returning({ id: threads.id });
				return [201, thread];
			});
		}

		if ((m = path.match(/^(GET|POST) \/threads\/(\d+)\/messages$/))) {
			const [, method, id] = m;
			const threadId = Number(id);
			const body = method === 'POST' ? await readJson(req) : {};
			return asMember(req, async (tx, tenantId, user) => {
				// Another tenant's thread is simply not there.
				const [thread] = await tx.select({ id: threads.id }).from(threads).where(eq(threads.id, threadId));
				if (!thread) throw new HttpError(404, 'no such thread');
				if (method === 'POST') {
					const [msg] = await tx.insert(messages).values({
						tenantId, threadId, author: user,
						body: encryptText(field(body, 'body')),   // domi.encrypt_text: the tenant's keyring key
					}).returning({ id: messages.id });
					return [201, msg];
				}
				return [200, await tx.select({ id: messages.id, author: messages.author, body: decryptText(messages.body), createdAt: messages.createdAt })
					.from(messages).where(eq(messages.threadId, threadId)).orderBy(asc(messages.id))];
			});
		}

		throw new HttpError(404, 'not found');
	}

	return http.createServer((req, res) => {
		route(req).catch((err) => {
			const [status, error] = statusOf(err);
			return [status, { error }] as [number, unknown];
		}).then(([status, value]) => {
			res.writeHead(status, { 'content-type': 'application/json' });
			res.end(JSON.stringify(value));
		});
	});
}
