/* The PAM module end to end under pam_wrapper against the fake Entra:
 * return codes, what the person sees, the session environment and files,
 * and the log reasons, one test per scenario. */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <libpamtest.h>

#include "pam_harness.h"

#define ALICE "alice@contoso.com"
#define ALICE_ID "\"preferred_username\":\"alice@contoso.com\",\"oid\":\"0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9\""
#define ALICE_CLAIMS "{" ALICE_ID ",\"name\":\"Alice Example\"}"
#define BOB_CLAIMS "{\"preferred_username\":\"bob@contoso.com\",\"oid\":\"1b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9\"}"
#define GROUP_OK "5a5a5a5a-1111-2222-3333-444444444444"

/* Run auth + account + open_session (+ env, handle) with the person. */
struct login_run {
	struct pam_testcase cases[5];
	size_t ncases;
	enum pamtest_err err;
	char **env;
	pam_handle_t *ph;
	const char *log;
};

static void reset_fake(void)
{
	assert_int_equal(fake_control("reset", "{}"), 0);
	assert_int_equal(fake_control("configure", "{\"interval\":1}"), 0);
}

static void run_full(struct login_run *r, const char *service, const char *user,
		     struct person *p)
{
	struct pam_testcase cases[] = {
		pam_test(PAMTEST_AUTHENTICATE, PAM_SUCCESS),
		pam_test(PAMTEST_ACCOUNT, PAM_SUCCESS),
		pam_test(PAMTEST_OPEN_SESSION, PAM_SUCCESS),
		pam_test(PAMTEST_GETENVLIST, PAM_SUCCESS),
		pam_test(PAMTEST_KEEPHANDLE, PAM_SUCCESS),
	};

	memcpy(r->cases, cases, sizeof(cases));
	r->ncases = 5;
	log_capture_begin();
	r->err = _pamtest_conv(service, user, person_conv, p, r->cases, r->ncases, NULL);
	r->log = log_capture_end();
	r->env = r->cases[3].case_out.envlist;
	r->ph = r->cases[4].case_out.ph;
	if (r->err != PAMTEST_ERR_OK)
		fprintf(stderr, "# pamtest: %s; log:\n%s\n", pamtest_strerror(r->err), r->log);
}

/* Only authenticate, expecting rc; returns the captured log. */
static const char *run_auth(const char *service, const char *user, struct person *p, int expected)
{
	struct pam_testcase cases[] = { pam_test(PAMTEST_AUTHENTICATE, expected) };
	enum pamtest_err err;
	const char *log;

	log_capture_begin();
	err = _pamtest_conv(service, user, person_conv, p, cases, 1, NULL);
	log = log_capture_end();
	if (err != PAMTEST_ERR_OK)
		fprintf(stderr, "# authenticate returned %d, expected %d; log:\n%s\n",
			cases[0].op_rv, expected, log);
	assert_int_equal(err, PAMTEST_ERR_OK);
	return log;
}

static void finish(struct login_run *r)
{
	if (r->env != NULL)
		pamtest_free_env(r->env);
	if (r->ph != NULL)
		pam_end(r->ph, PAM_SUCCESS);
}

static void assert_contains(const char *haystack, const char *needle)
{
	if (haystack == NULL || strstr(haystack, needle) == NULL) {
		fprintf(stderr, "# expected to find \"%s\" in:\n%s\n", needle, haystack ? haystack : "(null)");
		fail();
	}
}

static void assert_mode_owner(const char *path, mode_t mode, uid_t uid)
{
	struct stat st;

	assert_int_equal(lstat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, mode);
	assert_int_equal(st.st_uid, uid);
}

static void test_login_opens_session(void **state)
{
	struct person p = { .action = PERSON_APPROVE, .claims_json = ALICE_CLAIMS };
	struct login_run r = { 0 };
	char host[256], path[600];
	const char *dir, *file, *id;
	struct stat st;
	long uid;

	(void)state;
	reset_fake();
	run_full(&r, "entra", ALICE, &p);
	assert_int_equal(r.err, PAMTEST_ERR_OK);
	uid = harness_uid_of(ALICE);
	assert_true(uid >= 1900000000 && uid <= 1999999999);
	/* The home directory was made at the first session. */
	snprintf(path, sizeof(path), "%s/home/%s", H.dir, ALICE);
	assert_mode_owner(path, 0700, (uid_t)uid);

	/* What the person saw: one prompt with everything in it. */
	gethostname(host, sizeof(host));
	assert_int_equal(p.prompts, 1);
	assert_contains(p.prompt, ALICE);
	assert_contains(p.prompt, host);
	assert_contains(p.prompt, "https://microsoft.com/devicelogin");
	assert_contains(p.prompt, p.user_code);
	assert_true(strlen(p.user_code) >= 6);
	assert_contains(p.prompt, "Press Enter");

	/* The session contract. */
	dir = env_get(r.env, "ENTRA_SESSION_DIR");
	file = env_get(r.env, "ENTRA_TOKEN_FILE");
	id = env_get(r.env, "ENTRA_SESSION_ID");
	assert_non_null(dir);
	assert_non_null(file);
	assert_non_null(id);
	assert_int_equal(strncmp(dir, H.run_dir, strlen(H.run_dir)), 0);
	assert_string_equal(env_get(r.env, "AZURE_TENANT_ID"), H.tenant_id);
	assert_string_equal(env_get(r.env, "ENTRA_UPN"), ALICE);
	assert_string_equal(env_get(r.env, "ENTRA_OBJECT_ID"), "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9");
	assert_string_equal(env_get(r.env, "ENTRA_IDENTITY_KIND"), "user");
	assert_true(strtoll(env_get(r.env, "ENTRA_TOKEN_EXPIRES_ON"), NULL, 10) > time(NULL) + 600);
	assert_null(env_get(r.env, "ENTRA_ACCESS_TOKEN"));      /* only when export_token */
	assert_null(env_get(r.env, "AZUREML_ARM_WORKSPACE_NAME")); /* no workspace configured */
	assert_mode_owner(dir, 0700, (uid_t)uid);
	assert_mode_owner(file, 0600, (uid_t)uid);
	snprintf(path, sizeof(path), "%s/private/%s", H.run_dir, id);
	assert_mode_owner(path, 0600, 0);
	snprintf(path, sizeof(path), "%s/private", H.run_dir);
	assert_mode_owner(path, 0700, 0);

	/* close_session removes the directory and the refresh token. */
	assert_int_equal(pam_close_session(r.ph, 0), PAM_SUCCESS);
	assert_int_equal(stat(dir, &st), -1);
	snprintf(path, sizeof(path), "%s/private/%s", H.run_dir, id);
	assert_int_equal(stat(path, &st), -1);
	finish(&r);
}

