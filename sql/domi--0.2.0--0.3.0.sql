-- domi 0.2.0 -> 0.3.0
\echo Use "ALTER EXTENSION domi UPDATE TO '0.3.0'" to load this file. \quit

-- 0.3.0 hardens what 0.2.0 promised for the deployments teams run: a
-- migrator's push cannot switch tenant isolation off, a session-wide tenant
-- cannot outlive its client behind a pooler, the tenant bootstrap runs no
-- table owner's code with the extension owner's rights, a rotation cannot
-- strand a value, and roles without privileges cannot exhaust a backend or
-- mint keys.  A fresh CREATE EXTENSION runs domi--0.1.0.sql, then
-- domi--0.1.0--0.2.0.sql, then this script.  Each concern has its own
-- section below; add to your own section only, so that work on different
-- concerns merges cleanly.

--------------------------------------------------------------------------
-- Tenant context
--------------------------------------------------------------------------


--------------------------------------------------------------------------
-- Keyring
--------------------------------------------------------------------------


--------------------------------------------------------------------------
-- Tenant lookup and bootstrap
--------------------------------------------------------------------------


--------------------------------------------------------------------------
-- Row-level security and its guards
--------------------------------------------------------------------------


--------------------------------------------------------------------------
-- Migration lineage
--------------------------------------------------------------------------

-- domi.lineage_check gains max_findings_per_code: at most that many rows
-- per finding code, then one summary row per code with the count left out,
-- so that a folder with a million broken entries cannot make a backend
-- hold a million findings (issue 18).  A new argument is a new signature:
-- the old function is replaced, and calls with one or two arguments mean
-- what they meant.  Still executable by every role: it reads only the
-- manifest it is given and, with the caller's rights, the migrations table,
-- and its memory is bounded by a small multiple of the manifest.
DROP FUNCTION domi.lineage_check(jsonb, regclass);

CREATE FUNCTION domi.lineage_check(manifest jsonb, migrations_table regclass DEFAULT NULL,
								   max_findings_per_code integer DEFAULT 100)
RETURNS TABLE (severity text, code text, migration text, detail text, fix text)
AS 'MODULE_PATHNAME', 'domi_lineage_check'
LANGUAGE C STABLE;

COMMENT ON FUNCTION domi.lineage_check(jsonb, regclass, integer) IS
'Checks a Drizzle or Prisma migrations folder (the manifest) against itself and against the database''s migrations table; one row per finding, errors first, at most max_findings_per_code (0 to 100000, NULL = 100) per code and then a row with the count left out.';


--------------------------------------------------------------------------
-- Privileges of internal helpers
--------------------------------------------------------------------------


--------------------------------------------------------------------------
-- Citus
--------------------------------------------------------------------------

