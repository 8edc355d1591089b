/*
 * ledger.h
 *		The DDL ledger (ledger.c) and what it stores of a statement's text
 *		(ledger_redact.c).
 */
#ifndef DOMI_LEDGER_H
#define DOMI_LEDGER_H

#include "nodes/nodes.h"

/* What a statement that may carry a secret is stored as. */
#define LEDGER_REDACTED "<redacted>"

/*
 * The text to store for one statement: text[0..len) as it was sent, unless
 * the statement may carry a secret.  stmt is its parse tree, or NULL when
 * unknown (then the text is parsed here).
 */
extern char *ledger_redact_statement(const char *text, int len, Node *stmt);

/*
 * The text to store for a whole query string of one or more statements,
 * when we cannot tell which of them is the one being recorded: every
 * statement redacted on its own, joined with "; ".
 */
extern char *ledger_redact_query_string(const char *query);

#endif							/* DOMI_LEDGER_H */
