/* lib/rbac.c: wildcard semantics over the real built-in role definitions,
 * permission evaluation, the permissions parser, URL checks, claims
 * challenges, the decision cache and the ARM access-token checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "rbac.h"
#include "b64.h"
#include "buf.h"
#include "http.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#define LOGIN ENTRA_RBAC_DEFAULT_LOGIN_ACTION
#define ADMIN ENTRA_RBAC_DEFAULT_ADMIN_ACTION
#define TID "8e9f1c2a-3b4d-4e5f-9a0b-1c2d3e4f5a6b"
#define OID "11111111-aaaa-4bbb-8ccc-222222222222"

static const char *const default_login[] = { LOGIN, NULL };
static const char *const default_admin[] = { ADMIN, NULL };

/* ---- the real built-in role definitions (permissions only) ---------- */

#define VM_READS \
	"\"Microsoft.Network/publicIPAddresses/read\",\"Microsoft.Network/virtualNetworks/read\"," \
	"\"Microsoft.Network/loadBalancers/read\",\"Microsoft.Network/networkInterfaces/read\"," \
	"\"Microsoft.Compute/virtualMachines/*/read\",\"Microsoft.HybridCompute/machines/*/read\"," \
	"\"Microsoft.HybridConnectivity/endpoints/listCredentials/action\""

static const char vm_user_login[] =
	"{\"actions\":[" VM_READS "],\"notActions\":[],"
	"\"dataActions\":[\"Microsoft.Compute/virtualMachines/login/action\","
	"\"Microsoft.HybridCompute/machines/login/action\"],\"notDataActions\":[]}";
static const char vm_admin_login[] =
	"{\"actions\":[" VM_READS "],\"notActions\":[],"
	"\"dataActions\":[\"Microsoft.Compute/virtualMachines/login/action\","
	"\"Microsoft.Compute/virtualMachines/loginAsAdmin/action\","
	"\"Microsoft.HybridCompute/machines/login/action\","
	"\"Microsoft.HybridCompute/machines/loginAsAdmin/action\"],\"notDataActions\":[]}";
static const char owner[] =
	"{\"actions\":[\"*\"],\"notActions\":[],\"dataActions\":[],\"notDataActions\":[]}";
static const char contributor[] =
	"{\"actions\":[\"*\"],\"notActions\":[\"Microsoft.Authorization/*/Delete\","
	"\"Microsoft.Authorization/*/Write\",\"Microsoft.Authorization/elevateAccess/Action\","
	"\"Microsoft.Blueprint/blueprintAssignments/write\",\"Microsoft.Blueprint/blueprintAssignments/delete\","
	"\"Microsoft.Compute/galleries/share/action\",\"Microsoft.Purview/consents/write\","
	"\"Microsoft.Purview/consents/delete\",\"Microsoft.Resources/deploymentStacks/manageDenySetting/action\","
	"\"Microsoft.Subscription/cancel/action\",\"Microsoft.Subscription/enable/action\"],"
	"\"dataActions\":[],\"notDataActions\":[]}";
static const char reader[] =
	"{\"actions\":[\"*/read\"],\"notActions\":[],\"dataActions\":[],\"notDataActions\":[]}";
/* Virtual Machine Contributor: control-plane "Microsoft.Compute/virtualMachines/<anything>" (abridged) */
static const char vm_contributor[] =
	"{\"actions\":[\"Microsoft.Authorization/*/read\",\"Microsoft.Compute/virtualMachines/*\","
	"\"Microsoft.Compute/virtualMachineScaleSets/*\"],\"notActions\":[],\"dataActions\":[],"
	"\"notDataActions\":[]}";

/* Parse {"value":[entries...]} built from the given entry texts. */
static void perms_from(struct entra_rbac_permissions *p, const char *const *entries)
{
	struct entra_buf b;
	char reason[256] = "", *next = NULL;

	entra_buf_init(&b, 1 << 20);
	assert_int_equal(entra_buf_append_str(&b, "{\"value\":["), 0);
	for (size_t i = 0; entries[i] != NULL; i++)
		assert_int_equal(entra_buf_printf(&b, "%s%s", i ? "," : "", entries[i]), 0);
	assert_int_equal(entra_buf_append_str(&b, "]}"), 0);
	memset(p, 0, sizeof(*p));
	assert_int_equal(entra_rbac_parse_page(b.data, b.len, p, &next, reason, sizeof(reason)), 0);
	assert_null(next);
	entra_buf_free(&b);
}

static void decide(const char *const *entries, const char *const *login, const char *const *admin,
		   bool want_login, bool want_admin, const char *reason_has)
{
	struct entra_rbac_permissions p;
	struct entra_rbac_decision d;

	perms_from(&p, entries);
	assert_int_equal(entra_rbac_decide(&p, login, admin, &d), 0);
	if (d.login_allowed != want_login || d.admin != want_admin)
		fail_msg("login %d admin %d, wanted %d %d: %s", d.login_allowed, d.admin, want_login,
			 want_admin, d.reason);
	if (reason_has != NULL && strstr(d.reason, reason_has) == NULL)
		fail_msg("reason \"%s\" lacks \"%s\"", d.reason, reason_has);
	entra_rbac_permissions_free(&p);
}

/* ---- matching --------------------------------------------------------- */

