/*
 * flags_ops.h
 *	  Value parsers of the feature-flag constraint operators: JavaScript
 *	  Number(), ISO 8601 dates, semantic versions and IP ranges, written to
 *	  give the answers Unleash's SDKs give, without ereport (a bad value in
 *	  a constraint makes it false, it never raises).
 */
#ifndef AURA_FLAGS_OPS_H
#define AURA_FLAGS_OPS_H

#include "postgres.h"
#include "datatype/timestamp.h"

/* JavaScript Number(s): false for NaN */
extern bool FlagParseNumber(const char *s, size_t len, double *out);

/* new Date(s) for ISO 8601 forms; false when invalid */
extern bool FlagParseDate(const char *s, size_t len, TimestampTz *out);

/* a parsed semantic version (semver 2.0.0, optional leading "v") */
typedef struct FlagSemver
{
	uint64		major;
	uint64		minor;
	uint64		patch;
	int			npre;			/* prerelease identifiers */
	char	  **pre;
	bool	   *pre_numeric;
	uint64	   *pre_num;
} FlagSemver;

extern bool FlagParseSemver(const char *s, size_t len, FlagSemver *out);
extern int	FlagSemverCompare(const FlagSemver *a, const FlagSemver *b);

/* an IPv4 or IPv6 address or network */
typedef struct FlagIp
{
	int			family;			/* 4 or 6 */
	uint8		addr[16];
	int			bits;			/* prefix length; 32/128 for an address */
} FlagIp;

extern bool FlagParseIp(const char *s, size_t len, bool allow_prefix, FlagIp *out);
extern bool FlagIpInNetwork(const FlagIp *ip, const FlagIp *net);

#endif							/* AURA_FLAGS_OPS_H */
