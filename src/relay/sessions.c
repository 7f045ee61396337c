/*
 * sessions.c - each authenticated WebSocket is one bound presence session.
 *
 * The relay talks to the database in batches, one query in flight on its
 * one link (queue.c says whose turn it is): connects of new sockets,
 * disconnects of closed ones, and every interval one heartbeat for all its
 * sessions (a third of presence.session_timeout, so that a lost heartbeat
 * or two is not fatal).  A login storm of a thousand sockets is a handful
 * of queries, not a thousand.  Whoever needs to know that a socket's
 * session is in the registry (channels it joins) hears it through
 * sessions_hooks.registered().
 *
 * Sessions are "bound": if the relay dies, PostgreSQL ends them with its
 * connection, so no ghost stays online.  For the same reason, when the
 * link comes back every live socket is connected again.
 *
 * A client may also hide its own user ({"type":"visibility"}): that is
 * presence.set_visible(), batched like the rest; and set its user's status
 * message ({"type":"status_message"}, extension 1.1): presence.
 * set_status_message().  A request not yet sent waits while the link is
 * down: it is the user's choice, not part of the session, so it outlives
 * the socket that made it.
 *
 * What clients say costs the database at most one call per user, kind of
 * request and interval, whatever they send: a user's first visibility
 * change (or status message) in an interval goes out at once, later ones
 * wait for the next tick and only the last of them is sent (so flapping
 * announces the net change); and a socket that comes back to "active"
 * hurries a small heartbeat of its own at most once per interval, other
 * changes of "active" ride with the next batch.
 */
#include "relay.h"

#include <stdlib.h>
#include <string.h>

/* a closed socket whose session still has to be disconnected */
struct gone
{
	lws_dll2_t	list;
	char	   *user;
	char		session[96];
};

/*
 * A user's latest request of one kind (one per user and kind): to be shown
 * or hidden, or a status message.  Once sent it stays until the next tick,
 * as the memory that this user already had its call in this interval.
 */
enum wish_kind
{
	WISH_VISIBLE,
	WISH_MESSAGE,
	WISH_KINDS
};

struct wish
{
	lws_dll2_t	list;
	enum wish_kind kind;
	int			visible;
	char	   *message;		/* NULL: clear it */
	double		expires_in;		/* seconds; 0: none */
	unsigned	pending:1;		/* not sent yet */
	unsigned	deferred:1;		/* ... and not before the next tick */
	char		user[];
};

static lws_dll2_owner_t clients;	/* every tracked client */
static lws_dll2_owner_t to_connect;	/* clients needing presence.connect */
static lws_dll2_owner_t in_flight;	/* connect sent, no answer yet */
static lws_dll2_owner_t disconnects;	/* struct gone */
static lws_dll2_owner_t wishes;	/* struct wish */
static lws_dll2_owner_t to_wake;	/* clients back to active, heartbeat soon */
static int	wishes_ready[WISH_KINDS];	/* pending and not deferred */
static const struct sessions_hooks *hooks;
static char prefix[128];
static int	link_up;
static size_t gone_cap;			/* while the link is down: at most this many */
static int	batch_calls;		/* the extension has heartbeat_many() (1.1) */
static int	heartbeat_due;
static int	interval_ms = 20000;
static lws_sorted_usec_list_t sul_heartbeat;
static lws_sorted_usec_list_t sul_soon;
static lws_usec_t soon_at;

/* every object by schema: another role may plant look-alikes elsewhere */
static const char sql_connect[] =
"SELECT presence.connect(u, s, NULL, true)"
" FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.text[]),"
"                 pg_catalog.unnest($2::pg_catalog.text[])) AS t(u, s)";
static const char sql_disconnect[] =
"SELECT presence.disconnect(u, s)"
" FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.text[]),"
"                 pg_catalog.unnest($2::pg_catalog.text[])) AS t(u, s)";
static const char sql_set_visible[] =
"SELECT presence.set_visible(u, v)"
" FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.text[]),"
"                 pg_catalog.unnest($2::pg_catalog.bool[])) AS t(u, v)";
static const char sql_set_status_message[] =
"SELECT presence.set_status_message(u, m,"
"         pg_catalog.now() OPERATOR(pg_catalog.+) pg_catalog.make_interval(secs => e))"
" FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.text[]),"
"                 pg_catalog.unnest($2::pg_catalog.text[]),"
"                 pg_catalog.unnest($3::pg_catalog.float8[])) AS t(u, m, e)";
/*
 * The setting rides along, so that a reload is seen within one interval.
 * Extension 1.1 heartbeats a batch in one call, the active sessions and the
 * idle ones apart (heartbeat_many() takes one "active" for its batch); 1.0
 * has one call per session.
 */
