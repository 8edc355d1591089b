// drizzle-kit migrate for the ledger tests: the folder and the database
// come from the environment (DOMI_MIGRATIONS and the usual PG* variables).
module.exports = {
  dialect: 'postgresql',
  out: process.env.DOMI_MIGRATIONS,
  dbCredentials: {
    host: process.env.PGHOST,
    port: Number(process.env.PGPORT ?? 5432),
    user: process.env.PGUSER,
    database: process.env.PGDATABASE,
    ssl: false,
  },
};
