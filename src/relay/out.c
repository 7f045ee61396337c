/*
 * out.c - what each WebSocket client is sent, and in what order.
 *
 * A client's frames come from two places.  Frames every client of the
 * global feed gets go into one shared lws_ring ("broadcast"), and each
 * client that follows it keeps only its tail into it (lws's
 * minimal-ws-server-ring example).  Frames for one client, or for some
 * (a state, a channel's change, an answer to its message), go into a short
 * queue of its own ("send").  Every frame is stamped when it is made, and a
 * client is written its frames in stamp order, whichever place the next one
 * is in: so a state sent to a client and the changes broadcast after it
 * arrive in the order they were made.  A frame is serialized once and
 * shared by reference.
 *
 * One frame per WRITEABLE callback, and a big one (a state) in
 * RELAY_SEND_CHUNK pieces, one WebSocket message in fragments, so that lws
 * never holds more than a piece for a client that does not read.  Clients
 * that are caught up get the first frame of a loop turn at once, without
 * waiting for a WRITEABLE callback (see offer_now()).
 *
 * A frame that a newer one would make useless (a large channel's diff) is
 * not queued behind others: its maker asks out_busy(), and out_later()
 * has it called back (later) when the client's own queue is empty, to make
 * then one frame of everything the client is owed.
 *
 * Memory is bounded whatever the slowest client does: when the ring is
 * full, the clients that hold back its oldest entry and cannot take more
 * are closed with 1008 and the caller is told to wait (backpressure: the
 * database link holds the change back); a client owed more than
 * --max-client-backlog bytes while its socket takes no more, or more than
 * --queue-length frames of its own, is closed with 1008 too.
 *
 * A client quiet for --ping-interval is pinged, and one quiet for 7/3 of
 * it is dropped: one timer looks at every client four times an interval.
 */
#include "relay.h"

#include <stdlib.h>
#include <string.h>

struct ring_msg
{
	struct frame *frame;
	uint64_t	end;			/* bytes broadcast so far, this one included */
};

static struct lws_ring *ring;
static uint64_t broadcast_bytes;	/* of every frame ever broadcast */
static uint64_t next_stamp;
static unsigned char scratch[LWS_PRE + RELAY_SEND_CHUNK];
static int	refused;			/* a broadcast was refused: room() when there is room */
static void (*room_cb) (void);
static void (*later_cb) (struct client *c);
static int	making;				/* in later_cb: frames are queued, not written */
static lws_sorted_usec_list_t sul_room;
static uint64_t turn_stamp;		/* the frame written directly this loop turn */
static lws_sorted_usec_list_t sul_turn;
static lws_sorted_usec_list_t sul_keepalive;
static lws_dll2_owner_t clients;
static int	closing;			/* shutting down: no new clients */

/*
 * A frame of b's JSON (b is emptied), stamped now.  received: when the
 * notification it shows reached the relay, for the delay histogram (0 for
 * anything else).  One reference, the caller's; NULL if out of memory.
 */
struct frame *
frame_make(struct jbuf *b, lws_usec_t received)
{
	struct frame *f;

	if (b->oom || !(f = calloc(1, sizeof(*f))))
	{
		jbuf_free(b);
		return NULL;
	}
	f->refs = 1;
	f->stamp = ++next_stamp;
	f->received = received;
	f->len = b->len;
	f->buf = b->p;
	memset(b, 0, sizeof(*b));
	return f;
}

void
frame_hold(struct frame *f)
{
	f->refs++;
}

void
frame_release(struct frame *f)
{
	if (f && --f->refs <= 0)
	{
		free(f->buf);
		free(f);
	}
}

static void
destroy_msg(void *m)
{
	struct ring_msg *msg = m;

	frame_release(msg->frame);
	msg->frame = NULL;
}

int
out_init(int queue_length, void (*room) (void), void (*later) (struct client *c))
{
	room_cb = room;
	later_cb = later;
	/* lws_ring keeps one slot free to tell full from empty */
	ring = lws_ring_create(sizeof(struct ring_msg), (size_t) queue_length + 1,
						   destroy_msg);
	return ring ? 0 : -1;
}

void
out_stop(void)
{
	lws_sul_cancel(&sul_room);
	lws_sul_cancel(&sul_turn);
	lws_sul_cancel(&sul_keepalive);
}

