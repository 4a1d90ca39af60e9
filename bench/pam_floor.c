/* The floor for bench_login: the least a device-code login must do with
 * the design's libraries. pam_sm_authenticate looks the user up (as the
 * module must, to leave local accounts alone) and makes one verified
 * TLS connection and one request with OpenSSL 3.0, then returns. Its TLS
 * context, trust store loaded, is made once per process (the module stays
 * loaded: -z nodelete) and each connection resumes the session the last
 * one left, as pam_entra does. What pam_entra costs
 * beyond this module is its own work.
 *
 *   auth required pam_floor.so CA_FILE HOST:PORT */
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <security/pam_modules.h>
#include <openssl/ssl.h>

/* The build hides symbols by default; libpam looks these two up. */
#define EXPORT __attribute__((visibility("default")))

static SSL_CTX *process_ctx;
static SSL_SESSION *last_session;

static bool one_request(const char *ca_file, const char *host_port)
{
	char buf[16384], host[256], request[512];
	SSL_CTX *ctx = process_ctx;
	BIO *bio = NULL;
	SSL *ssl = NULL;
	bool ok = false;
	const char *colon = strrchr(host_port, ':');

	if (colon == NULL || (size_t)(colon - host_port) >= sizeof(host))
		return false;
	memcpy(host, host_port, (size_t)(colon - host_port));
	host[colon - host_port] = '\0';
	if (OPENSSL_init_ssl(OPENSSL_INIT_NO_LOAD_SSL_STRINGS | OPENSSL_INIT_NO_LOAD_CRYPTO_STRINGS,
			     NULL) != 1)
		return false;
	if (ctx == NULL) {
		ctx = SSL_CTX_new(TLS_client_method());
		if (ctx == NULL)
			return false;
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		/* TLS 1.3 tickets make sessions only with client caching on. */
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
		if (SSL_CTX_load_verify_file(ctx, ca_file) != 1) {
			SSL_CTX_free(ctx);
			return false;
		}
		process_ctx = ctx;
	}
	bio = BIO_new_ssl_connect(ctx);
	if (bio != NULL && BIO_get_ssl(bio, &ssl) == 1 && last_session != NULL)
		(void)SSL_set_session(ssl, last_session);
	if (bio != NULL && ssl != NULL && SSL_set1_host(ssl, host) == 1 &&
	    BIO_set_conn_hostname(bio, host_port) == 1 && BIO_do_connect(bio) == 1 &&
	    SSL_get_verify_result(ssl) == X509_V_OK &&
	    snprintf(request, sizeof(request), "GET / HTTP/1.0\r\nHost: %s\r\n\r\n", host_port) > 0 &&
	    BIO_puts(bio, request) > 0) {
		int n = BIO_read(bio, buf, sizeof(buf) - 1);

		/* A response of the server, whatever its status: the request
		 * made the round trip. */
		ok = n > 9 && strncmp(buf, "HTTP/1.", 7) == 0;
		if (ok) {
			/* With the ticket that came before the response; a
			 * copy: the server's close without close_notify marks
			 * the connection's own session unresumable. */
			SSL_SESSION_free(last_session);
			last_session = SSL_SESSION_dup(SSL_get0_session(ssl));
		}
		while (n > 0)
			n = BIO_read(bio, buf, sizeof(buf));
	}
	BIO_free_all(bio);
	return ok;
}

EXPORT int pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	const char *user = NULL;
	struct passwd pw, *found = NULL;
	char buf[4096];

	(void)flags;
	if (argc != 2 || pam_get_user(pamh, &user, NULL) != PAM_SUCCESS || user == NULL)
		return PAM_AUTH_ERR;
	(void)getpwnam_r(user, &pw, buf, sizeof(buf), &found);
	return one_request(argv[0], argv[1]) ? PAM_SUCCESS : PAM_AUTH_ERR;
}

EXPORT int pam_sm_setcred(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	(void)pamh;
	(void)flags;
	(void)argc;
	(void)argv;
	return PAM_SUCCESS;
}
