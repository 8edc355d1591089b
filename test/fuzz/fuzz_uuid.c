/*
 * fuzz_uuid.c
 *		libFuzzer harness: the tenant id parser behind domi.tenant_id, the
 *		GUC check hook check_tenant_id() and parse_uuid_text()
 *		(src/tenant.c), on arbitrary text.
 *
 * Checks beyond "no crash": an accepted value is rewritten in place to the
 * canonical 36-character form, which parses again to the same 16 bytes;
 * the hook either accepts with an extra or refuses without one.  The file
 * is compiled into the harness to reach its static functions.
 */
#include "../../src/tenant.c"

#include "pgshim.h"

typedef struct Input
{
	const uint8_t *data;
	size_t		size;
} Input;

static void
check_uuid(void *arg)
{
	Input	   *in = arg;
	/* The GUC machinery hands the hook a malloc'd string it may replace. */
	char	   *value = malloc(in->size + 1);
	void	   *extra = NULL;
	bool		ok;

	if (value == NULL)
		abort();
	memcpy(value, in->data, in->size);
	value[in->size] = '\0';
	ok = check_tenant_id(&value, &extra, PGC_S_SESSION);
	if (ok != (extra != NULL))
		abort();
	if (ok && value[0] != '\0')
	{
		const TenantContext *context = extra;
		pg_uuid_t	again;

		if (!context->is_set || strlen(value) != UUID_LEN * 2 + 4)
			abort();
		if (!parse_uuid_text(value, &again) ||
			memcmp(again.data, context->tenant.data, UUID_LEN) != 0)
			abort();
	}
	free(extra);
	free(value);
}

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Input		in = {data, size};

	(void) shim_run(check_uuid, &in);
	return 0;
}
