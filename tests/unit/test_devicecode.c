/* Unit tests for lib/devicecode.c. The HTTP layer and the monotonic clock
 * are replaced by a scripted fake defined here (this program does not
 * link lib/http.c): each request takes the next canned answer, the clock
 * only moves when the flow sleeps, so schedules are checked exactly. */
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
#include "devicecode.h"
#include "http.h"
#include "oauth_fake_http.h"

#define DEVICE_CODE "FAQABAAEAAAAm-06-SECRET-DEVICE-CODE"
#define ACCESS_TOKEN "eyJ-ACCESS-TOKEN-SECRET"
#define REFRESH_TOKEN "1.AX-REFRESH-TOKEN-SECRET"
#define DEVICE_ENDPOINT "https://idp.test/tenant/oauth2/v2.0/devicecode"
#define TOKEN_ENDPOINT "https://idp.test/tenant/oauth2/v2.0/token"
#define START_MS 1000000

/* The Entra sample of PROTOCOL.md §1b. */
static const char entra_sample[] =
	"{\"user_code\":\"FRWQDE7YL\",\"device_code\":\"" DEVICE_CODE "\","
	"\"verification_uri\":\"https://microsoft.com/devicelogin\","
	"\"expires_in\":900,\"interval\":5,"
	"\"message\":\"To sign in, use a web browser to open the page "
	"https://microsoft.com/devicelogin and enter the code FRWQDE7YL to authenticate.\"}";

static const char token_ok[] =
	"{\"token_type\":\"Bearer\",\"scope\":\"https://management.azure.com/user_impersonation\","
	"\"expires_in\":3599,\"access_token\":\"" ACCESS_TOKEN "\","
	"\"refresh_token\":\"" REFRESH_TOKEN "\",\"id_token\":\"eyJ.id.sig\"}";

static const char pending[] =
	"{\"error\":\"authorization_pending\",\"error_description\":\"AADSTS70016: OAuth 2.0 "
	"device flow error. Authorization is pending.\",\"error_codes\":[70016]}";
static const char slow_down[] = "{\"error\":\"slow_down\"}";

/* ---- fake HTTP layer and clock ---- */

struct step {
	int rc;            /* < 0: transport failure */
	long status;
	const char *body;
	long retry_after;  /* seconds, 0: none */
};

#define MAX_STEPS 32
#define MAX_SLEEPS 64

static struct {
	struct step steps[MAX_STEPS];
	unsigned nsteps;
	unsigned calls;
	char url[MAX_STEPS][256];
	char form[MAX_STEPS][4096];
	unsigned sleeps_before[MAX_STEPS]; /* sleeps done when request i went out */
	int64_t time_of[MAX_STEPS];        /* clock when request i went out */
	int64_t now_ms;
	int64_t latency_ms;                /* each request takes this long */
	int64_t deadline_ms;
	int deadline_set;
	int64_t sleeps[MAX_SLEEPS];
	unsigned nsleeps;
	int prompt_rc;
	unsigned prompts;
	int64_t prompt_think_ms;           /* the person takes this long to press Enter */
	char prompt_text[16384];
	char log[16384];
} fake;

int64_t entra_monotonic_ms(void)
{
	return fake.now_ms;
}

void entra_http_set_deadline(struct entra_http *http, int64_t deadline_ms)
{
	(void)http;
	fake.deadline_ms = deadline_ms;
	fake.deadline_set = 1;
}

int entra_http_post_form(struct entra_http *http, const char *url, const char *form,
			 const char *const *headers, struct entra_http_response *resp)
{
	const struct step *s;
	unsigned i = fake.calls++;

	(void)http;
	(void)headers;
	memset(resp, 0, sizeof(*resp));
	entra_buf_init(&resp->body, ENTRA_HTTP_MAX_BODY);
	resp->retry_after = -1;
	assert_true(i < fake.nsteps);
	snprintf(fake.url[i], sizeof(fake.url[i]), "%s", url);
	snprintf(fake.form[i], sizeof(fake.form[i]), "%s", form);
	fake.sleeps_before[i] = fake.nsleeps;
	fake.time_of[i] = fake.now_ms;
	fake.now_ms += fake.latency_ms;
	s = &fake.steps[i];
	if (s->rc < 0)
		return s->rc;
	resp->status = s->status;
	if (s->retry_after > 0)
		resp->retry_after = s->retry_after;
	assert_int_equal(entra_buf_append_str(&resp->body, s->body), 0);
	return 0;
}

static void script(const struct step *steps, unsigned n)
{
	assert_true(n <= MAX_STEPS);
	memcpy(fake.steps, steps, n * sizeof(*steps));
	fake.nsteps = n;
}

static int hook_prompt(void *host, const char *text)
{
	(void)host;
	fake.prompts++;
	snprintf(fake.prompt_text, sizeof(fake.prompt_text), "%s", text);
	fake.now_ms += fake.prompt_think_ms;
	return fake.prompt_rc;
}

