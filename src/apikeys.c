/*
 * apikeys.c
 *	  API keys: format, hashing secret, verification, rate limits, usage.
 *
 * A key is "aura_live_" (or "aura_test_"), 42 base62 characters from
 * pg_strong_random (about 250 bits) and a 6-character base62 CRC-32 of what
 * precedes it, so a scanner or aura.verify_api_key rejects a look-alike
 * without touching the table.  The first 10 random characters are the lookup
 * prefix (stored, indexed); the table keeps only a keyed hash of the whole
 * key: HMAC-SHA-256 with the server secret (aura.api_key_secret_file or
 * aura.api_key_secret_command), or SHA-256 when no secret is configured.
 *
 * verify_api_key reads aura.api_keys through its lookup index directly (no
 * SPI, no planner), compares hashes in constant time, then checks revocation,
 * expiry, allowed networks and scope; every failure does the same work and
 * raises the same generic error.  Failures are counted (shared memory when
 * preloaded) and a burst above aura.api_key_failure_threshold per minute is
 * audited.  Rate limits are GCRA per key in shared memory (per backend when
 * not preloaded).  last_used_at / use_count are written at most once a
 * minute per key and backend, never per call.
 */
#include "postgres.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_class.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "nodes/execnodes.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inet.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/pg_crc.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "aura.h"
#include "apikeys.h"
#include "audit.h"
#include "keyfile.h"

static const char base62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

#define DIGEST_LEN		32
#define SCOPE_MAX		64
#define USAGE_FLUSH_US	(60 * USECS_PER_SEC)

/* ---------------------------------------------------------------------
 * GUCs and the hashing secret
 * --------------------------------------------------------------------- */
static char *secret_file = NULL;
static char *secret_command = NULL;
static int	failure_threshold = 20;
static int	rate_slots = 10000;

typedef enum SecretState
{
	SECRET_UNLOADED,
	SECRET_NONE,
	SECRET_HMAC,
	SECRET_BROKEN
} SecretState;

static SecretState secret_state = SECRET_UNLOADED;
static char secret_error[256];
/* HMAC-SHA-256 with the key absorbed: inner and outer states, copied per use */
static EVP_MD_CTX *hmac_inner = NULL;
static EVP_MD_CTX *hmac_outer = NULL;
static EVP_MD_CTX *work_ctx = NULL;
static const EVP_MD *sha256_md = NULL;

/*
 * LoadSecret
 *		Read the secret once per process and keep only the two HMAC states
 *		derived from it; the raw material is zeroed.  A secret that is
 *		configured but unusable makes key creation and verification fail
 *		(never silently fall back to plain SHA-256).
 */
static void
LoadSecret(void)
{
	char	   *material = NULL;
	int			len = 0;
	char	   *error = NULL;
	uint8		raw[AURA_KEY_MATERIAL_MAX];
	uint8		block[64];
	int			rawlen;
	int			i;

	if (secret_state != SECRET_UNLOADED)
		return;
	if (sha256_md == NULL)
		sha256_md = EVP_sha256();
	if (work_ctx == NULL)
		work_ctx = EVP_MD_CTX_new();
	if ((secret_file == NULL || secret_file[0] == '\0') &&
		(secret_command == NULL || secret_command[0] == '\0'))
	{
		secret_state = SECRET_NONE;
		return;
	}
	if (!AuraReadKeyMaterial(secret_file, secret_command, &material, &len, &error))
	{
		snprintf(secret_error, sizeof(secret_error), "%s", error);
		secret_state = SECRET_BROKEN;
		return;
	}
	rawlen = AuraDecodeKey(material, len, raw, sizeof(raw));
	AuraKeyMaterialFree(material, len);
	if (rawlen < 32)
	{
		explicit_bzero(raw, sizeof(raw));
		snprintf(secret_error, sizeof(secret_error),
				 "the API key secret must be hex or base64 of at least 32 bytes");
		secret_state = SECRET_BROKEN;
		return;
	}
	memset(block, 0, sizeof(block));
	if (rawlen > 64)
	{
		unsigned int dlen;

		EVP_Digest(raw, rawlen, block, &dlen, sha256_md, NULL);
	}
	else
		memcpy(block, raw, rawlen);
	explicit_bzero(raw, sizeof(raw));

	hmac_inner = EVP_MD_CTX_new();
	hmac_outer = EVP_MD_CTX_new();
	for (i = 0; i < 64; i++)
		block[i] ^= 0x36;
	EVP_DigestInit_ex(hmac_inner, sha256_md, NULL);
	EVP_DigestUpdate(hmac_inner, block, 64);
	for (i = 0; i < 64; i++)
		block[i] ^= 0x36 ^ 0x5c;
	EVP_DigestInit_ex(hmac_outer, sha256_md, NULL);
	EVP_DigestUpdate(hmac_outer, block, 64);
	explicit_bzero(block, sizeof(block));
	secret_state = SECRET_HMAC;
}

/* the secret is needed: load it, refuse to go on when it is broken */
static void
RequireSecret(void)
{
	LoadSecret();
	if (secret_state == SECRET_BROKEN)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the API key hashing secret could not be loaded"),
				 errdetail("%s", secret_error),
				 errhint("Fix aura.api_key_secret_file or aura.api_key_secret_command and restart the server.")));
}

