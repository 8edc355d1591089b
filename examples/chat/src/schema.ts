// The chat's tables.  Every table that holds a tenant's data has a uuid
// tenant column and domi's policy (domiTenantPolicy), so drizzle-kit
// generates exactly the policy domi.enable_tenant_rls installs and never
// plans to drop it.  users is the one table without a tenant: a person
// signs in once and may belong to several tenants (memberships).
import { foreignKey, pgTable, primaryKey, integer, text, timestamp, unique, uuid } from 'drizzle-orm/pg-core';
import { bytea, domiTenantPolicy } from '@domi/drizzle';

export const tenants = pgTable('tenants', {
	id: uuid('id').primaryKey(),
	name: text('name').notNull(),
}, (t) => [domiTenantPolicy(t.id)]);   // a tenant sees its own row only

export const users = pgTable('users', {
	id: text('id').primaryKey(),
	name: text('name').notNull(),
	passwordHash: text('password_hash').notNull(),   // scrypt, see src/auth.ts
});

// domi.configure_tenancy reads this table (user_id, tenant_id, created_at)
// to resolve a user's tenant at sign-in: domi.enter_tenant.
export const memberships = pgTable('memberships', {
	userId: text('user_id').notNull().references(() => users.id),
	tenantId: uuid('tenant_id').notNull().references(() => tenants.id),
	createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
}, (t) => [
	primaryKey({ columns: [t.userId, t.tenantId] }),
	domiTenantPolicy(t.tenantId),
]);

export const threads = pgTable('threads', {
	id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
	tenantId: uuid('tenant_id').notNull().references(() => tenants.id),
	title: text('title').notNull(),
	createdBy: text('created_by').notNull().references(() => users.id),
	createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
}, (t) => [
	unique('threads_tenant_id_id_key').on(t.tenantId, t.id),
	domiTenantPolicy(t.tenantId),
]);

export const messages = pgTable('messages', {
	id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
	tenantId: uuid('tenant_id').notNull(),
	threadId: integer('thread_id').notNull(),
	author: text('author').notNull().references(() => users.id),
	body: bytea('body').notNull(),   // domi.encrypt_text(): sealed with the tenant's keyring key
	createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
}, (t) => [
	// Foreign keys are checked past row-level security: with (tenant_id,
	// thread_id) a message can only point at a thread of its own tenant.
	foreignKey({ name: 'messages_thread_fk', columns: [t.tenantId, t.threadId], foreignColumns: [threads.tenantId, threads.id] }),
	domiTenantPolicy(t.tenantId),
]);
