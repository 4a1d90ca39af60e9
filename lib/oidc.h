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
};

/* Prepare for authority/tenant; nothing is fetched yet. 0 or -errno. */
int entra_oidc_init(struct entra_oidc *oidc, const char *authority, const char *tenant,
		    const char *cache_dir);
void entra_oidc_free(struct entra_oidc *oidc);

/* Make metadata and jwks available: from the disk cache when younger than
 * the TTL, else fetched (and cached); on a failed fetch a stale cached copy
 * is used (logged). The metadata must hold https endpoints (on the same
 * scheme as the discovery URL), a token endpoint, a device authorization
 * endpoint, a jwks_uri and an issuer. 0, or -errno when nothing usable
 * exists (reason logged). */
int entra_oidc_load(struct entra_oidc *oidc, struct entra_http *http,
		    const struct entra_log *log, time_t now);

/* After ENTRA_JWT_UNKNOWN_KID: refetch the JWKS unless a refetch was
 * attempted less than ENTRA_OIDC_REFETCH_INTERVAL ago (remembered on disk
 * across processes). 0 when a new set was fetched, -EAGAIN when rate
 * limited, other -errno on failure (old set kept). */
int entra_oidc_refresh_jwks(struct entra_oidc *oidc, struct entra_http *http,
			    const struct entra_log *log, time_t now);

#endif
