/*
 * channels.c
 *	  The senders: every claimed message is one libcurl easy handle (HTTP(S)
 *	  POST for webhooks, Slack and SMS; SMTP(S) for email), all driven
 *	  concurrently by one multi handle whose connection cache is kept between
 *	  batches.  Runs in the dispatcher only, outside any transaction: no
 *	  palloc/ereport in libcurl callbacks.
 *
 * Safety: only http/https or smtp/smtps, redirects never followed, TLS
 * verified (aura.ca_file), response bodies capped, a destination guard on
 * the resolved address (aura.http_deny_private / aura.http_allow_hosts),
 * and no URL, header or credential ever written to the log.
 */
#include "postgres.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>

#include <curl/curl.h>

#include "miscadmin.h"
#include "postmaster/postmaster.h"
#include "storage/pmsignal.h"

#include "notify.h"

/* a response body beyond this is refused (the delivery fails) */
#define MAX_RESPONSE_BYTES (1024 * 1024)

static CURLM *multi = NULL;
static bool curl_ready = false;

/*
 * Finished easy handles are reset and kept for the next requests instead of
 * being freed: creating and destroying one per message cost a large share of
 * the dispatcher's CPU (allocations).  Connections live in the multi
 * handle's cache either way.
 */
#define EASY_POOL_MAX 256
static CURL *easy_pool[EASY_POOL_MAX];
static int	easy_pooled = 0;

/* allow-list decision of the last URL seen (valid during one batch) */
static const char *last_allowed_url = NULL;
static bool last_allowed = false;

static int64
NowMicros(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* keep up to sizeof(resp)-1 bytes of the answer for error messages */
static size_t
WriteCb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	AuraRequest *r = (AuraRequest *) userdata;
	size_t		len = size * nmemb;
	size_t		keep;

	if (r->resp_len + len > MAX_RESPONSE_BYTES)
		return 0;				/* aborts the transfer: response too large */
	keep = Min(len, sizeof(r->resp) - 1 - Min(r->resp_len, sizeof(r->resp) - 1));
	if (keep > 0)
		memcpy(r->resp + r->resp_len, ptr, keep);
	r->resp_len += len;
	return len;
}

/* SMTP upload of the message text */
static size_t
ReadCb(char *buffer, size_t size, size_t nitems, void *userdata)
{
	AuraRequest *r = (AuraRequest *) userdata;
	size_t		left = strlen(r->body) - r->upload_off;
	size_t		n = Min(left, size * nitems);

	memcpy(buffer, r->body + r->upload_off, n);
	r->upload_off += n;
	return n;
}

/* true for loopback, private, link-local, unspecified, CGNAT and ULA addresses */
static bool
AddressIsPrivate(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
	{
		uint32		a = ntohl(((const struct sockaddr_in *) sa)->sin_addr.s_addr);

		return (a >> 24) == 0 || (a >> 24) == 10 || (a >> 24) == 127 ||
			(a >> 16) == ((169 << 8) | 254) || (a >> 20) == ((172 << 4) | 1) ||
			(a >> 16) == ((192 << 8) | 168) || (a >> 22) == ((100 << 2) | 1) ||
			a >= 0xE0000000;	/* multicast and reserved */
	}
	if (sa->sa_family == AF_INET6)
	{
		const unsigned char *b = ((const struct sockaddr_in6 *) sa)->sin6_addr.s6_addr;
		static const unsigned char zero[16] = {0};
		static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

		if (memcmp(b, mapped, 12) == 0)
		{
			struct sockaddr_in v4;

			memset(&v4, 0, sizeof(v4));
			v4.sin_family = AF_INET;
			memcpy(&v4.sin_addr, b + 12, 4);
			return AddressIsPrivate((struct sockaddr *) &v4);
		}
		if (memcmp(b, zero, 15) == 0 && (b[15] == 0 || b[15] == 1))
			return true;		/* :: and ::1 */
		if ((b[0] & 0xfe) == 0xfc)
			return true;		/* fc00::/7 unique local */
		if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
			return true;		/* fe80::/10 link-local */
		if (b[0] == 0xff)
			return true;		/* multicast */
		return false;
	}
	return true;				/* other families are never a delivery target */
}

