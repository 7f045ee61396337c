/*-------------------------------------------------------------------------
 *
 * registry.c
 *	  The shared-memory registry of users and sessions: its memory, its
 *	  locks, and the operations backends perform on it.
 *
 * A heartbeat is one hash lookup and a few stores under one partition lock:
 * no WAL, no table, no NOTIFY.  Operations that may change what others see
 * set the worker's latch, so it announces the change within milliseconds.
 * No ERROR is raised while a partition lock is held with the registry half
 * changed: operations check, allocate, and only then link.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "commands/dbcommands.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/pg_bitutils.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/memutils.h"

#include "registry.h"

/*
 * Ids and meta of one session take this much of the string area on average;
 * a membership, its meta and a share of its channel's entry and name.
 */
#define STRING_BYTES_PER_SESSION	256
#define STRING_BYTES_PER_MEMBERSHIP	64
#define STRING_BYTES_PER_MESSAGE	64	/* a short status message per user */
#define STRING_BYTES_BASE			(4 * 1024 * 1024)

/* How long a call waits for the worker to load the registry. */
#define READY_WAIT_MS				5000

PresenceShared *presence_shared = NULL;
HTAB	   *presence_user_table = NULL;
HTAB	   *presence_session_table = NULL;

#define user_table presence_user_table
#define session_table presence_session_table

static dsa_area *string_area = NULL;

/*
 * Session hints: a direct-mapped array of session entries, a slot per
 * masked session hash, each holding the latest session created with that
 * slot (or none).  The session hash's low bits are its partition's, and
 * the mask keeps them, so a slot is only ever read or written under its
 * partition's lock, and it never points to a freed entry (freeing one clears
 * its slot).  A batch reads a slot ahead of time and prefetches the entry it
 * names, so that most of its lookups find their entry in the cache without
 * the hash table's bucket, which it cannot prefetch (dynahash keeps its
 * layout to itself); the others fall back to the table.  Twice as many slots
 * as sessions: about four in five live sessions own their slot.
 */
static PresenceSession **session_hints = NULL;
static uint32 hint_mask = 0;

/* What registry.h promises of the layout. */
#define ELEMENT_OFFSET(type, field) \
	(MAXALIGN(sizeof(HASHELEMENT)) + offsetof(type, field))
/* The user's flags are the bits just before its message pointer. */
StaticAssertDecl(ELEMENT_OFFSET(PresenceUser, message) < 128 &&
				 ELEMENT_OFFSET(PresenceSession, ids_inline) < 128,
				 "a heartbeat's fields must be in the first 128 bytes");
StaticAssertDecl(MAXALIGN(sizeof(HASHELEMENT)) + sizeof(PresenceUser) <= 256 &&
				 MAXALIGN(sizeof(HASHELEMENT)) + sizeof(PresenceSession) <= 256,
				 "registry elements must fit in 256 bytes");
StaticAssertDecl(offsetof(PresenceUser, key) == 0 &&
				 offsetof(PresenceSession, key) == 0,
				 "hash keys come first");

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static uint32 user_key_hash(const void *key, Size keysize);
static int	user_key_match(const void *key1, const void *key2, Size keysize);
static uint32 key_hash(const void *key, Size keysize);
static int	key_match(const void *key1, const void *key2, Size keysize);

/*
 * Ids and meta of the sessions, channel names and members' meta, users'
 * status messages: one area for all, sized for all.
 */
static Size
hint_slots(void)
{
	return pg_nextpower2_64(Max(2 * (uint64) presence_max_sessions, 1024));
}

static Size
string_area_size(void)
{
	return STRING_BYTES_BASE +
		(Size) presence_max_sessions * STRING_BYTES_PER_SESSION +
		(Size) presence_max_sessions * STRING_BYTES_PER_MESSAGE +
		(Size) presence_max_memberships * STRING_BYTES_PER_MEMBERSHIP;
}

static void
table_info(HASHCTL *info, Size keysize, Size entrysize,
		   HashValueFunc hash, HashCompareFunc match)
{
	memset(info, 0, sizeof(*info));
	info->keysize = keysize;
	info->entrysize = entrysize;
	info->hash = hash;
	info->match = match;
	info->num_partitions = PRESENCE_PARTITIONS;
}

