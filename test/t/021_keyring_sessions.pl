# The keyring across sessions: a rotation, retirement or destruction in one
# session is seen by the next statement of another (relcache invalidation of
# domi.tenant_keys); a cache filled in a REPEATABLE READ transaction does not
# outlive it; first use of a tenant by many sessions at once makes exactly
# one key; parallel workers decrypt.
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DomiKeyring;

my $node = PostgreSQL::Test::Cluster->new('sessions');
$node->init;
my $keyfile = write_key_file($node->basedir . '/root.key', random_key_hex());
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'domi'
domi.root_key_file = '$keyfile'
max_worker_processes = 8
max_parallel_workers = 4
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION domi');

my $t = '11111111-1111-4111-8111-111111111111';
my $s1 = $node->background_psql('postgres', on_error_stop => 0);
my $s2 = $node->background_psql('postgres', on_error_stop => 0);

# A query whose error (if any) is returned as its output, so that a session
# can go on after it.
sub try
{
	my ($session, $sql) = @_;
	my $out = $session->query("DO \$\$ BEGIN PERFORM ($sql); RAISE NOTICE 'ok'; "
		  . "EXCEPTION WHEN OTHERS THEN RAISE NOTICE '%: %', SQLSTATE, SQLERRM; END \$\$");
	my $stderr = $session->{stderr};
	$session->{stderr} = '';
	my ($notice) = $stderr =~ /NOTICE:  (.*)$/m;
	return $notice // "(nothing: $out)";
}

# Session 1 makes the tenant's first key; session 2 caches it by decrypting.
my $box1 = $s1->query_safe("SELECT domi.encrypt_text('one', '$t')");
is($s2->query_safe("SELECT domi.decrypt_text('$box1', '$t')"), 'one', 'session 2 opens what session 1 sealed');

# Session 1 rotates; session 2's next value is under the new key.
is($s1->query_safe("SELECT domi.rotate_tenant_key('$t')"), '2', 'session 1 rotates to version 2');
my $box2 = $s2->query_safe("SELECT domi.encrypt_text('two', '$t')");
$s1->query_safe("SELECT domi.retire_tenant_key('$t', 1)");
like(try($s2, "SELECT domi.decrypt_text('$box1', '$t')"), qr/^55000: encrypted value is under a retired key/,
	'session 2 notices the retirement at once');
is($s2->query_safe("SELECT domi.decrypt_text('$box2', '$t')"), 'two',
	'its value sealed after the rotation was under version 2 (version 1 no longer opens anything)');

# A transaction that rotates and rolls back changes nothing for the others.
$s1->query_safe("BEGIN; SELECT domi.rotate_tenant_key('$t')");
my $inside = $s1->query_safe("SELECT domi.encrypt_text('three', '$t')");
is($s2->query_safe("SELECT domi.decrypt_text(domi.encrypt_text('x', '$t'), '$t')"), 'x',
	'session 2 works while session 1 rotates, uncommitted');
like(try($s2, "SELECT domi.decrypt_text('$inside', '$t')"), qr/^39000/,
	'and cannot open a value under the uncommitted key');
$s1->query_safe('ROLLBACK');
like(try($s1, "SELECT domi.decrypt_text('$inside', '$t')"), qr/^39000/,
	'after the rollback session 1 cannot either: its cache forgot the key');

# REPEATABLE READ: the cache is filled from the transaction's snapshot,
# which can be older than an invalidation already processed (here: the
# snapshot is taken by SELECT 1, the rotation's invalidation is processed
# when the keyring first locks its table, and then it reads the old
# snapshot).  Such a cache must be forgotten when the transaction ends.
my $u = '22222222-2222-4222-8222-222222222222';
$s1->query_safe("SELECT domi.encrypt('u', '$u')");
$s2->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
$s2->query_safe('SELECT 1');
$s1->query_safe("SELECT domi.rotate_tenant_key('$u')");
$s2->query_safe("SELECT domi.encrypt('u', '$u')");
$s2->query_safe('COMMIT');
my $after_rr = $s2->query_safe("SELECT domi.encrypt_text('after', '$u')");
$s1->query_safe("SELECT domi.retire_tenant_key('$u', 1)");
is($s1->query_safe("SELECT domi.decrypt_text('$after_rr', '$u')"), 'after',
	'after a REPEATABLE READ transaction, session 2 sealed under the new version');

