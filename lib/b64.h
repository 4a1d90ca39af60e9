/* Base64 (RFC 4648 §4) and base64url (§5) without padding requirements. */
#ifndef ENTRA_B64_H
#define ENTRA_B64_H

#include <stddef.h>

/* Strict decoders: reject characters outside the alphabet, impossible
 * lengths and non-zero trailing bits; padding '=' is optional but, when
 * present, must be correct. *out is malloc'd and NUL-terminated (the NUL is
 * not counted in *out_len). 0 or -EINVAL / -ENOMEM. */
int entra_b64url_decode(const char *in, size_t in_len, unsigned char **out, size_t *out_len);
int entra_b64_decode(const char *in, size_t in_len, unsigned char **out, size_t *out_len);

/* Unpadded base64url; malloc'd, or NULL on allocation failure. */
char *entra_b64url_encode(const unsigned char *in, size_t in_len);

#endif
