/*
 * feed.c - what every WebSocket client is sent: first a "state" snapshot,
 * then each presence change, in order.
 *
 * Changes go into one shared lws_ring; each client keeps only its tail into
 * it, and a WRITEABLE callback sends one entry at a time (as lws's
 * minimal-ws-server-ring example).  A change is serialized once, with
 * LWS_PRE headroom, and that one buffer is written to every client.
 * Clients that are caught up get it at once, without waiting for a
 * WRITEABLE callback (see offer()).  Memory is bounded by the
 * ring whatever the slowest client does: when the ring is full, the
 * clients that hold back its oldest entry and cannot take more are closed
 * with 1008 and everybody else goes on.
 *
 * Snapshots (state.c) are shared too: one database query serves every
 * client waiting for one, and each client holds a reference until its
 * copy is written.  A state is written in RELAY_SEND_CHUNK pieces (one
 * WebSocket message in fragments), one per WRITEABLE callback, so that
 * lws never holds more than a piece for a client that does not read: 60
 * such clients and a 2 MB state once cost 120 MB.  Changes a client is
 * owed are capped in bytes too (--max-client-backlog).
 *
 * A client quiet for --ping-interval is pinged, and one quiet for 7/3 of
 * it is dropped: one timer looks at every client four times an interval.
 */
#include "relay.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

struct ring_msg
{
	unsigned char *payload;		/* LWS_PRE bytes, then the JSON */
	size_t		len;
	uint64_t	end;			/* bytes queued so far, this one included */
	lws_usec_t	received;		/* when the notification reached us */
};

static struct lws_ring *ring;
static uint64_t queued_bytes;	/* of every change ever queued */
static int64_t last_seq = -1;	/* of the last change queued; -1: none yet */
static unsigned char scratch[LWS_PRE + RELAY_SEND_CHUNK];
static int	held_back;			/* dblink holds a change the ring had no room for */
static lws_sorted_usec_list_t sul_held;
static int	sent_this_turn;		/* a change was written directly this loop turn */
static lws_sorted_usec_list_t sul_turn;
static lws_sorted_usec_list_t sul_keepalive;
static lws_dll2_owner_t clients;	/* WebSocket clients */
static lws_dll2_owner_t http_waiters;	/* GET /online waiting for a snapshot */

static void
destroy_msg(void *m)
{
	struct ring_msg *msg = m;

	free(msg->payload);
	msg->payload = NULL;
}

int
feed_init(int queue_length)
{
	/* lws_ring keeps one slot free to tell full from empty */
	ring = lws_ring_create(sizeof(struct ring_msg), (size_t) queue_length + 1,
						   destroy_msg);
	return ring ? 0 : -1;
}

void
feed_stop(void)
{
	lws_sul_cancel(&sul_held);
	lws_sul_cancel(&sul_turn);
	lws_sul_cancel(&sul_keepalive);
}

void
feed_destroy(void)
{
	if (ring)
		lws_ring_destroy(ring);
	ring = NULL;
}

/* The ring position a new reader starts at: just past everything queued. */
static uint32_t
ring_head(void)
{
	uint32_t	t = lws_ring_get_oldest_tail(ring);

	lws_ring_consume(ring, &t, NULL, lws_ring_get_count_waiting_elements(ring, &t));
	return t;
}

void
snapshot_release(struct snapshot *s)
{
	if (s && --s->refs <= 0)
	{
		free(s->buf);
		free(s);
	}
}

/*
 * How often keepalive() looks: four times per interval.  Not more often:
 * every wakeup of lws's poll() loop costs about 10 ms with 10,000 clients.
 */
static lws_usec_t
keepalive_period(void)
{
	return (lws_usec_t) relay_opts.ping_interval * LWS_US_PER_SEC / 4;
}

/*
 * Pings the clients that have been quiet for the ping interval (once per
 * interval), and drops those quiet for 7/3 of it: they answered no ping.
 * A ping is written only to a socket that took everything so far; one
 * that did not is either catching up or will be dropped.
 */
