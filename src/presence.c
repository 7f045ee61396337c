/*-------------------------------------------------------------------------
 *
 * presence.c
 *	  Module entry point: the settings, the shared memory request and the
 *	  background worker's registration.
 *
 * Everything here happens at shared_preload_libraries time.  Loaded any
 * other way, the module does nothing here, and every function says that the
 * preload is missing.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "fmgr.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "utils/guc.h"

#include "presence.h"

PG_MODULE_MAGIC;

char	   *presence_database = NULL;
int			presence_max_sessions = 100000;
int			presence_max_memberships = 100000;
int			presence_max_channels_per_session = 100;
int			presence_max_sessions_per_user = 50;
int			presence_session_timeout_ms = 60 * 1000;
int			presence_idle_timeout_ms = 5 * 60 * 1000;
int			presence_reconnect_grace_ms = 5 * 1000;
int			presence_sweep_interval_ms = 1000;
int			presence_flush_interval_ms = 10 * 1000;
int			presence_offline_after_ms = 0;
char	   *presence_channel = NULL;

void		_PG_init(void);

/* NOTIFY takes channel names up to NAMEDATALEN - 1 bytes. */
static bool
check_channel(char **newval, void **extra, GucSource source)
{
	if (**newval == '\0' || strlen(*newval) >= NAMEDATALEN)
	{
		GUC_check_errdetail("presence.channel must be 1 to %d bytes long.",
							NAMEDATALEN - 1);
		return false;
	}
	return true;
}

static void
define_settings(void)
{
	DefineCustomStringVariable("presence.database",
							   "Database in which presence is tracked.",
							   "The background worker connects to it; presence functions work only there.",
							   &presence_database, "postgres",
							   PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("presence.max_sessions",
							"Maximum number of live sessions (and of tracked users).",
							"Sizes the shared-memory registry.",
							&presence_max_sessions, 100000, 10, 100 * 1000 * 1000,
							PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("presence.max_memberships",
							"Maximum number of channel memberships (a session in a channel).",
							"Sizes the shared-memory registry's channel tables.",
							&presence_max_memberships, 100000, 10, 100 * 1000 * 1000,
							PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("presence.max_channels_per_session",
							"Maximum number of channels one session may be in.",
							NULL,
							&presence_max_channels_per_session, 100, 1, 1000 * 1000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("presence.max_sessions_per_user",
							"Maximum number of live sessions of one user.",
							"Opening one more fails; refreshing a live session always works.",
							&presence_max_sessions_per_user, 50, 1, INT_MAX,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("presence.session_timeout",
							"A session without a heartbeat for this long ends.",
							NULL,
							&presence_session_timeout_ms, 60 * 1000, 100, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("presence.idle_timeout",
							"A user without activity for this long is away.",
							NULL,
							&presence_idle_timeout_ms, 5 * 60 * 1000, 100, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("presence.reconnect_grace",
							"A user whose last session ended is offline only if no session starts within this time.",
							NULL,
							&presence_reconnect_grace_ms, 5 * 1000, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("presence.sweep_interval",
							"How often the worker applies the timeouts.",
							NULL,
							&presence_sweep_interval_ms, 1000, 10, 60 * 60 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("presence.flush_interval",
							"How often the worker writes the last activity of active users to presence.users.",
							NULL,
							&presence_flush_interval_ms, 10 * 1000, 100, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("presence.offline_after",
							"A user with live sessions but no activity for this long is shown offline.",
							"0 means never: such a user stays away.",
							&presence_offline_after_ms, 0, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomStringVariable("presence.channel",
							   "NOTIFY channel of status changes.",
							   NULL,
							   &presence_channel, "presence",
							   PGC_SIGHUP, 0, check_channel, NULL, NULL);
	MarkGUCPrefixReserved("presence");
}

void
_PG_init(void)
{
	/*
	 * Loaded later (by CREATE EXTENSION, say), it is too late for settings
	 * that need a restart; the functions will say the preload is missing.
	 */
	if (!process_shared_preload_libraries_in_progress)
		return;
	define_settings();
	registry_request_shmem();
	presence_register_worker();
}
