/* Hostile ID tokens through the whole PAM module: the fake Entra signs
 * (or mis-signs) tokens whose header and claims an attacker chose, the
 * person approves, and pam_entra must deny with the right log reason,
 * never crash, and let nothing unsafe reach a file name, the user
 * database or the environment. One cmocka test per case. */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <libpamtest.h>

#include "pam_harness.h"
#include "hardening_util.h"
#include "userdb.h"

#define ALICE "alice@contoso.com"
#define ALICE_CLAIMS "{\"preferred_username\":\"alice@contoso.com\",\"oid\":\"0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9\",\"name\":\"Alice Example\"}"

struct token_case {
	const char *name;
	const char *configure;  /* JSON for /_control/configure; NULL: built by pad */
	size_t pad;             /* > 0: id_token claim "pad" of this many bytes */
	int expected;           /* PAM code of pam_authenticate */
	const char *reason;     /* a phrase the log must hold */
};

#define ID(spec) "{\"id_token\":" spec "}"
#define SET(claims) ID("{\"set\":" claims "}")

static const struct token_case cases[] = {
	/* the signature and its header */
	{ "alg_none", "{\"sign\":\"none\"}", 0, PAM_AUTH_ERR, "id_token" },
	{ "hs256_with_public_key", "{\"sign\":\"hs256\"}", 0, PAM_AUTH_ERR, "id_token bad algorithm" },
	{ "wrong_key_same_kid", "{\"sign\":\"wrong_key\"}", 0, PAM_AUTH_ERR, "id_token bad signature" },
	{ "unknown_kid", "{\"sign\":\"unknown_kid\"}", 0, PAM_AUTH_ERR, "id_token unknown key id" },
	{ "kid_path_traversal", ID("{\"header_set\":{\"kid\":\"../../../../etc/passwd\"}}"), 0, PAM_AUTH_ERR, "id_token unknown key id" },
	{ "kid_injection", ID("{\"header_set\":{\"kid\":\"x\\\"; rm -rf / #\\n\"}}"), 0, PAM_AUTH_ERR, "login for alice@contoso.com refused: id_token" },
	{ "kid_not_string", ID("{\"header_set\":{\"kid\":42}}"), 0, PAM_AUTH_ERR, "id_token bad header" },
	{ "alg_unknown", ID("{\"header_set\":{\"alg\":\"RS1024\"}}"), 0, PAM_AUTH_ERR, "id_token bad algorithm" },
	{ "alg_es256_on_rsa_key", ID("{\"header_set\":{\"alg\":\"ES256\"}}"), 0, PAM_AUTH_ERR, "id_token bad algorithm" },
	{ "crit_header", ID("{\"header_set\":{\"crit\":[\"exp\"],\"exp\":1}}"), 0, PAM_AUTH_ERR, "id_token bad header" },
	{ "jku_with_foreign_key", "{\"sign\":\"wrong_key\",\"id_token\":{\"header_set\":{\"jku\":\"https://127.0.0.1:1/keys\",\"x5u\":\"https://127.0.0.1:1/x5u\"}}}", 0, PAM_AUTH_ERR, "id_token bad signature" },
	{ "embedded_jwk", "{\"sign\":\"wrong_key\",\"id_token\":{\"header_set\":{\"jwk\":{\"kty\":\"RSA\",\"e\":\"AQAB\",\"n\":\"sXch\"}}}}", 0, PAM_AUTH_ERR, "id_token bad signature" },
	/* times, issuer, audience, tenant */
	{ "expired", ID("{\"exp_offset\":-600}"), 0, PAM_AUTH_ERR, "id_token expired" },
	{ "nbf_future", ID("{\"nbf_offset\":3600}"), 0, PAM_AUTH_ERR, "id_token not yet valid" },
	{ "iat_future", ID("{\"iat_offset\":86400}"), 0, PAM_AUTH_ERR, "id_token issued in the future" },
	{ "exp_as_string", SET("{\"exp\":\"9999999999\"}"), 0, PAM_AUTH_ERR, "id_token" },
	{ "iss_other", SET("{\"iss\":\"https://evil.example/v2.0\"}"), 0, PAM_AUTH_ERR, "id_token bad issuer" },
	{ "iss_array", SET("{\"iss\":[\"x\"]}"), 0, PAM_AUTH_ERR, "id_token bad issuer" },
	{ "aud_other", SET("{\"aud\":\"00000000-0000-0000-0000-000000000001\"}"), 0, PAM_AUTH_ERR, "id_token bad audience" },
	{ "aud_array_without_us", SET("{\"aud\":[\"00000000-0000-0000-0000-000000000001\",\"x\"]}"), 0, PAM_AUTH_ERR, "id_token bad audience" },
	{ "aud_number", SET("{\"aud\":5}"), 0, PAM_AUTH_ERR, "id_token bad audience" },
	{ "tid_other", SET("{\"tid\":\"00000000-0000-0000-0000-000000000002\"}"), 0, PAM_AUTH_ERR, "id_token bad tenant" },
	{ "tid_number", SET("{\"tid\":7}"), 0, PAM_AUTH_ERR, "id_token" },
	/* identity claims */
	{ "oid_missing", ID("{\"drop\":[\"oid\"]}"), 0, PAM_AUTH_ERR, "id_token missing claim" },
	{ "oid_number", SET("{\"oid\":12345}"), 0, PAM_AUTH_ERR, "id_token missing claim: claim oid is not a non-empty string" },
	{ "oid_newline", SET("{\"oid\":\"0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9\\nroot\"}"), 0, PAM_AUTH_ERR, "identity claim 'oid'" },
	{ "oid_nul", SET("{\"oid\":\"0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9\\u0000x\"}"), 0, PAM_AUTH_ERR, "claim oid is not a non-empty string" },
	{ "oid_overlong", NULL, 0, PAM_AUTH_ERR, "identity claim 'oid'" },
	{ "upn_newline", SET("{\"preferred_username\":\"alice@contoso.com\\nroot\"}"), 0, PAM_AUTH_ERR, "username claim" },
	{ "upn_nul", SET("{\"preferred_username\":\"alice@contoso.com\\u0000evil\"}"), 0, PAM_AUTH_ERR, "claim preferred_username is not a non-empty string" },
	{ "upn_escape_sequence", SET("{\"preferred_username\":\"\\u001b[2Jalice@contoso.com\"}"), 0, PAM_AUTH_ERR, "username claim" },
	{ "upn_shell", SET("{\"preferred_username\":\"alice$(reboot)`id`;|&@contoso.com\"}"), 0, PAM_AUTH_ERR, "not a valid user name" },
	{ "upn_slash", SET("{\"preferred_username\":\"a/b@contoso.com\"}"), 0, PAM_AUTH_ERR, "not a valid user name" },
	{ "upn_dotdot", SET("{\"preferred_username\":\"../../etc/passwd\"}"), 0, PAM_AUTH_ERR, "not a valid user name" },
	{ "upn_overlong", NULL, 0, PAM_AUTH_ERR, "username claim" },
	{ "upn_number", SET("{\"preferred_username\":1}"), 0, PAM_AUTH_ERR, "claim preferred_username is not a non-empty string" },
	{ "upn_other_person", SET("{\"preferred_username\":\"root@contoso.com\"}"), 0, PAM_AUTH_ERR, "root@contoso.com" },
	{ "groups_string", SET("{\"groups\":\"5a5a5a5a-1111-2222-3333-444444444444\"}"), 0, PAM_AUTH_ERR, "claim 'groups'" },
	{ "groups_newline", SET("{\"groups\":[\"a\\nb\"]}"), 0, PAM_AUTH_ERR, "claim 'groups'" },
	{ "groups_nested", SET("{\"groups\":[[\"a\"]]}"), 0, PAM_AUTH_ERR, "claim 'groups'" },
	{ "roles_object", SET("{\"roles\":{\"a\":1}}"), 0, PAM_AUTH_ERR, "claim 'roles'" },
	{ "sub_missing", ID("{\"drop\":[\"sub\"]}"), 0, PAM_AUTH_ERR, "claim 'sub'" },
	/* the JSON itself */
	{ "duplicate_upn", ID("{\"payload_append\":\",\\\"preferred_username\\\":\\\"bob@contoso.com\\\"\"}"), 0, PAM_AUTH_ERR, "id_token malformed token" },
	{ "duplicate_oid", ID("{\"payload_append\":\",\\\"oid\\\":\\\"1b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9\\\"\"}"), 0, PAM_AUTH_ERR, "id_token malformed token" },
	{ "deep_nesting", NULL, 0, PAM_AUTH_ERR, "id_token malformed token" },
	{ "payload_array", ID("{\"payload_raw\":\"[1,2,3]\"}"), 0, PAM_AUTH_ERR, "id_token malformed token" },
	{ "payload_not_json", ID("{\"payload_raw\":\"alice\"}"), 0, PAM_AUTH_ERR, "id_token malformed token" },
	{ "payload_trailing", ID("{\"payload_raw\":\"{}{}\"}"), 0, PAM_AUTH_ERR, "id_token malformed token" },
	/* size */
	{ "token_200k", NULL, 200 * 1024, PAM_AUTHINFO_UNAVAIL, "unusable token response (HTTP 200)" },
	{ "id_token_1_2mb_over_cap", NULL, 900 * 1024, PAM_AUTHINFO_UNAVAIL, "response body larger than 1048576 bytes" },
};