/* digest of a key: HMAC-SHA-256 with the secret, or SHA-256 */
static void
KeyDigest(const uint8 *key, int len, bool hmac, uint8 *out)
{
	unsigned int dlen;
	uint8		inner[DIGEST_LEN];

	if (!hmac)
	{
		EVP_DigestInit_ex(work_ctx, sha256_md, NULL);
		EVP_DigestUpdate(work_ctx, key, len);
		EVP_DigestFinal_ex(work_ctx, out, &dlen);
		return;
	}
	if (secret_state != SECRET_HMAC)
	{
		/* a key hashed with a secret this server no longer has: cannot match */
		memset(out, 0, DIGEST_LEN);
		return;
	}
	EVP_MD_CTX_copy_ex(work_ctx, hmac_inner);
	EVP_DigestUpdate(work_ctx, key, len);
	EVP_DigestFinal_ex(work_ctx, inner, &dlen);
	EVP_MD_CTX_copy_ex(work_ctx, hmac_outer);
	EVP_DigestUpdate(work_ctx, inner, DIGEST_LEN);
	EVP_DigestFinal_ex(work_ctx, out, &dlen);
}

/* ---------------------------------------------------------------------
 * Key format
 * --------------------------------------------------------------------- */

/* CRC-32 (zip, PNG) of the tag and random part, as 6 base62 digits */
static void
KeyChecksum(const char *key, char *out)
{
	pg_crc32	crc;
	uint32		v;
	int			i;

	INIT_TRADITIONAL_CRC32(crc);
	COMP_TRADITIONAL_CRC32(crc, key, API_KEY_TAG_LEN + API_KEY_RANDOM_LEN);
	FIN_TRADITIONAL_CRC32(crc);
	v = crc;
	for (i = API_KEY_CHECK_LEN - 1; i >= 0; i--)
	{
		out[i] = base62[v % 62];
		v /= 62;
	}
}

