/*-------------------------------------------------------------------------
 *
 * message_api.c
 *	  The SQL functions of status messages (version 1.1): validate, then
 *	  call the registry (message.c).
 *
 * As for sessions, bad input raises an ERROR before anything is touched,
 * and the calls are not transactional.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "presence.h"

PG_FUNCTION_INFO_V1(presence_set_status_message);
PG_FUNCTION_INFO_V1(presence_status_message);

/*
 * set_status_message(user_id, message, expires_at): sets what the user is
 * up to, shown while others see them online or away.  A NULL or empty
 * message clears it; expires_at NULL (or infinity) means until cleared.
 */
Datum
presence_set_status_message(PG_FUNCTION_ARGS)
{
	PresenceId	user = arg_id(fcinfo, 0, "user_id", NULL);
	const char *data = NULL;
	int			len = 0;
	TimestampTz expires_at = 0;

	if (!PG_ARGISNULL(1))
	{
		text *message = PG_GETARG_TEXT_PP(1);

		data = VARDATA_ANY(message);
		len = VARSIZE_ANY_EXHDR(message);
	}
	if (len == 0)
		data = NULL;
	if (data != NULL)
	{
		int			chars = pg_mbstrlen_with_len(data, len);

		if (chars > PRESENCE_MAX_MESSAGE_CHARS)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("status message is too long"),
					 errdetail("It is %d characters; the limit is %d.",
							   chars, PRESENCE_MAX_MESSAGE_CHARS)));
		if (!PG_ARGISNULL(2) && !TIMESTAMP_IS_NOEND(PG_GETARG_TIMESTAMPTZ(2)))
		{
			expires_at = PG_GETARG_TIMESTAMPTZ(2);
			if (expires_at <= GetCurrentTimestamp())
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("expires_at must be in the future"),
						 errdetail("It is %s.", timestamptz_to_str(expires_at)),
						 errhint("Pass NULL for a message that does not expire.")));
		}
	}

	registry_check_usable(true);
	registry_set_message(user, data, len, expires_at);
	PG_RETURN_VOID();
}

/*
 * status_message(user_id): what others see, NULL when the user has none,
 * it has expired, or they do not see the user (offline, or invisible).
 */
Datum
presence_status_message(PG_FUNCTION_ARGS)
{
	PresenceId	user = arg_id(fcinfo, 0, "user_id", NULL);
	char	   *message;

	registry_check_usable(false);
	message = registry_message(user);
	if (message == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(message));
}
