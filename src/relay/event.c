/*
 * event.c - a notification payload, checked member by member, and the
 * frames the relay makes of it afresh.
 *
 * The worker's payloads (docs/sql.md, Notifications) are, and nothing else:
 *   {"seq":N,"user_id":U,"status":S,"previous":S,"last_active":T|null}
 *   {"seq":N,"channel":C,"event":"join","user_id":U,"status":"online"|"away","meta":{...}|null}
 *   {"seq":N,"channel":C,"event":"update","user_id":U,"meta":{...}}
 *   {"seq":N,"channel":C,"event":"leave","user_id":U}
 *   {"seq":N,"event":"status_message","user_id":U,"status_message":M|null,"expires_at":T|null}
 * Each is read with jsonv.c into a struct presence_event; anything else (a
 * member unknown to its kind, missing, twice, of the wrong type, an
 * unknown status or event, an oversized or non-UTF-8 string, a meta that
 * is not an object, trailing bytes) is refused, and frames are then
 * serialized from the struct, a meta from its own re-serialization, never
 * spliced from the payload.
 *
 * Pure code (no connection, no globals): the fuzzer drives it directly,
 * and so do the tests, through event-check.
 */
#include "relay.h"

#include <string.h>

/* The members a payload may have. */
enum
{
	M_SEQ,
	M_USER_ID,
	M_STATUS,
	M_PREVIOUS,
	M_LAST_ACTIVE,
	M_CHANNEL,
	M_EVENT,
	M_META,
	M_STATUS_MESSAGE,
	M_EXPIRES_AT,
	M_COUNT
};
static const char *const names[M_COUNT] = {
	"seq", "user_id", "status", "previous", "last_active", "channel", "event", "meta",
	"status_message", "expires_at"
};

#define BIT(m) (1u << (m))
/* exactly these members, per kind */
static const unsigned shapes[] = {
	[EVENT_PRESENCE] = BIT(M_SEQ) | BIT(M_USER_ID) | BIT(M_STATUS) | BIT(M_PREVIOUS) |
	BIT(M_LAST_ACTIVE),
	[EVENT_JOIN] = BIT(M_SEQ) | BIT(M_CHANNEL) | BIT(M_EVENT) | BIT(M_USER_ID) |
	BIT(M_STATUS) | BIT(M_META),
	[EVENT_UPDATE] = BIT(M_SEQ) | BIT(M_CHANNEL) | BIT(M_EVENT) | BIT(M_USER_ID) | BIT(M_META),
	[EVENT_LEAVE] = BIT(M_SEQ) | BIT(M_CHANNEL) | BIT(M_EVENT) | BIT(M_USER_ID),
	[EVENT_MESSAGE] = BIT(M_SEQ) | BIT(M_EVENT) | BIT(M_USER_ID) | BIT(M_STATUS_MESSAGE) |
	BIT(M_EXPIRES_AT),
};
static const char *const kind_names[] = {
	[EVENT_PRESENCE] = "presence",
	[EVENT_JOIN] = "join",
	[EVENT_UPDATE] = "update",
	[EVENT_LEAVE] = "leave",
	[EVENT_MESSAGE] = "status_message",
};

static const char *const status_names[] = {"online", "away", "offline"};

/* The raw values of a payload's members, before they are checked. */
struct raw
{
	unsigned	seen;
	const char *v[M_COUNT];
	size_t		n[M_COUNT];
};

const char *
event_status_name(enum presence_status s)
{
	return status_names[s];
}

const char *
event_kind_name(enum event_kind k)
{
	return kind_names[k];
}

/* jsonv_members()'s callback: each known member once, nothing else. */
static int
collect(void *arg, const char *key, size_t klen, const char *v, size_t vn)
{
	struct raw *raw = arg;
	int			m;

	for (m = 0; m < M_COUNT; m++)
		if (key && klen == strlen(names[m]) && !memcmp(key, names[m], klen))
			break;
	if (m == M_COUNT || (raw->seen & BIT(m)))
		return -1;
	raw->seen |= BIT(m);
	raw->v[m] = v;
	raw->n[m] = vn;
	return 0;
}

