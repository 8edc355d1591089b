/*
 * rootkey.c
 *		The keyring's root key: read once when the postmaster loads the
 *		library (shared_preload_libraries), kept in libsodium-guarded memory,
 *		and inherited by every backend and parallel worker through fork.
 *
 * The root key itself is kept only as long as it takes to derive two
 * subkeys from it (crypto_kdf, context "domiroot"): one wraps tenant keys,
 * one computes the fingerprint that names the root key without revealing
 * it.  Every buffer that held the hex text or the key is wiped.
 *
 * A missing, unreadable or malformed key never stops the server and is
 * never replaced by a made-up one: the postmaster logs why (no key bytes),
 * remembers the reason, and every keyring function reports it with a hint.
 */
#include "postgres.h"

#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include "miscadmin.h"
#include "port.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "rootkey.h"

/* Subkey ids under the KDF context; never reuse a number for another use. */
#define KDF_CONTEXT			"domiroot"
#define SUBKEY_WRAP			1
#define SUBKEY_FINGERPRINT	2

/* 64 hex characters, optional trailing whitespace; anything longer is wrong. */
#define ROOT_KEY_HEX_CHARS	(DOMI_KEY_BYTES * 2)
#define ROOT_KEY_TEXT_MAX	256

#define WRAP_AD_LABEL		"domi tenant key"
#define WRAP_AD_BYTES		(sizeof(WRAP_AD_LABEL) - 1 + UUID_LEN + 4)

typedef struct RootKey
{
	bool		loaded;
	unsigned char wrap_key[DOMI_KEY_BYTES];
	unsigned char fingerprint[DOMI_FINGERPRINT_BYTES];
} RootKey;

typedef struct RootKeys
{
	RootKey		current;
	RootKey		previous;
} RootKeys;

/* Guarded, read-only after loading; NULL when nothing was loaded. */
static RootKeys *root_keys = NULL;

/* Why a key is not loaded, for errors and keyring_status(): no key bytes. */
static char current_problem[512];
static char previous_problem[512];

/* Settings (server start only, superuser only): paths and a command. */
static char *root_key_file = NULL;
static char *root_key_command = NULL;
static char *previous_root_key_file = NULL;

/* Did the postmaster load us (and so try to read the root key)? */
static bool preloaded = false;

static bool
is_trailing_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/*
 * Decode the text of a key source into key.  On failure, problem gets the
 * reason, which may state lengths but never the text.
 */
static bool
decode_root_key(unsigned char *key, char *text, size_t len, const char *source,
				char *problem, size_t problem_size)
{
	size_t		bin_len = 0;

	/* A length beyond the buffer's text means the source was too long. */
	if (len <= ROOT_KEY_TEXT_MAX)
		while (len > 0 && is_trailing_space(text[len - 1]))
			len--;
	if (len != ROOT_KEY_HEX_CHARS ||
		sodium_hex2bin(key, DOMI_KEY_BYTES, text, len, NULL, &bin_len, NULL) != 0 ||
		bin_len != DOMI_KEY_BYTES)
	{
		snprintf(problem, problem_size,
				 "%s does not hold a root key of %d hex characters",
				 source, ROOT_KEY_HEX_CHARS);
		return false;
	}
	return true;
}

/*
 * The file must belong to the server's user (and then be readable by it
 * alone) or to root (and then at most group-readable), as PostgreSQL
 * requires of its SSL key file.
 */
static bool
key_file_mode_ok(const struct stat *st)
{
	if (st->st_uid == geteuid())
		return (st->st_mode & (S_IRWXG | S_IRWXO)) == 0;
	if (st->st_uid == 0)
		return (st->st_mode & (S_IWGRP | S_IXGRP | S_IRWXO)) == 0;
	return false;
}

/*
 * Read at most size - 1 bytes of a key file into text; *len gets the count,
 * or size when the file holds more (then it is no key, whatever follows).
 */
