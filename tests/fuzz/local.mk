# fuzz/local.mk: libFuzzer targets for the parsers that see untrusted bytes.
# Not built by `make` or `make check`. From a configured build directory:
#     make fuzz [FUZZ_SECONDS=60] [FUZZ_JOBS=2] [FUZZ_TARGETS="fuzz_msi fuzz_rbac"]
# builds each target with clang-14 (ASan + UBSan + libFuzzer) and runs it
# for FUZZ_SECONDS (FUZZ_JOBS targets at a time), new inputs going to
# tests/fuzz/work/<target>, crashes to tests/fuzz/artifacts/. Each target
# prints "fuzz-summary: <target> runs=<n> crashes=<c>"; any crash, leak or
# sanitizer report fails the rule.
#
# The core is compiled once into tests/fuzz/libentra-fuzz.a (instrumented,
# -fsanitize=fuzzer-no-link); a target links what it needs from it.
# fuzz_oidc, fuzz_msi and fuzz_rbac link fuzz_http_stub.c, a scripted
# transport, before the archive, so http.o is never pulled in and the
# network units run on fuzzed responses with no socket. fuzz_userdb
# compiles lib/userdb.c into itself to fix up checksums (see the file).
FUZZ_CC = clang-14
FUZZ_SECONDS = 60
FUZZ_JOBS = 2
FUZZ_TARGETS = fuzz_json fuzz_jwks fuzz_jwt fuzz_tokens fuzz_devicecode fuzz_oauth_error \
	fuzz_oidc fuzz_config fuzz_userdb fuzz_msi fuzz_rbac fuzz_http_response
FUZZ_SAN = -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS = -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer $(FUZZ_SAN)
FUZZ_LIB_CFLAGS = -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer-no-link $(FUZZ_SAN)
FUZZ_CPPFLAGS = $(DEFS) $(AM_CPPFLAGS) -I$(top_srcdir)/tests/unit -I$(top_srcdir)/tests/fuzz \
	$(JSONC_CFLAGS) $(CRYPTO_CFLAGS) $(SSL_CFLAGS) $(QRENCODE_CFLAGS)
FUZZ_LDLIBS = $(JSONC_LIBS) $(CRYPTO_LIBS)
FUZZ_ALL_LDLIBS = $(SSL_LIBS) $(JSONC_LIBS) $(CRYPTO_LIBS) $(QRENCODE_LIBS)
FUZZ_UNIT_SRC = $(top_srcdir)/lib/b64.c $(top_srcdir)/lib/json.c $(top_srcdir)/lib/jwt.c \
	$(top_srcdir)/lib/buf.c $(top_srcdir)/lib/names.c
FUZZ_UNIT_HDR = $(top_srcdir)/lib/b64.h $(top_srcdir)/lib/json.h $(top_srcdir)/lib/jwt.h \
	$(top_srcdir)/lib/buf.h $(top_srcdir)/lib/names.h
FUZZ_LIB_UNITS = log buf names fsutil userdb b64 json config http http_parse jwt oidc aadsts tokens \
	devicecode policy session msi login userdb_config rbac
FUZZ_COMMON = $(top_srcdir)/tests/fuzz/fuzz_common.h
FUZZ_STUB = $(top_srcdir)/tests/fuzz/fuzz_http_stub.c $(top_srcdir)/tests/fuzz/fuzz_http_stub.h
FUZZ_LIB = tests/fuzz/libentra-fuzz.a

EXTRA_DIST += tests/fuzz/fuzz_json.c tests/fuzz/fuzz_jwks.c tests/fuzz/fuzz_jwt.c \
	tests/fuzz/fuzz_tokens.c tests/fuzz/fuzz_devicecode.c tests/fuzz/fuzz_oauth_error.c \
	tests/fuzz/fuzz_oidc.c tests/fuzz/fuzz_config.c tests/fuzz/fuzz_userdb.c \
	tests/fuzz/fuzz_msi.c tests/fuzz/fuzz_rbac.c tests/fuzz/fuzz_common.h \
	tests/fuzz/fuzz_http_response.c tests/fuzz/fuzz_http_response.dict \
	tests/fuzz/fuzz_http_stub.c tests/fuzz/fuzz_http_stub.h tests/fuzz/run_fuzz.sh tests/fuzz/make_seeds.py \
	tests/fuzz/json.dict tests/fuzz/corpus

