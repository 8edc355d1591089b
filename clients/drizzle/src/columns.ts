// A bytea column type and typed SQL for domi's keyring encryption.
import { sql, type SQL, type SQLWrapper } from 'drizzle-orm';
import { customType, type PgColumn } from 'drizzle-orm/pg-core';

// bytea as a Buffer both ways.  node-postgres and postgres.js already return
// a Buffer; PGlite and others a Uint8Array, and a driver that returns text
// gives the hex form ("\x00ff..."), which is decoded here.
function toBuffer(value: unknown): Buffer {
	if (Buffer.isBuffer(value)) return value;
	if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
	if (typeof value === 'string' && value.startsWith('\\x')) return Buffer.from(value.slice(2), 'hex');
	throw new TypeError(`bytea: cannot read a ${typeof value} as bytes`);
}

/** A bytea column: Buffer in, Buffer out.  `notes: bytea('notes')`. */
export const bytea = customType<{ data: Buffer; driverData: Buffer }>({
	dataType() {
		return 'bytea';
	},
	toDriver(value: Buffer): Buffer {
		if (!(value instanceof Uint8Array)) throw new TypeError('bytea: a value must be a Buffer or Uint8Array');
		return toBuffer(value);
	},
	fromDriver(value: unknown): Buffer {
		return toBuffer(value);
	},
});

// The result of decrypting a column: string, or string | null when the
// column may be NULL (domi.decrypt_text of NULL is NULL).
type Decrypted<TColumn> = TColumn extends PgColumn<infer C>
	? C['notNull'] extends true
		? string
		: string | null
	: string | null;

function tenantArg(tenantId: string | SQLWrapper | undefined): SQL {
	if (tenantId === undefined) return sql``;
	return typeof tenantId === 'string' ? sql`, ${tenantId}::uuid` : sql`, ${tenantId}`;
}

/**
 * SQL for domi.encrypt_text(value): the text sealed under the current
 * tenant's keyring key (or the named tenant's, for roles that work across
 * tenants).  Use it as an insert or update value of a bytea column.
 */
export function encryptText(value: string | SQLWrapper, tenantId?: string | SQLWrapper): SQL<Buffer> {
	const plain = typeof value === 'string' ? sql`${value}::text` : sql`${value}`;
	return sql<Buffer>`domi.encrypt_text(${plain}${tenantArg(tenantId)})`;
}

/**
 * SQL for domi.decrypt_text(column): the text of a value sealed by
 * encryptText, under the current tenant's keys (or the named tenant's).
 * Use it in a select: `db.select({ notes: decryptText(patients.notes) })`.
 */
export function decryptText<TColumn extends SQLWrapper>(
	column: TColumn,
	tenantId?: string | SQLWrapper,
): SQL<Decrypted<TColumn>> {
	return sql<Decrypted<TColumn>>`domi.decrypt_text(${column}${tenantArg(tenantId)})`;
}
