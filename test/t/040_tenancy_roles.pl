# Tenant lookup with real login roles: an unprivileged application role
# with nothing but EXECUTE (and SELECT on its own data), tables owned by a
# non-superuser migration role with FORCEd row level security, a restart,
# and an extension owner that is not a superuser (BYPASSRLS supported,
# anything less refused at configuration and at every call).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('tenancy_roles');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'domi'");
$node->start;

my $a = 'aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa';
my $b = 'bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb';

# The application's schema, as a migration role would make it: owned by
# migrator (not a superuser), every table tenant-isolated and FORCEd.
my $schema = qq{
	CREATE SCHEMA app AUTHORIZATION migrator;
	SET ROLE migrator;
	SET domi.rls_guard = off;
	CREATE TABLE app.tenants (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), name text NOT NULL DEFAULT 'unnamed');
	CREATE TABLE app.memberships (user_id text NOT NULL, tenant_id uuid NOT NULL REFERENCES app.tenants,
		created_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (user_id, tenant_id));
	CREATE TABLE app.invoices (id int, tenant_id uuid NOT NULL, amount int);
	SELECT domi.enable_tenant_rls('app.memberships');
	SELECT domi.enable_tenant_rls('app.tenants', 'id');
	SELECT domi.enable_tenant_rls('app.invoices');
	-- FORCE applies to the owner: it writes each tenant's rows under that tenant.
	BEGIN;
	SELECT domi.set_tenant('$a');
	INSERT INTO app.tenants (id, name) VALUES ('$a', 'Acme');
	INSERT INTO app.memberships VALUES ('alice', '$a', '2024-01-01');
	INSERT INTO app.invoices VALUES (1, '$a', 100);
	COMMIT;
	BEGIN;
	SELECT domi.set_tenant('$b');
	INSERT INTO app.tenants (id, name) VALUES ('$b', 'Globex');
	INSERT INTO app.memberships VALUES ('alice', '$b', '2024-02-01'), ('bob', '$b', '2024-01-01');
	INSERT INTO app.invoices VALUES (2, '$b', 200);
	COMMIT;
	GRANT USAGE ON SCHEMA app TO app_user;
	GRANT SELECT ON app.invoices TO app_user;
	RESET ROLE;
};

$node->safe_psql('postgres', q{
	CREATE EXTENSION domi;
	CREATE ROLE migrator LOGIN;
	CREATE ROLE app_user LOGIN;
});
$node->safe_psql('postgres', $schema);
$node->safe_psql('postgres', q{
	SELECT domi.configure_tenancy('app.memberships', tenants => 'app.tenants');
	GRANT EXECUTE ON FUNCTION domi.user_tenant(text), domi.user_tenants(text),
		domi.is_member(text, uuid), domi.enter_tenant(text, uuid),
		domi.bootstrap_tenant(text, jsonb) TO app_user;
});

sub as_role
{
	my ($role, $sql, $db) = @_;
	return $node->psql($db // 'postgres', "\\set VERBOSITY verbose\n$sql",
		extra_params => [ '-U', $role ]);
}

