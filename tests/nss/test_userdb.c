/* Unit tests of lib/userdb: format, writer rules, first-login resolution,
 * corrupt files, replacement seen by an earlier reader, concurrent writers. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "userdb.h"

#define OID_A "11111111-1111-1111-1111-111111111111"
#define OID_B "22222222-2222-2222-2222-222222222222"
#define TENANT "72f988bf-86f1-41af-91ab-2d7cd011db47"

static const char *const domains[] = { "contoso.com", "fabrikam.org" };
static const char *const locals[] = { "breakglass", "admin@contoso.com" };

struct fixture {
	char dir[64];
	struct entra_userdb_rules rules;
	struct entra_userdb_system sys;
	struct entra_userdb_writer w;
	uint32_t taken[8]; /* uids the fake "system" knows */
	size_t n_taken;
	const char *taken_name;
};

static bool fake_uid_taken(uint32_t id, void *data)
{
	struct fixture *f = data;

	for (size_t i = 0; i < f->n_taken; i++)
		if (f->taken[i] == id)
			return true;
	return false;
}

static bool fake_name_taken(const char *name, uint32_t lo, uint32_t hi, void *data)
{
	struct fixture *f = data;

	(void)lo;
	(void)hi;
	return f->taken_name != NULL && strcmp(f->taken_name, name) == 0;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_userdb.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->rules.mapping = ENTRA_USERDB_MAP_UPN;
	f->rules.allowed_domains = domains;
	f->rules.n_allowed_domains = 2;
	f->rules.local_users = locals;
	f->rules.n_local_users = 2;
	f->rules.uid_min = 1900000000;
	f->rules.uid_max = 1999999999;
	f->rules.admin_group = "entra-admins";
	f->rules.admin_gid = 1899999999;
	f->rules.home_template = "/home/%u";
	f->rules.shell = "/bin/bash";
	f->sys.uid_taken = fake_uid_taken;
	f->sys.name_taken = fake_name_taken;
	f->sys.data = f;
	f->w.db_dir = f->dir;
	f->w.rules = &f->rules;
	f->w.system = &f->sys;
	f->w.log = NULL;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static int record(struct fixture *f, const char *name, const char *oid, bool admin,
		  struct entra_userdb_entry *out)
{
	struct entra_userdb_login l = { name, oid, TENANT, "Test User", admin, 1700000000 };
	char reason[256] = "";

	return entra_userdb_record_login(&f->w, &l, out, reason, sizeof(reason));
}

static char *db_path(struct fixture *f, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", f->dir, ENTRA_USERDB_FILE);
	return buf;
}

static void test_write_read(void **state)
{
	struct fixture *f = *state;
	struct entra_userdb_entry e;
	struct entra_userdb *db;
	struct entra_userdb_user u;
	struct entra_userdb_group g;
	struct entra_userdb_info info;

	assert_int_equal(record(f, "Alice@Contoso.com", OID_A, true, &e), 0);
	assert_true(e.uid >= f->rules.uid_min && e.uid <= f->rules.uid_max);
	assert_int_equal(e.gid, e.uid);
	assert_string_equal(e.home, "/home/alice@contoso.com");
	assert_string_equal(e.shell, "/bin/bash");

	assert_int_equal(entra_userdb_open(f->dir, &db, NULL, 0), 0);
	entra_userdb_get_info(db, &info);
	assert_int_equal(info.users, 1);
	assert_int_equal(info.admins, 1);
	assert_false(info.stale);
	assert_int_equal(entra_userdb_find_name(db, "alice@contoso.COM", &u), 0);
	assert_string_equal(u.name, "Alice@Contoso.com"); /* as first seen */
	assert_string_equal(u.object_id, OID_A);
	assert_string_equal(u.tenant_id, TENANT);
	assert_string_equal(u.gecos, "Test User");
	assert_int_equal(u.uid, e.uid);
	assert_true(u.admin);
	assert_false(u.synthetic);
	assert_int_equal(entra_userdb_find_uid(db, e.uid, &u), 0);
	assert_string_equal(u.name, "Alice@Contoso.com");
	assert_int_equal(entra_userdb_find_uid(db, e.uid + 1, &u), -ENOENT);
	assert_int_equal(entra_userdb_group_by_gid(db, e.uid, &g), 0);
	assert_string_equal(g.name, "Alice@Contoso.com");
	assert_int_equal(g.n_members, 0);
	assert_int_equal(entra_userdb_group_by_name(db, "entra-admins", &g), 0);
	assert_int_equal(g.gid, 1899999999);
	assert_int_equal(g.n_members, 1);
	assert_string_equal(entra_userdb_admin_member(db, 0), "Alice@Contoso.com");
	assert_null(entra_userdb_admin_member(db, 1));
	entra_userdb_close(db);
	entra_userdb_entry_free(&e);

	/* The last login decides admin. */
	assert_int_equal(record(f, "alice@contoso.com", OID_A, false, &e), 0);
	assert_false(e.admin);
	entra_userdb_entry_free(&e);
	assert_int_equal(entra_userdb_open(f->dir, &db, NULL, 0), 0);
	assert_int_equal(entra_userdb_group_by_name(db, "entra-admins", &g), 0);
	assert_int_equal(g.n_members, 0);
	entra_userdb_get_info(db, &info);
	assert_int_equal(info.users, 1);
	entra_userdb_close(db);
}

static void test_rename_keeps_uid(void **state)
{
	struct fixture *f = *state;
	struct entra_userdb_entry e1, e2;
	struct entra_userdb *db;
	struct entra_userdb_user u;

	assert_int_equal(record(f, "bob@contoso.com", OID_A, false, &e1), 0);
	assert_int_equal(record(f, "robert@fabrikam.org", OID_A, false, &e2), 0);
	assert_int_equal(e1.uid, e2.uid);
	assert_string_equal(e2.name, "robert@fabrikam.org");
	assert_string_equal(e2.home, e1.home); /* the home directory stays */
	assert_int_equal(entra_userdb_open(f->dir, &db, NULL, 0), 0);
	assert_int_equal(entra_userdb_find_name(db, "robert@fabrikam.org", &u), 0);
	assert_int_equal(u.uid, e1.uid);
	assert_int_equal(entra_userdb_find_name(db, "bob@contoso.com", &u), -ENOENT);
	entra_userdb_close(db);
	entra_userdb_entry_free(&e1);
	entra_userdb_entry_free(&e2);
}

static void test_conflicting_oid_refused(void **state)
{
	struct fixture *f = *state;
	struct entra_userdb_entry e;
	struct entra_userdb_login l = { "carol@contoso.com", OID_B, TENANT, "Impostor", true, 1700000001 };
	struct entra_userdb *db;
	struct entra_userdb_user u;
	char reason[256] = "";

	assert_int_equal(record(f, "carol@contoso.com", OID_A, false, &e), 0);
	assert_int_equal(entra_userdb_record_login(&f->w, &l, NULL, reason, sizeof(reason)), -EEXIST);
	assert_non_null(strstr(reason, OID_A));
	/* Another object id cannot rename itself onto the name either. */
	l.name = "dave@contoso.com";
	assert_int_equal(entra_userdb_record_login(&f->w, &l, NULL, reason, sizeof(reason)), 0);
	l.name = "CAROL@contoso.com";
	assert_int_equal(entra_userdb_record_login(&f->w, &l, NULL, reason, sizeof(reason)), -EEXIST);

	assert_int_equal(entra_userdb_open(f->dir, &db, NULL, 0), 0);
	assert_int_equal(entra_userdb_find_name(db, "carol@contoso.com", &u), 0);
	assert_string_equal(u.object_id, OID_A);
	assert_int_equal(u.uid, e.uid);
	assert_false(u.admin);
	entra_userdb_close(db);
	entra_userdb_entry_free(&e);

	/* Reserved names and accounts of the system. */
	assert_int_equal(record(f, "entra-admins", OID_B, false, NULL), -EEXIST);
	assert_int_equal(record(f, "admin@contoso.com", OID_B, false, NULL), -EEXIST);
	f->taken_name = "eve@contoso.com";
	assert_int_equal(record(f, "eve@contoso.com", "33333333-3333-3333-3333-333333333333", false, NULL),
			 -EEXIST);
	/* Bad input. */
	assert_int_equal(record(f, "../etc@contoso.com", OID_B, false, NULL), -EINVAL);
	assert_int_equal(record(f, "x@contoso.com", "not-a-guid", false, NULL), -EINVAL);
}

static void test_preprovision_then_bind(void **state)
{
	struct fixture *f = *state;
	struct entra_userdb_login l = { "frank@contoso.com", NULL, NULL, NULL, false, 0 };
	struct entra_userdb_entry e1, e2;
	char reason[256];

	assert_int_equal(entra_userdb_record_login(&f->w, &l, &e1, reason, sizeof(reason)), 0);
	assert_string_equal(e1.object_id, "");
	assert_int_equal(e1.last_login, 0);
	assert_int_equal(record(f, "frank@contoso.com", OID_B, false, &e2), 0);
	assert_int_equal(e1.uid, e2.uid);
	assert_string_equal(e2.object_id, OID_B);
	assert_int_equal(e2.last_login, 1700000000);
	entra_userdb_entry_free(&e1);
	entra_userdb_entry_free(&e2);
	/* Now bound: another object id is refused. */
	assert_int_equal(record(f, "frank@contoso.com", OID_A, false, NULL), -EEXIST);
}

static void test_uid_collision_probing(void **state)
{
	struct fixture *f = *state;
	struct entra_userdb_entry e1, e2, e3;
	uint32_t natural;

	assert_int_equal(entra_userdb_pick_uid("gina@contoso.com", f->rules.uid_min, f->rules.uid_max,
					       f->rules.admin_gid, NULL, NULL, &natural), 0);
	/* The system already has that uid (a local account or group). */
	f->taken[f->n_taken++] = natural;
	assert_int_equal(record(f, "gina@contoso.com", OID_A, false, &e1), 0);
	assert_int_not_equal(e1.uid, natural);
	assert_int_equal(e1.uid, natural == f->rules.uid_max ? f->rules.uid_min : natural + 1);
	entra_userdb_entry_free(&e1);

	/* A range of two: the second user probes past the first, a third is refused. */
	f->rules.uid_min = 5000;
	f->rules.uid_max = 5001;
	f->n_taken = 0;
	assert_int_equal(record(f, "h1@contoso.com", "44444444-4444-4444-4444-444444444444", false, &e2), 0);
	assert_int_equal(record(f, "h2@contoso.com", "55555555-5555-5555-5555-555555555555", false, &e3), 0);
	assert_true(e2.uid >= 5000 && e2.uid <= 5001 && e3.uid >= 5000 && e3.uid <= 5001);
	assert_int_not_equal(e2.uid, e3.uid);
	assert_int_equal(record(f, "h3@contoso.com", "66666666-6666-6666-6666-666666666666", false, NULL),
			 -ENOSPC);
	entra_userdb_entry_free(&e2);
	entra_userdb_entry_free(&e3);
}

static void test_prelogin_resolution(void **state)
{
	struct fixture *f = *state;
	struct entra_userdb_entry e;
	struct entra_userdb *db;
	struct entra_userdb_user u;
	struct entra_userdb_group g;
	char home[256], longname[300];
	char reason[256];

	assert_int_equal(entra_userdb_sync_rules(&f->w, reason, sizeof(reason)), 0);
	assert_int_equal(entra_userdb_open(f->dir, &db, NULL, 0), 0);
	assert_int_equal(entra_userdb_find_name(db, "ivan@contoso.com", &u), -ENOENT);
	assert_int_equal(entra_userdb_resolve_name(db, "Ivan@Contoso.com", &u, home, sizeof(home)), 0);
	assert_true(u.synthetic);
	assert_string_equal(u.name, "Ivan@Contoso.com");
	assert_string_equal(u.home, "/home/ivan@contoso.com");
	assert_int_equal(u.gid, u.uid);
	assert_int_equal(entra_userdb_group_by_name(db, "ivan@contoso.com", &g), 0);
	assert_int_equal(g.gid, u.uid);
	assert_int_equal(entra_userdb_resolve_name(db, "ivan@contoso.com", &u, home, 5), -ERANGE);

	/* Names that do not match resolve to nothing. */
	static const char *const bad[] = {
		"ivan@evil.com", "ivan", "@contoso.com", "ivan@contoso.com@contoso.com",
		"ivan/../x@contoso.com", "../x@contoso.com", "ivan\n@contoso.com", "ivan@contoso.com\n",
		"breakglass", "admin@contoso.com", "ENTRA-ADMINS", "", "-x@contoso.com", "a:b@contoso.com",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(entra_userdb_resolve_name(db, bad[i], &u, home, sizeof(home)), -ENOENT);
		assert_false(entra_userdb_name_matches(db, bad[i]));
	}
	memset(longname, 'a', sizeof(longname));
	memcpy(longname + sizeof(longname) - 13, "@contoso.com", 13);
	assert_int_equal(entra_userdb_resolve_name(db, longname, &u, home, sizeof(home)), -ENOENT);

	/* The uid shown before the first login is the one recorded. */
	assert_int_equal(entra_userdb_resolve_name(db, "ivan@contoso.com", &u, home, sizeof(home)), 0);
	entra_userdb_close(db);
	assert_int_equal(record(f, "ivan@contoso.com", OID_A, false, &e), 0);
	assert_int_equal(e.uid, u.uid);
	assert_string_equal(e.home, "/home/ivan@contoso.com");
	entra_userdb_entry_free(&e);

	/* localpart mapping: short names resolve, UPNs do not. */
	f->rules.mapping = ENTRA_USERDB_MAP_LOCALPART;
	assert_int_equal(entra_userdb_sync_rules(&f->w, reason, sizeof(reason)), 0);
	assert_int_equal(entra_userdb_open(f->dir, &db, NULL, 0), 0);
	assert_int_equal(entra_userdb_resolve_name(db, "judy", &u, home, sizeof(home)), 0);
	assert_string_equal(u.home, "/home/judy");
	assert_int_equal(entra_userdb_resolve_name(db, "judy@contoso.com", &u, home, sizeof(home)), -ENOENT);
	assert_int_equal(entra_userdb_resolve_name(db, "breakglass", &u, home, sizeof(home)), -ENOENT);
	/* Recorded users still resolve whatever the mapping. */
	assert_int_equal(entra_userdb_resolve_name(db, "ivan@contoso.com", &u, home, sizeof(home)), 0);
	assert_false(u.synthetic);
	entra_userdb_close(db);

	/* No allowed domain: no first-login resolution at all. */
	f->rules.n_allowed_domains = 0;
	assert_int_equal(entra_userdb_sync_rules(&f->w, reason, sizeof(reason)), 0);
	assert_int_equal(entra_userdb_open(f->dir, &db, NULL, 0), 0);
	assert_int_equal(entra_userdb_resolve_name(db, "judy", &u, home, sizeof(home)), -ENOENT);
	entra_userdb_close(db);
}

static int write_bytes(const char *path, const void *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, data, len);
	fchmod(fd, mode);
	close(fd);
	return n == (ssize_t)len ? 0 : -EIO;
}

