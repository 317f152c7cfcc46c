/*
 * insights_config.c
 *	  Every insights.* setting is read here and nowhere else.
 *
 * The settings module (issue 3) is not part of aura yet: until it is merged,
 * InsightsConfigGet returns the documented defaults of the setting
 * definitions (thread_window 7 days, dedupe_window 1 hour,
 * auto_dismiss_min_ratings 3, auto_dismiss_irrelevant_ratio 0.6,
 * export_row_cap 100000), the same for every restaurant.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "context.h"
#include "insights_config.h"

/*
 * InsightsConfigGet
 *		The insights settings in effect for a restaurant.
 */
void
InsightsConfigGet(int64 restaurant_id, InsightsConfig *cfg)
{
	cfg->thread_window_us = 7 * USECS_PER_DAY;
	cfg->dedupe_window_us = USECS_PER_HOUR;
	cfg->auto_dismiss_min_ratings = 3;
	cfg->auto_dismiss_irrelevant_ratio = 0.6;
	cfg->export_row_cap = 100000;
}

/* an interval of whole days plus time, from microseconds */
static Interval *
UsecsToInterval(int64 us)
{
	Interval   *iv = palloc0(sizeof(Interval));

	iv->day = (int32) (us / USECS_PER_DAY);
	iv->time = us % USECS_PER_DAY;
	return iv;
}

PG_FUNCTION_INFO_V1(aura_insights_config);

/*
 * aura_insights_config
 *		aura.insights_config(restaurant_id): the settings as one record, for
 *		the SQL parts of the module and for people.
 */
Datum
aura_insights_config(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	InsightsConfig cfg;
	Datum		values[5];
	bool		nulls[5] = {false, false, false, false, false};
	int64		restaurant = 0;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);

	if (!PG_ARGISNULL(0))
		restaurant = PG_GETARG_INT64(0);
	else
		(void) AuraCurrentRestaurant(&restaurant);
	InsightsConfigGet(restaurant, &cfg);

	values[0] = IntervalPGetDatum(UsecsToInterval(cfg.thread_window_us));
	values[1] = IntervalPGetDatum(UsecsToInterval(cfg.dedupe_window_us));
	values[2] = Int32GetDatum(cfg.auto_dismiss_min_ratings);
	values[3] = DirectFunctionCall1(float8_numeric, Float8GetDatum(cfg.auto_dismiss_irrelevant_ratio));
	values[4] = Int64GetDatum(cfg.export_row_cap);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