static void test_cold_then_warm_request_counts(void **state)
{
	struct person p = { .action = PERSON_APPROVE, .claims_json = ALICE_CLAIMS };

	(void)state;
	/* entra-counts has a cache of its own: this login is cold whatever ran before. */
	reset_fake();
	run_auth("entra-counts", ALICE, &p, PAM_SUCCESS);
	assert_int_equal(fake_count("discovery"), 1);
	assert_int_equal(fake_count("keys"), 1);
	assert_int_equal(fake_count("devicecode"), 1);
	assert_int_equal(fake_count("token"), 1);

	reset_fake();
	memset(&p, 0, sizeof(p));
	p.action = PERSON_APPROVE;
	p.claims_json = ALICE_CLAIMS;
	run_auth("entra-counts", ALICE, &p, PAM_SUCCESS);
	assert_int_equal(fake_count("discovery"), 0);
	assert_int_equal(fake_count("keys"), 0);
	assert_int_equal(fake_count("devicecode"), 1);
	assert_int_equal(fake_count("token"), 1);
}

static void test_devicecode_request_form(void **state)
{
	struct person p = { .action = PERSON_APPROVE, .claims_json = ALICE_CLAIMS };
	struct json_object *form, *v;

	(void)state;
	reset_fake();
	run_auth("entra", ALICE, &p, PAM_SUCCESS);
	form = fake_last_form("devicecode");
	assert_non_null(form);
	assert_true(json_object_object_get_ex(form, "scope", &v));
	assert_string_equal(json_object_get_string(v),
			    "https://management.azure.com/.default openid profile offline_access");
	assert_true(json_object_object_get_ex(form, "client_id", &v));
	assert_string_equal(json_object_get_string(v), "4f6c3f2e-0d5a-4a3e-9a54-1c2b3d4e5f60");
	json_object_put(form);
	form = fake_last_form("token");
	assert_non_null(form);
	assert_true(json_object_object_get_ex(form, "grant_type", &v));
	assert_string_equal(json_object_get_string(v), "urn:ietf:params:oauth:grant-type:device_code");
	json_object_put(form);
}

static void test_pending_then_approved(void **state)
{
	struct person p = { .action = PERSON_APPROVE, .claims_json = ALICE_CLAIMS };

	(void)state;
	reset_fake();
	assert_int_equal(fake_control("configure", "{\"pending_after_approve\":2}"), 0);
	run_auth("entra", ALICE, &p, PAM_SUCCESS);
	assert_int_equal(fake_count("token"), 3);
}

static void test_slow_down_then_approved(void **state)
{
	struct person p = { .action = PERSON_APPROVE, .claims_json = ALICE_CLAIMS };
	time_t start = time(NULL);

	(void)state;
	reset_fake();
	assert_int_equal(fake_control("configure", "{\"slow_down\":1}"), 0);
	run_auth("entra", ALICE, &p, PAM_SUCCESS);
	assert_int_equal(fake_count("token"), 2);
	/* After slow_down the interval grew from 1 s to 6 s. */
	assert_true(time(NULL) - start >= 5);
}

static void test_declined(void **state)
{
	struct person p = { .action = PERSON_DECLINE };
	const char *log;

	(void)state;
	reset_fake();
	log = run_auth("entra", ALICE, &p, PAM_AUTH_ERR);
	assert_contains(log, "authorization_declined");
	assert_true(strlen(p.errors) > 0);
}

static void test_never_approved_times_out(void **state)
{
	struct person p = { .action = PERSON_IGNORE };
	struct pam_testcase cases[] = { pam_test(PAMTEST_AUTHENTICATE, PAM_SUCCESS) };
	time_t start;

	(void)state;
	reset_fake();
	assert_int_equal(fake_control("configure", "{\"expires_in\":3}"), 0);
	start = time(NULL);
	log_capture_begin();
	_pamtest_conv("entra", ALICE, person_conv, &p, cases, 1, NULL);
	log_capture_end();
	assert_true(cases[0].op_rv == PAM_AUTHINFO_UNAVAIL || cases[0].op_rv == PAM_AUTH_ERR);
	assert_true(time(NULL) - start <= 8);
	assert_true(strlen(p.errors) > 0);
}

static void test_aadsts_errors(void **state)
{
	/* Errors without a claims challenge (or a message_only one) end the
	 * login; those that carry one are tested in test_claims_challenge. */
	static const struct { int code; const char *phrase; } table[] = {
		{ 50005, "conditional access" }, { 50020, "" }, { 50105, "" }, { 50126, "" },
		{ 53000, "" }, { 53001, "" }, { 53002, "" }, { 53003, "" }, { 65001, "" },
		{ 700016, "" }, { 7000218, "" },
	};
	char body[256], code[32];
	const char *log;

	(void)state;
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		struct person p = { .action = PERSON_APPROVE, .claims_json = ALICE_CLAIMS };

		reset_fake();
		snprintf(body, sizeof(body), "{\"token_error\":{\"aadsts\":%d}}", table[i].code);
		assert_int_equal(fake_control("configure", body), 0);
		log = run_auth("entra", ALICE, &p, PAM_AUTH_ERR);
		snprintf(code, sizeof(code), "%d", table[i].code);
		assert_contains(log, code);
		assert_contains(log, "trace_id=");
		assert_contains(log, "correlation_id=");
		assert_true(strlen(p.errors) > 20);
		if (table[i].phrase[0] != '\0')
			assert_contains(p.errors, table[i].phrase);
		/* The raw description never reaches the person or the log. */
		assert_null(strstr(log, "Trace ID:"));
	}
}

static void test_devicecode_rejected_public_client(void **state)
{
	struct person p = { .action = PERSON_APPROVE, .claims_json = ALICE_CLAIMS };

	(void)state;
	reset_fake();
	assert_int_equal(fake_control("configure", "{\"devicecode_error\":{\"aadsts\":7000218}}"), 0);
	run_auth("entra", ALICE, &p, PAM_AUTH_ERR);
	assert_int_equal(p.prompts, 0);
	assert_int_equal(fake_count("token"), 0);
	assert_contains(p.errors, "public client");
}

static void expect_token_rejected(const char *configure, const char *log_phrase)
{
	struct person p = { .action = PERSON_APPROVE, .claims_json = ALICE_CLAIMS };
	const char *log;

	reset_fake();
	assert_int_equal(fake_control("configure", configure), 0);
	log = run_auth("entra", ALICE, &p, PAM_AUTH_ERR);
	assert_contains(log, log_phrase);
}

static void test_wrong_signature(void **state)
{
	(void)state;
	expect_token_rejected("{\"sign\":\"wrong_key\"}", "signature");
}

static void test_alg_none(void **state)
{
	(void)state;
	expect_token_rejected("{\"sign\":\"none\"}", "id_token");
}

static void test_wrong_issuer(void **state)
{
	(void)state;
	expect_token_rejected("{\"id_token\":{\"set\":{\"iss\":\"https://evil.example/v2.0\"}}}", "issuer");
}

static void test_wrong_audience(void **state)
{
	(void)state;
	expect_token_rejected("{\"id_token\":{\"set\":{\"aud\":\"00000000-0000-0000-0000-000000000001\"}}}", "aud");
}

static void test_wrong_tenant(void **state)
{
	(void)state;
	expect_token_rejected("{\"id_token\":{\"set\":{\"tid\":\"00000000-0000-0000-0000-000000000002\"}}}", "t");
}

static void test_expired_id_token(void **state)
{
	(void)state;
	expect_token_rejected("{\"id_token\":{\"exp_offset\":-3600}}", "exp");
}

static void test_missing_oid(void **state)
{
	(void)state;
	expect_token_rejected("{\"id_token\":{\"drop\":[\"oid\"]}}", "oid");
}

