/*
 * rewards.c
 *	  Rewards: the hot helpers of issuance and redemption.
 *
 *	  aura._reward_code() makes the codes printed on rewards: 12 characters
 *	  from a 32-symbol alphabet without the look-alikes 0/O and 1/I, drawn
 *	  from the operating system's CSPRNG (pg_strong_random), shown as
 *	  XXXX-XXXX-XXXX (60 bits, unguessable).  aura._reward_code_normalize()
 *	  turns what a cashier typed into that canonical form.
 *	  aura._reward_evaluate_fast() is the rule check and discount of the
 *	  validation and redemption hot path for rewards that need no order items
 *	  (aura._reward_evaluate, PL/pgSQL, handles the others and calls it).
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "port.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "aura.h"

#define CODE_SYMBOLS 12
#define CODE_ALPHABET "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"

PG_FUNCTION_INFO_V1(aura_reward_code);
PG_FUNCTION_INFO_V1(aura_reward_code_normalize);
PG_FUNCTION_INFO_V1(aura_reward_evaluate_fast);

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
 * aura_reward_code_normalize
 *		Upper case, drop separators (spaces, dashes, dots); a 12-symbol
 *		result is returned as XXXX-XXXX-XXXX, anything else (symbols outside
 *		the alphabet, other lengths, more than 100 bytes) as NULL: it can be
 *		no code.
 */
Datum
aura_reward_code_normalize(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);
	const char *s = VARDATA_ANY(t);
	int			len = VARSIZE_ANY_EXHDR(t);
	char		sym[CODE_SYMBOLS];
	char		out[CODE_SYMBOLS + 3];
	int			n = 0,
				i,
				o = 0;

	if (len > 100)
		PG_RETURN_NULL();
	for (i = 0; i < len; i++)
	{
		char		c = s[i];

		if (c == '-' || c == ' ' || c == '.' || c == '_')
			continue;
		if (c >= 'a' && c <= 'z')
			c = c - 'a' + 'A';
		if (strchr(CODE_ALPHABET, c) == NULL || c == '\0')
			PG_RETURN_NULL();
		if (n >= CODE_SYMBOLS)
			PG_RETURN_NULL();
		sym[n++] = c;
	}
	if (n != CODE_SYMBOLS)
		PG_RETURN_NULL();
	for (i = 0; i < CODE_SYMBOLS; i++)
	{
		if (i > 0 && i % 4 == 0)
			out[o++] = '-';
		out[o++] = sym[i];
	}
	out[o] = '\0';
	PG_RETURN_TEXT_P(cstring_to_text(out));
}

/* a field of the reward row; NULL pointer result when SQL NULL */
static Datum
Field(HeapTupleHeader row, const char *name, bool *isnull)
{
	return GetAttributeByName(row, name, isnull);
}

