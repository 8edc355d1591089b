// The application schema of the tests, written as docs/drizzle.md shows it.
import { pgTable, primaryKey, serial, text, timestamp, uuid } from 'drizzle-orm/pg-core';
import { bytea, domiTenantPolicy } from '@domi/drizzle';

export const tenants = pgTable('tenants', {
	id: uuid('id').primaryKey().defaultRandom(),
	name: text('name').notNull(),
});

export const memberships = pgTable('memberships', {
	userId: text('user_id').notNull(),
	tenantId: uuid('tenant_id').notNull().references(() => tenants.id),
	createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
}, (t) => [
	primaryKey({ columns: [t.userId, t.tenantId] }),
	domiTenantPolicy(t.tenantId),
]);

export const invoices = pgTable('invoices', {
	id: serial('id').primaryKey(),
	tenantId: uuid('tenant_id').notNull(),
	customer: text('customer').notNull(),
	notes: bytea('notes'),        // domi.encrypt_text() output
	attachment: bytea('attachment'),
}, (t) => [domiTenantPolicy(t.tenantId)]);
