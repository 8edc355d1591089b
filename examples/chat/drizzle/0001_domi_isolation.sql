-- domi's isolation, which drizzle-kit cannot express: FORCE ROW LEVEL
-- SECURITY (the owner, migrator, is held to the policy too), domi's record
-- of the isolated tables (their isolation DDL is then refused unless
-- deliberately allowed), and the drop guard on the encrypted bodies.
SELECT domi.enable_tenant_rls('tenants', 'id');
--> statement-breakpoint
SELECT domi.enable_tenant_rls('memberships');
--> statement-breakpoint
SELECT domi.enable_tenant_rls('threads');
--> statement-breakpoint
SELECT domi.enable_tenant_rls('messages');
--> statement-breakpoint
SELECT domi.protect_column('messages', 'body');
