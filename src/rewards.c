/*
 * rewards.c
 *	  Rewards: the hot helpers of issuance and redemption.
 *
 *	  aura._reward_code() makes the codes printed on rewards: 12 characters
 *	  from a 32-symbol alphabet without the look-alikes 0/O and 1/I, drawn
 *	  from the operating system's CSPRNG (pg_strong_random), shown as
 *	  ABCD-EFGH-JKLM (60 bits, unguessable).  aura._reward_code_normalize()
 *	  turns what a cashier typed into that canonical form.
 *	  aura.validate_reward() and aura.redeem_reward() run the point-of-sale
 *	  call here (restaurant in context, no items, a new or no idempotency key, a
 *	  reward type that needs neither items nor settings): one lookup of the
 *	  code, every rule (Evaluate), the exact discount and, for a redemption,
 *	  one statement that writes the redemption row, the reward's new state
 *	  and the analytics marks.  Every other call is delegated to the
 *	  PL/pgSQL implementations (aura._validate_reward_plpgsql,
 *	  aura._redeem_reward_plpgsql), which give the same answers.
 *	  aura._reward_evaluate_fast() is Evaluate for the PL/pgSQL path.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "port.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"

#include "aura.h"
#include "context.h"

#define CODE_SYMBOLS 12
#define CODE_ALPHABET "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"

PG_FUNCTION_INFO_V1(aura_reward_code);
PG_FUNCTION_INFO_V1(aura_reward_code_normalize);
PG_FUNCTION_INFO_V1(aura_reward_evaluate_fast);
PG_FUNCTION_INFO_V1(aura_validate_reward);
PG_FUNCTION_INFO_V1(aura_redeem_reward);

/*
 * RewardsInit
 *		Nothing to register yet: rewards read their settings through the
 *		settings module.
 */
void
RewardsInit(void)
{
}

/*
 * aura_reward_code
 *		A new random code.  Each symbol takes 5 bits of one random byte, so
 *		the 32 symbols are equally likely (no modulo bias).
 */
Datum
aura_reward_code(PG_FUNCTION_ARGS)
{
	uint8		rnd[CODE_SYMBOLS];
	char		out[CODE_SYMBOLS + 3];
	int			i,
				o = 0;

	if (!pg_strong_random(rnd, sizeof(rnd)))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random reward code"),
				 errdetail("The operating system's random source failed.")));
	for (i = 0; i < CODE_SYMBOLS; i++)
	{
		if (i > 0 && i % 4 == 0)
			out[o++] = '-';
		out[o++] = CODE_ALPHABET[rnd[i] & 31];
	}
	out[o] = '\0';
	explicit_bzero(rnd, sizeof(rnd));
	PG_RETURN_TEXT_P(cstring_to_text(out));
}

/*
 * NormalizeCode
 *		Upper case, drop separators (spaces, dashes, dots, underscores); true
 *		and the canonical ABCD-EFGH-JKLM in out (CODE_SYMBOLS + 3 bytes) when
 *		the result is 12 symbols of the alphabet, false otherwise (other
 *		symbols or lengths, more than 100 bytes): it can be no code.
 */
static bool
NormalizeCode(text *t, char *out)
{
	const char *s = VARDATA_ANY(t);
	int			len = VARSIZE_ANY_EXHDR(t);
	char		sym[CODE_SYMBOLS];
	int			n = 0,
				i,
				o = 0;

	if (len > 100)
		return false;
	for (i = 0; i < len; i++)
	{
		char		c = s[i];

		if (c == '-' || c == ' ' || c == '.' || c == '_')
			continue;
		if (c >= 'a' && c <= 'z')
			c = c - 'a' + 'A';
		if (c == '\0' || strchr(CODE_ALPHABET, c) == NULL)
			return false;
		if (n >= CODE_SYMBOLS)
			return false;
		sym[n++] = c;
	}
	if (n != CODE_SYMBOLS)
		return false;
	for (i = 0; i < CODE_SYMBOLS; i++)
	{
		if (i > 0 && i % 4 == 0)
			out[o++] = '-';
		out[o++] = sym[i];
	}
	out[o] = '\0';
	return true;
}

/*
 * aura_reward_code_normalize
 *		SQL face of NormalizeCode: the canonical code or NULL.
 */
Datum
aura_reward_code_normalize(PG_FUNCTION_ARGS)
{
	char		out[CODE_SYMBOLS + 3];

	if (!NormalizeCode(PG_GETARG_TEXT_PP(0), out))
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(out));
}

