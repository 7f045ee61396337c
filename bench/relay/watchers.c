/*
 * watchers.c - benchmark client for presence-relay: W WebSocket watchers
 * in one libwebsockets loop (C, so the client is not the bottleneck), and
 * a second thread that makes presence changes in SQL and times them.
 *
 * Each round: t0, SELECT presence.connect('bench-<round>') (blocking, on
 * the SQL thread), then the loop notes when the first and the last of the
 * W watchers received that change.  A LISTEN on the SQL thread's own
 * second connection gives the database's floor (no relay in the path);
 * the loop thread's CPU time per round is the client's own floor.
 *
 *   watchers --port P --count W --rounds R --db CONNINFO
 * prints "ready" once every watcher has its state, then one JSON line.
 */
#define _GNU_SOURCE				/* memmem */
#include <libwebsockets.h>
#include <libpq-fe.h>

#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>

static int	port = 8080,
			count = 1000,
			rounds = 200;
static const char *conninfo;

static struct lws_context *context;
static atomic_int established,
			states,
			failed,
			done;
static int	next_to_open;
static lws_sorted_usec_list_t sul_open;

static atomic_int *arrivals;	/* per round: watchers that got it */
static _Atomic int64_t *first_ns,
		   *last_ns,
		   *t0_ns,
		   *listen_ns;
static int64_t cpu_ns,
			cpu0;
static lws_sorted_usec_list_t sul_check;

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t
thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* "bench-<n>" in a presence message: which round it answers. */
static int
round_of(const char *in, size_t len)
{
	static const char key[] = "\"user_id\":\"bench-";
	const char *p = memmem(in, len, key, sizeof(key) - 1);

	if (!p || !memmem(in, len, "\"type\":\"presence\"", 17))
		return -1;
	return atoi(p + sizeof(key) - 1);
}

static int
callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
		 void *in, size_t len)
{
	int			r,
				n;

	switch (reason)
	{
		case LWS_CALLBACK_CLIENT_ESTABLISHED:
			established++;
			break;
		case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
			failed++;
			break;
		case LWS_CALLBACK_CLIENT_RECEIVE:
			if (!lws_is_first_fragment(wsi))
				break;
			if (len > 16 && !memcmp(in, "{\"type\":\"state\"", 15))
			{
				states++;
				break;
			}
			r = round_of(in, len);
			if (r < 0 || r >= rounds)
				break;
			n = ++arrivals[r];
			if (n == 1)
				first_ns[r] = now_ns();
			if (n == count)
				last_ns[r] = now_ns();
			break;
		default:
			break;
	}
	return 0;
}

static const struct lws_protocols protocols[] = {
	{"watch", callback, 0, 4096, 0, NULL, 0},
	{NULL, NULL, 0, 0, 0, NULL, 0}
};

/* Opens watchers 200 at a time, so the relay's listen backlog keeps up. */
static void
open_some(lws_sorted_usec_list_t *sul)
{
	struct lws_client_connect_info ci;
	int			i;

	for (i = 0; i < 200 && next_to_open < count; i++, next_to_open++)
	{
		memset(&ci, 0, sizeof(ci));
		ci.context = context;
		ci.address = "127.0.0.1";
		ci.port = port;
		ci.path = "/ws";
		ci.host = "127.0.0.1";
		ci.origin = "127.0.0.1";
		ci.protocol = NULL;
		ci.local_protocol_name = "watch";
		lws_client_connect_via_info(&ci);
	}
	if (next_to_open < count)
		lws_sul_schedule(context, 0, &sul_open, open_some, 20 * LWS_US_PER_MS);
}

/* Notes when the rounds start, and ends the loop when they are over. */
static void
check(lws_sorted_usec_list_t *sul)
{
	if (failed)
	{
		fprintf(stderr, "watchers: %d connection(s) failed\n", (int) failed);
		exit(1);
	}
	if (!cpu0 && states == count)
		cpu0 = thread_cpu_ns();
	if (done)
	{
		cpu_ns = thread_cpu_ns() - cpu0;
		lws_context_destroy(context);
		return;
	}
	lws_sul_schedule(context, 0, &sul_check, check, LWS_US_PER_MS);
}

static void
wait_listen(PGconn *listen, int r)
{
	int64_t		deadline = now_ns() + 5000000000LL;
	PGnotify   *n;
	fd_set		fds;
	struct timeval tv = {0, 1000};

	while (now_ns() < deadline)
	{
		PQconsumeInput(listen);
		while ((n = PQnotifies(listen)))
		{
			if (strstr(n->extra, "\"bench-") && atoi(strstr(n->extra, "\"bench-") + 7) == r)
				listen_ns[r] = now_ns();
			PQfreemem(n);
		}
		if (listen_ns[r])
			return;
		FD_ZERO(&fds);
		FD_SET(PQsocket(listen), &fds);
		select(PQsocket(listen) + 1, &fds, NULL, NULL, &tv);
	}
}

