/*-------------------------------------------------------------------------
 *
 * channels.c
 *	  The channel half of the registry: channel entries, members and
 *	  memberships, their memory, and the rules that keep a channel's
 *	  occupancy and reconnect grace.
 *
 * A member (a user in a channel) lives in its user's partition and changes
 * only under that partition's lock, like the user's sessions: joining,
 * leaving, updating and the end of a session take that one lock, plus the
 * channel's lock, after it, only to find the channel or to add or drop a
 * member.  A channel's member list and member count are guarded by the
 * channel's lock; its occupancy (members others can see) is an atomic
 * counter that members change under their own partition's lock.
 *
 * Memory: the channel table's element is only a key; the channel entry, with
 * its name, is allocated in the string area.  Members are a fixed-size
 * shared hash table, memberships a fixed pool: both hold
 * presence.max_memberships, the pool exactly so.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "storage/shmem.h"

#include "registry.h"

HTAB	   *presence_channel_table = NULL;
HTAB	   *presence_member_table = NULL;

#define channel_table presence_channel_table
#define member_table presence_member_table

typedef struct MemberKey
{
	PresenceChannel *channel;
	PresenceUser *user;
} MemberKey;

StaticAssertDecl(offsetof(PresenceMember, channel) == 0 &&
				 offsetof(PresenceMember, user) == sizeof(void *),
				 "a member's key comes first");
StaticAssertDecl(sizeof(PresenceMember) <= 96 && sizeof(PresenceMembership) <= 56,
				 "shared memory per membership is counted on these sizes");

static uint32 channel_key_hash(const void *key, Size keysize);
static int	channel_key_match(const void *key1, const void *key2, Size keysize);
static uint32 member_key_hash(const void *key, Size keysize);

/* What the channel tables and the pool of memberships take. */
Size
channels_shmem_size(void)
{
	Size		size = 0;

	size = add_size(size, hash_estimate_size(presence_max_memberships,
											 sizeof(PresenceChannelKey)));
	size = add_size(size, hash_estimate_size(presence_max_memberships,
											 sizeof(PresenceMember)));
	size = add_size(size, mul_size(presence_max_memberships,
								   sizeof(PresenceMembership)));
	return size;
}

/*
 * Creates or attaches the tables and the pool, in the registry's shmem
 * startup hook.  'found' says whether the registry's shared state existed:
 * if not, the pool is new too and every membership goes on the free list.
 */
void
channels_shmem_init(bool found)
{
	HASHCTL		info;
	bool		pool_found;
	PresenceMembership *pool;

	pool = ShmemInitStruct("presence memberships",
						   mul_size(presence_max_memberships,
									sizeof(PresenceMembership)),
						   &pool_found);
	if (!found)
	{
		presence_shared->pool = pool;
		SpinLockInit(&presence_shared->pool_mutex);
		slist_init(&presence_shared->free_memberships);
		for (int i = presence_max_memberships - 1; i >= 0; i--)
			slist_push_head(&presence_shared->free_memberships,
							&pool[i].member_node);
		pg_atomic_init_u32(&presence_shared->live_memberships, 0);
		pg_atomic_init_u32(&presence_shared->nchannels, 0);
	}

	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(PresenceChannelKey);
	info.entrysize = sizeof(PresenceChannelKey);
	info.hash = channel_key_hash;
	info.match = channel_key_match;
	info.num_partitions = CHANNEL_LOCKS;
	channel_table = ShmemInitHash("presence channels",
								  presence_max_memberships,
								  presence_max_memberships, &info,
								  HASH_ELEM | HASH_FUNCTION | HASH_COMPARE |
								  HASH_PARTITION | HASH_FIXED_SIZE);

	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(MemberKey);
	info.entrysize = sizeof(PresenceMember);
	info.hash = member_key_hash;
	info.num_partitions = PRESENCE_PARTITIONS;
	member_table = ShmemInitHash("presence members",
								 presence_max_memberships,
								 presence_max_memberships, &info,
								 HASH_ELEM | HASH_FUNCTION |
								 HASH_PARTITION | HASH_FIXED_SIZE);
}

/* Hashing and locks. */

/* A channel name's hash: which lock and which of the table's buckets. */
uint32
channel_hash(const char *name, int len)
{
	return hash_bytes((const unsigned char *) name, len);
}

