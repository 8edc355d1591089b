/*
 * ledger_lineage.h
 *		Schema truth as lineage findings (ledger_lineage.c), called once by
 *		domi.lineage_check (lineage.c).
 */
#ifndef DOMI_LEDGER_LINEAGE_H
#define DOMI_LEDGER_LINEAGE_H

#include "utils/jsonb.h"

#include "lineage.h"

/*
 * When the manifest says "schema_truth": true, adds the drift of the live
 * schema from the newest applied drizzle snapshot (drift_*) and the DDL no
 * migration accounts for (out_of_chain_ddl).  table is the migrations
 * table, or InvalidOid for the format's default.
 */
extern void ledger_lineage_findings(LineageFindings *findings, Jsonb *manifest,
									Oid table);

#endif							/* DOMI_LEDGER_LINEAGE_H */
