#include "config.h"
#include "login.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aadsts.h"
#include "buf.h"
#include "http.h"
#include "jwt.h"
#include "names.h"
#include "json.h"
#include "oidc.h"
#include "rbac.h"
#include "session.h"
#include "userdb.h"

#define MSG_UNAVAILABLE "Microsoft Entra ID cannot be reached to sign you in. Try again in a few minutes; if it keeps failing, tell your administrator (details are in the system log)."
#define MSG_NOT_VERIFIED "Your sign-in could not be verified, so this login was refused. Tell your administrator (details are in the system log)."
#define MSG_NO_CONVERSATION "This login needs an interactive terminal to show a sign-in code; use an interactive session (not BatchMode, sudo -n or a pipe)."
#define MSG_NO_MFA "Your sign-in did not use multi-factor authentication, which this host requires. Sign in again and complete MFA (to set it up: https://aka.ms/mfasetup)."
#define MSG_NO_ACRS "This login needs a stronger sign-in than the one you completed (an authentication context your organization protects, for example with a compliant device or phishing-resistant MFA). Sign in again and complete every step Entra asks for."
#define MSG_ARM_UNAVAILABLE "Azure cannot be reached to check your access to this host. Try again in a few minutes; if it keeps failing, tell your administrator (details are in the system log)."
#define MSG_CHALLENGE "Your organization asks for an additional check for this sign-in. Enter the new code below."
#define MSG_TIMED_OUT "The sign-in was not completed in time. Start the login again and press Enter only after you have signed in."

const char *entra_login_status_str(enum entra_login_status status)
{
	switch (status) {
	case ENTRA_LOGIN_OK: return "ok";
	case ENTRA_LOGIN_NOT_OURS: return "not an Entra account";
	case ENTRA_LOGIN_DENIED: return "denied";
	case ENTRA_LOGIN_NO_CONVERSATION: return "no conversation";
	case ENTRA_LOGIN_UNAVAILABLE: return "identity provider unavailable";
	case ENTRA_LOGIN_TIMED_OUT: return "timed out";
	}
	return "unknown";
}

void entra_login_result_free(struct entra_login_result *result)
{
	entra_identity_free(&result->identity);
	entra_token_response_free(&result->tokens);
}

static void set_message(struct entra_login_result *result, const char *text)
{
	snprintf(result->message, sizeof(result->message), "%s", text);
}

static char *build_scope(const struct entra_config *cfg)
{
	struct entra_buf scope;

	entra_buf_init(&scope, 4096);
	if (entra_buf_printf(&scope, "%s openid profile offline_access", cfg->resource) < 0) {
		entra_buf_free(&scope);
		return NULL;
	}
	return entra_buf_steal(&scope);
}

/* Verify the ID token; on an unknown kid refetch the JWKS once (rate
 * limited across processes by the oidc cache) and try again. */
static enum entra_jwt_status verify_id_token(const struct entra_config *cfg,
					     struct entra_oidc *oidc, struct entra_http *http,
					     const struct entra_log *log, const char *id_token,
					     struct json_object **claims, char *reason, size_t reason_len)
{
	const char *required[] = { cfg->identity_claim, cfg->username_claim, NULL };
	struct entra_jwt_expect expect = {
		.issuer = oidc->metadata.issuer,
		.audience = cfg->client_id,
		.tenant_id = entra_is_guid(cfg->tenant) ? cfg->tenant : NULL,
		.required_claims = required,
		.now = time(NULL),
		.clock_skew = cfg->clock_skew,
	};
	enum entra_jwt_status st;
	int rc;

	st = entra_jwt_verify(id_token, &oidc->jwks, &expect, claims, reason, reason_len);
	if (st != ENTRA_JWT_UNKNOWN_KID)
		return st;
	rc = entra_oidc_refresh_jwks(oidc, http, log, time(NULL));
	if (rc < 0) {
		entra_log(log, LOG_WARNING, "unknown signing key and no JWKS refetch possible: %s",
			  rc == -EAGAIN ? "refetched less than 5 minutes ago" : strerror(-rc));
		return st;
	}
	expect.now = time(NULL);
	return entra_jwt_verify(id_token, &oidc->jwks, &expect, claims, reason, reason_len);
}

