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


--------------------------------------------------------------------------
-- Privileges of internal helpers
--------------------------------------------------------------------------


--------------------------------------------------------------------------
-- Citus
--------------------------------------------------------------------------

