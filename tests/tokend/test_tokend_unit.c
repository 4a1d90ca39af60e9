/* lib/tokend (HTTP request heads, scopes, login-again errors, secrets,
 * the registration client) and lib/peer (owner of a loopback peer,
 * running uids), without the daemon. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "peer.h"
#include "tokend.h"

#define Q "?resource=https%3A%2F%2Fmanagement.azure.com&api-version=2019-08-01"

static int parse(const char *text, struct entra_tokend_http_request *req)
{
	return entra_tokend_http_parse(text, strlen(text), req);
}

static void test_http_parse_good(void **state)
{
	struct entra_tokend_http_request req;

	(void)state;
	assert_int_equal(parse("GET /oauth2/token" Q " HTTP/1.1\r\nHost: 127.0.0.1\r\n"
			       "x-identity-header:  abc \r\nAccept: */*\r\n\r\nBODY", &req), 0);
	assert_string_equal(req.method, "GET");
	assert_string_equal(req.path, "/oauth2/token");
	assert_string_equal(req.resource, "https://management.azure.com");
	assert_string_equal(req.api_version, "2019-08-01");
	assert_string_equal(req.identity_header, "abc");
	assert_null(req.selector_name);
	assert_int_equal(req.head_len, strlen(req.path) + 0 + strlen("GET ") + strlen(Q) +
			 strlen(" HTTP/1.1\r\nHost: 127.0.0.1\r\nx-identity-header:  abc \r\nAccept: */*\r\n\r\n"));
	entra_tokend_http_request_free(&req);

	assert_int_equal(parse("GET /oauth2/token?resource=a+b%2f&client_id=X&other=1 HTTP/1.0\r\n\r\n", &req), 0);
	assert_string_equal(req.resource, "a b/");
	assert_string_equal(req.selector_name, "client_id");
	assert_string_equal(req.selector_value, "X");
	assert_null(req.api_version);
	assert_null(req.identity_header);
	entra_tokend_http_request_free(&req);
	entra_tokend_http_request_free(NULL);
}

static void test_http_parse_bad(void **state)
{
	static const char *const bad[] = {
		"HELLO\r\n\r\n",
		"get /x HTTP/1.1\r\n\r\n",
		"GET x HTTP/1.1\r\n\r\n",
		"GET /x HTTP/2\r\n\r\n",
		"GET /x  HTTP/1.1\r\n\r\n",
		"GET /x HTTP/1.1 \r\n\r\n",
		"GET /x?resource=%zz HTTP/1.1\r\n\r\n",
		"GET /x?resource=%4 HTTP/1.1\r\n\r\n",
		"GET /x?resource=%0a HTTP/1.1\r\n\r\n",
		"GET /x?resource=a&resource=b HTTP/1.1\r\n\r\n",
		"GET /x?client_id=a&object_id=b HTTP/1.1\r\n\r\n",
		"GET /x HTTP/1.1\r\nNoColon\r\n\r\n",
		"GET /x HTTP/1.1\r\n folded: x\r\n\r\n",
		"GET /x HTTP/1.1\r\nA: b\nC: d\r\n\r\n",
		"GET /x HTTP/1.1\r\nA: b\rC\r\n\r\n",
		"GET /x HTTP/1.1\r\nA: \x01\r\n\r\n",
		"GET /x HTTP/1.1\r\nX-Identity-Header: a\r\nX-IDENTITY-HEADER: a\r\n\r\n",
	};
	struct entra_tokend_http_request req;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (parse(bad[i], &req) != -EINVAL)
			fail_msg("accepted: %s", bad[i]);
		assert_null(req.path);
		entra_tokend_http_request_free(&req);
	}
	/* A NUL inside the head. */
	{
		static const char nul[] = "GET /x HTTP/1.1\r\nA: \0b\r\n\r\n";

		assert_int_equal(entra_tokend_http_parse(nul, sizeof(nul) - 1, &req), -EINVAL);
	}
	entra_tokend_http_request_free(&req);
}

