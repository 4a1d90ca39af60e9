# hardening/local.mk: hostile tokens, a hostile or broken IdP, faults and
# load, a local attacker (see SECURITY.md). The PAM programs link the PAM
# test rig of tests/pam.
EXTRA_DIST += tests/hardening/hardening_util.h SECURITY.md

if HAVE_PAMTEST
check_PROGRAMS += tests/hardening/test_hostile_tokens
TESTS += tests/hardening/test_hostile_tokens
tests_hardening_test_hostile_tokens_SOURCES = tests/hardening/test_hostile_tokens.c \
	tests/hardening/hardening_util.c tests/pam/pam_harness.c tests/pam/pam_harness.h
tests_hardening_test_hostile_tokens_CFLAGS = $(TEST_CFLAGS) $(PAMTEST_CFLAGS) -I$(top_srcdir)/tests/pam
tests_hardening_test_hostile_tokens_LDADD = lib/libentra_base.la $(PAMTEST_LIBS) $(PAM_LIBS) $(CMOCKA_LIBS) $(JSONC_LIBS) $(CURL_LIBS)
endif

if HAVE_PAMTEST
check_PROGRAMS += tests/hardening/test_hostile_idp
TESTS += tests/hardening/test_hostile_idp
tests_hardening_test_hostile_idp_SOURCES = tests/hardening/test_hostile_idp.c \
	tests/hardening/hardening_util.c tests/pam/pam_harness.c tests/pam/pam_harness.h \
	tests/unit/net_testserver.c tests/unit/net_testserver.h
tests_hardening_test_hostile_idp_CFLAGS = $(TEST_CFLAGS) $(PAMTEST_CFLAGS) -I$(top_srcdir)/tests/pam -I$(top_srcdir)/tests/unit
tests_hardening_test_hostile_idp_LDADD = lib/libentra.la $(PAMTEST_LIBS) $(PAM_LIBS) $(CMOCKA_LIBS) $(JSONC_LIBS) $(CURL_LIBS) $(CRYPTO_LIBS)
endif

if HAVE_PAMTEST
check_PROGRAMS += tests/hardening/test_faults
TESTS += tests/hardening/test_faults
tests_hardening_test_faults_SOURCES = tests/hardening/test_faults.c \
	tests/hardening/hardening_util.c tests/pam/pam_harness.c tests/pam/pam_harness.h
tests_hardening_test_faults_CFLAGS = $(TEST_CFLAGS) $(PAMTEST_CFLAGS) -I$(top_srcdir)/tests/pam
tests_hardening_test_faults_LDADD = lib/libentra_base.la $(PAMTEST_LIBS) $(PAM_LIBS) $(CMOCKA_LIBS) $(JSONC_LIBS) $(CURL_LIBS)
endif

if HAVE_PAMTEST
check_PROGRAMS += tests/hardening/test_local_attacker
TESTS += tests/hardening/test_local_attacker
tests_hardening_test_local_attacker_SOURCES = tests/hardening/test_local_attacker.c \
	tests/hardening/hardening_util.c tests/pam/pam_harness.c tests/pam/pam_harness.h
tests_hardening_test_local_attacker_CFLAGS = $(TEST_CFLAGS) $(PAMTEST_CFLAGS) -I$(top_srcdir)/tests/pam
tests_hardening_test_local_attacker_LDADD = lib/libentra.la $(PAMTEST_LIBS) $(PAM_LIBS) $(CMOCKA_LIBS) $(JSONC_LIBS) $(CURL_LIBS) $(CRYPTO_LIBS)
endif
