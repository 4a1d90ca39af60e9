/* A local attacker: admin files and state directories owned by someone
 * else or writable by others, symlinks planted where root writes,
 * another user going after a session token, and user names built to
 * escape a directory. Runs as root (chown, setpriv); skipped otherwise.
 * PAM through the pam_start_confdir shim (service files read live). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <libpamtest.h>
#include <openssl/evp.h>

#include "pam_harness.h"
#include "hardening_util.h"
#include "fsutil.h"
#include "rbac.h"
#include "session.h"
#include "userdb.h"

#define ALICE "alice@contoso.com"
#define ALICE_CLAIMS "{\"preferred_username\":\"alice@contoso.com\",\"oid\":\"0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9\"}"
#define ATTACKER 4242

static unsigned checks;

struct outcome {
	int rc[4];
	char log[16384];
	char token_file[512];
	char session_id[64];
	char **env;
};

/* auth, account, open_session, getenvlist; stops at the first failure. */
static void login_as(const char *service, struct outcome *o)
{
	struct person p = { .action = PERSON_APPROVE, .claims_json = ALICE_CLAIMS };
	struct pam_testcase tc[] = {
		pam_test(PAMTEST_AUTHENTICATE, PAM_SUCCESS),
		pam_test(PAMTEST_ACCOUNT, PAM_SUCCESS),
		pam_test(PAMTEST_OPEN_SESSION, PAM_SUCCESS),
		pam_test(PAMTEST_GETENVLIST, PAM_SUCCESS),
	};
	const char *v;

	memset(o, 0, sizeof(*o));
	assert_int_equal(fake_control("reset", "{}"), 0);
	assert_int_equal(fake_control("configure", "{\"interval\":1}"), 0);
	log_capture_begin();
	(void)_pamtest_conv(service, ALICE, person_conv, &p, tc, 4, NULL);
	snprintf(o->log, sizeof(o->log), "%s", log_capture_end());
	if (getenv("HARDENING_VERBOSE") != NULL)
		fprintf(stderr, "# %s: %d %d %d\n%s\n", service, tc[0].op_rv, tc[1].op_rv, tc[2].op_rv, o->log);
	for (int i = 0; i < 4; i++)
		o->rc[i] = tc[i].op_rv;
	if ((v = env_get(tc[3].case_out.envlist, "ENTRA_TOKEN_FILE")) != NULL)
		snprintf(o->token_file, sizeof(o->token_file), "%s", v);
	if ((v = env_get(tc[3].case_out.envlist, "ENTRA_SESSION_ID")) != NULL)
		snprintf(o->session_id, sizeof(o->session_id), "%s", v);
	if (tc[3].case_out.envlist != NULL)
		pamtest_free_env(tc[3].case_out.envlist);
}

/* No session: refused in the account phase (which keeps the login in
 * run_dir/private for the session) or at open_session. */
static void assert_no_session(const struct outcome *o)
{
	if (!(o->rc[1] != PAM_SUCCESS || o->rc[2] == PAM_SESSION_ERR) || o->token_file[0] != '\0') {
		fprintf(stderr, "# a session was opened: %d %d %d\n%s\n", o->rc[0], o->rc[1], o->rc[2], o->log);
		fail();
	}
}

static void path_of(char *out, size_t len, const char *name)
{
	if ((size_t)snprintf(out, len, "%s/%s", H.dir, name) >= len)
		fail();
}

static void write_file(const char *path, const char *text, mode_t mode, uid_t uid)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chown(path, uid, 0), 0);
	assert_int_equal(chmod(path, mode), 0);
}

static int setup_root_only(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip();
	return 0;
}

/* ---- admin files --------------------------------------------------------- */

static void expect_config_refused(const char *conf, const char *phrase)
{
	struct person p = { .action = PERSON_APPROVE, .claims_json = ALICE_CLAIMS };
	struct pam_testcase tc[] = { pam_test(PAMTEST_AUTHENTICATE, PAM_SERVICE_ERR) };
	char args[600];
	const char *log;

	snprintf(args, sizeof(args), "conf=%s", conf);
	assert_int_equal(harness_service("attack-conf", args), 0);
	log_capture_begin();
	assert_int_equal(_pamtest_conv("attack-conf", ALICE, person_conv, &p, tc, 1, NULL), PAMTEST_ERR_OK);
	log = log_capture_end();
	assert_log_contains(log, phrase);
	assert_int_equal(p.prompts, 0);
	checks++;
}

