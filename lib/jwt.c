#include "config.h"
#include "jwt.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include "b64.h"
#include "buf.h"
#include "json.h"
#include "names.h"

#define JWKS_MAX_LEN (1024 * 1024)
#define JWKS_MAX_KEYS 64
#define KID_MAX 256
#define RSA_MIN_BITS 2048
#define RSA_MAX_BITS 8192 /* bounds the cost of one verification */
#define CLOCK_SKEW_MAX 120
#define SHOWN_MAX 80      /* untrusted text quoted in a reason */

/* ------------------------------------------------------------------ */
/* Reasons                                                            */

static void set_reason(char *reason, size_t reason_len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_reason(char *reason, size_t reason_len, const char *fmt, ...)
{
	va_list ap;

	if (reason == NULL || reason_len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(reason, reason_len, fmt, ap);
	va_end(ap);
}

/* Untrusted text made fit for a log line: printable ASCII only (others
 * become '?'; quotes and backslashes too, so it cannot fake a field), cut
 * at SHOWN_MAX bytes. dst must hold SHOWN_MAX + 4 bytes. */
static const char *shown(char *dst, const char *src)
{
	size_t n = 0;

	if (src == NULL)
		return "(null)";
	for (; n < SHOWN_MAX && src[n] != '\0'; n++) {
		unsigned char c = (unsigned char)src[n];

		dst[n] = (char)((c < 0x20 || c >= 0x7f || c == '"' || c == '\\') ? '?' : c);
	}
	if (src[n] != '\0') {
		memcpy(dst + n, "...", 3);
		n += 3;
	}
	dst[n] = '\0';
	return dst;
}

typedef char shown_buf[SHOWN_MAX + 4];

const char *entra_jwt_status_str(enum entra_jwt_status status)
{
	switch (status) {
	case ENTRA_JWT_OK: return "ok";
	case ENTRA_JWT_MALFORMED: return "malformed token";
	case ENTRA_JWT_BAD_HEADER: return "bad header";
	case ENTRA_JWT_BAD_ALG: return "bad algorithm";
	case ENTRA_JWT_UNKNOWN_KID: return "unknown key id";
	case ENTRA_JWT_BAD_SIGNATURE: return "bad signature";
	case ENTRA_JWT_EXPIRED: return "expired";
	case ENTRA_JWT_NOT_YET_VALID: return "not yet valid";
	case ENTRA_JWT_ISSUED_IN_FUTURE: return "issued in the future";
	case ENTRA_JWT_BAD_ISSUER: return "bad issuer";
	case ENTRA_JWT_BAD_AUDIENCE: return "bad audience";
	case ENTRA_JWT_BAD_TENANT: return "bad tenant";
	case ENTRA_JWT_MISSING_CLAIM: return "missing claim";
	}
	return "unknown status";
}

/* ------------------------------------------------------------------ */
/* JWKS                                                               */

/* Member `key` as raw bytes from strict base64url; NULL if absent/bad. */
static unsigned char *b64url_member(struct json_object *obj, const char *key, size_t *len)
{
	const char *str = entra_json_get_string(obj, key);
	unsigned char *out;

	if (str == NULL || *str == '\0' || strchr(str, '=') != NULL)
		return NULL;
	if (entra_b64url_decode(str, strlen(str), &out, len) < 0)
		return NULL;
	return out;
}

static EVP_PKEY *pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld, bool validate)
{
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	EVP_PKEY_CTX *ctx = NULL, *check = NULL;
	EVP_PKEY *pkey = NULL;

	if (params == NULL)
		goto out;
	ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
		goto out;
	/* Point on the curve, RSA modulus composite and without small
	 * factors... (importing an EC point already checks it is on the curve) */
	if (!validate)
		goto out;
	check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	if (check == NULL || EVP_PKEY_public_check(check) != 1) {
		EVP_PKEY_free(pkey);
		pkey = NULL;
	}
out:
	EVP_PKEY_CTX_free(check);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	ERR_clear_error();
	return pkey;
}

static EVP_PKEY *rsa_from_jwk(struct json_object *jwk, bool validate)
{
	unsigned char *n_bin = NULL, *e_bin = NULL;
	size_t n_len = 0, e_len = 0;
	BIGNUM *n = NULL, *e = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	EVP_PKEY *pkey = NULL;
	int bits;

	n_bin = b64url_member(jwk, "n", &n_len);
	e_bin = b64url_member(jwk, "e", &e_len);
	if (n_bin == NULL || e_bin == NULL || e_len > 8)
		goto out;
	n = BN_bin2bn(n_bin, (int)n_len, NULL);
	e = BN_bin2bn(e_bin, (int)e_len, NULL);
	if (n == NULL || e == NULL)
		goto out;
	bits = BN_num_bits(n);
	if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS || !BN_is_odd(n) || !BN_is_odd(e) ||
	    BN_is_one(e))
		goto out;
	bld = OSSL_PARAM_BLD_new();
	if (bld == NULL || OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) != 1 ||
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) != 1)
		goto out;
	pkey = pkey_fromdata("RSA", bld, validate);
