/*
 * dblink.c - the relay's one PostgreSQL connection, driven by the lws loop.
 *
 * libpq runs non-blocking (PQconnectStartParams/PQconnectPoll, then
 * PQsendQueryParams/PQconsumeInput/PQflush).  A dup() of its socket is
 * adopted into lws as a raw *file* (lws's minimal-raw-file example), so lws
 * only reports readiness and libpq reads and writes its own bytes; lws
 * closes the dup when the wsi goes, libpq its own socket in PQfinish().
 * While connecting, libpq opens a new socket for every address and host it
 * tries (host=a,b target_session_attrs=read-write): each one is adopted in
 * turn, and each gets its own connect timeout (conninfo.c says where the
 * next attempt starts after one ran out).
 *
 * One query is in flight at a time; queue.c decides which, and each
 * query's result goes to the callback sent with it.  The link LISTENs on
 * the extension's channel, so notifications arrive here too; and on a
 * channel of its own, on which probe.c checks that notifications do arrive
 * (not through a pooler in transaction mode).  When the link breaks it is
 * rebuilt with lws's retry backoff.
 *
 * The link knows nothing of what uses it: it tells the handlers main.c
 * gave it (struct dblink_handlers) that it is up or down, that a
 * notification came, and that it is idle, as libpq tells a notice receiver.
 */
#include "relay.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

enum link_state
{
	LINK_DOWN,					/* waiting for the next try */
	LINK_CONNECTING,			/* PQconnectPoll() under way */
	LINK_SETUP,					/* connected: reading settings, LISTEN */
	LINK_UP,
};

static const char *conninfo;
static const struct dblink_handlers *handlers;
static int	stopped;
static PGconn *conn;
static struct lws *conn_wsi;	/* the adopted dup() of PQsocket() */
static int	conn_dupfd = -1;	/* that dup */
static dev_t conn_dev;			/* the socket it is, whatever its number */
static ino_t conn_ino;
static struct lws *writing_wsi;	/* whose WRITEABLE callback is running */
static int	aborted;			/* connect_timeout() shut the socket down */
static int	first_host;			/* of conninfo's hosts, where to start */
static enum link_state state;
static PostgresPollingStatusType poll_wants;
static int	ever_up;
static int	session_timeout_ms;
static char extversion[32];

static dblink_result_cb job_cb;
static void *job_arg;
static int	job_busy;
static PGresult *job_result;
static PGnotify *held;			/* a notification the feed had no room for */

static lws_sorted_usec_list_t sul_retry;
static lws_sorted_usec_list_t sul_timeout;
static lws_sorted_usec_list_t sul_write;
static lws_usec_t connect_timeout_us;
static lws_sorted_usec_list_t sul_down;
static lws_sorted_usec_list_t sul_stable;
static uint16_t retry_count;
static dblink_result_cb lost_cb;	/* job the link died under */
static void *lost_arg;

/*
 * Backoff between tries: quick at first, then every 1.5 s (plus up to 10 %
 * jitter, so at most 1.65 s).  It must stay well under the extension's
 * presence.reconnect_grace (5 s by default): a server that restarted or a
 * standby promoted gives the relay's users that long before showing them
 * offline (docs/operations.md, "Standby and failover").
 */
static const uint32_t backoff_ms[] = {100, 250, 500, 1000, 1500};
static const lws_retry_bo_t backoff = {
	.retry_ms_table = backoff_ms,
	.retry_ms_table_count = LWS_ARRAY_SIZE(backoff_ms),
	.conceal_count = LWS_RETRY_CONCEAL_ALWAYS,
	.jitter_percent = 10,
};

/*
 * The backoff starts over only once a link has stayed up this long: one
 * that fails right after setup (a missing grant, say) is retried at the
 * backoff's pace, not in a tight loop.
 */
#define STABLE_US	(10 * LWS_US_PER_SEC)

/* per address tried, unless the conninfo's connect_timeout says otherwise */
#define CONNECT_TIMEOUT_S 10

static void link_connect(lws_sorted_usec_list_t *sul);
static void setup_settings(PGresult *res, void *arg);
static void send_listen(const char *channel, dblink_result_cb cb);

int
dblink_is_up(void)
{
	return state == LINK_UP;
}

int
dblink_is_idle(void)
{
	return state == LINK_UP && !job_busy;
}