/* The authentication context this PAM service requires ("sudo:c2" in
 * auth_context gives "c2" for sudo), or NULL. */
static const char *required_auth_context(const struct entra_config *cfg, const char *service)
{
	size_t len = service ? strlen(service) : 0;

	for (size_t i = 0; len > 0 && i < cfg->auth_context.count; i++) {
		const char *entry = cfg->auth_context.items[i];
		if (strncmp(entry, service, len) == 0 && entry[len] == ':')
			return entry + len + 1;
	}
	return NULL;
}

/* Merge src's members into dst, recursively for objects (src wins); src
 * comes from entra_json_parse_object, so the depth is bounded. */
static void merge_objects(struct json_object *dst, struct json_object *src) /* NOLINT(misc-no-recursion) */
{
	json_object_object_foreach(src, key, value) {
		struct json_object *mine;
		if (json_object_is_type(value, json_type_object) &&
		    json_object_object_get_ex(dst, key, &mine) &&
		    json_object_is_type(mine, json_type_object))
			merge_objects(mine, value);
		else
			json_object_object_add(dst, key, json_object_get(value));
	}
}

/* The claims request: the service's authentication context, the client
 * capabilities, and a challenge's claims merged over them. NULL when
 * there is nothing to ask for; "" (not NULL) is never returned. */
static char *build_claims(const struct entra_config *cfg, const char *service,
			  const char *challenge)
{
	const char *acr = required_auth_context(cfg, service);
	struct json_object *root = json_object_new_object(), *at = json_object_new_object();
	char *out = NULL;

	if (root == NULL || at == NULL)
		goto done;
	if (acr != NULL) {
		struct json_object *acrs = json_object_new_object();
		json_object_object_add(acrs, "essential", json_object_new_boolean(1));
		json_object_object_add(acrs, "value", json_object_new_string(acr));
		json_object_object_add(at, "acrs", acrs);
	}
	if (cfg->client_capabilities.count > 0) {
		struct json_object *cc = json_object_new_object(), *values = json_object_new_array();
		for (size_t i = 0; i < cfg->client_capabilities.count; i++)
			json_object_array_add(values, json_object_new_string(cfg->client_capabilities.items[i]));
		json_object_object_add(cc, "values", values);
		json_object_object_add(at, "xms_cc", cc);
	}
	if (json_object_object_length(at) > 0) {
		json_object_object_add(root, "access_token", at);
		at = NULL;
	}
	if (challenge != NULL) {
		struct json_object *extra = entra_json_parse_object(challenge, strlen(challenge));
		if (extra != NULL) {
			merge_objects(root, extra);
			json_object_put(extra);
		}
	}
	if (json_object_object_length(root) > 0)
		out = strdup(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN |
							    JSON_C_TO_STRING_NOSLASHESCAPE));
done:
	json_object_put(at);
	json_object_put(root);
	return out;
}

struct login_ctx {
	const struct entra_config *cfg;
	const char *user;
	const char *service;
	const char *host_name;
	const struct entra_device_hooks *hooks;
	const struct entra_log *log;
	struct entra_http *http;
	struct entra_oidc *oidc;
	int64_t deadline;
};

/* A round's end: a status, or a claims challenge for one more round. */
enum round_end {
	ROUND_DONE,
	ROUND_CHALLENGE,
};

static enum entra_login_status device_status(const struct login_ctx *ctx, enum entra_device_result dr,
					     const struct entra_oauth_error *err,
					     struct entra_login_result *result)
{
	char why[512];

