/*
 * channels.c - the channels clients join and watch.
 *
 * A client's subscription to a channel is a struct sub, on two lists: its
 * channel's subscribers and its client's subscriptions.  A channel exists
 * in the relay while some client has a subscription to it, and keeps, per
 * channel, the list of those clients, so that an event of a channel costs
 * its subscribers, not all clients (members.c keeps its members and makes
 * the frames; joins.c writes the clients' own memberships to the
 * database).
 *
 * The verbs (docs/relay.md): "subscribe" watches, "join" watches and makes
 * the socket's session a member (with a meta), "update" replaces that
 * meta, "leave" undoes a join (not a member, not watching), "unsubscribe"
 * stops watching.  What a client may use comes from its token's
 * "channels" claim (access.c): anything else is answered with an error
 * frame ({"type":"error","channel":C,"code":"forbidden"}) and changes
 * nothing, as is a bad name or meta, or one channel more than
 * --max-channels-per-client.
 *
 * A client that starts watching a channel gets its state,
 * {"type":"state","channel":C,"seq":S,"members":[...]}, read with
 * presence.members(): one query for every channel waiting for a state (up
 * to STATE_BATCH), every subscriber waiting for one channel served by the
 * same frame.  Then it gets the channel's events, until it stops watching
 * ({"type":"unsubscribed","channel":C}).  A channel with more watchers than
 * --large-channel gets a diff every DIFF_US instead of a frame per event,
 * and a watcher that cannot take it yet one catch-up later (diffs.c).
 * After the database link came back, or when changes may have been lost
 * (origin.c), every watched channel's state is read again and sent again.
 */
#include "relay.h"

#include <stdlib.h>
#include <string.h>

#define STATE_BATCH	200
#define DIFF_US		(100 * LWS_US_PER_MS)
#define RETRY_US	(1 * LWS_US_PER_SEC)

static struct htable channels;
static lws_dll2_owner_t want_state;	/* channels some subscriber waits a state of */
static lws_dll2_owner_t reading;	/* channels whose state query is out */
static lws_dll2_owner_t diffs_due;	/* large channels with a diff to send */
static lws_sorted_usec_list_t sul_diff;
static lws_sorted_usec_list_t sul_retry;
static lws_sorted_usec_list_t sul_sweep;

static void sweep_soon(void);

/*
 * The state query: presence.members() of each channel, in the order given,
 * a row with NULL columns for a channel nobody is in.  Every object by
 * schema (another role may plant look-alikes); the rows are made into
 * frames in C (members.c).
 */
static const char sql_members[] =
"SELECT t.c, m.user_id, m.status,"
"       pg_catalog.to_json(m.last_active) OPERATOR(pg_catalog.#>>) '{}'::pg_catalog.text[],"
"       m.sessions, m.metas::pg_catalog.text, m.status_message"
"  FROM pg_catalog.unnest($1::pg_catalog.text[]) WITH ORDINALITY AS t(c, n)"
"  LEFT JOIN LATERAL presence.members(t.c) AS m ON true"
" ORDER BY t.n";

int
channels_init(void)
{
	return hash_init(&channels, 256) || members_init() ? -1 : 0;
}

static struct channel *
find_channel(const char *name, size_t len)
{
	struct hnode *e = hash_find(&channels, name, len);

	return e ? lws_container_of(e, struct channel, node) : NULL;
}

static struct channel *
get_channel(const char *name, size_t len)
{
	struct channel *ch = find_channel(name, len);

	if (ch || !(ch = calloc(1, sizeof(*ch) + len + 1)))
		return ch;
	memcpy(ch->name, name, len);
	ch->len = len;
	hash_add(&channels, &ch->node, ch->name, len);
	relay_metrics.channels = (int) channels.used;
	return ch;
}

/* A channel nobody watches or joins any more is forgotten. */
static void
drop_channel(struct channel *ch)
{
	if (ch->subs.count || ch->reading)
		return;
	lws_dll2_remove(&ch->state_list);
	lws_dll2_remove(&ch->due_list);
	members_reset(ch);
	hash_remove(&channels, &ch->node);
	free(ch);
	relay_metrics.channels = (int) channels.used;
	sweep_soon();
}

/* The error frame of a channel message: {"type":"error","channel":C,"code":...}. */
void
channels_error(struct client *c, const char *request, const char *channel, size_t len,
			   const char *code)
{
	struct jbuf b = {0};

	relay_metrics.channel_errors_total++;
	jbuf_str(&b, "{\"type\":\"error\",\"request\":");
	jbuf_quote(&b, request, strlen(request));
	if (len)
	{
		jbuf_str(&b, ",\"channel\":");
		jbuf_quote(&b, channel, len);
	}
	jbuf_printf(&b, ",\"code\":\"%s\"}", code);
	out_reply(c, &b);
}

