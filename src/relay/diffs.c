/*
 * diffs.c - a large channel's "diff" frames, for watchers that keep up and
 * for those that fall behind.
 *
 * Every 100 ms with changes (channels.c), members_diff() closes the
 * channel's open generation and makes one diff from the previous diff's
 * generation to it: the net effect, each member as it is now.  Watchers
 * that had the previous one share this frame.  A watcher that could not
 * take it yet (channels.c asks out.c) gets no second frame queued: when it
 * can take one, members_catch_up() makes ONE diff from the generation it
 * was last sent to now (closing the open generation too, so that what it
 * was told has a name).  Its bytes are then bounded by the channel's size,
 * whatever the rate of changes.
 *
 * A catch-up walks only the members changed since (the channel's order is
 * by last change).  Members gone are kept as tombstones so that their
 * leave can be told; they are let go when no watcher is older than their
 * leave, or, beyond the channel's size (at least TOMBS_MIN), oldest first:
 * a watcher older than a tombstone let go (ch->floor) gets a fresh state
 * instead.
 */
#include "members.h"

#include <string.h>

#define TOMBS_MIN	1024

static void forget_catch_ups(struct channel *ch);

enum
{
	IN_JOINS,
	IN_LEAVES,
	IN_UPDATES,
	IN_NONE
};

/*
 * Where m goes in a diff from generation since (m changed after it).  A
 * member shown now is a join if it joined after since (it may have been
 * shown then too, before a leave since forgotten: a join of a member the
 * client has is harmless), else an update.  One gone now is a leave unless
 * it joined after since and was known absent then.
 */
static int
list_of(const struct member *m, int64_t since)
{
	if (m->present)
		return m->join_gen > since ? IN_JOINS : IN_UPDATES;
	if (m->join_gen > since && m->absent_from <= since)
		return IN_NONE;
	return IN_LEAVES;
}

/* {"user_id":U,"status":S,"meta":M,"status_message":X}, or {"user_id":U} */
static void
member_object(struct jbuf *b, const struct member *m, int with_state)
{
	jbuf_str(b, "{\"user_id\":");
	jbuf_quote(b, m->u->id, m->node.klen);
	if (with_state)
	{
		jbuf_printf(b, ",\"status\":\"%s\",\"meta\":", event_status_name(m->status));
		jbuf_str(b, m->meta ? m->meta : "null");
		jbuf_str(b, ",\"status_message\":");
		jbuf_quote_or_null(b, m->u->message, m->u->message ? strlen(m->u->message) : 0);
	}
	jbuf_str(b, "}");
}

/* The first member of ch's order changed after generation since, if any. */
static struct lws_dll2 *
changed_since(struct channel *ch, int64_t since)
{
	struct lws_dll2 *d = ch->order.tail,
			   *first = NULL;

	while (d && lws_container_of(d, struct member, order)->gen > since)
	{
		first = d;
		d = d->prev;
	}
	return first;
}

/*
 * The diff of ch from generation since to now: "joins" (shown now, not
 * then), "leaves" (the other way round), "updates" (shown at both, changed
 * between), each member as it is now.  NULL if there is nothing to say.
 */
static struct frame *
make_diff(struct channel *ch, int64_t since)
{
	static const char *const lists[] = {"joins", "leaves", "updates"};
	struct lws_dll2 *from = changed_since(ch, since),
			   *d;
	struct jbuf b = {0};
	int			l,
				n = 0,
				first;

	if (!from)
		return NULL;
	jbuf_str(&b, "{\"type\":\"diff\",\"channel\":");
	jbuf_quote(&b, ch->name, ch->len);
	jbuf_printf(&b, ",\"seq\":%lld", (long long) ch->dirty_seq);
	for (l = IN_JOINS; l < IN_NONE; l++)
	{
		jbuf_printf(&b, ",\"%s\":[", lists[l]);
		first = 1;
		for (d = from; d; d = d->next)
		{
			struct member *m = lws_container_of(d, struct member, order);

			if (list_of(m, since) == l)
			{
				if (!first)
					jbuf_str(&b, ",");
				first = 0;
				member_object(&b, m, l != IN_LEAVES);
				n++;
			}
		}
		jbuf_str(&b, "]");
	}
	jbuf_str(&b, "}");
	if (!n)
	{
		jbuf_free(&b);
		return NULL;
	}
	return frame_make(&b, lws_now_usecs());
}

/* Closes ch's open generation if anything changed in it. */
static void
close_gen(struct channel *ch)
{
	struct lws_dll2 *last = ch->order.tail;

	if (last && lws_container_of(last, struct member, order)->gen > ch->gen)
		ch->gen++;
}