static bool
IsBase62(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/*
 * LookupValue
 *		The 10 lookup characters read as a base62 number (< 62^10 < 2^60):
 *		an int8 index probe compares much faster than text.  -1 (never
 *		stored) when a character is not base62.
 */
static int64
LookupValue(const char *p)
{
	int64		v = 0;
	bool		ok = true;
	int			i;

	for (i = 0; i < API_KEY_LOOKUP_LEN; i++)
	{
		char		c = p[i];
		int			d = (c >= '0' && c <= '9') ? c - '0' :
			(c >= 'A' && c <= 'Z') ? c - 'A' + 10 :
			(c >= 'a' && c <= 'z') ? c - 'a' + 36 : -1;

		ok &= d >= 0;
		v = v * 62 + (d < 0 ? 0 : d);
	}
	return ok ? v : -1;
}

/* a well-formed key: right length, tag, alphabet and checksum */
static bool
KeyWellFormed(const char *key, int len)
{
	char		check[API_KEY_CHECK_LEN];
	bool		ok = true;
	int			i;

	if (len != API_KEY_LEN)
		return false;
	if (memcmp(key, "aura_live_", API_KEY_TAG_LEN) != 0 &&
		memcmp(key, "aura_test_", API_KEY_TAG_LEN) != 0)
		ok = false;
	for (i = API_KEY_TAG_LEN; i < API_KEY_LEN; i++)
		ok &= IsBase62(key[i]);
	KeyChecksum(key, check);
	ok &= memcmp(check, key + API_KEY_TAG_LEN + API_KEY_RANDOM_LEN, API_KEY_CHECK_LEN) == 0;
	return ok;
}

/* ---------------------------------------------------------------------
 * Shared state: counters, failure window, rate-limit table
 * --------------------------------------------------------------------- */
typedef struct KeyCounters
{
	uint64		verified;
	uint64		failed;
	uint64		scope_denied;
	uint64		rate_limited;
	TimestampTz window_start;
	uint32		window_failures;
} KeyCounters;

typedef struct KeysShared
{
	pg_atomic_uint64 verified;	/* successes: no lock on the hot path */
	slock_t		mutex;			/* protects counters (failures) */
	LWLock	   *rate_lock;		/* protects the rate hash */
	KeyCounters counters;
} KeysShared;

typedef struct RateEntry
{
	int64		key_id;
	int64		tat[3];			/* GCRA theoretical arrival times, us */
} RateEntry;

static KeysShared *keys_shared = NULL;
static HTAB *shared_rates = NULL;
static HTAB *local_rates = NULL;
static KeyCounters local_counters;

#if PG_VERSION_NUM >= 150000
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
KeysShmemRequest(void)
{
#if PG_VERSION_NUM >= 150000
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
#endif
	RequestAddinShmemSpace(MAXALIGN(sizeof(KeysShared)) +
						   hash_estimate_size(rate_slots, sizeof(RateEntry)));
	RequestNamedLWLockTranche("aura_api_keys", 1);
}

static void
KeysShmemStartup(void)
{
	bool		found;
	HASHCTL		info;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	keys_shared = ShmemInitStruct("aura api keys", sizeof(KeysShared), &found);
	if (!found)
	{
		memset(keys_shared, 0, sizeof(KeysShared));
		pg_atomic_init_u64(&keys_shared->verified, 0);
		SpinLockInit(&keys_shared->mutex);
		keys_shared->rate_lock = &(GetNamedLWLockTranche("aura_api_keys"))->lock;
	}
	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(int64);
	info.entrysize = sizeof(RateEntry);
	shared_rates = ShmemInitHash("aura api key rates", rate_slots, rate_slots,
								 &info, HASH_ELEM | HASH_BLOBS);
	LWLockRelease(AddinShmemInitLock);
}

/* ---------------------------------------------------------------------
 * The table, found once per backend and forgotten on relcache invalidation
 * --------------------------------------------------------------------- */
typedef struct KeyTable
{
	bool		valid;
	Oid			relid;
	Oid			indexid;
	Oid			owner;
	AttrNumber	att_restaurant;
	AttrNumber	att_id;
	AttrNumber	att_hash;
	AttrNumber	att_hmac;
	AttrNumber	att_scopes;
	AttrNumber	att_cidrs;
	AttrNumber	att_expires;
	AttrNumber	att_revoked;
	AttrNumber	att_limits[3];
	StrategyNumber eq_strategy;	/* "=" of the lookup index's access method */
} KeyTable;

static KeyTable keytab;
static bool callback_registered = false;

static void
KeyTableInvalidate(Datum arg, Oid relid)
{
	if (!OidIsValid(relid) || relid == keytab.relid || relid == keytab.indexid)
		keytab.valid = false;
}

static AttrNumber
RequiredAttnum(Oid relid, const char *name)
{
	AttrNumber	a = get_attnum(relid, name);

	if (a == InvalidAttrNumber)
		elog(ERROR, "aura.api_keys has no column \"%s\"", name);
	return a;
}

static void
KeyTableLookup(void)
{
	Oid			nsp;
	HeapTuple	tp;

	if (keytab.valid)
		return;
	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(KeyTableInvalidate, (Datum) 0);
		callback_registered = true;
	}
	nsp = get_namespace_oid("aura", false);
	keytab.relid = get_relname_relid("api_keys", nsp);
	keytab.indexid = get_relname_relid("api_keys_lookup_idx", nsp);
	if (!OidIsValid(keytab.relid) || !OidIsValid(keytab.indexid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("aura.api_keys is missing"),
				 errhint("Run ALTER EXTENSION aura UPDATE.")));
	tp = SearchSysCache1(RELOID, ObjectIdGetDatum(keytab.relid));
	if (!HeapTupleIsValid(tp))
		elog(ERROR, "cache lookup failed for relation %u", keytab.relid);
	keytab.owner = ((Form_pg_class) GETSTRUCT(tp))->relowner;
	ReleaseSysCache(tp);
	tp = SearchSysCache1(RELOID, ObjectIdGetDatum(keytab.indexid));
	if (!HeapTupleIsValid(tp))
		elog(ERROR, "cache lookup failed for relation %u", keytab.indexid);
	keytab.eq_strategy = ((Form_pg_class) GETSTRUCT(tp))->relam == HASH_AM_OID ?
		HTEqualStrategyNumber : BTEqualStrategyNumber;
	ReleaseSysCache(tp);
	keytab.att_restaurant = RequiredAttnum(keytab.relid, "restaurant_id");
	keytab.att_id = RequiredAttnum(keytab.relid, "id");
	keytab.att_hash = RequiredAttnum(keytab.relid, "key_hash");
	keytab.att_hmac = RequiredAttnum(keytab.relid, "hmac");
	keytab.att_scopes = RequiredAttnum(keytab.relid, "scopes");
	keytab.att_cidrs = RequiredAttnum(keytab.relid, "allowed_cidrs");
	keytab.att_expires = RequiredAttnum(keytab.relid, "expires_at");
	keytab.att_revoked = RequiredAttnum(keytab.relid, "revoked_at");
	keytab.att_limits[0] = RequiredAttnum(keytab.relid, "rate_per_minute");
	keytab.att_limits[1] = RequiredAttnum(keytab.relid, "rate_per_hour");
	keytab.att_limits[2] = RequiredAttnum(keytab.relid, "rate_per_day");
	keytab.valid = true;
}

/* ---------------------------------------------------------------------
 * Failure accounting
 * --------------------------------------------------------------------- */
typedef enum Outcome
{
	OUTCOME_OK,
	OUTCOME_MALFORMED,
	OUTCOME_UNKNOWN,
	OUTCOME_REVOKED,
	OUTCOME_EXPIRED,
	OUTCOME_ADDRESS,
	OUTCOME_SCOPE,
	OUTCOME_RATE
} Outcome;

static const char *const outcome_names[] = {
	"ok", "malformed", "unknown", "revoked", "expired", "address", "scope", "rate_limited"
};

/*
 * CountOutcome
 *		Count a verification; when failures in the current minute reach the
 *		threshold, queue one audit event (it must survive the ERROR raised
 *		right after, so it goes through the audit queue).
 */
static void
CountOutcome(Outcome outcome, int64 key_id, int64 restaurant_id)
{
	KeyCounters *c = keys_shared ? &keys_shared->counters : &local_counters;
	TimestampTz now;
	uint32		failures = 0;

	if (outcome == OUTCOME_OK && keys_shared)
	{
		pg_atomic_fetch_add_u64(&keys_shared->verified, 1);
		return;
	}
	now = GetCurrentTimestamp();
	if (keys_shared)
		SpinLockAcquire(&keys_shared->mutex);
	if (outcome == OUTCOME_OK)
		c->verified++;
	else if (outcome == OUTCOME_RATE)
		c->rate_limited++;
	else
	{
		if (outcome == OUTCOME_SCOPE)
			c->scope_denied++;
		c->failed++;
		if (now - c->window_start >= 60 * USECS_PER_SEC)
		{
			c->window_start = now;
			c->window_failures = 0;
		}
		failures = ++c->window_failures;
	}
	if (keys_shared)
		SpinLockRelease(&keys_shared->mutex);

	if (failures > 0 && failure_threshold > 0 && failures == (uint32) failure_threshold)
	{
		char	   *details;

		details = psprintf("{\"failures\": %u, \"window_seconds\": 60, \"last_reason\": \"%s\", "
						   "\"last_key_id\": %s}",
						   failures, outcome_names[outcome],
						   key_id > 0 ? psprintf(INT64_FORMAT, key_id) : "null");
		AuraAuditLater("api_key.verify_failures", restaurant_id, details);
	}
}

