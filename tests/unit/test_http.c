/* lib/http against a local scripted TLS server (tests/unit/net_server.py). */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <cmocka.h>
#include <json-c/json.h>

#include "http.h"
#include "net_testserver.h"

static struct net_server srv;

/* Log lines captured for assertions on what is (not) logged. */
static char logged[8192];

static void capture(void *host, int priority, const char *line)
{
	size_t len = strlen(logged);

	(void)host;
	(void)priority;
	snprintf(logged + len, sizeof(logged) - len, "%s\n", line);
}

static const struct entra_log capture_log = { capture, NULL, true };

static int group_setup(void **state)
{
	(void)state;
	return net_server_start(&srv);
}

static int group_teardown(void **state)
{
	(void)state;
	net_server_stop(&srv);
	return 0;
}

static struct entra_http *client(long timeout_ms, size_t max_body, bool plain)
{
	struct entra_http_options opt = { srv.ca, timeout_ms, max_body, plain, NULL };
	struct entra_http *http = entra_http_new(&opt, &capture_log);

	assert_non_null(http);
	logged[0] = '\0';
	return http;
}

static char *url(int port, const char *path)
{
	static char buf[4][512];
	static int next;
	char *out = buf[next++ % 4];

	snprintf(out, sizeof(buf[0]), "https://127.0.0.1:%d%s", port, path);
	return out;
}

static char *plain_url(const char *path)
{
	static char buf[512];

	snprintf(buf, sizeof(buf), "http://127.0.0.1:%d%s", srv.http, path);
	return buf;
}

static struct json_object *body_json(const struct entra_http_response *resp)
{
	struct json_object *obj;

	assert_non_null(resp->body.data);
	obj = json_tokener_parse(resp->body.data);
	assert_non_null(obj);
	return obj;
}

static const char *jstr(struct json_object *obj, const char *a, const char *b)
{
	struct json_object *v;

	assert_true(json_object_object_get_ex(obj, a, &v));
	if (b != NULL)
		assert_true(json_object_object_get_ex(v, b, &v));
	return json_object_get_string(v);
}

static void test_get_json(void **state)
{
	struct entra_http *http = client(5000, 0, false);
	struct entra_http_response resp;

	(void)state;
	assert_int_equal(entra_http_get(http, url(srv.https, "/json"), NULL, &resp), 0);
	assert_int_equal(resp.status, 200);
	assert_string_equal(resp.content_type, "application/json");
	assert_true(entra_http_is_json(&resp));
	assert_string_equal(resp.body.data, "{\"ok\":true}");
	assert_int_equal(resp.retry_after, -1);
	assert_null(resp.www_authenticate);
	entra_http_response_free(&resp);
	entra_http_free(http);
}

static void test_handle_reused_and_user_agent(void **state)
{
	struct entra_http *http = client(5000, 0, false);
	struct entra_http_response resp;
	struct json_object *a, *b;
	const char *ua;

	(void)state;
	assert_int_equal(entra_http_get(http, url(srv.https, "/echo"), NULL, &resp), 0);
	a = body_json(&resp);
	entra_http_response_free(&resp);
	assert_int_equal(entra_http_get(http, url(srv.https, "/echo"), NULL, &resp), 0);
	b = body_json(&resp);
	entra_http_response_free(&resp);
	/* Same client port: the connection of the first request was kept. */
	assert_string_equal(jstr(a, "client_port", NULL), jstr(b, "client_port", NULL));
	/* "pam_entra/VERSION", or "pam_entra" where the version is unknown
	 * to lib/ (see http.c). */
	ua = jstr(a, "headers", "user-agent");
	assert_true(strcmp(ua, "pam_entra") == 0 || strncmp(ua, "pam_entra/", 10) == 0);
	assert_string_equal(jstr(a, "method", NULL), "GET");
	json_object_put(a);
	json_object_put(b);
	entra_http_free(http);
}

