/*
 * ledger.c
 *	  The points ledger: posting engine and its SQL entry points
 *	  (earn_points, spend_points, adjust_points, transfer_points,
 *	  expire_points) and the append-only guard of aura.points_transactions.
 *
 * Every posting runs in this order, which is what makes it deadlock-free:
 *	 1. the account rows, FOR UPDATE, in ascending customer id;
 *	 2. the lookup of the idempotency key: a used key answers with its
 *		original transaction.  Under the account lock a concurrent posting
 *		with the same key and arguments (hence the same account) has
 *		finished, so the lookup sees it; a concurrent same key on another
 *		account is a request with other arguments, which the unique index
 *		refuses (23505) even before the lookup could;
 *	 3. lots, ledger row, account update, tier recalculation.
 * No advisory or other lock-table entries are taken per posting, so one
 * transaction can post any number of rows (a bulk insert of orders).
 * Lots are touched only under their account's lock.  The queries are SPI
 * plans prepared once per backend and kept (SPI_keepplan).
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/hashfn.h"
#include "common/int.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "aura.h"
#include "context.h"
#include "ledger.h"
#include "ledger_config.h"
#include "tiers.h"

#define KEY_MAX 200
#define TEXT_MAX 200
#define REASON_MAX 1000

/* advisory lock field4 of aura's idempotency keys ("AU") */
#define LEDGER_LOCK_CLASS 0x4155

static const char *const kind_names[] = {
	"earn", "redeem", "adjust", "transfer_out", "transfer_in", "expire",
	"reversal", "bonus", "migration"
};

/* state of a locked account */
typedef struct Account
{
	int64		restaurant_id;
	int64		customer_id;
	int64		balance;
	int64		pending;
	int64		lifetime_earned;
	int64		lifetime_spent;
	Numeric		spend_amount;
	int64		order_count;
	char		tier[TIER_NAME_MAX];
	bool		has_tier;
	TimestampTz tier_since;
	TimestampTz enrolled_at;
	char		status[8];
	ItemPointerData tid;		/* the locked row version */
} Account;

/* a lot consumed by a debit, mirrored by the credit of a transfer */
typedef struct ConsumedLot
{
	int64		amount;
	bool		has_expiry;
	TimestampTz expires_at;
	TimestampTz available_at;
} ConsumedLot;

static SPIPlanPtr plan_key_find;
static SPIPlanPtr plan_acc_lock;
static SPIPlanPtr plan_acc_create;
static SPIPlanPtr plan_restaurant;
static SPIPlanPtr plan_lots;
static SPIPlanPtr plan_lot_update;
static SPIPlanPtr plan_pending;

static void AccountsInvalidate(Datum arg, Oid relid);

/* the loyalty module's one relcache callback: every cache of its files */
static void
LedgerRelcacheCallback(Datum arg, Oid relid)
{
	AccountsInvalidate(arg, relid);
	LedgerHeapInvalidate(arg, relid);
	LedgerEventsInvalidate(arg, relid);
	MultipliersInvalidate(arg, relid);
	TiersInvalidate(arg, relid);
	MilestonesInvalidate(arg, relid);
}

const char *
LedgerKindName(LedgerKind kind)
{
	return kind_names[kind];
}

/*
 * LedgerInit
 *		Init of the loyalty module (ledger, tiers, orders).
 */
void
LedgerInit(void)
{
	LedgerHeapInit();
	CacheRegisterRelcacheCallback(LedgerRelcacheCallback, (Datum) 0);
}

/*
 * LedgerPlan
 *		Prepare a query once per backend and keep it.
 */
SPIPlanPtr
LedgerPlan(SPIPlanPtr *slot, const char *sql, int nargs, const Oid *types)
{
	if (*slot == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare(sql, nargs, (Oid *) types);

		if (plan == NULL)
			elog(ERROR, "aura: SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "aura: SPI_keepplan failed");
		*slot = plan;
	}
	return *slot;
}

/*
 * LedgerCheckTenant
 *		The role calling aura (outside any SECURITY DEFINER function, i.e.
 *		the session's role after SET ROLE) must be aura_admin or have the
 *		restaurant in its context.
 */
void
LedgerCheckTenant(int64 restaurant_id)
{
	Oid			caller = GetOuterUserId();
	Oid			admin;
	int64		ctx;

	if (superuser_arg(caller))
		return;
	admin = get_role_oid("aura_admin", true);
	if (OidIsValid(admin) && has_privs_of_role(caller, admin))
		return;
	if (AuraCurrentRestaurant(&ctx) && ctx == restaurant_id)
		return;
	if (restaurant_id == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("no restaurant in the context of this session"),
				 errdetail("Only aura_admin acts on every restaurant."),
				 errhint("Call aura.set_context(restaurant_id) first.")));
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("restaurant " INT64_FORMAT " is not in the context of this session", restaurant_id),
			 errdetail("The session's restaurant is %s.",
					   AuraCurrentRestaurant(&ctx) ? psprintf(INT64_FORMAT, ctx) : "not set"),
			 errhint("Call aura.set_context(restaurant_id) first.")));
}

/*
 * LedgerEmitEvent
 *		Record an event in the loyalty event log (aura.loyalty_events) and
 *		emit it through the notifications module (aura.emit_event: webhooks
 *		and notification rules, in this transaction).  emit_event checks the
 *		tenant context; the posting that raises the event has been
 *		authorized already (an order trigger may run without any context),
 *		so the restaurant is put in context for that one call only.
 */
void
LedgerEmitEvent(int64 restaurant_id, const char *event_type, const char *json)
{
	static SPIPlanPtr plan_emit;
	static const Oid types[3] = {INT8OID, TEXTOID, TEXTOID};
	Datum		values[3];
	int			rc;
	int			nest;

	LedgerRecordEvent(restaurant_id, event_type, json);

	values[0] = Int64GetDatum(restaurant_id);
	values[1] = CStringGetTextDatum(event_type);
	values[2] = CStringGetTextDatum(json);
	LedgerPlan(&plan_emit, "SELECT aura.emit_event($1, $2, $3::jsonb)", 3, types);
	nest = NewGUCNestLevel();
	(void) set_config_option("aura.restaurant_id", psprintf(INT64_FORMAT, restaurant_id),
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	rc = SPI_execute_plan(plan_emit, values, NULL, false, 0);
	AtEOXact_GUC(true, nest);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "aura: aura.emit_event failed: %s", SPI_result_code_string(rc));
}

/* text of a nullable string for messages */
static const char *
Show(const char *s)
{
	return s ? quote_literal_cstr(s) : "NULL";
}

