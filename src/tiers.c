/*
 * tiers.c
 *	  Loyalty tiers: per-restaurant definitions cached per backend, upgrade
 *	  evaluation on every posting (called by ledger.c), downgrades by
 *	  aura.review_tiers, tier history and the tier.changed event.
 *
 * A restaurant without tiers gets the defaults (Bronze 0, Silver 2000, Gold
 * 5000, Platinum 10000 lifetime points; earn multipliers 1.0/1.2/1.5/2.0) the
 * first time a posting needs them.  The cache is dropped whenever
 * aura.loyalty_tiers changes: a statement trigger sends a relcache
 * invalidation of the table, which every backend receives at commit.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "context.h"
#include "ledger.h"
#include "ledger_config.h"
#include "tiers.h"

typedef struct TierCacheEntry
{
	int64		restaurant_id;	/* hash key */
	TierSet		set;
} TierCacheEntry;

static MemoryContext tier_cxt = NULL;
static HTAB *tier_cache = NULL;
static bool tier_stale = false;
static Oid	tiers_relid = InvalidOid;

static SPIPlanPtr plan_tiers;
static SPIPlanPtr plan_defaults;
static SPIPlanPtr plan_history;

/* relcache callback: a change of aura.loyalty_tiers drops the cache */
void
TiersInvalidate(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == tiers_relid)
		tier_stale = true;
}