static void test_config_file_checks(void **state)
{
	char conf[512], link[512];

	(void)state;
	path_of(conf, sizeof(conf), "attack.conf");
	assert_int_equal(harness_write_config(conf, NULL), 0);
	assert_int_equal(chown(conf, ATTACKER, 0), 0);
	expect_config_refused(conf, "not owned by root");
	assert_int_equal(chown(conf, 0, 0), 0);
	assert_int_equal(chmod(conf, 0664), 0);
	expect_config_refused(conf, "writable by group or others");
	assert_int_equal(chmod(conf, 0646), 0);
	expect_config_refused(conf, "writable by group or others");
	assert_int_equal(chmod(conf, 0644), 0);
	path_of(link, sizeof(link), "attack-link.conf");
	assert_int_equal(symlink(conf, link), 0);
	expect_config_refused(link, "symbolic link");
	/* A FIFO planted as the config must not hang the module. */
	unlink(link);
	assert_int_equal(mkfifo(link, 0644), 0);
	expect_config_refused(link, "not a regular file");
	unlink(link);
}

static void test_map_file_checks(void **state)
{
	char conf[512], map[512], extra[1024];
	struct outcome o;

	(void)state;
	path_of(map, sizeof(map), "attack.map");
	write_file(map, "alice@contoso.com 0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9\n", 0644, ATTACKER);
	path_of(conf, sizeof(conf), "attack-map.conf");
	snprintf(extra, sizeof(extra), "map_file = %s\n", map);
	assert_int_equal(harness_write_config(conf, extra), 0);
	/* user_mapping = file replaces upn: written by hand after the defaults. */
	{
		char cmd[1200];

		snprintf(cmd, sizeof(cmd), "sed -i 's/^user_mapping = upn/user_mapping = file/' '%s'", conf);
		assert_int_equal(run_shell(cmd, NULL, 0), 0);
	}
	snprintf(extra, sizeof(extra), "conf=%s", conf);
	assert_int_equal(harness_service("attack-map", extra), 0);
	login_as("attack-map", &o);
	/* An untrusted map file maps nobody: the name is not handed to
	 * Entra at all (no device flow), and no session is made. (The
	 * refusal is not logged at more than debug: see SECURITY.md.) */
	assert_int_equal(o.rc[0], PAM_USER_UNKNOWN);
	assert_int_equal(fake_count("devicecode"), 0);
	assert_int_equal(o.token_file[0], '\0');
	/* The same file, root's: alice logs in (so the check can fail). */
	assert_int_equal(chown(map, 0, 0), 0);
	login_as("attack-map", &o);
	assert_int_equal(o.rc[0], PAM_SUCCESS);
	assert_int_equal(chmod(map, 0666), 0);
	login_as("attack-map", &o);
	assert_int_equal(o.rc[0], PAM_USER_UNKNOWN);
	checks++;
}

/* ---- cache directories ---------------------------------------------------- */

/* A discovery document that would send the device flow to a dead port:
 * if the module trusted it, the login would fail. */
static void plant_poisoned_discovery(const char *dir, uid_t owner)
{
	char url[512], prefix[33], path[700], text[2048];
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	snprintf(url, sizeof(url), "%s/%s/v2.0/.well-known/openid-configuration", H.authority, H.tenant_id);
	assert_int_equal(EVP_Digest(url, strlen(url), md, &n, EVP_sha256(), NULL), 1);
	for (int i = 0; i < 16; i++) {
		prefix[2 * i] = hex[md[i] >> 4];
		prefix[2 * i + 1] = hex[md[i] & 15];
	}
	prefix[32] = '\0';
	snprintf(text, sizeof(text),
		 "{\"fetched_at\":%lld,\"url\":\"%s\",\"body\":\"{\\\"issuer\\\":\\\"https://127.0.0.1:1/v2.0\\\","
		 "\\\"token_endpoint\\\":\\\"https://127.0.0.1:1/t\\\",\\\"device_authorization_endpoint\\\":"
		 "\\\"https://127.0.0.1:1/d\\\",\\\"jwks_uri\\\":\\\"https://127.0.0.1:1/k\\\"}\"}",
		 (long long)time(NULL), url);
	snprintf(path, sizeof(path), "%s/%s.discovery.json", dir, prefix);
	write_file(path, text, 0600, owner);
}