static bool
StrEq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static char *
GetText(HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

static int64
GetInt64(HeapTuple tup, TupleDesc desc, int col, bool *isnull)
{
	bool		n;
	Datum		d = SPI_getbinval(tup, desc, col, &n);

	if (isnull)
		*isnull = n;
	return n ? 0 : DatumGetInt64(d);
}

/*
 * KeyLookup
 *		Look the key up (the caller holds the account lock, so a concurrent
 *		posting with the same key and account has committed or rolled back).  A used key returns true and its
 *		transaction id, after checking (unless key_exists_ok) that the request
 *		is the same as the original; a different one raises 23505 naming the
 *		first field that differs.
 */
static bool
KeyLookup(LedgerPosting *p, int64 *txid)
{
	static const Oid types[2] = {INT8OID, TEXTOID};
	Datum		values[2];
	int			rc;
	HeapTuple	tup;
	TupleDesc	desc;
	char	   *kind;
	int64		customer,
				points,
				counterparty;
	bool		no_counterparty;
	char	   *reference,
			   *reason;
	const char *field = NULL;
	const char *label = NULL;
	char	   *was = NULL,
			   *now = NULL;

	LedgerPlan(&plan_key_find,
			   "SELECT id, kind, customer_id, points, reference, reason, counterparty "
			   "FROM aura.points_transactions WHERE restaurant_id = $1 AND idempotency_key = $2",
			   2, types);
	values[0] = Int64GetDatum(p->restaurant_id);
	values[1] = CStringGetTextDatum(p->idempotency_key);
	rc = SPI_execute_plan(plan_key_find, values, NULL, false, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "aura: key lookup failed: %s", SPI_result_code_string(rc));
	if (SPI_processed == 0)
		return false;

	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	*txid = GetInt64(tup, desc, 1, NULL);
	if (p->key_exists_ok)
		return true;

	kind = GetText(tup, desc, 2);
	customer = GetInt64(tup, desc, 3, NULL);
	points = GetInt64(tup, desc, 4, NULL);
	reference = GetText(tup, desc, 5);
	reason = GetText(tup, desc, 6);
	counterparty = GetInt64(tup, desc, 7, &no_counterparty);

	if (strcmp(kind, LedgerKindName(p->kind)) != 0)
	{
		field = "a different operation";
		label = "operation";
		was = kind;
		now = pstrdup(LedgerKindName(p->kind));
	}
	else if (customer != p->customer_id)
	{
		field = "a different customer";
		label = "customer";
		was = psprintf(INT64_FORMAT, customer);
		now = psprintf(INT64_FORMAT, p->customer_id);
	}
	else if (points != p->points)
	{
		field = "different points";
		label = "points";
		was = psprintf(INT64_FORMAT, points < 0 && p->points < 0 ? -points : points);
		now = psprintf(INT64_FORMAT, points < 0 && p->points < 0 ? -p->points : p->points);
	}
	else if (p->has_counterparty != !no_counterparty ||
			 (p->has_counterparty && counterparty != p->counterparty))
	{
		field = "a different counterparty";
		label = "counterparty";
		was = no_counterparty ? "none" : psprintf(INT64_FORMAT, counterparty);
		now = p->has_counterparty ? psprintf(INT64_FORMAT, p->counterparty) : "none";
	}
	else if (!StrEq(reference, p->reference))
	{
		field = "a different reference";
		label = "reference";
		was = (char *) Show(reference);
		now = (char *) Show(p->reference);
	}
	else if (!StrEq(reason, p->reason))
	{
		field = "a different reason";
		label = "reason";
		was = (char *) Show(reason);
		now = (char *) Show(p->reason);
	}
	if (field != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNIQUE_VIOLATION),
				 errmsg("idempotency key \"%s\" was already used with %s",
						p->idempotency_key, field),
				 errdetail("Transaction " INT64_FORMAT " has %s %s; this request has %s %s.",
						   *txid, label, was, label, now),
				 errhint("Retry with the original arguments, or use a new idempotency key.")));
	return true;
}

/* the account table, its primary key and its columns, looked up once */
static Oid	acc_relid = InvalidOid;
static Oid	acc_pkey = InvalidOid;
static AttrNumber acc_att[10];
static const char *const acc_cols[10] = {"balance", "pending", "lifetime_earned", "lifetime_spent",
	"lifetime_spend_amount", "order_count", "tier", "tier_since", "enrolled_at", "status"};

static void
AccountsInvalidate(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == acc_relid)
		acc_relid = acc_pkey = InvalidOid;
}

/*
 * LockAccountDirect
 *		SELECT ... FOR UPDATE of an existing account without the executor: a
 *		probe of the primary key with the transaction's snapshot (after a
 *		command counter increment, as SPI does), then table_tuple_lock of
 *		the row's latest version (waiting for a concurrent writer; under
 *		REPEATABLE READ a concurrent update raises the serialization failure,
 *		as SELECT FOR UPDATE would).  False when there is no such account.
 */
static bool
LockAccountDirect(Account *acc, int64 restaurant_id, int64 customer_id)
{
	Relation	rel;
	Relation	idx;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	ScanKeyData sk[2];
	Snapshot	snap;
	TM_FailureData tmfd;
	TM_Result	res;
	ItemPointerData tid;
	bool		found;
	bool		isnull;
	Datum		d;
	int			i;

	if (!OidIsValid(acc_relid))
	{
		Oid			nsp = get_namespace_oid("aura", false);
		Oid			relid = get_relname_relid("loyalty_accounts", nsp);
		Oid			pkey = get_relname_relid("loyalty_accounts_pkey", nsp);

		if (!OidIsValid(relid) || !OidIsValid(pkey))
			elog(ERROR, "aura: aura.loyalty_accounts or its primary key is missing");
		for (i = 0; i < 10; i++)
		{
			acc_att[i] = get_attnum(relid, acc_cols[i]);
			if (acc_att[i] == InvalidAttrNumber)
				elog(ERROR, "aura: column %s of aura.loyalty_accounts is missing", acc_cols[i]);
		}
		acc_relid = relid;
		acc_pkey = pkey;
	}
	CommandCounterIncrement();
	rel = table_open(acc_relid, RowShareLock);
	idx = index_open(acc_pkey, AccessShareLock);
	snap = RegisterSnapshot(GetTransactionSnapshot());
	ScanKeyInit(&sk[0], 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(restaurant_id));
	ScanKeyInit(&sk[1], 2, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(customer_id));
	slot = table_slot_create(rel, NULL);
	scan = index_beginscan(rel, idx, snap, 2, 0);
	index_rescan(scan, sk, 2, NULL, 0);
	found = index_getnext_slot(scan, ForwardScanDirection, slot);
	if (found)
		tid = slot->tts_tid;
	index_endscan(scan);
	index_close(idx, NoLock);
	if (found)
	{
		res = table_tuple_lock(rel, &tid, snap, slot, GetCurrentCommandId(false),
							   LockTupleExclusive, LockWaitBlock,
							   TUPLE_LOCK_FLAG_FIND_LAST_VERSION, &tmfd);
		if (res == TM_Deleted)
			found = false;
		else if (res != TM_Ok)
			elog(ERROR, "aura: could not lock the account of customer " INT64_FORMAT " (%d)",
				 customer_id, (int) res);
	}
	if (found)
	{
		acc->restaurant_id = restaurant_id;
		acc->customer_id = customer_id;
		acc->balance = DatumGetInt64(slot_getattr(slot, acc_att[0], &isnull));
		acc->pending = DatumGetInt64(slot_getattr(slot, acc_att[1], &isnull));
		acc->lifetime_earned = DatumGetInt64(slot_getattr(slot, acc_att[2], &isnull));
		acc->lifetime_spent = DatumGetInt64(slot_getattr(slot, acc_att[3], &isnull));
		acc->spend_amount = DatumGetNumericCopy(slot_getattr(slot, acc_att[4], &isnull));
		acc->order_count = DatumGetInt64(slot_getattr(slot, acc_att[5], &isnull));
		d = slot_getattr(slot, acc_att[6], &isnull);
		acc->has_tier = !isnull;
		strlcpy(acc->tier, isnull ? "" : TextDatumGetCString(d), TIER_NAME_MAX);
		d = slot_getattr(slot, acc_att[7], &isnull);
		acc->tier_since = isnull ? 0 : DatumGetTimestampTz(d);
		acc->enrolled_at = DatumGetTimestampTz(slot_getattr(slot, acc_att[8], &isnull));
		strlcpy(acc->status, TextDatumGetCString(slot_getattr(slot, acc_att[9], &isnull)),
				sizeof(acc->status));
		ItemPointerCopy(&slot->tts_tid, &acc->tid);
	}
	ExecDropSingleTupleTableSlot(slot);
	UnregisterSnapshot(snap);
	table_close(rel, NoLock);
	return found;
}

/*
 * LockAccount
 *		Lock the account row FOR UPDATE and read it; create it first when
 *		asked (with the restaurant's base tier).  Returns false when the
 *		account does not exist and was not to be created.
 */
