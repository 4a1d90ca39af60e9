/* The token service (entra-tokend): the registration protocol spoken by
 * the PAM module, and the pieces of the App Service managed-identity
 * protocol the daemon serves, kept here so that they can be tested alone.
 *
 * Registration: a root-only Unix stream socket (cfg->tokend_socket). The
 * client sends ONE JSON object and a newline, at most
 * ENTRA_TOKEND_MAX_MESSAGE bytes; the daemon answers one JSON object and a
 * newline, then closes. Operations:
 *   {"op":"register","session_id":ID,"uid":N,"user":NAME,
 *    "identity_kind":"user"|"managed-identity","secret":HEX64}
 *       → {"ok":true} | {"ok":false,"error":TEXT}
 *   {"op":"unregister","session_id":ID} → {"ok":true,"found":BOOL}
 *   {"op":"list"} → {"ok":true,"sessions":[{"session_id","uid","identity_kind",
 *                   "resources"}]}     (no secrets)
 * Only a peer with uid 0 (or the daemon's own uid) is served (SO_PEERCRED).
 *
 * Tokens: GET http://127.0.0.1:<tokend_port>/oauth2/token?resource=R&
 * api-version=2019-08-01 with X-IDENTITY-HEADER: <secret>. */
#ifndef ENTRA_TOKEND_H
#define ENTRA_TOKEND_H

#include <stdbool.h>
#include <stddef.h>

#include "aadsts.h"
#include "config.h"
#include "log.h"
#include "session.h"

#define ENTRA_TOKEND_SECRET_LEN 64          /* hex characters of 256 random bits */
#define ENTRA_TOKEND_PATH "/oauth2/token"
#define ENTRA_TOKEND_API_VERSION "2019-08-01"
#define ENTRA_TOKEND_MAX_MESSAGE 4096       /* one registration message */
#define ENTRA_TOKEND_MAX_HEADER 8192        /* request line + headers of one HTTP request */
#define ENTRA_TOKEND_CLIENT_TIMEOUT_MS 2000 /* the PAM module waits no longer */

/* A fresh secret: ENTRA_TOKEND_SECRET_LEN lowercase hex characters + NUL.
 * 0 or -EIO. */
int entra_tokend_new_secret(char out[ENTRA_TOKEND_SECRET_LEN + 1]);

/* "http://127.0.0.1:<port>/oauth2/token". 0 or -ENOSPC. */
int entra_tokend_endpoint(const struct entra_config *cfg, char *out, size_t len);

/* Send one request (a JSON object's text, without the newline) to the
 * daemon at socket_path and read its answer, within timeout_ms. 0 with
 * *answer set (caller puts), or -errno: -ENOENT/-ECONNREFUSED (no
 * daemon), -ETIMEDOUT, -EPROTO (not one JSON object), -E2BIG. */
int entra_tokend_call(const char *socket_path, const char *request,
		      struct json_object **answer, int timeout_ms);

/* For the PAM module, after entra_session_open: register the session with
 * a fresh secret; on success env holds IDENTITY_ENDPOINT and
 * IDENTITY_HEADER (free with entra_session_env_free). On any failure env
 * is empty and the session goes on without the token service; the reason
 * is logged at notice, except -ENOENT (no socket: no token service on
 * this node, at debug), which the caller's own session line reports.
 * 0 or -errno. */
int entra_tokend_register_session(const struct entra_config *cfg, const char *session_id,
				  const struct entra_session_request *req,
				  struct entra_session_env *env, const struct entra_log *log);

/* For the PAM module at close_session: forget the session (its secret
 * dies with it). Failures are logged at debug (no daemon, nothing to do). */
void entra_tokend_unregister_session(const struct entra_config *cfg, const char *session_id,
				     const struct entra_log *log);

/* One parsed HTTP request head. Strings are malloc'd; NULL when absent. */
struct entra_tokend_http_request {
	char method[16];
	char *path;             /* without the query */
	char *resource;         /* query "resource", URL-decoded */
	char *api_version;      /* query "api-version" */
	char *identity_header;  /* X-IDENTITY-HEADER (secret: wiped on free) */
	char *selector_name;    /* the first of client_id, principal_id, object_id,
				 * mi_res_id, msi_res_id present, or NULL */
	char *selector_value;
	size_t head_len;        /* bytes up to and including the blank line */
};

/* Parse buf[0..len) as an HTTP/1.0 or 1.1 request head. 0 when complete
 * (out filled), -EAGAIN when the blank line has not arrived yet,
 * -E2BIG when the head exceeds ENTRA_TOKEND_MAX_HEADER, -EINVAL when
 * malformed (bad request line, control characters, a NUL, a header
 * without a colon, a duplicate X-IDENTITY-HEADER or query parameter, bad
 * percent-encoding), -ENOMEM. out is zeroed first and always freeable. */
int entra_tokend_http_parse(const char *buf, size_t len, struct entra_tokend_http_request *out);
void entra_tokend_http_request_free(struct entra_tokend_http_request *req);

/* The scope asked of the token endpoint for a resource:
 * "<resource>/.default offline_access" ("<resource>.default …" when it
 * ends with '/'). malloc'd or NULL. */
char *entra_tokend_refresh_scope(const char *resource);

/* Does this refresh-grant error mean the person must sign in again?
 * AADSTS 700082, 50173, 50078, 50076, 70043, 700084, 9002313, 50133,
 * any interaction_required, and an invalid_grant without a code (with a
 * code such as 65001, consent, it is about one resource only). */
bool entra_tokend_needs_login(const struct entra_oauth_error *err);

/* The user-assigned identity of a service account under cfg: its entry in
 * service_identities, else service_client_id, else NULL (system-assigned).
 * Borrowed from cfg. */
const char *entra_tokend_service_client_id(const struct entra_config *cfg, const char *user);

#endif
