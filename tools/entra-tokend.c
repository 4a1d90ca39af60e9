/* entra-tokend: the token service. The one holder of the sessions'
 * refresh tokens and of managed-identity access; serves each session's
 * tokens on 127.0.0.1 through the App Service managed-identity protocol
 * to processes of the session's uid that present its secret.
 *
 * Threads: the main thread accepts on both sockets and scans /proc; each
 * connection gets a detached thread (at most --max-connections at once,
 * each bounded by --client-timeout to send its request), so one slow
 * client or one slow refresh never blocks the others. Tokens are cached
 * per (session, resource); concurrent requests for a missing token wait
 * for the one fetch in flight (single-flight). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <json-c/json.h>
#include <openssl/evp.h>

#include "buf.h"
#include "fsutil.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "msi.h"
#include "names.h"
#include "oidc.h"
#include "peer.h"
#include "session.h"
#include "tokend.h"
#include "tokens.h"

#define MAX_SESSIONS 4096
#define MAX_RESOURCES_PER_SESSION 16
#define MAX_UNIX_CONNECTIONS 16
#define REGISTER_TIMEOUT_MS 2000
#define PRIVATE_STORE_MAX (256 * 1024)
#define REFRESH_MARGIN ENTRA_MSI_REFRESH_MARGIN
#define THREAD_STACK (512 * 1024)
#define HASH_LEN 32

extern char **environ;

enum fetch_result {
	FETCH_OK,
	FETCH_NEEDS_LOGIN,  /* the refresh token is expired or revoked */
	FETCH_GRANT_ERROR,  /* Entra refused this resource (consent, bad scope...) */
	FETCH_UNAVAILABLE,  /* transport, discovery, managed-identity endpoint */
	FETCH_BUSY,         /* waited too long for another request's fetch */
};

struct cache_entry {
	char *resource;
	char *access_token;        /* secret */
	int64_t expires_on;
	bool fetching;
	unsigned long generation;  /* bumped when a fetch ends */
	enum fetch_result last_result;
	char last_error[64];       /* OAuth error name of the last failure */
	long last_code;            /* its first AADSTS code */
	struct cache_entry *next;
};

struct session {
	char id[ENTRA_SESSION_ID_LEN + 1];
	char user[ENTRA_NAME_MAX + 1];
	uid_t uid;
	bool managed;                      /* a service account's managed identity */
	unsigned char secret_hash[HASH_LEN];
	char *refresh_token;               /* secret; NULL for managed identities */
	bool refresh_dead;                 /* Entra said: sign in again */
	time_t registered_at;
	pthread_mutex_t lock;              /* cache, refresh_token, refresh_dead */
	pthread_cond_t done;
	struct cache_entry *cache;
	size_t ncache;
	int refs;                          /* under D.lock */
	struct session *next;
};

static struct {
	struct entra_config *cfg;
	struct entra_log log;
	bool use_syslog;
	uid_t self;
	int scan_interval;       /* seconds */
	int grace;               /* seconds a session may live without a process of its uid */
	int client_timeout_ms;
	int max_connections;
	pthread_mutex_t lock;    /* sessions, nsessions, refs */
	struct session *sessions;
	size_t nsessions;
	atomic_int tcp_conns, unix_conns;
	pthread_mutex_t oidc_lock;
	struct entra_oidc oidc;
	bool oidc_init;
	char *unix_path_created; /* unlinked at exit when we created it */
	int sigpipe[2];
} D = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.oidc_lock = PTHREAD_MUTEX_INITIALIZER,
	.scan_interval = 60,
	.grace = 120,
	.client_timeout_ms = 5000,
	.max_connections = 256,
	.sigpipe = { -1, -1 },
};

/* ---- logging ------------------------------------------------------------ */

static void emit(void *host, int priority, const char *line)
{
	(void)host;
	if (D.use_syslog)
		syslog(priority, "%s", line);
	else
		fprintf(stderr, "entra-tokend: %s\n", line);
}

/* ---- sessions ----------------------------------------------------------- */

static void hash_secret(const char *secret, size_t len, unsigned char out[HASH_LEN])
{
	unsigned int n = HASH_LEN;

	if (EVP_Digest(secret, len, out, &n, EVP_sha256(), NULL) != 1)
		memset(out, 0, HASH_LEN); /* never matches: secrets are 64 hex chars */
}

static void cache_entry_free(struct cache_entry *e)
{
	free(e->resource);
	entra_free_secret(e->access_token);
	free(e);
}

static void session_free(struct session *s)
{
	struct cache_entry *e, *next;

	for (e = s->cache; e != NULL; e = next) {
		next = e->next;
		cache_entry_free(e);
	}
	entra_free_secret(s->refresh_token);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->done);
	explicit_bzero(s, sizeof(*s));
	free(s);
}

static void session_put(struct session *s)
{
	bool last;

	pthread_mutex_lock(&D.lock);
	last = --s->refs == 0;
	pthread_mutex_unlock(&D.lock);
	if (last)
		session_free(s);
}

/* Unlink a session from the table (D.lock held); the table's reference is
 * dropped by the caller after unlocking. */
static struct session *unlink_session(const char *id)
{
	for (struct session **p = &D.sessions; *p != NULL; p = &(*p)->next) {
		if (strcmp((*p)->id, id) == 0) {
			struct session *s = *p;

			*p = s->next;
			D.nsessions--;
			return s;
		}
	}
	return NULL;
}

static void drop_table_ref(struct session *s)
{
	/* Wipe the refresh token now, not when the last in-flight request
	 * lets go: a forgotten session's secrets should not linger. */
	pthread_mutex_lock(&s->lock);
	entra_free_secret(s->refresh_token);
	s->refresh_token = NULL;
	s->refresh_dead = true;
	pthread_mutex_unlock(&s->lock);
	session_put(s);
}

/* The session whose secret this is, with a reference; NULL if none. Every
 * session's hash is compared in constant time, none skipped. */
static struct session *find_by_secret(const char *secret)
{
	unsigned char h[HASH_LEN];
	struct session *found = NULL;