Size
registry_shmem_size(void)
{
	Size		size = MAXALIGN(sizeof(PresenceShared));

	size = add_size(size, hash_estimate_size(presence_max_sessions,
											 REGISTRY_ENTRY_SIZE(PresenceUser)));
	size = add_size(size, hash_estimate_size(presence_max_sessions,
											 REGISTRY_ENTRY_SIZE(PresenceSession)));
	size = add_size(size, channels_shmem_size());
	size = add_size(size, string_area_size());
	size = add_size(size, mul_size(hint_slots(), sizeof(PresenceSession *)));
	return size;
}

static void
registry_shmem_request_hook(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(registry_shmem_size());
	RequestNamedLWLockTranche("presence", PRESENCE_PARTITIONS);
	RequestNamedLWLockTranche("presence_channels", CHANNEL_LOCKS);
}

/*
 * Creates or attaches the shared state.  Runs in the postmaster at start and
 * after every crash restart, when shared memory is new: every static pointer
 * is set again here.
 */
static void
registry_shmem_startup_hook(void)
{
	bool		found;
	HASHCTL		info;
	void	   *place;
	dsa_area   *area;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	presence_shared = NULL;
	user_table = NULL;
	session_table = NULL;
	string_area = NULL;
	session_hints = NULL;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);

	presence_shared = ShmemInitStruct("presence", sizeof(PresenceShared), &found);
	place = ShmemInitStruct("presence strings", string_area_size(), &found);
	session_hints = ShmemInitStruct("presence session hints",
									hint_slots() * sizeof(PresenceSession *),
									&found);
	hint_mask = hint_slots() - 1;
	if (!found)
	{
		memset(session_hints, 0, hint_slots() * sizeof(PresenceSession *));
		memset(presence_shared, 0, sizeof(PresenceShared));
		presence_shared->locks = GetNamedLWLockTranche("presence");
		presence_shared->channel_locks = GetNamedLWLockTranche("presence_channels");
		presence_shared->dsa_tranche = LWLockNewTrancheId();
		presence_shared->dsa_size = string_area_size();
		presence_shared->string_place = place;
		SpinLockInit(&presence_shared->mutex);
		presence_shared->state = REGISTRY_EMPTY;
		presence_shared->database_oid = InvalidOid;
		ConditionVariableInit(&presence_shared->ready_cv);
		ConditionVariableInit(&presence_shared->tick_cv);
		pg_atomic_init_u64(&presence_shared->ticks_started, 0);
		pg_atomic_init_u32(&presence_shared->live_sessions, 0);
		pg_atomic_init_u64(&presence_shared->change_counter, 0);
		pg_atomic_init_u64(&presence_shared->sweeps, 0);
		event_init();
		for (int i = 0; i < PRESENCE_PARTITIONS; i++)
			registry_partition_init(&presence_shared->partitions[i]);

		/*
		 * Limited to the place it is created in, the area never maps DSM
		 * segments, so its addresses are the same in every process and may
		 * be kept in hash keys.
		 */
		area = dsa_create_in_place(place, presence_shared->dsa_size,
								   presence_shared->dsa_tranche, NULL);
		dsa_set_size_limit(area, presence_shared->dsa_size);
		/* Children attach on their own (registry_attach). */
		dsa_detach(area);
	}

	table_info(&info, sizeof(PresenceUserKey), REGISTRY_ENTRY_SIZE(PresenceUser),
			   user_key_hash, user_key_match);
	user_table = ShmemInitHash("presence users",
							   presence_max_sessions, presence_max_sessions,
							   &info,
							   HASH_ELEM | HASH_FUNCTION | HASH_COMPARE |
							   HASH_PARTITION | HASH_FIXED_SIZE);
	table_info(&info, sizeof(PresenceKey), REGISTRY_ENTRY_SIZE(PresenceSession),
			   key_hash, key_match);
	session_table = ShmemInitHash("presence sessions",
								  presence_max_sessions, presence_max_sessions,
								  &info,
								  HASH_ELEM | HASH_FUNCTION | HASH_COMPARE |
								  HASH_PARTITION | HASH_FIXED_SIZE);
	channels_shmem_init(found);

	LWLockRelease(AddinShmemInitLock);
}

void
registry_request_shmem(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = registry_shmem_request_hook;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = registry_shmem_startup_hook;
}

