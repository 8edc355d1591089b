# Nonces must never repeat across processes.  With domi preloaded, the
# postmaster seeds the random generator when it loads the library, so every
# backend and parallel worker starts from a copy of that state: without the
# fork guards in src/random.c they would all hand out the same nonces.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('nonces');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'domi'
max_worker_processes = 8
max_parallel_workers = 4
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION domi');

my $key = '\x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f';
my %seen;
my $total = 0;

# Record nonces (hex, one per line) and count repeats among everything seen.
sub record
{
	my ($lines) = @_;
	my $dups = 0;
	for my $n (split /\n/, $lines)
	{
		$dups++ if $seen{$n}++;
		$total++;
	}
	return $dups;
}

my $nonces_sql = "SELECT encode(substr(domi.secretbox('', '$key'), 1, 24), 'hex') FROM generate_series(1, 200)";

# Many fresh backends, each reporting its first nonces: the ones a copied
# buffer would repeat.
my $dups = 0;
for my $i (1 .. 20)
{
	$dups += record($node->safe_psql('postgres', $nonces_sql));
}
is($total, 4000, 'twenty new backends made 200 nonces each');
is($dups, 0, 'no nonce repeats across twenty new backends');

# Two backends open at the same time, interleaving their calls.
my $s1 = $node->background_psql('postgres');
my $s2 = $node->background_psql('postgres');
$dups = 0;
for my $round (1 .. 5)
{
	$dups += record($s1->query_safe($nonces_sql));
	$dups += record($s2->query_safe($nonces_sql));
}
is($dups, 0, 'no nonce repeats between two concurrent backends');
$s1->quit;
$s2->quit;

# Keys come from the same generator: they must differ across backends too.
my %keys;
for my $i (1 .. 10)
{
	$keys{ $node->safe_psql('postgres', 'SELECT encode(domi.gen_key(), \'hex\')') }++;
}
is(scalar(keys %keys), 10, 'gen_key in ten new backends gives ten different keys');

# Parallel workers: the secretbox call runs below the Gather, in the workers
# and the leader; every nonce of the query is collected and compared.
$node->safe_psql('postgres', q{
	CREATE TABLE plain AS SELECT g FROM generate_series(1, 300000) g;
	ANALYZE plain;
});
my $parallel = q{
	SET max_parallel_workers_per_gather = 3;
	SET parallel_setup_cost = 0;
	SET parallel_tuple_cost = 0;
	SET min_parallel_table_scan_size = 0;
	SET parallel_leader_participation = off;
};
my $query = "SELECT encode(substr(domi.secretbox(int4send(g), '$key'), 1, 24), 'hex') FROM plain";

my $plan = $node->safe_psql('postgres', "$parallel EXPLAIN (ANALYZE, VERBOSE, COSTS OFF, TIMING OFF) $query");
like($plan, qr/Workers Launched: [2-9]/, 'the query ran in at least two parallel workers');
like($plan, qr/Gather.*\n.*Output: .*\n.*Workers.*\n.*Parallel Seq Scan.*\n\s+Output: encode\(substr\(domi\.secretbox/s,
	'and secretbox was evaluated in the workers, below the Gather');

my $before = $total;
$dups = record($node->safe_psql('postgres', "$parallel $query"));
is($total - $before, 300000, 'parallel workers made 300000 nonces');
is($dups, 0, 'no nonce repeats among parallel workers, nor with any backend before');

# The same nonces as boxes still open: the parallel path seals correctly.
is($node->safe_psql('postgres', "$parallel
	SELECT count(*) FROM plain WHERE domi.secretbox_open(domi.secretbox(int4send(g), '$key'), '$key') = int4send(g)"),
	'300000', 'boxes sealed in parallel workers open to their plaintext');

$node->stop;
done_testing();
