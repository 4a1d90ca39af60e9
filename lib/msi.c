/* Managed-identity client: source selection, the four request dialects,
 * retries, and the shared single-flight cache. See msi.h. */
#include "config.h"
#include "msi.h"

#include "buf.h"
#include "fsutil.h"
#include "json.h"
#include "jwt.h"
#include "names.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#define ARC_DEFAULT_ENDPOINT "http://localhost:40342/metadata/identity/oauth2/token"
#define MAX_URL 4096
#define MAX_RESOURCE 1024
#define MAX_TOKEN (64 * 1024)
#define MAX_CACHE_FILE (80 * 1024)
#define MAX_LIFETIME (30L * 86400) /* longer-lived "tokens" are garbage */
#define LOCK_POLL_MS 5

/* Everything one get_token call needs, resolved once. */
struct msi_ctx {
	const struct entra_msi_request *req;
	struct entra_http *http;
	bool own_http;          /* http was made here from req->http_options */
	const struct entra_log *log;
	struct entra_msi_token *out;
	enum entra_msi_source source;
	char *base_url;         /* endpoint without query */
	const char *secret;     /* MSI_SECRET / IDENTITY_HEADER, borrowed from env */
	const char *id_param;   /* query parameter naming the identity, or NULL */
	const char *id_value;
	char *resource;
	int64_t deadline;       /* hooks' monotonic clock: the retry budget */
	int64_t real_deadline;  /* entra_monotonic_ms(): lock waits and the http layer */
	uint32_t rng;
};

const char *entra_msi_source_name(enum entra_msi_source source)
{
	switch (source) {
	case ENTRA_MSI_AUTO: return "auto";
	case ENTRA_MSI_IMDS: return "imds";
	case ENTRA_MSI_AZUREML: return "azureml";
	case ENTRA_MSI_APPSERVICE: return "appservice";
	case ENTRA_MSI_ARC: return "arc";
	}
	return "unknown";
}

static const char *env_get(const char *const *env, const char *name)
{
	size_t n = strlen(name);

	if (env == NULL)
		return NULL;
	for (; *env != NULL; env++) {
		if (strncmp(*env, name, n) == 0 && (*env)[n] == '=')
			/* azure-identity treats an empty variable as unset. */
			return (*env)[n + 1] != '\0' ? *env + n + 1 : NULL;
	}
	return NULL;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

int entra_msi_detect(const struct entra_msi_request *req, enum entra_msi_source *out,
		     char *err, size_t errlen)
{
	const char *const *env = req->env;

	switch (req->source) {
	case ENTRA_MSI_IMDS:
		*out = ENTRA_MSI_IMDS;
		return 0;
	case ENTRA_MSI_AZUREML:
		if (env_get(env, "MSI_ENDPOINT") == NULL || env_get(env, "MSI_SECRET") == NULL) {
			set_err(err, errlen, "msi_source azureml needs MSI_ENDPOINT and MSI_SECRET");
			return -EINVAL;
		}
		*out = ENTRA_MSI_AZUREML;
		return 0;
	case ENTRA_MSI_APPSERVICE:
		if (env_get(env, "IDENTITY_ENDPOINT") == NULL || env_get(env, "IDENTITY_HEADER") == NULL) {
			set_err(err, errlen, "msi_source appservice needs IDENTITY_ENDPOINT and IDENTITY_HEADER");
			return -EINVAL;
		}
		*out = ENTRA_MSI_APPSERVICE;
		return 0;
	case ENTRA_MSI_ARC:
		/* The agent's endpoint is fixed; IDENTITY_ENDPOINT may name it. */
		*out = ENTRA_MSI_ARC;
		return 0;
	case ENTRA_MSI_AUTO:
		break;
	default:
		set_err(err, errlen, "unknown managed identity source %d", (int)req->source);
		return -EINVAL;
	}

	/* The order of azure-identity's ManagedIdentityCredential. */
	if (env_get(env, "IDENTITY_ENDPOINT") != NULL) {
		if (env_get(env, "IDENTITY_HEADER") != NULL) {
			if (env_get(env, "IDENTITY_SERVER_THUMBPRINT") != NULL) {
				set_err(err, errlen, "Service Fabric managed identity is not supported");
				return -ENOTSUP;
			}
			*out = ENTRA_MSI_APPSERVICE;
			return 0;
		}
		if (env_get(env, "IMDS_ENDPOINT") != NULL) {
			*out = ENTRA_MSI_ARC;
			return 0;
		}
		set_err(err, errlen,
			"IDENTITY_ENDPOINT is set without IDENTITY_HEADER or IMDS_ENDPOINT: no managed identity source");
		return -ENOENT;
	}
	if (env_get(env, "MSI_ENDPOINT") != NULL) {
		if (env_get(env, "MSI_SECRET") != NULL) {
			*out = ENTRA_MSI_AZUREML;
			return 0;
		}
		set_err(err, errlen, "Cloud Shell managed identity (MSI_ENDPOINT without MSI_SECRET) is not supported");
		return -ENOTSUP;
	}
	if (env_get(env, "AZURE_FEDERATED_TOKEN_FILE") != NULL &&
	    (req->client_id != NULL || env_get(env, "AZURE_CLIENT_ID") != NULL)) {
		set_err(err, errlen, "workload identity (AZURE_FEDERATED_TOKEN_FILE) is not supported; set msi_source");
		return -ENOTSUP;
	}
	*out = ENTRA_MSI_IMDS;
	return 0;
}

static bool has_bad_char(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return true;
	return false;
}

char *entra_msi_scope_to_resource(const char *scope)
{
	static const char suffix[] = "/.default";
	size_t n, sl = sizeof(suffix) - 1;

	if (scope == NULL || *scope == '\0' || has_bad_char(scope))
		return NULL;
	n = strlen(scope);
	if (n > MAX_RESOURCE)
		return NULL;
	if (n > sl && strcmp(scope + n - sl, suffix) == 0)
		n -= sl;
	else if (n == sl && strcmp(scope, suffix) == 0)
		return NULL;
	return strndup(scope, n);
}

/* Parse exactly `width` (or, if min < width, min..width) digits. */
static const char *digits(const char *p, int min, int max, int *val)
{
	int n = 0, v = 0;

	while (n < max && p[n] >= '0' && p[n] <= '9') {
		v = v * 10 + (p[n] - '0');
		n++;
	}
	if (n < min)
		return NULL;
	*val = v;
	return p + n;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
	static const int dm[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : dm[m - 1];
}

int entra_msi_parse_expires_on(const char *text, int64_t *out)
{
	const char *p = text;
	int mo, d, y, h, mi, s, oh, om, sign;
	int64_t v;

	if (text == NULL || *text == '\0')
		return -EINVAL;
	if (strspn(text, "0123456789") == strlen(text)) {
		if (strlen(text) > 12)
			return -EINVAL;
		v = strtoll(text, NULL, 10);
		if (v <= 0)
			return -EINVAL;
		*out = v;
		return 0;
	}
	/* "%m/%d/%Y %H:%M:%S %z", as azure-identity reads Azure ML's answer. */
	if ((p = digits(p, 1, 2, &mo)) == NULL || *p++ != '/' ||
	    (p = digits(p, 1, 2, &d)) == NULL || *p++ != '/' ||
	    (p = digits(p, 4, 4, &y)) == NULL || *p++ != ' ' ||
	    (p = digits(p, 1, 2, &h)) == NULL || *p++ != ':' ||
	    (p = digits(p, 2, 2, &mi)) == NULL || *p++ != ':' ||
	    (p = digits(p, 2, 2, &s)) == NULL || *p++ != ' ')
		return -EINVAL;
	if (*p == '+')
		sign = 1;
	else if (*p == '-')
		sign = -1;
	else
		return -EINVAL;
	p++;
	if ((p = digits(p, 2, 2, &oh)) == NULL)
		return -EINVAL;
	if (*p == ':')
		p++;
	if ((p = digits(p, 2, 2, &om)) == NULL || *p != '\0')
		return -EINVAL;
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) ||
	    h > 23 || mi > 59 || s > 59 || oh > 23 || om > 59)
		return -EINVAL;
	v = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
	v -= sign * (oh * 3600 + om * 60);
	if (v <= 0)
		return -EINVAL;
	*out = v;
	return 0;
}

