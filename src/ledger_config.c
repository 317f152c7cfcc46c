/*
 * ledger_config.c
 *	  The loyalty module's single door to the settings: a small per-restaurant
 *	  struct of the loyalty.* settings, read through the settings module's C
 *	  API (src/settings.h).
 *
 * Caching: the settings module keeps a backend-local cache of definitions
 * and values that every backend drops when a settings table changes (a
 * relcache invalidation sent at commit), so a read here costs a few hash
 * lookups and no query, and is never stale after a committed change.  This
 * file keeps no copy of its own on top of it: one struct, refilled per call.
 * Settings are resolved at restaurant scope (no location or user).
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "ledger_config.h"
#include "settings.h"

static LedgerConfig config;
static MemoryContext config_cxt = NULL;

static int64
ReadInt(const char *key, int64 restaurant_id, int64 fallback)
{
	int64		v;

	return AuraGetSettingInt(key, restaurant_id, 0, 0, &v) ? v : fallback;
}

static Numeric
ReadNumeric(const char *key, int64 restaurant_id, const char *fallback)
{
	Numeric		v;

	if (AuraGetSettingNumeric(key, restaurant_id, 0, 0, &v))
		return v;
	return DatumGetNumeric(DirectFunctionCall3(numeric_in, CStringGetDatum(fallback),
											   ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
}

/*
 * LedgerConfigGet
 *		The loyalty settings of a restaurant.  The struct (and its numerics)
 *		stays valid until the next call.  The fallbacks apply only when a
 *		setting has neither a value nor a default; they equal the defaults
 *		of the settings catalog.
 */
const LedgerConfig *
LedgerConfigGet(int64 restaurant_id)
{
	MemoryContext old;
	bool		b;
	char	   *mode;

	if (config_cxt == NULL)
		config_cxt = AllocSetContextCreate(TopMemoryContext, "aura ledger config",
										   ALLOCSET_SMALL_SIZES);
	MemoryContextReset(config_cxt);
	old = MemoryContextSwitchTo(config_cxt);

	config.restaurant_id = restaurant_id;
	config.points_per_unit = ReadNumeric("loyalty.points_per_unit", restaurant_id, "1");
	config.point_value = ReadNumeric("loyalty.point_value", restaurant_id, "0.01");
	config.points_expiry_days = (int32) ReadInt("loyalty.points_expiry_days", restaurant_id, 365);
	config.pending_days = (int32) ReadInt("loyalty.pending_days", restaurant_id, 0);
	config.allow_negative_balance =
		AuraGetSettingBool("loyalty.allow_negative_balance", restaurant_id, 0, 0, &b) ? b : false;
	config.tier_downgrade = TIER_DOWNGRADE_NONE;
	if (AuraGetSettingText("loyalty.tier_downgrade", restaurant_id, 0, 0, &mode))
	{
		if (strcmp(mode, "rolling_12_months") == 0)
			config.tier_downgrade = TIER_DOWNGRADE_ROLLING_12_MONTHS;
		else if (strcmp(mode, "anniversary") == 0)
			config.tier_downgrade = TIER_DOWNGRADE_ANNIVERSARY;
	}
	config.tier_grace_days = (int32) ReadInt("loyalty.tier_grace_days", restaurant_id, 30);
	config.birthday_points = ReadInt("loyalty.birthday_points", restaurant_id, 0);

	MemoryContextSwitchTo(old);
	return &config;
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
