-- The DDL ledger: every DDL statement recorded with who, what and which
-- objects, secrets never stored, in-chain when its transaction recorded a
-- migration, adoptable; and drift of the live schema from a drizzle snapshot.
-- Starts from an empty ledger and leaves one behind.
SELECT domi.prune_ddl_ledger('0') >= 0 AS emptied;
SHOW domi.ddl_ledger;
CREATE VIEW ledger AS
	SELECT command_tag, statement, in_chain,
		ARRAY(SELECT o->>'identity' || CASE WHEN o ? 'dropped' THEN ' (dropped)' ELSE '' END
			FROM jsonb_array_elements(objects) o) AS objects
	FROM domi.ddl_ledger ORDER BY at;

-- One row per statement, with its own text, from a query string of several.
CREATE TABLE ledger_a (id int PRIMARY KEY, v text) \; CREATE INDEX ledger_a_v ON ledger_a (v);
SELECT * FROM ledger;
SELECT role = current_user AS role_ok, session_role = session_user AS session_ok,
	application_name = current_setting('application_name') AS app_ok,
	xid IS NOT NULL AS has_xid, at <= clock_timestamp() AS at_ok
FROM domi.ddl_ledger WHERE command_tag = 'CREATE TABLE';

-- DDL that a function runs is recorded with that function's text.
DO $$ BEGIN EXECUTE 'CREATE TABLE ledger_dyn (z int)'; END $$;
-- Drops name what they dropped.
ALTER TABLE ledger_a DROP COLUMN v;
DROP TABLE ledger_dyn;
SELECT * FROM ledger WHERE command_tag IN ('CREATE TABLE', 'ALTER TABLE', 'DROP TABLE') OFFSET 1;

-- Secrets never enter the ledger.  A password next to DDL in one query
-- string: only the DDL's own text is stored.
CREATE ROLE ledger_app;
ALTER ROLE ledger_app PASSWORD 'hunter2-secret' \; CREATE TABLE ledger_b (x int);
-- User mappings keep their option names, never the values.
CREATE FOREIGN DATA WRAPPER ledger_fdw;
CREATE SERVER ledger_srv FOREIGN DATA WRAPPER ledger_fdw;
CREATE USER MAPPING FOR ledger_app SERVER ledger_srv OPTIONS (user 'bob', password 'hunter3-secret');
ALTER USER MAPPING FOR ledger_app SERVER ledger_srv OPTIONS (SET password 'hunter4-secret', DROP user);
-- Keys and plaintext given to key functions, in any spelling.
CREATE TABLE ledger_k AS SELECT domi.secretbox_text('hunter5-secret', domi.gen_key()) AS box;
CREATE FUNCTION ledger_import() RETURNS int LANGUAGE sql
	AS $$ SELECT domi.import_tenant_key('00000000-0000-0000-0000-000000000001', '\x6875be7465723673656372657421'::bytea) $$;
CREATE VIEW ledger_v AS SELECT "domi"."secretbox"('hunter7-secret'::bytea, domi.gen_key()) AS b FROM ledger_b WHERE false;
SELECT count(*) AS statements_with_secrets FROM domi._ddl_ledger
WHERE statement ~* 'hunter|6875be|secretbox|import_tenant_key';
SELECT command_tag, statement FROM ledger
WHERE command_tag IN ('CREATE USER MAPPING', 'ALTER USER MAPPING', 'CREATE TABLE AS', 'CREATE FUNCTION', 'CREATE VIEW')
   OR statement LIKE '%ledger_b%';

-- Only a superuser turns the ledger off; for a transaction here.
BEGIN;
SET LOCAL domi.ddl_ledger = off;
CREATE TABLE ledger_unrecorded (x int);
COMMIT;
SELECT count(*) AS unrecorded FROM domi.ddl_ledger WHERE statement LIKE '%ledger_unrecorded%';
CREATE SCHEMA ledger_app_s AUTHORIZATION ledger_app;
SET ROLE ledger_app;
SET domi.ddl_ledger = off;
-- An ordinary role's DDL is recorded as that role; it cannot read the
-- ledger, prune it or adopt from it.
CREATE TABLE ledger_app_s.t (x int);
SELECT count(*) FROM domi.ddl_ledger;
SELECT domi.prune_ddl_ledger('1 day');
SELECT domi.adopt_ddl(gen_random_uuid(), 'mine');
SELECT severity, code FROM domi.ddl_ledger_findings();
RESET ROLE;
SELECT role, command_tag, statement FROM domi.ddl_ledger WHERE statement LIKE '%ledger_app_s.t%';
DROP SCHEMA ledger_app_s CASCADE;

