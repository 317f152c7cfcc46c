/*
 * rewards.c
 *	  Rewards: the hot helpers of issuance and redemption.
 *
 *	  aura._reward_code() makes the codes printed on rewards: 12 characters
 *	  from a 32-symbol alphabet without the look-alikes 0/O and 1/I, drawn
 *	  from the operating system's CSPRNG (pg_strong_random), shown as
 *	  XXXX-XXXX-XXXX (60 bits, unguessable).  aura._reward_code_normalize()
 *	  turns what a cashier typed into that canonical form.
 */
#include "postgres.h"

#include "fmgr.h"
#include "port.h"
#include "utils/builtins.h"
#include "utils/numeric.h"

#include "aura.h"

#define CODE_SYMBOLS 12
#define CODE_ALPHABET "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"

PG_FUNCTION_INFO_V1(aura_reward_code);
PG_FUNCTION_INFO_V1(aura_reward_code_normalize);

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
