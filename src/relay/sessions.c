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
 * presence.set_visible(), batched like the rest.  A request not yet sent
 * waits while the link is down: it is the user's choice, not part of the
 * session, so it outlives the socket that made it.
 *
 * What clients say costs the database at most one call per user and
 * interval, whatever they send: a user's first visibility change in an
 * interval goes out at once, later ones wait for the next tick and only
 * the last of them is sent (so flapping announces the net change); and a
 * socket that comes back to "active" hurries a small heartbeat of its own
 * at most once per interval, other changes of "active" ride with the next
 * batch.
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
 * A user's latest visibility request (one per user).  Once sent it stays
 * until the next tick, as the memory that this user already had its call
 * in this interval.
 */
struct visibility
{
	lws_dll2_t	list;
	int			visible;
	unsigned	pending:1;		/* not sent yet */
	unsigned	deferred:1;		/* ... and not before the next tick */
	char		user[];
};

static lws_dll2_owner_t clients;	/* every tracked client */
static lws_dll2_owner_t to_connect;	/* clients needing presence.connect */
static lws_dll2_owner_t in_flight;	/* connect sent, no answer yet */
static lws_dll2_owner_t disconnects;	/* struct gone */
static lws_dll2_owner_t visibility_changes;	/* struct visibility */
static lws_dll2_owner_t to_wake;	/* clients back to active, heartbeat soon */
static int	visibility_ready;	/* pending and not deferred */
static const struct sessions_hooks *hooks;
static char prefix[128];
static int	link_up;
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
/* the setting rides along, so that a reload is seen within one interval */
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

