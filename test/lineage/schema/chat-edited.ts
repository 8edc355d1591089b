// chat + messages.edited_at: the other branch, from the same parent.
import { integer, pgTable, serial, text, timestamp } from 'drizzle-orm/pg-core';

export const conversations = pgTable('conversations', {
  id: serial('id').primaryKey(),
  title: text('title').notNull(),
});

export const messages = pgTable('messages', {
  id: serial('id').primaryKey(),
  conversationId: integer('conversation_id').notNull().references(() => conversations.id),
  body: text('body').notNull(),
  editedAt: timestamp('edited_at'),
});
