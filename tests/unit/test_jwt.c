/* JWS verification: good paths (RS256, PS256, ES256, RFC 7515 vectors) and
 * adversarial tokens and key sets. Keys are generated here; every case
 * asserts the exact status and what the reason names. */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "b64.h"
#include "json.h"
#include "jwt.h"
#include "jwt_testkeys.h"

#define NOW ((time_t)1700000000)
#define TID "72f988bf-86f1-41af-91ab-2d7cd011db47"
#define CLIENT "6d8f5c3e-2a41-4b7e-9c10-3f2e1d0c9b8a"
#define OID "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
#define ISS_TMPL "https://login.microsoftonline.com/{tenantid}/v2.0"
#define ISS "https://login.microsoftonline.com/" TID "/v2.0"

#define HDR_K1 "{\"typ\":\"JWT\",\"alg\":\"RS256\",\"kid\":\"k1\"}"
#define HDR_PS "{\"typ\":\"JWT\",\"alg\":\"PS256\",\"kid\":\"kps\"}"
#define HDR_EC "{\"typ\":\"JWT\",\"alg\":\"ES256\",\"kid\":\"kec\"}"

static EVP_PKEY *k_rsa, *k_rsa2, *k_attacker, *k_ec, *k_small;
static struct entra_jwks jwks_main;   /* k1 (RS256), kps (PS256), kec (ES256) */
static struct entra_jwks jwks_single; /* k1 only */
static struct entra_jwks jwks_new;    /* k1 and the rolled-in k2 */

static const char *const required[] = { "oid", NULL };
static const struct entra_jwt_expect expect_default = {
	.issuer = ISS_TMPL,
	.audience = CLIENT,
	.tenant_id = TID,
	.required_claims = required,
	.now = NOW,
	.clock_skew = 60,
};

/* ------------------------------------------------------------------ */

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *out;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	assert_true(n >= 0);
	out = malloc((size_t)n + 1);
	assert_non_null(out);
	va_start(ap, fmt);
	vsnprintf(out, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return out;
}

