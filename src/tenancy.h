/*
 * tenancy.h
 *		What the files of tenant lookup share among themselves: the
 *		configuration row, the state built from it (tenancy.c), and the
 *		helpers that the configuration (tenancy_config.c), the lookups
 *		(tenancy_lookup.c) and the bootstrap (tenancy_bootstrap.c) call.
 *		Other concerns use domi.h (domi_tenancy_init).
 */
#ifndef DOMI_TENANCY_H
#define DOMI_TENANCY_H

#include "access/attnum.h"
#include "catalog/pg_attribute.h"
#include "fmgr.h"
#include "utils/uuid.h"

#define CONFIG_SCHEMA "domi"
#define CONFIG_TABLE "tenancy_config"

/*
 * bootstrap_tenant serializes the calls for one user with a transaction
 * lock on an advisory lock tag that SQL cannot name: pg_advisory_lock and
 * its kin set the tag's fourth field to 1 (one bigint) or 2 (two ints),
 * never to this value, so no role can hold the lock and block a user's
 * sign-up.  The keyring uses 100 for its own tags (src/keyring.c).  The
 * other fields: the database, the class id "domi" in ASCII, the hash of
 * the user id.
 */
#define BOOTSTRAP_LOCK_CLASS 0x646f6d69
#define BOOTSTRAP_LOCK_FIELD4 101

/* The configuration row: tables by OID, columns by name. */
typedef struct TenancyConfig
{
	Oid			memberships;
	NameData	user_column;
	NameData	tenant_column;
	bool		has_order_column;
	NameData	order_column;
	Oid			tenants;		/* InvalidOid: no tenants table */
	NameData	tenants_id_column;
} TenancyConfig;

/* The attributes a configuration names, as check_config resolved them. */
typedef struct ResolvedColumns
{
	FormData_pg_attribute user;
	AttrNumber	tenant_attnum;
	FormData_pg_attribute order;	/* attnum 0: no order column */
	FormData_pg_attribute tenants_id;	/* only with a tenants table */
} ResolvedColumns;

/* What the calls need, built from the configuration once per backend. */
typedef struct TenancyState
{
	bool		valid;
	uint64		generation;		/* tenancy_generation when built */
	Oid			config_relid;
	Oid			memberships;
	Oid			tenants;
	/* the columns by name: a partition or child has its own attnums */
	NameData	user_column;
	NameData	tenant_column;
	NameData	order_column;
	bool		has_order_column;

	/*
	 * The user column: the arguments (text) are converted to its base type
	 * by that type's input function, and compared with its "=" under its
	 * collation; its hash names the bootstrap lock.  Text and varchar need
	 * no conversion.
	 */
	Oid			user_base_type;
	Oid			user_collation;
	bool		user_is_text;
	Oid			user_input;
	Oid			user_ioparam;
	FmgrInfo	user_eq;
	FmgrInfo	user_hash;
	/* the order column's default sort order (ORDER BY col, ascending) */
	Oid			order_collation;
	FmgrInfo	order_cmp;
	int16		order_typlen;
	bool		order_typbyval;

	/* for bootstrap_tenant, which builds its INSERTs per call */
	AttrNumber	tenants_id_attnum;
	char		tenants_id_generated;	/* attgenerated of the id column */
	bool		tenants_id_unique;	/* see tenancy_tenants_id_is_unique() */
	char	   *tenants_id_column;	/* quoted */

	/*
	 * The index that answers the lookups directly, without a query
	 * (InvalidOid: none fits, the general scan answers), and its scan key.
	 */
	Oid			lookup_index;
	bool		memberships_is_citus;	/* its rows are in Citus shards */
	AttrNumber	tenant_keyno;	/* the tenant column's place in the index */
	/*
	 * The index was built over broken HOT chains (pg_index.indcheckxmin):
	 * the xmin of its pg_index row, which every snapshot that scans it must
	 * postdate (InvalidTransactionId: no such condition).
	 */
	TransactionId lookup_index_xmin;
	Oid			user_key_type;
	Oid			user_key_collation;
	RegProcedure user_key_equality;
} TenancyState;

/* The state of this backend, built from the configuration (tenancy.c). */
extern TenancyState tenancy_state;

/* One call of a lookup function: connected to SPI only when it needs to be. */
typedef struct TenancyCall
{
	bool		spi_connected;
} TenancyCall;

/*
 * Which snapshot a lookup reads with.  STATEMENT: the calling query's (the
 * STABLE lookups).  FRESH: a new one that sees this transaction's own
 * writes so far (enter_tenant after bootstrap_tenant in one statement).
 * LATEST: the latest committed state, whatever the isolation level
 * (bootstrap_tenant's look after waiting for the lock).
 */
typedef enum LookupSnapshot
{
	LOOKUP_STATEMENT,
	LOOKUP_FRESH,
	LOOKUP_LATEST
} LookupSnapshot;

/* tenancy.c */
extern void tenancy_finish_spi(void);
extern void tenancy_require_rls_bypass(Oid role);
extern void tenancy_begin(TenancyCall *call, bool with_tenants);
extern void tenancy_end(TenancyCall *call);
extern char *tenancy_qualified_relation_name(Oid relid);

/* tenancy_config.c */
extern void tenancy_check_config(const TenancyConfig *cfg, bool stored,
								 ResolvedColumns *resolved);
extern Oid tenancy_config_table_relid(void);
extern bool tenancy_is_text_like(Oid typid);
extern bool tenancy_load_config(TenancyConfig *cfg);
extern bool tenancy_tenants_id_is_unique(Oid relid, AttrNumber attnum);
extern Oid tenancy_relation_owner(Oid relid);
extern void tenancy_report_tenants_id_not_unique(Oid relid, AttrNumber attnum);

/* tenancy_lookup.c */
extern bool tenancy_first_tenant(Datum user_id, LookupSnapshot which,
								 pg_uuid_t *tenant);
extern void tenancy_require_user_id(FunctionCallInfo fcinfo);
extern Datum tenancy_user_id_argument(FunctionCallInfo fcinfo);
extern Datum tenancy_uuid_result(const pg_uuid_t *tenant);

#endif							/* DOMI_TENANCY_H */
