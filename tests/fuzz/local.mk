# fuzz/local.mk: libFuzzer targets for the parsers that see untrusted bytes.
# Not built by `make` or `make check`. From a configured build directory:
#     make fuzz [FUZZ_SECONDS=60]
# builds each target with clang-14 (ASan + UBSan + libFuzzer) straight from
# the sources and runs it for FUZZ_SECONDS, new inputs going to
# tests/fuzz/work/<target>, crashes to tests/fuzz/artifacts/.
FUZZ_CC = clang-14
FUZZ_SECONDS = 60
FUZZ_TARGETS = fuzz_json fuzz_jwks fuzz_jwt
FUZZ_CFLAGS = -g -O1 -fno-omit-frame-pointer \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_CPPFLAGS = $(DEFS) $(AM_CPPFLAGS) -I$(top_srcdir)/tests/unit $(JSONC_CFLAGS) $(CRYPTO_CFLAGS)
FUZZ_LDLIBS = $(JSONC_LIBS) $(CRYPTO_LIBS)
FUZZ_UNIT_SRC = $(top_srcdir)/lib/b64.c $(top_srcdir)/lib/json.c $(top_srcdir)/lib/jwt.c \
	$(top_srcdir)/lib/buf.c $(top_srcdir)/lib/names.c
FUZZ_UNIT_HDR = $(top_srcdir)/lib/b64.h $(top_srcdir)/lib/json.h $(top_srcdir)/lib/jwt.h \
	$(top_srcdir)/lib/buf.h $(top_srcdir)/lib/names.h

EXTRA_DIST += tests/fuzz/fuzz_json.c tests/fuzz/fuzz_jwks.c tests/fuzz/fuzz_jwt.c \
	tests/fuzz/json.dict tests/fuzz/corpus

tests/fuzz/fuzz_json: $(top_srcdir)/tests/fuzz/fuzz_json.c $(FUZZ_UNIT_SRC) $(FUZZ_UNIT_HDR)
	@$(MKDIR_P) tests/fuzz
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_CPPFLAGS) -o $@ \
		$(top_srcdir)/tests/fuzz/fuzz_json.c $(FUZZ_UNIT_SRC) $(FUZZ_LDLIBS)

tests/fuzz/fuzz_jwks: $(top_srcdir)/tests/fuzz/fuzz_jwks.c $(FUZZ_UNIT_SRC) $(FUZZ_UNIT_HDR)
	@$(MKDIR_P) tests/fuzz
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_CPPFLAGS) -o $@ \
		$(top_srcdir)/tests/fuzz/fuzz_jwks.c $(FUZZ_UNIT_SRC) $(FUZZ_LDLIBS)

tests/fuzz/fuzz_jwt: $(top_srcdir)/tests/fuzz/fuzz_jwt.c $(FUZZ_UNIT_SRC) $(FUZZ_UNIT_HDR) \
		$(top_srcdir)/tests/unit/jwt_testkeys.c $(top_srcdir)/tests/unit/jwt_testkeys.h
	@$(MKDIR_P) tests/fuzz
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_CPPFLAGS) -o $@ \
		$(top_srcdir)/tests/fuzz/fuzz_jwt.c $(top_srcdir)/tests/unit/jwt_testkeys.c \
		$(FUZZ_UNIT_SRC) $(FUZZ_LDLIBS)

# -max_len per target: JSON documents, a JWKS with a few RSA keys, a token.
fuzz: tests/fuzz/fuzz_json tests/fuzz/fuzz_jwks tests/fuzz/fuzz_jwt
	@$(MKDIR_P) tests/fuzz/artifacts
	@status=0; for t in $(FUZZ_TARGETS); do \
	  case $$t in fuzz_json) len=4096;; fuzz_jwks) len=16384;; *) len=8192;; esac; \
	  $(MKDIR_P) tests/fuzz/work/$$t; \
	  echo "$$t: $(FUZZ_SECONDS) s, -max_len=$$len"; \
	  if ./tests/fuzz/$$t -max_total_time=$(FUZZ_SECONDS) -max_len=$$len \
	       -dict=$(top_srcdir)/tests/fuzz/json.dict -print_final_stats=1 \
	       -artifact_prefix=tests/fuzz/artifacts/$$t- \
	       tests/fuzz/work/$$t $(top_srcdir)/tests/fuzz/corpus/$$t \
	       >tests/fuzz/$$t.log 2>&1; then \
	    grep -E '^Done|stat::number_of_executed_units|stat::peak_rss_mb' tests/fuzz/$$t.log; \
	  else \
	    status=1; echo "$$t FAILED (tests/fuzz/$$t.log):"; tail -n 40 tests/fuzz/$$t.log; \
	  fi; \
	done; exit $$status

fuzz-clean:
	rm -rf tests/fuzz/work tests/fuzz/artifacts
	rm -f tests/fuzz/fuzz_json tests/fuzz/fuzz_jwks tests/fuzz/fuzz_jwt tests/fuzz/*.log

.PHONY: fuzz fuzz-clean
