/*
 * insights.c
 *	  aura.record_insight(): validation of an insight, its fingerprint, and
 *	  the threading that groups repeats of the same finding.
 *
 * Threading: the fingerprint of an insight is a 64-bit hash of (restaurant,
 * type, domain, related entity).  A new insight joins the newest open thread
 * with that fingerprint when the thread's last insight is within
 * insights.thread_window of it; otherwise it opens a new thread.  A repeat
 * within insights.dedupe_window with the same title does not add an insight:
 * it bumps the occurrence count of the existing one.
 *
 * Every lookup is an index probe through a kept SPI plan (the partial index
 * insight_threads_probe, and insights_thread), so the cost of recording does
 * not grow with the size of the tables.  A transaction-level advisory lock on
 * the fingerprint serialises concurrent recordings of the same finding, so
 * two sessions never open two threads for it.
 */
#include "postgres.h"

#include <ctype.h>
#include <math.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "access/htup_details.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "aura.h"
#include "context.h"
#include "insights.h"
#include "insights_config.h"

/* at most this many occurrence times are kept per thread for recurrence */
#define RECENT_KEEP 8
/* recurrence needs at least this many gaps */
#define RECURRENCE_MIN_GAPS 3

static const char *const insight_domains[] = {
	"sales", "inventory", "staff", "customer", "operations", "finance", "marketing", "loyalty", NULL
};
static const char *const insight_types[] = {
	"performance", "trend", "anomaly", "optimization", "warning", "opportunity", NULL
};
/* ordered: index + 1 is the rank of aura._severity_rank() reversed */
static const char *const insight_severities[] = {
	"critical", "high", "medium", "low", "info", NULL
};

/* the optional parts of an insight, from the details jsonb */
typedef struct InsightDetails
{
	Datum		description;
	bool		description_null;
	Datum		impact_score;
	bool		impact_score_null;
	Datum		estimated_value;
	bool		estimated_value_null;
	Datum		confidence;
	bool		confidence_null;
	Datum		recommendations;
	bool		recommendations_null;
	Datum		metrics;
	bool		metrics_null;
	Datum		trend;
	bool		trend_null;
	Datum		comparison;
	bool		comparison_null;
	Datum		period_start;
	bool		period_start_null;
	Datum		period_end;
	bool		period_end_null;
	Datum		location_id;
	bool		location_id_null;
	Datum		entity_type;
	bool		entity_type_null;
	Datum		entity_id;
	bool		entity_id_null;
	Datum		parent_id;
	bool		parent_id_null;
	Datum		generated_by;
	bool		generated_by_null;
	Datum		expires_at;
	bool		expires_at_null;
	TimestampTz observed_at;
	char	   *entity_type_str;
	char	   *entity_id_str;
} InsightDetails;

/* kept SPI plans, prepared on first use in this backend */
enum
{
	PLAN_RESTAURANT,
	PLAN_PROBE,
	PLAN_DEDUPE,
	PLAN_BUMP,
	PLAN_THREAD_INSERT,
	PLAN_THREAD_UPDATE,
	PLAN_INSERT,
	PLAN_EVENT,
	PLAN_COUNT
};
static SPIPlanPtr plans[PLAN_COUNT];

/* joins and repeats update the thread the same way; NULLs keep a column */
static const char *const thread_update_sql =
"UPDATE aura.insight_threads SET insight_count = $3, "
"first_seen = least(first_seen, $4), last_seen = greatest(last_seen, $4), "
"max_severity = $5, total_estimated_value = total_estimated_value + $6, "
"recent_seen = coalesce($7, recent_seen), "
"is_recurring = coalesce($8, is_recurring), "
"recurrence_period = CASE WHEN $8 IS NULL THEN recurrence_period ELSE $9 END, "
"category = coalesce($10, category) "
"WHERE restaurant_id = $1 AND id = $2";

/*
 * InsightEnumIndex
 *		Position of value in a NULL-terminated list, or -1.
 */
static int
InsightEnumIndex(const char *const *list, const char *value)
{
	int			i;

	for (i = 0; list[i] != NULL; i++)
		if (strcmp(list[i], value) == 0)
			return i;
	return -1;
}

/*
 * CheckEnum
 *		Raise 22023 unless value is one of list; returns its position.
 */
static int
CheckEnum(const char *what, const char *const *list, text *value)
{
	char	   *s;
	int			idx;
	StringInfoData allowed;
	int			i;

	if (value == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("insight %s must not be NULL", what)));
	s = text_to_cstring(value);
	idx = InsightEnumIndex(list, s);
	if (idx >= 0)
		return idx;
	initStringInfo(&allowed);
	for (i = 0; list[i] != NULL; i++)
		appendStringInfo(&allowed, "%s%s", i ? ", " : "", list[i]);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown insight %s \"%.64s\"", what, s),
			 errhint("Known values: %s.", allowed.data)));
	return -1;					/* keep compiler quiet */
}

