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
 *
 * Against hostile roles and clients: origin.c forwards only what the
 * presence worker notified, event.c checks and rebuilds each payload and
 * state.c builds the snapshot, both with json.c; caps.c counts sockets
 * per user and per address (clientaddr.c: behind which proxies),
 * bucket.c rate-limits client messages, deadline.c closes sockets whose
 * token expired or whose state did not go out in time.
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
#define RELAY_MAX_PAYLOAD	8000		/* NOTIFY's own limit */
#define RELAY_SEND_CHUNK	(16 * 1024) /* a state or /online body goes out in pieces */

/* Close codes of our own (documented in docs/relay.md). */
#define RELAY_CLOSE_TOKEN_EXPIRED	4001
#define RELAY_CLOSE_TOKEN_REFUSED	4003

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
	int			max_sessions_per_user;
	int			max_connections_per_ip;
	const char *trusted_proxy;	/* comma separated addresses */
	int			max_client_backlog; /* bytes of changes a client may be owed */
	int			send_timeout;	/* seconds for a state or /online body */
	double		message_rate;	/* client messages per second ... */
	int			message_burst;	/* ... and how many at once */
};

extern struct relay_options relay_opts;
extern struct lws_context *relay_context;
extern struct lws_vhost *relay_vhost;

/*
 * Per-connection user data of the "presence" protocol.  lws allocates one
 * for every HTTP and WebSocket connection bound to it, so it stays small:
 * an idle WebSocket client costs this plus what lws itself keeps.
 */
struct bucket
{
	float		tokens;			/* messages it may send now */
	float		debt;			/* messages ignored lately (decays) */
	lws_usec_t	at;				/* when tokens and debt were last updated */
};

struct client
{
	lws_dll2_t	list;			/* in feed's list of WebSocket clients */
	lws_dll2_t	pending;		/* in a sessions.c work list, if any */
	struct lws *wsi;
	char	   *user;			/* NULL: anonymous watcher, not tracked */
	char	   *addr;			/* counted in caps.c under this address */
	uint64_t	session_no;		/* names the presence session */
	struct snapshot *state;		/* state message still to send */
	size_t		state_sent;		/* bytes of it written so far */
	lws_usec_t	state_due;		/* it must be out by then (deadline.c); 0: no limit */
	lws_usec_t	expires;		/* its token's exp, on lws_now_usecs()'s clock; 0: never */
	unsigned char *reply;		/* a frame for this client only (LWS_PRE first) */
	size_t		reply_len;
	struct message_parser *partial; /* parser of a fragmented message */
	size_t		partial_len;
	struct bucket bucket;		/* its message rate */
	lws_usec_t	heard;			/* when it last sent anything (a pong too) */
	lws_usec_t	pinged;			/* when it was last pinged */
	lws_usec_t	wake_ok_at;		/* may hurry a heartbeat again from then */
	uint32_t	tail;			/* next ring entry to send */
	uint16_t	close_code;		/* closing: 1008 slow, 1001 shutdown, ... */
	const char *close_why;		/* reason text of the close frame */
	unsigned	has_tail:1;		/* tail is live (a state was sent) */
	unsigned	wants_state:1;	/* waiting for the next snapshot */
	unsigned	registered:1;	/* presence.connect() succeeded */
	unsigned	in_flight:1;	/* presence.connect() sent, no answer yet */
	unsigned	active:1;		/* last "active" the client reported */
	unsigned	sent_active:1;	/* "active" in the last heartbeat sent */
	unsigned	solo:1;			/* connect alone: its batch failed */
	unsigned	waking:1;		/* in sessions.c's list of heartbeats to hurry */
	unsigned	counted:1;		/* in caps.c's counts */
	unsigned	skipping:1;		/* dropping a message over --message-rate */
	unsigned	oversized:1;	/* dropping a message over the limit */
	unsigned	is_ws:1;
	/* HTTP requests waiting for a snapshot (/online) */
	unsigned	http_waiting:1;
	struct snapshot *http_body;
	size_t		http_sent;		/* bytes of http_body written so far */
	unsigned short http_status;	/* 503: the link went down meanwhile */
};