static void test_rotated_keys_refetched(void **state)
{
	struct person p = { .action = PERSON_APPROVE, .claims_json = ALICE_CLAIMS };

	(void)state;
	reset_fake();
	/* entra-rotate has a cache of its own, so that the rotated key does
	 * not stay in the cache the other tests use. */
	run_auth("entra-rotate", ALICE, &p, PAM_SUCCESS); /* cache warm with the old key */
	reset_fake();
	assert_int_equal(fake_control("rotate_keys", "{\"keep_old\":false}"), 0);
	memset(&p, 0, sizeof(p));
	p.action = PERSON_APPROVE;
	p.claims_json = ALICE_CLAIMS;
	run_auth("entra-rotate", ALICE, &p, PAM_SUCCESS);
	assert_int_equal(fake_count("keys"), 1);
	/* A second rotation within 5 minutes is not refetched: refused. */
	reset_fake();
	assert_int_equal(fake_control("rotate_keys", "{\"keep_old\":false}"), 0);
	memset(&p, 0, sizeof(p));
	p.action = PERSON_APPROVE;
	p.claims_json = ALICE_CLAIMS;
	run_auth("entra-rotate", ALICE, &p, PAM_AUTH_ERR);
	assert_int_equal(fake_count("keys"), 0);
	fake_control("reset", "{}"); /* back to the initial key for the next tests */
}

static void test_server_error_on_devicecode(void **state)
{
	struct person p = { .action = PERSON_APPROVE, .claims_json = ALICE_CLAIMS };

	(void)state;
	reset_fake();
	assert_int_equal(fake_control("configure", "{\"fail\":{\"devicecode\":500}}"), 0);
	run_auth("entra", ALICE, &p, PAM_AUTHINFO_UNAVAIL);
	assert_int_equal(p.prompts, 0);
	assert_true(strlen(p.errors) > 0);
}

static void test_malformed_discovery_cold(void **state)
{
	struct person p = { .action = PERSON_APPROVE, .claims_json = ALICE_CLAIMS };

	(void)state;
	reset_fake();
	assert_int_equal(fake_control("configure", "{\"malformed\":[\"discovery\"]}"), 0);
	run_auth("entra-malformed", ALICE, &p, PAM_AUTHINFO_UNAVAIL);
	assert_int_equal(fake_count("devicecode"), 0);
}

static void test_slow_idp_bounded(void **state)
{
	struct person p = { .action = PERSON_APPROVE, .claims_json = ALICE_CLAIMS };
	time_t start;

	(void)state;
	reset_fake();
	assert_int_equal(fake_control("configure", "{\"delay\":{\"token\":30}}"), 0);
	start = time(NULL);
	run_auth("entra-slow", ALICE, &p, PAM_AUTHINFO_UNAVAIL);
	/* login_timeout bounds the whole login, whatever the IdP does. */
	assert_true(time(NULL) - start <= 12);
	fake_control("reset", "{}");
}

static void test_wrong_person(void **state)
{
	struct person p = { .action = PERSON_APPROVE, .claims_json = BOB_CLAIMS };
	const char *log;

	(void)state;
	reset_fake();
	log = run_auth("entra", ALICE, &p, PAM_AUTH_ERR);
	assert_contains(log, "bob@contoso.com");
	assert_contains(p.errors, "bob@contoso.com");
}

static void test_accounts_not_ours(void **state)
{
	/* In a stack of pam_entra alone, libpam turns PAM_IGNORE into
	 * PAM_PERM_DENIED; in entra-stack (pam_entra, then pam_permit standing
	 * for pam_unix) every such name falls through to the next module. */
	static const struct { const char *user; int alone; } table[] = {
		{ "root", PAM_PERM_DENIED },
		{ "breakglass", PAM_PERM_DENIED },
		{ "nobody", PAM_USER_UNKNOWN },
		{ "eve@evil.example", PAM_USER_UNKNOWN },
		{ "../../etc/passwd", PAM_USER_UNKNOWN },
		{ "alice@contoso.com\nroot", PAM_USER_UNKNOWN },
		{ "alice@contoso.com/../x", PAM_USER_UNKNOWN },
	};

	(void)state;
	reset_fake();
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		struct person p = { .action = PERSON_APPROVE, .claims_json = ALICE_CLAIMS };
		run_auth("entra", table[i].user, &p, table[i].alone);
		run_auth("entra-stack", table[i].user, &p, PAM_SUCCESS);
		assert_int_equal(p.prompts, 0);
	}
	/* No name that is not ours ever starts a device flow. */
	assert_int_equal(fake_count("devicecode"), 0);
	assert_int_equal(fake_count("discovery"), 0);
}

static void test_no_conversation(void **state)
{
	struct person p = { .action = PERSON_HANG_UP };

	(void)state;
	reset_fake();
	run_auth("entra", ALICE, &p, PAM_CONV_ERR);
	assert_int_equal(fake_count("token"), 0);
}

static void expect_account_as_is(const char *service, const char *claims, int expected_account,
			   const char *log_phrase)
{
	struct person p = { .action = PERSON_APPROVE, .claims_json = claims };
	struct pam_testcase cases[] = {
		pam_test(PAMTEST_AUTHENTICATE, PAM_SUCCESS),
		pam_test(PAMTEST_ACCOUNT, expected_account),
	};
	enum pamtest_err err;
	const char *log;

	log_capture_begin();
	err = _pamtest_conv(service, ALICE, person_conv, &p, cases, 2, NULL);
	log = log_capture_end();
	if (err != PAMTEST_ERR_OK)
		fprintf(stderr, "# auth %d account %d; log:\n%s\n", cases[0].op_rv, cases[1].op_rv, log);
	assert_int_equal(err, PAMTEST_ERR_OK);
	assert_contains(log, log_phrase);
}

/* The same, against a fake without any earlier scenario. */
static void expect_account(const char *service, const char *claims, int expected_account,
			   const char *log_phrase)
{
	reset_fake();
	expect_account_as_is(service, claims, expected_account, log_phrase);
}

static void test_allow_groups(void **state)
{
	(void)state;
	expect_account("entra-groups",
		       "{" ALICE_ID ",\"groups\":[\"" GROUP_OK "\"]}",
		       PAM_SUCCESS, GROUP_OK);
	expect_account("entra-groups",
		       "{" ALICE_ID ",\"groups\":[\"6b6b6b6b-1111-2222-3333-444444444444\"]}",
		       PAM_PERM_DENIED, "denied");
	expect_account("entra-groups",
		       "{" ALICE_ID ",\"_claim_names\":{\"groups\":\"src1\"},"
		       "\"_claim_sources\":{\"src1\":{\"endpoint\":\"https://graph.microsoft.com/v1.0/users/x/getMemberObjects\"}}}",
		       PAM_PERM_DENIED, "overage");
}

static void test_allow_roles_and_users(void **state)
{
	(void)state;
	expect_account("entra-roles", "{" ALICE_ID ",\"roles\":[\"Login.Node\"]}",
		       PAM_SUCCESS, "Login.Node");
	expect_account("entra-roles", "{" ALICE_ID ",\"roles\":[\"Reader\"]}",
		       PAM_PERM_DENIED, "denied");
	expect_account("entra-users", ALICE_CLAIMS, PAM_PERM_DENIED, "denied");
}

