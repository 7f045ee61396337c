/*
 * main.c - presence-relay: live presence over WebSocket for the presence
 * extension.  Options, the lws context, signals, a clean shutdown, and the
 * wiring: which module hears what from which (relay.h draws it).
 *
 * Everything runs in one lws event loop: HTTP and WebSocket clients, the
 * libpq connection (adopted as a raw file) and timers (lws_sul).
 */
#include "relay.h"

#include <arpa/inet.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define SHUTDOWN_GRACE_US (3 * LWS_US_PER_SEC)

struct relay_options relay_opts = {
	.bind = "127.0.0.1",
	.port = 8080,
	.demo_token_ttl = 600,
	.queue_length = 1024,
	.ping_interval = 30,
	.max_connections = -1,		/* from the open-files limit */
	.max_sessions_per_user = 20,
	.max_connections_per_ip = 100,
	.max_client_backlog = 1024 * 1024,
	.send_timeout = 20,
	.message_rate = 10,
	.message_burst = 30,
	.global_feed = 1,
	.large_channel = 1000,
	.max_channels_per_client = 50,
};

/* descriptors kept for the database link, HTTP requests, files, the log */
#define FD_RESERVE_MIN 64
struct lws_context *relay_context;
struct lws_vhost *relay_vhost;

static volatile sig_atomic_t stop_requested;
static char metrics_addr[INET6_ADDRSTRLEN];
static int	metrics_port;

static const struct lws_protocols protocols[] = {
	/* first: plain HTTP and upgrades without a subprotocol land here */
	{"presence", ws_callback, sizeof(struct client), 1024, 0, NULL, 0},
	{"presence-db", dblink_callback, 0, 0, 0, NULL, 0},
	{NULL, NULL, 0, 0, 0, NULL, 0}
};

/* the --metrics-bind listener: plain HTTP, /metrics and /healthz */
static const struct lws_protocols metrics_protocols[] = {
	{"presence-metrics", http_metrics_callback, 0, 0, 0, NULL, 0},
	{NULL, NULL, 0, 0, 0, NULL, 0}
};

/*
 * lws's own keepalive is off (a hangup time of 0): it keeps one timer per
 * connection in a sorted list, and with 10,000 clients rescheduling them
 * for every ping and pong took seconds of CPU every 30 s.  feed.c pings
 * quiet clients instead, from one timer.
 */
static const lws_retry_bo_t idle_policy = {
	.secs_since_valid_ping = 0,
	.secs_since_valid_hangup = 0,
};

static const struct option long_options[] = {
	{"db", required_argument, NULL, 'd'},
	{"port", required_argument, NULL, 'p'},
	{"bind", required_argument, NULL, 'b'},
	{"metrics-bind", required_argument, NULL, 'M'},
	{"jwt-secret-file", required_argument, NULL, 's'},
	{"allow-anonymous", no_argument, NULL, 'a'},
	{"static", required_argument, NULL, 'S'},
	{"max-connections", required_argument, NULL, 'm'},
	{"allow-origin", required_argument, NULL, 'o'},
	{"demo", no_argument, NULL, 'D'},
	{"queue-length", required_argument, NULL, 'q'},
	{"ping-interval", required_argument, NULL, 'P'},
	{"max-sessions-per-user", required_argument, NULL, 'U'},
	{"max-connections-per-ip", required_argument, NULL, 'I'},
	{"trusted-proxy", required_argument, NULL, 'T'},
	{"max-client-backlog", required_argument, NULL, 'B'},
	{"send-timeout", required_argument, NULL, 'W'},
	{"message-rate", required_argument, NULL, 'R'},
	{"message-burst", required_argument, NULL, 'r'},
	{"demo-token-ttl", required_argument, NULL, 't'},
	{"global-feed", required_argument, NULL, 'G'},
	{"large-channel", required_argument, NULL, 'L'},
	{"max-channels-per-client", required_argument, NULL, 'C'},
	{"verbose", no_argument, NULL, 'v'},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{NULL, 0, NULL, 0}
};

