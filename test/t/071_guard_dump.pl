# The drop guard's registry through pg_dump and restore (plain and custom
# format): protections come back on the restored tables' new OIDs, with the
# type of an extension's column, and are enforced there.  pg_restore --clean
# over protected columns is refused like any other client.  DROP OWNED BY the
# role that created domi would drop the guard itself: refused.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('guard_dump');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'domi'");
$node->start;

my $tmp = PostgreSQL::Test::Utils::tempdir;
my $listing = q{SELECT string_agg(format('%s.%s.%s %s', schema_name, table_name, column_name, column_type), '; '
	ORDER BY schema_name, table_name, column_name) FROM domi.protected_columns};

$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql('src', q{
	CREATE EXTENSION domi;
	CREATE EXTENSION citext;
	CREATE SCHEMA app;
	-- OIDs that will differ in the restored database.
	CREATE TABLE app.filler (a int);
	DROP TABLE app.filler;
	CREATE TABLE app.items (id int PRIMARY KEY, embedding public.citext, title varchar(30));
	CREATE TABLE app."Odd.Name" ("Mixed Col" text);
	INSERT INTO app.items VALUES (1, 'Alpha', 'first');
	SELECT domi.protect_column('app.items', 'embedding');
	SELECT domi.protect_column('app.items', 'title');
	SELECT domi.protect_column('app."Odd.Name"', 'Mixed Col');
});
my $expected = $node->safe_psql('src', $listing);
is($expected,
	'app.Odd.Name.Mixed Col text; app.items.embedding citext; app.items.title character varying(30)',
	'three protected columns in the source database');

my $plain = "$tmp/src.sql";
my $custom = "$tmp/src.dump";
command_ok([ 'pg_dump', '-d', $node->connstr('src'), '-f', $plain ], 'pg_dump, plain format');
command_ok([ 'pg_dump', '-Fc', '-d', $node->connstr('src'), '-f', $custom ], 'pg_dump, custom format');

sub check_restored
{
	my ($db, $how) = @_;
	is($node->safe_psql($db, $listing), $expected, "$how: the protections are back");
	is($node->safe_psql($db, q{
		SELECT count(*) FROM domi._protected_columns r
		JOIN pg_attribute a ON a.attrelid = r.tbl AND a.attname = r.col AND a.atttypid = r.typ}),
		'3', "$how: each on the restored table's OID, with the column's restored type");
	my ($ret, $stdout, $stderr) = $node->psql($db, 'ALTER TABLE app.items DROP COLUMN embedding');
	like($stderr, qr/cannot drop protected column "embedding" of table "app.items"/,
		"$how: and the guard enforces them");
	($ret, $stdout, $stderr) = $node->psql($db, 'DROP EXTENSION citext CASCADE');
	like($stderr, qr/cannot drop protected column "embedding"/,
		"$how: also against dropping the type's extension");
	is($node->safe_psql($db, 'SELECT embedding FROM app.items'), 'Alpha', "$how: the data is there");
	is($node->safe_psql($db, q{SELECT string_agg(evtname || '=' || evtenabled::text, ',' ORDER BY evtname)
		FROM pg_event_trigger WHERE evtname LIKE 'domi_drop_guard%'}),
		'domi_drop_guard_alter=A,domi_drop_guard_drop=A,domi_drop_guard_self=A',
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

# pg_restore --clean drops the tables first: that is a drop like any other.
my ($stdout, $stderr);
IPC::Run::run([ 'pg_restore', '--clean', '--if-exists', '--exit-on-error', '-d', $node->connstr('dst_custom'), $custom ],
	'>', \$stdout, '2>', \$stderr);
like($stderr, qr/cannot drop protected column/, 'pg_restore --clean over protected columns is refused');
is($node->safe_psql('dst_custom', 'SELECT count(*) FROM app.items'), '1', 'and the table is still there');

# The extension's owner: DROP OWNED BY it would drop domi and every protection.
$node->safe_psql('postgres', q{
	CREATE ROLE ext_owner LOGIN SUPERUSER;
	CREATE DATABASE owned OWNER ext_owner;
});
$node->safe_psql('owned', q{
	CREATE EXTENSION domi;
	CREATE TABLE keep (id int, secret text);
	SELECT domi.protect_column('keep', 'secret');
}, extra_params => [ '-U', 'ext_owner' ]);
my $ret;
($ret, $stdout, $stderr) = $node->psql('owned', 'DROP OWNED BY ext_owner');
like($stderr, qr/cannot drop extension "domi" while column "secret" of table "public.keep" is protected/,
	'DROP OWNED BY the role that created domi is refused');
is($node->safe_psql('owned', "SELECT count(*) FROM pg_extension WHERE extname = 'domi'"), '1',
	'domi is still installed');
($ret, $stdout, $stderr) = $node->psql('owned', q{
	BEGIN;
	SET LOCAL domi.allow_drop = 'public.keep.secret';
	DROP OWNED BY ext_owner;
	COMMIT;
});
is($ret, 0, 'with the protected column named in SET LOCAL domi.allow_drop it goes through');
is($node->safe_psql('owned', "SELECT count(*) FROM pg_extension WHERE extname = 'domi'"), '0',
	'and domi is gone');

# A schema domi made by another role before CREATE EXTENSION (domi then lives
# in it): DROP OWNED BY that role ... CASCADE would drop the schema and domi.
$node->safe_psql('postgres', q{
	CREATE ROLE schema_owner;
	CREATE DATABASE preschema;
});
$node->safe_psql('preschema', q{
	CREATE SCHEMA domi AUTHORIZATION schema_owner;
	CREATE EXTENSION domi;
	CREATE TABLE keep (id int, secret text);
	SELECT domi.protect_column('keep', 'secret');
});
($ret, $stdout, $stderr) = $node->psql('preschema', 'DROP OWNED BY schema_owner CASCADE');
like($stderr, qr/cannot drop extension "domi" while column "secret" of table "public.keep" is protected/,
	'DROP OWNED BY ... CASCADE of the role that owns the schema domi is refused');
($ret, $stdout, $stderr) = $node->psql('preschema', 'DROP OWNED BY schema_owner');
like($stderr, qr/cannot drop schema domi because other objects depend on it/,
	'without CASCADE PostgreSQL refuses by itself, and the guard leaves that error alone');
is($node->safe_psql('preschema', "SELECT count(*) FROM pg_extension WHERE extname = 'domi'"), '1',
	'domi is still installed');

$node->stop;
done_testing();
