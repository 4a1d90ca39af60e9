/* Shared by the libFuzzer targets: a logger that aborts on a line an
 * attacker could have forged (control characters: log injection), string
 * checks, and a scratch directory on tmpfs for targets that read files. */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

static inline bool fuzz_printable(const char *s)
{
	for (; s != NULL && *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
			return false;
	return s != NULL;
}

/* Abort, saying what, when s is not one line of printable text. */
static inline void fuzz_need_printable(const char *what, const char *s)
{
	if (fuzz_printable(s))
		return;
	fprintf(stderr, "%s is not printable: ", what);
	for (; s != NULL && *s != '\0'; s++)
		fprintf(stderr, ((unsigned char)*s < 0x20 || *s == 0x7f) ? "\\x%02x" : "%c", (unsigned char)*s);
	fputc('\n', stderr);
	abort();
}

/* Every line the library logs must be one line of text. */
static void fuzz_emit(void *host, int priority, const char *line)
{
	(void)host;
	(void)priority;
	fuzz_need_printable("log line", line);
}

static const struct entra_log fuzz_log = { fuzz_emit, NULL, true };

/* A private directory, on /dev/shm when it exists (no disk I/O per run),
 * removed at exit by the target's own cleanup. */
static inline const char *fuzz_scratch_dir(void)
{
	static char dir[64];

	if (dir[0] == '\0') {
		snprintf(dir, sizeof(dir), "%s/entra-fuzz.XXXXXX",
			 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
		if (mkdtemp(dir) == NULL)
			abort();
	}
	return dir;
}

/* Split data at each "\n@@\n" into at most max parts (the last part
 * keeps any further separators). Returns the number of parts. */
struct fuzz_part {
	const char *p;
	size_t len;
};

static inline size_t fuzz_split(const uint8_t *data, size_t size, struct fuzz_part *parts, size_t max)
{
	static const char sep[] = "\n@@\n";
	const char *s = (const char *)data, *end = s + size;
	size_t n = 0;

	while (n + 1 < max) {
		const char *hit = memmem(s, (size_t)(end - s), sep, 4);

		if (hit == NULL)
			break;
		parts[n].p = s;
		parts[n].len = (size_t)(hit - s);
		n++;
		s = hit + 4;
	}
	parts[n].p = s;
	parts[n].len = (size_t)(end - s);
	return n + 1;
}

/* Remove every entry of a flat scratch directory. */
static inline void fuzz_empty_dir(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) != 0)
			unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR);
	}
	closedir(d);
}

static inline void fuzz_write(const char *dir, const char *name, const void *data, size_t len, mode_t mode)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0 || (len > 0 && write(fd, data, len) != (ssize_t)len))
		abort();
	fchmod(fd, mode);
	close(fd);
}

#endif
