/*
 * insights.h
 *	  Insights: recording with threading (insights.c), detectors (detectors.c).
 */
#ifndef AURA_INSIGHTS_H
#define AURA_INSIGHTS_H

#include "postgres.h"

#include "utils/timestamp.h"

/* raise 42501 unless the caller may act for this restaurant */
extern void InsightsCheckTenant(int64 restaurant);

/* recurrence of sorted times; category of a thread */
extern void InsightRecurrence(TimestampTz *times, int n, bool *recurring, int64 *period_us);
extern const char *InsightThreadCategory(const char *type, bool recurring, int64 period_us);

#endif							/* AURA_INSIGHTS_H */
