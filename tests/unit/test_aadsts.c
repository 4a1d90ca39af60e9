/* Unit tests for lib/aadsts.c: error bodies, messages, log reasons. */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "aadsts.h"
#include "json.h"

#define GUID1 "0b7e3c1a-5d2f-4e6a-9c8b-1a2b3c4d5e6f"
#define GUID2 "9f8e7d6c-5b4a-4392-8170-fedcba987654"
#define POLICY1 "11111111-2222-4333-8444-555555555555"
#define POLICY2 "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"

static int parse_text(const char *text, struct entra_oauth_error *err)
{
	struct json_object *obj = entra_json_parse_object(text, strlen(text));
	int rc;

	assert_non_null(obj);
	rc = entra_oauth_error_parse(obj, err);
	json_object_put(obj);
	return rc;
}

static void assert_contains(const char *haystack, const char *needle)
{
	if (strstr(haystack, needle) == NULL)
		fail_msg("\"%s\" does not contain \"%s\"", haystack, needle);
}

static void assert_lacks(const char *haystack, const char *needle)
{
	if (strstr(haystack, needle) != NULL)
		fail_msg("\"%s\" contains \"%s\"", haystack, needle);
}

/* The full Entra sample of PROTOCOL.md §1e and §3b. */
static void test_parse_full_body(void **state)
{
	struct entra_oauth_error err;

	(void)state;
	assert_int_equal(parse_text(
		"{\"error\":\"invalid_grant\","
		"\"error_description\":\"AADSTS53003: Access has been blocked by Conditional "
		"Access policies.\\r\\nTrace ID: " GUID1 "\\r\\nCorrelation ID: " GUID2 "\","
		"\"error_codes\":[53003],\"timestamp\":\"2016-01-09 02:02:12Z\","
		"\"trace_id\":\"" GUID1 "\",\"correlation_id\":\"" GUID2 "\","
		"\"error_uri\":\"https://login.microsoftonline.com/error?code=53003\","
		"\"suberror\":\"message_only\","
		"\"claims\":\"{\\\"access_token\\\":{\\\"capolids\\\":{\\\"essential\\\":true,"
		"\\\"values\\\":[\\\"" POLICY1 "\\\"]}}}\"}", &err), 0);
	assert_string_equal(err.error, "invalid_grant");
	assert_non_null(err.error_description);
	assert_string_equal(err.suberror, "message_only");
	assert_string_equal(err.trace_id, GUID1);
	assert_string_equal(err.correlation_id, GUID2);
	assert_non_null(err.claims);
	assert_int_equal(err.code_count, 1);
	assert_int_equal(err.codes[0], 53003);
	entra_oauth_error_free(&err);
	assert_null(err.error);
	assert_int_equal(err.code_count, 0);
}

static void test_parse_no_error(void **state)
{
	struct entra_oauth_error err;

	(void)state;
	assert_int_equal(parse_text("{\"access_token\":\"x\"}", &err), -ENOENT);
	assert_null(err.error);
	assert_int_equal(parse_text("{\"error\":42}", &err), -EINVAL);
	assert_null(err.error);
	assert_int_equal(parse_text("{\"error\":null}", &err), -EINVAL);
	assert_int_equal(entra_oauth_error_parse(NULL, &err), -EINVAL);
}

static void test_parse_minimal(void **state)
{
	struct entra_oauth_error err;

	(void)state;
	assert_int_equal(parse_text("{\"error\":\"authorization_pending\"}", &err), 0);
	assert_string_equal(err.error, "authorization_pending");
	assert_null(err.error_description);
	assert_null(err.suberror);
	assert_null(err.claims);
	assert_null(err.trace_id);
	assert_null(err.correlation_id);
	assert_int_equal(err.code_count, 0);
	entra_oauth_error_free(&err);
}