static void test_post_form(void **state)
{
	static const char *const value = "a b&c=d/e+f%g?h\xc3\xa9~._-";
	static const char *const hdrs[] = { "X-Test: yes", NULL };
	struct entra_http *http = client(5000, 0, false);
	struct entra_http_response resp;
	struct entra_buf form;
	struct json_object *obj;

	(void)state;
	entra_buf_init(&form, 4096);
	assert_int_equal(entra_form_add(&form, "grant_type", "device_code"), 0);
	assert_int_equal(entra_form_add(&form, "we ird", value), 0);
	assert_int_equal(entra_form_add(&form, "empty", ""), 0);
	assert_string_equal(form.data, "grant_type=device_code&we%20ird="
				       "a%20b%26c%3Dd%2Fe%2Bf%25g%3Fh%C3%A9~._-&empty=");
	assert_int_equal(entra_http_post_form(http, url(srv.https, "/echo"), form.data, hdrs,
					      &resp), 0);
	obj = body_json(&resp);
	assert_string_equal(jstr(obj, "method", NULL), "POST");
	assert_string_equal(jstr(obj, "headers", "content-type"),
			    "application/x-www-form-urlencoded");
	assert_string_equal(jstr(obj, "headers", "x-test"), "yes");
	assert_string_equal(jstr(obj, "form", "grant_type"), "device_code");
	/* The server decodes latin-1: compare the raw body instead. */
	assert_string_equal(jstr(obj, "body", NULL), form.data);
	json_object_put(obj);
	entra_http_response_free(&resp);

	/* A GET after a POST on the same handle is a GET again. */
	assert_int_equal(entra_http_get(http, url(srv.https, "/echo"), NULL, &resp), 0);
	obj = body_json(&resp);
	assert_string_equal(jstr(obj, "method", NULL), "GET");
	assert_string_equal(jstr(obj, "body", NULL), "");
	json_object_put(obj);
	entra_http_response_free(&resp);
	entra_buf_free(&form);
	entra_http_free(http);
}

static void test_form_escaping(void **state)
{
	struct entra_buf form;
	char *e;

	(void)state;
	e = entra_url_escape("AZaz09-._~ /?#[]@!$&'()*+,;=%\n");
	assert_string_equal(e, "AZaz09-._~%20%2F%3F%23%5B%5D%40%21%24%26%27%28%29%2A%2B%2C%3B%3D%25%0A");
	free(e);
	assert_null(entra_url_escape(NULL));
	entra_buf_init(&form, 16);
	assert_int_equal(entra_form_add(&form, "k", "v"), 0);
	assert_int_equal(entra_form_add(&form, "", "v"), -EINVAL);
	assert_int_equal(entra_form_add(&form, "k", NULL), -EINVAL);
	/* Over the cap: refused, and the form is unchanged. */
	assert_int_equal(entra_form_add(&form, "long", "0123456789abcdef"), -E2BIG);
	assert_string_equal(form.data, "k=v");
	entra_buf_free(&form);
}

static void test_tls_untrusted_ca(void **state)
{
	struct entra_http *http = client(5000, 0, false);
	struct entra_http_response resp;

	(void)state;
	assert_int_equal(entra_http_get(http, url(srv.untrusted, "/json?client_secret=SEKRIT"),
					NULL, &resp), -EPROTO);
	assert_int_equal(resp.body.len, 0);
	entra_http_response_free(&resp);
	/* The reason names the host and path, never the query string. */
	assert_non_null(strstr(logged, "127.0.0.1"));
	assert_non_null(strstr(logged, "/json"));
	assert_null(strstr(logged, "SEKRIT"));
	assert_null(strstr(logged, "client_secret"));
	entra_http_free(http);
}

static void test_tls_wrong_name(void **state)
{
	struct entra_http *http = client(5000, 0, false);
	struct entra_http_response resp;

	(void)state;
	assert_int_equal(entra_http_get(http, url(srv.wrongname, "/json"), NULL, &resp), -EPROTO);
	entra_http_response_free(&resp);
	entra_http_free(http);
}

static void test_tls_system_store_rejects_test_ca(void **state)
{
	struct entra_http_options opt = { NULL, 5000, 0, false, NULL };
	struct entra_http *http = entra_http_new(&opt, &capture_log);
	struct entra_http_response resp;

	(void)state;
	assert_non_null(http);
	assert_int_equal(entra_http_get(http, url(srv.https, "/json"), NULL, &resp), -EPROTO);
	entra_http_response_free(&resp);
	entra_http_free(http);
}

static void test_plain_http(void **state)
{
	struct entra_http *http = client(5000, 0, false);
	struct entra_http_response resp;

	(void)state;
	assert_int_equal(net_server_reset(&srv), 0);
	assert_int_equal(entra_http_get(http, plain_url("/status/299"), NULL, &resp), -EPROTO);
	entra_http_response_free(&resp);
	assert_int_equal(net_server_count(&srv, "/status/299"), 0);
	assert_int_equal(entra_http_get(http, "ftp://127.0.0.1/x", NULL, &resp), -EPROTO);
	entra_http_response_free(&resp);
	entra_http_free(http);

	http = client(5000, 0, true);
	assert_int_equal(entra_http_get(http, plain_url("/status/299"), NULL, &resp), 0);
	assert_int_equal(resp.status, 299);
	entra_http_response_free(&resp);
	assert_int_equal(net_server_count(&srv, "/status/299"), 1);
	entra_http_free(http);
}

