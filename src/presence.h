/*-------------------------------------------------------------------------
 *
 * presence.h
 *	  Declarations shared by the parts of the presence extension: settings,
 *	  the status model, the registry's interface and the worker's.
 *
 * Data flows one way: SQL functions (sql_api.c) validate their input and
 * change the shared-memory registry (registry.c, status.c); the background
 * worker (worker.c) sweeps the registry, writes its changes to the tables
 * (persist.c) and announces them with NOTIFY (notify.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PRESENCE_H
#define PRESENCE_H

#include "datatype/timestamp.h"
#include "fmgr.h"
#include "utils/timestamp.h"

/* Limits of the contract (DESIGN.md section 3). */
#define PRESENCE_MAX_ID_BYTES		256
#define PRESENCE_MAX_META_BYTES		1024
#define PRESENCE_DEFAULT_SESSION	"default"
#define PRESENCE_MAX_MESSAGE_CHARS	140		/* a status message */

/* Settings (presence.c) */
extern char *presence_database;
extern int	presence_max_sessions;
extern int	presence_max_memberships;
extern int	presence_max_channels_per_session;
extern int	presence_max_sessions_per_user;
extern int	presence_session_timeout_ms;
extern int	presence_idle_timeout_ms;
extern int	presence_reconnect_grace_ms;
extern int	presence_sweep_interval_ms;
extern int	presence_flush_interval_ms;
extern int	presence_offline_after_ms;
extern char *presence_channel;

/* Status model (status.c) */
typedef enum PresenceStatus
{
	PRESENCE_OFFLINE = 0,
	PRESENCE_AWAY,
	PRESENCE_ONLINE,
	PRESENCE_INACTIVE			/* live sessions but no activity for
								 * presence.offline_after: others see
								 * offline (never stored or announced) */
} PresenceStatus;

extern const char *presence_status_name(PresenceStatus status);
extern bool presence_status_parse(const char *name, PresenceStatus *status);

/* An id as the SQL functions receive it: bytes that need not end in NUL. */
typedef struct PresenceId
{
	const char *data;
	int			len;
} PresenceId;

/* What readers get to see of one user: already masked for invisibility. */
typedef struct PresenceUserView
{
	PresenceStatus status;
	TimestampTz last_active;	/* 0 when unknown or hidden */
	int			sessions;
	const char *status_message; /* NULL when none or hidden; valid during
								 * the call it is passed to */
} PresenceUserView;

/* Registry: shared memory (registry.c) */
extern Size registry_shmem_size(void);
extern void registry_request_shmem(void);
extern void registry_shmem_startup(void);
extern void registry_check_preloaded(void);
extern void registry_reset(void);
extern void registry_check_usable(bool for_write);

/* Registry: backend operations (registry.c); they raise the ERRORs */
extern bool registry_connect(PresenceId user, PresenceId session,
							 const char *meta, bool bound, bool active);
extern bool registry_heartbeat(PresenceId user, PresenceId session, bool active);
extern int	registry_heartbeat_many(const PresenceId *users,
									const PresenceId *sessions, int n,
									bool active);
extern bool registry_disconnect(PresenceId user, PresenceId session);
extern void registry_end_owned_session(PresenceId user, PresenceId session);
extern void registry_set_visible(PresenceId user, bool visible);
extern void registry_set_message(PresenceId user, const char *text, int len,
								 TimestampTz expires_at);
extern char *registry_message(PresenceId user);
extern bool registry_lookup_user(PresenceId user, PresenceUserView *view,
								 bool *hidden);

typedef void (*PresenceUserCallback) (const char *user_id,
									  const PresenceUserView *view, void *arg);
typedef void (*PresenceSessionCallback) (const char *user_id,
										 const char *session_id,
										 TimestampTz connected_at,
										 TimestampTz last_heartbeat,
										 const char *meta, void *arg);
extern void registry_foreach_visible_user(PresenceUserCallback cb, void *arg);
extern void registry_foreach_visible_session(PresenceId *user,
											 PresenceSessionCallback cb,
											 void *arg);

/* Channels (membership.c) */
extern void registry_join(PresenceId channel, PresenceId user,
						  PresenceId session, const void *meta);
extern bool registry_leave(PresenceId channel, PresenceId user,
						   PresenceId session);
extern bool registry_update(PresenceId channel, PresenceId user,
							PresenceId session, const void *meta);
extern int	registry_occupancy(PresenceId channel);

typedef void (*PresenceMemberCallback) (const char *user_id,
										const PresenceUserView *view,
										const void *const *metas, int nmetas,
										void *arg);
typedef void (*PresenceChannelCallback) (const char *channel, int sessions,
										 void *arg);
extern void registry_foreach_member(PresenceId channel,
									PresenceMemberCallback cb, void *arg);
extern void registry_foreach_channel_of(PresenceId user,
										PresenceChannelCallback cb, void *arg);

/* Argument checks shared by the SQL functions (sql_api.c) */
extern PresenceId arg_id(FunctionCallInfo fcinfo, int argno, const char *name,
						 const char *default_value);
extern void *arg_meta_jsonb(FunctionCallInfo fcinfo, int argno, bool required);

typedef struct PresenceStats
{
	int64		users;
	int64		sessions;
	int64		max_sessions;
	int64		memberships;
	int64		max_memberships;
	int64		channels;
	int64		memory_used;
	int64		memory_limit;
	int64		sweeps;
	double		last_sweep_ms;
	double		last_flush_ms;
	int64		notifications;
	int64		flushes;
	int			worker_pid;
	bool		ready;
} PresenceStats;
extern void registry_get_stats(PresenceStats *stats);

/*
 * What presence refuses or recovers from, for the server log: at most one
 * line a minute of each kind (events.c).
 */
typedef enum PresenceEvent
{
	EVENT_TICK_FAILED,			/* an ERROR in a worker tick */
	EVENT_FOLD_FAILED,			/* an ERROR in a flusher fold */
	EVENT_RESYNC,				/* the tables written again after one */
	EVENT_LOAD_INCOMPLETE,		/* the tables held more than the registry */
	EVENT_REGISTRY_FULL,		/* sessions refused: presence.max_sessions */
	EVENT_OUT_OF_MEMORY,		/* sessions refused: no room for ids, meta */
	EVENT_USER_LIMIT,			/* presence.max_sessions_per_user */
	EVENT_MEMBERSHIPS_FULL,		/* joins refused: presence.max_memberships */
	EVENT_CHANNEL_LIMIT,		/* presence.max_channels_per_session */
	EVENT_MIRROR_FAILED,		/* a mirror not written in a fold */
	EVENT_MIRROR_SKIPPED,		/* users a mirror could not write */
	EVENT_MIRROR_REMOVED,		/* the mirror of a table that is gone */
	PRESENCE_EVENTS
} PresenceEvent;

extern void event_init(void);
extern void event_count(PresenceEvent event);
extern void event_record(PresenceEvent event, int sqlerrcode,
						 const char *message);
extern void event_report(void);

/* Bound sessions: ended when their database connection closes (bound.c) */
extern void bound_remember(PresenceId user, PresenceId session);
extern void bound_forget(PresenceId user, PresenceId session);

/* Worker (worker.c) */
extern void presence_register_worker(void);
extern PGDLLEXPORT void presence_worker_main(Datum main_arg);
extern PGDLLEXPORT void presence_flusher_main(Datum main_arg);
extern bool presence_writer;
extern void presence_writer_start(void);
extern void worker_begin_work(const char *activity);
extern void worker_end_work(void);
extern ErrorData *worker_recover(PresenceEvent event, MemoryContext context);

#endif							/* PRESENCE_H */