/* ---------------------------------------------------------------------
 * Rate limits: GCRA over a minute, an hour and a day
 * --------------------------------------------------------------------- */
static const int64 rate_periods[3] = {
	60 * USECS_PER_SEC, 3600 * USECS_PER_SEC, 86400 * USECS_PER_SEC
};

/*
 * RateAllow
 *		GCRA: each call moves the key's theoretical arrival time (TAT) one
 *		emission interval T/limit on; a call is allowed while TAT - now stays
 *		within the burst tolerance T - T/limit, i.e. at most `limit` calls
 *		per period, refilled smoothly.  All windows must allow before any is
 *		charged.  Returns false and the wait in *retry_us when denied.
 */
static bool
RateAllow(int64 key_id, const int32 *limits, int64 *retry_us)
{
	TimestampTz now = GetCurrentTimestamp();
	RateEntry  *e;
	bool		found;
	bool		allow = true;
	int64		newtat[3];
	int			w;
	bool		shared = false;

	if (shared_rates != NULL)
	{
		LWLockAcquire(keys_shared->rate_lock, LW_EXCLUSIVE);
		e = hash_search(shared_rates, &key_id, HASH_ENTER_NULL, &found);
		if (e != NULL)
			shared = true;
		else
			LWLockRelease(keys_shared->rate_lock);
	}
	if (!shared)
	{
		if (local_rates == NULL)
		{
			HASHCTL		info;

			memset(&info, 0, sizeof(info));
			info.keysize = sizeof(int64);
			info.entrysize = sizeof(RateEntry);
			local_rates = hash_create("aura api key rates (backend)", 64, &info,
									  HASH_ELEM | HASH_BLOBS);
		}
		e = hash_search(local_rates, &key_id, HASH_ENTER, &found);
	}
	if (!found)
		memset(e->tat, 0, sizeof(e->tat));

	*retry_us = 0;
	for (w = 0; w < 3; w++)
	{
		int64		interval;
		int64		tolerance;
		int64		tat;

		newtat[w] = e->tat[w];
		if (limits[w] <= 0)
			continue;
		interval = rate_periods[w] / limits[w];
		tolerance = rate_periods[w] - interval;
		tat = Max(e->tat[w], now);
		if (tat - now > tolerance)
		{
			allow = false;
			*retry_us = Max(*retry_us, tat - now - tolerance);
		}
		newtat[w] = tat + interval;
	}
	if (allow)
		memcpy(e->tat, newtat, sizeof(newtat));
	if (shared)
		LWLockRelease(keys_shared->rate_lock);
	return allow;
}

/* ---------------------------------------------------------------------
 * Usage: last_used_at and use_count, flushed at most once a minute
 * --------------------------------------------------------------------- */
typedef struct UsageEntry
{
	int64		key_id;
	int64		restaurant_id;
	int64		pending;
	TimestampTz last_used;
} UsageEntry;

static HTAB *usage = NULL;
static int	usage_count = 0;	/* entries with pending > 0 */
static TimestampTz usage_flushed = 0;
static SPIPlanPtr usage_plan = NULL;

/*
 * FlushUsage
 *		One UPDATE for every key this backend used since the last flush.
 *		Rows locked by another transaction are skipped (kept for the next
 *		flush), never waited for.
 */