static void login_with_cache(const char *cache, const char *phrase)
{
	char args[700];
	struct outcome o;

	snprintf(args, sizeof(args), "cache_dir=%s", cache);
	assert_int_equal(harness_service("attack-cache", args), 0);
	login_as("attack-cache", &o);
	assert_int_equal(o.rc[0], PAM_SUCCESS); /* the poison was not used */
	if (phrase != NULL)
		assert_log_contains(o.log, phrase);
	checks++;
}

static void test_cache_dir_checks(void **state)
{
	char cache[512], target[512], link[512];
	long before;

	(void)state;
	/* Owned by the attacker, holding a poisoned document. */
	path_of(cache, sizeof(cache), "cache-attacker");
	assert_int_equal(mkdir(cache, 0700), 0);
	plant_poisoned_discovery(cache, ATTACKER);
	assert_int_equal(chown(cache, ATTACKER, ATTACKER), 0);
	before = tree_count(cache);
	login_with_cache(cache, "unusable");
	assert_int_equal(tree_count(cache), before); /* nothing written there either */

	/* Root's but group-writable. */
	path_of(cache, sizeof(cache), "cache-groupw");
	assert_int_equal(mkdir(cache, 0700), 0);
	plant_poisoned_discovery(cache, 0);
	assert_int_equal(chmod(cache, 0770), 0);
	login_with_cache(cache, "unusable");

	/* A symlink to a directory the attacker controls. */
	path_of(target, sizeof(target), "cache-target");
	assert_int_equal(mkdir(target, 0700), 0);
	plant_poisoned_discovery(target, 0);
	path_of(link, sizeof(link), "cache-link");
	assert_int_equal(symlink(target, link), 0);
	before = tree_count(target);
	login_with_cache(link, "unusable");
	assert_int_equal(tree_count(target), before);

	/* A good directory, a poisoned file owned by someone else. */
	path_of(cache, sizeof(cache), "cache-badfile");
	assert_int_equal(mkdir(cache, 0700), 0);
	plant_poisoned_discovery(cache, ATTACKER);
	login_with_cache(cache, NULL);
}

/* The managed-identity cache: a token planted under the right name but
 * owned by someone else, or readable by others, is never served. */
static void test_msi_cache_checks(void **state)
{
	char cache[512], msi[600], key[700], file[800], text[1024], args[900];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	struct pam_testcase tc[] = {
		pam_test(PAMTEST_OPEN_SESSION, PAM_SUCCESS),
		pam_test(PAMTEST_GETENVLIST, PAM_SUCCESS),
		pam_test(PAMTEST_CLOSE_SESSION, PAM_SUCCESS),
	};
	static const struct { uid_t owner; mode_t mode; } bad[] = { { ATTACKER, 0600 }, { 0, 0644 }, { 0, 0660 } };

	(void)state;
	path_of(cache, sizeof(cache), "cache-msi");
	snprintf(msi, sizeof(msi), "%s/msi", cache);
	assert_int_equal(mkdir(cache, 0700), 0);
	assert_int_equal(mkdir(msi, 0700), 0);
	snprintf(key, sizeof(key), "msi-v1\nimds\nhttp://127.0.0.1:%d/metadata/identity/oauth2/token\nsystem\n\n"
		 "https://management.azure.com", H.http_port);
	assert_int_equal(EVP_Digest(key, strlen(key), md, &n, EVP_sha256(), NULL), 1);
	snprintf(file, sizeof(file), "%s/", msi);
	for (unsigned i = 0; i < n; i++)
		snprintf(file + strlen(file), sizeof(file) - strlen(file), "%02x", md[i]);
	snprintf(file + strlen(file), sizeof(file) - strlen(file), ".json");
	snprintf(args, sizeof(args), "service_accounts=nobody msi_source=imds imds_endpoint=http://127.0.0.1:%d cache_dir=%s",
		 H.http_port, cache);
	assert_int_equal(harness_service_session_stack("attack-msi", args), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct person p = { .action = PERSON_HANG_UP };
		const char *tokfile;
		struct entra_buf b;
		char *dir, *slash;
		int dfd;

		snprintf(text, sizeof(text),
			 "{\"access_token\":\"POISONED.TOKEN.x\",\"resource\":\"https://management.azure.com\","
			 "\"source\":\"imds\",\"expires_on\":%lld,\"refresh_on\":%lld}",
			 (long long)time(NULL) + 36000, (long long)time(NULL) + 18000);
		write_file(file, text, bad[i].mode, bad[i].owner);
		assert_int_equal(fake_control("reset", "{}"), 0);
		assert_int_equal(_pamtest_conv("attack-msi", "nobody", person_conv, &p, tc, 3, NULL), PAMTEST_ERR_OK);
		tokfile = env_get(tc[1].case_out.envlist, "ENTRA_TOKEN_FILE");
		assert_non_null(tokfile);
		assert_int_equal(fake_count("imds"), 1); /* fetched, not served from the plant */
		pamtest_free_env(tc[1].case_out.envlist);
		/* The plant was replaced by a good entry (root's, 0600). */
		dir = strdup(file);
		slash = strrchr(dir, '/');
		*slash = '\0';
		dfd = open(dir, O_RDONLY | O_DIRECTORY);
		assert_true(dfd >= 0);
		if (bad[i].owner == 0 && bad[i].mode == 0600) {
			assert_int_equal(entra_read_file_trusted(dfd, slash + 1, 1 << 20, 0, &b), 0);
			assert_null(strstr(b.data, "POISONED"));
			entra_buf_free(&b);
		}
		close(dfd);
		free(dir);
		checks++;
	}
}

