/*
 * flags.c
 *	  Feature flags evaluated as Unleash's SDKs evaluate them, from a
 *	  per-backend cache of compiled flags.
 *
 * A flag is compiled on first use in a backend: one SPI call of
 * aura._flag_source(key, scope) returns its Unleash JSON (segments
 * resolved, kill switch and ramps added), which is parsed once into the
 * structures below (numbers, dates, versions, CIDR ranges and regular
 * expressions of constraints pre-parsed).  Unknown flags are cached too, as
 * "missing".  Evaluation then only reads the context jsonb and these
 * structures: no SPI, no catalog access.
 *
 * Invalidation: a statement trigger on every flag table calls
 * aura_flags_invalidate(), which queues a relcache invalidation of the
 * sequence aura._flags_cache_marker (a relation no query uses, so plans and
 * the flag tables' own relcache entries are left alone).  PostgreSQL
 * delivers it to every backend when the writing transaction commits (to the
 * writer itself at the end of the command, and again at abort); our
 * relcache callback marks the cache stale and the next evaluation drops
 * it.  Each statement that evaluates flags first reads pending
 * invalidations, so no statement reads a flag older than the last commit
 * it can see.
 */
#include "postgres.h"

#include <math.h>
#include <unistd.h>

#include "catalog/namespace.h"
#include "catalog/pg_collation.h"
#include "commands/trigger.h"
#include "common/hashfn.h"
#if PG_VERSION_NUM >= 150000
#include "common/pg_prng.h"
#endif
#include "executor/spi.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/tuplestore.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "regex/regex.h"
#include "utils/builtins.h"
#include "utils/formatting.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "access/xact.h"

#include "aura.h"
#include "context.h"
#include "flags.h"
#include "flags_ops.h"
#include "murmur3.h"

#define FLAG_KEY_MAX 200
#define VARIANT_SEED 86028157U

/* ------------------------------------------------------------------------
 * Compiled flags
 * ------------------------------------------------------------------------
 */
typedef enum FlagOp
{
	OP_UNKNOWN,
	OP_IN,
	OP_NOT_IN,
	OP_STR_STARTS_WITH,
	OP_STR_ENDS_WITH,
	OP_STR_CONTAINS,
	OP_NUM_EQ,
	OP_NUM_GT,
	OP_NUM_GTE,
	OP_NUM_LT,
	OP_NUM_LTE,
	OP_DATE_AFTER,
	OP_DATE_BEFORE,
	OP_SEMVER_EQ,
	OP_SEMVER_GT,
	OP_SEMVER_GTE,
	OP_SEMVER_LT,
	OP_SEMVER_LTE,
	OP_IN_CIDR,
	OP_REGEX
} FlagOp;

static const struct
{
	const char *name;
	FlagOp		op;
}			op_names[] =
{
	{"IN", OP_IN}, {"NOT_IN", OP_NOT_IN},
	{"STR_STARTS_WITH", OP_STR_STARTS_WITH}, {"STR_ENDS_WITH", OP_STR_ENDS_WITH},
	{"STR_CONTAINS", OP_STR_CONTAINS},
	{"NUM_EQ", OP_NUM_EQ}, {"NUM_GT", OP_NUM_GT}, {"NUM_GTE", OP_NUM_GTE},
	{"NUM_LT", OP_NUM_LT}, {"NUM_LTE", OP_NUM_LTE},
	{"DATE_AFTER", OP_DATE_AFTER}, {"DATE_BEFORE", OP_DATE_BEFORE},
	{"SEMVER_EQ", OP_SEMVER_EQ}, {"SEMVER_GT", OP_SEMVER_GT}, {"SEMVER_GTE", OP_SEMVER_GTE},
	{"SEMVER_LT", OP_SEMVER_LT}, {"SEMVER_LTE", OP_SEMVER_LTE},
	{"IN_CIDR", OP_IN_CIDR}, {"REGEX", OP_REGEX},
};

/* a string with its length (values may hold NUL-free UTF-8 of any size) */
typedef struct FlagStr
{
	char	   *s;
	int			len;
} FlagStr;

typedef struct FlagConstraint
{
	FlagStr		field;			/* contextName */
	char	   *op_name;
	FlagOp		op;
	bool		inverted;
	bool		case_insensitive;
	int			nvalues;		/* values, cleaned as the SDKs do */
	FlagStr    *values;
	char	   *value;			/* the single value, or NULL */
	/* the single value (or values) pre-parsed for the operator */
	double		num;
	TimestampTz date;
	FlagSemver	semver;
	FlagIp	   *nets;
	regex_t    *re;
	const char *invalid;		/* why this constraint can never hold */
} FlagConstraint;

typedef struct FlagVariant
{
	FlagStr		name;
	int			weight;
	char	   *stickiness;
	char	   *payload_json;	/* {"type":..,"value":..} text, or NULL */
	int			noverrides;
	FlagStr    *override_fields;
	int		   *override_nvalues;
	FlagStr   **override_values;
} FlagVariant;

typedef enum StrategyKind
{
	ST_UNKNOWN,
	ST_DEFAULT,
	ST_USER_WITH_ID,
	ST_GRADUAL_USER,
	ST_GRADUAL_SESSION,
	ST_GRADUAL_RANDOM,
	ST_FLEXIBLE,
	ST_REMOTE_ADDRESS,
	ST_HOSTNAME
} StrategyKind;

typedef struct FlagStrategy
{
	char	   *name;
	StrategyKind kind;
	bool		disabled;
	double		percentage;		/* rollout / percentage; NaN when invalid */
	FlagStr		group_id;		/* rollout group: groupId parameter */
	FlagStr		variant_group;	/* strategy variants: groupId, else the flag name */
	char	   *stickiness;		/* flexibleRollout stickiness */
	int			nlist;			/* userIds, IPs or hostNames, split */
	FlagStr    *list;
	int			nconstraints;	/* own constraints, then segments' */
	FlagConstraint *constraints;
	int64		missing_segment;	/* a segment id not found, or -1 */
	int			nvariants;
	FlagVariant *variants;
} FlagStrategy;

typedef struct FlagDependency
{
	char	   *feature;
	bool		enabled;
	int			nvariants;
	char	  **variants;
} FlagDependency;

typedef struct FlagRamp
{
	TimestampTz at;
	int			rollout;
} FlagRamp;

typedef struct CompiledFlag
{
	char	   *name;
	int			name_len;
	int64		scope;			/* the scope it was looked up in */
	bool		enabled;
	bool		killed;
	char	   *type;
	int			nstrategies;
	FlagStrategy *strategies;
	int			nvariants;
	FlagVariant *variants;
	int			ndeps;
	FlagDependency *deps;
	int			nramps;
	FlagRamp   *ramps;
	/* evaluations not yet added to the shared counters */
	int64		count_on;
	int64		count_off;
	bool		dirty;
} CompiledFlag;

/* cache key: scope (restaurant id, 0 for none) and flag key */
typedef struct FlagKey
{
	int64		scope;
	char		name[FLAG_KEY_MAX + 1];
} FlagKey;

typedef struct FlagEntry
{
	FlagKey		key;
	CompiledFlag *flag;			/* NULL: no such flag */
} FlagEntry;

static MemoryContext FlagCacheContext = NULL;
static HTAB *FlagCache = NULL;
static bool FlagCacheStale = false;
static Oid	FlagsRelid = InvalidOid;	/* aura._flags_cache_marker */
static TransactionId LastInvalXid = InvalidTransactionId;
static uint64 FlagCacheGeneration = 1;
static int64 StatCompiles = 0;
static int64 StatResets = 0;
static SPIPlanPtr SourcePlan = NULL;
/* regexes compiled by pg_regcomp, freed with pg_regfree on reset */
static List *FlagRegexes = NIL;
static char HostName[256];
static bool HostNameSet = false;

/* ------------------------------------------------------------------------
 * Cache and invalidation
 * ------------------------------------------------------------------------
 */
static uint32
FlagKeyHash(const void *key, Size keysize)
{
	const FlagKey *k = (const FlagKey *) key;

	return hash_bytes((const unsigned char *) k->name, strlen(k->name)) ^
		hash_bytes_uint32((uint32) k->scope);
}

static int
FlagKeyMatch(const void *key1, const void *key2, Size keysize)
{
	const FlagKey *a = (const FlagKey *) key1;
	const FlagKey *b = (const FlagKey *) key2;

	if (a->scope != b->scope)
		return 1;
	return strcmp(a->name, b->name);
}

/*
 * FlagsRelcacheCallback
 *		Any invalidation of aura.flags (or a full reset) makes every
 *		compiled flag stale.  Only a flag is set here: the callback can run
 *		while an evaluation holds pointers into the cache.
 */
static void
FlagsRelcacheCallback(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == FlagsRelid || FlagsRelid == InvalidOid)
		FlagCacheStale = true;
}

/* ------------------------------------------------------------------------
 * Evaluation counters (only when aura is preloaded)
 *
 * Each backend counts evaluations on its compiled flags and adds them to a
 * shared hash table (scope, key) -> (enabled, disabled) before each commit,
 * and before its cache is dropped.  No table is written, and the shared
 * lock is taken once per committing transaction that evaluated flags.
 * ------------------------------------------------------------------------
 */
#define FLAG_STATS_MAX 8192
#define FLAG_DIRTY_MAX 256