/* a reward row (aura.rewards) taken apart once */
typedef struct RewardRow
{
	TupleDesc	desc;
	Datum	   *values;
	bool	   *nulls;
} RewardRow;

static void
RowOpen(RewardRow *r, HeapTupleHeader th)
{
	HeapTupleData tuple;
	TupleDesc	desc;

	desc = lookup_rowtype_tupdesc(HeapTupleHeaderGetTypeId(th), HeapTupleHeaderGetTypMod(th));
	r->desc = CreateTupleDescCopy(desc);
	ReleaseTupleDesc(desc);
	tuple.t_len = HeapTupleHeaderGetDatumLength(th);
	ItemPointerSetInvalid(&(tuple.t_self));
	tuple.t_tableOid = InvalidOid;
	tuple.t_data = th;
	r->values = palloc(sizeof(Datum) * r->desc->natts);
	r->nulls = palloc(sizeof(bool) * r->desc->natts);
	heap_deform_tuple(&tuple, r->desc, r->values, r->nulls);
}

/* a column of the row by name; elog when the row type lacks it */
static Datum
RowGet(RewardRow *r, const char *name, bool *isnull)
{
	int			i;

	for (i = 0; i < r->desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(r->desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
		{
			*isnull = r->nulls[i];
			return r->values[i];
		}
	}
	elog(ERROR, "aura: reward row has no column %s", name);
	return (Datum) 0;			/* keep the compiler quiet */
}

static char *
RowText(RewardRow *r, const char *name)
{
	bool		isnull;
	Datum		d = RowGet(r, name, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

static int64
RowInt64(RewardRow *r, const char *name)
{
	bool		isnull;
	Datum		d = RowGet(r, name, &isnull);

	if (isnull)
		elog(ERROR, "aura: reward row has a NULL %s", name);
	return DatumGetInt64(d);
}

/*
 * TermValue
 *		terms -> key of the reward's terms snapshot: false when absent or JSON
 *		null.
 */
static bool
TermValue(Datum terms, const char *key, JsonbValue *v)
{
	Jsonb	   *jb = DatumGetJsonbP(terms);

	if (!getKeyJsonValueFromContainer(&jb->root, key, strlen(key), v))
		return false;
	return v->type != jbvNull;
}

/* terms ->> key as numeric (as (terms ->> key)::numeric would), or NULL */
static Numeric
TermNumeric(Datum terms, const char *key)
{
	JsonbValue	v;

	if (!TermValue(terms, key, &v))
		return NULL;
	if (v.type == jbvNumeric)
		return v.val.numeric;
	if (v.type == jbvString)
		return DatumGetNumeric(DirectFunctionCall3(numeric_in,
												   CStringGetDatum(pnstrdup(v.val.string.val, v.val.string.len)),
												   ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("reward term %s is not a number", key)));
	return NULL;				/* keep the compiler quiet */
}

/* terms ->> key as a C string, or NULL */
static char *
TermText(Datum terms, const char *key)
{
	JsonbValue	v;

	if (!TermValue(terms, key, &v))
		return NULL;
	if (v.type == jbvString)
		return pnstrdup(v.val.string.val, v.val.string.len);
	if (v.type == jbvNumeric)
		return DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v.val.numeric)));
	if (v.type == jbvBool)
		return v.val.boolean ? pstrdup("true") : pstrdup("false");
	return NULL;				/* objects and arrays: no text here */
}

static int
NumCmp(Numeric a, Numeric b)
{
	return DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(a), NumericGetDatum(b)));
}

static Numeric
NumRound2(Numeric a)
{
	return DatumGetNumeric(DirectFunctionCall2(numeric_round, NumericGetDatum(a), Int32GetDatum(2)));
}

static char *
NumText(Numeric a)
{
	return DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(a)));
}

