# A transaction that sealed a value before a rotation and commits after the
# re-key (issue 13.2): session 1 inserts domi.encrypt_text(...) and stays
# open; meanwhile the key is rotated, the column re-keyed and the old
# version retired.  Before 0.3.0 all three succeeded and session 1's commit
# stored a value under a retired key.  Now
#   1. CALL domi.rekey() first waits until every transaction open when it
#      started has ended, so it re-keys session 1's value too (two re-keys
#      waiting at once do not wait for each other);
#   2. domi.retire_tenant_key() waits the same way, then refuses while a
#      registered column still holds a value under the version (here after
#      a hand-made re-key that does not wait);
# and in both cases every value stays readable.
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DomiKeyring;

my $node = PostgreSQL::Test::Cluster->new('retire_race');
$node->init;
my $keyfile = write_key_file($node->basedir . '/root.key', random_key_hex());
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'domi'\ndomi.root_key_file = '$keyfile'\n");
$node->start;

my $t = '12121212-1212-4212-8212-121212121212';
$node->safe_psql('postgres', qq{
	CREATE EXTENSION domi;
	SET domi.rls_guard = off;
	CREATE TABLE items (id int PRIMARY KEY, tenant_id uuid NOT NULL, body bytea);
	CREATE TABLE others (id int PRIMARY KEY, tenant_id uuid NOT NULL, body bytea);
	INSERT INTO items SELECT g, '$t', domi.encrypt_text('item ' || g, '$t') FROM generate_series(1, 50) g;
	INSERT INTO others SELECT g, '$t', domi.encrypt_text('item ' || g, '$t') FROM generate_series(1, 50) g;
});
my $all_open = "SELECT count(*) FROM items WHERE domi.decrypt_text(body, tenant_id) = 'item ' || id";

