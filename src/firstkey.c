/*
 * firstkey.c
 *		Who may give a tenant its first key.
 *
 * domi.encrypt makes a tenant's first key on first use, and a key is kept
 * for ever (destroyed keys keep their row) and blocks DROP EXTENSION.  A
 * role that may encrypt could otherwise mint keys for any number of
 * made-up tenants.  Two limits, checked under the tenant's lock when a
 * tenant has no key row yet (encrypt, rotate and import alike):
 *
 * - When domi.configure_tenancy() names a tenants table, the tenant must
 *   be a row of it.  The row is looked up by a direct scan of the table
 *   (an index on the id column with the built-in uuid operator class when
 *   there is one, else the heap with a scan key), with the latest snapshot
 *   and without row-level security: the question is whether the tenant
 *   exists, not what the caller may see.  No SQL is run on the table, so
 *   no policy, operator or function of the table's owner runs with the
 *   rights of the extension's owner, and none of the caller's either.  The
 *   caller learns one bit (the id exists or not), the bit that
 *   domi.encrypt succeeding would tell anyway.
 * - domi.first_key_role (superuser-only setting; ALTER DATABASE ... SET, or
 *   GRANT SET ON PARAMETER) restricts first keys to members of that role,
 *   with or without a tenants table.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/skey.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "citus.h"
#include "keyring.h"

static char *first_key_role = NULL;

void
domi_firstkey_init(void)
{
	DefineCustomStringVariable("domi.first_key_role",
							   "Only members of this role may create a tenant's first key.",
							   "Empty: any role that may call domi.encrypt. Checked in addition to the tenants table of domi.configure_tenancy().",
							   &first_key_role,
							   "",
							   PGC_SUSET,
							   0,
							   NULL, NULL, NULL);
}

/* The btree operator family of the built-in uuid operator class. */
static Oid
uuid_btree_family(void)
{
	Oid			opclass = GetDefaultOpClass(UUIDOID, BTREE_AM_OID);

	return OidIsValid(opclass) ? get_opclass_family(opclass) : InvalidOid;
}

/*
 * An index of rel that finds rows by the id column alone with the built-in
 * uuid comparison, usable by a snapshot taken now (an index built over
 * broken HOT chains is skipped while it is too young, as the planner does).
 * Returns it opened, or NULL.
 */
static Relation
usable_index(Relation rel, AttrNumber attnum)
{
	List	   *indexes = RelationGetIndexList(rel);
	Oid			family = uuid_btree_family();
	ListCell   *lc;

	foreach(lc, indexes)
	{
		Relation	index = index_open(lfirst_oid(lc), AccessShareLock);
		Form_pg_index form = index->rd_index;

		if (index->rd_rel->relam == BTREE_AM_OID && form->indisvalid && form->indisready &&
			form->indnkeyatts >= 1 && form->indkey.values[0] == attnum &&
			heap_attisnull(index->rd_indextuple, Anum_pg_index_indpred, NULL) &&
			index->rd_opfamily[0] == family && OidIsValid(family) &&
			(!form->indcheckxmin ||
			 TransactionIdPrecedes(HeapTupleHeaderGetXmin(index->rd_indextuple->t_data),
								   TransactionXmin)))
		{
			list_free(indexes);
			return index;
		}
		index_close(index, AccessShareLock);
	}
	list_free(indexes);
	return NULL;
}

/* Is there a row of rel (an ordinary table) whose column attnum is tenant? */
static bool
relation_has_tenant(Oid relid, const char *column, const pg_uuid_t *tenant,
					Snapshot snapshot)
{
	Relation	rel = table_open(relid, AccessShareLock);
	AttrNumber	attnum = get_attnum(relid, column);
	TupleTableSlot *slot;
	Relation	index;
	ScanKeyData key;
	bool		found = false;

	if (attnum <= 0)
	{
		table_close(rel, AccessShareLock);
		return false;
	}
	slot = table_slot_create(rel, NULL);
	index = usable_index(rel, attnum);
	if (index != NULL)
	{
		IndexScanDesc scan = index_beginscan(rel, index, snapshot, 1, 0);

		ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_UUID_EQ, UUIDPGetDatum(tenant));
		index_rescan(scan, &key, 1, NULL, 0);
		while (!found && index_getnext_slot(scan, ForwardScanDirection, slot))
		{
			bool		isnull;
			Datum		value = slot_getattr(slot, attnum, &isnull);

			/* Recheck the row itself, whatever the index entry says. */
			found = !isnull && memcmp(DatumGetUUIDP(value), tenant, sizeof(pg_uuid_t)) == 0;
		}
		index_endscan(scan);
		index_close(index, AccessShareLock);
	}
	else
	{
		TableScanDesc scan;

		ScanKeyInit(&key, attnum, BTEqualStrategyNumber, F_UUID_EQ, UUIDPGetDatum(tenant));
		scan = table_beginscan(rel, snapshot, 1, &key);
		found = table_scan_getnextslot(scan, ForwardScanDirection, slot);
		table_endscan(scan);
	}
	ExecDropSingleTupleTableSlot(slot);
	table_close(rel, AccessShareLock);
	return found;
}

