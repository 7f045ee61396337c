/*-------------------------------------------------------------------------
 *
 * sql_api.c
 *	  The SQL-callable functions: validate every argument, then call the
 *	  registry.
 *
 * Bad input raises an ERROR before anything is touched, so a failed call
 * never leaves half a session behind.  The calls are not transactional:
 * like a sequence, the registry changes when the function runs, whether or
 * not the calling transaction commits.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "registry.h"

PG_FUNCTION_INFO_V1(presence_connect);
PG_FUNCTION_INFO_V1(presence_heartbeat);
PG_FUNCTION_INFO_V1(presence_heartbeat_many);
PG_FUNCTION_INFO_V1(presence_disconnect);
PG_FUNCTION_INFO_V1(presence_set_visible);
PG_FUNCTION_INFO_V1(presence_status);
PG_FUNCTION_INFO_V1(presence_is_online);
PG_FUNCTION_INFO_V1(presence_last_active);
PG_FUNCTION_INFO_V1(presence_online_users);
PG_FUNCTION_INFO_V1(presence_sessions);
PG_FUNCTION_INFO_V1(presence_stats);
PG_FUNCTION_INFO_V1(presence_tick_parts);
PG_FUNCTION_INFO_V1(presence_rows_added);
PG_FUNCTION_INFO_V1(presence_reset_registry);

/*
 * Raises the ERROR for an id that is empty or too long.  element: its
 * position in the array named, or -1 for an argument of its own.
 */
static void
reject_id(const char *name, int len, int element)
{
	if (len == 0 && element < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be empty", name)));
	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not contain empty ids", name),
				 errdetail("Element %d is empty.", element)));
	if (element < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s is too long", name),
				 errdetail("It is %d bytes; the limit is %d.",
						   len, PRESENCE_MAX_ID_BYTES)));
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s must not contain ids longer than %d bytes", name,
					PRESENCE_MAX_ID_BYTES),
			 errdetail("Element %d is %d bytes.", element, len)));
}

static inline bool
id_valid(int len)
{
	return len > 0 && len <= PRESENCE_MAX_ID_BYTES;
}

/*
 * A user or session id, or a channel name: not NULL (unless it may
 * default), not empty, short.
 */
PresenceId
arg_id(FunctionCallInfo fcinfo, int argno, const char *name,
	   const char *default_value)
{
	PresenceId	id;
	text	   *t;

	if (PG_ARGISNULL(argno))
	{
		if (default_value == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not be null", name)));
		id.data = default_value;
		id.len = strlen(default_value);
		return id;
	}
	t = PG_GETARG_TEXT_PP(argno);
	id.data = VARDATA_ANY(t);
	id.len = VARSIZE_ANY_EXHDR(t);
	if (!id_valid(id.len))
		reject_id(name, id.len, -1);
	return id;
}

/*
 * An array of ids (heartbeat_many): not NULL, one dimension at most (an
 * empty array has none), no NULL element, each a valid id.  Elements are
 * numbered in errors as the array numbers them.
 */
static PresenceId *
arg_id_array(FunctionCallInfo fcinfo, int argno, const char *name, int *n)
{
	ArrayType  *a;
	Datum	   *elems;
	bool	   *nulls;
	PresenceId *ids;
	int			lbound;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", name)));
	a = PG_GETARG_ARRAYTYPE_P(argno);
	if (ARR_NDIM(a) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s must be a one-dimensional array", name),
				 errdetail("It has %d dimensions.", ARR_NDIM(a))));
	lbound = ARR_NDIM(a) == 1 ? ARR_LBOUND(a)[0] : 1;
	deconstruct_array(a, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, n);
	ids = palloc_extended(sizeof(PresenceId) * Max(*n, 1), MCXT_ALLOC_HUGE);
	for (int i = 0; i < *n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not contain nulls", name),
					 errdetail("Element %d is null.", lbound + i)));
		ids[i].data = VARDATA_ANY(elems[i]);
		ids[i].len = VARSIZE_ANY_EXHDR(elems[i]);
		if (!id_valid(ids[i].len))
			reject_id(name, ids[i].len, lbound + i);
	}
	pfree(elems);
	pfree(nulls);
	return ids;
}

static PresenceId
arg_user(FunctionCallInfo fcinfo)
{
	return arg_id(fcinfo, 0, "user_id", NULL);
}

static PresenceId
arg_session(FunctionCallInfo fcinfo)
{
	return arg_id(fcinfo, 1, "session_id", PRESENCE_DEFAULT_SESSION);
}

static bool
arg_bool(FunctionCallInfo fcinfo, int argno, const char *name)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", name)));
	return PG_GETARG_BOOL(argno);
}