static const char sql_heartbeat_many[] =
"SELECT (SELECT setting::pg_catalog.int4 FROM pg_catalog.pg_settings"
"         WHERE name OPERATOR(pg_catalog.=) 'presence.session_timeout'),"
"       presence.heartbeat_many($1::pg_catalog.text[], $2::pg_catalog.text[], true),"
"       presence.heartbeat_many($3::pg_catalog.text[], $4::pg_catalog.text[], false)";
static const char sql_heartbeat[] =
"SELECT (SELECT setting::pg_catalog.int4 FROM pg_catalog.pg_settings"
"         WHERE name OPERATOR(pg_catalog.=) 'presence.session_timeout'),"
"       (SELECT pg_catalog.count(*) FROM (SELECT presence.heartbeat(u, s, a)"
"          FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.text[]),"
"                          pg_catalog.unnest($2::pg_catalog.text[]),"
"                          pg_catalog.unnest($3::pg_catalog.bool[])) AS t(u, s, a)) h)";

/* relay-<host>-<pid>-<n>: unique across relays sharing a database. */
void
sessions_id(const struct client *c, char *buf, size_t len)
{
	lws_snprintf(buf, len, "%s-%llu", prefix, (unsigned long long) c->session_no);
}

/*
 * A closed socket's session, if a database may know it, must be ended.
 * While the link is down too: the server we reconnect to (the same one
 * after a crash, a promoted standby) loads sessions from its tables, and
 * without the disconnect the user would stay online until
 * presence.session_timeout.  Bounded then by gone_cap, counted if dropped.
 */
static void
queue_disconnect(struct client *c)
{
	struct gone *g;

	if (!link_up && disconnects.count >= gone_cap)
	{
		relay_metrics.disconnects_dropped_total++;
		return;
	}
	g = calloc(1, sizeof(*g));
	if (!g || !(g->user = strdup(c->user)))
	{
		relay_metrics.disconnects_dropped_total++;
		free(g);
		return;
	}
	sessions_id(c, g->session, sizeof(g->session));
	lws_dll2_add_tail(&g->list, &disconnects);
}

static void
free_gone(struct gone *g)
{
	lws_dll2_remove(&g->list);
	free(g->user);
	free(g);
}

void
sessions_add(struct client *c)
{
	static uint64_t next_session;

	c->session_no = ++next_session;
	c->active = c->sent_active = 1;
	lws_dll2_add_tail(&c->tracked, &clients);
	relay_metrics.tracked = (int) clients.count;
	lws_dll2_add_tail(&c->pending, &to_connect);
	queue_kick();
}

void
sessions_remove(struct client *c)
{
	lws_dll2_remove(&c->tracked);
	relay_metrics.tracked = (int) clients.count;
	/* sent or done, on this link or an earlier one: a database may have it */
	if (c->in_flight || c->registered || c->known)
		queue_disconnect(c);
	lws_dll2_remove(&c->pending);
	c->in_flight = c->registered = c->waking = 0;
	queue_kick();
}

static void
heartbeat_soon(lws_sorted_usec_list_t *sul)
{
	soon_at = 0;
	queue_kick();
}

/*
 * A client said whether its user is active.  Going idle needs no hurry
 * (the extension's idle_timeout decides when "away" shows), but coming
 * back should show within moments, not at the next interval: the socket
 * joins a small heartbeat of its own, once per interval at most.
 */
void
sessions_activity(struct client *c, int active)
{
	lws_usec_t	now = lws_now_usecs();

	c->active = active ? 1 : 0;
	if (!active || c->sent_active || !c->registered || c->waking || now < c->wake_ok_at)
		return;
	c->waking = 1;
	c->wake_ok_at = now + (lws_usec_t) interval_ms * LWS_US_PER_MS;
	lws_dll2_add_tail(&c->pending, &to_wake);
	if (!soon_at)
	{
		soon_at = now + 50 * LWS_US_PER_MS;
		lws_sul_schedule(relay_context, 0, &sul_soon, heartbeat_soon,
						 50 * LWS_US_PER_MS);
	}
}

