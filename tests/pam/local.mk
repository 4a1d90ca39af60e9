# The PAM module under pam_wrapper against the fake Entra, and its exports.
if HAVE_PAMTEST
check_PROGRAMS += tests/pam/test_pam_login
TESTS += tests/pam/test_pam_login
tests_pam_test_pam_login_SOURCES = tests/pam/test_pam_login.c tests/pam/pam_harness.c tests/pam/pam_harness.h
tests_pam_test_pam_login_CFLAGS = $(TEST_CFLAGS) $(PAMTEST_CFLAGS)
tests_pam_test_pam_login_LDADD = lib/libentra_base.la $(PAMTEST_LIBS) $(PAM_LIBS) $(CMOCKA_LIBS) $(JSONC_LIBS) $(CURL_LIBS)
endif

check_PROGRAMS += tests/pam/test_symbols
TESTS += tests/pam/test_symbols
tests_pam_test_symbols_SOURCES = tests/pam/test_symbols.c
tests_pam_test_symbols_CFLAGS = $(TEST_CFLAGS)
tests_pam_test_symbols_LDADD = $(CMOCKA_LIBS) -ldl
