-- Every function of the extension, called by a role without any grant, with
-- generated arguments: NULLs and non-null samples of each argument type.
-- The functions are enumerated from pg_depend, so a function added later is
-- called too.  A call may succeed, be refused for lack of EXECUTE (42501),
-- or end in a clean error of an allowed class (below); never in an internal
-- error (class XX), and never crash the backend.
--
-- Allowed error classes for the functions PUBLIC may execute:
--   22 data exception, 23 integrity constraint violation,
--   42 syntax error or access rule violation (undefined object, 42501, ...),
--   0A feature not supported (a trigger function called directly),
--   39 external routine invocation (an event trigger function called directly),
--   55 object not in prerequisite state, P0 raised by a PL/pgSQL function.
-- Named zz_ so that it runs after every other file (pg_regress runs them in
-- alphabetical order, upgrade.sql reinstalls the extension): it checks the
-- extension in its final state.

-- Node trees of every kind a role can read from the catalogs: the internal
-- _policy_* helpers must accept only the ones they are written for.
CREATE TABLE priv_rows (id int, tenant_id uuid, w int DEFAULT 1 + 1);
SELECT domi.enable_tenant_rls('priv_rows');
CREATE POLICY priv_per_row ON priv_rows AS RESTRICTIVE USING (w > random());
CREATE TABLE priv_other (a int);
CREATE POLICY priv_other_p ON priv_other USING (a > random());
CREATE TABLE priv_parted (k int) PARTITION BY RANGE (k);
CREATE TABLE priv_part1 PARTITION OF priv_parted FOR VALUES FROM (0) TO (10);
CREATE VIEW priv_view AS SELECT id FROM priv_rows WHERE w > random();
CREATE INDEX priv_rows_expr ON priv_rows ((w + 1)) WHERE w > 0;
CREATE FUNCTION priv_trg() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
CREATE TRIGGER priv_when BEFORE UPDATE ON priv_rows FOR EACH ROW
	WHEN (NEW.w > random() AND OLD.w IS NOT NULL) EXECUTE FUNCTION priv_trg();
CREATE FUNCTION priv_sqlbody(a float8 DEFAULT random()) RETURNS float8
	LANGUAGE sql BEGIN ATOMIC SELECT a + random(); END;

CREATE ROLE priv_nobody NOLOGIN;

-- Sample values per argument type, as SQL expressions a role without grants
-- can evaluate (catalog reads, literals; relations by OID).
CREATE TEMP TABLE priv_samples (typ regtype, expr text);
INSERT INTO priv_samples VALUES
	('uuid', '''00000000-0000-0000-0000-000000000000'''),
	('uuid', '''ffffffff-ffff-ffff-ffff-ffffffffffff'''),
	('uuid', '''6ba7b810-9dad-11d1-80b4-00c04fd430c8'''),
	('bytea', '''\x'''),
	('bytea', '''\x00'''),
	('bytea', 'pg_catalog.decode(pg_catalog.repeat(''00'', 32), ''hex'')'),
	('bytea', 'pg_catalog.decode(pg_catalog.repeat(''a5'', 40), ''hex'')'),
	('bytea', 'pg_catalog.decode(pg_catalog.repeat(''ff'', 4096), ''hex'')'),
	('text', ''''''),
	('text', '''tenant'''),
	('text', '''a''''b;--'''),
	('text', 'pg_catalog.repeat(''x'', 100000)'),
	('name', ''''''),
	('name', '''tenant_id'''),
	('name', '''no_such_column'''),
	('name', '''priv_nobody'''),
	('name[]', '''{}'''),
	('name[]', '''{priv_nobody}'''),
	('name[]', '''{no_such_role}'''),
	('name[]', '''{NULL}'''),
	('smallint', '0'), ('smallint', '1'), ('smallint', '2'), ('smallint', '-1'), ('smallint', '32767'),
	('integer', '0'), ('integer', '1'), ('integer', '-1'), ('integer', '2147483647'),
	('oid', '0'), ('oid', '4294967295'),
	('regclass', '0'),
	('jsonb', '''{}'''), ('jsonb', '''[]'''), ('jsonb', '''null'''), ('jsonb', '''"x"'''),
	('jsonb', '''{"journal": {"entries": [{"idx": 0, "tag": "x", "when": 1}]}, "migrations": [{"tag": "x", "hash": "00"}]}'''),
	('jsonb', '''{"journal": 1, "snapshots": [[]], "prisma": {}}''');
