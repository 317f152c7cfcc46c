/*
 * settings.c
 *	  Settings: the backend-local cache of definitions and values, resolution
 *	  (user -> location -> restaurant -> system -> default, locks first), the
 *	  SQL readers aura.get_setting*(), reveal of secrets, the triggers that
 *	  keep the cache honest, and the C API of settings.h.
 *
 * Cache and invalidation
 *	  The first read in a backend loads every definition and value into
 *	  hash tables in a memory context under CacheMemoryContext; later reads
 *	  are hash lookups.  A statement trigger on each settings table calls
 *	  CacheInvalidateRelcache(), which PostgreSQL delivers to every backend
 *	  once the writing transaction commits (and to the writer itself at its
 *	  next command, and again if it rolls back).  Our relcache callback marks
 *	  the cache stale.  Each read first accepts pending invalidations (a flag
 *	  check when there are none), and a reload reads with the latest
 *	  snapshot, so a read after another session's commit never sees the old
 *	  value.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "regex/regex.h"
#include "catalog/pg_collation.h"
#include "storage/sinval.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "aura.h"
#include "context.h"
#include "crypto.h"
#include "settings.h"
#include "settings_validate.h"

#define KEY_MAX			128		/* hash key buffer; keys are <= 100 chars */

/* scopes, in resolution order from the top */
#define SC_DEFAULT		0
#define SC_SYSTEM		1
#define SC_RESTAURANT	2
#define SC_LOCATION		3
#define SC_USER			4

static const char *const scope_names[] = {"default", "system", "restaurant", "location", "user"};

/* a value as readers see it, with its typed forms precomputed */
typedef struct SettingValue
{
	bool		isnull;
	Jsonb	   *json;			/* "********" for secrets */
	bytea	   *sealed;			/* secrets only */
	int64		i;
	bool		b;
	Numeric		n;
	char	   *txt;
	Interval	iv;
} SettingValue;

typedef struct SettingDef
{
	char		key[KEY_MAX];	/* hash key */
	int32		id;
	SettingRules rules;
	int			scope_mask;		/* bit (1 << SC_x) per allowed scope */
	int			value_mask;		/* scopes holding at least one value */
	bool		deprecated;
	char	   *deprecation_message;
	bool		requires_restart;
	SettingValue dflt;
} SettingDef;

typedef struct ValueKey
{
	int32		def_id;
	int32		scope;
	int64		restaurant;
	int64		scope_id;
} ValueKey;

typedef struct ValueEntry
{
	ValueKey	k;
	bool		locked;
	SettingValue v;
} ValueEntry;

static MemoryContext cache_cxt = NULL;
static HTAB *def_hash = NULL;
static HTAB *value_hash = NULL;

/*
 * Read index over value_hash: open addressing with linear probing and a
 * cheap integer mix, built once per load.  Four probes per read cost far
 * less than four dynahash lookups hashing 24-byte keys.
 */
typedef struct ValueSlot
{
	ValueKey	k;				/* copy of the entry's key: one cache line per probe */
	ValueEntry *e;				/* NULL: empty slot */
} ValueSlot;

static ValueSlot *value_slots = NULL;
static uint64 value_slot_mask = 0;
static bool cache_valid = false;
static uint64 cache_generation = 0;	/* bumped at every (re)load */
static bool cache_query_snapshot = false;	/* loaded in parallel mode: reload after */
static Oid	rel_definitions = InvalidOid;
static Oid	rel_system = InvalidOid;
static Oid	rel_values = InvalidOid;

/* secrets revealed in this transaction (logged once per transaction) */
static List *revealed = NIL;

/*
 * SettingsRelcacheCallback
 *		A settings table changed (or everything is being reset): drop the
 *		cache at the next read.  Must not touch the catalogs.
 */
static void
SettingsRelcacheCallback(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == rel_definitions || relid == rel_system || relid == rel_values)
		cache_valid = false;
}

static void
SettingsXactCallback(XactEvent event, void *arg)
{
	revealed = NIL;				/* lived in TopTransactionContext */
}

static void
SettingsSubXactCallback(SubXactEvent event, SubTransactionId mySubid,
						SubTransactionId parentSubid, void *arg)
{
	/* the history rows of an aborted subtransaction are gone: log again */
	if (event == SUBXACT_EVENT_ABORT_SUB)
		revealed = NIL;
}

void
SettingsInit(void)
{
	CacheRegisterRelcacheCallback(SettingsRelcacheCallback, (Datum) 0);
	RegisterXactCallback(SettingsXactCallback, NULL);
	RegisterSubXactCallback(SettingsSubXactCallback, NULL);
}

/* ---------------------------------------------------------------------
 * Loading
 * --------------------------------------------------------------------- */

static char **
TextArray(Datum d, int *n)
{
	Datum	   *elems;
	bool	   *nulls;
	char	  **out;
	int			i;
	int			m = 0;

	deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, n);
	out = palloc(sizeof(char *) * (*n + 1));
	for (i = 0; i < *n; i++)
		if (!nulls[i])
			out[m++] = TextDatumGetCString(elems[i]);
	*n = m;
	return out;
}

static inline uint64
MixValueKey(int32 def_id, int32 scope, int64 restaurant, int64 scope_id)
{
	uint64		h = (uint64) (uint32) def_id * UINT64CONST(0x9E3779B97F4A7C15) ^ (uint64) scope;

	h ^= (uint64) restaurant * UINT64CONST(0xC2B2AE3D27D4EB4F);
	h = (h ^ (h >> 29)) * UINT64CONST(0xBF58476D1CE4E5B9);
	h ^= (uint64) scope_id * UINT64CONST(0x94D049BB133111EB);
	h = (h ^ (h >> 31)) * UINT64CONST(0xBF58476D1CE4E5B9);
	return h ^ (h >> 32);
}