/* Configure documents too large or too repetitive to write inline. */
static char *build_configure(const struct token_case *c)
{
	size_t n = 0, cap;
	char *s;

	if (c->configure != NULL)
		return strdup(c->configure);
	if (c->pad > 0) {
		cap = c->pad + 128;
		s = malloc(cap);
		if (s == NULL)
			return NULL;
		n = (size_t)snprintf(s, cap, "{\"id_token\":{\"set\":{\"pad\":\"");
		memset(s + n, 'A', c->pad);
		n += c->pad;
		snprintf(s + n, cap - n, "\"}}}");
		return s;
	}
	cap = 64 * 1024;
	s = malloc(cap);
	if (s == NULL)
		return NULL;
	if (strcmp(c->name, "deep_nesting") == 0) {
		/* 5000 levels of arrays as raw payload text. */
		n = (size_t)snprintf(s, cap, "{\"id_token\":{\"payload_append\":\",\\\"deep\\\":");
		for (int i = 0; i < 5000; i++)
			s[n++] = '[';
		for (int i = 0; i < 5000; i++)
			s[n++] = ']';
		snprintf(s + n, cap - n, "\"}}");
	} else {
		const char *claim = strcmp(c->name, "oid_overlong") == 0 ? "oid" : "preferred_username";
		size_t len = strcmp(claim, "oid") == 0 ? 8192 : 300;

		n = (size_t)snprintf(s, cap, "{\"id_token\":{\"set\":{\"%s\":\"", claim);
		memset(s + n, 'a', len);
		n += len;
		snprintf(s + n, cap - n, "@contoso.com\"}}}");
	}
	return s;
}