/*
 * OpenSocketCb
 *		The destination guard: libcurl has resolved the host; refuse private
 *		addresses unless the host is in aura.http_allow_hosts.
 */
static curl_socket_t
OpenSocketCb(void *clientp, curlsocktype purpose, struct curl_sockaddr *address)
{
	AuraRequest *r = (AuraRequest *) clientp;

	if (aura_http_deny_private && !r->host_allowed && AddressIsPrivate(&address->addr))
	{
		r->blocked = true;
		if (address->family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *) &address->addr)->sin_addr,
					  r->blocked_addr, sizeof(r->blocked_addr));
		else if (address->family == AF_INET6)
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *) &address->addr)->sin6_addr,
					  r->blocked_addr, sizeof(r->blocked_addr));
		return CURL_SOCKET_BAD;
	}
	return socket(address->family, address->socktype, address->protocol);
}

/* is the URL's host one of aura.http_allow_hosts (comma list, case-insensitive)? */
static bool
HostAllowed(const char *url)
{
	CURLU	   *u;
	char	   *host = NULL;
	bool		allowed = false;
	const char *p;

	if (aura_http_allow_hosts == NULL || aura_http_allow_hosts[0] == '\0')
		return false;
	u = curl_url();
	if (u == NULL)
		return false;
	if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
		curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && host != NULL)
	{
		size_t		hlen = strlen(host);

		p = aura_http_allow_hosts;
		while (*p && !allowed)
		{
			const char *start,
					   *end;

			while (*p == ' ' || *p == ',')
				p++;
			start = p;
			while (*p && *p != ',')
				p++;
			end = p;
			while (end > start && end[-1] == ' ')
				end--;
			if ((size_t) (end - start) == hlen && pg_strncasecmp(start, host, hlen) == 0)
				allowed = true;
		}
		curl_free(host);
	}
	curl_url_cleanup(u);
	return allowed;
}

/* set up the easy handle of one request; false (with r->error) if impossible */
static bool
SetupEasy(AuraRequest *r)
{
	CURL	   *e = easy_pooled > 0 ? easy_pool[--easy_pooled] : curl_easy_init();
	struct curl_slist *list = NULL;
	int			i;

	if (e == NULL)
	{
		strlcpy(r->error, "could not create a curl handle", sizeof(r->error));
		r->outcome = AURA_OUT_FAILED;
		return false;
	}
	r->easy = e;
	/* most of a batch goes to few hosts: parse an allow decision once per URL */
	if (last_allowed_url == NULL || strcmp(last_allowed_url, r->url) != 0)
	{
		last_allowed = HostAllowed(r->url);
		last_allowed_url = r->url;
	}
	r->host_allowed = last_allowed;
	curl_easy_setopt(e, CURLOPT_URL, r->url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, r);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long) (r->timeout_ms > 0 ? r->timeout_ms : aura_http_timeout));
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long) Min(r->timeout_ms > 0 ? r->timeout_ms : aura_http_timeout, 10000));
	curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, OpenSocketCb);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, r);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, WriteCb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	if (aura_ca_file && aura_ca_file[0] != '\0')
		curl_easy_setopt(e, CURLOPT_CAINFO, aura_ca_file);

	if (r->kind == AURA_REQ_HTTP)
	{
#if LIBCURL_VERSION_NUM >= 0x075500
		curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#else
		curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long) (CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
		for (i = 0; i < r->nheaders; i++)
			list = curl_slist_append(list, r->headers[i]);
		list = curl_slist_append(list, "Expect:");
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, list);
		curl_easy_setopt(e, CURLOPT_POST, 1L);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body ? r->body : "");
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long) (r->body ? strlen(r->body) : 0));
		if (r->username && r->password)
		{
			curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long) CURLAUTH_BASIC);
			curl_easy_setopt(e, CURLOPT_USERNAME, r->username);
			curl_easy_setopt(e, CURLOPT_PASSWORD, r->password);
		}
		r->slist = list;
	}
	else
	{
#if LIBCURL_VERSION_NUM >= 0x075500
		curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
#else
		curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long) (CURLPROTO_SMTP | CURLPROTO_SMTPS));
