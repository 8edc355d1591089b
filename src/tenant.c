/*
 * tenant.c
 *		The tenant context: which tenant the current transaction acts for.
 *
 * The tenant lives in the custom setting domi.tenant_id, so that every way
 * PostgreSQL already has of scoping a setting works for it: SET LOCAL,
 * set_config(..., true), ROLLBACK TO SAVEPOINT, function SET clauses and
 * parallel workers (which receive the leader's settings).
 *
 * The check hook validates the value once, when it is set, and hands the
 * parsed uuid to the assign hook as "extra"; reading the tenant is then a
 * 16-byte copy.  RLS policies call domi.current_tenant(), so that read must
 * cost no parsing.
 *
 * Behind a transaction pooler (PgBouncer in transaction mode) a server
 * connection serves one client per transaction, so a tenant set for the whole
 * session would outlive the client that set it and apply to the next
 * client's transactions.  So a value counts only when it is scoped: set in
 * this transaction with SET LOCAL, set_config(..., true) or set_tenant(), or
 * by a function's SET clause for the duration of the call; unless a superuser
 * allows session-wide tenants (domi.allow_session_tenant).  The GUC machinery
 * does not tell check or assign hooks whether a value is SET or SET LOCAL,
 * so we read the setting's GUC stack when the tenant is read: its top entry
 * says how the value now in force was set in this transaction, and no entry
 * means the value is a session value (an earlier SET, ALTER ROLE/DATABASE
 * SET, PGOPTIONS, postgresql.conf).  A session value that is not allowed is
 * not used: current_tenant() returns NULL, fail closed.  tenant_session.c
 * refuses such values with an error where it can see them being made.
 */
#include "postgres.h"

#include <ctype.h>

#include "access/parallel.h"
#include "access/xact.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/guc_tables.h"
#include "utils/uuid.h"

#include "citus.h"
#include "domi.h"

PG_FUNCTION_INFO_V1(domi_set_tenant);
PG_FUNCTION_INFO_V1(domi_current_tenant);
PG_FUNCTION_INFO_V1(domi_require_tenant);

#define TENANT_SETTING "domi.tenant_id"

/* Parsed form of domi.tenant_id, owned by the GUC machinery as "extra". */
typedef struct TenantContext
{
	bool		is_set;			/* false for the empty string: no tenant */
	pg_uuid_t	tenant;
} TenantContext;

/* Backing variable of the setting: the canonical text form, or "". */
static char *tenant_id_setting = NULL;

/* Points at the extra of the value now in force; never NULL after init. */
static const TenantContext *current_context = NULL;

static const TenantContext no_tenant = {false, {{0}}};

/*
 * The setting's own GUC record, to read its stack and source.  Without it
 * no value counts unless session-wide tenants are allowed: fail closed.
 */
static struct config_generic *tenant_guc = NULL;

static inline int
hex_digit_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Parse the text forms the uuid type itself accepts: 32 hex digits, an
 * optional hyphen after any group of four, optionally inside braces.  We
 * cannot call uuid_in here, because a check hook must report problems
 * instead of throwing.
 */
static bool
parse_uuid_text(const char *text, pg_uuid_t *out)
{
	const char *p = text;
	bool		braces = false;
	int			i;

	if (*p == '{')
	{
		braces = true;
		p++;
	}
	for (i = 0; i < UUID_LEN; i++)
	{
		int			high = hex_digit_value(p[0]);
		int			low = (high < 0) ? -1 : hex_digit_value(p[1]);

		if (low < 0)
			return false;
		out->data[i] = (unsigned char) ((high << 4) | low);
		p += 2;
		if (*p == '-' && i % 2 == 1 && i < UUID_LEN - 1)
			p++;
	}
	if (braces && *p++ != '}')
		return false;
	return *p == '\0';
}

/* Format a uuid in the canonical 8-4-4-4-12 lower-case form. */
static void
format_uuid_text(const pg_uuid_t *uuid, char *buf)
{
	static const char hex[] = "0123456789abcdef";
	char	   *p = buf;
	int			i;

	for (i = 0; i < UUID_LEN; i++)
	{
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*p++ = '-';
		*p++ = hex[uuid->data[i] >> 4];
		*p++ = hex[uuid->data[i] & 0x0f];
	}
	*p = '\0';
}

