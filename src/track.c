/*-------------------------------------------------------------------------
 *
 * track.c
 *	  What backends do to the registry: open, refresh and end sessions,
 *	  change visibility, and read.  sql_api.c has validated every argument.
 *
 * Each operation takes one partition lock.  Timestamps are read after the
 * lock is taken, so every list of a partition stays in time order.  A
 * heartbeat moves timestamps only: the timers that watch them (wheel.h) look
 * at them when due.  The worker is woken only when others would see a
 * different status.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"

#include "registry.h"

static void
lookup_id(RegistryLookup *l, PresenceId user, PresenceId *session)
{
	registry_lookup_init(l, user.data, user.len,
						 session ? session->data : NULL,
						 session ? session->len : 0);
}

/* Replaces a session's meta; false when there is no memory for it. */
static bool
session_set_meta(PresenceSession *session, const char *meta)
{
	const char *copy;
	dsa_pointer dp = registry_store_string(meta, strlen(meta), &copy);

	if (!DsaPointerIsValid(dp))
		return false;
	registry_free_string(session->meta_dp);
	session->meta_dp = dp;
	return true;
}

/*
 * A sign of life from a live session: a heartbeat, or a connect to it.
 * Returns whether the worker should be woken.
 */
static bool
session_alive(PresencePartition *part, PresenceSession *session,
			  TimestampTz now, bool active)
{
	session->last_heartbeat = now;
	if (!active)
		return false;
	return status_session_activity(part, session, now);
}

/* session_alive, for the channel operations (membership.c). */
bool
registry_session_alive(PresencePartition *part, PresenceSession *session,
					   TimestampTz now, bool active)
{
	return session_alive(part, session, now, active);
}

static void
session_set_owner(PresencePartition *part, PresenceSession *session, bool bound)
{
	if (session->bound != bound)
		registry_mark_session_changed(part, session);
	session->bound = bound;
	session->owner_pid = bound ? MyProcPid : 0;
}

/*
 * Readies the session of l to be opened, under its partition's lock held
 * exclusively: *s is its ended entry (an ended session whose row is not
 * deleted yet comes back, new) or NULL.  Checks the user's share
 * (presence.max_sessions_per_user) and the registry's room, reserves the
 * session, and gives the ended entry the new meta or creates the entry (and
 * its user's, *new_user).  Returns CONNECT_OPENED with *s set, or why not,
 * with *full saying why when the registry has no room: then nothing has
 * changed.  The user's count of live sessions only changes under the
 * partition's lock, so the limit is exact however many connect at once.
 */
ConnectResult
registry_prepare_session(RegistryLookup *l, PresenceSession **s,
						 const char *meta, RegistryFull *full, bool *new_user)
{
	PresenceUser *u = *s != NULL ? (*s)->user : registry_find_user(l);

	*new_user = false;
	if (u != NULL && u->nsessions >= presence_max_sessions_per_user)
		return CONNECT_USER_FULL;
	if (!registry_reserve_session())
	{
		*full = REGISTRY_FULL_ENTRIES;
		return CONNECT_FULL;
	}
	if (*s != NULL)
	{
		/* Nobody reads an ended session's meta: replacing it shows nothing. */
		if (meta && !session_set_meta(*s, meta))
		{
			registry_release_session();
			*full = REGISTRY_FULL_MEMORY;
			return CONNECT_FULL;
		}
		if (!meta)
		{
			registry_free_string((*s)->meta_dp);
			(*s)->meta_dp = InvalidDsaPointer;
		}
		return CONNECT_OPENED;
	}
	*s = u != NULL ? registry_create_session(l, u, meta, full) :
		registry_create_user_session(l, meta, full, new_user);
	if (*s == NULL)
	{
		registry_release_session();
		return CONNECT_FULL;
	}
	return CONNECT_OPENED;
}

/*
 * Makes a session that registry_prepare_session readied live: connect,
 * heartbeat, join and heartbeat_many all open one this way, so the status
 * rules see the same event.  Returns whether the worker should be woken.
 */
bool
registry_open_session(PresencePartition *part, PresenceSession *s,
					  bool bound, bool active, TimestampTz now)
{
	registry_start_session(part, s, now);
	session_set_owner(part, s, bound);
	return status_session_started(part, s->user, now, active);
}

/*
 * Opens the session, or refreshes it if it is live.  A connect is activity.
 * When the registry has no room, or the user has
 * presence.max_sessions_per_user live sessions, changes nothing and says
 * why.
 */