/* A JSON text shared by every client it goes to, freed by the last one. */
struct snapshot
{
	int			refs;
	uint32_t	ring_head;		/* ring position when it was taken */
	size_t		len;
	unsigned char *buf;			/* LWS_PRE bytes, then len bytes of JSON */
};

/* json.c: JSON built afresh, with LWS_PRE bytes of headroom */
struct jbuf
{
	unsigned char *p;			/* LWS_PRE bytes, then len bytes, then a NUL */
	size_t		len,
				cap;
	int			oom;
};
void		jbuf_add(struct jbuf *b, const char *s, size_t n);
void		jbuf_str(struct jbuf *b, const char *s);
void		jbuf_printf(struct jbuf *b, const char *fmt,...)
			__attribute__((format(printf, 2, 3)));
void		jbuf_quote(struct jbuf *b, const char *s, size_t n);
char	   *jbuf_text(struct jbuf *b);
void		jbuf_free(struct jbuf *b);
int			json_utf8_ok(const char *s, size_t n);

/* event.c: notification payloads, checked, and their frames */
enum event_kind
{
	EVENT_PRESENCE,				/* a user's status changed */
};
enum presence_status
{
	STATUS_ONLINE,
	STATUS_AWAY,
	STATUS_OFFLINE,
};
struct presence_event
{
	enum event_kind kind;
	int64_t		seq;
	char		user_id[RELAY_MAX_USER_ID + 1];
	size_t		user_len;
	enum presence_status status;
	enum presence_status previous;
	char		last_active[48];	/* "": null */
};
int			event_parse(const char *payload, size_t len, struct presence_event *ev);
int			event_frame(const struct presence_event *ev, struct jbuf *out);
int			event_timestamp_ok(const char *s, size_t n);
const char *event_status_name(enum presence_status s);

/* state.c: the "state" message, from presence.online_users()'s rows */
extern const char state_query[];
struct snapshot *state_build(const PGresult *res, int64_t seq);

/* origin.c: notifications from the presence worker only */
int			origin_notification(int be_pid, const char *payload);
void		origin_link_up(void);
void		origin_link_down(void);
int			origin_pump(void);
void		origin_cleanup(void);

/* hash.c: hash tables with string keys, entries embed a struct hnode */
struct hnode
{
	struct hnode *next;
	uint64_t	hash;
	const char *key;			/* the entry's own copy */
	size_t		klen;
};
struct htable
{
	struct hnode **slots;
	size_t		nslots,
				used;
};
int			hash_init(struct htable *t, size_t nslots);
struct hnode *hash_find(const struct htable *t, const char *key, size_t n);
void		hash_add(struct htable *t, struct hnode *e, const char *key, size_t n);
void		hash_remove(struct htable *t, struct hnode *e);
void		hash_each(struct htable *t, void (*fn) (struct hnode *e, void *arg), void *arg);
void		hash_free(struct htable *t);

/* caps.c: sockets per user and per client address */
int			caps_init(void);
void		caps_cleanup(void);
const char *caps_refuse(const char *user, const char *addr);
void		caps_add(struct client *c, const char *addr);
void		caps_remove(struct client *c);

/* clientaddr.c: the client's address, behind --trusted-proxy */
int			clientaddr_init(const char *trusted);
void		clientaddr_cleanup(void);
int			clientaddr_get(struct lws *wsi, char *out, size_t len);

/* bucket.c: a token bucket per client */
enum bucket_verdict
{
	BUCKET_OK,
	BUCKET_EXCESS,				/* ignore this one */
	BUCKET_ABUSE,				/* persistently over: close */
};
void		bucket_init(struct bucket *b, lws_usec_t now, int burst);
enum bucket_verdict bucket_take(struct bucket *b, lws_usec_t now, double rate,
								int burst);

