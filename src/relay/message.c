/*
 * message.c - what a WebSocket client may send: {"type":"heartbeat",
 * "active":bool}, {"type":"visibility","visible":bool},
 * {"type":"token","token":"..."}, the channel messages
 * {"type":"join"|"subscribe"|"leave"|"unsubscribe"|"update","channel":C,
 * "meta":{...}}, and {"type":"status_message","message":M,"expires_in":N}.
 * A message is a JSON object: a bare array or scalar is malformed.
 *
 * Parsed with lws's streaming JSON parser (lejp), so a message split over
 * several frames or reads needs no buffer of its own: only the parser
 * state (about 600 bytes) lives while a fragmented message is in progress,
 * and a "token" member's value, which is kept (up to RELAY_MAX_TOKEN).
 * A channel message (and a status message) is read again, whole, with
 * jsonv.c, which gives back the meta object as it is (lejp cannot: it keeps
 * member names in a short path); so the first RELAY_MAX_CHANNEL_MESSAGE
 * bytes of a fragmented message are kept too, and a longer one is refused
 * ("too_large").
 * Pure code (no connection, no globals): the fuzzer drives it directly.
 */
#include "relay.h"

#include <stdlib.h>
#include <string.h>

struct message_parser
{
	struct lejp_ctx ctx;
	int			result;			/* last lejp_parse(): LEJP_CONTINUE, <0, or done */
	int			bad;			/* malformed whatever lejp says */
	enum message_kind type;		/* from "type": HEARTBEAT, VISIBILITY or OTHER */
	int			active;
	int			visible;		/* -1: no "visible" member */
	int			type_chunked;	/* "type" longer than one lejp chunk */
	int			opening;		/* OPENING_*: what came before lejp took over */
	int			in_object;		/* lejp saw the top-level "{" */
	char	   *token;			/* "token" so far (malloc'd) */
	size_t		token_len;
	int			token_done;		/* a whole string arrived */
	const char *whole;			/* the message, if it came whole */
	size_t		whole_len;
	char	   *kept;			/* else its first bytes (malloc'd) */
	size_t		kept_len;
	int			kept_all;		/* kept is the whole message */
};

/* lejp refuses an empty object, so the start of a message is read here. */
enum
{
	OPENING_NONE,				/* only blanks so far */
	OPENING_BRACE,				/* blanks and "{" */
	OPENING_LEJP,				/* something else: lejp parses */
};

static const char *const paths[] = {"type", "active", "visible", "token"};

enum
{
	PATH_TYPE = 1,				/* lejp reports 1-based indexes of paths[] */
	PATH_ACTIVE,
	PATH_VISIBLE,
	PATH_TOKEN,
};

static const struct
{
	const char *name;
	enum message_kind kind;
}			types[] = {
	{"heartbeat", MESSAGE_HEARTBEAT},
	{"visibility", MESSAGE_VISIBILITY},
	{"token", MESSAGE_TOKEN},
	{"join", MESSAGE_JOIN},
	{"subscribe", MESSAGE_SUBSCRIBE},
	{"leave", MESSAGE_LEAVE},
	{"unsubscribe", MESSAGE_UNSUBSCRIBE},
	{"update", MESSAGE_UPDATE},
	{"status_message", MESSAGE_STATUS_MESSAGE},
};

/* The kind a complete "type" string names. */
static enum message_kind
type_kind(const char *s, size_t len)
{
	size_t		i;

	for (i = 0; i < LWS_ARRAY_SIZE(types); i++)
		if (len == strlen(types[i].name) && !memcmp(s, types[i].name, len))
			return types[i].kind;
	return MESSAGE_OTHER;
}

/* Is kind read again whole (a channel message, a status message)? */
static int
is_reread_kind(enum message_kind kind)
{
	return (kind >= MESSAGE_JOIN && kind <= MESSAGE_UPDATE) ||
		kind == MESSAGE_STATUS_MESSAGE;
}

