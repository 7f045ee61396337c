/*-------------------------------------------------------------------------
 *
 * persist.c
 *	  The worker's reads and writes of the durable mirror: presence.users,
 *	  presence.sessions and presence.notification_seq.
 *
 * Each kind of write is one statement over arrays, whatever the number of
 * rows, so a login storm costs a handful of statements per tick.  Runs in
 * the worker's transaction, inside SPI.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "persist.h"

/* Rows fetched at a time while loading. */
#define LOAD_BATCH	10000

static SPIPlanPtr
prepare(SPIPlanPtr *plan, const char *sql, int nargs, Oid *types)
{
	if (*plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(sql, nargs, types);

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql,
				 SPI_result_code_string(SPI_result));
		SPI_keepplan(p);
		*plan = p;
	}
	return *plan;
}

static void
run(SPIPlanPtr plan, Datum *args, int expected)
{
	int			rc = SPI_execute_plan(plan, args, NULL, false, 0);

	if (rc != expected)
		elog(ERROR, "presence worker statement failed: %s",
			 SPI_result_code_string(rc));
}

static Datum
make_array(Datum *elems, bool *nulls, int n, Oid type)
{
	int16		typlen;
	bool		typbyval;
	char		typalign;
	int			dims[1] = {n};
	int			lbs[1] = {1};

	get_typlenbyvalalign(type, &typlen, &typbyval, &typalign);
	return PointerGetDatum(construct_md_array(elems, nulls, 1, dims, lbs, type,
											  typlen, typbyval, typalign));
}

/* Column arrays for up to n rows. */
typedef struct Columns
{
	Datum	   *c[5];
	bool	   *nulls[5];
} Columns;

static void
columns_init(Columns *cols, int ncols, int n)
{
	for (int i = 0; i < ncols; i++)
	{
		cols->c[i] = palloc_extended(sizeof(Datum) * Max(n, 1), MCXT_ALLOC_HUGE);
		cols->nulls[i] = palloc_extended(sizeof(bool) * Max(n, 1),
										  MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	}
}

static void
write_users(PresenceUserRow *rows, int n)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[4] = {TEXTARRAYOID, TEXTARRAYOID, TIMESTAMPTZARRAYOID, BOOLARRAYOID};
	Columns		cols;
	Datum		args[4];

	columns_init(&cols, 4, n);
	for (int i = 0; i < n; i++)
	{
		cols.c[0][i] = CStringGetTextDatum(rows[i].user_id);
		cols.c[1][i] = CStringGetTextDatum(presence_status_name(rows[i].status));
		cols.c[2][i] = TimestampTzGetDatum(rows[i].last_active);
		cols.nulls[2][i] = rows[i].last_active == 0;
		cols.c[3][i] = BoolGetDatum(rows[i].visible);
	}
	args[0] = make_array(cols.c[0], NULL, n, TEXTOID);
	args[1] = make_array(cols.c[1], NULL, n, TEXTOID);
	args[2] = make_array(cols.c[2], cols.nulls[2], n, TIMESTAMPTZOID);
	args[3] = make_array(cols.c[3], NULL, n, BOOLOID);
	run(prepare(&plan,
				"INSERT INTO presence.users AS u"
				" (user_id, is_online, status, last_active, visible)"
				" SELECT r.user_id, r.status <> 'offline', r.status, r.last_active, r.visible"
				" FROM unnest($1, $2, $3, $4) AS r(user_id, status, last_active, visible)"
				" ON CONFLICT (user_id) DO UPDATE SET"
				" is_online = excluded.is_online, status = excluded.status,"
				" last_active = coalesce(excluded.last_active, u.last_active),"
				" visible = excluded.visible",
				4, types),
		args, SPI_OK_INSERT);
}

