/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The presence worker: the only writer of the tables and the only sender
 *	  of notifications.
 *
 * It sleeps on its latch until a backend reports a change others would
 * see, or until the next sweep is due.  Each tick is one transaction:
 * apply the timeouts, take the changes out of the registry, append them to
 * the journal, queue one NOTIFY per status change, commit.  Another process,
 * the flusher (flusher.c), folds the journal into the tables, so the ticks
 * never wait for that.  On SIGTERM the worker runs a last tick and exits.
 * It loads the registry from the tables when shared memory is new (server
 * start, crash restart, promotion) or the extension was just created, and
 * clears it when the extension is dropped.  On a standby it only waits for
 * promotion.  A tick that fails (a cancelled lock wait, say) is rolled back
 * and told to the server log, and the worker carries on: the next tick
 * writes the tables again from the registry.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "persist.h"

/* Seconds the postmaster waits before starting a worker that failed. */
#define WORKER_RESTART_SECONDS	5

/*
 * A tick has a cost of its own (a transaction, its statements, the commit,
 * signalling the listeners), whatever it announces.  Under a stream of
 * calls, each waking the worker, a tick starts at least this long after the
 * last one started, so that one transaction takes all that came meanwhile.
 * A change made while the worker was idle still goes out at once.
 */
#define MIN_TICK_SPACING_USEC	2000

/* Set in the worker and the flusher: the tables' own writers. */
bool		presence_writer = false;

static int64 last_seq = 0;
static TimestampTz last_activity = 0;	/* when the last tick looked at
										 * active users */
static bool walk_deferred = false;	/* the last tick left its share of the
									 * activity walk to the next */
static uint32 batch_counter = 0;

/* Why the tables are to be written again: the last tick's ERROR. */
static int	failed_sqlerrcode = ERRCODE_SUCCESSFUL_COMPLETION;
static char failed_message[EVENT_MESSAGE_BYTES] = "the previous worker stopped during a tick";

static void
register_worker(const char *name, const char *function)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS |
		BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_ConsistentState;
	worker.bgw_restart_time = WORKER_RESTART_SECONDS;
	strlcpy(worker.bgw_library_name, "presence", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, function, BGW_MAXLEN);
	strlcpy(worker.bgw_name, name, BGW_MAXLEN);
	strlcpy(worker.bgw_type, name, BGW_MAXLEN);
	RegisterBackgroundWorker(&worker);
}

/* The worker, and the flusher that folds its journal (flusher.c). */
void
presence_register_worker(void)
{
	register_worker("presence worker", "presence_worker_main");
	register_worker("presence flusher", "presence_flusher_main");
}

static void
worker_detach(int code, Datum arg)
{
	SpinLockAcquire(&presence_shared->mutex);
	if (presence_shared->worker_pid == MyProcPid)
	{
		presence_shared->worker_pid = 0;
		presence_shared->worker_latch = NULL;
	}
	SpinLockRelease(&presence_shared->mutex);
}

/*
 * Makes the registry match the extension: cleared when it was dropped (or
 * dropped and created again), loaded when it exists and the registry is
 * empty, merged when someone else added rows.  Returns whether there is an
 * extension to work for.
 */
static bool
sync_with_extension(TimestampTz now, bool *with_members)
{
	Oid			ext = get_extension_oid("presence", true);
	Oid			known;
	bool		merge;

	SpinLockAcquire(&presence_shared->mutex);
	known = presence_shared->extension_oid;
	merge = presence_shared->merge_requested;
	presence_shared->merge_requested = false;
	presence_shared->extension_oid = ext;
	SpinLockRelease(&presence_shared->mutex);

	if (ext != known && presence_shared->state == REGISTRY_READY)
	{
		registry_set_state(REGISTRY_EMPTY);
		registry_clear();
		last_seq = 0;
	}
	if (!OidIsValid(ext))
		return false;

	*with_members = persist_has_memberships();
	if (presence_shared->state != REGISTRY_READY)
	{
		pgstat_report_activity(STATE_RUNNING, "loading the registry");
		persist_load(now, *with_members);
		last_activity = now;
		registry_set_state(REGISTRY_READY);
		ereport(LOG,
				(errmsg("presence worker loaded the registry from the tables")));
	}
	else if (merge)
		persist_load(now, *with_members);
	return true;
}

void
worker_begin_work(const char *activity)
{
	pgstat_report_activity(STATE_RUNNING, activity);
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
}

void
worker_end_work(void)
{
	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * For the worker and the flusher, in PG_CATCH after an ERROR in their work:
 * rolls the transaction back and records the ERROR as an event for the
 * server log, rather than letting the process exit and leave its work
 * undone for the postmaster's restart delay.  context is the memory context
 * the work started in.  Returns the ERROR, in that context.
 */
ErrorData *
worker_recover(PresenceEvent event, MemoryContext context)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(context);
	edata = CopyErrorData();
	FlushErrorState();
	AbortCurrentTransaction();
	pgstat_report_activity(STATE_IDLE, NULL);
	event_record(event, edata->sqlerrcode, edata->message);
	return edata;
}

