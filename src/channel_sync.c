/*-------------------------------------------------------------------------
 *
 * channel_sync.c
 *	  The worker's side of channels: what to announce and write for the
 *	  members a tick takes out of the registry, and loading memberships
 *	  from the tables.
 *
 * The rule for what listeners are told follows what members() shows: a
 * member is in a channel while it has a membership there (live, or in the
 * channel's reconnect grace) and its user is not offline as others see it.
 * Membership makes joins and leaves; a user's status makes no per-channel
 * event of its own: its offline (invisible, say) says it is in no channel,
 * and when it is shown again its status goes out followed by one join per
 * channel it is in.  Each member's events are compared with what was last
 * announced (PresenceMember.notified), so a leave and a join again within
 * the grace (a page reload) announce nothing.  Everything runs under the
 * partition lock registry_collect holds.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/jsonb.h"

#include "registry.h"

/* A membership's meta as JSON text, or NULL. */
static char *
meta_text(const PresenceMembership *ms)
{
	Jsonb	   *jb;

	if (ms == NULL || !DsaPointerIsValid(ms->meta_dp))
		return NULL;
	jb = registry_address(ms->meta_dp);
	return JsonbToCString(NULL, &jb->root, VARSIZE(jb));
}

/* The member's first session there, in join order, or NULL. */
static PresenceMembership *
first_membership(PresenceMember *m)
{
	if (slist_is_empty(&m->memberships))
		return NULL;
	return slist_container(PresenceMembership, member_node,
						   slist_head_node(&m->memberships));
}

/* Queues one channel event, ordered at (changed_at, order, sub). */
static void
add_change(PresenceBatch *batch, PresenceChangeKind kind, PresenceMember *m,
		  const PresenceMembership *ms, TimestampTz changed_at, uint64 order,
		  int sub)
{
	PresenceChange *change;

	BATCH_GROW(batch, changes, nchanges, maxchanges);
	change = &batch->changes[batch->nchanges++];
	memset(change, 0, sizeof(*change));
	change->kind = kind;
	change->user_id = pstrdup(m->user->key.user);
	change->channel = pstrdup(m->channel->name);
	change->meta = kind == CHANGE_LEAVE ? NULL : meta_text(ms);
	change->status = m->user->notified;
	change->changed_at = changed_at;
	change->order = order;
	change->sub = sub;
}

/*
 * The member's join to announce, with the meta of its first session there
 * (none during the grace): the update flag of that session is spent.
 */
static void
announce_join(PresenceBatch *batch, PresenceMember *m, TimestampTz changed_at,
			  uint64 order, int sub)
{
	PresenceMembership *first = first_membership(m);

	add_change(batch, CHANGE_JOIN, m, first, changed_at, order, sub);
	if (first)
		first->update_pending = false;
	m->notified = true;
}

/*
 * The user's announced status has just changed from 'previous': an offline
 * user is in no channel (listeners drop it from every one, no leave each);
 * shown again, it joins every channel it has a membership in, right after
 * its status.  A member with a change of its own still to take is left to
 * it: taken in order, after this, it announces its join where its change
 * took effect.
 */
void
members_status_announced(PresenceBatch *batch, PresenceUser *u,
						 PresenceStatus previous)
{
	bool		was_shown = previous != PRESENCE_OFFLINE;
	bool		shown = u->notified != PRESENCE_OFFLINE;
	slist_iter	iter;
	int			sub = 2;		/* after the status (0) and its message (1) */

	if (!batch->with_members || was_shown == shown)
		return;
	slist_foreach(iter, &u->members)
	{
		PresenceMember *m = slist_container(PresenceMember, user_node, iter.cur);

		if (!shown)
		{
			slist_iter	msiter;

			m->notified = false;
			slist_foreach(msiter, &m->memberships)
				slist_container(PresenceMembership, member_node,
								msiter.cur)->update_pending = false;
		}
		else if (member_has_membership(m) && !m->notified &&
				 m->list != MEMBER_ON_CHANGES)
			announce_join(batch, m, u->changed_at, u->change_order, sub++);
	}
}

