/*
 * ledger_heap.c
 *	  Direct inserts into aura's own ledger tables (points_transactions,
 *	  points_lots) and direct updates of locked account rows, without the
 *	  SQL executor.
 *
 * An INSERT through SPI starts an executor per row, and the executor
 * re-reads and plans the table's CHECK constraints every time: for the
 * order trigger this was most of the cost.  Rows written here are built by
 * ledger.c, which has already checked everything the constraints say
 * (kinds, sources, lengths, balance_after = balance_before + points,
 * remaining <= amount), so the row goes straight to the table and its
 * indexes (ExecInsertIndexTuples: unique keys are still enforced, partial
 * index predicates respected).  Nothing else is skipped: the tables have no
 * foreign keys, and aura's SECURITY DEFINER functions bypass row-level
 * security anyway.  Row triggers are never skipped: a write to a table that
 * has them goes through the executor (InsertThroughExecutor,
 * UpdateThroughExecutor) with a kept plan.
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/xact.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "storage/bufmgr.h"
#include "utils/snapmgr.h"
#include "access/tableam.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_trigger.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/syscache.h"
#include "utils/rel.h"
#include "nodes/makefuncs.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "ledger.h"

/* identity sequences of the tables, looked up once */
#define MAX_HEAP_COLS 32
typedef struct HeapTarget
{
	const char *name;
	Oid			relid;
	Oid			seqid;
	/* attribute index of each named column, for the last names array seen */
	const char *const *map_names;
	int			map_ncols;
	int			map[MAX_HEAP_COLS];
	int			id_att;
} HeapTarget;

static HeapTarget targets[] = {
	{"points_transactions", InvalidOid, InvalidOid, NULL, 0, {0}, 0},
	{"points_lots", InvalidOid, InvalidOid, NULL, 0, {0}, 0},
};

/* any relcache reset of one of the tables forgets the cached oids */
void
LedgerHeapInvalidate(Datum arg, Oid relid)
{
	int			i;

	for (i = 0; i < (int) lengthof(targets); i++)
		if (relid == InvalidOid || relid == targets[i].relid)
		{
			targets[i].relid = targets[i].seqid = InvalidOid;
			targets[i].map_names = NULL;
		}
}

/*
 * Batch mode (LedgerHeapBatch): the relation, its indexes and an executor
 * state stay open from one insert to the next, instead of being set up for
 * every row.  Memory in TopTransactionContext; the state is forgotten at
 * the end of the (sub)transaction, where resource owners close what an
 * error left open.
 */
typedef struct InsertState
{
	Oid			relid;
	Relation	rel;
	EState	   *estate;
	ResultRelInfo *rri;
	TupleTableSlot *slot;
} InsertState;

static bool batch_on = false;
static MemoryContext batch_cxt = NULL;
static InsertState batch_states[lengthof(targets)];

static void
BatchForget(void)
{
	batch_on = false;
	batch_cxt = NULL;
	memset(batch_states, 0, sizeof(batch_states));
}

static void
HeapXactCallback(XactEvent event, void *arg)
{
	BatchForget();
}

static void
HeapSubXactCallback(SubXactEvent event, SubTransactionId mySubid,
					SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
		BatchForget();
}

void
LedgerHeapInit(void)
{
	RegisterXactCallback(HeapXactCallback, NULL);
	RegisterSubXactCallback(HeapSubXactCallback, NULL);
}

/*
 * LedgerHeapBatch
 *		Start (true) or end (false) batch mode; ending closes what is open.
 */
void
LedgerHeapBatch(bool on)
{
	int			i;

	if (on)
	{
		if (batch_on)
			return;
		BatchForget();
		batch_cxt = AllocSetContextCreate(TopTransactionContext, "aura ledger batch inserts",
										  ALLOCSET_DEFAULT_SIZES);
		batch_on = true;
		return;
	}
	if (!batch_on)
		return;
	for (i = 0; i < (int) lengthof(targets); i++)
	{
		InsertState *st = &batch_states[i];

		if (st->rel == NULL)
			continue;
		ExecCloseIndices(st->rri);
		ExecResetTupleTable(st->estate->es_tupleTable, false);
		FreeExecutorState(st->estate);
		table_close(st->rel, NoLock);
	}
	MemoryContextDelete(batch_cxt);
	BatchForget();
}

