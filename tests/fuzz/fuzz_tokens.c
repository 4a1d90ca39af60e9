/* libFuzzer target: entra_token_response_parse, then what the module does
 * with an error body (entra_oauth_error_message, _log_reason).
 * The first byte picks the HTTP status; the rest is the body. */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aadsts.h"
#include "tokens.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const long statuses[] = { 200, 400, 401, 403, 429, 500, 503, 201, 302, 0 };
#define NOW ((time_t)1700000000)

static void check_error(const struct entra_oauth_error *err)
{
	char reason[512];
	const char *msg;

	if (err->error == NULL || err->code_count > ENTRA_OAUTH_MAX_CODES)
		abort();
	msg = entra_oauth_error_message(err);
	if (msg == NULL || msg[0] == '\0')
		abort();
	entra_oauth_error_log_reason(err, reason, sizeof(reason));
	if (strlen(reason) >= sizeof(reason) || !fuzz_printable(reason))
		abort();
	/* Truncation keeps it a NUL-terminated single line. */
	entra_oauth_error_log_reason(err, reason, 7);
	if (strlen(reason) >= 7 || !fuzz_printable(reason))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct entra_token_response tok;
	struct entra_oauth_error err;
	enum entra_token_result r;
	long status;

	if (size < 1)
		return 0;
	status = statuses[data[0] % (sizeof(statuses) / sizeof(statuses[0]))];
	r = entra_token_response_parse(status, (const char *)data + 1, size - 1, NOW, &tok, &err);
	switch (r) {
	case ENTRA_TOKEN_OK:
		if (tok.access_token == NULL || tok.token_type == NULL || err.error != NULL)
			abort();
		if (!fuzz_printable(tok.access_token) ||
		    (tok.refresh_token != NULL && !fuzz_printable(tok.refresh_token)) ||
		    (tok.id_token != NULL && !fuzz_printable(tok.id_token)))
			abort();
		if (tok.expires_on <= NOW || tok.expires_on > NOW + 366LL * 86400)
			abort();
		break;
	case ENTRA_TOKEN_ERROR:
		if (tok.access_token != NULL)
			abort();
		check_error(&err);
		break;
	case ENTRA_TOKEN_MALFORMED:
		if (tok.access_token != NULL || err.error != NULL)
			abort();
		break;
	default:
		abort();
	}
	entra_token_response_free(&tok);
	entra_oauth_error_free(&err);
	return 0;
}
