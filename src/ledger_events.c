/*
 * ledger_events.c
 *	  What the ledger tells other modules: consumer events in
 *	  aura.loyalty_events, written only when a consumer wants them.
 *
 * The ledger carries no other module's triggers on its tables (a row
 * trigger on aura.loyalty_accounts or aura.points_transactions would force
 * every posting through the SQL executor).  Instead it records, in the
 * posting's transaction, the events a consumer has asked for:
 *
 *	 order.completed	an attached order earned (order count, amount, spend
 *						before and after)
 *	 order.reversed		an attached order was fully reversed (cancelled,
 *						refunded)
 *	 points.earned		an earning (order or aura.earn_points) of points > 0
 *	 birthday.awarded	aura.award_birthdays marked a customer's year
 *
 * The consumer today is the rewards module (a deferred constraint trigger on
 * aura.loyalty_events issues rewards at commit).  Which events a restaurant
 * needs is the bit mask answered by aura._rewards_event_demand(restaurant),
 * cached per backend and dropped when aura.reward_templates changes in a way
 * that matters (templates added or removed, trigger or active changed): a
 * restaurant without such templates pays nothing on its earning path.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "ledger.h"

typedef struct DemandEntry
{
	int64		restaurant_id;	/* hash key */
	uint32		mask;
} DemandEntry;

static MemoryContext demand_cxt = NULL;
static HTAB *demand_cache = NULL;
static bool demand_stale = false;
static Oid	demand_relid = InvalidOid;

static SPIPlanPtr plan_demand;
static SPIPlanPtr plan_record;

void
LedgerEventsInvalidate(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == demand_relid)
		demand_stale = true;
}

/*
 * LedgerEventDemand
 *		The events (LEDGER_EV_* bits) a restaurant's consumers need.  SPI
 *		connected.
 */
uint32
LedgerEventDemand(int64 restaurant_id)
{
	static const Oid types[1] = {INT8OID};
	DemandEntry *e;
	Datum		values[1];
	bool		found;
	bool		isnull;
	int			rc;
	uint32		mask;

	if (demand_cache == NULL || demand_stale)
	{
		HASHCTL		ctl;

		if (demand_cxt == NULL)
			demand_cxt = AllocSetContextCreate(CacheMemoryContext, "aura ledger event demand",
											   ALLOCSET_SMALL_SIZES);
		else
			MemoryContextReset(demand_cxt);
		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(int64);
		ctl.entrysize = sizeof(DemandEntry);
		ctl.hcxt = demand_cxt;
		demand_cache = hash_create("aura ledger event demand", 64, &ctl,
								   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		demand_stale = false;
		demand_relid = get_relname_relid("reward_templates", get_namespace_oid("aura", false));
	}
	e = hash_search(demand_cache, &restaurant_id, HASH_FIND, NULL);
	if (e)
		return e->mask;

	LedgerPlan(&plan_demand, "SELECT aura._rewards_event_demand($1)", 1, types);
	values[0] = Int64GetDatum(restaurant_id);
	rc = SPI_execute_plan(plan_demand, values, NULL, true, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "aura: event demand query failed");
	mask = (uint32) DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (isnull)
		mask = 0;
	SPI_freetuptable(SPI_tuptable);
	/* the query may have invalidated the cache (a concurrent change) */
	if (demand_stale || demand_cache == NULL)
		return mask;
	e = hash_search(demand_cache, &restaurant_id, HASH_ENTER, &found);
	e->mask = mask;
	return mask;
}

/*
 * LedgerRecordEvent
 *		Record a consumer event in aura.loyalty_events (no notification: these
 *		are for aura's own modules).  SPI connected.
 */
void
LedgerRecordEvent(int64 restaurant_id, const char *event_type, const char *json)
{
	static const Oid types[3] = {INT8OID, TEXTOID, TEXTOID};
	Datum		values[3];
	int			rc;

	LedgerPlan(&plan_record,
			   "INSERT INTO aura.loyalty_events (restaurant_id, event_type, data) "
			   "VALUES ($1, $2, $3::jsonb)", 3, types);
	values[0] = Int64GetDatum(restaurant_id);
	values[1] = CStringGetTextDatum(event_type);
	values[2] = CStringGetTextDatum(json);
	rc = SPI_execute_plan(plan_record, values, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "aura: event insert failed: %s", SPI_result_code_string(rc));
}

static uint32
EventBit(const char *event_type)
{
	if (strcmp(event_type, "order.completed") == 0)
		return LEDGER_EV_ORDER_COMPLETED;
	if (strcmp(event_type, "points.earned") == 0)
		return LEDGER_EV_POINTS_EARNED;
	if (strcmp(event_type, "birthday.awarded") == 0)
		return LEDGER_EV_BIRTHDAY;
	if (strcmp(event_type, "order.reversed") == 0)
		return LEDGER_EV_ORDER_REVERSED;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown ledger consumer event \"%s\"", event_type),
			 errhint("Events: order.completed, order.reversed, points.earned, birthday.awarded.")));
	return 0;
}

PG_FUNCTION_INFO_V1(aura_ledger_consumer_event);

/*
 * aura._ledger_consumer_event(restaurant_id, event_type, data jsonb) → boolean
 *		For aura's own SQL functions (aura.award_birthdays): record the event
 *		if a consumer of the restaurant wants it; true when recorded.
 */
Datum
aura_ledger_consumer_event(PG_FUNCTION_ARGS)
{
	int64		restaurant_id;
	char	   *event_type;
	bool		wanted;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("restaurant_id, event_type and data must not be NULL")));
	restaurant_id = PG_GETARG_INT64(0);
	event_type = text_to_cstring(PG_GETARG_TEXT_PP(1));
	SPI_connect();
	wanted = (LedgerEventDemand(restaurant_id) & EventBit(event_type)) != 0;
	if (wanted)
		LedgerRecordEvent(restaurant_id, event_type,
						  DatumGetCString(DirectFunctionCall1(jsonb_out, PG_GETARG_DATUM(2))));
	SPI_finish();
	PG_RETURN_BOOL(wanted);
}
