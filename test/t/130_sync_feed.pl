# The change feed against concurrent writers: several sessions write a
# synced table in transactions that commit in another order than they
# began, some held open across many pulls, some rolled back (whole or to a
# savepoint), while a puller pages through domi.changes().  At the end,
# what the puller applied must be exactly the table's final state, and its
# cursors must only ever move forward.  The same interleaving pulled by a
# plain "seq greater than the last one seen" cursor loses changes: that
# shows the interleaving really has the race the feed is built against.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $TRANSACTIONS = $ENV{DOMI_FEED_TRANSACTIONS} || 2000;
my $KEYS = 150;
my $PAGE = 7;
srand(130);

my $node = PostgreSQL::Test::Cluster->new('feed');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'domi'");
$node->append_conf('postgresql.conf', "max_connections = 20");
$node->start;

my $ta = '0000000a-0000-0000-0000-000000000000';
my $tb = '0000000b-0000-0000-0000-000000000000';
$node->safe_psql('postgres', q{
	SET client_min_messages = warning;
	CREATE EXTENSION domi;
	CREATE ROLE app LOGIN;
	CREATE TABLE items (id int PRIMARY KEY, tenant_id uuid NOT NULL DEFAULT domi.current_tenant(),
		v text, n int);
	SELECT domi.enable_tenant_rls('items');
	SELECT domi.enable_field_sync('items');
	GRANT SELECT, INSERT, UPDATE, DELETE ON items TO app;
});

# ----------------------------------------------------------------------
# The puller: pages of domi.changes() applied to a model of the table.
# ----------------------------------------------------------------------
my $puller = $node->background_psql('postgres', extra_params => [ '-U', 'app' ]);
my %model;					# id => "v|n"
my $cursor;
my $pulled = 0;
my $backwards = 0;

