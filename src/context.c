/*
 * context.c
 *	  The tenant context: GUCs aura.restaurant_id, aura.location_id and
 *	  aura.user_id, and the C functions row-level security calls per query.
 *
 * The settings are validated once, when set (check hook), and kept parsed in
 * static variables, so aura.current_restaurant() costs no parsing per row.
 */
#include "postgres.h"

#include <ctype.h>
#include <stdlib.h>

#include "catalog/pg_authid.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/guc.h"

#include "aura.h"
#include "context.h"

/* a parsed tenant id: set is false when the setting is empty */
typedef struct ContextId
{
	bool		set;
	int64		id;
} ContextId;

static char *restaurant_setting = NULL;
static char *location_setting = NULL;
static char *user_setting = NULL;

static ContextId restaurant_ctx;
static ContextId location_ctx;
static ContextId user_ctx;

/*
 * CheckContextId
 *		GUC check hook: an empty string or a positive bigint written in
 *		plain digits.  Anything else is refused with SQLSTATE 22023.
 */
static bool
CheckContextId(char **newval, void **extra, GucSource source)
{
	const char *s = *newval;
	ContextId	parsed = {false, 0};
	ContextId  *out;

	if (s != NULL && s[0] != '\0')
	{
		const char *p;
		int64		v = 0;
		bool		ok = true;

		for (p = s; *p; p++)
		{
			int			digit;

			if (!isdigit((unsigned char) *p) || p - s >= 19)
			{
				ok = false;
				break;
			}
			digit = *p - '0';
			if (v > (PG_INT64_MAX - digit) / 10)
			{
				ok = false;
				break;
			}
			v = v * 10 + digit;
		}
		if (!ok || v <= 0)
		{
			GUC_check_errcode(ERRCODE_INVALID_PARAMETER_VALUE);
			GUC_check_errmsg("invalid tenant context id \"%.64s\"", s);
			GUC_check_errdetail("Tenant context ids are positive bigint values written in digits.");
			GUC_check_errhint("Use aura.set_context(restaurant_id, location_id, user_id), or an empty string to clear.");
			return false;
		}
		parsed.set = true;
		parsed.id = v;
	}

	/* extra must come from malloc, GUC frees it */
#if PG_VERSION_NUM >= 160000
	out = guc_malloc(LOG, sizeof(ContextId));
#else
	out = malloc(sizeof(ContextId));
#endif
	if (out == NULL)
		return false;
	*out = parsed;
	*extra = out;
	return true;
}

static void
AssignRestaurant(const char *newval, void *extra)
{
	restaurant_ctx = *(ContextId *) extra;
}

static void
AssignLocation(const char *newval, void *extra)
{
	location_ctx = *(ContextId *) extra;
}

static void
AssignUser(const char *newval, void *extra)
{
	user_ctx = *(ContextId *) extra;
}

/*
 * ContextInit
 *		Define the three context GUCs.  They are USERSET by design: the
 *		application sets them per transaction or session; row-level security
 *		reads them through aura.current_restaurant().
 */
void
ContextInit(void)
{
	DefineCustomStringVariable("aura.restaurant_id",
							   "Restaurant (tenant) of the current session or transaction.",
							   "Row-level security shows only this restaurant's rows.",
							   &restaurant_setting, "", PGC_USERSET, GUC_NOT_IN_SAMPLE,
							   CheckContextId, AssignRestaurant, NULL);
	DefineCustomStringVariable("aura.location_id",
							   "Location of the current session or transaction.",
							   NULL,
							   &location_setting, "", PGC_USERSET, GUC_NOT_IN_SAMPLE,
							   CheckContextId, AssignLocation, NULL);
	DefineCustomStringVariable("aura.user_id",
							   "Application user acting in the current session or transaction.",
							   "Recorded as the actor in history and ledger rows.",
							   &user_setting, "", PGC_USERSET, GUC_NOT_IN_SAMPLE,
							   CheckContextId, AssignUser, NULL);
}

bool
AuraCurrentRestaurant(int64 *id)
{
	*id = restaurant_ctx.id;
	return restaurant_ctx.set;
}

bool
AuraCurrentLocation(int64 *id)
{
	*id = location_ctx.id;
	return location_ctx.set;
}

bool
AuraCurrentUser(int64 *id)
{
	*id = user_ctx.id;
	return user_ctx.set;
}

/*
 * AuraIsAdmin
 *		Superusers and roles with the privileges of aura_admin see every
 *		tenant.  It asks about the calling role (the outer user id, which SET
 *		ROLE changes but SECURITY DEFINER does not): inside a definer function
 *		the current user is the extension owner, and asking about it would
 *		make every caller an admin.  Membership checks are cached by
 *		PostgreSQL itself.
 */
bool
AuraIsAdmin(void)
{
	Oid			caller = GetOuterUserId();
	Oid			admin;

	if (superuser_arg(caller))
		return true;
	admin = get_role_oid("aura_admin", true);
	return OidIsValid(admin) && has_privs_of_role(caller, admin);
}

PG_FUNCTION_INFO_V1(aura_current_restaurant);
PG_FUNCTION_INFO_V1(aura_current_location);
PG_FUNCTION_INFO_V1(aura_current_user_id);
PG_FUNCTION_INFO_V1(aura_is_admin);

/* aura.current_restaurant(): the restaurant in context, or NULL */
Datum
aura_current_restaurant(PG_FUNCTION_ARGS)
{
	if (!restaurant_ctx.set)
		PG_RETURN_NULL();
	PG_RETURN_INT64(restaurant_ctx.id);
}

/* aura.current_location(): the location in context, or NULL */
Datum
aura_current_location(PG_FUNCTION_ARGS)
{
	if (!location_ctx.set)
		PG_RETURN_NULL();
	PG_RETURN_INT64(location_ctx.id);
}

/* aura.current_user_id(): the application user in context, or NULL */
Datum
aura_current_user_id(PG_FUNCTION_ARGS)
{
	if (!user_ctx.set)
		PG_RETURN_NULL();
	PG_RETURN_INT64(user_ctx.id);
}

/* aura.is_admin(): may the current role see every tenant? */
Datum
aura_is_admin(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(AuraIsAdmin());
}
