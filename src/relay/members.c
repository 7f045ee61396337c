/*
 * members.c - who is in each channel the relay's clients watch, kept from
 * its state (presence.members()) and the events after it, and what the
 * channel's subscribers are sent about it.
 *
 * A channel's members are a hash table of struct member by user id, and
 * each user in any watched channel has an entry of its own listing its
 * memberships (the per-user index): a user's status change, announced once
 * for all channels (docs/sql.md), reaches exactly the channels it is in,
 * and a channel event touches one channel.  Either costs the subscribers
 * of the channels concerned, never all clients.
 *
 * A status change that makes a user offline (gone, or invisible) removes it
 * from every channel without a leave each, as the extension does; shown
 * again, its joins follow.  A user's status message (1.1) is the user's, not
 * a member's: it is kept on the user's entry, sent to each of its channels
 * when it changes, and with its joins.  The extension announces a user
 * shown again as its status, then its message, then its joins: the message
 * comes while the user is in no channel of the relay's, so an entry with a
 * message and no member is kept a while (LONELY_US) for the joins to find.
 *
 * Frames are made here and handed to the caller's publish function (which
 * sends them to the channel's subscribers).  A large channel (channels.c
 * decides: --large-channel) gets no frame per event: its members remember
 * when they changed (members.h), a member that leaves stays a while as a
 * tombstone, and diffs.c makes "diff" frames of it, the net effect since
 * the last diff, each member as it is now, so that a login storm in a
 * 10,000-member room is a frame per subscriber every 100 ms, not one per
 * event.  publish(ch, NULL) says that a diff is due.
 */
#include "members.h"

#include <stdlib.h>
#include <string.h>

#define LONELY_US	(2 * LWS_US_PER_SEC)

static struct htable users;
static int	lonely;				/* entries with a message and no member */

int
members_init(void)
{
	return hash_init(&users, 1024);
}

static struct user *
find_user(const char *id, size_t len)
{
	struct hnode *e = hash_find(&users, id, len);

	return e ? lws_container_of(e, struct user, node) : NULL;
}

static struct user *
get_user(const char *id, size_t len)
{
	struct user *u = find_user(id, len);

	if (u || !(u = calloc(1, sizeof(*u) + len + 1)))
		return u;
	memcpy(u->id, id, len);
	hash_add(&users, &u->node, u->id, len);
	return u;
}

static struct member *
find_member(struct channel *ch, const char *id, size_t len)
{
	struct hnode *e = ch->members.slots ? hash_find(&ch->members, id, len) : NULL;

	return e ? lws_container_of(e, struct member, node) : NULL;
}

/* Replaces m's meta with meta[0..len) (len 0: null); -1 if out of memory. */
static int
set_meta(struct member *m, const char *meta, size_t len)
{
	char	   *copy = NULL;

	if (len && !(copy = malloc(len + 1)))
		return -1;
	if (len)
	{
		memcpy(copy, meta, len);
		copy[len] = '\0';
	}
	free(m->meta);
	m->meta = copy;
	return 0;
}

/* m, shown in its channel from now on (a new entry if need be). */
static struct member *
add_member(struct channel *ch, const char *id, size_t len)
{
	struct member *m = find_member(ch, id, len);
	struct user *u;

	if (m)
		return m;
	if ((!ch->members.slots && hash_init(&ch->members, 8)) ||
		!(u = get_user(id, len)) || !(m = calloc(1, sizeof(*m))))
		return NULL;
	m->ch = ch;
	m->u = u;
	/* new to the channel: absent before, as far back as anyone knows */
	m->gen = m->join_gen = ch->gen + 1;
	lws_dll2_add_tail(&m->order, &ch->order);
	if (u->lonely_at)
	{
		u->lonely_at = 0;
		lonely--;
	}
	hash_add(&ch->members, &m->node, u->id, len);
	lws_dll2_add_tail(&m->by_user, &u->members);
	return m;
}

static void
free_user(struct user *u)
{
	hash_remove(&users, &u->node);
	free(u->message);
	free(u);
}

/* u has no member any more: freed, or kept a while for its message. */
static void
unused(struct user *u)
{
	if (u->members.count || u->lonely_at)
		return;
	if (!u->message)
		free_user(u);
	else
	{
		u->lonely_at = lws_now_usecs();
		lonely++;
	}
}