/* The RBAC decision cache refuses files it did not write. */
static void test_rbac_cache_checks(void **state)
{
	char cache[512], file[700], binding[65], target[800];
	const char *oid = "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9";
	const char *const login_actions[] = { ENTRA_RBAC_DEFAULT_LOGIN_ACTION, NULL };
	struct entra_rbac_decision d = { true, true, "granted by test" }, got;
	int64_t now = (int64_t)time(NULL);

	(void)state;
	path_of(cache, sizeof(cache), "cache-rbac");
	assert_int_equal(mkdir(cache, 0700), 0);
	assert_int_equal(entra_rbac_cache_binding("https://127.0.0.1:1", "/subscriptions/11111111-2222-3333-4444-555555555555",
						  login_actions, NULL, binding), 0);
	assert_int_equal(entra_rbac_cache_store(cache, oid, binding, &d, now, 600), 0);
	assert_int_equal(entra_rbac_cache_load(cache, oid, binding, now, &got), 0); /* the test can pass */
	snprintf(file, sizeof(file), "%s/rbac/%s.json", cache, oid);
	assert_int_equal(chown(file, ATTACKER, 0), 0);
	assert_int_equal(entra_rbac_cache_load(cache, oid, binding, now, &got), -EPERM);
	assert_int_equal(chown(file, 0, 0), 0);
	assert_int_equal(chmod(file, 0666), 0);
	assert_int_equal(entra_rbac_cache_load(cache, oid, binding, now, &got), -EACCES);
	/* A symlink to a decision elsewhere. */
	snprintf(target, sizeof(target), "%s.real", file);
	assert_int_equal(rename(file, target), 0);
	assert_int_equal(chmod(target, 0600), 0);
	assert_int_equal(symlink(target, file), 0);
	assert_int_equal(entra_rbac_cache_load(cache, oid, binding, now, &got), -ELOOP);
	checks += 3;
}

/* ---- the user database ----------------------------------------------------- */

