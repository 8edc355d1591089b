# The tenant lookup's configuration survives pg_dump and restore: the
# tables are stored by OID, dumped as schema-qualified names, and resolved
# to the restored tables (whose OIDs differ); the application role's
# EXECUTE grants come along, and the lookups work in the restored database.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('tenancy_dump');
$node->init;
$node->start;

my $a = 'aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa';
my $b = 'bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb';

$node->safe_psql('postgres', q{
	CREATE ROLE app_user LOGIN;
	CREATE DATABASE source;
	CREATE DATABASE restored;
});
$node->safe_psql('source', qq{
	CREATE EXTENSION domi;
	SET domi.rls_guard = off;
	CREATE SCHEMA "App Data";
	CREATE TABLE "App Data".orgs (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), name text);
	CREATE TABLE "App Data"."Members" ("User" text NOT NULL, org uuid NOT NULL REFERENCES "App Data".orgs,
		joined timestamptz NOT NULL DEFAULT now());
	SELECT domi.enable_tenant_rls('"App Data"."Members"', 'org');
	SELECT domi.enable_tenant_rls('"App Data".orgs', 'id');
	INSERT INTO "App Data".orgs VALUES ('$a', 'Acme'), ('$b', 'Globex');
	INSERT INTO "App Data"."Members" VALUES ('alice', '$b', '2024-02-01'), ('alice', '$a', '2024-01-01');
	SELECT domi.configure_tenancy('"App Data"."Members"', 'User', 'org', 'joined', '"App Data".orgs', 'id');
	GRANT USAGE ON SCHEMA "App Data" TO app_user;
	GRANT EXECUTE ON FUNCTION domi.user_tenant(text), domi.bootstrap_tenant(text, jsonb) TO app_user;
});
my $source_oid = $node->safe_psql('source', 'SELECT memberships::oid FROM domi.tenancy_config');

# The dump holds the row with the tables by name.
my $dumpfile = $node->basedir . '/source.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-d', $node->connstr('source'), '-f', $dumpfile ],
	'pg_dump of the source database');
my ($stdout, $stderr);
IPC::Run::run([ 'pg_restore', '-f', '-', $dumpfile ], '>', \$stdout, '2>', \$stderr);
like($stdout, qr/COPY domi\.tenancy_config .*\n.*"App Data"\."Members"\tUser\torg\tjoined\t"App Data"\.orgs\tid/,
	'the dump has the configuration row, tables as qualified names');

# Restore into a database where OIDs run differently.
$node->safe_psql('restored', 'CREATE TABLE filler1 (a int); CREATE TABLE filler2 (a int); CREATE TABLE filler3 (a int)');
$node->command_ok([ 'pg_restore', '--exit-on-error', '-d', $node->connstr('restored'), $dumpfile ],
	'pg_restore into another database');
is($node->safe_psql('restored', q{
	SELECT memberships::text || ' ' || tenants::text || ' ' || user_column || ' ' || order_column
	FROM domi.tenancy_config}),
	'"App Data"."Members" "App Data".orgs User joined', 'the restored row names the restored tables');
my $restored_oid = $node->safe_psql('restored', 'SELECT memberships::oid FROM domi.tenancy_config');
isnt($restored_oid, $source_oid, 'by their new OIDs');
is($node->safe_psql('restored', q{SELECT memberships::oid = '"App Data"."Members"'::regclass::oid FROM domi.tenancy_config}),
	't', 'which are the restored tables\' OIDs');
is($node->safe_psql('restored', "SELECT domi.user_tenant('alice')", extra_params => [ '-U', 'app_user' ]),
	$a, 'the application role\'s grant was restored and the lookup works');
my $carol = $node->safe_psql('restored', q{SELECT domi.bootstrap_tenant('carol', '{"name": "Carol"}')},
	extra_params => [ '-U', 'app_user' ]);
is($node->safe_psql('restored', qq{SELECT count(*) FROM "App Data"."Members" WHERE "User" = 'carol' AND org = '$carol'}),
	'1', 'and bootstrap_tenant writes into the restored tables');

done_testing();
