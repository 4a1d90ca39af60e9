#include "config.h"
#include "http_parse.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "names.h"

#define MAX_WWW_AUTHENTICATE 8192
#define RETRY_AFTER_MAX (86400L * 7)

enum {
	S_STATUS,      /* status line */
	S_HEADER,      /* header lines up to the empty one */
	S_BODY_LENGTH, /* Content-Length bytes */
	S_CHUNK_SIZE,  /* chunk-size [; ext] line */
	S_CHUNK_DATA,
	S_CHUNK_END,   /* the CRLF after a chunk's data */
	S_TRAILER,     /* trailer lines up to the empty one */
	S_BODY_EOF,    /* body runs to the close */
	S_DONE,
};

void entra_http_parser_init(struct entra_http_parser *p, struct entra_http_response *resp,
			    bool connect)
{
	memset(p, 0, offsetof(struct entra_http_parser, line));
	p->line[0] = '\0';
	p->resp = resp;
	p->connect = connect;
	p->state = S_STATUS;
}

void entra_http_parser_wipe(struct entra_http_parser *p)
{
	explicit_bzero(p->line, sizeof(p->line));
	p->line_len = 0;
}

/* Forget the headers of an interim (1xx) response. */
static void reset_headers(struct entra_http_parser *p)
{
	struct entra_http_response *resp = p->resp;

	resp->content_type[0] = '\0';
	resp->retry_after = -1;
	free(resp->www_authenticate);
	resp->www_authenticate = NULL;
	p->have_length = false;
	p->chunked = false;
	p->seen_te = false;
	p->conn_close = false;
	p->conn_keep_alive = false;
	p->length = 0;
}

bool entra_http_is_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool token_is(const char *v, size_t len, const char *word)
{
	return strlen(word) == len && strncasecmp(v, word, len) == 0;
}

static void set_content_type(struct entra_http_response *resp, const char *v, size_t len)
{
	size_t i, n = 0;

	/* Media type only: "application/json; charset=utf-8" -> "application/json". */
	for (i = 0; i < len && v[i] != ';'; i++)
		;
	len = i;
	while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t'))
		len--;
	if (len >= sizeof(resp->content_type)) {
		resp->content_type[0] = '\0'; /* absurd: treat as absent */
		return;
	}
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)v[i];

		if (c < 0x21 || c > 0x7e) {
			resp->content_type[0] = '\0';
			return;
		}
		resp->content_type[n++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
	}
	resp->content_type[n] = '\0';
}

static int month_of(const char *m)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";

	for (int i = 0; i < 12; i++)
		if (strncmp(m, months + 3 * i, 3) == 0)
			return i;
	return -1;
}

/* A small scanner for the date forms: each take_ advances *p on success. */
static bool take_char(const char **p, char c)
{
	if (**p != c)
		return false;
	(*p)++;
	return true;
}

/* Between min and max letters into out (max + 1 bytes). */
static bool take_word(const char **p, size_t min, size_t max, char *out)
{
	size_t n = 0;

	while (n < max && (((*p)[n] >= 'A' && (*p)[n] <= 'Z') || ((*p)[n] >= 'a' && (*p)[n] <= 'z'))) {
		out[n] = (*p)[n];
		n++;
	}
	out[n] = '\0';
	if (n < min || (((*p)[n] >= 'A' && (*p)[n] <= 'Z') || ((*p)[n] >= 'a' && (*p)[n] <= 'z')))
		return false;
	*p += n;
	return true;
}

/* Between min and max decimal digits. */
static bool take_number(const char **p, int min, int max, int *out)
{
	int n = 0, v = 0;

	while (n < max && (*p)[n] >= '0' && (*p)[n] <= '9') {
		v = v * 10 + ((*p)[n] - '0');
		n++;
	}
	if (n < min || ((*p)[n] >= '0' && (*p)[n] <= '9'))
		return false;
	*p += n;
	*out = v;
	return true;
}

/* hh:mm:ss */
static bool take_time(const char **p, struct tm *tm)
{
	return take_number(p, 2, 2, &tm->tm_hour) && take_char(p, ':') &&
	       take_number(p, 2, 2, &tm->tm_min) && take_char(p, ':') &&
	       take_number(p, 2, 2, &tm->tm_sec);
}

/* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
static bool imf_fixdate(const char *p, struct tm *tm, char mon[4])
{
	char wd[4];

	return take_word(&p, 3, 3, wd) && take_char(&p, ',') && take_char(&p, ' ') &&
	       take_number(&p, 2, 2, &tm->tm_mday) && take_char(&p, ' ') &&
	       take_word(&p, 3, 3, mon) && take_char(&p, ' ') &&
	       take_number(&p, 4, 4, &tm->tm_year) && take_char(&p, ' ') && take_time(&p, tm) &&
	       strcmp(p, " GMT") == 0;
}

/* RFC 850: Sunday, 06-Nov-94 08:49:37 GMT */
static bool rfc850_date(const char *p, struct tm *tm, char mon[4])
{
	char wd[10];

	if (!(take_word(&p, 6, 9, wd) && take_char(&p, ',') && take_char(&p, ' ') &&
	      take_number(&p, 2, 2, &tm->tm_mday) && take_char(&p, '-') &&
	      take_word(&p, 3, 3, mon) && take_char(&p, '-') &&
	      take_number(&p, 2, 2, &tm->tm_year) && take_char(&p, ' ') && take_time(&p, tm) &&
	      strcmp(p, " GMT") == 0))
		return false;
	tm->tm_year += tm->tm_year < 70 ? 2000 : 1900;
	return true;
}

/* asctime: Sun Nov  6 08:49:37 1994 */
static bool asctime_date(const char *p, struct tm *tm, char mon[4])
{
	char wd[4];

	if (!(take_word(&p, 3, 3, wd) && take_char(&p, ' ') && take_word(&p, 3, 3, mon) &&
	      take_char(&p, ' ')))
		return false;
	(void)take_char(&p, ' '); /* a one-digit day is padded with a space */
	return take_number(&p, 1, 2, &tm->tm_mday) && take_char(&p, ' ') && take_time(&p, tm) &&
	       take_char(&p, ' ') && take_number(&p, 4, 4, &tm->tm_year) && *p == '\0';
}

/* The three HTTP-date forms (RFC 9110 §5.6.7), GMT only; (time_t)-1 when
 * none fits. */
