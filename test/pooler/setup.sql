-- The pooled-load fixture: :tenants tenants of :rows rows each, every row
-- carrying its tenant id and a value encrypted under that tenant's keyring
-- key, the plaintext of which is 'note <id>'.  Run as a superuser.
SET domi.rls_guard = off;
CREATE EXTENSION IF NOT EXISTS domi;
CREATE ROLE app LOGIN;

-- Tenant n as a uuid; IMMUTABLE so that the scripts' calls fold to constants.
CREATE FUNCTION pooler_tenant(n int) RETURNS uuid LANGUAGE sql IMMUTABLE PARALLEL SAFE
	AS $$SELECT ('00000000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid$$;

CREATE TABLE items (id int PRIMARY KEY, tenant_id uuid NOT NULL, secret bytea NOT NULL);
INSERT INTO items
	SELECT g, pooler_tenant(1 + g % :tenants), domi.encrypt_text('note ' || g, pooler_tenant(1 + g % :tenants))
	FROM generate_series(1, :tenants * :rows) g;
CREATE INDEX ON items (tenant_id);
SELECT domi.enable_tenant_rls('items') IS NOT NULL AS rls_enabled;

-- The same rows without row-level security, read with a hand-written WHERE:
-- the baseline of the benchmark (bench/pooler).
CREATE TABLE items_plain AS SELECT * FROM items;
ALTER TABLE items_plain ADD PRIMARY KEY (id);
CREATE INDEX ON items_plain (tenant_id);

-- Anomalies only: a transaction that saw a row of another tenant, a value
-- that did not decrypt to its plaintext, or a wrong number of rows.  Not
-- tenant-isolated (it names no tenant column): every client writes here.
CREATE TABLE leaks (
	at timestamptz NOT NULL DEFAULT clock_timestamp(),
	script text NOT NULL,
	tenant uuid,
	seen bigint NOT NULL,
	foreign_rows bigint NOT NULL,
	bad_values bigint NOT NULL
);

GRANT SELECT ON items, items_plain TO app;
GRANT INSERT ON leaks TO app;
GRANT EXECUTE ON FUNCTION domi.decrypt_text(bytea) TO app;
VACUUM ANALYZE items;
VACUUM ANALYZE items_plain;
