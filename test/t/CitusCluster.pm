# A Citus cluster for the TAP tests test/t/12*.pl: a coordinator and two
# workers, each with citus and domi preloaded and the same keyring root
# key, the workers registered with the coordinator.  Ports: DOMI_CITUS_PORT
# and the two ports 10 and 20 above it (scripts/test suite_citus sets it;
# without it the scripts skip, so the plain TAP suite does not run them).
package CitusCluster;

use strict;
use warnings;
use Exporter 'import';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DomiKeyring;

our @EXPORT = qw(citus_cluster_or_skip);

# Returns ($coordinator, $worker1, $worker2), started and registered, with
# CREATE EXTENSION citus on each and CREATE EXTENSION domi on the
# coordinator (Citus creates it on the workers).
sub citus_cluster_or_skip
{
	my $base = $ENV{DOMI_CITUS_PORT};
	plan skip_all => 'Citus tests run in the citus suite (scripts/test citus)'
	  unless $base;

	my $key = write_key_file(
		"${PostgreSQL::Test::Utils::tmp_check}/citus_root.key",
		random_key_hex());
	my @nodes;
	for my $i (0 .. 2)
	{
		my $name = $i == 0 ? 'coordinator' : "worker$i";
		my $node = PostgreSQL::Test::Cluster->new($name, port => $base + 10 * $i);
		$node->init;
		$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'citus,domi'
domi.root_key_file = '$key'
listen_addresses = 'localhost'
max_prepared_transactions = 50
citus.node_conninfo = 'sslmode=disable'
citus.shard_count = 4
citus.log_distributed_deadlock_detection = off
citus.enable_statistics_collection = off
fsync = off
});
		$node->start;
		$node->safe_psql('postgres', 'CREATE EXTENSION citus');
		push @nodes, $node;
	}
	my ($coord, $w1, $w2) = @nodes;
	$coord->safe_psql('postgres', sprintf(q{
		SELECT citus_set_coordinator_host('localhost', %d);
		SELECT citus_add_node('localhost', %d);
		SELECT citus_add_node('localhost', %d);
		CREATE EXTENSION domi;
	}, $coord->port, $w1->port, $w2->port));
	return @nodes;
}

1;
