/* Unit tests for lib/tokens.c. The HTTP layer is replaced by a fake
 * defined here (this program does not link lib/http.c): it records the
 * request and answers with a canned response. */
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

#include "buf.h"
#include "http.h"
#include "oauth_fake_http.h"
#include "tokens.h"

#define NOW ((time_t)1700000000)

/* ---- fake HTTP layer ---- */

static struct {
	int rc;             /* what entra_http_post_form returns */
	long status;
	const char *body;
	unsigned calls;
	char url[256];
	char form[8192];
} fake;

int entra_http_post_form(struct entra_http *http, const char *url, const char *form,
			 const char *const *headers, struct entra_http_response *resp)
{
	(void)http;
	(void)headers;
	memset(resp, 0, sizeof(*resp));
	entra_buf_init(&resp->body, ENTRA_HTTP_MAX_BODY);
	resp->retry_after = -1;
	fake.calls++;
	snprintf(fake.url, sizeof(fake.url), "%s", url);
	snprintf(fake.form, sizeof(fake.form), "%s", form);
	if (fake.rc < 0)
		return fake.rc;
	resp->status = fake.status;
	if (fake.body != NULL)
		assert_int_equal(entra_buf_append_str(&resp->body, fake.body), 0);
	return 0;
}

static int setup(void **state)
{
	(void)state;
	memset(&fake, 0, sizeof(fake));
	return 0;
}

/* ---- entra_token_response_parse ---- */

static enum entra_token_result parse(long status, const char *body,
				     struct entra_token_response *tok,
				     struct entra_oauth_error *err)
{
	return entra_token_response_parse(status, body, strlen(body), NOW, tok, err);
}

static void test_parse_full(void **state)
{
	struct entra_token_response tok;
	struct entra_oauth_error err;

	(void)state;
	assert_int_equal(parse(200,
		"{\"token_type\":\"Bearer\",\"scope\":\"https://management.azure.com/user_impersonation\","
		"\"expires_in\":3599,\"ext_expires_in\":3599,\"access_token\":\"eyJ.at.sig\","
		"\"refresh_token\":\"1.AX-rt\",\"id_token\":\"eyJ.id.sig\",\"client_info\":\"eyJ1aWQiOiIuIn0\"}",
		&tok, &err), ENTRA_TOKEN_OK);
	assert_string_equal(tok.access_token, "eyJ.at.sig");
	assert_string_equal(tok.refresh_token, "1.AX-rt");
	assert_string_equal(tok.id_token, "eyJ.id.sig");
	assert_string_equal(tok.token_type, "Bearer");
	assert_string_equal(tok.scope, "https://management.azure.com/user_impersonation");
	assert_int_equal(tok.expires_in, 3599);
	assert_int_equal(tok.expires_on, NOW + 3599);
	assert_null(err.error);
	entra_token_response_free(&tok);
	assert_null(tok.access_token);
	assert_null(tok.refresh_token);
}

static void test_parse_string_expiry(void **state)
{
	struct entra_token_response tok;
	struct entra_oauth_error err;

	(void)state;
	/* IMDS shape: every field a string, expires_on given, empty refresh token. */
	assert_int_equal(parse(200,
		"{\"access_token\":\"at\",\"refresh_token\":\"\",\"expires_in\":\"3599\","
		"\"expires_on\":\"1700003000\",\"not_before\":\"1699999400\","
		"\"resource\":\"https://management.azure.com/\",\"token_type\":\"bearer\"}",
		&tok, &err), ENTRA_TOKEN_OK);
	assert_int_equal(tok.expires_in, 3599);
	assert_int_equal(tok.expires_on, 1700003000);
	assert_null(tok.refresh_token);
	assert_null(tok.id_token);
	entra_token_response_free(&tok);

	/* expires_on alone: expires_in derived. */
	assert_int_equal(parse(200, "{\"access_token\":\"at\",\"token_type\":\"Bearer\","
			       "\"expires_on\":1700000600}", &tok, &err), ENTRA_TOKEN_OK);
	assert_int_equal(tok.expires_in, 600);
	assert_int_equal(tok.expires_on, 1700000600);
	entra_token_response_free(&tok);

	/* Legacy date string (App Service 2017-09-01, Azure ML). */
	assert_int_equal(parse(200, "{\"access_token\":\"at\",\"token_type\":\"Bearer\","
			       "\"expires_on\":\"11/14/2023 23:13:20 +00:00\"}", &tok, &err),
			 ENTRA_TOKEN_OK);
	assert_int_equal(tok.expires_on, 1700003600);
	entra_token_response_free(&tok);
	assert_int_equal(parse(200, "{\"access_token\":\"at\",\"token_type\":\"Bearer\","
			       "\"expires_on\":\"11/15/2023 01:13:20 +02:00\"}", &tok, &err),
			 ENTRA_TOKEN_OK);
	assert_int_equal(tok.expires_on, 1700003600);
	entra_token_response_free(&tok);

	/* Neither: an hour, documented. */
	assert_int_equal(parse(200, "{\"access_token\":\"at\",\"token_type\":\"Bearer\"}",
			       &tok, &err), ENTRA_TOKEN_OK);
	assert_int_equal(tok.expires_in, 3600);
	assert_int_equal(tok.expires_on, NOW + 3600);
	entra_token_response_free(&tok);
}