/* the open insert state of a target in batch mode */
static InsertState *
BatchState(HeapTarget *t)
{
	InsertState *st = &batch_states[t - targets];
	MemoryContext old;

	if (st->rel != NULL && st->relid == t->relid)
		return st;
	if (st->rel != NULL)
		elog(ERROR, "aura: ledger table replaced during a batch");
	old = MemoryContextSwitchTo(batch_cxt);
	st->relid = t->relid;
	st->rel = table_open(t->relid, RowExclusiveLock);
	st->estate = CreateExecutorState();
	st->rri = makeNode(ResultRelInfo);
	InitResultRelInfo(st->rri, st->rel, 1, NULL, 0);
	ExecOpenIndices(st->rri, false);
	st->slot = ExecInitExtraTupleSlot(st->estate, RelationGetDescr(st->rel), &TTSOpsVirtual);
	MemoryContextSwitchTo(old);
	return st;
}

static HeapTarget *
Target(const char *name)
{
	int			i;

	for (i = 0; i < (int) lengthof(targets); i++)
	{
		HeapTarget *t = &targets[i];

		if (strcmp(t->name, name) != 0)
			continue;
		if (!OidIsValid(t->relid))
		{
			Oid			relid = get_relname_relid(name, get_namespace_oid("aura", false));

			if (!OidIsValid(relid))
				elog(ERROR, "aura: table aura.%s is missing", name);
			t->seqid = getIdentitySequence(relid, get_attnum(relid, "id"), false);
			t->relid = relid;
		}
		return t;
	}
	elog(ERROR, "aura: no direct insert into %s", name);
	return NULL;
}

/*
 * InsertThroughExecutor
 *		Insert the row built in slot with an SQL statement, for tables with
 *		row triggers on INSERT (e.g. the rewards module's reversal trigger on
 *		points_transactions): the executor fires them, which the direct path
 *		would skip.  One kept plan per table; the caller is connected to SPI.
 */
#define MAX_INSERT_PLANS 4
static void
InsertThroughExecutor(Relation rel, const char *table, TupleTableSlot *slot)
{
	static Oid	plan_relid[MAX_INSERT_PLANS];
	static SPIPlanPtr plans[MAX_INSERT_PLANS];
	TupleDesc	desc = RelationGetDescr(rel);
	Oid			relid = RelationGetRelid(rel);
	SPIPlanPtr	plan = NULL;
	Datum	   *args = palloc(sizeof(Datum) * desc->natts);
	char	   *argnulls = palloc(desc->natts + 1);
	int			nargs = 0;
	int			i;
	int			k;
	int			rc;

	for (k = 0; k < MAX_INSERT_PLANS && plans[k] != NULL; k++)
		if (plan_relid[k] == relid)
		{
			plan = plans[k];
			break;
		}
	if (plan == NULL)
	{
		StringInfoData sql;
		StringInfoData vals;
		Oid		   *types = palloc(sizeof(Oid) * desc->natts);

		if (k >= MAX_INSERT_PLANS)
			elog(ERROR, "aura: too many tables written through the executor");
		initStringInfo(&sql);
		initStringInfo(&vals);
		appendStringInfo(&sql, "INSERT INTO aura.%s (", quote_identifier(table));
		for (i = 0; i < desc->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, i);

			if (att->attisdropped)
				continue;
			types[nargs] = att->atttypid;
			appendStringInfo(&sql, "%s%s", nargs ? ", " : "", quote_identifier(NameStr(att->attname)));
			appendStringInfo(&vals, "%s$%d", nargs ? ", " : "", nargs + 1);
			nargs++;
		}
		appendStringInfo(&sql, ") OVERRIDING SYSTEM VALUE VALUES (%s)", vals.data);
		plan = SPI_prepare(sql.data, nargs, types);
		if (plan == NULL || SPI_keepplan(plan) != 0)
			elog(ERROR, "aura: could not prepare the insert into aura.%s", table);
		plans[k] = plan;
		plan_relid[k] = relid;
		nargs = 0;
	}
	for (i = 0; i < desc->natts; i++)
	{
		if (TupleDescAttr(desc, i)->attisdropped)
			continue;
		args[nargs] = slot->tts_values[i];
		argnulls[nargs] = slot->tts_isnull[i] ? 'n' : ' ';
		nargs++;
	}
	argnulls[nargs] = '\0';
	rc = SPI_execute_plan(plan, args, argnulls, false, 0);
	if (rc != SPI_OK_INSERT || SPI_processed != 1)
		elog(ERROR, "aura: insert into aura.%s failed", table);
}

