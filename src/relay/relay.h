/*
 * relay.h - what the parts of presence-relay know of each other.
 *
 * One process, one libwebsockets event loop.  Data flows one way, down the
 * page; nothing calls back up it by name.  main.c wires the parts together
 * with small tables of function pointers (as lws_protocols, or libpq's
 * notice receiver), and a lower part knows only the pointers it was given.
 *
 *   PostgreSQL
 *      |  libpq: results, notifications (probe.c: do they arrive at all?)
 *   dblink.c --handlers: up, down, idle, notification--> main.c
 *      ^                                                   |
 *      | queries (one at a time)                           | notification
 *   queue.c <--pumps, in order-- origin.c, sessions.c,     v
 *      feed.c                                         origin.c (the worker's
 *                                                      pid, event.c's shape)
 *                                                          | hooks: event, lost
 *                                                          v
 *                                              feed.c (global state, changes)
 *                                                          |
 *   ws.c (client messages) --> sessions.c, feed.c          v
 *                                              out.c (frames, in stamp order)
 *                                                          |
 *                                                    WebSocket clients
 *
 *   http.c --http_view (main.c)--> health, feed.c's snapshot for /online
 *   metrics.c <-- counters and gauges that every part bumps or sets
 *   deadline.c: one timer; out.c says what is due (token expiry, states)
 *
 * Pure parts, each testable alone: json.c builds JSON, event.c checks
 * notification payloads, state.c builds states, message.c parses what
 * clients send, auth.c checks tokens, bucket.c rate-limits, caps.c counts
 * sockets per user and address (clientaddr.c: behind which proxies),
 * hash.c, strbuf.c, listen.c, conninfo.c.
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
#define RELAY_MAX_CHANNEL	256		/* as presence.join() */
#define RELAY_MAX_META		1024	/* as presence.join(), as jsonb text */
#define RELAY_MAX_STATUS_MESSAGE (140 * 4)	/* 140 characters of UTF-8 */
#define RELAY_MAX_STATUS_CHARS 140	/* as presence.set_status_message() */
#define RELAY_MAX_EXPIRES_IN (10.0 * 365 * 24 * 3600)	/* a status message's, seconds */
#define RELAY_MAX_MESSAGE	(64 * 1024)	/* bigger client frames: 1009 */
#define RELAY_MAX_TOKEN		4096
#define RELAY_MAX_PAYLOAD	8000		/* NOTIFY's own limit */
#define RELAY_CATCH_UPS	8		/* a large channel's catch-up diffs kept for reuse */
#define RELAY_SEND_CHUNK	(16 * 1024) /* a state or /online body goes out in pieces */

/* Close codes of our own (documented in docs/relay.md). */
#define RELAY_CLOSE_TOKEN_EXPIRED	4001
#define RELAY_CLOSE_TOKEN_REFUSED	4003

struct message_parser;

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
	int			queue_length;	/* frames a client may lag */
	int			ping_interval;	/* seconds a client may be quiet before a ping */
	int			verbose;
	int			max_sessions_per_user;
	int			max_connections_per_ip;
	const char *trusted_proxy;	/* comma separated addresses */
	int			max_client_backlog; /* bytes of changes a client may be owed */
	int			send_timeout;	/* seconds for a state or /online body */
	double		message_rate;	/* client messages per second ... */
	int			message_burst;	/* ... and how many at once */
	int			global_feed;	/* clients get every user's changes */
	int			large_channel;	/* watchers past which a channel gets diffs */
	int			max_channels_per_client;
};

extern struct relay_options relay_opts;
extern struct lws_context *relay_context;
extern struct lws_vhost *relay_vhost;

/*
 * A JSON text sent to one or many clients (a change, a state, an answer),
 * serialized once and shared: freed by the last holder.  Frames are
 * stamped in the order they are made, and each client is written its
 * frames in stamp order whatever their source (out.c).
 */
