/* Managed-identity tokens: Azure VM IMDS, Azure ML compute, App Service,
 * Azure Arc. The source is named by the config or detected, as
 * azure-identity detects it, from an environment the CALLER passes in (the
 * PAM module passes a fixed one: the environment of a process calling PAM
 * is not trusted). Transient failures are retried with jittered
 * exponential backoff within a bounded total time. Tokens are shared
 * between processes through a root-only cache, one file per (source,
 * endpoint, identity, resource), with a per-key file lock so that
 * concurrent cold requests make one request to the endpoint.
 *
 * Plain http: the four endpoints are plain http by design. A URL is used
 * only if it is https, or http to a loopback host (127.0.0.0/8, [::1],
 * localhost) or to 169.254.169.254; anything else is refused before any
 * byte is sent, because the App Service and Azure ML secrets travel in
 * headers. The caller's entra_http handle must have allow_plain_http set
 * for these sources. */
#ifndef ENTRA_MSI_H
#define ENTRA_MSI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h" /* enum entra_msi_source */
#include "http.h"
#include "log.h"

#define ENTRA_MSI_IMDS_HOST "http://169.254.169.254"
#define ENTRA_MSI_IMDS_PATH "/metadata/identity/oauth2/token"
/* Where the Arc agent puts its challenge keys; fixed at compile time. */
#define ENTRA_MSI_ARC_TOKEN_DIR "/var/opt/azcmagent/tokens"
#define ENTRA_MSI_ARC_KEY_MAX 4096
#define ENTRA_MSI_DEFAULT_TOTAL_MS 20000L
#define ENTRA_MSI_MAX_WAIT_MS 60000L     /* cap of one backoff or Retry-After wait */
#define ENTRA_MSI_REFRESH_MARGIN 300     /* refresh 5 minutes before expiry... */
#define ENTRA_MSI_HALF_LIFE_MIN 7200     /* ...or at half-life for tokens living >= 2 h */
#define ENTRA_MSI_MIN_VALIDITY 60        /* a token closer than this to expiry is not handed out */

/* Clock and sleep, replaceable by tests. Any NULL member uses the real one. */
struct entra_msi_hooks {
	int64_t (*monotonic_ms)(void *ctx);
	int64_t (*wall_s)(void *ctx);            /* epoch seconds */
	void (*sleep_ms)(void *ctx, int64_t ms); /* backoff waits */
	void *ctx;
};

struct entra_msi_request {
	/* ENTRA_MSI_AUTO detects the source from env (PROTOCOL.md §4f). A
	 * named source still reads its endpoint and secret from env. */
	enum entra_msi_source source;
	/* "NAME=value" strings, NULL-terminated; NULL is an empty environment
	 * (which means IMDS). Only the managed-identity variables are read. */
	const char *const *env;
	/* IMDS base URL (config imds_endpoint). NULL: the environment's
	 * AZURE_POD_IDENTITY_AUTHORITY_HOST, else ENTRA_MSI_IMDS_HOST. */
	const char *imds_host;
	/* At most one; all NULL = system-assigned identity. object_id and
	 * msi_res_id are IMDS/App Service only; Arc has no user-assigned
	 * identities. */
	const char *client_id;
	const char *object_id;
	const char *msi_res_id;
	/* A resource ("https://management.azure.com") or a single .default
	 * scope ("https://management.azure.com/.default"). */
	const char *resource;
	/* Parent of the shared cache (config cache_dir); the cache lives in
	 * cache_dir/msi/, 0700, owned by the effective uid. NULL: no cache. */
	const char *cache_dir;
	long total_ms;          /* budget for fetching (and waiting for the lock); 0: default */
	/* When the caller passes no http handle: one is made from these only
	 * if a request is needed, so that a warm cache costs no TLS set-up.
	 * NULL with no handle: every request fails (-EINVAL). */
	const struct entra_http_options *http_options;
	const struct entra_msi_hooks *hooks; /* NULL: real clock and sleep */
	/* TESTS ONLY: replaces ENTRA_MSI_ARC_TOKEN_DIR. The PAM module and the
	 * tools never set it. */
	const char *arc_token_dir_for_tests;
};

struct entra_msi_token {
	char *access_token;     /* secret: release with entra_msi_token_clear */
	int64_t expires_on;     /* epoch seconds */
	int64_t refresh_on;     /* epoch seconds: fetch a new one from then on */
	char *resource;         /* as returned, or as requested */
	char *token_type;       /* "Bearer" */
	/* tid and oid of the token when it is a JWT carrying them (plain ids:
	 * letters, digits, '-', '.', '_', at most 128), else NULL. Read without any
	 * verification: for describing a session, never for a decision.
	 * Kept in the cache so that a warm read decodes nothing. */
	char *tenant_id;
	char *object_id;
	enum entra_msi_source source;
	bool from_cache;
	char error[256];        /* on failure: a sentence for the admin (also logged) */
};

/* Get a token. 0 on success (out filled), otherwise -errno with out->error
 * set and logged:
 *   -ENOENT    no managed identity: no source in env, or the endpoint says
 *              the identity is not assigned
 *   -ENOTSUP   a source pam_entra does not speak (Service Fabric, Cloud
 *              Shell, workload identity), or a user-assigned id with Arc
 *   -EPERM     endpoint not allowed (plain http to a non-local host), or
 *              the Arc challenge names an unacceptable key file
 *   -EACCES    the endpoint refused the request (a final 4xx)
 *   -EPROTO    malformed response
 *   -ETIMEDOUT retries exhausted within total_ms (last reason in error)
 *   -EINVAL    bad request (no resource, two identity ids, bad chars)
 *   -ENOMEM
 * http is the caller's handle (allow_plain_http set), or NULL to have one
 * made from req->http_options when needed; its deadline is set to the end
 * of the budget. With cache_dir, a fresh cached token is
 * returned without a request; when a refresh fails, a cached token that is
 * still valid is returned (logged as a warning). */
int entra_msi_get_token(const struct entra_msi_request *req, struct entra_http *http,
			const struct entra_log *log, struct entra_msi_token *out);

void entra_msi_token_clear(struct entra_msi_token *tok);

/* The source req would use (never AUTO). 0, or -ENOENT (IDENTITY_ENDPOINT
 * without IDENTITY_HEADER or IMDS_ENDPOINT), -ENOTSUP (Service Fabric,
 * Cloud Shell, workload identity), -EINVAL (the named source's variables
 * are missing); err gets the reason. */
int entra_msi_detect(const struct entra_msi_request *req, enum entra_msi_source *out,
		     char *err, size_t errlen);

/* "X/.default" → "X"; a resource is copied as is. NULL for an empty
 * string, several scopes, whitespace or control characters. malloc'd. */
char *entra_msi_scope_to_resource(const char *scope);

/* expires_on as sent: epoch seconds (digits), or the legacy date string
 * "MM/DD/YYYY HH:MM:SS +HH:MM". 0 or -EINVAL. */
int entra_msi_parse_expires_on(const char *text, int64_t *out);

/* The name used in logs and cache keys: "imds", "azureml", "appservice", "arc". */
const char *entra_msi_source_name(enum entra_msi_source source);

#endif
