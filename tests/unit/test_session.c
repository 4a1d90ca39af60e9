/* The session's private store entry as sudo_reuse_window reads it back
 * (entra_session_read_record), and the login fields carried from the
 * account phase to the session (stash/claim). The store is root's: the
 * tests skip when not run as root. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"
#include "session.h"

static char dir[64];
static struct entra_config *cfg;
static const struct entra_log quiet = { 0 };

static const struct entra_session_request base = {
	.user = "alice@contoso.com",
	.uid = 1900000123,
	.gid = 1900000123,
	.identity_kind = "user",
	.tenant_id = "72f988bf-86f1-41af-91ab-2d7cd011db47",
	.object_id = "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9",
	.upn = "alice@contoso.com",
	.access_token = "header.payload.signature",
	.expires_on = 2000000000,
	.resource = "https://management.azure.com/.default",
	.refresh_token = "refresh-secret",
};

static int setup(void **state)
{
	char run[96], err[256];

	(void)state;
	if (geteuid() != 0)
		return 0;
	snprintf(dir, sizeof(dir), "/tmp/test_session-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(run, sizeof(run), "%s/run", dir);
	cfg = entra_config_new();
	return cfg != NULL && entra_config_set(cfg, "run_dir", run, err, sizeof(err)) == 0 ? 0 : -1;
}

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return type == FTW_DP ? rmdir(path) : unlink(path);
}

static int teardown(void **state)
{
	(void)state;
	entra_config_free(cfg);
	if (dir[0] != '\0' && nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
		return -1;
	return 0;
}

static void open_session(const struct entra_session_request *req, char id[ENTRA_SESSION_ID_LEN + 1])
{
	struct entra_session_env env = { NULL, 0 };

	assert_int_equal(entra_session_new_id(id), 0);
	assert_int_equal(entra_session_open(cfg, id, req, &env, &quiet), 0);
	entra_session_env_free(&env);
}

static void private_path(const char *id, char *out, size_t len)
{
	snprintf(out, len, "%s/run/private/%s", dir, id);
}

static void test_record_of_a_login(void **state)
{
	struct entra_session_request req = base;
	struct entra_session_record rec;
	char id[ENTRA_SESSION_ID_LEN + 1], path[200];
	struct stat st;

	(void)state;
	if (geteuid() != 0)
		skip();
	req.login_time = 1700000000;
	req.admin = true;
	open_session(&req, id);
	assert_int_equal(entra_session_read_record(cfg, id, &rec), 0);
	assert_string_equal(rec.user, base.user);
	assert_int_equal(rec.uid, base.uid);
	assert_string_equal(rec.tenant_id, base.tenant_id);
	assert_string_equal(rec.object_id, base.object_id);
	assert_string_equal(rec.upn, base.upn);
	assert_string_equal(rec.access_token, base.access_token);
	assert_int_equal(rec.login_time, 1700000000);
	assert_true(rec.admin);
	entra_session_record_free(&rec);
	assert_null(rec.access_token);
	private_path(id, path, sizeof(path));
	assert_int_equal(lstat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_uid, 0);

	/* Closed: nothing left to reuse. */
	assert_int_equal(entra_session_close(cfg, id, base.uid, true, &quiet), 0);
	assert_int_equal(entra_session_read_record(cfg, id, &rec), -ENOENT);
}

static void test_no_login_no_record(void **state)
{
	struct entra_session_request req = base;
	struct entra_session_record rec;
	char id[ENTRA_SESSION_ID_LEN + 1];

	(void)state;
	if (geteuid() != 0)
		skip();
	open_session(&req, id); /* refresh token only: no login_time */
	assert_int_equal(entra_session_read_record(cfg, id, &rec), -ENOENT);
	assert_null(rec.access_token);
	assert_int_equal(entra_session_close(cfg, id, base.uid, true, &quiet), 0);

	/* A login without a refresh token still keeps its entry. */
	req.refresh_token = NULL;
	req.login_time = 1700000000;
	open_session(&req, id);
	assert_int_equal(entra_session_read_record(cfg, id, &rec), 0);
	assert_false(rec.admin);
	entra_session_record_free(&rec);
	assert_int_equal(entra_session_close(cfg, id, base.uid, true, &quiet), 0);

	assert_int_equal(entra_session_read_record(cfg, "../../etc/shadow", &rec), -EINVAL);
	assert_int_equal(entra_session_read_record(cfg, NULL, &rec), -EINVAL);
	assert_int_equal(entra_session_read_record(cfg, "0123456789abcdef0123456789abcdef", &rec), -ENOENT);
}

