/*-------------------------------------------------------------------------
 *
 * mirror.c
 *	  The flusher's side of mirrors: after each fold, the users whose row in
 *	  presence.users changed are written to every mirrored table, one
 *	  UPDATE per mirror, as that table's owner.
 *
 * What a fold changes is what it wrote to presence.users, as others see
 * it: an invisible user is offline, and their last activity is left as the
 * table has it.  A new mirror (or one configured again, or restored) is
 * first synced whole: rows shown online that presence does not have online
 * are set offline, then every user of presence.users is written.  The
 * statements only UPDATE: ids that are not in the table change nothing.
 *
 * The application's table is not the extension's: its owner's triggers
 * fire on these updates, it may be locked, altered or dropped.  So each
 * mirror is written in a subtransaction of its own, as the table's owner,
 * under SECURITY_RESTRICTED_OPERATION (as VACUUM and REFRESH MATERIALIZED
 * VIEW run a table's functions), never as the superuser the flusher is,
 * and waiting for a lock no longer than a flush interval (10 s at most).
 * An ERROR there skips that mirror for this fold: it is told to the server
 * log, and the users it did not get are kept in presence.mirror_state for
 * the next fold.  Ids that are not values of the id column's type are left
 * out beforehand where the type is known (integers, uuid, text); a data
 * error in the statement (an id of another type, a CHECK constraint, a
 * trigger's RAISE) is narrowed down by halves to the rows that cause it,
 * which are skipped, so that one bad row never holds back the others.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "mirror.h"
#include "registry.h"

/* Users read from presence.users per statement when a mirror is synced. */
#define SYNC_BATCH			10000

/* Rows one write narrows down to before it skips the rest of a failing range. */
#define MAX_SKIPPED			100

/* The longest a mirror waits for a lock on its table or a row. */
#define MAX_LOCK_WAIT_MS	10000

/* One mirror, as a fold finds it. */
typedef struct Mirror
{
	MirrorConfig config;
	Datum		configured;		/* its created_at */
	bool		synced;			/* this configuration has been synced */
	Datum		pending;		/* its ids not yet written (text[]), or 0 */
} Mirror;

/* The rows of one mirror's write, as the arrays its statement unnests. */
typedef struct Write
{
	const MirrorTarget *target;
	char	   *sql;
	int			n;
	Datum	   *ids;
	Datum	   *online;
	Datum	   *last_active;
	bool	   *last_active_null;
	Datum	   *status;
	int			skipped;		/* rows left out for an error of their own */
	int			skip_sqlerrcode;	/* the latest such error */
	char	   *skip_message;
} Write;

/* Runs a statement as the flusher, which expects its result code. */
static void
run_checked(const char *sql, int nargs, Oid *types, Datum *values, int expected)
{
	int			rc = SPI_execute_with_args(sql, nargs, types, values, NULL,
										   false, 0);

	if (rc != expected)
		elog(ERROR, "presence flusher statement failed: %s",
			 SPI_result_code_string(rc));
}

/* Whether any mirror is configured: the fold then says what it changed. */
bool
mirror_configured(void)
{
	bool		isnull;

	run_checked("SELECT EXISTS (SELECT FROM presence.mirrors)", 0, NULL, NULL,
				SPI_OK_SELECT);
	return DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
									  SPI_tuptable->tupdesc, 1, &isnull));
}

/* Adds a user as presence.users has them: status as others see it. */
void
mirror_rows_add(MirrorRows *rows, const char *user_id, const char *status,
				TimestampTz last_active, bool visible)
{
	MirrorRow  *row;

	if (rows->n == rows->max)
	{
		rows->max = Max(64, rows->max * 2);
		rows->rows = rows->rows ?
			repalloc_huge(rows->rows, sizeof(MirrorRow) * rows->max) :
			palloc_extended(sizeof(MirrorRow) * rows->max, MCXT_ALLOC_HUGE);
	}
	row = &rows->rows[rows->n++];
	row->user_id = pstrdup(user_id);
	row->status = PRESENCE_OFFLINE;
	presence_status_parse(status, &row->status);
	/* An invisible user's activity is nobody's business. */
	row->last_active = visible ? last_active : 0;
}

/*
 * Adds the rows of the last SPI result, whose columns are user_id, status,
 * last_active and visible.
 */
