/*-------------------------------------------------------------------------
 *
 * sync.c
 *	  The worker's side of the registry: sweep it, take out what changed
 *	  since the last tick, load it from the tables, clear it.
 *
 * registry_collect holds each partition's lock only while it copies out
 * what the worker will write; the writing itself (persist.c, notify.c)
 * happens with no registry lock held.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "miscadmin.h"
#include "storage/condition_variable.h"

#include "registry.h"

static void
batch_add_user(PresenceBatch *batch, PresenceUser *u)
{
	PresenceUserRow *row;

	if (u->batch_id == batch->id)
		return;
	u->batch_id = batch->id;
	u->persisted = true;
	u->persisted_active = status_sync_last_active(u);
	if (u->visible_changed)
		batch->urgent = true;
	u->visible_changed = false;
	BATCH_GROW(batch, users, nusers, maxusers);
	row = &batch->users[batch->nusers++];
	row->user_id = pstrdup(u->key.user);
	row->status = status_as_seen(u);
	row->last_active = u->last_active;
	row->visible = u->visible;
	row->message = u->message ? pstrdup(u->message->text) : NULL;
	row->message_expires = u->message ? u->message->expires_at : 0;
}

static void
batch_add_session(PresenceBatch *batch, PresenceSession *s, bool delete)
{
	PresenceSessionRow *row;

	if (delete)
	{
		BATCH_GROW(batch, deletes, ndeletes, maxdeletes);
		row = &batch->deletes[batch->ndeletes++];
	}
	else
	{
		BATCH_GROW(batch, upserts, nupserts, maxupserts);
		row = &batch->upserts[batch->nupserts++];
	}
	row->user_id = pstrdup(s->key.user);
	row->session_id = pstrdup(s->key.session);
	row->connected_at = s->connected_at;
	row->meta = delete || !DsaPointerIsValid(s->meta_dp) ? NULL :
		pstrdup(registry_string(s->meta_dp));
	row->bound = s->bound;
}

/* Notes a change others will see, if there is one, as announced. */
static void
batch_add_change(PresenceBatch *batch, PresenceUser *u)
{
	PresenceStatus seen = status_as_seen(u);
	PresenceChange *change;

	if (seen == u->notified)
		return;
	BATCH_GROW(batch, changes, nchanges, maxchanges);
	change = &batch->changes[batch->nchanges++];
	memset(change, 0, sizeof(*change));
	change->kind = CHANGE_STATUS;
	change->user_id = pstrdup(u->key.user);
	change->status = seen;
	change->previous = u->notified;
	change->last_active = u->visible ? status_sync_last_active(u) : 0;
	change->changed_at = u->changed_at;
	change->order = u->change_order;
	u->notified = seen;
	members_status_announced(batch, u, change->previous);
}

/* A session's timeout timer came due: it ends, unless heartbeated since. */
static void
timeout_due(WheelTimer *timer, TimestampTz now, void *arg)
{
	PresencePartition *part = arg;
	PresenceSession *s = wheel_container(PresenceSession, timeout_timer, timer);
	TimestampTz deadline = s->last_heartbeat +
		(int64) presence_session_timeout_ms * 1000;

	if (deadline > now)
		wheel_file(&part->timeouts, timer, deadline);
	else
		registry_end_session(part, s, now);
}

/*
 * Applies the timeouts of one partition.  Channel graces before users': a
 * disconnect's leaves go out before its offline.
 */
static void
sweep_partition(PresencePartition *part, TimestampTz now)
{
	wheel_expire(&part->timeouts, now, timeout_due, part);
	member_grace_sweep(part, now);
	status_sweep(part, now);
	message_sweep(part, now);
}

/* A user or a member with changes to take, in the order they were made. */
typedef struct Pending
{
	uint64		order;
	PresenceUser *user;
	PresenceMember *member;
} Pending;

static int
compare_pending(const void *a, const void *b)
{
	const Pending *pa = a;
	const Pending *pb = b;

	return (pa->order > pb->order) - (pa->order < pb->order);
}