/*
 * A request of c's user: the latest per user and kind is kept, so the
 * queue is never longer than twice the number of users, whatever clients
 * send; and a user who already had a call of this kind this interval
 * waits for the next tick.  Takes message (malloc'd, or NULL).
 */
static void
wish(struct client *c, enum wish_kind kind, int visible, char *message, double expires_in)
{
	struct wish *w;
	size_t		n = strlen(c->user) + 1;

	lws_start_foreach_dll(struct lws_dll2 *, d, wishes.head)
	{
		w = lws_container_of(d, struct wish, list);
		if (w->kind == kind && !strcmp(w->user, c->user))
		{
			w->visible = visible;
			free(w->message);
			w->message = message;
			w->expires_in = expires_in;
			if (!w->pending)
			{
				w->pending = 1;
				w->deferred = 1;
			}
			return;
		}
	}
	lws_end_foreach_dll(d);
	w = calloc(1, sizeof(*w) + n);
	if (!w)
	{
		free(message);
		return;
	}
	memcpy(w->user, c->user, n);
	w->kind = kind;
	w->visible = visible;
	w->message = message;
	w->expires_in = expires_in;
	w->pending = 1;
	wishes_ready[kind]++;
	lws_dll2_add_tail(&w->list, &wishes);
	queue_kick();
}

/* A client asked for its user to be shown or hidden. */
void
sessions_set_visible(struct client *c, int visible)
{
	wish(c, WISH_VISIBLE, visible, NULL, 0);
}

/*
 * A client set its user's status message (NULL or "": clear it), for
 * expires_in seconds (0: until cleared).
 */
void
sessions_set_status_message(struct client *c, const char *message, double expires_in)
{
	char	   *copy = NULL;

	if (message && *message && !(copy = strdup(message)))
		return;
	wish(c, WISH_MESSAGE, 0, copy, expires_in);
}

static void
free_wish(struct wish *w)
{
	lws_dll2_remove(&w->list);
	free(w->message);
	free(w);
}

/*
 * A new interval: users who had their call may have another; what they
 * asked for meanwhile goes now.
 */
static void
wishes_tick(void)
{
	lws_start_foreach_dll_safe(struct lws_dll2 *, d, d1, wishes.head)
	{
		struct wish *w = lws_container_of(d, struct wish, list);

		if (!w->pending)
			free_wish(w);
		else if (w->deferred)
		{
			w->deferred = 0;
			wishes_ready[w->kind]++;
		}
	}
	lws_end_foreach_dll_safe(d, d1);
}

static void
heartbeat_tick(lws_sorted_usec_list_t *sul)
{
	heartbeat_due = 1;
	wishes_tick();
	lws_sul_schedule(relay_context, 0, &sul_heartbeat, heartbeat_tick,
					 (lws_usec_t) interval_ms * LWS_US_PER_MS);
	queue_kick();
}

static void
set_interval(int session_timeout_ms)
{
	int			ms = session_timeout_ms / 3;

	if (ms < 100)
		ms = 100;
	if (ms != interval_ms)
	{
		interval_ms = ms;
		lws_sul_schedule(relay_context, 0, &sul_heartbeat, heartbeat_tick,
						 (lws_usec_t) interval_ms * LWS_US_PER_MS);
	}
}

static int
requeue_cb(struct lws_dll2 *d, void *user)
{
	struct client *c = lws_container_of(d, struct client, tracked);

	c->registered = c->in_flight = c->waking = 0;
	lws_dll2_remove(&c->pending);
	lws_dll2_add_tail(&c->pending, &to_connect);
	return 0;
}

static int
free_gone_cb(struct lws_dll2 *d, void *user)
{
	free_gone(lws_container_of(d, struct gone, list));
	return 0;
}

/*
 * The link is (back) up.  Every tracked socket is connected again (its
 * bound session ended with the old connection; reconnect_grace hides the
 * gap).  The sockets that closed meanwhile are disconnected first
 * (sessions_pump() sends disconnects before connects): a server that
 * recovered from a crash, or a standby promoted, loaded their sessions
 * from its tables; on a server that has no such session, disconnect() is
 * a harmless false.
 */
void
sessions_link_up(int session_timeout_ms, const char *extversion)
{
	link_up = 1;
	batch_calls = strcmp(extversion, "1.0") != 0;
	lws_dll2_foreach_safe(&clients, NULL, requeue_cb);
	interval_ms = 0;
	set_interval(session_timeout_ms);
	queue_kick();
}