/* The lock of a channel, from its hash. */
LWLock *
channel_lock(uint32 hash)
{
	return &presence_shared->channel_locks[hash & (CHANNEL_LOCKS - 1)].lock;
}

/* The channel table's hash and match functions: by name. */
static uint32
channel_key_hash(const void *key, Size keysize)
{
	const PresenceChannelKey *k = key;

	return channel_hash(k->name, k->name_len);
}

static int
channel_key_match(const void *key1, const void *key2, Size keysize)
{
	const PresenceChannelKey *a = key1;
	const PresenceChannelKey *b = key2;

	return a->name_len != b->name_len || memcmp(a->name, b->name, a->name_len) != 0;
}

/* A member's hash, with the low bits (the partition) of its user's. */
static inline uint32
member_hash(const PresenceChannel *channel, uint32 uhash)
{
	uint32		h = hash_combine(uhash, channel->hash);

	return (h & ~(uint32) (PRESENCE_PARTITIONS - 1)) |
		(uhash & (PRESENCE_PARTITIONS - 1));
}

/*
 * Only for dynahash's sake: every lookup passes the hash it computed.  Keys
 * are compared as bytes (the two pointers), dynahash's default.
 */
static uint32
member_key_hash(const void *key, Size keysize)
{
	const MemberKey *k = key;

	return member_hash(k->channel, registry_user_hash(k->user->key.user,
													  k->user->key.user_len));
}

/* The channel entry a table element's key points into. */
static inline PresenceChannel *
channel_of_key(PresenceChannelKey *key)
{
	return (PresenceChannel *) (key->name - offsetof(PresenceChannel, name));
}

/* Channels: the caller holds the channel's lock (exclusively to change). */

/* The channel of that name, or NULL. */
PresenceChannel *
channel_find(const char *name, int len, uint32 hash)
{
	PresenceChannelKey key = {name, len};
	PresenceChannelKey *found;

	found = hash_search_with_hash_value(channel_table, &key, hash, HASH_FIND,
										NULL);
	return found ? channel_of_key(found) : NULL;
}

/*
 * Creates the entry of a channel the table does not hold, with no members.
 * NULL, with *full saying why, when there is no room.
 */
PresenceChannel *
channel_create(const char *name, int len, uint32 hash, RegistryFull *full)
{
	PresenceChannel *channel;
	PresenceChannelKey key;
	PresenceChannelKey *entry;
	dsa_pointer dp;
	bool		found;

	dp = registry_allocate(offsetof(PresenceChannel, name) + len + 1,
						   (void **) &channel);
	if (!DsaPointerIsValid(dp))
	{
		*full = REGISTRY_FULL_MEMORY;
		return NULL;
	}
	dlist_init(&channel->members);
	channel->dp = dp;
	channel->nmembers = 0;
	pg_atomic_init_u32(&channel->occupancy, 0);
	pg_atomic_init_u32(&channel->pins, 0);
	channel->hash = hash;
	channel->name_len = len;
	memcpy(channel->name, name, len);
	channel->name[len] = '\0';

	key.name = channel->name;
	key.name_len = len;
	entry = hash_search_with_hash_value(channel_table, &key, hash,
										HASH_ENTER_NULL, &found);
	if (entry == NULL)
	{
		registry_free_string(dp);
		*full = REGISTRY_FULL_MEMBERSHIPS;
		return NULL;
	}
	Assert(!found);
	*entry = key;
	pg_atomic_fetch_add_u32(&presence_shared->nchannels, 1);
	return channel;
}

/*
 * Frees a channel left without members, unless a members() call is walking
 * it: the worker frees it with its last member once the walk is over.  The
 * caller holds the channel's lock exclusively.
 */
void
channel_drop_if_empty(PresenceChannel *channel)
{
	PresenceChannelKey key;

	if (channel->nmembers > 0 || pg_atomic_read_u32(&channel->pins) > 0)
		return;
	key.name = channel->name;
	key.name_len = channel->name_len;
	if (hash_search_with_hash_value(channel_table, &key, channel->hash,
									HASH_REMOVE, NULL) == NULL)
		elog(ERROR, "presence channel entry vanished from its table");
	pg_atomic_fetch_sub_u32(&presence_shared->nchannels, 1);
	registry_free_string(channel->dp);
}

