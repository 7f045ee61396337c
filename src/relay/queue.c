/*
 * queue.c - who uses the database link next.
 *
 * The link carries one query at a time.  Each module with database work
 * (origin.c, sessions.c, feed.c, ...) has a pump that sends one query if it
 * has work and returns 1; main.c lists the pumps in order of priority, and
 * queue_kick() runs them, first to last, whenever the link may be free:
 * when a module has new work, and when a query's result is in (dblink.c's
 * idle handler).  The order is what the relay promises: a closed socket's
 * session is ended before a new one starts, and a new client's session is
 * connected before the snapshot it will find itself in is read.
 */
#include "relay.h"

static const queue_pump_fn *pumps;
static int	npumps;

void
queue_init(const queue_pump_fn *p, int n)
{
	pumps = p;
	npumps = n;
}

/* Sends the next query, if the link is free and anybody has work. */
void
queue_kick(void)
{
	int			i;

	if (!dblink_is_idle())
		return;
	for (i = 0; i < npumps; i++)
		if (pumps[i] ())
			return;
}
