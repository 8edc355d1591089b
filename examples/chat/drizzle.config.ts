// drizzle-kit: run as the migrator role (it owns the tables).
//   DATABASE_URL=postgresql://migrator@localhost/chat npx drizzle-kit migrate
import { defineConfig } from 'drizzle-kit';

export default defineConfig({
	dialect: 'postgresql',
	schema: './src/schema.ts',
	out: './drizzle',
	dbCredentials: { url: process.env.DATABASE_URL ?? 'postgresql://migrator@localhost/chat' },
});
