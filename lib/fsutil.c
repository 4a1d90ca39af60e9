#include "config.h"
#include "fsutil.h"
#include "names.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include <linux/openat2.h>

#define REMOVE_MAX_DEPTH 32
#define TEMP_ATTEMPTS 16

/* One path component: not empty, no '/', not "." or "..". */
static bool component_ok(const char *name)
{
	size_t len;

	if (name == NULL)
		return false;
	len = strnlen(name, NAME_MAX + 1);
	if (len == 0 || len > NAME_MAX || strchr(name, '/') != NULL)
		return false;
	return strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

/* open(O_DIRECTORY|O_NOFOLLOW) fails with ENOTDIR on a symlink: report
 * the symlink as such (-ELOOP). */
static int dir_open_error(int dirfd, const char *name)
{
	int err = errno;
	struct stat st;

	if (err == ENOTDIR && fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISLNK(st.st_mode))
		return -ELOOP;
	return -err;
}

static int close_keep_errno(int fd)
{
	int saved = errno;

	if (fd >= 0)
		close(fd);
	errno = saved;
	return 0;
}

/* Split an absolute path into an open parent directory and the last
 * component. Components above the last one are system paths and may be
 * symlinks (e.g. /var/run -> /run); only the last one is never followed. */
static int open_parent(const char *path, char **last_out)
{
	char *copy, *slash, *last;
	int fd;

	if (path == NULL || path[0] != '/' || strnlen(path, PATH_MAX) >= PATH_MAX)
		return -EINVAL;
	copy = strdup(path);
	if (copy == NULL)
		return -ENOMEM;
	/* Trailing slashes name the same directory. */
	for (size_t len = strlen(copy); len > 1 && copy[len - 1] == '/'; len--)
		copy[len - 1] = '\0';
	slash = strrchr(copy, '/');
	last = strdup(slash + 1);
	if (last == NULL) {
		free(copy);
		return -ENOMEM;
	}
	if (slash == copy)
		slash[1] = '\0';
	else
		*slash = '\0';
	fd = open(copy, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		fd = -errno;
		free(last);
	} else {
		*last_out = last;
	}
	free(copy);
	return fd;
}

/* An existing directory: owned by uid, no mode bit beyond mode. */
static int check_existing_dir(const struct stat *st, mode_t mode, uid_t uid)
{
	if (!S_ISDIR(st->st_mode))
		return -ENOTDIR;
	if (st->st_uid != uid)
		return -EPERM;
	if ((st->st_mode & 07777 & ~mode) != 0)
		return -EACCES;
	return 0;
}

int entra_dir_open_or_create_at(int dirfd, const char *name, mode_t mode, uid_t uid, gid_t gid)
{
	struct stat st;
	bool created = false;
	int fd, rc;

	if (!component_ok(name))
		return -EINVAL;
	mode &= 07777;
	/* Usually there: opened first, created only when missing (one system
	 * call less on every session). Created with no access for anyone
	 * else; owner and mode are set on the opened fd below, so the path is
	 * never trusted twice. */
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		if (mkdirat(dirfd, name, 0700) == 0)
			created = true;
		else if (errno != EEXIST)
			return -errno;
		fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	}
	if (fd < 0)
		return dir_open_error(dirfd, name);
	if (fstat(fd, &st) != 0) {
		rc = -errno;
		goto fail;
	}
	if (!S_ISDIR(st.st_mode)) {
		rc = -ENOTDIR;
		goto fail;
	}
	if (created) {
		/* Someone may have swapped our new directory for theirs
		 * between mkdirat and openat: it must still be ours. */
		if (st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
			rc = -EPERM;
			goto fail;
		}
		/* mkdirat gave 0700 less the umask, plus a setgid bit
		 * inherited from the parent: fchmod only when that is not
		 * already the mode asked for. */
		if (fchown(fd, uid, gid) != 0 ||
		    ((st.st_mode & 07777) != mode && fchmod(fd, mode) != 0)) {
			rc = -errno;
			unlinkat(dirfd, name, AT_REMOVEDIR);
			goto fail;
		}
		return fd;
	}
	rc = check_existing_dir(&st, mode, uid);
	if (rc < 0)
		goto fail;
	return fd;
fail:
	close(fd);
	return rc;
}