/* build value_slots from value_hash (in cache_cxt) */
static void
BuildValueIndex(void)
{
	long		n = hash_get_num_entries(value_hash);
	uint64		cap = 64;
	HASH_SEQ_STATUS seq;
	ValueEntry *e;

	while (cap < (uint64) n * 2)
		cap <<= 1;
	value_slots = MemoryContextAllocZero(cache_cxt, cap * sizeof(ValueSlot));
	value_slot_mask = cap - 1;
	hash_seq_init(&seq, value_hash);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		uint64		i = MixValueKey(e->k.def_id, e->k.scope, e->k.restaurant, e->k.scope_id) & value_slot_mask;

		while (value_slots[i].e != NULL)
			i = (i + 1) & value_slot_mask;
		value_slots[i].k = e->k;
		value_slots[i].e = e;
	}
}

static bool
GetCol(HeapTuple tup, TupleDesc desc, const char *name, Datum *d)
{
	int			col = SPI_fnumber(desc, name);
	bool		isnull;

	if (col <= 0)
		elog(ERROR, "column \"%s\" not found", name);
	*d = SPI_getbinval(tup, desc, col, &isnull);
	return !isnull;
}

/*
 * BuildRules
 *		The validation rules of a definition row (catalog table or a query
 *		with the same column names), allocated in the current context.
 */
static void
BuildRules(HeapTuple tup, TupleDesc desc, SettingRules *r, char *keybuf)
{
	Datum		d;

	memset(r, 0, sizeof(*r));
	r->min_length = -1;
	r->max_length = -1;
	if (!GetCol(tup, desc, "key", &d))
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("setting key must not be NULL")));
	text_to_cstring_buffer(DatumGetTextPP(d), keybuf, KEY_MAX);
	r->key = keybuf;
	if (!GetCol(tup, desc, "type", &d))
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("setting type must not be NULL")));
	r->type = SettingTypeFromName(TextDatumGetCString(d));
	if (GetCol(tup, desc, "sensitive", &d))
		r->sensitive = DatumGetBool(d);
	if (r->type == ST_SECRET)
		r->sensitive = true;
	if (GetCol(tup, desc, "min_value", &d))
		r->min_value = DatumGetNumericCopy(d);
	if (GetCol(tup, desc, "max_value", &d))
		r->max_value = DatumGetNumericCopy(d);
	if (GetCol(tup, desc, "min_length", &d))
		r->min_length = DatumGetInt32(d);
	if (GetCol(tup, desc, "max_length", &d))
		r->max_length = DatumGetInt32(d);
	if (GetCol(tup, desc, "pattern", &d))
		r->pattern = DatumGetTextPCopy(d);
	if (GetCol(tup, desc, "allowed_values", &d))
		r->allowed = TextArray(d, &r->nallowed);
	if (GetCol(tup, desc, "required_keys", &d))
		r->required = TextArray(d, &r->nrequired);
}

/* typed forms of a canonical value (in the current context) */
static void
FillValue(SettingValue *v, const SettingRules *r, Jsonb *json, bytea *sealed)
{
	JsonbValue	sc;

	memset(v, 0, sizeof(*v));
	if (r->sensitive)
	{
		v->isnull = (json == NULL && sealed == NULL);
		if (v->isnull)
			return;
		v->sealed = sealed;
		v->txt = pstrdup("********");
		{
			JsonbValue	m;

			m.type = jbvString;
			m.val.string.val = v->txt;
			m.val.string.len = 8;
			v->json = JsonbValueToJsonb(&m);
		}
		return;
	}
	if (json == NULL)
	{
		v->isnull = true;
		return;
	}
	v->json = json;
	if (JB_ROOT_IS_SCALAR(json) && JsonbExtractScalar(&json->root, &sc))
	{
		switch (sc.type)
		{
			case jbvNumeric:
				v->n = sc.val.numeric;
				if (r->type == ST_INTEGER)
					v->i = DatumGetInt64(DirectFunctionCall1(numeric_int8, NumericGetDatum(v->n)));
				v->txt = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->n)));
				break;
			case jbvBool:
				v->b = sc.val.boolean;
				v->txt = pstrdup(v->b ? "true" : "false");
				break;
			case jbvString:
				v->txt = pnstrdup(sc.val.string.val, sc.val.string.len);
				if (r->type == ST_DURATION)
					v->iv = *DatumGetIntervalP(DirectFunctionCall3(interval_in, CStringGetDatum(v->txt),
																   ObjectIdGetDatum(InvalidOid),
																   Int32GetDatum(-1)));
				break;
			default:
				v->txt = JsonbToCString(NULL, &json->root, VARSIZE(json));
		}
	}
	else
		v->txt = JsonbToCString(NULL, &json->root, VARSIZE(json));
}

static Oid
AuraRelid(const char *name)
{
	Oid			nsp = get_namespace_oid("aura", false);
	Oid			rel = get_relname_relid(name, nsp);

	if (!OidIsValid(rel))
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						errmsg("aura settings tables are missing"),
						errhint("Run ALTER EXTENSION aura UPDATE.")));
	return rel;
}

