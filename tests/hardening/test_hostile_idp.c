/* A malicious or broken identity provider, through the whole PAM module:
 * truncated, oversized and non-JSON bodies, redirects, TLS with an
 * untrusted CA or the wrong name, slowloris, resets, stalls, refused
 * connections and (as root, in a private mount namespace) DNS failure,
 * at each stage of a login (discovery, JWKS, device code, token polls).
 * Each must end in a denial within login_timeout, tell the person
 * something, and log a clear reason.
 *
 * The scripted server is tests/unit/net_server.py. Its built-in routes
 * are reached through the authority's path: authority
 * https://127.0.0.1:P/drip makes the discovery URL /drip/<tenant>/v2.0/...,
 * which the server answers as /drip. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <libpamtest.h>

#include "pam_harness.h"
#include "hardening_util.h"
#include "net_testserver.h"

#define ALICE "alice@contoso.com"
#define TENANT "5e6f7a8b-1c2d-4e3f-9a0b-1c2d3e4f5a6b"
#define LOGIN_TIMEOUT 10
#define HTTP_TIMEOUT 2

static struct net_server NS;

enum stage { DISCOVERY, JWKS, DEVICECODE, TOKEN };

struct idp_case {
	const char *name;
	enum stage stage;
	const char *target;   /* DISCOVERY: authority path ("" for none); else the endpoint path */
	int port_kind;        /* 0 https, 1 untrusted, 2 wrongname, 3 fake (other CA), 4 port 1 */
	int expected;
	const char *reason;   /* in the log */
	int min_ms;           /* it must really have waited (slow peers) */
};

static const struct idp_case cases[] = {
	/* discovery */
	{ "discovery_truncated", DISCOVERY, "/trunc", 0, PAM_AUTHINFO_UNAVAIL, "discovery document is not a JSON object", 0 },
	{ "discovery_captive_portal_html", DISCOVERY, "/portal", 0, PAM_AUTHINFO_UNAVAIL, "discovery document is not a JSON object", 0 },
	{ "discovery_oversized_chunked", DISCOVERY, "/bigchunked/2000000", 0, PAM_AUTHINFO_UNAVAIL, "larger than 1048576", 0 },
	{ "discovery_oversized_length", DISCOVERY, "/big/1048577", 0, PAM_AUTHINFO_UNAVAIL, "larger than 1048576", 0 },
	{ "discovery_http_500_html", DISCOVERY, "/status/500", 0, PAM_AUTHINFO_UNAVAIL, "discovery fetch answered HTTP 500", 0 },
	{ "discovery_redirect_to_http", DISCOVERY, "/redirect-http", 0, PAM_AUTHINFO_UNAVAIL, "(redirect), not followed", 0 },
	{ "discovery_redirect_other_host", DISCOVERY, "/redirect-host", 0, PAM_AUTHINFO_UNAVAIL, "(redirect), not followed", 0 },
	{ "discovery_http_endpoints", DISCOVERY, "/plainhttp", 0, PAM_AUTHINFO_UNAVAIL, "is not an https URL", 0 },
	{ "tls_untrusted_ca", DISCOVERY, "", 1, PAM_AUTHINFO_UNAVAIL, "SSL certificate problem", 0 },
	{ "tls_wrong_name", DISCOVERY, "", 2, PAM_AUTHINFO_UNAVAIL, "no alternative certificate subject name", 0 },
	{ "tls_ca_file_of_other_ca", DISCOVERY, "", 3, PAM_AUTHINFO_UNAVAIL, "SSL certificate problem", 0 },
	{ "slowloris_discovery", DISCOVERY, "/drip", 0, PAM_AUTHINFO_UNAVAIL, "Timeout was reached", HTTP_TIMEOUT * 1000 - 200 },
	{ "stalled_discovery", DISCOVERY, "/delay/30000", 0, PAM_AUTHINFO_UNAVAIL, "Timeout was reached", HTTP_TIMEOUT * 1000 - 200 },
	{ "reset_discovery", DISCOVERY, "/reset", 0, PAM_AUTHINFO_UNAVAIL, "failed", 0 },
	{ "connection_refused", DISCOVERY, "", 4, PAM_AUTHINFO_UNAVAIL, "failed", 0 },
	/* JWKS */
	{ "jwks_reset", JWKS, "/reset", 0, PAM_AUTHINFO_UNAVAIL, "no usable JWKS", 0 },
	{ "jwks_no_usable_key", JWKS, "/nokeys", 0, PAM_AUTHINFO_UNAVAIL, "JWKS document holds no usable signing key", 0 },
	{ "jwks_oversized", JWKS, "/big/1100000", 0, PAM_AUTHINFO_UNAVAIL, "larger than 1048576", 0 },
	/* device authorization */
	{ "devicecode_truncated", DEVICECODE, "/trunc-dc", 0, PAM_AUTHINFO_UNAVAIL, "unusable device authorization response", 0 },
	{ "devicecode_http_verification_uri", DEVICECODE, "/dc-http-uri", 0, PAM_AUTHINFO_UNAVAIL, "unusable device authorization response", 0 },
	{ "devicecode_oversized", DEVICECODE, "/big/1100000", 0, PAM_AUTHINFO_UNAVAIL, "larger than 1048576", 0 },
	{ "devicecode_redirect_other_host", DEVICECODE, "/redirect-host", 0, PAM_AUTHINFO_UNAVAIL, "(redirect), not followed", 0 },
	{ "devicecode_slowloris", DEVICECODE, "/drip", 0, PAM_AUTHINFO_UNAVAIL, "Timeout was reached", HTTP_TIMEOUT * 1000 - 200 },
	{ "devicecode_reset", DEVICECODE, "/reset", 0, PAM_AUTHINFO_UNAVAIL, "failed", 0 },
	/* token polls, after the person pressed Enter */
	{ "token_truncated", TOKEN, "/trunc-token", 0, PAM_AUTHINFO_UNAVAIL, "unusable token response", 0 },
	{ "token_html_200", TOKEN, "/portal", 0, PAM_AUTHINFO_UNAVAIL, "unusable token response", 0 },
	{ "token_oversized", TOKEN, "/bigchunked/2000000", 0, PAM_AUTHINFO_UNAVAIL, "larger than 1048576", 0 },
	{ "token_redirect_to_http", TOKEN, "/redirect-http", 0, PAM_AUTHINFO_UNAVAIL, "(redirect), not followed", 0 },
	{ "token_reset_every_poll", TOKEN, "/reset", 0, PAM_AUTHINFO_UNAVAIL, "token endpoint failed 3 times in a row", 0 },
	{ "token_slowloris_every_poll", TOKEN, "/drip", 0, PAM_AUTHINFO_UNAVAIL, "token endpoint failed 3 times in a row", HTTP_TIMEOUT * 1000 - 200 },
	{ "token_stalled_every_poll", TOKEN, "/delay/30000", 0, PAM_AUTHINFO_UNAVAIL, "Timeout was reached", HTTP_TIMEOUT * 1000 - 200 },
	{ "token_503_every_poll", TOKEN, "/status/503", 0, PAM_AUTHINFO_UNAVAIL, "token endpoint failed 3 times in a row", 0 },
};

