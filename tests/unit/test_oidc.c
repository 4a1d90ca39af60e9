/* lib/oidc against the scripted TLS server: disk cache, TTL, last good
 * copy, unknown-kid refetch rate limit, metadata validation. The JWKS is
 * parsed by the real entra_jwks_parse (lib/jwt.c). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "oidc.h"
#include "net_testserver.h"

#define TENANT "contoso"
#define DISCOVERY_PATH "/" TENANT "/v2.0/.well-known/openid-configuration"
#define JWKS_PATH "/" TENANT "/discovery/v2.0/keys"
#define T0 ((time_t)1700000000)

static struct net_server srv;
static char authority[256];
static char cache[PATH_MAX];
static struct entra_http *http;

static int group_setup(void **state)
{
	struct entra_http_options opt = { NULL, 5000, 0, false, NULL };

	(void)state;
	if (net_server_start(&srv) != 0)
		return -1;
	snprintf(authority, sizeof(authority), "https://127.0.0.1:%d/", srv.https);
	opt.ca_file = srv.ca;
	http = entra_http_new(&opt, &entra_log_stderr);
	return http != NULL ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	entra_http_free(http);
	net_server_stop(&srv);
	return 0;
}

static char *discovery_doc(const char *token_scheme, bool with_jwks_uri)
{
	static char doc[2048];

	snprintf(doc, sizeof(doc),
		 "{\"issuer\":\"https://127.0.0.1:%d/{tenantid}/v2.0\","
		 "\"token_endpoint\":\"%s://127.0.0.1:%d/" TENANT "/oauth2/v2.0/token\","
		 "\"device_authorization_endpoint\":\"https://127.0.0.1:%d/" TENANT
		 "/oauth2/v2.0/devicecode\",%s%d%s"
		 "\"id_token_signing_alg_values_supported\":[\"RS256\"]}",
		 srv.https, token_scheme, srv.https, srv.https,
		 with_jwks_uri ? "\"jwks_uri\":\"https://127.0.0.1:" : "\"x\":", srv.https,
		 with_jwks_uri ? JWKS_PATH "\"," : ",");
	return doc;
}

static void serve_jwks(const char *kid)
{
	char *jwks = net_server_jwks(&srv, kid);

	assert_non_null(jwks);
	assert_int_equal(net_server_route(&srv, JWKS_PATH, 200, jwks, "application/json"), 0);
	free(jwks);
}

/* Per test: a fresh server script (good discovery + JWKS with kid k1) and
 * a fresh, not yet existing cache directory. */
static int setup(void **state)
{
	char dir[64];

	(void)state;
	if (net_server_reset(&srv) != 0)
		return -1;
	if (net_server_route(&srv, DISCOVERY_PATH, 200, discovery_doc("https", true),
			     "application/json") != 0)
		return -1;
	serve_jwks("k1");
	if (net_mkdtemp(dir, sizeof(dir)) != 0)
		return -1;
	snprintf(cache, sizeof(cache), "%s/oidc", dir);
	return 0;
}

static int teardown(void **state)
{
	char *slash;

	(void)state;
	slash = strrchr(cache, '/');
	*slash = '\0';
	net_rmtree(cache);
	return 0;
}

static long disc_count(void)
{
	return net_server_count(&srv, DISCOVERY_PATH);
}

static long jwks_count(void)
{
	return net_server_count(&srv, JWKS_PATH);
}

static void load_ok(struct entra_oidc *o, const char *cache_dir, time_t now)
{
	assert_int_equal(entra_oidc_init(o, authority, TENANT, cache_dir), 0);
	assert_int_equal(entra_oidc_load(o, http, &entra_log_stderr, now), 0);
	assert_true(o->loaded);
}

static const char *first_kid(const struct entra_oidc *o)
{
	assert_true(o->jwks.count >= 1);
	return o->jwks.keys[0].kid;
}

