/*
 * state.c - the "state" message, built in C from the plain columns of
 * presence.online_users(): nothing of it is JSON made by the database, so
 * no operator or function another role planted can shape it (the query
 * names every object by schema, and the link pins search_path too).
 *
 * {"type":"state","seq":N,"users":[{"user_id":...,"status":...,
 *  "last_active":...,"sessions":N,"status_message":...},...]}: seq is the seq of the last
 * change the relay had queued when the snapshot arrived (null if none
 * since the link came up); see docs/relay.md for the rule clients follow.
 */
#include "relay.h"

#include <string.h>

/*
 * last_active as PostgreSQL writes a timestamptz in JSON, without the
 * quotes.  Extension 1.0's online_users() has no status_message: its query
 * reads a NULL in its place, so that every state has the same shape.
 */
static const char state_query_11[] =
"SELECT u.user_id, u.status,"
"       pg_catalog.to_json(u.last_active) OPERATOR(pg_catalog.#>>) '{}'::pg_catalog.text[],"
"       u.sessions, u.status_message"
"  FROM presence.online_users() AS u";
static const char state_query_10[] =
"SELECT u.user_id, u.status,"
"       pg_catalog.to_json(u.last_active) OPERATOR(pg_catalog.#>>) '{}'::pg_catalog.text[],"
"       u.sessions, NULL::pg_catalog.text"
"  FROM presence.online_users() AS u";

/*
 * The snapshot query for the extension version the link found: a relay of
 * this build may face a database not updated yet (docs/operations.md).
 */
const char *
state_query(const char *extversion)
{
	return extversion && !strcmp(extversion, "1.0") ? state_query_10 : state_query_11;
}

static int
known_status(const char *s)
{
	return !strcmp(s, "online") || !strcmp(s, "away") || !strcmp(s, "offline");
}

/* Appends one row as a user object; a row that is not as expected is skipped. */
static void
add_user(struct jbuf *b, const PGresult *res, int row, int *first)
{
	const char *user = PQgetvalue(res, row, 0),
			   *status = PQgetvalue(res, row, 1),
			   *last = PQgetvalue(res, row, 2),
			   *sessions = PQgetvalue(res, row, 3),
			   *message = PQgetvalue(res, row, 4);
	size_t		ulen = (size_t) PQgetlength(res, row, 0),
				mlen = (size_t) PQgetlength(res, row, 4);
	int			has_last = !PQgetisnull(res, row, 2),
				has_message = !PQgetisnull(res, row, 4);

	if (PQgetisnull(res, row, 0) || !ulen || ulen > RELAY_MAX_USER_ID ||
		!json_utf8_ok(user, ulen) || !known_status(status) || !json_digits(sessions) ||
		(has_last && !event_timestamp_ok(last, strlen(last))) ||
		(has_message && (mlen > RELAY_MAX_STATUS_MESSAGE || !json_utf8_ok(message, mlen))))
	{
		lwsl_warn("state: skipping a row of online_users() that is not as expected\n");
		return;
	}
	jbuf_str(b, *first ? "{\"user_id\":" : ",{\"user_id\":");
	*first = 0;
	jbuf_quote(b, user, ulen);
	jbuf_printf(b, ",\"status\":\"%s\",\"last_active\":", status);
	jbuf_quote_or_null(b, has_last ? last : NULL, strlen(last));
	jbuf_printf(b, ",\"sessions\":%s,\"status_message\":", sessions);
	jbuf_quote_or_null(b, has_message ? message : NULL, mlen);
	jbuf_str(b, "}");
}

/*
 * Appends the state message made of the result of state_query to out;
 * seq < 0 is written as null.  -1 if out of memory or the result does not
 * have state_query's columns.
 */
int
state_build(const PGresult *res, int64_t seq, struct jbuf *out)
{
	int			i,
				first = 1;

	if (PQnfields(res) != 5)
		return -1;
	if (seq >= 0)
		jbuf_printf(out, "{\"type\":\"state\",\"seq\":%lld,\"users\":[", (long long) seq);
	else
		jbuf_str(out, "{\"type\":\"state\",\"seq\":null,\"users\":[");
	for (i = 0; i < PQntuples(res); i++)
		add_user(out, res, i, &first);
	jbuf_str(out, "]}");
	return out->oom ? -1 : 0;
}
