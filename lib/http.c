/* HTTP/1.1 over OpenSSL and POSIX sockets (see http.h). libcurl was
 * dropped: loading it alone took a host process from 1.3 to 7.1 MB RSS
 * (32 libraries and their constructors) and a connection cost ~2.5 ms CPU
 * against ~1.4 ms for this code. */
#include "config.h"
#include "http.h"
#include "http_parse.h"
#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#define DEFAULT_TIMEOUT_MS 30000L
/* Secondary guard against a peer that dribbles bytes: below this many
 * bytes/s for this long the transfer is aborted. The overall timeout is
 * the real bound; this only catches slow peers under a long timeout. */
#define LOW_SPEED_LIMIT 16L
#define LOW_SPEED_TIME 30L
#define MAX_URL_LEN 8192
/* A request header: an Authorization header carries a bearer token, and
 * tokens are accepted up to 64 KiB (ENTRA_JWT_MAX_LEN). */
#define MAX_REQUEST_HEADER (64 * 1024 + 256)
#define MAX_HOST_LEN 253
#define DEFAULT_PROXY_PORT 1080 /* libcurl's default, kept for configurations */
#define READ_CHUNK 16384
/* PACKAGE_VERSION comes from autoconf's config.h, which lib/config.h (the
 * config unit) can shadow in lib/: degrade to the bare name then. */
#ifdef PACKAGE_VERSION
#define USER_AGENT "pam_entra/" PACKAGE_VERSION
#else
#define USER_AGENT "pam_entra"
#endif

/* A parsed request URL (or proxy URL): pointers into no one's memory. */
struct url {
	bool tls;
	int family;               /* AF_INET / AF_INET6 for an IP literal, 0 for a name */
	char host[MAX_HOST_LEN + 1]; /* without IPv6 brackets */
	unsigned port;
	bool port_given;
	const char *target;       /* path and query (no fragment); "" means "/" */
	size_t target_len;
	size_t path_len;          /* target up to the query, for log lines */
};

struct conn {
	int fd;                   /* -1: none */
	SSL *ssl;
	bool tls;
	char host[MAX_HOST_LEN + 1];
	unsigned port;
	int64_t offered_verified_ms; /* of the kept session offered, 0: none */
};

struct entra_http {
	char *ca_file;
	char *proxy;
	long timeout_ms;
	size_t max_body;
	bool allow_plain_http;
	const struct entra_log *log;
	int64_t deadline_ms;
	SSL_CTX *ctx;             /* made at the first https request */
	struct conn conn;         /* kept alive between the requests of a handle */
};

/* One request in flight: its time limits and the reason of a failure. */
struct io {
	int64_t end_ms;           /* the request's timeout, clipped to the deadline */
	int64_t window_start;     /* low-speed window */
	uint64_t window_bytes;
	char why[256];
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static BIO_METHOD *sock_method;

/* The TLS context, trust store loaded, is kept for the process and shared
 * by later handles, as libcurl keeps its CA store: making one is most of a
 * warm login's CPU in a process that logs in more than once (a PAM host
 * that stays up, entra-tokend). Reused only for the same trust source,
 * unchanged: the same path with the same identity (a hashed directory
 * changes its mtime when a certificate is added or removed), settled for
 * CTX_SETTLE_S (two writes within a tick look alike), and for at most
 * CTX_MAX_AGE_MS: what a directory lookup loaded stays in the store, and
 * a certificate edited in place does not change the directory.
 *
 * With it, the last TLS session of each host:port is kept (as libcurl and
 * browsers keep them) so that the next connection there resumes instead
 * of receiving, parsing and verifying the certificate chain again: two
 * thirds of a handshake's CPU. A session is offered only to the host and
 * port it was verified for, only with the context it was made with (a
 * changed trust store starts afresh), only in the process that got it,
 * and taken out when offered (RFC 8446 C.4: a ticket is not used twice);
 * TLS 1.3 resumption still runs a fresh (EC)DHE exchange. A session is
 * offered while the full handshake it descends from (resumed connections
 * hand on its time) is less than CTX_MAX_AGE_MS old, and dropped after.
 * (TLS 1.2 gives no new session on a resumed connection: there every
 * other connection resumes.) */
#define CTX_SETTLE_S 2
#define CTX_MAX_AGE_MS (300 * 1000L)
#define KEPT_SESSIONS 8

struct kept_session {
	char peer[MAX_HOST_LEN + 8]; /* "host:port"; "" when free */
	SSL_SESSION *session;
	SSL_CTX *ctx;                /* referenced: it made the session */
	int64_t kept_ms;
	int64_t verified_ms;         /* when its full handshake verified the peer */
	pid_t pid;                   /* the process that got it */
};

static pthread_mutex_t ctx_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	SSL_CTX *ctx;
	char *source;     /* the CA file, or the directory */
	struct stat id;
	int64_t made_ms;
	unsigned long made; /* contexts made by this process */
	struct kept_session kept[KEPT_SESSIONS];
	unsigned long resumed; /* handshakes that resumed a kept session */
} shared;

/* A socket BIO that sends with MSG_NOSIGNAL: a peer that closes must never
 * raise SIGPIPE in the host process (sshd, sudo, cron). OpenSSL's own
 * socket BIO uses write(2). */
/* The BIO's data is the connection's fd (struct conn.fd), which outlives
 * the SSL object that owns the BIO (conn_close frees it first). */
static int sock_fd(BIO *b)
{
	return *(const int *)BIO_get_data(b);
}

static int sock_write(BIO *b, const char *data, int len)
{
	int fd = sock_fd(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	n = send(fd, data, (size_t)len, MSG_NOSIGNAL);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			BIO_set_retry_write(b);
		return -1;
	}
	return (int)n;
}

static int sock_read(BIO *b, char *data, int len)
{
	int fd = sock_fd(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	n = recv(fd, data, (size_t)len, 0);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			BIO_set_retry_read(b);
		return -1;
	}
	return (int)n;
}

static long sock_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	(void)b;
	(void)num;
	(void)ptr;
	return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int sock_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

