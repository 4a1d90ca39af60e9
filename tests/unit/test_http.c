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
#include <dirent.h>
#include <cmocka.h>
#include <json-c/json.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "http.h"
#include "http_parse.h"
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
	static char buf[2048];

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

static void copy_file(const char *from, const char *to)
{
	char buf[16384];
	FILE *in = fopen(from, "r"), *out;
	size_t n;

	assert_non_null(in);
	out = fopen(to, "w");
	assert_non_null(out);
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		assert_int_equal(fwrite(buf, 1, n, out), n);
	fclose(in);
	assert_int_equal(fclose(out), 0);
}

static long get_with_ca(const char *ca, int port)
{
	struct entra_http_options opt = { ca, 5000, 0, false, NULL };
	struct entra_http *http = entra_http_new(&opt, &capture_log);
	struct entra_http_response resp;
	long status;

	assert_non_null(http);
	status = entra_http_get(http, url(port, "/json"), NULL, &resp) == 0 ? resp.status : -1;
	entra_http_response_free(&resp);
	entra_http_free(http);
	return status;
}

/* Handles share one TLS context (trust store loaded) while the CA file is
 * the same and unchanged, and resume the TLS session the last connection
 * to the same peer left; a file just written is read by every handle
 * until it has settled; another CA in the file is trusted at once and the
 * old one no longer, sessions kept under it included. */