void
mirror_rows_from_spi(MirrorRows *rows)
{
	TupleDesc	desc = SPI_tuptable->tupdesc;

	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		bool		isnull;
		Datum		last_active = SPI_getbinval(t, desc, 3, &isnull);
		bool		no_activity = isnull;
		Datum		visible = SPI_getbinval(t, desc, 4, &isnull);

		mirror_rows_add(rows, SPI_getvalue(t, desc, 1), SPI_getvalue(t, desc, 2),
						no_activity ? 0 : DatumGetTimestampTz(last_active),
						!isnull && DatumGetBool(visible));
	}
}

/* The users' ids as a text[]. */
static Datum
ids_array(MirrorRows *rows)
{
	Datum	   *ids = palloc_extended(sizeof(Datum) * Max(rows->n, 1), MCXT_ALLOC_HUGE);

	for (int i = 0; i < rows->n; i++)
		ids[i] = CStringGetTextDatum(rows->rows[i].user_id);
	return PointerGetDatum(construct_array(ids, rows->n, TEXTOID, -1, false,
										   TYPALIGN_INT));
}

/*
 * For the worker, whose folds (before a load) and resyncs change users too:
 * it runs no application code, so those users wait in presence.mirror_state
 * for the flusher's next fold.  Mirrors not synced yet will be synced whole.
 */
void
mirror_defer(MirrorRows *changed)
{
	Oid			type = TEXTARRAYOID;
	Datum		ids;

	if (changed->n == 0)
		return;
	ids = ids_array(changed);
	run_checked("UPDATE presence.mirror_state"
				" SET pending = pending OPERATOR(pg_catalog.||) $1",
				1, &type, &ids, SPI_OK_UPDATE);
}

/* "schema.table" for the server log, or the OID of a table that is gone. */
static char *
table_name(Oid relid)
{
	char	   *name = get_rel_name(relid);

	if (name == NULL)
		return psprintf("relation %u", relid);
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  name);
}

/*
 * The mirror's UPDATE: the rows whose mirrored columns differ from what
 * presence has, matched by id through the equality of the id's type.
 * Every operator and type is named with its schema; the table's own names
 * are quoted.
 */
static char *
update_sql(const MirrorTarget *t)
{
	StringInfoData sql;
	StringInfoData changed;
	const char *sep = "";

	initStringInfo(&sql);
	initStringInfo(&changed);
	appendStringInfo(&sql, "UPDATE %s AS t SET ", t->table);
	if (t->online_column)
	{
		appendStringInfo(&sql, "%s = k.online::%s", t->online_column, t->online_type);
		appendStringInfo(&changed, "(t.%s IS NULL OR t.%s::pg_catalog.bool OPERATOR(pg_catalog.<>) k.online)",
						 t->online_column, t->online_column);
		sep = ", ";
	}
	if (t->last_active_column)
	{
		appendStringInfo(&sql, "%s%s = COALESCE(k.last_active::%s, t.%s)", sep,
						 t->last_active_column, t->last_active_type,
						 t->last_active_column);
		appendStringInfo(&changed, "%s(k.last_active IS NOT NULL AND (t.%s IS NULL OR t.%s OPERATOR(pg_catalog.<>) k.last_active::%s))",
						 *sep ? " OR " : "", t->last_active_column,
						 t->last_active_column, t->last_active_type);
		sep = ", ";
	}
	if (t->status_column)
	{
		appendStringInfo(&sql, "%s%s = k.status::%s", sep, t->status_column,
						 t->status_type);
		appendStringInfo(&changed, "%s(t.%s IS NULL OR t.%s::pg_catalog.text OPERATOR(pg_catalog.<>) k.status)",
						 *sep ? " OR " : "", t->status_column, t->status_column);
	}
	appendStringInfo(&sql,
					 " FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.text[]),"
					 " pg_catalog.unnest($2::pg_catalog.bool[]),"
					 " pg_catalog.unnest($3::pg_catalog.%s[]),"
					 " pg_catalog.unnest($4::pg_catalog.text[]))"
					 " AS k(id, online, last_active, status)"
					 " WHERE t.%s %s k.id%s AND (%s)",
					 t->last_active_local ? "timestamp" : "timestamptz",
					 t->id_column, t->id_eq, t->id_cast, changed.data);
	pfree(changed.data);
	return sql.data;
}

