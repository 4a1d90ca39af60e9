# unit/oauth.mk: aadsts, tokens, devicecode.
# test_tokens and test_devicecode replace the HTTP layer with a scripted
# fake defined in the test itself, so they are built from the lib sources
# they need instead of linking libentra (which holds the real lib/http.c).
if HAVE_CMOCKA
check_PROGRAMS += tests/unit/test_aadsts tests/unit/test_tokens tests/unit/test_devicecode
TESTS += tests/unit/test_aadsts tests/unit/test_tokens tests/unit/test_devicecode

OAUTH_TEST_LIBS = lib/libentra_base.la $(CMOCKA_LIBS) $(JSONC_LIBS)

tests_unit_test_aadsts_SOURCES = tests/unit/test_aadsts.c lib/aadsts.c lib/json.c
tests_unit_test_aadsts_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_aadsts_LDADD = $(OAUTH_TEST_LIBS)

tests_unit_test_tokens_SOURCES = tests/unit/test_tokens.c tests/unit/oauth_fake_http.c \
	tests/unit/oauth_fake_http.h lib/tokens.c lib/aadsts.c lib/json.c
tests_unit_test_tokens_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_tokens_LDADD = $(OAUTH_TEST_LIBS)

tests_unit_test_devicecode_SOURCES = tests/unit/test_devicecode.c tests/unit/oauth_fake_http.c \
	tests/unit/oauth_fake_http.h lib/devicecode.c \
	lib/tokens.c lib/aadsts.c lib/json.c
tests_unit_test_devicecode_CFLAGS = $(TEST_CFLAGS) $(QRENCODE_CFLAGS)
tests_unit_test_devicecode_LDADD = $(OAUTH_TEST_LIBS) $(QRENCODE_LIBS)
endif
