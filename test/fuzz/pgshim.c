/*
 * pgshim.c
 *		A stand-in for the parts of the PostgreSQL backend that domi's
 *		parsers call, so that libFuzzer can run them in a plain process
 *		(see pgshim.h).  Not part of the extension.
 *
 * Memory contexts are real enough for the parsers: each chunk records its
 * context right before the pointer (as GetMemoryChunkContext() expects),
 * contexts form a tree, and reset or delete frees what they hold, so that
 * AddressSanitizer sees a use of memory a reset freed.
 */
#include "postgres.h"

#include <stdio.h>
#include <stdlib.h>

#include "common/fe_memutils.h"
#include "common/jsonapi.h"
#include "mb/pg_wchar.h"
#include "nodes/memnodes.h"
#include "utils/memutils.h"

#include "pgshim.h"

/* ---- memory contexts ---- */

typedef struct ShimChunk
{
	struct ShimChunk *prev;
	struct ShimChunk *next;
	Size		size;
	MemoryContext context;		/* must be last: GetMemoryChunkContext() */
} ShimChunk;

typedef struct ShimContext
{
	MemoryContextData base;
	ShimChunk  *chunks;
} ShimContext;

MemoryContext CurrentMemoryContext = NULL;
MemoryContext TopMemoryContext = NULL;
MemoryContext ErrorContext = NULL;

static MemoryContext input_context = NULL;

static MemoryContext
shim_context_create(MemoryContext parent, const char *name)
{
	ShimContext *context = calloc(1, sizeof(ShimContext));

	if (context == NULL)
		abort();
	context->base.type = T_AllocSetContext;
	context->base.name = name;
	context->base.parent = parent;
	if (parent != NULL)
	{
		context->base.nextchild = parent->firstchild;
		if (parent->firstchild != NULL)
			parent->firstchild->prevchild = &context->base;
		parent->firstchild = &context->base;
	}
	return &context->base;
}

static void shim_context_delete(MemoryContext context);

static void
shim_context_reset(MemoryContext context)
{
	ShimContext *shim = (ShimContext *) context;

	while (context->firstchild != NULL)
		shim_context_delete(context->firstchild);
	while (shim->chunks != NULL)
	{
		ShimChunk  *chunk = shim->chunks;

		shim->chunks = chunk->next;
		free(chunk);
	}
}

static void
shim_context_delete(MemoryContext context)
{
	MemoryContext parent = context->parent;

	shim_context_reset(context);
	if (parent != NULL)
	{
		if (context->prevchild != NULL)
			context->prevchild->nextchild = context->nextchild;
		else
			parent->firstchild = context->nextchild;
		if (context->nextchild != NULL)
			context->nextchild->prevchild = context->prevchild;
	}
	if (CurrentMemoryContext == context)
		CurrentMemoryContext = parent;
	free(context);
}

static void *
shim_alloc(MemoryContext context, Size size, bool zero)
{
	ShimContext *shim = (ShimContext *) context;
	ShimChunk  *chunk;

	/* The backend refuses these with an elog: a size bug in the caller. */
	if (!AllocSizeIsValid(size))
	{
		fprintf(stderr, "pgshim: invalid memory alloc request size %zu\n", (size_t) size);
		abort();
	}
	chunk = malloc(sizeof(ShimChunk) + size);
	if (chunk == NULL)
		abort();
	if (zero)
		memset(chunk + 1, 0, size);
	chunk->size = size;
	chunk->context = context;
	chunk->prev = NULL;
	chunk->next = shim->chunks;
	if (shim->chunks != NULL)
		shim->chunks->prev = chunk;
	shim->chunks = chunk;
	return chunk + 1;
}

static ShimChunk *
shim_chunk(void *pointer)
{
	return ((ShimChunk *) pointer) - 1;
}

void
pfree(void *pointer)
{
	ShimChunk  *chunk = shim_chunk(pointer);
	ShimContext *shim = (ShimContext *) chunk->context;

	if (chunk->prev != NULL)
		chunk->prev->next = chunk->next;
	else
		shim->chunks = chunk->next;
	if (chunk->next != NULL)
		chunk->next->prev = chunk->prev;
	free(chunk);
}

void *
repalloc(void *pointer, Size size)
{
	ShimChunk  *old = shim_chunk(pointer);
	void	   *copy = shim_alloc(old->context, size, false);

	memcpy(copy, pointer, Min(size, old->size));
	pfree(pointer);
	return copy;
}

void *
MemoryContextAlloc(MemoryContext context, Size size)
{
	return shim_alloc(context, size, false);
}

