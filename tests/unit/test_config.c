/* Config parser: key types and bounds, module arguments, the file format,
 * file permission checks, and every cross-key validation rule. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

/* "config.h" alone would find the autoconf header in the build directory. */
#include "lib/config.h"

#define TENANT "72f988bf-86f1-41af-91ab-2d7cd011db47"
#define CLIENT "04b07795-8ddb-461a-bbee-02f9e1bf7b46"

static char tmpdir[64];

static int setup_dir(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_config.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	/* nobody must be able to reach files in here for the owner tests. */
	chmod(tmpdir, 0755);
	return 0;
}

static int teardown_dir(void **state)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static const char *write_file(const char *name, const void *data, size_t len, mode_t mode)
{
	static char path[PATH_MAX];
	int fd;

	assert_true(snprintf(path, sizeof(path), "%s/%s", tmpdir, name) < (int)sizeof(path));
	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
	return path;
}

static const char *write_conf(const char *text)
{
	return write_file("pam_entra.conf", text, strlen(text), 0644);
}

/* Owner checks need root-owned files, which only root can make. */
static bool strict(void)
{
	return geteuid() == 0;
}

static struct entra_config *valid_cfg(void)
{
	struct entra_config *cfg = entra_config_new();
	char err[256];

	assert_non_null(cfg);
	assert_int_equal(entra_config_set(cfg, "tenant", TENANT, err, sizeof(err)), 0);
	assert_int_equal(entra_config_set(cfg, "client_id", CLIENT, err, sizeof(err)), 0);
	assert_int_equal(entra_config_validate(cfg, err, sizeof(err)), 0);
	return cfg;
}

static void set_ok(struct entra_config *cfg, const char *key, const char *value)
{
	char err[256] = "";
	int rc = entra_config_set(cfg, key, value, err, sizeof(err));

	if (rc != 0)
		fail_msg("%s=%s: %s", key, value, err);
}

static void set_fails(struct entra_config *cfg, const char *key, const char *value,
		      const char *expect)
{
	char err[256] = "";

	assert_int_equal(entra_config_set(cfg, key, value, err, sizeof(err)), -EINVAL);
	if (strstr(err, expect) == NULL)
		fail_msg("%s=%s: '%s' lacks '%s'", key, value, err, expect);
}

static void test_defaults(void **state)
{
	struct entra_config *cfg = entra_config_new();
	char err[256];

	assert_non_null(cfg);
	assert_string_equal(cfg->authority, "https://login.microsoftonline.com");
	assert_string_equal(cfg->resource, "https://management.azure.com/.default");
	assert_string_equal(cfg->identity_claim, "oid");
	assert_string_equal(cfg->username_claim, "preferred_username");
	assert_int_equal(cfg->http_timeout, 10);
	assert_int_equal(cfg->login_timeout, 100);
	assert_int_equal(cfg->clock_skew, 120);
	assert_int_equal(cfg->user_mapping, ENTRA_MAP_UPN);
	assert_int_equal(cfg->uid_min, 1900000000UL);
	assert_int_equal(cfg->uid_max, 1999999999UL);
	assert_int_equal(cfg->admin_gid, 1899999999UL);
	assert_string_equal(cfg->admin_group, "entra-admins");
	assert_string_equal(cfg->home_template, "/home/%u");
	assert_string_equal(cfg->shell, "/bin/bash");
	assert_true(cfg->create_home);
	assert_true(cfg->qr_code);
	assert_false(cfg->export_token);
	assert_false(cfg->debug);
	assert_true(cfg->check_owner);
	assert_int_equal(cfg->msi_source, ENTRA_MSI_AUTO);
	assert_string_equal(cfg->imds_endpoint, "http://169.254.169.254");
	assert_null(cfg->tenant);
	assert_null(cfg->ca_file);
	assert_int_equal(cfg->service_uid_max, 0);
	assert_int_equal(entra_config_validate(cfg, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "tenant: required"));
	/* entra_config_new copies its defaults without the setter: each one
	 * must be a value the setter accepts. */
	{
		const struct {
			const char *key, *value;
		} d[] = {
			{ "authority", cfg->authority }, { "resource", cfg->resource },
			{ "identity_claim", cfg->identity_claim }, { "username_claim", cfg->username_claim },
			{ "cache_dir", cfg->cache_dir }, { "run_dir", cfg->run_dir }, { "db_dir", cfg->db_dir },
			{ "admin_group", cfg->admin_group }, { "home_template", cfg->home_template },
			{ "shell", cfg->shell }, { "imds_endpoint", cfg->imds_endpoint },
			{ "tokend_socket", cfg->tokend_socket }, { "arm_url", cfg->arm_url },
			{ "arm_audience", cfg->arm_audience },
			{ "rbac_login_actions", cfg->rbac_login_actions.items[0] },
			{ "rbac_admin_actions", cfg->rbac_admin_actions.items[0] },
		};
		struct entra_config *fresh = entra_config_new();

		assert_non_null(fresh);
		assert_int_equal(cfg->rbac_login_actions.count, 1);
		assert_int_equal(cfg->rbac_admin_actions.count, 1);
		for (size_t i = 0; i < sizeof(d) / sizeof(d[0]); i++) {
			assert_non_null(d[i].value);
			assert_int_equal(entra_config_set(fresh, d[i].key, d[i].value, err, sizeof(err)), 0);
		}
		entra_config_free(fresh);
	}
	entra_config_free(cfg);
	entra_config_free(NULL);
}

