# CALL domi.rekey() interrupted in the middle: terminated by
# pg_terminate_backend(), then killed with SIGKILL (a crash and recovery).
# After each, every row still opens, and a last run completes and leaves
# every value under its tenant's active key.  While it runs, the table is
# read and written by another session: the procedure takes no lock stronger
# than row locks.
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DomiKeyring;

my $node = PostgreSQL::Test::Cluster->new('rekey_kill');
$node->init;
my $keyfile = write_key_file($node->basedir . '/root.key', random_key_hex());
# The test framework turns restart_after_crash off; the SIGKILL part needs it.
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'domi'\ndomi.root_key_file = '$keyfile'\nrestart_after_crash = on\n");
$node->start;

my @tenants = ('11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222',
	'33333333-3333-4333-8333-333333333333');
my $tenant_array = "ARRAY['" . join("', '", @tenants) . "']::uuid[]";
my $rows = 3000;

# Rows sealed under version 1 of three tenants, then a rotation.  A row
# trigger that sleeps 2 ms per updated row makes a run take several seconds,
# long enough to interrupt it half-way.
$node->safe_psql('postgres', qq{
	CREATE EXTENSION domi;
	SET domi.rls_guard = off;
	CREATE TABLE items (id int PRIMARY KEY, tenant_id uuid NOT NULL, body bytea);
	INSERT INTO items SELECT g, ($tenant_array)[g % 3 + 1],
		domi.encrypt_text(repeat('item ' || g || ' ', 10), ($tenant_array)[g % 3 + 1])
	FROM generate_series(1, $rows) g;
	SELECT domi.rotate_tenant_key(t) FROM unnest($tenant_array) t;
	CREATE FUNCTION slow_down() RETURNS trigger LANGUAGE plpgsql AS
		\$\$BEGIN PERFORM pg_sleep(0.002); RETURN NEW; END\$\$;
	CREATE TRIGGER slow BEFORE UPDATE ON items FOR EACH ROW EXECUTE FUNCTION slow_down();
});

# Every row opens to its own plaintext; and how many are under the active key
# (domi._rekey_value returns NULL for those, and writes nothing).
my $all_open = "SELECT count(*) FROM items WHERE domi.decrypt_text(body, tenant_id) = repeat('item ' || id || ' ', 10)";
my $under_active = 'SELECT count(*) FROM items WHERE domi._rekey_value(body, tenant_id) IS NULL';
is($node->safe_psql('postgres', $under_active), '0', 'before: no value is under the active key');

my $call = 'CALL domi.rekey(\'items\', \'body\', batch_size => 100)';

# Start the procedure in its own psql, and wait until it has re-keyed at
# least 300 more values and has more than 600 left.  Then another session
# locks a row ahead, so that the run is still in the middle however
# slow or fast the machine is: its batch waits there.  (The lock cannot be
# taken before the run starts: a re-key first waits for every transaction
# open when it starts.)
sub start_rekey
{
	my $before = $node->safe_psql('postgres', $under_active);
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'), '-c', $call ],
		'>', \$out, '2>', \$err);
	$node->poll_query_until('postgres', "SELECT ($under_active) BETWEEN " . ($before + 300) . " AND " . ($rows - 600))
	  or die 'rekey made no progress';
	# Rows are re-keyed in id order (they were inserted so): lock one a
	# little ahead of the progress made so far.
	my $progress = $node->safe_psql('postgres', $under_active);
	my $stop_at = $progress + 400 < $rows - 5 ? $progress + 400 : $rows - 5;
	my $stopper = $node->background_psql('postgres');
	$stopper->query_safe('BEGIN');
	$stopper->query_safe("SELECT id FROM items WHERE id = $stop_at FOR UPDATE");
	my $q = $call =~ s/'/''/gr;
	$node->poll_query_until('postgres', "SELECT count(*) = 1 FROM pg_stat_activity WHERE query = '$q' AND wait_event = 'transactionid'")
	  or die 'rekey did not reach the locked row';
	my $pid = $node->safe_psql('postgres', "SELECT pid FROM pg_stat_activity WHERE query = '$q'");
	return ($h, \$out, \$err, $pid, $stopper);
}

