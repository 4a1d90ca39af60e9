/* RFC 8628 device authorization grant in Entra's dialect. The parsing and
 * the polling schedule are pure functions (unit-tested with canned
 * responses); entra_device_flow_run drives them over HTTP. */
#ifndef ENTRA_DEVICECODE_H
#define ENTRA_DEVICECODE_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "aadsts.h"
#include "http.h"
#include "log.h"
#include "oidc.h"
#include "tokens.h"

#define ENTRA_DEVICE_DEFAULT_INTERVAL 5
#define ENTRA_DEVICE_DEFAULT_EXPIRES 900

struct entra_device_authorization {
	char *device_code;
	char *user_code;
	char *verification_uri;          /* also accepted as verification_url */
	char *verification_uri_complete; /* NULL from Entra */
	char *message;
	int64_t expires_in;              /* default when missing */
	int64_t interval;                /* default 5 when missing; integer or string */
};

/* 0 ok; -EPROTO: an error body (err filled) whatever the status;
 * -EINVAL: malformed (not JSON, a non-2xx without error, missing
 * device_code, user_code or verification_uri, a non-https verification
 * URI or verification_uri_complete, values with control characters or
 * too long: user_code 64, URIs 2048, message 4096; interval outside
 * 1..300 s, expires_in outside 1..86400 s). */
int entra_device_authorization_parse(long status, const char *body, size_t len,
				     struct entra_device_authorization *out,
				     struct entra_oauth_error *err);
void entra_device_authorization_free(struct entra_device_authorization *da);

/* The polling schedule, on the monotonic clock in ms. */
struct entra_device_poll {
	int64_t interval_ms;
	int64_t expires_at_ms;  /* from expires_in */
	int64_t deadline_ms;    /* the module's own limit (login_timeout); 0: none */
	int64_t next_poll_ms;
	unsigned polls;
};

enum entra_poll_next {
	ENTRA_POLL_AGAIN,       /* wait until next_poll_ms, then poll */
	ENTRA_POLL_FINAL_ERROR, /* an error other than pending/slow_down */
	ENTRA_POLL_TIMED_OUT,   /* next poll would be past expiry or deadline */
};

void entra_device_poll_init(struct entra_device_poll *poll,
			    const struct entra_device_authorization *da,
			    int64_t now_ms, int64_t deadline_ms);
/* init: the first poll is due at now_ms (no wait before it).
 * After a poll answered with err: authorization_pending -> wait interval;
 * slow_down -> interval += 5 s for good, wait; anything else final.
 * TIMED_OUT when the next poll would be at or after expires_at_ms or
 * deadline_ms. */
enum entra_poll_next entra_device_poll_after_error(struct entra_device_poll *poll,
						   const struct entra_oauth_error *err,
						   int64_t now_ms);

/* What the person sees, in one echo-off prompt: host, target account,
 * URL and code, expiry time, a warning to continue only if they started
 * this login themselves, optionally a QR code of the URL, and
 * "Press Enter after you have signed in". malloc'd. */
char *entra_device_prompt_text(const struct entra_device_authorization *da,
			       const char *host, const char *account, bool qr_code,
			       time_t now);

struct entra_device_hooks {
	/* Show text in an echo-off prompt and wait for Enter. 0 when the
	 * person answered; -1 when there is no conversation or it failed
	 * (sudo -n, BatchMode, no TTY): the flow fails at once. */
	int (*prompt)(void *host, const char *text);
	/* Sleep up to ms; tests may shorten it. NULL: nanosleep. */
	void (*sleep_ms)(void *host, int64_t ms);
	void *host;
	/* Show a message that travels with the next prompt (why a second
	 * sign-in is needed). Used by the login (login.h); may be NULL. */
	void (*info)(void *host, const char *text);
};

enum entra_device_result {
	ENTRA_DEVICE_OK,
	ENTRA_DEVICE_NO_CONVERSATION,
	ENTRA_DEVICE_IDP_ERROR,     /* err filled: declined, expired, AADSTS... */
	ENTRA_DEVICE_TIMED_OUT,     /* the local deadline or expires_in passed */
	ENTRA_DEVICE_UNAVAILABLE,   /* transport failure or malformed answer */
};

/* Request a device code (scope, optional claims JSON), prompt, and poll
 * from the moment Enter is pressed (the first poll goes out at once).
 * host_name/account only feed the prompt. deadline_ms (monotonic, 0: none)
 * is also set on http. The code's lifetime counts from its issue. A poll
 * failing transiently (connection error, timeout, 5xx or 429 without an
 * OAuth body; Retry-After honoured up to 60 s) is retried at the next
 * interval, up to 3 in a row, then UNAVAILABLE; a TLS/protocol failure or
 * a malformed answer is UNAVAILABLE at once. An error body from
 * /devicecode is IDP_ERROR. out is filled only on OK (the caller validates
 * the id_token), err only on IDP_ERROR. Each poll is logged at debug, the
 * outcome at notice/err with entra_oauth_error_log_reason; never the
 * device code, user code or tokens. */
enum entra_device_result entra_device_flow_run(struct entra_http *http,
					       const struct entra_oidc_metadata *md,
					       const char *client_id, const char *scope,
					       const char *claims,
					       const char *host_name, const char *account,
					       bool qr_code, int64_t deadline_ms,
					       const struct entra_device_hooks *hooks,
					       const struct entra_log *log,
					       struct entra_token_response *out,
					       struct entra_oauth_error *err);

#endif
