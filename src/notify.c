/*
 * notify.c
 *	  Notifications module: GUCs, the dispatcher's shared memory, the
 *	  wake-at-commit callback, Standard Webhooks signatures and the status
 *	  functions.  The worker itself is in worker.c, the senders in channels.c.
 */
#include "postgres.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "commands/trigger.h"
#include "common/base64.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "aura.h"
#include "notify.h"
#include "settings.h"

int			aura_max_concurrency = 64;
int			aura_http_timeout = 10000;
int			aura_batch_size = 500;
int			aura_lease_time = 120;
bool		aura_dispatcher_paused = false;
int			aura_poll_interval = 1000;
char	   *aura_ca_file = NULL;
bool		aura_http_deny_private = true;
char	   *aura_http_allow_hosts = NULL;
static char *notify_secret_key = NULL;
static char *retry_schedule = NULL;
static int	webhook_disable_after = 20;
static int	retention_days = 30;

AuraWorkerShared *aura_worker_shared = NULL;

/* set by the outbox trigger; the commit callback wakes the worker */
static bool wake_at_commit = false;

#if PG_VERSION_NUM >= 150000
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/*
 * CheckRetrySchedule
 *		GUC check hook: a comma-separated list of 1 to 10 delays in seconds.
 */
static bool
CheckRetrySchedule(char **newval, void **extra, GucSource source)
{
	const char *p = *newval;
	int			count = 0;

	if (p == NULL || *p == '\0')
	{
		GUC_check_errdetail("The retry schedule must list at least one delay.");
		return false;
	}
	while (*p)
	{
		char	   *end;
		double		v = strtod(p, &end);

		if (end == p || v < 0 || v > 604800)
		{
			GUC_check_errdetail("Delays are numbers of seconds between 0 and 604800, separated by commas.");
			return false;
		}
		count++;
		p = end;
		while (*p == ' ')
			p++;
		if (*p == ',')
			p++;
		else if (*p != '\0')
		{
			GUC_check_errdetail("Delays are numbers of seconds between 0 and 604800, separated by commas.");
			return false;
		}
	}
	if (count > 10)
	{
		GUC_check_errdetail("At most 10 retry delays.");
		return false;
	}
	return true;
}

/* shared memory size of the dispatcher state */
static void
NotifyShmemRequest(void)
{
#if PG_VERSION_NUM >= 150000
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
#endif
	RequestAddinShmemSpace(MAXALIGN(sizeof(AuraWorkerShared)));
}

/* create or attach the dispatcher state */
static void
NotifyShmemStartup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	aura_worker_shared = ShmemInitStruct("aura dispatcher", sizeof(AuraWorkerShared), &found);
	if (!found)
	{
		memset(aura_worker_shared, 0, sizeof(AuraWorkerShared));
		SpinLockInit(&aura_worker_shared->mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * NotifyXactCallback
 *		At commit of a transaction that queued messages, set the worker's
 *		latch: delivery starts right away instead of at the next poll.
 */
static void
NotifyXactCallback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (wake_at_commit && aura_worker_shared != NULL)
			{
				PGPROC	   *proc;

				SpinLockAcquire(&aura_worker_shared->mutex);
				proc = aura_worker_shared->proc;
				SpinLockRelease(&aura_worker_shared->mutex);
				if (proc != NULL && proc != MyProc)
					SetLatch(&proc->procLatch);
			}
			wake_at_commit = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			wake_at_commit = false;
			break;
		default:
			break;
	}
}

/*
 * NotifyInit
 *		GUCs of the notifications module; shared memory and the worker when
 *		aura is preloaded.
 */
