/*-------------------------------------------------------------------------
 *
 * message.c
 *	  Users' status messages (version 1.1): "In a meeting", until 3 pm.
 *
 * A message belongs to its user's entry, under the user's partition lock,
 * and lives in the string area with its expiry timer, on the partition's
 * expiry wheel: the worker's sweep clears it when it is due, looking only
 * at messages whose time has come.  A user with a message keeps their
 * entry even while offline, as an invisible user does, so that a connect
 * never has to read a table to find it.
 *
 * Others see a message only while they see its user (online or away): an
 * offline, invisible or inactive user's message is kept, not shown.  What
 * listeners are told follows the same rule as channels: a user's offline
 * says their message is gone too; shown again, their status goes out, then
 * their message; a change of message while shown is announced on its own.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "registry.h"

/* Frees the user's message, if any, and stops its timer. */
void
message_free(PresenceUser *user)
{
	PresenceMessage *msg = user->message;

	if (msg == NULL)
		return;
	wheel_cancel(&msg->timer);
	user->message = NULL;
	registry_free_string(msg->dp);
}

/*
 * A new message for the user, with its timer filed, or NULL when the
 * string area has no room for it.
 */
static PresenceMessage *
message_create(PresencePartition *part, PresenceUser *user, const char *text,
			   int len, TimestampTz expires_at)
{
	PresenceMessage *msg;
	dsa_pointer dp = registry_allocate(offsetof(PresenceMessage, text) + len + 1,
									   (void **) &msg);

	if (!DsaPointerIsValid(dp))
		return NULL;
	memset(msg, 0, offsetof(PresenceMessage, text));
	msg->user = user;
	msg->dp = dp;
	msg->expires_at = expires_at;
	memcpy(msg->text, text, len);
	msg->text[len] = '\0';
	if (expires_at != 0)
		wheel_file(&part->expiries, &msg->timer, expires_at);
	return msg;
}

/* Whether the user's message is already this text, with this expiry. */
static bool
message_same(const PresenceMessage *msg, const char *text, int len,
			 TimestampTz expires_at)
{
	if (msg == NULL || text == NULL)
		return msg == NULL && text == NULL;
	return msg->expires_at == expires_at && strlen(msg->text) == (size_t) len &&
		memcmp(msg->text, text, len) == 0;
}

/*
 * Sets the user's message (text NULL: clears it), expiring at expires_at
 * (0: never).  A user not in the registry gets an entry to keep it.
 * Setting what the user has already changes nothing and announces nothing.
 */
void
registry_set_message(PresenceId user, const char *text, int len,
					 TimestampTz expires_at)
{
	RegistryLookup l;
	PresenceUser *u;
	PresenceMessage *msg = NULL;
	RegistryFull full;
	bool		created = false;
	bool		wake;

	registry_lookup_init(&l, user.data, user.len, NULL, 0);
	LWLockAcquire(l.lock, LW_EXCLUSIVE);
	u = registry_find_user(&l);
	if (u == NULL && text == NULL)
	{
		LWLockRelease(l.lock);
		return;
	}
	if (u == NULL)
	{
		if ((u = registry_create_user(&l, &full)) == NULL)
		{
			LWLockRelease(l.lock);
			registry_report_full(full);
		}
		created = true;
	}
	if (message_same(u->message, text, len, expires_at))
	{
		LWLockRelease(l.lock);
		return;
	}
	if (text != NULL &&
		(msg = message_create(l.part, u, text, len, expires_at)) == NULL)
	{
		if (created)
			registry_remove_user(l.part, u);
		LWLockRelease(l.lock);
		registry_report_full(REGISTRY_FULL_MEMORY);
	}
	message_free(u);
	u->message = msg;
	u->message_pending = true;
	registry_mark_user_changed(l.part, u, GetCurrentTimestamp());
	/* Others see it change only if they see the user. */
	wake = status_as_seen(u) != PRESENCE_OFFLINE;
	registry_release(l.lock, wake);
}