/* Lets lws close the adopted descriptor; its callbacks are ignored since. */
static void
drop_wsi(void)
{
	if (conn_wsi)
		lws_set_timeout(conn_wsi, PENDING_TIMEOUT_KILLED_BY_PARENT,
						LWS_TO_KILL_ASYNC);
	conn_wsi = NULL;
	conn_dupfd = -1;
}

/* Tells the rest of the relay, from a clean stack, that the link is gone. */
static void
announce_down(lws_sorted_usec_list_t *sul)
{
	dblink_result_cb cb = lost_cb;

	lost_cb = NULL;
	if (cb)
		cb(NULL, lost_arg);
	handlers->down();
}

static void
link_fail(const char *what)
{
	int			was_up = state == LINK_UP;
	const char *why = conn ? PQerrorMessage(conn) : "";

	/* libpq's messages end with a newline */
	lwsl_err("database link: %s%s%s", what, *why ? ": " : "", *why ? why : "\n");
	if (job_busy)
	{
		lost_cb = job_cb;
		lost_arg = job_arg;
	}
	job_busy = 0;
	job_cb = NULL;
	if (job_result)
		PQclear(job_result);
	job_result = NULL;
	/* the fresh state sent after reconnecting supersedes it */
	if (held)
		PQfreemem(held);
	held = NULL;
	probe_stop();
	drop_wsi();
	if (conn)
		PQfinish(conn);
	conn = NULL;
	state = LINK_DOWN;
	relay_metrics.db_up = 0;
	lws_sul_cancel(&sul_timeout);
	lws_sul_cancel(&sul_write);
	lws_sul_cancel(&sul_stable);
	if (was_up || lost_cb)
		lws_sul_schedule(relay_context, 0, &sul_down, announce_down, 1);
	if (!stopped)
		lws_retry_sul_schedule(relay_context, 0, &sul_retry, &backoff,
							   link_connect, &retry_count);
}

/* Another module found the link unusable: it is rebuilt, with backoff. */
void
dblink_fail(const char *why)
{
	if (state != LINK_DOWN)
		link_fail(why);
}

static void
ask_write(lws_sorted_usec_list_t *sul)
{
	if (conn_wsi)
		lws_callback_on_writable(conn_wsi);
}

/*
 * Asks lws to say when libpq's socket is writable.  lws drops a raw
 * file's interest in POLLOUT after its WRITEABLE callback returns, so a
 * request made inside that callback would be lost: over TCP, libpq wants
 * to write twice in a row (the connect completing, then the startup
 * packet), and the second wish was never heard.  Such a request is made
 * from a timer, on the next turn of the loop, instead.
 */
static void
want_write(void)
{
	if (!conn_wsi)
		return;
	if (conn_wsi == writing_wsi)
		lws_sul_schedule(relay_context, 0, &sul_write, ask_write, 1);
	else
		lws_callback_on_writable(conn_wsi);
}

/* The next attempt starts with the host after the one libpq is on. */
static void
skip_current_host(void)
{
	int			n = conninfo_hosts(),
				i = conninfo_host_index(PQhost(conn), PQport(conn));

	if (n > 1)
		first_host = ((i >= 0 ? i : first_host) + 1) % n;
}

/*
 * No answer from the address libpq is trying: in non-blocking mode libpq
 * has no timeout of its own.  The socket is shut down, and libpq hears of
 * it as of a hangup (connect_hangup()): during the TCP handshake (a host
 * that drops packets) it moves on to its next address or host, as after a
 * refused connection; later (a frozen server) it gives up the attempt,
 * and the next one starts with the host after this one.
 */
static void
connect_timeout(lws_sorted_usec_list_t *sul)
{
	if (state != LINK_CONNECTING)
		return;
	lwsl_warn("database link: no answer from %s port %s in %d s\n",
			  PQhost(conn), PQport(conn), (int) (connect_timeout_us / LWS_US_PER_SEC));
	skip_current_host();
	if (!aborted && conn_dupfd >= 0 && shutdown(conn_dupfd, SHUT_RDWR) == 0)
	{
		aborted = 1;
		lws_sul_schedule(relay_context, 0, &sul_timeout, connect_timeout,
						 connect_timeout_us);
		return;
	}
	link_fail("connection timed out");
}

/*
 * Adopts libpq's socket unless it is the one adopted already.  libpq opens
 * a new socket for every address and host it tries, and the new one may
 * get the old one's number: a socket is known by its inode (the dup we
 * hold keeps the old one alive until lws closes it).  Each new socket gets
 * a fresh connect timeout.
 */