static void
TiersResetCache(void)
{
	HASHCTL		ctl;

	if (tier_cxt == NULL)
		tier_cxt = AllocSetContextCreate(CacheMemoryContext, "aura loyalty tiers",
										 ALLOCSET_SMALL_SIZES);
	else
		MemoryContextReset(tier_cxt);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(TierCacheEntry);
	ctl.hcxt = tier_cxt;
	tier_cache = hash_create("aura loyalty tiers", 64, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	tier_stale = false;
	tiers_relid = get_relname_relid("loyalty_tiers", get_namespace_oid("aura", false));
}

/* run the tier query of a restaurant; returns the number of rows */
static uint64
TiersQuery(int64 restaurant_id)
{
	static const Oid types[1] = {INT8OID};
	Datum		values[1];
	int			rc;

	LedgerPlan(&plan_tiers,
			   "SELECT name, min_points, min_spend, min_orders, min_months, "
			   "coalesce((benefits ->> 'earn_multiplier')::numeric, 1) "
			   "FROM aura.loyalty_tiers WHERE restaurant_id = $1 ORDER BY min_points",
			   1, types);
	values[0] = Int64GetDatum(restaurant_id);
	rc = SPI_execute_plan(plan_tiers, values, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "aura: tier query failed: %s", SPI_result_code_string(rc));
	return SPI_processed;
}

/*
 * TiersGet
 *		The tiers of a restaurant.  The pointer stays valid until the next
 *		TiersGet call.
 */
const TierSet *
TiersGet(int64 restaurant_id)
{
	TierCacheEntry *e;
	bool		found;
	uint64		n,
				i;
	MemoryContext old;

	if (tier_cache == NULL || tier_stale)
		TiersResetCache();
	e = hash_search(tier_cache, &restaurant_id, HASH_FIND, NULL);
	if (e)
		return &e->set;

	n = TiersQuery(restaurant_id);
	if (n == 0)
	{
		static const Oid types[1] = {INT8OID};
		Datum		values[1];
		int			rc;

		LedgerPlan(&plan_defaults,
				   "INSERT INTO aura.loyalty_tiers (restaurant_id, name, min_points, benefits) "
				   "SELECT $1, d.name, d.min_points, jsonb_build_object('earn_multiplier', d.m) "
				   "FROM (VALUES ('Bronze', 0, 1.0), ('Silver', 2000, 1.2), ('Gold', 5000, 1.5), "
				   "('Platinum', 10000, 2.0)) d(name, min_points, m) "
				   "WHERE EXISTS (SELECT 1 FROM aura.restaurants WHERE id = $1) "
				   "ON CONFLICT DO NOTHING",
				   1, types);
		values[0] = Int64GetDatum(restaurant_id);
		rc = SPI_execute_plan(plan_defaults, values, NULL, false, 0);
		if (rc != SPI_OK_INSERT)
			elog(ERROR, "aura: default tiers failed: %s", SPI_result_code_string(rc));
		CommandCounterIncrement();
		if (tier_stale)
			TiersResetCache();
		n = TiersQuery(restaurant_id);
	}

	e = hash_search(tier_cache, &restaurant_id, HASH_ENTER, &found);
	e->set.restaurant_id = restaurant_id;
	e->set.ntiers = (int) n;
	old = MemoryContextSwitchTo(tier_cxt);
	e->set.tiers = palloc0(sizeof(TierDef) * (n + 1));
	for (i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		TierDef    *t = &e->set.tiers[i];
		bool		isnull;
		Datum		d;

		strlcpy(t->name, TextDatumGetCString(SPI_getbinval(tup, desc, 1, &isnull)), TIER_NAME_MAX);
		t->min_points = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
		d = SPI_getbinval(tup, desc, 3, &isnull);
		t->min_spend = isnull ? NULL : DatumGetNumericCopy(d);
		d = SPI_getbinval(tup, desc, 4, &isnull);
		t->min_orders = isnull ? -1 : DatumGetInt64(d);
		d = SPI_getbinval(tup, desc, 5, &isnull);
		t->min_months = isnull ? -1 : DatumGetInt32(d);
		t->multiplier = DatumGetNumericCopy(SPI_getbinval(tup, desc, 6, &isnull));
	}
	MemoryContextSwitchTo(old);
	return &e->set;
}

int
TiersFind(const TierSet *set, const char *name)
{
	int			i;

	for (i = 0; i < set->ntiers; i++)
		if (strcmp(set->tiers[i].name, name) == 0)
			return i;
	return -1;
}

static bool
Qualifies(const TierDef *t, int64 points, Numeric spend, int64 orders,
		  TimestampTz enrolled_at, TimestampTz now)
{
	if (points < t->min_points)
		return false;
	if (t->min_spend &&
		DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(spend),
										  NumericGetDatum(t->min_spend))) < 0)
		return false;
	if (t->min_orders >= 0 && orders < t->min_orders)
		return false;
	if (t->min_months > 0)
	{
		Interval	iv;
		TimestampTz due;

		memset(&iv, 0, sizeof(iv));
		iv.month = t->min_months;
		due = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
													  TimestampTzGetDatum(enrolled_at),
													  IntervalPGetDatum(&iv)));
		if (due > now)
			return false;
	}
	return true;
}

/*
 * TiersQualify
 *		Index of the highest tier the figures qualify for, -1 for none.
 */
int
TiersQualify(const TierSet *set, int64 points, Numeric spend, int64 orders,
			 TimestampTz enrolled_at, TimestampTz now)
{
	int			i;

	for (i = set->ntiers - 1; i >= 0; i--)
		if (Qualifies(&set->tiers[i], points, spend, orders, enrolled_at, now))
			return i;
	return -1;
}

/*
 * TiersRecordChange
 *		A row in aura.tier_history and a tier.changed event.
 */
