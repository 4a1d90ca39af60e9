/* A stand-in for lib/http.c in the fuzz targets: entra_http_get answers
 * from a script of canned responses the target fills from its input, so
 * that the whole public API of a network unit (oidc, msi, rbac) runs on
 * fuzzed bodies with no socket. Linked instead of http.c. */
#ifndef FUZZ_HTTP_STUB_H
#define FUZZ_HTTP_STUB_H

#include <stddef.h>
#include <stdint.h>

#include "http.h"

#define STUB_MAX 8

struct stub_response {
	int rc;                  /* what entra_http_get returns (0 or -errno) */
	long status;
	const char *body;        /* borrowed */
	size_t len;
	long retry_after;
	const char *www_authenticate;
	const char *content_type;
};

struct stub_script {
	struct stub_response r[STUB_MAX];
	size_t count, next;      /* past the end: -ECONNREFUSED */
	unsigned requests;
	char last_url[4096];
};

extern struct stub_script stub;

/* A non-NULL handle to pass where an entra_http is needed. */
struct entra_http *stub_http(void);
void stub_reset(void);
void stub_add(int rc, long status, const char *body, size_t len);

#endif
