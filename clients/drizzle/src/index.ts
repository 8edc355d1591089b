// @domi/drizzle: domi's tenant context, keyring, tenant policy and migration
// lineage for Drizzle ORM on node-postgres.
export { withTenant, enterTenant, type TenantTransaction } from './tenant.js';
export { bytea, encryptText, decryptText } from './columns.js';
export {
	domiTenantPolicy,
	tenantPolicyExpression,
	quoteIdent,
	DOMI_TENANT_POLICY_NAME,
	DOMI_TENANT_POLICY_EXPRESSION,
} from './policy.js';
export {
	lineageCheck,
	readMigrationsFolder,
	formatFinding,
	LineageCheckError,
	MANIFEST_MAX_BYTES,
	type LineageFinding,
	type LineageResult,
	type LineageOptions,
	type Queryable,
} from './lineage.js';