/*
 * The user's message as others see it at 'now': NULL when there is none,
 * when it has expired (the sweep may not have cleared it yet), or when
 * others do not see the user.  Valid under the partition's lock only.
 */
const char *
message_as_seen(const PresenceUser *user, TimestampTz now)
{
	const PresenceMessage *msg = user->message;

	if (msg == NULL || status_as_seen(user) == PRESENCE_OFFLINE ||
		(msg->expires_at != 0 && msg->expires_at <= now))
		return NULL;
	return msg->text;
}

/* status_message(user): a copy of what others see, or NULL. */
char *
registry_message(PresenceId user)
{
	RegistryLookup l;
	PresenceUser *u;
	const char *text = NULL;
	char	   *copy = NULL;

	registry_lookup_init(&l, user.data, user.len, NULL, 0);
	LWLockAcquire(l.lock, LW_SHARED);
	u = registry_find_user(&l);
	if (u != NULL)
		text = message_as_seen(u, GetCurrentTimestamp());
	if (text != NULL)
		copy = pstrdup(text);
	LWLockRelease(l.lock);
	return copy;
}

/* A message's expiry came due: it is cleared, as of that time. */
static void
message_due(WheelTimer *timer, TimestampTz now, void *arg)
{
	PresencePartition *part = arg;
	PresenceMessage *msg = wheel_container(PresenceMessage, timer, timer);
	PresenceUser *user = msg->user;
	TimestampTz expired = msg->expires_at;

	if (expired > now)
	{
		wheel_file(&part->expiries, timer, expired);
		return;
	}
	message_free(user);
	user->message_pending = true;
	registry_mark_user_changed(part, user, expired);
}

/* The worker's sweep of messages that have expired. */
void
message_sweep(PresencePartition *part, TimestampTz now)
{
	wheel_expire(&part->expiries, now, message_due, part);
}

/*
 * After the worker took the user's status change, if any: the message
 * event listeners need, if any.  A user others do not see has none to
 * announce (their offline said the message went with them); shown, their
 * message goes out if it changed or if listeners have not had it since
 * the user was last shown, and its clearing if they had one.
 */
void
message_take(PresenceBatch *batch, PresenceUser *u)
{
	bool		shown = u->notified != PRESENCE_OFFLINE;
	PresenceChange *change;

	if (!shown)
		u->message_notified = false;
	else if (u->message != NULL ?
			 u->message_pending || !u->message_notified :
			 u->message_notified)
	{
		BATCH_GROW(batch, changes, nchanges, maxchanges);
		change = &batch->changes[batch->nchanges++];
		memset(change, 0, sizeof(*change));
		change->kind = CHANGE_MESSAGE;
		change->user_id = pstrdup(u->key.user);
		change->message = u->message ? pstrdup(u->message->text) : NULL;
		change->expires_at = u->message ? u->message->expires_at : 0;
		change->changed_at = u->changed_at;
		change->order = u->change_order;
		change->sub = 1;		/* after the status, before the joins */
		u->message_notified = u->message != NULL;
	}
	u->message_pending = false;
}

/*
 * A message read from presence.users for a user just loaded.  Listeners
 * were told of it if the table says others saw the user.  One that expired
 * while the server was down is cleared as of now: announced so, and
 * written again without it.  Returns false when the string area has no
 * room for it.
 */
bool
message_load(PresencePartition *part, PresenceUser *u, const char *text,
			 TimestampTz expires_at, TimestampTz now)
{
	if (text == NULL)
		return true;
	u->message_notified = u->notified != PRESENCE_OFFLINE;
	if (expires_at != 0 && expires_at <= now)
	{
		u->message_pending = true;
		registry_mark_user_changed(part, u, now);
		return true;
	}
	u->message = message_create(part, u, text, strlen(text), expires_at);
	return u->message != NULL;
}