-- In-chain: a drizzle migration records its row in the transaction that
-- ran its DDL.  Creating the migrations table tracks it (a row trigger).
SELECT domi.prune_ddl_ledger('0') >= 0 AS emptied;
CREATE SCHEMA drizzle;
CREATE TABLE drizzle.__drizzle_migrations (id SERIAL PRIMARY KEY, hash text NOT NULL, created_at bigint);
SELECT tgname LIKE 'domi_ledger_migrations%' AS tracked, tgisinternal FROM pg_trigger
WHERE tgrelid = 'drizzle.__drizzle_migrations'::regclass;
-- A migrations table of another name is tracked on request.
CREATE TABLE app_migrations (LIKE drizzle.__drizzle_migrations INCLUDING ALL);
SELECT domi.track_migrations('app_migrations'), domi.track_migrations('app_migrations');
BEGIN;
CREATE TABLE ledger_users (id serial PRIMARY KEY, name text NOT NULL);
INSERT INTO drizzle.__drizzle_migrations (hash, created_at) VALUES ('h0', 1);
COMMIT;
-- Out-of-chain: a hotfix by hand, in its own transaction.
CREATE OR REPLACE FUNCTION ledger_hotfix() RETURNS int LANGUAGE sql AS 'SELECT 1';
-- A temporary table is not schema: recorded, never a finding.
CREATE TEMP TABLE ledger_tmp (x int);
SELECT command_tag, in_chain, migration FROM domi.ddl_ledger ORDER BY at;
SELECT severity, code, migration, detail ~ '^CREATE FUNCTION by \S+ at \S+ \(transaction \d+, application ''pg_regress[^'']*''\) on public.ledger_hotfix\(\), no migration accounts for it: CREATE OR REPLACE FUNCTION ledger_hotfix\(\)' AS detail_ok,
	fix ~ 'domi.adopt_ddl\(''[0-9a-f-]{36}''' AS fix_ok
FROM domi.ddl_ledger_findings();
-- domi.lineage_check reports it, and the drift from the newest applied
-- snapshot (created_at 1 applied the entry with "when" 1), when the
-- manifest asks for schema truth; without, its findings are as before.
\set manifest '{"format": "drizzle", "files": {"meta/_journal.json": "{\\"version\\": \\"7\\", \\"dialect\\": \\"postgresql\\", \\"entries\\": [{\\"idx\\": 0, \\"version\\": \\"7\\", \\"when\\": 1, \\"tag\\": \\"0000_init\\", \\"breakpoints\\": true}]}", "meta/0000_snapshot.json": "{\\"tables\\": {\\"public.ledger_users\\": {\\"name\\": \\"ledger_users\\", \\"schema\\": \\"\\", \\"columns\\": {\\"id\\": {\\"name\\": \\"id\\", \\"type\\": \\"serial\\", \\"primaryKey\\": true, \\"notNull\\": true}, \\"name\\": {\\"name\\": \\"name\\", \\"type\\": \\"text\\", \\"primaryKey\\": false, \\"notNull\\": false}}}}}", "0000_init.sql": "CREATE TABLE ledger_users (id serial PRIMARY KEY, name text);"}}'
SELECT severity, code FROM domi.lineage_check(:'manifest'::jsonb || '{"schema_truth": true}')
WHERE code LIKE 'drift%' OR code LIKE 'out_of%';
SELECT count(*) AS schema_truth_findings FROM domi.lineage_check(:'manifest')
WHERE code LIKE 'drift%' OR code LIKE 'out_of%';
-- Adopting it: the finding goes away, with who and why.
SELECT domi.adopt_ddl(id, 'now in 0001_hotfix.sql') FROM domi.ddl_ledger WHERE command_tag = 'CREATE FUNCTION';
SELECT domi.adopt_ddl(id, 'again') FROM domi.ddl_ledger WHERE command_tag = 'CREATE FUNCTION';
SELECT adopted_by = session_user AS by_me, adopt_note FROM domi.ddl_ledger WHERE adopted_at IS NOT NULL;
SELECT count(*) AS findings FROM domi.ddl_ledger_findings();
SELECT domi.adopt_ddl('00000000-0000-0000-0000-000000000000', 'x');
SELECT domi.adopt_ddl(id, ' ') FROM domi.ddl_ledger WHERE command_tag = 'CREATE FUNCTION';
SELECT domi.prune_ddl_ledger('-1 day');

-- Prisma records a migration's row around its script, in other
-- transactions: DDL within started_at .. finished_at is in-chain.
CREATE TABLE _prisma_migrations (id varchar(36) PRIMARY KEY, checksum varchar(64) NOT NULL,
	finished_at timestamptz, migration_name varchar(255) NOT NULL, logs text,
	rolled_back_at timestamptz, started_at timestamptz NOT NULL DEFAULT now(),
	applied_steps_count integer NOT NULL DEFAULT 0);
INSERT INTO _prisma_migrations (id, checksum, migration_name, started_at) VALUES ('p1', 'c', '20240101000000_init', clock_timestamp());
CREATE TABLE "PrismaUser" (id serial PRIMARY KEY);
UPDATE _prisma_migrations SET finished_at = clock_timestamp(), applied_steps_count = 1 WHERE id = 'p1';
CREATE TABLE "PrismaLater" (id int);
SELECT statement, in_chain, migration FROM domi.ddl_ledger WHERE statement LIKE '%"Prisma%' ORDER BY at;