/*
 * Runs a statement on the application's table as its owner, in a security
 * restricted operation: its triggers cannot SET ROLE back to the flusher's
 * superuser, nor leave temporary objects, cursors or settings behind.
 */
static void
run_as_table_owner(const MirrorTarget *t, const char *sql, int nargs,
				   Oid *types, Datum *values)
{
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;
	int			rc;

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(t->owner, save_sec_context |
						   SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	save_nestlevel = NewGUCNestLevel();
	rc = SPI_execute_with_args(sql, nargs, types, values, NULL, false, 0);
	if (rc != SPI_OK_UPDATE)
		elog(ERROR, "presence flusher: update of %s failed: %s", t->table,
			 SPI_result_code_string(rc));
	/* Whatever its triggers set goes back. */
	AtEOXact_GUC(false, save_nestlevel);
	SetUserIdAndSecContext(save_userid, save_sec_context);
}

/* The mirror's UPDATE for rows lo to hi - 1 of the write. */
static void
update_range(Write *w, int lo, int hi)
{
	int			n = hi - lo;
	Oid			types[4] = {TEXTARRAYOID, BOOLARRAYOID,
		w->target->last_active_local ? TIMESTAMPARRAYOID : TIMESTAMPTZARRAYOID,
	TEXTARRAYOID};
	Oid			stamp = w->target->last_active_local ? TIMESTAMPOID : TIMESTAMPTZOID;
	int			dims[1] = {n};
	int			lbs[1] = {1};
	Datum		args[4];

	args[0] = PointerGetDatum(construct_array(w->ids + lo, n, TEXTOID, -1,
											  false, TYPALIGN_INT));
	args[1] = PointerGetDatum(construct_array(w->online + lo, n, BOOLOID, 1,
											  true, TYPALIGN_CHAR));
	/* UTC wall-clock time has the same value as the timestamptz. */
	args[2] = PointerGetDatum(construct_md_array(w->last_active + lo,
												 w->last_active_null + lo,
												 1, dims, lbs, stamp, 8,
												 FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	args[3] = PointerGetDatum(construct_array(w->status + lo, n, TEXTOID, -1,
											  false, TYPALIGN_INT));
	run_as_table_owner(w->target, w->sql, 4, types, args);
}

/*
 * Errors that depend on the rows written, found by narrowing the rows
 * down: a value the column's type or a constraint refuses, a trigger's
 * RAISE.  Others (a lock wait given up, a privilege) are the table's.
 */
static bool
row_error(int sqlerrcode)
{
	int			class = ERRCODE_TO_CATEGORY(sqlerrcode);

	return class == ERRCODE_DATA_EXCEPTION ||
		class == ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION ||
		class == ERRCODE_PLPGSQL_ERROR;
}

/*
 * Runs work(arg) in a subtransaction of its own.  Returns NULL if it
 * worked; else its ERROR, with the subtransaction rolled back (which also
 * gives back the role and the settings it changed).
 */
static ErrorData *
in_subtransaction(void (*work) (void *), void *arg)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	ErrorData  *volatile edata = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);
	PG_TRY();
	{
		work(arg);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
	}
	PG_END_TRY();
	return edata;
}

/* A range of a write's rows, for in_subtransaction. */
typedef struct Range
{
	Write	   *w;
	int			lo;
	int			hi;
} Range;

static void
update_range_work(void *arg)
{
	Range	   *r = arg;

	update_range(r->w, r->lo, r->hi);
}

/*
 * Writes rows lo to hi - 1 in a subtransaction; a row error is narrowed
 * down by halves to the rows that cause it, which are skipped.  Any other
 * ERROR is raised again, for the mirror's own subtransaction.
 */
static void
write_range(Write *w, int lo, int hi)
{
	Range		range = {w, lo, hi};
	ErrorData  *edata;

	if (lo == hi)
		return;
	edata = in_subtransaction(update_range_work, &range);
	if (edata == NULL)
		return;
	if (!row_error(edata->sqlerrcode))
		ReThrowError(edata);
	if (hi - lo == 1 || w->skipped >= MAX_SKIPPED)
	{
		w->skipped += hi - lo;
		w->skip_sqlerrcode = edata->sqlerrcode;
		w->skip_message = psprintf("%s: %s", TextDatumGetCString(w->ids[lo]),
								   edata->message);
		FreeErrorData(edata);
		return;
	}
	FreeErrorData(edata);
	write_range(w, lo, lo + (hi - lo) / 2);
	write_range(w, lo + (hi - lo) / 2, hi);
}

/* Writes the users to the mirror's table, in one statement if all goes well. */
static void
write_rows(const MirrorTarget *t, MirrorRows *rows)
{
	Write		w = {0};

	w.target = t;
	w.sql = update_sql(t);
	w.ids = palloc_extended(sizeof(Datum) * Max(rows->n, 1), MCXT_ALLOC_HUGE);
	w.online = palloc_extended(sizeof(Datum) * Max(rows->n, 1), MCXT_ALLOC_HUGE);
	w.last_active = palloc_extended(sizeof(Datum) * Max(rows->n, 1), MCXT_ALLOC_HUGE);
	w.last_active_null = palloc_extended(sizeof(bool) * Max(rows->n, 1), MCXT_ALLOC_HUGE);
	w.status = palloc_extended(sizeof(Datum) * Max(rows->n, 1), MCXT_ALLOC_HUGE);
	for (int i = 0; i < rows->n; i++)
	{
		MirrorRow  *row = &rows->rows[i];

		/* Not a value of the id's type: not in the table either. */
		if (!mirror_id_valid(t->id_check, row->user_id))
			continue;
		w.ids[w.n] = CStringGetTextDatum(row->user_id);
		w.online[w.n] = BoolGetDatum(row->status != PRESENCE_OFFLINE);
		w.last_active[w.n] = TimestampTzGetDatum(row->last_active);
		w.last_active_null[w.n] = row->last_active == 0;
		w.status[w.n] = CStringGetTextDatum(presence_status_name(row->status));
		w.n++;
	}
	write_range(&w, 0, w.n);
	if (w.skipped == 1)
		event_record(EVENT_MIRROR_SKIPPED, w.skip_sqlerrcode,
					 psprintf("%s refused the row of user %s", t->table,
							  w.skip_message));
	else if (w.skipped > 1)
		event_record(EVENT_MIRROR_SKIPPED, w.skip_sqlerrcode,
					 psprintf("%s refused %d rows, the latest of user %s",
							  t->table, w.skipped, w.skip_message));
}

/*
 * The first step of a sync: rows shown online (or with a status other than
 * 'offline') whose id is not one of the users presence has online are set
 * offline.  Their ids are compared as text, so no id can fail a cast; a
 * user whose id is not in the type's own text form ('042' for 42) is set
 * offline here and online again by the next step.
 */
static void
sync_offline(const MirrorTarget *t)
{
	StringInfoData sql;
	Oid			type = TEXTARRAYOID;
	Datum		online;
	bool		isnull;

	if (!t->online_column && !t->status_column)
		return;
	run_checked("SELECT COALESCE(pg_catalog.array_agg(u.user_id), '{}')"
				" FROM presence.users u"
				" WHERE u.status OPERATOR(pg_catalog.<>) 'offline'",
				0, NULL, NULL, SPI_OK_SELECT);
	online = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	online = PointerGetDatum(PG_DETOAST_DATUM_COPY(online));

	initStringInfo(&sql);
	appendStringInfo(&sql, "UPDATE %s AS t SET ", t->table);
	if (t->online_column)
		appendStringInfo(&sql, "%s = false::%s%s", t->online_column, t->online_type,
						 t->status_column ? ", " : "");
	if (t->status_column)
		appendStringInfo(&sql, "%s = 'offline'::%s", t->status_column, t->status_type);
	appendStringInfoString(&sql, " WHERE (");
	if (t->online_column)
		appendStringInfo(&sql, "t.%s IS NOT FALSE%s", t->online_column,
						 t->status_column ? " OR " : "");
	if (t->status_column)
		appendStringInfo(&sql, "t.%s IS NULL OR t.%s::pg_catalog.text OPERATOR(pg_catalog.<>) 'offline'",
						 t->status_column, t->status_column);
	appendStringInfo(&sql, ") AND NOT EXISTS (SELECT FROM pg_catalog.unnest($1::pg_catalog.text[]) AS k(id)"
					 " WHERE k.id OPERATOR(pg_catalog.=) t.%s::pg_catalog.text)",
					 t->id_column);
	run_as_table_owner(t, sql.data, 1, &type, &online);
}

/*
 * Syncs a mirror whole: the rows presence does not have online are set
 * offline, then every user of presence.users is written, some thousands a
 * statement.
 */
static void
sync_all(const MirrorTarget *t)
{
	Portal		portal;
	MemoryContext batch = AllocSetContextCreate(CurrentMemoryContext,
												"presence mirror sync",
												ALLOCSET_DEFAULT_SIZES);

	sync_offline(t);
	portal = SPI_cursor_open_with_args(NULL,
									   "SELECT u.user_id, u.status, u.last_active, u.visible"
									   " FROM presence.users u",
									   0, NULL, NULL, NULL, false, 0);
	for (;;)
	{
		MirrorRows	rows = {0};
		MemoryContext old;

		SPI_cursor_fetch(portal, true, SYNC_BATCH);
		if (SPI_processed == 0)
			break;
		/* A million users are synced in the memory of ten thousand. */
		old = MemoryContextSwitchTo(batch);
		mirror_rows_from_spi(&rows);
		SPI_freetuptable(SPI_tuptable);
		write_rows(t, &rows);
		MemoryContextSwitchTo(old);
		MemoryContextReset(batch);
	}
	SPI_cursor_close(portal);
	MemoryContextDelete(batch);
}

/*
 * Writes one mirror: whole if it is new, else the users the fold changed
 * and those an earlier fold could not write.  Returns false if the table
 * no longer exists.
 */
static bool
write_mirror(Mirror *m, MirrorTarget *target, MirrorRows *changed)
{
	int			save_nestlevel = NewGUCNestLevel();
	char		timeout[32];

	snprintf(timeout, sizeof(timeout), "%d",
			 Min(presence_flush_interval_ms, MAX_LOCK_WAIT_MS));
	(void) set_config_option("lock_timeout", timeout, PGC_SUSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	if (!mirror_resolve(&m->config, RowExclusiveLock, target))
	{
		AtEOXact_GUC(true, save_nestlevel);
		return false;
	}
	if (!m->synced)
		sync_all(target);
	else
	{
		if (m->pending != (Datum) 0)
		{
			Oid			type = TEXTARRAYOID;

			run_checked("SELECT u.user_id, u.status, u.last_active, u.visible"
						" FROM presence.users u"
						" WHERE u.user_id OPERATOR(pg_catalog.=) ANY ($1)",
						1, &type, &m->pending, SPI_OK_SELECT);
			mirror_rows_from_spi(changed);
		}
		if (changed->n > 0)
			write_rows(target, changed);
	}
	AtEOXact_GUC(true, save_nestlevel);
	return true;
}

/*
 * After a write: the mirror is synced, with nothing pending.  The state
 * names the configuration synced, so that one made meanwhile by mirror(),
 * whichever commits first, is synced at the next fold.
 */
static void
mirror_written(Mirror *m)
{
	Oid			types[2] = {REGCLASSOID, TIMESTAMPTZOID};
	Datum		args[2] = {ObjectIdGetDatum(m->config.relid), m->configured};

	if (m->synced && m->pending == (Datum) 0)
		return;
	run_checked("INSERT INTO presence.mirror_state AS s (target, synced)"
				" VALUES ($1, $2) ON CONFLICT (target) DO UPDATE"
				" SET synced = excluded.synced, pending = '{}'",
				2, types, args, SPI_OK_INSERT);
}

/* A mirror whose table is gone: its configuration goes too. */
static void
mirror_forget(Mirror *m)
{
	Oid			type = REGCLASSOID;
	Datum		relid = ObjectIdGetDatum(m->config.relid);

	run_checked("WITH s AS (DELETE FROM presence.mirror_state s"
				" WHERE s.target OPERATOR(pg_catalog.=) $1)"
				" DELETE FROM presence.mirrors m WHERE m.target OPERATOR(pg_catalog.=) $1",
				1, &type, &relid, SPI_OK_DELETE);
	event_record(EVENT_MIRROR_REMOVED, ERRCODE_UNDEFINED_TABLE,
				 psprintf("relation %u does not exist", m->config.relid));
}

/* The users of a failed write wait for the next fold. */
static void
mirror_failed(Mirror *m, MirrorRows *changed, ErrorData *edata)
{
	Oid			types[2] = {REGCLASSOID, TEXTARRAYOID};
	Datum		args[2];

	event_record(EVENT_MIRROR_FAILED, edata->sqlerrcode,
				 psprintf("%s: %s", table_name(m->config.relid), edata->message));
	if (!m->synced || changed->n == 0)
		return;
	args[0] = ObjectIdGetDatum(m->config.relid);
	args[1] = ids_array(changed);
	run_checked("UPDATE presence.mirror_state"
				" SET pending = pending OPERATOR(pg_catalog.||) $2"
				" WHERE target OPERATOR(pg_catalog.=) $1",
				2, types, args, SPI_OK_UPDATE);
}

/* One mirror's write, for in_subtransaction. */
typedef struct MirrorWork
{
	Mirror	   *m;
	MirrorRows *rows;
	bool		exists;
} MirrorWork;

static void
write_mirror_work(void *arg)
{
	MirrorWork *work = arg;
	MirrorTarget target;

	work->exists = write_mirror(work->m, &target, work->rows);
}

/*
 * Writes one mirror in a subtransaction of its own: whatever goes wrong
 * with the application's table is rolled back and logged, and the fold
 * goes on.
 */
static void
mirror_one(Mirror *m, MirrorRows *changed)
{
	MirrorRows	rows = *changed;
	MirrorWork	work = {m, &rows, true};
	ErrorData  *edata;

	/* Its own copy of the list, which pending users are added to. */
	rows.rows = palloc_extended(sizeof(MirrorRow) * Max(changed->n, 1), MCXT_ALLOC_HUGE);
	memcpy(rows.rows, changed->rows, sizeof(MirrorRow) * changed->n);
	rows.max = Max(changed->n, 1);

	edata = in_subtransaction(write_mirror_work, &work);
	if (edata != NULL)
		mirror_failed(m, changed, edata);
	else if (!work.exists)
		mirror_forget(m);
	else
		mirror_written(m);
}

/*
 * After a fold: writes every mirror, whole if it is new, else the users
 * the fold changed (and those an earlier fold could not write).  Returns
 * whether any mirror had something to write.
 */
bool
mirror_flush(MirrorRows *changed)
{
	Mirror	   *mirrors;
	int			n;
	bool		wrote = false;

	run_checked("SELECT m.target::pg_catalog.oid, m.id_column::pg_catalog.text,"
				" m.online_column::pg_catalog.text, m.last_active_column::pg_catalog.text,"
				" m.status_column::pg_catalog.text,"
				" COALESCE(s.synced OPERATOR(pg_catalog.=) m.created_at, false),"
				" CASE WHEN pg_catalog.cardinality(s.pending) OPERATOR(pg_catalog.>) 0"
				" THEN s.pending END, m.created_at"
				" FROM presence.mirrors m LEFT JOIN presence.mirror_state s"
				" ON s.target OPERATOR(pg_catalog.=) m.target"
				" ORDER BY m.target::pg_catalog.oid",
				0, NULL, NULL, SPI_OK_SELECT);
	n = SPI_processed;
	mirrors = palloc0(sizeof(Mirror) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		TupleDesc	d = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum		pending;

		mirrors[i].config.relid = DatumGetObjectId(SPI_getbinval(t, d, 1, &isnull));
		mirrors[i].config.id_column = SPI_getvalue(t, d, 2);
		mirrors[i].config.online_column = SPI_getvalue(t, d, 3);
		mirrors[i].config.last_active_column = SPI_getvalue(t, d, 4);
		mirrors[i].config.status_column = SPI_getvalue(t, d, 5);
		mirrors[i].synced = DatumGetBool(SPI_getbinval(t, d, 6, &isnull));
		pending = SPI_getbinval(t, d, 7, &isnull);
		mirrors[i].pending = isnull ? (Datum) 0 :
			PointerGetDatum(PG_DETOAST_DATUM_COPY(pending));
		mirrors[i].configured = SPI_getbinval(t, d, 8, &isnull);
	}
	SPI_freetuptable(SPI_tuptable);

	for (int i = 0; i < n; i++)
	{
		/* A synced mirror with nothing to write is not even looked at. */
		if (mirrors[i].synced && mirrors[i].pending == (Datum) 0 &&
			changed->n == 0)
			continue;
		mirror_one(&mirrors[i], changed);
		wrote = true;
	}
	return wrote;
}
