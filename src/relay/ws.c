/*
 * ws.c - the "presence" protocol: GET /ws upgrades, one client each.
 *
 * The upgrade is checked before it happens (LWS_CALLBACK_HTTP_CONFIRM_
 * UPGRADE), so a refusal is a real HTTP answer, not a dropped socket: 400
 * for a subprotocol other than "presence" (the relay's database link is a
 * protocol too, and not for clients), 401 for a bad token, 429 past a cap
 * per user or per address, 503 past --max-connections.
 * An established client is given to out.c (what it is sent) and, unless
 * --global-feed no, to the global feed (a state, then changes) and, if it
 * has a user, made a presence session (sessions.c); it is closed with 4001
 * when its token expires unless it sends a fresh one.  Its channel
 * messages go to channels.c, with the grants of its token's "channels".  Its messages are parsed as
 * they stream in: over 64 kB closes it with 1009, binary with 1003,
 * malformed JSON is counted and ignored, and past --message-rate messages
 * are ignored (and persistent excess closes it with 1008).
 */
#include "relay.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/*
 * Does the client ask for no subprotocol, or only for "presence"?  lws
 * would otherwise pick any protocol of the vhost the client names.
 */
static int
subprotocol_ok(struct lws *wsi)
{
	char		list[256],
			   *tok,
			   *save;

	if (lws_hdr_total_length(wsi, WSI_TOKEN_PROTOCOL) <= 0)
		return 1;
	if (lws_hdr_copy(wsi, list, sizeof(list), WSI_TOKEN_PROTOCOL) <= 0)
		return 0;
	for (tok = strtok_r(list, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save))
		if (strcmp(tok, "presence"))
			return 0;
	return 1;
}

/* Decides whether this upgrade may happen; answers it if not. */
static int
confirm_upgrade(struct lws *wsi, const char *proto)
{
	char		uri[64],
				addr[64],
				user[RELAY_MAX_USER_ID + 1];
	const char *cap;
	enum auth_result r;

	if (!proto || strcmp(proto, "websocket"))
		return -1;
	if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) <= 0 ||
		strcmp(uri, "/ws"))
		return http_reply(wsi, 404, "{\"error\":\"WebSocket is at /ws\"}", 0) ? -1 : 1;
	if (!subprotocol_ok(wsi))
	{
		relay_metrics.refused_subprotocol++;
		return http_refuse(wsi, 400, "unsupported subprotocol: only \"presence\" (or none)",
						   NULL) ? -1 : 1;
	}
	if (!http_origin_allowed(wsi))
		return http_reply(wsi, 403, "{\"error\":\"origin not allowed\"}", 0) ? -1 : 1;
	if (out_closing())
		return http_reply(wsi, 503, "{\"error\":\"shutting down\"}", 0) ? -1 : 1;
	if (relay_opts.max_connections &&
		out_count() >= relay_opts.max_connections)
	{
		relay_metrics.refused_max_connections++;
		return http_refuse(wsi, 503, "too many connections", "max-connections") ? -1 : 1;
	}
	if (clientaddr_get(wsi, addr, sizeof(addr)))
		return -1;
	/* before the token: a host over its cap costs no HMAC */
	if ((cap = caps_refuse(NULL, addr)))
	{
		relay_metrics.refused_per_ip++;
		return http_refuse(wsi, 429, "too many connections from this address", cap) ? -1 : 1;
	}

	r = auth_request(wsi, user, sizeof(user), NULL, NULL);
	if (r != AUTH_OK && !(r == AUTH_NONE && relay_opts.allow_anonymous))
	{
		relay_metrics.auth_failures_total++;
		lwsl_user("refused a WebSocket: %s\n", auth_result_str(r));
		return http_reply(wsi, 401, "{\"error\":\"unauthorized\"}", 1) ? -1 : 1;
	}
	if (r == AUTH_OK && (cap = caps_refuse(user, addr)))
	{
		relay_metrics.refused_per_user++;
		return http_refuse(wsi, 429, "too many connections for this user", cap) ? -1 : 1;
	}
	return 0;
}

/*
 * c's token is valid until exp (seconds since the epoch): it is closed
 * with 4001 then (out_deadlines()), unless a fresh token moves it on.
 */
