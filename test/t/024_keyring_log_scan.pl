# No key in any log line, setting, statistics or message.  Every keyring
# call, the failing ones too, runs with log_statement = 'all' and
# log_min_messages = debug5, with pg_stat_statements tracking nested
# statements (the keyring's own queries); root key rotation and a wrong
# root key included.  Then the server log, pg_settings, SHOW ALL,
# pg_stat_statements and everything the clients received are searched for
# every key: the root keys, their wrapping subkeys, every tenant key and the
# imported key, in lower- and upper-case hex, base64 and raw bytes, whole and
# in every 8-byte window.
#
# What makes this meaningful: the tenant keys never leave the server, so the
# test computes them itself, from the root keys it wrote and the wrapped keys
# in domi.tenant_keys, with a small independent C program
# (keyring_unwrap.c, written from the documented format).  Each key it finds
# is proven real by opening, with it, a box the server sealed under that
# version; and the root key fingerprint it computes must equal the one
# keyring_status() reports.  A control value planted in a statement must be
# found by the same search in the log and in pg_stat_statements, so a broken
# search cannot pass.  The imported key is passed the way the README says
# (in a session with log_statement off): what is checked is that nothing the
# keyring does afterwards ever shows it.
use strict;
use warnings;
use File::Basename;
use MIME::Base64;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DomiKeyring;

my $node = PostgreSQL::Test::Cluster->new('log_scan');
$node->init;
my $dir = $node->basedir;

# The helper, built from test/t/keyring_unwrap.c.
my $helper = "$dir/keyring_unwrap";
system('cc', '-O2', '-o', $helper, dirname(__FILE__) . '/keyring_unwrap.c', '-lsodium') == 0
  or die 'could not build keyring_unwrap';

sub helper
{
	my (@args) = @_;
	my $out = `$helper @args`;
	die "keyring_unwrap @args[0 .. 1] failed" if $? != 0;
	chomp $out;
	return $out;
}

my %root = (a => random_key_hex(), b => random_key_hex(), c => random_key_hex());
write_key_file("$dir/$_.key", $root{$_}) for keys %root;
my $conf = $node->data_dir . '/domi_keyring.conf';
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'domi,pg_stat_statements'
log_statement = 'all'
log_min_messages = debug5
log_min_error_statement = debug5
log_error_verbosity = verbose
log_parameter_max_length = -1
log_parameter_max_length_on_error = -1
pg_stat_statements.track = all
include_if_exists = 'domi_keyring.conf'
});

sub restart_with
{
	my (@lines) = @_;
	write_key_file($conf, join('', map { "$_\n" } @lines));
	$node->restart;
}

# Everything a client receives, output and messages, is scanned as well.
my $client_output = '';

sub run
{
	my ($sql) = @_;
	my ($ret, $stdout, $stderr) = $node->psql('postgres', "\\set VERBOSITY verbose\n$sql",
		on_error_stop => 0);
	$client_output .= "$stdout\n$stderr\n";
	return $stdout;
}

my %t = (
	t1 => '11111111-1111-4111-8111-111111111111',
	t2 => '22222222-2222-4222-8222-222222222222',
	t3 => '33333333-3333-4333-8333-333333333333',
	t4 => '44444444-4444-4444-8444-444444444444');
my %box;					# "tenant/version" => [box hex, its plaintext]

sub keep_box
{
	my ($tenant, $version, $plain, $sql) = @_;
	my $hex = run($sql);
	$box{"$tenant/$version"} = [ $hex, $plain ];
}

write_key_file($conf, "domi.root_key_file = '$dir/a.key'\n");
$node->start;
run('CREATE EXTENSION domi; CREATE EXTENSION pg_stat_statements;');

# The control: a value planted in a statement in every form searched for.
my $control = join('', map { ('A' .. 'Z', 'a' .. 'z', 0 .. 9)[ rand 62 ] } 1 .. 32);
my $control_hex = unpack('H*', $control);
run("SELECT '$control' AS control /* " . $control_hex . ' ' . uc($control_hex) . ' '
	  . encode_base64($control, '') . ' */');