static void jwks_from(struct entra_jwks *jwks, int expect_count, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void jwks_from(struct entra_jwks *jwks, int expect_count, const char *fmt, ...)
{
	va_list ap;
	char *doc;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	doc = malloc((size_t)n + 1);
	assert_non_null(doc);
	va_start(ap, fmt);
	vsnprintf(doc, (size_t)n + 1, fmt, ap);
	va_end(ap);
	if (expect_count > 0) {
		assert_int_equal(entra_jwks_parse(doc, strlen(doc), jwks), 0);
		assert_int_equal(jwks->count, expect_count);
	} else {
		assert_int_equal(entra_jwks_parse(doc, strlen(doc), jwks), -EINVAL);
		assert_int_equal(jwks->count, 0);
		assert_null(jwks->keys);
	}
	free(doc);
}

static int group_setup(void **state)
{
	char *j1, *j2, *jps, *jec;
	(void)state;

	k_rsa = tk_rsa(2048);
	k_rsa2 = tk_rsa(2048);
	k_attacker = tk_rsa(2048);
	k_ec = tk_ec_p256();
	k_small = tk_rsa(1024);
	j1 = tk_jwk(k_rsa, "k1", "\"use\":\"sig\",\"x5t\":\"ignored\",\"issuer\":\"" ISS_TMPL "\"");
	j2 = tk_jwk(k_rsa2, "k2", "\"use\":\"sig\"");
	jps = tk_jwk(k_rsa, "kps", "\"alg\":\"PS256\"");
	jec = tk_jwk(k_ec, "kec", "\"use\":\"sig\"");
	jwks_from(&jwks_main, 3, "{\"keys\":[%s,%s,%s]}", j1, jps, jec);
	jwks_from(&jwks_single, 1, "{\"keys\":[%s]}", j1);
	jwks_from(&jwks_new, 2, "{\"keys\":[%s,%s]}", j2, j1);
	free(j1);
	free(j2);
	free(jps);
	free(jec);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	entra_jwks_free(&jwks_main);
	entra_jwks_free(&jwks_single);
	entra_jwks_free(&jwks_new);
	EVP_PKEY_free(k_rsa);
	EVP_PKEY_free(k_rsa2);
	EVP_PKEY_free(k_attacker);
	EVP_PKEY_free(k_ec);
	EVP_PKEY_free(k_small);
	return 0;
}

/* The claims of a token Entra would issue for us. */
static struct json_object *claims(void)
{
	struct json_object *c = json_object_new_object();

	json_object_object_add(c, "aud", json_object_new_string(CLIENT));
	json_object_object_add(c, "iss", json_object_new_string(ISS));
	json_object_object_add(c, "iat", json_object_new_int64(NOW - 60));
	json_object_object_add(c, "nbf", json_object_new_int64(NOW - 60));
	json_object_object_add(c, "exp", json_object_new_int64(NOW + 3600));
	json_object_object_add(c, "name", json_object_new_string("Test User"));
	json_object_object_add(c, "oid", json_object_new_string(OID));
	json_object_object_add(c, "preferred_username", json_object_new_string("alice@example.com"));
	json_object_object_add(c, "sub", json_object_new_string("pairwise-subject"));
	json_object_object_add(c, "tid", json_object_new_string(TID));
	json_object_object_add(c, "ver", json_object_new_string("2.0"));
	return c;
}

static void set(struct json_object *c, const char *key, struct json_object *val)
{
	json_object_object_add(c, key, val);
}

/* Serialize (and put) the claims, then sign header + claims. */
static char *sign_claims(EVP_PKEY *key, const char *alg, const char *header, struct json_object *c)
{
	char *token = tk_token(key, alg, NULL, 0, header,
			       json_object_to_json_string_ext(c, JSON_C_TO_STRING_PLAIN));

	json_object_put(c);
	return token;
}

static char *rs256(struct json_object *c)
{
	return sign_claims(k_rsa, "RS256", HDR_K1, c);
}

/* The reason must be a clean log line that does not quote the token. */
static void check_reason(const char *token, const char *reason)
{
	const char *dot1 = token ? strchr(token, '.') : NULL;
	const char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;

	for (const char *p = reason; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			fail_msg("reason has byte 0x%02x: %s", (unsigned char)*p, reason);
	if (dot2 != NULL && strlen(dot2 + 1) >= 16 && strstr(reason, dot2 + 1) != NULL)
		fail_msg("reason quotes the signature: %s", reason);
	if (dot1 != NULL && dot2 != NULL && dot2 - dot1 > 16) {
		char seg[17];

		memcpy(seg, dot1 + 1, 16);
		seg[16] = '\0';
		if (strstr(reason, seg) != NULL)
			fail_msg("reason quotes the payload: %s", reason);
	}
}

/* Verify token (freed here); assert status and that the reason contains
 * `needle`. Returns the claims on success (caller puts). */
static struct json_object *check_ex(char *token, const struct entra_jwks *jwks,
				    const struct entra_jwt_expect *expect,
				    enum entra_jwt_status want, const char *needle)
{
	struct json_object *out = (struct json_object *)&out; /* must be overwritten */
	char reason[256];
	enum entra_jwt_status st;

	memset(reason, 'x', sizeof(reason));
	st = entra_jwt_verify(token, jwks, expect, &out, reason, sizeof(reason));
	assert_non_null(memchr(reason, '\0', sizeof(reason)));
	if (st != want)
		fail_msg("status %s (%s), wanted %s", entra_jwt_status_str(st), reason,
			 entra_jwt_status_str(want));
	if (needle != NULL && strstr(reason, needle) == NULL)
		fail_msg("reason \"%s\" lacks \"%s\"", reason, needle);
	check_reason(token, reason);
	if (want == ENTRA_JWT_OK)
		assert_non_null(out);
	else
		assert_null(out);
	free(token);
	return out;
}

static struct json_object *check(char *token, enum entra_jwt_status want, const char *needle)
{
	return check_ex(token, &jwks_main, &expect_default, want, needle);
}

static void check_ok_ex(char *token, const struct entra_jwks *jwks,
			const struct entra_jwt_expect *expect)
{
	struct json_object *c = check_ex(token, jwks, expect, ENTRA_JWT_OK, "ok");

	assert_string_equal(entra_json_get_string(c, "oid"), OID);
	json_object_put(c);
}

static void check_ok(char *token)
{
	check_ok_ex(token, &jwks_main, &expect_default);
}

/* Replace the signature's byte at index `at` (negative: from the end). */
static char *flip_sig_byte(char *token, long at)
{
	char *dot = strrchr(token, '.');
	unsigned char *sig;
	size_t sig_len;
	char *enc, *out;

	assert_int_equal(entra_b64url_decode(dot + 1, strlen(dot + 1), &sig, &sig_len), 0);
	sig[at < 0 ? (long)sig_len + at : at] ^= 0x01;
	enc = entra_b64url_encode(sig, sig_len);
	*dot = '\0';
	out = xasprintf("%s.%s", token, enc);
	free(sig);
	free(enc);
	free(token);
	return out;
}

/* Re-encode the signature with `delta` bytes removed (< 0) or a zero byte
 * appended (> 0). */
static char *resign_bytes(char *token, int delta)
{
	char *dot = strrchr(token, '.');
	unsigned char *sig, *grown;
	size_t sig_len;
	char *enc, *out;

	assert_int_equal(entra_b64url_decode(dot + 1, strlen(dot + 1), &sig, &sig_len), 0);
	grown = calloc(1, sig_len + 1);
	assert_non_null(grown);
	memcpy(grown, sig, sig_len);
	enc = entra_b64url_encode(grown, delta < 0 ? sig_len - 1 : sig_len + 1);
	*dot = '\0';
	out = xasprintf("%s.%s", token, enc);
	free(sig);
	free(grown);
	free(enc);
	free(token);
	return out;
}

/* ------------------------------------------------------------------ */
/* Good paths                                                         */

static void test_good_rs256(void **state)
{
	struct json_object *c;
	(void)state;

	c = check(rs256(claims()), ENTRA_JWT_OK, "ok");
	assert_string_equal(entra_json_get_string(c, "oid"), OID);
	assert_string_equal(entra_json_get_string(c, "tid"), TID);
	json_object_put(c);
	/* claims_out and reason are optional. */
	char *token = rs256(claims());
	assert_int_equal(entra_jwt_verify(token, &jwks_main, &expect_default, NULL, NULL, 0),
			 ENTRA_JWT_OK);
	free(token);
}

static void test_good_ps256_es256(void **state)
{
	(void)state;
	check_ok(sign_claims(k_rsa, "PS256", HDR_PS, claims()));
	check_ok(sign_claims(k_ec, "ES256", HDR_EC, claims()));
}

static void test_good_variants(void **state)
{
	struct json_object *c;
	struct entra_jwt_expect e = expect_default;
	(void)state;

	/* typ is compared case-insensitively and optional. */
	check_ok(sign_claims(k_rsa, "RS256", "{\"typ\":\"jwt\",\"alg\":\"RS256\",\"kid\":\"k1\"}",
			     claims()));
	check_ok(sign_claims(k_rsa, "RS256", "{\"alg\":\"RS256\",\"kid\":\"k1\"}", claims()));
	/* No kid: fine when the set has exactly one key. */
	check_ok_ex(sign_claims(k_rsa, "RS256", "{\"alg\":\"RS256\"}", claims()), &jwks_single,
		    &expect_default);
	/* aud as an array holding the client id; nbf absent. */
	c = claims();
	set(c, "aud", json_tokener_parse("[\"https://other\",\"" CLIENT "\"]"));
	json_object_object_del(c, "nbf");
	check_ok(rs256(c));
	/* Tenant pinned in upper case: GUIDs compare case-insensitively. */
	e.tenant_id = "72F988BF-86F1-41AF-91AB-2D7CD011DB47";
	json_object_put(check_ex(rs256(claims()), &jwks_main, &e, ENTRA_JWT_OK, "ok"));
	/* Fixed issuer, no template, tenant not pinned, no required claims. */
	e.issuer = ISS;
	e.tenant_id = NULL;
	e.required_claims = NULL;
	json_object_put(check_ex(rs256(claims()), &jwks_main, &e, ENTRA_JWT_OK, "ok"));
}

/* RFC 7515 A.2 (RS256) and A.3 (ES256): signatures made by someone else.
 * The payload has no iat, so reaching MISSING_CLAIM proves that the
 * signature verified; a flipped bit must stop it earlier. */
static void test_rfc7515_vectors(void **state)
{
	static const char a2_jwks[] =
		"{\"keys\":[{\"kty\":\"RSA\",\"e\":\"AQAB\",\"n\":\"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJc"
		"yQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_Yp"
		"RPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-U"
		"To7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8"
		"NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ\"}]}";
	static const char a2_token[] =
		"eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt"
		"cGxlLmNvbS9pc19yb290Ijp0cnVlfQ.cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XO"
		"iZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--"
		"f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jz"
		"DwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWk"
		"WywlVmtVrBp0igcN_IoypGlUPQGe77Rw";
	static const char a3_jwks[] =
		"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uP"
		"HvRVEU\",\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}]}";
	static const char a3_token[] =
		"eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt"
		"cGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5dj"
		"xLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
	struct entra_jwt_expect e = expect_default;
	struct entra_jwks a2, a3;
	struct json_object *payload;
	(void)state;

	e.now = 1300819000;
	e.issuer = "joe";
	assert_int_equal(entra_jwks_parse(a2_jwks, sizeof(a2_jwks) - 1, &a2), 0);
	assert_int_equal(entra_jwks_parse(a3_jwks, sizeof(a3_jwks) - 1, &a3), 0);
	assert_string_equal(a2.keys[0].alg, "RS256");
	assert_string_equal(a3.keys[0].alg, "ES256");
	assert_null(a2.keys[0].kid);
	check_ex(strdup(a2_token), &a2, &e, ENTRA_JWT_MISSING_CLAIM, "iat missing");
	check_ex(strdup(a3_token), &a3, &e, ENTRA_JWT_MISSING_CLAIM, "iat missing");
	check_ex(flip_sig_byte(strdup(a2_token), 100), &a2, &e, ENTRA_JWT_BAD_SIGNATURE, "RS256");
	check_ex(flip_sig_byte(strdup(a3_token), 40), &a3, &e, ENTRA_JWT_BAD_SIGNATURE, "ES256");
	/* Each key verifies only its own algorithm. */
	check_ex(strdup(a2_token), &a3, &e, ENTRA_JWT_BAD_ALG, "does not match");
	/* Unverified decoding still works for tokens we cannot check. */
	payload = entra_jwt_decode_unverified(a2_token);
	assert_non_null(payload);
	assert_string_equal(entra_json_get_string(payload, "iss"), "joe");
	json_object_put(payload);
	entra_jwks_free(&a2);
	entra_jwks_free(&a3);
}

/* ------------------------------------------------------------------ */
/* Algorithm attacks                                                  */

static void test_alg_none(void **state)
{
	char *token;
	(void)state;

	/* The classic: unsigned, empty signature. */
	check(tk_token(NULL, NULL, NULL, 0, "{\"alg\":\"none\",\"kid\":\"k1\"}",
		       "{\"oid\":\"" OID "\"}"), ENTRA_JWT_BAD_ALG, "\"none\"");
	check(tk_token(NULL, NULL, NULL, 0, "{\"alg\":\"NoNe\"}", "{}"), ENTRA_JWT_BAD_ALG,
	      "never accepted");
	/* With a real RS256 signature appended. */
	token = sign_claims(k_rsa, "RS256", "{\"alg\":\"none\",\"kid\":\"k1\"}", claims());
	check(token, ENTRA_JWT_BAD_ALG, "none");
	/* An RS256 header with the signature stripped is malformed. */
	check(tk_token(NULL, NULL, NULL, 0, HDR_K1, "{}"), ENTRA_JWT_MALFORMED,
	      "empty signature");
}

static void test_alg_hmac_confusion(void **state)
{
	size_t pem_len, der_len;
	char *pem = tk_pubkey_pem(k_rsa, &pem_len);
	unsigned char *der = tk_pubkey_der(k_rsa, &der_len);
	struct json_object *c = claims();
	const char *payload = json_object_to_json_string_ext(c, JSON_C_TO_STRING_PLAIN);
	(void)state;

	/* The RSA public key (as published) used as the HMAC secret. */
	check(tk_token(NULL, "HS256", (unsigned char *)pem, pem_len,
		       "{\"alg\":\"HS256\",\"kid\":\"k1\"}", payload), ENTRA_JWT_BAD_ALG, "HMAC");
	check(tk_token(NULL, "HS256", der, der_len, "{\"alg\":\"HS256\",\"kid\":\"k1\"}", payload),
	      ENTRA_JWT_BAD_ALG, "HMAC");
	check(tk_token(NULL, "HS512", der, der_len, "{\"alg\":\"HS512\",\"kid\":\"k1\"}", payload),
	      ENTRA_JWT_BAD_ALG, "HS512");
	/* Even a header claiming RS256 with an HMAC signature fails. */
	check(tk_token(NULL, "HS256", (unsigned char *)pem, pem_len, HDR_K1, payload),
	      ENTRA_JWT_BAD_SIGNATURE, "does not verify");
	json_object_put(c);
	free(pem);
	free(der);
}

static void test_alg_unsupported(void **state)
{
	(void)state;
	check(sign_claims(k_rsa, "RS512", "{\"alg\":\"RS512\",\"kid\":\"k1\"}", claims()),
	      ENTRA_JWT_BAD_ALG, "RS512");
	check(sign_claims(k_rsa, "RS256", "{\"alg\":\"XYZ256\",\"kid\":\"k1\"}", claims()),
	      ENTRA_JWT_BAD_ALG, "not supported");
	check(sign_claims(k_rsa, "RS256", "{\"alg\":\"rs256\",\"kid\":\"k1\"}", claims()),
	      ENTRA_JWT_BAD_ALG, "not supported");
	check(sign_claims(k_rsa, "RS256", "{\"kid\":\"k1\"}", claims()), ENTRA_JWT_BAD_ALG,
	      "alg missing");
	check(sign_claims(k_rsa, "RS256", "{\"alg\":256,\"kid\":\"k1\"}", claims()),
	      ENTRA_JWT_BAD_ALG, "not a string");
	check(sign_claims(k_rsa, "RS256", "{\"alg\":[\"RS256\"],\"kid\":\"k1\"}", claims()),
	      ENTRA_JWT_BAD_ALG, "not a string");
}

static void test_alg_key_mismatch(void **state)
{
	(void)state;
	/* PS256 token for the RS256 key (same RSA key material!). */
	check(sign_claims(k_rsa, "PS256", "{\"alg\":\"PS256\",\"kid\":\"k1\"}", claims()),
	      ENTRA_JWT_BAD_ALG, "PS256 does not match the key's RS256");
	/* RS256 token for the key published for PS256 only. */
	check(sign_claims(k_rsa, "RS256", "{\"alg\":\"RS256\",\"kid\":\"kps\"}", claims()),
	      ENTRA_JWT_BAD_ALG, "RS256 does not match the key's PS256");
	/* ES256 header naming an RSA key, RS256 header naming the EC key. */
	check(sign_claims(k_ec, "ES256", "{\"alg\":\"ES256\",\"kid\":\"k1\"}", claims()),
	      ENTRA_JWT_BAD_ALG, "does not match");
	check(sign_claims(k_rsa, "RS256", "{\"alg\":\"RS256\",\"kid\":\"kec\"}", claims()),
	      ENTRA_JWT_BAD_ALG, "does not match");
	/* An ES256 signature in DER instead of JOSE r||s form. */
	check(sign_claims(k_ec, "ES256-DER", HDR_EC, claims()), ENTRA_JWT_BAD_SIGNATURE,
	      "ES256 signature does not verify");
}

/* ------------------------------------------------------------------ */
/* Header attacks                                                     */

static void test_header_crit_typ(void **state)
{
	(void)state;
	check(sign_claims(k_rsa, "RS256",
			  "{\"alg\":\"RS256\",\"kid\":\"k1\",\"crit\":[\"exp\"],\"exp\":1}", claims()),
	      ENTRA_JWT_BAD_HEADER, "crit");
	check(sign_claims(k_rsa, "RS256", "{\"alg\":\"RS256\",\"kid\":\"k1\",\"crit\":[]}", claims()),
	      ENTRA_JWT_BAD_HEADER, "crit");
	check(sign_claims(k_rsa, "RS256", "{\"alg\":\"RS256\",\"kid\":\"k1\",\"typ\":\"at+jwt\"}",
			  claims()), ENTRA_JWT_BAD_HEADER, "typ \"at+jwt\"");
	check(sign_claims(k_rsa, "RS256", "{\"alg\":\"RS256\",\"kid\":\"k1\",\"typ\":1}", claims()),
	      ENTRA_JWT_BAD_HEADER, "typ");
}

/* Key material carried by the token is never used. */
static void test_header_embedded_keys(void **state)
{
	char *jwk = tk_jwk(k_attacker, "k1", NULL), *hdr;
	static const char *const prefixes[] = {
		"{\"alg\":\"RS256\",\"kid\":\"k1\",\"jwk\":",
		"{\"alg\":\"RS256\",\"kid\":\"k1\",\"jku\":\"https://evil.example/jwks\",\"x\":",
		"{\"alg\":\"RS256\",\"kid\":\"k1\",\"x5u\":\"https://evil.example/cert.pem\",\"x\":",
		"{\"alg\":\"RS256\",\"kid\":\"k1\",\"x5c\":[\"MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A\"],\"x\":",
	};
	(void)state;

	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
		hdr = xasprintf("%s%s}", prefixes[i], jwk);
		/* Signed by the attacker: fails against our JWKS. */
		check(sign_claims(k_attacker, "RS256", hdr, claims()), ENTRA_JWT_BAD_SIGNATURE,
		      "does not verify with key \"k1\"");
		/* Signed by the real key: the extra members change nothing. */
		check_ok(sign_claims(k_rsa, "RS256", hdr, claims()));
		free(hdr);
	}
	/* Without a kid and several keys, the embedded key is not a way in. */
	hdr = xasprintf("{\"alg\":\"RS256\",\"jwk\":%s}", jwk);
	check(sign_claims(k_attacker, "RS256", hdr, claims()), ENTRA_JWT_UNKNOWN_KID, "no kid");
	check_ex(sign_claims(k_attacker, "RS256", hdr, claims()), &jwks_single, &expect_default,
		 ENTRA_JWT_BAD_SIGNATURE, "does not verify");
	free(hdr);
	free(jwk);
	/* The attacker's key under our kid, with no embedded key at all. */
	check(sign_claims(k_attacker, "RS256", HDR_K1, claims()), ENTRA_JWT_BAD_SIGNATURE,
	      "does not verify");
}

static void test_header_kid_injection(void **state)
{
	char *big = malloc(10 * 1024 + 1), *hdr;
	(void)state;

	check(sign_claims(k_rsa, "RS256", "{\"alg\":\"RS256\",\"kid\":\"../../etc/passwd\"}", claims()),
	      ENTRA_JWT_UNKNOWN_KID, "no key with kid \"../../etc/passwd\"");
	check(sign_claims(k_rsa, "RS256", "{\"alg\":\"RS256\",\"kid\":\"k1' OR '1'='1\"}", claims()),
	      ENTRA_JWT_UNKNOWN_KID, "no key with kid");
	check(sign_claims(k_rsa, "RS256", "{\"alg\":\"RS256\",\"kid\":\"k1; rm -rf / #$(id)`id`\"}",
			  claims()), ENTRA_JWT_UNKNOWN_KID, "no key with kid");
	/* A kid with a newline and an escape does not forge a log line. */
	check(sign_claims(k_rsa, "RS256", "{\"alg\":\"RS256\",\"kid\":\"k1\\nroot login ok\\u001b[0m\"}",
			  claims()), ENTRA_JWT_UNKNOWN_KID, "k1?root login ok?[0m");
	check(sign_claims(k_rsa, "RS256", "{\"alg\":\"RS256\",\"kid\":\"K1\"}", claims()),
	      ENTRA_JWT_UNKNOWN_KID, "\"K1\"");
	check(sign_claims(k_rsa, "RS256", "{\"alg\":\"RS256\",\"kid\":\"k1 \"}", claims()),
	      ENTRA_JWT_UNKNOWN_KID, "no key");
	check(sign_claims(k_rsa, "RS256", "{\"alg\":\"RS256\",\"kid\":\"k1\\u0000\"}", claims()),
	      ENTRA_JWT_BAD_HEADER, "kid is not a string");
	check(sign_claims(k_rsa, "RS256", "{\"alg\":\"RS256\",\"kid\":1}", claims()),
	      ENTRA_JWT_BAD_HEADER, "kid is not a string");
	memset(big, 'A', 10 * 1024);
	big[10 * 1024] = '\0';
	hdr = xasprintf("{\"alg\":\"RS256\",\"kid\":\"%s\"}", big);
	check(sign_claims(k_rsa, "RS256", hdr, claims()), ENTRA_JWT_BAD_HEADER,
	      "kid longer than 256");
	free(hdr);
	/* 256 is allowed (and simply unknown), 257 is not. */
	big[256] = '\0';
	hdr = xasprintf("{\"alg\":\"RS256\",\"kid\":\"%s\"}", big);
	check(sign_claims(k_rsa, "RS256", hdr, claims()), ENTRA_JWT_UNKNOWN_KID, "...");
	free(hdr);
	big[256] = 'A';
	big[257] = '\0';
	hdr = xasprintf("{\"alg\":\"RS256\",\"kid\":\"%s\"}", big);
	check(sign_claims(k_rsa, "RS256", hdr, claims()), ENTRA_JWT_BAD_HEADER, "longer");
	free(hdr);
	free(big);
	/* No kid with several keys to choose from. */
	check(sign_claims(k_rsa, "RS256", "{\"alg\":\"RS256\"}", claims()), ENTRA_JWT_UNKNOWN_KID,
	      "no kid and there are 3 keys");
}

static void test_header_not_object(void **state)
{
	(void)state;
	check(sign_claims(k_rsa, "RS256", "[\"RS256\"]", claims()), ENTRA_JWT_MALFORMED,
	      "header is not an acceptable JSON object: not an object");
	check(sign_claims(k_rsa, "RS256", "\"RS256\"", claims()), ENTRA_JWT_MALFORMED, "header");
	check(sign_claims(k_rsa, "RS256", "{\"alg\":\"RS256\",", claims()), ENTRA_JWT_MALFORMED,
	      "header");
	check_ok(sign_claims(k_rsa, "RS256", "{\"alg\":\"RS256\",\"kid\":\"k1\"} ", claims()));
	check(sign_claims(k_rsa, "RS256", "{\"alg\":\"RS256\",\"kid\":\"k1\"}x", claims()),
	      ENTRA_JWT_MALFORMED, "trailing");
}

static void test_duplicate_members(void **state)
{
	char *token;
	(void)state;

	/* "alg" twice: a lenient parser would take either. */
	check(sign_claims(k_rsa, "RS256", "{\"alg\":\"none\",\"kid\":\"k1\",\"alg\":\"RS256\"}",
			  claims()), ENTRA_JWT_MALFORMED, "duplicate key");
	check(sign_claims(k_rsa, "RS256", "{\"alg\":\"RS256\",\"kid\":\"k1\",\"\\u0061lg\":\"RS256\"}",
			  claims()), ENTRA_JWT_MALFORMED, "duplicate key");
	/* "oid" twice in a correctly signed payload. */
	token = tk_token(k_rsa, "RS256", NULL, 0, HDR_K1,
			 "{\"aud\":\"" CLIENT "\",\"iss\":\"" ISS "\",\"iat\":1699999940,"
			 "\"exp\":1700003600,\"tid\":\"" TID "\",\"oid\":\"" OID "\","
			 "\"oid\":\"00000000-0000-0000-0000-000000000000\"}");
	check(token, ENTRA_JWT_MALFORMED, "payload is not an acceptable JSON object: duplicate key");
	token = tk_token(k_rsa, "RS256", NULL, 0, HDR_K1,
			 "{\"aud\":\"" CLIENT "\",\"iss\":\"" ISS "\",\"iat\":1699999940,"
			 "\"exp\":1700003600,\"tid\":\"" TID "\",\"oid\":\"" OID "\","
			 "\"x\":{\"a\":1,\"b\":{\"c\":1,\"\\u0063\":2}}}");
	check(token, ENTRA_JWT_MALFORMED, "duplicate key");
}

/* ------------------------------------------------------------------ */
/* Structure and encoding                                             */

static void test_signature_bit_flips(void **state)
{
	(void)state;
	check(flip_sig_byte(rs256(claims()), 0), ENTRA_JWT_BAD_SIGNATURE, "RS256 signature");
	check(flip_sig_byte(rs256(claims()), 128), ENTRA_JWT_BAD_SIGNATURE, "RS256 signature");
	check(flip_sig_byte(rs256(claims()), -1), ENTRA_JWT_BAD_SIGNATURE, "RS256 signature");
	check(flip_sig_byte(sign_claims(k_rsa, "PS256", HDR_PS, claims()), 7),
	      ENTRA_JWT_BAD_SIGNATURE, "PS256");
	check(flip_sig_byte(sign_claims(k_ec, "ES256", HDR_EC, claims()), 0),
	      ENTRA_JWT_BAD_SIGNATURE, "ES256");
	check(flip_sig_byte(sign_claims(k_ec, "ES256", HDR_EC, claims()), -1),
	      ENTRA_JWT_BAD_SIGNATURE, "ES256");
}

static void test_payload_tampering(void **state)
{
	char *good = rs256(claims()), *evil, *dot1, *dot2, *payload, *token;
	struct json_object *c = claims();
	(void)state;

	/* Someone else's oid under the original header and signature. */
	set(c, "oid", json_object_new_string("00000000-0000-0000-0000-000000000000"));
	evil = tk_b64(json_object_to_json_string_ext(c, JSON_C_TO_STRING_PLAIN));
	json_object_put(c);
	dot1 = strchr(good, '.');
	dot2 = strchr(dot1 + 1, '.');
	*dot1 = '\0';
	token = xasprintf("%s.%s%s", good, evil, dot2);
	check(token, ENTRA_JWT_BAD_SIGNATURE, "does not verify");
	/* The signature is over the exact text: re-encoding differently
	 * (here: a padded payload) is malformed, not re-normalised. */
	payload = xasprintf("%s.%.*s=%s", good, (int)(dot2 - dot1 - 1), dot1 + 1, dot2);
	check(payload, ENTRA_JWT_MALFORMED, "not base64url");
	free(evil);
	free(good);
}

static void test_truncated_segments(void **state)
{
	char *good = rs256(claims()), *dot2 = strrchr(good, '.');
	(void)state;

	check(xasprintf("%.*s", (int)(dot2 - good), good), ENTRA_JWT_MALFORMED,
	      "2 segments instead of three");
	check(xasprintf("%s.", good), ENTRA_JWT_MALFORMED, "more than three segments");
	check(xasprintf("%s.%s", good, dot2 + 1), ENTRA_JWT_MALFORMED, "more than three");
	check(xasprintf("%.*s.", (int)(dot2 - good), good), ENTRA_JWT_MALFORMED,
	      "empty signature segment");
	check(xasprintf(".%s", strchr(good, '.') + 1), ENTRA_JWT_MALFORMED, "empty header");
	check(strdup(".."), ENTRA_JWT_MALFORMED, "empty header");
	check(strdup(""), ENTRA_JWT_MALFORMED, "empty header");
	check(strdup("abc"), ENTRA_JWT_MALFORMED, "segments");
	/* The signature cut short by one base64 character. */
	check(xasprintf("%.*s", (int)strlen(good) - 1, good), ENTRA_JWT_MALFORMED,
	      "signature segment is not valid base64url");
	/* A well-encoded signature one byte short. */
	check(resign_bytes(strdup(good), -1), ENTRA_JWT_BAD_SIGNATURE, "does not verify");
	check(resign_bytes(strdup(good), 1), ENTRA_JWT_BAD_SIGNATURE, "does not verify");
	free(good);
	check(NULL, ENTRA_JWT_MALFORMED, "no token");
}

static void test_bad_base64url(void **state)
{
	char *good = rs256(claims());
	size_t len = strlen(good);
	char *dot2 = strrchr(good, '.');
	size_t s = (size_t)(dot2 - good) + 1;
	(void)state;

	check(xasprintf("%s=", good), ENTRA_JWT_MALFORMED, "not base64url (0x3d)");
	check(xasprintf("%s==", good), ENTRA_JWT_MALFORMED, "0x3d");
	check(xasprintf("%.*s+%s", (int)s, good, good + s + 1), ENTRA_JWT_MALFORMED, "0x2b");
	check(xasprintf("%.*s/%s", (int)s, good, good + s + 1), ENTRA_JWT_MALFORMED, "0x2f");
	check(xasprintf(" %s", good), ENTRA_JWT_MALFORMED, "byte 0");
	check(xasprintf("%s\n", good), ENTRA_JWT_MALFORMED, "0x0a");
	check(xasprintf("%.*s %s", (int)s, good, good + s), ENTRA_JWT_MALFORMED, "0x20");
	check(xasprintf("%.*s\t%s", 10, good, good + 10), ENTRA_JWT_MALFORMED, "0x09");
	check(xasprintf("%.*s\xc3\xa9%s", 10, good, good + 10), ENTRA_JWT_MALFORMED, "0xc3");
	/* Non-zero trailing bits in the header: "e30" is "{}", "e31" is not. */
	check(xasprintf("e31%s", strchr(good, '.')), ENTRA_JWT_MALFORMED,
	      "header segment is not valid base64url");
	(void)len;
	free(good);
}

static void test_payload_shape(void **state)
{
	(void)state;

	check(tk_token(k_rsa, "RS256", NULL, 0, HDR_K1, "[{\"oid\":\"" OID "\"}]"),
	      ENTRA_JWT_MALFORMED, "payload is not an acceptable JSON object: not an object");
	check(tk_token(k_rsa, "RS256", NULL, 0, HDR_K1, "\"oid\""), ENTRA_JWT_MALFORMED,
	      "not an object");
	check(tk_token(k_rsa, "RS256", NULL, 0, HDR_K1, "{\"exp\":1700003600,}"),
	      ENTRA_JWT_MALFORMED, "syntax");
	check(tk_token_n(k_rsa, "RS256", NULL, 0, HDR_K1, strlen(HDR_K1), "{\"exp\":1}\0", 10),
	      ENTRA_JWT_MALFORMED, "NUL");
	/* Deeply nested claims, correctly signed. */
	for (int depth = 15; depth <= 200; depth += 185) {
		size_t cap = (size_t)depth * 8 + 256, off;
		char *payload = malloc(cap);

		assert_non_null(payload);
		off = (size_t)snprintf(payload, cap,
				       "{\"aud\":\"" CLIENT "\",\"iss\":\"" ISS "\",\"iat\":1699999940,"
				       "\"exp\":1700003600,\"tid\":\"" TID "\",\"oid\":\"" OID "\",\"x\":");
		for (int i = 0; i < depth; i++)
			off += (size_t)snprintf(payload + off, cap - off, "[");
		for (int i = 0; i < depth; i++)
			off += (size_t)snprintf(payload + off, cap - off, "]");
		snprintf(payload + off, cap - off, "}");
		/* 15 arrays inside the object make 16 levels: the limit. */
		if (depth == 15)
			check_ok(tk_token(k_rsa, "RS256", NULL, 0, HDR_K1, payload));
		else
			check(tk_token(k_rsa, "RS256", NULL, 0, HDR_K1, payload), ENTRA_JWT_MALFORMED,
			      "nested too deep");
		free(payload);
	}
}

static void test_oversized(void **state)
{
	size_t n = 1024 * 1024;
	char *big = malloc(n + 1);
	struct timespec t0, t1;
	double secs;
	(void)state;

	memset(big, 'A', n);
	big[100] = '.';
	big[n / 2] = '.';
	big[n] = '\0';
	clock_gettime(CLOCK_MONOTONIC, &t0);
	check(big, ENTRA_JWT_MALFORMED, "longer than 65536 bytes");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	/* Only the first 64 KiB + 1 bytes are ever read. */
	assert_true(secs < 0.5);
	big = malloc(n + 1);
	memset(big, 'A', n);
	big[n] = '\0';
	assert_null(entra_jwt_decode_unverified(big));
	free(big);
}

/* ------------------------------------------------------------------ */
/* Time claims                                                        */

static void test_times(void **state)
{
	struct entra_jwt_expect e = expect_default;
	struct json_object *c;
	(void)state;

	c = claims();
	set(c, "exp", json_object_new_int64(NOW - 3600));
	check(rs256(c), ENTRA_JWT_EXPIRED, "exp 1699996400 is 3600 s in the past (skew 60 s)");
	/* Expired 30 s ago, within the 60 s skew: accepted. */
	c = claims();
	set(c, "exp", json_object_new_int64(NOW - 30));
	check_ok(rs256(c));
	/* Exactly at the edge: now == exp + skew is still valid. */
	c = claims();
	set(c, "exp", json_object_new_int64(NOW - 60));
	check_ok(rs256(c));
	c = claims();
	set(c, "exp", json_object_new_int64(NOW - 61));
	check(rs256(c), ENTRA_JWT_EXPIRED, "61 s in the past");
	/* The skew is capped at 120 s, and a negative one counts as 0. */
	e.clock_skew = 100000;
	c = claims();
	set(c, "exp", json_object_new_int64(NOW - 200));
	check_ex(rs256(c), &jwks_main, &e, ENTRA_JWT_EXPIRED, "skew 120 s");
	e.clock_skew = -5;
	c = claims();
	set(c, "exp", json_object_new_int64(NOW - 1));
	check_ex(rs256(c), &jwks_main, &e, ENTRA_JWT_EXPIRED, "skew 0 s");

	c = claims();
	set(c, "nbf", json_object_new_int64(NOW + 600));
	check(rs256(c), ENTRA_JWT_NOT_YET_VALID, "nbf 1700000600 is 600 s in the future");
	c = claims();
	set(c, "nbf", json_object_new_int64(NOW + 50));
	check_ok(rs256(c));
	c = claims();
	set(c, "iat", json_object_new_int64(NOW + 86400 * 365));
	check(rs256(c), ENTRA_JWT_ISSUED_IN_FUTURE, "iat 1731536000 is 31536000 s in the future");
	c = claims();
	set(c, "iat", json_object_new_int64(NOW + 50));
	check_ok(rs256(c));
	/* Extreme values do not overflow into acceptance. */
	c = claims();
	set(c, "exp", json_object_new_int64(INT64_MIN));
	check(rs256(c), ENTRA_JWT_EXPIRED, "exp -9223372036854775808");
	c = claims();
	set(c, "iat", json_object_new_int64(INT64_MAX));
	check(rs256(c), ENTRA_JWT_ISSUED_IN_FUTURE, "iat 9223372036854775807");
	c = claims();
	set(c, "exp", json_object_new_uint64(UINT64_MAX));
	check(rs256(c), ENTRA_JWT_MISSING_CLAIM, "exp is not an integer");
}

static void test_time_claim_types(void **state)
{
	struct json_object *c;
	(void)state;

	c = claims();
	json_object_object_del(c, "exp");
	check(rs256(c), ENTRA_JWT_MISSING_CLAIM, "claim exp missing");
	c = claims();
	set(c, "exp", json_object_new_string("1700003600"));
	check(rs256(c), ENTRA_JWT_MISSING_CLAIM, "claim exp is not an integer");
	c = claims();
	set(c, "exp", json_object_new_double(1700003600.5));
	check(rs256(c), ENTRA_JWT_MISSING_CLAIM, "exp is not an integer");
	c = claims();
	set(c, "exp", NULL); /* JSON null */
	check(rs256(c), ENTRA_JWT_MISSING_CLAIM, "exp is not an integer");
	c = claims();
	json_object_object_del(c, "iat");
	check(rs256(c), ENTRA_JWT_MISSING_CLAIM, "claim iat missing");
	c = claims();
	set(c, "nbf", json_object_new_boolean(1));
	check(rs256(c), ENTRA_JWT_MISSING_CLAIM, "claim nbf is not an integer");
	c = claims();
	set(c, "iat", json_tokener_parse("[1699999940]"));
	check(rs256(c), ENTRA_JWT_MISSING_CLAIM, "iat is not an integer");
}

/* ------------------------------------------------------------------ */
/* Issuer, audience, tenant, required claims                          */

static void test_issuer(void **state)
{
	struct json_object *c;
	struct entra_jwt_expect e = expect_default;
	struct entra_jwks other;
	char *jwk;
	(void)state;

	c = claims();
	set(c, "iss", json_object_new_string("https://sts.windows.net/" TID "/"));
	check(rs256(c), ENTRA_JWT_BAD_ISSUER,
	      "iss \"https://sts.windows.net/" TID "/\" is not the expected issuer \"" ISS "\"");
	c = claims();
	set(c, "iss", json_object_new_string(ISS "/"));
	check(rs256(c), ENTRA_JWT_BAD_ISSUER, "is not the expected issuer");
	c = claims();
	json_object_object_del(c, "iss");
	check(rs256(c), ENTRA_JWT_BAD_ISSUER, "claim iss missing");
	/* Template: tid must be a GUID, and it is what fills the template. */
	c = claims();
	set(c, "tid", json_object_new_string("common"));
	set(c, "iss", json_object_new_string("https://login.microsoftonline.com/common/v2.0"));
	check(rs256(c), ENTRA_JWT_BAD_ISSUER, "tid \"common\" is not a GUID");
	c = claims();
	set(c, "tid", json_object_new_string("../" TID));
	check(rs256(c), ENTRA_JWT_BAD_ISSUER, "is not a GUID");
	c = claims();
	json_object_object_del(c, "tid");
	check(rs256(c), ENTRA_JWT_BAD_ISSUER, "tid \"(missing or not a string)\" is not a GUID");
	/* Another tenant's token passes the template but not the pin. */
	c = claims();
	set(c, "tid", json_object_new_string("00000000-1111-2222-3333-444444444444"));
	set(c, "iss", json_object_new_string(
			"https://login.microsoftonline.com/00000000-1111-2222-3333-444444444444/v2.0"));
	check(rs256(c), ENTRA_JWT_BAD_TENANT, "tid \"00000000-1111-2222-3333-444444444444\"");
	/* A newline in a bad iss is neutralised in the reason. */
	c = claims();
	set(c, "iss", json_object_new_string("https://evil\nAccepted"));
	check(rs256(c), ENTRA_JWT_BAD_ISSUER, "https://evil?Accepted");

	/* The signing key's own issuer property must match too. */
	jwk = tk_jwk(k_rsa, "k1", "\"issuer\":\"https://login.microsoftonline.com/{tenantid}/oauth2\"");
	jwks_from(&other, 1, "{\"keys\":[%s]}", jwk);
	free(jwk);
	assert_non_null(other.keys[0].issuer);
	check_ex(rs256(claims()), &other, &e, ENTRA_JWT_BAD_ISSUER, "signing key's issuer");
	/* ... even when the expected issuer is a fixed string. */
	e.issuer = ISS;
	check_ex(rs256(claims()), &other, &e, ENTRA_JWT_BAD_ISSUER, "signing key's issuer");
	entra_jwks_free(&other);
	/* No expected issuer configured: refuse. */
	e.issuer = NULL;
	check_ex(rs256(claims()), &jwks_main, &e, ENTRA_JWT_BAD_ISSUER, "no expected issuer");
}

static void test_audience(void **state)
{
	struct json_object *c;
	struct entra_jwt_expect e = expect_default;
	(void)state;

	c = claims();
	set(c, "aud", json_object_new_string("https://management.azure.com"));
	check(rs256(c), ENTRA_JWT_BAD_AUDIENCE,
	      "aud \"https://management.azure.com\" is not \"" CLIENT "\"");
	c = claims();
	set(c, "aud", json_object_new_string("6D8F5C3E-2A41-4B7E-9C10-3F2E1D0C9B8A"));
	check(rs256(c), ENTRA_JWT_BAD_AUDIENCE, "is not");
	c = claims();
	set(c, "aud", json_tokener_parse("[\"a\",\"b\"]"));
	check(rs256(c), ENTRA_JWT_BAD_AUDIENCE, "aud array does not contain \"" CLIENT "\"");
	c = claims();
	set(c, "aud", json_tokener_parse("[\"" CLIENT "\", 1]"));
	check(rs256(c), ENTRA_JWT_BAD_AUDIENCE, "neither a string nor an array of strings");
	c = claims();
	set(c, "aud", json_tokener_parse("[]"));
	check(rs256(c), ENTRA_JWT_BAD_AUDIENCE, "does not contain");
	c = claims();
	json_object_object_del(c, "aud");
	check(rs256(c), ENTRA_JWT_BAD_AUDIENCE, "claim aud missing");
	e.audience = NULL;
	check_ex(rs256(claims()), &jwks_main, &e, ENTRA_JWT_BAD_AUDIENCE, "no expected audience");
}

static void test_tenant(void **state)
{
	struct json_object *c;
	struct entra_jwt_expect e = expect_default;
	(void)state;

	/* A fixed issuer and the EC key (which has no issuer property), so
	 * that only the pin looks at tid. */
	e.issuer = ISS;
	c = claims();
	set(c, "tid", json_object_new_string("00000000-1111-2222-3333-444444444444"));
	check_ex(sign_claims(k_ec, "ES256", HDR_EC, c), &jwks_main, &e, ENTRA_JWT_BAD_TENANT,
		 "is not the tenant " TID);
	c = claims();
	json_object_object_del(c, "tid");
	check_ex(sign_claims(k_ec, "ES256", HDR_EC, c), &jwks_main, &e, ENTRA_JWT_BAD_TENANT,
		 "tid \"(missing or not a string)\"");
	c = claims();
	set(c, "tid", json_object_new_string(TID " "));
	check_ex(sign_claims(k_ec, "ES256", HDR_EC, c), &jwks_main, &e, ENTRA_JWT_BAD_TENANT,
		 "is not the tenant");
	c = claims();
	set(c, "tid", json_object_new_int(1));
	check_ex(sign_claims(k_ec, "ES256", HDR_EC, c), &jwks_main, &e, ENTRA_JWT_BAD_TENANT,
		 "tid \"(missing or not a string)\"");
}

static void test_required_claims(void **state)
{
	struct json_object *c;
	static const char *const req2[] = { "oid", "preferred_username", NULL };
	struct entra_jwt_expect e = expect_default;
	(void)state;

	c = claims();
	json_object_object_del(c, "oid");
	check(rs256(c), ENTRA_JWT_MISSING_CLAIM, "claim oid missing");
	c = claims();
	set(c, "oid", json_object_new_int(42));
	check(rs256(c), ENTRA_JWT_MISSING_CLAIM, "claim oid is not a non-empty string");
	c = claims();
	set(c, "oid", json_object_new_string(""));
	check(rs256(c), ENTRA_JWT_MISSING_CLAIM, "oid is not a non-empty string");
	c = claims();
	set(c, "oid", json_object_new_string_len(OID "\0evil", (int)sizeof(OID) + 4));
	check(rs256(c), ENTRA_JWT_MISSING_CLAIM, "oid is not a non-empty string");
	e.required_claims = req2;
	c = claims();
	json_object_object_del(c, "preferred_username");
	check_ex(rs256(c), &jwks_main, &e, ENTRA_JWT_MISSING_CLAIM, "preferred_username missing");
}

/* Values are checked for type, never rewritten: the policy layer decides
 * whether a name is safe (entra_name_is_valid / entra_value_is_safe). */
static void test_hostile_values_untouched(void **state)
{
	static const char nasty[] = "alice\n$(reboot);`id`|&>/etc/passwd ../..";
	struct json_object *c, *out;
	(void)state;

	c = claims();
	set(c, "preferred_username", json_object_new_string(nasty));
	set(c, "name", json_object_new_string_len("Eve\0root", 8));
	set(c, "groups", json_tokener_parse("[\"a\\nb\",\"x\\u0000y\"]"));
	out = check(rs256(c), ENTRA_JWT_OK, "ok");
	assert_string_equal(entra_json_get_string(out, "preferred_username"), nasty);
	assert_true(json_object_object_get_ex(out, "name", &c));
	assert_int_equal(json_object_get_string_len(c), 8);
	assert_memory_equal(json_object_get_string(c), "Eve\0root", 8);
	assert_null(entra_json_get_string(out, "name")); /* not usable as a C string */
	assert_null(entra_json_get_string_array(out, "groups"));
	json_object_put(out);
}

/* ------------------------------------------------------------------ */
/* Key sets                                                           */

static void test_jwks_weak_and_unusable(void **state)
{
	struct entra_jwks j;
	char *small = tk_jwk(k_small, "small", NULL), *good = tk_jwk(k_rsa, "k1", NULL);
	char *ec = tk_jwk(k_ec, "e1", NULL), *bad_point;
	(void)state;

	/* 1024-bit RSA is refused, alone or next to a good key. */
	jwks_from(&j, 0, "{\"keys\":[%s]}", small);
	jwks_from(&j, 1, "{\"keys\":[%s,%s]}", small, good);
	assert_string_equal(j.keys[0].kid, "k1");
	check_ex(sign_claims(k_small, "RS256", "{\"alg\":\"RS256\",\"kid\":\"small\"}", claims()),
		 &j, &expect_default, ENTRA_JWT_UNKNOWN_KID, "\"small\"");
	entra_jwks_free(&j);
	/* Nothing usable: encryption keys, symmetric keys, other curves,
	 * broken numbers, wrong types. */
	jwks_from(&j, 0,
		  "{\"keys\":[{\"kty\":\"RSA\",\"use\":\"enc\",\"n\":\"%s\",\"e\":\"AQAB\"},"
		  "{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"},"
		  "{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"AA\",\"y\":\"AA\"},"
		  "{\"kty\":\"RSA\",\"n\":\"%%%%\",\"e\":\"AQAB\"},"
		  "{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"},"
		  "{\"kty\":\"RSA\",\"use\":1,\"n\":\"AQAB\",\"e\":\"AQAB\"},"
		  "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AA\",\"y\":\"AA\"},"
		  "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AA\"},"
		  "\"not a key\",42,null]}", "AQAB");
	/* The same good key, but marked for encryption or with a bad kid. */
	jwks_from(&j, 0, "{\"keys\":[%.*s,\"use\":\"enc\"}]}", (int)strlen(good) - 1, good);
	jwks_from(&j, 0, "{\"keys\":[%.*s,\"use\":\"SIG\"}]}", (int)strlen(good) - 1, good);
	/* An EC key claiming another algorithm. */
	jwks_from(&j, 0, "{\"keys\":[%.*s,\"alg\":\"RS256\"}]}", (int)strlen(ec) - 1, ec);
	/* An EC point that is not on the curve: flip a bit of x. */
	bad_point = strdup(ec);
	{
		char *x = strstr(bad_point, "\"x\":\"") + 5;

		*x = (*x == 'A') ? 'B' : 'A';
	}
	jwks_from(&j, 0, "{\"keys\":[%s]}", bad_point);
	free(bad_point);
	/* Documents that are not key sets. */
	jwks_from(&j, 0, "{\"keys\":[]}");
	jwks_from(&j, 0, "{\"keys\":{}}");
	jwks_from(&j, 0, "[%s]", good);
	jwks_from(&j, 0, "{\"keys\":[%s]} trailing", good);
	jwks_from(&j, 0, "{\"keys\":[%s],\"keys\":[]}", good);
	assert_int_equal(entra_jwks_parse(NULL, 0, &j), -EINVAL);
	assert_int_equal(entra_jwks_parse("{}", 2, NULL), -EINVAL);
	free(small);
	free(good);
	free(ec);
}

