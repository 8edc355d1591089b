# The owner of a configured table is not trusted like the extension owner:
# nothing it plants on its tables runs with the extension owner's rights
# when an application role calls the tenant lookup.  The extension is
# installed the default way (CREATE EXTENSION by a superuser), the tables
# belong to mallory (not a superuser), and mallory plants, one after the
# other, BEFORE INSERT triggers, column defaults, index expressions, an
# index predicate and a restrictive policy that each try three things:
# make mallory a superuser, write a file on the server, read
# domi.tenant_keys.  Each attempt is recorded (by whom, and how it ended)
# in a table of mallory's, so the test sees that it was made and failed.
# Then an honest table owner: bootstrap_tenant still works under FORCEd
# row level security.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('tenancy_owner_code');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'domi'");
$node->start;

my $dir = $node->basedir;
my $uuid = qr/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/;

$node->safe_psql('postgres', q{
	CREATE EXTENSION domi;
	CREATE ROLE mallory LOGIN;
	CREATE ROLE app_user LOGIN;
	CREATE SCHEMA app AUTHORIZATION mallory;
	GRANT EXECUTE ON FUNCTION domi.user_tenant(text), domi.user_tenants(text),
		domi.is_member(text, uuid), domi.enter_tenant(text, uuid),
		domi.bootstrap_tenant(text, jsonb) TO app_user;
});

# mallory's schema: FORCEd row level security on both tables, a log of
# attempts, and the function that makes them.  A memberships primary key
# (user_id, tenant_id) does not fit the lookups' order (user, created_at,
# tenant): without the fix, the lookups planned a query here.
my $schema = q{
	SET domi.rls_guard = off;
	CREATE TABLE app.attempts (at text, action text, who text, outcome text);
	CREATE FUNCTION app.attempt_all(at text) RETURNS void LANGUAGE plpgsql AS $f$
	BEGIN
		BEGIN
			ALTER ROLE mallory SUPERUSER;
			INSERT INTO app.attempts VALUES (at, 'superuser', current_user, 'succeeded');
		EXCEPTION WHEN OTHERS THEN
			INSERT INTO app.attempts VALUES (at, 'superuser', current_user, 'failed ' || SQLSTATE);
		END;
		BEGIN
			EXECUTE format('COPY (SELECT %L) TO %L', at, '__DIR__/written_by_' || md5(at));
			INSERT INTO app.attempts VALUES (at, 'file', current_user, 'succeeded');
		EXCEPTION WHEN OTHERS THEN
			INSERT INTO app.attempts VALUES (at, 'file', current_user, 'failed ' || SQLSTATE);
		END;
		BEGIN
			PERFORM count(*) FROM domi.tenant_keys;
			INSERT INTO app.attempts VALUES (at, 'tenant_keys', current_user, 'succeeded');
		EXCEPTION WHEN OTHERS THEN
			INSERT INTO app.attempts VALUES (at, 'tenant_keys', current_user, 'failed ' || SQLSTATE);
		END;
	END $f$;
	CREATE TABLE app.tenants (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), name text);
	CREATE TABLE app.memberships (user_id text NOT NULL, tenant_id uuid NOT NULL REFERENCES app.tenants,
		created_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (user_id, tenant_id));
	SELECT domi.enable_tenant_rls('app.memberships');
	SELECT domi.enable_tenant_rls('app.tenants', 'id');
	BEGIN;
	SELECT domi.set_tenant('aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa');
	INSERT INTO app.tenants VALUES ('aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa', 'Acme');
	INSERT INTO app.memberships VALUES ('alice', 'aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa', '2024-01-01');
	COMMIT;
};
$schema =~ s/__DIR__/$dir/g;
$node->safe_psql('postgres', $schema, extra_params => [ '-U', 'mallory' ]);
$node->safe_psql('postgres',
	q{SELECT domi.configure_tenancy('app.memberships', tenants => 'app.tenants')});

sub as_mallory
{
	return $node->safe_psql('postgres', $_[0], extra_params => [ '-U', 'mallory' ]);
}

sub as_app
{
	return $node->safe_psql('postgres', $_[0], extra_params => [ '-U', 'app_user' ]);
}