static void
write_sessions(PresenceSessionRow *rows, int n)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[5] = {TEXTARRAYOID, TEXTARRAYOID, TIMESTAMPTZARRAYOID,
	TEXTARRAYOID, BOOLARRAYOID};
	Columns		cols;
	Datum		args[5];

	columns_init(&cols, 5, n);
	for (int i = 0; i < n; i++)
	{
		cols.c[0][i] = CStringGetTextDatum(rows[i].user_id);
		cols.c[1][i] = CStringGetTextDatum(rows[i].session_id);
		cols.c[2][i] = TimestampTzGetDatum(rows[i].connected_at);
		cols.nulls[3][i] = rows[i].meta == NULL;
		cols.c[3][i] = rows[i].meta ? CStringGetTextDatum(rows[i].meta) : (Datum) 0;
		cols.c[4][i] = BoolGetDatum(rows[i].bound);
	}
	args[0] = make_array(cols.c[0], NULL, n, TEXTOID);
	args[1] = make_array(cols.c[1], NULL, n, TEXTOID);
	args[2] = make_array(cols.c[2], NULL, n, TIMESTAMPTZOID);
	args[3] = make_array(cols.c[3], cols.nulls[3], n, TEXTOID);
	args[4] = make_array(cols.c[4], NULL, n, BOOLOID);
	run(prepare(&plan,
				"INSERT INTO presence.sessions"
				" (user_id, session_id, connected_at, meta, bound)"
				" SELECT r.user_id, r.session_id, r.connected_at, r.meta::jsonb, r.bound"
				" FROM unnest($1, $2, $3, $4, $5)"
				" AS r(user_id, session_id, connected_at, meta, bound)"
				" ON CONFLICT (user_id, session_id) DO UPDATE SET"
				" connected_at = excluded.connected_at, meta = excluded.meta,"
				" bound = excluded.bound",
				5, types),
		args, SPI_OK_INSERT);
}

static void
delete_sessions(PresenceSessionRow *rows, int n)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[2] = {TEXTARRAYOID, TEXTARRAYOID};
	Columns		cols;
	Datum		args[2];

	columns_init(&cols, 2, n);
	for (int i = 0; i < n; i++)
	{
		cols.c[0][i] = CStringGetTextDatum(rows[i].user_id);
		cols.c[1][i] = CStringGetTextDatum(rows[i].session_id);
	}
	args[0] = make_array(cols.c[0], NULL, n, TEXTOID);
	args[1] = make_array(cols.c[1], NULL, n, TEXTOID);
	run(prepare(&plan,
				"DELETE FROM presence.sessions s"
				" USING unnest($1, $2) AS d(user_id, session_id)"
				" WHERE s.user_id = d.user_id AND s.session_id = d.session_id",
				2, types),
		args, SPI_OK_DELETE);
}

/*
 * A full batch holds every user and session of the registry: the tables are
 * made to hold exactly that, and users the registry no longer tracks are
 * marked offline.
 */
static void
replace_all(PresenceBatch *batch)
{
	static SPIPlanPtr clear_plan = NULL;
	static SPIPlanPtr offline_plan = NULL;
	Oid			type = TEXTARRAYOID;
	Datum	   *ids;
	Datum		arg;

	run(prepare(&clear_plan, "DELETE FROM presence.sessions", 0, NULL),
		NULL, SPI_OK_DELETE);
	ids = palloc_extended(sizeof(Datum) * Max(batch->nusers, 1), MCXT_ALLOC_HUGE);
	for (int i = 0; i < batch->nusers; i++)
		ids[i] = CStringGetTextDatum(batch->users[i].user_id);
	arg = make_array(ids, NULL, batch->nusers, TEXTOID);
	run(prepare(&offline_plan,
				"UPDATE presence.users u SET status = 'offline', is_online = false"
				" WHERE u.status <> 'offline' AND NOT EXISTS"
				" (SELECT FROM unnest($1) AS k(user_id) WHERE k.user_id = u.user_id)",
				1, &type),
		&arg, SPI_OK_UPDATE);
}

/* Writes one tick's batch.  Returns whether anything was written. */
bool
persist_batch(PresenceBatch *batch)
{
	if (batch->full)
		replace_all(batch);
	if (batch->nusers > 0)
		write_users(batch->users, batch->nusers);
	if (batch->ndeletes > 0)
		delete_sessions(batch->deletes, batch->ndeletes);
	if (batch->nupserts > 0)
		write_sessions(batch->upserts, batch->nupserts);
	return batch->full || batch->nusers > 0 || batch->ndeletes > 0 ||
		batch->nupserts > 0;
}

