#include "config.h"
#include "fuzz_http_stub.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct stub_script stub;
static char handle_storage;

struct entra_http *stub_http(void)
{
	return (struct entra_http *)&handle_storage;
}

void stub_reset(void)
{
	memset(&stub, 0, sizeof(stub));
}

void stub_add(int rc, long status, const char *body, size_t len)
{
	if (stub.count < STUB_MAX) {
		stub.r[stub.count] = (struct stub_response){ rc, status, body, len, -1, NULL, NULL };
		stub.count++;
	}
}

int64_t entra_monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Units that make their own handle when they need one (msi) get the
 * scripted one; freeing it is a no-op. */
struct entra_http *entra_http_new(const struct entra_http_options *opt, const struct entra_log *log)
{
	(void)opt;
	(void)log;
	return stub_http();
}

void entra_http_free(struct entra_http *http)
{
	if (http != NULL && http != stub_http())
		abort();
}

void entra_http_set_deadline(struct entra_http *http, int64_t deadline_ms)
{
	(void)http;
	(void)deadline_ms;
}

void entra_http_response_free(struct entra_http_response *resp)
{
	if (resp == NULL)
		return;
	entra_buf_free(&resp->body);
	free(resp->www_authenticate);
	resp->www_authenticate = NULL;
	resp->content_type[0] = '\0';
}

int entra_http_get(struct entra_http *http, const char *url, const char *const *headers,
		   struct entra_http_response *resp)
{
	const struct stub_response *r;

	(void)headers;
	resp->status = 0;
	entra_buf_init(&resp->body, ENTRA_HTTP_MAX_BODY);
	resp->content_type[0] = '\0';
	resp->retry_after = -1;
	resp->www_authenticate = NULL;
	if (http != stub_http() || url == NULL)
		abort();
	/* Whatever the responses said, no request goes to a URL with a
	 * control character or space, or to anything but http(s). */
	for (const char *p = url; *p != '\0'; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f)
			abort();
	if (strncasecmp(url, "https://", 8) != 0 && strncasecmp(url, "http://", 7) != 0)
		abort();
	stub.requests++;
	snprintf(stub.last_url, sizeof(stub.last_url), "%s", url);
	if (stub.next >= stub.count)
		return -ECONNREFUSED;
	r = &stub.r[stub.next++];
	if (r->rc < 0)
		return r->rc;
	resp->status = r->status;
	resp->retry_after = r->retry_after;
	if (r->www_authenticate != NULL)
		resp->www_authenticate = strdup(r->www_authenticate);
	snprintf(resp->content_type, sizeof(resp->content_type), "%s",
		 r->content_type ? r->content_type : "application/json");
	/* As the real layer: a body over the cap is -E2BIG, never delivered. */
	if (entra_buf_append(&resp->body, r->body ? r->body : "", r->len) < 0) {
		entra_buf_free(&resp->body);
		return -E2BIG;
	}
	return 0;
}
