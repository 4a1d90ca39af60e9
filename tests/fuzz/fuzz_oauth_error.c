/* libFuzzer target: entra_oauth_error_parse on any JSON value, then the
 * person's message and the syslog reason at every output size class. */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aadsts.h"
#include "json.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t lens[] = { 1, 2, 16, 64, 200, 512, 4096 };
	struct entra_oauth_error err;
	struct json_object *obj;
	char reason[4096];
	const char *msg;
	int rc;

	obj = entra_json_parse((const char *)data, size);
	if (obj == NULL)
		return 0;
	rc = entra_oauth_error_parse(obj, &err);
	json_object_put(obj);
	if (rc == 0) {
		if (err.error == NULL || err.code_count > ENTRA_OAUTH_MAX_CODES)
			abort();
		msg = entra_oauth_error_message(&err);
		if (msg == NULL || msg[0] == '\0')
			abort();
		for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
			memset(reason, 'Z', sizeof(reason));
			entra_oauth_error_log_reason(&err, reason, lens[i]);
			if (strnlen(reason, lens[i]) >= lens[i] || !fuzz_printable(reason))
				abort();
		}
	} else if (rc == -ENOENT || rc == -EINVAL) {
		if (err.error != NULL || err.code_count != 0)
			abort();
	} else if (rc != -ENOMEM) {
		abort();
	}
	entra_oauth_error_free(&err);
	return 0;
}