typedef struct FlagStatsEntry
{
	FlagKey		key;
	int64		enabled;
	int64		disabled;
} FlagStatsEntry;

typedef struct FlagStatsShared
{
	LWLock	   *lock;
	int64		dropped;		/* evaluations not counted: table full */
} FlagStatsShared;

static FlagStatsShared *FlagStats = NULL;
static HTAB *FlagStatsHash = NULL;
#if PG_VERSION_NUM >= 150000
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static CompiledFlag *FlagDirty[FLAG_DIRTY_MAX];
static int	FlagNDirty = 0;

static Size
FlagStatsSize(void)
{
	return add_size(MAXALIGN(sizeof(FlagStatsShared)),
					hash_estimate_size(FLAG_STATS_MAX, sizeof(FlagStatsEntry)));
}

#if PG_VERSION_NUM >= 150000
static void
FlagsShmemRequest(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(FlagStatsSize());
	RequestNamedLWLockTranche("aura_flag_stats", 1);
}
#endif

static void
FlagsShmemStartup(void)
{
	HASHCTL		info;
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	FlagStats = ShmemInitStruct("aura flag stats", sizeof(FlagStatsShared), &found);
	if (!found)
	{
		FlagStats->lock = &(GetNamedLWLockTranche("aura_flag_stats"))->lock;
		FlagStats->dropped = 0;
	}
	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(FlagKey);
	info.entrysize = sizeof(FlagStatsEntry);
	FlagStatsHash = ShmemInitHash("aura flag stats hash", FLAG_STATS_MAX, FLAG_STATS_MAX,
								  &info, HASH_ELEM | HASH_BLOBS);
	LWLockRelease(AddinShmemInitLock);
}

/* add this backend's pending counts to the shared table */
static void
FlagStatsFlush(void)
{
	int			i;

	if (FlagStats == NULL || FlagNDirty == 0)
		return;
	LWLockAcquire(FlagStats->lock, LW_EXCLUSIVE);
	for (i = 0; i < FlagNDirty; i++)
	{
		CompiledFlag *f = FlagDirty[i];
		FlagKey		key;
		FlagStatsEntry *e;
		bool		found;

		memset(&key, 0, sizeof(key));
		key.scope = f->scope;
		strlcpy(key.name, f->name, sizeof(key.name));
		e = hash_search(FlagStatsHash, &key, HASH_ENTER_NULL, &found);
		if (e == NULL)
			FlagStats->dropped += f->count_on + f->count_off;
		else
		{
			if (!found)
				e->enabled = e->disabled = 0;
			e->enabled += f->count_on;
			e->disabled += f->count_off;
		}
		f->count_on = f->count_off = 0;
		f->dirty = false;
	}
	FlagNDirty = 0;
	LWLockRelease(FlagStats->lock);
}

/* count one evaluation (the hot path: two increments) */
static inline void
FlagStatsCount(CompiledFlag *f, bool on)
{
	if (FlagStats == NULL)
		return;
	if (on)
		f->count_on++;
	else
		f->count_off++;
	if (!f->dirty)
	{
		if (FlagNDirty == FLAG_DIRTY_MAX)
			FlagStatsFlush();
		f->dirty = true;
		FlagDirty[FlagNDirty++] = f;
	}
}

static void
FlagsXactCallback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_PRE_COMMIT || event == XACT_EVENT_PARALLEL_PRE_COMMIT)
		FlagStatsFlush();
}

/* drop every compiled flag */
static void
FlagCacheReset(void)
{
	ListCell   *lc;

	FlagStatsFlush();			/* the pending counts live in the flags */
	foreach(lc, FlagRegexes)
		pg_regfree((regex_t *) lfirst(lc));
	FlagRegexes = NIL;			/* the list itself lives in FlagCacheContext */
	if (FlagCacheContext)
		MemoryContextReset(FlagCacheContext);
	FlagCache = NULL;
	FlagCacheStale = false;
	FlagCacheGeneration++;
	StatResets++;
}

/*
 * FlagCacheEnsure
 *		Make sure the cache exists.  A stale cache is dropped only when
 *		allow_reset: nested lookups (parents of a dependency) run while the
 *		caller holds pointers into it, so they keep it until the next
 *		top-level call.
 */
static void
FlagCacheEnsure(bool allow_reset)
{
	HASHCTL		ctl;
	Oid			nsp;

	if (FlagCacheStale && allow_reset)
		FlagCacheReset();
	if (FlagCache)
		return;
	nsp = get_namespace_oid("aura", true);
	if (OidIsValid(nsp))
	{
		Oid			relid = get_relname_relid("_flags_cache_marker", nsp);

		if (OidIsValid(relid))
			FlagsRelid = relid;
	}
	if (FlagCacheContext == NULL)
		FlagCacheContext = AllocSetContextCreate(CacheMemoryContext, "aura flag cache",
												 ALLOCSET_DEFAULT_SIZES);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(FlagKey);
	ctl.entrysize = sizeof(FlagEntry);
	ctl.hash = FlagKeyHash;
	ctl.match = FlagKeyMatch;
	ctl.hcxt = FlagCacheContext;
	FlagCache = hash_create("aura flags", 256, &ctl,
							HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
}

/*
 * FlagsInit
 *		Register the relcache callback (once per backend) and read the host
 *		name used by the applicationHostname strategy.
 */
void
FlagsInit(void)
{
	const char *env;

	CacheRegisterRelcacheCallback(FlagsRelcacheCallback, (Datum) 0);
	RegisterXactCallback(FlagsXactCallback, NULL);
	if (process_shared_preload_libraries_in_progress)
	{
#if PG_VERSION_NUM >= 150000
		prev_shmem_request_hook = shmem_request_hook;
		shmem_request_hook = FlagsShmemRequest;
#else
		RequestAddinShmemSpace(FlagStatsSize());
		RequestNamedLWLockTranche("aura_flag_stats", 1);
#endif
		prev_shmem_startup_hook = shmem_startup_hook;
		shmem_startup_hook = FlagsShmemStartup;
	}
	env = getenv("HOSTNAME");
	if (env && env[0])
		strlcpy(HostName, env, sizeof(HostName));
	else if (gethostname(HostName, sizeof(HostName) - 1) != 0)
		strlcpy(HostName, "undefined", sizeof(HostName));
	HostName[sizeof(HostName) - 1] = '\0';
	for (char *p = HostName; *p; p++)
		*p = pg_ascii_tolower((unsigned char) *p);
	HostNameSet = true;
}

PG_FUNCTION_INFO_V1(aura_flags_invalidate);

/*
 * aura_flags_invalidate
 *		Statement trigger on the flag tables: queue an invalidation of the
 *		marker sequence, delivered to all backends at commit.  One message
 *		per (sub)transaction is enough for the others; later statements of
 *		the same one only mark this backend's cache stale, so a bulk import
 *		does not flood the shared invalidation queue.
 */
Datum
aura_flags_invalidate(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TransactionId xid;
	Oid			relid;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("aura._flags_invalidate() must be called as a trigger")));
	FlagCacheStale = true;
	xid = GetCurrentTransactionIdIfAny();
	if (TransactionIdIsValid(xid) && TransactionIdEquals(xid, LastInvalXid))
		return PointerGetDatum(NULL);
	relid = get_relname_relid("_flags_cache_marker", RelationGetNamespace(trigdata->tg_relation));
	if (OidIsValid(relid))
	{
		CacheInvalidateRelcacheByRelid(relid);
		LastInvalXid = xid;
	}
	return PointerGetDatum(NULL);
}

/* ------------------------------------------------------------------------
 * jsonb helpers (compile time)
 * ------------------------------------------------------------------------
 */
static bool
JbGet(JsonbContainer *c, const char *key, JsonbValue *out)
{
	if (c == NULL || !JsonContainerIsObject(c))
		return false;
	return getKeyJsonValueFromContainer(c, key, strlen(key), out) != NULL;
}

static JsonbContainer *
JbGetContainer(JsonbContainer *c, const char *key, bool want_array)
{
	JsonbValue	v;

	if (!JbGet(c, key, &v) || v.type != jbvBinary)
		return NULL;
	if (want_array ? !JsonContainerIsArray(v.val.binary.data) : !JsonContainerIsObject(v.val.binary.data))
		return NULL;
	return v.val.binary.data;
}

static int
JbArraySize(JsonbContainer *c)
{
	return c ? JsonContainerSize(c) : 0;
}

/* a scalar as text: strings as they are, numbers and booleans printed */
static char *
JbScalarText(JsonbValue *v, int *len)
{
	char	   *s;

	switch (v->type)
	{
		case jbvString:
			*len = v->val.string.len;
			return pnstrdup(v->val.string.val, v->val.string.len);
		case jbvNumeric:
			s = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
			*len = strlen(s);
			return s;
		case jbvBool:
			s = pstrdup(v->val.boolean ? "true" : "false");
			*len = strlen(s);
			return s;
		default:
			return NULL;
	}
}

static char *
JbGetText(JsonbContainer *c, const char *key)
{
	JsonbValue	v;
	int			len;

	if (!JbGet(c, key, &v))
		return NULL;
	return JbScalarText(&v, &len);
}

