/*
 * murmur3.c
 *	  MurmurHash3, x86 32-bit variant (Austin Appleby's public-domain
 *	  algorithm), written for aura, and aura.flag_bucket().
 *
 * Unleash SDKs place a user in a rollout bucket with
 *	  murmur3_x86_32("<groupId>:<stickiness value>", seed) % normalizer + 1
 * over the UTF-8 bytes of the string: seed 0 and normalizer 100 for
 * rollouts, seed 86028157 and the total weight for variants.  aura must
 * answer exactly as the SDKs do, so this is the same function bit for bit.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"

#include "murmur3.h"

#define MURMUR_C1 0xcc9e2d51U
#define MURMUR_C2 0x1b873593U

static inline uint32
Rotl32(uint32 x, int r)
{
	return (x << r) | (x >> (32 - r));
}

/*
 * AuraMurmur3_32
 *		Hash len bytes of data.  Blocks are read little-endian byte by
 *		byte, so the result does not depend on the host's byte order.
 */
uint32
AuraMurmur3_32(const void *data, size_t len, uint32 seed)
{
	const unsigned char *p = (const unsigned char *) data;
	size_t		nblocks = len / 4;
	uint32		h = seed;
	uint32		k;
	size_t		i;

	for (i = 0; i < nblocks; i++, p += 4)
	{
		k = (uint32) p[0] | ((uint32) p[1] << 8) |
			((uint32) p[2] << 16) | ((uint32) p[3] << 24);
		k *= MURMUR_C1;
		k = Rotl32(k, 15);
		k *= MURMUR_C2;
		h ^= k;
		h = Rotl32(h, 13);
		h = h * 5 + 0xe6546b64U;
	}

	/* the 0 to 3 trailing bytes */
	k = 0;
	switch (len & 3)
	{
		case 3:
			k ^= (uint32) p[2] << 16;
			/* FALLTHROUGH */
		case 2:
			k ^= (uint32) p[1] << 8;
			/* FALLTHROUGH */
		case 1:
			k ^= (uint32) p[0];
			k *= MURMUR_C1;
			k = Rotl32(k, 15);
			k *= MURMUR_C2;
			h ^= k;
	}

	/* finalisation mix */
	h ^= (uint32) len;
	h ^= h >> 16;
	h *= 0x85ebca6bU;
	h ^= h >> 13;
	h *= 0xc2b2ae35U;
	h ^= h >> 16;
	return h;
}

/*
 * AuraFlagBucket
 *		Unleash's normalized value of "<group>:<id>": 1..normalizer.  The
 *		string is hashed in place when short, so the hot path allocates
 *		nothing.
 */
int32
AuraFlagBucket(const char *group, size_t group_len, const char *id, size_t id_len,
			   uint32 normalizer, uint32 seed)
{
	char		local[256];
	char	   *buf = local;
	size_t		len = group_len + 1 + id_len;
	uint32		h;

	if (len > sizeof(local))
		buf = palloc(len);
	memcpy(buf, group, group_len);
	buf[group_len] = ':';
	memcpy(buf + group_len + 1, id, id_len);
	h = AuraMurmur3_32(buf, len, seed);
	if (buf != local)
		pfree(buf);
	return (int32) (h % normalizer) + 1;
}

PG_FUNCTION_INFO_V1(aura_flag_bucket);

/*
 * aura_flag_bucket
 *		SQL aura.flag_bucket(group_id, id, normalizer, seed): the bucket an
 *		Unleash SDK computes for this group and stickiness value.
 */
Datum
aura_flag_bucket(PG_FUNCTION_ARGS)
{
	text	   *group;
	text	   *id;
	int32		normalizer;
	int64		seed;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	group = PG_GETARG_TEXT_PP(0);
	id = PG_GETARG_TEXT_PP(1);
	normalizer = PG_ARGISNULL(2) ? 100 : PG_GETARG_INT32(2);
	seed = PG_ARGISNULL(3) ? 0 : PG_GETARG_INT64(3);

	if (normalizer <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("normalizer must be positive"),
				 errdetail("The normalizer was %d.", normalizer),
				 errhint("Use 100 for rollout percentages, or the total variant weight.")));
	if (seed < 0 || seed > (int64) PG_UINT32_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("seed must be between 0 and 4294967295"),
				 errdetail("The seed was " INT64_FORMAT ".", seed),
				 errhint("Unleash uses seed 0 for rollouts and 86028157 for variants.")));

	PG_RETURN_INT32(AuraFlagBucket(VARDATA_ANY(group), VARSIZE_ANY_EXHDR(group),
								   VARDATA_ANY(id), VARSIZE_ANY_EXHDR(id),
								   (uint32) normalizer, (uint32) seed));
}
