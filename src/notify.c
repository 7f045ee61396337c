/*-------------------------------------------------------------------------
 *
 * notify.c
 *	  The worker's notifications: one compact JSON object per status change,
 *	  in the order the changes happened, numbered by seq.
 *
 * The payload is at most a few hundred bytes plus the escaped user id (at
 * most 6 x 256 bytes), always under NOTIFY's 8000-byte limit.
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

/* In the order the changes took effect; ties in the order they were made. */
static int
compare_order(const void *a, const void *b)
{
	const PresenceChange *ca = a;
	const PresenceChange *cb = b;

	if (ca->changed_at != cb->changed_at)
		return (ca->changed_at > cb->changed_at) - (ca->changed_at < cb->changed_at);
	return (ca->order > cb->order) - (ca->order < cb->order);
}

/* Appends the JSON payload of one change to buf. */
void
notify_payload(StringInfo buf, const PresenceChange *change)
{
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