static bool
JbGetBool(JsonbContainer *c, const char *key, bool dflt)
{
	JsonbValue	v;

	if (!JbGet(c, key, &v) || v.type != jbvBool)
		return dflt;
	return v.val.boolean;
}

static JsonbValue *
JbIth(JsonbContainer *c, int i)
{
	return getIthJsonbValueFromContainer(c, i);
}

/* ------------------------------------------------------------------------
 * Compilation (in FlagCacheContext)
 * ------------------------------------------------------------------------
 */

/* JavaScript's trim() of ASCII white space */
static void
TrimStr(FlagStr *s)
{
	while (s->len > 0 && strchr(" \t\n\r\v\f", s->s[0]))
		s->s++, s->len--;
	while (s->len > 0 && strchr(" \t\n\r\v\f", s->s[s->len - 1]))
		s->len--;
}

/*
 * SplitList
 *		s.split(/\s*,\s*\/) as the SDKs split userIds, IPs and hostNames:
 *		white space around commas goes, not at the ends.
 */
static FlagStr *
SplitList(const char *s, int *n)
{
	int			cap = 8;
	FlagStr    *out = palloc(sizeof(FlagStr) * cap);
	const char *p = s;

	*n = 0;
	for (;;)
	{
		const char *comma = strchr(p, ',');
		const char *end = comma ? comma : p + strlen(p);
		FlagStr		item;

		item.s = (char *) p;
		item.len = end - p;
		if (comma)
			while (item.len > 0 && strchr(" \t\n\r\v\f", item.s[item.len - 1]))
				item.len--;
		if (*n == cap)
		{
			cap *= 2;
			out = repalloc(out, sizeof(FlagStr) * cap);
		}
		out[(*n)++] = item;
		if (!comma)
			break;
		p = comma + 1;
		while (*p && strchr(" \t\n\r\v\f", *p))
			p++;
	}
	return out;
}

static void
LowerStr(FlagStr *s)
{
	char	   *lower = str_tolower(s->s, s->len, DEFAULT_COLLATION_OID);

	s->s = lower;
	s->len = strlen(lower);
}

static void
CompileConstraint(JsonbContainer *c, FlagConstraint *fc)
{
	JsonbContainer *vals;
	JsonbValue	v;
	int			i;
	int			n;

	memset(fc, 0, sizeof(*fc));
	fc->field.s = JbGetText(c, "contextName");
	if (fc->field.s == NULL)
		fc->field.s = pstrdup("");
	fc->field.len = strlen(fc->field.s);
	fc->op_name = JbGetText(c, "operator");
	if (fc->op_name == NULL)
		fc->op_name = pstrdup("");
	fc->op = OP_UNKNOWN;
	for (i = 0; i < (int) lengthof(op_names); i++)
		if (strcmp(op_names[i].name, fc->op_name) == 0)
			fc->op = op_names[i].op;
	fc->inverted = JbGetBool(c, "inverted", false);
	fc->case_insensitive = JbGetBool(c, "caseInsensitive", false);
	if (JbGet(c, "value", &v))
		fc->value = JbScalarText(&v, &n);

	/* values: drop empty ones, then trim (the SDKs' cleanValues) */
	vals = JbGetContainer(c, "values", true);
	n = JbArraySize(vals);
	fc->values = palloc0(sizeof(FlagStr) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		JsonbValue *e = JbIth(vals, i);
		FlagStr		s;

		if (e == NULL || (s.s = JbScalarText(e, &s.len)) == NULL || s.len == 0)
			continue;
		TrimStr(&s);
		if (fc->case_insensitive &&
			(fc->op == OP_STR_STARTS_WITH || fc->op == OP_STR_ENDS_WITH || fc->op == OP_STR_CONTAINS))
			LowerStr(&s);
		fc->values[fc->nvalues++] = s;
	}

	switch (fc->op)
	{
		case OP_UNKNOWN:
			fc->invalid = psprintf("unknown operator \"%s\"", fc->op_name);
			break;
		case OP_NUM_EQ:
		case OP_NUM_GT:
		case OP_NUM_GTE:
		case OP_NUM_LT:
		case OP_NUM_LTE:
			if (fc->value == NULL || !FlagParseNumber(fc->value, strlen(fc->value), &fc->num))
				fc->invalid = psprintf("value \"%s\" is not a number", fc->value ? fc->value : "undefined");
			break;
		case OP_DATE_AFTER:
		case OP_DATE_BEFORE:
			if (fc->value == NULL || !FlagParseDate(fc->value, strlen(fc->value), &fc->date))
				fc->invalid = psprintf("value \"%s\" is not a date", fc->value ? fc->value : "undefined");
			break;
		case OP_SEMVER_EQ:
		case OP_SEMVER_GT:
		case OP_SEMVER_GTE:
		case OP_SEMVER_LT:
		case OP_SEMVER_LTE:
			if (fc->value == NULL || !FlagParseSemver(fc->value, strlen(fc->value), &fc->semver))
				fc->invalid = psprintf("value \"%s\" is not a semantic version", fc->value ? fc->value : "undefined");
			break;
		case OP_IN_CIDR:
			{
				/* values, or the single value, are networks */
				int			k = 0;

				fc->nets = palloc(sizeof(FlagIp) * (fc->nvalues + 1));
				for (i = 0; i < fc->nvalues; i++)
				{
					if (!FlagParseIp(fc->values[i].s, fc->values[i].len, true, &fc->nets[k]))
					{
						fc->invalid = psprintf("\"%.*s\" is not a CIDR range", fc->values[i].len, fc->values[i].s);
						break;
					}
					k++;
				}
				if (fc->invalid == NULL && fc->value)
				{
					if (FlagParseIp(fc->value, strlen(fc->value), true, &fc->nets[k]))
						k++;
					else
						fc->invalid = psprintf("\"%s\" is not a CIDR range", fc->value);
				}
				if (fc->invalid == NULL && k == 0)
					fc->invalid = pstrdup("no CIDR range given");
				fc->nvalues = (fc->invalid == NULL) ? k : fc->nvalues;
				break;
			}
		case OP_REGEX:
			{
				const char *pattern = fc->value ? fc->value :
					(fc->nvalues > 0 ? pnstrdup(fc->values[0].s, fc->values[0].len) : NULL);

				if (pattern == NULL)
					fc->invalid = pstrdup("no regular expression given");
				else
				{
					int			plen = strlen(pattern);
					pg_wchar   *wpat = palloc((plen + 1) * sizeof(pg_wchar));
					int			wlen = pg_mb2wchar_with_len(pattern, wpat, plen);
					regex_t    *re = palloc(sizeof(regex_t));
					int			rc;

					rc = pg_regcomp(re, wpat, wlen,
									REG_ADVANCED | (fc->case_insensitive ? REG_ICASE : 0),
									DEFAULT_COLLATION_OID);
					if (rc != REG_OKAY)
					{
						char		errbuf[100];

						pg_regerror(rc, re, errbuf, sizeof(errbuf));
						fc->invalid = psprintf("invalid regular expression \"%s\": %s", pattern, errbuf);
					}
					else
					{
						fc->re = re;
						FlagRegexes = lappend(FlagRegexes, re);
					}
				}
				break;
			}
		default:
			break;
	}
}

static void
CompileConstraints(JsonbContainer *arr, FlagConstraint *out, int *n)
{
	int			i;
	int			size = JbArraySize(arr);

	for (i = 0; i < size; i++)
	{
		JsonbValue *e = JbIth(arr, i);

		if (e && e->type == jbvBinary && JsonContainerIsObject(e->val.binary.data))
			CompileConstraint(e->val.binary.data, &out[(*n)++]);
	}
}

static void
CompileVariants(JsonbContainer *arr, FlagVariant **out, int *n)
{
	int			size = JbArraySize(arr);
	int			i;

	*n = 0;
	*out = palloc0(sizeof(FlagVariant) * Max(size, 1));
	for (i = 0; i < size; i++)
	{
		JsonbValue *e = JbIth(arr, i);
		JsonbContainer *c;
		JsonbContainer *ov;
		FlagVariant *fv;
		JsonbValue	v;
		int			j;

		if (e == NULL || e->type != jbvBinary || !JsonContainerIsObject(e->val.binary.data))
			continue;
		c = e->val.binary.data;
		fv = &(*out)[(*n)++];
		fv->name.s = JbGetText(c, "name");
		if (fv->name.s == NULL)
			fv->name.s = pstrdup("");
		fv->name.len = strlen(fv->name.s);
		fv->weight = 0;
		if (JbGet(c, "weight", &v) && v.type == jbvNumeric)
			fv->weight = DatumGetInt32(DirectFunctionCall1(numeric_int4, NumericGetDatum(v.val.numeric)));
		fv->stickiness = JbGetText(c, "stickiness");
		if (JbGet(c, "payload", &v) && v.type == jbvBinary)
		{
			StringInfoData buf;

			initStringInfo(&buf);
			JsonbToCString(&buf, v.val.binary.data, v.val.binary.len);
			fv->payload_json = buf.data;
		}
		ov = JbGetContainer(c, "overrides", true);
		fv->noverrides = JbArraySize(ov);
		fv->override_fields = palloc0(sizeof(FlagStr) * Max(fv->noverrides, 1));
		fv->override_nvalues = palloc0(sizeof(int) * Max(fv->noverrides, 1));
		fv->override_values = palloc0(sizeof(FlagStr *) * Max(fv->noverrides, 1));
		for (j = 0; j < fv->noverrides; j++)
		{
			JsonbValue *o = JbIth(ov, j);
			JsonbContainer *vals;
			int			k;

			if (o == NULL || o->type != jbvBinary)
				continue;
			fv->override_fields[j].s = JbGetText(o->val.binary.data, "contextName");
			if (fv->override_fields[j].s == NULL)
				fv->override_fields[j].s = pstrdup("");
			fv->override_fields[j].len = strlen(fv->override_fields[j].s);
			vals = JbGetContainer(o->val.binary.data, "values", true);
			fv->override_values[j] = palloc0(sizeof(FlagStr) * Max(JbArraySize(vals), 1));
			for (k = 0; k < JbArraySize(vals); k++)
			{
				JsonbValue *x = JbIth(vals, k);
				FlagStr		s;

				if (x && (s.s = JbScalarText(x, &s.len)) != NULL)
					fv->override_values[j][fv->override_nvalues[j]++] = s;
			}
		}
	}
}