/* Appends to a short list: a user's channels, a member's sessions. */
static void
append_to_short_list(slist_head *head, slist_node *node)
{
	slist_node *tail = &head->head;

	while (tail->next != NULL)
		tail = tail->next;
	node->next = NULL;
	tail->next = node;
}

/* Members: the caller holds the user's partition lock. */

/* The user's member entry in the channel, or NULL. */
PresenceMember *
member_find(PresenceChannel *channel, PresenceUser *user, uint32 uhash)
{
	MemberKey	key = {channel, user};

	return hash_search_with_hash_value(member_table, &key,
									   member_hash(channel, uhash),
									   HASH_FIND, NULL);
}

/*
 * Creates the member entry of a user in a channel, with no memberships yet.
 * The caller also holds the channel's lock exclusively.  NULL when the table
 * is full.
 */
PresenceMember *
member_create(PresencePartition *part, PresenceChannel *channel,
			  PresenceUser *user, uint32 uhash, RegistryFull *full)
{
	MemberKey	key = {channel, user};
	PresenceMember *member;
	bool		found;

	member = hash_search_with_hash_value(member_table, &key,
										 member_hash(channel, uhash),
										 HASH_ENTER_NULL, &found);
	if (member == NULL)
	{
		*full = REGISTRY_FULL_MEMBERSHIPS;
		return NULL;
	}
	Assert(!found);
	memset((char *) member + sizeof(MemberKey), 0,
		   sizeof(PresenceMember) - sizeof(MemberKey));
	slist_init(&member->memberships);
	member->partition = uhash & (PRESENCE_PARTITIONS - 1);
	dlist_push_tail(&channel->members, &member->channel_node);
	channel->nmembers++;
	append_to_short_list(&user->members, &member->user_node);
	user->nrefs++;
	part->nmembers++;
	return member;
}

/*
 * Takes a member out of its channel's list (the caller holds the channel's
 * lock exclusively), its user's list and the table.
 */
static void
member_unlink(PresencePartition *part, PresenceMember *member)
{
	PresenceChannel *channel = member->channel;
	PresenceUser *user = member->user;
	MemberKey	key = {channel, user};
	uint32		uhash = registry_user_hash(user->key.user, user->key.user_len);

	dlist_delete(&member->channel_node);
	channel->nmembers--;
	slist_delete(&user->members, &member->user_node);
	if (hash_search_with_hash_value(member_table, &key,
									member_hash(channel, uhash),
									HASH_REMOVE, NULL) == NULL)
		elog(ERROR, "presence member entry vanished from its table");
	part->nmembers--;
}

/*
 * Frees a member that has nothing left to show, announce or write.  False,
 * changing nothing, while a members() call walks its channel.  Takes the
 * channel's lock, after the partition's that the caller holds exclusively.
 */
bool
member_free(PresencePartition *part, PresenceMember *member)
{
	PresenceChannel *channel = member->channel;
	PresenceUser *user = member->user;
	LWLock	   *lock = channel_lock(channel->hash);

	Assert(member_evictable(member) && member->list == MEMBER_ON_NONE);
	LWLockAcquire(lock, LW_EXCLUSIVE);
	if (pg_atomic_read_u32(&channel->pins) > 0)
	{
		LWLockRelease(lock);
		return false;
	}
	member_unlink(part, member);
	channel_drop_if_empty(channel);
	LWLockRelease(lock);
	registry_user_unref(part, user);
	return true;
}

/*
 * Undoes member_create for a join that found no room for the rest; the
 * caller still holds the channel's lock exclusively.
 */
void
member_discard(PresencePartition *part, PresenceMember *member)
{
	PresenceUser *user = member->user;

	Assert(member->nlive == 0 && member->list == MEMBER_ON_NONE);
	member_unlink(part, member);
	user->nrefs--;
}

/* The rules. */

/* Live memberships, or the channel's reconnect grace after the last one. */
bool
member_has_membership(const PresenceMember *member)
{
	return member->nlive > 0 || member->in_grace;
}

/* What members() and occupancy() show: invisible users are in no channel. */
bool
member_shown(const PresenceMember *member)
{
	return member_has_membership(member) &&
		status_as_seen(member->user) != PRESENCE_OFFLINE;
}

/* Whether the worker may free the member: nothing to show or announce. */
bool
member_evictable(const PresenceMember *member)
{
	return !member_has_membership(member) && !member->notified &&
		!member->counted && !member->dirty;
}