/* OpenSSL is initialised once per process and never cleaned up (the PAM
 * module lives in arbitrary host processes). Error strings are not loaded:
 * they cost resident memory in every host process, and our log lines name
 * the failure themselves (see tls_reason). */
static void global_init(void)
{
	BIO_METHOD *m;

	if (OPENSSL_init_ssl(OPENSSL_INIT_NO_LOAD_SSL_STRINGS | OPENSSL_INIT_NO_LOAD_CRYPTO_STRINGS,
			     NULL) != 1)
		return;
	m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "entra socket");
	if (m == NULL)
		return;
	if (BIO_meth_set_write(m, sock_write) != 1 || BIO_meth_set_read(m, sock_read) != 1 ||
	    BIO_meth_set_ctrl(m, sock_ctrl) != 1 || BIO_meth_set_create(m, sock_create) != 1) {
		BIO_meth_free(m);
		return;
	}
	sock_method = m;
}

/* A fork while another thread holds ctx_lock must not leave the child a
 * held lock. */
static void ctx_lock_prepare(void)
{
	pthread_mutex_lock(&ctx_lock);
}

static void ctx_lock_release(void)
{
	pthread_mutex_unlock(&ctx_lock);
}

static pthread_once_t ctx_atfork_once = PTHREAD_ONCE_INIT;

static void ctx_atfork(void)
{
	(void)pthread_atfork(ctx_lock_prepare, ctx_lock_release, ctx_lock_release);
}

int64_t entra_monotonic_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void conn_close(struct conn *c)
{
	if (c->ssl != NULL) {
		/* One non-blocking close_notify, through our BIO (no SIGPIPE). */
		SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->host[0] = '\0';
	ERR_clear_error();
}

struct entra_http *entra_http_new(const struct entra_http_options *opt, const struct entra_log *log)
{
	struct entra_http *http;

	if (pthread_once(&global_once, global_init) != 0 || sock_method == NULL) {
		entra_log(log, LOG_ERR, "http: OpenSSL initialisation failed");
		return NULL;
	}
	http = calloc(1, sizeof(*http));
	if (http == NULL)
		return NULL;
	http->conn.fd = -1;
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
	conn_close(&http->conn);
	SSL_CTX_free(http->ctx);
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

/* A DNS name: letters, digits, '-', '_' and '.', no empty label. Anything
 * the resolver would read as a numeric address (inet_aton's "127.1",
 * "0x7f.1") must be a dotted quad, else it is refused. */
static bool host_name_ok(const char *h, size_t len)
{
	struct in_addr a;

	if (len == 0 || len > MAX_HOST_LEN || h[0] == '.' || h[0] == '-')
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = h[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			return false;
		if (c == '.' && i + 1 < len && h[i + 1] == '.')
			return false;
	}
	return inet_aton(h, &a) == 0;
}

/* scheme://host[:port][/path][?query][#fragment]; no user info. */
static bool url_parse(const char *s, struct url *u)
{
	const char *p, *auth_end, *host, *host_end, *port = NULL;
	size_t hlen;

	memset(u, 0, sizeof(*u));
	if (has_prefix_nocase(s, "https://")) {
		u->tls = true;
		p = s + 8;
	} else if (has_prefix_nocase(s, "http://")) {
		p = s + 7;
	} else {
		return false;
	}
	auth_end = p + strcspn(p, "/?#");
	if (memchr(p, '@', (size_t)(auth_end - p)) != NULL)
		return false;
	host = p;
	if (*p == '[') {
		host = p + 1;
		host_end = memchr(host, ']', (size_t)(auth_end - host));
		if (host_end == NULL)
			return false;
		p = host_end + 1;
		u->family = AF_INET6;
	} else {
		host_end = memchr(p, ':', (size_t)(auth_end - p));
		if (host_end == NULL)
			host_end = auth_end;
		p = host_end;
	}
	if (p < auth_end) {
		if (*p != ':')
			return false;
		port = p + 1;
	}
	hlen = (size_t)(host_end - host);
	if (hlen == 0 || hlen > MAX_HOST_LEN)
		return false;
	memcpy(u->host, host, hlen);
	u->host[hlen] = '\0';
	if (u->family == AF_INET6) {
		struct in6_addr a6;

		if (inet_pton(AF_INET6, u->host, &a6) != 1)
			return false; /* also refuses zone ids */
	} else {
		struct in_addr a4;

		if (inet_pton(AF_INET, u->host, &a4) == 1)
			u->family = AF_INET;
		else if (!host_name_ok(u->host, hlen))
			return false;
	}
	u->port = u->tls ? 443 : 80;
	if (port != NULL) {
		unsigned long n = 0;
		size_t plen = (size_t)(auth_end - port);

		if (plen == 0 || plen > 5)
			return false;
		for (size_t i = 0; i < plen; i++) {
			if (port[i] < '0' || port[i] > '9')
				return false;
			n = n * 10 + (unsigned long)(port[i] - '0');
		}
		if (n == 0 || n > 65535)
			return false;
		u->port = (unsigned)n;
		u->port_given = true;
	}
	u->target = auth_end;
	u->target_len = strcspn(auth_end, "#");
	u->path_len = strcspn(auth_end, "?#");
	return true;
}

/* "host:port/path" of a URL for log lines: never the query string or the
 * user info, which may hold secrets. */
static void url_for_log(const struct url *u, char *out, size_t out_len)
{
	bool v6 = u->family == AF_INET6;
	char port[8] = "";

	if (u->port_given)
		snprintf(port, sizeof(port), ":%u", u->port);
	snprintf(out, out_len, "%s%s%s%s%.*s", v6 ? "[" : "", u->host, v6 ? "]" : "", port,
		 (int)(u->path_len > 400 ? 400 : u->path_len), u->target);
}

/* "Name: value": a token name directly followed by ':' (so that "Host :"
 * cannot slip past the checks of header_named), and no control
 * characters anywhere. */
static bool header_is_sane(const char *h)
{
	size_t len = strnlen(h, MAX_REQUEST_HEADER + 1), name = 0;

	if (len == 0 || len > MAX_REQUEST_HEADER)
		return false;
	while (name < len && entra_http_is_tchar((unsigned char)h[name]))
		name++;
	if (name == 0 || h[name] != ':')
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)h[i] < 0x20 || h[i] == 0x7f)
			return false; /* no CR/LF header injection */
	return true;
}