/* An entry that is not root's 0600 regular file is not trusted. */
static void test_untrusted_entry(void **state)
{
	struct entra_session_request req = base;
	struct entra_session_record rec;
	char id[ENTRA_SESSION_ID_LEN + 1], path[200], target[220];

	(void)state;
	if (geteuid() != 0)
		skip();
	req.login_time = 1700000000;
	open_session(&req, id);
	private_path(id, path, sizeof(path));
	assert_int_equal(chmod(path, 0620), 0); /* writable by the group */
	assert_true(entra_session_read_record(cfg, id, &rec) < 0);
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(chown(path, 1, 0), 0);
	assert_true(entra_session_read_record(cfg, id, &rec) < 0);
	assert_int_equal(chown(path, 0, 0), 0);
	snprintf(target, sizeof(target), "%s.moved", path);
	assert_int_equal(rename(path, target), 0);
	assert_int_equal(symlink(target, path), 0);
	assert_true(entra_session_read_record(cfg, id, &rec) < 0);
	assert_null(rec.access_token);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(unlink(target), 0);
	assert_int_equal(entra_session_close(cfg, id, base.uid, true, &quiet), 0);
}

/* The login time and decision travel from the account phase to the
 * session through the pending entry. */
static void test_pending_carries_login(void **state)
{
	struct entra_session_request req = base;
	struct entra_pending_login pending;
	char handle[ENTRA_SESSION_ID_LEN + 1];

	(void)state;
	if (geteuid() != 0)
		skip();
	req.login_time = 1700000042;
	req.admin = true;
	assert_int_equal(entra_session_stash(cfg, &req, "/home/alice", handle, &quiet), 0);
	assert_int_equal(entra_session_claim(cfg, handle, base.user, &pending, &quiet), 0);
	assert_int_equal(pending.req.login_time, 1700000042);
	assert_true(pending.req.admin);
	entra_pending_login_free(&pending);

	req.login_time = 0;
	req.admin = false;
	assert_int_equal(entra_session_stash(cfg, &req, NULL, handle, &quiet), 0);
	assert_int_equal(entra_session_claim(cfg, handle, base.user, &pending, &quiet), 0);
	assert_int_equal(pending.req.login_time, 0);
	assert_false(pending.req.admin);
	entra_pending_login_free(&pending);
}

static void session_path(const char *id, const char *name, char *out, size_t len)
{
	snprintf(out, len, "%s/run/%lu/%s%s%s", dir, (unsigned long)base.uid, id, name ? "/" : "",
		 name ? name : "");
}

/* The directory is the user's 0700 and the token file the user's 0600
 * once open returns; close removes what it wrote and whatever the user
 * put there, never following a link. */
