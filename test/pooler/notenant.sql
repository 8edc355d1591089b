-- A pooled client that never sets a tenant (the second client of issue
-- 13): it must see no row at all; every row it sees belongs to a tenant it
-- did not set.
INSERT INTO leaks (script, tenant, seen, foreign_rows, bad_values)
SELECT 'no tenant', NULL, count(*), count(*), 0 FROM items HAVING count(*) > 0;