/* Empties a partition's lists and wheels. */
void
registry_partition_init(PresencePartition *part)
{
	TimestampTz now = GetCurrentTimestamp();

	dlist_init(&part->users);
	wheel_init(&part->timeouts, now);
	wheel_init(&part->idle, now);
	wheel_init(&part->expiries, now);
	dlist_init(&part->grace);
	dlist_init(&part->user_changes);
	dlist_init(&part->session_changes);
	dlist_init(&part->active);
	dlist_init(&part->member_changes);
	dlist_init(&part->member_grace);
	part->nusers = 0;
	part->nsessions = 0;
	part->nmembers = 0;
	part->nactive = 0;
	/* Never back to a value a batch may have seen. */
	part->generation++;
}

/*
 * Attaches this process to the string area, once, on first use.
 */
void
registry_attach(void)
{
	MemoryContext old;
	void	   *place;

	if (string_area != NULL)
		return;

	LWLockRegisterTranche(presence_shared->dsa_tranche, "presence_strings");
	place = presence_shared->string_place;
	old = MemoryContextSwitchTo(TopMemoryContext);
	string_area = dsa_attach_in_place(place, NULL);
	dsa_pin_mapping(string_area);
	MemoryContextSwitchTo(old);
	on_shmem_exit(dsa_on_shmem_exit_release_in_place, PointerGetDatum(place));
}

/*
 * Raises the ERROR that explains why this call cannot use the registry, if
 * there is a reason: no preload, a standby, another database, or a registry
 * the worker has not loaded yet (then waits a little for it first).
 */
void
registry_check_preloaded(void)
{
	if (presence_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("presence must be loaded via shared_preload_libraries"),
				 errhint("Add presence to shared_preload_libraries in postgresql.conf and restart the server.")));
}

void
registry_check_usable(bool for_write)
{
	Oid			database_oid;
	TimestampTz deadline;

	registry_check_preloaded();

	if (RecoveryInProgress())
	{
		if (for_write)
			ereport(ERROR,
					(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
					 errmsg("cannot track presence during recovery"),
					 errhint("Call presence functions on the primary.")));
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("the presence registry is not available during recovery"),
				 errhint("Read the presence.users table, which the primary keeps up to date.")));
	}

	/*
	 * Read without the spinlock: this runs on every call, and the worker
	 * sets the field once, before the registry can be ready.
	 */
	database_oid = ((volatile PresenceShared *) presence_shared)->database_oid;
	if (OidIsValid(database_oid) ? database_oid != MyDatabaseId :
		strcmp(get_database_name(MyDatabaseId), presence_database) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("presence is tracked in database \"%s\", not in this one",
						presence_database),
				 errhint("Call presence functions in database \"%s\", or set presence.database and restart the server.",
						 presence_database)));

	if (likely(presence_shared->state == REGISTRY_READY))
	{
		registry_attach();
		return;
	}

	/* The worker loads the registry when it sees the extension: nudge it. */
	registry_wake_worker();
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), READY_WAIT_MS);
	ConditionVariablePrepareToSleep(&presence_shared->ready_cv);
	while (presence_shared->state != REGISTRY_READY)
	{
		long		left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(),
														   deadline);

		if (left <= 0 ||
			ConditionVariableTimedSleep(&presence_shared->ready_cv, left,
										PG_WAIT_EXTENSION))
			break;
	}
	ConditionVariableCancelSleep();
	if (presence_shared->state != REGISTRY_READY)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the presence registry is not ready"),
				 errdetail("The presence background worker has not loaded it within %d ms.",
						   READY_WAIT_MS),
				 errhint("Check that the \"presence worker\" process is running (pg_stat_activity) and the server log for its errors.")));
	registry_attach();
}

/*
 * Waits until a worker tick that starts after this call has finished, or
 * for at most a few sweep intervals if the worker is not running.
 */
void
registry_wait_for_tick(void)
{
	uint64		target = pg_atomic_read_u64(&presence_shared->ticks_started) + 1;
	TimestampTz deadline;

	registry_wake_worker();
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
										   2 * presence_sweep_interval_ms + 100);
	ConditionVariablePrepareToSleep(&presence_shared->tick_cv);
	while (pg_atomic_read_u64(&presence_shared->sweeps) < target)
	{
		long		left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(),
														   deadline);

		if (left <= 0 ||
			ConditionVariableTimedSleep(&presence_shared->tick_cv, left,
										PG_WAIT_EXTENSION))
			break;
	}
	ConditionVariableCancelSleep();
}

/*
 * Releases a partition lock, then wakes the worker if the operation made a
 * change others will see: it wakes to a lock it can take at once.
 */