/* error context: which details key was being read */
static void
DetailsErrorContext(void *arg)
{
	errcontext("insight details key \"%s\"", (const char *) arg);
}

static void
WrongType(const char *key, const char *want, JsonbValue *v)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("insight details key \"%s\" must be %s", key, want),
			 errdetail("Got a JSON %s.", JsonbTypeName(v))));
}

static double
NumericToDouble(Numeric n)
{
	return DatumGetFloat8(DirectFunctionCall1(numeric_float8, NumericGetDatum(n)));
}

/* a number within [lo, hi] as numeric */
static Datum
DetailNumber(const char *key, JsonbValue *v, double lo, double hi)
{
	double		d;

	if (v->type != jbvNumeric)
		WrongType(key, "a number", v);
	d = NumericToDouble(v->val.numeric);
	if (!(d >= lo && d <= hi))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("insight %s is out of range", key),
				 errdetail("Got %s; allowed %g to %g.",
						   DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric))),
						   lo, hi)));
	return NumericGetDatum(v->val.numeric);
}

/* a positive integer id as int8 */
static Datum
DetailId(const char *key, JsonbValue *v)
{
	double		d;

	if (v->type != jbvNumeric)
		WrongType(key, "a positive integer", v);
	d = NumericToDouble(v->val.numeric);
	if (!(d >= 1 && d <= 9.2e18) || floor(d) != d)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("insight details key \"%s\" must be a positive integer", key),
				 errdetail("Got %s.",
						   DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric))))));
	return DirectFunctionCall1(numeric_int8, NumericGetDatum(v->val.numeric));
}

static char *
DetailString(const char *key, JsonbValue *v, int maxlen)
{
	if (v->type != jbvString)
		WrongType(key, "a string", v);
	if (v->val.string.len > maxlen)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("insight details key \"%s\" is too long", key),
				 errdetail("%d bytes, at most %d.", v->val.string.len, maxlen)));
	return pnstrdup(v->val.string.val, v->val.string.len);
}