static void
set_expiry(struct client *c, double exp)
{
	double		left;
	struct timespec ts;

	/* exp is on the wall clock, deadlines on lws's monotonic one */
	clock_gettime(CLOCK_REALTIME, &ts);
	left = exp - ((double) ts.tv_sec + ts.tv_nsec / 1e9);
	if (left > 10.0 * 365 * 24 * 3600)
		left = 10.0 * 365 * 24 * 3600;
	c->expires = lws_now_usecs() + (left > 0 ? (lws_usec_t) (left * LWS_US_PER_SEC) : 0) + 1;
	deadline_note(c->expires);
}

/*
 * The upgrade was confirmed; the headers are still there, so the token is
 * read once more (an HMAC: cheap) to learn the user and when its token
 * expires, and the socket is counted against the caps.  lws goes on to
 * ESTABLISHED in the same call, so no other upgrade comes in between.
 */
static int
identify(struct lws *wsi, struct client *c)
{
	char		user[RELAY_MAX_USER_ID + 1],
				addr[64];
	double		exp = 0;
	enum auth_result r = auth_request(wsi, user, sizeof(user), &exp, &c->grants);

	if (r == AUTH_OK)
	{
		if (!(c->user = strdup(user)))
			return -1;
		set_expiry(c, exp);
	}
	else if (!(r == AUTH_NONE && relay_opts.allow_anonymous))
		return -1;
	if (clientaddr_get(wsi, addr, sizeof(addr)))
		return -1;
	caps_add(c, addr);
	return 0;
}

/*
 * Closes c with code once it can write.  Until then whatever else it
 * sends is read and dropped.
 */
static int
close_with(struct client *c, enum lws_close_status code, const char *why)
{
	out_close(c, (uint16_t) code, why);
	return 0;
}

/*
 * {"type":"token","token":"..."}: a valid token for the socket's own user
 * moves its expiry (answer {"type":"token","exp":N}) and its grants of
 * channels (subscriptions it no longer allows end); a valid token for
 * another user closes it with 4003; any other token is answered with an
 * error frame and changes nothing (the socket still closes at the old
 * expiry).
 */
static void
refresh_token(struct client *c, const char *token)
{
	char		user[RELAY_MAX_USER_ID + 1];
	double		exp = 0;
	enum auth_result r = AUTH_NONE;
	struct jbuf b = {0};
	struct grants *grants = NULL;

	if (c->user)
		r = auth_check(token, user, sizeof(user), &exp, &grants);
	if (r == AUTH_OK && strcmp(user, c->user))
	{
		access_free(grants);
		relay_metrics.tokens_refused_total++;
		lwsl_user("closing a socket that sent a token for another user\n");
		out_close(c, RELAY_CLOSE_TOKEN_REFUSED, "token for another user");
		return;
	}
	if (r != AUTH_OK)
	{
		relay_metrics.tokens_refused_total++;
		jbuf_str(&b, "{\"type\":\"error\",\"error\":\"token refused\",\"reason\":");
		jbuf_quote(&b, c->user ? auth_result_str(r) : "anonymous socket",
				   strlen(c->user ? auth_result_str(r) : "anonymous socket"));
		jbuf_str(&b, "}");
		out_reply(c, &b);
		return;
	}
	relay_metrics.tokens_refreshed_total++;
	set_expiry(c, exp);
	access_free(c->grants);
	c->grants = grants;
	channels_regrant(c);
	jbuf_printf(&b, "{\"type\":\"token\",\"exp\":%.15g}", exp);
	out_reply(c, &b);
}

/*
 * {"type":"status_message","message":M,"expires_in":N}: the client's own
 * user's status message (presence.set_status_message(), batched).  A bad
 * one, or one from an anonymous watcher, is answered with an error frame.
 */
static void
status_message(struct client *c, struct message *m)
{
	struct jbuf b = {0};
	const char *code = m->error ? m->error : !c->user ? "forbidden" : NULL;

	if (!code)
	{
		sessions_set_status_message(c, m->status_len ? m->status : NULL, m->expires_in);
		return;
	}
	jbuf_printf(&b, "{\"type\":\"error\",\"request\":\"status_message\",\"code\":\"%s\"}", code);
	out_reply(c, &b);
}