static void
LoadCacheContents(void)
{
	MemoryContext old;
	HASHCTL		ctl;
	uint64		i;
	int32		next_id = 1;

	rel_definitions = AuraRelid("setting_definitions");
	rel_system = AuraRelid("system_settings");
	rel_values = AuraRelid("setting_values");

	old = MemoryContextSwitchTo(cache_cxt);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = KEY_MAX;
	ctl.entrysize = sizeof(SettingDef);
	ctl.hcxt = cache_cxt;
	def_hash = hash_create("aura setting definitions", 256, &ctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(ValueKey);
	ctl.entrysize = sizeof(ValueEntry);
	ctl.hcxt = cache_cxt;
	value_hash = hash_create("aura setting values", 1024, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	MemoryContextSwitchTo(old);

	if (SPI_execute("SELECT key, type, default_value, min_value, max_value, min_length, max_length, "
					"pattern, allowed_values, required_keys, sensitive, deprecated, deprecation_message, "
					"requires_restart, "
					"(CASE WHEN 'system' = ANY(allowed_scopes) THEN 2 ELSE 0 END"
					" | CASE WHEN 'restaurant' = ANY(allowed_scopes) THEN 4 ELSE 0 END"
					" | CASE WHEN 'location' = ANY(allowed_scopes) THEN 8 ELSE 0 END"
					" | CASE WHEN 'user' = ANY(allowed_scopes) THEN 16 ELSE 0 END) AS scope_mask "
					"FROM aura.setting_definitions", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read aura.setting_definitions");
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		char		keybuf[KEY_MAX];
		SettingDef *def;
		bool		found;
		Datum		d;

		old = MemoryContextSwitchTo(cache_cxt);
		memset(keybuf, 0, sizeof(keybuf));
		GetCol(tup, desc, "key", &d);
		text_to_cstring_buffer(DatumGetTextPP(d), keybuf, KEY_MAX);
		def = hash_search(def_hash, keybuf, HASH_ENTER, &found);
		def->id = next_id++;
		BuildRules(tup, desc, &def->rules, def->key);
		GetCol(tup, desc, "scope_mask", &d);
		def->scope_mask = DatumGetInt32(d);
		def->value_mask = 0;
		def->deprecated = GetCol(tup, desc, "deprecated", &d) && DatumGetBool(d);
		def->deprecation_message = GetCol(tup, desc, "deprecation_message", &d) ? TextDatumGetCString(d) : NULL;
		def->requires_restart = GetCol(tup, desc, "requires_restart", &d) && DatumGetBool(d);
		FillValue(&def->dflt, &def->rules,
				  GetCol(tup, desc, "default_value", &d) ? DatumGetJsonbPCopy(d) : NULL, NULL);
		MemoryContextSwitchTo(old);
	}

	if (SPI_execute("SELECT 1 AS scope, 0::bigint AS restaurant_id, 0::bigint AS scope_id, key, value, secret, locked "
					"FROM aura.system_settings "
					"UNION ALL "
					"SELECT CASE scope WHEN 'restaurant' THEN 2 WHEN 'location' THEN 3 ELSE 4 END, "
					"restaurant_id, scope_id, key, value, secret, locked FROM aura.setting_values",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read aura setting values");
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		char		keybuf[KEY_MAX];
		SettingDef *def;
		ValueKey	vk;
		ValueEntry *e;
		bool		found;
		Datum		d;

		memset(keybuf, 0, sizeof(keybuf));
		GetCol(tup, desc, "key", &d);
		text_to_cstring_buffer(DatumGetTextPP(d), keybuf, KEY_MAX);
		def = hash_search(def_hash, keybuf, HASH_FIND, NULL);
		if (def == NULL)
			continue;
		memset(&vk, 0, sizeof(vk));
		vk.def_id = def->id;
		GetCol(tup, desc, "scope", &d);
		vk.scope = DatumGetInt32(d);
		GetCol(tup, desc, "restaurant_id", &d);
		vk.restaurant = DatumGetInt64(d);
		GetCol(tup, desc, "scope_id", &d);
		vk.scope_id = DatumGetInt64(d);

		old = MemoryContextSwitchTo(cache_cxt);
		e = hash_search(value_hash, &vk, HASH_ENTER, &found);
		e->locked = GetCol(tup, desc, "locked", &d) && DatumGetBool(d);
		{
			Jsonb	   *json = GetCol(tup, desc, "value", &d) ? DatumGetJsonbPCopy(d) : NULL;
			bytea	   *sealed = GetCol(tup, desc, "secret", &d) ? DatumGetByteaPCopy(d) : NULL;

			FillValue(&e->v, &def->rules, json, sealed);
		}
		def->value_mask |= (1 << vk.scope);
		MemoryContextSwitchTo(old);
	}
	BuildValueIndex();
}

/*
 * EnsureCache
 *		Accept pending invalidations, then (re)load when stale.  Loading runs
 *		as the bootstrap superuser (the cache serves every tenant; readers'
 *		tenant checks happen in the SQL entry points) with the latest
 *		snapshot (see the header comment).
 */
static void
EnsureCache(void)
{
	Oid			save_uid;
	int			save_sec;

	AcceptInvalidationMessages();
	if (cache_valid && !(cache_query_snapshot && !IsInParallelMode()))
		return;
	if (!IsTransactionState())
		ereport(ERROR, (errcode(ERRCODE_INVALID_TRANSACTION_STATE),
						errmsg("aura settings can only be read inside a transaction")));

	if (cache_cxt == NULL)
		cache_cxt = AllocSetContextCreate(CacheMemoryContext, "aura settings cache", ALLOCSET_DEFAULT_SIZES);
	else
		MemoryContextReset(cache_cxt);
	def_hash = NULL;
	value_hash = NULL;
	value_slots = NULL;

	/* an invalidation arriving while we load clears this again */
	cache_valid = true;
	cache_generation++;
	GetUserIdAndSecContext(&save_uid, &save_sec);
	SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID, save_sec | SECURITY_LOCAL_USERID_CHANGE);
	/*
	 * The latest snapshot, except in parallel mode (a parallel worker, or
	 * the leader during a parallel query), which may not take one: there
	 * the query's snapshot is used, and the next read outside parallel mode
	 * reloads.
	 */
	cache_query_snapshot = IsInParallelMode();
	if (cache_query_snapshot)
		PushActiveSnapshot(GetActiveSnapshot());
	else
		PushActiveSnapshot(GetLatestSnapshot());
	PG_TRY();
	{
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		LoadCacheContents();
		SPI_finish();
	}
	PG_CATCH();
	{
		cache_valid = false;
		def_hash = NULL;
		value_hash = NULL;
		SetUserIdAndSecContext(save_uid, save_sec);
		PG_RE_THROW();
	}
	PG_END_TRY();
	PopActiveSnapshot();
	SetUserIdAndSecContext(save_uid, save_sec);
}

/* ---------------------------------------------------------------------
 * Resolution
 * --------------------------------------------------------------------- */

static SettingDef *
FindDef(const char *key, int len)
{
	char		buf[KEY_MAX];
	SettingDef *def = NULL;

	if (len < KEY_MAX)
	{
		memcpy(buf, key, len);
		memset(buf + len, 0, KEY_MAX - len);
		def = hash_search(def_hash, buf, HASH_FIND, NULL);
	}
	if (def == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown setting \"%s\"", pnstrdup(key, Min(len, 100))),
				 errhint("aura.setting_definitions lists the settings.")));
	return def;
}

static ValueEntry *
FindValue(SettingDef *def, int scope, int64 restaurant, int64 scope_id)
{
	uint64		i;
	ValueSlot  *slot;

	if (!(def->value_mask & (1 << scope)))
		return NULL;
	i = MixValueKey(def->id, scope, restaurant, scope_id) & value_slot_mask;
	while ((slot = &value_slots[i])->e != NULL)
	{
		if (slot->k.restaurant == restaurant && slot->k.scope_id == scope_id &&
			slot->k.def_id == def->id && slot->k.scope == scope)
			return slot->e;
		i = (i + 1) & value_slot_mask;
	}
	return NULL;
}

/*
 * Resolve
 *		The effective value: a locked value at the highest scope wins;
 *		otherwise the most specific of user, location, restaurant, system;
 *		otherwise the default.  Ids of 0 mean "not given".
 */
static const SettingValue *
Resolve(SettingDef *def, int64 r, int64 l, int64 u, int *scope, int64 *source_id, bool *locked)
{
	ValueEntry *e[5] = {NULL, NULL, NULL, NULL, NULL};
	int			s;

	e[SC_SYSTEM] = FindValue(def, SC_SYSTEM, 0, 0);
	if (r > 0)
	{
		e[SC_RESTAURANT] = FindValue(def, SC_RESTAURANT, r, r);
		if (l > 0)
			e[SC_LOCATION] = FindValue(def, SC_LOCATION, r, l);
		if (u > 0)
			e[SC_USER] = FindValue(def, SC_USER, r, u);
	}
	for (s = SC_SYSTEM; s <= SC_USER; s++)
		if (e[s] && e[s]->locked)
			goto found;
	for (s = SC_USER; s >= SC_SYSTEM; s--)
		if (e[s])
			goto found;
	*scope = SC_DEFAULT;
	*source_id = 0;
	*locked = false;
	return &def->dflt;
found:
	*scope = s;
	*source_id = e[s]->k.scope_id;
	*locked = e[s]->locked;
	return &e[s]->v;
}

/*
 * MemoDef
 *		The definition of the key argument, remembered per call site
 *		(fn_extra) with the cache generation, so repeated calls with the same
 *		key skip hashing the key string.  Values are still resolved per call.
 */
typedef struct DefMemo
{
	uint64		generation;
	SettingDef *def;
	int			keylen;
	char		key[KEY_MAX];
} DefMemo;

static SettingDef *
MemoDef(FunctionCallInfo fcinfo, text *key)
{
	DefMemo    *memo = (DefMemo *) fcinfo->flinfo->fn_extra;
	int			len = VARSIZE_ANY_EXHDR(key);
	SettingDef *def;

	if (memo && memo->generation == cache_generation && memo->keylen == len &&
		memcmp(memo->key, VARDATA_ANY(key), len) == 0)
		return memo->def;
	def = FindDef(VARDATA_ANY(key), len);
	if (memo == NULL)
	{
		memo = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, sizeof(DefMemo));
		fcinfo->flinfo->fn_extra = memo;
	}
	memo->generation = cache_generation;
	memo->def = def;
	memo->keylen = len;
	memcpy(memo->key, VARDATA_ANY(key), len);	/* len < KEY_MAX: FindDef found it */
	return def;
}

