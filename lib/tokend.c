#include "tokend.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <json-c/json.h>

#include "buf.h"
#include "http.h"
#include "json.h"
#include "names.h"

#define REQUEST_LINE_MAX 4096
#define QUERY_VALUE_MAX 2048

int entra_tokend_new_secret(char out[ENTRA_TOKEND_SECRET_LEN + 1])
{
	return entra_random_hex(out, ENTRA_TOKEND_SECRET_LEN);
}

int entra_tokend_endpoint(const struct entra_config *cfg, char *out, size_t len)
{
	int n = snprintf(out, len, "http://127.0.0.1:%d%s", cfg->tokend_port, ENTRA_TOKEND_PATH);

	return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

static int64_t remaining_ms(int64_t deadline)
{
	int64_t left = deadline - entra_monotonic_ms();

	return left < 0 ? 0 : left;
}

static int wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };
	int rc;

	do {
		rc = poll(&p, 1, (int)remaining_ms(deadline));
	} while (rc < 0 && errno == EINTR);
	if (rc < 0)
		return -errno;
	return rc == 0 ? -ETIMEDOUT : 0;
}

int entra_tokend_call(const char *socket_path, const char *request,
		      struct json_object **answer, int timeout_ms)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int64_t deadline = entra_monotonic_ms() + timeout_ms;
	char reply[ENTRA_TOKEND_MAX_MESSAGE + 1];
	size_t req_len = strlen(request), sent = 0, got = 0;
	int fd, rc;

	*answer = NULL;
	if (strlen(socket_path) >= sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	if (req_len + 1 > ENTRA_TOKEND_MAX_MESSAGE)
		return -E2BIG;
	memcpy(addr.sun_path, socket_path, strlen(socket_path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		/* A full backlog answers EAGAIN on a non-blocking Unix socket:
		 * the daemon is there but busy; treat it as unreachable. */
		rc = errno == EAGAIN ? -ETIMEDOUT : -errno;
		goto out;
	}
	while (sent < req_len + 1) {
		const char *p = sent < req_len ? request + sent : "\n";
		size_t n = sent < req_len ? req_len - sent : 1;
		ssize_t w;

		rc = wait_fd(fd, POLLOUT, deadline);
		if (rc < 0)
			goto out;
		w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			rc = -errno;
			goto out;
		}
		sent += (size_t)w;
	}
	shutdown(fd, SHUT_WR);
	for (;;) {
		ssize_t r;

		if (got == sizeof(reply) - 1) {
			rc = -E2BIG;
			goto out;
		}
		rc = wait_fd(fd, POLLIN, deadline);
		if (rc < 0)
			goto out;
		r = recv(fd, reply + got, sizeof(reply) - 1 - got, 0);
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			rc = -errno;
			goto out;
		}
		if (r == 0)
			break;
		got += (size_t)r;
		if (reply[got - 1] == '\n')
			break;
	}
	while (got > 0 && reply[got - 1] == '\n')
		got--;
	reply[got] = '\0';
	*answer = entra_json_parse_object(reply, got);
	rc = *answer == NULL ? -EPROTO : 0;
out:
	close(fd);
	return rc;
}

static int env_add(struct entra_session_env *env, const char *name, const char *value)
{
	struct entra_buf line;
	int rc;

	entra_buf_init(&line, 4096);
	rc = entra_buf_printf(&line, "%s=%s", name, value);
	if (rc < 0) {
		entra_buf_free(&line);
		return rc;
	}
	env->vars[env->count++] = entra_buf_steal(&line);
	env->vars[env->count] = NULL;
	return 0;
}

int entra_tokend_register_session(const struct entra_config *cfg, const char *session_id,
				  const struct entra_session_request *req,
				  struct entra_session_env *env, const struct entra_log *log)
{
	char secret[ENTRA_TOKEND_SECRET_LEN + 1], endpoint[128];
	char message[ENTRA_TOKEND_MAX_MESSAGE];
	struct json_object *answer = NULL, *ok;
	const char *why = NULL;
	int n, rc;

