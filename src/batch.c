/*-------------------------------------------------------------------------
 *
 * batch.c
 *	  heartbeat_many: the heartbeats of many sessions in one call, each
 *	  partition's lock taken once or twice per batch rather than once per
 *	  heartbeat.  sql_api.c has validated every id.
 *
 * The batch is sorted by partition, the callers' order kept within one, and
 * goes through the registry twice:
 *
 *	look	partition by partition, under its lock in shared mode: find each
 *			session.  The lookups are the costly part; shared, they hold back
 *			no reader and no other batch's look, and the worker waits for one
 *			partition's at most.
 *	apply	under the locks of every partition the batch touches, taken in
 *			partition order and held together: a partition whose generation
 *			moved since its look (a session started or ended there) is looked
 *			at again; sessions the registry does not hold live are readied
 *			(the user's share, the registry's room), and only when all of
 *			them can be opened is anything changed: the heartbeats of live
 *			sessions and the opening of the others, in the callers' order,
 *			each the way heartbeat() does it.  So a batch that a limit refuses
 *			changes nothing, and no process sees half a batch.
 *
 * Nothing else takes two partition locks but in partition order (the
 * worker and every call take one at a time; clearing takes all in order),
 * so holding several cannot deadlock.  The apply step only writes
 * timestamps into entries it already found, prefetched ahead: it holds the
 * locks for a fraction of the look's time.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/hsearch.h"

#include "registry.h"

#if defined(__GNUC__) || defined(__clang__)
#define prefetch(p)		__builtin_prefetch(p)
#else
#define prefetch(p)		((void) 0)
#endif

/* How far ahead of the one in hand an entry is fetched. */
#define PREFETCH_DISTANCE	8

/*
 * A session entry's fields that a lookup and a heartbeat touch span the
 * first two cache lines of its element (registry.h): the key and the
 * timestamps, then the flags and the ids kept inline.
 */
static inline void
prefetch_entry(const PresenceSession *s)
{
	if (s != NULL)
	{
		prefetch(s);
		prefetch((const char *) s - MAXALIGN(sizeof(HASHELEMENT)) + 64);
	}
}

/* One element of the batch, with its hashes. */
typedef struct BatchItem
{
	PresenceKey key;
	uint32		uhash;
	uint32		shash;
} BatchItem;

/* What the apply step does with an element. */
typedef enum BatchPlan
{
	PLAN_LIVE,					/* a live session: its heartbeat */
	PLAN_AGAIN,					/* opened by an earlier element: heartbeat */
	PLAN_REVIVE,				/* an ended entry, opened again */
	PLAN_CREATE,				/* a new entry, opened */
	PLAN_CREATE_USER			/* a new entry and its user's, opened */
} BatchPlan;

typedef struct Batch
{
	int			n;
	BatchItem  *items;			/* sorted by partition */
	int			bounds[PRESENCE_PARTITIONS + 1];	/* partition p's items:
													 * bounds[p] to
													 * bounds[p + 1] */
	uint64		seen[PRESENCE_PARTITIONS];	/* generation at the look */
	PresenceSession **found;	/* the live session, or NULL; then the
								 * session readied for it */
	uint8	   *plan;			/* BatchPlan */
	int			nunknown;		/* elements with no live session */
	HTAB	   *readied;		/* sessions readied, to tell duplicates */
} Batch;

static inline int
partition_of(uint32 uhash)
{
	return uhash & (PRESENCE_PARTITIONS - 1);
}

/*
 * Hashes every element and sorts them by partition, keeping the callers'
 * order within each: a counting sort, two passes.
 */
static void
batch_sort(Batch *b, const PresenceId *users, const PresenceId *sessions)
{
	BatchItem  *hashed = palloc_extended(sizeof(BatchItem) * b->n, MCXT_ALLOC_HUGE);
	int			next[PRESENCE_PARTITIONS];

	memset(b->bounds, 0, sizeof(b->bounds));
	for (int i = 0; i < b->n; i++)
	{
		BatchItem  *it = &hashed[i];

		it->key.user = users[i].data;
		it->key.user_len = users[i].len;
		it->key.session = sessions[i].data;
		it->key.session_len = sessions[i].len;
		registry_key_hashes(&it->key, &it->uhash, &it->shash);
		b->bounds[partition_of(it->uhash) + 1]++;
	}
	for (int p = 0; p < PRESENCE_PARTITIONS; p++)
	{
		b->bounds[p + 1] += b->bounds[p];
		next[p] = b->bounds[p];
	}
	b->items = palloc_extended(sizeof(BatchItem) * b->n, MCXT_ALLOC_HUGE);
	for (int i = 0; i < b->n; i++)
		b->items[next[partition_of(hashed[i].uhash)]++] = hashed[i];
	pfree(hashed);
}

