# tools
sbin_PROGRAMS += tools/entractl
tools_entractl_SOURCES = tools/entractl.c
tools_entractl_CFLAGS = $(AM_CFLAGS) $(JSONC_CFLAGS) $(CRYPTO_CFLAGS)
tools_entractl_LDADD = lib/libentra.la
sbin_PROGRAMS += tools/entra-tokend
tools_entra_tokend_SOURCES = tools/entra-tokend.c
tools_entra_tokend_CFLAGS = $(AM_CFLAGS) -pthread $(JSONC_CFLAGS) $(CRYPTO_CFLAGS)
tools_entra_tokend_LDADD = lib/libentra.la -lpthread
bin_PROGRAMS += tools/entra-token
tools_entra_token_SOURCES = tools/entra-token.c
tools_entra_token_CFLAGS = $(AM_CFLAGS) $(JSONC_CFLAGS) $(CRYPTO_CFLAGS)
tools_entra_token_LDADD = lib/libentra.la