static char service_of[sizeof(cases) / sizeof(cases[0])][64];

static int write_conf(const char *path, const char *authority, const char *ca_file, const char *cache)
{
	FILE *f = fopen(path, "w");

	if (f == NULL)
		return -1;
	fprintf(f, "tenant = %s\nclient_id = 4f6c3f2e-0d5a-4a3e-9a54-1c2b3d4e5f60\nauthority = %s\n"
		   "ca_file = %s\ncache_dir = %s\nrun_dir = %s\ndb_dir = %s\nuser_mapping = upn\n"
		   "allowed_domains = contoso.com\nlogin_timeout = %d\nhttp_timeout = %d\nqr_code = no\n"
		   "home_template = %s/home/%%u\n",
		TENANT, authority, ca_file, cache, H.run_dir, H.db_dir, LOGIN_TIMEOUT, HTTP_TIMEOUT, H.dir);
	return fclose(f) == 0 ? chmod(path, 0644) : -1;
}

static char *url(const char *path)
{
	static char buf[4][512];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "https://127.0.0.1:%d%s", NS.https, path);
	return buf[i];
}

/* A discovery document under prefix whose one endpoint of stage points
 * at target, the others at working routes. */
static int route_discovery(const char *prefix, enum stage stage, const char *target)
{
	char path[512], doc[2048];

	snprintf(doc, sizeof(doc),
		 "{\"issuer\":\"%s\",\"token_endpoint\":\"%s\",\"device_authorization_endpoint\":\"%s\","
		 "\"jwks_uri\":\"%s\"}",
		 url("/issuer/v2.0"), url(stage == TOKEN ? target : "/token-unused"),
		 url(stage == DEVICECODE ? target : "/devicecode-ok"),
		 url(stage == JWKS ? target : "/_control/jwks?kid=k1"));
	snprintf(path, sizeof(path), "%s/%s/v2.0/.well-known/openid-configuration", prefix, TENANT);
	return net_server_route(&NS, path, 200, doc, "application/json");
}

