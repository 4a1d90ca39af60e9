/* The scripted TLS test server (tests/unit/net_server.py), started from a
 * cmocka group setup and killed in its teardown. */
#ifndef NET_TESTSERVER_H
#define NET_TESTSERVER_H

#include <limits.h>
#include <sys/types.h>

struct net_server {
	pid_t pid;
	char dir[PATH_MAX];   /* temp dir holding certificates and the ready file */
	char ca[PATH_MAX];    /* the trusted test CA */
	int https;            /* trusted certificate for 127.0.0.1 */
	int untrusted;        /* certificate from a CA the client does not know */
	int wrongname;        /* trusted CA, certificate for wrong.example */
	int http;             /* plain http */
	int proxy;            /* HTTP CONNECT proxy to loopback ports */
};

/* 0, or -1 with a diagnostic on stderr. */
int net_server_start(struct net_server *s);
void net_server_stop(struct net_server *s);

/* Control requests to the server (over https with the test CA). */
int net_server_reset(struct net_server *s);
int net_server_route(struct net_server *s, const char *path, long status, const char *body,
		     const char *ctype);
long net_server_count(struct net_server *s, const char *path);
/* A JWKS document (malloc'd) holding the server's fixed RSA key as kid. */
char *net_server_jwks(struct net_server *s, const char *kid);

/* Make a temp dir under /tmp (into out) and remove a tree without
 * following symlinks. */
int net_mkdtemp(char *out, size_t len);
void net_rmtree(const char *path);

#endif
