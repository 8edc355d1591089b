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

--------------------------------------------------------------------------
-- Field-level sync
--------------------------------------------------------------------------

-- Per-field metadata lives beside each synced row, in a "shadow" table of
-- the schema domi_sync: never a column of the user's table, which an ORM
-- would see and drop.  The shadow has the table's primary key columns, its
-- tenant column (isolated by domi's own policy), the fields' stamps as
-- jsonb {"col": {"at", "origin", "client"}}, and a tombstone stamp once the
-- row is deleted.  Shadow tables are ordinary tables, not members of the
-- extension: pg_dump dumps them with their rows.
CREATE SCHEMA domi_sync;
REVOKE ALL ON SCHEMA domi_sync FROM PUBLIC;
COMMENT ON SCHEMA domi_sync IS 'per-field sync metadata of the tables domi.enable_field_sync() was called for';

-- Which table syncs through which shadow.  regclass columns: the link
-- follows renames, and a dump names both tables, so a restore finds them
-- under their new OIDs.
CREATE TABLE domi.sync_tables (
	tbl regclass PRIMARY KEY,
	shadow regclass NOT NULL UNIQUE,
	tenant_column name,
	-- The change feed's purge horizon: tombstones up to this (xid, seq)
	-- were purged (or the table truncated), so a cursor older than it
	-- would miss deletes.  NULL: nothing purged.
	feed_horizon_xid xid8,
	feed_horizon_seq bigint
);
SELECT pg_catalog.pg_extension_config_dump('domi.sync_tables', '');
GRANT SELECT ON domi.sync_tables TO PUBLIC;

-- Conflicts: a field that a user wrote lost to a newer write of another
-- client.  Written by domi.merge() as this table's owner; readable per
-- tenant through the view domi.sync_conflicts.
CREATE TABLE domi.sync_conflict_log (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	tbl regclass NOT NULL,
	tenant_id uuid,
	pk jsonb NOT NULL,
	column_name name NOT NULL,
	winner jsonb NOT NULL,
	loser jsonb NOT NULL,
	loser_value jsonb,
	recorded_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
SELECT pg_catalog.pg_extension_config_dump('domi.sync_conflict_log', '');
REVOKE ALL ON domi.sync_conflict_log FROM PUBLIC;

-- The current tenant's conflicts, on tables the reader may read.
CREATE VIEW domi.sync_conflicts WITH (security_barrier) AS
	SELECT l.id, l.tbl, l.pk, l.column_name,
		l.winner, l.loser, l.loser_value, l.recorded_at
	FROM domi.sync_conflict_log l
	WHERE l.tenant_id IS NOT DISTINCT FROM domi.current_tenant()
	  AND pg_catalog.has_table_privilege(l.tbl, 'SELECT');
GRANT SELECT ON domi.sync_conflicts TO PUBLIC;

-- A conflict is dealt with once a person has seen it.
CREATE FUNCTION domi.resolve_sync_conflict(conflict_id bigint) RETURNS boolean
	LANGUAGE sql
	SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
	WITH gone AS (
		DELETE FROM domi.sync_conflict_log l
		WHERE l.id = conflict_id
		  AND l.tenant_id IS NOT DISTINCT FROM domi.current_tenant()
		  AND pg_catalog.has_table_privilege(pg_catalog.session_user, l.tbl, 'SELECT')
		RETURNING 1)
	SELECT pg_catalog.count(*) > 0 FROM gone
$$;
REVOKE ALL ON FUNCTION domi.resolve_sync_conflict(bigint) FROM PUBLIC;

-- The C side: stamping triggers, the merge, the metadata readers.
CREATE FUNCTION domi._sync_stamp() RETURNS trigger
	LANGUAGE C AS 'MODULE_PATHNAME', 'domi_sync_stamp';
CREATE FUNCTION domi._sync_truncate() RETURNS trigger
	LANGUAGE C AS 'MODULE_PATHNAME', 'domi_sync_truncate';

CREATE FUNCTION domi.field_meta(tbl regclass, pk jsonb) RETURNS jsonb
	LANGUAGE C STABLE STRICT AS 'MODULE_PATHNAME', 'domi_field_meta';
CREATE FUNCTION domi.merge(tbl regclass, "row" jsonb, meta jsonb,
		initial_hydration boolean DEFAULT false) RETURNS jsonb
	LANGUAGE C VOLATILE AS 'MODULE_PATHNAME', 'domi_sync_merge';
CREATE FUNCTION domi.merge_batch(tbl regclass, changes jsonb,
		initial_hydration boolean DEFAULT false) RETURNS jsonb
	LANGUAGE C VOLATILE AS 'MODULE_PATHNAME', 'domi_sync_merge_batch';
CREATE FUNCTION domi.merge_delete(tbl regclass, pk jsonb, stamp jsonb) RETURNS boolean
	LANGUAGE C VOLATILE STRICT AS 'MODULE_PATHNAME', 'domi_sync_merge_delete';
CREATE FUNCTION domi.latest_rows(tbl regclass, max_rows integer)
	RETURNS TABLE (pk jsonb, updated_at timestamptz)
	LANGUAGE C STABLE STRICT ROWS 20 AS 'MODULE_PATHNAME', 'domi_sync_latest_rows';
CREATE FUNCTION domi.bootstrap_row(tbl regclass, "row" jsonb) RETURNS boolean
	LANGUAGE C VOLATILE STRICT AS 'MODULE_PATHNAME', 'domi_sync_bootstrap_row';

-- The latest "at" over a row's fields: IMMUTABLE (stamps are stored in UTC
-- with an explicit offset), so it can be indexed on the shadow table.
CREATE FUNCTION domi.updated_at(meta jsonb) RETURNS timestamptz
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'domi_sync_updated_at';
CREATE FUNCTION domi.updated_at(tbl regclass, pk jsonb) RETURNS timestamptz
	LANGUAGE sql STABLE STRICT
	SET search_path = pg_catalog, pg_temp
AS $$ SELECT domi.updated_at(domi.field_meta(tbl, pk)) $$;

-- Name of a table's shadow: schema and table, cut to fit NAMEDATALEN, with
-- the table's oid when cut (two long names must not meet).
CREATE FUNCTION domi._sync_shadow_name(tbl regclass) RETURNS name
	LANGUAGE sql STABLE STRICT
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT CASE WHEN pg_catalog.octet_length(n) <= 63 THEN n::name
		ELSE (pg_catalog.left(n, 50) || '_' || tbl::oid::text)::name END
	FROM (SELECT ns.nspname || '__' || c.relname AS n
		FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace ns ON ns.oid = c.relnamespace
		WHERE c.oid = tbl) s
$$;

-- Make a table sync field by field: create its shadow, fill it with a stamp
-- of origin "migration" for every field of the rows already there, and add
-- the stamping triggers.  Called by domi.enable_field_sync() (C), which
-- checks that the caller owns the table and then runs this as the
-- extension owner: the shadow belongs to domi, like domi.tenant_keys, so
-- that the table's owner cannot plant a trigger or an index on it that
-- would run when domi writes there.  For the same reason the primary key
-- columns must be of built-in types: their comparison functions run when
-- domi writes the shadow.
CREATE FUNCTION domi._enable_field_sync(tbl regclass) RETURNS void
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
	SET domi.rls_guard = off
AS $$
DECLARE
	rel pg_catalog.pg_class;
	pk_cols text[];
	pk_defs text;
	tcol name;
	shadow_name name;
	shadow regclass;
	stamp text;
BEGIN
	IF tbl IS NULL THEN
		RAISE EXCEPTION 'table must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT * INTO rel FROM pg_catalog.pg_class WHERE oid = tbl;
	IF rel.relkind <> 'r' OR rel.relpersistence <> 'p' THEN
		RAISE EXCEPTION 'table "%" cannot sync field by field', tbl
			USING ERRCODE = 'wrong_object_type',
			DETAIL = 'Only ordinary, permanent tables can (not partitioned, temporary or unlogged ones, not views).';
	END IF;
	IF EXISTS (SELECT 1 FROM domi.sync_tables s WHERE s.tbl = _enable_field_sync.tbl) THEN
		RETURN;
	END IF;

	SELECT pg_catalog.array_agg(pg_catalog.quote_ident(a.attname) ORDER BY k.ord),
		pg_catalog.string_agg(pg_catalog.quote_ident(a.attname) || ' '
			|| pg_catalog.format_type(a.atttypid, a.atttypmod) || ' NOT NULL', ', ' ORDER BY k.ord)
		INTO pk_cols, pk_defs
		FROM pg_catalog.pg_index i
		CROSS JOIN LATERAL pg_catalog.unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
		JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
		WHERE i.indrelid = tbl AND i.indisprimary;
	IF pk_cols IS NULL THEN
		RAISE EXCEPTION 'table "%" has no primary key', tbl
			USING ERRCODE = 'invalid_table_definition',
			HINT = 'Field-level sync names rows by their primary key.';
	END IF;
	IF EXISTS (SELECT 1 FROM pg_catalog.pg_index i
			CROSS JOIN LATERAL pg_catalog.unnest(i.indkey) AS k(attnum)
			JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
			JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
			WHERE i.indrelid = tbl AND i.indisprimary
			  AND t.typnamespace <> 'pg_catalog'::pg_catalog.regnamespace) THEN
		RAISE EXCEPTION 'table "%" has a primary key column of a type that is not built in', tbl
			USING ERRCODE = 'feature_not_supported',
			DETAIL = 'domi compares primary keys in its own tables as their owner; a type defined in the database would run its code there.';
	END IF;

	-- The tenant column: the one domi's policy was made with, else none.
	tcol := domi._tenant_policy_state(tbl) ->> 'tenant_column';

	shadow_name := domi._sync_shadow_name(tbl);
	-- xid, seq: the transaction that last changed the row and the order of
	-- that change, for the change feed (domi.changes); every write of the
	-- shadow sets both anew.
	EXECUTE pg_catalog.format('CREATE TABLE domi_sync.%I (%s%s, meta jsonb NOT NULL DEFAULT %L,'
			' tombstone jsonb, xid xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id(),'
			' seq bigint GENERATED BY DEFAULT AS IDENTITY, PRIMARY KEY (%s))',
		shadow_name, pk_defs,
		CASE WHEN tcol IS NULL OR pg_catalog.quote_ident(tcol) = ANY (pk_cols) THEN ''
			ELSE ', ' || pg_catalog.quote_ident(tcol) || ' uuid' END,
		'{}', pg_catalog.array_to_string(pk_cols, ', '));
	shadow := pg_catalog.format('domi_sync.%I', shadow_name)::regclass;
	IF tcol IS NOT NULL THEN
		PERFORM domi.enable_tenant_rls(shadow, tcol);
		EXECUTE pg_catalog.format('CREATE INDEX ON %s (%I, domi.updated_at(meta) DESC)', shadow, tcol);
		EXECUTE pg_catalog.format('CREATE INDEX ON %s (%I, xid, seq)', shadow, tcol);
	ELSE
		EXECUTE pg_catalog.format('CREATE INDEX ON %s (domi.updated_at(meta) DESC)', shadow);
		EXECUTE pg_catalog.format('CREATE INDEX ON %s (xid, seq)', shadow);
	END IF;

	-- Rows already there: every field stamped once, origin migration.
	SELECT pg_catalog.string_agg(pg_catalog.format('%L, pg_catalog.jsonb_build_object(%L, %L, %L, %L, %L, %L)',
			a.attname, 'at', domi._sync_now_text(), 'origin', 'migration', 'client',
			pg_catalog.current_setting('domi.client_id')), ', ' ORDER BY a.attnum)
		INTO stamp
		FROM pg_catalog.pg_attribute a
		WHERE a.attrelid = tbl AND a.attnum > 0 AND NOT a.attisdropped
		  AND NOT pg_catalog.quote_ident(a.attname) = ANY (pk_cols);
	EXECUTE pg_catalog.format('INSERT INTO %s (%s%s, meta) SELECT %s%s, pg_catalog.jsonb_build_object(%s) FROM %s t',
		shadow, pg_catalog.array_to_string(pk_cols, ', '),
		CASE WHEN tcol IS NULL OR pg_catalog.quote_ident(tcol) = ANY (pk_cols) THEN ''
			ELSE ', ' || pg_catalog.quote_ident(tcol) END,
		(SELECT pg_catalog.string_agg('t.' || c, ', ') FROM pg_catalog.unnest(pk_cols) c),
		CASE WHEN tcol IS NULL OR pg_catalog.quote_ident(tcol) = ANY (pk_cols) THEN ''
			ELSE ', t.' || pg_catalog.quote_ident(tcol) END,
		coalesce(stamp, ''), tbl);

	INSERT INTO domi.sync_tables (tbl, shadow, tenant_column) VALUES (tbl, shadow, tcol);

	EXECUTE pg_catalog.format('CREATE TRIGGER domi_field_sync AFTER INSERT OR UPDATE OR DELETE ON %s'
		' FOR EACH ROW EXECUTE FUNCTION domi._sync_stamp()', tbl);
	EXECUTE pg_catalog.format('CREATE TRIGGER domi_field_sync_truncate AFTER TRUNCATE ON %s'
		' FOR EACH STATEMENT EXECUTE FUNCTION domi._sync_truncate()', tbl);
END;
$$;

-- Stop syncing: the triggers and the shadow (with every stamp) go.  Run as
-- the extension owner by domi.disable_field_sync() (C), as above.
CREATE FUNCTION domi._disable_field_sync(tbl regclass) RETURNS void
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	shadow_rel regclass;
BEGIN
	DELETE FROM domi.sync_tables s WHERE s.tbl = _disable_field_sync.tbl RETURNING s.shadow INTO shadow_rel;
	IF shadow_rel IS NULL THEN
		RAISE NOTICE 'table "%" does not sync field by field, nothing to remove', tbl;
		RETURN;
	END IF;
	EXECUTE pg_catalog.format('DROP TRIGGER IF EXISTS domi_field_sync ON %s', tbl);
	EXECUTE pg_catalog.format('DROP TRIGGER IF EXISTS domi_field_sync_truncate ON %s', tbl);
	EXECUTE pg_catalog.format('DROP TABLE %s', shadow_rel);
	DELETE FROM domi.sync_conflict_log l WHERE l.tbl = _disable_field_sync.tbl;
END;
$$;
REVOKE ALL ON FUNCTION domi._enable_field_sync(regclass) FROM PUBLIC;
REVOKE ALL ON FUNCTION domi._disable_field_sync(regclass) FROM PUBLIC;

CREATE FUNCTION domi.enable_field_sync(tbl regclass) RETURNS void
	LANGUAGE C STRICT AS 'MODULE_PATHNAME', 'domi_enable_field_sync';
CREATE FUNCTION domi.disable_field_sync(tbl regclass) RETURNS void
	LANGUAGE C STRICT AS 'MODULE_PATHNAME', 'domi_disable_field_sync';

CREATE FUNCTION domi._sync_later_stamp(a jsonb, b jsonb) RETURNS jsonb
	LANGUAGE C IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'domi_sync_later_stamp';
CREATE FUNCTION domi._sync_now_text() RETURNS text
	LANGUAGE C STABLE AS 'MODULE_PATHNAME', 'domi_sync_now_text';

-- A column renamed: its stamps follow it (and the shadow's own column, for
-- a primary key or tenant column).  C, on ddl_command_end, reading the
-- statement's parse tree for the old and new names.
CREATE FUNCTION domi._sync_ddl_end() RETURNS event_trigger
	LANGUAGE C AS 'MODULE_PATHNAME', 'domi_sync_ddl_end';
CREATE EVENT TRIGGER domi_sync_ddl_end ON ddl_command_end
	WHEN TAG IN ('ALTER TABLE')
	EXECUTE FUNCTION domi._sync_ddl_end();
ALTER EVENT TRIGGER domi_sync_ddl_end ENABLE ALWAYS;

-- A synced table dropped: its shadow and registry row go with it.
CREATE FUNCTION domi._sync_sql_drop() RETURNS event_trigger
	LANGUAGE plpgsql
	SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	gone record;
BEGIN
	FOR gone IN
		DELETE FROM domi.sync_tables s
		USING pg_catalog.pg_event_trigger_dropped_objects() d
		WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
		  AND d.objsubid = 0 AND d.objid = s.tbl::oid
		RETURNING s.tbl::oid AS tbl, s.shadow
	LOOP
		DELETE FROM domi.sync_conflict_log l WHERE l.tbl::oid = gone.tbl;
		IF EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE oid = gone.shadow::oid) THEN
			EXECUTE pg_catalog.format('DROP TABLE %s', gone.shadow);
		END IF;
	END LOOP;