static void test_token_case(void **state)
{
	const struct token_case *c = *state;
	struct person p = { .action = PERSON_APPROVE, .claims_json = ALICE_CLAIMS };
	struct pam_testcase tc[] = { pam_test(PAMTEST_AUTHENTICATE, c->expected) };
	char *configure = build_configure(c);
	enum pamtest_err err;
	const char *log;

	assert_non_null(configure);
	assert_int_equal(fake_control("reset", "{}"), 0);
	assert_int_equal(fake_control("configure", "{\"interval\":1}"), 0);
	assert_int_equal(fake_control("configure", configure), 0);
	free(configure);
	log_capture_begin();
	err = _pamtest_conv("entra", ALICE, person_conv, &p, tc, 1, NULL);
	log = log_capture_end();
	if (getenv("HARDENING_VERBOSE") != NULL)
		fprintf(stderr, "# %s:\n%s\n", c->name, log);
	if (err != PAMTEST_ERR_OK)
		fprintf(stderr, "# %s: authenticate returned %d, expected %d; log:\n%s\n", c->name,
			tc[0].op_rv, c->expected, log);
	assert_int_equal(err, PAMTEST_ERR_OK);
	assert_log_contains(log, c->reason);
	/* The person was told something, and the log never holds a token. */
	assert_true(strlen(p.errors) > 0);
	assert_log_lacks(log, "eyJ");
	/* Denied before the account phase: nothing recorded, no session, and
	 * no file anywhere named after a claim. */
	assert_int_equal(harness_uid_of(ALICE), -1);
	assert_int_equal(tree_bad_names(H.dir, NULL), 0);
	assert_true(tree_count(H.run_dir) <= 0);
}