static void test_redirects_not_followed(void **state)
{
	struct entra_http *http = client(5000, 0, true);
	struct entra_http_response resp;

	(void)state;
	assert_int_equal(net_server_reset(&srv), 0);
	assert_int_equal(entra_http_get(http, url(srv.https, "/redirect-http"), NULL, &resp),
			 -EPROTO);
	assert_int_equal(resp.status, 302);
	entra_http_response_free(&resp);
	assert_int_equal(entra_http_get(http, url(srv.https, "/redirect-host"), NULL, &resp),
			 -EPROTO);
	assert_int_equal(resp.status, 302);
	entra_http_response_free(&resp);
	assert_int_equal(net_server_count(&srv, "/json"), 0);
	assert_non_null(strstr(logged, "redirect"));
	entra_http_free(http);
}

static void test_body_cap(void **state)
{
	struct entra_http *http = client(5000, 1000, false);
	struct entra_http_response resp;

	(void)state;
	assert_int_equal(entra_http_get(http, url(srv.https, "/big/1000"), NULL, &resp), 0);
	assert_int_equal(resp.body.len, 1000);
	entra_http_response_free(&resp);
	assert_int_equal(entra_http_get(http, url(srv.https, "/big/1001"), NULL, &resp), -E2BIG);
	assert_int_equal(resp.body.len, 0);
	entra_http_response_free(&resp);
	/* Without a Content-Length the write callback enforces the cap. */
	assert_int_equal(entra_http_get(http, url(srv.https, "/bigchunked/50000"), NULL, &resp),
			 -E2BIG);
	assert_null(resp.body.data);
	entra_http_response_free(&resp);
	assert_int_equal(entra_http_get(http, url(srv.https, "/bigchunked/999"), NULL, &resp), 0);
	assert_int_equal(resp.body.len, 999);
	entra_http_response_free(&resp);
	entra_http_free(http);
}

static void assert_times_out(struct entra_http *http, const char *u)
{
	struct entra_http_response resp;
	int64_t t0 = entra_monotonic_ms(), elapsed;

	assert_int_equal(entra_http_get(http, u, NULL, &resp), -ETIMEDOUT);
	elapsed = entra_monotonic_ms() - t0;
	entra_http_response_free(&resp);
	print_message("# %s ended after %lld ms\n", u, (long long)elapsed);
	/* A correctness bound, not a performance target. */
	assert_true(elapsed >= 400);
	assert_true(elapsed < 2500);
}

static void test_timeout(void **state)
{
	struct entra_http *http = client(500, 0, false);

	(void)state;
	assert_times_out(http, url(srv.https, "/delay/3000"));
	entra_http_free(http);
}

static void test_deadline_clips_timeout(void **state)
{
	struct entra_http *http = client(20000, 0, false);
	struct entra_http_response resp;

	(void)state;
	entra_http_set_deadline(http, entra_monotonic_ms() + 500);
	assert_times_out(http, url(srv.https, "/delay/3000"));
	/* Past the deadline nothing is sent at all. */
	assert_int_equal(net_server_reset(&srv), 0);
	assert_int_equal(entra_http_get(http, url(srv.https, "/status/204"), NULL, &resp),
			 -ETIMEDOUT);
	entra_http_response_free(&resp);
	assert_int_equal(net_server_count(&srv, "/status/204"), 0);
	entra_http_set_deadline(http, 0);
	assert_int_equal(entra_http_get(http, url(srv.https, "/status/204"), NULL, &resp), 0);
	assert_int_equal(resp.status, 204);
	entra_http_response_free(&resp);
	entra_http_free(http);
}

static void test_slow_drip(void **state)
{
	struct entra_http *http = client(1000, 0, false);

	(void)state;
	assert_times_out(http, url(srv.https, "/drip"));
	entra_http_free(http);
}

static void test_connection_reset(void **state)
{
	struct entra_http *http = client(5000, 0, false);
	struct entra_http_response resp;

	(void)state;
	assert_int_equal(entra_http_get(http, url(srv.https, "/reset"), NULL, &resp),
			 -ECONNRESET);
	entra_http_response_free(&resp);
	/* The handle is still usable. */
	assert_int_equal(entra_http_get(http, url(srv.https, "/json"), NULL, &resp), 0);
	assert_int_equal(resp.status, 200);
	entra_http_response_free(&resp);
	entra_http_free(http);
}