/* ---- clocks ---- */

static int64_t mono_ms(const struct entra_msi_request *req)
{
	struct timespec ts;

	if (req->hooks != NULL && req->hooks->monotonic_ms != NULL)
		return req->hooks->monotonic_ms(req->hooks->ctx);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_s(const struct entra_msi_request *req)
{
	if (req->hooks != NULL && req->hooks->wall_s != NULL)
		return req->hooks->wall_s(req->hooks->ctx);
	return (int64_t)time(NULL);
}

static void real_sleep_ms(int64_t ms)
{
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static void backoff_sleep(const struct entra_msi_request *req, int64_t ms)
{
	if (req->hooks != NULL && req->hooks->sleep_ms != NULL)
		req->hooks->sleep_ms(req->hooks->ctx, ms);
	else
		real_sleep_ms(ms);
}

static uint32_t next_rand(struct msi_ctx *c)
{
	/* Seeded at the first retry: a token from the cache needs none. */
	if (c->rng == 0) {
		uint32_t seed = 0;

		if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed))
			seed = (uint32_t)getpid() ^ (uint32_t)entra_monotonic_ms();
		c->rng = seed ? seed : 0x9e3779b9u;
	}
	/* xorshift32: jitter only needs to decorrelate processes. */
	c->rng ^= c->rng << 13;
	c->rng ^= c->rng >> 17;
	c->rng ^= c->rng << 5;
	return c->rng;
}

/* ---- errors ---- */

static int fail(struct msi_ctx *c, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(struct msi_ctx *c, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->out->error, sizeof(c->out->error), fmt, ap);
	va_end(ap);
	entra_log(c->log, LOG_ERR, "managed identity (%s): %s", entra_msi_source_name(c->source),
		  c->out->error);
	return rc;
}

/* A server-supplied string made fit for a log line: printable ASCII, cut short. */
static void sanitize(const char *in, char *out, size_t outlen)
{
	size_t i = 0;

	if (in == NULL)
		in = "";
	for (; *in && i + 1 < outlen && i < 160; in++, i++)
		out[i] = (char)((*in >= 0x20 && *in < 0x7f) ? *in : '?');
	out[i] = '\0';
}

static bool contains_nocase(const char *hay, const char *needle)
{
	size_t n = strlen(needle);

	for (; hay != NULL && *hay; hay++)
		if (strncasecmp(hay, needle, n) == 0)
			return true;
	return false;
}

/* ---- endpoints ---- */

static bool is_loopback_v4(const char *h, size_t n)
{
	char tmp[16];
	const char *p = tmp;
	int part, i;

	if (n == 0 || n >= sizeof(tmp))
		return false;
	memcpy(tmp, h, n);
	tmp[n] = '\0';
	for (i = 0; i < 4; i++) {
		if ((p = digits(p, 1, 3, &part)) == NULL || part > 255)
			return false;
		if (i == 0 && part != 127)
			return false;
		if (i < 3 && *p++ != '.')
			return false;
	}
	return *p == '\0';
}

/* https anywhere; plain http only to loopback or the IMDS address. */
static bool endpoint_allowed(const char *url)
{
	const char *auth, *end, *host_end, *port;
	size_t hl;

	if (url == NULL || has_bad_char(url) || strlen(url) >= MAX_URL)
		return false;
	if (strncasecmp(url, "https://", 8) == 0)
		auth = url + 8;
	else if (strncasecmp(url, "http://", 7) == 0)
		auth = url + 7;
	else
		return false;
	end = auth + strcspn(auth, "/?#");
	if (end == auth || memchr(auth, '@', (size_t)(end - auth)) != NULL)
		return false;
	if (strchr(url, '#') != NULL)
		return false;
	if (*auth == '[') {
		host_end = memchr(auth, ']', (size_t)(end - auth));
		if (host_end == NULL)
			return false;
		host_end++;
	} else {
		host_end = memchr(auth, ':', (size_t)(end - auth));
		if (host_end == NULL)
			host_end = end;
	}
	port = host_end;
	if (port != end) {
		int pv;

		if (*port != ':' || port + 1 == end || (size_t)(end - port - 1) > 5 ||
		    digits(port + 1, (int)(end - port - 1), 5, &pv) != end || pv < 1 || pv > 65535)
			return false;
	}
	if (auth == url + 8) /* https */
		return true;
	hl = (size_t)(host_end - auth);
	if ((hl == 9 && strncasecmp(auth, "localhost", 9) == 0) ||
	    (hl == 5 && strncmp(auth, "[::1]", 5) == 0) ||
	    (hl == 15 && strncmp(auth, "169.254.169.254", 15) == 0))
		return true;
	return is_loopback_v4(auth, hl);
}

/* Append "?k=v" or "&k=v", percent-encoding v (RFC 3986 unreserved kept). */
static int query_add(struct entra_buf *url, const char *key, const char *value)
{
	static const char hex[] = "0123456789ABCDEF";
	int rc = entra_buf_printf(url, "%c%s=", strchr(url->data, '?') ? '&' : '?', key);

	for (; rc == 0 && *value; value++) {
		unsigned char ch = (unsigned char)*value;

		if (isalnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~') {
			rc = entra_buf_append(url, value, 1);
		} else {
			char enc[3] = { '%', hex[ch >> 4], hex[ch & 15] };

			rc = entra_buf_append(url, enc, 3);
		}
	}
	return rc;
}

