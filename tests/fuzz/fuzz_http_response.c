/* libFuzzer target: the HTTP/1.x response parser of lib/http.c
 * (lib/http_parse.c) on any bytes, fed in pieces of a size the input
 * chooses, then the end of the stream.
 * Input: byte 0 = piece size (0: all at once), byte 1 = bit 0 small body
 * cap (64 bytes, else 4096), bit 1 an answer to CONNECT; the rest is what
 * the peer sent. */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "http_parse.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool clean_value(const char *s)
{
	for (; *s != '\0'; s++)
		if (*s == '\r' || *s == '\n')
			return false;
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct entra_http_parser p;
	struct entra_http_response resp;
	size_t piece, cap, off = 0;
	bool connect, stopped = false;
	int rc = 0;

	if (size < 2)
		return 0;
	piece = data[0] != 0 ? data[0] : size;
	cap = (data[1] & 1) ? 64 : 4096;
	connect = (data[1] & 2) != 0;
	data += 2;
	size -= 2;
	resp.status = 0;
	entra_buf_init(&resp.body, cap);
	resp.content_type[0] = '\0';
	resp.retry_after = -1;
	resp.www_authenticate = NULL;
	entra_http_parser_init(&p, &resp, connect);
	while (off < size) {
		size_t n = size - off < piece ? size - off : piece, used;

		rc = entra_http_parser_feed(&p, (const char *)data + off, n, &used);
		if (rc < 0)
			break;
		if (used > n || (used < n && !p.done))
			abort();
		off += used;
		if (p.done) {
			stopped = true;
			break;
		}
	}
	if (rc == 0 && !stopped)
		rc = entra_http_parser_eof(&p);
	if (rc != 0 && rc != -EPROTO && rc != -E2BIG && rc != -ENOMEM && rc != -ECONNRESET)
		abort();
	if (rc == 0) {
		if (!p.done || resp.status < 200 || resp.status > 999)
			abort();
		if (connect && resp.body.len != 0)
			abort();
	}
	if (resp.body.len > cap || (resp.body.data != NULL && resp.body.data[resp.body.len] != '\0'))
		abort();
	fuzz_need_printable("content type", resp.content_type[0] ? resp.content_type : "-");
	if (resp.www_authenticate != NULL &&
	    (strlen(resp.www_authenticate) > 8192 || !clean_value(resp.www_authenticate)))
		abort();
	if (resp.retry_after < -1 || resp.retry_after > 7 * 86400)
		abort();
	entra_http_parser_wipe(&p);
	entra_buf_free(&resp.body);
	free(resp.www_authenticate);
	return 0;
}
