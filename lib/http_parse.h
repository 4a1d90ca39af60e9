/* HTTP/1.x response parser for lib/http.c: a state machine over bytes,
 * with no I/O, so that a fuzzer can drive it. Internal to lib/http.c (and
 * its tests and fuzz target); not part of the http.h contract.
 *
 * Accepted: a status line "HTTP/1.0" or "HTTP/1.1", interim 1xx responses
 * (skipped; 101 is refused: we never ask to switch protocols), header
 * lines of at most ENTRA_HTTP_LINE_MAX bytes and ENTRA_HTTP_HEAD_MAX in
 * all (status lines, headers and chunked trailers together), no obs-fold;
 * chunk-size lines of at most ENTRA_HTTP_CHUNK_LINE_MAX bytes (a stream of
 * tiny chunks with long extensions is refused, not read for hours).
 * Framing: Content-Length (digits only; repeats must agree), or
 * Transfer-Encoding exactly "chunked" (never together with a
 * Content-Length), or the body runs to the connection's close. */
#ifndef ENTRA_HTTP_PARSE_H
#define ENTRA_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "http.h"

#define ENTRA_HTTP_LINE_MAX 16384
#define ENTRA_HTTP_CHUNK_LINE_MAX 256 /* chunk-size line with its extensions */
#define ENTRA_HTTP_HEAD_MAX (64 * 1024)

struct entra_http_parser {
	struct entra_http_response *resp; /* status, headers of interest, body */
	bool connect;        /* answer to a CONNECT: the head only, no body */
	bool started;        /* a byte was seen */
	bool done;           /* the message is complete */
	bool keep_alive;     /* when done: the connection may carry another request */
	int state;
	int minor;           /* HTTP/1.<minor> */
	bool interim;        /* the current head is a 1xx */
	bool have_length;
	bool chunked;
	bool seen_te;
	bool conn_close;
	bool conn_keep_alive;
	uint64_t length;     /* Content-Length */
	uint64_t remaining;  /* body or chunk bytes still to come */
	size_t head_total;
	size_t line_len;
	char line[ENTRA_HTTP_LINE_MAX];
};

/* resp must be initialised (status 0, body capped at the body limit). */
void entra_http_parser_init(struct entra_http_parser *p, struct entra_http_response *resp,
			    bool connect);
/* Consume up to len bytes; *used tells how many (fewer than len only once
 * the message is done: the rest belongs to no response of ours).
 * 0, -EPROTO (malformed), -E2BIG (body over resp->body's cap), -ENOMEM. */
int entra_http_parser_feed(struct entra_http_parser *p, const char *data, size_t len,
			   size_t *used);
/* The peer closed the connection: 0 when that ends the message (a body
 * read to the close), else -ECONNRESET. */
int entra_http_parser_eof(struct entra_http_parser *p);
/* Wipe the line buffer (header values may hold secrets). */
void entra_http_parser_wipe(struct entra_http_parser *p);

/* An RFC 9110 token character (header names, methods). */
bool entra_http_is_tchar(unsigned char c);

/* Retry-After value: delta-seconds or an HTTP-date (RFC 9110 §10.2.3);
 * seconds from now (a past date gives 0, capped at 7 days), -1 when
 * unparsable. */
long entra_http_retry_after(const char *v, size_t len, time_t now);

#endif