/*
 * Reserves n sequence numbers and returns the one before the first.  Takes
 * the larger of what the worker used last and what the sequence holds (a
 * restore may have set it), and moves the sequence past the reservation:
 * setval is not undone by a rollback, so a number is never handed out twice.
 */
int64
persist_reserve_seq(int64 last_used, int n)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[2] = {INT8OID, INT4OID};
	Datum		args[2] = {Int64GetDatum(last_used), Int32GetDatum(n)};
	bool		isnull;

	run(prepare(&plan,
				"SELECT pg_catalog.setval('presence.notification_seq',"
				" greatest(CASE WHEN is_called THEN last_value ELSE last_value - 1 END,"
				" $1) + $2, true) - $2"
				" FROM presence.notification_seq",
				2, types),
		args, SPI_OK_SELECT);
	if (SPI_processed != 1)
		elog(ERROR, "could not read presence.notification_seq");
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
									   SPI_tuptable->tupdesc, 1, &isnull));
}

static TimestampTz
get_timestamp(HeapTuple tuple, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tuple, desc, col, &isnull);

	return isnull ? 0 : DatumGetTimestampTz(d);
}

static bool
get_bool(HeapTuple tuple, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tuple, desc, col, &isnull);

	return !isnull && DatumGetBool(d);
}

/*
 * Loads the registry from the tables: invisible users and users not known
 * to be offline, then the sessions of users that have a row.  The worker
 * writes a user's row no later than the tick after its session's, and a
 * restore copies presence.sessions before presence.users: a session whose
 * user has no row yet waits for the next load, because its user may be
 * invisible.  Loading merges into a live registry too, when a restore adds
 * rows.  Stops with a WARNING when the registry is too small for the
 * tables.
 */
void
persist_load(TimestampTz now)
{
	Portal		portal;
	bool		room = true;

	portal = SPI_cursor_open_with_args(NULL,
									   "SELECT user_id, status, last_active, visible"
									   " FROM presence.users"
									   " WHERE NOT visible OR status <> 'offline'",
									   0, NULL, NULL, NULL, true, 0);
	while (room)
	{
		SPI_cursor_fetch(portal, true, LOAD_BATCH);
		if (SPI_processed == 0)
			break;
		for (uint64 i = 0; room && i < SPI_processed; i++)
		{
			HeapTuple	t = SPI_tuptable->vals[i];
			TupleDesc	d = SPI_tuptable->tupdesc;
			char	   *status_name = SPI_getvalue(t, d, 2);
			PresenceStatus status = PRESENCE_OFFLINE;

			if (status_name)
				presence_status_parse(status_name, &status);
			room = registry_load_user(SPI_getvalue(t, d, 1), status,
									  get_timestamp(t, d, 3), get_bool(t, d, 4));
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);

	portal = SPI_cursor_open_with_args(NULL,
									   "SELECT s.user_id, s.session_id, s.connected_at, s.meta::text, s.bound"
									   " FROM presence.sessions s WHERE EXISTS"
									   " (SELECT FROM presence.users u WHERE u.user_id = s.user_id)",
									   0, NULL, NULL, NULL, true, 0);
	while (room)
	{
		SPI_cursor_fetch(portal, true, LOAD_BATCH);
		if (SPI_processed == 0)
			break;
		for (uint64 i = 0; room && i < SPI_processed; i++)
		{
			HeapTuple	t = SPI_tuptable->vals[i];
			TupleDesc	d = SPI_tuptable->tupdesc;

			room = registry_load_session(SPI_getvalue(t, d, 1),
										 SPI_getvalue(t, d, 2),
										 get_timestamp(t, d, 3),
										 SPI_getvalue(t, d, 4),
										 get_bool(t, d, 5), now);
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);

	if (!room)
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("presence registry is too small for the sessions in presence.sessions"),
				 errdetail("Some users or sessions were not loaded."),
				 errhint("Raise presence.max_sessions and restart the server.")));
	registry_load_finish(now);
}
