/*-------------------------------------------------------------------------
 *
 * registry.h
 *	  The shared-memory registry's layout, for the files that work on it
 *	  directly: registry.c (memory, hashing, locks), status.c (the status
 *	  rules) and the worker's side of registry.c (sweep, collect, load).
 *
 * Users and sessions live in two fixed-size shared hash tables, partitioned
 * by the hash of the user id, so one user's entry and all of its sessions
 * are guarded by the same LWLock.  Ids and meta live in a DSA area created in
 * place in the main shared memory segment, never grown beyond it, so their
 * addresses are the same in every process.
 *
 * Each partition files its deadlines on timing wheels (wheel.h), so the
 * worker's sweep only looks at entries whose deadline has come, and keeps
 * lists for the rest:
 *	timeouts	live sessions, by session timeout deadline
 *	idle		online users, by idle timeout deadline
 *	grace		users whose last session ended, earliest first
 *	changes		users, sessions and channel members the worker still has to
 *				write or announce
 *	active		users active since the last flush
 *	member grace	channel members whose last session there left
 *
 * Channels (version 1.1) add three structures.  A channel entry per channel
 * name, found through a small table with locks of its own; a member entry
 * per (channel, user), in a table partitioned like the others by the user,
 * so that joining, leaving and a session's end take only the user's
 * partition lock (and, to add or drop a member, the channel's lock after
 * it, never the other way round); and a membership per (channel, session),
 * from a fixed pool, on its member's and its session's lists.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PRESENCE_REGISTRY_H
#define PRESENCE_REGISTRY_H

#include "lib/ilist.h"
#include "storage/condition_variable.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/spin.h"
#include "utils/dsa.h"
#include "utils/hsearch.h"

#include "presence.h"
#include "wheel.h"

#define PRESENCE_PARTITIONS		16	/* a power of two */

/*
 * Ids that fit are kept in their entry rather than in the string area: a
 * heartbeat then compares them without touching another cache line.
 */
#define USER_INLINE_BYTES		40
#define SESSION_INLINE_BYTES	64

/*
 * Hash keys.  Lookups point them at the caller's bytes; stored entries point
 * them at their copies (in the entry, or in the DSA area).
 */
typedef struct PresenceUserKey
{
	const char *user;
	uint32		user_len;
} PresenceUserKey;

typedef struct PresenceKey
{
	const char *user;
	const char *session;
	uint16		user_len;
	uint16		session_len;
} PresenceKey;

struct PresenceMember;
struct PresenceMembership;

/*
 * The fields a heartbeat reads and writes follow the id, within the first
 * 128 bytes of the element (REGISTRY_ENTRY_SIZE), which is 256 bytes.
 */
typedef struct PresenceUser
{
	PresenceUserKey key;		/* must be first */
	char		id_inline[USER_INLINE_BYTES];
	TimestampTz last_active;
	WheelTimer	idle_timer;		/* while online, or away with
								 * presence.offline_after */
	int			nsessions;		/* live sessions */
	uint8		status;			/* PresenceStatus: the true status, frozen
								 * during grace */
	uint8		notified;		/* PresenceStatus last announced, as others
								 * saw it */
	/* One bit each, so that the element stays 256 bytes. */
	bool		in_active:1;	/* on the partition's active list */
	bool		visible:1;
	bool		in_grace:1;
	bool		in_changes:1;
	bool		persisted:1;	/* has a row in presence.users */
	bool		loading:1;		/* read from the tables, not yet settled */
	bool		visible_changed:1;	/* since its row was last written */
	bool		message_pending:1;	/* its status message changed since the
									 * worker last took it */
	bool		message_notified:1; /* listeners were told its message, and
									 * not of an offline since */
	struct PresenceMessage *message;	/* its status message, or NULL */
	dsa_pointer user_dp;		/* key.user's storage, unless in id_inline */
	uint32		batch_id;		/* last worker batch that wrote its row */
	int			nrefs;			/* live sessions plus ended ones not yet
								 * deleted from presence.sessions */
	TimestampTz persisted_active;	/* last_active as last written */
	TimestampTz grace_since;	/* when the last session ended */
	TimestampTz changed_at;		/* when the last change took effect */
	uint64		change_order;	/* when it was recorded, as a counter */
	dlist_head	sessions;
	dlist_node	member_node;	/* partition's users */
	dlist_node	grace_node;
	dlist_node	change_node;
	dlist_node	active_node;
	slist_head	members;		/* its PresenceMembers, oldest first */
} PresenceUser;

