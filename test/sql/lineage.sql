-- Migration lineage: domi.lineage_check() on drizzle-kit folders (the
-- fixtures that test/lineage/make-fixtures.sh made with drizzle-kit,
-- read with pg_read_file), edited the way each scenario says, and on
-- hand-written JSON for malformed input only.
\getenv abs_srcdir PG_ABS_SRCDIR
\set fixtures :abs_srcdir '/lineage/fixtures'
SET client_min_messages = warning;

-- A folder as the manifest domi-lineage sends: every *.sql and meta/*.json.
CREATE FUNCTION pg_temp.folder(dir text) RETURNS jsonb LANGUAGE sql AS $$
	SELECT jsonb_build_object('format', 'drizzle', 'files',
		(SELECT jsonb_object_agg(name, pg_read_file(dir || '/' || name))
		 FROM (SELECT f AS name FROM pg_ls_dir(dir) f WHERE f LIKE '%.sql'
		       UNION ALL
		       SELECT 'meta/' || f FROM pg_ls_dir(dir || '/meta') f) files))
$$;
CREATE FUNCTION pg_temp.file(m jsonb, name text) RETURNS text LANGUAGE sql
	AS $$ SELECT m->'files'->>name $$;
CREATE FUNCTION pg_temp.put(m jsonb, name text, content text) RETURNS jsonb LANGUAGE sql
	AS $$ SELECT jsonb_set(m, ARRAY['files', name], to_jsonb(content)) $$;
CREATE FUNCTION pg_temp.drop(m jsonb, name text) RETURNS jsonb LANGUAGE sql
	AS $$ SELECT m #- ARRAY['files', name] $$;
-- Edit one JSON file of the manifest (journal, snapshot) at a path.
CREATE FUNCTION pg_temp.edit(m jsonb, name text, path text[], value jsonb) RETURNS jsonb LANGUAGE sql
	AS $$ SELECT pg_temp.put(m, name, jsonb_pretty(jsonb_set(pg_temp.file(m, name)::jsonb, path, value))) $$;
CREATE FUNCTION pg_temp.snapshot_id(m jsonb, n text) RETURNS text LANGUAGE sql
	AS $$ SELECT pg_temp.file(m, 'meta/' || n || '_snapshot.json')::jsonb->>'id' $$;
CREATE FUNCTION pg_temp.sha256(t text) RETURNS text LANGUAGE sql
	AS $$ SELECT encode(sha256(convert_to(t, 'UTF8')), 'hex') $$;

CREATE TEMP TABLE folders (name text PRIMARY KEY, m jsonb);
INSERT INTO folders VALUES
	('clean', pg_temp.folder(:'fixtures' || '/clean')),
	('collision', pg_temp.folder(:'fixtures' || '/collision')),
	('placeholder', pg_temp.folder(:'fixtures' || '/placeholder')),
	('skipped', pg_temp.folder(:'fixtures' || '/skipped/after'));
CREATE FUNCTION pg_temp.m(n text) RETURNS jsonb LANGUAGE sql
	AS $$ SELECT m FROM folders WHERE name = n $$;
SELECT name, (SELECT count(*) FROM jsonb_object_keys(m->'files')) AS files FROM folders ORDER BY name;

-- 1. Bad manifests: an error with SQLSTATE 22023 (22004 for NULL), no rows.
\set VERBOSITY default
SELECT * FROM domi.lineage_check('[1, 2]');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM domi.lineage_check('{"format": "flyway", "files": {}}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM domi.lineage_check('{"format": "drizzle"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM domi.lineage_check('{"files": {"0000_init.sql": 42}}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM domi.lineage_check(NULL);
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- 2. A clean folder, no migrations table yet: only the info row.
SELECT * FROM domi.lineage_check(pg_temp.m('clean'));
-- An empty folder: no journal.
SELECT severity, code, migration FROM domi.lineage_check('{"files": {}}');

-- Malformed files are findings, and the rest is still checked.
-- (Hand-written JSON: a truncated journal, a snapshot that is not JSON.)
SELECT severity, code, migration, detail FROM domi.lineage_check(
	pg_temp.put(pg_temp.m('clean'), 'meta/_journal.json', '{"version": "7", "entries": [{"idx": 0,'));
SELECT severity, code, migration, detail FROM domi.lineage_check(
	pg_temp.put(pg_temp.m('clean'), 'meta/0001_snapshot.json', '{"id": "x", prevId: }'));
SELECT severity, code, migration, detail FROM domi.lineage_check(
	pg_temp.put(pg_temp.m('clean'), 'meta/0001_snapshot.json', '["not", "an", "object"]'));
SELECT severity, code, migration, detail FROM domi.lineage_check(
	pg_temp.edit(pg_temp.m('clean'), 'meta/_journal.json', '{entries,1}', '{"idx": 1, "tag": "0001_posts"}'));
-- \u0000 is valid JSON (Node reads it) but no PostgreSQL text: in an id it
-- cannot be read (malformed, not an aborted call); elsewhere it is fine.
SELECT severity, code, migration FROM domi.lineage_check(
	pg_temp.put(pg_temp.m('clean'), 'meta/0002_snapshot.json', '{"id": "\u0000"}'));
SELECT severity, code, migration FROM domi.lineage_check(
	pg_temp.put(pg_temp.m('clean'), 'meta/0002_snapshot.json',
		replace(pg_temp.file(pg_temp.m('clean'), 'meta/0002_snapshot.json'), '"name": "users"', '"name": "us\u0000ers"')));
-- Escaped members are decoded: "\u0030" is "0", so this prevId is unchanged.
SELECT severity, code, migration FROM domi.lineage_check(
	pg_temp.put(pg_temp.m('clean'), 'meta/0000_snapshot.json',
		replace(pg_temp.file(pg_temp.m('clean'), 'meta/0000_snapshot.json'), '"prevId": "0', '"prevId": "\u0030')));

-- 3. Parallel branches merged (the incident): 0002_user_email and
-- 0003_backfill both have 0001's id as prevId; 0003 is a --custom
-- migration whose snapshot was copied from 0001 and lacks users.email.
SELECT severity, code, migration, detail, fix FROM domi.lineage_check(pg_temp.m('collision'));
-- A --custom snapshot that jsonb cannot hold (\u0000) cannot be compared:
-- it says so instead of guessing.
SELECT severity, code, migration, detail FROM domi.lineage_check(
	pg_temp.put(pg_temp.m('collision'), 'meta/0003_snapshot.json',
		replace(pg_temp.file(pg_temp.m('collision'), 'meta/0003_snapshot.json'), '"name": "users"', '"name": "us\u0000ers"')))
	WHERE code <> 'no_migrations_table';
-- The fix the finding names, applied: the right prevId, and 0002's tables
-- in 0003's snapshot.  Then nothing is left.
UPDATE folders SET m = pg_temp.edit(m, 'meta/0003_snapshot.json', '{prevId}',
		to_jsonb(pg_temp.snapshot_id(m, '0002')))
	WHERE name = 'collision';
SELECT code, migration FROM domi.lineage_check(pg_temp.m('collision'));
UPDATE folders SET m = pg_temp.edit(m, 'meta/0003_snapshot.json', '{tables}',
		pg_temp.file(m, 'meta/0002_snapshot.json')::jsonb->'tables')
	WHERE name = 'collision';
SELECT code, migration FROM domi.lineage_check(pg_temp.m('collision'));

-- 0002 re-chained onto 0000 by mistake: two children of 0000, and the one
-- out of journal order is the one to fix.
SELECT code, migration, fix FROM domi.lineage_check(
	pg_temp.edit(pg_temp.edit(pg_temp.m('clean'),
		'meta/0001_snapshot.json', '{prevId}', to_jsonb(pg_temp.snapshot_id(pg_temp.m('clean'), '0000'))),
		'meta/0002_snapshot.json', '{prevId}', to_jsonb(pg_temp.snapshot_id(pg_temp.m('clean'), '0000'))))
	WHERE code = 'snapshot_prev_collision';
-- The collision folder as fixed above, re-chained as if 0002 branched off
-- 0000 and merged into the line 0001 <- 0003: re-pointing 0002 at 0001
-- would leave 0002 and 0003 both on 0001, so the fix re-points 0003 too.
-- Applied word for word, it leaves one chain in journal order.
CREATE FUNCTION pg_temp.apply_prev_fixes(m jsonb, fix text) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
	step text[];
BEGIN
	FOR step IN SELECT regexp_matches(fix, 'set prevId of (\S+) to "([^"]+)"', 'gi') LOOP
		m := pg_temp.edit(m, step[1], '{prevId}', to_jsonb(step[2]));
	END LOOP;
	RETURN m;
END;
$$;
SELECT pg_temp.edit(pg_temp.edit(pg_temp.m('collision'),
		'meta/0002_snapshot.json', '{prevId}', to_jsonb(pg_temp.snapshot_id(pg_temp.m('collision'), '0000'))),
		'meta/0003_snapshot.json', '{prevId}', to_jsonb(pg_temp.snapshot_id(pg_temp.m('collision'), '0001'))) AS branched \gset
SELECT code, migration, fix FROM domi.lineage_check(:'branched') WHERE code LIKE 'snapshot%';
SELECT code, migration FROM domi.lineage_check(pg_temp.apply_prev_fixes(:'branched',
		(SELECT fix FROM domi.lineage_check(:'branched') WHERE code = 'snapshot_prev_collision')))
	WHERE code <> 'no_migrations_table';
SELECT code, migration, detail, fix FROM domi.lineage_check(
	pg_temp.put(pg_temp.m('clean'), 'meta/0009_snapshot.json',
		jsonb_set(pg_temp.file(pg_temp.m('clean'), 'meta/0002_snapshot.json')::jsonb,
			'{id}', '"99999999-9999-9999-9999-999999999999"')::text))
	WHERE code <> 'no_migrations_table';

-- 4. The chain: an unknown prevId, a duplicate id, a cycle, two heads, an
-- old snapshot version.
SELECT code, migration, fix FROM domi.lineage_check(
	pg_temp.edit(pg_temp.m('clean'), 'meta/0002_snapshot.json', '{prevId}', '"aaaaaaaa-0000-0000-0000-000000000000"'))
	WHERE code <> 'no_migrations_table';
SELECT code, migration, detail FROM domi.lineage_check(
	pg_temp.edit(pg_temp.m('clean'), 'meta/0002_snapshot.json', '{id}',
		to_jsonb(pg_temp.snapshot_id(pg_temp.m('clean'), '0001'))))
	WHERE code <> 'no_migrations_table';
SELECT code, migration, detail FROM domi.lineage_check(
	pg_temp.edit(pg_temp.m('clean'), 'meta/0000_snapshot.json', '{prevId}',
		to_jsonb(pg_temp.snapshot_id(pg_temp.m('clean'), '0002'))))
	WHERE code <> 'no_migrations_table';
SELECT code, migration, detail FROM domi.lineage_check(
	pg_temp.edit(pg_temp.edit(pg_temp.m('clean'), 'meta/0002_snapshot.json', '{prevId}', '"00000000-0000-0000-0000-000000000000"'),
		'meta/0002_snapshot.json', '{version}', '"5"'))
	WHERE code <> 'no_migrations_table';

-- 5. The journal and the files: a missing SQL file and snapshot, files
-- the journal does not list, an idx gap, "when" not increasing and in the
-- future, a duplicate tag.
SELECT code, migration FROM domi.lineage_check(
	pg_temp.drop(pg_temp.drop(pg_temp.m('clean'), '0001_posts.sql'), 'meta/0002_snapshot.json'))
	WHERE code <> 'no_migrations_table';
SELECT code, migration, fix FROM domi.lineage_check(
	pg_temp.put(pg_temp.put(pg_temp.m('clean'), '0003_hotfix.sql', 'ALTER TABLE users ADD COLUMN x int;'),
		'meta/0003_snapshot.json', pg_temp.file(pg_temp.m('clean'), 'meta/0002_snapshot.json')))
	WHERE code <> 'no_migrations_table';
-- Two branches generated the same number: 0001_posts and 0001_tags share
-- meta/0001_snapshot.json, and the other snapshot is not in the journal.
SELECT code, migration, fix FROM domi.lineage_check(
	pg_temp.put(pg_temp.edit(pg_temp.m('clean'), 'meta/_journal.json', '{entries,2,tag}', '"0001_tags"'),
		'0001_tags.sql', pg_temp.file(pg_temp.m('clean'), '0002_user_email.sql')) #- '{files,0002_user_email.sql}')
	WHERE code <> 'no_migrations_table';
SELECT code, migration, fix FROM domi.lineage_check(
	pg_temp.edit(pg_temp.m('clean'), 'meta/_journal.json', '{entries,2,idx}', '5'))
	WHERE code <> 'no_migrations_table';
SELECT code, migration, detail, fix FROM domi.lineage_check(pg_temp.m('skipped'))
	WHERE code <> 'no_migrations_table';
SELECT code, migration FROM domi.lineage_check(
	pg_temp.edit(pg_temp.m('clean'), 'meta/_journal.json', '{entries,2,when}', '99999999999999'))
	WHERE code <> 'no_migrations_table';
SELECT code, migration FROM domi.lineage_check(
	pg_temp.edit(pg_temp.m('clean'), 'meta/_journal.json', '{entries,2,tag}', '"0001_posts"'))
	WHERE code <> 'no_migrations_table';

-- 6. The database's record.  The table as drizzle-orm's migrator creates it,
-- filled as drizzle-kit migrate fills it: sha256 of each file, "when" as
-- created_at (test/lineage runs the real drizzle-kit migrate).
CREATE SCHEMA drizzle;
CREATE TABLE drizzle.__drizzle_migrations (id SERIAL PRIMARY KEY, hash text NOT NULL, created_at bigint);
-- Like the migrator: entries up to idx "upto" whose "when" is later than the
-- newest created_at.
CREATE FUNCTION pg_temp.migrate(m jsonb, upto int) RETURNS void LANGUAGE sql AS $$
	INSERT INTO drizzle.__drizzle_migrations (hash, created_at)
	SELECT pg_temp.sha256(pg_temp.file(m, (e->>'tag') || '.sql')), (e->>'when')::bigint
	FROM jsonb_array_elements((pg_temp.file(m, 'meta/_journal.json')::jsonb)->'entries') e
	WHERE (e->>'idx')::int <= upto
	  AND (e->>'when')::bigint > (SELECT coalesce(max(created_at), 0) FROM drizzle.__drizzle_migrations)
	ORDER BY (e->>'idx')::int
$$;
SELECT pg_temp.migrate(pg_temp.m('clean'), 1);
-- Two applied, one pending: the default table is found.
SELECT severity, code, migration, detail FROM domi.lineage_check(pg_temp.m('clean'));
SELECT pg_temp.migrate(pg_temp.m('clean'), 2);
SELECT count(*) AS findings FROM domi.lineage_check(pg_temp.m('clean'));

-- An applied file edited afterwards.
SELECT severity, code, migration, fix FROM domi.lineage_check(
	pg_temp.put(pg_temp.m('clean'), '0001_posts.sql',
		pg_temp.file(pg_temp.m('clean'), '0001_posts.sql') || E'\nCREATE INDEX ON posts (user_id);'));
-- A row nobody's file has, and a row without created_at.
INSERT INTO drizzle.__drizzle_migrations (hash, created_at) VALUES (repeat('ab', 32), 1700000000000);
SELECT severity, code, migration, detail FROM domi.lineage_check(pg_temp.m('clean'));
INSERT INTO drizzle.__drizzle_migrations (hash, created_at)
	VALUES (pg_temp.sha256(pg_temp.file(pg_temp.m('clean'), '0002_user_email.sql')), NULL);
SELECT severity, code, migration, fix FROM domi.lineage_check(pg_temp.m('clean'))
	WHERE code = 'applied_created_at_null';
-- A recorded "when" that the journal changed since, and a row recorded twice.
TRUNCATE drizzle.__drizzle_migrations RESTART IDENTITY;
SELECT pg_temp.migrate(pg_temp.m('clean'), 2);
UPDATE drizzle.__drizzle_migrations SET created_at = created_at - 1 WHERE id = 2;
INSERT INTO drizzle.__drizzle_migrations (hash, created_at) SELECT hash, created_at FROM drizzle.__drizzle_migrations WHERE id = 3;
SELECT severity, code, migration, fix FROM domi.lineage_check(pg_temp.m('clean'));

-- The placeholder applied, then edited: the SQL written since never ran.
TRUNCATE drizzle.__drizzle_migrations RESTART IDENTITY;
SELECT pg_temp.migrate(pg_temp.m('placeholder'), 1);
SELECT severity, code, migration FROM domi.lineage_check(pg_temp.m('placeholder'));
SELECT severity, code, migration, detail, fix FROM domi.lineage_check(
	pg_temp.put(pg_temp.m('placeholder'), '0001_seed.sql',
		pg_temp.file(pg_temp.m('placeholder'), '0001_seed.sql') || E'\nINSERT INTO users (name) VALUES (''admin'');\n'));
-- The same with the older placeholder text (drizzle-kit 0.28.0 and before, "put
-- you code"), saved by an editor with a final newline; and with an empty file.
UPDATE drizzle.__drizzle_migrations SET hash = pg_temp.sha256(E'-- Custom SQL migration file, put you code below! --\n') WHERE id = 2;
SELECT code, migration FROM domi.lineage_check(
	pg_temp.put(pg_temp.m('placeholder'), '0001_seed.sql', E'-- Custom SQL migration file, put you code below! --\nSELECT 1;\n'));
UPDATE drizzle.__drizzle_migrations SET hash = pg_temp.sha256('') WHERE id = 2;
SELECT code, migration, detail FROM domi.lineage_check(
	pg_temp.put(pg_temp.m('placeholder'), '0001_seed.sql', 'SELECT 1;'));

-- A pending migration the migrator would skip: the merged 0002_tags has an
-- earlier "when" than 0001_comments, which staging applied.
TRUNCATE drizzle.__drizzle_migrations RESTART IDENTITY;
SELECT pg_temp.migrate(pg_temp.m('skipped'), 1);
SELECT severity, code, migration, fix FROM domi.lineage_check(pg_temp.m('skipped'));

-- 7. Another table, given explicitly; one that is not a migrations table;
-- a caller without SELECT on the table gets permission denied.
CREATE TABLE app_migrations (LIKE drizzle.__drizzle_migrations INCLUDING ALL);
SELECT code, migration FROM domi.lineage_check(pg_temp.m('skipped'), 'app_migrations');
-- A table whose name is an SQL injection is only ever quoted: it is read,
-- and nothing else happens.
CREATE TABLE "m""; DROP TABLE app_migrations; --" (LIKE drizzle.__drizzle_migrations INCLUDING ALL);
SELECT code, migration FROM domi.lineage_check(pg_temp.m('skipped'), '"m""; DROP TABLE app_migrations; --"');
-- Row ids go into the SQL of a fix; one that is not a number is a literal.
CREATE TABLE text_id_migrations (id text, hash text, created_at bigint);
INSERT INTO text_id_migrations SELECT '0', hash, created_at FROM drizzle.__drizzle_migrations WHERE id = 1;
INSERT INTO text_id_migrations SELECT '1; DROP TABLE app_migrations; --', hash, created_at FROM drizzle.__drizzle_migrations WHERE id = 1;
SELECT code, fix FROM domi.lineage_check(pg_temp.m('skipped'), 'text_id_migrations') WHERE code = 'applied_twice';
DROP TABLE text_id_migrations;
SELECT to_regclass('app_migrations') IS NOT NULL AS app_migrations_still_there;
DROP TABLE "m""; DROP TABLE app_migrations; --";
CREATE TABLE not_migrations (id int);
SELECT * FROM domi.lineage_check(pg_temp.m('clean'), 'not_migrations');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
CREATE ROLE lineage_reader;
GRANT USAGE ON SCHEMA drizzle TO lineage_reader;
SELECT m AS skipped FROM folders WHERE name = 'skipped' \gset
SET ROLE lineage_reader;
SELECT * FROM domi.lineage_check(:'skipped');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;
GRANT SELECT ON drizzle.__drizzle_migrations TO lineage_reader;
SET ROLE lineage_reader;
SELECT code, migration FROM domi.lineage_check(:'skipped');
RESET ROLE;
-- The checker only reads: the table is as it was.
SELECT count(*) AS rows_still_there FROM drizzle.__drizzle_migrations;

-- 8. Prisma: a prisma/migrations folder (hand-made: Prisma's CLI needs
-- engines downloaded from the internet) against _prisma_migrations as
-- Prisma creates it.
CREATE TABLE _prisma_migrations (
	"id" VARCHAR(36) NOT NULL,
	"checksum" VARCHAR(64) NOT NULL,
	"finished_at" TIMESTAMPTZ,
	"migration_name" VARCHAR(255) NOT NULL,
	"logs" TEXT,
	"rolled_back_at" TIMESTAMPTZ,
	"started_at" TIMESTAMPTZ NOT NULL DEFAULT now(),
	"applied_steps_count" INTEGER NOT NULL DEFAULT 0,
	CONSTRAINT "_prisma_migrations_pkey" PRIMARY KEY ("id")
);
INSERT INTO folders VALUES ('prisma', jsonb_build_object('format', 'prisma', 'files', jsonb_build_object(
	'migration_lock.toml', E'# Please do not edit this file manually\nprovider = "postgresql"\n',
	'20240101000000_init/migration.sql', E'-- CreateTable\nCREATE TABLE "User" ("id" SERIAL NOT NULL);\n',
	'20240201000000_posts/migration.sql', E'-- CreateTable\r\nCREATE TABLE "Post" ("id" SERIAL NOT NULL);\r\n',
	'20240301000000_tags/migration.sql', E'CREATE TABLE "Tag" ("id" SERIAL NOT NULL);\n')));
-- Applied as Prisma would on Linux: the CRLF file's checksum was taken of
-- its LF form (a checkout on another system); the third is pending.
INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name, started_at, applied_steps_count) VALUES
	('a1', pg_temp.sha256(pg_temp.file(pg_temp.m('prisma'), '20240101000000_init/migration.sql')), now(), '20240101000000_init', now() - interval '2 min', 1),
	('a2', pg_temp.sha256(replace(pg_temp.file(pg_temp.m('prisma'), '20240201000000_posts/migration.sql'), E'\r\n', E'\n')), now(), '20240201000000_posts', now() - interval '1 min', 1);
SELECT severity, code, migration, detail FROM domi.lineage_check(pg_temp.m('prisma'));
-- Failed (neither finished nor rolled back), rolled back (history), edited
-- after it ran, applied but missing locally, pending but older than the
-- newest applied, a lock file for another provider.
INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name, rolled_back_at, started_at) VALUES
	('b1', repeat('0', 64), NULL, '20240301000000_tags', now(), now()),
	('b2', repeat('0', 64), NULL, '20240301000000_tags', NULL, now() + interval '1 s'),
	('b3', repeat('1', 64), now(), '20240401000000_hotfix', NULL, now() + interval '2 s');
SELECT severity, code, migration, fix FROM domi.lineage_check(
	pg_temp.put(pg_temp.put(pg_temp.put(pg_temp.m('prisma'),
		'20240101000000_init/migration.sql', E'-- CreateTable\nCREATE TABLE "User" ("id" SERIAL NOT NULL, "email" TEXT);\n'),
		'20240115000000_branch/migration.sql', E'CREATE INDEX ON "User" ("id");\n'),
		'migration_lock.toml', E'provider = "mysql"\n'));
-- A table given explicitly that is not Prisma's.
SELECT * FROM domi.lineage_check(pg_temp.m('prisma'), 'drizzle.__drizzle_migrations');
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- 9. Hostile and odd input, read the way Node's JSON.parse and the
-- migrators read it.  An empty migrations table: every entry is pending.
TRUNCATE drizzle.__drizzle_migrations RESTART IDENTITY;
-- Nesting deeper than PostgreSQL's parser recurses is a finding, not
-- "stack depth limit exceeded" for the whole call.
SELECT severity, code, migration, detail FROM domi.lineage_check(
	pg_temp.put(pg_temp.put(pg_temp.m('clean'), 'meta/0002_snapshot.json',
		'{"id": "x", "deep": ' || repeat('[', 100000) || repeat(']', 100000) || '}'),
		'meta/_journal.json', '{"entries": [' || repeat('{"a":', 50000) || '1' || repeat('}', 50000) || ']}'),
	'drizzle.__drizzle_migrations') WHERE code <> 'pending';
-- 1000 levels are read (and so are brackets inside strings).
SELECT code, migration FROM domi.lineage_check(
	pg_temp.put(pg_temp.m('clean'), 'meta/0002_snapshot.json',
		jsonb_set(pg_temp.file(pg_temp.m('clean'), 'meta/0002_snapshot.json')::jsonb, '{deep}',
			(repeat('[', 999) || '"' || repeat('[', 5000) || '"' || repeat(']', 999))::jsonb)::text))
	WHERE code <> 'pending';
-- A member given twice counts by its last value, as in JSON.parse: a
-- second "entries" array replaces the first, a second "tag" the first; a
-- snapshot's id given again after its other members, or as a number.
SELECT code, migration FROM domi.lineage_check(
	pg_temp.put(pg_temp.m('clean'), 'meta/_journal.json',
		rtrim(rtrim(pg_temp.file(pg_temp.m('clean'), 'meta/_journal.json')), '}') ||
		', "entries": [{"idx": 0, "when": 1700000000000, "tag": "0002_user_email", "tag": "0000_init"}]}'),
	'drizzle.__drizzle_migrations') WHERE code <> 'pending';
SELECT code, migration, detail FROM domi.lineage_check(
	pg_temp.put(pg_temp.m('clean'), 'meta/0002_snapshot.json',
		rtrim(rtrim(pg_temp.file(pg_temp.m('clean'), 'meta/0002_snapshot.json')), '}') ||
		', "id": "22222222-2222-2222-2222-222222222222", "prevId": "33333333-3333-3333-3333-333333333333"}'),
	'drizzle.__drizzle_migrations') WHERE code <> 'pending';
SELECT code, migration, detail FROM domi.lineage_check(
	pg_temp.put(pg_temp.m('clean'), 'meta/0002_snapshot.json',
		rtrim(rtrim(pg_temp.file(pg_temp.m('clean'), 'meta/0002_snapshot.json')), '}') || ', "id": 2}'),
	'drizzle.__drizzle_migrations') WHERE code <> 'pending';
-- Members before "id" with escaped quotes and backslashes, and brackets in
-- strings, are stepped over: the header is read as it is.
SELECT code, migration FROM domi.lineage_check(
	pg_temp.put(pg_temp.m('clean'), 'meta/0002_snapshot.json',
		'{"x": "a\\\"}\\\\", "y": ["\\\\\"", {"z": "]"}, 1e5, true], ' ||
		ltrim(ltrim(pg_temp.file(pg_temp.m('clean'), 'meta/0002_snapshot.json')), '{')),
	'drizzle.__drizzle_migrations') WHERE code <> 'pending';
-- The first journal entry unreadable: the next one is not the first
-- migration, so its prevId (0000's id) is not to be made the origin.
SELECT code, migration FROM domi.lineage_check(
	pg_temp.edit(pg_temp.m('clean'), 'meta/_journal.json', '{entries,0,when}', '"soon"'),
	'drizzle.__drizzle_migrations') WHERE code <> 'pending';
-- A snapshot from a newer drizzle-kit: "drizzle-kit up" cannot help.
SELECT code, detail, fix FROM domi.lineage_check(
	pg_temp.edit(pg_temp.m('clean'), 'meta/0002_snapshot.json', '{version}', '"8"'),
	'drizzle.__drizzle_migrations') WHERE code <> 'pending';
-- A row without created_at: the migrator compares with 0 and runs every
-- migration again, so a pending one with an early "when" is not skipped.
SELECT pg_temp.migrate(pg_temp.m('skipped'), 1);
INSERT INTO drizzle.__drizzle_migrations (hash, created_at) VALUES (repeat('cd', 32), NULL);
SELECT severity, code, migration FROM domi.lineage_check(pg_temp.m('skipped'));
DELETE FROM drizzle.__drizzle_migrations WHERE created_at IS NULL;
-- Prisma's checksums as schema-engine compares them: a checksum shorter
-- than 64 characters is the digest without zero-padding (written by early
-- versions), the CRLF variant is of the file as it is (a CRLF becomes
-- CR CR LF), and the hex is lower case.
CREATE FUNCTION pg_temp.unpadded(t text) RETURNS text LANGUAGE sql AS $$
	SELECT string_agg(to_hex(get_byte(d, i)), '' ORDER BY i)
	FROM (SELECT sha256(convert_to(t, 'UTF8')) AS d) s, generate_series(0, 31) i
$$;
TRUNCATE _prisma_migrations;
INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name, started_at) VALUES
	('c1', pg_temp.unpadded(pg_temp.file(pg_temp.m('prisma'), '20240101000000_init/migration.sql')), now(), '20240101000000_init', now() - interval '3 min'),
	('c2', pg_temp.sha256(E'A\r\r\nB\r\n'), now(), '20240201000000_posts', now() - interval '2 min'),
	('c3', upper(pg_temp.sha256(pg_temp.file(pg_temp.m('prisma'), '20240301000000_tags/migration.sql'))), now(), '20240301000000_tags', now() - interval '1 min');
SELECT length(checksum) < 64 AS unpadded_is_shorter FROM _prisma_migrations WHERE id = 'c1';
SELECT code, migration FROM domi.lineage_check(
	pg_temp.put(pg_temp.m('prisma'), '20240201000000_posts/migration.sql', E'A\r\nB\n'));

-- 10. Mutated folders (truncated files, stray brackets, quotes, escapes,
-- renamed keys), with a fixed seed: no call raises an error or takes the
-- backend down (the folder has pending migrations, so every call has
-- findings).
SELECT setseed(0.42);
CREATE FUNCTION pg_temp.mutate(t text) RETURNS text LANGUAGE sql VOLATILE AS $$
	SELECT CASE (random() * 4)::int
		WHEN 0 THEN left(t, (random() * length(t))::int)
		WHEN 1 THEN overlay(t placing (ARRAY['{', '}', '[', ']', '"', '\', ',', ':', '\u0000', '\u00e9', '1e999', '-', 'null'])[1 + (random() * 12)::int]
			from 1 + (random() * (length(t) - 1))::int for (random() * 3)::int)
		WHEN 2 THEN t || (ARRAY['{', '"', ']', '}'])[1 + (random() * 3)::int]
		ELSE regexp_replace(t, '"(id|prevId|version|when|idx|tag)"', '"\1x"')
	END
$$;
CREATE FUNCTION pg_temp.fuzz(iterations int, OUT errors int, OUT calls_without_findings int)
LANGUAGE plpgsql AS $$
DECLARE
	m jsonb;
	n bigint;
BEGIN
	errors := 0;
	calls_without_findings := 0;
	FOR i IN 1..iterations LOOP
		SELECT jsonb_build_object('format', 'drizzle', 'files',
				jsonb_object_agg(f.key, CASE WHEN random() < 0.3 THEN pg_temp.mutate(f.value) ELSE f.value END))
			INTO m
			FROM jsonb_each_text(pg_temp.m('collision')->'files') f;
		BEGIN
			SELECT count(*) INTO n FROM domi.lineage_check(m, 'drizzle.__drizzle_migrations');
			IF n = 0 THEN
				calls_without_findings := calls_without_findings + 1;
			END IF;
		EXCEPTION WHEN OTHERS THEN
			errors := errors + 1;
		END;
	END LOOP;
END;
$$;
SELECT * FROM pg_temp.fuzz(400);

DROP TABLE _prisma_migrations, app_migrations, not_migrations;
DROP SCHEMA drizzle CASCADE;
DROP ROLE lineage_reader;