static void test_workspace_and_exported_token(void **state)
{
	struct person p = { .action = PERSON_APPROVE, .claims_json = ALICE_CLAIMS };
	struct login_run r = { 0 };
	char path[600];
	FILE *f;
	char text[1024] = "";

	(void)state;
	reset_fake();
	run_full(&r, "entra-ws", ALICE, &p);
	assert_int_equal(r.err, PAMTEST_ERR_OK);
	assert_string_equal(env_get(r.env, "AZUREML_ARM_SUBSCRIPTION"), "11111111-2222-3333-4444-555555555555");
	assert_string_equal(env_get(r.env, "AZUREML_ARM_RESOURCEGROUP"), "rg-ml");
	assert_string_equal(env_get(r.env, "AZUREML_ARM_WORKSPACE_NAME"), "ws-vision");
	assert_non_null(env_get(r.env, "ENTRA_ACCESS_TOKEN"));
	snprintf(path, sizeof(path), "%s/config.json", env_get(r.env, "ENTRA_SESSION_DIR"));
	assert_mode_owner(path, 0600, (uid_t)harness_uid_of(ALICE));
	f = fopen(path, "r");
	assert_non_null(f);
	assert_true(fread(text, 1, sizeof(text) - 1, f) > 0);
	fclose(f);
	assert_contains(text, "\"workspace_name\"");
	assert_contains(text, "ws-vision");
	assert_contains(text, "rg-ml");
	assert_int_equal(pam_close_session(r.ph, 0), PAM_SUCCESS);
	finish(&r);
}

static void test_bad_module_argument(void **state)
{
	struct person p = { .action = PERSON_APPROVE, .claims_json = ALICE_CLAIMS };
	const char *log;

	(void)state;
	log = run_auth("entra-badarg", ALICE, &p, PAM_SERVICE_ERR);
	assert_contains(log, "no_such_option");
}

static void test_insecure_config_refused(void **state)
{
	struct person p = { .action = PERSON_APPROVE, .claims_json = ALICE_CLAIMS };

	(void)state;
	if (geteuid() != 0)
		skip();
	assert_int_equal(chmod(H.conf, 0666), 0);
	run_auth("entra", ALICE, &p, PAM_SERVICE_ERR);
	assert_int_equal(chmod(H.conf, 0644), 0);
	assert_int_equal(chown(H.conf, 65534, 65534), 0);
	run_auth("entra", ALICE, &p, PAM_SERVICE_ERR);
	assert_int_equal(chown(H.conf, 0, 0), 0);
	run_auth("entra-stack", "root", &p, PAM_SUCCESS);
}

static void test_setcred_and_chauthtok(void **state)
{
	struct person p = { .action = PERSON_APPROVE, .claims_json = ALICE_CLAIMS };
	struct pam_testcase cases[] = {
		pam_test(PAMTEST_SETCRED, PAM_SUCCESS),
		pam_test(PAMTEST_CHAUTHTOK, PAM_AUTHTOK_ERR),
	};
	struct pam_testcase local[] = { pam_test(PAMTEST_CHAUTHTOK, PAM_IGNORE) };

	(void)state;
	log_capture_begin();
	assert_int_equal(_pamtest_conv("entra", ALICE, person_conv, &p, cases, 2, NULL), PAMTEST_ERR_OK);
	log_capture_end();
	assert_contains(p.errors, "Entra");
	log_capture_begin();
	/* pam_chauthtok maps PAM_IGNORE from every module to a failure. */
	local[0].expected_rv = PAM_AUTHTOK_ERR;
	_pamtest_conv("entra", "root", person_conv, &p, local, 1, NULL);
	log_capture_end();
	assert_true(local[0].op_rv != PAM_SUCCESS);
}

static void test_session_without_entra_login(void **state)
{
	struct person p = { .action = PERSON_APPROVE, .claims_json = ALICE_CLAIMS };
	struct pam_testcase cases[] = { pam_test(PAMTEST_OPEN_SESSION, PAM_SUCCESS) };

	(void)state;
	/* The module never opens a session it did not authenticate: it
	 * answers PAM_IGNORE, which the stack turns into a failure when it
	 * is the only session module. */
	log_capture_begin();
	_pamtest_conv("entra", ALICE, person_conv, &p, cases, 1, NULL);
	log_capture_end();
	assert_int_not_equal(cases[0].op_rv, PAM_SUCCESS);
	assert_int_equal(p.prompts, 0);
}

static void test_name_bound_to_object_id(void **state)
{
	struct person p = { .action = PERSON_APPROVE, .claims_json = ALICE_CLAIMS };
	long uid;

	(void)state;
	/* alice is recorded (earlier tests); a different object id with her
	 * name is another person and never gets her account. */
	expect_account("entra", ALICE_CLAIMS, PAM_SUCCESS, "uid");
	uid = harness_uid_of(ALICE);
	expect_account("entra", "{\"preferred_username\":\"alice@contoso.com\","
		       "\"oid\":\"9f9f9f9f-0000-4000-8000-000000000000\"}", PAM_PERM_DENIED, "object id");
	assert_int_equal(harness_uid_of(ALICE), uid);
	(void)p;
}

/* Service accounts: "nobody" (a real local account) is a service account
 * in entra-svc; its sessions get the fake IMDS's managed-identity token.
 * The log of the last open is kept in service_log. */
static char service_log[16384];

static void open_service_session(const char *service, int expected, char ***env_out,
				 pam_handle_t **ph_out)
{
	struct person p = { .action = PERSON_HANG_UP };
	struct pam_testcase cases[] = {
		pam_test(PAMTEST_OPEN_SESSION, expected),
		pam_test(PAMTEST_GETENVLIST, PAM_SUCCESS),
		pam_test(PAMTEST_KEEPHANDLE, PAM_SUCCESS),
	};
	enum pamtest_err err;
	const char *log;

	log_capture_begin();
	err = _pamtest_conv(service, "nobody", person_conv, &p, cases, 3, NULL);
	log = log_capture_end();
	snprintf(service_log, sizeof(service_log), "%s", log);
	if (err != PAMTEST_ERR_OK)
		fprintf(stderr, "# open_session %d (expected %d); log:\n%s\n", cases[0].op_rv, expected, log);
	assert_int_equal(err, PAMTEST_ERR_OK);
	assert_int_equal(p.prompts, 0);
	*env_out = cases[1].case_out.envlist;
	*ph_out = cases[2].case_out.ph;
}

