/*-------------------------------------------------------------------------
 *
 * channel_api.c
 *	  The SQL-callable functions of channels (version 1.1): validate every
 *	  argument, then call the registry (membership.c).
 *
 * As for sessions, bad input raises an ERROR before anything is touched,
 * and the calls are not transactional.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "presence.h"

PG_FUNCTION_INFO_V1(presence_join);
PG_FUNCTION_INFO_V1(presence_leave);
PG_FUNCTION_INFO_V1(presence_update);
PG_FUNCTION_INFO_V1(presence_members);
PG_FUNCTION_INFO_V1(presence_channels);
PG_FUNCTION_INFO_V1(presence_occupancy);

/* The channel name, first argument of every channel function. */
static PresenceId
arg_channel(FunctionCallInfo fcinfo)
{
	return arg_id(fcinfo, 0, "channel", NULL);
}

/*
 * join(channel, user_id, session_id, meta): the session joins, opened if
 * it is not live; joining again replaces meta when given.  A join is
 * activity.
 */
Datum
presence_join(PG_FUNCTION_ARGS)
{
	PresenceId	channel = arg_channel(fcinfo);
	PresenceId	user = arg_id(fcinfo, 1, "user_id", NULL);
	PresenceId	session = arg_id(fcinfo, 2, "session_id", PRESENCE_DEFAULT_SESSION);
	void	   *meta = arg_meta_jsonb(fcinfo, 3, false);

	registry_check_usable(true);
	registry_join(channel, user, session, meta);
	PG_RETURN_VOID();
}

/* leave(channel, user_id, session_id): false if it was not a member. */
Datum
presence_leave(PG_FUNCTION_ARGS)
{
	PresenceId	channel = arg_channel(fcinfo);
	PresenceId	user = arg_id(fcinfo, 1, "user_id", NULL);
	PresenceId	session = arg_id(fcinfo, 2, "session_id", PRESENCE_DEFAULT_SESSION);

	registry_check_usable(true);
	PG_RETURN_BOOL(registry_leave(channel, user, session));
}

/*
 * update(channel, user_id, session_id, meta): replaces the member's meta;
 * false if not a member.  meta is required; a NULL session_id still means
 * the session 'default'.
 */
Datum
presence_update(PG_FUNCTION_ARGS)
{
	PresenceId	channel = arg_channel(fcinfo);
	PresenceId	user = arg_id(fcinfo, 1, "user_id", NULL);
	PresenceId	session = arg_id(fcinfo, 2, "session_id", PRESENCE_DEFAULT_SESSION);
	void	   *meta = arg_meta_jsonb(fcinfo, 3, true);

	registry_check_usable(true);
	PG_RETURN_BOOL(registry_update(channel, user, session, meta));
}

/*
 * The metas of a member's sessions as one JSON array, in join order, null
 * for a session without meta.  Each meta is kept as a Jsonb datum, whose
 * container is position-independent: the array is laid out as
 * convertJsonbArray lays one out (jsonb.h), with the containers copied in
 * whole, 4-byte aligned, every JB_OFFSET_STRIDE'th entry holding an offset
 * rather than a length.  pushJsonbValue would take each meta apart and put
 * it together again, the largest part of members()' time.
 */