/* OpenSSL's public-key validation runs when keys arrive from the network;
 * a document read back from our own root-only cache passed it already. */
static void test_jwks_validated_on_arrival(void **state)
{
	/* 2^2048 - 1: odd, 2048 bits, divisible by 3. */
	char n[343], *doc;
	struct entra_jwks j;
	(void)state;

	memset(n, '_', 341);
	n[341] = 'w';
	n[342] = '\0';
	assert_true(asprintf(&doc, "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"f\",\"n\":\"%s\",\"e\":\"AQAB\"}]}", n) > 0);
	assert_int_equal(entra_jwks_parse(doc, strlen(doc), &j), -EINVAL);
	assert_int_equal(entra_jwks_parse_cached(doc, strlen(doc), &j), 0);
	assert_int_equal(j.count, 1);
	entra_jwks_free(&j);
	free(doc);
	/* The structural checks stay: an even modulus is refused either way. */
	n[341] = 'g';
	assert_true(asprintf(&doc, "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"f\",\"n\":\"%s\",\"e\":\"AQAB\"}]}", n) > 0);
	assert_int_equal(entra_jwks_parse_cached(doc, strlen(doc), &j), -EINVAL);
	free(doc);
}

static void test_jwks_parse_details(void **state)
{
	struct entra_jwks j;
	char *a = tk_jwk(k_rsa, "dup", NULL), *b = tk_jwk(k_rsa2, "dup", NULL);
	char *c = tk_jwk(k_rsa, "rs512", "\"alg\":\"RS512\""), *d = tk_jwk(k_rsa2, NULL, NULL);
	(void)state;

	/* A kid names one key: the first wins. */
	jwks_from(&j, 1, "{\"keys\":[%s,%s]}", a, b);
	check_ex(sign_claims(k_rsa2, "RS256", "{\"alg\":\"RS256\",\"kid\":\"dup\"}", claims()),
		 &j, &expect_default, ENTRA_JWT_BAD_SIGNATURE, "\"dup\"");
	check_ok_ex(sign_claims(k_rsa, "RS256", "{\"alg\":\"RS256\",\"kid\":\"dup\"}", claims()),
		    &j, &expect_default);
	entra_jwks_free(&j);
	/* An RSA key advertising an alg we do not do verifies RS256. */
	jwks_from(&j, 2, "{\"keys\":[%s,%s]}", c, d);
	assert_string_equal(j.keys[0].alg, "RS256");
	assert_null(j.keys[1].kid);
	assert_null(j.keys[1].issuer);
	/* A key without kid is never chosen for a token that names one... */
	check_ex(sign_claims(k_rsa2, "RS256", "{\"alg\":\"RS256\",\"kid\":\"\"}", claims()),
		 &j, &expect_default, ENTRA_JWT_UNKNOWN_KID, "no key with kid");
	/* ... nor for one without, when there are two keys. */
	check_ex(sign_claims(k_rsa2, "RS256", "{\"alg\":\"RS256\"}", claims()),
		 &j, &expect_default, ENTRA_JWT_UNKNOWN_KID, "2 keys");
	entra_jwks_free(&j);
	entra_jwks_free(&j); /* idempotent */
	free(a);
	free(b);
	free(c);
	free(d);
	check_ex(rs256(claims()), NULL, &expect_default, ENTRA_JWT_UNKNOWN_KID, "no signing keys");
}

