-- Drop guard: domi.protect_column, domi.unprotect_column,
-- domi.protected_columns and the event triggers that refuse every way of
-- dropping, renaming or retyping a protected column unless the same
-- transaction ran SET LOCAL domi.allow_drop.
-- citext (contrib) stands in for pgvector's vector type, which Debian 12
-- does not package: a column whose type an extension provides.
CREATE EXTENSION citext;
CREATE ROLE guard_owner;
CREATE ROLE guard_other;
CREATE SCHEMA app AUTHORIZATION guard_owner;
GRANT USAGE ON SCHEMA app TO guard_other;
SET search_path = app, public;
SET ROLE guard_owner;
CREATE TABLE items (id int PRIMARY KEY, embedding citext, title varchar(10), note text);
INSERT INTO items VALUES (1, 'Alpha', 'a', 'keep me');
CREATE VIEW item_titles AS SELECT id, title FROM items;

-- The column set of items, to show after each refusal that nothing changed.
CREATE FUNCTION items_columns() RETURNS text LANGUAGE sql
	AS $$ SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum)
		FROM pg_attribute WHERE attrelid = 'app.items'::regclass AND attnum > 0 AND NOT attisdropped $$;

-- The table's owner protects a column: true the first time, false after
-- (idempotent), and the view shows it with the exact override value.
SELECT domi.protect_column('items', 'embedding');
SELECT domi.protect_column('items', 'embedding');
SELECT domi.protect_column('app.items'::regclass, 'title');
SELECT schema_name, table_name, column_name, column_type, allow_drop, protected_by
	FROM domi.protected_columns ORDER BY 1, 2, 3;

-- Bad input: a clear error, and nothing is protected.
SELECT domi.protect_column(NULL, 'embedding');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.protect_column('items', NULL);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.protect_column('no_such_table', 'embedding');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.protect_column(4294967000::oid::regclass, 'embedding');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.protect_column('items', 'no_such_column');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.protect_column('items', 'ctid');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.protect_column('item_titles', 'title');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
CREATE TEMP TABLE scratch (a int);
SELECT domi.protect_column('scratch', 'a');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
DROP TABLE scratch;
SELECT count(*) AS protected FROM domi.protected_columns;

-- Only the owner (or a superuser) may protect or unprotect; everyone may read
-- the view, nobody but the extension may read or write the registry.
SET ROLE guard_other;
SELECT domi.protect_column('items', 'note');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT domi.unprotect_column('items', 'embedding');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT count(*) AS visible_in_view FROM domi.protected_columns;
SELECT count(*) FROM domi._protected_columns;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
DELETE FROM domi._protected_columns;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- The event trigger functions only run as event triggers (and only the
-- superuser may call them at all: test/sql/zz_privileges.sql).
RESET ROLE;
SELECT domi._drop_guard_sql_drop();
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SET ROLE guard_owner;

-- Every way of dropping, renaming or retyping a protected column is refused
-- (2BP01), and the statement is rolled back.
ALTER TABLE items DROP COLUMN embedding;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- CASCADE changes nothing: the view that the drop would take survives too.
ALTER TABLE items DROP COLUMN IF EXISTS title CASCADE;
SELECT count(*) AS view_survived FROM pg_views WHERE viewname = 'item_titles';
DROP VIEW item_titles;
DROP TABLE items;
DROP TABLE IF EXISTS items CASCADE;
ALTER TABLE items ALTER COLUMN embedding TYPE text;
ALTER TABLE items ALTER COLUMN embedding TYPE int USING length(embedding);
ALTER TABLE items ALTER COLUMN title TYPE varchar(20);
-- USING can replace every value while the type stays the same: refused too.
ALTER TABLE items ALTER COLUMN embedding TYPE citext USING NULL;
ALTER TABLE items ALTER COLUMN title TYPE varchar(10) USING 'x';
ALTER TABLE items RENAME COLUMN embedding TO vector;
-- PostgreSQL lets ALTER VIEW, ALTER MATERIALIZED VIEW and ALTER FOREIGN TABLE
-- rename a column of an ordinary table: refused the same.
ALTER VIEW items RENAME COLUMN embedding TO vector;
ALTER MATERIALIZED VIEW items RENAME COLUMN embedding TO vector;
ALTER FOREIGN TABLE items RENAME COLUMN embedding TO vector;
ALTER TABLE items ADD COLUMN extra int, DROP COLUMN note, DROP COLUMN embedding;
SELECT items_columns();
SELECT * FROM items;

