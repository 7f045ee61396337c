/*
 * http.c - the plain HTTP side: GET /online, /healthz, /metrics, and with
 * --demo /demo/token; OPTIONS /online, the CORS preflight of browsers on
 * --allow-origin origins.  Files under --static are served by an lws
 * mount (main.c), not here.  With --metrics-bind, /metrics moves to a
 * listener of its own (http_metrics_callback()).
 *
 * What the endpoints show of the relay comes through one narrow
 * interface, struct http_view, which main.c wires to the modules that know.
 * /online needs the database: the request waits for the next snapshot
 * (struct waiter) and is answered when it arrives, without blocking the
 * loop.  Its body goes out in RELAY_SEND_CHUNK pieces, one
 * per WRITEABLE callback, within --send-timeout, so that a client that
 * does not read costs no copy of the snapshot.  Other answers are built
 * to their size: no fixed buffer a long user name can outgrow.
 */
#include "relay.h"

#include <stdlib.h>
#include <string.h>

#define ONLINE_TIMEOUT_S 10
#define PREFLIGHT_MAX_AGE "600"

static unsigned char scratch[LWS_PRE + RELAY_SEND_CHUNK];
static const struct http_view *view;

static void snapshot_ready(struct waiter *w, struct frame *s);
static void snapshot_failed(struct waiter *w);

void
http_init(const struct http_view *v)
{
	view = v;
}

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

/*
 * Is this a browser request from an origin --allow-origin names (CORS
 * applies)?  If so, origin is what Access-Control-Allow-Origin says.
 */
static int
cors_origin(struct lws *wsi, char *origin, size_t len)
{
	if (!relay_opts.allow_origin ||
		lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN) <= 0 ||
		lws_hdr_copy(wsi, origin, (int) len, WSI_TOKEN_ORIGIN) < 0 ||
		!http_origin_allowed(wsi))
		return 0;
	if (!strcmp(relay_opts.allow_origin, "*"))
		strcpy(origin, "*");
	return 1;
}

static int
add_header(struct lws *wsi, const char *name, const char *value,
		   unsigned char **p, unsigned char *end)
{
	return lws_add_http_header_by_name(wsi, (const unsigned char *) name,
									   (const unsigned char *) value,
									   (int) strlen(value), p, end);
}

/* CORS headers for a browser on an allowed other origin (+ a preflight's). */
static int
add_cors(struct lws *wsi, unsigned char **p, unsigned char *end, int preflight)
{
	char		origin[256];

	if (!cors_origin(wsi, origin, sizeof(origin)))
		return 0;
	return add_header(wsi, "access-control-allow-origin:", origin, p, end) ||
		add_header(wsi, "vary:", "Origin", p, end) ||
		(preflight &&
		 (add_header(wsi, "access-control-allow-methods:", "GET, OPTIONS", p, end) ||
		  add_header(wsi, "access-control-allow-headers:", "Authorization", p, end) ||
		  add_header(wsi, "access-control-max-age:", PREFLIGHT_MAX_AGE, p, end)));
}

/*
 * Writes the status line and headers of a response of len bytes (the
 * body follows with write_body()).
 */
static int
write_head(struct lws *wsi, unsigned int status, const char *ctype, size_t len,
		   int www_authenticate, int preflight)
{
	unsigned char hdr[LWS_PRE + 2048],
			   *start = hdr + LWS_PRE,
			   *p = start,
			   *end = hdr + sizeof(hdr) - 1;

	if (lws_add_http_common_headers(wsi, status, ctype, len, &p, end) ||
		add_header(wsi, "cache-control:", "no-store", &p, end) ||
		(www_authenticate && add_header(wsi, "www-authenticate:", "Bearer", &p, end)) ||
		add_cors(wsi, &p, end, preflight) ||
		lws_finalize_write_http_header(wsi, start, &p, end))
		return -1;
	return 0;
}