static int
watch_socket(void)
{
	lws_sock_file_fd_type u;
	int			fd = PQsocket(conn);
	struct stat st;

	if (fd < 0 || fstat(fd, &st))
		return -1;
	if (conn_wsi && st.st_dev == conn_dev && st.st_ino == conn_ino)
		return 0;
	drop_wsi();
	u.filefd = dup(fd);
	if (u.filefd < 0)
		return -1;
	conn_wsi = lws_adopt_descriptor_vhost(relay_vhost, LWS_ADOPT_RAW_FILE_DESC,
										  u, "presence-db", NULL);
	if (!conn_wsi)
	{
		close(u.filefd);
		return -1;
	}
	conn_dupfd = u.filefd;
	conn_dev = st.st_dev;
	conn_ino = st.st_ino;
	aborted = 0;
	if (state == LINK_CONNECTING)
		lws_sul_schedule(relay_context, 0, &sul_timeout, connect_timeout,
						 connect_timeout_us);
	return 0;
}

/* The conninfo's connect_timeout (at least 2 s, as libpq), or ours. */
static lws_usec_t
read_connect_timeout(void)
{
	PQconninfoOption *opts = PQconninfo(conn),
			   *o;
	int			s = CONNECT_TIMEOUT_S;

	for (o = opts; o && o->keyword; o++)
		if (!strcmp(o->keyword, "connect_timeout") && o->val && atoi(o->val) > 0)
			s = atoi(o->val) < 2 ? 2 : atoi(o->val);
	PQconninfoFree(opts);
	return (lws_usec_t) s * LWS_US_PER_SEC;
}

static void
link_connect(lws_sorted_usec_list_t *sul)
{
	/*
	 * conninfo may be a URI or "k=v ..."; NULL leaves it to PG* variables.
	 * The keywords after it override it: UTF-8, which is what clients get.
	 * (search_path is pinned by the first query: link_connected().)
	 */
	const char *keys[8] = {"dbname", "fallback_application_name",
	"client_encoding"};
	const char *vals[8] = {conninfo, "presence-relay", "UTF8"};

	/* then the host lists again, rotated, if a host failed to answer */
	conninfo_params(first_host, keys + 3, vals + 3);
	conn = PQconnectStartParams(keys, vals, 1);
	if (!conn || PQstatus(conn) == CONNECTION_BAD)
	{
		link_fail("cannot start connecting");
		return;
	}
	state = LINK_CONNECTING;
	/* libpq has started a connect(): it wants to hear of writability */
	poll_wants = PGRES_POLLING_WRITING;
	connect_timeout_us = read_connect_timeout();
	if (watch_socket())
	{
		link_fail("cannot watch the connection's socket");
		return;
	}
	want_write();
}

static void
flush_output(void)
{
	int			r = PQflush(conn);

	if (r < 0)
		link_fail("cannot send");
	else if (r > 0)
		want_write();
}

/*
 * Sends one query.  Returns 0 if it was sent, and then cb is called once
 * with its result (NULL if the link died first), which it must not keep.
 * Only one query at a time: check dblink_is_idle().
 */
int
dblink_send(const char *sql, int nparams, const char *const *values,
			dblink_result_cb cb, void *arg)
{
	if (state < LINK_SETUP || job_busy)
		return -1;
	if (!PQsendQueryParams(conn, sql, nparams, NULL, values, NULL, NULL, 0))
	{
		link_fail("cannot send a query");
		return -1;
	}
	job_busy = 1;
	job_cb = cb;
	job_arg = arg;
	/* if this fails, cb still hears of it, with NULL */
	flush_output();
	return 0;
}

static void
link_connected(void)
{
	lws_sul_cancel(&sul_timeout);
	if (PQsetnonblocking(conn, 1))
	{
		link_fail("cannot make the connection non-blocking");
		return;
	}
	state = LINK_SETUP;
	if (watch_socket())
	{
		link_fail("cannot watch the connection's socket");
		return;
	}
	/*
	 * The extension's own settings say where it notifies and how often.
	 * The same statement pins search_path for the session: set here rather
	 * than as a startup option, which poolers such as pgbouncer refuse.
	 */
	dblink_send("SELECT (SELECT setting FROM pg_catalog.pg_settings"
				"         WHERE name OPERATOR(pg_catalog.=) 'presence.channel'),"
				"       (SELECT setting::pg_catalog.int4 FROM pg_catalog.pg_settings"
				"         WHERE name OPERATOR(pg_catalog.=) 'presence.session_timeout'),"
				"       (SELECT extversion FROM pg_catalog.pg_extension"
				"         WHERE extname OPERATOR(pg_catalog.=) 'presence'),"
				"       pg_catalog.set_config('search_path', 'pg_catalog', false)",
				0, NULL, setup_settings, NULL);
}