#endif
		for (i = 0; i < r->nrcpt; i++)
			list = curl_slist_append(list, r->rcpt[i]);
		r->rcpt_list = list;
		curl_easy_setopt(e, CURLOPT_MAIL_RCPT, list);
		if (r->mail_from)
			curl_easy_setopt(e, CURLOPT_MAIL_FROM, r->mail_from);
		/*
		 * Never reuse an SMTP connection: its STARTTLS state and its login
		 * belong to the channel (and restaurant) that opened it.  Found by
		 * test/t/072: libcurl otherwise gave a channel that requires STARTTLS
		 * an open plain-text session to the same host and port, and would
		 * give one channel another's authenticated session.
		 */
		curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
		curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
		if (r->tls && strcmp(r->tls, "starttls") == 0)
			curl_easy_setopt(e, CURLOPT_USE_SSL, (long) CURLUSESSL_ALL);
		else
			curl_easy_setopt(e, CURLOPT_USE_SSL, (long) CURLUSESSL_NONE);
		if (r->username && r->username[0])
		{
			curl_easy_setopt(e, CURLOPT_USERNAME, r->username);
			if (r->password)
				curl_easy_setopt(e, CURLOPT_PASSWORD, r->password);
		}
		curl_easy_setopt(e, CURLOPT_READFUNCTION, ReadCb);
		curl_easy_setopt(e, CURLOPT_READDATA, r);
		curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
	}
	r->start_us = NowMicros();
	return true;
}

/* printable copy of the kept response text (first line, control chars dropped) */
static void
ResponseSnippet(AuraRequest *r, char *out, size_t outlen)
{
	size_t		n = Min(r->resp_len, sizeof(r->resp) - 1);
	size_t		i,
				k = 0;

	for (i = 0; i < n && k + 1 < outlen; i++)
	{
		unsigned char c = (unsigned char) r->resp[i];

		if (c == '\n' || c == '\r')
			break;
		out[k++] = (c < 32 || c == 127) ? ' ' : (char) c;
	}
	out[k] = '\0';
}

/* classify a finished transfer */
static void
FinishRequest(AuraRequest *r, CURLcode rc)
{
	long		code = 0;

	r->latency_ms = (int) ((NowMicros() - r->start_us) / 1000);
	curl_easy_getinfo((CURL *) r->easy, CURLINFO_RESPONSE_CODE, &code);
	r->code = (int) code;
	if (rc != CURLE_OK)
	{
		if (r->blocked)
		{
			snprintf(r->error, sizeof(r->error),
					 "destination %s is a loopback, private or link-local address (aura.http_deny_private); "
					 "allow the host with aura.http_allow_hosts", r->blocked_addr);
			r->outcome = AURA_OUT_PERMANENT;
			return;
		}
		if (rc == CURLE_WRITE_ERROR && r->resp_len > MAX_RESPONSE_BYTES / 2)
			snprintf(r->error, sizeof(r->error), "response larger than %d bytes", MAX_RESPONSE_BYTES);
		else
			snprintf(r->error, sizeof(r->error), "%s", curl_easy_strerror(rc));
		if (code > 0 && r->kind == AURA_REQ_SMTP)
			snprintf(r->error + strlen(r->error), sizeof(r->error) - strlen(r->error),
					 " (SMTP reply %ld)", code);
		r->outcome = (rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_URL_MALFORMAT)
			? AURA_OUT_PERMANENT : AURA_OUT_FAILED;
		return;
	}
	if (r->kind == AURA_REQ_SMTP || (code >= 200 && code < 300))
	{
		r->outcome = AURA_OUT_DELIVERED;
		r->error[0] = '\0';
		return;
	}
	{
		char		snippet[160];

		ResponseSnippet(r, snippet, sizeof(snippet));
		snprintf(r->error, sizeof(r->error), "HTTP %ld%s%s", code, snippet[0] ? ": " : "", snippet);
	}
	r->outcome = code == 410 ? AURA_OUT_GONE : AURA_OUT_FAILED;
}

