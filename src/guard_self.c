/*
 * guard_self.c
 *		The drop guard's self-protection, the ddl_command_start trigger:
 *		DROP EXTENSION domi, DROP SCHEMA domi and DROP OWNED BY the
 *		extension's owner would drop the guard itself (a trigger cannot see
 *		its own drop at sql_drop time) and the keyring, domi.tenant_keys,
 *		whose live keys it refuses to crypto-shred by accident.
 *
 * See guard.c for the design and the override domi.allow_drop.
 */
#include "postgres.h"

#include <ctype.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_class.h"
#include "catalog/pg_depend.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "parser/scansup.h"
#include "storage/lmgr.h"
#include "tcop/cmdtag.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/guc_tables.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "domi.h"
#include "guard_internal.h"

PG_FUNCTION_INFO_V1(domi_guard_ddl_start);

static bool
names_domi(List *names)
{
	ListCell   *lc;

	foreach(lc, names)
	{
		if (strcmp(strVal(lfirst(lc)), REGISTRY_SCHEMA) == 0)
			return true;
	}
	return false;
}

/*
 * The roles of DROP OWNED BY, resolved as the caller: CURRENT_USER must mean
 * the caller, not the registry's owner we later act as.
 */
static List *
drop_owned_roles(Node *parsetree)
{
	List	   *roles = NIL;
	ListCell   *lc;

	if (parsetree == NULL || !IsA(parsetree, DropOwnedStmt))
		return NIL;
	foreach(lc, ((DropOwnedStmt *) parsetree)->roles)
		roles = lappend_oid(roles, get_rolespec_oid(lfirst(lc), true));
	return roles;
}

/*
 * Does DROP EXTENSION ... CASCADE of these extensions take domi with it?  It
 * does when one of domi's objects depends on an object of one of them (its
 * PL/pgSQL functions on plpgsql's language), or domi requires one of them,
 * directly or through the extensions they require: PostgreSQL then drops
 * the whole of domi, guard included, and no sql_drop trigger of domi's is
 * left to see it.
 */
static const char *const extensions_domi_needs_sql =
"WITH RECURSIVE needs(ext) AS ("
"    SELECT x.refobjid FROM pg_extension e"
"      JOIN pg_depend m ON m.refclassid = 'pg_extension'::regclass AND m.refobjid = e.oid AND m.deptype = 'e'"
"      JOIN pg_depend d ON d.classid = m.classid AND d.objid = m.objid AND d.deptype = 'n'"
"      JOIN pg_depend x ON x.classid = d.refclassid AND x.objid = d.refobjid AND x.deptype = 'e'"
"     WHERE e.extname = 'domi'"
"  UNION"
"    SELECT r.refobjid FROM pg_extension e"
"      JOIN pg_depend r ON r.classid = 'pg_extension'::regclass AND r.objid = e.oid"
"       AND r.refclassid = 'pg_extension'::regclass AND r.deptype = 'n'"
"     WHERE e.extname = 'domi'"
"  UNION"
"    SELECT r.refobjid FROM needs n"
"      JOIN pg_depend r ON r.classid = 'pg_extension'::regclass AND r.objid = n.ext"
"       AND r.refclassid = 'pg_extension'::regclass AND r.deptype = 'n')"
"SELECT FROM needs WHERE ext = ANY ($1)";

static bool
cascades_to_domi(List *names)
{
	List	   *extensions = NIL;
	ListCell   *lc;
	Oid			types[1] = {OIDARRAYOID};
	Datum		values[1];

	foreach(lc, names)
	{
		Oid			ext = get_extension_oid(strVal(lfirst(lc)), true);

		if (OidIsValid(ext))
			extensions = lappend_oid(extensions, ext);
	}
	if (extensions == NIL)
		return false;
	values[0] = guard_oid_array(extensions);
	guard_registry_execute(extensions_domi_needs_sql, 1, types, values, SPI_OK_SELECT);
	return SPI_processed > 0;
}

/*
 * Would this statement drop the extension, and with it the guard?  DROP
 * OWNED BY drops it when the role owns the extension, or owns its schema
 * (a schema domi made before CREATE EXTENSION) and the statement cascades.
 */
static bool
drops_the_guard(Node *parsetree, List *owned_by)
{
	Oid			types[2] = {OIDOID, BOOLOID};
	ListCell   *lc;

	if (parsetree != NULL && IsA(parsetree, DropStmt))
	{
		DropStmt   *stmt = (DropStmt *) parsetree;

		/* The extension and its schema are both called domi. */
		if ((stmt->removeType == OBJECT_EXTENSION ||
			 stmt->removeType == OBJECT_SCHEMA) && names_domi(stmt->objects))
			return true;
		return stmt->removeType == OBJECT_EXTENSION && stmt->behavior == DROP_CASCADE &&
			cascades_to_domi(stmt->objects);
	}
	foreach(lc, owned_by)
	{
		bool		cascade = ((DropOwnedStmt *) parsetree)->behavior == DROP_CASCADE;
		Datum		values[2] = {ObjectIdGetDatum(lfirst_oid(lc)), BoolGetDatum(cascade)};

		guard_registry_execute("SELECT FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
							   " WHERE e.extname = 'domi' AND (e.extowner = $1 OR (n.nspowner = $1 AND $2))",
							   2, types, values, SPI_OK_SELECT);
		if (SPI_processed > 0)
			return true;
	}
	return false;
}

