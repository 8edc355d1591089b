# The keyring's root key across server restarts: no key, a missing,
# too-open or malformed file, a key command that works and one that fails,
# the wrong root key, root key rotation with domi.previous_root_key_file and
# domi.rewrap_tenant_keys(), settings that show paths only, and a server
# without preloading.  The server always starts; the keyring says what to
# configure.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DomiKeyring;

my $node = PostgreSQL::Test::Cluster->new('rootkey');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'domi'");
my $dir = $node->basedir;
my $conf = $node->data_dir . '/domi_keyring.conf';
$node->append_conf('postgresql.conf', "include_if_exists = 'domi_keyring.conf'");

my $tenant = '11111111-1111-4111-8111-111111111111';
my $other = '22222222-2222-4222-8222-222222222222';

# Restart with exactly these keyring settings.
sub restart_with
{
	my (@lines) = @_;
	write_key_file($conf, join('', map { "$_\n" } @lines));
	$node->restart;
}

sub status
{
	my ($columns) = @_;
	return $node->safe_psql('postgres', "SELECT $columns FROM domi.keyring_status()");
}

# 1. No key configured: the server starts, the keyring says what to set.
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION domi');
my $err = psql_error($node, 'postgres', "SELECT domi.encrypt('x', '$tenant')");
like($err, qr/55000: root key is not loaded/, 'no key: keyring functions fail with 55000');
like($err, qr/neither domi\.root_key_file nor domi\.root_key_command is set/, 'the detail says nothing is configured');
like($err, qr/HINT:  Set domi\.root_key_file/, 'the hint says what to set');
is(status('root_key_loaded, root_key_fingerprint IS NULL'), 'f|t', 'keyring_status: no key, no fingerprint');
ok($node->log_contains('domi keyring: no root key loaded'), 'the server log says no root key was loaded');

# 2. A file that does not exist.
restart_with("domi.root_key_file = '$dir/missing.key'");
$err = psql_error($node, 'postgres', "SELECT domi.decrypt('\\x00', '$tenant')");
like($err, qr/root key is not loaded.*could not open root key file ".*missing\.key": No such file/s,
	'a missing file is named in the error');

# 3. A file others can read is refused, as PostgreSQL refuses such an SSL key.
my $key_a = random_key_hex();
write_key_file("$dir/open.key", $key_a, 0644);
restart_with("domi.root_key_file = '$dir/open.key'");
like(psql_error($node, 'postgres', "SELECT domi.encrypt('x', '$tenant')"),
	qr/must be owned by the server's user with mode 0600 or less/, 'a key file readable by others is refused');

# 4. Malformed keys: too short, not hex, too long, and a key followed by
# whitespace and then more text past what the server reads of a key file.
for my $case ([ 'short', substr($key_a, 0, 63) ], [ 'not hex', 'zz' . substr($key_a, 2) ],
	[ 'long', $key_a . 'ab' ], [ 'trailing text', $key_a . (' ' x 300) . 'more' ])
{
	my ($what, $content) = @$case;
	write_key_file("$dir/bad.key", $content);
	restart_with("domi.root_key_file = '$dir/bad.key'");
	my $e = psql_error($node, 'postgres', "SELECT domi.encrypt('x', '$tenant')");
	like($e, qr/does not hold a root key of 64 hex characters/, "a $what key is refused");
	unlike($e, qr/\Q$content\E|\Q$key_a\E/i, "and the error does not quote the $what file");
}

# 5. A good key, with trailing whitespace (ignored): values go in.
write_key_file("$dir/a.key", "$key_a \n\n");
restart_with("domi.root_key_file = '$dir/a.key'");
is(status('root_key_loaded'), 't', 'a well-formed key file loads');
ok($node->log_contains('domi keyring: root key loaded'), 'the server log says so');
my $fingerprint_a = status('root_key_fingerprint');
like($fingerprint_a, qr/^[0-9a-f]{32}$/, 'its fingerprint is 16 bytes of hex');
isnt($fingerprint_a, $key_a, 'and is not the key');
$node->safe_psql('postgres', qq{
	CREATE TABLE vault (id int, tenant_id uuid, box bytea);
	INSERT INTO vault SELECT g, CASE WHEN g % 2 = 0 THEN '$tenant'::uuid ELSE '$other'::uuid END,
		domi.encrypt_text('secret ' || g, CASE WHEN g % 2 = 0 THEN '$tenant'::uuid ELSE '$other'::uuid END)
	FROM generate_series(1, 20) g;
});
my $check = "SELECT count(*) FROM vault WHERE domi.decrypt_text(box, tenant_id) = 'secret ' || id";
is($node->safe_psql('postgres', $check), '20', 'values sealed under tenant keys open');

# Settings show the path, never the key; ordinary roles do not see them.
is($node->safe_psql('postgres', "SELECT setting FROM pg_settings WHERE name = 'domi.root_key_file'"),
	"$dir/a.key", 'pg_settings shows the path of the key file');
$node->safe_psql('postgres', 'CREATE ROLE plain LOGIN');
like(psql_error($node, 'postgres', 'SHOW domi.root_key_file', extra_params => [ '-U', 'plain' ]),
	qr/42501/, 'an ordinary role cannot SHOW the setting');
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_settings WHERE name LIKE 'domi.root%'",
		extra_params => [ '-U', 'plain' ]),
	'0', 'nor see it in pg_settings');