	switch (dr) {
	case ENTRA_DEVICE_OK:
		return ENTRA_LOGIN_OK;
	case ENTRA_DEVICE_NO_CONVERSATION:
		set_message(result, MSG_NO_CONVERSATION);
		entra_log(ctx->log, LOG_NOTICE, "login for %s failed: no conversation to show a code", ctx->user);
		return ENTRA_LOGIN_NO_CONVERSATION;
	case ENTRA_DEVICE_IDP_ERROR:
		set_message(result, entra_oauth_error_message(err));
		entra_oauth_error_log_reason(err, why, sizeof(why));
		entra_log(ctx->log, LOG_NOTICE, "login for %s refused by the identity provider: %s", ctx->user, why);
		return ENTRA_LOGIN_DENIED;
	case ENTRA_DEVICE_TIMED_OUT:
		set_message(result, MSG_TIMED_OUT);
		entra_log(ctx->log, LOG_NOTICE, "login for %s failed: the sign-in was not completed in time", ctx->user);
		return ENTRA_LOGIN_TIMED_OUT;
	case ENTRA_DEVICE_UNAVAILABLE:
		break;
	}
	set_message(result, MSG_UNAVAILABLE);
	entra_log(ctx->log, LOG_NOTICE, "login for %s failed: identity provider unavailable", ctx->user);
	return ENTRA_LOGIN_UNAVAILABLE;
}

/* MFA and authentication context, read from the verified ARM token. */
static enum entra_login_status check_access_token(const struct login_ctx *ctx,
						  struct entra_login_result *result)
{
	const char *acr = required_auth_context(ctx->cfg, ctx->service);
	struct entra_rbac_token_expect expect = {
		.tenant_id = result->identity.tenant_id,
		.audience = ctx->cfg->arm_audience,
		.oid = result->identity.object_id,
		.require_mfa = ctx->cfg->require_mfa,
		.required_acrs = acr,
		.now = time(NULL),
		.clock_skew = ctx->cfg->clock_skew,
	};
	enum entra_rbac_token_result r;
	enum entra_jwt_status jst = ENTRA_JWT_OK;
	char reason[256] = "";

	if (!ctx->cfg->require_mfa && acr == NULL)
		return ENTRA_LOGIN_OK;
	r = entra_rbac_check_access_token_claims(result->tokens.access_token, &ctx->oidc->jwks, &expect,
						 &jst, NULL, reason, sizeof(reason));
	switch (r) {
	case ENTRA_RBAC_TOKEN_OK:
		return ENTRA_LOGIN_OK;
	case ENTRA_RBAC_TOKEN_NO_MFA:
		set_message(result, MSG_NO_MFA);
		break;
	case ENTRA_RBAC_TOKEN_NO_ACRS:
		set_message(result, MSG_NO_ACRS);
		break;
	default:
		set_message(result, MSG_NOT_VERIFIED);
		break;
	}
	entra_log(ctx->log, LOG_WARNING, "login for %s (%s) via %s refused: access token: %s", ctx->user,
		  result->identity.object_id, ctx->service ? ctx->service : "-", reason);
	return ENTRA_LOGIN_DENIED;
}

/* The person's permissions at rbac_scope, from the decision cache or ARM. */
static enum round_end check_rbac(const struct login_ctx *ctx, struct entra_login_result *result,
				 enum entra_login_status *status, char **challenge)
{
	const struct entra_config *cfg = ctx->cfg;
	const char *const *login_actions = (const char *const *)cfg->rbac_login_actions.items;
	const char *const *admin_actions = (const char *const *)cfg->rbac_admin_actions.items;
	struct entra_rbac_request req = {
		.arm_url = cfg->arm_url,
		.scope = cfg->rbac_scope,
		.access_token = result->tokens.access_token,
	};
	struct entra_rbac_permissions perms = { NULL, 0 };
	enum entra_rbac_result r;
	char binding[65], reason[256] = "", *claims = NULL;
	int64_t now = (int64_t)time(NULL);
	bool have_binding;

