/* libnss_entra.so.2: glibc NSS glue over the local user database (lib/userdb).
 * Loaded into every process that resolves a name: no network, no daemon,
 * no allocation on lookups, errno preserved, and only _nss_entra_* exported
 * (nss_entra.map). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <grp.h>
#include <nss.h>
#include <pthread.h>
#include <pwd.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>

#include "names.h"
#include "userdb.h"

#ifndef ENTRA_NSS_DB_DIR
#define ENTRA_NSS_DB_DIR LOCALSTATEDIR "/lib/pam_entra"
#endif

#define EXPORT __attribute__((visibility("default")))

static struct entra_userdb_cache cache = ENTRA_USERDB_CACHE_INIT;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

/* Iteration state of getpwent/getgrent, shared by the process as glibc
 * expects, under its own lock. */
static pthread_mutex_t ent_lock = PTHREAD_MUTEX_INITIALIZER;
static size_t pw_next, gr_next;

static void cache_init(void)
{
	const char *dir = NULL;

	/* Test hook: ENTRA_NSS_DB_DIR points the module at another database
	 * (nss_wrapper tests). Never honoured in a setuid/setgid or otherwise
	 * secure-execution process, where the environment is the caller's. */
	if (getauxval(AT_SECURE) == 0)
		dir = getenv("ENTRA_NSS_DB_DIR");
	if (dir == NULL || dir[0] != '/' || entra_userdb_cache_set_dir(&cache, dir) != 0)
		entra_userdb_cache_set_dir(&cache, ENTRA_NSS_DB_DIR);
}

static const struct entra_userdb *db_acquire(enum nss_status *status, int *errnop)
{
	const struct entra_userdb *db;
	int err = 0;

	pthread_once(&cache_once, cache_init);
	db = entra_userdb_cache_acquire(&cache, &err);
	if (db == NULL) {
		/* No database yet is the normal state of a node before the
		 * first Entra login: not found. A bad one: unavailable. */
		if (err == -ENOENT) {
			*status = NSS_STATUS_NOTFOUND;
			*errnop = ENOENT;
		} else {
			*status = NSS_STATUS_UNAVAIL;
			*errnop = -err;
		}
	}
	return db;
}

static void db_release(void)
{
	entra_userdb_cache_release(&cache);
}

/* ---- buffer packing ---------------------------------------------------- */

struct pack {
	char *buf;
	size_t len, used;
};

static char *pack_str(struct pack *p, const char *s)
{
	size_t n = strlen(s) + 1;
	char *d;

	if (p->len - p->used < n)
		return NULL;
	d = p->buf + p->used;
	memcpy(d, s, n);
	p->used += n;
	return d;
}

static char **pack_ptrs(struct pack *p, size_t count)
{
	uintptr_t at = (uintptr_t)(p->buf + p->used);
	size_t pad = (alignof(char *) - at % alignof(char *)) % alignof(char *);
	char **ptrs;

	if (count > SIZE_MAX / sizeof(char *) - 1 || p->len - p->used < pad ||
	    p->len - p->used - pad < (count + 1) * sizeof(char *))
		return NULL;
	p->used += pad;
	ptrs = (char **)(void *)(p->buf + p->used);
	p->used += (count + 1) * sizeof(char *);
	return ptrs;
}

static enum nss_status fill_passwd(const struct entra_userdb_user *u, struct passwd *pw, char *buf,
				   size_t buflen, int *errnop)
{
	struct pack p = { buf, buflen, 0 };

	pw->pw_name = pack_str(&p, u->name);
	pw->pw_passwd = pack_str(&p, "*"); /* no local password: Entra authenticates */
	pw->pw_gecos = pack_str(&p, u->gecos);
	pw->pw_dir = pack_str(&p, u->home);
	pw->pw_shell = pack_str(&p, u->shell);
	if (!pw->pw_name || !pw->pw_passwd || !pw->pw_gecos || !pw->pw_dir || !pw->pw_shell) {
		*errnop = ERANGE;
		return NSS_STATUS_TRYAGAIN;
	}
	pw->pw_uid = u->uid;
	pw->pw_gid = u->gid;
	return NSS_STATUS_SUCCESS;
}

static enum nss_status fill_group(const struct entra_userdb *db, const struct entra_userdb_group *g,
				  struct group *gr, char *buf, size_t buflen, int *errnop)
{
	struct pack p = { buf, buflen, 0 };
	char **mem;

	/* Pointers first: alignment is easiest at the buffer's start. */
	mem = pack_ptrs(&p, g->n_members);
	if (mem == NULL)
		goto erange;
	gr->gr_name = pack_str(&p, g->name);
	gr->gr_passwd = pack_str(&p, "*");
	if (gr->gr_name == NULL || gr->gr_passwd == NULL)
		goto erange;
	for (uint32_t i = 0; i < g->n_members; i++) {
		const char *m = entra_userdb_admin_member(db, i);

		mem[i] = m ? pack_str(&p, m) : NULL;
		if (mem[i] == NULL)
			goto erange;
	}
	mem[g->n_members] = NULL;
	gr->gr_mem = mem;
	gr->gr_gid = g->gid;
	return NSS_STATUS_SUCCESS;
erange:
	*errnop = ERANGE;
	return NSS_STATUS_TRYAGAIN;
}