/*
 * The probe's verdict.  A link that hears no notifications is useless to
 * the relay: with other hosts to try, it moves on to the next one (a
 * direct connection listed after a pooler); with none, it stays, and
 * /healthz says what is wrong.
 */
static void
probe_done(enum probe_result r)
{
	if (r != PROBE_FAILED || conninfo_hosts() < 2)
		return;
	skip_current_host();
	link_fail("no notifications on this host, trying the next");
}

/* The link stayed up STABLE_US: the next loss retries quickly again. */
static void
link_stable(lws_sorted_usec_list_t *sul)
{
	retry_count = 0;
}

static void
setup_probe_listen(PGresult *res, void *arg)
{
	struct dblink_info info;

	if (!res)
		return;
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
	{
		link_fail("LISTEN failed");
		return;
	}
	state = LINK_UP;
	relay_metrics.db_up = 1;
	lws_sul_schedule(relay_context, 0, &sul_stable, link_stable, STABLE_US);
	if (ever_up)
		relay_metrics.db_reconnects_total++;
	ever_up = 1;
	lwsl_user("database link up (session_timeout %d ms)\n", session_timeout_ms);
	probe_start(conninfo, conn, probe_done);
	info.session_timeout_ms = session_timeout_ms;
	info.extversion = extversion;
	handlers->up(&info);
}

static void
setup_listen(PGresult *res, void *arg)
{
	if (!res)
		return;
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
	{
		link_fail("LISTEN failed");
		return;
	}
	probe_new_channel();
	send_listen(probe_channel(), setup_probe_listen);
}

/* Sends LISTEN channel, quoted. */
static void
send_listen(const char *channel, dblink_result_cb cb)
{
	char	   *ident = PQescapeIdentifier(conn, channel, strlen(channel));
	char		sql[256];

	if (!ident)
	{
		link_fail("bad channel name");
		return;
	}
	lws_snprintf(sql, sizeof(sql), "LISTEN %s", ident);
	PQfreemem(ident);
	dblink_send(sql, 0, NULL, cb, NULL);
}

static void
setup_settings(PGresult *res, void *arg)
{
	if (!res)
		return;
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
	{
		link_fail("cannot read presence settings");
		return;
	}
	if (PQgetisnull(res, 0, 0) || PQgetisnull(res, 0, 1))
	{
		link_fail("presence is not loaded: shared_preload_libraries must "
				  "include 'presence'");
		return;
	}
	if (PQgetisnull(res, 0, 2))
	{
		link_fail("extension presence is not installed in this database "
				  "(CREATE EXTENSION presence, in presence.database)");
		return;
	}
	session_timeout_ms = atoi(PQgetvalue(res, 0, 1));
	lws_snprintf(extversion, sizeof(extversion), "%s", PQgetvalue(res, 0, 2));
	send_listen(PQgetvalue(res, 0, 0), setup_listen);
}

/* Passes notifications on, holding one back if it is refused for now. */
static void
take_notifications(void)
{
	while (held || (conn && (held = PQnotifies(conn))))
	{
		/* the relay's own probe, sent from its other connection */
		if (probe_notification(held))
		{
			PQfreemem(held);
			held = NULL;
			continue;
		}
		if (handlers->notification(held->be_pid, held->extra))
			return;				/* held: dblink_resume_notifications() or the next result */
		PQfreemem(held);
		held = NULL;
	}
}

void
dblink_resume_notifications(void)
{
	take_notifications();
}

/*
 * Hands over complete results, then notifications: those that arrived in
 * the same read as a snapshot are delivered after it, which is correct
 * for the ones sent after it was taken and harmless (they repeat what it
 * already shows, in order) for any sent before.
 */