	*status = ENTRA_LOGIN_OK;
	if (cfg->rbac_scope == NULL)
		return ROUND_DONE;
	result->rbac_checked = true;
	have_binding = entra_rbac_cache_binding(cfg->arm_url, cfg->rbac_scope, login_actions,
						admin_actions, binding) == 0;
	if (have_binding && cfg->rbac_cache_ttl > 0 &&
	    entra_rbac_cache_load(cfg->cache_dir, result->identity.object_id, binding, now,
				  &result->rbac) == 0) {
		entra_log(ctx->log, LOG_INFO, "login for %s: Azure RBAC decision from the cache: %s",
			  ctx->user, result->rbac.reason);
		return ROUND_DONE;
	}
	r = entra_rbac_fetch_permissions(ctx->http, &req, &perms, &claims, reason, sizeof(reason));
	switch (r) {
	case ENTRA_RBAC_OK:
		entra_rbac_decide(&perms, login_actions, admin_actions, &result->rbac);
		break;
	case ENTRA_RBAC_FORBIDDEN:
		result->rbac.login_allowed = false;
		result->rbac.admin = false;
		snprintf(result->rbac.reason, sizeof(result->rbac.reason),
			 "ARM denies reading permissions at %s (no role assignment there)", cfg->rbac_scope);
		break;
	case ENTRA_RBAC_CHALLENGE:
		entra_log(ctx->log, LOG_NOTICE, "login for %s: ARM asks for more claims: %s", ctx->user, reason);
		*challenge = claims;
		entra_rbac_permissions_free(&perms);
		return ROUND_CHALLENGE;
	default:
		entra_log(ctx->log, LOG_ERR, "login for %s refused: Azure RBAC check at %s failed: %s: %s",
			  ctx->user, cfg->rbac_scope, entra_rbac_result_str(r), reason);
		set_message(result, MSG_ARM_UNAVAILABLE);
		*status = ENTRA_LOGIN_UNAVAILABLE;
		free(claims);
		entra_rbac_permissions_free(&perms);
		return ROUND_DONE;
	}
	free(claims);
	entra_rbac_permissions_free(&perms);
	entra_log(ctx->log, LOG_INFO, "login for %s: Azure RBAC at %s: %s", ctx->user, cfg->rbac_scope,
		  result->rbac.reason);
	if (have_binding && cfg->rbac_cache_ttl > 0 &&
	    entra_rbac_cache_store(cfg->cache_dir, result->identity.object_id, binding, &result->rbac,
				   now, cfg->rbac_cache_ttl) < 0)
		entra_log(ctx->log, LOG_WARNING, "login for %s: cannot cache the Azure RBAC decision", ctx->user);
	return ROUND_DONE;
}

/* One device-code round with the given claims request. */
static enum round_end run_round(const struct login_ctx *ctx, const char *claims,
				struct entra_login_result *result, enum entra_login_status *status,
				char **challenge)
{
	const struct entra_config *cfg = ctx->cfg;
	struct entra_oauth_error err;
	struct json_object *id_claims = NULL;
	enum entra_device_result dr;
	enum entra_jwt_status st;
	enum round_end end = ROUND_DONE;
	char reason[256] = "", *scope = build_scope(cfg);

	memset(&err, 0, sizeof(err));
	*status = ENTRA_LOGIN_UNAVAILABLE;
	set_message(result, MSG_UNAVAILABLE);
	if (scope == NULL)
		goto out;
	dr = entra_device_flow_run(ctx->http, &ctx->oidc->metadata, cfg->client_id, scope, claims,
				   ctx->host_name, ctx->user, cfg->qr_code, ctx->deadline, ctx->hooks,
				   ctx->log, &result->tokens, &err);
	*status = device_status(ctx, dr, &err, result);
	if (*status != ENTRA_LOGIN_OK) {
		/* Conditional access that another sign-in can satisfy names
		 * the claims it wants: one more round asks for them. A block
		 * marked message_only cannot be satisfied: no second code. */
		if (dr == ENTRA_DEVICE_IDP_ERROR && err.claims != NULL && err.claims[0] != '\0' &&
		    (err.suberror == NULL || strcmp(err.suberror, "message_only") != 0)) {
			*challenge = strdup(err.claims);
			end = *challenge != NULL ? ROUND_CHALLENGE : ROUND_DONE;
		}
		goto out;
	}

	*status = ENTRA_LOGIN_DENIED;
	set_message(result, MSG_NOT_VERIFIED);
	if (result->tokens.id_token == NULL) {
		entra_log(ctx->log, LOG_ERR, "login for %s refused: the token response has no id_token "
			  "(is 'openid' allowed for this client?)", ctx->user);
		goto out;
	}
	st = verify_id_token(cfg, ctx->oidc, ctx->http, ctx->log, result->tokens.id_token, &id_claims,
			     reason, sizeof(reason));
	if (st != ENTRA_JWT_OK) {
		entra_log(ctx->log, LOG_ERR, "login for %s refused: id_token %s: %s", ctx->user,
			  entra_jwt_status_str(st), reason);
		goto out;
	}
	if (entra_identity_from_claims(id_claims, cfg, &result->identity, reason, sizeof(reason)) < 0) {
		entra_log(ctx->log, LOG_ERR, "login for %s refused: %s", ctx->user, reason);
		goto out;
	}
	if (!entra_identity_matches_account(cfg, &result->identity, ctx->user, reason, sizeof(reason))) {
		entra_log(ctx->log, LOG_WARNING, "login for %s refused: %s (object id %s)", ctx->user, reason,
			  result->identity.object_id);
		snprintf(result->message, sizeof(result->message),
			 "You signed in as %s, which may not log in as %s. Start again and sign in with the right account.",
			 result->identity.username, ctx->user);
		goto out;
	}
	*status = check_access_token(ctx, result);
	if (*status != ENTRA_LOGIN_OK)
		goto out;
	end = check_rbac(ctx, result, status, challenge);
	if (end == ROUND_CHALLENGE || *status != ENTRA_LOGIN_OK)
		goto out;
	entra_log(ctx->log, LOG_NOTICE, "login for %s: signed in as %s (object id %s, tenant %s)", ctx->user,
		  result->identity.username, result->identity.object_id,
		  result->identity.tenant_id ? result->identity.tenant_id : "-");
	result->message[0] = '\0';
out:
	if (id_claims != NULL)
		json_object_put(id_claims);
	entra_oauth_error_free(&err);
	free(scope);
	return end;
}

