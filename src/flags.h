/*
 * flags.h
 *	  Feature flags: compiled, cached, Unleash-compatible evaluation.
 */
#ifndef AURA_FLAGS_H
#define AURA_FLAGS_H

#include "postgres.h"

/* registers the cache invalidation callback */
extern void FlagsInit(void);

#endif							/* AURA_FLAGS_H */
