/*
 * lineage_checks.h
 *		The checkers of domi.lineage_check(), one per migration format, called
 *		by the dispatcher in lineage.c.  They use the shared helpers of
 *		lineage.h (lineage_util.c, lineage_findings.c, ...), which never call
 *		back into a checker or the dispatcher.
 */
#ifndef DOMI_LINEAGE_CHECKS_H
#define DOMI_LINEAGE_CHECKS_H

#include "lineage.h"

/* lineage_drizzle.c */
extern void lineage_check_drizzle(LineageFindings *findings, Manifest *manifest,
								  Oid table);

/* lineage_prisma.c */
extern void lineage_check_prisma(LineageFindings *findings, Manifest *manifest,
								 Oid table);

#endif							/* DOMI_LINEAGE_CHECKS_H */
