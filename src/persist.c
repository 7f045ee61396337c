/*-------------------------------------------------------------------------
 *
 * persist.c
 *	  The worker's reads and writes of the durable mirror: presence.users,
 *	  presence.sessions, presence.journal and presence.notification_seq.
 *
 * Each tick appends its changes to presence.journal as one row of arrays,
 * in the transaction that sends its notifications: a tick in which ten
 * thousand users leave costs one insert, not twenty thousand row updates.
 * Every presence.flush_interval (and before loading, and at shutdown) the
 * journal is folded into presence.users and presence.sessions, a few
 * statements for all of it.  Runs in the worker's transactions, in SPI.
 *
 * The worker and the flusher run as a superuser, so every query names its
 * functions, operators, types and collations with their schema: an object
 * that a role planted in a schema on someone's search_path must never run
 * here (the processes also pin search_path, presence_writer_start).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "storage/lmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"

#include "mirror.h"
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

/* One array of n elements per column, for unnest() on the other side. */
typedef struct Columns
{
	int			n;
	Datum	   *values[6];
	bool	   *nulls[6];
} Columns;

/*
 * Whether the extension's tables are version 1.1's, with memberships: the
 * journal has their columns.  A database may still be at 1.0 until ALTER
 * EXTENSION presence UPDATE; the worker and the flusher then write what 1.0
 * has.  Read from the catalog caches, which a transaction's start and each
 * lock taken bring up to date: the update adds the columns under a lock on
 * the journal that the worker's append and the flusher's read of it wait
 * for, so a journal row with members is never read as 1.0's.
 */
bool
persist_has_memberships(void)
{
	Oid			schema = get_namespace_oid("presence", true);
	Oid			journal = OidIsValid(schema) ?
		get_relname_relid("journal", schema) : InvalidOid;

	return OidIsValid(journal) &&
		get_attnum(journal, "member_channels") != InvalidAttrNumber;
}

