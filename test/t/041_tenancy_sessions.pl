# Tenant lookup across sessions: concurrent bootstrap_tenant calls for one
# user create one tenant (one session holds its transaction open, the other
# waits on the advisory lock), also when the first rolls back and under
# REPEATABLE READ, and for ids that a case-insensitive user column calls
# equal; a configuration change reaches a session that already
# has its plans; two application sessions enter different tenants at once.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('tenancy_sessions');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'domi'");
$node->start;

my $a = 'aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa';
my $b = 'bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb';
my $uuid = qr/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/;

$node->safe_psql('postgres', qq{
	CREATE EXTENSION domi;
	CREATE ROLE app_user LOGIN;
	SET domi.rls_guard = off;
	CREATE SCHEMA app;
	CREATE TABLE app.tenants (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), name text);
	CREATE TABLE app.memberships (user_id text NOT NULL, tenant_id uuid NOT NULL REFERENCES app.tenants,
		created_at timestamptz NOT NULL DEFAULT now());
	CREATE INDEX ON app.memberships (user_id, created_at, tenant_id);
	-- no index that fits the lookups: the general scan answers for this one
	CREATE TABLE app.memberships_v2 (user_id text NOT NULL, tenant_id uuid NOT NULL,
		created_at timestamptz NOT NULL DEFAULT now());
	CREATE TABLE app.invoices (id int, tenant_id uuid NOT NULL);
	SELECT domi.enable_tenant_rls('app.memberships');
	SELECT domi.enable_tenant_rls('app.memberships_v2');
	SELECT domi.enable_tenant_rls('app.tenants', 'id');
	SELECT domi.enable_tenant_rls('app.invoices');
	INSERT INTO app.tenants (id, name) VALUES ('$a', 'Acme'), ('$b', 'Globex');
	INSERT INTO app.memberships VALUES ('alice', '$a', '2024-01-01'), ('bob', '$b', '2024-01-01');
	INSERT INTO app.memberships_v2 VALUES ('alice', '$b', '2024-01-01');
	INSERT INTO app.invoices VALUES (1, '$a'), (2, '$b');
	GRANT USAGE ON SCHEMA app TO app_user;
	GRANT SELECT ON app.invoices TO app_user;
	SELECT domi.configure_tenancy('app.memberships', tenants => 'app.tenants');
	GRANT EXECUTE ON FUNCTION domi.user_tenant(text), domi.enter_tenant(text, uuid),
		domi.bootstrap_tenant(text, jsonb) TO app_user;
});

my $s1 = $node->background_psql('postgres', extra_params => [ '-U', 'app_user' ]);
my $s2 = $node->background_psql('postgres', extra_params => [ '-U', 'app_user' ]);

sub tenants_of
{
	my ($user) = @_;
	return $node->safe_psql('postgres', qq{
		SELECT count(*) || ':' || coalesce(string_agg(t.name, ','), '')
		FROM app.memberships m JOIN app.tenants t ON t.id = m.tenant_id WHERE m.user_id = '$user'});
}

sub waiting_on_bootstrap_lock
{
	# classid is domi's lock class ("domi" in ASCII), objsubid 101: a tag no SQL function makes.
	return $node->poll_query_until('postgres', q{
		SELECT count(*) = 1 FROM pg_locks
		WHERE locktype = 'advisory' AND NOT granted AND classid = 1685024105 AND objsubid = 101});
}

# Session 1 bootstraps u1 and keeps its transaction open; session 2's call
# for u1 waits, then returns session 1's tenant; one tenant in all.
$s1->query_safe('BEGIN');
my $t1 = $s1->query_safe(qq{SELECT domi.bootstrap_tenant('u1', '{"name": "first"}')});
like($t1, qr/^$uuid$/, 'session 1 bootstraps u1 inside an open transaction');
$s2->query_until(qr/calling/, qq{\\echo calling\nSELECT domi.bootstrap_tenant('u1', '{"name": "second"}');\n});
ok(waiting_on_bootstrap_lock(), 'session 2 waits on the per-user advisory lock');
$s1->query_safe('COMMIT');
my $out = $s2->query_until(qr/returned\n/, "\\echo returned\n");
like($out, qr/^\Q$t1\E$/m, 'session 2 gets session 1\'s tenant');
is(tenants_of('u1'), '1:first', 'one tenant and one membership for u1');

# If the first call rolls back, the waiting one creates the tenant.
$s1->query_safe('BEGIN');
my $rolled_back = $s1->query_safe(qq{SELECT domi.bootstrap_tenant('u2', '{"name": "rolled back"}')});
$s2->query_until(qr/calling/, qq{\\echo calling\nSELECT domi.bootstrap_tenant('u2', '{"name": "kept"}');\n});
ok(waiting_on_bootstrap_lock(), 'session 2 waits for u2');
$s1->query_safe('ROLLBACK');
$out = $s2->query_until(qr/returned\n/, "\\echo returned\n");
my ($t2) = $out =~ /^($uuid)$/m;
ok(defined $t2 && $t2 ne $rolled_back, 'after the rollback, session 2 creates its own tenant');
is(tenants_of('u2'), '1:kept', 'and only that one exists');

