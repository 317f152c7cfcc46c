/*
 * audit.h
 *	  Security audit trail: events that must survive the error that follows
 *	  them (failed key verifications, denied calls) wait in a queue that a
 *	  rollback cannot undo, and are appended to aura.audit_log later.
 */
#ifndef AURA_AUDIT_H
#define AURA_AUDIT_H

#include "postgres.h"

/*
 * Queue an audit event for aura.audit_log.  Survives the rollback of the
 * current transaction (the queue lives in shared memory when aura is
 * preloaded, else in this backend).  details_json must be a JSON object
 * text or NULL; restaurant_id 0 means "not tied to a restaurant".
 */
extern void AuraAuditLater(const char *event, int64 restaurant_id,
						   const char *details_json);

/* append queued events to aura.audit_log now, if this transaction may write */
extern void AuraAuditFlush(void);

/*
 * Run fn(arg) in an internal subtransaction: aura's bookkeeping (usage
 * counts, queued audit events) must never turn a caller's successful call
 * into an error (e.g. a serialization failure under REPEATABLE READ).
 * Returns false, with the error logged at DEBUG1 and discarded, if fn failed.
 */
extern bool AuraTryInSubxact(void (*fn) (void *), void *arg);

/* cheap test: are events waiting? */
extern bool AuraAuditPending(void);

/*
 * Run the next SPI statements as the owner of aura.audit_log (the extension
 * owner): aura's internal bookkeeping must not depend on the caller's grants
 * or tenant context.  Returns the saved identity for AuraOwnerEnd.
 */
typedef struct AuraOwnerState
{
	Oid			saved_user;
	int			saved_sec;
} AuraOwnerState;
extern void AuraOwnerBegin(Oid owner, AuraOwnerState *state);
extern void AuraOwnerEnd(AuraOwnerState *state);

#endif							/* AURA_AUDIT_H */