static void test_userdb_checks(void **state)
{
	char dir[512], file[600], target[600], lock[600];
	struct entra_userdb *db = NULL;
	struct outcome o;
	char args[700];
	struct stat st;

	(void)state;
	path_of(dir, sizeof(dir), "db-attack");
	assert_int_equal(mkdir(dir, 0755), 0);
	snprintf(args, sizeof(args), "db_dir=%s", dir);
	assert_int_equal(harness_service("attack-db", args), 0);
	login_as("attack-db", &o); /* a good database with alice */
	assert_int_equal(o.rc[1], PAM_SUCCESS);
	snprintf(file, sizeof(file), "%s/users.db", dir);
	assert_int_equal(chown(file, ATTACKER, 0), 0);
	assert_int_equal(entra_userdb_open(dir, &db, NULL, 0), -EPERM);
	login_as("attack-db", &o);
	assert_int_equal(o.rc[1], PAM_SYSTEM_ERR); /* not recorded into (nor over) a file root did not write */
	assert_int_equal(stat(file, &st), 0);
	assert_int_equal(st.st_uid, ATTACKER);
	assert_int_equal(chown(file, 0, 0), 0);
	assert_int_equal(chmod(file, 0666), 0);
	assert_int_equal(entra_userdb_open(dir, &db, NULL, 0), -EACCES);
	login_as("attack-db", &o);
	assert_int_equal(o.rc[1], PAM_SYSTEM_ERR);
	/* users.db a symlink to a database the attacker wrote. */
	assert_int_equal(chmod(file, 0644), 0);
	snprintf(target, sizeof(target), "%s/elsewhere.db", H.dir);
	assert_int_equal(rename(file, target), 0);
	assert_int_equal(symlink(target, file), 0);
	assert_int_not_equal(entra_userdb_open(dir, &db, NULL, 0), 0);
	login_as("attack-db", &o);
	assert_int_equal(o.rc[1], PAM_SYSTEM_ERR);
	unlink(file);
	/* users.lock a symlink to a file root would otherwise create or truncate. */
	snprintf(lock, sizeof(lock), "%s/users.lock", dir);
	unlink(lock);
	snprintf(target, sizeof(target), "%s/lock-target", H.dir);
	assert_int_equal(symlink(target, lock), 0);
	login_as("attack-db", &o);
	assert_int_equal(o.rc[1], PAM_SYSTEM_ERR);
	assert_int_equal(stat(target, &st), -1); /* never created through the link */
	checks += 4;
}

/* ---- the run directory ---------------------------------------------------- */

static void test_run_dir_symlinks(void **state)
{
	char run[512], target[512], path[700], args[700];
	struct outcome o;
	long uid;

	(void)state;
	path_of(run, sizeof(run), "run-attack");
	path_of(target, sizeof(target), "run-target");
	assert_int_equal(mkdir(target, 0777), 0);
	snprintf(args, sizeof(args), "run_dir=%s", run);
	assert_int_equal(harness_service("attack-run", args), 0);
	login_as("attack-run", &o); /* creates run/, run/<uid>/ and private/ */
	assert_int_equal(o.rc[2], PAM_SUCCESS);
	uid = harness_uid_of(ALICE);
	assert_true(uid > 0);

	/* run/<uid> replaced by a link to a directory the attacker owns. */
	snprintf(path, sizeof(path), "%s/%ld", run, uid);
	tree_remove(path);
	assert_int_equal(symlink(target, path), 0);
	login_as("attack-run", &o);
	assert_no_session(&o);
	assert_log_contains(o.log, "Too many levels of symbolic links");
	assert_int_equal(tree_count(target), 0);
	unlink(path);
	/* run/<uid> a real directory, but the user's (made before root's). */
	assert_int_equal(mkdir(path, 0711), 0);
	assert_int_equal(chown(path, (uid_t)uid, (gid_t)uid), 0);
	login_as("attack-run", &o);
	assert_no_session(&o);
	tree_remove(path);
	/* private/ a link: the refresh token must not land in the target,
	 * and the half-made session is removed. */
	snprintf(path, sizeof(path), "%s/private", run);
	tree_remove(path);
	assert_int_equal(symlink(target, path), 0);
	login_as("attack-run", &o);
	assert_no_session(&o);
	assert_int_equal(tree_count(target), 0);
	snprintf(path, sizeof(path), "%s/%ld", run, uid);
	assert_true(tree_count(path) <= 0); /* absent or empty */
	/* The run directory itself a link. */
	tree_remove(run);
	assert_int_equal(symlink(target, run), 0);
	login_as("attack-run", &o);
	assert_no_session(&o);
	assert_int_equal(tree_count(target), 0);
	unlink(run);
	checks += 4;
}

/* ---- another user and the session token ----------------------------------- */

