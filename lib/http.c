#include "config.h"
#include "http.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <curl/curl.h>

#define DEFAULT_TIMEOUT_MS 30000L
/* Secondary guard against a peer that dribbles bytes: below this many
 * bytes/s for this long the transfer is aborted. The overall timeout is
 * the real bound; this only catches slow peers under a long timeout. */
#define LOW_SPEED_LIMIT 16L
#define LOW_SPEED_TIME 30L
#define MAX_WWW_AUTHENTICATE 8192
#define MAX_URL_LEN 8192
/* PACKAGE_VERSION comes from autoconf's config.h, which lib/config.h (the
 * config unit) can shadow in lib/: degrade to the bare name then. */
#ifdef PACKAGE_VERSION
#define USER_AGENT "pam_entra/" PACKAGE_VERSION
#else
#define USER_AGENT "pam_entra"
#endif

struct entra_http {
	CURL *curl;
	char *ca_file;
	char *proxy;
	long timeout_ms;
	size_t max_body;
	bool allow_plain_http;
	const struct entra_log *log;
	int64_t deadline_ms;
	char errbuf[CURL_ERROR_SIZE];
};

/* State of one transfer, seen by the callbacks. */
struct transfer {
	struct entra_http_response *resp;
	int body_error; /* -E2BIG / -ENOMEM from the write callback */
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;

/* The PAM module lives in arbitrary host processes: initialise libcurl once
 * and never call curl_global_cleanup (another user of libcurl in the host,
 * or a later pam handle, may still need it). */
static void global_init(void)
{
	global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int64_t entra_monotonic_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct entra_http *entra_http_new(const struct entra_http_options *opt, const struct entra_log *log)
{
	struct entra_http *http;

	if (pthread_once(&global_once, global_init) != 0 || global_rc != CURLE_OK) {
		entra_log(log, LOG_ERR, "http: libcurl initialisation failed");
		return NULL;
	}
	http = calloc(1, sizeof(*http));
	if (http == NULL)
		return NULL;
	http->log = log;
	http->timeout_ms = DEFAULT_TIMEOUT_MS;
	http->max_body = ENTRA_HTTP_MAX_BODY;
	if (opt != NULL) {
		if (opt->timeout_ms > 0)
			http->timeout_ms = opt->timeout_ms;
		if (opt->max_body > 0)
			http->max_body = opt->max_body;
		http->allow_plain_http = opt->allow_plain_http;
		if (opt->ca_file != NULL) {
			http->ca_file = strdup(opt->ca_file);
			if (http->ca_file == NULL)
				goto fail;
		}
		if (opt->proxy != NULL) {
			http->proxy = strdup(opt->proxy);
			if (http->proxy == NULL)
				goto fail;
		}
	}
	http->curl = curl_easy_init();
	if (http->curl == NULL)
		goto fail;
	return http;
fail:
	entra_log(log, LOG_ERR, "http: out of memory creating a handle");
	free(http->ca_file);
	free(http->proxy);
	free(http);
	return NULL;
}

void entra_http_free(struct entra_http *http)
{
	if (http == NULL)
		return;
	if (http->curl != NULL)
		curl_easy_cleanup(http->curl);
	free(http->ca_file);
	free(http->proxy);
	free(http);
}

void entra_http_set_deadline(struct entra_http *http, int64_t deadline_ms)
{
	http->deadline_ms = deadline_ms;
}

static void response_init(struct entra_http_response *resp, size_t max)
{
	resp->status = 0;
	entra_buf_init(&resp->body, max);
	resp->content_type[0] = '\0';
	resp->retry_after = -1;
	resp->www_authenticate = NULL;
}

void entra_http_response_free(struct entra_http_response *resp)
{
	if (resp == NULL)
		return;
	/* Bodies carry tokens: entra_buf_free wipes them. */
	entra_buf_free(&resp->body);
	free(resp->www_authenticate);
	resp->www_authenticate = NULL;
	resp->content_type[0] = '\0';
}

/* Forget the headers of an earlier response in the same transfer (a 1xx
 * interim response). */
static void response_reset_headers(struct entra_http_response *resp)
{
	resp->content_type[0] = '\0';
	resp->retry_after = -1;
	free(resp->www_authenticate);
	resp->www_authenticate = NULL;
}

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct transfer *t = userdata;
	size_t n = size * nmemb;
	int rc;

	rc = entra_buf_append(&t->resp->body, ptr, n);
	if (rc < 0) {
		t->body_error = rc;
		return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
	}
	return n;
}

static bool header_is(const char *line, size_t len, const char *name, const char **value,
		      size_t *value_len)
{
	size_t nlen = strlen(name);

	if (len <= nlen || strncasecmp(line, name, nlen) != 0 || line[nlen] != ':')
		return false;
	line += nlen + 1;
	len -= nlen + 1;
	while (len > 0 && (*line == ' ' || *line == '\t')) {
		line++;
		len--;
	}
	while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == '\n' ||
			   line[len - 1] == ' ' || line[len - 1] == '\t'))
		len--;
	*value = line;
	*value_len = len;
	return true;
}