void
TiersRecordChange(int64 restaurant_id, int64 customer_id, const char *old_tier,
				  const char *new_tier, const char *reason)
{
	static const Oid types[5] = {INT8OID, INT8OID, TEXTOID, TEXTOID, TEXTOID};
	Datum		values[5];
	char		nulls[6] = "     ";
	int			rc;
	StringInfoData js;

	LedgerPlan(&plan_history,
			   "INSERT INTO aura.tier_history (restaurant_id, customer_id, old_tier, new_tier, reason) "
			   "VALUES ($1, $2, $3, $4, $5)", 5, types);
	values[0] = Int64GetDatum(restaurant_id);
	values[1] = Int64GetDatum(customer_id);
	if (old_tier)
		values[2] = CStringGetTextDatum(old_tier);
	else
		nulls[2] = 'n';
	values[3] = CStringGetTextDatum(new_tier);
	values[4] = CStringGetTextDatum(reason);
	rc = SPI_execute_plan(plan_history, values, nulls, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "aura: tier history insert failed: %s", SPI_result_code_string(rc));

	initStringInfo(&js);
	appendStringInfo(&js, "{\"customer_id\": " INT64_FORMAT ", \"old_tier\": ", customer_id);
	if (old_tier)
		escape_json(&js, old_tier);
	else
		appendStringInfoString(&js, "null");
	appendStringInfoString(&js, ", \"new_tier\": ");
	escape_json(&js, new_tier);
	appendStringInfoString(&js, ", \"reason\": ");
	escape_json(&js, reason);
	appendStringInfoChar(&js, '}');
	LedgerEmitEvent(restaurant_id, "tier.changed", js.data);
}

PG_FUNCTION_INFO_V1(aura_loyalty_cache_invalidate);
PG_FUNCTION_INFO_V1(aura_review_tiers);

/*
 * aura_loyalty_cache_invalidate
 *		Statement trigger of aura.loyalty_tiers and aura.loyalty_milestones:
 *		every backend drops its cached copy when the change commits.
 */
Datum
aura_loyalty_cache_invalidate(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "aura_loyalty_cache_invalidate: not called as a trigger");
	CacheInvalidateRelcache(td->tg_relation);
	return PointerGetDatum(NULL);
}

/*
 * ReviewRestaurant
 *		Downgrade the accounts of one restaurant; returns how many changed.
 */
static int64
ReviewRestaurant(int64 restaurant_id, TimestampTz as_of)
{
	static SPIPlanPtr plan_review;
	static SPIPlanPtr plan_downgrade;
	static const Oid types[4] = {INT8OID, TIMESTAMPTZOID, TEXTOID, INT4OID};
	static const Oid utypes[5] = {INT8OID, INT8OID, TEXTOID, TIMESTAMPTZOID, TEXTOID};
	const LedgerConfig *cfg = LedgerConfigGet(restaurant_id);
	const TierSet *set;
	Datum		values[5];
	SPITupleTable *tt;
	uint64		n,
				i;
	int64		changed = 0;
	int			rc;

	if (cfg->tier_downgrade == TIER_DOWNGRADE_NONE)
		return 0;
	set = TiersGet(restaurant_id);
	LedgerPlan(&plan_review,
			   "SELECT a.customer_id, a.tier, a.lifetime_spend_amount, a.order_count, a.enrolled_at, "
			   "  coalesce((SELECT sum(t.points) FROM aura.points_transactions t "
			   "    WHERE t.restaurant_id = a.restaurant_id AND t.customer_id = a.customer_id "
			   "      AND ((t.points > 0 AND t.kind <> 'transfer_in') OR t.kind = 'reversal') "
			   "      AND t.created_at > w.stop - interval '1 year' AND t.created_at <= w.stop), 0)::bigint "
			   "FROM aura.loyalty_accounts a "
			   "CROSS JOIN LATERAL (SELECT CASE WHEN $3 = 'anniversary' "
			   "  THEN a.enrolled_at + make_interval(years => extract(year FROM age($2, a.enrolled_at))::int) "
			   "  ELSE $2 END AS stop) w "
			   "WHERE a.restaurant_id = $1 AND a.status = 'active' AND a.tier IS NOT NULL "
			   "  AND (a.tier_since IS NULL OR a.tier_since <= $2 - make_interval(days => $4)) "
			   "  AND ($3 <> 'anniversary' OR a.enrolled_at <= $2 - interval '1 year') "
			   "ORDER BY a.customer_id",
			   4, types);
	values[0] = Int64GetDatum(restaurant_id);
	values[1] = TimestampTzGetDatum(as_of);
	values[2] = CStringGetTextDatum(TierDowngradeName(cfg->tier_downgrade));
	values[3] = Int32GetDatum(cfg->tier_grace_days);
	rc = SPI_execute_plan(plan_review, values, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "aura: tier review query failed: %s", SPI_result_code_string(rc));
	tt = SPI_tuptable;
	n = SPI_processed;
	LedgerPlan(&plan_downgrade,
			   "UPDATE aura.loyalty_accounts SET tier = $3, tier_since = $4 "
			   "WHERE restaurant_id = $1 AND customer_id = $2 AND tier = $5", 5, utypes);
	for (i = 0; i < n; i++)
	{
		HeapTuple	tup = tt->vals[i];
		bool		isnull;
		int64		customer = DatumGetInt64(SPI_getbinval(tup, tt->tupdesc, 1, &isnull));
		char	   *tier = TextDatumGetCString(SPI_getbinval(tup, tt->tupdesc, 2, &isnull));
		Numeric		spend = DatumGetNumeric(SPI_getbinval(tup, tt->tupdesc, 3, &isnull));
		int64		orders = DatumGetInt64(SPI_getbinval(tup, tt->tupdesc, 4, &isnull));
		TimestampTz enrolled = DatumGetTimestampTz(SPI_getbinval(tup, tt->tupdesc, 5, &isnull));
		int64		points = DatumGetInt64(SPI_getbinval(tup, tt->tupdesc, 6, &isnull));
		int			cur = TiersFind(set, tier);
		int			q = TiersQualify(set, points, spend, orders, enrolled, as_of);

		if (cur < 0 || q < 0 || q >= cur)
			continue;
		values[0] = Int64GetDatum(restaurant_id);
		values[1] = Int64GetDatum(customer);
		values[2] = CStringGetTextDatum(set->tiers[q].name);
		values[3] = TimestampTzGetDatum(as_of);
		values[4] = CStringGetTextDatum(tier);
		rc = SPI_execute_plan(plan_downgrade, values, NULL, false, 0);
		if (rc != SPI_OK_UPDATE)
			elog(ERROR, "aura: downgrade failed: %s", SPI_result_code_string(rc));
		if (SPI_processed == 1)
		{
			TiersRecordChange(restaurant_id, customer, tier, set->tiers[q].name, "downgrade");
			changed++;
		}
	}
	return changed;
}