-- Relations and node trees of this database, by OID.
INSERT INTO priv_samples
	SELECT t, pg_catalog.format('%s::oid', c.oid)
	FROM pg_class c, unnest(ARRAY['oid', 'regclass']::regtype[]) t
	WHERE c.relname IN ('priv_rows', 'priv_other', 'priv_view', 'priv_part1', 'pg_class');
INSERT INTO priv_samples
	SELECT 'pg_node_tree', pg_catalog.format('(SELECT %I FROM pg_catalog.%I WHERE oid = %s)', col, cat, oid)
	FROM (SELECT 'polqual', 'pg_policy', oid FROM pg_policy WHERE polrelid IN ('priv_rows'::regclass, 'priv_other'::regclass)
		UNION ALL SELECT 'polwithcheck', 'pg_policy', oid FROM pg_policy WHERE polrelid = 'priv_rows'::regclass AND polwithcheck IS NOT NULL
		UNION ALL SELECT 'ev_action', 'pg_rewrite', oid FROM pg_rewrite WHERE ev_class = 'priv_view'::regclass
		UNION ALL SELECT 'relpartbound', 'pg_class', 'priv_part1'::regclass::oid
		UNION ALL SELECT 'tgqual', 'pg_trigger', oid FROM pg_trigger WHERE tgname = 'priv_when'
		UNION ALL SELECT 'prosqlbody', 'pg_proc', 'priv_sqlbody'::regproc::oid
		UNION ALL SELECT 'proargdefaults', 'pg_proc', 'priv_sqlbody'::regproc::oid
		UNION ALL SELECT 'adbin', 'pg_attrdef', oid FROM pg_attrdef WHERE adrelid = 'priv_rows'::regclass) s(col, cat, oid);
INSERT INTO priv_samples
	SELECT 'pg_node_tree', pg_catalog.format('(SELECT %I FROM pg_catalog.pg_index WHERE indexrelid = %s)', col, 'priv_rows_expr'::regclass::oid)
	FROM unnest(ARRAY['indexprs', 'indpred']) col;

SET client_min_messages = warning;
CREATE TEMP TABLE priv_calls (fn regprocedure, call text, sqlstate text, message text);

DO $$
DECLARE
	f record;
	n_samples int;
	args text[];
	calls text[];
	call text;
	i int;
	k int;
	st text;
	msg text;

BEGIN
	FOR f IN
		SELECT p.oid, p.prokind, ARRAY(SELECT unnest(p.proargtypes::regtype[])) AS types
		FROM pg_proc p
		JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
			AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
		JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'domi'
		ORDER BY p.oid::regprocedure::text
	LOOP
		calls := ARRAY[]::text[];
		-- All arguments NULL.
		args := ARRAY(SELECT pg_catalog.format('NULL::%s', t) FROM unnest(f.types) t);
		calls := calls || pg_catalog.array_to_string(args, ', ');
		-- Every argument its k-th sample, k = 1 .. the most samples of a type.
		SELECT coalesce(max(cnt), 1) INTO n_samples FROM
			(SELECT count(*) AS cnt FROM priv_samples WHERE typ = ANY (f.types) GROUP BY typ) s;
		FOR k IN 1 .. n_samples LOOP
			-- Each argument its k-th sample (cycling), NULL for a type without one.
			args := ARRAY(SELECT coalesce(
					(SELECT pg_catalog.format('(%s)::%s', s.expr, t) FROM priv_samples s
						WHERE s.typ = t ORDER BY s.expr
						OFFSET (k - 1) % greatest((SELECT count(*) FROM priv_samples s2 WHERE s2.typ = t), 1) LIMIT 1),
					pg_catalog.format('NULL::%s', t))
				FROM unnest(f.types) WITH ORDINALITY u(t, ord) ORDER BY ord);
			calls := calls || pg_catalog.array_to_string(args, ', ');
			-- And with one argument NULL at a time.
			FOR i IN 1 .. coalesce(array_length(f.types, 1), 0) LOOP
				calls := calls || pg_catalog.array_to_string(
					args[1:i - 1] || pg_catalog.format('NULL::%s', f.types[i]) || args[i + 1:], ', ');
			END LOOP;
		END LOOP;

		FOREACH call IN ARRAY calls LOOP
			IF f.prokind = 'p' THEN
				call := pg_catalog.format('CALL %s(%s)', f.oid::regproc, call);
			ELSE
				call := pg_catalog.format('SELECT %s(%s)', f.oid::regproc, call);
			END IF;
			BEGIN
				SET LOCAL ROLE priv_nobody;
				EXECUTE call;
				RESET ROLE;
				st := '00000';
				msg := NULL;
			EXCEPTION WHEN OTHERS THEN
				GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
			END;
			INSERT INTO priv_calls VALUES (f.oid, call, st, msg);
		END LOOP;
	END LOOP;
