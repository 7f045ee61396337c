/*
 * auth.c - who is connecting: HS256 JSON Web Tokens, checked with libjwt.
 *
 * A token comes in an "Authorization: Bearer" header (preferred: it stays
 * out of proxy logs) or a "?token=" query argument (browsers cannot set
 * headers on a WebSocket).  It must be HS256, signed with the relay's
 * secret, carry a string "sub" (the presence user id) and an "exp" in the
 * future; "exp" and "nbf" are NumericDates (JSON numbers, integer or not:
 * anything else refuses the token).  Its "channels" claim says which
 * channels the client may join or watch (access.c); a claim that is not
 * as documented refuses the token too.  Nothing here ever logs a token.
 */
#include "relay.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include <jwt.h>

#define AUTH_MIN_SECRET 32
/* what demo tokens may join and watch: the demo page's rooms (room:general ...) */
#define DEMO_CHANNELS "room:*"

static unsigned char secret[1024];
static size_t secret_len;

/*
 * Reads the shared secret.  Trailing newlines are not part of it, so that
 * "echo secret > file" works.  With --demo and no file, a random secret is
 * made: demo tokens are minted by this same process, so nobody else needs it.
 */
int
auth_init(const char *secret_file, int demo)
{
	FILE	   *f;

	if (!secret_file)
	{
		if (!demo)
			return 0;
		if (getrandom(secret, 32, 0) != 32)
			return -1;
		secret_len = 32;
		return 0;
	}
	f = fopen(secret_file, "rb");
	if (!f)
	{
		lwsl_err("cannot read --jwt-secret-file %s: %s\n", secret_file,
				 strerror(errno));
		return -1;
	}
	secret_len = fread(secret, 1, sizeof(secret), f);
	if (!feof(f))
	{
		lwsl_err("--jwt-secret-file %s is longer than %zu bytes\n",
				 secret_file, sizeof(secret) - 1);
		fclose(f);
		return -1;
	}
	fclose(f);
	while (secret_len && (secret[secret_len - 1] == '\n' ||
						  secret[secret_len - 1] == '\r'))
		secret_len--;
	if (!secret_len)
	{
		lwsl_err("--jwt-secret-file %s is empty\n", secret_file);
		return -1;
	}
	if (secret_len < AUTH_MIN_SECRET)
	{
		lwsl_err("--jwt-secret-file %s holds %zu bytes: HS256 needs a secret of at "
				 "least %d (e.g. head -c 32 /dev/urandom | base64 > file)\n",
				 secret_file, secret_len, AUTH_MIN_SECRET);
		auth_cleanup();
		return -1;
	}
	return 0;
}

void
auth_cleanup(void)
{
	memset(secret, 0, sizeof(secret));
	secret_len = 0;
}

const char *
auth_result_str(enum auth_result r)
{
	switch (r)
	{
		case AUTH_OK:
			return "ok";
		case AUTH_NONE:
			return "no token";
		case AUTH_MALFORMED:
			return "malformed token";
		case AUTH_BAD_SIGNATURE:
			return "bad signature";
		case AUTH_WRONG_ALG:
			return "algorithm is not HS256";
		case AUTH_EXPIRED:
			return "expired or no exp";
		case AUTH_NOT_YET_VALID:
			return "not yet valid (nbf)";
		case AUTH_BAD_CLAIM:
			return "exp or nbf is not a NumericDate";
		case AUTH_NO_SUBJECT:
			return "no usable sub";
		case AUTH_NO_SECRET:
			return "no --jwt-secret-file";
		case AUTH_BAD_CHANNELS:
			return "channels is not an array of channel names and prefixes";
	}
	return "?";
}

/*
 * Reads a NumericDate claim: 1 and *out if it is a JSON number, 0 if the
 * claim is absent, -1 if it is anything else (a string, an array, ...).
 * libjwt's jwt_get_grant_int() takes integers only, so the claim's JSON
 * text is read instead.
 */
static int
numeric_date(jwt_t *jwt, const char *claim, double *out)
{
	char	   *json = jwt_get_grants_json(jwt, claim),
			   *end;
	int			r = -1;

	if (!json)
		return 0;
	if ((json[0] == '-' || (json[0] >= '0' && json[0] <= '9')))
	{
		errno = 0;
		*out = strtod(json, &end);
		if (!*end && !isnan(*out))
			r = 1;
	}
	free(json);
	return r;
}

/*
 * Checks one token against key at time now; on success copies "sub" into
 * user, "exp" into *exp and the grants of "channels" into *grants (each if
 * not NULL; no claim: NULL grants).  Pure (no lws, no globals) so that the
 * fuzzer can call it.
 *
 * libjwt 1.10 has no validation API, so the checks are ours: the token is
 * first parsed without a key to tell malformed from forged, then its alg
 * is pinned to HS256 (libjwt would happily verify an HS512 token with the
 * same key, and "none" must never pass), then it is decoded again with the
 * key, which verifies the signature.
 */