static void test_service_session_gets_managed_identity(void **state)
{
	char **env;
	pam_handle_t *ph;
	const char *file, *log_line;

	(void)state;
	reset_fake();
	open_service_session("entra-svc", PAM_SUCCESS, &env, &ph);
	assert_string_equal(env_get(env, "ENTRA_IDENTITY_KIND"), "managed-identity");
	file = env_get(env, "ENTRA_TOKEN_FILE");
	assert_non_null(file);
	assert_mode_owner(file, 0600, 65534);
	assert_null(env_get(env, "ENTRA_UPN"));
	assert_int_equal(fake_count("imds"), 1);
	/* One line tells the admin what happened (no token service here). */
	log_line = strstr(service_log, "opened for nobody (uid 65534): managed-identity token from imds; token service: not running");
	assert_non_null(log_line);
	assert_null(strstr(log_line + 1, "opened for"));
	assert_int_equal(pam_close_session(ph, 0), PAM_SUCCESS);
	assert_int_equal(access(file, F_OK), -1);
	pamtest_free_env(env);
	pam_end(ph, PAM_SUCCESS);

	/* A second session within the token's lifetime: from the cache. */
	open_service_session("entra-svc", PAM_SUCCESS, &env, &ph);
	assert_non_null(env_get(env, "ENTRA_TOKEN_FILE"));
	assert_non_null(strstr(service_log, "managed-identity token from imds (cached); token service: not running"));
	assert_int_equal(fake_count("imds"), 1);
	pam_close_session(ph, 0);
	pamtest_free_env(env);
	pam_end(ph, PAM_SUCCESS);
}

static void test_service_session_without_identity(void **state)
{
	char **env;
	pam_handle_t *ph;

	(void)state;
	reset_fake();
	assert_int_equal(fake_control("configure", "{\"msi\":{\"identity_not_found\":true}}"), 0);
	/* Optional (the default): the session opens, without a token. */
	open_service_session("entra-svc-fresh", PAM_SUCCESS, &env, &ph);
	assert_null(env_get(env, "ENTRA_TOKEN_FILE"));
	pamtest_free_env(env);
	pam_end(ph, PAM_SUCCESS);
	/* Required: the session is refused. */
	open_service_session("entra-svc-required", PAM_SESSION_ERR, &env, &ph);
	if (env != NULL)
		pamtest_free_env(env);
	if (ph != NULL)
		pam_end(ph, PAM_SUCCESS);
}

static int no_conv(int n, const struct pam_message **msg, struct pam_response **resp, void *data)
{
	(void)n; (void)msg; (void)resp; (void)data;
	return PAM_CONV_ERR;
}

static void test_service_sessions_single_flight(void **state)
{
	enum { N = 50 };
	pid_t pids[N];
	int ok = 0, status, gate[2], lock_fd;
	char lock_path[400];

	(void)state;
	reset_fake();
	snprintf(lock_path, sizeof(lock_path), "%s/burst.lock", H.dir);
	lock_fd = open(lock_path, O_RDWR | O_CREAT, 0600);
	assert_true(lock_fd >= 0);
	close(lock_fd);
	assert_int_equal(pipe(gate), 0);
	/* 50 concurrent session opens with a cold cache make one request. */
	for (int i = 0; i < N; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			struct person p = { .action = PERSON_HANG_UP };
			struct pam_conv conv = { no_conv, NULL };
			struct pam_testcase cases[] = {
				pam_test(PAMTEST_OPEN_SESSION, PAM_SUCCESS),
				pam_test(PAMTEST_GETENVLIST, PAM_SUCCESS),
			};
			pam_handle_t *ph = NULL;
			char log[400], c;
			int fd;

			/* Each child's log, printed by the parent if it fails. */
			snprintf(log, sizeof(log), "%s/burst-%d.log", H.dir, i);
			fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
			if (fd >= 0)
				dup2(fd, 2);
			/* pam_wrapper (the test double) sets itself up once per
			 * process in a /tmp/pam.<n> directory it names racily:
			 * let the children do that one at a time, then start
			 * the session opens together. */
			close(gate[1]);
			/* Its own open file: flock locks belong to the open file. */
			lock_fd = open(lock_path, O_RDWR);
			if (lock_fd >= 0 && flock(lock_fd, LOCK_EX) == 0) {
				if (pam_start("entra-svc-burst", "nobody", &conv, &ph) == PAM_SUCCESS)
					pam_end(ph, PAM_SUCCESS);
				flock(lock_fd, LOCK_UN);
			}
			while (read(gate[0], &c, 1) > 0)
				;
			if (_pamtest_conv("entra-svc-burst", "nobody", person_conv, &p, cases, 2, NULL) != PAMTEST_ERR_OK)
				_exit(1);
			_exit(env_get(cases[1].case_out.envlist, "ENTRA_TOKEN_FILE") != NULL ? 0 : 2);
		}
	}
	close(gate[0]);
	close(gate[1]); /* all children go */
	for (int i = 0; i < N; i++) {
		if (waitpid(pids[i], &status, 0) == pids[i] && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
			ok++;
		} else {
			char log[400], cmd[500];

			snprintf(log, sizeof(log), "%s/burst-%d.log", H.dir, i);
			snprintf(cmd, sizeof(cmd), "grep -v PWRAP_TRACE %s | tail -n 20 | sed 's/^/# /' >&2", log);
			fprintf(stderr, "# session open %d failed (status %d):\n", i, status);
			if (system(cmd) != 0)
				fprintf(stderr, "# (no log)\n");
		}
	}
	assert_int_equal(ok, N);
	assert_int_equal(fake_count("imds"), 1);
}

#define SCOPE "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg-ml/providers/Microsoft.Compute/virtualMachines/node1"
#define ALICE_OID "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9"

static void set_arm_roles(const char *roles_json)
{
	char body[1024];

	snprintf(body, sizeof(body), "{\"arm\":{\"roles\":{\"" ALICE_OID "\":%s}}}", roles_json);
	assert_int_equal(fake_control("configure", body), 0);
}

static void test_rbac_decides_login_and_admin(void **state)
{
	(void)state;
	reset_fake();
	set_arm_roles("[\"Virtual Machine User Login\"]");
	expect_account_as_is("entra-rbac", ALICE_CLAIMS, PAM_SUCCESS, "Azure RBAC");
	assert_int_equal(harness_admin_of(ALICE), 0);
	assert_int_equal(fake_count("arm"), 1);

	reset_fake();
	set_arm_roles("[\"Virtual Machine Administrator Login\"]");
	expect_account_as_is("entra-rbac", ALICE_CLAIMS, PAM_SUCCESS, "loginAsAdmin");
	assert_int_equal(harness_admin_of(ALICE), 1);

	/* Owner, Contributor and Reader grant no login dataAction. */
	reset_fake();
	set_arm_roles("[\"Owner\", \"Contributor\", \"Reader\"]");
	expect_account_as_is("entra-rbac", ALICE_CLAIMS, PAM_PERM_DENIED, "denied");

	/* No role assignment at all: ARM answers 403. */
	reset_fake();
	expect_account_as_is("entra-rbac", ALICE_CLAIMS, PAM_PERM_DENIED, "no role assignment");
}

static void test_rbac_fails_closed(void **state)
{
	struct person p = { .action = PERSON_APPROVE, .claims_json = ALICE_CLAIMS };
	const char *log;

	(void)state;
	reset_fake();
	set_arm_roles("[\"Virtual Machine Administrator Login\"]");
	assert_int_equal(fake_control("configure", "{\"arm\":{\"fail\":500}}"), 0);
	log = run_auth("entra-rbac", ALICE, &p, PAM_AUTHINFO_UNAVAIL);
	assert_contains(log, "Azure RBAC check");
	assert_contains(p.errors, "Azure");

	reset_fake();
	memset(&p, 0, sizeof(p));
	p.action = PERSON_APPROVE;
	p.claims_json = ALICE_CLAIMS;
	set_arm_roles("[\"Virtual Machine Administrator Login\"]");
	assert_int_equal(fake_control("configure", "{\"arm\":{\"malformed\":true}}"), 0);
	run_auth("entra-rbac", ALICE, &p, PAM_AUTHINFO_UNAVAIL);
}

