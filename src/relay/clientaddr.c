/*
 * clientaddr.c - the address a client connects from, for
 * --max-connections-per-ip.
 *
 * Behind a reverse proxy every client arrives from the proxy's address,
 * so for connections from an address given to --trusted-proxy (and only
 * those: anybody else could write the headers) the client's address is
 * taken from X-Real-IP, or else from the right-most entry of
 * X-Forwarded-For that is not itself a trusted proxy.  Addresses are
 * compared and printed in one form (IPv4-mapped IPv6 as plain IPv4).
 */
#include "relay.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct addr
{
	unsigned char a[16];		/* IPv4 as ::ffff:a.b.c.d */
};

static struct addr *trusted;
static size_t ntrusted;

static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* Parses one address (blanks around it allowed); -1 if it is not one. */
static int
parse(const char *s, size_t n, struct addr *out)
{
	char		buf[INET6_ADDRSTRLEN + 1];

	while (n && (*s == ' ' || *s == '\t'))
		s++, n--;
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	if (!n || n >= sizeof(buf))
		return -1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	if (inet_pton(AF_INET, buf, out->a + 12) == 1)
	{
		memcpy(out->a, v4mapped, 12);
		return 0;
	}
	return inet_pton(AF_INET6, buf, out->a) == 1 ? 0 : -1;
}

static void
format(const struct addr *a, char *out, size_t len)
{
	if (!memcmp(a->a, v4mapped, 12))
		inet_ntop(AF_INET, a->a + 12, out, (socklen_t) len);
	else
		inet_ntop(AF_INET6, a->a, out, (socklen_t) len);
}

static int
is_trusted(const struct addr *a)
{
	size_t		i;

	for (i = 0; i < ntrusted; i++)
		if (!memcmp(trusted[i].a, a->a, 16))
			return 1;
	return 0;
}

/* Reads --trusted-proxy ADDR[,ADDR...]; -1 (and a message) if one is bad. */
int
clientaddr_init(const char *list)
{
	const char *p,
			   *comma;

	for (p = list; p && *p; p = *comma ? comma + 1 : comma)
	{
		struct addr *t;

		comma = strchr(p, ',');
		if (!comma)
			comma = p + strlen(p);
		t = realloc(trusted, (ntrusted + 1) * sizeof(*trusted));
		if (!t)
			return -1;
		trusted = t;
		if (parse(p, (size_t) (comma - p), &trusted[ntrusted]))
		{
			fprintf(stderr, "bad --trusted-proxy address: %.*s\n", (int) (comma - p), p);
			return -1;
		}
		ntrusted++;
	}
	return 0;
}

void
clientaddr_cleanup(void)
{
	free(trusted);
	trusted = NULL;
	ntrusted = 0;
}

/*
 * The right-most address of an X-Forwarded-For list that is not a trusted
 * proxy (each proxy appends the address it saw); -1 if there is none or
 * it is not an address.
 */
static int
forwarded_for(const char *list, struct addr *out)
{
	const char *end = list + strlen(list),
			   *start;

	while (end > list)
	{
		for (start = end; start > list && start[-1] != ','; start--)
			;
		if (parse(start, (size_t) (end - start), out))
			return -1;
		if (!is_trusted(out))
			return 0;
		end = start > list ? start - 1 : list;
	}
	return -1;
}

/* Writes the client's address of wsi into out; -1 if it has none. */
int
clientaddr_get(struct lws *wsi, char *out, size_t len)
{
	char		peer[128],
				hdr[1024];
	struct addr a,
				h;

	if (!lws_get_peer_simple(wsi, peer, sizeof(peer)) ||
		parse(peer, strlen(peer), &a))
		return -1;
	if (is_trusted(&a))
	{
		if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_X_REAL_IP) > 0 &&
			lws_hdr_copy(wsi, hdr, sizeof(hdr), WSI_TOKEN_HTTP_X_REAL_IP) > 0 &&
			!parse(hdr, strlen(hdr), &h))
			a = h;
		else if (lws_hdr_total_length(wsi, WSI_TOKEN_X_FORWARDED_FOR) > 0 &&
				 lws_hdr_copy(wsi, hdr, sizeof(hdr), WSI_TOKEN_X_FORWARDED_FOR) > 0 &&
				 !forwarded_for(hdr, &h))
			a = h;
	}
	format(&a, out, len);
	return 0;
}
