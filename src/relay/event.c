/*
 * event.c - a notification payload, checked member by member, and the
 * frame the relay makes of it afresh.
 *
 * The worker's payload is {"seq":N,"user_id":"...","status":"...",
 * "previous":"...","last_active":"..."|null} and nothing else.  It is
 * parsed with lws's lejp (as message.c parses client messages) into a
 * struct presence_event; anything else (another member, a member twice,
 * a nested value, a wrong type, an unknown status, an oversized or
 * non-UTF-8 string, trailing bytes) is refused, and the frame is then
 * serialized from the struct, never spliced from the payload.
 *
 * New kinds of event (a channel event: "channel", "event", "meta") are a
 * new entry in paths[] and types[], a field in the struct and a line in
 * event_frame().
 * Pure code (no connection, no globals): the fuzzer drives it directly.
 */
#include "relay.h"

#include <stdlib.h>
#include <string.h>

enum value_type
{
	V_SEQ,						/* integer >= 1 */
	V_TEXT,						/* string, 1 to RELAY_MAX_USER_ID bytes */
	V_STATUS,					/* "online", "away" or "offline" */
	V_TIME_OR_NULL,				/* ISO 8601 timestamp string, or null */
};

/* The members, in the order the worker writes them, and their types. */
enum
{
	M_SEQ,
	M_USER_ID,
	M_STATUS,
	M_PREVIOUS,
	M_LAST_ACTIVE,
	M_COUNT
};
static const char *const paths[M_COUNT] = {"seq", "user_id", "status", "previous", "last_active"};
static const enum value_type types[M_COUNT] = {V_SEQ, V_TEXT, V_STATUS, V_STATUS, V_TIME_OR_NULL};

static const char *const status_names[] = {"online", "away", "offline"};

struct event_parser
{
	struct lejp_ctx ctx;
	struct presence_event *ev;
	unsigned	seen;			/* bit per member */
	int			in_object;
	char		str[RELAY_MAX_USER_ID + 1]; /* the string value so far */
	size_t		str_len;
	int			str_long;		/* longer than str */
};

const char *
event_status_name(enum presence_status s)
{
	return status_names[s];
}

/* A whole string value arrived: checks it and stores it. */
static int
take_string(struct event_parser *p, int m)
{
	struct presence_event *ev = p->ev;
	size_t		i;

	if (p->str_long || !json_utf8_ok(p->str, p->str_len))
		return -1;
	switch (types[m])
	{
		case V_TEXT:
			if (!p->str_len)
				return -1;
			memcpy(ev->user_id, p->str, p->str_len);
			ev->user_id[p->str_len] = '\0';
			ev->user_len = p->str_len;
			return 0;
		case V_STATUS:
			for (i = 0; i < LWS_ARRAY_SIZE(status_names); i++)
				if (p->str_len == strlen(status_names[i]) &&
					!memcmp(p->str, status_names[i], p->str_len))
				{
					if (m == M_STATUS)
						ev->status = (enum presence_status) i;
					else
						ev->previous = (enum presence_status) i;
					return 0;
				}
			return -1;
		case V_TIME_OR_NULL:
			if (p->str_len >= sizeof(ev->last_active) ||
				!event_timestamp_ok(p->str, p->str_len))
				return -1;
			memcpy(ev->last_active, p->str, p->str_len);
			ev->last_active[p->str_len] = '\0';
			return 0;
		default:
			return -1;
	}
}

/* "seq": digits only, no sign, no leading zero, no fraction, >= 1, fits. */
static int
take_seq(struct event_parser *p, const char *digits)
{
	int64_t		v = 0;
	const char *d;

	if (digits[0] < '1' || digits[0] > '9')
		return -1;
	for (d = digits; *d; d++)
	{
		if (*d < '0' || *d > '9' || v > (INT64_MAX - (*d - '0')) / 10)
			return -1;
		v = v * 10 + (*d - '0');
	}
	p->ev->seq = v;
	return 0;
}