	if (secret == NULL || strlen(secret) != ENTRA_TOKEND_SECRET_LEN)
		return NULL;
	hash_secret(secret, strlen(secret), h);
	pthread_mutex_lock(&D.lock);
	for (struct session *s = D.sessions; s != NULL; s = s->next)
		if (entra_memeq_consttime(s->secret_hash, h, HASH_LEN) && found == NULL)
			found = s;
	if (found != NULL)
		found->refs++;
	pthread_mutex_unlock(&D.lock);
	explicit_bzero(h, sizeof(h));
	return found;
}

/* ---- fetching tokens ---------------------------------------------------- */

static struct entra_http *new_http(bool plain)
{
	struct entra_http_options opt = {
		.ca_file = D.cfg->ca_file,
		.timeout_ms = (long)D.cfg->http_timeout * 1000,
		.allow_plain_http = plain,
		.proxy = D.cfg->https_proxy,
	};

	return entra_http_new(&opt, &D.log);
}

/* The token endpoint from discovery (cached on disk and in memory). */
static char *token_endpoint(struct entra_http *http)
{
	char *out = NULL;
	int rc;

	pthread_mutex_lock(&D.oidc_lock);
	if (!D.oidc_init) {
		rc = entra_oidc_init(&D.oidc, D.cfg->authority, D.cfg->tenant, D.cfg->cache_dir);
		if (rc < 0) {
			entra_log(&D.log, LOG_ERR, "OIDC setup for %s failed: %s", D.cfg->authority,
				  strerror(-rc));
			goto out;
		}
		D.oidc_init = true;
	}
	rc = entra_oidc_load(&D.oidc, http, &D.log, time(NULL));
	if (rc == 0 && D.oidc.metadata.token_endpoint != NULL)
		out = strdup(D.oidc.metadata.token_endpoint);
out:
	pthread_mutex_unlock(&D.oidc_lock);
	return out;
}

struct fetched {
	char *access_token;
	char *refresh_token;
	int64_t expires_on;
	char error[64];
	long code;
	bool kill_refresh;   /* the refresh token itself is dead */
};

static void fetched_clear(struct fetched *f)
{
	entra_free_secret(f->access_token);
	entra_free_secret(f->refresh_token);
	memset(f, 0, sizeof(*f));
}

static bool refresh_token_is_dead(const struct entra_oauth_error *err)
{
	static const long codes[] = { 700082, 50173, 9002313, 700084, 50133 };

	for (size_t i = 0; i < err->code_count; i++)
		for (size_t j = 0; j < sizeof(codes) / sizeof(codes[0]); j++)
			if (err->codes[i] == codes[j])
				return true;
	return err->code_count == 0 && err->error != NULL && strcmp(err->error, "invalid_grant") == 0;
}

static enum fetch_result fetch_user(const struct session *s, const char *refresh_token,
				    const char *resource, struct fetched *out)
{
	struct entra_token_response tok;
	struct entra_oauth_error err;
	struct entra_http *http = new_http(false);
	enum entra_token_result tr;
	enum fetch_result result = FETCH_UNAVAILABLE;
	char *endpoint = NULL, *scope = NULL, reason[512];

	if (http == NULL)
		return FETCH_UNAVAILABLE;
	entra_http_set_deadline(http, entra_monotonic_ms() + (int64_t)D.cfg->http_timeout * 2000);
	scope = entra_tokend_refresh_scope(resource);
	endpoint = token_endpoint(http);
	if (scope == NULL || endpoint == NULL)
		goto out;
	tr = entra_token_refresh(http, endpoint, D.cfg->client_id, refresh_token, scope, NULL,
				 time(NULL), &tok, &err);
	if (tr == ENTRA_TOKEN_OK) {
		out->access_token = tok.access_token;
		out->refresh_token = tok.refresh_token;
		out->expires_on = (int64_t)tok.expires_on;
		tok.access_token = tok.refresh_token = NULL;
		entra_token_response_free(&tok);
		if (strpbrk(out->access_token, "\"\\") != NULL) {
			fetched_clear(out);
			goto out;
		}
		entra_log(&D.log, LOG_INFO, "session %s (%s): new token for %s by refresh grant%s",
			  s->id, s->user, resource, out->refresh_token ? " (refresh token rotated)" : "");
		result = FETCH_OK;
	} else if (tr == ENTRA_TOKEN_ERROR) {
		entra_oauth_error_log_reason(&err, reason, sizeof(reason));
		snprintf(out->error, sizeof(out->error), "%s", err.error);
		for (char *p = out->error; *p; p++)
			if (!((*p >= 'a' && *p <= 'z') || *p == '_'))
				*p = '_';
		out->code = err.code_count > 0 ? err.codes[0] : 0;
		out->kill_refresh = refresh_token_is_dead(&err);
		result = entra_tokend_needs_login(&err) ? FETCH_NEEDS_LOGIN : FETCH_GRANT_ERROR;
		entra_log(&D.log, LOG_WARNING, "session %s (%s): refresh grant for %s refused: %s",
			  s->id, s->user, resource, reason);
		entra_oauth_error_free(&err);
	} else {
		entra_log(&D.log, LOG_WARNING, "session %s (%s): refresh grant for %s failed (transport or malformed answer)",
			  s->id, s->user, resource);
	}
out:
	free(scope);
	free(endpoint);
	entra_http_free(http);
	return result;
}

static enum fetch_result fetch_managed(const struct session *s, const char *resource,
				       struct fetched *out)
{
	struct entra_http *http = new_http(true);
	struct entra_msi_token tok;
	struct entra_msi_request req = {
		.source = D.cfg->msi_source,
		.env = (const char *const *)environ,
		.imds_host = D.cfg->imds_endpoint,
		.client_id = entra_tokend_service_client_id(D.cfg, s->user),
		.resource = resource,
		.cache_dir = D.cfg->cache_dir,
		.total_ms = (long)D.cfg->http_timeout * 1000,
	};
	int rc;

