/*
 * message.c - what a WebSocket client may send: {"type":"heartbeat",
 * "active":bool}, {"type":"visibility","visible":bool} and
 * {"type":"token","token":"..."}.  A message is a JSON object: a bare
 * array or scalar is malformed.
 *
 * Parsed with lws's streaming JSON parser (lejp), so a message split over
 * several frames or reads needs no buffer of its own: only the parser
 * state (about 600 bytes) lives while a fragmented message is in progress,
 * and a "token" member's value, which is kept (up to RELAY_MAX_TOKEN).
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

/* The kind a complete "type" string names. */
static enum message_kind
type_kind(const char *s, size_t len)
{
	if (len == 9 && !memcmp(s, "heartbeat", 9))
		return MESSAGE_HEARTBEAT;
	if (len == 10 && !memcmp(s, "visibility", 10))
		return MESSAGE_VISIBILITY;
	if (len == 5 && !memcmp(s, "token", 5))
		return MESSAGE_TOKEN;
	return MESSAGE_OTHER;
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

/* Feeds the next piece of a message; bytes after the object must be blank. */
void
message_feed(struct message_parser *p, const void *buf, size_t len)
{
	const unsigned char *b = buf;
	size_t		i;

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

/* Ends the message, frees the parser, says what the message was. */
enum message_kind
message_end(struct message_parser *p, struct message *out)
{
	enum message_kind kind;

	if (p->bad || p->result != 0)
		kind = MESSAGE_MALFORMED;
	else if (p->type == MESSAGE_VISIBILITY && p->visible < 0)
		kind = MESSAGE_MALFORMED;	/* "visible" is required */
	else if (p->type == MESSAGE_TOKEN && !p->token_done)
		kind = MESSAGE_MALFORMED;	/* so is "token" */
	else
		kind = p->type;
	out->kind = kind;
	out->active = p->active;
	out->visible = p->visible;
	out->token = NULL;
	if (kind == MESSAGE_TOKEN)
	{
		out->token = p->token;
		p->token = NULL;
	}
	free(p->token);
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
}

/* Parses a message that arrived whole. */
enum message_kind
message_parse(const void *buf, size_t len, struct message *out)
{
	struct message_parser *p = message_begin();

	if (!p)
	{
		out->token = NULL;
		return out->kind = MESSAGE_MALFORMED;
	}
	message_feed(p, buf, len);
	return message_end(p, out);
}