/*
 * ReadArgs
 *		Arguments of the SQL readers: key (required) and restaurant,
 *		location, user (NULL: from the session context).  A restaurant other
 *		than the one in context needs aura_admin.
 */
static SettingDef *
ReadArgs(FunctionCallInfo fcinfo, int64 *r, int64 *l, int64 *u)
{
	text	   *key;
	int64		ctx;
	bool		has_ctx;
	SettingDef *def;

	if (PG_ARGISNULL(0))
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("setting key must not be NULL")));
	key = PG_GETARG_TEXT_PP(0);
	EnsureCache();
	def = MemoDef(fcinfo, key);

	has_ctx = AuraCurrentRestaurant(&ctx);
	if (PG_NARGS() > 1 && !PG_ARGISNULL(1))
	{
		*r = PG_GETARG_INT64(1);
		if (!(has_ctx && ctx == *r) && !AuraIsAdmin())
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("restaurant " INT64_FORMAT " is not the restaurant in context", *r),
					 errhint("Call aura.set_context(restaurant_id) first; only aura_admin reads other restaurants.")));
	}
	else
		*r = has_ctx ? ctx : 0;
	if (PG_NARGS() > 2 && !PG_ARGISNULL(2))
		*l = PG_GETARG_INT64(2);
	else if (!AuraCurrentLocation(l))
		*l = 0;
	if (PG_NARGS() > 3 && !PG_ARGISNULL(3))
		*u = PG_GETARG_INT64(3);
	else if (!AuraCurrentUser(u))
		*u = 0;
	return def;
}