/* Sets u's status message (len 0: none); -1 if out of memory. */
static int
set_message(struct user *u, const char *message, size_t len)
{
	char	   *copy = NULL;

	if (len && !(copy = malloc(len + 1)))
		return -1;
	if (len)
	{
		memcpy(copy, message, len);
		copy[len] = '\0';
	}
	free(u->message);
	u->message = copy;
	return 0;
}

/* m is forgotten (diffs.c too lets go of tombstones). */
void
free_member(struct member *m)
{
	struct user *u = m->u;

	hash_remove(&m->ch->members, &m->node);
	lws_dll2_remove(&m->by_user);
	lws_dll2_remove(&m->order);
	lws_dll2_remove(&m->tomb);
	free(m->meta);
	free(m);
	unused(u);
}

/*
 * Frees the entries of users that have been in no channel, with a message,
 * for LONELY_US; returns how many such entries are left.
 */
static void
sweep_cb(struct hnode *e, void *arg)
{
	struct user *u = lws_container_of(e, struct user, node);
	lws_usec_t	now = *(lws_usec_t *) arg;

	if (u->lonely_at && !u->members.count && now - u->lonely_at >= LONELY_US)
	{
		lonely--;
		free_user(u);
	}
}

int
members_lonely(void)
{
	return lonely;
}

int
members_sweep(lws_usec_t now)
{
	if (lonely)
		hash_each(&users, sweep_cb, &now);
	return lonely;
}

/*
 * m has changed (large channels): it goes in the open generation, at the
 * end of its channel's order.
 */
static void
mark(struct member *m)
{
	m->gen = m->ch->gen + 1;
	lws_dll2_remove(&m->order);
	lws_dll2_add_tail(&m->order, &m->ch->order);
}

/*
 * m is no longer shown: freed, or (large) kept as a tombstone until no
 * watcher can still need its leave (diffs.c prunes them).
 */
static void
gone(struct member *m)
{
	m->present = 0;
	if (!m->ch->large)
	{
		free_member(m);
		return;
	}
	mark(m);
	set_meta(m, NULL, 0);
	lws_dll2_add_tail(&m->tomb, &m->ch->tombs);
}

/*
 * A tombstone joins again.  Gone and back within the open generation, no
 * diff saw it gone: its stay goes on.  Else it was absent from its leave's
 * generation until this one.
 */
static void
rejoined(struct member *m)
{
	if (!m->tomb.owner)
		return;
	lws_dll2_remove(&m->tomb);
	if (m->gen != m->ch->gen + 1)
	{
		m->absent_from = m->gen;
		m->join_gen = m->ch->gen + 1;
	}
}

static void
free_member_cb(struct hnode *e, void *arg)
{
	free_member(lws_container_of(e, struct member, node));
}

/*
 * The channel's members are unknown from now on (until its next state):
 * its generations so far are closed, and no watcher can be caught up from
 * one of them.
 */
void
members_reset(struct channel *ch)
{
	if (ch->members.slots)
	{
		hash_each(&ch->members, free_member_cb, NULL);
		hash_free(&ch->members);
	}
	ch->known = 0;
	ch->dirty_seq = 0;
	members_close_gens(ch);
}

/* The frame of a status change, or (large channel) a diff to come. */
static void
publish_frame(struct channel *ch, struct jbuf *b, members_publish_fn publish)
{
	struct frame *f;

	if (ch->large)
	{
		jbuf_free(b);
		publish(ch, NULL);
		return;
	}
	if ((f = frame_make(b, lws_now_usecs())))
	{
		publish(ch, f);
		frame_release(f);
	}
}

/*
 * A join, update or leave in ch (a channel some client watches, its members
 * known): applied, and published.
 */