/* The member's events since the last tick: join, updates, leave. */
static void
member_announce(PresenceBatch *batch, PresenceMember *m)
{
	bool		target = member_has_membership(m) &&
		m->user->notified != PRESENCE_OFFLINE;
	PresenceMembership *joined = NULL;
	slist_iter	iter;
	int			sub = 0;

	if (target && !m->notified)
	{
		joined = first_membership(m);
		announce_join(batch, m, m->changed_at, m->change_order, sub++);
	}
	slist_foreach(iter, &m->memberships)
	{
		PresenceMembership *ms = slist_container(PresenceMembership,
												 member_node, iter.cur);

		if (ms->update_pending && m->notified && ms != joined)
			add_change(batch, CHANGE_UPDATE, m, ms, m->changed_at,
					  m->change_order, sub++);
		ms->update_pending = false;
	}
	if (!target && m->notified)
	{
		add_change(batch, CHANGE_LEAVE, m, NULL, m->changed_at, m->change_order,
				  sub++);
		m->notified = false;
	}
}

/* Adds the rows of a member's memberships to write; none: one without. */
static void
add_rows(PresenceBatch *batch, PresenceMember *m)
{
	slist_iter	iter;
	PresenceMemberRow *row;

	if (m->nlive == 0)
	{
		BATCH_GROW(batch, members, nmembers, maxmembers);
		row = &batch->members[batch->nmembers++];
		row->channel = pstrdup(m->channel->name);
		row->user_id = pstrdup(m->user->key.user);
		row->session_id = NULL;
		row->meta = (Datum) 0;
		row->joined_at = 0;
		return;
	}
	slist_foreach(iter, &m->memberships)
	{
		PresenceMembership *ms = slist_container(PresenceMembership,
												 member_node, iter.cur);

		BATCH_GROW(batch, members, nmembers, maxmembers);
		row = &batch->members[batch->nmembers++];
		row->channel = pstrdup(m->channel->name);
		row->user_id = pstrdup(m->user->key.user);
		row->session_id = pstrdup(ms->session->key.session);
		if (DsaPointerIsValid(ms->meta_dp))
		{
			void	   *jb = registry_address(ms->meta_dp);
			void	   *copy = palloc(VARSIZE(jb));

			memcpy(copy, jb, VARSIZE(jb));
			row->meta = PointerGetDatum(copy);
		}
		else
			row->meta = (Datum) 0;
		row->joined_at = ms->joined_at;
	}
}

/*
 * A member's memberships as they are now, if they changed since last
 * written: its rows replace the (channel, user)'s in presence.memberships.
 * A full batch writes every member afterwards (members_add_all).
 */
static void
member_write(PresenceBatch *batch, PresenceMember *m)
{
	if (!m->dirty)
		return;
	m->dirty = false;
	if (!batch->full && (m->nlive > 0 || m->persisted))
		add_rows(batch, m);
	m->persisted = m->nlive > 0;
}

/*
 * Takes one member off the partition's change list: ends a grace that has
 * already run out (with none, the leave goes out in this tick), announces
 * and writes what changed, then files the member on the grace list, or
 * frees it if nothing is left of it.  A member whose channel a members()
 * call is walking waits for the next tick to be freed.  It leaves the
 * change list last: should the tick fail on the way (out of memory), the
 * next one takes it again.
 */
void
member_take(PresencePartition *part, PresenceMember *m, PresenceBatch *batch,
			TimestampTz now)
{
	if (m->in_grace &&
		m->grace_since + (int64) presence_reconnect_grace_ms * 1000 <= now)
	{
		m->in_grace = false;
		member_recount(m);
	}
	member_announce(batch, m);
	member_write(batch, m);
	dlist_delete(&m->list_node);
	m->list = MEMBER_ON_NONE;
	if (m->in_grace)
		member_grace_file(part, m);
	else if (member_evictable(m) && !member_free(part, m))
		member_mark_changed(part, m, m->changed_at);
}

