/*
 * fuzz_prisma.c
 *		libFuzzer harness: the Prisma migrations reader,
 *		lineage_check_prisma() (src/lineage_prisma.c), on an arbitrary
 *		manifest (file names and texts) and _prisma_migrations rows.
 *
 * Input: parts separated by NUL bytes.  The first byte is the number of
 * files (mod 32); then that many name, text pairs; the remaining parts, five
 * at a time, are rows (id, checksum, finished, migration_name,
 * rolled_back), a part "\x01" standing for NULL.  The table reads of
 * src/lineage_util.c (SPI) are replaced by these rows: the build weakens
 * them in lineage_util.o.  Beyond "no crash", every finding must name a
 * migration and carry a detail text.
 */
#include "postgres.h"

#include "nodes/pg_list.h"

#include "pgshim.h"
#include "../../src/lineage_checks.h"

#define ROW_COLUMNS 5

static List *fuzz_rows = NIL;

/* The table reads, in place of the SPI ones in lineage_util.c. */
char *
lineage_table_name(Oid relid)
{
	return pstrdup("public._prisma_migrations");
}

void
lineage_require_columns(Oid relid, const char *kind, const char *const *columns)
{
}

List *
lineage_read_rows(Oid relid, const char *columns, int ncolumns, const char *order_by)
{
	if (ncolumns != ROW_COLUMNS)
		abort();
	return fuzz_rows;
}

/* pg_list.c's lappend, for lineage_report and for the rows. */
List *
lappend(List *list, void *datum)
{
	if (list == NIL)
	{
		list = palloc(offsetof(List, initial_elements) + 4 * sizeof(ListCell));
		list->type = T_List;
		list->length = 0;
		list->max_length = 4;
		list->elements = list->initial_elements;
	}
	else if (list->length == list->max_length)
	{
		ListCell   *cells = palloc(sizeof(ListCell) * list->max_length * 2);

		memcpy(cells, list->elements, sizeof(ListCell) * list->length);
		list->elements = cells;
		list->max_length *= 2;
	}
	list->elements[list->length++].ptr_value = datum;
	return list;
}

typedef struct Input
{
	const uint8_t *data;
	size_t		size;
} Input;

/* The next NUL-separated part as a palloc'd string, or NULL at the end. */
static char *
next_part(const uint8_t **p, const uint8_t *end, int *len)
{
	const uint8_t *start = *p;
	const uint8_t *nul;

	if (start >= end)
		return NULL;
	nul = memchr(start, 0, end - start);
	if (nul == NULL)
		nul = end;
	*len = nul - start;
	*p = nul + 1;
	return pnstrdup((const char *) start, *len);
}

static void
check_prisma(void *arg)
{
	Input	   *in = arg;
	const uint8_t *p = in->data + 1;
	const uint8_t *end = in->data + in->size;
	int			nfiles = in->data[0] % 32;
	Manifest	manifest;
	LineageFindings findings;
	ListCell   *lc;
	int			len = 0;

	/* every finding kept: the harness checks each one */
	lineage_findings_init(&findings, LINEAGE_MAX_MAX_PER_CODE);
	manifest.files = palloc0(sizeof(ManifestFile) * Max(nfiles, 1));
	manifest.nfiles = 0;
	manifest.by_name = lineage_strmap_create(nfiles);
	for (int i = 0; i < nfiles; i++)
	{
		char	   *name = next_part(&p, end, &len);
		char	   *text;
		ManifestFile *file;

		if (name == NULL || (text = next_part(&p, end, &len)) == NULL)
			break;
		file = &manifest.files[manifest.nfiles];
		file->name = name;
		/* Not NUL-terminated in the server either: a copy of just len bytes. */
		file->text = memcpy(palloc(Max(len, 1)), text, len);
		file->len = len;
		if (lineage_strmap_put(manifest.by_name, name, file) == file)
			manifest.nfiles++;	/* file names are jsonb keys: unique */
	}

	fuzz_rows = NIL;
	for (;;)
	{
		char	  **row = palloc(sizeof(char *) * ROW_COLUMNS);
		int			c;

		for (c = 0; c < ROW_COLUMNS; c++)
		{
			row[c] = next_part(&p, end, &len);
			if (row[c] == NULL)
				break;
			if (strcmp(row[c], "\x01") == 0)
				row[c] = NULL;
		}
		if (c < ROW_COLUMNS)
			break;
		fuzz_rows = lappend(fuzz_rows, row);
	}

	lineage_check_prisma(&findings, &manifest, (Oid) 1);
	foreach(lc, findings.items)
	{
		/* lineage_findings.c's Finding: severity, seq, code, migration, detail, fix */
		struct
		{
			LineageSeverity severity;
			int			seq;
			const char *code;
			const char *migration;
			const char *detail;
			const char *fix;
		}		   *f = lfirst(lc);

		if (f->code == NULL || f->migration == NULL || f->detail == NULL ||
			strlen(f->detail) == 0 || strlen(f->code) == 0)
			abort();
		(void) strlen(f->migration);
		if (f->fix)
			(void) strlen(f->fix);
	}
}

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Input		in = {data, size};

	if (size < 1)
		return 0;
	(void) shim_run(check_prisma, &in);
	return 0;
}