struct frame
{
	int			refs;
	uint64_t	stamp;
	lws_usec_t	received;		/* when its notification reached us; 0: none */
	size_t		len;
	unsigned char *buf;			/* LWS_PRE bytes, then len bytes of JSON */
	unsigned	is_state:1;		/* a state: it must go out within --send-timeout */
};

/* One client's side of out.c: what it is still owed, and how it is doing. */
struct outbox
{
	lws_dll2_t	list;			/* in out.c's list of WebSocket clients */
	struct frame **q;			/* frames of its own, a ring of qcap */
	uint32_t	qhead,
				qlen,
				qcap;
	size_t		qbytes;			/* of the frames in q, states aside */
	struct frame *cur;			/* being written, in pieces */
	size_t		cur_sent;
	uint32_t	tail;			/* next broadcast to send, if following */
	int			states;			/* state frames owed (queued or being written) */
	lws_usec_t	state_due;		/* the oldest must be out by then; 0: no limit */
	lws_usec_t	heard;			/* when it last sent anything (a pong too) */
	lws_usec_t	pinged;			/* when it was last pinged */
	uint16_t	close_code;		/* closing: 1008 slow, 1001 shutdown, ... */
	const char *close_why;		/* reason text of the close frame */
	unsigned	following:1;	/* it gets broadcasts (tail is live) */
	unsigned	later:1;		/* owed frames made when its queue is empty */
};

/* A GET /online waiting for a snapshot (http.c); feed.c answers it. */
struct waiter
{
	lws_dll2_t	list;
	void		(*ready) (struct waiter *w, struct frame *snapshot);	/* holds a ref */
	void		(*failed) (struct waiter *w);
};

/*
 * Per-connection user data of the "presence" protocol.  lws allocates one
 * for every HTTP and WebSocket connection bound to it, so it stays small:
 * an idle WebSocket client costs this plus what lws itself keeps.  Each
 * module keeps its own part.
 */
struct bucket
{
	float		tokens;			/* messages it may send now */
	float		debt;			/* messages ignored lately (decays) */
	lws_usec_t	at;				/* when tokens and debt were last updated */
};

struct client
{
	struct lws *wsi;
	char	   *user;			/* NULL: anonymous watcher, not tracked */
	char	   *addr;			/* counted in caps.c under this address */
	struct outbox out;			/* out.c */

	/* sessions.c */
	lws_dll2_t	tracked;		/* in its list of tracked clients */
	lws_dll2_t	pending;		/* in one of its work lists, if any */
	uint64_t	session_no;		/* names the presence session */
	lws_usec_t	wake_ok_at;		/* may hurry a heartbeat again from then */
	unsigned	registered:1;	/* presence.connect() succeeded */
	unsigned	in_flight:1;	/* presence.connect() sent, no answer yet */
	unsigned	known:1;		/* some server may have its session */
	unsigned	active:1;		/* last "active" the client reported */
	unsigned	sent_active:1;	/* "active" in the last heartbeat sent */
	unsigned	solo:1;			/* connect alone: its batch failed */
	unsigned	waking:1;		/* in the list of heartbeats to hurry */

	/* feed.c */
	unsigned	wants_state:1;	/* waiting for the next global snapshot */

	/* channels.c */
	lws_dll2_owner_t subs;		/* its struct sub */
	struct grants *grants;		/* the channels its token lets it use */

	/* ws.c */
	lws_usec_t	expires;		/* its token's exp, on lws_now_usecs()'s clock; 0: never */
	struct message_parser *partial; /* parser of a fragmented message */
	size_t		partial_len;
	struct bucket bucket;		/* its message rate */
	lws_usec_t	rate_told;		/* when it was last told it is rate limited */
	unsigned	counted:1;		/* in caps.c's counts */
	unsigned	skipping:1;		/* dropping a message over --message-rate */
	unsigned	oversized:1;	/* dropping a message over the limit */
	unsigned	is_ws:1;

