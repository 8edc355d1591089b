// A table that an older migration isolated with domi.enable_tenant_rls() in a
// --custom migration, before the schema declared the policy.
import { pgTable, serial, text, uuid } from 'drizzle-orm/pg-core';

export const projects = pgTable('projects', {
	id: serial('id').primaryKey(),
	tenantId: uuid('tenant_id').notNull(),
	title: text('title').notNull(),
});