/*
 * The keys in domi.tenant_keys that are not destroyed, read as the registry's
 * owner (inside guard_registry_open): the keyring goes with the extension, and with
 * it every value encrypted under them.  No root key is needed to count them.
 */
static int64
live_tenant_keys(void)
{
	if (!OidIsValid(get_relname_relid(KEYRING_TABLE, get_namespace_oid(REGISTRY_SCHEMA, false))))
		return 0;
	guard_registry_execute("SELECT count(*) FROM domi.tenant_keys WHERE state <> 'destroyed'",
						   0, NULL, NULL, SPI_OK_SELECT);
	return DatumGetInt64(guard_spi_datum(0, 1));
}

/*
 * Before the keyring's refusal tells how many keys are live: a caller who
 * may not drop what the statement names gets PostgreSQL's own permission
 * error, and learns nothing of the keyring (the checks DROP itself makes
 * later, made first).
 */
static void
check_may_drop(Node *parsetree, List *owned_by, Oid caller)
{
	ListCell   *lc;

	if (parsetree != NULL && IsA(parsetree, DropStmt))
	{
		DropStmt   *stmt = (DropStmt *) parsetree;

		foreach(lc, stmt->objects)
		{
			const char *name;
			Oid			oid;

			if (!IsA(lfirst(lc), String))
				continue;
			name = strVal(lfirst(lc));
			if (stmt->removeType == OBJECT_EXTENSION &&
				OidIsValid(oid = get_extension_oid(name, true)) &&
				!pg_extension_ownercheck(oid, caller))
				aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_EXTENSION, name);
			if (stmt->removeType == OBJECT_SCHEMA &&
				OidIsValid(oid = get_namespace_oid(name, true)) &&
				!pg_namespace_ownercheck(oid, caller))
				aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_SCHEMA, name);
		}
	}
	foreach(lc, owned_by)
		if (OidIsValid(lfirst_oid(lc)) && !has_privs_of_role(caller, lfirst_oid(lc)))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied to drop objects")));
}

static void
refuse_keyring_drop(int64 keys, CommandTag tag)
{
	StringInfoData detail;

	initStringInfo(&detail);
	appendStringInfo(&detail, "%s would drop domi.tenant_keys with the extension, and no copy of its keys is kept.",
					 guard_command_name(tag));
	guard_append_not_local_note(&detail);
	ereport(ERROR,
			(errcode(DOMI_ERRCODE_PROTECTED_COLUMN),
			 errmsg_plural("cannot drop extension \"domi\": it would destroy %lld tenant key and make the data encrypted under it unreadable",
						   "cannot drop extension \"domi\": it would destroy %lld tenant keys and make the data encrypted under them unreadable",
						   keys, (long long) keys),
			 errdetail_internal("%s", detail.data),
			 errhint("Dump them first (pg_dump keeps them: domi.tenant_keys is an extension configuration table), "
					 "destroy them on purpose with domi.destroy_tenant_keys(), "
					 "or SET LOCAL domi.allow_drop = 'domi.tenant_keys' in the same transaction.")));
}

static void
report_keyring_override(int64 keys, CommandTag tag, Oid caller)
{
	const char *role = GetUserNameFromId(caller, false);

	ereport(LOG_SERVER_ONLY,
			(errmsg_plural("%lld tenant key destroyed with extension \"domi\" under domi.allow_drop",
						   "%lld tenant keys destroyed with extension \"domi\" under domi.allow_drop",
						   keys, (long long) keys),
			 errdetail("Role \"%s\" ran %s with SET LOCAL domi.allow_drop naming domi.tenant_keys.",
					   role, guard_command_name(tag))));
	ereport(NOTICE,
			(errmsg_plural("%lld tenant key destroyed with extension \"domi\" under domi.allow_drop",
						   "%lld tenant keys destroyed with extension \"domi\" under domi.allow_drop",
						   keys, (long long) keys)));
}

Datum
domi_guard_ddl_start(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata = guard_event_trigger_data(fcinfo, "ddl_command_start");
	List	   *owned_by = drop_owned_roles(trigdata->parsetree);
	RegistryAccess access;

	if (!guard_registry_open(&access))
		PG_RETURN_VOID();
	if (drops_the_guard(trigdata->parsetree, owned_by))
	{
		int64		keys;

		check_may_drop(trigdata->parsetree, owned_by, access.saved_userid);
		keys = live_tenant_keys();

		if (keys > 0 && !guard_allow_drop_names_path(REGISTRY_SCHEMA, KEYRING_TABLE, ""))
			refuse_keyring_drop(keys, trigdata->tag);
		guard_registry_execute("SELECT r.tbl::oid, n.nspname::text, c.relname::text, r.col::text"
							   "  FROM domi._protected_columns r"
							   "  JOIN pg_class c ON c.oid = r.tbl"
							   "  JOIN pg_namespace n ON n.oid = c.relnamespace"
							   " ORDER BY 2, 3, 4",
							   0, NULL, NULL, SPI_OK_SELECT);
		guard_enforce(guard_hits_from_result(GUARD_UNGUARD), trigdata->tag, &access);
		if (keys > 0)
			report_keyring_override(keys, trigdata->tag, access.saved_userid);
	}
	guard_registry_close(&access);
	PG_RETURN_VOID();
}