enum entra_login_status entra_login_authenticate(const struct entra_config *cfg, const char *user,
						 const char *service, const char *host_name,
						 const struct entra_device_hooks *hooks,
						 const struct entra_log *log,
						 struct entra_login_result *result)
{
	struct entra_http_options http_opt = {
		.ca_file = cfg->ca_file,
		.timeout_ms = (long)cfg->http_timeout * 1000,
		.proxy = cfg->https_proxy,
	};
	struct entra_oidc oidc;
	struct login_ctx ctx = {
		.cfg = cfg, .user = user, .service = service, .host_name = host_name,
		.hooks = hooks, .log = log, .oidc = &oidc,
	};
	enum entra_login_status status = ENTRA_LOGIN_UNAVAILABLE;
	char *challenge = NULL, *claims = NULL;
	int rc;

	memset(result, 0, sizeof(*result));
	memset(&oidc, 0, sizeof(oidc));
	if (entra_classify_account(cfg, user, -1, NULL) != ENTRA_ACCOUNT_ENTRA)
		return ENTRA_LOGIN_NOT_OURS;

	set_message(result, MSG_UNAVAILABLE);
	ctx.deadline = entra_monotonic_ms() + (int64_t)cfg->login_timeout * 1000;
	ctx.http = entra_http_new(&http_opt, log);
	if (ctx.http == NULL || entra_oidc_init(&oidc, cfg->authority, cfg->tenant, cfg->cache_dir) < 0) {
		entra_log(log, LOG_ERR, "login for %s: out of memory", user);
		goto out;
	}
	entra_http_set_deadline(ctx.http, ctx.deadline);
	rc = entra_oidc_load(&oidc, ctx.http, log, time(NULL));
	if (rc < 0) {
		entra_log(log, LOG_ERR, "login for %s: no OpenID metadata for tenant %s: %s",
			  user, cfg->tenant, strerror(-rc));
		goto out;
	}
	/* At most two rounds: the second asks for what a claims challenge
	 * of the first named; a second challenge is a denial. */
	for (int round = 0; round < 2; round++) {
		free(claims);
		claims = build_claims(cfg, service, challenge);
		free(challenge);
		challenge = NULL;
		if (run_round(&ctx, claims, result, &status, &challenge) != ROUND_CHALLENGE)
			break;
		if (round == 1) {
			entra_log(log, LOG_WARNING, "login for %s refused: the claims challenge was not satisfied by a second sign-in", user);
			status = ENTRA_LOGIN_DENIED;
			set_message(result, MSG_NO_ACRS);
			break;
		}
		entra_log(log, LOG_NOTICE, "login for %s: claims challenge, asking for a new sign-in", user);
		entra_login_result_free(result);
		memset(result, 0, sizeof(*result));
		if (hooks != NULL && hooks->info != NULL)
			hooks->info(hooks->host, MSG_CHALLENGE);
	}
out:
	free(claims);
	free(challenge);
	entra_oidc_free(&oidc);
	entra_http_free(ctx.http);
	if (status != ENTRA_LOGIN_OK)
		entra_login_result_free(result);
	return status;
}