static void test_rbac_decision_cached(void **state)
{
	(void)state;
	reset_fake();
	set_arm_roles("[\"Virtual Machine User Login\"]");
	expect_account_as_is("entra-rbac-cached", ALICE_CLAIMS, PAM_SUCCESS, "Azure RBAC");
	expect_account_as_is("entra-rbac-cached", ALICE_CLAIMS, PAM_SUCCESS, "from the cache");
	/* The second login (a sudo right after) did not ask ARM again. */
	assert_int_equal(fake_count("arm"), 1);
	assert_int_equal(fake_count("devicecode"), 2);
}

static void test_rbac_claims_challenge(void **state)
{
	struct person p = { .action = PERSON_APPROVE, .claims_json = ALICE_CLAIMS };
	struct json_object *form, *v;

	(void)state;
	reset_fake();
	set_arm_roles("[\"Virtual Machine User Login\"]");
	assert_int_equal(fake_control("configure", "{\"arm\":{\"challenge\":"
		"{\"access_token\":{\"acrs\":{\"essential\":true,\"value\":\"c1\"}}}}}"), 0);
	run_auth("entra-rbac", ALICE, &p, PAM_SUCCESS);
	/* One more device-code round, asking for what ARM named. */
	assert_int_equal(p.prompts, 2);
	assert_int_equal(fake_count("devicecode"), 2);
	assert_int_equal(fake_count("arm"), 2);
	form = fake_last_form("devicecode");
	assert_non_null(form);
	assert_true(json_object_object_get_ex(form, "claims", &v));
	assert_contains(json_object_get_string(v), "\"c1\"");
	json_object_put(form);
}

static void test_entra_claims_challenge(void **state)
{
	struct person p = { .action = PERSON_APPROVE, .claims_json = ALICE_CLAIMS };
	struct json_object *form, *v;
	const char *log;

	(void)state;
	reset_fake();
	/* MFA required (AADSTS50076) carries a claims challenge: a second
	 * round with those claims, which the person completes. */
	assert_int_equal(fake_control("configure", "{\"token_error\":{\"aadsts\":50076}}"), 0);
	log = run_auth("entra", ALICE, &p, PAM_SUCCESS);
	assert_contains(log, "50076");
	assert_int_equal(p.prompts, 2);
	form = fake_last_form("devicecode");
	assert_non_null(form);
	assert_true(json_object_object_get_ex(form, "claims", &v));
	assert_contains(json_object_get_string(v), "capolids");
	json_object_put(form);
}

static void test_require_mfa(void **state)
{
	struct person p = { .action = PERSON_APPROVE,
			    .claims_json = "{" ALICE_ID ",\"amr\":[\"pwd\"]}" };

	(void)state;
	reset_fake();
	run_auth("entra-mfa", ALICE, &p, PAM_AUTH_ERR);
	assert_contains(p.errors, "multi-factor");
	memset(&p, 0, sizeof(p));
	p.action = PERSON_APPROVE;
	p.claims_json = ALICE_CLAIMS; /* the fake's default amr has mfa */
	run_auth("entra-mfa", ALICE, &p, PAM_SUCCESS);
}

static void test_auth_context_for_sudo(void **state)
{
	struct person p = { .action = PERSON_APPROVE, .claims_json = ALICE_CLAIMS };
	struct json_object *form, *v;
	const char *log;

	(void)state;
	reset_fake();
	run_auth("entra-sudo", ALICE, &p, PAM_SUCCESS);
	form = fake_last_form("devicecode");
	assert_non_null(form);
	assert_true(json_object_object_get_ex(form, "claims", &v));
	assert_contains(json_object_get_string(v), "\"acrs\"");
	assert_contains(json_object_get_string(v), "\"c2\"");
	assert_contains(json_object_get_string(v), "\"cp1\"");
	json_object_put(form);

	/* A sign-in that did not satisfy c2 (the policy was not met). */
	reset_fake();
	memset(&p, 0, sizeof(p));
	p.action = PERSON_APPROVE;
	p.claims_json = "{" ALICE_ID ",\"acrs\":[\"c1\"]}";
	log = run_auth("entra-sudo", ALICE, &p, PAM_AUTH_ERR);
	assert_contains(log, "c2");
	assert_contains(p.errors, "stronger sign-in");
}

/* The PAM service "sudo" reads this file: each case rewrites it. */
static void sudo_config(const char *extra)
{
	char path[400];

	snprintf(path, sizeof(path), "%s/sudo.conf", H.dir);
	assert_int_equal(harness_write_config(path, extra), 0);
}

/* sudo as user from the session whose id is in the process environment
 * (as in the person's shell): authenticate + account, expecting rc. */
static const char *run_sudo(const char *user, const char *session_id, struct person *p, int expected)
{
	struct pam_testcase cases[] = {
		pam_test(PAMTEST_AUTHENTICATE, expected),
		pam_test(PAMTEST_ACCOUNT, PAM_SUCCESS),
	};
	enum pamtest_err err;
	const char *log;

	assert_int_equal(setenv("ENTRA_SESSION_ID", session_id, 1), 0);
	log_capture_begin();
	err = _pamtest_conv("sudo", user, person_conv, p, cases, expected == PAM_SUCCESS ? 2 : 1, NULL);
	log = log_capture_end();
	unsetenv("ENTRA_SESSION_ID");
	if (err != PAMTEST_ERR_OK)
		fprintf(stderr, "# sudo: %s; log:\n%s\n", pamtest_strerror(err), log);
	assert_int_equal(err, PAMTEST_ERR_OK);
	return log;
}