static void
usage(FILE *f)
{
	fprintf(f,
			"Usage: presence-relay [OPTION]...\n"
			"Live presence over WebSocket for the presence PostgreSQL extension.\n\n"
			"  --db CONNINFO           database to use (libpq conninfo or URI; PG* variables work)\n"
			"  --port N                port to listen on (default 8080)\n"
			"  --bind ADDR             address to listen on (default 127.0.0.1; :: or 0.0.0.0 for all)\n"
			"  --metrics-bind ADDR:PORT  serve /metrics (and /healthz) there only\n"
			"  --jwt-secret-file F     HS256 secret for client tokens\n"
			"  --allow-anonymous       let clients without a token watch (not tracked)\n"
			"  --static DIR            serve DIR at /\n"
			"  --max-connections N     refuse WebSockets beyond N (503; default: 90%% of\n"
			"                          the open-files limit, leaving at least 64)\n"
			"  --max-sessions-per-user N  sockets one user may hold (429; default 20, 0: any)\n"
			"  --max-connections-per-ip N sockets one address may hold (429; default 100, 0: any)\n"
			"  --trusted-proxy LIST    proxies whose X-Real-IP / X-Forwarded-For are believed\n"
			"  --max-client-backlog B  bytes of changes a client may be owed (default 1 MiB)\n"
			"  --send-timeout N        seconds for a state or /online body to go out (default 20)\n"
			"  --message-rate N        client messages per second (default 10, 0: any)\n"
			"  --message-burst N       ... and at once (default 30)\n"
			"  --global-feed yes|no    send every user's changes, or only channels' (default yes)\n"
			"  --large-channel N       channels with more watchers get diffs (default 1000, 0: never)\n"
			"  --max-channels-per-client N  channels one socket may join or watch (default 50, 0: any)\n"
			"  --allow-origin LIST     browser origins allowed, comma separated, or *\n"
			"  --demo                  serve GET /demo/token?user=NAME (loopback --bind only)\n"
			"  --demo-token-ttl N      seconds a demo token is valid (default 600)\n"
			"  --queue-length N        changes a client may lag before it is closed (default 1024)\n"
			"  --ping-interval N       ping a client quiet for N s, drop it at 7N/3 s (default 30)\n"
			"  --verbose               log more\n"
			"  --help, --version\n");
}

static int
parse_int(const char *s, int min, int max, int *out)
{
	char	   *end;
	long		v = strtol(s, &end, 10);

	if (!*s || *end || v < min || v > max)
		return -1;
	*out = (int) v;
	return 0;
}

static int
parse_double(const char *s, double min, double max, double *out)
{
	char	   *end;
	double		v = strtod(s, &end);

	if (!*s || *end || !(v >= min && v <= max))
		return -1;
	*out = v;
	return 0;
}