static int resolve_endpoint(struct msi_ctx *c)
{
	const struct entra_msi_request *req = c->req;
	const char *base;

	switch (c->source) {
	case ENTRA_MSI_IMDS: {
		struct entra_buf b;
		const char *host = req->imds_host;
		size_t hl;
		int rc;

		if (host == NULL)
			host = env_get(req->env, "AZURE_POD_IDENTITY_AUTHORITY_HOST");
		if (host == NULL)
			host = ENTRA_MSI_IMDS_HOST;
		hl = strlen(host);
		while (hl > 0 && host[hl - 1] == '/')
			hl--;
		entra_buf_init(&b, MAX_URL);
		rc = entra_buf_append(&b, host, hl);
		if (rc == 0)
			rc = entra_buf_append_str(&b, ENTRA_MSI_IMDS_PATH);
		if (rc < 0) {
			entra_buf_free(&b);
			return fail(c, -EINVAL, "IMDS host is too long");
		}
		c->base_url = entra_buf_steal(&b);
		break;
	}
	case ENTRA_MSI_AZUREML:
		c->secret = env_get(req->env, "MSI_SECRET");
		base = env_get(req->env, "MSI_ENDPOINT");
		c->base_url = entra_strdup(base);
		break;
	case ENTRA_MSI_APPSERVICE:
		c->secret = env_get(req->env, "IDENTITY_HEADER");
		base = env_get(req->env, "IDENTITY_ENDPOINT");
		c->base_url = entra_strdup(base);
		break;
	case ENTRA_MSI_ARC:
		base = env_get(req->env, "IDENTITY_ENDPOINT");
		c->base_url = entra_strdup(base ? base : ARC_DEFAULT_ENDPOINT);
		break;
	default:
		return fail(c, -EINVAL, "no source");
	}
	if (c->base_url == NULL)
		return fail(c, -ENOMEM, "out of memory");
	if (!endpoint_allowed(c->base_url))
		return fail(c, -EPERM,
			    "refusing endpoint %.200s: only https, or http to loopback or 169.254.169.254, is allowed",
			    has_bad_char(c->base_url) ? "(with control characters)" : c->base_url);
	if (c->secret != NULL && (!entra_value_is_safe(c->secret, 4096) || strchr(c->secret, '\r')))
		return fail(c, -EINVAL, "the endpoint secret contains control characters");
	return 0;
}

static int resolve_identity(struct msi_ctx *c)
{
	const struct entra_msi_request *req = c->req;
	int n = (req->client_id != NULL) + (req->object_id != NULL) + (req->msi_res_id != NULL);

	if (n > 1)
		return fail(c, -EINVAL, "name at most one of client_id, object_id, msi_res_id");
	if (n == 0)
		return 0;
	if (c->source == ENTRA_MSI_ARC)
		return fail(c, -ENOTSUP, "Azure Arc has no user-assigned identities");
	if (req->client_id != NULL) {
		if (!entra_is_guid(req->client_id))
			return fail(c, -EINVAL, "client_id is not a GUID");
		c->id_param = c->source == ENTRA_MSI_AZUREML ? "clientid" : "client_id";
		c->id_value = req->client_id;
		return 0;
	}
	if (c->source == ENTRA_MSI_AZUREML)
		return fail(c, -ENOTSUP, "Azure ML compute takes a user-assigned identity by client_id only");
	if (req->object_id != NULL) {
		if (!entra_is_guid(req->object_id))
			return fail(c, -EINVAL, "object_id is not a GUID");
		c->id_param = "object_id";
		c->id_value = req->object_id;
		return 0;
	}
	if (strncasecmp(req->msi_res_id, "/subscriptions/", 15) != 0 || has_bad_char(req->msi_res_id) ||
	    strlen(req->msi_res_id) > 1024)
		return fail(c, -EINVAL, "msi_res_id is not an ARM resource id");
	c->id_param = c->source == ENTRA_MSI_APPSERVICE ? "mi_res_id" : "msi_res_id";
	c->id_value = req->msi_res_id;
	return 0;
}

static char *build_url(struct msi_ctx *c)
{
	struct entra_buf u;
	const char *api;
	int rc;

	switch (c->source) {
	case ENTRA_MSI_AZUREML: api = "2017-09-01"; break;
	case ENTRA_MSI_APPSERVICE: api = "2019-08-01"; break;
	case ENTRA_MSI_ARC: api = "2020-06-01"; break;
	default: api = "2018-02-01"; break;
	}
	entra_buf_init(&u, MAX_URL + 2048);
	rc = entra_buf_append_str(&u, c->base_url);
	if (rc == 0)
		rc = query_add(&u, "api-version", api);
	if (rc == 0)
		rc = query_add(&u, "resource", c->resource);
	if (rc == 0 && c->id_param != NULL)
		rc = query_add(&u, c->id_param, c->id_value);
	if (rc < 0) {
		entra_buf_free(&u);
		return NULL;
	}
	return entra_buf_steal(&u);
}

/* ---- Arc challenge ---- */

/* "Basic realm=<path>" → the key file name inside the token directory. */
static int arc_key_name(struct msi_ctx *c, const char *challenge, const char *dir,
			char *name, size_t namelen)
{
	const char *p = challenge, *path, *base;
	size_t plen, dl = strlen(dir), bl;

	if (p == NULL)
		return fail(c, -EPROTO, "Azure Arc answered 401 without a WWW-Authenticate challenge");
	while (*p == ' ' || *p == '\t')
		p++;
	if (strncasecmp(p, "Basic", 5) != 0 || (p[5] != ' ' && p[5] != '\t'))
		return fail(c, -EPROTO, "Azure Arc challenge is not Basic");
	p += 6;
	while (*p == ' ' || *p == '\t')
		p++;
	if (strncasecmp(p, "realm=", 6) != 0)
		return fail(c, -EPROTO, "Azure Arc challenge has no realm");
	path = p + 6;
	plen = strlen(path);
	while (plen > 0 && (path[plen - 1] == ' ' || path[plen - 1] == '\t' || path[plen - 1] == '\r'))
		plen--;
	if (plen >= 2 && path[0] == '"' && path[plen - 1] == '"') {
		path++;
		plen -= 2;
	}
	while (dl > 1 && dir[dl - 1] == '/')
		dl--;
	/* Exactly dir + "/" + one name: no "..", no subdirectory. */
	if (plen <= dl + 1 || strncmp(path, dir, dl) != 0 || path[dl] != '/')
		return fail(c, -EPERM, "Azure Arc challenge names a key outside %s", dir);
	base = path + dl + 1;
	bl = plen - dl - 1;
	if (bl >= namelen || memchr(base, '/', bl) != NULL)
		return fail(c, -EPERM, "Azure Arc challenge names a key outside %s", dir);
	memcpy(name, base, bl);
	name[bl] = '\0';
	if (!entra_name_is_valid(name) || strchr(name, '@') != NULL || bl <= 4 ||
	    strcmp(name + bl - 4, ".key") != 0)
		return fail(c, -EPERM, "Azure Arc challenge names an unacceptable key file");
	return 0;
}