/*
 * A user's status message (version 1.1), in the string area: text of any
 * length up to the limit, and its expiry timer, cost the user entry only a
 * pointer.
 */
typedef struct PresenceMessage
{
	WheelTimer	timer;			/* on the partition's expiry wheel, if it
								 * expires */
	struct PresenceUser *user;
	dsa_pointer dp;				/* this entry's own storage */
	TimestampTz expires_at;		/* 0: never */
	char		text[FLEXIBLE_ARRAY_MEMBER];	/* NUL-terminated */
} PresenceMessage;

/*
 * A heartbeat writes the fields that follow the key, reads the flags and
 * compares ids of up to about 50 bytes, all within the first 128 bytes of
 * the element (REGISTRY_ENTRY_SIZE), which is 256 bytes.
 */
typedef struct PresenceSession
{
	PresenceKey key;			/* must be first */
	PresenceUser *user;
	TimestampTz last_heartbeat;
	TimestampTz last_active;	/* latest activity here, or 0 */
	bool		ended;			/* waiting for its row to be deleted */
	bool		bound;
	bool		persisted;		/* has a row in presence.sessions */
	bool		in_changes;
	bool		steady;			/* its user is online, on the active list,
								 * its idle timer filed: activity here need
								 * only be written here */
	int			owner_pid;		/* backend of a bound session, else 0 */
	char		ids_inline[SESSION_INLINE_BYTES];
	dsa_pointer session_dp;		/* key.session's storage, unless in
								 * ids_inline (with a copy of key.user) */
	dsa_pointer meta_dp;		/* NUL-terminated JSON text, or invalid */
	TimestampTz connected_at;
	dlist_node	user_node;		/* user's sessions */
	WheelTimer	timeout_timer;	/* while live */
	dlist_node	change_node;
	slist_head	memberships;	/* its channels, in join order */
	int			nmemberships;
} PresenceSession;

/*
 * A channel: found by name in the channel table, whose element holds only
 * the key; the entry itself, with the name, is allocated in the string area
 * when the first member joins and freed by the worker with the last member,
 * so the table costs little per slot.  members and nmembers are guarded by
 * the channel's lock; occupancy and pins are atomics: occupancy() reads the
 * one, and members() holds the other while it visits the partitions, so
 * that neither the channel nor its members are freed meanwhile.
 */
typedef struct PresenceChannel
{
	dlist_head	members;		/* PresenceMember.channel_node */
	dsa_pointer dp;				/* this entry's own storage */
	int32		nmembers;
	pg_atomic_uint32 occupancy; /* members others can see */
	pg_atomic_uint32 pins;		/* members() calls walking it */
	uint32		hash;			/* of the name */
	uint32		name_len;
	char		name[FLEXIBLE_ARRAY_MEMBER];	/* NUL-terminated */
} PresenceChannel;

/* The channel table's element: the key, pointing into the entry. */
typedef struct PresenceChannelKey
{
	const char *name;
	uint32		name_len;
} PresenceChannelKey;

/*
 * A user in a channel.  It lives in the user's partition, under its lock,
 * while the user has memberships there, during the channel's reconnect
 * grace after the last one ended, and until the worker has announced and
 * written what changed.  'notified' is what listeners were last told: that
 * the member is in the channel (a join with no leave since, and no offline
 * of its user since).  'counted' is whether it counts in the channel's
 * occupancy: the rule members() applies.
 */