static void test_corrupt_files(void **state)
{
	struct fixture *f = *state;
	struct entra_userdb *db;
	struct entra_userdb_user u;
	char path[128], reason[256];
	uint8_t *img, *copy;
	size_t len;
	struct stat st;
	FILE *fp;
	int rc;
	unsigned seed = 12345;

	for (int i = 0; i < 20; i++) {
		char name[64], oid[40];

		snprintf(name, sizeof(name), "user%d@contoso.com", i);
		snprintf(oid, sizeof(oid), "%08d-0000-0000-0000-000000000000", i);
		assert_int_equal(record(f, name, oid, i % 3 == 0, NULL), 0);
	}
	db_path(f, path, sizeof(path));
	assert_int_equal(stat(path, &st), 0);
	len = (size_t)st.st_size;
	img = malloc(len);
	copy = malloc(len);
	fp = fopen(path, "rb");
	assert_non_null(fp);
	assert_int_equal(fread(img, 1, len, fp), len);
	fclose(fp);

	/* Every truncation is refused. */
	for (size_t cut = 0; cut < len; cut += (cut < 256 ? 1 : 7)) {
		assert_int_equal(write_bytes(path, img, cut, 0644), 0);
		rc = entra_userdb_open(f->dir, &db, reason, sizeof(reason));
		assert_int_equal(rc, -EBADMSG);
	}
	/* Bit flips anywhere are refused, except in the stale word, which
	 * only marks the file stale. */
	for (size_t pos = 0; pos < len; pos++) {
		memcpy(copy, img, len);
		copy[pos] ^= (uint8_t)(1u << (rand_r(&seed) % 8));
		assert_int_equal(write_bytes(path, copy, len, 0644), 0);
		rc = entra_userdb_open(f->dir, &db, reason, sizeof(reason));
		if (pos >= 32 && pos < 36) {
			assert_int_equal(rc, 0);
			assert_true(entra_userdb_is_stale(db));
			entra_userdb_close(db);
		} else {
			assert_int_equal(rc, -EBADMSG);
		}
	}
	/* Garbage of many sizes, with and without a valid magic. */
	for (int i = 0; i < 200; i++) {
		size_t n = (size_t)(rand_r(&seed) % (len + 64));

		for (size_t k = 0; k < n; k++)
			copy[k] = (uint8_t)rand_r(&seed);
		if (i % 2 == 0 && n >= 16)
			memcpy(copy, img, 16);
		assert_int_equal(write_bytes(path, copy, n, 0644), 0);
		rc = entra_userdb_open(f->dir, &db, reason, sizeof(reason));
		assert_int_equal(rc, -EBADMSG);
	}
	/* A group/world-writable file is refused outright. */
	assert_int_equal(write_bytes(path, img, len, 0666), 0);
	assert_int_equal(entra_userdb_open(f->dir, &db, reason, sizeof(reason)), -EACCES);
	/* A symlink is not followed. */
	unlink(path);
	assert_int_equal(symlink("/etc/passwd", path), 0);
	assert_int_equal(entra_userdb_open(f->dir, &db, reason, sizeof(reason)), -ELOOP);
	unlink(path);

	/* The writer refuses to replace a corrupt file (users would vanish). */
	memcpy(copy, img, len);
	copy[len - 1] ^= 1;
	assert_int_equal(write_bytes(path, copy, len, 0644), 0);
	assert_int_equal(record(f, "new@contoso.com", OID_B, false, NULL), -EBADMSG);
	/* The intact file reads back. */
	assert_int_equal(write_bytes(path, img, len, 0644), 0);
	assert_int_equal(entra_userdb_open(f->dir, &db, reason, sizeof(reason)), 0);
	assert_int_equal(entra_userdb_find_name(db, "user7@contoso.com", &u), 0);
	entra_userdb_close(db);
	free(img);
	free(copy);
}

