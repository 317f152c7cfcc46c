/*
 * settings.h
 *	  Reading aura settings from C (other modules): the effective value of a
 *	  setting for a restaurant, location and user, through the same
 *	  backend-local cache as aura.get_setting(), so a read costs a few hash
 *	  lookups and no query in the steady state.
 *
 * Ids of 0 mean "none" (restaurant 0: system value or default only).  These
 * functions do no tenant check: the calling module has done it.  They must
 * be called inside a transaction.  An unknown key or a type mismatch is an
 * ERROR (22023).  They return false when the setting has no value and no
 * default.
 */
#ifndef AURA_SETTINGS_H
#define AURA_SETTINGS_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

extern bool AuraGetSettingInt(const char *key, int64 restaurant, int64 location, int64 user,
							  int64 *out);
/* integer or numeric settings; *out is palloc'd in the current context */
extern bool AuraGetSettingNumeric(const char *key, int64 restaurant, int64 location, int64 user,
								  Numeric *out);
extern bool AuraGetSettingBool(const char *key, int64 restaurant, int64 location, int64 user,
							   bool *out);
/* any type as text (strings unquoted, JSON as text, secrets ********); palloc'd */
extern bool AuraGetSettingText(const char *key, int64 restaurant, int64 location, int64 user,
							   char **out);
extern bool AuraGetSettingInterval(const char *key, int64 restaurant, int64 location, int64 user,
								   Interval *out);
/* the JSON value (secrets ********), palloc'd, or NULL */
extern Jsonb *AuraGetSettingJsonb(const char *key, int64 restaurant, int64 location, int64 user);

/*
 * Plaintext of a sensitive setting (e.g. an SMTP password), decrypted with
 * the master key; palloc'd, NUL-terminated.  Zero it (explicit_bzero) when
 * done.  ERROR when it cannot be decrypted.
 */
extern bool AuraGetSecretSetting(const char *key, int64 restaurant, int64 location, int64 user,
								 char **plaintext, int *len);

extern void SettingsInit(void);

#endif							/* AURA_SETTINGS_H */
