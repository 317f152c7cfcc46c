/*
 * aura.h
 *	  Shared declarations of the aura extension: module init hooks and
 *	  process-wide state set by _PG_init.
 */
#ifndef AURA_H
#define AURA_H

#include "postgres.h"

#ifndef AURA_VERSION
#error "AURA_VERSION must be defined by the Makefile"
#endif

/* true when this backend got aura through shared_preload_libraries */
extern bool aura_preloaded;

/* GUC aura.database: the database the dispatcher worker connects to */
extern char *aura_database;

/* module initialisers, each defines its own GUCs; called from _PG_init */
extern void ContextInit(void);
extern void FlagsInit(void);

#endif							/* AURA_H */
