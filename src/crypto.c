/*
 * crypto.c
 *	  The master key (GUCs aura.encryption_key_file / _command) and
 *	  AES-256-GCM sealing of secrets, HMAC-SHA256 and derived sub-keys.
 *
 * The key is read once per process: in the postmaster at _PG_init when aura
 * is preloaded (forked backends inherit it), otherwise lazily on first use,
 * and again after a configuration reload changes either GUC.  Key material
 * never reaches SQL, errors or logs; buffers that held it are zeroed.
 *
 * Sealed format (version 1):
 *   0x01 | key id length (1 byte) | key id | nonce (12) | ciphertext | tag (16)
 * The header and the caller's aad are authenticated, so a changed byte, a
 * swapped key id or a blob moved to another setting fails to unseal.
 */
#include "postgres.h"

#include <ctype.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "aura.h"
#include "crypto.h"
#include "keyfile.h"

#define SEAL_VERSION	1
#define NONCE_BYTES		12
#define TAG_BYTES		16
#define MAX_KEYS		16

typedef struct MasterKey
{
	char		id[AURA_KEY_ID_MAX + 1];
	uint8		key[AURA_KEY_BYTES];
	uint8		seal_key[AURA_KEY_BYTES];	/* derived: "aura:seal" */
	EVP_CIPHER_CTX *enc;		/* keyed once, then only a new nonce per seal */
	EVP_CIPHER_CTX *dec;
} MasterKey;

static char *key_file_setting = NULL;
static char *key_command_setting = NULL;

static MasterKey keys[MAX_KEYS];
static int	nkeys = 0;
static bool reload_needed = true;
static char load_error[256] = "";
static const EVP_CIPHER *gcm_cipher = NULL;

/* assign hook of both GUCs: read the key again at next use */
static void
KeySourceChanged(const char *newval, void *extra)
{
	reload_needed = true;
}

void
AuraHmacSha256(const uint8 *key, int keylen, const uint8 *data, int datalen, uint8 out[32])
{
	unsigned int outlen = 32;

	if (HMAC(EVP_sha256(), key, keylen, data, datalen, out, &outlen) == NULL || outlen != 32)
		elog(ERROR, "HMAC-SHA256 failed");
}

static void
ForgetKeys(void)
{
	int			i;

	for (i = 0; i < MAX_KEYS; i++)
	{
		if (keys[i].enc)
			EVP_CIPHER_CTX_free(keys[i].enc);	/* frees (and cleanses) the key schedule */
		if (keys[i].dec)
			EVP_CIPHER_CTX_free(keys[i].dec);
	}
	explicit_bzero(keys, sizeof(keys));
	nkeys = 0;
}

/* valid key id: 1-32 of [A-Za-z0-9_.-] */
static bool
ValidKeyId(const char *s, int len)
{
	int			i;

	if (len < 1 || len > AURA_KEY_ID_MAX)
		return false;
	for (i = 0; i < len; i++)
		if (!isalnum((unsigned char) s[i]) && s[i] != '_' && s[i] != '.' && s[i] != '-')
			return false;
	return true;
}

/*
 * ParseKeys
 *		Lines "<id>:<key>" or a bare key; '#' starts a comment line.  Keys are
 *		32 bytes in hex or base64.  A bare key's id is derived from the key
 *		(so two different bare keys never share an id).  Returns false with
 *		load_error set; never puts key material into the message.
 */