/*
 * When the commit of the worker's transaction got to its notifications
 * (XACT_EVENT_PRE_COMMIT comes just before PostgreSQL writes them into its
 * queue, then the commit record) and when it was done with both.
 */
static TimestampTz pre_commit_at = 0;
static TimestampTz committed_at = 0;

static void
commit_times(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_PRE_COMMIT)
		pre_commit_at = GetCurrentTimestamp();
	else if (event == XACT_EVENT_COMMIT)
		committed_at = GetCurrentTimestamp();
}

static double
ms_between(TimestampTz from, TimestampTz to)
{
	return (to - from) / 1000.0;
}

/*
 * The end of a tick, whether it worked or not: stats() and tick_parts()
 * show a tick's figures together, and calls waiting for a tick
 * (registry_wait_for_tick) go on.  The slowest tick is kept per window of
 * TICK_WINDOW_USEC, the current one and the one before: tick_parts() shows
 * the slowest of the last one to two windows.
 */
#define TICK_WINDOW_USEC	(60 * USECS_PER_SEC)

static void
tick_finished(TimestampTz start, PresenceTickParts *parts)
{
	TimestampTz end = GetCurrentTimestamp();
	PresenceShared *sh = presence_shared;

	parts->at = start;
	parts->total_ms = ms_between(start, end);
	elog(DEBUG1, "presence tick: %.3f ms: sweep %.3f, collect %.3f (activity %.3f, %lld users), lock waits %.3f, journal %.3f (%lld rows), notify %.3f (%lld), commit %.3f (queue and record %.3f)",
		 parts->total_ms, parts->sweep_ms, parts->collect_ms,
		 parts->activity_ms, (long long) parts->active_examined,
		 parts->lock_wait_ms, parts->journal_ms,
		 (long long) parts->rows, parts->notify_ms,
		 (long long) parts->changes, parts->commit_ms, parts->queue_ms);

	SpinLockAcquire(&sh->mutex);
	sh->last_sweep_ms = parts->total_ms;
	sh->notifications += parts->changes;
	sh->last_tick = *parts;
	if (end - sh->window_start >= TICK_WINDOW_USEC)
	{
		sh->slowest_before = sh->slowest_tick;
		sh->slowest_tick = *parts;
		sh->window_start = end;
	}
	else if (parts->total_ms > sh->slowest_tick.total_ms)
		sh->slowest_tick = *parts;
	pg_atomic_fetch_add_u64(&sh->sweeps, 1);
	SpinLockRelease(&sh->mutex);
	ConditionVariableBroadcast(&sh->tick_cv);
}

/*
 * One tick, in one transaction: sweep, journal, notify.  Returns whether
 * there is an extension to work for.  activity_share: the share of the
 * active users whose last activity it looks at (sync.c take_activity).
 * Not inlined into worker_try_tick, whose setjmp would make its locals
 * unreliable after an ERROR.  Each part's time goes to tick_parts().
 */
static pg_noinline bool
worker_tick(double activity_share)
{
	TimestampTz start = GetCurrentTimestamp();
	TimestampTz t;
	PresenceBatch batch = {0};
	PresenceTickParts parts = {0};
	bool		tracking;
	bool		resync = false;

	pg_atomic_fetch_add_u64(&presence_shared->ticks_started, 1);
	walk_deferred = false;
	worker_begin_work("sweeping");
	tracking = sync_with_extension(start, &batch.with_members);
	if (tracking)
	{
		/* Should this tick fail, the next worker rewrites the tables. */
		SpinLockAcquire(&presence_shared->mutex);
		resync = presence_shared->resync_needed;
		presence_shared->resync_needed = true;
		SpinLockRelease(&presence_shared->mutex);

		batch.id = ++batch_counter;
		if (batch.id == 0)
			batch.id = ++batch_counter;
		walk_deferred = !registry_collect(&batch, start, activity_share, resync, &parts);
		t = GetCurrentTimestamp();
		persist_batch(&batch);
		parts.journal_ms = ms_between(t, GetCurrentTimestamp());
		parts.rows = batch.nusers + batch.nupserts + batch.ndeletes + batch.nmembers;
		t = GetCurrentTimestamp();
		if (batch.nchanges > 0)
			notify_changes(batch.changes, batch.nchanges, &last_seq);
		parts.notify_ms = ms_between(t, GetCurrentTimestamp());
		parts.changes = batch.nchanges;

		SpinLockAcquire(&presence_shared->mutex);
		presence_shared->resync_needed = false;
		SpinLockRelease(&presence_shared->mutex);
	}
	t = GetCurrentTimestamp();
	pre_commit_at = committed_at = 0;
	worker_end_work();
	parts.commit_ms = ms_between(t, GetCurrentTimestamp());
	if (pre_commit_at != 0 && committed_at != 0)
		parts.queue_ms = ms_between(pre_commit_at, committed_at);

	if (tracking && resync)
		event_record(EVENT_RESYNC, failed_sqlerrcode, failed_message);

	/* A privacy choice should not wait for the next flush to be kept. */
	if (batch.urgent)
		registry_wake_flusher();

	tick_finished(start, &parts);
	return tracking;
}