out:
	OSSL_PARAM_BLD_free(bld);
	BN_free(n);
	BN_free(e);
	free(n_bin);
	free(e_bin);
	return pkey;
}

static EVP_PKEY *ec_from_jwk(struct json_object *jwk, bool validate)
{
	unsigned char *x = NULL, *y = NULL, point[65];
	size_t x_len = 0, y_len = 0;
	OSSL_PARAM_BLD *bld = NULL;
	EVP_PKEY *pkey = NULL;
	const char *crv = entra_json_get_string(jwk, "crv");

	if (crv == NULL || strcmp(crv, "P-256") != 0)
		return NULL;
	x = b64url_member(jwk, "x", &x_len);
	y = b64url_member(jwk, "y", &y_len);
	if (x == NULL || y == NULL || x_len != 32 || y_len != 32)
		goto out;
	point[0] = 0x04; /* uncompressed */
	memcpy(point + 1, x, 32);
	memcpy(point + 33, y, 32);
	bld = OSSL_PARAM_BLD_new();
	if (bld == NULL ||
	    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) != 1 ||
	    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)) != 1)
		goto out;
	pkey = pkey_fromdata("EC", bld, validate);
out:
	OSSL_PARAM_BLD_free(bld);
	free(x);
	free(y);
	return pkey;
}

static bool has_member(struct json_object *obj, const char *key)
{
	return json_object_object_get_ex(obj, key, NULL);
}

/* 1 = usable key stored in *out, 0 = skipped, -ENOMEM. */
static int parse_jwk(struct json_object *jwk, const struct entra_jwks *sofar, bool validate,
		     struct entra_jwk *out)
{
	const char *kty, *use, *kid, *alg, *issuer;
	EVP_PKEY *pkey;

	if (!json_object_is_type(jwk, json_type_object))
		return 0;
	use = entra_json_get_string(jwk, "use");
	if (has_member(jwk, "use") && (use == NULL || strcmp(use, "sig") != 0))
		return 0;
	kid = entra_json_get_string(jwk, "kid");
	if (has_member(jwk, "kid") && (kid == NULL || *kid == '\0' || strlen(kid) > KID_MAX))
		return 0;
	alg = entra_json_get_string(jwk, "alg");
	if (has_member(jwk, "alg") && alg == NULL)
		return 0;
	issuer = entra_json_get_string(jwk, "issuer");
	if (has_member(jwk, "issuer") && issuer == NULL)
		return 0;
	/* The first key with a kid wins: a kid must name one key. */
	for (size_t i = 0; kid != NULL && i < sofar->count; i++)
		if (sofar->keys[i].kid != NULL && strcmp(sofar->keys[i].kid, kid) == 0)
			return 0;