/* A closed socket's session, if the database knows it, must be ended. */
static void
queue_disconnect(struct client *c)
{
	struct gone *g = calloc(1, sizeof(*g));

	if (!g || !(g->user = strdup(c->user)))
	{
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
	/* sent or done: the database has (or will have) the session */
	if (link_up && (c->in_flight || c->registered))
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
 * A client asked for its user to be shown or hidden.  Only the latest
 * request per user is kept, so the queue is never longer than the number
 * of users, whatever clients send; and a user who already had a call
 * this interval waits for the next tick.
 */
void
sessions_set_visible(struct client *c, int visible)
{
	struct visibility *v;
	size_t		n = strlen(c->user) + 1;

	lws_start_foreach_dll(struct lws_dll2 *, d, visibility_changes.head)
	{
		v = lws_container_of(d, struct visibility, list);
		if (!strcmp(v->user, c->user))
		{
			v->visible = visible;
			if (!v->pending)
			{
				v->pending = 1;
				v->deferred = 1;
			}
			return;
		}
	}
	lws_end_foreach_dll(d);
	v = calloc(1, sizeof(*v) + n);
	if (!v)
		return;
	memcpy(v->user, c->user, n);
	v->visible = visible;
	v->pending = 1;
	visibility_ready++;
	lws_dll2_add_tail(&v->list, &visibility_changes);
	queue_kick();
}

/*
 * A new interval: users who had their call may have another; what they
 * asked for meanwhile goes now.
 */
static void
visibility_tick(void)
{
	lws_start_foreach_dll_safe(struct lws_dll2 *, d, d1, visibility_changes.head)
	{
		struct visibility *v = lws_container_of(d, struct visibility, list);

		if (!v->pending)
		{
			lws_dll2_remove(d);
			free(v);
		}
		else if (v->deferred)
		{
			v->deferred = 0;
			visibility_ready++;
		}
	}
	lws_end_foreach_dll_safe(d, d1);
}

static void
heartbeat_tick(lws_sorted_usec_list_t *sul)
{
	heartbeat_due = 1;
	visibility_tick();
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
 * gap).  Closed sockets' sessions ended with the old connection too, so
 * there is nothing to disconnect.
 */
void
sessions_link_up(int session_timeout_ms)
{
	link_up = 1;
	lws_dll2_foreach_safe(&disconnects, NULL, free_gone_cb);
	lws_dll2_foreach_safe(&clients, NULL, requeue_cb);
	interval_ms = 0;
	set_interval(session_timeout_ms);
	queue_kick();
}

void
sessions_link_down(void)
{
	link_up = 0;
	lws_sul_cancel(&sul_heartbeat);
	lws_dll2_foreach_safe(&disconnects, NULL, free_gone_cb);
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
			c->registered = 1;
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
visibility_done(PGresult *res, void *arg)
{
	if (res && PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		relay_metrics.session_errors_total++;
		lwsl_err("presence.set_visible failed: %s", PQresultErrorMessage(res));
	}
}

static int
free_visibility_cb(struct lws_dll2 *d, void *user)
{
	lws_dll2_remove(d);
	free(lws_container_of(d, struct visibility, list));
	return 0;
}

static int
visibility_ready_now(const struct visibility *v)
{
	return v->pending && !v->deferred;
}

static void
send_visibility(void)
{
	struct strbuf users = {0},
				values = {0};
	const char *params[2];

	sb_add(&users, "{", 1);
	sb_add(&values, "{", 1);
	lws_start_foreach_dll(struct lws_dll2 *, d, visibility_changes.head)
	{
		struct visibility *v = lws_container_of(d, struct visibility, list);

		if (visibility_ready_now(v))
		{
			sb_add_elem(&users, v->user);
			if (values.len > 1)
				sb_add(&values, ",", 1);
			sb_add(&values, v->visible ? "t" : "f", 1);
		}
	}
	lws_end_foreach_dll(d);
	sb_add(&users, "}", 1);
	sb_add(&values, "}", 1);
	params[0] = users.p;
	params[1] = values.p;
	/* if it cannot go out now, the requests stay for the next pump */
	if (!users.oom && !values.oom &&
		!dblink_send(sql_set_visible, 2, params, visibility_done, NULL))
	{
		relay_metrics.visibility_batches_total++;
		lws_start_foreach_dll(struct lws_dll2 *, d, visibility_changes.head)
		{
			struct visibility *v = lws_container_of(d, struct visibility, list);

			if (visibility_ready_now(v))
				v->pending = 0;
		}
		lws_end_foreach_dll(d);
		visibility_ready = 0;
	}
	sb_free(&users);
	sb_free(&values);
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

/* Adds c's session to a heartbeat batch. */
static void
add_beat(struct strbuf *users, struct strbuf *sessions, struct strbuf *actives,
		 struct client *c)
{
	char		sid[96];

	sessions_id(c, sid, sizeof(sid));
	sb_add_elem(users, c->user);
	sb_add_elem(sessions, sid);
	sb_add(actives, actives->len > 1 ? ",t" : "t", actives->len > 1 ? 2 : 1);
	if (!c->active && !actives->oom)
		actives->p[actives->len - 1] = 'f';
	c->sent_active = c->active;
}

/*
 * One heartbeat query: every registered session (the interval's batch),
 * or only those in to_wake (coming back to active).
 */
static void
send_heartbeat(int all)
{
	struct strbuf users = {0},
				sessions = {0},
				actives = {0};
	const char *params[3];

	if (all)
		heartbeat_due = 0;
	sb_add(&users, "{", 1);
	sb_add(&sessions, "{", 1);
	sb_add(&actives, "{", 1);
	if (all)
	{
		lws_start_foreach_dll(struct lws_dll2 *, d, clients.head)
		{
			struct client *c = lws_container_of(d, struct client, tracked);

			if (c->registered)
				add_beat(&users, &sessions, &actives, c);
		}
		lws_end_foreach_dll(d);
	}
	/* either way the woken ones are done: a full batch has them too */
	lws_start_foreach_dll_safe(struct lws_dll2 *, d, d1, to_wake.head)
	{
		struct client *c = lws_container_of(d, struct client, pending);

		if (!all)
			add_beat(&users, &sessions, &actives, c);
		lws_dll2_remove(d);
		c->waking = 0;
	}
	lws_end_foreach_dll_safe(d, d1);
	sb_add(&users, "}", 1);
	sb_add(&sessions, "}", 1);
	sb_add(&actives, "}", 1);
	params[0] = users.p;
	params[1] = sessions.p;
	params[2] = actives.p;
	if (!users.oom && !sessions.oom && !actives.oom &&
		!dblink_send(sql_heartbeat, 3, params, all ? heartbeat_done : wake_done, NULL) &&
		!all)
		relay_metrics.wake_batches_total++;
	sb_free(&users);
	sb_free(&sessions);
	sb_free(&actives);
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
	else if (visibility_ready)
		send_visibility();
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
	lws_dll2_foreach_safe(&visibility_changes, NULL, free_visibility_cb);
}