	/* http.c: GET /online */
	struct waiter waiter;
	unsigned	http_waiting:1;
	struct frame *http_body;
	size_t		http_sent;		/* bytes of http_body written so far */
	unsigned short http_status; /* 503: the link went down meanwhile */
};

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

/*
 * A channel some client joins or watches (channels.c), with its members as
 * far as the relay knows them (members.c).
 */
struct channel
{
	struct hnode node;			/* in channels.c's table, by name */
	lws_dll2_owner_t subs;		/* struct sub: its clients */
	int			watchers;		/* of them, those watching */
	lws_dll2_t	state_list;		/* waiting for its state, or being read */
	lws_dll2_t	due_list;		/* a diff is due (large) */
	unsigned	reading:1;		/* its state query is out */
	unsigned	stale:1;		/* ... and what it reads may be out of date */
	/* members.c, diffs.c */
	struct htable members;		/* struct member, by user id */
	lws_dll2_owner_t order;		/* struct member, by last change, oldest first */
	lws_dll2_owner_t tombs;		/* members gone, kept for lagging watchers (large) */
	int64_t		dirty_seq;		/* the newest seq applied */
	int64_t		gen;			/* the last generation closed; changes go in gen + 1 */
	int64_t		diff_base,		/* the last diff brings watchers from diff_base */
				diff_gen;		/* ... to diff_gen */
	int64_t		floor;			/* a watcher older than this gets a state */
	struct frame *diff;			/* that diff (NULL: nothing to say) */
	struct frame *catch[RELAY_CATCH_UPS];	/* catch-ups made to catch_gen */
	int64_t		catch_since[RELAY_CATCH_UPS];	/* ... each from this one */
	int64_t		catch_gen;		/* (reused while that is gen) */
	int			catch_used;
	unsigned	known:1;		/* members read, and kept up to date since */
	unsigned	large:1;		/* its events go into diffs */
	size_t		len;
	char		name[];
};

/*
 * One client's subscription to one channel (channels.c), and its wish to
 * be a member, which joins.c writes to the database.
 */
