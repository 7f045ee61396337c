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