/* the largest order amount (numeric(14,2)) */
static Numeric
MaxAmount(void)
{
	return DatumGetNumeric(DirectFunctionCall3(numeric_in, CStringGetDatum("999999999999.99"),
											   ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
}

/* reward types whose rules and discount need neither order items nor settings */
static bool
FastType(const char *type)
{
	return strcmp(type, "percentage_discount") == 0 || strcmp(type, "fixed_discount") == 0 ||
		strcmp(type, "points_discount") == 0 || strcmp(type, "gift_card") == 0 ||
		strcmp(type, "custom") == 0 || strcmp(type, "bonus_points") == 0 ||
		strcmp(type, "tier_upgrade") == 0;
}

/* what a reward gives an order, and every rule it fails */
typedef struct Evaluation
{
	StringInfoData reasons;		/* JSON array of {rule, message} */
	StringInfoData messages;	/* the messages, "; " between them */
	int			nreasons;
	bool		wrong_customer;
	bool		amount_ok;
	Numeric		amt;			/* amount rounded to cents, when amount_ok */
	Numeric		discount;
	int64		points;
} Evaluation;

static void
AddReason(Evaluation *ev, const char *rule, const char *message)
{
	appendStringInfoString(&ev->reasons, ev->nreasons > 0 ? ", {\"rule\": " : "{\"rule\": ");
	escape_json(&ev->reasons, rule);
	appendStringInfoString(&ev->reasons, ", \"message\": ");
	escape_json(&ev->reasons, message);
	appendStringInfoChar(&ev->reasons, '}');
	if (ev->nreasons > 0)
		appendStringInfoString(&ev->messages, "; ");
	appendStringInfoString(&ev->messages, message);
	if (strcmp(rule, "wrong_customer") == 0)
		ev->wrong_customer = true;
	ev->nreasons++;
}

/*
 * Evaluate
 *		Every failing rule of a reward (of a FastType) for an order, in the
 *		order of aura._reward_evaluate, and the exact discount: percentage of
 *		the amount or the value, capped by max_discount_amount and by the
 *		amount, half-up to cents; bonus_points give points.  amount NULL:
 *		SQL NULL; has_c false: any customer.
 */
static void
Evaluate(RewardRow *rw, Numeric amount, bool has_c, int64 c, const char *order_ref, Evaluation *ev)
{
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	bool		isnull;
	char	   *status = RowText(rw, "status");
	char	   *type = RowText(rw, "type");
	char	   *reserved_ref = RowText(rw, "reserved_order_ref");
	Datum		terms = RowGet(rw, "terms", &isnull);
	Numeric		zero = int64_to_numeric(0);

	if (status == NULL || type == NULL || isnull)
		elog(ERROR, "aura: incomplete reward row");
	initStringInfo(&ev->reasons);
	initStringInfo(&ev->messages);
	appendStringInfoChar(&ev->reasons, '[');
	ev->nreasons = 0;
	ev->wrong_customer = false;
	ev->amount_ok = false;
	ev->amt = NULL;
	ev->discount = zero;
	ev->points = 0;

	/* state of the reward */
	{
		Datum		until = RowGet(rw, "valid_until", &isnull);
		bool		past = !isnull && DatumGetTimestampTz(until) <= now;
		Datum		held = RowGet(rw, "reserved_until", &isnull);
		bool		held_now = !isnull && DatumGetTimestampTz(held) > now;

		if (strcmp(status, "redeemed") == 0)
			AddReason(ev, "already_redeemed", "reward was already redeemed");
		else if (strcmp(status, "revoked") == 0)
			AddReason(ev, "revoked", "reward was revoked");
		else if (strcmp(status, "expired") == 0 || past)
			AddReason(ev, "expired", "reward has expired");
		else if (strcmp(status, "reserved") == 0 && held_now &&
				 (order_ref == NULL || reserved_ref == NULL || strcmp(reserved_ref, order_ref) != 0))
			AddReason(ev, "reserved", "reward is reserved for another order");
	}
	{
		Datum		from = RowGet(rw, "valid_from", &isnull);

		if (!isnull && DatumGetTimestampTz(from) > now)
			AddReason(ev, "not_yet_valid", "reward is not valid yet");
	}
	if (has_c && c != RowInt64(rw, "customer_id"))
		AddReason(ev, "wrong_customer", "reward belongs to another customer");
	/* the amount */
	if (amount == NULL)
		AddReason(ev, "amount_required", "order amount is required");
	else if (numeric_is_nan(amount))
		AddReason(ev, "amount_invalid", "order amount is not a number");
	else if (NumCmp(amount, zero) < 0)
		AddReason(ev, "amount_negative", "order amount must not be negative");
	else if (NumCmp(amount, MaxAmount()) > 0)
		AddReason(ev, "amount_invalid", "order amount is out of range");
	else
	{
		Numeric		min_amt = TermNumeric(terms, "min_order_amount");

		ev->amt = NumRound2(amount);
		ev->amount_ok = true;
		if (min_amt != NULL && NumCmp(ev->amt, min_amt) < 0)
			AddReason(ev, "below_minimum",
					  psprintf("order amount %s is below the minimum of %s", NumText(ev->amt), NumText(min_amt)));
	}
	appendStringInfoChar(&ev->reasons, ']');

	if (ev->nreasons == 0 && ev->amount_ok)
	{
		Numeric		val = TermNumeric(terms, "value");
		Numeric		cap = TermNumeric(terms, "max_discount_amount");
		Numeric		discount = zero;

		if (strcmp(type, "percentage_discount") == 0)
		{
			Numeric		pct = TermNumeric(terms, "percentage");

			if (pct != NULL)
				discount = NumRound2(DatumGetNumeric(
					DirectFunctionCall2(numeric_div,
										DirectFunctionCall2(numeric_mul, NumericGetDatum(ev->amt), NumericGetDatum(pct)),
										NumericGetDatum(int64_to_numeric(100)))));
		}
		else if (strcmp(type, "fixed_discount") == 0 || strcmp(type, "points_discount") == 0 ||
				 strcmp(type, "gift_card") == 0 || strcmp(type, "custom") == 0)
		{
			if (val != NULL)
				discount = val;
		}
		else if (strcmp(type, "bonus_points") == 0)
		{
			if (val != NULL)
				ev->points = DatumGetInt64(DirectFunctionCall1(numeric_int8, NumericGetDatum(val)));
		}
		else if (strcmp(type, "tier_upgrade") != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("reward type %s needs the PL/pgSQL evaluation", type)));
		if (cap != NULL && NumCmp(discount, cap) > 0)
			discount = cap;
		if (NumCmp(discount, ev->amt) > 0)
			discount = ev->amt;
		ev->discount = NumRound2(discount);
	}
}

/*
 * aura_reward_evaluate_fast(rw aura.rewards, amount numeric, customer_id
 * bigint, order_ref text) -> (reasons jsonb, discount numeric, points bigint)
 *		SQL face of Evaluate, for aura._reward_evaluate (PL/pgSQL), which
 *		routes free_item, free_delivery, cashback and calls with items to its
 *		own code.
 */
Datum
aura_reward_evaluate_fast(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};
	RewardRow	rw;
	Evaluation	ev;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("reward must not be NULL")));
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "aura: _reward_evaluate_fast must return a record");
	tupdesc = BlessTupleDesc(tupdesc);
	RowOpen(&rw, PG_GETARG_HEAPTUPLEHEADER(0));
	Evaluate(&rw, PG_ARGISNULL(1) ? NULL : PG_GETARG_NUMERIC(1),
			 !PG_ARGISNULL(2), PG_ARGISNULL(2) ? 0 : PG_GETARG_INT64(2),
			 PG_ARGISNULL(3) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(3)), &ev);
	values[0] = DirectFunctionCall1(jsonb_in, CStringGetDatum(ev.reasons.data));
	values[1] = NumericGetDatum(ev.discount);
	values[2] = Int64GetDatum(ev.points);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* a kept SPI plan, prepared on first use */