static void test_stale_remap(void **state)
{
	struct fixture *f = *state;
	struct entra_userdb_cache cache = ENTRA_USERDB_CACHE_INIT;
	const struct entra_userdb *cdb;
	struct entra_userdb *early;
	struct entra_userdb_user u;
	struct entra_userdb_info info;
	int err = 0;
	char reason[128];

	/* No file yet: not found, and not retried more than once a second. */
	assert_int_equal(entra_userdb_cache_set_dir(&cache, f->dir), 0);
	assert_null(entra_userdb_cache_acquire(&cache, &err));
	assert_int_equal(err, -ENOENT);

	assert_int_equal(record(f, "kim@contoso.com", OID_A, false, NULL), 0);
	assert_int_equal(entra_userdb_open(f->dir, &early, NULL, 0), 0);
	entra_userdb_cache_reset(&cache);
	cdb = entra_userdb_cache_acquire(&cache, &err);
	assert_non_null(cdb);
	entra_userdb_get_info(cdb, &info);
	assert_int_equal(info.users, 1);
	assert_int_equal(entra_userdb_find_name(cdb, "lee@contoso.com", &u), -ENOENT);
	entra_userdb_cache_release(&cache);

	/* A writer replaces the file: both the plain handle and the cache,
	 * mapped earlier, see it. */
	assert_false(entra_userdb_is_stale(early));
	assert_int_equal(record(f, "lee@contoso.com", OID_B, false, NULL), 0);
	assert_true(entra_userdb_is_stale(early));
	/* The old mapping still answers consistently. */
	assert_int_equal(entra_userdb_find_name(early, "kim@contoso.com", &u), 0);
	entra_userdb_close(early);

	cdb = entra_userdb_cache_acquire(&cache, &err);
	assert_non_null(cdb);
	assert_false(entra_userdb_is_stale(cdb));
	entra_userdb_get_info(cdb, &info);
	assert_int_equal(info.users, 2);
	assert_int_equal(info.generation, 2);
	assert_int_equal(entra_userdb_find_name(cdb, "lee@contoso.com", &u), 0);
	entra_userdb_cache_release(&cache);

	/* Removal is seen the same way. */
	assert_int_equal(entra_userdb_remove(&f->w, "LEE@contoso.com", reason, sizeof(reason)), 0);
	assert_int_equal(entra_userdb_remove(&f->w, "lee@contoso.com", reason, sizeof(reason)), -ENOENT);
	assert_int_equal(entra_userdb_remove(&f->w, OID_A, reason, sizeof(reason)), 0);
	cdb = entra_userdb_cache_acquire(&cache, &err);
	assert_non_null(cdb);
	entra_userdb_get_info(cdb, &info);
	assert_int_equal(info.users, 0);
	entra_userdb_cache_release(&cache);
	entra_userdb_cache_reset(&cache);
}