static void test_sudo_reuses_session_login(void **state)
{
	struct person p = { .action = PERSON_APPROVE, .claims_json = ALICE_CLAIMS };
	struct person pb = { .action = PERSON_APPROVE, .claims_json = BOB_CLAIMS };
	struct login_run alice = { 0 }, bob = { 0 };
	char id[64], bob_id[64];
	const char *log;

	(void)state;
	reset_fake();
	run_full(&alice, "entra", ALICE, &p);
	assert_int_equal(alice.err, PAMTEST_ERR_OK);
	snprintf(id, sizeof(id), "%s", env_get(alice.env, "ENTRA_SESSION_ID"));
	run_full(&bob, "entra", "bob@contoso.com", &pb);
	assert_int_equal(bob.err, PAMTEST_ERR_OK);
	snprintf(bob_id, sizeof(bob_id), "%s", env_get(bob.env, "ENTRA_SESSION_ID"));

	/* Within the window: no device code, no prompt, account passes. */
	sudo_config("sudo_reuse_window = 300\n");
	reset_fake();
	memset(&p, 0, sizeof(p));
	p.action = PERSON_APPROVE;
	p.claims_json = ALICE_CLAIMS;
	log = run_sudo(ALICE, id, &p, PAM_SUCCESS);
	assert_contains(log, "reused the login of session");
	assert_int_equal(fake_count("devicecode"), 0);
	assert_int_equal(fake_count("token"), 0);
	assert_int_equal(p.prompts, 0);

	/* Another user's session id (copied from elsewhere): a new sign-in. */
	reset_fake();
	memset(&p, 0, sizeof(p));
	p.action = PERSON_APPROVE;
	p.claims_json = ALICE_CLAIMS;
	log = run_sudo(ALICE, bob_id, &p, PAM_SUCCESS);
	assert_contains(log, "the session is not " ALICE "'s");
	assert_int_equal(fake_count("devicecode"), 1);
	assert_int_equal(p.prompts, 1);

	/* A string that is no session id: a new sign-in. */
	reset_fake();
	memset(&p, 0, sizeof(p));
	p.action = PERSON_APPROVE;
	p.claims_json = ALICE_CLAIMS;
	log = run_sudo(ALICE, "../../etc/shadow", &p, PAM_SUCCESS);
	assert_contains(log, "not a session id");
	assert_int_equal(fake_count("devicecode"), 1);

	/* sudo requires c2, which the session's sign-in did not satisfy. */
	sudo_config("sudo_reuse_window = 300\nauth_context = sudo:c2\n");
	reset_fake();
	memset(&p, 0, sizeof(p));
	p.action = PERSON_APPROVE;
	p.claims_json = ALICE_CLAIMS;
	log = run_sudo(ALICE, id, &p, PAM_SUCCESS);
	assert_contains(log, "no reuse of session");
	assert_contains(log, "authentication context \"c2\" required");
	assert_int_equal(fake_count("devicecode"), 1);
	assert_int_equal(p.prompts, 1);

	/* The window off (the default): a new sign-in. */
	sudo_config("");
	reset_fake();
	memset(&p, 0, sizeof(p));
	p.action = PERSON_APPROVE;
	p.claims_json = ALICE_CLAIMS;
	log = run_sudo(ALICE, id, &p, PAM_SUCCESS);
	assert_null(strstr(log, "reuse"));
	assert_int_equal(fake_count("devicecode"), 1);
	assert_int_equal(p.prompts, 1);

	/* The window has passed. */
	sudo_config("sudo_reuse_window = 1\n");
	sleep(2);
	reset_fake();
	memset(&p, 0, sizeof(p));
	p.action = PERSON_APPROVE;
	p.claims_json = ALICE_CLAIMS;
	log = run_sudo(ALICE, id, &p, PAM_SUCCESS);
	assert_contains(log, "older than sudo_reuse_window");
	assert_int_equal(fake_count("devicecode"), 1);

	/* A closed session has nothing to reuse. */
	sudo_config("sudo_reuse_window = 300\n");
	assert_int_equal(pam_close_session(alice.ph, 0), PAM_SUCCESS);
	reset_fake();
	memset(&p, 0, sizeof(p));
	p.action = PERSON_APPROVE;
	p.claims_json = ALICE_CLAIMS;
	log = run_sudo(ALICE, id, &p, PAM_SUCCESS);
	assert_contains(log, "has no login to reuse");
	assert_int_equal(fake_count("devicecode"), 1);

	assert_int_equal(pam_close_session(bob.ph, 0), PAM_SUCCESS);
	finish(&alice);
	finish(&bob);
}

static void test_sudo_session_for_another_account(void **state)
{
	struct person p = { .action = PERSON_APPROVE, .claims_json = ALICE_CLAIMS };
	struct pam_testcase cases[] = {
		pam_test(PAMTEST_AUTHENTICATE, PAM_SUCCESS),
		pam_test(PAMTEST_ACCOUNT, PAM_SUCCESS),
		pam_test(PAMTEST_KEEPHANDLE, PAM_SUCCESS),
	};
	char **env;
	char pending[600];
	enum pamtest_err err;
	pam_handle_t *ph;

	(void)state;
	reset_fake();
	/* sudo authenticates alice, then opens root's session: the session
	 * succeeds through the rest of the stack, root gets no Entra token,
	 * and alice's kept login is gone. */
	log_capture_begin();
	err = _pamtest_conv("entra-sudolike", ALICE, person_conv, &p, cases, 3, NULL);
	log_capture_end();
	assert_int_equal(err, PAMTEST_ERR_OK);
	ph = cases[2].case_out.ph;
	assert_non_null(pam_getenv(ph, "PAM_ENTRA_PENDING"));
	snprintf(pending, sizeof(pending), "%s/private/pending-%s", H.run_dir,
		 pam_getenv(ph, "PAM_ENTRA_PENDING"));
	assert_int_equal(access(pending, F_OK), 0);
	assert_int_equal(pam_set_item(ph, PAM_USER, "root"), PAM_SUCCESS);
	log_capture_begin();
	assert_int_equal(pam_open_session(ph, 0), PAM_SUCCESS);
	assert_contains(log_capture_end(), "another account's");
	env = pam_getenvlist(ph);
	assert_null(env_get(env, "ENTRA_TOKEN_FILE"));
	assert_null(env_get(env, "PAM_ENTRA_PENDING"));
	for (size_t i = 0; env != NULL && env[i] != NULL; i++)
		free(env[i]);
	free(env);
	assert_int_equal(access(pending, F_OK), -1);
	pam_close_session(ph, 0);
	pam_end(ph, PAM_SUCCESS);
}

/* The configuration parsed once in a process is reused by later handles
 * only while its file is unchanged: any rewrite (even of the same size),
 * a looser mode or another file put in its place is seen at once. */
static void chauthtok_expect(const char *user, int expected)
{
	struct person p = { .action = PERSON_HANG_UP };
	struct pam_testcase cases[] = { pam_test(PAMTEST_CHAUTHTOK, expected) };
	enum pamtest_err err;
	const char *log;

	log_capture_begin();
	err = _pamtest_conv("entra-cachecfg", user, person_conv, &p, cases, 1, NULL);
	log = log_capture_end();
	if (err != PAMTEST_ERR_OK)
		fprintf(stderr, "# chauthtok %d (expected %d); log:\n%s\n", cases[0].op_rv, expected, log);
	assert_int_equal(err, PAMTEST_ERR_OK);
}

static void test_config_reused_while_unchanged(void **state)
{
	char path[400], moved[420];

	(void)state;
	snprintf(path, sizeof(path), "%s/cachecfg.conf", H.dir);
	/* A file written less than 2 s ago is read at every call; this one
	 * has settled: read once, then reused. */
	sleep(3);
	chauthtok_expect(ALICE, PAM_AUTHTOK_ERR);
	chauthtok_expect(ALICE, PAM_AUTHTOK_ERR);
	/* Rewritten in place, same size, now invalid: refused at once. */
	assert_int_equal(harness_write_config(path, "qr_code_x = 1\n"), 0);
	chauthtok_expect(ALICE, PAM_SERVICE_ERR);
	assert_int_equal(harness_write_config(path, "# a comment  \n"), 0);
	chauthtok_expect(ALICE, PAM_AUTHTOK_ERR);
	/* Group-writable: refused, though its contents did not change. */
	sleep(3);
	chauthtok_expect(ALICE, PAM_AUTHTOK_ERR);
	assert_int_equal(chmod(path, 0664), 0);
	chauthtok_expect(ALICE, PAM_SERVICE_ERR);
	assert_int_equal(chmod(path, 0644), 0);
	chauthtok_expect(ALICE, PAM_AUTHTOK_ERR);
	/* A symlink put in its place (to the very same file): refused. */
	sleep(3);
	chauthtok_expect(ALICE, PAM_AUTHTOK_ERR);
	snprintf(moved, sizeof(moved), "%s.real", path);
	assert_int_equal(rename(path, moved), 0);
	assert_int_equal(symlink(moved, path), 0);
	chauthtok_expect(ALICE, PAM_SERVICE_ERR);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(rename(moved, path), 0);
	chauthtok_expect(ALICE, PAM_AUTHTOK_ERR);
}