static bool
ParseKeys(char *text, int len)
{
	char	   *line = text;
	int			lineno = 0;

	while (line != NULL && *line != '\0')
	{
		char	   *next = strchr(line, '\n');
		char	   *colon;
		char	   *k;
		int			klen;
		MasterKey  *mk;
		uint8		raw[64];
		int			n;

		lineno++;
		if (next)
			*next++ = '\0';
		while (isspace((unsigned char) *line))
			line++;
		klen = strlen(line);
		while (klen > 0 && isspace((unsigned char) line[klen - 1]))
			line[--klen] = '\0';
		if (klen == 0 || line[0] == '#')
		{
			line = next;
			continue;
		}
		if (nkeys >= MAX_KEYS)
		{
			snprintf(load_error, sizeof(load_error), "more than %d keys in the key material", MAX_KEYS);
			return false;
		}
		mk = &keys[nkeys];
		colon = strchr(line, ':');
		k = colon ? colon + 1 : line;
		n = AuraDecodeKey(k, strlen(k), raw, sizeof(raw));
		if (n != AURA_KEY_BYTES)
		{
			explicit_bzero(raw, sizeof(raw));
			snprintf(load_error, sizeof(load_error),
					 "key on line %d is not 32 bytes in hex or base64", lineno);
			return false;
		}
		memcpy(mk->key, raw, AURA_KEY_BYTES);
		explicit_bzero(raw, sizeof(raw));
		if (colon)
		{
			if (!ValidKeyId(line, colon - line))
			{
				snprintf(load_error, sizeof(load_error),
						 "key id on line %d must be 1 to %d characters of A-Z a-z 0-9 _ . -",
						 lineno, AURA_KEY_ID_MAX);
				return false;
			}
			memcpy(mk->id, line, colon - line);
			mk->id[colon - line] = '\0';
		}
		else
		{
			uint8		h[32];

			AuraHmacSha256(mk->key, AURA_KEY_BYTES, (const uint8 *) "aura:key-id", 11, h);
			snprintf(mk->id, sizeof(mk->id), "k%02x%02x%02x%02x", h[0], h[1], h[2], h[3]);
		}
		for (n = 0; n < nkeys; n++)
			if (strcmp(keys[n].id, mk->id) == 0)
			{
				snprintf(load_error, sizeof(load_error), "key id \"%s\" appears twice", mk->id);
				return false;
			}
		AuraHmacSha256(mk->key, AURA_KEY_BYTES, (const uint8 *) "aura:seal", 9, mk->seal_key);
		nkeys++;
		line = next;
	}
	if (nkeys == 0)
	{
		snprintf(load_error, sizeof(load_error), "the key material holds no key");
		return false;
	}
	return true;
}

/*
 * LoadKeys
 *		(Re)read the key material.  On failure no key is loaded and
 *		load_error says why.
 */
static void
LoadKeys(void)
{
	char	   *buf = NULL;
	int			len = 0;
	char	   *err = NULL;

	reload_needed = false;
	ForgetKeys();
	load_error[0] = '\0';
	if ((key_file_setting == NULL || key_file_setting[0] == '\0') &&
		(key_command_setting == NULL || key_command_setting[0] == '\0'))
	{
		snprintf(load_error, sizeof(load_error), "no master key configured");
		return;
	}
	if (!AuraReadKeyMaterial(key_file_setting, key_command_setting, &buf, &len, &err))
	{
		snprintf(load_error, sizeof(load_error), "%s", err);
		pfree(err);
		return;
	}
	if (!ParseKeys(buf, len))
		ForgetKeys();
	AuraKeyMaterialFree(buf, len);
}

static void
EnsureKeys(void)
{
	if (reload_needed)
		LoadKeys();
}

bool
AuraCryptoAvailable(void)
{
	EnsureKeys();
	return nkeys > 0;
}

/* ERROR unless a key is loaded */
static void
RequireKey(void)
{
	EnsureKeys();
	if (nkeys == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("no encryption key is available for secret values"),
				 errdetail("%s.", load_error),
				 errhint("A superuser sets aura.encryption_key_file (a file of mode 0600 holding "
						 "\"<key_id>:<32 bytes as hex or base64>\") or aura.encryption_key_command "
						 "in postgresql.conf, then reloads the configuration.")));
}

const char *
AuraCurrentKeyId(void)
{
	RequireKey();
	return keys[0].id;
}

void
AuraDeriveKey(const char *purpose, uint8 out[AURA_KEY_BYTES])
{
	char	   *label;

	RequireKey();
	label = psprintf("aura:derive:%s", purpose);
	AuraHmacSha256(keys[0].key, AURA_KEY_BYTES, (const uint8 *) label, strlen(label), out);
	pfree(label);
}