/* "seq": digits only, no sign, no leading zero, no fraction, >= 1, fits. */
static int
take_seq(const char *d, size_t n, int64_t *out)
{
	int64_t		v = 0;
	size_t		i;

	if (!n || d[0] < '1' || d[0] > '9')
		return -1;
	for (i = 0; i < n; i++)
	{
		if (d[i] < '0' || d[i] > '9' || v > (INT64_MAX - (d[i] - '0')) / 10)
			return -1;
		v = v * 10 + (d[i] - '0');
	}
	*out = v;
	return 0;
}

/* A string of 1 to RELAY_MAX_USER_ID bytes of UTF-8 (an id, a channel). */
static int
take_name(const char *v, size_t n, char *out, size_t *len)
{
	if (jsonv_string(v, n, out, RELAY_MAX_USER_ID, len) || !*len)
		return -1;
	out[*len] = '\0';
	return 0;
}

static int
take_status(const char *v, size_t n, enum presence_status *out)
{
	char		s[16];
	size_t		len,
				i;

	if (jsonv_string(v, n, s, sizeof(s), &len))
		return -1;
	for (i = 0; i < LWS_ARRAY_SIZE(status_names); i++)
		if (len == strlen(status_names[i]) && !memcmp(s, status_names[i], len))
		{
			*out = (enum presence_status) i;
			return 0;
		}
	return -1;
}

static int
take_time(const char *v, size_t n, char *out, size_t cap)
{
	size_t		len;

	if (jsonv_is(v, n, "null"))
	{
		out[0] = '\0';
		return 0;
	}
	if (jsonv_string(v, n, out, cap - 1, &len) || !event_timestamp_ok(out, len))
		return -1;
	out[len] = '\0';
	return 0;
}

/* A meta: an object (written afresh into ev->meta), or null if allowed. */
static int
take_meta(const char *v, size_t n, int null_ok, struct presence_event *ev)
{
	struct jbuf b = {0};
	int			r = -1;

	ev->meta_len = 0;
	if (jsonv_is(v, n, "null"))
		return null_ok ? 0 : -1;
	if (n && v[0] == '{' && !jsonv_copy(v, n, &b, NULL) && b.len < sizeof(ev->meta))
	{
		memcpy(ev->meta, b.p + LWS_PRE, b.len);
		ev->meta[b.len] = '\0';
		ev->meta_len = b.len;
		r = 0;
	}
	jbuf_free(&b);
	return r;
}

/* A status message: a string of 1 to RELAY_MAX_STATUS_MESSAGE bytes, or null. */
static int
take_message(const char *v, size_t n, struct presence_event *ev)
{
	ev->message_len = 0;
	if (jsonv_is(v, n, "null"))
		return 0;
	if (jsonv_string(v, n, ev->message, RELAY_MAX_STATUS_MESSAGE, &ev->message_len) ||
		!ev->message_len)
		return -1;
	ev->message[ev->message_len] = '\0';
	return 0;
}

/* The kind a payload's "event" names (no "event": a status change). */
static int
take_kind(const struct raw *raw, enum event_kind *kind)
{
	char		s[16];
	size_t		len,
				k;

	if (!(raw->seen & BIT(M_EVENT)))
	{
		*kind = EVENT_PRESENCE;
		return 0;
	}
	if (jsonv_string(raw->v[M_EVENT], raw->n[M_EVENT], s, sizeof(s), &len))
		return -1;
	for (k = EVENT_JOIN; k < LWS_ARRAY_SIZE(kind_names); k++)
		if (len == strlen(kind_names[k]) && !memcmp(s, kind_names[k], len))
		{
			*kind = (enum event_kind) k;
			return 0;
		}
	return -1;
}