#define WRITERS 200

static void test_concurrent_writers(void **state)
{
	struct fixture *f = *state;
	struct entra_userdb *db;
	struct entra_userdb_info info;
	struct entra_userdb_user u;
	pid_t pids[WRITERS];
	char reason[128];

	assert_int_equal(entra_userdb_sync_rules(&f->w, reason, sizeof(reason)), 0);
	for (int i = 0; i < WRITERS; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			char name[64], oid[40];
			int k = i % (WRITERS / 2); /* each user logs in twice, at once */

			snprintf(name, sizeof(name), "w%d@fabrikam.org", k);
			snprintf(oid, sizeof(oid), "%08d-aaaa-bbbb-cccc-dddddddddddd", k);
			_exit(record(f, name, oid, k % 2 == 0, NULL) == 0 ? 0 : 1);
		}
	}
	for (int i = 0; i < WRITERS; i++) {
		int status;

		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	assert_int_equal(entra_userdb_open(f->dir, &db, NULL, 0), 0);
	entra_userdb_get_info(db, &info);
	assert_int_equal(info.users, WRITERS / 2);
	assert_int_equal(info.admins, WRITERS / 4);
	/* One write per new user at least, one per login at most: the
	 * second login of a user finds its record unchanged unless it ran
	 * before the first one's write was published. */
	assert_true(info.generation >= WRITERS / 2 + 1 && info.generation <= WRITERS + 1);
	for (int k = 0; k < WRITERS / 2; k++) {
		char name[64];
		struct entra_userdb_user v;

		snprintf(name, sizeof(name), "w%d@fabrikam.org", k);
		assert_int_equal(entra_userdb_find_name(db, name, &u), 0);
		assert_int_equal(entra_userdb_find_uid(db, u.uid, &v), 0);
		assert_string_equal(v.name, name); /* uids unique */
	}
	entra_userdb_close(db);
}