static bool
check_tenant_id(char **newval, void **extra, GucSource source)
{
	TenantContext *context;
	pg_uuid_t	parsed;

	if (*newval == NULL || (*newval)[0] == '\0')
	{
		context = malloc(sizeof(TenantContext));
		if (context == NULL)
			return false;
		*context = no_tenant;
		*extra = context;
		return true;
	}

	if (!parse_uuid_text(*newval, &parsed))
	{
		GUC_check_errcode(ERRCODE_INVALID_TEXT_REPRESENTATION);
		GUC_check_errmsg("invalid tenant id \"%s\"", *newval);
		GUC_check_errdetail("The value of domi.tenant_id must be a uuid, or empty for no tenant.");
		return false;
	}

	/* Store the canonical form, so SHOW and current_setting agree with uuid output. */
	if (strlen(*newval) != UUID_LEN * 2 + 4)
	{
		char	   *canonical = malloc(UUID_LEN * 2 + 5);

		if (canonical == NULL)
			return false;
		format_uuid_text(&parsed, canonical);
		free(*newval);
		*newval = canonical;
	}
	else
		format_uuid_text(&parsed, *newval);

	context = malloc(sizeof(TenantContext));
	if (context == NULL)
		return false;
	context->is_set = true;
	context->tenant = parsed;
	*extra = context;
	return true;
}

static void
assign_tenant_id(const char *newval, void *extra)
{
	current_context = extra ? (const TenantContext *) extra : &no_tenant;
}

void
domi_tenant_init(void)
{
	current_context = &no_tenant;

	DefineCustomStringVariable(TENANT_SETTING,
							   "The tenant the current transaction acts for.",
							   "A uuid, or empty for no tenant. Set it with SET LOCAL or domi.set_tenant() so it ends with the transaction.",
							   &tenant_id_setting,
							   "",
							   PGC_USERSET,
							   GUC_NOT_IN_SAMPLE,
							   check_tenant_id,
							   assign_tenant_id,
							   NULL);
	tenant_guc = domi_find_guc(TENANT_SETTING);
}

/* The GUC record of one of our settings, or NULL. */
struct config_generic *
domi_find_guc(const char *name)
{
	struct config_generic **vars = get_guc_variables();
	int			nvars = GetNumConfigOptions();
	int			i;

	for (i = 0; i < nvars; i++)
	{
		if (strcmp(vars[i]->name, name) == 0)
			return vars[i];
	}
	return NULL;
}

/*
 * How the tenant value now in force was set; see the file header.
 *
 * In a parallel worker the leader's settings arrive as session values with
 * their source, and the stack states are gone.  A value with source
 * PGC_S_SESSION came from SET LOCAL, set_tenant(), a function's SET clause or
 * a plain SET.  A leader in which such a value does not count starts no
 * workers (tenant_session.c: an error for a SET of this transaction, a plan
 * run without workers for an older session value), so a worker may treat
 * it as scoped.  Values from any other source (PGOPTIONS, ALTER ROLE
 * or DATABASE SET, postgresql.conf) are session values in the worker too.
 */
DomiTenantOrigin
domi_tenant_origin(void)
{
	GucStack   *top;

	if (!current_context->is_set)
		return DOMI_TENANT_UNSET;
	if (tenant_guc == NULL)
		return DOMI_TENANT_SESSION_CONFIG;

	top = tenant_guc->stack;
	if (top != NULL)
	{
		switch (top->state)
		{
			case GUC_LOCAL:
			case GUC_SET_LOCAL:
			case GUC_SAVE:
				return DOMI_TENANT_SCOPED;
			case GUC_SET:
				/* RESET puts back the connection's value, with its source */
				if (tenant_guc->source == PGC_S_SESSION)
					return DOMI_TENANT_SET_IN_XACT;
				return DOMI_TENANT_SESSION_CONFIG;
		}
	}
	if (tenant_guc->source != PGC_S_SESSION)
		return DOMI_TENANT_SESSION_CONFIG;
	if (IsParallelWorker())
		return DOMI_TENANT_SCOPED;
	return DOMI_TENANT_SESSION_SET;
}

