/* Strict JSON parsing (limits, duplicate keys) and the typed getters. */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "json.h"

static struct json_object *parse(const char *text)
{
	return entra_json_parse(text, strlen(text));
}

static void expect_ok(const char *text)
{
	struct json_object *obj = parse(text);

	if (obj == NULL)
		fail_msg("rejected: %s", text);
	json_object_put(obj);
}

static void expect_bad(const char *text, const char *why)
{
	const char *error = NULL;
	struct json_object *obj = entra_json_parse_ex(text, strlen(text), false, &error);

	if (obj != NULL)
		fail_msg("accepted: %s", text);
	assert_non_null(error);
	if (why != NULL && strstr(error, why) == NULL)
		fail_msg("%s: error \"%s\" lacks \"%s\"", text, error, why);
}

static void test_valid_documents(void **state)
{
	(void)state;
	expect_ok("{}");
	expect_ok("[]");
	expect_ok(" \t\r\n{\"a\": [1, -2, 3.5, -0, 1e3, 2E-2, true, false, null, \"x\"]} \n");
	expect_ok("\"just a string\"");
	expect_ok("0");
	expect_ok("-12");
	expect_ok("{\"k\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\"}");
	expect_ok("{\"caf\xc3\xa9\":\"\xf0\x9f\x98\x80\"}");
	expect_ok("{\"a\":{\"a\":{\"a\":1}}}");     /* same key, different objects */
	expect_ok("[{\"a\":1},{\"a\":2}]");
	expect_ok("{\"n\":18446744073709551615,\"m\":-9223372036854775808}");
}

static void test_strictness(void **state)
{
	(void)state;
	expect_bad("", "end");
	expect_bad("   ", "end");
	expect_bad("{'a':1}", "syntax");
	expect_bad("{\"a\":1,}", "syntax");
	expect_bad("[1,]", "syntax");
	expect_bad("[1 2]", "syntax");
	expect_bad("{\"a\" 1}", "syntax");
	expect_bad("{a:1}", "syntax");
	expect_bad("01", "trailing");
	expect_bad("1.", "number");
	expect_bad(".5", "syntax");
	expect_bad("+1", "syntax");
	expect_bad("-", "number");
	expect_bad("1e", "number");
	expect_bad("NaN", "syntax");
	expect_bad("Infinity", "syntax");
	expect_bad("tru", "syntax");
	expect_bad("nulls", "trailing");
	expect_bad("\"a\tb\"", "control");
	expect_bad("\"a\nb\"", "control");
	expect_bad("\"\\x41\"", "escape");
	expect_bad("\"\\u12G4\"", "escape");
	expect_bad("\"\\u123\"", "escape");
	expect_bad("\"abc", "unterminated");
	expect_bad("\"\\ud800\"", "surrogate");
	expect_bad("\"\\udc00\"", "surrogate");
	expect_bad("\"\\ud800\\u0041\"", "surrogate");
	expect_bad("\"\xff\"", "UTF-8");
	expect_bad("\"\xc0\xaf\"", "UTF-8");         /* overlong '/' */
	expect_bad("\"\xed\xa0\x80\"", "UTF-8");     /* encoded surrogate */
	expect_bad("\"\xe2\x82\"", "UTF-8");         /* truncated */
	expect_bad("{\"a\":1}/*c*/", "trailing");
	expect_bad("18446744073709551616", "range");
	expect_bad("-9223372036854775809", "range");
	expect_bad("{\"o\\u0000x\":1}", "NUL");      /* json-c would cut the key */
}

static void test_embedded_nul(void **state)
{
	static const char text[] = "{\"a\":\"b\"}\0{\"c\":1}";
	const char *error = NULL;
	(void)state;

	assert_null(entra_json_parse_ex(text, sizeof(text) - 1, false, &error));
	assert_non_null(strstr(error, "NUL"));
	assert_null(entra_json_parse("{\"a\":\"b\0\"}", 10));
	/* Only the given length counts. */
	struct json_object *obj = entra_json_parse(text, 9);
	assert_non_null(obj);
	json_object_put(obj);
}

static void test_trailing_garbage(void **state)
{
	(void)state;
	expect_bad("{\"a\":1} x", "trailing");
	expect_bad("{\"a\":1}{}", "trailing");
	expect_bad("[1] [2]", "trailing");
	expect_bad("1 2", "trailing");
	expect_ok("{\"a\":1}   \n\t\r");
}

static char *nested(int depth, const char *open, const char *inner, const char *close)
{
	size_t n = (strlen(open) + strlen(close)) * (size_t)depth + strlen(inner) + 1;
	char *s = malloc(n), *p = s;

	assert_non_null(s);
	for (int i = 0; i < depth; i++)
		p += snprintf(p, n - (size_t)(p - s), "%s", open);
	p += snprintf(p, n - (size_t)(p - s), "%s", inner);
	for (int i = 0; i < depth; i++)
		p += snprintf(p, n - (size_t)(p - s), "%s", close);
	return s;
}

