/*
 * crypto.h
 *	  aura's master key and authenticated encryption (AES-256-GCM through
 *	  OpenSSL), for any module that keeps secrets at rest.
 *
 * The master key comes from aura.encryption_key_file or
 * aura.encryption_key_command (superuser-only GUCs).  Its text is one or
 * more lines "<key_id>:<32 bytes as hex or base64>" (or a single key without
 * id); the first line is the current key, the others are older keys still
 * accepted for decryption (see aura.rotate_encryption_key).
 */
#ifndef AURA_CRYPTO_H
#define AURA_CRYPTO_H

#include "postgres.h"

#define AURA_KEY_BYTES		32
#define AURA_KEY_ID_MAX		32

/* is a master key loaded (loads it on first use)? */
extern bool AuraCryptoAvailable(void);

/* id of the current key; ERROR with a hint when no key is configured */
extern const char *AuraCurrentKeyId(void);

/*
 * Seal data with the current key; aad (may be NULL) is authenticated, not
 * stored: the same aad must be given to unseal.  Result: palloc'd bytea
 * holding version, key id, nonce, ciphertext and tag.
 */
extern bytea *AuraSeal(const char *data, int len, const char *aad, int aadlen);

/*
 * Unseal: palloc'd plaintext (NUL-terminated, length in *len).  ERROR on a
 * malformed or tampered blob, a wrong aad, or a key id that is not loaded.
 * Callers zero the plaintext (explicit_bzero) before freeing it.
 */
extern char *AuraUnseal(const bytea *sealed, const char *aad, int aadlen, int *len);

/* key id a blob was sealed with (palloc'd), or NULL when malformed */
extern char *AuraSealedKeyId(const bytea *sealed);

/* HMAC-SHA256 */
extern void AuraHmacSha256(const uint8 *key, int keylen, const uint8 *data, int datalen,
						   uint8 out[32]);

/* a sub-key for one purpose, derived from the current master key */
extern void AuraDeriveKey(const char *purpose, uint8 out[AURA_KEY_BYTES]);

/* module init: GUCs, and the key itself when preloaded */
extern void CryptoInit(void);

#endif							/* AURA_CRYPTO_H */
