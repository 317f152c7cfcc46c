/*
 * murmur3.h
 *	  MurmurHash3 x86 32-bit, the hash Unleash uses for rollout buckets.
 */
#ifndef AURA_MURMUR3_H
#define AURA_MURMUR3_H

#include "postgres.h"

extern uint32 AuraMurmur3_32(const void *data, size_t len, uint32 seed);

/* Unleash's normalisation: murmur("<group>:<id>") % normalizer + 1 */
extern int32 AuraFlagBucket(const char *group, size_t group_len,
							const char *id, size_t id_len,
							uint32 normalizer, uint32 seed);

#endif							/* AURA_MURMUR3_H */