	env->vars = NULL;
	env->count = 0;
	/* The message is built by hand (every field is checked to need no
	 * JSON escaping) so that the secret lives only in buffers we wipe. */
	if (!entra_session_id_is_valid(session_id) || !entra_name_is_valid(req->user) ||
	    (strcmp(req->identity_kind, "user") != 0 &&
	     strcmp(req->identity_kind, "managed-identity") != 0))
		return -EINVAL;
	rc = entra_tokend_endpoint(cfg, endpoint, sizeof(endpoint));
	if (rc < 0)
		return rc;
	/* Most nodes run no token service: one access() says so, instead
	 * of a secret drawn, a socket made and a connect refused. Whatever
	 * else it answers, the connect below decides. */
	if (access(cfg->tokend_socket, F_OK) != 0 && errno == ENOENT) {
		entra_log(log, LOG_DEBUG, "session %s: no token service at %s: no IDENTITY_ENDPOINT in this session",
			  session_id, cfg->tokend_socket);
		return -ENOENT;
	}
	rc = entra_tokend_new_secret(secret);
	if (rc < 0)
		return rc;
	n = snprintf(message, sizeof(message),
		     "{\"op\":\"register\",\"session_id\":\"%s\",\"uid\":%lu,\"user\":\"%s\","
		     "\"identity_kind\":\"%s\",\"secret\":\"%s\"}",
		     session_id, (unsigned long)req->uid, req->user, req->identity_kind, secret);
	if (n < 0 || (size_t)n >= sizeof(message)) {
		rc = -E2BIG;
		goto out;
	}
	rc = entra_tokend_call(cfg->tokend_socket, message, &answer, ENTRA_TOKEND_CLIENT_TIMEOUT_MS);
	if (rc < 0) {
		entra_log(log, LOG_NOTICE,
			  "session %s: token service not reachable at %s (%s): no IDENTITY_ENDPOINT in this session",
			  session_id, cfg->tokend_socket, strerror(-rc));
		goto out;
	}
	if (!json_object_object_get_ex(answer, "ok", &ok) || !json_object_get_boolean(ok)) {
		why = entra_json_get_string(answer, "error");
		entra_log(log, LOG_NOTICE,
			  "session %s: token service refused the registration (%s): no IDENTITY_ENDPOINT in this session",
			  session_id, why != NULL && entra_value_is_safe(why, 200) ? why : "no reason");
		rc = -EACCES;
		goto out;
	}
	env->vars = calloc(3, sizeof(char *));
	if (env->vars == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	if ((rc = env_add(env, "IDENTITY_ENDPOINT", endpoint)) < 0 ||
	    (rc = env_add(env, "IDENTITY_HEADER", secret)) < 0) {
		entra_session_env_free(env);
		entra_tokend_unregister_session(cfg, session_id, log);
		goto out;
	}
	entra_log(log, LOG_DEBUG, "session %s registered with the token service at %s",
		  session_id, endpoint);
out:
	json_object_put(answer);
	explicit_bzero(secret, sizeof(secret));
	explicit_bzero(message, sizeof(message));
	return rc;
}

void entra_tokend_unregister_session(const struct entra_config *cfg, const char *session_id,
				     const struct entra_log *log)
{
	char message[128];
	struct json_object *answer = NULL;
	int rc;

	if (!entra_session_id_is_valid(session_id))
		return;
	snprintf(message, sizeof(message), "{\"op\":\"unregister\",\"session_id\":\"%s\"}", session_id);
	rc = entra_tokend_call(cfg->tokend_socket, message, &answer, ENTRA_TOKEND_CLIENT_TIMEOUT_MS);
	if (rc < 0)
		entra_log(log, LOG_DEBUG, "session %s: token service not reachable to unregister: %s",
			  session_id, strerror(-rc));
	json_object_put(answer);
}

/* ---- HTTP request heads ------------------------------------------------ */

void entra_tokend_http_request_free(struct entra_tokend_http_request *req)
{
	if (req == NULL)
		return;
	free(req->path);
	free(req->resource);
	free(req->api_version);
	entra_free_secret(req->identity_header);
	free(req->selector_name);
	free(req->selector_value);
	memset(req, 0, sizeof(*req));
}

/* Percent-decode s[0..len) ('+' is a space, as in forms). NULL when
 * malformed or when the result holds a control character. */
static char *url_decode(const char *s, size_t len)
{
	char *out;
	size_t o = 0;

	if (len > QUERY_VALUE_MAX)
		return NULL;
	out = malloc(len + 1);
	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '%') {
			int hi, lo;

			if (i + 2 >= len) {
				free(out);
				return NULL;
			}
			hi = entra_hex_value(s[i + 1]);
			lo = entra_hex_value(s[i + 2]);
			if (hi < 0 || lo < 0) {
				free(out);
				return NULL;
			}
			c = (unsigned char)(hi * 16 + lo);
			i += 2;
		} else if (c == '+') {
			c = ' ';
		}
		if (c < 0x20 || c == 0x7f) {
			free(out);
			return NULL;
		}
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return out;
}

