-- Field-level sync, the change feed: paging, compaction, tombstones,
-- except_client, tenant isolation, bad cursors, purge horizon.
SET client_min_messages = warning;
CREATE ROLE feed_app;
CREATE ROLE feed_other;
CREATE TABLE feed_notes (
	id int PRIMARY KEY,
	tenant_id uuid NOT NULL DEFAULT domi.current_tenant(),
	title text,
	body text
);
SELECT domi.enable_tenant_rls('feed_notes');
SELECT domi.enable_field_sync('feed_notes');
GRANT SELECT, INSERT, UPDATE, DELETE ON feed_notes TO feed_app;
CREATE TABLE feed_plain (id int PRIMARY KEY, v text);
SELECT domi.enable_field_sync('feed_plain');
GRANT SELECT, INSERT, UPDATE, DELETE ON feed_plain TO feed_app;
RESET client_min_messages;

-- A page of the feed as a client sees it: no cursors or times printed
-- (they depend on the run), only what changed and who wrote it.
CREATE FUNCTION feed_page(since text, n int, except_client text DEFAULT NULL)
	RETURNS TABLE (pk jsonb, "row" jsonb, writers text, deleted boolean, has_cursor boolean)
	LANGUAGE sql AS $$
	SELECT c.pk, c.row,
		(SELECT string_agg(k || ':' || (v ->> 'client'), ',' ORDER BY k) FROM jsonb_each(c.meta) AS e(k, v)),
		c.deleted, c.cursor IS NOT NULL
	FROM domi.changes('feed_notes', since, n, except_client) c
$$;
GRANT EXECUTE ON FUNCTION feed_page(text, int, text) TO feed_app;

SET ROLE feed_app;
-- Tenant a writes three rows, in three transactions.
BEGIN;
SELECT domi.set_tenant('00000000-0000-0000-0000-00000000000a') IS NOT NULL AS set;
SET LOCAL domi.client_id = 'web';
INSERT INTO feed_notes (id, title, body) VALUES (1, 't1', 'b1');
-- The writing transaction's own changes are not in the feed yet: only
-- finished transactions are.
SELECT count(*) FROM domi.changes('feed_notes', NULL, 100);
COMMIT;
BEGIN;
SELECT domi.set_tenant('00000000-0000-0000-0000-00000000000a') IS NOT NULL AS set;
SET LOCAL domi.client_id = 'phone';
INSERT INTO feed_notes (id, title, body) VALUES (2, 't2', 'b2');
COMMIT;
BEGIN;
SELECT domi.set_tenant('00000000-0000-0000-0000-00000000000a') IS NOT NULL AS set;
SET LOCAL domi.client_id = 'web';
INSERT INTO feed_notes (id, title, body) VALUES (3, 't3', 'b3');
COMMIT;
-- Tenant b writes one row.
BEGIN;
SELECT domi.set_tenant('00000000-0000-0000-0000-00000000000b') IS NOT NULL AS set;
INSERT INTO feed_notes (id, title, body) VALUES (10, 'other', 'tenant');
COMMIT;

BEGIN;
SELECT domi.set_tenant('00000000-0000-0000-0000-00000000000a') IS NOT NULL AS set;
-- Everything of tenant a, in commit order; tenant b's row is not there.
SELECT * FROM feed_page(NULL, 100);
-- Paging by two: the second page starts after the first page's last cursor.
SELECT cursor AS c1 FROM domi.changes('feed_notes', NULL, 2) OFFSET 1 \gset
SELECT * FROM feed_page(:'c1', 2);
SELECT cursor AS c2 FROM domi.changes('feed_notes', :'c1', 2) \gset
-- The end: nothing after the last cursor.
SELECT count(*) FROM domi.changes('feed_notes', :'c2', 2);
-- max_rows 0: nothing.
SELECT count(*) FROM domi.changes('feed_notes', NULL, 0);
COMMIT;