static void hook_sleep(void *host, int64_t ms)
{
	(void)host;
	assert_true(ms > 0);
	assert_true(fake.nsleeps < MAX_SLEEPS);
	fake.sleeps[fake.nsleeps++] = ms;
	fake.now_ms += ms;
}

static void log_emit(void *host, int priority, const char *line)
{
	size_t used = strlen(fake.log);

	(void)host;
	(void)priority;
	snprintf(fake.log + used, sizeof(fake.log) - used, "%s\n", line);
}

static const struct entra_log test_log = { log_emit, NULL, true };
static const struct entra_device_hooks hooks = { hook_prompt, hook_sleep, NULL, NULL };
static const struct entra_oidc_metadata md = {
	.issuer = (char *)"https://idp.test/tenant/v2.0",
	.token_endpoint = (char *)TOKEN_ENDPOINT,
	.device_authorization_endpoint = (char *)DEVICE_ENDPOINT,
	.jwks_uri = (char *)"https://idp.test/tenant/keys",
};

static int setup(void **state)
{
	(void)state;
	memset(&fake, 0, sizeof(fake));
	fake.now_ms = START_MS;
	return 0;
}

static enum entra_device_result run(int64_t deadline_ms, const char *claims,
				    struct entra_token_response *tok,
				    struct entra_oauth_error *err)
{
	int dummy;
	enum entra_device_result r;

	r = entra_device_flow_run((struct entra_http *)&dummy, &md, "client-guid",
				  "https://management.azure.com/.default openid profile offline_access",
				  claims, "node1.example", "alice@contoso.com", false,
				  deadline_ms, &hooks, &test_log, tok, err);
	/* Whatever happened, no secret reached the log. */
	assert_null(strstr(fake.log, DEVICE_CODE));
	assert_null(strstr(fake.log, ACCESS_TOKEN));
	assert_null(strstr(fake.log, REFRESH_TOKEN));
	assert_null(strstr(fake.log, "FRWQDE7YL"));
	return r;
}

/* ---- parsing ---- */

static int parse(long status, const char *body, struct entra_device_authorization *da,
		 struct entra_oauth_error *err)
{
	return entra_device_authorization_parse(status, body, strlen(body), da, err);
}

static void test_parse_entra_sample(void **state)
{
	struct entra_device_authorization da;
	struct entra_oauth_error err;

	(void)state;
	assert_int_equal(parse(200, entra_sample, &da, &err), 0);
	assert_string_equal(da.device_code, DEVICE_CODE);
	assert_string_equal(da.user_code, "FRWQDE7YL");
	assert_string_equal(da.verification_uri, "https://microsoft.com/devicelogin");
	assert_null(da.verification_uri_complete);
	assert_non_null(strstr(da.message, "FRWQDE7YL"));
	assert_int_equal(da.expires_in, 900);
	assert_int_equal(da.interval, 5);
	assert_null(err.error);
	entra_device_authorization_free(&da);
	assert_null(da.device_code);
}

static void test_parse_variants(void **state)
{
	struct entra_device_authorization da;
	struct entra_oauth_error err;

	(void)state;
	/* String interval and expires_in (MSAL Python accepts them). */
	assert_int_equal(parse(200, "{\"device_code\":\"d\",\"user_code\":\"U\","
			       "\"verification_uri\":\"https://x.test/dl\",\"interval\":\"7\","
			       "\"expires_in\":\"600\"}", &da, &err), 0);
	assert_int_equal(da.interval, 7);
	assert_int_equal(da.expires_in, 600);
	assert_null(da.message);
	entra_device_authorization_free(&da);

	/* Missing interval and expires_in: RFC 8628 default 5, ours 900;
	 * verification_url alias; verification_uri_complete kept. */
	assert_int_equal(parse(200, "{\"device_code\":\"d\",\"user_code\":\"U\","
			       "\"verification_url\":\"https://x.test/dl\","
			       "\"verification_uri_complete\":\"https://x.test/dl?code=U\"}",
			       &da, &err), 0);
	assert_int_equal(da.interval, ENTRA_DEVICE_DEFAULT_INTERVAL);
	assert_int_equal(da.interval, 5);
	assert_int_equal(da.expires_in, ENTRA_DEVICE_DEFAULT_EXPIRES);
	assert_string_equal(da.verification_uri, "https://x.test/dl");
	assert_string_equal(da.verification_uri_complete, "https://x.test/dl?code=U");
	entra_device_authorization_free(&da);

	/* Empty optional strings count as absent. */
	assert_int_equal(parse(201, "{\"device_code\":\"d\",\"user_code\":\"U\","
			       "\"verification_uri\":\"https://x.test/dl\",\"message\":\"\","
			       "\"verification_uri_complete\":\"\"}", &da, &err), 0);
	assert_null(da.message);
	assert_null(da.verification_uri_complete);
	entra_device_authorization_free(&da);
}

