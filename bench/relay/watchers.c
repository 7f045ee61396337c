/*
 * watchers.c - benchmark client for presence-relay: W WebSocket watchers on
 * raw epoll, split over P processes, and a driver that makes presence
 * changes in SQL and times when each watcher received each of them.
 *
 * The client is kept cheap so that it does not measure itself: plain
 * non-blocking sockets, the HTTP upgrade written by hand, server frames
 * (unmasked) parsed in place, one recv() per readable socket and one clock
 * read per frame.  No WebSocket library.  It is a benchmark tool: it trusts
 * the server (it does not check Sec-WebSocket-Accept) and sends nothing but
 * the upgrade and pongs.
 *
 * Each round: t0, SELECT presence.connect('bench-<round>'), then every
 * watcher notes when it received that change (its "user_id" names the
 * round); per round the first, the median and the last watcher are
 * reported.  A LISTEN on a plain libpq connection gives the database's own
 * floor.  Each watcher process measures its CPU time during the rounds: the
 * client's cost per received frame.
 *
 * With --trivial the server is not the relay but a built-in fan-out (a
 * child process that writes one ready-made frame to every socket in a
 * loop, one send() each, when the driver asks): the floor of this client
 * and this machine's loopback TCP for W sockets.  --split makes that server
 * two processes, each writing to half of the sockets.
 *
 * Channels (--channels C): watcher i is user "w<i>" with the i-th token of
 * --tokens FILE (one per line, made by bench.js) and subscribes to channel
 * "bench:<i mod C>"; round r is presence.join('bench:<r mod C>',
 * 'bench-<r>') and counts for that channel's subscribers only.  With
 * --trivial the built-in server writes round r to the sockets i with
 * i mod C = r mod C, as many.
 *
 * A storm (--storm RATE --seconds S): every watcher subscribes to
 * "bench:storm"; for S seconds the driver has RATE members a second join
 * it and leave it a second later, and each watcher counts the frames it
 * gets: frames per watcher per second, and whether any was dropped.
 *
 * A soak (--soak --seconds S) makes no changes and no database connection:
 * it holds its watchers for S seconds, counts the frames and the
 * connections lost, and times the changes of users named
 * "probe-<ms since the epoch when made>" (the soak driver, bench/soak/soak.js,
 * makes one a second): per minute, the delay from that time to each
 * watcher's receipt.
 *
 * In every mode: --tokens FILE holds one token per line, watcher i sends
 * line i (from 0) as its Bearer token, and the file must hold one for every
 * watcher; --port takes a list, watcher i connecting to the (i mod n)-th
 * port; --connect-rate N opens N sockets a second over all processes
 * instead of all at once.
 *
 *   watchers --port P[,P...] --db CONNINFO [--count W] [--rounds R] [--procs P]
 *            [--idle S] [--tokens FILE [--channels C | --storm RATE --seconds S]]
 *            [--connect-rate N]
 *   watchers --trivial [--split] [--count W] [--rounds R] [--procs P] [--channels C]
 *   watchers --soak --seconds S --port P[,P...] [--tokens FILE] [--count W]
 *            [--procs P] [--connect-rate N]
 * prints "ready" once every watcher has its state (and "idle done" after
 * --idle S seconds of doing nothing), then one JSON line.
 */
#define _GNU_SOURCE				/* memmem */
#include <libpq-fe.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CONN_BUF		1024	/* a presence frame is ~200 bytes */
#define MAX_HANDSHAKES	256		/* upgrades in flight per process */
#define ROUND_GAP_US	20000	/* between the last receipt and the next change */
#define MAX_PORTS		16
#define PROBE_MAX_MS	10000	/* --soak: delays kept per ms up to this */

static int	ports[MAX_PORTS],	/* --port: watcher i on ports[i % nports] */
			nports,
			count = 1000,
			rounds = 200,
			procs = 1,
			idle,				/* seconds to stay idle before the rounds */
			trivial,
			split,				/* trivial server: two processes, half each */
			channels,			/* watchers subscribe to one of this many channels */
			storm,				/* members joining and leaving per second */
			soak,				/* hold the watchers, time the probes */
			seconds = 10,		/* of the storm or the soak */
			connect_rate;		/* sockets opened a second, all processes (0: at once) */
static const char *conninfo;
static char **tokens;			/* --tokens: watcher i's is tokens[i] */

/* Shared by the driver and the watcher processes (MAP_SHARED). */
struct shared
{
	int64_t		states;			/* watchers that have their state */
	int64_t		failed;			/* connections refused, closed or broken */
	int64_t		out_of_order;	/* a round seen after a later one */
	int64_t		cpu_ns;			/* watcher processes' CPU during the rounds */
	int64_t		frames;			/* frames they received during the rounds */
	int64_t		most_frames;	/* by one watcher (a storm) */
	volatile int go,			/* rounds started: CPU clock starts */
				done;			/* rounds over: watchers exit */
	int64_t		soak_start_ms;	/* --soak: when the minutes start */
	int			arrivals[];		/* per round: watchers that received it */
};
static struct shared *sh;
static int64_t *probe_hist;		/* --soak: [minute][delay ms], shared */
static int64_t *t0_ns,			/* per round, shared */
		   *sent_ns,			/* per round: trivial server's send loop, shared */
		   *listen_ns,			/* per round, driver only */
		   *recv_ns;			/* [watcher * rounds + round], shared */
