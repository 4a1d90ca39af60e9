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
#include "oidc.h"

#define MSG_UNAVAILABLE "Microsoft Entra ID cannot be reached to sign you in. Try again in a few minutes; if it keeps failing, tell your administrator (details are in the system log)."
#define MSG_NOT_VERIFIED "Your sign-in could not be verified, so this login was refused. Tell your administrator (details are in the system log)."
#define MSG_NO_CONVERSATION "This login needs an interactive terminal to show a sign-in code; use an interactive session (not BatchMode, sudo -n or a pipe)."
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

static enum entra_login_status device_result_status(enum entra_device_result dr,
						    const struct entra_oauth_error *err,
						    struct entra_login_result *result)
{
	switch (dr) {
	case ENTRA_DEVICE_OK:
		return ENTRA_LOGIN_OK;
	case ENTRA_DEVICE_NO_CONVERSATION:
		set_message(result, MSG_NO_CONVERSATION);
		return ENTRA_LOGIN_NO_CONVERSATION;
	case ENTRA_DEVICE_IDP_ERROR:
		set_message(result, entra_oauth_error_message(err));
		return ENTRA_LOGIN_DENIED;
	case ENTRA_DEVICE_TIMED_OUT:
		set_message(result, MSG_TIMED_OUT);
		return ENTRA_LOGIN_TIMED_OUT;
	case ENTRA_DEVICE_UNAVAILABLE:
		break;
	}
	set_message(result, MSG_UNAVAILABLE);
	return ENTRA_LOGIN_UNAVAILABLE;
}

enum entra_login_status entra_login_authenticate(const struct entra_config *cfg, const char *user,
						 const char *host_name,
						 const struct entra_device_hooks *hooks,
						 const struct entra_log *log,
						 struct entra_login_result *result)
{
	struct entra_http_options http_opt = {
		.ca_file = cfg->ca_file,
		.timeout_ms = (long)cfg->http_timeout * 1000,
	};
	struct entra_oauth_error err;
	struct entra_oidc oidc;
	struct entra_http *http = NULL;
	struct json_object *claims = NULL;
	enum entra_login_status status = ENTRA_LOGIN_UNAVAILABLE;
	enum entra_device_result dr;
	enum entra_jwt_status st;
	char reason[256] = "", *scope = NULL;
	int64_t deadline;
	int rc;

	memset(result, 0, sizeof(*result));
	memset(&err, 0, sizeof(err));
	memset(&oidc, 0, sizeof(oidc));
	if (entra_classify_account(cfg, user, -1, NULL) != ENTRA_ACCOUNT_ENTRA)
		return ENTRA_LOGIN_NOT_OURS;

	set_message(result, MSG_UNAVAILABLE);
	deadline = entra_monotonic_ms() + (int64_t)cfg->login_timeout * 1000;
	http = entra_http_new(&http_opt, log);
	scope = build_scope(cfg);
	if (http == NULL || scope == NULL ||
	    entra_oidc_init(&oidc, cfg->authority, cfg->tenant, cfg->cache_dir) < 0) {
		entra_log(log, LOG_ERR, "login for %s: out of memory", user);
		goto out;
	}
	entra_http_set_deadline(http, deadline);
	rc = entra_oidc_load(&oidc, http, log, time(NULL));
	if (rc < 0) {
		entra_log(log, LOG_ERR, "login for %s: no OpenID metadata for tenant %s: %s",
			  user, cfg->tenant, strerror(-rc));
		goto out;
	}

	dr = entra_device_flow_run(http, &oidc.metadata, cfg->client_id, scope, NULL, host_name, user,
				   cfg->qr_code, deadline, hooks, log, &result->tokens, &err);
	status = device_result_status(dr, &err, result);
	if (status != ENTRA_LOGIN_OK) {
		if (dr == ENTRA_DEVICE_IDP_ERROR) {
			char why[512];
			entra_oauth_error_log_reason(&err, why, sizeof(why));
			entra_log(log, LOG_NOTICE, "login for %s refused by the identity provider: %s", user, why);
		} else {
			entra_log(log, LOG_NOTICE, "login for %s failed: device flow %s", user,
				  entra_login_status_str(status));
		}
		goto out;
	}

	status = ENTRA_LOGIN_DENIED;
	set_message(result, MSG_NOT_VERIFIED);
	if (result->tokens.id_token == NULL) {
		entra_log(log, LOG_ERR, "login for %s refused: the token response has no id_token "
			  "(is 'openid' allowed for this client?)", user);
		goto out;
	}
	st = verify_id_token(cfg, &oidc, http, log, result->tokens.id_token, &claims,
			     reason, sizeof(reason));
	if (st != ENTRA_JWT_OK) {
		entra_log(log, LOG_ERR, "login for %s refused: id_token %s: %s", user,
			  entra_jwt_status_str(st), reason);
		goto out;
	}
	if (entra_identity_from_claims(claims, cfg, &result->identity, reason, sizeof(reason)) < 0) {
		entra_log(log, LOG_ERR, "login for %s refused: %s", user, reason);
		goto out;
	}
	if (!entra_identity_matches_account(cfg, &result->identity, user, reason, sizeof(reason))) {
		entra_log(log, LOG_WARNING, "login for %s refused: %s (object id %s)", user, reason,
			  result->identity.object_id);
		snprintf(result->message, sizeof(result->message),
			 "You signed in as %s, which may not log in as %s. Start again and sign in with the right account.",
			 result->identity.username, user);
		goto out;
	}
	entra_log(log, LOG_NOTICE, "login for %s: signed in as %s (object id %s, tenant %s)", user,
		  result->identity.username, result->identity.object_id,
		  result->identity.tenant_id ? result->identity.tenant_id : "-");
	result->message[0] = '\0';
	status = ENTRA_LOGIN_OK;
out:
	if (claims != NULL)
		json_object_put(claims);
	entra_oauth_error_free(&err);
	entra_oidc_free(&oidc);
	entra_http_free(http);
	free(scope);
	if (status != ENTRA_LOGIN_OK)
		entra_login_result_free(result);
	return status;
}