void *
MemoryContextAllocZero(MemoryContext context, Size size)
{
	return shim_alloc(context, size, true);
}

void *
MemoryContextAllocZeroAligned(MemoryContext context, Size size)
{
	return shim_alloc(context, size, true);
}

void *
MemoryContextAllocExtended(MemoryContext context, Size size, int flags)
{
	return shim_alloc(context, size, (flags & MCXT_ALLOC_ZERO) != 0);
}

void *
palloc(Size size)
{
	return shim_alloc(CurrentMemoryContext, size, false);
}

void *
palloc0(Size size)
{
	return shim_alloc(CurrentMemoryContext, size, true);
}

void *
palloc_extended(Size size, int flags)
{
	return shim_alloc(CurrentMemoryContext, size, (flags & MCXT_ALLOC_ZERO) != 0);
}

char *
MemoryContextStrdup(MemoryContext context, const char *string)
{
	size_t		len = strlen(string) + 1;
	char	   *copy = shim_alloc(context, len, false);

	memcpy(copy, string, len);
	return copy;
}

char *
pstrdup(const char *in)
{
	return MemoryContextStrdup(CurrentMemoryContext, in);
}

char *
pnstrdup(const char *in, Size len)
{
	char	   *out;

	len = strnlen(in, len);
	out = palloc(len + 1);
	memcpy(out, in, len);
	out[len] = '\0';
	return out;
}

MemoryContext
AllocSetContextCreateInternal(MemoryContext parent, const char *name,
							  Size minContextSize, Size initBlockSize,
							  Size maxBlockSize)
{
	return shim_context_create(parent, name);
}

void
MemoryContextReset(MemoryContext context)
{
	shim_context_reset(context);
}

void
MemoryContextResetOnly(MemoryContext context)
{
	shim_context_reset(context);
}

void
MemoryContextDelete(MemoryContext context)
{
	shim_context_delete(context);
}

/* libpgcommon's frontend allocator, replaced so that it is never linked. */
void *
pg_malloc(size_t size)
{
	return palloc(size);
}

void *
pg_malloc0(size_t size)
{
	return palloc0(size);
}

void *
pg_malloc_extended(size_t size, int flags)
{
	return palloc_extended(size, flags);
}

void *
pg_realloc(void *pointer, size_t size)
{
	return pointer == NULL ? palloc(size) : repalloc(pointer, size);
}

char *
pg_strdup(const char *in)
{
	return pstrdup(in);
}

void
pg_free(void *pointer)
{
	if (pointer != NULL)
		pfree(pointer);
}

/* ---- errors ---- */

sigjmp_buf *PG_exception_stack = NULL;
ErrorContextCallback *error_context_stack = NULL;

/* GUC check hooks report through these. */
char	   *GUC_check_errmsg_string;
char	   *GUC_check_errdetail_string;
char	   *GUC_check_errhint_string;

int			shim_last_sqlerrcode = 0;

static int	error_level = 0;
static int	error_code = 0;
static char error_message[1024];

bool
errstart(int elevel, const char *domain)
{
	if (elevel < ERROR)
		return false;
	error_level = elevel;
	error_code = ERRCODE_INTERNAL_ERROR;
	error_message[0] = '\0';
	return true;
}

bool
errstart_cold(int elevel, const char *domain)
{
	return errstart(elevel, domain);
}

int
errcode(int sqlerrcode)
{
	error_code = sqlerrcode;
	return 0;
}

/*
 * The messages are formatted, so that a bad argument (a freed or
 * unterminated string) is caught here as it would be in the server.
 */
static void
format_into(char *buf, size_t size, const char *fmt, va_list args)
{
	vsnprintf(buf, size, fmt, args);
}

#define SHIM_FORMAT(buf) \
	do { \
		char		scratch[1024]; \
		va_list		args; \
		va_start(args, fmt); \
		format_into((buf) ? (buf) : scratch, (buf) ? sizeof(error_message) : sizeof(scratch), fmt, args); \
		va_end(args); \
	} while (0)

int
errmsg(const char *fmt,...)
{
	SHIM_FORMAT(error_message);
	return 0;
}

int
errmsg_internal(const char *fmt,...)
{
	SHIM_FORMAT(error_message);
	return 0;
}

int
errdetail(const char *fmt,...)
{
	SHIM_FORMAT((char *) NULL);
	return 0;
}

int
errdetail_internal(const char *fmt,...)
{
	SHIM_FORMAT((char *) NULL);
	return 0;
}

int
errhint(const char *fmt,...)
{
	SHIM_FORMAT((char *) NULL);
	return 0;
}

