/*
 * crypto.h
 *		Internal C API of the encryption core (crypto.c, random.c), for the
 *		SQL functions in crypto.c and for other domi modules (the keyring).
 *
 * Wire format of a box: nonce (24 bytes) || crypto_secretbox_easy output
 * (16-byte MAC || ciphertext), the same bytes libsodium-wrappers and
 * tweetnacl produce when an application stores nonce || secretbox(...).
 */
#ifndef DOMI_CRYPTO_H
#define DOMI_CRYPTO_H

/* Include after postgres.h, as every PostgreSQL header. */
#include <sodium.h>

#define DOMI_KEY_BYTES		crypto_secretbox_KEYBYTES	/* 32 */
#define DOMI_NONCE_BYTES	crypto_secretbox_NONCEBYTES /* 24 */
#define DOMI_MAC_BYTES		crypto_secretbox_MACBYTES	/* 16 */
#define DOMI_BOX_OVERHEAD	(DOMI_NONCE_BYTES + DOMI_MAC_BYTES) /* 40 */

/*
 * SQLSTATEs of the encryption core, one per kind of bad input (README.md,
 * "Errors").  A box that fails authentication uses the class pgcrypto
 * already uses for "wrong key or corrupt data".
 */
#define DOMI_ERRCODE_INVALID_KEY		ERRCODE_INVALID_PARAMETER_VALUE /* 22023 */
#define DOMI_ERRCODE_BOX_TOO_SHORT		ERRCODE_INVALID_BINARY_REPRESENTATION	/* 22P03 */
#define DOMI_ERRCODE_AUTH_FAILED		ERRCODE_EXTERNAL_ROUTINE_INVOCATION_EXCEPTION	/* 39000 */
#define DOMI_ERRCODE_INVALID_UTF8		ERRCODE_CHARACTER_NOT_IN_REPERTOIRE /* 22021 */
#define DOMI_ERRCODE_TOO_LARGE			ERRCODE_PROGRAM_LIMIT_EXCEEDED	/* 54000 */

/* random.c: per-process buffered generator, re-seeded after every fork */
extern void domi_random_init(void);
extern void domi_random_bytes(void *buf, size_t len);

/*
 * crypto.c: raw primitives.  seal writes len + DOMI_BOX_OVERHEAD bytes to
 * box with a fresh random nonce.  open writes boxlen - DOMI_BOX_OVERHEAD
 * bytes to msg and returns false when the box fails authentication; the
 * caller has checked boxlen >= DOMI_BOX_OVERHEAD.  Neither reports errors.
 */
extern void domi_seal_raw(unsigned char *box, const unsigned char *msg,
						  size_t len, const unsigned char *key);
extern bool domi_open_raw(unsigned char *msg, const unsigned char *box,
						  size_t boxlen, const unsigned char *key);

/*
 * crypto.c: the same with PostgreSQL values and errors (SQLSTATEs above).
 * Results are palloc'd in the current memory context.  Messages never
 * contain key bytes or plaintext.
 */
extern bytea *domi_seal(const char *msg, Size len, const unsigned char *key);
extern bytea *domi_open(const char *box, Size boxlen, const unsigned char *key);
extern const unsigned char *domi_key_from_bytea(bytea *key);
extern const char *domi_text_to_utf8(text *plaintext, Size *len);
extern text *domi_utf8_to_text(bytea *utf8);

#endif							/* DOMI_CRYPTO_H */
