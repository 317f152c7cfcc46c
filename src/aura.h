/*
 * aura.h
 *	  Shared declarations of the aura extension: module init hooks and
 *	  process-wide state set by _PG_init.
 */
#ifndef AURA_H
#define AURA_H

#include "postgres.h"

#include "miscadmin.h"
#include "utils/guc.h"

#ifndef AURA_VERSION
#error "AURA_VERSION must be defined by the Makefile"
#endif

/* true when this backend got aura through shared_preload_libraries */
extern bool aura_preloaded;

/* GUC aura.database: the database the dispatcher worker connects to */
extern char *aura_database;

/*
 * Context for GUCs that only take effect at server start.  PostgreSQL
 * refuses (FATAL) to create PGC_POSTMASTER variables outside preloading, and
 * aura must work when loaded on first use; then such a GUC is SIGHUP and
 * simply has nothing to restart.
 */
#define AURA_PGC_POSTMASTER \
	(process_shared_preload_libraries_in_progress ? PGC_POSTMASTER : PGC_SIGHUP)

/* module initialisers, each defines its own GUCs; called from _PG_init */
extern void ContextInit(void);
extern void CryptoInit(void);
extern void SettingsInit(void);
extern void ApiKeysInit(void);
extern void AuditInit(void);
extern void LedgerInit(void);
extern void NotifyInit(void);
extern void FlagsInit(void);
extern void RewardsInit(void);

#endif							/* AURA_H */
