/*
 * orders.c
 *	  The order trigger: an application's orders table attached with
 *	  aura.attach_orders earns points when an order is completed and loses
 *	  them when it is cancelled or refunded, in the order's own transaction.
 *	  Also partial refunds (aura.refund_order_points) and milestone rules.
 *
 * The trigger's arguments name the columns (restaurant, customer, amount,
 * status, order id) and carry the completed and reversed status values;
 * they are resolved once per statement and kept in fn_extra.  The order id
 * is the idempotency key ("order:<id>"), so a re-fired trigger or a repeated
 * update never posts twice.  Every order-related posting holds the
 * customer's account lock while it reads what the order earned and what was
 * reversed already, so a cancel racing a completion or a refund is
 * serialized per order.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/tuplestore.h"

#include "ledger.h"
#include "ledger_config.h"

#define ORDER_ID_MAX 150
#define ROWS_PER_SPI 1024		/* rows between SPI reconnections (bulk inserts) */

/* per-statement state of the trigger, kept in fn_extra */
typedef struct OrdersTrigState
{
	Oid			relid;
	int			att_restaurant;
	int			att_customer;
	int			att_amount;
	int			att_status;
	int			att_order;
	Oid			typ_restaurant;
	Oid			typ_customer;
	Oid			typ_amount;
	FmgrInfo	out_status;
	FmgrInfo	out_order;
	int			ncompleted;
	char	  **completed;
	int			nreversed;
	char	  **reversed;
} OrdersTrigState;

/* milestone rules of a restaurant, cached */
typedef struct Milestone
{
	int64		id;
	bool		nth_order;
	Numeric		threshold;
	char	   *name;
} Milestone;

typedef struct MilestoneEntry
{
	int64		restaurant_id;
	int			n;
	Milestone  *rules;
} MilestoneEntry;

static MemoryContext ms_cxt = NULL;
static HTAB *ms_cache = NULL;
static bool ms_stale = false;
static Oid	ms_relid = InvalidOid;

static SPIPlanPtr plan_ms;
static SPIPlanPtr plan_ms_hit;
static SPIPlanPtr plan_earned;
static SPIPlanPtr plan_reversed;

void
MilestonesInvalidate(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == ms_relid)
		ms_stale = true;
}

/* the milestone rules of a restaurant (SPI connected) */
static MilestoneEntry *
MilestonesGet(int64 restaurant_id)
{
	static const Oid types[1] = {INT8OID};
	MilestoneEntry *e;
	bool		found;
	Datum		values[1];
	int			rc;
	uint64		i;
	MemoryContext old;

	if (ms_cache == NULL || ms_stale)
	{
		HASHCTL		ctl;

		if (ms_cxt == NULL)
			ms_cxt = AllocSetContextCreate(CacheMemoryContext, "aura milestones", ALLOCSET_SMALL_SIZES);
		else
			MemoryContextReset(ms_cxt);
		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(int64);
		ctl.entrysize = sizeof(MilestoneEntry);
		ctl.hcxt = ms_cxt;
		ms_cache = hash_create("aura milestones", 64, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		ms_stale = false;
		ms_relid = get_relname_relid("loyalty_milestones", get_namespace_oid("aura", false));
	}
	e = hash_search(ms_cache, &restaurant_id, HASH_FIND, NULL);
	if (e)
		return e;

	LedgerPlan(&plan_ms,
			   "SELECT id, kind = 'nth_order', threshold, name FROM aura.loyalty_milestones "
			   "WHERE restaurant_id = $1 ORDER BY id", 1, types);
	values[0] = Int64GetDatum(restaurant_id);
	rc = SPI_execute_plan(plan_ms, values, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "aura: milestone query failed");
	e = hash_search(ms_cache, &restaurant_id, HASH_ENTER, &found);
	e->n = (int) SPI_processed;
	old = MemoryContextSwitchTo(ms_cxt);
	e->rules = palloc0(sizeof(Milestone) * (e->n + 1));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		e->rules[i].id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		e->rules[i].nth_order = DatumGetBool(SPI_getbinval(tup, desc, 2, &isnull));
		e->rules[i].threshold = DatumGetNumericCopy(SPI_getbinval(tup, desc, 3, &isnull));
		e->rules[i].name = TextDatumGetCString(SPI_getbinval(tup, desc, 4, &isnull));
	}
	MemoryContextSwitchTo(old);
	return e;
}