static void
columns_init(Columns *cols, int ncols, int n)
{
	cols->n = n;
	for (int i = 0; i < ncols; i++)
	{
		cols->values[i] = palloc_extended(sizeof(Datum) * Max(n, 1), MCXT_ALLOC_HUGE);
		cols->nulls[i] = palloc_extended(sizeof(bool) * Max(n, 1),
										 MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	}
}

static Datum
column(Columns *cols, int i, Oid type)
{
	return make_array(cols->values[i], cols->nulls[i], cols->n, type);
}

/* The users of a batch as 4 arrays: id, status, last_active, visible. */
static void
user_columns(PresenceBatch *batch, Datum *args)
{
	Columns		cols;

	columns_init(&cols, 4, batch->nusers);
	for (int i = 0; i < batch->nusers; i++)
	{
		PresenceUserRow *row = &batch->users[i];

		cols.values[0][i] = CStringGetTextDatum(row->user_id);
		cols.values[1][i] = CStringGetTextDatum(presence_status_name(row->status));
		cols.values[2][i] = TimestampTzGetDatum(row->last_active);
		cols.nulls[2][i] = row->last_active == 0;
		cols.values[3][i] = BoolGetDatum(row->visible);
	}
	args[0] = column(&cols, 0, TEXTOID);
	args[1] = column(&cols, 1, TEXTOID);
	args[2] = column(&cols, 2, TIMESTAMPTZOID);
	args[3] = column(&cols, 3, BOOLOID);
}

/*
 * The status messages of a batch's users (1.1), beside user_columns': the
 * text or NULL, and when it expires or NULL.
 */
static void
message_columns(PresenceBatch *batch, Datum *args)
{
	Columns		cols;

	columns_init(&cols, 2, batch->nusers);
	for (int i = 0; i < batch->nusers; i++)
	{
		PresenceUserRow *row = &batch->users[i];

		cols.nulls[0][i] = row->message == NULL;
		cols.values[0][i] = row->message ? CStringGetTextDatum(row->message) : (Datum) 0;
		cols.nulls[1][i] = row->message_expires == 0;
		cols.values[1][i] = TimestampTzGetDatum(row->message_expires);
	}
	args[0] = column(&cols, 0, TEXTOID);
	args[1] = column(&cols, 1, TIMESTAMPTZOID);
}

/*
 * The sessions of a batch, written and ended, as 6 arrays: user id, session
 * id, connected_at, meta, bound, ended.
 */
static void
session_columns(PresenceBatch *batch, Datum *args)
{
	Columns		cols;
	int			n = batch->nupserts + batch->ndeletes;

	columns_init(&cols, 6, n);
	for (int i = 0; i < n; i++)
	{
		bool		ended = i >= batch->nupserts;
		PresenceSessionRow *row = ended ? &batch->deletes[i - batch->nupserts] :
		&batch->upserts[i];

		cols.values[0][i] = CStringGetTextDatum(row->user_id);
		cols.values[1][i] = CStringGetTextDatum(row->session_id);
		cols.values[2][i] = TimestampTzGetDatum(row->connected_at);
		cols.nulls[3][i] = row->meta == NULL;
		cols.values[3][i] = row->meta ? CStringGetTextDatum(row->meta) : (Datum) 0;
		cols.values[4][i] = BoolGetDatum(row->bound);
		cols.values[5][i] = BoolGetDatum(ended);
	}
	args[0] = column(&cols, 0, TEXTOID);
	args[1] = column(&cols, 1, TEXTOID);
	args[2] = column(&cols, 2, TIMESTAMPTZOID);
	args[3] = column(&cols, 3, TEXTOID);
	args[4] = column(&cols, 4, BOOLOID);
	args[5] = column(&cols, 5, BOOLOID);
}

/*
 * The memberships of a batch's members as 5 arrays: channel, user id,
 * session id (NULL: the member has none left), meta, joined_at.
 */
static void
member_columns(PresenceBatch *batch, Datum *args)
{
	Columns		cols;

	columns_init(&cols, 5, batch->nmembers);
	for (int i = 0; i < batch->nmembers; i++)
	{
		PresenceMemberRow *row = &batch->members[i];

		cols.values[0][i] = CStringGetTextDatum(row->channel);
		cols.values[1][i] = CStringGetTextDatum(row->user_id);
		cols.nulls[2][i] = row->session_id == NULL;
		cols.values[2][i] = row->session_id ?
			CStringGetTextDatum(row->session_id) : (Datum) 0;
		cols.nulls[3][i] = row->meta == (Datum) 0;
		cols.values[3][i] = row->meta;
		cols.nulls[4][i] = row->joined_at == 0;
		cols.values[4][i] = TimestampTzGetDatum(row->joined_at);
	}
	args[0] = column(&cols, 0, TEXTOID);
	args[1] = column(&cols, 1, TEXTOID);
	args[2] = column(&cols, 2, TEXTOID);
	args[3] = column(&cols, 3, JSONBOID);
	args[4] = column(&cols, 4, TIMESTAMPTZOID);
}

/*
 * Appends one tick's rows to presence.journal: one row, whatever the number
 * of users, sessions and members, so the tick costs one insert however many
 * users came or went.  Ticks are numbered by time, so rows a restore brings
 * from another server sort before this server's own.
 */
static void
journal_append(PresenceBatch *batch)
{
	static SPIPlanPtr plan_1_0 = NULL;
	static SPIPlanPtr plan = NULL;
	static int64 last_tick = 0;
	Oid			types[18] = {INT8OID,
		TEXTARRAYOID, TEXTARRAYOID, TIMESTAMPTZARRAYOID, BOOLARRAYOID,
		TEXTARRAYOID, TEXTARRAYOID, TIMESTAMPTZARRAYOID, TEXTARRAYOID,
		BOOLARRAYOID, BOOLARRAYOID,
		TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, JSONBARRAYOID,
		TIMESTAMPTZARRAYOID, TEXTARRAYOID, TIMESTAMPTZARRAYOID};
	Datum		args[18];

	last_tick = Max(last_tick + 1, GetCurrentTimestamp());
	args[0] = Int64GetDatum(last_tick);
	user_columns(batch, &args[1]);
	session_columns(batch, &args[5]);
	if (!batch->with_members)
	{
		run(prepare(&plan_1_0,
					"INSERT INTO presence.journal (tick, user_ids,"
					" user_statuses, user_last_active, user_visible,"
					" session_users, session_ids, session_connected_at,"
					" session_meta, session_bound, session_ended) VALUES"
					" ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
					11, types),
			args, SPI_OK_INSERT);
		return;
	}
	member_columns(batch, &args[11]);
	message_columns(batch, &args[16]);
	run(prepare(&plan,
				"INSERT INTO presence.journal (tick, user_ids, user_statuses,"
				" user_last_active, user_visible, session_users, session_ids,"
				" session_connected_at, session_meta, session_bound,"
				" session_ended, member_channels, member_users,"
				" member_sessions, member_metas, member_joined_at,"
				" user_status_messages, user_message_expires) VALUES"
				" ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,"
				" $14, $15, $16, $17, $18)",
				18, types),
		args, SPI_OK_INSERT);
}

/*
 * Waits for the lock that the writers of the tables take besides the
 * worker's appends to the journal (which never conflict): the flusher's
 * folds, the worker's loading and resync.  Held until the transaction ends.
 *
 * It is a lock on the extension's pg_extension row with a sub-id of its own:
 * SQL commands lock whole objects (sub-id 0), and advisory locks have a lock
 * type of their own, so no role can take it and stall the worker or the
 * flusher; only this C code can.  (A lock on one of the tables would not do:
 * anyone who may look the table up can hold a weak lock on it, from PREPARE
 * in an open transaction, with no privilege on it.)  Waiting for it is an
 * ordinary lock wait: cancellable, and seen by the deadlock detector.
 */
static void
lock_tables(void)
{
	LockDatabaseObject(ExtensionRelationId, get_extension_oid("presence", false),
					   PRESENCE_LOCK_SUBID, ExclusiveLock);
}

/*
 * Folds the members' entries of the journal into presence.memberships: the
 * latest entry of each (channel, user) holds all of its memberships then,
 * so its rows become those (none, for an entry without a session).  Runs
 * before the sessions' fold, which deletes the memberships of sessions
 * that ended.
 *
 * The rows to keep go as an array per (channel, user), not as a NOT EXISTS
 * over the "latest" CTE: the planner, which cannot estimate a CTE, ran that
 * as a nested loop rescanning it for every row deleted, and a fold of a
 * few hundred thousand channel events took minutes (bench/channels.sh).
 */
static void
fold_memberships(Datum *last)
{
	static SPIPlanPtr plan = NULL;
	Oid			type = INT8OID;

	run(prepare(&plan,
				"WITH e AS ("
				" SELECT j.tick, e.channel, e.user_id, e.session_id, e.meta,"
				" e.joined_at, pg_catalog.max(j.tick) OVER"
				" (PARTITION BY e.channel COLLATE pg_catalog.\"C\", e.user_id COLLATE pg_catalog.\"C\")"
				" AS last"
				" FROM presence.journal j,"
				" ROWS FROM (pg_catalog.unnest(j.member_channels),"
				" pg_catalog.unnest(j.member_users),"
				" pg_catalog.unnest(j.member_sessions),"
				" pg_catalog.unnest(j.member_metas),"
				" pg_catalog.unnest(j.member_joined_at))"
				" AS e(channel, user_id, session_id, meta, joined_at)"
				" WHERE j.tick OPERATOR(pg_catalog.<=) $1),"
				" latest AS (SELECT * FROM e"
				" WHERE e.tick OPERATOR(pg_catalog.=) e.last),"
				" gone AS (DELETE FROM presence.memberships m"
				" USING (SELECT l.user_id, l.channel,"
				" pg_catalog.array_agg(l.session_id) FILTER"
				" (WHERE l.session_id IS NOT NULL) AS keep"
				" FROM latest l GROUP BY l.user_id, l.channel) k"
				" WHERE m.user_id OPERATOR(pg_catalog.=) k.user_id"
				" AND m.channel OPERATOR(pg_catalog.=) k.channel"
				" AND (k.keep IS NULL OR NOT m.session_id"
				" OPERATOR(pg_catalog.=) ANY (k.keep)))"
				" INSERT INTO presence.memberships"
				" (channel, user_id, session_id, meta, joined_at)"
				" SELECT l.channel, l.user_id, l.session_id, l.meta, l.joined_at"
				" FROM latest l WHERE l.session_id IS NOT NULL"
				" ON CONFLICT (user_id, session_id, channel) DO UPDATE SET"
				" meta = excluded.meta, joined_at = excluded.joined_at",
				1, &type),
		last, SPI_OK_INSERT);
}

/*
 * The statement that folds the users' entries of the journal into
 * presence.users: the latest entry of each user.  With returning, it
 * returns the rows it wrote, for the mirrors.
 */
static SPIPlanPtr
users_fold_plan(bool version_1_1, bool returning)
{
	static SPIPlanPtr plans[2][2] = {{NULL, NULL}, {NULL, NULL}};
	Oid			type = INT8OID;
	StringInfoData sql;

	if (plans[version_1_1][returning])
		return plans[version_1_1][returning];
	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "INSERT INTO presence.users AS u"
					 " (user_id, is_online, status, last_active, visible%s)"
					 " SELECT DISTINCT ON (e.user_id COLLATE pg_catalog.\"C\")"
					 " e.user_id, e.status OPERATOR(pg_catalog.<>) 'offline',"
					 " e.status, e.last_active, e.visible%s"
					 " FROM presence.journal j, ROWS FROM ("
					 " pg_catalog.unnest(j.user_ids),"
					 " pg_catalog.unnest(j.user_statuses),"
					 " pg_catalog.unnest(j.user_last_active),"
					 " pg_catalog.unnest(j.user_visible)%s)"
					 " AS e(user_id, status, last_active, visible%s)"
					 " WHERE j.tick OPERATOR(pg_catalog.<=) $1"
					 " ORDER BY e.user_id COLLATE pg_catalog.\"C\", j.tick DESC"
					 " ON CONFLICT (user_id) DO UPDATE SET"
					 " is_online = excluded.is_online, status = excluded.status,"
					 " last_active = COALESCE(excluded.last_active, u.last_active),"
					 " visible = excluded.visible%s",
					 version_1_1 ? ", status_message, status_message_expires_at" : "",
					 version_1_1 ? ", e.status_message, e.expires_at" : "",
					 version_1_1 ? ", pg_catalog.unnest(j.user_status_messages),"
					 " pg_catalog.unnest(j.user_message_expires)" : "",
					 version_1_1 ? ", status_message, expires_at" : "",
					 version_1_1 ? ", status_message = excluded.status_message,"
					 " status_message_expires_at = excluded.status_message_expires_at" : "");
	if (returning)
		appendStringInfoString(&sql,
							   " RETURNING u.user_id, u.status, u.last_active, u.visible");
	return prepare(&plans[version_1_1][returning], sql.data, 1, &type);
}