-- Drift: the live tables against a drizzle snapshot.
CREATE EXTENSION IF NOT EXISTS citext;
CREATE TYPE ledger_mood AS ENUM ('sad', 'ok');
CREATE TABLE ledger_drift (
	id serial PRIMARY KEY,
	name varchar(100) NOT NULL,
	email text,
	nick citext,
	note text,
	mood ledger_mood DEFAULT 'ok',
	user_id integer REFERENCES ledger_users (id)
);
CREATE INDEX ledger_drift_note ON ledger_drift (note);
SELECT severity, code, detail FROM domi.schema_drift($${
  "tables": {
    "public.ledger_drift": {"name": "ledger_drift", "schema": "",
      "columns": {
        "id": {"name": "id", "type": "serial", "primaryKey": true, "notNull": true},
        "name": {"name": "name", "type": "text", "primaryKey": false, "notNull": true},
        "email": {"name": "email", "type": "text", "primaryKey": false, "notNull": true, "default": "'none'"},
        "mood": {"name": "mood", "type": "ledger_mood", "typeSchema": "public", "primaryKey": false, "notNull": false, "default": "'ok'"},
        "user_id": {"name": "user_id", "type": "integer", "primaryKey": false, "notNull": false},
        "age": {"name": "age", "type": "integer", "primaryKey": false, "notNull": false}
      },
      "indexes": {"ledger_drift_email": {"name": "ledger_drift_email", "columns": [{"expression": "email", "isExpression": false}], "isUnique": true}},
      "foreignKeys": {"ledger_drift_user_id_fkey": {"name": "ledger_drift_user_id_fkey", "tableFrom": "ledger_drift", "tableTo": "ledger_users",
        "columnsFrom": ["user_id"], "columnsTo": ["id"], "onDelete": "cascade", "onUpdate": "no action"}},
      "compositePrimaryKeys": {}, "uniqueConstraints": {"ledger_drift_email_key": {"name": "ledger_drift_email_key", "columns": ["email"]}}},
    "public.ledger_gone": {"name": "ledger_gone", "schema": "", "columns": {}}
  },
  "enums": {"public.ledger_mood": {"name": "ledger_mood", "schema": "public", "values": ["sad", "ok", "happy"]}}
}$$);
-- The same table described as it is: no drift.
SELECT count(*) AS drift FROM domi.schema_drift($${
  "tables": {
    "public.ledger_drift": {"name": "ledger_drift", "schema": "",
      "columns": {
        "id": {"name": "id", "type": "serial", "primaryKey": true, "notNull": true},
        "name": {"name": "name", "type": "varchar(100)", "primaryKey": false, "notNull": true},
        "email": {"name": "email", "type": "text", "primaryKey": false, "notNull": false},
        "nick": {"name": "nick", "type": "citext", "primaryKey": false, "notNull": false},
        "note": {"name": "note", "type": "text", "primaryKey": false, "notNull": false},
        "mood": {"name": "mood", "type": "ledger_mood", "typeSchema": "public", "primaryKey": false, "notNull": false, "default": "'ok'"},
        "user_id": {"name": "user_id", "type": "integer", "primaryKey": false, "notNull": false}
      },
      "indexes": {"ledger_drift_note": {"name": "ledger_drift_note", "columns": [{"expression": "note", "isExpression": false}], "isUnique": false}},
      "foreignKeys": {"ledger_drift_user_id_fkey": {"name": "ledger_drift_user_id_fkey", "tableFrom": "ledger_drift", "tableTo": "ledger_users",
        "columnsFrom": ["user_id"], "columnsTo": ["id"], "onDelete": "no action", "onUpdate": "no action"}},
      "compositePrimaryKeys": {}, "uniqueConstraints": {}}
  },
  "enums": {"public.ledger_mood": {"name": "ledger_mood", "schema": "public", "values": ["sad", "ok"]}}
}$$);
SELECT count(*) FROM domi.schema_drift('{}');
SELECT count(*) FROM domi.schema_drift(NULL);

-- Clean up, and leave the ledger empty for the files that follow.
DROP TABLE app_migrations, ledger_drift, ledger_users, ledger_a, ledger_b, ledger_k, "PrismaUser", "PrismaLater", _prisma_migrations CASCADE;
DROP TYPE ledger_mood;
DROP EXTENSION citext;
DROP FUNCTION ledger_import(), ledger_hotfix();
DROP SCHEMA drizzle CASCADE;
DROP SERVER ledger_srv CASCADE;
DROP FOREIGN DATA WRAPPER ledger_fdw;
DROP ROLE ledger_app;
DROP VIEW ledger;
SELECT domi.prune_ddl_ledger('0') >= 0 AS emptied;