static int
NumCmp(Numeric a, Numeric b)
{
	return DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(a), NumericGetDatum(b)));
}

/*
 * MilestonesCheck
 *		Record the milestones an order crossed: the nth order, or a lifetime
 *		spend threshold; each once per customer, with a milestone.reached
 *		event for the rewards module.
 */
static void
MilestonesCheck(int64 restaurant_id, int64 customer_id, LedgerPosting *p, const char *order_ref)
{
	static const Oid types[4] = {INT8OID, INT8OID, INT8OID, TEXTOID};
	MilestoneEntry *e = MilestonesGet(restaurant_id);
	int			i;
	int			n = e->n;
	Milestone  *rules;

	if (n == 0)
		return;
	/* copy: the cache may be dropped by the inserts below */
	rules = palloc(sizeof(Milestone) * n);
	memcpy(rules, e->rules, sizeof(Milestone) * n);
	for (i = 0; i < n; i++)
	{
		Milestone  *m = &rules[i];
		bool		crossed;
		Datum		values[4];
		int			rc;

		if (m->nth_order)
		{
			Numeric		b = int64_to_numeric(p->out_orders_before);
			Numeric		a = int64_to_numeric(p->out_orders_after);

			crossed = NumCmp(b, m->threshold) < 0 && NumCmp(a, m->threshold) >= 0;
		}
		else
			crossed = NumCmp(p->out_spend_before, m->threshold) < 0 &&
				NumCmp(p->out_spend_after, m->threshold) >= 0;
		if (!crossed)
			continue;
		LedgerPlan(&plan_ms_hit,
				   "INSERT INTO aura.milestone_hits (restaurant_id, milestone_id, customer_id, order_ref) "
				   "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING", 4, types);
		values[0] = Int64GetDatum(restaurant_id);
		values[1] = Int64GetDatum(m->id);
		values[2] = Int64GetDatum(customer_id);
		values[3] = CStringGetTextDatum(order_ref);
		rc = SPI_execute_plan(plan_ms_hit, values, NULL, false, 0);
		if (rc != SPI_OK_INSERT)
			elog(ERROR, "aura: milestone insert failed");
		if (SPI_processed == 1)
		{
			StringInfoData js;

			initStringInfo(&js);
			appendStringInfo(&js, "{\"customer_id\": " INT64_FORMAT ", \"milestone_id\": " INT64_FORMAT
							 ", \"kind\": \"%s\", \"name\": ", customer_id, m->id,
							 m->nth_order ? "nth_order" : "lifetime_spend");
			escape_json(&js, m->name);
			appendStringInfoString(&js, ", \"order\": ");
			escape_json(&js, order_ref);
			appendStringInfoChar(&js, '}');
			LedgerEmitEvent(restaurant_id, "milestone.reached", js.data);
		}
	}
}

/* the earning of an order: its transaction id, points, customer, amount */
typedef struct OrderEarning
{
	bool		found;
	int64		txid;
	int64		customer_id;
	int64		points;
	Numeric		amount;
	int64		reversed_points;	/* already reversed (positive) */
	Numeric		refunded_amount;	/* money refunded so far */
	bool		fully_reversed;
} OrderEarning;

static void
OrderEarningGet(int64 restaurant_id, const char *order_ref, OrderEarning *oe)
{
	static const Oid types[2] = {INT8OID, TEXTOID};
	Datum		values[2];
	int			rc;
	bool		isnull;
	HeapTuple	tup;
	TupleDesc	desc;
	Datum		d;

	memset(oe, 0, sizeof(*oe));
	LedgerPlan(&plan_earned,
			   "SELECT id, customer_id, points, coalesce(amount, 0) FROM aura.points_transactions "
			   "WHERE restaurant_id = $1 AND idempotency_key = 'order:' || $2", 2, types);
	values[0] = Int64GetDatum(restaurant_id);
	values[1] = CStringGetTextDatum(order_ref);
	rc = SPI_execute_plan(plan_earned, values, NULL, false, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "aura: order lookup failed");
	if (SPI_processed == 0)
		return;
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	oe->found = true;
	oe->txid = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
	oe->customer_id = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
	oe->points = DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull));
	oe->amount = DatumGetNumericCopy(SPI_getbinval(tup, desc, 4, &isnull));

	LedgerPlan(&plan_reversed,
			   "SELECT coalesce(-sum(points), 0)::bigint, coalesce(sum(amount), 0), "
			   "bool_or(idempotency_key = 'order-reversal:' || $2) "
			   "FROM aura.points_transactions "
			   "WHERE restaurant_id = $1 AND reference = $2 AND kind = 'reversal' AND source = 'order'",
			   2, types);
	rc = SPI_execute_plan(plan_reversed, values, NULL, false, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "aura: order reversal lookup failed");
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	oe->reversed_points = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
	oe->refunded_amount = DatumGetNumericCopy(SPI_getbinval(tup, desc, 2, &isnull));
	d = SPI_getbinval(tup, desc, 3, &isnull);
	oe->fully_reversed = !isnull && DatumGetBool(d);
}

