/*
 * worker.c
 *	  The aura dispatcher: one background worker per cluster, connected to
 *	  the database aura.database.  Main loop (as pg_cron's):
 *	    check interrupts -> reload config -> claim due messages in a short
 *	    transaction -> send them concurrently outside any transaction ->
 *	    record outcomes in another short transaction -> run due jobs, each
 *	    in its own transaction -> wait on the latch (commits set it) with a
 *	    polling fallback.
 *	  Errors of one batch or one job are logged and recorded; the loop goes on.
 */
#include "postgres.h"

#include <time.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "aura.h"
#include "notify.h"

static volatile sig_atomic_t got_sigterm = false;
static MemoryContext batch_cxt = NULL;
static TimestampTz next_job_check = 0;

/*
 * AuraRegisterWorker
 *		Register the dispatcher with the postmaster (only while preloading).
 *		It restarts 1 s after a crash or after failing to connect.
 */
void
AuraRegisterWorker(void)
{
	BackgroundWorker worker;

	/* pg_upgrade starts servers in binary-upgrade mode: nothing may write then */
	if (IsBinaryUpgrade)
		return;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 1;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "aura");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "AuraWorkerMain");
	snprintf(worker.bgw_name, BGW_MAXLEN, "aura dispatcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "aura dispatcher");
	RegisterBackgroundWorker(&worker);
}

/* SIGTERM: finish or release the batch in hand, then exit */
static void
HandleSigterm(SIGNAL_ARGS)
{
	int			save_errno = errno;

	got_sigterm = true;
	SetLatch(MyLatch);
	errno = save_errno;
}

/* forget this process in shared memory when it exits */
static void
WorkerDetach(int code, Datum arg)
{
	SpinLockAcquire(&aura_worker_shared->mutex);
	if (aura_worker_shared->pid == MyProcPid)
	{
		aura_worker_shared->pid = 0;
		aura_worker_shared->proc = NULL;
		aura_worker_shared->in_flight = 0;
	}
	SpinLockRelease(&aura_worker_shared->mutex);
	AuraChannelsShutdown();
}

/* remember an error for aura.worker_status() */
static void
SetLastError(const char *msg)
{
	SpinLockAcquire(&aura_worker_shared->mutex);
	strlcpy(aura_worker_shared->last_error, msg ? msg : "", sizeof(aura_worker_shared->last_error));
	SpinLockRelease(&aura_worker_shared->mutex);
}

/*
 * ReportAndAbort
 *		In a PG_CATCH: log the error, keep its message for worker_status(),
 *		roll back whatever transaction was open.
 */
static void
ReportAndAbort(MemoryContext cxt, const char *what)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(cxt);
	edata = CopyErrorData();
	FlushErrorState();
	AbortCurrentTransaction();
	ereport(LOG,
			(errmsg("aura dispatcher: %s failed: %s", what, edata->message)));
	SetLastError(edata->message);
	FreeErrorData(edata);
}

/* copy a text[] datum into a palloc'd C string array */
static char **
TextArrayToCStrings(Datum d, int *n)
{
	ArrayType  *arr = DatumGetArrayTypeP(d);
	Datum	   *elems;
	bool	   *nulls;
	int			count;
	char	  **out;
	int			i,
				k = 0;

	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &count);
	out = palloc0(sizeof(char *) * (count + 1));
	for (i = 0; i < count; i++)
		if (!nulls[i])
			out[k++] = TextDatumGetCString(elems[i]);
	*n = k;
	return out;
}