/* lejp's callback: returns non-zero to refuse the payload. */
static signed char
parse_cb(struct lejp_ctx *ctx, char reason)
{
	struct event_parser *p = ctx->user;
	int			m = ctx->path_match - 1;

	switch (reason)
	{
		case LEJPCB_OBJECT_START:
			if (p->in_object)
				return -1;		/* nested */
			p->in_object = 1;
			return 0;
		case LEJPCB_ARRAY_START:
			return -1;			/* a bare array, or an array value */
		case LEJPCB_PAIR_NAME:
			if (m < 0 || (p->seen & (1u << m)))
				return -1;		/* unknown, or twice */
			p->seen |= 1u << m;
			return 0;
		case LEJPCB_VAL_STR_START:
			p->str_len = 0;
			p->str_long = 0;
			return m < 0 || types[m] == V_SEQ;
		case LEJPCB_VAL_STR_CHUNK:
		case LEJPCB_VAL_STR_END:
			if (m < 0)
				return -1;
			if (p->str_len + ctx->npos > sizeof(p->str) - 1)
				p->str_long = 1;
			else
			{
				memcpy(p->str + p->str_len, ctx->buf, ctx->npos);
				p->str_len += ctx->npos;
			}
			return reason == LEJPCB_VAL_STR_END ? (take_string(p, m) ? -1 : 0) : 0;
		case LEJPCB_VAL_NUM_INT:
			return m < 0 || types[m] != V_SEQ || take_seq(p, ctx->buf);
		case LEJPCB_VAL_NULL:
			if (m < 0 || types[m] != V_TIME_OR_NULL)
				return -1;
			p->ev->last_active[0] = '\0';
			return 0;
		case LEJPCB_VAL_TRUE:
		case LEJPCB_VAL_FALSE:
		case LEJPCB_VAL_NUM_FLOAT:
			return -1;
		default:
			return 0;
	}
}

static int
is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/*
 * Parses one notification payload into ev.  Returns 0 if it has exactly
 * the documented shape, -1 otherwise (and ev means nothing).
 */
int
event_parse(const char *payload, size_t len, struct presence_event *ev)
{
	struct event_parser *p;
	int			r;
	size_t		i;

	if (len > RELAY_MAX_PAYLOAD)
		return -1;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -1;
	memset(ev, 0, sizeof(*ev));
	ev->kind = EVENT_PRESENCE;
	p->ev = ev;
	lejp_construct(&p->ctx, parse_cb, p, paths, LWS_ARRAY_SIZE(paths));
	r = lejp_parse(&p->ctx, (const unsigned char *) payload, (int) len);
	lejp_destruct(&p->ctx);
	/* complete: lejp returns how many bytes it did not use; they must be blank */
	if (r >= 0)
		for (i = len - (size_t) r; i < len; i++)
			if (!is_blank(payload[i]))
				r = -1;
	if (r >= 0 && p->seen != (1u << M_COUNT) - 1)
		r = -1;
	free(p);
	return r >= 0 ? 0 : -1;
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

/* The frame clients get: {"type":"presence",...}, built from ev alone. */
int
event_frame(const struct presence_event *ev, struct jbuf *out)
{
	jbuf_printf(out, "{\"type\":\"presence\",\"seq\":%lld,\"user_id\":",
				(long long) ev->seq);
	jbuf_quote(out, ev->user_id, ev->user_len);
	jbuf_printf(out, ",\"status\":\"%s\",\"previous\":\"%s\",\"last_active\":",
				status_names[ev->status], status_names[ev->previous]);
	if (ev->last_active[0])
		jbuf_quote(out, ev->last_active, strlen(ev->last_active));
	else
		jbuf_add(out, "null", 4);
	jbuf_add(out, "}", 1);
	return out->oom ? -1 : 0;
}
