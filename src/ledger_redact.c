/*
 * ledger_redact.c
 *		What the DDL ledger stores of a statement's text: the text as sent,
 *		unless the statement may carry a secret.
 *
 * Two tests, either of which redacts:
 *
 *	By kind, from the parse tree.  Statements whose options or clauses hold
 *	credentials: CREATE/ALTER ROLE (PASSWORD), CREATE/ALTER USER MAPPING
 *	(OPTIONS (password ...)), foreign servers and wrappers, subscriptions
 *	(CONNECTION '... password=...').  A user mapping is rebuilt from its
 *	tree with the option names and without their values, so the ledger
 *	still says which server and role it was for; the others become
 *	"<redacted>".
 *
 *	By token, from PostgreSQL's own scanner (the lexer the parser uses, so
 *	that comments, quoting and dollar quoting are read the way the server
 *	reads them): an identifier or keyword naming a function that takes a
 *	key or plaintext (domi.import_tenant_key, domi.secretbox, pgcrypto's
 *	pgp_sym_encrypt, dblink_connect, ...) or the keyword PASSWORD, or a
 *	string constant (a function body is one) that mentions any of them.
 *	Unicode-escaped identifiers and strings (U&"...") are not decoded by the
 *	scanner alone, so they redact too.  This over-redacts on purpose: a
 *	view that merely calls domi.encrypt_text(col) is stored as
 *	"<redacted>"; a key in a CREATE TABLE AS is never stored.
 *
 * Whatever cannot be scanned or parsed is stored as "<redacted>".
 */
#include "postgres.h"

#include <ctype.h>

#include "lib/stringinfo.h"
#include "nodes/parsenodes.h"
#include "parser/parser.h"
#include "parser/scanner.h"
/* after scanner.h: gram.h uses its types */
#include "parser/gram.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "ledger.h"

/* Identifiers and keywords that redact a statement, compared exactly. */
static const char *const secret_words[] = {
	"password",
	"import_tenant_key",
	"secretbox", "secretbox_text", "secretbox_open", "secretbox_open_text",
	"encrypt", "encrypt_text", "encrypt_iv", "decrypt_iv",
	"pgp_sym_encrypt", "pgp_sym_encrypt_bytea",
	"pgp_sym_decrypt", "pgp_sym_decrypt_bytea",
	"pgp_pub_decrypt", "pgp_pub_decrypt_bytea",
	"hmac", "crypt",
	"dblink", "dblink_connect", "dblink_connect_u", "dblink_exec",
	NULL
};

/* Substrings that redact a statement when a string constant contains them. */
static const char *const secret_fragments[] = {
	"password", "passwd", "import_tenant_key", "secretbox", "crypt", "hmac",
	"dblink", NULL
};

static bool
is_secret_word(const char *word)
{
	const char *const *w;

	for (w = secret_words; *w; w++)
		if (pg_strcasecmp(word, *w) == 0)
			return true;
	return false;
}

/* Case-insensitive substring search over a NUL-terminated string. */
static bool
mentions_secret(const char *str)
{
	const char *const *f;

	for (f = secret_fragments; *f; f++)
	{
		size_t		flen = strlen(*f);
		const char *p;

		for (p = str; *p; p++)
			if (pg_strncasecmp(p, *f, flen) == 0)
				return true;
	}
	return false;
}

/*
 * Scans text (NUL-terminated) with the server's lexer.  True when a token
 * may carry or handle a secret, or when the text cannot be scanned.
 */
static bool
tokens_carry_secret(const char *text)
{
	MemoryContext caller = CurrentMemoryContext;
	volatile bool secret = false;

	PG_TRY();
	{
		core_yy_extra_type extra;
		core_yyscan_t scanner;
		core_YYSTYPE lval;
		YYLTYPE		loc;
		int			token;

		scanner = scanner_init(text, &extra, &ScanKeywords, ScanKeywordTokens);
		while (!secret && (token = core_yylex(&lval, &loc, scanner)) != 0)
		{
			switch (token)
			{
				case IDENT:
					secret = is_secret_word(lval.str);
					break;
				case SCONST:
					secret = mentions_secret(lval.str);
					break;
				case UIDENT:
				case USCONST:
					/* escapes not decoded yet: we cannot tell, so redact */
					secret = true;
					break;
				default:
					/* keywords carry their name; other tokens do not matter */
					if (token >= 256 && lval.keyword != NULL && token != FCONST &&
						token != ICONST && token != BCONST && token != XCONST &&
						token != Op && token != PARAM && token != TYPECAST &&
						token != DOT_DOT && token != COLON_EQUALS &&
						token != EQUALS_GREATER && token != LESS_EQUALS &&
						token != GREATER_EQUALS && token != NOT_EQUALS)
						secret = is_secret_word(lval.keyword);
					break;
			}
		}
		scanner_finish(scanner);
	}
	PG_CATCH();
	{
		/* The lexer only allocates memory: nothing to release but the error. */
		MemoryContextSwitchTo(caller);
		FlushErrorState();
		secret = true;
	}
	PG_END_TRY();
	return secret;
}

