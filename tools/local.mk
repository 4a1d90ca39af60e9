# tools
sbin_PROGRAMS += tools/entractl
tools_entractl_SOURCES = tools/entractl.c
tools_entractl_CFLAGS = $(AM_CFLAGS) $(CURL_CFLAGS) $(JSONC_CFLAGS) $(CRYPTO_CFLAGS)
tools_entractl_LDADD = lib/libentra.la
