# unit/crypto.mk: base64, JSON and JWT units.
# The programs compile the units they test from source (plus the dependency
# free libentra_base) instead of linking all of libentra, so that they do not
# depend on the rest of the core.
if HAVE_CMOCKA
CRYPTO_TEST_LIBS = lib/libentra_base.la $(CMOCKA_LIBS) $(JSONC_LIBS) $(CRYPTO_LIBS)

check_PROGRAMS += tests/unit/test_b64 tests/unit/test_json tests/unit/test_jwt
TESTS += tests/unit/test_b64 tests/unit/test_json tests/unit/test_jwt

tests_unit_test_b64_SOURCES = tests/unit/test_b64.c lib/b64.c lib/b64.h
tests_unit_test_b64_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_b64_LDADD = $(CRYPTO_TEST_LIBS)

tests_unit_test_json_SOURCES = tests/unit/test_json.c lib/json.c lib/json.h
tests_unit_test_json_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_json_LDADD = $(CRYPTO_TEST_LIBS)

tests_unit_test_jwt_SOURCES = tests/unit/test_jwt.c \
	tests/unit/jwt_testkeys.c tests/unit/jwt_testkeys.h \
	lib/jwt.c lib/jwt.h lib/json.c lib/json.h lib/b64.c lib/b64.h
tests_unit_test_jwt_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_jwt_LDADD = $(CRYPTO_TEST_LIBS)
endif
