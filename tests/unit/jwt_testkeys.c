/* Test-only key and token factory (see jwt_testkeys.h). Aborts on OpenSSL
 * failures: a test that cannot build its inputs must not pass. */
#include "config.h"
#include "jwt_testkeys.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "b64.h"

static void die(const char *what)
{
	fprintf(stderr, "jwt_testkeys: %s failed\n", what);
	ERR_print_errors_fp(stderr);
	abort();
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		die("malloc");
	return p;
}

EVP_PKEY *tk_rsa(int bits)
{
	EVP_PKEY *pkey = EVP_RSA_gen((unsigned)bits);

	if (pkey == NULL)
		die("EVP_RSA_gen");
	return pkey;
}

EVP_PKEY *tk_ec_p256(void)
{
	EVP_PKEY *pkey = EVP_EC_gen("P-256");

	if (pkey == NULL)
		die("EVP_EC_gen");
	return pkey;
}

static char *b64_bn(EVP_PKEY *pkey, const char *param, int pad)
{
	BIGNUM *bn = NULL;
	unsigned char buf[1024];
	int len;
	char *out;

	if (EVP_PKEY_get_bn_param(pkey, param, &bn) != 1)
		die("EVP_PKEY_get_bn_param");
	len = pad > 0 ? BN_bn2binpad(bn, buf, pad) : BN_bn2bin(bn, buf);
	if (len <= 0 || len > (int)sizeof(buf))
		die("BN_bn2bin");
	BN_free(bn);
	out = entra_b64url_encode(buf, (size_t)len);
	if (out == NULL)
		die("b64url");
	return out;
}

char *tk_jwk(EVP_PKEY *pkey, const char *kid, const char *extra)
{
	char *a, *b, *out;
	size_t n;
	bool rsa = EVP_PKEY_is_a(pkey, "RSA");

	a = b64_bn(pkey, rsa ? OSSL_PKEY_PARAM_RSA_N : OSSL_PKEY_PARAM_EC_PUB_X, rsa ? 0 : 32);
	b = b64_bn(pkey, rsa ? OSSL_PKEY_PARAM_RSA_E : OSSL_PKEY_PARAM_EC_PUB_Y, rsa ? 0 : 32);
	n = strlen(a) + strlen(b) + (kid ? strlen(kid) : 0) + (extra ? strlen(extra) : 0) + 128;
	out = xmalloc(n);
	if (rsa)
		snprintf(out, n, "{\"kty\":\"RSA\"%s%s%s,\"n\":\"%s\",\"e\":\"%s\"%s%s}",
			 kid ? ",\"kid\":\"" : "", kid ? kid : "", kid ? "\"" : "", a, b,
			 extra ? "," : "", extra ? extra : "");
	else
		snprintf(out, n, "{\"kty\":\"EC\",\"crv\":\"P-256\"%s%s%s,\"x\":\"%s\",\"y\":\"%s\"%s%s}",
			 kid ? ",\"kid\":\"" : "", kid ? kid : "", kid ? "\"" : "", a, b,
			 extra ? "," : "", extra ? extra : "");
	free(a);
	free(b);
	return out;
}

char *tk_pubkey_pem(EVP_PKEY *pkey, size_t *len)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data, *out;
	long n;

	if (bio == NULL || PEM_write_bio_PUBKEY(bio, pkey) != 1)
		die("PEM_write_bio_PUBKEY");
	n = BIO_get_mem_data(bio, &data);
	out = xmalloc((size_t)n + 1);
	memcpy(out, data, (size_t)n);
	out[n] = '\0';
	*len = (size_t)n;
	BIO_free(bio);
	return out;
}

unsigned char *tk_pubkey_der(EVP_PKEY *pkey, size_t *len)
{
	unsigned char *der = NULL, *out;
	int n = i2d_PUBKEY(pkey, &der);

	if (n <= 0)
		die("i2d_PUBKEY");
	out = xmalloc((size_t)n);
	memcpy(out, der, (size_t)n);
	OPENSSL_free(der);
	*len = (size_t)n;
	return out;
}

