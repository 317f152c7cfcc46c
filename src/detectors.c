/*
 * detectors.c
 *	  Runs insight detectors: aura.generate_insights() and the dispatcher's
 *	  job aura.run_detectors().
 *
 * A detector is a SQL function (restaurant_id bigint, as_of timestamptz,
 * settings jsonb) returning rows (domain, type, severity, title, details);
 * each row is recorded through aura.record_insight, so threading and dedupe
 * apply.  Every (detector, restaurant) pair runs in its own subtransaction
 * with its own time limit (settings.timeout_ms, default 30 s, never beyond
 * the caller's statement_timeout): a detector that raises or runs too long
 * leaves nothing behind, is recorded in aura.detector_runs, and the others
 * go on.  When the caller's own statement_timeout expires, the run stops
 * with that error, as any statement would.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "context.h"
#include "insights.h"

#define DETECTOR_DEFAULT_TIMEOUT_MS 30000

typedef struct Detector
{
	char	   *name;
	char	   *fn;				/* quoted, schema-qualified function name */
	Datum		settings;		/* jsonb */
	int			timeout_ms;
} Detector;

typedef struct DetectorOutcome
{
	bool		ok;
	int64		insights;
	char	   *error;
	char	   *sqlstate;
	int64		elapsed_ms;
} DetectorOutcome;

/*
 * RunOne
 *		One detector for one restaurant, in a subtransaction with a time
 *		limit.  Errors are caught and returned, except the expiry of the
 *		caller's own statement_timeout, which is re-thrown.
 */
static void
RunOne(Detector *det, int64 restaurant, TimestampTz as_of, DetectorOutcome *out)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	bool		outer_active = get_timeout_active(STATEMENT_TIMEOUT);
	TimestampTz outer_fin = outer_active ? get_timeout_finish_time(STATEMENT_TIMEOUT) : 0;
	TimestampTz start = GetCurrentTimestamp();
	TimestampTz fin = 0;
	StringInfoData sql;
	Oid			types[4] = {INT8OID, TIMESTAMPTZOID, JSONBOID, TEXTOID};
	Datum		values[4];

	memset(out, 0, sizeof(*out));
	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "SELECT aura.record_insight($1, d.domain, d.type, d.severity, d.title, "
					 "(pg_catalog.jsonb_build_object('observed_at', $2) "
					 "|| coalesce(d.details, '{}'::jsonb)) "
					 "|| pg_catalog.jsonb_build_object('generated_by', $4)) "
					 "FROM %s($1, $2, $3) AS d", det->fn);
	values[0] = Int64GetDatum(restaurant);
	values[1] = TimestampTzGetDatum(as_of);
	values[2] = det->settings;
	values[3] = CStringGetTextDatum(psprintf("detector:%s", det->name));

	if (det->timeout_ms > 0)
		fin = TimestampTzPlusMilliseconds(start, det->timeout_ms);
	if (outer_active && (fin == 0 || outer_fin < fin))
		fin = outer_fin;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);

	PG_TRY();
	{
		int			rc;

		if (fin != 0)
			enable_timeout_at(STATEMENT_TIMEOUT, fin);
		rc = SPI_execute_with_args(sql.data, 4, types, values, NULL, false, 0);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "detector query failed: %s", SPI_result_code_string(rc));
		out->insights = (int64) SPI_processed;
		/* a cancel that arrived at the very end still belongs to this detector */
		CHECK_FOR_INTERRUPTS();
		if (fin != 0)
			disable_timeout(STATEMENT_TIMEOUT, false);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
		out->ok = true;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		if (fin != 0)
			disable_timeout(STATEMENT_TIMEOUT, false);
		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;

		/* the caller's statement_timeout is over: stop like any statement */
		if (outer_active && GetCurrentTimestamp() >= outer_fin)
			ReThrowError(edata);

		out->ok = false;
		out->sqlstate = pstrdup(unpack_sql_state(edata->sqlerrcode));
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED && det->timeout_ms > 0 &&
			GetCurrentTimestamp() >= TimestampTzPlusMilliseconds(start, det->timeout_ms))
			out->error = psprintf("detector ran longer than its timeout of %d ms", det->timeout_ms);
		else
			out->error = pstrdup(edata->message ? edata->message : "unknown error");
		FreeErrorData(edata);
	}
	PG_END_TRY();

	/* give the caller's statement_timeout back */
	if (outer_active)
		enable_timeout_at(STATEMENT_TIMEOUT, outer_fin);
	out->elapsed_ms = (GetCurrentTimestamp() - start) / 1000;
}

/*
 * RecordRun
 *		aura._detector_ran(...): the run log and the detector's last state.
 */