static bool reuse_applies(const struct entra_config *cfg, const char *service, const char *session_id)
{
	return cfg->sudo_reuse_window > 0 && service != NULL && session_id != NULL &&
	       (strcmp(service, "sudo") == 0 || strcmp(service, "sudo-i") == 0);
}

/* The user database must bind user to the session's uid and person: an id
 * copied from another user's session, or a name re-bound since, fails. */
static int reuse_check_account(const struct entra_config *cfg, const char *user,
			       const struct entra_session_record *rec, char *why, size_t why_len)
{
	struct entra_userdb *db = NULL;
	struct entra_userdb_user u;
	char reason[256] = "";
	int rc;

	rc = entra_userdb_open(cfg->db_dir, &db, reason, sizeof(reason));
	if (rc < 0) {
		snprintf(why, why_len, "user database: %s", reason[0] ? reason : strerror(-rc));
		return rc;
	}
	rc = entra_userdb_find_name(db, user, &u);
	if (rc < 0 || u.synthetic) {
		snprintf(why, why_len, "%s is not in the user database", user);
		rc = -EPERM;
	} else if (u.uid != rec->uid || strcmp(u.object_id, rec->object_id) != 0) {
		snprintf(why, why_len, "the session is uid %lu's (object id %s), not %s's",
			 (unsigned long)rec->uid, rec->object_id, user);
		rc = -EPERM;
	}
	entra_userdb_close(db);
	return rc;
}

/* The stored access token, verified now: signature with the tenant's keys
 * (disk cache; fetched only when the cache is stale), times, audience,
 * the same person, MFA and the service's authentication context. */
static int reuse_check_token(const struct entra_config *cfg, const char *service,
			     const struct entra_session_record *rec, const struct entra_log *log,
			     time_t *expires_on, char *why, size_t why_len)
{
	struct entra_http_options http_opt = {
		.ca_file = cfg->ca_file,
		.timeout_ms = (long)cfg->http_timeout * 1000,
		.proxy = cfg->https_proxy,
	};
	struct entra_rbac_token_expect expect = {
		.tenant_id = rec->tenant_id,
		.audience = cfg->arm_audience,
		.oid = rec->object_id,
		.require_mfa = cfg->require_mfa,
		.required_acrs = required_auth_context(cfg, service),
		.now = time(NULL),
		.clock_skew = cfg->clock_skew,
	};
	enum entra_jwt_status jst = ENTRA_JWT_OK;
	enum entra_rbac_token_result r;
	struct json_object *claims = NULL;
	struct entra_http *http;
	struct entra_oidc oidc;
	char reason[256] = "";
	int64_t exp = 0;
	int rc;

	if (rec->tenant_id == NULL || !entra_is_guid(rec->tenant_id) ||
	    (entra_is_guid(cfg->tenant) && !entra_streq_nocase(cfg->tenant, rec->tenant_id))) {
		snprintf(why, why_len, "the session's tenant is not the configured one");
		return -EPERM;
	}
	memset(&oidc, 0, sizeof(oidc));
	http = entra_http_new(&http_opt, log);
	if (http == NULL || entra_oidc_init(&oidc, cfg->authority, cfg->tenant, cfg->cache_dir) < 0) {
		entra_http_free(http);
		snprintf(why, why_len, "out of memory");
		return -ENOMEM;
	}
	entra_http_set_deadline(http, entra_monotonic_ms() + (int64_t)cfg->http_timeout * 1000);
	rc = entra_oidc_load(&oidc, http, log, time(NULL));
	if (rc < 0) {
		snprintf(why, why_len, "no signing keys for tenant %s: %s", cfg->tenant, strerror(-rc));
		goto out;
	}
	r = entra_rbac_check_access_token_claims(rec->access_token, &oidc.jwks, &expect, &jst, &claims,
						 reason, sizeof(reason));
	if (r != ENTRA_RBAC_TOKEN_OK) {
		snprintf(why, why_len, "the session's access token does not qualify: %s", reason);
		rc = -EPERM;
		goto out;
	}
	if (entra_json_get_int64(claims, "exp", &exp) < 0) {
		snprintf(why, why_len, "the session's access token has no expiry");
		rc = -EPERM;
		goto out;
	}
	*expires_on = (time_t)exp;
	rc = 0;
out:
	if (claims != NULL)
		json_object_put(claims);
	entra_oidc_free(&oidc);
	entra_http_free(http);
	return rc;
}