static void
CompileStrategy(JsonbContainer *c, const char *feature, FlagStrategy *st)
{
	JsonbContainer *params = JbGetContainer(c, "parameters", false);
	JsonbContainer *cons = JbGetContainer(c, "constraints", true);
	JsonbContainer *segs = JbGetContainer(c, "_segments", true);
	char	   *pct;
	char	   *list = NULL;
	int			ncons;
	int			i;

	memset(st, 0, sizeof(*st));
	st->name = JbGetText(c, "name");
	if (st->name == NULL)
		st->name = pstrdup("");
	st->disabled = JbGetBool(c, "disabled", false);
	st->missing_segment = -1;

	if (strcmp(st->name, "default") == 0)
		st->kind = ST_DEFAULT;
	else if (strcmp(st->name, "userWithId") == 0)
		st->kind = ST_USER_WITH_ID, list = JbGetText(params, "userIds");
	else if (strcmp(st->name, "gradualRolloutUserId") == 0)
		st->kind = ST_GRADUAL_USER;
	else if (strcmp(st->name, "gradualRolloutSessionId") == 0)
		st->kind = ST_GRADUAL_SESSION;
	else if (strcmp(st->name, "gradualRolloutRandom") == 0)
		st->kind = ST_GRADUAL_RANDOM;
	else if (strcmp(st->name, "flexibleRollout") == 0)
		st->kind = ST_FLEXIBLE;
	else if (strcmp(st->name, "remoteAddress") == 0)
		st->kind = ST_REMOTE_ADDRESS, list = JbGetText(params, "IPs");
	else if (strcmp(st->name, "applicationHostname") == 0)
		st->kind = ST_HOSTNAME, list = JbGetText(params, "hostNames");
	else
		st->kind = ST_UNKNOWN;

	pct = JbGetText(params, st->kind == ST_FLEXIBLE ? "rollout" : "percentage");
	if (pct == NULL || !FlagParseNumber(pct, strlen(pct), &st->percentage))
		st->percentage = NAN;
	st->group_id.s = JbGetText(params, "groupId");
	if (st->group_id.s)
		st->group_id.len = strlen(st->group_id.s);
	/* flexibleRollout: groupId || feature name (the SDKs' featureToggle) */
	if (st->kind == ST_FLEXIBLE && (st->group_id.s == NULL || st->group_id.len == 0))
	{
		st->group_id.s = pstrdup(feature);
		st->group_id.len = strlen(feature);
	}
	if (st->group_id.s == NULL)
	{
		st->group_id.s = pstrdup("");
		st->group_id.len = 0;
	}
	if (st->group_id.len > 0)
		st->variant_group = st->group_id;
	else
	{
		st->variant_group.s = pstrdup(feature);
		st->variant_group.len = strlen(feature);
	}
	st->stickiness = JbGetText(params, "stickiness");
	if (st->stickiness == NULL || st->stickiness[0] == '\0')
		st->stickiness = pstrdup("default");
	if (list)
	{
		st->list = SplitList(list, &st->nlist);
		if (st->kind == ST_HOSTNAME)
			for (i = 0; i < st->nlist; i++)
				LowerStr(&st->list[i]);
	}

	/* constraints: the strategy's, then those of its segments in order */
	ncons = JbArraySize(cons);
	for (i = 0; i < JbArraySize(segs); i++)
	{
		JsonbValue *g = JbIth(segs, i);

		if (g && g->type == jbvBinary)
			ncons += JbArraySize(JbGetContainer(g->val.binary.data, "constraints", true));
	}
	st->constraints = palloc0(sizeof(FlagConstraint) * Max(ncons, 1));
	CompileConstraints(cons, st->constraints, &st->nconstraints);
	for (i = 0; i < JbArraySize(segs); i++)
	{
		JsonbValue *g = JbIth(segs, i);
		JsonbContainer *gc;
		char	   *id;

		if (g == NULL || g->type != jbvBinary)
			continue;
		gc = g->val.binary.data;
		if (!JbGetBool(gc, "found", false) && st->missing_segment < 0)
		{
			id = JbGetText(gc, "id");
			st->missing_segment = id ? strtoll(id, NULL, 10) : 0;
		}
		CompileConstraints(JbGetContainer(gc, "constraints", true), st->constraints, &st->nconstraints);
	}
	CompileVariants(JbGetContainer(c, "variants", true), &st->variants, &st->nvariants);
}

/* compile the JSON from aura._flag_source() in the current memory context */
static CompiledFlag *
CompileFlag(JsonbContainer *root, const char *name, int64 scope)
{
	CompiledFlag *f = palloc0(sizeof(CompiledFlag));
	JsonbContainer *arr;
	int			i;

	f->name = pstrdup(name);
	f->name_len = strlen(name);
	f->scope = scope;
	f->enabled = JbGetBool(root, "enabled", false);
	f->killed = JbGetBool(root, "_killed", false);
	f->type = JbGetText(root, "type");

	arr = JbGetContainer(root, "strategies", true);
	f->strategies = palloc0(sizeof(FlagStrategy) * Max(JbArraySize(arr), 1));
	for (i = 0; i < JbArraySize(arr); i++)
	{
		JsonbValue *e = JbIth(arr, i);

		if (e && e->type == jbvBinary && JsonContainerIsObject(e->val.binary.data))
			CompileStrategy(e->val.binary.data, name, &f->strategies[f->nstrategies++]);
	}
	CompileVariants(JbGetContainer(root, "variants", true), &f->variants, &f->nvariants);

	arr = JbGetContainer(root, "dependencies", true);
	f->deps = palloc0(sizeof(FlagDependency) * Max(JbArraySize(arr), 1));
	for (i = 0; i < JbArraySize(arr); i++)
	{
		JsonbValue *e = JbIth(arr, i);
		FlagDependency *d;
		JsonbContainer *vars;
		int			j;

		if (e == NULL || e->type != jbvBinary)
			continue;
		d = &f->deps[f->ndeps++];
		d->feature = JbGetText(e->val.binary.data, "feature");
		if (d->feature == NULL)
			d->feature = pstrdup("");
		d->enabled = JbGetBool(e->val.binary.data, "enabled", true);
		vars = JbGetContainer(e->val.binary.data, "variants", true);
		d->variants = palloc0(sizeof(char *) * Max(JbArraySize(vars), 1));
		for (j = 0; j < JbArraySize(vars); j++)
		{
			JsonbValue *x = JbIth(vars, j);
			int			len;

			if (x && (d->variants[d->nvariants] = JbScalarText(x, &len)) != NULL)
				d->nvariants++;
		}
	}

	arr = JbGetContainer(root, "_ramps", true);
	f->ramps = palloc0(sizeof(FlagRamp) * Max(JbArraySize(arr), 1));
	for (i = 0; i < JbArraySize(arr); i++)
	{
		JsonbValue *e = JbIth(arr, i);
		JsonbValue *at;
		JsonbValue *ro;

		if (e == NULL || e->type != jbvBinary || !JsonContainerIsArray(e->val.binary.data))
			continue;
		at = JbIth(e->val.binary.data, 0);
		ro = JbIth(e->val.binary.data, 1);
		if (at == NULL || ro == NULL || at->type != jbvNumeric || ro->type != jbvNumeric)
			continue;
		f->ramps[f->nramps].at = (TimestampTz)
			(DatumGetFloat8(DirectFunctionCall1(numeric_float8, NumericGetDatum(at->val.numeric))) * USECS_PER_SEC)
			- ((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * USECS_PER_SEC);
		f->ramps[f->nramps].rollout = DatumGetInt32(DirectFunctionCall1(numeric_int4, NumericGetDatum(ro->val.numeric)));
		f->nramps++;
	}
	return f;
}

/*
 * LookupFlag
 *		The compiled flag of this key in this scope, compiling it on a miss
 *		(the only place evaluation runs SPI).  NULL when there is no such
 *		flag; that answer is cached too.
 */
static CompiledFlag *
LookupFlag(const char *name, int len, int64 scope)
{
	FlagKey		key;
	FlagEntry  *entry;
	bool		found;
	Datum		args[2];
	Oid			argtypes[2] = {TEXTOID, INT8OID};
	char		nulls[2] = {' ', ' '};
	CompiledFlag *compiled = NULL;
	MemoryContext oldcxt;
	int			rc;
	Jsonb	   *src = NULL;
	uint64		generation;

	if (len <= 0 || len > FLAG_KEY_MAX || memchr(name, '\0', len) != NULL)
		return NULL;
	FlagCacheEnsure(false);
	memset(&key, 0, sizeof(key));
	key.scope = scope;
	memcpy(key.name, name, len);
	entry = hash_search(FlagCache, &key, HASH_FIND, NULL);
	if (entry)
		return entry->flag;

	/* compile: fetch the JSON source under SPI */
	generation = FlagCacheGeneration;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SourcePlan == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare("SELECT aura._flag_source($1, $2)", 2, argtypes);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		SourcePlan = plan;
	}
	args[0] = PointerGetDatum(cstring_to_text_with_len(name, len));
	args[1] = Int64GetDatum(scope);
	if (scope == 0)
		nulls[1] = 'n';
	rc = SPI_execute_plan(SourcePlan, args, nulls, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "aura._flag_source failed: %s", SPI_result_code_string(rc));
	if (SPI_processed == 1)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
		{
			/* copy out of SPI's memory into the caller's context */
			src = (Jsonb *) SPI_palloc(VARSIZE_ANY(DatumGetPointer(d)));
			memcpy(src, DatumGetJsonbP(d), VARSIZE_ANY(DatumGetPointer(d)));
		}
	}
	SPI_finish();

	/*
	 * An invalidation during the query only marks the cache stale (this
	 * entry is then dropped at the next top-level call); the cache itself is
	 * never dropped here.
	 */
	Assert(generation == FlagCacheGeneration);
	(void) generation;

	oldcxt = MemoryContextSwitchTo(FlagCacheContext);
	if (src)
		compiled = CompileFlag(&src->root, key.name, scope);
	MemoryContextSwitchTo(oldcxt);
	StatCompiles++;

	entry = hash_search(FlagCache, &key, HASH_ENTER, &found);
	entry->flag = compiled;
	return compiled;
}

