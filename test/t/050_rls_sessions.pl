# Row-level security across sessions and server configuration: the guard set
# in postgresql.conf and per role, login roles, concurrent tenants on one
# table, and parallel workers under the domi policy.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('rls');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'domi'");
$node->append_conf('postgresql.conf', "domi.rls_guard = 'error'");
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION domi;
	CREATE ROLE migrator LOGIN;
	CREATE ROLE app_user LOGIN;
	CREATE SCHEMA app AUTHORIZATION migrator;
	GRANT USAGE ON SCHEMA app TO app_user;
	ALTER ROLE migrator SET search_path = app;
	ALTER ROLE app_user SET search_path = app;
});

my $a = '11111111-1111-1111-1111-111111111111';
my $b = '22222222-2222-2222-2222-222222222222';

sub as_role
{
	my ($role, $sql) = @_;
	return $node->psql('postgres', "\\set VERBOSITY verbose\n$sql",
		extra_params => [ '-U', $role ]);
}

# The guard from postgresql.conf applies to every session of every role.
is($node->safe_psql('postgres', 'SHOW domi.rls_guard', extra_params => [ '-U', 'migrator' ]),
	'error', 'domi.rls_guard comes from postgresql.conf');
my ($ret, $stdout, $stderr) = as_role('migrator', 'CREATE TABLE orders (tenant_id uuid NOT NULL, total int)');
isnt($ret, 0, 'an unprotected tenant table is refused for a login role');
like($stderr, qr/42P16/, 'with SQLSTATE 42P16');
is($node->safe_psql('postgres', "SELECT to_regclass('app.orders') IS NULL"), 't',
	'and the table does not exist');

# Per role: the migration role installs tenant RLS with every new table.
$node->safe_psql('postgres', 'ALTER ROLE migrator SET domi.rls_guard = enable');
($ret, $stdout, $stderr) = as_role('migrator', q{
	CREATE TABLE orders (id int, tenant_id uuid NOT NULL, total int);
	CREATE INDEX ON orders (tenant_id);
	GRANT SELECT, INSERT, UPDATE, DELETE ON orders TO app_user;
});
is($ret, 0, 'with domi.rls_guard = enable for the role, the table is created');
is($node->safe_psql('postgres', q{
	SELECT relrowsecurity AND relforcerowsecurity
		AND EXISTS (SELECT FROM pg_policy WHERE polrelid = c.oid AND polname = 'domi_tenant_isolation')
	FROM pg_class c WHERE oid = 'app.orders'::regclass}),
	't', 'and it has ENABLE, FORCE and the domi policy');

# The owner itself is subject to the policy (FORCE): it loads rows per tenant.
$node->safe_psql('postgres', qq{
	BEGIN;
	SELECT domi.set_tenant('$a');
	INSERT INTO orders SELECT g, '$a', g FROM generate_series(1, 30000) g;
	COMMIT;
	BEGIN;
	SELECT domi.set_tenant('$b');
	INSERT INTO orders SELECT g, '$b', 2 * g FROM generate_series(1, 20000) g;
	COMMIT;
	ANALYZE orders;
}, extra_params => [ '-U', 'migrator' ]);
is($node->safe_psql('postgres', 'SELECT count(*) FROM orders', extra_params => [ '-U', 'migrator' ]),
	'0', 'the owner sees no rows without a tenant');

# Two application sessions at once, each in its own tenant.
my $s1 = $node->background_psql('postgres', extra_params => [ '-U', 'app_user' ]);
my $s2 = $node->background_psql('postgres', extra_params => [ '-U', 'app_user' ]);
$s1->query_safe("BEGIN; SELECT domi.set_tenant('$a')");
$s2->query_safe("BEGIN; SELECT domi.set_tenant('$b')");
is($s1->query_safe('SELECT count(*) FROM orders'), '30000', 'session 1 sees tenant A\'s rows');
is($s2->query_safe('SELECT count(*) FROM orders'), '20000', 'session 2 sees tenant B\'s rows');
is($s1->query_safe("SELECT count(*) FROM orders WHERE tenant_id = '$b'"), '0',
	'session 1 sees none of tenant B\'s rows while session 2 works in B');
$s1->query_safe('COMMIT');
$s2->query_safe('COMMIT');

# The same connection, next transaction, other tenant (a pooled connection).
$s1->query_safe("BEGIN; SELECT domi.set_tenant('$b')");
is($s1->query_safe('SELECT count(*) FROM orders'), '20000',
	'a reused connection sees the next transaction\'s tenant');
$s1->query_safe('COMMIT');
is($s1->query_safe('SELECT count(*) FROM orders'), '0',
	'and nothing once that transaction is over');
$s1->quit;
$s2->quit;

# Parallel workers under the policy: the initplan's value reaches them.
my $parallel = qq{
	SET max_parallel_workers_per_gather = 2;
	SET parallel_setup_cost = 0;
	SET parallel_tuple_cost = 0;
	SET min_parallel_table_scan_size = 0;
	SET enable_indexscan = off;
	SET enable_bitmapscan = off;
};
my $plan = $node->safe_psql('postgres', "$parallel EXPLAIN (COSTS OFF) SELECT sum(total) FROM orders",
	extra_params => [ '-U', 'app_user' ]);
like($plan, qr/Gather/, 'the query under the policy has a parallel plan');
is($node->safe_psql('postgres', qq{$parallel
	BEGIN;
	SELECT domi.set_tenant('$b') IS NOT NULL;
	SELECT count(*), sum(total) FROM orders;
	COMMIT;
}, extra_params => [ '-U', 'app_user' ]), "t\n20000|400020000",
	'parallel workers see exactly tenant B\'s rows');

# The proof on the live table, run by a superuser for the login role.
is($node->safe_psql('postgres',
	"SELECT string_agg(check_name || '=' || passed, ',' ORDER BY check_name) FROM domi.assert_isolation('app.orders', 'app_user')"),
	'cross_tenant_insert_refused=true,cross_tenant_update_refused=true,no_tenant_sees_no_rows=true,other_tenant_rows_unwritable=true,tenant_sees_only_own_rows=true',
	'assert_isolation passes for the application role');
is($node->safe_psql('postgres', "SELECT count(*) FROM app.orders"),
	'50000', 'and left the rows as they were (a superuser sees them all)');

# Only the owner may turn RLS off; the application role cannot.
($ret, $stdout, $stderr) = as_role('app_user', 'ALTER TABLE orders DISABLE ROW LEVEL SECURITY');
isnt($ret, 0, 'the application role cannot turn RLS off');
like($stderr, qr/42501/, 'it is not the owner (42501)');

done_testing();
