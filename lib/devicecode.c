#include "config.h"
#include "devicecode.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#ifdef HAVE_QRENCODE
#include <qrencode.h>
#endif

#include "buf.h"
#include "json.h"
#include "names.h"

#define DEVICE_CODE_MAX 8192
#define USER_CODE_MAX 64
#define URI_MAX 2048
#define MESSAGE_MAX 4096
/* Limits on what the IdP may ask of us; beyond them the answer is nonsense. */
#define INTERVAL_MAX 300
#define EXPIRES_MAX (24 * 3600)
#define SLOW_DOWN_MS 5000
#define FORM_MAX (64 * 1024)
/* Consecutive failed polls (connection errors, 5xx) tolerated before the
 * flow gives up: one blip must not lose a login the person completed. */
#define TRANSIENT_MAX 3
/* Longest Retry-After honoured on 429/503, seconds. */
#define RETRY_AFTER_MAX 60
#define DISPLAY_NAME_MAX 256

/* A string member that must be safe when present; -EINVAL when present
 * with another type or unsafe. "" counts as absent (required members are
 * checked by the caller). */
static int get_safe_string(struct json_object *obj, const char *key, size_t max, char **out)
{
	struct json_object *v;
	const char *s;

	*out = NULL;
	if (!json_object_object_get_ex(obj, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return -EINVAL;
	s = json_object_get_string(v);
	if (s[0] == '\0')
		return 0;
	if (!entra_value_is_safe(s, max))
		return -EINVAL;
	*out = strdup(s);
	return *out == NULL ? -ENOMEM : 0;
}

/* https://host..., nothing else: the person is sent there. */
static bool uri_is_https(const char *uri)
{
	const char *host;

	if (uri == NULL || strncasecmp(uri, "https://", 8) != 0)
		return false;
	host = uri + 8;
	return host[0] != '\0' && host[0] != '/' && host[0] != '?' && host[0] != '#' &&
	       strchr(uri, ' ') == NULL;
}

static int get_seconds(struct json_object *obj, const char *key, int64_t dflt, int64_t max,
		       int64_t *out)
{
	int rc = entra_json_get_int64(obj, key, out);

	if (rc == -ENOENT) {
		*out = dflt;
		return 0;
	}
	if (rc < 0 || *out <= 0 || *out > max)
		return -EINVAL;
	return 0;
}

int entra_device_authorization_parse(long status, const char *body, size_t len,
				     struct entra_device_authorization *out,
				     struct entra_oauth_error *err)
{
	struct json_object *obj, *v;
	int rc;

	memset(out, 0, sizeof(*out));
	memset(err, 0, sizeof(*err));
	if (body == NULL)
		return -EINVAL;
	obj = entra_json_parse_object(body, len);
	if (obj == NULL)
		return -EINVAL;

	/* MSAL.NET: /devicecode can send errors with 200 OK. */
	rc = entra_oauth_error_parse(obj, err);
	if (rc == 0) {
		rc = -EPROTO;
		goto done;
	}
	if (rc != -ENOENT || status < 200 || status > 299) {
		rc = rc == -ENOMEM ? -ENOMEM : -EINVAL;
		goto done;
	}

	rc = get_safe_string(obj, "device_code", DEVICE_CODE_MAX, &out->device_code);
	if (rc == 0)
		rc = get_safe_string(obj, "user_code", USER_CODE_MAX, &out->user_code);
	if (rc == 0) {
		/* Older Entra endpoints and some IdPs say verification_url. */
		const char *key = json_object_object_get_ex(obj, "verification_uri", &v) ?
				  "verification_uri" : "verification_url";

		rc = get_safe_string(obj, key, URI_MAX, &out->verification_uri);
	}
	if (rc == 0)
		rc = get_safe_string(obj, "verification_uri_complete", URI_MAX,
				     &out->verification_uri_complete);
	if (rc == 0)
		rc = get_safe_string(obj, "message", MESSAGE_MAX, &out->message);
	if (rc == 0)
		rc = get_seconds(obj, "interval", ENTRA_DEVICE_DEFAULT_INTERVAL, INTERVAL_MAX,
				 &out->interval);
	if (rc == 0)
		rc = get_seconds(obj, "expires_in", ENTRA_DEVICE_DEFAULT_EXPIRES, EXPIRES_MAX,
				 &out->expires_in);
	if (rc == 0 && (out->device_code == NULL || out->user_code == NULL ||
			!uri_is_https(out->verification_uri) ||
			(out->verification_uri_complete != NULL &&
			 !uri_is_https(out->verification_uri_complete))))
		rc = -EINVAL;
done:
	if (rc != 0)
		entra_device_authorization_free(out);
	if (rc != -EPROTO)
		entra_oauth_error_free(err);
	entra_json_wipe_member(obj, "device_code");
	json_object_put(obj);
	return rc;
}

void entra_device_authorization_free(struct entra_device_authorization *da)
{
	if (da == NULL)
		return;
	entra_free_secret(da->device_code);
	free(da->user_code);
	free(da->verification_uri);
	free(da->verification_uri_complete);
	free(da->message);
	memset(da, 0, sizeof(*da));
}

void entra_device_poll_init(struct entra_device_poll *poll,
			    const struct entra_device_authorization *da,
			    int64_t now_ms, int64_t deadline_ms)
{
	poll->interval_ms = da->interval * 1000;
	poll->expires_at_ms = now_ms + da->expires_in * 1000;
	poll->deadline_ms = deadline_ms;
	poll->next_poll_ms = now_ms;
	poll->polls = 0;
}

/* A poll at t would come too late: the code has expired by then, or the
 * module's own limit has passed (deadline 0: none). */
static bool too_late(const struct entra_device_poll *poll, int64_t t)
{
	return t >= poll->expires_at_ms || (poll->deadline_ms > 0 && t >= poll->deadline_ms);
}

enum entra_poll_next entra_device_poll_after_error(struct entra_device_poll *poll,
						   const struct entra_oauth_error *err,
						   int64_t now_ms)
{
	poll->polls++;
	if (err == NULL || err->error == NULL)
		return ENTRA_POLL_FINAL_ERROR;
	if (strcmp(err->error, "slow_down") == 0)
		poll->interval_ms += SLOW_DOWN_MS;
	else if (strcmp(err->error, "authorization_pending") != 0)
		return ENTRA_POLL_FINAL_ERROR;
	poll->next_poll_ms = now_ms + poll->interval_ms;
	return too_late(poll, poll->next_poll_ms) ? ENTRA_POLL_TIMED_OUT : ENTRA_POLL_AGAIN;
}

/* Copy for display: control characters and bytes outside printable ASCII
 * and UTF-8 become '?', so a user name or host name cannot redraw the
 * prompt; bounded. */
static void display_copy(char *dst, size_t size, const char *src, const char *dflt)
{
	size_t n = 0;

	if (src == NULL || src[0] == '\0')
		src = dflt;
	for (; n < size - 1 && src[n] != '\0'; n++) {
		unsigned char c = (unsigned char)src[n];

		dst[n] = (char)((c < 0x20 || c == 0x7f) ? '?' : c);
	}
	dst[n] = '\0';
}

#ifdef HAVE_QRENCODE
/* Light modules (and the quiet zone) are drawn in the foreground colour,
 * dark modules left as background, two module rows per text line, as
 * qrencode -t UTF8 does: this reads on the usual dark terminal. */
static int append_qr(struct entra_buf *out, const char *text)
{
	static const char *const cell[4] = {
		" ",            /* top dark, bottom dark */
		"\xe2\x96\x84", /* top dark, bottom light: lower half block */
		"\xe2\x96\x80", /* top light, bottom dark: upper half block */
		"\xe2\x96\x88", /* both light: full block */
	};
	const int margin = 2;
	QRcode *qr;
	int size, rc = 0;

	qr = QRcode_encodeString(text, 0, QR_ECLEVEL_L, QR_MODE_8, 1);
	if (qr == NULL)
		return -ENOMEM;
	size = qr->width + 2 * margin;
	for (int y = 0; y < size && rc == 0; y += 2) {
		for (int x = 0; x < size && rc == 0; x++) {
			int idx = 0;

			for (int half = 0; half < 2; half++) {
				int my = y + half - margin, mx = x - margin;
				bool light;

				if (y + half >= size)
					light = false; /* below the code: background */
				else if (my < 0 || mx < 0 || my >= qr->width || mx >= qr->width)
					light = true;  /* quiet zone */
				else
					light = !(qr->data[my * qr->width + mx] & 1);
				if (light)
					idx |= half == 0 ? 2 : 1;
			}
			rc = entra_buf_append_str(out, cell[idx]);
		}
		if (rc == 0)
			rc = entra_buf_append_str(out, "\n");
	}
	QRcode_free(qr);
	return rc;
}
#endif

char *entra_device_prompt_text(const struct entra_device_authorization *da,
			       const char *host, const char *account, bool qr_code,
			       time_t now)
{
	char h[DISPLAY_NAME_MAX + 1], a[DISPLAY_NAME_MAX + 1], until[32];
	struct entra_buf out;
	struct tm tm;
	time_t expires;
	int rc;

	if (da == NULL || da->user_code == NULL || da->verification_uri == NULL)
		return NULL;
	display_copy(h, sizeof(h), host, "this computer");
	display_copy(a, sizeof(a), account, "this account");
	expires = now + (time_t)da->expires_in;
	if (gmtime_r(&expires, &tm) == NULL || strftime(until, sizeof(until), "%H:%M UTC", &tm) == 0)
		until[0] = '\0';

	entra_buf_init(&out, 64 * 1024);
	rc = entra_buf_printf(&out, "Microsoft Entra sign-in for %s on %s\n\n"
			      "To sign in, open %s\nand enter the code %s%s%s%s.\n\n",
			      a, h, da->verification_uri, da->user_code,
			      until[0] ? " (valid until " : "", until, until[0] ? ")" : "");
#ifdef HAVE_QRENCODE
	if (rc == 0 && qr_code) {
		const char *qr_text = da->verification_uri_complete ? da->verification_uri_complete
								   : da->verification_uri;
		struct entra_buf qr;

		/* A failed QR code only costs the picture, never the login. */
		entra_buf_init(&qr, 32 * 1024);
		if (append_qr(&qr, qr_text) == 0 && qr.data != NULL)
			rc = entra_buf_printf(&out, "%s%s\n", qr.data,
					      da->verification_uri_complete ?
					      "Or scan this QR code to open the page with the code filled in.\n" :
					      "Or scan this QR code to open the page.\n");
		entra_buf_free(&qr);
	}
#else
	(void)qr_code;
#endif
	if (rc == 0)
		rc = entra_buf_printf(&out, "Only enter this code if YOU started this login to %s on %s.\n"
				      "Never enter a code someone sent you.\n\n"
				      "Press Enter after you have signed in: ", a, h);
	if (rc < 0) {
		entra_buf_free(&out);
		return NULL;
	}
	return entra_buf_steal(&out);
}

static void default_sleep_ms(int64_t ms)
{
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void sleep_until(const struct entra_device_hooks *hooks, int64_t t)
{
	int64_t now;

	while ((now = entra_monotonic_ms()) < t) {
		if (hooks->sleep_ms != NULL)
			hooks->sleep_ms(hooks->host, t - now);
		else
			default_sleep_ms(t - now);
	}
}

/* Failures worth another poll: the network or the service hiccupped.
 * TLS and protocol errors are not: they mean an attack or a misconfiguration. */
static bool transport_is_transient(int rc)
{
	return rc == -ETIMEDOUT || rc == -ECONNREFUSED || rc == -EHOSTUNREACH ||
	       rc == -ENETUNREACH || rc == -ECONNRESET || rc == -EAGAIN;
}

static int device_code_form(struct entra_buf *form, const char *client_id, const char *scope,
			    const char *claims)
{
	int rc = entra_form_add(form, "client_id", client_id);

	if (rc == 0)
		rc = entra_form_add(form, "scope", scope);
	if (rc == 0 && claims != NULL && claims[0] != '\0')
		rc = entra_form_add(form, "claims", claims);
	return rc;
}

static int token_form(struct entra_buf *form, const char *client_id, const char *device_code,
		      const char *claims)
{
	int rc = entra_form_add(form, "grant_type", "urn:ietf:params:oauth:grant-type:device_code");

	if (rc == 0)
		rc = entra_form_add(form, "client_id", client_id);
	if (rc == 0)
		rc = entra_form_add(form, "device_code", device_code);
	if (rc == 0 && claims != NULL && claims[0] != '\0')
		rc = entra_form_add(form, "claims", claims);
	if (rc == 0)
		rc = entra_form_add(form, "client_info", "1");
	return rc;
}

static void log_idp_error(const struct entra_log *log, const char *what,
			  const struct entra_oauth_error *err)
{
	char reason[1024];

	entra_oauth_error_log_reason(err, reason, sizeof(reason));
	entra_log(log, LOG_NOTICE, "device flow: %s: %s", what, reason);
}

static const char *const json_headers[] = { "Accept: application/json", NULL };

/* Ask for a device code: ENTRA_DEVICE_OK with da filled, or the failure. */
static enum entra_device_result request_device_code(struct entra_http *http,
						    const struct entra_oidc_metadata *md,
						    const char *client_id, const char *scope,
						    const char *claims, const struct entra_log *log,
						    struct entra_device_authorization *da,
						    struct entra_oauth_error *err)
{
	struct entra_http_response resp;
	struct entra_buf form;
	int rc;

	entra_buf_init(&form, FORM_MAX);
	rc = device_code_form(&form, client_id, scope, claims);
	if (rc < 0) {
		entra_buf_free(&form);
		entra_log(log, LOG_ERR, "device flow: cannot build the request: %s", strerror(-rc));
		return ENTRA_DEVICE_UNAVAILABLE;
	}
	rc = entra_http_post_form(http, md->device_authorization_endpoint, form.data,
				  json_headers, &resp);
	entra_buf_free(&form);
	if (rc < 0) {
		entra_http_response_free(&resp);
		entra_log(log, LOG_ERR, "device flow: device authorization request failed: %s",
			  strerror(-rc));
		return ENTRA_DEVICE_UNAVAILABLE;
	}
	rc = entra_device_authorization_parse(resp.status, resp.body.data, resp.body.len, da, err);
	if (rc == -EPROTO) {
		log_idp_error(log, "device authorization refused", err);
		entra_http_response_free(&resp);
		return ENTRA_DEVICE_IDP_ERROR;
	}
	if (rc < 0) {
		entra_log(log, LOG_ERR, "device flow: unusable device authorization response (HTTP %ld)",
			  resp.status);
		entra_http_response_free(&resp);
		return ENTRA_DEVICE_UNAVAILABLE;
	}
	entra_http_response_free(&resp);
	return ENTRA_DEVICE_OK;
}

/* One poll of the token endpoint. */
enum poll_outcome {
	POLL_TOKEN,     /* out filled */
	POLL_IDP_ERROR, /* err filled */
	POLL_TRANSIENT, /* try again at the next interval */
	POLL_FATAL,     /* malformed answer or hard transport failure */
};

static enum poll_outcome poll_once(struct entra_http *http, const struct entra_oidc_metadata *md,
				   const char *client_id, const char *device_code,
				   const char *claims, const struct entra_log *log,
				   unsigned n, int64_t *retry_after_ms,
				   struct entra_token_response *out, struct entra_oauth_error *err)
{
	struct entra_http_response resp;
	struct entra_buf form;
	enum entra_token_result tr;
	enum poll_outcome outcome;
	int rc;

	*retry_after_ms = 0;
	entra_buf_init(&form, FORM_MAX);
	rc = token_form(&form, client_id, device_code, claims);
	if (rc < 0) {
		entra_buf_free(&form);
		entra_log(log, LOG_ERR, "device flow: cannot build the poll: %s", strerror(-rc));
		return POLL_FATAL;
	}
	rc = entra_http_post_form(http, md->token_endpoint, form.data, json_headers, &resp);
	entra_buf_free(&form);
	if (rc < 0) {
		entra_http_response_free(&resp);
		entra_log(log, LOG_DEBUG, "device flow: poll %u: transport error: %s", n,
			  strerror(-rc));
		return transport_is_transient(rc) ? POLL_TRANSIENT : POLL_FATAL;
	}
	tr = entra_token_response_parse(resp.status, resp.body.data, resp.body.len, time(NULL),
					out, err);
	switch (tr) {
	case ENTRA_TOKEN_OK:
		entra_log(log, LOG_DEBUG, "device flow: poll %u: tokens received", n);
		outcome = POLL_TOKEN;
		break;
	case ENTRA_TOKEN_ERROR:
		entra_log(log, LOG_DEBUG, "device flow: poll %u: HTTP %ld error=%s", n,
			  resp.status,
			  strcmp(err->error, "authorization_pending") == 0 ? "authorization_pending" :
			  strcmp(err->error, "slow_down") == 0 ? "slow_down" : "(final)");
		outcome = POLL_IDP_ERROR;
		break;
	case ENTRA_TOKEN_MALFORMED:
	default:
		if (resp.status >= 500 || resp.status == 429) {
			entra_log(log, LOG_DEBUG, "device flow: poll %u: HTTP %ld without an "
				  "OAuth answer", n, resp.status);
			if (resp.retry_after > 0)
				*retry_after_ms = (resp.retry_after > RETRY_AFTER_MAX ?
						   RETRY_AFTER_MAX : resp.retry_after) * 1000;
			outcome = POLL_TRANSIENT;
		} else {
			entra_log(log, LOG_ERR, "device flow: poll %u: unusable token response "
				  "(HTTP %ld)", n, resp.status);
			outcome = POLL_FATAL;
		}
		break;
	}
	entra_http_response_free(&resp);
	return outcome;
}

enum entra_device_result entra_device_flow_run(struct entra_http *http,
					       const struct entra_oidc_metadata *md,
					       const char *client_id, const char *scope,
					       const char *claims,
					       const char *host_name, const char *account,
					       bool qr_code, int64_t deadline_ms,
					       const struct entra_device_hooks *hooks,
					       const struct entra_log *log,
					       struct entra_token_response *out,
					       struct entra_oauth_error *err)
{
	struct entra_device_authorization da;
	struct entra_device_poll poll;
	enum entra_device_result result;
	unsigned transient = 0;
	int64_t issued_ms, now;
	char *text;

	memset(out, 0, sizeof(*out));
	memset(err, 0, sizeof(*err));
	memset(&da, 0, sizeof(da));
	if (http == NULL || md == NULL || md->device_authorization_endpoint == NULL ||
	    md->token_endpoint == NULL || client_id == NULL || scope == NULL ||
	    hooks == NULL || hooks->prompt == NULL) {
		entra_log(log, LOG_ERR, "device flow: missing endpoint, client_id, scope or prompt");
		return ENTRA_DEVICE_UNAVAILABLE;
	}
	entra_http_set_deadline(http, deadline_ms);

	/* The code's lifetime runs from its issue, not from Enter. */
	issued_ms = entra_monotonic_ms();
	if (deadline_ms > 0 && issued_ms >= deadline_ms) {
		entra_log(log, LOG_NOTICE, "device flow: login time limit reached before start");
		return ENTRA_DEVICE_TIMED_OUT;
	}
	result = request_device_code(http, md, client_id, scope, claims, log, &da, err);
	if (result != ENTRA_DEVICE_OK)
		return result;
	entra_device_poll_init(&poll, &da, issued_ms, deadline_ms);

	text = entra_device_prompt_text(&da, host_name, account, qr_code, time(NULL));
	if (text == NULL) {
		entra_log(log, LOG_ERR, "device flow: cannot build the prompt");
		result = ENTRA_DEVICE_UNAVAILABLE;
		goto done;
	}
	if (hooks->prompt(hooks->host, text) != 0) {
		free(text);
		entra_log(log, LOG_NOTICE, "device flow: no conversation to show the code; "
			  "not signing in");
		result = ENTRA_DEVICE_NO_CONVERSATION;
		goto done;
	}
	free(text);

	/* The person says they are done: ask at once. */
	now = entra_monotonic_ms();
	if (poll.next_poll_ms < now)
		poll.next_poll_ms = now;
	for (;;) {
		enum entra_poll_next next;
		enum poll_outcome outcome;
		int64_t retry_after_ms;

		if (too_late(&poll, poll.next_poll_ms)) {
			result = ENTRA_DEVICE_TIMED_OUT;
			break;
		}
		sleep_until(hooks, poll.next_poll_ms);
		now = entra_monotonic_ms();
		if (too_late(&poll, now)) {
			result = ENTRA_DEVICE_TIMED_OUT;
			break;
		}
		outcome = poll_once(http, md, client_id, da.device_code, claims, log,
				    poll.polls + 1, &retry_after_ms, out, err);
		now = entra_monotonic_ms();
		if (outcome == POLL_TOKEN) {
			result = ENTRA_DEVICE_OK;
			break;
		}
		if (outcome == POLL_FATAL) {
			result = ENTRA_DEVICE_UNAVAILABLE;
			break;
		}
		if (outcome == POLL_TRANSIENT) {
			poll.polls++;
			if (++transient >= TRANSIENT_MAX) {
				entra_log(log, LOG_ERR, "device flow: token endpoint failed %u times "
					  "in a row; giving up", transient);
				result = ENTRA_DEVICE_UNAVAILABLE;
				break;
			}
			poll.next_poll_ms = now + (retry_after_ms > poll.interval_ms ?
						   retry_after_ms : poll.interval_ms);
			continue;
		}
		transient = 0;
		next = entra_device_poll_after_error(&poll, err, now);
		if (next == ENTRA_POLL_FINAL_ERROR) {
			log_idp_error(log, "sign-in failed", err);
			result = ENTRA_DEVICE_IDP_ERROR;
			break;
		}
		entra_oauth_error_free(err);
		if (next == ENTRA_POLL_TIMED_OUT) {
			result = ENTRA_DEVICE_TIMED_OUT;
			break;
		}
	}
	if (result == ENTRA_DEVICE_TIMED_OUT)
		entra_log(log, LOG_NOTICE, "device flow: timed out after %u polls (code expired "
			  "or login time limit reached)", poll.polls);
	else if (result == ENTRA_DEVICE_OK)
		entra_log(log, LOG_INFO, "device flow: tokens received after %u polls",
			  poll.polls + 1);
done:
	entra_device_authorization_free(&da);
	return result;
}
