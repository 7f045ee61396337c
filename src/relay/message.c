/*
 * message.c - what a WebSocket client may send: {"type":"heartbeat",
 * "active":bool} and {"type":"visibility","visible":bool}.
 *
 * Parsed with lws's streaming JSON parser (lejp), so a message split over
 * several frames or reads needs no buffer of its own: only the parser
 * state (about 600 bytes) lives while a fragmented message is in progress.
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
};

/* lejp refuses an empty object, so the start of a message is read here. */
enum
{
	OPENING_NONE,				/* only blanks so far */
	OPENING_BRACE,				/* blanks and "{" */
	OPENING_LEJP,				/* something else: lejp parses */
};

static const char *const paths[] = {"type", "active", "visible"};

enum
{
	PATH_TYPE = 1,				/* lejp reports 1-based indexes of paths[] */
	PATH_ACTIVE,
	PATH_VISIBLE,
};

/* The kind a complete "type" string names. */
static enum message_kind
type_kind(const char *s, size_t len)
{
	if (len == 9 && !memcmp(s, "heartbeat", 9))
		return MESSAGE_HEARTBEAT;
	if (len == 10 && !memcmp(s, "visibility", 10))
		return MESSAGE_VISIBILITY;
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

static signed char
parse_cb(struct lejp_ctx *ctx, char reason)
{
	struct message_parser *p = ctx->user;

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
	else
		kind = p->type;
	out->kind = kind;
	out->active = p->active;
	out->visible = p->visible;
	lejp_destruct(&p->ctx);
	free(p);
	return kind;
}

/* Parses a message that arrived whole. */
enum message_kind
message_parse(const void *buf, size_t len, struct message *out)
{
	struct message_parser *p = message_begin();

	if (!p)
		return out->kind = MESSAGE_MALFORMED;
	message_feed(p, buf, len);
	return message_end(p, out);
}