static const char *
role_spec_text(RoleSpec *spec)
{
	if (spec == NULL)
		return "?";
	switch (spec->roletype)
	{
		case ROLESPEC_CSTRING:
			return quote_identifier(spec->rolename);
		case ROLESPEC_CURRENT_ROLE:
			return "CURRENT_ROLE";
		case ROLESPEC_CURRENT_USER:
			return "CURRENT_USER";
		case ROLESPEC_SESSION_USER:
			return "SESSION_USER";
		case ROLESPEC_PUBLIC:
			return "PUBLIC";
	}
	return "?";
}

/* OPTIONS (name <redacted>, ...): the names, never the values. */
static void
append_options_without_values(StringInfo buf, List *options)
{
	ListCell   *lc;
	bool		first = true;

	if (options == NIL)
		return;
	appendStringInfoString(buf, " OPTIONS (");
	foreach(lc, options)
	{
		DefElem    *opt = lfirst_node(DefElem, lc);

		if (!first)
			appendStringInfoString(buf, ", ");
		first = false;
		switch (opt->defaction)
		{
			case DEFELEM_SET:
				appendStringInfoString(buf, "SET ");
				break;
			case DEFELEM_ADD:
				appendStringInfoString(buf, "ADD ");
				break;
			case DEFELEM_DROP:
				appendStringInfoString(buf, "DROP ");
				break;
			case DEFELEM_UNSPEC:
				break;
		}
		appendStringInfoString(buf, quote_identifier(opt->defname));
		if (opt->defaction != DEFELEM_DROP)
			appendStringInfoString(buf, " " LEDGER_REDACTED);
	}
	appendStringInfoChar(buf, ')');
}

/* The statement rebuilt without secrets, or NULL if its kind has none. */
static char *
redact_by_kind(Node *stmt)
{
	StringInfoData buf;

	switch (nodeTag(stmt))
	{
		case T_CreateUserMappingStmt:
			{
				CreateUserMappingStmt *s = (CreateUserMappingStmt *) stmt;

				initStringInfo(&buf);
				appendStringInfo(&buf, "CREATE USER MAPPING %sFOR %s SERVER %s",
								 s->if_not_exists ? "IF NOT EXISTS " : "",
								 role_spec_text(s->user),
								 quote_identifier(s->servername));
				append_options_without_values(&buf, s->options);
				return buf.data;
			}
		case T_AlterUserMappingStmt:
			{
				AlterUserMappingStmt *s = (AlterUserMappingStmt *) stmt;

				initStringInfo(&buf);
				appendStringInfo(&buf, "ALTER USER MAPPING FOR %s SERVER %s",
								 role_spec_text(s->user),
								 quote_identifier(s->servername));
				append_options_without_values(&buf, s->options);
				return buf.data;
			}
		case T_CreateRoleStmt:
		case T_AlterRoleStmt:
		case T_AlterRoleSetStmt:
		case T_CreateForeignServerStmt:
		case T_AlterForeignServerStmt:
		case T_CreateFdwStmt:
		case T_AlterFdwStmt:
		case T_CreateForeignTableStmt:
		case T_ImportForeignSchemaStmt:
		case T_CreateSubscriptionStmt:
		case T_AlterSubscriptionStmt:
		case T_AlterSystemStmt:
		case T_VariableSetStmt:
		case T_AlterDatabaseSetStmt:
			return pstrdup(LEDGER_REDACTED);
		default:
			return NULL;
	}
}

/* text[0..len) without leading white space and trailing ';' and space */
static char *
trimmed_copy(const char *text, int len)
{
	while (len > 0 && isspace((unsigned char) *text))
		text++, len--;
	while (len > 0 && (isspace((unsigned char) text[len - 1]) || text[len - 1] == ';'))
		len--;
	return pnstrdup(text, len);
}

char *
ledger_redact_statement(const char *text, int len, Node *stmt)
{
	char	   *copy = trimmed_copy(text, len);
	char	   *rebuilt;

	if (stmt != NULL && (rebuilt = redact_by_kind(stmt)) != NULL)
		return rebuilt;
	if (tokens_carry_secret(copy))
		return pstrdup(LEDGER_REDACTED);
	return copy;
}

/* The statements of a query string, as RawStmt nodes; NIL if it does not parse. */
static List *
parse_quietly(const char *query)
{
	MemoryContext caller = CurrentMemoryContext;
	List	   *volatile stmts = NIL;

	PG_TRY();
	{
		stmts = raw_parser(query, RAW_PARSE_DEFAULT);
	}
	PG_CATCH();
	{
		/* The raw parser only allocates memory, like the lexer. */
		MemoryContextSwitchTo(caller);
		FlushErrorState();
		stmts = NIL;
	}
	PG_END_TRY();
	return stmts;
}

char *
ledger_redact_query_string(const char *query)
{
	List	   *stmts = parse_quietly(query);
	StringInfoData buf;
	ListCell   *lc;
	int			total = strlen(query);

	if (stmts == NIL)
		return pstrdup(LEDGER_REDACTED);

	initStringInfo(&buf);
	foreach(lc, stmts)
	{
		RawStmt    *raw = lfirst_node(RawStmt, lc);
		int			location = Max(raw->stmt_location, 0);
		int			len = raw->stmt_len > 0 ? raw->stmt_len : total - location;

		if (buf.len > 0)
			appendStringInfoString(&buf, "; ");
		appendStringInfoString(&buf, ledger_redact_statement(query + location, len, raw->stmt));
	}
	return buf.data;
}