	memset(&tok, 0, sizeof(tok));
	if (http == NULL)
		return FETCH_UNAVAILABLE;
	rc = entra_msi_get_token(&req, http, &D.log, &tok);
	entra_http_free(http);
	if (rc < 0) {
		entra_log(&D.log, LOG_WARNING, "session %s (%s): no managed-identity token for %s: %s",
			  s->id, s->user, resource, tok.error);
		snprintf(out->error, sizeof(out->error), "%s",
			 rc == -ENOENT ? "identity_not_found" : "managed_identity_unavailable");
		entra_msi_token_clear(&tok);
		return rc == -ENOENT || rc == -EACCES ? FETCH_GRANT_ERROR : FETCH_UNAVAILABLE;
	}
	if (strpbrk(tok.access_token, "\"\\") != NULL) {
		entra_msi_token_clear(&tok);
		return FETCH_UNAVAILABLE;
	}
	out->access_token = tok.access_token;
	out->expires_on = tok.expires_on;
	tok.access_token = NULL;
	entra_msi_token_clear(&tok);
	return FETCH_OK;
}

static struct cache_entry *cache_find(struct session *s, const char *resource)
{
	for (struct cache_entry *e = s->cache; e != NULL; e = e->next)
		if (strcmp(e->resource, resource) == 0)
			return e;
	return NULL;
}

/* Room for one more entry (s->lock held): drop the idle entry that
 * expires first. false when every entry is busy. */
static bool cache_make_room(struct session *s)
{
	struct cache_entry **victim = NULL;

	if (s->ncache < MAX_RESOURCES_PER_SESSION)
		return true;
	for (struct cache_entry **p = &s->cache; *p != NULL; p = &(*p)->next)
		if (!(*p)->fetching && (victim == NULL || (*p)->expires_on < (*victim)->expires_on))
			victim = p;
	if (victim == NULL)
		return false;
	{
		struct cache_entry *e = *victim;

		*victim = e->next;
		cache_entry_free(e);
		s->ncache--;
	}
	return true;
}

/* A token for (s, resource): from the cache, else one fetch shared by every
 * concurrent request for the same pair. On FETCH_OK *token is a malloc'd
 * copy. error/code describe a failure. */
static enum fetch_result get_token(struct session *s, const char *resource, char **token,
				   int64_t *expires_on, char *error, size_t errlen, long *code)
{
	struct cache_entry *e;
	struct fetched f;
	enum fetch_result result;
	char *refresh = NULL;
	struct timespec until;

	*token = NULL;
	error[0] = '\0';
	*code = 0;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += (time_t)D.cfg->http_timeout * 3;
	pthread_mutex_lock(&s->lock);
	for (;;) {
		e = cache_find(s, resource);
		if (e != NULL && e->access_token != NULL &&
		    e->expires_on - (int64_t)time(NULL) > REFRESH_MARGIN) {
			*token = strdup(e->access_token);
			*expires_on = e->expires_on;
			pthread_mutex_unlock(&s->lock);
			return *token != NULL ? FETCH_OK : FETCH_UNAVAILABLE;
		}
		if (e == NULL || !e->fetching)
			break;
		{
			unsigned long gen = e->generation;

			while (e->fetching && e->generation == gen)
				if (pthread_cond_timedwait(&s->done, &s->lock, &until) == ETIMEDOUT)
					break;
			if (e->fetching && e->generation == gen) {
				pthread_mutex_unlock(&s->lock);
				snprintf(error, errlen, "busy");
				return FETCH_BUSY;
			}
			/* The fetch we waited for failed: share its answer
			 * rather than start another. */
			if (e->last_result == FETCH_OK && e->access_token != NULL &&
			    e->expires_on > (int64_t)time(NULL)) {
				*token = strdup(e->access_token);
				*expires_on = e->expires_on;
				pthread_mutex_unlock(&s->lock);
				return *token != NULL ? FETCH_OK : FETCH_UNAVAILABLE;
			}
			if (e->last_result != FETCH_OK) {
				result = e->last_result;
				snprintf(error, errlen, "%s", e->last_error);
				*code = e->last_code;
				pthread_mutex_unlock(&s->lock);
				return result;
			}
		}
	}
	if (!s->managed && (s->refresh_dead || s->refresh_token == NULL)) {
		pthread_mutex_unlock(&s->lock);
		snprintf(error, errlen, "interaction_required");
		return FETCH_NEEDS_LOGIN;
	}
	if (e == NULL) {
		if (!cache_make_room(s) || (e = calloc(1, sizeof(*e))) == NULL) {
			pthread_mutex_unlock(&s->lock);
			snprintf(error, errlen, "busy");
			return FETCH_BUSY;
		}
		e->resource = strdup(resource);
		if (e->resource == NULL) {
			free(e);
			pthread_mutex_unlock(&s->lock);
			return FETCH_UNAVAILABLE;
		}
		e->next = s->cache;
		s->cache = e;
		s->ncache++;
	}
	e->fetching = true;
	if (!s->managed)
		refresh = strdup(s->refresh_token);
	pthread_mutex_unlock(&s->lock);

	memset(&f, 0, sizeof(f));
	if (s->managed)
		result = fetch_managed(s, resource, &f);
	else if (refresh == NULL)
		result = FETCH_UNAVAILABLE;
	else
		result = fetch_user(s, refresh, resource, &f);
	entra_free_secret(refresh);

	pthread_mutex_lock(&s->lock);
	e->fetching = false;
	e->generation++;
	e->last_result = result;
	snprintf(e->last_error, sizeof(e->last_error), "%s", f.error);
	e->last_code = f.code;
	if (result == FETCH_OK) {
		entra_free_secret(e->access_token);
		e->access_token = f.access_token;
		e->expires_on = f.expires_on;
		f.access_token = NULL;
		/* Rotation: keep the newest refresh token (a forgotten session
		 * has none left to replace). */
		if (f.refresh_token != NULL && s->refresh_token != NULL) {
			entra_free_secret(s->refresh_token);
			s->refresh_token = f.refresh_token;
			f.refresh_token = NULL;
		}
		*token = strdup(e->access_token);
		*expires_on = e->expires_on;
		if (*token == NULL)
			result = FETCH_UNAVAILABLE;
	} else if (f.kill_refresh) {
		s->refresh_dead = true;
		entra_log(&D.log, LOG_NOTICE, "session %s (%s): refresh token expired or revoked; the user must log in again",
			  s->id, s->user);
	}
	snprintf(error, errlen, "%s", f.error);
	*code = f.code;
	pthread_cond_broadcast(&s->done);
	pthread_mutex_unlock(&s->lock);
	fetched_clear(&f);
	return result;
}