static void
keepalive(lws_sorted_usec_list_t *sul)
{
	lws_usec_t	now = lws_now_usecs(),
				ping = (lws_usec_t) relay_opts.ping_interval * LWS_US_PER_SEC,
				hangup = ping * 7 / 3;
	unsigned char buf[LWS_PRE + 4];

	lws_start_foreach_dll(struct lws_dll2 *, d, clients.head)
	{
		struct client *c = lws_container_of(d, struct client, list);

		if (c->close_code)
			;
		else if (now - c->heard >= hangup)
		{
			/* no close frame: nobody would read it */
			lwsl_user("dropping a client that answered no ping\n");
			c->has_tail = 0;
			c->wants_state = 0;
			lws_set_timeout(c->wsi, PENDING_TIMEOUT_WS_PONG_CHECK_GET_PONG,
							LWS_TO_KILL_ASYNC);
		}
		else if (now - c->heard >= ping && now - c->pinged >= ping &&
				 !lws_partial_buffered(c->wsi))
		{
			c->pinged = now;
			/* with a payload: lws 4.1 reports no empty pong (RECEIVE_PONG) */
			memcpy(buf + LWS_PRE, "ping", 4);
			if (lws_write(c->wsi, buf + LWS_PRE, 4, LWS_WRITE_PING) < 0)
				lws_set_timeout(c->wsi, PENDING_TIMEOUT_LAGGING, LWS_TO_KILL_ASYNC);
		}
	}
	lws_end_foreach_dll(d);
	lws_sul_schedule(relay_context, 0, &sul_keepalive, keepalive, keepalive_period());
}

void
feed_add_client(struct client *c)
{
	lws_dll2_add_tail(&c->list, &clients);
	feed_want_snapshot(c);
	if (!sul_keepalive.list.owner)
		lws_sul_schedule(relay_context, 0, &sul_keepalive, keepalive, keepalive_period());
}

void
feed_remove_client(struct client *c)
{
	lws_dll2_remove(&c->list);
	snapshot_release(c->state);
	c->state = NULL;
	c->has_tail = 0;
	free(c->reply);
	c->reply = NULL;
}

int
feed_client_count(void)
{
	return (int) clients.count;
}

lws_dll2_owner_t *
feed_clients(void)
{
	return &clients;
}

void
feed_want_snapshot(struct client *c)
{
	c->wants_state = 1;
	sessions_want_snapshot();
}

static int
want_all_cb(struct lws_dll2 *d, void *user)
{
	struct client *c = lws_container_of(d, struct client, list);

	c->wants_state = 1;
	c->has_tail = 0;
	return 0;
}

/*
 * After the database link came back (or changes may have been lost):
 * everybody gets a fresh state, and no change until then, so that no
 * client sees the gap in seq.  The seq counting starts over too: the
 * next state's seq is that of a change received on this link.
 */
void
feed_all_want_snapshot(void)
{
	last_seq = -1;
	lws_dll2_foreach_safe(&clients, NULL, want_all_cb);
	if (clients.count)
		sessions_want_snapshot();
}

int64_t
feed_last_seq(void)
{
	return last_seq;
}

void
feed_http_wait(struct client *c)
{
	lws_dll2_add_tail(&c->list, &http_waiters);
	sessions_want_snapshot();
}

void
feed_http_cancel(struct client *c)
{
	lws_dll2_remove(&c->list);
}

static int
http_fail_cb(struct lws_dll2 *d, void *user)
{
	struct client *c = lws_container_of(d, struct client, list);

	lws_dll2_remove(d);
	http_snapshot_failed(c);
	return 0;
}

/* The link went down: /online requests get 503 rather than wait. */
void
feed_http_fail_all(void)
{
	lws_dll2_foreach_safe(&http_waiters, NULL, http_fail_cb);
}

/*
 * Frees the ring entries every reader is past.  lws's own
 * lws_ring_consume_and_update_oldest_tail() rescans all readers on every
 * send by a reader at the oldest tail, which is quadratic when thousands
 * of clients move together; doing it once per insert is linear.
 * Returns how far behind the slowest reader is.
 */
static int
update_oldest(void)
{
	uint32_t	oldest = ring_head();
	int			most = 0,
				m;

	lws_start_foreach_dll(struct lws_dll2 *, d, clients.head)
	{
		struct client *c = lws_container_of(d, struct client, list);

		if (c->has_tail)
		{
			m = (int) lws_ring_get_count_waiting_elements(ring, &c->tail);
			if (m > most)
			{
				most = m;
				oldest = c->tail;
			}
		}
	}
	lws_end_foreach_dll(d);
	lws_ring_update_oldest_tail(ring, oldest);
	return most;
}

