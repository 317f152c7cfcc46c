/*
 * tiers.h
 *	  Loyalty tiers of a restaurant, cached per backend.
 */
#ifndef AURA_TIERS_H
#define AURA_TIERS_H

#include "postgres.h"

#include "utils/numeric.h"
#include "utils/timestamp.h"

#define TIER_NAME_MAX 64

typedef struct TierDef
{
	char		name[TIER_NAME_MAX];
	int64		min_points;
	Numeric		min_spend;		/* NULL: no minimum */
	int64		min_orders;		/* -1: no minimum */
	int32		min_months;		/* -1: no minimum */
	Numeric		multiplier;		/* benefits.earn_multiplier, default 1 */
} TierDef;

typedef struct TierSet
{
	int64		restaurant_id;
	int			ntiers;
	TierDef    *tiers;			/* ascending min_points */
} TierSet;

/* SPI connected: the restaurant's tiers, default tiers created on first use */
extern const TierSet *TiersGet(int64 restaurant_id);
extern int	TiersFind(const TierSet *set, const char *name);
extern int	TiersQualify(const TierSet *set, int64 points, Numeric spend, int64 orders,
						 TimestampTz enrolled_at, TimestampTz now);
/* SPI connected: history row and tier.changed event */
extern void TiersRecordChange(int64 restaurant_id, int64 customer_id, const char *old_tier,
							  const char *new_tier, const char *reason);

#endif							/* AURA_TIERS_H */
