/*
 * listen: a LISTEN client for tests and benchmarks.
 *
 *   listen [-c channel] [-n count] [-t seconds] [-q] CONNINFO
 *
 * Prints "listening" once LISTEN has taken effect, then one line per
 * notification, "<microseconds since the epoch> <payload>", and exits after
 * count notifications (exit 0) or when seconds pass (exit 2).  With -q it
 * prints only a summary line: "<count> <first_us> <last_us>".
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <libpq-fe.h>

static long long
now_us(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (long long) tv.tv_sec * 1000000 + tv.tv_usec;
}

int
main(int argc, char **argv)
{
	const char *channel = "presence";
	long		want = -1;
	double		seconds = 30;
	int			quiet = 0;
	int			opt;
	long		got = 0;
	long long	first = 0, last = 0, deadline;
	PGconn	   *conn;
	PGresult   *res;
	char	   *sql;

	while ((opt = getopt(argc, argv, "c:n:t:q")) != -1)
	{
		switch (opt)
		{
			case 'c': channel = optarg; break;
			case 'n': want = atol(optarg); break;
			case 't': seconds = atof(optarg); break;
			case 'q': quiet = 1; break;
			default:
				fprintf(stderr, "usage: %s [-c channel] [-n count] [-t seconds] [-q] CONNINFO\n", argv[0]);
				return 64;
		}
	}
	if (optind != argc - 1)
	{
		fprintf(stderr, "usage: %s [-c channel] [-n count] [-t seconds] [-q] CONNINFO\n", argv[0]);
		return 64;
	}

	conn = PQconnectdb(argv[optind]);
	if (PQstatus(conn) != CONNECTION_OK)
	{
		fprintf(stderr, "listen: %s", PQerrorMessage(conn));
		return 1;
	}
	sql = malloc(strlen(channel) * 2 + 16);
	{
		char	   *ident = PQescapeIdentifier(conn, channel, strlen(channel));

		sprintf(sql, "LISTEN %s", ident);
		PQfreemem(ident);
	}
	res = PQexec(conn, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
	{
		fprintf(stderr, "listen: %s", PQerrorMessage(conn));
		return 1;
	}
	PQclear(res);
	free(sql);
	printf("listening\n");
	fflush(stdout);

	deadline = now_us() + (long long) (seconds * 1e6);
	while (want < 0 || got < want)
	{
		PGnotify   *n;
		struct pollfd pfd = {PQsocket(conn), POLLIN, 0};
		long long	left = deadline - now_us();

		if (left <= 0)
			break;
		if (poll(&pfd, 1, (int) (left / 1000) + 1) < 0 && errno != EINTR)
			break;
		if (!PQconsumeInput(conn))
		{
			fprintf(stderr, "listen: %s", PQerrorMessage(conn));
			return 1;
		}
		while ((n = PQnotifies(conn)) != NULL)
		{
			long long	t = now_us();

			if (got == 0)
				first = t;
			last = t;
			got++;
			if (!quiet)
				printf("%lld %s\n", t, n->extra);
			PQfreemem(n);
			if (want >= 0 && got >= want)
				break;
		}
		fflush(stdout);
	}
	if (quiet)
		printf("%ld %lld %lld\n", got, first, last);
	PQfinish(conn);
	return (want < 0 || got >= want) ? 0 : 2;
}
