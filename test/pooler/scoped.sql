-- A well-behaved pooled client: one transaction, its tenant set inside it
-- with domi.set_tenant(), all rows it can see through the domi policy
-- counted, those of any other tenant counted apart, and a sample of its
-- values decrypted with the current tenant's key.  Only an anomaly is
-- written (into leaks).  Variables: tenants, rows.
\set t random(1, :tenants)
\set r random(0, 19)
BEGIN;
SELECT domi.set_tenant(pooler_tenant(:t)) IS NOT NULL AS set;
INSERT INTO leaks (script, tenant, seen, foreign_rows, bad_values)
SELECT 'scoped', pooler_tenant(:t), count(*),
	count(*) FILTER (WHERE tenant_id IS DISTINCT FROM pooler_tenant(:t)),
	count(*) FILTER (WHERE CASE WHEN tenant_id = pooler_tenant(:t) AND id % 20 = :r
		THEN domi.decrypt_text(secret) IS DISTINCT FROM 'note ' || id ELSE false END)
FROM items
HAVING count(*) <> :rows
	OR count(*) FILTER (WHERE tenant_id IS DISTINCT FROM pooler_tenant(:t)) > 0
	OR count(*) FILTER (WHERE CASE WHEN tenant_id = pooler_tenant(:t) AND id % 20 = :r
		THEN domi.decrypt_text(secret) IS DISTINCT FROM 'note ' || id ELSE false END) > 0;
COMMIT;