/* ---- passwd --------------------------------------------------------------- */

EXPORT enum nss_status _nss_entra_getpwnam_r(const char *name, struct passwd *pw, char *buf, size_t buflen,
					     int *errnop);
EXPORT enum nss_status _nss_entra_getpwnam_r(const char *name, struct passwd *pw, char *buf, size_t buflen,
					     int *errnop)
{
	int saved = errno;
	enum nss_status st;
	const struct entra_userdb *db;
	struct entra_userdb_user u;
	char home[ENTRA_USERDB_PATH_MAX];
	int rc;

	if (name == NULL || !entra_name_is_valid(name)) {
		*errnop = ENOENT;
		errno = saved;
		return NSS_STATUS_NOTFOUND;
	}
	db = db_acquire(&st, errnop);
	if (db == NULL) {
		errno = saved;
		return st;
	}
	rc = entra_userdb_resolve_name(db, name, &u, home, sizeof(home));
	if (rc == 0) {
		st = fill_passwd(&u, pw, buf, buflen, errnop);
	} else {
		*errnop = ENOENT;
		st = NSS_STATUS_NOTFOUND;
	}
	db_release();
	errno = saved;
	return st;
}

EXPORT enum nss_status _nss_entra_getpwuid_r(uid_t uid, struct passwd *pw, char *buf, size_t buflen,
					     int *errnop);
EXPORT enum nss_status _nss_entra_getpwuid_r(uid_t uid, struct passwd *pw, char *buf, size_t buflen,
					     int *errnop)
{
	int saved = errno;
	enum nss_status st;
	const struct entra_userdb *db;
	struct entra_userdb_user u;

	db = db_acquire(&st, errnop);
	if (db == NULL) {
		errno = saved;
		return st;
	}
	if (entra_userdb_find_uid(db, (uint32_t)uid, &u) == 0) {
		st = fill_passwd(&u, pw, buf, buflen, errnop);
	} else {
		*errnop = ENOENT;
		st = NSS_STATUS_NOTFOUND;
	}
	db_release();
	errno = saved;
	return st;
}

EXPORT enum nss_status _nss_entra_setpwent(int stayopen);
EXPORT enum nss_status _nss_entra_setpwent(int stayopen)
{
	(void)stayopen;
	pthread_mutex_lock(&ent_lock);
	pw_next = 0;
	pthread_mutex_unlock(&ent_lock);
	return NSS_STATUS_SUCCESS;
}

EXPORT enum nss_status _nss_entra_endpwent(void);
EXPORT enum nss_status _nss_entra_endpwent(void)
{
	return _nss_entra_setpwent(0);
}

/* Enumeration lists recorded users only: first-login names are an
 * unbounded set (see nss_entra(8)). */
EXPORT enum nss_status _nss_entra_getpwent_r(struct passwd *pw, char *buf, size_t buflen, int *errnop);
EXPORT enum nss_status _nss_entra_getpwent_r(struct passwd *pw, char *buf, size_t buflen, int *errnop)
{
	int saved = errno;
	enum nss_status st;
	const struct entra_userdb *db;
	struct entra_userdb_user u;

	pthread_mutex_lock(&ent_lock);
	db = db_acquire(&st, errnop);
	if (db != NULL) {
		if (entra_userdb_get_index(db, pw_next, &u) == 0) {
			st = fill_passwd(&u, pw, buf, buflen, errnop);
			if (st == NSS_STATUS_SUCCESS)
				pw_next++; /* on ERANGE the caller retries the same entry */
		} else {
			*errnop = ENOENT;
			st = NSS_STATUS_NOTFOUND;
		}
		db_release();
	}
	pthread_mutex_unlock(&ent_lock);
	errno = saved;
	return st;
}

/* ---- group ------------------------------------------------------------------ */

EXPORT enum nss_status _nss_entra_getgrnam_r(const char *name, struct group *gr, char *buf, size_t buflen,
					     int *errnop);
EXPORT enum nss_status _nss_entra_getgrnam_r(const char *name, struct group *gr, char *buf, size_t buflen,
					     int *errnop)
{
	int saved = errno;
	enum nss_status st;
	const struct entra_userdb *db;
	struct entra_userdb_group g;

	if (name == NULL || !entra_name_is_valid(name)) {
		*errnop = ENOENT;
		errno = saved;
		return NSS_STATUS_NOTFOUND;
	}
	db = db_acquire(&st, errnop);
	if (db == NULL) {
		errno = saved;
		return st;
	}
	if (entra_userdb_group_by_name(db, name, &g) == 0) {
		st = fill_group(db, &g, gr, buf, buflen, errnop);
	} else {
		*errnop = ENOENT;
		st = NSS_STATUS_NOTFOUND;
	}
	db_release();
	errno = saved;
	return st;
}

