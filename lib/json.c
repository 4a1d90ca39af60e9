#include "config.h"
#include "json.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/*
 * json-c builds the tree, but on its own it is too lenient for input that
 * decides logins: even in strict mode it accepts single-quoted strings and
 * raw control characters, silently keeps the last of duplicate keys, turns
 * lone surrogates into U+FFFD, cuts keys at an escaped NUL and clamps
 * out-of-range integers. So every document first goes through the small
 * RFC 8259 validator below, which also decodes each object's keys and
 * rejects duplicates. Only then is json-c allowed to build the tree.
 */

struct key {
	const char *ptr;  /* into the text, or into owned */
	size_t len;
	char *owned;      /* decoded copy when the key had escapes */
};

struct scan {
	const char *p;
	const char *end;
	const char *error;
	struct key *keys; /* keys of all open objects, innermost last */
	size_t nkeys;
	size_t keys_cap;
};

static bool fail(struct scan *s, const char *error)
{
	if (s->error == NULL)
		s->error = error;
	return false;
}

static void skip_ws(struct scan *s)
{
	while (s->p < s->end &&
	       (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
		s->p++;
}

static int hex4(const char *p, unsigned *out)
{
	unsigned v = 0;

	for (int i = 0; i < 4; i++) {
		char c = p[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

/* Length of the well-formed UTF-8 sequence at p (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF), or 0. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
	size_t n;
	unsigned cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		n = 2;
		cp = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		n = 3;
		cp = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		n = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	if ((size_t)(end - p) < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

static size_t put_utf8(char *out, unsigned cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | cp >> 12);
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | cp >> 18);
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Decode the already validated string body [p, end) into a new buffer.
 * Decoded text is never longer than its escaped form. */
static char *decode_string(const char *p, const char *end, size_t *len_out)
{
	char *out = malloc((size_t)(end - p) + 1);
	size_t n = 0;

	if (out == NULL)
		return NULL;
	while (p < end) {
		unsigned cp, lo;

		if (*p != '\\') {
			out[n++] = *p++;
			continue;
		}
		p++;
		switch (*p) {
		case 'b': out[n++] = '\b'; break;
		case 'f': out[n++] = '\f'; break;
		case 'n': out[n++] = '\n'; break;
		case 'r': out[n++] = '\r'; break;
		case 't': out[n++] = '\t'; break;
		case 'u':
			(void)hex4(p + 1, &cp);
			p += 4;
			if (cp >= 0xd800 && cp <= 0xdbff) {
				(void)hex4(p + 3, &lo);
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				p += 6;
			}
			n += put_utf8(out + n, cp);
			break;
		default: out[n++] = *p; break; /* " \ / */
		}
		p++;
	}
	out[n] = '\0';
	*len_out = n;
	return out;
}

/* A string starting at the opening quote. With key != NULL, also returns
 * the decoded key (no NUL allowed in it: json-c would cut it there). */
static bool scan_string(struct scan *s, struct key *key)
{
	const char *start;
	bool escaped = false;

	s->p++;
	start = s->p;
	for (;;) {
		unsigned char c;

		if (s->p >= s->end)
			return fail(s, "unterminated string");
		c = (unsigned char)*s->p;
		if (c == '"')
			break;
		if (c < 0x20)
			return fail(s, "control character in a string");
		if (c >= 0x80) {
			size_t n = utf8_len((const unsigned char *)s->p,
					    (const unsigned char *)s->end);
			if (n == 0)
				return fail(s, "invalid UTF-8");
			s->p += n;
			continue;
		}
		if (c != '\\') {
			s->p++;
			continue;
		}
		escaped = true;
		if (s->end - s->p < 2)
			return fail(s, "unterminated string");
		c = (unsigned char)s->p[1];
		if (c == 'u') {
			unsigned cp, lo;

			if (s->end - s->p < 6 || hex4(s->p + 2, &cp) < 0)
				return fail(s, "bad \\u escape");
			s->p += 6;
			if (cp >= 0xdc00 && cp <= 0xdfff)
				return fail(s, "lone surrogate");
			if (cp >= 0xd800 && cp <= 0xdbff) {
				if (s->end - s->p < 6 || s->p[0] != '\\' || s->p[1] != 'u' ||
				    hex4(s->p + 2, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff)
					return fail(s, "lone surrogate");
				s->p += 6;
			}
			if (cp == 0 && key != NULL)
				return fail(s, "NUL in a key");
			continue;
		}
		if (strchr("\"\\/bfnrt", (int)c) == NULL || c == '\0')
			return fail(s, "bad escape");
		s->p += 2;
	}
	if (key != NULL) {
		key->owned = NULL;
		if (escaped) {
			key->owned = decode_string(start, s->p, &key->len);
			if (key->owned == NULL)
				return fail(s, "out of memory");
			key->ptr = key->owned;
		} else {
			key->ptr = start;
			key->len = (size_t)(s->p - start);
		}
	}
	s->p++;
	return true;
}

static bool scan_digits(struct scan *s)
{
	if (s->p >= s->end || *s->p < '0' || *s->p > '9')
		return fail(s, "bad number");
	while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
		s->p++;
	return true;
}

static bool scan_number(struct scan *s)
{
	const char *start = s->p;
	bool negative = false, integer = true;
	uint64_t v = 0, limit;

	if (*s->p == '-') {
		negative = true;
		s->p++;
	}
	if (s->p < s->end && *s->p == '0')
		s->p++;
	else if (!scan_digits(s))
		return false;
	if (s->p < s->end && *s->p == '.') {
		integer = false;
		s->p++;
		if (!scan_digits(s))
			return false;
	}
	if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
		integer = false;
		s->p++;
		if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
			s->p++;
		if (!scan_digits(s))
			return false;
	}
	if (!integer)
		return true;
	/* json-c would clamp an integer it cannot hold; refuse it instead. */
	limit = negative ? (uint64_t)INT64_MAX + 1 : UINT64_MAX;
	for (const char *q = start + negative; q < s->p; q++) {
		unsigned d = (unsigned)(*q - '0');

		if (v > (limit - d) / 10)
			return fail(s, "integer out of range");
		v = v * 10 + d;
	}
	return true;
}

static bool scan_literal(struct scan *s, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
		return fail(s, "syntax error");
	s->p += n;
	return true;
}

static int key_cmp(const void *a, const void *b)
{
	const struct key *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int r = memcmp(x->ptr, y->ptr, n);

	if (r != 0)
		return r;
	return x->len < y->len ? -1 : x->len > y->len;
}

static void pop_keys(struct scan *s, size_t base)
{
	while (s->nkeys > base)
		free(s->keys[--s->nkeys].owned);
}

static bool scan_value(struct scan *s, int depth);

/* The scanner recurses once per nesting level, bounded by
 * ENTRA_JSON_MAX_DEPTH (checked in scan_value). */
static bool scan_object(struct scan *s, int depth) // NOLINT(misc-no-recursion)
{
	size_t base = s->nkeys;

	s->p++;
	skip_ws(s);
	if (s->p < s->end && *s->p == '}') {
		s->p++;
		return true;
	}
	for (;;) {
		skip_ws(s);
		if (s->p >= s->end || *s->p != '"')
			return fail(s, "syntax error");
		if (s->nkeys == s->keys_cap) {
			size_t cap = s->keys_cap ? s->keys_cap * 2 : 16;
			struct key *k = realloc(s->keys, cap * sizeof(*k));

			if (k == NULL)
				return fail(s, "out of memory");
			s->keys = k;
			s->keys_cap = cap;
		}
		if (!scan_string(s, &s->keys[s->nkeys]))
			return false;
		s->nkeys++;
		skip_ws(s);
		if (s->p >= s->end || *s->p != ':')
			return fail(s, "syntax error");
		s->p++;
		if (!scan_value(s, depth))
			return false;
		skip_ws(s);
		if (s->p < s->end && *s->p == ',') {
			s->p++;
			continue;
		}
		if (s->p < s->end && *s->p == '}') {
			s->p++;
			break;
		}
		return fail(s, "syntax error");
	}
	qsort(s->keys + base, s->nkeys - base, sizeof(*s->keys), key_cmp);
	for (size_t i = base + 1; i < s->nkeys; i++)
		if (key_cmp(&s->keys[i - 1], &s->keys[i]) == 0)
			return fail(s, "duplicate key");
	pop_keys(s, base);
	return true;
}

static bool scan_array(struct scan *s, int depth) // NOLINT(misc-no-recursion)
{
	s->p++;
	skip_ws(s);
	if (s->p < s->end && *s->p == ']') {
		s->p++;
		return true;
	}
	for (;;) {
		if (!scan_value(s, depth))
			return false;
		skip_ws(s);
		if (s->p < s->end && *s->p == ',') {
			s->p++;
			continue;
		}
		if (s->p < s->end && *s->p == ']') {
			s->p++;
			return true;
		}
		return fail(s, "syntax error");
	}
}

static bool scan_value(struct scan *s, int depth) // NOLINT(misc-no-recursion)
{
	skip_ws(s);
	if (s->p >= s->end)
		return fail(s, "unexpected end");
	switch (*s->p) {
	case '{':
	case '[':
		if (depth + 1 > ENTRA_JSON_MAX_DEPTH)
			return fail(s, "nested too deep");
		if (*s->p == '{')
			return scan_object(s, depth + 1);
		return scan_array(s, depth + 1);
	case '"':
		return scan_string(s, NULL);
	case 't':
		return scan_literal(s, "true");
	case 'f':
		return scan_literal(s, "false");
	case 'n':
		return scan_literal(s, "null");
	default:
		if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))
			return scan_number(s);
		return fail(s, "syntax error");
	}
}

struct json_object *entra_json_parse_ex(const char *text, size_t len, bool want_object,
					const char **error)
{
	struct scan s = { .p = text };
	struct json_tokener *tok = NULL;
	struct json_object *obj = NULL;
	const char *dummy;

	if (error == NULL)
		error = &dummy;
	*error = NULL;
	if (text == NULL) {
		*error = "no text";
		return NULL;
	}
	/* json-c takes an int length. */
	if (len > INT_MAX - 1) {
		*error = "too long";
		return NULL;
	}
	if (memchr(text, '\0', len) != NULL) {
		*error = "NUL byte in the text";
		return NULL;
	}
	s.end = text + len;
	scan_value(&s, 0);
	if (s.error == NULL) {
		skip_ws(&s);
		if (s.p != s.end)
			fail(&s, "trailing data after the value");
	}
	pop_keys(&s, 0);
	free(s.keys);
	if (s.error != NULL) {
		*error = s.error;
		return NULL;
	}
	if (want_object) {
		const char *p = text;

		while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
			p++;
		if (*p != '{') {
			*error = "not an object";
			return NULL;
		}
	}

	/* json-c counts a scalar inside the innermost container as one more
	 * level; the scanner above has already enforced the real limit. */
	tok = json_tokener_new_ex(ENTRA_JSON_MAX_DEPTH + 1);
	if (tok == NULL) {
		*error = "out of memory";
		return NULL;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	obj = json_tokener_parse_ex(tok, text, (int)len);
	/* A bare top-level number needs a terminator to be complete. */
	if (obj == NULL && json_tokener_get_error(tok) == json_tokener_continue)
		obj = json_tokener_parse_ex(tok, "", 1);
	if (obj == NULL || json_tokener_get_error(tok) != json_tokener_success) {
		json_object_put(obj);
		obj = NULL;
		*error = "rejected by json-c";
	} else if (want_object && !json_object_is_type(obj, json_type_object)) {
		json_object_put(obj);
		obj = NULL;
		*error = "not an object";
	}
	json_tokener_free(tok);
	return obj;
}

struct json_object *entra_json_parse(const char *text, size_t len)
{
	return entra_json_parse_ex(text, len, false, NULL);
}

struct json_object *entra_json_parse_object(const char *text, size_t len)
{
	return entra_json_parse_ex(text, len, true, NULL);
}

/* A string with an embedded NUL is not a C string: callers would see a
 * prefix of it. Treat it as "not a string". */
static const char *c_string(struct json_object *val)
{
	const char *str;

	if (!json_object_is_type(val, json_type_string))
		return NULL;
	str = json_object_get_string(val);
	if (str == NULL || strlen(str) != (size_t)json_object_get_string_len(val))
		return NULL;
	return str;
}

void entra_json_wipe_member(struct json_object *obj, const char *key)
{
	struct json_object *v;

	if (obj != NULL && json_object_object_get_ex(obj, key, &v) &&
	    json_object_is_type(v, json_type_string))
		explicit_bzero((char *)json_object_get_string(v), (size_t)json_object_get_string_len(v));
}

const char *entra_json_get_string(struct json_object *obj, const char *key)
{
	struct json_object *val;

	if (key == NULL || !json_object_is_type(obj, json_type_object) ||
	    !json_object_object_get_ex(obj, key, &val))
		return NULL;
	return c_string(val);
}

int entra_json_get_int64(struct json_object *obj, const char *key, int64_t *out)
{
	struct json_object *val;
	const char *str;
	int64_t v = 0;

	if (key == NULL || out == NULL || !json_object_is_type(obj, json_type_object))
		return -EINVAL;
	if (!json_object_object_get_ex(obj, key, &val))
		return -ENOENT;
	if (json_object_is_type(val, json_type_int)) {
		v = json_object_get_int64(val);
		/* json-c stores values above INT64_MAX as uint64 and reports
		 * INT64_MAX for them. */
		if (v == INT64_MAX && json_object_get_uint64(val) != (uint64_t)INT64_MAX)
			return -EINVAL;
		*out = v;
		return 0;
	}
	str = c_string(val);
	if (str == NULL || *str == '\0')
		return -EINVAL;
	for (const char *p = str; *p != '\0'; p++) {
		int d;

		if (*p < '0' || *p > '9')
			return -EINVAL;
		d = *p - '0';
		if (v > (INT64_MAX - d) / 10)
			return -EINVAL;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

static bool is_string_array(struct json_object *arr)
{
	size_t n;

	if (!json_object_is_type(arr, json_type_array))
		return false;
	n = json_object_array_length(arr);
	for (size_t i = 0; i < n; i++)
		if (c_string(json_object_array_get_idx(arr, i)) == NULL)
			return false;
	return true;
}

struct json_object *entra_json_get_string_array(struct json_object *obj, const char *key)
{
	struct json_object *val;

	if (key == NULL || !json_object_is_type(obj, json_type_object) ||
	    !json_object_object_get_ex(obj, key, &val) || !is_string_array(val))
		return NULL;
	return val;
}

bool entra_json_string_or_array_contains(struct json_object *obj, const char *key,
					 const char *value)
{
	struct json_object *arr;
	const char *str;
	size_t n;

	if (value == NULL)
		return false;
	str = entra_json_get_string(obj, key);
	if (str != NULL)
		return strcmp(str, value) == 0;
	arr = entra_json_get_string_array(obj, key);
	if (arr == NULL)
		return false;
	n = json_object_array_length(arr);
	for (size_t i = 0; i < n; i++)
		if (strcmp(json_object_get_string(json_object_array_get_idx(arr, i)), value) == 0)
			return true;
	return false;
}
