/*
 * fuzz_journal.c
 *		libFuzzer harness: drizzle-kit's meta/_journal.json reader,
 *		lineage_read_journal() (src/lineage_journal.c), on arbitrary bytes.
 *
 * Checks beyond "no crash": what it returns is consistent (entries only
 * with a count, every tag a readable string, a problem text only for
 * invalid JSON), and allocated in the caller's memory context, which
 * outlives the reader's own scratch context.
 */
#include "postgres.h"

#include <limits.h>

#include "pgshim.h"
#include "../../src/lineage.h"

/* The production caller rejects JSON nested deeper than this first. */
extern bool lineage_json_too_deep(const char *text, int len);

typedef struct Input
{
	const uint8_t *data;
	size_t		size;
} Input;

static void
check_journal(void *arg)
{
	Input	   *in = arg;
	Journal		journal;
	char	   *problem = NULL;
	bool		ok;
	char	   *text = shim_cstring(in->data, in->size);
	int			len = (int) in->size;

	if (lineage_json_too_deep(text, len))
		return;
	ok = lineage_read_journal(text, len, &journal, &problem);
	if (ok && problem != NULL)
		abort();
	if (problem != NULL && strlen(problem) == (size_t) -1)
		abort();
	if (journal.nentries < 0 || (journal.nentries > 0 && journal.entries == NULL))
		abort();
	for (int i = 0; i < journal.nentries; i++)
	{
		JournalEntry *e = &journal.entries[i];

		if (e->tag != NULL && strlen(e->tag) > in->size)
			abort();
		if (!e->is_object && (e->tag != NULL || e->has_idx || e->has_when))
			abort();
	}
}

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Input		in = {data, size};

	/*
	 * The files come from text values, which never hold a NUL byte.  (With
	 * one, PostgreSQL's JSON lexer accepts a backslash before it when it
	 * does not decode escapes and refuses it when it does.)
	 */
	if (size > INT_MAX / 2 || memchr(data, 0, size) != NULL)
		return 0;
	(void) shim_run(check_journal, &in);
	return 0;
}