/*
 * Folds the journal up to tick *last into the tables, then empties it.
 * version_1_1: the tables have 1.1's columns.  changed: if not NULL, gets
 * the users whose row was written, for the mirrors.
 */
static void
fold(Datum *last, bool version_1_1, MirrorRows *changed)
{
	static SPIPlanPtr sessions_plan = NULL;
	static SPIPlanPtr ended_plan = NULL;
	static SPIPlanPtr clear_plan = NULL;
	Oid			type = INT8OID;

	if (version_1_1)
	{
		fold_memberships(last);
		run(prepare(&ended_plan,
					"WITH latest AS ("
					" SELECT DISTINCT ON (e.user_id COLLATE pg_catalog.\"C\","
					" e.session_id COLLATE pg_catalog.\"C\") e.*"
					" FROM presence.journal j,"
					" ROWS FROM (pg_catalog.unnest(j.session_users),"
					" pg_catalog.unnest(j.session_ids),"
					" pg_catalog.unnest(j.session_ended))"
					" AS e(user_id, session_id, ended)"
					" WHERE j.tick OPERATOR(pg_catalog.<=) $1"
					" ORDER BY e.user_id COLLATE pg_catalog.\"C\", e.session_id COLLATE pg_catalog.\"C\","
					" j.tick DESC)"
					" DELETE FROM presence.memberships m USING latest l"
					" WHERE l.ended AND m.user_id OPERATOR(pg_catalog.=) l.user_id"
					" AND m.session_id OPERATOR(pg_catalog.=) l.session_id",
					1, &type),
			last, SPI_OK_DELETE);
	}

	if (changed)
	{
		run(users_fold_plan(version_1_1, true), last, SPI_OK_INSERT_RETURNING);
		mirror_rows_from_spi(changed);
		SPI_freetuptable(SPI_tuptable);
	}
	else
		run(users_fold_plan(version_1_1, false), last, SPI_OK_INSERT);
	run(prepare(&sessions_plan,
				"WITH latest AS ("
				" SELECT DISTINCT ON (e.user_id COLLATE pg_catalog.\"C\","
				" e.session_id COLLATE pg_catalog.\"C\") e.*"
				" FROM presence.journal j, ROWS FROM ("
				" pg_catalog.unnest(j.session_users),"
				" pg_catalog.unnest(j.session_ids),"
				" pg_catalog.unnest(j.session_connected_at),"
				" pg_catalog.unnest(j.session_meta),"
				" pg_catalog.unnest(j.session_bound),"
				" pg_catalog.unnest(j.session_ended))"
				" AS e(user_id, session_id, connected_at, meta, bound, ended)"
				" WHERE j.tick OPERATOR(pg_catalog.<=) $1"
				" ORDER BY e.user_id COLLATE pg_catalog.\"C\","
				" e.session_id COLLATE pg_catalog.\"C\", j.tick DESC),"
				" gone AS (DELETE FROM presence.sessions s USING latest l"
				" WHERE l.ended AND s.user_id OPERATOR(pg_catalog.=) l.user_id"
				" AND s.session_id OPERATOR(pg_catalog.=) l.session_id)"
				" INSERT INTO presence.sessions"
				" (user_id, session_id, connected_at, meta, bound)"
				" SELECT user_id, session_id, connected_at,"
				" meta::pg_catalog.jsonb, bound"
				" FROM latest WHERE NOT ended"
				" ON CONFLICT (user_id, session_id) DO UPDATE SET"
				" connected_at = excluded.connected_at, meta = excluded.meta,"
				" bound = excluded.bound",
				1, &type),
		last, SPI_OK_INSERT);
	run(prepare(&clear_plan,
				"DELETE FROM presence.journal"
				" WHERE tick OPERATOR(pg_catalog.<=) $1",
				1, &type),
		last, SPI_OK_DELETE);
}