static ConnectResult
try_connect(PresenceId user, PresenceId session, const char *meta,
			bool bound, bool active, RegistryFull *full)
{
	RegistryLookup l;
	PresenceSession *s;
	ConnectResult result;
	bool		new_user;
	bool		wake;
	TimestampTz now;

	lookup_id(&l, user, &session);
	LWLockAcquire(l.lock, LW_EXCLUSIVE);
	now = GetCurrentTimestamp();

	s = registry_find_session(&l);
	if (s != NULL && !s->ended)
	{
		if (meta && !session_set_meta(s, meta))
		{
			LWLockRelease(l.lock);
			*full = REGISTRY_FULL_MEMORY;
			return CONNECT_FULL;
		}
		if (meta)
			registry_mark_session_changed(l.part, s);
		session_set_owner(l.part, s, bound);
		wake = session_alive(l.part, s, now, active);
		registry_release(l.lock, wake);
		return CONNECT_REFRESHED;
	}

	result = registry_prepare_session(&l, &s, meta, full, &new_user);
	if (result != CONNECT_OPENED)
	{
		LWLockRelease(l.lock);
		return result;
	}
	wake = registry_open_session(l.part, s, bound, active, now);
	registry_release(l.lock, wake);
	return CONNECT_OPENED;
}

/*
 * Raises the ERROR for a user who has all the sessions one may have (a
 * connect, or a join that would open one).
 */
void
registry_report_user_full(PresenceId user)
{
	event_count(EVENT_USER_LIMIT);
	ereport(ERROR,
			(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
			 errmsg("too many presence sessions for user \"%.*s\"",
					user.len, user.data),
			 errdetail("The user has %d live sessions, the limit set by presence.max_sessions_per_user.",
					   presence_max_sessions_per_user),
			 errhint("End one of them first, or raise presence.max_sessions_per_user and reload the configuration.")));
}

/*
 * Opens or refreshes a session; true if it was opened.  Ended sessions and
 * offline users keep their entries until the worker has written them, so
 * a registry that looks full gets one worker tick to free them.
 */
bool
registry_connect(PresenceId user, PresenceId session, const char *meta,
				 bool bound, bool active)
{
	RegistryFull full;
	ConnectResult result;

	result = try_connect(user, session, meta, bound, active, &full);
	if (result == CONNECT_FULL)
	{
		registry_wait_for_tick();
		result = try_connect(user, session, meta, bound, active, &full);
	}
	if (result == CONNECT_USER_FULL)
		registry_report_user_full(user);
	if (result == CONNECT_FULL)
		registry_report_full(full);
	return result == CONNECT_OPENED;
}

/*
 * Keeps a live session alive.  Returns false, changing nothing, when the
 * registry does not know the session: the caller then opens it.
 */
bool
registry_heartbeat(PresenceId user, PresenceId session, bool active)
{
	RegistryLookup l;
	PresenceSession *s;
	TimestampTz now;
	bool		wake;

	lookup_id(&l, user, &session);
	LWLockAcquire(l.lock, LW_EXCLUSIVE);
	s = registry_find_session(&l);
	if (s == NULL || s->ended)
	{
		LWLockRelease(l.lock);
		return false;
	}
	now = GetCurrentTimestamp();
	wake = session_alive(l.part, s, now, active);
	registry_release(l.lock, wake);
	return true;
}

/* Ends a live session; false if there was none. */
bool
registry_disconnect(PresenceId user, PresenceId session)
{
	RegistryLookup l;
	PresenceSession *s;
	bool		wake;

	lookup_id(&l, user, &session);
	LWLockAcquire(l.lock, LW_EXCLUSIVE);
	s = registry_find_session(&l);
	if (s == NULL || s->ended)
	{
		LWLockRelease(l.lock);
		return false;
	}
	wake = registry_end_session(l.part, s, GetCurrentTimestamp());
	registry_release(l.lock, wake);
	return true;
}

/*
 * Ends the session if this backend still owns it: what a bound session's
 * connection does when it closes.
 */
void
registry_end_owned_session(PresenceId user, PresenceId session)
{
	RegistryLookup l;
	PresenceSession *s;
	bool		wake = false;

	lookup_id(&l, user, &session);
	LWLockAcquire(l.lock, LW_EXCLUSIVE);
	s = registry_find_session(&l);
	if (s != NULL && !s->ended && s->owner_pid == MyProcPid)
		wake = registry_end_session(l.part, s, GetCurrentTimestamp());
	registry_release(l.lock, wake);
}

