/* Faults and load: the cache, database and session directories on a full
 * file system and on a read-only one (private mount namespaces, root
 * only), writers killed mid-write while readers check that no torn file
 * is ever seen, and 200 concurrent logins with session opens against the
 * fake Entra (no corruption, no lost user database entries). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <libpamtest.h>

#include "pam_harness.h"
#include "hardening_util.h"
#include "fsutil.h"
#include "userdb.h"

#define ALICE "alice@contoso.com"
#define CLAIMS(upn, n) "{\"preferred_username\":\"" upn "\",\"oid\":\"" n "b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9\"}"
#define CONCURRENT 200

static unsigned faults_injected;

/* ---- a full login in this process --------------------------------------- */

struct login_outcome {
	int rc[4];      /* auth, account, open_session, getenvlist */
	char log[16384];
	char token_file[512];
};

static void login(const char *service, const char *user, const char *claims,
		  struct login_outcome *out)
{
	struct person p = { .action = PERSON_APPROVE, .claims_json = claims };
	struct pam_testcase tc[] = {
		pam_test(PAMTEST_AUTHENTICATE, PAM_SUCCESS),
		pam_test(PAMTEST_ACCOUNT, PAM_SUCCESS),
		pam_test(PAMTEST_OPEN_SESSION, PAM_SUCCESS),
		pam_test(PAMTEST_GETENVLIST, PAM_SUCCESS),
	};
	const char *f;

	memset(out, 0, sizeof(*out));
	log_capture_begin();
	(void)_pamtest_conv(service, user, person_conv, &p, tc, 4, NULL);
	snprintf(out->log, sizeof(out->log), "%s", log_capture_end());
	for (int i = 0; i < 4; i++)
		out->rc[i] = tc[i].op_rv;
	f = env_get(tc[3].case_out.envlist, "ENTRA_TOKEN_FILE");
	if (f != NULL)
		snprintf(out->token_file, sizeof(out->token_file), "%s", f);
	if (tc[3].case_out.envlist != NULL)
		pamtest_free_env(tc[3].case_out.envlist);
}

/* ---- full and read-only file systems ------------------------------------ */

enum fs_kind { FS_FULL, FS_READONLY };
enum fs_target { T_RUN, T_DB, T_CACHE };

struct fs_case {
	enum fs_kind kind;
	enum fs_target target;
	const char *service;
};

