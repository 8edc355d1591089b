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

--------------------------------------------------------------------------
-- Encryption core (src/crypto.c)
--------------------------------------------------------------------------

-- A box is nonce (24 bytes) || MAC (16 bytes) || ciphertext: libsodium
-- crypto_secretbox, byte-compatible with libsodium-wrappers and tweetnacl.
-- Encrypting functions draw a random nonce per call: VOLATILE.  Decrypting
-- functions depend on their arguments only: IMMUTABLE.

CREATE FUNCTION domi.gen_key() RETURNS bytea
	AS 'MODULE_PATHNAME', 'domi_gen_key'
	LANGUAGE C VOLATILE PARALLEL SAFE;

CREATE FUNCTION domi.secretbox(plaintext bytea, key bytea) RETURNS bytea
	AS 'MODULE_PATHNAME', 'domi_secretbox'
	LANGUAGE C VOLATILE STRICT PARALLEL SAFE;

CREATE FUNCTION domi.secretbox_open(box bytea, key bytea) RETURNS bytea
	AS 'MODULE_PATHNAME', 'domi_secretbox_open'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION domi.secretbox_text(plaintext text, key bytea) RETURNS bytea
	AS 'MODULE_PATHNAME', 'domi_secretbox_text'
	LANGUAGE C VOLATILE STRICT PARALLEL SAFE;

CREATE FUNCTION domi.secretbox_open_text(box bytea, key bytea) RETURNS text
	AS 'MODULE_PATHNAME', 'domi_secretbox_open_text'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION domi.gen_key() IS '32 random bytes, a key for domi.secretbox';
COMMENT ON FUNCTION domi.secretbox(bytea, bytea) IS 'encrypt and authenticate with a fresh random nonce: nonce || MAC || ciphertext';
COMMENT ON FUNCTION domi.secretbox_open(bytea, bytea) IS 'check and decrypt a box made by domi.secretbox or libsodium secretbox';
COMMENT ON FUNCTION domi.secretbox_text(text, bytea) IS 'domi.secretbox of the text''s UTF-8 bytes';
COMMENT ON FUNCTION domi.secretbox_open_text(bytea, bytea) IS 'domi.secretbox_open, checked as UTF-8 and returned as text';

--------------------------------------------------------------------------
-- Row-level security (src/rls.c)
--------------------------------------------------------------------------

-- The policy expressions read as trees (C): used by domi.rls_audit().
-- pg_node_tree values come from the catalogs only (the type has no input
-- function), so these cannot be fed made-up trees.

-- Does the expression have a top-level AND arm "column = current tenant"
-- (domi.current_tenant() or domi.require_tenant(), bare or as a sub-select)?
CREATE FUNCTION domi._policy_compares_tenant(expr pg_node_tree, attnum int2) RETURNS boolean
	AS 'MODULE_PATHNAME', 'domi_policy_compares_tenant'
	LANGUAGE C STABLE PARALLEL SAFE;

-- The calls evaluated once per row that a sub-select would evaluate once per
-- query: no column of the row in them, not IMMUTABLE, not in a sub-select.
CREATE FUNCTION domi._policy_per_row_calls(expr pg_node_tree, rel oid) RETURNS text[]
	AS 'MODULE_PATHNAME', 'domi_policy_per_row_calls'
	LANGUAGE C STABLE PARALLEL SAFE;

-- The expression with each of those calls wrapped in (SELECT ...).
CREATE FUNCTION domi._policy_initplan_form(expr pg_node_tree, rel oid) RETURNS text
	AS 'MODULE_PATHNAME', 'domi_policy_initplan_form'
	LANGUAGE C STABLE PARALLEL SAFE;

-- The attnum of a table's tenant column; refuses what is not a table, a
-- missing column (42703) and a column that is not uuid (42804).
CREATE FUNCTION domi._tenant_column_attnum(tbl regclass, tenant_column name) RETURNS int2
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	kind "char";
	att record;
BEGIN
	IF tbl IS NULL OR tenant_column IS NULL THEN
		RAISE EXCEPTION 'table and tenant column must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT c.relkind INTO kind FROM pg_catalog.pg_class c WHERE c.oid = tbl;
	IF kind IS NULL OR kind NOT IN ('r', 'p') THEN
		RAISE EXCEPTION '"%" is not a table', tbl
			USING ERRCODE = 'wrong_object_type',
				DETAIL = 'Tenant row-level security applies to tables and partitioned tables.';
	END IF;
	SELECT a.attnum, a.atttypid INTO att
		FROM pg_catalog.pg_attribute a
		WHERE a.attrelid = tbl AND a.attname = tenant_column
			AND a.attnum > 0 AND NOT a.attisdropped;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'column "%" of relation "%" does not exist', tenant_column, tbl
			USING ERRCODE = 'undefined_column',
				HINT = 'Name the tenant column as the second argument.';
	END IF;
	IF att.atttypid <> 'pg_catalog.uuid'::pg_catalog.regtype THEN
		RAISE EXCEPTION 'tenant column "%" of relation "%" is of type %, not uuid',
				tenant_column, tbl, pg_catalog.format_type(att.atttypid, NULL)
			USING ERRCODE = 'datatype_mismatch',
				DETAIL = 'The policy compares the column with domi.current_tenant(), which returns uuid.';
	END IF;
	RETURN att.attnum;
