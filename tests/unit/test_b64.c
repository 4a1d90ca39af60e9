/* Base64 / base64url decoders and the base64url encoder. */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "b64.h"

typedef int (*decoder)(const char *, size_t, unsigned char **, size_t *);

static void expect_decode(decoder dec, const char *in, size_t in_len, const char *want,
			  size_t want_len)
{
	unsigned char *out = NULL;
	size_t out_len = 12345;

	assert_int_equal(dec(in, in_len, &out, &out_len), 0);
	assert_non_null(out);
	assert_int_equal(out_len, want_len);
	assert_memory_equal(out, want, want_len);
	assert_int_equal(out[out_len], '\0');
	free(out);
}

static void expect_reject(decoder dec, const char *in, size_t in_len)
{
	unsigned char *out = (unsigned char *)"sentinel";
	size_t out_len = 12345;

	assert_int_equal(dec(in, in_len, &out, &out_len), -EINVAL);
	assert_null(out);
	assert_int_equal(out_len, 0);
}

#define DEC_OK(dec, in, want) expect_decode(dec, in, strlen(in), want, sizeof(want) - 1)
#define DEC_BAD(dec, in) expect_reject(dec, in, strlen(in))

/* RFC 4648 §10 test vectors, padded and unpadded, in both alphabets. */
static void test_rfc4648_vectors(void **state)
{
	static const struct { const char *plain, *padded, *bare; } v[] = {
		{ "", "", "" },
		{ "f", "Zg==", "Zg" },
		{ "fo", "Zm8=", "Zm8" },
		{ "foo", "Zm9v", "Zm9v" },
		{ "foob", "Zm9vYg==", "Zm9vYg" },
		{ "fooba", "Zm9vYmE=", "Zm9vYmE" },
		{ "foobar", "Zm9vYmFy", "Zm9vYmFy" },
	};
	(void)state;

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		size_t n = strlen(v[i].plain);
		char *enc;

		expect_decode(entra_b64_decode, v[i].padded, strlen(v[i].padded), v[i].plain, n);
		expect_decode(entra_b64_decode, v[i].bare, strlen(v[i].bare), v[i].plain, n);
		expect_decode(entra_b64url_decode, v[i].padded, strlen(v[i].padded), v[i].plain, n);
		expect_decode(entra_b64url_decode, v[i].bare, strlen(v[i].bare), v[i].plain, n);
		enc = entra_b64url_encode((const unsigned char *)v[i].plain, n);
		assert_non_null(enc);
		assert_string_equal(enc, v[i].bare);
		free(enc);
	}
}

/* 0xfb 0xff 0xbf uses the two symbols where the alphabets differ. */
static void test_alphabets(void **state)
{
	static const unsigned char bytes[] = { 0xfb, 0xff, 0xbf };
	char *enc;
	(void)state;

	DEC_OK(entra_b64_decode, "+/+/", "\xfb\xff\xbf");
	DEC_OK(entra_b64url_decode, "-_-_", "\xfb\xff\xbf");
	DEC_BAD(entra_b64_decode, "-_-_");
	DEC_BAD(entra_b64url_decode, "+/+/");
	DEC_BAD(entra_b64url_decode, "-_+_");
	DEC_BAD(entra_b64_decode, "+/-/");
	enc = entra_b64url_encode(bytes, sizeof(bytes));
	assert_string_equal(enc, "-_-_");
	free(enc);
}

static void test_bad_chars(void **state)
{
	(void)state;
	DEC_BAD(entra_b64url_decode, "Zm9v!");
	DEC_BAD(entra_b64url_decode, "Zm 9v");
	DEC_BAD(entra_b64url_decode, "Zm9v\n");
	DEC_BAD(entra_b64url_decode, " Zm9v");
	DEC_BAD(entra_b64url_decode, "Zm9v.");
	DEC_BAD(entra_b64_decode, "Zm9\xc3\xa9");
	DEC_BAD(entra_b64_decode, "Zm\tv");
	/* An embedded NUL inside the given length is not skipped. */
	expect_reject(entra_b64url_decode, "Zm\0v", 4);
	expect_reject(entra_b64_decode, "Zm9vYg\0\0", 8);
}

