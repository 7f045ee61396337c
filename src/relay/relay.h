/*
 * relay.h - what the parts of presence-relay know of each other.
 *
 * One process, one libwebsockets event loop.  Data flows one way:
 *   dblink.c (libpq: LISTEN, results)  ->  feed.c (shared ring, snapshots)
 *   -> ws.c (one writer per client).
 * sessions.c turns WebSocket clients into presence sessions (connect,
 * batched heartbeats, disconnect) over the same database link; http.c
 * serves the plain HTTP endpoints; auth.c checks tokens; message.c parses
 * what clients send.
 */
#ifndef PRESENCE_RELAY_H
#define PRESENCE_RELAY_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <libwebsockets.h>
#include <libpq-fe.h>

/* Limits a user of the relay can rely on (documented in the README). */
#define RELAY_MAX_USER_ID	256		/* as presence.connect() */
#define RELAY_MAX_MESSAGE	(64 * 1024)	/* bigger client frames: 1009 */
#define RELAY_MAX_TOKEN		4096

struct message_parser;
struct snapshot;

/* Command line, filled by main.c, read everywhere. */
struct relay_options
{
	const char *conninfo;
	const char *bind;
	int			port;
	const char *metrics_bind;	/* ADDR:PORT of the /metrics listener */
	const char *secret_file;
	int			allow_anonymous;
	const char *static_dir;
	int			max_connections;
	const char *allow_origin;	/* comma separated, "*" for any */
	int			demo;
	int			demo_token_ttl; /* seconds */
	int			queue_length;	/* ring entries a client may lag */
	int			ping_interval;	/* seconds a client may be quiet before a ping */
	int			verbose;
};

extern struct relay_options relay_opts;
extern struct lws_context *relay_context;
extern struct lws_vhost *relay_vhost;

/*
 * Per-connection user data of the "presence" protocol.  lws allocates one
 * for every HTTP and WebSocket connection bound to it, so it stays small:
 * an idle WebSocket client costs this plus what lws itself keeps.
 */
struct client
{
	lws_dll2_t	list;			/* in feed's list of WebSocket clients */
	lws_dll2_t	pending;		/* in a sessions.c work list, if any */
	struct lws *wsi;
	char	   *user;			/* NULL: anonymous watcher, not tracked */
	uint64_t	session_no;		/* names the presence session */
	struct snapshot *state;		/* state message still to send */
	struct message_parser *partial; /* parser of a fragmented message */
	size_t		partial_len;
	lws_usec_t	heard;			/* when it last sent anything (a pong too) */
	lws_usec_t	pinged;			/* when it was last pinged */
	uint32_t	tail;			/* next ring entry to send */
	uint16_t	close_code;		/* closing: 1008 slow, 1001 shutdown, ... */
	unsigned	has_tail:1;		/* tail is live (a state was sent) */
	unsigned	wants_state:1;	/* waiting for the next snapshot */
	unsigned	registered:1;	/* presence.connect() succeeded */
	unsigned	in_flight:1;	/* presence.connect() sent, no answer yet */
	unsigned	active:1;		/* last "active" the client reported */
	unsigned	sent_active:1;	/* "active" in the last heartbeat sent */
	unsigned	solo:1;			/* connect alone: its batch failed */
	unsigned	oversized:1;	/* dropping a message over the limit */
	unsigned	is_ws:1;
	/* HTTP requests waiting for a snapshot (/online) */
	unsigned	http_waiting:1;
	struct snapshot *http_body;
	unsigned short http_status;	/* 503: the link went down meanwhile */
};

/* A JSON text shared by every client it goes to, freed by the last one. */
struct snapshot
{
	int			refs;
	uint32_t	ring_head;		/* ring position when it was taken */
	size_t		len;
	unsigned char buf[];		/* LWS_PRE bytes, then len bytes of JSON */
};

/* main.c */
int			relay_is_loopback(const char *addr);
void		relay_session_id(const struct client *c, char *buf, size_t len);
int			relay_shutting_down(void);

/* auth.c: tokens */
enum auth_result
{
	AUTH_OK,
	AUTH_NONE,					/* no token presented */
	AUTH_MALFORMED,
	AUTH_BAD_SIGNATURE,
	AUTH_WRONG_ALG,
	AUTH_EXPIRED,
	AUTH_NO_SUBJECT,
	AUTH_NO_SECRET,
};
int			auth_init(const char *secret_file, int demo);
void		auth_cleanup(void);
enum auth_result auth_verify_token(const unsigned char *key, size_t keylen,
								   const char *token, time_t now,
								   char *user, size_t usersz);
enum auth_result auth_request(struct lws *wsi, char *user, size_t usersz);
const char *auth_result_str(enum auth_result r);
char	   *auth_mint_token(const char *user, int ttl);