static Datum
DetailTimestamp(const char *key, JsonbValue *v)
{
	char	   *s = DetailString(key, v, 100);

	return DirectFunctionCall3(timestamptz_in, CStringGetDatum(s),
							   ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
}

static Datum
DetailContainer(const char *key, JsonbValue *v, bool array_ok, bool object_ok)
{
	bool		is_array;

	if (v->type != jbvBinary)
		WrongType(key, array_ok && object_ok ? "an array or an object" :
				  array_ok ? "an array" : "an object", v);
	is_array = (v->val.binary.data->header & JB_FARRAY) != 0;
	if ((is_array && !array_ok) || (!is_array && !object_ok))
		WrongType(key, array_ok ? "an array" : "an object", v);
	return JsonbPGetDatum(JsonbValueToJsonb(v));
}

/*
 * ParseDetails
 *		Validate the details object key by key; unknown keys are refused so
 *		a typo never silently drops information.
 */
static void
ParseDetails(Jsonb *details, InsightDetails *d)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *key = NULL;
	ErrorContextCallback errcb;

	memset(d, 0, sizeof(*d));
	d->description_null = d->impact_score_null = d->estimated_value_null = true;
	d->confidence_null = d->trend_null = d->comparison_null = true;
	d->period_start_null = d->period_end_null = d->location_id_null = true;
	d->entity_type_null = d->entity_id_null = d->parent_id_null = true;
	d->generated_by_null = d->expires_at_null = true;
	d->recommendations = DirectFunctionCall1(jsonb_in, CStringGetDatum("[]"));
	d->metrics = DirectFunctionCall1(jsonb_in, CStringGetDatum("{}"));
	d->observed_at = GetCurrentTransactionStartTimestamp();

	if (details == NULL)
		return;
	if (!JB_ROOT_IS_OBJECT(details))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("insight details must be a JSON object"),
				 errhint("Example: {\"description\": \"...\", \"impact_score\": 40, \"estimated_value\": 120.50}.")));

	errcb.callback = DetailsErrorContext;
	errcb.previous = error_context_stack;
	errcb.arg = NULL;

	it = JsonbIteratorInit(&details->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			key = pnstrdup(v.val.string.val, Min(v.val.string.len, 64));
			continue;
		}
		if (tok != WJB_VALUE)
			continue;
		if (v.type == jbvNull)
			continue;			/* JSON null: the same as absent */

		errcb.arg = key;
		error_context_stack = &errcb;

		if (strcmp(key, "description") == 0)
		{
			d->description = CStringGetTextDatum(DetailString(key, &v, 10000));
			d->description_null = false;
		}
		else if (strcmp(key, "impact_score") == 0)
		{
			d->impact_score = DetailNumber(key, &v, 0, 100);
			d->impact_score_null = false;
		}
		else if (strcmp(key, "estimated_value") == 0)
		{
			d->estimated_value = DetailNumber(key, &v, -999999999999.99, 999999999999.99);
			d->estimated_value_null = false;
		}
		else if (strcmp(key, "confidence") == 0)
		{
			d->confidence = DetailNumber(key, &v, 0, 1);
			d->confidence_null = false;
		}
		else if (strcmp(key, "recommendations") == 0)
			d->recommendations = DetailContainer(key, &v, true, false);
		else if (strcmp(key, "metrics") == 0)
			d->metrics = DetailContainer(key, &v, false, true);
		else if (strcmp(key, "trend") == 0)
		{
			d->trend = DetailContainer(key, &v, true, true);
			d->trend_null = false;
		}
		else if (strcmp(key, "comparison") == 0)
		{
			d->comparison = DetailContainer(key, &v, true, true);
			d->comparison_null = false;
		}
		else if (strcmp(key, "period_start") == 0)
		{
			d->period_start = DetailTimestamp(key, &v);
			d->period_start_null = false;
		}
		else if (strcmp(key, "period_end") == 0)
		{
			d->period_end = DetailTimestamp(key, &v);
			d->period_end_null = false;
		}
		else if (strcmp(key, "expires_at") == 0)
		{
			d->expires_at = DetailTimestamp(key, &v);
			d->expires_at_null = false;
		}
		else if (strcmp(key, "observed_at") == 0)
		{
			d->observed_at = DatumGetTimestampTz(DetailTimestamp(key, &v));
			if (TIMESTAMP_NOT_FINITE(d->observed_at))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("insight observed_at must be a finite timestamp")));
		}
		else if (strcmp(key, "location_id") == 0)
		{
			d->location_id = DetailId(key, &v);
			d->location_id_null = false;
		}
		else if (strcmp(key, "parent_id") == 0)
		{
			d->parent_id = DetailId(key, &v);
			d->parent_id_null = false;
		}
		else if (strcmp(key, "related_entity_type") == 0)
		{
			d->entity_type_str = DetailString(key, &v, 100);
			if (d->entity_type_str[0] == '\0')
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("insight related_entity_type must not be empty")));
		}
		else if (strcmp(key, "related_entity_id") == 0)
		{
			if (v.type == jbvNumeric)
				d->entity_id_str = DatumGetCString(DirectFunctionCall1(numeric_out,
																	   NumericGetDatum(v.val.numeric)));
			else
				d->entity_id_str = DetailString(key, &v, 200);
			if (d->entity_id_str[0] == '\0')
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("insight related_entity_id must not be empty")));
		}
		else if (strcmp(key, "generated_by") == 0)
		{
			d->generated_by = CStringGetTextDatum(DetailString(key, &v, 200));
			d->generated_by_null = false;
		}
		else
		{
			error_context_stack = errcb.previous;
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown insight details key \"%s\"", key),
					 errhint("Keys: description, impact_score, estimated_value, confidence, "
							 "recommendations, metrics, trend, comparison, period_start, period_end, "
							 "observed_at, expires_at, location_id, parent_id, related_entity_type, "
							 "related_entity_id, generated_by.")));
		}
		error_context_stack = errcb.previous;
	}

	if ((d->entity_type_str == NULL) != (d->entity_id_str == NULL))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("insight related_entity_type and related_entity_id go together"),
				 errhint("Give both or neither.")));
	if (d->entity_type_str)
	{
		d->entity_type = CStringGetTextDatum(d->entity_type_str);
		d->entity_id = CStringGetTextDatum(d->entity_id_str);
		d->entity_type_null = d->entity_id_null = false;
	}
	if (!d->period_start_null && !d->period_end_null &&
		DatumGetTimestampTz(d->period_end) < DatumGetTimestampTz(d->period_start))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("insight period_end is before period_start")));
}

/*
 * InsightFingerprint
 *		64-bit hash of restaurant, type, domain and related entity.  The
 *		parts are separated by NUL bytes so no two tuples share an input.
 */
static int64
InsightFingerprint(int64 restaurant, const char *type, const char *domain,
				   const char *etype, const char *eid)
{
	StringInfoData buf;
	uint64		h;

	initStringInfo(&buf);
	appendBinaryStringInfo(&buf, (char *) &restaurant, sizeof(restaurant));
	appendBinaryStringInfo(&buf, type, strlen(type) + 1);
	appendBinaryStringInfo(&buf, domain, strlen(domain) + 1);
	if (etype)
	{
		appendBinaryStringInfo(&buf, etype, strlen(etype) + 1);
		appendBinaryStringInfo(&buf, eid, strlen(eid) + 1);
	}
	h = hash_bytes_extended((const unsigned char *) buf.data, buf.len, UINT64CONST(0x61757261));
	pfree(buf.data);
	return (int64) h;
}

/*
 * InsightRecurrence
 *		Regular intervals: the mean absolute deviation of the gaps between
 *		sorted times is below 20% of the mean gap (at least three gaps).
 */