sub safe_as
{
	my ($role, $sql, $db) = @_;
	return $node->safe_psql($db // 'postgres', $sql, extra_params => [ '-U', $role ]);
}

# The owner of the tables sees nothing without a tenant: FORCE is in effect,
# so only a role that bypasses RLS could answer the lookup.
is(safe_as('migrator', 'SELECT count(*) FROM app.memberships'), '0',
	'the tables\' owner sees no membership without a tenant (FORCE)');

# The application role: lookups work.
is(safe_as('app_user', "SELECT domi.user_tenant('alice')"), $a, 'user_tenant as the login role');
is(safe_as('app_user', "SELECT string_agg(t::text, ',') FROM domi.user_tenants('alice') t"),
	"$a,$b", 'user_tenants in membership order');
is(safe_as('app_user', "SELECT domi.is_member('bob', '$b'), domi.is_member('bob', '$a')"),
	't|f', 'is_member');
is(safe_as('app_user', qq{
	BEGIN;
	SELECT domi.enter_tenant('alice', '$b') IS NOT NULL;
	SELECT string_agg(id::text, ',') FROM app.invoices;
	COMMIT;
}), "t\n2", 'enter_tenant, then the role reads exactly that tenant\'s invoices');

# ... and nothing else is open to it.
my ($ret, $stdout, $stderr) = as_role('app_user', 'SELECT * FROM app.memberships');
isnt($ret, 0, 'the login role cannot read the memberships table');
like($stderr, qr/42501/, 'permission denied (42501)');
($ret, $stdout, $stderr) = as_role('app_user', 'SELECT * FROM app.tenants');
like($stderr, qr/42501/, 'nor the tenants table (42501)');
($ret, $stdout, $stderr) = as_role('app_user', 'SELECT * FROM domi.tenancy_config');
like($stderr, qr/42501/, 'nor the configuration (42501)');
($ret, $stdout, $stderr) = as_role('app_user', "SELECT domi.configure_tenancy('app.invoices')");
like($stderr, qr/42501/, 'and it cannot change the configuration (42501)');
is($node->safe_psql('postgres', q{
	SELECT string_agg(table_schema || '.' || table_name || ':' || privilege_type, ',')
	FROM information_schema.role_table_grants WHERE grantee = 'app_user'}),
	'app.invoices:SELECT', 'its only table privilege is SELECT on its own invoices');
is($node->safe_psql('postgres', q{
	SELECT string_agg(p.proname, ',' ORDER BY p.proname)
	FROM pg_proc p WHERE p.pronamespace = 'domi'::regnamespace AND p.prosecdef
		AND has_function_privilege('app_user', p.oid, 'EXECUTE')}),
	'bootstrap_tenant,enter_tenant,is_member,user_tenant,user_tenants',
	'the SECURITY DEFINER functions it may run are the five granted');
($ret, $stdout, $stderr) = as_role('migrator', "SELECT domi.user_tenant('alice')");
like($stderr, qr/42501/, 'a role without the grant cannot run the lookups (42501)');

# A role with EXECUTE and nothing else, not even USAGE on the application's
# schema, gets its answers.
$node->safe_psql('postgres', q{
	CREATE ROLE bare_app LOGIN;
	GRANT EXECUTE ON FUNCTION domi.user_tenant(text), domi.enter_tenant(text, uuid) TO bare_app;
});
is(safe_as('bare_app', "SELECT domi.user_tenant('alice')"), $a, 'a role with only EXECUTE looks a user up');
is(safe_as('bare_app', "BEGIN; SELECT domi.enter_tenant('bob'); COMMIT;"), $b, 'and enters the tenant');
($ret, $stdout, $stderr) = as_role('bare_app', 'SELECT count(*) FROM app.invoices');
like($stderr, qr/42501/, 'while it cannot even name the application\'s tables (42501)');

# A restart: every backend builds its lookups again from the stored configuration.
$node->restart;
is(safe_as('app_user', "SELECT domi.user_tenant('bob')"), $b, 'lookups work after a restart');

# An extension owner that is not a superuser.  It must read past the
# policies: with BYPASSRLS and the table privileges it works; without
# BYPASSRLS it is refused, at configuration and at every call, rather than
# answering "no membership" from behind the policies.
$node->safe_psql('postgres', q{
	CREATE ROLE ext_admin LOGIN SUPERUSER;
	CREATE DATABASE ownerdb OWNER ext_admin;
});
safe_as('ext_admin', 'CREATE EXTENSION domi', 'ownerdb');
$node->safe_psql('ownerdb', $schema);
$node->safe_psql('ownerdb', q{
	ALTER ROLE ext_admin NOSUPERUSER;
	GRANT USAGE ON SCHEMA app TO ext_admin;
	GRANT EXECUTE ON FUNCTION domi.user_tenant(text), domi.bootstrap_tenant(text, jsonb) TO app_user;
});
is($node->safe_psql('ownerdb', "SELECT extowner::regrole FROM pg_extension WHERE extname = 'domi'"),
	'ext_admin', 'the extension owner is ext_admin, now not a superuser');
($ret, $stdout, $stderr) = as_role('ext_admin',
	"SELECT domi.configure_tenancy('app.memberships', tenants => 'app.tenants')", 'ownerdb');
like($stderr, qr/42501.*runs as role "ext_admin", which is subject to row level security/s,
	'configure_tenancy refuses an owner subject to RLS (42501)');
$node->safe_psql('ownerdb', 'ALTER ROLE ext_admin BYPASSRLS');
($ret, $stdout, $stderr) = as_role('ext_admin',
	"SELECT domi.configure_tenancy('app.memberships', tenants => 'app.tenants')", 'ownerdb');
like($stderr, qr/42501.*may not read the configured memberships table/s,
	'with BYPASSRLS but no table privileges it is refused too (42501)');
$node->safe_psql('ownerdb', 'GRANT SELECT, INSERT ON app.memberships, app.tenants TO ext_admin');
safe_as('ext_admin', "SELECT domi.configure_tenancy('app.memberships', tenants => 'app.tenants')", 'ownerdb');
is(safe_as('app_user', "SELECT domi.user_tenant('alice')", 'ownerdb'), $a,
	'a BYPASSRLS owner answers the lookup past FORCEd RLS');
my $carol = safe_as('app_user', "SELECT domi.bootstrap_tenant('carol', '{\"name\": \"Carol\"}')", 'ownerdb');
like($carol, qr/^[0-9a-f-]{36}$/, 'and bootstraps a tenant');
is($node->safe_psql('ownerdb', "SELECT t.name FROM app.memberships m JOIN app.tenants t ON t.id = m.tenant_id WHERE m.user_id = 'carol'"),
	'Carol', 'with its membership');
# The same through the lookup index, read directly: the owner's SELECT on
# the table is checked there as the executor would check it.
$node->safe_psql('ownerdb', 'CREATE INDEX members_lookup ON app.memberships (user_id, created_at, tenant_id)');
is(safe_as('app_user', qq{
	BEGIN;
	SELECT domi.user_tenant('alice');
	SELECT pg_stat_get_xact_numscans('app.members_lookup'::regclass) > 0;
	COMMIT;
}, 'ownerdb'), "$a\nt", 'a BYPASSRLS owner answers through the lookup index too');
$node->safe_psql('ownerdb', 'REVOKE SELECT ON app.memberships FROM ext_admin');
($ret, $stdout, $stderr) = as_role('app_user', "SELECT domi.user_tenant('alice')", 'ownerdb');
like($stderr, qr/42501.*permission denied for table memberships/s,
	'without SELECT on the table, the index is not read either (42501)');
$node->safe_psql('ownerdb', 'GRANT SELECT ON app.memberships TO ext_admin');
$node->safe_psql('ownerdb', 'ALTER ROLE ext_admin NOBYPASSRLS');
($ret, $stdout, $stderr) = as_role('app_user', "SELECT domi.user_tenant('alice')", 'ownerdb');
isnt($ret, 0, 'once the owner loses BYPASSRLS, the lookup fails');
like($stderr, qr/42501.*runs as role "ext_admin", which is subject to row level security/s,
	'with 42501, instead of a wrong NULL');

done_testing();
