/* lib/fsutil: symlinks never followed, owners and modes enforced, atomic
 * writes leave nothing behind on failure. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "fsutil.h"

#define NOBODY 65534

struct fixture {
	char dir[64];
	int dirfd;
};

static void path_in(const struct fixture *f, char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/%s", f->dir, name);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/entra-fsutil-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	f->dirfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (f->dirfd < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	int top = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc;

	close(f->dirfd);
	rc = entra_remove_tree_at(top, f->dir + strlen("/tmp/"));
	close(top);
	free(f);
	return rc;
}

static void put_file(const struct fixture *f, const char *name, const char *text, mode_t mode)
{
	int fd = openat(f->dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static bool exists_at(int dirfd, const char *name)
{
	struct stat st;

	return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* Number of entries in a directory other than . and .. */
static int count_entries(int dirfd)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fdopendir(fd);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void test_dir_create_and_reopen(void **state)
{
	struct fixture *f = *state;
	char p[PATH_MAX];
	struct stat st;
	mode_t old = umask(0);
	int fd;

	path_in(f, p, sizeof(p), "state");
	fd = entra_dir_open_or_create(p, 0711, geteuid(), getegid());
	umask(old);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0711);
	assert_int_equal(st.st_uid, geteuid());
	close(fd);
	/* Present: same mode or stricter is fine, looser is not. */
	fd = entra_dir_open_or_create(p, 0711, geteuid(), getegid());
	assert_true(fd >= 0);
	close(fd);
	fd = entra_dir_open_or_create(p, 0755, geteuid(), getegid());
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(entra_dir_open_or_create(p, 0700, geteuid(), getegid()), -EACCES);
	/* Trailing slash names the same directory. */
	path_in(f, p, sizeof(p), "state/");
	fd = entra_dir_open_or_create(p, 0711, geteuid(), getegid());
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(entra_dir_open_or_create("relative/x", 0700, 0, 0), -EINVAL);
	assert_int_equal(entra_dir_open_or_create_at(f->dirfd, "..", 0700, 0, 0), -EINVAL);
	assert_int_equal(entra_dir_open_or_create_at(f->dirfd, "a/b", 0700, 0, 0), -EINVAL);
	path_in(f, p, sizeof(p), "missing-parent/x");
	assert_int_equal(entra_dir_open_or_create(p, 0700, 0, 0), -ENOENT);
}

static void test_dir_symlink_and_file(void **state)
{
	struct fixture *f = *state;
	char p[PATH_MAX];

	assert_int_equal(mkdirat(f->dirfd, "real", 0700), 0);
	assert_int_equal(symlinkat("real", f->dirfd, "link"), 0);
	path_in(f, p, sizeof(p), "link");
	assert_int_equal(entra_dir_open_or_create(p, 0700, geteuid(), getegid()), -ELOOP);
	assert_int_equal(entra_dir_open_trusted(p, geteuid()), -ELOOP);
	/* A dangling symlink is not replaced by a directory either. */
	assert_int_equal(symlinkat("/nonexistent-entra", f->dirfd, "dangling"), 0);
	assert_int_equal(entra_dir_open_or_create_at(f->dirfd, "dangling", 0700, 0, 0), -ELOOP);
	put_file(f, "file", "x", 0600);
	assert_int_equal(entra_dir_open_or_create_at(f->dirfd, "file", 0700, 0, 0), -ENOTDIR);
}

static void test_dir_owner(void **state)
{
	struct fixture *f = *state;
	char p[PATH_MAX];
	struct stat st;
	int fd;

	if (geteuid() != 0) {
		skip(); /* needs root to chown */
		return;
	}
	path_in(f, p, sizeof(p), "svc");
	fd = entra_dir_open_or_create(p, 0700, NOBODY, NOBODY);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_uid, NOBODY);
	assert_int_equal(st.st_gid, NOBODY);
	close(fd);
	/* Owned by nobody: root asking for its own directory is refused. */
	assert_int_equal(entra_dir_open_or_create(p, 0700, 0, 0), -EPERM);
	assert_int_equal(entra_dir_open_trusted(p, 0), -EPERM);
	fd = entra_dir_open_trusted(p, NOBODY);
	assert_true(fd >= 0);
	close(fd);
}