static bool header_named(const char *h, const char *name)
{
	size_t n = strlen(name);

	return strncasecmp(h, name, n) == 0 && h[n] == ':';
}

static int remaining_ms(const struct io *io)
{
	int64_t left = io->end_ms - entra_monotonic_ms();

	if (left <= 0)
		return 0;
	return left > 3600 * 1000 ? 3600 * 1000 : (int)left;
}

/* Wait until fd is ready for events, bounded by the request's end and,
 * while reading a response, by the low-speed window. */
static int wait_fd(int fd, short events, struct io *io, bool low_speed)
{
	for (;;) {
		struct pollfd pfd = { fd, events, 0 };
		int64_t now = entra_monotonic_ms();
		int64_t limit = io->end_ms;
		int rc;

		if (low_speed) {
			int64_t wend = io->window_start + LOW_SPEED_TIME * 1000;

			if (now >= wend) {
				if (io->window_bytes < (uint64_t)(LOW_SPEED_LIMIT * LOW_SPEED_TIME)) {
					snprintf(io->why, sizeof(io->why),
						 "Operation too slow (under %ld bytes/s for %ld s)",
						 LOW_SPEED_LIMIT, LOW_SPEED_TIME);
					return -ETIMEDOUT;
				}
				io->window_start = now;
				io->window_bytes = 0;
				wend = now + LOW_SPEED_TIME * 1000;
			}
			if (wend < limit)
				limit = wend;
		}
		if (now >= io->end_ms) {
			snprintf(io->why, sizeof(io->why), "Timeout was reached");
			return -ETIMEDOUT;
		}
		rc = poll(&pfd, 1, (int)(limit - now > 3600000 ? 3600000 : limit - now));
		if (rc > 0)
			return 0;
		if (rc < 0 && errno != EINTR) {
			snprintf(io->why, sizeof(io->why), "poll: %s", strerror(errno));
			return -EIO;
		}
	}
}

/* Name resolution bounded by the request's end: getaddrinfo_a runs the
 * lookup in glibc's helper thread. A lookup that outlives us cannot be
 * freed by us (the helper still writes into it): the job is shared with
 * a completion notification, and whichever lets go last frees it. */
struct gai_job {
	struct gaicb cb;
	struct addrinfo hints;
	char host[MAX_HOST_LEN + 1];
	char port[8];
	int refs;
};

static void gai_job_free(struct gai_job *j)
{
	if (j->cb.ar_result != NULL)
		freeaddrinfo(j->cb.ar_result);
	free(j);
}

static void gai_job_put(struct gai_job *j)
{
	if (__atomic_sub_fetch(&j->refs, 1, __ATOMIC_ACQ_REL) == 0)
		gai_job_free(j);
}

static void gai_job_done(union sigval sv)
{
	gai_job_put(sv.sival_ptr);
}

static int resolve(const struct url *u, struct io *io, struct addrinfo **out)
{
	struct gai_job *j;
	struct gaicb *list[1];
	struct sigevent sev;
	int rc;

	*out = NULL;
	if (u->family != 0) {
		/* A literal: no lookup, nothing that can block. */
		struct addrinfo hints = { 0 };
		char port[8];

		hints.ai_family = u->family;
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
		snprintf(port, sizeof(port), "%u", u->port);
		rc = getaddrinfo(u->host, port, &hints, out);
		if (rc != 0) {
			snprintf(io->why, sizeof(io->why), "bad address");
			return rc == EAI_MEMORY ? -ENOMEM : -EINVAL;
		}
		return 0;
	}
	j = calloc(1, sizeof(*j));
	if (j == NULL)
		return -ENOMEM;
	snprintf(j->host, sizeof(j->host), "%s", u->host);
	snprintf(j->port, sizeof(j->port), "%u", u->port);
	j->hints.ai_family = AF_UNSPEC;
	j->hints.ai_socktype = SOCK_STREAM;
	j->hints.ai_flags = AI_NUMERICSERV;
	j->cb.ar_name = j->host;
	j->cb.ar_service = j->port;
	j->cb.ar_request = &j->hints;
	j->refs = 2; /* ours, the notification's */
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_THREAD;
	sev.sigev_notify_function = gai_job_done;
	sev.sigev_value.sival_ptr = j;
	list[0] = &j->cb;
	rc = getaddrinfo_a(GAI_NOWAIT, list, 1, &sev);
	if (rc != 0) {
		/* glibc can queue the lookup and then fail to set up its
		 * notification (EAI_AGAIN when memory is short): no one will put
		 * the notification's reference then, and a lookup still running
		 * writes into j, which must outlive it (leaked on purpose). */
		if (gai_error(&j->cb) == EAI_INPROGRESS && gai_cancel(&j->cb) == EAI_NOTCANCELED) {
			snprintf(io->why, sizeof(io->why), "cannot start the name lookup");
			return -ENOMEM;
		}
		gai_job_free(j);
		snprintf(io->why, sizeof(io->why), "cannot start the name lookup");
		return rc == EAI_MEMORY ? -ENOMEM : -EHOSTUNREACH;
	}
	for (;;) {
		int left = remaining_ms(io);
		struct timespec ts = { left / 1000, (long)(left % 1000) * 1000000L };
		const struct gaicb *const *wait = (const struct gaicb *const *)list;

		if (left == 0)
			break;
		rc = gai_suspend(wait, 1, &ts);
		if (rc == 0 || gai_error(&j->cb) != EAI_INPROGRESS)
			break;
		if (rc != EAI_INTR && rc != EAI_AGAIN)
			break;
	}
	rc = gai_error(&j->cb);
	if (rc == EAI_INPROGRESS) {
		/* Cancelled: no notification will come and both references
		 * are ours. Otherwise the lookup still runs, and its
		 * notification lets go of the job when it ends. */
		if (gai_cancel(&j->cb) == EAI_CANCELED)
			gai_job_free(j);
		else
			gai_job_put(j);
		snprintf(io->why, sizeof(io->why), "Timeout was reached (name lookup)");
		return -ETIMEDOUT;
	}
	if (rc == 0) {
		*out = j->cb.ar_result;
		j->cb.ar_result = NULL;
	}
	gai_job_put(j);
	if (rc == 0)
		return 0;
	snprintf(io->why, sizeof(io->why), "Could not resolve host: %.100s (%s)", u->host,
		 gai_strerror(rc));
	return rc == EAI_MEMORY ? -ENOMEM : -EHOSTUNREACH;
}