/* Keeps the channel's occupancy in step with member_shown(). */
void
member_recount(PresenceMember *member)
{
	bool		shown = member_shown(member);

	if (shown == member->counted)
		return;
	if (shown)
		pg_atomic_fetch_add_u32(&member->channel->occupancy, 1);
	else
		pg_atomic_fetch_sub_u32(&member->channel->occupancy, 1);
	member->counted = shown;
}

/* After a change of what others see of the user: every channel it is in. */
void
members_recount_user(PresenceUser *user)
{
	slist_iter	iter;

	slist_foreach(iter, &user->members)
		member_recount(slist_container(PresenceMember, user_node, iter.cur));
}

/*
 * Queues the member for the worker.  The first change since the worker last
 * took it gives its place in the order of notifications: the member's events
 * (join, then updates, then leave) go out together, in that order, there.
 */
void
member_mark_changed(PresencePartition *part, PresenceMember *member,
					TimestampTz when)
{
	if (member->list == MEMBER_ON_CHANGES)
		return;
	if (member->list == MEMBER_ON_GRACE)
		dlist_delete(&member->list_node);
	dlist_push_tail(&part->member_changes, &member->list_node);
	member->list = MEMBER_ON_CHANGES;
	member->changed_at = when;
	member->change_order = pg_atomic_fetch_add_u64(&presence_shared->change_counter, 1);
}

/*
 * Files a member in grace, taken by the worker, on the partition's grace
 * list, which stays in grace_since order (the worker takes members in about
 * that order, so the walk back from the tail is short).
 */
void
member_grace_file(PresencePartition *part, PresenceMember *member)
{
	dlist_iter	iter;

	Assert(member->in_grace && member->list == MEMBER_ON_NONE);
	member->list = MEMBER_ON_GRACE;
	dlist_reverse_foreach(iter, &part->member_grace)
	{
		PresenceMember *other = dlist_container(PresenceMember, list_node, iter.cur);

		if (other->grace_since <= member->grace_since)
		{
			dlist_insert_after(iter.cur, &member->list_node);
			return;
		}
	}
	dlist_push_head(&part->member_grace, &member->list_node);
}

/*
 * Ends the grace of members whose last membership ended longer ago than
 * presence.reconnect_grace: they leave their channels, as of the moment the
 * grace ran out.  Runs before the users' grace (status_sweep), so that a
 * user's leaves go out before the offline that the same disconnect causes.
 */
void
member_grace_sweep(PresencePartition *part, TimestampTz now)
{
	int64		grace = (int64) presence_reconnect_grace_ms * 1000;

	while (!dlist_is_empty(&part->member_grace))
	{
		PresenceMember *member = dlist_head_element(PresenceMember, list_node,
													&part->member_grace);

		if (member->grace_since > now - grace)
			break;
		dlist_delete(&member->list_node);
		member->list = MEMBER_ON_NONE;
		member->in_grace = false;
		member_recount(member);
		member_mark_changed(part, member, member->grace_since + grace);
	}
}

/* Memberships. */

/* The session's membership among the member's, or NULL. */
PresenceMembership *
membership_of(PresenceMember *member, PresenceSession *session)
{
	slist_iter	iter;

	slist_foreach(iter, &member->memberships)
	{
		PresenceMembership *ms = slist_container(PresenceMembership,
												 member_node, iter.cur);

		if (ms->session == session)
			return ms;
	}
	return NULL;
}

/* A free membership from the pool, or NULL when max_memberships are live. */
PresenceMembership *
membership_alloc(void)
{
	slist_node *node = NULL;

	SpinLockAcquire(&presence_shared->pool_mutex);
	if (!slist_is_empty(&presence_shared->free_memberships))
		node = slist_pop_head_node(&presence_shared->free_memberships);
	SpinLockRelease(&presence_shared->pool_mutex);
	if (node == NULL)
		return NULL;
	pg_atomic_fetch_add_u32(&presence_shared->live_memberships, 1);
	return slist_container(PresenceMembership, member_node, node);
}

/* Gives a membership back to the pool. */
void
membership_release(PresenceMembership *ms)
{
	SpinLockAcquire(&presence_shared->pool_mutex);
	slist_push_head(&presence_shared->free_memberships, &ms->member_node);
	SpinLockRelease(&presence_shared->pool_mutex);
	pg_atomic_fetch_sub_u32(&presence_shared->live_memberships, 1);
}

