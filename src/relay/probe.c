/*
 * probe.c - does the database link really receive notifications?
 *
 * A pooler in transaction mode (pgbouncer) accepts LISTEN and then delivers
 * nothing: between transactions the relay has no server connection of its
 * own.  A NOTIFY sent on the link itself would not show it, since a
 * session's own notification comes back at the end of its own transaction,
 * pooler or not.  So once the link is up, the probe opens a second,
 * short-lived connection to the same server, sends a NOTIFY from there on a
 * channel private to this link (never the presence channel), and the link
 * must hear it within PROBE_WAIT_US.
 *
 * The probe connection lives for a few milliseconds, so it is driven by a
 * timer that polls its socket (poll(2), no waiting) rather than adopted
 * into lws like the link's.
 */
#include "relay.h"

#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROBE_TICK_US		(5 * LWS_US_PER_MS)
#define PROBE_DEADLINE_US	(10 * LWS_US_PER_SEC)	/* to connect and notify */
#define PROBE_WAIT_US		(5 * LWS_US_PER_SEC)	/* then to hear it */
#define PROBE_RETRY_US		(30 * LWS_US_PER_SEC)	/* after a probe that could not run */

enum probe_step
{
	STEP_IDLE,
	STEP_CONNECTING,
	STEP_NOTIFYING,
	STEP_WAITING,				/* sent: the link should hear it */
};

static enum probe_step step;
static enum probe_result result;
static PGconn *pconn;
static PostgresPollingStatusType wants;
static char channel[64];
static char keyword_host[256],
			keyword_port[32],
			keyword_hostaddr[64];
static const char *conninfo;
static probe_done_cb done_cb;
static lws_usec_t deadline;
static lws_sorted_usec_list_t sul_tick;
static lws_sorted_usec_list_t sul_retry;

static void tick(lws_sorted_usec_list_t *sul);
static void start(lws_sorted_usec_list_t *sul);

enum probe_result
probe_result(void)
{
	return result;
}

const char *
probe_channel(void)
{
	return channel;
}

static void
close_conn(void)
{
	if (pconn)
		PQfinish(pconn);
	pconn = NULL;
}

/* The probe could not run (not the link's fault): try again later. */
static void
give_up(const char *what)
{
	const char *why = pconn ? PQerrorMessage(pconn) : "";

	lwsl_warn("database link: cannot check that notifications arrive: %s%s%s",
			  what, *why ? ": " : "", *why ? why : "\n");
	close_conn();
	step = STEP_IDLE;
	lws_sul_cancel(&sul_tick);
	lws_sul_schedule(relay_context, 0, &sul_retry, start, PROBE_RETRY_US);
}

static void
finish(enum probe_result r)
{
	close_conn();
	step = STEP_IDLE;
	result = r;
	lws_sul_cancel(&sul_tick);
	if (done_cb)
		done_cb(r);
}

/* Is the probe connection's socket ready for what libpq waits for? */
static int
ready(short events)
{
	struct pollfd p = {.fd = PQsocket(pconn), .events = events};

	return p.fd >= 0 && poll(&p, 1, 0) > 0;
}

static void
send_notify(void)
{
	const char *values[2] = {channel, "probe"};

	if (PQsetnonblocking(pconn, 1) ||
		!PQsendQueryParams(pconn, "SELECT pg_catalog.pg_notify($1, $2)", 2,
						   NULL, values, NULL, NULL, 0))
	{
		give_up("cannot send NOTIFY");
		return;
	}
	step = STEP_NOTIFYING;
}

/* Reads the NOTIFY's result once it is complete; 1 when it is. */
static int
notify_done(void)
{
	PGresult   *r;
	int			ok = 1;

	if (PQflush(pconn) < 0 || (ready(POLLIN) && !PQconsumeInput(pconn)))
	{
		give_up("connection lost");
		return 0;
	}
	if (PQisBusy(pconn))
		return 0;
	while ((r = PQgetResult(pconn)))
	{
		ok = ok && PQresultStatus(r) == PGRES_TUPLES_OK;
		PQclear(r);
	}
	if (!ok)
	{
		give_up("NOTIFY failed");
		return 0;
	}
	return 1;
}

