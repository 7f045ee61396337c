/*-------------------------------------------------------------------------
 *
 * mirror_api.c
 *	  The SQL functions of mirrors (version 1.1): mirror(), unmirror(), and
 *	  the event trigger that forgets the mirrors of dropped tables.
 *
 * Only the table's owner (or a superuser) may mirror it, checked against
 * the role calling mirror(): the functions are not SECURITY DEFINER.  What
 * they keep goes to presence.mirrors, which only its owner may write: the
 * statement that writes it runs as that owner, with every name qualified.
 * A configuration is checked against the table before it is kept, so a
 * wrong one raises its ERROR and changes nothing.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "catalog/namespace.h"
#include "commands/event_trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/syscache.h"

#include "mirror.h"
#include "registry.h"

PG_FUNCTION_INFO_V1(presence_mirror);
PG_FUNCTION_INFO_V1(presence_unmirror);
PG_FUNCTION_INFO_V1(presence_mirrors_dropped);

static bool wake_on_commit = false;

/* The flusher syncs a new mirror at once, once the caller has committed it. */
static void
wake_flusher(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT && wake_on_commit)
		registry_wake_flusher();
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT)
		wake_on_commit = false;
}

/* A name argument as a C string, or NULL. */
static char *
arg_name(FunctionCallInfo fcinfo, int argno)
{
	return PG_ARGISNULL(argno) ? NULL : pstrdup(NameStr(*PG_GETARG_NAME(argno)));
}

/* Raises 42501 unless the calling role owns the table (or is a superuser). */
static void
check_owner(Oid relid)
{
	if (!pg_class_ownercheck(relid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, get_relkind_objtype(get_rel_relkind(relid)),
					   get_rel_name(relid));
}

/*
 * Runs a statement on presence.mirrors as the owner of that table, which
 * the calling role may not write, with a search_path no role can plant
 * anything in.  Returns the number of rows it processed.
 */
static uint64
run_as_owner(const char *sql, int nargs, Oid *types, Datum *values,
			 const char *nulls, int expected)
{
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;
	Oid			owner;
	HeapTuple	tuple;
	int			rc;
	uint64		processed;

	tuple = SearchSysCache1(RELOID,
							ObjectIdGetDatum(get_relname_relid("mirrors",
															   get_namespace_oid("presence", false))));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for presence.mirrors");
	owner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(owner, save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	SPI_connect();
	rc = SPI_execute_with_args(sql, nargs, types, values, nulls, false, 0);
	if (rc != expected)
		elog(ERROR, "presence: statement on presence.mirrors failed: %s",
			 SPI_result_code_string(rc));
	processed = SPI_processed;
	SPI_finish();
	AtEOXact_GUC(true, save_nestlevel);
	SetUserIdAndSecContext(save_userid, save_sec_context);
	return processed;
}

/*
 * mirror(target, id_column, online_column, last_active_column,
 * status_column): the flusher keeps the given columns of the table in
 * step.  Calling it again for the same table replaces its configuration;
 * either way the flusher writes the whole table once more at its next
 * fold.
 */
Datum
presence_mirror(PG_FUNCTION_ARGS)
{
	static bool callback_registered = false;
	MirrorConfig config;
	MirrorTarget target;
	Oid			types[6] = {REGCLASSOID, NAMEOID, NAMEOID, NAMEOID, NAMEOID, NAMEOID};
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("target must not be null")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("id_column must not be null")));
	config.relid = PG_GETARG_OID(0);
	config.id_column = arg_name(fcinfo, 1);
	config.online_column = arg_name(fcinfo, 2);
	config.last_active_column = arg_name(fcinfo, 3);
	config.status_column = arg_name(fcinfo, 4);
	if (!config.online_column && !config.last_active_column && !config.status_column)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a mirror needs at least one column to write"),
				 errhint("Give online_column, last_active_column or status_column.")));
	for (int i = 1; i < 5; i++)
		for (int j = i + 1; j < 5; j++)
			if (!PG_ARGISNULL(i) && !PG_ARGISNULL(j) &&
				strcmp(NameStr(*PG_GETARG_NAME(i)), NameStr(*PG_GETARG_NAME(j))) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_DUPLICATE_COLUMN),
						 errmsg("column \"%s\" is given twice",
								NameStr(*PG_GETARG_NAME(i)))));

	registry_check_usable(true);
	check_owner(config.relid);
	if (!mirror_resolve(&config, AccessShareLock, &target))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", config.relid)));
	if (pg_class_aclcheck(config.relid, target.owner, ACL_SELECT) != ACLCHECK_OK ||
		pg_class_aclcheck(config.relid, target.owner, ACL_UPDATE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("the owner of table \"%s\" may not update it",
						get_rel_name(config.relid)),
				 errdetail("The flusher writes the table as its owner, who needs SELECT and UPDATE on it.")));

	for (int i = 0; i < 5; i++)
	{
		values[i] = PG_GETARG_DATUM(i);
		nulls[i] = PG_ARGISNULL(i) ? 'n' : ' ';
	}
	values[5] = DirectFunctionCall1(namein,
									CStringGetDatum(GetUserNameFromId(GetUserId(), false)));
	run_as_owner("WITH s AS (DELETE FROM presence.mirror_state s"
				 " WHERE s.target OPERATOR(pg_catalog.=) $1)"
				 " INSERT INTO presence.mirrors (target, id_column,"
				 " online_column, last_active_column, status_column, created_by)"
				 " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (target) DO UPDATE SET"
				 " id_column = excluded.id_column,"
				 " online_column = excluded.online_column,"
				 " last_active_column = excluded.last_active_column,"
				 " status_column = excluded.status_column,"
				 " created_by = excluded.created_by,"
				 " created_at = excluded.created_at",
				 6, types, values, nulls, SPI_OK_INSERT);

	if (!callback_registered)
	{
		RegisterXactCallback(wake_flusher, NULL);
		callback_registered = true;
	}
	wake_on_commit = true;
	PG_RETURN_VOID();
}