static void set_content_type(struct entra_http_response *resp, const char *v, size_t len)
{
	size_t i, n = 0;

	/* Media type only: "application/json; charset=utf-8" -> "application/json". */
	for (i = 0; i < len && v[i] != ';'; i++)
		;
	len = i;
	while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t'))
		len--;
	if (len >= sizeof(resp->content_type)) {
		resp->content_type[0] = '\0'; /* absurd: treat as absent */
		return;
	}
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)v[i];

		if (c < 0x21 || c > 0x7e) {
			resp->content_type[0] = '\0';
			return;
		}
		resp->content_type[n++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
	}
	resp->content_type[n] = '\0';
}

/* Retry-After: delta-seconds or an HTTP-date (RFC 9110 §10.2.3). */
static long parse_retry_after(const char *v, size_t len)
{
	char tmp[64];
	size_t i;

	if (len == 0 || len >= sizeof(tmp))
		return -1;
	memcpy(tmp, v, len);
	tmp[len] = '\0';
	for (i = 0; i < len && tmp[i] >= '0' && tmp[i] <= '9'; i++)
		;
	if (i == len) {
		char *end;
		long long n;

		errno = 0;
		n = strtoll(tmp, &end, 10);
		if (errno != 0 || *end != '\0')
			return -1;
		return n > 86400 * 7 ? 86400 * 7 : (long)n;
	} else {
		time_t when = curl_getdate(tmp, NULL);
		time_t now = time(NULL);

		if (when == (time_t)-1)
			return -1;
		if (when <= now)
			return 0;
		return when - now > 86400 * 7 ? 86400 * 7 : (long)(when - now);
	}
}

static size_t header_cb(char *line, size_t size, size_t nitems, void *userdata)
{
	struct transfer *t = userdata;
	struct entra_http_response *resp = t->resp;
	size_t len = size * nitems;
	const char *v;
	size_t vlen;

	if (len >= 5 && strncmp(line, "HTTP/", 5) == 0) {
		response_reset_headers(resp);
	} else if (header_is(line, len, "Content-Type", &v, &vlen)) {
		set_content_type(resp, v, vlen);
	} else if (header_is(line, len, "Retry-After", &v, &vlen)) {
		resp->retry_after = parse_retry_after(v, vlen);
	} else if (header_is(line, len, "WWW-Authenticate", &v, &vlen)) {
		/* First one only, bounded; an oversized one is dropped. */
		if (resp->www_authenticate == NULL && vlen <= MAX_WWW_AUTHENTICATE) {
			resp->www_authenticate = strndup(v, vlen);
			if (resp->www_authenticate == NULL) {
				t->body_error = -ENOMEM;
				return 0;
			}
		}
	}
	return len;
}