/* A whole small response; body has LWS_PRE bytes of room before it. */
static int
respond(struct lws *wsi, unsigned int status, const char *ctype,
		unsigned char *body, size_t len, int www_authenticate)
{
	if (write_head(wsi, status, ctype, len, www_authenticate, 0))
		return -1;
	if (len && lws_write(wsi, body, len, LWS_WRITE_HTTP_FINAL) != (int) len)
		return -1;
	return 0;
}

/* A JSON response of any size. */
int
http_reply(struct lws *wsi, unsigned int status, const char *json,
		   int www_authenticate)
{
	struct jbuf b = {0};
	int			r = -1;

	jbuf_str(&b, json);
	if (!b.oom)
		r = respond(wsi, status, "application/json", b.p + LWS_PRE, b.len,
					www_authenticate);
	jbuf_free(&b);
	return r;
}

/* A refusal naming the limit (a flag) it enforces: {"error":..,"limit":..}. */
int
http_refuse(struct lws *wsi, unsigned int status, const char *error,
			const char *limit)
{
	struct jbuf b = {0};
	int			r = -1;

	jbuf_str(&b, "{\"error\":");
	jbuf_quote(&b, error, strlen(error));
	if (limit)
	{
		jbuf_str(&b, ",\"limit\":");
		jbuf_quote(&b, limit, strlen(limit));
	}
	jbuf_str(&b, "}");
	if (!b.oom)
		r = respond(wsi, status, "application/json", b.p + LWS_PRE, b.len, 0);
	jbuf_free(&b);
	return r;
}

/* The same rule as /ws: a valid token, or none if --allow-anonymous. */
static int
authorized(struct lws *wsi)
{
	char		user[RELAY_MAX_USER_ID + 1];
	enum auth_result r = auth_request(wsi, user, sizeof(user), NULL, NULL);

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
	struct relay_health h;
	int			up,
				deaf;

	view->health(&h);
	up = h.db_up;
	deaf = up && h.notifications == PROBE_FAILED;
	lws_snprintf(json, sizeof(json),
				 "{\"status\":\"%s\",\"database\":\"%s\",\"notifications\":\"%s\","
				 "\"connections\":%d}",
				 !up ? "unavailable" : deaf ? "no_notifications" : "ok",
				 up ? "up" : "down", heard[up ? h.notifications : PROBE_UNCHECKED],
				 h.connections);
	return http_reply(wsi, up && !deaf ? 200 : 503, json, 0);
}

static int
serve_metrics(struct lws *wsi)
{
	struct jbuf b = {0};
	int			r = -1;

	metrics_render(&b);
	if (!b.oom)
		r = respond(wsi, 200, "text/plain; version=0.0.4", b.p + LWS_PRE, b.len, 0);
	jbuf_free(&b);
	return r;
}

static int
serve_demo_token(struct lws *wsi)
{
	char		arg[RELAY_MAX_USER_ID + 16];
	const char *user = lws_get_urlarg_by_name(wsi, "user=", arg, sizeof(arg));
	struct jbuf b = {0};
	char	   *token;
	int			r = -1;

	if (!user || !*user || strlen(user) > RELAY_MAX_USER_ID)
		return http_reply(wsi, 400, "{\"error\":\"user=NAME (1 to 256 bytes) is required\"}", 0);
	token = auth_mint_token(user, relay_opts.demo_token_ttl);
	if (!token)
		return http_reply(wsi, 500, "{\"error\":\"cannot mint a token\"}", 0);
	jbuf_str(&b, "{\"token\":");
	jbuf_quote(&b, token, strlen(token));
	jbuf_str(&b, "}");
	lws_explicit_bzero(token, strlen(token));
	free(token);
	if (!b.oom)
		r = respond(wsi, 200, "application/json", b.p + LWS_PRE, b.len, 0);
	if (b.p)
		lws_explicit_bzero(b.p, b.cap);
	jbuf_free(&b);
	return r;
}

/*
 * OPTIONS /online: the CORS preflight a browser sends before a GET with
 * an Authorization header from another origin.  Allowed origins get 204
 * and what they may send; others 403.
 */