static int setup_routes(void)
{
	char path[512], doc[1024];

	/* Static answers the cases use. */
	snprintf(path, sizeof(path), "/trunc/%s/v2.0/.well-known/openid-configuration", TENANT);
	if (net_server_route(&NS, path, 200, "{\"issuer\":\"https://127.0.0.1", "application/json") < 0)
		return -1;
	snprintf(path, sizeof(path), "/portal/%s/v2.0/.well-known/openid-configuration", TENANT);
	if (net_server_route(&NS, path, 200, "<html><body>Please log in to the hotel Wi-Fi</body></html>", "text/html") < 0 ||
	    net_server_route(&NS, "/portal", 200, "<html><body>Please log in</body></html>", "text/html") < 0)
		return -1;
	snprintf(path, sizeof(path), "/plainhttp/%s/v2.0/.well-known/openid-configuration", TENANT);
	snprintf(doc, sizeof(doc), "{\"issuer\":\"https://x/v2.0\",\"token_endpoint\":\"http://127.0.0.1:%d/t\","
		 "\"device_authorization_endpoint\":\"http://127.0.0.1:%d/d\",\"jwks_uri\":\"https://x/k\"}",
		 NS.http, NS.http);
	if (net_server_route(&NS, path, 200, doc, "application/json") < 0)
		return -1;
	if (net_server_route(&NS, "/nokeys", 200, "{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}]}", "application/json") < 0 ||
	    net_server_route(&NS, "/trunc-dc", 200, "{\"device_code\":\"x\",\"user_code\":\"AB", "application/json") < 0 ||
	    net_server_route(&NS, "/dc-http-uri", 200,
			     "{\"device_code\":\"x\",\"user_code\":\"ABCD\",\"verification_uri\":\"http://evil.example/device\","
			     "\"expires_in\":900,\"interval\":1}", "application/json") < 0 ||
	    net_server_route(&NS, "/devicecode-ok", 200,
			     "{\"device_code\":\"dc\",\"user_code\":\"ABCDEFGHJ\",\"verification_uri\":\"https://microsoft.com/devicelogin\","
			     "\"expires_in\":900,\"interval\":1,\"message\":\"m\"}", "application/json") < 0 ||
	    net_server_route(&NS, "/trunc-token", 200, "{\"token_type\":\"Bearer\",\"access_token\":\"ey", "application/json") < 0)
		return -1;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char prefix[64];

		if (cases[i].stage == DISCOVERY)
			continue;
		snprintf(prefix, sizeof(prefix), "/case%zu", i);
		if (route_discovery(prefix, cases[i].stage, cases[i].target) < 0)
			return -1;
	}
	return 0;
}

/* One config and one service per case (pam_wrapper reads the service
 * files once, so all of them are written before the first login). */
static int write_cases(void)
{
	char conf[512], cache[512], authority[512], args[600];
	const char *ca;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct idp_case *c = &cases[i];
		int port = c->port_kind == 1 ? NS.untrusted : c->port_kind == 2 ? NS.wrongname :
			   c->port_kind == 3 ? H.https_port : c->port_kind == 4 ? 1 : NS.https;

		if (c->stage == DISCOVERY)
			snprintf(authority, sizeof(authority), "https://127.0.0.1:%d%s", port, c->target);
		else
			snprintf(authority, sizeof(authority), "https://127.0.0.1:%d/case%zu", port, i);
		ca = NS.ca; /* for port_kind 3 this is the CA of another server than the fake */
		snprintf(conf, sizeof(conf), "%s/idp-%zu.conf", H.dir, i);
		snprintf(cache, sizeof(cache), "%s/cache-idp-%zu", H.dir, i);
		snprintf(service_of[i], sizeof(service_of[i]), "idp-%zu", i);
		snprintf(args, sizeof(args), "conf=%s", conf);
		if (write_conf(conf, authority, ca, cache) < 0 || harness_service(service_of[i], args) < 0)
			return -1;
	}
	return 0;
}

static void test_idp_case(void **state)
{
	const struct idp_case *c = *state;
	size_t i = (size_t)(c - cases);
	struct person p = { .action = PERSON_IGNORE };
	struct pam_testcase tc[] = { pam_test(PAMTEST_AUTHENTICATE, c->expected) };
	enum pamtest_err err;
	const char *log;
	long long start, took;

	log_capture_begin();
	start = now_ms();
	err = _pamtest_conv(service_of[i], ALICE, person_conv, &p, tc, 1, NULL);
	took = now_ms() - start;
	log = log_capture_end();
	if (getenv("HARDENING_VERBOSE") != NULL)
		fprintf(stderr, "# %s (%lld ms, rc %d):\n%s\n", c->name, took, tc[0].op_rv, log);
	if (err != PAMTEST_ERR_OK)
		fprintf(stderr, "# %s: authenticate returned %d, expected %d; log:\n%s\n", c->name,
			tc[0].op_rv, c->expected, log);
	assert_int_equal(err, PAMTEST_ERR_OK);
	assert_log_contains(log, c->reason);
	/* Bounded: never past login_timeout (plus process overhead). */
	assert_true(took <= LOGIN_TIMEOUT * 1000 + 1500);
	assert_true(took >= c->min_ms);
	/* The person was told, and saw a code only when one was issued. */
	assert_true(strlen(p.errors) > 0);
	assert_int_equal(p.prompts, c->stage == TOKEN ? 1 : 0);
	assert_log_lacks(log, "eyJ");
	assert_int_equal(harness_uid_of(ALICE), -1);
}

