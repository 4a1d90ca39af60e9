/* entra-token: print an access token of this session, from entra-tokend
 * (IDENTITY_ENDPOINT/IDENTITY_HEADER), for the session's resource or
 * another one; keep ENTRA_TOKEN_FILE fresh. Exit codes (entra-token(1)):
 * 0 ok, 1 failure, 2 usage, 3 no token service in this session,
 * 4 log in again. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <json-c/json.h>

#include "buf.h"
#include "fsutil.h"
#include "http.h"
#include "json.h"
#include "jwt.h"
#include "log.h"
#include "msi.h"
#include "names.h"
#include "tokend.h"

enum {
	EXIT_OK = 0,
	EXIT_FAIL = 1,
	EXIT_USAGE = 2,
	EXIT_NO_SERVICE = 3,
	EXIT_LOGIN_AGAIN = 4,
};

#define DEFAULT_RESOURCE "https://management.azure.com"

static void emit(void *host, int priority, const char *line)
{
	(void)host;
	(void)priority;
	fprintf(stderr, "entra-token: %s\n", line);
}

static const struct entra_log quiet_log = { emit, NULL, false };

/* Only a loopback endpoint gets the session's secret. */
static bool endpoint_is_local(const char *url)
{
	static const char *const ok[] = { "http://127.0.0.1:", "http://127.0.0.1/",
					  "http://localhost:", "http://localhost/",
					  "http://[::1]:", "http://[::1]/" };

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (strncmp(url, ok[i], strlen(ok[i])) == 0)
			return strpbrk(url, "?#@ ") == NULL;
	return false;
}

/* Rewrite the session's token file: temp + rename in its own directory,
 * which must be ours (the session directory). */
static int rewrite_token_file(const char *path, const char *token)
{
	char dir[4096];
	const char *slash = strrchr(path, '/');
	struct stat st;
	int fd, rc;

	if (path[0] != '/' || slash == NULL || slash[1] == '\0' ||
	    (size_t)(slash - path) >= sizeof(dir) || strchr(slash + 1, '/') != NULL)
		return -EINVAL;
	memcpy(dir, path, (size_t)(slash - path));
	dir[slash - path] = '\0';
	fd = open(dir[0] ? dir : "/", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || st.st_uid != getuid() || (st.st_mode & 0077) != 0) {
		close(fd);
		return -EPERM;
	}
	rc = entra_write_file_atomic(fd, slash + 1, token, strlen(token), 0600, getuid(), getgid());
	close(fd);
	return rc;
}

static char *claim(const char *token, const char *name)
{
	struct json_object *claims = entra_jwt_decode_unverified(token);
	const char *v;
	char *out = NULL;

	if (claims == NULL)
		return NULL;
	v = entra_json_get_string(claims, name);
	if (v != NULL && entra_value_is_safe(v, 256))
		out = strdup(v);
	json_object_put(claims);
	return out;
}

