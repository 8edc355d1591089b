// An application's tenant tables as its drizzle schema declares them: no
// row level security, no policy.  domi.enable_tenant_rls() isolates them in
// the database; the schema, like most, never says so.
const { pgTable, serial, text, uuid } = require('drizzle-orm/pg-core');

exports.tenants = pgTable('tenants', {
	id: uuid('id').primaryKey(),
	name: text('name').notNull(),
});

exports.conversations = pgTable('conversations', {
	id: serial('id').primaryKey(),
	tenantId: uuid('tenant_id').notNull(),
	title: text('title'),
});

exports.messages = pgTable('messages', {
	id: serial('id').primaryKey(),
	tenantId: uuid('tenant_id').notNull(),
	body: text('body'),
});

exports.documents = pgTable('documents', {
	id: serial('id').primaryKey(),
	tenantId: uuid('tenant_id').notNull(),
	body: text('body'),
});

// Not isolated by domi: a table with a hand-written policy, the control.
exports.notes = pgTable('notes', {
	id: serial('id').primaryKey(),
	tenantId: uuid('tenant_id').notNull(),
	body: text('body'),
});
