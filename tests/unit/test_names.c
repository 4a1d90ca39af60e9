/* lib/names: the checks every name and value passes before it reaches a
 * file, a path or the environment. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "names.h"

/* What entra_value_is_safe promises, a byte at a time. */
static bool reference_is_safe(const char *value, size_t max)
{
	size_t len = strlen(value);

	if (len > max)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)value[i] < 0x20 || (unsigned char)value[i] == 0x7f)
			return false;
	return true;
}

/* Every byte value at every position of strings around the 8-byte words
 * it reads, on its own and next to bytes that carry or borrow in word
 * arithmetic (0x00-adjacent 0x01, 0x20, 0x7e/0x80, 0xff). */
static void test_value_is_safe_every_byte(void **state)
{
	static const unsigned char fillers[] = { 'a', 0x20, 0x21, 0x7e, 0x80, 0x81, 0xff };
	char s[24];

	(void)state;
	for (size_t len = 1; len < sizeof(s); len++) {
		for (size_t f = 0; f < sizeof(fillers); f++) {
			memset(s, fillers[f], len);
			s[len] = '\0';
			assert_true(entra_value_is_safe(s, len));
			assert_false(entra_value_is_safe(s, len - 1)); /* too long */
			for (size_t pos = 0; pos < len; pos++) {
				for (int c = 1; c < 256; c++) {
					s[pos] = (char)c;
					if (entra_value_is_safe(s, len) != reference_is_safe(s, len))
						fail_msg("byte 0x%02x at %zu of %zu (filler 0x%02x)", c, pos,
							 len, fillers[f]);
				}
				s[pos] = (char)fillers[f];
			}
		}
	}
	assert_false(entra_value_is_safe(NULL, 10));
	assert_true(entra_value_is_safe("", 0));
}

/* A token-sized value with one bad byte anywhere. */
static void test_value_is_safe_long(void **state)
{
	enum { LEN = 3000 };
	char *s = malloc(LEN + 1);

	(void)state;
	assert_non_null(s);
	for (size_t i = 0; i < LEN; i++)
		s[i] = (char)("ABCxyz012-._~+/"[i % 15]);
	s[LEN] = '\0';
	assert_true(entra_value_is_safe(s, LEN));
	assert_false(entra_value_is_safe(s, LEN - 1));
	for (size_t pos = 0; pos < LEN; pos += 7) {
		char saved = s[pos];

		s[pos] = '\n';
		assert_false(entra_value_is_safe(s, LEN));
		s[pos] = 0x7f;
		assert_false(entra_value_is_safe(s, LEN));
		s[pos] = saved;
	}
	free(s);
}

static void test_names_and_ids(void **state)
{
	(void)state;
	assert_true(entra_name_is_valid("alice@contoso.com"));
	assert_true(entra_name_is_valid("svc-train_01"));
	assert_false(entra_name_is_valid("../etc"));
	assert_false(entra_name_is_valid("a..b"));
	assert_false(entra_name_is_valid("-rf"));
	assert_false(entra_name_is_valid("a/b"));
	assert_false(entra_name_is_valid(""));
	assert_false(entra_name_is_valid(NULL));
	assert_true(entra_is_guid("72f988bf-86f1-41af-91ab-2d7cd011db47"));
	assert_true(entra_is_guid("72F988BF-86F1-41AF-91AB-2D7CD011DB47"));
	assert_false(entra_is_guid("72f988bf-86f1-41af-91ab-2d7cd011db4"));
	assert_false(entra_is_guid("72f988bf-86f1-41af-91ab_2d7cd011db47"));
	assert_false(entra_is_guid("72f988bg-86f1-41af-91ab-2d7cd011db47"));
	assert_int_equal(entra_hex_value('0'), 0);
	assert_int_equal(entra_hex_value('f'), 15);
	assert_int_equal(entra_hex_value('F'), 15);
	assert_int_equal(entra_hex_value('g'), -1);
	assert_true(entra_memeq_consttime("abc", "abc", 3));
	assert_false(entra_memeq_consttime("abc", "abd", 3));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_value_is_safe_every_byte),
		cmocka_unit_test(test_value_is_safe_long),
		cmocka_unit_test(test_names_and_ids),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
