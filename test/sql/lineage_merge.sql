-- Migration lineage: a generated snapshot that lacks tables or columns of
-- the snapshot before it in journal order (snapshot_stale_after_merge),
-- on the drizzle-kit fixture test/lineage/fixtures/merged/after: two
-- branches generated 0001_archived (conversations.archived_at) and
-- 0001_edited (messages.edited_at) from 0000_init; merged, the second is
-- 0002_edited, its prevId still 0000's, its snapshot without archived_at.
\getenv abs_srcdir PG_ABS_SRCDIR
\set dir :abs_srcdir '/lineage/fixtures/merged/after'
SET client_min_messages = warning;

CREATE TEMP TABLE merged AS
	SELECT jsonb_build_object('format', 'drizzle', 'files',
		(SELECT jsonb_object_agg(name, pg_read_file(:'dir' || '/' || name))
		 FROM (SELECT f AS name FROM pg_ls_dir(:'dir') f WHERE f LIKE '%.sql'
		       UNION ALL
		       SELECT 'meta/' || f FROM pg_ls_dir(:'dir' || '/meta') f) files)) AS m;
CREATE FUNCTION pg_temp.file(name text) RETURNS text LANGUAGE sql
	AS $$ SELECT m->'files'->>name FROM merged $$;
CREATE FUNCTION pg_temp.with(name text, content text) RETURNS jsonb LANGUAGE sql
	AS $$ SELECT jsonb_set(m, ARRAY['files', name], to_jsonb(content)) FROM merged $$;
CREATE FUNCTION pg_temp.with_sql(extra text) RETURNS jsonb LANGUAGE sql
	AS $$ SELECT pg_temp.with('0002_edited.sql', pg_temp.file('0002_edited.sql') || extra) $$;
CREATE FUNCTION pg_temp.snapshot(n text) RETURNS jsonb LANGUAGE sql
	AS $$ SELECT pg_temp.file('meta/' || n || '_snapshot.json')::jsonb $$;
CREATE FUNCTION pg_temp.with_child(s jsonb) RETURNS jsonb LANGUAGE sql
	AS $$ SELECT pg_temp.with('meta/0002_snapshot.json', jsonb_pretty(s)) $$;
CREATE FUNCTION pg_temp.codes(manifest jsonb) RETURNS TABLE (severity text, code text, migration text)
	LANGUAGE sql AS $$ SELECT severity, code, migration FROM domi.lineage_check(manifest) WHERE code <> 'no_migrations_table' $$;

-- As merged: the collision, and the stale snapshot, with what it lacks.
SELECT * FROM pg_temp.codes((SELECT m FROM merged));
SELECT detail, fix FROM domi.lineage_check((SELECT m FROM merged))
WHERE code = 'snapshot_stale_after_merge';

-- Re-pointed only (what drizzle-kit's own error asks for): still stale.
SELECT * FROM pg_temp.codes(pg_temp.with_child(jsonb_set(pg_temp.snapshot('0002'), '{prevId}',
	to_jsonb(pg_temp.snapshot('0001')->>'id'))));

-- What its own SQL drops or renames, as drizzle-kit writes it, is not a lack.
SELECT * FROM pg_temp.codes(pg_temp.with_sql(E'\n--> statement-breakpoint\nALTER TABLE "conversations" DROP COLUMN "archived_at";'));
SELECT * FROM pg_temp.codes(pg_temp.with_sql(E'\nalter table "conversations" rename column "archived_at" to "closed_at";'));
-- ... but dropping another column is.
SELECT * FROM pg_temp.codes(pg_temp.with_sql(E'\nALTER TABLE "conversations" DROP COLUMN "title";'));

-- The column copied in, as the fix for an applied migration says: nothing.
SELECT * FROM pg_temp.codes(pg_temp.with_child(jsonb_set(jsonb_set(pg_temp.snapshot('0002'),
	'{tables,public.conversations,columns,archived_at}',
	pg_temp.snapshot('0001')->'tables'->'public.conversations'->'columns'->'archived_at'),
	'{prevId}', to_jsonb(pg_temp.snapshot('0001')->>'id'))));

-- A whole table lacking is named as a table; DROP TABLE, plain or with its
-- schema, explains it.
CREATE FUNCTION pg_temp.without_conversations() RETURNS jsonb LANGUAGE sql
	AS $$ SELECT pg_temp.snapshot('0002') #- '{tables,public.conversations}' $$;
SELECT left(detail, 40), substring(detail FROM 'it lacks [^.]*\.[^.]*') AS lacks
FROM domi.lineage_check(pg_temp.with_child(pg_temp.without_conversations()))
WHERE code = 'snapshot_stale_after_merge';
SELECT count(*) FROM domi.lineage_check(jsonb_set(pg_temp.with_child(pg_temp.without_conversations()),
	'{files,0002_edited.sql}', to_jsonb(pg_temp.file('0002_edited.sql') || E'\nDROP TABLE "public"."conversations" CASCADE;')))
WHERE code = 'snapshot_stale_after_merge';
SELECT count(*) FROM domi.lineage_check(jsonb_set(pg_temp.with_child(pg_temp.without_conversations()),
	'{files,0002_edited.sql}', to_jsonb(pg_temp.file('0002_edited.sql') || E'\nALTER TABLE "conversations" RENAME TO "threads";')))
WHERE code = 'snapshot_stale_after_merge';

-- Snapshots of different versions are not compared (the layout changed).
SELECT * FROM pg_temp.codes(pg_temp.with_child(jsonb_set(pg_temp.snapshot('0002'), '{version}', '"6"')));

-- A --custom migration is compared whole instead (custom_snapshot_stale).
SELECT * FROM pg_temp.codes(pg_temp.with('0002_edited.sql',
	E'-- Custom SQL migration file, put your code below! --\nUPDATE messages SET body = trim(body);'));
