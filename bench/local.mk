# bench: `make bench` (root: private mount namespace); not part of make check.
noinst_PROGRAMS += bench/bench_nss
bench_bench_nss_SOURCES = bench/bench_nss.c
bench_bench_nss_LDADD = lib/libentra_base.la -ldl
EXTRA_DIST += bench/run_bench.sh bench/README
bench: bench/bench_nss nss_module/libnss_entra.la
	$(SHELL) $(srcdir)/bench/run_bench.sh $(abs_builddir)
.PHONY: bench
