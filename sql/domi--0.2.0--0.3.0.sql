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


-- The tenant in policies as a plain call, planned as an initplan.  Citus
-- refuses sub-selects in policies of distributed tables ("Subqueries are not
-- supported in policies on distributed tables") and accepts
-- "tenant_id = domi.current_tenant()".  A planner support function makes the
-- planner plan each call of the tenant functions as "(SELECT ...)", an
-- initplan evaluated once per execution (never folded into a cached plan),
-- so the plain call costs what the sub-select did.
CREATE FUNCTION domi._tenant_support(internal) RETURNS internal
	AS 'MODULE_PATHNAME', 'domi_tenant_support'
	LANGUAGE C STRICT;
REVOKE ALL ON FUNCTION domi._tenant_support(internal) FROM PUBLIC;
ALTER FUNCTION domi.current_tenant() SUPPORT domi._tenant_support;
ALTER FUNCTION domi.require_tenant() SUPPORT domi._tenant_support;

-- domi's policy in the plain form (see above).  Unchanged otherwise.
CREATE OR REPLACE FUNCTION domi.enable_tenant_rls(tbl regclass, tenant_column name DEFAULT 'tenant_id')
	RETURNS void
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
	SET domi.rls_guard = off
AS $$
DECLARE
	state jsonb;
	part regclass;
BEGIN
	PERFORM domi._tenant_column_attnum(tbl, tenant_column);

	-- Remember what was there before domi, the first time only.
	state := domi._tenant_policy_state(tbl);
	IF state IS NULL OR NOT state ? 'rls_was_enabled' THEN
		SELECT pg_catalog.jsonb_build_object('rls_was_enabled', c.relrowsecurity,
				'rls_was_forced', c.relforcerowsecurity)
			INTO state
			FROM pg_catalog.pg_class c WHERE c.oid = tbl;
	END IF;
	state := state || pg_catalog.jsonb_build_object('tenant_column', tenant_column);

	IF domi._tenant_policy_state(tbl) IS NOT NULL THEN
		EXECUTE pg_catalog.format('DROP POLICY domi_tenant_isolation ON %s', tbl);
	END IF;
	EXECUTE pg_catalog.format('CREATE POLICY domi_tenant_isolation ON %s AS PERMISSIVE FOR ALL TO PUBLIC'
			' USING (%2$I = domi.current_tenant()) WITH CHECK (%2$I = domi.current_tenant())',
			tbl, tenant_column);
	EXECUTE pg_catalog.format('COMMENT ON POLICY domi_tenant_isolation ON %s IS %L',
			tbl, 'domi tenant isolation ' || state::text);
	EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY', tbl);

	FOR part IN
		SELECT i.inhrelid::pg_catalog.regclass
			FROM pg_catalog.pg_inherits i
			JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
			WHERE i.inhparent = tbl AND c.relispartition AND c.relkind IN ('r', 'p')
			ORDER BY 1
	LOOP
		PERFORM domi.enable_tenant_rls(part, tenant_column);
	END LOOP;
END;
$$;

-- Rewrite the policies that domi installed before 0.3.0 to the plain form,
-- so that their tables can be distributed with Citus.  Only domi's own
-- policy (by name and by its comment), and only while it is still the
-- sub-select form enable_tenant_rls made.
DO $$
DECLARE
	r record;
BEGIN
	FOR r IN
		SELECT p.polrelid::pg_catalog.regclass AS tbl, a.attname AS col
			FROM pg_catalog.pg_policy p
			JOIN pg_catalog.pg_description d
				ON d.classoid = 'pg_catalog.pg_policy'::pg_catalog.regclass AND d.objoid = p.oid
			CROSS JOIN LATERAL (SELECT pg_catalog.substring(d.description, '\{.*\}$')::jsonb ->> 'tenant_column' AS name) s
			JOIN pg_catalog.pg_attribute a ON a.attrelid = p.polrelid AND a.attname = s.name
			WHERE p.polname = 'domi_tenant_isolation'
				AND d.description LIKE 'domi tenant isolation %'
				-- pg_get_expr() qualifies the call only when domi is not
				-- on the search_path, as it is in this script.
				AND pg_catalog.replace(pg_catalog.pg_get_expr(p.polqual, p.polrelid), 'domi.', '')
					= pg_catalog.format('(%I = ( SELECT current_tenant() AS current_tenant))', a.attname)
				AND pg_catalog.replace(pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid), 'domi.', '')
					= pg_catalog.format('(%I = ( SELECT current_tenant() AS current_tenant))', a.attname)
			ORDER BY 1
	LOOP
		EXECUTE pg_catalog.format('ALTER POLICY domi_tenant_isolation ON %s'
				' USING (%2$I = domi.current_tenant()) WITH CHECK (%2$I = domi.current_tenant())',
				r.tbl, r.col);
	END LOOP;
END;
$$;

-- One keyring for the cluster.  Citus runs domi.encrypt/decrypt on whichever
-- node holds a shard, and each node has its own domi.tenant_keys: a value
-- encrypted on one node could not be opened on another, and two nodes could
-- each make a different first key for the same tenant.  As a Citus reference
-- table, domi.tenant_keys has one copy on every node, written on all of them
-- in one transaction, and its unique keys hold across the cluster.  Run once
-- on the coordinator after the workers are added (Citus copies reference
-- tables to nodes added later).  Returns false when it already was.
CREATE FUNCTION domi.citus_distribute_keyring() RETURNS boolean
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
		RAISE EXCEPTION 'Citus is not installed in this database'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				HINT = 'Create the extension citus first; a single server needs no distributed keyring.';
	END IF;
	IF EXISTS (SELECT FROM pg_catalog.pg_dist_partition
			WHERE logicalrelid = 'domi.tenant_keys'::pg_catalog.regclass) THEN
		RETURN false;
	END IF;
	-- Citus refuses tables with triggers unless told; the keyring's trigger
	-- only tells the key caches of the node it fires on to forget the table,
	-- which is what every node's copy needs.
	PERFORM pg_catalog.set_config('citus.enable_unsafe_triggers', 'on', true);
	PERFORM create_reference_table('domi.tenant_keys');
	RETURN true;
END;
$$;
REVOKE ALL ON FUNCTION domi.citus_distribute_keyring() FROM PUBLIC;
COMMENT ON FUNCTION domi.citus_distribute_keyring() IS 'make domi.tenant_keys a Citus reference table: one keyring for the cluster';
