/*-------------------------------------------------------------------------
 *
 * membership.c
 *	  What backends do with channels: join, leave, update, and the reads
 *	  members(), channels() and occupancy().  sql_api.c and channel_api.c
 *	  have validated every argument.
 *
 * Each write takes the user's partition lock, then the channel's lock only
 * long enough to find the channel (and to add a member to it): never the
 * other way round.  A join that opens a session or adds a membership checks
 * and allocates everything it needs before it links anything, so that a
 * full registry changes nothing.  The worker is woken when others would
 * see something: a join or an update to announce, or a leave with no grace.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "utils/jsonb.h"

#include "registry.h"

typedef enum JoinResult
{
	JOIN_DONE,
	JOIN_FULL,
	JOIN_TOO_MANY,				/* presence.max_channels_per_session */
	JOIN_USER_FULL				/* presence.max_sessions_per_user */
} JoinResult;

/* Whether the worker has a join or a leave to announce for the member. */
static bool
member_news(const PresenceMember *member)
{
	return (member_has_membership(member) &&
			member->user->notified != PRESENCE_OFFLINE) != member->notified;
}

/* Whether two Jsonb datums are the same bytes. */
static bool
same_jsonb(const void *a, const void *b)
{
	return VARSIZE(a) == VARSIZE(b) && memcmp(a, b, VARSIZE(a)) == 0;
}

/*
 * Replaces a membership's meta.  Returns false when there is no memory for
 * it; *changed says whether it differs from the meta it had, in which case
 * the worker announces it as an update.  A meta no larger than the one it
 * replaces (a flag flipped, say) is written over it: whoever reads it holds
 * the partition's lock, and the string area's allocator, whose locks every
 * backend shares, is left alone.
 */
static bool
membership_set_meta(PresencePartition *part, PresenceMembership *ms,
					const void *meta, TimestampTz now, bool *changed)
{
	void	   *old = DsaPointerIsValid(ms->meta_dp) ?
		registry_address(ms->meta_dp) : NULL;
	const void *copy;
	dsa_pointer dp;

	*changed = old == NULL || !same_jsonb(old, meta);
	if (!*changed)
		return true;
	if (old != NULL && VARSIZE(meta) <= VARSIZE(old))
		memcpy(old, meta, VARSIZE(meta));
	else
	{
		dp = registry_store_jsonb(meta, &copy);
		if (!DsaPointerIsValid(dp))
			return false;
		registry_free_string(ms->meta_dp);
		ms->meta_dp = dp;
	}
	ms->update_pending = true;
	ms->member->dirty = true;
	member_mark_changed(part, ms->member, now);
	return true;
}

/*
 * A session in at most this many channels is looked for in them one by one
 * rather than through the channel and member tables: two fewer hash lookups
 * in shared memory, each a few cache misses once other backends have run on
 * the core (bench/channels.sh), for the sessions of most apps.
 */
#define SESSION_WALK_MAX	4

/*
 * The session's membership in the channel of that name and hash, among its
 * own, or NULL.  A member holds its channel: the entry stays while we hold
 * the member's partition lock.
 */
static PresenceMembership *
session_membership_in(PresenceSession *s, PresenceId channel, uint32 chash)
{
	slist_iter	iter;

	slist_foreach(iter, &s->memberships)
	{
		PresenceMembership *ms = slist_container(PresenceMembership,
												 session_node, iter.cur);
		PresenceChannel *ch = ms->member->channel;

		if (ch->hash == chash && ch->name_len == (uint32) channel.len &&
			memcmp(ch->name, channel.data, channel.len) == 0)
			return ms;
	}
	return NULL;
}

/*
 * The session's membership in the channel, found under the user's partition
 * lock (held by the caller): NULL if the session is not live or not a
 * member.  *member is the user's member entry there, if any.
 */
static PresenceMembership *
find_membership(RegistryLookup *l, PresenceSession *s, PresenceId channel,
				PresenceMember **member)
{
	uint32		chash = channel_hash(channel.data, channel.len);
	LWLock	   *clock = channel_lock(chash);
	PresenceChannel *ch;
	PresenceUser *u;

	if (s != NULL && !s->ended && s->nmemberships <= SESSION_WALK_MAX)
	{
		PresenceMembership *ms = session_membership_in(s, channel, chash);

		if (ms != NULL)
		{
			*member = ms->member;
			return ms;
		}
	}
	u = s ? s->user : registry_find_user(l);
	*member = NULL;
	if (u == NULL)
		return NULL;
	LWLockAcquire(clock, LW_SHARED);
	ch = channel_find(channel.data, channel.len, chash);
	if (ch != NULL)
		*member = member_find(ch, u, l->uhash);
	LWLockRelease(clock);
	if (*member == NULL || s == NULL || s->ended)
		return NULL;
	return membership_of(*member, s);
}