/*
 * KeyContext
 *		A cipher context of one master key, keyed on first use.  OpenSSL 3
 *		looks ciphers up by name on every keyed init; keying once and then
 *		setting only the nonce keeps a seal or unseal at about a microsecond.
 */
static EVP_CIPHER_CTX *
KeyContext(MasterKey *mk, bool encrypt)
{
	EVP_CIPHER_CTX **slot = encrypt ? &mk->enc : &mk->dec;
	bool		ok;

	if (*slot != NULL)
		return *slot;
	if (gcm_cipher == NULL)
		gcm_cipher = EVP_aes_256_gcm();
	*slot = EVP_CIPHER_CTX_new();
	if (*slot == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	if (encrypt)
		ok = EVP_EncryptInit_ex(*slot, gcm_cipher, NULL, NULL, NULL) == 1 &&
			EVP_CIPHER_CTX_ctrl(*slot, EVP_CTRL_GCM_SET_IVLEN, NONCE_BYTES, NULL) == 1 &&
			EVP_EncryptInit_ex(*slot, NULL, NULL, mk->seal_key, NULL) == 1;
	else
		ok = EVP_DecryptInit_ex(*slot, gcm_cipher, NULL, NULL, NULL) == 1 &&
			EVP_CIPHER_CTX_ctrl(*slot, EVP_CTRL_GCM_SET_IVLEN, NONCE_BYTES, NULL) == 1 &&
			EVP_DecryptInit_ex(*slot, NULL, NULL, mk->seal_key, NULL) == 1;
	if (!ok)
	{
		EVP_CIPHER_CTX_free(*slot);
		*slot = NULL;
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("could not set up AES-256-GCM")));
	}
	return *slot;
}

bytea *
AuraSeal(const char *data, int len, const char *aad, int aadlen)
{
	MasterKey  *mk;
	EVP_CIPHER_CTX *ctx;
	int			idlen;
	int			hdr;
	bytea	   *out;
	uint8	   *p;
	uint8	   *nonce;
	int			n;
	int			fin;

	RequireKey();
	mk = &keys[0];
	idlen = strlen(mk->id);
	hdr = 2 + idlen;
	out = palloc(VARHDRSZ + hdr + NONCE_BYTES + len + TAG_BYTES);
	SET_VARSIZE(out, VARHDRSZ + hdr + NONCE_BYTES + len + TAG_BYTES);
	p = (uint8 *) VARDATA(out);
	p[0] = SEAL_VERSION;
	p[1] = (uint8) idlen;
	memcpy(p + 2, mk->id, idlen);
	nonce = p + hdr;
	if (!pg_strong_random(nonce, NONCE_BYTES))
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("could not generate a random nonce")));

	ctx = KeyContext(mk, true);
	if (EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, nonce) != 1 ||
		EVP_EncryptUpdate(ctx, NULL, &n, p, hdr) != 1 ||
		(aadlen > 0 && EVP_EncryptUpdate(ctx, NULL, &n, (const uint8 *) aad, aadlen) != 1) ||
		EVP_EncryptUpdate(ctx, nonce + NONCE_BYTES, &n, (const uint8 *) data, len) != 1 ||
		EVP_EncryptFinal_ex(ctx, nonce + NONCE_BYTES + n, &fin) != 1 ||
		EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_BYTES, nonce + NONCE_BYTES + len) != 1)
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("encryption failed")));
	return out;
}

/* parse the header; false when malformed */
static bool
SealedHeader(const bytea *sealed, char *id, int *hdr, int *ctlen)
{
	const uint8 *p = (const uint8 *) VARDATA_ANY(sealed);
	int			total = VARSIZE_ANY_EXHDR(sealed);
	int			idlen;

	if (total < 2 || p[0] != SEAL_VERSION)
		return false;
	idlen = p[1];
	if (idlen < 1 || idlen > AURA_KEY_ID_MAX || total < 2 + idlen + NONCE_BYTES + TAG_BYTES)
		return false;
	memcpy(id, p + 2, idlen);
	id[idlen] = '\0';
	*hdr = 2 + idlen;
	*ctlen = total - *hdr - NONCE_BYTES - TAG_BYTES;
	return true;
}

