/* Safe file operations for root-owned state: no symlink is ever followed,
 * owners and modes are checked, writes are atomic (temp file, fsync,
 * rename), and files holding secrets are created 0600. */
#ifndef ENTRA_FSUTIL_H
#define ENTRA_FSUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "buf.h"

/* Create the directory if missing (parents must exist), with the given
 * owner and mode; if present, require a real directory (not a symlink)
 * owned by uid, with exactly that mode or stricter bits. path is absolute;
 * only its last component is opened with O_NOFOLLOW.
 * Returns an open O_DIRECTORY|O_NOFOLLOW fd, or -errno
 * (-ELOOP symlink, -EPERM wrong owner, -EACCES mode too open, -ENOTDIR). */
int entra_dir_open_or_create(const char *path, mode_t mode, uid_t uid, gid_t gid);

/* The same, for one component `name` inside an open directory. */
int entra_dir_open_or_create_at(int dirfd, const char *name, mode_t mode, uid_t uid, gid_t gid);

/* The same checks for an existing dirfd/name, never created. fd or
 * -errno (-ENOENT when missing). */
int entra_dir_open_existing_at(int dirfd, const char *name, mode_t mode, uid_t uid);

/* Create dirfd/name, which must not exist (-EEXIST), for the caller's
 * euid with mode (owner bits only; no one else gets any access), and open
 * it O_NOFOLLOW. For a fresh, randomly named directory that the caller
 * fills and only then hands over (fchown): while it is filled no one else
 * can enter it. Returns fd or -errno. */
int entra_dir_create_at(int dirfd, const char *name, mode_t mode);

/* Open an existing directory without following symlinks, requiring owner
 * uid and no group/other write bit. Returns fd or -errno. */
int entra_dir_open_trusted(const char *path, uid_t uid);

/* Open an existing directory through an absolute path with no symlink in
 * any component (openat2 RESOLVE_NO_SYMLINKS), requiring owner uid and no
 * mode bit beyond mode. One system call for a path whose directories the
 * caller would otherwise open and check one by one: it checks the last
 * one only, so callers use it where that suffices and fall back to the
 * functions above on any error (-ELOOP: a symlink on the way, -ENOSYS or
 * -EPERM: no openat2 here, -ENOENT, -EPERM/-EACCES: owner or mode).
 * fd or -errno. */
int entra_dir_open_nolinks(const char *path, mode_t mode, uid_t uid);

/* Whether two stats describe the same file with the same contents, owner
 * and mode: any change of its data, owner or mode changes its ctime, and a
 * file put in its place (rename, link) is another inode. For caches of
 * what a file held. */
bool entra_stat_unchanged(const struct stat *a, const struct stat *b);

/* Whether the file had not changed for more than `seconds` before now:
 * two writes within one tick of the file system's clock, of the same size,
 * look alike (the "racy git" problem), so a cache reuses what it read of a
 * file only once the file has settled. */
bool entra_stat_settled(const struct stat *st, int seconds);

/* Atomically replace dirfd/name with data: a temp file in the same
 * directory (O_EXCL|O_NOFOLLOW, the final mode and owner set before any
 * data is written), fsync, rename, fsync of the directory. 0 or -errno;
 * on failure no temp file is left behind and the old file is untouched. */
int entra_write_file_atomic(int dirfd, const char *name, const void *data, size_t len,
			    mode_t mode, uid_t uid, gid_t gid);

/* Create dirfd/name, which must not exist (O_EXCL|O_NOFOLLOW), owner and
 * mode set before the data is written; on failure it is removed. Not
 * atomic and not synced: only for a directory no one else can enter
 * (one made by entra_dir_create_at, or root's own 0700 directory with a
 * fresh random name) whose files do not need to outlive a crash, such
 * as a session's. Readers cannot see the file before it is complete.
 * 0 or -errno (-EEXIST if it exists). */
int entra_write_file_new(int dirfd, const char *name, const void *data, size_t len,
			 mode_t mode, uid_t uid, gid_t gid);

/* Read dirfd/name (O_NOFOLLOW, a regular file, at most max bytes, owned by
 * owner, not writable by group or others) into out (initialised here;
 * out->data is "" for an empty file). 0, or -ENOENT, -ELOOP, -EPERM
 * (owner), -EACCES (mode), -EFBIG (size), -EINVAL (not a regular file, or
 * name not a single path component). On failure out is empty. */
int entra_read_file_trusted(int dirfd, const char *name, size_t max, uid_t owner,
			    struct entra_buf *out);
/* The same for a file holding a secret: any group or other permission bit
 * at all is refused (-EACCES). */
int entra_read_file_secret(int dirfd, const char *name, size_t max, uid_t owner,
			   struct entra_buf *out);

/* entra_read_file_secret for an absolute path opened as
 * entra_dir_open_nolinks opens it: only the file is checked, not the
 * directories it is in, so only for content that says itself what it is
 * (the managed-identity cache names its key). Same errors, and those of
 * entra_dir_open_nolinks. */
int entra_read_secret_nolinks(const char *path, size_t max, uid_t owner, struct entra_buf *out);

/* Same for an absolute path (used for the config file). The directory
 * holding the file must also be owned by root or owner (-EPERM) and not
 * writable by group/others unless sticky (-EACCES); directories above it
 * are taken as trusted system paths (they may be symlinks). */
int entra_read_path_trusted(const char *path, size_t max, uid_t owner, struct entra_buf *out);

/* Remove dirfd/name and everything below it without following symlinks
 * (a symlink is removed itself) and without crossing into another file
 * system (-EXDEV, that part is left). name is one path component. 0 (also
 * when it did not exist) or -errno; -ELOOP past 32 levels of nesting. */
int entra_remove_tree_at(int dirfd, const char *name);

#endif