static int
serve_preflight(struct lws *wsi, const char *uri)
{
	char		origin[256];

	if (strcmp(uri, "/online"))
		return http_reply(wsi, 404, "{\"error\":\"not found\"}", 0);
	if (!cors_origin(wsi, origin, sizeof(origin)))
		return http_reply(wsi, 403, "{\"error\":\"origin not allowed\"}", 0);
	return write_head(wsi, 204, NULL, 0, 0, 1);
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
		c->wsi = wsi;
		c->waiter.ready = snapshot_ready;
		c->waiter.failed = snapshot_failed;
		switch (view->online(&c->waiter))
		{
			case 0:
				break;
			case -2:
				return http_reply(wsi, 404, "{\"error\":\"no global feed (--global-feed no)\"}", 0);
			default:
				return http_reply(wsi, 503, "{\"error\":\"database unavailable\"}", 0);
		}
		c->http_waiting = 1;
		lws_set_timeout(wsi, PENDING_TIMEOUT_USER_REASON_BASE + 1, ONLINE_TIMEOUT_S);
		return 1;
	}
	return http_reply(wsi, 404, "{\"error\":\"not found\"}", 0);
}

/* The snapshot for a waiting /online (a reference of its own). */
static void
snapshot_ready(struct waiter *w, struct frame *s)
{
	struct client *c = lws_container_of(w, struct client, waiter);

	c->http_waiting = 0;
	c->http_body = s;
	c->http_sent = 0;
	if (relay_opts.send_timeout)
		lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_REASON_BASE + 2,
						relay_opts.send_timeout);
	else
		lws_set_timeout(c->wsi, NO_PENDING_TIMEOUT, 0);
	lws_callback_on_writable(c->wsi);
}

/*
 * Writes the next piece of an /online body (after the headers, for the
 * first).  Returns 1 when the body is complete, 0 if more is to come, -1
 * on error.
 */
static int
write_body(struct lws *wsi, struct client *c)
{
	struct frame *s = c->http_body;
	size_t		left = s->len - c->http_sent,
				n = left > RELAY_SEND_CHUNK ? RELAY_SEND_CHUNK : left;

	if (!c->http_sent && write_head(wsi, 200, "application/json", s->len, 0, 0))
		return -1;
	memcpy(scratch + LWS_PRE, s->buf + LWS_PRE + c->http_sent, n);
	if (lws_write(wsi, scratch + LWS_PRE, n,
				  n == left ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) != (int) n)
		return -1;
	c->http_sent += n;
	if (n < left)
	{
		lws_callback_on_writable(wsi);
		return 0;
	}
	return 1;
}

/* The link went down before a snapshot came: 503. */
static void
snapshot_failed(struct waiter *w)
{
	struct client *c = lws_container_of(w, struct client, waiter);

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
			if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_OPTIONS_URI) > 0)
				return finish(wsi, serve_preflight(wsi, uri));
			if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) <= 0)
				return finish(wsi, http_reply(wsi, 405, "{\"error\":\"GET only\"}", 0));
			r = route(wsi, c, uri);
			return r == 1 ? 0 : finish(wsi, r);

		case LWS_CALLBACK_HTTP_WRITEABLE:
			if (c->http_body)
			{
				r = write_body(wsi, c);
				if (r == 0)
					return 0;
				frame_release(c->http_body);
				c->http_body = NULL;
				return finish(wsi, r < 0 ? -1 : 0);
			}
			if (c->http_status)
			{
				c->http_status = 0;
				return finish(wsi, http_reply(wsi, 503, "{\"error\":\"database unavailable\"}", 0));
			}
			return 0;

		case LWS_CALLBACK_CLOSED_HTTP:
			if (c && c->http_waiting)
				view->online_cancel(&c->waiter);
			if (c)
			{
				c->http_waiting = 0;
				frame_release(c->http_body);
				c->http_body = NULL;
			}
			return 0;

		default:
			return lws_callback_http_dummy(wsi, reason, user, in, len);
	}
}
