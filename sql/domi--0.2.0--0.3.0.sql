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
-- Schema truth: the DDL ledger and drift (src/ledger*.c, docs/schema-truth.md)
--------------------------------------------------------------------------

-- Every DDL statement, written by the event triggers below as the table's
-- owner.  A configuration table, so pg_dump keeps the rows; the ids are
-- uuids so that rows restored next to the restore's own DDL never collide.
-- Nobody but the owner reads it: domi.ddl_ledger is the view to grant.
CREATE TABLE domi._ddl_ledger (
	id uuid PRIMARY KEY DEFAULT pg_catalog.gen_random_uuid(),
	at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
	role name NOT NULL,
	session_role name NOT NULL,
	application_name text NOT NULL DEFAULT '',
	xid xid8 NOT NULL,
	command_tag text NOT NULL,
	objects jsonb NOT NULL DEFAULT '[]',
	statement text NOT NULL,
	adopted_by name,
	adopted_at timestamptz,
	adopt_note text
);
-- No other index: every DDL statement pays for each one, and readers look
-- up _migration_xacts by xid, not the ledger.
REVOKE ALL ON domi._ddl_ledger FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('domi._ddl_ledger', '');
COMMENT ON TABLE domi._ddl_ledger IS 'DDL ledger: read domi.ddl_ledger instead';

