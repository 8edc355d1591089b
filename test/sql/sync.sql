-- Field-level sync: stamps, merge, conflicts, tombstones, bootstrap rows,
-- derived updated_at, bad input, tenant isolation, convergence.
SET client_min_messages = warning;
CREATE ROLE sync_app;
CREATE TABLE sync_notes (
	id int PRIMARY KEY,
	tenant_id uuid NOT NULL DEFAULT domi.current_tenant(),
	title text,
	body text,
	n int
);
SELECT domi.enable_tenant_rls('sync_notes');
GRANT SELECT, INSERT, UPDATE, DELETE ON sync_notes TO sync_app;
RESET client_min_messages;

-- Not a synced table yet.
SELECT domi.field_meta('sync_notes', '{"id": 1}');
SELECT domi.enable_field_sync('sync_notes');
SELECT domi.enable_field_sync('sync_notes');	-- again: nothing to do
SELECT tbl, shadow, tenant_column FROM domi.sync_tables;

-- Only the table's owner may enable it; the shadow is domi's.
SET ROLE sync_app;
SELECT domi.enable_field_sync('sync_notes');
SELECT count(*) FROM domi_sync.public__sync_notes;
RESET ROLE;
SELECT pg_get_userbyid(relowner) = (SELECT pg_get_userbyid(extowner) FROM pg_extension WHERE extname = 'domi') AS shadow_is_domis
FROM pg_class WHERE oid = 'domi_sync.public__sync_notes'::regclass;

-- A table without a primary key cannot sync; nor can a view.
CREATE TABLE sync_nokey (a int);
SELECT domi.enable_field_sync('sync_nokey');
CREATE VIEW sync_view AS SELECT 1 AS a;
SELECT domi.enable_field_sync('sync_view');

-- Stamping: each changed column gets {at, origin, client}; unchanged ones keep theirs.
SET ROLE sync_app;
BEGIN;
SELECT domi.set_tenant('00000000-0000-0000-0000-00000000000a');
SET LOCAL domi.client_id = 'web-1';
INSERT INTO sync_notes (id, title, body) VALUES (1, 'a', 'b');
SELECT k, v->>'origin' AS origin, v->>'client' AS client
FROM jsonb_each(domi.field_meta('sync_notes', '{"id": 1}')) AS e(k, v) ORDER BY k;
SELECT domi.field_meta('sync_notes', '{"id": 1}') -> 'title' ->> 'at' AS title_at_before \gset
SET LOCAL domi.origin = 'agent';
UPDATE sync_notes SET body = 'b2', title = 'a' WHERE id = 1;
SELECT k, v->>'origin' AS origin, v->>'client' AS client,
	(v->>'at') = :'title_at_before' AS same_at
FROM jsonb_each(domi.field_meta('sync_notes', '{"id": 1}')) AS e(k, v) ORDER BY k;
-- The stamps are in UTC with an explicit offset.
SELECT domi.field_meta('sync_notes', '{"id": 1}') -> 'body' ->> 'at' LIKE '%+00:00' AS utc;
-- A bad origin is refused when set.
SAVEPOINT s;
SET LOCAL domi.origin = 'robot';
ROLLBACK TO s;
COMMIT;

-- The seed scenarios.
BEGIN;
SELECT domi.set_tenant('00000000-0000-0000-0000-00000000000a');
-- 1. A replay burst of 10 server updates: 0 conflicts, then replayed again: 0.
SELECT sum((domi.merge('sync_notes', jsonb_build_object('id', 50, 'title', 'v' || i),
	jsonb_build_object('title', jsonb_build_object('at', '2030-01-01T00:00:00Z'::timestamptz + i * interval '1 second',
		'origin', 'user', 'client', 'server'))) ->> 'conflicts')::int) AS burst_conflicts