END;
$$;

-- What domi's policy on a table records about the state before it: its
-- comment is 'domi tenant isolation {json}'.  NULL when there is no policy.
CREATE FUNCTION domi._tenant_policy_state(tbl regclass) RETURNS jsonb
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT coalesce(pg_catalog.substring(d.description, '\{.*\}$')::jsonb, '{}'::jsonb)
		FROM pg_catalog.pg_policy p
		LEFT JOIN pg_catalog.pg_description d
			ON d.classoid = 'pg_catalog.pg_policy'::pg_catalog.regclass AND d.objoid = p.oid
		WHERE p.polrelid = tbl AND p.polname = 'domi_tenant_isolation'
$$;

-- ENABLE and FORCE row level security and (re)create the one policy
-- "domi_tenant_isolation": FOR ALL, USING and WITH CHECK
-- (tenant_column = (SELECT domi.current_tenant())), an initplan evaluated once
-- per query.  On a partitioned table, also on every partition, so a query
-- that names a partition directly is isolated too.  The guard is off inside:
-- the ALTER TABLE statements here would otherwise trip it half-way.
CREATE FUNCTION domi.enable_tenant_rls(tbl regclass, tenant_column name DEFAULT 'tenant_id')
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
			' USING (%2$I = (SELECT domi.current_tenant())) WITH CHECK (%2$I = (SELECT domi.current_tenant()))',
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

-- Undo domi.enable_tenant_rls: drop its policy, and turn FORCE and ENABLE
-- off only where domi turned them on.  Other policies are left alone.
CREATE FUNCTION domi.disable_tenant_rls(tbl regclass) RETURNS void
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
	SET domi.rls_guard = off
AS $$
DECLARE
	state jsonb;
	part regclass;
BEGIN
	IF tbl IS NULL THEN
		RAISE EXCEPTION 'table must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;

	FOR part IN
		SELECT i.inhrelid::pg_catalog.regclass
			FROM pg_catalog.pg_inherits i
			JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
			WHERE i.inhparent = tbl AND c.relispartition
			ORDER BY 1
	LOOP
		PERFORM domi.disable_tenant_rls(part);
	END LOOP;

	state := domi._tenant_policy_state(tbl);
	IF state IS NULL THEN
		RAISE NOTICE 'table "%" has no domi tenant policy, nothing to remove', tbl;
		RETURN;
	END IF;
	EXECUTE pg_catalog.format('DROP POLICY domi_tenant_isolation ON %s', tbl);
	IF NOT coalesce((state ->> 'rls_was_forced')::boolean, false) THEN
		EXECUTE pg_catalog.format('ALTER TABLE %s NO FORCE ROW LEVEL SECURITY', tbl);
	END IF;
	IF NOT coalesce((state ->> 'rls_was_enabled')::boolean, false) THEN
		EXECUTE pg_catalog.format('ALTER TABLE %s DISABLE ROW LEVEL SECURITY', tbl);
	END IF;
END;
$$;

COMMENT ON FUNCTION domi.enable_tenant_rls(regclass, name) IS 'make a table tenant-isolated: ENABLE + FORCE row level security and the policy domi_tenant_isolation';
COMMENT ON FUNCTION domi.disable_tenant_rls(regclass) IS 'remove what domi.enable_tenant_rls made, nothing else';

-- Tables with a tenant column (named by domi.tenant_column) that the
-- application may use: ordinary and partitioned, not temporary, not in a
-- system schema or domi's, not part of an extension.
CREATE FUNCTION domi._tenant_tables(tenant_column name)
	RETURNS TABLE (relid oid, attnum int2)
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT c.oid, a.attnum
		FROM pg_catalog.pg_class c
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_catalog.pg_attribute a
			ON a.attrelid = c.oid AND a.attname = tenant_column
			AND a.attnum > 0 AND NOT a.attisdropped
		WHERE c.relkind IN ('r', 'p') AND c.relpersistence <> 't'
			AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'domi')
			AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%'
			AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d
				WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
					AND d.objid = c.oid AND d.deptype = 'e')
$$;

-- Findings, in the spirit of database linters: one row per problem, with
-- the SQL that resolves it.  app_roles: the roles the application connects
-- or SET ROLEs as; the role checks run only when they are given.
CREATE FUNCTION domi.rls_audit(app_roles name[] DEFAULT NULL)
	RETURNS TABLE (severity text, check_name text, object text, detail text, fix text)
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	col name := pg_catalog.current_setting('domi.tenant_column');
	missing name;
