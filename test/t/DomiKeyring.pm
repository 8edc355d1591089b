# Helpers shared by the keyring TAP tests (test/t/02x_keyring_*.pl).
package DomiKeyring;

use strict;
use warnings;
use Exporter 'import';

our @EXPORT = qw(random_key_hex write_key_file psql_error);

# 32 random bytes as 64 lower-case hex characters: a root key.
sub random_key_hex
{
	open my $fh, '<:raw', '/dev/urandom' or die "cannot open /dev/urandom: $!";
	read($fh, my $bytes, 32) == 32 or die "short read from /dev/urandom";
	close $fh;
	return unpack('H*', $bytes);
}

# Write content to path with the given mode (0600 unless said otherwise).
sub write_key_file
{
	my ($path, $content, $mode) = @_;
	open my $fh, '>', $path or die "cannot write $path: $!";
	print $fh $content;
	close $fh;
	chmod(defined $mode ? $mode : 0600, $path) or die "cannot chmod $path: $!";
	return $path;
}

# Run SQL that must fail; returns its stderr (verbose: with the SQLSTATE).
sub psql_error
{
	my ($node, $db, $sql, %opts) = @_;
	my ($ret, $stdout, $stderr) = $node->psql($db, "\\set VERBOSITY verbose\n$sql", %opts);
	return $ret == 0 ? "(no error; output: $stdout)" : $stderr;
}

1;
