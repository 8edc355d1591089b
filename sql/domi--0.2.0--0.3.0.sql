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

-- The functions keep their signatures; what changes is in src/tenancy.c:
-- - No code of a configured table's owner runs with the extension owner's
--   rights: the lookups scan the tables instead of planning a query (which
--   folds the owner's immutable functions in index expressions), and
--   bootstrap_tenant evaluates the id default and inserts as each table's
--   owner, in a security-restricted operation, with the tenant set to the
--   new id.  The extension owner now needs only SELECT on the memberships
--   table (and BYPASSRLS, or to be a superuser).
-- - bootstrap_tenant serializes on a lock tag that no pg_advisory_*
--   function can take (objsubid 101), not on the advisory lock
--   (1685024105, hashtext(user_id)) that any role could hold.
-- - The user column may be uuid, smallint, integer or bigint as well as
--   text or varchar; the text argument is converted to its type (22P02).
COMMENT ON FUNCTION domi.user_tenant(text) IS 'the tenant of the user''s first membership, or NULL (the id is compared in the user column''s type)';


--------------------------------------------------------------------------
-- Row-level security and its guards
--------------------------------------------------------------------------


--------------------------------------------------------------------------
-- Migration lineage
--------------------------------------------------------------------------


--------------------------------------------------------------------------
-- Privileges of internal helpers
--------------------------------------------------------------------------


--------------------------------------------------------------------------
-- Citus
--------------------------------------------------------------------------

