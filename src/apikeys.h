/*
 * apikeys.h
 *	  API keys: generation, verification, per-key rate limits.
 */
#ifndef AURA_APIKEYS_H
#define AURA_APIKEYS_H

#include "postgres.h"

/* "aura_live_" + 42 random base62 characters + 6 base62 checksum characters */
#define API_KEY_TAG_LEN		10
#define API_KEY_RANDOM_LEN	42
#define API_KEY_LOOKUP_LEN	10
#define API_KEY_CHECK_LEN	6
#define API_KEY_LEN			(API_KEY_TAG_LEN + API_KEY_RANDOM_LEN + API_KEY_CHECK_LEN)

#endif							/* AURA_APIKEYS_H */