static int	round_pipe[2];		/* watchers -> driver: round r is complete */
static int	trigger_fwd = -1;
static int	trigger_pipe[2];	/* driver -> trivial server: send round r */

struct conn
{
	int			fd;
	int			id;				/* global watcher number */
	int			upgraded,
				got_state,
				last_round;
	int64_t		frames;			/* during the rounds (a storm) */
	size_t		have;			/* bytes in buf */
	uint64_t	skip;			/* payload bytes still to drop (big frame) */
	char		buf[CONN_BUF];
};

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t
realtime_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
soak_minutes(void)
{
	return seconds / 60 + 1;
}

static int64_t
cpu_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
die(const char *what)
{
	perror(what);
	exit(1);
}

/*
 * The round a frame announces, or -1: a presence frame ("user_id":
 * "bench-<n>", online), or with --channels a join in a channel.
 */
static int
round_of(const char *p, size_t len)
{
	static const char key[] = "\"user_id\":\"bench-";
	const char *k;

	if (channels)
	{
		if (len < 20 || memcmp(p, "{\"type\":\"join\"", 14) ||
			!(k = memmem(p, len, key, sizeof(key) - 1)))
			return -1;
		return atoi(k + sizeof(key) - 1);
	}
	if (len < 20 || memcmp(p, "{\"type\":\"presence\"", 18) ||
		!memmem(p, len, "\"status\":\"online\"", 17) ||
		!(k = memmem(p, len, key, sizeof(key) - 1)))
		return -1;
	return atoi(k + sizeof(key) - 1);
}

/* --soak: files the delay of a probe's "online" change, by minute. */
static void
probe(const char *p, size_t len)
{
	static const char key[] = "\"user_id\":\"probe-";
	const char *k;
	int64_t		now = realtime_ms(),
				delay;
	int			minute;

	if (len < 20 || memcmp(p, "{\"type\":\"presence\"", 18) ||
		!memmem(p, len, "\"status\":\"online\"", 17) ||
		!(k = memmem(p, len, key, sizeof(key) - 1)))
		return;
	delay = now - atoll(k + sizeof(key) - 1);
	minute = (int) ((now - sh->soak_start_ms) / 60000);
	if (minute < 0 || minute >= soak_minutes())
		return;
	delay = delay < 0 ? 0 : delay > PROBE_MAX_MS ? PROBE_MAX_MS : delay;
	__atomic_add_fetch(&probe_hist[(int64_t) minute * (PROBE_MAX_MS + 1) + delay], 1, __ATOMIC_RELAXED);
}

/* Watchers that get round r: those of its channel (all, without --channels). */
static int
expected(int r)
{
	int			k,
				n;

	if (!channels)
		return count;
	k = r % channels;
	n = count / channels;
	return n + (k < count % channels);
}

static void
received(struct conn *c, const char *payload, size_t len)
{
	int			r;

	if (!c->got_state)
	{
		if (len >= 15 && !memcmp(payload, "{\"type\":\"state\"", 15))
		{
			c->got_state = 1;
			__atomic_add_fetch(&sh->states, 1, __ATOMIC_RELAXED);
		}
		return;
	}
	if (sh->go)
	{
		__atomic_add_fetch(&sh->frames, 1, __ATOMIC_RELAXED);
		c->frames++;
	}
	if (storm)
		return;
	if (soak)
	{
		if (sh->go)
			probe(payload, len);
		return;
	}
	r = round_of(payload, len);
	if (r < 0 || r >= rounds)
		return;
	if (r <= c->last_round)
	{
		__atomic_add_fetch(&sh->out_of_order, 1, __ATOMIC_RELAXED);
		return;
	}
	c->last_round = r;
	recv_ns[(int64_t) c->id * rounds + r] = now_ns();
	if (__atomic_add_fetch(&sh->arrivals[r], 1, __ATOMIC_RELAXED) == expected(r))
	{
		if (write(round_pipe[1], &r, sizeof(r)) != sizeof(r))
			die("write");
	}
}

/* A pong for a ping: masked (with a zero key, so the payload is as is). */
static void
pong(struct conn *c, const char *payload, size_t len)
{
	char		f[6 + 125];

	if (len > 125)
		return;
	f[0] = (char) 0x8a;
	f[1] = (char) (0x80 | len);
	memset(f + 2, 0, 4);
	memcpy(f + 6, payload, len);
	if (send(c->fd, f, 6 + len, MSG_NOSIGNAL) < 0)
		return;
}