/*
 * aura.review_tiers(as_of timestamptz) → bigint
 *		Downgrades under loyalty.tier_downgrade: the points earned in the
 *		window (the 12 months before as_of, or the last complete membership
 *		year) decide the tier; an account keeps its tier for
 *		loyalty.tier_grace_days after it got it.  Upgrades are never made
 *		here (postings do them).  Restaurants: the one in context, or all for
 *		aura_admin without context.  Returns the number of accounts
 *		downgraded.
 */
Datum
aura_review_tiers(PG_FUNCTION_ARGS)
{
	TimestampTz as_of = PG_ARGISNULL(0) ? GetCurrentTransactionStartTimestamp() : PG_GETARG_TIMESTAMPTZ(0);
	int64		ctx;
	int64		changed = 0;
	uint64		nr,
				r;
	int64	   *restaurants;
	int			rc;
	Datum		v[1];
	Oid			t[1] = {INT8OID};

	if (AuraCurrentRestaurant(&ctx))
		LedgerCheckTenant(ctx);
	else
	{
		ctx = 0;
		LedgerCheckTenant(0);	/* only an administrator passes without context */
	}

	SPI_connect();
	v[0] = Int64GetDatum(ctx);
	rc = SPI_execute_with_args("SELECT id FROM aura.restaurants WHERE $1 = 0 OR id = $1 ORDER BY id",
							   1, t, v, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "aura: restaurant list failed");
	nr = SPI_processed;
	restaurants = palloc(sizeof(int64) * (nr + 1));
	for (r = 0; r < nr; r++)
	{
		bool		isnull;

		restaurants[r] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull));
	}
	for (r = 0; r < nr; r++)
		changed += ReviewRestaurant(restaurants[r], as_of);
	SPI_finish();
	PG_RETURN_INT64(changed);
}