struct sub
{
	lws_dll2_t	by_channel;		/* in its channel's subs */
	lws_dll2_t	by_client;		/* in its client's subs */
	lws_dll2_t	work;			/* in a joins.c list, while it has database work */
	struct channel *ch;
	struct client *c;
	char	   *meta;			/* its last meta, written afresh (NULL: none) */
	char	   *join_meta;		/* the meta its join goes with */
	uint32_t	meta_version;	/* counts joins and meta changes */
	uint32_t	join_version;	/* the version of join_meta */
	uint32_t	sent_version;	/* the version the database has */
	uint32_t	sending_version;	/* ... the one in flight */
	unsigned	watching:1;		/* subscribed: gets the channel's frames */
	unsigned	wants_state:1;	/* waiting for the channel's state */
	unsigned	has_state:1;	/* its state was sent: it gets the events */
	unsigned	lagging:1;		/* owed a catch-up diff when it can take one */
	int64_t		gen;			/* the generation it was sent (large channels) */
	unsigned	present:1;		/* joined: its session is to be a member */
	unsigned	db_member:1;	/* the database has the membership */
	unsigned	in_flight:1;	/* a call for it is out */
	unsigned	solo:1;			/* its batch failed: alone next time */
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
void		jbuf_quote_or_null(struct jbuf *b, const char *s, size_t n);
int			json_digits(const char *s);
char	   *jbuf_text(struct jbuf *b);
void		jbuf_free(struct jbuf *b);
int			json_utf8_ok(const char *s, size_t n);

/*
 * jsonv.c: JSON from strangers, read strictly (RFC 8259) and written
 * afresh.  jsonv_members() hands over an object's members: key decoded
 * (NULL if longer than JSONV_MAX_KEY), value as raw text.
 */
#define JSONV_MAX_KEY 64
typedef int (*jsonv_member_fn) (void *arg, const char *key, size_t klen,
								const char *value, size_t vlen);
typedef int (*jsonv_element_fn) (void *arg, const char *value, size_t vlen);
int			jsonv_copy(const char *s, size_t n, struct jbuf *out, size_t *text_len);
int			jsonv_members(const char *s, size_t n, jsonv_member_fn fn, void *arg);
int			jsonv_elements(const char *s, size_t n, jsonv_element_fn fn, void *arg);
int			jsonv_string(const char *v, size_t n, char *out, size_t cap, size_t *len);
int			jsonv_is(const char *v, size_t n, const char *word);

/* event.c: notification payloads, checked, and their frames */
enum event_kind
{
	EVENT_PRESENCE,				/* a user's status changed */
	EVENT_JOIN,					/* a member is shown in a channel */
	EVENT_UPDATE,				/* a member session's meta changed */
	EVENT_LEAVE,				/* a member left a channel */
	EVENT_MESSAGE,				/* a user's status message changed */
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
	char		channel[RELAY_MAX_CHANNEL + 1];	/* channel events */
	size_t		channel_len;
	enum presence_status status;	/* a status change's, or a join's */
	enum presence_status previous;
	char		last_active[48];	/* "": null */
	char		meta[RELAY_MAX_PAYLOAD + 1];	/* written afresh */
	size_t		meta_len;		/* 0: null */
	char		message[RELAY_MAX_STATUS_MESSAGE + 1];	/* a status message */
	size_t		message_len;	/* 0: null */
	char		expires_at[48]; /* "": null */
};
int			event_parse(const char *payload, size_t len, struct presence_event *ev);
int			event_frame(const struct presence_event *ev, struct jbuf *out);
int			event_frame_in(const struct presence_event *ev, const char *channel,
						   size_t len, struct jbuf *out);
int			event_frame_join(const struct presence_event *ev, const char *message,
							 size_t len, struct jbuf *out);
int			event_timestamp_ok(const char *s, size_t n);
const char *event_status_name(enum presence_status s);
const char *event_kind_name(enum event_kind k);

/* state.c: the "state" message, from presence.online_users()'s rows */
const char *state_query(const char *extversion);
int			state_build(const PGresult *res, int64_t seq, struct jbuf *out);

/*
 * origin.c: notifications from the presence worker only.  What passes goes
 * to event(), which returns -1 to have it held back and offered again
 * later (dblink_resume_notifications()); lost() says that changes may have
 * been missed, so that whoever keeps state reads it again.
 */
struct origin_hooks
{
	int			(*event) (const struct presence_event *ev);
	void		(*lost) (void);
};
void		origin_init(const struct origin_hooks *hooks);
int			origin_notification(int be_pid, const char *payload);
int64_t		origin_last_seq(void);
void		origin_link_up(void);
void		origin_link_down(void);
int			origin_pump(void);
void		origin_cleanup(void);

/*
 * access.c: the channels a token's "channels" claim lets a client use:
 * names, and prefixes ending in "*".
 */
#define RELAY_MAX_GRANTS 64
struct grants;
struct grants *access_parse(const char *claim, int *bad);
int			access_allows(const struct grants *gs, const char *channel, size_t len);
void		access_free(struct grants *gs);

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

/*
 * deadline.c: one timer for many deadlines.  pass(now) does what is due
 * and returns the next deadline (0: none).
 */
typedef lws_usec_t (*deadline_pass_fn) (lws_usec_t now);
void		deadline_init(deadline_pass_fn pass);
void		deadline_note(lws_usec_t at);
void		deadline_stop(void);

/* main.c */
int			relay_is_loopback(const char *addr);

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
	AUTH_BAD_CHANNELS,			/* "channels" not as documented */
};
int			auth_init(const char *secret_file, int demo);
void		auth_cleanup(void);
enum auth_result auth_verify_token(const unsigned char *key, size_t keylen,
								   const char *token, double now,
								   char *user, size_t usersz, double *exp,
								   struct grants **grants);