static void test_depth_limit(void **state)
{
	char *s;
	(void)state;

	assert_int_equal(ENTRA_JSON_MAX_DEPTH, 16);
	s = nested(16, "[", "1", "]");
	expect_ok(s);
	free(s);
	s = nested(17, "[", "1", "]");
	expect_bad(s, "deep");
	free(s);
	s = nested(16, "{\"a\":", "1", "}");
	expect_ok(s);
	free(s);
	s = nested(17, "{\"a\":", "1", "}");
	expect_bad(s, "deep");
	free(s);
	s = nested(100000, "[", "", "]");
	expect_bad(s, "deep");
	free(s);
}

static void test_duplicate_keys(void **state)
{
	(void)state;
	expect_bad("{\"a\":1,\"a\":2}", "duplicate");
	expect_bad("{\"a\":1,\"b\":2,\"a\":1}", "duplicate");
	expect_bad("{\"x\":{\"a\":1,\"a\":2}}", "duplicate");
	expect_bad("[{\"ok\":1},{\"b\":1,\"c\":{\"d\":[{\"e\":1,\"e\":1}]}}]", "duplicate");
	expect_bad("{\"a\":1,\"\\u0061\":2}", "duplicate");
	expect_bad("{\"\\u006f\\u0069\\u0064\":1,\"oid\":2}", "duplicate");
	expect_bad("{\"\\/\":1,\"/\":2}", "duplicate");
	expect_bad("{\"caf\xc3\xa9\":1,\"caf\\u00e9\":2}", "duplicate");
	expect_bad("{\"\\ud83d\\ude00\":1,\"\xf0\x9f\x98\x80\":2}", "duplicate");
	/* The outer object's duplicate is found after the inner closes. */
	expect_bad("{\"a\":{\"b\":1},\"c\":2,\"a\":3}", "duplicate");
	/* Near misses are distinct keys. */
	expect_ok("{\"a\":1,\"A\":2,\"a \":3,\"\\u0062\":4,\"ab\":5}");
	expect_ok("{\"a\":{\"b\":1},\"b\":{\"a\":1}}");
}

static void test_many_keys(void **state)
{
	size_t n = 20000, cap = n * 16 + 16, off = 0;
	char *s = malloc(cap);
	(void)state;

	assert_non_null(s);
	off += (size_t)snprintf(s + off, cap - off, "{");
	for (size_t i = 0; i < n; i++)
		off += (size_t)snprintf(s + off, cap - off, "%s\"k%zu\":%zu", i ? "," : "", i, i);
	off += (size_t)snprintf(s + off, cap - off, "}");
	expect_ok(s);
	/* ... and one duplicate among them, far apart. */
	off -= 1;
	off += (size_t)snprintf(s + off, cap - off, ",\"k3\":0}");
	expect_bad(s, "duplicate");
	free(s);
}

static void test_parse_object(void **state)
{
	struct json_object *obj;
	const char *error = NULL;
	(void)state;

	obj = entra_json_parse_object("{\"a\":1}", 7);
	assert_non_null(obj);
	json_object_put(obj);
	assert_null(entra_json_parse_object("[1]", 3));
	assert_null(entra_json_parse_object("\"{}\"", 4));
	assert_null(entra_json_parse_object("1", 1));
	assert_null(entra_json_parse_ex(" [ ] ", 5, true, &error));
	assert_string_equal(error, "not an object");
	assert_null(entra_json_parse_object(NULL, 0));
}

