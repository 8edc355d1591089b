-- The benchmark's baseline (bench/pooler): scoped.sql's transaction on the
-- table without row-level security, the tenant written into the WHERE by
-- hand.  The same round trips, set_tenant() included.
\set t random(1, :tenants)
\set r random(0, 19)
BEGIN;
SELECT domi.set_tenant(pooler_tenant(:t)) IS NOT NULL AS set;
INSERT INTO leaks (script, tenant, seen, foreign_rows, bad_values)
SELECT 'where', pooler_tenant(:t), count(*),
	count(*) FILTER (WHERE tenant_id IS DISTINCT FROM pooler_tenant(:t)),
	count(*) FILTER (WHERE CASE WHEN tenant_id = pooler_tenant(:t) AND id % 20 = :r
		THEN domi.decrypt_text(secret) IS DISTINCT FROM 'note ' || id ELSE false END)
FROM items_plain WHERE tenant_id = pooler_tenant(:t)
HAVING count(*) <> :rows
	OR count(*) FILTER (WHERE tenant_id IS DISTINCT FROM pooler_tenant(:t)) > 0
	OR count(*) FILTER (WHERE CASE WHEN tenant_id = pooler_tenant(:t) AND id % 20 = :r
		THEN domi.decrypt_text(secret) IS DISTINCT FROM 'note ' || id ELSE false END) > 0;
COMMIT;
