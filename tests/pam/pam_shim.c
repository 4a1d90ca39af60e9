/* Stand-in for pam_wrapper in sanitizer builds, preloaded into the PAM
 * tests. pam_wrapper dlopens libpam with RTLD_DEEPBIND, which the
 * sanitizer runtime refuses; this shim instead sends pam_start to the
 * test's service directory (pam_start_confdir, Linux-PAM >= 1.4) and prints
 * pam_syslog lines to stderr in pam_wrapper's "SYSLOG(n): ..." form, so
 * the same tests can assert the same log reasons. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <security/pam_appl.h>
#include <security/pam_ext.h>

#define EXPORT __attribute__((visibility("default")))

EXPORT int pam_start(const char *service, const char *user, const struct pam_conv *conv,
		     pam_handle_t **pamh)
{
	return pam_start_confdir(service, user, conv, getenv("ENTRA_PAM_CONFDIR"), pamh);
}

EXPORT void pam_vsyslog(const pam_handle_t *pamh, int priority, const char *fmt, va_list args)
{
	(void)pamh;
	fprintf(stderr, "SYSLOG(%d): ", priority);
	vfprintf(stderr, fmt, args);
	fputc('\n', stderr);
}

EXPORT void pam_syslog(const pam_handle_t *pamh, int priority, const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	pam_vsyslog(pamh, priority, fmt, args);
	va_end(args);
}