/*
 * Parses the frames in c->buf.  A frame too big for the buffer (only a
 * state can be) is classified by its first bytes and the rest skipped.
 * Returns -1 on a close frame or a protocol error.
 */
static int
parse_frames(struct conn *c)
{
	size_t		off = 0;

	for (;;)
	{
		unsigned char *h = (unsigned char *) c->buf + off;
		size_t		avail = c->have - off,
					hl = 2;
		uint64_t	len;
		int			op;

		if (c->skip)
		{
			size_t		n = avail < c->skip ? avail : (size_t) c->skip;

			c->skip -= n;
			off += n;
			if (c->skip)
				break;
			continue;
		}
		if (avail < 2)
			break;
		op = h[0] & 0x0f;
		if (h[1] & 0x80)
			return -1;			/* servers do not mask */
		len = h[1] & 0x7f;
		if (len == 126)
			hl = 4;
		else if (len == 127)
			hl = 10;
		if (avail < hl)
			break;
		if (hl == 4)
			len = ((uint64_t) h[2] << 8) | h[3];
		else if (hl == 10)
		{
			int			i;

			for (len = 0, i = 2; i < 10; i++)
				len = (len << 8) | h[i];
		}
		if (op == 8)
			return -1;
		if (hl + len > CONN_BUF)
		{
			/* big: wait for a useful prefix, then drop the rest */
			if (avail < hl + 32)
				break;
			if (op == 1)
				received(c, (char *) h + hl, avail - hl);
			c->skip = len - (avail - hl);
			off = c->have;
			continue;
		}
		if (avail < hl + len)
			break;
		if (op == 1 || op == 0)
			received(c, (char *) h + hl, (size_t) len);
		else if (op == 9)
			pong(c, (char *) h + hl, (size_t) len);
		off += hl + len;
	}
	if (off)
	{
		memmove(c->buf, c->buf + off, c->have - off);
		c->have -= off;
	}
	return 0;
}

static int
open_one(int epfd, struct conn *c, int id)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
	.sin_port = htons((uint16_t) ports[id % nports])};
	struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
	int			one = 1;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	memset(c, 0, sizeof(*c));
	c->id = id;
	c->last_round = -1;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		die("socket");
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (struct sockaddr *) &sa, sizeof(sa)) && errno != EINPROGRESS)
		die("connect");
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev))
		die("epoll_ctl");
	return 0;
}

/* Socket connected: send the upgrade, then wait for input only. */
static int
send_upgrade(int epfd, struct conn *c)
{
	char		req[8192];
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
	int			err = 0,
				n;
	socklen_t	l = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l) || err)
		return -1;
	n = snprintf(req, sizeof(req),
				 "GET /ws HTTP/1.1\r\n"
				 "Host: 127.0.0.1\r\n"
				 "Upgrade: websocket\r\n"
				 "Connection: Upgrade\r\n"
				 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
				 "%s%s%s"
				 "Sec-WebSocket-Version: 13\r\n\r\n",
				 tokens ? "Authorization: Bearer " : "",
				 tokens ? tokens[c->id] : "", tokens ? "\r\n" : "");
	if (n <= 0 || n >= (int) sizeof(req) ||
		send(c->fd, req, (size_t) n, MSG_NOSIGNAL) != (ssize_t) n)
		return -1;
	c->upgraded = -1;			/* request sent */
	return epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/*
 * A text frame to the server: masked, as clients must (with a zero key, so
 * the payload is as is).
 */
static int
send_text(struct conn *c, const char *text)
{
	char		f[8 + 256];
	size_t		len = strlen(text);

	if (len > 125)
		return -1;
	f[0] = (char) 0x81;
	f[1] = (char) (0x80 | len);
	memset(f + 2, 0, 4);
	memcpy(f + 6, text, len);
	return send(c->fd, f, 6 + len, MSG_NOSIGNAL) == (ssize_t) (6 + len) ? 0 : -1;
}

/* Upgraded: with --channels or --storm, it subscribes to its channel. */
static int
subscribe(struct conn *c)
{
	char		msg[128];

	if (trivial || (!channels && !storm))
		return 0;
	if (storm)
		snprintf(msg, sizeof(msg), "{\"type\":\"subscribe\",\"channel\":\"bench:storm\"}");
	else
		snprintf(msg, sizeof(msg), "{\"type\":\"subscribe\",\"channel\":\"bench:%d\"}",
				 c->id % channels);
	return send_text(c, msg);
}

