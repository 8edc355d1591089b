/*
 * pgshim.h
 *		What the fuzz harnesses need to run domi's parsers outside the
 *		server: the parsers are compiled against PostgreSQL's server headers
 *		and linked with pgshim.c, a small stand-in for the backend's memory
 *		contexts and error reporting, and with libpgcommon (the JSON lexer).
 *
 * ereport(ERROR) is a clean rejection: errfinish() jumps back to
 * shim_run(), which frees everything the input allocated.  An error of the
 * class XX (internal_error: an elog(ERROR) that "cannot happen") other than
 * XX001 (data_corrupted, which the keyring raises on purpose), FATAL or
 * PANIC aborts the process, so that libFuzzer reports it as a crash.
 */
#ifndef DOMI_FUZZ_PGSHIM_H
#define DOMI_FUZZ_PGSHIM_H

#include <stddef.h>
#include <stdint.h>

/*
 * Runs fn(arg) as one input: returns true when it returned, false when it
 * ended in ereport(ERROR).  Every palloc made meanwhile is freed after.
 */
extern bool shim_run(void (*fn) (void *arg), void *arg);

/* The SQLSTATE (as PostgreSQL packs it) of the last error shim_run caught. */
extern int	shim_last_sqlerrcode;

/* A NUL-terminated palloc'd copy of the fuzz input. */
extern char *shim_cstring(const uint8_t *data, size_t size);

#endif							/* DOMI_FUZZ_PGSHIM_H */