/* Read the key into *key (malloc'd, secret). */
static int arc_read_key(struct msi_ctx *c, const char *dir, const char *name, char **key)
{
	char data[ENTRA_MSI_ARC_KEY_MAX + 1];
	struct stat st;
	ssize_t n;
	size_t len = 0;
	int dfd, fd, rc = 0;

	*key = NULL;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return fail(c, -EPERM, "cannot open the Azure Arc token directory %s: %s", dir, strerror(errno));
	/* O_NONBLOCK: a FIFO planted there must not hang us; it fails S_ISREG. */
	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	close(dfd);
	if (fd < 0)
		return fail(c, -EPERM, "cannot open the Azure Arc key %s: %s", name, strerror(errno));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return fail(c, -EPERM, "the Azure Arc key %s is not a regular file", name);
	}
	if (st.st_size > ENTRA_MSI_ARC_KEY_MAX) {
		close(fd);
		return fail(c, -EPERM, "the Azure Arc key %s is larger than %d bytes", name, ENTRA_MSI_ARC_KEY_MAX);
	}
	while (len < sizeof(data)) {
		n = read(fd, data + len, sizeof(data) - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = fail(c, -EPERM, "cannot read the Azure Arc key %s: %s", name, strerror(errno));
			break;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (rc == 0 && len > ENTRA_MSI_ARC_KEY_MAX)
		rc = fail(c, -EPERM, "the Azure Arc key %s is larger than %d bytes", name, ENTRA_MSI_ARC_KEY_MAX);
	while (rc == 0 && len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r'))
		len--;
	if (rc == 0) {
		data[len] = '\0';
		if (len == 0 || strlen(data) != len || !entra_value_is_safe(data, ENTRA_MSI_ARC_KEY_MAX))
			rc = fail(c, -EPERM, "the Azure Arc key %s is empty or holds control characters", name);
	}
	if (rc == 0) {
		*key = strndup(data, len);
		if (*key == NULL)
			rc = fail(c, -ENOMEM, "out of memory");
	}
	explicit_bzero(data, sizeof(data));
	return rc;
}

/* ---- one attempt ---- */

/* 0 with resp filled (any status), or a transport -errno (retryable or
 * not, decided by the caller), or, with *final set, a final -errno whose
 * message is already in out->error. */
static int attempt(struct msi_ctx *c, const char *url, struct entra_http_response *resp, bool *final)
{
	struct entra_buf hdr;
	const char *headers[3] = { NULL, NULL, NULL };
	char name[256];
	char *key = NULL;
	const char *dir;
	int rc;

	*final = false;
	memset(resp, 0, sizeof(*resp));
	resp->retry_after = -1;
	if (c->http == NULL && c->req->http_options != NULL) {
		c->http = entra_http_new(c->req->http_options, c->log);
		if (c->http != NULL) {
			c->own_http = true;
			entra_http_set_deadline(c->http, c->real_deadline);
		}
	}
	if (c->http == NULL) {
		*final = true;
		return fail(c, -EINVAL, "no HTTP handle");
	}
	entra_buf_init(&hdr, 8192);
	switch (c->source) {
	case ENTRA_MSI_AZUREML:
		rc = entra_buf_printf(&hdr, "secret: %s", c->secret);
		break;
	case ENTRA_MSI_APPSERVICE:
		rc = entra_buf_printf(&hdr, "X-IDENTITY-HEADER: %s", c->secret);
		break;
	default:
		rc = entra_buf_append_str(&hdr, "Metadata: true");
		break;
	}
	if (rc < 0) {
		entra_buf_free(&hdr);
		*final = true;
		return fail(c, rc, "cannot build the request headers");
	}
	headers[0] = hdr.data;
	rc = entra_http_get(c->http, url, headers, resp);
	entra_buf_free(&hdr);
	if (rc < 0 || c->source != ENTRA_MSI_ARC || resp->status != 401)
		return rc;

	/* Azure Arc: prove we can read the agent's root-only key file. */
	dir = c->req->arc_token_dir_for_tests ? c->req->arc_token_dir_for_tests : ENTRA_MSI_ARC_TOKEN_DIR;
	*final = true;
	rc = arc_key_name(c, resp->www_authenticate, dir, name, sizeof(name));
	if (rc == 0)
		rc = arc_read_key(c, dir, name, &key);
	if (rc < 0)
		return rc;
	entra_http_response_free(resp);
	memset(resp, 0, sizeof(*resp));
	resp->retry_after = -1;
	entra_buf_init(&hdr, ENTRA_MSI_ARC_KEY_MAX + 64);
	rc = entra_buf_printf(&hdr, "Authorization: Basic %s", key);
	entra_free_secret(key);
	if (rc < 0) {
		entra_buf_free(&hdr);
		return fail(c, rc, "cannot build the request headers");
	}
	headers[0] = "Metadata: true";
	headers[1] = hdr.data;
	*final = false;
	rc = entra_http_get(c->http, url, headers, resp);
	entra_buf_free(&hdr);
	if (rc == 0 && resp->status == 401) {
		*final = true;
		return fail(c, -EACCES, "the Azure Arc agent rejected the key from %s", name);
	}
	return rc;
}

/* ---- responses ---- */

/* RFC 6750 b64token: what a bearer token may contain. A table: every
 * warm service session checks a token of a few kilobytes. */
#define B64T_RANGE(a, b) [(a) ... (b)] = true
static const bool b64token_chars[256] = {
	B64T_RANGE('a', 'z'), B64T_RANGE('A', 'Z'), B64T_RANGE('0', '9'),
	['-'] = true, ['.'] = true, ['_'] = true, ['~'] = true, ['+'] = true, ['/'] = true,
};
#undef B64T_RANGE

static bool is_b64token_char(unsigned char ch)
{
	return b64token_chars[ch];
}

static bool is_b64token(const char *s)
{
	size_t i = 0;

	while (is_b64token_char((unsigned char)s[i]))
		i++;
	if (i == 0)
		return false;
	while (s[i] == '=')
		i++;
	return s[i] == '\0';
}

/* A tenant or object id fit for the session record and the cache: a GUID
 * or a domain in practice; nothing that would need quoting. */
static bool id_is_plain(const char *v)
{
	size_t n = 0;

	for (; v[n] != '\0'; n++)
		if (!isalnum((unsigned char)v[n]) && v[n] != '-' && v[n] != '.' && v[n] != '_')
			return false;
	return n > 0 && n <= 128;
}

/* A copy of a tenant or object id when it is a plain id, else NULL. */
static char *plain_id_copy(const char *v)
{
	return v != NULL && id_is_plain(v) ? strdup(v) : NULL;
}

/* tid and oid of a JWT access token, for the session's description (the
 * token is the endpoint's, not ours to verify: only the payload is read).
 * Missing claims, or a token that is not a JWS, leave them NULL. */
static void describe_token(struct entra_msi_token *tok)
{
	struct json_object *claims;

	free(tok->tenant_id);
	free(tok->object_id);
	tok->tenant_id = NULL;
	tok->object_id = NULL;
	claims = tok->access_token ? entra_jwt_decode_unverified(tok->access_token) : NULL;
	if (claims == NULL)
		return;
	tok->tenant_id = plain_id_copy(entra_json_get_string(claims, "tid"));
	tok->object_id = plain_id_copy(entra_json_get_string(claims, "oid"));
	json_object_put(claims);
}

static int parse_success(struct msi_ctx *c, const struct entra_http_response *resp, int64_t now)
{
	struct json_object *obj, *v;
	const char *tok, *type, *res;
	int64_t exp_on = 0, exp_in = 0, life;
	int rc;

	obj = entra_json_parse_object(resp->body.data ? resp->body.data : "", resp->body.len);
	if (obj == NULL)
		return fail(c, -EPROTO, "the endpoint's answer is not a JSON object");
	tok = entra_json_get_string(obj, "access_token");
	if (tok == NULL || strlen(tok) > MAX_TOKEN || !is_b64token(tok)) {
		json_object_put(obj);
		return fail(c, -EPROTO, "the endpoint's answer has no usable access_token");
	}
	type = entra_json_get_string(obj, "token_type");
	if (json_object_object_get_ex(obj, "token_type", NULL) && (type == NULL || !entra_streq_nocase(type, "Bearer"))) {
		json_object_put(obj);
		return fail(c, -EPROTO, "the endpoint's token is not a Bearer token");
	}
	if (json_object_object_get_ex(obj, "expires_on", &v)) {
		if (json_object_is_type(v, json_type_int))
			exp_on = json_object_get_int64(v);
		else if (!json_object_is_type(v, json_type_string) ||
			 entra_msi_parse_expires_on(json_object_get_string(v), &exp_on) < 0)
			exp_on = -1;
		if (exp_on <= 0) {
			json_object_put(obj);
			return fail(c, -EPROTO, "the endpoint's expires_on is not a time");
		}
	}
	rc = entra_json_get_int64(obj, "expires_in", &exp_in);
	if ((rc < 0 && rc != -ENOENT) || (rc == 0 && exp_in <= 0)) {
		json_object_put(obj);
		return fail(c, -EPROTO, "the endpoint's expires_in is not a positive number");
	}
	if (exp_on == 0 && rc == -ENOENT) {
		json_object_put(obj);
		return fail(c, -EPROTO, "the endpoint's answer has neither expires_on nor expires_in");
	}
	if (exp_on == 0)
		exp_on = now + exp_in;
	life = exp_on - now;
	if (life <= ENTRA_MSI_MIN_VALIDITY || life > MAX_LIFETIME) {
		json_object_put(obj);
		return fail(c, -EPROTO, "the endpoint's token expires in %lld s: refused", (long long)life);
	}
	res = entra_json_get_string(obj, "resource");
	if (res == NULL || has_bad_char(res) || strlen(res) > MAX_RESOURCE)
		res = c->resource;
	c->out->access_token = strdup(tok);
	c->out->resource = strdup(res);
	c->out->token_type = strdup("Bearer");
	json_object_put(obj);
	if (c->out->access_token == NULL || c->out->resource == NULL || c->out->token_type == NULL)
		return fail(c, -ENOMEM, "out of memory");
	c->out->expires_on = exp_on;
	/* MSAL: long-lived tokens are refreshed at half-life. */
	c->out->refresh_on = life >= ENTRA_MSI_HALF_LIFE_MIN ? now + life / 2 : exp_on - ENTRA_MSI_REFRESH_MARGIN;
	c->out->source = c->source;
	c->out->from_cache = false;
	describe_token(c->out);
	return 0;
}

/* A final (non-retryable) error answer → message and -errno. */
static int final_error(struct msi_ctx *c, const struct entra_http_response *resp)
{
	struct json_object *obj = NULL, *e;
	const char *code = NULL, *desc = NULL;
	char scode[96], sdesc[192];

	if (resp->body.data != NULL)
		obj = entra_json_parse_object(resp->body.data, resp->body.len);
	if (obj != NULL) {
		code = entra_json_get_string(obj, "error");
		desc = entra_json_get_string(obj, "error_description");
		if (desc == NULL)
			desc = entra_json_get_string(obj, "message");
		if (code == NULL && json_object_object_get_ex(obj, "error", &e) &&
		    json_object_is_type(e, json_type_object)) {
			code = entra_json_get_string(e, "code");
			if (desc == NULL)
				desc = entra_json_get_string(e, "message");
		}
	}
	sanitize(code, scode, sizeof(scode));
	sanitize(desc, sdesc, sizeof(sdesc));
	if (obj != NULL)
		json_object_put(obj);
	/* IMDS/Arc/Azure ML: "Identity not found"; App Service: "Unable to
	 * load the proper Managed Identity." */
	if (resp->status == 400 && (contains_nocase(sdesc, "identity not found") ||
				    contains_nocase(sdesc, "unable to load the proper managed identity"))) {
		const char *where = c->source == ENTRA_MSI_IMDS ? "this VM" : "this host";

		if (c->id_param != NULL)
			return fail(c, -ENOENT, "managed identity %s %s is not assigned to %s", c->id_param,
				    c->id_value, where);
		return fail(c, -ENOENT, "no managed identity is assigned to %s", where);
	}
	if (resp->status == 400 && strcmp(scode, "bad_request_102") == 0)
		return fail(c, -EACCES,
			    "IMDS says the Metadata header is missing (bad_request_102): a proxy between us and IMDS drops it");
	if (resp->status == 400 && strcmp(scode, "invalid_resource") == 0)
		return fail(c, -EACCES, "resource %s is unknown to Entra (invalid_resource): %s", c->resource, sdesc);
	if (resp->status == 401 || resp->status == 403)
		return fail(c, -EACCES, "the endpoint refused access: HTTP %ld %s %s", resp->status, scode, sdesc);
	return fail(c, -EACCES, "the endpoint refused the request: HTTP %ld %s %s", resp->status, scode, sdesc);
}

static bool status_retryable(long status)
{
	return status == 404 || status == 410 || status == 429 || (status >= 500 && status <= 599);
}

static bool transport_retryable(int rc)
{
	return rc == -ETIMEDOUT || rc == -ECONNREFUSED || rc == -EHOSTUNREACH || rc == -ENETUNREACH ||
	       rc == -ECONNRESET || rc == -EAGAIN || rc == -EIO;
}

static int fetch(struct msi_ctx *c)
{
	struct entra_http_response resp;
	char *url, last[160] = "";
	int64_t delay = 1000, wait, start = mono_ms(c->req);
	int tries = 0, rc;
	bool final;

	url = build_url(c);
	if (url == NULL)
		return fail(c, -EINVAL, "the request URL is too long");
	entra_log(c->log, LOG_DEBUG, "managed identity (%s): GET %s", entra_msi_source_name(c->source), url);
	for (;;) {
		tries++;
		rc = attempt(c, url, &resp, &final);
		if (final) {
			entra_http_response_free(&resp);
			break;
		}
		if (rc == 0 && resp.status == 200) {
			rc = parse_success(c, &resp, wall_s(c->req));
			entra_http_response_free(&resp);
			break;
		}
		if (rc < 0 && !transport_retryable(rc)) {
			entra_http_response_free(&resp);
			rc = fail(c, rc, "cannot reach the endpoint: %s", strerror(-rc));
			break;
		}
		if (rc == 0 && !status_retryable(resp.status)) {
			rc = final_error(c, &resp);
			entra_http_response_free(&resp);
			break;
		}
		if (rc < 0)
			snprintf(last, sizeof(last), "cannot reach the endpoint: %s", strerror(-rc));
		else
			snprintf(last, sizeof(last), "the endpoint answered HTTP %ld", resp.status);
		/* Jittered exponential backoff: delay/2 .. delay, doubling. */
		wait = delay / 2 + (int64_t)(next_rand(c) % (uint32_t)(delay / 2 + 1));
		if (rc == 0 && resp.retry_after >= 0) {
			int64_t ra = resp.retry_after > ENTRA_MSI_MAX_WAIT_MS / 1000 ? ENTRA_MSI_MAX_WAIT_MS
										  : resp.retry_after * 1000;
			if (ra > wait)
				wait = ra;
		}
		entra_http_response_free(&resp);
		if (wait > ENTRA_MSI_MAX_WAIT_MS)
			wait = ENTRA_MSI_MAX_WAIT_MS;
		if (mono_ms(c->req) + wait >= c->deadline) {
			rc = fail(c, -ETIMEDOUT, "gave up after %d attempts in %lld ms: %s", tries,
				  (long long)(mono_ms(c->req) - start), last);
			break;
		}
		entra_log(c->log, LOG_INFO, "managed identity (%s): %s; retrying in %lld ms",
			  entra_msi_source_name(c->source), last, (long long)wait);
		backoff_sleep(c->req, wait);
		if (delay < ENTRA_MSI_MAX_WAIT_MS)
			delay *= 2;
	}
	free(url);
	return rc;
}

/* ---- cache ---- */

/* SHA-256 fetched once per process: an implicit fetch (EVP_sha256() in
 * EVP_Digest) looks the algorithm up again at every call. */
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
static EVP_MD *sha256_md;

static void sha256_fetch(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

/* The last key this thread computed: a host opening session after
 * session asks for the same identity each time, and the digest was a
 * sixth of a warm session's work in the module. Longer inputs are not
 * remembered. */
static __thread struct {
	size_t len;
	char input[512];
	char hex[65];
} last_key;

static int cache_key(struct msi_ctx *c, char hex[65])
{
	const char *parts[] = { "msi-v1", entra_msi_source_name(c->source), c->base_url,
				c->id_param ? c->id_param : "system", c->id_value ? c->id_value : "",
				c->resource };
	unsigned char md[32];
	unsigned int mdlen = 0;
	struct entra_buf k;
	int rc = 0;

	entra_buf_init(&k, MAX_URL * 2);
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]) && rc == 0; i++) {
		if (i > 0)
			rc = entra_buf_append(&k, "\n", 1);
		if (rc == 0)
			rc = entra_buf_append_str(&k, parts[i]);
	}
	if (rc == 0 && k.len == last_key.len && memcmp(k.data, last_key.input, k.len) == 0) {
		memcpy(hex, last_key.hex, sizeof(last_key.hex));
		entra_buf_free(&k);
		return 0;
	}
	if (rc == 0 && (pthread_once(&sha256_once, sha256_fetch) != 0 || sha256_md == NULL ||
			EVP_Digest(k.data, k.len, md, &mdlen, sha256_md, NULL) != 1 || mdlen != sizeof(md)))
		rc = -EIO;
	if (rc == 0) {
		entra_hex_encode(md, sizeof(md), hex);
		if (k.len <= sizeof(last_key.input)) {
			memcpy(last_key.input, k.data, k.len);
			last_key.len = k.len;
			memcpy(last_key.hex, hex, sizeof(last_key.hex));
		}
	}
	entra_buf_free(&k);
	return rc;
}