/* One valid value for every key: every field of struct entra_config that
 * is a key. */
static const struct {
const char *key, *value;
} all[] = {
	{ "tenant", TENANT }, { "client_id", CLIENT },
	{ "authority", "https://login.example.net" }, { "ca_file", "/etc/ssl/ca.pem" },
	{ "resource", "https://management.azure.com/.default" }, { "identity_claim", "oid" },
	{ "username_claim", "upn" }, { "http_timeout", "5" }, { "login_timeout", "60" },
	{ "clock_skew", "30" }, { "subscription_id", TENANT }, { "resource_group", "rg" },
	{ "workspace_name", "ws1" }, { "user_mapping", "localpart" },
	{ "allowed_domains", "contoso.com" }, { "map_file", "/etc/map" },
	{ "local_users", "ubuntu" }, { "allow_users", "a@contoso.com" },
	{ "allow_groups", TENANT }, { "allow_roles", "Login" }, { "admin_groups", TENANT },
	{ "admin_roles", "Admin" }, { "cache_dir", "/c" }, { "run_dir", "/r" },
	{ "db_dir", "/d" }, { "uid_min", "70000" }, { "uid_max", "80000" },
	{ "admin_group", "wheel2" }, { "admin_gid", "69999" }, { "home_template", "/h/%u" },
	{ "shell", "/bin/sh" }, { "create_home", "no" }, { "msi_source", "imds" },
	{ "imds_endpoint", "http://127.0.0.1:8080" }, { "service_accounts", "svc" },
	{ "service_uids", "5000-5999" }, { "service_resource", "https://storage.azure.com/" },
	{ "service_client_id", CLIENT }, { "service_identities", "svc:" CLIENT }, { "service_token_required", "yes" }, { "https_proxy", "http://proxy.example:3128" },
	{ "tokend_port", "40999" }, { "tokend_socket", "/run/t.sock" },
	{ "arm_url", "https://management.azure.com" }, { "arm_audience", "https://management.azure.com/" },
	{ "rbac_scope", "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg" },
	{ "rbac_login_actions", "Microsoft.Compute/virtualMachines/login/action" },
	{ "rbac_admin_actions", "Microsoft.Compute/virtualMachines/loginAsAdmin/action" },
	{ "rbac_cache_ttl", "60" }, { "require_mfa", "yes" }, { "auth_context", "sudo:c2" },
	{ "client_capabilities", "cp1" }, { "sudo_reuse_window", "300" },
	{ "export_token", "yes" }, { "qr_code", "off" }, { "debug", "on" },
};

#define NALL (sizeof(all) / sizeof(all[0]))