static void test_open_close_files(void **state)
{
	struct entra_session_request req = base;
	char id[ENTRA_SESSION_ID_LEN + 1], path[256], path2[256], outside[128];
	struct stat st;
	FILE *fp;

	(void)state;
	if (geteuid() != 0)
		skip();
	req.refresh_token = NULL;
	open_session(&req, id);
	session_path(id, NULL, path, sizeof(path));
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(st.st_uid, base.uid);
	assert_int_equal(st.st_gid, base.gid);
	session_path(id, "token", path, sizeof(path));
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_uid, base.uid);
	assert_int_equal(st.st_size, (off_t)strlen(base.access_token));
	/* Only the token file: nothing left from writing it. */
	session_path(id, NULL, path, sizeof(path));
	{
		DIR *d = opendir(path);
		struct dirent *de;
		int n = 0;

		assert_non_null(d);
		while ((de = readdir(d)) != NULL)
			n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
		closedir(d);
		assert_int_equal(n, 1);
	}

	/* The plain case: the files it wrote, then the directory. */
	assert_int_equal(entra_session_close(cfg, id, base.uid, true, &quiet), 0);
	assert_int_equal(lstat(path, &st), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(entra_session_close(cfg, id, base.uid, true, &quiet), 0);

	/* What the user planted goes too; a link's target stays. */
	snprintf(outside, sizeof(outside), "%s/outside", dir);
	fp = fopen(outside, "w");
	assert_non_null(fp);
	fclose(fp);
	open_session(&req, id);
	session_path(id, "token", path, sizeof(path));
	assert_int_equal(unlink(path), 0);
	assert_int_equal(symlink(outside, path), 0); /* "token" now a link */
	session_path(id, "planted", path, sizeof(path));
	assert_int_equal(symlink(outside, path), 0);
	session_path(id, "sub", path, sizeof(path));
	assert_int_equal(mkdir(path, 0700), 0);
	session_path(id, "sub/file", path2, sizeof(path2));
	fp = fopen(path2, "w");
	assert_non_null(fp);
	fclose(fp);
	assert_int_equal(entra_session_close(cfg, id, base.uid, true, &quiet), 0);
	session_path(id, NULL, path, sizeof(path));
	assert_int_equal(lstat(path, &st), -1);
	assert_int_equal(lstat(outside, &st), 0);

	/* "token" replaced by a directory with content. */
	open_session(&req, id);
	session_path(id, "token", path, sizeof(path));
	assert_int_equal(unlink(path), 0);
	assert_int_equal(mkdir(path, 0700), 0);
	session_path(id, "token/x", path2, sizeof(path2));
	fp = fopen(path2, "w");
	assert_non_null(fp);
	fclose(fp);
	assert_int_equal(entra_session_close(cfg, id, base.uid, true, &quiet), 0);
	session_path(id, NULL, path, sizeof(path));
	assert_int_equal(lstat(path, &st), -1);

	/* Another uid's close removes nothing, not even the private entry. */
	req = base;
	req.login_time = 1700000000;
	open_session(&req, id);
	assert_int_equal(entra_session_close(cfg, id, base.uid + 1, true, &quiet), 0);
	session_path(id, NULL, path, sizeof(path));
	assert_int_equal(lstat(path, &st), 0);
	private_path(id, path2, sizeof(path2));
	assert_int_equal(lstat(path2, &st), 0);
	assert_int_equal(entra_session_close(cfg, id, base.uid, true, &quiet), 0);
	assert_int_equal(lstat(path, &st), -1);
	assert_int_equal(lstat(path2, &st), -1);
	assert_int_equal(unlink(outside), 0);
}

/* A session without a private entry (a service account's) opens and
 * closes through the per-uid directory alone; a run_dir reached through
 * a symlink, and a per-uid directory others could enter, take the
 * component-wise path, which allows the one and refuses the other. */
