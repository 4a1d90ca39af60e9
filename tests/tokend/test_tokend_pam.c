/* The PAM module's hook into the token service, end to end: a device-code
 * login under pam_wrapper registers the session with a running
 * entra-tokend, the session environment carries IDENTITY_ENDPOINT and
 * IDENTITY_HEADER, Debian's azure-identity in that session gets the
 * person's tokens, close_session kills the secret, and without a daemon
 * the login still succeeds. Needs root (the session's uid is not ours). */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <cmocka.h>
#include <libpamtest.h>

#include "../pam/pam_harness.h"

#define ALICE "alice@contoso.com"
#define ALICE_CLAIMS "{\"preferred_username\":\"alice@contoso.com\",\"oid\":\"0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9\"}"

static pid_t daemon_pid = -1;
static int port;
static char sock_path[400];

static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), p;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0)
		return -1;
	p = ntohs(a.sin_port);
	close(fd);
	return p;
}

static int start_daemon(void)
{
	char bin[400], log[400];
	struct stat st;

	snprintf(bin, sizeof(bin), "%s/tools/entra-tokend", TEST_BUILDDIR);
	snprintf(log, sizeof(log), "%s/tokend.log", H.dir);
	daemon_pid = fork();
	if (daemon_pid == 0) {
		FILE *f = freopen(log, "a", stderr);

		(void)f;
		unsetenv("LD_PRELOAD"); /* pam_wrapper is for this test only */
		execl(bin, bin, "--foreground", "--config", H.conf, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 500; i++) {
		if (stat(sock_path, &st) == 0)
			return 0;
		usleep(10000);
	}
	return -1;
}

static void stop_daemon(void)
{
	if (daemon_pid > 0) {
		kill(daemon_pid, SIGTERM);
		waitpid(daemon_pid, NULL, 0);
	}
	daemon_pid = -1;
}

/* Run argv as uid with the session's token-service variables (and dead
 * proxies: nothing but 127.0.0.1 is reachable); stdout into out. */
static int run_as(long uid, char **env, const char *const *argv, char *out, size_t outlen)
{
	int pipefd[2], status;
	size_t got = 0;
	pid_t pid;

	if (pipe(pipefd) < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		char uidarg[64], gidarg[64];
		const char *args[16];
		size_t n = 0;

		dup2(pipefd[1], 1);
		close(pipefd[0]);
		clearenv();
		setenv("PATH", "/usr/bin:/bin", 1);
		setenv("HOME", "/tmp", 1);
		setenv("HTTP_PROXY", "http://127.0.0.1:9", 1);
		setenv("HTTPS_PROXY", "http://127.0.0.1:9", 1);
		setenv("NO_PROXY", "127.0.0.1,localhost", 1);
		for (const char *const *v = (const char *const[]){ "IDENTITY_ENDPOINT", "IDENTITY_HEADER",
				"ENTRA_TOKEN_FILE", "ENTRA_TOKEN_RESOURCE", "ENTRA_SESSION_DIR", NULL }; *v; v++)
			if (env_get(env, *v) != NULL)
				setenv(*v, env_get(env, *v), 1);
		snprintf(uidarg, sizeof(uidarg), "--reuid=%ld", uid);
		snprintf(gidarg, sizeof(gidarg), "--regid=%ld", uid);
		args[n++] = "setpriv";
		args[n++] = uidarg;
		args[n++] = gidarg;
		args[n++] = "--clear-groups";
		args[n++] = "--";
		for (size_t i = 0; argv[i] != NULL && n < 15; i++)
			args[n++] = argv[i];
		args[n] = NULL;
		execvp("setpriv", (char *const *)args);
		_exit(127);
	}
	close(pipefd[1]);
	for (;;) {
		ssize_t r = read(pipefd[0], out + got, outlen - 1 - got);

		if (r <= 0 || got + (size_t)r >= outlen - 1) {
			if (r > 0)
				got += (size_t)r;
			break;
		}
		got += (size_t)r;
	}
	out[got] = '\0';
	close(pipefd[0]);
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static const char PY_DAC[] =
	"import base64,json\n"
	"from azure.identity import DefaultAzureCredential\n"
	"c = DefaultAzureCredential()\n"
	"for s in ('https://management.azure.com/.default', 'https://ml.azure.com/.default'):\n"
	"    p = c.get_token(s).token.split('.')[1]\n"
	"    t = json.loads(base64.urlsafe_b64decode(p + '=' * (-len(p) % 4)))\n"
	"    print(t['aud'], t['upn'])\n";

static void login(struct pam_testcase *cases, struct person *p)
{
	enum pamtest_err err;

	assert_int_equal(fake_control("reset", "{}"), 0);
	assert_int_equal(fake_control("configure", "{\"interval\":1}"), 0);
	err = _pamtest_conv("entra", ALICE, person_conv, p, cases, 5, NULL);
	if (err != PAMTEST_ERR_OK)
		fprintf(stderr, "# pamtest: %s\n", pamtest_strerror(err));
	assert_int_equal(err, PAMTEST_ERR_OK);
}

static void test_session_gets_identity_endpoint(void **state)
{
	struct person p = { .action = PERSON_APPROVE, .claims_json = ALICE_CLAIMS };
	struct pam_testcase cases[] = {
		pam_test(PAMTEST_AUTHENTICATE, PAM_SUCCESS),
		pam_test(PAMTEST_ACCOUNT, PAM_SUCCESS),
		pam_test(PAMTEST_OPEN_SESSION, PAM_SUCCESS),
		pam_test(PAMTEST_GETENVLIST, PAM_SUCCESS),
		pam_test(PAMTEST_KEEPHANDLE, PAM_SUCCESS),
	};
	const char *py[] = { "/usr/bin/python3", "-c", PY_DAC, NULL };
	const char *tool[] = { TEST_BUILDDIR "/tools/entra-token", NULL };
	char endpoint[128], out[8192];
	const char *header;
	char **env;
	long uid;
	int rc;

	(void)state;
	assert_int_equal(start_daemon(), 0);
	login(cases, &p);
	env = cases[3].case_out.envlist;
	uid = harness_uid_of(ALICE);
	snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d/oauth2/token", port);
	assert_non_null(env_get(env, "IDENTITY_ENDPOINT"));
	assert_string_equal(env_get(env, "IDENTITY_ENDPOINT"), endpoint);
	header = env_get(env, "IDENTITY_HEADER");
	assert_non_null(header);
	assert_int_equal(strlen(header), 64);
	assert_int_equal(strspn(header, "0123456789abcdef"), 64);

	/* Microsoft's SDK in the session: the person's tokens, two resources. */
	rc = run_as(uid, env, py, out, sizeof(out));
	if (rc != 0)
		fprintf(stderr, "# python: %d %s\n", rc, out);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "https://management.azure.com/ alice@contoso.com\n"));
	assert_non_null(strstr(out, "https://ml.azure.com alice@contoso.com\n"));
	assert_int_equal(run_as(uid, env, tool, out, sizeof(out)), 0);

	/* Logout: the secret is dead. */
	assert_int_equal(pam_close_session(cases[4].case_out.ph, 0), PAM_SUCCESS);
	assert_int_equal(run_as(uid, env, tool, out, sizeof(out)), 4);
	pamtest_free_env(env);
	pam_end(cases[4].case_out.ph, PAM_SUCCESS);
	stop_daemon();
}