static void test_parse_codes(void **state)
{
	struct entra_oauth_error err;

	(void)state;
	/* Several codes, numbers in strings too; junk skipped. */
	assert_int_equal(parse_text("{\"error\":\"interaction_required\","
				    "\"error_codes\":[50076,\"50079\",\"x1\",-3,true,{}]}", &err), 0);
	assert_int_equal(err.code_count, 2);
	assert_int_equal(err.codes[0], 50076);
	assert_int_equal(err.codes[1], 50079);
	entra_oauth_error_free(&err);

	/* No more than ENTRA_OAUTH_MAX_CODES. */
	assert_int_equal(parse_text("{\"error\":\"e\",\"error_codes\":[1,2,3,4,5,6,7,8,9,10]}",
				    &err), 0);
	assert_int_equal(err.code_count, ENTRA_OAUTH_MAX_CODES);
	assert_int_equal(err.codes[7], 8);
	entra_oauth_error_free(&err);

	/* error_codes wins over the description. */
	assert_int_equal(parse_text("{\"error\":\"invalid_grant\",\"error_codes\":[700082],"
				    "\"error_description\":\"AADSTS50076: x\"}", &err), 0);
	assert_int_equal(err.code_count, 1);
	assert_int_equal(err.codes[0], 700082);
	entra_oauth_error_free(&err);
}

static void test_parse_description_code(void **state)
{
	struct entra_oauth_error err;

	(void)state;
	assert_int_equal(parse_text("{\"error\":\"invalid_client\",\"error_description\":"
				    "\"AADSTS7000218: The request body must contain "
				    "client_assertion or client_secret.\\r\\nTrace ID: x\"}", &err), 0);
	assert_int_equal(err.code_count, 1);
	assert_int_equal(err.codes[0], 7000218);
	entra_oauth_error_free(&err);

	/* Not a code: no digits, or too many. */
	assert_int_equal(parse_text("{\"error\":\"x\",\"error_description\":\"AADSTS: oops\"}",
				    &err), 0);
	assert_int_equal(err.code_count, 0);
	entra_oauth_error_free(&err);
	assert_int_equal(parse_text("{\"error\":\"x\",\"error_description\":"
				    "\"AADSTS12345678901234567890\"}", &err), 0);
	assert_int_equal(err.code_count, 0);
	entra_oauth_error_free(&err);
	/* An empty error_codes array still lets the description speak. */
	assert_int_equal(parse_text("{\"error\":\"x\",\"error_codes\":[],"
				    "\"error_description\":\"see AADSTS50105.\"}", &err), 0);
	assert_int_equal(err.code_count, 1);
	assert_int_equal(err.codes[0], 50105);
	entra_oauth_error_free(&err);
}

static void test_parse_bounded(void **state)
{
	struct entra_oauth_error err;
	size_t n = 10000;
	char *text = malloc(n + 100);
	size_t used;

	(void)state;
	assert_non_null(text);
	used = (size_t)snprintf(text, 100, "{\"error\":\"x\",\"error_description\":\"");
	/* "é" is two bytes: a cut must not split it. */
	for (size_t i = 0; i < n / 2; i++) {
		text[used++] = (char)0xc3;
		text[used++] = (char)0xa9;
	}
	memcpy(text + used, "\"}", 3);
	assert_int_equal(parse_text(text, &err), 0);
	assert_true(strlen(err.error_description) <= 4096);
	assert_true(strlen(err.error_description) >= 4094);
	assert_int_equal(strlen(err.error_description) % 2, 0);
	entra_oauth_error_free(&err);
	free(text);
}

struct code_case {
	long code;
	const char *phrases[3];
};

static const struct code_case code_cases[] = {
	{ 50005, { "device-code", "conditional access", "administrator" } },
	{ 50020, { "identity provider", "guest", NULL } },
	{ 50076, { "ulti-factor authentication", "Log in again", NULL } },
	{ 50078, { "multi-factor authentication has expired", NULL, NULL } },
	{ 50079, { "register", "https://aka.ms/mfasetup", NULL } },
	{ 50105, { "not assigned", "administrator", "assign you" } },
	{ 50126, { "password", NULL, NULL } },
	{ 50158, { "external security challenge", NULL, NULL } },
	{ 50173, { "fresh sign-in", "Log in again", NULL } },
	{ 53000, { "compliant", "device", NULL } },
	{ 53001, { "domain-joined", NULL, NULL } },
	{ 53002, { "approved client application", NULL, NULL } },
	{ 53003, { "blocked by a conditional access policy", "administrator", "trace ID" } },
	{ 65001, { "consent", "administrator", NULL } },
	{ 70016, { "Waiting", NULL, NULL } },
	{ 70018, { "did not recognize the device code", "Log in again", NULL } },
	{ 70019, { "expired", "Log in again", NULL } },
	{ 70043, { "sign-in frequency", NULL, NULL } },
	{ 90120, { "already used", NULL, NULL } },
	{ 530032, { "security policy", "administrator", NULL } },
	{ 530035, { "security defaults", NULL, NULL } },
	{ 700016, { "not found", "client_id", "tenant" } },
	{ 700082, { "expired", "Log in again", NULL } },
	{ 7000218, { "public client flows", "Allow public client flows", "administrator" } },
};

