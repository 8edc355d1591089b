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

-- Which tables and columns hold memberships and tenants: one row, written by
-- domi.configure_tenancy().  The tables are regclass: the row stores their
-- OIDs, so renaming a table or changing search_path cannot point the lookups
-- at another table; pg_dump writes a regclass out as a schema-qualified name,
-- which the restore resolves to the restored table (the OIDs differ there).
-- Columns are stored by name and resolved, and type-checked, when used: a
-- column renamed away is an error, never a silent match with another one.
-- An extension configuration table, so pg_dump dumps its row.  Only the
-- extension owner may read or write it.
CREATE TABLE domi.tenancy_config (
	singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	memberships pg_catalog.regclass NOT NULL,
	user_column name NOT NULL,
	tenant_column name NOT NULL,
	order_column name,
	tenants pg_catalog.regclass,
	tenants_id_column name
);
SELECT pg_catalog.pg_extension_config_dump('domi.tenancy_config', '');
REVOKE ALL ON domi.tenancy_config FROM PUBLIC;

-- Every write checks the row (also a restore or a direct UPDATE by the
-- owner) and tells every backend to re-prepare its lookups.
CREATE FUNCTION domi._tenancy_config_changed() RETURNS trigger
	AS 'MODULE_PATHNAME', 'domi_tenancy_config_changed'
	LANGUAGE C;
CREATE TRIGGER tenancy_config_check BEFORE INSERT OR UPDATE ON domi.tenancy_config
	FOR EACH ROW EXECUTE FUNCTION domi._tenancy_config_changed();
CREATE TRIGGER tenancy_config_removed AFTER DELETE OR TRUNCATE ON domi.tenancy_config
	FOR EACH STATEMENT EXECUTE FUNCTION domi._tenancy_config_changed();
REVOKE ALL ON FUNCTION domi._tenancy_config_changed() FROM PUBLIC;

-- Runs with the caller's rights, and refuses (42501) anyone but the
-- extension owner or a superuser.  order_column NULL: order by tenant id
-- only.  tenants NULL: no bootstrap_tenant.
CREATE FUNCTION domi.configure_tenancy(memberships regclass,
		user_column name DEFAULT 'user_id',
		tenant_column name DEFAULT 'tenant_id',
		order_column name DEFAULT 'created_at',
		tenants regclass DEFAULT NULL,
		tenants_id_column name DEFAULT 'id')
	RETURNS void
	AS 'MODULE_PATHNAME', 'domi_configure_tenancy'
	LANGUAGE C VOLATILE
	SET search_path = pg_catalog, pg_temp;

-- The lookups: SECURITY DEFINER (they read past the application's
-- row-level security with the extension owner's rights), search_path
-- pinned, revoked from PUBLIC: GRANT EXECUTE to the application role.
-- PARALLEL RESTRICTED: they keep per-backend state (plans, the chosen index)
-- and run in the leader only.
CREATE FUNCTION domi.user_tenant(user_id text) RETURNS uuid
	AS 'MODULE_PATHNAME', 'domi_user_tenant'
	LANGUAGE C STABLE STRICT PARALLEL RESTRICTED SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION domi.user_tenants(user_id text) RETURNS SETOF uuid
	AS 'MODULE_PATHNAME', 'domi_user_tenants'
	LANGUAGE C STABLE STRICT PARALLEL RESTRICTED SECURITY DEFINER ROWS 3
	SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION domi.is_member(user_id text, tenant uuid) RETURNS boolean
	AS 'MODULE_PATHNAME', 'domi_is_member'
	LANGUAGE C STABLE STRICT PARALLEL RESTRICTED SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;

-- Not STRICT: a NULL tenant means "the first membership"; a NULL user is an
-- error (22004).  Sets the tenant exactly as domi.set_tenant() does.
CREATE FUNCTION domi.enter_tenant(user_id text, tenant uuid DEFAULT NULL) RETURNS uuid
	AS 'MODULE_PATHNAME', 'domi_enter_tenant'
	LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;

-- Not STRICT: a NULL user is an error (22004), a NULL tenant is '{}'.
CREATE FUNCTION domi.bootstrap_tenant(user_id text, tenant jsonb DEFAULT '{}') RETURNS uuid
	AS 'MODULE_PATHNAME', 'domi_bootstrap_tenant'
	LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;

REVOKE ALL ON FUNCTION domi.configure_tenancy(regclass, name, name, name, regclass, name) FROM PUBLIC;
REVOKE ALL ON FUNCTION domi.user_tenant(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION domi.user_tenants(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION domi.is_member(text, uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION domi.enter_tenant(text, uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION domi.bootstrap_tenant(text, jsonb) FROM PUBLIC;

COMMENT ON TABLE domi.tenancy_config IS 'the tables and columns of memberships and tenants, written by domi.configure_tenancy';
COMMENT ON FUNCTION domi.configure_tenancy(regclass, name, name, name, regclass, name) IS 'record which tables and columns hold memberships and tenants (extension owner only)';
COMMENT ON FUNCTION domi.user_tenant(text) IS 'the tenant of the user''s first membership, or NULL';
COMMENT ON FUNCTION domi.user_tenants(text) IS 'the tenants of all the user''s memberships, first first';
COMMENT ON FUNCTION domi.is_member(text, uuid) IS 'is the user a member of the tenant?';
COMMENT ON FUNCTION domi.enter_tenant(text, uuid) IS 'check membership, then set the tenant for the current transaction';
COMMENT ON FUNCTION domi.bootstrap_tenant(text, jsonb) IS 'create a tenant and the user''s first membership, or return the tenant the user already has';

-- (end of tenant lookup)

--------------------------------------------------------------------------
-- Migration lineage (src/lineage.c)
--------------------------------------------------------------------------

-- (end of migration lineage)

--------------------------------------------------------------------------
-- Drop guard (src/guard.c)
--------------------------------------------------------------------------

-- (end of drop guard)
