/*
 * deadline.c - one timer for many deadlines: sockets whose token expires,
 * states that must go out within --send-timeout (out.c keeps both on each
 * client and does what is due).
 *
 * The timer is set for the earliest deadline noted; when it fires, the
 * pass main.c registered does what is due and says when the next one is.
 * (A timer per socket would cost lws a sorted insert each, as ping timers
 * did.)  Passes are at least MIN_GAP_US apart, so a deadline may be kept
 * that much late.
 */
#include "relay.h"

#define MIN_GAP_US	(250 * LWS_US_PER_MS)

static lws_sorted_usec_list_t sul;
static lws_usec_t scheduled_at;	/* 0: none */
static lws_usec_t last_pass;
static deadline_pass_fn pass_fn;

static void pass(lws_sorted_usec_list_t *s);

void
deadline_init(deadline_pass_fn fn)
{
	pass_fn = fn;
}

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

static void
pass(lws_sorted_usec_list_t *s)
{
	lws_usec_t	now = lws_now_usecs();

	scheduled_at = 0;
	last_pass = now;
	deadline_note(pass_fn ? pass_fn(now) : 0);
}

void
deadline_stop(void)
{
	lws_sul_cancel(&sul);
	scheduled_at = 0;
}
