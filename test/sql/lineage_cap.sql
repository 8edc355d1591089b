-- Migration lineage: the findings of one call are bounded.  At most
-- max_findings_per_code rows per code (default 100), then one summary row
-- per code with the count left out, in the place of the first one left out
-- and with the severity of the worst (issue 18).
SET client_min_messages = warning;

-- A journal of n entries and none of their files: each entry is a
-- migration_file_missing (error) and a snapshot_missing (warning).
CREATE FUNCTION pg_temp.orphan_journal(n int) RETURNS jsonb LANGUAGE sql AS $$
	SELECT jsonb_build_object('format', 'drizzle', 'files', jsonb_build_object(
		'meta/_journal.json', jsonb_build_object('version', '7', 'dialect', 'postgresql',
			'entries', (SELECT jsonb_agg(jsonb_build_object('idx', i, 'version', '7',
					'when', 1700000000000 + i, 'tag', lpad(i::text, 4, '0') || '_m', 'breakpoints', true)
					ORDER BY i)
				FROM generate_series(0, n - 1) i))::text))
$$;

-- 250 entries, the default bound: 100 rows of each code and a summary row
-- each, which counts the 150 left out of 250.
SELECT severity, code, count(*) AS rows,
	count(*) FILTER (WHERE detail LIKE '% left out: %') AS summaries
FROM domi.lineage_check(pg_temp.orphan_journal(250))
GROUP BY severity, code ORDER BY severity, code;
SELECT severity, code, migration, detail, fix
FROM domi.lineage_check(pg_temp.orphan_journal(250)) WHERE detail LIKE '% left out: %';

-- The listed ones are the first found, and the summary row follows them
-- within its severity.
SELECT n, severity, code, migration FROM (
	SELECT row_number() OVER () AS n, * FROM domi.lineage_check(pg_temp.orphan_journal(250))) r
WHERE n IN (1, 2, 100, 101, 102, 201, 202) ORDER BY n;

-- Another bound: 3 of each, and the count of the rest.
SELECT severity, code, migration, left(detail, 70) AS detail
FROM domi.lineage_check(pg_temp.orphan_journal(250), NULL, 3);
-- 0: only the counts.
SELECT severity, code, migration, left(detail, 70) AS detail
FROM domi.lineage_check(pg_temp.orphan_journal(250), max_findings_per_code => 0);
-- NULL is the default; a bound that covers them all leaves no summary row.
SELECT count(*) FROM domi.lineage_check(pg_temp.orphan_journal(250), NULL, NULL);
SELECT count(*), count(*) FILTER (WHERE detail LIKE '% left out: %') AS summaries
FROM domi.lineage_check(pg_temp.orphan_journal(250), NULL, 250);
-- Under the bound nothing changes: 99 entries, 198 rows and the info row,
-- no summary.
SELECT count(*), count(*) FILTER (WHERE detail LIKE '% left out: %') AS summaries
FROM domi.lineage_check(pg_temp.orphan_journal(99));

-- Out of range: refused, nothing checked.
\set VERBOSITY default
SELECT * FROM domi.lineage_check(pg_temp.orphan_journal(1), NULL, -1);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM domi.lineage_check(pg_temp.orphan_journal(1), NULL, 100001);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
