// drizzle-kit for the tests: the schema file, the migrations folder and the
// database come from the environment (DOMI_SCHEMA, DOMI_OUT, DOMI_URL).
import { defineConfig } from 'drizzle-kit';

export default defineConfig({
	dialect: 'postgresql',
	schema: process.env.DOMI_SCHEMA ?? './test/schema/app.ts',
	out: process.env.DOMI_OUT ?? './drizzle',
	dbCredentials: { url: process.env.DOMI_URL ?? 'postgresql://localhost/postgres' },
});