static bool
LockAccount(Account *acc, int64 restaurant_id, int64 customer_id, bool create)
{
	static const Oid types2[2] = {INT8OID, INT8OID};
	static const Oid types3[3] = {INT8OID, INT8OID, TEXTOID};
	static const Oid types1[1] = {INT8OID};
	Datum		values[3];
	int			rc;
	int			attempt;

	LedgerPlan(&plan_acc_lock,
			   "SELECT balance, pending, lifetime_earned, lifetime_spent, lifetime_spend_amount, "
			   "order_count, tier, tier_since, enrolled_at, status, ctid "
			   "FROM aura.loyalty_accounts WHERE restaurant_id = $1 AND customer_id = $2 FOR UPDATE",
			   2, types2);
	values[0] = Int64GetDatum(restaurant_id);
	values[1] = Int64GetDatum(customer_id);

	if (LockAccountDirect(acc, restaurant_id, customer_id))
		return true;
	for (attempt = 0; attempt < 2; attempt++)
	{
		rc = SPI_execute_plan(plan_acc_lock, values, NULL, false, 1);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "aura: account lock failed: %s", SPI_result_code_string(rc));
		if (SPI_processed == 1)
		{
			HeapTuple	tup = SPI_tuptable->vals[0];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			bool		isnull;
			char	   *s;

			acc->restaurant_id = restaurant_id;
			acc->customer_id = customer_id;
			acc->balance = GetInt64(tup, desc, 1, NULL);
			acc->pending = GetInt64(tup, desc, 2, NULL);
			acc->lifetime_earned = GetInt64(tup, desc, 3, NULL);
			acc->lifetime_spent = GetInt64(tup, desc, 4, NULL);
			acc->spend_amount = DatumGetNumericCopy(SPI_getbinval(tup, desc, 5, &isnull));
			acc->order_count = GetInt64(tup, desc, 6, NULL);
			s = GetText(tup, desc, 7);
			acc->has_tier = s != NULL;
			strlcpy(acc->tier, s ? s : "", TIER_NAME_MAX);
			acc->tier_since = DatumGetTimestampTz(SPI_getbinval(tup, desc, 8, &isnull));
			if (isnull)
				acc->tier_since = 0;
			acc->enrolled_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 9, &isnull));
			strlcpy(acc->status, GetText(tup, desc, 10), sizeof(acc->status));
			ItemPointerCopy((ItemPointer) DatumGetPointer(SPI_getbinval(tup, desc, 11, &isnull)), &acc->tid);
			return true;
		}
		if (!create || attempt > 0)
			break;

		/* first use: the restaurant must exist; the account gets the base tier */
		LedgerPlan(&plan_restaurant, "SELECT 1 FROM aura.restaurants WHERE id = $1", 1, types1);
		rc = SPI_execute_plan(plan_restaurant, values, NULL, false, 1);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "aura: restaurant lookup failed");
		if (SPI_processed == 0)
			ereport(ERROR,
					(errcode(ERRCODE_NO_DATA_FOUND),
					 errmsg("restaurant " INT64_FORMAT " does not exist", restaurant_id)));
		{
			const TierSet *tiers = TiersGet(restaurant_id);

			values[2] = CStringGetTextDatum(tiers->ntiers > 0 ? tiers->tiers[0].name : "");
		}
		LedgerPlan(&plan_acc_create,
				   "INSERT INTO aura.loyalty_accounts (restaurant_id, customer_id, tier, tier_since) "
				   "VALUES ($1, $2, nullif($3, ''), now()) ON CONFLICT DO NOTHING",
				   3, types3);
		rc = SPI_execute_plan(plan_acc_create, values, NULL, false, 0);
		if (rc != SPI_OK_INSERT)
			elog(ERROR, "aura: account insert failed: %s", SPI_result_code_string(rc));
	}
	return false;
}

/*
 * LedgerLockAccount
 *		Lock an account row (FOR UPDATE) for the rest of the transaction;
 *		false when it does not exist.
 */
bool
LedgerLockAccount(int64 restaurant_id, int64 customer_id)
{
	Account		acc;

	return LockAccount(&acc, restaurant_id, customer_id, false);
}

/*
 * DebitLots
 *		Take amount points out of the account's open lots, oldest expiry
 *		first (lots without expiry last).  available_only skips pending lots.
 *		prefer_tx: the lot of this transaction goes first (reversals).
 *		Returns what was taken (may be less than amount); consumed lots are
 *		appended to *consumed when it is not NULL.  *available_out is the sum
 *		of the available lots when less than amount was taken (the whole
 *		account was read); otherwise at least amount.
 *
 *		The lots are read through a cursor in index order and the read stops
 *		once amount is covered: a customer with thousands of open lots (a
 *		regular, transfers mirroring lots) costs a spend only the lots it
 *		takes, not all of them.
 */
#define LOT_FETCH 32

static int64
DebitLots(Account *acc, int64 amount, bool available_only, int64 prefer_tx,
		  List **consumed, int64 *available_out)
{
	static SPIPlanPtr plan_lots_preferred;
	static const Oid types[3] = {INT8OID, INT8OID, INT8OID};
	static const Oid utypes[3] = {INT8OID, INT8OID, INT8OID};
	Datum		values[3];
	int			rc;
	int64		taken = 0;
	int64		available = 0;
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	Portal		portal;
	List	   *takes = NIL;	/* int64[2]: lot id, points taken */
	ListCell   *lc;

	/* without a preferred lot the order is the index's: no sort of every lot */
	LedgerPlan(&plan_lots,
			   "SELECT id, remaining, expires_at, available_at "
			   "FROM aura.points_lots WHERE restaurant_id = $1 AND customer_id = $2 AND remaining > 0 "
			   "ORDER BY expires_at NULLS LAST, id",
			   2, types);
	LedgerPlan(&plan_lots_preferred,
			   "SELECT id, remaining, expires_at, available_at "
			   "FROM aura.points_lots WHERE restaurant_id = $1 AND customer_id = $2 AND remaining > 0 "
			   "ORDER BY transaction_id = $3 DESC, expires_at NULLS LAST, id",
			   3, types);
	values[0] = Int64GetDatum(acc->restaurant_id);
	values[1] = Int64GetDatum(acc->customer_id);
	values[2] = Int64GetDatum(prefer_tx);
	portal = SPI_cursor_open(NULL, prefer_tx != 0 ? plan_lots_preferred : plan_lots,
							 values, NULL, false);	/* sees this transaction's own lots */
	while (taken < amount)
	{
		SPITupleTable *tt;
		uint64		n;
		uint64		i;

		SPI_cursor_fetch(portal, true, LOT_FETCH);
		tt = SPI_tuptable;
		n = SPI_processed;
		if (n == 0)
			break;
		for (i = 0; i < n && taken < amount; i++)
		{
			HeapTuple	tup = tt->vals[i];
			bool		noexp;
			bool		isnull;
			TimestampTz exp = DatumGetTimestampTz(SPI_getbinval(tup, tt->tupdesc, 3, &noexp));
			TimestampTz avail = DatumGetTimestampTz(SPI_getbinval(tup, tt->tupdesc, 4, &isnull));
			int64		rem = GetInt64(tup, tt->tupdesc, 2, NULL);
			int64		t;
			int64	   *pair;

			if (available_only && !isnull && avail > now)
				continue;
			available += rem;
			t = Min(rem, amount - taken);
			taken += t;
			pair = palloc(sizeof(int64) * 2);
			pair[0] = GetInt64(tup, tt->tupdesc, 1, NULL);
			pair[1] = t;
			takes = lappend(takes, pair);
			if (consumed)
			{
				ConsumedLot *c = palloc(sizeof(ConsumedLot));

				c->amount = t;
				c->has_expiry = !noexp;
				c->expires_at = exp;
				c->available_at = avail;
				*consumed = lappend(*consumed, c);
			}
		}
		SPI_freetuptable(tt);
	}
	SPI_cursor_close(portal);

	if (available_out)
		*available_out = available;
	/* a debit beyond what is available changes nothing here */
	if (available_only && taken < amount)
		return taken;

	LedgerPlan(&plan_lot_update,
			   "UPDATE aura.points_lots SET remaining = remaining - $3 "
			   "WHERE restaurant_id = $1 AND id = $2", 3, utypes);
	foreach(lc, takes)
	{
		int64	   *pair = lfirst(lc);

		values[0] = Int64GetDatum(acc->restaurant_id);
		values[1] = Int64GetDatum(pair[0]);
		values[2] = Int64GetDatum(pair[1]);
		rc = SPI_execute_plan(plan_lot_update, values, NULL, false, 0);
		if (rc != SPI_OK_UPDATE || SPI_processed != 1)
			elog(ERROR, "aura: lot update failed");
	}
	return taken;
}