/*
 * Asks lws to close c with code once it can write, so that the close frame
 * follows what was already sent; a client that reads nothing more is cut
 * off after 5 s anyway.
 */
void
feed_close_client(struct client *c, uint16_t code, const char *why)
{
	if (c->close_code)
		return;
	c->close_code = code;
	c->close_why = why;
	c->has_tail = 0;
	lws_callback_on_writable(c->wsi);
	lws_set_timeout(c->wsi, PENDING_TIMEOUT_LAGGING, 5);
}

/*
 * The ring is full.  Clients holding back its oldest entry whose socket is
 * choked (the kernel takes no more and lws holds a partial frame) are too
 * slow: they are closed with 1008.  Others merely have not had their turn
 * yet (a burst of changes arrived in one read): for them the caller waits.
 */
static void
cull_slowest(int most)
{
	lws_start_foreach_dll(struct lws_dll2 *, d, clients.head)
	{
		struct client *c = lws_container_of(d, struct client, list);

		if (c->has_tail &&
			(int) lws_ring_get_count_waiting_elements(ring, &c->tail) >= most &&
			(lws_partial_buffered(c->wsi) || lws_send_pipe_choked(c->wsi)))
		{
			lwsl_user("closing a client that fell %d messages behind\n", most);
			relay_metrics.slow_clients_dropped_total++;
			feed_close_client(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "too slow");
		}
	}
	lws_end_foreach_dll(d);
}

/* A client took an entry while changes were held back: look again. */
static void
retry_held(lws_sorted_usec_list_t *sul)
{
	held_back = 0;
	dblink_resume_notifications();
}

static int
write_text(struct client *c, unsigned char *buf, size_t len)
{
	if (lws_write(c->wsi, buf + LWS_PRE, len, LWS_WRITE_TEXT) < (int) len)
		return -1;
	relay_metrics.messages_sent_total++;
	return 0;
}

/*
 * Writes the change at c's tail and moves c past it.  lws_write() sends
 * at once what the socket takes and keeps the rest of the frame itself
 * (then c is lws_partial_buffered() until it is flushed).
 */
static int
send_change(struct client *c, const struct ring_msg *msg)
{
	if (write_text(c, msg->payload, msg->len))
		return -1;
	metrics_observe_delay(lws_now_usecs() - msg->received);
	lws_ring_consume(ring, &c->tail, NULL, 1);
	return 0;
}

/* The loop went round: the next change may be written directly again. */
static void
next_turn(lws_sorted_usec_list_t *sul)
{
	sent_this_turn = 0;
}

/*
 * Is c owed more than --max-client-backlog bytes of changes while its
 * socket takes no more?
 */
static int
too_far_behind(struct client *c)
{
	const struct ring_msg *oldest;

	if (!relay_opts.max_client_backlog ||
		!(oldest = lws_ring_get_element(ring, &c->tail)) ||
		queued_bytes - (oldest->end - oldest->len) <= (uint64_t) relay_opts.max_client_backlog)
		return 0;
	return lws_partial_buffered(c->wsi) || lws_send_pipe_choked(c->wsi);
}

/*
 * Offers the change just queued to every client.  The usual way, a
 * WRITEABLE callback per client, costs per client and change two changes
 * of lws's poll set and one more pass of the loop over every socket;
 * with 10,000 clients that was about half of the relay's time per change.
 * So a client that is caught up (this change is all it is owed, no state
 * is pending, nothing of an earlier frame is buffered) is written to here
 * and now; the others catch up in order through WRITEABLE.  Only the first
 * change of a loop turn goes out this way: the rest of a burst waits for
 * WRITEABLE callbacks, one frame per client per turn, so that a burst
 * cannot hold up the loop.
 */
