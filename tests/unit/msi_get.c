/* Test driver for lib/msi.c over the real http layer: gets a managed-
 * identity token with this process's environment, for the integration
 * test against tests/fake/fake_entra.py. Prints one line, never the token:
 *   ok source=imds expires_on=N from_cache=0|1 token_len=N [us_per_get=X]
 *   error rc=-N <message>                       (exit 1)
 * Usage: msi_get [--source S] [--resource R] [--client-id ID]
 *   [--object-id ID] [--msi-res-id ID] [--cache-dir D] [--arc-dir D]
 *   [--imds-host URL] [--total-ms N] [--count N] */
#include "config.h"
#include "msi.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

static long number(const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < 0)
		return -1;
	return v;
}

int main(int argc, char **argv)
{
	struct entra_msi_request req;
	struct entra_http_options opt = { NULL, 5000, 0, true, NULL };
	struct entra_msi_token tok;
	struct entra_http *http;
	long count = 1;
	int64_t t0, t1;
	int rc = 0;

	memset(&req, 0, sizeof(req));
	req.source = ENTRA_MSI_AUTO;
	req.env = (const char *const *)environ;
	req.resource = "https://management.azure.com/.default";
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (v == NULL) {
			fprintf(stderr, "msi_get: %s needs a value\n", a);
			return 2;
		}
		i++;
		if (strcmp(a, "--source") == 0) {
			static const char *const names[] = { "auto", "imds", "azureml", "appservice", "arc" };
			int k;

			for (k = 0; k < 5 && strcmp(v, names[k]) != 0; k++)
				;
			if (k == 5)
				return 2;
			req.source = (enum entra_msi_source)k;
		} else if (strcmp(a, "--resource") == 0) {
			req.resource = v;
		} else if (strcmp(a, "--client-id") == 0) {
			req.client_id = v;
		} else if (strcmp(a, "--object-id") == 0) {
			req.object_id = v;
		} else if (strcmp(a, "--msi-res-id") == 0) {
			req.msi_res_id = v;
		} else if (strcmp(a, "--cache-dir") == 0) {
			req.cache_dir = v;
		} else if (strcmp(a, "--arc-dir") == 0) {
			req.arc_token_dir_for_tests = v;
		} else if (strcmp(a, "--imds-host") == 0) {
			req.imds_host = v;
		} else if (strcmp(a, "--total-ms") == 0) {
			req.total_ms = number(v);
		} else if (strcmp(a, "--count") == 0) {
			count = number(v);
			if (count < 1)
				return 2;
		} else {
			fprintf(stderr, "msi_get: unknown option %s\n", a);
			return 2;
		}
	}
	http = entra_http_new(&opt, &entra_log_stderr);
	if (http == NULL)
		return 2;
	memset(&tok, 0, sizeof(tok));
	t0 = entra_monotonic_ms();
	for (long n = 0; n < count && rc == 0; n++) {
		entra_msi_token_clear(&tok);
		rc = entra_msi_get_token(&req, http, &entra_log_stderr, &tok);
	}
	t1 = entra_monotonic_ms();
	if (rc == 0) {
		printf("ok source=%s expires_on=%lld from_cache=%d token_len=%zu", entra_msi_source_name(tok.source),
		       (long long)tok.expires_on, tok.from_cache ? 1 : 0, strlen(tok.access_token));
		if (count > 1)
			printf(" us_per_get=%.1f", (double)(t1 - t0) * 1000.0 / (double)count);
		printf("\n");
	} else {
		printf("error rc=%d %s\n", rc, tok.error);
	}
	entra_msi_token_clear(&tok);
	entra_http_free(http);
	return rc == 0 ? 0 : 1;
}
