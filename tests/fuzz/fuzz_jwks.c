/* libFuzzer target: entra_jwks_parse. */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jwt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct entra_jwks jwks;
	int rc = entra_jwks_parse((const char *)data, size, &jwks);

	if (rc == 0) {
		if (jwks.count == 0 || jwks.keys == NULL)
			abort();
		for (size_t i = 0; i < jwks.count; i++) {
			const struct entra_jwk *k = &jwks.keys[i];

			if (k->key == NULL || k->alg == NULL)
				abort();
			if (strcmp(k->alg, "ES256") == 0) {
				if (!EVP_PKEY_is_a(k->key, "EC"))
					abort();
			} else if (strcmp(k->alg, "RS256") == 0 || strcmp(k->alg, "PS256") == 0) {
				if (!EVP_PKEY_is_a(k->key, "RSA") || EVP_PKEY_get_bits(k->key) < 2048)
					abort();
			} else {
				abort();
			}
			if (k->kid != NULL && (k->kid[0] == '\0' || strlen(k->kid) > 256))
				abort();
		}
	} else if (rc != -EINVAL || jwks.count != 0 || jwks.keys != NULL) {
		abort();
	}
	entra_jwks_free(&jwks);
	return 0;
}
