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

/*
 * Inside domi's own SPI session (a GUC nest level that ends with it): allow
 * Citus to run its read of the keyring, a reference table, from inside a
 * query on a shard, where Citus refuses nested distributed queries.
 */
extern void domi_citus_allow_nested_read(void);

#endif							/* DOMI_CITUS_H */