struct dns_run {
	char service[64];
	int rc;
	long long took;
};

/* In a child: a private mount namespace whose resolv.conf names
 * 127.0.0.1 (nothing listens on its port 53) and whose nsswitch.conf
 * says "files dns", so that no query can leave the machine; then a login
 * against an authority in .invalid (RFC 6761). */
static int dns_child(void *arg)
{
	struct dns_run *r = arg;
	char resolv[] = "/tmp/entra-resolv.XXXXXX", nss[] = "/tmp/entra-nss.XXXXXX";
	static const char rtext[] = "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n";
	static const char ntext[] = "passwd: files\ngroup: files\nhosts: files dns\n";
	struct person p = { .action = PERSON_IGNORE };
	struct pam_testcase tc[] = { pam_test(PAMTEST_AUTHENTICATE, PAM_AUTHINFO_UNAVAIL) };
	int fd;
	long long start;

	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return 77;
	fd = mkstemp(resolv);
	if (fd < 0 || write(fd, rtext, sizeof(rtext) - 1) != (ssize_t)sizeof(rtext) - 1)
		return 78;
	close(fd);
	fd = mkstemp(nss);
	if (fd < 0 || write(fd, ntext, sizeof(ntext) - 1) != (ssize_t)sizeof(ntext) - 1)
		return 78;
	close(fd);
	chmod(resolv, 0644);
	chmod(nss, 0644);
	if (mount(resolv, "/etc/resolv.conf", NULL, MS_BIND, NULL) < 0 ||
	    mount(nss, "/etc/nsswitch.conf", NULL, MS_BIND, NULL) < 0)
		return 77;
	unlink(resolv);
	unlink(nss);
	start = now_ms();
	if (_pamtest_conv(r->service, ALICE, person_conv, &p, tc, 1, NULL) != PAMTEST_ERR_OK)
		return 1;
	if (now_ms() - start > LOGIN_TIMEOUT * 1000 + 1500)
		return 2;
	return 0;
}

static void test_dns_failure(void **state)
{
	struct dns_run r = { "idp-dns", 0, 0 };
	const char *log;
	int rc;

	(void)state;
	if (geteuid() != 0)
		skip();
	log_capture_begin();
	rc = run_child(dns_child, &r, false);
	log = log_capture_end();
	if (rc == 77)
		skip();
	if (rc != 0)
		fprintf(stderr, "# dns child: %d\n%s\n", rc, log);
	assert_int_equal(rc, 0);
	assert_log_contains(log, "pam-entra-test.invalid");
	assert_log_contains(log, "no OpenID metadata");
}

static int group_setup(void **state)
{
	char conf[512], cache[512], args[600], *preload;

	(void)state;
	if (harness_start() < 0)
		return -1;
	/* The scripted server must not run under the PAM wrappers. */
	preload = getenv("LD_PRELOAD") ? strdup(getenv("LD_PRELOAD")) : NULL;
	unsetenv("LD_PRELOAD");
	if (net_server_start(&NS) < 0)
		return -1;
	if (preload != NULL) {
		setenv("LD_PRELOAD", preload, 1);
		free(preload);
	}
	if (setup_routes() < 0 || write_cases() < 0)
		return -1;
	snprintf(conf, sizeof(conf), "%s/idp-dns.conf", H.dir);
	snprintf(cache, sizeof(cache), "%s/cache-idp-dns", H.dir);
	if (write_conf(conf, "https://pam-entra-test.invalid", NS.ca, cache) < 0)
		return -1;
	snprintf(args, sizeof(args), "conf=%s", conf);
	return harness_service("idp-dns", args);
}

static int group_teardown(void **state)
{
	(void)state;
	net_server_stop(&NS);
	harness_stop();
	return 0;
}

int main(int argc, char **argv)
{
	size_t n = sizeof(cases) / sizeof(cases[0]);
	struct CMUnitTest *tests = calloc(n + 1, sizeof(*tests));

	(void)argc;
	if (harness_preload(argv) < 0 || tests == NULL)
		return 1;
	for (size_t i = 0; i < n; i++) {
		tests[i].name = cases[i].name;
		tests[i].test_func = test_idp_case;
		tests[i].initial_state = (void *)&cases[i];
	}
	tests[n].name = "dns_failure";
	tests[n].test_func = test_dns_failure;
	return _cmocka_run_group_tests("hostile_idp", tests, n + 1, group_setup, group_teardown);
}