/*
 * Folds the journal into the tables: the latest entry of each user, of
 * each session and of each member, in a few statements, then empties the
 * journal.  Then the mirrors get the users whose row changed: written at
 * once by the flusher (in_flusher), or left in presence.mirror_state for
 * its next fold by the worker, which runs no application code.  Returns
 * whether there was anything to fold or to mirror (a new mirror's sync).  The latest entries are found in
 * byte order (COLLATE "C"): it groups ids exactly as the database's
 * deterministic collation does, and sorts them twice as fast.
 */
bool
persist_flush(bool in_flusher)
{
	static SPIPlanPtr last_plan = NULL;
	MirrorRows	changed = {0};
	Datum		last;
	bool		isnull;
	bool		version_1_1;
	bool		mirrors;

	lock_tables();
	run(prepare(&last_plan, "SELECT pg_catalog.max(tick) FROM presence.journal",
				0, NULL),
		NULL, SPI_OK_SELECT);
	last = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	/* Mirrors and memberships are 1.1's; a database may still be at 1.0. */
	version_1_1 = persist_has_memberships();
	mirrors = version_1_1 && mirror_configured();
	if (!isnull)
		fold(&last, version_1_1, mirrors ? &changed : NULL);
	if (mirrors && in_flusher)
		return mirror_flush(&changed) || !isnull;
	if (mirrors)
		mirror_defer(&changed);
	return !isnull;
}

