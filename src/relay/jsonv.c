/*
 * jsonv.c - JSON values from strangers, read strictly and written afresh:
 * notification payloads (event.c), the metas of presence.members()
 * (channels.c), client messages that carry a channel or a meta (message.c)
 * and the "channels" claim of tokens (access.c).
 *
 * RFC 8259 only: one value, blanks around it, objects, arrays, strings of
 * UTF-8 (escapes decoded, surrogate pairs joined; a lone surrogate, a NUL
 * or bytes that are not UTF-8 refuse the text), numbers by the RFC's
 * grammar (copied as written: jsonb keeps 0.1 as 0.1 and so do we), true,
 * false, null; nesting at most JSONV_MAX_DEPTH.  What is accepted is
 * written compact: whatever the text said, what clients get is well-formed
 * JSON that this code wrote.
 *
 * Why not lejp (which message.c uses to stream messages): it keeps member
 * names in its 128-byte path, and a longer name wraps around inside it, so
 * it cannot give back an object's keys; and the JSON libraries Debian has
 * (jansson, json-c) would need another package, and jansson rewrites
 * numbers (0.1 as 0.10000000000000001).  Pure code: the fuzzer drives it.
 */
#include "relay.h"

#include <string.h>

#define JSONV_MAX_DEPTH 32

struct reader
{
	const unsigned char *s;
	size_t		n,
				i;
	struct jbuf *out;			/* NULL: check only */
	size_t		separators;		/* ':' and ',' written */
};

static void
blanks(struct reader *r)
{
	while (r->i < r->n && (r->s[r->i] == ' ' || r->s[r->i] == '\t' ||
						   r->s[r->i] == '\n' || r->s[r->i] == '\r'))
		r->i++;
}

static void
emit(struct reader *r, const char *s, size_t n)
{
	if (r->out)
		jbuf_add(r->out, s, n);
}

