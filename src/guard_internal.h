/*
 * guard_internal.h
 *		What the files of the drop guard share among themselves: the names,
 *		what a statement does to a protected column (a hit), the registry
 *		access (guard_registry.c) and the refusal (guard.c) that the event
 *		triggers (guard_triggers.c, guard_self.c) use.  Other concerns use
 *		guard.h.
 */
#ifndef DOMI_GUARD_INTERNAL_H
#define DOMI_GUARD_INTERNAL_H

#include "fmgr.h"
#include "commands/event_trigger.h"
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "tcop/cmdtag.h"

#include "domi.h"
#include "guard.h"

#define ALLOW_DROP_SETTING	"domi.allow_drop"
#define REGISTRY_SCHEMA		"domi"
#define REGISTRY_TABLE		"_protected_columns"
#define KEYRING_TABLE		"tenant_keys"

/* One SQLSTATE for every refusal, so that migration tooling can catch one. */
#define DOMI_ERRCODE_PROTECTED_COLUMN	DOMI_ERRCODE_GUARD_REFUSAL

/* What a statement would do to a protected column. */
typedef enum GuardAction
{
	GUARD_DROP,					/* drops the column (or its table) */
	GUARD_RETYPE,				/* changes its type or type modifier */
	GUARD_REWRITE,				/* rewrites it with ALTER COLUMN TYPE ... USING,
								 * keeping its type */
	GUARD_DROP_FIELD,			/* drops an attribute of the composite type its
								 * values are made of */
	GUARD_RENAME,				/* renames it */
	GUARD_VANISHED,				/* it is gone from a table the statement altered */
	GUARD_UNGUARD				/* drops the guard itself (DROP EXTENSION domi) */
} GuardAction;

typedef struct GuardHit
{
	GuardAction action;
	Oid			relid;
	char	   *schema;
	char	   *table;
	char	   *column;
	char	   *new_name;		/* GUARD_RENAME */
	Oid			new_type;		/* GUARD_RETYPE, GUARD_REWRITE */
	int32		new_typmod;
} GuardHit;

/* State saved while the registry is accessed as its owner. */
typedef DomiOwnerSpi RegistryAccess;

/* guard.c */
extern bool guard_allow_drop_names_path(const char *schema,
										const char *table_name,
										const char *column_name);
extern void guard_append_not_local_note(StringInfo detail);
extern const char *guard_command_name(CommandTag tag);
extern EventTriggerData *guard_event_trigger_data(FunctionCallInfo fcinfo,
												  const char *event);
extern void guard_enforce(List *hits, CommandTag tag,
						  const RegistryAccess *access);

/* guard_registry.c */
extern List *guard_hits_from_result(GuardAction action);
extern void guard_registry_close(RegistryAccess *access);
extern void guard_registry_execute(const char *sql, int nargs, Oid *types,
								   Datum *values, int expected);
extern void guard_registry_follow(const GuardHit *hit);
extern bool guard_registry_open(RegistryAccess *access);
extern Datum guard_spi_datum(int row, int col);
extern char *guard_spi_text(int row, int col);

/* guard_triggers.c */
extern Datum guard_oid_array(List *oids);

#endif							/* DOMI_GUARD_INTERNAL_H */
