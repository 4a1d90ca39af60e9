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
 * type. Fields not present stay NULL. */
int entra_oauth_error_parse(struct json_object *body, struct entra_oauth_error *err);
void entra_oauth_error_free(struct entra_oauth_error *err);

/* A sentence for the person at the terminal, saying what happened and
 * what to do next, chosen by AADSTS code first, then by error. Static
 * storage; never NULL. */
const char *entra_oauth_error_message(const struct entra_oauth_error *err);

/* A precise single-line reason for syslog: error, codes, suberror,
 * trace_id, correlation_id, and policy ids from a capolids claims
 * challenge. No description text beyond its first line (it can echo
 * input). */
void entra_oauth_error_log_reason(const struct entra_oauth_error *err, char *out, size_t len);

#endif
