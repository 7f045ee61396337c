/*
 * bucket.c - a token bucket per client, so that no client can turn its
 * messages into database work or broadcasts at the rate it likes.
 *
 * A client may send --message-burst messages at once and
 * --message-rate per second after that; the rest are ignored.  Ignored
 * messages are a debt that drains at the same rate, so it grows only
 * while the client sends at more than twice the rate; once it passes
 * what ABUSE_SECONDS of the rate (plus a burst) would drain, the client
 * is abusing, and the caller closes it.  A single burst is not enough.
 */
#include "relay.h"

#define ABUSE_SECONDS 10

void
bucket_init(struct bucket *b, lws_usec_t now, int burst)
{
	b->tokens = (float) burst;
	b->debt = 0;
	b->at = now;
}

enum bucket_verdict
bucket_take(struct bucket *b, lws_usec_t now, double rate, int burst)
{
	float		gained = (float) ((double) (now - b->at) / LWS_US_PER_SEC * rate);

	b->at = now;
	b->tokens += gained;
	if (b->tokens > (float) burst)
		b->tokens = (float) burst;
	b->debt -= gained;
	if (b->debt < 0)
		b->debt = 0;
	if (b->tokens >= 1)
	{
		b->tokens -= 1;
		return BUCKET_OK;
	}
	b->debt += 1;
	return b->debt > (float) (rate * ABUSE_SECONDS + burst) ? BUCKET_ABUSE : BUCKET_EXCESS;
}
