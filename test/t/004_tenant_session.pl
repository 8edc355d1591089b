# Session-wide tenants from the sources a connection brings with it
# (PGOPTIONS, ALTER ROLE / DATABASE SET), parallel workers under a session
# value that does not count, and a value SET before the library was loaded.
# By default none of them counts; domi.allow_session_tenant, set by a
# superuser for a role or database, lets them count.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $a = '11111111-1111-1111-1111-111111111111';
my $b = '22222222-2222-2222-2222-222222222222';

my $node = PostgreSQL::Test::Cluster->new('tenant_session');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'domi'");
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION domi;
	CREATE ROLE app LOGIN;
	CREATE TABLE t (g int, owner uuid);
	INSERT INTO t SELECT g, CASE WHEN g % 2 = 0 THEN '11111111-1111-1111-1111-111111111111'::uuid
		ELSE '22222222-2222-2222-2222-222222222222'::uuid END
	FROM generate_series(1, 200000) g;
	ANALYZE t;
	GRANT SELECT ON t TO app;
});

my $tenant_query = "SELECT coalesce(domi.current_tenant()::text, 'none')";

# PGOPTIONS (a startup option) is accepted but does not count.
my $connstr = $node->connstr('postgres') . " options='-c domi.tenant_id=$a'";
is($node->safe_psql('postgres', "SHOW domi.tenant_id; $tenant_query", connstr => $connstr),
	"$a\nnone", 'a tenant from PGOPTIONS is ignored');

# ALTER ROLE SET, made while a superuser allowed it, does not count for the
# role's sessions while they do not allow it.
$node->safe_psql('postgres', qq{
	SET domi.allow_session_tenant = on;
	ALTER ROLE app SET domi.tenant_id = '$a';
});
is($node->safe_psql('postgres', $tenant_query, extra_params => [ '-U', 'app' ]),
	'none', 'a tenant from ALTER ROLE SET is ignored');
is($node->safe_psql('postgres', "SELECT count(*) FROM t WHERE owner = domi.current_tenant()",
		extra_params => [ '-U', 'app' ]),
	'0', 'and a query comparing with current_tenant() sees no rows');
my ($ret, $out, $err) = $node->psql('postgres', 'SELECT domi.require_tenant()',
	extra_params => [ '-U', 'app' ]);
like($err, qr/a session-wide domi\.tenant_id is ignored/i, 'require_tenant() says why');

# A superuser allows session-wide tenants for the role: now they count.
$node->safe_psql('postgres', 'ALTER ROLE app SET domi.allow_session_tenant = on');
is($node->safe_psql('postgres', $tenant_query, extra_params => [ '-U', 'app' ]),
	$a, 'with domi.allow_session_tenant on for the role, its ALTER ROLE tenant counts');
$node->safe_psql('postgres', 'ALTER ROLE app RESET ALL');

# The same for a database and PGOPTIONS.
$node->safe_psql('postgres', 'ALTER DATABASE postgres SET domi.allow_session_tenant = on');
is($node->safe_psql('postgres', $tenant_query, connstr => $connstr),
	$a, 'with domi.allow_session_tenant on for the database, a PGOPTIONS tenant counts');
$node->safe_psql('postgres', 'ALTER DATABASE postgres RESET domi.allow_session_tenant');

# The application role cannot allow it for itself.
($ret, $out, $err) = $node->psql('postgres', 'SET domi.allow_session_tenant = on',
	extra_params => [ '-U', 'app' ]);
like($err, qr/permission denied to set parameter "domi\.allow_session_tenant"/,
	'a plain role cannot turn domi.allow_session_tenant on');

# Parallel workers: the per-row call runs in the workers, which cannot see
# the leader's GUC stack (the leader does not scan here, so the count is
# the workers').  A session value that does not count in the leader
# must not count in a worker either.
my $parallel = q{
	SET max_parallel_workers_per_gather = 2;
	SET parallel_setup_cost = 0;
	SET parallel_tuple_cost = 0;
	SET min_parallel_table_scan_size = 0;
	SET parallel_leader_participation = off;
};
my $count = 'SELECT count(*) FROM t WHERE owner = domi.current_tenant()';
like($node->safe_psql('postgres', "$parallel EXPLAIN (COSTS OFF) $count"), qr/Gather/,
	'the count has a parallel plan');
is($node->safe_psql('postgres', "$parallel BEGIN; SELECT domi.set_tenant('$a') IS NOT NULL; $count; COMMIT;"),
	"t\n100000", 'workers see a scoped tenant');
is($node->safe_psql('postgres', "$parallel $count", connstr => $connstr),
	'0', 'workers ignore a PGOPTIONS tenant');
# A SET made while allowed, then the setting turned off (a superuser's session).
is($node->safe_psql('postgres', qq{$parallel
	SET domi.allow_session_tenant = on;
	SET domi.tenant_id = '$a';
	$count;
	SET domi.allow_session_tenant = off;
	$count;
}), "100000\n0", 'allowed, a session tenant reaches the workers; not allowed, it counts nowhere');
my $explain = $node->safe_psql('postgres', qq{$parallel
	SET domi.allow_session_tenant = on;
	SET domi.tenant_id = '$a';
	SET domi.allow_session_tenant = off;
	EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) $count;
});
like($explain, qr/Workers Launched: 0/, 'that query ran without workers');
$node->stop;

# Without preloading, a SET before the library is loaded cannot be refused
# (no hook yet); once loaded, the value is ignored.
my $plain = PostgreSQL::Test::Cluster->new('tenant_session_no_preload');
$plain->init;
$plain->start;
$plain->safe_psql('postgres', 'CREATE EXTENSION domi');
is($plain->safe_psql('postgres', "SET domi.tenant_id = '$b'; $tenant_query"),
	'none', 'a tenant SET before the library loaded is ignored');
($ret, $out, $err) = $plain->psql('postgres', "SELECT domi.current_tenant(); SET domi.tenant_id = '$b'");
like($err, qr/cannot set a session-wide tenant/, 'once loaded, the SET is refused');
$plain->stop;

done_testing();