static void test_connection_refused(void **state)
{
	struct entra_http *http = client(5000, 0, false);
	struct entra_http_response resp;
	struct sockaddr_in sa = { 0 };
	socklen_t len = sizeof(sa);
	int fd, port;

	(void)state;
	/* A port that was just free: nobody listens there. */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	port = ntohs(sa.sin_port);
	close(fd);
	assert_int_equal(entra_http_get(http, url(port, "/json"), NULL, &resp), -ECONNREFUSED);
	entra_http_response_free(&resp);
	entra_http_free(http);
}

/* A name that does not resolve. The lookup must not leave the machine:
 * the child runs in a private mount namespace whose resolv.conf names only
 * 127.0.0.1 (where no DNS server listens), and /etc/hosts lacks the name. */
static void test_dns_failure(void **state)
{
	int status;
	pid_t pid;

	(void)state;
	if (geteuid() != 0)
		skip();
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct entra_http *http;
		struct entra_http_response resp;
		char conf[] = "/tmp/entra-resolv.XXXXXX";
		int fd, rc;

		if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
			_exit(77);
		fd = mkstemp(conf);
		if (fd < 0 || write(fd, "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n", 50) != 50)
			_exit(78);
		close(fd);
		if (mount(conf, "/etc/resolv.conf", NULL, MS_BIND, NULL) < 0)
			_exit(77);
		unlink(conf);
		http = client(5000, 0, false);
		/* RFC 6761: .invalid never resolves. */
		rc = entra_http_get(http, "https://pam-entra-test.invalid/x", NULL, &resp);
		entra_http_response_free(&resp);
		entra_http_free(http);
		_exit(rc == -EHOSTUNREACH ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == 77)
		skip();
	assert_int_equal(WEXITSTATUS(status), 0);
}

static long retry_after_for(struct entra_http *http, const char *value)
{
	struct entra_http_response resp;
	char path[256], *esc = entra_url_escape(value);
	long v;

	assert_non_null(esc);
	snprintf(path, sizeof(path), "/retry?v=%s", esc);
	free(esc);
	assert_int_equal(entra_http_get(http, url(srv.https, path), NULL, &resp), 0);
	assert_int_equal(resp.status, 429);
	v = resp.retry_after;
	entra_http_response_free(&resp);
	return v;
}