/*
 * Makes the session a member of the member's channel, with the given meta
 * (taken over), last in join order.  A member in its grace is back.
 */
void
membership_link(PresencePartition *part, PresenceMembership *ms,
				PresenceMember *member, PresenceSession *session,
				dsa_pointer meta_dp, TimestampTz now)
{
	ms->member = member;
	ms->session = session;
	ms->meta_dp = meta_dp;
	ms->joined_at = now;
	ms->update_pending = false;
	append_to_short_list(&member->memberships, &ms->member_node);
	append_to_short_list(&session->memberships, &ms->session_node);
	session->nmemberships++;
	member->nlive++;
	if (member->in_grace)
	{
		member->in_grace = false;
		if (member->list == MEMBER_ON_GRACE)
		{
			dlist_delete(&member->list_node);
			member->list = MEMBER_ON_NONE;
		}
	}
	member->dirty = true;
	member_recount(member);
	member_mark_changed(part, member, now);
}

/*
 * Ends one membership.  The member's last one starts the channel's grace.
 * Returns whether the worker should look now rather than at its next sweep:
 * with no grace, a leave is to be announced.
 */
bool
membership_end(PresencePartition *part, PresenceMembership *ms, TimestampTz now)
{
	PresenceMember *member = ms->member;
	PresenceSession *session = ms->session;

	slist_delete(&member->memberships, &ms->member_node);
	slist_delete(&session->memberships, &ms->session_node);
	session->nmemberships--;
	registry_free_string(ms->meta_dp);
	membership_release(ms);
	member->nlive--;
	member->dirty = true;
	if (member->nlive == 0)
	{
		member->in_grace = true;
		member->grace_since = now;
	}
	member_mark_changed(part, member, now);
	return member->nlive == 0 && member->notified &&
		presence_reconnect_grace_ms == 0;
}

/* Ends every membership of a session that ends, in the order they began. */
bool
memberships_end_session(PresencePartition *part, PresenceSession *session,
						TimestampTz now)
{
	bool		wake = false;

	while (!slist_is_empty(&session->memberships))
	{
		PresenceMembership *ms = slist_container(PresenceMembership, session_node,
												 slist_head_node(&session->memberships));

		wake |= membership_end(part, ms, now);
	}
	return wake;
}

/*
 * Forgets every channel, member and membership: the extension was dropped.
 * The caller holds every partition lock; the channel locks are taken here.
 */
void
channels_clear(void)
{
	HASH_SEQ_STATUS seq;
	PresenceMember *member;
	PresenceChannelKey *key;
	PresenceMembership *pool = presence_shared->pool;

	for (int i = 0; i < CHANNEL_LOCKS; i++)
		LWLockAcquire(&presence_shared->channel_locks[i].lock, LW_EXCLUSIVE);

	hash_seq_init(&seq, member_table);
	while ((member = hash_seq_search(&seq)) != NULL)
	{
		MemberKey	mkey = {member->channel, member->user};
		slist_iter	iter;

		slist_foreach(iter, &member->memberships)
			registry_free_string(slist_container(PresenceMembership, member_node,
												 iter.cur)->meta_dp);
		hash_search(member_table, &mkey, HASH_REMOVE, NULL);
	}
	hash_seq_init(&seq, channel_table);
	while ((key = hash_seq_search(&seq)) != NULL)
	{
		PresenceChannelKey copy = *key;
		dsa_pointer dp = channel_of_key(key)->dp;

		hash_search(channel_table, &copy, HASH_REMOVE, NULL);
		registry_free_string(dp);
	}

	SpinLockAcquire(&presence_shared->pool_mutex);
	slist_init(&presence_shared->free_memberships);
	for (int i = presence_max_memberships - 1; i >= 0; i--)
		slist_push_head(&presence_shared->free_memberships, &pool[i].member_node);
	SpinLockRelease(&presence_shared->pool_mutex);
	pg_atomic_write_u32(&presence_shared->live_memberships, 0);
	pg_atomic_write_u32(&presence_shared->nchannels, 0);

	for (int i = CHANNEL_LOCKS - 1; i >= 0; i--)
		LWLockRelease(&presence_shared->channel_locks[i].lock);
}