FROM generate_series(1, 10) i;
SELECT sum((domi.merge('sync_notes', jsonb_build_object('id', 50, 'title', 'v' || i),
	jsonb_build_object('title', jsonb_build_object('at', '2030-01-01T00:00:00Z'::timestamptz + i * interval '1 second',
		'origin', 'user', 'client', 'server'))) ->> 'conflicts')::int) AS replay_conflicts
FROM generate_series(1, 10) i;
SELECT title FROM sync_notes WHERE id = 50;
-- 2. An agent's local write overwritten by another client: 0 conflicts.
SELECT domi.merge('sync_notes', '{"id": 1, "body": "agent text"}',
	'{"body": {"at": "2030-02-01T00:00:00Z", "origin": "agent", "client": "phone"}}');
SELECT domi.merge('sync_notes', '{"id": 1, "body": "laptop text"}',
	'{"body": {"at": "2030-02-02T00:00:00Z", "origin": "user", "client": "laptop"}}');
-- 3. Initial hydration over a user's field: applied, 0 conflicts.
SELECT domi.merge('sync_notes', '{"id": 1, "body": "hydrated"}',
	'{"body": {"at": "2030-02-03T00:00:00Z", "origin": "system", "client": "server"}}', true);
-- 4. A real user edit overwritten by another client: 1 conflict.
SELECT domi.merge('sync_notes', '{"id": 1, "n": 7}',
	'{"n": {"at": "2030-03-01T00:00:00Z", "origin": "user", "client": "phone"}}');
SELECT domi.merge('sync_notes', '{"id": 1, "n": 8}',
	'{"n": {"at": "2030-03-02T00:00:00Z", "origin": "user", "client": "laptop"}}');
SELECT tbl, pk, column_name, winner->>'client' AS winner, loser->>'client' AS loser,
	loser->>'origin' AS loser_origin, loser_value
FROM domi.sync_conflicts ORDER BY id;
-- An older write loses, and is no conflict; the same write again changes nothing.
SELECT domi.merge('sync_notes', '{"id": 1, "n": 1}',
	'{"n": {"at": "2029-01-01T00:00:00Z", "origin": "user", "client": "tablet"}}');
SELECT domi.merge('sync_notes', '{"id": 1, "n": 8}',
	'{"n": {"at": "2030-03-02T00:00:00Z", "origin": "user", "client": "laptop"}}');
-- Same at and client, other value: the greater value wins, both ways round.
SELECT domi.merge('sync_notes', '{"id": 1, "n": 3}',
	'{"n": {"at": "2030-03-02T00:00:00Z", "origin": "user", "client": "laptop"}}') -> 'rejected';
SELECT domi.merge('sync_notes', '{"id": 1, "n": 9}',
	'{"n": {"at": "2030-03-02T00:00:00Z", "origin": "user", "client": "laptop"}}') -> 'applied';
SELECT n FROM sync_notes WHERE id = 1;
-- 5. The bootstrap twin: the server seeds a singleton, a client pushes its
-- own system-made twin: it collapses silently; a user's edit after it is no
-- conflict either; another user's edit over that one is.
SELECT domi.bootstrap_row('sync_notes', '{"id": 100, "title": "Settings"}');
SELECT domi.bootstrap_row('sync_notes', '{"id": 100, "title": "Other"}');
SELECT title, domi.field_meta('sync_notes', '{"id": 100}') -> 'title' ->> 'origin' AS origin
FROM sync_notes WHERE id = 100;
SELECT domi.merge('sync_notes', '{"id": 100, "title": "Settings", "body": ""}',
	'{"title": {"at": "2031-01-01T00:00:00Z", "origin": "system", "client": "phone"},
	  "body": {"at": "2031-01-01T00:00:00Z", "origin": "system", "client": "phone"}}');
SELECT domi.merge('sync_notes', '{"id": 100, "body": "dark mode"}',
	'{"body": {"at": "2031-01-02T00:00:00Z", "origin": "user", "client": "phone"}}');
SELECT domi.merge('sync_notes', '{"id": 100, "body": "light mode"}',
	'{"body": {"at": "2031-01-03T00:00:00Z", "origin": "user", "client": "laptop"}}') ->> 'conflicts' AS conflicts;