static void
offer(const struct ring_msg *msg)
{
	int			direct = !sent_this_turn;

	if (direct)
	{
		sent_this_turn = 1;
		lws_sul_schedule(relay_context, 0, &sul_turn, next_turn, 1);
	}
	lws_start_foreach_dll(struct lws_dll2 *, d, clients.head)
	{
		struct client *c = lws_container_of(d, struct client, list);

		/* (no "continue" in lws_start_foreach_dll: it would skip the step) */
		if (!c->has_tail)
			;
		else if (direct && !c->state && !lws_partial_buffered(c->wsi) &&
				 lws_ring_get_count_waiting_elements(ring, &c->tail) == 1)
		{
			if (send_change(c, msg))
			{
				/* the socket is gone: lws closes it, outside this loop */
				c->has_tail = 0;
				lws_set_timeout(c->wsi, PENDING_TIMEOUT_LAGGING, LWS_TO_KILL_ASYNC);
			}
		}
		else if (too_far_behind(c))
		{
			lwsl_user("closing a client owed more than %d bytes\n",
					  relay_opts.max_client_backlog);
			relay_metrics.slow_clients_dropped_total++;
			feed_close_client(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "too slow");
		}
		else
			lws_callback_on_writable(c->wsi);
	}
	lws_end_foreach_dll(d);
}

/*
 * One change from the presence worker (checked by origin.c): its frame is
 * built and queued.  Returns -1 if the ring is full of entries clients
 * are still owed: the caller keeps the change and offers it again when
 * told (backpressure: PostgreSQL queues notifications).
 */
int
feed_event(const struct presence_event *ev)
{
	struct ring_msg msg;
	struct jbuf frame = {0};
	uint32_t	at;
	int			most;

	most = update_oldest();
	if (!lws_ring_get_count_free_elements(ring))
	{
		cull_slowest(most);
		update_oldest();
		if (!lws_ring_get_count_free_elements(ring))
		{
			held_back = 1;
			return -1;
		}
	}

	if (event_frame(ev, &frame))
	{
		jbuf_free(&frame);
		return 0;
	}
	msg.payload = frame.p;
	msg.len = frame.len;
	msg.end = queued_bytes + frame.len;
	msg.received = lws_now_usecs();
	at = ring_head();
	if (lws_ring_insert(ring, &msg, 1) != 1)
	{
		destroy_msg(&msg);
		return 0;
	}
	queued_bytes = msg.end;
	last_seq = ev->seq;
	relay_metrics.notifications_total++;
	offer(lws_ring_get_element(ring, &at));
	return 0;
}

/*
 * A snapshot arrived: every client waiting for one gets it, and from then
 * on every change queued after it.  Changes the database sent before this
 * result are already in it; those it sends after are queued after it.
 */
void
feed_snapshot(struct snapshot *s)
{
	/* 0: no deadline (--send-timeout 0) */
	lws_usec_t	due = relay_opts.send_timeout ? lws_now_usecs() +
		(lws_usec_t) relay_opts.send_timeout * LWS_US_PER_SEC : 0;

	s->ring_head = ring_head();
	lws_start_foreach_dll(struct lws_dll2 *, d, clients.head)
	{
		struct client *c = lws_container_of(d, struct client, list);

		/* one whose last state is half written gets a later one */
		if (c->wants_state && !c->close_code && !c->state_sent)
		{
			snapshot_release(c->state);
			c->state = s;
			s->refs++;
			c->state_due = due;
			c->wants_state = 0;
			/* its changes start here, held back until the state is out */
			c->tail = s->ring_head;
			c->has_tail = 1;
			lws_callback_on_writable(c->wsi);
		}
	}
	lws_end_foreach_dll(d);
	deadline_note(due);

	lws_start_foreach_dll_safe(struct lws_dll2 *, d, d1, http_waiters.head)
	{
		struct client *c = lws_container_of(d, struct client, list);

		lws_dll2_remove(d);
		s->refs++;
		http_snapshot_ready(c, s);
	}
	lws_end_foreach_dll_safe(d, d1);

	snapshot_release(s);
}

/*
 * Writes the next piece of c's state: the whole state in place if it is
 * one piece (every client's frame header is the same), else a copy of
 * the piece, as one fragment.  Returns -1 if the socket is gone.
 */
