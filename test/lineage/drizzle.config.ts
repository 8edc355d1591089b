// drizzle-kit migrate for the lineage tests: the folder, the database and
// the migrations table come from the environment (DOMI_MIGRATIONS, the
// usual PG* variables, DOMI_MIGRATIONS_TABLE and DOMI_MIGRATIONS_SCHEMA).
import { defineConfig } from 'drizzle-kit';

export default defineConfig({
  dialect: 'postgresql',
  schema: './schema/base.ts',
  out: process.env.DOMI_MIGRATIONS ?? './fixtures/clean',
  migrations: {
    table: process.env.DOMI_MIGRATIONS_TABLE ?? '__drizzle_migrations',
    schema: process.env.DOMI_MIGRATIONS_SCHEMA ?? 'drizzle',
  },
  dbCredentials: {
    host: process.env.PGHOST ?? 'localhost',
    port: Number(process.env.PGPORT ?? 5432),
    user: process.env.PGUSER ?? 'postgres',
    database: process.env.PGDATABASE ?? 'postgres',
    ssl: false,
  },
});