static void
take_user(PresencePartition *part, PresenceBatch *batch, PresenceUser *u)
{
	dlist_delete(&u->change_node);
	u->in_changes = false;
	batch_add_change(batch, u);
	message_take(batch, u);
	batch_add_user(batch, u);
	if (registry_user_evictable(u))
		registry_remove_user(part, u);
}

/*
 * The last activity of users who stay online, written at most once a
 * minute each: status changes carry it at once, and nothing that matters
 * after a crash needs it more precise (see registry_load_finish).  A tick
 * looks at 'share' of the partition's active list, from its head: a user
 * due is written and leaves the list, one active since it was last written
 * goes to the tail for a later look, one not active since leaves the list
 * (its next activity puts it back).  So the worker's ticks share the walk
 * (worker.c gives each a share in proportion to the time since the last),
 * and no tick writes every active user at once.
 */
static void
take_activity(PresencePartition *part, PresenceBatch *batch, double share,
			  PresenceTickParts *parts)
{
	TimestampTz due = (int64) Max(60 * 1000, presence_flush_interval_ms) * 1000;
	TimestampTz started = GetCurrentTimestamp();
	int			n = share >= 1.0 ? part->nactive :
		Min(part->nactive, (int) ceil(part->nactive * share));

	for (int i = 0; i < n; i++)
	{
		PresenceUser *u = dlist_head_element(PresenceUser, active_node,
											 &part->active);

		dlist_delete(&u->active_node);
		status_sync_last_active(u);
		if (u->last_active - u->persisted_active >= due)
			batch_add_user(batch, u);
		else if (u->last_active > u->persisted_active)
		{
			dlist_push_tail(&part->active, &u->active_node);
			continue;			/* a later look */
		}
		u->in_active = false;
		part->nactive--;
		status_unsteady(u);
	}
	parts->active_examined += n;
	parts->activity_ms += (GetCurrentTimestamp() - started) / 1000.0;
}

/*
 * Takes the rows and changes out of one partition.  User changes made at or
 * after the cutoff stay for the next tick: a change made in a partition
 * already visited would otherwise go out after a later change made in one
 * not yet visited.
 */
static void
drain_partition(PresencePartition *part, PresenceBatch *batch, uint64 cutoff,
				double activity_share, bool full, TimestampTz now,
				PresenceTickParts *parts)
{
	dlist_mutable_iter miter;
	dlist_iter	iter;
	Pending    *pending;
	int			npending = 0;
	int			maxpending = 64;

	/* Sessions first: freeing the last one may let its user go. */
	dlist_foreach_modify(miter, &part->session_changes)
	{
		PresenceSession *s = dlist_container(PresenceSession, change_node, miter.cur);

		dlist_delete(&s->change_node);
		s->in_changes = false;
		if (!full)
		{
			if (s->ended && s->persisted)
				batch_add_session(batch, s, true);
			else if (!s->ended)
				batch_add_session(batch, s, false);
		}
		registry_session_written(part, s);
	}

	/*
	 * Users and members, in the order their changes were made: what a
	 * member's events say depends on its user's announced status.  Members
	 * only once the tables have presence.memberships (the extension may
	 * still be at 1.0, being updated).
	 */
	pending = palloc(sizeof(Pending) * maxpending);
	dlist_foreach(iter, &part->user_changes)
	{
		PresenceUser *u = dlist_container(PresenceUser, change_node, iter.cur);

		if (u->change_order >= cutoff)
			continue;
		if (npending == maxpending)
			pending = repalloc_huge(pending, sizeof(Pending) * (maxpending *= 2));
		pending[npending++] = (Pending) {u->change_order, u, NULL};
	}
	if (batch->with_members)
	{
		dlist_foreach(iter, &part->member_changes)
		{
			PresenceMember *m = dlist_container(PresenceMember, list_node, iter.cur);

			if (m->change_order >= cutoff)
				continue;
			if (npending == maxpending)
				pending = repalloc_huge(pending, sizeof(Pending) * (maxpending *= 2));
			pending[npending++] = (Pending) {m->change_order, NULL, m};
		}
	}
	qsort(pending, npending, sizeof(Pending), compare_pending);
	for (int i = 0; i < npending; i++)
	{
		if (pending[i].user)
			take_user(part, batch, pending[i].user);
		else
			member_take(part, pending[i].member, batch, now);
	}
	pfree(pending);

	if (full)
	{
		dlist_foreach(iter, &part->users)
		{
			PresenceUser *u = dlist_container(PresenceUser, member_node, iter.cur);
			dlist_iter	siter;

			batch_add_user(batch, u);
			dlist_foreach(siter, &u->sessions)
			{
				PresenceSession *s = dlist_container(PresenceSession, user_node,
													 siter.cur);

				batch_add_session(batch, s, false);
				s->persisted = true;
			}
			if (batch->with_members)
				members_add_all(batch, u);
		}
	}
	if (activity_share > 0 && part->nactive > 0)
		take_activity(part, batch, activity_share, parts);
}