static void test_http_parse_incomplete_and_big(void **state)
{
	struct entra_tokend_http_request req;
	char *big = malloc(ENTRA_TOKEND_MAX_HEADER + 100);

	(void)state;
	assert_int_equal(parse("GET /x HTTP/1.1\r\nHost: a\r\n", &req), -EAGAIN);
	entra_tokend_http_request_free(&req);
	assert_int_equal(parse("", &req), -EAGAIN);
	assert_non_null(big);
	memset(big, 'a', ENTRA_TOKEND_MAX_HEADER + 99);
	memcpy(big, "GET /x HTTP/1.1\r\nX: ", 20);
	assert_int_equal(entra_tokend_http_parse(big, ENTRA_TOKEND_MAX_HEADER, &req), -E2BIG);
	/* The blank line just past the cap does not count. */
	memcpy(big + ENTRA_TOKEND_MAX_HEADER - 2, "\r\n\r\n", 4);
	assert_int_equal(entra_tokend_http_parse(big, ENTRA_TOKEND_MAX_HEADER + 2, &req), -E2BIG);
	free(big);
}

static void test_scope_and_login_errors(void **state)
{
	struct entra_oauth_error err;
	char *s;

	(void)state;
	s = entra_tokend_refresh_scope("https://ml.azure.com");
	assert_string_equal(s, "https://ml.azure.com/.default offline_access");
	free(s);
	s = entra_tokend_refresh_scope("https://management.azure.com/");
	assert_string_equal(s, "https://management.azure.com/.default offline_access");
	free(s);
	assert_null(entra_tokend_refresh_scope("a b"));
	assert_null(entra_tokend_refresh_scope(""));
	assert_null(entra_tokend_refresh_scope(NULL));

	memset(&err, 0, sizeof(err));
	assert_false(entra_tokend_needs_login(&err));
	err.error = "invalid_grant";
	err.codes[0] = 700082;
	err.code_count = 1;
	assert_true(entra_tokend_needs_login(&err));
	err.codes[0] = 65001; /* consent: not a matter of signing in again */
	assert_false(entra_tokend_needs_login(&err));
	err.code_count = 0;
	assert_true(entra_tokend_needs_login(&err));
	err.error = "interaction_required";
	assert_true(entra_tokend_needs_login(&err));
	err.error = "invalid_scope";
	err.codes[0] = 50173;
	err.code_count = 1;
	assert_true(entra_tokend_needs_login(&err));
	assert_false(entra_tokend_needs_login(NULL));
}

static void test_secret_and_endpoint(void **state)
{
	char a[ENTRA_TOKEND_SECRET_LEN + 1], b[ENTRA_TOKEND_SECRET_LEN + 1], ep[64];
	struct entra_config *cfg = entra_config_new();

	(void)state;
	assert_int_equal(entra_tokend_new_secret(a), 0);
	assert_int_equal(entra_tokend_new_secret(b), 0);
	assert_int_equal(strlen(a), ENTRA_TOKEND_SECRET_LEN);
	assert_int_equal(strspn(a, "0123456789abcdef"), ENTRA_TOKEND_SECRET_LEN);
	assert_string_not_equal(a, b);
	assert_non_null(cfg);
	assert_int_equal(cfg->tokend_port, ENTRA_TOKEND_DEFAULT_PORT);
	assert_int_equal(entra_tokend_endpoint(cfg, ep, sizeof(ep)), 0);
	assert_string_equal(ep, "http://127.0.0.1:40380/oauth2/token");
	assert_int_equal(entra_tokend_endpoint(cfg, ep, 10), -ENOSPC);
	entra_config_free(cfg);
}