static void test_rules_check(void **state)
{
	struct fixture *f = *state;
	struct entra_userdb_rules r = f->rules;
	char reason[256];

	assert_int_equal(entra_userdb_rules_check(&r, reason, sizeof(reason)), 0);
	r.uid_min = 0;
	assert_int_equal(entra_userdb_rules_check(&r, reason, sizeof(reason)), -EINVAL);
	r = f->rules;
	r.admin_gid = r.uid_min + 5;
	assert_int_equal(entra_userdb_rules_check(&r, reason, sizeof(reason)), -EINVAL);
	r = f->rules;
	r.home_template = "/home/%s";
	assert_int_equal(entra_userdb_rules_check(&r, reason, sizeof(reason)), -EINVAL);
	r.home_template = "home/%u";
	assert_int_equal(entra_userdb_rules_check(&r, reason, sizeof(reason)), -EINVAL);
	r = f->rules;
	r.shell = "/bin/sh:x";
	assert_int_equal(entra_userdb_rules_check(&r, reason, sizeof(reason)), -EINVAL);
	r = f->rules;
	r.admin_group = "bad/group";
	assert_int_equal(entra_userdb_rules_check(&r, reason, sizeof(reason)), -EINVAL);
	/* The writer refuses bad rules before touching anything. */
	f->rules.uid_min = 10;
	assert_int_equal(record(f, "x@contoso.com", OID_A, false, NULL), -EINVAL);
}

