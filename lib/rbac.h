/* Azure RBAC: which Azure role-based permissions the person has at an ARM
 * scope, evaluated as Azure does, plus the checks on the person's ARM
 * access token that conditional access alignment needs (amr, acrs).
 *
 * Semantics (PROTOCOL.md §7, Azure role-definitions): a permission entry
 * {actions, notActions, dataActions, notDataActions} grants an operation
 * when one of its actions (dataActions for a data action) matches it and
 * none of the SAME entry's notActions (notDataActions) does; notActions
 * are not denies, they never subtract from another entry. `*` matches any
 * string (including '/'), anywhere, any number of times; comparison is
 * ASCII case-insensitive. Control-plane actions never grant a data action
 * and vice versa: Owner ("*") cannot log in to a VM.
 *
 * Configured actions (login and admin lists) are data actions, e.g.
 * "Microsoft.Compute/virtualMachines/login/action". The prefix "action:"
 * names a control-plane action instead ("action:Microsoft.Compute/
 * virtualMachines/start/action").
 *
 * Entries carrying an ABAC `condition` cannot be evaluated here, so they
 * grant nothing (fail closed). Deny assignments are not reported by the
 * permissions API and are therefore not seen. */
#ifndef ENTRA_RBAC_H
#define ENTRA_RBAC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "http.h"
#include "jwt.h"

#define ENTRA_RBAC_API_VERSION "2022-04-01"
#define ENTRA_RBAC_DEFAULT_ARM_URL "https://management.azure.com"
#define ENTRA_RBAC_DEFAULT_AUDIENCE "https://management.azure.com/"
#define ENTRA_RBAC_DEFAULT_LOGIN_ACTION "Microsoft.Compute/virtualMachines/login/action"
#define ENTRA_RBAC_DEFAULT_ADMIN_ACTION "Microsoft.Compute/virtualMachines/loginAsAdmin/action"
#define ENTRA_RBAC_CONTROL_PREFIX "action:"
#define ENTRA_RBAC_MAX_PAGES 20        /* nextLink pages followed at most */
#define ENTRA_RBAC_MAX_ENTRIES 2000    /* permission entries over all pages */
#define ENTRA_RBAC_MAX_PATTERNS 2000   /* strings in one list of one entry */
#define ENTRA_RBAC_MAX_ACTION 512      /* bytes in one action or pattern */
#define ENTRA_RBAC_MAX_SCOPE 1024      /* bytes in a scope */
#define ENTRA_RBAC_MAX_CLAIMS 4096     /* bytes of a decoded claims challenge */
#define ENTRA_RBAC_CACHE_MAX_TTL 86400 /* longest decision cache lifetime, seconds */

/* ---- matching and evaluation ---------------------------------------- */

/* Does the Azure action pattern (with `*` wildcards) match the concrete
 * action? Case-insensitive; false when either is NULL. */
bool entra_rbac_action_matches(const char *pattern, const char *action);

/* Is `configured` a usable configured action ("Provider/...", or
 * "action:Provider/...")? 1..ENTRA_RBAC_MAX_ACTION printable ASCII bytes,
 * no space, no '*', at least one '/'. 0 or -EINVAL with a message. For
 * the config validator. */
int entra_rbac_action_check(const char *configured, char *err, size_t errlen);

struct entra_rbac_list {
	char **items;
	size_t count;
};

struct entra_rbac_entry {
	struct entra_rbac_list actions, not_actions, data_actions, not_data_actions;
	bool conditional; /* a non-empty ABAC condition: grants nothing here */
};

struct entra_rbac_permissions {
	struct entra_rbac_entry *entries;
	size_t count;
};

void entra_rbac_permissions_free(struct entra_rbac_permissions *perms);

/* Is the action granted? data selects dataActions/notDataActions rather
 * than actions/notActions. On true, *pattern (if non-NULL) borrows the
 * granting pattern and *entry gets its index. */
bool entra_rbac_granted(const struct entra_rbac_permissions *perms, const char *action,
			bool data, const char **pattern, size_t *entry);