static void
FlushUsage(void *arg)
{
	HASH_SEQ_STATUS seq;
	UsageEntry *u;
	Datum	   *ids;
	Datum	   *rids;
	Datum	   *used;
	Datum	   *counts;
	int			n = 0;
	Datum		values[4];
	AuraOwnerState st;

	ids = palloc(sizeof(Datum) * usage_count);
	rids = palloc(sizeof(Datum) * usage_count);
	used = palloc(sizeof(Datum) * usage_count);
	counts = palloc(sizeof(Datum) * usage_count);
	hash_seq_init(&seq, usage);
	while ((u = hash_seq_search(&seq)) != NULL)
	{
		if (u->pending == 0 || n >= usage_count)
			continue;
		ids[n] = Int64GetDatum(u->key_id);
		rids[n] = Int64GetDatum(u->restaurant_id);
		used[n] = TimestampTzGetDatum(u->last_used);
		counts[n] = Int64GetDatum(u->pending);
		n++;
	}
	values[0] = PointerGetDatum(construct_array(rids, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[1] = PointerGetDatum(construct_array(ids, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[2] = PointerGetDatum(construct_array(used, n, TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[3] = PointerGetDatum(construct_array(counts, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));

	AuraOwnerBegin(keytab.owner, &st);
	PG_TRY();
	{
		int			ret;
		uint64		i;

		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		if (usage_plan == NULL)
		{
			Oid			types[4] = {INT8ARRAYOID, INT8ARRAYOID, TIMESTAMPTZARRAYOID, INT8ARRAYOID};
			SPIPlanPtr	plan;

			plan = SPI_prepare("WITH u AS (SELECT * FROM unnest($1, $2, $3, $4) AS u(rid, kid, used, n)), "
							   "k AS (SELECT a.restaurant_id, a.id FROM aura.api_keys a JOIN u "
							   "ON a.restaurant_id = u.rid AND a.id = u.kid FOR UPDATE OF a SKIP LOCKED) "
							   "UPDATE aura.api_keys a SET last_used_at = greatest(a.last_used_at, u.used), "
							   "use_count = a.use_count + u.n FROM u, k "
							   "WHERE a.restaurant_id = k.restaurant_id AND a.id = k.id "
							   "AND u.rid = k.restaurant_id AND u.kid = k.id RETURNING a.id",
							   4, types);
			if (plan == NULL)
				elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
			SPI_keepplan(plan);
			usage_plan = plan;
		}
		ret = SPI_execute_plan(usage_plan, values, NULL, false, 0);
		if (ret != SPI_OK_UPDATE_RETURNING)
			elog(ERROR, "could not record API key usage: %s", SPI_result_code_string(ret));
		for (i = 0; i < SPI_processed; i++)
		{
			bool		isnull;
			int64		kid = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
														  SPI_tuptable->tupdesc, 1, &isnull));

			u = hash_search(usage, &kid, HASH_FIND, NULL);
			if (u != NULL && u->pending > 0)
			{
				u->pending = 0;
				usage_count--;
			}
		}
		SPI_finish();
	}
	PG_FINALLY();
	{
		AuraOwnerEnd(&st);
	}
	PG_END_TRY();
}

/*
 * NoteUsage
 *		Count a use in this backend; write the counts out at most once a
 *		minute (the first time right away, so a short session is seen too).
 */
static void
NoteUsage(int64 key_id, int64 restaurant_id)
{
	UsageEntry *u;
	bool		found;
	TimestampTz now = GetCurrentTimestamp();

	if (usage == NULL)
	{
		HASHCTL		info;

		memset(&info, 0, sizeof(info));
		info.keysize = sizeof(int64);
		info.entrysize = sizeof(UsageEntry);
		usage = hash_create("aura api key usage", 64, &info, HASH_ELEM | HASH_BLOBS);
	}
	u = hash_search(usage, &key_id, HASH_ENTER, &found);
	if (!found)
		u->pending = 0;
	if (u->pending == 0)
		usage_count++;
	u->restaurant_id = restaurant_id;
	u->pending++;
	u->last_used = now;

	if (now - usage_flushed < USAGE_FLUSH_US || XactReadOnly || RecoveryInProgress() ||
		IsInParallelMode())
		return;
	usage_flushed = now;
	(void) AuraTryInSubxact(FlushUsage, &now);
}

/* ---------------------------------------------------------------------
 * Scopes and networks
 * --------------------------------------------------------------------- */

/* does a granted scope ("loyalty:*", "*", "loyalty:read") cover `want`? */
static bool
ScopeCovers(const char *have, int havelen, const char *want)
{
	if (havelen == 1 && have[0] == '*')
		return true;
	if (havelen >= 2 && have[havelen - 1] == '*' && have[havelen - 2] == ':')
		return strncmp(have, want, havelen - 1) == 0 && strlen(want) > (size_t) (havelen - 1);
	return strlen(want) == (size_t) havelen && strncmp(have, want, havelen) == 0;
}

static bool
ScopesAllow(ArrayType *scopes, const char *want)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			i;
	bool		ok = false;

	deconstruct_array(scopes, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	for (i = 0; i < n; i++)
	{
		text	   *t;

		if (nulls[i])
			continue;
		t = DatumGetTextPP(elems[i]);
		ok |= ScopeCovers(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), want);
	}
	return ok;
}

/* the connection's client address when the caller gave none */
static bool
ConnectionAddress(Datum *addr)
{
	LOCAL_FCINFO(fc, 0);
	Datum		d;

	InitFunctionCallInfoData(*fc, NULL, 0, InvalidOid, NULL, NULL);
	d = inet_client_addr(fc);
	if (fc->isnull)
		return false;
	*addr = d;
	return true;
}

static bool
AddressAllowed(ArrayType *cidrs, Datum client, bool have_client)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			i;
	bool		ok = false;

	if (!have_client)
		have_client = ConnectionAddress(&client);
	if (!have_client)
		return false;
	deconstruct_array(cidrs, CIDROID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	for (i = 0; i < n; i++)
		if (!nulls[i])
			ok |= DatumGetBool(DirectFunctionCall2(network_subeq, client, elems[i]));
	return ok;
}

/* validate a required scope: lower-case words separated by ':' */
static void
CheckScopeArg(const char *scope)
{
	int			len = strlen(scope);
	int			i;
	bool		ok = len > 0 && len <= SCOPE_MAX && scope[0] != ':' && scope[len - 1] != ':';

	for (i = 0; ok && i < len; i++)
		ok = (scope[i] >= 'a' && scope[i] <= 'z') || (scope[i] >= '0' && scope[i] <= '9') ||
			scope[i] == '_' || (scope[i] == ':' && scope[i - 1] != ':');
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid required scope \"%.64s\"", scope),
				 errdetail("A scope is up to %d characters: lower-case words separated by \":\", without wildcards.", SCOPE_MAX),
				 errhint("Example: 'loyalty:points:write'.")));
}

/* ---------------------------------------------------------------------
 * Verification
 * --------------------------------------------------------------------- */