/* For a full batch: every member's rows. */
void
members_add_all(PresenceBatch *batch, PresenceUser *u)
{
	slist_iter	iter;

	slist_foreach(iter, &u->members)
	{
		PresenceMember *m = slist_container(PresenceMember, user_node, iter.cur);

		if (m->nlive > 0)
			add_rows(batch, m);
		m->persisted = m->nlive > 0;
		m->dirty = false;
	}
}

/*
 * After loading: the members of users just loaded are taken to have been
 * announced as the tables say their users were, and counted as shown.
 */
void
members_loaded(PresenceUser *u)
{
	slist_iter	iter;

	slist_foreach(iter, &u->members)
	{
		PresenceMember *m = slist_container(PresenceMember, user_node, iter.cur);

		m->notified = member_has_membership(m) && u->notified != PRESENCE_OFFLINE;
		member_recount(m);
	}
}

/*
 * Loads one row of presence.memberships.  A membership whose session is not
 * live in the registry is dropped; one the registry has already wins (a
 * merge after a restore).  A member loaded for a user already tracked is
 * announced as a join; for a user being loaded, members_loaded settles it.
 * Returns false when the registry has no room for it.
 */
bool
registry_load_membership(const char *channel, const char *user_id,
						 const char *session_id, const void *meta,
						 TimestampTz joined_at)
{
	RegistryLookup l;
	PresenceSession *s;
	PresenceChannel *ch;
	PresenceMember *m;
	PresenceMembership *ms;
	RegistryFull full;
	int			clen = strlen(channel);
	uint32		chash = channel_hash(channel, clen);
	LWLock	   *clock = channel_lock(chash);
	dsa_pointer meta_dp = InvalidDsaPointer;
	bool		new_channel = false;
	bool		new_member = false;
	bool		wake;

	registry_lookup_init(&l, user_id, strlen(user_id), session_id,
						 strlen(session_id));
	LWLockAcquire(l.lock, LW_EXCLUSIVE);
	s = registry_find_session(&l);
	if (s == NULL || s->ended)
	{
		LWLockRelease(l.lock);
		return true;
	}
	LWLockAcquire(clock, LW_EXCLUSIVE);
	ch = channel_find(channel, clen, chash);
	if (ch == NULL)
	{
		if ((ch = channel_create(channel, clen, chash, &full)) == NULL)
			goto full;
		new_channel = true;
	}
	m = new_channel ? NULL : member_find(ch, s->user, l.uhash);
	if (m != NULL && membership_of(m, s) != NULL)
	{
		LWLockRelease(clock);
		LWLockRelease(l.lock);
		return true;
	}
	if (m == NULL)
	{
		if ((m = member_create(l.part, ch, s->user, l.uhash, &full)) == NULL)
			goto full;
		new_member = true;
	}
	if ((ms = membership_alloc()) == NULL)
		goto full;
	if (meta != NULL)
	{
		const void *copy;

		meta_dp = registry_store_jsonb(meta, &copy);
		if (!DsaPointerIsValid(meta_dp))
		{
			membership_release(ms);
			goto full;
		}
	}
	LWLockRelease(clock);

	membership_link(l.part, ms, m, s, meta_dp, joined_at);
	/* Its row is in the table already. */
	m->dirty = false;
	m->persisted = true;
	wake = !s->user->loading && m->user->notified != PRESENCE_OFFLINE;
	registry_release(l.lock, wake);
	return true;

full:
	if (new_member)
		member_discard(l.part, m);
	if (new_channel)
		channel_drop_if_empty(ch);
	LWLockRelease(clock);
	LWLockRelease(l.lock);
	return false;
}