static void test_parse_bad_expiry(void **state)
{
	static const char *const bodies[] = {
		"{\"access_token\":\"at\",\"token_type\":\"Bearer\",\"expires_in\":\"soon\"}",
		"{\"access_token\":\"at\",\"token_type\":\"Bearer\",\"expires_in\":-5}",
		"{\"access_token\":\"at\",\"token_type\":\"Bearer\",\"expires_in\":0}",
		"{\"access_token\":\"at\",\"token_type\":\"Bearer\",\"expires_in\":3.5}",
		"{\"access_token\":\"at\",\"token_type\":\"Bearer\",\"expires_in\":99999999999}",
		"{\"access_token\":\"at\",\"token_type\":\"Bearer\",\"expires_on\":1600000000}",
		"{\"access_token\":\"at\",\"token_type\":\"Bearer\",\"expires_on\":\"13/01/2023 00:00:00 +00:00\"}",
		"{\"access_token\":\"at\",\"token_type\":\"Bearer\",\"expires_on\":\"tomorrow\"}",
		"{\"access_token\":\"at\",\"token_type\":\"Bearer\",\"expires_on\":[1]}",
	};
	struct entra_token_response tok;
	struct entra_oauth_error err;

	(void)state;
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		assert_int_equal(parse(200, bodies[i], &tok, &err), ENTRA_TOKEN_MALFORMED);
		assert_null(tok.access_token);
		assert_null(err.error);
	}
}

static void test_parse_error_any_status(void **state)
{
	static const long statuses[] = { 200, 400, 401, 500 };
	struct entra_token_response tok;
	struct entra_oauth_error err;

	(void)state;
	for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
		/* An error body wins even when tokens ride along. */
		assert_int_equal(parse(statuses[i],
			"{\"error\":\"invalid_grant\",\"error_codes\":[700082],"
			"\"access_token\":\"at\",\"token_type\":\"Bearer\"}", &tok, &err),
			ENTRA_TOKEN_ERROR);
		assert_string_equal(err.error, "invalid_grant");
		assert_int_equal(err.codes[0], 700082);
		assert_null(tok.access_token);
		entra_oauth_error_free(&err);
	}
	/* "error" of the wrong type is not an OAuth error body. */
	assert_int_equal(parse(400, "{\"error\":{\"code\":\"x\"}}", &tok, &err),
			 ENTRA_TOKEN_MALFORMED);
	assert_null(err.error);
}

static void test_parse_missing_fields(void **state)
{
	static const struct {
		long status;
		const char *body;
	} cases[] = {
		{ 200, "{\"token_type\":\"Bearer\",\"expires_in\":60}" },
		{ 200, "{\"access_token\":\"at\",\"expires_in\":60}" },
		{ 200, "{\"access_token\":\"at\",\"token_type\":\"pop\",\"expires_in\":60}" },
		{ 200, "{\"access_token\":\"\",\"token_type\":\"Bearer\",\"expires_in\":60}" },
		{ 200, "{\"access_token\":7,\"token_type\":\"Bearer\",\"expires_in\":60}" },
		{ 200, "{\"access_token\":\"a\\nb\",\"token_type\":\"Bearer\",\"expires_in\":60}" },
		{ 200, "{\"access_token\":\"at\",\"token_type\":\"Bearer\",\"refresh_token\":[]}" },
		{ 200, "{\"access_token\":\"at\",\"token_type\":\"Bearer\",\"id_token\":\"x\\u0001\"}" },
		{ 400, "{\"access_token\":\"at\",\"token_type\":\"Bearer\",\"expires_in\":60}" },
		{ 302, "{\"access_token\":\"at\",\"token_type\":\"Bearer\",\"expires_in\":60}" },
		{ 500, "{}" },
	};
	struct entra_token_response tok;
	struct entra_oauth_error err;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(parse(cases[i].status, cases[i].body, &tok, &err),
				 ENTRA_TOKEN_MALFORMED);
		assert_null(tok.access_token);
		assert_null(tok.token_type);
	}
}

static void test_parse_not_json(void **state)
{
	static const char *const bodies[] = {
		"", "<html>502 Bad Gateway</html>", "[]", "\"x\"",
		"{\"access_token\":\"at\",\"token_type\":\"Bearer\"} trailing",
		"{\"access_token\":\"at\",\"token_type\":\"Bearer\"",
	};
	struct entra_token_response tok;
	struct entra_oauth_error err;

	(void)state;
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
		assert_int_equal(parse(200, bodies[i], &tok, &err), ENTRA_TOKEN_MALFORMED);
	assert_int_equal(entra_token_response_parse(200, NULL, 0, NOW, &tok, &err),
			 ENTRA_TOKEN_MALFORMED);
	/* A NUL inside the body is not JSON. */
	assert_int_equal(entra_token_response_parse(200, "{\"error\":\"x\"}\0", 14, NOW, &tok, &err),
			 ENTRA_TOKEN_MALFORMED);
}