static void print_json(const char *token, int64_t expires_on)
{
	struct json_object *o = json_object_new_object(), *t;
	const char *sub = getenv("AZUREML_ARM_SUBSCRIPTION");
	const char *tenant_env = getenv("AZURE_TENANT_ID");
	char *tenant = claim(token, "tid");
	char when[64];
	time_t e = (time_t)expires_on;
	struct tm tm;
	const char *text;

	if (tenant == NULL && tenant_env != NULL)
		tenant = strdup(tenant_env);
	/* az prints expiresOn in local time with microseconds. */
	if (localtime_r(&e, &tm) == NULL || strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S.000000", &tm) == 0)
		when[0] = '\0';
	t = json_object_new_string(token);
	json_object_object_add(o, "accessToken", t);
	json_object_object_add(o, "expiresOn", json_object_new_string(when));
	json_object_object_add(o, "expires_on", json_object_new_int64(expires_on));
	if (sub != NULL && entra_value_is_safe(sub, 128))
		json_object_object_add(o, "subscription", json_object_new_string(sub));
	json_object_object_add(o, "tenant", tenant ? json_object_new_string(tenant) : NULL);
	json_object_object_add(o, "tokenType", json_object_new_string("Bearer"));
	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
					      JSON_C_TO_STRING_NOSLASHESCAPE);
	printf("%s\n", text);
	explicit_bzero((char *)text, strlen(text));
	explicit_bzero((char *)json_object_get_string(t), (size_t)json_object_get_string_len(t));
	json_object_put(o);
	free(tenant);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: entra-token [--resource RESOURCE] [--json]\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "resource", required_argument, NULL, 'r' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct entra_http_options hopt = { .timeout_ms = 60000, .allow_plain_http = true };
	const char *endpoint = getenv("IDENTITY_ENDPOINT"), *secret = getenv("IDENTITY_HEADER");
	const char *session_scope = getenv("ENTRA_TOKEN_RESOURCE"), *file = getenv("ENTRA_TOKEN_FILE");
	char *resource = NULL, *session_resource = NULL, *escaped = NULL, *url = NULL;
	char *header = NULL;
	const char *headers[2] = { NULL, NULL };
	struct entra_http_response resp;
	struct entra_http *http = NULL;
	struct json_object *body = NULL;
	const char *token, *error, *message;
	int64_t expires_on = 0;
	bool json = false;
	int rc = EXIT_FAIL, c;
	struct entra_buf b;

	memset(&resp, 0, sizeof(resp));
	while ((c = getopt_long(argc, argv, "r:jh", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			free(resource);
			resource = entra_msi_scope_to_resource(optarg);
			if (resource == NULL) {
				fprintf(stderr, "entra-token: --resource: one resource or one .default scope\n");
				return EXIT_USAGE;
			}
			break;
		case 'j': json = true; break;
		case 'h': usage(stdout); return EXIT_OK;
		default: usage(stderr); free(resource); return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		usage(stderr);
		free(resource);
		return EXIT_USAGE;
	}
	if (endpoint == NULL || secret == NULL || endpoint[0] == '\0' || secret[0] == '\0') {
		fprintf(stderr, "entra-token: this session has no token service (IDENTITY_ENDPOINT and "
				"IDENTITY_HEADER are not set)%s%s\n",
			file ? "; the session's token is in " : "", file ? file : "");
		free(resource);
		return EXIT_NO_SERVICE;
	}
	if (!endpoint_is_local(endpoint) || !entra_value_is_safe(secret, 256)) {
		fprintf(stderr, "entra-token: IDENTITY_ENDPOINT is not a loopback http URL: refusing to send the secret\n");
		free(resource);
		return EXIT_FAIL;
	}
	if (session_scope != NULL)
		session_resource = entra_msi_scope_to_resource(session_scope);
	if (resource == NULL)
		resource = strdup(session_resource ? session_resource : DEFAULT_RESOURCE);
	escaped = resource ? entra_url_escape(resource) : NULL;
	entra_buf_init(&b, 8192);
	if (escaped == NULL || entra_buf_printf(&b, "%s?api-version=%s&resource=%s", endpoint,
						ENTRA_TOKEND_API_VERSION, escaped) < 0)
		goto out;
	url = entra_buf_steal(&b);
	entra_buf_init(&b, 512);
	if (entra_buf_printf(&b, "X-IDENTITY-HEADER: %s", secret) < 0)
		goto out;
	header = entra_buf_steal(&b);
	headers[0] = header;
	http = entra_http_new(&hopt, &quiet_log);
	if (http == NULL)
		goto out;
	if (entra_http_get(http, url, headers, &resp) < 0) {
		fprintf(stderr, "entra-token: the token service at %s is not reachable\n", endpoint);
		rc = EXIT_NO_SERVICE;
		goto out;
	}
	body = entra_json_parse_object(resp.body.data, resp.body.len);
	if (body == NULL) {
		fprintf(stderr, "entra-token: the token service answered %ld without JSON\n", resp.status);
		goto out;
	}
	error = entra_json_get_string(body, "error");
	message = entra_json_get_string(body, "message");
	if (message == NULL || !entra_value_is_safe(message, 512))
		message = "no details";
	if (resp.status == 401) {
		fprintf(stderr, "entra-token: the token service does not know this session (it was "
				"restarted, or the session ended): log in again\n");
		rc = EXIT_LOGIN_AGAIN;
		goto out;
	}
	if (error != NULL && strcmp(error, "interaction_required") == 0) {
		fprintf(stderr, "entra-token: the sign-in of this session has expired or was revoked: log in again\n");
		rc = EXIT_LOGIN_AGAIN;
		goto out;
	}
	token = entra_json_get_string(body, "access_token");
	if (resp.status != 200 || token == NULL || !entra_value_is_safe(token, 64 * 1024) ||
	    entra_json_get_int64(body, "expires_on", &expires_on) < 0) {
		fprintf(stderr, "entra-token: no token (HTTP %ld): %s\n", resp.status, message);
		goto out;
	}
	if (file != NULL && session_resource != NULL && strcmp(resource, session_resource) == 0) {
		int wrc = rewrite_token_file(file, token);

		if (wrc < 0)
			fprintf(stderr, "entra-token: warning: cannot rewrite %s: %s\n", file, strerror(-wrc));
	}
	if (json)
		print_json(token, expires_on);
	else
		printf("%s\n", token);
	rc = fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
out:
	entra_json_wipe_member(body, "access_token");
	json_object_put(body);
	entra_http_response_free(&resp);
	entra_http_free(http);
	entra_buf_free(&b);
	entra_free_secret(header);
	free(url);
	free(escaped);
	free(resource);
	free(session_resource);
	return rc;
}