END
$$;

RESET client_min_messages;

-- The functions a role without grants may execute.
SELECT fn AS executable_by_public
FROM (SELECT DISTINCT fn FROM priv_calls) c
WHERE has_function_privilege('priv_nobody', fn, 'EXECUTE')
ORDER BY fn::text;

-- Every call of the others was refused for lack of EXECUTE (42501).  A STRICT
-- function given a NULL constant is never called: the planner folds the
-- call to NULL before the executor checks privileges.  A function taking
-- "internal" (a planner support function) cannot be called from SQL at all:
-- no value of that type can be written (42846).  No rows.
SELECT DISTINCT c.fn, c.sqlstate
FROM priv_calls c JOIN pg_proc p ON p.oid = c.fn
WHERE NOT has_function_privilege('priv_nobody', c.fn, 'EXECUTE')
	AND c.sqlstate <> '42501'
	AND NOT (c.sqlstate = '00000' AND p.proisstrict AND c.call LIKE '%NULL::%')
	AND NOT (c.sqlstate = '42846' AND 'internal'::regtype = ANY (p.proargtypes))
ORDER BY 1, 2;
SELECT count(*) > 0 AS refused_calls
FROM priv_calls
WHERE NOT has_function_privilege('priv_nobody', fn, 'EXECUTE') AND sqlstate = '42501';

-- No internal error (class XX) anywhere, and the calls were made.
SELECT count(*) > 500 AS many_calls,
	count(*) FILTER (WHERE sqlstate LIKE 'XX%') AS internal_errors
FROM priv_calls;

-- Every outcome is a success or an allowed error class: no rows.
SELECT fn, sqlstate, message
FROM priv_calls
WHERE sqlstate <> '00000' AND substr(sqlstate, 1, 2) NOT IN ('22', '23', '42', '0A', '39', '55', 'P0')
ORDER BY 1, 2, 3;

-- The node trees that ended in internal errors before, named: refused cleanly.
\set VERBOSITY terse
SET ROLE priv_nobody;
SELECT domi._policy_per_row_calls(ev_action, ev_class) FROM pg_rewrite WHERE ev_class = 'priv_view'::regclass;
SELECT domi._policy_initplan_form(tgqual, tgrelid) FROM pg_trigger WHERE tgname = 'priv_when';
SELECT domi._policy_per_row_calls(prosqlbody, 'priv_rows'::regclass) FROM pg_proc WHERE proname = 'priv_sqlbody';
SELECT domi._policy_compares_tenant(relpartbound, 1::int2) FROM pg_class WHERE relname = 'priv_part1';
-- A policy of another relation, deparsed for the wrong one.
SELECT domi._policy_initplan_form(polqual, 'priv_view'::regclass) FROM pg_policy WHERE polname = 'priv_per_row';
-- What they are for still works: the policies' own expressions.
SELECT domi._policy_per_row_calls(polqual, polrelid) FROM pg_policy WHERE polname = 'priv_per_row';
SELECT domi._policy_initplan_form(polqual, polrelid) FROM pg_policy WHERE polname = 'priv_other_p';
SELECT domi._policy_compares_tenant(polqual, 2::int2) FROM pg_policy WHERE polname = 'domi_tenant_isolation' AND polrelid = 'priv_rows'::regclass;
SELECT check_name, object FROM domi.rls_audit() WHERE object LIKE 'priv%' ORDER BY 1, 2;
RESET ROLE;
\set VERBOSITY default

-- The event triggers still fire for a role that may not call their
-- functions: the RLS guard warns about its new tenant table.
GRANT CREATE ON SCHEMA public TO priv_nobody;
SET ROLE priv_nobody;
SELECT has_function_privilege('domi._rls_guard()', 'EXECUTE') AS may_call_rls_guard;
CREATE TABLE priv_own (id int, tenant_id uuid);
DROP TABLE priv_own;
RESET ROLE;
REVOKE CREATE ON SCHEMA public FROM priv_nobody;

DROP VIEW priv_view;
DROP TABLE priv_rows, priv_other, priv_parted;
DROP FUNCTION priv_trg(), priv_sqlbody(float8);
DROP ROLE priv_nobody;