static void test_login_without_daemon(void **state)
{
	struct person p = { .action = PERSON_APPROVE, .claims_json = ALICE_CLAIMS };
	struct pam_testcase cases[] = {
		pam_test(PAMTEST_AUTHENTICATE, PAM_SUCCESS),
		pam_test(PAMTEST_ACCOUNT, PAM_SUCCESS),
		pam_test(PAMTEST_OPEN_SESSION, PAM_SUCCESS),
		pam_test(PAMTEST_GETENVLIST, PAM_SUCCESS),
		pam_test(PAMTEST_KEEPHANDLE, PAM_SUCCESS),
	};
	const char *log;
	char **env;

	(void)state;
	log_capture_begin();
	login(cases, &p);
	log = log_capture_end();
	env = cases[3].case_out.envlist;
	assert_non_null(env_get(env, "ENTRA_TOKEN_FILE"));
	assert_null(env_get(env, "IDENTITY_ENDPOINT"));
	assert_null(env_get(env, "IDENTITY_HEADER"));
	/* One line says so: no daemon on a node is not a fault. */
	assert_non_null(strstr(log, "token of the Entra login; token service: not running"));
	assert_null(strstr(log, "not reachable"));
	assert_int_equal(pam_close_session(cases[4].case_out.ph, 0), PAM_SUCCESS);
	pamtest_free_env(env);
	pam_end(cases[4].case_out.ph, PAM_SUCCESS);
}

static int setup(void **state)
{
	char extra[600];

	(void)state;
	if (harness_start() < 0)
		return -1;
	port = free_port();
	snprintf(sock_path, sizeof(sock_path), "%s/tokend.sock", H.dir);
	snprintf(extra, sizeof(extra), "tokend_port = %d\ntokend_socket = %s\n", port, sock_path);
	return harness_write_config(H.conf, extra) < 0 || port < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	(void)state;
	stop_daemon();
	harness_stop();
	return 0;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_session_gets_identity_endpoint),
		cmocka_unit_test(test_login_without_daemon),
	};

	(void)argc;
	if (geteuid() != 0 || access("/usr/bin/setpriv", X_OK) != 0) {
		printf("1..0 # SKIP needs root and setpriv: the session's uid is not ours\n");
		return 0;
	}
	if (harness_preload(argv) < 0)
		return 1;
	return cmocka_run_group_tests(tests, setup, teardown);
}