/* A file that fills the tmpfs to the last page. */
static int fill(const char *dir)
{
	char path[512], block[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/filler", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	memset(block, 'x', sizeof(block));
	while (write(fd, block, sizeof(block)) > 0)
		;
	/* What is left is less than a page; take it byte by byte. */
	while (write(fd, block, 1) > 0)
		;
	close(fd);
	return 0;
}

static int count_temp_files(const char *root)
{
	return (int)tree_count_temp(root);
}

/* In a child, in its own mount namespace: mount the fault on H.dir/fault,
 * then log in through a service whose run, db or cache directory is
 * there. Exit codes: 0 pass, 77 cannot set up (not root), others fail. */
static int fs_child(void *arg)
{
	const struct fs_case *c = arg;
	struct login_outcome out;
	char mnt[400], path[600];
	struct stat st;

	snprintf(mnt, sizeof(mnt), "%s/fault", H.dir);
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return 77;
	if (mount("entra-fault", mnt, "tmpfs", MS_NOSUID | MS_NODEV, "size=256k,mode=0755") < 0)
		return 77;
	/* The state the login needs before the fault: directories (and a
	 * user database holding alice, for the database cases). */
	snprintf(path, sizeof(path), "%s/db", mnt);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/cache", mnt);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/run", mnt);
	mkdir(path, 0755);
	if (c->target == T_DB) {
		login(c->service, ALICE, CLAIMS("alice@contoso.com", "0"), &out);
		if (out.rc[1] != PAM_SUCCESS) {
			fprintf(stderr, "# %s: setup login failed:\n%s\n", c->service, out.log);
			return 3;
		}
	}
	if (c->kind == FS_FULL) {
		if (fill(mnt) < 0)
			return 4;
	} else if (mount(mnt, mnt, NULL, MS_BIND, NULL) < 0 ||
		   mount(NULL, mnt, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) < 0) {
		return 77;
	}
	fprintf(stderr, "# fault: %s %s\n", c->kind == FS_FULL ? "ENOSPC" : "EROFS", c->service);
	login(c->service, c->target == T_DB ? "bob@contoso.com" : ALICE,
	      c->target == T_DB ? CLAIMS("bob@contoso.com", "1") : CLAIMS("alice@contoso.com", "0"), &out);
	if (getenv("HARDENING_VERBOSE") != NULL)
		fprintf(stderr, "# %s: rc %d %d %d\n%s\n", c->service, out.rc[0], out.rc[1], out.rc[2], out.log);
	switch (c->target) {
	case T_RUN:
		/* Authenticated, but no session: fail closed, in the account
		 * phase (the login is kept in run_dir/private for the session)
		 * or at open_session. */
		if (out.rc[0] != PAM_SUCCESS ||
		    !((out.rc[1] == PAM_SYSTEM_ERR) || (out.rc[1] == PAM_SUCCESS && out.rc[2] == PAM_SESSION_ERR)))
			return 10;
		if (strstr(out.log, c->kind == FS_FULL ? "No space left on device" : "Read-only file system") == NULL)
			return 11;
		if (out.token_file[0] != '\0' || stat(out.token_file, &st) == 0)
			return 12;
		/* Nothing half-made: no session directory, no temp file. */
		snprintf(path, sizeof(path), "%s/run", mnt);
		if (tree_count(path) > (c->kind == FS_FULL ? 2 : 0) || count_temp_files(mnt) != 0)
			return 13;
		break;
	case T_DB:
		/* The login may not be recorded: account fails, and the
		 * database still holds exactly what it held. */
		if (out.rc[0] != PAM_SUCCESS || out.rc[1] != PAM_SYSTEM_ERR)
			return 20;
		if (strstr(out.log, "cannot record the login") == NULL)
			return 21;
		{
			struct entra_userdb *db = NULL;
			struct entra_userdb_info info;
			struct entra_userdb_user u;

			snprintf(path, sizeof(path), "%s/db", mnt);
			if (entra_userdb_open(path, &db, NULL, 0) != 0)
				return 22;
			entra_userdb_get_info(db, &info);
			if (info.users != 1 || entra_userdb_find_name(db, ALICE, &u) != 0)
				return 23;
			entra_userdb_close(db);
		}
		if (count_temp_files(mnt) != 0)
			return 24;
		break;
	case T_CACHE:
		/* The caches are an optimisation: the login works without
		 * them, the failure to write one is logged, nothing partial. */
		if (out.rc[0] != PAM_SUCCESS || out.rc[2] != PAM_SUCCESS)
			return 30;
		if (strstr(out.log, "cache") == NULL)
			return 31;
		if (count_temp_files(mnt) != 0)
			return 32;
		break;
	}
	return 0;
}

static void run_fs_case(enum fs_kind kind, enum fs_target target, const char *service)
{
	struct fs_case c = { kind, target, service };
	int rc;

	if (geteuid() != 0)
		skip();
	assert_int_equal(fake_control("reset", "{}"), 0);
	assert_int_equal(fake_control("configure", "{\"interval\":1}"), 0);
	rc = run_child(fs_child, &c, false);
	if (rc == 77)
		skip();
	if (rc != 0)
		fprintf(stderr, "# %s: child exit %d\n", service, rc);
	assert_int_equal(rc, 0);
	faults_injected++;
}

static void test_full_run_dir(void **s) { (void)s; run_fs_case(FS_FULL, T_RUN, "fault-run"); }
static void test_full_db_dir(void **s) { (void)s; run_fs_case(FS_FULL, T_DB, "fault-db"); }
static void test_full_cache_dir(void **s) { (void)s; run_fs_case(FS_FULL, T_CACHE, "fault-cache"); }
static void test_ro_run_dir(void **s) { (void)s; run_fs_case(FS_READONLY, T_RUN, "fault-run"); }
static void test_ro_db_dir(void **s) { (void)s; run_fs_case(FS_READONLY, T_DB, "fault-db"); }
static void test_ro_cache_dir(void **s) { (void)s; run_fs_case(FS_READONLY, T_CACHE, "fault-cache"); }

/* entra_write_file_atomic itself on a full file system: -ENOSPC, the old
 * file intact, no temp file left. */
static int atomic_full_child(void *arg)
{
	char mnt[400], big[64 * 1024];
	int dfd, rc;
	struct entra_buf b;

	(void)arg;
	snprintf(mnt, sizeof(mnt), "%s/fault", H.dir);
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("entra-fault", mnt, "tmpfs", 0, "size=128k,mode=0700") < 0)
		return 77;
	dfd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || entra_write_file_atomic(dfd, "state", "old", 3, 0600, 0, 0) != 0)
		return 1;
	if (fill(mnt) < 0)
		return 2;
	memset(big, 'n', sizeof(big));
	rc = entra_write_file_atomic(dfd, "state", big, sizeof(big), 0600, 0, 0);
	if (rc != -ENOSPC)
		return 3;
	if (entra_read_file_trusted(dfd, "state", 1024, 0, &b) != 0 || b.len != 3 || memcmp(b.data, "old", 3) != 0)
		return 4;
	entra_buf_free(&b);
	if (count_temp_files(mnt) != 0)
		return 5;
	return 0;
}

