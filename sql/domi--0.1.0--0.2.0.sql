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

-- The registry of protected columns.  A configuration table, so pg_dump
-- keeps its rows: tbl is a regclass (dumped as a qualified name, restored to
-- the new OID), the column is kept by name (attribute numbers change on
-- restore), and the type as it was when the column was protected, for the
-- type-change check.  Only the C functions read and write it, as its owner.
CREATE TABLE domi._protected_columns (
	tbl regclass NOT NULL,
	col name NOT NULL,
	typ regtype NOT NULL,
	typmod integer NOT NULL,
	protected_by name NOT NULL,
	protected_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tbl, col)
);
REVOKE ALL ON domi._protected_columns FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('domi._protected_columns', '');

COMMENT ON TABLE domi._protected_columns IS 'drop guard registry: read domi.protected_columns instead';

-- Only the table's owner (or a superuser) may protect or unprotect a column:
-- the functions check that as the caller.  Not STRICT: a NULL argument is an
-- error (22004), never a silent "nothing protected".
CREATE FUNCTION domi.protect_column(tbl regclass, col name) RETURNS boolean
	LANGUAGE C VOLATILE
	AS 'MODULE_PATHNAME', 'domi_protect_column';

COMMENT ON FUNCTION domi.protect_column(regclass, name) IS 'refuse DDL that drops, renames or retypes this column unless the transaction sets domi.allow_drop; true if newly protected';

CREATE FUNCTION domi.unprotect_column(tbl regclass, col name) RETURNS boolean
	LANGUAGE C VOLATILE
	AS 'MODULE_PATHNAME', 'domi_unprotect_column';

COMMENT ON FUNCTION domi.unprotect_column(regclass, name) IS 'remove a column''s protection; true if it was protected';

-- Readable by everyone: it shows names only.  allow_drop is the exact value
-- that lets a transaction drop the column.
CREATE VIEW domi.protected_columns AS
	SELECT n.nspname AS schema_name,
		c.relname AS table_name,
		r.col AS column_name,
		pg_catalog.format_type(r.typ, r.typmod) AS column_type,
		pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.'
			OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c.relname)
			OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(r.col) AS allow_drop,
		r.protected_by,
		r.protected_at
	FROM domi._protected_columns r
	JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) r.tbl
	JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace;
GRANT SELECT ON domi.protected_columns TO PUBLIC;

COMMENT ON VIEW domi.protected_columns IS 'columns protected by the drop guard, with the domi.allow_drop value that allows dropping each';

-- The event triggers.  ENABLE ALWAYS: they fire under
-- session_replication_role = replica too, where ordinary event triggers are
-- skipped.  Creating event triggers needs a superuser, so CREATE EXTENSION
-- domi does.
CREATE FUNCTION domi._drop_guard_sql_drop() RETURNS event_trigger
	LANGUAGE C
	AS 'MODULE_PATHNAME', 'domi_guard_sql_drop';

CREATE FUNCTION domi._drop_guard_ddl_end() RETURNS event_trigger
	LANGUAGE C
	AS 'MODULE_PATHNAME', 'domi_guard_ddl_end';

CREATE FUNCTION domi._drop_guard_ddl_start() RETURNS event_trigger
	LANGUAGE C
	AS 'MODULE_PATHNAME', 'domi_guard_ddl_start';

CREATE EVENT TRIGGER domi_drop_guard_drop ON sql_drop
	EXECUTE FUNCTION domi._drop_guard_sql_drop();
ALTER EVENT TRIGGER domi_drop_guard_drop ENABLE ALWAYS;

-- ALTER VIEW, ALTER MATERIALIZED VIEW and ALTER FOREIGN TABLE too: PostgreSQL
-- lets each of them rename a column of an ordinary table.
CREATE EVENT TRIGGER domi_drop_guard_alter ON ddl_command_end
	WHEN TAG IN ('ALTER TABLE', 'ALTER TYPE', 'ALTER VIEW', 'ALTER MATERIALIZED VIEW',
		'ALTER FOREIGN TABLE')
	EXECUTE FUNCTION domi._drop_guard_ddl_end();
ALTER EVENT TRIGGER domi_drop_guard_alter ENABLE ALWAYS;

CREATE EVENT TRIGGER domi_drop_guard_self ON ddl_command_start
	WHEN TAG IN ('DROP EXTENSION', 'DROP SCHEMA', 'DROP OWNED')
	EXECUTE FUNCTION domi._drop_guard_ddl_start();
ALTER EVENT TRIGGER domi_drop_guard_self ENABLE ALWAYS;

-- (end of drop guard)
