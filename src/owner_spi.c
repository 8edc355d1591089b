/*
 * owner_spi.c
 *		Run domi's own queries as the owner of domi's tables.
 *
 * The keyring's key table and the drop guard's registry are readable by
 * their owner (the extension owner) alone, yet the callers that need them
 * are ordinary roles: domi.encrypt(), an event trigger fired by anyone's
 * DDL.  Rather than declaring those functions SECURITY DEFINER (a user and
 * settings switch on every call, hot or not), they switch only around their
 * own SPI queries, the way PostgreSQL's maintenance commands run as a
 * table's owner: a local user id change inside a restricted operation, and
 * search_path pinned to pg_catalog, pg_temp so that no function or operator
 * of the caller's can stand in for a catalog one.
 *
 * Errors need no cleanup: (sub)transaction abort restores the user id, the
 * security context and the settings.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "domi.h"

void
domi_spi_connect_as(Oid owner, DomiOwnerSpi *spi)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	GetUserIdAndSecContext(&spi->saved_userid, &spi->saved_sec_context);
	SetUserIdAndSecContext(owner, spi->saved_sec_context |
						   SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
	spi->saved_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
}

void
domi_spi_finish_as(DomiOwnerSpi *spi)
{
	AtEOXact_GUC(true, spi->saved_nestlevel);
	SetUserIdAndSecContext(spi->saved_userid, spi->saved_sec_context);
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed");
}

/*
 * The owner of domi's table name (in the schema domi), whose rights domi's
 * own queries on it run with; InvalidOid when the table does not exist (the
 * extension is being created or dropped, or is older than the table).  Its
 * oid goes to *relid when relid is not NULL.
 */
Oid
domi_table_owner(const char *name, Oid *relid)
{
	Oid			nsp = get_namespace_oid("domi", true);
	Oid			rel = OidIsValid(nsp) ? get_relname_relid(name, nsp) : InvalidOid;
	Oid			owner = InvalidOid;
	HeapTuple	tuple;

	if (relid != NULL)
		*relid = rel;
	if (!OidIsValid(rel))
		return InvalidOid;
	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(rel));
	if (HeapTupleIsValid(tuple))
	{
		owner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
		ReleaseSysCache(tuple);
	}
	return owner;
}
