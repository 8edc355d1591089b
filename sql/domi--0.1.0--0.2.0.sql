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

-- (end of migration lineage)

--------------------------------------------------------------------------
-- Drop guard (src/guard.c)
--------------------------------------------------------------------------

-- (end of drop guard)