-- Changes that leave protected columns alone go through.
ALTER TABLE items ADD COLUMN extra int;
ALTER TABLE items ALTER COLUMN extra TYPE bigint;
ALTER TABLE items ALTER COLUMN note TYPE text USING note || '';
-- The same type without USING changes nothing, and is allowed.
ALTER TABLE items ALTER COLUMN embedding TYPE citext;
ALTER TABLE items RENAME COLUMN extra TO spare;
ALTER TABLE items DROP COLUMN spare;
ALTER TABLE items RENAME TO items_renamed;
ALTER TABLE items_renamed RENAME TO items;
SELECT items_columns();

-- As a superuser: the schema, the type's extension, the owner's objects,
-- the type of a domain, and replica mode.
RESET ROLE;
DROP SCHEMA app CASCADE;
DROP EXTENSION citext CASCADE;
DROP OWNED BY guard_owner;
-- CURRENT_USER is the role that runs it (the tables' owner here, not domi's
-- owner): its protected columns are refused, not a drop of domi.
SET ROLE guard_owner;
DROP OWNED BY CURRENT_USER;
RESET ROLE;
CREATE DOMAIN app.short_text AS text;
CREATE TABLE app.labels (id int, label app.short_text);
SELECT domi.protect_column('app.labels', 'label');
DROP DOMAIN app.short_text CASCADE;
DROP DOMAIN app.short_text;
SET session_replication_role = replica;
ALTER TABLE items DROP COLUMN embedding;
DROP TABLE app.labels;
RESET session_replication_role;
SELECT domi.unprotect_column('app.labels', 'label');
DROP TABLE app.labels;
DROP DOMAIN app.short_text;
SELECT evtname, evtevent, evtenabled FROM pg_event_trigger
	WHERE evtname LIKE 'domi_drop_guard%' ORDER BY 1;
SELECT items_columns();

-- Partitions and inheritance children: ALTER TABLE and DROP TABLE on the
-- parent reach them, and so does the guard.
CREATE TABLE app.events (tenant int, payload jsonb, at date) PARTITION BY RANGE (at);
CREATE TABLE app.events_2026 PARTITION OF app.events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
SELECT domi.protect_column('app.events_2026', 'payload');
ALTER TABLE app.events DROP COLUMN payload;
ALTER TABLE app.events ALTER COLUMN payload TYPE json;
ALTER TABLE app.events RENAME COLUMN payload TO body;
DROP TABLE app.events;
ALTER TABLE app.events DETACH PARTITION app.events_2026;
DROP TABLE app.events_2026;
SELECT domi.unprotect_column('app.events_2026', 'payload');
DROP TABLE app.events, app.events_2026;
CREATE TABLE app.base (id int, secret text);
CREATE TABLE app.child () INHERITS (app.base);
SELECT domi.protect_column('app.child', 'secret');
DROP TABLE app.base CASCADE;
ALTER TABLE app.base ALTER COLUMN secret TYPE varchar(5);
SELECT domi.protect_column('app.base', 'id');
DROP TABLE app.child;
SELECT schema_name, table_name, column_name, column_type FROM domi.protected_columns ORDER BY 1, 2, 3;

-- Typed tables: ALTER TYPE ... CASCADE reaches their columns.
CREATE TYPE app.address AS (street text, zip varchar(10));
CREATE TABLE app.addresses OF app.address;
SELECT domi.protect_column('app.addresses', 'zip');
ALTER TYPE app.address ALTER ATTRIBUTE zip TYPE varchar(20) CASCADE;
ALTER TYPE app.address RENAME ATTRIBUTE zip TO postcode CASCADE;
ALTER TYPE app.address DROP ATTRIBUTE zip CASCADE;
DROP TYPE app.address CASCADE;
SELECT domi.unprotect_column('app.addresses', 'zip');
DROP TABLE app.addresses;
DROP TYPE app.address;