/*
 * Takes a partition's lock for the worker, adding to *waited the time it
 * waited for it (a clock is read only when the lock is busy).
 */
static void
lock_partition(int i, double *waited)
{
	LWLock	   *lock = registry_partition_lock(i);
	TimestampTz started;

	if (LWLockConditionalAcquire(lock, LW_EXCLUSIVE))
		return;
	started = GetCurrentTimestamp();
	LWLockAcquire(lock, LW_EXCLUSIVE);
	*waited += (GetCurrentTimestamp() - started) / 1000.0;
}

/*
 * A tick with more changes than this to announce (a mass expiry, say) leaves
 * its share of the activity walk to the next ticks, unless the walk is
 * already behind by this share of its period.
 */
#define ACTIVITY_DEFER_CHANGES	1000
#define ACTIVITY_DEFER_MAX		0.2

/*
 * One worker tick's look at the registry: applies the timeouts, then takes
 * out every row to write and every change to announce, and the last
 * activity due of activity_share of the active users; with full, every user
 * and session (the tables are then rewritten to match).  Returns whether it
 * took its share of the activity walk: the tick that announces many changes
 * at once is the one listeners wait for, and the walk's journal rows would
 * lengthen it (some 10 ms of a 60 ms tick in bench/sweep_life.sh), while
 * they can wait a tick or two: the worker gives the next tick the time since
 * the last walk.
 */
bool
registry_collect(PresenceBatch *batch, TimestampTz now, double activity_share,
				 bool full, PresenceTickParts *parts)
{
	static uint64 last_cutoff = 0;
	uint64		cutoff;
	TimestampTz started = GetCurrentTimestamp();
	TimestampTz swept;
	bool		walked = true;

	for (int i = 0; i < PRESENCE_PARTITIONS; i++)
	{
		lock_partition(i, &parts->lock_wait_ms);
		sweep_partition(&presence_shared->partitions[i], now);
		LWLockRelease(registry_partition_lock(i));
	}
	swept = GetCurrentTimestamp();
	parts->sweep_ms = (swept - started) / 1000.0;

	/* Every change counted before this point is on its partition's list. */
	cutoff = pg_atomic_read_u64(&presence_shared->change_counter);
	if (activity_share > 0 && activity_share < ACTIVITY_DEFER_MAX &&
		cutoff - last_cutoff > ACTIVITY_DEFER_CHANGES)
	{
		activity_share = 0;
		walked = false;
	}
	last_cutoff = cutoff;
	batch->full = full;
	for (int i = 0; i < PRESENCE_PARTITIONS; i++)
	{
		lock_partition(i, &parts->lock_wait_ms);
		drain_partition(&presence_shared->partitions[i], batch, cutoff,
						activity_share, full, now, parts);
		LWLockRelease(registry_partition_lock(i));
	}
	parts->collect_ms = (GetCurrentTimestamp() - swept) / 1000.0;
	return walked;
}

/*
 * Loading from the tables.  Entries already in the registry win, except
 * that a row can make a user invisible: loading also merges rows that a
 * restore put in the tables into a live registry, and a privacy choice must
 * not be lost to the order the rows arrive in.  A user loaded gets their
 * status message (1.1) too.  Returns false when the registry has no room
 * for the row.
 */