static int cache_entries(void)
{
	DIR *d = opendir(cache);
	struct dirent *de;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static void test_init(void **state)
{
	struct entra_oidc o;
	char want[512];

	(void)state;
	assert_int_equal(entra_oidc_init(&o, authority, TENANT, NULL), 0);
	/* The authority's trailing slash is trimmed. */
	snprintf(want, sizeof(want), "https://127.0.0.1:%d" DISCOVERY_PATH, srv.https);
	assert_string_equal(o.discovery_url, want);
	assert_false(o.loaded);
	entra_oidc_free(&o);
	assert_int_equal(entra_oidc_init(&o, "http://127.0.0.1/", TENANT, NULL), -EINVAL);
	assert_int_equal(entra_oidc_init(&o, authority, "a/b", NULL), -EINVAL);
	assert_int_equal(entra_oidc_init(&o, authority, "..", NULL), -EINVAL);
	assert_int_equal(entra_oidc_init(&o, authority, "", NULL), -EINVAL);
	assert_int_equal(entra_oidc_init(&o, authority, "t?x=1", NULL), -EINVAL);
	assert_int_equal(entra_oidc_init(&o, authority, TENANT, "relative"), -EINVAL);
}

static void test_cold_then_warm(void **state)
{
	struct entra_oidc a, b;
	struct stat st;
	char want[512];

	(void)state;
	load_ok(&a, cache, T0);
	assert_int_equal(disc_count(), 1);
	assert_int_equal(jwks_count(), 1);
	snprintf(want, sizeof(want), "https://127.0.0.1:%d/" TENANT "/oauth2/v2.0/token",
		 srv.https);
	assert_string_equal(a.metadata.token_endpoint, want);
	assert_non_null(strstr(a.metadata.issuer, "{tenantid}"));
	assert_string_equal(first_kid(&a), "k1");
	/* Cache directory created 0700, two cache files 0600. */
	assert_int_equal(stat(cache, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(cache_entries(), 2);
	/* A second load in the same process does nothing. */
	assert_int_equal(entra_oidc_load(&a, http, &entra_log_stderr, T0 + 10), 0);
	entra_oidc_free(&a);

	/* Another process (instance) within the TTL: zero requests. */
	load_ok(&b, cache, T0 + 3600);
	assert_int_equal(disc_count(), 1);
	assert_int_equal(jwks_count(), 1);
	assert_string_equal(b.metadata.token_endpoint, want);
	assert_string_equal(first_kid(&b), "k1");
	entra_oidc_free(&b);
}

static void test_ttl_expiry(void **state)
{
	struct entra_oidc a;

	(void)state;
	load_ok(&a, cache, T0);
	entra_oidc_free(&a);
	serve_jwks("k2");
	load_ok(&a, cache, T0 + ENTRA_OIDC_TTL - 1);
	assert_int_equal(disc_count(), 1);
	assert_string_equal(first_kid(&a), "k1");
	entra_oidc_free(&a);
	load_ok(&a, cache, T0 + ENTRA_OIDC_TTL + 1);
	assert_int_equal(disc_count(), 2);
	assert_int_equal(jwks_count(), 2);
	assert_string_equal(first_kid(&a), "k2");
	entra_oidc_free(&a);
	/* A cache stamped far in the future (clock set back) is not fresh. */
	load_ok(&a, cache, T0 - 3600);
	assert_int_equal(disc_count(), 3);
	entra_oidc_free(&a);
}

static void test_failed_refetch_keeps_last_good(void **state)
{
	struct entra_oidc a;

	(void)state;
	load_ok(&a, cache, T0);
	entra_oidc_free(&a);
	/* The IdP is down: stale copies are used. */
	assert_int_equal(net_server_route(&srv, DISCOVERY_PATH, 503, "{}", NULL), 0);
	assert_int_equal(net_server_route(&srv, JWKS_PATH, 503, "{}", NULL), 0);
	load_ok(&a, cache, T0 + 2 * ENTRA_OIDC_TTL);
	assert_int_equal(disc_count(), 2);
	assert_int_equal(jwks_count(), 2);
	assert_string_equal(first_kid(&a), "k1");
	assert_non_null(a.metadata.device_authorization_endpoint);
	entra_oidc_free(&a);
	/* The IdP serves garbage: stale copies again, and the cache keeps the
	 * last good documents. */
	assert_int_equal(net_server_route(&srv, DISCOVERY_PATH, 200, "<html>", "text/html"), 0);
	assert_int_equal(net_server_route(&srv, JWKS_PATH, 200, "{\"keys\":[]}", NULL), 0);
	load_ok(&a, cache, T0 + 3 * ENTRA_OIDC_TTL);
	assert_string_equal(first_kid(&a), "k1");
	entra_oidc_free(&a);
	/* Without a cache there is nothing to fall back on. */
	assert_int_equal(entra_oidc_init(&a, authority, TENANT, NULL), 0);
	assert_true(entra_oidc_load(&a, http, &entra_log_stderr, T0) < 0);
	assert_false(a.loaded);
	entra_oidc_free(&a);
}

static void test_unknown_kid_rate_limit(void **state)
{
	struct entra_oidc a, b;

	(void)state;
	load_ok(&a, cache, T0);
	load_ok(&b, cache, T0);
	assert_int_equal(jwks_count(), 1);
	serve_jwks("k2");
	/* First unknown kid: refetched. */
	assert_int_equal(entra_oidc_refresh_jwks(&a, http, &entra_log_stderr, T0 + 10), 0);
	assert_int_equal(jwks_count(), 2);
	assert_string_equal(first_kid(&a), "k2");
	/* Another instance sharing the cache, within 5 minutes: limited. */
	assert_int_equal(entra_oidc_refresh_jwks(&b, http, &entra_log_stderr, T0 + 20), -EAGAIN);
	assert_int_equal(entra_oidc_refresh_jwks(&a, http, &entra_log_stderr, T0 + 30), -EAGAIN);
	assert_int_equal(jwks_count(), 2);
	assert_string_equal(first_kid(&b), "k1");
	/* After the interval: allowed again. */
	serve_jwks("k3");
	assert_int_equal(entra_oidc_refresh_jwks(&b, http, &entra_log_stderr,
						 T0 + 10 + ENTRA_OIDC_REFETCH_INTERVAL), 0);
	assert_int_equal(jwks_count(), 3);
	assert_string_equal(first_kid(&b), "k3");
	/* A failed refetch keeps the current keys. */
	assert_int_equal(net_server_route(&srv, JWKS_PATH, 500, "{}", NULL), 0);
	assert_true(entra_oidc_refresh_jwks(&a, http, &entra_log_stderr, T0 + 1000) < 0);
	assert_int_equal(jwks_count(), 4);
	assert_string_equal(first_kid(&a), "k2");
	entra_oidc_free(&a);
	entra_oidc_free(&b);
	/* The refetched set went to the cache: a new instance sees k3. */
	load_ok(&a, cache, T0 + 1000);
	assert_string_equal(first_kid(&a), "k3");
	entra_oidc_free(&a);
}

static void test_rate_limit_without_cache(void **state)
{
	struct entra_oidc a;

	(void)state;
	load_ok(&a, NULL, T0);
	assert_int_equal(entra_oidc_refresh_jwks(&a, http, &entra_log_stderr, T0 + 1), 0);
	assert_int_equal(entra_oidc_refresh_jwks(&a, http, &entra_log_stderr, T0 + 2), -EAGAIN);
	assert_int_equal(jwks_count(), 2);
	entra_oidc_free(&a);
	/* Not loaded: refused. */
	assert_int_equal(entra_oidc_init(&a, authority, TENANT, NULL), 0);
	assert_int_equal(entra_oidc_refresh_jwks(&a, http, &entra_log_stderr, T0), -EINVAL);
	entra_oidc_free(&a);
}

static void expect_load_fails(const char *discovery, const char *jwks)
{
	struct entra_oidc a;

	if (discovery != NULL)
		assert_int_equal(net_server_route(&srv, DISCOVERY_PATH, 200, discovery, NULL), 0);
	if (jwks != NULL)
		assert_int_equal(net_server_route(&srv, JWKS_PATH, 200, jwks, NULL), 0);
	assert_int_equal(entra_oidc_init(&a, authority, TENANT, cache), 0);
	assert_true(entra_oidc_load(&a, http, &entra_log_stderr, T0) < 0);
	assert_false(a.loaded);
	entra_oidc_free(&a);
}

static void test_malformed_discovery(void **state)
{
	char doc[4096];

	(void)state;
	expect_load_fails("not json", NULL);
	expect_load_fails("[]", NULL);
	expect_load_fails("{\"issuer\":1}", NULL);
	expect_load_fails(discovery_doc("http", true), NULL);
	expect_load_fails(discovery_doc("https", false), NULL);
	snprintf(doc, sizeof(doc), "%s trailing", discovery_doc("https", true));
	expect_load_fails(doc, NULL);
	/* Missing device_authorization_endpoint. */
	snprintf(doc, sizeof(doc),
		 "{\"issuer\":\"https://x/\",\"token_endpoint\":\"https://x/t\","
		 "\"jwks_uri\":\"https://127.0.0.1:%d" JWKS_PATH "\"}", srv.https);
	expect_load_fails(doc, NULL);
	/* jwks_uri over plain http. */
	snprintf(doc, sizeof(doc),
		 "{\"issuer\":\"https://x/\",\"token_endpoint\":\"https://x/t\","
		 "\"device_authorization_endpoint\":\"https://x/d\","
		 "\"jwks_uri\":\"http://127.0.0.1:%d" JWKS_PATH "\"}", srv.http);
	expect_load_fails(doc, NULL);
	/* Nothing bad was cached. */
	assert_true(cache_entries() <= 0);
}

static void test_malformed_jwks(void **state)
{
	(void)state;
	expect_load_fails(NULL, "{}");
	expect_load_fails(NULL, "{\"keys\":[]}");
	expect_load_fails(NULL, "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"x\",\"n\":\"AQ\"}]}");
	expect_load_fails(NULL, "garbage");
}

static void test_unsafe_cache_dir_not_used(void **state)
{
	struct entra_oidc a;

	(void)state;
	assert_int_equal(mkdir(cache, 0700), 0);
	assert_int_equal(chmod(cache, 0777), 0);
	load_ok(&a, cache, T0);
	entra_oidc_free(&a);
	assert_int_equal(cache_entries(), 0);
	/* Hence every instance fetches. */
	load_ok(&a, cache, T0);
	entra_oidc_free(&a);
	assert_int_equal(disc_count(), 2);
	/* A symlink as cache directory is not used either. */
	assert_int_equal(rmdir(cache), 0);
	assert_int_equal(symlink("/tmp", cache), 0);
	load_ok(&a, cache, T0);
	entra_oidc_free(&a);
	assert_int_equal(disc_count(), 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_init, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cold_then_warm, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ttl_expiry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_refetch_keeps_last_good, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_kid_rate_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rate_limit_without_cache, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_discovery, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_jwks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unsafe_cache_dir_not_used, setup, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