# Tenant keys made on first use, rotated, used through the current tenant.
keep_box('t1', 1, 'p11', "SELECT encode(domi.encrypt_text('p11', '$t{t1}'), 'hex')");
run("SELECT domi.rotate_tenant_key('$t{t1}')");
keep_box('t1', 2, 'p12', "SELECT encode(domi.encrypt_text('p12', '$t{t1}'), 'hex')");
keep_box('t2', 1, 'p21',
	"BEGIN; SELECT domi.set_tenant('$t{t2}') \\g /dev/null\nSELECT encode(domi.encrypt(convert_to('p21', 'UTF8')), 'hex'); COMMIT;");
run("BEGIN; SELECT domi.set_tenant('$t{t2}'); SELECT domi.decrypt_text(decode('$box{'t2/1'}[0]', 'hex')); COMMIT;");

# The import of an application-wide key, as the README says to do it: in a
# session that does not log its statements' text.
my $imported = random_key_hex();
my ($ret, $stdout, $stderr) = $node->psql('postgres', qq{
SET log_statement = 'none';
SET log_min_error_statement = 'panic';
SELECT domi.import_tenant_key('$t{t3}', '\\x$imported') \\g /dev/null
SELECT encode(domi.secretbox_text('p31', '\\x$imported'), 'hex');
});
$box{'t3/1'} = [ $stdout, 'p31' ];
run("SELECT domi.decrypt_text(decode('$box{'t3/1'}[0]', 'hex'), '$t{t3}')");

# rekey (tenant 3 gets its version 2 on first use) and _rekey_value.
run(qq{
	CREATE TABLE notes (id int, tenant_id uuid, body bytea);
	INSERT INTO notes VALUES (1, '$t{t1}', decode('$box{'t1/1'}[0]', 'hex')),
		(2, '$t{t3}', decode('$box{'t3/1'}[0]', 'hex'));
	CALL domi.rekey('notes', 'body');
	SELECT domi._rekey_value(body, tenant_id) IS NULL FROM notes;
});
keep_box('t3', 2, 'p31', "SELECT encode(body, 'hex') FROM notes WHERE id = 2");

# Retiring, destroying, and every kind of failure.
run("SELECT domi.retire_tenant_key('$t{t1}', 1)");
run("SELECT domi.retire_tenant_key('$t{t1}', 2)");
run("SELECT domi.decrypt_text(decode('$box{'t1/1'}[0]', 'hex'), '$t{t1}')");
run("SELECT domi.decrypt_text(decode('$box{'t1/2'}[0]', 'hex'), '$t{t2}')");
run("SELECT domi.decrypt(set_byte(decode('$box{'t1/2'}[0]', 'hex'), 41, 0), '$t{t1}')");
run("SELECT domi.decrypt('\\x0102', '$t{t1}')");
run("SELECT domi.decrypt_text(domi.encrypt('\\xff', '$t{t1}'), '$t{t1}')");
run("SELECT domi.encrypt('x', NULL)");
run("SELECT domi.encrypt('x')");
run("SELECT domi.import_tenant_key('$t{t1}', '\\x0102')");
keep_box('t4', 1, 'p41', "SELECT encode(domi.encrypt_text('p41', '$t{t4}'), 'hex')");
my $wrapped_sql = q{SELECT tenant, version, encode(wrapped, 'hex') FROM domi.tenant_keys WHERE wrapped IS NOT NULL ORDER BY 1, 2};
my @wrapped_a = split /\n/, run($wrapped_sql);
run("SELECT domi.destroy_tenant_keys('$t{t4}')");
run("SELECT domi.decrypt_text(decode('$box{'t4/1'}[0]', 'hex'), '$t{t4}')");
run('SELECT * FROM domi.keyring_status()');
my $fingerprint_a = run('SELECT root_key_fingerprint FROM domi.keyring_status()');

# Root key rotation: b with a as previous, then rewrap.
restart_with("domi.root_key_file = '$dir/b.key'", "domi.previous_root_key_file = '$dir/a.key'");
run("SELECT domi.decrypt_text(decode('$box{'t1/2'}[0]', 'hex'), '$t{t1}')");
is(run('SELECT domi.rewrap_tenant_keys()'), '5', 'rewrap re-wrapped the five live keys');
run('SELECT * FROM domi.keyring_status()');
my @wrapped_b = split /\n/, run($wrapped_sql);