static void
pg_attribute_noreturn()
WrongType(SettingDef *def, const char *wanted)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("setting \"%s\" is of type %s, not %s", def->key, SettingTypeName(def->rules.type), wanted),
			 errhint("Use aura.get_setting() or aura.get_setting_text() for any type.")));
}

static const SettingValue *
ResolveSimple(SettingDef *def, int64 r, int64 l, int64 u)
{
	int			scope;
	int64		id;
	bool		locked;

	return Resolve(def, r, l, u, &scope, &id, &locked);
}

PG_FUNCTION_INFO_V1(aura_get_setting);
Datum
aura_get_setting(PG_FUNCTION_ARGS)
{
	int64		r,
				l,
				u;
	SettingDef *def = ReadArgs(fcinfo, &r, &l, &u);
	const SettingValue *v = ResolveSimple(def, r, l, u);

	if (v->isnull)
		PG_RETURN_NULL();
	PG_RETURN_JSONB_P(DatumGetJsonbPCopy(JsonbPGetDatum(v->json)));
}

PG_FUNCTION_INFO_V1(aura_get_setting_int);
Datum
aura_get_setting_int(PG_FUNCTION_ARGS)
{
	int64		r,
				l,
				u;
	SettingDef *def = ReadArgs(fcinfo, &r, &l, &u);
	const SettingValue *v;

	if (def->rules.type != ST_INTEGER)
		WrongType(def, "integer");
	v = ResolveSimple(def, r, l, u);
	if (v->isnull)
		PG_RETURN_NULL();
	PG_RETURN_INT64(v->i);
}

PG_FUNCTION_INFO_V1(aura_get_setting_numeric);
Datum
aura_get_setting_numeric(PG_FUNCTION_ARGS)
{
	int64		r,
				l,
				u;
	SettingDef *def = ReadArgs(fcinfo, &r, &l, &u);
	const SettingValue *v;

	if (def->rules.type != ST_NUMERIC && def->rules.type != ST_INTEGER)
		WrongType(def, "numeric");
	v = ResolveSimple(def, r, l, u);
	if (v->isnull)
		PG_RETURN_NULL();
	PG_RETURN_NUMERIC(DatumGetNumericCopy(NumericGetDatum(v->n)));
}

PG_FUNCTION_INFO_V1(aura_get_setting_bool);
Datum
aura_get_setting_bool(PG_FUNCTION_ARGS)
{
	int64		r,
				l,
				u;
	SettingDef *def = ReadArgs(fcinfo, &r, &l, &u);
	const SettingValue *v;

	if (def->rules.type != ST_BOOLEAN)
		WrongType(def, "boolean");
	v = ResolveSimple(def, r, l, u);
	if (v->isnull)
		PG_RETURN_NULL();
	PG_RETURN_BOOL(v->b);
}

PG_FUNCTION_INFO_V1(aura_get_setting_text);
Datum
aura_get_setting_text(PG_FUNCTION_ARGS)
{
	int64		r,
				l,
				u;
	SettingDef *def = ReadArgs(fcinfo, &r, &l, &u);
	const SettingValue *v = ResolveSimple(def, r, l, u);

	if (v->isnull)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(v->txt));
}

PG_FUNCTION_INFO_V1(aura_get_setting_interval);
Datum
aura_get_setting_interval(PG_FUNCTION_ARGS)
{
	int64		r,
				l,
				u;
	SettingDef *def = ReadArgs(fcinfo, &r, &l, &u);
	const SettingValue *v;
	Interval   *out;

	if (def->rules.type != ST_DURATION)
		WrongType(def, "duration");
	v = ResolveSimple(def, r, l, u);
	if (v->isnull)
		PG_RETURN_NULL();
	out = palloc(sizeof(Interval));
	*out = v->iv;
	PG_RETURN_INTERVAL_P(out);
}

