/*
 * ledger_config.h
 *	  Loyalty settings of one restaurant, as the ledger, tiers and the order
 *	  trigger need them.  The only way the loyalty module reads settings.
 */
#ifndef AURA_LEDGER_CONFIG_H
#define AURA_LEDGER_CONFIG_H

#include "postgres.h"

#include "utils/numeric.h"

typedef enum TierDowngrade
{
	TIER_DOWNGRADE_NONE,
	TIER_DOWNGRADE_ROLLING_12_MONTHS,
	TIER_DOWNGRADE_ANNIVERSARY
} TierDowngrade;

typedef struct LedgerConfig
{
	int64		restaurant_id;
	Numeric		points_per_unit;	/* loyalty.points_per_unit */
	Numeric		point_value;		/* loyalty.point_value (money per point) */
	int32		points_expiry_days; /* loyalty.points_expiry_days, 0: never */
	int32		pending_days;		/* loyalty.pending_days */
	bool		allow_negative_balance; /* loyalty.allow_negative_balance */
	TierDowngrade tier_downgrade;	/* loyalty.tier_downgrade */
	int32		tier_grace_days;	/* loyalty.tier_grace_days */
	int64		birthday_points;	/* loyalty.birthday_points */
} LedgerConfig;

/* the restaurant's loyalty settings; valid until the next call */
extern const LedgerConfig *LedgerConfigGet(int64 restaurant_id);
extern const char *TierDowngradeName(TierDowngrade mode);

#endif							/* AURA_LEDGER_CONFIG_H */