char *
AuraSealedKeyId(const bytea *sealed)
{
	char		id[AURA_KEY_ID_MAX + 1];
	int			hdr;
	int			ctlen;

	if (!SealedHeader(sealed, id, &hdr, &ctlen))
		return NULL;
	return pstrdup(id);
}

char *
AuraUnseal(const bytea *sealed, const char *aad, int aadlen, int *len)
{
	char		id[AURA_KEY_ID_MAX + 1];
	int			hdr;
	int			ctlen;
	const uint8 *p = (const uint8 *) VARDATA_ANY(sealed);
	MasterKey  *mk = NULL;
	EVP_CIPHER_CTX *ctx;
	char	   *out;
	int			n;
	int			fin;
	int			i;
	bool		ok;

	RequireKey();
	if (!SealedHeader(sealed, id, &hdr, &ctlen))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("sealed secret is malformed"),
				 errdetail("It is not in aura's sealed format (version %d).", SEAL_VERSION)));
	for (i = 0; i < nkeys; i++)
		if (strcmp(keys[i].id, id) == 0)
			mk = &keys[i];
	if (mk == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("secret was sealed with key \"%s\", which is not loaded", id),
				 errhint("Add that key as an older line of the key material, or set the value again.")));

	out = palloc(ctlen + 1);
	ctx = KeyContext(mk, false);
	ok = EVP_DecryptInit_ex(ctx, NULL, NULL, NULL, p + hdr) == 1 &&
		EVP_DecryptUpdate(ctx, NULL, &n, p, hdr) == 1 &&
		(aadlen <= 0 || EVP_DecryptUpdate(ctx, NULL, &n, (const uint8 *) aad, aadlen) == 1) &&
		EVP_DecryptUpdate(ctx, (uint8 *) out, &n, p + hdr + NONCE_BYTES, ctlen) == 1 &&
		EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_BYTES,
							(void *) (p + hdr + NONCE_BYTES + ctlen)) == 1 &&
		EVP_DecryptFinal_ex(ctx, (uint8 *) out + n, &fin) == 1;
	if (!ok)
	{
		explicit_bzero(out, ctlen + 1);
		pfree(out);
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("sealed secret failed authentication"),
				 errdetail("The ciphertext, its key id or its setting was changed, or key \"%s\" is not the key it was sealed with.", id),
				 errhint("Set the value again with aura.set_setting(...).")));
	}
	out[ctlen] = '\0';
	*len = ctlen;
	return out;
}

/*
 * CryptoInit
 *		The two key GUCs: superuser-only and hidden from SHOW ALL, changed by
 *		a configuration reload.  When preloaded, read the key now so every
 *		backend inherits it and a misconfiguration shows in the server log.
 */
void
CryptoInit(void)
{
	DefineCustomStringVariable("aura.encryption_key_file",
							   "File holding aura's master key(s) for secret settings.",
							   "Lines \"<key_id>:<32 bytes hex or base64>\"; the first is current. Mode 0600.",
							   &key_file_setting, "", PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							   NULL, KeySourceChanged, NULL);
	DefineCustomStringVariable("aura.encryption_key_command",
							   "Command printing aura's master key(s) (used when no key file is set).",
							   NULL,
							   &key_command_setting, "", PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							   NULL, KeySourceChanged, NULL);

	if (process_shared_preload_libraries_in_progress &&
		((key_file_setting && key_file_setting[0]) || (key_command_setting && key_command_setting[0])))
	{
		MemoryContext cxt = CurrentMemoryContext;

		PG_TRY();
		{
			LoadKeys();
		}
		PG_CATCH();
		{
			MemoryContextSwitchTo(cxt);
			FlushErrorState();
			ForgetKeys();
			reload_needed = true;
			snprintf(load_error, sizeof(load_error), "loading the key at server start failed");
		}
		PG_END_TRY();
		if (nkeys > 0)
			ereport(LOG, (errmsg("aura: master key loaded (current key id \"%s\", %d key%s)",
								 keys[0].id, nkeys, nkeys > 1 ? "s" : "")));
		else
			ereport(WARNING, (errmsg("aura: no master key loaded: %s", load_error)));
	}
}