-- Tenant b sees its own row only; tenant a's cursor is foreign to it.
BEGIN;
SELECT domi.set_tenant('00000000-0000-0000-0000-00000000000b') IS NOT NULL AS set;
SELECT * FROM feed_page(NULL, 100);
SAVEPOINT s;
SELECT count(*) FROM domi.changes('feed_notes', :'c1', 10);
ROLLBACK TO s;
COMMIT;
-- No tenant: no tenant's changes.
SELECT count(*) FROM domi.changes('feed_notes', NULL, 100);

-- Updates move a row to the end of the feed, once however often it
-- changed, with its latest values; a delete sends a tombstone.
BEGIN;
SELECT domi.set_tenant('00000000-0000-0000-0000-00000000000a') IS NOT NULL AS set;
SET LOCAL domi.client_id = 'phone';
UPDATE feed_notes SET title = 't1-' || i FROM generate_series(1, 50) i WHERE id = 1 AND i = 1;
UPDATE feed_notes SET title = 't1-final' WHERE id = 1;
COMMIT;
BEGIN;
SELECT domi.set_tenant('00000000-0000-0000-0000-00000000000a') IS NOT NULL AS set;
SET LOCAL domi.client_id = 'web';
DELETE FROM feed_notes WHERE id = 2;
COMMIT;
BEGIN;
SELECT domi.set_tenant('00000000-0000-0000-0000-00000000000a') IS NOT NULL AS set;
SELECT * FROM feed_page(:'c2', 100);
SELECT * FROM feed_page(NULL, 100);
-- A tombstone's meta is what domi.merge_batch takes as "deleted".
SELECT meta ? 'deleted' AS has_deleted, row IS NULL AS no_row
FROM domi.changes('feed_notes', :'c2', 100) WHERE deleted;
COMMIT;

-- except_client: a client's own writes are not sent back to it; fields it
-- wrote are left out of a row another client also changed.
BEGIN;
SELECT domi.set_tenant('00000000-0000-0000-0000-00000000000a') IS NOT NULL AS set;
SET LOCAL domi.client_id = 'web';
UPDATE feed_notes SET body = 'b1-web' WHERE id = 1;
COMMIT;
BEGIN;
SELECT domi.set_tenant('00000000-0000-0000-0000-00000000000a') IS NOT NULL AS set;
-- id 1: title by phone, body by web; id 2: deleted by web; id 3: all web.
SELECT * FROM feed_page(NULL, 100, 'web');
SELECT * FROM feed_page(NULL, 100, 'phone');
-- The last row sent carries the feed's last cursor (id 1 changed last).
SELECT cursor AS c3 FROM domi.changes('feed_notes', NULL, 100) ORDER BY cursor DESC LIMIT 1 \gset
SELECT pk, cursor = :'c3' AS at_the_end
FROM domi.changes('feed_notes', NULL, 100, 'web') ORDER BY cursor DESC LIMIT 1;
COMMIT;

-- Bad cursors: each a clear error, SQLSTATE 22023.
\set VERBOSITY sqlstate
BEGIN;
SELECT domi.set_tenant('00000000-0000-0000-0000-00000000000a') IS NOT NULL AS set;
SAVEPOINT s;
SELECT count(*) FROM domi.changes('feed_notes', 'not a cursor', 10);
ROLLBACK TO s;
SELECT count(*) FROM domi.changes('feed_notes', '', 10);
ROLLBACK TO s;
-- one digit changed: the checksum fails
SELECT count(*) FROM domi.changes('feed_notes',
	overlay(:'c1' placing (CASE substr(:'c1', 20, 1) WHEN '0' THEN '1' ELSE '0' END) from 20 for 1), 10);
ROLLBACK TO s;
-- another version
SELECT count(*) FROM domi.changes('feed_notes', '02' || substr(:'c1', 3), 10);
ROLLBACK TO s;
-- upper case hex is not what the feed writes
SELECT count(*) FROM domi.changes('feed_notes', upper(:'c1'), 10);
ROLLBACK TO s;
COMMIT;
\set VERBOSITY default
-- Another table's cursor.
INSERT INTO feed_plain VALUES (1, 'x');
SELECT cursor AS cp FROM domi.changes('feed_plain', NULL, 10) \gset
BEGIN;
SELECT domi.set_tenant('00000000-0000-0000-0000-00000000000a') IS NOT NULL AS set;
SELECT count(*) FROM domi.changes('feed_notes', :'cp', 10);
ROLLBACK;
-- The same cursor on its own table works, with or without a tenant.
SELECT count(*) FROM domi.changes('feed_plain', :'cp', 10);
-- Bad arguments.
SELECT count(*) FROM domi.changes('feed_plain', NULL, -1);
SELECT count(*) FROM domi.changes(NULL, NULL, 1);
SELECT count(*) FROM domi.changes('pg_class', NULL, 1);
RESET ROLE;

