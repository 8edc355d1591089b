// The control: a schema without the unprotected column nickname, which push
// drops, so a refusal of the protected column is the guard's doing.
const { pgTable, serial, text } = require('drizzle-orm/pg-core');

exports.customers = pgTable('customers', {
	id: serial('id').primaryKey(),
	name: text('name').notNull(),
	taxId: text('tax_id'),
});