-- The transactions that recorded a migration, written by the row trigger
-- domi_ledger_migrations on each tracked migrations table: drizzle inserts
-- its row in the transaction that ran the migration's SQL (xid); Prisma
-- runs the script between inserting its row and setting finished_at, in
-- other transactions, so for Prisma the window started_at..finished_at.
CREATE TABLE domi._migration_xacts (
	xid xid8,
	started_at timestamptz,
	finished_at timestamptz,
	tbl text NOT NULL,
	migration text,
	recorded_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE INDEX _migration_xacts_xid ON domi._migration_xacts (xid);
REVOKE ALL ON domi._migration_xacts FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('domi._migration_xacts', '');
COMMENT ON TABLE domi._migration_xacts IS 'transactions (drizzle) and time windows (Prisma) in which migrations were recorded';

-- The row trigger function.  SECURITY DEFINER: the migrator's role needs
-- no privilege on domi's tables.  Identifies the migration by drizzle's
-- hash or Prisma's migration_name.
CREATE FUNCTION domi._ledger_migration_row() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r jsonb := pg_catalog.to_jsonb(NEW);
	name text := COALESCE(r OPERATOR(pg_catalog.->>) 'hash', r OPERATOR(pg_catalog.->>) 'migration_name',
		r OPERATOR(pg_catalog.->>) 'id');
	tbl text := pg_catalog.format('%I.%I', TG_TABLE_SCHEMA, TG_TABLE_NAME);
BEGIN
	IF TG_OP = 'INSERT' THEN
		INSERT INTO domi._migration_xacts (xid, tbl, migration)
		VALUES (pg_catalog.pg_current_xact_id(), tbl, name);
	END IF;
	IF r ? 'started_at' AND (r OPERATOR(pg_catalog.->>) 'finished_at') IS NOT NULL
		AND (TG_OP = 'INSERT' OR (pg_catalog.to_jsonb(OLD) OPERATOR(pg_catalog.->>) 'finished_at') IS NULL) THEN
		INSERT INTO domi._migration_xacts (tbl, migration, started_at, finished_at)
		VALUES (tbl, name, (r OPERATOR(pg_catalog.->>) 'started_at')::timestamptz,
			(r OPERATOR(pg_catalog.->>) 'finished_at')::timestamptz);
	END IF;
	RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION domi._ledger_migration_row() FROM PUBLIC;

-- Track a migrations table: its inserts mark their transactions in-chain.
-- Owner-only.  The ledger calls the internal variant by itself when a
-- statement creates a table named __drizzle_migrations or
-- _prisma_migrations; it never fails the user's statement.  The trigger is
-- internal (src/ledger.c): pg_dump leaves it out, so a restore does not
-- collide with the one the restored CREATE TABLE gets; a table of another
-- name needs domi.track_migrations() again after a restore.
CREATE FUNCTION domi._ledger_track(tbl regclass) RETURNS void
	LANGUAGE C STRICT
	AS 'MODULE_PATHNAME', 'domi_ledger_track';
REVOKE ALL ON FUNCTION domi._ledger_track(regclass) FROM PUBLIC;

CREATE FUNCTION domi._ledger_tracked(tbl regclass) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT EXISTS (SELECT 1 FROM pg_trigger t
		WHERE t.tgrelid = tbl AND t.tgfoid = 'domi._ledger_migration_row()'::regprocedure)
$$;

CREATE FUNCTION domi.track_migrations(tbl regclass) RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF tbl IS NULL THEN
		RAISE EXCEPTION 'migrations table must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF NOT pg_has_role((SELECT c.relowner FROM pg_class c WHERE c.oid = tbl), 'USAGE') THEN
		RAISE EXCEPTION 'must be owner of table %', tbl USING ERRCODE = 'insufficient_privilege';
	END IF;
	IF domi._ledger_tracked(tbl) THEN
		RETURN false;
	END IF;
	PERFORM domi._ledger_track(tbl);
	RETURN true;
END
$$;
REVOKE ALL ON FUNCTION domi.track_migrations(regclass) FROM PUBLIC;
COMMENT ON FUNCTION domi.track_migrations(regclass) IS 'record the transactions that insert into this migrations table, so that their DDL counts as in-chain; true if newly tracked';

CREATE FUNCTION domi._ledger_track_created(tbl oid) RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT domi._ledger_track(tbl::regclass) WHERE NOT domi._ledger_tracked(tbl::regclass)
$$;
REVOKE ALL ON FUNCTION domi._ledger_track_created(oid) FROM PUBLIC;

-- An update from 0.2.0 tracks the migrations tables that exist already.
SELECT domi._ledger_track(c.oid)
FROM pg_catalog.pg_class c
WHERE c.relname OPERATOR(pg_catalog.=) ANY (ARRAY['__drizzle_migrations', '_prisma_migrations']::pg_catalog.name[])
  AND c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p']::"char"[])
  AND NOT domi._ledger_tracked(c.oid);

-- The migrator's own bookkeeping is in-chain: creating a tracked migrations
-- table, its sequence and index, and its schema.
CREATE FUNCTION domi._ledger_bookkeeping(objects jsonb) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT jsonb_array_length(objects) > 0 AND NOT EXISTS (
		SELECT 1 FROM jsonb_array_elements(objects) o
		WHERE NOT EXISTS (
			SELECT 1
			FROM pg_trigger t
			JOIN pg_class c ON c.oid = t.tgrelid
			JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE t.tgfoid = 'domi._ledger_migration_row()'::regprocedure
			  AND ((o->>'type' = 'schema' AND o->>'identity' = quote_ident(n.nspname))
				OR (o->>'type' IN ('table', 'sequence', 'index')
					AND (to_regclass(o->>'identity') = c.oid
						OR EXISTS (SELECT 1 FROM pg_depend d
							WHERE d.classid = 'pg_class'::regclass AND d.objid = to_regclass(o->>'identity')
							  AND d.refclassid = 'pg_class'::regclass AND d.refobjid = c.oid)
						OR EXISTS (SELECT 1 FROM pg_index i
							WHERE i.indexrelid = to_regclass(o->>'identity') AND i.indrelid = c.oid))))))
$$;
REVOKE ALL ON FUNCTION domi._ledger_bookkeeping(jsonb) FROM PUBLIC;

-- The ledger as people read it.  in_chain: the statement's transaction
-- recorded a migration (or ran inside a Prisma migration's window), or it
-- is the migrator's bookkeeping.  Not readable by PUBLIC: statements name
-- objects and hold code; GRANT SELECT to the roles that audit.
CREATE VIEW domi.ddl_ledger AS
	SELECT l.id, l.at, l.role, l.session_role, l.application_name, l.xid,
		l.command_tag, l.objects, l.statement,
		(m.migration IS NOT NULL OR domi._ledger_bookkeeping(l.objects)) AS in_chain,
		m.migration,
		l.adopted_by, l.adopted_at, l.adopt_note
	FROM domi._ddl_ledger l
	LEFT JOIN LATERAL (
		SELECT COALESCE(
			(SELECT COALESCE(x.migration, x.tbl) FROM domi._migration_xacts x
				WHERE x.xid OPERATOR(pg_catalog.=) l.xid LIMIT 1),
			(SELECT COALESCE(x.migration, x.tbl) FROM domi._migration_xacts x
				WHERE x.xid IS NULL AND l.at OPERATOR(pg_catalog.>=) x.started_at
				  AND l.at OPERATOR(pg_catalog.<=) x.finished_at LIMIT 1)) AS migration
	) m ON true;
REVOKE ALL ON domi.ddl_ledger FROM PUBLIC;
COMMENT ON VIEW domi.ddl_ledger IS 'every DDL statement: when, who, what, the objects, the text (secrets redacted), and whether a migration accounts for it';

-- Adopt a statement once a migration accounts for it: its finding goes
-- away, with who adopted it, when and why.  Granted by the owner.
CREATE FUNCTION domi.adopt_ddl(id uuid, note text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF id IS NULL THEN
		RAISE EXCEPTION 'ledger id must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF note IS NULL OR btrim(note) = '' THEN
		RAISE EXCEPTION 'adopting a DDL statement needs a note'
			USING ERRCODE = 'null_value_not_allowed',
				HINT = 'Say which migration now accounts for it.';
	END IF;
	UPDATE domi._ddl_ledger l SET adopted_by = session_user, adopted_at = now(), adopt_note = note
	WHERE l.id = adopt_ddl.id AND l.adopted_at IS NULL;
	IF FOUND THEN
		RETURN true;
	END IF;
	IF NOT EXISTS (SELECT 1 FROM domi._ddl_ledger l WHERE l.id = adopt_ddl.id) THEN
		RAISE EXCEPTION 'DDL ledger entry "%" does not exist', id USING ERRCODE = 'undefined_object';
	END IF;
	RETURN false;
END
$$;
REVOKE ALL ON FUNCTION domi.adopt_ddl(uuid, text) FROM PUBLIC;
COMMENT ON FUNCTION domi.adopt_ddl(uuid, text) IS 'mark an out-of-chain DDL statement as accounted for by a migration; false if it already was';

-- Retention: delete what is older than the interval.  With the caller's
-- rights, so only the ledger's owner (DELETE on it) can.
CREATE FUNCTION domi.prune_ddl_ledger(older_than interval) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n bigint;
BEGIN
	IF older_than IS NULL OR older_than < interval '0' THEN
		RAISE EXCEPTION 'retention interval must be zero or positive' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	DELETE FROM domi._ddl_ledger WHERE at < now() - older_than;
	GET DIAGNOSTICS n = ROW_COUNT;
	DELETE FROM domi._migration_xacts WHERE recorded_at < now() - older_than;
	RETURN n;
END
$$;
REVOKE ALL ON FUNCTION domi.prune_ddl_ledger(interval) FROM PUBLIC;
COMMENT ON FUNCTION domi.prune_ddl_ledger(interval) IS 'delete ledger entries older than the interval (owner only); returns how many';

-- Out-of-chain DDL as lineage findings, oldest first.  A caller who may
-- not read the ledger gets one info finding saying so, not an error.
CREATE FUNCTION domi.ddl_ledger_findings()
RETURNS TABLE (severity text, code text, migration text, detail text, fix text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NOT has_table_privilege('domi.ddl_ledger', 'SELECT') THEN
		RETURN QUERY SELECT 'info'::text, 'ddl_ledger_not_readable'::text, NULL::text,
			format('Role %s may not read domi.ddl_ledger: DDL run outside migrations was not checked.', current_user),
			'GRANT SELECT ON domi.ddl_ledger TO the role that checks lineage.'::text;
		RETURN;
	END IF;
	RETURN QUERY
	SELECT 'warning'::text, 'out_of_chain_ddl'::text, NULL::text,
		format('%s by %s%s at %s (transaction %s, application %s) on %s, no migration accounts for it: %s',
			l.command_tag, quote_ident(l.role),
			CASE WHEN l.session_role <> l.role THEN format(' (session %s)', quote_ident(l.session_role)) ELSE '' END,
			to_char(l.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), l.xid,
			quote_literal(l.application_name),
			COALESCE((SELECT string_agg(DISTINCT o->>'identity', ', ')
				FROM jsonb_array_elements(l.objects) o WHERE o->>'identity' IS NOT NULL), '(no named object)'),
			CASE WHEN length(l.statement) > 300
				THEN left(regexp_replace(l.statement, '\s+', ' ', 'g'), 300) || '...'
				ELSE regexp_replace(l.statement, '\s+', ' ', 'g') END),
		format('Write a migration that does the same (drizzle-kit generate --custom), then adopt the statement: SELECT domi.adopt_ddl(%L, ''<migration>'');', l.id)
	FROM domi.ddl_ledger l
	WHERE NOT l.in_chain AND l.adopted_at IS NULL
	  AND l.objects <> '[]'::jsonb
	  -- temporary objects are not schema
	  AND EXISTS (SELECT 1 FROM jsonb_array_elements(l.objects) o
			WHERE COALESCE(o->>'identity', '') NOT LIKE 'pg\_temp%')
	ORDER BY l.at, l.id;
END
$$;
COMMENT ON FUNCTION domi.ddl_ledger_findings() IS 'out-of-chain DDL statements that no one adopted, as lineage findings (out_of_chain_ddl)';

-- The event triggers.  ENABLE ALWAYS, like the drop guard's.  They do not
-- exist until this script creates them, so CREATE EXTENSION domi itself is
-- not recorded; the commands of any extension script are not either (only
-- the CREATE or ALTER EXTENSION statement that ran it).
CREATE FUNCTION domi._ledger_ddl_end() RETURNS event_trigger
	LANGUAGE C
	AS 'MODULE_PATHNAME', 'domi_ledger_ddl_end';

CREATE FUNCTION domi._ledger_sql_drop() RETURNS event_trigger
	LANGUAGE C
	AS 'MODULE_PATHNAME', 'domi_ledger_sql_drop';

CREATE EVENT TRIGGER domi_ddl_ledger ON ddl_command_end
	EXECUTE FUNCTION domi._ledger_ddl_end();
ALTER EVENT TRIGGER domi_ddl_ledger ENABLE ALWAYS;

CREATE EVENT TRIGGER domi_ddl_ledger_drop ON sql_drop
	EXECUTE FUNCTION domi._ledger_sql_drop();
ALTER EVENT TRIGGER domi_ddl_ledger_drop ENABLE ALWAYS;

-- Drift: the live catalog against a drizzle snapshot (meta/NNNN_snapshot.json).

-- Does a live column's type match a drizzle snapshot column's "type"
-- (and "typeSchema", for enums and types in a schema)?  Drizzle writes
-- SQL spellings ("serial", "varchar(100)", "numeric(10, 2)", "timestamp
-- with time zone", "text[]"); we resolve the base name with to_regtype()
-- and compare type OIDs, then the modifiers as written.
CREATE FUNCTION domi._drizzle_type_matches(col jsonb, typid oid, typmod int4) RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	want text := lower(btrim(regexp_replace(col->>'type', '\s+', ' ', 'g')));
	type_schema text := col->>'typeSchema';
	dims int := 0;
	base text;
	mods text;
	want_oid oid;
	live text := format_type(typid, typmod);
	live_elem oid := typid;
	live_dims int := 0;
BEGIN
	IF want IS NULL THEN
		RETURN false;
	END IF;
	want := replace(replace(want, ', ', ','), ' (', '(');
	WHILE right(want, 2) = '[]' LOOP
		want := left(want, -2);
		dims := dims + 1;
	END LOOP;
	WHILE (SELECT t.typcategory = 'A' AND t.typelem <> 0 FROM pg_type t WHERE t.oid = live_elem) LOOP
		live_elem := (SELECT t.typelem FROM pg_type t WHERE t.oid = live_elem);
		live_dims := live_dims + 1;
	END LOOP;
	-- Array dimensions are not enforced by PostgreSQL: text[][] is text[].
	IF (dims > 0) <> (live_dims > 0) THEN
		RETURN false;
	END IF;
	base := btrim(regexp_replace(want, '\(.*\)', ''));
	mods := substring(want from '\(([^)]*)\)');
	base := CASE base WHEN 'serial' THEN 'integer' WHEN 'serial4' THEN 'integer'
		WHEN 'bigserial' THEN 'bigint' WHEN 'serial8' THEN 'bigint'
		WHEN 'smallserial' THEN 'smallint' WHEN 'serial2' THEN 'smallint'
		WHEN 'char' THEN 'character' ELSE base END;
	IF type_schema IS NOT NULL AND type_schema <> '' THEN
		base := regexp_replace(base, '^.*\.', '');	-- "app.mood" or "mood"
		RETURN EXISTS (SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
			WHERE t.oid = live_elem AND n.nspname = type_schema AND t.typname = btrim(base, '"'));
	END IF;
	-- "timestamp(3) with time zone": the modifier sits inside the name
	base := btrim(regexp_replace(base, '\s+', ' ', 'g'));
	want_oid := to_regtype(base);
	IF want_oid IS NULL THEN
		-- not a type PostgreSQL knows by that name here: compare the spelling
		RETURN EXISTS (SELECT 1 FROM pg_type t WHERE t.oid = live_elem AND t.typname = btrim(base, '"'))
			AND COALESCE(mods, '') = COALESCE(substring(replace(live, ', ', ',') from '\(([^)]*)\)'), '');
	END IF;
	RETURN want_oid = live_elem
		AND COALESCE(mods, '') = COALESCE(substring(replace(live, ', ', ',') from '\(([^)]*)\)'), '');
END
$$;

-- Types drizzle-orm's pg-core can declare (format_type names, arrays and
-- enums apart).  A column of any other type cannot be in a drizzle schema
-- short of a customType, so drizzle-kit push drops it.
CREATE FUNCTION domi._drizzle_modelled(typid oid) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT EXISTS (
		SELECT 1 FROM pg_type t
		WHERE t.oid = CASE WHEN (SELECT typcategory = 'A' FROM pg_type WHERE oid = typid)
				THEN (SELECT typelem FROM pg_type WHERE oid = typid) ELSE typid END
		  AND (t.typtype = 'e'
			OR (t.typnamespace = 'pg_catalog'::regnamespace AND t.typname IN (
				'int2', 'int4', 'int8', 'bool', 'text', 'varchar', 'bpchar', 'numeric',
				'float4', 'float8', 'json', 'jsonb', 'date', 'time', 'timetz',
				'timestamp', 'timestamptz', 'interval', 'uuid', 'inet', 'cidr',
				'macaddr', 'macaddr8', 'point', 'line', 'bit', 'varbit'))))
$$;

-- Defaults compare without the casts PostgreSQL adds ('a'::text).
CREATE FUNCTION domi._drift_default(expr text) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT NULLIF(btrim(regexp_replace(regexp_replace(expr,
		'::"?[\w.]+"?( \w+)*(\([0-9, ]*\))?(\[\])*', '', 'g'), '^\((.*)\)$', '\1')), '')
$$;

CREATE FUNCTION domi._drift_fk_action(action "char") RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT CASE action WHEN 'a' THEN 'no action' WHEN 'r' THEN 'restrict' WHEN 'c' THEN 'cascade'
		WHEN 'n' THEN 'set null' WHEN 'd' THEN 'set default' END
$$;

CREATE FUNCTION domi.schema_drift(snapshot jsonb)
RETURNS TABLE (severity text, code text, migration text, detail text, fix text)
LANGUAGE sql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
WITH snap_tables AS (
	SELECT COALESCE(NULLIF(t.value->>'schema', ''), 'public') AS nsp,
		t.value->>'name' AS relname, t.value AS def
	FROM jsonb_each(CASE WHEN jsonb_typeof(snapshot->'tables') = 'object'
		THEN snapshot->'tables' ELSE '{}' END) t
	WHERE jsonb_typeof(t.value) = 'object' AND t.value ? 'name'
), tables AS (
	SELECT s.*, format('%I.%I', s.nsp, s.relname) AS qname, c.oid AS relid
	FROM snap_tables s
	LEFT JOIN pg_namespace n ON n.nspname = s.nsp
	LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.relname
		AND c.relkind IN ('r', 'p')
), snap_cols AS (
	SELECT t.qname, t.relid, col.value->>'name' AS colname, col.value AS def
	FROM tables t, jsonb_each(CASE WHEN jsonb_typeof(t.def->'columns') = 'object'
		THEN t.def->'columns' ELSE '{}' END) col
	WHERE t.relid IS NOT NULL
), live_cols AS (
	SELECT t.qname, t.relid, a.attname::text AS colname, a.atttypid, a.atttypmod,
		a.attnotnull, a.attidentity, a.attgenerated,
		format_type(a.atttypid, a.atttypmod) AS live_type,
		pg_get_expr(d.adbin, d.adrelid) AS live_default
	FROM tables t
	JOIN pg_attribute a ON a.attrelid = t.relid AND a.attnum > 0 AND NOT a.attisdropped
	LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
), cols AS (
	SELECT s.qname, s.colname, s.def, l.atttypid, l.atttypmod, l.attnotnull,
		l.attidentity, l.attgenerated, l.live_type, l.live_default,
		l.colname IS NOT NULL AS live
	FROM snap_cols s
	LEFT JOIN live_cols l ON l.relid = s.relid AND l.colname = s.colname
), live_cons AS (
	SELECT t.qname, t.relid, k.conname::text AS conname, k.contype,
		ARRAY(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY u(attnum, i)
			JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.attnum ORDER BY u.i) AS cols,
		k.confrelid, k.confdeltype, k.confupdtype,
		ARRAY(SELECT a.attname::text FROM unnest(k.confkey) WITH ORDINALITY u(attnum, i)
			JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.attnum ORDER BY u.i) AS ref_cols,
		k.conindid
	FROM tables t JOIN pg_constraint k ON k.conrelid = t.relid
), snap_pk AS (
	SELECT t.qname,
		COALESCE((SELECT array_agg(c.value->>'name' ORDER BY c.value->>'name')
			FROM jsonb_each(t.def->'columns') c WHERE (c.value->>'primaryKey')::boolean),
			(SELECT array_agg(x ORDER BY x) FROM jsonb_each(t.def->'compositePrimaryKeys') p,
				jsonb_array_elements_text(p.value->'columns') x)) AS cols
	FROM tables t WHERE t.relid IS NOT NULL
), snap_unique AS (
	SELECT t.qname, u.value->>'name' AS conname,
		ARRAY(SELECT jsonb_array_elements_text(u.value->'columns')) AS cols
	FROM tables t, jsonb_each(CASE WHEN jsonb_typeof(t.def->'uniqueConstraints') = 'object'
		THEN t.def->'uniqueConstraints' ELSE '{}' END) u
	WHERE t.relid IS NOT NULL
	UNION ALL
	SELECT t.qname, COALESCE(c.value->>'uniqueName', format('%s_%s_unique', t.relname, c.value->>'name')),
		ARRAY[c.value->>'name']
	FROM tables t, jsonb_each(t.def->'columns') c
	WHERE t.relid IS NOT NULL AND (c.value->>'isUnique')::boolean
), snap_fks AS (
	SELECT t.qname, f.value->>'name' AS conname,
		ARRAY(SELECT jsonb_array_elements_text(f.value->'columnsFrom')) AS cols,
		format('%I.%I', COALESCE(NULLIF(f.value->>'schemaTo', ''), 'public'), f.value->>'tableTo') AS ref,
		ARRAY(SELECT jsonb_array_elements_text(f.value->'columnsTo')) AS ref_cols,
		COALESCE(f.value->>'onDelete', 'no action') AS on_delete,
		COALESCE(f.value->>'onUpdate', 'no action') AS on_update
	FROM tables t, jsonb_each(CASE WHEN jsonb_typeof(t.def->'foreignKeys') = 'object'
		THEN t.def->'foreignKeys' ELSE '{}' END) f
	WHERE t.relid IS NOT NULL
), snap_indexes AS (
	SELECT t.qname, t.relid, i.value->>'name' AS idxname,
		COALESCE((i.value->>'isUnique')::boolean, false) AS is_unique
	FROM tables t, jsonb_each(CASE WHEN jsonb_typeof(t.def->'indexes') = 'object'
		THEN t.def->'indexes' ELSE '{}' END) i
	WHERE t.relid IS NOT NULL
), live_indexes AS (
	SELECT t.qname, t.relid, c.relname::text AS idxname, i.indisunique
	FROM tables t JOIN pg_index i ON i.indrelid = t.relid
	JOIN pg_class c ON c.oid = i.indexrelid
	WHERE NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid
		AND k.conrelid = t.relid AND k.contype IN ('p', 'u', 'x'))
), snap_enums AS (
	SELECT COALESCE(NULLIF(e.value->>'schema', ''), 'public') AS nsp, e.value->>'name' AS typname,
		ARRAY(SELECT jsonb_array_elements_text(e.value->'values')) AS labels
	FROM jsonb_each(CASE WHEN jsonb_typeof(snapshot->'enums') = 'object'
		THEN snapshot->'enums' ELSE '{}' END) e
), findings AS (
	-- tables
	SELECT 1 AS ord, 'error' AS severity, 'drift_table_missing' AS code,
		format('Table %s is in the snapshot but not in the database.', t.qname) AS detail,
		'Run the migration that creates it, or find who dropped it in domi.ddl_ledger.' AS fix
	FROM tables t WHERE t.relid IS NULL
	UNION ALL
	-- columns
	SELECT 2, 'error', 'drift_column_missing',
		format('Column %s.%I (%s) is in the snapshot but not in the database.', c.qname, c.colname, c.def->>'type'),
		'Restore it with a migration, or generate one that drops it so the snapshot agrees.'
	FROM cols c WHERE NOT c.live
	UNION ALL
	SELECT 3, 'error', 'drift_column_type',
		format('Column %s.%I is %s in the database but %s in the snapshot.', c.qname, c.colname, c.live_type, c.def->>'type'),
		'Write a migration for the type change (drizzle-kit generate), or change the schema back.'
	FROM cols c WHERE c.live AND NOT domi._drizzle_type_matches(c.def, c.atttypid, c.atttypmod)
	UNION ALL
	SELECT 4, 'warning', 'drift_column_nullable',
		format('Column %s.%I is %s in the database but %s in the snapshot.', c.qname, c.colname,
			CASE WHEN c.attnotnull THEN 'NOT NULL' ELSE 'nullable' END,
			CASE WHEN c.attnotnull THEN 'nullable' ELSE 'NOT NULL' END),
		'Write a migration that sets or drops NOT NULL, or change the schema to match.'
	FROM cols c
	WHERE c.live AND c.attnotnull <> COALESCE((c.def->>'notNull')::boolean OR (c.def->>'primaryKey')::boolean, false)
	UNION ALL
	SELECT 5, 'warning', 'drift_column_default',
		format('Column %s.%I has default %s in the database but %s in the snapshot.', c.qname, c.colname,
			COALESCE(c.live_default, 'none'), COALESCE(c.def->>'default', 'none')),
		'Write a migration that sets the default, or change the schema to match.'
	FROM cols c
	WHERE c.live AND c.attidentity = '' AND c.attgenerated = ''
	  AND lower(c.def->>'type') NOT IN ('serial', 'bigserial', 'smallserial')
	  AND domi._drift_default(c.live_default) IS DISTINCT FROM domi._drift_default(c.def->>'default')
	UNION ALL
	SELECT 6, CASE WHEN domi._drizzle_modelled(l.atttypid) THEN 'warning' ELSE 'error' END,
		CASE WHEN domi._drizzle_modelled(l.atttypid) THEN 'drift_column_extra' ELSE 'drift_unmodelled_type' END,
		CASE WHEN domi._drizzle_modelled(l.atttypid)
			THEN format('Column %s.%I (%s) is in the database but not in the snapshot: drizzle-kit push would drop it.',
				l.qname, l.colname, l.live_type)
			ELSE format('Column %s.%I is of type %s, which drizzle cannot model (unmodelled, would be dropped by drizzle-kit push).',
				l.qname, l.colname, l.live_type) END,
		CASE WHEN domi._drizzle_modelled(l.atttypid)
			THEN 'Add it to the drizzle schema and generate a migration, or drop it in one.'
			ELSE 'Declare it with a drizzle customType so the schema has it, and never run drizzle-kit push against this database.' END
	FROM live_cols l
	WHERE NOT EXISTS (SELECT 1 FROM snap_cols s WHERE s.relid = l.relid AND s.colname = l.colname)
	UNION ALL
	-- keys
	SELECT 7, 'error', 'drift_primary_key',
		format('Table %s has primary key (%s) in the database but (%s) in the snapshot.', p.qname,
			COALESCE((SELECT array_to_string(array_agg(x ORDER BY x), ', ') FROM live_cons k, unnest(k.cols) x
				WHERE k.qname = p.qname AND k.contype = 'p'), 'none'),
			COALESCE(array_to_string(p.cols, ', '), 'none')),
		'Write a migration for the primary key, or change the schema to match.'
	FROM snap_pk p
	WHERE p.cols IS DISTINCT FROM (SELECT array_agg(x ORDER BY x) FROM live_cons k, unnest(k.cols) x
		WHERE k.qname = p.qname AND k.contype = 'p')
	UNION ALL
	SELECT 8, 'warning', 'drift_unique_missing',
		format('Unique constraint %I on %s (%s) is in the snapshot but not in the database.', u.conname, u.qname,
			array_to_string(u.cols, ', ')),
		'Run the migration that creates it, or generate one that drops it.'
	FROM snap_unique u
	WHERE NOT EXISTS (SELECT 1 FROM live_cons k WHERE k.qname = u.qname AND k.contype = 'u'
		AND k.conname = u.conname AND k.cols = u.cols)
	UNION ALL
	SELECT 9, 'warning', 'drift_unique_extra',
		format('Unique constraint %I on %s (%s) is in the database but not in the snapshot: drizzle-kit push would drop it.',
			k.conname, k.qname, array_to_string(k.cols, ', ')),
		'Add it to the drizzle schema (unique()) and generate a migration.'
	FROM live_cons k
	WHERE k.contype = 'u' AND NOT EXISTS (SELECT 1 FROM snap_unique u WHERE u.qname = k.qname AND u.conname = k.conname)
	UNION ALL
	SELECT 10, 'error', 'drift_foreign_key_missing',
		format('Foreign key %I on %s (%s) references %s (%s) in the snapshot but is not in the database.',
			f.conname, f.qname, array_to_string(f.cols, ', '), f.ref, array_to_string(f.ref_cols, ', ')),
		'Run the migration that creates it, or generate one that drops it.'
	FROM snap_fks f
	WHERE NOT EXISTS (SELECT 1 FROM live_cons k WHERE k.qname = f.qname AND k.contype = 'f' AND k.conname = f.conname)
	UNION ALL
	SELECT 11, 'error', 'drift_foreign_key',
		format('Foreign key %I on %s is (%s) -> %s (%s) ON DELETE %s ON UPDATE %s in the database but (%s) -> %s (%s) ON DELETE %s ON UPDATE %s in the snapshot.',
			f.conname, f.qname, array_to_string(k.cols, ', '), k.confrelid::regclass, array_to_string(k.ref_cols, ', '),
			domi._drift_fk_action(k.confdeltype), domi._drift_fk_action(k.confupdtype),
			array_to_string(f.cols, ', '), f.ref, array_to_string(f.ref_cols, ', '), f.on_delete, f.on_update),
		'Write a migration that recreates the foreign key, or change the schema to match.'
	FROM snap_fks f JOIN live_cons k ON k.qname = f.qname AND k.contype = 'f' AND k.conname = f.conname
	WHERE k.cols <> f.cols OR k.ref_cols <> f.ref_cols OR k.confrelid <> to_regclass(f.ref)
		OR domi._drift_fk_action(k.confdeltype) <> lower(f.on_delete)
		OR domi._drift_fk_action(k.confupdtype) <> lower(f.on_update)
	UNION ALL
	SELECT 12, 'warning', 'drift_foreign_key_extra',
		format('Foreign key %I on %s (%s) -> %s is in the database but not in the snapshot: drizzle-kit push would drop it.',
			k.conname, k.qname, array_to_string(k.cols, ', '), k.confrelid::regclass),
		'Add it to the drizzle schema (references()) and generate a migration.'
	FROM live_cons k
	WHERE k.contype = 'f' AND NOT EXISTS (SELECT 1 FROM snap_fks f WHERE f.qname = k.qname AND f.conname = k.conname)
	UNION ALL
	-- indexes
	SELECT 13, 'warning', 'drift_index_missing',
		format('Index %I on %s is in the snapshot but not in the database.', i.idxname, i.qname),
		'Run the migration that creates it, or generate one that drops it.'
	FROM snap_indexes i
	WHERE NOT EXISTS (SELECT 1 FROM live_indexes l WHERE l.relid = i.relid AND l.idxname = i.idxname)
	UNION ALL
	SELECT 14, 'warning', 'drift_index',
		format('Index %I on %s is %s in the database but %s in the snapshot.', i.idxname, i.qname,
			CASE WHEN l.indisunique THEN 'unique' ELSE 'not unique' END,
			CASE WHEN i.is_unique THEN 'unique' ELSE 'not unique' END),
		'Write a migration that recreates the index, or change the schema to match.'
	FROM snap_indexes i JOIN live_indexes l ON l.relid = i.relid AND l.idxname = i.idxname
	WHERE l.indisunique <> i.is_unique
	UNION ALL
	SELECT 15, 'warning', 'drift_index_extra',
		format('Index %I on %s is in the database but not in the snapshot: drizzle-kit push would drop it.', l.idxname, l.qname),
		'Add it to the drizzle schema (index()) and generate a migration.'
	FROM live_indexes l
	WHERE NOT EXISTS (SELECT 1 FROM snap_indexes i WHERE i.relid = l.relid AND i.idxname = l.idxname)
	UNION ALL
	-- enums
	SELECT 16, 'error', 'drift_enum_missing',
		format('Enum %I.%I is in the snapshot but not in the database.', e.nsp, e.typname),
		'Run the migration that creates it, or generate one that drops it.'
	FROM snap_enums e
	WHERE NOT EXISTS (SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
		WHERE n.nspname = e.nsp AND t.typname = e.typname AND t.typtype = 'e')
	UNION ALL
	SELECT 17, 'error', 'drift_enum_values',
		format('Enum %I.%I has values (%s) in the database but (%s) in the snapshot.', e.nsp, e.typname,
			array_to_string(lv.labels, ', '), array_to_string(e.labels, ', ')),
		'Write a migration that adds the values (ALTER TYPE ... ADD VALUE), or change the schema to match.'
	FROM snap_enums e
	JOIN pg_namespace n ON n.nspname = e.nsp
	JOIN pg_type t ON t.typnamespace = n.oid AND t.typname = e.typname AND t.typtype = 'e'
	CROSS JOIN LATERAL (SELECT ARRAY(SELECT x.enumlabel::text FROM pg_enum x WHERE x.enumtypid = t.oid
		ORDER BY x.enumsortorder) AS labels) lv
	WHERE lv.labels <> e.labels
)
SELECT f.severity, f.code, NULL::text, f.detail, f.fix
FROM findings f
ORDER BY CASE f.severity WHEN 'error' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END, f.ord, f.detail
$$;
COMMENT ON FUNCTION domi.schema_drift(jsonb) IS 'differences between the live catalog and a drizzle snapshot''s tables and enums, as findings (drift_*)';

-- The snapshot of the newest migration the database has applied, from the
-- manifest (NULL for Prisma, or when it cannot be told).  Drizzle's
-- migrator applies a journal entry when its "when" is newer than the
-- newest created_at in the migrations table, so the applied ones are
-- those with "when" <= that.
CREATE FUNCTION domi._applied_snapshot(manifest jsonb, migrations_table regclass) RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	tbl regclass := COALESCE(migrations_table, to_regclass('drizzle.__drizzle_migrations'));
	journal jsonb;
	last_when numeric;
	tag text;
	snap text;
BEGIN
	IF COALESCE(manifest->>'format', 'drizzle') <> 'drizzle' OR tbl IS NULL
		OR NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = tbl AND attname = 'created_at' AND NOT attisdropped) THEN
		RETURN NULL;
	END IF;
	BEGIN
		journal := (manifest->'files'->>'meta/_journal.json')::jsonb;
	EXCEPTION WHEN invalid_text_representation THEN
		RETURN NULL;		-- lineage_check reports the journal itself
	END;
	EXECUTE format('SELECT max(created_at)::numeric FROM %s', tbl) INTO last_when;
	IF last_when IS NULL OR jsonb_typeof(journal->'entries') IS DISTINCT FROM 'array' THEN
		RETURN NULL;
	END IF;
	SELECT e->>'tag' INTO tag
	FROM jsonb_array_elements(journal->'entries') e
	WHERE jsonb_typeof(e->'when') = 'number' AND (e->>'when')::numeric <= last_when
	ORDER BY (e->>'when')::numeric DESC LIMIT 1;
	snap := manifest->'files'->>format('meta/%s_snapshot.json', split_part(tag, '_', 1));
	IF snap IS NULL THEN
		RETURN NULL;
	END IF;
	BEGIN
		RETURN snap::jsonb;
	EXCEPTION WHEN invalid_text_representation THEN
		RETURN NULL;
	END;
END
$$;

-- domi.lineage_check (src/lineage.c) adds these findings, through
-- src/ledger_lineage.c, when the manifest says "schema_truth": true
-- (domi-lineage --schema-truth); without it, its findings are as before.
COMMENT ON FUNCTION domi.lineage_check(jsonb, regclass) IS
'Checks a Drizzle or Prisma migrations folder (the manifest) against itself and against the database''s migrations table, and, with "schema_truth": true in the manifest, the newest applied drizzle snapshot against the live schema (drift_*) and DDL that no migration accounts for (out_of_chain_ddl); one row per finding, errors first.';

-- (end of schema truth)


--------------------------------------------------------------------------
-- Privileges of internal helpers
--------------------------------------------------------------------------


--------------------------------------------------------------------------
-- Citus
--------------------------------------------------------------------------