/* Characters (code points) of the UTF-8 text s[0..n). */
static size_t
characters(const char *s, size_t n)
{
	size_t		i,
				k = 0;

	for (i = 0; i < n; i++)
		if (((unsigned char) s[i] & 0xc0) != 0x80)
			k++;
	return k;
}

/* jsonv_members()'s callback: "message" and "expires_in" of a status message. */
static int
status_member(void *arg, const char *key, size_t klen, const char *v, size_t vn)
{
	struct message *m = arg;
	char		num[32],
			   *end;
	double		secs;

	if (!key)
		return 0;
	if (klen == 7 && !memcmp(key, "message", 7))
	{
		if (m->has_status)
			return -1;			/* twice */
		m->has_status = 1;
		if (jsonv_is(v, vn, "null"))
			m->status_len = 0;
		else if (jsonv_string(v, vn, m->status, RELAY_MAX_STATUS_MESSAGE, &m->status_len) ||
				 characters(m->status, m->status_len) > RELAY_MAX_STATUS_CHARS)
			m->error = "bad_status_message";
		m->status[m->status_len] = '\0';
		return 0;
	}
	if (klen == 10 && !memcmp(key, "expires_in", 10))
	{
		if (m->expires_in != 0)
			return -1;			/* twice */
		if (jsonv_is(v, vn, "null"))
			m->expires_in = -1;	/* none, as if not given */
		else if (vn >= sizeof(num) || (v[0] != '-' && (v[0] < '0' || v[0] > '9')))
			m->error = "bad_expires_in";
		else
		{
			memcpy(num, v, vn);
			num[vn] = '\0';
			secs = strtod(num, &end);
			if (*end || !(secs > 0 && secs <= RELAY_MAX_EXPIRES_IN))
				m->error = "bad_expires_in";
			else
				m->expires_in = secs;
		}
	}
	return 0;
}

/* A boolean member: 1 or 0, or -1 (and the message is bad) if not one. */
static void
set_bool(struct message_parser *p, char reason, int *out)
{
	if (reason == LEJPCB_VAL_TRUE)
		*out = 1;
	else if (reason == LEJPCB_VAL_FALSE)
		*out = 0;
	else if (reason != LEJPCB_VAL_STR_CHUNK)
		p->bad = 1;
}

/* Appends a piece of the "token" string; too long makes the message bad. */
static void
add_token(struct message_parser *p, const char *s, size_t n)
{
	char	   *t;

	if (p->token_len + n > RELAY_MAX_TOKEN)
	{
		p->bad = 1;
		return;
	}
	t = realloc(p->token, p->token_len + n + 1);
	if (!t)
	{
		p->bad = 1;
		return;
	}
	memcpy(t + p->token_len, s, n);
	p->token = t;
	p->token_len += n;
	t[p->token_len] = '\0';
}

static signed char
parse_cb(struct lejp_ctx *ctx, char reason)
{
	struct message_parser *p = ctx->user;

	/* a message is an object: a bare array or value is malformed */
	if (reason == LEJPCB_OBJECT_START)
		p->in_object = 1;
	else if ((reason == LEJPCB_ARRAY_START || (reason & LEJP_FLAG_CB_IS_VALUE)) &&
			 !p->in_object)
		p->bad = 1;

	/* only top-level members count: a nested "type" has a longer path */
	if (!(reason & LEJP_FLAG_CB_IS_VALUE) || !ctx->path_match)
	{
		if (reason == LEJPCB_VAL_STR_START)
			p->type_chunked = 0;
		return 0;
	}
	switch (ctx->path_match)
	{
		case PATH_TYPE:
			if (reason == LEJPCB_VAL_STR_CHUNK)
				p->type_chunked = 1;
			else if (reason == LEJPCB_VAL_STR_END)
				p->type = p->type_chunked ? MESSAGE_OTHER :
					type_kind(ctx->buf, ctx->npos);
			else
				p->type = MESSAGE_OTHER;
			break;
		case PATH_ACTIVE:
			set_bool(p, reason, &p->active);
			break;
		case PATH_VISIBLE:
			set_bool(p, reason, &p->visible);
			break;
		case PATH_TOKEN:
			if (reason == LEJPCB_VAL_STR_CHUNK || reason == LEJPCB_VAL_STR_END)
			{
				if (p->token_done)
					p->bad = 1; /* twice */
				add_token(p, ctx->buf, ctx->npos);
				if (reason == LEJPCB_VAL_STR_END)
					p->token_done = 1;
			}
			else
				p->bad = 1;
			break;
	}
	return 0;
}