/*
 * unmirror(target): false if the table had no mirror.  The owner's (or a
 * superuser's) to call, as mirror(); the flusher leaves the table as it
 * was last written.
 */
Datum
presence_unmirror(PG_FUNCTION_ARGS)
{
	Oid			type = REGCLASSOID;
	Datum		value;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("target must not be null")));
	value = PG_GETARG_DATUM(0);
	registry_check_usable(true);
	/* A table that is gone has no owner to ask: its row is only a leftover. */
	if (SearchSysCacheExists1(RELOID, value))
		check_owner(DatumGetObjectId(value));
	PG_RETURN_BOOL(run_as_owner("WITH s AS (DELETE FROM presence.mirror_state s"
								" WHERE s.target OPERATOR(pg_catalog.=) $1)"
								" DELETE FROM presence.mirrors m"
								" WHERE m.target OPERATOR(pg_catalog.=) $1",
								1, &type, &value, NULL, SPI_OK_DELETE) > 0);
}

/*
 * Event trigger on sql_drop: a dropped table's mirror goes with it, so
 * that no configuration outlives its table (pg_dump would keep it, and a
 * new table could come to have the old one's OID).  SECURITY DEFINER:
 * whoever drops a table may not write presence.mirrors.  The flusher also
 * removes the mirrors of tables that are gone (dropped where event
 * triggers do not fire, in single-user mode).
 */
Datum
presence_mirrors_dropped(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		elog(ERROR, "presence_mirrors_dropped: not called as an event trigger");
	SPI_connect();
	if (SPI_execute("WITH d AS (DELETE FROM presence.mirrors m"
					" USING pg_catalog.pg_event_trigger_dropped_objects() o"
					" WHERE o.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass"
					" AND o.objsubid OPERATOR(pg_catalog.=) 0"
					" AND m.target OPERATOR(pg_catalog.=) o.objid"
					" RETURNING m.target)"
					" DELETE FROM presence.mirror_state s USING d"
					" WHERE s.target OPERATOR(pg_catalog.=) d.target",
					false, 0) != SPI_OK_DELETE)
		elog(ERROR, "presence: could not forget the mirrors of dropped tables");
	SPI_finish();
	PG_RETURN_NULL();
}