/* Reads what the socket has; returns -1 if the connection is lost. */
static int
on_input(struct conn *c)
{
	ssize_t		n;
	size_t		room;

	for (;;)
	{
		room = CONN_BUF - c->have;
		n = recv(c->fd, c->buf + c->have, room, 0);
		if (n == 0)
			return -1;
		if (n < 0)
			return errno == EAGAIN ? 0 : -1;
		c->have += (size_t) n;
		if (c->upgraded != 1)
		{
			char	   *end = memmem(c->buf, c->have, "\r\n\r\n", 4);
			size_t		hdr;

			if (!end)
			{
				if (c->have == CONN_BUF)
					return -1;
				continue;
			}
			if (c->have < 12 || memcmp(c->buf + 9, "101", 3))
				return -1;
			hdr = (size_t) (end + 4 - c->buf);
			memmove(c->buf, c->buf + hdr, c->have - hdr);
			c->have -= hdr;
			c->upgraded = 1;
			if (subscribe(c))
				return -1;
		}
		if (parse_frames(c))
			return -1;
		/* a short read means the socket is drained: skip the EAGAIN call */
		if ((size_t) n < room)
			return 0;
	}
}

/* One watcher process: watchers [first, first + n). */
static void
watch(int first, int n)
{
	struct conn *conns = calloc((size_t) n, sizeof(*conns));
	struct epoll_event evs[512];
	int			epfd = epoll_create1(EPOLL_CLOEXEC),
				opened = 0,
				pending = 0,
				i,
				k;
	int64_t		cpu0 = 0,
				start = now_ns();

	if (!conns || epfd < 0)
		die("watch");
	for (;;)
	{
		/* this process's share of --connect-rate: n sockets in count/rate s */
		int			allowed = connect_rate ?
			(int) ((now_ns() - start) / 1000000 * connect_rate / 1000 * n / count) + 1 : n;

		while (opened < n && pending < MAX_HANDSHAKES && opened < allowed)
		{
			open_one(epfd, &conns[opened], first + opened);
			opened++;
			pending++;
		}
		if (sh->go && !cpu0)
			cpu0 = cpu_now_ns();
		if (sh->done)
			break;
		k = epoll_wait(epfd, evs, 512, 50);
		if (k < 0 && errno != EINTR)
			die("epoll_wait");
		for (i = 0; i < k; i++)
		{
			struct conn *c = evs[i].data.ptr;
			int			had_state = c->got_state,
						bad;

			if (!c->upgraded)
				bad = send_upgrade(epfd, c);
			else
				bad = on_input(c);
			if (!had_state && (c->got_state || bad))
				pending--;
			if (bad)
			{
				fprintf(stderr, "watchers: watcher %d lost its connection\n", c->id);
				__atomic_add_fetch(&sh->failed, 1, __ATOMIC_RELAXED);
				epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
				close(c->fd);
				c->fd = -1;
				c->upgraded = 2;	/* gone: never again */
			}
		}
	}
	__atomic_add_fetch(&sh->cpu_ns, cpu0 ? cpu_now_ns() - cpu0 : 0, __ATOMIC_RELAXED);
	for (i = 0; i < opened; i++)
	{
		int64_t		most = __atomic_load_n(&sh->most_frames, __ATOMIC_RELAXED);

		while (conns[i].frames > most &&
			   !__atomic_compare_exchange_n(&sh->most_frames, &most, conns[i].frames, 0,
											__ATOMIC_RELAXED, __ATOMIC_RELAXED))
			;
		if (conns[i].fd >= 0)
			close(conns[i].fd);
	}
	free(conns);
	exit(0);
}

/*
 * --split: forks a second trivial server that takes the upper half of the
 * sockets; this one keeps the lower half and forwards it every round.
 */
static void
split_fan_out(int **fds, int *n)
{
	int			half[2];

	if (pipe(half) < 0)
		die("pipe");
	if (fork() == 0)
	{
		close(half[1]);
		trigger_pipe[0] = half[0];
		*fds += *n / 2;
		*n -= *n / 2;
	}
	else
	{
		close(half[0]);
		trigger_fwd = half[1];
		*n /= 2;
	}
}

/*
 * --trivial: the ideal server.  Accepts W upgrades, sends each a state,
 * then for every round number read from the trigger pipe writes one
 * ready-made presence frame (of the relay's size) to every socket.
 */
