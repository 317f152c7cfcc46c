/*
 * keyfile.h
 *	  Reading key material that lives outside the database: a file or the
 *	  standard output of a command (e.g. a KMS client).
 */
#ifndef AURA_KEYFILE_H
#define AURA_KEYFILE_H

#include "postgres.h"

/* maximum bytes of key material accepted from a file or command */
#define AURA_KEY_MATERIAL_MAX 8192

/*
 * Read key material from `file` (if not empty) or else from the standard
 * output of `command` (if not empty).  Surrounding whitespace is trimmed.
 * On success returns true and a palloc'd, NUL-terminated buffer in *out
 * (length in *len) allocated in CurrentMemoryContext; free it with
 * AuraKeyMaterialFree, which zeroes it first.  On failure returns false and
 * a palloc'd message in *error that never contains key material.
 */
extern bool AuraReadKeyMaterial(const char *file, const char *command,
								char **out, int *len, char **error);
extern void AuraKeyMaterialFree(char *buf, int len);

/* decode hex ("\x" optional) or base64 text into raw bytes; -1 if neither */
extern int	AuraDecodeKey(const char *text, int textlen, uint8 *out, int outmax);

#endif							/* AURA_KEYFILE_H */