/* ---- I/O helpers -------------------------------------------------------- */

static int64_t left_ms(int64_t deadline)
{
	int64_t left = deadline - entra_monotonic_ms();

	return left < 0 ? 0 : left;
}

/* Read more bytes into buf (size cap) before the deadline. >0 bytes read,
 * 0 EOF, -ETIMEDOUT, -errno. */
static ssize_t read_some(int fd, char *buf, size_t cap, int64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	for (;;) {
		int rc = poll(&p, 1, (int)left_ms(deadline));
		ssize_t n;

		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0)
			return -errno;
		if (rc == 0)
			return -ETIMEDOUT;
		n = recv(fd, buf, cap, 0);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		return n < 0 ? -errno : n;
	}
}

static void write_all(int fd, const char *data, size_t len, int64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };

	while (len > 0) {
		ssize_t n = send(fd, data, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			if (poll(&p, 1, (int)left_ms(deadline)) <= 0)
				return;
			continue;
		}
		if (n <= 0)
			return;
		data += n;
		len -= (size_t)n;
	}
}

/* ---- HTTP --------------------------------------------------------------- */

static const char *status_text(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 431: return "Request Header Fields Too Large";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	default: return "Error";
	}
}

/* Send status + a JSON body; the body is wiped afterwards (it may hold a
 * token). */
static void respond(int fd, int status, struct json_object *body, int64_t deadline)
{
	struct entra_buf out;
	const char *text = json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN |
							  JSON_C_TO_STRING_NOSLASHESCAPE);
	size_t len = strlen(text);

	entra_buf_init(&out, len + 512);
	if (entra_buf_printf(&out,
			     "HTTP/1.1 %d %s\r\nContent-Type: application/json; charset=utf-8\r\n"
			     "Content-Length: %zu\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
			     status, status_text(status), len) == 0 &&
	    entra_buf_append(&out, text, len) == 0)
		write_all(fd, out.data, out.len, deadline);
	entra_buf_free(&out);
	explicit_bzero((char *)text, len);
}

/* The error shape both SDKs read: azure-identity (Python) shows the whole
 * body, msal-node takes "message" (else error_description) and "error". */
static void respond_error(int fd, int status, const char *error, const char *message,
			  long code, int64_t deadline)
{
	struct json_object *body = json_object_new_object();

	if (body == NULL)
		return;
	json_object_object_add(body, "statusCode", json_object_new_int(status));
	json_object_object_add(body, "message", json_object_new_string(message));
	json_object_object_add(body, "error", json_object_new_string(error));
	json_object_object_add(body, "error_description", json_object_new_string(message));
	if (code > 0) {
		struct json_object *codes = json_object_new_array();

		json_object_array_add(codes, json_object_new_int64(code));
		json_object_object_add(body, "error_codes", codes);
	}
	respond(fd, status, body, deadline);
	json_object_put(body);
}

static const char MSG_UNAUTHORIZED[] =
	"The token service does not know this session, or this process may not use it. "
	"Log in again to start a new session.";

static void respond_token(int fd, const char *token, int64_t expires_on, const char *resource,
			  int64_t deadline)
{
	struct json_object *body = json_object_new_object(), *t;
	char exp[32];

	if (body == NULL)
		return;
	snprintf(exp, sizeof(exp), "%lld", (long long)expires_on);
	t = json_object_new_string(token);
	json_object_object_add(body, "access_token", t);
	json_object_object_add(body, "expires_on", json_object_new_string(exp));
	json_object_object_add(body, "resource", json_object_new_string(resource));
	json_object_object_add(body, "token_type", json_object_new_string("Bearer"));
	respond(fd, 200, body, deadline);
	explicit_bzero((char *)json_object_get_string(t), (size_t)json_object_get_string_len(t));
	json_object_put(body);
}