void
registry_release(LWLock *lock, bool wake)
{
	LWLockRelease(lock);
	if (wake)
		registry_wake_worker();
}

/* Sets the latch a background process published in *slot, if it runs. */
static void
wake_latch(Latch **slot)
{
	Latch	   *latch;

	SpinLockAcquire(&presence_shared->mutex);
	latch = *slot;
	SpinLockRelease(&presence_shared->mutex);
	if (latch)
		SetLatch(latch);
}

void
registry_wake_worker(void)
{
	wake_latch(&presence_shared->worker_latch);
}

void
registry_wake_flusher(void)
{
	wake_latch(&presence_shared->flusher_latch);
}

/*
 * Hashing: the tables of users, sessions and members are partitioned by the
 * hash of the user id.
 */

static inline uint32
user_hash(const char *user, int len)
{
	return hash_bytes((const unsigned char *) user, len);
}

uint32
registry_user_hash(const char *user, int len)
{
	return user_hash(user, len);
}

static uint32
user_key_hash(const void *key, Size keysize)
{
	const PresenceUserKey *k = key;

	return user_hash(k->user, k->user_len);
}

static int
user_key_match(const void *key1, const void *key2, Size keysize)
{
	const PresenceUserKey *a = key1;
	const PresenceUserKey *b = key2;

	return a->user_len != b->user_len || memcmp(a->user, b->user, a->user_len) != 0;
}

/* A session's hash, with the low bits (the partition) of its user's. */
static inline uint32
session_hash(uint32 uhash, const char *session, int len)
{
	uint32		h = hash_combine(uhash, hash_bytes((const unsigned char *) session, len));

	return (h & ~(uint32) (PRESENCE_PARTITIONS - 1)) |
		(uhash & (PRESENCE_PARTITIONS - 1));
}

static uint32
key_hash(const void *key, Size keysize)
{
	const PresenceKey *k = key;
	uint32		uhash = user_hash(k->user, k->user_len);

	return k->session ? session_hash(uhash, k->session, k->session_len) : uhash;
}

static int
key_match(const void *key1, const void *key2, Size keysize)
{
	const PresenceKey *a = key1;
	const PresenceKey *b = key2;

	if (a->user_len != b->user_len || memcmp(a->user, b->user, a->user_len) != 0)
		return 1;
	if ((a->session == NULL) != (b->session == NULL))
		return 1;
	if (a->session &&
		(a->session_len != b->session_len ||
		 memcmp(a->session, b->session, a->session_len) != 0))
		return 1;
	return 0;
}

void
registry_lookup_init(RegistryLookup *l, const char *user, int user_len,
					 const char *session, int session_len)
{
	l->ukey.user = user;
	l->ukey.user_len = user_len;
	l->uhash = user_hash(user, user_len);
	l->skey.user = user;
	l->skey.user_len = user_len;
	l->skey.session = session;
	l->skey.session_len = session_len;
	l->shash = session ? session_hash(l->uhash, session, session_len) : 0;
	l->part = &presence_shared->partitions[l->uhash & (PRESENCE_PARTITIONS - 1)];
	l->lock = &presence_shared->locks[l->uhash & (PRESENCE_PARTITIONS - 1)].lock;
}

/* The hashes a lookup of (user, session) uses, for the batch (batch.c). */
void
registry_key_hashes(const PresenceKey *key, uint32 *uhash, uint32 *shash)
{
	*uhash = user_hash(key->user, key->user_len);
	*shash = session_hash(*uhash, key->session, key->session_len);
}

/*
 * The hash a table's element was filed under, from its entry: what a
 * lookup or a removal of the entry would otherwise hash its ids again for.
 */
static inline uint32
entry_hash(const void *entry)
{
	return ((const HASHELEMENT *)
			((const char *) entry - MAXALIGN(sizeof(HASHELEMENT))))->hashvalue;
}

/* Where the hint for a session hash is: to prefetch it. */
PresenceSession *const *
registry_hint_slot(uint32 shash)
{
	return &session_hints[shash & hint_mask];
}

/*
 * The session of a key whose hash registry_key_hashes gave, or NULL: from
 * its hint when it has it, else from the table.  Under the partition's lock.
 */
