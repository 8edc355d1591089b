// What someone pushes to the shared database without a migration: name
// becomes varchar(100), and a column the schema does not have is dropped.
const { pgTable, serial, text, varchar } = require('drizzle-orm/pg-core');

exports.users = pgTable('users', {
  id: serial('id').primaryKey(),
  name: varchar('name', { length: 100 }).notNull(),
  email: text('email'),
});