/* aura._resolve_setting(key, r, l, u): value, source scope and id, locked */
PG_FUNCTION_INFO_V1(aura_resolve_setting);
Datum
aura_resolve_setting(PG_FUNCTION_ARGS)
{
	int64		r,
				l,
				u;
	SettingDef *def = ReadArgs(fcinfo, &r, &l, &u);
	int			scope;
	int64		id;
	bool		locked;
	const SettingValue *v = Resolve(def, r, l, u, &scope, &id, &locked);
	TupleDesc	tupdesc;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (v->isnull)
		nulls[0] = true;
	else
		values[0] = JsonbPGetDatum(DatumGetJsonbPCopy(JsonbPGetDatum(v->json)));
	values[1] = CStringGetTextDatum(scope_names[scope]);
	if (scope == SC_DEFAULT || scope == SC_SYSTEM)
		nulls[2] = true;
	else
		values[2] = Int64GetDatum(id);
	values[3] = BoolGetDatum(locked);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

static int
ScopeFromName(const char *s)
{
	int			i;

	for (i = SC_SYSTEM; i <= SC_USER; i++)
		if (pg_strcasecmp(s, scope_names[i]) == 0)
			return i;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown scope \"%s\"", pnstrdup(s, Min(strlen(s), 100))),
			 errhint("Scopes are system, restaurant, location and user.")));
	return SC_SYSTEM;
}

/* aura._validate_setting(key, value, scope): canonical value or ERROR 22023 */
PG_FUNCTION_INFO_V1(aura_validate_setting);
Datum
aura_validate_setting(PG_FUNCTION_ARGS)
{
	text	   *key;
	SettingDef *def;
	Jsonb	   *canonical;

	if (PG_ARGISNULL(0))
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("setting key must not be NULL")));
	key = PG_GETARG_TEXT_PP(0);
	EnsureCache();
	def = FindDef(VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key));
	if (PG_ARGISNULL(1))
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("value of setting \"%s\" must not be NULL", def->key),
						errhint("Use aura.reset_setting(...) to remove a value.")));
	if (!PG_ARGISNULL(2))
	{
		int			scope = ScopeFromName(text_to_cstring(PG_GETARG_TEXT_PP(2)));

		if (!(def->scope_mask & (1 << scope)))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("setting \"%s\" cannot be set at %s scope", def->key, scope_names[scope]),
					 errdetail("key: %s; rule: allowed scopes%s%s%s%s; scope: %s", def->key,
							   def->scope_mask & (1 << SC_SYSTEM) ? " system" : "",
							   def->scope_mask & (1 << SC_RESTAURANT) ? " restaurant" : "",
							   def->scope_mask & (1 << SC_LOCATION) ? " location" : "",
							   def->scope_mask & (1 << SC_USER) ? " user" : "",
							   scope_names[scope])));
	}
	canonical = SettingValidate(&def->rules, PG_GETARG_JSONB_P(1));
	if (def->deprecated)
		ereport(WARNING,
				(errmsg("setting \"%s\" is deprecated", def->key),
				 def->deprecation_message ? errdetail("%s", def->deprecation_message) : 0));
	if (def->requires_restart)
		ereport(NOTICE,
				(errmsg("setting \"%s\" takes effect after a restart of the component using it", def->key)));
	PG_RETURN_JSONB_P(canonical);
}

/* ---------------------------------------------------------------------
 * Triggers and caller identity
 * --------------------------------------------------------------------- */

/* statement trigger: every backend drops its cache at commit */
PG_FUNCTION_INFO_V1(aura_settings_invalidate);
Datum
aura_settings_invalidate(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "aura._settings_invalidate() must be called as a trigger");
	CacheInvalidateRelcache(td->tg_relation);
	return PointerGetDatum(NULL);
}

/*
 * aura_setting_definition_check
 *		BEFORE INSERT OR UPDATE row trigger on aura.setting_definitions:
 *		rules fit the type, the pattern compiles, and the default (if any)
 *		passes the rules; the default is stored canonically.
 */
PG_FUNCTION_INFO_V1(aura_setting_definition_check);
Datum
aura_setting_definition_check(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	HeapTuple	tup;
	TupleDesc	desc;
	SettingRules r;
	char		keybuf[KEY_MAX];
	Datum		d;
	bool		numeric_type;
	bool		string_type;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_FOR_ROW(td->tg_event))
		elog(ERROR, "aura._setting_definition_check() must be called as a row trigger");
	tup = TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple;
	desc = RelationGetDescr(td->tg_relation);
	memset(keybuf, 0, sizeof(keybuf));
	if (GetCol(tup, desc, "key", &d) && VARSIZE_ANY_EXHDR(DatumGetPointer(d)) >= KEY_MAX)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("setting key is too long"),
						errdetail("Keys have at most 100 characters.")));
	BuildRules(tup, desc, &r, keybuf);

	numeric_type = (r.type == ST_INTEGER || r.type == ST_NUMERIC || r.type == ST_DURATION);
	string_type = (r.type == ST_STRING || r.type == ST_SECRET);
	if ((r.min_value || r.max_value) && !numeric_type)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("min_value and max_value do not apply to %s setting \"%s\"",
							   SettingTypeName(r.type), r.key),
						errhint("They apply to integer, numeric and duration (seconds) settings.")));
	if ((r.min_length >= 0 || r.max_length >= 0 || r.pattern) && !string_type)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("min_length, max_length and pattern do not apply to %s setting \"%s\"",
							   SettingTypeName(r.type), r.key)));
	if (r.nallowed > 0 && r.type != ST_ENUM && r.type != ST_STRING)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("allowed_values do not apply to %s setting \"%s\"", SettingTypeName(r.type), r.key)));
	if (r.nrequired > 0 && r.type != ST_JSON)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("required_keys do not apply to %s setting \"%s\"", SettingTypeName(r.type), r.key)));
	if (r.pattern)				/* compiles, or raises invalid_regular_expression */
		(void) RE_compile_and_execute(r.pattern, "", 0, REG_ADVANCED, C_COLLATION_OID, 0, NULL);

	if (GetCol(tup, desc, "default_value", &d))
	{
		Jsonb	   *canonical;
		int			col = SPI_fnumber(desc, "default_value");
		Datum		newval;
		bool		newnull = false;

		if (r.sensitive)
			ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							errmsg("sensitive setting \"%s\" cannot have a default value", r.key),
							errhint("Defaults are stored in clear; set the value with aura.set_setting(...).")));
		canonical = SettingValidate(&r, DatumGetJsonbP(d));
		newval = JsonbPGetDatum(canonical);
		tup = heap_modify_tuple_by_cols(tup, desc, 1, &col, &newval, &newnull);
	}
	return PointerGetDatum(tup);
}