PresenceSession *
registry_find_session_key(const PresenceKey *key, uint32 shash)
{
	PresenceSession *s = session_hints[shash & hint_mask];

	if (s != NULL && entry_hash(s) == shash &&
		key_match(&s->key, key, sizeof(PresenceKey)) == 0)
		return s;
	return hash_search_with_hash_value(session_table, key, shash,
									   HASH_FIND, NULL);
}

/* A session's entry leaves the table: its slot no longer names it. */
static void
hint_forget(PresenceSession *session)
{
	PresenceSession **slot = &session_hints[entry_hash(session) & hint_mask];

	if (*slot == session)
		*slot = NULL;
}

/* Empties every slot, with every partition's lock held (registry_clear). */
void
registry_forget_hints(void)
{
	memset(session_hints, 0, (Size) (hint_mask + 1) * sizeof(PresenceSession *));
}

LWLock *
registry_partition_lock(int i)
{
	return &presence_shared->locks[i].lock;
}

PresenceUser *
registry_find_user(RegistryLookup *l)
{
	return hash_search_with_hash_value(user_table, &l->ukey, l->uhash,
									   HASH_FIND, NULL);
}

PresenceSession *
registry_find_session(RegistryLookup *l)
{
	return hash_search_with_hash_value(session_table, &l->skey, l->shash,
									   HASH_FIND, NULL);
}

/* Strings: NUL-terminated copies in the string area. */

dsa_pointer
registry_store_string(const char *data, int len, const char **copy)
{
	dsa_pointer dp;
	char	   *p;

	dp = dsa_allocate_extended(string_area, len + 1, DSA_ALLOC_NO_OOM);
	if (!DsaPointerIsValid(dp))
		return InvalidDsaPointer;
	p = dsa_get_address(string_area, dp);
	memcpy(p, data, len);
	p[len] = '\0';
	*copy = p;
	return dp;
}

void
registry_free_string(dsa_pointer dp)
{
	if (DsaPointerIsValid(dp))
		dsa_free(string_area, dp);
}

/* Copies a varlena (a Jsonb datum) into the string area. */
dsa_pointer
registry_store_jsonb(const void *jsonb, const void **copy)
{
	Size		len = VARSIZE(jsonb);
	dsa_pointer dp;
	void	   *p;

	dp = dsa_allocate_extended(string_area, len, DSA_ALLOC_NO_OOM);
	if (!DsaPointerIsValid(dp))
		return InvalidDsaPointer;
	p = dsa_get_address(string_area, dp);
	memcpy(p, jsonb, len);
	*copy = p;
	return dp;
}

/* Storage for n bytes in the string area, or InvalidDsaPointer. */
dsa_pointer
registry_allocate(Size n, void **address)
{
	dsa_pointer dp = dsa_allocate_extended(string_area, n, DSA_ALLOC_NO_OOM);

	*address = DsaPointerIsValid(dp) ? dsa_get_address(string_area, dp) : NULL;
	return dp;
}

void *
registry_address(dsa_pointer dp)
{
	return dsa_get_address(string_area, dp);
}

const char *
registry_string(dsa_pointer dp)
{
	return DsaPointerIsValid(dp) ? dsa_get_address(string_area, dp) : NULL;
}

/*
 * Creates the entry of a user not in the registry: visible, offline, with
 * no sessions.  NULL, with *full saying why, when there is no room.
 */
PresenceUser *
registry_create_user(RegistryLookup *l, RegistryFull *full)
{
	PresenceUserKey key = l->ukey;
	PresenceUser *user;
	dsa_pointer dp = InvalidDsaPointer;
	bool		inline_id = l->ukey.user_len < USER_INLINE_BYTES;
	bool		found;

	if (!inline_id)
	{
		dp = registry_store_string(l->ukey.user, l->ukey.user_len, &key.user);
		if (!DsaPointerIsValid(dp))
		{
			*full = REGISTRY_FULL_MEMORY;
			return NULL;
		}
	}
	user = hash_search_with_hash_value(user_table, &key, l->uhash,
									   HASH_ENTER_NULL, &found);
	if (user == NULL)
	{
		registry_free_string(dp);
		*full = REGISTRY_FULL_ENTRIES;
		return NULL;
	}
	Assert(!found);
	memset((char *) user + sizeof(PresenceUserKey), 0,
		   sizeof(PresenceUser) - sizeof(PresenceUserKey));
	if (inline_id)
	{
		/* Nobody else sees the entry before the caller's lock goes. */
		memcpy(user->id_inline, l->ukey.user, l->ukey.user_len);
		user->key.user = user->id_inline;
	}
	user->user_dp = dp;
	user->status = PRESENCE_OFFLINE;
	user->notified = PRESENCE_OFFLINE;
	user->visible = true;
	dlist_init(&user->sessions);
	slist_init(&user->members);
	dlist_push_tail(&l->part->users, &user->member_node);
	l->part->nusers++;
	return user;
}