/*
 * The tenant context that counts: the value in force if it is scoped to the
 * transaction (or session-wide tenants are allowed), else none.  The RLS
 * policy calls this for every row, so the common cases return early.
 */
static inline const TenantContext *
tenant_in_force(void)
{
	if (!current_context->is_set || domi_session_tenant_allowed())
		return current_context;
	if (domi_tenant_origin() == DOMI_TENANT_SCOPED)
		return current_context;
	return &no_tenant;
}

static Datum
uuid_datum_copy(const pg_uuid_t *uuid)
{
	pg_uuid_t  *result = palloc(sizeof(pg_uuid_t));

	*result = *uuid;
	return UUIDPGetDatum(result);
}

/*
 * Refuse to set a transaction-local tenant outside a transaction block.
 * There the statement is its own transaction, so a transaction-local value
 * would be gone before the caller's next statement; refuse rather than let
 * the caller believe a tenant is set.
 */
void
domi_require_transaction_block(void)
{
	if (!IsTransactionBlock())
		ereport(ERROR,
				(errcode(ERRCODE_NO_ACTIVE_SQL_TRANSACTION),
				 errmsg("cannot set a transaction-local tenant outside a transaction block"),
				 errdetail("The tenant is set for the current transaction only, and this statement is a transaction of its own: the tenant would be gone before the next statement."),
				 errhint("Call it inside BEGIN ... COMMIT.")));
}

/*
 * Set the tenant for the current transaction only (NULL clears it): the one
 * way domi.set_tenant() and domi.enter_tenant() both set it.
 */
void
domi_set_local_tenant(const pg_uuid_t *tenant)
{
	char		text_form[UUID_LEN * 2 + 5];

	domi_require_transaction_block();

	if (tenant == NULL)
		text_form[0] = '\0';
	else
		format_uuid_text(tenant, text_form);

	(void) set_config_option(TENANT_SETTING, text_form,
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_LOCAL, true, 0, false);
	/* On a Citus coordinator, the workers of this transaction too. */
	domi_citus_propagate_tenant(text_form);
}

/*
 * domi.set_tenant(tenant uuid) returns uuid
 *
 * Sets the tenant for the current transaction only; NULL clears it.
 */
Datum
domi_set_tenant(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
	{
		domi_set_local_tenant(NULL);
		PG_RETURN_NULL();
	}
	domi_set_local_tenant(PG_GETARG_UUID_P(0));
	PG_RETURN_DATUM(uuid_datum_copy(PG_GETARG_UUID_P(0)));
}

/*
 * domi.current_tenant() returns uuid
 *
 * NULL when no tenant is set, so that a policy comparing a column with it
 * matches no row (fails closed) instead of raising an error.
 */
Datum
domi_current_tenant(PG_FUNCTION_ARGS)
{
	const TenantContext *context = tenant_in_force();

	if (!context->is_set)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(uuid_datum_copy(&context->tenant));
}

/*
 * domi.require_tenant() returns uuid
 *
 * For code that must not run without a tenant: an error instead of NULL.
 */
Datum
domi_require_tenant(PG_FUNCTION_ARGS)
{
	PG_RETURN_DATUM(uuid_datum_copy(domi_required_tenant()));
}

/*
 * The current tenant for C callers (the keyring's forms without a tenant
 * argument), with domi.require_tenant()'s error when none is set.
 */
const pg_uuid_t *
domi_required_tenant(void)
{
	const TenantContext *context = tenant_in_force();

	if (!context->is_set && current_context->is_set)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("no tenant is set for this transaction"),
				 errdetail("A session-wide domi.tenant_id is ignored while domi.allow_session_tenant is off."),
				 errhint("Use SET LOCAL domi.tenant_id or domi.set_tenant() inside a transaction.")));
	if (!context->is_set)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("no tenant is set"),
				 errhint("Call domi.set_tenant() inside the transaction, or SET LOCAL domi.tenant_id.")));
	return &context->tenant;
}
