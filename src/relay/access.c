/*
 * access.c - which channels a client may join or watch: its token's
 * "channels" claim, an array of channel names and prefix patterns ending
 * in "*" (["room:*", "team:9"]; "*" alone is every channel).  A token
 * without the claim, and an anonymous watcher, may use no channel.
 *
 * The claim is read once, when the token is checked (auth.c), into a
 * struct grants the client keeps; a claim that is not an array of strings
 * of 1 to RELAY_MAX_CHANNEL bytes (plus the "*"), or that has more than
 * RELAY_MAX_GRANTS of them, refuses the token.  Pure code.
 */
#include "relay.h"

#include <stdlib.h>
#include <string.h>

struct grant
{
	size_t		len;			/* of name, without the "*" */
	int			prefix;			/* name is a prefix ("room:*") */
	char	   *name;
};

struct grants
{
	int			n;
	struct grant g[];
};

/* One element of the claim, appended to gs (jsonv_elements()'s callback). */
static int
add(void *arg, const char *v, size_t vn)
{
	struct grants *gs = arg;
	char		name[RELAY_MAX_CHANNEL + 2];
	size_t		len;
	struct grant *g;

	if (gs->n >= RELAY_MAX_GRANTS ||
		jsonv_string(v, vn, name, sizeof(name) - 1, &len) || !len)
		return -1;
	g = &gs->g[gs->n];
	g->prefix = name[len - 1] == '*';
	g->len = len - (size_t) g->prefix;
	if (g->len > RELAY_MAX_CHANNEL || !(g->name = malloc(g->len + 1)))
		return -1;
	memcpy(g->name, name, g->len);
	g->name[g->len] = '\0';
	gs->n++;
	return 0;
}

/*
 * The grants of a claim, from its JSON text (NULL: the token has none, or
 * an empty array).  *bad is set if the claim is there but not as
 * documented.
 */
struct grants *
access_parse(const char *claim, int *bad)
{
	struct grants *gs;

	*bad = 0;
	if (!claim)
		return NULL;
	gs = calloc(1, sizeof(*gs) + RELAY_MAX_GRANTS * sizeof(struct grant));
	if (!gs || jsonv_elements(claim, strlen(claim), add, gs))
	{
		*bad = 1;
		access_free(gs);
		return NULL;
	}
	if (!gs->n)
	{
		access_free(gs);
		return NULL;
	}
	return gs;
}

/* May a client with these grants join or watch channel[0..len)? */
int
access_allows(const struct grants *gs, const char *channel, size_t len)
{
	int			i;

	for (i = 0; gs && i < gs->n; i++)
	{
		const struct grant *g = &gs->g[i];

		if (g->prefix ? len >= g->len && !memcmp(channel, g->name, g->len)
			: len == g->len && !memcmp(channel, g->name, len))
			return 1;
	}
	return 0;
}

void
access_free(struct grants *gs)
{
	int			i;

	if (!gs)
		return;
	for (i = 0; i < gs->n; i++)
		free(gs->g[i].name);
	free(gs);
}