void
members_event(const struct presence_event *ev, struct channel *ch,
			  members_publish_fn publish)
{
	struct member *m = find_member(ch, ev->user_id, ev->user_len);
	struct jbuf b = {0};

	if (!ch->known)
		return;					/* its state, when it comes, has it */
	if (ev->seq > ch->dirty_seq)
		ch->dirty_seq = ev->seq;
	switch (ev->kind)
	{
		case EVENT_JOIN:
			if (!(m = add_member(ch, ev->user_id, ev->user_len)) ||
				set_meta(m, ev->meta, ev->meta_len))
				return;
			if (!m->present)
				rejoined(m);
			m->status = ev->status;
			m->present = 1;
			if (ch->large)
				mark(m);
			break;
		case EVENT_UPDATE:
			if (!m || !m->present || set_meta(m, ev->meta, ev->meta_len))
				return;
			if (ch->large)
				mark(m);
			break;
		case EVENT_LEAVE:
			if (!m || !m->present)
				return;
			gone(m);
			break;
		default:
			return;
	}
	if (ch->large)
	{
		publish(ch, NULL);
		return;
	}
	if (!(ev->kind == EVENT_JOIN ?
		  event_frame_join(ev, m->u->message, m->u->message ? strlen(m->u->message) : 0, &b) :
		  event_frame(ev, &b)))
		publish_frame(ch, &b, publish);
	else
		jbuf_free(&b);
}

/*
 * A user's status or status message changed: applied in every channel it
 * is in, and a {"type":"presence"|"status_message","channel":C,...}
 * published in each.  Offline means in none of them any more (and no
 * message: the extension hides it).
 */
void
members_status(const struct presence_event *ev, members_publish_fn publish)
{
	struct user *u = find_user(ev->user_id, ev->user_len);

	if (ev->kind == EVENT_MESSAGE)
	{
		/* (a user in no channel yet: its joins may follow) */
		if ((!u && ev->message_len && !(u = get_user(ev->user_id, ev->user_len))) ||
			!u || set_message(u, ev->message, ev->message_len))
			return;
		unused(u);
	}
	else if (u && ev->status == STATUS_OFFLINE)
		set_message(u, NULL, 0);
	if (!u)
		return;
	lws_start_foreach_dll_safe(struct lws_dll2 *, d, d1, u->members.head)
	{
		struct member *m = lws_container_of(d, struct member, by_user);
		struct channel *ch = m->ch;
		struct jbuf b = {0};

		if (m->present)
		{
			if (ev->seq > ch->dirty_seq)
				ch->dirty_seq = ev->seq;
			if (ev->kind == EVENT_MESSAGE)
			{
				if (ch->large)
					mark(m);
			}
			else if (ev->status == STATUS_OFFLINE)
				gone(m);
			else
			{
				m->status = ev->status;
				if (ch->large)
					mark(m);
			}
			if (event_frame_in(ev, ch->name, ch->len, &b))
				jbuf_free(&b);
			else
				publish_frame(ch, &b, publish);
		}
	}
	lws_end_foreach_dll_safe(d, d1);
}

/* The columns of channels.c's state query, after the channel's name. */
enum
{
	COL_CHANNEL,
	COL_USER,
	COL_STATUS,
	COL_LAST_ACTIVE,
	COL_SESSIONS,
	COL_METAS,
	COL_MESSAGE,
	STATE_COLUMNS
};

/* The first element of a metas array, for the member's "meta". */
struct first
{
	const char *v;
	size_t		n;
};

static int
first_cb(void *arg, const char *v, size_t n)
{
	struct first *f = arg;

	if (!f->v)
	{
		f->v = v;
		f->n = n;
	}
	return 0;
}

/*
 * One row of the state query: appended to the state as a member, and (if
 * load) added to the channel's members.  A row that is not as expected is
 * skipped (logged).
 */