static void
fan_out(int lfd)
{
	int		   *fds = calloc((size_t) count, sizeof(*fds));
	char		req[2048];
	int			n = 0,
				r;
	static const char reply[] =
		"HTTP/1.1 101 Switching Protocols\r\n"
		"Upgrade: websocket\r\nConnection: Upgrade\r\n"
		"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
		"\x81\x1b{\"type\":\"state\",\"users\":[]}";

	while (n < count)
	{
		int			fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		size_t		have = 0;
		ssize_t		got;

		if (fd < 0)
			die("accept");
		while ((got = recv(fd, req + have, sizeof(req) - have, 0)) > 0)
		{
			have += (size_t) got;
			if (memmem(req, have, "\r\n\r\n", 4))
				break;
		}
		if (send(fd, reply, sizeof(reply) - 1, MSG_NOSIGNAL) < 0)
			die("send");
		fcntl(fd, F_SETFL, O_NONBLOCK);
		fds[n++] = fd;
	}
	if (split)
		split_fan_out(&fds, &n);
	while (read(trigger_pipe[0], &r, sizeof(r)) == sizeof(r))
	{
		char		frame[256],
				   *p = frame + 4;
		int			len = channels ?
			snprintf(p, sizeof(frame) - 4,
					 "{\"type\":\"join\",\"channel\":\"bench:%d\",\"seq\":%d,"
					 "\"user_id\":\"bench-%d\",\"status\":\"online\",\"meta\":null}",
					 r % channels, r + 1, r) :
			snprintf(p, sizeof(frame) - 4,
					 "{\"type\":\"presence\",\"seq\":%d,\"user_id\":\"bench-%d\","
					 "\"status\":\"online\",\"previous\":\"offline\","
					 "\"last_active\":\"2026-11-28T03:00:00.123456+00\"}", r + 1, r);
		int			i;
		int64_t		start = now_ns();

		if (trigger_fwd >= 0 && write(trigger_fwd, &r, sizeof(r)) != sizeof(r))
			die("write");
		frame[0] = (char) 0x81;
		frame[1] = 126;			/* 16-bit length follows */
		frame[2] = (char) (len >> 8);
		frame[3] = (char) len;
		for (i = 0; i < n; i++)
			if ((!channels || i % channels == r % channels) &&
				send(fds[i], frame, (size_t) len + 4, MSG_NOSIGNAL) != len + 4)
				fprintf(stderr, "watchers: trivial server: a send fell short\n");
		if (r >= 0 && r < rounds)
			sent_ns[r] = now_ns() - start;
	}
	exit(0);
}

static void
wait_listen(PGconn *listen, int r)
{
	int64_t		deadline = now_ns() + 5000000000LL;
	struct pollfd pfd = {.fd = PQsocket(listen), .events = POLLIN};
	PGnotify   *n;

	while (now_ns() < deadline)
	{
		PQconsumeInput(listen);
		while ((n = PQnotifies(listen)))
		{
			char	   *k = strstr(n->extra, "\"bench-");

			if (k && atoi(k + 7) == r &&
				strstr(n->extra, channels ? "\"event\":\"join\"" : "\"status\":\"online\""))
				listen_ns[r] = now_ns();
			PQfreemem(n);
		}
		if (listen_ns[r])
			return;
		poll(&pfd, 1, 5);
	}
}

/* Waits until round r is complete (every watcher has it), at most 10 s. */
static void
wait_round(int r)
{
	struct pollfd pfd = {.fd = round_pipe[0], .events = POLLIN};
	int64_t		deadline = now_ns() + 10000000000LL;
	int			got;

	while (__atomic_load_n(&sh->arrivals[r], __ATOMIC_RELAXED) < expected(r) &&
		   now_ns() < deadline)
		if (poll(&pfd, 1, 100) > 0 &&
			read(round_pipe[0], &got, sizeof(got)) != sizeof(got))
			die("read");
}

/*
 * The storm: for --seconds, every 10 ms, storm/100 members join
 * "bench:storm" and those that joined a second earlier leave it.
 */
static void
run_storm(PGconn *conn)
{
	int			per = storm / 100 > 0 ? storm / 100 : 1,
				ticks = seconds * 100,
				t;
	char		sql[512];
	int64_t		next = now_ns();

	for (t = 0; t < ticks + 100; t++)
	{
		if (t < ticks)
			snprintf(sql, sizeof(sql),
					 "SELECT presence.join('bench:storm', 'storm-' || i, 's')"
					 "  FROM generate_series(%d, %d) i", t * per, t * per + per - 1);
		else
			sql[0] = '\0';
		if (t >= 100)
			snprintf(sql + strlen(sql), sizeof(sql) - strlen(sql),
					 "%sSELECT presence.disconnect('storm-' || i, 's')"
					 "  FROM generate_series(%d, %d) i", sql[0] ? "; " : "",
					 (t - 100) * per, (t - 100) * per + per - 1);
		PQclear(PQexec(conn, sql));
		next += 10000000;
		while (now_ns() < next)
			usleep(1000);
	}
	sleep(1);					/* the last diffs */
}

