/*
 * http.c - the plain HTTP side: GET /online, /healthz, /metrics, and with
 * --demo /demo/token.  Files under --static are served by an lws mount
 * (main.c), not here.  With --metrics-bind, /metrics moves to a listener
 * of its own (http_metrics_callback()).
 *
 * /online needs the database: the request joins the clients waiting for
 * the next snapshot (feed.c) and is answered when it arrives, without
 * blocking the loop.
 */
#include "relay.h"

#include <stdlib.h>
#include <string.h>

#define ONLINE_TIMEOUT_S 10

/*
 * Is the request's Origin (if any) one --allow-origin lets in?  Requests
 * without one (not from a browser) are let in: tokens, not cookies,
 * authenticate here, so another site cannot ride on a user's credentials.
 */
int
http_origin_allowed(struct lws *wsi)
{
	char		origin[256];
	const char *list = relay_opts.allow_origin,
			   *comma;
	size_t		n;

	if (!list || !strcmp(list, "*"))
		return 1;
	if (lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN) <= 0)
		return 1;
	if (lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN) < 0)
		return 0;
	n = strlen(origin);
	for (; *list; list = *comma ? comma + 1 : comma)
	{
		comma = strchr(list, ',');
		if (!comma)
			comma = list + strlen(list);
		while (*list == ' ')
			list++;
		if ((size_t) (comma - list) == n && !strncmp(list, origin, n))
			return 1;
	}
	return 0;
}

/* CORS headers for a browser on an allowed other origin. */
static int
add_cors(struct lws *wsi, unsigned char **p, unsigned char *end)
{
	char		origin[256];

	if (!relay_opts.allow_origin ||
		lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN) <= 0 ||
		lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN) < 0 ||
		!http_origin_allowed(wsi))
		return 0;
	if (!strcmp(relay_opts.allow_origin, "*"))
		strcpy(origin, "*");
	return lws_add_http_header_by_name(wsi,
									   (unsigned char *) "access-control-allow-origin:",
									   (unsigned char *) origin, (int) strlen(origin), p, end) ||
		lws_add_http_header_by_name(wsi, (unsigned char *) "vary:",
									(unsigned char *) "Origin", 6, p, end);
}

/*
 * Writes a whole response.  body must have LWS_PRE bytes of room before
 * it (lws writes framing there).
 */
static int
respond(struct lws *wsi, unsigned int status, const char *ctype,
		unsigned char *body, size_t len, int www_authenticate)
{
	unsigned char hdr[LWS_PRE + 1024],
			   *start = hdr + LWS_PRE,
			   *p = start,
			   *end = hdr + sizeof(hdr) - 1;

	if (lws_add_http_common_headers(wsi, status, ctype, len, &p, end) ||
		lws_add_http_header_by_name(wsi, (unsigned char *) "cache-control:",
									(unsigned char *) "no-store", 8, &p, end) ||
		(www_authenticate &&
		 lws_add_http_header_by_name(wsi, (unsigned char *) "www-authenticate:",
									 (unsigned char *) "Bearer", 6, &p, end)) ||
		add_cors(wsi, &p, end) ||
		lws_finalize_write_http_header(wsi, start, &p, end))
		return -1;
	if (lws_write(wsi, body, len, LWS_WRITE_HTTP_FINAL) != (int) len)
		return -1;
	return 0;
}

/* A small JSON response. */
int
http_reply(struct lws *wsi, unsigned int status, const char *json,
		   int www_authenticate)
{
	unsigned char buf[LWS_PRE + 1024];
	size_t		len = strlen(json);

	if (len > sizeof(buf) - LWS_PRE)
		return -1;
	memcpy(buf + LWS_PRE, json, len);
	return respond(wsi, status, "application/json", buf + LWS_PRE, len,
				   www_authenticate);
}

/* The same rule as /ws: a valid token, or none if --allow-anonymous. */
static int
authorized(struct lws *wsi)
{
	char		user[RELAY_MAX_USER_ID + 1];
	enum auth_result r = auth_request(wsi, user, sizeof(user));

	if (r == AUTH_OK || (r == AUTH_NONE && relay_opts.allow_anonymous))
		return 1;
	relay_metrics.auth_failures_total++;
	lwsl_user("refused a request: %s\n", auth_result_str(r));
	return 0;
}

/*
 * 200 when the relay works; 503 when the database is down, or up but its
 * notifications do not reach the relay (a pooler in transaction mode).
 */
static int
serve_healthz(struct lws *wsi)
{
	static const char *const heard[] = {
		[PROBE_UNCHECKED] = "unchecked",
		[PROBE_OK] = "ok",
		[PROBE_FAILED] = "not_arriving",
	};
	char		json[256];
	int			up = dblink_is_up(),
				deaf = up && probe_result() == PROBE_FAILED;

	lws_snprintf(json, sizeof(json),
				 "{\"status\":\"%s\",\"database\":\"%s\",\"notifications\":\"%s\","
				 "\"connections\":%d}",
				 !up ? "unavailable" : deaf ? "no_notifications" : "ok",
				 up ? "up" : "down", heard[up ? probe_result() : PROBE_UNCHECKED],
				 feed_client_count());
	return http_reply(wsi, up && !deaf ? 200 : 503, json, 0);
}