static char *
FieldText(HeapTupleHeader row, const char *name)
{
	bool		isnull;
	Datum		d = Field(row, name, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

/* terms ->> key as numeric, or NULL */
static Numeric
TermNumeric(Datum terms, const char *key)
{
	Datum		d;
	text	   *t;
	LOCAL_FCINFO(fcinfo, 2);

	InitFunctionCallInfoData(*fcinfo, NULL, 2, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = terms;
	fcinfo->args[0].isnull = false;
	fcinfo->args[1].value = CStringGetTextDatum(key);
	fcinfo->args[1].isnull = false;
	d = jsonb_object_field_text(fcinfo);
	if (fcinfo->isnull)
		return NULL;
	t = DatumGetTextPP(d);
	return DatumGetNumeric(DirectFunctionCall3(numeric_in, CStringGetDatum(text_to_cstring(t)),
											   ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
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

static void
AddReason(StringInfo buf, int *n, const char *rule, const char *message)
{
	appendStringInfoString(buf, *n > 0 ? ", {\"rule\": " : "{\"rule\": ");
	escape_json(buf, rule);
	appendStringInfoString(buf, ", \"message\": ");
	escape_json(buf, message);
	appendStringInfoChar(buf, '}');
	(*n)++;
}

/*
 * aura_reward_evaluate_fast(rw aura.rewards, amount numeric, customer_id
 * bigint, order_ref text) -> (reasons jsonb, discount numeric, points bigint)
 *		Every failing rule of a reward for an order, in the order of
 *		aura._reward_evaluate, and the exact discount (half-up to cents,
 *		capped by max_discount_amount and the amount).  Only for types that
 *		need no items and no settings: the caller routes free_item,
 *		free_delivery, cashback and calls with items to PL/pgSQL.
 */
Datum
aura_reward_evaluate_fast(PG_FUNCTION_ARGS)
{
	HeapTupleHeader row;
	TupleDesc	tupdesc;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	StringInfoData buf;
	int			nreasons = 0;
	bool		isnull;
	char	   *status;
	char	   *type;
	char	   *reserved_ref;
	const char *order_ref = NULL;
	Datum		terms;
	Numeric		amt = NULL;
	Numeric		discount;
	int64		points = 0;
	bool		amount_ok = false;
	Numeric		zero = int64_to_numeric(0);

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("reward must not be NULL")));
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "aura: _reward_evaluate_fast must return a record");
	tupdesc = BlessTupleDesc(tupdesc);
	row = PG_GETARG_HEAPTUPLEHEADER(0);
	if (!PG_ARGISNULL(3))
		order_ref = text_to_cstring(PG_GETARG_TEXT_PP(3));
	status = FieldText(row, "status");
	type = FieldText(row, "type");
	reserved_ref = FieldText(row, "reserved_order_ref");
	terms = Field(row, "terms", &isnull);
	if (status == NULL || type == NULL || isnull)
		elog(ERROR, "aura: incomplete reward row");

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '[');

	/* state of the reward */
	{
		Datum		until = Field(row, "valid_until", &isnull);
		bool		past = !isnull && DatumGetTimestampTz(until) <= now;
		Datum		held = Field(row, "reserved_until", &isnull);
		bool		held_now = !isnull && DatumGetTimestampTz(held) > now;

		if (strcmp(status, "redeemed") == 0)
			AddReason(&buf, &nreasons, "already_redeemed", "reward was already redeemed");
		else if (strcmp(status, "revoked") == 0)
			AddReason(&buf, &nreasons, "revoked", "reward was revoked");
		else if (strcmp(status, "expired") == 0 || past)
			AddReason(&buf, &nreasons, "expired", "reward has expired");
		else if (strcmp(status, "reserved") == 0 && held_now &&
				 (order_ref == NULL || reserved_ref == NULL || strcmp(reserved_ref, order_ref) != 0))
			AddReason(&buf, &nreasons, "reserved", "reward is reserved for another order");
	}
	{
		Datum		from = Field(row, "valid_from", &isnull);

		if (!isnull && DatumGetTimestampTz(from) > now)
			AddReason(&buf, &nreasons, "not_yet_valid", "reward is not valid yet");
	}
	{
		Datum		owner = Field(row, "customer_id", &isnull);

		if (!PG_ARGISNULL(2) && !isnull && PG_GETARG_INT64(2) != DatumGetInt64(owner))
			AddReason(&buf, &nreasons, "wrong_customer", "reward belongs to another customer");
	}
	/* the amount */
	if (PG_ARGISNULL(1))
		AddReason(&buf, &nreasons, "amount_required", "order amount is required");
	else
	{
		Numeric		amount = PG_GETARG_NUMERIC(1);
		Numeric		limit = DatumGetNumeric(DirectFunctionCall3(numeric_in, CStringGetDatum("999999999999.99"),
																ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));

		if (numeric_is_nan(amount))
			AddReason(&buf, &nreasons, "amount_invalid", "order amount is not a number");
		else if (NumCmp(amount, zero) < 0)
			AddReason(&buf, &nreasons, "amount_negative", "order amount must not be negative");
		else if (NumCmp(amount, limit) > 0)
			AddReason(&buf, &nreasons, "amount_invalid", "order amount is out of range");
		else
		{
			Numeric		min_amt = TermNumeric(terms, "min_order_amount");

			amt = NumRound2(amount);
			amount_ok = true;
			if (min_amt != NULL && NumCmp(amt, min_amt) < 0)
				AddReason(&buf, &nreasons, "below_minimum",
						  psprintf("order amount %s is below the minimum of %s", NumText(amt), NumText(min_amt)));
		}
	}
	appendStringInfoChar(&buf, ']');

	if (nreasons > 0 || !amount_ok)
		discount = zero;
	else
	{
		Numeric		val = TermNumeric(terms, "value");
		Numeric		cap = TermNumeric(terms, "max_discount_amount");

		discount = zero;
		if (strcmp(type, "percentage_discount") == 0)
		{
			Numeric		pct = TermNumeric(terms, "percentage");

			if (pct != NULL)
				discount = NumRound2(DatumGetNumeric(
					DirectFunctionCall2(numeric_div,
										DirectFunctionCall2(numeric_mul, NumericGetDatum(amt), NumericGetDatum(pct)),
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
				points = DatumGetInt64(DirectFunctionCall1(numeric_int8, NumericGetDatum(val)));
		}
		else if (strcmp(type, "tier_upgrade") != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("reward type %s needs the PL/pgSQL evaluation", type)));
		if (cap != NULL && NumCmp(discount, cap) > 0)
			discount = cap;
		if (NumCmp(discount, amt) > 0)
			discount = amt;
		discount = NumRound2(discount);
	}

	values[0] = DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data));
	values[1] = NumericGetDatum(discount);
	values[2] = Int64GetDatum(points);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