/*
 * Takes the user's partition lock, exclusively, and finds the session and
 * its membership in the channel (NULL if none).
 */
static PresenceMembership *
lock_membership(RegistryLookup *l, PresenceId channel, PresenceId user,
				PresenceId session, PresenceSession **s, PresenceMember **m)
{
	registry_lookup_init(l, user.data, user.len, session.data, session.len);
	LWLockAcquire(l->lock, LW_EXCLUSIVE);
	*s = registry_find_session(l);
	return find_membership(l, *s, channel, m);
}

/*
 * A member session's meta replaced, if one is given, and activity on the
 * session: a join again, or an update.  False when there is no memory for
 * the meta; *wake says whether the worker has something to announce.
 */
static bool
refresh_membership(RegistryLookup *l, PresenceSession *s,
				   PresenceMembership *ms, const void *meta, bool *wake)
{
	TimestampTz now = GetCurrentTimestamp();
	bool		changed = false;

	if (meta != NULL && !membership_set_meta(l->part, ms, meta, now, &changed))
		return false;
	*wake = registry_session_alive(l->part, s, now, true) ||
		(changed && ms->member->notified);
	return true;
}

/*
 * A join that adds a membership, and opens the session if it is not live.
 * The caller holds the user's partition lock exclusively.  Everything that
 * may not fit is taken first: a membership from the pool, storage for the
 * meta, the channel, the user, the member, the session; the first that
 * does not fit gives back what was taken before it.
 */
static JoinResult
join_new(RegistryLookup *l, PresenceSession *s, PresenceId channel,
		 const void *meta, TimestampTz now, RegistryFull *full, bool *wake)
{
	PresencePartition *part = l->part;
	bool		live = s != NULL && !s->ended;
	uint32		chash = channel_hash(channel.data, channel.len);
	LWLock	   *clock = channel_lock(chash);
	PresenceMembership *ms;
	dsa_pointer meta_dp = InvalidDsaPointer;
	PresenceChannel *ch;
	PresenceUser *u;
	PresenceMember *m = NULL;
	bool		new_channel = false;
	bool		new_user = false;
	bool		new_member = false;
	bool		reserved = false;

	if (live && s->nmemberships >= presence_max_channels_per_session)
		return JOIN_TOO_MANY;
	u = s ? s->user : registry_find_user(l);
	if (!live && u != NULL && u->nsessions >= presence_max_sessions_per_user)
		return JOIN_USER_FULL;
	ms = membership_alloc();
	if (ms == NULL)
	{
		*full = REGISTRY_FULL_MEMBERSHIPS;
		return JOIN_FULL;
	}
	if (meta != NULL)
	{
		const void *copy;

		meta_dp = registry_store_jsonb(meta, &copy);
		if (!DsaPointerIsValid(meta_dp))
		{
			*full = REGISTRY_FULL_MEMORY;
			goto undo_membership;
		}
	}

	LWLockAcquire(clock, LW_EXCLUSIVE);
	ch = channel_find(channel.data, channel.len, chash);
	if (ch == NULL)
	{
		ch = channel_create(channel.data, channel.len, chash, full);
		if (ch == NULL)
			goto undo_meta;
		new_channel = true;
	}
	if (u == NULL)
	{
		u = registry_create_user(l, full);
		if (u == NULL)
			goto undo_channel;
		new_user = true;
	}
	else if (!new_channel)
		m = member_find(ch, u, l->uhash);
	if (m == NULL)
	{
		m = member_create(part, ch, u, l->uhash, full);
		if (m == NULL)
			goto undo_user;
		new_member = true;
	}
	if (!live)
	{
		if (!registry_reserve_session())
		{
			*full = REGISTRY_FULL_ENTRIES;
			goto undo_member;
		}
		reserved = true;
		if (s == NULL && (s = registry_create_session(l, u, NULL, full)) == NULL)
			goto undo_member;
	}
	LWLockRelease(clock);

	/* Everything fits: the session first, so its status goes out first. */
	if (!live)
	{
		/* As heartbeat opens one: unbound, without the meta it had. */
		registry_free_string(s->meta_dp);
		s->meta_dp = InvalidDsaPointer;
		*wake = registry_open_session(part, s, false, true, now);
	}
	else
		*wake = registry_session_alive(part, s, now, true);
	membership_link(part, ms, m, s, meta_dp, now);
	*wake |= member_news(m);
	return JOIN_DONE;

undo_member:
	if (reserved)
		registry_release_session();
	if (new_member)
		member_discard(part, m);
undo_user:
	if (new_user)
		registry_remove_user(part, u);
undo_channel:
	if (new_channel)
		channel_drop_if_empty(ch);
undo_meta:
	LWLockRelease(clock);
	registry_free_string(meta_dp);
undo_membership:
	membership_release(ms);
	return JOIN_FULL;
}

