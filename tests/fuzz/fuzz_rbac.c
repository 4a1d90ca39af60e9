/* libFuzzer target: the ARM permissions parser (entra_rbac_parse_page),
 * evaluation of what it returns (entra_rbac_granted, entra_rbac_decide),
 * and entra_rbac_fetch_permissions over a scripted transport (pages,
 * nextLink, statuses, the claims challenge).
 *
 * Input: parts separated by "\n@@\n":
 *   0  control: bytes 0-2 statuses of up to three responses; the part is
 *      also parsed as a WWW-Authenticate challenge and a nextLink
 *   1, 2, 3  permission pages (also parsed one by one with parse_page)
 *   4  WWW-Authenticate header of response 1 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rbac.h"
#include "fuzz_common.h"
#include "fuzz_http_stub.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ARM "https://127.0.0.1:8443"
#define SCOPE "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg"

static const long statuses[] = { 200, 200, 200, 401, 403, 429, 500, 404, 302, 0 };

static void check_perms(const struct entra_rbac_permissions *p)
{
	static const char *const login[] = { ENTRA_RBAC_DEFAULT_LOGIN_ACTION,
					     "action:Microsoft.Compute/virtualMachines/start/action", NULL };
	static const char *const admin[] = { ENTRA_RBAC_DEFAULT_ADMIN_ACTION, NULL };
	struct entra_rbac_decision d;
	const char *pattern = NULL;
	size_t entry = 0;

	if (p->count > ENTRA_RBAC_MAX_ENTRIES)
		abort();
	if (entra_rbac_granted(p, ENTRA_RBAC_DEFAULT_LOGIN_ACTION, true, &pattern, &entry) &&
	    (pattern == NULL || entry >= p->count || p->entries[entry].conditional))
		abort();
	if (entra_rbac_decide(p, login, admin, &d) != 0)
		abort();
	if (d.admin && !d.login_allowed)
		abort();
	if (strnlen(d.reason, sizeof(d.reason)) >= sizeof(d.reason) || !fuzz_printable(d.reason))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_part parts[5];
	struct entra_rbac_permissions perms;
	char text[1024], reason[256], *next = NULL, *claims = NULL, www[1024] = "";
	size_t n;
	int rc;

	memset(parts, 0, sizeof(parts));
	n = fuzz_split(data, size, parts, 5);

	/* Header and link parsers on the control part. */
	snprintf(text, sizeof(text), "%.*s", (int)(parts[0].len < 1000 ? parts[0].len : 1000), parts[0].p);
	rc = entra_rbac_parse_claims_challenge(text, &claims);
	if ((rc == 0) != (claims != NULL) || (rc == 0 && claims[0] != '{'))
		abort();
	free(claims);
	claims = NULL;
	(void)entra_rbac_next_link_ok(ARM, text);
	(void)entra_rbac_scope_is_valid(text);
	(void)entra_rbac_action_matches(text, ENTRA_RBAC_DEFAULT_LOGIN_ACTION);
	(void)entra_rbac_action_check(text, reason, sizeof(reason));

	/* Each page alone, accumulating. */
	memset(&perms, 0, sizeof(perms));
	for (size_t i = 1; i < n && i <= 3; i++) {
		reason[0] = '\0';
		rc = entra_rbac_parse_page(parts[i].p, parts[i].len, &perms, &next, reason, sizeof(reason));
		/* nextLink is returned as sent: entra_rbac_next_link_ok judges it. */
		if (rc != 0 && rc != -EINVAL && rc != -E2BIG && rc != -ENOMEM)
			abort();
		fuzz_need_printable("parse_page reason", reason);
		free(next);
		next = NULL;
	}
	check_perms(&perms);
	entra_rbac_permissions_free(&perms);

	/* The client over the scripted transport. */
	stub_reset();
	for (size_t i = 1; i < n && i <= 3; i++)
		stub_add(0, statuses[(uint8_t)(i - 1 < parts[0].len ? parts[0].p[i - 1] : 0) % 10],
			 parts[i].p, parts[i].len);
	if (n > 4 && stub.count > 0) {
		snprintf(www, sizeof(www), "%.*s", (int)(parts[4].len < 1000 ? parts[4].len : 1000), parts[4].p);
		stub.r[0].www_authenticate = www;
	}
	struct entra_rbac_request req = { ARM, SCOPE, "eyJ0eXAiOiJKV1QifQ.e30.c2ln", 3 };
	enum entra_rbac_result r = entra_rbac_fetch_permissions(stub_http(), &req, &perms, &claims,
								reason, sizeof(reason));
	fuzz_need_printable("fetch reason", reason);
	/* Never the token in a reason (unless the answer itself echoed it). */
	if (strstr(reason, "e30.c2ln") != NULL && memmem(data, size, "e30.c2ln", 8) == NULL)
		abort();
	if ((r == ENTRA_RBAC_CHALLENGE) != (claims != NULL))
		abort();
	if (r == ENTRA_RBAC_OK)
		check_perms(&perms);
	else if (perms.count != 0)
		abort();
	if (stub.requests > 3)
		abort();
	entra_rbac_permissions_free(&perms);
	free(claims);
	return 0;
}