/* deadline.c: token expiry and send deadlines */
void		deadline_note(lws_usec_t at);
void		deadline_stop(void);

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
	AUTH_NOT_YET_VALID,
	AUTH_BAD_CLAIM,				/* exp or nbf not a NumericDate */
	AUTH_NO_SUBJECT,
	AUTH_NO_SECRET,
};
int			auth_init(const char *secret_file, int demo);
void		auth_cleanup(void);
enum auth_result auth_verify_token(const unsigned char *key, size_t keylen,
								   const char *token, double now,
								   char *user, size_t usersz, double *exp);
enum auth_result auth_request(struct lws *wsi, char *user, size_t usersz,
							  double *exp);
enum auth_result auth_check(const char *token, char *user, size_t usersz,
							double *exp);
const char *auth_result_str(enum auth_result r);
char	   *auth_mint_token(const char *user, int ttl);

/* message.c: what clients send */
enum message_kind
{
	MESSAGE_HEARTBEAT,
	MESSAGE_VISIBILITY,
	MESSAGE_TOKEN,				/* {"type":"token","token":"..."} */
	MESSAGE_OTHER,				/* valid JSON we do not act on */
	MESSAGE_MALFORMED,
};
struct message
{
	enum message_kind kind;
	int			active;			/* heartbeat: 1 unless "active":false */
	int			visible;		/* visibility: 1 or 0 */
	char	   *token;			/* token: malloc'd, freed by message_clear() */
};
struct message_parser;
struct message_parser *message_begin(void);
void		message_feed(struct message_parser *p, const void *buf, size_t len);
enum message_kind message_end(struct message_parser *p, struct message *out);
enum message_kind message_parse(const void *buf, size_t len,
								struct message *out);
void		message_clear(struct message *m);

/* feed.c: the shared ring and snapshots */
int			feed_init(int queue_length);
void		feed_stop(void);
void		feed_destroy(void);
void		feed_add_client(struct client *c);
void		feed_remove_client(struct client *c);
int			feed_event(const struct presence_event *ev);
int64_t		feed_last_seq(void);
void		feed_snapshot(struct snapshot *s);
void		feed_want_snapshot(struct client *c);
void		feed_all_want_snapshot(void);
void		feed_http_wait(struct client *c);
void		feed_http_cancel(struct client *c);
void		feed_http_fail_all(void);
int			feed_write(struct client *c);
void		feed_close_client(struct client *c, uint16_t code, const char *why);
void		feed_reply(struct client *c, struct jbuf *frame);
void		feed_set_expiry(struct client *c, double exp);
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
int			http_refuse(struct lws *wsi, unsigned int status, const char *error,
						const char *limit);
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
void		dblink_fail(const char *why);
int			dblink_callback(struct lws *wsi, enum lws_callback_reasons reason,
							void *user, void *in, size_t len);

/* sessions.c: presence sessions of the relay's clients */
struct sessions_hook
{
	void		(*link_up) (void);
	void		(*link_down) (void);
	int			(*pump) (void); /* 1 if it sent a query */
};
void		sessions_init(const struct sessions_hook *hook);
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
	uint64_t	notifications_ignored_sender;
	uint64_t	notifications_ignored_malformed;
	uint64_t	worker_pid_reads_total;
	uint64_t	refused_per_user;
	uint64_t	refused_per_ip;
	uint64_t	refused_max_connections;
	uint64_t	refused_subprotocol;
	uint64_t	messages_rate_limited_total;
	uint64_t	rate_limit_closes_total;
	uint64_t	send_timeouts_total;
	uint64_t	tokens_expired_total;
	uint64_t	tokens_refreshed_total;
	uint64_t	tokens_refused_total;
	uint64_t	wake_batches_total;
	uint64_t	visibility_batches_total;
};
extern struct relay_metrics relay_metrics;
void		metrics_observe_delay(lws_usec_t us);
void		metrics_render(struct jbuf *out);

#endif							/* PRESENCE_RELAY_H */
