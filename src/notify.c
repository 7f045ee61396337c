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
 *
 * Ids escaped as JSON take at most 6 x 256 bytes each and meta at most 1 kB
 * (the limit is on its JSON text, which is what goes out), so the largest
 * payload, a join, is under 4.2 kB: always under NOTIFY's 8000 bytes.
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
 * then in the order of one entry's events (a status before the joins it
 * brings, a join before updates).
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

/* Appends the JSON payload of one change to buf. */
void
notify_payload(StringInfo buf, const PresenceChange *change)
{
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
	if (change->last_active != 0)
	{
		char		ts[MAXDATELEN + 1];

		JsonEncodeDateTime(ts, TimestampTzGetDatum(change->last_active),
						   TIMESTAMPTZOID, NULL);
		appendStringInfo(buf, "\"%s\"", ts);
	}
	else
		appendStringInfoString(buf, "null");
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