static void test_messages_by_code(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(code_cases) / sizeof(code_cases[0]); i++) {
		struct entra_oauth_error err = { .error = (char *)"invalid_grant" };
		const char *m;

		err.codes[0] = code_cases[i].code;
		err.code_count = 1;
		m = entra_oauth_error_message(&err);
		assert_non_null(m);
		for (size_t j = 0; j < 3 && code_cases[i].phrases[j] != NULL; j++)
			assert_contains(m, code_cases[i].phrases[j]);
		/* Code-specific, not the generic text of the error name. */
		assert_lacks(m, "grant was rejected");
	}
}

struct error_case {
	const char *error;
	const char *phrase;
};

static const struct error_case error_cases[] = {
	{ "authorization_declined", "declined" },
	{ "access_denied", "denied" },
	{ "expired_token", "expired" },
	{ "bad_verification_code", "did not recognize" },
	{ "slow_down", "still waiting" },
	{ "authorization_pending", "Waiting" },
	{ "invalid_grant", "rejected" },
	{ "invalid_client", "client_id" },
	{ "unauthorized_client", "not allowed" },
	{ "invalid_request", "invalid" },
	{ "invalid_scope", "scope" },
	{ "interaction_required", "Additional verification" },
	{ "temporarily_unavailable", "temporarily unavailable" },
};

static void test_messages_by_error(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]); i++) {
		struct entra_oauth_error err = { .error = (char *)error_cases[i].error };

		assert_contains(entra_oauth_error_message(&err), error_cases[i].phrase);
	}
}

static void test_message_code_wins(void **state)
{
	struct entra_oauth_error err;

	(void)state;
	assert_int_equal(parse_text("{\"error\":\"interaction_required\",\"error_codes\":[50076]}",
				    &err), 0);
	assert_contains(entra_oauth_error_message(&err), "ulti-factor");
	entra_oauth_error_free(&err);
	/* An unknown code first, a known one second: the known one speaks. */
	assert_int_equal(parse_text("{\"error\":\"invalid_grant\",\"error_codes\":[1,53003]}",
				    &err), 0);
	assert_contains(entra_oauth_error_message(&err), "conditional access");
	entra_oauth_error_free(&err);
}

static void test_message_fallback(void **state)
{
	struct entra_oauth_error err = { .error = (char *)"invalid_grant" };
	const char *m;

	(void)state;
	/* A known error with an unknown code: the error's text, plus the code
	 * and where to look it up. */
	err.codes[0] = 9999999;
	err.code_count = 1;
	m = entra_oauth_error_message(&err);
	assert_contains(m, "rejected");
	assert_contains(m, "AADSTS9999999");
	assert_contains(m, "https://login.microsoftonline.com/error?code=9999999");
	/* An unknown error with an unknown code. */
	err.error = (char *)"some_new_error";
	m = entra_oauth_error_message(&err);
	assert_contains(m, "Sign-in failed");
	assert_contains(m, "https://login.microsoftonline.com/error?code=9999999");
	/* No code: the error name, when it is fit to show. */
	err.code_count = 0;
	m = entra_oauth_error_message(&err);
	assert_contains(m, "some_new_error");
	assert_lacks(m, "AADSTS");
	err.error = (char *)"evil\n\x1b[2Jname";
	m = entra_oauth_error_message(&err);
	assert_lacks(m, "evil");
	assert_contains(m, "Sign-in failed");
	err.error = NULL;
	assert_contains(entra_oauth_error_message(&err), "Sign-in failed");
	assert_non_null(entra_oauth_error_message(NULL));
}