static int connect_one(const struct addrinfo *ai, const struct io *io, int64_t until, int *fdp)
{
	int fd, err = 0, one = 1;
	socklen_t len = sizeof(err);
	struct io sub = *io;

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    ai->ai_protocol);
	if (fd < 0)
		return -errno;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		int rc;

		if (errno != EINPROGRESS) {
			err = errno;
			close(fd);
			return -err;
		}
		sub.end_ms = until;
		rc = wait_fd(fd, POLLOUT, &sub, false);
		if (rc < 0) {
			close(fd);
			return rc;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err != 0) {
			close(fd);
			return -err;
		}
	}
	/* The request leaves in one write: do not let Nagle hold it back. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	*fdp = fd;
	return 0;
}

/* Loopback or link-local: where plain http may go (the managed-identity
 * endpoints; callers check the URL too, this is the second line). */
static bool addr_is_local(const struct addrinfo *ai)
{
	if (ai->ai_family == AF_INET) {
		uint32_t a = ntohl(((const struct sockaddr_in *)ai->ai_addr)->sin_addr.s_addr);

		return (a >> 24) == 127 || (a >> 16) == 0xa9fe; /* 127/8, 169.254/16 */
	}
	if (ai->ai_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;

		return IN6_IS_ADDR_LOOPBACK(a) || IN6_IS_ADDR_LINKLOCAL(a);
	}
	return false;
}

/* Try each address in turn; a silent one gets its share of the time left
 * (at least 2 s), so that one black hole does not use it all. */
static int tcp_connect(const struct url *u, bool local_only, struct io *io, int *fdp)
{
	struct addrinfo *res = NULL, *ai;
	int rc, last = -ECONNREFUSED, n = 0;

	rc = resolve(u, io, &res);
	if (rc < 0)
		return rc;
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if (local_only && !addr_is_local(ai)) {
			freeaddrinfo(res);
			snprintf(io->why, sizeof(io->why),
				 "plain http only to a loopback or link-local address, not %.100s",
				 u->host);
			return -EPROTO;
		}
		n++;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next, n--) {
		int64_t now = entra_monotonic_ms(), left = io->end_ms - now, share = left / n;

		if (left <= 0) {
			last = -ETIMEDOUT;
			break;
		}
		if (share < 2000)
			share = left < 2000 ? left : 2000;
		rc = connect_one(ai, io, now + share, fdp);
		if (rc == 0) {
			freeaddrinfo(res);
			return 0;
		}
		last = rc;
	}
	freeaddrinfo(res);
	if (last == -ETIMEDOUT || entra_monotonic_ms() >= io->end_ms) {
		snprintf(io->why, sizeof(io->why), "Timeout was reached (connect)");
		return -ETIMEDOUT;
	}
	snprintf(io->why, sizeof(io->why), "Failed to connect to %.100s port %u: %s", u->host, u->port,
		 strerror(-last));
	if (last == -EHOSTUNREACH || last == -ENETUNREACH)
		return -EHOSTUNREACH;
	return last == -ENOMEM ? -ENOMEM : -ECONNREFUSED;
}

/* The reason of a TLS failure, without OpenSSL's error strings. */
static void tls_reason(SSL *ssl, struct io *io, const char *what)
{
	long v = SSL_get_verify_result(ssl);
	unsigned long e = ERR_peek_last_error();

	/* libcurl's wording, which admins know (docs/admin-guide.md). */
	if (v == X509_V_ERR_HOSTNAME_MISMATCH || v == X509_V_ERR_IP_ADDRESS_MISMATCH)
		snprintf(io->why, sizeof(io->why),
			 "SSL: no alternative certificate subject name matches target host name");
	else if (v != X509_V_OK)
		snprintf(io->why, sizeof(io->why), "SSL certificate problem: %s",
			 X509_verify_cert_error_string(v));
	else if (e != 0)
		snprintf(io->why, sizeof(io->why), "%s: TLS error (library %d, reason %d)", what,
			 ERR_GET_LIB(e), ERR_GET_REASON(e));
	else
		snprintf(io->why, sizeof(io->why), "%s: connection closed (%s)", what,
			 errno != 0 ? strerror(errno) : "end of file");
	ERR_clear_error();
}

/* Wait for what SSL asks, or fail with the TLS reason. */
static int ssl_wait(SSL *ssl, int fd, int ret, struct io *io, bool low_speed, const char *what,
		    int fail)
{
	int e = SSL_get_error(ssl, ret);

	if (e == SSL_ERROR_WANT_READ)
		return wait_fd(fd, POLLIN, io, low_speed);
	if (e == SSL_ERROR_WANT_WRITE)
		return wait_fd(fd, POLLOUT, io, low_speed);
	if (e == SSL_ERROR_ZERO_RETURN) {
		snprintf(io->why, sizeof(io->why), "%s: connection closed", what);
		ERR_clear_error();
		return -ECONNRESET;
	}
	tls_reason(ssl, io, what);
	return fail;
}

static void peer_name(const struct conn *c, char out[MAX_HOST_LEN + 8])
{
	snprintf(out, MAX_HOST_LEN + 8, "%s:%u", c->host, c->port);
}

/* Under ctx_lock: move *k to the end of dead (freed after unlocking:
 * freeing a context frees its trust store) and mark it free. */
static void kept_take(struct kept_session *k, struct kept_session *dead, size_t *ndead)
{
	dead[(*ndead)++] = *k;
	memset(k, 0, sizeof(*k));
}

