# The token service (entra-tokend, entra-token): tests/tokend/README is the
# test plan in short; the Python tests need root (clients run as other uids).
TESTS += tests/tokend/test_tokend.py tests/tokend/test_tokend_sdk.py
EXTRA_DIST += \
	tests/tokend/tokendlib.py \
	tests/tokend/tokend_client.py \
	tests/tokend/test_tokend.py \
	tests/tokend/test_tokend_sdk.py \
	tests/tokend/standin/pydash/__init__.py \
	tests/tokend/standin/pydash/objects.py
check_PROGRAMS += tests/tokend/test_tokend_unit
TESTS += tests/tokend/test_tokend_unit
tests_tokend_test_tokend_unit_SOURCES = tests/tokend/test_tokend_unit.c
tests_tokend_test_tokend_unit_CFLAGS = $(TEST_CFLAGS)
tests_tokend_test_tokend_unit_LDADD = $(TEST_LIBS)
if HAVE_PAMTEST
check_PROGRAMS += tests/tokend/test_tokend_pam
TESTS += tests/tokend/test_tokend_pam
tests_tokend_test_tokend_pam_SOURCES = tests/tokend/test_tokend_pam.c tests/pam/pam_harness.c tests/pam/pam_harness.h
tests_tokend_test_tokend_pam_CFLAGS = $(TEST_CFLAGS) $(PAMTEST_CFLAGS)
tests_tokend_test_tokend_pam_LDADD = lib/libentra_base.la $(PAMTEST_LIBS) $(PAM_LIBS) $(CMOCKA_LIBS) $(JSONC_LIBS) $(CURL_LIBS)
endif
