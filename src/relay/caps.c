/*
 * caps.c - how many sockets each user and each client address holds, so
 * that one token or one host cannot take every slot of the relay (or fill
 * presence.max_sessions for everybody): --max-sessions-per-user and
 * --max-connections-per-ip.
 *
 * Two hash tables of counts (hash.c), keyed by user id and by address (as
 * clientaddr.c gives it).
 */
#include "relay.h"

#include <stdlib.h>
#include <string.h>

struct count
{
	struct hnode node;
	int			n;
	char		key[];
};

static struct htable users,
			addrs;

static int
get(struct htable *t, const char *key)
{
	struct hnode *e = hash_find(t, key, strlen(key));

	return e ? lws_container_of(e, struct count, node)->n : 0;
}

/* Adds one for key; -1 if out of memory. */
static int
inc(struct htable *t, const char *key)
{
	size_t		n = strlen(key);
	struct hnode *e = hash_find(t, key, n);
	struct count *c;

	if (e)
	{
		lws_container_of(e, struct count, node)->n++;
		return 0;
	}
	if (!(c = malloc(sizeof(*c) + n + 1)))
		return -1;
	c->n = 1;
	memcpy(c->key, key, n + 1);
	hash_add(t, &c->node, c->key, n);
	return 0;
}

static void
dec(struct htable *t, const char *key)
{
	struct hnode *e = hash_find(t, key, strlen(key));
	struct count *c;

	if (!e)
		return;
	c = lws_container_of(e, struct count, node);
	if (--c->n > 0)
		return;
	hash_remove(t, e);
	free(c);
}

static void
free_count(struct hnode *e, void *arg)
{
	free(lws_container_of(e, struct count, node));
}

static void
table_free(struct htable *t)
{
	hash_each(t, free_count, NULL);
	hash_free(t);
}

int
caps_init(void)
{
	return hash_init(&users, 1024) || hash_init(&addrs, 1024) ? -1 : 0;
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
