/*
 * deadline.c - sockets that must go by a certain time: those whose token
 * expired (closed with 4001, unless the client sent a fresh one) and
 * those whose state has not gone out within --send-timeout (closed with
 * 1008: a client that does not read must not pin a snapshot).
 *
 * One timer, set for the earliest deadline; when it fires, one pass over
 * the clients closes what is due and finds the next.  (A timer per socket
 * would cost lws a sorted insert each, as ping timers did.)  Passes are at
 * least MIN_GAP_US apart, so a deadline may be kept that much late.
 */
#include "relay.h"

#define MIN_GAP_US	(250 * LWS_US_PER_MS)

static lws_sorted_usec_list_t sul;
static lws_usec_t scheduled_at;	/* 0: none */
static lws_usec_t last_pass;

static void pass(lws_sorted_usec_list_t *s);

/* Makes sure a pass runs by at (0: no deadline). */
void
deadline_note(lws_usec_t at)
{
	lws_usec_t	now = lws_now_usecs();

	if (!at || (scheduled_at && scheduled_at <= at))
		return;
	if (at < last_pass + MIN_GAP_US)
		at = last_pass + MIN_GAP_US;
	scheduled_at = at;
	lws_sul_schedule(relay_context, 0, &sul, pass, at > now ? at - now : 1);
}

static lws_usec_t
earliest(lws_usec_t a, lws_usec_t b)
{
	return !a ? b : !b ? a : a < b ? a : b;
}

static void
pass(lws_sorted_usec_list_t *s)
{
	lws_usec_t	now = lws_now_usecs(),
				next = 0;

	scheduled_at = 0;
	last_pass = now;
	lws_start_foreach_dll(struct lws_dll2 *, d, feed_clients()->head)
	{
		struct client *c = lws_container_of(d, struct client, list);

		if (c->close_code)
			;
		else if (c->expires && now >= c->expires)
		{
			relay_metrics.tokens_expired_total++;
			feed_close_client(c, RELAY_CLOSE_TOKEN_EXPIRED, "token expired");
		}
		else if (c->state && c->state_due && now >= c->state_due)
		{
			relay_metrics.send_timeouts_total++;
			lwsl_user("closing a client whose state did not go out in %d s\n",
					  relay_opts.send_timeout);
			feed_close_client(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "too slow");
		}
		else
			next = earliest(next, earliest(c->expires, c->state ? c->state_due : 0));
	}
	lws_end_foreach_dll(d);
	deadline_note(next);
}

void
deadline_stop(void)
{
	lws_sul_cancel(&sul);
	scheduled_at = 0;
}