SELECT count(*) AS conflicts_in_all FROM domi.sync_conflicts;

-- A merge of a missing row inserts it; a delete is a tombstone that no later
-- merge resurrects.
SELECT domi.merge('sync_notes', '{"id": 2, "title": "new", "n": "5"}',
	'{"title": {"at": "2030-01-01T00:00:00Z", "origin": "user", "client": "phone"},
	  "n": {"at": "2030-01-01T00:00:00Z", "origin": "user", "client": "phone"}}');
SELECT id, title, n FROM sync_notes WHERE id = 2;
SELECT domi.merge_delete('sync_notes', '{"id": 2}', '{"at": "2030-01-02T00:00:00Z", "origin": "user", "client": "phone"}');
SELECT domi.merge('sync_notes', '{"id": 2, "title": "late"}',
	'{"title": {"at": "2040-01-01T00:00:00Z", "origin": "user", "client": "laptop"}}');
SELECT count(*) AS resurrected FROM sync_notes WHERE id = 2;
-- A delete of a row never seen still leaves a tombstone, so its late insert is refused.
SELECT domi.merge_delete('sync_notes', '{"id": 3}', '{"at": "2030-01-02T00:00:00Z", "origin": "user", "client": "phone"}');
SELECT domi.merge('sync_notes', '{"id": 3, "title": "too late"}',
	'{"title": {"at": "2020-01-01T00:00:00Z", "origin": "user", "client": "laptop"}}') -> 'rejected';

-- The batch form.
SELECT domi.merge_batch('sync_notes', '[
	{"row": {"id": 10, "title": "x"}, "meta": {"title": {"at": "2030-01-01T00:00:00Z", "origin": "user", "client": "a"}}},
	{"row": {"id": 10, "title": "y"}, "meta": {"title": {"at": "2030-01-01T00:00:01Z", "origin": "user", "client": "b"}}},
	{"pk": {"id": 11}, "deleted": {"at": "2030-01-01T00:00:00Z", "origin": "user", "client": "a"}}
]');
SELECT title FROM sync_notes WHERE id = 10;

-- Derived updated_at: the latest at over the fields, and the newest rows first.
SELECT domi.updated_at('sync_notes', '{"id": 1}');
SELECT domi.updated_at('{"a": {"at": "2030-01-01T00:00:00+02:00"}, "b": {"at": "2029-12-31T23:00:00Z"}}'::jsonb);
SELECT domi.updated_at('{}'::jsonb) IS NULL AS no_fields;
SELECT pk, updated_at FROM domi.latest_rows('sync_notes', 3);
COMMIT;

