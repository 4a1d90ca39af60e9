/* JWS verification for ID tokens and ARM access tokens. The algorithm is
 * pinned by the key (RSA key -> RS256, or PS256 when the JWK's alg says
 * PS256; EC P-256 key -> ES256); the token header's alg must agree, and
 * "none" and HMAC are never accepted. Key material in the token header
 * (jwk, jku, x5u, x5c) is ignored; a "crit" header is rejected.
 *
 * Claim VALUES are only type-checked here and handed back untouched
 * (newlines, shell metacharacters and all): deciding whether a name is fit
 * for a file or an account is the policy layer's job. */
#ifndef ENTRA_JWT_H
#define ENTRA_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include <json-c/json.h>
#include <openssl/evp.h>

#define ENTRA_JWT_MAX_LEN (64 * 1024)

struct entra_jwk {
	char *kid;
	char *alg;      /* "RS256", "PS256" or "ES256": what this key verifies */
	char *issuer;   /* the key's "issuer" property, or NULL */
	EVP_PKEY *key;
};

struct entra_jwks {
	struct entra_jwk *keys;
	size_t count;
};

/* Parse a JWKS document (at most 1 MiB and 64 entries). Keys that are not
 * for signatures ("use" present and not "sig"), of unsupported types,
 * malformed, RSA below 2048 or above 8192 bits, EC points not on P-256, with
 * a kid that is not a 1..256 byte string, or repeating an earlier key's kid
 * are skipped; a document with no usable key is an error. On error *out is
 * empty. 0 or -EINVAL/-ENOMEM. */
int entra_jwks_parse(const char *json, size_t len, struct entra_jwks *out);

/* The same for a document that entra_jwks_parse accepted before and that
 * comes back from a root-only cache written after that check: OpenSSL's
 * public-key validation (for RSA a Miller-Rabin test of the modulus, some
 * milliseconds per key) is skipped; the structural checks above stay. */
int entra_jwks_parse_cached(const char *json, size_t len, struct entra_jwks *out);
void entra_jwks_free(struct entra_jwks *jwks);

enum entra_jwt_status {
	ENTRA_JWT_OK = 0,
	ENTRA_JWT_MALFORMED,         /* not three base64url segments of JSON objects, too long, ... */
	ENTRA_JWT_BAD_HEADER,        /* crit present, typ not JWT, ... */
	ENTRA_JWT_BAD_ALG,           /* none, HMAC, unknown, or not the key's alg */
	ENTRA_JWT_UNKNOWN_KID,       /* no key with that kid: refetch the JWKS once */
	ENTRA_JWT_BAD_SIGNATURE,
	ENTRA_JWT_EXPIRED,
	ENTRA_JWT_NOT_YET_VALID,     /* nbf in the future */
	ENTRA_JWT_ISSUED_IN_FUTURE,  /* iat in the future */
	ENTRA_JWT_BAD_ISSUER,
	ENTRA_JWT_BAD_AUDIENCE,
	ENTRA_JWT_BAD_TENANT,
	ENTRA_JWT_MISSING_CLAIM,     /* required claim absent or of the wrong type */
};

struct entra_jwt_expect {
	/* Expected iss. May contain "{tenantid}", replaced by the token's tid
	 * (which must then be a GUID). */
	const char *issuer;
	const char *audience;        /* string aud equal, or array containing it */
	const char *tenant_id;       /* tid must equal this GUID; NULL = not pinned */
	const char *const *required_claims; /* NULL-terminated string claims that must be present, e.g. {"oid", NULL} */
	time_t now;
	int clock_skew;              /* seconds; clamped to 0..120 */
};

/* Verify signature and claims. Order: structure (three segments of
 * unpadded base64url, at most ENTRA_JWT_MAX_LEN bytes), header (a JSON
 * object without duplicate keys; alg, crit, typ, kid), key by exact kid
 * (no kid: only when the set has exactly one key), signature, and only then
 * the payload: exp and iat required and nbf optional, all JSON integers;
 * iss (and the key's issuer), aud, tid, required_claims (non-empty strings).
 * On ENTRA_JWT_OK *claims_out (if non-NULL) receives the payload (caller
 * puts it); otherwise it is set to NULL. reason (may be NULL) receives a
 * precise, single-line, printable log reason ("exp 1700000000 is 300 s in
 * the past (skew 60 s)"); it may quote claim names, numbers, kid, iss, aud
 * and tid values (sanitized, cut at 80 bytes), never the signature or a
 * whole token segment. */
enum entra_jwt_status entra_jwt_verify(const char *token, const struct entra_jwks *jwks,
				       const struct entra_jwt_expect *expect,
				       struct json_object **claims_out,
				       char *reason, size_t reason_len);

/* The payload of a token without any verification, for tests and for
 * tokens not meant for us (never for a decision). NULL if malformed. */
struct json_object *entra_jwt_decode_unverified(const char *token);

const char *entra_jwt_status_str(enum entra_jwt_status status);

#endif
