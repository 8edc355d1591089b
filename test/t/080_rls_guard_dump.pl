# The tenant isolation registry (domi._isolated_tables) through pg_dump and
# restore, plain and custom format: the tables come back registered on their
# new OIDs with the tenant column they were isolated on (app.tenants: "id"),
# isolated, and guarded.  pg_restore --clean would drop domi's policies before
# it drops their tables: refused like any other client, nothing changed.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('rls_guard_dump');
$node->init;
$node->start;

my $tmp = PostgreSQL::Test::Utils::tempdir;
my $registry = q{SELECT string_agg(format('%s.%s(%s)', schema_name, table_name, tenant_column), ' '
	ORDER BY schema_name, table_name) FROM domi.isolated_tables};
my $state = q{SELECT string_agg(format('%s rls=%s force=%s policies=%s', c.relname, c.relrowsecurity,
		c.relforcerowsecurity, (SELECT string_agg(polname, ',') FROM pg_policy WHERE polrelid = c.oid)), '; '
	ORDER BY c.relname) FROM pg_class c WHERE c.relnamespace = 'app'::regnamespace AND c.relkind = 'r'};

$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql('src', q{
	CREATE EXTENSION domi;
	CREATE SCHEMA app;
	-- OIDs that will differ in the restored database.
	CREATE TABLE app.filler (a int);
	DROP TABLE app.filler;
	CREATE TABLE app.tenants (id uuid PRIMARY KEY, name text);
	CREATE TABLE app.conversations (id int, tenant_id uuid NOT NULL, title text);
	INSERT INTO app.tenants VALUES ('aaaaaaaa-0000-0000-0000-000000000001', 'A');
	INSERT INTO app.conversations VALUES (1, 'aaaaaaaa-0000-0000-0000-000000000001', 'a1');
	SELECT domi.enable_tenant_rls('app.tenants', 'id');
	SELECT domi.enable_tenant_rls('app.conversations');
});
my $expected_registry = 'app.conversations(tenant_id) app.tenants(id)';
my $isolated = 'conversations rls=t force=t policies=domi_tenant_isolation; '
	. 'tenants rls=t force=t policies=domi_tenant_isolation';
is($node->safe_psql('src', $registry), $expected_registry, 'two isolated tables in the source database');

my $plain = "$tmp/src.sql";
my $custom = "$tmp/src.dump";
command_ok([ 'pg_dump', '-d', $node->connstr('src'), '-f', $plain ], 'pg_dump, plain format');
command_ok([ 'pg_dump', '-Fc', '-d', $node->connstr('src'), '-f', $custom ], 'pg_dump, custom format');

sub check_restored
{
	my ($db, $how) = @_;
	is($node->safe_psql($db, $registry), $expected_registry, "$how: the registry is back");
	is($node->safe_psql($db, q{SELECT count(*) FROM domi._isolated_tables r JOIN pg_class c ON c.oid = r.tbl}),
		'2', "$how: on the restored tables' OIDs");
	is($node->safe_psql($db, $state), $isolated, "$how: both tables isolated");
	my ($ret, $stdout, $stderr) = $node->psql($db, 'ALTER TABLE app.tenants DISABLE ROW LEVEL SECURITY');
	like($stderr, qr/cannot turn row level security off on tenant table "app.tenants", isolated by domi/,
		"$how: and guarded");
	is($node->safe_psql($db, q{SELECT string_agg(evtname || '=' || evtenabled::text, ',' ORDER BY evtname)
		FROM pg_event_trigger WHERE evtname LIKE 'domi_isolation_guard%'}),
		'domi_isolation_guard_alter=A,domi_isolation_guard_drop=A',
		"$how: the guard's triggers fire always (replica mode too)");
}

$node->safe_psql('postgres', 'CREATE DATABASE dst_plain');
command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('dst_plain'), '-f', $plain ],
	'the plain dump restores without error');
check_restored('dst_plain', 'plain dump');

$node->safe_psql('postgres', 'CREATE DATABASE dst_custom');
command_ok([ 'pg_restore', '--exit-on-error', '-d', $node->connstr('dst_custom'), $custom ],
	'the custom dump restores with pg_restore');
check_restored('dst_custom', 'pg_restore');

# Under session_replication_role = replica (a logical replication apply or
# a migration tool's "fast mode") the guard still fires.
my ($ret, $stdout, $stderr) = $node->psql('dst_custom', q{
	SET session_replication_role = replica;
	DROP POLICY domi_tenant_isolation ON app.conversations});
like($stderr, qr/cannot drop the tenant policy of table "app.conversations"/,
	'DROP POLICY under session_replication_role = replica is refused');

# pg_restore --clean drops the policies first, the tables after.
IPC::Run::run([ 'pg_restore', '--clean', '--if-exists', '--exit-on-error', '-d', $node->connstr('dst_custom'), $custom ],
	'>', \$stdout, '2>', \$stderr);
like($stderr, qr/cannot drop the tenant policy of table/, 'pg_restore --clean over isolated tables is refused');
is($node->safe_psql('dst_custom', $state), $isolated, 'and both tables are still isolated');
is($node->safe_psql('dst_custom', 'SELECT count(*) FROM app.conversations'), '1', 'with their rows');

$node->stop;
done_testing();