	kty = entra_json_get_string(jwk, "kty");
	if (kty == NULL)
		return 0;
	if (strcmp(kty, "RSA") == 0) {
		/* An RSA key verifies PS256 only when it says so. */
		alg = (alg != NULL && strcmp(alg, "PS256") == 0) ? "PS256" : "RS256";
		pkey = rsa_from_jwk(jwk, validate);
	} else if (strcmp(kty, "EC") == 0) {
		if (alg != NULL && strcmp(alg, "ES256") != 0)
			return 0;
		alg = "ES256";
		pkey = ec_from_jwk(jwk, validate);
	} else {
		return 0;
	}
	if (pkey == NULL)
		return 0;

	out->kid = entra_strdup(kid);
	out->alg = strdup(alg);
	out->issuer = entra_strdup(issuer);
	out->key = pkey;
	if ((kid != NULL && out->kid == NULL) || out->alg == NULL ||
	    (issuer != NULL && out->issuer == NULL)) {
		free(out->kid);
		free(out->alg);
		free(out->issuer);
		EVP_PKEY_free(pkey);
		memset(out, 0, sizeof(*out));
		return -ENOMEM;
	}
	return 1;
}

static int jwks_parse(const char *json, size_t len, bool validate, struct entra_jwks *out)
{
	struct json_object *doc = NULL, *keys;
	size_t n;
	int rc = -EINVAL;

	if (out == NULL)
		return -EINVAL;
	out->keys = NULL;
	out->count = 0;
	if (json == NULL || len > JWKS_MAX_LEN)
		return -EINVAL;
	doc = entra_json_parse_object(json, len);
	if (doc == NULL || !json_object_object_get_ex(doc, "keys", &keys) ||
	    !json_object_is_type(keys, json_type_array))
		goto out;
	n = json_object_array_length(keys);
	if (n == 0 || n > JWKS_MAX_KEYS)
		goto out;
	out->keys = calloc(n, sizeof(*out->keys));
	if (out->keys == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		int r = parse_jwk(json_object_array_get_idx(keys, i), out, validate,
				  &out->keys[out->count]);

		if (r < 0) {
			rc = r;
			goto out;
		}
		out->count += (size_t)r;
	}
	rc = out->count > 0 ? 0 : -EINVAL;
out:
	json_object_put(doc);
	if (rc < 0)
		entra_jwks_free(out);
	return rc;
}

int entra_jwks_parse(const char *json, size_t len, struct entra_jwks *out)
{
	return jwks_parse(json, len, true, out);
}

int entra_jwks_parse_cached(const char *json, size_t len, struct entra_jwks *out)
{
	return jwks_parse(json, len, false, out);
}

void entra_jwks_free(struct entra_jwks *jwks)
{
	if (jwks == NULL)
		return;
	for (size_t i = 0; i < jwks->count; i++) {
		free(jwks->keys[i].kid);
		free(jwks->keys[i].alg);
		free(jwks->keys[i].issuer);
		EVP_PKEY_free(jwks->keys[i].key);
	}
	free(jwks->keys);
	jwks->keys = NULL;
	jwks->count = 0;
}

/* ------------------------------------------------------------------ */
/* Token structure                                                    */

struct jws {
	size_t signed_len;          /* header.payload, the signing input */
	unsigned char *header;
	size_t header_len;
	unsigned char *payload;
	size_t payload_len;
	unsigned char *sig;
	size_t sig_len;
};

static void jws_free(struct jws *j)
{
	/* An ID token is a bearer credential: wipe the decoded copies. */
	if (j->header != NULL)
		entra_free_secret_n(j->header, j->header_len);
	if (j->payload != NULL)
		entra_free_secret_n(j->payload, j->payload_len);
	free(j->sig);
	memset(j, 0, sizeof(*j));
}

static bool b64url_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_';
}

