/*
 * origin.c - which notifications to believe.
 *
 * Any role may NOTIFY on the extension's channel, so the relay forwards
 * only what the presence worker sent: a notification's sending pid must
 * be presence.stats().worker_pid, and its payload must have the
 * documented shape (event.c).  Everything else is dropped and counted.
 *
 * The worker's pid is read when the link comes up (notifications wait,
 * held in dblink, until it is known) and again when a notification comes
 * from another pid, since the worker may have been restarted.  A flood of
 * forged notifications must not turn into a flood of queries, so a
 * re-read happens at most once per REREAD_US: the first stranger in a
 * while is held until the answer (no loss if it was a new worker); later
 * ones are dropped, and one more read follows at the end of the period.
 * If that read finds a new worker, what was dropped may have been real:
 * hooks->lost() says so, and whoever keeps state reads it again.
 *
 * What passes goes to hooks->event() (main.c: the global feed, the
 * channels).  The seq of the last change it took is origin_last_seq(): -1
 * until the first one on this link, and again after a new worker.
 *
 * The relay sees every notification, so it also sees what no client can
 * with a filtered feed: a seq that does not follow the last one (a worker
 * tick that failed after numbering its changes, say).  Then changes were
 * missed, and hooks->lost() has every state read again.
 */
#include "relay.h"

#include <stdlib.h>

#define REREAD_US	(1 * LWS_US_PER_SEC)

static const char sql_worker_pid[] = "SELECT s.worker_pid FROM presence.stats() AS s";

static const struct origin_hooks *hooks;
static int	link_up;
static int64_t last_seq = -1;
static int64_t gap_seen;		/* the seq whose gap was reported */
static int	known;				/* worker_pid is current */
static int	worker_pid;			/* 0: no worker running */
static int	have_pid;			/* worker_pid was read on this link */
static int	reading;			/* the query is out */
static int	want_read;
static int	dropped;			/* strangers dropped since the last read */
static lws_usec_t next_read_ok;
static lws_sorted_usec_list_t sul_reread;

static void
read_done(PGresult *res, void *arg)
{
	int			before = worker_pid;

	reading = 0;
	if (!res)
		return;					/* the link is gone; link_up() starts over */
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
	{
		/* without the worker's pid nothing can be forwarded: fail loudly */
		lwsl_err("cannot read presence.stats(): %s", PQresultErrorMessage(res));
		lwsl_err("the relay's role needs GRANT EXECUTE ON FUNCTION presence.stats()\n");
		dblink_fail("cannot tell the presence worker's notifications from others");
		return;
	}
	worker_pid = PQgetisnull(res, 0, 0) ? 0 : atoi(PQgetvalue(res, 0, 0));
	known = 1;
	relay_metrics.worker_pid_reads_total++;
	if (have_pid && worker_pid != before)
	{
		lwsl_user("the presence worker is now pid %d (was %d)\n", worker_pid, before);
		if (dropped)
		{
			last_seq = -1;
			hooks->lost();
		}
	}
	have_pid = 1;
	dropped = 0;
}

/* queue.c's turn: sends the read if one is due; 1 if it did. */
int
origin_pump(void)
{
	if (!link_up || !want_read || reading)
		return 0;
	if (lws_now_usecs() < next_read_ok)
		return 0;
	if (dblink_send(sql_worker_pid, 0, NULL, read_done, NULL))
		return 0;
	want_read = 0;
	reading = 1;
	known = 0;					/* notifications wait for the answer */
	next_read_ok = lws_now_usecs() + REREAD_US;
	return 1;
}

static void
reread(lws_sorted_usec_list_t *sul)
{
	queue_kick();
}

/* Asks for a read: now if allowed, else at the end of the period. */
static void
want_reread(void)
{
	lws_usec_t	now = lws_now_usecs();

	want_read = 1;
	if (now >= next_read_ok)
		queue_kick();
	else if (!sul_reread.list.owner)
		lws_sul_schedule(relay_context, 0, &sul_reread, reread, next_read_ok - now);
}

/*
 * dblink hands over one notification.  Returns -1 to keep it for later
 * (dblink_resume_notifications(), or after the next query's results), 0
 * once it is forwarded or dropped.
 */
int
origin_notification(int be_pid, const char *payload)
{
	struct presence_event ev;

	if (!known)
	{
		if (!reading)
			want_reread();
		return -1;
	}
	if (be_pid != worker_pid)
	{
		if (!reading && !want_read && lws_now_usecs() >= next_read_ok)
		{
			/* maybe a new worker: everything waits for the answer */
			known = 0;
			want_reread();
			return -1;
		}
		relay_metrics.notifications_ignored_sender++;
		if (!dropped++)
			lwsl_notice("ignoring a notification from pid %d, not the presence worker (%d)\n",
						be_pid, worker_pid);
		if (!want_read && !reading)
			want_reread();
		return 0;
	}
	if (event_parse(payload, strlen(payload), &ev))
	{
		relay_metrics.notifications_ignored_malformed++;
		lwsl_warn("ignoring a notification of the presence worker that is not as documented\n");
		return 0;
	}
	/* (a change held back and offered again is not a gap twice) */
	if (last_seq >= 0 && ev.seq != last_seq + 1 && ev.seq != gap_seen)
	{
		gap_seen = ev.seq;
		relay_metrics.seq_gaps_total++;
		lwsl_user("seq %lld after %lld: changes were missed, reading states again\n",
				  (long long) ev.seq, (long long) last_seq);
		hooks->lost();
	}
	if (hooks->event(&ev))
		return -1;
	last_seq = ev.seq;
	return 0;
}

int64_t
origin_last_seq(void)
{
	return last_seq;
}

void
origin_init(const struct origin_hooks *h)
{
	hooks = h;
}

void
origin_link_up(void)
{
	link_up = 1;
	last_seq = -1;
	known = 0;
	have_pid = 0;
	reading = 0;
	dropped = 0;
	next_read_ok = 0;
	want_read = 1;
}

void
origin_link_down(void)
{
	link_up = 0;
	known = 0;
	reading = 0;
	want_read = 0;
	lws_sul_cancel(&sul_reread);
}

void
origin_cleanup(void)
{
	origin_link_down();
}