void
out_destroy(void)
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
		struct client *c = lws_container_of(d, struct client, out.list);
		struct outbox *o = &c->out;

		if (o->close_code)
			;
		else if (now - o->heard >= hangup)
		{
			/* no close frame: nobody would read it */
			lwsl_user("dropping a client that answered no ping\n");
			o->following = 0;
			lws_set_timeout(c->wsi, PENDING_TIMEOUT_WS_PONG_CHECK_GET_PONG,
							LWS_TO_KILL_ASYNC);
		}
		else if (now - o->heard >= ping && now - o->pinged >= ping &&
				 !lws_partial_buffered(c->wsi))
		{
			o->pinged = now;
			/* with a payload: lws 4.1 reports no empty pong (RECEIVE_PONG) */
			memcpy(buf + LWS_PRE, "ping", 4);
			if (lws_write(c->wsi, buf + LWS_PRE, 4, LWS_WRITE_PING) < 0)
				lws_set_timeout(c->wsi, PENDING_TIMEOUT_LAGGING, LWS_TO_KILL_ASYNC);
		}
	}
	lws_end_foreach_dll(d);
	lws_sul_schedule(relay_context, 0, &sul_keepalive, keepalive, keepalive_period());
}

/* A WebSocket client is established: it may be sent frames from now on. */
void
out_add(struct client *c)
{
	c->out.heard = lws_now_usecs();
	lws_dll2_add_tail(&c->out.list, &clients);
	relay_metrics.clients = (int) clients.count;
	if (!sul_keepalive.list.owner)
		lws_sul_schedule(relay_context, 0, &sul_keepalive, keepalive, keepalive_period());
}

/* c is gone: what it was still owed is let go. */
void
out_remove(struct client *c)
{
	struct outbox *o = &c->out;

	lws_dll2_remove(&o->list);
	relay_metrics.clients = (int) clients.count;
	while (o->qlen)
	{
		frame_release(o->q[o->qhead]);
		o->qhead = (o->qhead + 1) % o->qcap;
		o->qlen--;
	}
	free(o->q);
	o->q = NULL;
	o->qcap = o->qbytes = 0;
	frame_release(o->cur);
	o->cur = NULL;
	o->following = 0;
	o->later = 0;
	o->states = 0;
}

int
out_count(void)
{
	return (int) clients.count;
}

lws_dll2_owner_t *
out_clients(void)
{
	return &clients;
}