static int parse_query(const char *q, size_t len, struct entra_tokend_http_request *out)
{
	static const char *const selectors[] = {
		"client_id", "principal_id", "object_id", "mi_res_id", "msi_res_id", NULL
	};
	size_t i = 0;

	while (i < len) {
		size_t end = i, eq;
		char *key, *value, **slot = NULL;

		while (end < len && q[end] != '&')
			end++;
		for (eq = i; eq < end && q[eq] != '='; eq++)
			;
		key = url_decode(q + i, eq - i);
		value = url_decode(q + (eq < end ? eq + 1 : end), eq < end ? end - eq - 1 : 0);
		if (key == NULL || value == NULL) {
			free(key);
			free(value);
			return -EINVAL;
		}
		if (strcmp(key, "resource") == 0) {
			slot = &out->resource;
		} else if (strcmp(key, "api-version") == 0) {
			slot = &out->api_version;
		} else {
			for (size_t s = 0; selectors[s] != NULL; s++) {
				if (strcmp(key, selectors[s]) != 0)
					continue;
				/* Two selectors are as bad as one repeated. */
				if (out->selector_name != NULL) {
					free(key);
					free(value);
					return -EINVAL;
				}
				out->selector_name = key;
				out->selector_value = value;
				key = value = NULL;
				break;
			}
		}
		if (slot != NULL) {
			if (*slot != NULL) {
				free(key);
				free(value);
				return -EINVAL;
			}
			*slot = value;
			value = NULL;
		}
		free(key);
		free(value);
		i = end + 1;
	}
	return 0;
}

static bool is_tchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int parse_request_line(const char *line, size_t len, struct entra_tokend_http_request *out)
{
	const char *sp1, *sp2, *target, *q;
	size_t mlen, tlen;

	if (len > REQUEST_LINE_MAX)
		return -EINVAL;
	sp1 = memchr(line, ' ', len);
	if (sp1 == NULL)
		return -EINVAL;
	mlen = (size_t)(sp1 - line);
	if (mlen == 0 || mlen >= sizeof(out->method))
		return -EINVAL;
	for (size_t i = 0; i < mlen; i++)
		if (line[i] < 'A' || line[i] > 'Z')
			return -EINVAL;
	target = sp1 + 1;
	sp2 = memchr(target, ' ', len - mlen - 1);
	if (sp2 == NULL)
		return -EINVAL;
	tlen = (size_t)(sp2 - target);
	if (tlen == 0 || target[0] != '/')
		return -EINVAL;
	if ((size_t)(line + len - (sp2 + 1)) != 8 ||
	    (memcmp(sp2 + 1, "HTTP/1.1", 8) != 0 && memcmp(sp2 + 1, "HTTP/1.0", 8) != 0))
		return -EINVAL;
	for (size_t i = 0; i < tlen; i++)
		if ((unsigned char)target[i] <= 0x20 || (unsigned char)target[i] >= 0x7f)
			return -EINVAL;
	memcpy(out->method, line, mlen);
	out->method[mlen] = '\0';
	q = memchr(target, '?', tlen);
	out->path = strndup(target, q != NULL ? (size_t)(q - target) : tlen);
	if (out->path == NULL)
		return -ENOMEM;
	if (q != NULL)
		return parse_query(q + 1, (size_t)(target + tlen - q - 1), out);
	return 0;
}

