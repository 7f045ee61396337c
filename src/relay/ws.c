/*
 * ws.c - the "presence" protocol: GET /ws upgrades, one client each.
 *
 * The upgrade is checked before it happens (LWS_CALLBACK_HTTP_CONFIRM_
 * UPGRADE), so a bad token gets a real HTTP 401, not a dropped socket.
 * An established client is added to the feed (state, then changes) and,
 * if it has a user, made a presence session.  Its messages are parsed as
 * they stream in: over 64 kB closes it with 1009, binary with 1003,
 * malformed JSON is counted and ignored.
 */
#include "relay.h"

#include <stdlib.h>
#include <string.h>

/* Decides whether this upgrade may happen; answers it if not. */
static int
confirm_upgrade(struct lws *wsi, const char *proto)
{
	char		uri[64],
				user[RELAY_MAX_USER_ID + 1];
	enum auth_result r;

	if (!proto || strcmp(proto, "websocket"))
		return -1;
	if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) <= 0 ||
		strcmp(uri, "/ws"))
		return http_reply(wsi, 404, "{\"error\":\"WebSocket is at /ws\"}", 0) ? -1 : 1;
	if (!http_origin_allowed(wsi))
		return http_reply(wsi, 403, "{\"error\":\"origin not allowed\"}", 0) ? -1 : 1;
	if (relay_shutting_down())
		return http_reply(wsi, 503, "{\"error\":\"shutting down\"}", 0) ? -1 : 1;
	if (relay_opts.max_connections &&
		feed_client_count() >= relay_opts.max_connections)
		return http_reply(wsi, 503, "{\"error\":\"too many connections\"}", 0) ? -1 : 1;

	r = auth_request(wsi, user, sizeof(user));
	if (r == AUTH_OK || (r == AUTH_NONE && relay_opts.allow_anonymous))
		return 0;
	relay_metrics.auth_failures_total++;
	lwsl_user("refused a WebSocket: %s\n", auth_result_str(r));
	return http_reply(wsi, 401, "{\"error\":\"unauthorized\"}", 1) ? -1 : 1;
}

/*
 * The upgrade was confirmed; the headers are still there, so the token is
 * read once more (an HMAC: cheap) to learn the user.  Nothing is kept
 * between the two callbacks, so nothing can leak if the upgrade fails.
 */
static int
identify(struct lws *wsi, struct client *c)
{
	char		user[RELAY_MAX_USER_ID + 1];
	enum auth_result r = auth_request(wsi, user, sizeof(user));

	if (r == AUTH_OK)
		return (c->user = strdup(user)) ? 0 : -1;
	return r == AUTH_NONE && relay_opts.allow_anonymous ? 0 : -1;
}

/*
 * Closes c with code once it can write.  Until then whatever else it
 * sends is read and dropped.
 */
static int
close_with(struct client *c, enum lws_close_status code)
{
	feed_close_client(c, (uint16_t) code);
	return 0;
}

static void
act_on(struct client *c, const struct message *m)
{
	if (m->kind == MESSAGE_MALFORMED)
		relay_metrics.malformed_messages_total++;
	else if (m->kind == MESSAGE_HEARTBEAT && c->user)
		sessions_activity(c, m->active);
	else if (m->kind == MESSAGE_VISIBILITY && c->user)
		sessions_set_visible(c, m->visible);
}

/* One piece of a client message (a whole small one, usually). */
static int
receive(struct lws *wsi, struct client *c, const void *in, size_t len)
{
	size_t		remaining = lws_remaining_packet_payload(wsi);
	int			last = lws_is_final_fragment(wsi) && !remaining;
	struct message m;

	if (lws_frame_is_binary(wsi))
		return close_with(c, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE);
	if (lws_is_first_fragment(wsi) && !c->partial)
		c->partial_len = 0;
	c->partial_len += len;
	if (c->oversized || c->partial_len + remaining > RELAY_MAX_MESSAGE)
	{
		/*
		 * The rest of the message is read and dropped first: closing
		 * while the client is still sending would reset the connection
		 * and lose the close frame.  A message that never ends is cut
		 * off by the timeout.
		 */
		if (!c->oversized)
		{
			relay_metrics.oversized_frames_total++;
			c->oversized = 1;
			lws_set_timeout(wsi, PENDING_TIMEOUT_LAGGING, 5);
		}
		if (last)
			return close_with(c, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE);
		return 0;
	}

	if (!c->partial && last)
	{
		message_parse(in, len, &m);
		act_on(c, &m);
		return 0;
	}
	if (!c->partial && !(c->partial = message_begin()))
		return -1;
	message_feed(c->partial, in, len);
	if (last)
	{
		message_end(c->partial, &m);
		c->partial = NULL;
		act_on(c, &m);
	}
	return 0;
}

int
ws_callback(struct lws *wsi, enum lws_callback_reasons reason,
			void *user, void *in, size_t len)
{
	struct client *c = user;

	switch (reason)
	{
		case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
			return confirm_upgrade(wsi, in);

		case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
			return identify(wsi, c);

		case LWS_CALLBACK_ESTABLISHED:
			c->wsi = wsi;
			c->is_ws = 1;
			c->heard = lws_now_usecs();
			relay_metrics.connections_total++;
			/* session first: its connect goes before the snapshot query */
			if (c->user)
				sessions_add(c);
			feed_add_client(c);
			return 0;

		case LWS_CALLBACK_CLOSED:
			if (!c->is_ws)
				return 0;
			feed_remove_client(c);
			if (c->user)
				sessions_remove(c);
			free(c->user);
			c->user = NULL;
			if (c->partial)
			{
				struct message m;

				message_end(c->partial, &m);
				c->partial = NULL;
			}
			return 0;

		case LWS_CALLBACK_RECEIVE_PONG:
			c->heard = lws_now_usecs();
			return 0;

		case LWS_CALLBACK_RECEIVE:
			c->heard = lws_now_usecs();
			if (c->close_code)
				return 0;		/* closing: drop the rest */
			return receive(wsi, c, in, len);

		case LWS_CALLBACK_SERVER_WRITEABLE:
			return feed_write(c);

		case LWS_CALLBACK_CLOSED_HTTP:
			/* identified, but the upgrade failed before ESTABLISHED */
			if (c && !c->is_ws)
			{
				free(c->user);
				c->user = NULL;
			}
			return http_callback(wsi, reason, user, in, len);

		default:
			return http_callback(wsi, reason, user, in, len);
	}
}