/* insert one lot of a credit (direct insert, see ledger_heap.c) */
static void
InsertLot(Account *acc, int64 txid, int64 amount, int64 remaining, bool has_expiry,
		  TimestampTz expires_at, TimestampTz available_at)
{
	static const char *const names[7] = {"restaurant_id", "customer_id", "transaction_id",
	"amount", "remaining", "expires_at", "available_at"};
	Datum		values[7];
	bool		nulls[7] = {false, false, false, false, false, false, false};

	values[0] = Int64GetDatum(acc->restaurant_id);
	values[1] = Int64GetDatum(acc->customer_id);
	values[2] = Int64GetDatum(txid);
	values[3] = Int64GetDatum(amount);
	values[4] = Int64GetDatum(remaining);
	values[5] = TimestampTzGetDatum(expires_at);
	nulls[5] = !has_expiry;
	values[6] = TimestampTzGetDatum(available_at);
	(void) LedgerHeapInsert("points_lots", 7, names, values, nulls);
}

/*
 * MergeIntoLot
 *		Received points join an open lot of the receiver with the same expiry
 *		and availability, if there is one: transfers back and forth would
 *		otherwise split lots without end.  False when there is none.
 */
static bool
MergeIntoLot(Account *acc, ConsumedLot *c)
{
	static SPIPlanPtr plan_merge;
	static const Oid types[5] = {INT8OID, INT8OID, INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID};
	Datum		values[5];
	char		nulls[6] = "     ";
	int			rc;

	LedgerPlan(&plan_merge,
			   "UPDATE aura.points_lots SET amount = amount + $3, remaining = remaining + $3 "
			   "WHERE restaurant_id = $1 AND id = (SELECT id FROM aura.points_lots "
			   " WHERE restaurant_id = $1 AND customer_id = $2 AND remaining > 0 "
			   " AND expires_at IS NOT DISTINCT FROM $4 AND available_at = $5 ORDER BY id LIMIT 1)",
			   5, types);
	values[0] = Int64GetDatum(acc->restaurant_id);
	values[1] = Int64GetDatum(acc->customer_id);
	values[2] = Int64GetDatum(c->amount);
	values[3] = TimestampTzGetDatum(c->expires_at);
	if (!c->has_expiry)
		nulls[3] = 'n';
	values[4] = TimestampTzGetDatum(c->available_at);
	rc = SPI_execute_plan(plan_merge, values, nulls, false, 0);
	if (rc != SPI_OK_UPDATE)
		elog(ERROR, "aura: lot merge failed: %s", SPI_result_code_string(rc));
	return SPI_processed == 1;
}

/* the pending points of an account: open lots not yet available */
static int64
PendingOf(Account *acc)
{
	static const Oid types[2] = {INT8OID, INT8OID};
	Datum		values[2];
	int			rc;

	LedgerPlan(&plan_pending,
			   "SELECT coalesce(sum(remaining), 0)::bigint FROM aura.points_lots "
			   "WHERE restaurant_id = $1 AND customer_id = $2 AND remaining > 0 AND available_at > now()",
			   2, types);
	values[0] = Int64GetDatum(acc->restaurant_id);
	values[1] = Int64GetDatum(acc->customer_id);
	rc = SPI_execute_plan(plan_pending, values, NULL, false, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "aura: pending sum failed");
	return GetInt64(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, NULL);
}

static void
PointsOverflow(const char *what, int64 a, int64 b)
{
	ereport(ERROR,
			(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
			 errmsg("points out of range"),
			 errdetail("%s " INT64_FORMAT " plus " INT64_FORMAT " exceeds the bigint range.", what, a, b)));
}

/* insert the ledger row (direct insert, see ledger_heap.c); returns its id */
static int64
InsertTransaction(LedgerPosting *p, Account *acc, int64 points, int64 before,
				  bool has_expiry, TimestampTz expires_at, bool has_available,
				  TimestampTz available_at)
{
	static const char *const names[17] = {"restaurant_id", "customer_id", "kind", "points",
		"balance_before", "balance_after", "source", "reference", "idempotency_key", "reason",
		"counterparty", "expires_at", "available_at", "actor_role", "actor_user", "amount",
	"created_at"};
	static Oid	actor_oid = InvalidOid;
	static char actor[NAMEDATALEN];
	Datum		values[17];
	bool		nulls[17];
	int64		user;

	memset(nulls, 0, sizeof(nulls));
	if (GetOuterUserId() != actor_oid)
	{
		strlcpy(actor, GetUserNameFromId(GetOuterUserId(), false), NAMEDATALEN);
		actor_oid = GetOuterUserId();
	}
	values[0] = Int64GetDatum(p->restaurant_id);
	values[1] = Int64GetDatum(p->customer_id);
	values[2] = CStringGetTextDatum(LedgerKindName(p->kind));
	values[3] = Int64GetDatum(points);
	values[4] = Int64GetDatum(before);
	values[5] = Int64GetDatum(before + points);
	values[6] = CStringGetTextDatum(p->source);
	nulls[7] = p->reference == NULL;
	values[7] = nulls[7] ? (Datum) 0 : CStringGetTextDatum(p->reference);
	nulls[8] = p->idempotency_key == NULL;
	values[8] = nulls[8] ? (Datum) 0 : CStringGetTextDatum(p->idempotency_key);
	nulls[9] = p->reason == NULL;
	values[9] = nulls[9] ? (Datum) 0 : CStringGetTextDatum(p->reason);
	values[10] = Int64GetDatum(p->counterparty);
	nulls[10] = !p->has_counterparty;
	values[11] = TimestampTzGetDatum(expires_at);
	nulls[11] = !has_expiry;
	values[12] = TimestampTzGetDatum(available_at);
	nulls[12] = !has_available;
	values[13] = CStringGetTextDatum(actor);
	nulls[14] = !AuraCurrentUser(&user);
	values[14] = Int64GetDatum(user);
	/* money of the row, as numeric(14,2) would store it */
	nulls[15] = p->amount == NULL;
	values[15] = nulls[15] ? (Datum) 0 :
		DirectFunctionCall2(numeric, NumericGetDatum(p->amount), Int32GetDatum(((14 << 16) | 2) + VARHDRSZ));
	values[16] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	return LedgerHeapInsert("points_transactions", 17, names, values, nulls);
}

/*
 * UpdateAccount
 *		Write the account's figures back to the row locked by LockAccount
 *		(direct update, see ledger_heap.c; the figures were checked here).
 */
static void
UpdateAccount(Account *acc)
{
	static const char *const names[8] = {"balance", "pending", "lifetime_earned",
	"lifetime_spent", "lifetime_spend_amount", "order_count", "tier", "tier_since"};
	Datum		values[8];
	bool		nulls[8];

	memset(nulls, 0, sizeof(nulls));
	if (acc->pending < 0 || acc->lifetime_earned < 0 || acc->lifetime_spent < 0)
		elog(ERROR, "aura: account figures out of range");
	values[0] = Int64GetDatum(acc->balance);
	values[1] = Int64GetDatum(acc->pending);
	values[2] = Int64GetDatum(acc->lifetime_earned);
	values[3] = Int64GetDatum(acc->lifetime_spent);
	values[4] = DirectFunctionCall2(numeric, NumericGetDatum(acc->spend_amount),
									Int32GetDatum(((14 << 16) | 2) + VARHDRSZ));
	values[5] = Int64GetDatum(acc->order_count);
	values[6] = CStringGetTextDatum(acc->tier);
	nulls[6] = !acc->has_tier;
	values[7] = TimestampTzGetDatum(acc->tier_since);
	nulls[7] = acc->tier_since == 0;
	/* the row may have been changed by this transaction since it was read */
	CommandCounterIncrement();
	LedgerHeapUpdate("loyalty_accounts", &acc->tid, 8, names, values, nulls);
}

/*
 * RecalculateTier
 *		Upgrade at once when the account qualifies for a higher tier.
 *		Downgrades happen only in aura.review_tiers.
 */
static void
RecalculateTier(Account *acc)
{
	const TierSet *set = TiersGet(acc->restaurant_id);
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	int			cur,
				q;

	if (set->ntiers == 0)
		return;
	cur = acc->has_tier ? TiersFind(set, acc->tier) : -1;
	q = TiersQualify(set, acc->lifetime_earned, acc->spend_amount, acc->order_count,
					 acc->enrolled_at, now);
	if (q > cur)
	{
		char		old[TIER_NAME_MAX];
		bool		had = acc->has_tier;

		strlcpy(old, acc->tier, TIER_NAME_MAX);
		strlcpy(acc->tier, set->tiers[q].name, TIER_NAME_MAX);
		acc->has_tier = true;
		acc->tier_since = now;
		TiersRecordChange(acc->restaurant_id, acc->customer_id, had ? old : NULL,
						  acc->tier, "upgrade");
	}
}

