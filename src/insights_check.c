/*
 * insights_check.c
 *	  Row checks of aura.insights and aura.insight_threads as one C function
 *	  each, used as the tables' CHECK constraints.
 *
 * One function call instead of a dozen CHECK expressions keeps the cost of
 * starting an INSERT small (PostgreSQL deserialises every CHECK expression
 * each time an executor starts, and aura.record_insight starts several per
 * call), and lets a direct INSERT or UPDATE get the same specific message as
 * the API (SQLSTATE 23514) instead of a bare constraint name.
 */
#include "postgres.h"

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

static const char *const domains[] = {
	"sales", "inventory", "staff", "customer", "operations", "finance", "marketing", "loyalty", NULL
};
static const char *const types[] = {
	"performance", "trend", "anomaly", "optimization", "warning", "opportunity", NULL
};
static const char *const severities[] = {"critical", "high", "medium", "low", "info", NULL};
static const char *const statuses[] = {
	"active", "acknowledged", "in_progress", "resolved", "dismissed", "expired", NULL
};
static const char *const categories[] = {
	"anomaly_cluster", "trend_pattern", "optimization_series", "recurring_issue", "seasonal_event", NULL
};
static const char *const thread_statuses[] = {"open", "closed", "merged", NULL};

static void
Violation(const char *table, const char *what, const char *value)
{
	ereport(ERROR,
			(errcode(ERRCODE_CHECK_VIOLATION),
			 errmsg("invalid %s in %s", what, table),
			 value ? errdetail("Got \"%.100s\".", value) : 0));
}

/* the argument is one of list (NULL allowed when nullable) */
static void
CheckIn(FunctionCallInfo fcinfo, int arg, const char *table, const char *what,
		const char *const *list)
{
	char	   *s;
	int			i;

	if (PG_ARGISNULL(arg))
		Violation(table, what, NULL);
	s = text_to_cstring(PG_GETARG_TEXT_PP(arg));
	for (i = 0; list[i]; i++)
		if (strcmp(list[i], s) == 0)
			return;
	Violation(table, what, s);
}

/* the text argument, when not NULL, has min..max characters */
static void
CheckLength(FunctionCallInfo fcinfo, int arg, const char *table, const char *what, int min, int max)
{
	text	   *t;
	int			len;

	if (PG_ARGISNULL(arg))
		return;
	t = PG_GETARG_TEXT_PP(arg);
	len = pg_mbstrlen_with_len(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
	if (len < min || len > max)
		ereport(ERROR,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("invalid %s in %s", what, table),
				 errdetail("%d characters; allowed %d to %d.", len, min, max)));
}

static void
CheckNumericRange(FunctionCallInfo fcinfo, int arg, const char *table, const char *what,
				  double lo, double hi)
{
	double		d;

	if (PG_ARGISNULL(arg))
		return;
	d = DatumGetFloat8(DirectFunctionCall1(numeric_float8, PG_GETARG_DATUM(arg)));
	if (!(d >= lo && d <= hi))
		ereport(ERROR,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("invalid %s in %s", what, table),
				 errdetail("Got %g; allowed %g to %g.", d, lo, hi)));
}

PG_FUNCTION_INFO_V1(aura_insight_row_check);

/*
 * aura._insight_row_check(domain, type, severity, status, title,
 *		description, impact_score, confidence, recommendations, metrics,
 *		period_start, period_end, related_entity_type, related_entity_id,
 *		generated_by, occurrence_count, resolution_notes)
 */
Datum
aura_insight_row_check(PG_FUNCTION_ARGS)
{
	const char *t = "aura.insights";
	text	   *title;
	char	   *title_s;
	const char *p;
	bool		blank = true;

	CheckIn(fcinfo, 0, t, "domain", domains);
	CheckIn(fcinfo, 1, t, "type", types);
	CheckIn(fcinfo, 2, t, "severity", severities);
	CheckIn(fcinfo, 3, t, "status", statuses);
	if (PG_ARGISNULL(4))
		Violation(t, "title", NULL);
	title = PG_GETARG_TEXT_PP(4);
	title_s = text_to_cstring(title);
	for (p = title_s; *p; p++)
		if (!(*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
			blank = false;
	if (blank)
		Violation(t, "title (empty)", NULL);
	CheckLength(fcinfo, 4, t, "title", 1, 300);
	CheckLength(fcinfo, 5, t, "description", 0, 10000);
	CheckNumericRange(fcinfo, 6, t, "impact_score", 0, 100);
	CheckNumericRange(fcinfo, 7, t, "confidence", 0, 1);
	if (PG_ARGISNULL(8) || !JB_ROOT_IS_ARRAY(PG_GETARG_JSONB_P(8)) || JB_ROOT_IS_SCALAR(PG_GETARG_JSONB_P(8)))
		Violation(t, "recommendations (must be a JSON array)", NULL);
	if (PG_ARGISNULL(9) || !JB_ROOT_IS_OBJECT(PG_GETARG_JSONB_P(9)))
		Violation(t, "metrics (must be a JSON object)", NULL);
	if (!PG_ARGISNULL(10) && !PG_ARGISNULL(11) &&
		PG_GETARG_TIMESTAMPTZ(11) < PG_GETARG_TIMESTAMPTZ(10))
		Violation(t, "period (period_end before period_start)", NULL);
	if (PG_ARGISNULL(12) != PG_ARGISNULL(13))
		Violation(t, "related entity (type and id go together)", NULL);
	CheckLength(fcinfo, 12, t, "related_entity_type", 1, 100);
	CheckLength(fcinfo, 13, t, "related_entity_id", 1, 200);
	CheckLength(fcinfo, 14, t, "generated_by", 0, 200);
	if (PG_ARGISNULL(15) || PG_GETARG_INT32(15) < 1)
		Violation(t, "occurrence_count", NULL);
	CheckLength(fcinfo, 16, t, "resolution_notes", 0, 10000);
	PG_RETURN_BOOL(true);
}

PG_FUNCTION_INFO_V1(aura_insight_thread_row_check);

/*
 * aura._insight_thread_row_check(category, status, max_severity,
 *		insight_count, merged_into)
 */
Datum
aura_insight_thread_row_check(PG_FUNCTION_ARGS)
{
	const char *t = "aura.insight_threads";
	bool		merged;

	CheckIn(fcinfo, 0, t, "category", categories);
	CheckIn(fcinfo, 1, t, "status", thread_statuses);
	CheckIn(fcinfo, 2, t, "max_severity", severities);
	if (PG_ARGISNULL(3) || PG_GETARG_INT32(3) < 0)
		Violation(t, "insight_count", NULL);
	merged = strcmp(text_to_cstring(PG_GETARG_TEXT_PP(1)), "merged") == 0;
	if (merged == PG_ARGISNULL(4))
		Violation(t, "merged_into (set exactly when the status is merged)", NULL);
	PG_RETURN_BOOL(true);
}