static void test_atomic_write_enospc(void **state)
{
	int rc;

	(void)state;
	if (geteuid() != 0)
		skip();
	rc = run_child(atomic_full_child, NULL, false);
	if (rc == 77)
		skip();
	if (rc != 0)
		fprintf(stderr, "# atomic write child: exit %d\n", rc);
	assert_int_equal(rc, 0);
	faults_injected++;
}

/* ---- writers killed mid-write ------------------------------------------- */

static const char *const domains[] = { "contoso.com" };
static const struct entra_userdb_rules rules = {
	.mapping = ENTRA_USERDB_MAP_UPN, .allowed_domains = domains, .n_allowed_domains = 1,
	.uid_min = 1900000000, .uid_max = 1999999999,
	.admin_group = "entra-admins", .admin_gid = 1899999999,
	.home_template = "/home/%u", .shell = "/bin/bash",
};

static bool none_taken(uint32_t id, void *data) { (void)id; (void)data; return false; }
static bool no_name(const char *n, uint32_t a, uint32_t b, void *d) { (void)n; (void)a; (void)b; (void)d; return false; }

struct kill_dirs {
	char db[400];
	char files[400];
	int report_fd;    /* the writer reports each committed index here */
	int start;
};

/* Two versions of the atomic file, told apart by their first byte and
 * checked whole by their last: a reader must see one or the other. */
#define VERSION_LEN (256 * 1024)

static void make_version(char *buf, char tag)
{
	memset(buf, tag, VERSION_LEN);
	buf[VERSION_LEN - 1] = (char)(tag ^ 0x20);
}