static int cache_open(struct msi_ctx *c, uid_t uid)
{
	int top, dfd;

	top = entra_dir_open_trusted(c->req->cache_dir, uid);
	if (top == -ENOENT)
		top = entra_dir_open_or_create(c->req->cache_dir, 0700, uid, getegid());
	if (top < 0)
		return top;
	dfd = entra_dir_open_or_create_at(top, "msi", 0700, uid, getegid());
	close(top);
	return dfd;
}

/* "key":"value" then sep at *p, value free of '"' and '\\'; *end gets
 * the value's closing quote (the text is not changed). NULL if the text is
 * not exactly that. */
static char *take_string(char **p, const char *key, char sep, char **end)
{
	size_t n = strlen(key);
	char *v, *q;

	if ((*p)[0] != '"' || strncmp(*p + 1, key, n) != 0 || strncmp(*p + 1 + n, "\":\"", 3) != 0)
		return NULL;
	v = *p + n + 4;
	q = strpbrk(v, "\"\\");
	if (q == NULL || *q != '"' || q[1] != sep)
		return NULL;
	*end = q;
	*p = q + 2;
	return v;
}

/* "key":digits then sep at *p: a positive number of at most 18 digits. */
static bool take_number(char **p, const char *key, char sep, int64_t *out)
{
	size_t n = strlen(key), ndigits = 0;
	int64_t v = 0;
	char *q;

	if ((*p)[0] != '"' || strncmp(*p + 1, key, n) != 0 || strncmp(*p + 1 + n, "\":", 2) != 0)
		return false;
	q = *p + n + 3;
	for (; *q >= '0' && *q <= '9' && ndigits < 18; q++, ndigits++)
		v = v * 10 + (*q - '0');
	if (ndigits == 0 || *q != sep || v <= 0)
		return false;
	*out = v;
	*p = q + 1;
	return true;
}

