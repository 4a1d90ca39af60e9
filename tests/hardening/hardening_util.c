#include "config.h"
#include "hardening_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

void assert_log_contains(const char *haystack, const char *needle)
{
	if (haystack == NULL || strstr(haystack, needle) == NULL) {
		fprintf(stderr, "# expected to find \"%s\" in:\n%s\n", needle, haystack ? haystack : "(null)");
		fail();
	}
}

void assert_log_lacks(const char *haystack, const char *needle)
{
	if (haystack != NULL && strstr(haystack, needle) != NULL) {
		fprintf(stderr, "# did not expect \"%s\" in:\n%s\n", needle, haystack);
		fail();
	}
}

static bool name_ok(const char *s)
{
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      strchr("@._+-", *s) != NULL))
			return false;
	return true;
}

static long temp_found;

static bool is_temp_name(const char *s)
{
	size_t n = strlen(s);

	return s[0] == '.' && n > 5 && strcmp(s + n - 4, ".tmp") == 0;
}

static int walk(int dfd, const char *path, const char *forbidden, long *count, int depth)
{
	DIR *d;
	struct dirent *de;
	int bad = 0, fd;

	if (depth > 16)
		return 0;
	d = fdopendir(dfd);
	if (d == NULL) {
		close(dfd);
		return 0;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		(*count)++;
		if (is_temp_name(de->d_name))
			temp_found++;
		if (!name_ok(de->d_name) || (forbidden != NULL && strstr(de->d_name, forbidden) != NULL)) {
			fprintf(stderr, "# unexpected name in %s: \"%s\"\n", path, de->d_name);
			bad++;
		}
		fd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0) {
			char sub[4096];

			snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
			bad += walk(fd, sub, forbidden, count, depth + 1);
		}
	}
	closedir(d);
	return bad;
}

int tree_bad_names(const char *root, const char *forbidden)
{
	long count = 0;
	int fd = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	return fd < 0 ? 0 : walk(fd, root, forbidden, &count, 0);
}

long tree_count(const char *root)
{
	long count = 0;
	int fd = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return -1;
	walk(fd, root, NULL, &count, 0);
	return count;
}

long tree_count_temp(const char *root)
{
	long count = 0;
	int fd = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return 0;
	temp_found = 0;
	walk(fd, root, NULL, &count, 0);
	return temp_found;
}

int run_shell(const char *cmd, char *out, size_t outlen)
{
	int fds[2], status, devnull;
	char sink[256];
	size_t used = 0;
	ssize_t n;
	pid_t pid;

	if (pipe(fds) != 0)
		return -1;
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		unsetenv("LD_PRELOAD");
		devnull = open("/dev/null", O_WRONLY);
		dup2(fds[1], 1);
		if (devnull >= 0)
			dup2(devnull, 2);
		close(fds[0]);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	while ((n = read(fds[0], out ? out + used : sink, out ? outlen - 1 - used : sizeof(sink))) > 0)
		if (out != NULL && (used += (size_t)n) >= outlen - 1)
			break;
	if (out != NULL)
		out[used] = '\0';
	close(fds[0]);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

void tree_remove(const char *root)
{
	pid_t pid = fork();

	if (pid == 0) {
		unsetenv("LD_PRELOAD");
		execl("/bin/rm", "rm", "-rf", "--one-file-system", root, (char *)NULL);
		_exit(127);
	}
	if (pid > 0)
		waitpid(pid, NULL, 0);
}

long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int run_child(int (*fn)(void *), void *arg, bool quiet)
{
	int status;
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		if (quiet) {
			int fd = open("/dev/null", O_WRONLY);

			if (fd >= 0)
				dup2(fd, 2);
		}
		_exit(fn(arg));
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}