static void test_tls_context_shared(void **state)
{
	char ca[PATH_MAX + 32], other[PATH_MAX + 32], tmp[PATH_MAX + 32];
	unsigned long made, resumed;

	(void)state;
	snprintf(ca, sizeof(ca), "%s/shared-ca.pem", srv.dir);
	snprintf(other, sizeof(other), "%s/otherca.pem", srv.dir);
	snprintf(tmp, sizeof(tmp), "%s/shared-ca.tmp", srv.dir);
	copy_file(srv.ca, ca);
	sleep(3); /* settled */
	made = entra_http_tls_counts().contexts_made;
	resumed = entra_http_tls_counts().resumed;
	for (int i = 0; i < 3; i++)
		assert_int_equal(get_with_ca(ca, srv.https), 200);
	assert_int_equal(entra_http_tls_counts().contexts_made - made, 1);
	/* The second and third connections resumed the session the one
	 * before left; another port is another peer: nothing to resume. */
	assert_int_equal(entra_http_tls_counts().resumed - resumed, 2);
	assert_int_equal(get_with_ca(ca, srv.wrongname), -1);
	assert_int_equal(entra_http_tls_counts().resumed - resumed, 2);
	/* A child process does not use what its parent kept (a ticket is
	 * used once); its own next connection resumes its own session. */
	{
		pid_t pid = fork();
		int status;

		assert_true(pid >= 0);
		if (pid == 0) {
			unsigned long before = entra_http_tls_counts().resumed;
			int ok = get_with_ca(ca, srv.https) == 200 && entra_http_tls_counts().resumed == before &&
				 get_with_ca(ca, srv.https) == 200 && entra_http_tls_counts().resumed == before + 1;
			_exit(ok ? 0 : 1);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	assert_int_equal(get_with_ca(ca, srv.https), 200);
	assert_int_equal(entra_http_tls_counts().resumed - resumed, 3);

	/* Another CA put in its place: the trusted server is not any more,
	 * the other CA's is; the fresh file is read by each handle. */
	copy_file(other, tmp);
	assert_int_equal(rename(tmp, ca), 0);
	made = entra_http_tls_counts().contexts_made;
	resumed = entra_http_tls_counts().resumed;
	/* A session kept from the old trust is not offered: the server
	 * whose CA is no longer trusted stays refused. */
	assert_int_equal(get_with_ca(ca, srv.https), -1);
	assert_int_equal(get_with_ca(ca, srv.untrusted), 200);
	assert_int_equal(entra_http_tls_counts().contexts_made - made, 2);
	assert_int_equal(entra_http_tls_counts().resumed - resumed, 0);
	/* Rewritten in place (same inode): read again. */
	copy_file(srv.ca, ca);
	assert_int_equal(get_with_ca(ca, srv.https), 200);
	assert_int_equal(get_with_ca(ca, srv.untrusted), -1);
	assert_int_equal(unlink(ca), 0);
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
	/* Plain http goes only to loopback or link-local addresses, whatever
	 * the caller allowed: refused before any connect. */
	assert_int_equal(entra_http_get(http, "http://192.0.2.1:9/x", NULL, &resp), -EPROTO);
	entra_http_response_free(&resp);
	assert_int_equal(entra_http_get(http, "http://[2001:db8::1]:9/x", NULL, &resp), -EPROTO);
	entra_http_response_free(&resp);
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
	/* A name that is not a token, e.g. a space before the colon, would
	 * pass a check for "Host:" and send a second Host header. */
	static const char *const spaced[] = { "Host : evil.example", NULL };
	static const char *const noname[] = { ": value", NULL };
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
	assert_int_equal(entra_http_get(http, url(srv.https, "/json"), spaced, &resp), -EINVAL);
	entra_http_response_free(&resp);
	assert_int_equal(entra_http_get(http, url(srv.https, "/json"), noname, &resp), -EINVAL);
	entra_http_response_free(&resp);
	/* A bearer token of 60 KiB fits in a request header. */
	{
		char *bearer = malloc(60 * 1024 + 32);
		const char *big[] = { bearer, NULL };

		assert_non_null(bearer);
		memcpy(bearer, "Authorization: Bearer ", 22);
		memset(bearer + 22, 'a', 60 * 1024);
		bearer[22 + 60 * 1024] = '\0';
		assert_int_equal(entra_http_get(http, url(srv.https, "/json"), big, &resp), 0);
		assert_int_equal(resp.status, 200);
		entra_http_response_free(&resp);
		free(bearer);
	}
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

/* The response parser on its own: bytes in, fed in pieces of every size. */
struct parsed {
	int rc;
	bool done, keep_alive;
	struct entra_http_response resp;
};

static void parse_bytes(const char *raw, size_t len, size_t piece, size_t cap, bool connect,
			struct parsed *out)
{
	static struct entra_http_parser p;
	size_t off = 0;

	memset(out, 0, sizeof(*out));
	entra_buf_init(&out->resp.body, cap);
	out->resp.retry_after = -1;
	entra_http_parser_init(&p, &out->resp, connect);
	while (off < len && out->rc == 0 && !p.done) {
		size_t n = len - off < piece ? len - off : piece, used;

		out->rc = entra_http_parser_feed(&p, raw + off, n, &used);
		off += used;
	}
	if (out->rc == 0 && !p.done)
		out->rc = entra_http_parser_eof(&p);
	out->done = p.done;
	out->keep_alive = p.keep_alive;
	entra_http_parser_wipe(&p);
}

/* Same outcome whatever the piece size; returns the whole-input result. */
static void parse_all_ways(const char *raw, size_t cap, struct parsed *out)
{
	size_t len = strlen(raw);

	for (size_t piece = 1; piece <= 7; piece++) {
		struct parsed alt;

		parse_bytes(raw, len, piece, cap, false, &alt);
		parse_bytes(raw, len, len, cap, false, out);
		assert_int_equal(alt.rc, out->rc);
		assert_int_equal(alt.resp.status, out->resp.status);
		assert_int_equal(alt.resp.body.len, out->resp.body.len);
		entra_http_response_free(&alt.resp);
		if (piece < 7)
			entra_http_response_free(&out->resp);
	}
}

static int parse_rc(const char *raw)
{
	struct parsed r;

	parse_all_ways(raw, 4096, &r);
	entra_http_response_free(&r.resp);
	return r.rc;
}

static void test_parser_framing(void **state)
{
	struct parsed r;

	(void)state;
	parse_all_ways("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 4096, &r);
	assert_int_equal(r.rc, 0);
	assert_true(r.keep_alive);
	assert_string_equal(r.resp.body.data, "hello");
	entra_http_response_free(&r.resp);
	/* Chunked: extensions ignored, trailers consumed, sizes in hex. */
	parse_all_ways("HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n"
		       "3;name=value\r\nabc\r\nA \r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\n", 4096, &r);
	assert_int_equal(r.rc, 0);
	assert_true(r.keep_alive);
	assert_string_equal(r.resp.body.data, "abc0123456789");
	entra_http_response_free(&r.resp);
	/* Interim answers are skipped, with their headers. */
	parse_all_ways("HTTP/1.1 100 Continue\r\nRetry-After: 5\r\n\r\n"
		       "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n", 4096, &r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.resp.status, 204);
	assert_int_equal(r.resp.retry_after, -1);
	assert_false(r.keep_alive);
	entra_http_response_free(&r.resp);
	/* No framing: the body runs to the close; HTTP/1.0 closes. */
	parse_all_ways("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nto the end", 4096, &r);
	assert_int_equal(r.rc, 0);
	assert_false(r.keep_alive);
	assert_string_equal(r.resp.body.data, "to the end");
	entra_http_response_free(&r.resp);
	parse_all_ways("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", 4096, &r);
	assert_true(r.keep_alive);
	entra_http_response_free(&r.resp);
	/* Bare LF line ends are tolerated. */
	assert_int_equal(parse_rc("HTTP/1.1 200 OK\nContent-Length: 1\n\nx"), 0);
}

static void test_parser_rejects(void **state)
{
	char big[ENTRA_HTTP_LINE_MAX + 64];

	(void)state;
	assert_int_equal(parse_rc("HTTP/2.0 200 OK\r\n\r\n"), -EPROTO);
	assert_int_equal(parse_rc("HTTP/1.2 200 OK\r\n\r\n"), -EPROTO);
	assert_int_equal(parse_rc("ICY 200 OK\r\n\r\n"), -EPROTO);
	assert_int_equal(parse_rc("HTTP/1.1 20 OK\r\n\r\n"), -EPROTO);
	assert_int_equal(parse_rc("HTTP/1.1 2000 OK\r\n\r\n"), -EPROTO);
	assert_int_equal(parse_rc("HTTP/1.1 099 OK\r\n\r\n"), -EPROTO);
	assert_int_equal(parse_rc("HTTP/1.1 101 Switching\r\n\r\n"), -EPROTO);
	/* Content-Length: digits only, repeats agree, never with chunked. */
	assert_int_equal(parse_rc("HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello"), -EPROTO);
	assert_int_equal(parse_rc("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello"), -EPROTO);
	assert_int_equal(parse_rc("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
			 -EPROTO);
	assert_int_equal(parse_rc("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
			 -EPROTO);
	assert_int_equal(parse_rc("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n"
				  "\r\n3\r\nabc\r\n0\r\n\r\n"), -EPROTO);
	assert_int_equal(parse_rc("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), -EPROTO);
	assert_int_equal(parse_rc("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
				  "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), -EPROTO);
	/* Chunk sizes: hex, no overflow, data followed by CRLF. */
	assert_int_equal(parse_rc("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
				  "10000000000000001\r\n"), -EPROTO);
	assert_int_equal(parse_rc("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
				  "fffffffffffffff\r\n"), -E2BIG);
	assert_int_equal(parse_rc("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
				  "-1\r\n"), -EPROTO);
	assert_int_equal(parse_rc("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
				  "3\r\nabcd\r\n0\r\n\r\n"), -EPROTO);
	/* A chunk-size line is short: extensions cannot make tiny chunks cost
	 * kilobytes each. */
	{
		char ext[ENTRA_HTTP_CHUNK_LINE_MAX + 128];

		snprintf(ext, sizeof(ext), "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;%0*d\r\n",
			 ENTRA_HTTP_CHUNK_LINE_MAX, 0);
		assert_int_equal(parse_rc(ext), -EPROTO);
	}
	/* Header syntax: obs-fold, space before the colon, controls. */
	assert_int_equal(parse_rc("HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\n\r\n"), -EPROTO);
	assert_int_equal(parse_rc("HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n"), -EPROTO);
	assert_int_equal(parse_rc("HTTP/1.1 200 OK\r\nX-A: a\rb\r\n\r\n"), -EPROTO);
	assert_int_equal(parse_rc("HTTP/1.1 200 OK\r\nno colon\r\n\r\n"), -EPROTO);
	/* Caps: one line, the whole head, the body. */
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "HTTP/1.1 200 OK\r\nX-Big: ", 24);
	assert_int_equal(parse_rc(big), -EPROTO);
	/* A WWW-Authenticate over 8 KiB is dropped, the response kept. */
	{
		char *www = malloc(12 * 1024);
		struct parsed r;

		assert_non_null(www);
		snprintf(www, 12 * 1024, "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer x=\"%0*d\"\r\n"
			 "Content-Length: 0\r\n\r\n", 9 * 1024, 0);
		parse_all_ways(www, 4096, &r);
		assert_int_equal(r.rc, 0);
		assert_int_equal(r.resp.status, 401);
		assert_null(r.resp.www_authenticate);
		entra_http_response_free(&r.resp);
		free(www);
	}
	{
		struct entra_buf head;
		struct parsed r;

		entra_buf_init(&head, 200 * 1024);
		assert_int_equal(entra_buf_append_str(&head, "HTTP/1.1 200 OK\r\n"), 0);
		for (int i = 0; i < 100; i++)
			assert_int_equal(entra_buf_printf(&head, "X-%d: %01000d\r\n", i, 0), 0);
		assert_int_equal(entra_buf_append_str(&head, "Content-Length: 0\r\n\r\n"), 0);
		parse_bytes(head.data, head.len, head.len, 4096, false, &r);
		assert_int_equal(r.rc, -EPROTO);
		entra_http_response_free(&r.resp);
		entra_buf_free(&head);
	}
	assert_int_equal(parse_rc("HTTP/1.1 200 OK\r\nContent-Length: 4097\r\n\r\n"), -E2BIG);
	/* Cut short: a reset, not a response. */
	assert_int_equal(parse_rc("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"), -ECONNRESET);
	assert_int_equal(parse_rc("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"),
			 -ECONNRESET);
	assert_int_equal(parse_rc(""), -ECONNRESET);
	assert_int_equal(parse_rc("HTTP/1.1 200 OK\r\nContent-"), -ECONNRESET);
}

static void test_parser_connect_and_dates(void **state)
{
	static const char ok[] = "HTTP/1.1 200 Connection established\r\nContent-Length: 99\r\n\r\nTLS";
	struct parsed r;
	time_t now = 1000000000; /* 2001-09-09 01:46:40 UTC */

	(void)state;
	/* An answer to CONNECT ends with its head; what follows is the tunnel's. */
	parse_bytes(ok, strlen(ok), strlen(ok), 4096, true, &r);
	assert_int_equal(r.rc, 0);
	assert_true(r.done);
	assert_int_equal(r.resp.status, 200);
	assert_int_equal(r.resp.body.len, 0);
	entra_http_response_free(&r.resp);
	assert_int_equal(entra_http_retry_after("Sun, 09 Sep 2001 01:47:40 GMT", 29, now), 60);
	assert_int_equal(entra_http_retry_after("Sunday, 09-Sep-01 01:47:40 GMT", 30, now), 60);
	assert_int_equal(entra_http_retry_after("Sun Sep  9 01:47:40 2001", 24, now), 60);
	assert_int_equal(entra_http_retry_after("Sun Sep 09 01:47:40 2001", 24, now), 60);
	/* Near misses of each form. */
	assert_int_equal(entra_http_retry_after("Sun, 9 Sep 2001 01:47:40 GMT", 28, now), -1);
	assert_int_equal(entra_http_retry_after("Sun, 09 Sep 01 01:47:40 GMT", 27, now), -1);
	assert_int_equal(entra_http_retry_after("Sun, 09 Sept 2001 01:47:40 GMT", 30, now), -1);
	assert_int_equal(entra_http_retry_after("Sun, 09 Sep 2001 1:47:40 GMT", 28, now), -1);
	assert_int_equal(entra_http_retry_after("Sun, 09 Xyz 2001 01:47:40 GMT", 29, now), -1);
	assert_int_equal(entra_http_retry_after("Sunday, 09-Sep-2001 01:47:40 GMT", 32, now), -1);
	assert_int_equal(entra_http_retry_after("Sun Sep  9 01:47:40 2001 GMT", 28, now), -1);
	assert_int_equal(entra_http_retry_after("Sun Sep  9 24:47:40 2001", 24, now), -1);
	assert_int_equal(entra_http_retry_after("Sun, 09 Sep 2001 01:47:40 PST", 29, now), -1);
	assert_int_equal(entra_http_retry_after("Sun, 32 Sep 2001 01:47:40 GMT", 29, now), -1);
	assert_int_equal(entra_http_retry_after("Sun, 09 Sep 2001 01:47:40 GMT junk", 34, now), -1);
	assert_int_equal(entra_http_retry_after("Sun, 09 Sep 2000 01:47:40 GMT", 29, now), 0);
	assert_int_equal(entra_http_retry_after("Sun, 09 Sep 2031 01:47:40 GMT", 29, now), 7 * 86400);
}

static void test_interim_and_close(void **state)
{
	struct entra_http *http = client(5000, 0, false);
	struct entra_http_response resp;
	struct json_object *a, *b;

	(void)state;
	assert_int_equal(entra_http_get(http, url(srv.https, "/interim"), NULL, &resp), 0);
	assert_int_equal(resp.status, 200);
	assert_string_equal(resp.body.data, "final");
	entra_http_response_free(&resp);
	/* Connection: close, and a silent close of an idle connection: the
	 * next request goes out on a new connection and succeeds. */
	assert_int_equal(entra_http_get(http, url(srv.https, "/echo"), NULL, &resp), 0);
	a = body_json(&resp);
	entra_http_response_free(&resp);
	assert_int_equal(entra_http_get(http, url(srv.https, "/close"), NULL, &resp), 0);
	assert_string_equal(resp.body.data, "bye");
	entra_http_response_free(&resp);
	assert_int_equal(entra_http_get(http, url(srv.https, "/echo"), NULL, &resp), 0);
	b = body_json(&resp);
	entra_http_response_free(&resp);
	assert_string_not_equal(jstr(a, "client_port", NULL), jstr(b, "client_port", NULL));
	json_object_put(a);
	json_object_put(b);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(entra_http_get(http, url(srv.https, "/idle-close"), NULL, &resp), 0);
		assert_string_equal(resp.body.data, "idle");
		entra_http_response_free(&resp);
		usleep(50 * 1000);
	}
	/* The Host header names the port when it is not the default. */
	assert_int_equal(entra_http_get(http, url(srv.https, "/echo?q=1#frag"), NULL, &resp), 0);
	a = body_json(&resp);
	assert_string_equal(jstr(a, "path", NULL), "/echo?q=1");
	{
		char host[64];

		snprintf(host, sizeof(host), "127.0.0.1:%d", srv.https);
		assert_string_equal(jstr(a, "headers", "host"), host);
	}
	json_object_put(a);
	entra_http_response_free(&resp);
	entra_http_free(http);
}

static void raw_case(struct entra_http *http, const char *raw, int expect, long status)
{
	struct entra_http_response resp;
	char path[1536], *esc = entra_url_escape(raw);

	assert_non_null(esc);
	snprintf(path, sizeof(path), "/raw?v=%s", esc);
	free(esc);
	assert_int_equal(entra_http_get(http, plain_url(path), NULL, &resp), expect);
	assert_int_equal(resp.status, status);
	if (expect != 0)
		assert_int_equal(resp.body.len, 0);
	entra_http_response_free(&resp);
}

static void test_raw_responses(void **state)
{
	struct entra_http *http = client(5000, 0, true);
	struct entra_http_response resp;

	(void)state;
	raw_case(http, "HTTP/1.0 200 OK\r\n\r\nread to the close", 0, 200);
	raw_case(http, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;x\r\nok\r\n0\r\nT: 1\r\n\r\n",
		 0, 200);
	raw_case(http, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
		       "2\r\nok\r\n0\r\n\r\n", -EPROTO, 200);
	raw_case(http, "HTTP/1.1 200 OK\r\nX: 1\r\n folded\r\nContent-Length: 0\r\n\r\n", -EPROTO, 200);
	raw_case(http, "HTTP/2 200\r\n\r\n", -EPROTO, 0);
	raw_case(http, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", -ECONNRESET, 200);
	raw_case(http, "", -ECONNRESET, 0);
	raw_case(http, "HTTP/1.1 307 Temporary\r\nLocation: /json\r\nContent-Length: 0\r\n\r\n",
		 -EPROTO, 307);
	assert_int_equal(entra_http_get(http, plain_url("/raw?v=HTTP%2F1.1%20200%20OK%0D%0A%0D%0Aok"),
					NULL, &resp), 0);
	assert_string_equal(resp.body.data, "ok");
	entra_http_response_free(&resp);
	entra_http_free(http);
}

static void test_url_forms(void **state)
{
	static const char *const bad[] = {
		"https://user:pw@127.0.0.1/x", "https://127.0.0.1:0/x", "https://127.0.0.1:65536/x",
		"https://127.0.0.1:/x", "https://127.0.0.1:8a/x", "https://127.1/x",
		"https://0x7f000001/x", "https://[::1/x", "https://[fe80::1%25eth0]/x",
		"https://a..b/x", "https:///x", "https://-a.example/x", "https://[127.0.0.1]/x",
		NULL,
	};
	static const char *const sneaky[] = { "Host: evil", "Content-Length: 0",
					      "Transfer-Encoding: chunked", NULL };
	struct entra_http *http = client(2000, 0, false);
	struct entra_http_response resp;
	char hdr[64];

	(void)state;
	for (size_t i = 0; bad[i] != NULL; i++) {
		logged[0] = '\0';
		assert_int_equal(entra_http_get(http, bad[i], NULL, &resp), -EINVAL);
		entra_http_response_free(&resp);
		assert_null(strstr(logged, "pw@"));
	}
	for (size_t i = 0; sneaky[i] != NULL; i++) {
		const char *const h[] = { sneaky[i], NULL };

		assert_int_equal(entra_http_get(http, url(srv.https, "/json"), h, &resp), -EINVAL);
		entra_http_response_free(&resp);
	}
	/* "localhost" resolves through the name path (certificate has it). */
	snprintf(hdr, sizeof(hdr), "https://localhost:%d/json", srv.https);
	assert_int_equal(entra_http_get(http, hdr, NULL, &resp), 0);
	assert_int_equal(resp.status, 200);
	entra_http_response_free(&resp);
	/* A caller's header overrides ours: Accept, User-Agent. */
	{
		const char *const h[] = { "Accept: application/json", "User-Agent: other", NULL };
		struct json_object *o;

		assert_int_equal(entra_http_get(http, url(srv.https, "/echo"), h, &resp), 0);
		o = body_json(&resp);
		assert_string_equal(jstr(o, "headers", "accept"), "application/json");
		assert_string_equal(jstr(o, "headers", "user-agent"), "other");
		json_object_put(o);
		entra_http_response_free(&resp);
	}
	entra_http_free(http);
}

static void test_proxy_tunnel(void **state)
{
	struct entra_http_options opt = { srv.ca, 5000, 0, false, NULL };
	struct entra_http *http;
	struct entra_http_response resp;
	char proxy[64], wrong[128];

	(void)state;
	snprintf(proxy, sizeof(proxy), "http://127.0.0.1:%d", srv.proxy);
	opt.proxy = proxy;
	assert_int_equal(net_server_reset(&srv), 0);
	http = entra_http_new(&opt, &capture_log);
	assert_non_null(http);
	/* Two requests, one tunnel (the connection is kept). */
	for (int i = 0; i < 2; i++) {
		assert_int_equal(entra_http_get(http, url(srv.https, "/json"), NULL, &resp), 0);
		assert_int_equal(resp.status, 200);
		entra_http_response_free(&resp);
	}
	assert_int_equal(net_server_count(&srv, "CONNECT"), 1);
	/* TLS through the tunnel still checks the origin's name. */
	assert_int_equal(entra_http_get(http, url(srv.wrongname, "/json"), NULL, &resp), -EPROTO);
	entra_http_response_free(&resp);
	/* The proxy's refusal. */
	snprintf(wrong, sizeof(wrong), "https://localhost:%d/json", srv.https);
	logged[0] = '\0';
	assert_int_equal(entra_http_get(http, wrong, NULL, &resp), -EPROTO);
	assert_non_null(strstr(logged, "403"));
	entra_http_response_free(&resp);
	entra_http_free(http);
	/* Only http:// proxies. */
	opt.proxy = "https://127.0.0.1:3128";
	http = entra_http_new(&opt, &capture_log);
	assert_non_null(http);
	assert_int_equal(entra_http_get(http, url(srv.https, "/json"), NULL, &resp), -EINVAL);
	entra_http_response_free(&resp);
	entra_http_free(http);
}

/* The system store is read as a hashed directory (X509_get_default_cert_dir,
 * never the bundle file). The product has no way to point it elsewhere, so
 * the positive case is checked at the OpenSSL level: a hashed directory
 * holding the test CA verifies the test server, and the default directory
 * here holds hash links. */
static void test_hashed_dir_store(void **state)
{
	char dir[PATH_MAX], link_path[PATH_MAX + 32];
	const char *sysdir = X509_get_default_cert_dir();
	struct sockaddr_in sa = { 0 };
	X509 *ca;
	FILE *f;
	SSL_CTX *ctx;
	SSL *ssl;
	DIR *d;
	struct dirent *de;
	bool hashed = false;
	int fd;

	(void)state;
	assert_int_equal(net_mkdtemp(dir, sizeof(dir)), 0);
	f = fopen(srv.ca, "r");
	assert_non_null(f);
	ca = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(ca);
	snprintf(link_path, sizeof(link_path), "%s/%08lx.0", dir, X509_subject_name_hash(ca));
	X509_free(ca);
	assert_int_equal(symlink(srv.ca, link_path), 0);

	ctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(ctx);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	assert_int_equal(SSL_CTX_load_verify_dir(ctx, dir), 1);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)srv.https);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	assert_int_equal(X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), "127.0.0.1"), 1);
	assert_int_equal(SSL_connect(ssl), 1);
	assert_int_equal(SSL_get_verify_result(ssl), X509_V_OK);
	SSL_free(ssl);
	close(fd);
	SSL_CTX_free(ctx);
	ERR_clear_error();
	net_rmtree(dir);

	d = opendir(sysdir);
	if (d == NULL) {
		print_message("# no system certificate directory %s\n", sysdir);
		skip();
	}
	while (!hashed && (de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);

		hashed = n == 10 && de->d_name[8] == '.' && strspn(de->d_name, "0123456789abcdef") == 8;
	}
	closedir(d);
	assert_true(hashed);
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
		cmocka_unit_test(test_tls_context_shared),
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
		cmocka_unit_test(test_parser_framing),
		cmocka_unit_test(test_parser_rejects),
		cmocka_unit_test(test_parser_connect_and_dates),
		cmocka_unit_test(test_interim_and_close),
		cmocka_unit_test(test_raw_responses),
		cmocka_unit_test(test_url_forms),
		cmocka_unit_test(test_proxy_tunnel),
		cmocka_unit_test(test_hashed_dir_store),
		cmocka_unit_test(test_monotonic),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
