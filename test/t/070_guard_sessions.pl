# The drop guard across sessions, roles and server configuration: the
# override counts only as SET LOCAL in the transaction that drops (not from
# ALTER ROLE ... SET, PGOPTIONS or postgresql.conf, nor from another session),
# an allowed drop leaves a LOG line naming the role, the column and the
# statement, the guard holds under session_replication_role = replica (where
# ordinary event triggers are skipped), against protections committed while
# a DROP waits for its lock or after a REPEATABLE READ snapshot was taken,
# and across a restart.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('guard');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'domi'");
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION domi;
	CREATE EXTENSION citext;
	CREATE ROLE migrator LOGIN;
	CREATE ROLE app_user LOGIN;
	CREATE ROLE replicator LOGIN SUPERUSER;
	CREATE SCHEMA app AUTHORIZATION migrator;
	GRANT USAGE ON SCHEMA app TO app_user;
});

sub as_role
{
	my ($role, $sql) = @_;
	return $node->psql('postgres', "\\set VERBOSITY verbose\n$sql",
		extra_params => [ '-U', $role ]);
}

sub columns
{
	return $node->safe_psql('postgres', q{
		SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute
		WHERE attrelid = 'app.items'::regclass AND attnum > 0 AND NOT attisdropped});
}

sub make_items
{
	my ($ret, $out, $err) = as_role('migrator', q{
		DROP TABLE IF EXISTS app.items;
		CREATE TABLE app.items (id int PRIMARY KEY, embedding public.citext, note text);
		INSERT INTO app.items VALUES (1, 'Alpha', 'keep');
		GRANT SELECT ON app.items TO app_user;
		SELECT domi.protect_column('app.items', 'embedding');
	});
	is($ret, 0, 'the migration role makes app.items and protects its embedding column')
	  or diag($err);
}

make_items();
my $drop = 'ALTER TABLE app.items DROP COLUMN embedding';

my ($ret, $stdout, $stderr) = as_role('migrator', $drop);
isnt($ret, 0, 'the owner cannot drop the protected column');
like($stderr, qr/2BP01.*cannot drop protected column "embedding" of table "app.items"/,
	'with SQLSTATE 2BP01 and the column named');
like($stderr, qr/SET LOCAL domi\.allow_drop = 'app\.items\.embedding'/,
	'and the hint gives the exact override');

# The application role can read the view, but not protect or unprotect.
is($node->safe_psql('postgres', 'SELECT allow_drop FROM domi.protected_columns',
		extra_params => [ '-U', 'app_user' ]),
	'app.items.embedding', 'every role can read domi.protected_columns');
($ret, $stdout, $stderr) = as_role('app_user', "SELECT domi.unprotect_column('app.items', 'embedding')");
like($stderr, qr/42501/, 'a role that does not own the table cannot unprotect it');

# Session-level values do not count, wherever they come from.
$node->safe_psql('postgres', "ALTER ROLE migrator SET domi.allow_drop = 'app.items.embedding'");
($ret, $stdout, $stderr) = as_role('migrator', "SHOW domi.allow_drop;\n$drop");
like($stdout, qr/app\.items\.embedding/, 'ALTER ROLE ... SET gives the session the value');
like($stderr, qr/2BP01.*not with SET LOCAL in this transaction/s,
	'but the drop is refused, and the error says why');
$node->safe_psql('postgres', 'ALTER ROLE migrator RESET domi.allow_drop');

{
	local $ENV{PGOPTIONS} = '-c domi.allow_drop=app.items.embedding';
	($ret, $stdout, $stderr) = as_role('migrator', $drop);
	like($stderr, qr/2BP01/, 'a value from PGOPTIONS (connection start) is refused too');
}

$node->append_conf('postgresql.conf', "domi.allow_drop = 'app.items.embedding'");
$node->reload;
($ret, $stdout, $stderr) = as_role('migrator', "SELECT pg_sleep(0.1); SHOW domi.allow_drop;\n$drop");
like($stdout, qr/app\.items\.embedding/, 'postgresql.conf sets the value for every session');
like($stderr, qr/2BP01/, 'and a drop is still refused');
$node->adjust_conf('postgresql.conf', 'domi.allow_drop', "''");
$node->reload;
is(columns(), 'id,embedding,note', 'the column survived every attempt');

