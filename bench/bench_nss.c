/* bench_nss: cost of a passwd lookup, Entra module against `files`.
 *
 *   bench_nss build DBDIR PASSWD N
 *       a user database with N users and a passwd file with the same N
 *       users (plus root), for the comparison
 *   bench_nss glibc N [ITER]
 *       getpwnam_r/getpwuid_r through glibc (whatever nsswitch.conf says):
 *       hit and miss, ns per lookup
 *   bench_nss direct SO DBDIR N [ITER]
 *       the module's entry points called directly (no glibc dispatch);
 *       with ITER fixed, for callgrind's instruction counts
 *
 * Lines printed: "<mode> <call> <hit|miss> <ns-per-lookup> <iterations>".
 * Run through bench/run_bench.sh, which sets up the private mount
 * namespace and prints the ratios. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <nss.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "userdb.h"

#define UID_MIN 1900000000u
#define MISS_UID 1500000000u

static const char *const domains[] = { "contoso.com" };

typedef enum nss_status (*pwnam_fn)(const char *, struct passwd *, char *, size_t, int *);
typedef enum nss_status (*pwuid_fn)(uid_t, struct passwd *, char *, size_t, int *);

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static bool none(uint32_t id, void *d)
{
	(void)id;
	(void)d;
	return false;
}

static bool no_name(const char *n, uint32_t a, uint32_t b, void *d)
{
	(void)n;
	(void)a;
	(void)b;
	(void)d;
	return false;
}

static int build(const char *dir, const char *passwd, long n)
{
	struct entra_userdb_rules rules = {
		.mapping = ENTRA_USERDB_MAP_UPN, .allowed_domains = domains, .n_allowed_domains = 1,
		.uid_min = UID_MIN, .uid_max = 1999999999, .admin_group = "entra-admins",
		.admin_gid = 1899999999, .home_template = "/home/%u", .shell = "/bin/bash",
	};
	struct entra_userdb_system sys = { none, no_name, NULL };
	struct entra_userdb_writer w = { dir, &rules, &sys, NULL };
	struct entra_userdb_login *l = calloc((size_t)n, sizeof(*l));
	char *names = calloc((size_t)n, 104);
	struct entra_userdb *db;
	struct entra_userdb_user u;
	char reason[256] = "";
	FILE *fp;
	int rc;

	if (l == NULL || names == NULL)
		return 1;
	for (long i = 0; i < n; i++) {
		char *name = names + i * 104, *oid = name + 64;

		snprintf(name, 64, "user%ld@contoso.com", i);
		snprintf(oid, 40, "%08lx-0000-4000-8000-000000000000", (unsigned long)i & 0xffffffffUL);
		l[i] = (struct entra_userdb_login){ name, oid, NULL, "Bench User", i % 10 == 0, 1700000000 };
	}
	rc = entra_userdb_record_batch(&w, l, (size_t)n, NULL, reason, sizeof(reason));
	if (rc != 0) {
		fprintf(stderr, "build: %s\n", reason);
		return 1;
	}
	/* The same users, same uids, for files. */
	if (entra_userdb_open(dir, &db, reason, sizeof(reason)) != 0) {
		fprintf(stderr, "open: %s\n", reason);
		return 1;
	}
	fp = fopen(passwd, "w");
	if (fp == NULL)
		return 1;
	fprintf(fp, "root:x:0:0:root:/root:/bin/bash\n");
	for (long i = 0; i < n; i++) {
		entra_userdb_get_index(db, (size_t)i, &u);
		fprintf(fp, "%s:x:%u:%u:%s:%s:%s\n", u.name, u.uid, u.gid, u.gecos, u.home, u.shell);
	}
	fclose(fp);
	entra_userdb_close(db);
	free(l);
	free(names);
	return 0;
}

/* Hit keys: spread over the whole set, so `files` pays its average. */
static void hit_name(long n, long i, char *buf, size_t len)
{
	snprintf(buf, len, "user%ld@contoso.com", (i * 7919) % n);
}

struct target {
	pwnam_fn pwnam;
	pwuid_fn pwuid;
	uid_t *uids; /* uid of hit key i */
};

static enum nss_status via_glibc_nam(const char *name, struct passwd *pw, char *buf, size_t len, int *err)
{
	struct passwd *res = NULL;
	int rc = getpwnam_r(name, pw, buf, len, &res);

	*err = rc;
	return res != NULL ? NSS_STATUS_SUCCESS : NSS_STATUS_NOTFOUND;
}

static enum nss_status via_glibc_uid(uid_t uid, struct passwd *pw, char *buf, size_t len, int *err)
{
	struct passwd *res = NULL;
	int rc = getpwuid_r(uid, pw, buf, len, &res);

	*err = rc;
	return res != NULL ? NSS_STATUS_SUCCESS : NSS_STATUS_NOTFOUND;
}

