/*
 * strbuf.c - PostgreSQL array literals ({"a","b"}) for the relay's batched
 * queries, sent as text parameters: no quoting of SQL, only of array
 * elements.
 */
#include "relay.h"

#include <stdlib.h>
#include <string.h>

void
sb_add(struct strbuf *b, const char *s, size_t n)
{
	char	   *p;

	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap)
	{
		b->cap = (b->len + n + 1) * 2;
		p = realloc(b->p, b->cap);
		if (!p)
		{
			b->oom = 1;
			return;
		}
		b->p = p;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

/* Appends s as one element of a PostgreSQL array literal (after "{"). */
void
sb_add_elem(struct strbuf *b, const char *s)
{
	const char *q;

	sb_add(b, b->len > 1 ? ",\"" : "\"", b->len > 1 ? 2 : 1);
	for (q = s; *q; q++)
	{
		if (*q == '"' || *q == '\\')
		{
			sb_add(b, s, (size_t) (q - s));
			sb_add(b, "\\", 1);
			s = q;
		}
	}
	sb_add(b, s, strlen(s));
	sb_add(b, "\"", 1);
}

void
sb_free(struct strbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* Appends a NULL element. */
void
sb_add_null(struct strbuf *b)
{
	sb_add(b, b->len > 1 ? ",NULL" : "NULL", b->len > 1 ? 5 : 4);
}