void
NotifyInit(void)
{
	DefineCustomIntVariable("aura.max_concurrency",
							"Requests the dispatcher sends at the same time.",
							NULL, &aura_max_concurrency, 64, 1, 1024,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("aura.http_timeout",
							"Default timeout of one delivery (HTTP or SMTP).",
							"Webhooks have their own timeout_ms.",
							&aura_http_timeout, 10000, 100, 600000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("aura.batch_size",
							"Messages the dispatcher claims per batch.",
							NULL, &aura_batch_size, 500, 1, 10000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("aura.lease_time",
							"How long a claimed message stays leased to the dispatcher.",
							"A lease that expires (the worker died while sending) is claimed again.",
							&aura_lease_time, 120, 2, 3600,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("aura.poll_interval",
							"Polling fallback of the dispatcher when no commit wakes it.",
							NULL, &aura_poll_interval, 1000, 10, 60000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomBoolVariable("aura.dispatcher_paused",
							 "Pause the dispatcher: it stays running but claims no message and runs no job.",
							 "For maintenance, and for test clusters (pg_regress) where deliveries and jobs must not fire.",
							 &aura_dispatcher_paused, false,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("aura.ca_file",
							   "CA bundle for TLS verification of deliveries (empty: the system's).",
							   NULL, &aura_ca_file, "",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("aura.http_deny_private",
							 "Refuse deliveries to loopback, private and link-local addresses.",
							 "Checked on the address DNS resolution gives; aura.http_allow_hosts names exceptions.",
							 &aura_http_deny_private, true,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("aura.http_allow_hosts",
							   "Comma-separated host names exempt from aura.http_deny_private.",
							   NULL, &aura_http_allow_hosts, "",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("aura.retry_schedule",
							   "Delays in seconds before the retries of a failed delivery.",
							   "Default: the Standard Webhooks schedule; jitter of +-20% is added.",
							   &retry_schedule, "5,300,1800,7200,18000,36000,36000",
							   PGC_SIGHUP, 0, CheckRetrySchedule, NULL, NULL);
	DefineCustomIntVariable("aura.webhook_disable_after",
							"Dead-lettered messages in a row after which a webhook is disabled.",
							"Retries that are still pending do not count; a success resets the streak.", &webhook_disable_after, 20, 1, 1000000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("aura.notification_retention_days",
							"Days delivered and dead messages and the delivery log are kept.",
							NULL, &retention_days, 30, 1, 3650,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("aura.notify_secret_key",
							   "Key that encrypts notification channel and webhook secrets.",
							   NULL, &notify_secret_key, "",
							   PGC_SUSET, GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL,
							   NULL, NULL, NULL);

	RegisterXactCallback(NotifyXactCallback, NULL);

	if (!process_shared_preload_libraries_in_progress)
		return;

#if PG_VERSION_NUM >= 150000
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = NotifyShmemRequest;
#else
	NotifyShmemRequest();
#endif
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = NotifyShmemStartup;

	AuraRegisterWorker();
}

PG_FUNCTION_INFO_V1(aura_wake_dispatcher);

/* statement trigger on the outbox: wake the dispatcher at commit */
Datum
aura_wake_dispatcher(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("aura._wake_dispatcher() must be called as a trigger")));
	wake_at_commit = true;
	return PointerGetDatum(NULL);
}

PG_FUNCTION_INFO_V1(aura_webhook_sign);

/*
 * aura_webhook_sign
 *		Standard Webhooks signature: "v1," + base64(HMAC-SHA256(key,
 *		msg_id "." ts "." body)) where the secret is "whsec_" + base64(key).
 */
Datum
aura_webhook_sign(PG_FUNCTION_ARGS)
{
	text	   *secret_t = PG_GETARG_TEXT_PP(0);
	text	   *msgid_t = PG_GETARG_TEXT_PP(1);
	int64		ts = PG_GETARG_INT64(2);
	text	   *body_t = PG_GETARG_TEXT_PP(3);
	const char *secret = VARDATA_ANY(secret_t);
	int			secret_len = VARSIZE_ANY_EXHDR(secret_t);
	const char *msgid = VARDATA_ANY(msgid_t);
	int			msgid_len = VARSIZE_ANY_EXHDR(msgid_t);
	int			body_len = VARSIZE_ANY_EXHDR(body_t);
	unsigned char key[1024];
	int			key_len;
	char		tsbuf[32];
	int			ts_len;
	StringInfoData content;
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int mac_len = 0;
	char	   *out;
	int			out_len;

	if (secret_len < 7 || strncmp(secret, "whsec_", 6) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("webhook secret must start with \"whsec_\""),
				 errhint("Secrets are whsec_ followed by the base64 of the key.")));
	if (secret_len - 6 > (int) (sizeof(key) * 4 / 3))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("webhook secret too long"),
				 errdetail("%d characters, at most %d", secret_len, (int) (sizeof(key) * 4 / 3) + 6)));
	if (msgid_len == 0 || msgid_len > 255)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("message id must have 1 to 255 characters")));
	if (ts < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("timestamp must not be negative"),
				 errdetail("timestamp: " INT64_FORMAT, ts)));
	key_len = pg_b64_decode(secret + 6, secret_len - 6, (char *) key, sizeof(key));
	if (key_len <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("webhook secret is not valid base64 after \"whsec_\"")));

	ts_len = snprintf(tsbuf, sizeof(tsbuf), INT64_FORMAT, ts);
	initStringInfo(&content);
	appendBinaryStringInfo(&content, msgid, msgid_len);
	appendStringInfoChar(&content, '.');
	appendBinaryStringInfo(&content, tsbuf, ts_len);
	appendStringInfoChar(&content, '.');
	appendBinaryStringInfo(&content, VARDATA_ANY(body_t), body_len);

	if (HMAC(EVP_sha256(), key, key_len, (unsigned char *) content.data, content.len,
			 mac, &mac_len) == NULL)
		elog(ERROR, "HMAC-SHA256 failed");
	explicit_bzero(key, sizeof(key));
	pfree(content.data);

	out = palloc(3 + pg_b64_enc_len(mac_len) + 1);
	memcpy(out, "v1,", 3);
	out_len = pg_b64_encode((char *) mac, mac_len, out + 3, pg_b64_enc_len(mac_len));
	if (out_len < 0)
		elog(ERROR, "base64 encoding failed");
	out[3 + out_len] = '\0';
	PG_RETURN_TEXT_P(cstring_to_text(out));
}

PG_FUNCTION_INFO_V1(aura_new_webhook_secret);

/* a new webhook secret: whsec_ + base64 of 32 strong random bytes */
Datum
aura_new_webhook_secret(PG_FUNCTION_ARGS)
{
	unsigned char key[32];
	char		out[6 + 64];
	int			len;

	if (!pg_strong_random(key, sizeof(key)))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate random bytes for a webhook secret")));
	memcpy(out, "whsec_", 6);
	len = pg_b64_encode((char *) key, sizeof(key), out + 6, sizeof(out) - 7);
	explicit_bzero(key, sizeof(key));
	if (len < 0)
		elog(ERROR, "base64 encoding failed");
	out[6 + len] = '\0';
	PG_RETURN_TEXT_P(cstring_to_text(out));
}

PG_FUNCTION_INFO_V1(aura_worker_shmem);

/* the dispatcher's shared state as a row; all NULL when it is not running */
Datum
aura_worker_shmem(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[8];
	bool		nulls[8];
	AuraWorkerShared snap;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	memset(nulls, true, sizeof(nulls));
	if (aura_worker_shared != NULL)
	{
		SpinLockAcquire(&aura_worker_shared->mutex);
		memcpy(&snap, aura_worker_shared, sizeof(snap));
		SpinLockRelease(&aura_worker_shared->mutex);
		if (snap.pid != 0)
		{
			values[0] = Int32GetDatum(snap.pid);
			values[1] = TimestampTzGetDatum(snap.started);
			values[2] = TimestampTzGetDatum(snap.last_loop);
			values[3] = Int32GetDatum(snap.in_flight);
			memset(nulls, false, 4 * sizeof(bool));
		}
		values[4] = Int64GetDatum((int64) snap.sent);
		values[5] = Int64GetDatum((int64) snap.failed);
		values[6] = Int64GetDatum((int64) snap.loops);
		nulls[4] = nulls[5] = nulls[6] = false;
		if (snap.last_error[0] != '\0')
		{
			snap.last_error[sizeof(snap.last_error) - 1] = '\0';
			values[7] = CStringGetTextDatum(snap.last_error);
			nulls[7] = false;
		}
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * aura_channel_setting_secret
 *		aura._channel_setting_secret(key, restaurant_id): the plaintext of a
 *		notifications.* secret setting of a restaurant (decrypted with the
 *		settings master key), NULL when it has no value.  Only the dispatcher
 *		calls it, while rendering a claimed message; granted to nobody, and it
 *		refuses keys outside notifications.* so it cannot reveal other secrets.
 */
PG_FUNCTION_INFO_V1(aura_channel_setting_secret);
Datum
aura_channel_setting_secret(PG_FUNCTION_ARGS)
{
	char	   *key;
	char	   *plain = NULL;
	int			len = 0;
	text	   *result;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	key = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (strncmp(key, "notifications.", strlen("notifications.")) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("only notifications.* settings are read for channels"),
				 errdetail("key: %s", key)));
	if (!AuraGetSecretSetting(key, PG_GETARG_INT64(1), 0, 0, &plain, &len))
		PG_RETURN_NULL();
	result = cstring_to_text_with_len(plain, len);
	explicit_bzero(plain, len);
	pfree(plain);
	PG_RETURN_TEXT_P(result);
}