typedef struct Verified
{
	int64		key_id;
	int64		restaurant_id;
	Datum		scopes;
} Verified;

/*
 * VerifyKey
 *		Authenticate a key; raise the generic error on any failure.  The same
 *		steps run whatever is wrong with the key: checksum, digest, index
 *		probe, constant-time compare, every condition evaluated.
 */
static void
VerifyKey(text *key, const char *scope, Datum client, bool have_client, Verified *out)
{
	char		buf[API_KEY_LEN];
	int			len = key ? VARSIZE_ANY_EXHDR(key) : 0;
	bool		wellformed;
	uint8		digest[2][DIGEST_LEN];
	bool		have_digest[2] = {false, false};
	static const uint8 dummy[DIGEST_LEN];
	Relation	rel;
	Relation	idx;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	ScanKeyData skey;
	bool		matched = false;
	bool		revoked = false;
	bool		expired = false;
	bool		address_ok = false;
	bool		scope_ok = false;
	int32		limits[3] = {0, 0, 0};
	Outcome		outcome;
	TimestampTz now = GetCurrentTimestamp();
	int			w;

	RequireSecret();
	KeyTableLookup();

	memset(buf, 0, sizeof(buf));
	if (key)
		memcpy(buf, VARDATA_ANY(key), Min(len, API_KEY_LEN));
	wellformed = key != NULL && KeyWellFormed(buf, len);

	rel = table_open(keytab.relid, AccessShareLock);
	idx = index_open(keytab.indexid, AccessShareLock);
	ScanKeyInit(&skey, 1, keytab.eq_strategy, F_INT8EQ,
				Int64GetDatum(LookupValue(buf + API_KEY_TAG_LEN)));
	slot = table_slot_create(rel, NULL);
	scan = index_beginscan(rel, idx, GetActiveSnapshot(), 1, 0);
	index_rescan(scan, &skey, 1, NULL, 0);
	while (index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		bool		hmac;
		Datum		d;
		bytea	   *stored;
		bool		same;

		hmac = DatumGetBool(slot_getattr(slot, keytab.att_hmac, &isnull));
		if (!have_digest[hmac])
		{
			KeyDigest((const uint8 *) buf, API_KEY_LEN, hmac, digest[hmac]);
			have_digest[hmac] = true;
		}
		stored = DatumGetByteaPP(slot_getattr(slot, keytab.att_hash, &isnull));
		same = VARSIZE_ANY_EXHDR(stored) == DIGEST_LEN &&
			CRYPTO_memcmp(VARDATA_ANY(stored), digest[hmac], DIGEST_LEN) == 0;
		if (!same || matched)
			continue;
		matched = true;
		out->key_id = DatumGetInt64(slot_getattr(slot, keytab.att_id, &isnull));
		out->restaurant_id = DatumGetInt64(slot_getattr(slot, keytab.att_restaurant, &isnull));
		slot_getattr(slot, keytab.att_revoked, &isnull);
		revoked = !isnull;
		d = slot_getattr(slot, keytab.att_expires, &isnull);
		expired = !isnull && DatumGetTimestampTz(d) <= now;
		d = slot_getattr(slot, keytab.att_cidrs, &isnull);
		address_ok = isnull || AddressAllowed(DatumGetArrayTypeP(d), client, have_client);
		d = slot_getattr(slot, keytab.att_scopes, &isnull);
		/* detoasted copy: the row outlives this scan in the result */
		out->scopes = PointerGetDatum(DatumGetArrayTypePCopy(d));
		scope_ok = scope == NULL || ScopesAllow(DatumGetArrayTypeP(out->scopes), scope);
		for (w = 0; w < 3; w++)
		{
			d = slot_getattr(slot, keytab.att_limits[w], &isnull);
			limits[w] = isnull ? 0 : DatumGetInt32(d);
		}
	}
	if (!matched)
	{
		/* the work a match would have cost */
		bool		h = secret_state == SECRET_HMAC;

		if (!have_digest[h])
			KeyDigest((const uint8 *) buf, API_KEY_LEN, h, digest[h]);
		(void) CRYPTO_memcmp(dummy, digest[h], DIGEST_LEN);
		out->key_id = 0;
		out->restaurant_id = 0;
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	/* keep the locks to the end of the transaction, as a query would */
	index_close(idx, NoLock);
	table_close(rel, NoLock);

	matched &= wellformed;
	if (!wellformed)
		outcome = OUTCOME_MALFORMED;
	else if (!matched)
		outcome = OUTCOME_UNKNOWN;
	else if (revoked)
		outcome = OUTCOME_REVOKED;
	else if (expired)
		outcome = OUTCOME_EXPIRED;
	else if (!address_ok)
		outcome = OUTCOME_ADDRESS;
	else if (!scope_ok)
		outcome = OUTCOME_SCOPE;
	else
		outcome = OUTCOME_OK;
	explicit_bzero(buf, sizeof(buf));

	if (outcome != OUTCOME_OK)
	{
		CountOutcome(outcome, matched ? out->key_id : 0, matched ? out->restaurant_id : 0);
		if (outcome == OUTCOME_SCOPE)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("API key does not grant scope \"%s\"", scope),
					 errhint("Create a key with this scope, or a wildcard such as \"loyalty:*\".")));
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("invalid API key"),
				 errhint("The key is malformed, unknown, revoked, expired or not allowed from this address.")));
	}

	if (limits[0] > 0 || limits[1] > 0 || limits[2] > 0)
	{
		int64		retry_us;

		if (!RateAllow(out->key_id, limits, &retry_us))
		{
			CountOutcome(OUTCOME_RATE, out->key_id, out->restaurant_id);
			ereport(ERROR,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("API key rate limit exceeded"),
					 errdetail("Key %lld may be used again in %.3f seconds.",
							   (long long) out->key_id, (double) retry_us / USECS_PER_SEC),
					 errhint("Slow down, or raise the key's rate limits with aura.set_api_key_limits().")));
		}
	}
	CountOutcome(OUTCOME_OK, out->key_id, out->restaurant_id);
	NoteUsage(out->key_id, out->restaurant_id);
	if (AuraAuditPending())
		AuraAuditFlush();
}