void
InsightRecurrence(TimestampTz *times, int n, bool *recurring, int64 *period_us)
{
	double		mean = 0,
				mad = 0;
	int			gaps = n - 1;
	int			i;

	*recurring = false;
	*period_us = 0;
	if (gaps < RECURRENCE_MIN_GAPS)
		return;
	for (i = 1; i < n; i++)
		mean += (double) (times[i] - times[i - 1]);
	mean /= gaps;
	if (mean <= 0)
		return;
	for (i = 1; i < n; i++)
		mad += fabs((double) (times[i] - times[i - 1]) - mean);
	mad /= gaps;
	if (mad < 0.2 * mean)
	{
		*recurring = true;
		*period_us = (int64) mean;
	}
}

/*
 * InsightThreadCategory
 *		Category of a thread: recurring ones are seasonal when their period is
 *		near a week, a month or a year, else a recurring issue; the others by
 *		the insight type.
 */
const char *
InsightThreadCategory(const char *type, bool recurring, int64 period_us)
{
	if (recurring)
	{
		double		days = (double) period_us / USECS_PER_DAY;

		if (fabs(days - 7) <= 0.7 || (days >= 28 && days <= 31) || fabs(days - 365) <= 5)
			return "seasonal_event";
		return "recurring_issue";
	}
	if (strcmp(type, "anomaly") == 0 || strcmp(type, "warning") == 0)
		return "anomaly_cluster";
	if (strcmp(type, "trend") == 0 || strcmp(type, "performance") == 0)
		return "trend_pattern";
	return "optimization_series";
}

static Interval *
PeriodInterval(int64 us)
{
	Interval   *iv = palloc0(sizeof(Interval));

	iv->day = (int32) (us / USECS_PER_DAY);
	iv->time = us % USECS_PER_DAY;
	return iv;
}

static int
CompareTimestamps(const void *a, const void *b)
{
	TimestampTz x = *(const TimestampTz *) a;
	TimestampTz y = *(const TimestampTz *) b;

	return (x > y) - (x < y);
}

/* prepare and keep one plan */
static SPIPlanPtr
InsightPlan(int which, const char *sql, int nargs, Oid *types)
{
	if (plans[which] == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(sql, nargs, types);

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed for insights plan %d: %s", which,
				 SPI_result_code_string(SPI_result));
		if (SPI_keepplan(p) != 0)
			elog(ERROR, "SPI_keepplan failed");
		plans[which] = p;
	}
	return plans[which];
}

static void
Exec(SPIPlanPtr plan, Datum *values, const char *nulls, int expect, int limit)
{
	int			rc = SPI_execute_plan(plan, values, nulls, false, limit);

	if (rc != expect)
		elog(ERROR, "insights SPI query failed: %s", SPI_result_code_string(rc));
}

/*
 * EmitEvent
 *		An insight.created or insight.escalated event, through
 *		aura.emit_event (notifications): rules and webhooks subscribed to
 *		insight events get it in this transaction.
 */
static void
EmitEvent(int64 restaurant, const char *event, int64 insight, int64 thread,
		  const char *domain, const char *type, const char *severity, text *title, int32 count)
{
	Oid			types[9] = {INT8OID, TEXTOID, INT8OID, INT8OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT4OID};
	Datum		values[9];
	SPIPlanPtr	p = InsightPlan(PLAN_EVENT,
						 "SELECT aura.emit_event($1, $2, pg_catalog.jsonb_build_object("
						 "'insight_id', $3, 'thread_id', $4, 'domain', $5, 'type', $6, "
						 "'severity', $7, 'title', $8, 'occurrence_count', $9))",
						 9, types);

	values[0] = Int64GetDatum(restaurant);
	values[1] = CStringGetTextDatum(event);
	values[2] = Int64GetDatum(insight);
	values[3] = Int64GetDatum(thread);
	values[4] = CStringGetTextDatum(domain);
	values[5] = CStringGetTextDatum(type);
	values[6] = CStringGetTextDatum(severity);
	values[7] = PointerGetDatum(title);
	values[8] = Int32GetDatum(count);
	Exec(p, values, NULL, SPI_OK_SELECT, 0);
}

static int64
GetInt64(int col, bool *isnull)
{
	Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col, isnull);

	return *isnull ? 0 : DatumGetInt64(d);
}

/*
 * RecordInsight
 *		The body of aura.record_insight(), inside an SPI connection.
 */
