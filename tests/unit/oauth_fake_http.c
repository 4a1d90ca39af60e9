/* What test_tokens and test_devicecode share of their stand-in for
 * lib/http.c: they script entra_http_post_form/get themselves and take the
 * rest from here. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "http.h"
#include "oauth_fake_http.h"

void entra_http_response_free(struct entra_http_response *resp)
{
	entra_buf_free(&resp->body);
	free(resp->www_authenticate);
	resp->www_authenticate = NULL;
}

int entra_form_add(struct entra_buf *form, const char *key, const char *value)
{
	static const char hex[] = "0123456789ABCDEF";
	const char *parts[2] = { key, value };
	int rc = 0;

	if (form->len > 0)
		rc = entra_buf_append_str(form, "&");
	for (int i = 0; i < 2 && rc == 0; i++) {
		if (i == 1)
			rc = entra_buf_append_str(form, "=");
		for (const unsigned char *p = (const unsigned char *)parts[i]; *p && rc == 0; p++) {
			char enc[3] = { '%', hex[*p >> 4], hex[*p & 15] };

			if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '~')
				rc = entra_buf_append(form, p, 1);
			else
				rc = entra_buf_append(form, enc, 3);
		}
	}
	return rc;
}

char *form_value(const char *form, const char *key)
{
	static char out[4096];
	size_t klen = strlen(key);
	const char *p = form;

	while (p != NULL && *p != '\0') {
		const char *end = strchr(p, '&');
		size_t n = end ? (size_t)(end - p) : strlen(p);

		if (n > klen && strncmp(p, key, klen) == 0 && p[klen] == '=') {
			size_t o = 0;

			for (size_t i = klen + 1; i < n && o < sizeof(out) - 1; i++) {
				if (p[i] == '%' && i + 2 < n) {
					char h[3] = { p[i + 1], p[i + 2], 0 };

					out[o++] = (char)strtol(h, NULL, 16);
					i += 2;
				} else {
					out[o++] = p[i];
				}
			}
			out[o] = '\0';
			return out;
		}
		p = end ? end + 1 : NULL;
	}
	return NULL;
}
