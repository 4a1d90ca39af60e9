/* Test helper: loads libnss_entra.so.2 with dlopen and calls its entry
 * points directly, to check what glibc itself hides (status codes,
 * ERANGE handling, errno preservation).
 *   nss_lookup SO pwnam NAME | pwuid UID | grnam NAME | grgid GID
 *   nss_lookup SO erange pw|gr NAME  (buffers of 0.. bytes until success)
 *   nss_lookup SO pwent | grent | initgroups NAME
 *   nss_lookup SO threads NAME    (8 threads x 20000 lookups)
 * Prints "STATUS <n> ERRNO <e>" and the entry; exit 0 unless a check
 * inside the helper failed. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <grp.h>
#include <nss.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum nss_status (*pwnam_fn)(const char *, struct passwd *, char *, size_t, int *);
typedef enum nss_status (*pwuid_fn)(uid_t, struct passwd *, char *, size_t, int *);
typedef enum nss_status (*grnam_fn)(const char *, struct group *, char *, size_t, int *);
typedef enum nss_status (*grgid_fn)(gid_t, struct group *, char *, size_t, int *);
typedef enum nss_status (*pwent_fn)(struct passwd *, char *, size_t, int *);
typedef enum nss_status (*grent_fn)(struct group *, char *, size_t, int *);
typedef enum nss_status (*setent_fn)(int);
typedef enum nss_status (*initgroups_fn)(const char *, gid_t, long *, long *, gid_t **, long, int *);

static void *so;

static void *sym(const char *name)
{
	void *p = dlsym(so, name);

	if (p == NULL) {
		fprintf(stderr, "missing %s\n", name);
		exit(3);
	}
	return p;
}

static void print_pw(enum nss_status st, int err, const struct passwd *pw)
{
	printf("STATUS %d ERRNO %d\n", st, err);
	if (st == NSS_STATUS_SUCCESS)
		printf("%s:%s:%u:%u:%s:%s:%s\n", pw->pw_name, pw->pw_passwd, pw->pw_uid, pw->pw_gid,
		       pw->pw_gecos, pw->pw_dir, pw->pw_shell);
}

static void print_gr(enum nss_status st, int err, const struct group *gr)
{
	printf("STATUS %d ERRNO %d\n", st, err);
	if (st == NSS_STATUS_SUCCESS) {
		printf("%s:%s:%u:", gr->gr_name, gr->gr_passwd, gr->gr_gid);
		for (char **m = gr->gr_mem; *m != NULL; m++)
			printf("%s%s", m == gr->gr_mem ? "" : ",", *m);
		printf("\n");
	}
}

static const char *thread_name;

static void *thread_main(void *arg)
{
	pwnam_fn pwnam = sym("_nss_entra_getpwnam_r");
	struct passwd pw;
	char buf[1024];
	int err;

	(void)arg;
	for (int i = 0; i < 20000; i++)
		if (pwnam(thread_name, &pw, buf, sizeof(buf), &err) != NSS_STATUS_SUCCESS)
			return (void *)1;
	return NULL;
}

int main(int argc, char **argv)
{
	static char buf[1 << 20];
	struct passwd pw;
	struct group gr;
	enum nss_status st;
	int err = 0;

	if (argc < 3) {
		fprintf(stderr, "usage: nss_lookup SO CMD [ARG]\n");
		return 2;
	}
	so = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	if (so == NULL) {
		fprintf(stderr, "dlopen: %s\n", dlerror());
		return 3;
	}
	errno = 4242; /* must survive every call */
	if (strcmp(argv[2], "pwnam") == 0 && argc == 4) {
		st = ((pwnam_fn)sym("_nss_entra_getpwnam_r"))(argv[3], &pw, buf, sizeof(buf), &err);
		print_pw(st, err, &pw);
	} else if (strcmp(argv[2], "pwuid") == 0 && argc == 4) {
		st = ((pwuid_fn)sym("_nss_entra_getpwuid_r"))((uid_t)strtoul(argv[3], NULL, 10), &pw, buf,
							      sizeof(buf), &err);
		print_pw(st, err, &pw);
	} else if (strcmp(argv[2], "grnam") == 0 && argc == 4) {
		st = ((grnam_fn)sym("_nss_entra_getgrnam_r"))(argv[3], &gr, buf, sizeof(buf), &err);
		print_gr(st, err, &gr);
	} else if (strcmp(argv[2], "grgid") == 0 && argc == 4) {
		st = ((grgid_fn)sym("_nss_entra_getgrgid_r"))((gid_t)strtoul(argv[3], NULL, 10), &gr, buf,
							      sizeof(buf), &err);
		print_gr(st, err, &gr);
	} else if (strcmp(argv[2], "erange") == 0 && argc == 5) {
		pwnam_fn pwnam = sym("_nss_entra_getpwnam_r");
		grnam_fn grnam = sym("_nss_entra_getgrnam_r");
		size_t n;

		for (n = 0; strcmp(argv[3], "pw") == 0 && n < 4096; n++) {
			char *small = malloc(n ? n : 1);

			err = 0;
			st = pwnam(argv[4], &pw, small, n, &err);
			if (st == NSS_STATUS_SUCCESS) {
				print_pw(st, err, &pw);
				free(small);
				break;
			}
			free(small);
			if (st != NSS_STATUS_TRYAGAIN || err != ERANGE) {
				printf("BAD at %zu: status %d errno %d\n", n, st, err);
				return 1;
			}
		}
		if (strcmp(argv[3], "pw") == 0)
			printf("PW_NEEDED %zu\n", n);
		for (n = 0; strcmp(argv[3], "gr") == 0 && n < 65536; n++) {
			char *small = malloc(n ? n : 1);

			err = 0;
			st = grnam(argv[4], &gr, small, n, &err);
			if (st == NSS_STATUS_SUCCESS) {
				print_gr(st, err, &gr);
				free(small);
				break;
			}
			free(small);
			if (st != NSS_STATUS_TRYAGAIN || err != ERANGE) {
				printf("BAD group at %zu: status %d errno %d\n", n, st, err);
				return 1;
			}
		}
		if (strcmp(argv[3], "gr") == 0)
			printf("GR_NEEDED %zu\n", n);
	} else if (strcmp(argv[2], "pwent") == 0) {
		pwent_fn pwent = sym("_nss_entra_getpwent_r");

		((setent_fn)sym("_nss_entra_setpwent"))(0);
		while ((st = pwent(&pw, buf, sizeof(buf), &err)) == NSS_STATUS_SUCCESS)
			print_pw(st, err, &pw);
		printf("END %d\n", st);
		((setent_fn)sym("_nss_entra_endpwent"))(0);
	} else if (strcmp(argv[2], "grent") == 0) {
		grent_fn grent = sym("_nss_entra_getgrent_r");

		((setent_fn)sym("_nss_entra_setgrent"))(0);
		while ((st = grent(&gr, buf, sizeof(buf), &err)) == NSS_STATUS_SUCCESS)
			print_gr(st, err, &gr);
		printf("END %d\n", st);
		((setent_fn)sym("_nss_entra_endgrent"))(0);
	} else if (strcmp(argv[2], "initgroups") == 0 && argc == 4) {
		long start = 1, size = 1;
		gid_t *groups = malloc(sizeof(gid_t));

		groups[0] = 100;
		st = ((initgroups_fn)sym("_nss_entra_initgroups_dyn"))(argv[3], 100, &start, &size, &groups, 0,
								       &err);
		printf("STATUS %d ERRNO %d\nGROUPS", st, err);
		for (long i = 0; i < start; i++)
			printf(" %u", groups[i]);
		printf("\n");
		free(groups);
	} else if (strcmp(argv[2], "threads") == 0 && argc == 4) {
		pthread_t t[8];
		void *ret;
		int bad = 0;

		thread_name = argv[3];
		for (int i = 0; i < 8; i++)
			pthread_create(&t[i], NULL, thread_main, NULL);
		for (int i = 0; i < 8; i++) {
			pthread_join(t[i], &ret);
			bad |= ret != NULL;
		}
		printf("THREADS %s\n", bad ? "FAILED" : "OK");
	} else {
		fprintf(stderr, "bad command\n");
		return 2;
	}
	if (errno != 4242) {
		printf("ERRNO CLOBBERED %d\n", errno);
		return 1;
	}
	return 0;
}
