/* HTTP/1.1 over OpenSSL: TLS always verified (ca_file for tests, else the
 * system store read as OpenSSL's hashed directory, /etc/ssl/certs on
 * Debian; the TLS context is shared by the handles of a process while
 * that source is unchanged, see entra_http_tls_counts), https only
 * unless the caller allows plain http for a managed-identity endpoint (even then only to loopback or link-local
 * addresses, checked after resolution), redirects never followed, response size
 * capped, per-request timeout clipped to an overall deadline. One handle
 * is reused for the requests of one transaction; never share it between
 * threads.
 *
 * Proxies: only the one the options name. Proxy variables of the
 * environment are ignored: the PAM module runs in processes whose
 * environment the user controls (su, sudo), and a user-chosen proxy would
 * see where and when logins happen. A handle with allow_plain_http never
 * uses a proxy (IMDS and the other managed-identity endpoints must be
 * reached directly).
 * OpenSSL is initialised once per process and never cleaned up (the PAM
 * module lives in arbitrary host processes); nothing here raises SIGPIPE.
 * A handle keeps its connection for its next request to the same place;
 * a kept connection found closed before any byte of the answer is replaced
 * once and the request sent again, as libcurl does (a server that takes a
 * POST and closes without answering may so see it twice).
 * User agent: pam_entra/VERSION. */
#ifndef ENTRA_HTTP_H
#define ENTRA_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "log.h"

#define ENTRA_HTTP_MAX_BODY (1024 * 1024)

struct entra_http_options {
	const char *ca_file;     /* NULL: system trust store (hashed directory) */
	long timeout_ms;         /* per request (connect included); <= 0: 30 s */
	size_t max_body;         /* 0: ENTRA_HTTP_MAX_BODY */
	bool allow_plain_http;   /* for IMDS/Arc/App Service endpoints only */
	const char *proxy;       /* http://host[:port] (1080) for https requests, via
				  * CONNECT; NULL: none */
};

struct entra_http_response {
	long status;             /* HTTP status, 0 if none was received */
	struct entra_buf body;
	char content_type[128];  /* "" when absent; parameters stripped, lower case */
	long retry_after;        /* seconds from Retry-After (delta or HTTP-date, a
				  * past date gives 0, capped at 7 days), -1 when
				  * absent or unparsable */
	char *www_authenticate;  /* first WWW-Authenticate header (dropped when
				  * over 8 KiB), or NULL */
};

struct entra_http;

struct entra_http *entra_http_new(const struct entra_http_options *opt, const struct entra_log *log);
void entra_http_free(struct entra_http *http);

/* Monotonic deadline in ms (entra_monotonic_ms() clock); 0 = none. Each
 * request's timeout is clipped so that it ends by the deadline; a request
 * started after it fails at once with -ETIMEDOUT. */
void entra_http_set_deadline(struct entra_http *http, int64_t deadline_ms);
int64_t entra_monotonic_ms(void);

/* For tests and benchmarks: TLS contexts (trust store loaded) made by
 * this process (handles share the last one made while its trust source,
 * ca_file or the system's hashed directory, keeps its path and file
 * identity, for at most five minutes), and handshakes that resumed the
 * session kept for their host:port (made under the same context, from a
 * full handshake at most five minutes old). */
struct entra_http_tls_counts {
	unsigned long contexts_made;
	unsigned long resumed;
};
struct entra_http_tls_counts entra_http_tls_counts(void);

/* headers: NULL-terminated array of "Name: value" strings (a token name
 * directly followed by ':', no control characters, at most 64 KiB each;
 * Host, Content-Length, Transfer-Encoding and Connection are ours), or NULL.
 * 0 when a response was received (any status but 3xx: check resp->status),
 * or -ETIMEDOUT (timeout, deadline, or a peer too slow), -ECONNREFUSED /
 * -EHOSTUNREACH (connect; -EHOSTUNREACH also for a name that does not
 * resolve), -ECONNRESET (connection reset or closed mid-response),
 * -EPROTO (TLS failure such as an untrusted or wrong-name certificate,
 * protocol error, a non-https URL, or a 3xx redirect: never followed;
 * resp->status then holds the 3xx), -E2BIG (body over the cap), -EINVAL
 * (bad URL or header), -ENOMEM, -EIO (a local poll or socket failure). The reason is logged with the URL's host
 * and path only (never its query string). On failure resp->body is empty.
 * resp is initialised by these calls and must be freed with
 * entra_http_response_free whatever they return; that wipes the body. */
int entra_http_get(struct entra_http *http, const char *url, const char *const *headers,
		   struct entra_http_response *resp);
int entra_http_post_form(struct entra_http *http, const char *url, const char *form,
			 const char *const *headers, struct entra_http_response *resp);
void entra_http_response_free(struct entra_http_response *resp);

/* Append "&key=value" (no '&' when form is empty), URL-encoding both
 * (everything but RFC 3986 unreserved characters becomes %XX). 0, -EINVAL,
 * -E2BIG (form cap), -ENOMEM; on failure the form is unchanged. */
int entra_form_add(struct entra_buf *form, const char *key, const char *value);

/* URL-encode one query value; malloc'd or NULL. */
char *entra_url_escape(const char *s);

/* Does the content type mean JSON ("application/json", "...+json")? */
bool entra_http_is_json(const struct entra_http_response *resp);

#endif
