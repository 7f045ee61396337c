/*
 * conninfo.c - the hosts of the relay's conninfo, in the order to try them.
 *
 * libpq tries the hosts of "host=a,b,c" in order.  In non-blocking mode it
 * cannot give up on one that completed the TCP handshake and then said
 * nothing (a frozen server): the relay's connect timeout ends the whole
 * attempt.  So that the next attempt does not stall on the same host, it
 * starts with the host after it: the lists host, hostaddr and port are
 * passed again, rotated, after the conninfo, and libpq lets later keywords
 * override earlier ones.
 */
#include "relay.h"

#include <stdlib.h>
#include <string.h>

enum
{
	LIST_HOST,
	LIST_HOSTADDR,
	LIST_PORT,
	NLISTS
};
static const char *const list_keys[NLISTS] = {"host", "hostaddr", "port"};

static char *lists[NLISTS];		/* as in the conninfo, or NULL */
static char *rotated[NLISTS];	/* what conninfo_params() handed out */
static int	nhosts;				/* entries in the host (or hostaddr) list */

static int
count_items(const char *list)
{
	int			n = 1;

	for (; *list; list++)
		n += *list == ',';
	return n;
}

/* Has list l one entry per host (not one for all, nor none)? */
static int
per_host(int l)
{
	return lists[l] && count_items(lists[l]) == nhosts;
}

/* The i-th item of a comma-separated list (it has one), copied into buf. */
static const char *
item(const char *list, int i, char *buf, size_t len)
{
	const char *end;

	while (i-- > 0)
		list = strchr(list, ',') + 1;
	end = strchr(list, ',');
	if (!end)
		end = list + strlen(list);
	lws_strnncpy(buf, list, end - list, len);
	return buf;
}

/* list from its item first on, then its items before first. */
static char *
rotate(const char *list, int first)
{
	size_t		len = strlen(list);
	char	   *out = malloc(len + 2),
			   *p = out;
	const char *cut;
	int			i;

	if (!out)
		return NULL;
	for (cut = list, i = 0; i < first; i++)
		cut = strchr(cut, ',') + 1;
	p += lws_snprintf(p, len + 2, "%s", cut);
	if (cut > list)
		lws_snprintf(p, len + 2 - (size_t) (p - out), ",%.*s",
					 (int) (cut - list - 1), list);
	return out;
}

/*
 * Reads the host lists of conninfo (a URI or "k=v ..."; NULL: none, libpq
 * reads PG* variables).  One that libpq cannot parse is left for it to
 * report when connecting.
 */
void
conninfo_init(const char *conninfo)
{
	PQconninfoOption *opts,
			   *o;
	int			i;

	conninfo_cleanup();
	if (!conninfo || !(opts = PQconninfoParse(conninfo, NULL)))
		return;
	for (o = opts; o->keyword; o++)
		for (i = 0; i < NLISTS; i++)
			if (!strcmp(o->keyword, list_keys[i]) && o->val && *o->val)
				lists[i] = strdup(o->val);
	PQconninfoFree(opts);
	if (lists[LIST_HOST])
		nhosts = count_items(lists[LIST_HOST]);
	else if (lists[LIST_HOSTADDR])
		nhosts = count_items(lists[LIST_HOSTADDR]);
}

void
conninfo_cleanup(void)
{
	int			i;

	for (i = 0; i < NLISTS; i++)
	{
		free(lists[i]);
		free(rotated[i]);
		lists[i] = rotated[i] = NULL;
	}
	nhosts = 0;
}

int
conninfo_hosts(void)
{
	return nhosts;
}

/*
 * Which host of the list libpq is at, from PQhost() and PQport() (the host
 * name if given, else the address; the port if there is one per host).
 * -1 if none matches.
 */
int
conninfo_host_index(const char *host, const char *port)
{
	char		buf[256];
	int			i;

	if (!host)
		return -1;
	for (i = 0; i < nhosts; i++)
	{
		const char *h = per_host(LIST_HOST) ? item(lists[LIST_HOST], i, buf, sizeof(buf)) : "";

		if (!*h && per_host(LIST_HOSTADDR))
			h = item(lists[LIST_HOSTADDR], i, buf, sizeof(buf));
		if (strcmp(h, host))
			continue;
		if (per_host(LIST_PORT) &&
			(!port || strcmp(item(lists[LIST_PORT], i, buf, sizeof(buf)), port)))
			continue;
		return i;
	}
	return -1;
}

/*
 * Appends to keys/vals (room for 3 more) the host lists rotated to start
 * at host first; lists with one entry for all hosts stay as they are.
 * Returns how many were appended.  They stay valid until the next call.
 */
int
conninfo_params(int first, const char **keys, const char **vals)
{
	int			i,
				n = 0;

	if (nhosts < 2 || first % nhosts == 0)
		return 0;
	for (i = 0; i < NLISTS; i++)
	{
		free(rotated[i]);
		rotated[i] = NULL;
		if (!per_host(i))
			continue;
		rotated[i] = rotate(lists[i], first % nhosts);
		if (!rotated[i])
			continue;
		keys[n] = list_keys[i];
		vals[n++] = rotated[i];
	}
	return n;
}
