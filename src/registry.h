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
 *	changes		users and sessions the worker still has to write or announce
 *	active		users active since the last flush
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
 * Hash key of both tables.  Lookups point it at the caller's bytes; stored
 * entries point it at their copies in the DSA area.  session is NULL for
 * user entries.
 */
typedef struct PresenceKey
{
	const char *user;
	const char *session;
	uint16		user_len;
	uint16		session_len;
} PresenceKey;

/*
 * The fields a heartbeat reads and writes follow the id, within the first
 * 128 bytes of the element (REGISTRY_ENTRY_SIZE), which is 256 bytes.
 */
typedef struct PresenceUser
{
	PresenceKey key;			/* must be first */
	char		id_inline[USER_INLINE_BYTES];
	TimestampTz last_active;
	WheelTimer	idle_timer;		/* while online */
	PresenceStatus status;		/* true status, frozen during grace */
	int			nsessions;		/* live sessions */
	bool		in_active;		/* on the partition's active list */
	bool		visible;
	bool		in_grace;
	bool		in_changes;
	bool		persisted;		/* has a row in presence.users */
	bool		loading;		/* read from the tables, not yet settled */
	bool		visible_changed;	/* since its row was last written */
	uint8		notified;		/* PresenceStatus last announced, as others
								 * saw it; one byte, so the element stays
								 * 256 bytes */
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
} PresenceUser;

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
} PresenceSession;

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
	dlist_head	grace;
	dlist_head	user_changes;
	dlist_head	session_changes;
	dlist_head	active;
	int			nusers;
	int			nsessions;		/* live ones */
} PresencePartition;

typedef enum PresenceRegistryState
{
	REGISTRY_EMPTY = 0,			/* nothing loaded: worker not started, or no
								 * extension in presence.database */
	REGISTRY_READY				/* loaded from the tables, being tracked */
} PresenceRegistryState;

/* One kind of event for the server log (events.c). */
#define EVENT_MESSAGE_BYTES		256
typedef struct PresenceEventLog
{
	pg_atomic_uint64 count;		/* times since its last line */
	TimestampTz last_line;		/* when that was written; 0: never */
	int			sqlerrcode;		/* of the latest time */
	char		message[EVENT_MESSAGE_BYTES];	/* its message */
} PresenceEventLog;

typedef struct PresenceShared
{
	LWLockPadded *locks;		/* PRESENCE_PARTITIONS of them */
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
	uint64		notifications;
	uint64		flushes;

	ConditionVariable ready_cv;
	ConditionVariable tick_cv;	/* broadcast at the end of each tick */
	pg_atomic_uint64 ticks_started;
	pg_atomic_uint32 live_sessions;	/* counted against max_sessions */
	pg_atomic_uint64 change_counter;
	pg_atomic_uint64 sweeps;	/* ticks finished */
	PresenceEventLog events[PRESENCE_EVENTS];	/* last_line, sqlerrcode and
												 * message under mutex */

	PresencePartition partitions[PRESENCE_PARTITIONS];
} PresenceShared;

extern PresenceShared *presence_shared;
extern HTAB *presence_user_table;
extern HTAB *presence_session_table;

/* A user (and maybe session) id, hashed, with the partition it maps to. */
typedef struct RegistryLookup
{
	PresenceKey ukey;
	PresenceKey skey;
	uint32		uhash;
	uint32		shash;
	PresencePartition *part;
	LWLock	   *lock;
} RegistryLookup;

typedef enum RegistryFull
{
	REGISTRY_FULL_ENTRIES,
	REGISTRY_FULL_MEMORY
} RegistryFull;

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

/* What one worker tick takes out of the registry, in worker memory. */
typedef struct PresenceUserRow
{
	char	   *user_id;
	PresenceStatus status;		/* as others see it */
	TimestampTz last_active;
	bool		visible;
} PresenceUserRow;

typedef struct PresenceSessionRow
{
	char	   *user_id;
	char	   *session_id;
	TimestampTz connected_at;
	char	   *meta;			/* NULL for none */
	bool		bound;
} PresenceSessionRow;

typedef struct PresenceChange
{
	char	   *user_id;
	PresenceStatus status;
	PresenceStatus previous;
	TimestampTz last_active;	/* 0 when hidden */
	TimestampTz changed_at;
	uint64		order;
	int64		seq;			/* assigned by the worker */
} PresenceChange;

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
	uint32		id;				/* tells users written once by this batch */
	bool		full;			/* users and upserts hold everything */
	bool		urgent;			/* a privacy choice: fold it at once */
} PresenceBatch;

/* registry.c */
extern void registry_attach(void);

/* sync.c: the worker's side of the registry */
extern void registry_collect(PresenceBatch *batch, TimestampTz now,
							 bool with_activity, bool full);
extern bool registry_load_user(const char *user_id, PresenceStatus status,
							   TimestampTz last_active, bool visible);
extern bool registry_load_session(const char *user_id, const char *session_id,
								  TimestampTz connected_at, const char *meta,
								  bool bound, TimestampTz now);
extern void registry_load_finish(TimestampTz now);
extern void registry_clear(void);
extern void registry_refile_timers(void);
extern void registry_set_state(PresenceRegistryState state);

#endif							/* PRESENCE_REGISTRY_H */
