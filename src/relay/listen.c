/*
 * listen.c - the addresses the relay listens on: --bind, --metrics-bind.
 *
 * libwebsockets 4.1 takes the address as an "interface" (info.iface).  Built
 * with IPv6, it binds an IPv6 socket and lws_interface_to_sa() writes an
 * IPv4 address where a sockaddr_in would hold it, which in a sockaddr_in6
 * is not the address: the socket ended up bound to "::", every address of
 * the machine.  So an IPv4 address is given to lws with IPv6 off for that
 * vhost (LWS_SERVER_OPTION_DISABLE_IPV6), and lws binds an IPv4 socket to
 * exactly it; an IPv6 address lws binds exactly already.  Anything else is
 * refused: lws does not resolve host names (it would listen nowhere), and
 * for an interface name it binds one of its addresses (an IPv4 one as
 * ::ffff:a.b.c.d), which is not what the name promises.  An address lws
 * cannot bind (not on this machine, in use) only gets a log line from lws,
 * which then serves nothing: listen_check() tries it first.
 */
#include "relay.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* AF_INET or AF_INET6 for a numeric address, else an error and -1. */
int
listen_family(const char *flag, const char *addr)
{
	unsigned char a[16];

	if (inet_pton(AF_INET, addr, a) == 1)
		return AF_INET;
	if (inet_pton(AF_INET6, addr, a) == 1)
		return AF_INET6;
	fprintf(stderr, "%s %s: not a numeric IPv4 or IPv6 address (such as 127.0.0.1, "
			"::1, 0.0.0.0 for every IPv4 address, :: for every address); host "
			"and interface names are not accepted\n", flag, addr);
	return -1;
}

/*
 * Splits ADDR:PORT, or [ADDR]:PORT for IPv6, into addr (len bytes) and
 * port, checking both; prints an error and returns -1 if it cannot.
 */
int
listen_split(const char *flag, const char *arg, char *addr, size_t len,
			 int *port)
{
	const char *colon = strrchr(arg, ':');
	const char *start = arg,
			   *end = colon;
	char	   *tail;
	long		p;

	if (colon && *arg == '[')
	{
		start = arg + 1;
		end = colon > arg && colon[-1] == ']' ? colon - 1 : NULL;
	}
	if (!colon || !end || end <= start || (size_t) (end - start) >= len ||
		(*arg != '[' && memchr(arg, ':', (size_t) (colon - arg))))
	{
		fprintf(stderr, "%s %s: expected ADDR:PORT, or [ADDR]:PORT for IPv6\n",
				flag, arg);
		return -1;
	}
	p = strtol(colon + 1, &tail, 10);
	if (!colon[1] || *tail || p < 1 || p > 65535)
	{
		fprintf(stderr, "%s %s: bad port\n", flag, arg);
		return -1;
	}
	lws_strnncpy(addr, start, end - start, len);
	*port = (int) p;
	return listen_family(flag, addr) < 0 ? -1 : 0;
}

/*
 * Can addr (checked by listen_family()) and port be listened on?  Binds a
 * throwaway socket, with SO_REUSEADDR as lws does; prints why not.
 */
int
listen_check(const char *flag, const char *addr, int port)
{
	struct sockaddr_in6 sa6;
	struct sockaddr_in sa4;
	struct sockaddr *sa;
	socklen_t	salen;
	int			fd,
				one = 1,
				r;

	memset(&sa4, 0, sizeof(sa4));
	memset(&sa6, 0, sizeof(sa6));
	if (inet_pton(AF_INET, addr, &sa4.sin_addr) == 1)
	{
		sa4.sin_family = AF_INET;
		sa4.sin_port = htons((uint16_t) port);
		sa = (struct sockaddr *) &sa4;
		salen = sizeof(sa4);
	}
	else
	{
		inet_pton(AF_INET6, addr, &sa6.sin6_addr);
		sa6.sin6_family = AF_INET6;
		sa6.sin6_port = htons((uint16_t) port);
		sa = (struct sockaddr *) &sa6;
		salen = sizeof(sa6);
	}
	fd = socket(sa->sa_family, SOCK_STREAM, 0);
	if (fd < 0)
		r = -1;
	else
	{
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		r = bind(fd, sa, salen);
		close(fd);
	}
	if (r)
		fprintf(stderr, "%s: cannot listen on %s port %d: %s\n", flag, addr, port,
				strerror(errno));
	return r ? -1 : 0;
}

/* Sets info to listen on addr (checked by listen_family()) and port. */
void
listen_on(struct lws_context_creation_info *info, const char *addr, int port)
{
	unsigned char a[4];

	info->iface = addr;
	info->port = port;
	if (inet_pton(AF_INET, addr, a) == 1)
		info->options |= LWS_SERVER_OPTION_DISABLE_IPV6;
}
