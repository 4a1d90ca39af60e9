/* libFuzzer target: entra_device_authorization_parse, and for an accepted
 * answer the prompt the person sees (QR code included) and the polling
 * schedule. The first byte picks the HTTP status and the QR option. */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "aadsts.h"
#include "devicecode.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const long statuses[] = { 200, 400, 401, 500, 201, 429, 0, 302 };
#define NOW ((time_t)1700000000)

static bool https(const char *s)
{
	return s != NULL && strncasecmp(s, "https://", 8) == 0 && fuzz_printable(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct entra_device_authorization da;
	struct entra_device_poll poll;
	struct entra_oauth_error err, pending;
	char reason[256];
	char *prompt;
	long status;
	int rc;

	if (size < 1)
		return 0;
	status = statuses[data[0] & 7];
	rc = entra_device_authorization_parse(status, (const char *)data + 1, size - 1, &da, &err);
	if (rc == 0) {
		if (da.device_code == NULL || da.user_code == NULL || !https(da.verification_uri) ||
		    (da.verification_uri_complete != NULL && !https(da.verification_uri_complete)) ||
		    !fuzz_printable(da.user_code) || strlen(da.user_code) > 64 ||
		    da.interval < 1 || da.interval > 300 || da.expires_in < 1 || da.expires_in > 86400 ||
		    err.error != NULL)
			abort();
		prompt = entra_device_prompt_text(&da, "node-1", "alice@contoso.com", (data[0] & 8) != 0, NOW);
		if (prompt == NULL || strstr(prompt, da.user_code) == NULL)
			abort();
		free(prompt);
		entra_device_poll_init(&poll, &da, 1000, 1000 + 100000);
		memset(&pending, 0, sizeof(pending));
		pending.error = (char *)"slow_down";
		for (int i = 0; i < 8; i++) {
			int64_t before = poll.interval_ms;
			enum entra_poll_next n = entra_device_poll_after_error(&poll, &pending, poll.next_poll_ms);

			if (n == ENTRA_POLL_AGAIN && (poll.interval_ms <= before || poll.next_poll_ms >= poll.deadline_ms))
				abort();
			if (n != ENTRA_POLL_AGAIN)
				break;
		}
	} else if (rc == -EPROTO) {
		if (err.error == NULL || da.device_code != NULL)
			abort();
		entra_oauth_error_log_reason(&err, reason, sizeof(reason));
		if (!fuzz_printable(reason) || entra_oauth_error_message(&err) == NULL)
			abort();
	} else if (rc != -EINVAL && rc != -ENOMEM) {
		abort();
	}
	entra_device_authorization_free(&da);
	entra_oauth_error_free(&err);
	return 0;
}