static int
write_state(struct client *c)
{
	struct snapshot *s = c->state;
	size_t		left = s->len - c->state_sent,
				n = left > RELAY_SEND_CHUNK ? RELAY_SEND_CHUNK : left;
	int			first = !c->state_sent,
				last = n == left;
	unsigned char *at = s->buf + LWS_PRE + c->state_sent;

	if (!(first && last))
	{
		memcpy(scratch + LWS_PRE, at, n);
		at = scratch + LWS_PRE;
	}
	if (lws_write(c->wsi, at, n, (enum lws_write_protocol)
				  lws_write_ws_flags(LWS_WRITE_TEXT, first, last)) < (int) n)
		return -1;
	c->state_sent += n;
	if (!last)
		return 0;
	relay_metrics.messages_sent_total++;
	c->state = NULL;
	c->state_sent = 0;
	snapshot_release(s);
	/* it asked for a newer one meanwhile (feed_snapshot() skipped it) */
	if (c->wants_state)
		sessions_want_snapshot();
	return 0;
}

/* A frame for c alone (an answer to its message); replaces an unsent one. */
void
feed_reply(struct client *c, struct jbuf *frame)
{
	if (frame->oom || c->close_code)
	{
		jbuf_free(frame);
		return;
	}
	free(c->reply);
	c->reply = frame->p;
	c->reply_len = frame->len;
	memset(frame, 0, sizeof(*frame));
	lws_callback_on_writable(c->wsi);
}

/*
 * c's token is valid until exp (seconds since the epoch): it is closed
 * with 4001 then (deadline.c), unless a fresh token moves it on.
 */
void
feed_set_expiry(struct client *c, double exp)
{
	double		left;
	struct timespec ts;

	/* exp is on the wall clock, deadlines on lws's monotonic one */
	clock_gettime(CLOCK_REALTIME, &ts);
	left = exp - ((double) ts.tv_sec + ts.tv_nsec / 1e9);
	if (left > 10.0 * 365 * 24 * 3600)
		left = 10.0 * 365 * 24 * 3600;
	c->expires = lws_now_usecs() + (left > 0 ? (lws_usec_t) (left * LWS_US_PER_SEC) : 0) + 1;
	deadline_note(c->expires);
}

static const char *
close_reason_text(uint16_t code)
{
	switch (code)
	{
		case LWS_CLOSE_STATUS_POLICY_VIOLATION:
			return "policy violation";
		case LWS_CLOSE_STATUS_GOINGAWAY:
			return "relay shutting down";
		case LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE:
			return "message too large";
		case LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE:
			return "text frames only";
		default:
			return "presence error";
	}
}

/*
 * c's socket can take a frame: send the next thing it is owed, one frame
 * per callback so that no client hogs the loop.  Returns -1 to close c.
 */
int
feed_write(struct client *c)
{
	const struct ring_msg *msg;

	if (c->close_code)
	{
		const char *why = c->close_why ? c->close_why : close_reason_text(c->close_code);

		lws_close_reason(c->wsi, (enum lws_close_status) c->close_code,
						 (unsigned char *) why, strlen(why));
		return -1;
	}

	/* a state begun goes on: nothing may come between its fragments */
	if (c->state && c->state_sent)
	{
		if (write_state(c))
			return -1;
	}
	else if (c->reply)
	{
		if (lws_write(c->wsi, c->reply + LWS_PRE, c->reply_len, LWS_WRITE_TEXT) <
			(int) c->reply_len)
			return -1;
		relay_metrics.messages_sent_total++;
		free(c->reply);
		c->reply = NULL;
	}
	else if (c->state)
	{
		if (write_state(c))
			return -1;
	}
	else if (c->has_tail && (msg = lws_ring_get_element(ring, &c->tail)))
	{
		if (send_change(c, msg))
			return -1;
		/* room may have appeared; one look per millisecond is plenty */
		if (held_back && !sul_held.list.owner)
			lws_sul_schedule(relay_context, 0, &sul_held, retry_held, LWS_US_PER_MS);
	}

	if (c->state || c->reply || (c->has_tail && lws_ring_get_element(ring, &c->tail)))
		lws_callback_on_writable(c->wsi);
	return 0;
}

/* Shutdown: every client is told 1001 (going away). */
void
feed_close_all(void)
{
	lws_start_foreach_dll(struct lws_dll2 *, d, clients.head)
	{
		feed_close_client(lws_container_of(d, struct client, list),
						  LWS_CLOSE_STATUS_GOINGAWAY, NULL);
	}
	lws_end_foreach_dll(d);
}
