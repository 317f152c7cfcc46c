/*
 * flags_ops.c
 *	  Parsers behind the constraint operators of feature flags.
 *
 * Unleash's SDKs compare numbers with JavaScript's Number(), dates with
 * new Date(), versions with the semver package and addresses with CIDR
 * ranges.  These functions reproduce those answers for the values flags
 * use.  None of them raises an error: an unparsable value is reported by
 * returning false, and the evaluator turns that into a false constraint
 * (which aura.flag_explain() reports).
 */
#include "postgres.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <math.h>
#include <stdlib.h>

#include "utils/timestamp.h"

#include "flags_ops.h"

/* JavaScript's white space for Number() and trim() (ASCII subset) */
static inline bool
JsSpace(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/*
 * FlagParseNumber
 *		Number(s): surrounding white space ignored, empty means 0, decimal
 *		with optional sign, fraction and exponent, 0x/0o/0b integers and
 *		Infinity.  Anything else is NaN (false).
 */
bool
FlagParseNumber(const char *s, size_t len, double *out)
{
	char		buf[128];
	const char *p = s;
	const char *end = s + len;
	size_t		n;
	char	   *stop;
	bool		neg = false;

	while (p < end && JsSpace(*p))
		p++;
	while (end > p && JsSpace(end[-1]))
		end--;
	n = end - p;
	if (n == 0)
	{
		*out = 0;
		return true;
	}
	if (n >= sizeof(buf))
		return false;
	memcpy(buf, p, n);
	buf[n] = '\0';

	/* radix integers: no sign allowed */
	if (n > 2 && buf[0] == '0' && strchr("xXoObB", buf[1]))
	{
		int			base = (buf[1] == 'x' || buf[1] == 'X') ? 16 :
			(buf[1] == 'o' || buf[1] == 'O') ? 8 : 2;
		double		v = 0;
		size_t		i;

		for (i = 2; i < n; i++)
		{
			int			d;

			if (isdigit((unsigned char) buf[i]))
				d = buf[i] - '0';
			else if (isxdigit((unsigned char) buf[i]))
				d = 10 + (tolower((unsigned char) buf[i]) - 'a');
			else
				return false;
			if (d >= base)
				return false;
			v = v * base + d;
		}
		*out = v;
		return true;
	}

	p = buf;
	if (*p == '+' || *p == '-')
	{
		neg = (*p == '-');
		p++;
	}
	if (strcmp(p, "Infinity") == 0)
	{
		*out = neg ? -INFINITY : INFINITY;
		return true;
	}
	/* only digits, one dot, an exponent: strtod would accept more */
	{
		const char *q = p;
		bool		digits = false;

		while (isdigit((unsigned char) *q))
			q++, digits = true;
		if (*q == '.')
		{
			q++;
			while (isdigit((unsigned char) *q))
				q++, digits = true;
		}
		if (!digits)
			return false;
		if (*q == 'e' || *q == 'E')
		{
			q++;
			if (*q == '+' || *q == '-')
				q++;
			if (!isdigit((unsigned char) *q))
				return false;
			while (isdigit((unsigned char) *q))
				q++;
		}
		if (*q != '\0')
			return false;
	}
	*out = strtod(p, &stop);
	if (neg)
		*out = -*out;
	return true;
}

/* read exactly n digits */
static bool
Digits(const char **pp, const char *end, int n, int *out)
{
	int			v = 0;
	int			i;

	for (i = 0; i < n; i++)
	{
		if (*pp >= end || !isdigit((unsigned char) **pp))
			return false;
		v = v * 10 + (**pp - '0');
		(*pp)++;
	}
	*out = v;
	return true;
}

/* days from 1970-01-01 of a proleptic Gregorian date */
static int64
DaysFromCivil(int64 y, int m, int d)
{
	int64		era;
	int64		yoe;
	int64		doy;
	int64		doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/*
 * FlagParseDate
 *		The ISO 8601 forms new Date() accepts: YYYY, YYYY-MM, YYYY-MM-DD,
 *		optionally THH:MM[:SS[.fff...]] and Z or +HH:MM.  A time without a
 *		zone is taken as UTC (JavaScript would use the SDK host's zone).
 */
bool
FlagParseDate(const char *s, size_t len, TimestampTz *out)
{
	const char *p = s;
	const char *end = s + len;
	int			y,
				mo = 1,
				d = 1,
				h = 0,
				mi = 0,
				sec = 0;
	int64		usec = 0;
	int			offset_min = 0;
	int64		days;
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

	while (p < end && JsSpace(*p))
		p++;
	while (end > p && JsSpace(end[-1]))
		end--;
	if (!Digits(&p, end, 4, &y))
		return false;
	if (p < end && *p == '-')
	{
		p++;
		if (!Digits(&p, end, 2, &mo))
			return false;
		if (p < end && *p == '-')
		{
			p++;
			if (!Digits(&p, end, 2, &d))
				return false;
		}
	}
	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1])
		return false;
	if (mo == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return false;
	if (p < end && (*p == 'T' || *p == 't' || *p == ' '))
	{
		p++;
		if (!Digits(&p, end, 2, &h) || p >= end || *p != ':')
			return false;
		p++;
		if (!Digits(&p, end, 2, &mi))
			return false;
		if (p < end && *p == ':')
		{
			p++;
			if (!Digits(&p, end, 2, &sec))
				return false;
			if (p < end && *p == '.')
			{
				int64		scale = 100000;
				bool		any = false;

				p++;
				while (p < end && isdigit((unsigned char) *p))
				{
					usec += (*p - '0') * scale;
					scale /= 10;
					p++;
					any = true;
				}
				if (!any)
					return false;
			}
		}
		if (h > 24 || mi > 59 || sec > 59 || (h == 24 && (mi || sec || usec)))
			return false;
		if (p < end && (*p == 'Z' || *p == 'z'))
			p++;
		else if (p < end && (*p == '+' || *p == '-'))
		{
			int			oh,
						om;
			int			sign = (*p == '-') ? -1 : 1;

			p++;
			if (!Digits(&p, end, 2, &oh))
				return false;
			if (p < end && *p == ':')
				p++;
			if (!Digits(&p, end, 2, &om) || oh > 23 || om > 59)
				return false;
			offset_min = sign * (oh * 60 + om);
		}
	}
	if (p != end)
		return false;

	days = DaysFromCivil(y, mo, d);
	/* PostgreSQL timestamps count from 2000-01-01 */
	*out = ((days - 10957) * 86400 + h * 3600 + mi * 60 + sec - (int64) offset_min * 60)
		* USECS_PER_SEC + usec;
	return true;
}

/* a numeric identifier: 0 or no leading zero */
static bool
SemverNumber(const char *s, size_t n, uint64 *out)
{
	uint64		v = 0;
	size_t		i;

	if (n == 0 || n > 16 || (n > 1 && s[0] == '0'))
		return false;
	for (i = 0; i < n; i++)
	{
		if (!isdigit((unsigned char) s[i]))
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

/*
 * FlagParseSemver
 *		MAJOR.MINOR.PATCH[-prerelease][+build], white space trimmed, an
 *		optional leading "v" (as the semver package accepts).  Build
 *		metadata is checked and ignored.  Allocates in the current context.
 */
bool
FlagParseSemver(const char *s, size_t len, FlagSemver *out)
{
	const char *p = s;
	const char *end = s + len;
	const char *q;
	const char *dash;
	const char *plus;
	uint64	   *parts[3];
	int			i;

	memset(out, 0, sizeof(*out));
	parts[0] = &out->major;
	parts[1] = &out->minor;
	parts[2] = &out->patch;
	while (p < end && JsSpace(*p))
		p++;
	while (end > p && JsSpace(end[-1]))
		end--;
	if (end - p > 256)
		return false;
	if (p < end && (*p == 'v' || *p == '='))
		p++;

	/* build metadata: dot-separated [0-9A-Za-z-]+ */
	plus = memchr(p, '+', end - p);
	if (plus)
	{
		const char *b = plus + 1;

		if (b == end)
			return false;
		for (q = b; q < end; q++)
		{
			if (*q == '.')
			{
				if (q == b || q + 1 == end || q[-1] == '.')
					return false;
			}
			else if (!isalnum((unsigned char) *q) && *q != '-')
				return false;
		}
		end = plus;
	}
	dash = memchr(p, '-', end - p);

	q = p;
	for (i = 0; i < 3; i++)
	{
		const char *stop = dash ? dash : end;
		const char *dot = (i < 2) ? memchr(q, '.', stop - q) : stop;

		if (dot == NULL)
			return false;
		if (!SemverNumber(q, dot - q, parts[i]))
			return false;
		q = (i < 2) ? dot + 1 : dot;
	}
	if (dash)
	{
		const char *a = dash + 1;
		int			cap = 4;

		if (q != dash || a == end)
			return false;
		out->pre = palloc(sizeof(char *) * cap);
		out->pre_numeric = palloc(sizeof(bool) * cap);
		out->pre_num = palloc(sizeof(uint64) * cap);
		while (a <= end)
		{
			const char *e = memchr(a, '.', end - a);
			size_t		n;
			bool		alldigits = true;

			if (e == NULL)
				e = end;
			n = e - a;
			if (n == 0)
				return false;
			for (q = a; q < e; q++)
			{
				if (!isalnum((unsigned char) *q) && *q != '-')
					return false;
				if (!isdigit((unsigned char) *q))
					alldigits = false;
			}
			if (out->npre == cap)
			{
				cap *= 2;
				out->pre = repalloc(out->pre, sizeof(char *) * cap);
				out->pre_numeric = repalloc(out->pre_numeric, sizeof(bool) * cap);
				out->pre_num = repalloc(out->pre_num, sizeof(uint64) * cap);
			}
			out->pre[out->npre] = pnstrdup(a, n);
			out->pre_numeric[out->npre] = alldigits;
			out->pre_num[out->npre] = 0;
			if (alldigits && !SemverNumber(a, n, &out->pre_num[out->npre]))
				return false;
			out->npre++;
			a = e + 1;
		}
	}
	else if (q != end)
		return false;
	return true;
}

/* semver precedence: -1, 0, 1 */
int
FlagSemverCompare(const FlagSemver *a, const FlagSemver *b)
{
	int			i;

#define CMP(x, y) do { if ((x) != (y)) return (x) < (y) ? -1 : 1; } while (0)
	CMP(a->major, b->major);
	CMP(a->minor, b->minor);
	CMP(a->patch, b->patch);
	/* a version without prerelease ranks above one with */
	if (a->npre == 0 || b->npre == 0)
		return (a->npre == 0) - (b->npre == 0);
	for (i = 0; i < a->npre && i < b->npre; i++)
	{
		if (a->pre_numeric[i] && b->pre_numeric[i])
			CMP(a->pre_num[i], b->pre_num[i]);
		else if (a->pre_numeric[i] != b->pre_numeric[i])
			return a->pre_numeric[i] ? -1 : 1;
		else
		{
			int			c = strcmp(a->pre[i], b->pre[i]);

			if (c != 0)
				return c < 0 ? -1 : 1;
		}
	}
	CMP(a->npre, b->npre);
#undef CMP
	return 0;
}

/*
 * FlagParseIp
 *		An IPv4 or IPv6 address, with "/bits" when allow_prefix.
 */
bool
FlagParseIp(const char *s, size_t len, bool allow_prefix, FlagIp *out)
{
	char		buf[INET6_ADDRSTRLEN + 8];
	const char *p = s;
	const char *end = s + len;
	char	   *slash;
	int			maxbits;

	while (p < end && JsSpace(*p))
		p++;
	while (end > p && JsSpace(end[-1]))
		end--;
	if (end - p <= 0 || (size_t) (end - p) >= sizeof(buf))
		return false;
	memcpy(buf, p, end - p);
	buf[end - p] = '\0';
	slash = strchr(buf, '/');
	if (slash)
	{
		if (!allow_prefix)
			return false;
		*slash = '\0';
	}
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, buf, out->addr) == 1)
	{
		out->family = 4;
		maxbits = 32;
	}
	else if (inet_pton(AF_INET6, buf, out->addr) == 1)
	{
		out->family = 6;
		maxbits = 128;
	}
	else
		return false;
	out->bits = maxbits;
	if (slash)
	{
		const char *b = slash + 1;
		int			v = 0;

		if (*b == '\0' || strlen(b) > 3)
			return false;
		for (; *b; b++)
		{
			if (!isdigit((unsigned char) *b))
				return false;
			v = v * 10 + (*b - '0');
		}
		if (v > maxbits)
			return false;
		out->bits = v;
	}
	return true;
}

/* is ip inside net (same family, first net->bits bits equal)? */
bool
FlagIpInNetwork(const FlagIp *ip, const FlagIp *net)
{
	int			full = net->bits / 8;
	int			rest = net->bits % 8;

	if (ip->family != net->family)
		return false;
	if (memcmp(ip->addr, net->addr, full) != 0)
		return false;
	if (rest)
	{
		uint8		mask = (uint8) (0xFF << (8 - rest));

		if ((ip->addr[full] & mask) != (net->addr[full] & mask))
			return false;
	}
	return true;
}
