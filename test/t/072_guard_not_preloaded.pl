# The drop guard when domi is not in shared_preload_libraries: a session can
# SET LOCAL domi.allow_drop before anything has loaded domi's library (the
# value waits in a placeholder), and the event trigger that loads it must
# still see that the value was set with SET LOCAL in this transaction, and
# still refuse a session-level value.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('guard_lazy');
$node->init;
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION domi;
	CREATE TABLE t (a int, b int, c int, d int);
	SELECT domi.protect_column('t', 'b');
	SELECT domi.protect_column('t', 'c');
	SELECT domi.protect_column('t', 'd');
});

# Each psql call is a new session, in which domi's library is not loaded yet.
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_settings WHERE name = 'domi.allow_drop'}), '0',
	'a new session has not loaded domi');

my ($ret, $stdout, $stderr) = $node->psql('postgres', q{
	BEGIN;
	SET LOCAL domi.allow_drop = 'public.t.b';
	ALTER TABLE t DROP COLUMN b;
	COMMIT;
});
is($ret, 0, 'SET LOCAL before the library is loaded allows the drop');
like($stderr, qr/protected column "b" of table "public.t" dropped under domi.allow_drop/, 'with the notice');

($ret, $stdout, $stderr) = $node->psql('postgres', q{
	SET domi.allow_drop = 'public.t.c';
	ALTER TABLE t DROP COLUMN c;
});
like($stderr, qr/cannot drop protected column "c".*not with SET LOCAL in this transaction/s,
	'a session-level SET before the library is loaded is still refused');

($ret, $stdout, $stderr) = $node->psql('postgres', q{
	BEGIN;
	SET LOCAL domi.allow_drop = 'not a column';
	ALTER TABLE t DROP COLUMN d;
	COMMIT;
});
like($stderr, qr/invalid value for parameter "domi.allow_drop"/,
	'a malformed value set before the library is loaded is reported when it loads');
like($stderr, qr/cannot drop protected column "d"/, 'and allows nothing');

is($node->safe_psql('postgres', q{
	SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute
	WHERE attrelid = 't'::regclass AND attnum > 0 AND NOT attisdropped}),
	'a,c,d', 'only the allowed column is gone');

$node->stop;
done_testing();