/*
 * The link is down.  Disconnects not sent yet are kept for the next link,
 * and so are those of sockets that close meanwhile, up to one per session
 * the relay has now (every one of them could close): the queue cannot grow
 * past what the relay held, however long the outage.
 */
void
sessions_link_down(void)
{
	link_up = 0;
	gone_cap = disconnects.count + clients.count;
	lws_sul_cancel(&sul_heartbeat);
	lws_dll2_foreach_safe(&clients, NULL, requeue_cb);
}

/* Puts clients whose connect never went out back at the head of the queue. */
static void
requeue_in_flight(void)
{
	while (in_flight.tail)
	{
		struct lws_dll2 *d = in_flight.tail;

		lws_dll2_remove(d);
		lws_container_of(d, struct client, pending)->in_flight = 0;
		lws_dll2_add_head(d, &to_connect);
	}
}

static void
connected(PGresult *res, void *arg)
{
	int			ok = res && PQresultStatus(res) == PGRES_TUPLES_OK;
	int			solo = in_flight.count == 1;

	if (!res)
		return;					/* link lost: sessions_link_down() requeues */
	if (!ok)
		lwsl_err("presence.connect failed for %d session(s): %s",
				 (int) in_flight.count, PQresultErrorMessage(res));

	lws_start_foreach_dll_safe(struct lws_dll2 *, d, d1, in_flight.head)
	{
		struct client *c = lws_container_of(d, struct client, pending);

		lws_dll2_remove(d);
		c->in_flight = 0;
		if (ok)
		{
			c->registered = c->known = 1;
			if (hooks && hooks->registered)
				hooks->registered(c);
		}
		else if (solo && c->solo)
		{
			/* refused on its own (full registry, ...): this client only */
			relay_metrics.session_errors_total++;
			out_close(c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "presence error");
		}
		else
		{
			/* one bad session fails a batch: try each on its own */
			c->solo = 1;
			lws_dll2_add_head(&c->pending, &to_connect);
		}
	}
	lws_end_foreach_dll_safe(d, d1);
}

static void
send_connects(void)
{
	struct strbuf users = {0},
				sessions = {0};
	const char *params[2];
	char		sid[96];
	int			solo = 0;

	sb_add(&users, "{", 1);
	sb_add(&sessions, "{", 1);
	lws_start_foreach_dll_safe(struct lws_dll2 *, d, d1, to_connect.head)
	{
		struct client *c = lws_container_of(d, struct client, pending);

		/* a client whose batch failed goes alone, and first */
		if (c->solo && in_flight.count)
			break;
		solo = c->solo;
		sessions_id(c, sid, sizeof(sid));
		sb_add_elem(&users, c->user);
		sb_add_elem(&sessions, sid);
		lws_dll2_remove(d);
		lws_dll2_add_tail(d, &in_flight);
		c->in_flight = 1;
		if (solo)
			break;
	}
	lws_end_foreach_dll_safe(d, d1);
	sb_add(&users, "}", 1);
	sb_add(&sessions, "}", 1);

	params[0] = users.p;
	params[1] = sessions.p;
	if (users.oom || sessions.oom ||
		dblink_send(sql_connect, 2, params, connected, NULL))
		requeue_in_flight();
	sb_free(&users);
	sb_free(&sessions);
}

static void
disconnected(PGresult *res, void *arg)
{
	if (res && PQresultStatus(res) != PGRES_TUPLES_OK)
		lwsl_err("presence.disconnect failed: %s", PQresultErrorMessage(res));
}

static void
send_disconnects(void)
{
	struct strbuf users = {0},
				sessions = {0};
	const char *params[2];

	sb_add(&users, "{", 1);
	sb_add(&sessions, "{", 1);
	lws_start_foreach_dll_safe(struct lws_dll2 *, d, d1, disconnects.head)
	{
		struct gone *g = lws_container_of(d, struct gone, list);

		sb_add_elem(&users, g->user);
		sb_add_elem(&sessions, g->session);
		free_gone(g);
	}
	lws_end_foreach_dll_safe(d, d1);
	sb_add(&users, "}", 1);
	sb_add(&sessions, "}", 1);
	params[0] = users.p;
	params[1] = sessions.p;
	if (!users.oom && !sessions.oom)
		dblink_send(sql_disconnect, 2, params, disconnected, NULL);
	sb_free(&users);
	sb_free(&sessions);
}