static unsigned char *der_to_jose(const unsigned char *der, size_t der_len, size_t *out_len)
{
	const unsigned char *p = der;
	ECDSA_SIG *esig = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
	const BIGNUM *r, *s;
	unsigned char *out = xmalloc(64);

	if (esig == NULL)
		die("d2i_ECDSA_SIG");
	ECDSA_SIG_get0(esig, &r, &s);
	if (BN_bn2binpad(r, out, 32) != 32 || BN_bn2binpad(s, out + 32, 32) != 32)
		die("BN_bn2binpad");
	ECDSA_SIG_free(esig);
	*out_len = 64;
	return out;
}

unsigned char *tk_sign_raw(EVP_PKEY *pkey, const char *alg, const unsigned char *hmac_key,
			   size_t hmac_key_len, const char *data, size_t data_len,
			   size_t *sig_len)
{
	EVP_MD_CTX *md;
	EVP_PKEY_CTX *pctx = NULL;
	const char *digest = "SHA256";
	unsigned char *sig;
	size_t len = 0;

	if (strncmp(alg, "HS", 2) == 0) {
		sig = xmalloc(EVP_MAX_MD_SIZE);
		if (EVP_Q_mac(NULL, "HMAC", NULL, strcmp(alg, "HS512") == 0 ? "SHA512" : "SHA256",
			      NULL, hmac_key, hmac_key_len, (const unsigned char *)data, data_len,
			      sig, EVP_MAX_MD_SIZE, &len) == NULL)
			die("EVP_Q_mac");
		*sig_len = len;
		return sig;
	}
	if (strcmp(alg, "RS512") == 0)
		digest = "SHA512";
	md = EVP_MD_CTX_new();
	if (md == NULL || EVP_DigestSignInit_ex(md, &pctx, digest, NULL, NULL, pkey, NULL) != 1)
		die("EVP_DigestSignInit_ex");
	if (strcmp(alg, "PS256") == 0 &&
	    (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
	     EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1))
		die("PSS parameters");
	if (EVP_DigestSign(md, NULL, &len, (const unsigned char *)data, data_len) != 1)
		die("EVP_DigestSign (size)");
	sig = xmalloc(len);
	if (EVP_DigestSign(md, sig, &len, (const unsigned char *)data, data_len) != 1)
		die("EVP_DigestSign");
	EVP_MD_CTX_free(md);
	if (strcmp(alg, "ES256") == 0) {
		unsigned char *jose = der_to_jose(sig, len, &len);

		free(sig);
		sig = jose;
	}
	*sig_len = len;
	return sig;
}

char *tk_b64(const char *s)
{
	char *out = entra_b64url_encode((const unsigned char *)s, strlen(s));

	if (out == NULL)
		die("b64url");
	return out;
}

char *tk_token_n(EVP_PKEY *pkey, const char *alg, const unsigned char *hmac_key,
		 size_t hmac_key_len, const char *header, size_t header_len,
		 const char *payload, size_t payload_len)
{
	char *h = entra_b64url_encode((const unsigned char *)header, header_len);
	char *p = entra_b64url_encode((const unsigned char *)payload, payload_len);
	char *input, *s = NULL, *out;
	unsigned char *sig = NULL;
	size_t sig_len = 0, n;

	if (h == NULL || p == NULL)
		die("b64url");
	n = strlen(h) + strlen(p) + 2;
	input = xmalloc(n);
	snprintf(input, n, "%s.%s", h, p);
	if (alg != NULL)
		sig = tk_sign_raw(pkey, alg, hmac_key, hmac_key_len, input, strlen(input), &sig_len);
	s = entra_b64url_encode(sig, sig_len);
	if (s == NULL)
		die("b64url");
	n = strlen(input) + strlen(s) + 2;
	out = xmalloc(n);
	snprintf(out, n, "%s.%s", input, s);
	free(h);
	free(p);
	free(input);
	free(sig);
	free(s);
	return out;
}

char *tk_token(EVP_PKEY *pkey, const char *alg, const unsigned char *hmac_key,
	       size_t hmac_key_len, const char *header, const char *payload)
{
	return tk_token_n(pkey, alg, hmac_key, hmac_key_len, header, strlen(header), payload,
			  strlen(payload));
}