static void test_parse_error_body(void **state)
{
	static const long statuses[] = { 200, 400, 401 };
	struct entra_device_authorization da;
	struct entra_oauth_error err;

	(void)state;
	for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
		assert_int_equal(parse(statuses[i], "{\"error\":\"unauthorized_client\","
				       "\"error_description\":\"AADSTS7000218: The request body must "
				       "contain client_assertion or client_secret.\","
				       "\"error_codes\":[7000218],\"device_code\":\"d\","
				       "\"user_code\":\"U\",\"verification_uri\":\"https://x.test\"}",
				       &da, &err), -EPROTO);
		assert_string_equal(err.error, "unauthorized_client");
		assert_int_equal(err.codes[0], 7000218);
		assert_null(da.device_code);
		entra_oauth_error_free(&err);
	}
}

static void test_parse_malformed(void **state)
{
	static const struct {
		long status;
		const char *body;
	} cases[] = {
		/* non-2xx without an error */
		{ 500, "{\"device_code\":\"d\",\"user_code\":\"U\",\"verification_uri\":\"https://x.test\"}" },
		/* not JSON / not an object */
		{ 200, "<html></html>" },
		{ 200, "[1,2]" },
		{ 200, "" },
		/* missing fields */
		{ 200, "{\"user_code\":\"U\",\"verification_uri\":\"https://x.test\"}" },
		{ 200, "{\"device_code\":\"d\",\"verification_uri\":\"https://x.test\"}" },
		{ 200, "{\"device_code\":\"d\",\"user_code\":\"U\"}" },
		{ 200, "{\"device_code\":\"\",\"user_code\":\"U\",\"verification_uri\":\"https://x.test\"}" },
		/* not https */
		{ 200, "{\"device_code\":\"d\",\"user_code\":\"U\",\"verification_uri\":\"http://x.test\"}" },
		{ 200, "{\"device_code\":\"d\",\"user_code\":\"U\",\"verification_uri\":\"javascript:alert(1)\"}" },
		{ 200, "{\"device_code\":\"d\",\"user_code\":\"U\",\"verification_uri\":\"https://\"}" },
		{ 200, "{\"device_code\":\"d\",\"user_code\":\"U\",\"verification_uri\":\"https://x.test\","
		       "\"verification_uri_complete\":\"http://evil.test\"}" },
		/* control characters */
		{ 200, "{\"device_code\":\"d\",\"user_code\":\"U\\u001b[2J\",\"verification_uri\":\"https://x.test\"}" },
		{ 200, "{\"device_code\":\"d\",\"user_code\":\"U\",\"verification_uri\":\"https://x.test\\n\"}" },
		{ 200, "{\"device_code\":\"d\\r\",\"user_code\":\"U\",\"verification_uri\":\"https://x.test\"}" },
		{ 200, "{\"device_code\":\"d\",\"user_code\":\"U\",\"verification_uri\":\"https://x.test\","
		       "\"message\":\"line\\nline\"}" },
		/* wrong types and nonsense numbers */
		{ 200, "{\"device_code\":1,\"user_code\":\"U\",\"verification_uri\":\"https://x.test\"}" },
		{ 200, "{\"device_code\":\"d\",\"user_code\":\"U\",\"verification_uri\":\"https://x.test\",\"interval\":0}" },
		{ 200, "{\"device_code\":\"d\",\"user_code\":\"U\",\"verification_uri\":\"https://x.test\",\"interval\":-1}" },
		{ 200, "{\"device_code\":\"d\",\"user_code\":\"U\",\"verification_uri\":\"https://x.test\",\"interval\":\"soon\"}" },
		{ 200, "{\"device_code\":\"d\",\"user_code\":\"U\",\"verification_uri\":\"https://x.test\",\"interval\":100000}" },
		{ 200, "{\"device_code\":\"d\",\"user_code\":\"U\",\"verification_uri\":\"https://x.test\",\"expires_in\":0}" },
		{ 200, "{\"device_code\":\"d\",\"user_code\":\"U\",\"verification_uri\":\"https://x.test\",\"expires_in\":[]}" },
		/* overlong user code */
		{ 200, "{\"device_code\":\"d\",\"user_code\":\"UUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUU\","
		       "\"verification_uri\":\"https://x.test\"}" },
		/* "error" of the wrong type */
		{ 200, "{\"error\":1,\"device_code\":\"d\",\"user_code\":\"U\",\"verification_uri\":\"https://x.test\"}" },
	};
	struct entra_device_authorization da;
	struct entra_oauth_error err;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = parse(cases[i].status, cases[i].body, &da, &err);

		if (rc != -EINVAL)
			fail_msg("case %zu (%s): rc %d", i, cases[i].body, rc);
		assert_null(da.device_code);
		assert_null(da.user_code);
		assert_null(err.error);
	}
}

