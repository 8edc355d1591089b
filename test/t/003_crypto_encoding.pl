# The text functions in a database whose encoding is not UTF-8: boxes always
# hold UTF-8 (what Node applications seal and expect), converted on the way
# in and out, and text the database cannot hold is refused without quoting
# its bytes.  pg_regress runs in one UTF-8 database, so this needs its own.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('encoding');
$node->init;
$node->start;
$node->safe_psql('postgres', q{CREATE DATABASE latin1 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0});
$node->safe_psql('latin1', 'CREATE EXTENSION domi');

my $key = q{'\x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f'::bytea};

# 'é' is one byte in LATIN1 (e9) and two in UTF-8 (c3 a9).
is($node->safe_psql('latin1', "SELECT encode(domi.secretbox_open(domi.secretbox_text(chr(233), $key), $key), 'hex')"),
	'c3a9', 'secretbox_text seals the UTF-8 bytes of LATIN1 text');
is($node->safe_psql('latin1', "SELECT domi.secretbox_open_text(domi.secretbox_text(chr(233) || 'clair', $key), $key) = chr(233) || 'clair'"),
	't', 'secretbox_open_text converts back to LATIN1');
is($node->safe_psql('latin1', "SELECT domi.secretbox_open_text(domi.secretbox('\\xc3a9', $key), $key) = chr(233)"),
	't', 'a UTF-8 box sealed elsewhere opens as LATIN1 text');

# 東京 (e6 9d b1 e4 ba ac) has no LATIN1 form.
my ($ret, $out, $err) = $node->psql('latin1',
	"\\set VERBOSITY verbose\nSELECT domi.secretbox_open_text(domi.secretbox('\\xe69db1e4baac', $key), $key)");
isnt($ret, 0, 'text the database encoding cannot hold is refused');
like($err, qr/22P05/, 'with SQLSTATE 22P05');
like($err, qr/cannot hold/, 'and a message that names the problem');
unlike($err, qr/0x|\\x|e69d|e6 9d|\x{6771}/i, 'without quoting any byte of the plaintext');

# The session is still usable after the refused conversion.
is($node->safe_psql('latin1', "SELECT domi.secretbox_open_text(domi.secretbox_text('ok', $key), $key)"),
	'ok', 'later calls work normally');

$node->stop;
done_testing();