/*
 * Parses one notification payload into ev.  Returns 0 if it has exactly
 * one of the documented shapes, -1 otherwise (and ev means nothing).
 */
int
event_parse(const char *payload, size_t len, struct presence_event *ev)
{
	struct raw	raw;

	if (len > RELAY_MAX_PAYLOAD)
		return -1;
	memset(&raw, 0, sizeof(raw));
	ev->user_len = ev->channel_len = ev->meta_len = ev->message_len = 0;
	ev->channel[0] = ev->last_active[0] = ev->expires_at[0] = '\0';
	if (jsonv_members(payload, len, collect, &raw) ||
		take_kind(&raw, &ev->kind) || raw.seen != shapes[ev->kind])
		return -1;
	if (take_seq(raw.v[M_SEQ], raw.n[M_SEQ], &ev->seq) ||
		take_name(raw.v[M_USER_ID], raw.n[M_USER_ID], ev->user_id, &ev->user_len))
		return -1;
	switch (ev->kind)
	{
		case EVENT_PRESENCE:
			return take_status(raw.v[M_STATUS], raw.n[M_STATUS], &ev->status) ||
				take_status(raw.v[M_PREVIOUS], raw.n[M_PREVIOUS], &ev->previous) ||
				take_time(raw.v[M_LAST_ACTIVE], raw.n[M_LAST_ACTIVE], ev->last_active,
						  sizeof(ev->last_active)) ? -1 : 0;
		case EVENT_JOIN:
			/* a member shown in a channel is online or away, never offline */
			if (take_status(raw.v[M_STATUS], raw.n[M_STATUS], &ev->status) ||
				ev->status == STATUS_OFFLINE ||
				take_meta(raw.v[M_META], raw.n[M_META], 1, ev))
				return -1;
			break;
		case EVENT_UPDATE:
			if (take_meta(raw.v[M_META], raw.n[M_META], 0, ev))
				return -1;
			break;
		case EVENT_LEAVE:
			break;
		case EVENT_MESSAGE:
			/* a user's, not a channel's */
			return take_message(raw.v[M_STATUS_MESSAGE], raw.n[M_STATUS_MESSAGE], ev) ||
				take_time(raw.v[M_EXPIRES_AT], raw.n[M_EXPIRES_AT], ev->expires_at,
						  sizeof(ev->expires_at)) ? -1 : 0;
	}
	return take_name(raw.v[M_CHANNEL], raw.n[M_CHANNEL], ev->channel, &ev->channel_len);
}

/*
 * Is s[0..n) a timestamp as PostgreSQL writes one in JSON:
 * YYYY-MM-DDTHH:MM:SS[.f{1,6}][Z|+HH[:MM[:SS]]|-HH...]?
 */
int
event_timestamp_ok(const char *s, size_t n)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd";
	size_t		i,
				k;

	if (n < sizeof(shape) - 1)
		return 0;
	for (i = 0; i < sizeof(shape) - 1; i++)
		if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != shape[i])
			return 0;
	if (i < n && s[i] == '.')
	{
		for (k = ++i; i < n && i - k < 6 && s[i] >= '0' && s[i] <= '9'; i++)
			;
		if (i == k)
			return 0;
	}
	if (i == n)
		return 1;
	if (s[i] == 'Z')
		return i + 1 == n;
	if (s[i] != '+' && s[i] != '-')
		return 0;
	/* +HH, +HH:MM or +HH:MM:SS */
	for (i++, k = 0; i + 2 <= n && k < 3; k++)
	{
		if (s[i] < '0' || s[i] > '9' || s[i + 1] < '0' || s[i + 1] > '9')
			return 0;
		i += 2;
		if (i == n)
			return 1;
		if (s[i++] != ':')
			return 0;
	}
	return 0;
}