/* ------------------------------------------------------------------------
 * Evaluation
 * ------------------------------------------------------------------------
 */
typedef struct EvalCtx
{
	JsonbContainer *root;		/* the context object, or NULL */
	JsonbContainer *props;		/* its properties object, or NULL */
	bool		props_done;		/* props looked up (lazily: often not needed) */
	int64		scope;
	bool		time_done;
	bool		time_valid;
	TimestampTz time;
	StringInfo	trace;			/* flag_explain's steps, or NULL */
	char	   *last_step;		/* flag_explain: the last step, in words */
	char		numbuf[32];
} EvalCtx;

static void
TraceStr(StringInfo buf, const char *s, int len)
{
	char	   *tmp = pnstrdup(s, len);

	escape_json(buf, tmp);
	pfree(tmp);
}

/* append one explanation step: {"step":..., "result":..., "detail":...} */
static void
Trace(EvalCtx *ctx, const char *step, const char *name, bool result, const char *fmt,...)
	pg_attribute_printf(5, 6);

static void
Trace(EvalCtx *ctx, const char *step, const char *name, bool result, const char *fmt,...)
{
	StringInfo	buf = ctx->trace;
	StringInfoData detail;
	va_list		args;

	if (buf == NULL)
		return;
	initStringInfo(&detail);
	for (;;)
	{
		int			needed;

		va_start(args, fmt);
		needed = appendStringInfoVA(&detail, fmt, args);
		va_end(args);
		if (needed == 0)
			break;
		enlargeStringInfo(&detail, needed);
	}
	if (buf->len > 1)
		appendStringInfoChar(buf, ',');
	appendStringInfoString(buf, "{\"step\":");
	escape_json(buf, step);
	if (name)
	{
		appendStringInfoString(buf, ",\"name\":");
		escape_json(buf, name);
	}
	appendStringInfo(buf, ",\"result\":%s,\"detail\":", result ? "true" : "false");
	escape_json(buf, detail.data);
	appendStringInfoChar(buf, '}');
	ctx->last_step = name ? psprintf("%s %s: %s", step, name, detail.data)
		: psprintf("%s: %s", step, detail.data);
	pfree(detail.data);
}

/* JavaScript truthiness of a context value, as text */
static bool
ValueText(EvalCtx *ctx, JsonbValue *v, FlagStr *out)
{
	switch (v->type)
	{
		case jbvString:
			if (v->val.string.len == 0)
				return false;
			out->s = v->val.string.val;
			out->len = v->val.string.len;
			return true;
		case jbvNumeric:
			{
				char	   *s = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));

				if (strcmp(s, "0") == 0)
					return false;
				out->s = s;
				out->len = strlen(s);
				return true;
			}
		case jbvBool:
			if (!v->val.boolean)
				return false;
			out->s = "true";
			out->len = 4;
			return true;
		default:
			return false;
	}
}

/*
 * ResolveField
 *		The SDKs' resolveContextValue: a truthy top-level field, else
 *		properties[field]; aura adds restaurantId, locationId and userId
 *		from the session context when the context has none.
 */
static bool
ResolveFieldIn(EvalCtx *ctx, const char *field, int len, bool use_props, FlagStr *out)
{
	JsonbValue	v;
	int64		id;
	bool		have = false;

	if (ctx->root && getKeyJsonValueFromContainer(ctx->root, field, len, &v) &&
		ValueText(ctx, &v, out))
		return true;
	if (use_props && !ctx->props_done)
	{
		ctx->props_done = true;
		if (ctx->root && getKeyJsonValueFromContainer(ctx->root, "properties", 10, &v) &&
			v.type == jbvBinary && JsonContainerIsObject(v.val.binary.data))
			ctx->props = v.val.binary.data;
	}
	if (use_props && ctx->props && getKeyJsonValueFromContainer(ctx->props, field, len, &v) &&
		ValueText(ctx, &v, out))
		return true;
	if (len == 6 && memcmp(field, "userId", 6) == 0)
		have = AuraCurrentUser(&id);
	else if (len == 12 && memcmp(field, "restaurantId", 12) == 0)
		have = AuraCurrentRestaurant(&id);
	else if (len == 10 && memcmp(field, "locationId", 10) == 0)
		have = AuraCurrentLocation(&id);
	if (!have)
		return false;
	snprintf(ctx->numbuf, sizeof(ctx->numbuf), INT64_FORMAT, id);
	out->s = pstrdup(ctx->numbuf);
	out->len = strlen(out->s);
	return true;
}

static bool
ResolveField(EvalCtx *ctx, const char *field, int len, FlagStr *out)
{
	return ResolveFieldIn(ctx, field, len, true, out);
}

/*
 * TopField
 *		A top-level field only, as the SDKs' strategies read userId,
 *		sessionId and remoteAddress (userId still falls back to the session).
 */
static bool
TopField(EvalCtx *ctx, const char *field, FlagStr *out)
{
	return ResolveFieldIn(ctx, field, strlen(field), false, out);
}

/* currentTime of the context, else the transaction's start (now()) */
static bool
CurrentTime(EvalCtx *ctx, TimestampTz *t)
{
	if (!ctx->time_done)
	{
		JsonbValue	v;

		ctx->time_done = true;
		ctx->time_valid = true;
		ctx->time = GetCurrentTransactionStartTimestamp();
		if (ctx->root && getKeyJsonValueFromContainer(ctx->root, "currentTime", 11, &v) &&
			!(v.type == jbvNull))
		{
			if (v.type != jbvString ||
				!FlagParseDate(v.val.string.val, v.val.string.len, &ctx->time))
				ctx->time_valid = false;
		}
	}
	*t = ctx->time;
	return ctx->time_valid;
}

static bool
StrEq(const FlagStr *a, const FlagStr *b)
{
	return a->len == b->len && memcmp(a->s, b->s, a->len) == 0;
}

static bool
RandomHit(double percentage)
{
	/* Math.floor(Math.random() * 100) + 1 */
#if PG_VERSION_NUM >= 150000
	int			r = (int) pg_prng_uint64_range(&pg_global_prng_state, 1, 100);
#else
	int			r = (int) (random() % 100) + 1;
#endif

	return percentage >= r;
}

static void
RandomSeed(EvalCtx *ctx, FlagStr *out)
{
#if PG_VERSION_NUM >= 150000
	uint64		r = pg_prng_uint64_range(&pg_global_prng_state, 1, 100000);
#else
	uint64		r = (uint64) (random() % 100000) + 1;
#endif

	snprintf(ctx->numbuf, sizeof(ctx->numbuf), UINT64_FORMAT, r);
	out->s = pstrdup(ctx->numbuf);
	out->len = strlen(out->s);
}