/* Removes a user entry that nothing refers to and no list holds. */
void
registry_remove_user(PresencePartition *part, PresenceUser *user)
{
	PresenceUserKey key = user->key;
	dsa_pointer dp = user->user_dp;

	Assert(user->nrefs == 0 && !wheel_filed(&user->idle_timer) &&
		   !user->in_grace && user->message == NULL);
	if (user->in_changes)
		dlist_delete(&user->change_node);
	if (user->in_active)
	{
		dlist_delete(&user->active_node);
		part->nactive--;
	}
	dlist_delete(&user->member_node);
	part->nusers--;
	if (hash_search_with_hash_value(user_table, &key, entry_hash(user),
									HASH_REMOVE, NULL) == NULL)
		elog(ERROR, "presence user entry vanished from its table");
	registry_free_string(dp);
}

/*
 * Creates a live session of an existing user entry.  NULL, with *full
 * saying why, when there is no room; then nothing has changed.
 */
PresenceSession *
registry_create_session(RegistryLookup *l, PresenceUser *user,
						const char *meta, RegistryFull *full)
{
	PresenceKey key = l->skey;
	PresenceSession *session;
	dsa_pointer session_dp = InvalidDsaPointer;
	dsa_pointer meta_dp = InvalidDsaPointer;
	const char *meta_copy;
	int			ulen = l->skey.user_len;
	int			slen = l->skey.session_len;
	bool		inline_ids = ulen + 1 + slen + 1 <= SESSION_INLINE_BYTES;
	bool		found;

	key.user = user->key.user;
	if (!inline_ids)
	{
		session_dp = registry_store_string(l->skey.session, slen, &key.session);
		if (!DsaPointerIsValid(session_dp))
		{
			*full = REGISTRY_FULL_MEMORY;
			return NULL;
		}
	}
	if (meta)
	{
		meta_dp = registry_store_string(meta, strlen(meta), &meta_copy);
		if (!DsaPointerIsValid(meta_dp))
		{
			registry_free_string(session_dp);
			*full = REGISTRY_FULL_MEMORY;
			return NULL;
		}
	}
	session = hash_search_with_hash_value(session_table, &key, l->shash,
										  HASH_ENTER_NULL, &found);
	if (session == NULL)
	{
		registry_free_string(session_dp);
		registry_free_string(meta_dp);
		*full = REGISTRY_FULL_ENTRIES;
		return NULL;
	}
	Assert(!found);
	memset((char *) session + sizeof(PresenceKey), 0,
		   sizeof(PresenceSession) - sizeof(PresenceKey));
	if (inline_ids)
	{
		/* Both ids in the entry: a lookup's compare stays in its lines. */
		memcpy(session->ids_inline, l->skey.user, ulen);
		memcpy(session->ids_inline + ulen + 1, l->skey.session, slen);
		session->key.user = session->ids_inline;
		session->key.session = session->ids_inline + ulen + 1;
	}
	session->session_dp = session_dp;
	session->meta_dp = meta_dp;
	session->user = user;
	session_hints[l->shash & hint_mask] = session;
	slist_init(&session->memberships);
	session->ended = true;		/* registry_start_session makes it live */
	user->nrefs++;
	return session;
}

/*
 * Creates a session, and its user if the registry has none.  For a caller
 * that holds the partition's lock and has reserved the session.  NULL, with
 * *full saying why, when there is no room; then nothing has changed.
 */
PresenceSession *
registry_create_user_session(RegistryLookup *l, const char *meta,
							 RegistryFull *full, bool *new_user)
{
	PresenceUser *user = registry_find_user(l);
	PresenceSession *session;

	*new_user = user == NULL;
	if (user == NULL && (user = registry_create_user(l, full)) == NULL)
		return NULL;
	session = registry_create_session(l, user, meta, full);
	if (session == NULL && *new_user)
		registry_remove_user(l->part, user);
	return session;
}

/*
 * Makes a new or ended session live: on its user's list and the
 * partition's heartbeat list, counted, and queued for the worker to write.
 */