sub pull_page
{
	my $since = defined $cursor ? "'$cursor'" : 'NULL';
	my $out = $puller->query_safe(
		"BEGIN; SET LOCAL domi.tenant_id = '$ta';
		SELECT coalesce(pk->>'id', ''), coalesce(deleted::text, ''), coalesce(\"row\"->>'v', ''),
			coalesce(\"row\"->>'n', ''), cursor
		FROM domi.changes('items', $since, $PAGE); COMMIT;");
	my $n = 0;
	for my $line (split /\n/, $out)
	{
		my ($id, $deleted, $v, $n_, $c) = split /\|/, $line, -1;
		next unless defined $c && length $c == 50;
		$n++;
		# hex, fixed width, (xid, seq) big-endian first: text order is feed order
		$backwards++ if defined $cursor && substr($c, 0, 34) le substr($cursor, 0, 34);
		$cursor = $c;
		next if $id eq '';	# a row with only a cursor
		$pulled++;
		if ($deleted eq 'true') { delete $model{$id}; }
		else { $model{$id} = "$v|$n_"; }
	}
	return $n;
}

# The control: a cursor on the shadow's sequence alone (what a change log
# stamped with a number at write time gives), read as the superuser.
my $naive = $node->background_psql('postgres');
my %naive_model;
my $naive_seq = 0;

sub naive_page
{
	my $out = $naive->query_safe(
		"SELECT s.id, s.tombstone IS NOT NULL, coalesce(i.v, ''), coalesce(i.n::text, ''), s.seq
		FROM domi_sync.public__items s LEFT JOIN items i ON i.id = s.id
		WHERE s.seq > $naive_seq AND s.tenant_id = '$ta' ORDER BY s.seq LIMIT $PAGE");
	for my $line (split /\n/, $out)
	{
		my ($id, $deleted, $v, $n, $seq) = split /\|/, $line, -1;
		$naive_seq = $seq;
		if ($deleted eq 't') { delete $naive_model{$id}; }
		else { $naive_model{$id} = "$v|$n"; }
	}
}

# ----------------------------------------------------------------------
# A scenario by hand first: T1 begins and writes, T2 writes and commits
# first; T2's change must wait for T1, then both come.
# ----------------------------------------------------------------------
my @w = map { $node->background_psql('postgres', extra_params => [ '-U', 'app' ]) } 1 .. 4;
$w[0]->query_safe("BEGIN; SET LOCAL domi.tenant_id = '$ta'; INSERT INTO items (id, v, n) VALUES (1, 'first', 1)");
$w[1]->query_safe("BEGIN; SET LOCAL domi.tenant_id = '$ta'; INSERT INTO items (id, v, n) VALUES (2, 'second', 2); COMMIT");
naive_page();
is(pull_page(), 0, 'a change committed after an older transaction began waits for it');
$w[0]->query_safe('COMMIT');
naive_page();
is(pull_page(), 2, 'once the older transaction commits, both changes come');
is(join(',', map { "$_=$model{$_}" } sort keys %model), '1=first|1,2=second|2',
	'with their values');
is($naive_model{1}, undef, 'the sequence-only cursor skipped the late commit');

# Compaction: a row changed 200 times in 200 transactions comes once.
$w[2]->query_safe("SET domi.client_id = 'loop'");
$w[2]->query_safe("BEGIN; SET LOCAL domi.tenant_id = '$ta'; UPDATE items SET n = n + 1 WHERE id = 2; COMMIT")
  for 1 .. 200;
$w[2]->query_safe("RESET domi.client_id");
is(pull_page(), 1, 'a row changed 200 times comes once');
is($model{2}, 'second|202', 'with its latest values');

# ----------------------------------------------------------------------
# The race: writers 0-2 write tenant a, writer 3 tenant b; random steps.
# ----------------------------------------------------------------------
my @open = (0, 0, 0, 0);		# is a transaction open
my @held = ({}, {}, {}, {});	# keys written by the open transaction
my %owner;						# key => writer holding its row lock
my $started = 0;
my $committed = 0;
my $rolled_back = 0;

sub tenant_of { return $_[0] == 3 ? $tb : $ta; }

sub free_key
{
	my ($wi) = @_;
	my $base = $wi == 3 ? 1000 : 0;
	for (1 .. 20)
	{
		my $k = $base + 1 + int(rand($KEYS));
		return $k if !defined $owner{$k} || $owner{$k} == $wi;
	}
	return undef;
}

sub write_step
{
	my ($wi) = @_;
	my $s = $w[$wi];
	if (!$open[$wi])
	{
		return if $started >= $TRANSACTIONS;
		$s->query_safe("BEGIN; SET LOCAL domi.tenant_id = '" . tenant_of($wi) . "'");
		$open[$wi] = 1;
		$started++;
	}
	my $k = free_key($wi);
	return unless defined $k;
	$owner{$k} = $wi;
	$held[$wi]{$k} = 1;
	my $r = rand();
	my $v = "w$wi-" . int(rand(1e6));
	if ($r < 0.15)
	{
		$s->query_safe("DELETE FROM items WHERE id = $k");
	}
	elsif ($r < 0.25)
	{
		# a subtransaction rolled back: its write must never be sent
		$s->query_safe("SAVEPOINT sp; UPDATE items SET v = 'undone' WHERE id = $k; ROLLBACK TO sp");
	}
	elsif ($r < 0.55)
	{
		$s->query_safe("UPDATE items SET n = n + 1 WHERE id = $k");
	}
	else
	{
		$s->query_safe("INSERT INTO items (id, v, n) VALUES ($k, '$v', 0)"
			  . " ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v");
	}
}

sub end_step
{
	my ($wi) = @_;
	return unless $open[$wi];
	if (rand() < 0.15)
	{
		$w[$wi]->query_safe('ROLLBACK');
		$rolled_back++;
	}
	else
	{
		$w[$wi]->query_safe('COMMIT');
		$committed++;
	}
	delete $owner{$_} for keys %{ $held[$wi] };
	$held[$wi] = {};
	$open[$wi] = 0;
}

while ($started < $TRANSACTIONS || grep { $_ } @open)
{
	my $r = rand();
	my $wi = int(rand(4));
	if ($started >= $TRANSACTIONS)
	{
		end_step($_) for 0 .. 3;
	}
	elsif ($r < 0.12)
	{
		pull_page();
		naive_page();
	}
	elsif ($r < 0.45)
	{
		# writer 0 keeps its transactions open long, across many pulls
		end_step($wi) if $wi != 0 || rand() < 0.08;
	}
	else
	{
		write_step($wi);
	}
}

# Everything has ended: pull to the end.
1 while pull_page() > 0;
1 while do { my $before = $naive_seq; naive_page(); $naive_seq != $before };

my $final = $node->safe_psql('postgres',
	"BEGIN; SET LOCAL domi.tenant_id = '$ta'; SELECT id, coalesce(v, ''), coalesce(n::text, '') FROM items ORDER BY id; COMMIT;",
	extra_params => [ '-U', 'app' ]);
my %truth = map { my ($id, $v, $n) = split /\|/, $_, -1; ($id => "$v|$n") } grep { /\|/ } split /\n/, $final;

my @wrong = grep { !defined $model{$_} || $model{$_} ne $truth{$_} } keys %truth;
push @wrong, grep { !exists $truth{$_} } keys %model;
note("$started transactions: $committed committed, $rolled_back rolled back; $pulled changes pulled; "
	  . scalar(keys %truth) . " rows at the end");
ok($committed > $TRANSACTIONS / 2 && $rolled_back > 50, 'the run committed and rolled back many transactions');
is(scalar(@wrong), 0, 'the puller ends with exactly the final state of tenant a')
  or diag('wrong keys: ' . join(',', sort { $a <=> $b } @wrong));
is($backwards, 0, 'cursors only ever moved forward (no change sent twice from one position)');
ok(!grep({ $_ > 1000 } keys %model), "tenant b's changes never reached tenant a's puller");

my @naive_wrong = grep { !defined $naive_model{$_} || $naive_model{$_} ne $truth{$_} } keys %truth;
push @naive_wrong, grep { !exists $truth{$_} } keys %naive_model;
ok(scalar(@naive_wrong) > 0, 'the same interleaving makes a sequence-only cursor lose changes')
  or diag('the interleaving did not exercise the race');
note(scalar(@naive_wrong) . ' rows wrong with the sequence-only cursor');

# A puller that sees all: pulling again from scratch gives the final state too.
%model = ();
$cursor = undef;
1 while pull_page() > 0;
my @wrong2 = grep { !defined $model{$_} || $model{$_} ne $truth{$_} } keys %truth;
push @wrong2, grep { !exists $truth{$_} && defined $model{$_} } keys %model;
is(scalar(@wrong2), 0, 'a pull from scratch gives the final state');

$_->quit for @w, $puller, $naive;
$node->stop;
done_testing();