# 1. Terminated from another session.
my ($h, $out, $err, $pid, $stopper) = start_rekey();
like($pid, qr/^\d+$/, 'the procedure runs in its own backend');

# Meanwhile the table is in use: reads, an update and an insert, each with a
# short lock_timeout (a table lock would make them fail).
my $busy = $node->safe_psql('postgres', qq{
	SET lock_timeout = '2s';
	SELECT count(*) FROM items;
	UPDATE items SET body = domi.encrypt_text('changed', tenant_id) WHERE id = $rows;
	INSERT INTO items VALUES (0, '$tenants[0]', domi.encrypt_text(repeat('item 0 ', 10), '$tenants[0]'));
});
is($busy, $rows, 'other sessions read, update and insert while it runs');
# Sample the procedure's locks on the table a few times (between two batches
# it may briefly hold none).
my %modes;
for (1 .. 10)
{
	$modes{$_} = 1 for split /\n/, $node->safe_psql('postgres',
		"SELECT mode FROM pg_locks WHERE locktype = 'relation' AND relation = 'items'::regclass AND pid = $pid");
	select(undef, undef, undef, 0.05);
}
is(join(',', sort keys %modes), 'AccessShareLock,RowExclusiveLock',
	'and the procedure holds no lock on the table stronger than RowExclusiveLock');

is($node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)"), 't', 'terminate it half-way');
$h->finish;
$stopper->query_safe('COMMIT');
$stopper->quit;
like($$err, qr/terminating connection due to administrator command/, 'the procedure was terminated');
like($$err, qr/NOTICE:  rekey of public\.items\.body: pages/, 'after reporting progress');
my $partial = $node->safe_psql('postgres', $under_active);
ok($partial > 0 && $partial < $rows, "the committed batches stay re-keyed ($partial of $rows)");
is($node->safe_psql('postgres', "SELECT domi.decrypt_text(body, tenant_id) FROM items WHERE id = $rows"), 'changed',
	'the update made while it ran is kept');
$node->safe_psql('postgres', "UPDATE items SET body = domi.encrypt_text(repeat('item $rows ', 10), tenant_id) WHERE id = $rows");
is($node->safe_psql('postgres', $all_open), $rows + 1, 'every row still opens');

# 2. Killed with SIGKILL: the server restarts and recovers.
($h, $out, $err, $pid, $stopper) = start_rekey();
kill 'KILL', $pid or die "could not kill $pid";
$h->finish;
eval { $stopper->quit; };
like($$err, qr/server closed the connection unexpectedly|terminating connection/, 'the backend was killed');
$node->poll_query_until('postgres', 'SELECT true') or die 'server did not come back';
ok($node->log_contains("was terminated by signal 9"), 'the server recovered from the crash');
my $after_crash = $node->safe_psql('postgres', $under_active);
ok($after_crash > $partial && $after_crash < $rows, "the second run's committed batches stay re-keyed ($after_crash of $rows)");
is($node->safe_psql('postgres', $all_open), $rows + 1, 'every row still opens after the crash');

# 3. A last run completes; then every value is under the active key, and
# retiring version 1 leaves every row readable.
my ($ret, $stdout, $stderr) = $node->psql('postgres', $call);
is($ret, 0, 'a new run completes');
like($stderr, qr/NOTICE:  rekey of public\.items\.body: done, \d+ values rewritten/, 'and reports its total');
is($node->safe_psql('postgres', $under_active), $rows + 1, 'every value is under its tenant\'s active key');
$node->safe_psql('postgres', "SELECT domi.retire_tenant_key(t, 1) FROM unnest($tenant_array) t");
is($node->safe_psql('postgres', $all_open), $rows + 1, 'with version 1 retired, every row opens');
($ret, $stdout, $stderr) = $node->psql('postgres', $call);
like($stderr, qr/done, 0 values rewritten/, 'a run after that has nothing to do');

