/*
 * fuzz.c - libFuzzer target for what the relay parses from strangers:
 * tokens (auth.c), client messages (message.c) and notification payloads
 * (event.c: any database role may NOTIFY).  `make fuzz`.
 *
 * The first input byte picks the target:
 *   0  the rest is a token, checked as it came
 *   1  the rest is "header\nclaims": both are base64url-encoded and signed
 *      with the key, so the checks after the signature (alg, exp, nbf, sub)
 *      are reached, which random tokens never would
 *   2  the rest is a client message, parsed whole and also fed in pieces
 *      at input-chosen places: both must agree
 *   3  the rest is a notification payload: if it is accepted, the frame
 *      made of it must parse back (a status change's, as a payload without
 *      "type") to the same event, and be JSON jsonv.c accepts
 *   4  the rest is any JSON text: what jsonv.c writes of it must be
 *      accepted again and written the same (and a "channels" claim made of
 *      it must not crash access.c)
 */
#include "relay.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

static const unsigned char key[] = "fuzz-secret-0123456789abcdef0123";

static size_t
b64url(const unsigned char *in, size_t len, char *out)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t		i,
				o = 0;

	for (i = 0; i + 2 < len; i += 3)
	{
		out[o++] = tab[in[i] >> 2];
		out[o++] = tab[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
		out[o++] = tab[((in[i + 1] & 15) << 2) | (in[i + 2] >> 6)];
		out[o++] = tab[in[i + 2] & 63];
	}
	if (len - i == 1)
	{
		out[o++] = tab[in[i] >> 2];
		out[o++] = tab[(in[i] & 3) << 4];
	}
	else if (len - i == 2)
	{
		out[o++] = tab[in[i] >> 2];
		out[o++] = tab[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
		out[o++] = tab[(in[i + 1] & 15) << 2];
	}
	out[o] = '\0';
	return o;
}

static void
check_token(const char *token)
{
	char		user[RELAY_MAX_USER_ID + 1];
	enum auth_result r;

	double		exp = 0;

	struct grants *gs = NULL;

	r = auth_verify_token(key, sizeof(key) - 1, token, 1700000000, user, sizeof(user), &exp,
						  &gs);
	if (r == AUTH_OK)
		assert(*user && strlen(user) <= RELAY_MAX_USER_ID && exp > 1700000000);
	access_free(gs);
}

static void
signed_token(const unsigned char *data, size_t size)
{
	const unsigned char *nl = memchr(data, '\n', size);
	char	   *tok;
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen;
	size_t		hl,
				o;

	if (!nl)
		return;
	hl = (size_t) (nl - data);
	tok = malloc(2 * size + 128);
	o = b64url(data, hl, tok);
	tok[o++] = '.';
	o += b64url(nl + 1, size - hl - 1, tok + o);
	HMAC(EVP_sha256(), key, (int) sizeof(key) - 1, (unsigned char *) tok, o, mac, &maclen);
	tok[o++] = '.';
	b64url(mac, maclen, tok + o);
	check_token(tok);
	free(tok);
}

static void
message(const unsigned char *data, size_t size)
{
	struct message whole,
				pieces;
	struct message_parser *p;
	size_t		at = 0,
				step;

	message_parse(data, size, &whole);
	p = message_begin();
	if (!p)
		return;
	while (at < size)
	{
		step = 1 + data[at] % 7;
		if (step > size - at)
			step = size - at;
		message_feed(p, data + at, step);
		at += step;
	}
	message_end(p, &pieces);
	assert(whole.kind == pieces.kind);
	if (whole.kind == MESSAGE_TOKEN)
		assert(!strcmp(whole.token, pieces.token));
	assert((whole.error == NULL) == (pieces.error == NULL));
	assert(whole.channel_len == pieces.channel_len &&
		   !memcmp(whole.channel, pieces.channel, whole.channel_len));
	assert((whole.meta == NULL) == (pieces.meta == NULL) &&
		   (!whole.meta || !strcmp(whole.meta, pieces.meta)));
	message_clear(&whole);
	message_clear(&pieces);
	if (whole.kind == MESSAGE_HEARTBEAT)
		assert(whole.active == pieces.active);
	if (whole.kind == MESSAGE_VISIBILITY)
		assert(whole.visible == pieces.visible && whole.visible >= 0);
}

static void
notification(const unsigned char *data, size_t size)
{
	static const char prefix[] = "{\"type\":\"presence\",";
	struct presence_event ev,
				again;
	struct jbuf frame = {0};
	char	   *payload = malloc(size + 1);

	memcpy(payload, data, size);
	payload[size] = '\0';
	if (!event_parse(payload, strlen(payload), &ev))
	{
		assert(!event_frame(&ev, &frame));
		assert(!jsonv_copy((char *) frame.p + LWS_PRE, frame.len, NULL, NULL));
		if (ev.kind != EVENT_PRESENCE)
		{
			jbuf_free(&frame);
			free(payload);
			return;
		}
		/* the frame without "type" is a payload again, of the same event */
		assert(!memcmp(jbuf_text(&frame), prefix, sizeof(prefix) - 1));
		frame.p[LWS_PRE + sizeof(prefix) - 2] = '{';
		assert(!event_parse((char *) frame.p + LWS_PRE + sizeof(prefix) - 2,
							frame.len - sizeof(prefix) + 2, &again));
		assert(again.seq == ev.seq && again.user_len == ev.user_len &&
			   !memcmp(again.user_id, ev.user_id, ev.user_len) &&
			   again.status == ev.status && again.previous == ev.previous &&
			   !strcmp(again.last_active, ev.last_active));
	}
	jbuf_free(&frame);
	free(payload);
}

static void
json_text(const unsigned char *data, size_t size)
{
	struct jbuf once = {0},
				twice = {0};
	char	   *claim;
	struct grants *gs;
	int			bad;

	if (!jsonv_copy((const char *) data, size, &once, NULL))
	{
		assert(!jsonv_copy((char *) once.p + LWS_PRE, once.len, &twice, NULL));
		assert(once.len == twice.len && !memcmp(once.p + LWS_PRE, twice.p + LWS_PRE, once.len));
		claim = jbuf_text(&once);
		gs = access_parse(claim, &bad);
		assert(!(gs && bad));
		access_free(gs);
	}
	jbuf_free(&once);
	jbuf_free(&twice);
}

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	char	   *s;

	if (size < 1)
		return 0;
	switch (data[0] % 5)
	{
		case 0:
			s = malloc(size);
			memcpy(s, data + 1, size - 1);
			s[size - 1] = '\0';
			check_token(s);
			free(s);
			break;
		case 1:
			signed_token(data + 1, size - 1);
			break;
		case 2:
			message(data + 1, size - 1);
			break;
		case 3:
			notification(data + 1, size - 1);
			break;
		default:
			json_text(data + 1, size - 1);
			break;
	}
	return 0;
}
