/*
 * citus.c
 *		domi on a Citus cluster, without linking to Citus: only its catalog
 *		table and its settings, looked up by name.
 *
 * The tenant context.  Citus sends a SET LOCAL to the workers a transaction
 * touches only when citus.propagate_set_commands is 'local', and never what
 * set_config() or a C caller sets.  So when Citus is loaded, setting the
 * tenant also runs "SET LOCAL domi.tenant_id = ..." as a statement (through
 * SPI, so that Citus' utility hook sees it) with the propagation turned on
 * for that one statement.  Citus sends it to the workers already in the
 * transaction and keeps it for the connections it opens later, in order: a
 * later tenant replaces an earlier one there as it does here.
 *
 * Citus tables.  The coordinator keeps an empty local "shell" of each Citus
 * table; the rows are in the shards.  Code that reads a table's heap or
 * indexes directly instead of through a query must not trust the shell.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/skey.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "citus.h"

#define CITUS_PROPAGATE_SETTING "citus.propagate_set_commands"

/*
 * pg_dist_partition has a row per Citus table, its first column the
 * table's oid (logicalrelid, of type regclass).  A scan without an index:
 * the catalog is small, and its index's name is Citus' business.
 */
bool
domi_is_citus_table(Oid relid)
{
	Oid			catalog = get_relname_relid("pg_dist_partition", PG_CATALOG_NAMESPACE);
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	bool		found;

	if (!OidIsValid(catalog))
		return false;
	rel = table_open(catalog, AccessShareLock);
	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(relid));
	scan = systable_beginscan(rel, InvalidOid, false, NULL, 1, &key);
	found = HeapTupleIsValid(systable_getnext(scan));
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

void
domi_citus_propagate_tenant(const char *text_form)
{
	const char *propagate;
	char	   *saved;
	char	   *command;
	int			rc;

	/* Citus not loaded: its setting is not defined. */
	propagate = GetConfigOption(CITUS_PROPAGATE_SETTING, true, false);
	if (propagate == NULL)
		return;
	saved = pstrdup(propagate);

	(void) set_config_option(CITUS_PROPAGATE_SETTING, "local",
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_LOCAL, true, 0, false);

	command = psprintf("SET LOCAL domi.tenant_id TO %s", quote_literal_cstr(text_form));
	if ((rc = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(rc));
	rc = SPI_execute(command, false, 0);
	if (rc != SPI_OK_UTILITY)
		elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(rc));
	SPI_finish();

	/* Back to what the caller had: this setting is not ours to change. */
	(void) set_config_option(CITUS_PROPAGATE_SETTING, saved,
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_LOCAL, true, 0, false);
	pfree(saved);
	pfree(command);
}

/*
 * The keyring is a reference table: every node has all of it, in a shard
 * placement of its own, written on all nodes in one transaction.  When
 * Citus pushes domi.decrypt() down to a worker, the key lookup is a query
 * inside a query on a shard, which Citus refuses unless nested execution
 * is allowed; for a read of a reference table the nested query is answered
 * from the node's own placement and sees what the outer one sees.  Only the
 * lookup allows it (GUC_ACTION_SAVE, undone when domi's SPI session ends):
 * writes of keys from inside a shard query stay refused.
 */
void
domi_citus_allow_nested_read(void)
{
	if (GetConfigOption("citus.allow_nested_distributed_execution", true, false) == NULL)
		return;
	(void) set_config_option("citus.allow_nested_distributed_execution", "on",
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
}