/* "host:port/path" of a URL for log lines: never the query string or the
 * user info, which may hold secrets. */
static void url_for_log(const char *url, char *out, size_t out_len)
{
	CURLU *u = curl_url();
	char *host = NULL, *port = NULL, *path = NULL;

	snprintf(out, out_len, "(unparsable URL)");
	if (u == NULL)
		return;
	if (curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
		curl_url_get(u, CURLUPART_PORT, &port, 0);
		curl_url_get(u, CURLUPART_PATH, &path, 0);
		snprintf(out, out_len, "%s%s%s%s", host, port ? ":" : "", port ? port : "",
			 path ? path : "");
	}
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_url_cleanup(u);
}

static bool has_prefix_nocase(const char *s, const char *prefix)
{
	return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

static bool url_is_sane(const char *url)
{
	size_t len = strnlen(url, MAX_URL_LEN + 1);

	if (len == 0 || len > MAX_URL_LEN)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)url[i];

		if (c <= 0x20 || c >= 0x7f)
			return false;
	}
	return true;
}

static bool header_is_sane(const char *h)
{
	size_t len = strnlen(h, MAX_URL_LEN + 1);

	if (len == 0 || len > MAX_URL_LEN || strchr(h, ':') == NULL)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)h[i] < 0x20 || h[i] == 0x7f)
			return false; /* no CR/LF header injection */
	return true;
}

static int map_curl_error(struct entra_http *http, CURLcode cc, const struct transfer *t)
{
	long os_errno = 0;

	switch (cc) {
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return -EHOSTUNREACH;
	case CURLE_COULDNT_CONNECT:
		curl_easy_getinfo(http->curl, CURLINFO_OS_ERRNO, &os_errno);
		if (os_errno == EHOSTUNREACH || os_errno == ENETUNREACH)
			return -EHOSTUNREACH;
		return -ECONNREFUSED;
	case CURLE_WRITE_ERROR:
		return t->body_error < 0 ? t->body_error : -EIO;
	case CURLE_FILESIZE_EXCEEDED:
		return -E2BIG;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	case CURLE_URL_MALFORMAT:
		return -EINVAL;
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
		return -ECONNRESET;
	default:
		/* TLS failures (untrusted CA, wrong name, handshake), refused
		 * protocol, malformed HTTP, and the rest. */
		return -EPROTO;
	}
}

static int setup_common(struct entra_http *http, const char *url, struct transfer *t,
			long timeout_ms, struct curl_slist *slist)
{
	CURL *c = http->curl;
	const char *protocols = http->allow_plain_http ? "http,https" : "https";
	CURLcode cc = CURLE_OK;

	/* Reset per request (keeps the connection, session and DNS caches),
	 * so nothing from a previous request (e.g. POST fields) leaks in. */
	curl_easy_reset(c);
#define SET(opt, val)                                             \
	do {                                                      \
		if (cc == CURLE_OK)                               \
			cc = curl_easy_setopt(c, opt, val);       \
	} while (0)
	SET(CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
	SET(CURLOPT_PROTOCOLS_STR, protocols);
	SET(CURLOPT_REDIR_PROTOCOLS_STR, protocols);
#else
	SET(CURLOPT_PROTOCOLS, http->allow_plain_http ? (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS)
						      : (long)CURLPROTO_HTTPS);
	SET(CURLOPT_REDIR_PROTOCOLS, http->allow_plain_http
					     ? (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS)
					     : (long)CURLPROTO_HTTPS);
	(void)protocols;
#endif
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_SSL_VERIFYPEER, 1L);
	SET(CURLOPT_SSL_VERIFYHOST, 2L);
	SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (http->ca_file != NULL)
		SET(CURLOPT_CAINFO, http->ca_file);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_TIMEOUT_MS, timeout_ms);
	SET(CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
	SET(CURLOPT_LOW_SPEED_LIMIT, LOW_SPEED_LIMIT);
	SET(CURLOPT_LOW_SPEED_TIME, LOW_SPEED_TIME);
	/* Only the configured proxy: "" makes libcurl ignore the
	 * environment's. Managed-identity endpoints (link-local IMDS,
	 * loopback) never go through one. */
	SET(CURLOPT_PROXY, http->proxy != NULL && !http->allow_plain_http ? http->proxy : "");
	SET(CURLOPT_USERAGENT, USER_AGENT);
	SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)http->max_body);
	SET(CURLOPT_WRITEFUNCTION, write_cb);
	SET(CURLOPT_WRITEDATA, t);
	SET(CURLOPT_HEADERFUNCTION, header_cb);
	SET(CURLOPT_HEADERDATA, t);
	SET(CURLOPT_ERRORBUFFER, http->errbuf);
	SET(CURLOPT_HTTPHEADER, slist);