/* a text column of the current SPI row, copied, or NULL */
static char *
GetText(HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

/*
 * AsyncCommit
 *		The claim and record transactions need no WAL flush at commit: if a
 *		crash loses a claim, the messages are simply queued again; if it
 *		loses a recorded outcome, the message is sent again with the same
 *		id.  Both keep delivery at-least-once, and the loop does not wait
 *		for the disk twice per batch.  Jobs keep the server's setting.
 */
static void
AsyncCommit(void)
{
	if (SPI_execute("SET LOCAL synchronous_commit = off", false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "could not set synchronous_commit");
}

/* true when the installed aura has the notifications schema */
static bool
SchemaReady(void)
{
	int			rc;
	bool		isnull;

	if (!OidIsValid(get_extension_oid("aura", true)))
		return false;
	rc = SPI_execute("SELECT to_regprocedure('aura._claim(integer,integer)') IS NOT NULL", true, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		return false;
	return DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * ClaimInTransaction
 *		Inside an open transaction with SPI connected: aura._claim() leases up
 *		to batch_size due messages and renders them.  The requests are built
 *		in batch_cxt.
 */
static AuraRequest *
ClaimInTransaction(int *nreq)
{
	AuraRequest *reqs = NULL;
	int			n = 0;

	if (SchemaReady())
	{
		Oid			argtypes[2] = {INT4OID, INT4OID};
		Datum		args[2] = {Int32GetDatum(aura_batch_size), Int32GetDatum(aura_lease_time)};
		int			rc;

		rc = SPI_execute_with_args("SELECT restaurant_id, id, kind, url, headers, body, username, password, "
								   "mail_from, mail_rcpt, tls, timeout_ms, error FROM aura._claim($1, $2)",
								   2, argtypes, args, NULL, false, 0);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "aura._claim() failed: %d", rc);
		elog(DEBUG2, "aura dispatcher: claimed " UINT64_FORMAT, SPI_processed);
		if (SPI_processed > 0)
		{
			TupleDesc	desc = SPI_tuptable->tupdesc;
			MemoryContext spicxt = MemoryContextSwitchTo(batch_cxt);
			uint64		i;

			reqs = palloc0(sizeof(AuraRequest) * SPI_processed);
			for (i = 0; i < SPI_processed; i++)
			{
				HeapTuple	tup = SPI_tuptable->vals[i];
				AuraRequest *r = &reqs[n++];
				bool		isnull;
				Datum		d;
				char	   *kind;

				r->restaurant_id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
				r->id = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
				kind = GetText(tup, desc, 3);
				r->url = GetText(tup, desc, 4);
				d = SPI_getbinval(tup, desc, 5, &isnull);
				if (!isnull)
					r->headers = TextArrayToCStrings(d, &r->nheaders);
				r->body = GetText(tup, desc, 6);
				r->username = GetText(tup, desc, 7);
				r->password = GetText(tup, desc, 8);
				r->mail_from = GetText(tup, desc, 9);
				d = SPI_getbinval(tup, desc, 10, &isnull);
				if (!isnull)
					r->rcpt = TextArrayToCStrings(d, &r->nrcpt);
				r->tls = GetText(tup, desc, 11);
				d = SPI_getbinval(tup, desc, 12, &isnull);
				r->timeout_ms = isnull ? aura_http_timeout : DatumGetInt32(d);
				if (kind && strcmp(kind, "http") == 0 && r->url)
					r->kind = AURA_REQ_HTTP;
				else if (kind && strcmp(kind, "smtp") == 0 && r->url)
					r->kind = AURA_REQ_SMTP;
				else
				{
					char	   *err = GetText(tup, desc, 13);

					r->kind = AURA_REQ_ERROR;
					r->outcome = AURA_OUT_PERMANENT;
					strlcpy(r->error, err ? err : "message could not be rendered", sizeof(r->error));
				}
			}
			MemoryContextSwitchTo(spicxt);
		}
	}
	*nreq = n;
	return reqs;
}

/*
 * ClaimBatch
 *		One short transaction that only claims (the first batch after an idle
 *		wait; later batches are claimed by RecordBatch in the transaction that
 *		records the previous one).
 */
static AuraRequest *
ClaimBatch(int *nreq)
{
	AuraRequest *volatile reqs = NULL;
	volatile int n = 0;
	MemoryContext oldcxt = CurrentMemoryContext;

	*nreq = 0;
	PG_TRY();
	{
		int			got = 0;

		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, "aura dispatcher: claiming");
		AsyncCommit();
		reqs = ClaimInTransaction(&got);
		n = got;
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		ReportAndAbort(oldcxt, "claiming messages");
		n = 0;
		reqs = NULL;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcxt);
	*nreq = n;
	return reqs;
}

/* name of an outcome for aura._record() */
static const char *
OutcomeName(AuraOutcome o)
{
	switch (o)
	{
		case AURA_OUT_DELIVERED:
			return "delivered";
		case AURA_OUT_GONE:
			return "gone";
		case AURA_OUT_PERMANENT:
			return "permanent";
		case AURA_OUT_RELEASED:
			return "released";
		default:
			return "failed";
	}
}

/*
 * RecordBatch
 *		One short transaction: aura._record() stores every outcome, the
 *		delivery log rows and the endpoints' health.  With claim_next (the
 *		batch was full, so more messages are probably due) the same
 *		transaction then claims the next batch: one commit per batch instead
 *		of two.  The outcomes are copied into the transaction's memory
 *		before batch_cxt is reset for the new batch.  The claim runs in a
 *		subtransaction: if it fails, the outcomes are still committed and
 *		nothing is claimed.  If recording fails the whole transaction rolls
 *		back: the messages stay leased until their lease expires and go again
 *		(at-least-once).
 */
static AuraRequest *
RecordBatch(AuraRequest *reqs, int n, bool claim_next, int *nnext)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	int			i;
	volatile uint64 sent = 0,
				failed = 0;
	AuraRequest *volatile next = NULL;
	volatile int nn = 0;

	*nnext = 0;

	for (i = 0; i < n; i++)
	{
		if (reqs[i].outcome == AURA_OUT_DELIVERED)
			sent++;
		else if (reqs[i].outcome != AURA_OUT_RELEASED)
			failed++;
	}
	PG_TRY();
	{
		Datum	   *rids,
				   *ids,
				   *outcomes,
				   *codes,
				   *errors,
				   *lat;
		bool	   *errnulls;
		int			dims[1] = {n};
		int			lbs[1] = {1};
		Oid			argtypes[6] = {INT8ARRAYOID, INT8ARRAYOID, TEXTARRAYOID, INT4ARRAYOID, TEXTARRAYOID, INT4ARRAYOID};
		Datum		args[6];
		int			rc;

		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, "aura dispatcher: recording outcomes");
		AsyncCommit();
		rids = palloc(sizeof(Datum) * n);
		ids = palloc(sizeof(Datum) * n);
		outcomes = palloc(sizeof(Datum) * n);
		codes = palloc(sizeof(Datum) * n);
		errors = palloc(sizeof(Datum) * n);
		lat = palloc(sizeof(Datum) * n);
		errnulls = palloc(sizeof(bool) * n);
		for (i = 0; i < n; i++)
		{
			rids[i] = Int64GetDatum(reqs[i].restaurant_id);
			ids[i] = Int64GetDatum(reqs[i].id);
			outcomes[i] = CStringGetTextDatum(OutcomeName(reqs[i].outcome));
			codes[i] = Int32GetDatum(reqs[i].code);
			errnulls[i] = reqs[i].error[0] == '\0';
			errors[i] = errnulls[i] ? (Datum) 0 : CStringGetTextDatum(reqs[i].error);
			lat[i] = Int32GetDatum(reqs[i].latency_ms);
		}
		args[0] = PointerGetDatum(construct_array(rids, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		args[1] = PointerGetDatum(construct_array(ids, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		args[2] = PointerGetDatum(construct_array(outcomes, n, TEXTOID, -1, false, TYPALIGN_INT));
		args[3] = PointerGetDatum(construct_array(codes, n, INT4OID, 4, true, TYPALIGN_INT));
		args[4] = PointerGetDatum(construct_md_array(errors, errnulls, 1, dims, lbs, TEXTOID, -1, false, TYPALIGN_INT));
		args[5] = PointerGetDatum(construct_array(lat, n, INT4OID, 4, true, TYPALIGN_INT));
		rc = SPI_execute_with_args("SELECT aura._record($1, $2, $3, $4, $5, $6)",
								   6, argtypes, args, NULL, false, 0);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "aura._record() failed: %d", rc);
		if (claim_next && !got_sigterm)
		{
			MemoryContext cxt = CurrentMemoryContext;
			ResourceOwner owner = CurrentResourceOwner;

			/* the outcomes are stored: the old batch's memory can go */
			MemoryContextReset(batch_cxt);
			pgstat_report_activity(STATE_RUNNING, "aura dispatcher: recording outcomes and claiming");
			/* a failing claim must not undo the recorded outcomes: subtransaction */
			BeginInternalSubTransaction(NULL);
			PG_TRY();
			{
				int			got = 0;

				next = ClaimInTransaction(&got);
				nn = got;
				ReleaseCurrentSubTransaction();
			}
			PG_CATCH();
			{
				ErrorData  *edata;

				MemoryContextSwitchTo(cxt);
				edata = CopyErrorData();
				FlushErrorState();
				RollbackAndReleaseCurrentSubTransaction();
				ereport(LOG, (errmsg("aura dispatcher: claiming messages failed: %s", edata->message)));
				SetLastError(edata->message);
				FreeErrorData(edata);
				MemoryContextReset(batch_cxt);
				next = NULL;
				nn = 0;
			}
			PG_END_TRY();
			MemoryContextSwitchTo(cxt);
			CurrentResourceOwner = owner;
		}
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
		SpinLockAcquire(&aura_worker_shared->mutex);
		aura_worker_shared->sent += sent;
		aura_worker_shared->failed += failed;
		SpinLockRelease(&aura_worker_shared->mutex);
	}
	PG_CATCH();
	{
		/* the messages stay leased; when the lease expires they go again */
		ReportAndAbort(oldcxt, "recording outcomes");
		next = NULL;
		nn = 0;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcxt);
	*nnext = nn;
	return next;
}

/*
 * RunJobs
 *		Run every due job of aura.jobs, each in its own transaction; a
 *		failure is recorded in the job's row and the next job runs.  A job
 *		is a function of schema aura callable without arguments (all of
 *		them have defaults); a set-returning one records its row count.
 */
static void
RunJobs(void)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	List	   *volatile names = NIL;
	List	   *volatile fns = NIL;
	ListCell   *lc1,
			   *lc2;
	TimestampTz now = GetCurrentTimestamp();

	if (now < next_job_check)
		return;
	next_job_check = TimestampTzPlusMilliseconds(now, 1000);

	PG_TRY();
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		if (SchemaReady() &&
			SPI_execute("SELECT j.name, CASE WHEN p.proretset THEN 'SELECT count(*)::text || '' rows'' FROM ' "
						"ELSE 'SELECT ' END || j.fn || '()' "
						"FROM aura.jobs j JOIN pg_catalog.pg_proc p ON p.oid = pg_catalog.to_regproc(j.fn) "
						"WHERE j.enabled AND j.next_run_at <= now() AND p.pronargs = p.pronargdefaults "
						"AND p.pronamespace = 'aura'::regnamespace ORDER BY j.name",
						true, 0) == SPI_OK_SELECT)
		{
			uint64		i;
			MemoryContext spicxt = MemoryContextSwitchTo(batch_cxt);

			for (i = 0; i < SPI_processed; i++)
			{
				names = lappend(names, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
				fns = lappend(fns, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2));
			}
			MemoryContextSwitchTo(spicxt);
		}
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		ReportAndAbort(oldcxt, "listing jobs");
		names = fns = NIL;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcxt);

	forboth(lc1, names, lc2, fns)
	{
		char	   *name = lfirst(lc1);
		char	   *fn = lfirst(lc2);
		char	   *volatile result = NULL;
		char	   *volatile error = NULL;
		Oid			argtypes[3] = {TEXTOID, TEXTOID, TEXTOID};
		Datum		args[3];
		char		nulls[3] = {' ', ' ', ' '};

		if (got_sigterm)
			break;
		PG_TRY();
		{
			SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
			SPI_connect();
			PushActiveSnapshot(GetTransactionSnapshot());
			pgstat_report_activity(STATE_RUNNING, psprintf("aura dispatcher: job %s", name));
			if (SPI_execute(fn, false, 0) != SPI_OK_SELECT)
				elog(ERROR, "job function did not return a row");
			if (SPI_processed > 0)
			{
				char	   *v = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

				result = MemoryContextStrdup(batch_cxt, v ? v : "");
			}
			SPI_finish();
			PopActiveSnapshot();
			CommitTransactionCommand();
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			MemoryContextSwitchTo(oldcxt);
			edata = CopyErrorData();
			FlushErrorState();
			AbortCurrentTransaction();
			error = MemoryContextStrdup(batch_cxt, edata->message);
			ereport(LOG, (errmsg("aura dispatcher: job %s failed: %s", name, edata->message)));
			FreeErrorData(edata);
		}
		PG_END_TRY();
		MemoryContextSwitchTo(oldcxt);

		/* record the run in its own transaction */
		PG_TRY();
		{
			SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
			SPI_connect();
			PushActiveSnapshot(GetTransactionSnapshot());
			args[0] = CStringGetTextDatum(name);
			args[1] = result ? CStringGetTextDatum(result) : (Datum) 0;
			nulls[1] = result ? ' ' : 'n';
			args[2] = error ? CStringGetTextDatum(error) : (Datum) 0;
			nulls[2] = error ? ' ' : 'n';
			SPI_execute_with_args("UPDATE aura.jobs SET last_run_at = now(), next_run_at = now() + every, "
								  "runs = runs + 1, last_ok = $3 IS NULL, last_result = left($2, 200), "
								  "last_error = $3, failures = failures + ($3 IS NOT NULL)::int WHERE name = $1",
								  3, argtypes, args, nulls, false, 0);
			SPI_finish();
			PopActiveSnapshot();
			CommitTransactionCommand();
		}
		PG_CATCH();
		{
			ReportAndAbort(oldcxt, "recording a job run");
		}
		PG_END_TRY();
		MemoryContextSwitchTo(oldcxt);
	}
}

/* wipe secrets of a batch before its memory is reused */
static void
WipeBatch(AuraRequest *reqs, int n)
{
	int			i;

	for (i = 0; i < n; i++)
	{
		if (reqs[i].password)
			explicit_bzero(reqs[i].password, strlen(reqs[i].password));
		if (reqs[i].url)
			explicit_bzero(reqs[i].url, strlen(reqs[i].url));
	}
}

/*
 * AuraWorkerMain
 *		Entry point of the dispatcher background worker.
 */
void
AuraWorkerMain(Datum arg)
{
	MemoryContext loop_cxt;
	AuraRequest *pending = NULL;
	int			pending_n = 0;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, HandleSigterm);
	BackgroundWorkerUnblockSignals();

	if (aura_worker_shared == NULL)
		elog(FATAL, "aura dispatcher: shared memory not initialised");
	SpinLockAcquire(&aura_worker_shared->mutex);
	if (aura_worker_shared->pid != 0 && aura_worker_shared->pid != MyProcPid &&
		kill(aura_worker_shared->pid, 0) == 0)
	{
		SpinLockRelease(&aura_worker_shared->mutex);
		elog(LOG, "aura dispatcher: another dispatcher (pid %d) is running", (int) aura_worker_shared->pid);
		proc_exit(1);			/* try again later: that pid may be gone by then */
	}
	SpinLockRelease(&aura_worker_shared->mutex);

	/* a missing database is FATAL here: the postmaster restarts us in 1 s */
	BackgroundWorkerInitializeConnection(aura_database, NULL, 0);

	SpinLockAcquire(&aura_worker_shared->mutex);
	aura_worker_shared->pid = MyProcPid;
	aura_worker_shared->proc = MyProc;
	aura_worker_shared->started = GetCurrentTimestamp();
	aura_worker_shared->in_flight = 0;
	aura_worker_shared->last_error[0] = '\0';
	SpinLockRelease(&aura_worker_shared->mutex);
	before_shmem_exit(WorkerDetach, (Datum) 0);

	ereport(LOG, (errmsg("aura dispatcher started in database \"%s\"", aura_database)));

	loop_cxt = AllocSetContextCreate(TopMemoryContext, "aura dispatcher loop", ALLOCSET_DEFAULT_SIZES);
	batch_cxt = AllocSetContextCreate(TopMemoryContext, "aura dispatcher batch", ALLOCSET_DEFAULT_SIZES);

	for (;;)
	{
		AuraRequest *reqs;
		int			n;
		bool		full;
		TimestampTz t0;

		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (got_sigterm)
			break;

		MemoryContextSwitchTo(loop_cxt);
		SpinLockAcquire(&aura_worker_shared->mutex);
		aura_worker_shared->last_loop = GetCurrentTimestamp();
		aura_worker_shared->loops++;
		SpinLockRelease(&aura_worker_shared->mutex);

		t0 = GetCurrentTimestamp();
		if (pending_n > 0)
		{
			/* claimed by the transaction that recorded the previous batch */
			reqs = pending;
			n = pending_n;
			pending = NULL;
			pending_n = 0;
		}
		else if (aura_dispatcher_paused)
		{
			/* paused (aura.dispatcher_paused): alive, but claims nothing */
			reqs = NULL;
			n = 0;
		}
		else
		{
			MemoryContextReset(batch_cxt);
			reqs = ClaimBatch(&n);
		}
		full = n >= aura_batch_size;
		if (n > 0)
		{
			TimestampTz t1 = GetCurrentTimestamp(),
						t2;
			int			nn = 0;

			SpinLockAcquire(&aura_worker_shared->mutex);
			aura_worker_shared->in_flight = n;
			SpinLockRelease(&aura_worker_shared->mutex);
			pgstat_report_activity(STATE_RUNNING, "aura dispatcher: sending");
			AuraSendRequests(reqs, n, &got_sigterm);
			t2 = GetCurrentTimestamp();
			WipeBatch(reqs, n);
			pending = RecordBatch(reqs, n, full, &nn);
			pending_n = nn;
			elog(DEBUG1, "aura dispatcher: batch of %d: claim %ld ms, send %ld ms, record %ld ms", n,
				 (long) ((t1 - t0) / 1000), (long) ((t2 - t1) / 1000),
				 (long) ((GetCurrentTimestamp() - t2) / 1000));
			SpinLockAcquire(&aura_worker_shared->mutex);
			aura_worker_shared->in_flight = 0;
			SpinLockRelease(&aura_worker_shared->mutex);
		}
		/* at most once a second, also during a long drain (a claimed batch waits in batch_cxt) */
		if (!aura_dispatcher_paused)
			RunJobs();
		pgstat_report_activity(STATE_IDLE, NULL);
		pgstat_report_stat(true);
		MemoryContextReset(loop_cxt);

		if ((full || pending_n > 0) && !got_sigterm)
			continue;			/* more may be due: no wait */
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 aura_poll_interval, PG_WAIT_EXTENSION);
	}

	/* stopping with a claimed batch not yet sent: give it back to the queue */
	if (pending_n > 0)
	{
		int			i,
					nn;

		for (i = 0; i < pending_n; i++)
		{
			pending[i].outcome = AURA_OUT_RELEASED;
			pending[i].error[0] = '\0';
		}
		WipeBatch(pending, pending_n);
		(void) RecordBatch(pending, pending_n, false, &nn);
	}
	/*
	 * Exit code 1, not 0: a worker that exits 0 is unregistered and never
	 * started again, so a pg_terminate_backend() would stop deliveries for
	 * good.  With 1 the postmaster restarts it after bgw_restart_time; during
	 * a server shutdown it starts no worker anyway.
	 */
	ereport(LOG, (errmsg("aura dispatcher stopping")));
	proc_exit(1);
}