static void test_key_rollover(void **state)
{
	(void)state;
	/* Signed with the new key k2, checked against the old set. */
	check(sign_claims(k_rsa2, "RS256", "{\"alg\":\"RS256\",\"kid\":\"k2\"}", claims()),
	      ENTRA_JWT_UNKNOWN_KID, "no key with kid \"k2\" among 3 keys");
	/* After the refetch the new set has it; old tokens still verify. */
	check_ok_ex(sign_claims(k_rsa2, "RS256", "{\"alg\":\"RS256\",\"kid\":\"k2\"}", claims()),
		    &jwks_new, &expect_default);
	json_object_put(check_ex(rs256(claims()), &jwks_new, &expect_default, ENTRA_JWT_OK, "ok"));
	/* k2's kid with k1's signature is still refused. */
	check_ex(sign_claims(k_rsa, "RS256", "{\"alg\":\"RS256\",\"kid\":\"k2\"}", claims()),
		 &jwks_new, &expect_default, ENTRA_JWT_BAD_SIGNATURE, "\"k2\"");
}

/* ------------------------------------------------------------------ */

static void test_decode_unverified(void **state)
{
	struct json_object *c = claims(), *out;
	char *token;
	(void)state;

	set(c, "exp", json_object_new_int64(1));
	token = sign_claims(k_attacker, "RS256", HDR_K1, c);
	out = entra_jwt_decode_unverified(token);
	assert_non_null(out);
	assert_string_equal(entra_json_get_string(out, "oid"), OID);
	json_object_put(out);
	free(token);
	assert_null(entra_jwt_decode_unverified(NULL));
	assert_null(entra_jwt_decode_unverified("a.b"));
	assert_null(entra_jwt_decode_unverified("e30.e30."));
	assert_null(entra_jwt_decode_unverified("e30.W10.AA"));  /* payload [] */
	assert_null(entra_jwt_decode_unverified("W10.e30.AA"));  /* header [] */
	out = entra_jwt_decode_unverified("e30.e30.AA");
	assert_non_null(out);
	json_object_put(out);
}