/* Under ctx_lock: take out what may no longer be offered. */
static void kept_purge(int64_t now, pid_t pid, struct kept_session *dead, size_t *ndead)
{
	for (size_t i = 0; i < KEPT_SESSIONS; i++) {
		struct kept_session *k = &shared.kept[i];

		if (k->peer[0] != '\0' && (k->pid != pid || now - k->verified_ms >= CTX_MAX_AGE_MS))
			kept_take(k, dead, ndead);
	}
}

static void kept_free(struct kept_session *dead, size_t ndead)
{
	for (size_t i = 0; i < ndead; i++) {
		SSL_SESSION_free(dead[i].session);
		SSL_CTX_free(dead[i].ctx);
	}
}

/* OpenSSL hands over each session (TLS 1.3: each ticket) it receives on a
 * connection; keep it as the peer's one session. */
static int session_received(SSL *ssl, SSL_SESSION *session)
{
	const struct conn *c = SSL_get_app_data(ssl);
	struct kept_session *slot = NULL, dead[KEPT_SESSIONS + 1];
	char peer[MAX_HOST_LEN + 8];
	int64_t now = entra_monotonic_ms();
	size_t ndead = 0;
	pid_t pid = getpid();

	if (c == NULL || !SSL_SESSION_is_resumable(session))
		return 0;
	if (SSL_CTX_up_ref(SSL_get_SSL_CTX(ssl)) != 1)
		return 0;
	peer_name(c, peer);
	pthread_mutex_lock(&ctx_lock);
	kept_purge(now, pid, dead, &ndead);
	for (size_t i = 0; i < KEPT_SESSIONS && slot == NULL; i++)
		if (strcmp(shared.kept[i].peer, peer) == 0)
			slot = &shared.kept[i];
	for (size_t i = 0; i < KEPT_SESSIONS && slot == NULL; i++)
		if (shared.kept[i].peer[0] == '\0')
			slot = &shared.kept[i];
	if (slot == NULL) { /* all taken by other peers: the oldest goes */
		slot = &shared.kept[0];
		for (size_t i = 1; i < KEPT_SESSIONS; i++)
			if (shared.kept[i].kept_ms < slot->kept_ms)
				slot = &shared.kept[i];
	}
	if (slot->peer[0] != '\0')
		kept_take(slot, dead, &ndead);
	snprintf(slot->peer, sizeof(slot->peer), "%s", peer);
	slot->session = session; /* returning 1: the reference is ours */
	slot->ctx = SSL_get_SSL_CTX(ssl);
	slot->kept_ms = now;
	/* A resumed connection verified nothing: its sessions are as old as
	 * the one it resumed. */
	slot->verified_ms = SSL_session_reused(ssl) && c->offered_verified_ms != 0 ? c->offered_verified_ms : now;
	slot->pid = pid;
	pthread_mutex_unlock(&ctx_lock);
	kept_free(dead, ndead);
	return 1;
}

/* Offer the peer's kept session, if one was made with this context. */
static void offer_kept_session(SSL *ssl, struct conn *c)
{
	struct kept_session dead[KEPT_SESSIONS];
	char peer[MAX_HOST_LEN + 8];
	size_t ndead = 0;

	c->offered_verified_ms = 0;
	peer_name(c, peer);
	pthread_mutex_lock(&ctx_lock);
	kept_purge(entra_monotonic_ms(), getpid(), dead, &ndead);
	for (size_t i = 0; i < KEPT_SESSIONS; i++) {
		struct kept_session *k = &shared.kept[i];

		if (strcmp(k->peer, peer) != 0)
			continue;
		if (k->ctx == SSL_get_SSL_CTX(ssl) && SSL_set_session(ssl, k->session) == 1)
			c->offered_verified_ms = k->verified_ms;
		kept_take(k, dead, &ndead);
		break; /* one per peer */
	}
	pthread_mutex_unlock(&ctx_lock);
	kept_free(dead, ndead);
}

/* The shared context for source with identity id, referenced for the
 * caller, or NULL. */
static SSL_CTX *shared_ctx(const char *source, const struct stat *id)
{
	SSL_CTX *ctx = NULL;

	pthread_mutex_lock(&ctx_lock);
	if (shared.ctx != NULL && strcmp(shared.source, source) == 0 && entra_stat_unchanged(&shared.id, id) &&
	    entra_monotonic_ms() - shared.made_ms < CTX_MAX_AGE_MS && SSL_CTX_up_ref(shared.ctx) == 1)
		ctx = shared.ctx;
	pthread_mutex_unlock(&ctx_lock);
	return ctx;
}

static void share_ctx(SSL_CTX *ctx, const char *source, const struct stat *id)
{
	SSL_CTX *old = NULL;
	char *copy;

	if (!entra_stat_settled(id, CTX_SETTLE_S))
		return;
	copy = strdup(source);
	if (copy == NULL || SSL_CTX_up_ref(ctx) != 1) {
		free(copy);
		return;
	}
	pthread_mutex_lock(&ctx_lock);
	old = shared.ctx;
	free(shared.source);
	shared.ctx = ctx;
	shared.source = copy;
	shared.id = *id;
	shared.made_ms = entra_monotonic_ms();
	pthread_mutex_unlock(&ctx_lock);
	SSL_CTX_free(old);
}

struct entra_http_tls_counts entra_http_tls_counts(void)
{
	struct entra_http_tls_counts n;

	pthread_mutex_lock(&ctx_lock);
	n.contexts_made = shared.made;
	n.resumed = shared.resumed;
	pthread_mutex_unlock(&ctx_lock);
	return n;
}