static Datum
metas_array(const void *const *metas, int n)
{
	Size		size = VARHDRSZ + sizeof(uint32) + sizeof(JEntry) * n;
	Size		offset;
	char	   *jsonb;
	JEntry	   *entries;
	uint32		totallen = 0;

	for (int i = 0; i < n; i++)
		if (metas[i] != NULL)
			size = INTALIGN(size) + VARSIZE(metas[i]) - VARHDRSZ;
	jsonb = palloc0(size);
	*(uint32 *) (jsonb + VARHDRSZ) = n | JB_FARRAY;
	entries = (JEntry *) (jsonb + VARHDRSZ + sizeof(uint32));
	offset = VARHDRSZ + sizeof(uint32) + sizeof(JEntry) * n;
	for (int i = 0; i < n; i++)
	{
		const Jsonb *meta = metas[i];
		Size		start = offset;
		JEntry		type = JENTRY_ISNULL;

		if (meta != NULL)
		{
			offset = INTALIGN(offset);
			memcpy(jsonb + offset, &meta->root, VARSIZE(meta) - VARHDRSZ);
			offset += VARSIZE(meta) - VARHDRSZ;
			type = JENTRY_ISCONTAINER;
		}
		totallen += offset - start;
		entries[i] = i % JB_OFFSET_STRIDE == 0 ?
			type | totallen | JENTRY_HAS_OFF : type | (JEntry) (offset - start);
	}
	Assert(offset == size);
	SET_VARSIZE(jsonb, size);
	return PointerGetDatum(jsonb);
}

/* Where members() puts its rows. */
typedef struct MemberRows
{
	ReturnSetInfo *rsinfo;
	MemoryContext row_context;	/* reset after each row */
} MemberRows;

/*
 * One row of members().  Its values are built in a context reset once the
 * tuplestore has copied them: ten thousand rows reuse the same few pages
 * instead of faulting in new ones.
 */
static void
put_member(const char *user_id, const PresenceUserView *view,
		   const void *const *metas, int nmetas, void *arg)
{
	MemberRows *rows = arg;
	MemoryContext old = MemoryContextSwitchTo(rows->row_context);
	Datum		values[6];
	bool		nulls[6] = {false, false, false, false, false, false};

	values[0] = CStringGetTextDatum(user_id);
	values[1] = CStringGetTextDatum(presence_status_name(view->status));
	values[2] = TimestampTzGetDatum(view->last_active);
	nulls[2] = view->last_active == 0;
	values[3] = Int32GetDatum(view->sessions);
	values[4] = metas_array(metas, nmetas);
	values[5] = view->status_message ?
		CStringGetTextDatum(view->status_message) : (Datum) 0;
	nulls[5] = view->status_message == NULL;
	tuplestore_putvalues(rows->rsinfo->setResult, rows->rsinfo->setDesc,
						 values, nulls);
	MemoryContextSwitchTo(old);
	MemoryContextReset(rows->row_context);
}

/* members(channel): who others see in the channel, live from the registry. */
Datum
presence_members(PG_FUNCTION_ARGS)
{
	PresenceId	channel = arg_channel(fcinfo);
	MemberRows	rows;

	registry_check_usable(false);
	InitMaterializedSRF(fcinfo, 0);
	rows.rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	rows.row_context = AllocSetContextCreate(CurrentMemoryContext,
											 "presence members row",
											 ALLOCSET_SMALL_SIZES);
	registry_foreach_member(channel, put_member, &rows);
	MemoryContextDelete(rows.row_context);
	return (Datum) 0;
}

/* One row of channels(). */
static void
put_channel(const char *channel, int sessions, void *arg)
{
	ReturnSetInfo *rsinfo = arg;
	Datum		values[2];
	bool		nulls[2] = {false, false};

	values[0] = CStringGetTextDatum(channel);
	values[1] = Int32GetDatum(sessions);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/* channels(user_id): the channels the user is in, and its sessions there. */
Datum
presence_channels(PG_FUNCTION_ARGS)
{
	PresenceId	user = arg_id(fcinfo, 0, "user_id", NULL);

	registry_check_usable(false);
	InitMaterializedSRF(fcinfo, 0);
	registry_foreach_channel_of(user, put_channel, fcinfo->resultinfo);
	return (Datum) 0;
}

/* occupancy(channel): how many members others see there. */
Datum
presence_occupancy(PG_FUNCTION_ARGS)
{
	PresenceId	channel = arg_channel(fcinfo);

	registry_check_usable(false);
	PG_RETURN_INT32(registry_occupancy(channel));
}
