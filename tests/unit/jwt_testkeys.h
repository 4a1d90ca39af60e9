/* Test-only helpers: make keys, publish them as JWKs, sign compact JWS.
 * Used by test_jwt and the fuzz_jwt target; never linked into the module. */
#ifndef ENTRA_JWT_TESTKEYS_H
#define ENTRA_JWT_TESTKEYS_H

#include <stddef.h>
#include <openssl/evp.h>

EVP_PKEY *tk_rsa(int bits);
EVP_PKEY *tk_ec_p256(void);

/* The public JWK of pkey as a JSON object text; extra (may be NULL) is
 * appended verbatim as more members, e.g. "\"alg\":\"PS256\"". malloc'd. */
char *tk_jwk(EVP_PKEY *pkey, const char *kid, const char *extra);

/* Public key as PEM text / DER bytes (for HMAC key-confusion tests). */
char *tk_pubkey_pem(EVP_PKEY *pkey, size_t *len);
unsigned char *tk_pubkey_der(EVP_PKEY *pkey, size_t *len);

/* Raw signature over data: alg is RS256, RS512, PS256, ES256 (JOSE r||s)
 * or ES256-DER (for negative tests); for HS256/HS512 hmac_key is the key.
 * malloc'd, length in *sig_len. */
unsigned char *tk_sign_raw(EVP_PKEY *pkey, const char *alg, const unsigned char *hmac_key,
			   size_t hmac_key_len, const char *data, size_t data_len,
			   size_t *sig_len);

/* b64url(header).b64url(payload).b64url(sig) with the signature made as
 * above (pkey NULL and alg NULL: empty signature). malloc'd. */
char *tk_token(EVP_PKEY *pkey, const char *alg, const unsigned char *hmac_key,
	       size_t hmac_key_len, const char *header, const char *payload);

/* Same, from raw header/payload bytes of given lengths. */
char *tk_token_n(EVP_PKEY *pkey, const char *alg, const unsigned char *hmac_key,
		 size_t hmac_key_len, const char *header, size_t header_len,
		 const char *payload, size_t payload_len);

/* b64url of a NUL-terminated string. malloc'd. */
char *tk_b64(const char *s);

#endif