static void test_status_strings(void **state)
{
	(void)state;
	for (int s = ENTRA_JWT_OK; s <= ENTRA_JWT_MISSING_CLAIM; s++) {
		const char *str = entra_jwt_status_str((enum entra_jwt_status)s);

		assert_non_null(str);
		assert_string_not_equal(str, "unknown status");
	}
	assert_string_equal(entra_jwt_status_str((enum entra_jwt_status)99), "unknown status");
	assert_int_equal(entra_jwt_verify("x", &jwks_main, NULL, NULL, NULL, 0),
			 ENTRA_JWT_BAD_ISSUER);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_rs256),
		cmocka_unit_test(test_good_ps256_es256),
		cmocka_unit_test(test_good_variants),
		cmocka_unit_test(test_rfc7515_vectors),
		cmocka_unit_test(test_alg_none),
		cmocka_unit_test(test_alg_hmac_confusion),
		cmocka_unit_test(test_alg_unsupported),
		cmocka_unit_test(test_alg_key_mismatch),
		cmocka_unit_test(test_header_crit_typ),
		cmocka_unit_test(test_header_embedded_keys),
		cmocka_unit_test(test_header_kid_injection),
		cmocka_unit_test(test_header_not_object),
		cmocka_unit_test(test_duplicate_members),
		cmocka_unit_test(test_signature_bit_flips),
		cmocka_unit_test(test_payload_tampering),
		cmocka_unit_test(test_truncated_segments),
		cmocka_unit_test(test_bad_base64url),
		cmocka_unit_test(test_payload_shape),
		cmocka_unit_test(test_oversized),
		cmocka_unit_test(test_times),
		cmocka_unit_test(test_time_claim_types),
		cmocka_unit_test(test_issuer),
		cmocka_unit_test(test_audience),
		cmocka_unit_test(test_tenant),
		cmocka_unit_test(test_required_claims),
		cmocka_unit_test(test_hostile_values_untouched),
		cmocka_unit_test(test_jwks_weak_and_unusable),
		cmocka_unit_test(test_jwks_validated_on_arrival),
		cmocka_unit_test(test_jwks_parse_details),
		cmocka_unit_test(test_key_rollover),
		cmocka_unit_test(test_decode_unverified),
		cmocka_unit_test(test_status_strings),
	};

	return cmocka_run_group_tests_name("jwt", tests, group_setup, group_teardown);
}
