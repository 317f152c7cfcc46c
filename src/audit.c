/*
 * audit.c
 *	  The queue of audit events that must outlive their transaction.
 *
 * A failed API key verification or a denied call ends in an ERROR, and an
 * ERROR rolls back whatever the transaction wrote, including an INSERT into
 * aura.audit_log.  Such events are therefore queued outside the transaction:
 * in a ring in shared memory when aura is preloaded (seen by every backend),
 * else in a ring in this backend.  The queue is appended to aura.audit_log by
 * the next transaction that can write and touches aura's security code: a
 * successful verification, aura.audit(), aura.audit_flush() (also meant for
 * a periodic job).  When the ring is full the oldest events are dropped and
 * the drop is counted, and the count is itself recorded as an event.
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "aura.h"
#include "audit.h"

#define AUDIT_RING			128
#define AUDIT_EVENT_MAX		64
#define AUDIT_DETAILS_MAX	480

typedef struct PendingEvent
{
	TimestampTz at;
	int64		restaurant_id;
	Oid			roleid;
	char		event[AUDIT_EVENT_MAX];
	char		details[AUDIT_DETAILS_MAX];
} PendingEvent;

typedef struct AuditQueue
{
	LWLock	   *lock;			/* NULL in the backend-local queue */
	int			head;			/* index of the oldest event */
	int			count;
	uint64		dropped;
	PendingEvent events[AUDIT_RING];
} AuditQueue;

static AuditQueue *shared_queue = NULL;
static AuditQueue *local_queue = NULL;

#if PG_VERSION_NUM >= 150000
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
AuditShmemRequest(void)
{
#if PG_VERSION_NUM >= 150000
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
#endif
	RequestAddinShmemSpace(MAXALIGN(sizeof(AuditQueue)));
	RequestNamedLWLockTranche("aura_audit", 1);
}

