/*
 * joins.c - the relay's sockets' own channel memberships, in the database:
 * presence.join(), leave() and update() for their sessions, batched like
 * the sessions' connects (one unnest() query per kind of call, one query
 * in flight on the link).
 *
 * A subscription (struct sub, channels.c) says what its client wants:
 * present or not, with which meta (meta_version counts its changes); this
 * file brings the database there and remembers what it has (db_member,
 * sent_version).  Whatever a client asks meanwhile, only the net change
 * goes out: a join and a leave before the next batch cost nothing, and a
 * typing indicator flipped ten times is one update.  A membership is
 * joined only once its client's session is registered (presence.join()
 * would otherwise open the session unbound).  When the link comes back,
 * the sessions are connected again (sessions.c) and their memberships
 * joined again with their last meta.
 *
 * One refused call fails a batch: each is then tried alone, and one refused
 * alone is answered with an error frame ("too_many_channels", "bad_meta",
 * "full" or "failed") and given up: the client stays as the database has
 * it.  settled(s) is called when s's call came back and it has nothing
 * more to do, so that channels.c may free it.
 */
#include "relay.h"

#include <stdlib.h>
#include <string.h>

enum op
{
	OP_NONE,
	OP_LEAVE,
	OP_JOIN,
	OP_UPDATE,
};

static lws_dll2_owner_t todo;	/* subs whose membership is not as asked */
static lws_dll2_owner_t in_flight;	/* in the batch that is out */
static enum op flying;			/* its kind */
static int	link_up;
static void (*settled_cb) (struct sub *s);

/* every object by schema: another role may plant look-alikes elsewhere */
static const char sql_join[] =
"SELECT presence.join(c, u, s, m::pg_catalog.jsonb)"
" FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.text[]),"
"                 pg_catalog.unnest($2::pg_catalog.text[]),"
"                 pg_catalog.unnest($3::pg_catalog.text[]),"
"                 pg_catalog.unnest($4::pg_catalog.text[])) AS t(c, u, s, m)";
static const char sql_update[] =
"SELECT presence.update(c, u, s, m::pg_catalog.jsonb)"
" FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.text[]),"
"                 pg_catalog.unnest($2::pg_catalog.text[]),"
"                 pg_catalog.unnest($3::pg_catalog.text[]),"
"                 pg_catalog.unnest($4::pg_catalog.text[])) AS t(c, u, s, m)";
static const char sql_leave[] =
"SELECT presence.leave(c, u, s)"
" FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.text[]),"
"                 pg_catalog.unnest($2::pg_catalog.text[]),"
"                 pg_catalog.unnest($3::pg_catalog.text[])) AS t(c, u, s)";

void
joins_init(void (*settled) (struct sub *s))
{
	settled_cb = settled;
}

/* What s needs now, if anything. */
static enum op
needed(const struct sub *s)
{
	if (s->present && !s->db_member)
		return OP_JOIN;
	if (!s->present && s->db_member)
		return OP_LEAVE;
	if (s->present && s->sent_version != s->meta_version)
		return OP_UPDATE;
	return OP_NONE;
}

/* Does joins.c still hold s (work to do, or a call out)? */
int
joins_busy(const struct sub *s)
{
	return s->work.owner != NULL;
}

/* s is as its client asked, or given up: channels.c may free it. */
static void
settle(struct sub *s)
{
	lws_dll2_remove(&s->work);
	s->solo = 0;
	if (settled_cb)
		settled_cb(s);
}

/*
 * What s's client asks changed: work for the next batch, if any.  (No
 * settled() from here: the caller, channels.c, is looking at s.)
 */
void
joins_changed(struct sub *s)
{
	if (s->in_flight)
		return;					/* looked at again when its call is back */
	if (needed(s) == OP_NONE)
	{
		lws_dll2_remove(&s->work);
		s->solo = 0;
		return;
	}
	if (!s->work.owner)
		lws_dll2_add_tail(&s->work, &todo);
	queue_kick();
}