/* The exact layout cache_write produces, read without the general JSON
 * parser: a warm service session reads the cache every time, and parsing
 * a token-sized document costs more than the rest of the session. Any
 * other text (an older layout, an edit) returns false, unchanged, and goes
 * through the JSON parser. On a match the fields are cut in place. */
static bool read_own_layout(char *text, size_t len, const char **at, const char **res,
			    const char **src, const char **tid, const char **oid, const char **key,
			    int64_t *exp_on, int64_t *ref_on)
{
	char *p = text, *type, *end[7];

	if (len < 2 || text[0] != '{' || strcmp(text + len - 2, "}\n") != 0)
		return false;
	p++;
	if (!((*at = take_string(&p, "access_token", ',', &end[0])) != NULL &&
	      (type = take_string(&p, "token_type", ',', &end[1])) != NULL &&
	      end[1] - type == 6 && memcmp(type, "Bearer", 6) == 0 &&
	      (*res = take_string(&p, "resource", ',', &end[2])) != NULL &&
	      (*src = take_string(&p, "source", ',', &end[3])) != NULL &&
	      (*tid = take_string(&p, "tenant_id", ',', &end[4])) != NULL &&
	      (*oid = take_string(&p, "object_id", ',', &end[5])) != NULL &&
	      (*key = take_string(&p, "key", ',', &end[6])) != NULL &&
	      take_number(&p, "expires_on", ',', exp_on) &&
	      take_number(&p, "refresh_on", '}', ref_on) && p == text + len - 1))
		return false;
	for (size_t i = 0; i < sizeof(end) / sizeof(end[0]); i++)
		*end[i] = '\0';
	return true;
}