# Two sessions: one transaction's SET LOCAL is nobody else's.  A background
# session keeps what a query wrote to stderr (notices, errors): take it and
# clear it.
sub bg
{
	my ($session, $sql) = @_;
	my $out = $session->query($sql);
	my $err = $session->{stderr};
	$session->{stderr} = '';
	return ($out, $err);
}
my $s1 = $node->background_psql('postgres', on_error_stop => 0, extra_params => [ '-U', 'migrator' ]);
my $s2 = $node->background_psql('postgres', on_error_stop => 0, extra_params => [ '-U', 'migrator' ]);
bg($s1, "BEGIN; SET LOCAL domi.allow_drop = 'app.items.embedding'");
my ($out, $err) = bg($s2, $drop);
like($err, qr/cannot drop protected column/, 'another session of the same role is refused meanwhile');
($out, $err) = bg($s1, $drop);
like($err, qr/NOTICE:  protected column "embedding" of table "app.items" dropped under domi.allow_drop/,
	'the session that ran SET LOCAL drops the column, with a notice');
is((bg($s1, 'SELECT count(*) FROM domi.protected_columns'))[0], '0', 'and its protection goes with it');
is((bg($s2, 'SELECT count(*) FROM domi.protected_columns'))[0], '1',
	'which other sessions see only once it commits');
bg($s1, 'COMMIT');
is((bg($s2, 'SELECT count(*) FROM domi.protected_columns'))[0], '0', 'committed');
is((bg($s1, 'SHOW domi.allow_drop'))[0], '', 'and the setting ended with the transaction');
$s1->quit;
$s2->quit;
is(columns(), 'id,note', 'the column is gone');

my $log = slurp_file($node->logfile);
like($log, qr/LOG:  protected column "embedding" of table "app.items" dropped under domi.allow_drop/,
	'the allowed drop is in the server log');
like($log, qr/DETAIL:  Role "migrator" ran ALTER TABLE with SET LOCAL domi.allow_drop naming app.items.embedding\./,
	'with the role, the statement and the column');

# Replica mode: ordinary event triggers are skipped there, the guard is not.
make_items();
$node->safe_psql('postgres', q{
	CREATE FUNCTION public.origin_probe() RETURNS event_trigger LANGUAGE plpgsql
		AS $$ BEGIN RAISE EXCEPTION 'an origin-mode event trigger fired'; END $$;
	CREATE EVENT TRIGGER origin_probe ON sql_drop EXECUTE FUNCTION public.origin_probe();
});
($ret, $stdout, $stderr) = as_role('replicator', 'ALTER TABLE app.items DROP COLUMN note');
like($stderr, qr/origin-mode event trigger fired/, 'in origin mode an ordinary event trigger fires');
($ret, $stdout, $stderr) = as_role('replicator',
	"SET session_replication_role = replica;\nALTER TABLE app.items DROP COLUMN note");
is($ret, 0, 'under session_replication_role = replica it is skipped (the unprotected column drops)');
($ret, $stdout, $stderr) = as_role('replicator',
	"SET session_replication_role = replica;\n$drop");
like($stderr, qr/2BP01.*cannot drop protected column/, 'but the guard still refuses the protected column');
$node->safe_psql('postgres', 'ALTER ROLE replicator SET session_replication_role = replica');
($ret, $stdout, $stderr) = as_role('replicator', q{
	SHOW session_replication_role;
	ALTER TABLE app.items ALTER COLUMN embedding TYPE text;
});
like($stdout, qr/replica/, 'a role whose sessions start in replica mode');
like($stderr, qr/2BP01.*cannot change the type of protected column/, 'cannot retype the column');
($ret, $stdout, $stderr) = as_role('replicator', 'DROP SCHEMA app CASCADE');
like($stderr, qr/2BP01.*DROP SCHEMA would drop it/s, 'nor drop its schema');
$node->safe_psql('postgres', q{
	ALTER ROLE replicator RESET session_replication_role;
	DROP EVENT TRIGGER origin_probe;
	DROP FUNCTION public.origin_probe();
});
is(columns(), 'id,embedding', 'the protected column survived replica mode');