static void
RecordRun(Detector *det, int64 restaurant, TimestampTz as_of, DetectorOutcome *o)
{
	Oid			types[8] = {TEXTOID, INT8OID, TIMESTAMPTZOID, BOOLOID, INT8OID, TEXTOID, TEXTOID, INT8OID};
	Datum		values[8];
	char		nulls[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	int			rc;

	values[0] = CStringGetTextDatum(det->name);
	values[1] = Int64GetDatum(restaurant);
	values[2] = TimestampTzGetDatum(as_of);
	values[3] = BoolGetDatum(o->ok);
	values[4] = Int64GetDatum(o->insights);
	if (o->error)
		values[5] = CStringGetTextDatum(o->error);
	else
		nulls[5] = 'n';
	if (o->sqlstate)
		values[6] = CStringGetTextDatum(o->sqlstate);
	else
		nulls[6] = 'n';
	values[7] = Int64GetDatum(o->elapsed_ms);
	rc = SPI_execute_with_args("SELECT aura._detector_ran($1, $2, $3, $4, $5, $6, $7, $8)",
							   8, types, values, nulls, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "recording a detector run failed: %s", SPI_result_code_string(rc));
}

PG_FUNCTION_INFO_V1(aura_run_detectors);

/*
 * aura_run_detectors
 *		aura._run_detectors(restaurant_id, as_of, due_only): run the enabled
 *		detectors (only those due by their schedule when due_only) for one
 *		restaurant or every visible one; one result row per pair.
 */
Datum
aura_run_detectors(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TupleDesc	tupdesc;
	Tuplestorestate *store;
	MemoryContext per_query,
				oldcontext;
	bool		one_restaurant = !PG_ARGISNULL(0);
	int64		restaurant = one_restaurant ? PG_GETARG_INT64(0) : 0;
	TimestampTz as_of;
	bool		due_only = !PG_ARGISNULL(2) && PG_GETARG_BOOL(2);
	Detector   *dets;
	int			ndets;
	int64	   *restaurants;
	int			nrest;
	int			i,
				j;
	int			rc;

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) ||
		(rsinfo->allowedModes & SFRM_Materialize) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("set-valued function called in context that cannot accept a set")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("as_of must not be NULL")));
	as_of = PG_GETARG_TIMESTAMPTZ(1);
	if (TIMESTAMP_NOT_FINITE(as_of))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("as_of must be a finite timestamp")));

	if (one_restaurant)
		InsightsCheckTenant(restaurant);
	else if (!AuraIsAdmin())
	{
		/* a tenant runs its own restaurant only */
		if (!AuraCurrentRestaurant(&restaurant))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("no restaurant in context"),
					 errhint("Call aura.set_context(restaurant_id) first, or pass restaurant_id.")));
		one_restaurant = true;
	}

	per_query = rsinfo->econtext->ecxt_per_query_memory;
	oldcontext = MemoryContextSwitchTo(per_query);
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = CreateTupleDescCopy(tupdesc);
	store = tuplestore_begin_heap(true, false, work_mem);
	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult = store;
	rsinfo->setDesc = tupdesc;
	MemoryContextSwitchTo(oldcontext);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	/* the detectors to run */
	{
		Oid			types[2] = {TIMESTAMPTZOID, BOOLOID};
		Datum		values[2];

		values[0] = TimestampTzGetDatum(as_of);
		values[1] = BoolGetDatum(due_only);
		rc = SPI_execute_with_args(
								   "SELECT d.name, pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(p.proname), "
								   "d.settings, coalesce((d.settings ->> 'timeout_ms')::integer, -1) "
								   "FROM aura.insight_detectors d "
								   "JOIN pg_catalog.pg_proc p ON p.oid = pg_catalog.to_regprocedure(d.function) "
								   "JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace "
								   "WHERE d.enabled AND (NOT $2 OR d.last_run_at IS NULL "
								   "OR d.last_run_at + d.schedule <= $1) ORDER BY d.name",
								   2, types, values, NULL, true, 0);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "reading detectors failed: %s", SPI_result_code_string(rc));
		ndets = (int) SPI_processed;
		dets = palloc0(sizeof(Detector) * Max(ndets, 1));
		for (i = 0; i < ndets; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			TupleDesc	td = SPI_tuptable->tupdesc;
			bool		isnull;
			int			t;

			dets[i].name = SPI_getvalue(tup, td, 1);
			dets[i].fn = SPI_getvalue(tup, td, 2);
			dets[i].settings = PointerGetDatum(DatumGetJsonbPCopy(SPI_getbinval(tup, td, 3, &isnull)));
			t = DatumGetInt32(SPI_getbinval(tup, td, 4, &isnull));
			dets[i].timeout_ms = t < 0 ? DETECTOR_DEFAULT_TIMEOUT_MS : t;
		}
	}

	/* the restaurants to run them for */
	if (one_restaurant)
	{
		restaurants = palloc(sizeof(int64));
		restaurants[0] = restaurant;
		nrest = 1;
	}
	else
	{
		rc = SPI_execute("SELECT id FROM aura.restaurants ORDER BY id", true, 0);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "reading restaurants failed: %s", SPI_result_code_string(rc));
		nrest = (int) SPI_processed;
		restaurants = palloc(sizeof(int64) * Max(nrest, 1));
		for (i = 0; i < nrest; i++)
		{
			bool		isnull;

			restaurants[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
														 SPI_tuptable->tupdesc, 1, &isnull));
		}
	}

	for (i = 0; i < ndets; i++)
	{
		for (j = 0; j < nrest; j++)
		{
			DetectorOutcome o;
			Datum		values[5];
			bool		nulls[5] = {false, false, false, false, false};

			CHECK_FOR_INTERRUPTS();
			RunOne(&dets[i], restaurants[j], as_of, &o);
			RecordRun(&dets[i], restaurants[j], as_of, &o);

			values[0] = CStringGetTextDatum(dets[i].name);
			values[1] = Int64GetDatum(restaurants[j]);
			values[2] = BoolGetDatum(o.ok);
			values[3] = Int64GetDatum(o.insights);
			if (o.error)
				values[4] = CStringGetTextDatum(o.error);
			else
				nulls[4] = true;
			oldcontext = MemoryContextSwitchTo(per_query);
			tuplestore_putvalues(store, tupdesc, values, nulls);
			MemoryContextSwitchTo(oldcontext);
		}
	}

	SPI_finish();
	return (Datum) 0;
}