static time_t parse_http_date(const char *s)
{
	char mon[4];
	struct tm tm;
	int y;

	memset(&tm, 0, sizeof(tm));
	if (!imf_fixdate(s, &tm, mon)) {
		memset(&tm, 0, sizeof(tm));
		if (!rfc850_date(s, &tm, mon)) {
			memset(&tm, 0, sizeof(tm));
			if (!asctime_date(s, &tm, mon))
				return (time_t)-1;
		}
	}
	y = tm.tm_year;
	tm.tm_mon = month_of(mon);
	if (tm.tm_mon < 0 || tm.tm_mday < 1 || tm.tm_mday > 31 || y < 1970 || y > 9999 ||
	    tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
		return (time_t)-1;
	tm.tm_year = y - 1900;
	return timegm(&tm);
}

long entra_http_retry_after(const char *v, size_t len, time_t now)
{
	char tmp[64];
	size_t i;

	if (len == 0 || len >= sizeof(tmp))
		return -1;
	memcpy(tmp, v, len);
	tmp[len] = '\0';
	for (i = 0; i < len && tmp[i] >= '0' && tmp[i] <= '9'; i++)
		;
	if (i == len) {
		char *end;
		long long n;

		errno = 0;
		n = strtoll(tmp, &end, 10);
		if (errno != 0 || *end != '\0')
			return -1;
		return n > RETRY_AFTER_MAX ? RETRY_AFTER_MAX : (long)n;
	} else {
		time_t when = parse_http_date(tmp);

		if (when == (time_t)-1)
			return -1;
		if (when <= now)
			return 0;
		return when - now > RETRY_AFTER_MAX ? RETRY_AFTER_MAX : (long)(when - now);
	}
}

/* Content-Length: digits only, no sign, no list; repeats must agree. */
static int content_length(struct entra_http_parser *p, const char *v, size_t len)
{
	uint64_t n = 0;

	if (len == 0)
		return -EPROTO;
	for (size_t i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -EPROTO;
		if (n > (UINT64_MAX - 9) / 10)
			return -EPROTO;
		n = n * 10 + (uint64_t)(v[i] - '0');
	}
	if (p->have_length && p->length != n)
		return -EPROTO;
	p->have_length = true;
	p->length = n;
	return 0;
}

static void connection_tokens(struct entra_http_parser *p, const char *v, size_t len)
{
	size_t i = 0;

	while (i < len) {
		size_t start, end;

		while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		start = i;
		while (i < len && v[i] != ',')
			i++;
		end = i;
		while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
			end--;
		if (token_is(v + start, end - start, "close"))
			p->conn_close = true;
		else if (token_is(v + start, end - start, "keep-alive"))
			p->conn_keep_alive = true;
	}
}

static int header_line(struct entra_http_parser *p, const char *line, size_t len)
{
	struct entra_http_response *resp = p->resp;
	const char *name = line, *v;
	size_t nlen = 0, vlen;

	if (line[0] == ' ' || line[0] == '\t')
		return -EPROTO; /* obs-fold: refused (RFC 9112 §5.2) */
	while (nlen < len && entra_http_is_tchar((unsigned char)line[nlen]))
		nlen++;
	if (nlen == 0 || nlen == len || line[nlen] != ':')
		return -EPROTO; /* no name, or space before the colon */
	v = line + nlen + 1;
	vlen = len - nlen - 1;
	while (vlen > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		vlen--;
	}
	while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
		vlen--;
	if (p->interim)
		return 0;
	if (token_is(name, nlen, "Content-Length"))
		return content_length(p, v, vlen);
	if (token_is(name, nlen, "Transfer-Encoding")) {
		/* Only exactly "chunked": a list or another coding is refused. */
		if (p->seen_te || !token_is(v, vlen, "chunked"))
			return -EPROTO;
		p->seen_te = true;
		p->chunked = true;
		return 0;
	}
	if (token_is(name, nlen, "Connection")) {
		connection_tokens(p, v, vlen);
		return 0;
	}
	if (token_is(name, nlen, "Content-Type")) {
		set_content_type(resp, v, vlen);
	} else if (token_is(name, nlen, "Retry-After")) {
		resp->retry_after = entra_http_retry_after(v, vlen, time(NULL));
	} else if (token_is(name, nlen, "WWW-Authenticate")) {
		/* First one only, bounded; an oversized one is dropped. */
		if (resp->www_authenticate == NULL && vlen <= MAX_WWW_AUTHENTICATE) {
			resp->www_authenticate = strndup(v, vlen);
			if (resp->www_authenticate == NULL)
				return -ENOMEM;
		}
	}
	return 0;
}

static int status_line(struct entra_http_parser *p, const char *line, size_t len)
{
	long status;

	/* HTTP/1.x SP 3DIGIT [SP reason] */
	if (len < 12 || memcmp(line, "HTTP/1.", 7) != 0 || (line[7] != '0' && line[7] != '1') ||
	    line[8] != ' ' || line[9] < '1' || line[9] > '9' || line[10] < '0' || line[10] > '9' ||
	    line[11] < '0' || line[11] > '9' || (len > 12 && line[12] != ' '))
		return -EPROTO;
	status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
	if (status == 101)
		return -EPROTO; /* never asked for */
	reset_headers(p);
	p->minor = line[7] - '0';
	p->interim = status < 200;
	if (!p->interim)
		p->resp->status = status;
	p->state = S_HEADER;
	return 0;
}

static int end_of_head(struct entra_http_parser *p)
{
	long status = p->resp->status;

	if (p->interim) {
		p->interim = false;
		p->state = S_STATUS;
		return 0;
	}
	p->keep_alive = p->minor >= 1 ? !p->conn_close : p->conn_keep_alive && !p->conn_close;
	if (p->connect) {
		/* A 2xx to CONNECT starts the tunnel; anything else is the
		 * proxy's refusal, whose body we do not want. */
		if (status < 200 || status > 299)
			p->keep_alive = false;
		p->state = S_DONE;
		return 0;
	}
	if (p->have_length && p->chunked)
		return -EPROTO; /* request smuggling territory (RFC 9112 §6.3) */
	if (status == 204 || status == 304) {
		p->state = S_DONE;
		return 0;
	}
	if (p->chunked) {
		if (p->minor == 0)
			p->keep_alive = false; /* RFC 9112 §6.1 */
		p->state = S_CHUNK_SIZE;
		return 0;
	}
	if (p->have_length) {
		if (p->length > p->resp->body.max)
			return -E2BIG;
		p->remaining = p->length;
		p->state = p->length == 0 ? S_DONE : S_BODY_LENGTH;
		return 0;
	}
	p->keep_alive = false;
	p->state = S_BODY_EOF;
	return 0;
}

static int chunk_size_line(struct entra_http_parser *p, const char *line, size_t len)
{
	uint64_t n = 0;
	size_t i = 0;
	int h;

	while (i < len && (h = entra_hex_value(line[i])) >= 0) {
		if (n > (UINT64_MAX >> 4))
			return -EPROTO;
		n = (n << 4) | (uint64_t)h;
		i++;
	}
	if (i == 0)
		return -EPROTO;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	if (i < len && line[i] != ';')
		return -EPROTO; /* extensions after ';' are ignored */
	if (n == 0) {
		p->state = S_TRAILER;
		return 0;
	}
	if (n > p->resp->body.max - p->resp->body.len)
		return -E2BIG;
	p->remaining = n;
	p->state = S_CHUNK_DATA;
	return 0;
}

/* One complete line (CR LF or LF stripped). */
static int process_line(struct entra_http_parser *p, const char *line, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return -EPROTO; /* a bare CR, NUL, other controls */
	}
	switch (p->state) {
	case S_STATUS:
		return status_line(p, line, len);
	case S_HEADER:
		return len == 0 ? end_of_head(p) : header_line(p, line, len);
	case S_CHUNK_SIZE:
		return chunk_size_line(p, line, len);
	case S_CHUNK_END:
		if (len != 0)
			return -EPROTO;
		p->state = S_CHUNK_SIZE;
		return 0;
	case S_TRAILER:
		/* Trailers are consumed, never used. */
		if (len == 0)
			p->state = S_DONE;
		return 0;
	default:
		return -EPROTO;
	}
}