#define KEYS 64

/* Runs a lookup kind until ITER iterations (or, when iter is 0, at least
 * 0.3 s and 20 iterations); returns ns per lookup, -1 on a wrong answer. */
static double measure(const struct target *t, long n, bool by_uid, bool hit, long iter, long *done)
{
	char names[KEYS][64];
	uid_t uids[KEYS];
	struct passwd pw;
	char buf[1024];
	double start, elapsed;
	long k = 0;
	int err;

	for (int i = 0; i < KEYS; i++) {
		if (hit) {
			hit_name(n, i, names[i], sizeof(names[i]));
			uids[i] = t->uids[i];
		} else {
			snprintf(names[i], sizeof(names[i]), "missing%d@example.org", i);
			uids[i] = MISS_UID + (uid_t)i;
		}
	}
	start = now_ns();
	for (;;) {
		enum nss_status st;
		int i = (int)(k % KEYS);

		st = by_uid ? t->pwuid(uids[i], &pw, buf, sizeof(buf), &err)
			    : t->pwnam(names[i], &pw, buf, sizeof(buf), &err);
		if ((st == NSS_STATUS_SUCCESS) != hit)
			return -1;
		k++;
		if (iter > 0) {
			if (k >= iter)
				break;
		} else if ((k & 15) == 0 || k < 32) {
			elapsed = now_ns() - start;
			if (k >= 20 && elapsed > 3e8)
				break;
		}
	}
	elapsed = now_ns() - start;
	*done = k;
	return elapsed / (double)k;
}

static int run(const char *mode, struct target *t, long n, long iter)
{
	static const struct {
		const char *call;
		bool by_uid, hit;
	} kinds[] = {
		{ "getpwnam_r", false, true }, { "getpwnam_r", false, false },
		{ "getpwuid_r", true, true },  { "getpwuid_r", true, false },
	};
	const char *only = getenv("BENCH_KIND"); /* 0-3: one kind (callgrind runs) */
	struct passwd pw;
	char buf[1024];
	int err;

	t->uids = calloc(KEYS, sizeof(uid_t));
	if (t->uids == NULL)
		return 1;
	/* uids of the hit keys, as the module itself reports them */
	for (int i = 0; i < KEYS; i++) {
		char name[64];

		hit_name(n, i, name, sizeof(name));
		if (t->pwnam(name, &pw, buf, sizeof(buf), &err) != NSS_STATUS_SUCCESS) {
			fprintf(stderr, "%s: %s does not resolve\n", mode, name);
			return 1;
		}
		t->uids[i] = pw.pw_uid;
	}
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		long done = 0;
		double ns;

		if (only != NULL && (size_t)strtol(only, NULL, 10) != i)
			continue;
		ns = measure(t, n, kinds[i].by_uid, kinds[i].hit, iter, &done);

		if (ns < 0) {
			fprintf(stderr, "%s %s: wrong answer\n", mode, kinds[i].call);
			return 1;
		}
		printf("%s %s %s %.1f %ld\n", mode, kinds[i].call, kinds[i].hit ? "hit" : "miss", ns, done);
	}
	free(t->uids);
	return 0;
}

int main(int argc, char **argv)
{
	struct target t = { 0 };

	if (argc == 5 && strcmp(argv[1], "build") == 0)
		return build(argv[2], argv[3], strtol(argv[4], NULL, 10));
	if ((argc == 3 || argc == 4) && strcmp(argv[1], "glibc") == 0) {
		t.pwnam = via_glibc_nam;
		t.pwuid = via_glibc_uid;
		return run("glibc", &t, strtol(argv[2], NULL, 10), argc == 4 ? strtol(argv[3], NULL, 10) : 0);
	}
	if ((argc == 5 || argc == 6) && strcmp(argv[1], "direct") == 0) {
		void *so;

		if (setenv("ENTRA_NSS_DB_DIR", argv[3], 1) != 0)
			return 1;
		so = dlopen(argv[2], RTLD_NOW | RTLD_LOCAL);
		if (so == NULL) {
			fprintf(stderr, "dlopen: %s\n", dlerror());
			return 1;
		}
		t.pwnam = (pwnam_fn)dlsym(so, "_nss_entra_getpwnam_r");
		t.pwuid = (pwuid_fn)dlsym(so, "_nss_entra_getpwuid_r");
		if (t.pwnam == NULL || t.pwuid == NULL)
			return 1;
		return run("direct", &t, strtol(argv[4], NULL, 10), argc == 6 ? strtol(argv[5], NULL, 10) : 0);
	}
	fprintf(stderr, "usage: bench_nss build DBDIR PASSWD N | glibc N [ITER] | direct SO DBDIR N [ITER]\n");
	return 2;
}