# 4. A row that another session updates while the re-key reaches it: the
# batch's UPDATE waits for that session's row lock, and then leaves the row
# alone (it has a new version).  An update of another column keeps the old
# value, here on the same page (a HOT update into the free space that
# fillfactor leaves), which that pass has already scanned.  The procedure
# passes over the table again until a pass finds nothing to rewrite, so
# that "done" means every value is under the active key.
$node->safe_psql('postgres', qq{
	SET domi.rls_guard = off;
	CREATE TABLE hot (id int PRIMARY KEY, tenant_id uuid NOT NULL, body bytea, seen int DEFAULT 0)
		WITH (fillfactor = 50);
	INSERT INTO hot SELECT g, '$tenants[0]', domi.encrypt_text('hot ' || g, '$tenants[0]')
	FROM generate_series(1, 200) g;
	SELECT domi.rotate_tenant_key('$tenants[0]');
});
# The re-key first waits for the transactions open when it starts (those
# may commit values sealed before the rotation); an older one holds it
# there while the row is locked by a transaction that starts after it.
my $older = $node->background_psql('postgres');
$older->query_safe('BEGIN');
$older->query_safe('SELECT 1');
my ($hot_out, $hot_err) = ('', '');
my $hot_call = q{CALL domi.rekey('hot', 'body', batch_size => 1000)};
my $hot_waits = "SELECT count(*) = 1 FROM pg_stat_activity WHERE query = '" . ($hot_call =~ s/'/''/gr) . "' AND wait_event = ";
my $hot = IPC::Run::start([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'), '-c', $hot_call ],
	'>', \$hot_out, '2>', \$hot_err);
$node->poll_query_until('postgres', $hot_waits . "'virtualxid'")
  or die 'the re-key did not wait for the older transaction';
my $holder = $node->background_psql('postgres');
$holder->query_safe('BEGIN');
$holder->query_safe('UPDATE hot SET seen = 1 WHERE id = 5');
$older->query_safe('COMMIT');
$older->quit;
$node->poll_query_until('postgres', $hot_waits . "'transactionid'")
  or die 'the re-key did not wait for the row lock';
$holder->query_safe('COMMIT');
$holder->quit;
$hot->finish;
is($?, 0, 'a re-key that met a row updated by another session completes');
like($hot_err, qr/rekey of public\.hot\.body: 199 values rewritten in pass 1; checking every value again/,
	'its first pass left that row alone');
like($hot_err, qr/rekey of public\.hot\.body, pass 2: pages 0 to 0 of \d+, 1 of \d+ rows rewritten/,
	'the second pass re-keyed it');
like($hot_err, qr/rekey of public\.hot\.body: done, 200 values rewritten/, 'and it reports every value');
is($node->safe_psql('postgres', "SELECT count(*) FROM hot WHERE domi._rekey_value(body, tenant_id) IS NULL AND seen = (id = 5)::int"),
	'200', 'every value is under the active key, and the other session\'s update is kept');
# items (re-keyed, so registered) still holds values of that tenant under
# version 2: retiring it is refused until items is re-keyed too.
like(psql_error($node, 'postgres', "SELECT domi.retire_tenant_key('$tenants[0]', 2)"),
	qr/cannot retire key version 2 of tenant $tenants[0]: public\.items\.body still holds values under it/,
	'retiring version 2 is refused while items holds values under it');
$node->safe_psql('postgres', 'DROP TRIGGER slow ON items');
($ret, $stdout, $stderr) = $node->psql('postgres', $call);
like($stderr, qr/rekey of public\.items\.body: done/, 'items re-keyed');
$node->safe_psql('postgres', "SELECT domi.retire_tenant_key('$tenants[0]', 2)");
is($node->safe_psql('postgres', $all_open), $rows + 1, 'with version 2 retired, every row of items opens');
is($node->safe_psql('postgres', "SELECT count(*) FROM hot WHERE domi.decrypt_text(body, tenant_id) = 'hot ' || id"),
	'200', 'with the version before retired, every row opens');

$node->stop;
done_testing();