END;
$$;
REVOKE ALL ON FUNCTION domi._sync_sql_drop() FROM PUBLIC;
CREATE EVENT TRIGGER domi_sync_sql_drop ON sql_drop
	EXECUTE FUNCTION domi._sync_sql_drop();
ALTER EVENT TRIGGER domi_sync_sql_drop ENABLE ALWAYS;

-- The change feed (src/sync_feed.c): the current tenant's changes of a
-- synced table after a cursor, in (xid, seq) order, only of transactions
-- older than the reader's snapshot xmin, so that a late commit is never
-- skipped.  See docs/sync.md.
CREATE FUNCTION domi.changes(tbl regclass, since text, max_rows integer,
		except_client text DEFAULT NULL)
	RETURNS TABLE (pk jsonb, "row" jsonb, meta jsonb, deleted boolean, "cursor" text)
	LANGUAGE C STABLE ROWS 1000 AS 'MODULE_PATHNAME', 'domi_sync_changes';

-- Purge tombstones older than a time, for every tenant of the table, and
-- move the feed's horizon past them: a cursor from before it gets an error
-- that says to resync, never a silent gap.  Run as the extension owner by
-- domi.purge_tombstones() (C), which checks that the caller owns the table.
CREATE FUNCTION domi._purge_tombstones(tbl regclass, older_than timestamptz) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	shadow_rel regclass;
	purged bigint;
	top_xid xid8;
	top_seq bigint;
