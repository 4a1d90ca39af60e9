/* OAuth / Entra error bodies, and the message a person can act on. */
#ifndef ENTRA_AADSTS_H
#define ENTRA_AADSTS_H

#include <stddef.h>
#include <json-c/json.h>

#define ENTRA_OAUTH_MAX_CODES 8

struct entra_oauth_error {
	char *error;             /* "invalid_grant", "authorization_pending", ... */
	char *error_description;
	char *suberror;
	char *claims;            /* a JSON string, when Entra sends a claims challenge */
	char *trace_id;
	char *correlation_id;
	long codes[ENTRA_OAUTH_MAX_CODES]; /* error_codes, or parsed from "AADSTSnnnn" in the description */
	size_t code_count;
};

/* Fill err from a JSON error body. 0 when the object carries "error"
 * (a string), -ENOENT when it does not, -EINVAL when "error" has the wrong
 * type (or body is not an object), -ENOMEM. Fields not present (or not
 * strings) stay NULL; each is cut to 4 KiB. codes come from error_codes
 * (integers, or digit strings), else from the first "AADSTSnnnn" in the
 * description. err is zeroed first, so it can always be freed. */
int entra_oauth_error_parse(struct json_object *body, struct entra_oauth_error *err);
void entra_oauth_error_free(struct entra_oauth_error *err);

/* A sentence for the person at the terminal, saying what happened and
 * what to do next, chosen by AADSTS code first, then by error. Never NULL.
 * Usually static text; when it must name a code it has no text for (with
 * the https://login.microsoftonline.com/error?code=N lookup), it lives in
 * a per-thread buffer valid until the next call in the same thread. */
const char *entra_oauth_error_message(const struct entra_oauth_error *err);

/* A precise single-line reason for syslog:
 *   error=invalid_grant codes=53003 suberror=message_only trace_id=<guid>
 *   correlation_id=<guid> capolids=<guid>,<guid> description="<first line>"
 * error/suberror limited to [A-Za-z0-9_.:-] (else '?') and 64 bytes; ids
 * shown only when they are GUIDs; capolids from the claims challenge
 * (access_token.capolids.values); description: its first line, printable
 * ASCII, 160 bytes at most (it can echo input). Always NUL-terminated,
 * truncated to len. */
void entra_oauth_error_log_reason(const struct entra_oauth_error *err, char *out, size_t len);

#endif
