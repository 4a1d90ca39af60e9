# nss_module: libnss_entra.so.2 (glibc loads libnss_<service>.so.2).
# -version-number 2 makes libtool install libnss_entra.so.2 (with a .so
# symlink, removed at install: nothing links against an NSS module).
nssmod_LTLIBRARIES += nss_module/libnss_entra.la
nss_module_libnss_entra_la_SOURCES = nss_module/nss_entra.c
nss_module_libnss_entra_la_CPPFLAGS = $(AM_CPPFLAGS) -DENTRA_NSS_DB_DIR='"$(localstatedir)/lib/pam_entra"'
nss_module_libnss_entra_la_LIBADD = lib/libentra_base.la
nss_module_libnss_entra_la_LDFLAGS = $(AM_LDFLAGS) -module -version-number 2 -shared -no-undefined \
	-Wl,--version-script=$(srcdir)/nss_module/nss_entra.map -Wl,-z,relro -Wl,-z,now
EXTRA_nss_module_libnss_entra_la_DEPENDENCIES = nss_module/nss_entra.map
EXTRA_DIST += nss_module/nss_entra.map

# Nothing links against an NSS module: drop the development symlink and .la.
install-data-hook: install-nss-entra-hook
install-nss-entra-hook:
	rm -f $(DESTDIR)$(nssmoddir)/libnss_entra.so $(DESTDIR)$(nssmoddir)/libnss_entra.la
uninstall-hook: uninstall-nss-entra-hook
uninstall-nss-entra-hook:
	rm -f $(DESTDIR)$(nssmoddir)/libnss_entra.so.2 $(DESTDIR)$(nssmoddir)/libnss_entra.so.2.0.0
.PHONY: install-nss-entra-hook uninstall-nss-entra-hook