/* ---- schedule ---- */

static struct entra_oauth_error error_named(const char *name)
{
	struct entra_oauth_error err;

	memset(&err, 0, sizeof(err));
	err.error = (char *)name;
	return err;
}

static void test_schedule_pending_and_slow_down(void **state)
{
	struct entra_device_authorization da = { .interval = 5, .expires_in = 900 };
	struct entra_oauth_error pend = error_named("authorization_pending");
	struct entra_oauth_error slow = error_named("slow_down");
	struct entra_device_poll poll;

	(void)state;
	entra_device_poll_init(&poll, &da, 1000, 0);
	assert_int_equal(poll.next_poll_ms, 1000);     /* first poll at once */
	assert_int_equal(poll.interval_ms, 5000);
	assert_int_equal(poll.expires_at_ms, 901000);

	assert_int_equal(entra_device_poll_after_error(&poll, &pend, 2000), ENTRA_POLL_AGAIN);
	assert_int_equal(poll.next_poll_ms, 7000);
	assert_int_equal(entra_device_poll_after_error(&poll, &slow, 7000), ENTRA_POLL_AGAIN);
	assert_int_equal(poll.interval_ms, 10000);
	assert_int_equal(poll.next_poll_ms, 17000);
	assert_int_equal(entra_device_poll_after_error(&poll, &slow, 17000), ENTRA_POLL_AGAIN);
	assert_int_equal(poll.interval_ms, 15000);      /* accumulates */
	assert_int_equal(entra_device_poll_after_error(&poll, &pend, 32000), ENTRA_POLL_AGAIN);
	assert_int_equal(poll.interval_ms, 15000);      /* for good */
	assert_int_equal(poll.next_poll_ms, 47000);
	assert_int_equal(poll.polls, 4);
}

static void test_schedule_final(void **state)
{
	static const char *const finals[] = {
		"authorization_declined", "access_denied", "expired_token",
		"bad_verification_code", "invalid_grant", "invalid_client",
		"unauthorized_client", "invalid_request", "invalid_scope",
		"interaction_required", "temporarily_unavailable", "Authorization_Pending", "",
	};
	struct entra_device_authorization da = { .interval = 5, .expires_in = 900 };
	struct entra_device_poll poll;

	(void)state;
	for (size_t i = 0; i < sizeof(finals) / sizeof(finals[0]); i++) {
		struct entra_oauth_error err = error_named(finals[i]);

		entra_device_poll_init(&poll, &da, 0, 0);
		assert_int_equal(entra_device_poll_after_error(&poll, &err, 0),
				 ENTRA_POLL_FINAL_ERROR);
	}
	entra_device_poll_init(&poll, &da, 0, 0);
	assert_int_equal(entra_device_poll_after_error(&poll, NULL, 0), ENTRA_POLL_FINAL_ERROR);
}

static void test_schedule_expiry_and_deadline(void **state)
{
	struct entra_device_authorization da = { .interval = 5, .expires_in = 20 };
	struct entra_oauth_error pend = error_named("authorization_pending");
	struct entra_oauth_error slow = error_named("slow_down");
	struct entra_device_poll poll;

	(void)state;
	/* Code expiry: expires at 20 000. */
	entra_device_poll_init(&poll, &da, 0, 0);
	assert_int_equal(entra_device_poll_after_error(&poll, &pend, 10000), ENTRA_POLL_AGAIN);
	assert_int_equal(entra_device_poll_after_error(&poll, &pend, 14999), ENTRA_POLL_AGAIN);
	assert_int_equal(entra_device_poll_after_error(&poll, &pend, 15000), ENTRA_POLL_TIMED_OUT);
	entra_device_poll_init(&poll, &da, 0, 0);
	assert_int_equal(entra_device_poll_after_error(&poll, &slow, 10000), ENTRA_POLL_TIMED_OUT);

	/* Local deadline before expiry. */
	da.expires_in = 900;
	entra_device_poll_init(&poll, &da, 0, 12000);
	assert_int_equal(entra_device_poll_after_error(&poll, &pend, 6000), ENTRA_POLL_AGAIN);
	assert_int_equal(entra_device_poll_after_error(&poll, &pend, 7000), ENTRA_POLL_TIMED_OUT);
	/* Deadline 0: none. */
	entra_device_poll_init(&poll, &da, 0, 0);
	assert_int_equal(entra_device_poll_after_error(&poll, &pend, 800000), ENTRA_POLL_AGAIN);
}

/* ---- the flow ---- */

