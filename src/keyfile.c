/*
 * keyfile.c
 *	  Key material from outside the database (file or command), shared by the
 *	  settings encryption key and the API key hashing secret, so both are
 *	  configured, loaded and kept out of SQL and logs the same way.
 */
#include "postgres.h"

#include <ctype.h>
#include <sys/stat.h>

#include "common/base64.h"
#include "storage/fd.h"
#include "utils/builtins.h"

#include "keyfile.h"

/* zero then free a buffer that held key material */
void
AuraKeyMaterialFree(char *buf, int len)
{
	if (buf == NULL)
		return;
	explicit_bzero(buf, len);
	pfree(buf);
}

/*
 * ReadAll
 *		Read at most AURA_KEY_MATERIAL_MAX bytes from an open stream.
 */
static bool
ReadAll(FILE *f, char *buf, int *len)
{
	size_t		n = fread(buf, 1, AURA_KEY_MATERIAL_MAX + 1, f);

	if (ferror(f) || n > AURA_KEY_MATERIAL_MAX)
		return false;
	*len = (int) n;
	return true;
}

bool
AuraReadKeyMaterial(const char *file, const char *command,
					char **out, int *len, char **error)
{
	char	   *buf = palloc0(AURA_KEY_MATERIAL_MAX + 2);
	int			n = 0;
	int			start;
	int			end;
	bool		ok;

	*out = NULL;
	*len = 0;
	*error = NULL;

	if (file != NULL && file[0] != '\0')
	{
		FILE	   *f;
		struct stat st;

		f = AllocateFile(file, "r");
		if (f == NULL)
		{
			*error = psprintf("could not open key file \"%s\": %m", file);
			pfree(buf);
			return false;
		}
		/* a key readable by others is a key leaked; refuse it like ssl_key_file */
		if (fstat(fileno(f), &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
		{
			FreeFile(f);
			*error = psprintf("key file \"%s\" has group or world access", file);
			pfree(buf);
			return false;
		}
		ok = ReadAll(f, buf, &n);
		FreeFile(f);
		if (!ok)
		{
			AuraKeyMaterialFree(buf, AURA_KEY_MATERIAL_MAX + 2);
			*error = psprintf("could not read key file \"%s\" (unreadable or larger than %d bytes)",
							  file, AURA_KEY_MATERIAL_MAX);
			return false;
		}
	}
	else if (command != NULL && command[0] != '\0')
	{
		FILE	   *p;
		int			rc;

		fflush(NULL);
		p = OpenPipeStream(command, "r");
		if (p == NULL)
		{
			*error = psprintf("could not run key command: %m");
			pfree(buf);
			return false;
		}
		ok = ReadAll(p, buf, &n);
		rc = ClosePipeStream(p);
		if (!ok || rc != 0)
		{
			AuraKeyMaterialFree(buf, AURA_KEY_MATERIAL_MAX + 2);
			*error = psprintf("key command failed (exit status %d) or printed more than %d bytes",
							  rc, AURA_KEY_MATERIAL_MAX);
			return false;
		}
	}
	else
	{
		*error = pstrdup("no key file or key command is configured");
		pfree(buf);
		return false;
	}

	/* trim surrounding whitespace in place */
	start = 0;
	end = n;
	while (start < end && isspace((unsigned char) buf[start]))
		start++;
	while (end > start && isspace((unsigned char) buf[end - 1]))
		end--;
	if (end == start)
	{
		AuraKeyMaterialFree(buf, AURA_KEY_MATERIAL_MAX + 2);
		*error = pstrdup("the key file or command gave no key material");
		return false;
	}
	if (start > 0)
		memmove(buf, buf + start, end - start);
	memset(buf + (end - start), 0, AURA_KEY_MATERIAL_MAX + 2 - (end - start));
	*out = buf;
	*len = end - start;
	return true;
}

/* value of one hex digit, or -1 */
static int
HexValue(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
AuraDecodeKey(const char *text, int textlen, uint8 *out, int outmax)
{
	const char *p = text;
	int			n = textlen;
	int			i;
	bool		hex = true;

	if (n >= 2 && p[0] == '\\' && p[1] == 'x')
	{
		p += 2;
		n -= 2;
	}
	if (n == 0 || n % 2 != 0)
		hex = false;
	for (i = 0; hex && i < n; i++)
		if (HexValue(p[i]) < 0)
			hex = false;
	if (hex)
	{
		if (n / 2 > outmax)
			return -1;
		for (i = 0; i < n / 2; i++)
			out[i] = (uint8) (HexValue(p[2 * i]) * 16 + HexValue(p[2 * i + 1]));
		return n / 2;
	}
	if (pg_b64_dec_len(textlen) > outmax + 3)
		return -1;
	{
		uint8	   *tmp = palloc(pg_b64_dec_len(textlen) + 1);
		int			r = pg_b64_decode(text, textlen, (char *) tmp, pg_b64_dec_len(textlen));

		if (r > 0 && r <= outmax)
			memcpy(out, tmp, r);
		explicit_bzero(tmp, pg_b64_dec_len(textlen) + 1);
		pfree(tmp);
		return (r > 0 && r <= outmax) ? r : -1;
	}
}
