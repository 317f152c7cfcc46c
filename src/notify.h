/*
 * notify.h
 *	  Notifications: GUCs, the dispatcher's shared state and the outbound
 *	  request the worker hands to the channel senders.
 */
#ifndef AURA_NOTIFY_H
#define AURA_NOTIFY_H

#include "postgres.h"

#include <signal.h>

#include "datatype/timestamp.h"
#include "storage/proc.h"
#include "storage/spin.h"

/* GUCs (defined in notify.c) */
extern int	aura_max_concurrency;
extern int	aura_http_timeout;
extern int	aura_batch_size;
extern int	aura_lease_time;
extern int	aura_poll_interval;
extern bool aura_dispatcher_paused;
extern char *aura_ca_file;
extern bool aura_http_deny_private;
extern char *aura_http_allow_hosts;

/* state of the dispatcher shared by every backend */
typedef struct AuraWorkerShared
{
	slock_t		mutex;
	pid_t		pid;			/* 0 when not running */
	PGPROC	   *proc;			/* its latch is what commits set */
	TimestampTz started;
	TimestampTz last_loop;
	int			in_flight;
	uint64		sent;
	uint64		failed;
	uint64		loops;
	char		last_error[256];
} AuraWorkerShared;

extern AuraWorkerShared *aura_worker_shared;

/* kinds of outbound request */
typedef enum AuraReqKind
{
	AURA_REQ_HTTP,
	AURA_REQ_SMTP,
	AURA_REQ_ERROR				/* rendering failed: record the error, send nothing */
} AuraReqKind;

/* outcome of one request, as aura._record() understands it */
typedef enum AuraOutcome
{
	AURA_OUT_DELIVERED,
	AURA_OUT_FAILED,			/* retry later */
	AURA_OUT_GONE,				/* 410: no retry, disable the endpoint */
	AURA_OUT_PERMANENT,			/* no retry */
	AURA_OUT_RELEASED			/* not attempted: the worker is stopping */
} AuraOutcome;

typedef struct AuraRequest
{
	int64		restaurant_id;
	int64		id;
	AuraReqKind kind;
	char	   *url;
	char	  **headers;
	int			nheaders;
	char	   *body;
	char	   *username;
	char	   *password;
	char	   *mail_from;
	char	  **rcpt;
	int			nrcpt;
	char	   *tls;
	int			timeout_ms;
	/* outcome */
	AuraOutcome outcome;
	int			code;			/* HTTP status or SMTP reply, 0 if none */
	int			latency_ms;
	char		error[512];
	/* sender state */
	void	   *easy;
	void	   *slist;
	void	   *rcpt_list;
	size_t		upload_off;
	size_t		resp_len;
	char		resp[256];
	bool		host_allowed;
	bool		blocked;
	char		blocked_addr[64];
	int64		start_us;
} AuraRequest;

/* channels.c: send every request concurrently; stop is polled */
extern void AuraSendRequests(AuraRequest *reqs, int n, volatile sig_atomic_t *stop);
extern void AuraChannelsShutdown(void);

/* worker.c */
extern void AuraRegisterWorker(void);
PGDLLEXPORT extern void AuraWorkerMain(Datum arg);

#endif							/* AURA_NOTIFY_H */