static int make_ctx(struct entra_http *http, struct io *io)
{
	const char *source = http->ca_file != NULL ? http->ca_file : X509_get_default_cert_dir();
	struct stat id;
	bool have_id;
	SSL_CTX *ctx;
	int ok;

	if (http->ctx != NULL)
		return 0;
	(void)pthread_once(&ctx_atfork_once, ctx_atfork);
	/* The identity before the load: a change during it is seen next time. */
	have_id = stat(source, &id) == 0;
	if (have_id && (http->ctx = shared_ctx(source, &id)) != NULL)
		return 0;
	ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL) {
		snprintf(io->why, sizeof(io->why), "cannot create a TLS context");
		ERR_clear_error();
		return -ENOMEM;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	/* CLEANSE_PLAINTEXT: decrypted records (tokens) are wiped before
	 * OpenSSL frees or reuses its buffers. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
				 SSL_OP_CLEANSE_PLAINTEXT);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	/* Sessions go to session_received, not to OpenSSL's own cache. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(ctx, session_received);
	/* Read what the socket holds at once, not a record header and then
	 * its body: half the receive calls. */
	SSL_CTX_set_read_ahead(ctx, 1);
	/* Never the environment's SSL_CERT_FILE/SSL_CERT_DIR (the user sets
	 * it under su and sudo). The system store as a hashed directory only:
	 * a lookup loads the one issuer it needs, where parsing the whole
	 * bundle costs ~28 ms CPU per login. */
	if (http->ca_file != NULL)
		ok = SSL_CTX_load_verify_file(ctx, http->ca_file);
	else
		ok = SSL_CTX_load_verify_dir(ctx, source);
	if (ok != 1) {
		snprintf(io->why, sizeof(io->why), "cannot load the trusted certificates%s%s",
			 http->ca_file ? " from " : "", http->ca_file ? http->ca_file : "");
		ERR_clear_error();
		SSL_CTX_free(ctx);
		return -EPROTO;
	}
	pthread_mutex_lock(&ctx_lock);
	shared.made++;
	pthread_mutex_unlock(&ctx_lock);
	if (have_id)
		share_ctx(ctx, source, &id);
	http->ctx = ctx;
	return 0;
}

static int tls_start(struct entra_http *http, struct conn *c, const struct url *u, struct io *io)
{
	BIO *bio;
	int rc;

	rc = make_ctx(http, io);
	if (rc < 0)
		return rc;
	c->ssl = SSL_new(http->ctx);
	bio = BIO_new(sock_method);
	if (c->ssl == NULL || bio == NULL) {
		BIO_free(bio);
		snprintf(io->why, sizeof(io->why), "out of memory for TLS");
		ERR_clear_error();
		return -ENOMEM;
	}
	BIO_set_data(bio, &c->fd);
	SSL_set_bio(c->ssl, bio, bio);
	SSL_set_app_data(c->ssl, c);
	SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (u->family == 0) {
		if (SSL_set_tlsext_host_name(c->ssl, u->host) != 1 ||
		    SSL_set1_host(c->ssl, u->host) != 1)
			rc = -ENOMEM;
	} else if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), u->host) != 1) {
		rc = -EINVAL;
	}
	if (rc < 0) {
		snprintf(io->why, sizeof(io->why), "cannot set the expected peer name");
		ERR_clear_error();
		return rc;
	}
	offer_kept_session(c->ssl, c);
	for (;;) {
		int ret;

		ERR_clear_error();
		errno = 0;
		ret = SSL_connect(c->ssl);
		if (ret == 1)
			break;
		rc = ssl_wait(c->ssl, c->fd, ret, io, false, "TLS handshake", -EPROTO);
		if (rc == -ECONNRESET)
			rc = -EPROTO;
		if (rc < 0)
			return rc;
	}
	if (SSL_get_verify_result(c->ssl) != X509_V_OK) {
		tls_reason(c->ssl, io, "TLS handshake");
		return -EPROTO;
	}
	/* X509_V_OK is also what an anonymous suite gives (no certificate at
	 * all): a system openssl.cnf must not be able to allow that. */
	if (SSL_get0_peer_certificate(c->ssl) == NULL) {
		snprintf(io->why, sizeof(io->why), "TLS handshake: the server sent no certificate");
		return -EPROTO;
	}
	if (SSL_session_reused(c->ssl)) {
		pthread_mutex_lock(&ctx_lock);
		shared.resumed++;
		pthread_mutex_unlock(&ctx_lock);
	}
	return 0;
}