int entra_dir_open_existing_at(int dirfd, const char *name, mode_t mode, uid_t uid)
{
	struct stat st;
	int fd, rc;

	if (!component_ok(name))
		return -EINVAL;
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return dir_open_error(dirfd, name);
	rc = fstat(fd, &st) != 0 ? -errno : check_existing_dir(&st, mode & 07777, uid);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	return fd;
}

int entra_dir_create_at(int dirfd, const char *name, mode_t mode)
{
	struct stat st;
	int fd, rc;

	if (!component_ok(name))
		return -EINVAL;
	mode &= 0700;
	if (mkdirat(dirfd, name, 0700) != 0)
		return -errno;
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		rc = dir_open_error(dirfd, name);
		unlinkat(dirfd, name, AT_REMOVEDIR);
		return rc;
	}
	/* Still ours (not swapped between mkdirat and openat), and no one
	 * else has any access: mkdirat's mode less the umask, never more. */
	if (fstat(fd, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
	    (st.st_mode & 077) != 0) {
		close(fd);
		return -EPERM; /* not removed: it may not be the one we made */
	}
	if ((st.st_mode & 07777) != mode && fchmod(fd, mode) != 0) {
		rc = -errno;
		close(fd);
		unlinkat(dirfd, name, AT_REMOVEDIR);
		return rc;
	}
	return fd;
}

int entra_dir_open_or_create(const char *path, mode_t mode, uid_t uid, gid_t gid)
{
	char *last = NULL;
	struct stat st;
	size_t len;
	int parent, fd, rc;

	/* Usually there: one open of the whole path, O_NOFOLLOW on its last
	 * component as below (components above it are system paths that may
	 * be symlinks). Not with a trailing slash, which would follow a
	 * symlink in the last component. */
	len = path != NULL ? strnlen(path, PATH_MAX) : 0;
	if (len > 1 && len < PATH_MAX && path[0] == '/' && path[len - 1] != '/') {
		fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0) {
			rc = fstat(fd, &st) != 0 ? -errno : check_existing_dir(&st, mode & 07777, uid);
			if (rc < 0) {
				close(fd);
				return rc;
			}
			return fd;
		}
		if (errno != ENOENT)
			return dir_open_error(AT_FDCWD, path);
	}
	parent = open_parent(path, &last);
	if (parent < 0)
		return parent;
	fd = entra_dir_open_or_create_at(parent, last, mode, uid, gid);
	free(last);
	close(parent);
	return fd;
}

int entra_dir_open_trusted(const char *path, uid_t uid)
{
	struct stat st;
	int fd, rc;

	if (path == NULL || *path == '\0')
		return -EINVAL;
	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return dir_open_error(AT_FDCWD, path);
	if (fstat(fd, &st) != 0) {
		rc = -errno;
		goto fail;
	}
	if (st.st_uid != uid) {
		rc = -EPERM;
		goto fail;
	}
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
		rc = -EACCES;
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return rc;
}

/* An absolute path opened with no symlink in any of its components
 * (openat2, Linux 5.6; glibc has no wrapper). */
static int open_nolinks(const char *path, int flags)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_NOFOLLOW | O_CLOEXEC),
		.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	long fd;

	if (path == NULL || path[0] != '/')
		return -EINVAL;
	fd = syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof(how));
	return fd < 0 ? -errno : (int)fd;
}

