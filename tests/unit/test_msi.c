/* Unit tests of lib/msi.c. The http layer is replaced at link time by the
 * scripted fake below (this program is built from the lib sources it needs,
 * without lib/http.c), so every request can be checked and every answer
 * chosen. Its state lives in shared memory so that forked processes share
 * one request counter. */
#include "config.h"
#include "msi.h"

#include "buf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define T0 1700000000LL
#define GUID1 "7c1e2d3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"
#define TOKEN "eyJ0eXAiOiJKV1QifQ.eyJhdWQiOiJhcm0ifQ.c2lnbmF0dXJl"

/* snprintf that the compiler does not second-guess about truncation of
 * test paths (all far below PATH_MAX). */
static void fmt(char *out, size_t len, const char *f, ...) __attribute__((format(printf, 3, 4)));
static void fmt(char *out, size_t len, const char *f, ...)
{
	va_list ap;

	va_start(ap, f);
	vsnprintf(out, len, f, ap);
	va_end(ap);
}

/* ---- the scripted fake http layer ---- */

struct canned {
	int rc;
	long status;
	long retry_after;
	char body[1024];
	char www[512];
};

struct fake {
	int nreq;
	int script_len;
	int pos;
	int delay_ms;
	struct canned script[16];
	char url[4][2048];      /* the first 4 requests */
	char hdr[4][3][512];
	/* clock hooks */
	int64_t mono;
	int64_t wall;
	int nsleep;
	int64_t sleeps[64];
	/* logs */
	char logs[8192];
	/* handles made by msi.c from req->http_options */
	int http_made;
	int http_freed;
};

static struct fake *F;

struct entra_http *entra_http_new(const struct entra_http_options *opt, const struct entra_log *log)
{
	(void)log;
	assert_non_null(opt);
	assert_true(opt->allow_plain_http);
	F->http_made++;
	return (struct entra_http *)F; /* any non-NULL pointer: entra_http_get ignores it */
}

void entra_http_free(struct entra_http *http)
{
	if (http != NULL)
		F->http_freed++;
}

void entra_http_set_deadline(struct entra_http *http, int64_t deadline_ms)
{
	(void)http;
	(void)deadline_ms;
}

int64_t entra_monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int entra_http_get(struct entra_http *http, const char *url, const char *const *headers,
		   struct entra_http_response *resp)
{
	int n = __atomic_fetch_add(&F->nreq, 1, __ATOMIC_SEQ_CST);
	int i = n < F->script_len ? n : F->script_len - 1;
	const struct canned *c;

	(void)http;
	memset(resp, 0, sizeof(*resp));
	resp->retry_after = -1;
	entra_buf_init(&resp->body, ENTRA_HTTP_MAX_BODY);
	if (n < 4) {
		fmt(F->url[n], sizeof(F->url[n]), "%s", url);
		for (int h = 0; headers && headers[h] && h < 3; h++)
			fmt(F->hdr[n][h], sizeof(F->hdr[n][h]), "%s", headers[h]);
	}
	if (F->delay_ms > 0)
		usleep((useconds_t)F->delay_ms * 1000);
	assert_true(i >= 0);
	c = &F->script[i];
	if (c->rc < 0)
		return c->rc;
	resp->status = c->status;
	resp->retry_after = c->retry_after;
	if (c->www[0])
		resp->www_authenticate = strdup(c->www);
	entra_buf_append_str(&resp->body, c->body);
	return 0;
}

void entra_http_response_free(struct entra_http_response *resp)
{
	entra_buf_free(&resp->body);
	free(resp->www_authenticate);
	resp->www_authenticate = NULL;
}

static void script(int rc, long status, long retry_after, const char *www, const char *body, ...)
	__attribute__((format(printf, 5, 6)));
static void script(int rc, long status, long retry_after, const char *www, const char *body, ...)
{
	struct canned *c = &F->script[F->script_len++];
	va_list ap;

	c->rc = rc;
	c->status = status;
	c->retry_after = retry_after;
	fmt(c->www, sizeof(c->www), "%s", www ? www : "");
	va_start(ap, body);
	vsnprintf(c->body, sizeof(c->body), body, ap);
	va_end(ap);
}

/* A 200 in IMDS's shape (all strings), valid for `life` seconds from now. */
static void script_ok(long life)
{
	script(0, 200, -1, NULL,
	       "{\"access_token\":\"%s\",\"refresh_token\":\"\",\"expires_in\":\"%ld\","
	       "\"expires_on\":\"%lld\",\"not_before\":\"%lld\",\"resource\":\"https://management.azure.com\","
	       "\"token_type\":\"Bearer\"}",
	       TOKEN, life, (long long)(F->wall + life), (long long)F->wall);
}

static int64_t h_mono(void *ctx) { (void)ctx; return F->mono; }
static int64_t h_wall(void *ctx) { (void)ctx; return F->wall; }
static void h_sleep(void *ctx, int64_t ms)
{
	(void)ctx;
	if (F->nsleep < 64)
		F->sleeps[F->nsleep++] = ms;
	F->mono += ms;
	F->wall += ms / 1000;
}

static const struct entra_msi_hooks hooks = { h_mono, h_wall, h_sleep, NULL };

static void log_emit(void *host, int prio, const char *line)
{
	size_t n = strlen(F->logs);

	(void)host;
	(void)prio;
	fmt(F->logs + n, sizeof(F->logs) - n, "%s\n", line);
}

static const struct entra_log test_log = { log_emit, NULL, true };

/* A non-NULL handle: the fake never looks at it. */
static struct entra_http *const HTTP = (struct entra_http *)&test_log;

static char tmpdir[PATH_MAX];