BEGIN
	SELECT r INTO missing FROM pg_catalog.unnest(app_roles) r
		WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = r) LIMIT 1;
	IF FOUND THEN
		RAISE EXCEPTION 'role "%" does not exist', missing USING ERRCODE = 'undefined_object';
	END IF;

	RETURN QUERY SELECT f.severity, f.check_name, f.object, f.detail, f.fix FROM (
	-- Tenant tables: RLS off, not forced, no policy, no index.
	SELECT 'error' AS severity, 'tenant_table_rls_disabled' AS check_name, c.oid::regclass::text AS object,
			pg_catalog.format('Table %s has the tenant column %I but row level security is disabled: every role with privileges on it sees and writes every tenant''s rows.', c.oid::regclass, col)
				|| CASE WHEN c.relispartition THEN pg_catalog.format(' It is a partition of %s: the policies of a partitioned table do not apply to queries that name a partition.', i.inhparent::regclass) ELSE '' END AS detail,
			pg_catalog.format('SELECT domi.enable_tenant_rls(%L, %L);', c.oid::regclass::text, col) AS fix
		FROM domi._tenant_tables(col) t JOIN pg_catalog.pg_class c ON c.oid = t.relid
		LEFT JOIN pg_catalog.pg_inherits i ON i.inhrelid = c.oid AND c.relispartition
		WHERE NOT c.relrowsecurity
	UNION ALL
	SELECT 'error', 'rls_not_forced', c.oid::regclass::text,
			pg_catalog.format('Row level security on %s is enabled but not forced: its owner %I (and members of that role) bypass every policy.', c.oid::regclass, c.relowner::regrole),
			pg_catalog.format('ALTER TABLE %s FORCE ROW LEVEL SECURITY;', c.oid::regclass)
		FROM domi._tenant_tables(col) t JOIN pg_catalog.pg_class c ON c.oid = t.relid
		WHERE c.relrowsecurity AND NOT c.relforcerowsecurity
	UNION ALL
	SELECT 'warning', 'rls_enabled_no_policy', c.oid::regclass::text,
			pg_catalog.format('Row level security on %s is enabled but the table has no policy: no role subject to it sees any row.', c.oid::regclass),
			pg_catalog.format('SELECT domi.enable_tenant_rls(%L, %L);', c.oid::regclass::text, col)
		FROM domi._tenant_tables(col) t JOIN pg_catalog.pg_class c ON c.oid = t.relid
		WHERE c.relrowsecurity
			AND NOT EXISTS (SELECT FROM pg_catalog.pg_policy p WHERE p.polrelid = c.oid)
	UNION ALL
	SELECT 'warning', 'unindexed_tenant_column', c.oid::regclass::text,
			pg_catalog.format('No index of %s starts with the tenant column %I: every query under a tenant reads the whole table.', c.oid::regclass, col),
			pg_catalog.format('CREATE INDEX ON %s (%I);', c.oid::regclass, col)
		FROM domi._tenant_tables(col) t JOIN pg_catalog.pg_class c ON c.oid = t.relid
		WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_index i
			WHERE i.indrelid = c.oid AND i.indkey[0] = t.attnum AND i.indpred IS NULL)
	UNION ALL
	-- A unique key without the tenant column is shared by all tenants: one
	-- tenant learns another's values from conflicts (ON CONFLICT DO NOTHING
	-- inserts nothing, a plain INSERT fails) and cannot use them itself.
	SELECT 'warning', 'unique_key_without_tenant_column', c.oid::regclass::text,
			pg_catalog.format('Unique index %s on %s does not include the tenant column %I: its values are unique across all tenants, and a conflict tells one tenant that another has the value.', i.indexrelid::regclass, c.oid::regclass, col),
			CASE WHEN con.conname IS NOT NULL THEN
				pg_catalog.format('ALTER TABLE %s DROP CONSTRAINT %I, ADD CONSTRAINT %I UNIQUE (%I, %s);',
					c.oid::regclass, con.conname, con.conname, col, cols.list)
			ELSE
				pg_catalog.format('DROP INDEX %s; CREATE UNIQUE INDEX %I ON %s (%I, %s);',
					i.indexrelid::regclass, ic.relname, c.oid::regclass, col, cols.list)
			END
		FROM domi._tenant_tables(col) t
		JOIN pg_catalog.pg_class c ON c.oid = t.relid
		JOIN pg_catalog.pg_index i ON i.indrelid = c.oid
		JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
		LEFT JOIN pg_catalog.pg_constraint con ON con.conindid = i.indexrelid AND con.contype = 'u'
		CROSS JOIN LATERAL (
			SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY k.ord) AS list
				FROM pg_catalog.unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
				JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum) cols
		WHERE i.indisunique AND NOT i.indisprimary AND i.indexprs IS NULL AND i.indpred IS NULL
			AND NOT t.attnum = ANY (i.indkey::int2[])

	-- Policies read as trees.
	UNION ALL
	SELECT 'error', 'policy_missing_tenant_check',
			pg_catalog.format('%I on %s', p.polname, c.oid::regclass),
			pg_catalog.format('Permissive policy %I on %s does not require %I = domi.current_tenant() (as a condition joined by AND) in its %s: rows of other tenants pass it, and permissive policies are combined with OR.',
				p.polname, c.oid::regclass, col,
				CASE WHEN p.polqual IS NOT NULL AND NOT domi._policy_compares_tenant(p.polqual, t.attnum)
					THEN 'USING expression' ELSE 'WITH CHECK expression' END),
			pg_catalog.format('DROP POLICY %I ON %s; SELECT domi.enable_tenant_rls(%L, %L);',
				p.polname, c.oid::regclass, c.oid::regclass::text, col)
		FROM domi._tenant_tables(col) t
		JOIN pg_catalog.pg_class c ON c.oid = t.relid
		JOIN pg_catalog.pg_policy p ON p.polrelid = c.oid
		WHERE p.polpermissive
			AND ((p.polqual IS NOT NULL AND NOT domi._policy_compares_tenant(p.polqual, t.attnum))
				OR (p.polwithcheck IS NOT NULL AND NOT domi._policy_compares_tenant(p.polwithcheck, t.attnum)))

	UNION ALL
	SELECT CASE WHEN calls <@ ARRAY['domi.current_tenant()', 'domi.require_tenant()'] THEN 'info' ELSE 'warning' END,
			'policy_per_row_function_call',
			pg_catalog.format('%I on %s', p.polname, c.oid::regclass),
			pg_catalog.format('Policy %I on %s calls %s for every row; as a sub-select it is evaluated once per query (an initplan).',
				p.polname, c.oid::regclass, pg_catalog.array_to_string(calls, ', ')),
			pg_catalog.format('ALTER POLICY %I ON %s%s%s;', p.polname, c.oid::regclass,
				' USING (' || coalesce(domi._policy_initplan_form(p.polqual, c.oid),
					pg_catalog.pg_get_expr(p.polqual, c.oid)) || ')',
				' WITH CHECK (' || coalesce(domi._policy_initplan_form(p.polwithcheck, c.oid),
					pg_catalog.pg_get_expr(p.polwithcheck, c.oid)) || ')')
		FROM pg_catalog.pg_policy p
		JOIN pg_catalog.pg_class c ON c.oid = p.polrelid
		CROSS JOIN LATERAL (SELECT ARRAY(SELECT DISTINCT x FROM pg_catalog.unnest(
				coalesce(domi._policy_per_row_calls(p.polqual, c.oid), '{}')
				|| coalesce(domi._policy_per_row_calls(p.polwithcheck, c.oid), '{}')) x ORDER BY 1) AS calls) pc
		WHERE pg_catalog.cardinality(pc.calls) > 0

	-- Views that run with their owner's rights over RLS or tenant tables.
	UNION ALL
	SELECT DISTINCT 'error', 'view_not_security_invoker', v.oid::regclass::text,
			pg_catalog.format('View %s reads %s with the rights of its owner %I, not of the querying role: a superuser, BYPASSRLS or table-owning view owner makes it show every tenant''s rows.', v.oid::regclass, c.oid::regclass, v.relowner::regrole),
			pg_catalog.format('ALTER VIEW %s SET (security_invoker = true);', v.oid::regclass)
		FROM pg_catalog.pg_class v
		JOIN pg_catalog.pg_rewrite rw ON rw.ev_class = v.oid
		JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
			AND d.objid = rw.oid AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
		JOIN pg_catalog.pg_class c ON c.oid = d.refobjid AND c.oid <> v.oid
		JOIN pg_catalog.pg_namespace vn ON vn.oid = v.relnamespace
		WHERE v.relkind = 'v'
			AND vn.nspname NOT IN ('pg_catalog', 'information_schema', 'domi')
			AND (c.relrowsecurity OR c.oid IN (SELECT relid FROM domi._tenant_tables(col)))
			AND NOT coalesce(pg_catalog.array_to_string(v.reloptions, ',') ~ '(^|,)security_invoker=(true|on|yes|1)(,|$)', false)

	-- SECURITY DEFINER functions outside the system and extensions.
	UNION ALL
	SELECT 'warning', 'function_search_path_mutable', p.oid::regprocedure::text,
			pg_catalog.format('SECURITY DEFINER function %s does not set search_path: a caller can put its own objects ahead of the ones it means and run them with the owner''s rights.', p.oid::regprocedure),
			pg_catalog.format('ALTER FUNCTION %s SET search_path = pg_catalog, pg_temp;', p.oid::regprocedure)
		FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
		WHERE p.prosecdef AND n.nspname NOT IN ('pg_catalog', 'information_schema')
			AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d
				WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.objid = p.oid AND d.deptype = 'e')
			AND NOT EXISTS (SELECT FROM pg_catalog.unnest(p.proconfig) s WHERE s LIKE 'search\_path=%')
	UNION ALL
	SELECT 'warning', 'security_definer_executable_by_public', p.oid::regprocedure::text,
			pg_catalog.format('SECURITY DEFINER function %s runs with the rights of %I and every role may execute it.', p.oid::regprocedure, p.proowner::regrole),
			pg_catalog.format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC;', p.oid::regprocedure)
		FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
		WHERE p.prosecdef AND n.nspname NOT IN ('pg_catalog', 'information_schema')
			AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d
				WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.objid = p.oid AND d.deptype = 'e')
			AND EXISTS (SELECT FROM pg_catalog.aclexplode(coalesce(p.proacl, pg_catalog.acldefault('f', p.proowner))) a
				WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE')

	-- The application roles.
	UNION ALL
	SELECT 'error', 'app_role_bypasses_rls', pg_catalog.quote_ident(r.rolname),
			pg_catalog.format('Application role %I %s: row level security does not apply to it at all.', r.rolname,
				CASE WHEN r.rolsuper THEN 'is a superuser' ELSE 'has BYPASSRLS' END)
				|| CASE WHEN r.rolcanlogin THEN ' It can log in.' ELSE '' END,
			pg_catalog.format('ALTER ROLE %I %s;', r.rolname, CASE WHEN r.rolsuper THEN 'NOSUPERUSER NOBYPASSRLS' ELSE 'NOBYPASSRLS' END)
		FROM pg_catalog.pg_roles r
		WHERE r.rolname = ANY (app_roles) AND (r.rolsuper OR r.rolbypassrls)
	UNION ALL
	SELECT 'error', 'app_role_owns_tenant_table', c.oid::regclass::text,
			pg_catalog.format('Application role %I %s tenant table %s: an owner can turn FORCE and row level security off and drop the policies%s.',
				r.rolname,
				CASE WHEN r.oid = c.relowner THEN 'owns' ELSE pg_catalog.format('has the rights of %I, owner of', c.relowner::regrole) END,
				c.oid::regclass,
				CASE WHEN c.relforcerowsecurity THEN '' ELSE ', and without FORCE it bypasses them already' END),
			pg_catalog.format('ALTER TABLE %s OWNER TO %I;', c.oid::regclass, current_user)
		FROM pg_catalog.pg_roles r
		CROSS JOIN domi._tenant_tables(col) t
		JOIN pg_catalog.pg_class c ON c.oid = t.relid
		WHERE r.rolname = ANY (app_roles) AND pg_catalog.pg_has_role(r.oid, c.relowner, 'USAGE')
	) f
		ORDER BY CASE f.severity WHEN 'error' THEN 1 WHEN 'warning' THEN 2 ELSE 3 END,
			f.check_name, f.object;