/* idempotency keys of an order: "order:<id>" earns, "order-reversal:<id>" reverses */
static char *
OrderKey(const char *order_ref, const char *suffix)
{
	return psprintf("order%s:%s", suffix, order_ref);
}

static char *
NumText(Numeric n)
{
	return DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(n)));
}

/*
 * OrderCompletedEvent
 *		order.completed for the consumers that want it (the rewards
 *		module's order_complete templates), with the figures of the order.
 */
static void
OrderCompletedEvent(LedgerPosting *p, int64 txid, const char *order_ref)
{
	StringInfoData js;
	Numeric		delta;

	if (!(LedgerEventDemand(p->restaurant_id) & LEDGER_EV_ORDER_COMPLETED))
		return;
	delta = DatumGetNumeric(DirectFunctionCall2(numeric_sub, NumericGetDatum(p->out_spend_after),
												NumericGetDatum(p->out_spend_before)));
	initStringInfo(&js);
	appendStringInfo(&js, "{\"customer_id\": " INT64_FORMAT ", \"order\": ", p->customer_id);
	escape_json(&js, order_ref);
	appendStringInfo(&js, ", \"transaction_id\": " INT64_FORMAT ", \"points\": " INT64_FORMAT
					 ", \"order_count\": " INT64_FORMAT ", \"amount\": %s, \"spend_before\": %s"
					 ", \"spend_after\": %s}",
					 txid, p->out_points, p->out_orders_after, NumText(delta),
					 NumText(p->out_spend_before), NumText(p->out_spend_after));
	LedgerRecordEvent(p->restaurant_id, "order.completed", js.data);
}

/*
 * post the earning of a completed order (SPI connected); b: the statement's
 * batch, NULL for one posting on its own
 */
static void
OrderEarn(LedgerBatch *b, int64 restaurant_id, int64 customer_id, Numeric amount, const char *order_ref)
{
	int64		txid;
	const LedgerConfig *cfg = b ? LedgerBatchConfig(b, restaurant_id) : LedgerConfigGet(restaurant_id);
	LedgerPosting p;
	bool		posted;

	memset(&p, 0, sizeof(p));
	p.restaurant_id = restaurant_id;
	p.customer_id = customer_id;
	p.kind = LK_EARN;
	p.source = "order";
	p.reference = order_ref;
	p.idempotency_key = OrderKey(order_ref, "");
	p.key_exists_ok = true;
	p.allow_zero = true;
	p.create_account = true;
	p.skip_inactive = true;
	p.amount = amount;
	/* a negative amount earns nothing and adds no spend */
	if (NumCmp(amount, int64_to_numeric(0)) < 0)
		amount = int64_to_numeric(0);
	p.spend_delta = amount;
	p.order_delta = 1;
	p.earn_base = DatumGetNumeric(DirectFunctionCall2(numeric_mul, NumericGetDatum(amount),
													  NumericGetDatum(cfg->points_per_unit)));
	if (b)
		p.cfg = cfg;
	if (b)
		txid = LedgerBatchPost(b, &p, &posted);
	else
		txid = LedgerPost(&p, &posted);
	if (posted)
	{
		OrderCompletedEvent(&p, txid, order_ref);
		MilestonesCheck(restaurant_id, customer_id, &p, order_ref);
	}
}

/*
 * OrderReverse
 *		Reverse what an order earned and is not reversed yet; refunded is
 *		NULL for a full reversal (status change), else the money refunded
 *		now out of original.  Returns the transaction id, 0 when nothing
 *		was posted.
 */
