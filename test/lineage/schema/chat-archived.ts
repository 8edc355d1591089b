// chat + conversations.archived_at: main's branch.
import { integer, pgTable, serial, text, timestamp } from 'drizzle-orm/pg-core';

export const conversations = pgTable('conversations', {
  id: serial('id').primaryKey(),
  title: text('title').notNull(),
  archivedAt: timestamp('archived_at'),
});

export const messages = pgTable('messages', {
  id: serial('id').primaryKey(),
  conversationId: integer('conversation_id').notNull().references(() => conversations.id),
  body: text('body').notNull(),
});