typedef struct PresenceMember
{
	PresenceChannel *channel;	/* key, with user */
	PresenceUser *user;
	slist_head	memberships;	/* live ones, in join order */
	dlist_node	channel_node;	/* channel's members */
	slist_node	user_node;		/* user's members */
	dlist_node	list_node;		/* partition's member changes or grace */
	TimestampTz grace_since;	/* when the last membership ended */
	TimestampTz changed_at;		/* first change the worker has not taken */
	uint64		change_order;	/* when it was recorded, as a counter */
	uint16		nlive;			/* live memberships */
	uint8		partition;
	uint8		list;			/* MEMBER_ON_* */
	/* One byte of flags: a member costs 96 bytes, 112 with dynahash's. */
	bool		in_grace:1;
	bool		notified:1;
	bool		counted:1;
	bool		dirty:1;		/* memberships changed since last written */
	bool		persisted:1;	/* may have rows in presence.memberships */
} PresenceMember;

#define MEMBER_ON_NONE		0
#define MEMBER_ON_CHANGES	1
#define MEMBER_ON_GRACE		2

/* A session in a channel, from the pool; freed when it ends. */
typedef struct PresenceMembership
{
	PresenceMember *member;
	PresenceSession *session;
	slist_node	member_node;	/* member's, in join order; the pool's free list */
	slist_node	session_node;	/* session's */
	dsa_pointer meta_dp;		/* a Jsonb datum, or invalid */
	TimestampTz joined_at;
	bool		update_pending; /* meta changed since announced */
} PresenceMembership;


/*
 * What a hash table entry of the type takes: padded so that the element
 * (dynahash's header, then the entry) is a multiple of PG_CACHE_LINE_SIZE.
 * A fixed-size shared table's elements are carved from chunks aligned to it,
 * so every element starts on such a boundary, and a heartbeat touches the
 * same few lines of each entry rather than whatever lines its fields
 * straddle.
 */
#define REGISTRY_ENTRY_SIZE(type) \
	(TYPEALIGN(PG_CACHE_LINE_SIZE, MAXALIGN(sizeof(HASHELEMENT)) + sizeof(type)) - \
	 MAXALIGN(sizeof(HASHELEMENT)))

typedef struct PresencePartition
{
	dlist_head	users;
	PresenceWheel timeouts;
	PresenceWheel idle;
	PresenceWheel expiries;		/* users' status messages */
	dlist_head	grace;
	dlist_head	user_changes;
	dlist_head	session_changes;
	dlist_head	active;
	dlist_head	member_changes; /* PresenceMember.list_node */
	dlist_head	member_grace;	/* PresenceMember.list_node, by grace_since */
	int			nusers;
	int			nsessions;		/* live ones */
	int			nmembers;
	int			nactive;		/* users on the active list */
	uint64		generation;		/* counts sessions started and ended: a
								 * batch that saw it unchanged knows its
								 * live sessions still are (batch.c) */
} PresencePartition;

typedef enum PresenceRegistryState
{
	REGISTRY_EMPTY = 0,			/* nothing loaded: worker not started, or no
								 * extension in presence.database */
	REGISTRY_READY				/* loaded from the tables, being tracked */
} PresenceRegistryState;

#define CHANNEL_LOCKS			16	/* a power of two */

/* One kind of event for the server log (events.c). */
#define EVENT_MESSAGE_BYTES		256
typedef struct PresenceEventLog
{
	pg_atomic_uint64 count;		/* times since its last line */
	TimestampTz last_line;		/* when that was written; 0: never */
	int			sqlerrcode;		/* of the latest time */
	char		message[EVENT_MESSAGE_BYTES];	/* its message */
} PresenceEventLog;