static void test_bad_lengths(void **state)
{
	(void)state;
	/* 4n+1 characters can never be valid. */
	DEC_BAD(entra_b64url_decode, "Z");
	DEC_BAD(entra_b64url_decode, "Zm9vY");
	DEC_BAD(entra_b64_decode, "Zm9vYmFyZ");
	/* The length argument is honoured, not strlen. */
	expect_decode(entra_b64url_decode, "Zm9vYmFy", 4, "foo", 3);
	expect_reject(entra_b64url_decode, "Zm9vYmFy", 5);
}

/* Leftover bits must be zero, or two strings would decode alike. */
static void test_trailing_bits(void **state)
{
	(void)state;
	DEC_OK(entra_b64url_decode, "Zg", "f");
	DEC_BAD(entra_b64url_decode, "Zh");
	DEC_BAD(entra_b64url_decode, "Zv");
	DEC_BAD(entra_b64_decode, "Zh==");
	DEC_OK(entra_b64url_decode, "Zm8", "fo");
	DEC_BAD(entra_b64url_decode, "Zm9");
	DEC_BAD(entra_b64_decode, "Zm9=");
	DEC_BAD(entra_b64url_decode, "AB");
	DEC_OK(entra_b64url_decode, "AA", "\0");
}

static void test_padding_rules(void **state)
{
	(void)state;
	DEC_BAD(entra_b64_decode, "Zg=");      /* not a multiple of four */
	DEC_BAD(entra_b64_decode, "Zg===");
	DEC_BAD(entra_b64_decode, "Zm8==");
	DEC_BAD(entra_b64_decode, "Zm9v=");
	DEC_BAD(entra_b64_decode, "Zm9v====");
	DEC_BAD(entra_b64_decode, "Zm9v==");
	DEC_BAD(entra_b64_decode, "=");
	DEC_BAD(entra_b64_decode, "==");
	DEC_BAD(entra_b64_decode, "====");
	DEC_BAD(entra_b64_decode, "Zg==Zg==");  /* padding in the middle */
	DEC_BAD(entra_b64_decode, "Z===");
	DEC_BAD(entra_b64_decode, "Zm=8");
	DEC_BAD(entra_b64url_decode, "Zg=");
	DEC_BAD(entra_b64url_decode, "Zm8==");
	DEC_OK(entra_b64url_decode, "Zm8=", "fo");
}

static void test_round_trip(void **state)
{
	unsigned char in[70];
	(void)state;

	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (unsigned char)(i * 37 + 11);
	for (size_t n = 0; n <= sizeof(in); n++) {
		unsigned char *out = NULL;
		size_t out_len = 0;
		char *enc = entra_b64url_encode(in, n);

		assert_non_null(enc);
		assert_int_equal(strlen(enc), (n * 4 + 2) / 3);
		assert_null(strchr(enc, '='));
		assert_int_equal(entra_b64url_decode(enc, strlen(enc), &out, &out_len), 0);
		assert_int_equal(out_len, n);
		assert_memory_equal(out, in, n);
		free(out);
		free(enc);
	}
}

static void test_null_args(void **state)
{
	unsigned char *out = NULL;
	size_t out_len = 0;
	(void)state;

	assert_int_equal(entra_b64url_decode(NULL, 4, &out, &out_len), -EINVAL);
	assert_int_equal(entra_b64url_decode("Zm9v", 4, NULL, &out_len), -EINVAL);
	assert_int_equal(entra_b64_decode("Zm9v", 4, &out, NULL), -EINVAL);
	assert_null(entra_b64url_encode(NULL, 3));
	out = (unsigned char *)entra_b64url_encode(NULL, 0);
	assert_non_null(out);
	assert_string_equal((char *)out, "");
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc4648_vectors),
		cmocka_unit_test(test_alphabets),
		cmocka_unit_test(test_bad_chars),
		cmocka_unit_test(test_bad_lengths),
		cmocka_unit_test(test_trailing_bits),
		cmocka_unit_test(test_padding_rules),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_null_args),
	};

	return cmocka_run_group_tests_name("b64", tests, NULL, NULL);
}