/* Three non-empty segments of strict, unpadded base64url. */
static enum entra_jwt_status jws_split(const char *token, struct jws *j,
				       char *reason, size_t reason_len)
{
	static const char *const names[3] = { "header", "payload", "signature" };
	unsigned char **dst[3] = { &j->header, &j->payload, &j->sig };
	size_t *dst_len[3] = { &j->header_len, &j->payload_len, &j->sig_len };
	const char *seg = token;
	size_t total;
	int nseg = 0;

	memset(j, 0, sizeof(*j));
	if (token == NULL) {
		set_reason(reason, reason_len, "no token");
		return ENTRA_JWT_MALFORMED;
	}
	total = strnlen(token, ENTRA_JWT_MAX_LEN + 1);
	if (total > ENTRA_JWT_MAX_LEN) {
		set_reason(reason, reason_len, "token longer than %d bytes", ENTRA_JWT_MAX_LEN);
		return ENTRA_JWT_MALFORMED;
	}
	for (size_t i = 0; i <= total; i++) {
		char c = token[i];

		if (c != '.' && c != '\0') {
			if (!b64url_char(c)) {
				set_reason(reason, reason_len,
					   "byte %zu of the token is not base64url (0x%02x)", i,
					   (unsigned)(unsigned char)c);
				goto malformed;
			}
			continue;
		}
		if (nseg == 3) {
			set_reason(reason, reason_len, "more than three segments");
			goto malformed;
		}
		/* An empty signature is refused by the callers, after the
		 * header has been looked at: "alg":"none" deserves its own
		 * reason. */
		if (token + i == seg && nseg < 2) {
			set_reason(reason, reason_len, "empty %s segment", names[nseg]);
			goto malformed;
		}
		if (entra_b64url_decode(seg, (size_t)(token + i - seg), dst[nseg], dst_len[nseg]) < 0) {
			set_reason(reason, reason_len, "%s segment is not valid base64url", names[nseg]);
			goto malformed;
		}
		if (nseg == 1)
			j->signed_len = i;
		nseg++;
		seg = token + i + 1;
	}
	if (nseg != 3) {
		set_reason(reason, reason_len, "%d segments instead of three", nseg);
		goto malformed;
	}
	return ENTRA_JWT_OK;
malformed:
	jws_free(j);
	return ENTRA_JWT_MALFORMED;
}

static struct json_object *parse_part(const unsigned char *text, size_t len, const char *what,
				      char *reason, size_t reason_len)
{
	const char *error = NULL;
	struct json_object *obj = entra_json_parse_ex((const char *)text, len, true, &error);

	if (obj == NULL)
		set_reason(reason, reason_len, "%s is not an acceptable JSON object: %s", what,
			   error != NULL ? error : "?");
	return obj;
}

struct json_object *entra_jwt_decode_unverified(const char *token)
{
	struct json_object *header, *payload = NULL;
	struct jws j;

	if (jws_split(token, &j, NULL, 0) != ENTRA_JWT_OK)
		return NULL;
	if (j.sig_len == 0) {
		jws_free(&j);
		return NULL;
	}
	header = entra_json_parse_object((const char *)j.header, j.header_len);
	if (header != NULL)
		payload = entra_json_parse_object((const char *)j.payload, j.payload_len);
	json_object_put(header);
	jws_free(&j);
	return payload;
}

/* ------------------------------------------------------------------ */
/* Signature                                                          */

/* JOSE ES256 signatures are r || s (32 bytes each); OpenSSL wants DER. */
static unsigned char *es256_to_der(const unsigned char *sig, size_t sig_len, int *der_len)
{
	ECDSA_SIG *esig = NULL;
	BIGNUM *r = NULL, *s = NULL;
	unsigned char *der = NULL;

	if (sig_len != 64)
		return NULL;
	esig = ECDSA_SIG_new();
	r = BN_bin2bn(sig, 32, NULL);
	s = BN_bin2bn(sig + 32, 32, NULL);
	if (esig == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(esig, r, s) != 1) {
		BN_free(r);
		BN_free(s);
		goto out;
	}
	*der_len = i2d_ECDSA_SIG(esig, &der);
	if (*der_len <= 0) {
		OPENSSL_free(der);
		der = NULL;
	}
out:
	ECDSA_SIG_free(esig);
	return der;
}