/*
 * Where one worker tick's time went, in milliseconds (presence.tick_parts()).
 * The parts follow each other; total_ms is the whole tick, which also has
 * its start (a transaction, a look at the extension) and end.
 */
typedef struct PresenceTickParts
{
	TimestampTz at;				/* when it started; 0: no tick yet */
	double		total_ms;
	double		sweep_ms;		/* applying the timeouts */
	double		collect_ms;		/* taking out the changes and rows */
	double		activity_ms;	/* of which, the last activity of users
								 * active since the last flush */
	double		lock_wait_ms;	/* of sweep and collect, waiting for
								 * partition locks */
	double		journal_ms;		/* appending to presence.journal */
	double		notify_ms;		/* numbering the changes and queueing the
								 * NOTIFYs */
	double		commit_ms;		/* the commit */
	double		queue_ms;		/* of which, PostgreSQL's notification
								 * queue written and the commit record */
	int64		changes;		/* notifications */
	int64		rows;			/* users, sessions and members journaled */
	int64		active_examined;	/* active users whose last activity it
									 * looked at */
} PresenceTickParts;

typedef struct PresenceShared
{
	LWLockPadded *locks;		/* PRESENCE_PARTITIONS of them */
	LWLockPadded *channel_locks;	/* CHANNEL_LOCKS of them */
	PresenceMembership *pool;	/* presence.max_memberships of them */
	int			dsa_tranche;
	Size		dsa_size;
	void	   *string_place;	/* where the string area lives */

	slock_t		mutex;			/* guards the fields below, up to the CVs */
	PresenceRegistryState state;
	Oid			database_oid;	/* set by the worker once connected */
	Oid			extension_oid;	/* the extension the registry was loaded for */
	int			worker_pid;
	Latch	   *worker_latch;
	Latch	   *flusher_latch;
	bool		resync_needed;	/* the tables may differ from the registry */
	bool		merge_requested;	/* rows were added to the tables by
									 * someone else (a restore) */
	double		last_sweep_ms;
	double		last_flush_ms;
	PresenceTickParts last_tick;
	PresenceTickParts slowest_tick;	/* of the current window */
	PresenceTickParts slowest_before;	/* of the window before */
	TimestampTz window_start;
	uint64		notifications;
	uint64		flushes;

	ConditionVariable ready_cv;
	ConditionVariable tick_cv;	/* broadcast at the end of each tick */
	pg_atomic_uint64 ticks_started;
	pg_atomic_uint32 live_sessions;	/* counted against max_sessions */
	slock_t		pool_mutex;		/* guards free_memberships */
	slist_head	free_memberships;
	pg_atomic_uint32 live_memberships;	/* taken from the pool */
	pg_atomic_uint32 nchannels;
	pg_atomic_uint64 change_counter;
	pg_atomic_uint64 sweeps;	/* ticks finished */
	PresenceEventLog events[PRESENCE_EVENTS];	/* last_line, sqlerrcode and
												 * message under mutex */

	PresencePartition partitions[PRESENCE_PARTITIONS];
} PresenceShared;

extern PresenceShared *presence_shared;
extern HTAB *presence_user_table;
extern HTAB *presence_session_table;
extern HTAB *presence_channel_table;
extern HTAB *presence_member_table;

/* A user (and maybe session) id, hashed, with the partition it maps to. */
typedef struct RegistryLookup
{
	PresenceUserKey ukey;
	PresenceKey skey;
	uint32		uhash;
	uint32		shash;
	PresencePartition *part;
	LWLock	   *lock;
} RegistryLookup;

typedef enum RegistryFull
{
	REGISTRY_FULL_ENTRIES,
	REGISTRY_FULL_MEMORY,
	REGISTRY_FULL_MEMBERSHIPS
} RegistryFull;

typedef enum ConnectResult
{
	CONNECT_REFRESHED,
	CONNECT_OPENED,
	CONNECT_FULL,
	CONNECT_USER_FULL
} ConnectResult;