static int
serve_metrics(struct lws *wsi)
{
	unsigned char buf[LWS_PRE + 8192];
	size_t		len = metrics_render((char *) buf + LWS_PRE, sizeof(buf) - LWS_PRE);

	return respond(wsi, 200, "text/plain; version=0.0.4", buf + LWS_PRE, len, 0);
}

static int
serve_demo_token(struct lws *wsi)
{
	char		arg[RELAY_MAX_USER_ID + 16],
				json[RELAY_MAX_TOKEN];
	const char *user = lws_get_urlarg_by_name(wsi, "user=", arg, sizeof(arg));
	char	   *token;
	int			r;

	if (!user || !*user || strlen(user) > RELAY_MAX_USER_ID)
		return http_reply(wsi, 400, "{\"error\":\"user=NAME (1 to 256 bytes) is required\"}", 0);
	token = auth_mint_token(user, relay_opts.demo_token_ttl);
	if (!token)
		return http_reply(wsi, 500, "{\"error\":\"cannot mint a token\"}", 0);
	lws_snprintf(json, sizeof(json), "{\"token\":\"%s\"}", token);
	free(token);
	r = http_reply(wsi, 200, json, 0);
	lws_explicit_bzero(json, sizeof(json));
	return r;
}

/* Routes one GET; returns 1 if the answer comes later (/online). */
static int
route(struct lws *wsi, struct client *c, const char *uri)
{
	if (!strcmp(uri, "/healthz"))
		return serve_healthz(wsi);
	if (!strcmp(uri, "/metrics") && !relay_opts.metrics_bind)
		return serve_metrics(wsi);
	if (relay_opts.demo && !strcmp(uri, "/demo/token"))
		return serve_demo_token(wsi);
	if (!strcmp(uri, "/online"))
	{
		if (!authorized(wsi))
			return http_reply(wsi, 401, "{\"error\":\"unauthorized\"}", 1);
		if (!dblink_is_up())
			return http_reply(wsi, 503, "{\"error\":\"database unavailable\"}", 0);
		c->wsi = wsi;
		c->http_waiting = 1;
		lws_set_timeout(wsi, PENDING_TIMEOUT_USER_REASON_BASE + 1, ONLINE_TIMEOUT_S);
		feed_http_wait(c);
		return 1;
	}
	return http_reply(wsi, 404, "{\"error\":\"not found\"}", 0);
}

void
http_snapshot_ready(struct client *c, struct snapshot *s)
{
	c->http_waiting = 0;
	c->http_body = s;
	lws_callback_on_writable(c->wsi);
}

void
http_snapshot_failed(struct client *c)
{
	c->http_waiting = 0;
	c->http_status = 503;
	lws_callback_on_writable(c->wsi);
}

static int
finish(struct lws *wsi, int r)
{
	if (r < 0 || lws_http_transaction_completed(wsi))
		return -1;
	return 0;
}

/*
 * The --metrics-bind listener, for monitoring on a private address: GET
 * /metrics and /healthz, nothing else (404), and no WebSocket.
 */
int
http_metrics_callback(struct lws *wsi, enum lws_callback_reasons reason,
					  void *user, void *in, size_t len)
{
	char		uri[64];
	int			r;

	switch (reason)
	{
		case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
			return -1;
		case LWS_CALLBACK_HTTP:
			if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) <= 0)
				r = http_reply(wsi, 405, "{\"error\":\"GET only\"}", 0);
			else if (!strcmp(uri, "/metrics"))
				r = serve_metrics(wsi);
			else if (!strcmp(uri, "/healthz"))
				r = serve_healthz(wsi);
			else
				r = http_reply(wsi, 404, "{\"error\":\"not found\"}", 0);
			return finish(wsi, r);
		default:
			return lws_callback_http_dummy(wsi, reason, user, in, len);
	}
}

int
http_callback(struct lws *wsi, enum lws_callback_reasons reason,
			  void *user, void *in, size_t len)
{
	struct client *c = user;
	char		uri[256];
	int			r;

	switch (reason)
	{
		case LWS_CALLBACK_HTTP:
			c->http_waiting = 0;
			c->http_body = NULL;
			c->http_status = 0;
			if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) <= 0)
				return finish(wsi, http_reply(wsi, 405, "{\"error\":\"GET only\"}", 0));
			r = route(wsi, c, uri);
			return r == 1 ? 0 : finish(wsi, r);

		case LWS_CALLBACK_HTTP_WRITEABLE:
			if (c->http_body)
			{
				struct snapshot *s = c->http_body;

				c->http_body = NULL;
				r = respond(wsi, 200, "application/json", s->buf + LWS_PRE, s->len, 0);
				snapshot_release(s);
				return finish(wsi, r);
			}
			if (c->http_status)
			{
				c->http_status = 0;
				return finish(wsi, http_reply(wsi, 503, "{\"error\":\"database unavailable\"}", 0));
			}
			return 0;

		case LWS_CALLBACK_CLOSED_HTTP:
			if (c && c->http_waiting)
				feed_http_cancel(c);
			if (c)
			{
				c->http_waiting = 0;
				snapshot_release(c->http_body);
				c->http_body = NULL;
			}
			return 0;

		default:
			return lws_callback_http_dummy(wsi, reason, user, in, len);
	}
}