static int64
OrderReverse(int64 restaurant_id, const char *order_ref, Numeric refunded, Numeric original,
			 const char *idempotency_key, bool from_trigger)
{
	OrderEarning oe;
	LedgerPosting p;
	Numeric		zero = int64_to_numeric(0);
	int64		points;
	int64		txid;
	bool		posted;

	OrderEarningGet(restaurant_id, order_ref, &oe);
	if (oe.found)
	{
		/*
		 * The account lock serializes everything done to this order (its
		 * earning, refunds, cancellation); read the figures again under it.
		 */
		(void) LedgerLockAccount(restaurant_id, oe.customer_id);
		OrderEarningGet(restaurant_id, order_ref, &oe);
	}
	if (!oe.found)
	{
		if (from_trigger)
			return 0;
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("order \"%s\" has earned no points in restaurant " INT64_FORMAT,
						order_ref, restaurant_id)));
	}

	memset(&p, 0, sizeof(p));
	p.restaurant_id = restaurant_id;
	p.customer_id = oe.customer_id;
	p.kind = LK_REVERSAL;
	p.source = "order";
	p.reference = order_ref;
	p.clamp_debit = true;
	p.allow_zero = true;
	p.prefer_lot_tx = oe.txid;
	p.skip_inactive = from_trigger;

	if (refunded == NULL)
	{
		/* the rest of the order: points and money not reversed yet */
		if (oe.fully_reversed)
			return 0;
		points = oe.points - oe.reversed_points;
		p.amount = DatumGetNumeric(DirectFunctionCall2(numeric_sub, NumericGetDatum(oe.amount),
													   NumericGetDatum(oe.refunded_amount)));
		if (NumCmp(p.amount, zero) < 0)
			p.amount = zero;
		p.idempotency_key = OrderKey(order_ref, "-reversal");
		p.key_exists_ok = true;
		p.order_delta = -1;
	}
	else
	{
		Numeric		total;
		Numeric		x;

		if (oe.fully_reversed)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("order \"%s\" is already fully reversed", order_ref)));
		total = DatumGetNumeric(DirectFunctionCall2(numeric_add, NumericGetDatum(oe.refunded_amount),
													NumericGetDatum(refunded)));
		if (NumCmp(total, original) > 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("refunds of order \"%s\" would exceed its original amount", order_ref),
					 errdetail("Refunded so far %s, now %s, original amount %s.",
							   DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(oe.refunded_amount))),
							   DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(refunded))),
							   DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(original))))));
		/* cumulative rounding: floor(earned x refunded total / original) */
		x = DatumGetNumeric(DirectFunctionCall2(numeric_mul, NumericGetDatum(int64_to_numeric(oe.points)),
												NumericGetDatum(total)));
		x = DatumGetNumeric(DirectFunctionCall2(numeric_div, NumericGetDatum(x), NumericGetDatum(original)));
		x = DatumGetNumeric(DirectFunctionCall1(numeric_floor, NumericGetDatum(x)));
		points = DatumGetInt64(DirectFunctionCall1(numeric_int8, NumericGetDatum(x))) - oe.reversed_points;
		if (points < 0)
			points = 0;
		p.amount = refunded;
		p.idempotency_key = idempotency_key;
		p.key_exists_ok = true;
	}
	p.points = -points;
	p.spend_delta = DatumGetNumeric(DirectFunctionCall1(numeric_uminus, NumericGetDatum(p.amount)));
	txid = LedgerPost(&p, &posted);
	/* a full reversal: order.reversed for the consumers that want it */
	if (posted && refunded == NULL &&
		(LedgerEventDemand(restaurant_id) & LEDGER_EV_ORDER_REVERSED))
	{
		StringInfoData js;

		initStringInfo(&js);
		appendStringInfo(&js, "{\"customer_id\": " INT64_FORMAT ", \"order\": ", p.customer_id);
		escape_json(&js, order_ref);
		appendStringInfo(&js, ", \"transaction_id\": " INT64_FORMAT ", \"points\": " INT64_FORMAT "}",
						 txid, p.out_points);
		LedgerRecordEvent(restaurant_id, "order.reversed", js.data);
	}
	return txid;
}

/* ---------------------------------------------------------------------------
 * The trigger
 * ---------------------------------------------------------------------------
 */

