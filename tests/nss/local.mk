# tests/nss: user database, NSS module (nss_wrapper and a real nsswitch.conf), entractl.
if HAVE_CMOCKA
check_PROGRAMS += tests/nss/test_userdb
TESTS += tests/nss/test_userdb
tests_nss_test_userdb_SOURCES = tests/nss/test_userdb.c
tests_nss_test_userdb_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
tests_nss_test_userdb_LDADD = lib/libentra_base.la $(CMOCKA_LIBS)
endif

# Helpers driven by the Python tests.
check_PROGRAMS += tests/nss/nss_lookup tests/nss/userdb_tool
tests_nss_nss_lookup_SOURCES = tests/nss/nss_lookup.c
tests_nss_nss_lookup_LDADD = -ldl
tests_nss_userdb_tool_SOURCES = tests/nss/userdb_tool.c
tests_nss_userdb_tool_LDADD = lib/libentra_base.la

TESTS += tests/nss/test_nss_module.py tests/nss/test_nss_wrapper.py tests/nss/test_nss_system.py \
	tests/nss/test_entractl.py
EXTRA_DIST += tests/nss/nsstest.py tests/nss/test_nss_module.py tests/nss/test_nss_wrapper.py \
	tests/nss/test_nss_system.py tests/nss/test_entractl.py