struct entra_rbac_decision {
	bool login_allowed;
	bool admin;        /* only ever true together with login_allowed */
	char reason[512];  /* names the configured action and the matching pattern */
};

/* Decide login and admin from the permissions and the configured action
 * lists (NULL-terminated; any one granted suffices; each item checked with
 * entra_rbac_action_check). login_actions must be non-empty; admin_actions
 * may be NULL or empty (nobody is admin through RBAC). An admin action
 * without a login action is not a login. 0, or -EINVAL (bad action list;
 * out->reason says which) with a denial in out. */
int entra_rbac_decide(const struct entra_rbac_permissions *perms,
		      const char *const *login_actions, const char *const *admin_actions,
		      struct entra_rbac_decision *out);

/* ---- the ARM permissions API ---------------------------------------- */

/* Strictly parse one page {"value":[entries], "nextLink": "..."}: value
 * must be an array of objects; each of the four lists, when present, an
 * array of non-empty strings (absent = empty); condition, when present, a
 * string or null. Entries are appended to out (up to
 * ENTRA_RBAC_MAX_ENTRIES in all); *next_link receives a malloc'd nextLink
 * or NULL (absent, null or ""). 0, -EINVAL (malformed; reason says why),
 * -E2BIG (too many), -ENOMEM. */
int entra_rbac_parse_page(const char *json, size_t len, struct entra_rbac_permissions *out,
			  char **next_link, char *reason, size_t reason_len);

/* An ARM resource id we will put in a URL: "/subscriptions/<guid>"
 * followed by any number of "/segment", segments of [A-Za-z0-9._()~-],
 * no "." or ".." segment, no empty segment, no trailing '/', at most
 * ENTRA_RBAC_MAX_SCOPE bytes. */
bool entra_rbac_scope_is_valid(const char *scope);

/* May the client follow next_link from the base arm_url? https, the same
 * host and port (host compared case-insensitively), no user info, no
 * fragment, no control characters or spaces. */
bool entra_rbac_next_link_ok(const char *arm_url, const char *next_link);

/* The claims of a WWW-Authenticate challenge (RFC 6750 auth-params):
 * when the scheme is Bearer, error="insufficient_claims" and claims="<b64>"
 * decodes (base64 or base64url) to a JSON object, 0 and *claims = the
 * malloc'd JSON text; -ENOENT when the header is not such a challenge;
 * -EINVAL when it claims to be one but its claims are unusable. */
int entra_rbac_parse_claims_challenge(const char *www_authenticate, char **claims);

enum entra_rbac_result {
	ENTRA_RBAC_OK = 0,
	ENTRA_RBAC_FORBIDDEN,     /* 403: no permissions at this scope (deny) */
	ENTRA_RBAC_CHALLENGE,     /* 401 insufficient_claims: *claims holds the JSON
				   * to send as the `claims` parameter of a new login */
	ENTRA_RBAC_UNAUTHORIZED,  /* other 401: ARM rejected the token */
	ENTRA_RBAC_INVALID,       /* bad arguments: scope, URL, token */
	ENTRA_RBAC_UNAVAILABLE,   /* no answer, timeout, 429, 5xx, other status */
	ENTRA_RBAC_MALFORMED,     /* unparsable or oversized answer, bad nextLink,
				   * too many pages */
};

const char *entra_rbac_result_str(enum entra_rbac_result r);

struct entra_rbac_request {
	const char *arm_url;      /* https://host[:port][/]; NULL: ENTRA_RBAC_DEFAULT_ARM_URL */
	const char *scope;        /* ARM resource id (entra_rbac_scope_is_valid) */
	const char *access_token; /* the person's ARM access token (secret) */
	int max_pages;            /* <= 0 or above ENTRA_RBAC_MAX_PAGES: ENTRA_RBAC_MAX_PAGES */
};