static int64
RecordInsight(int64 restaurant, int domain_i, int type_i, int sev_i, text *title,
			  InsightDetails *d)
{
	const char *domain = insight_domains[domain_i];
	const char *type = insight_types[type_i];
	const char *severity = insight_severities[sev_i];
	InsightsConfig cfg;
	int64		fp;
	bool		isnull;
	int64		thread = 0;
	int32		thread_count = 0;
	int			thread_sev = -1;
	ArrayType  *recent = NULL;
	Datum		values[24];
	char		nulls[24];
	bool		escalated = false;

	InsightsConfigGet(restaurant, &cfg);
	fp = InsightFingerprint(restaurant, type, domain, d->entity_type_str, d->entity_id_str);

	/* the restaurant exists (and is visible to the caller) */
	{
		Oid			t[1] = {INT8OID};

		values[0] = Int64GetDatum(restaurant);
		Exec(InsightPlan(PLAN_RESTAURANT, "SELECT 1 FROM aura.restaurants WHERE id = $1", 1, t),
			 values, NULL, SPI_OK_SELECT, 1);
		if (SPI_processed == 0)
			ereport(ERROR,
					(errcode(ERRCODE_NO_DATA_FOUND),
					 errmsg("restaurant %lld does not exist", (long long) restaurant)));
	}

	/*
	 * One recorder per fingerprint at a time.  Under REPEATABLE READ or
	 * SERIALIZABLE the snapshot cannot see the thread the other recorder
	 * just committed, so having waited is a serialization failure.
	 */
	if (!DatumGetBool(DirectFunctionCall1(pg_try_advisory_xact_lock_int8, Int64GetDatum(fp))))
	{
		DirectFunctionCall1(pg_advisory_xact_lock_int8, Int64GetDatum(fp));
		if (IsolationUsesXactSnapshot())
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("could not serialize access due to a concurrent recording of the same insight"),
					 errhint("Retry the transaction.")));
	}

	/* probe: the newest open thread of this fingerprint */
	{
		Oid			t[6] = {INT8OID, INT8OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID};

		values[0] = Int64GetDatum(restaurant);
		values[1] = Int64GetDatum(fp);
		values[2] = CStringGetTextDatum(type);
		values[3] = CStringGetTextDatum(domain);
		values[4] = d->entity_type;
		values[5] = d->entity_id;
		memcpy(nulls, "    ", 4);
		nulls[4] = d->entity_type_null ? 'n' : ' ';
		nulls[5] = d->entity_id_null ? 'n' : ' ';
		Exec(InsightPlan(PLAN_PROBE,
				  "SELECT id, last_seen, insight_count, max_severity, recent_seen "
				  "FROM aura.insight_threads "
				  "WHERE restaurant_id = $1 AND fingerprint = $2 AND status = 'open' "
				  "AND type = $3 AND domain = $4 "
				  "AND related_entity_type IS NOT DISTINCT FROM $5 "
				  "AND related_entity_id IS NOT DISTINCT FROM $6 "
				  "ORDER BY last_seen DESC LIMIT 1 FOR UPDATE", 6, t),
			 values, nulls, SPI_OK_SELECT, 1);
		if (SPI_processed == 1)
		{
			TimestampTz last = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0],
																 SPI_tuptable->tupdesc, 2, &isnull));

			if (d->observed_at - last <= cfg.thread_window_us)
			{
				char	   *sev;

				thread = GetInt64(1, &isnull);
				thread_count = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
														   SPI_tuptable->tupdesc, 3, &isnull));
				sev = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4);
				thread_sev = InsightEnumIndex(insight_severities, sev);
				recent = DatumGetArrayTypePCopy(SPI_getbinval(SPI_tuptable->vals[0],
															  SPI_tuptable->tupdesc, 5, &isnull));
			}
		}
	}

	/* dedupe: the same title in this thread within the dedupe window */
	if (thread != 0)
	{
		Oid			t[4] = {INT8OID, INT8OID, TIMESTAMPTZOID, TEXTOID};

		values[0] = Int64GetDatum(restaurant);
		values[1] = Int64GetDatum(thread);
		values[2] = TimestampTzGetDatum(d->observed_at - cfg.dedupe_window_us);
		values[3] = PointerGetDatum(title);
		Exec(InsightPlan(PLAN_DEDUPE,
				  "SELECT id, severity, occurrence_count FROM aura.insights "
				  "WHERE restaurant_id = $1 AND thread_id = $2 AND last_occurred_at >= $3 "
				  "AND title = $4 AND status IN ('active', 'acknowledged', 'in_progress') "
				  "ORDER BY last_occurred_at DESC LIMIT 1 FOR UPDATE", 4, t),
			 values, NULL, SPI_OK_SELECT, 1);
		if (SPI_processed == 1)
		{
			int64		existing = GetInt64(1, &isnull);
			char	   *old_sev_s = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
			int32		count = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
															SPI_tuptable->tupdesc, 3, &isnull)) + 1;
			int			old_sev = InsightEnumIndex(insight_severities, old_sev_s);
			int			new_sev = Min(old_sev, sev_i);	/* lower index: more severe */
			Oid			tb[4] = {INT8OID, INT8OID, TIMESTAMPTZOID, TEXTOID};
			Oid			tt[10] = {INT8OID, INT8OID, INT4OID, TIMESTAMPTZOID, TEXTOID,
			NUMERICOID, TIMESTAMPTZARRAYOID, BOOLOID, INTERVALOID, TEXTOID};

			values[0] = Int64GetDatum(restaurant);
			values[1] = Int64GetDatum(existing);
			values[2] = TimestampTzGetDatum(d->observed_at);
			values[3] = CStringGetTextDatum(insight_severities[new_sev]);
			Exec(InsightPlan(PLAN_BUMP,
					  "UPDATE aura.insights SET occurrence_count = occurrence_count + 1, "
					  "last_occurred_at = greatest(last_occurred_at, $3), severity = $4 "
					  "WHERE restaurant_id = $1 AND id = $2", 4, tb),
				 values, NULL, SPI_OK_UPDATE, 0);

			/* the thread saw it again: last_seen and maybe max severity */
			values[0] = Int64GetDatum(restaurant);
			values[1] = Int64GetDatum(thread);
			values[2] = Int32GetDatum(thread_count);
			values[3] = TimestampTzGetDatum(d->observed_at);
			values[4] = CStringGetTextDatum(insight_severities[Min(thread_sev, new_sev)]);
			values[5] = DirectFunctionCall1(int8_numeric, Int64GetDatum(0));
			memset(nulls, ' ', 10);
			nulls[6] = nulls[7] = nulls[8] = nulls[9] = 'n';
			Exec(InsightPlan(PLAN_THREAD_UPDATE,
					  thread_update_sql, 10, tt),
				 values, nulls, SPI_OK_UPDATE, 0);
			if (new_sev < old_sev)
				EmitEvent(restaurant, "insight.escalated", existing, thread, domain, type,
						  insight_severities[new_sev], title, count);
			return existing;
		}
	}

	/* a new insight: open a thread or join the one found */
	if (thread == 0)
	{
		Oid			t[12] = {INT8OID, INT8OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID,
		INT4OID, TIMESTAMPTZOID, TEXTOID, NUMERICOID, TIMESTAMPTZARRAYOID};
		Datum		one = TimestampTzGetDatum(d->observed_at);

		values[0] = Int64GetDatum(restaurant);
		values[1] = Int64GetDatum(fp);
		values[2] = CStringGetTextDatum(type);
		values[3] = CStringGetTextDatum(domain);
		values[4] = d->entity_type;
		values[5] = d->entity_id;
		values[6] = CStringGetTextDatum(InsightThreadCategory(type, false, 0));
		values[7] = Int32GetDatum(1);
		values[8] = TimestampTzGetDatum(d->observed_at);
		values[9] = CStringGetTextDatum(severity);
		values[10] = d->estimated_value_null ? DirectFunctionCall1(int8_numeric, Int64GetDatum(0))
			: d->estimated_value;
		values[11] = PointerGetDatum(construct_array(&one, 1, TIMESTAMPTZOID, sizeof(TimestampTz),
													 FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		memset(nulls, ' ', 12);
		nulls[4] = d->entity_type_null ? 'n' : ' ';
		nulls[5] = d->entity_id_null ? 'n' : ' ';
		Exec(InsightPlan(PLAN_THREAD_INSERT,
				  "INSERT INTO aura.insight_threads (restaurant_id, fingerprint, type, domain, "
				  "related_entity_type, related_entity_id, category, insight_count, first_seen, "
				  "last_seen, max_severity, total_estimated_value, recent_seen) "
				  "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11, $12) RETURNING id",
				  12, t),
			 values, nulls, SPI_OK_INSERT_RETURNING, 0);
		thread = GetInt64(1, &isnull);
	}
	else
	{
		Oid			tt[10] = {INT8OID, INT8OID, INT4OID, TIMESTAMPTZOID, TEXTOID,
		NUMERICOID, TIMESTAMPTZARRAYOID, BOOLOID, INTERVALOID, TEXTOID};
		Datum	   *elems;
		bool	   *enulls;
		int			n;
		TimestampTz *times;
		int			i,
					start;
		bool		recurring;
		int64		period;
		Datum	   *keep;

		deconstruct_array(recent, TIMESTAMPTZOID, sizeof(TimestampTz), FLOAT8PASSBYVAL,
						  TYPALIGN_DOUBLE, &elems, &enulls, &n);
		times = palloc((n + 1) * sizeof(TimestampTz));
		for (i = 0; i < n; i++)
			times[i] = DatumGetTimestampTz(elems[i]);
		times[n++] = d->observed_at;
		qsort(times, n, sizeof(TimestampTz), CompareTimestamps);
		start = n > RECENT_KEEP ? n - RECENT_KEEP : 0;
		InsightRecurrence(times + start, n - start, &recurring, &period);
		keep = palloc((n - start) * sizeof(Datum));
		for (i = start; i < n; i++)
			keep[i - start] = TimestampTzGetDatum(times[i]);

		values[0] = Int64GetDatum(restaurant);
		values[1] = Int64GetDatum(thread);
		values[2] = Int32GetDatum(thread_count + 1);
		values[3] = TimestampTzGetDatum(d->observed_at);
		values[4] = CStringGetTextDatum(insight_severities[Min(thread_sev, sev_i)]);
		values[5] = d->estimated_value_null ? DirectFunctionCall1(int8_numeric, Int64GetDatum(0))
			: d->estimated_value;
		values[6] = PointerGetDatum(construct_array(keep, n - start, TIMESTAMPTZOID,
													sizeof(TimestampTz), FLOAT8PASSBYVAL,
													TYPALIGN_DOUBLE));
		values[7] = BoolGetDatum(recurring);
		values[8] = IntervalPGetDatum(PeriodInterval(period));
		values[9] = CStringGetTextDatum(InsightThreadCategory(type, recurring, period));
		memset(nulls, ' ', 10);
		if (!recurring)
			nulls[8] = 'n';
		Exec(InsightPlan(PLAN_THREAD_UPDATE, thread_update_sql, 10, tt), values, nulls, SPI_OK_UPDATE, 0);
		escalated = sev_i < thread_sev;
	}

	/* the insight itself */
	{
		Oid			t[24] = {INT8OID, INT8OID, INT8OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID,
			TEXTOID, NUMERICOID, NUMERICOID, NUMERICOID, JSONBOID, JSONBOID, JSONBOID, JSONBOID,
			TIMESTAMPTZOID, TIMESTAMPTZOID, TEXTOID, TEXTOID, INT8OID, INT8OID, TEXTOID,
		TIMESTAMPTZOID, TIMESTAMPTZOID};
		int64		id;

		values[0] = Int64GetDatum(restaurant);
		values[1] = d->location_id;
		values[2] = Int64GetDatum(thread);
		values[3] = CStringGetTextDatum(domain);
		values[4] = CStringGetTextDatum(type);
		values[5] = CStringGetTextDatum(severity);
		values[6] = PointerGetDatum(title);
		values[7] = d->description;
		values[8] = d->impact_score;
		values[9] = d->estimated_value;
		values[10] = d->confidence;
		values[11] = d->recommendations;
		values[12] = d->metrics;
		values[13] = d->trend;
		values[14] = d->comparison;
		values[15] = d->period_start;
		values[16] = d->period_end;
		values[17] = d->entity_type;
		values[18] = d->entity_id;
		values[19] = d->parent_id;
		values[20] = Int64GetDatum(fp);
		values[21] = d->generated_by;
		values[22] = TimestampTzGetDatum(d->observed_at);
		values[23] = d->expires_at;
		memset(nulls, ' ', 24);
		nulls[1] = d->location_id_null ? 'n' : ' ';
		nulls[7] = d->description_null ? 'n' : ' ';
		nulls[8] = d->impact_score_null ? 'n' : ' ';
		nulls[9] = d->estimated_value_null ? 'n' : ' ';
		nulls[10] = d->confidence_null ? 'n' : ' ';
		nulls[13] = d->trend_null ? 'n' : ' ';
		nulls[14] = d->comparison_null ? 'n' : ' ';
		nulls[15] = d->period_start_null ? 'n' : ' ';
		nulls[16] = d->period_end_null ? 'n' : ' ';
		nulls[17] = d->entity_type_null ? 'n' : ' ';
		nulls[18] = d->entity_id_null ? 'n' : ' ';
		nulls[19] = d->parent_id_null ? 'n' : ' ';
		nulls[21] = d->generated_by_null ? 'n' : ' ';
		nulls[23] = d->expires_at_null ? 'n' : ' ';
		Exec(InsightPlan(PLAN_INSERT,
				  "INSERT INTO aura.insights (restaurant_id, location_id, thread_id, domain, type, "
				  "severity, title, description, impact_score, estimated_value, confidence, "
				  "recommendations, metrics, trend_data, comparison_data, period_start, period_end, "
				  "related_entity_type, related_entity_id, parent_id, fingerprint, generated_by, "
				  "created_at, last_occurred_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, "
				  "$9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $23, $24) "
				  "RETURNING id", 24, t),
			 values, nulls, SPI_OK_INSERT_RETURNING, 0);
		id = GetInt64(1, &isnull);

		EmitEvent(restaurant, "insight.created", id, thread, domain, type, severity, title, 1);
		if (escalated)
			EmitEvent(restaurant, "insight.escalated", id, thread, domain, type, severity, title, 1);
		return id;
	}
}

/*
 * InsightsCheckTenant
 *		The caller may write insights of this restaurant: it is the one in
 *		context, or the caller is an aura admin.
 */
void
InsightsCheckTenant(int64 restaurant)
{
	int64		current;

	if (AuraIsAdmin())
		return;
	if (!AuraCurrentRestaurant(&current))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("no restaurant in context"),
				 errhint("Call aura.set_context(restaurant_id) first.")));
	if (current != restaurant)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("restaurant %lld is not the restaurant in context", (long long) restaurant),
				 errdetail("The context is restaurant %lld.", (long long) current)));
}