/*
 * meta: a JSON object of at most 1 kB as text; NULL, returned as NULL,
 * unless required.  *text gets the text when asked for.
 */
static Jsonb *
check_meta(FunctionCallInfo fcinfo, int argno, bool required, char **text)
{
	Jsonb	   *jb;
	char	   *json;
	size_t		len;

	if (PG_ARGISNULL(argno))
	{
		if (required)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("meta must not be null")));
		return NULL;
	}
	jb = PG_GETARG_JSONB_P(argno);
	if (!JB_ROOT_IS_OBJECT(jb))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("meta must be a JSON object"),
				 errdetail("It is %s.",
						   JB_ROOT_IS_SCALAR(jb) ? "a scalar" : "an array")));
	json = JsonbToCString(NULL, &jb->root, VARSIZE(jb));
	len = strlen(json);
	if (len > PRESENCE_MAX_META_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("meta is too large"),
				 errdetail("It is %zu bytes as JSON text; the limit is %d.",
						   len, PRESENCE_MAX_META_BYTES)));
	if (text)
		*text = json;
	return jb;
}

/* meta: NULL, or a JSON object of at most 1 kB, as text. */
static char *
arg_meta(FunctionCallInfo fcinfo, int argno)
{
	char	   *text = NULL;

	check_meta(fcinfo, argno, false, &text);
	return text;
}

/* meta as a Jsonb datum, for channel members, which keep it so. */
void *
arg_meta_jsonb(FunctionCallInfo fcinfo, int argno, bool required)
{
	return check_meta(fcinfo, argno, required, NULL);
}

/*
 * connect(user_id, session_id, meta, bound) -> session id
 */
Datum
presence_connect(PG_FUNCTION_ARGS)
{
	PresenceId	user = arg_user(fcinfo);
	PresenceId	session = arg_session(fcinfo);
	char	   *meta = arg_meta(fcinfo, 2);
	bool		bound = arg_bool(fcinfo, 3, "bound");

	registry_check_usable(true);
	if (bound)
		bound_remember(user, session);
	registry_connect(user, session, meta, bound, true);
	PG_RETURN_TEXT_P(cstring_to_text_with_len(session.data, session.len));
}

/*
 * heartbeat(user_id, session_id, active): an unknown session is opened, so
 * clients live through a server restart without doing anything.
 */
Datum
presence_heartbeat(PG_FUNCTION_ARGS)
{
	PresenceId	user = arg_user(fcinfo);
	PresenceId	session = arg_session(fcinfo);
	bool		active = arg_bool(fcinfo, 2, "active");

	registry_check_usable(true);
	if (!registry_heartbeat(user, session, active))
		registry_connect(user, session, NULL, false, active);
	PG_RETURN_VOID();
}

/*
 * heartbeat_many(user_ids, session_ids, active) -> how many were live: the
 * heartbeats of the pairs (user_ids[i], session_ids[i]), sessions the
 * registry does not hold live opened as heartbeat() opens them.  The whole
 * batch is checked before the registry is touched, and a limit that refuses
 * a session to open changes nothing (batch.c).
 */
Datum
presence_heartbeat_many(PG_FUNCTION_ARGS)
{
	int			nusers;
	int			nsessions;
	PresenceId *users;
	PresenceId *sessions;
	bool		active;

	active = arg_bool(fcinfo, 2, "active");
	users = arg_id_array(fcinfo, 0, "user_ids", &nusers);
	sessions = arg_id_array(fcinfo, 1, "session_ids", &nsessions);
	if (nusers != nsessions)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("user_ids and session_ids must have the same length"),
				 errdetail("user_ids has %d elements, session_ids %d.",
						   nusers, nsessions),
				 errhint("Pass one session id per user id; 'default' is the session heartbeat() uses when given none.")));

	registry_check_usable(true);
	PG_RETURN_INT32(registry_heartbeat_many(users, sessions, nusers, active));
}

Datum
presence_disconnect(PG_FUNCTION_ARGS)
{
	PresenceId	user = arg_user(fcinfo);
	PresenceId	session = arg_session(fcinfo);
	bool		ended;

	registry_check_usable(true);
	ended = registry_disconnect(user, session);
	bound_forget(user, session);
	PG_RETURN_BOOL(ended);
}

Datum
presence_set_visible(PG_FUNCTION_ARGS)
{
	PresenceId	user = arg_user(fcinfo);
	bool		visible = arg_bool(fcinfo, 1, "visible");

	registry_check_usable(true);
	registry_set_visible(user, visible);
	PG_RETURN_VOID();
}

