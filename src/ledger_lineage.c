/*
 * ledger_lineage.c
 *		Schema truth inside domi.lineage_check(): drift and out-of-chain DDL
 *		as lineage findings, asked for with "schema_truth": true in the
 *		manifest (domi-lineage --schema-truth).
 *
 * The checks themselves are SQL over the catalog and the ledger
 * (domi.schema_drift, domi._applied_snapshot, domi.ddl_ledger_findings in
 * the 0.3.0 script); this file only runs them, with the caller's rights
 * like the rest of lineage_check, and hands their rows to lineage_report,
 * so that they sort with the other findings (errors first).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "ledger_lineage.h"

static LineageSeverity
severity_of(const char *name)
{
	if (strcmp(name, "error") == 0)
		return LINEAGE_ERROR;
	if (strcmp(name, "warning") == 0)
		return LINEAGE_WARNING;
	return LINEAGE_INFO;
}

void
ledger_lineage_findings(LineageFindings *findings, Jsonb *manifest, Oid table)
{
	MemoryContext caller = CurrentMemoryContext;
	JsonbValue *wanted = lineage_json_member(&manifest->root, "schema_truth");
	Oid			argtypes[2] = {JSONBOID, REGCLASSOID};
	Datum		values[2];
	char		nulls[2] = {' ', ' '};
	int			ret;
	uint64		i;

	if (wanted == NULL || wanted->type != jbvBool || !wanted->val.boolean)
		return;

	values[0] = JsonbPGetDatum(manifest);
	values[1] = ObjectIdGetDatum(table);
	if (!OidIsValid(table))
		nulls[1] = 'n';

	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
	ret = SPI_execute_with_args("SELECT f.severity, f.code, f.detail, f.fix FROM ("
								" SELECT d.*, 1 AS part FROM domi.schema_drift(domi._applied_snapshot($1, $2))"
								"  WITH ORDINALITY d(severity, code, migration, detail, fix, n)"
								" UNION ALL"
								" SELECT l.*, 2 FROM domi.ddl_ledger_findings()"
								"  WITH ORDINALITY l(severity, code, migration, detail, fix, n)) f"
								" ORDER BY f.part, f.n",
								2, argtypes, values, nulls, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(ret));

	/* Copy the rows out of SPI's memory, which SPI_finish frees. */
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		MemoryContext spi = MemoryContextSwitchTo(caller);
		char	   *severity = SPI_getvalue(row, desc, 1);
		char	   *code = SPI_getvalue(row, desc, 2);
		char	   *detail = SPI_getvalue(row, desc, 3);
		char	   *fix = SPI_getvalue(row, desc, 4);

		lineage_report(findings, severity_of(severity), code, NULL, detail, fix);
		MemoryContextSwitchTo(spi);
	}
	SPI_finish();
}