PG_FUNCTION_INFO_V1(aura_record_insight);

/*
 * aura_record_insight
 *		aura.record_insight(restaurant_id, domain, type, severity, title,
 *		details): validate, thread, dedupe, insert, emit; returns the id of
 *		the insight (the existing one when a repeat was deduplicated).
 */
Datum
aura_record_insight(PG_FUNCTION_ARGS)
{
	int64		restaurant;
	int			domain_i,
				type_i,
				sev_i;
	text	   *title;
	char	   *title_s;
	InsightDetails d;
	int64		id;
	const char *p;
	bool		blank = true;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("restaurant_id must not be NULL")));
	restaurant = PG_GETARG_INT64(0);
	domain_i = CheckEnum("domain", insight_domains, PG_ARGISNULL(1) ? NULL : PG_GETARG_TEXT_PP(1));
	type_i = CheckEnum("type", insight_types, PG_ARGISNULL(2) ? NULL : PG_GETARG_TEXT_PP(2));
	sev_i = CheckEnum("severity", insight_severities, PG_ARGISNULL(3) ? NULL : PG_GETARG_TEXT_PP(3));
	if (PG_ARGISNULL(4))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("insight title must not be NULL")));
	title = PG_GETARG_TEXT_PP(4);
	if (VARSIZE_ANY_EXHDR(title) > 1200)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("insight title is too long"),
				 errdetail("%d bytes, at most 300 characters.", (int) VARSIZE_ANY_EXHDR(title))));
	title_s = text_to_cstring(title);
	for (p = title_s; *p; p++)
		if (!isspace((unsigned char) *p))
			blank = false;
	if (blank)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("insight title must not be empty")));
	if (pg_mbstrlen(title_s) > 300)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("insight title is too long"),
				 errdetail("%d characters, at most 300.", pg_mbstrlen(title_s))));
	/* the plans compare against a detoasted, 4-byte-header text */
	title = cstring_to_text(title_s);

	InsightsCheckTenant(restaurant);
	ParseDetails(PG_ARGISNULL(5) ? NULL : PG_GETARG_JSONB_P(5), &d);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	id = RecordInsight(restaurant, domain_i, type_i, sev_i, title, &d);
	SPI_finish();
	PG_RETURN_INT64(id);
}

