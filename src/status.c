/*-------------------------------------------------------------------------
 *
 * status.c
 *	  The status rules of DESIGN.md section 2: when a user is online, away or
 *	  offline, and when that changes.
 *
 * Backends apply the rules for events (a session starts, activity, the last
 * session ends); the worker applies the rules for time (idle timeout,
 * reconnect grace) in status_sweep.  All of them run under the lock of the
 * user's partition and only move entries between the partition's lists; the
 * worker later compares what others see with what it last announced, so a
 * change and its undoing within one tick announce nothing.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "registry.h"

static const char *const status_names[] = {
	[PRESENCE_OFFLINE] = "offline",
	[PRESENCE_AWAY] = "away",
	[PRESENCE_ONLINE] = "online",
};

const char *
presence_status_name(PresenceStatus status)
{
	Assert(status >= PRESENCE_OFFLINE && status <= PRESENCE_ONLINE);
	return status_names[status];
}

/* Parses a status as the tables store it; false for anything else. */
bool
presence_status_parse(const char *name, PresenceStatus *status)
{
	for (int i = PRESENCE_OFFLINE; i <= PRESENCE_ONLINE; i++)
	{
		if (strcmp(name, status_names[i]) == 0)
		{
			*status = (PresenceStatus) i;
			return true;
		}
	}
	return false;
}

/*
 * Invisible users look offline to everyone, everywhere; so do users
 * inactive for presence.offline_after.
 */
PresenceStatus
status_as_seen(const PresenceUser *user)
{
	return user->visible && user->status != PRESENCE_INACTIVE ?
		user->status : PRESENCE_OFFLINE;
}

/* How long after its last activity an online user's timer is due. */
static int64
online_usec(void)
{
	int64		usec = (int64) presence_idle_timeout_ms * 1000;

	if (presence_offline_after_ms > 0)
		usec = Min(usec, (int64) presence_offline_after_ms * 1000);
	return usec;
}

/*
 * Files the idle timer of a user with live sessions at the next deadline
 * its status has, counted from last_active: an online user's away (or its
 * offline_after, if that comes first), an away user's offline_after.  An
 * inactive user has no deadline left.
 */
void
status_file_timer(PresencePartition *part, PresenceUser *user,
				  TimestampTz last_active)
{
	if (user->status == PRESENCE_ONLINE)
		wheel_file(&part->idle, &user->idle_timer, last_active + online_usec());
	else if (user->status == PRESENCE_AWAY && presence_offline_after_ms > 0)
		wheel_file(&part->idle, &user->idle_timer,
				   last_active + (int64) presence_offline_after_ms * 1000);
	else
		wheel_cancel(&user->idle_timer);
}

/*
 * Records a status change for the worker; 'when' is the moment it took
 * effect (a deadline, for the sweep's changes), which orders notifications.
 * Returns whether others would now
 * see something other than what was last announced, so the caller wakes the
 * worker only when there is news.
 */
static bool
status_set(PresencePartition *part, PresenceUser *user, PresenceStatus status,
		   TimestampTz when)
{
	bool		was_offline = status_as_seen(user) == PRESENCE_OFFLINE;

	status_unsteady(user);
	user->status = status;
	registry_mark_user_changed(part, user, when);
	/* Shown in its channels or not: their occupancy follows. */
	if (was_offline != (status_as_seen(user) == PRESENCE_OFFLINE))
		members_recount_user(user);
	return status_as_seen(user) != user->notified;
}

/*
 * A session of the user started: a connect, or a heartbeat on a session the
 * registry did not know.  A session that starts during the reconnect grace
 * cancels it, which is what makes a page reload invisible.  A session that
 * starts without activity does not bring back a user inactive for
 * presence.offline_after.
 */
bool
status_session_started(PresencePartition *part, PresenceUser *user,
					   TimestampTz now, bool active)
{
	if (user->in_grace)
	{
		dlist_delete(&user->grace_node);
		user->in_grace = false;
		/* Its timer stopped with its last session: the status goes on. */
		if (!active)
			status_file_timer(part, user, status_last_active(user));
	}
	if (active || user->status == PRESENCE_OFFLINE)
		return status_activity(part, user, now);
	return false;
}

/*
 * The user's last activity.  A steady session's activity is written in the
 * session only, so that a heartbeat touches one entry: the user's own
 * last_active may be older than its sessions'.
 */
TimestampTz
status_last_active(const PresenceUser *user)
{
	TimestampTz latest = user->last_active;
	dlist_iter	iter;

	dlist_foreach(iter, unconstify(dlist_head *, &user->sessions))
	{
		PresenceSession *s = dlist_container(PresenceSession, user_node, iter.cur);

		latest = Max(latest, s->last_active);
	}
	return latest;
}

/* Brings the user's last_active up to date; needs the lock exclusively. */
TimestampTz
status_sync_last_active(PresenceUser *user)
{
	user->last_active = status_last_active(user);
	return user->last_active;
}

/*
 * One of the conditions that let a session be steady is gone: its user's
 * next activity goes through status_activity again.
 */
void
status_unsteady(PresenceUser *user)
{
	dlist_iter	iter;

	dlist_foreach(iter, &user->sessions)
		dlist_container(PresenceSession, user_node, iter.cur)->steady = false;
}