# REPEATABLE READ and a first key made by another session after the
# snapshot: the keyring sees it (it reads the latest committed state), so
# the tenant does not get a second version 1 (that would be an error).
my $w = '44444444-4444-4444-8444-444444444444';
$s2->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
$s2->query_safe('SELECT 1');
my $first = $s1->query_safe("SELECT domi.encrypt_text('first', '$w')");
my $rr_box = $s2->query_safe("SELECT domi.encrypt_text('in rr', '$w')");
is($s2->query_safe("SELECT domi.decrypt_text('$first', '$w')"), 'first',
	'a REPEATABLE READ transaction opens a value under a key made after its snapshot');
$s2->query_safe('COMMIT');
is($s1->query_safe("SELECT domi.decrypt_text('$rr_box', '$w') || ' ' || count(*) FROM domi.tenant_keys WHERE tenant = '$w'"),
	'in rr 1', 'and sealed under that same key: the tenant has one key');

# A tenant without keys is remembered as such, until another session gives
# it one.
my $late = '55555555-5555-4555-8555-555555555555';
like(try($s2, "SELECT domi.decrypt('\\x00', '$late')"), qr/^42704: encrypted value is not under any key of tenant $late/,
	'session 2 learns that a tenant has no key');
my $late_box = $s1->query_safe("SELECT domi.encrypt_text('late', '$late')");
is($s2->query_safe("SELECT domi.decrypt_text('$late_box', '$late')"), 'late',
	'and notices at once when session 1 makes its first key');

# The same inside one open transaction of session 2.  Its locks are taken
# already, so no new lock makes it read the invalidations: the keyring
# reads them itself at each call, or it would keep sealing under a rotated
# key, opening a retired one and using a destroyed one until the
# transaction ends.  (A retirement waits for the transactions open when it
# starts, so session 2 meets it in a transaction that began after it did.)
my $v = '66666666-6666-4666-8666-666666666666';
my $v1 = $s1->query_safe("SELECT domi.encrypt_text('v one', '$v')");
$s2->query_safe('BEGIN');
is($s2->query_safe("SELECT domi.decrypt_text('$v1', '$v')"), 'v one',
	'in an open transaction, session 2 opens a value under version 1');
$s1->query_safe("SELECT domi.rotate_tenant_key('$v')");
my $v2 = $s2->query_safe("SELECT domi.encrypt_text('v two', '$v')");
my $older = $node->background_psql('postgres');
$older->query_safe('BEGIN');
$older->query_safe('SELECT 1');
my $retire = "SELECT domi.retire_tenant_key('$v', 1)";
my ($retire_out, $retire_err) = ('', '');
my $retire_run = IPC::Run::start([ 'psql', '-X', '-q', '-d', $node->connstr('postgres'), '-c', $retire ],
	'>', \$retire_out, '2>', \$retire_err);
$node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE query = '" . ($retire =~ s/'/''/gr) . "' AND wait_event = 'virtualxid'")
  or die 'the retirement did not wait';
$s2->query_safe('COMMIT');
$s2->query_safe('BEGIN');
is($s2->query_safe("SELECT domi.decrypt_text('$v1', '$v')"), 'v one',
	'session 2, in a new transaction, opens version 1 while the retirement waits for an older one');
$older->query_safe('COMMIT');
$older->quit;
$retire_run->finish;
is($?, 0, 'the retirement completes when the older transaction ends');
is(try($s1, "SELECT domi.decrypt_text('$v2', '$v')"), 'ok',
	'session 2 had sealed under version 2 after the rotation (version 1 is retired now)');
