/*-------------------------------------------------------------------------
 *
 * notify.c
 *	  The worker's notifications: one compact JSON object per change, in the
 *	  order the changes happened, numbered by seq.
 *
 * A user's status change:
 *	{"seq":1,"user_id":"42","status":"away","previous":"online","last_active":"..."}
 * and a channel event (version 1.1), "meta" being the session's meta object
 * or null:
 *	{"seq":2,"channel":"room:42","event":"join","user_id":"42","status":"online","meta":{...}}
 *	{"seq":3,"channel":"room:42","event":"update","user_id":"42","meta":{...}}
 *	{"seq":4,"channel":"room:42","event":"leave","user_id":"42"}
 * and a user's status message (version 1.1), null when cleared; expires_at
 * null when it does not expire:
 *	{"seq":5,"event":"status_message","user_id":"42","status_message":"In a meeting","expires_at":"..."}
 *
 * Ids escaped as JSON take at most 6 x 256 bytes each, meta at most 1 kB
 * (the limit is on its JSON text, which is what goes out) and a status
 * message at most 6 x 140 bytes, so the largest payload, a join, is under
 * 4.2 kB: always under NOTIFY's 8000 bytes.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/async.h"
#include "lib/stringinfo.h"
#include "utils/datetime.h"
#include "utils/json.h"

#include "persist.h"

/*
 * In the order the changes took effect; ties in the order they were made,
 * then in the order of one entry's events (a status before the message and
 * the joins it brings, a join before updates).
 */
static int
compare_order(const void *a, const void *b)
{
	const PresenceChange *ca = a;
	const PresenceChange *cb = b;

	if (ca->changed_at != cb->changed_at)
		return (ca->changed_at > cb->changed_at) - (ca->changed_at < cb->changed_at);
	if (ca->order != cb->order)
		return (ca->order > cb->order) - (ca->order < cb->order);
	return (ca->sub > cb->sub) - (ca->sub < cb->sub);
}

static const char *const kind_names[] = {
	[CHANGE_JOIN] = "join",
	[CHANGE_UPDATE] = "update",
	[CHANGE_LEAVE] = "leave",
};

/* Appends the JSON payload of a channel event to buf. */
static void
channel_payload(StringInfo buf, const PresenceChange *change)
{
	appendStringInfo(buf, "{\"seq\":" INT64_FORMAT ",\"channel\":", change->seq);
	escape_json(buf, change->channel);
	appendStringInfo(buf, ",\"event\":\"%s\",\"user_id\":",
					 kind_names[change->kind]);
	escape_json(buf, change->user_id);
	if (change->kind == CHANGE_JOIN)
		appendStringInfo(buf, ",\"status\":\"%s\"",
						 presence_status_name(change->status));
	if (change->kind != CHANGE_LEAVE)
	{
		appendStringInfoString(buf, ",\"meta\":");
		appendStringInfoString(buf, change->meta ? change->meta : "null");
	}
	appendStringInfoChar(buf, '}');
}

/* Appends a timestamp as JSON, or null for 0. */
static void
append_time(StringInfo buf, TimestampTz t)
{
	char		ts[MAXDATELEN + 1];

	if (t == 0)
	{
		appendStringInfoString(buf, "null");
		return;
	}
	JsonEncodeDateTime(ts, TimestampTzGetDatum(t), TIMESTAMPTZOID, NULL);
	appendStringInfo(buf, "\"%s\"", ts);
}

/* Appends the JSON payload of a user's status message to buf. */
static void
message_payload(StringInfo buf, const PresenceChange *change)
{
	appendStringInfo(buf, "{\"seq\":" INT64_FORMAT ",\"event\":\"status_message\",\"user_id\":",
					 change->seq);
	escape_json(buf, change->user_id);
	appendStringInfoString(buf, ",\"status_message\":");
	if (change->message)
		escape_json(buf, change->message);
	else
		appendStringInfoString(buf, "null");
	appendStringInfoString(buf, ",\"expires_at\":");
	append_time(buf, change->expires_at);
	appendStringInfoChar(buf, '}');
}

/* Appends the JSON payload of one change to buf. */
void
notify_payload(StringInfo buf, const PresenceChange *change)
{
	if (change->kind == CHANGE_MESSAGE)
	{
		message_payload(buf, change);
		return;
	}
	if (change->kind != CHANGE_STATUS)
	{
		channel_payload(buf, change);
		return;
	}
	appendStringInfo(buf, "{\"seq\":" INT64_FORMAT ",\"user_id\":", change->seq);
	escape_json(buf, change->user_id);
	appendStringInfo(buf, ",\"status\":\"%s\",\"previous\":\"%s\",\"last_active\":",
					 presence_status_name(change->status),
					 presence_status_name(change->previous));
	append_time(buf, change->last_active);
	appendStringInfoChar(buf, '}');
}

/*
 * Numbers the changes after *last_seq in the order they happened and queues
 * one NOTIFY each; they go out when the worker's transaction commits.
 */
void
notify_changes(PresenceChange *changes, int n, int64 *last_seq)
{
	StringInfoData buf;

	qsort(changes, n, sizeof(PresenceChange), compare_order);
	*last_seq = persist_reserve_seq(*last_seq, n);
	initStringInfo(&buf);
	for (int i = 0; i < n; i++)
	{
		changes[i].seq = ++(*last_seq);
		resetStringInfo(&buf);
		notify_payload(&buf, &changes[i]);
		Async_Notify(presence_channel, buf.data);
	}
	pfree(buf.data);
}