static void assert_token_poll(unsigned i, const char *claims)
{
	assert_string_equal(fake.url[i], TOKEN_ENDPOINT);
	assert_string_equal(form_value(fake.form[i], "grant_type"),
			    "urn:ietf:params:oauth:grant-type:device_code");
	assert_string_equal(form_value(fake.form[i], "client_id"), "client-guid");
	assert_string_equal(form_value(fake.form[i], "device_code"), DEVICE_CODE);
	assert_string_equal(form_value(fake.form[i], "client_info"), "1");
	if (claims != NULL)
		assert_string_equal(form_value(fake.form[i], "claims"), claims);
	else
		assert_null(form_value(fake.form[i], "claims"));
}

static void test_flow_approved_first_poll(void **state)
{
	static const char claims[] = "{\"access_token\":{\"acrs\":{\"essential\":true,\"value\":\"c1\"}}}";
	const struct step steps[] = {
		{ 0, 200, entra_sample, 0 },
		{ 0, 200, token_ok, 0 },
	};
	struct entra_token_response tok;
	struct entra_oauth_error err;

	(void)state;
	script(steps, 2);
	fake.prompt_think_ms = 30000;
	assert_int_equal(run(START_MS + 600000, claims, &tok, &err), ENTRA_DEVICE_OK);
	assert_int_equal(fake.calls, 2);
	assert_int_equal(fake.prompts, 1);
	assert_true(fake.deadline_set);
	assert_int_equal(fake.deadline_ms, START_MS + 600000);
	/* The device code request. */
	assert_string_equal(fake.url[0], DEVICE_ENDPOINT);
	assert_string_equal(form_value(fake.form[0], "client_id"), "client-guid");
	assert_string_equal(form_value(fake.form[0], "scope"),
			    "https://management.azure.com/.default openid profile offline_access");
	assert_string_equal(form_value(fake.form[0], "claims"), claims);
	assert_null(form_value(fake.form[0], "device_code"));
	/* The first poll went out right after Enter, with no sleep. */
	assert_int_equal(fake.sleeps_before[1], 0);
	assert_int_equal(fake.nsleeps, 0);
	assert_int_equal(fake.time_of[1], START_MS + 30000);
	assert_token_poll(1, claims);
	assert_string_equal(tok.access_token, ACCESS_TOKEN);
	assert_string_equal(tok.refresh_token, REFRESH_TOKEN);
	assert_string_equal(tok.id_token, "eyJ.id.sig");
	assert_null(err.error);
	entra_token_response_free(&tok);
}

static void test_flow_pending_then_success(void **state)
{
	const struct step steps[] = {
		{ 0, 200, entra_sample, 0 },
		{ 0, 400, pending, 0 },
		{ 0, 400, pending, 0 },
		{ 0, 400, pending, 0 },
		{ 0, 200, token_ok, 0 },
	};
	struct entra_token_response tok;
	struct entra_oauth_error err;

	(void)state;
	script(steps, 5);
	assert_int_equal(run(START_MS + 600000, NULL, &tok, &err), ENTRA_DEVICE_OK);
	assert_int_equal(fake.calls, 5);
	assert_int_equal(fake.nsleeps, 3);
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(fake.sleeps[i], 5000);
	for (unsigned i = 1; i < 5; i++)
		assert_token_poll(i, NULL);
	assert_int_equal(fake.time_of[4] - fake.time_of[1], 15000);
	assert_non_null(strstr(fake.log, "authorization_pending"));
	entra_token_response_free(&tok);
}

static void test_flow_slow_down(void **state)
{
	const struct step steps[] = {
		{ 0, 200, entra_sample, 0 },
		{ 0, 400, slow_down, 0 },
		{ 0, 400, pending, 0 },
		{ 0, 400, slow_down, 0 },
		{ 0, 200, token_ok, 0 },
	};
	struct entra_token_response tok;
	struct entra_oauth_error err;

	(void)state;
	script(steps, 5);
	assert_int_equal(run(START_MS + 600000, NULL, &tok, &err), ENTRA_DEVICE_OK);
	assert_int_equal(fake.nsleeps, 3);
	assert_int_equal(fake.sleeps[0], 10000);
	assert_int_equal(fake.sleeps[1], 10000); /* the slower pace stays */
	assert_int_equal(fake.sleeps[2], 15000);
	entra_token_response_free(&tok);
}

static void expect_final(const char *body, long status, const char *error, long code)
{
	const struct step steps[] = {
		{ 0, 200, entra_sample, 0 },
		{ 0, 400, pending, 0 },
		{ 0, status, body, 0 },
	};
	struct entra_token_response tok;
	struct entra_oauth_error err;

	script(steps, 3);
	assert_int_equal(run(START_MS + 600000, NULL, &tok, &err), ENTRA_DEVICE_IDP_ERROR);
	assert_int_equal(fake.calls, 3);
	assert_null(tok.access_token);
	assert_string_equal(err.error, error);
	if (code != 0) {
		assert_int_equal(err.code_count, 1);
		assert_int_equal(err.codes[0], code);
	}
	/* The final outcome is logged with its reason. */
	assert_non_null(strstr(fake.log, "error="));
	assert_non_null(strstr(fake.log, error));
	entra_oauth_error_free(&err);
}

