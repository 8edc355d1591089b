-- Once per database, as a superuser (the extension's owner), before the
-- first migration (docs/drizzle.md, "Three roles"):
--   psql -d chat -f db/setup.sql
-- The server needs shared_preload_libraries = 'domi' and a keyring root key
-- (domi.root_key_file).
DO $$
BEGIN
	-- The migrator owns the tables; app_user is the application.  Neither
	-- is a superuser nor has BYPASSRLS.
	IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'migrator') THEN
		CREATE ROLE migrator LOGIN;
	END IF;
	IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app_user') THEN
		CREATE ROLE app_user LOGIN;
	END IF;
	-- drizzle-kit migrate creates the schema "drizzle" for its journal.
	EXECUTE format('GRANT CREATE ON DATABASE %I TO migrator', current_database());
END $$;

CREATE EXTENSION IF NOT EXISTS domi;

GRANT CREATE, USAGE ON SCHEMA public TO migrator;
GRANT USAGE ON SCHEMA public TO app_user;
ALTER DEFAULT PRIVILEGES FOR ROLE migrator IN SCHEMA public
	GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO app_user;
ALTER DEFAULT PRIVILEGES FOR ROLE migrator IN SCHEMA public
	GRANT USAGE ON SEQUENCES TO app_user;
-- The keyring and the sign-in lookup; both are revoked from PUBLIC.
GRANT EXECUTE ON FUNCTION domi.encrypt_text(text), domi.decrypt_text(bytea),
	domi.enter_tenant(text, uuid) TO app_user;