static void serve_http(int fd)
{
	int64_t deadline = entra_monotonic_ms() + D.client_timeout_ms;
	char buf[ENTRA_TOKEND_MAX_HEADER + 1];
	struct entra_tokend_http_request req;
	struct session *s = NULL;
	size_t got = 0;
	uid_t peer;
	int rc = -EAGAIN;

	memset(&req, 0, sizeof(req));
	while (rc == -EAGAIN) {
		ssize_t n = read_some(fd, buf + got, ENTRA_TOKEND_MAX_HEADER - got, deadline);

		if (n == -ETIMEDOUT) {
			respond_error(fd, 408, "request_timeout", "The request did not arrive in time.", 0,
				      entra_monotonic_ms() + 1000);
			goto out;
		}
		if (n <= 0)
			goto out;
		got += (size_t)n;
		rc = entra_tokend_http_parse(buf, got, &req);
	}
	/* From here on the deadline covers writing only. */
	deadline = entra_monotonic_ms() + D.client_timeout_ms;
	if (rc == -E2BIG) {
		respond_error(fd, 431, "invalid_request", "Request headers too large.", 0, deadline);
		goto out;
	}
	if (rc < 0) {
		respond_error(fd, 400, "invalid_request", "Malformed HTTP request.", 0, deadline);
		goto out;
	}
	if (strcmp(req.path, ENTRA_TOKEND_PATH) != 0) {
		respond_error(fd, 404, "not_found", "Unknown path; the endpoint is " ENTRA_TOKEND_PATH ".",
			      0, deadline);
		goto out;
	}
	if (strcmp(req.method, "GET") != 0) {
		respond_error(fd, 405, "invalid_request", "Only GET is supported.", 0, deadline);
		goto out;
	}
	if (req.api_version == NULL || strcmp(req.api_version, ENTRA_TOKEND_API_VERSION) != 0) {
		respond_error(fd, 400, "invalid_request",
			      "api-version must be " ENTRA_TOKEND_API_VERSION ".", 0, deadline);
		goto out;
	}
	if (req.resource == NULL || req.resource[0] == '\0' || strchr(req.resource, ' ') != NULL) {
		respond_error(fd, 400, "invalid_request", "A single resource is required.", 0, deadline);
		goto out;
	}
	s = find_by_secret(req.identity_header);
	if (s == NULL) {
		entra_log(&D.log, LOG_NOTICE, "token request refused: %s X-IDENTITY-HEADER",
			  req.identity_header == NULL ? "no" : "unknown");
		respond_error(fd, 401, "unauthorized", MSG_UNAUTHORIZED, 0, deadline);
		goto out;
	}
	rc = entra_peer_tcp_uid(fd, &peer);
	if (rc < 0 || peer != s->uid) {
		if (rc < 0)
			entra_log(&D.log, LOG_WARNING, "session %s: token request refused: owner of the client socket unknown (%s)",
				  s->id, strerror(-rc));
		else
			entra_log(&D.log, LOG_WARNING, "session %s (uid %lu): token request from uid %lu refused: the secret is not that uid's",
				  s->id, (unsigned long)s->uid, (unsigned long)peer);
		respond_error(fd, 401, "unauthorized", MSG_UNAUTHORIZED, 0, deadline);
		goto out;
	}
	if (req.selector_name != NULL) {
		const char *own = s->managed ? entra_tokend_service_client_id(D.cfg, s->user) : NULL;

		if (own == NULL || strcmp(req.selector_name, "client_id") != 0 ||
		    !entra_streq_nocase(own, req.selector_value)) {
			respond_error(fd, 400, "invalid_request",
				      "Unable to load the proper Managed Identity: this session has one identity.",
				      0, deadline);
			goto out;
		}
	}
	{
		char *token = NULL, error[64];
		int64_t expires_on = 0;
		long code = 0;
		enum fetch_result r = get_token(s, req.resource, &token, &expires_on, error,
						sizeof(error), &code);

		deadline = entra_monotonic_ms() + D.client_timeout_ms;
		switch (r) {
		case FETCH_OK:
			respond_token(fd, token, expires_on, req.resource, deadline);
			break;
		case FETCH_NEEDS_LOGIN:
			respond_error(fd, 400, "interaction_required",
				      "The sign-in of this session has expired or was revoked: log in again.",
				      code, deadline);
			break;
		case FETCH_GRANT_ERROR:
			respond_error(fd, 400, error[0] ? error : "invalid_request",
				      s->managed ? "Unable to load the proper Managed Identity."
						 : "Microsoft Entra ID refused a token for this resource (see the system log).",
				      code, deadline);
			break;
		case FETCH_BUSY:
			respond_error(fd, 503, "temporarily_unavailable",
				      "The token service is busy; try again.", 0, deadline);
			break;
		default:
			respond_error(fd, 502, "temporarily_unavailable",
				      "The identity provider could not be reached; try again.", 0, deadline);
			break;
		}
		entra_free_secret(token);
	}
out:
	if (s != NULL)
		session_put(s);
	entra_tokend_http_request_free(&req);
	explicit_bzero(buf, sizeof(buf));
}

/* ---- registration ------------------------------------------------------- */

static void reply(int fd, bool ok, const char *error)
{
	char line[512];
	int n = ok ? snprintf(line, sizeof(line), "{\"ok\":true}\n")
		   : snprintf(line, sizeof(line), "{\"ok\":false,\"error\":\"%s\"}\n",
			      error != NULL ? error : "refused");

	write_all(fd, line, (size_t)n, entra_monotonic_ms() + REGISTER_TIMEOUT_MS);
}

/* The refresh token of a person's session from run_dir/private/<id>,
 * checked against the registration. malloc'd secret or NULL (logged). The
 * parsed copies of the entry's secrets are wiped before they are freed. */