static void test_service_client_id(void **state)
{
	struct entra_config *cfg = entra_config_new();
	char err[256];

	(void)state;
	assert_null(entra_tokend_service_client_id(cfg, "svc"));
	assert_int_equal(entra_config_set(cfg, "service_client_id", "11111111-1111-1111-1111-111111111111", err, sizeof(err)), 0);
	assert_int_equal(entra_config_set(cfg, "service_identities",
					  "svc:22222222-2222-2222-2222-222222222222", err, sizeof(err)), 0);
	assert_string_equal(entra_tokend_service_client_id(cfg, "svc"), "22222222-2222-2222-2222-222222222222");
	assert_string_equal(entra_tokend_service_client_id(cfg, "sv"), "11111111-1111-1111-1111-111111111111");
	entra_config_free(cfg);
}

/* A registration to a socket where no daemon listens fails fast and
 * leaves the environment empty. */
static void test_register_without_daemon(void **state)
{
	struct entra_config *cfg = entra_config_new();
	struct entra_session_env env = { NULL, 0 };
	struct entra_session_request req = { .user = "alice@contoso.com", .uid = 1000,
					     .identity_kind = "user" };
	char err[256], id[ENTRA_SESSION_ID_LEN + 1];

	(void)state;
	assert_int_equal(entra_config_set(cfg, "tokend_socket", "/nonexistent/tokend.sock", err, sizeof(err)), 0);
	assert_int_equal(entra_session_new_id(id), 0);
	assert_int_equal(entra_tokend_register_session(cfg, id, &req, &env, NULL), -ENOENT);
	assert_null(env.vars);
	assert_int_equal(entra_tokend_register_session(cfg, "bad", &req, &env, NULL), -EINVAL);
	req.identity_kind = "other";
	assert_int_equal(entra_tokend_register_session(cfg, id, &req, &env, NULL), -EINVAL);
	entra_tokend_unregister_session(cfg, id, NULL);
	entra_config_free(cfg);
}

static void test_peer_uid(void **state)
{
	struct sockaddr_in addr = { .sin_family = AF_INET };
	socklen_t len = sizeof(addr);
	int lfd, cfd, sfd;
	uid_t uid = 12345;

	(void)state;
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(lfd >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&addr, &len), 0);
	cfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(cfd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	sfd = accept(lfd, NULL, NULL);
	assert_true(sfd >= 0);
	assert_int_equal(entra_peer_tcp_uid_diag(sfd, &uid), 0);
	assert_int_equal(uid, geteuid());
	uid = 12345;
	assert_int_equal(entra_peer_tcp_uid_procfs(sfd, &uid), 0);
	assert_int_equal(uid, geteuid());
	uid = 12345;
	assert_int_equal(entra_peer_tcp_uid(sfd, &uid), 0);
	assert_int_equal(uid, geteuid());
	/* Once the client has closed, no process owns its end. */
	close(cfd);
	assert_int_equal(entra_peer_tcp_uid_diag(sfd, &uid), -ENOENT);
	assert_int_equal(entra_peer_tcp_uid_procfs(sfd, &uid), -ENOENT);
	close(sfd);
	/* Not a TCP/IPv4 socket. */
	assert_int_equal(entra_peer_tcp_uid(lfd, &uid) < 0, 1);
	close(lfd);
}

static void test_running_uids(void **state)
{
	uid_t *uids;
	size_t n;

	(void)state;
	assert_int_equal(entra_running_uids(NULL, &uids, &n), 0);
	assert_true(n >= 1);
	assert_true(entra_uid_in_list(uids, n, getuid()));
	assert_false(entra_uid_in_list(uids, n, (uid_t)4242999));
	for (size_t i = 1; i < n; i++)
		assert_true(uids[i - 1] < uids[i]);
	free(uids);
	assert_int_equal(entra_running_uids("/nonexistent", &uids, &n), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_http_parse_good),
		cmocka_unit_test(test_http_parse_bad),
		cmocka_unit_test(test_http_parse_incomplete_and_big),
		cmocka_unit_test(test_scope_and_login_errors),
		cmocka_unit_test(test_secret_and_endpoint),
		cmocka_unit_test(test_service_client_id),
		cmocka_unit_test(test_register_without_daemon),
		cmocka_unit_test(test_peer_uid),
		cmocka_unit_test(test_running_uids),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