/*
 * Finds the live session of each element of partition p, under its lock;
 * returns how many have none.
 */
static int
batch_find(Batch *b, int p)
{
	int			unknown = 0;
	int			end = b->bounds[p + 1];

	for (int i = b->bounds[p]; i < end; i++)
	{
		PresenceSession *s;

		/* Two steps ahead: the slot, then the entry the slot names. */
		if (i + 2 * PREFETCH_DISTANCE < end)
			prefetch(registry_hint_slot(b->items[i + 2 * PREFETCH_DISTANCE].shash));
		if (i + PREFETCH_DISTANCE < end)
			prefetch_entry(*registry_hint_slot(b->items[i + PREFETCH_DISTANCE].shash));
		s = registry_find_session_key(&b->items[i].key, b->items[i].shash);

		if (s != NULL && s->ended)
			s = NULL;
		b->found[i] = s;
		unknown += s == NULL;
	}
	return unknown;
}

/* The look: each partition in turn, under its lock in shared mode. */
static void
batch_look(Batch *b)
{
	b->nunknown = 0;
	for (int p = 0; p < PRESENCE_PARTITIONS; p++)
	{
		LWLock	   *lock = registry_partition_lock(p);

		if (b->bounds[p] == b->bounds[p + 1])
			continue;
		LWLockAcquire(lock, LW_SHARED);
		b->seen[p] = presence_shared->partitions[p].generation;
		b->nunknown += batch_find(b, p);
		LWLockRelease(lock);
	}
}

/* Takes (or releases) the locks of every partition the batch touches. */
static void
batch_lock(Batch *b, bool acquire)
{
	for (int p = 0; p < PRESENCE_PARTITIONS; p++)
	{
		if (b->bounds[p] == b->bounds[p + 1])
			continue;
		if (acquire)
			LWLockAcquire(registry_partition_lock(p), LW_EXCLUSIVE);
		else
			LWLockRelease(registry_partition_lock(p));
	}
}

/*
 * With the locks held: looks again at the partitions where a session
 * started or ended since the look, so that every element's session is
 * live or not as of now.
 */
static void
batch_refresh(Batch *b)
{
	for (int p = 0; p < PRESENCE_PARTITIONS; p++)
	{
		uint64		generation = presence_shared->partitions[p].generation;

		if (b->bounds[p] == b->bounds[p + 1] || b->seen[p] == generation)
			continue;
		for (int i = b->bounds[p]; i < b->bounds[p + 1]; i++)
			b->nunknown -= b->found[i] == NULL;
		b->nunknown += batch_find(b, p);
		b->seen[p] = generation;
	}
}

/* Whether a session was readied for an earlier element of the batch. */
static bool
batch_was_readied(Batch *b, PresenceSession *s)
{
	return b->readied != NULL &&
		hash_search(b->readied, &s, HASH_FIND, NULL) != NULL;
}

