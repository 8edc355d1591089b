\echo '--- 7. Drop guard: columns no migration may drop by accident ---------'
\echo 'A db:push from a branch that lost a column drops it, data and all.'
\echo 'domi.protect_column() makes every client (psql, drizzle-kit push, an ORM,'
\echo 'pg_restore --clean) fail instead: event triggers in the database refuse'
\echo 'to drop, rename or retype the column, also through CASCADE, unless the'
\echo 'same transaction said SET LOCAL domi.allow_drop first.'
\echo '(citext, from PostgreSQL contrib, plays the part of pgvector''s vector.)'
\echo
CREATE EXTENSION citext;
CREATE TABLE documents (id int PRIMARY KEY, title text, embedding citext);
INSERT INTO documents VALUES (1, 'Handbook', 'ALPHA'), (2, 'Roadmap', 'BETA');
SELECT domi.protect_column('documents', 'embedding') AS protected;
SELECT schema_name, table_name, column_name, column_type, allow_drop FROM domi.protected_columns;
\echo
\echo 'What a push from the wrong branch sends, and what happens:'
\echo '  ALTER TABLE documents DROP COLUMN embedding;'
\set ON_ERROR_STOP 0
ALTER TABLE documents DROP COLUMN embedding;
\echo '  ALTER TABLE documents ALTER COLUMN embedding TYPE text;'
ALTER TABLE documents ALTER COLUMN embedding TYPE text;
\echo '  DROP EXTENSION citext CASCADE;   -- the type goes, and the column with it'
DROP EXTENSION citext CASCADE;
\echo
\echo 'A session-wide SET (or PGOPTIONS, ALTER ROLE ... SET) does not count:'
SET domi.allow_drop = 'public.documents.embedding';
ALTER TABLE documents DROP COLUMN embedding;
RESET domi.allow_drop;
\set ON_ERROR_STOP 1
SELECT id, title, embedding FROM documents ORDER BY id;
\echo
\echo 'Meaning it: SET LOCAL in the same transaction. The drop is logged (role,'
\echo 'column, statement) and the client gets a notice. Rolled back here.'
BEGIN;
SET LOCAL domi.allow_drop = 'public.documents.embedding';
ALTER TABLE documents DROP COLUMN embedding;
ROLLBACK;
\echo
\echo 'domi.unprotect_column() (the table owner) removes the protection:'
SELECT domi.unprotect_column('documents', 'embedding') AS unprotected;
DROP TABLE documents;
DROP EXTENSION citext;
\echo