static PresenceStatus
user_status(FunctionCallInfo fcinfo)
{
	PresenceId	user = arg_user(fcinfo);
	PresenceUserView view;
	bool		hidden;

	registry_check_usable(false);
	if (!registry_lookup_user(user, &view, &hidden))
		return PRESENCE_OFFLINE;
	return view.status;
}

Datum
presence_status(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(presence_status_name(user_status(fcinfo))));
}

Datum
presence_is_online(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(user_status(fcinfo) != PRESENCE_OFFLINE);
}

/*
 * last_active(user_id): from the registry while the user is tracked, else
 * from where the worker left it: its journal, or presence.users once the
 * journal is folded in.  The function is SECURITY DEFINER so that callers
 * need no privilege on the tables; its search_path is pinned, and its query
 * names the schema of every function and operator all the same.
 */
Datum
presence_last_active(PG_FUNCTION_ARGS)
{
	PresenceId	user = arg_user(fcinfo);
	PresenceUserView view;
	bool		hidden;
	Datum		arg;
	Oid			argtype = TEXTOID;
	bool		isnull = true;
	Datum		result = 0;

	registry_check_usable(false);
	if (registry_lookup_user(user, &view, &hidden))
	{
		if (hidden || view.last_active == 0)
			PG_RETURN_NULL();
		PG_RETURN_TIMESTAMPTZ(view.last_active);
	}

	arg = PointerGetDatum(cstring_to_text_with_len(user.data, user.len));
	SPI_connect();
	if (SPI_execute_with_args("SELECT CASE WHEN visible THEN last_active END FROM ("
							  " (SELECT 1, e.visible, e.last_active"
							  " FROM presence.journal j, ROWS FROM ("
							  " pg_catalog.unnest(j.user_ids),"
							  " pg_catalog.unnest(j.user_visible),"
							  " pg_catalog.unnest(j.user_last_active))"
							  " AS e(user_id, visible, last_active)"
							  " WHERE e.user_id OPERATOR(pg_catalog.=) $1"
							  " ORDER BY j.tick DESC LIMIT 1)"
							  " UNION ALL"
							  " SELECT 2, visible, last_active FROM presence.users"
							  " WHERE user_id OPERATOR(pg_catalog.=) $1)"
							  " AS found(rank, visible, last_active)"
							  " ORDER BY rank LIMIT 1",
							  1, &argtype, &arg, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read presence.users");
	if (SPI_processed == 1)
		result = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
							   &isnull);
	SPI_finish();
	if (isnull)
		PG_RETURN_NULL();
	PG_RETURN_TIMESTAMPTZ(DatumGetTimestampTz(result));
}

static void
put_user(const char *user_id, const PresenceUserView *view, void *arg)
{
	ReturnSetInfo *rsinfo = arg;
	Datum		values[5];
	bool		nulls[5] = {false, false, false, false, false};

	/* 1.0's online_users() has the first four columns. */
	values[0] = CStringGetTextDatum(user_id);
	values[1] = CStringGetTextDatum(presence_status_name(view->status));
	values[2] = TimestampTzGetDatum(view->last_active);
	nulls[2] = view->last_active == 0;
	values[3] = Int32GetDatum(view->sessions);
	values[4] = view->status_message ?
		CStringGetTextDatum(view->status_message) : (Datum) 0;
	nulls[4] = view->status_message == NULL;
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

Datum
presence_online_users(PG_FUNCTION_ARGS)
{
	registry_check_usable(false);
	InitMaterializedSRF(fcinfo, 0);
	registry_foreach_visible_user(put_user, fcinfo->resultinfo);
	return (Datum) 0;
}

static void
put_session(const char *user_id, const char *session_id,
			TimestampTz connected_at, TimestampTz last_heartbeat,
			const char *meta, void *arg)
{
	ReturnSetInfo *rsinfo = arg;
	Datum		values[5];
	bool		nulls[5] = {false, false, false, false, false};

	values[0] = CStringGetTextDatum(user_id);
	values[1] = CStringGetTextDatum(session_id);
	values[2] = TimestampTzGetDatum(connected_at);
	values[3] = TimestampTzGetDatum(last_heartbeat);
	if (meta)
		values[4] = DirectFunctionCall1(jsonb_in, CStringGetDatum(meta));
	else
		nulls[4] = true;
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

Datum
presence_sessions(PG_FUNCTION_ARGS)
{
	PresenceId	user;

	if (!PG_ARGISNULL(0))
		user = arg_user(fcinfo);
	registry_check_usable(false);
	InitMaterializedSRF(fcinfo, 0);
	registry_foreach_visible_session(PG_ARGISNULL(0) ? NULL : &user,
									 put_session, fcinfo->resultinfo);
	return (Datum) 0;
}

Datum
presence_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	PresenceStats stats;
	Datum		values[13];
	bool		nulls[13] = {false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	/* 1.0 has the first 10 columns; 1.1 adds the channels' 3. */
	if (tupdesc->natts != 10 && tupdesc->natts != 13)
		elog(ERROR, "presence.stats() has %d columns: the extension needs ALTER EXTENSION presence UPDATE",
			 tupdesc->natts);
	registry_check_preloaded();
	registry_get_stats(&stats);
	values[0] = Int64GetDatum(stats.users);
	values[1] = Int64GetDatum(stats.sessions);
	values[2] = Int64GetDatum(stats.max_sessions);
	values[3] = Int64GetDatum(stats.sweeps);
	values[4] = Float8GetDatum(stats.last_sweep_ms);
	values[5] = Int64GetDatum(stats.notifications);
	values[6] = Int64GetDatum(stats.flushes);
	values[7] = Float8GetDatum(stats.last_flush_ms);
	values[8] = Int32GetDatum(stats.worker_pid);
	nulls[8] = stats.worker_pid == 0;
	values[9] = BoolGetDatum(stats.ready);
	values[10] = Int64GetDatum(stats.memberships);
	values[11] = Int64GetDatum(stats.max_memberships);
	values[12] = Int64GetDatum(stats.channels);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

static void
put_tick(ReturnSetInfo *rsinfo, const char *which, const PresenceTickParts *t)
{
	Datum		values[15];
	bool		nulls[15] = {false};

	if (t->at == 0)
		return;
	values[0] = CStringGetTextDatum(which);
	values[1] = TimestampTzGetDatum(t->at);
	values[2] = Float8GetDatum(t->total_ms);
	values[3] = Float8GetDatum(t->sweep_ms);
	values[4] = Float8GetDatum(t->collect_ms);
	values[5] = Float8GetDatum(t->activity_ms);
	values[6] = Float8GetDatum(t->lock_wait_ms);
	values[7] = Float8GetDatum(t->journal_ms);
	values[8] = Float8GetDatum(t->notify_ms);
	values[9] = Float8GetDatum(t->commit_ms);
	values[10] = Float8GetDatum(t->queue_ms);
	values[11] = Int64GetDatum(t->changes);
	values[12] = Int64GetDatum(t->rows);
	values[13] = Int64GetDatum(t->active_examined);
	values[14] = Float8GetDatum(t->total_ms - t->sweep_ms - t->collect_ms -
								t->journal_ms - t->notify_ms - t->commit_ms);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/*
 * tick_parts(): where the worker's last tick, and its slowest of the last
 * one to two minutes, spent their time.  No rows before the first tick.
 */
Datum
presence_tick_parts(PG_FUNCTION_ARGS)
{
	PresenceTickParts last;
	PresenceTickParts slowest;

	registry_check_preloaded();
	InitMaterializedSRF(fcinfo, 0);
	registry_get_tick_parts(&last, &slowest);
	put_tick((ReturnSetInfo *) fcinfo->resultinfo, "last", &last);
	put_tick((ReturnSetInfo *) fcinfo->resultinfo, "slowest", &slowest);
	return (Datum) 0;
}

static bool merge_on_commit = false;

static void
request_merge(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT && merge_on_commit)
	{
		SpinLockAcquire(&presence_shared->mutex);
		presence_shared->merge_requested = true;
		SpinLockRelease(&presence_shared->mutex);
		registry_wake_worker();
	}
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT)
		merge_on_commit = false;
}

/*
 * Statement trigger on the tables: rows written by anyone but the worker
 * and the flusher (a restore, most likely) are merged into the registry
 * once they are committed, at the worker's next tick.
 */
Datum
presence_rows_added(PG_FUNCTION_ARGS)
{
	static bool callback_registered = false;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "presence_rows_added: not called as a trigger");
	if (presence_shared != NULL && !presence_writer)
	{
		if (!callback_registered)
		{
			RegisterXactCallback(request_merge, NULL);
			callback_registered = true;
		}
		merge_on_commit = true;
	}
	return PointerGetDatum(NULL);
}

/*
 * _reset_registry(): the install script's last step.  A new extension
 * starts from empty tables, so the registry starts empty too, before any
 * call can reach it (the worker would notice a dropped extension only at
 * its next tick).  The worker then loads it from the tables again.
 */
Datum
presence_reset_registry(PG_FUNCTION_ARGS)
{
	if (presence_shared != NULL && !RecoveryInProgress() &&
		strcmp(get_database_name(MyDatabaseId), presence_database) == 0)
		registry_reset();
	PG_RETURN_VOID();
}
