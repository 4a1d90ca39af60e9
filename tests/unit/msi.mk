# unit/msi.mk
if HAVE_CMOCKA
# Built from the lib sources it needs, without lib/http.c: the test links
# its own scripted entra_http_get.
check_PROGRAMS += tests/unit/test_msi
TESTS += tests/unit/test_msi
tests_unit_test_msi_SOURCES = tests/unit/test_msi.c \
	lib/msi.c lib/jwt.c lib/json.c lib/b64.c lib/fsutil.c lib/buf.c lib/log.c lib/names.c
tests_unit_test_msi_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_msi_LDADD = $(CMOCKA_LIBS) $(JSONC_LIBS) $(CRYPTO_LIBS)
endif

# lib/msi.c over the real http layer, against tests/fake/fake_entra.py.
check_PROGRAMS += tests/unit/msi_get
tests_unit_msi_get_SOURCES = tests/unit/msi_get.c
tests_unit_msi_get_CFLAGS = $(AM_CFLAGS) $(JSONC_CFLAGS) $(CURL_CFLAGS)
tests_unit_msi_get_LDADD = lib/libentra.la
TESTS += tests/unit/msi_integration.py
EXTRA_DIST += tests/unit/msi_integration.py
