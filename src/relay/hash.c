/*
 * hash.c - hash tables keyed by strings that strangers choose (user ids,
 * client addresses, channel names), for caps.c and channels.c.
 *
 * Intrusive: an entry embeds a struct hnode, which points at the entry's
 * own copy of its key.  Chained, doubled when there are more entries than
 * slots; the hash is FNV-1a seeded at random once per process, so that
 * keys chosen to collide cannot turn lookups into list walks.
 */
#include "relay.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

static uint64_t seed;
static int	seeded;

static uint64_t
hash(const char *s, size_t n)
{
	uint64_t	h = 0xcbf29ce484222325ULL ^ seed;
	size_t		i;

	for (i = 0; i < n; i++)
		h = (h ^ (unsigned char) s[i]) * 0x100000001b3ULL;
	return h ^ (h >> 29);
}

/* An empty table of nslots (a power of two) slots; -1 if out of memory. */
int
hash_init(struct htable *t, size_t nslots)
{
	if (!seeded)
	{
		if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
			seed = (uint64_t) lws_now_usecs();
		seeded = 1;
	}
	t->nslots = nslots;
	t->used = 0;
	t->slots = calloc(nslots, sizeof(*t->slots));
	return t->slots ? 0 : -1;
}

/* Doubles the slots once there are more entries than slots. */
static void
grow(struct htable *t)
{
	size_t		n = t->nslots * 2,
				i;
	struct hnode **slots = calloc(n, sizeof(*slots)),
			   *e,
			   *next;

	if (!slots)
		return;					/* longer chains, still correct */
	for (i = 0; i < t->nslots; i++)
		for (e = t->slots[i]; e; e = next)
		{
			next = e->next;
			e->next = slots[e->hash & (n - 1)];
			slots[e->hash & (n - 1)] = e;
		}
	free(t->slots);
	t->slots = slots;
	t->nslots = n;
}

/* The entry whose key is key[0..n), or NULL. */
struct hnode *
hash_find(const struct htable *t, const char *key, size_t n)
{
	uint64_t	h = hash(key, n);
	struct hnode *e;

	for (e = t->slots[h & (t->nslots - 1)]; e; e = e->next)
		if (e->hash == h && e->klen == n && !memcmp(e->key, key, n))
			return e;
	return NULL;
}

/* Adds e under key[0..n) (storage the entry owns, not copied). */
void
hash_add(struct htable *t, struct hnode *e, const char *key, size_t n)
{
	struct hnode **slot;

	e->key = key;
	e->klen = n;
	e->hash = hash(key, n);
	slot = &t->slots[e->hash & (t->nslots - 1)];
	e->next = *slot;
	*slot = e;
	if (++t->used > t->nslots)
		grow(t);
}

void
hash_remove(struct htable *t, struct hnode *e)
{
	struct hnode **p = &t->slots[e->hash & (t->nslots - 1)];

	while (*p && *p != e)
		p = &(*p)->next;
	if (*p)
	{
		*p = e->next;
		t->used--;
	}
	e->next = NULL;
}

/*
 * Calls fn(e, arg) for every entry; fn may remove (and free) the entry it
 * is given.
 */
void
hash_each(struct htable *t, void (*fn) (struct hnode *e, void *arg), void *arg)
{
	size_t		i;
	struct hnode *e,
			   *next;

	for (i = 0; t->slots && i < t->nslots; i++)
		for (e = t->slots[i]; e; e = next)
		{
			next = e->next;
			fn(e, arg);
		}
}

/* Frees the slots (not the entries). */
void
hash_free(struct htable *t)
{
	free(t->slots);
	memset(t, 0, sizeof(*t));
}