static char *read_private_store(const char *id, uid_t uid, const char *user)
{
	struct entra_buf text;
	struct json_object *obj = NULL;
	const char *rt, *who;
	int64_t stored_uid;
	char *out = NULL;
	int run_fd, fd, rc;

	run_fd = entra_dir_open_trusted(D.cfg->run_dir, D.self);
	if (run_fd < 0) {
		entra_log(&D.log, LOG_ERR, "session %s: cannot open %s: %s", id, D.cfg->run_dir, strerror(-run_fd));
		return NULL;
	}
	fd = openat(run_fd, "private", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	close(run_fd);
	if (fd < 0) {
		entra_log(&D.log, LOG_ERR, "session %s: no private store: %s", id, strerror(errno));
		return NULL;
	}
	rc = entra_read_file_trusted(fd, id, PRIVATE_STORE_MAX, D.self, &text);
	close(fd);
	if (rc < 0) {
		entra_log(&D.log, LOG_ERR, "session %s: cannot read its private store entry: %s", id, strerror(-rc));
		return NULL;
	}
	obj = entra_json_parse_object(text.data, text.len);
	entra_buf_free(&text);
	if (obj == NULL) {
		entra_log(&D.log, LOG_ERR, "session %s: private store entry is not valid JSON", id);
		return NULL;
	}
	rt = entra_json_get_string(obj, "refresh_token");
	who = entra_json_get_string(obj, "user");
	if (entra_json_get_int64(obj, "uid", &stored_uid) < 0 || stored_uid != (int64_t)uid ||
	    who == NULL || strcmp(who, user) != 0) {
		entra_log(&D.log, LOG_ERR, "session %s: private store entry is for another user or uid", id);
	} else if (rt == NULL || !entra_value_is_safe(rt, 64 * 1024) || rt[0] == '\0') {
		entra_log(&D.log, LOG_ERR, "session %s: private store entry holds no usable refresh token", id);
	} else {
		out = strdup(rt);
	}
	/* The entry holds the session's first access token too. */
	entra_json_wipe_member(obj, "refresh_token");
	entra_json_wipe_member(obj, "access_token");
	json_object_put(obj);
	return out;
}

static bool is_hex64(const char *s)
{
	if (s == NULL || strlen(s) != ENTRA_TOKEND_SECRET_LEN)
		return false;
	for (size_t i = 0; i < ENTRA_TOKEND_SECRET_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

static void do_register(int fd, struct json_object *msg)
{
	const char *id = entra_json_get_string(msg, "session_id");
	const char *user = entra_json_get_string(msg, "user");
	const char *kind = entra_json_get_string(msg, "identity_kind");
	const char *secret = entra_json_get_string(msg, "secret");
	struct session *s, *old = NULL;
	int64_t uid;

	if (!entra_session_id_is_valid(id) || !entra_name_is_valid(user) || kind == NULL ||
	    (strcmp(kind, "user") != 0 && strcmp(kind, "managed-identity") != 0) ||
	    entra_json_get_int64(msg, "uid", &uid) < 0 || uid < 0 || uid >= (int64_t)UINT32_MAX ||
	    !is_hex64(secret)) {
		reply(fd, false, "malformed registration");
		return;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		reply(fd, false, "out of memory");
		return;
	}
	memcpy(s->id, id, ENTRA_SESSION_ID_LEN + 1);
	snprintf(s->user, sizeof(s->user), "%s", user);
	s->uid = (uid_t)uid;
	s->managed = strcmp(kind, "managed-identity") == 0;
	s->registered_at = time(NULL);
	s->refs = 1;
	hash_secret(secret, strlen(secret), s->secret_hash);
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->done, NULL);
	if (!s->managed) {
		s->refresh_token = read_private_store(id, s->uid, user);
		if (s->refresh_token == NULL) {
			session_free(s);
			reply(fd, false, "no refresh token in the private store");
			return;
		}
	}
	pthread_mutex_lock(&D.lock);
	old = unlink_session(id);
	if (D.nsessions >= MAX_SESSIONS) {
		pthread_mutex_unlock(&D.lock);
		if (old != NULL)
			drop_table_ref(old);
		session_free(s);
		entra_log(&D.log, LOG_ERR, "session %s refused: %d sessions registered already", id, MAX_SESSIONS);
		reply(fd, false, "too many sessions");
		return;
	}
	s->next = D.sessions;
	D.sessions = s;
	D.nsessions++;
	pthread_mutex_unlock(&D.lock);
	if (old != NULL)
		drop_table_ref(old);
	entra_log(&D.log, LOG_NOTICE, "session %s registered: %s (uid %lu, %s)", s->id, s->user,
		  (unsigned long)s->uid, s->managed ? "managed identity" : "user");
	reply(fd, true, NULL);
}

static void do_unregister(int fd, struct json_object *msg)
{
	const char *id = entra_json_get_string(msg, "session_id");
	struct session *s;
	char line[64];

	if (!entra_session_id_is_valid(id)) {
		reply(fd, false, "malformed session id");
		return;
	}
	pthread_mutex_lock(&D.lock);
	s = unlink_session(id);
	pthread_mutex_unlock(&D.lock);
	if (s != NULL) {
		entra_log(&D.log, LOG_NOTICE, "session %s unregistered (%s, uid %lu)", s->id, s->user,
			  (unsigned long)s->uid);
		drop_table_ref(s);
	}
	snprintf(line, sizeof(line), "{\"ok\":true,\"found\":%s}\n", s != NULL ? "true" : "false");
	write_all(fd, line, strlen(line), entra_monotonic_ms() + REGISTER_TIMEOUT_MS);
}

static void do_list(int fd)
{
	struct json_object *body = json_object_new_object(), *list = json_object_new_array();
	struct entra_buf out;

	pthread_mutex_lock(&D.lock);
	for (struct session *s = D.sessions; s != NULL; s = s->next) {
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "session_id", json_object_new_string(s->id));
		json_object_object_add(o, "uid", json_object_new_int64(s->uid));
		json_object_object_add(o, "user", json_object_new_string(s->user));
		json_object_object_add(o, "identity_kind",
				       json_object_new_string(s->managed ? "managed-identity" : "user"));
		pthread_mutex_lock(&s->lock);
		json_object_object_add(o, "resources", json_object_new_int64((int64_t)s->ncache));
		json_object_object_add(o, "needs_login", json_object_new_boolean(s->refresh_dead && !s->managed));
		if (s->refresh_token != NULL) {
			/* A short fingerprint, so that tests and admins can see a
			 * rotation without the token ever leaving the daemon. */
			unsigned char h[HASH_LEN];
			char hex[17];

			hash_secret(s->refresh_token, strlen(s->refresh_token), h);
			for (int i = 0; i < 8; i++)
				snprintf(hex + 2 * i, 3, "%02x", h[i]);
			json_object_object_add(o, "refresh_token_id", json_object_new_string(hex));
		}
		pthread_mutex_unlock(&s->lock);
		json_object_array_add(list, o);
	}
	pthread_mutex_unlock(&D.lock);
	json_object_object_add(body, "ok", json_object_new_boolean(1));
	json_object_object_add(body, "sessions", list);
	entra_buf_init(&out, 4 * 1024 * 1024);
	if (entra_buf_append_str(&out, json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN)) == 0 &&
	    entra_buf_append(&out, "\n", 1) == 0)
		write_all(fd, out.data, out.len, entra_monotonic_ms() + REGISTER_TIMEOUT_MS);
	entra_buf_free(&out);
	json_object_put(body);
}