# Concurrency: protect_column locks the table, so a DROP that commits while
# it waits leaves no protection of a table that is gone, and a protection
# committed while a DROP waits is seen by that DROP.
$node->safe_psql('postgres', 'CREATE TABLE app.race (id int, secret text); ALTER TABLE app.race OWNER TO migrator');
my $dropper = $node->background_psql('postgres', on_error_stop => 0, extra_params => [ '-U', 'migrator' ]);
my $protector = $node->background_psql('postgres', on_error_stop => 0, extra_params => [ '-U', 'migrator' ]);
bg($dropper, 'BEGIN; DROP TABLE app.race');
# Sent without waiting for the answer: it waits for the dropper's lock.
$protector->{stdin} .= "SELECT domi.protect_column('app.race', 'secret');\n\\echo protect-done\n";
$protector->{run}->pump_nb;
$node->poll_query_until('postgres', q{SELECT count(*) > 0 FROM pg_stat_activity
	WHERE wait_event_type = 'Lock' AND query LIKE '%protect_column%'})
  or die 'protect_column did not wait for the lock';
bg($dropper, 'COMMIT');
$protector->{run}->pump until $protector->{stdout} =~ /protect-done/;
like($protector->{stderr}, qr/relation with OID \d+ does not exist/, 'protect_column waiting on a DROP that commits fails: the table is gone');
$protector->{stderr} = '';
$protector->{stdout} = '';
is($node->safe_psql('postgres', 'SELECT count(*) FROM domi._protected_columns'), '1',
	'and the registry holds no row for it');

$node->safe_psql('postgres', 'CREATE TABLE app.race (id int, secret text); ALTER TABLE app.race OWNER TO migrator');
bg($protector, "BEGIN; SELECT domi.protect_column('app.race', 'secret')");
$dropper->{stdin} .= "DROP TABLE app.race;\n\\echo drop-done\n";
$dropper->{run}->pump_nb;
$node->poll_query_until('postgres', q{SELECT count(*) > 0 FROM pg_stat_activity
	WHERE wait_event_type = 'Lock' AND query LIKE 'DROP TABLE app.race%'})
  or die 'DROP TABLE did not wait for the lock';
bg($protector, 'COMMIT');
$dropper->{run}->pump until $dropper->{stdout} =~ /drop-done/;
like($dropper->{stderr}, qr/cannot drop protected column "secret" of table "app.race"/,
	'a DROP waiting on protect_column sees the committed protection and is refused');
$dropper->quit;
$protector->quit;
$node->safe_psql('postgres', q{SELECT domi.unprotect_column('app.race', 'secret'); DROP TABLE app.race});

# REPEATABLE READ: a protection committed after the dropping transaction took
# its snapshot still stops the drop (the guard reads its registry with the
# latest snapshot, as PostgreSQL's own catalog checks do).
$node->safe_psql('postgres', 'CREATE TABLE app.race (id int, secret text); ALTER TABLE app.race OWNER TO migrator');
my $rr = $node->background_psql('postgres', on_error_stop => 0, extra_params => [ '-U', 'migrator' ]);
bg($rr, 'BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM domi.protected_columns');
$node->safe_psql('postgres', "SELECT domi.protect_column('app.race', 'secret')",
	extra_params => [ '-U', 'migrator' ]);
($out, $err) = bg($rr, 'ALTER TABLE app.race DROP COLUMN secret');
like($err, qr/cannot drop protected column "secret" of table "app.race"/,
	'a REPEATABLE READ transaction whose snapshot predates the protection is refused too');
bg($rr, 'COMMIT');
$rr->quit;
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_attribute
	WHERE attrelid = 'app.race'::regclass AND attname = 'secret' AND NOT attisdropped}), '1',
	'and the column is still there');
$node->safe_psql('postgres', q{SELECT domi.unprotect_column('app.race', 'secret'); DROP TABLE app.race});

# A restart changes nothing.
$node->restart;
($ret, $stdout, $stderr) = as_role('migrator', 'DROP TABLE app.items');
like($stderr, qr/2BP01.*cannot drop protected column "embedding"/, 'after a restart the guard still refuses');

$node->stop;
done_testing();