/* registry.c: memory, hashing and entries, for track.c, status.c, sync.c */
extern void registry_wake_worker(void);
extern void registry_wake_flusher(void);
extern void registry_wait_for_tick(void);
extern void registry_release(LWLock *lock, bool wake);
extern void registry_partition_init(PresencePartition *part);
extern void registry_lookup_init(RegistryLookup *l, const char *user,
								 int user_len, const char *session,
								 int session_len);
extern LWLock *registry_partition_lock(int i);
extern PresenceUser *registry_find_user(RegistryLookup *l);
extern PresenceSession *registry_find_session(RegistryLookup *l);
extern void registry_key_hashes(const PresenceKey *key, uint32 *uhash,
								uint32 *shash);
extern PresenceSession *registry_find_session_key(const PresenceKey *key,
												  uint32 shash);
extern PresenceSession *const *registry_hint_slot(uint32 shash);
extern void registry_forget_hints(void);
extern dsa_pointer registry_store_string(const char *data, int len,
										 const char **copy);
extern void registry_free_string(dsa_pointer dp);
extern const char *registry_string(dsa_pointer dp);
extern PresenceUser *registry_create_user(RegistryLookup *l, RegistryFull *full);
extern void registry_remove_user(PresencePartition *part, PresenceUser *user);
extern PresenceSession *registry_create_session(RegistryLookup *l,
												PresenceUser *user,
												const char *meta,
												RegistryFull *full);
extern PresenceSession *registry_create_user_session(RegistryLookup *l,
													 const char *meta,
													 RegistryFull *full,
													 bool *new_user);
extern bool registry_reserve_session(void);
extern void registry_release_session(void);
extern void registry_start_session(PresencePartition *part,
								   PresenceSession *session, TimestampTz now);
extern bool registry_end_session(PresencePartition *part,
								 PresenceSession *session, TimestampTz now);
extern void registry_session_written(PresencePartition *part,
									 PresenceSession *session);
extern void registry_mark_session_changed(PresencePartition *part,
										  PresenceSession *session);
extern void registry_mark_user_changed(PresencePartition *part,
									   PresenceUser *user, TimestampTz when);
extern bool registry_user_evictable(const PresenceUser *user);
extern void registry_report_full(RegistryFull full) pg_attribute_noreturn();
extern void registry_user_unref(PresencePartition *part, PresenceUser *user);
extern void registry_report_user_full(PresenceId user) pg_attribute_noreturn();
extern uint32 registry_user_hash(const char *user, int len);
extern bool registry_session_alive(PresencePartition *part,
								   PresenceSession *session, TimestampTz now,
								   bool active);
extern void registry_discard_session(PresencePartition *part,
									 PresenceSession *session, bool new_user);

/* track.c: opening a session, for connect, heartbeat, join and the batch */
extern ConnectResult registry_prepare_session(RegistryLookup *l,
											  PresenceSession **s,
											  const char *meta,
											  RegistryFull *full,
											  bool *new_user);
extern bool registry_open_session(PresencePartition *part, PresenceSession *s,
								  bool bound, bool active, TimestampTz now);

/* channels.c: the channel half of the registry, under the same locks */
extern Size channels_shmem_size(void);
extern void channels_shmem_init(bool found);
extern void channels_clear(void);
extern LWLock *channel_lock(uint32 hash);
extern uint32 channel_hash(const char *name, int len);
extern PresenceChannel *channel_find(const char *name, int len, uint32 hash);
extern PresenceChannel *channel_create(const char *name, int len, uint32 hash,
									   RegistryFull *full);
extern void channel_drop_if_empty(PresenceChannel *channel);
extern PresenceMember *member_find(PresenceChannel *channel,
								   PresenceUser *user, uint32 uhash);
extern PresenceMember *member_create(PresencePartition *part,
									 PresenceChannel *channel,
									 PresenceUser *user, uint32 uhash,
									 RegistryFull *full);