static int setup(void **state)
{
	(void)state;
	memset(F, 0, sizeof(*F));
	F->wall = T0;
	F->mono = 1000000;
	fmt(tmpdir, sizeof(tmpdir), "/tmp/test_msi.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	char cmd[PATH_MAX + 16];

	(void)state;
	/* Secrets must never reach a log line. */
	assert_null(strstr(F->logs, TOKEN));
	assert_null(strstr(F->logs, "s3cr3t"));
	fmt(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static struct entra_msi_request base_req(const char *const *env)
{
	struct entra_msi_request r;

	memset(&r, 0, sizeof(r));
	r.source = ENTRA_MSI_AUTO;
	r.env = env;
	r.imds_host = NULL;
	r.resource = "https://management.azure.com/.default";
	r.hooks = &hooks;
	return r;
}

/* ---- source detection, parsing helpers ---- */

static void test_detect_table(void **state)
{
	static const struct {
		const char *env[6];
		enum entra_msi_source source;
		enum entra_msi_source want;
		int rc;
	} t[] = {
		{ { NULL }, ENTRA_MSI_AUTO, ENTRA_MSI_IMDS, 0 },
		{ { "IDENTITY_ENDPOINT=http://127.0.0.1:41/x", "IDENTITY_HEADER=h", NULL }, ENTRA_MSI_AUTO, ENTRA_MSI_APPSERVICE, 0 },
		{ { "IDENTITY_ENDPOINT=http://127.0.0.1:41/x", "IDENTITY_HEADER=h", "IDENTITY_SERVER_THUMBPRINT=t", NULL }, ENTRA_MSI_AUTO, 0, -ENOTSUP },
		{ { "IDENTITY_ENDPOINT=http://localhost:40342/x", "IMDS_ENDPOINT=http://localhost:40342", NULL }, ENTRA_MSI_AUTO, ENTRA_MSI_ARC, 0 },
		{ { "IDENTITY_ENDPOINT=http://localhost:40342/x", NULL }, ENTRA_MSI_AUTO, 0, -ENOENT },
		{ { "IDENTITY_ENDPOINT=http://x/", "IDENTITY_HEADER=h", "MSI_ENDPOINT=http://y/", "MSI_SECRET=s", NULL }, ENTRA_MSI_AUTO, ENTRA_MSI_APPSERVICE, 0 },
		{ { "MSI_ENDPOINT=http://127.0.0.1:46808/msi", "MSI_SECRET=s", NULL }, ENTRA_MSI_AUTO, ENTRA_MSI_AZUREML, 0 },
		{ { "MSI_ENDPOINT=http://localhost:50342/oauth2/token", NULL }, ENTRA_MSI_AUTO, 0, -ENOTSUP },
		{ { "MSI_ENDPOINT=", "MSI_SECRET=s", NULL }, ENTRA_MSI_AUTO, ENTRA_MSI_IMDS, 0 },
		{ { "AZURE_FEDERATED_TOKEN_FILE=/f", "AZURE_CLIENT_ID=" GUID1, NULL }, ENTRA_MSI_AUTO, 0, -ENOTSUP },
		{ { "AZURE_FEDERATED_TOKEN_FILE=/f", NULL }, ENTRA_MSI_AUTO, ENTRA_MSI_IMDS, 0 },
		{ { "AZURE_POD_IDENTITY_AUTHORITY_HOST=http://127.0.0.1:9", NULL }, ENTRA_MSI_AUTO, ENTRA_MSI_IMDS, 0 },
		/* the config wins over the environment */
		{ { "MSI_ENDPOINT=http://127.0.0.1:1/m", "MSI_SECRET=s", NULL }, ENTRA_MSI_IMDS, ENTRA_MSI_IMDS, 0 },
		{ { "IDENTITY_ENDPOINT=http://127.0.0.1:1/x", "IDENTITY_HEADER=h", "MSI_ENDPOINT=http://127.0.0.1:2/m", "MSI_SECRET=s", NULL }, ENTRA_MSI_AZUREML, ENTRA_MSI_AZUREML, 0 },
		{ { NULL }, ENTRA_MSI_AZUREML, 0, -EINVAL },
		{ { "IDENTITY_ENDPOINT=http://127.0.0.1:1/x", NULL }, ENTRA_MSI_APPSERVICE, 0, -EINVAL },
		{ { NULL }, ENTRA_MSI_ARC, ENTRA_MSI_ARC, 0 },
		{ { "IDENTITY_ENDPOINT=http://127.0.0.1:1/x", "IDENTITY_HEADER=h", NULL }, ENTRA_MSI_ARC, ENTRA_MSI_ARC, 0 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct entra_msi_request r = base_req(t[i].env);
		enum entra_msi_source got = ENTRA_MSI_AUTO;
		char err[256] = "";
		int rc;

		r.source = t[i].source;
		rc = entra_msi_detect(&r, &got, err, sizeof(err));
		if (rc != t[i].rc || (rc == 0 && got != t[i].want))
			fail_msg("row %zu: rc %d source %d (%s)", i, rc, (int)got, err);
		if (rc != 0)
			assert_true(err[0] != '\0');
	}
}

static void test_scope_to_resource(void **state)
{
	char *s;

	(void)state;
	s = entra_msi_scope_to_resource("https://management.azure.com/.default");
	assert_string_equal(s, "https://management.azure.com");
	free(s);
	s = entra_msi_scope_to_resource("https://ml.azure.com");
	assert_string_equal(s, "https://ml.azure.com");
	free(s);
	s = entra_msi_scope_to_resource("https://management.azure.com/");
	assert_string_equal(s, "https://management.azure.com/");
	free(s);
	assert_null(entra_msi_scope_to_resource(""));
	assert_null(entra_msi_scope_to_resource(NULL));
	assert_null(entra_msi_scope_to_resource("/.default"));
	assert_null(entra_msi_scope_to_resource("https://a/.default https://b/.default"));
	assert_null(entra_msi_scope_to_resource("https://a\n"));
}

static void test_expires_on_forms(void **state)
{
	int64_t v = 0;

	(void)state;
	assert_int_equal(entra_msi_parse_expires_on("1506484173", &v), 0);
	assert_int_equal(v, 1506484173);
	assert_int_equal(entra_msi_parse_expires_on("06/20/2019 02:57:58 +00:00", &v), 0);
	assert_int_equal(v, 1560999478);
	assert_int_equal(entra_msi_parse_expires_on("6/20/2019 2:57:58 +00:00", &v), 0);
	assert_int_equal(v, 1560999478);
	assert_int_equal(entra_msi_parse_expires_on("06/20/2019 04:57:58 +02:00", &v), 0);
	assert_int_equal(v, 1560999478);
	assert_int_equal(entra_msi_parse_expires_on("06/19/2019 21:57:58 -0500", &v), 0);
	assert_int_equal(v, 1560999478);
	assert_int_equal(entra_msi_parse_expires_on("02/29/2024 00:00:00 +00:00", &v), 0);
	assert_int_equal(v, 1709164800);
	assert_int_equal(entra_msi_parse_expires_on("02/29/2023 00:00:00 +00:00", &v), -EINVAL);
	assert_int_equal(entra_msi_parse_expires_on("13/01/2023 00:00:00 +00:00", &v), -EINVAL);
	assert_int_equal(entra_msi_parse_expires_on("06/20/2019 02:57:58", &v), -EINVAL);
	assert_int_equal(entra_msi_parse_expires_on("06/20/2019 02:57:58 +00:00x", &v), -EINVAL);
	assert_int_equal(entra_msi_parse_expires_on("Thu, 20 Jun 2019 02:57:58 GMT", &v), -EINVAL);
	assert_int_equal(entra_msi_parse_expires_on("-5", &v), -EINVAL);
	assert_int_equal(entra_msi_parse_expires_on("0", &v), -EINVAL);
	assert_int_equal(entra_msi_parse_expires_on("1e9", &v), -EINVAL);
	assert_int_equal(entra_msi_parse_expires_on("99999999999999999999", &v), -EINVAL);
	assert_int_equal(entra_msi_parse_expires_on("", &v), -EINVAL);
}

/* ---- requests per source ---- */

static int get(const struct entra_msi_request *r, struct entra_msi_token *t)
{
	return entra_msi_get_token(r, HTTP, &test_log, t);
}

static void test_imds_request(void **state)
{
	struct entra_msi_request r = base_req(NULL);
	struct entra_msi_token t;

	(void)state;
	script_ok(3600);
	assert_int_equal(get(&r, &t), 0);
	assert_string_equal(F->url[0], "http://169.254.169.254/metadata/identity/oauth2/token"
			    "?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com");
	assert_string_equal(F->hdr[0][0], "Metadata: true");
	assert_string_equal(F->hdr[0][1], "");
	assert_string_equal(t.access_token, TOKEN);
	assert_int_equal(t.expires_on, T0 + 3600);
	assert_int_equal(t.refresh_on, T0 + 3600 - 300);
	assert_int_equal(t.source, ENTRA_MSI_IMDS);
	assert_false(t.from_cache);
	entra_msi_token_clear(&t);
	assert_null(t.access_token);
}

static void test_imds_identities(void **state)
{
	static const char *const env[] = { "AZURE_POD_IDENTITY_AUTHORITY_HOST=http://127.0.0.1:8123/", NULL };
	struct entra_msi_request r = base_req(env);
	struct entra_msi_token t;

	(void)state;
	script_ok(3600);
	r.client_id = GUID1;
	assert_int_equal(get(&r, &t), 0);
	entra_msi_token_clear(&t);
	assert_string_equal(F->url[0], "http://127.0.0.1:8123/metadata/identity/oauth2/token"
			    "?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com&client_id=" GUID1);
	r.client_id = NULL;
	r.object_id = GUID1;
	r.imds_host = "http://localhost:9"; /* the config beats the environment */
	assert_int_equal(get(&r, &t), 0);
	entra_msi_token_clear(&t);
	assert_string_equal(F->url[1], "http://localhost:9/metadata/identity/oauth2/token"
			    "?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com&object_id=" GUID1);
	r.object_id = NULL;
	r.msi_res_id = "/subscriptions/0/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/u";
	assert_int_equal(get(&r, &t), 0);
	entra_msi_token_clear(&t);
	assert_string_equal(F->url[2], "http://localhost:9/metadata/identity/oauth2/token"
			    "?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com&msi_res_id="
			    "%2Fsubscriptions%2F0%2FresourceGroups%2Frg%2Fproviders%2FMicrosoft.ManagedIdentity"
			    "%2FuserAssignedIdentities%2Fu");
	/* two ids, or a bad one: refused before any request */
	r.client_id = GUID1;
	assert_int_equal(get(&r, &t), -EINVAL);
	r.msi_res_id = NULL;
	r.client_id = "not-a-guid";
	assert_int_equal(get(&r, &t), -EINVAL);
	assert_int_equal(F->nreq, 3);
}

static void test_azureml_request(void **state)
{
	static const char *const env[] = { "MSI_ENDPOINT=http://127.0.0.1:46808/msi/token", "MSI_SECRET=s3cr3t", NULL };
	struct entra_msi_request r = base_req(env);
	struct entra_msi_token t;

	(void)state;
	/* Azure ML answers with the legacy date string. */
	script(0, 200, -1, NULL, "{\"access_token\":\"%s\",\"expires_on\":\"11/14/2023 23:13:20 +00:00\","
	       "\"resource\":\"https://management.azure.com\",\"token_type\":\"Bearer\"}", TOKEN);
	r.client_id = GUID1;
	assert_int_equal(get(&r, &t), 0);
	assert_string_equal(F->url[0], "http://127.0.0.1:46808/msi/token?api-version=2017-09-01"
			    "&resource=https%3A%2F%2Fmanagement.azure.com&clientid=" GUID1);
	assert_string_equal(F->hdr[0][0], "secret: s3cr3t");
	assert_int_equal(t.source, ENTRA_MSI_AZUREML);
	assert_int_equal(t.expires_on, T0 + 3600);
	entra_msi_token_clear(&t);
	r.client_id = NULL;
	r.object_id = GUID1;
	assert_int_equal(get(&r, &t), -ENOTSUP);
}

static void test_appservice_request(void **state)
{
	static const char *const env[] = { "IDENTITY_ENDPOINT=http://127.0.0.1:41741/MSI/token/",
					   "IDENTITY_HEADER=s3cr3t", NULL };
	struct entra_msi_request r = base_req(env);
	struct entra_msi_token t;

	(void)state;
	script(0, 200, -1, NULL, "{\"access_token\":\"%s\",\"expires_on\":\"%lld\",\"resource\":\"x\","
	       "\"token_type\":\"Bearer\",\"client_id\":\"" GUID1 "\"}", TOKEN, T0 + 7000);
	r.resource = "https://ml.azure.com";
	r.msi_res_id = "/subscriptions/0/x";
	assert_int_equal(get(&r, &t), 0);
	assert_string_equal(F->url[0], "http://127.0.0.1:41741/MSI/token/?api-version=2019-08-01"
			    "&resource=https%3A%2F%2Fml.azure.com&mi_res_id=%2Fsubscriptions%2F0%2Fx");
	assert_string_equal(F->hdr[0][0], "X-IDENTITY-HEADER: s3cr3t");
	assert_int_equal(t.expires_on, T0 + 7000);
	assert_int_equal(t.refresh_on, T0 + 7000 - 300);
	entra_msi_token_clear(&t);
}

static void test_endpoint_policy(void **state)
{
	static const struct {
		const char *endpoint;
		int rc;
	} t[] = {
		{ "http://evil.example.com/token", -EPERM },
		{ "http://10.0.0.1/token", -EPERM },
		{ "http://169.254.169.253/token", -EPERM },
		{ "http://127.0.0.1@evil.example.com/token", -EPERM },
		{ "http://127.0.0.1.evil.example.com/token", -EPERM },
		{ "http://localhost.evil.example.com/token", -EPERM },
		{ "http://127.0.0.1:99999/token", -EPERM },
		{ "ftp://127.0.0.1/token", -EPERM },
		{ "file:///etc/shadow", -EPERM },
		{ "http://127.0.0.1:41741/token#x", -EPERM },
		{ "https://msi.example.com/token", 0 },
		{ "http://127.0.0.1:41741/token", 0 },
		{ "http://127.1.2.3/token", 0 },
		{ "http://LOCALHOST:8081/token", 0 },
		{ "http://[::1]:8081/token", 0 },
		{ "http://169.254.169.254/token", 0 },
	};
	(void)state;
	script_ok(3600);
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char ep[256];
		const char *env[] = { ep, "IDENTITY_HEADER=s3cr3t", NULL };
		struct entra_msi_request r = base_req(env);
		struct entra_msi_token tok;
		int before = F->nreq, rc;

		fmt(ep, sizeof(ep), "IDENTITY_ENDPOINT=%s", t[i].endpoint);
		rc = get(&r, &tok);
		entra_msi_token_clear(&tok);
		if (rc != t[i].rc)
			fail_msg("%s: %d", t[i].endpoint, rc);
		/* A refused endpoint never sees a request (nor the secret). */
		assert_int_equal(F->nreq - before, rc == 0 ? 1 : 0);
	}
}

/* ---- Azure Arc ---- */

static void make_key(const char *dir, const char *name, size_t len)
{
	char path[PATH_MAX];
	FILE *f;

	fmt(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	for (size_t i = 0; i < len; i++)
		fputc('a' + (int)(i % 26), f);
	fclose(f);
}

static int arc_get(const char *keydir, const char *www, struct entra_msi_token *t)
{
	static const char *const env[] = { "IDENTITY_ENDPOINT=http://127.0.0.1:40342/metadata/identity/oauth2/token",
					   "IMDS_ENDPOINT=http://127.0.0.1:40342", NULL };
	struct entra_msi_request r = base_req(env);

	F->script_len = 0;
	F->nreq = 0;
	memset(F->hdr, 0, sizeof(F->hdr));
	script(0, 401, -1, www, "{\"error\":\"unauthorized\",\"error_description\":\"Basic auth required\"}");
	script_ok(86400);
	r.arc_token_dir_for_tests = keydir;
	return get(&r, t);
}

static void test_arc_challenge(void **state)
{
	char keydir[PATH_MAX], www[PATH_MAX + 64], other[PATH_MAX];
	struct entra_msi_token t;

	(void)state;
	fmt(keydir, sizeof(keydir), "%s/tokens", tmpdir);
	fmt(other, sizeof(other), "%s/elsewhere", tmpdir);
	assert_int_equal(mkdir(keydir, 0700), 0);
	assert_int_equal(mkdir(other, 0700), 0);
	make_key(keydir, "good.key", 64);
	make_key(other, "outside.key", 64);
	make_key(keydir, "wrong.txt", 64);
	make_key(keydir, "big.key", 4097);
	make_key(keydir, "max.key", 4096);

	fmt(www, sizeof(www), "Basic realm=%s/good.key", keydir);
	assert_int_equal(arc_get(keydir, www, &t), 0);
	assert_int_equal(F->nreq, 2);
	assert_string_equal(F->url[0], "http://127.0.0.1:40342/metadata/identity/oauth2/token"
			    "?api-version=2020-06-01&resource=https%3A%2F%2Fmanagement.azure.com");
	assert_string_equal(F->url[1], F->url[0]);
	assert_string_equal(F->hdr[0][0], "Metadata: true");
	assert_string_equal(F->hdr[0][1], "");
	assert_string_equal(F->hdr[1][0], "Metadata: true");
	assert_string_equal(F->hdr[1][1], "Authorization: Basic abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijkl");
	assert_int_equal(t.refresh_on, T0 + 43200); /* half-life of a 24 h token */
	entra_msi_token_clear(&t);

	fmt(www, sizeof(www), "Basic realm=%s/max.key", keydir);
	assert_int_equal(arc_get(keydir, www, &t), 0);
	entra_msi_token_clear(&t);

	/* Refusals: one request only, the key never sent. */
	fmt(www, sizeof(www), "Basic realm=%s/outside.key", other);
	assert_int_equal(arc_get(keydir, www, &t), -EPERM);
	assert_int_equal(F->nreq, 1);
	fmt(www, sizeof(www), "Basic realm=%s/../elsewhere/outside.key", keydir);
	assert_int_equal(arc_get(keydir, www, &t), -EPERM);
	fmt(www, sizeof(www), "Basic realm=%s/wrong.txt", keydir);
	assert_int_equal(arc_get(keydir, www, &t), -EPERM);
	fmt(www, sizeof(www), "Basic realm=%s/big.key", keydir);
	assert_int_equal(arc_get(keydir, www, &t), -EPERM);
	assert_non_null(strstr(F->logs, "larger than 4096"));
	fmt(www, sizeof(www), "Basic realm=%s/missing.key", keydir);
	assert_int_equal(arc_get(keydir, www, &t), -EPERM);
	fmt(www, sizeof(www), "%s/link.key", keydir);
	fmt(other, sizeof(other), "%s/elsewhere/outside.key", tmpdir);
	assert_int_equal(symlink(other, www), 0);
	fmt(www, sizeof(www), "Basic realm=%s/link.key", keydir);
	assert_int_equal(arc_get(keydir, www, &t), -EPERM);
	fmt(www, sizeof(www), "%s/fifo.key", keydir);
	assert_int_equal(mkfifo(www, 0600), 0);
	fmt(www, sizeof(www), "Basic realm=%s/fifo.key", keydir);
	assert_int_equal(arc_get(keydir, www, &t), -EPERM);
	fmt(www, sizeof(www), "%s/dir.key", keydir);
	assert_int_equal(mkdir(www, 0700), 0);
	fmt(www, sizeof(www), "Basic realm=%s/dir.key", keydir);
	assert_int_equal(arc_get(keydir, www, &t), -EPERM);
	fmt(www, sizeof(www), "Bearer realm=%s/good.key", keydir);
	assert_int_equal(arc_get(keydir, www, &t), -EPROTO);
	assert_int_equal(arc_get(keydir, "Basic", &t), -EPROTO);
	assert_int_equal(arc_get(keydir, "Basic nonce=x", &t), -EPROTO);
	assert_int_equal(arc_get(keydir, NULL, &t), -EPROTO);
	assert_int_equal(F->nreq, 1);

	/* The agent rejects the key: final. */
	F->script_len = 0;
	F->nreq = 0;
	fmt(www, sizeof(www), "Basic realm=%s/good.key", keydir);
	{
		static const char *const env[] = { "IDENTITY_ENDPOINT=http://127.0.0.1:40342/t", "IMDS_ENDPOINT=x", NULL };
		struct entra_msi_request r = base_req(env);

		script(0, 401, -1, www, "{}");
		r.arc_token_dir_for_tests = keydir;
		assert_int_equal(get(&r, &t), -EACCES);
		assert_int_equal(F->nreq, 2);
		r.client_id = GUID1; /* Arc has no user-assigned identities */
		assert_int_equal(get(&r, &t), -ENOTSUP);
		assert_int_equal(F->nreq, 2);
	}
	/* The real directory is the default: a test override is needed to use another. */
	{
		static const char *const env[] = { "IDENTITY_ENDPOINT=http://127.0.0.1:40342/t", "IMDS_ENDPOINT=x", NULL };
		struct entra_msi_request r = base_req(env);

		F->script_len = 0;
		script(0, 401, -1, www, "{}");
		assert_int_equal(get(&r, &t), -EPERM);
		assert_non_null(strstr(t.error, ENTRA_MSI_ARC_TOKEN_DIR));
	}
}

/* ---- responses and statuses ---- */

static void test_response_forms(void **state)
{
	struct entra_msi_request r = base_req(NULL);
	struct entra_msi_token t;
	static const struct {
		const char *body;
		int rc;
		int64_t exp;
	} cases[] = {
		{ "{\"access_token\":\"" TOKEN "\",\"expires_on\":1700003600}", 0, T0 + 3600 },
		{ "{\"access_token\":\"" TOKEN "\",\"expires_in\":3600}", 0, T0 + 3600 },
		{ "{\"access_token\":\"" TOKEN "\",\"expires_in\":\"1800\"}", 0, T0 + 1800 },
		{ "{\"access_token\":\"" TOKEN "\",\"expires_on\":\"11/14/2023 23:13:20 +00:00\"}", 0, T0 + 3600 },
		{ "{\"access_token\":\"" TOKEN "\",\"expires_on\":\"soon\"}", -EPROTO, 0 },
		{ "{\"access_token\":\"" TOKEN "\",\"expires_on\":1.7e9}", -EPROTO, 0 },
		{ "{\"access_token\":\"" TOKEN "\",\"expires_in\":\"-5\"}", -EPROTO, 0 },
		{ "{\"access_token\":\"" TOKEN "\"}", -EPROTO, 0 },
		{ "{\"access_token\":\"" TOKEN "\",\"expires_on\":\"1699999990\"}", -EPROTO, 0 }, /* expired */
		{ "{\"access_token\":\"" TOKEN "\",\"expires_in\":30}", -EPROTO, 0 },
		{ "{\"access_token\":\"" TOKEN "\",\"expires_in\":99999999}", -EPROTO, 0 },
		{ "{\"access_token\":\"\",\"expires_in\":3600}", -EPROTO, 0 },
		{ "{\"access_token\":\"a b\",\"expires_in\":3600}", -EPROTO, 0 },
		{ "{\"access_token\":\"a\\nb\",\"expires_in\":3600}", -EPROTO, 0 },
		{ "{\"access_token\":42,\"expires_in\":3600}", -EPROTO, 0 },
		{ "{\"access_token\":\"" TOKEN "\",\"expires_in\":3600,\"token_type\":\"pop\"}", -EPROTO, 0 },
		{ "{\"access_token\":\"" TOKEN "\",\"expires_in\":3600,\"token_type\":\"bearer\"}", 0, T0 + 3600 },
		{ "{\"access_token\":\"" TOKEN "\", \"expires_", -EPROTO, 0 },
		{ "[]", -EPROTO, 0 },
		{ "", -EPROTO, 0 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc;

		F->script_len = 0;
		F->nreq = 0;
		script(0, 200, -1, NULL, "%s", cases[i].body);
		rc = get(&r, &t);
		if (rc != cases[i].rc)
			fail_msg("case %zu: %d (%s)", i, rc, t.error);
		assert_int_equal(F->nreq, 1); /* a bad 200 is final */
		if (rc == 0)
			assert_int_equal(t.expires_on, cases[i].exp);
		else
			assert_null(t.access_token);
		entra_msi_token_clear(&t);
	}
}

static void test_identity_not_found(void **state)
{
	struct entra_msi_request r = base_req(NULL);
	struct entra_msi_token t;

	(void)state;
	script(0, 400, -1, NULL, "{\"error\":\"invalid_request\",\"error_description\":\"Identity not found\"}");
	assert_int_equal(get(&r, &t), -ENOENT);
	assert_string_equal(t.error, "no managed identity is assigned to this VM");
	r.client_id = GUID1;
	assert_int_equal(get(&r, &t), -ENOENT);
	assert_string_equal(t.error, "managed identity client_id " GUID1 " is not assigned to this VM");
	assert_int_equal(F->nreq, 2);
	assert_non_null(strstr(F->logs, "is not assigned to this VM"));

	F->script_len = 0;
	script(0, 400, -1, NULL, "{\"error\":\"bad_request_102\",\"error_description\":\"Required metadata header not specified\"}");
	assert_int_equal(get(&r, &t), -EACCES);
	assert_non_null(strstr(t.error, "Metadata header"));

	F->script_len = 0;
	script(0, 400, -1, NULL, "{\"error\":\"invalid_resource\",\"error_description\":\"AADSTS50001: nope\"}");
	assert_int_equal(get(&r, &t), -EACCES);
	assert_non_null(strstr(t.error, "invalid_resource"));

	/* App Service's dialect */
	{
		static const char *const env[] = { "IDENTITY_ENDPOINT=http://127.0.0.1:1/t", "IDENTITY_HEADER=s3cr3t", NULL };
		struct entra_msi_request a = base_req(env);

		F->script_len = 0;
		script(0, 400, -1, NULL, "{\"statusCode\":400,\"message\":\"Unable to load the proper Managed Identity.\"}");
		assert_int_equal(get(&a, &t), -ENOENT);
		assert_string_equal(t.error, "no managed identity is assigned to this host");
	}
	/* other 4xx: final, with the server's words (made printable) */
	F->script_len = 0;
	F->nreq = 0;
	script(0, 403, 5, NULL, "{\"error\":\"forbidden\",\"error_description\":\"no\\u0007way\"}");
	assert_int_equal(get(&r, &t), -EACCES);
	assert_int_equal(F->nreq, 1);
	assert_int_equal(F->nsleep, 0);
	assert_non_null(strstr(t.error, "HTTP 403 forbidden no?way"));
}

static void test_retry_then_success(void **state)
{
	struct entra_msi_request r = base_req(NULL);
	struct entra_msi_token t;

	(void)state;
	script(0, 404, -1, NULL, "{}");
	script(0, 410, -1, NULL, "{}");
	script(0, 429, 3, NULL, "{\"error\":\"throttled\"}");
	script(0, 500, -1, NULL, "oops");
	script(-ECONNREFUSED, 0, -1, NULL, "%s", "");
	script(0, 503, 600, NULL, "{}");
	script_ok(3600);
	r.total_ms = 200000;
	assert_int_equal(get(&r, &t), 0);
	assert_int_equal(F->nreq, 7);
	assert_int_equal(F->nsleep, 6);
	/* jittered doubling from 1 s: [d/2, d] */
	assert_in_range(F->sleeps[0], 500, 1000);
	assert_in_range(F->sleeps[1], 1000, 2000);
	assert_in_range(F->sleeps[2], 3000, 4000); /* Retry-After: 3 beats a shorter wait */
	assert_in_range(F->sleeps[3], 4000, 8000);
	assert_in_range(F->sleeps[4], 8000, 16000);
	assert_int_equal(F->sleeps[5], 60000);     /* Retry-After: 600 capped */
	entra_msi_token_clear(&t);
}

static void test_retry_bounded(void **state)
{
	struct entra_msi_request r = base_req(NULL);
	struct entra_msi_token t;
	int64_t total = 0;

	(void)state;
	script(0, 503, -1, NULL, "{}");
	r.total_ms = 20000;
	assert_int_equal(get(&r, &t), -ETIMEDOUT);
	for (int i = 0; i < F->nsleep; i++)
		total += F->sleeps[i];
	assert_true(total < 20000);
	assert_true(F->nreq >= 4 && F->nreq <= 6);
	assert_non_null(strstr(t.error, "HTTP 503"));
	assert_non_null(strstr(t.error, "gave up"));
	assert_null(t.access_token);

	/* transport errors: retried, then the last reason */
	F->script_len = 0;
	F->nreq = 0;
	F->nsleep = 0;
	script(-EHOSTUNREACH, 0, -1, NULL, "%s", "");
	assert_int_equal(get(&r, &t), -ETIMEDOUT);
	assert_true(F->nreq > 1);
	assert_non_null(strstr(t.error, "reach"));
	/* a protocol error (TLS, redirect) is final */
	F->script_len = 0;
	F->nreq = 0;
	script(-EPROTO, 0, -1, NULL, "%s", "");
	assert_int_equal(get(&r, &t), -EPROTO);
	assert_int_equal(F->nreq, 1);
}

/* ---- the cache ---- */

static void cache_req(struct entra_msi_request *r, char *dir, size_t len)
{
	fmt(dir, len, "%s/cache", tmpdir);
	*r = base_req(NULL);
	r->cache_dir = dir;
}

static void cache_file(char *out, size_t len)
{
	char msi[PATH_MAX];
	FILE *p;
	char cmd[PATH_MAX + 64];

	fmt(msi, sizeof(msi), "%s/cache/msi", tmpdir);
	fmt(cmd, sizeof(cmd), "ls %s/*.json", msi);
	p = popen(cmd, "r");
	assert_non_null(p);
	assert_non_null(fgets(out, (int)len, p));
	out[strcspn(out, "\n")] = '\0';
	assert_null(fgets(cmd, sizeof(cmd), p)); /* exactly one */
	pclose(p);
}

static void test_cache_hit_and_modes(void **state)
{
	struct entra_msi_request r;
	struct entra_msi_token t;
	char dir[PATH_MAX], path[PATH_MAX], file[PATH_MAX];
	struct stat st;

	(void)state;
	cache_req(&r, dir, sizeof(dir));
	script_ok(3600);
	assert_int_equal(get(&r, &t), 0);
	assert_false(t.from_cache);
	entra_msi_token_clear(&t);
	assert_int_equal(get(&r, &t), 0);
	assert_true(t.from_cache);
	assert_string_equal(t.access_token, TOKEN);
	assert_int_equal(t.expires_on, T0 + 3600);
	entra_msi_token_clear(&t);
	assert_int_equal(F->nreq, 1);

	fmt(path, sizeof(path), "%s/msi", dir);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0700);
	cache_file(file, sizeof(file));
	assert_int_equal(lstat(file, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_uid, geteuid());

	/* another resource or identity: another entry */
	r.resource = "https://ml.azure.com/.default";
	assert_int_equal(get(&r, &t), 0);
	entra_msi_token_clear(&t);
	r.client_id = GUID1;
	assert_int_equal(get(&r, &t), 0);
	assert_false(t.from_cache);
	entra_msi_token_clear(&t);
	assert_int_equal(F->nreq, 3);

	/* a cache file readable by others is not trusted: refetched, rewritten 0600 */
	r.resource = "https://management.azure.com/.default";
	r.client_id = NULL;
	assert_int_equal(chmod(file, 0644), 0);
	assert_int_equal(get(&r, &t), 0);
	assert_false(t.from_cache);
	entra_msi_token_clear(&t);
	assert_int_equal(lstat(file, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(F->nreq, 4);
}

#define TID "72f988bf-86f1-41af-91ab-2d7cd011db47"
#define OID "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9"
#define JWT_TOKEN "eyJ0eXAiOiJKV1QifQ.eyJhdWQiOiJhcm0iLCJ0aWQiOiI3MmY5ODhiZi04NmYxLTQxYWYtOTFhYi0yZDdjZDAxMWRiNDciLCJvaWQiOiI1ZTZmN2E4Yi05YzBkLTRlMWYtYTJiMy1jNGQ1ZTZmN2E4YjkifQ.c2lnbmF0dXJl"

static void write_file(const char *file, const char *text)
{
	int fd = open(file, O_WRONLY | O_TRUNC);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

/* The key an entry is filed under: its name without ".json". */
static const char *key_of(const char *file, char key[65])
{
	const char *base = strrchr(file, '/') + 1;

	assert_int_equal(strlen(base), 64 + strlen(".json"));
	memcpy(key, base, 64);
	key[64] = '\0';
	return key;
}

static void read_text(const char *file, char *out, size_t len)
{
	FILE *fp = fopen(file, "r");
	size_t n;

	assert_non_null(fp);
	n = fread(out, 1, len - 1, fp);
	out[n] = '\0';
	fclose(fp);
}

/* Without a handle from the caller, one is made only for a request: a warm
 * cache makes none. */
static void test_cache_lazy_http(void **state)
{
	struct entra_http_options opt = { .allow_plain_http = true };
	struct entra_msi_request r;
	struct entra_msi_token t;
	char dir[PATH_MAX];

	(void)state;
	cache_req(&r, dir, sizeof(dir));
	r.http_options = &opt;
	script_ok(3600);
	assert_int_equal(entra_msi_get_token(&r, NULL, &test_log, &t), 0);
	assert_false(t.from_cache);
	entra_msi_token_clear(&t);
	assert_int_equal(F->http_made, 1);
	assert_int_equal(F->http_freed, 1);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(entra_msi_get_token(&r, NULL, &test_log, &t), 0);
		assert_true(t.from_cache);
		entra_msi_token_clear(&t);
	}
	assert_int_equal(F->http_made, 1);
	assert_int_equal(F->nreq, 1);
	/* neither a handle nor options: a request fails, nothing is sent */
	r.http_options = NULL;
	r.resource = "https://ml.azure.com";
	assert_int_equal(entra_msi_get_token(&r, NULL, &test_log, &t), -EINVAL);
	assert_null(t.access_token);
	assert_int_equal(F->nreq, 1);
}

/* tid and oid of the token travel with it through the cache; an entry in
 * another layout (JSON as an older version or an admin wrote it) is still
 * served, and described from the token. */
static void test_cache_description(void **state)
{
	struct entra_msi_request r;
	struct entra_msi_token t;
	char dir[PATH_MAX], file[PATH_MAX], key[65], text[1024];

	(void)state;
	cache_req(&r, dir, sizeof(dir));
	script(0, 200, -1, NULL, "{\"access_token\":\"%s\",\"expires_in\":3600}", JWT_TOKEN);
	assert_int_equal(get(&r, &t), 0);
	assert_false(t.from_cache);
	assert_string_equal(t.tenant_id, TID);
	assert_string_equal(t.object_id, OID);
	entra_msi_token_clear(&t);
	assert_null(t.tenant_id);
	assert_int_equal(get(&r, &t), 0);
	assert_true(t.from_cache);
	assert_string_equal(t.access_token, JWT_TOKEN);
	assert_string_equal(t.tenant_id, TID);
	assert_string_equal(t.object_id, OID);
	entra_msi_token_clear(&t);

	cache_file(file, sizeof(file));
	write_file(file, "{ \"source\": \"imds\", \"access_token\": \"" JWT_TOKEN "\", \"resource\": \"r\","
			 " \"expires_on\": 1800000000, \"refresh_on\": 1700000100 }");
	assert_int_equal(get(&r, &t), 0);
	assert_true(t.from_cache);
	assert_string_equal(t.tenant_id, TID);
	assert_string_equal(t.object_id, OID);
	assert_int_equal(t.expires_on, 1800000000);
	entra_msi_token_clear(&t);
	/* Exactly what the previous version wrote: it starts like today's
	 * layout and differs later (no tenant_id): the JSON path must get the
	 * text whole, and serve it without a request. */
	write_file(file, "{\"access_token\":\"" JWT_TOKEN "\",\"token_type\":\"Bearer\",\"resource\":\"r\","
			 "\"source\":\"imds\",\"expires_on\":1800000000,\"refresh_on\":1700000100}\n");
	assert_int_equal(get(&r, &t), 0);
	assert_true(t.from_cache);
	assert_string_equal(t.access_token, JWT_TOKEN);
	assert_string_equal(t.tenant_id, TID);
	assert_int_equal(t.expires_on, 1800000000);
	entra_msi_token_clear(&t);

	/* the cached description is taken only when it is a plain id */
	fmt(text, sizeof(text),
	    "{\"access_token\":\"" TOKEN "\",\"token_type\":\"Bearer\",\"resource\":\"r\","
	    "\"source\":\"imds\",\"tenant_id\":\"a b\",\"object_id\":\"\",\"key\":\"%s\","
	    "\"expires_on\":1800000000,\"refresh_on\":1700000100}\n", key_of(file, key));
	write_file(file, text);
	assert_int_equal(get(&r, &t), 0);
	assert_true(t.from_cache);
	assert_null(t.tenant_id);
	assert_null(t.object_id);
	entra_msi_token_clear(&t);
	/* a token that is not a JWT has no description */
	F->wall = 1700000100;
	script(0, 200, -1, NULL, "{\"access_token\":\"opaque-token\",\"expires_in\":3600}");
	assert_int_equal(get(&r, &t), 0);
	assert_false(t.from_cache);
	assert_null(t.tenant_id);
	assert_null(t.object_id);
	entra_msi_token_clear(&t);
	assert_int_equal(F->nreq, 2);
}

/* An entry names its key: one copied or moved under another identity's
 * name is refused. The warm read looks at the entry alone (root's, 0600,
 * naming its key), not at the directories: an entry of the older layout,
 * which names nothing, is served only from directories that pass the
 * checks, and anything written goes through them. */
static void test_cache_entry_names_its_key(void **state)
{
	struct entra_msi_request r;
	struct entra_msi_token t;
	char dir[PATH_MAX], file[PATH_MAX], other[PATH_MAX], msi[PATH_MAX], key[65];
	char text[4096];

	(void)state;
	cache_req(&r, dir, sizeof(dir));
	script_ok(3600);
	script_ok(3600);
	assert_int_equal(get(&r, &t), 0);
	entra_msi_token_clear(&t);
	cache_file(file, sizeof(file));
	read_text(file, text, sizeof(text));
	assert_non_null(strstr(text, key_of(file, key)));
	r.client_id = GUID1;
	assert_int_equal(get(&r, &t), 0); /* the user-assigned identity's entry */
	entra_msi_token_clear(&t);
	assert_int_equal(F->nreq, 2);
	/* its file replaced by the system identity's entry: not served */
	fmt(other, sizeof(other), "%s", file);
	fmt(msi, sizeof(msi), "%s/msi", dir);
	{
		FILE *p;
		char cmd[PATH_MAX + 64], line[PATH_MAX];

		fmt(cmd, sizeof(cmd), "ls %s/*.json", msi);
		p = popen(cmd, "r");
		assert_non_null(p);
		while (fgets(line, sizeof(line), p) != NULL) {
			line[strcspn(line, "\n")] = '\0';
			if (strcmp(line, file) != 0)
				fmt(other, sizeof(other), "%s", line);
		}
		pclose(p);
	}
	assert_string_not_equal(other, file);
	write_file(other, text);
	script_ok(3600);
	assert_int_equal(get(&r, &t), 0);
	assert_false(t.from_cache);
	entra_msi_token_clear(&t);
	assert_int_equal(F->nreq, 3);

	/* A world-writable msi directory: the system identity's entry, which
	 * names its key, is still read... */
	r.client_id = NULL;
	assert_int_equal(chmod(msi, 0777), 0);
	assert_int_equal(get(&r, &t), 0);
	assert_true(t.from_cache);
	entra_msi_token_clear(&t);
	assert_int_equal(F->nreq, 3);
	/* ...one of the older layout is not, and nothing is written there */
	write_file(file, "{\"access_token\":\"" TOKEN "\",\"token_type\":\"Bearer\",\"resource\":\"r\","
			 "\"source\":\"imds\",\"expires_on\":1800000000,\"refresh_on\":1700000100}\n");
	script_ok(3600);
	assert_int_equal(get(&r, &t), 0);
	assert_false(t.from_cache);
	entra_msi_token_clear(&t);
	assert_int_equal(F->nreq, 4);
	assert_non_null(strstr(F->logs, "unusable"));
	read_text(file, text, sizeof(text));
	assert_null(strstr(text, "\"key\""));
	/* in checked directories it is served (an upgrade keeps its cache) */
	assert_int_equal(chmod(msi, 0700), 0);
	assert_int_equal(get(&r, &t), 0);
	assert_true(t.from_cache);
	entra_msi_token_clear(&t);
	assert_int_equal(F->nreq, 4);
}

static void test_cache_near_expiry(void **state)
{
	struct entra_msi_request r;
	struct entra_msi_token t;
	char dir[PATH_MAX];

	(void)state;
	cache_req(&r, dir, sizeof(dir));
	script_ok(3600);
	assert_int_equal(get(&r, &t), 0);
	entra_msi_token_clear(&t);
	F->wall = T0 + 3600 - 301; /* just before the 5-minute mark */
	assert_int_equal(get(&r, &t), 0);
	assert_true(t.from_cache);
	entra_msi_token_clear(&t);
	assert_int_equal(F->nreq, 1);
	F->wall = T0 + 3600 - 299;
	F->script_len = 0;
	script_ok(3600);
	assert_int_equal(get(&r, &t), 0);
	assert_false(t.from_cache);
	assert_int_equal(t.expires_on, F->wall + 3600);
	entra_msi_token_clear(&t);
	assert_int_equal(F->nreq, 2);
	/* and the new one is served from the cache */
	assert_int_equal(get(&r, &t), 0);
	assert_true(t.from_cache);
	entra_msi_token_clear(&t);
	assert_int_equal(F->nreq, 2);
}

static void test_cache_half_life(void **state)
{
	struct entra_msi_request r;
	struct entra_msi_token t;
	char dir[PATH_MAX];

	(void)state;
	cache_req(&r, dir, sizeof(dir));
	script_ok(86400);
	assert_int_equal(get(&r, &t), 0);
	assert_int_equal(t.refresh_on, T0 + 43200);
	entra_msi_token_clear(&t);
	F->wall = T0 + 43199;
	assert_int_equal(get(&r, &t), 0);
	assert_true(t.from_cache);
	entra_msi_token_clear(&t);
	assert_int_equal(F->nreq, 1);
	F->wall = T0 + 43200;
	F->script_len = 0;
	script_ok(86400);
	assert_int_equal(get(&r, &t), 0);
	assert_false(t.from_cache);
	assert_int_equal(t.expires_on, T0 + 43200 + 86400);
	entra_msi_token_clear(&t);
	assert_int_equal(F->nreq, 2);

	/* A refresh that fails falls back on the still-valid cached token... */
	F->wall = T0 + 43200 + 43200;
	F->script_len = 0;
	F->nreq = 0;
	script(0, 400, -1, NULL, "{\"error\":\"invalid_request\",\"error_description\":\"Identity not found\"}");
	assert_int_equal(get(&r, &t), 0);
	assert_true(t.from_cache);
	entra_msi_token_clear(&t);
	assert_non_null(strstr(F->logs, "using the cached token"));
	/* ...but never on an expired one. */
	F->wall = T0 + 43200 + 86400;
	assert_int_equal(get(&r, &t), -ENOENT);
	assert_null(t.access_token);
}

static void test_cache_corrupt(void **state)
{
	static const char *const bad[] = {
		"garbage", "", "{\"access_token\":\"" TOKEN "\"}",
		"{\"access_token\":\"a b\",\"expires_on\":1800000000,\"refresh_on\":1700000100,\"resource\":\"r\",\"source\":\"imds\"}",
		"{\"access_token\":\"" TOKEN "\",\"expires_on\":1800000000,\"refresh_on\":1700000100,\"resource\":\"r\",\"source\":\"arc\"}",
		/* the layout cache_write produces, with one thing wrong */
		"{\"access_token\":\"a b\",\"token_type\":\"Bearer\",\"resource\":\"r\",\"source\":\"imds\","
		"\"tenant_id\":\"\",\"object_id\":\"\",\"expires_on\":1800000000,\"refresh_on\":1700000100}\n",
		"{\"access_token\":\"" TOKEN "\",\"token_type\":\"Bearer\",\"resource\":\"r\",\"source\":\"arc\","
		"\"tenant_id\":\"\",\"object_id\":\"\",\"expires_on\":1800000000,\"refresh_on\":1700000100}\n",
		"{\"access_token\":\"" TOKEN "\",\"token_type\":\"Bearer\",\"resource\":\"r\",\"source\":\"imds\","
		"\"tenant_id\":\"\",\"object_id\":\"\",\"expires_on\":1700000100,\"refresh_on\":1800000000}\n",
		"{\"access_token\":\"" TOKEN "\",\"token_type\":\"Bearer\",\"resource\":\"r\",\"source\":\"imds\","
		"\"tenant_id\":\"\",\"object_id\":\"\",\"expires_on\":1800000000,\"refresh_on\":1700000100}\n{",
		"{\"access_token\":\"" TOKEN "\",\"token_type\":\"Bearer\",\"resource\":\"r\",\"source\":\"imds\","
		"\"tenant_id\":\"\",\"object_id\":\"\",\"expires_on\":-1800000000,\"refresh_on\":1700000100}\n",
	};
	struct entra_msi_request r;
	struct entra_msi_token t;
	char dir[PATH_MAX], file[PATH_MAX];

	(void)state;
	cache_req(&r, dir, sizeof(dir));
	script_ok(3600);
	assert_int_equal(get(&r, &t), 0);
	entra_msi_token_clear(&t);
	cache_file(file, sizeof(file));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int fd = open(file, O_WRONLY | O_TRUNC);

		assert_true(fd >= 0);
		assert_int_equal(write(fd, bad[i], strlen(bad[i])), (ssize_t)strlen(bad[i]));
		close(fd);
		assert_int_equal(get(&r, &t), 0);
		assert_false(t.from_cache);
		entra_msi_token_clear(&t);
		assert_int_equal(F->nreq, (int)i + 2);
		/* rewritten good */
		assert_int_equal(get(&r, &t), 0);
		assert_true(t.from_cache);
		entra_msi_token_clear(&t);
	}
	/* a symlink in place of the cache file is not followed */
	assert_int_equal(unlink(file), 0);
	assert_int_equal(symlink("/etc/passwd", file), 0);
	assert_int_equal(get(&r, &t), 0);
	assert_false(t.from_cache);
	entra_msi_token_clear(&t);
}

static void test_cache_dir_unsafe(void **state)
{
	struct entra_msi_request r;
	struct entra_msi_token t;
	char dir[PATH_MAX];

	(void)state;
	cache_req(&r, dir, sizeof(dir));
	assert_int_equal(mkdir(dir, 0777), 0);
	assert_int_equal(chmod(dir, 0777), 0);
	script_ok(3600);
	/* a world-writable cache dir is not used: every get fetches */
	assert_int_equal(get(&r, &t), 0);
	entra_msi_token_clear(&t);
	assert_int_equal(get(&r, &t), 0);
	assert_false(t.from_cache);
	entra_msi_token_clear(&t);
	assert_int_equal(F->nreq, 2);
	assert_non_null(strstr(F->logs, "unusable"));
}

/* ---- concurrency ---- */

static int run_children(const struct entra_msi_request *r, int n)
{
	int ok = 0;

	for (int i = 0; i < n; i++) {
		pid_t pid = fork();

		assert_true(pid >= 0);
		if (pid == 0) {
			struct entra_msi_token t;
			int rc = get(r, &t);

			rc = rc == 0 && t.access_token && strcmp(t.access_token, TOKEN) == 0 ? 0 : 1;
			entra_msi_token_clear(&t);
			_exit(rc);
		}
	}
	for (int i = 0; i < n; i++) {
		int st;

		assert_true(wait(&st) > 0);
		if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
			ok++;
	}
	return ok;
}

static void test_concurrent_cold(void **state)
{
	struct entra_msi_request r;
	char dir[PATH_MAX];

	(void)state;
	cache_req(&r, dir, sizeof(dir));
	r.total_ms = 20000;
	script_ok(3600);
	F->delay_ms = 200; /* a slow endpoint widens the race */
	assert_int_equal(run_children(&r, 50), 50);
	print_message("# 50 concurrent cold gets: %d request(s)\n", F->nreq);
	assert_int_equal(F->nreq, 1);
	/* past the refresh point: again one request for 50 */
	F->wall = T0 + 3600 - 100;
	F->script_len = 0;
	script_ok(3600);
	assert_int_equal(run_children(&r, 50), 50);
	print_message("# 50 concurrent gets at expiry: %d request(s) in total\n", F->nreq);
	assert_int_equal(F->nreq, 2);
}

static void test_warm_speed(void **state)
{
	struct entra_msi_request r;
	struct entra_msi_token t;
	char dir[PATH_MAX];
	int64_t t0, t1;
	const int n = 2000;

	(void)state;
	cache_req(&r, dir, sizeof(dir));
	script_ok(3600);
	assert_int_equal(get(&r, &t), 0);
	entra_msi_token_clear(&t);
	t0 = entra_monotonic_ms();
	for (int i = 0; i < n; i++) {
		assert_int_equal(get(&r, &t), 0);
		entra_msi_token_clear(&t);
	}
	t1 = entra_monotonic_ms();
	assert_int_equal(F->nreq, 1);
	print_message("# warm-cache get: %.1f us\n", (double)(t1 - t0) * 1000.0 / n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_detect_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scope_to_resource, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expires_on_forms, setup, teardown),
		cmocka_unit_test_setup_teardown(test_imds_request, setup, teardown),
		cmocka_unit_test_setup_teardown(test_imds_identities, setup, teardown),
		cmocka_unit_test_setup_teardown(test_azureml_request, setup, teardown),
		cmocka_unit_test_setup_teardown(test_appservice_request, setup, teardown),
		cmocka_unit_test_setup_teardown(test_endpoint_policy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_arc_challenge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_response_forms, setup, teardown),
		cmocka_unit_test_setup_teardown(test_identity_not_found, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_then_success, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cache_hit_and_modes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cache_lazy_http, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cache_description, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cache_entry_names_its_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cache_near_expiry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cache_half_life, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cache_corrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cache_dir_unsafe, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_cold, setup, teardown),
		cmocka_unit_test_setup_teardown(test_warm_speed, setup, teardown),
	};

	F = mmap(NULL, sizeof(*F), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (F == MAP_FAILED)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