static bool signature_ok(const struct entra_jwk *key, const char *input, size_t input_len,
			 const unsigned char *sig, size_t sig_len)
{
	EVP_MD_CTX *md = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	unsigned char *der = NULL;
	int der_len = 0;
	bool ok = false;

	if (strcmp(key->alg, "ES256") == 0) {
		der = es256_to_der(sig, sig_len, &der_len);
		if (der == NULL)
			goto out;
		sig = der;
		sig_len = (size_t)der_len;
	} else if (EVP_PKEY_get_size(key->key) <= 0 ||
		   sig_len != (size_t)EVP_PKEY_get_size(key->key)) {
		goto out;
	}
	md = EVP_MD_CTX_new();
	if (md == NULL ||
	    EVP_DigestVerifyInit_ex(md, &pctx, "SHA256", NULL, NULL, key->key, NULL) != 1)
		goto out;
	if (strcmp(key->alg, "PS256") == 0) {
		/* RFC 7518 §3.5: MGF1 with SHA-256, salt as long as the hash. */
		if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
		    EVP_PKEY_CTX_set_rsa_mgf1_md_name(pctx, "SHA256", NULL) != 1 ||
		    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1)
			goto out;
	} else if (strcmp(key->alg, "RS256") == 0) {
		if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1)
			goto out;
	}
	ok = EVP_DigestVerify(md, sig, sig_len, (const unsigned char *)input, input_len) == 1;
out:
	EVP_MD_CTX_free(md);
	OPENSSL_free(der);
	ERR_clear_error();
	return ok;
}

/* ------------------------------------------------------------------ */
/* Header                                                             */

static enum entra_jwt_status check_alg(const char *alg, char *reason, size_t reason_len)
{
	shown_buf sb;

	if (alg == NULL) {
		set_reason(reason, reason_len, "header alg missing or not a string");
		return ENTRA_JWT_BAD_ALG;
	}
	if (strcasecmp(alg, "none") == 0) {
		set_reason(reason, reason_len, "alg \"%s\" (unsigned) is never accepted",
			   shown(sb, alg));
		return ENTRA_JWT_BAD_ALG;
	}
	if (strncasecmp(alg, "HS", 2) == 0) {
		set_reason(reason, reason_len, "alg \"%s\" (HMAC) is never accepted",
			   shown(sb, alg));
		return ENTRA_JWT_BAD_ALG;
	}
	if (strcmp(alg, "RS256") != 0 && strcmp(alg, "PS256") != 0 && strcmp(alg, "ES256") != 0) {
		set_reason(reason, reason_len, "alg \"%s\" is not supported", shown(sb, alg));
		return ENTRA_JWT_BAD_ALG;
	}
	return ENTRA_JWT_OK;
}

static enum entra_jwt_status find_key(struct json_object *header, const struct entra_jwks *jwks,
				      const struct entra_jwk **key_out,
				      char *reason, size_t reason_len)
{
	const char *kid = entra_json_get_string(header, "kid");
	shown_buf sb;

	*key_out = NULL;
	if (jwks == NULL || jwks->count == 0) {
		set_reason(reason, reason_len, "no signing keys");
		return ENTRA_JWT_UNKNOWN_KID;
	}
	if (has_member(header, "kid")) {
		if (kid == NULL) {
			set_reason(reason, reason_len, "header kid is not a string");
			return ENTRA_JWT_BAD_HEADER;
		}
		if (strlen(kid) > KID_MAX) {
			set_reason(reason, reason_len, "header kid longer than %d bytes", KID_MAX);
			return ENTRA_JWT_BAD_HEADER;
		}
		/* Exact match only: the kid is never a path, pattern or query. */
		for (size_t i = 0; i < jwks->count; i++) {
			if (jwks->keys[i].kid != NULL && strcmp(jwks->keys[i].kid, kid) == 0) {
				*key_out = &jwks->keys[i];
				return ENTRA_JWT_OK;
			}
		}
		set_reason(reason, reason_len, "no key with kid \"%s\" among %zu keys",
			   shown(sb, kid), jwks->count);
		return ENTRA_JWT_UNKNOWN_KID;
	}
	if (jwks->count != 1) {
		set_reason(reason, reason_len, "header has no kid and there are %zu keys",
			   jwks->count);
		return ENTRA_JWT_UNKNOWN_KID;
	}
	*key_out = &jwks->keys[0];
	return ENTRA_JWT_OK;
}