static int conn_write(struct conn *c, const char *data, size_t len, struct io *io)
{
	while (len > 0) {
		size_t n = len > INT32_MAX ? INT32_MAX : len;
		int rc;

		if (c->ssl != NULL) {
			int ret;

			ERR_clear_error();
			errno = 0;
			ret = SSL_write(c->ssl, data, (int)n);
			if (ret > 0) {
				data += ret;
				len -= (size_t)ret;
				continue;
			}
			rc = ssl_wait(c->ssl, c->fd, ret, io, false, "send", -ECONNRESET);
		} else {
			ssize_t sent = send(c->fd, data, n, MSG_NOSIGNAL);

			if (sent > 0) {
				data += sent;
				len -= (size_t)sent;
				continue;
			}
			if (sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
				snprintf(io->why, sizeof(io->why), "send: %s", strerror(errno));
				return -ECONNRESET;
			}
			rc = wait_fd(c->fd, POLLOUT, io, false);
		}
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* > 0 bytes, 0 at the peer's end of stream, or -errno. */
static ssize_t conn_read(struct conn *c, char *buf, size_t cap, struct io *io)
{
	for (;;) {
		ssize_t n;
		int rc;

		if (c->ssl != NULL) {
			int ret;

			ERR_clear_error();
			errno = 0;
			ret = SSL_read(c->ssl, buf, (int)cap);
			if (ret > 0)
				return ret;
			if (SSL_get_error(c->ssl, ret) == SSL_ERROR_ZERO_RETURN) {
				ERR_clear_error();
				return 0; /* close_notify */
			}
			/* An end without close_notify is an error (a truncation
			 * could pass for the end of a body read to the close). */
			rc = ssl_wait(c->ssl, c->fd, ret, io, true, "receive", -ECONNRESET);
		} else {
			n = recv(c->fd, buf, cap, 0);
			if (n >= 0)
				return n;
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
				snprintf(io->why, sizeof(io->why), "receive: %s", strerror(errno));
				return -ECONNRESET;
			}
			rc = wait_fd(c->fd, POLLIN, io, true);
		}
		if (rc < 0)
			return rc;
	}
}

/* Read one response into the parser; *leftover: bytes past its end. */
static int read_response(struct conn *c, struct entra_http_parser *p, struct io *io,
			 bool *leftover)
{
	char buf[READ_CHUNK];
	int rc = 0;

	*leftover = false;
	io->window_start = entra_monotonic_ms();
	io->window_bytes = 0;
	while (!p->done) {
		ssize_t n = conn_read(c, buf, sizeof(buf), io);
		size_t used;

		if (n < 0) {
			rc = (int)n;
			break;
		}
		if (n == 0) {
			rc = entra_http_parser_eof(p);
			if (rc < 0)
				snprintf(io->why, sizeof(io->why), "connection closed %s",
					 p->started ? "mid-response" : "before a response");
			break;
		}
		io->window_bytes += (uint64_t)n;
		rc = entra_http_parser_feed(p, buf, (size_t)n, &used);
		if (rc < 0) {
			if (rc == -EPROTO)
				snprintf(io->why, sizeof(io->why), "malformed HTTP response");
			break;
		}
		if (used < (size_t)n)
			*leftover = true;
	}
	explicit_bzero(buf, sizeof(buf));
	return rc;
}

/* Parse options.proxy: http://host[:port][/] only. */
static bool proxy_parse(const char *s, struct url *u)
{
	if (!url_is_sane(s) || !has_prefix_nocase(s, "http://") || !url_parse(s, u))
		return false;
	if (!u->port_given)
		u->port = DEFAULT_PROXY_PORT;
	return u->target_len == 0 || (u->target_len == 1 && u->target[0] == '/');
}

static int host_header(const struct url *u, char *out, size_t len)
{
	bool v6 = u->family == AF_INET6;

	if (u->port_given && u->port != (u->tls ? 443U : 80U))
		return snprintf(out, len, "%s%s%s:%u", v6 ? "[" : "", u->host, v6 ? "]" : "",
				u->port);
	return snprintf(out, len, "%s%s%s", v6 ? "[" : "", u->host, v6 ? "]" : "");
}

/* Through the proxy's CONNECT tunnel to host:port of u. */
static int proxy_connect(struct conn *c, const struct url *u, struct io *io)
{
	struct entra_http_response scratch;
	struct entra_http_parser *p;
	char req[1024], hp[300];
	bool leftover;
	int rc, n;
	bool v6 = u->family == AF_INET6;

	snprintf(hp, sizeof(hp), "%s%s%s:%u", v6 ? "[" : "", u->host, v6 ? "]" : "", u->port);
	n = snprintf(req, sizeof(req),
		     "CONNECT %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: " USER_AGENT "\r\n\r\n", hp, hp);
	if (n < 0 || (size_t)n >= sizeof(req))
		return -EINVAL;
	rc = conn_write(c, req, (size_t)n, io);
	if (rc < 0)
		return rc;
	p = malloc(sizeof(*p));
	if (p == NULL)
		return -ENOMEM;
	response_init(&scratch, 1);
	entra_http_parser_init(p, &scratch, true);
	rc = read_response(c, p, io, &leftover);
	if (rc == 0 && (scratch.status < 200 || scratch.status > 299)) {
		snprintf(io->why, sizeof(io->why), "proxy refused the tunnel (status %ld)",
			 scratch.status);
		rc = -EPROTO;
	} else if (rc == 0 && leftover) {
		snprintf(io->why, sizeof(io->why), "proxy sent data before the tunnel was up");
		rc = -EPROTO;
	} else if (rc == -ECONNRESET) {
		snprintf(io->why, sizeof(io->why), "proxy closed the connection");
	}
	entra_http_parser_wipe(p);
	free(p);
	entra_http_response_free(&scratch);
	return rc;
}

/* A kept connection to the same place that the peer has not closed. */
static bool conn_reusable(const struct conn *c, const struct url *u)
{
	struct pollfd pfd = { c->fd, POLLIN, 0 };

	if (c->fd < 0 || c->tls != u->tls || c->port != u->port || strcmp(c->host, u->host) != 0)
		return false;
	/* Decrypted bytes already buffered: nobody asked for them. */
	if (c->ssl != NULL && SSL_has_pending(c->ssl))
		return false;
	/* Readable while idle: an EOF, a reset, or bytes nobody asked for. */
	return poll(&pfd, 1, 0) == 0;
}

static int conn_open(struct entra_http *http, const struct url *u, struct io *io)
{
	struct conn *c = &http->conn;
	bool via_proxy = u->tls && http->proxy != NULL && !http->allow_plain_http;
	struct url pu;
	int rc;

	if (via_proxy) {
		if (!proxy_parse(http->proxy, &pu)) {
			snprintf(io->why, sizeof(io->why), "unusable proxy (only http://host:port)");
			return -EINVAL;
		}
		rc = tcp_connect(&pu, false, io, &c->fd);
		if (rc < 0) {
			char tmp[sizeof(io->why)];

			snprintf(tmp, sizeof(tmp), "proxy %.60s: %.180s", pu.host, io->why);
			memcpy(io->why, tmp, sizeof(tmp));
			return rc;
		}
		rc = proxy_connect(c, u, io);
	} else {
		rc = tcp_connect(u, !u->tls, io, &c->fd);
	}
	/* The peer is named before the handshake: TLS sessions are kept and
	 * offered by it. */
	c->port = u->port;
	snprintf(c->host, sizeof(c->host), "%s", u->host);
	if (rc == 0 && u->tls)
		rc = tls_start(http, c, u, io);
	if (rc < 0) {
		conn_close(c);
		return rc;
	}
	c->tls = u->tls;
	return 0;
}

static int build_request(struct entra_buf *req, const char *method, const struct url *u,
			 const char *form, const char *const *headers)
{
	bool own_ua = false, own_accept = false, own_ctype = false;
	char host[300];
	int rc;

	for (size_t i = 0; headers != NULL && headers[i] != NULL; i++) {
		own_ua |= header_named(headers[i], "User-Agent");
		own_accept |= header_named(headers[i], "Accept");
		own_ctype |= header_named(headers[i], "Content-Type");
	}
	host_header(u, host, sizeof(host));
	rc = entra_buf_printf(req, "%s %s%.*s HTTP/1.1\r\nHost: %s\r\n", method,
			      u->target_len == 0 || u->target[0] == '?' ? "/" : "",
			      (int)u->target_len, u->target, host);
	if (rc == 0 && !own_ua)
		rc = entra_buf_append_str(req, "User-Agent: " USER_AGENT "\r\n");
	if (rc == 0 && !own_accept)
		rc = entra_buf_append_str(req, "Accept: */*\r\n");
	for (size_t i = 0; rc == 0 && headers != NULL && headers[i] != NULL; i++) {
		const char *v = strchr(headers[i], ':') + 1;

		/* libcurl's convention: "Name:" with no value sends nothing. */
		if (v[strspn(v, " \t")] == '\0')
			continue;
		rc = entra_buf_append_str(req, headers[i]);
		if (rc == 0)
			rc = entra_buf_append_str(req, "\r\n");
	}
	if (rc == 0 && form != NULL) {
		if (!own_ctype)
			rc = entra_buf_append_str(req, "Content-Type: "
						       "application/x-www-form-urlencoded\r\n");
		if (rc == 0)
			rc = entra_buf_printf(req, "Content-Length: %zu\r\n", strlen(form));
	}
	if (rc == 0)
		rc = entra_buf_append_str(req, "\r\n");
	if (rc == 0 && form != NULL && *form != '\0')
		rc = entra_buf_append_str(req, form);
	return rc;
}

/* Send the request and read the answer on the handle's connection (kept
 * or new). A kept connection that turns out dead before the first byte of
 * an answer is replaced once: the peer may close an idle connection at any
 * moment. */
static int exchange(struct entra_http *http, const struct url *u, const struct entra_buf *req,
		    struct entra_http_response *resp, struct io *io)
{
	struct entra_http_parser *p;
	int rc = 0;

	p = malloc(sizeof(*p));
	if (p == NULL)
		return -ENOMEM;
	for (int attempt = 0; attempt < 2; attempt++) {
		bool reused = conn_reusable(&http->conn, u), leftover = false;

		if (!reused) {
			conn_close(&http->conn);
			rc = conn_open(http, u, io);
			if (rc < 0)
				break;
		}
		entra_http_parser_init(p, resp, false);
		rc = conn_write(&http->conn, req->data, req->len, io);
		if (rc == 0)
			rc = read_response(&http->conn, p, io, &leftover);
		if (rc == 0) {
			if (!p->keep_alive || leftover)
				conn_close(&http->conn);
			break;
		}
		conn_close(&http->conn);
		if (!reused || p->started || rc == -ETIMEDOUT)
			break;
		entra_buf_free(&resp->body);
		resp->status = 0;
	}
	entra_http_parser_wipe(p);
	free(p);
	return rc;
}

static int perform(struct entra_http *http, const char *method, const char *url,
		   const char *form, const char *const *headers,
		   struct entra_http_response *resp)
{
	struct entra_buf req;
	struct url u;
	struct io io;
	char where[512];
	int64_t now;
	long timeout_ms = http->timeout_ms;
	size_t headers_len = 0;
	int rc;

	response_init(resp, http->max_body);
	if (url == NULL || !url_is_sane(url)) {
		entra_log(http->log, LOG_ERR, "http: %s refused: malformed URL", method);
		return -EINVAL;
	}
	if (!has_prefix_nocase(url, "https://") &&
	    !(http->allow_plain_http && has_prefix_nocase(url, "http://"))) {
		if (url_parse(url, &u))
			url_for_log(&u, where, sizeof(where));
		else
			snprintf(where, sizeof(where), "(unparsable URL)");
		entra_log(http->log, LOG_ERR, "http: %s %s refused: only https URLs are allowed",
			  method, where);
		return -EPROTO;
	}
	if (!url_parse(url, &u)) {
		entra_log(http->log, LOG_ERR, "http: %s refused: malformed URL", method);
		return -EINVAL;
	}
	url_for_log(&u, where, sizeof(where));
	now = entra_monotonic_ms();
	if (http->deadline_ms > 0) {
		if (now >= http->deadline_ms) {
			entra_log(http->log, LOG_ERR, "http: %s %s not sent: deadline passed",
				  method, where);
			return -ETIMEDOUT;
		}
		if (http->deadline_ms - now < timeout_ms)
			timeout_ms = (long)(http->deadline_ms - now);
	}
	for (size_t i = 0; headers != NULL && headers[i] != NULL; i++) {
		if (!header_is_sane(headers[i]) || header_named(headers[i], "Host") ||
		    header_named(headers[i], "Content-Length") ||
		    header_named(headers[i], "Transfer-Encoding") ||
		    header_named(headers[i], "Connection")) {
			entra_log(http->log, LOG_ERR, "http: %s %s refused: malformed request header",
				  method, where);
			return -EINVAL;
		}
		headers_len += strlen(headers[i]) + 2;
	}
	memset(&io, 0, sizeof(io));
	io.end_ms = now + timeout_ms;
	/* Request headers and form bodies hold secrets: the buffer is wiped. */
	entra_buf_init(&req, 4 * MAX_URL_LEN + (form != NULL ? strlen(form) : 0) + headers_len + 1024);
	rc = build_request(&req, method, &u, form, headers);
	if (rc < 0) {
		entra_log(http->log, LOG_ERR, "http: %s %s: cannot set up the request", method,
			  where);
		goto out;
	}
	rc = exchange(http, &u, &req, resp, &io);
	if (rc < 0) {
		if (rc == -E2BIG)
			entra_log(http->log, LOG_ERR,
				  "http: %s %s failed: response body larger than %zu bytes", method,
				  where, http->max_body);
		else
			entra_log(http->log, LOG_ERR, "http: %s %s failed: %s", method, where,
				  io.why[0] ? io.why : strerror(-rc));
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
	entra_buf_free(&req);
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