# After a plain restart everything still opens (keys are stored, wrapped).
$node->restart;
is($node->safe_psql('postgres', $check), '20', 'after a restart with the same key, values open');

# 6. A key command instead of a file: the same key, the same fingerprint.
restart_with("domi.root_key_command = 'cat $dir/a.key'");
is(status('root_key_loaded, root_key_fingerprint'), "t|$fingerprint_a",
	'domi.root_key_command loads the same key');
is($node->safe_psql('postgres', $check), '20', 'and values open');

# 7. A command that fails, and one that prints garbage.
restart_with("domi.root_key_command = 'exit 3'");
like(psql_error($node, 'postgres', $check), qr/domi\.root_key_command failed: child process exited with exit code 3/,
	'a failing key command is reported with its exit code');
restart_with("domi.root_key_command = 'echo not-a-key'");
like(psql_error($node, 'postgres', $check), qr/the output of domi\.root_key_command does not hold a root key/,
	'a command printing something else is refused');

# 8. Both a file and a command: ambiguous, refused.
restart_with("domi.root_key_file = '$dir/a.key'", "domi.root_key_command = 'cat $dir/a.key'");
like(psql_error($node, 'postgres', $check), qr/both domi\.root_key_file and domi\.root_key_command are set/,
	'a file and a command at once are refused');

# 9. The wrong root key: named as such, not as "authentication failed".
my $key_b = random_key_hex();
write_key_file("$dir/b.key", $key_b);
restart_with("domi.root_key_file = '$dir/b.key'");
$err = psql_error($node, 'postgres', $check);
like($err, qr/55000: root key does not match the one that wrapped the tenant keys/,
	'a different root key is reported as not matching');
like($err, qr/fingerprint \Q$fingerprint_a\E/, 'the detail names the fingerprint that wrapped the keys');
unlike($err, qr/authentication/, 'not as failed authentication');
like(psql_error($node, 'postgres', "SELECT domi.encrypt('x', '33333333-3333-4333-8333-333333333333')"),
	qr/root key does not match/, 'no new tenant key is made under the wrong root key either');
is(status('keys_under_unknown_root'), '2', 'keyring_status counts the keys under an unknown root key');

# 10. Root key rotation: the new key, with the old one as previous.
restart_with("domi.root_key_file = '$dir/b.key'", "domi.previous_root_key_file = '$dir/a.key'");
my $fingerprint_b = status('root_key_fingerprint');
is(status('previous_root_key_fingerprint, keys_under_previous_root, keys_under_unknown_root'),
	"$fingerprint_a|2|0", 'with the previous root key set, its keys are known');
is($node->safe_psql('postgres', $check), '20', 'and values open before re-wrapping');
my $box_before = $node->safe_psql('postgres', 'SELECT md5(string_agg(box::text, \',\' ORDER BY id)) FROM vault');
is($node->safe_psql('postgres', 'SELECT domi.rewrap_tenant_keys()'), '2', 'rewrap_tenant_keys re-wraps both keys');
is($node->safe_psql('postgres', 'SELECT domi.rewrap_tenant_keys()'), '0', 'a second rewrap has nothing to do');
is($node->safe_psql('postgres', 'SELECT md5(string_agg(box::text, \',\' ORDER BY id)) FROM vault'),
	$box_before, 'no stored value was touched');
is(status('keys_under_previous_root'), '0', 'nothing is left under the previous root key');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM domi.tenant_keys WHERE root_fingerprint = decode('$fingerprint_b', 'hex')"),
	'2', 'every key now carries the new fingerprint');

# Without the previous key now, and with the old one alone: which works.
restart_with("domi.root_key_file = '$dir/b.key'");
is($node->safe_psql('postgres', $check), '20', 'after rewrap the new root key alone opens everything');
restart_with("domi.root_key_file = '$dir/a.key'");
like(psql_error($node, 'postgres', $check), qr/root key does not match/, 'and the old one no longer does');

# A previous key file that is missing is reported, and the current key works.
restart_with("domi.root_key_file = '$dir/b.key'", "domi.previous_root_key_file = '$dir/gone.key'");
is(status('previous_root_key_loaded'), 'f', 'a missing previous key is not loaded');
like(status('previous_root_key_problem'), qr/could not open root key file/, 'and keyring_status says why');
is($node->safe_psql('postgres', $check), '20', 'and the current key still works');

# Nothing of either key reached the server log.
my $log = slurp_file($node->logfile);
for my $key ($key_a, $key_b)
{
	unlike($log, qr/\Q$key\E/i, 'no root key in hex in the server log');
	my $raw = pack('H*', $key);
	ok(index($log, $raw) < 0, 'no root key in raw bytes in the server log');
}
$node->stop;

# 11. Without preloading: the same error, with a hint to preload.
my $plain = PostgreSQL::Test::Cluster->new('no_preload');
$plain->init;
$plain->start;
$plain->safe_psql('postgres', 'CREATE EXTENSION domi');
$err = psql_error($plain, 'postgres', "SELECT domi.encrypt('x', '$tenant')");
like($err, qr/55000: root key is not loaded/, 'not preloaded: keyring functions fail with 55000');
like($err, qr/HINT:  Add domi to shared_preload_libraries/, 'with a hint to preload domi');
is($plain->safe_psql('postgres', 'SELECT root_key_loaded, root_key_problem FROM domi.keyring_status()'),
	'f|domi is not in shared_preload_libraries', 'keyring_status says why');
$plain->stop;

done_testing();