static void test_gecos_sanitised(void **state)
{
	struct fixture *f = *state;
	struct entra_userdb_login l = { "mo@contoso.com", OID_A, TENANT, "Mo: \"x\"\n\troot:0:0", false, 1 };
	struct entra_userdb_entry e;

	assert_int_equal(entra_userdb_record_login(&f->w, &l, &e, NULL, 0), 0);
	assert_null(strchr(e.gecos, ':'));
	assert_null(strchr(e.gecos, '\n'));
	entra_userdb_entry_free(&e);
}

/* The published file as it is: inode, size, generation. */
struct db_state {
	ino_t ino;
	off_t size;
	uint64_t generation;
};

static void db_state(struct fixture *f, struct db_state *s)
{
	struct entra_userdb *db;
	struct entra_userdb_info info;
	struct stat st;
	char path[128];

	assert_int_equal(stat(db_path(f, path, sizeof(path)), &st), 0);
	assert_int_equal(entra_userdb_open(f->dir, &db, NULL, 0), 0);
	entra_userdb_get_info(db, &info);
	entra_userdb_close(db);
	s->ino = st.st_ino;
	s->size = st.st_size;
	s->generation = info.generation;
}

static int login_at(struct fixture *f, const char *name, const char *oid, const char *tenant,
		    const char *gecos, bool admin, int64_t when, struct entra_userdb_entry *out)
{
	struct entra_userdb_login l = { name, oid, tenant, gecos, admin, when };
	char reason[256] = "";

	return entra_userdb_record_login(&f->w, &l, out, reason, sizeof(reason));
}

/* Expect the login to have rewritten the file (generation + 1). */
static void assert_rewritten(struct fixture *f, struct db_state *before)
{
	struct db_state now;

	db_state(f, &now);
	assert_int_equal(now.generation, before->generation + 1);
	assert_int_not_equal(now.ino, before->ino);
	*before = now;
}