/* c said something (a message, a pong): it is alive. */
void
out_heard(struct client *c)
{
	c->out.heard = lws_now_usecs();
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
		struct client *c = lws_container_of(d, struct client, out.list);

		if (c->out.following)
		{
			m = (int) lws_ring_get_count_waiting_elements(ring, &c->out.tail);
			if (m > most)
			{
				most = m;
				oldest = c->out.tail;
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
out_close(struct client *c, uint16_t code, const char *why)
{
	if (c->out.close_code)
		return;
	c->out.close_code = code;
	c->out.close_why = why;
	c->out.following = 0;
	lws_callback_on_writable(c->wsi);
	lws_set_timeout(c->wsi, PENDING_TIMEOUT_LAGGING, 5);
}

static void
close_slow(struct client *c, const char *log)
{
	lwsl_user("%s", log);
	relay_metrics.slow_clients_dropped_total++;
	out_close(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "too slow");
}

static int
choked(struct client *c)
{
	return lws_partial_buffered(c->wsi) || lws_send_pipe_choked(c->wsi);
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
		struct client *c = lws_container_of(d, struct client, out.list);

		if (c->out.following &&
			(int) lws_ring_get_count_waiting_elements(ring, &c->out.tail) >= most &&
			choked(c))
		{
			lwsl_user("closing a client that fell %d messages behind\n", most);
			relay_metrics.slow_clients_dropped_total++;
			out_close(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "too slow");
		}
	}
	lws_end_foreach_dll(d);
}

/* A client took a broadcast after one was refused: say there is room. */
static void
tell_room(lws_sorted_usec_list_t *sul)
{
	refused = 0;
	if (room_cb)
		room_cb();
}

/* The broadcast at c's tail, if it follows the ring and is owed one. */
static const struct ring_msg *
ring_next(struct client *c)
{
	return c->out.following ? lws_ring_get_element(ring, &c->out.tail) : NULL;
}

/*
 * Bytes of changes (and answers) c is owed, wherever they are.  States do
 * not count: --send-timeout bounds them.
 */
static uint64_t
owed_bytes(struct client *c)
{
	const struct ring_msg *oldest = ring_next(c);
	uint64_t	n = c->out.qbytes;

	if (oldest)
		n += broadcast_bytes - (oldest->end - oldest->frame->len);
	if (c->out.cur && !c->out.cur->is_state)
		n += c->out.cur->len - c->out.cur_sent;
	return n;
}

/*
 * Is c owed more than --max-client-backlog bytes of changes while its
 * socket takes no more?
 */
static int
too_far_behind(struct client *c)
{
	return relay_opts.max_client_backlog &&
		owed_bytes(c) > (uint64_t) relay_opts.max_client_backlog && choked(c);
}

/* c has nothing to write before a new frame, and its socket takes one now. */
static int
caught_up(struct client *c)
{
	return !c->out.close_code && !c->out.cur && !c->out.qlen &&
		!lws_partial_buffered(c->wsi);
}

/*
 * May f be written directly now?  Only the first frame of a loop turn goes
 * out this way: the rest of a burst waits for WRITEABLE callbacks, one
 * frame per client per turn, so that a burst cannot hold up the loop.
 */
static void
next_turn(lws_sorted_usec_list_t *sul)
{
	turn_stamp = 0;
}

static int
direct_turn(const struct frame *f)
{
	if (f->len > RELAY_SEND_CHUNK)
		return 0;
	if (!turn_stamp)
	{
		turn_stamp = f->stamp;
		lws_sul_schedule(relay_context, 0, &sul_turn, next_turn, 1);
	}
	return turn_stamp == f->stamp;
}

/*
 * A frame has been written whole: counted, and its delay observed if it
 * shows a change.
 */
static void
written(const struct frame *f)
{
	relay_metrics.messages_sent_total++;
	if (f->received)
		metrics_observe_delay(lws_now_usecs() - f->received);
}

/*
 * Writes f, whole, to c now (it is caught up and f is one piece).
 * Returns -1 if the socket is gone.
 */
static int
write_whole(struct client *c, struct frame *f)
{
	if (lws_write(c->wsi, f->buf + LWS_PRE, f->len, LWS_WRITE_TEXT) < (int) f->len)
		return -1;
	written(f);
	return 0;
}

/* The socket is gone: lws closes it, outside the caller's loop. */
static void
drop(struct client *c)
{
	c->out.following = 0;
	lws_set_timeout(c->wsi, PENDING_TIMEOUT_LAGGING, LWS_TO_KILL_ASYNC);
}

/*
 * Offers the broadcast just queued to every client that follows the ring.
 * The usual way, a WRITEABLE callback per client, costs per client and
 * change two changes of lws's poll set and one more pass of the loop over
 * every socket; with 10,000 clients that was about half of the relay's
 * time per change.  So a client that is caught up (this frame is all it
 * is owed, nothing of an earlier frame is buffered) is written to here and
 * now; the others catch up in order through WRITEABLE.
 */
static void
offer_now(const struct ring_msg *msg)
{
	int			direct = direct_turn(msg->frame);

	lws_start_foreach_dll(struct lws_dll2 *, d, clients.head)
	{
		struct client *c = lws_container_of(d, struct client, out.list);

		/* (no "continue" in lws_start_foreach_dll: it would skip the step) */
		if (!c->out.following)
			;
		else if (direct && caught_up(c) &&
				 lws_ring_get_count_waiting_elements(ring, &c->out.tail) == 1)
		{
			if (write_whole(c, msg->frame))
				drop(c);
			else
				lws_ring_consume(ring, &c->out.tail, NULL, 1);
		}
		else if (too_far_behind(c))
		{
			lwsl_user("closing a client owed more than %d bytes\n",
					  relay_opts.max_client_backlog);
			relay_metrics.slow_clients_dropped_total++;
			out_close(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "too slow");
		}
		else
			lws_callback_on_writable(c->wsi);
	}
	lws_end_foreach_dll(d);
}

/*
 * Queues f (the caller's reference is taken) for every client that follows
 * the ring.  Returns -1, and takes nothing, if the ring is full of entries
 * clients are still owed: the caller offers it again after room().
 */
int
out_broadcast(struct frame *f)
{
	struct ring_msg msg;
	uint32_t	at;
	int			most;

	most = update_oldest();
	if (!lws_ring_get_count_free_elements(ring))
	{
		cull_slowest(most);
		update_oldest();
		if (!lws_ring_get_count_free_elements(ring))
		{
			refused = 1;
			return -1;
		}
	}
	msg.frame = f;
	msg.end = broadcast_bytes + f->len;
	at = ring_head();
	if (lws_ring_insert(ring, &msg, 1) != 1)
	{
		frame_release(f);
		return 0;
	}
	broadcast_bytes = msg.end;
	offer_now(lws_ring_get_element(ring, &at));
	return 0;
}

/* c gets every frame broadcast from now on (after what it was sent so far). */
void
out_follow(struct client *c)
{
	if (c->out.close_code)
		return;
	c->out.tail = ring_head();
	c->out.following = 1;
}

/* c gets no broadcast until it follows the ring again; those it was owed are dropped. */
void
out_unfollow(struct client *c)
{
	c->out.following = 0;
}

/* Appends f (a reference of c's own) to c's queue; -1 if out of memory. */
static int
enqueue(struct outbox *o, struct frame *f)
{
	struct frame **q;
	uint32_t	i,
				cap;

	if (o->qlen == o->qcap)
	{
		cap = o->qcap ? o->qcap * 2 : 4;
		if (!(q = malloc(sizeof(*q) * cap)))
			return -1;
		for (i = 0; i < o->qlen; i++)
			q[i] = o->q[(o->qhead + i) % o->qcap];
		free(o->q);
		o->q = q;
		o->qcap = cap;
		o->qhead = 0;
	}
	o->q[(o->qhead + o->qlen++) % o->qcap] = f;
	if (!f->is_state)
		o->qbytes += f->len;
	return 0;
}

/* A state for c is owed: it must be out within --send-timeout. */
static void
state_owed(struct client *c)
{
	if (c->out.states++ || !relay_opts.send_timeout)
		return;
	c->out.state_due = lws_now_usecs() +
		(lws_usec_t) relay_opts.send_timeout * LWS_US_PER_SEC;
	deadline_note(c->out.state_due);
}

/* A state went out: the next one owed, if any, gets a deadline of its own. */
static void
state_paid(struct client *c)
{
	c->out.state_due = 0;
	if (--c->out.states > 0 && relay_opts.send_timeout)
	{
		c->out.state_due = lws_now_usecs() +
			(lws_usec_t) relay_opts.send_timeout * LWS_US_PER_SEC;
		deadline_note(c->out.state_due);
	}
}

/*
 * Sends f to c, after everything c is owed (the caller keeps its own
 * reference).  A client that is caught up gets it at once; one owed more
 * than --queue-length frames of its own, or too many bytes while its
 * socket takes no more, is closed with 1008.
 */
void
out_send(struct client *c, struct frame *f)
{
	struct outbox *o = &c->out;

	if (o->close_code)
		return;
	if (!f->is_state && !making && caught_up(c) && !ring_next(c) && direct_turn(f))
	{
		if (write_whole(c, f))
			drop(c);
		return;
	}
	if (o->qlen >= (uint32_t) relay_opts.queue_length)
	{
		close_slow(c, "closing a client owed too many frames\n");
		return;
	}
	if (enqueue(o, f))
		return;
	frame_hold(f);
	if (f->is_state)
		state_owed(c);
	if (too_far_behind(c))
	{
		lwsl_user("closing a client owed more than %d bytes\n",
				  relay_opts.max_client_backlog);
		relay_metrics.slow_clients_dropped_total++;
		out_close(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "too slow");
		return;
	}
	lws_callback_on_writable(c->wsi);
}

/*
 * Has c frames of its own still to write (or is it closing)?  A caller
 * with a frame that a newer one would replace asks before sending it.
 */
int
out_busy(const struct client *c)
{
	const struct outbox *o = &c->out;

	return o->qlen || o->cur || o->later || o->close_code;
}

/*
 * c is owed frames that are best made when it can take them (a large
 * channel's catch-up diff): later(c) is called once its own queue is
 * empty and its socket takes more.
 */
void
out_later(struct client *c)
{
	if (c->out.close_code || c->out.later)
		return;
	c->out.later = 1;
	lws_callback_on_writable(c->wsi);
}

/* A frame for c alone (an answer to its message), from b (emptied). */
void
out_reply(struct client *c, struct jbuf *b)
{
	struct frame *f = frame_make(b, 0);

	if (!f)
		return;
	out_send(c, f);
	frame_release(f);
}

/*
 * The next frame c is owed, taken from wherever the older one is: its own
 * queue or the ring.  NULL if none.
 */
static struct frame *
take_next(struct client *c)
{
	struct outbox *o = &c->out;
	const struct ring_msg *msg = ring_next(c);
	struct frame *f;

	if (o->qlen && (!msg || o->q[o->qhead]->stamp < msg->frame->stamp))
	{
		f = o->q[o->qhead];
		o->qhead = (o->qhead + 1) % o->qcap;
		o->qlen--;
		if (!f->is_state)
			o->qbytes -= f->len;
		return f;				/* the queue's reference */
	}
	if (!msg)
		return NULL;
	f = msg->frame;
	frame_hold(f);
	lws_ring_consume(ring, &o->tail, NULL, 1);
	/* room may have appeared; one look per millisecond is plenty */
	if (refused && !sul_room.list.owner)
		lws_sul_schedule(relay_context, 0, &sul_room, tell_room, LWS_US_PER_MS);
	return f;
}

/*
 * Writes the next piece of c's current frame: the whole frame in place if
 * it is one piece (every client's frame header is the same), else a copy
 * of the piece, as one fragment.  Returns -1 if the socket is gone.
 */
static int
write_piece(struct client *c)
{
	struct outbox *o = &c->out;
	struct frame *f = o->cur;
	size_t		left = f->len - o->cur_sent,
				n = left > RELAY_SEND_CHUNK ? RELAY_SEND_CHUNK : left;
	int			first = !o->cur_sent,
				last = n == left;
	unsigned char *at = f->buf + LWS_PRE + o->cur_sent;

	if (!(first && last))
	{
		memcpy(scratch + LWS_PRE, at, n);
		at = scratch + LWS_PRE;
	}
	if (lws_write(c->wsi, at, n, (enum lws_write_protocol)
				  lws_write_ws_flags(LWS_WRITE_TEXT, first, last)) < (int) n)
		return -1;
	o->cur_sent += n;
	if (!last)
		return 0;
	written(f);
	if (f->is_state)
		state_paid(c);
	o->cur = NULL;
	o->cur_sent = 0;
	frame_release(f);
	return 0;
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
 * c's socket can take a frame: send the next piece it is owed, one per
 * callback so that no client hogs the loop.  Returns -1 to close c.
 */
int
out_write(struct client *c)
{
	struct outbox *o = &c->out;

	if (o->close_code)
	{
		const char *why = o->close_why ? o->close_why : close_reason_text(o->close_code);

		lws_close_reason(c->wsi, (enum lws_close_status) o->close_code,
						 (unsigned char *) why, strlen(why));
		return -1;
	}
	if (!o->cur && !o->qlen && o->later)
	{
		/* what it is owed is made now, as of now, and queued */
		o->later = 0;
		making = 1;
		if (later_cb)
			later_cb(c);
		making = 0;
	}
	/* a frame begun goes on: nothing may come between its fragments */
	if (!o->cur)
		o->cur = take_next(c);
	if (o->cur && write_piece(c))
		return -1;
	if (o->cur || o->qlen || o->later || ring_next(c))
		lws_callback_on_writable(c->wsi);
	return 0;
}

/* Shutdown: every client is told 1001 (going away), and no new one is let in. */
void
out_close_all(void)
{
	closing = 1;
	lws_start_foreach_dll(struct lws_dll2 *, d, clients.head)
	{
		out_close(lws_container_of(d, struct client, out.list),
				  LWS_CLOSE_STATUS_GOINGAWAY, NULL);
	}
	lws_end_foreach_dll(d);
}

int
out_closing(void)
{
	return closing;
}

static lws_usec_t
earliest(lws_usec_t a, lws_usec_t b)
{
	return !a ? b : !b ? a : a < b ? a : b;
}

/*
 * The deadlines of clients (deadline.c calls this when one is due): a
 * client whose token expired is closed with 4001, one whose state has not
 * gone out within --send-timeout with 1008 (a client that does not read
 * must not pin a snapshot).  Returns the next deadline, 0 if none.
 */
lws_usec_t
out_deadlines(lws_usec_t now)
{
	lws_usec_t	next = 0;

	lws_start_foreach_dll(struct lws_dll2 *, d, clients.head)
	{
		struct client *c = lws_container_of(d, struct client, out.list);

		if (c->out.close_code)
			;
		else if (c->expires && now >= c->expires)
		{
			relay_metrics.tokens_expired_total++;
			out_close(c, RELAY_CLOSE_TOKEN_EXPIRED, "token expired");
		}
		else if (c->out.state_due && now >= c->out.state_due)
		{
			relay_metrics.send_timeouts_total++;
			lwsl_user("closing a client whose state did not go out in %d s\n",
					  relay_opts.send_timeout);
			out_close(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "too slow");
		}
		else
			next = earliest(next, earliest(c->expires, c->out.state_due));
	}
	lws_end_foreach_dll(d);
	return next;
}
