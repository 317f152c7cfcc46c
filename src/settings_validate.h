/*
 * settings_validate.h
 *	  Validation and canonical form of setting values (used by settings.c).
 */
#ifndef AURA_SETTINGS_VALIDATE_H
#define AURA_SETTINGS_VALIDATE_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

/* hard limits checked before any rule */
#define AURA_SETTING_MAX_BYTES	65536	/* canonical JSON of one value */
#define AURA_SETTING_MAX_DEPTH	32		/* nesting of json values */

typedef enum SettingType
{
	ST_STRING,
	ST_INTEGER,
	ST_NUMERIC,
	ST_BOOLEAN,
	ST_JSON,
	ST_DATETIME,
	ST_DURATION,
	ST_ENUM,
	ST_SECRET
} SettingType;

/* the rules of one definition; NULL / -1 / 0 mean "no such rule" */
typedef struct SettingRules
{
	const char *key;
	SettingType type;
	bool		sensitive;
	Numeric		min_value;
	Numeric		max_value;
	int32		min_length;
	int32		max_length;
	text	   *pattern;
	int			nallowed;
	char	  **allowed;
	int			nrequired;
	char	  **required;
} SettingRules;

/* type from its catalog name; ERROR (22023) for unknown names */
extern SettingType SettingTypeFromName(const char *name);
extern const char *SettingTypeName(SettingType type);

/* validate value against rules; returns the canonical value or ERROR 22023 */
extern Jsonb *SettingValidate(const SettingRules *rules, Jsonb *value);

/* seconds of a duration (months count 30 days), for min/max rules */
extern double SettingIntervalSeconds(const Interval *iv);

#endif							/* AURA_SETTINGS_VALIDATE_H */
