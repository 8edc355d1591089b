// The application's schema as its migrations make it.
const { pgTable, serial, text } = require('drizzle-orm/pg-core');

exports.users = pgTable('users', {
  id: serial('id').primaryKey(),
  name: text('name').notNull(),
  email: text('email'),
});
