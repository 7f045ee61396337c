/*
 * feed.c - the global feed: every client of it gets a "state" snapshot
 * (presence.online_users()), then every user's status changes, in order;
 * GET /online gets the same snapshot.
 *
 * Changes are broadcast (out.c's ring); a snapshot is read from the
 * database when someone waits for one, and one query serves every client
 * and request waiting: each gets the one frame, by reference.  A client
 * follows the ring from the moment its state is sent to it, so that the
 * changes after the snapshot come after it and those before are in it.
 * Until then it gets no change: after the link came back, or when changes
 * may have been lost (feed_resync()), nobody sees a gap in seq.
 */
#include "relay.h"

#include <stdlib.h>

#define RETRY_US	(1 * LWS_US_PER_SEC)

static lws_dll2_owner_t waiters;	/* GET /online waiting for a snapshot */
static int	wanting;			/* clients waiting for a state */
static int	reading;			/* the query is out */
static int	stale;				/* ... and what it reads may be out of date */
static lws_sorted_usec_list_t sul_retry;
static const char *snapshot_sql;	/* for the link's extension version */

/* c waits for the next snapshot, and gets no change until then. */
static void
want(struct client *c)
{
	if (!c->wants_state)
		wanting++;
	c->wants_state = 1;
	out_unfollow(c);
}

static void
unwant(struct client *c)
{
	if (c->wants_state)
		wanting--;
	c->wants_state = 0;
}

/* c joins the global feed: a state first, then every change. */
void
feed_add(struct client *c)
{
	want(c);
	queue_kick();
}

void
feed_remove(struct client *c)
{
	unwant(c);
	out_unfollow(c);
}

/*
 * Everybody gets a fresh state, and no change until then (the link came
 * back, or changes may have been lost).
 */
void
feed_resync(void)
{
	lws_start_foreach_dll(struct lws_dll2 *, d, out_clients()->head)
	{
		struct client *c = lws_container_of(d, struct client, out.list);

		if (c->wants_state || c->out.following)
			want(c);
	}
	lws_end_foreach_dll(d);
	stale = reading;
	queue_kick();
}

/* A change from the presence worker (checked by origin.c), to every client. */
int
feed_event(const struct presence_event *ev)
{
	struct jbuf b = {0};
	struct frame *f;

	if (event_frame(ev, &b) || !(f = frame_make(&b, lws_now_usecs())))
	{
		jbuf_free(&b);
		return 0;
	}
	if (out_broadcast(f))
	{
		frame_release(f);
		return -1;
	}
	relay_metrics.notifications_total++;
	return 0;
}

void
feed_wait(struct waiter *w)
{
	lws_dll2_add_tail(&w->list, &waiters);
	queue_kick();
}

void
feed_cancel(struct waiter *w)
{
	lws_dll2_remove(&w->list);
}

/*
 * The link is up: snapshots are read as its extension version has them
 * (a relay may face a database not updated yet).  main.c resyncs next.
 */
void
feed_link_up(const char *extversion)
{
	snapshot_sql = state_query(extversion);
}

/* The link went down: /online requests get 503 rather than wait. */
void
feed_link_down(void)
{
	lws_start_foreach_dll_safe(struct lws_dll2 *, d, d1, waiters.head)
	{
		struct waiter *w = lws_container_of(d, struct waiter, list);

		lws_dll2_remove(d);
		w->failed(w);
	}
	lws_end_foreach_dll_safe(d, d1);
	reading = 0;
}

static void
retry(lws_sorted_usec_list_t *sul)
{
	queue_kick();
}

/*
 * A snapshot arrived: every client waiting for one gets it, and from then
 * on every change broadcast after it.  Changes the database sent before
 * this result are already in it; those it sends after are broadcast after
 * it.
 */
static void
deliver(struct frame *s)
{
	s->is_state = 1;
	lws_start_foreach_dll(struct lws_dll2 *, d, out_clients()->head)
	{
		struct client *c = lws_container_of(d, struct client, out.list);

		if (c->wants_state)
		{
			unwant(c);
			out_send(c, s);
			out_follow(c);
		}
	}
	lws_end_foreach_dll(d);

	lws_start_foreach_dll_safe(struct lws_dll2 *, d, d1, waiters.head)
	{
		struct waiter *w = lws_container_of(d, struct waiter, list);

		lws_dll2_remove(d);
		frame_hold(s);
		w->ready(w, s);
	}
	lws_end_foreach_dll_safe(d, d1);
}

static void
snapshot_done(PGresult *res, void *arg)
{
	struct jbuf b = {0};
	struct frame *s;

	reading = 0;
	if (!res)
		return;					/* link lost: it is asked for again when it is back */
	if (stale)
	{
		/* sent before changes were found missing: read another */
		stale = 0;
		queue_kick();
		return;
	}
	if (PQresultStatus(res) != PGRES_TUPLES_OK ||
		state_build(res, origin_last_seq(), &b) || !(s = frame_make(&b, 0)))
	{
		/* those waiting keep waiting; ask again in a while */
		lwsl_err("reading online_users() failed: %s", PQresultErrorMessage(res));
		jbuf_free(&b);
		lws_sul_schedule(relay_context, 0, &sul_retry, retry, RETRY_US);
		return;
	}
	deliver(s);
	frame_release(s);
}

/* queue.c's turn: reads a snapshot if one is wanted; 1 if it sent the query. */
int
feed_pump(void)
{
	if ((!wanting && !waiters.count) || reading || sul_retry.list.owner || !snapshot_sql)
		return 0;
	if (dblink_send(snapshot_sql, 0, NULL, snapshot_done, NULL))
		return 0;
	reading = 1;
	return 1;
}

void
feed_cleanup(void)
{
	lws_sul_cancel(&sul_retry);
}