void
registry_start_session(PresencePartition *part, PresenceSession *session,
					   TimestampTz now)
{
	PresenceUser *user = session->user;

	Assert(session->ended);
	part->generation++;
	session->ended = false;
	session->connected_at = now;
	session->last_heartbeat = now;
	session->last_active = 0;	/* its user has the activity that started it */
	session->steady = false;
	dlist_push_tail(&user->sessions, &session->user_node);
	wheel_file(&part->timeouts, &session->timeout_timer,
			   now + (int64) presence_session_timeout_ms * 1000);
	user->nsessions++;
	part->nsessions++;
	registry_mark_session_changed(part, session);
}

/*
 * Counts one more live session, unless presence.max_sessions are live.  The
 * hash table may hold a few more entries than that; this is the limit.
 */
bool
registry_reserve_session(void)
{
	if (pg_atomic_fetch_add_u32(&presence_shared->live_sessions, 1) >=
		(uint32) presence_max_sessions)
	{
		pg_atomic_fetch_sub_u32(&presence_shared->live_sessions, 1);
		return false;
	}
	return true;
}

void
registry_release_session(void)
{
	pg_atomic_fetch_sub_u32(&presence_shared->live_sessions, 1);
}

/* Frees an ended session's entry, once its row needs nothing more. */
static void
registry_free_session(PresencePartition *part, PresenceSession *session)
{
	PresenceKey key = session->key;
	PresenceUser *user = session->user;
	dsa_pointer session_dp = session->session_dp;
	dsa_pointer meta_dp = session->meta_dp;

	Assert(session->ended && !session->in_changes);
	hint_forget(session);
	if (hash_search_with_hash_value(session_table, &key, entry_hash(session),
									HASH_REMOVE, NULL) == NULL)
		elog(ERROR, "presence session entry vanished from its table");
	registry_free_string(session_dp);
	registry_free_string(meta_dp);
	registry_user_unref(part, user);
}

/*
 * Takes back a session that registry_prepare_session created and nobody
 * has seen (its partition's lock was held all along): the entry goes, its
 * reservation too, and its user if created with it.
 */
void
registry_discard_session(PresencePartition *part, PresenceSession *session,
						 bool new_user)
{
	PresenceKey key = session->key;
	PresenceUser *user = session->user;
	dsa_pointer session_dp = session->session_dp;
	dsa_pointer meta_dp = session->meta_dp;

	Assert(session->ended && !session->in_changes && !session->persisted);
	hint_forget(session);
	if (hash_search_with_hash_value(session_table, &key, entry_hash(session),
									HASH_REMOVE, NULL) == NULL)
		elog(ERROR, "presence session entry vanished from its table");
	registry_free_string(session_dp);
	registry_free_string(meta_dp);
	user->nrefs--;
	if (new_user)
		registry_remove_user(part, user);
	registry_release_session();
}

/*
 * Drops one reference to a user entry (a session's or a member's).  The
 * entry may then go: the worker looks at it, without making a pending change
 * of its status look newer than it is.
 */
void
registry_user_unref(PresencePartition *part, PresenceUser *user)
{
	if (--user->nrefs == 0 && !user->in_changes)
		registry_mark_user_changed(part, user, 0);
}

/*
 * Ends a live session, however it ends.  Its entry stays, as a tombstone,
 * until the worker has deleted its row.  Returns whether the worker should
 * look now.
 */
bool
registry_end_session(PresencePartition *part, PresenceSession *session,
					 TimestampTz now)
{
	PresenceUser *user = session->user;
	bool		wake;

	Assert(!session->ended);
	part->generation++;
	/* Its channels first: their leaves go out before the user's offline. */
	wake = memberships_end_session(part, session, now);
	wheel_cancel(&session->timeout_timer);
	user->last_active = Max(user->last_active, session->last_active);
	dlist_delete(&session->user_node);
	session->ended = true;
	session->owner_pid = 0;
	user->nsessions--;
	part->nsessions--;
	registry_release_session();
	if (session->persisted || session->in_changes)
		registry_mark_session_changed(part, session);
	else
		registry_free_session(part, session);
	if (user->nsessions == 0)
		wake |= status_last_session_ended(part, user, now);
	return wake;
}

/*
 * Releases a session taken off the change list by the worker: frees it if
 * it has ended (its row is being deleted), else notes its row exists.
 */