extern bool member_free(PresencePartition *part, PresenceMember *member);
extern PresenceMembership *membership_of(PresenceMember *member,
										 PresenceSession *session);
extern PresenceMembership *membership_alloc(void);
extern void membership_release(PresenceMembership *ms);
extern void member_discard(PresencePartition *part, PresenceMember *member);
extern void membership_link(PresencePartition *part, PresenceMembership *ms,
							PresenceMember *member, PresenceSession *session,
							dsa_pointer meta_dp, TimestampTz now);
extern bool membership_end(PresencePartition *part, PresenceMembership *ms,
						   TimestampTz now);
extern bool memberships_end_session(PresencePartition *part,
									PresenceSession *session, TimestampTz now);
extern void member_mark_changed(PresencePartition *part, PresenceMember *member,
								TimestampTz when);
extern void member_recount(PresenceMember *member);
extern void members_recount_user(PresenceUser *user);
extern bool member_has_membership(const PresenceMember *member);
extern bool member_shown(const PresenceMember *member);
extern void member_grace_sweep(PresencePartition *part, TimestampTz now);
extern void member_grace_file(PresencePartition *part, PresenceMember *member);
extern bool member_evictable(const PresenceMember *member);
extern dsa_pointer registry_store_jsonb(const void *jsonb, const void **copy);
extern dsa_pointer registry_allocate(Size n, void **address);
extern void *registry_address(dsa_pointer dp);

/* status.c: the status rules, applied under the partition's lock */
extern PresenceStatus status_as_seen(const PresenceUser *user);
extern bool status_session_started(PresencePartition *part,
								   PresenceUser *user, TimestampTz now,
								   bool active);
extern TimestampTz status_last_active(const PresenceUser *user);
extern TimestampTz status_sync_last_active(PresenceUser *user);
extern void status_unsteady(PresenceUser *user);
extern bool status_session_activity(PresencePartition *part,
									PresenceSession *session, TimestampTz now);
extern bool status_activity(PresencePartition *part, PresenceUser *user,
							TimestampTz now);
extern bool status_last_session_ended(PresencePartition *part,
									  PresenceUser *user, TimestampTz now);
extern void status_shown(PresenceUser *user);
extern void status_sweep(PresencePartition *part, TimestampTz now);
/* message.c: status messages, under the partition's lock */
extern void message_free(PresenceUser *user);
extern const char *message_as_seen(const PresenceUser *user, TimestampTz now);
extern void message_sweep(PresencePartition *part, TimestampTz now);
extern bool message_load(PresencePartition *part, PresenceUser *u,
						 const char *text, TimestampTz expires_at,
						 TimestampTz now);

extern void status_file_timer(PresencePartition *part, PresenceUser *user,
							  TimestampTz last_active);
extern void status_timeouts_changed(PresencePartition *part,
									PresenceUser *user, TimestampTz now);

/* What one worker tick takes out of the registry, in worker memory. */
typedef struct PresenceUserRow
{
	char	   *user_id;
	PresenceStatus status;		/* as others see it */
	TimestampTz last_active;
	bool		visible;
	char	   *message;		/* its status message, or NULL */
	TimestampTz message_expires;	/* 0: never */
} PresenceUserRow;

typedef struct PresenceSessionRow
{
	char	   *user_id;
	char	   *session_id;
	TimestampTz connected_at;
	char	   *meta;			/* NULL for none */
	bool		bound;
} PresenceSessionRow;

/* What a notification announces. */
typedef enum PresenceChangeKind
{
	CHANGE_STATUS,				/* a user's status, as others see it */
	CHANGE_JOIN,				/* a member in a channel */
	CHANGE_UPDATE,				/* a member's meta there */
	CHANGE_LEAVE,
	CHANGE_MESSAGE				/* a user's status message, as others see it */
} PresenceChangeKind;

