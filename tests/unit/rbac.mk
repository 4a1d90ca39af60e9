# unit/rbac.mk
if HAVE_CMOCKA
check_PROGRAMS += tests/unit/test_rbac
TESTS += tests/unit/test_rbac
tests_unit_test_rbac_SOURCES = tests/unit/test_rbac.c
tests_unit_test_rbac_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_rbac_LDADD = $(TEST_LIBS)
endif

# lib/rbac.c over the real http layer, against tests/fake/fake_entra.py's
# ARM permissions endpoint.
check_PROGRAMS += tests/unit/rbac_check
tests_unit_rbac_check_SOURCES = tests/unit/rbac_check.c
tests_unit_rbac_check_CFLAGS = $(AM_CFLAGS) $(JSONC_CFLAGS) $(CURL_CFLAGS) $(CRYPTO_CFLAGS)
tests_unit_rbac_check_LDADD = lib/libentra.la
TESTS += tests/unit/rbac_integration.py
EXTRA_DIST += tests/unit/rbac_integration.py
