/*
 * aura.c
 *	  Library entry point: _PG_init, the global GUCs and aura.version().
 *
 * aura works whether or not it is preloaded; preloading adds the dispatcher
 * background worker (and lets aura.deployment_check() say so).
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "aura.h"

PG_MODULE_MAGIC;

bool		aura_preloaded = false;
char	   *aura_database = NULL;

void		_PG_init(void);

/*
 * _PG_init
 *		Define every aura.* GUC, then reserve the prefix so typos in
 *		postgresql.conf or SET are reported instead of silently ignored.
 */
void
_PG_init(void)
{
	aura_preloaded = process_shared_preload_libraries_in_progress;

	DefineCustomStringVariable("aura.database",
							   "Database the aura dispatcher worker connects to.",
							   "Only read at server start; the worker runs aura's "
							   "jobs and delivers notifications in this database.",
							   &aura_database,
							   "postgres",
							   AURA_PGC_POSTMASTER,
							   0,
							   NULL, NULL, NULL);

	ContextInit();
	CryptoInit();
	SettingsInit();
	ApiKeysInit();
	AuditInit();
	LedgerInit();
	NotifyInit();
	FlagsInit();
	RewardsInit();

#if PG_VERSION_NUM >= 150000
	MarkGUCPrefixReserved("aura");
#else
	EmitWarningsOnPlaceholders("aura");
#endif
}

PG_FUNCTION_INFO_V1(aura_version);

/*
 * aura_version
 *		Version of the loaded library; deployment_check compares it with the
 *		installed SQL version to catch a stale .so after an upgrade.
 */
Datum
aura_version(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(AURA_VERSION));
}

PG_FUNCTION_INFO_V1(aura_preloaded_fn);

/*
 * aura_preloaded_fn
 *		True when this backend inherited aura from shared_preload_libraries.
 */
Datum
aura_preloaded_fn(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(aura_preloaded);
}