/*
 * LedgerHeapInsert
 *		Insert one row into aura.<table>: ncols named columns with their
 *		values; the identity column id is drawn from its sequence and
 *		returned; columns not named get NULL (callers name every NOT NULL
 *		column).
 */
int64
LedgerHeapInsert(const char *table, int ncols, const char *const *names,
				 const Datum *values, const bool *nulls)
{
	HeapTarget *t = Target(table);
	InsertState local;
	InsertState *st;
	TupleDesc	desc;
	TupleTableSlot *slot;
	int64		id;
	int			i,
				natts;

	if (batch_on)
		st = BatchState(t);
	else
	{
		st = &local;
		st->rel = table_open(t->relid, RowExclusiveLock);
		st->estate = CreateExecutorState();
		st->rri = makeNode(ResultRelInfo);
		InitResultRelInfo(st->rri, st->rel, 1, NULL, 0);
		ExecOpenIndices(st->rri, false);
		st->slot = ExecInitExtraTupleSlot(st->estate, RelationGetDescr(st->rel), &TTSOpsVirtual);
	}
	desc = RelationGetDescr(st->rel);
	natts = desc->natts;
	id = nextval_internal(t->seqid, false);

	/* where each named column goes (kept for the caller's names array) */
	if (t->map_names != names || t->map_ncols != ncols)
	{
		if (ncols > MAX_HEAP_COLS)
			elog(ERROR, "aura: too many columns for aura.%s", table);
		t->map_names = NULL;
		t->id_att = -1;
		for (i = 0; i < ncols; i++)
		{
			int			a;

			t->map[i] = -1;
			for (a = 0; a < natts; a++)
			{
				Form_pg_attribute att = TupleDescAttr(desc, a);

				if (!att->attisdropped && strcmp(NameStr(att->attname), names[i]) == 0)
				{
					t->map[i] = a;
					break;
				}
			}
			if (t->map[i] < 0)
				elog(ERROR, "aura: column %s of aura.%s is missing", names[i], table);
		}
		for (i = 0; i < natts; i++)
			if (!TupleDescAttr(desc, i)->attisdropped &&
				strcmp(NameStr(TupleDescAttr(desc, i)->attname), "id") == 0)
				t->id_att = i;
		if (t->id_att < 0)
			elog(ERROR, "aura: column id of aura.%s is missing", table);
		t->map_names = names;
		t->map_ncols = ncols;
	}
	slot = st->slot;
	ExecClearTuple(slot);
	for (i = 0; i < natts; i++)
	{
		slot->tts_values[i] = (Datum) 0;
		slot->tts_isnull[i] = true;
	}
	for (i = 0; i < ncols; i++)
	{
		slot->tts_values[t->map[i]] = values[i];
		slot->tts_isnull[t->map[i]] = nulls[i];
	}
	/* the identity column */
	slot->tts_values[t->id_att] = Int64GetDatum(id);
	slot->tts_isnull[t->id_att] = false;
	/* NOT NULL columns must have a value */
	for (i = 0; i < natts; i++)
		if (TupleDescAttr(desc, i)->attnotnull && slot->tts_isnull[i] &&
			!TupleDescAttr(desc, i)->attisdropped)
			elog(ERROR, "aura: column %s of aura.%s needs a value",
				 NameStr(TupleDescAttr(desc, i)->attname), table);
	ExecStoreVirtualTuple(slot);

	if (st->rel->trigdesc && (st->rel->trigdesc->trig_insert_before_row ||
							  st->rel->trigdesc->trig_insert_after_row))
		InsertThroughExecutor(st->rel, table, slot);
	else
	{
		simple_table_tuple_insert(st->rel, slot);
		if (st->rri->ri_NumIndices > 0)
		{
#if PG_VERSION_NUM >= 160000
			List	   *r = ExecInsertIndexTuples(st->rri, slot, st->estate, false, false, NULL, NIL, false);
#else
			List	   *r = ExecInsertIndexTuples(st->rri, slot, st->estate, false, false, NULL, NIL);
#endif

			list_free(r);
		}
	}
	if (batch_on)
	{
		ResetPerTupleExprContext(st->estate);
		return id;
	}
	ExecCloseIndices(st->rri);
	ExecResetTupleTable(st->estate->es_tupleTable, false);
	FreeExecutorState(st->estate);
	table_close(st->rel, NoLock);
	return id;
}