static bool in_head(const struct entra_http_parser *p)
{
	return p->state == S_STATUS || p->state == S_HEADER || p->state == S_TRAILER;
}

int entra_http_parser_feed(struct entra_http_parser *p, const char *data, size_t len,
			   size_t *used)
{
	size_t i = 0;
	int rc;

	*used = 0;
	if (len > 0)
		p->started = true;
	while (i < len && p->state != S_DONE) {
		if (p->state == S_BODY_LENGTH || p->state == S_CHUNK_DATA ||
		    p->state == S_BODY_EOF) {
			size_t n = len - i;

			if (p->state != S_BODY_EOF && n > p->remaining)
				n = (size_t)p->remaining;
			rc = entra_buf_append(&p->resp->body, data + i, n);
			if (rc < 0)
				return rc;
			i += n;
			if (p->state == S_BODY_EOF)
				continue;
			p->remaining -= n;
			if (p->remaining == 0)
				p->state = p->state == S_BODY_LENGTH ? S_DONE : S_CHUNK_END;
			continue;
		}
		/* Line states: gather up to LF. */
		{
			const char *nl = memchr(data + i, '\n', len - i);
			size_t n = nl != NULL ? (size_t)(nl - (data + i)) : len - i;
			size_t line_len;

			if (p->line_len + n >= sizeof(p->line))
				return -EPROTO;
			if ((p->state == S_CHUNK_SIZE || p->state == S_CHUNK_END) &&
			    p->line_len + n > ENTRA_HTTP_CHUNK_LINE_MAX)
				return -EPROTO;
			if (in_head(p) && p->head_total + n + 1 > ENTRA_HTTP_HEAD_MAX)
				return -EPROTO;
			if (in_head(p))
				p->head_total += n + (nl != NULL);
			memcpy(p->line + p->line_len, data + i, n);
			p->line_len += n;
			i += n;
			if (nl == NULL)
				break;
			i++; /* the LF */
			line_len = p->line_len;
			if (line_len > 0 && p->line[line_len - 1] == '\r')
				line_len--;
			p->line[line_len] = '\0';
			p->line_len = 0;
			rc = process_line(p, p->line, line_len);
			if (rc < 0)
				return rc;
		}
	}
	if (p->state == S_DONE)
		p->done = true;
	*used = i;
	return 0;
}

int entra_http_parser_eof(struct entra_http_parser *p)
{
	if (p->state == S_BODY_EOF) {
		p->state = S_DONE;
		p->done = true;
		p->keep_alive = false;
	}
	return p->done ? 0 : -ECONNRESET;
}
