#include "config.h"
#include "oidc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/file.h>
#include <openssl/evp.h>
#include <json-c/json.h>

#include "fsutil.h"
#include "names.h"

#define MAX_URL 2048
#define JSON_DEPTH 16
/* A cache file is a JSON wrapper around a response body of at most
 * ENTRA_HTTP_MAX_BODY bytes; escaping may grow it. */
#define MAX_CACHE_FILE (8 * ENTRA_HTTP_MAX_BODY)
#define MAX_ATTEMPT_FILE 64
/* A cache entry stamped further in the future than this is not trusted
 * to be fresh (the clock was set back). */
#define FUTURE_SLACK 300

/* A cached or fetched document. */
struct doc {
	char *body;
	size_t len;
	time_t fetched_at;
	bool from_cache;  /* read back from our cache: it passed parse() before */
};

static void doc_free(struct doc *d)
{
	/* Not secret (public metadata and keys), but cheap to wipe anyway. */
	if (d->body != NULL)
		entra_free_secret_n(d->body, d->len + 1);
	d->body = NULL;
	d->len = 0;
	d->fetched_at = 0;
}

static void metadata_free(struct entra_oidc_metadata *m)
{
	free(m->issuer);
	free(m->token_endpoint);
	free(m->device_authorization_endpoint);
	free(m->jwks_uri);
	memset(m, 0, sizeof(*m));
}

/* Strict json-c parse of exactly one object, no NUL inside, bounded depth. */
static struct json_object *parse_object(const char *text, size_t len)
{
	struct json_tokener *tok;
	struct json_object *obj;

	if (text == NULL || len == 0 || strnlen(text, len) != len || len > INT32_MAX)
		return NULL;
	tok = json_tokener_new_ex(JSON_DEPTH);
	if (tok == NULL)
		return NULL;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	obj = json_tokener_parse_ex(tok, text, (int)len);
	if (obj != NULL && (json_tokener_get_error(tok) != json_tokener_success ||
			    json_tokener_get_parse_end(tok) != len ||
			    !json_object_is_type(obj, json_type_object))) {
		json_object_put(obj);
		obj = NULL;
	}
	json_tokener_free(tok);
	return obj;
}