static void
drain(void)
{
	PGresult   *r;

	while (conn && job_busy && !PQisBusy(conn))
	{
		r = PQgetResult(conn);
		if (r)
		{
			/* keep an error if there was one, else the last result */
			if (job_result && PQresultStatus(job_result) == PGRES_FATAL_ERROR)
				PQclear(r);
			else
			{
				if (job_result)
					PQclear(job_result);
				job_result = r;
			}
			continue;
		}
		r = job_result;
		job_result = NULL;
		job_busy = 0;
		if (job_cb)
			job_cb(r, job_arg);
		if (r)
			PQclear(r);
	}
	take_notifications();
	if (conn && PQstatus(conn) == CONNECTION_BAD)
		link_fail("connection lost");
	if (state == LINK_UP && !job_busy)
		handlers->idle();
}

/*
 * One step of PQconnectPoll(), on the readiness it asked for.  Each step
 * may have moved libpq to another socket (the next address or host),
 * which is then adopted, and says what to wait for next: POLLIN is always
 * watched, POLLOUT only when asked for.
 */
static void
connect_poll(void)
{
	poll_wants = PQconnectPoll(conn);
	switch (poll_wants)
	{
		case PGRES_POLLING_FAILED:
			link_fail("cannot connect");
			return;
		case PGRES_POLLING_OK:
			link_connected();
			return;
		case PGRES_POLLING_READING:
		case PGRES_POLLING_WRITING:
		case PGRES_POLLING_ACTIVE:	/* unused by libpq since 7.x */
			if (watch_socket())
			{
				link_fail("cannot watch the connection's socket");
				return;
			}
			if (poll_wants != PGRES_POLLING_READING)
			{
				poll_wants = PGRES_POLLING_WRITING;
				want_write();
			}
			return;
	}
}

/*
 * lws closed the socket being tried: it hung up (reset, or aborted by
 * connect_timeout()).  Whether that ends the attempt or only this address
 * is for libpq to say; if it stays on the dead socket, the attempt is over.
 */
static void
connect_hangup(void)
{
	dev_t		dev = conn_dev;
	ino_t		ino = conn_ino;

	connect_poll();
	if (state == LINK_CONNECTING && conn_dev == dev && conn_ino == ino)
		link_fail("connection closed");
}

int
dblink_callback(struct lws *wsi, enum lws_callback_reasons reason,
				void *user, void *in, size_t len)
{
	switch (reason)
	{
		case LWS_CALLBACK_RAW_RX_FILE:
			if (wsi != conn_wsi)
				return -1;		/* a descriptor we already let go */
			if (state == LINK_CONNECTING)
			{
				if (poll_wants == PGRES_POLLING_READING)
					connect_poll();
				break;
			}
			if (!PQconsumeInput(conn))
			{
				link_fail("connection lost");
				break;
			}
			if (PQisnonblocking(conn) && PQflush(conn) > 0)
				want_write();
			drain();
			break;

		case LWS_CALLBACK_RAW_WRITEABLE_FILE:
			if (wsi != conn_wsi)
				return -1;
			writing_wsi = wsi;
			if (state == LINK_CONNECTING)
			{
				if (poll_wants == PGRES_POLLING_WRITING)
					connect_poll();
			}
			else
				flush_output();
			writing_wsi = NULL;
			break;

		case LWS_CALLBACK_RAW_CLOSE_FILE:
			/* lws saw a hangup: a lost link, or an address that failed */
			if (wsi == conn_wsi)
			{
				conn_wsi = NULL;
				conn_dupfd = -1;
				if (state == LINK_CONNECTING)
					connect_hangup();
				else
					link_fail("connection closed");
			}
			break;

		default:
			break;
	}
	return 0;
}

int
dblink_start(const char *ci, const struct dblink_handlers *h)
{
	conninfo = ci;
	handlers = h;
	stopped = 0;
	conninfo_init(ci);
	lws_sul_schedule(relay_context, 0, &sul_retry, link_connect, 1);
	return 0;
}

/* Shutdown: the relay's bound sessions end with this connection. */
void
dblink_stop(void)
{
	stopped = 1;
	if (held)
		PQfreemem(held);
	held = NULL;
	probe_stop();
	lws_sul_cancel(&sul_retry);
	lws_sul_cancel(&sul_timeout);
	lws_sul_cancel(&sul_write);
	lws_sul_cancel(&sul_down);
	lws_sul_cancel(&sul_stable);
	if (job_result)
		PQclear(job_result);
	job_result = NULL;
	job_busy = 0;
	drop_wsi();
	if (conn)
		PQfinish(conn);
	conn = NULL;
	state = LINK_DOWN;
	conninfo_cleanup();
}