static void test_dir_trusted_mode(void **state)
{
	struct fixture *f = *state;
	char p[PATH_MAX];
	int fd;

	assert_int_equal(mkdirat(f->dirfd, "cache", 0700), 0);
	path_in(f, p, sizeof(p), "cache");
	fd = entra_dir_open_trusted(p, geteuid());
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(fchmodat(f->dirfd, "cache", 0770, 0), 0);
	assert_int_equal(entra_dir_open_trusted(p, geteuid()), -EACCES);
	assert_int_equal(fchmodat(f->dirfd, "cache", 0757, 0), 0);
	assert_int_equal(entra_dir_open_trusted(p, geteuid()), -EACCES);
	path_in(f, p, sizeof(p), "nope");
	assert_int_equal(entra_dir_open_trusted(p, geteuid()), -ENOENT);
}

static void test_write_atomic(void **state)
{
	struct fixture *f = *state;
	struct entra_buf buf;
	struct stat st;
	mode_t old = umask(0);

	assert_int_equal(entra_write_file_atomic(f->dirfd, "token", "secret-1", 8, 0600,
						 geteuid(), getegid()), 0);
	umask(old);
	assert_int_equal(fstatat(f->dirfd, "token", &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(entra_read_file_trusted(f->dirfd, "token", 100, geteuid(), &buf), 0);
	assert_string_equal(buf.data, "secret-1");
	entra_buf_free(&buf);
	/* Replaced, with the new mode; nothing else left in the directory. */
	assert_int_equal(entra_write_file_atomic(f->dirfd, "token", "second", 6, 0640,
						 geteuid(), getegid()), 0);
	assert_int_equal(fstatat(f->dirfd, "token", &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(entra_read_file_trusted(f->dirfd, "token", 100, geteuid(), &buf), 0);
	assert_string_equal(buf.data, "second");
	entra_buf_free(&buf);
	assert_int_equal(count_entries(f->dirfd), 1);
	/* Empty contents are fine. */
	assert_int_equal(entra_write_file_atomic(f->dirfd, "empty", NULL, 0, 0600, geteuid(),
						 getegid()), 0);
	assert_int_equal(entra_read_file_trusted(f->dirfd, "empty", 100, geteuid(), &buf), 0);
	assert_int_equal(buf.len, 0);
	assert_string_equal(buf.data, "");
	entra_buf_free(&buf);
	assert_int_equal(entra_write_file_atomic(f->dirfd, "../x", "a", 1, 0600, 0, 0), -EINVAL);
	assert_int_equal(entra_write_file_atomic(f->dirfd, "", "a", 1, 0600, 0, 0), -EINVAL);
}

static void test_write_atomic_replaces_symlink(void **state)
{
	struct fixture *f = *state;
	struct entra_buf buf;
	struct stat st;

	put_file(f, "outside", "keep me", 0600);
	assert_int_equal(symlinkat("outside", f->dirfd, "token"), 0);
	assert_int_equal(entra_write_file_atomic(f->dirfd, "token", "new", 3, 0600, geteuid(),
						 getegid()), 0);
	/* The link itself was replaced; its target is untouched. */
	assert_int_equal(fstatat(f->dirfd, "token", &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(entra_read_file_trusted(f->dirfd, "outside", 100, geteuid(), &buf), 0);
	assert_string_equal(buf.data, "keep me");
	entra_buf_free(&buf);
}

static void test_write_atomic_enospc(void **state)
{
	struct fixture *f = *state;
	static char big[256 * 1024];
	struct entra_buf buf;
	int mnt;

	if (geteuid() != 0) {
		skip(); /* needs root to mount a tmpfs */
		return;
	}
	assert_int_equal(mkdirat(f->dirfd, "small", 0700), 0);
	char p[PATH_MAX];

	path_in(f, p, sizeof(p), "small");
	if (mount("tmpfs", p, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=0700") != 0) {
		print_message("# skipped: cannot mount a tmpfs (%s)\n", strerror(errno));
		skip();
		return;
	}
	mnt = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(mnt >= 0);
	memset(big, 'x', sizeof(big));
	assert_int_equal(entra_write_file_atomic(mnt, "state", "old", 3, 0600, 0, 0), 0);
	assert_int_equal(entra_write_file_atomic(mnt, "state", big, sizeof(big), 0600, 0, 0),
			 -ENOSPC);
	/* Old contents intact, no temp file left. */
	assert_int_equal(entra_read_file_trusted(mnt, "state", 100, 0, &buf), 0);
	assert_string_equal(buf.data, "old");
	entra_buf_free(&buf);
	assert_int_equal(count_entries(mnt), 1);
	close(mnt);
	assert_int_equal(umount(p), 0);
}

static void test_read_trusted(void **state)
{
	struct fixture *f = *state;
	struct entra_buf buf;

	put_file(f, "conf", "key = value\n", 0644);
	assert_int_equal(entra_read_file_trusted(f->dirfd, "conf", 100, geteuid(), &buf), 0);
	assert_string_equal(buf.data, "key = value\n");
	entra_buf_free(&buf);
	assert_int_equal(entra_read_file_trusted(f->dirfd, "conf", 5, geteuid(), &buf), -EFBIG);
	assert_null(buf.data);
	assert_int_equal(entra_read_file_trusted(f->dirfd, "none", 100, geteuid(), &buf), -ENOENT);
	assert_int_equal(symlinkat("conf", f->dirfd, "link"), 0);
	assert_int_equal(entra_read_file_trusted(f->dirfd, "link", 100, geteuid(), &buf), -ELOOP);
	put_file(f, "gw", "x", 0664);
	assert_int_equal(entra_read_file_trusted(f->dirfd, "gw", 100, geteuid(), &buf), -EACCES);
	put_file(f, "ow", "x", 0606);
	assert_int_equal(entra_read_file_trusted(f->dirfd, "ow", 100, geteuid(), &buf), -EACCES);
	/* A FIFO neither hangs nor passes. */
	assert_int_equal(mkfifoat(f->dirfd, "fifo", 0600), 0);
	assert_int_equal(entra_read_file_trusted(f->dirfd, "fifo", 100, geteuid(), &buf), -EINVAL);
	assert_int_equal(mkdirat(f->dirfd, "d", 0700), 0);
	assert_int_equal(entra_read_file_trusted(f->dirfd, "d", 100, geteuid(), &buf), -EINVAL);
	if (geteuid() == 0) {
		assert_int_equal(fchownat(f->dirfd, "conf", NOBODY, NOBODY, 0), 0);
		assert_int_equal(entra_read_file_trusted(f->dirfd, "conf", 100, 0, &buf), -EPERM);
		assert_int_equal(entra_read_file_trusted(f->dirfd, "conf", 100, NOBODY, &buf), 0);
		entra_buf_free(&buf);
	}
}

static void test_read_path_trusted(void **state)
{
	struct fixture *f = *state;
	struct entra_buf buf;
	char p[PATH_MAX];

	assert_int_equal(mkdirat(f->dirfd, "etc", 0755), 0);
	assert_int_equal(fchmodat(f->dirfd, "etc", 0755, 0), 0);
	int etc = openat(f->dirfd, "etc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	assert_true(etc >= 0);
	assert_int_equal(entra_write_file_atomic(etc, "pam_entra.conf", "a=b\n", 4, 0600,
						 geteuid(), getegid()), 0);
	path_in(f, p, sizeof(p), "etc/pam_entra.conf");
	assert_int_equal(entra_read_path_trusted(p, 1000, geteuid(), &buf), 0);
	assert_string_equal(buf.data, "a=b\n");
	entra_buf_free(&buf);
	/* A directory others may write: they could swap the file. */
	assert_int_equal(fchmodat(f->dirfd, "etc", 0775, 0), 0);
	assert_int_equal(entra_read_path_trusted(p, 1000, geteuid(), &buf), -EACCES);
	/* ... unless sticky, like /tmp. */
	assert_int_equal(fchmodat(f->dirfd, "etc", 01777, 0), 0);
	assert_int_equal(entra_read_path_trusted(p, 1000, geteuid(), &buf), 0);
	entra_buf_free(&buf);
	assert_int_equal(fchmodat(f->dirfd, "etc", 0755, 0), 0);
	assert_int_equal(symlinkat("pam_entra.conf", etc, "link.conf"), 0);
	path_in(f, p, sizeof(p), "etc/link.conf");
	assert_int_equal(entra_read_path_trusted(p, 1000, geteuid(), &buf), -ELOOP);
	assert_int_equal(entra_read_path_trusted("etc/pam_entra.conf", 1000, geteuid(), &buf),
			 -EINVAL);
	if (geteuid() == 0) {
		/* A directory owned by someone else: refused. */
		assert_int_equal(fchownat(f->dirfd, "etc", NOBODY, NOBODY, 0), 0);
		path_in(f, p, sizeof(p), "etc/pam_entra.conf");
		assert_int_equal(entra_read_path_trusted(p, 1000, 0, &buf), -EPERM);
	}
	close(etc);
}

static void test_remove_tree(void **state)
{
	struct fixture *f = *state;
	int t, sub;

	/* Outside the tree: a directory and a file that must survive. */
	assert_int_equal(mkdirat(f->dirfd, "outside", 0700), 0);
	put_file(f, "outside/precious", "x", 0600);
	put_file(f, "precious-file", "x", 0600);

	assert_int_equal(mkdirat(f->dirfd, "tree", 0700), 0);
	t = openat(f->dirfd, "tree", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(t >= 0);
	assert_int_equal(mkdirat(t, "a", 0700), 0);
	assert_int_equal(mkdirat(t, "a/b", 0700), 0);
	sub = openat(t, "a/b", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(sub >= 0);
	assert_int_equal(entra_write_file_atomic(sub, "f", "x", 1, 0600, geteuid(), getegid()), 0);
	assert_int_equal(symlinkat("../../../outside", sub, "dirlink"), 0);
	assert_int_equal(symlinkat("../../../precious-file", sub, "filelink"), 0);
	assert_int_equal(mkfifoat(sub, "fifo", 0600), 0);
	close(sub);
	assert_int_equal(mkdirat(t, "ro", 0500), 0); /* read-only dir, empty */
	close(t);

	assert_int_equal(entra_remove_tree_at(f->dirfd, "tree"), 0);
	assert_false(exists_at(f->dirfd, "tree"));
	assert_true(exists_at(f->dirfd, "outside/precious"));
	assert_true(exists_at(f->dirfd, "precious-file"));
	/* Already gone: fine. A plain file or a symlink is removed itself. */
	assert_int_equal(entra_remove_tree_at(f->dirfd, "tree"), 0);
	assert_int_equal(symlinkat("outside", f->dirfd, "toplink"), 0);
	assert_int_equal(entra_remove_tree_at(f->dirfd, "toplink"), 0);
	assert_false(exists_at(f->dirfd, "toplink"));
	assert_true(exists_at(f->dirfd, "outside/precious"));
	assert_int_equal(entra_remove_tree_at(f->dirfd, "precious-file"), 0);
	assert_false(exists_at(f->dirfd, "precious-file"));
	assert_int_equal(entra_remove_tree_at(f->dirfd, "a/b"), -EINVAL);
	assert_int_equal(entra_remove_tree_at(f->dirfd, ".."), -EINVAL);
}

static void test_remove_tree_depth(void **state)
{
	struct fixture *f = *state;
	int fd = dup(f->dirfd), next;

	assert_int_equal(mkdirat(f->dirfd, "deep", 0700), 0);
	next = openat(fd, "deep", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	close(fd);
	fd = next;
	for (int i = 0; i < 40; i++) {
		assert_int_equal(mkdirat(fd, "d", 0700), 0);
		next = openat(fd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		assert_true(next >= 0);
		close(fd);
		fd = next;
	}
	close(fd);
	assert_int_equal(entra_remove_tree_at(f->dirfd, "deep"), -ELOOP);
	assert_true(exists_at(f->dirfd, "deep"));
	/* The teardown cannot remove it either: trim it here with rm. */
	char cmd[PATH_MAX + 32];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s/deep'", f->dir);
	assert_int_equal(system(cmd), 0);
}

static void test_dir_create_new(void **state)
{
	struct fixture *f = *state;
	struct stat st;
	mode_t old = umask(0277);
	int fd;

	/* The umask takes owner bits away: they are put back. */
	fd = entra_dir_create_at(f->dirfd, "fresh", 0700);
	umask(old);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(st.st_uid, geteuid());
	close(fd);
	/* Never an existing one, nor through a link. */
	assert_int_equal(entra_dir_create_at(f->dirfd, "fresh", 0700), -EEXIST);
	assert_int_equal(symlinkat("fresh", f->dirfd, "link"), 0);
	assert_int_equal(entra_dir_create_at(f->dirfd, "link", 0700), -EEXIST);
	assert_int_equal(entra_dir_create_at(f->dirfd, "a/b", 0700), -EINVAL);
	assert_int_equal(entra_dir_create_at(f->dirfd, "..", 0700), -EINVAL);
	/* No one else gets any bit, whatever is asked. */
	fd = entra_dir_create_at(f->dirfd, "asked-0777", 0777);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	close(fd);
	/* A setgid bit inherited from the parent is cleared. */
	assert_int_equal(mkdirat(f->dirfd, "sgid", 0700), 0);
	assert_int_equal(fchmodat(f->dirfd, "sgid", 02700, 0), 0);
	fd = openat(f->dirfd, "sgid", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	{
		int sub = entra_dir_create_at(fd, "child", 0700);

		assert_true(sub >= 0);
		assert_int_equal(fstat(sub, &st), 0);
		assert_int_equal(st.st_mode & 07777, 0700);
		close(sub);
	}
	close(fd);
}

static void test_write_new(void **state)
{
	struct fixture *f = *state;
	struct entra_buf buf;
	struct stat st;
	mode_t old = umask(0277);
	int rc;

	rc = entra_write_file_new(f->dirfd, "tok", "secret", 6, 0600, geteuid(), getegid());
	umask(old);
	assert_int_equal(rc, 0);
	assert_int_equal(fstatat(f->dirfd, "tok", &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(entra_read_file_secret(f->dirfd, "tok", 100, geteuid(), &buf), 0);
	assert_string_equal(buf.data, "secret");
	entra_buf_free(&buf);
	/* Never over an existing file, nor through a link. */
	assert_int_equal(entra_write_file_new(f->dirfd, "tok", "x", 1, 0600, geteuid(), getegid()), -EEXIST);
	put_file(f, "target", "keep", 0600);
	assert_int_equal(symlinkat("target", f->dirfd, "link"), 0);
	assert_int_equal(entra_write_file_new(f->dirfd, "link", "x", 1, 0600, geteuid(), getegid()), -EEXIST);
	assert_int_equal(entra_read_file_trusted(f->dirfd, "target", 100, geteuid(), &buf), 0);
	assert_string_equal(buf.data, "keep");
	entra_buf_free(&buf);
	assert_int_equal(entra_write_file_new(f->dirfd, "../x", "x", 1, 0600, 0, 0), -EINVAL);
	if (geteuid() == 0) {
		assert_int_equal(entra_write_file_new(f->dirfd, "users", "y", 1, 0600, NOBODY, NOBODY), 0);
		assert_int_equal(fstatat(f->dirfd, "users", &st, AT_SYMLINK_NOFOLLOW), 0);
		assert_int_equal(st.st_uid, NOBODY);
		assert_int_equal(st.st_gid, NOBODY);
	}
}

static void test_read_secret_and_sizes(void **state)
{
	struct fixture *f = *state;
	struct entra_buf buf;
	char *big = malloc(3 * 4096 + 1);

	assert_non_null(big);
	put_file(f, "s", "x", 0600);
	assert_int_equal(entra_read_file_secret(f->dirfd, "s", 100, geteuid(), &buf), 0);
	entra_buf_free(&buf);
	put_file(f, "gr", "x", 0640);
	assert_int_equal(entra_read_file_secret(f->dirfd, "gr", 100, geteuid(), &buf), -EACCES);
	assert_int_equal(entra_read_file_trusted(f->dirfd, "gr", 100, geteuid(), &buf), 0);
	entra_buf_free(&buf);
	put_file(f, "or", "x", 0604);
	assert_int_equal(entra_read_file_secret(f->dirfd, "or", 100, geteuid(), &buf), -EACCES);
	/* Sizes around the read chunk come back whole. */
	for (size_t n = 4094; n <= 3 * 4096; n += (n < 4098 ? 1 : 4096 - 2)) {
		for (size_t i = 0; i < n; i++)
			big[i] = (char)('a' + i % 26);
		big[n] = '\0';
		put_file(f, "big", big, 0600);
		assert_int_equal(entra_read_file_secret(f->dirfd, "big", 4 * 4096, geteuid(), &buf), 0);
		assert_int_equal(buf.len, n);
		assert_memory_equal(buf.data, big, n);
		entra_buf_free(&buf);
		assert_int_equal(unlinkat(f->dirfd, "big", 0), 0);
	}
	/* Empty. */
	put_file(f, "empty", "", 0600);
	assert_int_equal(entra_read_file_secret(f->dirfd, "empty", 100, geteuid(), &buf), 0);
	assert_string_equal(buf.data, "");
	entra_buf_free(&buf);
	free(big);
}

static void test_dir_open_full_path(void **state)
{
	struct fixture *f = *state;
	char p[PATH_MAX];
	int fd;

	/* A symlink above the last component is followed (system paths),
	 * the last one never, dangling or not; nothing is created. */
	assert_int_equal(mkdirat(f->dirfd, "real", 0755), 0);
	assert_int_equal(mkdirat(f->dirfd, "real/sub", 0700), 0);
	assert_int_equal(symlinkat("real", f->dirfd, "up"), 0);
	path_in(f, p, sizeof(p), "up/sub");
	fd = entra_dir_open_or_create(p, 0700, geteuid(), getegid());
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(symlinkat("real/sub", f->dirfd, "last"), 0);
	path_in(f, p, sizeof(p), "last");
	assert_int_equal(entra_dir_open_or_create(p, 0700, geteuid(), getegid()), -ELOOP);
	assert_int_equal(symlinkat("real/none", f->dirfd, "dangling"), 0);
	path_in(f, p, sizeof(p), "dangling");
	assert_int_equal(entra_dir_open_or_create(p, 0700, geteuid(), getegid()), -ELOOP);
	assert_false(exists_at(f->dirfd, "real/none"));
	path_in(f, p, sizeof(p), "real");
	assert_int_equal(entra_dir_open_or_create(p, 0700, geteuid(), getegid()), -EACCES);
	put_file(f, "file", "x", 0600);
	path_in(f, p, sizeof(p), "file");
	assert_int_equal(entra_dir_open_or_create(p, 0700, geteuid(), getegid()), -ENOTDIR);
}

/* The one-call opens: no symlink anywhere on the way (unlike the
 * component-wise functions, which allow them above the last component),
 * and the last component checked as they check it. */
static void test_nolinks(void **state)
{
	struct fixture *f = *state;
	struct entra_buf buf;
	char p[PATH_MAX];
	int fd;

	assert_int_equal(mkdirat(f->dirfd, "real", 0700), 0);
	assert_int_equal(mkdirat(f->dirfd, "real/sub", 0711), 0);
	assert_int_equal(symlinkat("real", f->dirfd, "up"), 0);
	path_in(f, p, sizeof(p), "real/sub");
	fd = entra_dir_open_nolinks(p, 0711, geteuid());
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(entra_dir_open_nolinks(p, 0700, geteuid()), -EACCES);
	assert_int_equal(entra_dir_open_nolinks(p, 0711, NOBODY), -EPERM);
	path_in(f, p, sizeof(p), "up/sub");
	assert_int_equal(entra_dir_open_nolinks(p, 0711, geteuid()), -ELOOP);
	fd = entra_dir_open_or_create(p, 0711, geteuid(), getegid()); /* the fallback */
	assert_true(fd >= 0);
	close(fd);
	path_in(f, p, sizeof(p), "real/none");
	assert_int_equal(entra_dir_open_nolinks(p, 0711, geteuid()), -ENOENT);
	assert_int_equal(entra_dir_open_nolinks("real/sub", 0711, geteuid()), -EINVAL);

	/* The component-wise check of an existing directory, never created. */
	fd = entra_dir_open_existing_at(f->dirfd, "real", 0700, geteuid());
	assert_true(fd >= 0);
	assert_int_equal(entra_dir_open_existing_at(fd, "sub", 0700, geteuid()), -EACCES);
	assert_int_equal(entra_dir_open_existing_at(fd, "sub", 0711, NOBODY), -EPERM);
	assert_int_equal(entra_dir_open_existing_at(fd, "none", 0711, geteuid()), -ENOENT);
	assert_false(exists_at(fd, "none"));
	close(fd);
	assert_int_equal(entra_dir_open_existing_at(f->dirfd, "up", 0700, geteuid()), -ELOOP);
	assert_int_equal(entra_dir_open_existing_at(f->dirfd, "real/sub", 0711, geteuid()), -EINVAL);

	put_file(f, "real/sub/s", "secret", 0600);
	path_in(f, p, sizeof(p), "real/sub/s");
	assert_int_equal(entra_read_secret_nolinks(p, 100, geteuid(), &buf), 0);
	assert_string_equal(buf.data, "secret");
	entra_buf_free(&buf);
	assert_int_equal(entra_read_secret_nolinks(p, 100, NOBODY, &buf), -EPERM);
	assert_int_equal(entra_read_secret_nolinks(p, 3, geteuid(), &buf), -EFBIG);
	assert_int_equal(fchmodat(f->dirfd, "real/sub/s", 0640, 0), 0);
	assert_int_equal(entra_read_secret_nolinks(p, 100, geteuid(), &buf), -EACCES);
	assert_int_equal(fchmodat(f->dirfd, "real/sub/s", 0600, 0), 0);
	path_in(f, p, sizeof(p), "up/sub/s");
	assert_int_equal(entra_read_secret_nolinks(p, 100, geteuid(), &buf), -ELOOP);
	assert_null(buf.data);
	assert_int_equal(symlinkat("s", f->dirfd, "real/sub/link"), 0);
	path_in(f, p, sizeof(p), "real/sub/link");
	assert_int_equal(entra_read_secret_nolinks(p, 100, geteuid(), &buf), -ELOOP);
	path_in(f, p, sizeof(p), "real/sub");
	assert_int_equal(entra_read_secret_nolinks(p, 100, geteuid(), &buf), -EINVAL); /* a directory */
}

/* What a cache of a file's contents compares. */
static void test_stat_identity(void **state)
{
	struct fixture *f = *state;
	struct stat a, b;

	put_file(f, "c", "one", 0644);
	assert_int_equal(fstatat(f->dirfd, "c", &a, 0), 0);
	b = a;
	assert_true(entra_stat_unchanged(&a, &b));
	assert_false(entra_stat_settled(&a, 2)); /* just written */
	a.st_mtim.tv_sec -= 10;
	a.st_ctim.tv_sec -= 10;
	assert_true(entra_stat_settled(&a, 2));
	assert_false(entra_stat_unchanged(&a, &b));
	a = b;
	a.st_ino++;
	assert_false(entra_stat_unchanged(&a, &b));
	a = b;
	a.st_mode ^= 0020;
	assert_false(entra_stat_unchanged(&a, &b));
	a = b;
	a.st_ctim.tv_nsec ^= 1;
	assert_false(entra_stat_unchanged(&a, &b));
	/* Rewritten with the same size: the times tell. */
	put_file(f, "c", "two", 0644);
	assert_int_equal(fstatat(f->dirfd, "c", &a, 0), 0);
	assert_int_equal(a.st_size, b.st_size);
	if (a.st_mtim.tv_sec == b.st_mtim.tv_sec && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec)
		assert_false(entra_stat_settled(&a, 2)); /* one tick: not trusted yet */
	else
		assert_false(entra_stat_unchanged(&a, &b));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_dir_create_and_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dir_symlink_and_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dir_owner, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dir_trusted_mode, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_atomic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_atomic_replaces_symlink, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_atomic_enospc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_trusted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_path_trusted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove_tree, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove_tree_depth, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dir_create_new, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_new, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_secret_and_sizes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dir_open_full_path, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nolinks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stat_identity, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
