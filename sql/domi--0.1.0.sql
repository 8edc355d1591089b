-- domi 0.1.0
\echo Use "CREATE EXTENSION domi" to load this file. \quit

-- The extension lives in the fixed schema "domi" (domi.control: schema = domi).
-- Everyone may look up names in it; each function says who may execute it.
GRANT USAGE ON SCHEMA domi TO PUBLIC;

--------------------------------------------------------------------------
-- Tenant context (src/tenant.c)
--------------------------------------------------------------------------

-- Sets the tenant for the current transaction only; NULL clears it.
-- Not STRICT: NULL is a meaningful argument.  VOLATILE: it changes state.
CREATE FUNCTION domi.set_tenant(tenant uuid) RETURNS uuid
	AS 'MODULE_PATHNAME', 'domi_set_tenant'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- The current tenant, or NULL: a policy comparing with it fails closed.
CREATE FUNCTION domi.current_tenant() RETURNS uuid
	AS 'MODULE_PATHNAME', 'domi_current_tenant'
	LANGUAGE C STABLE PARALLEL SAFE;

-- The current tenant, or an error (SQLSTATE 55000) when none is set.
CREATE FUNCTION domi.require_tenant() RETURNS uuid
	AS 'MODULE_PATHNAME', 'domi_require_tenant'
	LANGUAGE C STABLE PARALLEL SAFE;

COMMENT ON FUNCTION domi.set_tenant(uuid) IS 'set the tenant for the current transaction (NULL clears it)';
COMMENT ON FUNCTION domi.current_tenant() IS 'the current tenant, or NULL when none is set';
COMMENT ON FUNCTION domi.require_tenant() IS 'the current tenant, or an error when none is set';

--------------------------------------------------------------------------
-- Encryption core (src/crypto.c)
--------------------------------------------------------------------------

-- A box is nonce (24 bytes) || MAC (16 bytes) || ciphertext: libsodium
-- crypto_secretbox, byte-compatible with libsodium-wrappers and tweetnacl.
-- Encrypting functions draw a random nonce per call: VOLATILE.  Decrypting
-- functions depend on their arguments only: IMMUTABLE.

CREATE FUNCTION domi.gen_key() RETURNS bytea
	AS 'MODULE_PATHNAME', 'domi_gen_key'
	LANGUAGE C VOLATILE PARALLEL SAFE;

CREATE FUNCTION domi.secretbox(plaintext bytea, key bytea) RETURNS bytea
	AS 'MODULE_PATHNAME', 'domi_secretbox'
	LANGUAGE C VOLATILE STRICT PARALLEL SAFE;

CREATE FUNCTION domi.secretbox_open(box bytea, key bytea) RETURNS bytea
	AS 'MODULE_PATHNAME', 'domi_secretbox_open'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION domi.secretbox_text(plaintext text, key bytea) RETURNS bytea
	AS 'MODULE_PATHNAME', 'domi_secretbox_text'
	LANGUAGE C VOLATILE STRICT PARALLEL SAFE;

CREATE FUNCTION domi.secretbox_open_text(box bytea, key bytea) RETURNS text
	AS 'MODULE_PATHNAME', 'domi_secretbox_open_text'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION domi.gen_key() IS '32 random bytes, a key for domi.secretbox';
COMMENT ON FUNCTION domi.secretbox(bytea, bytea) IS 'encrypt and authenticate with a fresh random nonce: nonce || MAC || ciphertext';
COMMENT ON FUNCTION domi.secretbox_open(bytea, bytea) IS 'check and decrypt a box made by domi.secretbox or libsodium secretbox';
COMMENT ON FUNCTION domi.secretbox_text(text, bytea) IS 'domi.secretbox of the text''s UTF-8 bytes';
COMMENT ON FUNCTION domi.secretbox_open_text(bytea, bytea) IS 'domi.secretbox_open, checked as UTF-8 and returned as text';