/* one constraint, before "inverted" */
static bool
ConstraintCore(EvalCtx *ctx, FlagConstraint *c, const char **why)
{
	FlagStr		val;
	bool		have;
	int			i;

	if (c->invalid)
	{
		*why = c->invalid;
		return false;
	}
	if (c->op == OP_DATE_AFTER || c->op == OP_DATE_BEFORE)
	{
		TimestampTz now;

		if (!CurrentTime(ctx, &now))
		{
			*why = "currentTime of the context is not a date";
			return false;
		}
		return c->op == OP_DATE_AFTER ? now > c->date : now < c->date;
	}

	have = ResolveField(ctx, c->field.s, c->field.len, &val);
	switch (c->op)
	{
		case OP_IN:
		case OP_NOT_IN:
			{
				bool		in = false;

				if (have)
					for (i = 0; i < c->nvalues && !in; i++)
						in = StrEq(&c->values[i], &val);
				return c->op == OP_IN ? in : !in;
			}
		case OP_STR_STARTS_WITH:
		case OP_STR_ENDS_WITH:
		case OP_STR_CONTAINS:
			if (!have)
			{
				*why = "the context has no such field";
				return false;
			}
			if (c->case_insensitive)
				LowerStr(&val);
			for (i = 0; i < c->nvalues; i++)
			{
				FlagStr    *x = &c->values[i];

				if (x->len > val.len)
					continue;
				if (c->op == OP_STR_STARTS_WITH && memcmp(val.s, x->s, x->len) == 0)
					return true;
				if (c->op == OP_STR_ENDS_WITH && memcmp(val.s + val.len - x->len, x->s, x->len) == 0)
					return true;
				if (c->op == OP_STR_CONTAINS)
				{
					int			k;

					for (k = 0; k + x->len <= val.len; k++)
						if (memcmp(val.s + k, x->s, x->len) == 0)
							return true;
				}
			}
			return false;
		case OP_NUM_EQ:
		case OP_NUM_GT:
		case OP_NUM_GTE:
		case OP_NUM_LT:
		case OP_NUM_LTE:
			{
				double		n;

				if (!have || !FlagParseNumber(val.s, val.len, &n))
				{
					*why = have ? "the context value is not a number" : "the context has no such field";
					return false;
				}
				switch (c->op)
				{
					case OP_NUM_EQ:
						return n == c->num;
					case OP_NUM_GT:
						return n > c->num;
					case OP_NUM_GTE:
						return n >= c->num;
					case OP_NUM_LT:
						return n < c->num;
					default:
						return n <= c->num;
				}
			}
		case OP_SEMVER_EQ:
		case OP_SEMVER_GT:
		case OP_SEMVER_GTE:
		case OP_SEMVER_LT:
		case OP_SEMVER_LTE:
			{
				FlagSemver	sv;
				int			cmp;

				if (!have || !FlagParseSemver(val.s, val.len, &sv))
				{
					*why = have ? "the context value is not a semantic version" : "the context has no such field";
					return false;
				}
				cmp = FlagSemverCompare(&sv, &c->semver);
				switch (c->op)
				{
					case OP_SEMVER_EQ:
						return cmp == 0;
					case OP_SEMVER_GT:
						return cmp > 0;
					case OP_SEMVER_GTE:
						return cmp >= 0;
					case OP_SEMVER_LT:
						return cmp < 0;
					default:
						return cmp <= 0;
				}
			}
		case OP_IN_CIDR:
			{
				FlagIp		ip;

				if (!have || !FlagParseIp(val.s, val.len, false, &ip))
				{
					*why = have ? "the context value is not an IP address" : "the context has no such field";
					return false;
				}
				for (i = 0; i < c->nvalues; i++)
					if (FlagIpInNetwork(&ip, &c->nets[i]))
						return true;
				return false;
			}
		case OP_REGEX:
			{
				pg_wchar   *w;
				int			wlen;
				int			rc;

				if (!have)
				{
					*why = "the context has no such field";
					return false;
				}
				w = palloc((val.len + 1) * sizeof(pg_wchar));
				wlen = pg_mb2wchar_with_len(val.s, w, val.len);
				rc = pg_regexec(c->re, w, wlen, 0, NULL, 0, NULL, 0);
				pfree(w);
				if (rc == REG_OKAY)
					return true;
				if (rc != REG_NOMATCH)
					*why = "the regular expression could not be run";
				return false;
			}
		default:
			*why = "unknown operator";
			return false;
	}
}

static bool
ConstraintHolds(EvalCtx *ctx, FlagConstraint *c)
{
	const char *why = NULL;
	bool		r = ConstraintCore(ctx, c, &why);

	/* a constraint that cannot be evaluated is false, inverted or not */
	if (c->invalid == NULL && c->op != OP_UNKNOWN && c->inverted)
		r = !r;
	if (ctx->trace)
		Trace(ctx, "constraint", c->field.s, r, "%s %s%s%s%s%s", c->field.s,
			  c->inverted ? "NOT " : "", c->op_name,
			  c->case_insensitive ? " (case-insensitive)" : "",
			  why ? ": " : "", why ? why : "");
	return r;
}

/* normalized rollout bucket of the stickiness value */
static int
Bucket(const FlagStr *group, const FlagStr *id, uint32 normalizer, uint32 seed)
{
	return AuraFlagBucket(group->s, group->len, id->s, id->len, normalizer, seed);
}

static int
EffectiveRollout(EvalCtx *ctx, CompiledFlag *f, FlagStrategy *st, double *pct)
{
	TimestampTz now;
	int			i;
	int			step = -1;

	*pct = st->percentage;
	if (f->nramps == 0 || !CurrentTime(ctx, &now))
		return -1;
	for (i = 0; i < f->nramps; i++)
		if (f->ramps[i].at <= now)
			step = i;
	if (step >= 0)
		*pct = f->ramps[step].rollout;
	return step;
}

/* the strategy's own rule (constraints already hold) */
static bool
StrategyRule(EvalCtx *ctx, CompiledFlag *f, FlagStrategy *st, const char **why)
{
	FlagStr		id;
	int			i;
	double		pct;

	switch (st->kind)
	{
		case ST_DEFAULT:
			*why = "default strategy";
			return true;
		case ST_USER_WITH_ID:
			if (!TopField(ctx, "userId", &id))
			{
				*why = "no userId in the context";
				return false;
			}
			for (i = 0; i < st->nlist; i++)
				if (StrEq(&st->list[i], &id))
				{
					*why = "userId is in userIds";
					return true;
				}
			*why = "userId is not in userIds";
			return false;
		case ST_GRADUAL_USER:
		case ST_GRADUAL_SESSION:
			if (!TopField(ctx, st->kind == ST_GRADUAL_USER ? "userId" : "sessionId", &id))
			{
				*why = st->kind == ST_GRADUAL_USER ? "no userId in the context" : "no sessionId in the context";
				return false;
			}
			{
				int			b = Bucket(&st->group_id, &id, 100, 0);
				bool		r = st->percentage > 0 && b <= st->percentage;

				if (ctx->trace)
					*why = psprintf("bucket %d of 100, percentage %g", b, st->percentage);
				return r;
			}
		case ST_GRADUAL_RANDOM:
			*why = "random";
			return !isnan(st->percentage) && RandomHit(st->percentage);
		case ST_FLEXIBLE:
			{
				int			ramp = EffectiveRollout(ctx, f, st, &pct);
				int			b;
				bool		r;

				if (strcmp(st->stickiness, "default") == 0)
				{
					if (!TopField(ctx, "userId", &id) && !TopField(ctx, "sessionId", &id))
						RandomSeed(ctx, &id);
				}
				else if (strcmp(st->stickiness, "random") == 0)
					RandomSeed(ctx, &id);
				else if (!ResolveField(ctx, st->stickiness, strlen(st->stickiness), &id))
				{
					*why = psprintf("no %s in the context for stickiness", st->stickiness);
					return false;
				}
				b = Bucket(&st->group_id, &id, 100, 0);
				r = pct > 0 && b <= pct;
				if (ctx->trace)
					*why = psprintf("bucket %d of 100 (stickiness %s, groupId %s), rollout %g%s",
									b, st->stickiness, st->group_id.s, pct,
									ramp >= 0 ? " from a ramp step" : "");
				return r;
			}
		case ST_REMOTE_ADDRESS:
			{
				FlagIp		ip;
				bool		have_ip;

				if (!TopField(ctx, "remoteAddress", &id))
				{
					*why = "no remoteAddress in the context";
					return false;
				}
				have_ip = FlagParseIp(id.s, id.len, false, &ip);
				for (i = 0; i < st->nlist; i++)
				{
					FlagIp		net;

					if (StrEq(&st->list[i], &id))
					{
						*why = "remoteAddress is listed";
						return true;
					}
					/* IPv4 ranges only, as the SDKs' ip.cidrSubnet */
					if (have_ip && memchr(st->list[i].s, ':', st->list[i].len) == NULL &&
						memchr(st->list[i].s, '/', st->list[i].len) != NULL &&
						FlagParseIp(st->list[i].s, st->list[i].len, true, &net) &&
						FlagIpInNetwork(&ip, &net))
					{
						*why = "remoteAddress is in a listed range";
						return true;
					}
				}
				*why = "remoteAddress is not listed";
				return false;
			}
		case ST_HOSTNAME:
			{
				FlagStr		h;

				h.s = HostName;
				h.len = strlen(HostName);
				for (i = 0; i < st->nlist; i++)
					if (StrEq(&st->list[i], &h))
					{
						*why = "this host name is listed";
						return true;
					}
				*why = psprintf("host name %s is not listed", HostName);
				return false;
			}
		default:
			*why = psprintf("unknown strategy \"%s\"", st->name);
			return false;
	}
}

static bool StrategyOn(EvalCtx *ctx, CompiledFlag *f, FlagStrategy *st);