/* {"type":"unsubscribed","channel":C[,"reason":R]}: no more frames of C. */
static void
tell_unsubscribed(struct sub *s, const char *reason)
{
	struct jbuf b = {0};

	jbuf_str(&b, "{\"type\":\"unsubscribed\",\"channel\":");
	jbuf_quote(&b, s->ch->name, s->ch->len);
	if (reason)
		jbuf_printf(&b, ",\"reason\":\"%s\"", reason);
	jbuf_str(&b, "}");
	out_reply(s->c, &b);
}

/* Sends f to every subscriber of ch that has its state. */
static void
send_to_watchers(struct channel *ch, struct frame *f)
{
	lws_start_foreach_dll(struct lws_dll2 *, d, ch->subs.head)
	{
		struct sub *s = lws_container_of(d, struct sub, by_channel);

		if (s->watching && s->has_state)
			out_send(s->c, f);
	}
	lws_end_foreach_dll(d);
}

static void want(struct sub *s);

/*
 * Sends s what brings it from the generation it was sent to now (the
 * shared diff, mostly), or has its channel's state read again for it if
 * it is too far behind.
 */
static void
catch_up(struct sub *s)
{
	struct frame *f;

	if (members_catch_up(s->ch, &s->gen, &f))
	{
		want(s);
		return;
	}
	if (f)
	{
		out_send(s->c, f);
		frame_release(f);
	}
}

/*
 * A large channel's diff is due.  A watcher whose client can take a frame
 * now gets what it is owed; one that still has frames to write gets no
 * second one queued, but one catch-up when it can take it (out_later():
 * channels_catch_up()).  Tombstones no watcher needs any more go.
 */
static void
diff_out(struct channel *ch)
{
	int64_t		oldest;

	members_diff(ch);
	oldest = ch->diff_gen;
	lws_start_foreach_dll(struct lws_dll2 *, d, ch->subs.head)
	{
		struct sub *s = lws_container_of(d, struct sub, by_channel);

		if (s->watching && s->has_state && !s->lagging && out_busy(s->c))
		{
			s->lagging = 1;
			out_later(s->c);
		}
		else if (s->watching && s->has_state && !s->lagging)
			catch_up(s);
		if (s->watching && s->has_state && s->gen < oldest)
			oldest = s->gen;
	}
	lws_end_foreach_dll(d);
	members_prune(ch, oldest);
}

/* out.c says c can take frames: its lagging watches are caught up. */
void
channels_catch_up(struct client *c)
{
	lws_start_foreach_dll(struct lws_dll2 *, d, c->subs.head)
	{
		struct sub *s = lws_container_of(d, struct sub, by_client);

		if (s->lagging)
		{
			s->lagging = 0;
			if (s->watching && s->has_state && s->ch->large)
				catch_up(s);
		}
	}
	lws_end_foreach_dll(d);
}

static void
flush_diffs(lws_sorted_usec_list_t *sul)
{
	lws_start_foreach_dll_safe(struct lws_dll2 *, d, d1, diffs_due.head)
	{
		lws_dll2_remove(d);
		diff_out(lws_container_of(d, struct channel, due_list));
	}
	lws_end_foreach_dll_safe(d, d1);
}

/* members.c's publish: a frame for ch's watchers, or (NULL) a diff is due. */
static void
publish(struct channel *ch, struct frame *f)
{
	if (f)
	{
		send_to_watchers(ch, f);
		return;
	}
	if (!ch->due_list.owner)
		lws_dll2_add_tail(&ch->due_list, &diffs_due);
	if (!sul_diff.list.owner)
		lws_sul_schedule(relay_context, 0, &sul_diff, flush_diffs, DIFF_US);
}

/*
 * Watchers past --large-channel: diffs; at or under it: a frame per event.
 * Either way what was pending goes out first, to every watcher (those
 * lagging too: the frames that follow must come after it), and every
 * watcher starts from the generation the change closes.
 */