enum auth_result auth_request(struct lws *wsi, char *user, size_t usersz,
							  double *exp, struct grants **grants);
enum auth_result auth_check(const char *token, char *user, size_t usersz,
							double *exp, struct grants **grants);
const char *auth_result_str(enum auth_result r);
char	   *auth_mint_token(const char *user, int ttl);

/* message.c: what clients send */
#define RELAY_MAX_CHANNEL_MESSAGE (8 * 1024)	/* a join with a meta escaped at length */
enum message_kind
{
	MESSAGE_HEARTBEAT,
	MESSAGE_VISIBILITY,
	MESSAGE_TOKEN,				/* {"type":"token","token":"..."} */
	MESSAGE_JOIN,				/* the channel messages, JOIN to UPDATE */
	MESSAGE_SUBSCRIBE,
	MESSAGE_LEAVE,
	MESSAGE_UNSUBSCRIBE,
	MESSAGE_UPDATE,
	MESSAGE_STATUS_MESSAGE,		/* {"type":"status_message",...} */
	MESSAGE_OTHER,				/* valid JSON we do not act on */
	MESSAGE_MALFORMED,
};
struct message
{
	enum message_kind kind;
	int			active;			/* heartbeat: 1 unless "active":false */
	int			visible;		/* visibility: 1 or 0 */
	char	   *token;			/* token: malloc'd, freed by message_clear() */
	/* channel messages */
	const char *error;			/* what is wrong with it, an error code; NULL: nothing */
	char		channel[RELAY_MAX_CHANNEL + 1];
	size_t		channel_len;
	char	   *meta;			/* written afresh, malloc'd; NULL: none given */
	size_t		meta_len;
	int			meta_bad;
	/* status messages */
	char		status[RELAY_MAX_STATUS_MESSAGE + 1];
	size_t		status_len;		/* 0: clear it */
	int			has_status;
	double		expires_in;		/* seconds; 0: no expiry */
};
struct message_parser;
struct message_parser *message_begin(void);
void		message_feed(struct message_parser *p, const void *buf, size_t len);
enum message_kind message_end(struct message_parser *p, struct message *out);
enum message_kind message_parse(const void *buf, size_t len,
								struct message *out);
void		message_clear(struct message *m);

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

/*
 * out.c: what each WebSocket client is sent.  Frames are broadcast to the
 * clients following the shared ring, or sent to one client; either way a
 * client gets them in stamp order.  room() is called when a broadcast was
 * refused (the ring full) and there may be room now; later(c) when a
 * client that out_later() was called for has nothing else to write.
 */
struct frame *frame_make(struct jbuf *b, lws_usec_t received);
void		frame_hold(struct frame *f);
void		frame_release(struct frame *f);
int			out_init(int queue_length, void (*room) (void),
					 void (*later) (struct client *c));
void		out_stop(void);
void		out_destroy(void);
void		out_add(struct client *c);
void		out_remove(struct client *c);
int			out_count(void);
lws_dll2_owner_t *out_clients(void);
int			out_broadcast(struct frame *f);
void		out_follow(struct client *c);
void		out_unfollow(struct client *c);
void		out_send(struct client *c, struct frame *f);
int			out_busy(const struct client *c);
void		out_later(struct client *c);
void		out_reply(struct client *c, struct jbuf *frame);
void		out_heard(struct client *c);
int			out_write(struct client *c);
void		out_close(struct client *c, uint16_t code, const char *why);
void		out_close_all(void);
int			out_closing(void);
lws_usec_t	out_deadlines(lws_usec_t now);

