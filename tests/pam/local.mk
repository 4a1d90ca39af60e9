# The PAM module under pam_wrapper against the fake Entra, and its exports.
if HAVE_PAMTEST
check_PROGRAMS += tests/pam/test_pam_login
TESTS += tests/pam/test_pam_login
tests_pam_test_pam_login_SOURCES = tests/pam/test_pam_login.c tests/pam/pam_harness.c tests/pam/pam_harness.h
tests_pam_test_pam_login_CFLAGS = $(TEST_CFLAGS) $(PAMTEST_CFLAGS)
tests_pam_test_pam_login_LDADD = lib/libentra_base.la $(PAMTEST_LIBS) $(PAM_LIBS) $(CMOCKA_LIBS) $(JSONC_LIBS) $(CURL_LIBS)

# Sanitizer builds preload this instead of pam_wrapper (see pam_shim.c).
check_LTLIBRARIES += tests/pam/pam_shim.la
tests_pam_pam_shim_la_SOURCES = tests/pam/pam_shim.c
tests_pam_pam_shim_la_LIBADD = $(PAM_LIBS)
tests_pam_pam_shim_la_LDFLAGS = $(AM_LDFLAGS) -module -avoid-version -shared -rpath /nowhere
endif

check_PROGRAMS += tests/pam/test_symbols
TESTS += tests/pam/test_symbols
tests_pam_test_symbols_SOURCES = tests/pam/test_symbols.c
tests_pam_test_symbols_CFLAGS = $(TEST_CFLAGS)
tests_pam_test_symbols_LDADD = $(CMOCKA_LIBS) -ldl