/* aura._caller_has(role): privileges of the role that called (SET ROLE level) */
PG_FUNCTION_INFO_V1(aura_caller_has);
Datum
aura_caller_has(PG_FUNCTION_ARGS)
{
	Oid			outer = GetOuterUserId();
	Oid			role;

	if (superuser_arg(outer))
		PG_RETURN_BOOL(true);
	role = get_role_oid(text_to_cstring(PG_GETARG_TEXT_PP(0)), true);
	PG_RETURN_BOOL(OidIsValid(role) && has_privs_of_role(outer, role));
}

/* aura._caller_name(): name of the role that called */
PG_FUNCTION_INFO_V1(aura_caller_name);
Datum
aura_caller_name(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(GetUserNameFromId(GetOuterUserId(), false)));
}

/* ---------------------------------------------------------------------
 * Secrets
 * --------------------------------------------------------------------- */

typedef struct Revealed
{
	int32		def_id;
	int32		scope;
	int64		restaurant;
	int64		scope_id;
} Revealed;

/*
 * LogReveal
 *		One history row per secret and transaction (plus a server log line):
 *		repeated reveals of the same value in one transaction add nothing.
 */
static void
LogReveal(SettingDef *def, int scope, int64 r, int64 id)
{
	ListCell   *lc;
	Revealed   *rv;
	MemoryContext old;
	Oid			save_uid;
	int			save_sec;
	Datum		args[4];
	Oid			types[4] = {INT8OID, TEXTOID, INT8OID, TEXTOID};
	char		nulls[4] = {' ', ' ', ' ', ' '};

	foreach(lc, revealed)
	{
		rv = lfirst(lc);
		if (rv->def_id == def->id && rv->scope == scope && rv->restaurant == r && rv->scope_id == id)
			return;
	}
	ereport(LOG, (errmsg("aura: secret setting \"%s\" (%s scope) revealed to role \"%s\"",
						 def->key, scope_names[scope], GetUserNameFromId(GetOuterUserId(), false)),
				  errhidestmt(true)));

	args[0] = Int64GetDatum(r);
	args[1] = CStringGetTextDatum(scope_names[scope]);
	args[2] = Int64GetDatum(id);
	args[3] = CStringGetTextDatum(def->key);
	if (scope == SC_SYSTEM)
		nulls[0] = nulls[2] = 'n';
	GetUserIdAndSecContext(&save_uid, &save_sec);
	SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID, save_sec | SECURITY_LOCAL_USERID_CHANGE);
	PG_TRY();
	{
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		if (SPI_execute_with_args("SELECT aura._log_setting($1, $2, $3, $4, 'reveal', 'direct', NULL, NULL, NULL)",
								  4, types, args, nulls, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not log the reveal");
		SPI_finish();
	}
	PG_CATCH();
	{
		SetUserIdAndSecContext(save_uid, save_sec);
		PG_RE_THROW();
	}
	PG_END_TRY();
	SetUserIdAndSecContext(save_uid, save_sec);

	old = MemoryContextSwitchTo(TopTransactionContext);
	rv = palloc(sizeof(Revealed));
	rv->def_id = def->id;
	rv->scope = scope;
	rv->restaurant = r;
	rv->scope_id = id;
	revealed = lappend(revealed, rv);
	MemoryContextSwitchTo(old);
}

/* restaurant of a location (slow path of reveal by location without context) */
static int64
LocationRestaurant(int64 location)
{
	Datum		arg = Int64GetDatum(location);
	Oid			type = INT8OID;
	volatile int64 r = 0;
	Oid			save_uid;
	int			save_sec;

	GetUserIdAndSecContext(&save_uid, &save_sec);
	SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID, save_sec | SECURITY_LOCAL_USERID_CHANGE);
	PG_TRY();
	{
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		if (SPI_execute_with_args("SELECT restaurant_id FROM aura.locations WHERE id = $1",
								  1, &type, &arg, NULL, true, 1) == SPI_OK_SELECT && SPI_processed == 1)
		{
			bool		isnull;

			r = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		}
		SPI_finish();
	}
	PG_CATCH();
	{
		SetUserIdAndSecContext(save_uid, save_sec);
		PG_RE_THROW();
	}
	PG_END_TRY();
	SetUserIdAndSecContext(save_uid, save_sec);
	return r;
}

/* plaintext of a sealed value, aad = the setting key */
static char *
UnsealValue(SettingDef *def, const SettingValue *v, int *len)
{
	return AuraUnseal(v->sealed, def->key, strlen(def->key), len);
}

/*
 * aura.reveal_secret(key, scope, scope_id): plaintext of a sensitive value
 * stored at exactly that scope, for aura_admin only; recorded in history.
 */
