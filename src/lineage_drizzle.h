/*
 * lineage_drizzle.h
 *		What the files of the Drizzle checker share: the journal entries,
 *		snapshots and the state of one check.  lineage_drizzle.c reads the
 *		journal and runs the checks; the check families are in
 *		lineage_drizzle_snapshots.c (the snapshot chain),
 *		lineage_drizzle_custom.c (--custom migrations) and
 *		lineage_drizzle_database.c (drizzle.__drizzle_migrations).
 */
#ifndef DOMI_LINEAGE_DRIZZLE_H
#define DOMI_LINEAGE_DRIZZLE_H

#include "lineage_checks.h"

#define JOURNAL_FILE		"meta/_journal.json"
#define SNAPSHOT_VERSION	"7"
#define ORIGIN_ID			"00000000-0000-0000-0000-000000000000"

/*
 * A "when" this far ahead of the server's clock is in the future; less may
 * be clock skew between the machine that generated it and the server.
 */
#define FUTURE_TOLERANCE_MS	(10 * 60 * 1000)

/* At most this many differing tables/columns named in one finding. */
#define MAX_NAMED_DIFFERENCES 20

typedef struct Snapshot Snapshot;

/* One journal entry and its files. */
typedef struct Migration
{
	int			position;		/* in the journal */
	int64		idx;
	int64		when;
	const char *tag;
	ManifestFile *sql;			/* NULL when the file is missing */
	char	   *hash;			/* of sql, when there is one */
	Snapshot   *snapshot;		/* NULL when missing or malformed */
	bool		snapshot_unreadable;	/* its snapshot is there but malformed */
	bool		custom;			/* the SQL starts with the --custom placeholder */
	bool		placeholder_only;	/* the SQL is the placeholder (or empty) */
	const char *applied_row;	/* id of the row that recorded it, or NULL */
	int			lacks;			/* tables and columns of the snapshot before it
								 * that its (generated) snapshot lacks */
} Migration;

struct Snapshot
{
	ManifestFile *file;
	const char *id;
	const char *prev_id;
	const char *version;		/* NULL when missing */
	Migration  *migration;		/* its journal entry, or NULL */
	bool		unreadable;		/* doc could not be built */
	bool		duplicate;		/* another snapshot before it has its id */
	Snapshot   *parent;			/* the snapshot its prevId names, or NULL */
	List	   *children;		/* the snapshots whose prevId is its id */
	int			walk;			/* cycle search: last walk that reached it */
	bool		walked;			/* cycle search: done with it */
	int			fix_round;		/* collision fix: last fix that queued it */
	bool		in_collision_fix;	/* a collision's fix sets its prevId */
};

typedef struct DrizzleCheck
{
	LineageFindings *findings;
	Manifest   *manifest;
	int			nmigrations;
	Migration  *migrations;		/* journal order */
	int			nsnapshots;
	Snapshot  **snapshots;		/* journal order, then the others by name */
	strmap_hash *by_id;			/* id -> first Snapshot with it */
	strmap_hash *orphans;		/* prevId naming no snapshot -> List of Snapshot */
	strmap_hash *placeholders;	/* sha256 -> placeholder text it is of */
	bool		collision_found;
	int			fix_rounds;		/* collision fixes written so far */
	int			nunreadable;	/* snapshots reported as malformed */
	bool		table_known;	/* the migrations table was read */
	MemoryContext scratch;		/* reset after each snapshot is read */
} DrizzleCheck;

/* A finding; its texts are formatted only when it is kept (lineage.h). */
#define report(check, ...) lineage_report((check)->findings, __VA_ARGS__)

/* lineage_drizzle.c */
extern char *drizzle_snapshot_file_for_tag(const char *tag);
extern const char *drizzle_snapshot_label(Snapshot *s);

/* lineage_drizzle_snapshots.c */
extern void drizzle_read_snapshots(DrizzleCheck *check);
extern void drizzle_index_snapshots(DrizzleCheck *check);
extern void drizzle_check_collisions(DrizzleCheck *check);
extern void drizzle_check_prev_ids(DrizzleCheck *check);
extern void drizzle_check_cycles(DrizzleCheck *check);
extern void drizzle_check_heads(DrizzleCheck *check);
extern JsonbContainer *drizzle_snapshot_doc(DrizzleCheck *check, Snapshot *s);
extern int drizzle_snapshot_lacks(DrizzleCheck *check, Migration *m,
								  char **list);
extern char *drizzle_stale_fix(DrizzleCheck *check, Migration *m,
							   const char *list);

/* lineage_drizzle_custom.c */
extern void drizzle_check_custom_snapshots(DrizzleCheck *check);
extern void drizzle_check_stale_snapshots(DrizzleCheck *check);
extern void drizzle_check_empty_custom(DrizzleCheck *check);

/* lineage_drizzle_database.c */
extern void drizzle_check_database(DrizzleCheck *check, Oid relid);

#endif							/* DOMI_LINEAGE_DRIZZLE_H */