static void test_flow_declined(void **state)
{
	(void)state;
	expect_final("{\"error\":\"authorization_declined\",\"error_description\":\"AADSTS70000: "
		     "The user declined.\"}", 400, "authorization_declined", 70000);
}

static void test_flow_expired(void **state)
{
	(void)state;
	expect_final("{\"error\":\"expired_token\",\"error_codes\":[70019]}", 400,
		     "expired_token", 70019);
}

static void test_flow_bad_verification_code(void **state)
{
	(void)state;
	expect_final("{\"error\":\"bad_verification_code\",\"error_codes\":[70018]}", 400,
		     "bad_verification_code", 70018);
}

static void test_flow_conditional_access(void **state)
{
	(void)state;
	/* An error with a 200 status is still an error. */
	expect_final("{\"error\":\"invalid_grant\",\"error_codes\":[53003],"
		     "\"trace_id\":\"0b7e3c1a-5d2f-4e6a-9c8b-1a2b3c4d5e6f\"}", 200,
		     "invalid_grant", 53003);
}

static void test_flow_transient_then_success(void **state)
{
	const struct step steps[] = {
		{ 0, 200, entra_sample, 0 },
		{ 0, 500, "<html>Internal Server Error</html>", 0 },
		{ -ECONNREFUSED, 0, NULL, 0 },
		{ 0, 400, pending, 0 },
		{ 0, 503, "", 12 },
		{ 0, 200, token_ok, 0 },
	};
	struct entra_token_response tok;
	struct entra_oauth_error err;

	(void)state;
	script(steps, 6);
	assert_int_equal(run(START_MS + 600000, NULL, &tok, &err), ENTRA_DEVICE_OK);
	assert_int_equal(fake.calls, 6);
	assert_int_equal(fake.nsleeps, 4);
	assert_int_equal(fake.sleeps[0], 5000);
	assert_int_equal(fake.sleeps[1], 5000);
	assert_int_equal(fake.sleeps[2], 5000);
	assert_int_equal(fake.sleeps[3], 12000); /* Retry-After honoured */
	entra_token_response_free(&tok);
}

static void test_flow_repeated_transport_failures(void **state)
{
	const struct step steps[] = {
		{ 0, 200, entra_sample, 0 },
		{ -ETIMEDOUT, 0, NULL, 0 },
		{ 0, 502, "bad gateway", 0 },
		{ -ECONNREFUSED, 0, NULL, 0 },
	};
	struct entra_token_response tok;
	struct entra_oauth_error err;

	(void)state;
	script(steps, 4);
	assert_int_equal(run(START_MS + 600000, NULL, &tok, &err), ENTRA_DEVICE_UNAVAILABLE);
	assert_int_equal(fake.calls, 4);
	assert_null(tok.access_token);
	assert_null(err.error);
	assert_non_null(strstr(fake.log, "giving up"));
}

static void test_flow_hard_failures(void **state)
{
	/* A TLS failure or a malformed 200 ends the flow at once. */
	const struct step tls[] = {
		{ 0, 200, entra_sample, 0 },
		{ -EPROTO, 0, NULL, 0 },
	};
	const struct step malformed[] = {
		{ 0, 200, entra_sample, 0 },
		{ 0, 200, "{\"token_type\":\"Bearer\"}", 0 },
	};
	const struct step devicecode_down[] = {
		{ -ECONNREFUSED, 0, NULL, 0 },
	};
	const struct step devicecode_garbage[] = {
		{ 0, 200, "<html>captive portal</html>", 0 },
	};
	struct entra_token_response tok;
	struct entra_oauth_error err;

	(void)state;
	script(tls, 2);
	assert_int_equal(run(START_MS + 600000, NULL, &tok, &err), ENTRA_DEVICE_UNAVAILABLE);
	assert_int_equal(fake.calls, 2);

	setup(NULL);
	script(malformed, 2);
	assert_int_equal(run(START_MS + 600000, NULL, &tok, &err), ENTRA_DEVICE_UNAVAILABLE);
	assert_int_equal(fake.calls, 2);
	assert_null(tok.access_token);

	setup(NULL);
	script(devicecode_down, 1);
	assert_int_equal(run(START_MS + 600000, NULL, &tok, &err), ENTRA_DEVICE_UNAVAILABLE);
	assert_int_equal(fake.prompts, 0);

	setup(NULL);
	script(devicecode_garbage, 1);
	assert_int_equal(run(START_MS + 600000, NULL, &tok, &err), ENTRA_DEVICE_UNAVAILABLE);
	assert_int_equal(fake.prompts, 0);
}