static void
size_up(struct channel *ch)
{
	int			large = relay_opts.large_channel &&
	ch->watchers > relay_opts.large_channel;
	int64_t		gen;

	if (large == (int) ch->large)
		return;
	if (ch->due_list.owner)
	{
		lws_dll2_remove(&ch->due_list);
		diff_out(ch);
	}
	lws_start_foreach_dll(struct lws_dll2 *, d, ch->subs.head)
	{
		struct sub *s = lws_container_of(d, struct sub, by_channel);

		if (s->lagging && s->watching && s->has_state)
			catch_up(s);
		s->lagging = 0;
	}
	lws_end_foreach_dll(d);
	gen = members_set_large(ch, large);
	lws_start_foreach_dll(struct lws_dll2 *, d, ch->subs.head)
	{
		lws_container_of(d, struct sub, by_channel)->gen = gen;
	}
	lws_end_foreach_dll(d);
}

/* Users' entries kept for their status message are let go in time. */
static void
sweep(lws_sorted_usec_list_t *sul)
{
	if (members_sweep(lws_now_usecs()))
		lws_sul_schedule(relay_context, 0, &sul_sweep, sweep, LWS_US_PER_SEC);
}

static void
sweep_soon(void)
{
	if (members_lonely() && !sul_sweep.list.owner)
		lws_sul_schedule(relay_context, 0, &sul_sweep, sweep, LWS_US_PER_SEC);
}

/* A change from the presence worker, for the channels it concerns. */
void
channels_event(const struct presence_event *ev)
{
	struct channel *ch;

	if (ev->kind == EVENT_PRESENCE || ev->kind == EVENT_MESSAGE)
		members_status(ev, publish);
	else if ((ch = find_channel(ev->channel, ev->channel_len)))
		members_event(ev, ch, publish);
	sweep_soon();
}

/* s waits for its channel's state, and gets none of its events until then. */
static void
want(struct sub *s)
{
	s->wants_state = 1;
	s->has_state = 0;
	s->lagging = 0;
	if (!s->ch->state_list.owner && !s->ch->reading)
		lws_dll2_add_tail(&s->ch->state_list, &want_state);
	queue_kick();
}

static void
watch(struct sub *s)
{
	if (s->watching)
		return;
	s->watching = 1;
	s->ch->watchers++;
	relay_metrics.subscriptions++;
	size_up(s->ch);
	want(s);
}

static void
unwatch(struct sub *s)
{
	if (!s->watching)
		return;
	s->watching = s->wants_state = s->has_state = s->lagging = 0;
	s->ch->watchers--;
	relay_metrics.subscriptions--;
	size_up(s->ch);
}

/* s is done with: freed once joins.c has nothing more to do with it. */
static void
maybe_free(struct sub *s)
{
	struct channel *ch = s->ch;

	if (s->watching || s->present || joins_busy(s))
		return;
	lws_dll2_remove(&s->by_channel);
	lws_dll2_remove(&s->by_client);
	free(s->meta);
	free(s->join_meta);
	free(s);
	drop_channel(ch);
}

/* joins.c says it is done with s (its membership is as asked, or refused). */
void
channels_settled(struct sub *s)
{
	maybe_free(s);
}

static struct sub *
find_sub(struct client *c, const struct message *m)
{
	lws_start_foreach_dll(struct lws_dll2 *, d, c->subs.head)
	{
		struct sub *s = lws_container_of(d, struct sub, by_client);

		if (s->ch->len == m->channel_len && !memcmp(s->ch->name, m->channel, m->channel_len))
			return s;
	}
	lws_end_foreach_dll(d);
	return NULL;
}

/* c's subscription to the message's channel, new if need be (within the cap). */
static struct sub *
get_sub(struct client *c, const struct message *m, const char *request)
{
	struct sub *s = find_sub(c, m);
	struct channel *ch;

	if (s)
		return s;
	if (relay_opts.max_channels_per_client &&
		(int) c->subs.count >= relay_opts.max_channels_per_client)
	{
		channels_error(c, request, m->channel, m->channel_len, "too_many_channels");
		return NULL;
	}
	if (!(ch = get_channel(m->channel, m->channel_len)) || !(s = calloc(1, sizeof(*s))))
	{
		if (ch)
			drop_channel(ch);
		return NULL;
	}
	s->ch = ch;
	s->c = c;
	lws_dll2_add_tail(&s->by_channel, &ch->subs);
	lws_dll2_add_tail(&s->by_client, &c->subs);
	return s;
}

/* Replaces s's meta with m's (taken); 1 if it changed. */
static int
take_meta(struct sub *s, struct message *m)
{
	if (!m->meta)
		return 0;
	if (s->meta && !strcmp(s->meta, m->meta))
		return 0;
	free(s->meta);
	s->meta = m->meta;
	m->meta = NULL;
	return 1;
}

