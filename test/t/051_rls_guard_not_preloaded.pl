# The RLS guard when domi is not in shared_preload_libraries.  Each psql call
# is a new session in which nothing has loaded domi's library yet, so the
# guard's event trigger is the first of domi's code to run: it must load the
# library (which defines domi.rls_guard and domi.tenant_column) before it
# reads them.  Version 0.1.0 did not, and every CREATE TABLE of such a session
# failed; the update to 0.2.0 fixes it.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('rls_lazy');
$node->init;
$node->start;

# 0.1.0 shows the failure this test is about.
$node->safe_psql('postgres', q{CREATE EXTENSION domi VERSION '0.1.0'});
my ($ret, $stdout, $stderr) = $node->psql('postgres', q{CREATE TABLE plain_010 (id int)});
like($stderr, qr/unrecognized configuration parameter "domi.rls_guard"/,
	'0.1.0: a CREATE TABLE in a fresh session fails when domi is not preloaded');

$node->safe_psql('postgres', q{ALTER EXTENSION domi UPDATE});
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_settings WHERE name = 'domi.rls_guard'}), '0',
	'a new session has not loaded domi');

($ret, $stdout, $stderr) = $node->psql('postgres', q{CREATE TABLE plain (id int)});
is($ret, 0, 'a table without a tenant column is created');
is($stderr, '', 'without a word');

($ret, $stdout, $stderr) = $node->psql('postgres', q{CREATE TABLE invoices (id int, tenant_id uuid)});
is($ret, 0, 'a tenant table is created under the default mode');
like($stderr, qr/table "public.invoices" has a tenant column "tenant_id" but no tenant row level security/,
	'and the guard warns');

# A value set before the library is loaded waits in a placeholder; loading
# the library checks it and the guard uses it.
($ret, $stdout, $stderr) = $node->psql('postgres', q{
	SET domi.rls_guard = 'error';
	CREATE TABLE refunds (id int, tenant_id uuid);
});
like($stderr, qr/ERROR:  table "public.refunds" has a tenant column/, 'a session set to error refuses the table');
is($node->safe_psql('postgres', q{SELECT to_regclass('refunds') IS NULL}), 't', 'and it does not exist');

($ret, $stdout, $stderr) = $node->psql('postgres', q{
	SET domi.tenant_column = 'org_id';
	SET domi.rls_guard = 'enable';
	CREATE TABLE events (id int, org_id uuid);
});
is($ret, 0, 'a session set to enable creates the table');
is($node->safe_psql('postgres', q{SELECT polname FROM pg_policy WHERE polrelid = 'events'::regclass}),
	'domi_tenant_isolation', 'with domi\'s policy on the configured column');

($ret, $stdout, $stderr) = $node->psql('postgres', q{
	SET domi.rls_guard = 'sometimes';
	CREATE TABLE nope (id int, tenant_id uuid);
});
like($stderr, qr/invalid value for parameter "domi.rls_guard": "sometimes"/,
	'an invalid value set before the library is loaded is reported when it loads');

$node->stop;
done_testing();
