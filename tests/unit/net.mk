# unit/net.mk: http, fsutil, oidc.
NET_TEST_SERVER = tests/unit/net_testserver.c tests/unit/net_testserver.h

check_PROGRAMS += tests/unit/test_http tests/unit/test_fsutil tests/unit/test_oidc
TESTS += tests/unit/test_http tests/unit/test_fsutil tests/unit/test_oidc

tests_unit_test_http_SOURCES = tests/unit/test_http.c $(NET_TEST_SERVER)
tests_unit_test_http_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_http_LDADD = $(TEST_LIBS)

tests_unit_test_fsutil_SOURCES = tests/unit/test_fsutil.c
tests_unit_test_fsutil_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_fsutil_LDADD = $(TEST_LIBS)

tests_unit_test_oidc_SOURCES = tests/unit/test_oidc.c $(NET_TEST_SERVER)
tests_unit_test_oidc_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_oidc_LDADD = $(TEST_LIBS)

EXTRA_DIST += tests/unit/net_server.py
