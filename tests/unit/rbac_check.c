/* Test driver for lib/rbac.c over the real http layer, for the
 * integration test against tests/fake/fake_entra.py. The access token is
 * read from a file (never argv) and never printed. One line on stdout:
 *   ok login=0|1 admin=0|1 cached=0|1 entries=N reason=...    (exit 0)
 *   deny result=<entra_rbac_result_str, spaces as _> reason=... [claims=<json>] (exit 1)
 *   token result=N jwt=<status> reason=...                       (exit 3)
 *   usage or setup error                                         (exit 2)
 * Usage: rbac_check --arm URL --scope S --token-file F [--ca-file F]
 *   [--login ACTION]... [--admin ACTION]... [--max-pages N]
 *   [--cache-dir D --oid GUID [--ttl S]]
 *   [--jwks-url URL --tenant GUID [--require-mfa] [--acrs cN] [--expect-oid GUID]] */
#include "rbac.h"
#include "buf.h"
#include "http.h"
#include "jwt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_LIST 8

static long number(const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < 0)
		return -1;
	return v;
}

static char *read_token(const char *path)
{
	struct entra_buf b;
	char chunk[4096];
	size_t n;
	FILE *f = fopen(path, "re");

	if (f == NULL)
		return NULL;
	entra_buf_init(&b, ENTRA_JWT_MAX_LEN);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (entra_buf_append(&b, chunk, n) != 0) {
			fclose(f);
			entra_buf_free(&b);
			return NULL;
		}
	}
	fclose(f);
	while (b.len > 0 && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r'))
		b.data[--b.len] = '\0';
	explicit_bzero(chunk, sizeof(chunk));
	return entra_buf_steal(&b);
}