/* Makes the changes and times them. */
static void
drive(void)
{
	PGconn	   *conn = NULL,
			   *listen = NULL;
	char		sql[128];
	int64_t		deadline = now_ns() + 300000000000LL;
	int			r;

	if (!trivial && !soak)
	{
		conn = PQconnectdb(conninfo);
		listen = PQconnectdb(conninfo);
		if (PQstatus(conn) != CONNECTION_OK || PQstatus(listen) != CONNECTION_OK)
		{
			fprintf(stderr, "watchers: %s", PQerrorMessage(conn));
			exit(1);
		}
		PQclear(PQexec(listen, "LISTEN presence"));
	}
	while (__atomic_load_n(&sh->states, __ATOMIC_RELAXED) + sh->failed < count)
	{
		if (now_ns() > deadline)
		{
			fprintf(stderr, "watchers: only %d of %d watchers got their state\n",
					(int) sh->states, count);
			exit(1);
		}
		usleep(10000);
	}
	if (sh->failed && !soak)
	{
		fprintf(stderr, "watchers: %d connection(s) failed\n", (int) sh->failed);
		exit(1);
	}
	printf("ready\n");
	fflush(stdout);
	if (soak)
	{
		/* the soak counts its lost connections rather than stop at one */
		sh->soak_start_ms = realtime_ms();
		sh->go = 1;
		sleep((unsigned) seconds);
		sh->done = 1;
		return;
	}
	if (idle)
	{
		sleep((unsigned) idle);
		printf("idle done\n");
		fflush(stdout);
	}
	sleep(1);
	sh->go = 1;
	usleep(100000);				/* every watcher process has seen go */
	if (storm)
	{
		run_storm(conn);
		rounds = 0;
	}
	for (r = 0; r < rounds; r++)
	{
		t0_ns[r] = now_ns();
		if (trivial)
		{
			if (write(trigger_pipe[1], &r, sizeof(r)) != sizeof(r))
				die("write");
		}
		else
		{
			if (channels)
				snprintf(sql, sizeof(sql), "SELECT presence.join('bench:%d', 'bench-%d', 's')",
						 r % channels, r);
			else
				snprintf(sql, sizeof(sql), "SELECT presence.connect('bench-%d')", r);
			PQclear(PQexec(conn, sql));
			wait_listen(listen, r);
		}
		wait_round(r);
		usleep(ROUND_GAP_US);
	}
	sh->done = 1;
	if (!trivial)
	{
		PQfinish(conn);
		PQfinish(listen);
	}
}

static int
cmp(const void *a, const void *b)
{
	int64_t		x = *(const int64_t *) a,
				y = *(const int64_t *) b;

	return x < y ? -1 : x > y;
}

/* p-th percentile of n sorted values, nanoseconds to milliseconds */
static double
pct(const int64_t *sorted, int n, double p)
{
	return n ? sorted[(int) ((n - 1) * p + 0.5)] / 1e6 : -1;
}

/* A storm's figures: frames per watcher per second, and losses. */
static void
report_storm(void)
{
	printf("{\"server\":\"relay\",\"watchers\":%d,\"storm_per_second\":%d,\"seconds\":%d,"
		   "\"procs\":%d,\"frames\":%lld,\"frames_per_watcher_per_second\":%.2f,"
		   "\"most_frames_per_watcher_per_second\":%.2f,\"client_cpu_per_frame_us\":%.2f,"
		   "\"failed\":%lld}\n",
		   count, storm, seconds, procs, (long long) sh->frames,
		   (double) sh->frames / count / (seconds + 2),
		   (double) sh->most_frames / (seconds + 2),
		   sh->frames ? sh->cpu_ns / 1e3 / (double) sh->frames : 0.0,
		   (long long) sh->failed);
}

/*
 * Per round: the delay to the first, the median and the last watcher
 * (last only if every watcher of it got it); then their p50 and p99 over
 * rounds.
 */