/*
 * One attempt at a join: refresh the membership the session has in the
 * channel, or add one.
 */
static JoinResult
try_join(PresenceId channel, PresenceId user, PresenceId session,
		 const void *meta, RegistryFull *full)
{
	RegistryLookup l;
	PresenceSession *s;
	PresenceMember *m;
	PresenceMembership *ms;
	JoinResult	result = JOIN_DONE;
	bool		wake = false;

	ms = lock_membership(&l, channel, user, session, &s, &m);
	if (ms == NULL)
		result = join_new(&l, s, channel, meta, GetCurrentTimestamp(), full,
						  &wake);
	else if (!refresh_membership(&l, s, ms, meta, &wake))
	{
		*full = REGISTRY_FULL_MEMORY;
		result = JOIN_FULL;
	}
	registry_release(l.lock, wake);
	return result;
}

/*
 * join(channel, user, session, meta): the session joins the channel,
 * opened if it is not live.  A registry that looks full gets one worker
 * tick to free what ended, as for connect.
 */
void
registry_join(PresenceId channel, PresenceId user, PresenceId session,
			  const void *meta)
{
	RegistryFull full;
	JoinResult	result;

	result = try_join(channel, user, session, meta, &full);
	if (result == JOIN_FULL)
	{
		registry_wait_for_tick();
		result = try_join(channel, user, session, meta, &full);
	}
	if (result == JOIN_FULL)
		registry_report_full(full);
	if (result == JOIN_USER_FULL)
		registry_report_user_full(user);
	if (result == JOIN_TOO_MANY)
	{
		event_count(EVENT_CHANNEL_LIMIT);
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("the session is in too many channels"),
				 errdetail("presence.max_channels_per_session is %d.",
						   presence_max_channels_per_session),
				 errhint("Leave a channel first, or raise presence.max_channels_per_session.")));
	}
}

/* leave(channel, user, session): false if the session was not a member. */
bool
registry_leave(PresenceId channel, PresenceId user, PresenceId session)
{
	RegistryLookup l;
	PresenceSession *s;
	PresenceMember *m;
	PresenceMembership *ms;
	bool		wake = false;

	ms = lock_membership(&l, channel, user, session, &s, &m);
	if (ms != NULL)
		wake = membership_end(l.part, ms, GetCurrentTimestamp());
	registry_release(l.lock, wake);
	return ms != NULL;
}

/*
 * update(channel, user, session, meta): replaces the member's meta; false
 * if the session is not a member.  An update is activity.
 */
bool
registry_update(PresenceId channel, PresenceId user, PresenceId session,
				const void *meta)
{
	RegistryLookup l;
	PresenceSession *s;
	PresenceMember *m;
	PresenceMembership *ms;
	bool		wake = false;
	bool		room = true;

	ms = lock_membership(&l, channel, user, session, &s, &m);
	if (ms != NULL)
		room = refresh_membership(&l, s, ms, meta, &wake);
	registry_release(l.lock, wake);
	if (!room)
		registry_report_full(REGISTRY_FULL_MEMORY);
	return ms != NULL;
}

/* occupancy(channel): members others see, from one atomic counter. */
int
registry_occupancy(PresenceId channel)
{
	uint32		chash = channel_hash(channel.data, channel.len);
	LWLock	   *clock = channel_lock(chash);
	PresenceChannel *ch;
	int			n = 0;

	LWLockAcquire(clock, LW_SHARED);
	ch = channel_find(channel.data, channel.len, chash);
	if (ch != NULL)
		n = (int) pg_atomic_read_u32(&ch->occupancy);
	LWLockRelease(clock);
	return n;
}

/* Lets the worker free the channel and its members again. */
static void
unpin_channel(int code, Datum arg)
{
	pg_atomic_fetch_sub_u32(&((PresenceChannel *) DatumGetPointer(arg))->pins, 1);
}

/*
 * Calls cb for one member, under its partition's lock: its user as others
 * see it, and the metas of its memberships in join order (NULL for none),
 * valid during the call only.
 */
