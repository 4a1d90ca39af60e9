# unit/policy.mk: config, policy and name-check units.
if HAVE_CMOCKA
check_PROGRAMS += tests/unit/test_config tests/unit/test_policy
TESTS += tests/unit/test_config tests/unit/test_policy
tests_unit_test_config_SOURCES = tests/unit/test_config.c
tests_unit_test_config_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_config_LDADD = $(TEST_LIBS)
tests_unit_test_policy_SOURCES = tests/unit/test_policy.c
tests_unit_test_policy_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_policy_LDADD = $(TEST_LIBS)
endif
if HAVE_CMOCKA
check_PROGRAMS += tests/unit/test_names
TESTS += tests/unit/test_names
tests_unit_test_names_SOURCES = tests/unit/test_names.c
tests_unit_test_names_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_names_LDADD = $(TEST_LIBS)
endif