typedef struct PresenceChange
{
	PresenceChangeKind kind;
	char	   *user_id;
	char	   *channel;		/* channel events */
	char	   *meta;			/* join and update: JSON text, or NULL */
	PresenceStatus status;		/* status and join */
	PresenceStatus previous;
	TimestampTz last_active;	/* 0 when hidden */
	char	   *message;		/* message: the text, or NULL when cleared */
	TimestampTz expires_at;		/* message: 0 for never */
	TimestampTz changed_at;
	uint64		order;
	int			sub;			/* events of one entry: in this order */
	int64		seq;			/* assigned by the worker */
} PresenceChange;

/* The memberships of one member as the worker writes them. */
typedef struct PresenceMemberRow
{
	char	   *channel;
	char	   *user_id;
	char	   *session_id;		/* NULL: the member has none left */
	Datum		meta;			/* a Jsonb datum, or 0 */
	TimestampTz joined_at;
} PresenceMemberRow;

typedef struct PresenceBatch
{
	PresenceUserRow *users;
	int			nusers;
	int			maxusers;
	PresenceSessionRow *upserts;
	int			nupserts;
	int			maxupserts;
	PresenceSessionRow *deletes;	/* only user_id, session_id are set */
	int			ndeletes;
	int			maxdeletes;
	PresenceChange *changes;
	int			nchanges;
	int			maxchanges;
	PresenceMemberRow *members;
	int			nmembers;
	int			maxmembers;
	bool		with_members;	/* the tables have presence.memberships */
	uint32		id;				/* tells users written once by this batch */
	bool		full;			/* users and upserts hold everything */
	bool		urgent;			/* a privacy choice: fold it at once */
} PresenceBatch;

/* Makes room for one more element of one of a batch's arrays. */
#define BATCH_GROW(batch, arr, n, max) \
	do { \
		if ((batch)->n >= (batch)->max) \
		{ \
			(batch)->max = Max(64, (batch)->max * 2); \
			(batch)->arr = (batch)->arr ? \
				repalloc_huge((batch)->arr, sizeof(*(batch)->arr) * (batch)->max) : \
				palloc_extended(sizeof(*(batch)->arr) * (batch)->max, MCXT_ALLOC_HUGE); \
		} \
	} while (0)

/* registry.c */
extern void registry_attach(void);

/* sync.c: the worker's side of the registry */
extern bool registry_collect(PresenceBatch *batch, TimestampTz now,
							 double activity_share, bool full,
							 PresenceTickParts *parts);
extern void registry_get_tick_parts(PresenceTickParts *last,
									PresenceTickParts *slowest);
/* message.c: what a tick announces of a user's status message */
extern void message_take(PresenceBatch *batch, PresenceUser *u);
extern bool registry_load_user(const char *user_id, PresenceStatus status,
							   TimestampTz last_active, bool visible,
							   const char *message, TimestampTz message_expires,
							   TimestampTz now);
extern bool registry_load_session(const char *user_id, const char *session_id,
								  TimestampTz connected_at, const char *meta,
								  bool bound, TimestampTz now);
/* channel_sync.c: the worker's side of channels */
extern void members_status_announced(PresenceBatch *batch, PresenceUser *u,
									 PresenceStatus previous);
extern void member_take(PresencePartition *part, PresenceMember *m,
						PresenceBatch *batch, TimestampTz now);
extern void members_add_all(PresenceBatch *batch, PresenceUser *u);
extern void members_loaded(PresenceUser *u);
extern bool registry_load_membership(const char *channel, const char *user_id,
									 const char *session_id, const void *meta,
									 TimestampTz joined_at);
extern void registry_load_finish(TimestampTz now);
extern void registry_clear(void);
extern void registry_refile_timers(void);
extern void registry_set_state(PresenceRegistryState state);

#endif							/* PRESENCE_REGISTRY_H */