int entra_dir_open_nolinks(const char *path, mode_t mode, uid_t uid)
{
	struct stat st;
	int fd, rc;

	fd = open_nolinks(path, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return fd;
	rc = fstat(fd, &st) != 0 ? -errno : check_existing_dir(&st, mode & 07777, uid);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	return fd;
}

bool entra_stat_unchanged(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mode == b->st_mode && a->st_uid == b->st_uid &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

bool entra_stat_settled(const struct stat *st, int seconds)
{
	struct timespec now;

	if (clock_gettime(CLOCK_REALTIME_COARSE, &now) != 0)
		return false;
	return st->st_mtim.tv_sec + seconds < now.tv_sec && st->st_ctim.tv_sec + seconds < now.tv_sec;
}

static int write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int make_temp(int dirfd, const char *name, char *tmp, size_t tmp_len)
{
	unsigned char rnd[8];
	char suffix[sizeof(rnd) * 2 + 1];
	int fd;

	for (int attempt = 0; attempt < TEMP_ATTEMPTS; attempt++) {
		if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
			return errno ? -errno : -EIO;
		entra_hex_encode(rnd, sizeof(rnd), suffix);
		/* Keep the temp name within NAME_MAX however long name is. */
		if ((size_t)snprintf(tmp, tmp_len, ".%.200s.%s.tmp", name, suffix) >= tmp_len)
			return -ENAMETOOLONG;
		fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0)
			return fd;
		if (errno != EEXIST)
			return -errno;
	}
	return -EEXIST;
}

/* Files on tmpfs (/run) do not outlive a reboot: fsync buys nothing
 * there, and it is the costliest step of opening a session. */
static bool is_memory_fs(int fd)
{
	struct statfs fs;

	return fstatfs(fd, &fs) == 0 && (fs.f_type == TMPFS_MAGIC || fs.f_type == RAMFS_MAGIC);
}

/* Owner and mode, then the data: no byte lands in the file before the
 * file is the owner's and has its mode. */
static int fill_new_file(int fd, const void *data, size_t len, mode_t mode, uid_t uid, gid_t gid)
{
	if (fchown(fd, uid, gid) != 0 || fchmod(fd, mode & 07777) != 0)
		return -errno;
	return write_all(fd, data, len);
}

int entra_write_file_atomic(int dirfd, const char *name, const void *data, size_t len,
			    mode_t mode, uid_t uid, gid_t gid)
{
	char tmp[NAME_MAX + 1];
	bool durable;
	int fd, rc;

	if (!component_ok(name) || (data == NULL && len > 0))
		return -EINVAL;
	fd = make_temp(dirfd, name, tmp, sizeof(tmp));
	if (fd < 0)
		return fd;
	rc = fill_new_file(fd, data, len, mode, uid, gid);
	if (rc < 0)
		goto fail;
	durable = !is_memory_fs(fd);
	if (durable && fsync(fd) != 0) {
		rc = -errno;
		goto fail;
	}
	if (close(fd) != 0) {
		fd = -1;
		rc = -errno;
		goto fail;
	}
	fd = -1;
	if (renameat(dirfd, tmp, dirfd, name) != 0) {
		rc = -errno;
		goto fail;
	}
	/* The rename is durable only once the directory is. */
	if (durable && fsync(dirfd) != 0 && errno != EINVAL)
		return -errno;
	return 0;
fail:
	close_keep_errno(fd);
	unlinkat(dirfd, tmp, 0);
	return rc;
}

int entra_write_file_new(int dirfd, const char *name, const void *data, size_t len,
			 mode_t mode, uid_t uid, gid_t gid)
{
	int fd, rc;

	if (!component_ok(name) || (data == NULL && len > 0))
		return -EINVAL;
	fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	rc = fill_new_file(fd, data, len, mode, uid, gid);
	if (rc < 0)
		goto fail;
	if (close(fd) != 0) {
		fd = -1;
		rc = -errno;
		goto fail;
	}
	return 0;
fail:
	close_keep_errno(fd);
	unlinkat(dirfd, name, 0);
	return rc;
}

/* Check and read an opened file; closes fd. */
static int read_open_file(int fd, size_t max, uid_t owner, mode_t refused, struct entra_buf *out)
{
	struct stat st;
	char chunk[4096];
	size_t dirty = 0;
	int rc;

	if (fstat(fd, &st) != 0) {
		rc = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		goto out;
	}
	if (st.st_uid != owner) {
		rc = -EPERM;
		goto out;
	}
	if ((st.st_mode & refused) != 0) {
		rc = -EACCES;
		goto out;
	}
	if (st.st_size < 0 || (uintmax_t)st.st_size > max) {
		rc = -EFBIG;
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			goto out;
		}
		if (n == 0)
			break;
		if ((size_t)n > dirty)
			dirty = (size_t)n;
		rc = entra_buf_append(out, chunk, (size_t)n);
		if (rc < 0) {
			rc = rc == -E2BIG ? -EFBIG : rc; /* it grew while we read */
			goto out;
		}
		/* A short read of a regular file is its end: when that is
		 * exactly the size fstat saw, a read of 0 would only say so
		 * again. Anything else reads on to the end. */
		if ((size_t)n < sizeof(chunk) && out->len == (size_t)st.st_size)
			break;
	}
	if (out->data == NULL) {
		rc = entra_buf_append(out, "", 0);
		if (rc < 0)
			goto out;
	}
	rc = 0;
out:
	explicit_bzero(chunk, dirty); /* what a read put there */
	close(fd);
	if (rc < 0)
		entra_buf_free(out);
	return rc;
}