/* A cache entry's text (b, freed here) into tok. An entry names the key
 * it was written under: one of another key (moved or copied here) is
 * refused; one without (written before entries named theirs) only when
 * !key_required. 0, or -errno if unsafe or corrupt. */
static int cache_parse(struct msi_ctx *c, struct entra_buf *b, const char *key, bool key_required,
		       struct entra_msi_token *tok)
{
	struct json_object *obj = NULL;
	const char *at, *res, *src, *tid = NULL, *oid = NULL, *named = NULL;
	int64_t exp_on = 0, ref_on = 0;
	bool own;
	int rc;

	own = read_own_layout(b->data, b->len, &at, &res, &src, &tid, &oid, &named, &exp_on, &ref_on);
	if (!own) {
		obj = entra_json_parse_object(b->data ? b->data : "", b->len);
		entra_buf_free(b);
		if (obj == NULL)
			return -EPROTO;
		at = entra_json_get_string(obj, "access_token");
		res = entra_json_get_string(obj, "resource");
		src = entra_json_get_string(obj, "source");
		named = entra_json_get_string(obj, "key");
		if (entra_json_get_int64(obj, "expires_on", &exp_on) < 0 ||
		    entra_json_get_int64(obj, "refresh_on", &ref_on) < 0)
			exp_on = ref_on = 0;
	}
	rc = -EPROTO;
	if ((named != NULL ? strcmp(named, key) == 0 : !key_required) && at != NULL &&
	    strlen(at) <= MAX_TOKEN && is_b64token(at) && res != NULL && !has_bad_char(res) &&
	    src != NULL && strcmp(src, entra_msi_source_name(c->source)) == 0 && exp_on > 0 && ref_on > 0 &&
	    ref_on <= exp_on) {
		tok->access_token = strdup(at);
		tok->resource = strdup(res);
		tok->token_type = strdup("Bearer");
		tok->expires_on = exp_on;
		tok->refresh_on = ref_on;
		tok->source = c->source;
		tok->from_cache = true;
		rc = 0;
		/* The description travels with the token; an entry of
		 * another layout is described now. */
		if (own) {
			tok->tenant_id = plain_id_copy(tid);
			tok->object_id = plain_id_copy(oid);
		} else {
			describe_token(tok);
		}
		if (tok->access_token == NULL || tok->resource == NULL || tok->token_type == NULL) {
			entra_msi_token_clear(tok);
			rc = -ENOMEM;
		}
	}
	json_object_put(obj);
	if (own)
		entra_buf_free(b);
	return rc;
}

/* Load dfd/<key>.json into tok: ours, and no access for anyone else:
 * never trust (nor keep using) a file others could read. 0, or -errno if
 * absent, unsafe or corrupt. */
static int cache_read(struct msi_ctx *c, int dfd, const char *key, uid_t uid, struct entra_msi_token *tok)
{
	struct entra_buf b;
	char name[80];
	int rc;

	snprintf(name, sizeof(name), "%s.json", key);
	rc = entra_read_file_secret(dfd, name, MAX_CACHE_FILE, uid, &b);
	return rc < 0 ? rc : cache_parse(c, &b, key, false, tok);
}

/* The warm path: cache_dir/msi/<key>.json in one open, its directories
 * unchecked (cache_open checks them whenever anything is written), so
 * only an entry that names this key and is ours alone will do. */
static int cache_read_direct(struct msi_ctx *c, const char *key, uid_t uid, struct entra_msi_token *tok)
{
	struct entra_buf b;
	char path[PATH_MAX];
	int n, rc;

	n = snprintf(path, sizeof(path), "%s/msi/%s.json", c->req->cache_dir, key);
	if (n < 0 || (size_t)n >= sizeof(path))
		return -ENAMETOOLONG;
	rc = entra_read_secret_nolinks(path, MAX_CACHE_FILE, uid, &b);
	return rc < 0 ? rc : cache_parse(c, &b, key, true, tok);
}

static int json_put_string(struct entra_buf *b, const char *key, const char *val)
{
	int rc = entra_buf_printf(b, "\"%s\":\"", key);

	/* Values were checked to be printable ASCII; escape what JSON needs. */
	for (; rc == 0 && *val; val++) {
		if (*val == '"' || *val == '\\')
			rc = entra_buf_append(b, "\\", 1);
		if (rc == 0)
			rc = entra_buf_append(b, val, 1);
	}
	return rc ? rc : entra_buf_append(b, "\",", 2);
}

static int cache_write(struct msi_ctx *c, int dfd, const char *key, const struct entra_msi_token *tok)
{
	struct entra_buf b;
	char name[80];
	int rc;

	entra_buf_init(&b, MAX_CACHE_FILE);
	rc = entra_buf_append_str(&b, "{");
	if (rc == 0)
		rc = json_put_string(&b, "access_token", tok->access_token);
	if (rc == 0)
		rc = json_put_string(&b, "token_type", "Bearer");
	if (rc == 0)
		rc = json_put_string(&b, "resource", tok->resource);
	if (rc == 0)
		rc = json_put_string(&b, "source", entra_msi_source_name(c->source));
	if (rc == 0)
		rc = json_put_string(&b, "tenant_id", tok->tenant_id ? tok->tenant_id : "");
	if (rc == 0)
		rc = json_put_string(&b, "object_id", tok->object_id ? tok->object_id : "");
	if (rc == 0)
		rc = json_put_string(&b, "key", key);
	if (rc == 0)
		rc = entra_buf_printf(&b, "\"expires_on\":%lld,\"refresh_on\":%lld}\n",
				      (long long)tok->expires_on, (long long)tok->refresh_on);
	snprintf(name, sizeof(name), "%s.json", key);
	if (rc == 0)
		rc = entra_write_file_atomic(dfd, name, b.data, b.len, 0600, geteuid(), getegid());
	entra_buf_free(&b);
	if (rc < 0)
		entra_log(c->log, LOG_WARNING, "managed identity: cannot write the token cache: %s", strerror(-rc));
	return rc;
}