EXPORT enum nss_status _nss_entra_getgrgid_r(gid_t gid, struct group *gr, char *buf, size_t buflen,
					     int *errnop);
EXPORT enum nss_status _nss_entra_getgrgid_r(gid_t gid, struct group *gr, char *buf, size_t buflen,
					     int *errnop)
{
	int saved = errno;
	enum nss_status st;
	const struct entra_userdb *db;
	struct entra_userdb_group g;

	db = db_acquire(&st, errnop);
	if (db == NULL) {
		errno = saved;
		return st;
	}
	if (entra_userdb_group_by_gid(db, (uint32_t)gid, &g) == 0) {
		st = fill_group(db, &g, gr, buf, buflen, errnop);
	} else {
		*errnop = ENOENT;
		st = NSS_STATUS_NOTFOUND;
	}
	db_release();
	errno = saved;
	return st;
}

EXPORT enum nss_status _nss_entra_setgrent(int stayopen);
EXPORT enum nss_status _nss_entra_setgrent(int stayopen)
{
	(void)stayopen;
	pthread_mutex_lock(&ent_lock);
	gr_next = 0;
	pthread_mutex_unlock(&ent_lock);
	return NSS_STATUS_SUCCESS;
}

EXPORT enum nss_status _nss_entra_endgrent(void);
EXPORT enum nss_status _nss_entra_endgrent(void)
{
	return _nss_entra_setgrent(0);
}

EXPORT enum nss_status _nss_entra_getgrent_r(struct group *gr, char *buf, size_t buflen, int *errnop);
EXPORT enum nss_status _nss_entra_getgrent_r(struct group *gr, char *buf, size_t buflen, int *errnop)
{
	int saved = errno;
	enum nss_status st;
	const struct entra_userdb *db;
	struct entra_userdb_group g;

	pthread_mutex_lock(&ent_lock);
	db = db_acquire(&st, errnop);
	if (db != NULL) {
		if (entra_userdb_group_by_index(db, gr_next, &g) == 0) {
			st = fill_group(db, &g, gr, buf, buflen, errnop);
			if (st == NSS_STATUS_SUCCESS)
				gr_next++;
		} else {
			*errnop = ENOENT;
			st = NSS_STATUS_NOTFOUND;
		}
		db_release();
	}
	pthread_mutex_unlock(&ent_lock);
	errno = saved;
	return st;
}

/* Supplementary groups: the admin group, for users whose last login
 * granted admin. The private group is the primary group (glibc adds it). */
EXPORT enum nss_status _nss_entra_initgroups_dyn(const char *user, gid_t group, long int *start,
						 long int *size, gid_t **groupsp, long int limit,
						 int *errnop);
EXPORT enum nss_status _nss_entra_initgroups_dyn(const char *user, gid_t group, long int *start,
						 long int *size, gid_t **groupsp, long int limit,
						 int *errnop)
{
	int saved = errno;
	enum nss_status st;
	const struct entra_userdb *db;
	struct entra_userdb_user u;
	struct entra_userdb_rules rules;
	gid_t admin_gid;

	if (user == NULL || !entra_name_is_valid(user)) {
		*errnop = ENOENT;
		errno = saved;
		return NSS_STATUS_NOTFOUND;
	}
	db = db_acquire(&st, errnop);
	if (db == NULL) {
		errno = saved;
		return st;
	}
	if (entra_userdb_find_name(db, user, &u) != 0 || !u.admin) {
		db_release();
		*errnop = ENOENT;
		errno = saved;
		return NSS_STATUS_NOTFOUND;
	}
	entra_userdb_get_rules(db, &rules);
	admin_gid = rules.admin_gid;
	db_release();

	st = NSS_STATUS_SUCCESS;
	if (admin_gid == group)
		goto out;
	for (long int i = 0; i < *start; i++)
		if ((*groupsp)[i] == admin_gid)
			goto out;
	if (*start == *size) {
		long int newsize;
		gid_t *g;

		if (limit > 0 && *size >= limit)
			goto out; /* full: glibc's contract is to stop silently */
		newsize = *size > 0 ? 2 * *size : 8;
		if (limit > 0 && newsize > limit)
			newsize = limit;
		g = reallocarray(*groupsp, (size_t)newsize, sizeof(**groupsp));
		if (g == NULL) {
			*errnop = ENOMEM;
			st = NSS_STATUS_TRYAGAIN;
			goto out;
		}
		*groupsp = g;
		*size = newsize;
	}
	(*groupsp)[(*start)++] = admin_gid;
out:
	errno = saved;
	return st;
}
