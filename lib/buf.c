#include "config.h"
#include "buf.h"
#include "names.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/types.h>

void entra_buf_init(struct entra_buf *buf, size_t max)
{
	buf->data = NULL;
	buf->len = 0;
	buf->cap = 0;
	buf->max = max;
}

static int reserve(struct entra_buf *buf, size_t extra)
{
	size_t need, cap;
	char *grown;

	if (extra > buf->max || buf->len > buf->max - extra)
		return -E2BIG;
	need = buf->len + extra + 1;
	if (need <= buf->cap)
		return 0;
	cap = buf->cap ? buf->cap : 256;
	while (cap < need)
		cap *= 2;
	/* Grow by copying so that no secret is left behind in freed memory. */
	grown = malloc(cap);
	if (grown == NULL)
		return -ENOMEM;
	if (buf->data != NULL) {
		memcpy(grown, buf->data, buf->len + 1);
		entra_free_secret_n(buf->data, buf->cap);
	}
	buf->data = grown;
	buf->cap = cap;
	return 0;
}

int entra_buf_append(struct entra_buf *buf, const void *data, size_t len)
{
	int rc = reserve(buf, len);

	if (rc < 0)
		return rc;
	if (len > 0)
		memcpy(buf->data + buf->len, data, len);
	buf->len += len;
	buf->data[buf->len] = '\0';
	return 0;
}

int entra_buf_append_str(struct entra_buf *buf, const char *str)
{
	return entra_buf_append(buf, str, strlen(str));
}

int entra_buf_printf(struct entra_buf *buf, const char *fmt, ...)
{
	va_list ap;
	int n, rc;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	rc = reserve(buf, (size_t)n);
	if (rc < 0)
		return rc;
	va_start(ap, fmt);
	vsnprintf(buf->data + buf->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	buf->len += (size_t)n;
	return 0;
}

char *entra_buf_steal(struct entra_buf *buf)
{
	char *out = buf->data;

	if (out == NULL)
		out = strdup("");
	buf->data = NULL;
	buf->len = 0;
	buf->cap = 0;
	return out;
}

void entra_buf_free(struct entra_buf *buf)
{
	if (buf->data != NULL)
		entra_free_secret_n(buf->data, buf->cap);
	buf->data = NULL;
	buf->len = 0;
	buf->cap = 0;
}

void entra_free_secret_n(void *secret, size_t len)
{
	if (secret == NULL)
		return;
	explicit_bzero(secret, len);
	free(secret);
}

void entra_free_secret(char *secret)
{
	if (secret != NULL)
		entra_free_secret_n(secret, strlen(secret));
}

int entra_random_hex(char *out, size_t nhex)
{
	unsigned char raw[64];
	size_t n = nhex / 2;

	if (nhex % 2 != 0 || n > sizeof(raw))
		return -EINVAL;
	if (getrandom(raw, n, 0) != (ssize_t)n)
		return -EIO;
	entra_hex_encode(raw, n, out);
	explicit_bzero(raw, n);
	return 0;
}

char *entra_strdup(const char *s)
{
	return s ? strdup(s) : NULL;
}