static void
AuditShmemStartup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared_queue = ShmemInitStruct("aura audit queue", sizeof(AuditQueue), &found);
	if (!found)
	{
		memset(shared_queue, 0, sizeof(AuditQueue));
		shared_queue->lock = &(GetNamedLWLockTranche("aura_audit"))->lock;
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * AuditInit
 *		Ask for the shared queue when preloaded; otherwise the backend-local
 *		queue is created on first use.
 */
void
AuditInit(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;
#if PG_VERSION_NUM >= 150000
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = AuditShmemRequest;
#else
	AuditShmemRequest();
#endif
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = AuditShmemStartup;
}

static AuditQueue *
Queue(void)
{
	if (shared_queue != NULL)
		return shared_queue;
	if (local_queue == NULL)
		local_queue = MemoryContextAllocZero(TopMemoryContext, sizeof(AuditQueue));
	return local_queue;
}

static void
QueueLock(AuditQueue *q, LWLockMode mode)
{
	if (q->lock)
		LWLockAcquire(q->lock, mode);
}

static void
QueueUnlock(AuditQueue *q)
{
	if (q->lock)
		LWLockRelease(q->lock);
}

void
AuraAuditLater(const char *event, int64 restaurant_id, const char *details_json)
{
	AuditQueue *q = Queue();
	PendingEvent *e;

	QueueLock(q, LW_EXCLUSIVE);
	if (q->count == AUDIT_RING)
	{
		q->head = (q->head + 1) % AUDIT_RING;
		q->count--;
		q->dropped++;
	}
	e = &q->events[(q->head + q->count) % AUDIT_RING];
	e->at = GetCurrentTimestamp();
	e->restaurant_id = restaurant_id;
	e->roleid = GetOuterUserId();
	strlcpy(e->event, event, AUDIT_EVENT_MAX);
	if (details_json == NULL || strlen(details_json) >= AUDIT_DETAILS_MAX)
		strlcpy(e->details, details_json == NULL ? "{}" : "{\"truncated\": true}",
				AUDIT_DETAILS_MAX);
	else
		strlcpy(e->details, details_json, AUDIT_DETAILS_MAX);
	q->count++;
	QueueUnlock(q);
}

bool
AuraAuditPending(void)
{
	AuditQueue *q = shared_queue ? shared_queue : local_queue;

	/* an unlocked read: a stale answer only delays the flush */
	return q != NULL && (q->count > 0 || q->dropped > 0);
}

void
AuraOwnerBegin(Oid owner, AuraOwnerState *state)
{
	GetUserIdAndSecContext(&state->saved_user, &state->saved_sec);
	SetUserIdAndSecContext(owner, state->saved_sec | SECURITY_LOCAL_USERID_CHANGE);
}

void
AuraOwnerEnd(AuraOwnerState *state)
{
	SetUserIdAndSecContext(state->saved_user, state->saved_sec);
}

bool
AuraTryInSubxact(void (*fn) (void *), void *arg)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	volatile bool ok = true;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
		ereport(DEBUG1,
				(errmsg("aura: bookkeeping deferred: %s", edata->message)));
		FreeErrorData(edata);
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

/* put events back at the front of the queue (a flush that failed) */
static void
Requeue(PendingEvent *batch, int n)
{
	AuditQueue *q = Queue();
	int			i;

	QueueLock(q, LW_EXCLUSIVE);
	for (i = n - 1; i >= 0; i--)
	{
		if (q->count == AUDIT_RING)
		{
			q->dropped++;
			continue;
		}
		q->head = (q->head + AUDIT_RING - 1) % AUDIT_RING;
		q->events[q->head] = batch[i];
		q->count++;
	}
	QueueUnlock(q);
}

typedef struct FlushBatch
{
	PendingEvent *events;
	int			n;
	uint64		dropped;
	Oid			owner;
} FlushBatch;

/* the INSERTs of one flush, as the table owner */
static void
InsertBatch(void *arg)
{
	FlushBatch *b = (FlushBatch *) arg;
	AuraOwnerState st;
	int			i;

	AuraOwnerBegin(b->owner, &st);
	PG_TRY();
	{
		Oid			types[5] = {INT8OID, TIMESTAMPTZOID, TEXTOID, TEXTOID, TEXTOID};
		SPIPlanPtr	plan;

		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		plan = SPI_prepare("INSERT INTO aura.audit_log (restaurant_id, at, event, actor_role, details) "
						   "VALUES ($1, $2, $3, $4, $5::jsonb)", 5, types);
		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		for (i = 0; i <= b->n; i++)
		{
			Datum		values[5];
			char	   *role;

			if (i == b->n)
			{
				if (b->dropped == 0)
					break;
				values[0] = Int64GetDatum(0);
				values[1] = TimestampTzGetDatum(GetCurrentTimestamp());
				values[2] = CStringGetTextDatum("audit.events_dropped");
				values[3] = CStringGetTextDatum("aura");
				values[4] = CStringGetTextDatum(psprintf("{\"dropped\": " UINT64_FORMAT "}", b->dropped));
			}
			else
			{
				role = GetUserNameFromId(b->events[i].roleid, true);
				values[0] = Int64GetDatum(b->events[i].restaurant_id);
				values[1] = TimestampTzGetDatum(b->events[i].at);
				values[2] = CStringGetTextDatum(b->events[i].event);
				values[3] = CStringGetTextDatum(role ? role : "(dropped role)");
				values[4] = CStringGetTextDatum(b->events[i].details);
			}
			if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_INSERT)
				elog(ERROR, "could not append to aura.audit_log");
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
 * AuraAuditFlush
 *		Move the queue into aura.audit_log, in a subtransaction: a failure
 *		puts the events back and never reaches the caller.  Does nothing
 *		where a write is impossible (read-only transaction, standby, parallel
 *		worker) or the table does not exist (extension being created or
 *		dropped).
 */
void
AuraAuditFlush(void)
{
	AuditQueue *q;
	FlushBatch	b;
	Oid			nsp;
	Oid			relid;
	HeapTuple	tp;
	int			i;

	if (!AuraAuditPending() || !IsTransactionState() || XactReadOnly ||
		RecoveryInProgress() || IsInParallelMode())
		return;
	nsp = get_namespace_oid("aura", true);
	relid = OidIsValid(nsp) ? get_relname_relid("audit_log", nsp) : InvalidOid;
	if (!OidIsValid(relid))
		return;
	tp = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tp))
		return;
	b.owner = ((Form_pg_class) GETSTRUCT(tp))->relowner;
	ReleaseSysCache(tp);

	q = Queue();
	b.events = palloc(sizeof(PendingEvent) * AUDIT_RING);
	QueueLock(q, LW_EXCLUSIVE);
	b.n = q->count;
	for (i = 0; i < b.n; i++)
		b.events[i] = q->events[(q->head + i) % AUDIT_RING];
	b.dropped = q->dropped;
	q->head = 0;
	q->count = 0;
	q->dropped = 0;
	QueueUnlock(q);

	if (!AuraTryInSubxact(InsertBatch, &b))
	{
		Requeue(b.events, b.n);
		if (b.dropped > 0)
		{
			QueueLock(q, LW_EXCLUSIVE);
			q->dropped += b.dropped;
			QueueUnlock(q);
		}
	}
	pfree(b.events);
}

PG_FUNCTION_INFO_V1(aura_audit_later);

/*
 * aura._audit_later(event text, details jsonb, restaurant_id bigint)
 *		Queue an event that must survive the ERROR the caller raises next
 *		(e.g. a denied call).  Not granted to any role: SECURITY DEFINER
 *		functions of aura call it.
 */
Datum
aura_audit_later(PG_FUNCTION_ARGS)
{
	char	   *event;
	char	   *details = NULL;
	int64		restaurant_id = 0;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("audit event name must not be NULL")));
	event = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (strlen(event) == 0 || strlen(event) >= AUDIT_EVENT_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("audit event name must have 1 to %d characters", AUDIT_EVENT_MAX - 1)));
	if (!PG_ARGISNULL(1))
		details = JsonbToCString(NULL, &PG_GETARG_JSONB_P(1)->root, 0);
	if (!PG_ARGISNULL(2))
		restaurant_id = PG_GETARG_INT64(2);
	AuraAuditLater(event, restaurant_id, details);
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(aura_audit_flush);