static bool
StrategyOn(EvalCtx *ctx, CompiledFlag *f, FlagStrategy *st)
{
	const char *why = NULL;
	bool		r;
	int			i;

	if (st->disabled)
	{
		Trace(ctx, "strategy", st->name, false, "strategy is disabled");
		return false;
	}
	if (st->kind == ST_UNKNOWN)
	{
		Trace(ctx, "strategy", st->name, false, "unknown strategy: evaluates to false as in Unleash");
		return false;
	}
	if (st->missing_segment >= 0)
	{
		Trace(ctx, "strategy", st->name, false, "segment " INT64_FORMAT " does not exist", st->missing_segment);
		return false;
	}
	for (i = 0; i < st->nconstraints; i++)
		if (!ConstraintHolds(ctx, &st->constraints[i]))
		{
			Trace(ctx, "strategy", st->name, false, "constraint %d (%s %s) does not hold",
				  i + 1, st->constraints[i].field.s, st->constraints[i].op_name);
			return false;
		}
	r = StrategyRule(ctx, f, st, &why);
	Trace(ctx, "strategy", st->name, r, "%s", why ? why : "");
	return r;
}

static bool FlagOn(EvalCtx *ctx, CompiledFlag *f, FlagStrategy **winner, int depth);
static FlagVariant *SelectVariant(EvalCtx *ctx, const FlagStr *group, FlagVariant *vs, int n,
								  const char *stickiness, bool *overridden);

/* the variant name a parent gives (flag_variant's name), for dependencies */
static const char *
VariantNameOf(EvalCtx *ctx, CompiledFlag *f, int depth)
{
	FlagStrategy *winner = NULL;
	FlagVariant *v;
	FlagStr		group;
	bool		ov;

	if (!FlagOn(ctx, f, &winner, depth))
		return NULL;			/* off: no variant condition can hold */
	if (winner && winner->nvariants > 0)
	{
		v = SelectVariant(ctx, &winner->variant_group, winner->variants, winner->nvariants, winner->stickiness, &ov);
		if (v)
			return v->name.s;
	}
	group.s = f->name;
	group.len = f->name_len;
	v = SelectVariant(ctx, &group, f->variants, f->nvariants, NULL, &ov);
	return v ? v->name.s : "disabled";
}

/* are the parents as the flag's dependencies require? */
static bool
DependenciesHold(EvalCtx *ctx, CompiledFlag *f, int depth)
{
	int			i;

	for (i = 0; i < f->ndeps; i++)
	{
		FlagDependency *d = &f->deps[i];
		CompiledFlag *p = LookupFlag(d->feature, strlen(d->feature), ctx->scope);
		bool		ok;
		StringInfo	saved = ctx->trace;

		if (p == NULL)
		{
			Trace(ctx, "dependency", d->feature, false, "parent flag does not exist");
			return false;
		}
		if (p->ndeps > 0)
		{
			Trace(ctx, "dependency", d->feature, false, "parent has dependencies itself (one level only)");
			return false;
		}
		/* the parent's own steps are not part of the child's explanation */
		ctx->trace = NULL;
		if (d->enabled && d->nvariants > 0)
		{
			const char *name = VariantNameOf(ctx, p, depth + 1);
			int			k;

			ok = false;
			for (k = 0; name && k < d->nvariants && !ok; k++)
				ok = strcmp(d->variants[k], name) == 0;
			ctx->trace = saved;
			if (name == NULL)
				Trace(ctx, "dependency", d->feature, false, "parent is disabled, required enabled with a listed variant");
			else
				Trace(ctx, "dependency", d->feature, ok, "parent variant %s %s the required variants",
					  name, ok ? "is one of" : "is not one of");
		}
		else
		{
			bool		on = FlagOn(ctx, p, NULL, depth + 1);

			ok = d->enabled ? on : !on;
			ctx->trace = saved;
			Trace(ctx, "dependency", d->feature, ok, "parent is %s, required %s",
				  on ? "enabled" : "disabled", d->enabled ? "enabled" : "disabled");
		}
		if (!ok)
			return false;
	}
	return true;
}

/*
 * FlagOn
 *		Unleash's isEnabled: dependencies, enabled, kill switch, then the
 *		first strategy that is on (its variants win in flag_variant).
 */
static bool
FlagOn(EvalCtx *ctx, CompiledFlag *f, FlagStrategy **winner, int depth)
{
	int			i;

	if (winner)
		*winner = NULL;
	if (depth > 2)
		return false;
	if (f->ndeps > 0 && !DependenciesHold(ctx, f, depth))
		return false;
	if (!f->enabled)
	{
		Trace(ctx, "flag", f->name, false, "flag is disabled");
		return false;
	}
	if (f->killed)
	{
		Trace(ctx, "kill_switch", f->type, false, "the kill switch of flag type %s is on", f->type);
		return false;
	}
	if (f->nstrategies == 0)
	{
		Trace(ctx, "flag", f->name, true, "enabled with no strategies");
		return true;
	}
	for (i = 0; i < f->nstrategies; i++)
		if (StrategyOn(ctx, f, &f->strategies[i]))
		{
			if (winner)
				*winner = &f->strategies[i];
			return true;
		}
	return false;
}

/* a variant's overrides: the context value is one of the listed values */
static bool
OverrideMatches(EvalCtx *ctx, FlagVariant *v)
{
	int			i,
				k;

	for (i = 0; i < v->noverrides; i++)
	{
		FlagStr		val;

		if (!ResolveField(ctx, v->override_fields[i].s, v->override_fields[i].len, &val))
			continue;
		for (k = 0; k < v->override_nvalues[i]; k++)
			if (StrEq(&v->override_values[i][k], &val))
				return true;
	}
	return false;
}

/*
 * SelectVariant
 *		Unleash's selectVariantDefinition: an override wins; else the
 *		variant whose cumulative weight reaches the bucket of the first
 *		variant's stickiness, with seed 86028157.
 */
static FlagVariant *
SelectVariant(EvalCtx *ctx, const FlagStr *group, FlagVariant *vs, int n,
			  const char *stickiness, bool *overridden)
{
	int64		total = 0;
	int64		counter = 0;
	int			i;
	int			target;
	FlagStr		seed;

	*overridden = false;
	for (i = 0; i < n; i++)
		total += vs[i].weight;
	if (n == 0 || total <= 0)
		return NULL;
	for (i = 0; i < n; i++)
		if (vs[i].noverrides > 0 && OverrideMatches(ctx, &vs[i]))
		{
			*overridden = true;
			return &vs[i];
		}
	/* the first variant's stickiness, else the strategy's, else default */
	if (vs[0].stickiness)
		stickiness = vs[0].stickiness;
	else if (stickiness == NULL)
		stickiness = "default";
	if (strcmp(stickiness, "default") != 0)
	{
		if (!ResolveField(ctx, stickiness, strlen(stickiness), &seed))
			RandomSeed(ctx, &seed);
	}
	else if (!TopField(ctx, "userId", &seed) && !TopField(ctx, "sessionId", &seed) &&
			 !TopField(ctx, "remoteAddress", &seed))
		RandomSeed(ctx, &seed);
	target = Bucket(group, &seed, (uint32) total, VARIANT_SEED);
	for (i = 0; i < n; i++)
	{
		if (vs[i].weight == 0)
			continue;
		counter += vs[i].weight;
		if (counter >= target)
			return &vs[i];
	}
	return NULL;
}

/*
 * Per call site (FmgrInfo) memo: the last flag looked up there.  Its
 * creation, once per statement, is also where pending invalidations are
 * read, so a statement sees every flag change committed before it began
 * even in a long transaction.
 */
typedef struct FlagMemo
{
	uint64		generation;
	int64		scope;
	int			len;
	char		name[FLAG_KEY_MAX + 1];
	CompiledFlag *flag;
} FlagMemo;

/* set up the evaluation context from the SQL arguments */
static void
InitEval(FunctionCallInfo fcinfo, EvalCtx *ctx, text **key)
{
	int64		r;

	if (fcinfo->flinfo->fn_extra == NULL)
	{
		AcceptInvalidationMessages();
		fcinfo->flinfo->fn_extra = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(FlagMemo));
	}
	if (FlagCacheStale)
		FlagCacheReset();
	memset(ctx, 0, sizeof(*ctx));
	*key = PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0);
	if (!PG_ARGISNULL(1))
	{
		Jsonb	   *ctxj = PG_GETARG_JSONB_P(1);

		if (!JB_ROOT_IS_OBJECT(ctxj))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("flag context must be a JSON object"),
					 errdetail("The context was a JSON %s.",
							   JB_ROOT_IS_SCALAR(ctxj) ? "scalar" : "array"),
					 errhint("Pass an Unleash context such as {\"userId\": \"42\", \"properties\": {...}}.")));
		ctx->root = &ctxj->root;
	}
	ctx->scope = AuraCurrentRestaurant(&r) ? r : 0;
}

static CompiledFlag *
EvalLookup(FunctionCallInfo fcinfo, text *key, EvalCtx *ctx)
{
	FlagMemo   *memo = (FlagMemo *) fcinfo->flinfo->fn_extra;
	const char *name;
	int			len;

	if (key == NULL)
		return NULL;
	name = VARDATA_ANY(key);
	len = VARSIZE_ANY_EXHDR(key);
	if (memo->generation == FlagCacheGeneration && FlagCache != NULL &&
		memo->scope == ctx->scope && memo->len == len && memcmp(memo->name, name, len) == 0)
		return memo->flag;
	memo->flag = LookupFlag(name, len, ctx->scope);
	if (len <= FLAG_KEY_MAX)
	{
		memo->generation = FlagCacheGeneration;
		memo->scope = ctx->scope;
		memo->len = len;
		memcpy(memo->name, name, len);
	}
	return memo->flag;
}

