# The tenant context must not leak between connections, nor between
# transactions on one connection.  Several sessions at once need TAP.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('tenant');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'domi'");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION domi');

my $a = '11111111-1111-1111-1111-111111111111';
my $b = '22222222-2222-2222-2222-222222222222';

my $s1 = $node->background_psql('postgres');
my $s2 = $node->background_psql('postgres');

# Session 1 opens a transaction and sets tenant A; session 2 sees nothing.
$s1->query_safe("BEGIN; SELECT domi.set_tenant('$a')");
is($s1->query_safe('SELECT domi.current_tenant()'), $a,
	'session 1 sees its own tenant inside its transaction');
is($s2->query_safe("SELECT coalesce(domi.current_tenant()::text, 'none')"), 'none',
	'session 2 does not see the tenant of session 1');

# Session 2 sets tenant B at the same time; each keeps its own.
$s2->query_safe("BEGIN; SELECT domi.set_tenant('$b')");
is($s1->query_safe('SELECT domi.current_tenant()'), $a, 'session 1 still has tenant A');
is($s2->query_safe('SELECT domi.current_tenant()'), $b, 'session 2 has tenant B');

# After COMMIT, neither tenant survives into the next transaction.
$s1->query_safe('COMMIT');
$s2->query_safe('ROLLBACK');
is($s1->query_safe("SELECT coalesce(domi.current_tenant()::text, 'none')"), 'none',
	'tenant A is gone from session 1 after COMMIT');
is($s2->query_safe("SELECT coalesce(domi.current_tenant()::text, 'none')"), 'none',
	'tenant B is gone from session 2 after ROLLBACK');

# A SET LOCAL in one transaction does not reach the next one on the same connection.
$s1->query_safe("BEGIN; SET LOCAL domi.tenant_id = '$b'; COMMIT");
is($s1->query_safe("BEGIN; SELECT coalesce(domi.current_tenant()::text, 'none')"), 'none',
	'a new transaction on the same connection starts without a tenant');
$s1->query_safe('COMMIT');

# Outside a transaction block, set_tenant refuses with SQLSTATE 25P01.
my ($ret, $stdout, $stderr) = $node->psql('postgres',
	"\\set VERBOSITY verbose\nSELECT domi.set_tenant('$a')");
isnt($ret, 0, 'set_tenant outside a transaction block fails');
like($stderr, qr/25P01/, 'with SQLSTATE 25P01');
like($stderr, qr/BEGIN \.\.\. COMMIT/, 'and a hint to use BEGIN ... COMMIT');

# A tenant set in a parallel worker's leader is seen by the workers.
$node->safe_psql('postgres', q{
	CREATE TABLE t AS SELECT g, CASE WHEN g % 2 = 0 THEN '11111111-1111-1111-1111-111111111111'::uuid
		ELSE '22222222-2222-2222-2222-222222222222'::uuid END AS tenant_id
	FROM generate_series(1, 200000) g;
	ANALYZE t;
});
my $parallel_count = $node->safe_psql('postgres', qq{
	SET max_parallel_workers_per_gather = 2;
	SET parallel_setup_cost = 0;
	SET parallel_tuple_cost = 0;
	SET min_parallel_table_scan_size = 0;
	BEGIN;
	SELECT domi.set_tenant('$a');
	SELECT count(*) FROM t WHERE tenant_id = domi.current_tenant();
	COMMIT;
});
like($parallel_count, qr/^\Q$a\E\n100000$/m, 'parallel workers see the leader\'s tenant');
my $plan = $node->safe_psql('postgres', qq{
	SET max_parallel_workers_per_gather = 2;
	SET parallel_setup_cost = 0;
	SET parallel_tuple_cost = 0;
	SET min_parallel_table_scan_size = 0;
	EXPLAIN (COSTS OFF) SELECT count(*) FROM t WHERE tenant_id = domi.current_tenant();
});
like($plan, qr/Gather/, 'the count above ran with a parallel plan');

$s1->quit;
$s2->quit;
$node->stop;

# Without shared_preload_libraries the library loads on first use and the
# tenant context works the same.  A value SET before the library loaded is
# checked when it loads: garbage is discarded, never trusted.
my $plain = PostgreSQL::Test::Cluster->new('no_preload');
$plain->init;
$plain->start;
$plain->safe_psql('postgres', 'CREATE EXTENSION domi');
is($plain->safe_psql('postgres', "BEGIN; SELECT domi.set_tenant('$a'); SELECT domi.require_tenant(); COMMIT;"),
	"$a\n$a", 'tenant context works without preloading');
my ($r2, $out2, $err2) = $plain->psql('postgres',
	"SET domi.tenant_id = 'garbage'; SELECT coalesce(domi.current_tenant()::text, 'none');");
is($out2, 'none', 'a garbage value set before the library loaded yields no tenant');
like($err2, qr/invalid tenant id "garbage"/, 'and is reported when the library loads');
$plain->stop;

done_testing();