BEGIN
	SELECT s.shadow INTO shadow_rel FROM domi.sync_tables s WHERE s.tbl = _purge_tombstones.tbl;
	IF shadow_rel IS NULL THEN
		RAISE EXCEPTION 'table "%" does not sync field by field', tbl
			USING ERRCODE = 'object_not_in_prerequisite_state';
	END IF;
	EXECUTE pg_catalog.format('WITH gone AS (DELETE FROM %s s WHERE s.tombstone IS NOT NULL'
			' AND (s.tombstone OPERATOR(pg_catalog.->>) ''at'')::pg_catalog.timestamptz OPERATOR(pg_catalog.<) $1'
			' RETURNING s.xid, s.seq)'
			' SELECT (SELECT pg_catalog.count(*) FROM gone), t.xid, t.seq'
			' FROM (SELECT 1) one LEFT JOIN (SELECT g.xid, g.seq FROM gone g'
			' ORDER BY g.xid DESC, g.seq DESC LIMIT 1) t ON true', shadow_rel)
		INTO purged, top_xid, top_seq USING older_than;
	IF purged > 0 THEN
		UPDATE domi.sync_tables s SET feed_horizon_xid = top_xid, feed_horizon_seq = top_seq
		WHERE s.tbl = _purge_tombstones.tbl
		  AND (s.feed_horizon_xid IS NULL OR (s.feed_horizon_xid, s.feed_horizon_seq) < (top_xid, top_seq));
	END IF;
	RETURN purged;
END;
$$;
REVOKE ALL ON FUNCTION domi._purge_tombstones(regclass, timestamptz) FROM PUBLIC;
CREATE FUNCTION domi.purge_tombstones(tbl regclass, older_than timestamptz) RETURNS bigint
	LANGUAGE C STRICT AS 'MODULE_PATHNAME', 'domi_sync_purge_tombstones';