static const char *get_string(struct json_object *obj, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* An absolute https URL with a host, printable ASCII only. */
static bool is_https_url(const char *s)
{
	const char *host;

	if (s == NULL || !entra_value_is_safe(s, MAX_URL) || strncasecmp(s, "https://", 8) != 0)
		return false;
	host = s + 8;
	if (*host == '\0' || *host == '/' || *host == '?' || *host == '#')
		return false;
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			return false;
	return true;
}

/* Trust assumption: the discovery document is fetched from the configured
 * authority over verified TLS (or read from a root-only cache of such a
 * fetch), so the endpoints it names are trusted even on other hosts, as
 * non-Entra providers require. They must still be https. */
static int metadata_parse(const char *body, size_t len, struct entra_oidc_metadata *out,
			  const struct entra_log *log)
{
	static const char *const keys[] = { "issuer", "token_endpoint",
					    "device_authorization_endpoint", "jwks_uri" };
	const char *vals[4];
	struct json_object *obj;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	obj = parse_object(body, len);
	if (obj == NULL) {
		entra_log(log, LOG_ERR, "oidc: discovery document is not a JSON object");
		return -EINVAL;
	}
	for (size_t i = 0; i < 4; i++) {
		vals[i] = get_string(obj, keys[i]);
		if (vals[i] == NULL) {
			entra_log(log, LOG_ERR, "oidc: discovery document lacks string \"%s\"",
				  keys[i]);
			rc = -EINVAL;
			goto out;
		}
		if (!is_https_url(vals[i])) {
			entra_log(log, LOG_ERR,
				  "oidc: discovery document \"%s\" is not an https URL", keys[i]);
			rc = -EINVAL;
			goto out;
		}
	}
	out->issuer = strdup(vals[0]);
	out->token_endpoint = strdup(vals[1]);
	out->device_authorization_endpoint = strdup(vals[2]);
	out->jwks_uri = strdup(vals[3]);
	if (!out->issuer || !out->token_endpoint || !out->device_authorization_endpoint ||
	    !out->jwks_uri) {
		metadata_free(out);
		rc = -ENOMEM;
	}
out:
	json_object_put(obj);
	return rc;
}

int entra_oidc_init(struct entra_oidc *oidc, const char *authority, const char *tenant,
		    const char *cache_dir)
{
	struct entra_buf url;
	size_t alen;
	int rc;

	memset(oidc, 0, sizeof(*oidc));
	if (authority == NULL || tenant == NULL || !is_https_url(authority))
		return -EINVAL;
	/* A tenant is a GUID, a domain name, or common/organizations. */
	if (*tenant == '\0' || strlen(tenant) > 256)
		return -EINVAL;
	for (const char *p = tenant; *p; p++) {
		char c = *p;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '.' || c == '_'))
			return -EINVAL;
	}
	if (strstr(tenant, "..") != NULL || tenant[0] == '.')
		return -EINVAL;
	if (cache_dir != NULL && cache_dir[0] != '/')
		return -EINVAL;
	alen = strlen(authority);
	while (alen > 8 && authority[alen - 1] == '/')
		alen--;
	entra_buf_init(&url, MAX_URL);
	rc = entra_buf_printf(&url, "%.*s/%s/v2.0/.well-known/openid-configuration", (int)alen,
			      authority, tenant);
	if (rc < 0) {
		entra_buf_free(&url);
		return rc == -E2BIG ? -EINVAL : rc;
	}
	oidc->discovery_url = entra_buf_steal(&url);
	if (oidc->discovery_url == NULL)
		return -ENOMEM;
	if (cache_dir != NULL) {
		oidc->cache_dir = strdup(cache_dir);
		if (oidc->cache_dir == NULL) {
			entra_oidc_free(oidc);
			return -ENOMEM;
		}
	}
	return 0;
}

void entra_oidc_free(struct entra_oidc *oidc)
{
	if (oidc == NULL)
		return;
	free(oidc->discovery_url);
	free(oidc->cache_dir);
	metadata_free(&oidc->metadata);
	if (oidc->loaded)
		entra_jwks_free(&oidc->jwks);
	memset(oidc, 0, sizeof(*oidc));
}

/* Cache file names: a hash of the discovery URL, so that several
 * authorities/tenants share one directory without clashing. */
static int cache_prefix(const struct entra_oidc *oidc, char out[33])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (EVP_Digest(oidc->discovery_url, strlen(oidc->discovery_url), md, &mdlen,
		       EVP_sha256(), NULL) != 1 || mdlen < 16)
		return -EIO;
	entra_hex_encode(md, 16, out);
	return 0;
}

/* The cache directory, created 0700 for the euid if missing; a directory
 * not owned by the euid or writable by others is refused (then we run
 * without a disk cache: fetching is always safe, trusting it is not). */
static int cache_open(const struct entra_oidc *oidc, const struct entra_log *log)
{
	int fd;

	if (oidc->cache_dir == NULL)
		return -ENOENT;
	fd = entra_dir_open_trusted(oidc->cache_dir, geteuid());
	if (fd == -ENOENT)
		fd = entra_dir_open_or_create(oidc->cache_dir, 0700, geteuid(), getegid());
	if (fd < 0)
		entra_log(log, LOG_WARNING,
			  "oidc: cache directory %s unusable (%s), not caching", oidc->cache_dir,
			  strerror(-fd));
	return fd;
}

/* Read <prefix><suffix>: {"fetched_at":N,"url":"...","body":"..."}. The
 * url must be the one asked for (guards against a hash-prefix clash and
 * a stale jwks_uri). */
static int cache_read(int dirfd, const char *prefix, const char *suffix, const char *url,
		      struct doc *out)
{
	char name[96];
	struct entra_buf buf;
	struct json_object *obj, *v;
	const char *body, *cached_url;
	int rc;

