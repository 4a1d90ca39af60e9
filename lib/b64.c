#include "config.h"
#include "b64.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char url_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Value of c in the chosen alphabet, or -1. Written out rather than table
 * driven so that neither alphabet ever accepts the other's two symbols. */
static int sextet(unsigned char c, bool url)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == (url ? '-' : '+'))
		return 62;
	if (c == (url ? '_' : '/'))
		return 63;
	return -1;
}

static int decode(const char *in, size_t in_len, bool url, unsigned char **out, size_t *out_len)
{
	size_t data_len = in_len, rem, n = 0;
	unsigned char *buf;
	uint32_t acc = 0;
	int bits = 0;

	if (out == NULL || out_len == NULL || (in == NULL && in_len > 0))
		return -EINVAL;
	*out = NULL;
	*out_len = 0;

	/* Padding is optional, but when present it must make the length a
	 * multiple of four and be exactly what the data needs. */
	if (data_len > 0 && in[data_len - 1] == '=') {
		size_t pad = 1;

		if (data_len > 1 && in[data_len - 2] == '=')
			pad = 2;
		if (in_len % 4 != 0)
			return -EINVAL;
		data_len -= pad;
		if ((pad == 1 && data_len % 4 != 3) || (pad == 2 && data_len % 4 != 2))
			return -EINVAL;
	}
	rem = data_len % 4;
	if (rem == 1)
		return -EINVAL;

	buf = malloc(data_len / 4 * 3 + (rem ? rem - 1 : 0) + 1);
	if (buf == NULL)
		return -ENOMEM;

	for (size_t i = 0; i < data_len; i++) {
		int v = sextet((unsigned char)in[i], url);

		if (v < 0)
			goto bad;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[n++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	/* Leftover bits (2 or 4) must be zero: otherwise two different
	 * strings would decode to the same bytes. */
	if (acc != 0)
		goto bad;
	buf[n] = '\0';
	*out = buf;
	*out_len = n;
	return 0;
bad:
	free(buf);
	return -EINVAL;
}

int entra_b64url_decode(const char *in, size_t in_len, unsigned char **out, size_t *out_len)
{
	return decode(in, in_len, true, out, out_len);
}

int entra_b64_decode(const char *in, size_t in_len, unsigned char **out, size_t *out_len)
{
	return decode(in, in_len, false, out, out_len);
}

char *entra_b64url_encode(const unsigned char *in, size_t in_len)
{
	size_t out_len, o = 0, i = 0;
	char *out;

	if (in == NULL && in_len > 0)
		return NULL;
	if (in_len > (SIZE_MAX - 1) / 4 * 3)
		return NULL;
	out_len = in_len / 3 * 4 + (in_len % 3 ? in_len % 3 + 1 : 0);
	out = malloc(out_len + 1);
	if (out == NULL)
		return NULL;
	for (; i + 3 <= in_len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];

		out[o++] = url_alphabet[v >> 18];
		out[o++] = url_alphabet[(v >> 12) & 63];
		out[o++] = url_alphabet[(v >> 6) & 63];
		out[o++] = url_alphabet[v & 63];
	}
	if (in_len - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;

		out[o++] = url_alphabet[v >> 18];
		out[o++] = url_alphabet[(v >> 12) & 63];
	} else if (in_len - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;

		out[o++] = url_alphabet[v >> 18];
		out[o++] = url_alphabet[(v >> 12) & 63];
		out[o++] = url_alphabet[(v >> 6) & 63];
	}
	out[o] = '\0';
	return out;
}
