# pg_dump and restore: domi.tenant_keys is an extension configuration table,
# so a dump carries the wrapped tenant keys.  Restored onto a server with the
# same root key, everything decrypts; onto one with another root key, the
# keyring says the root key does not match.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DomiKeyring;

my $key_a = random_key_hex();

sub keyring_node
{
	my ($name, $key) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	my $file = write_key_file($node->basedir . '/root.key', $key);
	$node->append_conf('postgresql.conf', "shared_preload_libraries = 'domi'\ndomi.root_key_file = '$file'\n");
	$node->start;
	return $node;
}

my $t1 = '11111111-1111-4111-8111-111111111111';
my $t2 = '22222222-2222-4222-8222-222222222222';
my $t3 = '33333333-3333-4333-8333-333333333333';

my $source = keyring_node('source', $key_a);
$source->safe_psql('postgres', qq{
	CREATE EXTENSION domi;
	CREATE TABLE notes (id int PRIMARY KEY, tenant_id uuid NOT NULL, body bytea);
	INSERT INTO notes SELECT g, (ARRAY['$t1', '$t2', '$t3']::uuid[])[g % 3 + 1],
		domi.encrypt_text('note ' || g, (ARRAY['$t1', '$t2', '$t3']::uuid[])[g % 3 + 1])
	FROM generate_series(1, 300) g;
	-- Tenant 1 has two versions in use, tenant 3 is shredded.
	SELECT domi.rotate_tenant_key('$t1');
	UPDATE notes SET body = domi.encrypt_text('note ' || id, tenant_id) WHERE tenant_id = '$t1' AND id % 2 = 0;
	SELECT domi.destroy_tenant_keys('$t3');
});
my $opens = "SELECT count(*) FROM notes WHERE tenant_id <> '$t3' AND domi.decrypt_text(body, tenant_id) = 'note ' || id";
is($source->safe_psql('postgres', $opens), '200', 'source: the values of the live tenants open');
my $keys_sql = 'SELECT tenant, version, state, encode(wrapped, \'hex\'), encode(root_fingerprint, \'hex\'), created_at FROM domi.tenant_keys ORDER BY 1, 2';
my $keys_before = $source->safe_psql('postgres', $keys_sql);

my $dump = $source->basedir . '/source.dump';
$source->command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', $source->connstr('postgres') ],
	'pg_dump of a database with the keyring');

# Same root key: a full round trip.
my $same = keyring_node('same_root', $key_a);
$same->safe_psql('postgres', 'CREATE DATABASE restored');
$same->command_ok([ 'pg_restore', '--exit-on-error', '-d', $same->connstr('restored'), $dump ],
	'pg_restore onto a server with the same root key');
is($same->safe_psql('restored', $keys_sql), $keys_before, 'the tenant keys came across exactly, wrapped');
is($same->safe_psql('restored', $opens), '200', 'every value of the live tenants opens after the restore');
is($same->safe_psql('restored', "SELECT domi.decrypt_text(domi.encrypt_text('new', '$t2'), '$t2')"), 'new',
	'new values are sealed and opened under the restored keys');
is($same->safe_psql('restored', "SELECT version FROM domi.tenant_keys WHERE tenant = '$t1' AND state = 'active'"),
	'2', 'the active version is the one that was active');
my ($ret, $out, $err) = $same->psql('restored', "SELECT domi.decrypt_text(body, tenant_id) FROM notes WHERE tenant_id = '$t3' LIMIT 1");
like($err, qr/have been destroyed/, 'a shredded tenant stays shredded');
is($same->safe_psql('restored', 'SELECT keys_under_unknown_root FROM domi.keyring_status()'), '0',
	'keyring_status: every key is under this root key');

# Another root key: the keyring says so, instead of failing every value.
my $other = keyring_node('other_root', random_key_hex());
$other->safe_psql('postgres', 'CREATE DATABASE restored');
$other->command_ok([ 'pg_restore', '--exit-on-error', '-d', $other->connstr('restored'), $dump ],
	'pg_restore onto a server with another root key');
($ret, $out, $err) = $other->psql('restored', $opens);
like($err, qr/root key does not match the one that wrapped the tenant keys/,
	'there, decrypting says the root key does not match');
is($other->safe_psql('restored', 'SELECT keys_under_unknown_root FROM domi.keyring_status()'), '3',
	'and keyring_status counts the keys it cannot unwrap');

$source->stop;
$same->stop;
$other->stop;
done_testing();