static int
parse_options(int argc, char **argv)
{
	int			c;

	while ((c = getopt_long(argc, argv, "", long_options, NULL)) != -1)
	{
		switch (c)
		{
			case 'd':
				relay_opts.conninfo = optarg;
				break;
			case 'p':
				if (parse_int(optarg, 1, 65535, &relay_opts.port))
					return fprintf(stderr, "bad --port %s\n", optarg), -1;
				break;
			case 'b':
				relay_opts.bind = optarg;
				break;
			case 'M':
				relay_opts.metrics_bind = optarg;
				break;
			case 's':
				relay_opts.secret_file = optarg;
				break;
			case 'a':
				relay_opts.allow_anonymous = 1;
				break;
			case 'S':
				relay_opts.static_dir = optarg;
				break;
			case 'm':
				if (parse_int(optarg, 1, INT_MAX, &relay_opts.max_connections))
					return fprintf(stderr, "bad --max-connections %s\n", optarg), -1;
				break;
			case 'U':
				if (parse_int(optarg, 0, INT_MAX, &relay_opts.max_sessions_per_user))
					return fprintf(stderr, "bad --max-sessions-per-user %s\n", optarg), -1;
				break;
			case 'I':
				if (parse_int(optarg, 0, INT_MAX, &relay_opts.max_connections_per_ip))
					return fprintf(stderr, "bad --max-connections-per-ip %s\n", optarg), -1;
				break;
			case 'T':
				relay_opts.trusted_proxy = optarg;
				break;
			case 'B':
				if (parse_int(optarg, 0, INT_MAX, &relay_opts.max_client_backlog))
					return fprintf(stderr, "bad --max-client-backlog %s\n", optarg), -1;
				break;
			case 'W':
				if (parse_int(optarg, 0, 3600, &relay_opts.send_timeout))
					return fprintf(stderr, "bad --send-timeout %s\n", optarg), -1;
				break;
			case 'R':
				if (parse_double(optarg, 0, 1e6, &relay_opts.message_rate))
					return fprintf(stderr, "bad --message-rate %s\n", optarg), -1;
				break;
			case 'r':
				if (parse_int(optarg, 1, 1 << 20, &relay_opts.message_burst))
					return fprintf(stderr, "bad --message-burst %s\n", optarg), -1;
				break;
			case 'G':
				if (!strcmp(optarg, "yes"))
					relay_opts.global_feed = 1;
				else if (!strcmp(optarg, "no"))
					relay_opts.global_feed = 0;
				else
					return fprintf(stderr, "bad --global-feed %s (yes or no)\n", optarg), -1;
				break;
			case 'L':
				if (parse_int(optarg, 0, INT_MAX, &relay_opts.large_channel))
					return fprintf(stderr, "bad --large-channel %s\n", optarg), -1;
				break;
			case 'C':
				if (parse_int(optarg, 0, INT_MAX, &relay_opts.max_channels_per_client))
					return fprintf(stderr, "bad --max-channels-per-client %s\n", optarg), -1;
				break;
			case 't':
				if (parse_int(optarg, 1, 24 * 3600, &relay_opts.demo_token_ttl))
					return fprintf(stderr, "bad --demo-token-ttl %s\n", optarg), -1;
				break;
			case 'o':
				relay_opts.allow_origin = optarg;
				break;
			case 'D':
				relay_opts.demo = 1;
				break;
			case 'q':
				if (parse_int(optarg, 2, 1 << 20, &relay_opts.queue_length))
					return fprintf(stderr, "bad --queue-length %s\n", optarg), -1;
				break;
			case 'P':
				if (parse_int(optarg, 1, 3600, &relay_opts.ping_interval))
					return fprintf(stderr, "bad --ping-interval %s\n", optarg), -1;
				break;
			case 'v':
				relay_opts.verbose = 1;
				break;
			case 'h':
				usage(stdout);
				exit(0);
			case 'V':
				printf("presence-relay 1.0 (libwebsockets %s, libpq %d)\n",
					   lws_get_library_version(), PQlibVersion());
				exit(0);
			default:
				usage(stderr);
				return -1;
		}
	}
	if (optind < argc)
	{
		fprintf(stderr, "unexpected argument: %s\n", argv[optind]);
		return -1;
	}
	if (listen_family("--bind", relay_opts.bind) < 0)
		return -1;
	if (relay_opts.metrics_bind &&
		listen_split("--metrics-bind", relay_opts.metrics_bind, metrics_addr,
					 sizeof(metrics_addr), &metrics_port))
		return -1;
	if (relay_opts.metrics_bind && metrics_port == relay_opts.port &&
		!strcmp(metrics_addr, relay_opts.bind))
	{
		fprintf(stderr, "--metrics-bind %s: the same address and port as --bind and --port\n",
				relay_opts.metrics_bind);
		return -1;
	}
	if (listen_check("--bind", relay_opts.bind, relay_opts.port) ||
		(relay_opts.metrics_bind &&
		 listen_check("--metrics-bind", metrics_addr, metrics_port)))
		return -1;
	/* demo tokens let anyone be anyone: never off this machine */
	if (relay_opts.demo && !relay_is_loopback(relay_opts.bind))
	{
		fprintf(stderr, "--demo needs a loopback --bind (127.0.0.1 or ::1), not %s\n",
				relay_opts.bind);
		return -1;
	}
	if (!relay_opts.secret_file && !relay_opts.allow_anonymous && !relay_opts.demo)
	{
		fprintf(stderr, "nobody could connect: give --jwt-secret-file, "
				"--allow-anonymous or --demo\n");
		return -1;
	}
	if (clientaddr_init(relay_opts.trusted_proxy))
		return -1;
	return 0;
}

/*
 * --max-connections unless given: what the open-files limit allows, less
 * a reserve (a tenth, at least FD_RESERVE_MIN) for everything else.
 */
static int
default_max_connections(rlim_t *limit)
{
	struct rlimit rl;
	rlim_t		n,
				reserve;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		rl.rlim_cur = 1024;
	n = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (1 << 20) ? (1 << 20) : rl.rlim_cur;
	*limit = n;
	reserve = n / 10 > FD_RESERVE_MIN ? n / 10 : FD_RESERVE_MIN;
	return n > reserve + 1 ? (int) (n - reserve) : 1;
}

/*
 * Whether --db parses as a conninfo (a URI or key=value pairs), so that a
 * typo is reported at start rather than as a link that never comes up.
 */
static int
conninfo_valid(const char *conninfo)
{
	PQconninfoOption *opts;
	char	   *err = NULL;

	if (!conninfo || !*conninfo)
		return 1;
	opts = PQconninfoParse(conninfo, &err);
	if (!opts)
	{
		fprintf(stderr, "bad --db: %s", err ? err : "out of memory\n");
		PQfreemem(err);
		return 0;
	}
	PQconninfoFree(opts);
	return 1;
}