static int writer(void *arg)
{
	struct kill_dirs *k = arg;
	struct entra_userdb_system sys = { none_taken, no_name, NULL };
	struct entra_userdb_writer w = { k->db, &rules, &sys, NULL };
	char name[64], oid[40], reason[256];
	static char va[VERSION_LEN], vb[VERSION_LEN];
	int dfd = open(k->files, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	make_version(va, 'a');
	make_version(vb, 'b');
	for (int i = k->start;; i++) {
		struct entra_userdb_login l = { name, oid, NULL, "Load Test", false, 1700000000 };

		snprintf(name, sizeof(name), "user%d@contoso.com", i);
		snprintf(oid, sizeof(oid), "%08x-0000-4000-8000-000000000000", i);
		if (entra_userdb_record_login(&w, &l, NULL, reason, sizeof(reason)) != 0)
			return 1;
		if (write(k->report_fd, &i, sizeof(i)) != sizeof(i))
			return 2;
		if (entra_write_file_atomic(dfd, "state", (i & 1) ? va : vb, VERSION_LEN, 0600, 0, 0) != 0)
			return 3;
	}
}

static int reader(void *arg)
{
	struct kill_dirs *k = arg;
	static char buf[VERSION_LEN + 1];
	int dfd = open(k->files, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	long long end = now_ms() + 3000;
	unsigned reads = 0;

	while (now_ms() < end) {
		struct entra_userdb *db = NULL;
		char reason[256];
		int rc = entra_userdb_open(k->db, &db, reason, sizeof(reason));
		int fd;
		ssize_t n;

		if (rc == 0)
			entra_userdb_close(db);
		else if (rc != -ENOENT) {
			fprintf(stderr, "# reader: users.db: %s (%d)\n", reason, rc);
			return 1;
		}
		fd = openat(dfd, "state", O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			n = read(fd, buf, sizeof(buf));
			close(fd);
			if (n != VERSION_LEN || (buf[0] != 'a' && buf[0] != 'b') ||
			    buf[VERSION_LEN - 2] != buf[0] || buf[VERSION_LEN - 1] != (char)(buf[0] ^ 0x20)) {
				fprintf(stderr, "# reader: torn state file (%zd bytes)\n", n);
				return 2;
			}
		}
		reads++;
	}
	return reads > 10 ? 0 : 3;
}

static void test_killed_writers(void **state)
{
	struct kill_dirs k;
	int fds[2], committed = -1, next = 0, status;
	pid_t readers[2];
	unsigned kills = 0;

	(void)state;
	snprintf(k.db, sizeof(k.db), "%s/kill-db", H.dir);
	snprintf(k.files, sizeof(k.files), "%s/kill-files", H.dir);
	assert_int_equal(mkdir(k.db, 0755), 0);
	assert_int_equal(mkdir(k.files, 0700), 0);
	assert_int_equal(pipe(fds), 0);
	fcntl(fds[0], F_SETFL, O_NONBLOCK);
	k.report_fd = fds[1];
	for (int i = 0; i < 2; i++) {
		readers[i] = fork();
		assert_true(readers[i] >= 0);
		if (readers[i] == 0)
			_exit(reader(&k));
	}
	srand((unsigned)getpid());
	/* For ~2.5 s: start a writer, let it run 5-60 ms, SIGKILL it. */
	for (long long end = now_ms() + 2500; now_ms() < end;) {
		pid_t w;
		int v;

		k.start = next;
		w = fork();
		assert_true(w >= 0);
		if (w == 0)
			_exit(writer(&k));
		usleep((useconds_t)(5000 + rand() % 55000));
		kill(w, SIGKILL);
		assert_int_equal(waitpid(w, &status, 0), w);
		assert_true(WIFSIGNALED(status)); /* it never stopped by itself */
		kills++;
		while (read(fds[0], &v, sizeof(v)) == (ssize_t)sizeof(v))
			committed = v;
		next = committed + 1;
	}
	for (int i = 0; i < 2; i++) {
		assert_int_equal(waitpid(readers[i], &status, 0), readers[i]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	/* Every login a writer reported as recorded is in the database. */
	{
		struct entra_userdb *db = NULL;
		struct entra_userdb_user u;
		char name[64];

		assert_int_equal(entra_userdb_open(k.db, &db, NULL, 0), 0);
		for (int i = 0; i <= committed; i++) {
			snprintf(name, sizeof(name), "user%d@contoso.com", i);
			assert_int_equal(entra_userdb_find_name(db, name, &u), 0);
		}
		entra_userdb_close(db);
	}
	fprintf(stderr, "# %u writers killed, %d logins committed, no torn file seen; %d temp files left by killed writers\n",
		kills, committed + 1, count_temp_files(k.db) + count_temp_files(k.files));
	assert_true(kills >= 20 && committed >= 0);
	faults_injected += kills;
	close(fds[0]);
	close(fds[1]);
}

/* ---- 200 concurrent logins ------------------------------------------------ */

static void test_concurrent_logins(void **state)
{
	pid_t pids[CONCURRENT];
	int ok = 0, status;
	long long start;
	struct entra_userdb *db = NULL;
	struct entra_userdb_info info;

	(void)state;
	assert_int_equal(fake_control("reset", "{}"), 0);
	assert_int_equal(fake_control("configure", "{\"interval\":1}"), 0);
	start = now_ms();
	for (int i = 0; i < CONCURRENT; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			char user[64], claims[256];
			struct login_outcome out;
			struct stat st;
			int fd = open("/dev/null", O_WRONLY), keep = dup(2);

			if (fd >= 0)
				dup2(fd, 2);
			fd = keep;
			snprintf(user, sizeof(user), "load%d@contoso.com", i);
			snprintf(claims, sizeof(claims),
				 "{\"preferred_username\":\"%s\",\"oid\":\"%08x-1111-4000-8000-000000000000\"}", user, i);
			login("load", user, claims, &out);
			if (out.rc[0] != PAM_SUCCESS || out.rc[1] != PAM_SUCCESS || out.rc[2] != PAM_SUCCESS) {
				if (getenv("HARDENING_VERBOSE") != NULL) {
					dprintf(fd, "# %s: rc %d %d %d\n%s\n", user, out.rc[0], out.rc[1], out.rc[2], out.log);
				}
				_exit(1);
			}
			if (stat(out.token_file, &st) != 0 || (st.st_mode & 077) != 0 || st.st_size == 0)
				_exit(2);
			_exit(0);
		}
	}
	for (int i = 0; i < CONCURRENT; i++)
		if (waitpid(pids[i], &status, 0) == pids[i] && WIFEXITED(status) && WEXITSTATUS(status) == 0)
			ok++;
	fprintf(stderr, "# %d/%d concurrent logins with sessions in %lld ms\n", ok, CONCURRENT, now_ms() - start);
	assert_int_equal(ok, CONCURRENT);

	/* The user database: every login recorded once, with its own uid and
	 * object id; the file validates (checksum) after 200 writers. */
	{
		char path[400];

		snprintf(path, sizeof(path), "%s/load-db", H.dir);
		assert_int_equal(entra_userdb_open(path, &db, NULL, 0), 0);
	}
	entra_userdb_get_info(db, &info);
	assert_int_equal(info.users, CONCURRENT);
	for (int i = 0; i < CONCURRENT; i++) {
		struct entra_userdb_user u, v;
		char user[64], oid[40];

		snprintf(user, sizeof(user), "load%d@contoso.com", i);
		snprintf(oid, sizeof(oid), "%08x-1111-4000-8000-000000000000", i);
		assert_int_equal(entra_userdb_find_name(db, user, &u), 0);
		assert_string_equal(u.object_id, oid);
		assert_int_equal(entra_userdb_find_uid(db, u.uid, &v), 0);
		assert_string_equal(v.name, user);
	}
	entra_userdb_close(db);
	/* entractl agrees (a separate reader of the same file). */
	{
		char cmd[1024], *text = malloc(1 << 20);
		int lines = 0;

		assert_non_null(text);
		snprintf(cmd, sizeof(cmd), "%s/tools/entractl --config %s/load.conf users list",
			 getenv("ENTRA_BUILDDIR") ? getenv("ENTRA_BUILDDIR") : TEST_BUILDDIR, H.dir);
		assert_int_equal(run_shell(cmd, text, 1 << 20), 0);
		for (const char *q = text; *q; q++)
			lines += *q == '\n';
		free(text);
		assert_true(lines >= CONCURRENT);
	}
	/* 200 sessions, each its own directory with a token and a private
	 * refresh-token entry. */
	{
		char path[400];

		snprintf(path, sizeof(path), "%s/load-run/private", H.dir);
		assert_int_equal(tree_count(path), CONCURRENT);
		snprintf(path, sizeof(path), "%s/load-run", H.dir);
		assert_int_equal(tree_count(path), 1 + CONCURRENT + 3 * CONCURRENT);
		assert_int_equal(count_temp_files(path), 0);
	}
}

static void test_report(void **state)
{
	(void)state;
	fprintf(stderr, "# faults injected: %u\n", faults_injected);
}

static int write_services(void)
{
	char args[1200], conf[400];
	static const struct { const char *name, *key, *dir; } fs[] = {
		{ "fault-run", "run_dir", "run" },
		{ "fault-db", "db_dir", "db" },
		{ "fault-cache", "cache_dir", "cache" },
	};
	char fault[400];

	snprintf(fault, sizeof(fault), "%s/fault", H.dir);
	if (mkdir(fault, 0755) < 0)
		return -1;
	for (size_t i = 0; i < sizeof(fs) / sizeof(fs[0]); i++) {
		snprintf(args, sizeof(args), "%s=%s/fault/%s", fs[i].key, H.dir, fs[i].dir);
		if (harness_service(fs[i].name, args) < 0)
			return -1;
	}
	snprintf(conf, sizeof(conf), "%s/load.conf", H.dir);
	snprintf(args, sizeof(args), "db_dir = %s/load-db\nrun_dir = %s/load-run\ncache_dir = %s/load-cache\n",
		 H.dir, H.dir, H.dir);
	/* harness_write_config writes db_dir/run_dir first; later keys
	 * would be duplicates, so write the whole file here. */
	{
		FILE *f = fopen(conf, "w");

		if (f == NULL)
			return -1;
		fprintf(f, "tenant = %s\nclient_id = 4f6c3f2e-0d5a-4a3e-9a54-1c2b3d4e5f60\nauthority = %s\n"
			   "ca_file = %s\n%suser_mapping = upn\nallowed_domains = contoso.com\n"
			   "login_timeout = 60\nhttp_timeout = 20\nqr_code = no\ncreate_home = no\n",
			H.tenant_id, H.authority, H.ca_file, args);
		if (fclose(f) != 0 || chmod(conf, 0644) != 0)
			return -1;
	}
	snprintf(args, sizeof(args), "conf=%s", conf);
	return harness_service("load", args);
}

static int group_setup(void **state)
{
	(void)state;
	return harness_start() == 0 && write_services() == 0 ? 0 : -1;
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
		cmocka_unit_test(test_atomic_write_enospc),
		cmocka_unit_test(test_full_run_dir),
		cmocka_unit_test(test_full_db_dir),
		cmocka_unit_test(test_full_cache_dir),
		cmocka_unit_test(test_ro_run_dir),
		cmocka_unit_test(test_ro_db_dir),
		cmocka_unit_test(test_ro_cache_dir),
		cmocka_unit_test(test_killed_writers),
		cmocka_unit_test(test_concurrent_logins),
		cmocka_unit_test(test_report),
	};

	(void)argc;
	/* 200 concurrent logins: pam_wrapper's per-process set-up would race. */
	if (harness_preload_shim(argv) < 0)
		return 1;
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
