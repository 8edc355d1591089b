/*
 * guard.h
 *		The override of domi's guards, domi.allow_drop (guard.c), for the
 *		other guards that honour it (rls_guard.c).
 */
#ifndef DOMI_GUARD_H
#define DOMI_GUARD_H

/*
 * Does a SET LOCAL domi.allow_drop of this transaction name schema.table.name?
 * A value set for the session (SET, ALTER ROLE ... SET, PGOPTIONS) never does.
 */
extern bool domi_allow_drop_names(const char *schema, const char *table, const char *name);

/* domi.allow_drop has a value, but not from SET LOCAL in this transaction. */
extern bool domi_allow_drop_set_but_not_locally(void);

/* One SQLSTATE for every refusal of domi's guards, so that tooling can catch one. */
#define DOMI_ERRCODE_GUARD_REFUSAL	ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST	/* 2BP01 */

#endif							/* DOMI_GUARD_H */