/*
 * LedgerHeapUpdate
 *		Replace some columns of the row at *tid of aura.<table> (a row the
 *		caller has locked FOR UPDATE and read with a fresh snapshot), and
 *		maintain the indexes unless the update is HOT.
 */
/*
 * UpdateThroughExecutor
 *		The same update as an SQL statement, for tables with row triggers on
 *		UPDATE (e.g. the rewards module's trigger on loyalty_accounts): the
 *		executor fires them, which the direct path would skip.  One kept plan
 *		per table; the caller is connected to SPI.
 */
static void
UpdateThroughExecutor(Relation rel, const char *table, ItemPointer tid, int ncols,
					  const char *const *names, const Datum *values, const bool *nulls)
{
	static char planned_for[NAMEDATALEN];
	static SPIPlanPtr plan = NULL;
	TupleDesc	desc = RelationGetDescr(rel);
	Datum	   *args = palloc(sizeof(Datum) * (ncols + 1));
	char	   *argnulls = palloc(ncols + 2);
	int			i;
	int			rc;
	bool		isnull;

	if (plan == NULL || strcmp(planned_for, table) != 0)
	{
		StringInfoData sql;
		Oid		   *types = palloc(sizeof(Oid) * (ncols + 1));

		initStringInfo(&sql);
		appendStringInfo(&sql, "UPDATE aura.%s SET ", quote_identifier(table));
		for (i = 0; i < ncols; i++)
		{
			int			a;

			types[i] = InvalidOid;
			for (a = 0; a < desc->natts; a++)
				if (!TupleDescAttr(desc, a)->attisdropped &&
					strcmp(NameStr(TupleDescAttr(desc, a)->attname), names[i]) == 0)
					types[i] = TupleDescAttr(desc, a)->atttypid;
			if (!OidIsValid(types[i]))
				elog(ERROR, "aura: column %s of aura.%s is missing", names[i], table);
			appendStringInfo(&sql, "%s%s = $%d", i ? ", " : "", quote_identifier(names[i]), i + 1);
		}
		types[ncols] = TIDOID;
		appendStringInfo(&sql, " WHERE ctid = $%d RETURNING ctid", ncols + 1);
		if (plan)
			SPI_freeplan(plan);
		plan = SPI_prepare(sql.data, ncols + 1, types);
		if (plan == NULL || SPI_keepplan(plan) != 0)
			elog(ERROR, "aura: could not prepare the update of aura.%s", table);
		strlcpy(planned_for, table, sizeof(planned_for));
	}
	for (i = 0; i < ncols; i++)
	{
		args[i] = values[i];
		argnulls[i] = nulls[i] ? 'n' : ' ';
	}
	args[ncols] = PointerGetDatum(tid);
	argnulls[ncols] = ' ';
	argnulls[ncols + 1] = '\0';
	rc = SPI_execute_plan(plan, args, argnulls, false, 0);
	if (rc != SPI_OK_UPDATE_RETURNING || SPI_processed != 1)
		elog(ERROR, "aura: update of a locked row of aura.%s failed", table);
	*tid = *(ItemPointer) DatumGetPointer(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_freetuptable(SPI_tuptable);
}

/*
 * NeedsUpdateTriggers
 *		Would an UPDATE of these columns fire a row trigger?  The check
 *		trigger of a foreign key on the table fires only when the key
 *		changes (as the executor decides), so it does not count when no key
 *		column is updated (aura.loyalty_accounts references aura.restaurants;
 *		its restaurant_id is never updated here).
 */
static bool
NeedsUpdateTriggers(Relation rel, int ncols, const char *const *names)
{
	TriggerDesc *td = rel->trigdesc;
	int			i;

	if (td == NULL || !(td->trig_update_before_row || td->trig_update_after_row))
		return false;
	for (i = 0; i < td->numtriggers; i++)
	{
		Trigger    *t = &td->triggers[i];
		HeapTuple	ctup;
		Datum		d;
		bool		isnull;
		bool		key_updated = false;

		if (!TRIGGER_FOR_ROW(t->tgtype) || !TRIGGER_FOR_UPDATE(t->tgtype) ||
			t->tgenabled == TRIGGER_DISABLED)
			continue;
		if (RI_FKey_trigger_type(t->tgfoid) != RI_TRIGGER_FK || !OidIsValid(t->tgconstraint))
			return true;
		ctup = SearchSysCache1(CONSTROID, ObjectIdGetDatum(t->tgconstraint));
		if (!HeapTupleIsValid(ctup))
			return true;
		d = SysCacheGetAttr(CONSTROID, ctup, Anum_pg_constraint_conkey, &isnull);
		if (isnull)
			key_updated = true;
		else
		{
			ArrayType  *arr = DatumGetArrayTypeP(d);
			int16	   *keys = (int16 *) ARR_DATA_PTR(arr);
			int			nkeys = ARR_DIMS(arr)[0];
			int			k,
						c;

			for (k = 0; k < nkeys && !key_updated; k++)
			{
				const char *kname = NameStr(TupleDescAttr(RelationGetDescr(rel), keys[k] - 1)->attname);

				for (c = 0; c < ncols; c++)
					if (strcmp(kname, names[c]) == 0)
						key_updated = true;
			}
		}
		ReleaseSysCache(ctup);
		if (key_updated)
			return true;
	}
	return false;
}

void
LedgerHeapUpdate(const char *table, ItemPointer tid, int ncols, const char *const *names,
				 const Datum *values, const bool *nulls)
{
	Oid			relid = get_relname_relid(table, get_namespace_oid("aura", false));
	Relation	rel;
	TupleDesc	desc;
	HeapTupleData oldtup;
	HeapTuple	newtup;
	Buffer		buf;
	Datum	   *repl_values;
	bool	   *repl_nulls;
	bool	   *repl;
	int			i,
				natts;

	if (!OidIsValid(relid))
		elog(ERROR, "aura: table aura.%s is missing", table);
	rel = table_open(relid, RowExclusiveLock);
	if (NeedsUpdateTriggers(rel, ncols, names))
	{
		UpdateThroughExecutor(rel, table, tid, ncols, names, values, nulls);
		table_close(rel, NoLock);
		return;
	}
	desc = RelationGetDescr(rel);
	natts = desc->natts;
	repl_values = palloc0(sizeof(Datum) * natts);
	repl_nulls = palloc0(sizeof(bool) * natts);
	repl = palloc0(sizeof(bool) * natts);
	for (i = 0; i < ncols; i++)
	{
		int			a;
		bool		found = false;

		for (a = 0; a < natts; a++)
			if (!TupleDescAttr(desc, a)->attisdropped &&
				strcmp(NameStr(TupleDescAttr(desc, a)->attname), names[i]) == 0)
			{
				repl_values[a] = values[i];
				repl_nulls[a] = nulls[i];
				repl[a] = true;
				found = true;
				break;
			}
		if (!found)
			elog(ERROR, "aura: column %s of aura.%s is missing", names[i], table);
	}

	oldtup.t_self = *tid;
	if (!heap_fetch(rel, SnapshotAny, &oldtup, &buf, true))
		elog(ERROR, "aura: row of aura.%s to update not found", table);
	newtup = heap_modify_tuple(&oldtup, desc, repl_values, repl_nulls, repl);
	if (BufferIsValid(buf))
		ReleaseBuffer(buf);

	simple_heap_update(rel, tid, newtup);
	if (!HeapTupleIsHeapOnly(newtup))
	{
		EState	   *estate = CreateExecutorState();
		ResultRelInfo *rri = makeNode(ResultRelInfo);
		TupleTableSlot *slot;
		List	   *r;

		InitResultRelInfo(rri, rel, 1, NULL, 0);
		ExecOpenIndices(rri, false);
		slot = ExecInitExtraTupleSlot(estate, desc, &TTSOpsHeapTuple);
		/* update = false: the "index unchanged" hint needs a full executor state */
		ExecStoreHeapTuple(newtup, slot, false);
#if PG_VERSION_NUM >= 160000
		r = ExecInsertIndexTuples(rri, slot, estate, false, false, NULL, NIL, false);
#else
		r = ExecInsertIndexTuples(rri, slot, estate, false, false, NULL, NIL);
#endif
		list_free(r);
		ExecCloseIndices(rri);
		ExecResetTupleTable(estate->es_tupleTable, false);
		FreeExecutorState(estate);
	}
	*tid = newtup->t_self;
	heap_freetuple(newtup);
	table_close(rel, NoLock);
}