/* feed.c: the global feed, a state then every change, and GET /online */
void		feed_add(struct client *c);
void		feed_remove(struct client *c);
int			feed_event(const struct presence_event *ev);
void		feed_resync(void);
int			feed_pump(void);
void		feed_wait(struct waiter *w);
void		feed_cancel(struct waiter *w);
void		feed_link_up(const char *extversion);
void		feed_link_down(void);
void		feed_cleanup(void);

/* ws.c: the WebSocket protocol */
int			ws_callback(struct lws *wsi, enum lws_callback_reasons reason,
						void *user, void *in, size_t len);

/*
 * http.c: plain HTTP endpoints.  What they show of the relay comes through
 * struct http_view, wired in main.c.
 */
struct relay_health
{
	int			db_up;
	enum probe_result notifications;
	int			connections;
};
struct http_view
{
	void		(*health) (struct relay_health *h);
	int			(*online) (struct waiter *w);	/* -1: the database is unavailable, -2: no
												 * global feed */
	void		(*online_cancel) (struct waiter *w);
};
void		http_init(const struct http_view *view);
int			http_callback(struct lws *wsi, enum lws_callback_reasons reason,
						  void *user, void *in, size_t len);
int			http_metrics_callback(struct lws *wsi, enum lws_callback_reasons reason,
								  void *user, void *in, size_t len);
int			http_origin_allowed(struct lws *wsi);
int			http_reply(struct lws *wsi, unsigned int status, const char *body,
					   int www_authenticate);
int			http_refuse(struct lws *wsi, unsigned int status, const char *error,
						const char *limit);

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

/*
 * dblink.c: the one libpq connection.  It knows nobody above it: what it
 * hears goes to the handlers main.c gives it.  up() when the link is ready
 * (LISTENing), down() once after it broke, notification() for each one
 * (-1: hold it until dblink_resume_notifications()), idle() whenever no
 * query is in flight.  A query's result goes to the callback sent with it.
 */
struct dblink_info
{
	int			session_timeout_ms; /* presence.session_timeout */
	const char *extversion;		/* the extension's, in this database */
};
struct dblink_handlers
{
	void		(*up) (const struct dblink_info *info);
	void		(*down) (void);
	int			(*notification) (int be_pid, const char *payload);
	void		(*idle) (void);
};
typedef void (*dblink_result_cb) (PGresult *res, void *arg);
int			dblink_start(const char *conninfo, const struct dblink_handlers *h);
void		dblink_stop(void);
int			dblink_is_up(void);
int			dblink_is_idle(void);
int			dblink_send(const char *sql, int nparams, const char *const *values,
						dblink_result_cb cb, void *arg);
void		dblink_resume_notifications(void);
void		dblink_fail(const char *why);
int			dblink_callback(struct lws *wsi, enum lws_callback_reasons reason,
							void *user, void *in, size_t len);

/*
 * queue.c: who uses the link next.  The pumps, in order of priority, each
 * send one query if they have work (and return 1); queue_kick() runs them
 * when the link is free.
 */
typedef int (*queue_pump_fn) (void);
void		queue_init(const queue_pump_fn *pumps, int n);
void		queue_kick(void);

/* strbuf.c: PostgreSQL array literals for batched queries */
struct strbuf
{
	char	   *p;
	size_t		len,
				cap;
	int			oom;
};
void		sb_add(struct strbuf *b, const char *s, size_t n);
void		sb_add_elem(struct strbuf *b, const char *s);
void		sb_add_null(struct strbuf *b);
void		sb_free(struct strbuf *b);

/*
 * sessions.c: presence sessions of the relay's clients.  registered(c)
 * once presence.connect() took c's session (again, after a reconnect).
 */
struct sessions_hooks
{
	void		(*registered) (struct client *c);
};
void		sessions_init(const char *prefix, const struct sessions_hooks *hooks);
void		sessions_id(const struct client *c, char *buf, size_t len);
void		sessions_add(struct client *c);
void		sessions_remove(struct client *c);
void		sessions_activity(struct client *c, int active);
void		sessions_set_visible(struct client *c, int visible);
void		sessions_set_status_message(struct client *c, const char *message,
										double expires_in);