# The wrong root key, then back.
restart_with("domi.root_key_file = '$dir/c.key'");
run("SELECT domi.decrypt_text(decode('$box{'t1/2'}[0]', 'hex'), '$t{t1}')");
run("SELECT domi.encrypt('x', '55555555-5555-4555-8555-555555555555')");
run('SELECT * FROM domi.keyring_status()');
restart_with("domi.root_key_file = '$dir/b.key'");
is(run("SELECT domi.decrypt_text(decode('$box{'t1/2'}[0]', 'hex'), '$t{t1}')"), 'p12',
	'after all that, values still open under the new root key');

# The keys, computed outside the server, and proven real.
my %secret;
for my $name (sort keys %root)
{
	my ($fingerprint, $wrap) = split / /, helper('derive', $root{$name});
	$secret{"root key $name"} = $root{$name};
	$secret{"wrapping subkey of root key $name"} = $wrap;
	is($fingerprint, $fingerprint_a, 'the helper computes the fingerprint keyring_status reports')
	  if $name eq 'a';
}
is(scalar(@wrapped_a), 6, 'six tenant keys were wrapped before the destruction');
for my $row (@wrapped_a)
{
	my ($tenant, $version, $wrapped) = split /\|/, $row;
	my ($label) = grep { $t{$_} eq $tenant } keys %t;
	my $key = helper('unwrap', $root{a}, $tenant, $version, $wrapped);
	$secret{"key $version of $label"} = $key;
	my ($box_hex, $plain) = @{ $box{"$label/$version"} };
	is(helper('open', $key, $box_hex), $plain, "the key of $label version $version is the real one");
}
for my $row (@wrapped_b)
{
	my ($tenant, $version, $wrapped) = split /\|/, $row;
	my ($label) = grep { $t{$_} eq $tenant } keys %t;
	is(helper('unwrap', $root{b}, $tenant, $version, $wrapped), $secret{"key $version of $label"},
		"after rewrap, root key b unwraps the same key $version of $label");
}
is($secret{'key 1 of t3'}, $imported, 'the imported key is tenant 3\'s version 1');

# Gather every place a key could show up.
my %place = (
	'the server log' => slurp_file($node->logfile),
	'pg_settings' => $node->safe_psql('postgres', 'SELECT name, setting, reset_val, boot_val FROM pg_settings'),
	'SHOW ALL' => $node->safe_psql('postgres', 'SHOW ALL'),
	'pg_stat_statements' => $node->safe_psql('postgres', 'SELECT query FROM pg_stat_statements'),
	'client output' => $client_output);
like($place{'pg_stat_statements'}, qr/tenant_keys/, 'pg_stat_statements saw the keyring\'s own queries');
like($place{'the server log'}, qr/root key does not match/, 'the log has the keyring\'s errors');

# Every form of a key: hex both cases, base64, raw; whole and 8-byte windows.
sub forms
{
	my ($hex) = @_;
	my $raw = pack('H*', $hex);
	my @forms = ([ 'hex', lc $hex ], [ 'upper-case hex', uc $hex ], [ 'base64', encode_base64($raw, '') ],
		[ 'raw bytes', $raw ]);
	for (my $i = 0; $i + 8 <= length($raw); $i++)
	{
		my $window = substr($raw, $i, 8);
		push @forms, [ "8 bytes at $i in hex", unpack('H*', $window) ],
		  [ "8 bytes at $i in upper-case hex", uc unpack('H*', $window) ],
		  [ "8 bytes at $i raw", $window ];
	}
	return @forms;
}

sub found_in
{
	my ($haystack, $needle) = @_;
	return index($haystack, $needle) >= 0;
}

# The control proves the search finds what is there.
for my $form (forms($control_hex))
{
	next unless $form->[0] =~ /^(hex|upper-case hex|base64|raw bytes)$/;
	ok(found_in($place{'the server log'}, $form->[1]), "control: found in the server log as $form->[0]");
	ok(found_in($place{'pg_stat_statements'}, $form->[1]), "control: found in pg_stat_statements as $form->[0]")
	  unless $form->[0] eq 'raw bytes';	# a constant: normalized to $1 there
}

$secret{'imported key'} = $imported;
for my $name (sort keys %secret)
{
	for my $where (sort keys %place)
	{
		my @hits = map { $_->[0] } grep { found_in($place{$where}, $_->[1]) } forms($secret{$name});
		is(join(', ', @hits), '', "$name: not in $where");
	}
}

$node->stop;
done_testing();