static void *
sql_thread(void *arg)
{
	PGconn	   *conn = PQconnectdb(conninfo),
			   *listen = PQconnectdb(conninfo);
	char		sql[128];
	int			r;
	int64_t		deadline;

	if (PQstatus(conn) != CONNECTION_OK || PQstatus(listen) != CONNECTION_OK)
	{
		fprintf(stderr, "watchers: %s", PQerrorMessage(conn));
		exit(1);
	}
	PQclear(PQexec(listen, "LISTEN presence"));
	while (states < count)
		usleep(10000);
	printf("ready\n");
	fflush(stdout);
	sleep(1);
	for (r = 0; r < rounds; r++)
	{
		snprintf(sql, sizeof(sql), "SELECT presence.connect('bench-%d')", r);
		t0_ns[r] = now_ns();
		PQclear(PQexec(conn, sql));
		wait_listen(listen, r);
		deadline = now_ns() + 10000000000LL;
		while (!last_ns[r] && now_ns() < deadline)
			usleep(200);
		usleep(20000);
	}
	PQfinish(conn);
	PQfinish(listen);
	done = 1;
	return NULL;
}

static int
cmp(const void *a, const void *b)
{
	int64_t		x = *(const int64_t *) a,
				y = *(const int64_t *) b;

	return x < y ? -1 : x > y;
}

/* p-th percentile of the delays from t0 to when[], in milliseconds */
static double
pct(_Atomic int64_t *when, double p, int *missing)
{
	int64_t    *d = calloc((size_t) rounds, sizeof(*d));
	int			n = 0,
				r;
	double		v;

	*missing = 0;
	for (r = 0; r < rounds; r++)
		if (when[r])
			d[n++] = when[r] - t0_ns[r];
		else
			(*missing)++;
	qsort(d, (size_t) n, sizeof(*d), cmp);
	v = n ? d[(int) ((n - 1) * p + 0.5)] / 1e6 : -1;
	free(d);
	return v;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"port", required_argument, NULL, 'p'},
		{"count", required_argument, NULL, 'c'},
		{"rounds", required_argument, NULL, 'r'},
		{"db", required_argument, NULL, 'd'},
		{NULL, 0, NULL, 0}
	};
	struct lws_context_creation_info info;
	pthread_t	th;
	int			c,
				miss_last,
				miss_first,
				miss_listen;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1)
	{
		if (c == 'p')
			port = atoi(optarg);
		else if (c == 'c')
			count = atoi(optarg);
		else if (c == 'r')
			rounds = atoi(optarg);
		else if (c == 'd')
			conninfo = optarg;
		else
			return 2;
	}
	arrivals = calloc((size_t) rounds, sizeof(*arrivals));
	first_ns = calloc((size_t) rounds, sizeof(*first_ns));
	last_ns = calloc((size_t) rounds, sizeof(*last_ns));
	t0_ns = calloc((size_t) rounds, sizeof(*t0_ns));
	listen_ns = calloc((size_t) rounds, sizeof(*listen_ns));

	lws_set_log_level(LLL_ERR, NULL);
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = protocols;
	info.fd_limit_per_thread = (unsigned int) count + 64;
	/* epoll through libev: poll() over 10,000 sockets per wakeup would make
	 * the client, not the relay, the bottleneck */
	info.options = LWS_SERVER_OPTION_LIBEV;
	context = lws_create_context(&info);
	if (!context)
		return 1;
	lws_sul_schedule(context, 0, &sul_open, open_some, 1);
	lws_sul_schedule(context, 0, &sul_check, check, LWS_US_PER_MS);
	pthread_create(&th, NULL, sql_thread, NULL);
	/* with libev, this runs the loop until check() destroys the context */
	lws_service(context, 0);
	pthread_join(th, NULL);

	printf("{\"watchers\":%d,\"rounds\":%d,"
		   "\"last_p50_ms\":%.2f,\"last_p99_ms\":%.2f,"
		   "\"first_p50_ms\":%.2f,\"first_p99_ms\":%.2f,"
		   "\"listen_p50_ms\":%.2f,\"listen_p99_ms\":%.2f,"
		   "\"client_cpu_per_round_ms\":%.2f,",
		   count, rounds,
		   pct(last_ns, 0.5, &miss_last), pct(last_ns, 0.99, &miss_last),
		   pct(first_ns, 0.5, &miss_first), pct(first_ns, 0.99, &miss_first),
		   pct(listen_ns, 0.5, &miss_listen), pct(listen_ns, 0.99, &miss_listen),
		   cpu_ns / 1e6 / rounds);
	printf("\"incomplete_rounds\":%d}\n", miss_last);
	return 0;
}