static void serve_unix(int fd)
{
	int64_t deadline = entra_monotonic_ms() + REGISTER_TIMEOUT_MS;
	char buf[ENTRA_TOKEND_MAX_MESSAGE + 1];
	struct json_object *msg = NULL;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	const char *op;
	size_t got = 0;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || len != sizeof(cred)) {
		reply(fd, false, "no peer credentials");
		return;
	}
	if (cred.uid != 0 && cred.uid != D.self) {
		entra_log(&D.log, LOG_WARNING, "registration socket: request from uid %lu (pid %ld) refused: root only",
			  (unsigned long)cred.uid, (long)cred.pid);
		reply(fd, false, "permission denied");
		return;
	}
	while (got < ENTRA_TOKEND_MAX_MESSAGE) {
		ssize_t n = read_some(fd, buf + got, ENTRA_TOKEND_MAX_MESSAGE - got, deadline);

		if (n < 0) {
			reply(fd, false, n == -ETIMEDOUT ? "timeout" : "read error");
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
		if (buf[got - 1] == '\n')
			break;
	}
	while (got > 0 && buf[got - 1] == '\n')
		got--;
	buf[got] = '\0';
	msg = entra_json_parse_object(buf, got);
	op = msg != NULL ? entra_json_get_string(msg, "op") : NULL;
	if (op == NULL)
		reply(fd, false, "malformed request");
	else if (strcmp(op, "register") == 0)
		do_register(fd, msg);
	else if (strcmp(op, "unregister") == 0)
		do_unregister(fd, msg);
	else if (strcmp(op, "list") == 0)
		do_list(fd);
	else
		reply(fd, false, "unknown op");
out:
	if (msg != NULL) {
		entra_json_wipe_member(msg, "secret");
		json_object_put(msg);
	}
	explicit_bzero(buf, sizeof(buf));
}

/* ---- connections -------------------------------------------------------- */

struct conn {
	int fd;
	bool is_unix;
};

static void *conn_thread(void *arg)
{
	struct conn c = *(struct conn *)arg;

	free(arg);
	if (c.is_unix)
		serve_unix(c.fd);
	else
		serve_http(c.fd);
	shutdown(c.fd, SHUT_WR);
	close(c.fd);
	atomic_fetch_sub(c.is_unix ? &D.unix_conns : &D.tcp_conns, 1);
	return NULL;
}

static void accept_one(int lfd, bool is_unix)
{
#define BUSY_BODY "{\"statusCode\":503,\"error\":\"temporarily_unavailable\"," \
		  "\"message\":\"Too many connections; try again later.\"}"
	static const char busy[] =
		"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
		"Content-Length: 103\r\nConnection: close\r\n\r\n" BUSY_BODY;
	_Static_assert(sizeof(BUSY_BODY) - 1 == 103, "Content-Length of the 503 body");
	atomic_int *count = is_unix ? &D.unix_conns : &D.tcp_conns;
	int limit = is_unix ? MAX_UNIX_CONNECTIONS : D.max_connections;
	pthread_attr_t attr;
	pthread_t tid;
	struct conn *c;
	int fd;

	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	if (atomic_fetch_add(count, 1) >= limit) {
		atomic_fetch_sub(count, 1);
		if (!is_unix)
			(void)!send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		close(fd);
		return;
	}
	c = malloc(sizeof(*c));
	if (c == NULL)
		goto fail;
	c->fd = fd;
	c->is_unix = is_unix;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, THREAD_STACK);
	if (pthread_create(&tid, &attr, conn_thread, c) != 0) {
		pthread_attr_destroy(&attr);
		free(c);
		goto fail;
	}
	pthread_attr_destroy(&attr);
	return;
fail:
	close(fd);
	atomic_fetch_sub(count, 1);
}

/* ---- liveness scan ------------------------------------------------------ */

static void scan_sessions(void)
{
	struct session *gone[64];
	size_t ngone = 0;
	uid_t *uids;
	size_t count;
	time_t now = time(NULL);

	if (entra_running_uids(NULL, &uids, &count) < 0)
		return;
	pthread_mutex_lock(&D.lock);
	for (struct session **p = &D.sessions; *p != NULL && ngone < 64;) {
		struct session *s = *p;

		if (now - s->registered_at >= D.grace && !entra_uid_in_list(uids, count, s->uid)) {
			*p = s->next;
			D.nsessions--;
			gone[ngone++] = s;
		} else {
			p = &s->next;
		}
	}
	pthread_mutex_unlock(&D.lock);
	free(uids);
	for (size_t i = 0; i < ngone; i++) {
		entra_log(&D.log, LOG_NOTICE, "session %s forgotten: uid %lu (%s) has no process left",
			  gone[i]->id, (unsigned long)gone[i]->uid, gone[i]->user);
		drop_table_ref(gone[i]);
	}
}

/* ---- sockets ------------------------------------------------------------ */

static int parse_int(const char *s, long lo, long hi, long *out)
{
	char *end;
	long v;

	if (s == NULL || *s == '\0')
		return -EINVAL;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < lo || v > hi)
		return -EINVAL;
	*out = v;
	return 0;
}

/* systemd socket activation without libsystemd: LISTEN_PID must be us;
 * fds 3..3+LISTEN_FDS-1 are told apart by address family. */
static void activated_sockets(int *unix_fd, int *tcp_fd)
{
	long pid, n;

	if (parse_int(getenv("LISTEN_PID"), 1, INT32_MAX, &pid) < 0 || pid != (long)getpid() ||
	    parse_int(getenv("LISTEN_FDS"), 1, 16, &n) < 0)
		goto out;
	for (int fd = 3; fd < 3 + n; fd++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);

		memset(&ss, 0, sizeof(ss));
		if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
			continue;
		fcntl(fd, F_SETFD, FD_CLOEXEC);
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
		if (ss.ss_family == AF_UNIX && *unix_fd < 0)
			*unix_fd = fd;
		else if (ss.ss_family == AF_INET && *tcp_fd < 0)
			*tcp_fd = fd;
	}
out:
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
}

static int listen_unix(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct stat st;
	mode_t old;
	int fd, rc;

	if (strlen(path) >= sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	memcpy(addr.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			close(fd);
			return -EEXIST;
		}
		/* A live daemon answers: do not steal its socket. */
		if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0 || errno == EAGAIN) {
			close(fd);
			return -EADDRINUSE;
		}
		close(fd);
		unlink(path);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0)
			return -errno;
	}
	old = umask(0177);
	rc = bind(fd, (struct sockaddr *)&addr, sizeof(addr));
	umask(old);
	if (rc < 0 || chmod(path, 0600) < 0 || listen(fd, 64) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	D.unix_path_created = strdup(path);
	return fd;
}

static int listen_tcp(int port)
{
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd, one = 1, rc;

	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, SOMAXCONN) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

