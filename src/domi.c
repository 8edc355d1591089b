/*
 * domi.c
 *		Module entry point. Each concern lives in its own file and registers
 *		its settings from here, so loading order is in one place.
 *
 * The library works both when preloaded (shared_preload_libraries = 'domi')
 * and when loaded on first use by CREATE EXTENSION or a function call.
 * Features that need preloading check process_shared_preload_libraries_in_progress
 * themselves and report a hint when it was not.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/guc.h"

#include "domi.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	domi_tenant_init();
	domi_tenant_session_init();
	domi_crypto_init();
	domi_rls_init();
	domi_keyring_init();
	domi_tenancy_init();
	domi_guard_init();
	domi_ledger_init();
	domi_sync_init();

	/* Settings under "domi." that we did not define are typos: say so. */
	MarkGUCPrefixReserved("domi");
}