static int as_user(uid_t uid, const char *script)
{
	char cmd[4096];

	snprintf(cmd, sizeof(cmd), "setpriv --reuid=%u --regid=%u --clear-groups sh -c '%s' >/dev/null",
		 (unsigned)uid, (unsigned)uid, script);
	return run_shell(cmd, NULL, 0) == 0 ? 0 : -1;
}

static void test_other_user_cannot_touch_token(void **state)
{
	char script[2048], dir[600], priv[600];
	struct outcome o;
	long uid;

	(void)state;
	assert_int_equal(harness_service("attack-token", ""), 0);
	login_as("attack-token", &o);
	assert_int_equal(o.rc[2], PAM_SUCCESS);
	uid = harness_uid_of(ALICE);
	snprintf(dir, sizeof(dir), "%s", o.token_file);
	*strrchr(dir, '/') = '\0';
	snprintf(priv, sizeof(priv), "%s/private/%s", H.run_dir, o.session_id);
	/* H.dir is 0755: everyone can walk to run/. */
	assert_int_equal(chmod(H.dir, 0755), 0);

	/* The owner can read its token (so the checks below can fail)... */
	snprintf(script, sizeof(script), "cat %s", o.token_file);
	assert_int_equal(as_user((uid_t)uid, script), 0);
	/* ...but not the refresh token, nor make files next to its session. */
	snprintf(script, sizeof(script), "cat %s", priv);
	assert_int_equal(as_user((uid_t)uid, script), -1);
	snprintf(script, sizeof(script), "touch %s/%ld/planted", H.run_dir, uid);
	assert_int_equal(as_user((uid_t)uid, script), -1);

	/* Another user: no read, no listing, no replacement, no removal. */
	snprintf(script, sizeof(script), "cat %s", o.token_file);
	assert_int_equal(as_user(ATTACKER, script), -1);
	snprintf(script, sizeof(script), "ls %s/%ld", H.run_dir, uid);
	assert_int_equal(as_user(ATTACKER, script), -1);
	snprintf(script, sizeof(script), "echo forged > %s", o.token_file);
	assert_int_equal(as_user(ATTACKER, script), -1);
	snprintf(script, sizeof(script), "echo forged > %s/token.new && mv %s/token.new %s", dir, dir, o.token_file);
	assert_int_equal(as_user(ATTACKER, script), -1);
	snprintf(script, sizeof(script), "rm -rf %s", dir);
	assert_int_equal(as_user(ATTACKER, script), -1);
	snprintf(script, sizeof(script), "cat %s", priv);
	assert_int_equal(as_user(ATTACKER, script), -1);
	snprintf(script, sizeof(script), "mkdir %s/%d", H.run_dir, ATTACKER + 1);
	assert_int_equal(as_user(ATTACKER, script), -1);
	/* Still there, unchanged. */
	{
		struct stat st;

		assert_int_equal(stat(o.token_file, &st), 0);
		assert_int_equal(st.st_uid, (uid_t)uid);
		assert_int_equal(st.st_mode & 07777, 0600);
	}
	checks += 10;
}

/* ---- user names ------------------------------------------------------------ */

