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

-- The event trigger functions run for every role's DDL without an EXECUTE
-- check (PostgreSQL checks none when an event trigger fires), so no role
-- needs the right to call them directly.
REVOKE ALL ON FUNCTION domi._rls_guard() FROM PUBLIC;
REVOKE ALL ON FUNCTION domi._drop_guard_sql_drop() FROM PUBLIC;
REVOKE ALL ON FUNCTION domi._drop_guard_ddl_end() FROM PUBLIC;
REVOKE ALL ON FUNCTION domi._drop_guard_ddl_start() FROM PUBLIC;

-- Internal helpers that stay executable by PUBLIC, because functions that
-- every role may call run them with the caller's rights:
--   domi._policy_compares_tenant, _policy_per_row_calls, _policy_initplan_form
--     (domi.rls_audit()): they accept only the expression of a policy
--     (pg_policy.polqual or polwithcheck, with that policy's relation) and
--     refuse any other catalog node tree with 22023 (src/rls.c);
--   domi._tenant_column_attnum, _tenant_policy_state (domi.enable_tenant_rls,
--     domi.disable_tenant_rls and the RLS guard, which runs as the role that
--     runs the DDL) and domi._tenant_tables (domi.rls_audit()): they read
--     catalogs every role can read.
-- test/sql/zz_privileges.sql calls every function of the extension as a
-- role without grants and lists those it may call.


--------------------------------------------------------------------------
-- Citus
--------------------------------------------------------------------------