static void
parser_init(struct message_parser *p)
{
	memset(p, 0, sizeof(*p));
	p->result = LEJP_CONTINUE;
	p->type = MESSAGE_OTHER;
	p->active = 1;
	p->visible = -1;
	p->kept_all = 1;
	lejp_construct(&p->ctx, parse_cb, p, paths, LWS_ARRAY_SIZE(paths));
}

struct message_parser *
message_begin(void)
{
	struct message_parser *p = malloc(sizeof(*p));

	if (p)
		parser_init(p);
	return p;
}

static int
is_blank(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/*
 * lejp rejects a top-level {} (LEJP_REJECT_MEMBERS_NO_CLOSE), which is
 * valid JSON: an object with no "type", ignored like any other.  So the
 * blanks and the brace a message starts with are read here, and lejp is
 * given the brace back once something else follows.  Returns how many
 * bytes of b were used.
 */
static size_t
read_opening(struct message_parser *p, const unsigned char *b, size_t len)
{
	size_t		i;

	for (i = 0; i < len; i++)
	{
		if (is_blank(b[i]))
			continue;
		if (b[i] == '{' && p->opening == OPENING_NONE)
		{
			p->opening = OPENING_BRACE;
			continue;
		}
		if (b[i] == '}' && p->opening == OPENING_BRACE)
		{
			p->result = 0;		/* {}: complete */
			p->in_object = 1;
			return i + 1;
		}
		if (p->opening == OPENING_BRACE)
			p->result = lejp_parse(&p->ctx, (const unsigned char *) "{", 1);
		p->opening = OPENING_LEJP;
		return i;
	}
	return i;
}

/* Keeps the first RELAY_MAX_CHANNEL_MESSAGE bytes of a fragmented message. */
static void
keep(struct message_parser *p, const void *buf, size_t len)
{
	char	   *k;

	if (!p->kept_all)
		return;
	if (p->kept_len + len > RELAY_MAX_CHANNEL_MESSAGE ||
		!(k = realloc(p->kept, p->kept_len + len + 1)))
	{
		p->kept_all = 0;
		return;
	}
	memcpy(k + p->kept_len, buf, len);
	p->kept = k;
	p->kept_len += len;
}

/* Feeds the next piece of a message; bytes after the object must be blank. */
void
message_feed(struct message_parser *p, const void *buf, size_t len)
{
	const unsigned char *b = buf;
	size_t		i;

	if (!p->whole)
		keep(p, buf, len);
	if (p->bad || p->result < LEJP_CONTINUE || !len)
		return;
	if (p->result == LEJP_CONTINUE && p->opening != OPENING_LEJP)
	{
		i = read_opening(p, b, len);
		b += i;
		len -= i;
	}
	if (p->result == LEJP_CONTINUE && len)
	{
		p->result = lejp_parse(&p->ctx, b, (int) len);
		if (p->result <= 0)
			return;
		/* lejp returns how many bytes it did not use */
		b += len - (size_t) p->result;
		len = (size_t) p->result;
		p->result = 0;
	}
	if (p->result != 0)
		return;
	for (i = 0; i < len; i++)
		if (!is_blank(b[i]))
			p->bad = 1;
}

/* jsonv_members()'s callback: "channel" and "meta" of a channel message. */
static int
channel_member(void *arg, const char *key, size_t klen, const char *v, size_t vn)
{
	struct message *m = arg;
	struct jbuf b = {0};
	size_t		text_len;

	if (!key)
		return 0;
	if (klen == 7 && !memcmp(key, "channel", 7))
	{
		if (m->channel_len || m->error)
			return -1;			/* twice */
		if (jsonv_string(v, vn, m->channel, RELAY_MAX_CHANNEL, &m->channel_len) ||
			!m->channel_len)
		{
			m->channel_len = 0;
			m->error = "bad_channel";
		}
		m->channel[m->channel_len] = '\0';
		return 0;
	}
	if (klen == 4 && !memcmp(key, "meta", 4))
	{
		if (m->meta || m->meta_bad)
			return -1;			/* twice */
		if (vn && v[0] == '{' && !jsonv_copy(v, vn, &b, &text_len) &&
			text_len <= RELAY_MAX_META && (m->meta = strdup(jbuf_text(&b))))
			m->meta_len = b.len;
		else
			m->meta_bad = 1;
		jbuf_free(&b);
	}
	return 0;
}

/*
 * A channel message, read again whole: its "channel" (required: else
 * m->error is "bad_channel") and "meta" (an object of at most 1 kB as
 * jsonb prints it: else "bad_meta").  -1 if the text is not one JSON
 * object after all.
 */
static int
channel_fields(const char *text, size_t len, struct message *m)
{
	m->meta_bad = 0;
	if (jsonv_members(text, len, channel_member, m))
		return -1;
	if (!m->channel_len)
		m->error = "bad_channel";
	else if (m->meta_bad)
		m->error = "bad_meta";
	return 0;
}

/*
 * A status message, read again whole: "message" (a string of at most 140
 * characters, or null to clear: required) and "expires_in" (seconds, more
 * than 0: optional).  -1 if the text is not one JSON object after all.
 */
static int
status_fields(const char *text, size_t len, struct message *m)
{
	if (jsonv_members(text, len, status_member, m))
		return -1;
	if (!m->has_status && !m->error)
		m->error = "bad_status_message";
	if (m->expires_in < 0)
		m->expires_in = 0;
	return 0;
}

/* Ends the message, frees the parser, says what the message was. */
enum message_kind
message_end(struct message_parser *p, struct message *out)
{
	enum message_kind kind;

	memset(out, 0, sizeof(*out));
	if (p->bad || p->result != 0)
		kind = MESSAGE_MALFORMED;
	else if (p->type == MESSAGE_VISIBILITY && p->visible < 0)
		kind = MESSAGE_MALFORMED;	/* "visible" is required */
	else if (p->type == MESSAGE_TOKEN && !p->token_done)
		kind = MESSAGE_MALFORMED;	/* so is "token" */
	else
		kind = p->type;
	if (is_reread_kind(kind))
	{
		const char *text = p->whole ? p->whole : p->kept;
		size_t		len = p->whole ? p->whole_len : p->kept_len;

		/* the same verdict whether it came whole or in pieces */
		if (p->whole ? p->whole_len > RELAY_MAX_CHANNEL_MESSAGE : !p->kept_all)
			out->error = "too_large";
		else if (kind == MESSAGE_STATUS_MESSAGE ? status_fields(text, len, out) :
				 channel_fields(text, len, out))
		{
			message_clear(out);
			kind = MESSAGE_MALFORMED;
		}
	}
	out->kind = kind;
	out->active = p->active;
	out->visible = p->visible;
	if (kind == MESSAGE_TOKEN)
	{
		out->token = p->token;
		p->token = NULL;
	}
	free(p->token);
	free(p->kept);
	lejp_destruct(&p->ctx);
	free(p);
	return kind;
}

/* Frees what message_end() gave the caller. */
void
message_clear(struct message *m)
{
	if (m->token)
		lws_explicit_bzero(m->token, strlen(m->token));
	free(m->token);
	m->token = NULL;
	free(m->meta);
	m->meta = NULL;
	m->meta_len = 0;
}

/* Parses a message that arrived whole. */
enum message_kind
message_parse(const void *buf, size_t len, struct message *out)
{
	struct message_parser *p = message_begin();

	if (!p)
	{
		memset(out, 0, sizeof(*out));
		return out->kind = MESSAGE_MALFORMED;
	}
	p->whole = buf;
	p->whole_len = len;
	message_feed(p, buf, len);
	return message_end(p, out);
}
