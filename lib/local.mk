# libentra_base: no external dependencies; linked into the NSS module too.
noinst_LTLIBRARIES += lib/libentra_base.la
lib_libentra_base_la_SOURCES = \
	lib/log.c lib/log.h \
	lib/buf.c lib/buf.h \
	lib/names.c lib/names.h \
	lib/fsutil.c lib/fsutil.h \
	lib/userdb.c lib/userdb.h

# libentra: the core. Knows nothing of PAM or NSS.
noinst_LTLIBRARIES += lib/libentra.la
lib_libentra_la_SOURCES = \
	lib/b64.c lib/b64.h \
	lib/json.c lib/json.h \
	lib/config.c lib/config.h \
	lib/http.c lib/http.h \
	lib/http_parse.c lib/http_parse.h \
	lib/jwt.c lib/jwt.h \
	lib/oidc.c lib/oidc.h \
	lib/aadsts.c lib/aadsts.h \
	lib/tokens.c lib/tokens.h \
	lib/devicecode.c lib/devicecode.h \
	lib/policy.c lib/policy.h \
	lib/session.c lib/session.h \
	lib/msi.c lib/msi.h \
	lib/login.c lib/login.h
lib_libentra_la_SOURCES += lib/userdb_config.c lib/userdb_config.h
lib_libentra_la_SOURCES += lib/rbac.c lib/rbac.h
lib_libentra_la_CFLAGS = $(AM_CFLAGS) $(SSL_CFLAGS) $(JSONC_CFLAGS) $(CRYPTO_CFLAGS) $(QRENCODE_CFLAGS)
lib_libentra_la_LIBADD = lib/libentra_base.la $(SSL_LIBS) $(JSONC_LIBS) $(CRYPTO_LIBS) $(QRENCODE_LIBS)
lib_libentra_la_SOURCES += lib/peer.c lib/peer.h
lib_libentra_la_SOURCES += lib/tokend.c lib/tokend.h
