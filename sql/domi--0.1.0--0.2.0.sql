-- domi 0.1.0 -> 0.2.0
\echo Use "ALTER EXTENSION domi UPDATE TO '0.2.0'" to load this file. \quit

-- 0.2.0 adds the keyring, the tenant lookup, the migration-lineage checker
-- and the drop guard.  A fresh CREATE EXTENSION runs domi--0.1.0.sql and
-- then this script (PostgreSQL follows the update chain when no
-- domi--0.2.0.sql exists), so a new install and an upgraded one are the
-- same by construction.  Each feature has its own section below.

--------------------------------------------------------------------------
-- Keyring (src/keyring.c, src/rekey.c)
--------------------------------------------------------------------------

-- (end of keyring)

--------------------------------------------------------------------------
-- Tenant lookup (src/tenancy.c)
--------------------------------------------------------------------------

-- (end of tenant lookup)

--------------------------------------------------------------------------
-- Migration lineage (src/lineage.c)
--------------------------------------------------------------------------

-- The manifest is {"format": "drizzle" | "prisma", "files": {name: text}}:
-- a migrations folder's files, each as its exact text (README.md, "Migration
-- lineage").  Read-only, with the caller's rights: reading the migrations
-- table needs the caller's SELECT on it.  Not STRICT: a NULL table means the
-- format's default table, when it exists.
CREATE FUNCTION domi.lineage_check(manifest jsonb, migrations_table regclass DEFAULT NULL)
RETURNS TABLE (severity text, code text, migration text, detail text, fix text)
AS 'MODULE_PATHNAME', 'domi_lineage_check'
LANGUAGE C STABLE;

COMMENT ON FUNCTION domi.lineage_check(jsonb, regclass) IS
'Checks a Drizzle or Prisma migrations folder (the manifest) against itself and against the database''s migrations table; one row per finding, errors first.';

-- (end of migration lineage)

--------------------------------------------------------------------------
-- Drop guard (src/guard.c)
--------------------------------------------------------------------------

-- (end of drop guard)
