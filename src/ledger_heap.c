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
#include "access/htup_details.h"
#include "access/table.h"
#include "storage/bufmgr.h"
#include "utils/snapmgr.h"
#include "access/tableam.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "commands/sequence.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/rel.h"
#include "nodes/makefuncs.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "ledger.h"

/* identity sequences of the tables, looked up once */
typedef struct HeapTarget
{
	const char *name;
	Oid			relid;
	Oid			seqid;
} HeapTarget;

static HeapTarget targets[] = {
	{"points_transactions", InvalidOid, InvalidOid},
	{"points_lots", InvalidOid, InvalidOid},
};

/* any relcache reset of one of the tables forgets the cached oids */
static void
HeapTargetsInvalidate(Datum arg, Oid relid)
{
	int			i;

	for (i = 0; i < (int) lengthof(targets); i++)
		if (relid == InvalidOid || relid == targets[i].relid)
			targets[i].relid = targets[i].seqid = InvalidOid;
}

void
LedgerHeapInit(void)
{
	CacheRegisterRelcacheCallback(HeapTargetsInvalidate, (Datum) 0);
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
	Relation	rel;
	TupleDesc	desc;
	EState	   *estate;
	ResultRelInfo *rri;
	TupleTableSlot *slot;
	int64		id;
	int			i,
				natts;

	rel = table_open(t->relid, RowExclusiveLock);
	desc = RelationGetDescr(rel);
	natts = desc->natts;
	id = nextval_internal(t->seqid, false);

	estate = CreateExecutorState();
	rri = makeNode(ResultRelInfo);
	InitResultRelInfo(rri, rel, 1, NULL, 0);
	ExecOpenIndices(rri, false);
	slot = ExecInitExtraTupleSlot(estate, desc, &TTSOpsVirtual);
	ExecClearTuple(slot);
	for (i = 0; i < natts; i++)
	{
		slot->tts_values[i] = (Datum) 0;
		slot->tts_isnull[i] = true;
	}
	for (i = 0; i < ncols; i++)
	{
		int			a;
		bool		found = false;

		for (a = 0; a < natts; a++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, a);

			if (!att->attisdropped && strcmp(NameStr(att->attname), names[i]) == 0)
			{
				slot->tts_values[a] = values[i];
				slot->tts_isnull[a] = nulls[i];
				found = true;
				break;
			}
		}
		if (!found)
			elog(ERROR, "aura: column %s of aura.%s is missing", names[i], table);
	}
	/* the identity column */
	for (i = 0; i < natts; i++)
		if (strcmp(NameStr(TupleDescAttr(desc, i)->attname), "id") == 0)
		{
			slot->tts_values[i] = Int64GetDatum(id);
			slot->tts_isnull[i] = false;
		}
	/* NOT NULL columns must have a value */
	for (i = 0; i < natts; i++)
		if (TupleDescAttr(desc, i)->attnotnull && slot->tts_isnull[i] &&
			!TupleDescAttr(desc, i)->attisdropped)
			elog(ERROR, "aura: column %s of aura.%s needs a value",
				 NameStr(TupleDescAttr(desc, i)->attname), table);
	ExecStoreVirtualTuple(slot);

	if (rel->trigdesc && (rel->trigdesc->trig_insert_before_row ||
						  rel->trigdesc->trig_insert_after_row))
		InsertThroughExecutor(rel, table, slot);
	else
	{
	simple_table_tuple_insert(rel, slot);
	if (rri->ri_NumIndices > 0)
	{
#if PG_VERSION_NUM >= 160000
		List	   *r = ExecInsertIndexTuples(rri, slot, estate, false, false, NULL, NIL, false);
#else
		List	   *r = ExecInsertIndexTuples(rri, slot, estate, false, false, NULL, NIL);
#endif

		list_free(r);
	}
	}
	ExecCloseIndices(rri);
	ExecResetTupleTable(estate->es_tupleTable, false);
	FreeExecutorState(estate);
	table_close(rel, NoLock);
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
	if (rel->trigdesc && (rel->trigdesc->trig_update_before_row ||
						  rel->trigdesc->trig_update_after_row))
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