/*
 * s is to be a member: its join goes with the meta it has now, whatever
 * comes after.  An update after a join is an update after it, so that the
 * extension announces it even when the join itself announces nothing (a
 * rejoin within the reconnect grace: docs/sql.md).
 */
static int
set_join(struct sub *s)
{
	char	   *copy = NULL;

	if (s->meta && !(copy = strdup(s->meta)))
		return -1;
	free(s->join_meta);
	s->join_meta = copy;
	s->present = 1;
	s->join_version = ++s->meta_version;
	return 0;
}

/* s's client joins its channel (channels.c took the meta into s->meta). */
void
joins_join(struct sub *s)
{
	if (!set_join(s))
		joins_changed(s);
}

/* s is freed by its client's end: forgotten, even with a call out. */
void
joins_forget(struct sub *s)
{
	lws_dll2_remove(&s->work);
	s->in_flight = 0;
}

/* c's session is in the registry: its memberships may be joined now. */
void
joins_registered(struct client *c)
{
	lws_start_foreach_dll(struct lws_dll2 *, d, c->subs.head)
	{
		struct sub *s = lws_container_of(d, struct sub, by_client);

		if (s->work.owner == &todo)
		{
			queue_kick();
			return;
		}
	}
	lws_end_foreach_dll(d);
}

/* The error code for a refused call, from its SQLSTATE. */
static const char *
refusal_code(const PGresult *res)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE),
			   *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

	if (!state)
		return "failed";
	if (!strcmp(state, "53400"))
		return "full";
	if (!strcmp(state, "22023") || (!strcmp(state, "54000") && msg && strstr(msg, "meta")))
		return "bad_meta";
	if (!strcmp(state, "54000"))
		return "too_many_channels";
	return "failed";
}

/* Its call was refused on its own: the client is told, and s given up. */
static void
refused(struct sub *s, const PGresult *res)
{
	static const char *const requests[] = {
		[OP_JOIN] = "join", [OP_LEAVE] = "leave", [OP_UPDATE] = "update",
	};
	const char *code = refusal_code(res);

	lwsl_notice("presence.%s refused for one socket: %s", requests[flying],
				PQresultErrorMessage(res));
	channels_error(s->c, requests[flying], s->ch->name, s->ch->len, code);
	/* what the database has is what the client gets */
	s->present = s->db_member;
	s->sent_version = s->join_version = s->meta_version;
}

static void
done(PGresult *res, void *arg)
{
	int			ok = res && PQresultStatus(res) == PGRES_TUPLES_OK;
	int			solo = in_flight.count == 1;

	if (!res)
		return;					/* link lost: joins_link_down() starts over */
	lws_start_foreach_dll_safe(struct lws_dll2 *, d, d1, in_flight.head)
	{
		struct sub *s = lws_container_of(d, struct sub, work);

		lws_dll2_remove(d);
		s->in_flight = 0;
		if (ok)
		{
			if (flying == OP_JOIN || flying == OP_LEAVE)
				s->db_member = flying == OP_JOIN;
			if (flying != OP_LEAVE)
				s->sent_version = s->sending_version;
			s->solo = 0;
		}
		else if (solo && s->solo)
			refused(s, res);
		else
			s->solo = 1;		/* one bad call fails a batch: each alone */
		if (needed(s) == OP_NONE)
			settle(s);
		else
			lws_dll2_add_head(&s->work, &todo);
	}
	lws_end_foreach_dll_safe(d, d1);
	flying = OP_NONE;
}

/* May s's call go now (its session is registered, and it has a call)? */
static int
ready(const struct sub *s, enum op op)
{
	return s->c->registered && needed(s) == op;
}