-- A column made of a composite type loses part of every value when an
-- attribute of the type is dropped (PostgreSQL allows that, it refuses only
-- to change the attribute's type): refused, also through an array, a domain,
-- a nested composite type and a table's row type.
CREATE TYPE app.point3 AS (x int, y int, z int);
CREATE DOMAIN app.point3_d AS app.point3;
CREATE TYPE app.segment AS (a app.point3, b app.point3);
CREATE TABLE app.pair (left_id int, right_id int);
CREATE TABLE app.shapes (id int, p app.point3, ps app.point3[], pd app.point3_d,
	s app.segment, pr app.pair, other app.point3);
INSERT INTO app.shapes VALUES (1, ROW(1, 2, 3), ARRAY[ROW(4, 5, 6)::app.point3], ROW(7, 8, 9),
	ROW(ROW(1, 1, 1), ROW(2, 2, 2)), ROW(10, 20), ROW(0, 0, 0));
SELECT domi.protect_column('app.shapes', 'p');
ALTER TYPE app.point3 DROP ATTRIBUTE z;
SELECT domi.unprotect_column('app.shapes', 'p'), domi.protect_column('app.shapes', 'ps');
ALTER TYPE app.point3 DROP ATTRIBUTE z;
SELECT domi.unprotect_column('app.shapes', 'ps'), domi.protect_column('app.shapes', 'pd');
ALTER TYPE app.point3 DROP ATTRIBUTE z;
SELECT domi.unprotect_column('app.shapes', 'pd'), domi.protect_column('app.shapes', 's');
ALTER TYPE app.point3 DROP ATTRIBUTE z CASCADE;
SELECT domi.protect_column('app.shapes', 'pr');
ALTER TABLE app.pair DROP COLUMN right_id;
-- Adding an attribute loses nothing.
ALTER TYPE app.point3 ADD ATTRIBUTE w int;
SELECT * FROM app.shapes;
-- With the override the attribute goes and the protection stays.
BEGIN;
SET LOCAL domi.allow_drop = 'app.shapes.s';
ALTER TYPE app.point3 DROP ATTRIBUTE z;
SELECT s FROM app.shapes;
SELECT column_name, column_type FROM domi.protected_columns WHERE table_name = 'shapes' ORDER BY 1;
ROLLBACK;
SELECT domi.unprotect_column('app.shapes', 's'), domi.unprotect_column('app.shapes', 'pr');
DROP TABLE app.shapes, app.pair;
DROP TYPE app.segment;
DROP DOMAIN app.point3_d;
DROP TYPE app.point3;

-- The guard queries its registry as the registry's owner: objects of the
-- caller's search_path must not run there.  An operator "=" on oids that
-- raises, first in search_path, changes nothing.
CREATE FUNCTION app.trap(oid, oid) RETURNS boolean LANGUAGE plpgsql
	AS $$ BEGIN RAISE EXCEPTION 'the trap operator ran'; END $$;
CREATE OPERATOR app.= (LEFTARG = oid, RIGHTARG = oid, FUNCTION = app.trap);
CREATE FUNCTION app.trap(text, text) RETURNS boolean LANGUAGE plpgsql
	AS $$ BEGIN RAISE EXCEPTION 'the trap operator ran'; END $$;
CREATE OPERATOR app.= (LEFTARG = text, RIGHTARG = text, FUNCTION = app.trap);
SET search_path = app, pg_catalog, public;
ALTER TABLE items DROP COLUMN embedding;
ALTER TABLE items ADD COLUMN probe int;
ALTER TABLE items DROP COLUMN probe;
SET search_path = app, public;
DROP OPERATOR app.= (oid, oid);
DROP OPERATOR app.= (text, text);
DROP FUNCTION app.trap(oid, oid);
DROP FUNCTION app.trap(text, text);

-- A superuser can disable the guard's triggers (PostgreSQL does not report
-- ALTER EVENT TRIGGER to event triggers).  A protected column renamed
-- meanwhile is found missing by the next ALTER TABLE of its table, until it
-- gets its name back or the transaction allows dropping the protection.
ALTER EVENT TRIGGER domi_drop_guard_alter DISABLE;
ALTER TABLE items RENAME COLUMN title TO caption;
-- Dropping it under its new name is refused by the sql_drop check alone
-- (the registry still says "title"): the protection is missing, not gone.
ALTER TABLE items DROP COLUMN caption;
ALTER EVENT TRIGGER domi_drop_guard_alter ENABLE ALWAYS;
ALTER TABLE items ADD COLUMN probe int;
ALTER TABLE items RENAME COLUMN caption TO title;
ALTER TABLE items ADD COLUMN probe int;
ALTER TABLE items DROP COLUMN probe;