static int parse_header(const char *line, size_t len, struct entra_tokend_http_request *out)
{
	static const char name[] = "X-IDENTITY-HEADER";
	const char *colon, *v, *end;
	size_t nlen;

	colon = memchr(line, ':', len);
	if (colon == NULL || colon == line)
		return -EINVAL;
	nlen = (size_t)(colon - line);
	for (size_t i = 0; i < nlen; i++)
		if (!is_tchar(line[i]))
			return -EINVAL; /* includes obsolete line folding */
	v = colon + 1;
	end = line + len;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	for (const char *p = v; p < end; p++)
		if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f)
			return -EINVAL;
	if (nlen != sizeof(name) - 1 || strncasecmp(line, name, nlen) != 0)
		return 0;
	if (out->identity_header != NULL)
		return -EINVAL;
	out->identity_header = strndup(v, (size_t)(end - v));
	return out->identity_header == NULL ? -ENOMEM : 0;
}

int entra_tokend_http_parse(const char *buf, size_t len, struct entra_tokend_http_request *out)
{
	const char *end = NULL, *line, *eol;
	size_t scan = len < ENTRA_TOKEND_MAX_HEADER ? len : ENTRA_TOKEND_MAX_HEADER;
	int rc;

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i + 4 <= scan; i++) {
		if (memcmp(buf + i, "\r\n\r\n", 4) == 0) {
			end = buf + i;
			break;
		}
	}
	if (end == NULL)
		return len >= ENTRA_TOKEND_MAX_HEADER ? -E2BIG : -EAGAIN;
	out->head_len = (size_t)(end - buf) + 4;
	if (memchr(buf, '\0', out->head_len) != NULL)
		return -EINVAL;
	line = buf;
	eol = strstr(line, "\r\n");
	rc = parse_request_line(line, (size_t)(eol - line), out);
	while (rc == 0 && eol < end) {
		line = eol + 2;
		eol = strstr(line, "\r\n");
		/* A bare CR or LF inside a line is refused by the checks below. */
		rc = parse_header(line, (size_t)(eol - line), out);
	}
	if (rc == 0) {
		/* Bare LFs or CRs never reach a header check as such: refuse
		 * them anywhere in the head. */
		for (const char *p = buf; p < end; p++) {
			if ((*p == '\n' && (p == buf || p[-1] != '\r')) ||
			    (*p == '\r' && p[1] != '\n')) {
				rc = -EINVAL;
				break;
			}
		}
	}
	if (rc < 0) {
		size_t head = out->head_len;

		entra_tokend_http_request_free(out);
		out->head_len = head;
	}
	return rc;
}

char *entra_tokend_refresh_scope(const char *resource)
{
	struct entra_buf scope;
	size_t len;

	if (resource == NULL || resource[0] == '\0' || !entra_value_is_safe(resource, QUERY_VALUE_MAX) ||
	    strchr(resource, ' ') != NULL)
		return NULL;
	len = strlen(resource);
	entra_buf_init(&scope, QUERY_VALUE_MAX + 64);
	if (entra_buf_printf(&scope, "%s%s.default offline_access", resource,
			     resource[len - 1] == '/' ? "" : "/") < 0) {
		entra_buf_free(&scope);
		return NULL;
	}
	return entra_buf_steal(&scope);
}

bool entra_tokend_needs_login(const struct entra_oauth_error *err)
{
	static const long codes[] = { 700082, 50173, 50078, 50076, 70043, 700084, 9002313, 50133 };

	if (err == NULL || err->error == NULL)
		return false;
	for (size_t i = 0; i < err->code_count; i++)
		for (size_t j = 0; j < sizeof(codes) / sizeof(codes[0]); j++)
			if (err->codes[i] == codes[j])
				return true;
	/* invalid_grant also covers consent (65001) and other per-resource
	 * refusals: only without a code does it stand for the grant itself. */
	return strcmp(err->error, "interaction_required") == 0 ||
	       (strcmp(err->error, "invalid_grant") == 0 && err->code_count == 0);
}

const char *entra_tokend_service_client_id(const struct entra_config *cfg, const char *user)
{
	size_t len = strlen(user);

	for (size_t i = 0; i < cfg->service_identities.count; i++) {
		const char *entry = cfg->service_identities.items[i];

		if (strncmp(entry, user, len) == 0 && entry[len] == ':')
			return entry + len + 1;
	}
	return cfg->service_client_id;
}