/* Sends one batch of calls of kind op; 1 if it went out. */
static int
send_batch(enum op op)
{
	struct strbuf ch = {0},
				users = {0},
				sessions = {0},
				metas = {0};
	const char *params[4];
	char		sid[96];
	int			sent;

	sb_add(&ch, "{", 1);
	sb_add(&users, "{", 1);
	sb_add(&sessions, "{", 1);
	sb_add(&metas, "{", 1);
	lws_start_foreach_dll_safe(struct lws_dll2 *, d, d1, todo.head)
	{
		struct sub *s = lws_container_of(d, struct sub, work);

		/* one whose batch failed goes alone */
		if (!ready(s, op) || (s->solo && in_flight.count))
			;
		else
		{
			sessions_id(s->c, sid, sizeof(sid));
			sb_add_elem(&ch, s->ch->name);
			sb_add_elem(&users, s->c->user);
			sb_add_elem(&sessions, sid);
			/* a join goes with its own meta; what came after, after it */
			if (op == OP_JOIN ? s->join_meta != NULL : s->meta != NULL)
				sb_add_elem(&metas, op == OP_JOIN ? s->join_meta : s->meta);
			else
				sb_add_null(&metas);
			s->sending_version = op == OP_JOIN ? s->join_version : s->meta_version;
			s->in_flight = 1;
			lws_dll2_remove(d);
			lws_dll2_add_tail(d, &in_flight);
			if (s->solo)
				break;
		}
	}
	lws_end_foreach_dll_safe(d, d1);
	sb_add(&ch, "}", 1);
	sb_add(&users, "}", 1);
	sb_add(&sessions, "}", 1);
	sb_add(&metas, "}", 1);
	params[0] = ch.p;
	params[1] = users.p;
	params[2] = sessions.p;
	params[3] = metas.p;
	sent = in_flight.count && !ch.oom && !users.oom && !sessions.oom && !metas.oom &&
		!dblink_send(op == OP_JOIN ? sql_join : op == OP_UPDATE ? sql_update : sql_leave,
					 op == OP_LEAVE ? 3 : 4, params, done, NULL);
	if (sent)
	{
		flying = op;
		relay_metrics.join_batches_total[op - 1]++;
	}
	else
	{
		/* back to the head of the list, for the next turn */
		while (in_flight.tail)
		{
			struct lws_dll2 *d = in_flight.tail;

			lws_dll2_remove(d);
			lws_container_of(d, struct sub, work)->in_flight = 0;
			lws_dll2_add_head(d, &todo);
		}
	}
	sb_free(&ch);
	sb_free(&users);
	sb_free(&sessions);
	sb_free(&metas);
	return sent;
}

/* queue.c's turn: leaves, then joins, then updates; 1 if a batch went out. */
int
joins_pump(void)
{
	if (!link_up || !todo.count)
		return 0;
	return send_batch(OP_LEAVE) || send_batch(OP_JOIN) || send_batch(OP_UPDATE);
}

void
joins_link_up(void)
{
	link_up = 1;
	queue_kick();
}

/*
 * The link is gone, and with it every membership of the relay's sessions
 * (bound sessions end with their connection): those that are wanted are
 * joined again, with their last meta, once the sessions are back.
 */
void
joins_link_down(lws_dll2_owner_t *clients)
{
	link_up = 0;
	flying = OP_NONE;
	while (in_flight.head)
	{
		struct sub *s = lws_container_of(in_flight.head, struct sub, work);

		lws_dll2_remove(&s->work);
		s->in_flight = 0;
	}
	lws_start_foreach_dll(struct lws_dll2 *, d, clients->head)
	{
		struct client *c = lws_container_of(d, struct client, out.list);

		lws_start_foreach_dll_safe(struct lws_dll2 *, e, e1, c->subs.head)
		{
			struct sub *s = lws_container_of(e, struct sub, by_client);

			s->db_member = 0;
			s->solo = 0;
			s->sent_version = 0;
			if (s->present)
				set_join(s);	/* again, with its last meta */
			if (needed(s) == OP_NONE)
			{
				if (s->work.owner)
					settle(s);
			}
			else if (!s->work.owner)
				lws_dll2_add_tail(&s->work, &todo);
		}
		lws_end_foreach_dll_safe(e, e1);
	}
	lws_end_foreach_dll(d);
}
