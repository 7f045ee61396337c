/*-------------------------------------------------------------------------
 *
 * events.c
 *	  What the server log hears of the things presence refuses or recovers
 *	  from: a failed tick or fold, a resync, a load that did not fit, and
 *	  sessions refused for want of room.
 *
 * Each kind of event is counted in shared memory, with the SQLSTATE and
 * message of its latest occurrence.  The worker and the flusher write the
 * lines (event_report, outside any transaction), at most one a minute of
 * each kind, saying how many times it happened since the last one: a
 * registry refusing thousands of connects a second costs the log one line a
 * minute.  Backends only count their refusals, with one atomic increment on
 * the error path; the heartbeat never comes here.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "mb/pg_wchar.h"
#include "utils/elog.h"
#include "utils/timestamp.h"

#include "registry.h"

/* At most one line of each kind in this time. */
#define EVENT_INTERVAL_MS	(60 * 1000)

typedef struct EventKind
{
	const char *what;			/* what happened, for the line */
	const char *message;		/* for events that backends count */
	const char *hint;
} EventKind;

static const EventKind kinds[PRESENCE_EVENTS] = {
	[EVENT_TICK_FAILED] = {
		"presence worker: a tick failed", NULL,
		"The worker carries on; its next tick writes the tables again from the registry."
	},
	[EVENT_FOLD_FAILED] = {
		"presence flusher: a fold failed", NULL,
		"The journal keeps the changes; the next fold takes them in."
	},
	[EVENT_RESYNC] = {
		"presence worker: wrote the tables again from the registry, after a failed tick", NULL,
		NULL
	},
	[EVENT_LOAD_INCOMPLETE] = {
		"presence worker: loaded only part of the tables into the registry", NULL,
		"Raise presence.max_sessions or presence.max_memberships and restart the server."
	},
	[EVENT_REGISTRY_FULL] = {
		"presence: refused calls",
		"presence registry is full (presence.max_sessions)",
		"Raise presence.max_sessions and restart the server, or lower presence.session_timeout so that dead sessions leave sooner."
	},
	[EVENT_OUT_OF_MEMORY] = {
		"presence: refused calls",
		"presence registry is out of memory for ids and meta",
		"Store less in meta, or raise presence.max_sessions and restart the server."
	},
	[EVENT_USER_LIMIT] = {
		"presence: refused calls",
		"a user had presence.max_sessions_per_user live sessions",
		"Raise presence.max_sessions_per_user if users need more sessions."
	},
	[EVENT_MEMBERSHIPS_FULL] = {
		"presence: refused calls",
		"presence registry has no room for more channel memberships (presence.max_memberships)",
		"Raise presence.max_memberships and restart the server."
	},
	[EVENT_CHANNEL_LIMIT] = {
		"presence: refused calls",
		"a session was in presence.max_channels_per_session channels",
		"Raise presence.max_channels_per_session if sessions need more channels."
	},
	[EVENT_MIRROR_FAILED] = {
		"presence flusher: a mirror was not written", NULL,
		"The users it missed are written at the next fold that works. Fix the table, or call presence.mirror() again or presence.unmirror()."
	},
	[EVENT_MIRROR_SKIPPED] = {
		"presence flusher: a mirror skipped rows that its table refused", NULL,
		"Those users are written again when their status changes."
	},
	[EVENT_MIRROR_REMOVED] = {
		"presence flusher: removed the mirror of a table that no longer exists", NULL,
		NULL
	},
};

/* Empties the counts, in new shared memory. */
void
event_init(void)
{
	for (int i = 0; i < PRESENCE_EVENTS; i++)
	{
		PresenceEventLog *log = &presence_shared->events[i];

		pg_atomic_init_u64(&log->count, 0);
		log->last_line = 0;
		log->sqlerrcode = i == EVENT_CHANNEL_LIMIT ? ERRCODE_PROGRAM_LIMIT_EXCEEDED :
			ERRCODE_CONFIGURATION_LIMIT_EXCEEDED;
		strlcpy(log->message, kinds[i].message ? kinds[i].message : "",
				sizeof(log->message));
	}
}

/* A backend refused something: counted, for the worker to report. */
void
event_count(PresenceEvent event)
{
	pg_atomic_fetch_add_u64(&presence_shared->events[event].count, 1);
}

/*
 * The worker or the flusher met an event: counted, with its SQLSTATE and
 * message (cut to a whole character) for the next line.
 */
void
event_record(PresenceEvent event, int sqlerrcode, const char *message)
{
	PresenceEventLog *log = &presence_shared->events[event];
	int			len = pg_mbcliplen(message, strlen(message),
								   sizeof(log->message) - 1);

	SpinLockAcquire(&presence_shared->mutex);
	log->sqlerrcode = sqlerrcode;
	memcpy(log->message, message, len);
	log->message[len] = '\0';
	SpinLockRelease(&presence_shared->mutex);
	pg_atomic_fetch_add_u64(&log->count, 1);
}

/*
 * Writes a line for each kind of event that happened and whose last line is
 * a minute old (or that never had one), with the number of times since.
 */
void
event_report(void)
{
	TimestampTz now = GetCurrentTimestamp();

	for (int i = 0; i < PRESENCE_EVENTS; i++)
	{
		PresenceEventLog *log = &presence_shared->events[i];
		int			sqlerrcode;
		char		message[EVENT_MESSAGE_BYTES];
		uint64		n;
		char		times[32];

		if (pg_atomic_read_u64(&log->count) == 0)
			continue;
		SpinLockAcquire(&presence_shared->mutex);
		if (log->last_line != 0 &&
			!TimestampDifferenceExceeds(log->last_line, now, EVENT_INTERVAL_MS))
		{
			SpinLockRelease(&presence_shared->mutex);
			continue;
		}
		log->last_line = now;
		sqlerrcode = log->sqlerrcode;
		memcpy(message, log->message, sizeof(message));
		SpinLockRelease(&presence_shared->mutex);

		n = pg_atomic_exchange_u64(&log->count, 0);
		if (n == 0)
			continue;
		if (n == 1)
			strlcpy(times, "once", sizeof(times));
		else
			snprintf(times, sizeof(times), UINT64_FORMAT " times", n);
		ereport(LOG,
				(errcode(sqlerrcode),
				 errmsg("%s, %s since the last report: SQLSTATE %s: %s",
						kinds[i].what, times, unpack_sql_state(sqlerrcode),
						message),
				 kinds[i].hint ? errhint("%s", kinds[i].hint) : 0));
	}
}