static void test_get_int64(void **state)
{
	static const char doc[] =
		"{\"i\":3599,\"neg\":-5,\"s\":\"3599\",\"zero\":\"0\",\"big\":\"9223372036854775807\","
		"\"over\":\"9223372036854775808\",\"huge\":18446744073709551615,"
		"\"max\":9223372036854775807,\"mix\":\"12a\",\"empty\":\"\",\"d\":1.0,"
		"\"b\":true,\"n\":null,\"negs\":\"-5\",\"plus\":\"+5\",\"sp\":\" 5\","
		"\"hex\":\"0x10\",\"nul\":\"5\\u00009\",\"arr\":[1],\"lead\":\"007\"}";
	struct json_object *obj = entra_json_parse_object(doc, sizeof(doc) - 1);
	int64_t v = 0;
	(void)state;

	assert_non_null(obj);
	assert_int_equal(entra_json_get_int64(obj, "i", &v), 0);
	assert_int_equal(v, 3599);
	assert_int_equal(entra_json_get_int64(obj, "neg", &v), 0);
	assert_int_equal(v, -5);
	assert_int_equal(entra_json_get_int64(obj, "s", &v), 0);
	assert_int_equal(v, 3599);
	assert_int_equal(entra_json_get_int64(obj, "zero", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(entra_json_get_int64(obj, "lead", &v), 0);
	assert_int_equal(v, 7);
	assert_int_equal(entra_json_get_int64(obj, "big", &v), 0);
	assert_true(v == INT64_MAX);
	assert_int_equal(entra_json_get_int64(obj, "max", &v), 0);
	assert_true(v == INT64_MAX);
	v = 42;
	assert_int_equal(entra_json_get_int64(obj, "over", &v), -EINVAL);
	assert_int_equal(entra_json_get_int64(obj, "huge", &v), -EINVAL);
	assert_int_equal(entra_json_get_int64(obj, "mix", &v), -EINVAL);
	assert_int_equal(entra_json_get_int64(obj, "empty", &v), -EINVAL);
	assert_int_equal(entra_json_get_int64(obj, "d", &v), -EINVAL);
	assert_int_equal(entra_json_get_int64(obj, "b", &v), -EINVAL);
	assert_int_equal(entra_json_get_int64(obj, "n", &v), -EINVAL);
	assert_int_equal(entra_json_get_int64(obj, "negs", &v), -EINVAL);
	assert_int_equal(entra_json_get_int64(obj, "plus", &v), -EINVAL);
	assert_int_equal(entra_json_get_int64(obj, "sp", &v), -EINVAL);
	assert_int_equal(entra_json_get_int64(obj, "hex", &v), -EINVAL);
	assert_int_equal(entra_json_get_int64(obj, "nul", &v), -EINVAL);
	assert_int_equal(entra_json_get_int64(obj, "arr", &v), -EINVAL);
	assert_int_equal(v, 42); /* untouched on failure */
	assert_int_equal(entra_json_get_int64(obj, "absent", &v), -ENOENT);
	assert_int_equal(entra_json_get_int64(NULL, "i", &v), -EINVAL);
	json_object_put(obj);
}

static void test_get_string(void **state)
{
	static const char doc[] = "{\"s\":\"v\",\"n\":1,\"nul\":\"ab\\u0000cd\",\"e\":\"\","
				  "\"nl\":\"a\\nb\"}";
	struct json_object *obj = entra_json_parse_object(doc, sizeof(doc) - 1);
	(void)state;

	assert_non_null(obj);
	assert_string_equal(entra_json_get_string(obj, "s"), "v");
	assert_string_equal(entra_json_get_string(obj, "e"), "");
	assert_string_equal(entra_json_get_string(obj, "nl"), "a\nb"); /* returned untouched */
	assert_null(entra_json_get_string(obj, "n"));
	assert_null(entra_json_get_string(obj, "nul"));
	assert_null(entra_json_get_string(obj, "absent"));
	assert_null(entra_json_get_string(NULL, "s"));
	json_object_put(obj);
}

static void test_string_array(void **state)
{
	static const char doc[] =
		"{\"roles\":[\"a\",\"b\"],\"empty\":[],\"mixed\":[\"a\",1],\"str\":\"a\","
		"\"nested\":[[\"a\"]],\"nul\":[\"x\\u0000y\"],\"aud\":\"cid\","
		"\"auds\":[\"other\",\"cid\"],\"null\":[null]}";
	struct json_object *obj = entra_json_parse_object(doc, sizeof(doc) - 1), *arr;
	(void)state;

	assert_non_null(obj);
	arr = entra_json_get_string_array(obj, "roles");
	assert_non_null(arr);
	assert_int_equal(json_object_array_length(arr), 2);
	arr = entra_json_get_string_array(obj, "empty");
	assert_non_null(arr);
	assert_int_equal(json_object_array_length(arr), 0);
	assert_null(entra_json_get_string_array(obj, "mixed"));
	assert_null(entra_json_get_string_array(obj, "str"));
	assert_null(entra_json_get_string_array(obj, "nested"));
	assert_null(entra_json_get_string_array(obj, "nul"));
	assert_null(entra_json_get_string_array(obj, "null"));
	assert_null(entra_json_get_string_array(obj, "absent"));

	assert_true(entra_json_string_or_array_contains(obj, "aud", "cid"));
	assert_false(entra_json_string_or_array_contains(obj, "aud", "CID"));
	assert_false(entra_json_string_or_array_contains(obj, "aud", "ci"));
	assert_true(entra_json_string_or_array_contains(obj, "auds", "cid"));
	assert_false(entra_json_string_or_array_contains(obj, "auds", "nope"));
	assert_false(entra_json_string_or_array_contains(obj, "mixed", "a"));
	assert_false(entra_json_string_or_array_contains(obj, "absent", "a"));
	assert_false(entra_json_string_or_array_contains(obj, "aud", NULL));
	json_object_put(obj);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_documents),
		cmocka_unit_test(test_strictness),
		cmocka_unit_test(test_embedded_nul),
		cmocka_unit_test(test_trailing_garbage),
		cmocka_unit_test(test_depth_limit),
		cmocka_unit_test(test_duplicate_keys),
		cmocka_unit_test(test_many_keys),
		cmocka_unit_test(test_parse_object),
		cmocka_unit_test(test_get_int64),
		cmocka_unit_test(test_get_string),
		cmocka_unit_test(test_string_array),
	};

	return cmocka_run_group_tests_name("json", tests, NULL, NULL);
}
