/*
 * lineage.c
 *		domi.lineage_check(manifest jsonb, migrations_table regclass): checks
 *		an ORM's migration folder against itself and against the database's
 *		record of what ran, and returns one row per finding.
 *
 * The manifest carries the folder's files by name, each as its exact text,
 * so that the sha256 we compute is over the bytes the migrator hashed:
 *
 *		{"format": "drizzle" | "prisma",
 *		 "files": {"meta/_journal.json": "...", "0000_init.sql": "...", ...}}
 *
 * This file holds the SQL function, the manifest and the dispatch to the
 * checkers (lineage_checks.h); the helpers both checkers share (string
 * maps, JSON, sha256, the migrations table) are in lineage_util.c.  The
 * Drizzle checks are in lineage_drizzle*.c (with the readers
 * of its journal and snapshots in lineage_journal.c and lineage_snapshot.c),
 * the Prisma checks in lineage_prisma.c.
 *
 * The function only reads: the files come from the manifest and the
 * migrations table is read through SPI with the caller's rights, so reading
 * it needs the caller's SELECT privilege on it.  All the work happens in a
 * memory context of its own, deleted before returning; every lookup is a
 * hash table, so the time grows linearly with the number of migrations
 * (bench/lineage).  The memory is bounded by a small multiple of the
 * manifest whatever it holds: at most max_findings_per_code findings of a
 * code are kept (lineage_findings.c), snapshots are read by a walk that
 * keeps their names, not built, and what is kept per journal entry is a
 * few fixed-size fields (bench/lineage measures the peak).
 */
#include "postgres.h"

#include <sodium.h>

#include "catalog/namespace.h"
#include "common/hashfn.h"
#include "common/jsonapi.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "nodes/makefuncs.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "lineage_checks.h"
#include "ledger_lineage.h"

PG_FUNCTION_INFO_V1(domi_lineage_check);

/*
 * The manifest
 */
static void
invalid_manifest(const char *message, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s", message),
			 detail ? errdetail("%s", detail) : 0,
			 errhint("The manifest is {\"format\": \"drizzle\" or \"prisma\", \"files\": {\"name\": \"text\", ...}}; domi-lineage builds it from a migrations folder.")));
}

static Manifest *
manifest_from_jsonb(Jsonb *doc, const char **format)
{
	JsonbValue *format_value;
	JsonbValue *files_value;
	Manifest   *manifest;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken token;
	int			n = 0;

	if (!JB_ROOT_IS_OBJECT(doc))
		invalid_manifest("manifest must be a JSON object", NULL);

	format_value = lineage_json_member(&doc->root, "format");
	if (format_value == NULL)
		*format = "drizzle";
	else if ((*format = lineage_json_string(format_value)) == NULL ||
			 (strcmp(*format, "drizzle") != 0 && strcmp(*format, "prisma") != 0))
		invalid_manifest("unrecognized migrations format in the manifest",
						 "\"format\" must be \"drizzle\" or \"prisma\".");

	files_value = lineage_json_member(&doc->root, "files");
	if (files_value == NULL || files_value->type != jbvBinary ||
		!JsonContainerIsObject(files_value->val.binary.data))
		invalid_manifest("manifest has no \"files\" object",
						 "\"files\" must map each file name to its text.");

	manifest = palloc0(sizeof(Manifest));
	manifest->nfiles = JsonContainerSize(files_value->val.binary.data);
	manifest->files = palloc0(sizeof(ManifestFile) * Max(manifest->nfiles, 1));
	manifest->by_name = lineage_strmap_create(manifest->nfiles);

	it = JsonbIteratorInit(files_value->val.binary.data);
	while ((token = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		ManifestFile *file;

		if (token == WJB_KEY)
		{
			file = &manifest->files[n];
			file->name = pnstrdup(v.val.string.val, v.val.string.len);
			continue;
		}
		if (token != WJB_VALUE)
			continue;
		file = &manifest->files[n];
		if (v.type != jbvString)
			invalid_manifest("manifest file is not a string",
							 psprintf("The value of \"%s\" in \"files\" must be the file's text.",
									  file->name));
		/* No copy: the manifest stays in memory for the whole call. */
		file->text = v.val.string.val;
		file->len = v.val.string.len;
		lineage_strmap_put(manifest->by_name, file->name, file);
		n++;
	}
	return manifest;
}

/* The default migrations table of each format, when it exists. */
static Oid
default_migrations_table(const char *format)
{
	RangeVar   *rv;

	if (strcmp(format, "drizzle") == 0)
		rv = makeRangeVar("drizzle", "__drizzle_migrations", -1);
	else
		rv = makeRangeVar(NULL, "_prisma_migrations", -1);
	return RangeVarGetRelid(rv, NoLock, true);
}

/*
 * The third argument, when the SQL declaration has it (0.3.0; 0.2.0's has
 * two): NULL means the default.
 */
static int
max_findings_per_code(FunctionCallInfo fcinfo)
{
	int32		max;

	if (PG_NARGS() < 3 || PG_ARGISNULL(2))
		return LINEAGE_DEFAULT_MAX_PER_CODE;
	max = PG_GETARG_INT32(2);
	if (max < 0 || max > LINEAGE_MAX_MAX_PER_CODE)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_findings_per_code must be between 0 and %d",
						LINEAGE_MAX_MAX_PER_CODE),
				 errdetail("It was %d.", max)));
	return max;
}

/*
 * domi.lineage_check(manifest jsonb, migrations_table regclass DEFAULT NULL,
 *					  max_findings_per_code integer DEFAULT 100)
 *	returns table (severity text, code text, migration text, detail text, fix text)
 */
Datum
domi_lineage_check(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext work;
	MemoryContext caller;
	LineageFindings findings;
	int			max_per_code;
	Manifest   *manifest;
	const char *format;
	Oid			table;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("manifest must not be null")));

	max_per_code = max_findings_per_code(fcinfo);
	InitMaterializedSRF(fcinfo, 0);

	work = AllocSetContextCreate(CurrentMemoryContext, "domi lineage_check",
								 ALLOCSET_DEFAULT_SIZES);
	caller = MemoryContextSwitchTo(work);
	lineage_findings_init(&findings, max_per_code);

	manifest = manifest_from_jsonb(PG_GETARG_JSONB_P(0), &format);
	table = PG_ARGISNULL(1) ? default_migrations_table(format) : PG_GETARG_OID(1);
	if (!OidIsValid(table))
		lineage_report(&findings, LINEAGE_INFO, "no_migrations_table", NULL,
					   strcmp(format, "drizzle") == 0
					   ? "There is no table drizzle.__drizzle_migrations: only the files were checked, not what the database ran."
					   : "There is no table _prisma_migrations on the search path: only the files were checked, not what the database ran.",
					   "Pass the migrations table as the second argument (domi-lineage --migrations-table) if it has another name.");

	if (strcmp(format, "drizzle") == 0)
		lineage_check_drizzle(&findings, manifest, table);
	else
		lineage_check_prisma(&findings, manifest, table);
	/* schema truth (ledger_lineage.c): only with "schema_truth": true */
	ledger_lineage_findings(&findings, PG_GETARG_JSONB_P(0), table);

	MemoryContextSwitchTo(caller);
	lineage_emit_findings(&findings, rsinfo->setResult, rsinfo->setDesc);
	MemoryContextDelete(work);
	return (Datum) 0;
}