bool
registry_load_user(const char *user_id, PresenceStatus status,
				   TimestampTz last_active, bool visible, const char *message,
				   TimestampTz message_expires, TimestampTz now)
{
	RegistryLookup l;
	PresenceUser *u;
	RegistryFull full;

	registry_lookup_init(&l, user_id, strlen(user_id), NULL, 0);
	LWLockAcquire(l.lock, LW_EXCLUSIVE);
	u = registry_find_user(&l);
	if (u == NULL)
	{
		u = registry_create_user(&l, &full);
		if (u == NULL)
		{
			LWLockRelease(l.lock);
			return false;
		}
		u->visible = visible;
		u->notified = visible ? status : PRESENCE_OFFLINE;
		u->last_active = last_active;
		u->persisted = true;
		u->loading = true;
		if (!message_load(l.part, u, message, message_expires, now))
		{
			registry_remove_user(l.part, u);
			LWLockRelease(l.lock);
			return false;
		}
	}
	else if (!visible && u->visible)
	{
		u->visible = false;
		registry_mark_user_changed(l.part, u, GetCurrentTimestamp());
		members_recount_user(u);
	}
	LWLockRelease(l.lock);
	return true;
}

bool
registry_load_session(const char *user_id, const char *session_id,
					  TimestampTz connected_at, const char *meta, bool bound,
					  TimestampTz now)
{
	RegistryLookup l;
	PresenceUser *u;
	PresenceSession *s;
	RegistryFull full;
	bool		new_user;
	bool		wake = false;

	registry_lookup_init(&l, user_id, strlen(user_id),
						 session_id, strlen(session_id));
	LWLockAcquire(l.lock, LW_EXCLUSIVE);
	if (registry_find_session(&l) != NULL)
	{
		LWLockRelease(l.lock);
		return true;
	}
	if (!registry_reserve_session())
	{
		LWLockRelease(l.lock);
		return false;
	}
	s = registry_create_user_session(&l, meta, &full, &new_user);
	if (s == NULL)
	{
		registry_release_session();
		LWLockRelease(l.lock);
		return false;
	}
	u = s->user;
	if (new_user)
	{
		u->last_active = connected_at;
		u->loading = true;
	}

	/* Whoever heartbeated it had no server to talk to: give it a timeout. */
	registry_start_session(l.part, s, now);
	s->connected_at = connected_at;
	s->last_active = u->last_active;
	s->bound = bound;
	s->persisted = true;
	dlist_delete(&s->change_node);
	s->in_changes = false;
	if (!u->loading)
		wake = status_session_started(l.part, u, now, false);
	registry_release(l.lock, wake);
	return true;
}

/*
 * Settles the status of every user loaded since the last call: with
 * sessions back, away if the table said so, inactive if it said offline
 * (presence.offline_after hid them), else online; without, offline after
 * the reconnect grace if it was online or away.  Users whose status
 * as seen differs from what the table said go to the worker, to announce.
 */
void
registry_load_finish(TimestampTz now)
{
	for (int i = 0; i < PRESENCE_PARTITIONS; i++)
	{
		PresencePartition *part = &presence_shared->partitions[i];
		dlist_iter	iter;

		LWLockAcquire(registry_partition_lock(i), LW_EXCLUSIVE);
		dlist_foreach(iter, &part->users)
		{
			PresenceUser *u = dlist_container(PresenceUser, member_node, iter.cur);

			if (!u->loading)
				continue;
			u->loading = false;
			status_unsteady(u);
			if (u->nsessions > 0 && u->visible && u->notified == PRESENCE_AWAY)
			{
				/* Written when they went away: their last activity is exact. */
				u->status = PRESENCE_AWAY;
				status_file_timer(part, u, u->last_active);
			}
			else if (u->nsessions > 0 && u->visible &&
					 u->notified == PRESENCE_OFFLINE &&
					 presence_offline_after_ms > 0)
				u->status = PRESENCE_INACTIVE;	/* for offline_after */
			else if (u->nsessions > 0)
			{
				/*
				 * Online before, online now, with a full idle timeout: the
				 * last activity of an online user is written at most once a
				 * minute, and nobody could be active while the server was
				 * down.
				 */
				u->status = PRESENCE_ONLINE;
				status_file_timer(part, u, now);
			}
			else if (u->notified != PRESENCE_OFFLINE)
			{
				u->status = u->notified;
				u->in_grace = true;
				u->grace_since = now;
				dlist_push_tail(&part->grace, &u->grace_node);
			}
			else
				u->status = PRESENCE_OFFLINE;

			members_loaded(u);
			if (status_as_seen(u) != u->notified || !u->persisted ||
				registry_user_evictable(u))
				registry_mark_user_changed(part, u, now);
		}
		LWLockRelease(registry_partition_lock(i));
	}
}