/* O_NONBLOCK: a FIFO planted here must not hang us before the S_ISREG
 * check. */
#define READ_FLAGS (O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)

static int read_file(int dirfd, const char *name, size_t max, uid_t owner, mode_t refused,
		     struct entra_buf *out)
{
	int fd;

	entra_buf_init(out, max);
	if (!component_ok(name))
		return -EINVAL;
	fd = openat(dirfd, name, READ_FLAGS);
	if (fd < 0)
		return -errno;
	return read_open_file(fd, max, owner, refused, out);
}

int entra_read_file_trusted(int dirfd, const char *name, size_t max, uid_t owner,
			    struct entra_buf *out)
{
	return read_file(dirfd, name, max, owner, S_IWGRP | S_IWOTH, out);
}

int entra_read_file_secret(int dirfd, const char *name, size_t max, uid_t owner,
			   struct entra_buf *out)
{
	return read_file(dirfd, name, max, owner, 077, out);
}

int entra_read_secret_nolinks(const char *path, size_t max, uid_t owner, struct entra_buf *out)
{
	int fd;

	entra_buf_init(out, max);
	fd = open_nolinks(path, READ_FLAGS);
	if (fd < 0)
		return fd;
	return read_open_file(fd, max, owner, 077, out);
}

int entra_read_path_trusted(const char *path, size_t max, uid_t owner, struct entra_buf *out)
{
	struct stat st;
	char *last = NULL;
	int parent, rc;

	entra_buf_init(out, max);
	parent = open_parent(path, &last);
	if (parent < 0)
		return parent;
	/* Whoever can replace the file can replace its contents: the
	 * directory holding it must be root's or the owner's, and not
	 * writable by others unless sticky (then only owners may rename). */
	if (fstat(parent, &st) != 0) {
		rc = -errno;
		goto out;
	}
	if (st.st_uid != 0 && st.st_uid != owner) {
		rc = -EPERM;
		goto out;
	}
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 && (st.st_mode & S_ISVTX) == 0) {
		rc = -EACCES;
		goto out;
	}
	rc = entra_read_file_trusted(parent, last, max, owner, out);
out:
	free(last);
	close(parent);
	return rc;
}

/* Recursive, bounded by REMOVE_MAX_DEPTH (checked before descending). */
static int remove_at(int dirfd, const char *name, dev_t dev, int depth) /* NOLINT(misc-no-recursion) */
{
	struct stat st;
	struct dirent *de;
	DIR *dir;
	int fd, rc = 0;

	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		if (errno != ENOTDIR && errno != ELOOP)
			return -errno;
		/* Not a directory (a symlink is removed, never followed). */
		if (unlinkat(dirfd, name, 0) != 0 && errno != ENOENT)
			return -errno;
		return 0;
	}
	if (fstat(fd, &st) != 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	if (dev != 0 && st.st_dev != dev) {
		close(fd); /* a mount point: never descend into another fs */
		return -EXDEV;
	}
	if (depth >= REMOVE_MAX_DEPTH) {
		close(fd);
		return -ELOOP;
	}
	dir = fdopendir(fd);
	if (dir == NULL) {
		rc = -errno;
		close(fd);
		return rc;
	}
	while ((errno = 0, de = readdir(dir)) != NULL) {
		int r;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		r = remove_at(fd, de->d_name, st.st_dev, depth + 1);
		if (r < 0 && rc == 0)
			rc = r;
	}
	if (errno != 0 && rc == 0)
		rc = -errno;
	closedir(dir);
	if (rc < 0)
		return rc;
	if (unlinkat(dirfd, name, AT_REMOVEDIR) != 0 && errno != ENOENT)
		return -errno;
	return 0;
}

int entra_remove_tree_at(int dirfd, const char *name)
{
	if (!component_ok(name))
		return -EINVAL;
	return remove_at(dirfd, name, 0, 0);
}
