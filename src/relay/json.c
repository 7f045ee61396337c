/*
 * json.c - building the JSON the relay sends, afresh: a growable buffer
 * with LWS_PRE bytes of headroom (so that it can be handed to lws_write()
 * as it is) and JSON string escaping.
 *
 * Not lws_json_purify(): it escapes bytes >= 0x80 where char is signed,
 * which turns UTF-8 into mojibake.  Pure code: the fuzzer links it.
 */
#include "relay.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Makes room for n more bytes (and a NUL); 0 or -1 (and the buffer is bad). */
static int
grow(struct jbuf *b, size_t n)
{
	unsigned char *p;
	size_t		cap;

	if (b->oom)
		return -1;
	if (LWS_PRE + b->len + n + 1 <= b->cap)
		return 0;
	cap = (LWS_PRE + b->len + n + 1) * 2;
	if (cap < 256)
		cap = 256;
	p = realloc(b->p, cap);
	if (!p)
	{
		b->oom = 1;
		return -1;
	}
	b->p = p;
	b->cap = cap;
	return 0;
}

void
jbuf_add(struct jbuf *b, const char *s, size_t n)
{
	if (grow(b, n))
		return;
	memcpy(b->p + LWS_PRE + b->len, s, n);
	b->len += n;
	b->p[LWS_PRE + b->len] = '\0';
}

void
jbuf_str(struct jbuf *b, const char *s)
{
	jbuf_add(b, s, strlen(s));
}

void
jbuf_printf(struct jbuf *b, const char *fmt,...)
{
	va_list		ap;
	int			n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || grow(b, (size_t) n))
	{
		b->oom = 1;
		return;
	}
	va_start(ap, fmt);
	vsnprintf((char *) b->p + LWS_PRE + b->len, (size_t) n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t) n;
}

/* The letter of a two-character escape for c (\" \\ \n ...), or 0. */
static char
short_escape(unsigned char c)
{
	switch (c)
	{
		case '"':
		case '\\':
			return (char) c;
		case '\b':
			return 'b';
		case '\f':
			return 'f';
		case '\n':
			return 'n';
		case '\r':
			return 'r';
		case '\t':
			return 't';
		default:
			return 0;
	}
}

/*
 * Appends s[0..n) as a quoted JSON string.  The caller has checked that it
 * is UTF-8 (json_utf8_ok()); only what JSON requires is escaped.
 */
void
jbuf_quote(struct jbuf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *) s;
	size_t		i,
				from = 0;
	char		esc[6];

	jbuf_add(b, "\"", 1);
	for (i = 0; i < n; i++)
	{
		if (p[i] >= 0x20 && p[i] != '"' && p[i] != '\\')
			continue;
		jbuf_add(b, s + from, i - from);
		from = i + 1;
		esc[0] = '\\';
		if ((esc[1] = short_escape(p[i])))
		{
			jbuf_add(b, esc, 2);
			continue;
		}
		esc[1] = 'u';
		esc[2] = '0';
		esc[3] = '0';
		esc[4] = hex[p[i] >> 4];
		esc[5] = hex[p[i] & 15];
		jbuf_add(b, esc, 6);
	}
	jbuf_add(b, s + from, n - from);
	jbuf_add(b, "\"", 1);
}

/* Appends s[0..n) as a quoted JSON string, or null if s is NULL. */
void
jbuf_quote_or_null(struct jbuf *b, const char *s, size_t n)
{
	if (s)
		jbuf_quote(b, s, n);
	else
		jbuf_add(b, "null", 4);
}

/* Is s one or more decimal digits and nothing else? */
int
json_digits(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

/* The JSON text, NUL-terminated (LWS_PRE bytes of room before it). */
char *
jbuf_text(struct jbuf *b)
{
	if (!b->p && grow(b, 0))
		return NULL;
	b->p[LWS_PRE + b->len] = '\0';
	return (char *) b->p + LWS_PRE;
}

void
jbuf_free(struct jbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/*
 * Is s[0..n) well-formed UTF-8 without NUL (no overlong forms, no
 * surrogates, nothing past U+10FFFF)?  Text from PostgreSQL always is;
 * strings a JSON parser decoded from \u escapes need not be.
 */
int
json_utf8_ok(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *) s;
	size_t		i = 0;

	while (i < n)
	{
		unsigned char c = p[i];
		size_t		more;
		uint32_t	cp;

		if (c == 0)
			return 0;
		if (c < 0x80)
		{
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			more = 1, cp = c & 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			more = 2, cp = c & 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			more = 3, cp = c & 0x07;
		else
			return 0;
		if (n - i <= more)
			return 0;
		for (size_t k = 1; k <= more; k++)
		{
			if ((p[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if ((more == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
			(more == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return 0;
		i += more + 1;
	}
	return 1;
}
