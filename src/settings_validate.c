/*
 * settings_validate.c
 *	  Validation of setting values against their definition: type, range,
 *	  length, pattern, allowed values, required JSON keys, size and depth.
 *	  Every value is returned in one canonical form (booleans as JSON
 *	  booleans, enums as the allowed spelling, datetimes in UTC ISO 8601,
 *	  durations in PostgreSQL's interval style) so equal settings compare
 *	  equal and readers never parse variants.
 */
#include "postgres.h"

#include <ctype.h>

#include "catalog/pg_collation.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "regex/regex.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/fmgrprotos.h"
#include "utils/timestamp.h"

#include "settings_validate.h"

static const char *const type_names[] = {
	"string", "integer", "numeric", "boolean", "json", "datetime", "duration", "enum", "secret"
};

SettingType
SettingTypeFromName(const char *name)
{
	int			i;

	for (i = 0; i < (int) lengthof(type_names); i++)
		if (strcmp(name, type_names[i]) == 0)
			return (SettingType) i;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown setting type \"%s\"", name)));
	return ST_STRING;			/* keep compiler quiet */
}

const char *
SettingTypeName(SettingType type)
{
	return type_names[type];
}

/* a short, printable rendering of the offending value for errdetail */
static char *
ShowValue(const SettingRules *r, Jsonb *value)
{
	char	   *s;

	if (r->sensitive)
		return pstrdup("(secret, not shown)");
	s = JsonbToCString(NULL, &value->root, 128);
	if (strlen(s) > 100)
	{
		int			cut = pg_mbcliplen(s, strlen(s), 100);

		s[cut] = '\0';
		s = psprintf("%s... (%d bytes)", s, (int) VARSIZE(value));
	}
	return s;
}

/*
 * RuleError
 *		The one error of validation: SQLSTATE 22023, the key in the message,
 *		key, rule and value in the detail.
 */
static void
pg_attribute_noreturn()
RuleError(const SettingRules *r, Jsonb *value, const char *rule)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid value for setting \"%s\"", r->key),
			 errdetail("key: %s; rule: %s; value: %s", r->key, rule, ShowValue(r, value)),
			 errhint("Setting \"%s\" is of type %s; aura.setting_definitions lists its rules.",
					 r->key, SettingTypeName(r->type))));
}

static int
CmpNumeric(Numeric a, Numeric b)
{
	return DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(a), NumericGetDatum(b)));
}

static char *
NumericText(Numeric n)
{
	return DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(n)));
}

/* min/max rules on a number */
static void
CheckRange(const SettingRules *r, Jsonb *value, Numeric n)
{
	if (r->min_value && CmpNumeric(n, r->min_value) < 0)
		RuleError(r, value, psprintf("minimum %s", NumericText(r->min_value)));
	if (r->max_value && CmpNumeric(n, r->max_value) > 0)
		RuleError(r, value, psprintf("maximum %s", NumericText(r->max_value)));
}

/* is s a plain decimal number: -?digits(.digits)? */
static bool
LooksNumeric(const char *s, bool integral)
{
	const char *p = s;
	bool		digits = false;

	if (*p == '-' || *p == '+')
		p++;
	while (isdigit((unsigned char) *p))
		p++, digits = true;
	if (*p == '.' && !integral)
	{
		p++;
		while (isdigit((unsigned char) *p))
			p++, digits = true;
	}
	return digits && *p == '\0' && (p - s) < 1000;
}

static Jsonb *
NumericJsonb(Numeric n)
{
	JsonbValue	v;

	v.type = jbvNumeric;
	v.val.numeric = n;
	return JsonbValueToJsonb(&v);
}

static Jsonb *
StringJsonb(const char *s, int len)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = (char *) s;
	v.val.string.len = len;
	return JsonbValueToJsonb(&v);
}

static Jsonb *
BoolJsonb(bool b)
{
	JsonbValue	v;

	v.type = jbvBool;
	v.val.boolean = b;
	return JsonbValueToJsonb(&v);
}