PG_FUNCTION_INFO_V1(aura_recurrence);

/*
 * aura_recurrence
 *		aura._recurrence(times): the recurrence rule for SQL callers
 *		(aura.merge_threads recomputes a merged thread with it).
 */
Datum
aura_recurrence(PG_FUNCTION_ARGS)
{
	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(0);
	TupleDesc	tupdesc;
	Datum	   *elems;
	bool	   *enulls;
	int			n,
				m = 0,
				i;
	TimestampTz *times;
	bool		recurring;
	int64		period;
	Datum		values[2];
	bool		nulls[2] = {false, false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);
	deconstruct_array(arr, TIMESTAMPTZOID, sizeof(TimestampTz), FLOAT8PASSBYVAL,
					  TYPALIGN_DOUBLE, &elems, &enulls, &n);
	times = palloc(Max(n, 1) * sizeof(TimestampTz));
	for (i = 0; i < n; i++)
		if (!enulls[i])
			times[m++] = DatumGetTimestampTz(elems[i]);
	qsort(times, m, sizeof(TimestampTz), CompareTimestamps);
	if (m > RECENT_KEEP)
	{
		times += m - RECENT_KEEP;
		m = RECENT_KEEP;
	}
	InsightRecurrence(times, m, &recurring, &period);
	values[0] = BoolGetDatum(recurring);
	if (recurring)
		values[1] = IntervalPGetDatum(PeriodInterval(period));
	else
		nulls[1] = true;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

PG_FUNCTION_INFO_V1(aura_thread_category);

/*
 * aura_thread_category
 *		aura._thread_category(type, recurring, period).
 */
Datum
aura_thread_category(PG_FUNCTION_ARGS)
{
	char	   *type;
	bool		recurring;
	int64		period = 0;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("insight type must not be NULL")));
	type = text_to_cstring(PG_GETARG_TEXT_PP(0));
	recurring = !PG_ARGISNULL(1) && PG_GETARG_BOOL(1);
	if (!PG_ARGISNULL(2))
	{
		Interval   *iv = PG_GETARG_INTERVAL_P(2);

		period = iv->time + (int64) iv->day * USECS_PER_DAY + (int64) iv->month * 30 * USECS_PER_DAY;
	}
	PG_RETURN_TEXT_P(cstring_to_text(InsightThreadCategory(type, recurring, period)));
}