/* GET {arm}{scope}/providers/Microsoft.Authorization/permissions?api-
 * version=2022-04-01 with the person's token, following nextLink. Every
 * result but ENTRA_RBAC_OK means: deny. out is initialised here and holds
 * the entries only on ENTRA_RBAC_OK. claims may be NULL; on
 * ENTRA_RBAC_CHALLENGE *claims is malloc'd (else NULL). reason never
 * holds the token or a response body, only statuses, ARM error codes
 * and sizes. */
enum entra_rbac_result entra_rbac_fetch_permissions(struct entra_http *http,
						    const struct entra_rbac_request *req,
						    struct entra_rbac_permissions *out,
						    char **claims, char *reason, size_t reason_len);

/* ---- decision cache ------------------------------------------------- */

/* A fingerprint of what a decision depends on (arm_url, scope, the two
 * action lists): a hex SHA-256 in out (65 bytes). A cached decision is
 * used only under the same binding, so a config change invalidates it. */
int entra_rbac_cache_binding(const char *arm_url, const char *scope,
			     const char *const *login_actions, const char *const *admin_actions,
			     char out[65]);

/* cache_dir/rbac/<oid>.json (directory 0700, file 0600, owner the
 * effective uid, atomic write). oid must be a GUID (it is stored lower
 * case). ttl in 1..ENTRA_RBAC_CACHE_MAX_TTL. 0 or -errno. */
int entra_rbac_cache_store(const char *cache_dir, const char *oid, const char *binding,
			   const struct entra_rbac_decision *decision, int64_t now, int ttl);

/* 0 and *decision filled on a hit: same oid and binding, now < expires,
 * not created in the future (60 s allowance), lifetime within
 * ENTRA_RBAC_CACHE_MAX_TTL. -ENOENT on no entry or a miss (expired,
 * other binding), -EINVAL for a corrupt file, other -errno from the
 * file checks (wrong owner or mode: -EPERM, -EACCES, -ELOOP). Only a hit
 * may be used; every error means: ask ARM. */
int entra_rbac_cache_load(const char *cache_dir, const char *oid, const char *binding,
			  int64_t now, struct entra_rbac_decision *decision);

/* Forget a user's decision (e.g. after a denial). 0 or -errno; absent is 0. */
int entra_rbac_cache_remove(const char *cache_dir, const char *oid);

/* ---- ARM access-token checks (conditional access) -------------------- */

struct entra_rbac_token_expect {
	const char *tenant_id;     /* GUID: iss must be https://sts.windows.net/{tid}/ */
	const char *audience;      /* NULL: ENTRA_RBAC_DEFAULT_AUDIENCE */
	const char *oid;           /* if set, the token's oid must equal it (same person) */
	bool require_mfa;          /* amr must contain "mfa" */
	const char *required_acrs; /* if set (e.g. "c2"), acrs must contain it */
	time_t now;
	int clock_skew;            /* seconds, at most 120 */
};

enum entra_rbac_token_result {
	ENTRA_RBAC_TOKEN_OK = 0,
	ENTRA_RBAC_TOKEN_INVALID,   /* signature, times, issuer, audience, tenant: *jwt_status says */
	ENTRA_RBAC_TOKEN_OTHER_USER,/* oid differs from expect->oid */
	ENTRA_RBAC_TOKEN_NO_MFA,    /* require_mfa and amr lacks "mfa" */
	ENTRA_RBAC_TOKEN_NO_ACRS,   /* required_acrs not in acrs */
};

/* Verify the ARM access token (v1) with the tenant's JWKS and check amr
 * and acrs. A key's "issuer" property of the v2.0 form
 * (".../{tenantid}/v2.0" or ".../<tid>/v2.0", as Entra publishes them) is
 * not applied to these v1 tokens; any other key issuer still is. *claims
 * (if non-NULL) receives the verified payload on OK. */
enum entra_rbac_token_result
entra_rbac_check_access_token_claims(const char *token, const struct entra_jwks *jwks,
				     const struct entra_rbac_token_expect *expect,
				     enum entra_jwt_status *jwt_status,
				     struct json_object **claims,
				     char *reason, size_t reason_len);

#endif