static char **
ParseValues(const char *literal, int *n)
{
	ArrayType  *arr = DatumGetArrayTypeP(OidInputFunctionCall(F_ARRAY_IN, (char *) literal,
															  TEXTOID, -1));
	Datum	   *elems;
	bool	   *nulls;
	char	  **out;
	int			i;

	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, n);
	out = palloc(sizeof(char *) * (*n + 1));
	for (i = 0; i < *n; i++)
		out[i] = nulls[i] ? NULL : TextDatumGetCString(elems[i]);
	return out;
}

static int
ColumnOf(TupleDesc desc, const char *name, Relation rel)
{
	int			att = SPI_fnumber(desc, name);

	if (att <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of the attached orders table %s no longer exists",
						name, RelationGetRelationName(rel)),
				 errhint("Detach with aura.detach_orders and attach again.")));
	return att;
}

static OrdersTrigState *
TrigState(FunctionCallInfo fcinfo, TriggerData *td)
{
	OrdersTrigState *st = fcinfo->flinfo->fn_extra;
	Relation	rel = td->tg_relation;
	TupleDesc	desc = RelationGetDescr(rel);
	char	  **args = td->tg_trigger->tgargs;
	MemoryContext old;
	Oid			fn;
	bool		varlena;

	if (st != NULL && st->relid == RelationGetRelid(rel))
		return st;
	if (td->tg_trigger->tgnargs != 7)
		elog(ERROR, "aura: order trigger needs 7 arguments");
	old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
	st = palloc0(sizeof(OrdersTrigState));
	st->relid = RelationGetRelid(rel);
	st->att_restaurant = ColumnOf(desc, args[0], rel);
	st->att_customer = ColumnOf(desc, args[1], rel);
	st->att_amount = ColumnOf(desc, args[2], rel);
	st->att_status = ColumnOf(desc, args[3], rel);
	st->att_order = ColumnOf(desc, args[4], rel);
	st->typ_restaurant = TupleDescAttr(desc, st->att_restaurant - 1)->atttypid;
	st->typ_customer = TupleDescAttr(desc, st->att_customer - 1)->atttypid;
	st->typ_amount = TupleDescAttr(desc, st->att_amount - 1)->atttypid;
	getTypeOutputInfo(TupleDescAttr(desc, st->att_status - 1)->atttypid, &fn, &varlena);
	fmgr_info_cxt(fn, &st->out_status, fcinfo->flinfo->fn_mcxt);
	getTypeOutputInfo(TupleDescAttr(desc, st->att_order - 1)->atttypid, &fn, &varlena);
	fmgr_info_cxt(fn, &st->out_order, fcinfo->flinfo->fn_mcxt);
	st->completed = ParseValues(args[5], &st->ncompleted);
	st->reversed = ParseValues(args[6], &st->nreversed);
	MemoryContextSwitchTo(old);
	fcinfo->flinfo->fn_extra = st;
	return st;
}

/* an integer id column as int64; false when NULL */
static bool
IdValue(HeapTuple tup, TupleDesc desc, int att, Oid typ, int64 *out)
{
	bool		isnull;
	Datum		d = heap_getattr(tup, att, desc, &isnull);

	if (isnull)
		return false;
	switch (typ)
	{
		case INT2OID:
			*out = DatumGetInt16(d);
			break;
		case INT4OID:
			*out = DatumGetInt32(d);
			break;
		case INT8OID:
			*out = DatumGetInt64(d);
			break;
		case NUMERICOID:
			{
				Datum		fl = DirectFunctionCall1(numeric_floor, d);

				if (numeric_is_nan(DatumGetNumeric(d)) ||
					DatumGetInt32(DirectFunctionCall2(numeric_cmp, d, fl)) != 0)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("restaurant or customer id %s of an attached order is not a whole number",
									DatumGetCString(DirectFunctionCall1(numeric_out, d))),
							 errhint("Restaurant and customer ids of attached orders are whole numbers.")));
				*out = DatumGetInt64(DirectFunctionCall1(numeric_int8, d));
			}
			break;
		default:
			elog(ERROR, "aura: unsupported id type %u", typ);
	}
	return true;
}

