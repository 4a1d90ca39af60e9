#include "config.h"
#include "names.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

static bool name_char_ok(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '@' ||
	       c == '+' || c == '-';
}

bool entra_name_is_valid(const char *name)
{
	size_t len;

	if (name == NULL)
		return false;
	len = strnlen(name, ENTRA_NAME_MAX + 1);
	if (len == 0 || len > ENTRA_NAME_MAX)
		return false;
	if (name[0] == '-' || name[0] == '.')
		return false;
	for (size_t i = 0; i < len; i++)
		if (!name_char_ok((unsigned char)name[i]))
			return false;
	return strstr(name, "..") == NULL;
}

/* Whether any of the 8 bytes in w is below 0x20 or is 0x7f: the
 * "has less than" and "has zero byte" word tricks, exact as a yes/no
 * answer. Tokens of kilobytes are checked at every session. */
static bool word_has_control(uint64_t w)
{
	const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
	uint64_t del = w ^ (ones * 0x7f);

	return (((w - ones * 0x20) & ~w) | ((del - ones) & ~del)) & highs;
}

bool entra_value_is_safe(const char *value, size_t max)
{
	size_t len, i = 0;

	if (value == NULL)
		return false;
	len = strnlen(value, max + 1);
	if (len > max)
		return false;
	for (; i + 8 <= len; i += 8) {
		uint64_t w;

		memcpy(&w, value + i, sizeof(w));
		if (word_has_control(w))
			return false;
	}
	for (; i < len; i++) {
		unsigned char c = (unsigned char)value[i];
		if (c < 0x20 || c == 0x7f)
			return false;
	}
	return true;
}

int entra_hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

void entra_hex_encode(const unsigned char *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

bool entra_is_guid(const char *s)
{
	static const char shape[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";

	if (s == NULL || strlen(s) != sizeof(shape) - 1)
		return false;
	for (size_t i = 0; shape[i] != '\0'; i++) {
		char c = s[i];
		if (shape[i] == '-') {
			if (c != '-')
				return false;
		} else if (entra_hex_value(c) < 0) {
			return false;
		}
	}
	return true;
}

bool entra_streq_nocase(const char *a, const char *b)
{
	return a != NULL && b != NULL && strcasecmp(a, b) == 0;
}

bool entra_memeq_consttime(const void *a, const void *b, size_t len)
{
	const volatile unsigned char *x = a, *y = b;
	unsigned char diff = 0;

	for (size_t i = 0; i < len; i++)
		diff |= x[i] ^ y[i];
	return diff == 0;
}
