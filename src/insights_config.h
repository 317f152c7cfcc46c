/*
 * insights_config.h
 *	  The insights.* settings of a restaurant, read in one place.
 */
#ifndef AURA_INSIGHTS_CONFIG_H
#define AURA_INSIGHTS_CONFIG_H

#include "postgres.h"

typedef struct InsightsConfig
{
	int64		thread_window_us;	/* insights.thread_window */
	int64		dedupe_window_us;	/* insights.dedupe_window */
	int32		auto_dismiss_min_ratings;	/* insights.auto_dismiss_min_ratings */
	double		auto_dismiss_irrelevant_ratio;	/* insights.auto_dismiss_irrelevant_ratio */
	int64		export_row_cap; /* insights.export_row_cap */
} InsightsConfig;

extern void InsightsConfigGet(int64 restaurant_id, InsightsConfig *cfg);

#endif							/* AURA_INSIGHTS_CONFIG_H */