/* Every field of struct entra_config that is a key has a table row. */
static void test_every_key_has_a_row(void **state)
{
	struct entra_config *cfg = entra_config_new();
	char err[256];

	for (size_t i = 0; i < NALL; i++)
		set_ok(cfg, all[i].key, all[i].value);
	if (entra_config_validate(cfg, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_int_equal(cfg->user_mapping, ENTRA_MAP_LOCALPART);
	assert_int_equal(cfg->msi_source, ENTRA_MSI_IMDS);
	assert_int_equal(cfg->service_uid_min, 5000);
	assert_int_equal(cfg->service_uid_max, 5999);
	assert_int_equal(cfg->uid_min, 70000);
	assert_int_equal(cfg->http_timeout, 5);
	assert_false(cfg->create_home);
	assert_false(cfg->qr_code);
	assert_true(cfg->export_token);
	assert_true(cfg->debug);
	assert_string_equal(cfg->service_identities.items[0], "svc:" CLIENT);
	entra_config_free(cfg);
}

static void test_types_and_bounds(void **state)
{
	static const char *const yes[] = { "yes", "YES", "true", "on", "1" };
	static const char *const no[] = { "no", "False", "off", "0" };
	struct entra_config *cfg = entra_config_new();

	for (size_t i = 0; i < 5; i++) {
		cfg->debug = false;
		set_ok(cfg, "debug", yes[i]);
		assert_true(cfg->debug);
	}
	for (size_t i = 0; i < 4; i++) {
		cfg->debug = true;
		set_ok(cfg, "debug", no[i]);
		assert_false(cfg->debug);
	}
	set_fails(cfg, "debug", "maybe", "debug: expected yes or no");
	set_fails(cfg, "debug", "", "expected yes or no");

	set_ok(cfg, "login_timeout", "10");
	set_ok(cfg, "login_timeout", "3600");
	assert_int_equal(cfg->login_timeout, 3600);
	set_fails(cfg, "login_timeout", "9", "login_timeout: expected a number from 10 to 3600");
	set_fails(cfg, "login_timeout", "3601", "from 10 to 3600");
	set_fails(cfg, "login_timeout", "-5", "from 10 to 3600");
	set_fails(cfg, "login_timeout", "+50", "from 10 to 3600");
	set_fails(cfg, "login_timeout", "50s", "from 10 to 3600");
	set_fails(cfg, "login_timeout", "0x20", "from 10 to 3600");
	set_fails(cfg, "login_timeout", "99999999999999999999999", "from 10 to 3600");
	assert_int_equal(cfg->login_timeout, 3600); /* unchanged by failures */
	set_fails(cfg, "http_timeout", "0", "from 1 to 120");
	set_fails(cfg, "http_timeout", "121", "from 1 to 120");
	set_ok(cfg, "clock_skew", "0");
	set_fails(cfg, "clock_skew", "121", "from 0 to 120");

	set_fails(cfg, "uid_min", "65535", "uid_min: expected a number from 65536 to 4294967294");
	set_fails(cfg, "uid_max", "4294967295", "to 4294967294");
	set_ok(cfg, "uid_max", "4294967294");
	assert_int_equal(cfg->uid_max, 4294967294UL);
	set_fails(cfg, "admin_gid", "0", "from 1 to");

	set_ok(cfg, "service_uids", "1000-1999");
	assert_int_equal(cfg->service_uid_min, 1000);
	assert_int_equal(cfg->service_uid_max, 1999);
	set_fails(cfg, "service_uids", "2000-1000", "expected MIN-MAX");
	set_fails(cfg, "service_uids", "1000", "expected MIN-MAX");
	set_fails(cfg, "service_uids", "1000-", "expected MIN-MAX");
	set_fails(cfg, "service_uids", "-1000", "expected MIN-MAX");
	set_fails(cfg, "service_uids", "1-4294967295", "expected MIN-MAX");
	set_fails(cfg, "service_uids", "1 - 2", "expected MIN-MAX");
	assert_int_equal(cfg->service_uid_max, 1999);
	set_ok(cfg, "service_uids", "none");
	assert_int_equal(cfg->service_uid_min, 0);
	assert_int_equal(cfg->service_uid_max, 0);

	set_ok(cfg, "user_mapping", "file");
	assert_int_equal(cfg->user_mapping, ENTRA_MAP_FILE);
	set_fails(cfg, "user_mapping", "UPN", "expected one of upn, localpart, file");
	set_ok(cfg, "msi_source", "arc");
	assert_int_equal(cfg->msi_source, ENTRA_MSI_ARC);
	set_fails(cfg, "msi_source", "cloudshell", "expected one of auto, imds, azureml");

	set_ok(cfg, "tenant", "contoso.com");
	assert_string_equal(cfg->tenant, "contoso.com");
	set_fails(cfg, "tenant", "", "tenant: empty value");
	set_fails(cfg, "tenant", "a\tb", "control character");
	set_fails(cfg, "tenant", "a\nb", "control character");
	set_fails(cfg, "tenant", "a\x7f", "control character");
	assert_string_equal(cfg->tenant, "contoso.com");

	set_fails(cfg, "ca_file", "ca.pem", "ca_file: 'ca.pem' is not an absolute path");
	set_fails(cfg, "map_file", "../map", "not an absolute path");
	set_ok(cfg, "ca_file", "/tmp/ca.pem");

	set_fails(cfg, "authority", "http://login.microsoftonline.com", "https://host");
	/* The HTTP client tunnels through an http:// proxy, nothing else. */
	set_fails(cfg, "https_proxy", "https://proxy.example:3128", "http://host");
	set_fails(cfg, "https_proxy", "http://proxy.example:3128/path", "http://host");
	assert_int_equal(entra_config_set(cfg, "https_proxy", "http://proxy.example:3128/", NULL, 0), 0);
	set_fails(cfg, "authority", "https://login.example.com/?x=1", "no query");
	set_fails(cfg, "authority", "https://login.example.com/#f", "no query");
	set_fails(cfg, "authority", "https://user@login.example.com", "user info");
	set_fails(cfg, "authority", "https://", "https://host");
	set_fails(cfg, "authority", "ftp://x", "https://host");
	/* Schemes are case-insensitive (RFC 3986 3.1): kept as written. */
	set_ok(cfg, "authority", "HTTPS://login.example.com");
	assert_string_equal(cfg->authority, "HTTPS://login.example.com");
	set_fails(cfg, "authority", "HTTP://login.example.com", "https://host");
	set_ok(cfg, "authority", "https://127.0.0.1:8443/");
	assert_string_equal(cfg->authority, "https://127.0.0.1:8443");
	set_ok(cfg, "authority", "https://login.example.com/base//");
	assert_string_equal(cfg->authority, "https://login.example.com/base");
	set_ok(cfg, "imds_endpoint", "http://127.0.0.1:1234");
	set_fails(cfg, "imds_endpoint", "file:///etc/passwd", "http(s)://host");

	entra_config_free(cfg);
}

static void test_lists(void **state)
{
	struct entra_config *cfg = entra_config_new();
	char err[256];

	set_ok(cfg, "allow_roles", "Login, Admin  Reader,,Writer ,X");
	assert_int_equal(cfg->allow_roles.count, 5);
	assert_string_equal(cfg->allow_roles.items[0], "Login");
	assert_string_equal(cfg->allow_roles.items[1], "Admin");
	assert_string_equal(cfg->allow_roles.items[2], "Reader");
	assert_string_equal(cfg->allow_roles.items[3], "Writer");
	assert_string_equal(cfg->allow_roles.items[4], "X");
	assert_true(entra_strlist_contains(&cfg->allow_roles, "login"));
	assert_true(entra_strlist_contains(&cfg->allow_roles, "WRITER"));
	assert_false(entra_strlist_contains(&cfg->allow_roles, "Write"));
	assert_false(entra_strlist_contains(&cfg->allow_roles, NULL));
	assert_false(entra_strlist_contains(NULL, "x"));

	/* A new value replaces the list. */
	set_ok(cfg, "allow_roles", "Only");
	assert_int_equal(cfg->allow_roles.count, 1);
	assert_string_equal(cfg->allow_roles.items[0], "Only");
	set_ok(cfg, "allow_roles", "");
	assert_int_equal(cfg->allow_roles.count, 0);

	/* Item too long: the old list stays. */
	set_ok(cfg, "allow_roles", "Keep");
	{
		char big[300];

		memset(big, 'a', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		assert_int_equal(entra_config_set(cfg, "allow_roles", big, err, sizeof(err)),
				 -EINVAL);
		assert_non_null(strstr(err, "longer than"));
	}
	assert_int_equal(cfg->allow_roles.count, 1);
	assert_string_equal(cfg->allow_roles.items[0], "Keep");
	entra_config_free(cfg);
}

static void test_unknown_key_and_args(void **state)
{
	struct entra_config *cfg = entra_config_new();
	char err[256];

	assert_int_equal(entra_config_set(cfg, "tenat", "x", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "unknown key 'tenat'; see pam_entra.conf(5)");
	assert_int_equal(entra_config_set(cfg, "Tenant", "x", err, sizeof(err)), -EINVAL);
	assert_int_equal(entra_config_set(cfg, "check_owner", "no", err, sizeof(err)), -EINVAL);
	assert_int_equal(entra_config_set(cfg, "a\nb", "x", err, sizeof(err)), -EINVAL);
	assert_null(strchr(err, '\n'));
	assert_int_equal(entra_config_set(cfg, NULL, "x", err, sizeof(err)), -EINVAL);
	assert_int_equal(entra_config_set(cfg, "tenant", NULL, err, sizeof(err)), -EINVAL);

	assert_int_equal(entra_config_apply_arg(cfg, "debug", err, sizeof(err)), 0);
	assert_true(cfg->debug);
	assert_int_equal(entra_config_apply_arg(cfg, "debug=no", err, sizeof(err)), 0);
	assert_false(cfg->debug);
	assert_int_equal(entra_config_apply_arg(cfg, "nodebug", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "unknown module argument 'nodebug'"));
	assert_int_equal(entra_config_apply_arg(cfg, "use_first_pass", err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(entra_config_apply_arg(cfg, "=x", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "expected key=value"));
	assert_int_equal(entra_config_apply_arg(cfg, "bogus=1", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "unknown key 'bogus'"));
	assert_int_equal(entra_config_apply_arg(cfg, "login_timeout=5", err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "login_timeout: expected a number"));
	assert_int_equal(entra_config_apply_arg(cfg, "conf=/elsewhere", err, sizeof(err)), 0);
	assert_int_equal(entra_config_apply_arg(cfg, "tenant=contoso.com", err, sizeof(err)), 0);
	assert_string_equal(cfg->tenant, "contoso.com");
	assert_int_equal(entra_config_apply_arg(cfg, "tenant=a\nb", err, sizeof(err)), -EINVAL);
	assert_int_equal(entra_config_apply_arg(cfg, NULL, err, sizeof(err)), -EINVAL);
	entra_config_free(cfg);
}

static void test_file_good(void **state)
{
	const char *path = write_conf("# pam_entra test\n"
				      "\n"
				      "   # indented comment\n"
				      "tenant=" TENANT "\n"
				      "\tclient_id   =   " CLIENT "   \n"
				      "allow_groups = g1, g2 g3\r\n"
				      "debug = yes\n"
				      "login_timeout = 300"); /* no final newline */
	struct entra_config *cfg = entra_config_new();
	char err[256] = "";

	if (entra_config_load(cfg, path, strict(), err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_string_equal(cfg->tenant, TENANT);
	assert_string_equal(cfg->client_id, CLIENT);
	assert_int_equal(cfg->allow_groups.count, 3);
	assert_string_equal(cfg->allow_groups.items[2], "g3");
	assert_true(cfg->debug);
	assert_int_equal(cfg->login_timeout, 300);
	assert_int_equal(entra_config_validate(cfg, err, sizeof(err)), 0);

	/* Module arguments override the file, lists are replaced. */
	assert_int_equal(entra_config_apply_arg(cfg, "allow_groups=g9", err, sizeof(err)), 0);
	assert_int_equal(cfg->allow_groups.count, 1);
	assert_string_equal(cfg->allow_groups.items[0], "g9");
	assert_int_equal(entra_config_apply_arg(cfg, "login_timeout=60", err, sizeof(err)), 0);
	assert_int_equal(cfg->login_timeout, 60);
	entra_config_free(cfg);

	/* An empty file is fine for the parser; validation wants the tenant. */
	path = write_conf("");
	cfg = entra_config_new();
	assert_int_equal(entra_config_load(cfg, path, strict(), err, sizeof(err)), 0);
	assert_int_equal(entra_config_validate(cfg, err, sizeof(err)), -EINVAL);
	entra_config_free(cfg);
}

static void load_fails(const char *text, size_t len, int expect_rc, const char *expect)
{
	const char *path = write_file("bad.conf", text, len, 0644);
	struct entra_config *cfg = entra_config_new();
	char err[512] = "";
	char want[PATH_MAX + 256];

	assert_int_equal(entra_config_load(cfg, path, strict(), err, sizeof(err)), expect_rc);
	snprintf(want, sizeof(want), "%s%s", path, expect);
	if (strstr(err, want) == NULL)
		fail_msg("'%s' lacks '%s'", err, want);
	entra_config_free(cfg);
}

static void test_file_errors(void **state)
{
	static const char dup[] = "tenant = a.com\n# c\nclient_id = x\ntenant = b.com\n";
	static const char nul[] = "tenant = a.com\ndebug = y\0es\n";
	char *big;

	load_fails("tenant = a.com\njust words\n", 26, -EINVAL, ":2: expected 'key = value'");
	load_fails("tenant = a.com\n\n\ntenat = x\n", 26, -EINVAL, ":4: unknown key 'tenat'");
	load_fails(dup, sizeof(dup) - 1, -EINVAL, ":4: duplicate key 'tenant' (first set on line 1)");
	load_fails("= value\n", 8, -EINVAL, ":1: expected 'key = value', the key is missing");
	load_fails("debug = perhaps\n", 16, -EINVAL, ":1: debug: expected yes or no");
	load_fails("tenant = a\x01" "b\n", 13, -EINVAL, ":1: tenant: value too long or contains a control");
	load_fails(nul, sizeof(nul) - 1, -EINVAL, ":2: contains a NUL byte");
	load_fails("login_timeout = 5\n", 18, -EINVAL, ":1: login_timeout: expected a number from 10");

	/* A line of exactly 4096 bytes is fine, 4097 is not. */
	big = malloc(ENTRA_CONFIG_MAX_FILE + 2);
	assert_non_null(big);
	memset(big, ' ', 5000);
	memcpy(big, "tenant = x.com", 14);
	big[4096] = '\n';
	{
		const char *path = write_file("edge.conf", big, 4097, 0644);
		struct entra_config *cfg = entra_config_new();
		char err[512];

		if (entra_config_load(cfg, path, strict(), err, sizeof(err)) != 0)
			fail_msg("%s", err);
		assert_string_equal(cfg->tenant, "x.com");
		entra_config_free(cfg);
	}
	big[4096] = ' ';
	big[4097] = '\n';
	load_fails(big, 4098, -EINVAL, ":1: line longer than 4096 bytes");

	/* 64 KiB of comments is fine, one byte more is not. */
	memset(big, '#', ENTRA_CONFIG_MAX_FILE + 1);
	for (size_t i = 100; i < ENTRA_CONFIG_MAX_FILE; i += 100)
		big[i] = '\n';
	{
		const char *path = write_file("max.conf", big, ENTRA_CONFIG_MAX_FILE, 0644);
		struct entra_config *cfg = entra_config_new();
		char err[512];

		assert_int_equal(entra_config_load(cfg, path, strict(), err, sizeof(err)), 0);
		entra_config_free(cfg);
	}
	load_fails(big, ENTRA_CONFIG_MAX_FILE + 1, -EFBIG, ": larger than 65536 bytes");
	free(big);

	{
		struct entra_config *cfg = entra_config_new();
		char err[512], path[PATH_MAX];

		snprintf(path, sizeof(path), "%s/does-not-exist.conf", tmpdir);
		assert_int_equal(entra_config_load(cfg, path, strict(), err, sizeof(err)), -ENOENT);
		assert_non_null(strstr(err, "does-not-exist.conf: file not found"));
		assert_int_equal(entra_config_load(cfg, tmpdir, false, err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "not a regular file"));
		entra_config_free(cfg);
	}
}

static void test_file_permissions(void **state)
{
	struct entra_config *cfg;
	const char *path;
	char err[512], link[PATH_MAX], real[PATH_MAX];

	if (geteuid() != 0) {
		print_message("# skipped: needs root to chown files to another user\n");
		skip();
		return;
	}
	cfg = entra_config_new();

	path = write_conf("tenant = a.com\n");
	snprintf(real, sizeof(real), "%s", path);
	assert_int_equal(entra_config_load(cfg, real, true, err, sizeof(err)), 0);

	assert_int_equal(chmod(real, 0664), 0);
	assert_int_equal(entra_config_load(cfg, real, true, err, sizeof(err)), -EACCES);
	assert_non_null(strstr(err, "writable by group or others"));
	assert_int_equal(chmod(real, 0646), 0);
	assert_int_equal(entra_config_load(cfg, real, true, err, sizeof(err)), -EACCES);
	/* Without check_owner (entractl check of a draft) the mode is not checked. */
	assert_int_equal(entra_config_load(cfg, real, false, err, sizeof(err)), 0);
	assert_false(cfg->check_owner);
	assert_int_equal(chmod(real, 0600), 0);
	assert_int_equal(entra_config_load(cfg, real, true, err, sizeof(err)), 0);
	assert_true(cfg->check_owner);

	assert_int_equal(chown(real, 65534, 65534), 0);
	assert_int_equal(entra_config_load(cfg, real, true, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "not owned by root"));
	assert_int_equal(entra_config_load(cfg, real, false, err, sizeof(err)), 0);
	assert_int_equal(chown(real, 0, 0), 0);

	snprintf(link, sizeof(link), "%s/link.conf", tmpdir);
	unlink(link);
	assert_int_equal(symlink(real, link), 0);
	assert_int_equal(entra_config_load(cfg, link, true, err, sizeof(err)), -ELOOP);
	assert_non_null(strstr(err, "is a symbolic link"));
	assert_int_equal(entra_config_load(cfg, link, false, err, sizeof(err)), -ELOOP);
	unlink(link);

	/* A FIFO must be refused without blocking. */
	snprintf(link, sizeof(link), "%s/fifo.conf", tmpdir);
	assert_int_equal(mkfifo(link, 0600), 0);
	assert_int_equal(entra_config_load(cfg, link, true, err, sizeof(err)), -EINVAL);
	unlink(link);
	entra_config_free(cfg);
}

struct rule {
	const char *settings; /* "key=value|key=value" on top of a valid config */
	const char *expect;   /* substring of the error; NULL = valid */
};

static void test_validation(void **state)
{
	static const struct rule rules[] = {
		{ "tenant=common", "tenant: 'common' would let accounts of any tenant" },
		{ "tenant=Organizations", "would let accounts of any tenant" },
		{ "tenant=consumers", "would let accounts of any tenant" },
		{ "tenant=contoso", "tenant: 'contoso' is neither a GUID nor a domain name" },
		{ "tenant=-contoso.com", "neither a GUID nor a domain" },
		{ "tenant=contoso..com", "neither a GUID nor a domain" },
		{ "tenant=contoso_x.com", "neither a GUID nor a domain" },
		{ "tenant=contoso.onmicrosoft.com", NULL },
		{ "client_id=my-app", "client_id: 'my-app' is not a GUID" },
		{ "authority=https://login.example.com/x", NULL },
		{ "resource=api://x", NULL },
		{ "rbac_scope=/subscriptions/x/../y", "rbac_scope: '/subscriptions/x/../y' is not an ARM resource id" },
		{ "rbac_scope=/subscriptions/" TENANT "/resourceGroups/rg", NULL },
		{ "rbac_scope=/subscriptions/" TENANT "|resource=api://x/.default", "resource must be https://management.azure.com/.default" },
		{ "require_mfa=yes|resource=api://x/.default", "read the Azure Resource Manager token" },
		{ "auth_context=sudo:c2", NULL },
		{ "auth_context=sudo:c26", "auth_context: 'sudo:c26' must be service:cN" },
		{ "auth_context=sudo", "must be service:cN" },
		{ "client_capabilities=cp1", NULL },
		{ "client_capabilities=CP 1", "client_capabilities: 'CP' is not a capability" },
		{ "rbac_login_actions=Microsoft.Compute/*", "rbac_login_actions:" },
		{ "identity_claim=o id", "identity_claim, username_claim: must be claim names" },
		{ "username_claim=upn", NULL },
		{ "http_timeout=120|login_timeout=60", "http_timeout: 120 s is longer than login_timeout (60 s)" },
		{ "http_timeout=60|login_timeout=60", NULL },
		{ "subscription_id=" TENANT, "set all three to describe the workspace, or none" },
		{ "subscription_id=" TENANT "|resource_group=rg", "set all three" },
		{ "subscription_id=" TENANT "|resource_group=rg|workspace_name=ws-1", NULL },
		{ "subscription_id=abc|resource_group=rg|workspace_name=ws1", "subscription_id: 'abc' is not a GUID" },
		{ "subscription_id=" TENANT "|resource_group=rg.|workspace_name=ws1", "resource_group: 'rg.' is not a resource group name" },
		{ "subscription_id=" TENANT "|resource_group=rg|workspace_name=w", "workspace_name: 'w' is not a workspace name" },
		{ "user_mapping=localpart", "user_mapping: localpart needs allowed_domains" },
		{ "user_mapping=localpart|allowed_domains=contoso.com", NULL },
		{ "allowed_domains=contoso", "allowed_domains: 'contoso' is not a domain name" },
		{ "user_mapping=file", "user_mapping: file needs map_file" },
		{ "user_mapping=file|map_file=/etc/security/pam_entra.map", NULL },
		{ "local_users=ubuntu,bad/name", "local_users: 'bad/name' is not a user name" },
		{ "allow_users=alice", "allow_users: 'alice' is not a UPN (user@domain) or an object id" },
		{ "allow_users=alice@contoso.com " TENANT, NULL },
		{ "service_accounts=svc,@svcgroup", NULL },
		{ "service_accounts=@", "service_accounts: '@' is not a user name or @group" },
		{ "service_identities=svc", "service_identities: 'svc' is not of the form account:client-id" },
		{ "service_identities=svc:notaguid", "is not of the form account:client-id" },
		{ "service_identities=:" CLIENT, "is not of the form" },
		{ "uid_min=80000|uid_max=80000", "uid_min: 80000 must be below uid_max (80000)" },
		{ "uid_min=80000|uid_max=70000", "uid_min: 80000 must be below uid_max" },
		{ "admin_gid=1900000000", "admin_gid: 1900000000 lies inside uid_min-uid_max" },
		{ "admin_gid=1999999999", "lies inside" },
		{ "admin_gid=2000000000", NULL },
		{ "service_uids=1899999999-1900000000", "service_uids: 1899999999-1900000000 overlaps uid_min-uid_max" },
		{ "service_uids=0-1000", "the range must not include uid 0" },
		{ "service_uids=1000-1999", NULL },
		{ "admin_group=bad/group", "admin_group: must be a valid group name" },
		{ "home_template=home/%u", "home_template: must be an absolute path containing %u" },
		{ "home_template=/home/user", "must be an absolute path containing %u" },
		{ "home_template=/home/%x%u", "must be an absolute" },
		{ "home_template=/home/../%u", "must be an absolute" },
		{ "home_template=/home/%u/..", "must be an absolute" },
		{ "home_template=/home/%u/.", "must be an absolute" },
		{ "home_template=/home/%u%", "must be an absolute" },
		{ "home_template=/srv/%U/%%", NULL },
		{ "service_client_id=abc", "service_client_id: 'abc' is not a GUID" },
		{ "service_client_id=" CLIENT, NULL },
	};

	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
		struct entra_config *cfg = valid_cfg();
		char settings[512], err[512] = "";
		char *save = NULL, *kv;
		int rc;

		snprintf(settings, sizeof(settings), "%s", rules[i].settings);
		for (kv = settings; kv != NULL; kv = save) {
			char *eq, *bar = strchr(kv, '|');

			save = NULL;
			if (bar != NULL) {
				*bar = '\0';
				save = bar + 1;
			}
			eq = strchr(kv, '=');
			assert_non_null(eq);
			*eq = '\0';
			set_ok(cfg, kv, eq + 1);
		}
		rc = entra_config_validate(cfg, err, sizeof(err));
		if (rules[i].expect == NULL && rc != 0)
			fail_msg("rule %zu (%s): unexpected error '%s'", i, rules[i].settings, err);
		if (rules[i].expect != NULL &&
		    (rc != -EINVAL || strstr(err, rules[i].expect) == NULL))
			fail_msg("rule %zu (%s): rc %d, '%s' lacks '%s'", i, rules[i].settings, rc,
				 err, rules[i].expect);
		entra_config_free(cfg);
	}

	{
		struct entra_config *cfg = entra_config_new();
		char err[256];

		set_ok(cfg, "tenant", TENANT);
		assert_int_equal(entra_config_validate(cfg, err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "client_id: required; set it to the application"));
		assert_int_equal(entra_config_validate(NULL, err, sizeof(err)), -EINVAL);
		entra_config_free(cfg);
	}
}

/* Random lines built from keys, separators and odd bytes: the parser
 * must return 0 or -EINVAL, never crash, leak or overrun (run under ASan). */
static void test_random_input(void **state)
{
	static const char *const parts[] = {
		"tenant", "debug", "allow_groups", "service_uids", "uid_min", "user_mapping",
		"authority", "=", " = ", "#", "\n", "\r\n", " ", "\t", ",", "-", "yes", "0",
		"4294967295", "https://", "/", "%u", "\x01", "\xff", "a@b.com", "none", "x",
	};
	unsigned int seed = 12345;
	char text[1024];
	int ok = 0, bad = 0;

	for (int round = 0; round < 3000; round++) {
		struct entra_config *cfg = entra_config_new();
		size_t len = 0;
		int nparts = (int)(rand_r(&seed) % 40);
		const char *path;
		char err[512];
		int rc;

		for (int i = 0; i < nparts; i++) {
			const char *p = parts[rand_r(&seed) % (sizeof(parts) / sizeof(parts[0]))];
			size_t n = strlen(p);

			if (len + n >= sizeof(text))
				break;
			memcpy(text + len, p, n);
			len += n;
		}
		path = write_file("random.conf", text, len, 0644);
		rc = entra_config_load(cfg, path, strict(), err, sizeof(err));
		if (rc != 0 && rc != -EINVAL)
			fail_msg("round %d: rc %d (%s)", round, rc, err);
		if (rc == 0) {
			ok++;
			entra_config_validate(cfg, err, sizeof(err));
		} else {
			bad++;
			assert_non_null(strstr(err, "random.conf:"));
		}
		text[len] = '\0';
		if (strchr(text, '\n') == NULL && strlen(text) == len) {
			rc = entra_config_apply_arg(cfg, text, err, sizeof(err));
			assert_true(rc == 0 || rc == -EINVAL);
		}
		entra_config_free(cfg);
	}
	/* Both outcomes must have been exercised for the test to mean anything. */
	assert_true(ok > 100);
	assert_true(bad > 100);
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *data;
	long n;

	if (f == NULL)
		fail_msg("%s: %s", path, strerror(errno));
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n > 0);
	rewind(f);
	data = calloc(1, (size_t)n + 1);
	assert_non_null(data);
	assert_int_equal(fread(data, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	return data;
}

/* Records a documented key; fails on a name the parser does not know. */
static void documented(bool *seen, const char *name, size_t len, const char *where)
{
	for (size_t i = 0; i < NALL; i++) {
		if (strlen(all[i].key) == len && strncmp(all[i].key, name, len) == 0) {
			seen[i] = true;
			return;
		}
	}
	fail_msg("%s documents unknown key '%.*s'", where, (int)len, name);
}

/* The example file parses and validates, and it and the man page each
 * document every key. */
static void test_docs_cover_every_key(void **state)
{
	bool seen[NALL];
	struct entra_config *cfg = entra_config_new();
	char err[512];
	char *text, *line;

	assert_int_equal(entra_config_load(cfg, TEST_SRCDIR "/conf/pam_entra.conf", false, err,
					   sizeof(err)),
			 0);
	if (entra_config_validate(cfg, err, sizeof(err)) != 0)
		fail_msg("example: %s", err);
	entra_config_free(cfg);

	memset(seen, 0, sizeof(seen));
	text = slurp(TEST_SRCDIR "/conf/pam_entra.conf");
	for (line = text; line != NULL; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		const char *p = line[0] == '#' ? line + 1 : line;
		size_t len = strspn(p, "abcdefghijklmnopqrstuvwxyz_");

		if (len > 0 && strncmp(p + len, " =", 2) == 0)
			documented(seen, p, len, "pam_entra.conf");
	}
	free(text);
	for (size_t i = 0; i < NALL; i++)
		if (!seen[i])
			fail_msg("conf/pam_entra.conf does not document '%s'", all[i].key);

	memset(seen, 0, sizeof(seen));
	text = slurp(TEST_SRCDIR "/man/pam_entra.conf.5");
	for (line = strstr(text, "\n.TP\n.BR "); line != NULL;
	     line = strstr(line + 1, "\n.TP\n.BR ")) {
		const char *p = line + 9;
		size_t len = strspn(p, "abcdefghijklmnopqrstuvwxyz_");

		if (len > 0 && p[len] == ' ')
			documented(seen, p, len, "pam_entra.conf.5");
	}
	free(text);
	for (size_t i = 0; i < NALL; i++)
		if (!seen[i])
			fail_msg("man/pam_entra.conf.5 does not document '%s'", all[i].key);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_every_key_has_a_row),
		cmocka_unit_test(test_types_and_bounds),
		cmocka_unit_test(test_lists),
		cmocka_unit_test(test_unknown_key_and_args),
		cmocka_unit_test(test_file_good),
		cmocka_unit_test(test_file_errors),
		cmocka_unit_test(test_file_permissions),
		cmocka_unit_test(test_validation),
		cmocka_unit_test(test_random_input),
		cmocka_unit_test(test_docs_cover_every_key),
	};

	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
