/*
 * multipliers.c
 *	  Points multiplier campaigns (aura.points_multipliers): "double points
 *	  this weekend", optionally for some tiers only.  Order earnings are
 *	  multiplied by every campaign active at the posting's time for the
 *	  account's tier (ledger.c, ApplyLocked).
 *
 * The active and future campaigns of a restaurant are cached per backend;
 * a change of the table drops the cache in every backend at commit (a
 * statement trigger sends a relcache invalidation of the table, as for the
 * tiers).
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "ledger.h"

typedef struct Multiplier
{
	char	   *name;
	Numeric		factor;
	TimestampTz starts_at;
	TimestampTz ends_at;
	int			ntiers;			/* 0: every tier */
	char	  **tiers;
} Multiplier;

typedef struct MultiplierEntry
{
	int64		restaurant_id;	/* hash key */
	int			n;
	Multiplier *m;
} MultiplierEntry;

static MemoryContext mult_cxt = NULL;
static HTAB *mult_cache = NULL;
static bool mult_stale = false;
static Oid	mult_relid = InvalidOid;
static SPIPlanPtr plan_mult;

void
MultipliersInvalidate(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == mult_relid)
		mult_stale = true;
}

/* the campaigns of a restaurant that have not ended (SPI connected) */
static MultiplierEntry *
MultipliersGet(int64 restaurant_id)
{
	static const Oid types[1] = {INT8OID};
	MultiplierEntry *e;
	Datum		values[1];
	bool		found;
	uint64		i;
	int			rc;
	MemoryContext old;

	if (mult_cache == NULL || mult_stale)
	{
		HASHCTL		ctl;

		if (mult_cxt == NULL)
			mult_cxt = AllocSetContextCreate(CacheMemoryContext, "aura points multipliers",
											 ALLOCSET_SMALL_SIZES);
		else
			MemoryContextReset(mult_cxt);
		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(int64);
		ctl.entrysize = sizeof(MultiplierEntry);
		ctl.hcxt = mult_cxt;
		mult_cache = hash_create("aura points multipliers", 64, &ctl,
								 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		mult_stale = false;
		mult_relid = get_relname_relid("points_multipliers", get_namespace_oid("aura", false));
	}
	e = hash_search(mult_cache, &restaurant_id, HASH_FIND, NULL);
	if (e)
		return e;

	LedgerPlan(&plan_mult,
			   "SELECT name, multiplier, starts_at, ends_at, tiers FROM aura.points_multipliers "
			   "WHERE restaurant_id = $1 AND active AND ends_at > now() ORDER BY id",
			   1, types);
	values[0] = Int64GetDatum(restaurant_id);
	rc = SPI_execute_plan(plan_mult, values, NULL, true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "aura: multiplier query failed: %s", SPI_result_code_string(rc));
	e = hash_search(mult_cache, &restaurant_id, HASH_ENTER, &found);
	old = MemoryContextSwitchTo(mult_cxt);
	e->n = (int) SPI_processed;
	e->m = palloc0(sizeof(Multiplier) * (e->n + 1));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		Multiplier *m = &e->m[i];
		bool		isnull;
		Datum	   *elems;
		bool	   *nulls;
		int			k;

		m->name = TextDatumGetCString(SPI_getbinval(tup, desc, 1, &isnull));
		m->factor = DatumGetNumericCopy(SPI_getbinval(tup, desc, 2, &isnull));
		m->starts_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 3, &isnull));
		m->ends_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 4, &isnull));
		deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(tup, desc, 5, &isnull)),
						  TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &m->ntiers);
		m->tiers = palloc(sizeof(char *) * (m->ntiers + 1));
		for (k = 0; k < m->ntiers; k++)
			m->tiers[k] = TextDatumGetCString(elems[k]);
	}
	MemoryContextSwitchTo(old);
	SPI_freetuptable(SPI_tuptable);
	return e;
}

/*
 * MultipliersFactor
 *		The product of the campaign multipliers that apply to an earning at
 *		now for an account in tier (NULL: no tier); NULL when none applies.
 *		*applied gets their names and factors for the ledger row's reason.
 *		SPI connected.
 */
Numeric
MultipliersFactor(int64 restaurant_id, const char *tier, TimestampTz now, char **applied)
{
	MultiplierEntry *e = MultipliersGet(restaurant_id);
	Numeric		product = NULL;
	StringInfoData why;
	int			i;

	*applied = NULL;
	if (e->n == 0)
		return NULL;
	initStringInfo(&why);
	for (i = 0; i < e->n; i++)
	{
		Multiplier *m = &e->m[i];
		bool		hit = m->ntiers == 0;
		int			k;

		if (now < m->starts_at || now >= m->ends_at)
			continue;
		for (k = 0; k < m->ntiers && !hit; k++)
			hit = tier != NULL && strcmp(tier, m->tiers[k]) == 0;
		if (!hit)
			continue;
		product = product == NULL ? m->factor :
			DatumGetNumeric(DirectFunctionCall2(numeric_mul, NumericGetDatum(product),
												NumericGetDatum(m->factor)));
		appendStringInfo(&why, "%s%s x%s", why.len ? ", " : "campaign multipliers: ", m->name,
						 DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(m->factor))));
	}
	if (product == NULL)
		return NULL;
	*applied = pnstrdup(why.data, pg_mbcliplen(why.data, why.len, 1000));
	return DatumGetNumericCopy(NumericGetDatum(product));
}
