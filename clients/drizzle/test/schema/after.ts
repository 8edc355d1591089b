// The same table, now declaring domi's policy.
import { pgTable, serial, text, uuid } from 'drizzle-orm/pg-core';
import { domiTenantPolicy } from '@domi/drizzle';

export const projects = pgTable('projects', {
	id: serial('id').primaryKey(),
	tenantId: uuid('tenant_id').notNull(),
	title: text('title').notNull(),
}, (t) => [domiTenantPolicy(t.tenantId)]);
