# Tenant lookup through the memberships index, against other sessions:
# rows another session inserts, updates or deletes without committing yet
# are seen as the lookup's snapshot sees them; and an index built over
# broken HOT chains (pg_index.indcheckxmin) is not scanned by a transaction
# whose snapshot is older than it, where its entries could name another
# user than the row version that snapshot sees.  Each answer is compared
# with the plain query's, and the index's scan count in the transaction
# (pg_stat_get_xact_numscans) shows which path answered.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('tenancy_index');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'domi'");
# No autovacuum: the VACUUM below must make every page all-visible.
$node->append_conf('postgresql.conf', "autovacuum = off");
$node->start;

my $a = 'aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa';
my $b = 'bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb';
my $c = 'cccccccc-cccc-cccc-cccc-cccccccccccc';

# No index at first: an UPDATE of user_id is a HOT update.
$node->safe_psql('postgres', qq{
	CREATE EXTENSION domi;
	SET domi.rls_guard = off;
	CREATE TABLE members (user_id text NOT NULL, tenant_id uuid NOT NULL,
		created_at timestamptz NOT NULL);
	INSERT INTO members VALUES ('victim', '$a', '2024-01-01'), ('bob', '$b', '2024-01-01');
	SELECT domi.configure_tenancy('members');
});

my $s1 = $node->background_psql('postgres');
my $s2 = $node->background_psql('postgres');

# The lookup, the plain query (which the planner answers without the
# lookup index when it may not use it), and how many scans of the lookup
# index this transaction made so far.
sub answers
{
	my ($session, $user) = @_;
	return $session->query_safe(qq{
		SELECT coalesce(domi.user_tenant('$user')::text, 'none') || ' '
			|| coalesce((SELECT tenant_id::text FROM members WHERE user_id = '$user'
				ORDER BY created_at, tenant_id LIMIT 1), 'none')});
}

sub lookup_index_scans
{
	my ($session) = @_;
	return $session->query_safe(q{
		SELECT pg_stat_get_xact_numscans('members_lookup'::regclass)});
}

# Session 1 takes its REPEATABLE READ snapshot; then the victim's row is
# HOT-updated to belong to "attacker", and the lookup index is built: its
# entry for that chain says "attacker", the version session 1 sees says
# "victim".
$s1->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
$s1->query_safe('SELECT 1');
$node->safe_psql('postgres', q{
	UPDATE members SET user_id = 'attacker' WHERE user_id = 'victim';
	CREATE INDEX members_lookup ON members (user_id, created_at, tenant_id);
});
is($node->safe_psql('postgres',
	q{SELECT indcheckxmin FROM pg_index WHERE indexrelid = 'members_lookup'::regclass}),
	't', 'the index was built over a broken HOT chain');
is(answers($s1, 'attacker'), 'none none',
	'the older snapshot: attacker has no membership (not the entry of the newer version)');
is(answers($s1, 'victim'), "$a $a", 'and victim still has tenant A');
is(lookup_index_scans($s1), '0', 'the lookups did not scan the index that snapshot may not use');
$s1->query_safe('COMMIT');

# A new transaction may use it, and does.
$s1->query_safe('BEGIN');
is(answers($s1, 'attacker'), "$a $a", 'a newer transaction: attacker has tenant A');
ok(lookup_index_scans($s1) > 0, 'through the lookup index');
$s1->query_safe('COMMIT');

# Session 2 changes bob's memberships and keeps its transaction open:
# session 1 sees the committed state, through the index.
$s2->query_safe(qq{
	BEGIN;
	DELETE FROM members WHERE user_id = 'bob';
	INSERT INTO members VALUES ('bob', '$c', '2023-01-01'), ('carol', '$c', '2023-01-01');
	UPDATE members SET user_id = 'bob' WHERE user_id = 'attacker';
});
$s1->query_safe('BEGIN');
is(answers($s1, 'bob'), "$b $b", 'uncommitted delete and insert: bob still has tenant B');
is(answers($s1, 'carol'), 'none none', 'an uncommitted new member is not seen');
is(answers($s1, 'attacker'), "$a $a", 'an uncommitted update of the user is not seen');
ok(lookup_index_scans($s1) > 0, 'through the lookup index');
$s1->query_safe('COMMIT');
is(answers($s2, 'bob'), "$c $c", 'the writing session sees its own changes');
$s2->query_safe('COMMIT');
is(answers($s1, 'bob'), "$c $c", 'after its commit, bob has tenant C');
is(answers($s1, 'attacker'), 'none none', 'and attacker none');
is($s1->query_safe(q{SELECT string_agg(t::text, ',') FROM domi.user_tenants('bob') t}), "$c,$a",
	'bob\'s tenants in order');

# Every page all-visible: the index-only scan reads no heap page, and the
# answers stay the same; a change makes its page not all-visible again.
$node->safe_psql('postgres', 'VACUUM (FREEZE) members');
is($node->safe_psql('postgres',
	q{SELECT relallvisible = relpages FROM pg_class WHERE oid = 'members'::regclass}),
	't', 'after VACUUM every page is all-visible');
$s1->query_safe('BEGIN');
is(answers($s1, 'bob'), "$c $c", 'all-visible: bob has tenant C');
is(answers($s1, 'carol'), "$c $c", 'and carol tenant C');
ok(lookup_index_scans($s1) > 0, 'through the lookup index');
$s1->query_safe('COMMIT');
$s2->query_safe(qq{BEGIN; DELETE FROM members WHERE user_id = 'carol'});
is(answers($s1, 'carol'), "$c $c", 'a page not all-visible any more: an uncommitted delete is not seen');
$s2->query_safe('COMMIT');
is(answers($s1, 'carol'), 'none none', 'and after its commit carol has none');

$s1->quit;
$s2->quit;
done_testing();