/* ---- entra_token_refresh ---- */

static void test_refresh_form(void **state)
{
	struct entra_token_response tok;
	struct entra_oauth_error err;
	int dummy;

	(void)state;
	fake.status = 200;
	fake.body = "{\"token_type\":\"Bearer\",\"expires_in\":\"4000\",\"access_token\":\"new-at\","
		    "\"refresh_token\":\"new-rt\",\"scope\":\"https://ml.azure.com/.default\"}";
	assert_int_equal(entra_token_refresh((struct entra_http *)&dummy,
					     "https://idp.test/t/oauth2/v2.0/token", "client-1",
					     "old rt+&=", "https://ml.azure.com/.default offline_access",
					     "{\"access_token\":{\"acrs\":{\"essential\":true,\"value\":\"c1\"}}}",
					     NOW, &tok, &err), ENTRA_TOKEN_OK);
	assert_int_equal(fake.calls, 1);
	assert_string_equal(fake.url, "https://idp.test/t/oauth2/v2.0/token");
	assert_string_equal(form_value(fake.form, "grant_type"), "refresh_token");
	assert_string_equal(form_value(fake.form, "client_id"), "client-1");
	assert_string_equal(form_value(fake.form, "refresh_token"), "old rt+&=");
	assert_string_equal(form_value(fake.form, "scope"),
			    "https://ml.azure.com/.default offline_access");
	assert_string_equal(form_value(fake.form, "claims"),
			    "{\"access_token\":{\"acrs\":{\"essential\":true,\"value\":\"c1\"}}}");
	assert_string_equal(form_value(fake.form, "client_info"), "1");
	assert_string_equal(tok.access_token, "new-at");
	assert_string_equal(tok.refresh_token, "new-rt");
	assert_int_equal(tok.expires_on, NOW + 4000);
	entra_token_response_free(&tok);

	/* No claims: no claims field at all. */
	memset(fake.form, 0, sizeof(fake.form));
	assert_int_equal(entra_token_refresh((struct entra_http *)&dummy, "https://idp.test/token",
					     "client-1", "rt", "s", NULL, NOW, &tok, &err),
			 ENTRA_TOKEN_OK);
	assert_null(form_value(fake.form, "claims"));
	assert_string_equal(form_value(fake.form, "client_info"), "1");
	entra_token_response_free(&tok);
}

static void test_refresh_error(void **state)
{
	struct entra_token_response tok;
	struct entra_oauth_error err;
	int dummy;

	(void)state;
	fake.status = 400;
	fake.body = "{\"error\":\"invalid_grant\",\"error_description\":\"AADSTS700082: The "
		    "refresh token has expired due to inactivity.\",\"error_codes\":[700082]}";
	assert_int_equal(entra_token_refresh((struct entra_http *)&dummy, "https://idp.test/token",
					     "c", "rt", "s", NULL, NOW, &tok, &err),
			 ENTRA_TOKEN_ERROR);
	assert_string_equal(err.error, "invalid_grant");
	assert_non_null(strstr(entra_oauth_error_message(&err), "Log in again"));
	assert_null(tok.access_token);
	entra_oauth_error_free(&err);
}

static void test_refresh_transport(void **state)
{
	struct entra_token_response tok;
	struct entra_oauth_error err;
	int dummy;

	(void)state;
	fake.rc = -ECONNREFUSED;
	assert_int_equal(entra_token_refresh((struct entra_http *)&dummy, "https://idp.test/token",
					     "c", "rt", "s", NULL, NOW, &tok, &err),
			 ENTRA_TOKEN_MALFORMED);
	assert_null(tok.access_token);
	assert_null(err.error);
	fake.rc = 0;
	fake.status = 502;
	fake.body = "<html>bad gateway</html>";
	assert_int_equal(entra_token_refresh((struct entra_http *)&dummy, "https://idp.test/token",
					     "c", "rt", "s", NULL, NOW, &tok, &err),
			 ENTRA_TOKEN_MALFORMED);
	/* Refused before any request: no refresh token, no endpoint. */
	fake.calls = 0;
	assert_int_equal(entra_token_refresh((struct entra_http *)&dummy, "https://idp.test/token",
					     "c", "", "s", NULL, NOW, &tok, &err),
			 ENTRA_TOKEN_MALFORMED);
	assert_int_equal(entra_token_refresh((struct entra_http *)&dummy, NULL, "c", "rt", "s",
					     NULL, NOW, &tok, &err), ENTRA_TOKEN_MALFORMED);
	assert_int_equal(fake.calls, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_parse_full, setup),
		cmocka_unit_test_setup(test_parse_string_expiry, setup),
		cmocka_unit_test_setup(test_parse_bad_expiry, setup),
		cmocka_unit_test_setup(test_parse_error_any_status, setup),
		cmocka_unit_test_setup(test_parse_missing_fields, setup),
		cmocka_unit_test_setup(test_parse_not_json, setup),
		cmocka_unit_test_setup(test_refresh_form, setup),
		cmocka_unit_test_setup(test_refresh_error, setup),
		cmocka_unit_test_setup(test_refresh_transport, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