static void test_unchanged_login_writes_nothing(void **state)
{
	struct fixture *f = *state;
	const int64_t t0 = 1700000000;
	struct entra_userdb_entry e1, e2;
	struct db_state before, after;
	char lock[128];

	assert_int_equal(login_at(f, "ann@contoso.com", OID_A, TENANT, "Ann", true, t0, &e1), 0);
	db_state(f, &before);
	/* The lock file is the writer's: the read-only path never takes it. */
	snprintf(lock, sizeof(lock), "%s/%s", f->dir, ENTRA_USERDB_LOCK);
	assert_int_equal(unlink(lock), 0);
	/* Repeated logins within the resolution, with or without a tenant or
	 * display name (neither then changes): nothing is written. */
	assert_int_equal(login_at(f, "ann@contoso.com", OID_A, TENANT, "Ann", true, t0 + 10, &e2), 0);
	entra_userdb_entry_free(&e2);
	assert_int_equal(login_at(f, "ann@contoso.com", OID_A, NULL, NULL, true, t0 + 20, NULL), 0);
	assert_int_equal(login_at(f, "ann@contoso.com", OID_A, TENANT, "Ann", true,
				  t0 + ENTRA_USERDB_LAST_LOGIN_RESOLUTION - 1, &e2), 0);
	db_state(f, &after);
	assert_int_equal(after.ino, before.ino);
	assert_int_equal(after.size, before.size);
	assert_int_equal(after.generation, before.generation);
	assert_int_equal(access(lock, F_OK), -1);
	/* The entry is the stored one, last_login included. */
	assert_string_equal(e2.name, e1.name);
	assert_string_equal(e2.object_id, OID_A);
	assert_string_equal(e2.tenant_id, TENANT);
	assert_string_equal(e2.gecos, "Ann");
	assert_string_equal(e2.home, e1.home);
	assert_string_equal(e2.shell, e1.shell);
	assert_int_equal(e2.uid, e1.uid);
	assert_int_equal(e2.gid, e1.gid);
	assert_true(e2.admin);
	assert_int_equal(e2.first_login, t0);
	assert_int_equal(e2.last_login, t0);
	entra_userdb_entry_free(&e1);
	entra_userdb_entry_free(&e2);

	/* At the resolution, last_login is written. */
	assert_int_equal(login_at(f, "ann@contoso.com", OID_A, TENANT, "Ann", true,
				  t0 + ENTRA_USERDB_LAST_LOGIN_RESOLUTION, &e2), 0);
	assert_rewritten(f, &before);
	assert_int_equal(e2.last_login, t0 + ENTRA_USERDB_LAST_LOGIN_RESOLUTION);
	assert_int_equal(e2.first_login, t0);
	entra_userdb_entry_free(&e2);
}

static void test_changed_login_writes(void **state)
{
	struct fixture *f = *state;
	const int64_t t0 = 1700000000;
	const char *other_tenant = "33333333-3333-3333-3333-333333333333";
	struct entra_userdb_entry e;
	struct db_state st;

	assert_int_equal(login_at(f, "ann@contoso.com", OID_A, TENANT, "Ann", false, t0, NULL), 0);
	db_state(f, &st);
	/* Each difference goes through the writer. */
	assert_int_equal(login_at(f, "ann@contoso.com", OID_A, TENANT, "Ann", true, t0 + 1, &e), 0);
	assert_true(e.admin);
	entra_userdb_entry_free(&e);
	assert_rewritten(f, &st);
	assert_int_equal(login_at(f, "ann@contoso.com", OID_A, TENANT, "Ann B.", true, t0 + 2, &e), 0);
	assert_string_equal(e.gecos, "Ann B.");
	entra_userdb_entry_free(&e);
	assert_rewritten(f, &st);
	assert_int_equal(login_at(f, "ann@contoso.com", OID_A, other_tenant, "Ann B.", true, t0 + 3, &e), 0);
	assert_string_equal(e.tenant_id, other_tenant);
	entra_userdb_entry_free(&e);
	assert_rewritten(f, &st);
	/* A change of case renames. */
	assert_int_equal(login_at(f, "Ann@contoso.com", OID_A, other_tenant, "Ann B.", true, t0 + 4, &e), 0);
	assert_string_equal(e.name, "Ann@contoso.com");
	entra_userdb_entry_free(&e);
	assert_rewritten(f, &st);
	/* A clock that went back. */
	assert_int_equal(login_at(f, "Ann@contoso.com", OID_A, other_tenant, "Ann B.", true, t0 - 100, &e), 0);
	assert_int_equal(e.last_login, t0 - 100);
	entra_userdb_entry_free(&e);
	assert_rewritten(f, &st);
	/* Other rules than the file's: the file gets them. */
	f->rules.shell = "/bin/zsh";
	assert_int_equal(login_at(f, "Ann@contoso.com", OID_A, other_tenant, "Ann B.", true, t0 - 99, NULL), 0);
	assert_rewritten(f, &st);
	{
		struct entra_userdb *db;
		struct entra_userdb_rules r;

		assert_int_equal(entra_userdb_open(f->dir, &db, NULL, 0), 0);
		entra_userdb_get_rules(db, &r);
		assert_string_equal(r.shell, "/bin/zsh");
		entra_userdb_close(db);
	}
	/* Pre-provisioning always goes through the writer. */
	assert_int_equal(login_at(f, "Ann@contoso.com", NULL, NULL, NULL, true, 0, NULL), 0);
	assert_rewritten(f, &st);
}