-- Dropping domi itself would remove every protection: refused too.
DROP EXTENSION domi;
DROP EXTENSION domi CASCADE;
DROP SCHEMA domi CASCADE;
-- domi's PL/pgSQL functions depend on plpgsql: dropping it with CASCADE
-- would drop all of domi, with no trigger of domi's left to see it.
BEGIN;
DROP EXTENSION plpgsql CASCADE;
ROLLBACK;
SELECT extname FROM pg_extension WHERE extname IN ('domi', 'plpgsql') ORDER BY 1;

-- The override.  Only SET LOCAL in the transaction that runs the DDL counts.
SET ROLE guard_owner;
-- A session-level value set in an earlier transaction does not count, and
-- the error says why.
SET domi.allow_drop = 'app.items.embedding';
ALTER TABLE items DROP COLUMN embedding;
-- Nor does a plain SET in the same transaction.
BEGIN;
SET domi.allow_drop = 'app.items.embedding';
ALTER TABLE items DROP COLUMN embedding;
ROLLBACK;
-- Nor a SET LOCAL that was rolled back to a savepoint: the older session
-- value comes back in force inside this transaction, and still does not count.
BEGIN;
SAVEPOINT s;
SET LOCAL domi.allow_drop = 'app.items.note';
ROLLBACK TO SAVEPOINT s;
SHOW domi.allow_drop;
ALTER TABLE items DROP COLUMN embedding;
ROLLBACK;
RESET domi.allow_drop;
-- Nor a function's SET clause: it would allow the drop in every transaction
-- that calls the function.
CREATE FUNCTION drop_embedding() RETURNS void LANGUAGE plpgsql
	SET domi.allow_drop = 'app.items.embedding'
	AS $$ BEGIN ALTER TABLE app.items DROP COLUMN embedding; END $$;
SELECT drop_embedding();
DROP FUNCTION drop_embedding();
-- Nor a SET LOCAL naming another column, or only some of them.
BEGIN;
SET LOCAL domi.allow_drop = 'app.items.note';
ALTER TABLE items DROP COLUMN embedding;
ROLLBACK;
BEGIN;
SET LOCAL domi.allow_drop = 'app.items.embedding';
DROP TABLE items CASCADE;
ROLLBACK;
-- Nothing was dropped.
SELECT items_columns();

-- SET LOCAL naming the column: the drop goes through with a notice (and a
-- LOG line), and the protection goes with the column.
BEGIN;
SET LOCAL domi.allow_drop = 'app.items.embedding';
ALTER TABLE items DROP COLUMN embedding;
SELECT items_columns();
SELECT column_name FROM domi.protected_columns WHERE table_name = 'items' ORDER BY 1;
ROLLBACK;
-- Rolled back: column and protection are back.
SELECT items_columns();
SELECT column_name FROM domi.protected_columns WHERE table_name = 'items' ORDER BY 1;