static SPIPlanPtr
RewardPlan(SPIPlanPtr *slot, const char *sql, int nargs, Oid *types)
{
	if (*slot == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(sql, nargs, types);

		if (p == NULL)
			elog(ERROR, "aura: SPI_prepare failed for \"%s\": %s", sql, SPI_result_code_string(SPI_result));
		if (SPI_keepplan(p) != 0)
			elog(ERROR, "aura: SPI_keepplan failed");
		*slot = p;
	}
	return *slot;
}

/*
 * Delegate
 *		Calls the PL/pgSQL implementation (aura._validate_reward_plpgsql or
 *		aura._redeem_reward_plpgsql) with this call's arguments: the paths the
 *		C code leaves to it (items, settings-dependent types, idempotency
 *		keys, no restaurant context, and every error case of the arguments,
 *		whose messages it owns).
 */
static Datum
Delegate(FunctionCallInfo fcinfo, SPIPlanPtr *slot, const char *sql, int nargs, Oid *types, bool read_only)
{
	Datum		args[9];
	char		nulls[9];
	bool		isnull;
	Datum		result;
	int			i;

	Assert(nargs <= 9);
	for (i = 0; i < nargs; i++)
	{
		args[i] = PG_ARGISNULL(i) ? (Datum) 0 : PG_GETARG_DATUM(i);
		nulls[i] = PG_ARGISNULL(i) ? 'n' : ' ';
	}
	SPI_connect();
	if (SPI_execute_plan(RewardPlan(slot, sql, nargs, types), args, nulls, read_only, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "aura: delegated reward call failed");
	result = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (!isnull)
		result = SPI_datumTransfer(result, false, -1);
	SPI_finish();
	if (isnull)
		PG_RETURN_NULL();
	return result;
}

static SPIPlanPtr validate_delegate_plan;
static SPIPlanPtr redeem_delegate_plan;
static SPIPlanPtr find_plan;
static SPIPlanPtr lock_plan;
static SPIPlanPtr write_plan;
static SPIPlanPtr event_plan;
static SPIPlanPtr points_plan;
static SPIPlanPtr tier_plan;
static SPIPlanPtr key_lock_plan;
static SPIPlanPtr key_used_plan;

/*
 * FindReward
 *		The reward of a canonical code in restaurant r, optionally locked; a
 *		RewardRow in the SPI context, false when there is none.
 */
static bool
FindReward(int64 r, const char *code, bool lock, RewardRow *rw)
{
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		args[2] = {Int64GetDatum(r), CStringGetTextDatum(code)};
	bool		isnull;
	Datum		d;
	int			rc;

	if (lock)
		rc = SPI_execute_plan(RewardPlan(&lock_plan,
								   "SELECT x FROM aura.rewards x WHERE x.restaurant_id = $1 AND x.code = $2 FOR UPDATE",
								   2, types), args, NULL, false, 1);
	else
		rc = SPI_execute_plan(RewardPlan(&find_plan,
								   "SELECT x FROM aura.rewards x WHERE x.restaurant_id = $1 AND x.code = $2",
								   2, types), args, NULL, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "aura: reward lookup failed");
	if (SPI_processed == 0)
		return false;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		return false;
	RowOpen(rw, DatumGetHeapTupleHeader(d));
	return true;
}

static void
AppendKeyText(StringInfo buf, const char *key, const char *value)
{
	appendStringInfo(buf, ", \"%s\": ", key);
	if (value == NULL)
		appendStringInfoString(buf, "null");
	else
		escape_json(buf, value);
}

/*
 * aura_validate_reward(code text, order_amount numeric, customer_id bigint,
 * items jsonb) -> jsonb
 *		Would this code apply to an order?  The point-of-sale path (a
 *		restaurant in context, no items, a reward type of Evaluate) in C: one
 *		index lookup, the rules, the discount; the others through
 *		aura._validate_reward_plpgsql, which gives the same answers.
 */
Datum
aura_validate_reward(PG_FUNCTION_ARGS)
{
	static Oid	dtypes[4] = {TEXTOID, NUMERICOID, INT8OID, JSONBOID};
	char		code[CODE_SYMBOLS + 3];
	int64		ctx;
	RewardRow	rw;
	Evaluation	ev;
	StringInfoData out;
	char	   *type;
	bool		isnull;
	MemoryContext outer = CurrentMemoryContext;
	char		ts[MAXDATELEN + 1];

	if (PG_ARGISNULL(0) || !PG_ARGISNULL(3) || !AuraCurrentRestaurant(&ctx) ||
		!NormalizeCode(PG_GETARG_TEXT_PP(0), code))
		return Delegate(fcinfo, &validate_delegate_plan,
						"SELECT aura._validate_reward_plpgsql($1, $2, $3, $4)", 4, dtypes, true);

	SPI_connect();
	if (!FindReward(ctx, code, false, &rw) || !FastType(type = RowText(&rw, "type")))
	{
		SPI_finish();
		return Delegate(fcinfo, &validate_delegate_plan,
						"SELECT aura._validate_reward_plpgsql($1, $2, $3, $4)", 4, dtypes, true);
	}
	Evaluate(&rw, PG_ARGISNULL(1) ? NULL : PG_GETARG_NUMERIC(1),
			 !PG_ARGISNULL(2), PG_ARGISNULL(2) ? 0 : PG_GETARG_INT64(2), NULL, &ev);

	MemoryContextSwitchTo(outer);
	initStringInfo(&out);
	appendStringInfo(&out, "{\"valid\": %s", ev.nreasons == 0 ? "true" : "false");
	AppendKeyText(&out, "code", RowText(&rw, "code"));
	appendStringInfo(&out, ", \"reward_id\": " INT64_FORMAT ", \"customer_id\": " INT64_FORMAT,
					 RowInt64(&rw, "id"), RowInt64(&rw, "customer_id"));
	AppendKeyText(&out, "type", type);
	AppendKeyText(&out, "title", RowText(&rw, "title"));
	AppendKeyText(&out, "status", RowText(&rw, "status"));
	JsonEncodeDateTime(ts, RowGet(&rw, "valid_until", &isnull), TIMESTAMPTZOID, NULL);
	appendStringInfo(&out, ", \"valid_until\": \"%s\"", ts);
	appendStringInfo(&out, ", \"discount\": %s, \"points\": " INT64_FORMAT, NumText(ev.discount), ev.points);
	if (ev.nreasons == 0)
		appendStringInfo(&out, ", \"final_amount\": %s",
						 NumText(DatumGetNumeric(DirectFunctionCall2(numeric_sub, NumericGetDatum(ev.amt),
																	 NumericGetDatum(ev.discount)))));
	else
		appendStringInfoString(&out, ", \"final_amount\": null");
	appendStringInfo(&out, ", \"reasons\": %s}", ev.reasons.data);
	SPI_finish();
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(out.data)));
}