/* result row type of verify_api_key, fixed by its SQL declaration */
static TupleDesc verify_tupdesc = NULL;

PG_FUNCTION_INFO_V1(aura_verify_api_key);

/* fn_extra marker: the one row went out, the next call ends the set */
static char verify_row_returned;

/* the executor gave up on the set early (LIMIT, rescan): start afresh */
static void
VerifyShutdown(Datum arg)
{
	((FmgrInfo *) DatumGetPointer(arg))->fn_extra = NULL;
}

/*
 * aura.verify_api_key(key text, required_scope text, client_addr inet)
 *		RETURNS TABLE(key_id bigint, restaurant_id bigint, scopes text[])
 *		One row for a valid key; an error otherwise.  The value-per-call
 *		protocol is done by hand (no multi-call memory context per call):
 *		this function is on every request's path.
 */
Datum
aura_verify_api_key(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsi = (ReturnSetInfo *) fcinfo->resultinfo;
	Verified	v = {0, 0, (Datum) 0};
	Datum		values[3];
	bool		nulls[3] = {false, false, false};
	char	   *scope = NULL;
	Datum		client = (Datum) 0;
	bool		have_client;

	if (rsi == NULL || !IsA(rsi, ReturnSetInfo) || (rsi->allowedModes & SFRM_ValuePerCall) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("set-valued function called in context that cannot accept a set")));
	rsi->returnMode = SFRM_ValuePerCall;
	if (fcinfo->flinfo->fn_extra == &verify_row_returned)
	{
		UnregisterExprContextCallback(rsi->econtext, VerifyShutdown, PointerGetDatum(fcinfo->flinfo));
		fcinfo->flinfo->fn_extra = NULL;
		rsi->isDone = ExprEndResult;
		PG_RETURN_NULL();
	}
	if (verify_tupdesc == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
		TupleDesc	tupdesc;

		if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
			elog(ERROR, "return type must be a row type");
		verify_tupdesc = BlessTupleDesc(CreateTupleDescCopy(tupdesc));
		MemoryContextSwitchTo(old);
	}
	if (!PG_ARGISNULL(1))
	{
		text	   *t = PG_GETARG_TEXT_PP(1);

		if (VARSIZE_ANY_EXHDR(t) > SCOPE_MAX)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid required scope"),
					 errdetail("The scope has %d characters; at most %d are allowed.",
							   (int) VARSIZE_ANY_EXHDR(t), SCOPE_MAX)));
		scope = text_to_cstring(t);
		CheckScopeArg(scope);
	}
	if (!PG_ARGISNULL(2))
	{
		client = PG_GETARG_DATUM(2);
		have_client = true;
	}
	else
		have_client = false;	/* the connection's, looked up if needed */
	VerifyKey(PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0), scope, client, have_client, &v);
	values[0] = Int64GetDatum(v.key_id);
	values[1] = Int64GetDatum(v.restaurant_id);
	values[2] = v.scopes;

	RegisterExprContextCallback(rsi->econtext, VerifyShutdown, PointerGetDatum(fcinfo->flinfo));
	fcinfo->flinfo->fn_extra = &verify_row_returned;
	rsi->isDone = ExprMultipleResult;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(verify_tupdesc, values, nulls)));
}

PG_FUNCTION_INFO_V1(aura_api_key_generate);

/*
 * aura._api_key_generate(environment text)
 *		RETURNS (key text, lookup_prefix text, lookup bigint, key_hash bytea, hmac boolean)
 *		A new key and what the table stores of it.  Only aura's SECURITY
 *		DEFINER create/rotate functions call it.
 */
