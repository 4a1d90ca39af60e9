/* libFuzzer target: entra_jwt_verify and entra_jwt_decode_unverified.
 *
 * Input starting with 'S': the rest is "<header JSON>\n<payload JSON>",
 * which this harness signs (ES256, with the fixed RFC 7515 A.3 key) so that
 * the fuzzer reaches the header and claim checks behind the signature.
 * Any other input is used as the token itself. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/param_build.h>

#include "b64.h"
#include "json.h"
#include "jwt.h"
#include "jwt_testkeys.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* RFC 7515 A.3 (P-256) and A.2 (RSA) public test keys. */
#define A3_X "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"
#define A3_Y "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
#define A3_D "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"
#define A2_N "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ"

static const char jwks_multi_doc[] =
	"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"fz\",\"use\":\"sig\",\"x\":\"" A3_X
	"\",\"y\":\"" A3_Y "\",\"issuer\":\"https://login.microsoftonline.com/{tenantid}/v2.0\"},"
	"{\"kty\":\"RSA\",\"kid\":\"rfc\",\"e\":\"AQAB\",\"n\":\"" A2_N "\"},"
	"{\"kty\":\"RSA\",\"kid\":\"rfc-ps\",\"alg\":\"PS256\",\"e\":\"AQAB\",\"n\":\"" A2_N "\"}]}";
static const char jwks_single_doc[] =
	"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" A3_X "\",\"y\":\"" A3_Y "\"}]}";

static struct entra_jwks jwks_multi, jwks_single;
static EVP_PKEY *signer;

static const char *const required[] = { "oid", "preferred_username", NULL };
static const struct entra_jwt_expect expect_template = {
	.issuer = "https://login.microsoftonline.com/{tenantid}/v2.0",
	.audience = "6d8f5c3e-2a41-4b7e-9c10-3f2e1d0c9b8a",
	.tenant_id = NULL,
	.required_claims = required,
	.now = 1700000000,
	.clock_skew = 120,
};
static const struct entra_jwt_expect expect_pinned = {
	.issuer = "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0",
	.audience = "6d8f5c3e-2a41-4b7e-9c10-3f2e1d0c9b8a",
	.tenant_id = "72f988bf-86f1-41af-91ab-2d7cd011db47",
	.required_claims = NULL,
	.now = 1700000000,
	.clock_skew = 0,
};

static BIGNUM *bn_b64(const char *s)
{
	unsigned char *bin;
	size_t len;
	BIGNUM *bn;

	if (entra_b64url_decode(s, strlen(s), &bin, &len) < 0)
		abort();
	bn = BN_bin2bn(bin, (int)len, NULL);
	free(bin);
	return bn;
}

static EVP_PKEY *a3_private_key(void)
{
	unsigned char point[65], *x, *y;
	size_t xl, yl;
	BIGNUM *d = bn_b64(A3_D);
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params;
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	EVP_PKEY *pkey = NULL;

	if (entra_b64url_decode(A3_X, strlen(A3_X), &x, &xl) < 0 ||
	    entra_b64url_decode(A3_Y, strlen(A3_Y), &y, &yl) < 0 || xl != 32 || yl != 32)
		abort();
	point[0] = 0x04;
	memcpy(point + 1, x, 32);
	memcpy(point + 33, y, 32);
	free(x);
	free(y);
	if (d == NULL || bld == NULL || ctx == NULL ||
	    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) != 1 ||
	    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)) != 1 ||
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, d) != 1)
		abort();
	params = OSSL_PARAM_BLD_to_param(bld);
	if (params == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_KEYPAIR, params) != 1)
		abort();
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	EVP_PKEY_CTX_free(ctx);
	BN_free(d);
	return pkey;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (entra_jwks_parse(jwks_multi_doc, sizeof(jwks_multi_doc) - 1, &jwks_multi) != 0 ||
	    jwks_multi.count != 3 ||
	    entra_jwks_parse(jwks_single_doc, sizeof(jwks_single_doc) - 1, &jwks_single) != 0)
		abort();
	signer = a3_private_key();
	return 0;
}

static void verify(const char *token, const struct entra_jwks *jwks,
		   const struct entra_jwt_expect *expect)
{
	struct json_object *claims = NULL;
	char reason[160];
	enum entra_jwt_status st;
	size_t n;

	memset(reason, 0x7f, sizeof(reason));
	st = entra_jwt_verify(token, jwks, expect, &claims, reason, sizeof(reason));
	n = strnlen(reason, sizeof(reason));
	if (n == sizeof(reason) || n == 0)
		abort();
	/* A reason is one printable line, whatever the token holds. */
	for (size_t i = 0; i < n; i++)
		if (reason[i] < 0x20 || reason[i] > 0x7e)
			abort();
	if ((st == ENTRA_JWT_OK) != (claims != NULL))
		abort();
	if (st == ENTRA_JWT_OK) {
		int64_t exp;

		if (!entra_json_string_or_array_contains(claims, "aud", expect->audience) ||
		    entra_json_get_string(claims, "iss") == NULL ||
		    entra_json_get_int64(claims, "exp", &exp) != 0 ||
		    exp < (int64_t)expect->now - 120)
			abort();
		for (const char *const *r = expect->required_claims; r && *r; r++) {
			const char *v = entra_json_get_string(claims, *r);

			if (v == NULL || *v == '\0')
				abort();
		}
	}
	json_object_put(claims);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *token;
	struct json_object *payload;

	if (size > 0 && data[0] == 'S') {
		const char *body = (const char *)data + 1;
		const char *nl = memchr(body, '\n', size - 1);
		size_t hlen = nl ? (size_t)(nl - body) : size - 1;

		token = tk_token_n(signer, "ES256", NULL, 0, body, hlen, nl ? nl + 1 : "",
				   nl ? size - 1 - hlen - 1 : 0);
	} else {
		token = malloc(size + 1);
		if (token == NULL)
			return 0;
		memcpy(token, data, size);
		token[size] = '\0';
	}
	verify(token, &jwks_multi, &expect_template);
	verify(token, &jwks_single, &expect_pinned);
	payload = entra_jwt_decode_unverified(token);
	json_object_put(payload);
	free(token);
	return 0;
}