# Every attempt made at $at: each of the three was made, by mallory, and failed.
sub check_attempts
{
	my ($at, $what) = @_;
	is($node->safe_psql('postgres', qq{
		SELECT string_agg(action || ' by ' || who || ': ' || outcome, ', ' ORDER BY action)
		FROM (SELECT DISTINCT action, who, outcome FROM app.attempts WHERE at = '$at') a}),
		'file by mallory: failed 42501, superuser by mallory: failed 42501, tenant_keys by mallory: failed 42501',
		"$what: all three attempts made as mallory, and refused");
	is($node->safe_psql('postgres', q{SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'}),
		'f', "$what: mallory is still no superuser");
	ok(!-e "$dir/written_by_" . md5_hex_of($at), "$what: no file was written");
}

sub md5_hex_of
{
	return $node->safe_psql('postgres', "SELECT md5('$_[0]')");
}

sub bootstrap_works
{
	my ($user, $what) = @_;
	my $tenant = as_app(qq{SELECT domi.bootstrap_tenant('$user', '{"name": "$user"}')});
	like($tenant, qr/^$uuid$/, "$what: bootstrap_tenant returns the new tenant");
	# Read back as mallory under the new tenant, not as a superuser: planning
	# a superuser's query of the table would fold mallory's index predicate
	# with the superuser's rights (PostgreSQL's own behaviour, not domi's).
	is(as_mallory(qq{
		BEGIN;
		SELECT domi.set_tenant('$tenant') IS NOT NULL;
		SELECT t.id || ':' || t.name FROM app.memberships m JOIN app.tenants t ON t.id = m.tenant_id
		WHERE m.user_id = '$user';
		COMMIT;}), "t\n$tenant:$user", "$what: one tenant, with its membership");
	return $tenant;
}

# 1. BEFORE INSERT triggers on both tables.
as_mallory(q{
	CREATE FUNCTION app.plant() RETURNS trigger LANGUAGE plpgsql AS $f$
	BEGIN
		PERFORM app.attempt_all(TG_TABLE_NAME || ' trigger');
		RETURN NEW;
	END $f$;
	CREATE TRIGGER plant BEFORE INSERT ON app.tenants FOR EACH ROW EXECUTE FUNCTION app.plant();
	CREATE TRIGGER plant BEFORE INSERT ON app.memberships FOR EACH ROW EXECUTE FUNCTION app.plant();
	TRUNCATE app.attempts;
});
bootstrap_works('u_trigger', 'triggers');
check_attempts('tenants trigger', 'tenants trigger');
check_attempts('memberships trigger', 'memberships trigger');
as_mallory(q{
	DROP TRIGGER plant ON app.tenants;
	DROP TRIGGER plant ON app.memberships;
});

# 2. Column defaults: the tenant id's (evaluated before the insert, to set
# the tenant first) and the membership's created_at.
as_mallory(q{
	CREATE FUNCTION app.planted_id() RETURNS uuid LANGUAGE plpgsql AS $f$
	BEGIN
		PERFORM app.attempt_all('id default');
		RETURN gen_random_uuid();
	END $f$;
	CREATE FUNCTION app.planted_now() RETURNS timestamptz LANGUAGE plpgsql AS $f$
	BEGIN
		PERFORM app.attempt_all('created_at default');
		RETURN now();
	END $f$;
	ALTER TABLE app.tenants ALTER id SET DEFAULT app.planted_id();
	ALTER TABLE app.memberships ALTER created_at SET DEFAULT app.planted_now();
	TRUNCATE app.attempts;
});
bootstrap_works('u_default', 'defaults');
check_attempts('id default', 'id default');
check_attempts('created_at default', 'created_at default');
as_mallory(q{
	ALTER TABLE app.tenants ALTER id SET DEFAULT gen_random_uuid();
	ALTER TABLE app.memberships ALTER created_at SET DEFAULT now();
});

# 3. Index expressions, computed for each inserted row: an IMMUTABLE
# function (which may still call a volatile one).
as_mallory(q{
	CREATE FUNCTION app.planted_key(v text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $f$
	BEGIN
		PERFORM app.attempt_all('index expression');
		RETURN v;
	END $f$;
	CREATE INDEX planted_key ON app.memberships (app.planted_key(user_id));
	CREATE INDEX planted_name ON app.tenants (app.planted_key(name));
	TRUNCATE app.attempts;
});
bootstrap_works('u_index', 'index expressions');
check_attempts('index expression', 'index expression');
as_mallory('DROP INDEX app.planted_key, app.planted_name');

# 4. A restrictive policy, which FORCE applies to mallory's own inserts.
as_mallory(q{
	CREATE FUNCTION app.planted_check() RETURNS boolean LANGUAGE plpgsql AS $f$
	BEGIN
		PERFORM app.attempt_all('policy');
		RETURN true;
	END $f$;
	CREATE POLICY planted ON app.memberships AS RESTRICTIVE USING (app.planted_check());
	TRUNCATE app.attempts;
});
bootstrap_works('u_policy', 'policy');
check_attempts('policy', 'policy');
as_mallory('DROP POLICY planted ON app.memberships');

# 5. The lookups, which only read: an index predicate whose constant part
# the planner folds when it plans any query of the table (it did so when
# the lookups planned their query as the extension owner).  Now they plan
# nothing: the predicate runs at the inserts only, as mallory.
as_mallory(q{
	CREATE FUNCTION app.planted_constant(n int) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $f$
	BEGIN
		PERFORM app.attempt_all('index predicate');
		RETURN n > 0;
	END $f$;
	CREATE INDEX planted_predicate ON app.memberships (user_id) WHERE app.planted_constant(1);
	TRUNCATE app.attempts;
});
is(as_app(q{SELECT domi.user_tenant('alice')}), 'aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa',
	'user_tenant answers with the predicate index in place');
is(as_app(q{
	SELECT domi.is_member('alice', 'aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa'),
		(SELECT count(*) FROM domi.user_tenants('alice'));
	BEGIN;
	SELECT domi.enter_tenant('alice') IS NOT NULL;
	COMMIT;
}), "t|1\nt", 'is_member, user_tenants and enter_tenant too');
is($node->safe_psql('postgres', q{SELECT count(*) FROM app.attempts}), '0',
	'the lookups ran none of mallory\'s code');
bootstrap_works('u_predicate', 'index predicate');
is($node->safe_psql('postgres', q{SELECT count(*) FROM app.attempts WHERE who <> 'mallory'}), '0',
	'the predicate ran as mallory only');
check_attempts('index predicate', 'index predicate');
as_mallory('DROP INDEX app.planted_predicate');

# 6. A trigger that moves the new tenant to another id, or skips the row:
# refused, nothing is left behind.
as_mallory(q{
	CREATE FUNCTION app.redirect() RETURNS trigger LANGUAGE plpgsql AS $f$
	BEGIN
		NEW.id := 'aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa';
		RETURN NEW;
	END $f$;
	CREATE TRIGGER redirect BEFORE INSERT ON app.tenants FOR EACH ROW EXECUTE FUNCTION app.redirect();
});
my ($ret, $stdout, $stderr) = $node->psql('postgres',
	q{SELECT domi.bootstrap_tenant('u_redirect')}, extra_params => [ '-U', 'app_user' ]);
isnt($ret, 0, 'a trigger that changes the new tenant\'s id makes bootstrap_tenant fail');
is($node->safe_psql('postgres', q{SELECT count(*) FROM app.memberships WHERE user_id = 'u_redirect'}),
	'0', 'and no membership is left');
as_mallory('DROP TRIGGER redirect ON app.tenants');

# The honest setup: no plants, FORCEd RLS that holds mallory to the new
# tenant; the lookups see what bootstrap made.
my $honest = bootstrap_works('u_honest', 'honest tables');
is(as_app(q{SELECT domi.user_tenant('u_honest')}), $honest, 'the lookup finds the bootstrapped tenant');
is(as_app(q{SELECT domi.bootstrap_tenant('u_honest')}), $honest, 'and a second bootstrap returns it');
my $c = 'cccccccc-cccc-cccc-cccc-cccccccccccc';
is(as_app(qq{
	BEGIN;
	SELECT domi.set_tenant('$c') IS NOT NULL;
	SELECT domi.bootstrap_tenant('u_tenant_kept') IS NOT NULL;
	SELECT current_setting('domi.tenant_id');
	COMMIT;
}), "t\nt\n$c", 'bootstrap_tenant leaves the caller\'s tenant as it was');

done_testing();
