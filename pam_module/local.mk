pammod_LTLIBRARIES += pam_module/pam_entra.la
pam_module_pam_entra_la_SOURCES = pam_module/pam_entra.c
pam_module_pam_entra_la_CFLAGS = $(AM_CFLAGS) $(JSONC_CFLAGS)
pam_module_pam_entra_la_LIBADD = lib/libentra.la $(PAM_LIBS)
pam_module_pam_entra_la_LDFLAGS = $(AM_LDFLAGS) -module -avoid-version -shared \
	-Wl,--version-script=$(srcdir)/pam_module/pam_entra.map -Wl,-z,relro,-z,now,-z,nodelete
EXTRA_DIST += pam_module/pam_entra.map