static void
CheckStatus(Account *acc, LedgerPosting *p)
{
	if (strcmp(acc->status, "active") == 0)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("loyalty account of customer " INT64_FORMAT " is %s", acc->customer_id, acc->status),
			 errdetail("No %s can be posted to a %s account.", LedgerKindName(p->kind), acc->status),
			 errhint("A manager can reactivate it: UPDATE aura.loyalty_accounts SET status = 'active'.")));
}

static void
AddNumeric(Numeric *acc, Numeric delta)
{
	*acc = DatumGetNumeric(DirectFunctionCall2(numeric_add, NumericGetDatum(*acc),
											   NumericGetDatum(delta)));
}

/*
 * ApplyLocked
 *		The posting proper, on an account locked by the caller.  Credits
 *		create a lot (its remaining first pays a negative balance back);
 *		debits consume lots.  consumed/credit_lots connect the two halves
 *		of a transfer.  Returns the transaction id.
 */
static int64
ApplyLocked(LedgerPosting *p, Account *acc, List **consumed, List *credit_lots)
{
	const LedgerConfig *cfg = p->cfg ? p->cfg : LedgerConfigGet(p->restaurant_id);
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	int64		before = acc->balance;
	int64		points = p->points;
	int64		after;
	int64		txid;
	bool		has_expiry = false;
	TimestampTz expires_at = 0;
	TimestampTz available_at = now;
	bool		new_lot = false;

	if (p->earn_base)
	{
		const TierSet *set = TiersGet(acc->restaurant_id);
		int			t = acc->has_tier ? TiersFind(set, acc->tier) : -1;
		Numeric		x = p->earn_base;

		Numeric		campaigns;
		char	   *applied;

		if (t >= 0)
			x = DatumGetNumeric(DirectFunctionCall2(numeric_mul, NumericGetDatum(x),
													NumericGetDatum(set->tiers[t].multiplier)));
		/* active multiplier campaigns for the account's tier (before this posting) */
		campaigns = MultipliersFactor(acc->restaurant_id, acc->has_tier ? acc->tier : NULL, now, &applied);
		if (campaigns)
		{
			x = DatumGetNumeric(DirectFunctionCall2(numeric_mul, NumericGetDatum(x),
													NumericGetDatum(campaigns)));
			if (p->reason == NULL)
				p->reason = applied;
		}
		x = DatumGetNumeric(DirectFunctionCall1(numeric_floor, NumericGetDatum(x)));
		if (DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(x),
											  NumericGetDatum(int64_to_numeric(0)))) < 0)
			x = int64_to_numeric(0);
		points = DatumGetInt64(DirectFunctionCall1(numeric_int8, NumericGetDatum(x)));
		p->points = points;
	}
	p->out_orders_before = acc->order_count;
	p->out_spend_before = acc->spend_amount;

	if (points > 0)
	{
		if (pg_add_s64_overflow(before, points, &after))
			PointsOverflow("balance", before, points);
		if (p->kind != LK_TRANSFER_IN)
		{
			int64		dummy;

			if (pg_add_s64_overflow(acc->lifetime_earned, points, &dummy))
				PointsOverflow("lifetime points", acc->lifetime_earned, points);
			acc->lifetime_earned = dummy;
		}
		if (p->kind != LK_TRANSFER_IN)
		{
			new_lot = true;
			if (cfg->points_expiry_days > 0)
			{
				has_expiry = true;
				expires_at = now + (TimestampTz) cfg->points_expiry_days * USECS_PER_DAY;
			}
			if (p->kind == LK_EARN && cfg->pending_days > 0)
				available_at = now + (TimestampTz) cfg->pending_days * USECS_PER_DAY;
		}
	}
	else if (points < 0)
	{
		int64		want;
		int64		available = 0;
		int64		taken;
		bool		available_only = (p->kind == LK_REDEEM || p->kind == LK_TRANSFER_OUT);

		if (points == PG_INT64_MIN)
			PointsOverflow("balance", before, points);
		want = -points;
		if (available_only)
		{
			taken = DebitLots(acc, want, true, 0, consumed, &available);
			if (taken < want)
				ereport(ERROR,
						(errcode(ERRCODE_CHECK_VIOLATION),
						 errmsg("insufficient points"),
						 errdetail("Customer " INT64_FORMAT " has " INT64_FORMAT " points available "
								   "(balance " INT64_FORMAT ", " INT64_FORMAT " pending); "
								   INT64_FORMAT " requested.",
								   acc->customer_id, available, acc->balance,
								   acc->balance > available ? acc->balance - available : 0, want)));
		}
		else
		{
			if (!cfg->allow_negative_balance && before < want)
			{
				if (p->clamp_debit)
				{
					if (p->reason == NULL)
						p->reason = psprintf("only " INT64_FORMAT " of " INT64_FORMAT " points were left to take back",
											 before > 0 ? before : 0, want);
					want = before > 0 ? before : 0;
					points = -want;
				}
				else
					ereport(ERROR,
							(errcode(ERRCODE_CHECK_VIOLATION),
							 errmsg("insufficient points"),
							 errdetail("Customer " INT64_FORMAT " has a balance of " INT64_FORMAT
									   "; taking " INT64_FORMAT " (%s) would make it negative.",
									   acc->customer_id, before, want, LedgerKindName(p->kind)),
							 errhint("Negative balances need the setting loyalty.allow_negative_balance.")));
			}
			if (pg_sub_s64_overflow(before, want, &after))
				PointsOverflow("balance", before, points);
			(void) DebitLots(acc, want, false, p->prefer_lot_tx, consumed, NULL);
		}
		if (p->kind == LK_REDEEM)
		{
			if (pg_add_s64_overflow(acc->lifetime_spent, want, &acc->lifetime_spent))
				PointsOverflow("lifetime spent", acc->lifetime_spent, want);
		}
		else if (p->kind == LK_REVERSAL)
			acc->lifetime_earned = acc->lifetime_earned > want ? acc->lifetime_earned - want : 0;
	}
	after = before + points;

	txid = InsertTransaction(p, acc, points, before, has_expiry, expires_at,
							 points > 0 && p->kind != LK_TRANSFER_IN, available_at);

	if (new_lot)
	{
		/* a negative balance is paid back first */
		int64		open = after > 0 ? Min(points, after) : 0;

		InsertLot(acc, txid, points, open, has_expiry, expires_at, available_at);
	}
	else if (points > 0)
	{
		/* transfer_in: mirror the lots the sender gave up */
		ListCell   *lc;

		foreach(lc, credit_lots)
		{
			ConsumedLot *c = lfirst(lc);

			if (!MergeIntoLot(acc, c))
				InsertLot(acc, txid, c->amount, c->amount, c->has_expiry, c->expires_at,
						  c->available_at);
		}
	}

	acc->balance = after;
	if (p->spend_delta)
	{
		/* as numeric(14,2) stores it, so later postings see what is stored */
		AddNumeric(&acc->spend_amount, p->spend_delta);
		acc->spend_amount = DatumGetNumeric(DirectFunctionCall2(numeric, NumericGetDatum(acc->spend_amount),
																Int32GetDatum(((14 << 16) | 2) + VARHDRSZ)));
	}
	acc->order_count += p->order_delta;
	if (acc->pending > 0 || available_at > now)
		acc->pending = PendingOf(acc);
	RecalculateTier(acc);
	if (!p->defer_account)
		UpdateAccount(acc);
	p->out_points = points;
	p->out_orders_after = acc->order_count;
	p->out_spend_after = acc->spend_amount;
	return txid;
}

/*
 * AfterPosting
 *		Events of a posting for other modules: points.earned for an earning,
 *		when a consumer of the restaurant wants it.
 */
static void
AfterPosting(LedgerPosting *p, int64 txid)
{
	StringInfoData js;

	if (p->kind != LK_EARN || p->out_points <= 0 ||
		!(LedgerEventDemand(p->restaurant_id) & LEDGER_EV_POINTS_EARNED))
		return;
	initStringInfo(&js);
	appendStringInfo(&js, "{\"customer_id\": " INT64_FORMAT ", \"points\": " INT64_FORMAT
					 ", \"transaction_id\": " INT64_FORMAT ", \"source\": \"%s\", \"reference\": ",
					 p->customer_id, p->out_points, txid, p->source);
	if (p->reference)
		escape_json(&js, p->reference);
	else
		appendStringInfoString(&js, "null");
	appendStringInfoChar(&js, '}');
	LedgerRecordEvent(p->restaurant_id, "points.earned", js.data);
}