/* message.c: what clients send */
enum message_kind
{
	MESSAGE_HEARTBEAT,
	MESSAGE_VISIBILITY,
	MESSAGE_OTHER,				/* valid JSON we do not act on */
	MESSAGE_MALFORMED,
};
struct message
{
	enum message_kind kind;
	int			active;			/* heartbeat: 1 unless "active":false */
	int			visible;		/* visibility: 1 or 0 */
};
struct message_parser;
struct message_parser *message_begin(void);
void		message_feed(struct message_parser *p, const void *buf, size_t len);
enum message_kind message_end(struct message_parser *p, struct message *out);
enum message_kind message_parse(const void *buf, size_t len,
								struct message *out);

/* feed.c: the shared ring and snapshots */
int			feed_init(int queue_length);
void		feed_stop(void);
void		feed_destroy(void);
void		feed_add_client(struct client *c);
void		feed_remove_client(struct client *c);
int			feed_notification(const char *payload);
void		feed_snapshot(const char *json, size_t len);
void		feed_want_snapshot(struct client *c);
void		feed_all_want_snapshot(void);
void		feed_http_wait(struct client *c);
void		feed_http_cancel(struct client *c);
void		feed_http_fail_all(void);
int			feed_write(struct client *c);
void		feed_close_client(struct client *c, uint16_t code);
void		feed_close_all(void);
int			feed_client_count(void);
lws_dll2_owner_t *feed_clients(void);
void		snapshot_release(struct snapshot *s);

/* ws.c: the WebSocket protocol */
int			ws_callback(struct lws *wsi, enum lws_callback_reasons reason,
						void *user, void *in, size_t len);

/* http.c: plain HTTP endpoints */
int			http_callback(struct lws *wsi, enum lws_callback_reasons reason,
						  void *user, void *in, size_t len);
int			http_metrics_callback(struct lws *wsi, enum lws_callback_reasons reason,
								  void *user, void *in, size_t len);
int			http_origin_allowed(struct lws *wsi);
int			http_reply(struct lws *wsi, unsigned int status, const char *body,
					   int www_authenticate);
void		http_snapshot_ready(struct client *c, struct snapshot *s);
void		http_snapshot_failed(struct client *c);

/* listen.c: --bind and --metrics-bind */
int			listen_family(const char *flag, const char *addr);
int			listen_split(const char *flag, const char *arg, char *addr, size_t len,
						 int *port);
int			listen_check(const char *flag, const char *addr, int port);
void		listen_on(struct lws_context_creation_info *info, const char *addr,
					  int port);

/* conninfo.c: the hosts of --db, in the order to try them */
void		conninfo_init(const char *conninfo);
void		conninfo_cleanup(void);
int			conninfo_hosts(void);
int			conninfo_host_index(const char *host, const char *port);
int			conninfo_params(int first, const char **keys, const char **vals);

/* probe.c: does the link receive notifications (no pooler in between)? */
enum probe_result
{
	PROBE_UNCHECKED,			/* not yet, or the probe could not run */
	PROBE_OK,
	PROBE_FAILED,				/* a notification sent to it never came */
};
typedef void (*probe_done_cb) (enum probe_result r);
void		probe_new_channel(void);
const char *probe_channel(void);
void		probe_start(const char *conninfo, PGconn *link, probe_done_cb done);
int			probe_notification(const PGnotify *n);
enum probe_result probe_result(void);
void		probe_stop(void);

/* dblink.c: the one libpq connection */
typedef void (*dblink_result_cb) (PGresult *res, void *arg);
int			dblink_start(const char *conninfo);
void		dblink_stop(void);
int			dblink_is_up(void);
int			dblink_is_idle(void);
int			dblink_send(const char *sql, int nparams, const char *const *values,
						dblink_result_cb cb, void *arg);
void		dblink_resume_notifications(void);
int			dblink_callback(struct lws *wsi, enum lws_callback_reasons reason,
							void *user, void *in, size_t len);

/* sessions.c: presence sessions of the relay's clients */
void		sessions_init(void);
void		sessions_add(struct client *c);
void		sessions_remove(struct client *c);
void		sessions_activity(struct client *c, int active);
void		sessions_set_visible(struct client *c, int visible);
void		sessions_want_snapshot(void);
void		sessions_link_up(int session_timeout_ms);
void		sessions_link_down(void);
void		sessions_pump(void);
void		sessions_cleanup(void);
int			sessions_tracked(void);

/* metrics.c */
struct relay_metrics
{
	uint64_t	connections_total;
	uint64_t	auth_failures_total;
	uint64_t	messages_sent_total;
	uint64_t	notifications_total;
	uint64_t	db_reconnects_total;
	uint64_t	slow_clients_dropped_total;
	uint64_t	oversized_frames_total;
	uint64_t	malformed_messages_total;
	uint64_t	heartbeat_batches_total;
	uint64_t	session_errors_total;
};
extern struct relay_metrics relay_metrics;
void		metrics_observe_delay(lws_usec_t us);
size_t		metrics_render(char *buf, size_t len);

#endif							/* PRESENCE_RELAY_H */