static enum entra_jwt_status check_header(struct json_object *header,
					  const struct entra_jwks *jwks,
					  const struct entra_jwk **key_out,
					  char *reason, size_t reason_len)
{
	const char *alg = entra_json_get_string(header, "alg");
	const char *typ;
	enum entra_jwt_status st;
	shown_buf sb;

	st = check_alg(alg, reason, reason_len);
	if (st != ENTRA_JWT_OK)
		return st;
	/* We understand no extension, so any crit must be refused (RFC 7515
	 * §4.1.11). jwk, jku, x5u, x5c are simply never read. */
	if (has_member(header, "crit")) {
		set_reason(reason, reason_len, "header has crit");
		return ENTRA_JWT_BAD_HEADER;
	}
	if (has_member(header, "typ")) {
		typ = entra_json_get_string(header, "typ");
		if (typ == NULL || strcasecmp(typ, "JWT") != 0) {
			set_reason(reason, reason_len, "header typ \"%s\" is not JWT",
				   typ != NULL ? shown(sb, typ) : "(not a string)");
			return ENTRA_JWT_BAD_HEADER;
		}
	}
	st = find_key(header, jwks, key_out, reason, reason_len);
	if (st != ENTRA_JWT_OK)
		return st;
	if (strcmp(alg, (*key_out)->alg) != 0) {
		set_reason(reason, reason_len, "alg %s does not match the key's %s", alg,
			   (*key_out)->alg);
		return ENTRA_JWT_BAD_ALG;
	}
	return ENTRA_JWT_OK;
}

/* ------------------------------------------------------------------ */
/* Claims                                                             */

/* A NumericDate claim as a JSON integer. 0, -ENOENT, -EINVAL. */
static int time_claim(struct json_object *claims, const char *name, int64_t *out)
{
	struct json_object *val;

	if (!json_object_object_get_ex(claims, name, &val))
		return -ENOENT;
	if (!json_object_is_type(val, json_type_int))
		return -EINVAL;
	*out = json_object_get_int64(val);
	if (*out == INT64_MAX && json_object_get_uint64(val) != (uint64_t)INT64_MAX)
		return -EINVAL;
	return 0;
}

/* a - b, saturated instead of overflowing. */
static int64_t diff_sat(int64_t a, int64_t b)
{
	int64_t d;

	if (__builtin_sub_overflow(a, b, &d))
		return a > b ? INT64_MAX : INT64_MIN;
	return d;
}

static enum entra_jwt_status check_times(struct json_object *claims,
					 const struct entra_jwt_expect *expect,
					 char *reason, size_t reason_len)
{
	static const char *const names[3] = { "exp", "iat", "nbf" };
	int64_t t[3], now = (int64_t)expect->now;
	int skew = expect->clock_skew;
	bool have_nbf = true;

	if (skew < 0)
		skew = 0;
	if (skew > CLOCK_SKEW_MAX)
		skew = CLOCK_SKEW_MAX;
	for (int i = 0; i < 3; i++) {
		int r = time_claim(claims, names[i], &t[i]);

		if (r == -ENOENT && i == 2) {
			have_nbf = false;
		} else if (r == -ENOENT) {
			set_reason(reason, reason_len, "claim %s missing", names[i]);
			return ENTRA_JWT_MISSING_CLAIM;
		} else if (r < 0) {
			set_reason(reason, reason_len, "claim %s is not an integer", names[i]);
			return ENTRA_JWT_MISSING_CLAIM;
		}
	}
	if (diff_sat(now, t[0]) > skew) {
		set_reason(reason, reason_len, "exp %lld is %lld s in the past (skew %d s)",
			   (long long)t[0], (long long)diff_sat(now, t[0]), skew);
		return ENTRA_JWT_EXPIRED;
	}
	if (have_nbf && diff_sat(t[2], now) > skew) {
		set_reason(reason, reason_len, "nbf %lld is %lld s in the future (skew %d s)",
			   (long long)t[2], (long long)diff_sat(t[2], now), skew);
		return ENTRA_JWT_NOT_YET_VALID;
	}
	if (diff_sat(t[1], now) > skew) {
		set_reason(reason, reason_len, "iat %lld is %lld s in the future (skew %d s)",
			   (long long)t[1], (long long)diff_sat(t[1], now), skew);
		return ENTRA_JWT_ISSUED_IN_FUTURE;
	}
	return ENTRA_JWT_OK;
}