-- Bad input: a clear error, and nothing changes.
BEGIN;
SELECT domi.set_tenant('00000000-0000-0000-0000-00000000000a');
CREATE TEMP TABLE before AS SELECT to_jsonb(t) AS r FROM sync_notes t WHERE id = 1;
SAVEPOINT s;
SELECT domi.merge('sync_notes', '{"id": 1, "nope": 1}', '{"nope": {"at": "2040-01-01T00:00:00Z", "origin": "user", "client": "a"}}');
ROLLBACK TO s;
SELECT domi.merge('sync_notes', '{"id": 1, "n": 1}', '{"n": {"at": "yesterday-ish", "origin": "user", "client": "a"}}');
ROLLBACK TO s;
SELECT domi.merge('sync_notes', '{"id": 1, "n": 1}', '{"n": {"at": "2040-01-01T00:00:00Z", "origin": "robot", "client": "a"}}');
ROLLBACK TO s;
SELECT domi.merge('sync_notes', '{"id": 1, "n": 1}', '{"n": {"at": "2040-01-01T00:00:00Z", "origin": "user"}}');
ROLLBACK TO s;
SELECT domi.merge('sync_notes', '{"id": 1, "n": 1}', '{}');
ROLLBACK TO s;
SELECT domi.merge('sync_notes', '{"id": 1, "n": 1}', '{"n": {"at": "2040-01-01T00:00:00Z", "origin": "user", "client": "a"}, "body": {"at": "2040-01-01T00:00:00Z", "origin": "user", "client": "a"}}');
ROLLBACK TO s;
SELECT domi.merge('sync_notes', '{"n": 1}', '{"n": {"at": "2040-01-01T00:00:00Z", "origin": "user", "client": "a"}}');
ROLLBACK TO s;
SELECT domi.merge('sync_notes', '{"id": 1, "n": "many"}', '{"n": {"at": "2040-01-01T00:00:00Z", "origin": "user", "client": "a"}}');
ROLLBACK TO s;
SELECT domi.merge('sync_notes', '[1]', '{}');
ROLLBACK TO s;
SELECT domi.merge('sync_notes', '{"id": 1}', 'not json');
ROLLBACK TO s;
SELECT domi.merge('sync_nokey', '{"a": 1}', '{}');
ROLLBACK TO s;
SELECT domi.merge_batch('sync_notes', '[{"row": {"id": 1}}]');
ROLLBACK TO s;
SELECT domi.field_meta('sync_notes', '{"id": 1, "other": 2}');
ROLLBACK TO s;
SELECT (SELECT r FROM before) = to_jsonb(t) AS unchanged FROM sync_notes t WHERE id = 1;
DROP TABLE before;
COMMIT;

-- Tenant isolation: another tenant sees no stamps, no conflicts, no rows,
-- and cannot merge into the first tenant's row.
BEGIN;
SELECT domi.set_tenant('00000000-0000-0000-0000-00000000000b');
SELECT domi.field_meta('sync_notes', '{"id": 1}');
SELECT count(*) FROM domi.sync_conflicts;
SELECT count(*) FROM domi.latest_rows('sync_notes', 10);
SAVEPOINT s;
SELECT domi.merge('sync_notes', '{"id": 1, "n": 666}', '{"n": {"at": "2050-01-01T00:00:00Z", "origin": "user", "client": "evil"}}');
ROLLBACK TO s;
SELECT domi.merge('sync_notes', '{"id": 1, "tenant_id": "00000000-0000-0000-0000-00000000000a", "n": 666}',
	'{"n": {"at": "2050-01-01T00:00:00Z", "origin": "user", "client": "evil"}}');
ROLLBACK TO s;
COMMIT;
-- No tenant: nothing either.
SELECT domi.field_meta('sync_notes', '{"id": 1}');
SELECT count(*) FROM domi.latest_rows('sync_notes', 10);
BEGIN;
SELECT domi.set_tenant('00000000-0000-0000-0000-00000000000a');
SELECT n FROM sync_notes WHERE id = 1;
COMMIT;
RESET ROLE;

-- A role that may not read the table may not read its stamps.
CREATE ROLE sync_stranger;
SET ROLE sync_stranger;
SELECT domi.field_meta('sync_notes', '{"id": 1}');
RESET ROLE;

-- Renaming a column moves its stamps; a key column is renamed in the shadow too.
ALTER TABLE sync_notes RENAME COLUMN title TO headline;
ALTER TABLE sync_notes RENAME COLUMN id TO note_id;
BEGIN;
SELECT domi.set_tenant('00000000-0000-0000-0000-00000000000a');
SELECT jsonb_object_keys(domi.field_meta('sync_notes', '{"note_id": 1}')) ORDER BY 1;
UPDATE sync_notes SET headline = 'renamed' WHERE note_id = 1;
SELECT domi.field_meta('sync_notes', '{"note_id": 1}') -> 'headline' ->> 'origin' AS origin;
COMMIT;

-- TRUNCATE takes the stamps with the rows; DROP TABLE takes the shadow.
TRUNCATE sync_notes;
SELECT count(*) FROM domi_sync.public__sync_notes;
DROP TABLE sync_notes;
SELECT count(*) FROM domi.sync_tables;
SELECT to_regclass('domi_sync.public__sync_notes');