static void test_retry_after(void **state)
{
	struct entra_http *http = client(5000, 0, false);
	char date[64];
	time_t t;
	struct tm tm;
	long v;

	(void)state;
	assert_int_equal(retry_after_for(http, "120"), 120);
	assert_int_equal(retry_after_for(http, "0"), 0);
	assert_int_equal(retry_after_for(http, "soon"), -1);
	assert_int_equal(retry_after_for(http, "-5"), -1);
	assert_int_equal(retry_after_for(http, "99999999999999999999999"), -1);
	assert_int_equal(retry_after_for(http, "9999999"), 7 * 86400);
	t = time(NULL) + 60;
	gmtime_r(&t, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	v = retry_after_for(http, date);
	assert_true(v >= 55 && v <= 60);
	t = time(NULL) - 3600;
	gmtime_r(&t, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	assert_int_equal(retry_after_for(http, date), 0);
	entra_http_free(http);
}

static void check_ctype(struct entra_http *http, const char *value, const char *expect,
			bool json)
{
	struct entra_http_response resp;
	char path[256], *esc = entra_url_escape(value);

	snprintf(path, sizeof(path), "/ctype?v=%s", esc);
	free(esc);
	assert_int_equal(entra_http_get(http, url(srv.https, path), NULL, &resp), 0);
	assert_string_equal(resp.content_type, expect);
	assert_int_equal(entra_http_is_json(&resp), json);
	entra_http_response_free(&resp);
}

static void test_content_type(void **state)
{
	struct entra_http *http = client(5000, 0, false);

	(void)state;
	check_ctype(http, "application/json", "application/json", true);
	check_ctype(http, "Application/JSON ; charset=utf-8", "application/json", true);
	check_ctype(http, "application/jwk-set+json", "application/jwk-set+json", true);
	check_ctype(http, "text/html; charset=x", "text/html", false);
	check_ctype(http, "application/jsonp", "application/jsonp", false);
	check_ctype(http, "", "", false);
	entra_http_free(http);
}

static void test_www_authenticate(void **state)
{
	struct entra_http *http = client(5000, 0, false);
	struct entra_http_response resp;

	(void)state;
	assert_int_equal(entra_http_get(http, url(srv.https, "/www-auth"), NULL, &resp), 0);
	assert_int_equal(resp.status, 401);
	assert_non_null(resp.www_authenticate);
	assert_string_equal(resp.www_authenticate,
			    "Bearer realm=\"\", error=\"insufficient_claims\", claims=\"eyJ9\"");
	entra_http_response_free(&resp);
	assert_null(resp.www_authenticate);
	entra_http_free(http);
}

static void test_bad_input(void **state)
{
	static const char *const injected[] = { "X-A: b\r\nX-Evil: 1", NULL };
	static const char *const nocolon[] = { "garbage", NULL };
	struct entra_http *http = client(5000, 0, false);
	struct entra_http_response resp;

	(void)state;
	assert_int_equal(entra_http_get(http, NULL, NULL, &resp), -EINVAL);
	entra_http_response_free(&resp);
	assert_int_equal(entra_http_get(http, "https://127.0.0.1/a b", NULL, &resp), -EINVAL);
	entra_http_response_free(&resp);
	assert_int_equal(entra_http_get(http, "", NULL, &resp), -EINVAL);
	entra_http_response_free(&resp);
	assert_int_equal(entra_http_get(http, url(srv.https, "/json"), injected, &resp), -EINVAL);
	entra_http_response_free(&resp);
	assert_int_equal(entra_http_get(http, url(srv.https, "/json"), nocolon, &resp), -EINVAL);
	entra_http_response_free(&resp);
	assert_int_equal(entra_http_post_form(http, url(srv.https, "/echo"), NULL, NULL, &resp),
			 -EINVAL);
	entra_http_response_free(&resp);
	entra_http_free(http);
}

static void test_proxies(void **state)
{
	struct entra_http_options opt = { srv.ca, 5000, 0, false, "http://127.0.0.1:1" };
	struct entra_http *http;
	struct entra_http_response resp;

	(void)state;
	/* The environment names a proxy that refuses connections: it is
	 * never used (under su and sudo the user sets the environment). */
	setenv("http_proxy", "http://127.0.0.1:1", 1);
	setenv("https_proxy", "http://127.0.0.1:1", 1);
	setenv("HTTPS_PROXY", "http://127.0.0.1:1", 1);
	setenv("ALL_PROXY", "http://127.0.0.1:1", 1);
	unsetenv("no_proxy");
	unsetenv("NO_PROXY");
	http = client(5000, 0, false);
	assert_int_equal(entra_http_get(http, url(srv.https, "/json"), NULL, &resp), 0);
	assert_int_equal(resp.status, 200);
	entra_http_response_free(&resp);
	entra_http_free(http);
	/* Managed-identity handles never use one either. */
	http = client(5000, 0, true);
	assert_int_equal(entra_http_get(http, plain_url("/json"), NULL, &resp), 0);
	assert_int_equal(resp.status, 200);
	entra_http_response_free(&resp);
	entra_http_free(http);
	/* The configured proxy is used: this one refuses connections. */
	http = entra_http_new(&opt, &entra_log_stderr);
	assert_non_null(http);
	assert_int_equal(entra_http_get(http, url(srv.https, "/json"), NULL, &resp), -ECONNREFUSED);
	entra_http_response_free(&resp);
	entra_http_free(http);
	unsetenv("http_proxy");
	unsetenv("https_proxy");
	unsetenv("HTTPS_PROXY");
	unsetenv("ALL_PROXY");
}

static void test_monotonic(void **state)
{
	int64_t a = entra_monotonic_ms(), b;

	(void)state;
	usleep(20 * 1000);
	b = entra_monotonic_ms();
	assert_true(a > 0);
	assert_true(b - a >= 20 && b - a < 1000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_get_json),
		cmocka_unit_test(test_handle_reused_and_user_agent),
		cmocka_unit_test(test_post_form),
		cmocka_unit_test(test_form_escaping),
		cmocka_unit_test(test_tls_untrusted_ca),
		cmocka_unit_test(test_tls_wrong_name),
		cmocka_unit_test(test_tls_system_store_rejects_test_ca),
		cmocka_unit_test(test_plain_http),
		cmocka_unit_test(test_redirects_not_followed),
		cmocka_unit_test(test_body_cap),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_deadline_clips_timeout),
		cmocka_unit_test(test_slow_drip),
		cmocka_unit_test(test_connection_reset),
		cmocka_unit_test(test_connection_refused),
		cmocka_unit_test(test_dns_failure),
		cmocka_unit_test(test_retry_after),
		cmocka_unit_test(test_content_type),
		cmocka_unit_test(test_www_authenticate),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_proxies),
		cmocka_unit_test(test_monotonic),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
