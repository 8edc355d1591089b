// A schema that changes the protected column's type: push would retype it.
const { pgTable, serial, text, varchar } = require('drizzle-orm/pg-core');

exports.customers = pgTable('customers', {
	id: serial('id').primaryKey(),
	name: text('name').notNull(),
	nickname: text('nickname'),
	taxId: varchar('tax_id', { length: 16 }),
});