static void test_hostile_user_names(void **state)
{
	static const char *const names[] = {
		"a/b@contoso.com", "../../etc/passwd@contoso.com", "..@contoso.com", "alice@contoso.com/..",
		"alice/../../root@contoso.com", "alice\nroot@contoso.com", "alice@contoso.com\r", "alice\x01@contoso.com",
		"-alice@contoso.com", ".alice@contoso.com", "alice..x@contoso.com", "alice$(id)@contoso.com",
		"",
	};
	/* A NUL cannot cross the PAM API (C strings end there); in claims it is
	 * refused by the claim checks (test_hostile_tokens upn_nul, oid_nul). */
	char longname[400];
	long before = tree_count(H.dir);

	(void)state;
	assert_int_equal(fake_control("reset", "{}"), 0);
	memset(longname, 'a', 300);
	snprintf(longname + 300, sizeof(longname) - 300, "@contoso.com");
	for (size_t i = 0; i <= sizeof(names) / sizeof(names[0]); i++) {
		const char *user = i < sizeof(names) / sizeof(names[0]) ? names[i] : longname;
		struct person p = { .action = PERSON_APPROVE, .claims_json = ALICE_CLAIMS };
		struct pam_testcase tc[] = {
			pam_test(PAMTEST_AUTHENTICATE, PAM_USER_UNKNOWN),
			pam_test(PAMTEST_ACCOUNT, PAM_USER_UNKNOWN),
			pam_test(PAMTEST_OPEN_SESSION, PAM_USER_UNKNOWN),
			pam_test(PAMTEST_CLOSE_SESSION, PAM_USER_UNKNOWN),
			pam_test(PAMTEST_CHAUTHTOK, PAM_USER_UNKNOWN),
		};

		if (user[0] == '\0')
			continue; /* pam_get_user would prompt for a name */
		if (_pamtest_conv("entra", user, person_conv, &p, tc, 5, NULL) != PAMTEST_ERR_OK)
			fprintf(stderr, "# name %zu: unexpected result\n", i);
		for (int k = 0; k < 5; k++)
			if (tc[k].op_rv != PAM_USER_UNKNOWN)
				fprintf(stderr, "# name %zu: step %d returned %d\n", i, k, tc[k].op_rv);
		assert_int_equal(p.prompts, 0);
		checks++;
	}
	/* No request left the module and no file was made. */
	assert_int_equal(fake_count("discovery"), 0);
	assert_int_equal(fake_count("devicecode"), 0);
	assert_int_equal(tree_count(H.dir), before);

	/* The core refuses them too, before touching a file. */
	{
		struct entra_userdb_rules rules = {
			.mapping = ENTRA_USERDB_MAP_UPN, .uid_min = 1900000000, .uid_max = 1999999999,
			.admin_group = "entra-admins", .admin_gid = 1899999999,
			.home_template = "/home/%u", .shell = "/bin/bash",
		};
		struct entra_userdb_writer w = { NULL, &rules, NULL, NULL };
		struct entra_session_env env;
		struct entra_config *cfg = entra_config_new();
		char dir[512], reason[256], id[ENTRA_SESSION_ID_LEN + 1];

		path_of(dir, sizeof(dir), "names-db");
		assert_int_equal(mkdir(dir, 0755), 0);
		w.db_dir = dir;
		assert_non_null(cfg);
		free(cfg->run_dir);
		path_of(reason, sizeof(reason), "names-run");
		cfg->run_dir = strdup(reason);
		assert_int_equal(entra_session_new_id(id), 0);
		for (size_t i = 0; i <= sizeof(names) / sizeof(names[0]); i++) {
			const char *user = i < sizeof(names) / sizeof(names[0]) ? names[i] : longname;
			struct entra_userdb_login l = { user, "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9", NULL, "x", false, 1 };
			struct entra_session_request req = { .user = user, .uid = 1900000001, .gid = 1900000001,
							     .identity_kind = "user", .access_token = "t",
							     .resource = "https://x", .expires_on = 1 };

			assert_int_equal(entra_userdb_record_login(&w, &l, NULL, reason, sizeof(reason)), -EINVAL);
			assert_int_equal(entra_session_open(cfg, id, &req, &env, NULL), -EINVAL);
		}
		assert_int_equal(tree_count(dir), 0);
		assert_int_equal(tree_count(cfg->run_dir), -1);
		entra_config_free(cfg);
	}
}

static void test_report(void **state)
{
	(void)state;
	fprintf(stderr, "# local attacker checks: %u\n", checks);
}

static int group_setup(void **state)
{
	(void)state;
	return harness_start() == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	harness_stop();
	return 0;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_config_file_checks, setup_root_only),
		cmocka_unit_test_setup(test_map_file_checks, setup_root_only),
		cmocka_unit_test_setup(test_cache_dir_checks, setup_root_only),
		cmocka_unit_test_setup(test_msi_cache_checks, setup_root_only),
		cmocka_unit_test_setup(test_rbac_cache_checks, setup_root_only),
		cmocka_unit_test_setup(test_userdb_checks, setup_root_only),
		cmocka_unit_test_setup(test_run_dir_symlinks, setup_root_only),
		cmocka_unit_test_setup(test_other_user_cannot_touch_token, setup_root_only),
		cmocka_unit_test(test_hostile_user_names),
		cmocka_unit_test(test_report),
	};

	(void)argc;
	if (harness_preload_shim(argv) < 0)
		return 1;
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
