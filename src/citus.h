/*
 * citus.h
 *		What domi needs to know about Citus, without linking to it: whether a
 *		table is a Citus table, and sending the tenant to the workers.
 */
#ifndef DOMI_CITUS_H
#define DOMI_CITUS_H

/* Is the relation in Citus' metadata (distributed, reference or local)? */
extern bool domi_is_citus_table(Oid relid);

/*
 * After the tenant was set transaction-locally to text_form ("" for none):
 * when Citus is loaded, send the same SET LOCAL through Citus, so that it
 * reaches the workers of this transaction.
 */
extern void domi_citus_propagate_tenant(const char *text_form);

#endif							/* DOMI_CITUS_H */