static void test_paths_to_the_uid_dir(void **state)
{
	struct entra_session_request req = base;
	struct entra_session_env env = { NULL, 0 };
	char id[ENTRA_SESSION_ID_LEN + 1], path[256], link[128], err[256];
	struct stat st;

	(void)state;
	if (geteuid() != 0)
		skip();
	req.refresh_token = NULL;
	assert_false(entra_session_keeps_private(&req));
	open_session(&req, id); /* creates run/<uid> the careful way */
	assert_int_equal(entra_session_close(cfg, id, base.uid, false, &quiet), 0);
	open_session(&req, id); /* now in one step */
	session_path(id, "token", path, sizeof(path));
	assert_int_equal(lstat(path, &st), 0);
	assert_int_equal(st.st_uid, base.uid);
	assert_int_equal(entra_session_close(cfg, id, base.uid, false, &quiet), 0);
	session_path(id, NULL, path, sizeof(path));
	assert_int_equal(lstat(path, &st), -1);

	/* run_dir through a symlink (as /var/run is): still works. */
	snprintf(link, sizeof(link), "%s/link", dir);
	assert_int_equal(symlink(dir, link), 0);
	snprintf(path, sizeof(path), "%s/run", link);
	assert_int_equal(entra_config_set(cfg, "run_dir", path, err, sizeof(err)), 0);
	open_session(&req, id);
	session_path(id, "token", path, sizeof(path));
	assert_int_equal(lstat(path, &st), 0);
	assert_int_equal(entra_session_close(cfg, id, base.uid, false, &quiet), 0);
	session_path(id, NULL, path, sizeof(path));
	assert_int_equal(lstat(path, &st), -1);
	snprintf(path, sizeof(path), "%s/run", dir);
	assert_int_equal(entra_config_set(cfg, "run_dir", path, err, sizeof(err)), 0);
	assert_int_equal(unlink(link), 0);

	/* A per-uid directory with the wrong mode or owner: refused. */
	snprintf(path, sizeof(path), "%s/run/%lu", dir, (unsigned long)base.uid);
	assert_int_equal(chmod(path, 0733), 0);
	assert_int_equal(entra_session_new_id(id), 0);
	assert_int_equal(entra_session_open(cfg, id, &req, &env, &quiet), -EACCES);
	assert_null(env.vars);
	assert_int_equal(chmod(path, 0711), 0);
	assert_int_equal(chown(path, 1, 0), 0);
	assert_int_equal(entra_session_open(cfg, id, &req, &env, &quiet), -EPERM);
	assert_int_equal(chown(path, 0, 0), 0);
	open_session(&req, id);
	assert_int_equal(entra_session_close(cfg, id, base.uid, false, &quiet), 0);

	/* Closing through the component-wise path (run_dir behind a
	 * symlink) with a per-uid directory the user could write: refused,
	 * and a session directory swapped for a link to elsewhere is not
	 * followed: the file there named "token" stays. */
	open_session(&req, id);
	assert_int_equal(symlink(dir, link), 0);
	snprintf(path, sizeof(path), "%s/run", link);
	assert_int_equal(entra_config_set(cfg, "run_dir", path, err, sizeof(err)), 0);
	{
		char uid_dir[160], victim[160], planted[200], sess[256], away[270];
		FILE *fp;

		snprintf(uid_dir, sizeof(uid_dir), "%s/run/%lu", dir, (unsigned long)base.uid);
		snprintf(victim, sizeof(victim), "%s/victim", dir);
		snprintf(planted, sizeof(planted), "%s/token", victim);
		assert_int_equal(mkdir(victim, 0700), 0);
		fp = fopen(planted, "w");
		assert_non_null(fp);
		fclose(fp);
		session_path(id, NULL, sess, sizeof(sess));
		snprintf(away, sizeof(away), "%s.away", sess);
		assert_int_equal(rename(sess, away), 0);
		assert_int_equal(symlink(victim, sess), 0);
		assert_int_equal(chmod(uid_dir, 0777), 0);
		assert_int_equal(entra_session_close(cfg, id, base.uid, false, &quiet), -EACCES);
		assert_int_equal(access(planted, F_OK), 0);
		/* Put right, the session closes the same way. */
		assert_int_equal(chmod(uid_dir, 0711), 0);
		assert_int_equal(unlink(sess), 0);
		assert_int_equal(rename(away, sess), 0);
		assert_int_equal(entra_session_close(cfg, id, base.uid, false, &quiet), 0);
		assert_int_equal(lstat(sess, &st), -1);
		assert_int_equal(unlink(planted), 0);
		assert_int_equal(rmdir(victim), 0);
	}
	snprintf(path, sizeof(path), "%s/run", dir);
	assert_int_equal(entra_config_set(cfg, "run_dir", path, err, sizeof(err)), 0);
	assert_int_equal(unlink(link), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_record_of_a_login),
		cmocka_unit_test(test_no_login_no_record),
		cmocka_unit_test(test_untrusted_entry),
		cmocka_unit_test(test_pending_carries_login),
		cmocka_unit_test(test_open_close_files),
		cmocka_unit_test(test_paths_to_the_uid_dir),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
