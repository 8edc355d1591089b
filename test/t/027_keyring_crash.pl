# Crash safety of the keyring (issue 13.7): a backend killed with SIGKILL in
# the middle of a re-key, a rotation, a destruction and a retirement.  Each
# is held in its middle deterministically by a lock another session holds:
#   re-key       a row of a later batch, locked: earlier batches committed,
#                the blocked batch has rewritten part of its rows;
#   rotation     an uncommitted row with the version the rotation is about
#                to insert: it has demoted the active version and waits on
#                the primary key;
#   destruction  the key row its UPDATE reaches last, locked: the other
#                version is destroyed in its transaction, that one not;
#   retirement   an open transaction it waits for before it retires.
# The server restarts (crash recovery) after each kill.  Then every value
# of every tenant whose keys live opens, every such tenant has exactly one
# active version, keyring_status() agrees with the table, and the operation
# run again completes.
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DomiKeyring;

my $node = PostgreSQL::Test::Cluster->new('keyring_crash');
$node->init;
my $keyfile = write_key_file($node->basedir . '/root.key', random_key_hex());
# The test framework turns restart_after_crash off; killing a backend needs it.
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'domi'\ndomi.root_key_file = '$keyfile'\nrestart_after_crash = on\n");
$node->start;

my @tenants = ('a1a1a1a1-0000-4000-8000-000000000001', 'b2b2b2b2-0000-4000-8000-000000000002',
	'c3c3c3c3-0000-4000-8000-000000000003');
my ($ta, $tb, $tc) = @tenants;
my $tenant_array = "ARRAY['" . join("', '", @tenants) . "']::uuid[]";
my $rows = 600;

# fillfactor 10: a few rows per page, so that a 50-row batch spans pages.
$node->safe_psql('postgres', qq{
	CREATE EXTENSION domi;
	SET domi.rls_guard = off;
	CREATE TABLE items (id int PRIMARY KEY, tenant_id uuid NOT NULL, body bytea) WITH (fillfactor = 10);
	INSERT INTO items SELECT g, ($tenant_array)[g % 3 + 1],
		domi.encrypt_text('item ' || g, ($tenant_array)[g % 3 + 1])
	FROM generate_series(1, $rows) g;
	SELECT domi.rotate_tenant_key(t) FROM unnest($tenant_array) t;
});

# The values of tenants whose keys live open to their own plaintext.
sub live_values_open
{
	return $node->safe_psql('postgres', q{
		SELECT count(*) FILTER (WHERE domi.decrypt_text(body, tenant_id) = 'item ' || id) = count(*)
		FROM items WHERE NOT EXISTS (SELECT FROM domi.tenant_keys k
			WHERE k.tenant = items.tenant_id AND k.state = 'destroyed')});
}

# Every tenant with live keys has one active version; keyring_status()
# counts what the table holds; versions are 1..n without gaps.
sub keyring_consistent
{
	return $node->safe_psql('postgres', q{
		SELECT (SELECT count(*) FROM (SELECT tenant FROM domi.tenant_keys GROUP BY tenant
				HAVING bool_and(state <> 'destroyed')
					AND count(*) FILTER (WHERE state = 'active') <> 1) bad) = 0
			AND (SELECT count(*) FROM (SELECT tenant FROM domi.tenant_keys GROUP BY tenant
				HAVING max(version) <> count(*)) gaps) = 0
			AND s.active_keys = (SELECT count(*) FROM domi.tenant_keys WHERE state = 'active')
			AND s.decrypt_only_keys = (SELECT count(*) FROM domi.tenant_keys WHERE state = 'decrypt_only')
			AND s.retired_keys = (SELECT count(*) FROM domi.tenant_keys WHERE state = 'retired')
			AND s.destroyed_keys = (SELECT count(*) FROM domi.tenant_keys WHERE state = 'destroyed')
			AND s.keys_under_unknown_root = 0
		FROM domi.keyring_status() s});
}

sub states
{
	my ($tenant) = @_;
	return $node->safe_psql('postgres',
		"SELECT string_agg(version || ':' || state, ',' ORDER BY version) FROM domi.tenant_keys WHERE tenant = '$tenant'");
}