like(try($s2, "SELECT domi.decrypt_text('$v1', '$v')"), qr/^55000: encrypted value is under a retired key/,
	'and its open transaction notices the retirement at its next statement');
$s1->query_safe("SELECT domi.destroy_tenant_keys('$v')");
like(try($s2, "SELECT domi.decrypt_text('$v2', '$v')"), qr/^55000: the keys of tenant .* have been destroyed/,
	'and the destruction: it opens nothing of the tenant any more');
like(try($s2, "SELECT domi.encrypt('x', '$v')"), qr/^55000: the keys of tenant/,
	'and seals nothing more for it');
$s2->query_safe('COMMIT');

# Destruction: the other session can neither open nor seal for the tenant.
$s1->query_safe("SELECT domi.destroy_tenant_keys('$t')");
like(try($s2, "SELECT domi.decrypt_text('$box2', '$t')"), qr/^55000: the keys of tenant .* have been destroyed/,
	'session 2 notices the destruction at once');
like(try($s2, "SELECT domi.encrypt('x', '$t')"), qr/^55000: the keys of tenant/,
	'and seals nothing more for that tenant');
$s1->quit;
$s2->quit;

# First use by many sessions at once: one key per tenant, no errors.
my $script = <<'SCRIPT';
\set n random(1, 40)
SELECT domi.encrypt('x', ('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0'))::uuid);
SCRIPT
$node->pgbench('--no-vacuum --client=8 --jobs=2 --transactions=100', 0,
	[qr{processed: 800/800}], [qr{^$}], 'eight sessions seal for forty new tenants at once, without errors',
	{ 'first_use' => $script });
is($node->safe_psql('postgres', q{
	SELECT count(*), count(DISTINCT tenant), max(version), bool_and(state = 'active')
	FROM domi.tenant_keys WHERE tenant::text LIKE '00000000-0000-4000-8000-%'}),
	'40|40|1|t', 'each of them got exactly one key, version 1');

# More tenants than one backend's key cache holds (4095 keys): the cache is
# wiped and refilled as it goes, and every value opens.
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM (SELECT md5(g::text)::uuid AS t, g FROM generate_series(1, 5000) g) s
	WHERE domi.decrypt_text(domi.encrypt_text('n' || g, t), t) = 'n' || g}),
	'5000', 'five thousand tenants in one statement: each value opens under its own key');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM (SELECT md5(g::text)::uuid AS t, g FROM generate_series(1, 5000, 7) g) s
	WHERE domi.decrypt_text(domi.encrypt_text('m' || g, t), t) = 'm' || g}),
	'715', 'and again in a new session, reading the keys back');

# Parallel workers decrypt (each fills its own cache, as the table owner).
my $p = '33333333-3333-4333-8333-333333333333';
$node->safe_psql('postgres', qq{
	CREATE TABLE boxes AS SELECT g AS id, domi.encrypt_text('v' || g, '$p') AS box
	FROM generate_series(1, 50000) g;
	ANALYZE boxes;
	CREATE ROLE reader LOGIN;
	GRANT SELECT ON boxes TO reader;
	GRANT EXECUTE ON FUNCTION domi.decrypt_text(bytea, uuid) TO reader;
});
my $parallel = q{
	SET max_parallel_workers_per_gather = 2;
	SET parallel_setup_cost = 0;
	SET parallel_tuple_cost = 0;
	SET min_parallel_table_scan_size = 0;
};
like($node->safe_psql('postgres', "$parallel EXPLAIN (COSTS OFF) SELECT count(*) FROM boxes WHERE domi.decrypt_text(box, '$p') = 'v' || id",
		extra_params => [ '-U', 'reader' ]),
	qr/Workers Planned: 2/, 'decrypt runs in a parallel plan');
is($node->safe_psql('postgres', "$parallel SELECT count(*) FROM boxes WHERE domi.decrypt_text(box, '$p') = 'v' || id",
		extra_params => [ '-U', 'reader' ]),
	'50000', 'an unprivileged role decrypts every row with parallel workers');

$node->stop;
done_testing();
