/*
 * rekey.c
 *		The per-value work of CALL domi.rekey(): open a stored value under
 *		its tenant's keys and, unless the active key opened it, seal it
 *		again under the active key.
 *
 * The loop, the batches and their COMMITs are the PL/pgSQL procedure
 * domi.rekey() (sql/domi--0.1.0--0.2.0.sql); a procedure that commits must
 * be PL/pgSQL or SQL, and the loop is a handful of catalog checks and one
 * UPDATE per batch.  Here is what must not leave C: the plaintext, which
 * exists only in this call's memory and is wiped before it is freed.
 */
#include "postgres.h"

#include "fmgr.h"

#include "keyring.h"

PG_FUNCTION_INFO_V1(domi_rekey_value);

/*
 * domi._rekey_value(box bytea, tenant uuid) returns bytea
 *
 * NULL when the box is already under the tenant's active key (nothing to
 * rewrite), else the same plaintext sealed under the active key (made on
 * first use).  A box that no decryptable key of the tenant opens is an
 * error, as in domi.decrypt: re-keying never drops a value.  A value of a
 * tenant whose keys were destroyed is NULL too: it can never be opened, so
 * there is nothing to re-key, and the shredded tenant's rows must not stop
 * the re-key of every other tenant in the table.
 */
Datum
domi_rekey_value(PG_FUNCTION_ARGS)
{
	bytea	   *box = PG_GETARG_BYTEA_PP(0);
	const pg_uuid_t *tenant = PG_GETARG_UUID_P(1);
	const unsigned char *active;
	bytea	   *plain;
	bytea	   *resealed;
	bool		under_active;

	if (domi_keyring_destroyed(tenant))
		PG_RETURN_NULL();
	/* First, so that a tenant with imported keys only gets its active key. */
	(void) domi_keyring_active_key(tenant);
	plain = domi_keyring_open(VARDATA_ANY(box), VARSIZE_ANY_EXHDR(box), tenant,
							  &under_active);
	if (under_active)
	{
		sodium_memzero(VARDATA(plain), VARSIZE(plain) - VARHDRSZ);
		pfree(plain);
		PG_RETURN_NULL();
	}
	/* Opening made no SPI call: the cached active key is the same one. */
	active = domi_keyring_active_key(tenant);
	resealed = domi_seal(VARDATA(plain), VARSIZE(plain) - VARHDRSZ, active);
	sodium_memzero(VARDATA(plain), VARSIZE(plain) - VARHDRSZ);
	pfree(plain);
	PG_RETURN_BYTEA_P(resealed);
}
