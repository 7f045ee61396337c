/*
 * auth.c - who is connecting: HS256 JSON Web Tokens, checked with libjwt.
 *
 * A token comes in an "Authorization: Bearer" header (preferred: it stays
 * out of proxy logs) or a "?token=" query argument (browsers cannot set
 * headers on a WebSocket).  It must be HS256, signed with the relay's
 * secret, carry a string "sub" (the presence user id) and an "exp" in the
 * future.  Nothing here ever logs a token.
 */
#include "relay.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include <jwt.h>

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
	if (secret_len < 32)
		lwsl_warn("the JWT secret is shorter than 32 bytes: HS256 wants at least 32\n");
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
		case AUTH_NO_SUBJECT:
			return "no usable sub";
		case AUTH_NO_SECRET:
			return "no --jwt-secret-file";
	}
	return "?";
}

/*
 * Checks one token against key at time now; on success copies "sub" into
 * user.  Pure (no lws, no globals) so that the fuzzer can call it.
 *
 * libjwt 1.10 has no validation API, so the checks are ours: the token is
 * first parsed without a key to tell malformed from forged, then its alg
 * is pinned to HS256 (libjwt would happily verify an HS512 token with the
 * same key, and "none" must never pass), then it is decoded again with the
 * key, which verifies the signature.
 */
enum auth_result
auth_verify_token(const unsigned char *key, size_t keylen, const char *token,
				  time_t now, char *user, size_t usersz)
{
	jwt_t	   *jwt = NULL;
	const char *sub,
			   *alg;
	long		exp,
				nbf;
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
	errno = 0;
	exp = jwt_get_grant_int(jwt, "exp");
	if (errno || exp <= (long) now)
		r = AUTH_EXPIRED;
	else
	{
		errno = 0;
		nbf = jwt_get_grant_int(jwt, "nbf");
		if (!errno && nbf > (long) now)
			r = AUTH_EXPIRED;
	}
	if (r == AUTH_OK)
	{
		sub = jwt_get_grant(jwt, "sub");
		if (!sub || !*sub || strlen(sub) > RELAY_MAX_USER_ID ||
			strlen(sub) >= usersz)
			r = AUTH_NO_SUBJECT;
		else
			memcpy(user, sub, strlen(sub) + 1);
	}
	jwt_free(jwt);
	return r;
}

/*
 * Finds and checks the token of an HTTP request (or WebSocket upgrade).
 * Returns AUTH_NONE if the request carries none.
 */
enum auth_result
auth_request(struct lws *wsi, char *user, size_t usersz)
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
	r = auth_verify_token(secret, secret_len, token, time(NULL), user, usersz);
	lws_explicit_bzero(buf, sizeof(buf));
	return r;
}

/*
 * Mints a short-lived token for user, for the demo page (--demo only).
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
		!jwt_set_alg(jwt, JWT_ALG_HS256, secret, (int) secret_len))
		out = jwt_encode_str(jwt);
	jwt_free(jwt);
	return out;
}