static void test_unchanged_login_refusals(void **state)
{
	struct fixture *f = *state;
	const int64_t t0 = 1700000000;
	static const char *const more_locals[] = { "breakglass", "admin@contoso.com", "ann@contoso.com" };
	struct entra_userdb_entry e;
	struct db_state st;
	char path[128], reason[256];
	uint8_t *img;
	size_t len;
	FILE *fp;

	assert_int_equal(login_at(f, "ann@contoso.com", OID_A, TENANT, "Ann", false, t0, NULL), 0);
	db_state(f, &st);
	/* Another object id on the recorded name: refused as before. */
	assert_int_equal(login_at(f, "ann@contoso.com", OID_B, TENANT, "Ann", false, t0 + 1, &e), -EEXIST);
	assert_null(e.name);
	/* No object id: the writer decides (pre-provisioned records). */
	assert_int_equal(login_at(f, "ann@contoso.com", NULL, TENANT, "Ann", false, t0 + 1, NULL), 0);
	assert_rewritten(f, &st);
	/* Bad input is refused, not answered from the file. */
	assert_int_equal(login_at(f, "ann@contoso.com", OID_A, "not-a-guid", "Ann", false, t0 + 2, NULL),
			 -EINVAL);
	/* A name that became a local user is refused, though the file holds
	 * its record and the same rules. */
	f->rules.local_users = more_locals;
	f->rules.n_local_users = 3;
	assert_int_equal(entra_userdb_sync_rules(&f->w, reason, sizeof(reason)), 0);
	db_state(f, &st);
	assert_int_equal(login_at(f, "ann@contoso.com", OID_A, TENANT, "Ann", false, t0 + 3, NULL), -EEXIST);
	f->rules.local_users = locals;
	f->rules.n_local_users = 2;
	assert_int_equal(login_at(f, "ann@contoso.com", OID_A, TENANT, "Ann", false, t0 + 4, NULL), 0);
	assert_rewritten(f, &st); /* the rules changed back */

	/* A corrupt file: the writer's refusal, never an answer from it. */
	db_path(f, path, sizeof(path));
	fp = fopen(path, "rb");
	assert_non_null(fp);
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	len = (size_t)ftell(fp);
	rewind(fp);
	img = malloc(len);
	assert_non_null(img);
	assert_int_equal(fread(img, 1, len, fp), len);
	fclose(fp);
	img[len - 1] ^= 1;
	assert_int_equal(write_bytes(path, img, len, 0644), 0);
	assert_int_equal(login_at(f, "ann@contoso.com", OID_A, TENANT, "Ann", false, t0 + 5, NULL), -EBADMSG);
	img[len - 1] ^= 1;
	/* A file others may write: refused. */
	assert_int_equal(write_bytes(path, img, len, 0664), 0);
	assert_int_not_equal(login_at(f, "ann@contoso.com", OID_A, TENANT, "Ann", false, t0 + 5, NULL), 0);
	/* A directory others may write: refused. */
	assert_int_equal(write_bytes(path, img, len, 0644), 0);
	assert_int_equal(login_at(f, "ann@contoso.com", OID_A, TENANT, "Ann", false, t0 + 5, NULL), 0);
	assert_int_equal(chmod(f->dir, 0777), 0);
	assert_int_not_equal(login_at(f, "ann@contoso.com", OID_A, TENANT, "Ann", false, t0 + 6, NULL), 0);
	assert_int_equal(chmod(f->dir, 0700), 0);
	/* A missing file: the login creates it. */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(login_at(f, "ann@contoso.com", OID_A, TENANT, "Ann", false, t0 + 7, &e), 0);
	assert_int_equal(e.first_login, t0 + 7);
	entra_userdb_entry_free(&e);
	free(img);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_write_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rename_keeps_uid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_conflicting_oid_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_preprovision_then_bind, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uid_collision_probing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prelogin_resolution, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_remap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_writers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_check, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gecos_sanitised, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unchanged_login_writes_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_changed_login_writes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unchanged_login_refusals, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
