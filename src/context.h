/*
 * context.h
 *	  Tenant context of the session: restaurant, location and user ids.
 */
#ifndef AURA_CONTEXT_H
#define AURA_CONTEXT_H

#include "postgres.h"

/* the ids of the session context; false when the setting is empty */
extern bool AuraCurrentRestaurant(int64 *id);
extern bool AuraCurrentLocation(int64 *id);
extern bool AuraCurrentUser(int64 *id);

/* true for superusers and members of aura_admin */
extern bool AuraIsAdmin(void);

#endif							/* AURA_CONTEXT_H */
