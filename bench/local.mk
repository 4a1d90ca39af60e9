# Benchmarks: `make bench` (root: private mount namespace for the NSS part).
# Not part of make check; each prints ratios against a baseline measured
# in the same run.
noinst_PROGRAMS += bench/bench_nss bench/bench_login
bench_bench_nss_SOURCES = bench/bench_nss.c
bench_bench_nss_LDADD = lib/libentra_base.la -ldl
bench_bench_login_SOURCES = bench/bench_login.c tests/pam/pam_harness.c tests/pam/pam_harness.h
bench_bench_login_CFLAGS = $(AM_CFLAGS) $(JSONC_CFLAGS) $(CURL_CFLAGS) -DTEST_SRCDIR='"$(abs_top_srcdir)"' -DTEST_BUILDDIR='"$(abs_top_builddir)"'
bench_bench_login_LDADD = lib/libentra_base.la $(PAM_LIBS) $(JSONC_LIBS) $(CURL_LIBS)
EXTRA_DIST += bench/run_bench.sh bench/README
# The floor bench_login compares with: one user lookup and one TLS request.
noinst_LTLIBRARIES += bench/pam_floor.la
bench_pam_floor_la_SOURCES = bench/pam_floor.c
bench_pam_floor_la_CFLAGS = $(AM_CFLAGS) $(SSL_CFLAGS)
bench_pam_floor_la_LDFLAGS = -module -avoid-version -shared -rpath /nowhere -Wl,-z,nodelete
bench_pam_floor_la_LIBADD = $(SSL_LIBS) $(CRYPTO_LIBS) $(PAM_LIBS)
bench: bench/bench_nss bench/bench_login bench/pam_floor.la nss_module/libnss_entra.la pam_module/pam_entra.la
	$(SHELL) $(srcdir)/bench/run_bench.sh $(abs_builddir)
	ENTRA_SRCDIR=$(abs_top_srcdir) ENTRA_BUILDDIR=$(abs_top_builddir) ENTRA_PYTHON3=$(PYTHON3) bench/bench_login
.PHONY: bench
# The token service (entra-tokend) against the token file; root only.
noinst_PROGRAMS += bench/bench_tokend
bench_bench_tokend_LDADD = -lpthread
EXTRA_DIST += bench/run_bench_tokend.py
bench: bench-tokend
bench-tokend: bench/bench_tokend tools/entra-tokend
	ENTRA_SRCDIR=$(abs_top_srcdir) ENTRA_BUILDDIR=$(abs_top_builddir) $(PYTHON3) $(srcdir)/bench/run_bench_tokend.py
.PHONY: bench-tokend