/* a number given as JSON number or as a numeric string */
static Numeric
GetNumber(const SettingRules *r, Jsonb *value, JsonbValue *sc, bool integral)
{
	if (sc->type == jbvNumeric)
		return sc->val.numeric;
	if (sc->type == jbvString)
	{
		char	   *s = pnstrdup(sc->val.string.val, sc->val.string.len);
		char	   *t = s;

		while (isspace((unsigned char) *t))
			t++;
		if (LooksNumeric(t, false))
			return DatumGetNumeric(DirectFunctionCall3(numeric_in, CStringGetDatum(t),
													   ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
	}
	RuleError(r, value, integral ? "type integer" : "type numeric");
}

/* length, pattern and allowed-value rules of a string */
static void
CheckString(const SettingRules *r, Jsonb *value, const char *s, int len)
{
	int			chars = pg_mbstrlen_with_len(s, len);
	int			i;

	if (r->min_length >= 0 && chars < r->min_length)
		RuleError(r, value, psprintf("min_length %d", r->min_length));
	if (r->max_length >= 0 && chars > r->max_length)
		RuleError(r, value, psprintf("max_length %d", r->max_length));
	if (r->pattern &&
		!RE_compile_and_execute(r->pattern, (char *) s, len, REG_ADVANCED,
								C_COLLATION_OID, 0, NULL))
		RuleError(r, value, psprintf("pattern %s", text_to_cstring(r->pattern)));
	if (r->nallowed > 0 && r->type != ST_ENUM)
	{
		for (i = 0; i < r->nallowed; i++)
			if ((int) strlen(r->allowed[i]) == len && memcmp(r->allowed[i], s, len) == 0)
				return;
		RuleError(r, value, "allowed values");
	}
}

/* nesting depth of a JSON value (1 for scalars and flat containers) */
static int
JsonDepth(Jsonb *value)
{
	JsonbIterator *it = JsonbIteratorInit(&value->root);
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			depth = 0;
	int			maxdepth = 0;

	while ((tok = JsonbIteratorNext(&it, &v, false)) != WJB_DONE)
	{
		if (tok == WJB_BEGIN_ARRAY || tok == WJB_BEGIN_OBJECT)
		{
			depth++;
			if (depth > maxdepth)
				maxdepth = depth;
		}
		else if (tok == WJB_END_ARRAY || tok == WJB_END_OBJECT)
			depth--;
	}
	return maxdepth;
}

/*
 * ParseInput
 *		Run a type input function on a string, turning its error into our
 *		rule error.  Input functions of datetime types hold no resources, so
 *		catching their error without a subtransaction is safe.
 */
static bool
ParseInput(PGFunction fn, const char *s, Datum *out)
{
	MemoryContext cxt = CurrentMemoryContext;
	volatile bool ok = true;

	PG_TRY();
	{
		*out = DirectFunctionCall3(fn, CStringGetDatum(s), ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		FlushErrorState();
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

double
SettingIntervalSeconds(const Interval *iv)
{
	return (double) iv->month * 30.0 * SECS_PER_DAY + (double) iv->day * SECS_PER_DAY +
		(double) iv->time / USECS_PER_SEC;
}

/* canonical text of an interval, independent of the IntervalStyle setting */
static char *
IntervalText(Interval *iv)
{
	char		buf[MAXDATELEN + 1];
#if PG_VERSION_NUM >= 150000
	struct pg_itm itm;

	interval2itm(*iv, &itm);
	EncodeInterval(&itm, INTSTYLE_POSTGRES, buf);
#else
	struct pg_tm tm;
	fsec_t		fsec;

	interval2tm(*iv, &tm, &fsec);
	EncodeInterval(&tm, fsec, INTSTYLE_POSTGRES, buf);
#endif
	return pstrdup(buf);
}

Jsonb *
SettingValidate(const SettingRules *r, Jsonb *value)
{
	JsonbValue	sc;
	bool		scalar;

	if (VARSIZE(value) > AURA_SETTING_MAX_BYTES)
		RuleError(r, value, psprintf("size at most %d bytes", AURA_SETTING_MAX_BYTES));
	scalar = JB_ROOT_IS_SCALAR(value) && JsonbExtractScalar(&value->root, &sc);
	if (scalar && sc.type == jbvNull)
		RuleError(r, value, "not null");

	switch (r->type)
	{
		case ST_STRING:
		case ST_SECRET:
			if (!scalar || sc.type != jbvString)
				RuleError(r, value, "type string");
			CheckString(r, value, sc.val.string.val, sc.val.string.len);
			return value;

		case ST_INTEGER:
			{
				Numeric		n;
				char	   *s;
				char	   *p;
				int64		v = 0;
				bool		neg;

				if (!scalar)
					RuleError(r, value, "type integer");
				n = GetNumber(r, value, &sc, true);
				s = NumericText(n);
				/* integral: digits, optionally followed by .000 */
				p = strchr(s, '.');
				if (p)
				{
					char	   *q;

					for (q = p + 1; *q; q++)
						if (*q != '0')
							RuleError(r, value, "type integer");
					*p = '\0';
				}
				neg = (s[0] == '-');
				for (p = s + (neg ? 1 : 0); *p; p++)
				{
					int			d = *p - '0';

					if (v > (PG_INT64_MAX - d) / 10)
						RuleError(r, value, "integer range (64-bit)");
					v = v * 10 + d;
				}
				n = int64_to_numeric(neg ? -v : v);
				CheckRange(r, value, n);
				return NumericJsonb(n);
			}

		case ST_NUMERIC:
			{
				Numeric		n;

				if (!scalar)
					RuleError(r, value, "type numeric");
				n = GetNumber(r, value, &sc, false);
				CheckRange(r, value, n);
				return NumericJsonb(n);
			}

		case ST_BOOLEAN:
			if (scalar && sc.type == jbvBool)
				return BoolJsonb(sc.val.boolean);
			if (scalar && sc.type == jbvNumeric)
			{
				char	   *s = NumericText(sc.val.numeric);

				if (strcmp(s, "1") == 0 || strcmp(s, "0") == 0)
					return BoolJsonb(s[0] == '1');
			}
			if (scalar && sc.type == jbvString && sc.val.string.len <= 8)
			{
				char		buf[9];
				char	   *t;
				int			i;

				memcpy(buf, sc.val.string.val, sc.val.string.len);
				buf[sc.val.string.len] = '\0';
				for (i = 0; buf[i]; i++)
					buf[i] = pg_ascii_tolower((unsigned char) buf[i]);
				t = buf;
				if (strcmp(t, "true") == 0 || strcmp(t, "1") == 0 || strcmp(t, "yes") == 0)
					return BoolJsonb(true);
				if (strcmp(t, "false") == 0 || strcmp(t, "0") == 0 || strcmp(t, "no") == 0)
					return BoolJsonb(false);
			}
			RuleError(r, value, "type boolean (true, false, 1, 0, yes, no)");

		case ST_ENUM:
			{
				const char *s;
				int			len;
				int			i;

				if (!scalar || sc.type != jbvString)
					RuleError(r, value, "type enum (a string)");
				s = sc.val.string.val;
				len = sc.val.string.len;
				/* stored unquoted: '"\"none\""' means none */
				if (len >= 2 && s[0] == '"' && s[len - 1] == '"')
					s++, len -= 2;
				for (i = 0; i < r->nallowed; i++)
					if ((int) strlen(r->allowed[i]) == len && pg_strncasecmp(r->allowed[i], s, len) == 0)
						return StringJsonb(r->allowed[i], len);
				{
					StringInfoData buf;

					initStringInfo(&buf);
					for (i = 0; i < r->nallowed; i++)
						appendStringInfo(&buf, "%s%s", i ? "|" : "", r->allowed[i]);
					RuleError(r, value, psprintf("allowed values %s", buf.data));
				}
			}

		case ST_JSON:
			{
				int			i;

				if (JsonDepth(value) > AURA_SETTING_MAX_DEPTH)
					RuleError(r, value, psprintf("nesting depth at most %d", AURA_SETTING_MAX_DEPTH));
				if (r->nrequired > 0 && !JB_ROOT_IS_OBJECT(value))
					RuleError(r, value, "type object (required keys)");
				for (i = 0; i < r->nrequired; i++)
				{
					JsonbValue	k;

					k.type = jbvString;
					k.val.string.val = r->required[i];
					k.val.string.len = strlen(r->required[i]);
					if (findJsonbValueFromContainer(&value->root, JB_FOBJECT, &k) == NULL)
						RuleError(r, value, psprintf("required key %s", r->required[i]));
				}
				return value;
			}

		case ST_DATETIME:
			{
				char	   *s;
				Datum		d;
				TimestampTz ts;
				struct pg_tm tm;
				fsec_t		fsec;
				char	   *out;

				if (!scalar || sc.type != jbvString || sc.val.string.len > 100)
					RuleError(r, value, "type datetime (ISO 8601 text)");
				s = pnstrdup(sc.val.string.val, sc.val.string.len);
				if (!ParseInput(timestamptz_in, s, &d))
					RuleError(r, value, "type datetime (ISO 8601 text)");
				ts = DatumGetTimestampTz(d);
				if (TIMESTAMP_NOT_FINITE(ts) || timestamp2tm(ts, NULL, &tm, &fsec, NULL, NULL) != 0)
					RuleError(r, value, "finite datetime");
				if (fsec != 0)
					out = psprintf("%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year, tm.tm_mon,
								   tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int) fsec);
				else
					out = psprintf("%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year, tm.tm_mon,
								   tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
				return StringJsonb(out, strlen(out));
			}

		case ST_DURATION:
			{
				Interval   *iv;
				Datum		d;
				char	   *out;
				Numeric		secs;

				if (scalar && sc.type == jbvString && sc.val.string.len <= 100)
				{
					char	   *s = pnstrdup(sc.val.string.val, sc.val.string.len);

					if (!ParseInput(interval_in, s, &d))
						RuleError(r, value, "type duration (e.g. \"7 days\", \"PT1H\")");
					iv = DatumGetIntervalP(d);
				}
				else if (scalar && sc.type == jbvNumeric)
				{
					/* a number is a count of seconds */
					Numeric		n = sc.val.numeric;
					double		v = DatumGetFloat8(DirectFunctionCall1(numeric_float8, NumericGetDatum(n)));

					if (!(v >= 0 && v < 1e12))
						RuleError(r, value, "type duration (seconds between 0 and 1e12)");
					iv = palloc0(sizeof(Interval));
					iv->time = (int64) (v * USECS_PER_SEC);
				}
				else
					RuleError(r, value, "type duration (e.g. \"7 days\", \"PT1H\")");
				if (iv->month < 0 || iv->day < 0 || iv->time < 0)
					RuleError(r, value, "non-negative duration");
				secs = DatumGetNumeric(DirectFunctionCall1(float8_numeric,
														   Float8GetDatum(SettingIntervalSeconds(iv))));
				CheckRange(r, value, secs);
				out = IntervalText(iv);
				return StringJsonb(out, strlen(out));
			}
	}
	elog(ERROR, "unexpected setting type %d", (int) r->type);
	return NULL;
}