enum auth_result
auth_verify_token(const unsigned char *key, size_t keylen, const char *token,
				  double now, char *user, size_t usersz, double *exp_out,
				  struct grants **grants)
{
	jwt_t	   *jwt = NULL;
	const char *sub,
			   *alg;
	char	   *claim;
	struct grants *gs;
	int			bad;
	double		exp,
				nbf;
	int			has_exp,
				has_nbf;
	enum auth_result r;

	if (!token || !*token)
		return AUTH_NONE;
	if (!key || !keylen)
		return AUTH_NO_SECRET;
	if (strlen(token) > RELAY_MAX_TOKEN)
		return AUTH_MALFORMED;

	if (jwt_decode(&jwt, token, NULL, 0) || !jwt)
		return AUTH_MALFORMED;
	/* keyless, libjwt 1.10 reports every alg as none: read the header */
	alg = jwt_get_header(jwt, "alg");
	r = alg && !strcmp(alg, "HS256") ? AUTH_OK : AUTH_WRONG_ALG;
	jwt_free(jwt);
	jwt = NULL;
	if (r != AUTH_OK)
		return r;

	if (jwt_decode(&jwt, token, key, (int) keylen) || !jwt)
		return AUTH_BAD_SIGNATURE;
	if (jwt_get_alg(jwt) != JWT_ALG_HS256)
	{
		jwt_free(jwt);
		return AUTH_WRONG_ALG;
	}

	/* "exp" is required: a token that never expires is not accepted. */
	has_exp = numeric_date(jwt, "exp", &exp);
	has_nbf = numeric_date(jwt, "nbf", &nbf);
	if (has_exp < 0 || has_nbf < 0)
		r = AUTH_BAD_CLAIM;
	else if (!has_exp || exp <= now)
		r = AUTH_EXPIRED;
	else if (has_nbf && nbf > now)
		r = AUTH_NOT_YET_VALID;
	if (r == AUTH_OK)
	{
		sub = jwt_get_grant(jwt, "sub");
		if (!sub || !*sub || strlen(sub) > RELAY_MAX_USER_ID ||
			strlen(sub) >= usersz)
			r = AUTH_NO_SUBJECT;
	}
	if (r == AUTH_OK)
	{
		/* the claim's JSON text as libjwt (jansson) writes it; NULL if absent */
		claim = jwt_get_grants_json(jwt, "channels");
		gs = access_parse(claim, &bad);
		free(claim);
		if (bad)
			r = AUTH_BAD_CHANNELS;
		else
		{
			memcpy(user, sub, strlen(sub) + 1);
			if (exp_out)
				*exp_out = exp;
			if (grants)
				*grants = gs;
			else
				access_free(gs);
		}
	}
	jwt_free(jwt);
	return r;
}

/* The current time, with a fraction: a NumericDate may have one too. */
static double
now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Checks a token a client sent in a message, with the relay's secret. */
enum auth_result
auth_check(const char *token, char *user, size_t usersz, double *exp,
		   struct grants **grants)
{
	return auth_verify_token(secret, secret_len, token, now_seconds(), user,
							 usersz, exp, grants);
}

/*
 * Finds and checks the token of an HTTP request (or WebSocket upgrade).
 * Returns AUTH_NONE if the request carries none.
 */
enum auth_result
auth_request(struct lws *wsi, char *user, size_t usersz, double *exp,
			 struct grants **grants)
{
	char		buf[RELAY_MAX_TOKEN + 16];
	const char *token = NULL;
	enum auth_result r;
	int			n;

	n = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
	if (n > 0)
	{
		if (n >= (int) sizeof(buf) ||
			lws_hdr_copy(wsi, buf, sizeof(buf), WSI_TOKEN_HTTP_AUTHORIZATION) < 0)
			return AUTH_MALFORMED;
		if (strncasecmp(buf, "Bearer ", 7) != 0)
			return AUTH_MALFORMED;
		token = buf + 7;
		while (*token == ' ')
			token++;
	}
	else
		token = lws_get_urlarg_by_name(wsi, "token=", buf, sizeof(buf));

	if (!token)
		return AUTH_NONE;
	r = auth_check(token, user, usersz, exp, grants);
	lws_explicit_bzero(buf, sizeof(buf));
	return r;
}

/*
 * Mints a short-lived token for user, for the demo page (--demo only),
 * allowing the demo's rooms (DEMO_CHANNELS) and nothing else, so that the
 * page and its simulated crowd can join and watch them.
 * Returns a malloc'd string, or NULL.
 */
char *
auth_mint_token(const char *user, int ttl)
{
	jwt_t	   *jwt = NULL;
	char	   *out = NULL;
	time_t		now = time(NULL);

	if (jwt_new(&jwt))
		return NULL;
	if (!jwt_add_grant(jwt, "sub", user) &&
		!jwt_add_grant_int(jwt, "iat", (long) now) &&
		!jwt_add_grant_int(jwt, "exp", (long) now + ttl) &&
		!jwt_add_grants_json(jwt, "{\"channels\":[\"" DEMO_CHANNELS "\"]}") &&
		!jwt_set_alg(jwt, JWT_ALG_HS256, secret, (int) secret_len))
		out = jwt_encode_str(jwt);
	jwt_free(jwt);
	return out;
}