/*
 * Activity on a live session.  Once status_activity has made its user
 * online, filed its idle timer and put it on the active list, the session
 * is steady until one of those changes (status_unsteady), and activity then
 * only moves the session's timestamp.
 */
bool
status_session_activity(PresencePartition *part, PresenceSession *session,
						TimestampTz now)
{
	bool		wake;

	session->last_active = now;
	if (session->steady)
		return false;
	wake = status_activity(part, session->user, now);
	session->steady = true;
	return wake;
}

/*
 * Activity from one of the user's live sessions: the user is online.  The
 * idle timer is filed when the user comes online and looked at when due,
 * so activity itself only moves a timestamp.
 */
bool
status_activity(PresencePartition *part, PresenceUser *user, TimestampTz now)
{
	bool		wake = false;

	Assert(user->nsessions > 0);
	user->last_active = now;
	if (!user->in_active)
	{
		dlist_push_tail(&part->active, &user->active_node);
		user->in_active = true;
		part->nactive++;
	}
	if (user->status != PRESENCE_ONLINE)
	{
		/* An away user's timer waits for offline_after: sooner now. */
		wake = status_set(part, user, PRESENCE_ONLINE, now);
		status_file_timer(part, user, now);
	}
	else if (!wheel_filed(&user->idle_timer))
		status_file_timer(part, user, now);
	return wake;
}

/*
 * The user's last live session ended, however it ended.  The status stays as
 * it was until the reconnect grace runs out (status_sweep), so a new session
 * within the grace changes nothing anyone can see.  Returns whether the
 * worker should look now rather than at its next sweep.
 */
bool
status_last_session_ended(PresencePartition *part, PresenceUser *user,
						  TimestampTz now)
{
	Assert(user->nsessions == 0 && !user->in_grace);
	wheel_cancel(&user->idle_timer);
	/* Shown offline already: no grace, and nothing to announce. */
	if (user->status == PRESENCE_INACTIVE)
		user->status = PRESENCE_OFFLINE;
	if (user->status == PRESENCE_OFFLINE)
		return false;
	user->grace_since = now;
	user->in_grace = true;
	dlist_push_tail(&part->grace, &user->grace_node);
	return presence_reconnect_grace_ms == 0;
}

/*
 * The user becomes visible again.  While invisible they were offline to
 * others, so a reconnect grace running since their last session ended has
 * nothing to keep: they are offline now, and others, who saw them offline
 * all along, hear nothing.
 */
void
status_shown(PresenceUser *user)
{
	if (user->in_grace)
	{
		dlist_delete(&user->grace_node);
		user->in_grace = false;
		user->status = PRESENCE_OFFLINE;
	}
}

/*
 * A user's idle timer came due: an online user is away, an away one (or an
 * online one, if presence.offline_after is the shorter) inactive, unless
 * active since; the timer is filed again for what comes next.
 */
static void
idle_due(WheelTimer *timer, TimestampTz now, void *arg)
{
	PresencePartition *part = arg;
	PresenceUser *user = wheel_container(PresenceUser, idle_timer, timer);
	TimestampTz last = status_sync_last_active(user);
	TimestampTz away_at = last + (int64) presence_idle_timeout_ms * 1000;
	TimestampTz inactive_at = last + (int64) presence_offline_after_ms * 1000;

	if (presence_offline_after_ms > 0 && inactive_at <= now &&
		(user->status == PRESENCE_ONLINE || user->status == PRESENCE_AWAY))
		status_set(part, user, PRESENCE_INACTIVE, inactive_at);
	else if (user->status == PRESENCE_ONLINE && away_at <= now)
	{
		status_set(part, user, PRESENCE_AWAY, away_at);
		status_file_timer(part, user, last);
	}
	else
		status_file_timer(part, user, last);
}

/*
 * After a reload changed the timeouts: the user's timer at the deadline
 * they give now, and an inactive user whom presence.offline_after no
 * longer covers away again.
 */
void
status_timeouts_changed(PresencePartition *part, PresenceUser *user,
						TimestampTz now)
{
	TimestampTz last;

	if (user->nsessions == 0)
		return;
	last = status_sync_last_active(user);
	if (user->status == PRESENCE_INACTIVE &&
		(presence_offline_after_ms == 0 ||
		 last + (int64) presence_offline_after_ms * 1000 > now))
		status_set(part, user, PRESENCE_AWAY, now);
	status_file_timer(part, user, last);
}

/*
 * The rules that depend on time.  Deadlines are worked out when looked at,
 * from the timeouts set now; the grace list is ordered by the time the grace
 * is counted from, so its loop stops at the first user still in it.
 */
void
status_sweep(PresencePartition *part, TimestampTz now)
{
	TimestampTz grace_cutoff = now - (int64) presence_reconnect_grace_ms * 1000;

	wheel_expire(&part->idle, now, idle_due, part);

	while (!dlist_is_empty(&part->grace))
	{
		PresenceUser *user = dlist_head_element(PresenceUser, grace_node,
												&part->grace);

		if (user->grace_since > grace_cutoff)
			break;
		dlist_delete(&user->grace_node);
		user->in_grace = false;
		status_set(part, user, PRESENCE_OFFLINE,
				   user->grace_since + (int64) presence_reconnect_grace_ms * 1000);
	}
}
