/* libFuzzer target: entra_oidc_load and entra_oidc_refresh_jwks, the
 * public API of the OIDC unit, over a scripted transport
 * (fuzz_http_stub.c) and a real on-disk cache in a scratch directory.
 *
 * Input: parts separated by "\n@@\n":
 *   0  control: byte 0 bit 0: the discovery fetch fails (HTTP 500),
 *      bit 1: the JWKS fetch fails, bit 2: the refetched JWKS fails,
 *      bit 3: the cache directory is group-writable (must be ignored)
 *   1  discovery document as served     2  JWKS as served
 *   3  <h>.discovery.json cache file    4  <h>.jwks.json cache file
 *   5  <h>.jwks-attempt file            6  JWKS served on refetch
 * A missing part is an absent file or a refused connection. */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "oidc.h"
#include "fuzz_common.h"
#include "fuzz_http_stub.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define AUTHORITY "https://login.example.test"
#define TENANT "72f988bf-86f1-41af-91ab-2d7cd011db47"
#define NOW ((time_t)1700000000)

static char prefix[33];
static const char *dir;

static void cleanup(void)
{
	fuzz_empty_dir(dir);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char hex[] = "0123456789abcdef";
	const char *url = AUTHORITY "/" TENANT "/v2.0/.well-known/openid-configuration";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	(void)argc;
	(void)argv;
	dir = fuzz_scratch_dir();
	atexit(cleanup);
	/* The cache file names, as the unit documents them. */
	if (EVP_Digest(url, strlen(url), md, &n, EVP_sha256(), NULL) != 1)
		abort();
	for (size_t i = 0; i < 16; i++) {
		prefix[2 * i] = hex[md[i] >> 4];
		prefix[2 * i + 1] = hex[md[i] & 15];
	}
	return 0;
}

static bool https(const char *s)
{
	return s != NULL && strncasecmp(s, "https://", 8) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_part parts[7];
	struct entra_oidc oidc;
	char name[64];
	size_t n;
	uint8_t ctl;
	int rc;

	memset(parts, 0, sizeof(parts));
	n = fuzz_split(data, size, parts, 7);
	ctl = parts[0].len > 0 ? (uint8_t)parts[0].p[0] : 0;
	fuzz_empty_dir(dir);
	chmod(dir, (ctl & 8) ? 0770 : 0700);
	static const char *const suffix[] = { ".discovery.json", ".jwks.json", ".jwks-attempt" };
	for (size_t i = 0; i < 3; i++) {
		if (n > 3 + i) {
			snprintf(name, sizeof(name), "%s%s", prefix, suffix[i]);
			fuzz_write(dir, name, parts[3 + i].p, parts[3 + i].len, 0600);
		}
	}
	stub_reset();
	if (n > 1)
		stub_add(0, (ctl & 1) ? 500 : 200, parts[1].p, parts[1].len);
	if (n > 2)
		stub_add(0, (ctl & 2) ? 500 : 200, parts[2].p, parts[2].len);

	if (entra_oidc_init(&oidc, AUTHORITY, TENANT, dir) != 0)
		abort();
	rc = entra_oidc_load(&oidc, stub_http(), &fuzz_log, NOW);
	if (rc == 0) {
		const struct entra_oidc_metadata *m = &oidc.metadata;

		if (!oidc.loaded || !https(m->issuer) || !https(m->token_endpoint) ||
		    !https(m->device_authorization_endpoint) || !https(m->jwks_uri) ||
		    oidc.jwks.count == 0)
			abort();
		/* An unknown kid: the refetch answers from part 6 (or fails). */
		stub.next = stub.count;
		if (n > 6)
			stub_add(0, (ctl & 4) ? 500 : 200, parts[6].p, parts[6].len);
		rc = entra_oidc_refresh_jwks(&oidc, stub_http(), &fuzz_log, NOW + 400);
		if (oidc.jwks.count == 0)
			abort(); /* the old set is kept on failure */
		if (rc == 0 && stub.requests == 0)
			abort();
	} else if (oidc.loaded) {
		abort();
	}
	entra_oidc_free(&oidc);
	return 0;
}