/* Exclusive flock on dfd/<key>.lock, polling until the deadline. fd or -errno. */
static int cache_lock(struct msi_ctx *c, int dfd, const char *name)
{
	struct stat st;
	int fd;

	fd = openat(dfd, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0600);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
		close(fd);
		return -EPERM;
	}
	for (;;) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			return fd;
		if (errno != EWOULDBLOCK && errno != EINTR) {
			int e = errno;

			close(fd);
			return -e;
		}
		/* The lock wait uses the real clock: the holder works in real time. */
		if (entra_monotonic_ms() >= c->real_deadline) {
			close(fd);
			return -ETIMEDOUT;
		}
		real_sleep_ms(LOCK_POLL_MS);
	}
}

static bool usable(const struct entra_msi_token *tok, int64_t now)
{
	return tok->access_token != NULL && tok->expires_on - now > ENTRA_MSI_MIN_VALIDITY;
}

static bool fresh(const struct entra_msi_token *tok, int64_t now)
{
	return usable(tok, now) && now < tok->refresh_on;
}

static void token_move(struct entra_msi_token *dst, struct entra_msi_token *src)
{
	char err[sizeof(dst->error)];

	memcpy(err, dst->error, sizeof(err));
	entra_msi_token_clear(dst);
	*dst = *src;
	memcpy(dst->error, err, sizeof(err));
	memset(src, 0, sizeof(*src));
}

static int get_cached(struct msi_ctx *c)
{
	struct entra_msi_token cached;
	char key[65], lockname[80];
	uid_t uid = geteuid();
	int dfd, lfd, rc;

	rc = cache_key(c, key);
	if (rc < 0)
		return fail(c, rc, "cannot compute the cache key");
	memset(&cached, 0, sizeof(cached));
	/* Warm path: no lock, no directory, one read. */
	if (cache_read_direct(c, key, uid, &cached) == 0 && fresh(&cached, wall_s(c->req))) {
		token_move(c->out, &cached);
		return 0;
	}
	entra_msi_token_clear(&cached);
	snprintf(lockname, sizeof(lockname), "%s.lock", key);
	dfd = cache_open(c, uid);
	if (dfd < 0) {
		entra_log(c->log, LOG_WARNING, "managed identity: token cache %s/msi unusable (%s); fetching uncached",
			  c->req->cache_dir, strerror(-dfd));
		return fetch(c);
	}
	/* An entry of an older layout, in directories now checked. */
	if (cache_read(c, dfd, key, uid, &cached) == 0 && fresh(&cached, wall_s(c->req))) {
		token_move(c->out, &cached);
		close(dfd);
		return 0;
	}
	entra_msi_token_clear(&cached);

	lfd = cache_lock(c, dfd, lockname);
	if (lfd < 0) {
		/* Someone else is (still) fetching; whatever they left may do. */
		if (cache_read(c, dfd, key, uid, &cached) == 0 && usable(&cached, wall_s(c->req))) {
			token_move(c->out, &cached);
			close(dfd);
			return 0;
		}
		entra_msi_token_clear(&cached);
		close(dfd);
		return fail(c, lfd == -ETIMEDOUT ? -ETIMEDOUT : lfd,
			    "cannot lock the token cache: %s", strerror(-lfd));
	}
	/* The lock holder before us may have just refreshed it. */
	if (cache_read(c, dfd, key, uid, &cached) == 0 && fresh(&cached, wall_s(c->req))) {
		token_move(c->out, &cached);
		rc = 0;
		goto out;
	}
	rc = fetch(c);
	if (rc == 0) {
		cache_write(c, dfd, key, c->out);
	} else if (usable(&cached, wall_s(c->req))) {
		entra_log(c->log, LOG_WARNING,
			  "managed identity: refresh failed, using the cached token valid for %lld s more",
			  (long long)(cached.expires_on - wall_s(c->req)));
		token_move(c->out, &cached);
		rc = 0;
	}
out:
	entra_msi_token_clear(&cached);
	close(lfd); /* releases the lock */
	close(dfd);
	return rc;
}

int entra_msi_get_token(const struct entra_msi_request *req, struct entra_http *http,
			const struct entra_log *log, struct entra_msi_token *out)
{
	struct msi_ctx c;
	long total;
	int rc;

	memset(out, 0, sizeof(*out));
	memset(&c, 0, sizeof(c));
	c.req = req;
	c.http = http;
	c.log = log;
	c.out = out;
	c.source = ENTRA_MSI_AUTO;

	rc = entra_msi_detect(req, &c.source, out->error, sizeof(out->error));
	if (rc < 0) {
		entra_log(log, LOG_ERR, "managed identity: %s", out->error);
		return rc;
	}
	out->source = c.source;
	c.resource = entra_msi_scope_to_resource(req->resource);
	if (c.resource == NULL) {
		rc = fail(&c, -EINVAL, "the resource is empty, several scopes, or holds bad characters");
		goto done;
	}
	rc = resolve_endpoint(&c);
	if (rc == 0)
		rc = resolve_identity(&c);
	if (rc < 0)
		goto done;

	total = req->total_ms > 0 ? req->total_ms : ENTRA_MSI_DEFAULT_TOTAL_MS;
	c.deadline = mono_ms(req) + total;
	c.real_deadline = entra_monotonic_ms() + total;
	if (http != NULL)
		entra_http_set_deadline(http, c.real_deadline);
	if (req->cache_dir != NULL)
		rc = get_cached(&c);
	else
		rc = fetch(&c);
done:
	if (rc < 0) {
		entra_msi_token_clear(out);
	} else {
		entra_log(log, LOG_DEBUG, "managed identity (%s): token for %s, expires %lld%s",
			  entra_msi_source_name(c.source), out->resource, (long long)out->expires_on,
			  out->from_cache ? " (cached)" : "");
	}
	if (c.own_http)
		entra_http_free(c.http);
	free(c.base_url);
	free(c.resource);
	return rc;
}

void entra_msi_token_clear(struct entra_msi_token *tok)
{
	if (tok == NULL)
		return;
	entra_free_secret(tok->access_token);
	free(tok->resource);
	free(tok->token_type);
	free(tok->tenant_id);
	free(tok->object_id);
	tok->access_token = NULL;
	tok->resource = NULL;
	tok->token_type = NULL;
	tok->tenant_id = NULL;
	tok->object_id = NULL;
	tok->expires_on = 0;
	tok->refresh_on = 0;
}