/*
 * A diff of ch is due: the next shared diff, from the last one's
 * generation to now, replaces it (ch->diff, NULL if nothing to say).
 */
void
members_diff(struct channel *ch)
{
	close_gen(ch);
	frame_release(ch->diff);
	ch->diff = NULL;
	forget_catch_ups(ch);
	ch->diff_base = ch->diff_gen;
	ch->diff_gen = ch->gen;
	if (ch->diff_gen != ch->diff_base && (ch->diff = make_diff(ch, ch->diff_base)))
		relay_metrics.diffs_total++;
}

/*
 * Lets go of the catch-ups kept for reuse (they are to an older
 * generation, or ch is being reset).
 */
static void
forget_catch_ups(struct channel *ch)
{
	int			i;

	for (i = 0; i < ch->catch_used; i++)
		frame_release(ch->catch[i]);
	ch->catch_used = 0;
}

/*
 * The catch-up of ch from generation since to now (ch->gen, closed): one
 * made already for another watcher at since, if nothing changed since
 * then (clients behind at the same point, caught up in the same loop turn
 * or at the same diff, share it), else a new one.  NULL: nothing to say.
 */
static struct frame *
catch_up_frame(struct channel *ch, int64_t since)
{
	struct frame *f;
	int			i;

	if (ch->catch_gen != ch->gen)
	{
		forget_catch_ups(ch);
		ch->catch_gen = ch->gen;
	}
	for (i = 0; i < ch->catch_used; i++)
		if (ch->catch_since[i] == since)
			return ch->catch[i];
	if ((f = make_diff(ch, since)))
		relay_metrics.catch_ups_total++;
	if (ch->catch_used == RELAY_CATCH_UPS)
		forget_catch_ups(ch);	/* full: start again */
	i = ch->catch_used++;
	ch->catch[i] = f;
	ch->catch_since[i] = since;
	return f;
}

/*
 * What brings a watcher of ch from generation *since to now: *f (a
 * reference of the caller's; NULL: nothing to say), and *since moved on.
 * The shared diff if that is all it missed; else a catch-up.  -1 if
 * *since is older than the tombstones kept: the watcher needs a state.
 */
int
members_catch_up(struct channel *ch, int64_t *since, struct frame **f)
{
	*f = NULL;
	if (*since < ch->floor)
		return -1;
	if (*since == ch->diff_base && ch->diff_gen != ch->diff_base)
	{
		if ((*f = ch->diff))
			frame_hold(*f);
		*since = ch->diff_gen;
		return 0;
	}
	close_gen(ch);
	if (*since >= ch->gen)
		return 0;
	if ((*f = catch_up_frame(ch, *since)))
		frame_hold(*f);
	*since = ch->gen;
	return 0;
}

/*
 * Lets go of ch's tombstones no watcher needs (their leave is at or before
 * oldest, the oldest watcher's generation), and of the oldest beyond the
 * channel's size: watchers older than those get a state.
 */
void
members_prune(struct channel *ch, int64_t oldest)
{
	int			present = (int) ch->members.used - (int) ch->tombs.count,
				keep = present > TOMBS_MIN ? present : TOMBS_MIN;
	struct member *m;

	while (ch->tombs.head)
	{
		m = lws_container_of(ch->tombs.head, struct member, tomb);
		if (m->gen > ch->diff_gen)
			break;				/* its leave is not in a diff yet */
		if (m->gen > oldest)
		{
			if ((int) ch->tombs.count <= keep)
				break;
			ch->floor = m->gen;
		}
		free_member(m);
	}
}

/*
 * Closes ch's generations so far: no watcher can be caught up from one of
 * them, and the diffs made of them go.
 */
void
members_close_gens(struct channel *ch)
{
	ch->gen++;
	ch->diff_base = ch->diff_gen = ch->floor = ch->gen;
	frame_release(ch->diff);
	ch->diff = NULL;
	forget_catch_ups(ch);
}

/*
 * ch becomes large (its events go into diffs) or small again.  Large: its
 * generation so far is closed, the one every watcher is at (returned).
 * Small: the caller has given every watcher its catch-up; tombstones go.
 */
int64_t
members_set_large(struct channel *ch, int large)
{
	ch->large = large ? 1 : 0;
	members_close_gens(ch);
	if (!large)
		while (ch->tombs.head)
			free_member(lws_container_of(ch->tombs.head, struct member, tomb));
	return ch->gen;
}