	memset(out, 0, sizeof(*out));
	snprintf(name, sizeof(name), "%s%s", prefix, suffix);
	rc = entra_read_file_trusted(dirfd, name, MAX_CACHE_FILE, geteuid(), &buf);
	if (rc < 0)
		return rc;
	obj = parse_object(buf.data, buf.len);
	entra_buf_free(&buf);
	if (obj == NULL)
		return -EINVAL;
	rc = -EINVAL;
	cached_url = get_string(obj, "url");
	body = get_string(obj, "body");
	if (cached_url == NULL || body == NULL || strcmp(cached_url, url) != 0 ||
	    !json_object_object_get_ex(obj, "fetched_at", &v) ||
	    !json_object_is_type(v, json_type_int))
		goto out;
	out->fetched_at = (time_t)json_object_get_int64(v);
	out->len = (size_t)json_object_get_string_len(json_object_object_get(obj, "body"));
	out->body = malloc(out->len + 1);
	if (out->body == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	memcpy(out->body, body, out->len);
	out->body[out->len] = '\0';
	out->from_cache = true;
	rc = 0;
out:
	json_object_put(obj);
	return rc;
}

static void cache_write(int dirfd, const char *prefix, const char *suffix, const char *url,
			const struct doc *d, const struct entra_log *log)
{
	char name[96];
	struct json_object *obj;
	const char *text;
	size_t len;
	int rc = -ENOMEM;

	snprintf(name, sizeof(name), "%s%s", prefix, suffix);
	obj = json_object_new_object();
	if (obj == NULL)
		goto out;
	if (json_object_object_add(obj, "fetched_at", json_object_new_int64(d->fetched_at)) ||
	    json_object_object_add(obj, "url", json_object_new_string(url)) ||
	    json_object_object_add(obj, "body", json_object_new_string_len(d->body, (int)d->len)))
		goto out;
	text = json_object_to_json_string_length(
		obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	if (text == NULL)
		goto out;
	rc = entra_write_file_atomic(dirfd, name, text, len, 0600, geteuid(), getegid());
out:
	json_object_put(obj);
	if (rc < 0)
		entra_log(log, LOG_WARNING, "oidc: cannot write cache file %s: %s", name,
			  strerror(-rc));
}

static bool doc_is_fresh(const struct doc *d, time_t now)
{
	return d->body != NULL && d->fetched_at <= now + FUTURE_SLACK &&
	       now - d->fetched_at < ENTRA_OIDC_TTL;
}

static int fetch(struct entra_http *http, const char *what, const char *url, time_t now,
		 struct doc *out, const struct entra_log *log)
{
	struct entra_http_response resp;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = entra_http_get(http, url, NULL, &resp);
	if (rc == 0 && resp.status != 200) {
		entra_log(log, LOG_ERR, "oidc: %s fetch answered HTTP %ld", what, resp.status);
		rc = -EPROTO;
	}
	if (rc == 0 && (resp.body.data == NULL || resp.body.len == 0)) {
		entra_log(log, LOG_ERR, "oidc: %s fetch returned an empty body", what);
		rc = -EPROTO;
	}
	if (rc == 0) {
		out->len = resp.body.len;
		out->body = entra_buf_steal(&resp.body);
		out->fetched_at = now;
		if (out->body == NULL)
			rc = -ENOMEM;
	}
	entra_http_response_free(&resp);
	return rc;
}

static int jwks_from_doc(const struct doc *d, struct entra_jwks *out, const struct entra_log *log)
{
	int rc;

	memset(out, 0, sizeof(*out));
	/* Keys are validated in full when they arrive; the cache only ever
	 * holds documents that passed, in a root-only directory. */
	rc = d->from_cache ? entra_jwks_parse_cached(d->body, d->len, out)
			   : entra_jwks_parse(d->body, d->len, out);
	if (rc < 0)
		entra_log(log, LOG_ERR, "oidc: JWKS document holds no usable signing key");
	return rc;
}

/* Load one document: a fresh cache copy, else the network (cached on
 * success), else a stale cache copy. parse() validates a candidate. */
struct loader {
	const char *what;     /* "discovery" / "JWKS" for logs */
	const char *suffix;   /* cache file suffix */
	const char *url;
	int (*parse)(const struct doc *d, void *out, const struct entra_log *log);
	void *out;
};

static int load_doc(const struct loader *l, int dirfd, const char *prefix,
		    struct entra_http *http, const struct entra_log *log, time_t now,
		    bool force_fetch)
{
	struct doc cached = { NULL, 0, 0, false }, fresh;
	bool have_cached = false;
	int rc;

	if (l->url == NULL)
		return -EINVAL;
	if (dirfd >= 0 && cache_read(dirfd, prefix, l->suffix, l->url, &cached) == 0)
		have_cached = true;
	if (have_cached && !force_fetch && doc_is_fresh(&cached, now)) {
		rc = l->parse(&cached, l->out, log);
		if (rc == 0) {
			doc_free(&cached);
			return 0;
		}
		entra_log(log, LOG_WARNING, "oidc: cached %s unusable, refetching", l->what);
	}
	rc = fetch(http, l->what, l->url, now, &fresh, log);
	if (rc == 0) {
		rc = l->parse(&fresh, l->out, log);
		if (rc == 0 && dirfd >= 0)
			cache_write(dirfd, prefix, l->suffix, l->url, &fresh, log);
		doc_free(&fresh);
		if (rc == 0) {
			doc_free(&cached);
			return 0;
		}
	}
	if (have_cached && !force_fetch && l->parse(&cached, l->out, log) == 0) {
		entra_log(log, LOG_WARNING,
			  "oidc: %s refetch failed, using the cached copy from %lld s ago",
			  l->what, (long long)(now - cached.fetched_at));
		rc = 0;
	}
	doc_free(&cached);
	return rc;
}

static int parse_metadata_cb(const struct doc *d, void *out, const struct entra_log *log)
{
	return metadata_parse(d->body, d->len, out, log);
}

static int parse_jwks_cb(const struct doc *d, void *out, const struct entra_log *log)
{
	return jwks_from_doc(d, out, log);
}

int entra_oidc_load(struct entra_oidc *oidc, struct entra_http *http,
		    const struct entra_log *log, time_t now)
{
	struct entra_oidc_metadata md;
	struct entra_jwks jwks;
	char prefix[33];
	int dirfd = -1, rc;

	if (oidc == NULL || oidc->discovery_url == NULL || http == NULL)
		return -EINVAL;
	/* Already loaded in this process and still fresh: nothing to do. */
	if (oidc->loaded && oidc->loaded_at <= now + FUTURE_SLACK &&
	    now - oidc->loaded_at < ENTRA_OIDC_TTL)
		return 0;
	rc = cache_prefix(oidc, prefix);
	if (rc < 0)
		return rc;
	dirfd = cache_open(oidc, log);
	/* Zeroed, so that what load_doc() leaves unset is never read. */
	memset(&md, 0, sizeof(md));
	memset(&jwks, 0, sizeof(jwks));

	struct loader dl = { "discovery", ".discovery.json", oidc->discovery_url,
			     parse_metadata_cb, &md };
	rc = load_doc(&dl, dirfd, prefix, http, log, now, false);
	if (rc < 0) {
		entra_log(log, LOG_ERR, "oidc: no usable discovery document for %s",
			  oidc->discovery_url);
		goto out;
	}
	struct loader jl = { "JWKS", ".jwks.json", md.jwks_uri, parse_jwks_cb, &jwks };
	rc = load_doc(&jl, dirfd, prefix, http, log, now, false);
	if (rc < 0) {
		entra_log(log, LOG_ERR, "oidc: no usable JWKS for %s", oidc->discovery_url);
		metadata_free(&md);
		goto out;
	}
	metadata_free(&oidc->metadata);
	if (oidc->loaded)
		entra_jwks_free(&oidc->jwks);
	oidc->metadata = md;
	oidc->jwks = jwks;
	oidc->loaded = true;
	oidc->loaded_at = now;
	rc = 0;
out:
	if (dirfd >= 0)
		close(dirfd);
	return rc;
}

static int read_attempt(int dirfd, const char *prefix, time_t *out)
{
	char name[96];
	struct entra_buf buf;
	char *end;
	long long v;
	int rc;

	snprintf(name, sizeof(name), "%s.jwks-attempt", prefix);
	rc = entra_read_file_trusted(dirfd, name, MAX_ATTEMPT_FILE, geteuid(), &buf);
	if (rc < 0)
		return rc;
	errno = 0;
	v = strtoll(buf.data, &end, 10);
	rc = (errno != 0 || end == buf.data || (*end != '\0' && *end != '\n')) ? -EINVAL : 0;
	entra_buf_free(&buf);
	if (rc == 0)
		*out = (time_t)v;
	return rc;
}

static bool attempt_is_recent(time_t last, time_t now)
{
	/* A stamp far in the future (clock set back) does not block us. */
	return last > 0 && last <= now + ENTRA_OIDC_REFETCH_INTERVAL &&
	       now - last < ENTRA_OIDC_REFETCH_INTERVAL;
}

/* Claim the right to refetch: check and record the attempt under a lock
 * on the cache directory, so that concurrent processes refetch once. */
static int claim_attempt(struct entra_oidc *oidc, int dirfd, const char *prefix, time_t now,
			 const struct entra_log *log)
{
	char name[96], text[32];
	time_t last = 0;
	int n, rc;

	if (attempt_is_recent(oidc->jwks_attempt_at, now))
		return -EAGAIN;
	if (dirfd >= 0) {
		if (flock(dirfd, LOCK_EX) != 0)
			return -errno;
		if (read_attempt(dirfd, prefix, &last) == 0 && attempt_is_recent(last, now)) {
			flock(dirfd, LOCK_UN);
			oidc->jwks_attempt_at = last;
			return -EAGAIN;
		}
		snprintf(name, sizeof(name), "%s.jwks-attempt", prefix);
		n = snprintf(text, sizeof(text), "%lld\n", (long long)now);
		rc = entra_write_file_atomic(dirfd, name, text, (size_t)n, 0600, geteuid(),
					     getegid());
		flock(dirfd, LOCK_UN);
		if (rc < 0) {
			/* Without the record the limit cannot hold across
			 * processes: do not refetch. */
			entra_log(log, LOG_ERR, "oidc: cannot record the JWKS refetch attempt: %s",
				  strerror(-rc));
			return rc;
		}
	}
	oidc->jwks_attempt_at = now;
	return 0;
}

int entra_oidc_refresh_jwks(struct entra_oidc *oidc, struct entra_http *http,
			    const struct entra_log *log, time_t now)
{
	struct entra_jwks jwks;
	char prefix[33];
	int dirfd, rc;

	if (oidc == NULL || http == NULL || !oidc->loaded || oidc->metadata.jwks_uri == NULL)
		return -EINVAL;
	rc = cache_prefix(oidc, prefix);
	if (rc < 0)
		return rc;
	dirfd = cache_open(oidc, log);
	rc = claim_attempt(oidc, dirfd, prefix, now, log);
	if (rc == -EAGAIN) {
		entra_log(log, LOG_DEBUG, "oidc: JWKS refetch rate limited (once per %d s)",
			  ENTRA_OIDC_REFETCH_INTERVAL);
		goto out;
	}
	if (rc < 0)
		goto out;
	struct loader jl = { "JWKS", ".jwks.json", oidc->metadata.jwks_uri, parse_jwks_cb,
			     &jwks };
	rc = load_doc(&jl, dirfd, prefix, http, log, now, true);
	if (rc < 0) {
		entra_log(log, LOG_WARNING, "oidc: JWKS refetch failed, keeping the current keys");
		goto out;
	}
	entra_jwks_free(&oidc->jwks);
	oidc->jwks = jwks;
	rc = 0;
out:
	if (dirfd >= 0)
		close(dirfd);
	return rc;
}