static void test_flow_devicecode_refused(void **state)
{
	const struct step steps[] = {
		{ 0, 400, "{\"error\":\"unauthorized_client\",\"error_codes\":[7000218],"
			  "\"error_description\":\"AADSTS7000218: ...\"}", 0 },
	};
	struct entra_token_response tok;
	struct entra_oauth_error err;

	(void)state;
	script(steps, 1);
	assert_int_equal(run(START_MS + 600000, NULL, &tok, &err), ENTRA_DEVICE_IDP_ERROR);
	assert_int_equal(fake.prompts, 0);
	assert_int_equal(err.codes[0], 7000218);
	assert_non_null(strstr(entra_oauth_error_message(&err), "Allow public client flows"));
	entra_oauth_error_free(&err);
}

static void test_flow_no_conversation(void **state)
{
	const struct step steps[] = {
		{ 0, 200, entra_sample, 0 },
	};
	struct entra_token_response tok;
	struct entra_oauth_error err;

	(void)state;
	script(steps, 1);
	fake.prompt_rc = -1;
	assert_int_equal(run(START_MS + 600000, NULL, &tok, &err), ENTRA_DEVICE_NO_CONVERSATION);
	assert_int_equal(fake.calls, 1);   /* zero token polls */
	assert_int_equal(fake.prompts, 1);
	assert_int_equal(fake.nsleeps, 0);
	assert_null(tok.access_token);
	assert_null(err.error);
}

static void test_flow_deadline(void **state)
{
	struct step steps[MAX_STEPS];
	struct entra_token_response tok;
	struct entra_oauth_error err;

	(void)state;
	steps[0] = (struct step){ 0, 200, entra_sample, 0 };
	for (unsigned i = 1; i < MAX_STEPS; i++)
		steps[i] = (struct step){ 0, 400, pending, 0 };
	script(steps, MAX_STEPS);
	/* Polls at +0, +5, +10, +15 s; the one at +20 s would reach the deadline. */
	assert_int_equal(run(START_MS + 20000, NULL, &tok, &err), ENTRA_DEVICE_TIMED_OUT);
	assert_int_equal(fake.calls, 5);
	assert_true(fake.now_ms <= START_MS + 20000);
	assert_null(err.error);
	assert_null(tok.access_token);
	assert_non_null(strstr(fake.log, "timed out"));

	/* A deadline already past: not even a device code is requested. */
	setup(NULL);
	script(steps, MAX_STEPS);
	assert_int_equal(run(START_MS, NULL, &tok, &err), ENTRA_DEVICE_TIMED_OUT);
	assert_int_equal(fake.calls, 0);
	assert_int_equal(fake.prompts, 0);
}

static void test_flow_code_expiry(void **state)
{
	static const char short_code[] =
		"{\"user_code\":\"FRWQDE7YL\",\"device_code\":\"" DEVICE_CODE "\","
		"\"verification_uri\":\"https://microsoft.com/devicelogin\","
		"\"expires_in\":12,\"interval\":5}";
	struct step steps[MAX_STEPS];
	struct entra_token_response tok;
	struct entra_oauth_error err;

	(void)state;
	steps[0] = (struct step){ 0, 200, short_code, 0 };
	for (unsigned i = 1; i < MAX_STEPS; i++)
		steps[i] = (struct step){ 0, 400, pending, 0 };
	script(steps, MAX_STEPS);
	/* Polls at +0, +5, +10; +15 is past the code's 12 s. */
	assert_int_equal(run(0, NULL, &tok, &err), ENTRA_DEVICE_TIMED_OUT);
	assert_int_equal(fake.calls, 4);

	/* Enter pressed after the code expired: no poll at all. */
	setup(NULL);
	script(steps, MAX_STEPS);
	fake.prompt_think_ms = 13000;
	assert_int_equal(run(0, NULL, &tok, &err), ENTRA_DEVICE_TIMED_OUT);
	assert_int_equal(fake.calls, 1);
}

/* ---- prompt text ---- */

