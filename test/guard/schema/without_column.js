// A schema from a branch that lost the protected column: push would drop it.
const { pgTable, serial, text } = require('drizzle-orm/pg-core');

exports.customers = pgTable('customers', {
	id: serial('id').primaryKey(),
	name: text('name').notNull(),
	nickname: text('nickname'),
});