static void
wish_done(PGresult *res, void *arg)
{
	if (res && PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		relay_metrics.session_errors_total++;
		lwsl_err("presence.%s failed: %s", arg ? "set_status_message" : "set_visible",
				 PQresultErrorMessage(res));
	}
}

static int
free_wish_cb(struct lws_dll2 *d, void *user)
{
	free_wish(lws_container_of(d, struct wish, list));
	return 0;
}

static int
ready_now(const struct wish *w, enum wish_kind kind)
{
	return w->kind == kind && w->pending && !w->deferred;
}

/* Appends ",x" (or "x" first) to an array literal's elements. */
static void
sb_add_raw(struct strbuf *b, const char *x)
{
	if (b->len > 1)
		sb_add(b, ",", 1);
	sb_add(b, x, strlen(x));
}

/* One batch of the requests of kind that may go now. */
static void
send_wishes(enum wish_kind kind)
{
	struct strbuf users = {0},
				values = {0},
				expiries = {0};
	const char *params[3];
	char		num[32];

	sb_add(&users, "{", 1);
	sb_add(&values, "{", 1);
	sb_add(&expiries, "{", 1);
	lws_start_foreach_dll(struct lws_dll2 *, d, wishes.head)
	{
		struct wish *w = lws_container_of(d, struct wish, list);

		if (ready_now(w, kind))
		{
			sb_add_elem(&users, w->user);
			if (kind == WISH_VISIBLE)
				sb_add_raw(&values, w->visible ? "t" : "f");
			else
			{
				if (w->message)
					sb_add_elem(&values, w->message);
				else
					sb_add_null(&values);
				lws_snprintf(num, sizeof(num), "%.17g", w->expires_in);
				sb_add_raw(&expiries, w->expires_in > 0 ? num : "NULL");
			}
		}
	}
	lws_end_foreach_dll(d);
	sb_add(&users, "}", 1);
	sb_add(&values, "}", 1);
	sb_add(&expiries, "}", 1);
	params[0] = users.p;
	params[1] = values.p;
	params[2] = expiries.p;
	/* if it cannot go out now, the requests stay for the next pump */
	if (!users.oom && !values.oom && !expiries.oom &&
		!dblink_send(kind == WISH_VISIBLE ? sql_set_visible : sql_set_status_message,
					 kind == WISH_VISIBLE ? 2 : 3, params, wish_done,
					 kind == WISH_VISIBLE ? NULL : (void *) 1))
	{
		if (kind == WISH_VISIBLE)
			relay_metrics.visibility_batches_total++;
		else
			relay_metrics.status_message_batches_total++;
		lws_start_foreach_dll(struct lws_dll2 *, d, wishes.head)
		{
			struct wish *w = lws_container_of(d, struct wish, list);

			if (ready_now(w, kind))
				w->pending = 0;
		}
		lws_end_foreach_dll(d);
		wishes_ready[kind] = 0;
	}
	sb_free(&users);
	sb_free(&values);
	sb_free(&expiries);
}

static void
heartbeat_done(PGresult *res, void *arg)
{
	if (!res)
		return;
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
	{
		lwsl_err("heartbeat failed: %s", PQresultErrorMessage(res));
		return;
	}
	relay_metrics.heartbeat_batches_total++;
	if (!PQgetisnull(res, 0, 0))
		set_interval(atoi(PQgetvalue(res, 0, 0)));
}

static void
wake_done(PGresult *res, void *arg)
{
	if (res && PQresultStatus(res) != PGRES_TUPLES_OK)
		lwsl_err("heartbeat failed: %s", PQresultErrorMessage(res));
}

/*
 * A heartbeat batch: users and sessions, and either each one's "active"
 * (1.0: one heartbeat() per session) or, with heartbeat_many(), the
 * active ones apart from the idle ones.
 */
struct beats
{
	struct strbuf users[2],
				sessions[2],
				actives;
};

static void
beats_open(struct beats *b)
{
	int			i;

	memset(b, 0, sizeof(*b));
	for (i = 0; i < 2; i++)
	{
		sb_add(&b->users[i], "{", 1);
		sb_add(&b->sessions[i], "{", 1);
	}
	sb_add(&b->actives, "{", 1);
}

