// drizzle-kit migrate for the lineage tests: the folder and the database
// come from the environment (DOMI_MIGRATIONS and the usual PG* variables).
import { defineConfig } from 'drizzle-kit';

export default defineConfig({
  dialect: 'postgresql',
  schema: './schema/base.ts',
  out: process.env.DOMI_MIGRATIONS ?? './fixtures/clean',
  dbCredentials: {
    host: process.env.PGHOST ?? 'localhost',
    port: Number(process.env.PGPORT ?? 5432),
    user: process.env.PGUSER ?? 'postgres',
    database: process.env.PGDATABASE ?? 'postgres',
    ssl: false,
  },
});
