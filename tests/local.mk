# Every test speaks TAP; cmocka is switched to TAP output, Python tests use
# tests/taplib.py. The summary line comes from tests/summarize.
LOG_DRIVER = env AM_TAP_AWK='$(AWK)' $(SHELL) $(top_srcdir)/build-aux/tap-driver.sh
TEST_EXTENSIONS = .py .sh
PY_LOG_DRIVER = $(LOG_DRIVER)
PY_LOG_COMPILER = $(PYTHON3)
SH_LOG_DRIVER = $(LOG_DRIVER)
SH_LOG_COMPILER = $(SHELL)
AM_TESTS_ENVIRONMENT = \
	CMOCKA_MESSAGE_OUTPUT=TAP; export CMOCKA_MESSAGE_OUTPUT; \
	ENTRA_SRCDIR='$(abs_top_srcdir)'; export ENTRA_SRCDIR; \
	ENTRA_BUILDDIR='$(abs_top_builddir)'; export ENTRA_BUILDDIR; \
	ENTRA_PYTHON3='$(PYTHON3)'; export ENTRA_PYTHON3; \
	PYTHONDONTWRITEBYTECODE=1; export PYTHONDONTWRITEBYTECODE; \
	ENTRA_SANITIZER_PRELOAD='$(SANITIZER_PRELOAD)'; export ENTRA_SANITIZER_PRELOAD;

# Flags for C test programs that link the core.
TEST_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS) $(JSONC_CFLAGS) $(CURL_CFLAGS) $(CRYPTO_CFLAGS) \
	-DTEST_SRCDIR='"$(abs_top_srcdir)"' -DTEST_BUILDDIR='"$(abs_top_builddir)"'
TEST_LIBS = lib/libentra.la $(CMOCKA_LIBS) $(JSONC_LIBS) $(CURL_LIBS) $(CRYPTO_LIBS)

EXTRA_DIST += tests/taplib.py

# One fragment per area, so that each area declares its own tests.
include tests/unit/crypto.mk
include tests/unit/net.mk
include tests/unit/policy.mk
include tests/unit/oauth.mk
include tests/unit/msi.mk
include tests/unit/session.mk
include tests/unit/rbac.mk
include tests/fake/local.mk
include tests/pam/local.mk
include tests/nss/local.mk
include tests/e2e/local.mk
include tests/fuzz/local.mk
include tests/tokend/local.mk
include tests/hardening/local.mk

# The ASan+UBSan run (scripts/test: `make check-sanitizers` in a build
# configured with --enable-sanitizers): every test in TESTS, so that each
# new C test is in it, but those matching SANITIZER_SKIP: the fake's
# self-tests and client judges (Python and Node only) and tests/e2e (real
# sshd, su and sudo, not instrumented: they run in the plain build).
SANITIZER_SKIP = tests/fake/*|tests/e2e/*
check-sanitizers:
	@tests=; for t in $(TESTS); do \
	  case $$t in $(SANITIZER_SKIP)) ;; *) tests="$$tests $$t";; esac; \
	done; \
	$(MAKE) $(AM_MAKEFLAGS) check TESTS="$$tests"
.PHONY: check-sanitizers
