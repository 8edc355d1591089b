# The drop guard and the keyring: dropping domi would drop domi.tenant_keys
# and leave every encrypted value unreadable.  Refused for every way of
# asking (another connection's role, a setting from ALTER ROLE, replica
# mode); the override is logged with the role; the dump the hint suggests
# really keeps the keys, so a value opens again after the restore.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DomiKeyring;

my $node = PostgreSQL::Test::Cluster->new('guard_keyring');
$node->init;
my $file = write_key_file($node->basedir . '/root.key', random_key_hex());
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'domi'\ndomi.root_key_file = '$file'\n");
$node->start;

my $tenant = '77777777-7777-4777-8777-777777777777';
$node->safe_psql('postgres', q{
	CREATE ROLE migrator LOGIN SUPERUSER;
	CREATE DATABASE app OWNER migrator;
});
$node->safe_psql('app', qq{
	CREATE EXTENSION domi;
	CREATE TABLE notes (id int, body bytea);
	INSERT INTO notes VALUES (1, domi.encrypt_text('kept', '$tenant'));
}, extra_params => [ '-U', 'migrator' ]);
my $opens = "SELECT domi.decrypt_text(body, '$tenant') FROM notes";
my $installed = "SELECT count(*) FROM pg_extension WHERE extname = 'domi'";

my $err = psql_error($node, 'app', 'DROP EXTENSION domi CASCADE', extra_params => [ '-U', 'migrator' ]);
like($err, qr/ERROR:  2BP01: cannot drop extension "domi": it would destroy 1 tenant key and make the data encrypted under it unreadable/,
	'DROP EXTENSION domi CASCADE with a live key is refused with 2BP01');
like($err, qr/HINT:  Dump them first .*domi\.destroy_tenant_keys\(\).*SET LOCAL domi\.allow_drop = 'domi\.tenant_keys'/,
	'the hint names the dump, destroy_tenant_keys() and the override');

# A value given by ALTER ROLE ... SET is a session value: it does not count.
$node->safe_psql('postgres', q{ALTER ROLE migrator SET domi.allow_drop = 'domi.tenant_keys'});
$err = psql_error($node, 'app', 'DROP SCHEMA domi CASCADE', extra_params => [ '-U', 'migrator' ]);
like($err, qr/not with SET LOCAL in this transaction/, 'a role setting does not count, and the error says so');
$node->safe_psql('postgres', 'ALTER ROLE migrator RESET domi.allow_drop');

# Replica mode does not switch the guard off.
$err = psql_error($node, 'app', "SET session_replication_role = replica;\nDROP EXTENSION domi");
like($err, qr/2BP01: cannot drop extension "domi": it would destroy 1 tenant key/,
	'refused under session_replication_role = replica too');
is($node->safe_psql('app', $installed), '1', 'domi is still installed');
is($node->safe_psql('app', $opens), 'kept', 'and the value still opens');

# Dump first, as the hint says; then drop on purpose, logged.
my $dump = $node->basedir . '/app.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr('app') ], 'pg_dump of the database');
my $offset = -s $node->logfile;
my ($ret, $stdout, $stderr) = $node->psql('app', q{
	BEGIN;
	SET LOCAL domi.allow_drop = 'domi.tenant_keys';
	DROP EXTENSION domi CASCADE;
	COMMIT;
}, extra_params => [ '-U', 'migrator' ]);
is($ret, 0, 'with SET LOCAL domi.allow_drop = domi.tenant_keys the drop goes through');
like($stderr, qr/NOTICE:  1 tenant key destroyed with extension "domi" under domi.allow_drop/, 'the client is told');
is($node->safe_psql('app', $installed), '0', 'and domi is gone');
my $log = slurp_file($node->logfile, $offset);
like($log, qr/LOG:  1 tenant key destroyed with extension "domi" under domi.allow_drop\n.*DETAIL:  Role "migrator" ran DROP EXTENSION with SET LOCAL domi.allow_drop naming domi.tenant_keys\./,
	'the server log names the role and the statement');

$node->safe_psql('postgres', 'CREATE DATABASE restored');
$node->command_ok([ 'pg_restore', '--exit-on-error', '-d', $node->connstr('restored'), $dump ],
	'the dump restores');
is($node->safe_psql('restored', $opens), 'kept', 'and the value opens again under the restored key');

$node->stop;
done_testing();