static void test_action_matches_table(void **state)
{
	static const struct {
		const char *pattern, *action;
		bool match;
	} t[] = {
		{ "*", "Microsoft.Compute/virtualMachines/login/action", true },
		{ "*", "", true },
		{ "", "", true },
		{ "", "a", false },
		{ "Microsoft.Compute/*", "Microsoft.Compute/virtualMachines/login/action", true },
		{ "Microsoft.Compute/*", "Microsoft.Compute", false },
		{ "Microsoft.Compute/*", "Microsoft.ComputeX/a", false },
		{ "*/read", "Microsoft.Compute/virtualMachines/read", true },
		{ "*/read", "Microsoft.Compute/virtualMachines/login/action", false },
		{ "*/read", "Microsoft.Compute/virtualMachines/readx", false },
		{ "Microsoft.Compute/virtualMachines/*/read", "Microsoft.Compute/virtualMachines/extensions/read", true },
		{ "Microsoft.Compute/virtualMachines/*/read", "Microsoft.Compute/virtualMachines/read", false },
		{ "Microsoft.Compute/virtualMachines/*/read", "Microsoft.Compute/virtualMachines/a/b/c/read", true },
		{ "Microsoft.Compute/*/login/*", "Microsoft.Compute/virtualMachines/login/action", true },
		{ "Microsoft.Compute/*/login*", "Microsoft.Compute/virtualMachines/loginAsAdmin/action", true },
		{ "Microsoft.Compute/*/login/action", "Microsoft.Compute/virtualMachines/loginAsAdmin/action", false },
		{ "**", "x/y", true },
		{ "a**b", "ab", true },
		{ "a*b*c", "aXbYc", true },
		{ "a*b*c", "aXbYcZ", false },
		{ "a*b*c", "abbbc", true },
		{ "*a*a*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false },
		/* case-insensitive, both ways */
		{ "microsoft.compute/VIRTUALMACHINES/LOGIN/action", LOGIN, true },
		{ "MICROSOFT.COMPUTE/*", "microsoft.compute/virtualmachines/login/action", true },
		{ "Microsoft.Authorization/*/Write", "microsoft.authorization/roleAssignments/write", true },
		{ "Microsoft.Compute/virtualMachines/login/action", "Microsoft.Compute/virtualMachines/login/actionX", false },
		{ "Microsoft.Compute/virtualMachines/login/actio", LOGIN, false },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (entra_rbac_action_matches(t[i].pattern, t[i].action) != t[i].match)
			fail_msg("case %zu: \"%s\" vs \"%s\" should %smatch", i, t[i].pattern,
				 t[i].action, t[i].match ? "" : "not ");
	assert_false(entra_rbac_action_matches(NULL, "a"));
	assert_false(entra_rbac_action_matches("a", NULL));
}

static void test_action_check(void **state)
{
	char err[160];

	(void)state;
	assert_int_equal(entra_rbac_action_check(LOGIN, err, sizeof(err)), 0);
	assert_int_equal(entra_rbac_action_check("action:Microsoft.Compute/virtualMachines/start/action", err, sizeof(err)), 0);
	assert_int_equal(entra_rbac_action_check("", err, sizeof(err)), -EINVAL);
	assert_int_equal(entra_rbac_action_check(NULL, err, sizeof(err)), -EINVAL);
	assert_int_equal(entra_rbac_action_check("action:", err, sizeof(err)), -EINVAL);
	assert_int_equal(entra_rbac_action_check("Microsoft.Compute/*", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "'*'"));
	assert_int_equal(entra_rbac_action_check("Microsoft.Compute/virtual Machines/login", err, sizeof(err)), -EINVAL);
	assert_int_equal(entra_rbac_action_check("nolash", err, sizeof(err)), -EINVAL);
	assert_int_equal(entra_rbac_action_check("/leading", err, sizeof(err)), -EINVAL);
	assert_int_equal(entra_rbac_action_check("trailing/", err, sizeof(err)), -EINVAL);
	assert_int_equal(entra_rbac_action_check("a/b\n", err, sizeof(err)), -EINVAL);
}

/* ---- built-in roles ------------------------------------------------------ */

static void test_builtin_roles(void **state)
{
	static const struct {
		const char *name, *def;
		bool login, admin;
	} t[] = {
		{ "Virtual Machine User Login", vm_user_login, true, false },
		{ "Virtual Machine Administrator Login", vm_admin_login, true, true },
		{ "Owner", owner, false, false },
		{ "Contributor", contributor, false, false },
		{ "Reader", reader, false, false },
		{ "Virtual Machine Contributor", vm_contributor, false, false },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		const char *entries[] = { t[i].def, NULL };
		struct entra_rbac_permissions p;
		struct entra_rbac_decision d;

		perms_from(&p, entries);
		assert_int_equal(entra_rbac_decide(&p, default_login, default_admin, &d), 0);
		if (d.login_allowed != t[i].login || d.admin != t[i].admin)
			fail_msg("%s: login %d admin %d (%s)", t[i].name, d.login_allowed, d.admin, d.reason);
		entra_rbac_permissions_free(&p);
	}
	/* The Arc (HybridCompute) login actions, configured instead. */
	{
		const char *const arc_login[] = { "Microsoft.HybridCompute/machines/login/action", NULL };
		const char *const arc_admin[] = { "Microsoft.HybridCompute/machines/loginAsAdmin/action", NULL };
		const char *u[] = { vm_user_login, NULL }, *a[] = { vm_admin_login, NULL };

		decide(u, arc_login, arc_admin, true, false, "HybridCompute");
		decide(a, arc_login, arc_admin, true, true, "loginAsAdmin");
	}
}

static void test_control_plane_actions(void **state)
{
	const char *const start[] = { "action:Microsoft.Compute/virtualMachines/start/action", NULL };
	const char *const role_write[] = { "action:Microsoft.Authorization/roleAssignments/write", NULL };
	const char *o[] = { owner, NULL }, *c[] = { contributor, NULL }, *r[] = { reader, NULL };
	const char *u[] = { vm_user_login, NULL };

	(void)state;
	/* Owner and Contributor hold every control-plane action... */
	decide(o, start, NULL, true, false, "granted by \"*\"");
	decide(c, start, NULL, true, false, "granted by \"*\"");
	/* ...except what Contributor's notActions take away. */
	decide(o, role_write, NULL, true, false, NULL);
	decide(c, role_write, NULL, false, false, NULL);
	decide(r, start, NULL, false, false, NULL);
	/* A data action role does not grant control-plane actions. */
	{
		const char *const login_as_action[] = { "action:" LOGIN, NULL };

		decide(u, login_as_action, NULL, false, false, NULL);
	}
	/* Control-plane reads of the VM login roles. */
	{
		const char *const read[] = { "action:Microsoft.Compute/virtualMachines/extensions/read", NULL };

		decide(u, read, NULL, true, false, "Microsoft.Compute/virtualMachines/*/read");
	}
}

static void test_custom_roles(void **state)
{
	const char *compute_all[] = {
		"{\"actions\":[],\"notActions\":[],\"dataActions\":[\"Microsoft.Compute/*\"],"
		"\"notDataActions\":[\"Microsoft.Compute/virtualMachines/loginAsAdmin/action\"]}",
		NULL
	};
	const char *star_data[] = {
		"{\"actions\":[],\"dataActions\":[\"*\"],\"notDataActions\":[\"*/login*\"]}", NULL
	};
	const char *mixed_case[] = {
		"{\"dataActions\":[\"MICROSOFT.COMPUTE/VIRTUALMACHINES/LOGIN/ACTION\"]}", NULL
	};
	const char *wild_mid[] = {
		"{\"dataActions\":[\"Microsoft.Compute/*/login*/action\"]}", NULL
	};
	const char *not_only[] = {
		"{\"dataActions\":[],\"notDataActions\":[\"*\"]}", NULL
	};
	const char *admin_only[] = {
		"{\"dataActions\":[\"Microsoft.Compute/virtualMachines/loginAsAdmin/action\"]}", NULL
	};

	(void)state;
	decide(compute_all, default_login, default_admin, true, false, "Microsoft.Compute/*");
	decide(star_data, default_login, default_admin, false, false, NULL);
	decide(mixed_case, default_login, default_admin, true, false, "MICROSOFT.COMPUTE");
	decide(wild_mid, default_login, default_admin, true, true, "login*");
	decide(not_only, default_login, default_admin, false, false, NULL);
	/* an admin action without a login action is no login */
	decide(admin_only, default_login, default_admin, false, false, "admin action alone");
}

static void test_multiple_entries(void **state)
{
	/* A notDataAction in one entry does not subtract from another. */
	const char *two[] = {
		"{\"dataActions\":[\"Microsoft.Compute/*\"],\"notDataActions\":[\"" LOGIN "\",\"" ADMIN "\"]}",
		vm_admin_login, NULL
	};
	const char *one_with_not[] = {
		"{\"dataActions\":[\"Microsoft.Compute/*\"],\"notDataActions\":[\"" LOGIN "\",\"" ADMIN "\"]}",
		NULL
	};
	/* Roles combine: user login from one, admin from another. */
	const char *combined[] = {
		vm_user_login,
		"{\"dataActions\":[\"" LOGIN "\",\"" ADMIN "\"],\"notDataActions\":[\"" LOGIN "\"]}",
		NULL
	};
	/* A conditional (ABAC) entry grants nothing. */
	const char *conditional[] = {
		"{\"dataActions\":[\"" LOGIN "\"],\"condition\":\"@Resource[x] StringEquals 'y'\","
		"\"conditionVersion\":\"2.0\"}",
		NULL
	};
	const char *cond_null[] = {
		"{\"dataActions\":[\"" LOGIN "\"],\"condition\":null,\"conditionVersion\":null}", NULL
	};
	const char *cond_empty[] = {
		"{\"dataActions\":[\"" LOGIN "\"],\"condition\":\"\"}", NULL
	};

	(void)state;
	decide(two, default_login, default_admin, true, true, "entry 1");
	decide(one_with_not, default_login, default_admin, false, false, NULL);
	decide(combined, default_login, default_admin, true, true, NULL);
	decide(conditional, default_login, default_admin, false, false, NULL);
	decide(cond_null, default_login, default_admin, true, false, NULL);
	decide(cond_empty, default_login, default_admin, true, false, NULL);
	{
		const char *u[] = { owner, reader, contributor, NULL };

		decide(u, default_login, default_admin, false, false, "3 permission entries");
	}
}

static void test_decide_lists(void **state)
{
	const char *u[] = { vm_admin_login, NULL };
	const char *const several_login[] = { "Microsoft.Foo/bar/login/action", LOGIN, NULL };
	const char *const empty[] = { NULL };
	const char *const bad[] = { "Microsoft.Compute/*", NULL };
	struct entra_rbac_permissions p;
	struct entra_rbac_decision d;

	(void)state;
	decide(u, several_login, default_admin, true, true, LOGIN);
	decide(u, default_login, NULL, true, false, "no admin action configured");
	decide(u, default_login, empty, true, false, "no admin action configured");
	perms_from(&p, u);
	assert_int_equal(entra_rbac_decide(&p, empty, default_admin, &d), -EINVAL);
	assert_false(d.login_allowed);
	assert_int_equal(entra_rbac_decide(&p, NULL, default_admin, &d), -EINVAL);
	assert_int_equal(entra_rbac_decide(&p, bad, default_admin, &d), -EINVAL);
	assert_false(d.login_allowed);
	assert_non_null(strstr(d.reason, "Microsoft.Compute/*"));
	assert_int_equal(entra_rbac_decide(&p, default_login, bad, &d), -EINVAL);
	assert_false(d.login_allowed || d.admin);
	entra_rbac_permissions_free(&p);
	/* no permissions at all */
	memset(&p, 0, sizeof(p));
	assert_int_equal(entra_rbac_decide(&p, default_login, default_admin, &d), 0);
	assert_false(d.login_allowed);
	assert_int_equal(entra_rbac_decide(NULL, default_login, default_admin, &d), 0);
	assert_false(d.login_allowed);
}

/* ---- parsing --------------------------------------------------------------- */

static int parse(const char *json, struct entra_rbac_permissions *p, char **next, char *reason)
{
	memset(p, 0, sizeof(*p));
	return entra_rbac_parse_page(json, strlen(json), p, next, reason, 200);
}

static void test_parse_good(void **state)
{
	struct entra_rbac_permissions p;
	char reason[200], *next = NULL;

	(void)state;
	assert_int_equal(parse("{\"value\":[]}", &p, &next, reason), 0);
	assert_int_equal(p.count, 0);
	assert_null(next);
	assert_int_equal(parse("{\"value\":[{\"actions\":[\"*\"],\"notActions\":[],\"dataActions\":[],"
			       "\"notDataActions\":[]},{}],\"nextLink\":\"https://management.azure.com/x?$skiptoken=2\"}",
			       &p, &next, reason), 0);
	assert_int_equal(p.count, 2);
	assert_string_equal(p.entries[0].actions.items[0], "*");
	assert_int_equal(p.entries[1].actions.count, 0);
	assert_string_equal(next, "https://management.azure.com/x?$skiptoken=2");
	free(next);
	/* a second page appends */
	{
		static const char page2[] = "{\"value\":[{}],\"nextLink\":null}";

		assert_int_equal(entra_rbac_parse_page(page2, strlen(page2), &p, &next, reason,
						       sizeof(reason)), 0);
	}
	assert_int_equal(p.count, 3);
	assert_null(next);
	entra_rbac_permissions_free(&p);
	assert_int_equal(p.count, 0);
	/* unknown members are ignored, nextLink "" is the end */
	assert_int_equal(parse("{\"value\":[{\"actions\":[\"a/b\"],\"x\":1}],\"nextLink\":\"\",\"y\":[]}",
			       &p, &next, reason), 0);
	assert_null(next);
	entra_rbac_permissions_free(&p);
}

static void test_parse_bad(void **state)
{
	static const struct {
		const char *json, *why;
	} t[] = {
		{ "", "not a JSON object" },
		{ "[]", "not a JSON object" },
		{ "{\"value\":[{\"actions\":[\"*\"]}", "not a JSON object" },   /* truncated */
		{ "{\"value\":[],\"value\":[]}", "not a JSON object" },         /* duplicate key */
		{ "{}", "\"value\"" },
		{ "{\"value\":{}}", "\"value\"" },
		{ "{\"value\":null}", "\"value\"" },
		{ "{\"value\":[1]}", "value[0]: entry is not an object" },
		{ "{\"value\":[{\"actions\":\"*\"}]}", "actions is not an array" },
		{ "{\"value\":[{\"notActions\":{}}]}", "notActions is not an array" },
		{ "{\"value\":[{\"dataActions\":[1]}]}", "dataActions[0] is not a string" },
		{ "{\"value\":[{\"notDataActions\":[null]}]}", "notDataActions[0] is not a string" },
		{ "{\"value\":[{\"dataActions\":[\"\"]}]}", "empty" },
		{ "{\"value\":[{\"dataActions\":[\"a\\u0000b\"]}]}", "NUL" },
		{ "{\"value\":[{\"actions\":null}]}", "actions is not an array" },
		{ "{\"value\":[{\"condition\":1}]}", "condition" },
		{ "{\"value\":[],\"nextLink\":5}", "nextLink" },
		{ "{\"value\":[{},{\"actions\":[\"ok\"]},{\"dataActions\":[true]}]}", "value[2]" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct entra_rbac_permissions p;
		char reason[200] = "", *next = (char *)"sentinel";
		int rc = parse(t[i].json, &p, &next, reason);

		if (rc != -EINVAL || strstr(reason, t[i].why) == NULL)
			fail_msg("case %zu (%s): rc %d reason \"%s\"", i, t[i].json, rc, reason);
		assert_null(next);
		entra_rbac_permissions_free(&p);
	}
}

static void test_parse_limits(void **state)
{
	struct entra_rbac_permissions p;
	struct entra_buf b;
	char reason[200], *next = NULL;

	(void)state;
	entra_buf_init(&b, 1 << 20);
	assert_int_equal(entra_buf_append_str(&b, "{\"value\":["), 0);
	for (int i = 0; i <= ENTRA_RBAC_MAX_ENTRIES; i++)
		assert_int_equal(entra_buf_append_str(&b, i ? ",{}" : "{}"), 0);
	assert_int_equal(entra_buf_append_str(&b, "]}"), 0);
	memset(&p, 0, sizeof(p));
	assert_int_equal(entra_rbac_parse_page(b.data, b.len, &p, &next, reason, sizeof(reason)), -E2BIG);
	entra_rbac_permissions_free(&p);
	entra_buf_free(&b);

	/* too many patterns in one list */
	entra_buf_init(&b, 1 << 20);
	assert_int_equal(entra_buf_append_str(&b, "{\"value\":[{\"dataActions\":["), 0);
	for (int i = 0; i <= ENTRA_RBAC_MAX_PATTERNS; i++)
		assert_int_equal(entra_buf_append_str(&b, i ? ",\"a/b\"" : "\"a/b\""), 0);
	assert_int_equal(entra_buf_append_str(&b, "]}]}"), 0);
	memset(&p, 0, sizeof(p));
	assert_int_equal(entra_rbac_parse_page(b.data, b.len, &p, &next, reason, sizeof(reason)), -E2BIG);
	entra_rbac_permissions_free(&p);
	entra_buf_free(&b);

	/* an over-long pattern */
	{
		char big[ENTRA_RBAC_MAX_ACTION + 64];

		memset(big, 'a', sizeof(big));
		memcpy(big, "{\"value\":[{\"dataActions\":[\"", 27);
		memcpy(big + sizeof(big) - 6, "\"]}]}", 6);
		assert_int_equal(parse(big, &p, &next, reason), -EINVAL);
		entra_rbac_permissions_free(&p);
	}
}

/* ---- URLs, scopes, challenges ----------------------------------------------- */

static void test_scope_validation(void **state)
{
	static const struct {
		const char *scope;
		bool ok;
	} t[] = {
		{ "/subscriptions/00000000-0000-0000-0000-000000000000", true },
		{ "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-ml(1).x_y~z", true },
		{ "/subscriptions/0A000000-0000-0000-0000-00000000000f/resourceGroups/rg/providers/"
		  "Microsoft.MachineLearningServices/workspaces/ws", true },
		{ "/Subscriptions/00000000-0000-0000-0000-000000000000", true },
		{ "", false },
		{ NULL, false },
		{ "subscriptions/00000000-0000-0000-0000-000000000000", false },
		{ "/subscriptions/", false },
		{ "/subscriptions/not-a-guid", false },
		{ "/subscriptions/00000000-0000-0000-0000-0000000000000", false },
		{ "/subscriptions/00000000-0000-0000-0000-000000000000/", false },
		{ "/subscriptions/00000000-0000-0000-0000-000000000000//rg", false },
		{ "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/..", false },
		{ "/subscriptions/00000000-0000-0000-0000-000000000000/./x", false },
		{ "/subscriptions/00000000-0000-0000-0000-000000000000/rg?api-version=1", false },
		{ "/subscriptions/00000000-0000-0000-0000-000000000000/rg#x", false },
		{ "/subscriptions/00000000-0000-0000-0000-000000000000/r%2e", false },
		{ "/subscriptions/00000000-0000-0000-0000-000000000000/r g", false },
		{ "/subscriptions/00000000-0000-0000-0000-000000000000/r\\g", false },
		{ "/subscriptions/00000000-0000-0000-0000-000000000000/r&x=1", false },
		{ "/subscriptions/00000000-0000-0000-0000-000000000000/r\xc3\xa9", false },
		{ "/providers/Microsoft.Management/managementGroups/mg", false },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (entra_rbac_scope_is_valid(t[i].scope) != t[i].ok)
			fail_msg("case %zu: \"%s\" should be %s", i, t[i].scope ? t[i].scope : "(null)",
				 t[i].ok ? "valid" : "refused");
	{
		char long_scope[ENTRA_RBAC_MAX_SCOPE + 16];

		snprintf(long_scope, sizeof(long_scope), "/subscriptions/00000000-0000-0000-0000-000000000000/");
		memset(long_scope + strlen(long_scope), 'a', sizeof(long_scope) - strlen(long_scope) - 1);
		long_scope[sizeof(long_scope) - 1] = '\0';
		assert_false(entra_rbac_scope_is_valid(long_scope));
	}
}

static void test_next_link(void **state)
{
	static const struct {
		const char *base, *link;
		bool ok;
	} t[] = {
		{ "https://management.azure.com", "https://management.azure.com/subscriptions/x?$skiptoken=1", true },
		{ "https://management.azure.com/", "https://MANAGEMENT.azure.com/a", true },
		{ "https://management.azure.com", "https://management.azure.com:443/a", true },
		{ "https://127.0.0.1:8443", "https://127.0.0.1:8443/subscriptions/x", true },
		{ "https://127.0.0.1:8443", "https://127.0.0.1:9443/subscriptions/x", false },
		{ "https://127.0.0.1:8443", "https://127.0.0.1/subscriptions/x", false },
		{ "https://management.azure.com", "http://management.azure.com/a", false },
		{ "https://management.azure.com", "https://evil.example/a", false },
		{ "https://management.azure.com", "https://management.azure.com.evil.example/a", false },
		{ "https://management.azure.com", "https://management.azure.com@evil.example/a", false },
		{ "https://management.azure.com", "https://evil.example@management.azure.com/a", false },
		{ "https://management.azure.com", "https://management.azure.com/a#frag", false },
		{ "https://management.azure.com", "https://management.azure.com/a b", false },
		{ "https://management.azure.com", "https://management.azure.com/a\r\nX: y", false },
		{ "https://management.azure.com", "https://management.azure.com?x=1", false },
		{ "https://management.azure.com", "https://management.azure.com", false },
		{ "https://management.azure.com", "//management.azure.com/a", false },
		{ "https://management.azure.com", "/subscriptions/x", false },
		{ "https://management.azure.com", "", false },
		{ "https://management.azure.com", NULL, false },
		{ "http://management.azure.com", "http://management.azure.com/a", false },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (entra_rbac_next_link_ok(t[i].base, t[i].link) != t[i].ok)
			fail_msg("case %zu: %s from %s should be %s", i, t[i].link ? t[i].link : "(null)",
				 t[i].base, t[i].ok ? "followed" : "refused");
}

static void test_claims_challenge(void **state)
{
	/* PROTOCOL.md §3d, verbatim */
	static const char ms[] =
		"Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", "
		"error=\"insufficient_claims\", claims=\"eyJhY2Nlc3NfdG9rZW4iOnsiYWNycyI6eyJlc3NlbnRpYWwiOnRydWUsInZhbHVlIjoiY3AxIn19fQ==\"";
	char *claims = NULL, *enc, hdr[512];
	const char *json = "{\"access_token\":{\"acrs\":{\"essential\":true,\"value\":\"c2\"}}}";

	(void)state;
	assert_int_equal(entra_rbac_parse_claims_challenge(ms, &claims), 0);
	assert_string_equal(claims, "{\"access_token\":{\"acrs\":{\"essential\":true,\"value\":\"cp1\"}}}");
	free(claims);
	/* base64url without padding, token-form error, other parameter order */
	enc = entra_b64url_encode((const unsigned char *)json, strlen(json));
	assert_non_null(enc);
	snprintf(hdr, sizeof(hdr), "bearer claims=\"%s\",error=insufficient_claims", enc);
	assert_int_equal(entra_rbac_parse_claims_challenge(hdr, &claims), 0);
	assert_string_equal(claims, json);
	free(claims);
	/* not a claims challenge */
	assert_int_equal(entra_rbac_parse_claims_challenge(NULL, &claims), -ENOENT);
	assert_int_equal(entra_rbac_parse_claims_challenge(
		"Bearer authorization_uri=\"https://login.microsoftonline.com/x\", error=\"invalid_token\", "
		"error_description=\"The access token is invalid.\"", &claims), -ENOENT);
	snprintf(hdr, sizeof(hdr), "Basic realm=\"x\", error=\"insufficient_claims\", claims=\"%s\"", enc);
	assert_int_equal(entra_rbac_parse_claims_challenge(hdr, &claims), -ENOENT);
	snprintf(hdr, sizeof(hdr), "BearerX error=\"insufficient_claims\", claims=\"%s\"", enc);
	assert_int_equal(entra_rbac_parse_claims_challenge(hdr, &claims), -ENOENT);
	/* one that says so but is unusable */
	assert_int_equal(entra_rbac_parse_claims_challenge("Bearer error=\"insufficient_claims\"", &claims), -EINVAL);
	assert_int_equal(entra_rbac_parse_claims_challenge(
		"Bearer error=\"insufficient_claims\", claims=\"!!!\"", &claims), -EINVAL);
	assert_int_equal(entra_rbac_parse_claims_challenge(
		"Bearer error=\"insufficient_claims\", claims=\"WzFd\"", &claims), -EINVAL); /* [1] */
	assert_int_equal(entra_rbac_parse_claims_challenge(
		"Bearer error=\"insufficient_claims\", claims=\"eyJh", &claims), -EINVAL); /* unterminated */
	assert_null(claims);
	free(enc);
}

/* ---- fetch: argument checks before any request ---------------------------- */

static void test_fetch_refuses_bad_requests(void **state)
{
	struct entra_http_options opt = { NULL, 1000, 0, false, NULL };
	struct entra_http *http;
	struct entra_rbac_permissions p;
	struct entra_rbac_request req = {
		"https://127.0.0.1:1", "/subscriptions/00000000-0000-0000-0000-000000000000",
		"eyJ0.eyJ0.c2ln", 0
	};
	char reason[256], *claims = (char *)"x";

	(void)state;
	http = entra_http_new(&opt, NULL);
	assert_non_null(http);
	req.scope = "/subscriptions/00000000-0000-0000-0000-000000000000/../x";
	assert_int_equal(entra_rbac_fetch_permissions(http, &req, &p, &claims, reason, sizeof(reason)),
			 ENTRA_RBAC_INVALID);
	assert_null(claims);
	assert_non_null(strstr(reason, "scope"));
	req.scope = "/subscriptions/00000000-0000-0000-0000-000000000000";
	req.arm_url = "http://127.0.0.1:1";
	assert_int_equal(entra_rbac_fetch_permissions(http, &req, &p, NULL, reason, sizeof(reason)),
			 ENTRA_RBAC_INVALID);
	req.arm_url = "https://127.0.0.1:1/prefix";
	assert_int_equal(entra_rbac_fetch_permissions(http, &req, &p, NULL, reason, sizeof(reason)),
			 ENTRA_RBAC_INVALID);
	req.arm_url = "https://127.0.0.1:1/";
	req.access_token = "bad token\r\nX-Injected: 1";
	assert_int_equal(entra_rbac_fetch_permissions(http, &req, &p, NULL, reason, sizeof(reason)),
			 ENTRA_RBAC_INVALID);
	req.access_token = "";
	assert_int_equal(entra_rbac_fetch_permissions(http, &req, &p, NULL, reason, sizeof(reason)),
			 ENTRA_RBAC_INVALID);
	/* a valid request to a closed port: unavailable, fail closed */
	req.access_token = "eyJ0.eyJ0.c2ln";
	assert_int_equal(entra_rbac_fetch_permissions(http, &req, &p, NULL, reason, sizeof(reason)),
			 ENTRA_RBAC_UNAVAILABLE);
	assert_int_equal(p.count, 0);
	assert_null(strstr(reason, "c2ln"));
	assert_int_equal(entra_rbac_fetch_permissions(NULL, &req, &p, NULL, reason, sizeof(reason)),
			 ENTRA_RBAC_INVALID);
	assert_string_equal(entra_rbac_result_str(ENTRA_RBAC_CHALLENGE), "claims challenge");
	entra_http_free(http);
}

/* ---- decision cache -------------------------------------------------------- */

struct cache_fixture {
	char dir[64];
	char binding[65];
};

static int cache_setup(void **state)
{
	static const char *const login[] = { LOGIN, NULL }, *const admin[] = { ADMIN, NULL };
	struct cache_fixture *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_rbac.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	if (entra_rbac_cache_binding("https://management.azure.com",
				     "/subscriptions/00000000-0000-0000-0000-000000000000", login,
				     admin, f->binding) != 0)
		return -1;
	*state = f;
	return 0;
}

static int cache_teardown(void **state)
{
	struct cache_fixture *f = *state;
	char path[128];

	snprintf(path, sizeof(path), "%s/rbac/%s.json", f->dir, OID);
	unlink(path);
	snprintf(path, sizeof(path), "%s/rbac", f->dir);
	rmdir(path);
	rmdir(f->dir);
	free(f);
	return 0;
}

static void test_cache_binding(void **state)
{
	static const char *const a[] = { "a/b", NULL }, *const b[] = { "a/b", "c/d", NULL };
	static const char *const ab[] = { "a/bc/d", NULL }, *const none[] = { NULL };
	char x[65], y[65];

	(void)state;
	assert_int_equal(entra_rbac_cache_binding(NULL, "/s", a, b, x), 0);
	assert_int_equal(strlen(x), 64);
	assert_int_equal(entra_rbac_cache_binding(ENTRA_RBAC_DEFAULT_ARM_URL, "/s", a, b, y), 0);
	assert_string_equal(x, y);
	assert_int_equal(entra_rbac_cache_binding(NULL, "/t", a, b, y), 0);
	assert_string_not_equal(x, y);
	assert_int_equal(entra_rbac_cache_binding(NULL, "/s", b, a, y), 0);
	assert_string_not_equal(x, y);
	/* list boundaries count: {"a/b","c/d"},{} differs from {"a/bc/d"},{} and {"a/b"},{"c/d"} */
	assert_int_equal(entra_rbac_cache_binding(NULL, "/s", b, none, x), 0);
	assert_int_equal(entra_rbac_cache_binding(NULL, "/s", ab, none, y), 0);
	assert_string_not_equal(x, y);
	assert_int_equal(entra_rbac_cache_binding(NULL, "/s", a, (const char *const[]){ "c/d", NULL }, y), 0);
	assert_string_not_equal(x, y);
	assert_int_equal(entra_rbac_cache_binding(NULL, NULL, a, b, y), -EINVAL);
}

static void test_cache_hit_and_expiry(void **state)
{
	struct cache_fixture *f = *state;
	struct entra_rbac_decision d = { true, true, "x" }, got;
	char other[65], path[128];
	struct stat st;

	assert_int_equal(entra_rbac_cache_load(f->dir, OID, f->binding, 1000, &got), -ENOENT);
	assert_int_equal(entra_rbac_cache_store(f->dir, OID, f->binding, &d, 1000, 60), 0);
	snprintf(path, sizeof(path), "%s/rbac", f->dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	snprintf(path, sizeof(path), "%s/rbac/%s.json", f->dir, OID);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);

	assert_int_equal(entra_rbac_cache_load(f->dir, OID, f->binding, 1000, &got), 0);
	assert_true(got.login_allowed && got.admin);
	assert_non_null(strstr(got.reason, "cached"));
	/* the oid is matched case-insensitively (stored lower case) */
	assert_int_equal(entra_rbac_cache_load(f->dir, "11111111-AAAA-4BBB-8CCC-222222222222",
					       f->binding, 1059, &got), 0);
	/* expired at created + ttl */
	assert_int_equal(entra_rbac_cache_load(f->dir, OID, f->binding, 1060, &got), -ENOENT);
	assert_false(got.login_allowed);
	/* created in the future (clock went back) */
	assert_int_equal(entra_rbac_cache_load(f->dir, OID, f->binding, 900, &got), -ENOENT);
	/* other configuration */
	memset(other, 'a', 64);
	other[64] = '\0';
	assert_int_equal(entra_rbac_cache_load(f->dir, OID, other, 1000, &got), -ENOENT);
	/* another user: no entry */
	assert_int_equal(entra_rbac_cache_load(f->dir, "22222222-aaaa-4bbb-8ccc-222222222222",
					       f->binding, 1000, &got), -ENOENT);
	/* a denial is cached as a denial, never with admin */
	d.login_allowed = false;
	assert_int_equal(entra_rbac_cache_store(f->dir, OID, f->binding, &d, 2000, 60), 0);
	assert_int_equal(entra_rbac_cache_load(f->dir, OID, f->binding, 2001, &got), 0);
	assert_false(got.login_allowed || got.admin);
	/* removal */
	assert_int_equal(entra_rbac_cache_remove(f->dir, OID), 0);
	assert_int_equal(entra_rbac_cache_load(f->dir, OID, f->binding, 2001, &got), -ENOENT);
	assert_int_equal(entra_rbac_cache_remove(f->dir, OID), 0);
	/* bad arguments */
	assert_int_equal(entra_rbac_cache_store(f->dir, "../../etc/passwd", f->binding, &d, 1, 60), -EINVAL);
	assert_int_equal(entra_rbac_cache_store(f->dir, OID, f->binding, &d, 1, 0), -EINVAL);
	assert_int_equal(entra_rbac_cache_store(f->dir, OID, f->binding, &d, 1, ENTRA_RBAC_CACHE_MAX_TTL + 1), -EINVAL);
	assert_int_equal(entra_rbac_cache_store(f->dir, OID, "short", &d, 1, 60), -EINVAL);
	assert_int_equal(entra_rbac_cache_store("relative/dir", OID, f->binding, &d, 1, 60), -EINVAL);
	assert_int_equal(entra_rbac_cache_load(f->dir, "x", f->binding, 1, &got), -EINVAL);
}

static void write_raw(const struct cache_fixture *f, const char *text, mode_t mode)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/rbac/%s.json", f->dir, OID);
	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void test_cache_corrupt_and_perms(void **state)
{
	struct cache_fixture *f = *state;
	struct entra_rbac_decision d = { true, false, "" }, got;
	char good[600], text[600], path[128];
	static const char *const bad[] = {
		"",
		"not json",
		"{\"v\":1}",
		"[]",
	};

	assert_int_equal(entra_rbac_cache_store(f->dir, OID, f->binding, &d, 1000, 60), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_raw(f, bad[i], 0600);
		assert_int_equal(entra_rbac_cache_load(f->dir, OID, f->binding, 1000, &got), -EINVAL);
	}
	/* well-formed but lying: wrong version, other oid, admin without login,
	 * a lifetime over the maximum, wrong types */
#define ENTRY(v, oid, login, admin, created, expires) \
	snprintf(text, sizeof(text), "{\"v\":%s,\"oid\":\"%s\",\"binding\":\"%s\",\"login_allowed\":%s," \
		 "\"admin\":%s,\"created\":%s,\"expires\":%s}", v, oid, f->binding, login, admin, created, expires)
	ENTRY("2", OID, "true", "false", "1000", "1060");
	write_raw(f, text, 0600);
	assert_int_equal(entra_rbac_cache_load(f->dir, OID, f->binding, 1000, &got), -EINVAL);
	ENTRY("1", "22222222-aaaa-4bbb-8ccc-222222222222", "true", "false", "1000", "1060");
	write_raw(f, text, 0600);
	assert_int_equal(entra_rbac_cache_load(f->dir, OID, f->binding, 1000, &got), -EINVAL);
	ENTRY("1", OID, "false", "true", "1000", "1060");
	write_raw(f, text, 0600);
	assert_int_equal(entra_rbac_cache_load(f->dir, OID, f->binding, 1000, &got), -EINVAL);
	ENTRY("1", OID, "true", "false", "1000", "999000");
	write_raw(f, text, 0600);
	assert_int_equal(entra_rbac_cache_load(f->dir, OID, f->binding, 1000, &got), -EINVAL);
	ENTRY("1", OID, "\"true\"", "false", "1000", "1060");
	write_raw(f, text, 0600);
	assert_int_equal(entra_rbac_cache_load(f->dir, OID, f->binding, 1000, &got), -EINVAL);
	ENTRY("1", OID, "true", "false", "1000", "1060");
	snprintf(good, sizeof(good), "%s", text);
	write_raw(f, good, 0600);
	assert_int_equal(entra_rbac_cache_load(f->dir, OID, f->binding, 1000, &got), 0);
	assert_true(got.login_allowed && !got.admin);
#undef ENTRY
	/* group/other-writable: refused */
	write_raw(f, good, 0622);
	assert_int_equal(entra_rbac_cache_load(f->dir, OID, f->binding, 1000, &got), -EACCES);
	assert_false(got.login_allowed);
	/* a symlink: refused */
	snprintf(path, sizeof(path), "%s/rbac/%s.json", f->dir, OID);
	unlink(path);
	assert_int_equal(symlink("/etc/hostname", path), 0);
	assert_int_equal(entra_rbac_cache_load(f->dir, OID, f->binding, 1000, &got), -ELOOP);
	unlink(path);
	/* a group-writable cache directory: refused */
	snprintf(path, sizeof(path), "%s/rbac", f->dir);
	assert_int_equal(chmod(path, 0770), 0);
	assert_true(entra_rbac_cache_load(f->dir, OID, f->binding, 1000, &got) < 0);
	assert_true(entra_rbac_cache_store(f->dir, OID, f->binding, &d, 1000, 60) < 0);
	assert_int_equal(chmod(path, 0700), 0);
	/* store replaces a corrupt file */
	write_raw(f, "garbage", 0600);
	assert_int_equal(entra_rbac_cache_store(f->dir, OID, f->binding, &d, 1000, 60), 0);
	assert_int_equal(entra_rbac_cache_load(f->dir, OID, f->binding, 1000, &got), 0);
}

/* ---- ARM access-token checks ------------------------------------------------ */

struct keys {
	EVP_PKEY *pkey;
	char *n, *e;
};

static struct keys g_keys;

static char *bn_b64(const EVP_PKEY *pkey, const char *name)
{
	BIGNUM *bn = NULL;
	unsigned char buf[600];
	int len;
	char *out;

	assert_int_equal(EVP_PKEY_get_bn_param(pkey, name, &bn), 1);
	len = BN_bn2bin(bn, buf);
	out = entra_b64url_encode(buf, (size_t)len);
	BN_free(bn);
	return out;
}

static int keys_setup(void **state)
{
	(void)state;
	g_keys.pkey = EVP_RSA_gen(2048);
	if (g_keys.pkey == NULL)
		return -1;
	g_keys.n = bn_b64(g_keys.pkey, OSSL_PKEY_PARAM_RSA_N);
	g_keys.e = bn_b64(g_keys.pkey, OSSL_PKEY_PARAM_RSA_E);
	return 0;
}

static int keys_teardown(void **state)
{
	(void)state;
	EVP_PKEY_free(g_keys.pkey);
	free(g_keys.n);
	free(g_keys.e);
	return 0;
}

static void jwks_with_issuer(struct entra_jwks *jwks, const char *issuer)
{
	char json[2048];

	if (issuer != NULL)
		snprintf(json, sizeof(json),
			 "{\"keys\":[{\"kty\":\"RSA\",\"use\":\"sig\",\"kid\":\"k1\",\"n\":\"%s\",\"e\":\"%s\",\"issuer\":\"%s\"}]}",
			 g_keys.n, g_keys.e, issuer);
	else
		snprintf(json, sizeof(json),
			 "{\"keys\":[{\"kty\":\"RSA\",\"use\":\"sig\",\"kid\":\"k1\",\"n\":\"%s\",\"e\":\"%s\"}]}",
			 g_keys.n, g_keys.e);
	assert_int_equal(entra_jwks_parse(json, strlen(json), jwks), 0);
}

/* An RS256 token over the given payload JSON, signed with g_keys. */
static char *sign(const char *payload)
{
	static const char header[] = "{\"typ\":\"JWT\",\"alg\":\"RS256\",\"kid\":\"k1\",\"x5t\":\"k1\"}";
	char *h = entra_b64url_encode((const unsigned char *)header, strlen(header));
	char *p = entra_b64url_encode((const unsigned char *)payload, strlen(payload));
	unsigned char sig[512];
	size_t siglen = sizeof(sig);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	struct entra_buf b;
	char *s;

	entra_buf_init(&b, 65536);
	assert_int_equal(entra_buf_printf(&b, "%s.%s", h, p), 0);
	assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, g_keys.pkey), 1);
	assert_int_equal(EVP_DigestSign(md, sig, &siglen, (const unsigned char *)b.data, b.len), 1);
	EVP_MD_CTX_free(md);
	s = entra_b64url_encode(sig, siglen);
	assert_int_equal(entra_buf_printf(&b, ".%s", s), 0);
	free(h);
	free(p);
	free(s);
	return entra_buf_steal(&b);
}

static char *arm_token(const char *extra, const char *iss, const char *aud)
{
	char payload[2048];
	long now = (long)time(NULL);

	snprintf(payload, sizeof(payload),
		 "{\"aud\":\"%s\",\"iss\":\"%s\",\"iat\":%ld,\"nbf\":%ld,\"exp\":%ld,\"oid\":\"%s\","
		 "\"tid\":\"%s\",\"upn\":\"alice@contoso.com\",\"ver\":\"1.0\"%s%s}",
		 aud != NULL ? aud : "https://management.azure.com/",
		 iss != NULL ? iss : "https://sts.windows.net/" TID "/", now, now, now + 3600, OID, TID,
		 extra != NULL ? "," : "", extra != NULL ? extra : "");
	return sign(payload);
}

static enum entra_rbac_token_result check(const char *token, const struct entra_jwks *jwks,
					  struct entra_rbac_token_expect *e, char *reason)
{
	enum entra_jwt_status js;

	e->now = time(NULL);
	return entra_rbac_check_access_token_claims(token, jwks, e, &js, NULL, reason, 300);
}

static void test_token_mfa_acrs(void **state)
{
	struct entra_jwks jwks;
	struct entra_rbac_token_expect e = { TID, NULL, OID, true, NULL, 0, 120 };
	char reason[300];
	char *mfa = arm_token("\"amr\":[\"pwd\",\"mfa\"],\"acrs\":[\"c1\",\"c2\"]", NULL, NULL);
	char *pwd = arm_token("\"amr\":[\"pwd\"]", NULL, NULL);
	char *noamr = arm_token(NULL, NULL, NULL);
	char *amr_str = arm_token("\"amr\":\"mfa\"", NULL, NULL);
	struct json_object *claims = NULL;
	enum entra_jwt_status js;

	(void)state;
	jwks_with_issuer(&jwks, NULL);
	assert_int_equal(check(mfa, &jwks, &e, reason), ENTRA_RBAC_TOKEN_OK);
	assert_int_equal(check(pwd, &jwks, &e, reason), ENTRA_RBAC_TOKEN_NO_MFA);
	assert_non_null(strstr(reason, "multi-factor"));
	assert_int_equal(check(noamr, &jwks, &e, reason), ENTRA_RBAC_TOKEN_NO_MFA);
	assert_non_null(strstr(reason, "missing"));
	assert_int_equal(check(amr_str, &jwks, &e, reason), ENTRA_RBAC_TOKEN_NO_MFA);
	e.require_mfa = false;
	assert_int_equal(check(pwd, &jwks, &e, reason), ENTRA_RBAC_TOKEN_OK);
	/* authentication context */
	e.required_acrs = "c2";
	assert_int_equal(check(mfa, &jwks, &e, reason), ENTRA_RBAC_TOKEN_OK);
	assert_non_null(strstr(reason, "acrs c2"));
	e.required_acrs = "c3";
	assert_int_equal(check(mfa, &jwks, &e, reason), ENTRA_RBAC_TOKEN_NO_ACRS);
	assert_non_null(strstr(reason, "\"c3\""));
	assert_int_equal(check(pwd, &jwks, &e, reason), ENTRA_RBAC_TOKEN_NO_ACRS);
	e.required_acrs = "";
	assert_int_equal(check(pwd, &jwks, &e, reason), ENTRA_RBAC_TOKEN_OK);
	e.required_acrs = NULL;
	/* the person */
	e.oid = "22222222-aaaa-4bbb-8ccc-222222222222";
	assert_int_equal(check(mfa, &jwks, &e, reason), ENTRA_RBAC_TOKEN_OTHER_USER);
	e.oid = "11111111-AAAA-4BBB-8CCC-222222222222";
	e.now = time(NULL);
	assert_int_equal(entra_rbac_check_access_token_claims(mfa, &jwks, &e, &js, &claims, reason,
							      sizeof(reason)), ENTRA_RBAC_TOKEN_OK);
	assert_int_equal(js, ENTRA_JWT_OK);
	assert_non_null(claims);
	json_object_put(claims);
	entra_jwks_free(&jwks);
	free(mfa);
	free(pwd);
	free(noamr);
	free(amr_str);
}

static void test_token_validation(void **state)
{
	struct entra_jwks jwks, v2, other, ours;
	struct entra_rbac_token_expect e = { TID, NULL, NULL, false, NULL, 0, 120 };
	enum entra_jwt_status js;
	char reason[300];
	char *good = arm_token(NULL, NULL, NULL);
	char *v2iss = arm_token(NULL, "https://login.microsoftonline.com/" TID "/v2.0", NULL);
	char *other_tenant = arm_token(NULL, "https://sts.windows.net/00000000-1111-4222-8333-444444444444/", NULL);
	char *graph = arm_token(NULL, NULL, "https://graph.microsoft.com");
	char *core = arm_token(NULL, NULL, "https://management.core.windows.net/");
	char *expired;
	char *tampered;

	(void)state;
	{
		char payload[512];

		snprintf(payload, sizeof(payload),
			 "{\"aud\":\"https://management.azure.com/\",\"iss\":\"https://sts.windows.net/" TID "/\","
			 "\"iat\":1000,\"nbf\":1000,\"exp\":2000,\"oid\":\"" OID "\",\"tid\":\"" TID "\",\"amr\":[\"mfa\"]}");
		expired = sign(payload);
	}
	tampered = strdup(good);
	tampered[strlen(tampered) - 3] = tampered[strlen(tampered) - 3] == 'A' ? 'B' : 'A';
	jwks_with_issuer(&jwks, NULL);
	jwks_with_issuer(&v2, "https://login.microsoftonline.com/{tenantid}/v2.0");
	jwks_with_issuer(&ours, "https://127.0.0.1:8443/" TID "/v2.0");
	jwks_with_issuer(&other, "https://evil.example/issuer");

	assert_int_equal(check(good, &jwks, &e, reason), ENTRA_RBAC_TOKEN_OK);
	/* v2-form key issuers, as Entra publishes them, do not block v1 tokens */
	assert_int_equal(check(good, &v2, &e, reason), ENTRA_RBAC_TOKEN_OK);
	assert_int_equal(check(good, &ours, &e, reason), ENTRA_RBAC_TOKEN_OK);
	/* any other key issuer still applies */
	e.now = time(NULL);
	assert_int_equal(entra_rbac_check_access_token_claims(good, &other, &e, &js, NULL, reason,
							      sizeof(reason)), ENTRA_RBAC_TOKEN_INVALID);
	assert_int_equal(js, ENTRA_JWT_BAD_ISSUER);
	/* v2 issuer, other tenant, other audience, expired, bad signature */
	e.now = time(NULL);
	assert_int_equal(entra_rbac_check_access_token_claims(v2iss, &jwks, &e, &js, NULL, reason,
							      sizeof(reason)), ENTRA_RBAC_TOKEN_INVALID);
	assert_int_equal(js, ENTRA_JWT_BAD_ISSUER);
	assert_int_equal(entra_rbac_check_access_token_claims(other_tenant, &jwks, &e, &js, NULL, reason,
							      sizeof(reason)), ENTRA_RBAC_TOKEN_INVALID);
	assert_int_equal(js, ENTRA_JWT_BAD_ISSUER);
	assert_int_equal(entra_rbac_check_access_token_claims(graph, &jwks, &e, &js, NULL, reason,
							      sizeof(reason)), ENTRA_RBAC_TOKEN_INVALID);
	assert_int_equal(js, ENTRA_JWT_BAD_AUDIENCE);
	assert_non_null(strstr(reason, "ARM access token rejected"));
	assert_int_equal(entra_rbac_check_access_token_claims(core, &jwks, &e, &js, NULL, reason,
							      sizeof(reason)), ENTRA_RBAC_TOKEN_INVALID);
	e.audience = "https://management.core.windows.net/";
	assert_int_equal(check(core, &jwks, &e, reason), ENTRA_RBAC_TOKEN_OK);
	e.audience = NULL;
	e.now = time(NULL);
	assert_int_equal(entra_rbac_check_access_token_claims(expired, &jwks, &e, &js, NULL, reason,
							      sizeof(reason)), ENTRA_RBAC_TOKEN_INVALID);
	assert_int_equal(js, ENTRA_JWT_EXPIRED);
	assert_int_equal(entra_rbac_check_access_token_claims(tampered, &jwks, &e, &js, NULL, reason,
							      sizeof(reason)), ENTRA_RBAC_TOKEN_INVALID);
	assert_int_equal(js, ENTRA_JWT_BAD_SIGNATURE);
	/* arguments */
	e.tenant_id = "contoso.com";
	assert_int_equal(check(good, &jwks, &e, reason), ENTRA_RBAC_TOKEN_INVALID);
	e.tenant_id = TID;
	assert_int_equal(check(NULL, &jwks, &e, reason), ENTRA_RBAC_TOKEN_INVALID);
	assert_int_equal(check(good, NULL, &e, reason), ENTRA_RBAC_TOKEN_INVALID);
	entra_jwks_free(&jwks);
	entra_jwks_free(&v2);
	entra_jwks_free(&ours);
	entra_jwks_free(&other);
	free(good);
	free(v2iss);
	free(other_tenant);
	free(graph);
	free(core);
	free(expired);
	free(tampered);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_action_matches_table),
		cmocka_unit_test(test_action_check),
		cmocka_unit_test(test_builtin_roles),
		cmocka_unit_test(test_control_plane_actions),
		cmocka_unit_test(test_custom_roles),
		cmocka_unit_test(test_multiple_entries),
		cmocka_unit_test(test_decide_lists),
		cmocka_unit_test(test_parse_good),
		cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_parse_limits),
		cmocka_unit_test(test_scope_validation),
		cmocka_unit_test(test_next_link),
		cmocka_unit_test(test_claims_challenge),
		cmocka_unit_test(test_fetch_refuses_bad_requests),
		cmocka_unit_test(test_cache_binding),
		cmocka_unit_test_setup_teardown(test_cache_hit_and_expiry, cache_setup, cache_teardown),
		cmocka_unit_test_setup_teardown(test_cache_corrupt_and_perms, cache_setup, cache_teardown),
		cmocka_unit_test(test_token_mfa_acrs),
		cmocka_unit_test(test_token_validation),
	};

	return cmocka_run_group_tests(tests, keys_setup, keys_teardown);
}
