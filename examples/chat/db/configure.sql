-- Once, as the superuser, after drizzle-kit migrate created the tables:
-- where domi's tenant lookup (domi.enter_tenant, domi.user_tenant) finds
-- memberships and tenants.  Only the extension's owner may run it.
--   psql -d chat -f db/configure.sql
SELECT domi.configure_tenancy(memberships => 'public.memberships', tenants => 'public.tenants');
