# bootstrap_tenant serializes the calls for one user on a lock that SQL
# cannot take.  A role with no grants at all holds every advisory lock it
# can name for the victim's id (the key domi 0.2 used: class 1685024105 and
# hashtext of the id, in the two-int and the bigint forms, both orders,
# shared and exclusive, session and transaction level): the victim's
# sign-up does not wait for it.  And the lock still does its job: two
# concurrent bootstraps for one user make one tenant.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('tenancy_bootstrap_lock');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'domi'");
$node->start;

my $uuid = qr/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/;

$node->safe_psql('postgres', q{
	CREATE EXTENSION domi;
	CREATE ROLE app_user LOGIN;
	CREATE ROLE squatter LOGIN;
	SET domi.rls_guard = off;
	CREATE SCHEMA app;
	CREATE TABLE app.tenants (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), name text);
	CREATE TABLE app.memberships (user_id text NOT NULL, tenant_id uuid NOT NULL REFERENCES app.tenants,
		created_at timestamptz NOT NULL DEFAULT now());
	CREATE INDEX ON app.memberships (user_id, created_at, tenant_id);
	SELECT domi.enable_tenant_rls('app.memberships');
	SELECT domi.enable_tenant_rls('app.tenants', 'id');
	SELECT domi.configure_tenancy('app.memberships', tenants => 'app.tenants');
	GRANT EXECUTE ON FUNCTION domi.user_tenant(text), domi.bootstrap_tenant(text, jsonb) TO app_user;
});

# The squatter: no grant of any kind; it holds every advisory lock on the
# victim's key in one session (a session's own locks never conflict), at
# session level and, in an open transaction, at transaction level.
my $class = 1685024105;
my $hash = $node->safe_psql('postgres', q{SELECT hashtext('victim')});
my @keys = (
	"$class, $hash", "$hash, $class",
	"(($class)::bigint << 32) | (($hash)::bigint & 4294967295)",
	"(($hash)::bigint << 32) | (($class)::bigint & 4294967295)");
my @calls;
for my $key (@keys)
{
	push @calls, map { "pg_catalog.$_($key)" }
	  qw(pg_advisory_lock pg_advisory_lock_shared pg_advisory_xact_lock pg_advisory_xact_lock_shared);
}
my $squatter = $node->background_psql('postgres', extra_params => [ '-U', 'squatter' ]);
my $squatter_pid = $squatter->query_safe('SELECT pg_backend_pid()');
$squatter->query_safe('BEGIN');
$squatter->query_safe('SELECT ' . join(', ', @calls));
is($node->safe_psql('postgres', qq{
	SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = $squatter_pid}),
	'8', 'the squatter holds advisory locks on every key form it can name (shared and exclusive)');
is($node->safe_psql('postgres', qq{
	SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = $squatter_pid
	AND classid = $class AND objid = ($hash)::oid}),
	'4', 'among them the key domi 0.2 used, in both forms, shared and exclusive');

# The victim signs up meanwhile, with a lock timeout that a wait would hit.
my ($ret, $stdout, $stderr) = $node->psql('postgres', q{
	SET lock_timeout = '5s';
	SELECT domi.bootstrap_tenant('victim', '{"name": "Victim"}');
}, extra_params => [ '-U', 'app_user' ]);
is($ret, 0, 'bootstrap_tenant for the victim completes while the squatter holds its locks')
  or diag($stderr);
like($stdout, qr/^$uuid$/, 'and returns the new tenant');
is($node->safe_psql('postgres', q{SELECT count(*) FROM app.memberships WHERE user_id = 'victim'}),
	'1', 'with the victim\'s membership');

# The squatter cannot even see a lock of that tag to aim at: bootstrap's
# lock is held only while its transaction runs, and its tag carries a
# field that no pg_advisory_* function sets (objsubid 101; they set 1 or 2).
my $s1 = $node->background_psql('postgres', extra_params => [ '-U', 'app_user' ]);
my $s2 = $node->background_psql('postgres', extra_params => [ '-U', 'app_user' ]);
$s1->query_safe('BEGIN');
my $t1 = $s1->query_safe(q{SELECT domi.bootstrap_tenant('twice', '{"name": "first"}')});
like($t1, qr/^$uuid$/, 'session 1 bootstraps "twice" inside an open transaction');
is($node->safe_psql('postgres', q{
	SELECT string_agg(DISTINCT objsubid::text, ',') FROM pg_locks
	WHERE locktype = 'advisory' AND classid = 1685024105 AND granted AND pid <> } . $squatter_pid),
	'101', 'its lock is an advisory tag with objsubid 101');

# Two concurrent bootstraps for one user: the second waits for the first,
# then returns its tenant.
$s2->query_until(qr/calling/, qq{\\echo calling\nSELECT domi.bootstrap_tenant('twice', '{"name": "second"}');\n});
ok($node->poll_query_until('postgres', q{
	SELECT count(*) = 1 FROM pg_locks
	WHERE locktype = 'advisory' AND NOT granted AND classid = 1685024105 AND objsubid = 101}),
	'session 2 waits on the bootstrap lock');
$s1->query_safe('COMMIT');
my $out = $s2->query_until(qr/returned\n/, "\\echo returned\n");
like($out, qr/^\Q$t1\E$/m, 'session 2 gets session 1\'s tenant');
is($node->safe_psql('postgres', q{
	SELECT count(*) || ':' || string_agg(t.name, ',')
	FROM app.memberships m JOIN app.tenants t ON t.id = m.tenant_id WHERE m.user_id = 'twice'}),
	'1:first', 'one tenant and one membership');

$s1->quit;
$s2->quit;
$squatter->query_safe('COMMIT');
$squatter->quit;

done_testing();
