/* One device-code login, from a PAM user name to a verified identity:
 * classify the account (no network for names that are not ours),
 * discovery + JWKS, the device flow, ID-token validation, and the check
 * that the person who signed in owns the account. Used by the PAM module
 * and by entractl's test login; knows nothing of PAM. */
#ifndef ENTRA_LOGIN_H
#define ENTRA_LOGIN_H

#include <stddef.h>

#include "config.h"
#include "devicecode.h"
#include "log.h"
#include "policy.h"
#include "rbac.h"
#include "tokens.h"

enum entra_login_status {
	ENTRA_LOGIN_OK,
	ENTRA_LOGIN_NOT_OURS,        /* leave the account to the rest of the stack */
	ENTRA_LOGIN_DENIED,          /* a definite no: wrong person, bad token, declined, ... */
	ENTRA_LOGIN_NO_CONVERSATION, /* nobody to show the code to */
	ENTRA_LOGIN_UNAVAILABLE,     /* the identity provider could not be used */
	ENTRA_LOGIN_TIMED_OUT,
};

struct entra_login_result {
	struct entra_identity identity;
	struct entra_token_response tokens; /* access (workspace) and refresh tokens */
	bool rbac_checked;                  /* rbac_scope is set: rbac holds the decision */
	struct entra_rbac_decision rbac;
	char message[512];                  /* for the person, when not OK */
};

/* service is the PAM service (sshd, sudo, ...): it selects the
 * authentication context (auth_context) requested and required. With
 * require_mfa or an authentication context, the ARM access token is
 * verified and must carry them. With rbac_scope, the person's permissions
 * at that scope are read from ARM (or the decision cache) into
 * result->rbac. A claims challenge (from Entra or ARM) gets one more
 * device-code round with those claims. */
enum entra_login_status entra_login_authenticate(const struct entra_config *cfg, const char *user,
						 const char *service, const char *host_name,
						 const struct entra_device_hooks *hooks,
						 const struct entra_log *log,
						 struct entra_login_result *result);

/* sudo_reuse_window: may sudo (PAM service sudo or sudo-i) by user reuse
 * the login of session_id (the caller's ENTRA_SESSION_ID) instead of a
 * new device code? Only when the window is on, the session's private
 * store entry is for user with the uid the user database binds to user
 * and to the same object id, its login is younger than the window, and
 * its access token verifies now against the tenant's (cached) keys for
 * that person and satisfies require_mfa and the service's auth_context.
 * Then result holds the identity (object id and tenant verified by the
 * token) and the access token, *admin the login's stored decision, and 0
 * is returned. Otherwise -errno, the reason logged at info (nothing
 * logged when reuse does not apply): the caller signs in as usual. */
int entra_login_reuse(const struct entra_config *cfg, const char *user, const char *service,
		      const char *session_id, const struct entra_log *log,
		      struct entra_login_result *result, bool *admin);

/* Wipes the tokens and frees the identity. */
void entra_login_result_free(struct entra_login_result *result);

const char *entra_login_status_str(enum entra_login_status status);

#endif
