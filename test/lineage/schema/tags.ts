// base + tags: a branch generated before main's next migration.
import { pgTable, serial, text } from 'drizzle-orm/pg-core';

export const users = pgTable('users', {
  id: serial('id').primaryKey(),
  name: text('name').notNull(),
});

export const tags = pgTable('tags', {
  id: serial('id').primaryKey(),
  label: text('label').notNull(),
});