static void test_prompt_text(void **state)
{
	struct entra_device_authorization da = {
		.device_code = (char *)DEVICE_CODE,
		.user_code = (char *)"FRWQDE7YL",
		.verification_uri = (char *)"https://microsoft.com/devicelogin",
		.expires_in = 900,
		.interval = 5,
	};
	/* 2023-11-14 13:50:00 UTC + 900 s = 14:05. */
	time_t now = 1699969800;
	char *t;

	(void)state;
	t = entra_device_prompt_text(&da, "node1.example", "alice@contoso.com", false, now);
	assert_non_null(t);
	assert_non_null(strstr(t, "Microsoft Entra sign-in for alice@contoso.com on node1.example\n"));
	assert_non_null(strstr(t, "open https://microsoft.com/devicelogin\n"));
	assert_non_null(strstr(t, "enter the code FRWQDE7YL (valid until 14:05 UTC)."));
	assert_non_null(strstr(t, "Only enter this code if YOU started this login to "
				  "alice@contoso.com on node1.example."));
	assert_non_null(strstr(t, "Never enter a code someone sent you."));
	assert_non_null(strstr(t, "Press Enter after you have signed in: "));
	assert_string_equal(t + strlen(t) - strlen("signed in: "), "signed in: ");
	assert_null(strstr(t, DEVICE_CODE));
	/* No QR code when it is off. */
	assert_null(strstr(t, "\xe2\x96"));
	free(t);

	/* Hostile names cannot inject terminal control sequences or lines. */
	t = entra_device_prompt_text(&da, "evil\n\x1b[2J", NULL, false, now);
	assert_non_null(t);
	assert_null(strstr(t, "\x1b"));
	assert_non_null(strstr(t, "for this account on evil??[2J\n"));
	free(t);

	assert_null(entra_device_prompt_text(NULL, "h", "a", false, now));
}

static void test_prompt_qr(void **state)
{
	struct entra_device_authorization da = {
		.user_code = (char *)"FRWQDE7YL",
		.verification_uri = (char *)"https://microsoft.com/devicelogin",
		.expires_in = 900,
		.interval = 5,
	};
	char *off, *on, *complete;

	(void)state;
	off = entra_device_prompt_text(&da, "h", "a", false, 0);
	on = entra_device_prompt_text(&da, "h", "a", true, 0);
	da.verification_uri_complete = (char *)"https://microsoft.com/devicelogin?otc=FRWQDE7YL";
	complete = entra_device_prompt_text(&da, "h", "a", true, 0);
	assert_non_null(off);
	assert_non_null(on);
	assert_non_null(complete);
	assert_null(strstr(off, "\xe2\x96\x88"));
#ifdef HAVE_QRENCODE
	{
		const char *first, *p;
		size_t lines = 0, width = 0, cells;

		/* Blocks drawn, between the code line and the warning. */
		first = strstr(on, "\xe2\x96\x88");
		assert_non_null(first);
		assert_true(first > strstr(on, "FRWQDE7YL"));
		assert_true(first < strstr(on, "Only enter"));
		/* A square: width in cells = 2 * lines - (1 when odd). */
		for (p = first; *p != '\n'; )
			p += (*p == ' ') ? 1 : 3, width++;
		for (p = first; p != NULL && (*p == ' ' || (unsigned char)*p == 0xe2); lines++) {
			p = strchr(p, '\n');
			p = p ? p + 1 : NULL;
		}
		cells = 2 * lines;
		assert_true(cells == width || cells == width + 1);
		/* Version 2 code (25 modules) plus a 2-module quiet zone each side. */
		assert_true(width >= 25);
		assert_non_null(strstr(on, "scan this QR code to open the page.\n"));
		/* The complete URI makes another, larger code. */
		assert_true(strlen(complete) > strlen(on));
		assert_non_null(strstr(complete, "code filled in"));
	}
#else
	assert_null(strstr(on, "\xe2\x96\x88"));
#endif
	free(off);
	free(on);
	free(complete);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_parse_entra_sample, setup),
		cmocka_unit_test_setup(test_parse_variants, setup),
		cmocka_unit_test_setup(test_parse_error_body, setup),
		cmocka_unit_test_setup(test_parse_malformed, setup),
		cmocka_unit_test_setup(test_schedule_pending_and_slow_down, setup),
		cmocka_unit_test_setup(test_schedule_final, setup),
		cmocka_unit_test_setup(test_schedule_expiry_and_deadline, setup),
		cmocka_unit_test_setup(test_flow_approved_first_poll, setup),
		cmocka_unit_test_setup(test_flow_pending_then_success, setup),
		cmocka_unit_test_setup(test_flow_slow_down, setup),
		cmocka_unit_test_setup(test_flow_declined, setup),
		cmocka_unit_test_setup(test_flow_expired, setup),
		cmocka_unit_test_setup(test_flow_bad_verification_code, setup),
		cmocka_unit_test_setup(test_flow_conditional_access, setup),
		cmocka_unit_test_setup(test_flow_transient_then_success, setup),
		cmocka_unit_test_setup(test_flow_repeated_transport_failures, setup),
		cmocka_unit_test_setup(test_flow_hard_failures, setup),
		cmocka_unit_test_setup(test_flow_devicecode_refused, setup),
		cmocka_unit_test_setup(test_flow_no_conversation, setup),
		cmocka_unit_test_setup(test_flow_deadline, setup),
		cmocka_unit_test_setup(test_flow_code_expiry, setup),
		cmocka_unit_test_setup(test_prompt_text, setup),
		cmocka_unit_test_setup(test_prompt_qr, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