/* free the curl resources of a request */
static void
CleanupRequest(AuraRequest *r)
{
	if (r->easy)
	{
		curl_multi_remove_handle(multi, (CURL *) r->easy);
		if (easy_pooled < EASY_POOL_MAX)
		{
			/* forget every option (URL, credentials) but keep the handle */
			curl_easy_reset((CURL *) r->easy);
			easy_pool[easy_pooled++] = (CURL *) r->easy;
		}
		else
			curl_easy_cleanup((CURL *) r->easy);
		r->easy = NULL;
	}
	if (r->slist)
		curl_slist_free_all((struct curl_slist *) r->slist);
	if (r->rcpt_list)
		curl_slist_free_all((struct curl_slist *) r->rcpt_list);
	r->slist = r->rcpt_list = NULL;
}

/*
 * AuraSendRequests
 *		Send every request, at most aura.max_concurrency at a time.  When
 *		*stop becomes true (SIGTERM) or the postmaster dies, transfers still
 *		running are abandoned and, like those never started, "released":
 *		queued again without counting an attempt.
 */
void
AuraSendRequests(AuraRequest *reqs, int n, volatile sig_atomic_t *stop)
{
	int			next = 0;
	int			active = 0;
	int			i;

	if (!curl_ready)
	{
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			elog(ERROR, "could not initialise libcurl");
		curl_ready = true;
	}
	if (multi == NULL)
	{
		multi = curl_multi_init();
		if (multi == NULL)
			elog(ERROR, "could not create a curl multi handle");
	}
	last_allowed_url = NULL;
	curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long) aura_max_concurrency);
	curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long) aura_max_concurrency);

	for (;;)
	{
		int			still = 0;
		CURLMsg    *msg;
		int			left;

		if (*stop || !PostmasterIsAlive())
			break;
		while (active < aura_max_concurrency && next < n)
		{
			AuraRequest *r = &reqs[next++];

			if (r->kind == AURA_REQ_ERROR)
				continue;
			if (!SetupEasy(r))
				continue;
			curl_multi_add_handle(multi, (CURL *) r->easy);
			active++;
		}
		if (active == 0 && next >= n)
			break;
		curl_multi_perform(multi, &still);
		while ((msg = curl_multi_info_read(multi, &left)) != NULL)
		{
			AuraRequest *r = NULL;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &r);
			FinishRequest(r, msg->data.result);
			CleanupRequest(r);
			active--;
		}
		if (active > 0)
			curl_multi_poll(multi, NULL, 0, 50, NULL);
	}

	/* stopping: whatever did not finish goes back to the queue */
	for (i = 0; i < n; i++)
	{
		AuraRequest *r = &reqs[i];

		if (r->easy != NULL || (i >= next && r->kind != AURA_REQ_ERROR))
		{
			CleanupRequest(r);
			r->outcome = AURA_OUT_RELEASED;
			r->error[0] = '\0';
		}
	}
}

/* at worker exit: close cached connections */
void
AuraChannelsShutdown(void)
{
	while (easy_pooled > 0)
		curl_easy_cleanup(easy_pool[--easy_pooled]);
	if (multi != NULL)
	{
		curl_multi_cleanup(multi);
		multi = NULL;
	}
}