# Start sql in its own psql; wait until its backend waits on a lock of the
# given kind; return the run and the backend's pid.
sub start_until_waiting
{
	my ($sql, $wait_event) = @_;
	my %run = (out => '', err => '');
	$run{h} = IPC::Run::start([ 'psql', '-X', '-q', '-d', $node->connstr('postgres'), '-c', $sql ],
		'>', \$run{out}, '2>', \$run{err});
	my $q = $sql =~ s/'/''/gr;
	$node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE query = '$q' AND wait_event = '$wait_event'")
	  or die "\"$sql\" did not come to wait on $wait_event";
	$run{pid} = $node->safe_psql('postgres', "SELECT pid FROM pg_stat_activity WHERE query = '$q'");
	return \%run;
}

# SIGKILL the backend; the server restarts; the holder's session is gone.
sub crash
{
	my ($run, $holder, $what) = @_;
	kill 'KILL', $run->{pid} or die "could not kill $run->{pid}";
	$run->{h}->finish;
	eval { $holder->quit; };
	$node->poll_query_until('postgres', 'SELECT true') or die 'server did not come back';
	like($run->{err}, qr/server closed the connection unexpectedly|terminating connection/,
		"$what: its backend was killed, and the server restarted");
}

is(live_values_open(), 't', 'before: every value opens');
is(keyring_consistent(), 't', 'before: the keyring is consistent');
my $log_offset = 0;

# --- 1. Re-key, killed in a batch.  Rows 1..$rows sit on pages in id
# order; the row with id 400 is locked, so the batches before it commit
# and the one that holds it waits.
my $holder = $node->background_psql('postgres');
$holder->query_safe('BEGIN');
$holder->query_safe('SELECT 1');
my $rekey = q{CALL domi.rekey('items', 'body', batch_size => 50)};
# The holder's transaction is older than the re-key: it would wait for it
# first.  Let it start, then end the holder's first transaction and lock
# the row in a new one.
my $run = start_until_waiting($rekey, 'virtualxid');
my $locker = $node->background_psql('postgres');
$locker->query_safe('BEGIN');
$locker->query_safe('SELECT id FROM items WHERE id = 400 FOR UPDATE');
$holder->query_safe('COMMIT');
$holder->quit;
$node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE query = '" . ($rekey =~ s/'/''/gr) . "' AND wait_event = 'transactionid'")
  or die 'the re-key did not wait for the locked row';