/*
 * Sets whether others may see the user.  An invisible user keeps an entry
 * even when offline, so that no later connect forgets the choice.
 */
void
registry_set_visible(PresenceId user, bool visible)
{
	RegistryLookup l;
	PresenceUser *u;
	RegistryFull full;
	bool		wake = false;

	lookup_id(&l, user, NULL);
	LWLockAcquire(l.lock, LW_EXCLUSIVE);
	u = registry_find_user(&l);
	if (u == NULL && !visible)
	{
		u = registry_create_user(&l, &full);
		if (u == NULL)
		{
			LWLockRelease(l.lock);
			registry_report_full(full);
		}
		u->visible = false;
		u->visible_changed = true;
		registry_mark_user_changed(l.part, u, GetCurrentTimestamp());
	}
	else if (u != NULL && u->visible != visible)
	{
		u->visible = visible;
		u->visible_changed = true;
		if (visible)
			status_shown(u);
		registry_mark_user_changed(l.part, u, GetCurrentTimestamp());
		members_recount_user(u);
		wake = status_as_seen(u) != u->notified;
	}
	registry_release(l.lock, wake);
}

static void
fill_view(const PresenceUser *u, PresenceUserView *view, TimestampTz now)
{
	view->status = status_as_seen(u);
	view->last_active = u->visible ? status_last_active(u) : 0;
	view->sessions = u->visible ? u->nsessions : 0;
	view->status_message = message_as_seen(u, now);
}

/*
 * What others see of one user.  False when the registry has no entry: the
 * user is offline and visible, and only the table knows its last activity.
 * *hidden says whether the user is invisible.
 */
bool
registry_lookup_user(PresenceId user, PresenceUserView *view, bool *hidden)
{
	RegistryLookup l;
	PresenceUser *u;

	lookup_id(&l, user, NULL);
	LWLockAcquire(l.lock, LW_SHARED);
	u = registry_find_user(&l);
	if (u != NULL)
	{
		fill_view(u, view, 0);
		view->status_message = NULL;	/* not valid once the lock is gone */
		*hidden = !u->visible;
	}
	LWLockRelease(l.lock);
	return u != NULL;
}

/* Calls cb for every user others see as online or away. */
void
registry_foreach_visible_user(PresenceUserCallback cb, void *arg)
{
	TimestampTz now = GetCurrentTimestamp();

	for (int i = 0; i < PRESENCE_PARTITIONS; i++)
	{
		PresencePartition *part = &presence_shared->partitions[i];
		dlist_iter	iter;

		LWLockAcquire(registry_partition_lock(i), LW_SHARED);
		dlist_foreach(iter, &part->users)
		{
			PresenceUser *u = dlist_container(PresenceUser, member_node, iter.cur);
			PresenceUserView view;

			if (status_as_seen(u) == PRESENCE_OFFLINE)
				continue;
			fill_view(u, &view, now);
			cb(u->key.user, &view, arg);
		}
		LWLockRelease(registry_partition_lock(i));
	}
}

static void
user_sessions(PresenceUser *u, PresenceSessionCallback cb, void *arg)
{
	dlist_iter	iter;

	if (!u->visible)
		return;
	dlist_foreach(iter, &u->sessions)
	{
		PresenceSession *s = dlist_container(PresenceSession, user_node, iter.cur);

		cb(u->key.user, s->key.session, s->connected_at, s->last_heartbeat,
		   registry_string(s->meta_dp), arg);
	}
}

/* Calls cb for every live session of a visible user (of one, or all). */
void
registry_foreach_visible_session(PresenceId *user, PresenceSessionCallback cb,
								 void *arg)
{
	if (user != NULL)
	{
		RegistryLookup l;
		PresenceUser *u;

		lookup_id(&l, *user, NULL);
		LWLockAcquire(l.lock, LW_SHARED);
		u = registry_find_user(&l);
		if (u != NULL)
			user_sessions(u, cb, arg);
		LWLockRelease(l.lock);
		return;
	}

	for (int i = 0; i < PRESENCE_PARTITIONS; i++)
	{
		dlist_iter	iter;

		LWLockAcquire(registry_partition_lock(i), LW_SHARED);
		dlist_foreach(iter, &presence_shared->partitions[i].users)
			user_sessions(dlist_container(PresenceUser, member_node, iter.cur),
						  cb, arg);
		LWLockRelease(registry_partition_lock(i));
	}
}
