/*
 * insights_config.c
 *	  Every insights.* setting is read here and nowhere else, through the
 *	  settings module's C API (src/settings.h), which resolves the
 *	  restaurant's value (or the system value, or the definition's default:
 *	  thread_window 7 days, dedupe_window 1 hour, auto_dismiss_min_ratings 3,
 *	  auto_dismiss_irrelevant_ratio 0.6, export_row_cap 100000) from a
 *	  backend-local cache.
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
#include "insights.h"
#include "insights_config.h"
#include "settings.h"

/* an interval setting as microseconds (a month counts 30 days) */
static int64
IntervalSetting(const char *key, int64 restaurant, int64 fallback)
{
	Interval	iv;

	if (!AuraGetSettingInterval(key, restaurant, 0, 0, &iv))
		return fallback;
	return iv.time + (int64) iv.day * USECS_PER_DAY + (int64) iv.month * 30 * USECS_PER_DAY;
}

static int64
IntSetting(const char *key, int64 restaurant, int64 fallback)
{
	int64		v;

	return AuraGetSettingInt(key, restaurant, 0, 0, &v) ? v : fallback;
}

/*
 * InsightsConfigGet
 *		The insights settings in effect for a restaurant (0: system).
 */
void
InsightsConfigGet(int64 restaurant_id, InsightsConfig *cfg)
{
	Numeric		ratio;

	cfg->thread_window_us = IntervalSetting("insights.thread_window", restaurant_id, 7 * USECS_PER_DAY);
	cfg->dedupe_window_us = IntervalSetting("insights.dedupe_window", restaurant_id, USECS_PER_HOUR);
	cfg->auto_dismiss_min_ratings = (int32) IntSetting("insights.auto_dismiss_min_ratings", restaurant_id, 3);
	cfg->export_row_cap = IntSetting("insights.export_row_cap", restaurant_id, 100000);
	if (AuraGetSettingNumeric("insights.auto_dismiss_irrelevant_ratio", restaurant_id, 0, 0, &ratio))
		cfg->auto_dismiss_irrelevant_ratio =
			DatumGetFloat8(DirectFunctionCall1(numeric_float8, NumericGetDatum(ratio)));
	else
		cfg->auto_dismiss_irrelevant_ratio = 0.6;
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
	{
		/*
		 * The settings cache serves every tenant: another restaurant's
		 * settings are aura_admin's to read (as with aura.get_setting).
		 */
		restaurant = PG_GETARG_INT64(0);
		InsightsCheckTenant(restaurant);
	}
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
