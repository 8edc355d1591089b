# The DDL ledger when domi is not in shared_preload_libraries: the first DDL
# of a session loads the library from inside the event trigger, after the
# statement began, so the statement hook did not see it and the ledger falls
# back to the whole query string.  A password in another statement of that
# string must still never be stored: each statement is redacted on its own.
# And a role's SET domi.ddl_ledger made before the library loaded does not
# turn the ledger off once it does.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('ledger_lazy');
$node->init;
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION domi;
	CREATE ROLE app LOGIN;
	GRANT CREATE ON SCHEMA public TO app;
});

is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_settings WHERE name = 'domi.ddl_ledger'}), '0',
	'a new session has not loaded domi');

# One query string of several statements, sent as one simple query: psql -c
# (psql reading a script would send them one by one).
sub one_query
{
	my ($sql, @args) = @_;
	return IPC::Run::run([ 'psql', '-X', '-d', $node->connstr('postgres'), @args, '-c', $sql ],
		'>', \my $stdout, '2>', \my $stderr);
}

ok(one_query(q{ALTER ROLE app PASSWORD 'lazy-secret-1'; CREATE TABLE first_ddl (x int)}),
	'the multi-statement string runs');
is($node->safe_psql('postgres', q{SELECT count(*) FROM domi._ddl_ledger WHERE statement ~ 'lazy-secret'}), '0',
	'the password is not in the ledger');
is($node->safe_psql('postgres', q{SELECT statement FROM domi.ddl_ledger WHERE command_tag = 'CREATE TABLE'}),
	'<redacted>; CREATE TABLE first_ddl (x int)',
	'the whole string is stored, its ALTER ROLE redacted');

# Once loaded, the hook gives each statement its own text.
one_query(q{SELECT domi.current_tenant(); ALTER ROLE app PASSWORD 'lazy-secret-2'; CREATE TABLE second_ddl (x int)});
is($node->safe_psql('postgres', q{SELECT statement FROM domi.ddl_ledger WHERE statement LIKE '%second_ddl%'}),
	'CREATE TABLE second_ddl (x int)', 'with the library loaded, only the statement itself');
is($node->safe_psql('postgres', q{SELECT count(*) FROM domi._ddl_ledger WHERE statement ~ 'lazy-secret'}), '0',
	'and still no password');

# An ordinary role cannot turn the ledger off before the library loads.
one_query(q{SET domi.ddl_ledger = off; CREATE TABLE app_table (x int)}, '-U', 'app');
is($node->safe_psql('postgres', q{SELECT role FROM domi.ddl_ledger WHERE statement LIKE '%app_table%'}),
	'app', "the role's DDL is recorded all the same");

$node->stop;
done_testing();
