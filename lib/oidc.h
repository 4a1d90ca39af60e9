/* OIDC discovery and JWKS, cached on disk in a root-only directory:
 * TTL 24 h, refetched on an unknown kid at most once per 5 minutes, the
 * last good copy kept (and used) when a fetch fails. */
#ifndef ENTRA_OIDC_H
#define ENTRA_OIDC_H

#include <stdbool.h>
#include <time.h>

#include "http.h"
#include "jwt.h"
#include "log.h"

#define ENTRA_OIDC_TTL (24 * 3600)
#define ENTRA_OIDC_REFETCH_INTERVAL (5 * 60)

struct entra_oidc_metadata {
	char *issuer;                        /* may hold "{tenantid}" */
	char *token_endpoint;
	char *device_authorization_endpoint;
	char *jwks_uri;
};

struct entra_oidc {
	char *discovery_url;   /* {authority}/{tenant}/v2.0/.well-known/openid-configuration */
	char *cache_dir;       /* NULL: no disk cache (tools run as non-root) */
	struct entra_oidc_metadata metadata;
	struct entra_jwks jwks;
	bool loaded;
	time_t loaded_at;        /* when metadata and jwks were loaded (load's now) */
	time_t jwks_attempt_at;  /* last JWKS refetch attempt by this process */
};

/* Prepare for authority/tenant; nothing is fetched yet. authority must be
 * an https URL (trailing slashes ignored); tenant a GUID, a domain name,
 * "common" or "organizations" ([A-Za-z0-9._-]); cache_dir absolute or
 * NULL. 0 or -errno (-EINVAL for any of these). */
int entra_oidc_init(struct entra_oidc *oidc, const char *authority, const char *tenant,
		    const char *cache_dir);
void entra_oidc_free(struct entra_oidc *oidc);

/* Make metadata and jwks available: from the disk cache when younger than
 * the TTL, else fetched (and cached); on a failed fetch (or an invalid new
 * document) a stale cached copy is used (logged at warning). The metadata
 * must hold an issuer, a token endpoint, a device authorization endpoint
 * and a jwks_uri, all https URLs. Their hosts may differ from the
 * authority's (non-Entra providers): they are trusted because discovery
 * is fetched from the authority over verified TLS and cached only in a
 * directory owned by the euid and writable by no one else.
 *
 * Cache files in cache_dir (created 0700 if missing; a directory not
 * owned by the euid or writable by group/others is not used, logged):
 * <h>.discovery.json, <h>.jwks.json, <h>.jwks-attempt, 0600, written
 * atomically, where <h> is the first 16 bytes, in hex, of the SHA-256 of
 * the discovery URL. Documents are stored as
 * {"fetched_at":<epoch>,"url":"<source>","body":"<document>"}.
 * A second call within the TTL of a successful one does nothing.
 * 0, or -errno when nothing usable exists (reason logged). */
int entra_oidc_load(struct entra_oidc *oidc, struct entra_http *http,
		    const struct entra_log *log, time_t now);

/* After ENTRA_JWT_UNKNOWN_KID: refetch the JWKS unless a refetch was
 * attempted less than ENTRA_OIDC_REFETCH_INTERVAL ago (remembered on disk
 * across processes, in memory without a cache_dir). Requires a successful
 * entra_oidc_load. 0 when a new set was fetched (and cached), -EAGAIN when
 * rate limited, other -errno on failure (old set kept). */
int entra_oidc_refresh_jwks(struct entra_oidc *oidc, struct entra_http *http,
			    const struct entra_log *log, time_t now);

#endif