static const char *const request_names[] = {
	[MESSAGE_JOIN] = "join",
	[MESSAGE_SUBSCRIBE] = "subscribe",
	[MESSAGE_LEAVE] = "leave",
	[MESSAGE_UNSUBSCRIBE] = "unsubscribe",
	[MESSAGE_UPDATE] = "update",
};

/*
 * A channel message of c (message.c has read "channel" and "meta").  Every
 * refusal is an error frame and changes nothing.
 */
void
channels_message(struct client *c, struct message *m)
{
	const char *request = request_names[m->kind];
	struct sub *s;

	if (m->error)
	{
		channels_error(c, request, m->channel, m->channel_len, m->error);
		return;
	}
	if (!access_allows(c->grants, m->channel, m->channel_len))
	{
		relay_metrics.channel_forbidden_total++;
		channels_error(c, request, m->channel, m->channel_len, "forbidden");
		return;
	}
	switch (m->kind)
	{
		case MESSAGE_SUBSCRIBE:
			if ((s = get_sub(c, m, request)))
				watch(s);
			break;
		case MESSAGE_JOIN:
			if (!c->user)
			{
				channels_error(c, request, m->channel, m->channel_len, "forbidden");
				return;
			}
			if (!(s = get_sub(c, m, request)))
				return;
			/* the join first: the state read for it should show it */
			if (!s->present)
			{
				take_meta(s, m);
				joins_join(s);
			}
			else if (take_meta(s, m))
			{
				/* joining again with another meta is an update */
				s->meta_version++;
				joins_changed(s);
			}
			watch(s);
			break;
		case MESSAGE_UPDATE:
			if (!(s = find_sub(c, m)) || !s->present)
			{
				channels_error(c, request, m->channel, m->channel_len, "not_joined");
				return;
			}
			if (!m->meta)
			{
				channels_error(c, request, m->channel, m->channel_len, "bad_meta");
				return;
			}
			if (take_meta(s, m))
			{
				s->meta_version++;
				joins_changed(s);
			}
			break;
		case MESSAGE_LEAVE:
		case MESSAGE_UNSUBSCRIBE:
			if (!(s = find_sub(c, m)))
				return;
			if (s->watching)
				tell_unsubscribed(s, NULL);
			unwatch(s);
			if (m->kind == MESSAGE_LEAVE && s->present)
			{
				s->present = 0;
				joins_changed(s);
			}
			maybe_free(s);
			break;
		default:
			break;
	}
}

/*
 * c's token was replaced by one with other grants: subscriptions they no
 * longer allow end, as a leave would end them.
 */
void
channels_regrant(struct client *c)
{
	lws_start_foreach_dll_safe(struct lws_dll2 *, d, d1, c->subs.head)
	{
		struct sub *s = lws_container_of(d, struct sub, by_client);

		if (!access_allows(c->grants, s->ch->name, s->ch->len))
		{
			if (s->watching)
				tell_unsubscribed(s, "forbidden");
			unwatch(s);
			if (s->present)
			{
				s->present = 0;
				joins_changed(s);
			}
			maybe_free(s);
		}
	}
	lws_end_foreach_dll_safe(d, d1);
}

/*
 * c is gone.  Its session's memberships end with the session (sessions.c
 * disconnects it), so nothing is left to the database here.
 */
void
channels_remove_client(struct client *c)
{
	lws_start_foreach_dll_safe(struct lws_dll2 *, d, d1, c->subs.head)
	{
		struct sub *s = lws_container_of(d, struct sub, by_client);

		unwatch(s);
		s->present = 0;
		joins_forget(s);
		maybe_free(s);
	}
	lws_end_foreach_dll_safe(d, d1);
}

/* Every watched channel's state is read again, and sent again. */
void
channels_resync(void)
{
	size_t		i;

	for (i = 0; i < channels.nslots; i++)
	{
		struct hnode *e;

		for (e = channels.slots[i]; e; e = e->next)
		{
			struct channel *ch = lws_container_of(e, struct channel, node);

			lws_dll2_remove(&ch->due_list);
			members_reset(ch);
			/* a state being read may miss what was lost: read it again after */
			ch->stale = ch->reading;
			lws_start_foreach_dll(struct lws_dll2 *, d, ch->subs.head)
			{
				struct sub *s = lws_container_of(d, struct sub, by_channel);

				if (s->watching)
					want(s);
			}
			lws_end_foreach_dll(d);
		}
	}
	sweep_soon();
}