void
registry_session_written(PresencePartition *part, PresenceSession *session)
{
	if (session->ended)
		registry_free_session(part, session);
	else
		session->persisted = true;
}

void
registry_mark_session_changed(PresencePartition *part, PresenceSession *session)
{
	if (!session->in_changes)
	{
		dlist_push_tail(&part->session_changes, &session->change_node);
		session->in_changes = true;
	}
}

void
registry_mark_user_changed(PresencePartition *part, PresenceUser *user,
						   TimestampTz when)
{
	user->changed_at = when;
	user->change_order = pg_atomic_fetch_add_u64(&presence_shared->change_counter, 1);
	if (!user->in_changes)
	{
		dlist_push_tail(&part->user_changes, &user->change_node);
		user->in_changes = true;
	}
}

/* Whether the worker may drop a user entry: nothing to keep or announce. */
bool
registry_user_evictable(const PresenceUser *user)
{
	return user->nrefs == 0 && !user->in_grace && user->visible &&
		user->status == PRESENCE_OFFLINE && user->notified == PRESENCE_OFFLINE &&
		user->message == NULL;
}

/* Raises the ERROR for a registry that has no room left. */
void
registry_report_full(RegistryFull full)
{
	event_count(full == REGISTRY_FULL_MEMORY ? EVENT_OUT_OF_MEMORY :
				full == REGISTRY_FULL_MEMBERSHIPS ? EVENT_MEMBERSHIPS_FULL :
				EVENT_REGISTRY_FULL);
	if (full == REGISTRY_FULL_MEMBERSHIPS)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("presence registry has no room for more channel memberships"),
				 errdetail("It holds presence.max_memberships = %d memberships.",
						   presence_max_memberships),
				 errhint("Raise presence.max_memberships and restart the server.")));
	if (full == REGISTRY_FULL_MEMORY)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("presence registry is out of memory for ids and meta"),
				 errdetail("presence.max_sessions = %d and presence.max_memberships = %d size it at %zu bytes.",
						   presence_max_sessions, presence_max_memberships,
						   presence_shared->dsa_size),
				 errhint("Store less in meta, or raise presence.max_sessions or presence.max_memberships and restart the server.")));
	ereport(ERROR,
			(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
			 errmsg("presence registry is full"),
			 errdetail("It holds presence.max_sessions = %d sessions.",
					   presence_max_sessions),
			 errhint("Raise presence.max_sessions and restart the server, or lower presence.session_timeout so that dead sessions leave sooner.")));
}

/* Whole-registry reads. */

/*
 * The last tick's parts, and the slowest tick's of the last one to two
 * minutes (worker.c keeps them).
 */
void
registry_get_tick_parts(PresenceTickParts *last, PresenceTickParts *slowest)
{
	SpinLockAcquire(&presence_shared->mutex);
	*last = presence_shared->last_tick;
	*slowest = presence_shared->slowest_tick.total_ms >=
		presence_shared->slowest_before.total_ms ?
		presence_shared->slowest_tick : presence_shared->slowest_before;
	SpinLockRelease(&presence_shared->mutex);
}

void
registry_get_stats(PresenceStats *stats)
{
	memset(stats, 0, sizeof(*stats));
	for (int i = 0; i < PRESENCE_PARTITIONS; i++)
	{
		LWLockAcquire(registry_partition_lock(i), LW_SHARED);
		stats->users += presence_shared->partitions[i].nusers;
		stats->sessions += presence_shared->partitions[i].nsessions;
		LWLockRelease(registry_partition_lock(i));
	}
	stats->max_sessions = presence_max_sessions;
	stats->memberships = pg_atomic_read_u32(&presence_shared->live_memberships);
	stats->max_memberships = presence_max_memberships;
	stats->channels = pg_atomic_read_u32(&presence_shared->nchannels);
	SpinLockAcquire(&presence_shared->mutex);
	stats->sweeps = pg_atomic_read_u64(&presence_shared->sweeps);
	stats->notifications = presence_shared->notifications;
	stats->flushes = presence_shared->flushes;
	stats->last_sweep_ms = presence_shared->last_sweep_ms;
	stats->last_flush_ms = presence_shared->last_flush_ms;
	stats->worker_pid = presence_shared->worker_pid;
	stats->ready = presence_shared->state == REGISTRY_READY;
	SpinLockRelease(&presence_shared->mutex);
}