static void
load_row(struct channel *ch, const PGresult *res, int row, struct jbuf *b, int *first,
		 int load)
{
	const char *user = PQgetvalue(res, row, COL_USER),
			   *status = PQgetvalue(res, row, COL_STATUS),
			   *last = PQgetvalue(res, row, COL_LAST_ACTIVE),
			   *sessions = PQgetvalue(res, row, COL_SESSIONS),
			   *metas = PQgetvalue(res, row, COL_METAS),
			   *message = PQgetvalue(res, row, COL_MESSAGE);
	size_t		ulen = (size_t) PQgetlength(res, row, COL_USER),
				mlen = (size_t) PQgetlength(res, row, COL_MESSAGE);
	int			has_last = !PQgetisnull(res, row, COL_LAST_ACTIVE),
				has_message = !PQgetisnull(res, row, COL_MESSAGE);
	enum presence_status st = !strcmp(status, "online") ? STATUS_ONLINE :
	!strcmp(status, "away") ? STATUS_AWAY : STATUS_OFFLINE;
	struct jbuf copy = {0},
				meta = {0};
	struct first f = {0};
	struct member *m = NULL;
	const char *shown;

	if (!ulen || ulen > RELAY_MAX_USER_ID || !json_utf8_ok(user, ulen) ||
		st == STATUS_OFFLINE || !json_digits(sessions) ||
		(has_last && !event_timestamp_ok(last, strlen(last))) ||
		PQgetisnull(res, row, COL_METAS) ||
		(has_message && (!mlen || mlen > RELAY_MAX_STATUS_MESSAGE || !json_utf8_ok(message, mlen))) ||
		jsonv_elements(metas, strlen(metas), first_cb, &f) ||
		jsonv_copy(metas, strlen(metas), &copy, NULL) ||
		(f.v && jsonv_copy(f.v, f.n, &meta, NULL)))
	{
		lwsl_warn("state: skipping a row of members() that is not as expected\n");
		jbuf_free(&copy);
		jbuf_free(&meta);
		return;
	}
	/* null is a meta like the others: a session that joined without one */
	shown = meta.len && strcmp(jbuf_text(&meta), "null") ? jbuf_text(&meta) : NULL;
	if (load && (m = add_member(ch, user, ulen)))
	{
		/* there since before any watcher's generation */
		m->gen = m->join_gen = ch->gen;
		m->status = st;
		m->present = 1;
		set_meta(m, shown, shown ? meta.len : 0);
		set_message(m->u, message, has_message ? mlen : 0);
	}
	jbuf_str(b, *first ? "{\"user_id\":" : ",{\"user_id\":");
	*first = 0;
	jbuf_quote(b, user, ulen);
	jbuf_printf(b, ",\"status\":\"%s\",\"last_active\":", status);
	jbuf_quote_or_null(b, has_last ? last : NULL, strlen(last));
	jbuf_printf(b, ",\"sessions\":%s,\"meta\":", sessions);
	jbuf_str(b, shown ? shown : "null");
	jbuf_str(b, ",\"metas\":");
	jbuf_add(b, (const char *) copy.p + LWS_PRE, copy.len);
	jbuf_str(b, ",\"status_message\":");
	jbuf_quote_or_null(b, has_message ? message : NULL, mlen);
	jbuf_str(b, "}");
	jbuf_free(&copy);
	jbuf_free(&meta);
}

/*
 * A state of ch arrived: rows [from, to) of res (a row with a NULL user:
 * the channel is empty).  The {"type":"state","channel":C,"seq":S,
 * "members":[...]} frame is appended to b; -1 if out of memory.
 *
 * The members the relay keeps are taken from it only if it does not know
 * them (its first state, or after changes were lost).  Otherwise they stay
 * as the states and events sent so far made them: they are what the
 * channel's other watchers were told, and a change this state already
 * shows but whose notification comes after it is news to them.
 */
int
members_load(struct channel *ch, const PGresult *res, int from, int to, int64_t seq,
			 struct jbuf *b)
{
	int			row,
				first = 1,
				load = !ch->known;

	if (load)
		members_reset(ch);
	jbuf_str(b, "{\"type\":\"state\",\"channel\":");
	jbuf_quote(b, ch->name, ch->len);
	if (seq >= 0)
		jbuf_printf(b, ",\"seq\":%lld,\"members\":[", (long long) seq);
	else
		jbuf_str(b, ",\"seq\":null,\"members\":[");
	for (row = from; row < to; row++)
		if (!PQgetisnull(res, row, COL_USER))
			load_row(ch, res, row, b, &first, load);
	jbuf_str(b, "]}");
	if (load)
	{
		ch->known = 1;
		ch->dirty_seq = seq > 0 ? seq : 0;
	}
	return b->oom ? -1 : 0;
}

static void
free_user_cb(struct hnode *e, void *arg)
{
	free_user(lws_container_of(e, struct user, node));
}

void
members_cleanup(void)
{
	if (users.slots)
		hash_each(&users, free_user_cb, NULL);
	hash_free(&users);
	lonely = 0;
}