/* the amount column as numeric; 0 when NULL */
static Numeric
AmountValue(HeapTuple tup, TupleDesc desc, int att, Oid typ)
{
	bool		isnull;
	Datum		d = heap_getattr(tup, att, desc, &isnull);

	if (isnull)
		return int64_to_numeric(0);
	switch (typ)
	{
		case INT2OID:
			return int64_to_numeric(DatumGetInt16(d));
		case INT4OID:
			return int64_to_numeric(DatumGetInt32(d));
		case INT8OID:
			return int64_to_numeric(DatumGetInt64(d));
		case NUMERICOID:
			return DatumGetNumeric(d);
		case FLOAT4OID:
			return DatumGetNumeric(DirectFunctionCall1(float4_numeric, d));
		case FLOAT8OID:
			return DatumGetNumeric(DirectFunctionCall1(float8_numeric, d));
		case MONEYOID:
			return DatumGetNumeric(DirectFunctionCall1(cash_numeric, d));
		default:
			elog(ERROR, "aura: unsupported amount type %u", typ);
	}
	return NULL;
}

/* 'c' completed, 'r' reversed, 'o' other */
static char
StatusOf(OrdersTrigState *st, HeapTuple tup, TupleDesc desc)
{
	bool		isnull;
	Datum		d = heap_getattr(tup, st->att_status, desc, &isnull);
	char	   *s;
	int			i;

	if (isnull)
		return 'o';
	s = OutputFunctionCall(&st->out_status, d);
	for (i = 0; i < st->ncompleted; i++)
		if (st->completed[i] && strcmp(s, st->completed[i]) == 0)
			return 'c';
	for (i = 0; i < st->nreversed; i++)
		if (st->reversed[i] && strcmp(s, st->reversed[i]) == 0)
			return 'r';
	return 'o';
}

/*
 * OrderRow
 *		What an inserted or updated order asks of the ledger: 'c' earn, 'r'
 *		reverse, 0 nothing (not into a completed or reversed status, or no
 *		restaurant or customer).  Fills the ids and the order reference.
 */
static char
OrderRow(OrdersTrigState *st, Relation rel, HeapTuple newtup, char oldstate,
		 int64 *restaurant_id, int64 *customer_id, char **order_ref)
{
	TupleDesc	desc = RelationGetDescr(rel);
	char		newstate = StatusOf(st, newtup, desc);
	bool		isnull;
	Datum		d;

	if (newstate == 'o' || newstate == oldstate)
		return 0;
	if (!IdValue(newtup, desc, st->att_restaurant, st->typ_restaurant, restaurant_id) ||
		!IdValue(newtup, desc, st->att_customer, st->typ_customer, customer_id) ||
		*restaurant_id <= 0 || *customer_id <= 0)
		return 0;
	d = heap_getattr(newtup, st->att_order, desc, &isnull);
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("order id column of %s is NULL", RelationGetRelationName(rel)),
				 errdetail("aura's order trigger uses the order id as idempotency key.")));
	*order_ref = OutputFunctionCall(&st->out_order, d);
	if (strlen(*order_ref) == 0 || strlen(*order_ref) > ORDER_ID_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("order id must be 1 to %d characters long", ORDER_ID_MAX)));
	return newstate;
}

PG_FUNCTION_INFO_V1(aura_orders_trigger);
PG_FUNCTION_INFO_V1(aura_orders_insert_trigger);
PG_FUNCTION_INFO_V1(aura_refund_order_points);

/*
 * aura_orders_trigger
 *		AFTER UPDATE OF <status> row trigger installed by aura.attach_orders
 *		(also correct as an AFTER INSERT row trigger).  Into a completed
 *		status: earn; into a reversed status: reverse.  Orders without a
 *		customer (or restaurant) are ignored.
 */
Datum
aura_orders_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	OrdersTrigState *st;
	HeapTuple	newtup;
	char		action,
				oldstate = 'o';
	int64		restaurant_id,
				customer_id;
	char	   *order_ref;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_FOR_ROW(td->tg_event) ||
		!TRIGGER_FIRED_AFTER(td->tg_event))
		elog(ERROR, "aura_orders_trigger: must be an AFTER ROW trigger");
	if (TRIGGER_FIRED_BY_DELETE(td->tg_event))
		return PointerGetDatum(NULL);

	st = TrigState(fcinfo, td);
	newtup = TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple;
	if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
		oldstate = StatusOf(st, td->tg_trigtuple, RelationGetDescr(td->tg_relation));
	action = OrderRow(st, td->tg_relation, newtup, oldstate, &restaurant_id, &customer_id, &order_ref);
	if (action == 0)
		return PointerGetDatum(NULL);

	SPI_connect();
	if (action == 'c')
		OrderEarn(NULL, restaurant_id, customer_id,
				  AmountValue(newtup, RelationGetDescr(td->tg_relation), st->att_amount, st->typ_amount),
				  order_ref);
	else
		(void) OrderReverse(restaurant_id, order_ref, NULL, NULL, NULL, true);
	SPI_finish();
	return PointerGetDatum(NULL);
}