$run->{pid} = $node->safe_psql('postgres', "SELECT pid FROM pg_stat_activity WHERE query = '" . ($rekey =~ s/'/''/gr) . "'");
my $under_active = 'SELECT count(*) FROM items WHERE domi._rekey_value(body, tenant_id) IS NULL';
my $before_kill = $node->safe_psql('postgres', $under_active);
ok($before_kill > 0 && $before_kill < $rows, "re-key: the batches before the locked row committed ($before_kill of $rows)");
crash($run, $locker, 're-key');
my $after = $node->safe_psql('postgres', $under_active);
is($after, $before_kill, 're-key: what committed stays re-keyed, the killed batch is undone');
is(live_values_open(), 't', 're-key: every value opens after the crash');
is(keyring_consistent(), 't', 're-key: the keyring is consistent');
my ($ret, $stdout, $stderr) = $node->psql('postgres', $rekey);
like($stderr, qr/done, \d+ values rewritten/, 're-key: run again, it completes');
is($node->safe_psql('postgres', $under_active), $rows, 're-key: every value is under its active key');

# --- 2. Rotation, killed between demoting the active version and
# inserting the new one.
$holder = $node->background_psql('postgres');
$holder->query_safe('BEGIN');
$holder->query_safe(qq{INSERT INTO domi.tenant_keys (tenant, version, state, wrapped, root_fingerprint)
	SELECT tenant, 3, 'decrypt_only', wrapped, root_fingerprint FROM domi.tenant_keys
	WHERE tenant = '$ta' AND version = 1});
is(states($ta), '1:decrypt_only,2:active', 'rotation: before, version 2 is active');
$run = start_until_waiting("SELECT domi.rotate_tenant_key('$ta')", 'transactionid');
ok($node->safe_psql('postgres',
	"SELECT count(*) > 0 FROM pg_locks WHERE pid = $run->{pid} AND locktype = 'transactionid' AND mode = 'ExclusiveLock'"),
	'rotation: it holds its own transaction id (it has written: the demotion of version 2)');
crash($run, $holder, 'rotation');
is(states($ta), '1:decrypt_only,2:active', 'rotation: after the crash, version 2 is still the active one');
is(live_values_open(), 't', 'rotation: every value opens after the crash');
is(keyring_consistent(), 't', 'rotation: the keyring is consistent');
is($node->safe_psql('postgres', "SELECT length(domi.encrypt_text('after', '$ta')) > 0"), 't',
	'rotation: the tenant encrypts');
is($node->safe_psql('postgres', "SELECT domi.rotate_tenant_key('$ta')"), '3', 'rotation: run again, it makes version 3');
is(states($ta), '1:decrypt_only,2:decrypt_only,3:active', 'rotation: with version 2 decrypt_only');
is(live_values_open(), 't', 'rotation: every value opens');

# --- 3. Destruction, killed after destroying the older versions and
# before the newest (locked by another session).
$holder = $node->background_psql('postgres');
$holder->query_safe('BEGIN');
# The row its UPDATE reaches last (a sequential scan of a small table).
$holder->query_safe("SELECT version FROM domi.tenant_keys WHERE tenant = '$tb' ORDER BY ctid DESC LIMIT 1 FOR UPDATE");
$run = start_until_waiting("SELECT domi.destroy_tenant_keys('$tb')", 'transactionid');
ok($node->safe_psql('postgres',
	"SELECT count(*) > 0 FROM pg_locks WHERE pid = $run->{pid} AND locktype = 'transactionid' AND mode = 'ExclusiveLock'"),
	'destruction: it has written (the other version of the tenant)');
crash($run, $holder, 'destruction');
is(states($tb), '1:decrypt_only,2:active', 'destruction: after the crash, no key of the tenant is destroyed');
is($node->safe_psql('postgres', "SELECT count(*) FROM items WHERE tenant_id = '$tb' AND domi.decrypt_text(body, tenant_id) = 'item ' || id"),
	$rows / 3, 'destruction: every value of the tenant opens');
is(live_values_open(), 't', 'destruction: every value opens after the crash');
is(keyring_consistent(), 't', 'destruction: the keyring is consistent');
is($node->safe_psql('postgres', "SELECT domi.destroy_tenant_keys('$tb')"), '2', 'destruction: run again, it destroys both versions');
like(psql_error($node, 'postgres', "SELECT domi.decrypt_text(body, tenant_id) FROM items WHERE tenant_id = '$tb' LIMIT 1"),
	qr/the keys of tenant $tb have been destroyed/, 'destruction: the tenant\'s values no longer open');
is(live_values_open(), 't', 'destruction: every other tenant\'s value opens');
is(keyring_consistent(), 't', 'destruction: the keyring is consistent');

# --- 4. Retirement, killed while it waits for an older transaction.
$holder = $node->background_psql('postgres');
$holder->query_safe('BEGIN');
$holder->query_safe('SELECT 1');
$run = start_until_waiting("SELECT domi.retire_tenant_key('$tc', 1)", 'virtualxid');
crash($run, $holder, 'retirement');
is(states($tc), '1:decrypt_only,2:active', 'retirement: after the crash, version 1 is not retired');
is(live_values_open(), 't', 'retirement: every value opens after the crash');
is(keyring_consistent(), 't', 'retirement: the keyring is consistent');
is($node->safe_psql('postgres', "SELECT domi.retire_tenant_key('$tc', 1)"), '', 'retirement: run again, it completes');
is(states($tc), '1:retired,2:active', 'retirement: version 1 is retired');
is(live_values_open(), 't', 'retirement: every value opens (they were re-keyed)');

ok($node->log_contains('was terminated by signal 9'), 'the server log shows the crashes');
$node->stop;
done_testing();