$(FUZZ_LIB): $(top_srcdir)/lib/*.c $(top_srcdir)/lib/*.h
	@$(MKDIR_P) tests/fuzz/obj
	@for u in $(FUZZ_LIB_UNITS); do \
	  echo "  FUZZCC   lib/$$u.c"; \
	  $(FUZZ_CC) $(FUZZ_LIB_CFLAGS) $(FUZZ_CPPFLAGS) -c -o tests/fuzz/obj/$$u.o \
	    $(top_srcdir)/lib/$$u.c || exit 1; \
	done
	rm -f $@
	$(AR) rcs $@ tests/fuzz/obj/*.o

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

# Targets on the archive: the core units they call come from it.
tests/fuzz/fuzz_tokens: $(top_srcdir)/tests/fuzz/fuzz_tokens.c $(FUZZ_COMMON) $(FUZZ_LIB)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_CPPFLAGS) -o $@ $(top_srcdir)/tests/fuzz/fuzz_tokens.c \
		$(FUZZ_LIB) $(FUZZ_ALL_LDLIBS)

tests/fuzz/fuzz_devicecode: $(top_srcdir)/tests/fuzz/fuzz_devicecode.c $(FUZZ_COMMON) $(FUZZ_LIB)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_CPPFLAGS) -o $@ $(top_srcdir)/tests/fuzz/fuzz_devicecode.c \
		$(FUZZ_LIB) $(FUZZ_ALL_LDLIBS)

tests/fuzz/fuzz_oauth_error: $(top_srcdir)/tests/fuzz/fuzz_oauth_error.c $(FUZZ_COMMON) $(FUZZ_LIB)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_CPPFLAGS) -o $@ $(top_srcdir)/tests/fuzz/fuzz_oauth_error.c \
		$(FUZZ_LIB) $(FUZZ_ALL_LDLIBS)

tests/fuzz/fuzz_config: $(top_srcdir)/tests/fuzz/fuzz_config.c $(FUZZ_COMMON) $(FUZZ_LIB)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_CPPFLAGS) -o $@ $(top_srcdir)/tests/fuzz/fuzz_config.c \
		$(FUZZ_LIB) $(FUZZ_ALL_LDLIBS)

tests/fuzz/fuzz_userdb: $(top_srcdir)/tests/fuzz/fuzz_userdb.c $(FUZZ_COMMON) $(FUZZ_LIB)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_CPPFLAGS) -o $@ $(top_srcdir)/tests/fuzz/fuzz_userdb.c \
		$(FUZZ_LIB) $(FUZZ_ALL_LDLIBS)

tests/fuzz/fuzz_oidc: $(top_srcdir)/tests/fuzz/fuzz_oidc.c $(FUZZ_COMMON) $(FUZZ_STUB) $(FUZZ_LIB)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_CPPFLAGS) -o $@ $(top_srcdir)/tests/fuzz/fuzz_oidc.c \
		$(top_srcdir)/tests/fuzz/fuzz_http_stub.c $(FUZZ_LIB) $(FUZZ_LDLIBS)

tests/fuzz/fuzz_msi: $(top_srcdir)/tests/fuzz/fuzz_msi.c $(FUZZ_COMMON) $(FUZZ_STUB) $(FUZZ_LIB)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_CPPFLAGS) -o $@ $(top_srcdir)/tests/fuzz/fuzz_msi.c \
		$(top_srcdir)/tests/fuzz/fuzz_http_stub.c $(FUZZ_LIB) $(FUZZ_LDLIBS)

tests/fuzz/fuzz_rbac: $(top_srcdir)/tests/fuzz/fuzz_rbac.c $(FUZZ_COMMON) $(FUZZ_STUB) $(FUZZ_LIB)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_CPPFLAGS) -o $@ $(top_srcdir)/tests/fuzz/fuzz_rbac.c \
		$(top_srcdir)/tests/fuzz/fuzz_http_stub.c $(FUZZ_LIB) $(FUZZ_LDLIBS)

# The response parser alone: no archive, no OpenSSL.
tests/fuzz/fuzz_http_response: $(top_srcdir)/tests/fuzz/fuzz_http_response.c $(FUZZ_COMMON) \
		$(top_srcdir)/lib/http_parse.c $(top_srcdir)/lib/http_parse.h $(top_srcdir)/lib/http.h \
		$(top_srcdir)/lib/names.c
	@$(MKDIR_P) tests/fuzz
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_CPPFLAGS) -o $@ \
		$(top_srcdir)/tests/fuzz/fuzz_http_response.c $(top_srcdir)/lib/http_parse.c \
		$(top_srcdir)/lib/buf.c $(top_srcdir)/lib/log.c $(top_srcdir)/lib/names.c

FUZZ_BINARIES = tests/fuzz/fuzz_json tests/fuzz/fuzz_jwks tests/fuzz/fuzz_jwt \
	tests/fuzz/fuzz_tokens tests/fuzz/fuzz_devicecode tests/fuzz/fuzz_oauth_error \
	tests/fuzz/fuzz_oidc tests/fuzz/fuzz_config tests/fuzz/fuzz_userdb \
	tests/fuzz/fuzz_msi tests/fuzz/fuzz_rbac tests/fuzz/fuzz_http_response

fuzz-build: $(FUZZ_BINARIES)

fuzz: fuzz-build
	@FUZZ_SECONDS='$(FUZZ_SECONDS)' FUZZ_JOBS='$(FUZZ_JOBS)' \
	  $(SHELL) $(top_srcdir)/tests/fuzz/run_fuzz.sh '$(top_srcdir)' tests/fuzz $(FUZZ_TARGETS)

fuzz-clean:
	rm -rf tests/fuzz/work tests/fuzz/artifacts tests/fuzz/obj
	rm -f $(FUZZ_BINARIES) $(FUZZ_LIB) tests/fuzz/*.log

.PHONY: fuzz fuzz-build fuzz-clean
