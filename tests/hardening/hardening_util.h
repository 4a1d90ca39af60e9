/* Helpers shared by the tests/hardening programs (on top of the PAM
 * harness in tests/pam/pam_harness.h). */
#ifndef HARDENING_UTIL_H
#define HARDENING_UTIL_H

#include <stdbool.h>
#include <stddef.h>

/* Fail the test unless needle occurs in haystack (printing both). */
void assert_log_contains(const char *haystack, const char *needle);
void assert_log_lacks(const char *haystack, const char *needle);

/* Walk a tree (without following symlinks): every entry name must be
 * made of [A-Za-z0-9@._+-], and none may contain `forbidden` (when not
 * NULL). Returns the number of bad names found (printed). */
int tree_bad_names(const char *root, const char *forbidden);

/* Number of entries (files and directories) below root, recursively; -1
 * when root does not exist. */
long tree_count(const char *root);

/* Remove a tree without following symlinks. */
void tree_remove(const char *root);

/* Number of hidden temp files (".*.tmp", as entra_write_file_atomic
 * names them) below root. */
long tree_count_temp(const char *root);

/* Run cmd with /bin/sh -c in a child without the PAM preload (the shell
 * and tools it starts must not load the test's shim or pam_wrapper),
 * stderr to /dev/null; its stdout goes to out (NUL-terminated, may be
 * NULL). Returns the exit status, or -1 when it did not exit. */
int run_shell(const char *cmd, char *out, size_t outlen);

/* Milliseconds on the monotonic clock. */
long long now_ms(void);

/* Run fn in a child process (fork), returning its exit status, or -1
 * when it was killed. The child's stderr goes to /dev/null when quiet. */
int run_child(int (*fn)(void *), void *arg, bool quiet);

#endif