static void
report(void)
{
	int64_t    *per = malloc(sizeof(int64_t) * (size_t) count),
			   *first = calloc((size_t) rounds, sizeof(int64_t)),
			   *median = calloc((size_t) rounds, sizeof(int64_t)),
			   *last = calloc((size_t) rounds, sizeof(int64_t)),
			   *lis = calloc((size_t) rounds, sizeof(int64_t));
	int			r,
				w,
				n,
				complete = 0,
				nl = 0;

	if (storm)
	{
		report_storm();
		return;
	}
	for (r = 0; r < rounds; r++)
	{
		for (n = 0, w = 0; w < count; w++)
			if (recv_ns[(int64_t) w * rounds + r])
				per[n++] = recv_ns[(int64_t) w * rounds + r] - t0_ns[r];
		qsort(per, (size_t) n, sizeof(*per), cmp);
		first[r] = n ? per[0] : INT64_MAX;
		median[r] = n ? per[n / 2] : INT64_MAX;
		if (n == expected(r))
			last[complete++] = per[n - 1];
		if (listen_ns[r])
			lis[nl++] = listen_ns[r] - t0_ns[r];
	}
	qsort(first, (size_t) rounds, sizeof(int64_t), cmp);
	qsort(median, (size_t) rounds, sizeof(int64_t), cmp);
	qsort(last, (size_t) complete, sizeof(int64_t), cmp);
	qsort(lis, (size_t) nl, sizeof(int64_t), cmp);
	printf("{\"server\":\"%s\",\"watchers\":%d,\"channels\":%d,\"rounds\":%d,\"procs\":%d,"
		   "\"last_p50_ms\":%.2f,\"last_p99_ms\":%.2f,\"last_max_ms\":%.2f,"
		   "\"median_p50_ms\":%.2f,\"median_p99_ms\":%.2f,"
		   "\"first_p50_ms\":%.2f,\"first_p99_ms\":%.2f,",
		   trivial ? "trivial" : "relay", count, channels, rounds, procs,
		   pct(last, complete, 0.5), pct(last, complete, 0.99),
		   pct(last, complete, 1.0),
		   pct(median, rounds, 0.5), pct(median, rounds, 0.99),
		   pct(first, rounds, 0.5), pct(first, rounds, 0.99));
	if (!trivial)
		printf("\"listen_p50_ms\":%.2f,\"listen_p99_ms\":%.2f,",
			   pct(lis, nl, 0.5), pct(lis, nl, 0.99));
	else
	{
		qsort(sent_ns, (size_t) rounds, sizeof(int64_t), cmp);
		printf("\"server_send_loop_p50_ms\":%.2f,\"server_send_loop_p99_ms\":%.2f,",
			   pct(sent_ns, rounds, 0.5), pct(sent_ns, rounds, 0.99));
	}
	printf("\"client_cpu_per_round_ms\":%.2f,\"client_cpu_per_frame_us\":%.2f,"
		   "\"frames\":%lld,\"incomplete_rounds\":%d,\"out_of_order\":%lld,"
		   "\"failed\":%lld}\n",
		   sh->cpu_ns / 1e6 / rounds,
		   sh->frames ? sh->cpu_ns / 1e3 / (double) sh->frames : 0.0,
		   (long long) sh->frames, rounds - complete,
		   (long long) sh->out_of_order, (long long) sh->failed);
	free(per);
	free(first);
	free(median);
	free(last);
	free(lis);
}

/*
 * --soak: per minute, how many probe receipts and their delay's p50, p99
 * and maximum (delays of PROBE_MAX_MS and more count as that).
 */
static void
report_soak(void)
{
	int			m;

	printf("{\"server\":\"relay\",\"watchers\":%d,\"procs\":%d,\"seconds\":%d,"
		   "\"states\":%lld,\"failed\":%lld,\"frames\":%lld,\"minutes\":[",
		   count, procs, seconds, (long long) sh->states, (long long) sh->failed,
		   (long long) sh->frames);
	for (m = 0; m < soak_minutes(); m++)
	{
		const int64_t *h = probe_hist + (int64_t) m * (PROBE_MAX_MS + 1);
		int64_t		n = 0,
					seen = 0;
		int			d,
					p50 = -1,
					p99 = -1,
					max = -1;

		for (d = 0; d <= PROBE_MAX_MS; d++)
			n += h[d];
		for (d = 0; d <= PROBE_MAX_MS; d++)
		{
			if (!h[d])
				continue;
			seen += h[d];
			if (p50 < 0 && seen * 2 >= n)
				p50 = d;
			if (p99 < 0 && seen * 100 >= n * 99)
				p99 = d;
			max = d;
		}
		printf("%s{\"receipts\":%lld,\"p50_ms\":%d,\"p99_ms\":%d,\"max_ms\":%d}",
			   m ? "," : "", (long long) n, p50, p99, max);
	}
	printf("]}\n");
}

/*
 * --tokens FILE: a token per line, watcher i takes line i; a file with
 * fewer lines than watchers is an error (exit 2), not a reuse.
 */
static void
read_tokens(const char *file)
{
	FILE	   *f = fopen(file, "r");
	char	   *line = NULL;
	size_t		cap = 0;
	ssize_t		len;
	int			n = 0;

	if (!f)
		die(file);
	tokens = calloc((size_t) count, sizeof(*tokens));
	if (!tokens)
		die("tokens");
	while (n < count && (len = getline(&line, &cap, f)) > 0)
	{
		line[strcspn(line, "\r\n")] = '\0';
		if (!line[0])
			continue;
		if (!(tokens[n++] = strdup(line)))
			die("tokens");
	}
	free(line);
	fclose(f);
	if (n < count)
	{
		fprintf(stderr, "watchers: %s has %d tokens for %d watchers\n", file, n, count);
		exit(2);
	}
}

/* --port P1,P2,...: at least one, at most MAX_PORTS; -1 if malformed. */
static int
parse_ports(const char *list)
{
	const char *p = list;

	for (nports = 0; *p && nports < MAX_PORTS; nports++)
	{
		ports[nports] = atoi(p);
		if (ports[nports] <= 0 || ports[nports] > 65535)
			return -1;
		p += strcspn(p, ",");
		if (*p)
			p++;
	}
	return *p || !nports ? -1 : 0;
}

static void *
shared_alloc(size_t size)
{
	void	   *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
						 MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		die("mmap");
	return p;
}