int
errcontext_msg(const char *fmt,...)
{
	SHIM_FORMAT((char *) NULL);
	return 0;
}

int
set_errcontext_domain(const char *domain)
{
	return 0;
}

int
errhidestmt(bool hide_stmt)
{
	return 0;
}

void
errfinish(const char *filename, int lineno, const char *funcname)
{
	bool		internal = ERRCODE_TO_CATEGORY(error_code) ==
		ERRCODE_TO_CATEGORY(ERRCODE_INTERNAL_ERROR) &&
		error_code != ERRCODE_DATA_CORRUPTED;

	if (error_level > ERROR || internal || PG_exception_stack == NULL)
	{
		fprintf(stderr, "pgshim: %s at %s:%d (%s): %s\n",
				error_level > ERROR ? "FATAL or PANIC" : "internal error",
				filename, lineno, funcname ? funcname : "?", error_message);
		abort();
	}
	shim_last_sqlerrcode = error_code;
	siglongjmp(*PG_exception_stack, 1);
}

void
pg_re_throw(void)
{
	if (PG_exception_stack == NULL)
		abort();
	siglongjmp(*PG_exception_stack, 1);
}

void
FlushErrorState(void)
{
}

/* GUC check hooks: GUC_check_errmsg() and friends. */
void
GUC_check_errcode(int sqlerrcode)
{
}

void
pre_format_elog_string(int errnumber, const char *domain)
{
}

char *
format_elog_string(const char *fmt,...)
{
	static char buf[1024];
	va_list		args;

	va_start(args, fmt);
	format_into(buf, sizeof(buf), fmt, args);
	va_end(args);
	return buf;
}

/* ---- the database: UTF-8 ---- */

int
GetDatabaseEncoding(void)
{
	return PG_UTF8;
}

const char *
GetDatabaseEncodingName(void)
{
	return "UTF8";
}

char *
pg_server_to_any(const char *s, int len, int encoding)
{
	return unconstify(char *, s);
}

char *
pg_any_to_server(const char *s, int len, int encoding)
{
	return unconstify(char *, s);
}

int
pg_verify_mbstr_len(int encoding, const char *mbstr, int len, bool noError)
{
	int			valid = pg_encoding_verifymbstr(encoding, mbstr, len);

	if (valid == len)
		return len;
	if (noError)
		return -1;
	ereport(ERROR,
			(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
			 errmsg("invalid byte sequence")));
	return -1;
}

struct varlena *
pg_detoast_datum(struct varlena *datum)
{
	return datum;
}

struct varlena *
pg_detoast_datum_packed(struct varlena *datum)
{
	return datum;
}

/*
 * libpgcommon's frontend build of the JSON parser has no json_errdetail:
 * a shorter one, which reads the token as the backend's does, so that a
 * lexer used after its memory was freed is caught.
 */
char *
json_errdetail(JsonParseErrorType error, JsonLexContext *lex)
{
	int			toklen = 0;

	if (lex->token_start != NULL && lex->token_terminator != NULL &&
		lex->token_terminator > lex->token_start)
		toklen = lex->token_terminator - lex->token_start;
	return psprintf("JSON parse error %d at \"%.*s\"", (int) error, toklen,
					toklen > 0 ? lex->token_start : "");
}

/* ---- one input ---- */

static void
shim_init(void)
{
	if (TopMemoryContext != NULL)
		return;
	TopMemoryContext = shim_context_create(NULL, "TopMemoryContext");
	input_context = shim_context_create(TopMemoryContext, "fuzz input");
}

bool
shim_run(void (*fn) (void *arg), void *arg)
{
	sigjmp_buf *volatile save = PG_exception_stack;
	sigjmp_buf	local;
	volatile bool ok = true;

	shim_init();
	CurrentMemoryContext = input_context;
	if (sigsetjmp(local, 0) == 0)
	{
		PG_exception_stack = &local;
		fn(arg);
	}
	else
		ok = false;
	PG_exception_stack = save;
	CurrentMemoryContext = TopMemoryContext;
	MemoryContextReset(input_context);
	return ok;
}

char *
shim_cstring(const uint8_t *data, size_t size)
{
	char	   *copy = palloc(size + 1);

	memcpy(copy, data, size);
	copy[size] = '\0';
	return copy;
}

/* Anything else the parsers' files reference must not be reached. */
void		shim_unreachable(const char *name);

void
shim_unreachable(const char *name)
{
	fprintf(stderr, "pgshim: the harness reached %s, which it does not provide\n", name);
	abort();
}
