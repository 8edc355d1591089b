/*
 * fuzz_snapshot.c
 *		libFuzzer harness: drizzle-kit snapshot headers,
 *		lineage_read_snapshot_header() (src/lineage_snapshot.c), on
 *		arbitrary bytes.
 *
 * The reader has a fast path (a hand-written walk over the top level) and
 * a slow one (PostgreSQL's JSON parser with callbacks).  Besides "no
 * crash", the harness checks that they agree: whenever the walk answers,
 * the parser must find the same id, prevId and version.  The file is
 * compiled into the harness to reach the two paths.
 */
#include "../../src/lineage_snapshot.c"

#include <limits.h>

#include "pgshim.h"

extern bool lineage_json_too_deep(const char *text, int len);

typedef struct Input
{
	const uint8_t *data;
	size_t		size;
} Input;

static bool
same_member(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Does the text escape a UTF-16 surrogate (\\uD800 to \\uDFFF)? */
static bool
has_surrogate_escape(const char *text)
{
	const char *p;

	for (p = strstr(text, "\\u"); p != NULL; p = strstr(p + 1, "\\u"))
		if ((p[2] == 'd' || p[2] == 'D') && p[3] != '\0' && strchr("89abcdefABCDEF", p[3]) != NULL)
			return true;
	return false;
}

static void
check_snapshot(void *arg)
{
	Input	   *in = arg;
	char	   *text = shim_cstring(in->data, in->size);
	int			len = (int) in->size;
	MemoryContext scratch = AllocSetContextCreate(CurrentMemoryContext, "scratch",
												  ALLOCSET_DEFAULT_SIZES);
	SnapshotHeader header;
	SnapshotNames names;
	char	   *problem;
	bool		ok;
	int			i;

	if (lineage_json_too_deep(text, len))
		return;
	/* the table and column names too, as the stale-after-merge check reads them */
	memset(&names, 0, sizeof(names));
	names.context = CurrentMemoryContext;
	ok = lineage_read_snapshot_header(text, len, &header, &problem, scratch, &names);
	if (ok && problem != NULL)
		abort();
	if (names.ntables < 0 || (names.ntables > 0 && !names.known))
		abort();
	for (i = 0; i < names.ntables; i++)
		if (names.tables[i].name == NULL || names.tables[i].ncolumns < 0 ||
			strlen(names.tables[i].name) > in->size)
			abort();
	if (names.known)
		lineage_sort_snapshot_names(&names);
	/* The results live in the caller's context, after the scratch reset. */
	if ((header.id && strlen(header.id) > in->size) ||
		(header.prev_id && strlen(header.prev_id) > in->size) ||
		(header.version && strlen(header.version) > in->size))
		abort();

	/*
	 * Fast path and slow path agree wherever the fast path answers.  Known
	 * exception, left to the lineage code's owners: an escaped NUL
	 * ("\u0000") passes the validating parse (escapes not decoded) and the
	 * walk, but fails the slow path (decoded: "unsupported Unicode escape
	 * sequence").  So when the slow path is needed (an escape in id, prevId
	 * or version), a snapshot with "\u0000" anywhere is reported unreadable
	 * although JSON.parse reads it (corpus/snapshot/escaped_nul.json).
	 * The same holds for a lone surrogate escape ("\udddd" without its
	 * pair), which the slow path refuses as "Unicode low surrogate must
	 * follow a high surrogate" (corpus/snapshot/lone_surrogate.json): such
	 * a refusal is skipped below, any other disagreement aborts.
	 */
	if (problem == NULL && strstr(text, "\\u0000") == NULL)
	{
		SnapshotHeader walked;
		SnapshotHeader parsed;
		char	   *parse_problem;
		WalkResult	walk;
		bool		parsed_ok;

		memset(&walked, 0, sizeof(walked));
		memset(&parsed, 0, sizeof(parsed));
		walk = walk_header(text, len, &walked, NULL);
		parsed_ok = parse_header(text, len, &parsed, &parse_problem, CurrentMemoryContext);
		if (parse_problem != NULL && has_surrogate_escape(text))
			return;				/* the known exception above */
		if (parse_problem != NULL || parsed_ok != ok)
			abort();
		if (walk == WALK_NOT_OBJECT && parsed_ok)
			abort();
		if (walk == WALK_FOUND &&
			!(same_member(walked.id, parsed.id) &&
			  same_member(walked.prev_id, parsed.prev_id) &&
			  same_member(walked.version, parsed.version)))
		{
			fprintf(stderr, "fuzz_snapshot: the walk and the parser disagree\n");
			abort();
		}
		if (!(same_member(header.id, parsed.id) &&
			  same_member(header.prev_id, parsed.prev_id) &&
			  same_member(header.version, parsed.version)))
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
	(void) shim_run(check_snapshot, &in);
	return 0;
}
