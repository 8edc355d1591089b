# The lineage checker in a database whose encoding is not UTF-8: the
# migrators hash the UTF-8 bytes of each file, so the checker must hash the
# UTF-8 form of what it received, not the database's LATIN1 form.  Runs the
# installed client domi-lineage (on PATH with the server's binaries) against
# a folder written here.  pg_regress runs in one UTF-8 database, so this
# needs its own.
use strict;
use warnings;
use Digest::SHA qw(sha256_hex);
use File::Path qw(make_path);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('lineage_encoding');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'domi'");
$node->start;
$node->safe_psql('postgres', q{CREATE DATABASE latin1 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0});
$node->safe_psql('latin1', 'CREATE EXTENSION domi');
$node->safe_psql('latin1', 'CREATE SCHEMA drizzle; CREATE TABLE drizzle.__drizzle_migrations (id serial PRIMARY KEY, hash text NOT NULL, created_at bigint)');

# A one-migration drizzle-kit folder whose SQL has a non-ASCII character,
# written as UTF-8 bytes (é is c3 a9), as drizzle-kit writes files.
my $dir = PostgreSQL::Test::Utils::tempdir();
make_path("$dir/meta");
my $when = 1733000000000;
my $sql = "-- caf\xc3\xa9\nCREATE TABLE t (x int);";

sub write_file
{
	my ($name, $bytes) = @_;
	open(my $fh, '>:raw', "$dir/$name") or die "cannot write $name: $!";
	print $fh $bytes;
	close($fh);
}
write_file('0000_init.sql', $sql);
write_file('meta/_journal.json',
	qq({"version": "7", "dialect": "postgresql", "entries": [{"idx": 0, "version": "7", "when": $when, "tag": "0000_init", "breakpoints": true}]}));
write_file('meta/0000_snapshot.json',
	q({"id": "a0000000-0000-4000-8000-000000000000", "prevId": "00000000-0000-0000-0000-000000000000", "version": "7", "dialect": "postgresql", "tables": {}}));

# Recorded as drizzle-kit migrate records it: sha256 of the UTF-8 bytes.
$node->safe_psql('latin1',
	"INSERT INTO drizzle.__drizzle_migrations (hash, created_at) VALUES ('" . sha256_hex($sql) . "', $when)");

sub lineage
{
	my ($out, $err) = ('', '');
	local $ENV{PGHOST} = $node->host;
	local $ENV{PGPORT} = $node->port;
	local $ENV{PGDATABASE} = 'latin1';
	my $ok = IPC::Run::run([ 'domi-lineage', $dir ], '>', \$out, '2>', \$err);
	return ($? >> 8, $out, $err);
}

my ($status, $out, $err) = lineage();
is($status, 0, 'the applied file matches its recorded hash in a LATIN1 database');
like($out, qr/^domi-lineage: 0 errors, 0 warnings, 0 info in /m, 'and there is no finding');

# The same text as LATIN1 bytes is not UTF-8: the client reads it as
# drizzle-orm does, with U+FFFD for the bad byte, which LATIN1 cannot hold.
write_file('0000_init.sql', "-- caf\xe9\nCREATE TABLE t (x int);");
($status, $out, $err) = lineage();
is($status, 2, 'a file that is not UTF-8 cannot be checked in a LATIN1 database');
like($err, qr/could not check: .*0xef 0xbf 0xbd in encoding "UTF8" has no equivalent in encoding "LATIN1"/,
	'the client read it with U+FFFD, as drizzle-orm does, and passes on why');

write_file('0000_init.sql', $sql . "\nCREATE INDEX ON t (x);");
($status, $out, $err) = lineage();
is($status, 1, 'an edit after it ran is an error');
like($out, qr/^error: applied_hash_mismatch: 0000_init: /m, 'named applied_hash_mismatch');

# Text LATIN1 cannot hold: the server refuses the manifest, nothing is checked.
write_file('0000_init.sql', "-- \xe6\x9d\xb1\xe4\xba\xac\nCREATE TABLE t (x int);");
($status, $out, $err) = lineage();
is($status, 2, 'a file the database encoding cannot hold cannot be checked');
like($err, qr/could not check: .*LATIN1/, 'and the client passes on why');
is($out, '', 'with nothing on stdout');

done_testing();