/* SQL: aura._seal(plaintext, aad) */
PG_FUNCTION_INFO_V1(aura_seal);
Datum
aura_seal(PG_FUNCTION_ARGS)
{
	text	   *plain = PG_GETARG_TEXT_PP(0);
	text	   *aad = PG_GETARG_TEXT_PP(1);

	PG_RETURN_BYTEA_P(AuraSeal(VARDATA_ANY(plain), VARSIZE_ANY_EXHDR(plain),
							   VARDATA_ANY(aad), VARSIZE_ANY_EXHDR(aad)));
}

/* SQL: aura._unseal(sealed, aad) */
PG_FUNCTION_INFO_V1(aura_unseal);
Datum
aura_unseal(PG_FUNCTION_ARGS)
{
	bytea	   *sealed = PG_GETARG_BYTEA_PP(0);
	text	   *aad = PG_GETARG_TEXT_PP(1);
	int			len;
	char	   *plain = AuraUnseal(sealed, VARDATA_ANY(aad), VARSIZE_ANY_EXHDR(aad), &len);
	text	   *result = cstring_to_text_with_len(plain, len);

	explicit_bzero(plain, len);
	pfree(plain);
	PG_RETURN_TEXT_P(result);
}

/* SQL: aura._sealed_key_id(sealed) */
PG_FUNCTION_INFO_V1(aura_sealed_key_id);
Datum
aura_sealed_key_id(PG_FUNCTION_ARGS)
{
	char	   *id = AuraSealedKeyId(PG_GETARG_BYTEA_PP(0));

	if (id == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(id));
}

/* SQL: aura._fingerprint(plaintext): keyed, so a guess cannot be checked offline */
PG_FUNCTION_INFO_V1(aura_fingerprint);
Datum
aura_fingerprint(PG_FUNCTION_ARGS)
{
	text	   *plain = PG_GETARG_TEXT_PP(0);
	uint8		k[AURA_KEY_BYTES];
	uint8		h[32];
	char		hex[33];
	int			i;

	AuraDeriveKey("fingerprint", k);
	AuraHmacSha256(k, AURA_KEY_BYTES, (const uint8 *) VARDATA_ANY(plain), VARSIZE_ANY_EXHDR(plain), h);
	explicit_bzero(k, sizeof(k));
	for (i = 0; i < 16; i++)
		snprintf(hex + 2 * i, 3, "%02x", h[i]);
	PG_RETURN_TEXT_P(cstring_to_text(psprintf("hmac-sha256:%s", hex)));
}

/* SQL: aura.encryption_key_status() */
PG_FUNCTION_INFO_V1(aura_encryption_key_status);
Datum
aura_encryption_key_status(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[5];
	bool		nulls[5] = {false, false, false, false, false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	EnsureKeys();
	values[0] = BoolGetDatum(nkeys > 0);
	if (nkeys > 0)
		values[1] = CStringGetTextDatum(keys[0].id);
	else
		nulls[1] = true;
	values[2] = Int32GetDatum(nkeys);
	if (key_file_setting && key_file_setting[0])
		values[3] = CStringGetTextDatum("file");
	else if (key_command_setting && key_command_setting[0])
		values[3] = CStringGetTextDatum("command");
	else
		nulls[3] = true;
	if (load_error[0])
		values[4] = CStringGetTextDatum(load_error);
	else
		nulls[4] = true;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* SQL: aura._current_key_id(); ERROR with a hint when no key is loaded */
PG_FUNCTION_INFO_V1(aura_current_key_id);
Datum
aura_current_key_id(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(AuraCurrentKeyId()));
}