typedef struct AccountId
{
	int64		restaurant_id;
	int64		customer_id;
} AccountId;

static int
AccountIdCmp(const void *a, const void *b)
{
	const AccountId *x = a;
	const AccountId *y = b;

	if (x->restaurant_id != y->restaurant_id)
		return x->restaurant_id < y->restaurant_id ? -1 : 1;
	if (x->customer_id != y->customer_id)
		return x->customer_id < y->customer_id ? -1 : 1;
	return 0;
}

/*
 * LockOrderAccounts
 *		First pass over the inserted rows: the accounts of the completed
 *		orders, locked (created when missing) in ascending (restaurant,
 *		customer) order, the order transfers lock in too: two bulk inserts
 *		with the same customers in different orders do not deadlock.
 */
static void
LockOrderAccounts(LedgerBatch *b, OrdersTrigState *st, Relation rel, Tuplestorestate *ts,
				  TupleTableSlot *slot)
{
	TupleDesc	desc = RelationGetDescr(rel);
	AccountId  *ids;
	int			n = 0,
				cap = 64,
				i;

	MemoryContext rowcxt = AllocSetContextCreate(CurrentMemoryContext, "aura order accounts",
												 ALLOCSET_DEFAULT_SIZES);
	MemoryContext old;

	ids = palloc(sizeof(AccountId) * cap);
	tuplestore_rescan(ts);
	while (tuplestore_gettupleslot(ts, true, false, slot))
	{
		HeapTuple	tup;
		bool		shouldfree;
		int64		r,
					c;
		bool		wanted;

		MemoryContextReset(rowcxt);
		old = MemoryContextSwitchTo(rowcxt);
		tup = ExecFetchSlotHeapTuple(slot, false, &shouldfree);
		wanted = StatusOf(st, tup, desc) == 'c' &&
			IdValue(tup, desc, st->att_restaurant, st->typ_restaurant, &r) &&
			IdValue(tup, desc, st->att_customer, st->typ_customer, &c) && r > 0 && c > 0;
		MemoryContextSwitchTo(old);
		if (wanted)
		{
			if (n == cap)
			{
				cap *= 2;
				ids = repalloc_huge(ids, sizeof(AccountId) * cap);
			}
			ids[n].restaurant_id = r;
			ids[n].customer_id = c;
			n++;
		}
	}
	MemoryContextDelete(rowcxt);
	qsort(ids, n, sizeof(AccountId), AccountIdCmp);
	for (i = 0; i < n; i++)
		if (i == 0 || AccountIdCmp(&ids[i], &ids[i - 1]) != 0)
		{
			CHECK_FOR_INTERRUPTS();
			/* per account: what SPI allocates goes with SPI_finish */
			SPI_connect();
			LedgerBatchLock(b, ids[i].restaurant_id, ids[i].customer_id);
			SPI_finish();
		}
	pfree(ids);
}

/*
 * aura_orders_insert_trigger
 *		AFTER INSERT statement trigger with the inserted rows as transition
 *		table, installed by aura.attach_orders.  The rows are handled in
 *		insertion order, exactly as the row trigger would (same ledger rows,
 *		balances, tiers, milestones, events), but completed orders are posted
 *		in a batch: each customer's account is locked once, at its first
 *		order, and written once, at the end.  A row inserted in a reversed
 *		status (rare) ends the batch before its reversal is posted row-wise.
 */
