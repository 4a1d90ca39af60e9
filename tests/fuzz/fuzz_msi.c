/* libFuzzer target: entra_msi_get_token, the public API of the
 * managed-identity unit, over a scripted transport (fuzz_http_stub.c):
 * success and error bodies of every source, retries (virtual clock),
 * the Azure Arc challenge, and the shared token cache, whose file is then
 * replaced by fuzzed bytes and read back. Also entra_msi_parse_expires_on
 * and entra_msi_scope_to_resource on the raw control part.
 *
 * Input: parts separated by "\n@@\n":
 *   0  control: byte 0 low 2 bits: source (imds, azureml, appservice,
 *      arc), bit 2: use the cache; bytes 1-3: statuses of the responses
 *      (index into a table); the whole part is also given to the two
 *      string parsers
 *   1, 2, 3  response bodies     4  WWW-Authenticate of response 1 ("@DIR@"
 *   is replaced by the Arc token directory)     5  cache file contents */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "msi.h"
#include "fuzz_common.h"
#include "fuzz_http_stub.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW 1700000000LL

static const long statuses[] = { 200, 400, 401, 404, 429, 500, 503, 403, 410, 200, 200, 302, 0, 201, 502, 200 };
static char cache[128], arc[128], msi_dir[160];
static int64_t clock_ms;

static void cleanup(void)
{
	fuzz_empty_dir(msi_dir);
	rmdir(msi_dir);
	fuzz_empty_dir(cache);
	rmdir(cache);
	fuzz_empty_dir(arc);
	rmdir(arc);
	rmdir(fuzz_scratch_dir());
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	snprintf(cache, sizeof(cache), "%s/cache", fuzz_scratch_dir());
	snprintf(msi_dir, sizeof(msi_dir), "%s/msi", cache);
	snprintf(arc, sizeof(arc), "%s/arc", fuzz_scratch_dir());
	if (mkdir(cache, 0700) != 0 || mkdir(arc, 0700) != 0)
		abort();
	fuzz_write(arc, "fuzz.key", "c2VjcmV0LWtleQ==\n", 17, 0600);
	atexit(cleanup);
	return 0;
}

static int64_t mono(void *ctx)
{
	(void)ctx;
	return ++clock_ms;
}

static int64_t wall(void *ctx)
{
	(void)ctx;
	return NOW;
}

static void nap(void *ctx, int64_t ms)
{
	(void)ctx;
	if (ms < 0 || ms > ENTRA_MSI_MAX_WAIT_MS)
		abort();
	clock_ms += ms;
}

static const struct entra_msi_hooks hooks = { mono, wall, nap, NULL };

static void check_token(int rc, const struct entra_msi_token *tok)
{
	if (rc == 0) {
		if (tok->access_token == NULL || tok->token_type == NULL || tok->resource == NULL ||
		    !fuzz_printable(tok->access_token) || !fuzz_printable(tok->resource) ||
		    tok->expires_on <= NOW || tok->refresh_on > tok->expires_on)
			abort();
	} else {
		if (tok->access_token != NULL || !fuzz_printable(tok->error) || tok->error[0] == '\0')
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const envs[4][3] = {
		{ NULL },
		{ "MSI_ENDPOINT=http://127.0.0.1:7/msi/token", "MSI_SECRET=s3cret", NULL },
		{ "IDENTITY_ENDPOINT=http://127.0.0.1:7/appservice/token", "IDENTITY_HEADER=h3ader", NULL },
		{ "IDENTITY_ENDPOINT=http://127.0.0.1:7/arc/token", "IMDS_ENDPOINT=http://127.0.0.1:7", NULL },
	};
	static const enum entra_msi_source sources[4] = { ENTRA_MSI_IMDS, ENTRA_MSI_AZUREML,
							  ENTRA_MSI_APPSERVICE, ENTRA_MSI_ARC };
	struct fuzz_part parts[6];
	struct entra_msi_token tok;
	char ctl[64] = "", challenge[512] = "", *res;
	int64_t when;
	size_t n;
	uint8_t c0;
	int rc;

	memset(parts, 0, sizeof(parts));
	n = fuzz_split(data, size, parts, 6);
	if (parts[0].len < 4)
		return 0;
	c0 = (uint8_t)parts[0].p[0];

	/* The two exported string parsers, on the control part as text. */
	snprintf(ctl, sizeof(ctl), "%.*s", (int)(parts[0].len - 4 < 63 ? parts[0].len - 4 : 63), parts[0].p + 4);
	if (entra_msi_parse_expires_on(ctl, &when) == 0 && when < 0)
		abort();
	res = entra_msi_scope_to_resource(ctl);
	if (res != NULL && (!fuzz_printable(res) || res[0] == '\0' || strchr(res, ' ') != NULL))
		abort();
	free(res);

	stub_reset();
	for (size_t i = 1; i <= 3 && i < n; i++)
		stub_add(0, statuses[(uint8_t)parts[0].p[i] & 15], parts[i].p, parts[i].len);
	if (n > 4 && stub.count > 0) {
		const char *h = parts[4].p;
		size_t hl = parts[4].len;

		if (hl >= 5 && memcmp(h, "@DIR@", 5) == 0)
			snprintf(challenge, sizeof(challenge), "Basic realm=%s%.*s", arc, (int)(hl - 5 < 300 ? hl - 5 : 300), h + 5);
		else
			snprintf(challenge, sizeof(challenge), "%.*s", (int)(hl < 300 ? hl : 300), h);
		stub.r[0].www_authenticate = challenge;
	}

	struct entra_msi_request req = {
		.source = (c0 & 8) ? ENTRA_MSI_AUTO : sources[c0 & 3],
		.env = envs[c0 & 3],
		.imds_host = (c0 & 3) == 0 ? "http://127.0.0.1:7" : NULL,
		.resource = (c0 & 16) ? "https://management.azure.com/.default" : "https://ml.azure.com",
		.cache_dir = (c0 & 4) ? cache : NULL,
		.hooks = &hooks,
		.arc_token_dir_for_tests = arc,
	};
	fuzz_empty_dir(msi_dir);
	clock_ms = 1000;
	rc = entra_msi_get_token(&req, stub_http(), &fuzz_log, &tok);
	check_token(rc, &tok);
	entra_msi_token_clear(&tok);

	/* Replace whatever the cache holds by part 5 and ask again: the
	 * reader must refuse garbage or serve a sane token. */
	if ((c0 & 4) && n > 5) {
		DIR *d = opendir(msi_dir);
		struct dirent *de;
		char name[256] = "";

		while (d != NULL && (de = readdir(d)) != NULL)
			if (strstr(de->d_name, ".json") != NULL && de->d_name[0] != '.')
				snprintf(name, sizeof(name), "%s", de->d_name);
		if (d != NULL)
			closedir(d);
		if (name[0] != '\0') {
			fuzz_write(msi_dir, name, parts[5].p, parts[5].len, 0600);
			stub_reset();
			clock_ms = 1000;
			rc = entra_msi_get_token(&req, stub_http(), &fuzz_log, &tok);
			check_token(rc, &tok);
			entra_msi_token_clear(&tok);
		}
	}
	return 0;
}