/*
 * Before a full batch, which holds every user and session of the registry:
 * the tables and the journal are emptied of sessions, and users the
 * registry no longer tracks are marked offline (and, for the mirrors,
 * left in presence.mirror_state).
 */
static void
replace_all(PresenceBatch *batch)
{
	static SPIPlanPtr clear_plan = NULL;
	static SPIPlanPtr clear_members_plan = NULL;
	static SPIPlanPtr offline_plan = NULL;
	Oid			type = TEXTARRAYOID;
	Datum	   *ids;
	Datum		arg;

	lock_tables();
	run(prepare(&clear_plan,
				"WITH j AS (DELETE FROM presence.journal)"
				" DELETE FROM presence.sessions", 0, NULL),
		NULL, SPI_OK_DELETE);
	if (batch->with_members)
		run(prepare(&clear_members_plan,
					"DELETE FROM presence.memberships", 0, NULL),
			NULL, SPI_OK_DELETE);
	ids = palloc_extended(sizeof(Datum) * Max(batch->nusers, 1), MCXT_ALLOC_HUGE);
	for (int i = 0; i < batch->nusers; i++)
		ids[i] = CStringGetTextDatum(batch->users[i].user_id);
	arg = make_array(ids, NULL, batch->nusers, TEXTOID);
	run(prepare(&offline_plan,
				"UPDATE presence.users u SET status = 'offline', is_online = false"
				" WHERE u.status OPERATOR(pg_catalog.<>) 'offline' AND NOT EXISTS"
				" (SELECT FROM pg_catalog.unnest($1) AS k(user_id)"
				" WHERE k.user_id OPERATOR(pg_catalog.=) u.user_id)"
				" RETURNING u.user_id, u.status, u.last_active, u.visible",
				1, &type),
		&arg, SPI_OK_UPDATE_RETURNING);
	/* Those users changed outside the journal: the mirrors need them. */
	if (batch->with_members && SPI_processed > 0)
	{
		MirrorRows	offline = {0};

		mirror_rows_from_spi(&offline);
		if (mirror_configured())
			mirror_defer(&offline);
	}
}