static bool
read_key_file(const char *path, char *text, size_t size, size_t *len,
			  char *problem, size_t problem_size)
{
	int			fd;
	struct stat st;
	ssize_t		got;

	*len = 0;
	fd = open(path, O_RDONLY | PG_BINARY, 0);
	if (fd < 0)
	{
		snprintf(problem, problem_size, "could not open root key file \"%s\": %s",
				 path, strerror(errno));
		return false;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
	{
		snprintf(problem, problem_size, "root key file \"%s\" is not a regular file", path);
		close(fd);
		return false;
	}
	if (!key_file_mode_ok(&st))
	{
		snprintf(problem, problem_size,
				 "root key file \"%s\" must be owned by the server's user with mode 0600 or less, or by root with mode 0640 or less",
				 path);
		close(fd);
		return false;
	}
	while (*len < size - 1 && (got = read(fd, text + *len, size - 1 - *len)) > 0)
		*len += got;
	if (*len == size - 1)
	{
		char		extra;

		if (read(fd, &extra, 1) > 0)
			*len = size;
		sodium_memzero(&extra, sizeof(extra));
	}
	close(fd);
	return true;
}

/*
 * Run the key command and read at most size - 1 bytes of its output; *len
 * as for read_key_file.
 */
static bool
read_key_command(const char *command, char *text, size_t size, size_t *len,
				 char *problem, size_t problem_size)
{
	FILE	   *pipe;
	int			fd;
	ssize_t		got;
	int			status;

	*len = 0;
	fflush(NULL);
	pipe = popen(command, "r");
	if (pipe == NULL)
	{
		snprintf(problem, problem_size, "could not run domi.root_key_command: %s",
				 strerror(errno));
		return false;
	}
	/*
	 * read(2), not stdio: the key text goes straight into the guarded
	 * buffer (even an unbuffered FILE passes each byte through a one-byte
	 * buffer of its own, freed unwiped by pclose).
	 */
	fd = fileno(pipe);
	while (*len < size - 1 && (got = read(fd, text + *len, size - 1 - *len)) > 0)
		*len += got;
	/* Drain the rest, so the command is not killed by SIGPIPE. */
	if (*len == size - 1)
	{
		char		sink[64];

		while (read(fd, sink, sizeof(sink)) > 0)
			*len = size;		/* too long, whatever it was */
		sodium_memzero(sink, sizeof(sink));
	}
	status = pclose(pipe);
	if (status != 0)
	{
		char	   *reason = wait_result_to_str(status);

		snprintf(problem, problem_size, "domi.root_key_command failed: %s", reason);
		pfree(reason);
		return false;
	}
	return true;
}

/* Derive the wrapping subkey and the fingerprint of key into slot. */
static void
derive_root_key(RootKey *slot, const unsigned char *key)
{
	unsigned char fingerprint_key[DOMI_KEY_BYTES];
	static const char label[] = "domi root key fingerprint";

	crypto_kdf_derive_from_key(slot->wrap_key, DOMI_KEY_BYTES, SUBKEY_WRAP,
							   KDF_CONTEXT, key);
	crypto_kdf_derive_from_key(fingerprint_key, DOMI_KEY_BYTES, SUBKEY_FINGERPRINT,
							   KDF_CONTEXT, key);
	crypto_generichash(slot->fingerprint, DOMI_FINGERPRINT_BYTES,
					   (const unsigned char *) label, sizeof(label) - 1,
					   fingerprint_key, DOMI_KEY_BYTES);
	sodium_memzero(fingerprint_key, sizeof(fingerprint_key));
	slot->loaded = true;
}

/*
 * Load one root key from a file or a command into slot.  The text and the
 * decoded key pass through guarded scratch memory that is wiped and freed.
 */
static void
load_root_key(RootKey *slot, const char *file, const char *command,
			  const char *setting, char *problem, size_t problem_size)
{
	typedef struct Scratch
	{
		char		text[ROOT_KEY_TEXT_MAX + 1];
		unsigned char key[DOMI_KEY_BYTES];
	} Scratch;
	Scratch    *scratch;
	size_t		len = 0;
	bool		ok;
	char		source[MAXPGPATH + 64];

	scratch = sodium_malloc(sizeof(Scratch));
	if (scratch == NULL)
	{
		snprintf(problem, problem_size, "could not allocate guarded memory for the root key");
		return;
	}
	if (file != NULL)
	{
		ok = read_key_file(file, scratch->text, sizeof(scratch->text), &len,
						   problem, problem_size);
		snprintf(source, sizeof(source), "root key file \"%s\" (%s)", file, setting);
	}
	else
	{
		ok = read_key_command(command, scratch->text, sizeof(scratch->text), &len,
							  problem, problem_size);
		snprintf(source, sizeof(source), "the output of domi.root_key_command");
	}
	if (ok && decode_root_key(scratch->key, scratch->text, len, source,
							  problem, problem_size))
		derive_root_key(slot, scratch->key);
	sodium_free(scratch);		/* wipes it */
}

static bool
setting_is_set(const char *value)
{
	return value != NULL && value[0] != '\0';
}

/* Read the configured keys into guarded memory; log what went wrong. */
static void
load_root_keys(void)
{
	root_keys = sodium_malloc(sizeof(RootKeys));
	if (root_keys == NULL)
	{
		snprintf(current_problem, sizeof(current_problem),
				 "could not allocate guarded memory for the root key");
		ereport(WARNING, (errmsg("domi keyring: %s", current_problem)));
		return;
	}
	memset(root_keys, 0, sizeof(RootKeys));

	if (setting_is_set(root_key_file) && setting_is_set(root_key_command))
		snprintf(current_problem, sizeof(current_problem),
				 "both domi.root_key_file and domi.root_key_command are set");
	else if (setting_is_set(root_key_file) || setting_is_set(root_key_command))
		load_root_key(&root_keys->current,
					  setting_is_set(root_key_file) ? root_key_file : NULL,
					  root_key_command, "domi.root_key_file",
					  current_problem, sizeof(current_problem));
	else
		snprintf(current_problem, sizeof(current_problem),
				 "neither domi.root_key_file nor domi.root_key_command is set");

	if (setting_is_set(previous_root_key_file))
		load_root_key(&root_keys->previous, previous_root_key_file, NULL,
					  "domi.previous_root_key_file",
					  previous_problem, sizeof(previous_problem));

	if (root_keys->current.loaded)
	{
		current_problem[0] = '\0';
		ereport(LOG, (errmsg("domi keyring: root key loaded")));
	}
	else
		ereport(setting_is_set(root_key_file) || setting_is_set(root_key_command) ? WARNING : LOG,
				(errmsg("domi keyring: no root key loaded: %s", current_problem),
				 errdetail("Keyring functions will fail until the server is restarted with a root key.")));
	if (setting_is_set(previous_root_key_file) && !root_keys->previous.loaded)
		ereport(WARNING,
				(errmsg("domi keyring: previous root key not loaded: %s", previous_problem)));

	/* From here on, a stray write is a crash, not a changed key. */
	sodium_mprotect_readonly(root_keys);
}

void
domi_rootkey_init(void)
{
	/*
	 * PostgreSQL allows server-start settings to be defined only while the
	 * preload libraries load; without preloading the keyring stays off.
	 */
	if (!process_shared_preload_libraries_in_progress)
		return;
	preloaded = true;

	DefineCustomStringVariable("domi.root_key_file",
							   "File holding the keyring's root key as 64 hex characters.",
							   "Read once at server start. The setting holds the path, never the key.",
							   &root_key_file, "",
							   PGC_POSTMASTER, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("domi.root_key_command",
							   "Command whose standard output is the keyring's root key as 64 hex characters.",
							   "Run once at server start, instead of reading domi.root_key_file.",
							   &root_key_command, "",
							   PGC_POSTMASTER, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("domi.previous_root_key_file",
							   "File holding the previous root key, while tenant keys are re-wrapped.",
							   "Tenant keys wrapped by it still open; domi.rewrap_tenant_keys() re-wraps them under the current root key.",
							   &previous_root_key_file, "",
							   PGC_POSTMASTER, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
	load_root_keys();
}

bool
domi_root_key_loaded(void)
{
	return root_keys != NULL && root_keys->current.loaded;
}

/* Error out, saying what to configure, unless the root key is loaded. */
void
domi_require_root_key(void)
{
	if (domi_root_key_loaded())
		return;
	if (!preloaded)
		ereport(ERROR,
				(errcode(DOMI_ERRCODE_KEYRING_STATE),
				 errmsg("root key is not loaded"),
				 errdetail("The keyring reads its root key when the server starts, and domi is not in shared_preload_libraries."),
				 errhint("Add domi to shared_preload_libraries, set domi.root_key_file, and restart the server.")));
	ereport(ERROR,
			(errcode(DOMI_ERRCODE_KEYRING_STATE),
			 errmsg("root key is not loaded"),
			 errdetail("At server start: %s.", current_problem),
			 errhint("Set domi.root_key_file to a file holding 64 hex characters (32 bytes) that only the server's user can read, or domi.root_key_command to a command that prints them, and restart the server.")));
}

/* The fingerprint of the current or previous root key, or NULL. */
const unsigned char *
domi_root_fingerprint(bool previous)
{
	const RootKey *slot;

	if (root_keys == NULL)
		return NULL;
	slot = previous ? &root_keys->previous : &root_keys->current;
	return slot->loaded ? slot->fingerprint : NULL;
}

/* Why the current or previous root key is not loaded, or NULL if it is. */
const char *
domi_root_key_problem(bool previous)
{
	if (domi_root_fingerprint(previous) != NULL)
		return NULL;
	if (previous)
		return previous_problem[0] != '\0' ? previous_problem : NULL;
	if (!preloaded)
		return "domi is not in shared_preload_libraries";
	return current_problem;
}

static bool
fingerprint_equals(const RootKey *slot, const unsigned char *fingerprint, Size len)
{
	return slot->loaded && len == DOMI_FINGERPRINT_BYTES &&
		sodium_memcmp(slot->fingerprint, fingerprint, len) == 0;
}

DomiRootMatch
domi_root_match(const unsigned char *fingerprint, Size len)
{
	if (root_keys == NULL)
		return DOMI_ROOT_OTHER;
	if (fingerprint_equals(&root_keys->current, fingerprint, len))
		return DOMI_ROOT_CURRENT;
	if (fingerprint_equals(&root_keys->previous, fingerprint, len))
		return DOMI_ROOT_PREVIOUS;
	return DOMI_ROOT_OTHER;
}

/* The associated data that binds a wrapped key to its tenant and version. */
static void
wrap_associated_data(unsigned char *ad, const pg_uuid_t *tenant, int32 version)
{
	size_t		label_len = sizeof(WRAP_AD_LABEL) - 1;
	uint32		v = (uint32) version;

	memcpy(ad, WRAP_AD_LABEL, label_len);
	memcpy(ad + label_len, tenant->data, UUID_LEN);
	ad[label_len + UUID_LEN + 0] = (unsigned char) (v >> 24);
	ad[label_len + UUID_LEN + 1] = (unsigned char) (v >> 16);
	ad[label_len + UUID_LEN + 2] = (unsigned char) (v >> 8);
	ad[label_len + UUID_LEN + 3] = (unsigned char) v;
}

/* Wrap a tenant key under the current root key: DOMI_WRAPPED_KEY_BYTES out. */
void
domi_wrap_tenant_key(unsigned char *wrapped, const unsigned char *key,
					 const pg_uuid_t *tenant, int32 version)
{
	unsigned char ad[WRAP_AD_BYTES];

	domi_require_root_key();
	wrap_associated_data(ad, tenant, version);
	domi_random_bytes(wrapped, DOMI_WRAP_NONCE_BYTES);
	crypto_aead_xchacha20poly1305_ietf_encrypt(wrapped + DOMI_WRAP_NONCE_BYTES, NULL,
											   key, DOMI_KEY_BYTES, ad, sizeof(ad),
											   NULL, wrapped, root_keys->current.wrap_key);
}

/*
 * Unwrap into key (guarded memory of the caller) with the root key that
 * wrapped it.  False when the wrapped bytes are not authentic for this
 * tenant and version.
 */
bool
domi_unwrap_tenant_key(unsigned char *key, const unsigned char *wrapped,
					   Size wrapped_len, DomiRootMatch root,
					   const pg_uuid_t *tenant, int32 version)
{
	unsigned char ad[WRAP_AD_BYTES];
	const RootKey *slot;

	Assert(root != DOMI_ROOT_OTHER);
	slot = root == DOMI_ROOT_CURRENT ? &root_keys->current : &root_keys->previous;
	if (wrapped_len != DOMI_WRAPPED_KEY_BYTES)
		return false;
	wrap_associated_data(ad, tenant, version);
	return crypto_aead_xchacha20poly1305_ietf_decrypt(key, NULL, NULL,
													  wrapped + DOMI_WRAP_NONCE_BYTES,
													  DOMI_KEY_BYTES + DOMI_WRAP_TAG_BYTES,
													  ad, sizeof(ad), wrapped,
													  slot->wrap_key) == 0;
}

static char *
fingerprint_hex(const unsigned char *fingerprint, Size len)
{
	char	   *hex = palloc(len * 2 + 1);

	sodium_bin2hex(hex, len * 2 + 1, fingerprint, len);
	return hex;
}

/* The error for a tenant key wrapped by a root key the server does not have. */
void
domi_report_root_mismatch(const pg_uuid_t *tenant, int32 version,
						  const unsigned char *fingerprint, Size len)
{
	domi_require_root_key();
	ereport(ERROR,
			(errcode(DOMI_ERRCODE_KEYRING_STATE),
			 errmsg("root key does not match the one that wrapped the tenant keys"),
			 errdetail("Key version %d of tenant %s was wrapped by the root key with fingerprint %s; the server's root key has fingerprint %s.",
					   version, domi_uuid_text(tenant),
					   fingerprint_hex(fingerprint, len),
					   fingerprint_hex(root_keys->current.fingerprint, DOMI_FINGERPRINT_BYTES)),
			 errhint("Restart the server with the root key that wrapped them, or set domi.previous_root_key_file to it and call domi.rewrap_tenant_keys().")));
}