static void
tick(lws_sorted_usec_list_t *sul)
{
	if (step == STEP_WAITING)
	{
		lwsl_err("database link: a notification sent to it did not arrive in %d s: "
				 "it cannot LISTEN (a pooler in transaction mode?); the relay "
				 "needs a direct or session-mode connection\n",
				 (int) (PROBE_WAIT_US / LWS_US_PER_SEC));
		finish(PROBE_FAILED);
		return;
	}
	if (lws_now_usecs() > deadline)
	{
		give_up("timed out");
		return;
	}
	if (step == STEP_CONNECTING &&
		ready(wants == PGRES_POLLING_READING ? POLLIN : POLLOUT))
	{
		wants = PQconnectPoll(pconn);
		if (wants == PGRES_POLLING_FAILED)
		{
			give_up("cannot connect");
			return;
		}
		if (wants == PGRES_POLLING_OK)
			send_notify();
	}
	if (step == STEP_NOTIFYING && notify_done())
	{
		close_conn();
		step = STEP_WAITING;
		lws_sul_schedule(relay_context, 0, &sul_tick, tick, PROBE_WAIT_US);
		return;
	}
	if (step != STEP_IDLE)
		lws_sul_schedule(relay_context, 0, &sul_tick, tick, PROBE_TICK_US);
}

/* Connects to the server the link is on, by the link's own conninfo. */
static void
start(lws_sorted_usec_list_t *sul)
{
	const char *keys[8] = {"dbname", "fallback_application_name",
	"target_session_attrs", "host", "port"};
	const char *vals[8] = {conninfo, "presence-relay-probe", "any",
	keyword_host, keyword_port};
	int			n = 5;

	if (*keyword_hostaddr)
	{
		keys[n] = "hostaddr";
		vals[n++] = keyword_hostaddr;
	}
	pconn = PQconnectStartParams(keys, vals, 1);
	if (!pconn || PQstatus(pconn) == CONNECTION_BAD)
	{
		give_up("cannot start connecting");
		return;
	}
	step = STEP_CONNECTING;
	wants = PGRES_POLLING_WRITING;
	deadline = lws_now_usecs() + PROBE_DEADLINE_US;
	lws_sul_schedule(relay_context, 0, &sul_tick, tick, PROBE_TICK_US);
}

/*
 * Probes the link (connected by conninfo, now LISTENing on probe_channel()),
 * from the server it is on; done is called with the verdict, unless the
 * probe is stopped first.  Until then the result is PROBE_UNCHECKED.
 */
void
probe_start(const char *ci, PGconn *link, probe_done_cb done)
{
	probe_stop();
	conninfo = ci;
	done_cb = done;
	lws_strncpy(keyword_host, PQhost(link) ? PQhost(link) : "", sizeof(keyword_host));
	lws_strncpy(keyword_port, PQport(link) ? PQport(link) : "", sizeof(keyword_port));
	lws_strncpy(keyword_hostaddr, PQhostaddr(link) ? PQhostaddr(link) : "",
				sizeof(keyword_hostaddr));
	start(NULL);
}

/*
 * Names the link's probe channel, unique to this relay and link:
 * presence_relay_probe_<pid>_<random>.
 */
void
probe_new_channel(void)
{
	uint32_t	r = 0;

	lws_get_random(relay_context, &r, sizeof(r));
	lws_snprintf(channel, sizeof(channel), "presence_relay_probe_%d_%08x",
				 (int) getpid(), r);
}

/*
 * A notification on the link: 1 if it was the probe's (and is consumed).
 * It may arrive before the probe connection has read the end of its NOTIFY.
 */
int
probe_notification(const PGnotify *n)
{
	if (!*channel || strcmp(n->relname, channel))
		return 0;
	if (step == STEP_NOTIFYING || step == STEP_WAITING)
	{
		lwsl_notice("database link: notifications arrive\n");
		finish(PROBE_OK);
	}
	return 1;
}

/* The link is gone, or the relay stops: no verdict. */
void
probe_stop(void)
{
	close_conn();
	step = STEP_IDLE;
	result = PROBE_UNCHECKED;
	lws_sul_cancel(&sul_tick);
	lws_sul_cancel(&sul_retry);
}