/* A display name is cosmetic: a hostile one is dropped or cleaned, the
 * login goes on, and nothing of it reaches the user database or the
 * session environment unsafely. Runs the full stack (account records
 * the user, session opens). */
static void test_hostile_display_name(void **state)
{
	struct person p = { .action = PERSON_APPROVE, .claims_json = ALICE_CLAIMS };
	struct pam_testcase tc[] = {
		pam_test(PAMTEST_AUTHENTICATE, PAM_SUCCESS),
		pam_test(PAMTEST_ACCOUNT, PAM_SUCCESS),
		pam_test(PAMTEST_OPEN_SESSION, PAM_SUCCESS),
		pam_test(PAMTEST_GETENVLIST, PAM_SUCCESS),
		pam_test(PAMTEST_CLOSE_SESSION, PAM_SUCCESS),
	};
	static const char *const names[] = {
		"Alice:x:0:0:root:/root:/bin/sh",
		"Alice\\n$(reboot);`id`|&",
		"Alice\\u0000root",
		"\\u001b]0;owned\\u0007Alice",
	};
	struct entra_userdb *db = NULL;
	struct entra_userdb_user u;
	char configure[512];
	enum pamtest_err err;
	const char *log;

	(void)state;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		assert_int_equal(fake_control("reset", "{}"), 0);
		assert_int_equal(fake_control("configure", "{\"interval\":1}"), 0);
		snprintf(configure, sizeof(configure), "{\"id_token\":{\"set\":{\"name\":\"%s\"}}}", names[i]);
		assert_int_equal(fake_control("configure", configure), 0);
		memset(&p, 0, sizeof(p));
		p.action = PERSON_APPROVE;
		p.claims_json = ALICE_CLAIMS;
		log_capture_begin();
		err = _pamtest_conv("entra", ALICE, person_conv, &p, tc, 5, NULL);
		log = log_capture_end();
		if (err != PAMTEST_ERR_OK)
			fprintf(stderr, "# display name %zu: %s\n%s\n", i, pamtest_strerror(err), log);
		assert_int_equal(err, PAMTEST_ERR_OK);
		for (char **e = tc[3].case_out.envlist; e != NULL && *e != NULL; e++) {
			for (const char *q = *e; *q; q++)
				assert_true((unsigned char)*q >= 0x20 && *q != 0x7f);
			assert_null(strstr(*e, "reboot"));
			assert_null(strstr(*e, "/bin/sh"));
		}
		pamtest_free_env(tc[3].case_out.envlist);
		assert_int_equal(entra_userdb_open(H.db_dir, &db, NULL, 0), 0);
		assert_int_equal(entra_userdb_find_name(db, ALICE, &u), 0);
		assert_null(strchr(u.gecos, ':'));
		for (const char *q = u.gecos; *q; q++)
			assert_true((unsigned char)*q >= 0x20 && *q != 0x7f);
		entra_userdb_close(db);
		assert_int_equal(tree_bad_names(H.dir, NULL), 0);
	}
}

/* The claims of every case above, had the module let one through, would
 * have been recorded: check once more that the database holds only the
 * display-name test's alice. */
static void test_database_untouched(void **state)
{
	struct entra_userdb *db = NULL;
	struct entra_userdb_info info;

	(void)state;
	assert_int_equal(entra_userdb_open(H.db_dir, &db, NULL, 0), 0);
	entra_userdb_get_info(db, &info);
	assert_int_equal(info.users, 1);
	entra_userdb_close(db);
}

static int group_setup(void **state)
{
	(void)state;
	return harness_start() == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	harness_stop();
	return 0;
}

int main(int argc, char **argv)
{
	size_t n = sizeof(cases) / sizeof(cases[0]);
	struct CMUnitTest *tests = calloc(n + 2, sizeof(*tests));

	(void)argc;
	if (harness_preload(argv) < 0 || tests == NULL)
		return 1;
	for (size_t i = 0; i < n; i++) {
		tests[i].name = cases[i].name;
		tests[i].test_func = test_token_case;
		tests[i].initial_state = (void *)&cases[i];
	}
	tests[n].name = "hostile_display_name";
	tests[n].test_func = test_hostile_display_name;
	tests[n + 1].name = "database_untouched";
	tests[n + 1].test_func = test_database_untouched;
	return _cmocka_run_group_tests("hostile_tokens", tests, n + 2, group_setup, group_teardown);
}