-- A role that may not read the table may not read its feed.
SET ROLE feed_other;
SELECT count(*) FROM domi.changes('feed_plain', NULL, 10);
RESET ROLE;

-- Purging tombstones: only the table's owner; the count; a cursor from
-- before the horizon gets SQLSTATE DMRSY and a hint to resync; a cursor
-- after it, and a pull from scratch, still work.
SET ROLE feed_app;
SELECT domi.purge_tombstones('feed_notes', now() + interval '1 day');
RESET ROLE;
SELECT domi.purge_tombstones('feed_notes', now() - interval '1 day');
SELECT domi.purge_tombstones('feed_notes', now() + interval '1 day');
SELECT feed_horizon_xid IS NOT NULL AS has_horizon FROM domi.sync_tables WHERE tbl = 'feed_notes'::regclass;
SET ROLE feed_app;
BEGIN;
SELECT domi.set_tenant('00000000-0000-0000-0000-00000000000a') IS NOT NULL AS set;
SAVEPOINT s;
\set VERBOSITY sqlstate
SELECT count(*) FROM domi.changes('feed_notes', :'c2', 10);
ROLLBACK TO s;
\set VERBOSITY default
SELECT count(*) FROM domi.changes('feed_notes', :'c2', 10);
ROLLBACK TO s;
SELECT count(*) FROM domi.changes('feed_notes', :'c3', 10);
SELECT * FROM feed_page(NULL, 100);
COMMIT;

RESET ROLE;

-- TRUNCATE removes every tombstone: every old cursor must resync.
SELECT cursor AS cp2 FROM domi.changes('feed_plain', NULL, 10) \gset
TRUNCATE feed_plain;
SELECT count(*) FROM domi.changes('feed_plain', :'cp2', 10);
INSERT INTO feed_plain VALUES (2, 'after');
SELECT pk, row FROM domi.changes('feed_plain', NULL, 10);

-- Merged changes are in the feed too, with their own stamps.
SET ROLE feed_app;
BEGIN;
SELECT domi.set_tenant('00000000-0000-0000-0000-00000000000a') IS NOT NULL AS set;
SELECT domi.merge_batch('feed_notes', '[
	{"row": {"id": 20, "title": "merged"}, "meta": {"title": {"at": "2030-01-01T00:00:00Z", "origin": "user", "client": "tablet"}}},
	{"pk": {"id": 3}, "deleted": {"at": "2030-01-01T00:00:00Z", "origin": "user", "client": "tablet"}}]');
COMMIT;
BEGIN;
SELECT domi.set_tenant('00000000-0000-0000-0000-00000000000a') IS NOT NULL AS set;
SELECT * FROM feed_page(:'c3', 100);
-- For the client that wrote them, a row with only a cursor: the next call
-- starts after its own writes instead of reading them again.
SELECT * FROM feed_page(:'c3', 100, 'tablet');
SELECT cursor AS c4 FROM domi.changes('feed_notes', :'c3', 100, 'tablet') \gset
SELECT count(*) FROM domi.changes('feed_notes', :'c4', 100);
COMMIT;
RESET ROLE;

-- Renames: the feed follows the table and its key column.
ALTER TABLE feed_plain RENAME TO feed_plain2;
SELECT pk, row FROM domi.changes('feed_plain2', NULL, 10);
ALTER TABLE feed_plain2 RENAME COLUMN id TO key;
SELECT pk, row FROM domi.changes('feed_plain2', NULL, 10);

DROP TABLE feed_notes, feed_plain2;
DROP FUNCTION feed_page(text, int, text);
DROP ROLE feed_app;
DROP ROLE feed_other;
