/*
 * ledger.h
 *	  The points ledger: posting engine shared by the SQL functions (ledger.c),
 *	  the tiers (tiers.c) and the order trigger (orders.c).
 */
#ifndef AURA_LEDGER_H
#define AURA_LEDGER_H

#include "postgres.h"

#include "executor/spi.h"
#include "storage/itemptr.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

typedef enum LedgerKind
{
	LK_EARN,
	LK_REDEEM,
	LK_ADJUST,
	LK_TRANSFER_OUT,
	LK_TRANSFER_IN,
	LK_EXPIRE,
	LK_REVERSAL,
	LK_BONUS,
	LK_MIGRATION
} LedgerKind;

/* one posting on one account; points is the signed change of the balance */
typedef struct LedgerPosting
{
	int64		restaurant_id;
	int64		customer_id;
	LedgerKind	kind;
	int64		points;
	const char *source;			/* order, manual, api, import, campaign, reward, system */
	const char *reference;		/* NULL allowed */
	const char *idempotency_key;	/* NULL allowed */
	const char *reason;			/* NULL allowed */
	bool		has_counterparty;
	int64		counterparty;
	Numeric		amount;			/* money of the order (earn) or refund; NULL none */
	/* effects on the order figures of the account */
	Numeric		spend_delta;	/* added to lifetime_spend_amount; NULL none */
	int32		order_delta;	/* added to order_count */
	bool		key_exists_ok;	/* a used key returns its transaction, unchecked */
	bool		clamp_debit;	/* debit at most what the account holds */
	bool		allow_zero;		/* zero-point rows are recorded (orders) */
	bool		create_account; /* create the account on first use */
	bool		skip_inactive;	/* frozen/closed account: post nothing, return 0 */
	int64		prefer_lot_tx;	/* a debit takes this transaction's lot first */
	Numeric		earn_base;		/* earn: points = floor(earn_base x tier multiplier) */
	bool		defer_account;	/* internal (batches): the account row is written later */
	const struct LedgerConfig *cfg; /* the restaurant's settings if at hand, else NULL */
	/* filled by LedgerPost when it posted */
	int64		out_points;
	int64		out_orders_before;
	int64		out_orders_after;
	Numeric		out_spend_before;
	Numeric		out_spend_after;
} LedgerPosting;

/* SPI must be connected by the caller for all of these */
extern int64 LedgerPost(LedgerPosting *p, bool *posted);
extern bool LedgerLockAccount(int64 restaurant_id, int64 customer_id);
extern SPIPlanPtr LedgerPlan(SPIPlanPtr *slot, const char *sql, int nargs, const Oid *types);
extern void LedgerEmitEvent(int64 restaurant_id, const char *event_type, const char *json);

/*
 * Batches: postings of one statement (a bulk insert of orders).  Each
 * account is locked once (by LedgerBatchLock up front, in ascending order,
 * or else at its first posting) and written once, at LedgerBatchEnd;
 * idempotency keys are probed on the index directly.  Same rows, same
 * balances, same events as LedgerPost one by one.  SPI connected.
 */
typedef struct LedgerBatch LedgerBatch;
extern LedgerBatch *LedgerBatchBegin(void);
extern void LedgerBatchLock(LedgerBatch *b, int64 restaurant_id, int64 customer_id);
extern int64 LedgerBatchPost(LedgerBatch *b, LedgerPosting *p, bool *posted);
extern void LedgerBatchEnd(LedgerBatch *b);
/* the restaurant's settings, read once per batch */
extern const struct LedgerConfig *LedgerBatchConfig(LedgerBatch *b, int64 restaurant_id);

/* ledger_events.c: events for other modules, recorded when one wants them */
#define LEDGER_EV_ORDER_COMPLETED	0x01
#define LEDGER_EV_POINTS_EARNED		0x02
#define LEDGER_EV_BIRTHDAY			0x04
#define LEDGER_EV_ORDER_REVERSED	0x08
extern uint32 LedgerEventDemand(int64 restaurant_id);
extern void LedgerRecordEvent(int64 restaurant_id, const char *event_type, const char *json);

/* multipliers.c: points multiplier campaigns of order earnings */
extern Numeric MultipliersFactor(int64 restaurant_id, const char *tier, TimestampTz now,
								 char **applied);

/* raises 42501 unless the calling role may act for the restaurant */
extern void LedgerCheckTenant(int64 restaurant_id);

extern const char *LedgerKindName(LedgerKind kind);

/*
 * Relcache invalidation of the loyalty files' caches.  PostgreSQL allows a
 * backend only a few relcache callbacks (10 in all), so the loyalty module
 * registers one (LedgerInit) that calls each of these.
 */
extern void TiersInvalidate(Datum arg, Oid relid);
extern void MilestonesInvalidate(Datum arg, Oid relid);
extern void LedgerHeapInvalidate(Datum arg, Oid relid);
extern void LedgerEventsInvalidate(Datum arg, Oid relid);
extern void MultipliersInvalidate(Datum arg, Oid relid);
extern void LedgerHeapInit(void);
extern void LedgerHeapBatch(bool on);

/* ledger_heap.c: direct insert into aura.points_transactions / points_lots */
extern int64 LedgerHeapInsert(const char *table, int ncols, const char *const *names,
							  const Datum *values, const bool *nulls);
extern void LedgerHeapUpdate(const char *table, ItemPointer tid, int ncols,
							 const char *const *names, const Datum *values, const bool *nulls);

#endif							/* AURA_LEDGER_H */