int entra_login_reuse(const struct entra_config *cfg, const char *user, const char *service,
		      const char *session_id, const struct entra_log *log,
		      struct entra_login_result *result, bool *admin)
{
	struct entra_session_record rec;
	char why[384] = "";
	time_t now = time(NULL), expires_on = 0;
	int rc;

	memset(result, 0, sizeof(*result));
	*admin = false;
	if (!reuse_applies(cfg, service, session_id))
		return -ENOENT;
	if (!entra_session_id_is_valid(session_id)) {
		entra_log(log, LOG_INFO, "%s for %s: no reuse: ENTRA_SESSION_ID is not a session id", service, user);
		return -EINVAL;
	}
	rc = entra_session_read_record(cfg, session_id, &rec);
	if (rc < 0) {
		entra_log(log, LOG_INFO, "%s for %s: no reuse: session %s has no login to reuse: %s",
			  service, user, session_id, strerror(-rc));
		return rc;
	}
	rc = -EPERM;
	if (strcmp(rec.user, user) != 0)
		snprintf(why, sizeof(why), "the session is not %s's", user);
	else if (rec.login_time > now || now - rec.login_time > (time_t)cfg->sudo_reuse_window)
		snprintf(why, sizeof(why), "its login is %lld s old, older than sudo_reuse_window (%d s)",
			 (long long)(now - rec.login_time), cfg->sudo_reuse_window);
	else if (reuse_check_account(cfg, user, &rec, why, sizeof(why)) == 0 &&
		 reuse_check_token(cfg, service, &rec, log, &expires_on, why, sizeof(why)) == 0)
		rc = 0;
	if (rc == 0) {
		result->identity.tenant_id = strdup(rec.tenant_id);
		result->identity.object_id = strdup(rec.object_id);
		result->identity.username = strdup(rec.upn);
		result->tokens.access_token = strdup(rec.access_token);
		result->tokens.expires_on = expires_on;
		if (result->identity.tenant_id == NULL || result->identity.object_id == NULL ||
		    result->identity.username == NULL || result->tokens.access_token == NULL) {
			snprintf(why, sizeof(why), "out of memory");
			rc = -ENOMEM;
		} else if (!entra_identity_matches_account(cfg, &result->identity, user, why, sizeof(why))) {
			rc = -EPERM;
		}
	}
	if (rc < 0) {
		entra_log(log, LOG_INFO, "%s for %s: no reuse of session %s: %s", service, user, session_id, why);
		entra_login_result_free(result);
		memset(result, 0, sizeof(*result));
	} else {
		*admin = rec.admin;
		entra_log(log, LOG_NOTICE, "%s for %s: reused the login of session %s from %lld s ago (object id %s)",
			  service, user, session_id, (long long)(now - rec.login_time), rec.object_id);
	}
	entra_session_record_free(&rec);
	return rc;
}