static void
retry(lws_sorted_usec_list_t *sul)
{
	queue_kick();
}

/* The state of ch, from rows [from, to), to every subscriber waiting for it. */
static void
deliver(struct channel *ch, const PGresult *res, int from, int to)
{
	struct jbuf b = {0};
	struct frame *f;

	if (members_load(ch, res, from, to, origin_last_seq(), &b) ||
		!(f = frame_make(&b, 0)))
	{
		jbuf_free(&b);
		return;
	}
	f->is_state = 1;
	lws_start_foreach_dll(struct lws_dll2 *, d, ch->subs.head)
	{
		struct sub *s = lws_container_of(d, struct sub, by_channel);

		if (s->watching && s->wants_state)
		{
			s->wants_state = 0;
			s->has_state = 1;
			/* the next diff is news to it (a large channel's) */
			s->gen = ch->diff_gen;
			out_send(s->c, f);
		}
	}
	lws_end_foreach_dll(d);
	frame_release(f);
}

/* Channels whose query failed or was lost wait again, for the next one. */
static void
requeue_reading(void)
{
	lws_start_foreach_dll_safe(struct lws_dll2 *, d, d1, reading.head)
	{
		struct channel *ch = lws_container_of(d, struct channel, state_list);

		lws_dll2_remove(d);
		ch->reading = ch->stale = 0;
		if (ch->subs.count)
			lws_dll2_add_tail(d, &want_state);
		else
			drop_channel(ch);
	}
	lws_end_foreach_dll_safe(d, d1);
}

static void
states_done(PGresult *res, void *arg)
{
	int			row = 0,
				end,
				n;

	if (!res)
	{
		requeue_reading();		/* the link is lost: read again when it is back */
		return;
	}
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != 7)
	{
		lwsl_err("reading presence.members() failed: %s", PQresultErrorMessage(res));
		requeue_reading();
		lws_sul_schedule(relay_context, 0, &sul_retry, retry, RETRY_US);
		return;
	}
	relay_metrics.channel_states_total++;
	n = PQntuples(res);
	/* rows come channel by channel, in the order asked */
	lws_start_foreach_dll_safe(struct lws_dll2 *, d, d1, reading.head)
	{
		struct channel *ch = lws_container_of(d, struct channel, state_list);

		lws_dll2_remove(d);
		ch->reading = 0;
		for (end = row; end < n && (size_t) PQgetlength(res, end, 0) == ch->len &&
			 !memcmp(PQgetvalue(res, end, 0), ch->name, ch->len); end++)
			;
		if (ch->stale && ch->subs.count)
		{
			ch->stale = 0;
			lws_dll2_add_tail(d, &want_state);
		}
		else if (ch->subs.count)
			deliver(ch, res, row, end);
		row = end;
		/* subscribers that came while it was out, if any, were served too */
		drop_channel(ch);
	}
	lws_end_foreach_dll_safe(d, d1);
}

/* queue.c's turn: reads the states of channels waiting for one. */
int
channels_pump_states(void)
{
	struct strbuf names = {0};
	const char *params[1];
	int			k = 0;

	if (!want_state.count || reading.count || sul_retry.list.owner)
		return 0;
	sb_add(&names, "{", 1);
	lws_start_foreach_dll_safe(struct lws_dll2 *, d, d1, want_state.head)
	{
		struct channel *ch = lws_container_of(d, struct channel, state_list);

		if (k++ == STATE_BATCH)
			break;
		sb_add_elem(&names, ch->name);
		lws_dll2_remove(d);
		lws_dll2_add_tail(d, &reading);
		ch->reading = 1;
	}
	lws_end_foreach_dll_safe(d, d1);
	sb_add(&names, "}", 1);
	params[0] = names.p;
	if (names.oom || dblink_send(sql_members, 1, params, states_done, NULL))
	{
		requeue_reading();
		sb_free(&names);
		return 0;
	}
	sb_free(&names);
	return 1;
}

/* The link went down: every channel's members are unknown until it is back. */
void
channels_link_down(void)
{
	channels_resync();
}

static void
free_channel_cb(struct hnode *e, void *arg)
{
	struct channel *ch = lws_container_of(e, struct channel, node);

	members_reset(ch);
	free(ch);
}

void
channels_cleanup(void)
{
	lws_sul_cancel(&sul_diff);
	lws_sul_cancel(&sul_retry);
	lws_sul_cancel(&sul_sweep);
	if (channels.slots)
		hash_each(&channels, free_channel_cb, NULL);
	hash_free(&channels);
	members_cleanup();
}