PG_FUNCTION_INFO_V1(aura_flag_enabled);

/*
 * aura_flag_enabled
 *		aura.flag_enabled(key, context): Unleash's isEnabled.  Unknown or
 *		NULL keys are off.
 */
Datum
aura_flag_enabled(PG_FUNCTION_ARGS)
{
	EvalCtx		ctx;
	text	   *key;
	CompiledFlag *f;
	bool		on;

	InitEval(fcinfo, &ctx, &key);
	f = EvalLookup(fcinfo, key, &ctx);
	if (f == NULL)
		PG_RETURN_BOOL(false);
	on = FlagOn(&ctx, f, NULL, 0);
	FlagStatsCount(f, on);
	PG_RETURN_BOOL(on);
}

/* {"name","payload"?,"enabled","feature_enabled"} as jsonb */
static Datum
VariantResult(const char *name, const char *payload, bool enabled, bool feature_enabled)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"name\":");
	escape_json(&buf, name);
	if (payload)
		appendStringInfo(&buf, ",\"payload\":%s", payload);
	appendStringInfo(&buf, ",\"enabled\":%s,\"feature_enabled\":%s}",
					 enabled ? "true" : "false", feature_enabled ? "true" : "false");
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data));
}

/* Unleash's getVariant on a compiled flag; also says where it came from */
static Datum
ResolveVariant(EvalCtx *ctx, CompiledFlag *f, bool count, const char **source)
{
	FlagStrategy *winner = NULL;
	FlagVariant *v;
	FlagStr		group;
	bool		ov = false;

	if (f == NULL)
	{
		*source = "unknown flag";
		return VariantResult("disabled", NULL, false, false);
	}
	if (!FlagOn(ctx, f, &winner, 0))
	{
		if (count)
			FlagStatsCount(f, false);
		*source = "flag is off";
		return VariantResult("disabled", NULL, false, false);
	}
	if (count)
		FlagStatsCount(f, true);
	if (winner && winner->nvariants > 0)
	{
		v = SelectVariant(ctx, &winner->variant_group, winner->variants, winner->nvariants, winner->stickiness, &ov);
		if (v)
		{
			*source = ov ? "override of a strategy variant" : "strategy variants";
			return VariantResult(v->name.s, v->payload_json, true, true);
		}
	}
	group.s = f->name;
	group.len = f->name_len;
	v = SelectVariant(ctx, &group, f->variants, f->nvariants, NULL, &ov);
	if (v == NULL)
	{
		*source = f->nvariants == 0 ? "flag has no variants" : "variant weights sum to 0";
		return VariantResult("disabled", NULL, false, true);
	}
	*source = ov ? "override of a flag variant" : "flag variants";
	return VariantResult(v->name.s, v->payload_json, true, true);
}

PG_FUNCTION_INFO_V1(aura_flag_variant);

/*
 * aura_flag_variant
 *		aura.flag_variant(key, context): Unleash's getVariant.
 */
Datum
aura_flag_variant(PG_FUNCTION_ARGS)
{
	EvalCtx		ctx;
	text	   *key;
	const char *source;

	InitEval(fcinfo, &ctx, &key);
	return ResolveVariant(&ctx, EvalLookup(fcinfo, key, &ctx), true, &source);
}

PG_FUNCTION_INFO_V1(aura_flag_explain);

/*
 * aura_flag_explain
 *		aura.flag_explain(key, context): the answer of flag_enabled and
 *		flag_variant with the steps that decided, in order.
 */
Datum
aura_flag_explain(PG_FUNCTION_ARGS)
{
	EvalCtx		ctx;
	text	   *key;
	CompiledFlag *f;
	StringInfoData steps;
	StringInfoData out;
	bool		on;
	const char *source = NULL;
	Datum		variant;
	char	   *reason;

	InitEval(fcinfo, &ctx, &key);
	f = EvalLookup(fcinfo, key, &ctx);
	initStringInfo(&steps);
	appendStringInfoChar(&steps, '[');
	ctx.trace = &steps;
	on = f != NULL && FlagOn(&ctx, f, NULL, 0);
	appendStringInfoChar(&steps, ']');
	ctx.trace = NULL;
	variant = ResolveVariant(&ctx, f, false, &source);

	if (key == NULL)
		reason = "no flag key given";
	else if (f == NULL)
		reason = "unknown flag: off";
	else if (ctx.last_step == NULL)
		reason = on ? "on" : "off";
	else
	{
		/* the deciding step: the strategy that won, or the last that failed */
		reason = psprintf("%s (%s)", on ? "on" : "off", ctx.last_step);
	}

	initStringInfo(&out);
	appendStringInfoString(&out, "{\"flag\":");
	if (key)
		TraceStr(&out, VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key));
	else
		appendStringInfoString(&out, "null");
	appendStringInfo(&out, ",\"found\":%s,\"enabled\":%s", f ? "true" : "false", on ? "true" : "false");
	if (f)
	{
		if (ctx.scope)
			appendStringInfo(&out, ",\"restaurant\":" INT64_FORMAT, ctx.scope);
		appendStringInfo(&out, ",\"type\":");
		escape_json(&out, f->type ? f->type : "release");
	}
	appendStringInfoString(&out, ",\"reason\":");
	escape_json(&out, reason);
	appendStringInfoString(&out, ",\"variant\":");
	appendStringInfoString(&out, DatumGetCString(DirectFunctionCall1(jsonb_out, variant)));
	appendStringInfoString(&out, ",\"variant_source\":");
	escape_json(&out, source ? source : "");
	appendStringInfo(&out, ",\"steps\":%s}", steps.data);
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(out.data)));
}

PG_FUNCTION_INFO_V1(aura_flags_cache_stats);

/*
 * aura_flags_cache_stats
 *		Entries, compilations and resets of this backend's flag cache.
 */
Datum
aura_flags_cache_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (FlagCacheStale)
		FlagCacheReset();
	values[0] = Int64GetDatum(FlagCache ? hash_get_num_entries(FlagCache) : 0);
	values[1] = Int64GetDatum(StatCompiles);
	values[2] = Int64GetDatum(StatResets);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}

PG_FUNCTION_INFO_V1(aura_flag_stats);

/*
 * aura_flag_stats
 *		The shared evaluation counters: (restaurant_id, key, enabled,
 *		disabled), this backend's pending counts included.  Roles other than
 *		aura_admin see the rows of the restaurant in context only.
 */
Datum
aura_flag_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TupleDesc	tupdesc;
	Tuplestorestate *store;
	MemoryContext oldcxt;
	HASH_SEQ_STATUS seq;
	FlagStatsEntry *e;
	bool		admin = AuraIsAdmin();
	int64		mine = 0;
	bool		have_mine = AuraCurrentRestaurant(&mine);

	if (FlagStats == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("flag evaluation counters need aura in shared_preload_libraries"),
				 errhint("Add aura to shared_preload_libraries and restart the server.")));
	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) || !(rsinfo->allowedModes & SFRM_Materialize))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("aura.flag_stats() must be called in FROM")));
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	FlagStatsFlush();
	oldcxt = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	tupdesc = CreateTupleDescCopy(tupdesc);
	store = tuplestore_begin_heap(true, false, work_mem);
	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult = store;
	rsinfo->setDesc = tupdesc;
	MemoryContextSwitchTo(oldcxt);

	LWLockAcquire(FlagStats->lock, LW_SHARED);
	hash_seq_init(&seq, FlagStatsHash);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		Datum		values[4];
		bool		nulls[4] = {false, false, false, false};

		if (!admin && !(have_mine && e->key.scope == mine))
			continue;
		if (e->key.scope == 0)
			nulls[0] = true;
		values[0] = Int64GetDatum(e->key.scope);
		values[1] = CStringGetTextDatum(e->key.name);
		values[2] = Int64GetDatum(e->enabled);
		values[3] = Int64GetDatum(e->disabled);
		tuplestore_putvalues(store, tupdesc, values, nulls);
	}
	LWLockRelease(FlagStats->lock);
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(aura_flag_stats_reset);

/*
 * aura_flag_stats_reset
 *		Forget every evaluation counter (granted to aura_admin only).
 */
Datum
aura_flag_stats_reset(PG_FUNCTION_ARGS)
{
	HASH_SEQ_STATUS seq;
	FlagStatsEntry *e;

	if (FlagStats == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("flag evaluation counters need aura in shared_preload_libraries"),
				 errhint("Add aura to shared_preload_libraries and restart the server.")));
	FlagStatsFlush();
	LWLockAcquire(FlagStats->lock, LW_EXCLUSIVE);
	hash_seq_init(&seq, FlagStatsHash);
	while ((e = hash_seq_search(&seq)) != NULL)
		hash_search(FlagStatsHash, &e->key, HASH_REMOVE, NULL);
	FlagStats->dropped = 0;
	LWLockRelease(FlagStats->lock);
	PG_RETURN_VOID();
}
