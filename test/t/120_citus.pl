# domi on a Citus cluster (a coordinator and two workers, domi on each with
# one root key): the tenant policy on distributed tables, the tenant context
# on the workers, the tenant lookups over a distributed memberships table,
# and the keyring as one for the cluster.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DomiKeyring;
use CitusCluster;

my ($coord, $w1, $w2) = citus_cluster_or_skip();

my $a = 'aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa';
my $b = 'bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb';

sub coord { return $coord->safe_psql('postgres', shift) }

sub as_app
{
	my ($sql) = @_;
	return $coord->safe_psql('postgres', "SET ROLE domi_app;\n$sql");
}

is($w1->safe_psql('postgres',
		q{SELECT extversion FROM pg_extension WHERE extname = 'domi'}),
	coord(q{SELECT extversion FROM pg_extension WHERE extname = 'domi'}),
	'domi is created on the workers too');

coord(q{
	CREATE ROLE domi_app LOGIN;
	SET domi.rls_guard = off;
	CREATE TABLE notes (tenant_id uuid NOT NULL, id int NOT NULL, body text);
	SELECT create_distributed_table('notes', 'tenant_id');
});
# 1. The policy on a distributed table, and on a table that is distributed
# after it got the policy.
my ($ret, $out, $err) = $coord->psql('postgres', q{SELECT domi.enable_tenant_rls('notes')});
is($ret, 0, 'enable_tenant_rls on a distributed table') or diag($err);
coord(q{
	SET domi.rls_guard = off;
	CREATE TABLE later (tenant_id uuid NOT NULL, n int);
	SELECT domi.enable_tenant_rls('later');
});
($ret, $out, $err) = $coord->psql('postgres',
	q{SELECT create_distributed_table('later', 'tenant_id')});
is($ret, 0, 'a table with domi\'s policy can be distributed') or diag($err);

# The shards carry the plain policy, ENABLE and FORCE.
is($w1->safe_psql('postgres', q{
	SET citus.override_table_visibility = off;
	SELECT count(*) FILTER (WHERE p.qual = '(tenant_id = domi.current_tenant())'
			AND p.with_check = '(tenant_id = domi.current_tenant())'
			AND c.relrowsecurity AND c.relforcerowsecurity) || '/' || count(*)
		FROM pg_policies p
		JOIN pg_class c ON c.relname = p.tablename
		JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = p.schemaname
		WHERE p.tablename ~ '^(notes|later)_[0-9]+$'
}), '4/4', 'the shards on a worker carry the plain policy, enabled and forced');

coord(qq{
	GRANT SELECT, INSERT, UPDATE, DELETE ON notes, later TO domi_app;
	INSERT INTO notes SELECT '$a', g, 'a' || g FROM generate_series(1, 5) g;
	INSERT INTO notes SELECT '$b', g, 'b' || g FROM generate_series(1, 3) g;
});

# 2. The tenant context reaches the workers.
is(as_app(qq{BEGIN; SELECT domi.set_tenant('$a') \\g /dev/null
	SELECT count(*) FROM notes; COMMIT;}),
	'5', 'set_tenant reaches the workers: the tenant\'s rows, no others');
is(as_app(q{BEGIN; SELECT count(*) FROM notes; COMMIT;}),
	'0', 'no tenant: no rows (fails closed)');
is(as_app(qq{BEGIN;
	SELECT count(*) FROM notes \\g /dev/null
	SELECT domi.set_tenant('$b') \\g /dev/null
	SELECT count(*) FROM notes; COMMIT;}),
	'3', 'set_tenant reaches connections the transaction had opened before');
is(as_app(qq{BEGIN;
	SET LOCAL citus.propagate_set_commands = 'local';
	SET LOCAL domi.tenant_id = '$a';
	SELECT count(*) FROM notes \\g /dev/null
	SELECT domi.set_tenant('$b') \\g /dev/null
	SELECT count(*) FROM notes; COMMIT;}),
	'3', 'set_tenant after a propagated SET LOCAL changes the workers too');
is(as_app(qq{BEGIN; SELECT domi.set_tenant('$a') \\g /dev/null
	SELECT domi.set_tenant(NULL) \\g /dev/null
	SELECT count(*) FROM notes; COMMIT;}),
	'0', 'set_tenant(NULL) clears the tenant on the workers');
is(as_app(qq{BEGIN; SELECT domi.set_tenant('$a') \\g /dev/null
	SHOW citus.propagate_set_commands; COMMIT;}),
	'none', 'citus.propagate_set_commands is left as it was');