Datum
aura_orders_insert_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	OrdersTrigState *st;
	Relation	rel;
	TupleDesc	desc;
	TupleTableSlot *slot;
	MemoryContext rowcxt;
	MemoryContext trigcxt = CurrentMemoryContext;
	LedgerBatch *b = NULL;
	uint64		nrows = 0;

	if (!CALLED_AS_TRIGGER(fcinfo) || TRIGGER_FIRED_FOR_ROW(td->tg_event) ||
		!TRIGGER_FIRED_AFTER(td->tg_event) || !TRIGGER_FIRED_BY_INSERT(td->tg_event) ||
		td->tg_newtable == NULL)
		elog(ERROR, "aura_orders_insert_trigger: must be an AFTER INSERT statement trigger with a NEW TABLE");
	st = TrigState(fcinfo, td);
	rel = td->tg_relation;
	desc = RelationGetDescr(rel);
	slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	rowcxt = AllocSetContextCreate(CurrentMemoryContext, "aura order rows", ALLOCSET_DEFAULT_SIZES);

	b = LedgerBatchBegin();
	LockOrderAccounts(b, st, rel, td->tg_newtable, slot);
	tuplestore_rescan(td->tg_newtable);
	SPI_connect();
	MemoryContextSwitchTo(trigcxt);
	while (tuplestore_gettupleslot(td->tg_newtable, true, false, slot))
	{
		HeapTuple	tup;
		char		action;
		int64		restaurant_id,
					customer_id;
		char	   *order_ref;
		bool		shouldfree;

		CHECK_FOR_INTERRUPTS();
		/*
		 * A row's allocations go to rowcxt, reset per row; after an SPI call
		 * they go to SPI's procedure context (SPI leaves it current), which
		 * is freed by reconnecting every ROWS_PER_SPI rows: nothing a row
		 * allocates is used by the next one (the batch keeps its own copies).
		 */
		if (++nrows % ROWS_PER_SPI == 0)
		{
			SPI_finish();
			SPI_connect();
		}
		MemoryContextReset(rowcxt);
		MemoryContextSwitchTo(rowcxt);
		tup = ExecFetchSlotHeapTuple(slot, false, &shouldfree);
		action = OrderRow(st, rel, tup, 'o', &restaurant_id, &customer_id, &order_ref);
		if (action == 'c')
			OrderEarn(b, restaurant_id, customer_id,
					  AmountValue(tup, desc, st->att_amount, st->typ_amount), order_ref);
		else if (action == 'r')
		{
			LedgerBatchEnd(b);
			b = NULL;
			(void) OrderReverse(restaurant_id, order_ref, NULL, NULL, NULL, true);
		}
		MemoryContextSwitchTo(trigcxt);
		if (b == NULL)
			b = LedgerBatchBegin();
	}
	LedgerBatchEnd(b);
	SPI_finish();
	ExecDropSingleTupleTableSlot(slot);
	MemoryContextDelete(rowcxt);
	return PointerGetDatum(NULL);
}

/*
 * aura.refund_order_points(restaurant_id, order_ref, refunded_amount,
 *							original_amount, idempotency_key) → bigint
 *		A partial refund takes back floor(earned x refunded / original)
 *		points, cumulative over the order's refunds.
 */
Datum
aura_refund_order_points(PG_FUNCTION_ARGS)
{
	int64		restaurant_id;
	char	   *order_ref;
	Numeric		refunded,
				original;
	char	   *key = NULL;
	Numeric		zero = int64_to_numeric(0);
	int64		txid;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("restaurant_id, order_ref, refunded_amount and original_amount must not be NULL")));
	restaurant_id = PG_GETARG_INT64(0);
	order_ref = text_to_cstring(PG_GETARG_TEXT_PP(1));
	refunded = PG_GETARG_NUMERIC(2);
	original = PG_GETARG_NUMERIC(3);
	if (restaurant_id <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("restaurant_id must be a positive id")));
	if (strlen(order_ref) == 0 || strlen(order_ref) > ORDER_ID_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("order_ref must be 1 to %d characters long", ORDER_ID_MAX)));
	if (numeric_is_nan(refunded) || numeric_is_nan(original) ||
		NumCmp(refunded, zero) <= 0 || NumCmp(original, zero) <= 0 || NumCmp(refunded, original) > 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("refunded_amount must be positive and at most original_amount"),
				 errdetail("refunded_amount %s, original_amount %s.",
						   DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(refunded))),
						   DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(original))))));
	if (PG_NARGS() > 4 && !PG_ARGISNULL(4))
	{
		key = text_to_cstring(PG_GETARG_TEXT_PP(4));
		if (strlen(key) == 0 || strlen(key) > 200)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("idempotency_key must be 1 to 200 characters long")));
	}
	LedgerCheckTenant(restaurant_id);
	SPI_connect();
	txid = OrderReverse(restaurant_id, order_ref, refunded, original, key, false);
	SPI_finish();
	PG_RETURN_INT64(txid);
}
