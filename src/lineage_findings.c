/*
 * lineage_findings.c
 *		The findings of one domi.lineage_check() call: kept up to a number
 *		per code, counted beyond it, and put into the result with one
 *		summary row per code that had findings left out.
 *
 * Without a bound, a folder whose journal lists 600,000 migrations and
 * holds none of their files made 1,200,005 rows and a 1.7 GB backend from a
 * 66 MB manifest: every finding's text lived until the end of the call.
 * Here a finding beyond the bound costs a counter increment, and its text
 * is never formatted (lineage_report is a macro for that reason), so the
 * findings take a few megabytes whatever the folder holds; the rows a
 * person reads are the first ones of each code, which name the fix, and a
 * count of the rest.
 */
#include "postgres.h"

#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "lineage.h"

typedef struct Finding
{
	LineageSeverity severity;
	int			seq;			/* order found, to keep it within a severity */
	const char *code;
	const char *migration;
	const char *detail;
	const char *fix;
} Finding;

/* What is known of one code: how many were found, and of those left out. */
typedef struct CodeCount
{
	const char *code;
	int64		found;
	int64		left_out;
	int			first_left_out; /* seq of the first one left out */
	LineageSeverity worst_left_out;
} CodeCount;

static const char *const severity_names[] = {"error", "warning", "info"};

void
lineage_findings_init(LineageFindings *findings, int max_per_code)
{
	memset(findings, 0, sizeof(LineageFindings));
	findings->context = AllocSetContextCreate(CurrentMemoryContext,
											  "domi lineage findings",
											  ALLOCSET_DEFAULT_SIZES);
	findings->max_per_code = max_per_code;
	findings->codes = strmap_create(findings->context, 64, NULL);
}

static CodeCount *
code_count(LineageFindings *findings, const char *code)
{
	bool		found;
	StrMapEntry *entry = strmap_insert(findings->codes, code, &found);

	if (!found)
	{
		/* Codes are string literals: the key needs no copy. */
		CodeCount  *count = MemoryContextAllocZero(findings->context, sizeof(CodeCount));

		count->code = code;
		entry->value = count;
	}
	return entry->value;
}

bool
lineage_finding_counted(LineageFindings *findings, LineageSeverity severity,
						const char *code)
{
	CodeCount  *count = code_count(findings, code);
	int			seq = findings->nfound++;

	if (count->found++ < findings->max_per_code)
		return true;
	if (count->left_out++ == 0)
	{
		count->first_left_out = seq;
		count->worst_left_out = severity;
	}
	else if (severity < count->worst_left_out)
		count->worst_left_out = severity;
	return false;
}

bool
lineage_finding_wanted(LineageFindings *findings, const char *code)
{
	StrMapEntry *entry = strmap_lookup(findings->codes, code);

	return entry == NULL ||
		((CodeCount *) entry->value)->found < findings->max_per_code;
}

static const char *
copy_text(MemoryContext context, const char *text)
{
	return text ? MemoryContextStrdup(context, text) : NULL;
}

/*
 * The texts are copied: the checkers may build them in memory they reset
 * (a snapshot compared, then dropped).
 */
void
lineage_finding_add(LineageFindings *findings, LineageSeverity severity,
					const char *code, const char *migration,
					const char *detail, const char *fix)
{
	MemoryContext caller = MemoryContextSwitchTo(findings->context);
	Finding    *finding = palloc(sizeof(Finding));

	finding->severity = severity;
	finding->seq = findings->nfound - 1;	/* counted just before */
	finding->code = code;
	finding->migration = copy_text(findings->context, migration);
	finding->detail = copy_text(findings->context, detail);
	finding->fix = copy_text(findings->context, fix);
	findings->items = lappend(findings->items, finding);
	MemoryContextSwitchTo(caller);
}

/*
 * One row for the findings of a code left out, in the place of the first
 * of them, with the severity of the worst.  Its migration is NULL and its
 * detail starts with the count and says "left out" (domi-lineage adds the
 * count to its totals).
 */
static Finding *
summary_finding(LineageFindings *findings, CodeCount *count)
{
	Finding    *finding = palloc(sizeof(Finding));

	finding->severity = count->worst_left_out;
	finding->seq = count->first_left_out;
	finding->code = count->code;
	finding->migration = NULL;
	if (findings->max_per_code == 0)
		finding->detail = psprintf("%lld %s finding%s left out: max_findings_per_code is 0.",
								   (long long) count->left_out, count->code,
								   count->left_out == 1 ? "" : "s");
	else
		finding->detail = psprintf("%lld more %s finding%s left out: only the first %d of %lld are listed.",
								   (long long) count->left_out, count->code,
								   count->left_out == 1 ? "" : "s",
								   findings->max_per_code, (long long) count->found);
	finding->fix = "Fix the ones listed and check again; or pass max_findings_per_code (domi-lineage --max-findings) to list more.";
	return finding;
}

/* Errors first, then warnings, then info; each in the order found. */
static int
finding_order(const ListCell *a, const ListCell *b)
{
	const Finding *fa = lfirst(a);
	const Finding *fb = lfirst(b);

	if (fa->severity != fb->severity)
		return (int) fa->severity - (int) fb->severity;
	return fa->seq - fb->seq;
}

void
lineage_emit_findings(LineageFindings *findings, Tuplestorestate *store,
					  TupleDesc desc)
{
	MemoryContext caller = MemoryContextSwitchTo(findings->context);
	List	   *rows = list_copy(findings->items);
	strmap_iterator it;
	StrMapEntry *entry;
	ListCell   *lc;

	strmap_start_iterate(findings->codes, &it);
	while ((entry = strmap_iterate(findings->codes, &it)) != NULL)
	{
		CodeCount  *count = entry->value;

		if (count->left_out > 0)
			rows = lappend(rows, summary_finding(findings, count));
	}
	list_sort(rows, finding_order);
	MemoryContextSwitchTo(caller);

	foreach(lc, rows)
	{
		Finding    *finding = lfirst(lc);
		Datum		values[5];
		bool		nulls[5] = {false, false, false, false, false};

		values[0] = CStringGetTextDatum(severity_names[finding->severity]);
		values[1] = CStringGetTextDatum(finding->code);
		values[2] = finding->migration ? CStringGetTextDatum(finding->migration) : (Datum) 0;
		nulls[2] = finding->migration == NULL;
		values[3] = CStringGetTextDatum(finding->detail);
		values[4] = finding->fix ? CStringGetTextDatum(finding->fix) : (Datum) 0;
		nulls[4] = finding->fix == NULL;
		tuplestore_putvalues(store, desc, values, nulls);
	}
}