-- Names follow SQL rules: unquoted is folded to lower case, a list takes
-- every column a statement touches, set_config(..., true) is SET LOCAL, and a
-- multi-statement query string is one transaction.
BEGIN;
SELECT set_config('domi.allow_drop', ' APP.Items.Embedding ,app.items.title', true);
DROP TABLE items CASCADE;
SELECT count(*) AS protected_items_columns FROM domi.protected_columns WHERE table_name = 'items';
ROLLBACK;
CREATE TABLE notes (id int, body text);
SELECT domi.protect_column('notes', 'body');
SET LOCAL domi.allow_drop = 'app.notes.body' \; ALTER TABLE notes DROP COLUMN body;
-- and the setting ended with that implicit transaction.
SHOW domi.allow_drop;
DROP TABLE notes;

-- A rename allowed by SET LOCAL keeps the protection under the new name; a
-- type change allowed by it records the new type.
BEGIN;
SET LOCAL domi.allow_drop = 'app.items.title';
ALTER TABLE items RENAME COLUMN title TO headline;
-- The override names the column as it is now called: the old name no longer
-- allows anything.
SAVEPOINT renamed;
ALTER TABLE items ALTER COLUMN headline TYPE varchar(40);
ROLLBACK TO SAVEPOINT renamed;
SET LOCAL domi.allow_drop = 'app.items.headline';
ALTER TABLE items ALTER COLUMN headline TYPE varchar(40);
SELECT column_name, column_type, allow_drop FROM domi.protected_columns WHERE table_name = 'items' ORDER BY 1;
ALTER TABLE items DROP COLUMN headline CASCADE;
ROLLBACK;
-- A rewrite with USING allowed by it keeps the protection and the type.
BEGIN;
SET LOCAL domi.allow_drop = 'app.items.embedding';
ALTER TABLE items ALTER COLUMN embedding TYPE citext USING lower(embedding);
SELECT embedding FROM items;
SELECT column_name, column_type FROM domi.protected_columns WHERE table_name = 'items' ORDER BY 1;
ROLLBACK;

-- Names that need quotes: the hint gives the exact value to set.
CREATE TABLE "Odd.Table" ("Col, 1" text, "say ""hi""" text);
SELECT domi.protect_column('"Odd.Table"', 'Col, 1');
SELECT domi.protect_column('"Odd.Table"', 'say "hi"');
SELECT allow_drop FROM domi.protected_columns WHERE table_name = 'Odd.Table' ORDER BY 1;
DROP TABLE "Odd.Table";
BEGIN;
SET LOCAL domi.allow_drop = 'app.odd.table.col, 1';
ROLLBACK;
BEGIN;
SET LOCAL domi.allow_drop = 'app."Odd.Table"."Col, 1", app."Odd.Table"."say ""hi"""';
DROP TABLE "Odd.Table";
COMMIT;
SELECT count(*) AS odd_table_protections FROM domi.protected_columns WHERE table_name = 'Odd.Table';

-- Malformed values are refused when set (22023), not silently ignored.
SET domi.allow_drop = 'app.items';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SET domi.allow_drop = 'app.items.*';
SET domi.allow_drop = 'app.items.embedding,';
SET domi.allow_drop = 'app."items.embedding';
SET domi.allow_drop = 'app.items."".x';
SET domi.allow_drop = 'app.items.embedding.extra';
SHOW domi.allow_drop;

-- Dropping domi with every protected column allowed goes through (rolled back
-- here: the rest of the suite needs domi).
RESET ROLE;
BEGIN;
SET LOCAL domi.allow_drop = 'app.base.id, app.child.secret, app.items.embedding, app.items.title';
DROP EXTENSION domi;
ROLLBACK;

-- unprotect_column: true when it removed a protection, false after; then the
-- column drops like any other.
SET ROLE guard_owner;
SELECT domi.unprotect_column('items', 'embedding');
SELECT domi.unprotect_column('items', 'embedding');
ALTER TABLE items DROP COLUMN embedding;
SELECT domi.unprotect_column('items', 'title');
-- A superuser may unprotect another role's table.
SELECT domi.unprotect_column('app.base', 'id');
RESET ROLE;
SELECT domi.unprotect_column('app.base', 'id');
SELECT domi.unprotect_column('app.child', 'secret');
SELECT count(*) AS protected FROM domi.protected_columns;

