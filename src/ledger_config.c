/*
 * ledger_config.c
 *	  The loyalty module's single door to the settings: a small per-restaurant
 *	  struct of the loyalty.* settings.
 *
 * The settings module is not part of this branch yet, so every restaurant
 * gets the documented defaults of docs/loyalty.md (points_per_unit 1,
 * point_value 0.01, points_expiry_days 365, pending_days 0,
 * allow_negative_balance false, tier_downgrade none, tier_grace_days 30,
 * birthday_points 100).  When settings arrive, this file alone changes.
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "ledger_config.h"

static LedgerConfig defaults;
static bool defaults_ready = false;

/*
 * LedgerConfigGet
 *		The loyalty settings of a restaurant.
 */
const LedgerConfig *
LedgerConfigGet(int64 restaurant_id)
{
	if (!defaults_ready)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		defaults.points_per_unit = int64_to_numeric(1);
		defaults.point_value = DatumGetNumeric(DirectFunctionCall3(numeric_in,
																   CStringGetDatum("0.01"),
																   ObjectIdGetDatum(InvalidOid),
																   Int32GetDatum(-1)));
		defaults.points_expiry_days = 365;
		defaults.pending_days = 0;
		defaults.allow_negative_balance = false;
		defaults.tier_downgrade = TIER_DOWNGRADE_NONE;
		defaults.tier_grace_days = 30;
		defaults.birthday_points = 100;
		MemoryContextSwitchTo(old);
		defaults_ready = true;
	}
	defaults.restaurant_id = restaurant_id;
	return &defaults;
}

/* the setting's spelling of a downgrade mode */
const char *
TierDowngradeName(TierDowngrade mode)
{
	switch (mode)
	{
		case TIER_DOWNGRADE_ROLLING_12_MONTHS:
			return "rolling_12_months";
		case TIER_DOWNGRADE_ANNIVERSARY:
			return "anniversary";
		default:
			return "none";
	}
}