#define TENANT_PLACEHOLDER "{tenantid}"

/* The issuer template with every {tenantid} replaced by tid. 0, -EINVAL
 * (template needs a tid and tid is not a GUID), -ENOMEM. */
static int expand_issuer(const char *tmpl, const char *tid, char **out)
{
	const size_t plen = strlen(TENANT_PLACEHOLDER);
	struct entra_buf buf;
	const char *p = tmpl, *hit;

	*out = NULL;
	entra_buf_init(&buf, 4096);
	while ((hit = strstr(p, TENANT_PLACEHOLDER)) != NULL) {
		if (!entra_is_guid(tid)) {
			entra_buf_free(&buf);
			return -EINVAL;
		}
		if (entra_buf_append(&buf, p, (size_t)(hit - p)) < 0 ||
		    entra_buf_append_str(&buf, tid) < 0)
			goto nomem;
		p = hit + plen;
	}
	if (entra_buf_append_str(&buf, p) < 0)
		goto nomem;
	*out = entra_buf_steal(&buf);
	if (*out == NULL)
		goto nomem;
	return 0;
nomem:
	entra_buf_free(&buf);
	return -ENOMEM;
}

static enum entra_jwt_status check_issuer(struct json_object *claims, const char *tmpl,
					  const char *whose, char *reason, size_t reason_len)
{
	const char *iss = entra_json_get_string(claims, "iss");
	const char *tid = entra_json_get_string(claims, "tid");
	char *expected = NULL;
	shown_buf sb1, sb2;
	int r;

	if (iss == NULL) {
		set_reason(reason, reason_len, "claim iss missing or not a string");
		return ENTRA_JWT_BAD_ISSUER;
	}
	r = expand_issuer(tmpl, tid, &expected);
	if (r == -EINVAL) {
		set_reason(reason, reason_len, "%s issuer needs the tid, and tid \"%s\" is not a GUID",
			   whose, tid != NULL ? shown(sb1, tid) : "(missing or not a string)");
		return ENTRA_JWT_BAD_ISSUER;
	}
	if (r < 0) {
		set_reason(reason, reason_len, "out of memory");
		return ENTRA_JWT_BAD_ISSUER;
	}
	if (strcmp(iss, expected) != 0) {
		set_reason(reason, reason_len, "iss \"%s\" is not the %s issuer \"%s\"",
			   shown(sb1, iss), whose, shown(sb2, expected));
		free(expected);
		return ENTRA_JWT_BAD_ISSUER;
	}
	free(expected);
	return ENTRA_JWT_OK;
}

