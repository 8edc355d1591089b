# The DDL ledger through pg_dump and restore (plain and custom format): its
# rows and the record of migration transactions are extension configuration,
# so they come back with the same ids, still in-chain or not, still adopted
# or not; the restore's own DDL is recorded next to them without colliding.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('ledger_dump');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'domi'");
$node->start;

my $tmp = PostgreSQL::Test::Utils::tempdir;
my $listing = q{SELECT string_agg(format('%s %s %s %s', id, command_tag, in_chain, adopt_note), '; ' ORDER BY at)
	FROM domi.ddl_ledger WHERE at < (SELECT min(at) FROM domi.ddl_ledger WHERE command_tag = 'COMMENT')};

$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql('src', q{
	CREATE EXTENSION domi;
	CREATE SCHEMA drizzle;
	CREATE TABLE drizzle.__drizzle_migrations (id serial PRIMARY KEY, hash text NOT NULL, created_at bigint);
	BEGIN;
	CREATE TABLE users (id serial PRIMARY KEY, name text);
	INSERT INTO drizzle.__drizzle_migrations (hash, created_at) VALUES ('h0', 1);
	COMMIT;
	CREATE INDEX users_name ON users (name);
	CREATE FUNCTION hotfix() RETURNS int LANGUAGE sql AS 'SELECT 1';
	SELECT domi.adopt_ddl(id, 'in 0001') FROM domi.ddl_ledger WHERE command_tag = 'CREATE FUNCTION';
	-- marks the end of the rows to compare
	COMMENT ON TABLE users IS 'people';
});
my $expected = $node->safe_psql('src', $listing);
like($expected, qr/^\S+ CREATE SCHEMA t ; \S+ CREATE TABLE t ; \S+ CREATE TABLE t ; \S+ CREATE INDEX f ; \S+ CREATE FUNCTION f in 0001$/,
	'the source ledger: migrator bookkeeping and a migration in-chain, a hand index out, a function adopted');

my $plain = "$tmp/src.sql";
my $custom = "$tmp/src.dump";
command_ok([ 'pg_dump', '-d', $node->connstr('src'), '-f', $plain ], 'pg_dump, plain format');
command_ok([ 'pg_dump', '-Fc', '-d', $node->connstr('src'), '-f', $custom ], 'pg_dump, custom format');

sub check_restored
{
	my ($db, $how) = @_;
	is($node->safe_psql($db, $listing), $expected, "$how: the same rows, ids, in-chain flags and adoptions");
	cmp_ok($node->safe_psql($db, q{SELECT count(*) FROM domi.ddl_ledger
		WHERE statement LIKE 'CREATE TABLE public.users%' OR statement LIKE 'CREATE TABLE drizzle.__drizzle_migrations%'}),
		'>=', 2, "$how: the restore's own DDL is recorded too");
	$node->safe_psql($db, 'BEGIN; CREATE TABLE later (x int); INSERT INTO drizzle.__drizzle_migrations (hash, created_at) VALUES ($$h1$$, 2); COMMIT;');
	is($node->safe_psql($db, q{SELECT in_chain FROM domi.ddl_ledger WHERE statement LIKE 'CREATE TABLE later%'}),
		't', "$how: the restored migrations table is tracked again (its trigger came with it)");
}

$node->safe_psql('postgres', 'CREATE DATABASE dst_plain');
command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('dst_plain'), '-f', $plain ],
	'the plain dump restores without error');
check_restored('dst_plain', 'plain dump');

$node->safe_psql('postgres', 'CREATE DATABASE dst_custom');
command_ok([ 'pg_restore', '--exit-on-error', '-d', $node->connstr('dst_custom'), $custom ],
	'the custom dump restores with pg_restore');
check_restored('dst_custom', 'pg_restore');

# An update from 0.2.0 tracks the migrations table that exists already.
$node->safe_psql('postgres', 'CREATE DATABASE upgraded');
$node->safe_psql('upgraded', q{
	CREATE EXTENSION domi VERSION '0.2.0';
	CREATE SCHEMA drizzle;
	CREATE TABLE drizzle.__drizzle_migrations (id serial PRIMARY KEY, hash text NOT NULL, created_at bigint);
	ALTER EXTENSION domi UPDATE;
	BEGIN;
	CREATE TABLE after_update (x int);
	INSERT INTO drizzle.__drizzle_migrations (hash, created_at) VALUES ('h9', 9);
	COMMIT;
});
is($node->safe_psql('upgraded', q{SELECT in_chain, migration FROM domi.ddl_ledger WHERE statement LIKE 'CREATE TABLE after_update%'}),
	't|h9', 'after ALTER EXTENSION UPDATE the existing migrations table is tracked');

$node->stop;
done_testing();