static void on_signal(int sig)
{
	/* Saving errno is what POSIX asks of a handler; clang-tidy 14 flags errno. */
	int saved = errno; /* NOLINT(bugprone-signal-handler,cert-sig30-c) */
	unsigned char c = (unsigned char)sig;

	(void)!write(D.sigpipe[1], &c, 1);
	errno = saved;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: entra-tokend [--foreground] [--config PATH] [--debug]\n"
		"                    [--scan-interval S] [--grace S] [--client-timeout MS]\n"
		"                    [--max-connections N]\n");
}

static void shutdown_all(void)
{
	pthread_mutex_lock(&D.lock);
	entra_log(&D.log, LOG_NOTICE, "stopping; %zu session(s) forgotten", D.nsessions);
	for (struct session *s = D.sessions; s != NULL; s = s->next) {
		pthread_mutex_lock(&s->lock);
		entra_free_secret(s->refresh_token);
		s->refresh_token = NULL;
		for (struct cache_entry *e = s->cache; e != NULL; e = e->next) {
			entra_free_secret(e->access_token);
			e->access_token = NULL;
		}
		pthread_mutex_unlock(&s->lock);
	}
	pthread_mutex_unlock(&D.lock);
	if (D.unix_path_created != NULL)
		unlink(D.unix_path_created);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "foreground", no_argument, NULL, 'f' },
		{ "config", required_argument, NULL, 'c' },
		{ "debug", no_argument, NULL, 'd' },
		{ "scan-interval", required_argument, NULL, 's' },
		{ "grace", required_argument, NULL, 'g' },
		{ "client-timeout", required_argument, NULL, 't' },
		{ "max-connections", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config = ENTRA_DEFAULT_CONFIG;
	struct entra_config *cfg;
	bool foreground = false, debug = false;
	int unix_fd = -1, tcp_fd = -1, c, sigpipe[2];
	char err[512];
	long v;

	while ((c = getopt_long(argc, argv, "fc:d", opts, NULL)) != -1) {
		switch (c) {
		case 'f': foreground = true; break;
		case 'c': config = optarg; break;
		case 'd': debug = true; break;
		case 's':
			if (parse_int(optarg, 1, 86400, &v) < 0)
				goto bad;
			D.scan_interval = (int)v;
			break;
		case 'g':
			if (parse_int(optarg, 0, 86400, &v) < 0)
				goto bad;
			D.grace = (int)v;
			break;
		case 't':
			if (parse_int(optarg, 100, 600000, &v) < 0)
				goto bad;
			D.client_timeout_ms = (int)v;
			break;
		case 'm':
			if (parse_int(optarg, 1, 4096, &v) < 0)
				goto bad;
			D.max_connections = (int)v;
			break;
		case 'h': usage(stdout); return 0;
		default: goto bad;
		}
	}
	if (optind != argc)
		goto bad;

	D.self = geteuid();
	D.use_syslog = !foreground;
	if (D.use_syslog)
		openlog("entra-tokend", LOG_PID, LOG_AUTHPRIV);
	D.log.emit = emit;
	cfg = entra_config_new();
	if (cfg == NULL)
		return 1;
	/* Root's daemon reads only root's config; a daemon run by another
	 * user (tests) trusts that user's files, as it can do no more than
	 * that user anyway. */
	if (entra_config_load(cfg, config, D.self == 0, err, sizeof(err)) < 0 ||
	    entra_config_validate(cfg, err, sizeof(err)) < 0) {
		entra_log(&D.log, LOG_ERR, "configuration %s: %s", config, err);
		entra_config_free(cfg);
		return 1;
	}
	D.cfg = cfg;
	D.log.debug = debug || cfg->debug;

	signal(SIGPIPE, SIG_IGN);
	/* main() uses its locals cfg and sigpipe, not D's: clang's analyzer
	 * takes a call given a pointer into D for a reset of D to its
	 * initializer (cfg NULL). */
	if (pipe2(sigpipe, O_CLOEXEC | O_NONBLOCK) < 0)
		return 1;
	D.sigpipe[0] = sigpipe[0];
	D.sigpipe[1] = sigpipe[1];
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	/* OpenSSL's one-time set-up, before the first client waits on it. */
	entra_http_free(new_http(false));

	activated_sockets(&unix_fd, &tcp_fd);
	if (unix_fd < 0 && (unix_fd = listen_unix(cfg->tokend_socket)) < 0) {
		entra_log(&D.log, LOG_ERR, "cannot listen on %s: %s", cfg->tokend_socket, strerror(-unix_fd));
		return 1;
	}
	if (tcp_fd < 0 && (tcp_fd = listen_tcp(cfg->tokend_port)) < 0) {
		entra_log(&D.log, LOG_ERR, "cannot listen on 127.0.0.1:%d: %s", cfg->tokend_port, strerror(-tcp_fd));
		shutdown_all();
		return 1;
	}
	entra_log(&D.log, LOG_NOTICE, "serving %s and http://127.0.0.1:%d%s", cfg->tokend_socket,
		  cfg->tokend_port, ENTRA_TOKEND_PATH);

	for (;;) {
		struct pollfd p[3] = {
			{ .fd = unix_fd, .events = POLLIN },
			{ .fd = tcp_fd, .events = POLLIN },
			{ .fd = D.sigpipe[0], .events = POLLIN },
		};
		static int64_t next_scan;
		int64_t now = entra_monotonic_ms();
		int rc;

		if (next_scan == 0)
			next_scan = now + (int64_t)D.scan_interval * 1000;
		rc = poll(p, 3, (int)(next_scan > now ? next_scan - now : 0));
		if (rc < 0 && errno != EINTR)
			break;
		if (rc > 0 && (p[2].revents & POLLIN))
			break;
		if (rc > 0 && (p[0].revents & POLLIN))
			accept_one(unix_fd, true);
		if (rc > 0 && (p[1].revents & POLLIN))
			accept_one(tcp_fd, false);
		if (entra_monotonic_ms() >= next_scan) {
			scan_sessions();
			next_scan = entra_monotonic_ms() + (int64_t)D.scan_interval * 1000;
		}
	}
	shutdown_all();
	return 0;
bad:
	usage(stderr);
	return 2;
}
