/* Token endpoint responses and the refresh grant. */
#ifndef ENTRA_TOKENS_H
#define ENTRA_TOKENS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "aadsts.h"
#include "http.h"

struct entra_token_response {
	char *access_token;
	char *refresh_token;   /* NULL without offline_access */
	char *id_token;        /* NULL without openid */
	char *token_type;
	char *scope;
	int64_t expires_in;    /* seconds, integer or string on the wire */
	time_t expires_on;     /* now + expires_in, or the expires_on field */
};

enum entra_token_result {
	ENTRA_TOKEN_OK,
	ENTRA_TOKEN_ERROR,     /* an OAuth error body (err filled), whatever the HTTP status */
	ENTRA_TOKEN_MALFORMED, /* not JSON, or a 2xx without access_token/token_type, or a non-JSON error */
};

/* Classify and parse one token endpoint response. Every body is checked
 * for "error" first, whatever the status. A 2xx needs access_token and
 * token_type "Bearer" (any case); refresh_token, id_token, scope are
 * optional ("" counts as absent). Lifetime: expires_on (epoch seconds, int
 * or string, or the legacy "MM/DD/YYYY HH:MM:SS +00:00") when present,
 * else now + expires_in (int or string), else now + 3600 (expires_in is
 * only RECOMMENDED by RFC 6749). A lifetime <= 0 or over a year, a token
 * with control characters, or a field of the wrong type is MALFORMED.
 * out and err are zeroed first; out is filled only on OK, err only on
 * ERROR. */
enum entra_token_result entra_token_response_parse(long status, const char *body, size_t len,
						   time_t now, struct entra_token_response *out,
						   struct entra_oauth_error *err);
/* Wipes every secret, then frees. */
void entra_token_response_free(struct entra_token_response *tok);

/* grant_type=refresh_token for scope (space-separated), optional claims
 * JSON, client_info=1. Transport failures return ENTRA_TOKEN_MALFORMED
 * (the http layer logs the reason). */
enum entra_token_result entra_token_refresh(struct entra_http *http, const char *token_endpoint,
					   const char *client_id, const char *refresh_token,
					   const char *scope, const char *claims, time_t now,
					   struct entra_token_response *out,
					   struct entra_oauth_error *err);

#endif