static void
act_on(struct client *c, struct message *m)
{
	if (m->kind == MESSAGE_MALFORMED)
		relay_metrics.malformed_messages_total++;
	else if (m->kind == MESSAGE_HEARTBEAT && c->user)
		sessions_activity(c, m->active);
	else if (m->kind == MESSAGE_VISIBILITY && c->user)
		sessions_set_visible(c, m->visible);
	else if (m->kind == MESSAGE_TOKEN)
		refresh_token(c, m->token);
	else if (m->kind >= MESSAGE_JOIN && m->kind <= MESSAGE_UPDATE)
		channels_message(c, m);
	else if (m->kind == MESSAGE_STATUS_MESSAGE)
		status_message(c, m);
	message_clear(m);
}

/*
 * {"type":"error","code":"rate_limited"}: messages are being ignored.  Once
 * a second at most, so that a flood does not become one.
 */
static void
tell_rate_limited(struct client *c)
{
	struct jbuf b = {0};
	lws_usec_t	now = lws_now_usecs();

	if (c->rate_told && now - c->rate_told < LWS_US_PER_SEC)
		return;
	c->rate_told = now;
	jbuf_str(&b, "{\"type\":\"error\",\"code\":\"rate_limited\"}");
	out_reply(c, &b);
}

/*
 * A message starts: may c send it (--message-rate)?  If not it is read
 * and dropped unparsed; 0, or -1 if c is closed for persistent excess.
 */
static int
admit(struct client *c)
{
	if (relay_opts.message_rate <= 0)
		return 0;
	switch (bucket_take(&c->bucket, lws_now_usecs(), relay_opts.message_rate,
						relay_opts.message_burst))
	{
		case BUCKET_OK:
			return 0;
		case BUCKET_EXCESS:
			relay_metrics.messages_rate_limited_total++;
			c->skipping = 1;
			tell_rate_limited(c);
			return 0;
		case BUCKET_ABUSE:
		default:
			relay_metrics.messages_rate_limited_total++;
			relay_metrics.rate_limit_closes_total++;
			lwsl_user("closing a client that keeps sending over --message-rate\n");
			c->skipping = 1;
			return -1;
	}
}

/* One piece of a client message (a whole small one, usually). */
static int
receive(struct lws *wsi, struct client *c, const void *in, size_t len)
{
	size_t		remaining = lws_remaining_packet_payload(wsi);
	int			last = lws_is_final_fragment(wsi) && !remaining;
	struct message m;

	if (lws_frame_is_binary(wsi))
		return close_with(c, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE, NULL);
	if (lws_is_first_fragment(wsi) && !c->partial && !c->skipping)
	{
		c->partial_len = 0;
		if (admit(c))
			return close_with(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "too many messages");
	}
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
			return close_with(c, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, NULL);
		return 0;
	}
	if (c->skipping)
	{
		if (last)
			c->skipping = 0;
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
			out_add(c);
			bucket_init(&c->bucket, lws_now_usecs(), relay_opts.message_burst);
			relay_metrics.connections_total++;
			if (c->user)
				sessions_add(c);
			if (relay_opts.global_feed)
				feed_add(c);
			return 0;

		case LWS_CALLBACK_CLOSED:
			if (!c->is_ws)
				return 0;
			feed_remove(c);
			channels_remove_client(c);
			out_remove(c);
			if (c->user)
				sessions_remove(c);
			access_free(c->grants);
			c->grants = NULL;
			caps_remove(c);
			free(c->user);
			c->user = NULL;
			if (c->partial)
			{
				struct message m;

				message_end(c->partial, &m);
				message_clear(&m);
				c->partial = NULL;
			}
			return 0;

		case LWS_CALLBACK_RECEIVE_PONG:
			out_heard(c);
			return 0;

		case LWS_CALLBACK_RECEIVE:
			out_heard(c);
			if (c->out.close_code)
				return 0;		/* closing: drop the rest */
			return receive(wsi, c, in, len);

		case LWS_CALLBACK_SERVER_WRITEABLE:
			return out_write(c);

		case LWS_CALLBACK_CLOSED_HTTP:
			/* identified, but the upgrade failed before ESTABLISHED */
			if (c && !c->is_ws)
			{
				caps_remove(c);
				free(c->user);
				c->user = NULL;
				access_free(c->grants);
				c->grants = NULL;
			}
			return http_callback(wsi, reason, user, in, len);

		default:
			return http_callback(wsi, reason, user, in, len);
	}
}