/*
 * LedgerPost
 *		Post one entry: key lock and lookup, account lock, then the posting.
 *		*posted is false when an earlier transaction with the same key is
 *		returned (or an inactive account was skipped).
 */
int64
LedgerPost(LedgerPosting *p, bool *posted)
{
	Account		acc;
	int64		txid;

	if (posted)
		*posted = false;
	if (!LockAccount(&acc, p->restaurant_id, p->customer_id, p->create_account))
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("customer " INT64_FORMAT " has no loyalty account in restaurant " INT64_FORMAT,
						p->customer_id, p->restaurant_id),
				 errhint("Accounts are created by their first earning.")));
	if (p->idempotency_key && KeyLookup(p, &txid))
		return txid;
	if (p->skip_inactive && strcmp(acc.status, "active") != 0)
		return 0;
	CheckStatus(&acc, p);
	txid = ApplyLocked(p, &acc, NULL, NULL);
	AfterPosting(p, txid);
	if (posted)
		*posted = true;
	return txid;
}

/* ---------------------------------------------------------------------------
 * Batches (see ledger.h)
 * ---------------------------------------------------------------------------
 */
typedef struct BatchAccountKey
{
	int64		restaurant_id;
	int64		customer_id;
} BatchAccountKey;

typedef struct BatchAccount
{
	BatchAccountKey key;		/* hash key */
	bool		exists;
	bool		dirty;
	Account		acc;
} BatchAccount;

struct LedgerBatch
{
	MemoryContext cxt;
	HTAB	   *accounts;
	List	   *order;			/* BatchAccount *, in locking order */
	Relation	tx_rel;			/* for key probes: table, index, scan, slot */
	Relation	key_idx;
	IndexScanDesc key_scan;
	TupleTableSlot *key_slot;
	LedgerConfig *cfg;			/* settings of cfg->restaurant_id */
};

const LedgerConfig *
LedgerBatchConfig(LedgerBatch *b, int64 restaurant_id)
{
	const LedgerConfig *c;
	MemoryContext old;

	if (b->cfg && b->cfg->restaurant_id == restaurant_id)
		return b->cfg;
	c = LedgerConfigGet(restaurant_id);
	old = MemoryContextSwitchTo(b->cxt);
	if (b->cfg == NULL)
		b->cfg = palloc(sizeof(LedgerConfig));
	*b->cfg = *c;
	b->cfg->points_per_unit = DatumGetNumericCopy(NumericGetDatum(c->points_per_unit));
	b->cfg->point_value = DatumGetNumericCopy(NumericGetDatum(c->point_value));
	MemoryContextSwitchTo(old);
	return b->cfg;
}

LedgerBatch *
LedgerBatchBegin(void)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "aura ledger batch",
											  ALLOCSET_DEFAULT_SIZES);
	LedgerBatch *b = MemoryContextAllocZero(cxt, sizeof(LedgerBatch));
	HASHCTL		ctl;

	b->cxt = cxt;
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(BatchAccountKey);
	ctl.entrysize = sizeof(BatchAccount);
	ctl.hcxt = cxt;
	b->accounts = hash_create("aura batch accounts", 256, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	LedgerHeapBatch(true);
	return b;
}

/*
 * BatchKeyUsed
 *		Is the idempotency key used?  A probe of the unique index with
 *		SnapshotSelf, which sees committed rows and every row of this
 *		transaction, those of the current command (earlier postings of this
 *		batch) included; the caller holds the account lock, so a concurrent
 *		posting with the key on this account has finished.
 */
static bool
BatchKeyUsed(LedgerBatch *b, int64 restaurant_id, const char *key)
{
	ScanKeyData sk[2];
	IndexScanDesc scan;
	TupleTableSlot *slot;
	bool		found;

	if (b->tx_rel == NULL)
	{
		Oid			nsp = get_namespace_oid("aura", false);
		Oid			relid = get_relname_relid("points_transactions", nsp);
		Oid			idxid = get_relname_relid("points_transactions_idempotency_key", nsp);
		MemoryContext old;

		if (!OidIsValid(relid) || !OidIsValid(idxid))
			elog(ERROR, "aura: the idempotency key index of aura.points_transactions is missing");
		old = MemoryContextSwitchTo(b->cxt);
		b->tx_rel = table_open(relid, AccessShareLock);
		b->key_idx = index_open(idxid, AccessShareLock);
		b->key_scan = index_beginscan(b->tx_rel, b->key_idx, SnapshotSelf, 2, 0);
		b->key_slot = table_slot_create(b->tx_rel, NULL);
		MemoryContextSwitchTo(old);
	}
	scan = b->key_scan;
	slot = b->key_slot;
	ScanKeyInit(&sk[0], 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(restaurant_id));
	ScanKeyInit(&sk[1], 2, BTEqualStrategyNumber, F_TEXTEQ, CStringGetTextDatum(key));
	sk[1].sk_collation = b->key_idx->rd_indcollation[1];
	index_rescan(scan, sk, 2, NULL, 0);
	found = index_getnext_slot(scan, ForwardScanDirection, slot);
	ExecClearTuple(slot);
	return found;
}

/* the batch's entry of an account, locked (and created if asked) when new */
static BatchAccount *
BatchAccountGet(LedgerBatch *b, int64 restaurant_id, int64 customer_id, bool create)
{
	BatchAccountKey k;
	BatchAccount *ba;
	bool		found;

	k.restaurant_id = restaurant_id;
	k.customer_id = customer_id;
	ba = hash_search(b->accounts, &k, HASH_ENTER, &found);
	if (!found)
	{
		Account		acc;
		MemoryContext old;

		ba->exists = LockAccount(&acc, restaurant_id, customer_id, create);
		ba->dirty = false;
		old = MemoryContextSwitchTo(b->cxt);
		ba->acc = acc;
		if (ba->exists)
			ba->acc.spend_amount = DatumGetNumericCopy(NumericGetDatum(acc.spend_amount));
		b->order = lappend(b->order, ba);
		MemoryContextSwitchTo(old);
	}
	return ba;
}

/*
 * LedgerBatchLock
 *		Lock (creating it if missing) an account before the batch's postings
 *		come: callers lock every account of a statement in ascending
 *		(restaurant, customer) order first, the order transfers use too, so
 *		concurrent bulk inserts cannot deadlock on accounts.
 */
void
LedgerBatchLock(LedgerBatch *b, int64 restaurant_id, int64 customer_id)
{
	(void) BatchAccountGet(b, restaurant_id, customer_id, true);
}

/*
 * LedgerBatchPost
 *		LedgerPost within a batch.  Only for postings whose used key is
 *		answered without comparing arguments (key_exists_ok): the returned
 *		id is then 0 and *posted false.
 */
int64
LedgerBatchPost(LedgerBatch *b, LedgerPosting *p, bool *posted)
{
	BatchAccount *ba;
	int64		txid;
	Numeric		prev;

	if (!p->key_exists_ok)
		elog(ERROR, "aura: batch postings answer used keys without comparing");
	*posted = false;
	ba = BatchAccountGet(b, p->restaurant_id, p->customer_id, p->create_account);
	if (!ba->exists)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("customer " INT64_FORMAT " has no loyalty account in restaurant " INT64_FORMAT,
						p->customer_id, p->restaurant_id),
				 errhint("Accounts are created by their first earning.")));
	if (p->idempotency_key)
	{
		if (strlen(p->idempotency_key) > KEY_MAX)
			elog(ERROR, "aura: idempotency key too long");
		if (BatchKeyUsed(b, p->restaurant_id, p->idempotency_key))
			return 0;
	}
	if (p->skip_inactive && strcmp(ba->acc.status, "active") != 0)
		return 0;
	CheckStatus(&ba->acc, p);
	p->defer_account = true;
	prev = ba->acc.spend_amount;
	txid = ApplyLocked(p, &ba->acc, NULL, NULL);
	ba->dirty = true;
	/* the account outlives the caller's per-row memory */
	if (ba->acc.spend_amount != prev)
	{
		MemoryContext old = MemoryContextSwitchTo(b->cxt);

		ba->acc.spend_amount = DatumGetNumericCopy(NumericGetDatum(ba->acc.spend_amount));
		pfree(prev);
		MemoryContextSwitchTo(old);
	}
	AfterPosting(p, txid);
	*posted = true;
	return txid;
}