static int
hex4(const unsigned char *p, uint32_t *v)
{
	int			k;

	*v = 0;
	for (k = 0; k < 4; k++)
	{
		unsigned char c = p[k];

		*v <<= 4;
		if (c >= '0' && c <= '9')
			*v |= (uint32_t) (c - '0');
		else if (c >= 'a' && c <= 'f')
			*v |= (uint32_t) (c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			*v |= (uint32_t) (c - 'A' + 10);
		else
			return -1;
	}
	return 0;
}

static size_t
utf8_put(uint32_t cp, char *o)
{
	if (cp < 0x80)
		return o[0] = (char) cp, 1;
	if (cp < 0x800)
		return o[0] = (char) (0xc0 | (cp >> 6)), o[1] = (char) (0x80 | (cp & 0x3f)), 2;
	if (cp < 0x10000)
	{
		o[0] = (char) (0xe0 | (cp >> 12));
		o[1] = (char) (0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char) (0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char) (0xf0 | (cp >> 18));
	o[1] = (char) (0x80 | ((cp >> 12) & 0x3f));
	o[2] = (char) (0x80 | ((cp >> 6) & 0x3f));
	o[3] = (char) (0x80 | (cp & 0x3f));
	return 4;
}

/*
 * Decodes the string starting at s[*i] (its opening quote) into out (cap
 * bytes; its length in *len), and moves *i past the closing quote.
 * Returns 0, -1 if it is not a valid string, -2 if it does not fit.
 */
static int
decode_string(const unsigned char *s, size_t n, size_t *i, char *out, size_t cap,
			  size_t *len)
{
	size_t		k = *i,
				o = 0,
				run;
	char		tmp[4];
	int			too_long = 0;

	if (k >= n || s[k] != '"')
		return -1;
	for (k++;;)
	{
		/* a run of plain bytes, copied as they are, checked as UTF-8 after */
		for (run = k; k < n && s[k] != '"' && s[k] != '\\' && s[k] >= 0x20; k++)
			;
		if (k > run)
		{
			if (!json_utf8_ok((const char *) s + run, k - run))
				return -1;
			if (o + (k - run) > cap)
				too_long = 1;
			else
				memcpy(out + o, s + run, k - run);
			o += k - run;
		}
		if (k >= n || s[k] < 0x20)
			return -1;
		if (s[k] == '"')
			break;
		/* an escape */
		if (++k >= n)
			return -1;
		{
			uint32_t	cp,
						lo;
			size_t		m;

			switch (s[k])
			{
				case '"':
				case '\\':
				case '/':
					cp = s[k];
					break;
				case 'b':
					cp = '\b';
					break;
				case 'f':
					cp = '\f';
					break;
				case 'n':
					cp = '\n';
					break;
				case 'r':
					cp = '\r';
					break;
				case 't':
					cp = '\t';
					break;
				case 'u':
					if (k + 4 >= n || hex4(s + k + 1, &cp))
						return -1;
					k += 4;
					if (cp >= 0xdc00 && cp <= 0xdfff)
						return -1;	/* a low surrogate alone */
					if (cp >= 0xd800 && cp <= 0xdbff)
					{
						if (k + 6 >= n || s[k + 1] != '\\' || s[k + 2] != 'u' ||
							hex4(s + k + 3, &lo) || lo < 0xdc00 || lo > 0xdfff)
							return -1;
						cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
						k += 6;
					}
					if (cp == 0)
						return -1;	/* no NUL: C strings carry these */
					break;
				default:
					return -1;
			}
			m = utf8_put(cp, tmp);
			if (o + m > cap)
				too_long = 1;
			else
				memcpy(out + o, tmp, m);
			o += m;
			k++;
		}
	}
	*i = k + 1;
	*len = o;
	return too_long ? -2 : 0;
}

/* A string, copied (decoded, then quoted again). */
static int
string(struct reader *r)
{
	char		buf[RELAY_MAX_PAYLOAD];
	size_t		len;
	size_t		at = r->i;

	/* decoded, a string is never longer than its text */
	if (decode_string(r->s, r->n, &r->i, buf,
					  sizeof(buf) < r->n ? sizeof(buf) : r->n, &len))
	{
		r->i = at;
		return -1;
	}
	if (r->out)
		jbuf_quote(r->out, buf, len);
	return 0;
}

static int
digits(struct reader *r)
{
	size_t		at = r->i;

	while (r->i < r->n && r->s[r->i] >= '0' && r->s[r->i] <= '9')
		r->i++;
	return r->i > at ? 0 : -1;
}

/* A number by RFC 8259's grammar, copied as written. */
static int
number(struct reader *r)
{
	size_t		at = r->i;

	if (r->i < r->n && r->s[r->i] == '-')
		r->i++;
	if (r->i < r->n && r->s[r->i] == '0')
		r->i++;
	else if (digits(r))
		return -1;
	if (r->i < r->n && r->s[r->i] == '.')
	{
		r->i++;
		if (digits(r))
			return -1;
	}
	if (r->i < r->n && (r->s[r->i] == 'e' || r->s[r->i] == 'E'))
	{
		r->i++;
		if (r->i < r->n && (r->s[r->i] == '+' || r->s[r->i] == '-'))
			r->i++;
		if (digits(r))
			return -1;
	}
	emit(r, (const char *) r->s + at, r->i - at);
	return 0;
}

static int
literal(struct reader *r, const char *word)
{
	size_t		n = strlen(word);

	if (r->n - r->i < n || memcmp(r->s + r->i, word, n))
		return -1;
	r->i += n;
	emit(r, word, n);
	return 0;
}

static int	value(struct reader *r, int depth);

/* An array or an object (open is '[' or '{'). */
static int
container(struct reader *r, int depth, char open)
{
	char		close = open == '[' ? ']' : '}';
	int			first = 1;

	if (depth >= JSONV_MAX_DEPTH)
		return -1;
	r->i++;
	emit(r, &open, 1);
	for (;;)
	{
		blanks(r);
		if (r->i < r->n && r->s[r->i] == close && first)
			break;
		if (!first)
		{
			if (r->i >= r->n || r->s[r->i] == close)
				break;
			if (r->s[r->i] != ',')
				return -1;
			r->i++;
			r->separators++;
			emit(r, ",", 1);
			blanks(r);
		}
		first = 0;
		if (open == '{')
		{
			if (string(r))
				return -1;
			blanks(r);
			if (r->i >= r->n || r->s[r->i] != ':')
				return -1;
			r->i++;
			r->separators++;
			emit(r, ":", 1);
			blanks(r);
		}
		if (value(r, depth + 1))
			return -1;
	}
	if (r->i >= r->n || r->s[r->i] != close)
		return -1;
	r->i++;
	emit(r, &close, 1);
	return 0;
}

static int
value(struct reader *r, int depth)
{
	if (r->i >= r->n)
		return -1;
	switch (r->s[r->i])
	{
		case '{':
		case '[':
			return container(r, depth, (char) r->s[r->i]);
		case '"':
			return string(r);
		case 't':
			return literal(r, "true");
		case 'f':
			return literal(r, "false");
		case 'n':
			return literal(r, "null");
		default:
			return number(r);
	}
}

/*
 * Is s[0..n) exactly one JSON value (blanks around it allowed)?  If so,
 * appends it to out (if not NULL), compact, and returns 0; else -1 (out
 * may then hold part of it: the caller discards it).  *text_len (if not
 * NULL) is its length as PostgreSQL prints a jsonb, a blank after each ':'
 * and ',': what presence's 1 kB limit on a meta counts (near enough: jsonb
 * also drops duplicate keys and normalizes numbers).
 */
int
jsonv_copy(const char *s, size_t n, struct jbuf *out, size_t *text_len)
{
	struct reader r = {(const unsigned char *) s, n, 0, out, 0};
	size_t		before = out ? out->len : 0;

	blanks(&r);
	if (value(&r, 0))
		return -1;
	blanks(&r);
	if (r.i != n || (out && out->oom))
		return -1;
	if (text_len)
		*text_len = (out ? out->len - before : 0) + r.separators;
	return 0;
}

/*
 * Walks the object or array (open: '{' or '[') that is all of s[0..n)
 * (blanks around it allowed): item(r, arg) reads each member or element
 * and hands it on.  0, or -1 if s is not that or item() failed.
 */
static int
walk(const char *s, size_t n, char open, int (*item) (struct reader *r, void *arg),
	 void *arg)
{
	struct reader r = {(const unsigned char *) s, n, 0, NULL, 0};
	char		close = open == '{' ? '}' : ']';
	int			first = 1;

	blanks(&r);
	if (r.i >= n || r.s[r.i] != open)
		return -1;
	r.i++;
	for (;;)
	{
		blanks(&r);
		if (r.i < n && r.s[r.i] == close && first)
			break;
		if (!first)
		{
			if (r.i < n && r.s[r.i] == close)
				break;
			if (r.i >= n || r.s[r.i] != ',')
				return -1;
			r.i++;
			blanks(&r);
		}
		first = 0;
		if (item(&r, arg))
			return -1;
	}
	r.i++;
	blanks(&r);
	return r.i == n ? 0 : -1;
}

struct member_walk
{
	jsonv_member_fn fn;
	void	   *arg;
};

/* One "key": value of an object, to the caller's function. */
static int
member(struct reader *r, void *arg)
{
	struct member_walk *w = arg;
	char		key[JSONV_MAX_KEY];
	size_t		klen,
				at;
	int			k = decode_string(r->s, r->n, &r->i, key, sizeof(key), &klen);

	if (k == -1)
		return -1;
	blanks(r);
	if (r->i >= r->n || r->s[r->i] != ':')
		return -1;
	r->i++;
	blanks(r);
	at = r->i;
	if (value(r, 1))
		return -1;
	return w->fn(w->arg, k ? NULL : key, klen, (const char *) r->s + at, r->i - at);
}

/*
 * Calls fn(arg, key, key_len, value, value_len) for each member of the
 * object s[0..n) (blanks around it allowed), in order: key decoded (NULL if
 * longer than JSONV_MAX_KEY bytes), value the member's raw text.  Returns 0,
 * or -1 if s is not one well-formed object or fn returned non-zero.
 */
int
jsonv_members(const char *s, size_t n, jsonv_member_fn fn, void *arg)
{
	struct member_walk w = {fn, arg};

	return walk(s, n, '{', member, &w);
}

struct element_walk
{
	jsonv_element_fn fn;
	void	   *arg;
};

/* One element of an array, to the caller's function. */
static int
element(struct reader *r, void *arg)
{
	struct element_walk *w = arg;
	size_t		at = r->i;

	if (value(r, 1))
		return -1;
	return w->fn(w->arg, (const char *) r->s + at, r->i - at);
}

/*
 * Calls fn(arg, value, value_len) for each element of the array s[0..n)
 * (blanks around it allowed), in order, value as raw text.  Returns 0, or
 * -1 if s is not one well-formed array or fn returned non-zero.
 */
int
jsonv_elements(const char *s, size_t n, jsonv_element_fn fn, void *arg)
{
	struct element_walk w = {fn, arg};

	return walk(s, n, '[', element, &w);
}

/*
 * The string value v[0..n) decoded into out (cap bytes, not terminated),
 * its length in *len.  -1 if v is not a string or does not fit.
 */
int
jsonv_string(const char *v, size_t n, char *out, size_t cap, size_t *len)
{
	size_t		i = 0;

	if (decode_string((const unsigned char *) v, n, &i, out, cap, len) || i != n)
		return -1;
	return 0;
}

/* Is v[0..n) the literal word (null, true, false)? */
int
jsonv_is(const char *v, size_t n, const char *word)
{
	return n == strlen(word) && !memcmp(v, word, n);
}
