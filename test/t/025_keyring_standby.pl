# The keyring on a streaming standby with the same root key: it decrypts,
# and it encrypts for tenants that have a key (making a key is a write, so
# a new tenant is refused there).  A rotation and a retirement on the
# primary reach a standby session's key cache through the replayed
# invalidations.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DomiKeyring;

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
my $keyfile = write_key_file($primary->basedir . '/root.key', random_key_hex());
$primary->append_conf('postgresql.conf', "shared_preload_libraries = 'domi'\ndomi.root_key_file = '$keyfile'\n");
$primary->start;
$primary->safe_psql('postgres', 'CREATE EXTENSION domi');

my $t = '11111111-1111-4111-8111-111111111111';
my $box1 = $primary->safe_psql('postgres', "SELECT domi.encrypt_text('one', '$t')");

$primary->backup('backup');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'backup', has_streaming => 1);
$standby->start;
$primary->wait_for_catchup($standby);

is($standby->safe_psql('postgres', "SELECT domi.decrypt_text('$box1', '$t')"), 'one',
	'the standby opens what the primary sealed');
my $on_standby = $standby->safe_psql('postgres', "SELECT domi.encrypt_text('two', '$t')");
is($primary->safe_psql('postgres', "SELECT domi.decrypt_text('$on_standby', '$t')"), 'two',
	'it seals for a tenant that has a key, and the primary opens that');
my ($ret, $out, $err) = $standby->psql('postgres',
	"\\set VERBOSITY verbose\nSELECT domi.encrypt('x', '22222222-2222-4222-8222-222222222222')");
like($err, qr/25006/, 'a new tenant is refused on the standby (its first key would be a write)');

# A standby session caches the key, then the primary rotates and retires it.
my $s = $standby->background_psql('postgres', on_error_stop => 0);
is($s->query_safe("SELECT domi.decrypt_text('$box1', '$t')"), 'one', 'a standby session caches the key');
$primary->safe_psql('postgres', "SELECT domi.rotate_tenant_key('$t')");
my $box2 = $primary->safe_psql('postgres', "SELECT domi.encrypt_text('three', '$t')");
$primary->safe_psql('postgres', "SELECT domi.retire_tenant_key('$t', 1)");
$primary->wait_for_catchup($standby);
is($s->query_safe("SELECT domi.decrypt_text('$box2', '$t')"), 'three',
	'the standby session opens a value under the new version');
$s->query("SELECT domi.decrypt_text('$box1', '$t')");
like($s->{stderr}, qr/encrypted value is under a retired key/,
	'and has noticed the retirement replayed from the primary');
$s->quit;

$standby->stop;
$primary->stop;
done_testing();