/*
 * Writes one tick's batch to the journal (a full one replaces everything).
 * Returns whether anything was written.
 */
bool
persist_batch(PresenceBatch *batch)
{
	if (batch->full)
		replace_all(batch);
	if (batch->nusers == 0 && batch->nupserts == 0 && batch->ndeletes == 0 &&
		batch->nmembers == 0)
		return batch->full;
	journal_append(batch);
	return true;
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
				"SELECT pg_catalog.setval("
				"'presence.notification_seq'::pg_catalog.regclass,"
				" greatest(CASE WHEN is_called THEN last_value"
				" ELSE last_value OPERATOR(pg_catalog.-) 1 END, $1)"
				" OPERATOR(pg_catalog.+) $2, true) OPERATOR(pg_catalog.-) $2"
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
 * Loads the registry from the tables: invisible users, users not known to
 * be offline, users with sessions (shown offline for
 * presence.offline_after) and users with a status message (1.1), then the
 * sessions of users that have a row.  The worker
 * writes a user's row no later than the tick after its session's, and a
 * restore copies presence.sessions before presence.users: a session whose
 * user has no row yet waits for the next load, because its user may be
 * invisible.  Loading merges into a live registry too, when a restore adds
 * rows.  Stops, and tells the server log, when the registry is too small
 * for the tables.
 */
/* Loads one row of presence.users; false when the registry is full. */
static bool
load_user_row(HeapTuple t, TupleDesc d, TimestampTz now)
{
	char	   *status_name = SPI_getvalue(t, d, 2);
	PresenceStatus status = PRESENCE_OFFLINE;
	bool		version_1_1 = d->natts > 4;

	if (status_name)
		presence_status_parse(status_name, &status);
	return registry_load_user(SPI_getvalue(t, d, 1), status,
							  get_timestamp(t, d, 3), get_bool(t, d, 4),
							  version_1_1 ? SPI_getvalue(t, d, 5) : NULL,
							  version_1_1 ? get_timestamp(t, d, 6) : 0, now);
}

/* Loads one row of presence.sessions; false when the registry is full. */
static bool
load_session_row(HeapTuple t, TupleDesc d, TimestampTz now)
{
	return registry_load_session(SPI_getvalue(t, d, 1), SPI_getvalue(t, d, 2),
								 get_timestamp(t, d, 3), SPI_getvalue(t, d, 4),
								 get_bool(t, d, 5), now);
}

/* Loads one row of presence.memberships; false when the registry is full. */
static bool
load_membership_row(HeapTuple t, TupleDesc d, TimestampTz now)
{
	bool		isnull;
	Datum		meta = SPI_getbinval(t, d, 4, &isnull);

	return registry_load_membership(SPI_getvalue(t, d, 1), SPI_getvalue(t, d, 2),
									SPI_getvalue(t, d, 3),
									isnull ? NULL : DatumGetJsonbP(meta),
									get_timestamp(t, d, 5));
}

/*
 * Runs a query through a cursor, LOAD_BATCH rows at a time, and hands each
 * row to load_row until it says the registry is full.  Read-only: it uses
 * the active snapshot, the same for every query of a load.
 */
static bool
load_rows(const char *query, bool (*load_row) (HeapTuple, TupleDesc, TimestampTz),
		  TimestampTz now)
{
	Portal		portal = SPI_cursor_open_with_args(NULL, query, 0, NULL, NULL,
												   NULL, true, 0);
	bool		room = true;

	while (room)
	{
		SPI_cursor_fetch(portal, true, LOAD_BATCH);
		if (SPI_processed == 0)
			break;
		for (uint64 i = 0; room && i < SPI_processed; i++)
			room = load_row(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, now);
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	return room;
}

void
persist_load(TimestampTz now, bool with_members)
{
	bool		room;

	/*
	 * One snapshot for both queries, taken after the fold: a restore
	 * committing presence.users between them would otherwise bring sessions
	 * of users whose rows (and visibility) were not loaded.
	 */
	persist_flush(false);
	CommandCounterIncrement();
	PushActiveSnapshot(GetTransactionSnapshot());
	room = load_rows(with_members ?
					 "SELECT u.user_id, u.status, u.last_active, u.visible,"
					 " u.status_message, u.status_message_expires_at"
					 " FROM presence.users u"
					 " WHERE NOT u.visible OR u.status OPERATOR(pg_catalog.<>) 'offline'"
					 " OR u.status_message IS NOT NULL"
					 " OR EXISTS (SELECT FROM presence.sessions s"
					 " WHERE s.user_id OPERATOR(pg_catalog.=) u.user_id)" :
					 "SELECT u.user_id, u.status, u.last_active, u.visible"
					 " FROM presence.users u"
					 " WHERE NOT u.visible OR u.status OPERATOR(pg_catalog.<>) 'offline'"
					 " OR EXISTS (SELECT FROM presence.sessions s"
					 " WHERE s.user_id OPERATOR(pg_catalog.=) u.user_id)",
					 load_user_row, now) &&
		load_rows("SELECT s.user_id, s.session_id, s.connected_at,"
				  " s.meta::pg_catalog.text, s.bound"
				  " FROM presence.sessions s WHERE EXISTS"
				  " (SELECT FROM presence.users u"
				  " WHERE u.user_id OPERATOR(pg_catalog.=) s.user_id)",
				  load_session_row, now);
	/* In join order; those of sessions not loaded are left out. */
	if (room && with_members)
		room = load_rows("SELECT m.channel, m.user_id, m.session_id, m.meta,"
						 " m.joined_at FROM presence.memberships m"
						 " ORDER BY m.joined_at, m.channel COLLATE pg_catalog.\"C\","
						 " m.user_id COLLATE pg_catalog.\"C\", m.session_id COLLATE pg_catalog.\"C\"",
						 load_membership_row, now);
	PopActiveSnapshot();

	if (!room)
		event_record(EVENT_LOAD_INCOMPLETE, ERRCODE_CONFIGURATION_LIMIT_EXCEEDED,
					 "presence registry is too small for the users, sessions and memberships in the tables");
	registry_load_finish(now);
}