RESET search_path;
DROP SCHEMA app CASCADE;
DROP ROLE guard_owner;
DROP ROLE guard_other;
DROP EXTENSION citext;

-- The keyring.  Dropping domi drops domi.tenant_keys with it, and every value
-- encrypted under those keys is unreadable for good: refused while a key is
-- not destroyed, whatever state it is in.
\set tg1 '''99999999-0000-4000-8000-000000000001'''
\set tg2 '''99999999-0000-4000-8000-000000000002'''
SELECT domi.rotate_tenant_key(:tg1) AS g1_v1, domi.rotate_tenant_key(:tg1) AS g1_v2,
	domi.rotate_tenant_key(:tg2) AS g2_v1;
SELECT tenant, version, state FROM domi.tenant_keys
WHERE tenant IN (:tg1, :tg2) ORDER BY 1, 2;
DROP EXTENSION domi;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
DROP EXTENSION domi CASCADE;
DROP SCHEMA domi CASCADE;
-- DROP OWNED BY the role that created domi (the superuser running this).
BEGIN;
DROP OWNED BY CURRENT_USER;
ROLLBACK;
-- Nothing was dropped.
SELECT extname FROM pg_extension WHERE extname = 'domi';
SELECT count(*) AS keys FROM domi.tenant_keys WHERE tenant IN (:tg1, :tg2);
-- A role that may not drop domi gets PostgreSQL's permission error before
-- the keyring's refusal: it is not told how many keys are live
-- (test/sql/keyring_hardening.sql tests more).
CREATE ROLE guard_nobody;
SET ROLE guard_nobody;
SELECT count(*) FROM domi.tenant_keys;
DROP EXTENSION domi;
RESET ROLE;
DROP ROLE guard_nobody;

-- A session-level SET does not count, and the error says why.
SET domi.allow_drop = 'domi.tenant_keys';
DROP EXTENSION domi;
RESET domi.allow_drop;
-- domi.tenant_keys is the only entry with two names; any other table is a
-- typo, refused at SET time.
SET domi.allow_drop = 'public.tenant_keys';
SET domi.allow_drop = 'domi.tenant_keys.*';

-- The override: SET LOCAL in the transaction that drops domi, reported to
-- the client (and logged).  Rolled back here: the rest of the suite needs domi.
BEGIN;
SET LOCAL domi.allow_drop = '"domi".TENANT_KEYS';
DROP EXTENSION domi;
SELECT count(*) AS domi_installed FROM pg_extension WHERE extname = 'domi';
ROLLBACK;
-- It allows the keys, not a protected column: both must be named.
CREATE TABLE guard_keys_note (id int, body bytea);
SELECT domi.protect_column('guard_keys_note', 'body');
BEGIN;
SET LOCAL domi.allow_drop = 'domi.tenant_keys';
DROP EXTENSION domi;
ROLLBACK;
BEGIN;
SET LOCAL domi.allow_drop = 'public.guard_keys_note.body, domi.tenant_keys';
DROP EXTENSION domi;
ROLLBACK;
SELECT domi.unprotect_column('guard_keys_note', 'body');
DROP TABLE guard_keys_note;

-- Destroying the keys on purpose lets the drop through: once every tenant's
-- keys are destroyed, nothing is left to lose.  One tenant is not enough.
BEGIN;
SELECT domi.destroy_tenant_keys(:tg1) AS g1_destroyed;
DROP EXTENSION domi;
ROLLBACK;
BEGIN;
SELECT domi.destroy_tenant_keys(:tg1) AS g1_destroyed, domi.destroy_tenant_keys(:tg2) AS g2_destroyed;
DROP EXTENSION domi;
SELECT count(*) AS domi_installed FROM pg_extension WHERE extname = 'domi';
ROLLBACK;

-- Leave the keyring as this file found it.
DELETE FROM domi.tenant_keys WHERE tenant IN (:tg1, :tg2);
