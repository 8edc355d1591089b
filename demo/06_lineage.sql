\echo '--- 6. Migration lineage: what drizzle-kit and its migrator let through ---'
\echo 'domi.lineage_check(manifest, migrations_table) reads a migrations folder'
\echo '(the client domi-lineage sends it as {"format": ..., "files": {name: text}})'
\echo 'and the database''s record of what ran, and names each problem with its fix.'
\echo
-- A drizzle-kit folder: 0000_init, then 0001_seed made by "generate --custom"
-- (still the placeholder line), each with its snapshot.
CREATE TEMP TABLE folder (name text PRIMARY KEY, body text);
INSERT INTO folder VALUES
	('meta/_journal.json', '{"version": "7", "dialect": "postgresql", "entries": [
		{"idx": 0, "version": "7", "when": 1733000000000, "tag": "0000_init", "breakpoints": true},
		{"idx": 1, "version": "7", "when": 1733000100000, "tag": "0001_seed", "breakpoints": true}]}'),
	('0000_init.sql', 'CREATE TABLE "users" ("id" serial PRIMARY KEY NOT NULL, "name" text NOT NULL);'),
	('0001_seed.sql', '-- Custom SQL migration file, put your code below! --'),
	('meta/0000_snapshot.json', '{"id": "a0000000-0000-4000-8000-000000000000",
		"prevId": "00000000-0000-0000-0000-000000000000", "version": "7", "dialect": "postgresql",
		"tables": {"public.users": {"name": "users", "columns": {"id": {"type": "serial"}, "name": {"type": "text"}}}}}'),
	('meta/0001_snapshot.json', '{"id": "a0000001-0000-4000-8000-000000000000",
		"prevId": "a0000000-0000-4000-8000-000000000000", "version": "7", "dialect": "postgresql",
		"tables": {"public.users": {"name": "users", "columns": {"id": {"type": "serial"}, "name": {"type": "text"}}}}}');
CREATE TEMP VIEW manifest AS
	SELECT jsonb_build_object('format', 'drizzle', 'files', jsonb_object_agg(name, body)) AS m FROM folder;

\echo 'Before migrating: the custom migration is still empty.'
SELECT severity, code, migration, fix FROM domi.lineage_check((SELECT m FROM manifest));

\echo 'drizzle-kit migrate runs both anyway and records sha256 and "when" of each'
\echo 'in drizzle.__drizzle_migrations (simulated here with the same table).'
\echo 'The empty one ran nothing, and will never run what is written into it:'
CREATE SCHEMA drizzle;
CREATE TABLE drizzle.__drizzle_migrations (id serial PRIMARY KEY, hash text NOT NULL, created_at bigint);
INSERT INTO drizzle.__drizzle_migrations (hash, created_at)
	SELECT encode(sha256(convert_to(body, 'UTF8')), 'hex'), w
	FROM folder JOIN (VALUES ('0000_init.sql', 1733000000000), ('0001_seed.sql', 1733000100000)) AS j(name, w) USING (name);
SELECT severity, code, migration, fix FROM domi.lineage_check((SELECT m FROM manifest));

\echo 'Now someone writes the seed SQL into 0001_seed.sql. The migrator never looks'
\echo 'at a recorded hash again, so this SQL would never run:'
UPDATE folder SET body = body || E'\nINSERT INTO users (name) VALUES (''admin'');' WHERE name = '0001_seed.sql';
SELECT severity, code, migration, detail FROM domi.lineage_check((SELECT m FROM manifest));
UPDATE folder SET body = '-- Custom SQL migration file, put your code below! --' WHERE name = '0001_seed.sql';

\echo
\echo 'A branch merged: its 0001_tags, generated from 0000_init before 0001_seed,'
\echo 'renamed 0002_tags. Two snapshots now claim 0000 as parent, and its earlier'
\echo '"when" makes the migrator skip it without a word:'
INSERT INTO folder VALUES
	('0002_tags.sql', 'CREATE TABLE "tags" ("id" serial PRIMARY KEY NOT NULL);'),
	('meta/0002_snapshot.json', '{"id": "b0000001-0000-4000-8000-000000000000",
		"prevId": "a0000000-0000-4000-8000-000000000000", "version": "7", "dialect": "postgresql",
		"tables": {"public.users": {"name": "users", "columns": {"id": {"type": "serial"}, "name": {"type": "text"}}},
		           "public.tags": {"name": "tags", "columns": {"id": {"type": "serial"}}}}}');
UPDATE folder SET body = jsonb_set(body::jsonb, '{entries,2}',
		'{"idx": 2, "version": "7", "when": 1733000050000, "tag": "0002_tags", "breakpoints": true}', true)::text
	WHERE name = 'meta/_journal.json';
SELECT severity, code, migration, fix FROM domi.lineage_check((SELECT m FROM manifest));

DROP TABLE drizzle.__drizzle_migrations;
DROP SCHEMA drizzle;
\echo
\echo 'In CI, before drizzle-kit migrate: domi-lineage DIR (exit 1 on an error finding).'
\echo
