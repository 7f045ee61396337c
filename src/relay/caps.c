/*
 * caps.c - how many sockets each user and each client address holds, so
 * that one token or one host cannot take every slot of the relay (or fill
 * presence.max_sessions for everybody): --max-sessions-per-user and
 * --max-connections-per-ip.
 *
 * Two hash tables of counts, keyed by user id and by address (as
 * clientaddr.c gives it).  The hash is seeded at random, so that keys
 * chosen to collide cannot turn lookups into list walks.
 */
#include "relay.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

struct count
{
	struct count *next;
	int			n;
	char		key[];
};

struct counts
{
	struct count **slots;
	size_t		nslots,
				used;
};

static struct counts users,
			addrs;
static uint64_t seed;

/* FNV-1a, seeded. */
static uint64_t
hash(const char *s)
{
	uint64_t	h = 0xcbf29ce484222325ULL ^ seed;

	for (; *s; s++)
		h = (h ^ (unsigned char) *s) * 0x100000001b3ULL;
	return h ^ (h >> 29);
}

static int
table_init(struct counts *t)
{
	t->nslots = 1024;
	t->used = 0;
	t->slots = calloc(t->nslots, sizeof(*t->slots));
	return t->slots ? 0 : -1;
}

/* Doubles the slots once there are more keys than slots. */
static void
table_grow(struct counts *t)
{
	size_t		n = t->nslots * 2,
				i;
	struct count **slots = calloc(n, sizeof(*slots)),
			   *e,
			   *next;

	if (!slots)
		return;					/* longer chains, still correct */
	for (i = 0; i < t->nslots; i++)
		for (e = t->slots[i]; e; e = next)
		{
			next = e->next;
			e->next = slots[hash(e->key) & (n - 1)];
			slots[hash(e->key) & (n - 1)] = e;
		}
	free(t->slots);
	t->slots = slots;
	t->nslots = n;
}

static struct count **
find(struct counts *t, const char *key)
{
	struct count **e = &t->slots[hash(key) & (t->nslots - 1)];

	while (*e && strcmp((*e)->key, key))
		e = &(*e)->next;
	return e;
}

static int
get(struct counts *t, const char *key)
{
	struct count **e = find(t, key);

	return *e ? (*e)->n : 0;
}

/* Adds one for key; -1 if out of memory. */
static int
inc(struct counts *t, const char *key)
{
	struct count **e = find(t, key);
	size_t		n = strlen(key) + 1;

	if (*e)
	{
		(*e)->n++;
		return 0;
	}
	*e = malloc(sizeof(**e) + n);
	if (!*e)
		return -1;
	(*e)->next = NULL;
	(*e)->n = 1;
	memcpy((*e)->key, key, n);
	if (++t->used > t->nslots)
		table_grow(t);
	return 0;
}

static void
dec(struct counts *t, const char *key)
{
	struct count **e = find(t, key),
			   *gone;

	if (!*e || --(*e)->n > 0)
		return;
	gone = *e;
	*e = gone->next;
	free(gone);
	t->used--;
}

static void
table_free(struct counts *t)
{
	size_t		i;
	struct count *e,
			   *next;

	for (i = 0; t->slots && i < t->nslots; i++)
		for (e = t->slots[i]; e; e = next)
		{
			next = e->next;
			free(e);
		}
	free(t->slots);
	memset(t, 0, sizeof(*t));
}

int
caps_init(void)
{
	if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
		seed = (uint64_t) lws_now_usecs();
	return table_init(&users) || table_init(&addrs) ? -1 : 0;
}

void
caps_cleanup(void)
{
	table_free(&users);
	table_free(&addrs);
}

/*
 * Would one more socket for user (NULL: anonymous) from addr pass the
 * caps?  NULL if so, else the name of the cap it would break.
 */
const char *
caps_refuse(const char *user, const char *addr)
{
	if (relay_opts.max_connections_per_ip &&
		get(&addrs, addr) >= relay_opts.max_connections_per_ip)
		return "max-connections-per-ip";
	if (user && relay_opts.max_sessions_per_user &&
		get(&users, user) >= relay_opts.max_sessions_per_user)
		return "max-sessions-per-user";
	return NULL;
}

/* Counts c (its user, if any, and addr) until caps_remove(). */
void
caps_add(struct client *c, const char *addr)
{
	if (c->counted || !(c->addr = strdup(addr)))
		return;
	if (inc(&addrs, addr))
	{
		free(c->addr);
		c->addr = NULL;
		return;
	}
	if (c->user && inc(&users, c->user))
	{
		dec(&addrs, addr);
		free(c->addr);
		c->addr = NULL;
		return;
	}
	c->counted = 1;
}

void
caps_remove(struct client *c)
{
	if (c->counted)
	{
		dec(&addrs, c->addr);
		if (c->user)
			dec(&users, c->user);
	}
	c->counted = 0;
	free(c->addr);
	c->addr = NULL;
}