/* Adds c's session to the batch, with the "active" its client reported last. */
static void
add_beat(struct beats *b, struct client *c)
{
	char		sid[96];
	int			k = batch_calls && !c->active ? 1 : 0;

	sessions_id(c, sid, sizeof(sid));
	sb_add_elem(&b->users[k], c->user);
	sb_add_elem(&b->sessions[k], sid);
	sb_add(&b->actives, b->actives.len > 1 ? ",t" : "t", b->actives.len > 1 ? 2 : 1);
	if (!c->active && !b->actives.oom)
		b->actives.p[b->actives.len - 1] = 'f';
	c->sent_active = c->active;
}

/* Sends the batch; 0 if it went out. */
static int
beats_send(struct beats *b, dblink_result_cb cb)
{
	const char *params[4];
	int			i;

	for (i = 0; i < 2; i++)
	{
		sb_add(&b->users[i], "}", 1);
		sb_add(&b->sessions[i], "}", 1);
	}
	sb_add(&b->actives, "}", 1);
	if (b->users[0].oom || b->users[1].oom || b->sessions[0].oom ||
		b->sessions[1].oom || b->actives.oom)
		return -1;
	params[0] = b->users[0].p;
	params[1] = b->sessions[0].p;
	params[2] = batch_calls ? b->users[1].p : b->actives.p;
	params[3] = b->sessions[1].p;
	return dblink_send(batch_calls ? sql_heartbeat_many : sql_heartbeat,
					   batch_calls ? 4 : 3, params, cb, NULL);
}

static void
beats_free(struct beats *b)
{
	int			i;

	for (i = 0; i < 2; i++)
	{
		sb_free(&b->users[i]);
		sb_free(&b->sessions[i]);
	}
	sb_free(&b->actives);
}

/*
 * One heartbeat query: every registered session (the interval's batch),
 * or only those in to_wake (coming back to active).
 */
static void
send_heartbeat(int all)
{
	struct beats b;

	if (all)
		heartbeat_due = 0;
	beats_open(&b);
	if (all)
	{
		lws_start_foreach_dll(struct lws_dll2 *, d, clients.head)
		{
			struct client *c = lws_container_of(d, struct client, tracked);

			if (c->registered)
				add_beat(&b, c);
		}
		lws_end_foreach_dll(d);
	}
	/* either way the woken ones are done: a full batch has them too */
	lws_start_foreach_dll_safe(struct lws_dll2 *, d, d1, to_wake.head)
	{
		struct client *c = lws_container_of(d, struct client, pending);

		if (!all)
			add_beat(&b, c);
		lws_dll2_remove(d);
		c->waking = 0;
	}
	lws_end_foreach_dll_safe(d, d1);
	if (!beats_send(&b, all ? heartbeat_done : wake_done) && !all)
		relay_metrics.wake_batches_total++;
	beats_free(&b);
}

/*
 * queue.c's turn: sends the next batch of session work, if any; 1 if it
 * sent a query.  Order matters: a session is ended before one that
 * replaces it starts, and connects go before anything that reads the
 * registry (a new client finds itself in its first state).
 */
int
sessions_pump(void)
{
	if (!link_up)
		return 0;
	if (disconnects.count)
		send_disconnects();
	else if (to_connect.count)
		send_connects();
	else if (wishes_ready[WISH_VISIBLE])
		send_wishes(WISH_VISIBLE);
	else if (wishes_ready[WISH_MESSAGE])
		send_wishes(WISH_MESSAGE);
	else
		return 0;
	return !dblink_is_idle();
}

/* queue.c's turn for heartbeats, after everything else. */
int
sessions_pump_heartbeat(void)
{
	if (!link_up)
		return 0;
	if (heartbeat_due)
		send_heartbeat(1);
	else if (to_wake.count && !soon_at)
		send_heartbeat(0);
	else
		return 0;
	return !dblink_is_idle();
}

/* prefix names the relay's sessions (relay-<host>-<pid>) */
void
sessions_init(const char *p, const struct sessions_hooks *h)
{
	lws_snprintf(prefix, sizeof(prefix), "%s", p);
	hooks = h;
}

/* Shutdown: the sessions end with the database connection, already closed. */
void
sessions_cleanup(void)
{
	link_up = 0;
	lws_sul_cancel(&sul_heartbeat);
	lws_sul_cancel(&sul_soon);
	lws_dll2_foreach_safe(&disconnects, NULL, free_gone_cb);
	lws_dll2_foreach_safe(&wishes, NULL, free_wish_cb);
}
