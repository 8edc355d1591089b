-- domi 0.1.0
\echo Use "CREATE EXTENSION domi" to load this file. \quit

-- The extension lives in the fixed schema "domi" (domi.control: schema = domi).
-- Everyone may look up names in it; each function says who may execute it.
GRANT USAGE ON SCHEMA domi TO PUBLIC;

--------------------------------------------------------------------------
-- Tenant context (src/tenant.c)
--------------------------------------------------------------------------

-- Sets the tenant for the current transaction only; NULL clears it.
-- Not STRICT: NULL is a meaningful argument.  VOLATILE: it changes state.
CREATE FUNCTION domi.set_tenant(tenant uuid) RETURNS uuid
	AS 'MODULE_PATHNAME', 'domi_set_tenant'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- The current tenant, or NULL: a policy comparing with it fails closed.
CREATE FUNCTION domi.current_tenant() RETURNS uuid
	AS 'MODULE_PATHNAME', 'domi_current_tenant'
	LANGUAGE C STABLE PARALLEL SAFE;

-- The current tenant, or an error (SQLSTATE 55000) when none is set.
CREATE FUNCTION domi.require_tenant() RETURNS uuid
	AS 'MODULE_PATHNAME', 'domi_require_tenant'
	LANGUAGE C STABLE PARALLEL SAFE;

COMMENT ON FUNCTION domi.set_tenant(uuid) IS 'set the tenant for the current transaction (NULL clears it)';
COMMENT ON FUNCTION domi.current_tenant() IS 'the current tenant, or NULL when none is set';
COMMENT ON FUNCTION domi.require_tenant() IS 'the current tenant, or an error when none is set';