static void
visit_member(PresenceMember *m, PresenceMemberCallback cb, void *arg,
			 const void ***metas, int *maxmetas)
{
	PresenceUser *u = m->user;
	PresenceUserView view;
	slist_iter	iter;
	int			n = 0;

	if (!member_shown(m))
		return;
	if (m->nlive > *maxmetas)
	{
		*maxmetas = Max(m->nlive, 2 * *maxmetas);
		*metas = repalloc(*metas, sizeof(void *) * *maxmetas);
	}
	slist_foreach(iter, &m->memberships)
	{
		PresenceMembership *ms = slist_container(PresenceMembership, member_node,
												 iter.cur);

		(*metas)[n++] = DsaPointerIsValid(ms->meta_dp) ?
			registry_address(ms->meta_dp) : NULL;
	}
	view.status = status_as_seen(u);
	view.last_active = status_last_active(u);
	view.sessions = m->nlive;
	view.status_message = message_as_seen(u, GetCurrentTimestamp());
	cb(u->key.user, &view, *metas, n, arg);
}

/*
 * members(channel): calls cb for every member others see.  The channel's
 * lock is held only to copy its member list, and the channel pinned, so
 * that neither it nor those members are freed while the partitions are
 * visited one at a time, each under its own lock: no partition lock is ever
 * waited for while the channel's is held.  Members who join meanwhile may
 * be missed, as if they had joined just after the call.
 */
void
registry_foreach_member(PresenceId channel, PresenceMemberCallback cb,
						void *arg)
{
	uint32		chash = channel_hash(channel.data, channel.len);
	LWLock	   *clock = channel_lock(chash);
	PresenceChannel *ch;
	PresenceMember **members;
	int			start[PRESENCE_PARTITIONS + 1] = {0};
	dlist_iter	iter;

	LWLockAcquire(clock, LW_SHARED);
	ch = channel_find(channel.data, channel.len, chash);
	if (ch == NULL)
	{
		LWLockRelease(clock);
		return;
	}
	members = palloc(sizeof(PresenceMember *) * Max(ch->nmembers, 1));
	/* Sorted by partition: count, then place. */
	dlist_foreach(iter, &ch->members)
		start[dlist_container(PresenceMember, channel_node, iter.cur)->partition + 1]++;
	for (int p = 0; p < PRESENCE_PARTITIONS; p++)
		start[p + 1] += start[p];
	{
		int			next[PRESENCE_PARTITIONS];

		memcpy(next, start, sizeof(next));
		dlist_foreach(iter, &ch->members)
		{
			PresenceMember *m = dlist_container(PresenceMember, channel_node, iter.cur);

			members[next[m->partition]++] = m;
		}
	}
	pg_atomic_fetch_add_u32(&ch->pins, 1);
	LWLockRelease(clock);

	PG_ENSURE_ERROR_CLEANUP(unpin_channel, PointerGetDatum(ch));
	{
		int			maxmetas = 4;
		const void **metas = palloc(sizeof(void *) * maxmetas);

		for (int p = 0; p < PRESENCE_PARTITIONS; p++)
		{
			if (start[p] == start[p + 1])
				continue;
			LWLockAcquire(registry_partition_lock(p), LW_SHARED);
			for (int i = start[p]; i < start[p + 1]; i++)
				visit_member(members[i], cb, arg, &metas, &maxmetas);
			LWLockRelease(registry_partition_lock(p));
		}
		pfree(metas);
	}
	PG_END_ENSURE_ERROR_CLEANUP(unpin_channel, PointerGetDatum(ch));
	unpin_channel(0, PointerGetDatum(ch));
	pfree(members);
}

/*
 * channels(user): calls cb for every channel the user is a member of, as
 * the registry holds it (visible or not; during a channel's grace with no
 * sessions).
 */
void
registry_foreach_channel_of(PresenceId user, PresenceChannelCallback cb,
							void *arg)
{
	RegistryLookup l;
	PresenceUser *u;
	slist_iter	iter;

	registry_lookup_init(&l, user.data, user.len, NULL, 0);
	LWLockAcquire(l.lock, LW_SHARED);
	u = registry_find_user(&l);
	if (u != NULL)
	{
		slist_foreach(iter, &u->members)
		{
			PresenceMember *m = slist_container(PresenceMember, user_node, iter.cur);

			if (member_has_membership(m))
				cb(m->channel->name, m->nlive, arg);
		}
	}
	LWLockRelease(l.lock);
}