-- disable_field_sync removes the triggers and the shadow.
CREATE TABLE sync_plain (k text PRIMARY KEY, v text);
SELECT domi.enable_field_sync('sync_plain');
INSERT INTO sync_plain VALUES ('a', '1');
SELECT domi.field_meta('sync_plain', '{"k": "a"}') -> 'v' ->> 'origin' AS origin;
SELECT domi.disable_field_sync('sync_plain');
SELECT tgname FROM pg_trigger WHERE tgrelid = 'sync_plain'::regclass;
SELECT to_regclass('domi_sync.public__sync_plain');

-- Convergence: random histories of concurrent field edits by several
-- clients (ties on at included, deletes now and then), applied in many
-- random orders to a fresh copy each time, always end in the same rows and
-- stamps.  20 histories x 100 orderings.
CREATE TABLE sync_copy (id int PRIMARY KEY, a text, b int, c jsonb);
SELECT domi.enable_field_sync('sync_copy');
CREATE FUNCTION sync_copy_state() RETURNS text LANGUAGE sql AS $$
	SELECT coalesce((SELECT jsonb_agg(to_jsonb(t) ORDER BY id) FROM sync_copy t)::text, '')
		|| coalesce((SELECT jsonb_agg(jsonb_build_array(s.id, s.meta, s.tombstone) ORDER BY id)
			FROM domi_sync.public__sync_copy s)::text, '')
$$;
DO $$
DECLARE
	h int;
	o int;
	history jsonb;
	reference text;
	state text;
	failures int := 0;
	orderings int := 0;
BEGIN
	PERFORM setseed(0.42);
	FOR h IN 1..20 LOOP
		SELECT jsonb_agg(change) INTO history FROM (
			SELECT CASE WHEN random() < 0.05 THEN
					jsonb_build_object('pk', jsonb_build_object('id', 1 + (random() * 2)::int),
						'deleted', jsonb_build_object('at', '2030-01-01T00:00:00Z'::timestamptz + (random() * 5)::int * interval '1 s',
							'origin', 'user', 'client', 'c' || (random() * 3)::int))
				ELSE
					jsonb_build_object('row', jsonb_build_object('id', 1 + (random() * 2)::int, f, v),
						'meta', jsonb_build_object(f, jsonb_build_object(
							'at', '2030-01-01T00:00:00Z'::timestamptz + (random() * 5)::int * interval '1 s',
							'origin', (ARRAY['user', 'agent', 'system'])[1 + (random() * 2)::int],
							'client', 'c' || (random() * 3)::int)))
				END AS change
			FROM (SELECT (ARRAY['a', 'b', 'c'])[1 + (random() * 2)::int] AS f, i FROM generate_series(1, 12) i) fields
			CROSS JOIN LATERAL (SELECT CASE f WHEN 'a' THEN to_jsonb('s' || (random() * 3)::int)
				WHEN 'b' THEN to_jsonb((random() * 3)::int)
				ELSE jsonb_build_object('k', (random() * 3)::int) END AS v) val
		) changes;
		reference := NULL;
		FOR o IN 1..100 LOOP
			-- a fresh copy: rows gone, and their stamps and tombstones
			DELETE FROM sync_copy;
			DELETE FROM domi_sync.public__sync_copy;
			PERFORM domi.merge_batch('sync_copy',
				(SELECT jsonb_agg(c ORDER BY random()) FROM jsonb_array_elements(history) c));
			state := sync_copy_state();
			orderings := orderings + 1;
			IF reference IS NULL THEN
				reference := state;
			ELSIF state <> reference THEN
				failures := failures + 1;
			END IF;
		END LOOP;
	END LOOP;
	RAISE NOTICE 'convergence: % orderings, % ended differently', orderings, failures;
END;
$$;
DROP TABLE sync_copy;
DROP FUNCTION sync_copy_state();
DROP TABLE sync_nokey, sync_plain;
DROP VIEW sync_view;
DROP ROLE sync_app, sync_stranger;