#undef SET
	return cc == CURLE_OK ? 0 : (cc == CURLE_OUT_OF_MEMORY ? -ENOMEM : -EINVAL);
}

static int perform(struct entra_http *http, const char *method, const char *url,
		   const char *form, const char *const *headers,
		   struct entra_http_response *resp)
{
	struct transfer t = { resp, 0 };
	struct curl_slist *slist = NULL, *tmp;
	char where[512];
	long timeout_ms = http->timeout_ms;
	int64_t now;
	CURLcode cc;
	int rc;

	response_init(resp, http->max_body);
	http->errbuf[0] = '\0';
	if (url == NULL || !url_is_sane(url)) {
		entra_log(http->log, LOG_ERR, "http: %s refused: malformed URL", method);
		return -EINVAL;
	}
	url_for_log(url, where, sizeof(where));
	if (!has_prefix_nocase(url, "https://") &&
	    !(http->allow_plain_http && has_prefix_nocase(url, "http://"))) {
		entra_log(http->log, LOG_ERR, "http: %s %s refused: only https URLs are allowed",
			  method, where);
		return -EPROTO;
	}
	if (http->deadline_ms > 0) {
		now = entra_monotonic_ms();
		if (now >= http->deadline_ms) {
			entra_log(http->log, LOG_ERR, "http: %s %s not sent: deadline passed",
				  method, where);
			return -ETIMEDOUT;
		}
		if (http->deadline_ms - now < timeout_ms)
			timeout_ms = (long)(http->deadline_ms - now);
	}
	for (size_t i = 0; headers != NULL && headers[i] != NULL; i++) {
		if (!header_is_sane(headers[i])) {
			entra_log(http->log, LOG_ERR, "http: %s %s refused: malformed request header",
				  method, where);
			rc = -EINVAL;
			goto out;
		}
		tmp = curl_slist_append(slist, headers[i]);
		if (tmp == NULL) {
			rc = -ENOMEM;
			goto out;
		}
		slist = tmp;
	}
	/* No "Expect: 100-continue" round trip for form posts. */
	tmp = curl_slist_append(slist, "Expect:");
	if (tmp == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	slist = tmp;

	rc = setup_common(http, url, &t, timeout_ms, slist);
	if (rc == 0 && form != NULL) {
		/* POSTFIELDS does not copy: the form (it may hold a secret)
		 * stays in the caller's buffer, which the caller wipes. */
		if (curl_easy_setopt(http->curl, CURLOPT_POSTFIELDSIZE_LARGE,
				     (curl_off_t)strlen(form)) != CURLE_OK ||
		    curl_easy_setopt(http->curl, CURLOPT_POSTFIELDS, form) != CURLE_OK)
			rc = -EINVAL;
	}
	if (rc < 0) {
		entra_log(http->log, LOG_ERR, "http: %s %s: cannot set up the request", method,
			  where);
		goto out;
	}

	cc = curl_easy_perform(http->curl);
	curl_easy_getinfo(http->curl, CURLINFO_RESPONSE_CODE, &resp->status);
	if (cc != CURLE_OK) {
		rc = map_curl_error(http, cc, &t);
		if (rc == -E2BIG)
			entra_log(http->log, LOG_ERR,
				  "http: %s %s failed: response body larger than %zu bytes", method,
				  where, http->max_body);
		else
			entra_log(http->log, LOG_ERR, "http: %s %s failed: %s%s%s", method, where,
				  curl_easy_strerror(cc), http->errbuf[0] ? ": " : "",
				  http->errbuf);
		goto out;
	}
	if (t.body_error < 0) {
		rc = t.body_error;
		goto out;
	}
	if (resp->status >= 300 && resp->status < 400) {
		/* Redirects are never followed: a redirect from an identity
		 * endpoint is an error (status kept for the caller's log). */
		entra_log(http->log, LOG_ERR, "http: %s %s answered %ld (redirect), not followed",
			  method, where, resp->status);
		rc = -EPROTO;
		goto out;
	}
	rc = 0;
out:
	if (rc < 0) {
		/* A partial body is never handed out. */
		entra_buf_free(&resp->body);
	}
	/* The easy handle keeps a pointer to the header list until the next
	 * reset: clear it before freeing the list. */
	curl_easy_setopt(http->curl, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(http->curl, CURLOPT_POSTFIELDS, NULL);
	curl_slist_free_all(slist);
	return rc;
}

int entra_http_get(struct entra_http *http, const char *url, const char *const *headers,
		   struct entra_http_response *resp)
{
	if (http == NULL || resp == NULL) {
		if (resp != NULL)
			response_init(resp, 0);
		return -EINVAL;
	}
	return perform(http, "GET", url, NULL, headers, resp);
}

int entra_http_post_form(struct entra_http *http, const char *url, const char *form,
			 const char *const *headers, struct entra_http_response *resp)
{
	if (http == NULL || resp == NULL || form == NULL) {
		if (resp != NULL)
			response_init(resp, 0);
		return -EINVAL;
	}
	return perform(http, "POST", url, form, headers, resp);
}

static bool unreserved(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

static size_t escaped_len(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += unreserved((unsigned char)*s) ? 1 : 3;
	return n;
}

static char *escape_into(char *out, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (unreserved(c)) {
			*out++ = (char)c;
		} else {
			*out++ = '%';
			*out++ = hex[c >> 4];
			*out++ = hex[c & 15];
		}
	}
	return out;
}

char *entra_url_escape(const char *s)
{
	char *out, *end;

	if (s == NULL)
		return NULL;
	out = malloc(escaped_len(s) + 1);
	if (out == NULL)
		return NULL;
	end = escape_into(out, s);
	*end = '\0';
	return out;
}

int entra_form_add(struct entra_buf *form, const char *key, const char *value)
{
	size_t klen, vlen, total;
	char *tmp, *p;
	int rc;

	if (form == NULL || key == NULL || value == NULL || *key == '\0')
		return -EINVAL;
	klen = escaped_len(key);
	vlen = escaped_len(value);
	if (klen > SIZE_MAX / 4 || vlen > SIZE_MAX / 4)
		return -E2BIG;
	total = 1 + klen + 1 + vlen;
	/* One append, so that a failure leaves the form unchanged; the
	 * temporary copy may hold a secret and is wiped. */
	tmp = malloc(total + 1);
	if (tmp == NULL)
		return -ENOMEM;
	p = tmp;
	if (form->len > 0)
		*p++ = '&';
	p = escape_into(p, key);
	*p++ = '=';
	p = escape_into(p, value);
	*p = '\0';
	rc = entra_buf_append(form, tmp, (size_t)(p - tmp));
	entra_free_secret_n(tmp, total + 1);
	return rc;
}

bool entra_http_is_json(const struct entra_http_response *resp)
{
	size_t len;

	if (resp == NULL)
		return false;
	len = strlen(resp->content_type);
	if (strcmp(resp->content_type, "application/json") == 0)
		return true;
	return len > 5 && strcmp(resp->content_type + len - 5, "+json") == 0;
}