/*
 * aura.audit_flush(): append queued events now; returns how many were waiting
 */
Datum
aura_audit_flush(PG_FUNCTION_ARGS)
{
	AuditQueue *q = Queue();
	int			n;

	if (XactReadOnly || RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot flush the audit queue in a read-only transaction")));
	QueueLock(q, LW_SHARED);
	n = q->count;
	QueueUnlock(q);
	AuraAuditFlush();
	PG_RETURN_INT32(n);
}

PG_FUNCTION_INFO_V1(aura_caller);

/*
 * aura._caller() → name
 *		The role acting for the session (SET ROLE / login), which SECURITY
 *		DEFINER does not change: inside a SECURITY DEFINER function
 *		current_user describes the owner, not the caller.
 */
Datum
aura_caller(PG_FUNCTION_ARGS)
{
	char	   *name = GetUserNameFromId(GetOuterUserId(), false);

	PG_RETURN_DATUM(DirectFunctionCall1(namein, CStringGetDatum(name)));
}

PG_FUNCTION_INFO_V1(aura_audit_pending);

/* aura._audit_pending(): events waiting in the queue (for tests and checks) */
Datum
aura_audit_pending(PG_FUNCTION_ARGS)
{
	AuditQueue *q = Queue();
	int			n;

	QueueLock(q, LW_SHARED);
	n = q->count;
	QueueUnlock(q);
	PG_RETURN_INT32(n);
}