/* pam_wrapper copies the service files once, at the first pam_start:
 * every service the tests use is written here. */
static int write_services(void)
{
	char args[600], conf[400];

	snprintf(conf, sizeof(conf), "%s/workspace.conf", H.dir);
	if (harness_write_config(conf,
		"subscription_id = 11111111-2222-3333-4444-555555555555\n"
		"resource_group = rg-ml\nworkspace_name = ws-vision\nexport_token = yes\n") < 0)
		return -1;
	snprintf(args, sizeof(args), "conf=%s", conf);
	if (harness_service("entra-ws", args) < 0 ||
	    harness_service("entra-slow", "login_timeout=10") < 0 ||
	    harness_service("entra-groups", "allow_groups=" GROUP_OK) < 0 ||
	    harness_service("entra-roles", "allow_roles=Login.Node") < 0 ||
	    harness_service("entra-users", "allow_users=carol@contoso.com") < 0 ||
	    harness_service("entra-badarg", "no_such_option=1") < 0 ||
	    harness_stack_service("entra-stack") < 0)
		return -1;
	snprintf(args, sizeof(args), "cache_dir=%s/cache-counts", H.dir);
	if (harness_service("entra-counts", args) < 0)
		return -1;
	snprintf(args, sizeof(args), "cache_dir=%s/cache-malformed", H.dir);
	if (harness_service("entra-malformed", args) < 0)
		return -1;
	snprintf(args, sizeof(args), "service_accounts=nobody msi_source=imds imds_endpoint=http://127.0.0.1:%d",
		 H.http_port);
	if (harness_service_session_stack("entra-svc", args) < 0)
		return -1;
	snprintf(args, sizeof(args), "service_accounts=nobody msi_source=imds imds_endpoint=http://127.0.0.1:%d "
		 "cache_dir=%s/cache-svc-fresh", H.http_port, H.dir);
	if (harness_service_session_stack("entra-svc-fresh", args) < 0)
		return -1;
	snprintf(args, sizeof(args), "service_accounts=nobody msi_source=imds imds_endpoint=http://127.0.0.1:%d "
		 "cache_dir=%s/cache-svc-required service_token_required=yes", H.http_port, H.dir);
	if (harness_service_session_stack("entra-svc-required", args) < 0)
		return -1;
	snprintf(args, sizeof(args), "service_accounts=nobody msi_source=imds imds_endpoint=http://127.0.0.1:%d "
		 "cache_dir=%s/cache-svc-burst", H.http_port, H.dir);
	if (harness_service_session_stack("entra-svc-burst", args) < 0)
		return -1;
	snprintf(args, sizeof(args), "rbac_scope=" SCOPE " arm_url=https://127.0.0.1:%d rbac_cache_ttl=0",
		 H.https_port);
	if (harness_service("entra-rbac", args) < 0)
		return -1;
	snprintf(args, sizeof(args), "rbac_scope=" SCOPE " arm_url=https://127.0.0.1:%d cache_dir=%s/cache-rbac",
		 H.https_port, H.dir);
	if (harness_service("entra-rbac-cached", args) < 0 ||
	    harness_service("entra-mfa", "require_mfa=yes") < 0 ||
	    harness_service("entra-sudo", "auth_context=entra-sudo:c2 client_capabilities=cp1") < 0)
		return -1;
	snprintf(args, sizeof(args), "conf=%s/sudo.conf", H.dir);
	if (harness_service("sudo", args) < 0)
		return -1;
	if (harness_sudolike_service("entra-sudolike") < 0)
		return -1;
	snprintf(conf, sizeof(conf), "%s/cachecfg.conf", H.dir);
	if (harness_write_config(conf, "# a comment  \n") < 0)
		return -1;
	snprintf(args, sizeof(args), "conf=%s", conf);
	if (harness_service("entra-cachecfg", args) < 0)
		return -1;
	snprintf(args, sizeof(args), "cache_dir=%s/cache-rotate", H.dir);
	return harness_service("entra-rotate", args);
}

static int group_setup(void **state)
{
	(void)state;
	return harness_start() == 0 && write_services() == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	harness_stop();
	return 0;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_login_opens_session),
		cmocka_unit_test(test_cold_then_warm_request_counts),
		cmocka_unit_test(test_devicecode_request_form),
		cmocka_unit_test(test_pending_then_approved),
		cmocka_unit_test(test_slow_down_then_approved),
		cmocka_unit_test(test_declined),
		cmocka_unit_test(test_never_approved_times_out),
		cmocka_unit_test(test_aadsts_errors),
		cmocka_unit_test(test_devicecode_rejected_public_client),
		cmocka_unit_test(test_wrong_signature),
		cmocka_unit_test(test_alg_none),
		cmocka_unit_test(test_wrong_issuer),
		cmocka_unit_test(test_wrong_audience),
		cmocka_unit_test(test_wrong_tenant),
		cmocka_unit_test(test_expired_id_token),
		cmocka_unit_test(test_missing_oid),
		cmocka_unit_test(test_rotated_keys_refetched),
		cmocka_unit_test(test_server_error_on_devicecode),
		cmocka_unit_test(test_malformed_discovery_cold),
		cmocka_unit_test(test_slow_idp_bounded),
		cmocka_unit_test(test_wrong_person),
		cmocka_unit_test(test_accounts_not_ours),
		cmocka_unit_test(test_no_conversation),
		cmocka_unit_test(test_allow_groups),
		cmocka_unit_test(test_allow_roles_and_users),
		cmocka_unit_test(test_workspace_and_exported_token),
		cmocka_unit_test(test_bad_module_argument),
		cmocka_unit_test(test_insecure_config_refused),
		cmocka_unit_test(test_setcred_and_chauthtok),
		cmocka_unit_test(test_session_without_entra_login),
		cmocka_unit_test(test_name_bound_to_object_id),
		cmocka_unit_test(test_config_reused_while_unchanged),
		cmocka_unit_test(test_service_session_gets_managed_identity),
		cmocka_unit_test(test_service_session_without_identity),
		cmocka_unit_test(test_service_sessions_single_flight),
		cmocka_unit_test(test_rbac_decides_login_and_admin),
		cmocka_unit_test(test_rbac_fails_closed),
		cmocka_unit_test(test_rbac_decision_cached),
		cmocka_unit_test(test_rbac_claims_challenge),
		cmocka_unit_test(test_entra_claims_challenge),
		cmocka_unit_test(test_require_mfa),
		cmocka_unit_test(test_auth_context_for_sudo),
		cmocka_unit_test(test_sudo_session_for_another_account),
		cmocka_unit_test(test_sudo_reuses_session_login),
	};

	if (harness_preload(argv) < 0)
		return 1;
	(void)argc;
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