/*
 * A tick, or the record of its failure: an ERROR is rolled back and kept
 * for the server log, and the tick left resync_needed set, so the next one
 * writes everything.  Returns whether the tick worked.
 */
static bool
worker_try_tick(double activity_share)
{
	MemoryContext context = CurrentMemoryContext;
	TimestampTz start = GetCurrentTimestamp();
	volatile bool worked = true;

	PG_TRY();
	{
		worker_tick(activity_share);
	}
	PG_CATCH();
	{
		ErrorData  *edata = worker_recover(EVENT_TICK_FAILED, context);
		PresenceTickParts parts = {0};

		failed_sqlerrcode = edata->sqlerrcode;
		strlcpy(failed_message, edata->message, sizeof(failed_message));
		FreeErrorData(edata);
		tick_finished(start, &parts);
		worked = false;
	}
	PG_END_TRY();
	return worked;
}

/*
 * A tick, then what the server log should hear, at most once a minute of
 * each kind.  Each tick looks at the last activity of a share of the active
 * users in proportion to the time since the last tick, so that each is
 * looked at about twice within the minute in which its last activity is
 * written (sync.c): a tick in which a million users are active looks at a
 * few tens of thousands, not at all of them every presence.flush_interval.
 * The last tick, when the worker is about to exit, looks at all.  A tick
 * that left its share to the next (sync.c) does not count as a look.
 */
static void
worker_work(bool final)
{
	TimestampTz now = GetCurrentTimestamp();
	int64		period = (int64) Max(60 * 1000, presence_flush_interval_ms) * 1000 / 2;
	double		share = final ? 1.0 :
		Min(1.0, (double) (now - last_activity) / period);

	if (worker_try_tick(share) && !walk_deferred)
		last_activity = now;
	event_report();
}

/*
 * What the worker and the flusher do first: reload on SIGHUP, stop on
 * SIGTERM, connect to presence.database, and be known as the tables' writer.
 *
 * They run as the bootstrap superuser, so search_path is pinned to
 * pg_catalog (then pg_temp, so that not even temporary objects come first),
 * over whatever postgresql.conf, ALTER DATABASE or ALTER ROLE set: an
 * object planted in a schema on that path never runs with their rights.
 * An override, like autovacuum's, so a reload does not undo it.  Their
 * queries name every schema anyway (persist.c).
 */
void
presence_writer_start(void)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnection(presence_database, NULL, 0);
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET,
					PGC_S_OVERRIDE);
	presence_writer = true;
}

void
presence_worker_main(Datum main_arg)
{
	TimestampTz last_tick_start = 0;

	presence_writer_start();

	SpinLockAcquire(&presence_shared->mutex);
	presence_shared->worker_pid = MyProcPid;
	presence_shared->worker_latch = MyLatch;
	presence_shared->database_oid = MyDatabaseId;
	SpinLockRelease(&presence_shared->mutex);
	on_shmem_exit(worker_detach, 0);
	registry_attach();
	RegisterXactCallback(commit_times, NULL);

	while (!ShutdownRequestPending)
	{
		if (ConfigReloadPending)
		{
			int			session_timeout = presence_session_timeout_ms;
			int			idle_timeout = presence_idle_timeout_ms;
			int			offline_after = presence_offline_after_ms;

			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			if ((session_timeout != presence_session_timeout_ms ||
				 idle_timeout != presence_idle_timeout_ms ||
				 offline_after != presence_offline_after_ms) &&
				presence_shared->state == REGISTRY_READY)
				registry_refile_timers();
		}

		/* A standby has nothing to track; promotion ends the wait. */
		if (RecoveryInProgress())
			pgstat_report_activity(STATE_IDLE, "waiting for promotion");
		else
		{
			int64		since = GetCurrentTimestamp() - last_tick_start;

			if (since >= 0 && since < MIN_TICK_SPACING_USEC)
				pg_usleep(MIN_TICK_SPACING_USEC - since);
			last_tick_start = GetCurrentTimestamp();
			worker_work(false);
		}

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 presence_sweep_interval_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}

	if (!RecoveryInProgress())
		worker_work(true);

	/* Exit code 1: the postmaster starts a new worker if the server stays up. */
	proc_exit(1);
}