PG_FUNCTION_INFO_V1(aura_reveal_secret);
Datum
aura_reveal_secret(PG_FUNCTION_ARGS)
{
	text	   *key;
	SettingDef *def;
	int			scope;
	int64		r = 0;
	int64		id = 0;
	ValueEntry *e;
	char	   *plain;
	int			len;
	text	   *result;

	if (!AuraIsAdmin())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("only aura_admin may reveal secret settings")));
	if (PG_ARGISNULL(0))
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("setting key must not be NULL")));
	key = PG_GETARG_TEXT_PP(0);
	EnsureCache();
	def = FindDef(VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key));
	scope = PG_ARGISNULL(1) ? SC_SYSTEM : ScopeFromName(text_to_cstring(PG_GETARG_TEXT_PP(1)));
	if (!def->rules.sensitive)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("setting \"%s\" is not sensitive", def->key),
				 errhint("Read it with aura.get_setting(...).")));
	switch (scope)
	{
		case SC_SYSTEM:
			if (!PG_ARGISNULL(2))
				ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
								errmsg("system scope takes no scope_id")));
			break;
		case SC_RESTAURANT:
			if (!PG_ARGISNULL(2))
				id = PG_GETARG_INT64(2);
			else if (!AuraCurrentRestaurant(&id))
				id = 0;
			r = id;
			break;
		case SC_LOCATION:
			if (!PG_ARGISNULL(2))
				id = PG_GETARG_INT64(2);
			else if (!AuraCurrentLocation(&id))
				id = 0;
			if (!AuraCurrentRestaurant(&r) || FindValue(def, SC_LOCATION, r, id) == NULL)
				r = id > 0 ? LocationRestaurant(id) : 0;
			break;
		case SC_USER:
			if (!PG_ARGISNULL(2))
				id = PG_GETARG_INT64(2);
			else if (!AuraCurrentUser(&id))
				id = 0;
			if (!AuraCurrentRestaurant(&r))
				ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
								errmsg("user scope needs a restaurant in context"),
								errhint("Call aura.set_context(restaurant_id) first.")));
			break;
	}
	if (scope != SC_SYSTEM && id <= 0)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("%s scope needs a scope_id", scope_names[scope]),
						errhint("Pass scope_id or set the context.")));
	e = FindValue(def, scope, r, id);
	if (e == NULL || e->v.isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("setting \"%s\" has no value at %s scope", def->key, scope_names[scope])));
	plain = UnsealValue(def, &e->v, &len);
	LogReveal(def, scope, r, id);
	result = cstring_to_text_with_len(plain, len);
	explicit_bzero(plain, len);
	pfree(plain);
	PG_RETURN_TEXT_P(result);
}

/* ---------------------------------------------------------------------
 * C API (settings.h)
 * --------------------------------------------------------------------- */

static const SettingValue *
ApiResolve(const char *key, int64 r, int64 l, int64 u, SettingDef **defp)
{
	SettingDef *def;

	EnsureCache();
	def = FindDef(key, strlen(key));
	*defp = def;
	return ResolveSimple(def, r, l, u);
}

bool
AuraGetSettingInt(const char *key, int64 restaurant, int64 location, int64 user, int64 *out)
{
	SettingDef *def;
	const SettingValue *v = ApiResolve(key, restaurant, location, user, &def);

	if (def->rules.type != ST_INTEGER)
		WrongType(def, "integer");
	if (v->isnull)
		return false;
	*out = v->i;
	return true;
}

bool
AuraGetSettingNumeric(const char *key, int64 restaurant, int64 location, int64 user, Numeric *out)
{
	SettingDef *def;
	const SettingValue *v = ApiResolve(key, restaurant, location, user, &def);

	if (def->rules.type != ST_NUMERIC && def->rules.type != ST_INTEGER)
		WrongType(def, "numeric");
	if (v->isnull)
		return false;
	*out = DatumGetNumericCopy(NumericGetDatum(v->n));
	return true;
}

bool
AuraGetSettingBool(const char *key, int64 restaurant, int64 location, int64 user, bool *out)
{
	SettingDef *def;
	const SettingValue *v = ApiResolve(key, restaurant, location, user, &def);

	if (def->rules.type != ST_BOOLEAN)
		WrongType(def, "boolean");
	if (v->isnull)
		return false;
	*out = v->b;
	return true;
}

bool
AuraGetSettingText(const char *key, int64 restaurant, int64 location, int64 user, char **out)
{
	SettingDef *def;
	const SettingValue *v = ApiResolve(key, restaurant, location, user, &def);

	if (v->isnull)
		return false;
	*out = pstrdup(v->txt);
	return true;
}

bool
AuraGetSettingInterval(const char *key, int64 restaurant, int64 location, int64 user, Interval *out)
{
	SettingDef *def;
	const SettingValue *v = ApiResolve(key, restaurant, location, user, &def);

	if (def->rules.type != ST_DURATION)
		WrongType(def, "duration");
	if (v->isnull)
		return false;
	*out = v->iv;
	return true;
}

Jsonb *
AuraGetSettingJsonb(const char *key, int64 restaurant, int64 location, int64 user)
{
	SettingDef *def;
	const SettingValue *v = ApiResolve(key, restaurant, location, user, &def);

	if (v->isnull)
		return NULL;
	return DatumGetJsonbPCopy(JsonbPGetDatum(v->json));
}

bool
AuraGetSecretSetting(const char *key, int64 restaurant, int64 location, int64 user,
					 char **plaintext, int *len)
{
	SettingDef *def;
	const SettingValue *v = ApiResolve(key, restaurant, location, user, &def);

	if (v->isnull)
		return false;
	if (!def->rules.sensitive)
	{
		*plaintext = pstrdup(v->txt);
		*len = strlen(*plaintext);
		return true;
	}
	*plaintext = UnsealValue(def, v, len);
	return true;
}