int
relay_is_loopback(const char *addr)
{
	unsigned char a[16];

	if (!addr)
		return 0;
	if (!strcmp(addr, "localhost"))
		return 1;
	if (inet_pton(AF_INET, addr, a) == 1)
		return a[0] == 127;
	if (inet_pton(AF_INET6, addr, a) == 1)
		return !memcmp(a, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\1", 16);
	return 0;
}

static void
on_signal(int sig)
{
	stop_requested = 1;
	if (relay_context)
		lws_cancel_service(relay_context);
}

static void
wake(lws_sorted_usec_list_t *sul)
{
}

/* Closes every client with 1001, waiting a little for them to go. */
static void
shut_down(void)
{
	lws_sorted_usec_list_t sul_deadline;
	lws_usec_t	deadline = lws_now_usecs() + SHUTDOWN_GRACE_US;

	lwsl_user("shutting down: closing %d client(s)\n", out_count());
	out_close_all();
	memset(&sul_deadline, 0, sizeof(sul_deadline));
	lws_sul_schedule(relay_context, 0, &sul_deadline, wake, SHUTDOWN_GRACE_US);
	while (out_count() && lws_now_usecs() < deadline)
		if (lws_service(relay_context, 0) < 0)
			break;
	lws_sul_cancel(&sul_deadline);
}

/* A second vhost for --metrics-bind, with the main one's options. */
static int
start_metrics_listener(const struct lws_context_creation_info *main_info)
{
	struct lws_context_creation_info info;

	memset(&info, 0, sizeof(info));
	info.options = main_info->options & ~LWS_SERVER_OPTION_DISABLE_IPV6;
	listen_on(&info, metrics_addr, metrics_port);
	info.protocols = metrics_protocols;
	info.vhost_name = "metrics";
	info.retry_and_idle_policy = &idle_policy;
	return lws_create_vhost(relay_context, &info) ? 0 : -1;
}

/*
 * The wiring.  Data flows one way (relay.h): the database link hands what
 * it hears to these handlers, which pass it on to the modules that consume
 * it; the HTTP side reads the relay through http_view.
 */

/*
 * A change from the presence worker, as origin.c let it through: a user's
 * change (status, status message) to the global feed (if any), then to the
 * channels.  -1 (the ring
 * is full) holds it back whole, to be offered again.
 */
static int
on_event(const struct presence_event *ev)
{
	if (relay_opts.global_feed && (ev->kind == EVENT_PRESENCE || ev->kind == EVENT_MESSAGE) &&
		feed_event(ev))
		return -1;
	channels_event(ev);
	return 0;
}

/* Changes may have been lost: states are read again. */
static void
on_lost(void)
{
	feed_resync();
	channels_resync();
}

static void
on_link_up(const struct dblink_info *info)
{
	origin_link_up();
	sessions_link_up(info->session_timeout_ms, info->extversion);
	joins_link_up();
	feed_link_up(info->extversion);
	feed_resync();
	channels_resync();
	queue_kick();
}

static void
on_link_down(void)
{
	origin_link_down();
	sessions_link_down();
	joins_link_down(out_clients());
	channels_link_down();
	feed_link_down();
}

/* The ring has room again: a notification held back may go now. */
static void
on_room(void)
{
	dblink_resume_notifications();
}

static void
health(struct relay_health *h)
{
	h->db_up = dblink_is_up();
	h->notifications = probe_result();
	h->connections = out_count();
}

static int
online(struct waiter *w)
{
	if (!relay_opts.global_feed)
		return -2;
	if (!dblink_is_up())
		return -1;
	feed_wait(w);
	return 0;
}

static const struct dblink_handlers link_handlers = {
	.up = on_link_up,
	.down = on_link_down,
	.notification = origin_notification,
	.idle = queue_kick,
};

static const struct origin_hooks origin_hooks = {
	.event = on_event,
	.lost = on_lost,
};

static const struct sessions_hooks sessions_hooks = {
	.registered = joins_registered,
};

static const struct http_view view = {
	.health = health,
	.online = online,
	.online_cancel = feed_cancel,
};

/*
 * Who gets the link, in this order: the worker's pid (nothing is forwarded
 * without it), session work (ended sessions before new ones, new ones
 * before anything that needs them), the sockets' channel memberships (a
 * join needs its session; a state should show it), snapshots, channels'
 * states, heartbeats.
 */
static const queue_pump_fn pumps[] = {
	origin_pump,
	sessions_pump,
	joins_pump,
	feed_pump,
	channels_pump_states,
	sessions_pump_heartbeat,
};

int
main(int argc, char **argv)
{
	struct lws_context_creation_info info;
	struct lws_http_mount mounts[5];
	static const char *const callback_paths[] = {"/online", "/healthz", "/metrics", "/demo"};
	char		host[64],
				static_dir[PATH_MAX];
	struct sigaction sa;
	size_t		i;
	rlim_t		fd_limit;
	int			max_default;
	char		session_prefix[128];

	if (parse_options(argc, argv))
		return 2;
	lws_set_log_level(LLL_ERR | LLL_WARN | LLL_USER |
					  (relay_opts.verbose ? LLL_NOTICE : 0), NULL);
	if (!conninfo_valid(relay_opts.conninfo))
		return 2;
	max_default = default_max_connections(&fd_limit);
	if (relay_opts.max_connections < 0)
		relay_opts.max_connections = max_default;
	else if (relay_opts.max_connections > max_default)
		lwsl_warn("--max-connections %d: the open-files limit (%llu) allows about %d\n",
				  relay_opts.max_connections, (unsigned long long) fd_limit, max_default);
	if (auth_init(relay_opts.secret_file, relay_opts.demo))
		return 1;

	if (gethostname(host, sizeof(host)))
		strcpy(host, "localhost");
	host[sizeof(host) - 1] = '\0';
	lws_snprintf(session_prefix, sizeof(session_prefix), "relay-%s-%d",
				 host, (int) getpid());

	memset(&info, 0, sizeof(info));
	info.protocols = protocols;
	info.vhost_name = "presence";
	info.retry_and_idle_policy = &idle_policy;
	info.options = LWS_SERVER_OPTION_HTTP_HEADERS_SECURITY_BEST_PRACTICES_ENFORCE |
		LWS_SERVER_OPTION_VALIDATE_UTF8;
	listen_on(&info, relay_opts.bind, relay_opts.port);

	/* with --static, "/" is the file mount, so the endpoints need mounts too */
	memset(mounts, 0, sizeof(mounts));
	if (relay_opts.static_dir)
	{
		if (!realpath(relay_opts.static_dir, static_dir))
		{
			fprintf(stderr, "--static %s: no such directory\n", relay_opts.static_dir);
			return 2;
		}
		for (i = 0; i < LWS_ARRAY_SIZE(callback_paths); i++)
		{
			mounts[i].mount_next = &mounts[i + 1];
			mounts[i].mountpoint = callback_paths[i];
			mounts[i].mountpoint_len = (unsigned char) strlen(callback_paths[i]);
			mounts[i].origin = "presence";
			mounts[i].origin_protocol = LWSMPRO_CALLBACK;
		}
		mounts[i].mountpoint = "/";
		mounts[i].mountpoint_len = 1;
		mounts[i].origin = static_dir;
		mounts[i].def = "index.html";
		mounts[i].origin_protocol = LWSMPRO_FILE;
		info.mounts = mounts;
	}

	if (out_init(relay_opts.queue_length, on_room, channels_catch_up) || caps_init() ||
		channels_init())
		return 1;
	deadline_init(out_deadlines);
	origin_init(&origin_hooks);
	sessions_init(session_prefix, &sessions_hooks);
	joins_init(channels_settled);
	http_init(&view);
	queue_init(pumps, LWS_ARRAY_SIZE(pumps));
	relay_context = lws_create_context(&info);
	if (!relay_context)
	{
		lwsl_err("cannot listen on %s port %d\n", relay_opts.bind, relay_opts.port);
		return 1;
	}
	relay_vhost = lws_get_vhost_by_name(relay_context, "presence");
	if (relay_opts.metrics_bind && start_metrics_listener(&info))
	{
		lwsl_err("cannot listen on %s\n", relay_opts.metrics_bind);
		lws_context_destroy(relay_context);
		return 1;
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	lwsl_user("presence-relay listening on %s port %d%s%s (max-connections %d, open-files limit %llu)\n",
			  relay_opts.bind, relay_opts.port,
			  relay_opts.metrics_bind ? ", metrics on " : "",
			  relay_opts.metrics_bind ? relay_opts.metrics_bind : "",
			  relay_opts.max_connections, (unsigned long long) fd_limit);
	dblink_start(relay_opts.conninfo, &link_handlers);

	while (!stop_requested)
		if (lws_service(relay_context, 0) < 0)
			break;

	shut_down();
	dblink_stop();
	/* timers live in the context: cancel them while it still exists */
	sessions_cleanup();
	origin_cleanup();
	feed_cleanup();
	channels_cleanup();
	deadline_stop();
	out_stop();
	lws_context_destroy(relay_context);
	relay_context = NULL;
	out_destroy();
	caps_cleanup();
	clientaddr_cleanup();
	auth_cleanup();
	lwsl_user("presence-relay stopped\n");
	return 0;
}