($ret, $out, $err) = $coord->psql('postgres', qq{SET ROLE domi_app; BEGIN;
	SELECT domi.set_tenant('$a') \\g /dev/null
	INSERT INTO notes VALUES ('$b', 99, 'cross'); COMMIT;});
like($err, qr/violates row-level security policy/,
	'a write into another tenant is refused on the worker');
is(as_app(qq{BEGIN; SELECT domi.set_tenant('$a') \\g /dev/null
	INSERT INTO notes VALUES ('$a', 6, 'a6');
	UPDATE notes SET body = 'changed';
	SELECT count(*) FROM notes WHERE body = 'changed'; COMMIT;}),
	'6', 'writes under the tenant reach its rows');
is(coord(q{SELECT count(*) FROM notes WHERE body = 'changed'}),
	'6', 'and no other tenant\'s rows');

# 3. The tenant lookups over distributed tables, with the index the README
# recommends: on the coordinator that index belongs to the empty local
# shell of the table, so the lookups must not read it.
coord(qq{
	SET domi.rls_guard = off;
	CREATE TABLE tenants (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), name text);
	CREATE TABLE memberships (user_id text NOT NULL, tenant_id uuid NOT NULL,
		created_at timestamptz NOT NULL DEFAULT now());
	CREATE INDEX memberships_lookup ON memberships (user_id, created_at, tenant_id);
	SELECT create_distributed_table('tenants', 'id');
	SELECT create_distributed_table('memberships', 'tenant_id', colocate_with => 'tenants');
	INSERT INTO tenants VALUES ('$a', 'A'), ('$b', 'B');
	INSERT INTO memberships VALUES ('u1', '$a', '2024-01-01'), ('u1', '$b', '2024-02-01'),
		('u2', '$b', '2024-01-01');
	SELECT domi.configure_tenancy('memberships', tenants => 'tenants');
	GRANT EXECUTE ON FUNCTION domi.user_tenant(text), domi.is_member(text, uuid),
		domi.enter_tenant(text, uuid), domi.bootstrap_tenant(text, jsonb) TO domi_app;
});
is(as_app(q{SELECT domi.user_tenant('u1')}), $a, 'user_tenant reads the shards');
is(as_app(qq{SELECT domi.is_member('u1', '$b')::text || domi.is_member('u2', '$a')::text}),
	'truefalse', 'is_member reads the shards');
is(as_app(q{SELECT domi.bootstrap_tenant('u1')}), $a,
	'bootstrap_tenant returns the tenant the user has');
is(coord(q{SELECT (SELECT count(*) FROM tenants) || ' ' || (SELECT count(*) FROM memberships)}),
	'2 3', 'and creates no second tenant nor membership');
is(as_app(qq{BEGIN; SELECT domi.enter_tenant('u1', '$b') \\g /dev/null
	SELECT count(*) FROM notes; COMMIT;}),
	'3', 'enter_tenant reaches the workers');
my $new = as_app(q{SELECT domi.bootstrap_tenant('u3', '{"name": "C"}')});
is(coord(qq{SELECT name FROM tenants WHERE id = '$new'}), 'C',
	'bootstrap_tenant creates a tenant in the distributed table');
is(as_app(q{SELECT domi.user_tenant('u3')}), $new, 'and its membership');

# 4. One keyring for the cluster: a value encrypted on the coordinator opens
# where Citus runs the decryption, on a worker.
coord(qq{
	ALTER TABLE notes ADD COLUMN secret bytea;
	GRANT EXECUTE ON FUNCTION domi.encrypt_text(text), domi.decrypt_text(bytea) TO domi_app;
	-- Citus does not send grants on an extension's functions: on every node.
	SELECT run_command_on_workers(
		'GRANT EXECUTE ON FUNCTION domi.encrypt_text(text), domi.decrypt_text(bytea) TO domi_app');
});
# Before: each node has a keyring of its own.
my $c = 'cccccccc-cccc-cccc-cccc-cccccccccccc';
# Keys are made only for tenants in the configured tenants table (a
# distributed table here: domi asks Citus, not the coordinator's shell).
($ret, $out, $err) = $coord->psql('postgres', qq{SELECT domi.encrypt_text('x', '$c')});
like($err, qr/not in the tenants table/, 'no first key for a tenant the distributed tenants table lacks');
coord(qq{INSERT INTO tenants VALUES ('$c', 'C')});
my $cbox = coord(qq{SELECT encode(domi.encrypt_text('made before', '$c'), 'base64')});
($ret, $out, $err) = $w1->psql('postgres',
	qq{SELECT domi.decrypt_text(decode('$cbox', 'base64'), '$c')});