int main(int argc, char **argv)
{
	const char *login[MAX_LIST + 1] = { NULL }, *admin[MAX_LIST + 1] = { NULL };
	const char *arm = NULL, *scope = NULL, *token_file = NULL, *ca_file = NULL;
	const char *cache_dir = NULL, *oid = NULL, *jwks_url = NULL, *tenant = NULL;
	const char *acrs = NULL, *expect_oid = NULL;
	size_t nl = 0, na = 0;
	long ttl = 60, max_pages = 0;
	bool require_mfa = false;
	struct entra_http_options opt = { NULL, 5000, 0, false, NULL };
	struct entra_http *http;
	struct entra_rbac_permissions perms;
	struct entra_rbac_decision d;
	struct entra_rbac_request req;
	enum entra_rbac_result r;
	char reason[600], binding[65], *token, *claims = NULL;
	int rc = 2;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--require-mfa") == 0) {
			require_mfa = true;
			continue;
		}
		if (v == NULL) {
			fprintf(stderr, "rbac_check: %s needs a value\n", a);
			return 2;
		}
		i++;
		if (strcmp(a, "--arm") == 0)
			arm = v;
		else if (strcmp(a, "--scope") == 0)
			scope = v;
		else if (strcmp(a, "--token-file") == 0)
			token_file = v;
		else if (strcmp(a, "--ca-file") == 0)
			ca_file = v;
		else if (strcmp(a, "--login") == 0 && nl < MAX_LIST)
			login[nl++] = v;
		else if (strcmp(a, "--admin") == 0 && na < MAX_LIST)
			admin[na++] = v;
		else if (strcmp(a, "--cache-dir") == 0)
			cache_dir = v;
		else if (strcmp(a, "--oid") == 0)
			oid = v;
		else if (strcmp(a, "--ttl") == 0)
			ttl = number(v);
		else if (strcmp(a, "--max-pages") == 0)
			max_pages = number(v);
		else if (strcmp(a, "--jwks-url") == 0)
			jwks_url = v;
		else if (strcmp(a, "--tenant") == 0)
			tenant = v;
		else if (strcmp(a, "--acrs") == 0)
			acrs = v;
		else if (strcmp(a, "--expect-oid") == 0)
			expect_oid = v;
		else {
			fprintf(stderr, "rbac_check: unknown option %s\n", a);
			return 2;
		}
	}
	if (nl == 0)
		login[nl++] = ENTRA_RBAC_DEFAULT_LOGIN_ACTION;
	if (na == 0)
		admin[na++] = ENTRA_RBAC_DEFAULT_ADMIN_ACTION;
	if (scope == NULL || token_file == NULL || ttl < 0 || max_pages < 0) {
		fprintf(stderr, "rbac_check: --scope and --token-file are required\n");
		return 2;
	}
	token = read_token(token_file);
	if (token == NULL) {
		fprintf(stderr, "rbac_check: cannot read %s\n", token_file);
		return 2;
	}
	opt.ca_file = ca_file;
	http = entra_http_new(&opt, &entra_log_stderr);
	if (http == NULL) {
		entra_free_secret(token);
		return 2;
	}

	if (jwks_url != NULL) {
		struct entra_http_response resp;
		struct entra_jwks jwks;
		struct entra_rbac_token_expect e = { tenant, NULL, expect_oid, require_mfa, acrs,
						     time(NULL), 120 };
		enum entra_rbac_token_result tr;
		enum entra_jwt_status js;

		if (entra_http_get(http, jwks_url, NULL, &resp) != 0 || resp.status != 200 ||
		    entra_jwks_parse(resp.body.data, resp.body.len, &jwks) != 0) {
			fprintf(stderr, "rbac_check: cannot get the JWKS\n");
			entra_http_response_free(&resp);
			goto out;
		}
		entra_http_response_free(&resp);
		tr = entra_rbac_check_access_token_claims(token, &jwks, &e, &js, NULL, reason,
							  sizeof(reason));
		entra_jwks_free(&jwks);
		if (tr != ENTRA_RBAC_TOKEN_OK) {
			printf("token result=%d jwt=%s reason=%s\n", (int)tr, entra_jwt_status_str(js), reason);
			rc = 3;
			goto out;
		}
	}

	if (cache_dir != NULL) {
		if (oid == NULL || entra_rbac_cache_binding(arm, scope, login, admin, binding) != 0) {
			fprintf(stderr, "rbac_check: --cache-dir needs --oid\n");
			goto out;
		}
		if (entra_rbac_cache_load(cache_dir, oid, binding, (int64_t)time(NULL), &d) == 0) {
			printf("ok login=%d admin=%d cached=1 entries=0 reason=%s\n", d.login_allowed,
			       d.admin, d.reason);
			rc = 0;
			goto out;
		}
	}

	memset(&req, 0, sizeof(req));
	req.arm_url = arm;
	req.scope = scope;
	req.access_token = token;
	req.max_pages = (int)max_pages;
	r = entra_rbac_fetch_permissions(http, &req, &perms, &claims, reason, sizeof(reason));
	if (r != ENTRA_RBAC_OK) {
		char name[40];

		snprintf(name, sizeof(name), "%s", entra_rbac_result_str(r));
		for (char *c = name; *c != '\0'; c++)
			if (*c == ' ')
				*c = '_';
		printf("deny result=%s reason=%s%s%s\n", name, reason,
		       claims != NULL ? " claims=" : "", claims != NULL ? claims : "");
		free(claims);
		rc = 1;
		goto out;
	}
	if (entra_rbac_decide(&perms, login, admin, &d) != 0) {
		printf("deny result=config reason=%s\n", d.reason);
		entra_rbac_permissions_free(&perms);
		rc = 1;
		goto out;
	}
	printf("ok login=%d admin=%d cached=0 entries=%zu reason=%s\n", d.login_allowed, d.admin,
	       perms.count, d.reason);
	entra_rbac_permissions_free(&perms);
	if (cache_dir != NULL && ttl > 0 &&
	    entra_rbac_cache_store(cache_dir, oid, binding, &d, (int64_t)time(NULL), (int)ttl) != 0) {
		fprintf(stderr, "rbac_check: cache store failed\n");
		goto out;
	}
	rc = 0;
out:
	entra_free_secret(token);
	entra_http_free(http);
	return rc;
}
