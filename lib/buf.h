/* Growable byte buffers with a mandatory size cap, and wiping of secrets. */
#ifndef ENTRA_BUF_H
#define ENTRA_BUF_H

#include <stddef.h>

struct entra_buf {
	char *data;  /* always NUL-terminated when non-NULL */
	size_t len;
	size_t cap;
	size_t max;  /* appends that would exceed this fail with -E2BIG */
};

void entra_buf_init(struct entra_buf *buf, size_t max);
/* 0, -E2BIG past the cap, -ENOMEM. On failure the buffer is unchanged. */
int entra_buf_append(struct entra_buf *buf, const void *data, size_t len);
int entra_buf_append_str(struct entra_buf *buf, const char *str);
int entra_buf_printf(struct entra_buf *buf, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Hands the contents to the caller ("" when empty); the buffer is reset. */
char *entra_buf_steal(struct entra_buf *buf);
/* Wipes the whole allocation, then frees it. */
void entra_buf_free(struct entra_buf *buf);

/* Wipe then free a NUL-terminated secret (NULL is fine). */
void entra_free_secret(char *secret);
/* Wipe then free len bytes. */
void entra_free_secret_n(void *secret, size_t len);
/* nhex random lowercase hex digits from getrandom, then a NUL (out holds
 * nhex + 1 bytes; nhex even, at most 128). 0 or -EIO / -EINVAL. */
int entra_random_hex(char *out, size_t nhex);

/* strdup that returns NULL for NULL. */
char *entra_strdup(const char *s);

#endif