/* Remembers a session readied for an element. */
static void
batch_note_readied(Batch *b, PresenceSession *s)
{
	if (b->readied == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(PresenceSession *);
		ctl.entrysize = sizeof(PresenceSession *);
		ctl.hcxt = CurrentMemoryContext;
		b->readied = hash_create("presence batch", Max(16, b->nunknown), &ctl,
								 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	hash_search(b->readied, &s, HASH_ENTER, NULL);
}

/*
 * Takes back what batch_ready readied, up to element 'upto' (excluded), in
 * the reverse order: nothing of it was seen, the locks being held all
 * along.
 */
static void
batch_unready(Batch *b, int upto)
{
	for (int i = upto - 1; i >= 0; i--)
	{
		PresenceSession *s = b->found[i];
		PresencePartition *part =
			&presence_shared->partitions[partition_of(b->items[i].uhash)];

		switch ((BatchPlan) b->plan[i])
		{
			case PLAN_LIVE:
			case PLAN_AGAIN:
				break;
			case PLAN_REVIVE:
				s->user->nsessions--;
				registry_release_session();
				break;
			case PLAN_CREATE:
			case PLAN_CREATE_USER:
				s->user->nsessions--;
				registry_discard_session(part, s, b->plan[i] == PLAN_CREATE_USER);
				break;
		}
	}
}

/*
 * With the locks held: readies a session for every element that has no
 * live one, as heartbeat() would open it, checking the user's share and
 * the registry's room.  A readied session counts among its user's live
 * sessions at once (and stops counting just before it is started, which
 * counts it again), so the next one of the same user is checked against
 * it.  Returns CONNECT_OPENED, or why not having changed nothing, with
 * *failed the element refused.
 */
static ConnectResult
batch_ready(Batch *b, RegistryFull *full, int *failed)
{
	for (int i = 0; i < b->n; i++)
	{
		BatchItem  *it = &b->items[i];
		RegistryLookup l;
		PresenceSession *s;
		ConnectResult result;
		bool		new_user;
		bool		revive;

		b->plan[i] = PLAN_LIVE;
		if (b->found[i] != NULL)
			continue;
		registry_lookup_init(&l, it->key.user, it->key.user_len,
							 it->key.session, it->key.session_len);
		s = registry_find_session(&l);
		if (s != NULL && batch_was_readied(b, s))
		{
			b->found[i] = s;
			b->plan[i] = PLAN_AGAIN;
			continue;
		}
		/* Not live: an ended entry, or none. */
		revive = s != NULL;
		result = registry_prepare_session(&l, &s, NULL, full, &new_user);
		if (result != CONNECT_OPENED)
		{
			batch_unready(b, i);
			*failed = i;
			return result;
		}
		b->plan[i] = revive ? PLAN_REVIVE :
			new_user ? PLAN_CREATE_USER : PLAN_CREATE;
		b->found[i] = s;
		s->user->nsessions++;
		batch_note_readied(b, s);
	}
	return CONNECT_OPENED;
}

/*
 * With the locks held and everything readied: the heartbeats and the
 * openings, partition by partition in the callers' order.  Returns how
 * many elements found their session live; *wake, whether the worker
 * should look now.
 */
static int
batch_apply(Batch *b, bool active, bool *wake)
{
	TimestampTz now = GetCurrentTimestamp();
	int			live = 0;

	*wake = false;
	for (int p = 0; p < PRESENCE_PARTITIONS; p++)
	{
		PresencePartition *part = &presence_shared->partitions[p];
		int			end = b->bounds[p + 1];

		for (int i = b->bounds[p]; i < end; i++)
		{
			PresenceSession *s = b->found[i];

			if (i + PREFETCH_DISTANCE < end)
				prefetch_entry(b->found[i + PREFETCH_DISTANCE]);
			if (b->plan[i] == PLAN_LIVE || b->plan[i] == PLAN_AGAIN)
			{
				*wake |= registry_session_alive(part, s, now, active);
				live++;
				continue;
			}
			s->user->nsessions--;
			*wake |= registry_open_session(part, s, false, active, now);
		}
	}
	return live;
}

/*
 * heartbeat_many: keeps each (users[i], sessions[i]) alive, opening those
 * the registry does not hold live as heartbeat() would, all or none.
 * Returns how many were live; raises 53400, having changed nothing, when a
 * limit refuses one of the sessions to open.  A full registry gets one
 * worker tick to free entries, as connect gives it.
 */
int
registry_heartbeat_many(const PresenceId *users, const PresenceId *sessions,
						int n, bool active)
{
	Batch		b = {0};
	int			live = 0;

	if (n == 0)
		return 0;
	b.n = n;
	batch_sort(&b, users, sessions);
	b.found = palloc_extended(sizeof(PresenceSession *) * n, MCXT_ALLOC_HUGE);
	b.plan = palloc_extended(n, MCXT_ALLOC_HUGE);
	batch_look(&b);

	for (int attempt = 0;; attempt++)
	{
		ConnectResult result = CONNECT_OPENED;
		RegistryFull full = REGISTRY_FULL_ENTRIES;
		int			failed = -1;
		bool		wake;

		batch_lock(&b, true);
		batch_refresh(&b);
		if (b.nunknown > 0)
			result = batch_ready(&b, &full, &failed);
		else
			memset(b.plan, PLAN_LIVE, n);
		if (result == CONNECT_OPENED)
		{
			live = batch_apply(&b, active, &wake);
			batch_lock(&b, false);
			if (wake)
				registry_wake_worker();
			break;
		}
		batch_lock(&b, false);
		if (b.readied)
		{
			hash_destroy(b.readied);
			b.readied = NULL;
		}
		if (result == CONNECT_USER_FULL)
		{
			PresenceId	user = {b.items[failed].key.user,
			b.items[failed].key.user_len};

			registry_report_user_full(user);
		}
		if (attempt > 0)
			registry_report_full(full);
		/* Ended sessions and offline users leave at the worker's next tick. */
		registry_wait_for_tick();
		batch_look(&b);
	}
	return live;
}