/* Is tenant a row of the tenants table (or of one of its partitions)? */
static bool
tenants_table_has(Oid tenants, const char *column, const pg_uuid_t *tenant)
{
	Snapshot	snapshot;
	List	   *rels;
	ListCell   *lc;
	bool		found = false;
	AttrNumber	attnum;

	if (get_rel_relkind(tenants) == '\0')
		ereport(ERROR,
				(errcode(DOMI_ERRCODE_KEYRING_STATE),
				 errmsg("the tenants table configured by domi.configure_tenancy() does not exist"),
				 errhint("Call domi.configure_tenancy() again.")));
	attnum = get_attnum(tenants, column);
	if (attnum <= 0 || getBaseType(get_atttype(tenants, attnum)) != UUIDOID)
		ereport(ERROR,
				(errcode(DOMI_ERRCODE_KEYRING_STATE),
				 errmsg("the tenants id column \"%s\" of %s is missing or not of type uuid",
						column, get_rel_name(tenants)),
				 errhint("Call domi.configure_tenancy() again.")));

	/*
	 * A Citus table's own heap is an empty shell on the coordinator, its
	 * rows are in the shards: ask Citus, with a query (as the owner of
	 * domi's tables, inside the keyring's SPI connection).
	 */
	if (domi_is_citus_table(tenants))
	{
		Oid			argtypes[1] = {UUIDOID};
		Datum		values[1] = {UUIDPGetDatum(tenant)};
		bool		isnull;

		if (SPI_execute_with_args(psprintf("SELECT EXISTS (SELECT 1 FROM %s t WHERE t.%s OPERATOR(pg_catalog.=) $1)",
										   quote_qualified_identifier(get_namespace_name(get_rel_namespace(tenants)),
																	  get_rel_name(tenants)),
										   quote_identifier(column)),
								  1, argtypes, values, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not read the tenants table");
		return DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}

	/*
	 * Latest committed state, with this transaction's own rows of earlier
	 * commands (a tenant created just before its first value).
	 */
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	rels = find_all_inheritors(tenants, AccessShareLock, NULL);
	foreach(lc, rels)
	{
		Oid			relid = lfirst_oid(lc);

		if (get_rel_relkind(relid) != RELKIND_RELATION)
			continue;
		if ((found = relation_has_tenant(relid, column, tenant, snapshot)))
			break;
	}
	UnregisterSnapshot(snapshot);
	return found;
}

/*
 * May caller create tenant's first key?  Runs inside the keyring's SPI
 * connection as the owner of domi's tables (which reads the configuration).
 */
void
domi_check_first_key(const pg_uuid_t *tenant, Oid caller)
{
	bool		isnull;

	if (first_key_role != NULL && first_key_role[0] != '\0')
	{
		Oid			role = get_role_oid(first_key_role, true);

		if (!OidIsValid(role) || !has_privs_of_role(caller, role))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied to create the first key of tenant %s",
							domi_uuid_text(tenant)),
					 errdetail(OidIsValid(role) ?
							   "domi.first_key_role allows only members of role \"%s\" to create a tenant's first key." :
							   "domi.first_key_role names role \"%s\", which does not exist.",
							   first_key_role)));
	}

	if (SPI_execute("SELECT tenants::pg_catalog.oid, tenants_id_column::pg_catalog.text"
					" FROM domi.tenancy_config WHERE tenants IS NOT NULL",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read domi.tenancy_config");
	if (SPI_processed > 0)
	{
		Oid			tenants = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
															 SPI_tuptable->tupdesc, 1, &isnull));
		char	   *column = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);

		if (!tenants_table_has(tenants, column, tenant))
			ereport(ERROR,
					(errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
					 errmsg("cannot create a key for tenant %s: it is not in the tenants table %s",
							domi_uuid_text(tenant),
							quote_qualified_identifier(get_namespace_name(get_rel_namespace(tenants)),
													   get_rel_name(tenants))),
					 errdetail("domi.configure_tenancy() names the tenants table; keys are made only for tenants that exist."),
					 errhint("Create the tenant first.")));
	}
}