# Run a statement in its own psql, in the background.
sub start_psql
{
	my ($sql) = @_;
	my %run = (out => '', err => '');
	$run{h} = IPC::Run::start([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'), '-c', $sql ],
		'>', \$run{out}, '2>', \$run{err});
	return \%run;
}

# Does the session running this statement (started by start_psql) come to
# wait for another transaction to end?  False as soon as it has finished
# without waiting (as it did before 0.3.0), so that the script goes on to
# show what then happens to the value.
sub comes_to_wait
{
	my ($sql, $run) = @_;
	my $q = $sql =~ s/'/''/gr;
	my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
	while (time() < $deadline)
	{
		return 1 if $node->safe_psql('postgres',
			"SELECT count(*) FROM pg_stat_activity WHERE query = '$q' AND wait_event = 'virtualxid'") eq '1';
		$run->{h}->pump_nb;
		return 0 unless $run->{h}->pumpable;
		select(undef, undef, undef, 0.1);
	}
	return 0;
}

# --- 1. The issue's sequence: rotate, rekey, retire while session 1 is open.
my $s1 = $node->background_psql('postgres');
$s1->query_safe('BEGIN');
$s1->query_safe("INSERT INTO items VALUES (100, '$t', domi.encrypt_text('item 100', '$t'))");
# Session 1 is now idle in transaction (READ COMMITTED: it holds no snapshot).

is($node->safe_psql('postgres', "SELECT domi.rotate_tenant_key('$t')"), '2', 'rotation succeeds meanwhile');

my $rekey = q{CALL domi.rekey('items', 'body')};
my $rekey_others = q{CALL domi.rekey('others', 'body')};
my $r1 = start_psql($rekey);
my $r2 = start_psql($rekey_others);
ok(comes_to_wait($rekey, $r1),
	'the re-key waits for the transaction that was open when it started');
ok(comes_to_wait($rekey_others, $r2),
	'so does a second re-key started at the same time (they do not wait for each other)');
is($node->safe_psql('postgres', "SELECT count(*) FROM items WHERE domi._rekey_value(body, tenant_id) IS NULL"),
	'0', 'and has re-keyed nothing yet');

$s1->query_safe('COMMIT');
$r1->{h}->finish;
is($?, 0, 'when session 1 commits, the re-key goes on and completes');
like($r1->{err}, qr/NOTICE:  rekey waits for the transaction of process \d+, open since before it started/,
	'it said whom it waited for');
like($r1->{err}, qr/rekey of public\.items\.body: done, 51 values rewritten/, 'it re-keyed session 1\'s value too');
$r2->{h}->finish;
is($?, 0, 'the second re-key completes too');
like($r2->{err}, qr/rekey of public\.others\.body: done, 50 values rewritten/, 'and re-keyed its table');

is($node->safe_psql('postgres', "SELECT domi.retire_tenant_key('$t', 1)"), '', 'retiring version 1 succeeds');
is($node->safe_psql('postgres', $all_open), '51', 'every value opens, session 1\'s included');
is($node->safe_psql('postgres', "SELECT domi.decrypt_text(body, tenant_id) FROM items WHERE id = 100"),
	'item 100', 'session 1\'s value opens after version 1 was retired');

# --- 2. A re-key that does not wait (by hand), then retire: the retirement
# waits for session 1, sees its value under version 2, and refuses.
$s1->query_safe('BEGIN');
$s1->query_safe("INSERT INTO items VALUES (101, '$t', domi.encrypt_text('item 101', '$t'))");
is($node->safe_psql('postgres', "SELECT domi.rotate_tenant_key('$t')"), '3', 'rotation to version 3');
$node->safe_psql('postgres', 'UPDATE items SET body = coalesce(domi._rekey_value(body, tenant_id), body)');
$node->safe_psql('postgres', 'UPDATE others SET body = coalesce(domi._rekey_value(body, tenant_id), body)');
is($node->safe_psql('postgres', "SELECT count(*) FROM items WHERE domi._rekey_value(body, tenant_id) IS NULL"),
	'51', 'a hand-made re-key leaves no committed value under version 2');

my $retire = "SELECT domi.retire_tenant_key('$t', 2)";
my $rt = start_psql($retire);
ok(comes_to_wait($retire, $rt),
	'the retirement waits for the transaction that was open when it started');
$s1->query_safe('COMMIT');
$rt->{h}->finish;
isnt($?, 0, 'when session 1 commits, the retirement is refused');
like($rt->{err}, qr/ERROR:  cannot retire key version 2 of tenant $t: public\.items\.body still holds values under it/,
	'naming the column that holds a value under the version');
like($rt->{err}, qr/HINT:  Re-key the column first/, 'and what to do');
is($node->safe_psql('postgres', "SELECT state FROM domi.tenant_keys WHERE tenant = '$t' AND version = 2"),
	'decrypt_only', 'version 2 is not retired');
is($node->safe_psql('postgres', "SELECT domi.decrypt_text(body, tenant_id) FROM items WHERE id = 101"),
	'item 101', 'and session 1\'s value opens');

my ($ret, $stdout, $stderr) = $node->psql('postgres', $rekey);
like($stderr, qr/done, 1 values rewritten/, 'a re-key now re-keys that one value');
is($node->safe_psql('postgres', $retire), '', 'and the retirement goes through');
is($node->safe_psql('postgres', $all_open), '52', 'every value opens');

# --- 3. A transaction that rolls back is waited for, and leaves nothing
# behind.
$s1->query_safe('BEGIN');
$s1->query_safe("INSERT INTO items VALUES (102, '$t', domi.encrypt_text('item 102', '$t'))");
is($node->safe_psql('postgres', "SELECT domi.rotate_tenant_key('$t')"), '4', 'rotation to version 4');
$r1 = start_psql($rekey);
ok(comes_to_wait($rekey, $r1), 'a re-key waits for session 1');
$s1->query_safe('ROLLBACK');
$r1->{h}->finish;
is($?, 0, 'session 1 rolls back: the re-key completes');
($ret, $stdout, $stderr) = $node->psql('postgres', $rekey_others);
is($ret, 0, 'the other table is re-keyed too');
is($node->safe_psql('postgres', "SELECT domi.retire_tenant_key('$t', 3)"), '', 'version 3 retires');
is($node->safe_psql('postgres', $all_open), '52', 'every value opens');
is($node->safe_psql('postgres', "SELECT count(*) FROM items WHERE id = 102"), '0', 'the rolled-back row is gone');

$s1->quit;
$node->stop;
done_testing();