/*
 * LedgerBatchEnd
 *		Write every account the batch changed, in locking order.
 */
void
LedgerBatchEnd(LedgerBatch *b)
{
	ListCell   *lc;

	foreach(lc, b->order)
	{
		BatchAccount *ba = lfirst(lc);

		if (ba->dirty)
			UpdateAccount(&ba->acc);
	}
	LedgerHeapBatch(false);
	if (b->key_scan)
		index_endscan(b->key_scan);
	if (b->key_slot)
		ExecDropSingleTupleTableSlot(b->key_slot);
	if (b->key_idx)
		index_close(b->key_idx, NoLock);
	if (b->tx_rel)
		table_close(b->tx_rel, NoLock);
	MemoryContextDelete(b->cxt);
}

/* ---------------------------------------------------------------------------
 * SQL entry points
 * ---------------------------------------------------------------------------
 */

static int64
ArgId(FunctionCallInfo fcinfo, int n, const char *name)
{
	int64		v;

	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL", name)));
	v = PG_GETARG_INT64(n);
	if (v <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a positive id", name),
				 errdetail("%s is " INT64_FORMAT ".", name, v)));
	return v;
}

static char *
ArgText(FunctionCallInfo fcinfo, int n, const char *name, int maxlen)
{
	char	   *s;

	if (PG_NARGS() <= n || PG_ARGISNULL(n))
		return NULL;
	s = text_to_cstring(PG_GETARG_TEXT_PP(n));
	if (s[0] == '\0' || strlen(s) > (size_t) maxlen)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be 1 to %d characters long", name, maxlen),
				 errdetail("It has %zu.", strlen(s))));
	return s;
}

static int64
ArgPoints(FunctionCallInfo fcinfo, int n, bool nonzero_only)
{
	int64		v;

	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("points must not be NULL")));
	v = PG_GETARG_INT64(n);
	if (nonzero_only ? v == 0 : v <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg(nonzero_only ? "points must not be zero" : "points must be positive"),
				 errdetail("points is " INT64_FORMAT ".", v)));
	if (v == PG_INT64_MIN)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("points out of range")));
	return v;
}

/* the common body of earn/spend/adjust */
static Datum
PostFromSql(FunctionCallInfo fcinfo, LedgerKind kind)
{
	LedgerPosting p;
	int64		txid;

	memset(&p, 0, sizeof(p));
	p.restaurant_id = ArgId(fcinfo, 0, "restaurant_id");
	p.customer_id = ArgId(fcinfo, 1, "customer_id");
	p.points = ArgPoints(fcinfo, 2, kind == LK_ADJUST);
	p.reference = ArgText(fcinfo, 3, "reference", TEXT_MAX);
	p.idempotency_key = ArgText(fcinfo, 4, "idempotency_key", KEY_MAX);
	p.reason = ArgText(fcinfo, 5, "reason", REASON_MAX);
	if (kind == LK_REDEEM)
		p.points = -p.points;
	p.kind = kind;
	p.source = kind == LK_ADJUST ? "manual" : "api";
	p.create_account = kind != LK_REDEEM;
	LedgerCheckTenant(p.restaurant_id);

	SPI_connect();
	txid = LedgerPost(&p, NULL);
	SPI_finish();
	PG_RETURN_INT64(txid);
}

PG_FUNCTION_INFO_V1(aura_earn_points);
PG_FUNCTION_INFO_V1(aura_spend_points);
PG_FUNCTION_INFO_V1(aura_adjust_points);
PG_FUNCTION_INFO_V1(aura_transfer_points);
PG_FUNCTION_INFO_V1(aura_ledger_append_only);
PG_FUNCTION_INFO_V1(aura_ledger_check_tenant);
PG_FUNCTION_INFO_V1(aura_ledger_allow_negative);
PG_FUNCTION_INFO_V1(aura_expire_points);
PG_FUNCTION_INFO_V1(aura_post_points);
PG_FUNCTION_INFO_V1(aura_ledger_birthday_points);

/* aura.earn_points(restaurant_id, customer_id, points, reference, idempotency_key, reason) */
Datum
aura_earn_points(PG_FUNCTION_ARGS)
{
	return PostFromSql(fcinfo, LK_EARN);
}

/* aura.spend_points(...): a redeem row, available points only */
Datum
aura_spend_points(PG_FUNCTION_ARGS)
{
	return PostFromSql(fcinfo, LK_REDEEM);
}

/* aura.adjust_points(...): a manual correction, positive or negative */
Datum
aura_adjust_points(PG_FUNCTION_ARGS)
{
	return PostFromSql(fcinfo, LK_ADJUST);
}

/*
 * aura.transfer_points(restaurant_id, from_customer, to_customer, points,
 *						idempotency_key)
 *		Two rows, transfer_out and transfer_in, in one transaction; the
 *		accounts are locked in ascending customer id, so opposite transfers
 *		cannot deadlock.  The receiver gets the sender's lots with their
 *		expiry.  Returns the transfer_out id.
 */
Datum
aura_transfer_points(PG_FUNCTION_ARGS)
{
	LedgerPosting out,
				in;
	Account		a_from,
				a_to;
	int64		txid;
	List	   *consumed = NIL;
	bool		found;

	memset(&out, 0, sizeof(out));
	out.restaurant_id = ArgId(fcinfo, 0, "restaurant_id");
	out.customer_id = ArgId(fcinfo, 1, "from_customer");
	out.counterparty = ArgId(fcinfo, 2, "to_customer");
	out.has_counterparty = true;
	out.points = -ArgPoints(fcinfo, 3, false);
	out.idempotency_key = ArgText(fcinfo, 4, "idempotency_key", KEY_MAX);
	out.kind = LK_TRANSFER_OUT;
	out.source = "api";
	if (out.customer_id == out.counterparty)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot transfer points to the same customer"),
				 errdetail("from_customer and to_customer are both " INT64_FORMAT ".", out.customer_id)));
	LedgerCheckTenant(out.restaurant_id);

	in = out;
	in.customer_id = out.counterparty;
	in.counterparty = out.customer_id;
	in.points = -out.points;
	in.kind = LK_TRANSFER_IN;
	in.idempotency_key = NULL;

	SPI_connect();
	/* fixed order: the smaller customer id first */
	if (out.customer_id < in.customer_id)
	{
		found = LockAccount(&a_from, out.restaurant_id, out.customer_id, false);
		(void) LockAccount(&a_to, out.restaurant_id, in.customer_id, true);
	}
	else
	{
		(void) LockAccount(&a_to, out.restaurant_id, in.customer_id, true);
		found = LockAccount(&a_from, out.restaurant_id, out.customer_id, false);
	}
	if (!found)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("customer " INT64_FORMAT " has no loyalty account in restaurant " INT64_FORMAT,
						out.customer_id, out.restaurant_id)));
	if (out.idempotency_key && KeyLookup(&out, &txid))
	{
		SPI_finish();
		PG_RETURN_INT64(txid);
	}
	CheckStatus(&a_from, &out);
	CheckStatus(&a_to, &in);
	txid = ApplyLocked(&out, &a_from, &consumed, NIL);
	in.reference = psprintf("transfer:" INT64_FORMAT, txid);
	(void) ApplyLocked(&in, &a_to, NULL, consumed);
	SPI_finish();
	PG_RETURN_INT64(txid);
}

/*
 * aura_ledger_append_only
 *		Trigger of aura.points_transactions: rows are never changed or
 *		removed, and the table is never truncated.
 */
Datum
aura_ledger_append_only(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	const char *op = "change";

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "aura_ledger_append_only: not called as a trigger");
	if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
		op = "UPDATE";
	else if (TRIGGER_FIRED_BY_DELETE(td->tg_event))
		op = "DELETE";
	else if (TRIGGER_FIRED_BY_TRUNCATE(td->tg_event))
		op = "TRUNCATE";
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("the points ledger is append-only: %s is not allowed", op),
			 errdetail("Table %s keeps every posting forever.", RelationGetRelationName(td->tg_relation)),
			 errhint("Post a correcting transaction with aura.adjust_points.")));
	return PointerGetDatum(NULL);
}