END;
$$;

COMMENT ON FUNCTION domi.rls_audit(name[]) IS 'findings (severity, check_name, object, detail, fix) about tenant isolation; app_roles: the roles the application uses';

-- Proves isolation on the live table as app_role, in a subtransaction that
-- is always rolled back: rows it seeds, rows a failed check wrote and the
-- role and tenant it switched to are all undone.  One row per check:
-- passed is true, false, or NULL for a check that could not run (detail
-- says why).  Any false raises P0004 (assert_failure) at the end.
CREATE FUNCTION domi.assert_isolation(tbl regclass, app_role name, tenant_column name DEFAULT 'tenant_id')
	RETURNS TABLE (check_name text, passed boolean, detail text)
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
	SET domi.rls_guard = off
AS $$
DECLARE
	names text[] := '{}';
	oks boolean[] := '{}';
	details text[] := '{}';
	existing uuid[];
	tenant_a uuid;
	tenant_b uuid;
	have_a boolean;
	have_b boolean;
	seed_error text := NULL;
	own bigint;
	other bigint;
	n bigint;
	failed text;
	copy_cols text;
	copy_vals text;
	seed_vals text;
BEGIN
	PERFORM domi._tenant_column_attnum(tbl, tenant_column);
	-- The columns a copied row is written with: not generated, not
	-- GENERATED ALWAYS AS IDENTITY; the tenant column replaced by $1.
	SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY a.attnum),
			pg_catalog.string_agg(CASE WHEN a.attname = tenant_column THEN '$1'
				ELSE pg_catalog.quote_ident(a.attname) END, ', ' ORDER BY a.attnum)
		INTO copy_cols, copy_vals
		FROM pg_catalog.pg_attribute a
		WHERE a.attrelid = tbl AND a.attnum > 0 AND NOT a.attisdropped
			AND a.attgenerated = '' AND a.attidentity <> 'a';
	IF app_role IS NULL OR NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = app_role) THEN
		RAISE EXCEPTION 'role "%" does not exist', app_role USING ERRCODE = 'undefined_object';
	END IF;
	IF NOT pg_catalog.pg_has_role(session_user, app_role, 'MEMBER') THEN
		RAISE EXCEPTION 'permission denied to run checks as role "%"', app_role
			USING ERRCODE = 'insufficient_privilege',
				DETAIL = 'The checks run under SET ROLE, which needs membership in the role.',
				HINT = pg_catalog.format('Run it as a superuser or GRANT %I TO %I.', app_role, session_user);
	END IF;

	BEGIN
		-- Two tenants with rows: existing ones where the caller sees them,
		-- else new ones with a row each (defaults for the other columns).
		EXECUTE pg_catalog.format('SELECT ARRAY(SELECT DISTINCT %1$I FROM %2$s WHERE %1$I IS NOT NULL LIMIT 2)',
				tenant_column, tbl)
			INTO existing;
		tenant_a := coalesce(existing[1], pg_catalog.gen_random_uuid());
		tenant_b := coalesce(existing[2], pg_catalog.gen_random_uuid());
		have_a := existing[1] IS NOT NULL;
		have_b := existing[2] IS NOT NULL;
		IF NOT have_a OR NOT have_b THEN
			BEGIN
				IF NOT have_a THEN
					PERFORM pg_catalog.set_config('domi.tenant_id', tenant_a::text, true);
					EXECUTE pg_catalog.format('INSERT INTO %s (%I) VALUES ($1)', tbl, tenant_column) USING tenant_a;
				END IF;
				have_a := true;
				PERFORM pg_catalog.set_config('domi.tenant_id', tenant_b::text, true);
				EXECUTE pg_catalog.format('INSERT INTO %s (%I) VALUES ($1)', tbl, tenant_column) USING tenant_b;
				have_b := true;
			EXCEPTION WHEN OTHERS THEN
				seed_error := SQLERRM;
			END;
		END IF;
		IF have_a AND NOT have_b THEN
			-- Defaults were not enough: copy one of A's rows as B's.
			SELECT pg_catalog.string_agg(CASE WHEN a.attname = tenant_column
					THEN pg_catalog.format('%L::uuid AS %I', tenant_b, a.attname)
					ELSE pg_catalog.quote_ident(a.attname) END, ', ' ORDER BY a.attnum)
				INTO seed_vals
				FROM pg_catalog.pg_attribute a
				WHERE a.attrelid = tbl AND a.attnum > 0 AND NOT a.attisdropped
					AND a.attgenerated = '' AND a.attidentity <> 'a';
			BEGIN
				PERFORM pg_catalog.set_config('domi.tenant_id', tenant_a::text, true);
				EXECUTE pg_catalog.format('CREATE TEMP TABLE domi_isolation_seed ON COMMIT DROP AS SELECT %s FROM %s WHERE %I = %L LIMIT 1',
						seed_vals, tbl, tenant_column, tenant_a);
				PERFORM pg_catalog.set_config('domi.tenant_id', tenant_b::text, true);
				EXECUTE pg_catalog.format('INSERT INTO %s (%s) SELECT * FROM pg_temp.domi_isolation_seed', tbl, copy_cols);
				GET DIAGNOSTICS n = ROW_COUNT;
				have_b := n > 0;
			EXCEPTION WHEN OTHERS THEN
				seed_error := SQLERRM;
			END;
		END IF;

		EXECUTE pg_catalog.format('SET LOCAL ROLE %I', app_role);

		-- 1. No tenant: no rows.
		PERFORM pg_catalog.set_config('domi.tenant_id', '', true);
		names := names || 'no_tenant_sees_no_rows'::text;
		BEGIN
			EXECUTE pg_catalog.format('SELECT count(*) FROM %s', tbl) INTO n;
			IF n > 0 THEN
				oks := oks || false;
				details := details || pg_catalog.format('with no tenant set, rows visible: %s', n);
			ELSIF NOT have_a THEN
				oks := oks || NULL::boolean;
				details := details || ('skipped: the table has no rows and none could be inserted: ' || seed_error);
			ELSE
				oks := oks || true;
				details := details || 'with no tenant set, rows visible: 0'::text;
			END IF;
		EXCEPTION WHEN insufficient_privilege THEN
			oks := oks || NULL::boolean;
			details := details || ('skipped: ' || SQLERRM);
		END;

		-- 2. Tenant A: only A's rows.
		PERFORM pg_catalog.set_config('domi.tenant_id', tenant_a::text, true);
		names := names || 'tenant_sees_only_own_rows'::text;
		BEGIN
			EXECUTE pg_catalog.format('SELECT count(*) FILTER (WHERE %1$I = $1), count(*) FILTER (WHERE %1$I IS DISTINCT FROM $1) FROM %2$s',
					tenant_column, tbl)
				INTO own, other USING tenant_a;
			IF other > 0 THEN
				oks := oks || false;
				details := details || pg_catalog.format('under tenant A, rows of other tenants visible: %s', other);
			ELSIF NOT have_b THEN
				oks := oks || NULL::boolean;
				details := details || ('skipped: no rows of a second tenant exist and none could be inserted: ' || seed_error);
			ELSE
				oks := oks || true;
				details := details || pg_catalog.format('under tenant A, rows of tenant A visible: %s, of other tenants: 0', own);
			END IF;
		EXCEPTION WHEN insufficient_privilege THEN
			oks := oks || NULL::boolean;
			details := details || ('skipped: ' || SQLERRM);
		END;

		-- 3. Tenant A cannot insert a row of tenant B.
		names := names || 'cross_tenant_insert_refused'::text;
		BEGIN
			-- A copy of one of A's rows with B as its tenant, so that NOT NULL
			-- columns, partition keys and sequences need nothing from us.
			EXECUTE pg_catalog.format('INSERT INTO %s (%s) SELECT %s FROM %s WHERE %I = $2 LIMIT 1',
					tbl, copy_cols, copy_vals, tbl, tenant_column)
				USING tenant_b, tenant_a;
			GET DIAGNOSTICS n = ROW_COUNT;
			IF n = 0 THEN
				EXECUTE pg_catalog.format('INSERT INTO %s (%I) VALUES ($1)', tbl, tenant_column) USING tenant_b;
			END IF;
			oks := oks || false;
			details := details || 'under tenant A, a row of tenant B was inserted'::text;
		EXCEPTION
			WHEN insufficient_privilege THEN
				oks := oks || true;
				details := details || ('refused: ' || SQLERRM);
			WHEN OTHERS THEN
				oks := oks || NULL::boolean;
				details := details || ('skipped: the insert failed for another reason: ' || SQLERRM);
		END;

		-- 4. Tenant A cannot move its rows to tenant B.
		names := names || 'cross_tenant_update_refused'::text;
		BEGIN
			EXECUTE pg_catalog.format('UPDATE %1$s SET %2$I = $1 WHERE %2$I = $2', tbl, tenant_column)
				USING tenant_b, tenant_a;
			GET DIAGNOSTICS n = ROW_COUNT;
			IF n > 0 THEN
				oks := oks || false;
				details := details || pg_catalog.format('under tenant A, rows moved to tenant B: %s', n);
			ELSE
				oks := oks || NULL::boolean;
				details := details || 'skipped: tenant A has no visible row to update'::text;
			END IF;
		EXCEPTION
			WHEN insufficient_privilege THEN
				oks := oks || true;
				details := details || ('refused: ' || SQLERRM);
			WHEN OTHERS THEN
				oks := oks || NULL::boolean;
				details := details || ('skipped: the update failed for another reason: ' || SQLERRM);
		END;

		-- 5. Tenant A cannot update or delete tenant B's rows.
		names := names || 'other_tenant_rows_unwritable'::text;
		BEGIN
			EXECUTE pg_catalog.format('UPDATE %1$s SET %2$I = %2$I WHERE %2$I = $1', tbl, tenant_column)
				USING tenant_b;
			GET DIAGNOSTICS n = ROW_COUNT;
			EXECUTE pg_catalog.format('DELETE FROM %1$s WHERE %2$I = $1', tbl, tenant_column)
				USING tenant_b;
			GET DIAGNOSTICS own = ROW_COUNT;
			IF n + own > 0 THEN
				oks := oks || false;
				details := details || pg_catalog.format('under tenant A, rows of tenant B updated: %s, deleted: %s', n, own);
			ELSIF NOT have_b THEN
				oks := oks || NULL::boolean;
				details := details || ('skipped: no rows of a second tenant exist and none could be inserted: ' || seed_error);
			ELSE
				oks := oks || true;
				details := details || 'under tenant A, updating and deleting tenant B''s rows touched 0 rows'::text;
			END IF;
		EXCEPTION
			WHEN insufficient_privilege THEN
				oks := oks || true;
				details := details || ('refused: ' || SQLERRM);
			WHEN OTHERS THEN
				oks := oks || NULL::boolean;
				details := details || ('skipped: ' || SQLERRM);
		END;

		-- Undo everything above: seeded rows, writes, role and tenant.
		RAISE EXCEPTION USING ERRCODE = 'DMRB1';
	EXCEPTION WHEN SQLSTATE 'DMRB1' THEN
		NULL;
	END;

	SELECT pg_catalog.string_agg(pg_catalog.format('%s: %s', nm, d), '; ')
		INTO failed
		FROM unnest(names, oks, details) AS u(nm, ok, d)
		WHERE ok = false;
	IF failed IS NOT NULL THEN
		RAISE EXCEPTION 'table "%" is not isolated for role "%"', tbl, app_role
			USING ERRCODE = 'assert_failure', DETAIL = failed || '.';
	END IF;

	RETURN QUERY SELECT u.nm, u.ok, u.d FROM unnest(names, oks, details) AS u(nm, ok, d);