static enum entra_jwt_status check_claims(struct json_object *claims,
					  const struct entra_jwk *key,
					  const struct entra_jwt_expect *expect,
					  char *reason, size_t reason_len)
{
	enum entra_jwt_status st;
	const char *aud, *tid;
	shown_buf sb1, sb2;

	st = check_times(claims, expect, reason, reason_len);
	if (st != ENTRA_JWT_OK)
		return st;

	if (expect->issuer == NULL) {
		set_reason(reason, reason_len, "no expected issuer configured");
		return ENTRA_JWT_BAD_ISSUER;
	}
	st = check_issuer(claims, expect->issuer, "expected", reason, reason_len);
	if (st == ENTRA_JWT_OK && key->issuer != NULL)
		st = check_issuer(claims, key->issuer, "signing key's", reason, reason_len);
	if (st != ENTRA_JWT_OK)
		return st;

	if (expect->audience == NULL) {
		set_reason(reason, reason_len, "no expected audience configured");
		return ENTRA_JWT_BAD_AUDIENCE;
	}
	if (!entra_json_string_or_array_contains(claims, "aud", expect->audience)) {
		aud = entra_json_get_string(claims, "aud");
		if (aud != NULL)
			set_reason(reason, reason_len, "aud \"%s\" is not \"%s\"", shown(sb1, aud),
				   shown(sb2, expect->audience));
		else if (entra_json_get_string_array(claims, "aud") != NULL)
			set_reason(reason, reason_len, "aud array does not contain \"%s\"",
				   shown(sb2, expect->audience));
		else
			set_reason(reason, reason_len,
				   "claim aud missing or neither a string nor an array of strings");
		return ENTRA_JWT_BAD_AUDIENCE;
	}

	if (expect->tenant_id != NULL) {
		tid = entra_json_get_string(claims, "tid");
		if (tid == NULL || !entra_is_guid(tid) || !entra_streq_nocase(tid, expect->tenant_id)) {
			set_reason(reason, reason_len, "tid \"%s\" is not the tenant %s",
				   tid != NULL ? shown(sb1, tid) : "(missing or not a string)",
				   shown(sb2, expect->tenant_id));
			return ENTRA_JWT_BAD_TENANT;
		}
	}

	for (const char *const *name = expect->required_claims; name != NULL && *name != NULL;
	     name++) {
		const char *val = entra_json_get_string(claims, *name);

		if (val == NULL || *val == '\0') {
			set_reason(reason, reason_len, "claim %s %s", shown(sb1, *name),
				   has_member(claims, *name) ? "is not a non-empty string" : "missing");
			return ENTRA_JWT_MISSING_CLAIM;
		}
	}
	return ENTRA_JWT_OK;
}

/* ------------------------------------------------------------------ */

enum entra_jwt_status entra_jwt_verify(const char *token, const struct entra_jwks *jwks,
				       const struct entra_jwt_expect *expect,
				       struct json_object **claims_out,
				       char *reason, size_t reason_len)
{
	struct json_object *header = NULL, *claims = NULL;
	const struct entra_jwk *key = NULL;
	enum entra_jwt_status st;
	struct jws j;

	if (claims_out != NULL)
		*claims_out = NULL;
	set_reason(reason, reason_len, "no reason");
	if (expect == NULL) {
		set_reason(reason, reason_len, "no expectations given");
		return ENTRA_JWT_BAD_ISSUER;
	}
	st = jws_split(token, &j, reason, reason_len);
	if (st != ENTRA_JWT_OK)
		return st;

	header = parse_part(j.header, j.header_len, "header", reason, reason_len);
	if (header == NULL) {
		st = ENTRA_JWT_MALFORMED;
		goto out;
	}
	st = check_header(header, jwks, &key, reason, reason_len);
	if (st != ENTRA_JWT_OK)
		goto out;
	if (j.sig_len == 0) {
		set_reason(reason, reason_len, "empty signature segment");
		st = ENTRA_JWT_MALFORMED;
		goto out;
	}
	/* Nothing in the payload is looked at before this. */
	if (!signature_ok(key, token, j.signed_len, j.sig, j.sig_len)) {
		shown_buf sb;

		set_reason(reason, reason_len, "%s signature does not verify with key \"%s\"",
			   key->alg, key->kid != NULL ? shown(sb, key->kid) : "(no kid)");
		st = ENTRA_JWT_BAD_SIGNATURE;
		goto out;
	}
	claims = parse_part(j.payload, j.payload_len, "payload", reason, reason_len);
	if (claims == NULL) {
		st = ENTRA_JWT_MALFORMED;
		goto out;
	}
	st = check_claims(claims, key, expect, reason, reason_len);
	if (st == ENTRA_JWT_OK) {
		set_reason(reason, reason_len, "ok");
		if (claims_out != NULL) {
			*claims_out = claims;
			claims = NULL;
		}
	}
out:
	json_object_put(header);
	json_object_put(claims);
	jws_free(&j);
	return st;
}