/*
 * ExpireAccount
 *		Lock one account and post an expire row per lot of it that expired
 *		by as_of; returns the number of lots expired.  Lots already at zero
 *		(an earlier run) are not seen again, so re-running changes nothing.
 */
static int64
ExpireAccount(int64 restaurant_id, int64 customer_id, TimestampTz as_of)
{
	static SPIPlanPtr plan_expired;
	static const Oid types[3] = {INT8OID, INT8OID, TIMESTAMPTZOID};
	static const Oid utypes[3] = {INT8OID, INT8OID, INT8OID};
	Account		acc;
	Datum		values[3];
	SPITupleTable *tt;
	uint64		n,
				i;
	int			rc;

	if (!LockAccount(&acc, restaurant_id, customer_id, false))
		return 0;
	LedgerPlan(&plan_expired,
			   "SELECT id, remaining FROM aura.points_lots WHERE restaurant_id = $1 AND customer_id = $2 "
			   "AND remaining > 0 AND expires_at <= $3 ORDER BY expires_at, id", 3, types);
	values[0] = Int64GetDatum(restaurant_id);
	values[1] = Int64GetDatum(customer_id);
	values[2] = TimestampTzGetDatum(as_of);
	rc = SPI_execute_plan(plan_expired, values, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "aura: expired lot scan failed");
	tt = SPI_tuptable;
	n = SPI_processed;
	for (i = 0; i < n; i++)
	{
		LedgerPosting p;
		bool		isnull;
		int64		lot = DatumGetInt64(SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull));
		int64		remaining = DatumGetInt64(SPI_getbinval(tt->vals[i], tt->tupdesc, 2, &isnull));

		memset(&p, 0, sizeof(p));
		p.restaurant_id = restaurant_id;
		p.customer_id = customer_id;
		p.kind = LK_EXPIRE;
		p.source = "system";
		p.reference = psprintf("lot:" INT64_FORMAT, lot);
		(void) InsertTransaction(&p, &acc, -remaining, acc.balance, false, 0, false, 0);
		acc.balance -= remaining;
		LedgerPlan(&plan_lot_update,
				   "UPDATE aura.points_lots SET remaining = remaining - $3 "
				   "WHERE restaurant_id = $1 AND id = $2", 3, utypes);
		values[0] = Int64GetDatum(restaurant_id);
		values[1] = Int64GetDatum(lot);
		values[2] = Int64GetDatum(remaining);
		rc = SPI_execute_plan(plan_lot_update, values, NULL, false, 0);
		if (rc != SPI_OK_UPDATE || SPI_processed != 1)
			elog(ERROR, "aura: lot update failed");
	}
	if (n > 0)
	{
		if (acc.pending > 0)
			acc.pending = PendingOf(&acc);
		UpdateAccount(&acc);
	}
	return (int64) n;
}

/*
 * aura.expire_points(as_of timestamptz, batch int) → bigint
 *		Expire up to batch lots whose expiry is due by as_of, one expire
 *		row per lot remainder; returns how many were expired (call again
 *		until 0).  Accounts are locked in (restaurant, customer) order.
 *		Scope: the restaurant in context, or every restaurant for aura_admin
 *		without context.
 */
Datum
aura_expire_points(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan_due;
	static const Oid types[3] = {TIMESTAMPTZOID, INT8OID, INT4OID};
	TimestampTz as_of = PG_ARGISNULL(0) ? GetCurrentTransactionStartTimestamp() : PG_GETARG_TIMESTAMPTZ(0);
	int32		batch = PG_ARGISNULL(1) ? 10000 : PG_GETARG_INT32(1);
	int64		ctx;
	int64		total = 0;
	Datum		values[3];
	uint64		n,
				i;
	int64	   *rs,
			   *cs;
	int			rc;

	if (batch < 1 || batch > 1000000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch must be between 1 and 1000000"),
				 errdetail("batch is %d.", batch)));
	if (AuraCurrentRestaurant(&ctx))
		LedgerCheckTenant(ctx);
	else
	{
		ctx = 0;
		LedgerCheckTenant(0);	/* without context only an administrator passes */
	}

	SPI_connect();
	LedgerPlan(&plan_due,
			   "SELECT restaurant_id, customer_id, count(*) FROM ("
			   " SELECT restaurant_id, customer_id FROM aura.points_lots "
			   " WHERE remaining > 0 AND expires_at <= $1 AND ($2 = 0 OR restaurant_id = $2) "
			   " ORDER BY expires_at LIMIT $3) d "
			   "GROUP BY 1, 2 ORDER BY 1, 2", 3, types);
	values[0] = TimestampTzGetDatum(as_of);
	values[1] = Int64GetDatum(ctx);
	values[2] = Int32GetDatum(batch);
	rc = SPI_execute_plan(plan_due, values, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "aura: due lot scan failed");
	n = SPI_processed;
	rs = palloc(sizeof(int64) * (n + 1));
	cs = palloc(sizeof(int64) * (n + 1));
	for (i = 0; i < n; i++)
	{
		bool		isnull;

		rs[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		cs[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
	}
	for (i = 0; i < n; i++)
		total += ExpireAccount(rs[i], cs[i], as_of);
	SPI_finish();
	PG_RETURN_INT64(total);
}

/*
 * aura._post_points(restaurant_id, customer_id, kind, points, source,
 *					 reference, idempotency_key, reason) → bigint
 *		Internal door to the posting engine for aura's own SQL functions
 *		(migration imports, birthday bonuses); not granted to anyone.
 */
Datum
aura_post_points(PG_FUNCTION_ARGS)
{
	LedgerPosting p;
	char	   *kind;
	char	   *source;
	int64		txid;

	memset(&p, 0, sizeof(p));
	p.restaurant_id = ArgId(fcinfo, 0, "restaurant_id");
	p.customer_id = ArgId(fcinfo, 1, "customer_id");
	if (PG_ARGISNULL(2) || PG_ARGISNULL(4))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("kind and source must not be NULL")));
	kind = text_to_cstring(PG_GETARG_TEXT_PP(2));
	if (strcmp(kind, "migration") == 0)
		p.kind = LK_MIGRATION;
	else if (strcmp(kind, "bonus") == 0)
		p.kind = LK_BONUS;
	else if (strcmp(kind, "reversal") == 0)
		p.kind = LK_REVERSAL;
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("aura._post_points posts migration, bonus or reversal rows, not \"%s\"", kind)));
	p.points = ArgPoints(fcinfo, 3, false);
	/* a reversal takes back what was credited: the points given are removed */
	if (p.kind == LK_REVERSAL)
		p.points = -p.points;
	source = text_to_cstring(PG_GETARG_TEXT_PP(4));
	p.source = source;
	p.reference = ArgText(fcinfo, 5, "reference", TEXT_MAX);
	p.idempotency_key = ArgText(fcinfo, 6, "idempotency_key", KEY_MAX);
	p.reason = ArgText(fcinfo, 7, "reason", REASON_MAX);
	p.create_account = true;
	LedgerCheckTenant(p.restaurant_id);
	SPI_connect();
	txid = LedgerPost(&p, NULL);
	SPI_finish();
	PG_RETURN_INT64(txid);
}

/* aura._ledger_birthday_points(restaurant_id): loyalty.birthday_points */
Datum
aura_ledger_birthday_points(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(LedgerConfigGet(ArgId(fcinfo, 0, "restaurant_id"))->birthday_points);
}

/* aura._ledger_check_tenant(restaurant_id) for SQL-language functions */
Datum
aura_ledger_check_tenant(PG_FUNCTION_ARGS)
{
	/* 0: every restaurant, which only an administrator may touch */
	if (!PG_ARGISNULL(0) && PG_GETARG_INT64(0) == 0)
		LedgerCheckTenant(0);
	else
		LedgerCheckTenant(ArgId(fcinfo, 0, "restaurant_id"));
	PG_RETURN_VOID();
}

/* aura._ledger_allow_negative(restaurant_id): loyalty.allow_negative_balance */
Datum
aura_ledger_allow_negative(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(LedgerConfigGet(ArgId(fcinfo, 0, "restaurant_id"))->allow_negative_balance);
}