/* ,"status":S,"previous":P,"last_active":T} of a status change */
static void
status_tail(const struct presence_event *ev, struct jbuf *out)
{
	jbuf_printf(out, ",\"status\":\"%s\",\"previous\":\"%s\",\"last_active\":",
				status_names[ev->status], status_names[ev->previous]);
	jbuf_quote_or_null(out, ev->last_active[0] ? ev->last_active : NULL, strlen(ev->last_active));
	jbuf_add(out, "}", 1);
}

/* ,"status_message":M,"expires_at":T} of a status message */
static void
message_tail(const struct presence_event *ev, struct jbuf *out)
{
	jbuf_str(out, ",\"status_message\":");
	jbuf_quote_or_null(out, ev->message_len ? ev->message : NULL, ev->message_len);
	jbuf_str(out, ",\"expires_at\":");
	jbuf_quote_or_null(out, ev->expires_at[0] ? ev->expires_at : NULL, strlen(ev->expires_at));
	jbuf_str(out, "}");
}

/*
 * The frame of ev, built from ev alone: {"type":"presence",...} for a
 * status change, {"type":"status_message",...} for a status message,
 * {"type":"join"|"update"|"leave","channel":C,...} for a channel event.
 */
int
event_frame(const struct presence_event *ev, struct jbuf *out)
{
	if (ev->kind == EVENT_PRESENCE || ev->kind == EVENT_MESSAGE)
	{
		jbuf_printf(out, "{\"type\":\"%s\",\"seq\":%lld,\"user_id\":",
					kind_names[ev->kind], (long long) ev->seq);
		jbuf_quote(out, ev->user_id, ev->user_len);
		if (ev->kind == EVENT_PRESENCE)
			status_tail(ev, out);
		else
			message_tail(ev, out);
		return out->oom ? -1 : 0;
	}
	jbuf_printf(out, "{\"type\":\"%s\",\"channel\":", kind_names[ev->kind]);
	jbuf_quote(out, ev->channel, ev->channel_len);
	jbuf_printf(out, ",\"seq\":%lld,\"user_id\":", (long long) ev->seq);
	jbuf_quote(out, ev->user_id, ev->user_len);
	if (ev->kind == EVENT_JOIN)
		jbuf_printf(out, ",\"status\":\"%s\"", status_names[ev->status]);
	if (ev->kind != EVENT_LEAVE)
	{
		jbuf_str(out, ",\"meta\":");
		if (ev->meta_len)
			jbuf_add(out, ev->meta, ev->meta_len);
		else
			jbuf_str(out, "null");
	}
	jbuf_str(out, "}");
	return out->oom ? -1 : 0;
}

/*
 * The frame of a join (ev) in a channel, with its user's status message
 * (message[0..len), len 0: null) as the relay knows it.
 */
int
event_frame_join(const struct presence_event *ev, const char *message, size_t len,
				 struct jbuf *out)
{
	if (event_frame(ev, out))
		return -1;
	out->len--;					/* the closing brace */
	jbuf_str(out, ",\"status_message\":");
	jbuf_quote_or_null(out, len ? message : NULL, len);
	jbuf_str(out, "}");
	return out->oom ? -1 : 0;
}

/*
 * The frame of a user's change (ev: a status change or a status message)
 * for the watchers of one channel the user is in:
 * {"type":"presence"|"status_message","channel":C,...}.
 */
int
event_frame_in(const struct presence_event *ev, const char *channel, size_t len,
			   struct jbuf *out)
{
	jbuf_printf(out, "{\"type\":\"%s\",\"channel\":", kind_names[ev->kind]);
	jbuf_quote(out, channel, len);
	jbuf_printf(out, ",\"seq\":%lld,\"user_id\":", (long long) ev->seq);
	jbuf_quote(out, ev->user_id, ev->user_len);
	if (ev->kind == EVENT_MESSAGE)
		message_tail(ev, out);
	else
		status_tail(ev, out);
	return out->oom ? -1 : 0;
}
