/*-------------------------------------------------------------------------
 *
 * flusher.c
 *	  The presence flusher: folds the worker's journal into presence.users
 *	  and presence.sessions every presence.flush_interval.
 *
 * Folding a login storm's journal into the tables can take seconds; done by
 * the worker, it would hold back every notification for that long.  In a
 * process of its own it holds back nothing: the worker only appends to the
 * journal, the flusher only folds it, and a lock of its own (persist.c,
 * lock_tables) keeps the rare other writers of the tables (loading, a
 * resync) out of its way.  A fold that fails is rolled back and told to the
 * server log; the journal keeps its rows for the next one.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/resource.h>

#include "access/xlog.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/guc.h"

#include "persist.h"

/* Folds the journal, if there is an extension, and counts it. */
static void
flush(void)
{
	MemoryContext context = CurrentMemoryContext;
	TimestampTz start = GetCurrentTimestamp();
	volatile bool folded = false;

	PG_TRY();
	{
		worker_begin_work("flushing");
		if (OidIsValid(get_extension_oid("presence", true)))
			folded = persist_flush(true);
		worker_end_work();
	}
	PG_CATCH();
	{
		FreeErrorData(worker_recover(EVENT_FOLD_FAILED, context));
		folded = false;
	}
	PG_END_TRY();
	event_report();

	SpinLockAcquire(&presence_shared->mutex);
	if (folded)
	{
		presence_shared->flushes++;
		presence_shared->last_flush_ms = (GetCurrentTimestamp() - start) / 1000.0;
	}
	SpinLockRelease(&presence_shared->mutex);
}

/*
 * How much nicer than the server's other processes the flusher runs.  Its
 * folds take seconds of CPU and nobody waits for them; the worker's ticks
 * are on the way of every notification, and on a machine whose cores are
 * busy (heartbeat batches, the relays, the flusher itself) they would
 * otherwise get only a share of one.  A lower priority only matters when
 * the cores are all busy: then the worker's tick runs first.
 */
#define FLUSHER_NICENESS	10

static void
flusher_lower_priority(void)
{
	int			niceness;

	errno = 0;
	niceness = getpriority(PRIO_PROCESS, 0);
	if (errno == 0)
		niceness = Min(niceness + FLUSHER_NICENESS, 19);
	if (errno != 0 || setpriority(PRIO_PROCESS, 0, niceness) != 0)
		ereport(LOG,
				(errmsg("presence flusher could not lower its priority: %m")));
}

static void
flusher_detach(int code, Datum arg)
{
	SpinLockAcquire(&presence_shared->mutex);
	if (presence_shared->flusher_latch == MyLatch)
		presence_shared->flusher_latch = NULL;
	SpinLockRelease(&presence_shared->mutex);
}

/*
 * Folds every presence.flush_interval, and at once when the worker has
 * journaled a change of visibility: the choice belongs in the tables, which
 * are what pg_dump keeps, and what a standby shows.
 */
void
presence_flusher_main(Datum main_arg)
{
	presence_writer_start();
	flusher_lower_priority();
	SpinLockAcquire(&presence_shared->mutex);
	presence_shared->flusher_latch = MyLatch;
	SpinLockRelease(&presence_shared->mutex);
	on_shmem_exit(flusher_detach, 0);

	for (;;)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 presence_flush_interval_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		/* A standby's tables are the primary's. */
		if (RecoveryInProgress())
			pgstat_report_activity(STATE_IDLE, "waiting for promotion");
		else
			flush();

		/* Folded once more on the way out: nothing is left waiting. */
		if (ShutdownRequestPending)
			break;
	}
	proc_exit(1);
}
