// The application's schema as committed: tax_id is the protected column.
const { pgTable, serial, text } = require('drizzle-orm/pg-core');

exports.customers = pgTable('customers', {
	id: serial('id').primaryKey(),
	name: text('name').notNull(),
	nickname: text('nickname'),
	taxId: text('tax_id'),
});