void		sessions_link_up(int session_timeout_ms, const char *extversion);
void		sessions_link_down(void);
int			sessions_pump(void);
int			sessions_pump_heartbeat(void);
void		sessions_cleanup(void);

/*
 * members.c: the members of watched channels, kept from their states and
 * events, and the frames (or diffs) their watchers get.  publish(ch, f)
 * sends f to ch's watchers; f NULL: a diff of ch is due.
 */
typedef void (*members_publish_fn) (struct channel *ch, struct frame *f);
int			members_init(void);
void		members_cleanup(void);
void		members_reset(struct channel *ch);
int			members_load(struct channel *ch, const PGresult *res, int from, int to,
						 int64_t seq, struct jbuf *b);
void		members_event(const struct presence_event *ev, struct channel *ch,
						  members_publish_fn publish);
void		members_status(const struct presence_event *ev, members_publish_fn publish);
int			members_sweep(lws_usec_t now);
int			members_lonely(void);

/*
 * diffs.c: a large channel's diffs.  members_diff() closes the generation
 * of the changes so far, making the diff every watcher that has the
 * previous one shares; members_catch_up() brings a watcher that missed
 * some from its generation to now (-1: too old, it needs a state).
 */
void		members_diff(struct channel *ch);
int			members_catch_up(struct channel *ch, int64_t *since, struct frame **f);
void		members_prune(struct channel *ch, int64_t oldest);
int64_t		members_set_large(struct channel *ch, int large);

/* joins.c: the sockets' own memberships, written to the database */
void		joins_init(void (*settled) (struct sub *s));
void		joins_join(struct sub *s);
void		joins_changed(struct sub *s);
void		joins_forget(struct sub *s);
int			joins_busy(const struct sub *s);
void		joins_registered(struct client *c);
int			joins_pump(void);
void		joins_link_up(void);
void		joins_link_down(lws_dll2_owner_t *clients);

/* channels.c: the channels clients join and watch */
int			channels_init(void);
void		channels_cleanup(void);
void		channels_message(struct client *c, struct message *m);
void		channels_error(struct client *c, const char *request, const char *channel,
						   size_t len, const char *code);
void		channels_regrant(struct client *c);
void		channels_remove_client(struct client *c);
void		channels_settled(struct sub *s);
void		channels_event(const struct presence_event *ev);
void		channels_catch_up(struct client *c);
void		channels_resync(void);
void		channels_link_down(void);
int			channels_pump_states(void);

/* metrics.c */
struct relay_metrics
{
	/* gauges, set by their owners */
	int			clients;		/* WebSocket clients (out.c) */
	int			tracked;		/* of them, presence sessions (sessions.c) */
	int			db_up;			/* the link is up (dblink.c) */
	int			channels;		/* channels watched or joined (channels.c) */
	int			subscriptions;	/* client x channel watches (channels.c) */
	/* counters */
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
	uint64_t	disconnects_dropped_total;
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
	uint64_t	status_message_batches_total;
	uint64_t	join_batches_total[3];	/* leave, join, update (joins.c) */
	uint64_t	channel_states_total;	/* presence.members() queries */
	uint64_t	channel_errors_total;	/* error frames for channel messages */
	uint64_t	channel_forbidden_total;	/* of them, forbidden */
	uint64_t	diffs_total;	/* diff frames made (large channels) */
	uint64_t	catch_ups_total;	/* of them, for one lagging watcher */
	uint64_t	seq_gaps_total; /* changes found missing, states read again */
};
extern struct relay_metrics relay_metrics;
void		metrics_observe_delay(lws_usec_t us);
void		metrics_render(struct jbuf *out);

#endif							/* PRESENCE_RELAY_H */
