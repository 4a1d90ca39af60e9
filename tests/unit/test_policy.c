/* Policy: claims -> identity, account classification, mapping checks in
 * every mode, and every allow/deny/admin path. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

/* "config.h" alone would find the autoconf header in the build directory. */
#include "lib/config.h"
#include "lib/policy.h"

#define TENANT "72f988bf-86f1-41af-91ab-2d7cd011db47"
#define CLIENT "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
#define OID "11111111-2222-3333-4444-555555555555"
#define OID2 "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
#define G_LOGIN "0d0d0d0d-0000-0000-0000-000000000001"
#define G_ADMIN "0d0d0d0d-0000-0000-0000-000000000002"

static char tmpdir[64];
static char map_path[PATH_MAX];

static int setup_dir(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_policy.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	snprintf(map_path, sizeof(map_path), "%s/pam_entra.map", tmpdir);
	return 0;
}

static int teardown_dir(void **state)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void write_map(const char *text, mode_t mode)
{
	int fd;

	unlink(map_path);
	fd = open(map_path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void set(struct entra_config *cfg, const char *key, const char *value)
{
	char err[256] = "";

	if (entra_config_set(cfg, key, value, err, sizeof(err)) != 0)
		fail_msg("%s=%s: %s", key, value, err);
}

static struct entra_config *new_cfg(void)
{
	struct entra_config *cfg = entra_config_new();

	assert_non_null(cfg);
	set(cfg, "tenant", TENANT);
	set(cfg, "client_id", CLIENT);
	/* Root-owned test files only when running as root. */
	cfg->check_owner = geteuid() == 0;
	return cfg;
}

static struct json_object *parse(const char *json)
{
	struct json_object *o = json_tokener_parse(json);

	if (o == NULL)
		fail_msg("bad test JSON: %s", json);
	return o;
}

static int identity_from(const char *json, const struct entra_config *cfg,
			 struct entra_identity *id, char *reason, size_t len)
{
	struct json_object *claims = parse(json);
	int rc = entra_identity_from_claims(claims, cfg, id, reason, len);

	json_object_put(claims);
	return rc;
}

#define BASE "\"tid\":\"" TENANT "\",\"oid\":\"" OID "\",\"sub\":\"subject-1\"," \
	     "\"iss\":\"https://login.microsoftonline.com/" TENANT "/v2.0\""

static void test_identity_good(void **state)
{
	struct entra_config *cfg = new_cfg();
	struct entra_identity id;
	char reason[256] = "";

	assert_int_equal(identity_from("{" BASE ",\"preferred_username\":\"Alice@Contoso.com\","
				       "\"name\":\"Alice Liddell\",\"groups\":[\"" G_LOGIN "\"],"
				       "\"roles\":[\"Login\",\"Reader\"]}",
				       cfg, &id, reason, sizeof(reason)),
			 0);
	assert_string_equal(id.tenant_id, TENANT);
	assert_string_equal(id.object_id, OID);
	assert_string_equal(id.subject, "subject-1");
	assert_string_equal(id.username, "Alice@Contoso.com");
	assert_string_equal(id.display_name, "Alice Liddell");
	assert_non_null(strstr(id.issuer, TENANT));
	assert_int_equal(id.groups.count, 1);
	assert_string_equal(id.groups.items[0], G_LOGIN);
	assert_int_equal(id.roles.count, 2);
	assert_string_equal(id.roles.items[1], "Reader");
	assert_false(id.groups_overage);
	entra_identity_free(&id);
	entra_identity_free(&id); /* idempotent */

	/* No tid, iss, name, groups or roles: a plain OIDC provider. */
	assert_int_equal(identity_from("{\"oid\":\"x1\",\"sub\":\"s\",\"preferred_username\":\"bob\"}",
				       cfg, &id, reason, sizeof(reason)),
			 0);
	assert_null(id.tenant_id);
	assert_null(id.issuer);
	assert_null(id.display_name);
	assert_int_equal(id.groups.count, 0);
	entra_identity_free(&id);

	/* Configured claims. */
	set(cfg, "identity_claim", "sub");
	set(cfg, "username_claim", "upn");
	assert_int_equal(identity_from("{\"sub\":\"s-9\",\"upn\":\"carol@contoso.com\"}", cfg,
				       &id, reason, sizeof(reason)),
			 0);
	assert_string_equal(id.object_id, "s-9");
	assert_string_equal(id.username, "carol@contoso.com");
	entra_identity_free(&id);

	/* Overage markers. */
	set(cfg, "identity_claim", "oid");
	set(cfg, "username_claim", "preferred_username");
	assert_int_equal(identity_from("{" BASE ",\"preferred_username\":\"a@contoso.com\","
				       "\"_claim_names\":{\"groups\":\"src1\"},"
				       "\"_claim_sources\":{\"src1\":{\"endpoint\":\"https://graph\"}}}",
				       cfg, &id, reason, sizeof(reason)),
			 0);
	assert_true(id.groups_overage);
	entra_identity_free(&id);
	assert_int_equal(identity_from("{" BASE ",\"preferred_username\":\"a@contoso.com\","
				       "\"hasgroups\":true}",
				       cfg, &id, reason, sizeof(reason)),
			 0);
	assert_true(id.groups_overage);
	entra_identity_free(&id);
	assert_int_equal(identity_from("{" BASE ",\"preferred_username\":\"a@contoso.com\","
				       "\"_claim_names\":{\"other\":\"src1\"}}",
				       cfg, &id, reason, sizeof(reason)),
			 0);
	assert_false(id.groups_overage);
	entra_identity_free(&id);

	/* Unsafe display names are dropped, not fatal. */
	assert_int_equal(identity_from("{" BASE ",\"preferred_username\":\"a@contoso.com\","
				       "\"name\":\"Eve\\nroot ALL=(ALL)\"}",
				       cfg, &id, reason, sizeof(reason)),
			 0);
	assert_null(id.display_name);
	entra_identity_free(&id);
	assert_int_equal(identity_from("{" BASE ",\"preferred_username\":\"a@contoso.com\","
				       "\"name\":42}",
				       cfg, &id, reason, sizeof(reason)),
			 0);
	assert_null(id.display_name);
	entra_identity_free(&id);
	entra_config_free(cfg);
}

static void test_identity_refused(void **state)
{
	static const struct {
		const char *json, *expect;
	} cases[] = {
		{ "{\"sub\":\"s\",\"preferred_username\":\"a@contoso.com\"}",
		  "identity claim 'oid': missing" },
		{ "{\"oid\":42,\"sub\":\"s\",\"preferred_username\":\"a@contoso.com\"}",
		  "identity claim 'oid': not a string" },
		{ "{\"oid\":\"\",\"sub\":\"s\",\"preferred_username\":\"a@contoso.com\"}",
		  "identity claim 'oid'" },
		{ "{\"oid\":null,\"sub\":\"s\",\"preferred_username\":\"a@contoso.com\"}",
		  "identity claim 'oid': missing" },
		{ "{\"oid\":\"a\\nb\",\"sub\":\"s\",\"preferred_username\":\"a@contoso.com\"}",
		  "identity claim 'oid': not a safe string" },
		{ "{\"oid\":\"" OID "\",\"sub\":\"s\"}", "username claim 'preferred_username': missing" },
		{ "{\"oid\":\"" OID "\",\"sub\":\"s\",\"preferred_username\":[\"a\"]}",
		  "username claim 'preferred_username': not a string" },
		{ "{\"oid\":\"" OID "\",\"sub\":\"s\",\"preferred_username\":\"a\\nb@contoso.com\"}",
		  "username claim 'preferred_username'" },
		{ "{\"oid\":\"" OID "\",\"sub\":\"s\",\"preferred_username\":\"a\\u0000b@contoso.com\"}",
		  "username claim 'preferred_username'" },
		{ "{\"oid\":\"" OID "\",\"sub\":\"s\",\"preferred_username\":\"a;id@contoso.com\"}",
		  "username claim 'preferred_username': not a valid user name" },
		{ "{\"oid\":\"" OID "\",\"sub\":\"s\",\"preferred_username\":\"$(reboot)@contoso.com\"}",
		  "not a valid user name" },
		{ "{\"oid\":\"" OID "\",\"sub\":\"s\",\"preferred_username\":\"a b@contoso.com\"}",
		  "not a valid user name" },
		{ "{\"oid\":\"" OID "\",\"sub\":\"s\",\"preferred_username\":\"../../etc@contoso.com\"}",
		  "not a valid user name" },
		{ "{\"oid\":\"" OID "\",\"sub\":\"s\",\"preferred_username\":\"a/b@contoso.com\"}",
		  "not a valid user name" },
		{ "{\"oid\":\"" OID "\",\"sub\":\"s\",\"preferred_username\":\"a..b@contoso.com\"}",
		  "not a valid user name" },
		{ "{\"oid\":\"" OID "\",\"sub\":\"s\",\"preferred_username\":\"-oProxyCommand@x.com\"}",
		  "not a valid user name" },
		{ "{\"oid\":\"" OID "\",\"preferred_username\":\"a@contoso.com\"}",
		  "claim 'sub': missing" },
		{ "{\"oid\":\"" OID "\",\"sub\":1,\"preferred_username\":\"a@contoso.com\"}",
		  "claim 'sub': not a string" },
		{ "{\"oid\":\"" OID "\",\"sub\":\"s\",\"iss\":7,\"preferred_username\":\"a@contoso.com\"}",
		  "claim 'iss': not a string" },
		{ "{\"tid\":\"contoso\",\"oid\":\"" OID "\",\"sub\":\"s\",\"preferred_username\":\"a@contoso.com\"}",
		  "claim 'tid': not a tenant GUID" },
		{ "{\"tid\":\"" OID2 "\",\"oid\":\"" OID "\",\"sub\":\"s\",\"preferred_username\":\"a@contoso.com\"}",
		  "token is from tenant " OID2 ", not the configured " TENANT },
		{ "{\"oid\":\"" OID "\",\"sub\":\"s\",\"preferred_username\":\"a@contoso.com\",\"groups\":\"g\"}",
		  "claim 'groups': not an array of safe strings" },
		{ "{\"oid\":\"" OID "\",\"sub\":\"s\",\"preferred_username\":\"a@contoso.com\",\"groups\":[\"g\",1]}",
		  "claim 'groups': not an array of safe strings" },
		{ "{\"oid\":\"" OID "\",\"sub\":\"s\",\"preferred_username\":\"a@contoso.com\",\"groups\":[\"g\\r\"]}",
		  "claim 'groups'" },
		{ "{\"oid\":\"" OID "\",\"sub\":\"s\",\"preferred_username\":\"a@contoso.com\",\"roles\":[{}]}",
		  "claim 'roles': not an array of safe strings" },
		{ "{\"oid\":\"" OID "\",\"sub\":\"s\",\"preferred_username\":\"a@contoso.com\",\"roles\":[null]}",
		  "claim 'roles'" },
		{ "[1,2]", "token claims are not a JSON object" },
	};
	struct entra_config *cfg = new_cfg();

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct entra_identity id;
		char reason[256] = "";
		int rc = identity_from(cases[i].json, cfg, &id, reason, sizeof(reason));

		if (rc != -EINVAL || strstr(reason, cases[i].expect) == NULL)
			fail_msg("case %zu: rc %d reason '%s', wanted '%s'", i, rc, reason,
				 cases[i].expect);
		assert_null(id.object_id);
		assert_null(id.username);
		assert_int_equal(id.groups.count, 0);
	}

	/* Over-long values. */
	{
		char json[2048], big[400];
		struct entra_identity id;
		char reason[256];

		memset(big, 'a', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		snprintf(json, sizeof(json),
			 "{\"oid\":\"%.129s\",\"sub\":\"s\",\"preferred_username\":\"a@b.com\"}", big);
		assert_int_equal(identity_from(json, cfg, &id, reason, sizeof(reason)), -EINVAL);
		assert_non_null(strstr(reason, "identity claim 'oid'"));
		snprintf(json, sizeof(json),
			 "{\"oid\":\"%.128s\",\"sub\":\"s\",\"preferred_username\":\"a@b.com\"}", big);
		assert_int_equal(identity_from(json, cfg, &id, reason, sizeof(reason)), 0);
		entra_identity_free(&id);
		/* 256 bytes is the longest name accepted. */
		snprintf(json, sizeof(json),
			 "{\"oid\":\"o\",\"sub\":\"s\",\"preferred_username\":\"%.250s@b.com\"}", big);
		assert_int_equal(identity_from(json, cfg, &id, reason, sizeof(reason)), 0);
		entra_identity_free(&id);
		snprintf(json, sizeof(json),
			 "{\"oid\":\"o\",\"sub\":\"s\",\"preferred_username\":\"%.251s@b.com\"}", big);
		assert_int_equal(identity_from(json, cfg, &id, reason, sizeof(reason)), -EINVAL);
		assert_non_null(strstr(reason, "username claim"));
	}
	assert_int_equal(entra_identity_from_claims(NULL, cfg, &(struct entra_identity){ 0 }, NULL, 0),
			 -EINVAL);
	entra_config_free(cfg);
}

static void test_classify(void **state)
{
	static const char *const svc_groups[] = { "users", "svcgroup", NULL };
	static const char *const plain_groups[] = { "users", NULL };
	struct entra_config *cfg = new_cfg();

	set(cfg, "local_users", "ubuntu, breakglass@contoso.com");
	set(cfg, "service_accounts", "svc-train,@svcgroup");
	set(cfg, "service_uids", "5000-5999");

	/* Never ours. */
	assert_int_equal(entra_classify_account(cfg, "root", -1, NULL), ENTRA_ACCOUNT_NOT_OURS);
	assert_int_equal(entra_classify_account(cfg, "alice@contoso.com", 0, NULL),
			 ENTRA_ACCOUNT_NOT_OURS);
	assert_int_equal(entra_classify_account(cfg, "ubuntu", -1, NULL), ENTRA_ACCOUNT_NOT_OURS);
	assert_int_equal(entra_classify_account(cfg, "BreakGlass@contoso.com", -1, NULL),
			 ENTRA_ACCOUNT_NOT_OURS);
	assert_int_equal(entra_classify_account(cfg, "", -1, NULL), ENTRA_ACCOUNT_NOT_OURS);
	assert_int_equal(entra_classify_account(cfg, NULL, -1, NULL), ENTRA_ACCOUNT_NOT_OURS);
	assert_int_equal(entra_classify_account(cfg, "a/b@contoso.com", -1, NULL),
			 ENTRA_ACCOUNT_NOT_OURS);
	assert_int_equal(entra_classify_account(cfg, "a;b@contoso.com", -1, NULL),
			 ENTRA_ACCOUNT_NOT_OURS);
	assert_int_equal(entra_classify_account(cfg, "..@contoso.com", -1, NULL),
			 ENTRA_ACCOUNT_NOT_OURS);
	assert_int_equal(entra_classify_account(NULL, "alice@contoso.com", -1, NULL),
			 ENTRA_ACCOUNT_NOT_OURS);

	/* Service accounts: by name, by group, by uid. */
	assert_int_equal(entra_classify_account(cfg, "svc-train", 1001, NULL),
			 ENTRA_ACCOUNT_SERVICE);
	assert_int_equal(entra_classify_account(cfg, "SVC-train", 1001, NULL),
			 ENTRA_ACCOUNT_NOT_OURS);
	assert_int_equal(entra_classify_account(cfg, "jobs", 1002, svc_groups),
			 ENTRA_ACCOUNT_SERVICE);
	assert_int_equal(entra_classify_account(cfg, "jobs", 1002, plain_groups),
			 ENTRA_ACCOUNT_NOT_OURS);
	assert_int_equal(entra_classify_account(cfg, "svcgroup", 1002, NULL),
			 ENTRA_ACCOUNT_NOT_OURS); /* "@svcgroup" is a group, not a user */
	assert_int_equal(entra_classify_account(cfg, "batch", 5000, NULL), ENTRA_ACCOUNT_SERVICE);
	assert_int_equal(entra_classify_account(cfg, "batch", 5999, NULL), ENTRA_ACCOUNT_SERVICE);
	assert_int_equal(entra_classify_account(cfg, "batch", 6000, NULL), ENTRA_ACCOUNT_NOT_OURS);
	assert_int_equal(entra_classify_account(cfg, "root", 5000, NULL), ENTRA_ACCOUNT_NOT_OURS);

	/* upn mode, no domain restriction. */
	assert_int_equal(entra_classify_account(cfg, "alice@contoso.com", -1, NULL),
			 ENTRA_ACCOUNT_ENTRA);
	assert_int_equal(entra_classify_account(cfg, "alice@contoso.com", (long)(uid_t)-1, NULL),
			 ENTRA_ACCOUNT_ENTRA);
	assert_int_equal(entra_classify_account(cfg, "alice@contoso.com", 1900000123, NULL),
			 ENTRA_ACCOUNT_ENTRA);
	/* An existing local account outside the Entra uid range. */
	assert_int_equal(entra_classify_account(cfg, "alice@contoso.com", 1000, NULL),
			 ENTRA_ACCOUNT_NOT_OURS);
	assert_int_equal(entra_classify_account(cfg, "alice", -1, NULL), ENTRA_ACCOUNT_NOT_OURS);
	assert_int_equal(entra_classify_account(cfg, "a@b@contoso.com", -1, NULL),
			 ENTRA_ACCOUNT_NOT_OURS);
	assert_int_equal(entra_classify_account(cfg, "alice@", -1, NULL), ENTRA_ACCOUNT_NOT_OURS);
	assert_int_equal(entra_classify_account(cfg, "@contoso.com", -1, NULL),
			 ENTRA_ACCOUNT_NOT_OURS);
	set(cfg, "allowed_domains", "contoso.com fabrikam.com");
	assert_int_equal(entra_classify_account(cfg, "alice@CONTOSO.com", -1, NULL),
			 ENTRA_ACCOUNT_ENTRA);
	assert_int_equal(entra_classify_account(cfg, "alice@fabrikam.com", -1, NULL),
			 ENTRA_ACCOUNT_ENTRA);
	assert_int_equal(entra_classify_account(cfg, "alice@evil.com", -1, NULL),
			 ENTRA_ACCOUNT_NOT_OURS);

	/* localpart mode. */
	set(cfg, "user_mapping", "localpart");
	assert_int_equal(entra_classify_account(cfg, "alice", -1, NULL), ENTRA_ACCOUNT_ENTRA);
	assert_int_equal(entra_classify_account(cfg, "alice", 1900000001, NULL),
			 ENTRA_ACCOUNT_ENTRA);
	assert_int_equal(entra_classify_account(cfg, "sshd", 105, NULL), ENTRA_ACCOUNT_NOT_OURS);
	assert_int_equal(entra_classify_account(cfg, "alice@contoso.com", -1, NULL),
			 ENTRA_ACCOUNT_NOT_OURS);
	assert_int_equal(entra_classify_account(cfg, "ubuntu", -1, NULL), ENTRA_ACCOUNT_NOT_OURS);
	set(cfg, "allowed_domains", "");
	assert_int_equal(entra_classify_account(cfg, "alice", -1, NULL), ENTRA_ACCOUNT_NOT_OURS);

	/* file mode. */
	set(cfg, "user_mapping", "file");
	set(cfg, "map_file", map_path);
	write_map("# local  entra\n"
		  "alice   alice@contoso.com\n"
		  "\n"
		  "  bob\t" OID2 "   # by object id\n",
		  0644);
	assert_int_equal(entra_classify_account(cfg, "alice", -1, NULL), ENTRA_ACCOUNT_ENTRA);
	assert_int_equal(entra_classify_account(cfg, "bob", -1, NULL), ENTRA_ACCOUNT_ENTRA);
	assert_int_equal(entra_classify_account(cfg, "carol", -1, NULL), ENTRA_ACCOUNT_NOT_OURS);
	assert_int_equal(entra_classify_account(cfg, "Alice", -1, NULL), ENTRA_ACCOUNT_NOT_OURS);
	assert_int_equal(entra_classify_account(cfg, "svc-train", -1, NULL),
			 ENTRA_ACCOUNT_SERVICE);
	/* A malformed map refuses everyone. */
	write_map("alice alice@contoso.com\nbob\n", 0644);
	assert_int_equal(entra_classify_account(cfg, "alice", -1, NULL), ENTRA_ACCOUNT_NOT_OURS);
	write_map("alice alice@contoso.com extra\n", 0644);
	assert_int_equal(entra_classify_account(cfg, "alice", -1, NULL), ENTRA_ACCOUNT_NOT_OURS);
	write_map("alice not-a-upn\n", 0644);
	assert_int_equal(entra_classify_account(cfg, "alice", -1, NULL), ENTRA_ACCOUNT_NOT_OURS);
	write_map("al/ice alice@contoso.com\n", 0644);
	assert_int_equal(entra_classify_account(cfg, "alice", -1, NULL), ENTRA_ACCOUNT_NOT_OURS);
	unlink(map_path);
	assert_int_equal(entra_classify_account(cfg, "alice", -1, NULL), ENTRA_ACCOUNT_NOT_OURS);
	entra_config_free(cfg);
}

static void test_map_file_permissions(void **state)
{
	struct entra_config *cfg;
	char reason[256];
	struct entra_identity id = { 0 };
	char link[PATH_MAX];

	if (geteuid() != 0) {
		print_message("# skipped: needs root to chown files to another user\n");
		skip();
		return;
	}
	cfg = new_cfg();
	assert_true(cfg->check_owner);
	set(cfg, "user_mapping", "file");
	set(cfg, "map_file", map_path);
	id.username = (char *)"alice@contoso.com";
	id.object_id = (char *)OID;

	write_map("alice alice@contoso.com\n", 0644);
	assert_int_equal(entra_classify_account(cfg, "alice", -1, NULL), ENTRA_ACCOUNT_ENTRA);
	assert_true(entra_identity_matches_account(cfg, &id, "alice", reason, sizeof(reason)));

	assert_int_equal(chmod(map_path, 0666), 0);
	assert_int_equal(entra_classify_account(cfg, "alice", -1, NULL), ENTRA_ACCOUNT_NOT_OURS);
	assert_false(entra_identity_matches_account(cfg, &id, "alice", reason, sizeof(reason)));
	assert_non_null(strstr(reason, "unusable"));
	assert_int_equal(chmod(map_path, 0620), 0);
	assert_int_equal(entra_classify_account(cfg, "alice", -1, NULL), ENTRA_ACCOUNT_NOT_OURS);
	assert_int_equal(chmod(map_path, 0644), 0);
	assert_int_equal(chown(map_path, 65534, 65534), 0);
	assert_int_equal(entra_classify_account(cfg, "alice", -1, NULL), ENTRA_ACCOUNT_NOT_OURS);
	assert_null(entra_expected_upn(cfg, "alice"));
	/* Loaded without owner checks (entractl check of a draft): accepted. */
	cfg->check_owner = false;
	assert_int_equal(entra_classify_account(cfg, "alice", -1, NULL), ENTRA_ACCOUNT_ENTRA);
	cfg->check_owner = true;
	assert_int_equal(chown(map_path, 0, 0), 0);

	snprintf(link, sizeof(link), "%s/link.map", tmpdir);
	assert_int_equal(symlink(map_path, link), 0);
	set(cfg, "map_file", link);
	assert_int_equal(entra_classify_account(cfg, "alice", -1, NULL), ENTRA_ACCOUNT_NOT_OURS);
	unlink(link);
	entra_config_free(cfg);
}

static void test_expected_upn(void **state)
{
	struct entra_config *cfg = new_cfg();
	char *upn;

	upn = entra_expected_upn(cfg, "alice@contoso.com");
	assert_string_equal(upn, "alice@contoso.com");
	free(upn);
	assert_null(entra_expected_upn(cfg, "alice"));
	assert_null(entra_expected_upn(cfg, "bad/x@contoso.com"));
	set(cfg, "allowed_domains", "contoso.com");
	assert_null(entra_expected_upn(cfg, "alice@evil.com"));

	set(cfg, "user_mapping", "localpart");
	set(cfg, "allowed_domains", "contoso.com,fabrikam.com");
	upn = entra_expected_upn(cfg, "alice");
	assert_string_equal(upn, "alice@contoso.com");
	free(upn);
	assert_null(entra_expected_upn(cfg, "alice@contoso.com"));

	set(cfg, "user_mapping", "file");
	set(cfg, "map_file", map_path);
	write_map("bob " OID2 "\nbob bob@contoso.com\ndave " OID "\n", 0644);
	upn = entra_expected_upn(cfg, "bob");
	assert_string_equal(upn, "bob@contoso.com");
	free(upn);
	upn = entra_expected_upn(cfg, "dave");
	assert_string_equal(upn, OID);
	free(upn);
	assert_null(entra_expected_upn(cfg, "carol"));
	assert_null(entra_expected_upn(NULL, "carol"));
	entra_config_free(cfg);
}

static void test_matches_account(void **state)
{
	struct entra_config *cfg = new_cfg();
	struct entra_identity id = { 0 };
	char reason[256];

	id.username = (char *)"Alice@Contoso.com";
	id.object_id = (char *)OID;

	/* upn */
	assert_true(entra_identity_matches_account(cfg, &id, "alice@contoso.com", reason,
						   sizeof(reason)));
	assert_true(entra_identity_matches_account(cfg, &id, "ALICE@CONTOSO.COM", reason,
						   sizeof(reason)));
	assert_false(entra_identity_matches_account(cfg, &id, "bob@contoso.com", reason,
						    sizeof(reason)));
	assert_string_equal(reason, "token is for Alice@Contoso.com, not for account bob@contoso.com");
	assert_false(entra_identity_matches_account(cfg, &id, "alice", reason, sizeof(reason)));
	set(cfg, "allowed_domains", "fabrikam.com");
	assert_false(entra_identity_matches_account(cfg, &id, "alice@contoso.com", reason,
						    sizeof(reason)));
	assert_non_null(strstr(reason, "not in allowed_domains"));

	/* localpart */
	set(cfg, "user_mapping", "localpart");
	set(cfg, "allowed_domains", "fabrikam.com, contoso.com");
	assert_true(entra_identity_matches_account(cfg, &id, "alice", reason, sizeof(reason)));
	assert_true(entra_identity_matches_account(cfg, &id, "ALICE", reason, sizeof(reason)));
	assert_false(entra_identity_matches_account(cfg, &id, "alic", reason, sizeof(reason)));
	assert_string_equal(reason, "token is for Alice@Contoso.com, not for account alic");
	assert_false(entra_identity_matches_account(cfg, &id, "alicex", reason, sizeof(reason)));
	assert_false(entra_identity_matches_account(cfg, &id, "bob", reason, sizeof(reason)));
	set(cfg, "allowed_domains", "fabrikam.com");
	assert_false(entra_identity_matches_account(cfg, &id, "alice", reason, sizeof(reason)));
	assert_non_null(strstr(reason, "whose domain is not in allowed_domains"));
	id.username = (char *)"alice";
	assert_false(entra_identity_matches_account(cfg, &id, "alice", reason, sizeof(reason)));
	id.username = (char *)"Alice@Contoso.com";

	/* file */
	set(cfg, "user_mapping", "file");
	set(cfg, "map_file", map_path);
	write_map("alice alice@CONTOSO.com\n"
		  "shared " OID "\n"
		  "shared " OID2 "\n"
		  "bob bob@contoso.com\n",
		  0644);
	assert_true(entra_identity_matches_account(cfg, &id, "alice", reason, sizeof(reason)));
	assert_string_equal(reason, "map file maps alice to alice@CONTOSO.com");
	assert_true(entra_identity_matches_account(cfg, &id, "shared", reason, sizeof(reason)));
	assert_false(entra_identity_matches_account(cfg, &id, "bob", reason, sizeof(reason)));
	assert_non_null(strstr(reason, "which the map file does not map to account bob"));
	assert_false(entra_identity_matches_account(cfg, &id, "carol", reason, sizeof(reason)));
	assert_string_equal(reason, "account carol is not in the map file");
	assert_false(entra_identity_matches_account(cfg, &id, "Alice", reason, sizeof(reason)));
	id.object_id = (char *)"AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE";
	id.username = (char *)"zed@contoso.com";
	assert_true(entra_identity_matches_account(cfg, &id, "shared", reason, sizeof(reason)));
	/* An object id never matches a UPN entry and vice versa. */
	id.username = (char *)"bob@contoso.com";
	id.object_id = (char *)"ffffffff-ffff-ffff-ffff-ffffffffffff";
	assert_false(entra_identity_matches_account(cfg, &id, "shared", reason, sizeof(reason)));
	unlink(map_path);
	assert_false(entra_identity_matches_account(cfg, &id, "bob", reason, sizeof(reason)));
	assert_non_null(strstr(reason, "unusable"));
	assert_false(entra_identity_matches_account(cfg, NULL, "bob", reason, sizeof(reason)));
	entra_config_free(cfg);
}

/* Random claim sets: 0 only with every kept value safe, else -EINVAL;
 * nothing leaks either way (run under ASan). */
static struct json_object *random_value(unsigned int *seed)
{
	static const char *const strings[] = {
		"alice@contoso.com", OID, TENANT, "", "a\nb", "a;b", "../x", "Admin",
		"x@y@z", "-o", "ok", "\x7f",
	};
	struct json_object *arr;

	switch (rand_r(seed) % 6) {
	case 0:
		return NULL;
	case 1:
		return json_object_new_int(rand_r(seed) % 3);
	case 2:
	case 3:
		return json_object_new_string(strings[rand_r(seed) % 12]);
	case 4:
		arr = json_object_new_array();
		for (int i = rand_r(seed) % 4; i > 0; i--) {
			struct json_object *v = rand_r(seed) % 5
				? json_object_new_string(strings[rand_r(seed) % 12])
				: json_object_new_boolean(1);
			json_object_array_add(arr, v);
		}
		return arr;
	default:
		return json_object_new_object();
	}
}

static struct json_object *good_value(const char *name)
{
	if (strcmp(name, "tid") == 0)
		return json_object_new_string(TENANT);
	if (strcmp(name, "oid") == 0)
		return json_object_new_string(OID);
	if (strcmp(name, "preferred_username") == 0)
		return json_object_new_string("a@contoso.com");
	if (strcmp(name, "groups") == 0 || strcmp(name, "roles") == 0)
		return json_object_new_array();
	if (strcmp(name, "hasgroups") == 0)
		return json_object_new_boolean(0);
	if (strcmp(name, "_claim_names") == 0)
		return json_object_new_object();
	return json_object_new_string("s");
}

static void test_identity_random(void **state)
{
	static const char *const names[] = {
		"tid", "oid", "sub", "iss", "preferred_username", "name", "groups", "roles",
		"_claim_names", "hasgroups",
	};
	struct entra_config *cfg = new_cfg();
	unsigned int seed = 4242;
	int ok = 0, refused = 0;

	for (int round = 0; round < 5000; round++) {
		struct json_object *claims = json_object_new_object();
		struct entra_identity id;
		char reason[256] = "";
		int rc;

		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
			/* Mostly good values, so that both outcomes occur. */
			struct json_object *v;

			if (rand_r(&seed) % 4 != 0)
				v = good_value(names[i]);
			else
				v = random_value(&seed);
			if (v != NULL)
				json_object_object_add(claims, names[i], v);
		}
		rc = entra_identity_from_claims(claims, cfg, &id, reason, sizeof(reason));
		json_object_put(claims);
		if (rc == 0) {
			ok++;
			assert_non_null(id.object_id);
			assert_non_null(id.subject);
			assert_non_null(id.username);
			for (size_t i = 0; i < id.groups.count; i++)
				assert_non_null(id.groups.items[i]);
			entra_identity_free(&id);
		} else {
			assert_int_equal(rc, -EINVAL);
			assert_true(reason[0] != '\0');
			refused++;
		}
	}
	assert_true(ok > 50);
	assert_true(refused > 50);
	entra_config_free(cfg);
}

static void authorize(const struct entra_config *cfg, const struct entra_identity *id,
		      bool allowed, bool admin, const char *reason)
{
	struct entra_decision d;

	memset(&d, 0x55, sizeof(d));
	entra_authorize(cfg, id, &d);
	if (d.allowed != allowed || d.admin != admin || strstr(d.reason, reason) == NULL)
		fail_msg("allowed=%d admin=%d reason '%s', wanted %d %d '%s'", d.allowed, d.admin,
			 d.reason, allowed, admin, reason);
}

static void test_authorize(void **state)
{
	static char *groups_login[] = { (char *)G_LOGIN };
	static char *groups_admin[] = { (char *)G_ADMIN };
	static char *roles_login[] = { (char *)"Login" };
	static char *roles_admin[] = { (char *)"Admin" };
	struct entra_config *cfg = new_cfg();
	struct entra_identity id = { 0 };

	id.username = (char *)"alice@contoso.com";
	id.object_id = (char *)OID;

	/* No lists: everyone of the tenant. */
	authorize(cfg, &id, true, false, "allowed: no allow list configured");

	/* allow_users by UPN (case-insensitive) and by object id. */
	set(cfg, "allow_users", "bob@contoso.com ALICE@contoso.com");
	authorize(cfg, &id, true, false, "allowed: alice@contoso.com in allow_users");
	set(cfg, "allow_users", OID);
	authorize(cfg, &id, true, false, "allowed: object id " OID " in allow_users");
	set(cfg, "allow_users", "bob@contoso.com");
	authorize(cfg, &id, false, false, "denied: alice@contoso.com (object id " OID
		  ", 0 roles, 0 groups) matches none of allow_users");

	/* allow_roles */
	set(cfg, "allow_users", "");
	set(cfg, "allow_roles", "Login");
	authorize(cfg, &id, false, false, "matches none of allow_roles");
	id.roles.items = roles_login;
	id.roles.count = 1;
	authorize(cfg, &id, true, false, "allowed: role 'Login' in allow_roles");

	/* allow_groups, with roles not matching */
	set(cfg, "allow_roles", "Other");
	set(cfg, "allow_groups", G_LOGIN);
	authorize(cfg, &id, false, false, "matches none of allow_roles allow_groups");
	id.groups.items = groups_login;
	id.groups.count = 1;
	authorize(cfg, &id, true, false, "allowed: group " G_LOGIN " in allow_groups");

	/* Overage with allow_groups: denied with advice. */
	id.groups.count = 0;
	id.groups_overage = true;
	authorize(cfg, &id, false, false, "denied: groups overage: token lists no groups");
	/* ... but a role still lets them in. */
	set(cfg, "allow_roles", "Login");
	authorize(cfg, &id, true, false, "allowed: role 'Login' in allow_roles");
	id.groups_overage = false;

	/* Admin by role and by group; admin lists also allow. */
	set(cfg, "allow_roles", "");
	set(cfg, "allow_groups", "");
	set(cfg, "admin_roles", "Admin");
	authorize(cfg, &id, true, false, "allowed: no allow list configured");
	id.roles.items = roles_admin;
	authorize(cfg, &id, true, true, "allowed: role 'Admin' in admin_roles");
	{
		struct entra_decision d;

		entra_authorize(cfg, &id, &d);
		assert_string_equal(d.reason, "allowed: role 'Admin' in admin_roles");
	}
	set(cfg, "allow_groups", G_LOGIN);
	authorize(cfg, &id, true, true, "allowed: role 'Admin' in admin_roles");
	id.roles.items = roles_login;
	id.roles.count = 1;
	set(cfg, "allow_roles", "Login");
	set(cfg, "admin_groups", G_ADMIN);
	id.groups.items = groups_admin;
	id.groups.count = 1;
	{
		struct entra_decision d;

		entra_authorize(cfg, &id, &d);
		assert_true(d.allowed && d.admin);
		assert_string_equal(d.reason, "allowed: role 'Login' in allow_roles; admin: group "
				    G_ADMIN " in admin_groups");
	}
	set(cfg, "allow_roles", "");
	set(cfg, "admin_groups", "");
	id.groups.count = 0;
	id.roles.items = roles_admin;
	id.roles.count = 0;
	set(cfg, "admin_roles", "");
	set(cfg, "admin_groups", G_ADMIN);
	id.groups.items = groups_admin;
	id.groups.count = 1;
	authorize(cfg, &id, true, true, "allowed: group " G_ADMIN " in admin_groups");
	id.groups.items = groups_login;
	authorize(cfg, &id, true, false, "allowed: group " G_LOGIN " in allow_groups");

	/* Overage with admin_groups only: allowed, not admin, said so. */
	set(cfg, "allow_groups", "");
	id.groups.count = 0;
	id.groups_overage = true;
	authorize(cfg, &id, true, false, "not admin: groups overage");
	/* Overage with admin_groups and allow_groups: denied. */
	set(cfg, "allow_groups", G_LOGIN);
	authorize(cfg, &id, false, false, "groups overage");
	id.groups_overage = false;

	/* Empty lists after a replacement behave as unset. */
	set(cfg, "allow_groups", "");
	set(cfg, "admin_groups", "");
	authorize(cfg, &id, true, false, "allowed: no allow list configured");

	/* No identity. */
	authorize(cfg, NULL, false, false, "denied: no identity");
	id.object_id = NULL;
	authorize(cfg, &id, false, false, "denied: no identity");
	entra_authorize(cfg, &id, NULL);
	entra_config_free(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_identity_good),
		cmocka_unit_test(test_identity_refused),
		cmocka_unit_test(test_identity_random),
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_map_file_permissions),
		cmocka_unit_test(test_expected_upn),
		cmocka_unit_test(test_matches_account),
		cmocka_unit_test(test_authorize),
	};

	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