/* length in bytes of a text argument */
static int
ArgLen(FunctionCallInfo fcinfo, int n)
{
	return VARSIZE_ANY_EXHDR(PG_GETARG_TEXT_PP(n));
}

/*
 * aura_redeem_reward(code, order_ref, order_amount, customer_id,
 * idempotency_key, method, terminal, staff_id, items) -> jsonb
 *		The point-of-sale redemption in C: plain arguments, a restaurant in
 *		context, no items, a reward type of Evaluate, an idempotency key not
 *		used before (or none).
 *		Locks the reward row (concurrent redemptions take turns: the second
 *		sees the first's result), checks every rule, then one statement
 *		writes the redemption row, marks the reward redeemed and marks the
 *		analytics days; bonus points, tier upgrades and the reward.redeemed
 *		event as aura._redeem_reward_plpgsql does, which handles every other
 *		call (and every argument error) with the same results.
 */
Datum
aura_redeem_reward(PG_FUNCTION_ARGS)
{
	static Oid	dtypes[9] = {TEXTOID, TEXTOID, NUMERICOID, INT8OID, TEXTOID, TEXTOID, TEXTOID, INT8OID, JSONBOID};
	static const char *dsql =
		"SELECT aura._redeem_reward_plpgsql($1, $2, $3, $4, $5, $6, $7, $8, $9)";
	char		code[CODE_SYMBOLS + 3];
	int64		ctx;
	RewardRow	rw;
	Evaluation	ev;
	StringInfoData out;
	char	   *type;
	char	   *method;
	char	   *order_ref;
	Numeric		amount;
	bool		isnull;
	int64		r,
				id,
				customer,
				redemption_id;
	bool		subscribed;
	MemoryContext outer = CurrentMemoryContext;

	/* only plain calls; the PL/pgSQL owns every error message of the arguments */
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3) ||
		(!PG_ARGISNULL(4) && (ArgLen(fcinfo, 4) < 1 || ArgLen(fcinfo, 4) > 200)) ||
		PG_ARGISNULL(5) || !PG_ARGISNULL(8) ||
		ArgLen(fcinfo, 1) < 1 || ArgLen(fcinfo, 1) > 200 ||
		(!PG_ARGISNULL(6) && (ArgLen(fcinfo, 6) < 1 || ArgLen(fcinfo, 6) > 100)) ||
		!AuraCurrentRestaurant(&ctx) || !NormalizeCode(PG_GETARG_TEXT_PP(0), code))
		return Delegate(fcinfo, &redeem_delegate_plan, dsql, 9, dtypes, false);
	amount = PG_GETARG_NUMERIC(2);
	method = text_to_cstring(PG_GETARG_TEXT_PP(5));
	if (numeric_is_nan(amount) || NumCmp(amount, int64_to_numeric(0)) < 0 || NumCmp(amount, MaxAmount()) > 0 ||
		(strcmp(method, "pos") != 0 && strcmp(method, "online") != 0 && strcmp(method, "api") != 0 &&
		 strcmp(method, "manual") != 0))
		return Delegate(fcinfo, &redeem_delegate_plan, dsql, 9, dtypes, false);
	order_ref = text_to_cstring(PG_GETARG_TEXT_PP(1));

	SPI_connect();

	/*
	 * An idempotency key: in the order of the PL/pgSQL path (the reward, the
	 * key's advisory lock, then the key's redemption), so that both paths
	 * serialize on it.  A key used before (a replay, or a key reused for
	 * another redemption) goes to the PL/pgSQL path, which answers it.
	 */
	if (!PG_ARGISNULL(4))
	{
		Oid			types[2] = {INT8OID, TEXTOID};
		Datum		args[2] = {Int64GetDatum(ctx), PG_GETARG_DATUM(4)};

		if (!FindReward(ctx, code, false, &rw))
		{
			SPI_finish();
			return Delegate(fcinfo, &redeem_delegate_plan, dsql, 9, dtypes, false);
		}
		if (SPI_execute_plan(RewardPlan(&key_lock_plan,
										"SELECT pg_advisory_xact_lock(hashtextextended("
										"format('aura.redeem.key:%s:%s', $1, $2), 0))", 2, types),
							 args, NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "aura: idempotency key lock failed");
		/* a new statement: its snapshot sees what the key's holder committed */
		if (SPI_execute_plan(RewardPlan(&key_used_plan,
										"SELECT 1 FROM aura.reward_redemptions x"
										" WHERE x.restaurant_id = $1 AND x.idempotency_key = $2", 2, types),
							 args, NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "aura: idempotency key lookup failed");
		if (SPI_processed > 0)
		{
			SPI_finish();
			return Delegate(fcinfo, &redeem_delegate_plan, dsql, 9, dtypes, false);
		}
	}
	if (!FindReward(ctx, code, true, &rw) || !FastType(type = RowText(&rw, "type")))
	{
		SPI_finish();
		return Delegate(fcinfo, &redeem_delegate_plan, dsql, 9, dtypes, false);
	}
	Evaluate(&rw, amount, true, PG_GETARG_INT64(3), order_ref, &ev);
	if (ev.nreasons > 0)
		ereport(ERROR,
				(errcode(ev.wrong_customer ? ERRCODE_INSUFFICIENT_PRIVILEGE : ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("reward cannot be redeemed: %s", ev.messages.data),
				 errdetail("%s", DatumGetCString(DirectFunctionCall1(jsonb_out,
																	 DirectFunctionCall1(jsonb_in, CStringGetDatum(ev.reasons.data)))))));
	r = RowInt64(&rw, "restaurant_id");
	id = RowInt64(&rw, "id");
	customer = RowInt64(&rw, "customer_id");

	/* the redemption row, the reward's new state, the analytics marks */
	{
		static Oid	types[12] = {INT8OID, INT8OID, INT8OID, INT8OID, TEXTOID, NUMERICOID, NUMERICOID,
		INT8OID, TEXTOID, TEXTOID, INT8OID, TEXTOID};
		Datum		args[12];
		char		nulls[12];
		int			i;

		args[0] = Int64GetDatum(r);
		args[1] = Int64GetDatum(id);
		args[2] = Int64GetDatum(customer);
		args[3] = Int64GetDatum(RowInt64(&rw, "template_id"));
		args[4] = PG_GETARG_DATUM(1);
		args[5] = NumericGetDatum(ev.amt);
		args[6] = NumericGetDatum(ev.discount);
		args[7] = Int64GetDatum(ev.points);
		args[8] = PG_GETARG_DATUM(5);
		args[9] = PG_ARGISNULL(6) ? (Datum) 0 : PG_GETARG_DATUM(6);
		args[10] = PG_ARGISNULL(7) ? (Datum) 0 : PG_GETARG_DATUM(7);
		args[11] = PG_ARGISNULL(4) ? (Datum) 0 : PG_GETARG_DATUM(4);
		for (i = 0; i < 12; i++)
			nulls[i] = ' ';
		nulls[9] = PG_ARGISNULL(6) ? 'n' : ' ';
		nulls[10] = PG_ARGISNULL(7) ? 'n' : ' ';
		nulls[11] = PG_ARGISNULL(4) ? 'n' : ' ';
		if (SPI_execute_plan(RewardPlan(&write_plan,
								  "WITH red AS ("
								  " INSERT INTO aura.reward_redemptions (restaurant_id, reward_id, customer_id, template_id,"
								  "   order_ref, original_amount, discount_amount, final_amount, points_credited, method,"
								  "   terminal, staff_id, idempotency_key)"
								  " VALUES ($1, $2, $3, $4, $5, $6, $7, $6 - $7, $8, $9, $10, coalesce($11, aura.current_user_id()), $12)"
								  " RETURNING id, created_at, original_amount, discount_amount, final_amount, points_credited),"
								  " upd AS ("
								  " UPDATE aura.rewards x SET status = 'redeemed', redeemed_at = (SELECT created_at FROM red),"
								  "   redeemed_order_ref = $5, reserved_order_ref = NULL, reserved_until = NULL"
								  "  WHERE x.restaurant_id = $1 AND x.id = $2"
								  " RETURNING x.issued_at),"
								  " dirty AS ("
								  " INSERT INTO aura.reward_analytics_dirty (restaurant_id, template_id, day)"
								  " SELECT $1, $4, d FROM (SELECT (issued_at AT TIME ZONE 'UTC')::date FROM upd"
								  "   UNION SELECT (created_at AT TIME ZONE 'UTC')::date FROM red) s (d))"
								  " SELECT id, original_amount::text, discount_amount::text, final_amount::text,"
								  "   points_credited,"
								  "   EXISTS (SELECT 1 FROM aura.webhooks w WHERE w.restaurant_id = $1 AND w.active)"
								  "   OR EXISTS (SELECT 1 FROM aura.notification_rules n"
								  "    WHERE n.restaurant_id = $1 AND n.enabled)"
								  "  FROM red",
								  12, types), args, nulls, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "aura: redemption insert failed");
		redemption_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		subscribed = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 6, &isnull));
		MemoryContextSwitchTo(outer);
		initStringInfo(&out);
		appendStringInfo(&out, "{\"redeemed\": true, \"replayed\": false, \"redemption_id\": " INT64_FORMAT
						 ", \"reward_id\": " INT64_FORMAT, redemption_id, id);
		AppendKeyText(&out, "code", code);
		AppendKeyText(&out, "order_ref", order_ref);
		appendStringInfo(&out, ", \"original_amount\": %s, \"discount\": %s, \"final_amount\": %s"
						 ", \"points_credited\": %s}",
						 SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2),
						 SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3),
						 SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4),
						 SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 5));
	}

	/* bonus points go to the customer's account through the ledger */
	if (ev.points > 0)
	{
		static Oid	types[6] = {INT8OID, INT8OID, INT8OID, TEXTOID, INT8OID, TEXTOID};
		Datum		args[6] = {Int64GetDatum(r), Int64GetDatum(customer), Int64GetDatum(ev.points),
		CStringGetTextDatum(code), Int64GetDatum(redemption_id), CStringGetTextDatum(RowText(&rw, "title"))};

		if (SPI_execute_plan(RewardPlan(&points_plan,
								  "SELECT aura._post_points($1, $2, 'bonus', $3, 'reward', 'reward:' || $4,"
								  " 'reward-redeem:' || $5, left($6, 1000))", 6, types),
							 args, NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "aura: posting the reward's points failed");
	}
	if (strcmp(type, "tier_upgrade") == 0)
	{
		static Oid	types[3] = {INT8OID, INT8OID, TEXTOID};
		bool		tisnull;
		char	   *target = TermText(RowGet(&rw, "terms", &tisnull), "target_tier");
		Datum		args[3] = {Int64GetDatum(r), Int64GetDatum(customer), target ? CStringGetTextDatum(target) : (Datum) 0};

		if (SPI_execute_plan(RewardPlan(&tier_plan, "SELECT aura._reward_apply_tier($1, $2, $3)", 3, types),
							 args, target ? NULL : "  n", false, 1) != SPI_OK_SELECT)
			elog(ERROR, "aura: applying the reward's tier failed");
	}

	/* the reward.redeemed event, when the restaurant has a subscriber */
	{
		static Oid	types[2] = {INT8OID, TEXTOID};
		Datum		args[2] = {Int64GetDatum(r), (Datum) 0};

		if (subscribed)
		{
			StringInfoData data;

			initStringInfo(&data);
			appendStringInfo(&data, "{\"reward_id\": " INT64_FORMAT ", \"customer_id\": " INT64_FORMAT,
							 id, customer);
			AppendKeyText(&data, "order_ref", order_ref);
			appendStringInfo(&data, ", \"discount\": %s, \"points\": " INT64_FORMAT "}",
							 NumText(ev.discount), ev.points);
			args[1] = CStringGetTextDatum(data.data);
			if (SPI_execute_plan(RewardPlan(&event_plan, "SELECT aura.emit_event($1, 'reward.redeemed', $2::jsonb)",
									  2, types), args, NULL, false, 1) != SPI_OK_SELECT)
				elog(ERROR, "aura: the reward.redeemed event failed");
		}
	}
	SPI_finish();
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(out.data)));
}