static void test_log_reason(void **state)
{
	struct entra_oauth_error err;
	char line[1024];

	(void)state;
	assert_int_equal(parse_text(
		"{\"error\":\"invalid_grant\",\"error_codes\":[53003,50076],"
		"\"error_description\":\"AADSTS53003: Blocked.\\r\\nTrace ID: x\","
		"\"suberror\":\"message_only\",\"trace_id\":\"" GUID1 "\","
		"\"correlation_id\":\"" GUID2 "\","
		"\"claims\":\"{\\\"access_token\\\":{\\\"capolids\\\":{\\\"essential\\\":true,"
		"\\\"values\\\":[\\\"" POLICY1 "\\\",\\\"not-a-guid\\\",\\\"" POLICY2 "\\\"]}}}\"}",
		&err), 0);
	entra_oauth_error_log_reason(&err, line, sizeof(line));
	assert_string_equal(line, "error=invalid_grant codes=53003,50076 suberror=message_only "
			    "trace_id=" GUID1 " correlation_id=" GUID2
			    " capolids=" POLICY1 "," POLICY2
			    " description=\"AADSTS53003: Blocked.\"");
	entra_oauth_error_free(&err);
}

static void test_log_reason_sanitized(void **state)
{
	struct entra_oauth_error err;
	char line[1024];

	(void)state;
	assert_int_equal(parse_text(
		"{\"error\":\"bad\\nerror=fake x\",\"suberror\":\"a b\","
		"\"trace_id\":\"" GUID1 "\\nforged=1\",\"correlation_id\":\"nope\","
		"\"error_description\":\"quote\\\" and \\u001b[31m\","
		"\"claims\":\"not json\"}", &err), 0);
	entra_oauth_error_log_reason(&err, line, sizeof(line));
	for (const char *p = line; *p; p++)
		assert_true((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f);
	assert_string_equal(line, "error=bad?error?fake?x suberror=a?b "
			    "description=\"quote' and ?[31m\"");
	entra_oauth_error_free(&err);

	/* Truncation keeps the line terminated. */
	assert_int_equal(parse_text("{\"error\":\"invalid_grant\",\"trace_id\":\"" GUID1 "\"}",
				    &err), 0);
	entra_oauth_error_log_reason(&err, line, 20);
	assert_int_equal(strlen(line), 19);
	assert_string_equal(line, "error=invalid_grant");
	entra_oauth_error_log_reason(&err, line, 1);
	assert_string_equal(line, "");
	entra_oauth_error_free(&err);

	/* Overlong values are cut, not dropped. */
	{
		char body[512], *p;

		snprintf(body, sizeof(body), "{\"error\":\"%0200d\"}", 7);
		assert_int_equal(parse_text(body, &err), 0);
		entra_oauth_error_log_reason(&err, line, sizeof(line));
		p = strchr(line, '=');
		assert_non_null(p);
		assert_int_equal(strlen(p + 1), 64);
		entra_oauth_error_free(&err);
	}
}

static void test_log_reason_capolids_shapes(void **state)
{
	static const char *const bodies[] = {
		"{\"error\":\"e\",\"claims\":\"{\\\"access_token\\\":{\\\"capolids\\\":{\\\"values\\\":\\\"x\\\"}}}\"}",
		"{\"error\":\"e\",\"claims\":\"{\\\"access_token\\\":[]}\"}",
		"{\"error\":\"e\",\"claims\":\"{\\\"id_token\\\":{\\\"capolids\\\":{\\\"values\\\":[\\\"" POLICY1 "\\\"]}}}\"}",
		"{\"error\":\"e\",\"claims\":\"[1]\"}",
	};
	struct entra_oauth_error err;
	char line[512];

	(void)state;
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		assert_int_equal(parse_text(bodies[i], &err), 0);
		entra_oauth_error_log_reason(&err, line, sizeof(line));
		assert_string_equal(line, "error=e");
		entra_oauth_error_free(&err);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_full_body),
		cmocka_unit_test(test_parse_no_error),
		cmocka_unit_test(test_parse_minimal),
		cmocka_unit_test(test_parse_codes),
		cmocka_unit_test(test_parse_description_code),
		cmocka_unit_test(test_parse_bounded),
		cmocka_unit_test(test_messages_by_code),
		cmocka_unit_test(test_messages_by_error),
		cmocka_unit_test(test_message_code_wins),
		cmocka_unit_test(test_message_fallback),
		cmocka_unit_test(test_log_reason),
		cmocka_unit_test(test_log_reason_sanitized),
		cmocka_unit_test(test_log_reason_capolids_shapes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