# Other users do not wait for each other.
$s1->query_safe('BEGIN');
$s1->query_safe(qq{SELECT domi.bootstrap_tenant('u3', '{"name": "three"}')});
like($s2->query_safe(qq{SELECT domi.bootstrap_tenant('u4', '{"name": "four"}')}), qr/^$uuid$/,
	'a bootstrap for another user does not wait');
$s1->query_safe('COMMIT');

# REPEATABLE READ: session 2's snapshot predates session 1's commit, yet
# its call sees the membership (a fresh snapshot after the lock) and
# creates no second tenant.  Through the index, and through the general scan.
foreach my $memberships ('app.memberships', 'app.memberships_v2')
{
	$node->safe_psql('postgres', "SELECT domi.configure_tenancy('$memberships', tenants => 'app.tenants')");
	my $user = "u5 in $memberships";
	$s2->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
	$s2->query_safe('SELECT count(*) FROM app.invoices');
	my $t5 = $s1->query_safe(qq{SELECT domi.bootstrap_tenant('$user', '{"name": "five"}')});
	is($s2->query_safe(qq{SELECT domi.bootstrap_tenant('$user', '{"name": "five again"}')}), $t5,
		"under REPEATABLE READ a later call returns the tenant committed after its snapshot ($memberships)");
	$s2->query_safe('COMMIT');
	is($node->safe_psql('postgres', "SELECT count(*) FROM $memberships WHERE user_id = '$user'"), '1',
		"one membership ($memberships)");
}
$node->safe_psql('postgres', "SELECT domi.configure_tenancy('app.memberships', tenants => 'app.tenants')");

# A user column with a case-insensitive (nondeterministic) collation:
# 'Carl' and 'CARL' are one user to its "=", so their calls wait for each
# other too, and make one tenant.
$node->safe_psql('postgres', q{
	CREATE COLLATION app.case_insensitive (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
	SET domi.rls_guard = off;
	CREATE TABLE app.memberships_ci (user_id text COLLATE app.case_insensitive NOT NULL,
		tenant_id uuid NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
	SELECT domi.enable_tenant_rls('app.memberships_ci');
	SELECT domi.configure_tenancy('app.memberships_ci', tenants => 'app.tenants');
});
$s1->query_safe('BEGIN');
my $t6 = $s1->query_safe(qq{SELECT domi.bootstrap_tenant('Carl', '{"name": "six"}')});
$s2->query_until(qr/calling/, qq{\\echo calling\nSELECT domi.bootstrap_tenant('CARL', '{"name": "six again"}');\n});
ok(waiting_on_bootstrap_lock(), 'a case-insensitive user column: CARL waits for Carl');
$s1->query_safe('COMMIT');
$out = $s2->query_until(qr/returned\n/, "\\echo returned\n");
like($out, qr/^\Q$t6\E$/m, 'and gets Carl\'s tenant');
is($node->safe_psql('postgres', 'SELECT count(*) FROM app.memberships_ci'), '1', 'one membership');
$node->safe_psql('postgres', "SELECT domi.configure_tenancy('app.memberships', tenants => 'app.tenants')");

# A session that has built its plans sees a new configuration at its next call.
is($s1->query_safe("SELECT domi.user_tenant('alice')"), $a, 'session 1 looks alice up (plans kept)');
$node->safe_psql('postgres', "SELECT domi.configure_tenancy('app.memberships_v2')");
is($s1->query_safe("SELECT domi.user_tenant('alice')"), $b,
	'after another session reconfigures, session 1 reads the new table');
$node->safe_psql('postgres', "SELECT domi.configure_tenancy('app.memberships', tenants => 'app.tenants')");
is($s1->query_safe("SELECT domi.user_tenant('alice')"), $a, 'and the old one again when configured back');
$node->safe_psql('postgres', 'UPDATE domi.tenancy_config SET memberships = \'app.memberships_v2\'');
is($s1->query_safe("SELECT domi.user_tenant('alice')"), $b, 'a hand-written UPDATE of the row reaches it too');
$node->safe_psql('postgres', "SELECT domi.configure_tenancy('app.memberships', tenants => 'app.tenants')");

# Two application sessions enter different tenants at once.
$s1->query_safe("BEGIN; SELECT domi.enter_tenant('alice')");
$s2->query_safe("BEGIN; SELECT domi.enter_tenant('bob')");
is($s1->query_safe('SELECT string_agg(id::text, \',\') FROM app.invoices'), '1', 'session 1 sees tenant A\'s invoices');
is($s2->query_safe('SELECT string_agg(id::text, \',\') FROM app.invoices'), '2', 'session 2 sees tenant B\'s invoices');
$s1->query_safe('COMMIT');
$s2->query_safe('COMMIT');
is($s1->query_safe("SELECT coalesce(domi.current_tenant()::text, 'none')"), 'none',
	'the entered tenant ends with the transaction');

$s1->quit;
$s2->quit;
done_testing();