like($err, qr/has no key/, 'per-node keyrings: a worker cannot open the coordinator\'s value');
($ret, $out, $err) = $coord->psql('postgres', q{SELECT domi.citus_distribute_keyring()});
is($out, 't', 'citus_distribute_keyring makes the keyring a reference table') or diag($err);
is(coord(q{SELECT domi.citus_distribute_keyring()}), 'f', 'and says so when it already is');
is(coord(q{SELECT partmethod FROM pg_dist_partition
	WHERE logicalrelid = 'domi.tenant_keys'::regclass}), 'n', 'a reference table');
is($w2->safe_psql('postgres', qq{SELECT domi.decrypt_text(decode('$cbox', 'base64'), '$c')}),
	'made before', 'keys made before are the cluster\'s keys now');

# Citus refuses VOLATILE functions in an UPDATE of a distributed table, so
# the box is made first, in a CTE that Citus evaluates on the coordinator,
# and in an INSERT's VALUES; decrypted on the workers (a multi-shard SELECT).
($ret, $out, $err) = $coord->psql('postgres', qq{SET ROLE domi_app; BEGIN;
	SELECT domi.set_tenant('$a') \\g /dev/null
	UPDATE notes SET secret = domi.encrypt_text('secret of a') WHERE tenant_id = '$a' AND id = 1;
	COMMIT;});
like($err, qr/must not be VOLATILE/, 'Citus refuses encrypt in an UPDATE itself');
($ret, $out, $err) = $coord->psql('postgres', qq{SET ROLE domi_app; BEGIN;
	SELECT domi.set_tenant('$a') \\g /dev/null
	WITH box AS MATERIALIZED (SELECT domi.encrypt_text('secret of a') AS b)
	UPDATE notes SET secret = box.b FROM box WHERE tenant_id = '$a' AND id = 1;
	INSERT INTO notes VALUES ('$a', 7, 'a7', domi.encrypt_text('secret of a7'));
	COMMIT;});
is($ret, 0, 'encrypt in a CTE of an UPDATE and in INSERT VALUES') or diag($err);
($ret, $out, $err) = $coord->psql('postgres', qq{SET ROLE domi_app; BEGIN;
	SELECT domi.set_tenant('$a') \\g /dev/null
	SELECT domi.decrypt_text(secret) FROM notes WHERE secret IS NOT NULL ORDER BY id; COMMIT;});
is($out, "secret of a\nsecret of a7", 'decrypted where Citus pushes it down') or diag($err);
is($w1->safe_psql('postgres', "SELECT count(*) FROM domi.tenant_keys WHERE tenant = '$a'")
	. $w2->safe_psql('postgres', "SELECT count(*) FROM domi.tenant_keys WHERE tenant = '$a'"),
	'11', 'every worker has the tenant\'s one key');

# A key made on a worker (a function evaluated there) is the cluster's key.
my $wkey = $w1->safe_psql('postgres', qq{SELECT encode(domi.encrypt_text('made on w1', '$b'), 'base64')});
is($coord->safe_psql('postgres', qq{SELECT domi.decrypt_text(decode('$wkey', 'base64'), '$b')}),
	'made on w1', 'a key made on a worker opens on the coordinator');
is($w2->safe_psql('postgres', qq{SELECT domi.decrypt_text(decode('$wkey', 'base64'), '$b')}),
	'made on w1', 'and on the other worker');
is(coord(qq{SELECT count(*) FROM domi.tenant_keys WHERE tenant = '$b'}), '1',
	'one first key for the tenant');

# Rotation on one node is seen by the others (their key caches drop it).
coord(qq{SELECT domi.rotate_tenant_key('$b')});
is($w2->safe_psql('postgres', qq{SELECT domi.decrypt_text(decode('$wkey', 'base64'), '$b')}),
	'made on w1', 'values of the old version still open after rotation');
is($w2->safe_psql('postgres', qq{SELECT max(version) FROM domi.tenant_keys
	WHERE tenant = '$b' AND state = 'active'}), '2', 'the rotation reached the workers');
# A worker session that has the key cached forgets it when the keys are
# destroyed through the coordinator (the trigger fires on each node's shard).
my $bg = $w1->background_psql('postgres', on_error_stop => 0);
is($bg->query_safe(qq{SELECT domi.decrypt_text(decode('$wkey', 'base64'), '$b')}),
	'made on w1', 'a worker session caches the key');
coord(qq{SELECT domi.destroy_tenant_keys('$b')});
$bg->query(qq{SELECT domi.decrypt_text(decode('$wkey', 'base64'), '$b')});
like($bg->{stderr}, qr/destroyed/,
	'keys destroyed through the coordinator open nothing in that session');
$bg->quit;

done_testing();