/* Listens on a free loopback port for the trivial server: the only --port. */
static int
trivial_listener(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t	l = sizeof(sa);
	int			fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *) &sa, sizeof(sa)) ||
		listen(fd, 4096) || getsockname(fd, (struct sockaddr *) &sa, &l))
		die("trivial server");
	ports[0] = ntohs(sa.sin_port);
	nports = 1;
	return fd;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"port", required_argument, NULL, 'p'},
		{"count", required_argument, NULL, 'c'},
		{"rounds", required_argument, NULL, 'r'},
		{"procs", required_argument, NULL, 'P'},
		{"db", required_argument, NULL, 'd'},
		{"trivial", no_argument, NULL, 't'},
		{"split", no_argument, NULL, 's'},
		{"idle", required_argument, NULL, 'i'},
		{"tokens", required_argument, NULL, 'T'},
		{"channels", required_argument, NULL, 'C'},
		{"storm", required_argument, NULL, 'S'},
		{"seconds", required_argument, NULL, 'D'},
		{"soak", no_argument, NULL, 'k'},
		{"connect-rate", required_argument, NULL, 'R'},
		{NULL, 0, NULL, 0}
	};
	const char *token_file = NULL;
	int			c,
				p,
				status,
				bad = 0;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1)
	{
		if (c == 'p')
		{
			if (parse_ports(optarg))
				return 2;
		}
		else if (c == 'c')
			count = atoi(optarg);
		else if (c == 'r')
			rounds = atoi(optarg);
		else if (c == 'P')
			procs = atoi(optarg);
		else if (c == 'd')
			conninfo = optarg;
		else if (c == 't')
			trivial = 1;
		else if (c == 's')
			split = 1;
		else if (c == 'i')
			idle = atoi(optarg);
		else if (c == 'T')
			token_file = optarg;
		else if (c == 'C')
			channels = atoi(optarg);
		else if (c == 'S')
			storm = atoi(optarg);
		else if (c == 'D')
			seconds = atoi(optarg);
		else if (c == 'k')
			soak = 1;
		else if (c == 'R')
			connect_rate = atoi(optarg);
		else
			return 2;
	}
	if (soak)
		rounds = 1;				/* no rounds: nothing to keep per round */
	if (count < 1 || rounds < 1 || procs < 1 || procs > count || channels < 0 ||
		storm < 0 || seconds < 1 || connect_rate < 0 ||
		(!trivial && !nports) || (!trivial && !soak && !conninfo) ||
		((channels || storm) && !trivial && !token_file) ||
		(storm && (trivial || channels)) ||
		(soak && (trivial || channels || storm || idle)) ||
		(trivial && (token_file || nports || connect_rate)))
	{
		fprintf(stderr, "usage: watchers --port P[,P...] --db CONNINFO [--count W] [--rounds R]\n"
				"                [--procs P] [--idle S] [--connect-rate N]\n"
				"                [--tokens FILE [--channels C | --storm RATE --seconds S]]\n"
				"       watchers --trivial [--split] [--count W] [--rounds R] [--procs P] [--channels C]\n"
				"       watchers --soak --seconds S --port P[,P...] [--tokens FILE] [--count W]\n"
				"                [--procs P] [--connect-rate N]\n");
		return 2;
	}
	if (token_file)
		read_tokens(token_file);
	signal(SIGPIPE, SIG_IGN);
	sh = shared_alloc(sizeof(*sh) + sizeof(int) * (size_t) rounds);
	t0_ns = shared_alloc(sizeof(int64_t) * (size_t) rounds);
	sent_ns = shared_alloc(sizeof(int64_t) * (size_t) rounds);
	recv_ns = shared_alloc(sizeof(int64_t) * (size_t) rounds * (size_t) count);
	if (soak)
		probe_hist = shared_alloc(sizeof(int64_t) * (size_t) soak_minutes() * (PROBE_MAX_MS + 1));
	listen_ns = calloc((size_t) rounds, sizeof(int64_t));
	if (pipe(round_pipe))
		die("pipe");

	if (trivial)
	{
		int			lfd = trivial_listener();

		if (pipe(trigger_pipe))
			die("pipe");
		if (fork() == 0)
		{
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			close(trigger_pipe[1]);
			fan_out(lfd);
		}
		close(lfd);
		close(trigger_pipe[0]);
	}
	for (p = 0; p < procs; p++)
	{
		int			first = (int) ((int64_t) count * p / procs),
					end = (int) ((int64_t) count * (p + 1) / procs);

		if (fork() == 0)
		{
			/* nothing outlives the driver */
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			watch(first, end - first);
		}
	}
	drive();
	if (trivial)
		close(trigger_pipe[1]);
	while (wait(&status) > 0)
		if (!WIFEXITED(status) || WEXITSTATUS(status))
			bad = 1;
	if (soak)
	{
		report_soak();
		return bad;
	}
	report();
	return bad || sh->failed;
}