END;
$$;

COMMENT ON FUNCTION domi.assert_isolation(regclass, name, name) IS 'prove, as app_role and rolled back, that tenants see and write only their own rows; error P0004 if not';

-- The guard: after CREATE TABLE and ALTER TABLE, a table that has the
-- tenant column (domi.tenant_column) but no row level security with a
-- policy gets a warning, an error, or domi's policy (domi.rls_guard).  A
-- new or attached partition of a table with domi's policy always gets it
-- (unless the guard is off): a query naming the partition must be isolated
-- too.  It runs as the role that ran the DDL: installing needs ownership,
-- which that role has.  Temporary tables are private to one session and
-- are left alone, as are extension members and system schemas.
CREATE FUNCTION domi._rls_guard() RETURNS event_trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	mode text := pg_catalog.current_setting('domi.rls_guard');
	col name := pg_catalog.current_setting('domi.tenant_column');
	r record;
	parent_state jsonb;
BEGIN
	IF mode = 'off' THEN
		RETURN;
	END IF;
	FOR r IN
		SELECT DISTINCT c.oid::pg_catalog.regclass AS tbl, c.relkind, c.relispartition,
				c.relrowsecurity,
				EXISTS (SELECT FROM pg_catalog.pg_policy p WHERE p.polrelid = c.oid) AS has_policy,
				EXISTS (SELECT FROM domi._tenant_tables(col) t WHERE t.relid = c.oid) AS has_column
			FROM pg_catalog.pg_event_trigger_ddl_commands() cmd
			JOIN pg_catalog.pg_class c ON c.oid = cmd.objid
			JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
			WHERE cmd.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
				AND cmd.command_tag IN ('CREATE TABLE', 'ALTER TABLE', 'CREATE TABLE AS', 'SELECT INTO')
				AND c.relkind IN ('r', 'p') AND c.relpersistence <> 't'
				AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'domi')
				AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d
					WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
						AND d.objid = c.oid AND d.deptype = 'e')
			ORDER BY 1
	LOOP
		-- A partition of a table with domi's policy.
		IF r.relispartition AND domi._tenant_policy_state(r.tbl) IS NULL THEN
			SELECT domi._tenant_policy_state(a.relid) INTO parent_state
				FROM pg_catalog.pg_partition_ancestors(r.tbl) a(relid)
				WHERE a.relid <> r.tbl AND domi._tenant_policy_state(a.relid) IS NOT NULL
				LIMIT 1;
			IF parent_state IS NOT NULL THEN
				PERFORM domi.enable_tenant_rls(r.tbl, coalesce(parent_state ->> 'tenant_column', col));
				CONTINUE;
			END IF;
		END IF;
		-- Partitions attached to a table with domi's policy.
		IF r.relkind = 'p' AND domi._tenant_policy_state(r.tbl) IS NOT NULL
			AND EXISTS (SELECT FROM pg_catalog.pg_partition_tree(r.tbl) pt
				WHERE pt.relid <> r.tbl AND domi._tenant_policy_state(pt.relid) IS NULL) THEN
			PERFORM domi.enable_tenant_rls(r.tbl,
				coalesce(domi._tenant_policy_state(r.tbl) ->> 'tenant_column', col));
			CONTINUE;
		END IF;
		IF NOT r.has_column OR (r.relrowsecurity AND r.has_policy) THEN
			CONTINUE;
		END IF;
		IF mode = 'enable' THEN
			PERFORM domi.enable_tenant_rls(r.tbl, col);
			RAISE NOTICE 'tenant row level security installed on table "%"', r.tbl;
		ELSIF mode = 'error' THEN
			RAISE EXCEPTION 'table "%" has a tenant column "%" but no tenant row level security', r.tbl, col
				USING ERRCODE = 'invalid_table_definition',
					DETAIL = 'domi.rls_guard is "error".',
					HINT = pg_catalog.format('Set domi.rls_guard to "enable" to install it with the table, or in one transaction SET LOCAL domi.rls_guard = off, create the table and run SELECT domi.enable_tenant_rls(%L).', r.tbl::text);
		ELSE
			RAISE WARNING 'table "%" has a tenant column "%" but no tenant row level security', r.tbl, col
				USING HINT = pg_catalog.format('SELECT domi.enable_tenant_rls(%L);', r.tbl::text);
		END IF;
	END LOOP;
END;
$$;

CREATE EVENT TRIGGER domi_rls_guard ON ddl_command_end
	WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE', 'CREATE TABLE AS', 'SELECT INTO')
	EXECUTE FUNCTION domi._rls_guard();
