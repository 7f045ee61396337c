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

#include "presence.h"

PG_FUNCTION_INFO_V1(presence_join);
PG_FUNCTION_INFO_V1(presence_leave);
PG_FUNCTION_INFO_V1(presence_update);
PG_FUNCTION_INFO_V1(presence_members);
PG_FUNCTION_INFO_V1(presence_channels);
PG_FUNCTION_INFO_V1(presence_occupancy);

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
 * for a session without meta.  The binary metas are copied element by
 * element; none is parsed again.
 */
static Datum
metas_array(const void *const *metas, int n)
{
	JsonbParseState *state = NULL;
	JsonbValue	v;
	JsonbValue *array;

	pushJsonbValue(&state, WJB_BEGIN_ARRAY, NULL);
	for (int i = 0; i < n; i++)
	{
		if (metas[i] == NULL)
			v.type = jbvNull;
		else
		{
			const Jsonb *jb = metas[i];

			v.type = jbvBinary;
			v.val.binary.data = unconstify(JsonbContainer *, &jb->root);
			v.val.binary.len = VARSIZE(jb) - VARHDRSZ;
		}
		pushJsonbValue(&state, WJB_ELEM, &v);
	}
	array = pushJsonbValue(&state, WJB_END_ARRAY, NULL);
	return JsonbPGetDatum(JsonbValueToJsonb(array));
}

static void
put_member(const char *user_id, const PresenceUserView *view,
		   const void *const *metas, int nmetas, void *arg)
{
	ReturnSetInfo *rsinfo = arg;
	Datum		values[5];
	bool		nulls[5] = {false, false, false, false, false};

	values[0] = CStringGetTextDatum(user_id);
	values[1] = CStringGetTextDatum(presence_status_name(view->status));
	values[2] = TimestampTzGetDatum(view->last_active);
	nulls[2] = view->last_active == 0;
	values[3] = Int32GetDatum(view->sessions);
	values[4] = metas_array(metas, nmetas);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/* members(channel): who others see in the channel, live from the registry. */
Datum
presence_members(PG_FUNCTION_ARGS)
{
	PresenceId	channel = arg_channel(fcinfo);

	registry_check_usable(false);
	InitMaterializedSRF(fcinfo, 0);
	registry_foreach_member(channel, put_member, fcinfo->resultinfo);
	return (Datum) 0;
}

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