Datum
aura_api_key_generate(PG_FUNCTION_ARGS)
{
	char		key[API_KEY_LEN + 1];
	uint8		rnd[64];
	int			filled = 0;
	const char *env;
	uint8		digest[DIGEST_LEN];
	bytea	   *hash;
	TupleDesc	tupdesc;
	Datum		values[5];
	bool		nulls[5] = {false, false, false, false, false};
	bool		hmac;

	env = PG_ARGISNULL(0) ? "live" : text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (strcmp(env, "live") != 0 && strcmp(env, "test") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid API key environment \"%.32s\"", env),
				 errhint("Use 'live' or 'test'.")));
	RequireSecret();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	snprintf(key, sizeof(key), "aura_%s_", env);
	/* rejection sampling keeps every base62 character uniform */
	while (filled < API_KEY_RANDOM_LEN)
	{
		int			i;

		if (!pg_strong_random(rnd, sizeof(rnd)))
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not generate random bytes for an API key")));
		for (i = 0; i < (int) sizeof(rnd) && filled < API_KEY_RANDOM_LEN; i++)
			if (rnd[i] < 248)
				key[API_KEY_TAG_LEN + filled++] = base62[rnd[i] % 62];
	}
	explicit_bzero(rnd, sizeof(rnd));
	KeyChecksum(key, key + API_KEY_TAG_LEN + API_KEY_RANDOM_LEN);
	key[API_KEY_LEN] = '\0';

	hmac = secret_state == SECRET_HMAC;
	KeyDigest((uint8 *) key, API_KEY_LEN, hmac, digest);
	hash = palloc(VARHDRSZ + DIGEST_LEN);
	SET_VARSIZE(hash, VARHDRSZ + DIGEST_LEN);
	memcpy(VARDATA(hash), digest, DIGEST_LEN);

	values[0] = PointerGetDatum(cstring_to_text_with_len(key, API_KEY_LEN));
	values[1] = PointerGetDatum(cstring_to_text_with_len(key + API_KEY_TAG_LEN, API_KEY_LOOKUP_LEN));
	values[2] = Int64GetDatum(LookupValue(key + API_KEY_TAG_LEN));
	values[3] = PointerGetDatum(hash);
	values[4] = BoolGetDatum(hmac);
	explicit_bzero(key, sizeof(key));
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}

PG_FUNCTION_INFO_V1(aura_api_key_well_formed);

/*
 * aura.api_key_well_formed(key text) → boolean
 *		Offline check of tag, alphabet, length and checksum: what a secret
 *		scanner does.  Says nothing about whether the key exists.
 */
Datum
aura_api_key_well_formed(PG_FUNCTION_ARGS)
{
	text	   *t;

	if (PG_ARGISNULL(0))
		PG_RETURN_BOOL(false);
	t = PG_GETARG_TEXT_PP(0);
	PG_RETURN_BOOL(KeyWellFormed(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)));
}

PG_FUNCTION_INFO_V1(aura_api_key_secret_status);

/*
 * aura._api_key_secret_status() → text
 *		'hmac' (secret loaded), 'none' (plain SHA-256) or 'broken: <why>'.
 */
Datum
aura_api_key_secret_status(PG_FUNCTION_ARGS)
{
	LoadSecret();
	switch (secret_state)
	{
		case SECRET_HMAC:
			PG_RETURN_TEXT_P(cstring_to_text("hmac"));
		case SECRET_BROKEN:
			PG_RETURN_TEXT_P(cstring_to_text(psprintf("broken: %s", secret_error)));
		default:
			PG_RETURN_TEXT_P(cstring_to_text("none"));
	}
}

PG_FUNCTION_INFO_V1(aura_api_key_stats);

/*
 * aura.api_key_stats() → (verified, failed, scope_denied, rate_limited, shared)
 *		Verification counters since server start (shared) or backend start.
 */
Datum
aura_api_key_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[5];
	bool		nulls[5] = {false, false, false, false, false};
	KeyCounters c;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (keys_shared)
	{
		SpinLockAcquire(&keys_shared->mutex);
		c = keys_shared->counters;
		SpinLockRelease(&keys_shared->mutex);
		c.verified = pg_atomic_read_u64(&keys_shared->verified);
	}
	else
		c = local_counters;
	values[0] = Int64GetDatum((int64) c.verified);
	values[1] = Int64GetDatum((int64) c.failed);
	values[2] = Int64GetDatum((int64) c.scope_denied);
	values[3] = Int64GetDatum((int64) c.rate_limited);
	values[4] = BoolGetDatum(keys_shared != NULL);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}

/*
 * ApiKeysInit
 *		GUCs; shared memory and the secret when preloaded (the postmaster
 *		reads the secret once and every backend inherits the derived HMAC
 *		states); otherwise the secret is read on first use in each backend.
 */
void
ApiKeysInit(void)
{
	DefineCustomStringVariable("aura.api_key_secret_file",
							   "File holding the secret API key hashes are keyed with (hex or base64, >= 32 bytes).",
							   "Read once per server process; change it with a restart.",
							   &secret_file, "", PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("aura.api_key_secret_command",
							   "Command printing the API key hashing secret (used when no file is set).",
							   "Read once per server process; change it with a restart.",
							   &secret_command, "", PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							   NULL, NULL, NULL);
	DefineCustomIntVariable("aura.api_key_failure_threshold",
							"Failed API key verifications per minute that trigger an audit event (0: never).",
							NULL,
							&failure_threshold, 20, 0, 1000000, PGC_SIGHUP, 0,
							NULL, NULL, NULL);
	/*
	 * The rest exists only when preloaded: a PGC_POSTMASTER variable cannot
	 * be defined by a library loaded later.  (The secret GUCs are SIGHUP for
	 * the same reason; each process still reads the secret once.)
	 */
	if (!process_shared_preload_libraries_in_progress)
		return;
	DefineCustomIntVariable("aura.api_key_rate_slots",
							"API keys whose rate limits are tracked in shared memory.",
							"Keys beyond this are limited per backend.",
							&rate_slots, 10000, 100, 10000000, AURA_PGC_POSTMASTER, 0,
							NULL, NULL, NULL);
#if PG_VERSION_NUM >= 150000
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = KeysShmemRequest;
#else
	KeysShmemRequest();
#endif
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = KeysShmemStartup;
	LoadSecret();
	if (secret_state == SECRET_BROKEN)
		ereport(WARNING,
				(errmsg("aura: the API key hashing secret could not be loaded: %s", secret_error)));
}