/*
 * Files every timer again at the deadline the timeouts give now: after a
 * reload changed them, a timer filed under the old ones may be due sooner.
 */
void
registry_refile_timers(void)
{
	TimestampTz now = GetCurrentTimestamp();

	for (int i = 0; i < PRESENCE_PARTITIONS; i++)
	{
		PresencePartition *part = &presence_shared->partitions[i];
		dlist_iter	uiter;

		LWLockAcquire(registry_partition_lock(i), LW_EXCLUSIVE);
		dlist_foreach(uiter, &part->users)
		{
			PresenceUser *u = dlist_container(PresenceUser, member_node, uiter.cur);
			dlist_iter	siter;

			status_timeouts_changed(part, u, now);
			dlist_foreach(siter, &u->sessions)
			{
				PresenceSession *s = dlist_container(PresenceSession, user_node,
													 siter.cur);

				wheel_file(&part->timeouts, &s->timeout_timer,
						   s->last_heartbeat + (int64) presence_session_timeout_ms * 1000);
			}
		}
		LWLockRelease(registry_partition_lock(i));
	}
}

/* Forgets everything: the extension was dropped. */
void
registry_clear(void)
{
	HASH_SEQ_STATUS seq;
	PresenceSession *s;
	PresenceUser *u;

	for (int i = 0; i < PRESENCE_PARTITIONS; i++)
		LWLockAcquire(registry_partition_lock(i), LW_EXCLUSIVE);

	/* Members refer to users and sessions: they go first. */
	channels_clear();
	hash_seq_init(&seq, presence_session_table);
	while ((s = hash_seq_search(&seq)) != NULL)
	{
		PresenceKey key = s->key;
		dsa_pointer session_dp = s->session_dp;
		dsa_pointer meta_dp = s->meta_dp;

		hash_search(presence_session_table, &key, HASH_REMOVE, NULL);
		registry_free_string(session_dp);
		registry_free_string(meta_dp);
	}
	hash_seq_init(&seq, presence_user_table);
	while ((u = hash_seq_search(&seq)) != NULL)
	{
		PresenceUserKey key = u->key;
		dsa_pointer dp = u->user_dp;

		if (u->message)
			registry_free_string(u->message->dp);
		hash_search(presence_user_table, &key, HASH_REMOVE, NULL);
		registry_free_string(dp);
	}
	registry_forget_hints();
	for (int i = 0; i < PRESENCE_PARTITIONS; i++)
		registry_partition_init(&presence_shared->partitions[i]);
	pg_atomic_write_u32(&presence_shared->live_sessions, 0);

	for (int i = PRESENCE_PARTITIONS - 1; i >= 0; i--)
		LWLockRelease(registry_partition_lock(i));
}

/*
 * Empties the registry for a new extension, in the backend creating it;
 * calls wait until the worker has loaded the new tables.
 */
void
registry_reset(void)
{
	if (presence_shared == NULL)
		return;
	registry_attach();
	registry_set_state(REGISTRY_EMPTY);
	registry_clear();
	registry_wake_worker();
}

/* Publishes the registry's state; calls waiting for it to load go on. */
void
registry_set_state(PresenceRegistryState state)
{
	SpinLockAcquire(&presence_shared->mutex);
	presence_shared->state = state;
	SpinLockRelease(&presence_shared->mutex);
	if (state == REGISTRY_READY)
		ConditionVariableBroadcast(&presence_shared->ready_cv);
}
