/* userdb: the local database of Entra users (see userdb.h for the format
 * and the replacement protocol). Part of libentra_base: the NSS module
 * links it, so nothing here may pull in json-c or OpenSSL. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "userdb.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "fsutil.h"
#include "log.h"
#include "names.h"

#define UDB_MAGIC "ENTRAUDB"
#define UDB_VERSION 1u
#define UDB_FLAG_ADMIN 1u
#define UDB_MAX_SLOTS (1u << 30)
#define UDB_MAX_LIST 4096

struct udb_str {
	uint32_t off; /* into the string table */
	uint32_t len; /* bytes before the NUL */
};

struct udb_header {
	char magic[8];
	uint32_t version;
	uint32_t header_size;
	uint64_t file_size;
	uint64_t generation;
	uint32_t stale;       /* the one word written after publication */
	uint32_t flags;
	uint64_t checksum;
	uint32_t n_users, n_admins;
	uint32_t name_slots, uid_slots;
	uint64_t records_off, name_index_off, uid_index_off, admins_off;
	uint64_t lists_off, strings_off, strings_size;
	uint32_t n_domains, n_local_users;
	uint32_t mapping, uid_min, uid_max, admin_gid;
	struct udb_str admin_group, home_template, shell;
	uint8_t reserved[24]; /* pads the header to 192 bytes */
};

struct udb_record {
	uint32_t uid;
	uint32_t flags;
	struct udb_str name, object_id, tenant_id, gecos, home, shell;
	int64_t first_login, last_login;
};

_Static_assert(sizeof(struct udb_header) % 32 == 0, "header is hashed in 32-byte blocks");
_Static_assert(sizeof(struct udb_record) % 8 == 0, "records stay 8-aligned");

struct entra_userdb {
	const uint8_t *base;
	size_t size;
	const struct udb_header *hdr;
	const struct udb_record *records;
	const uint32_t *name_index;
	const uint32_t *uid_index;
	const uint32_t *admins;
	const struct udb_str *lists; /* domains, then local users */
	const char *strings;
};


/* ---- hashing ---------------------------------------------------------- */

static inline unsigned char lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

uint64_t entra_userdb_name_hash(const char *name, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < len; i++) {
		h ^= lower((unsigned char)name[i]);
		h *= 0x100000001b3ULL;
	}
	return h;
}

static inline uint32_t slot_of_hash(uint64_t h, uint32_t mask)
{
	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 32;
	return (uint32_t)h & mask;
}

static inline uint32_t slot_of_uid(uint32_t uid, uint32_t mask)
{
	return (uint32_t)(((uint64_t)uid * 0x9e3779b97f4a7c15ULL) >> 32) & mask;
}

/* File checksum: four independent multiply-rotate lanes over 8-byte
 * words, so that validating a large file at map time stays cheap. */
struct cksum {
	uint64_t v[4];
	uint64_t len;
};

#define CK_P1 0x9e3779b185ebca87ULL
#define CK_P2 0xc2b2ae3d27d4eb4fULL

static inline uint64_t rotl64(uint64_t x, int r)
{
	return (x << r) | (x >> (64 - r));
}

static inline uint64_t ck_round(uint64_t acc, uint64_t w)
{
	acc += w * CK_P2;
	acc = rotl64(acc, 31);
	return acc * CK_P1;
}

static void ck_init(struct cksum *ck)
{
	ck->v[0] = CK_P1 + CK_P2;
	ck->v[1] = CK_P2;
	ck->v[2] = 0;
	ck->v[3] = 0 - CK_P1;
	ck->len = 0;
}

/* Consumes whole 32-byte blocks; returns how many bytes it used. */
static size_t ck_blocks(struct cksum *ck, const uint8_t *p, size_t n)
{
	size_t done = 0;
	uint64_t w[4];

	while (n - done >= 32) {
		memcpy(w, p + done, 32);
		ck->v[0] = ck_round(ck->v[0], w[0]);
		ck->v[1] = ck_round(ck->v[1], w[1]);
		ck->v[2] = ck_round(ck->v[2], w[2]);
		ck->v[3] = ck_round(ck->v[3], w[3]);
		done += 32;
	}
	ck->len += done;
	return done;
}

static uint64_t ck_final(struct cksum *ck, const uint8_t *tail, size_t n)
{
	uint64_t h = rotl64(ck->v[0], 1) + rotl64(ck->v[1], 7) + rotl64(ck->v[2], 12) +
		     rotl64(ck->v[3], 18);

	h ^= ck->len + n;
	for (size_t i = 0; i < n; i++) {
		h ^= tail[i];
		h *= 0x100000001b3ULL;
	}
	h ^= h >> 33;
	h *= CK_P2;
	h ^= h >> 29;
	return h;
}

/* Checksum of a whole file image with the stale word and the checksum
 * field read as zero. */
static uint64_t file_checksum(const uint8_t *base, size_t size)
{
	struct udb_header h;
	struct cksum ck;
	size_t used;

	memcpy(&h, base, sizeof(h));
	h.stale = 0;
	h.checksum = 0;
	ck_init(&ck);
	ck_blocks(&ck, (const uint8_t *)&h, sizeof(h));
	used = ck_blocks(&ck, base + sizeof(h), size - sizeof(h));
	return ck_final(&ck, base + sizeof(h) + used, size - sizeof(h) - used);
}

/* ---- validation ------------------------------------------------------- */

static bool range_ok(uint64_t off, uint64_t count, uint64_t elem, size_t size)
{
	if (off % 8 != 0 || off < sizeof(struct udb_header) || off > size)
		return false;
	if (elem != 0 && count > (size - off) / elem)
		return false;
	return true;
}

static const char *str_at(const struct entra_userdb *db, struct udb_str s)
{
	return db->strings + s.off;
}

/* A string reference is usable: inside the table, NUL right after it, no
 * NUL or control character inside. */
static bool str_ok(const struct entra_userdb *db, struct udb_str s)
{
	uint64_t end = (uint64_t)s.off + s.len;
	const unsigned char *p;

	if (end >= db->hdr->strings_size)
		return false;
	p = (const unsigned char *)db->strings + s.off;
	if (p[s.len] != '\0')
		return false;
	for (uint32_t i = 0; i < s.len; i++)
		if (p[i] < 0x20 || p[i] == 0x7f)
			return false;
	return true;
}

static bool field_ok(const struct entra_userdb *db, struct udb_str s, bool absolute)
{
	const char *p;

	if (!str_ok(db, s))
		return false;
	p = str_at(db, s);
	if (memchr(p, ':', s.len) != NULL)
		return false;
	return !absolute || (s.len > 0 && p[0] == '/');
}

static bool name_ok(const struct entra_userdb *db, struct udb_str s)
{
	return str_ok(db, s) && entra_name_is_valid(str_at(db, s));
}

static bool guid_or_empty(const struct entra_userdb *db, struct udb_str s)
{
	return str_ok(db, s) && (s.len == 0 || entra_is_guid(str_at(db, s)));
}

static bool slots_ok(uint32_t slots, uint32_t used)
{
	return slots >= 8 && slots <= UDB_MAX_SLOTS && (slots & (slots - 1)) == 0 && used < slots;
}

static int validate(struct entra_userdb *db, char *reason, size_t rlen)
{
	const struct udb_header *h = db->hdr;
	size_t size = db->size;

	if (memcmp(h->magic, UDB_MAGIC, 8) != 0) {
		entra_set_reason(reason, rlen, "not a user database (bad magic)");
		return -EBADMSG;
	}
	if (h->version != UDB_VERSION || h->header_size != sizeof(*h)) {
		entra_set_reason(reason, rlen, "unsupported database version %u", h->version);
		return -EBADMSG;
	}
	if (h->file_size != size) {
		entra_set_reason(reason, rlen, "truncated or extended: header says %llu bytes, file has %zu",
			   (unsigned long long)h->file_size, size);
		return -EBADMSG;
	}
	if (h->n_users > ENTRA_USERDB_MAX_USERS || h->n_admins > h->n_users ||
	    h->n_domains > UDB_MAX_LIST || h->n_local_users > UDB_MAX_LIST ||
	    !slots_ok(h->name_slots, h->n_users) || !slots_ok(h->uid_slots, h->n_users)) {
		entra_set_reason(reason, rlen, "bad counts in header");
		return -EBADMSG;
	}
	if (!range_ok(h->records_off, h->n_users, sizeof(struct udb_record), size) ||
	    !range_ok(h->name_index_off, h->name_slots, 4, size) ||
	    !range_ok(h->uid_index_off, h->uid_slots, 4, size) ||
	    !range_ok(h->admins_off, h->n_admins, 4, size) ||
	    !range_ok(h->lists_off, (uint64_t)h->n_domains + h->n_local_users, sizeof(struct udb_str), size) ||
	    !range_ok(h->strings_off, h->strings_size, 1, size) || h->strings_size == 0 ||
	    h->strings_size > UINT32_MAX) {
		entra_set_reason(reason, rlen, "section outside the file");
		return -EBADMSG;
	}
	if (file_checksum(db->base, size) != h->checksum) {
		entra_set_reason(reason, rlen, "checksum mismatch (corrupt file)");
		return -EBADMSG;
	}

	db->records = (const struct udb_record *)(db->base + h->records_off);
	db->name_index = (const uint32_t *)(db->base + h->name_index_off);
	db->uid_index = (const uint32_t *)(db->base + h->uid_index_off);
	db->admins = (const uint32_t *)(db->base + h->admins_off);
	db->lists = (const struct udb_str *)(db->base + h->lists_off);
	db->strings = (const char *)(db->base + h->strings_off);

	if (db->strings[h->strings_size - 1] != '\0') {
		entra_set_reason(reason, rlen, "string table not terminated");
		return -EBADMSG;
	}
	if (h->mapping > ENTRA_USERDB_MAP_LOCALPART || h->uid_min == 0 || h->uid_min > h->uid_max ||
	    h->admin_gid == 0 || !name_ok(db, h->admin_group) ||
	    !field_ok(db, h->home_template, true) || !field_ok(db, h->shell, true)) {
		entra_set_reason(reason, rlen, "bad rules in header");
		return -EBADMSG;
	}
	for (uint32_t i = 0; i < h->n_domains + h->n_local_users; i++) {
		if (!name_ok(db, db->lists[i])) {
			entra_set_reason(reason, rlen, "bad domain or local user list");
			return -EBADMSG;
		}
	}
	for (uint32_t i = 0; i < h->n_users; i++) {
		const struct udb_record *r = &db->records[i];

		if (r->uid == 0 || r->uid == UINT32_MAX || r->uid == h->admin_gid ||
		    (r->flags & ~UDB_FLAG_ADMIN) != 0 || !name_ok(db, r->name) ||
		    !guid_or_empty(db, r->object_id) || !field_ok(db, r->tenant_id, false) ||
		    !field_ok(db, r->gecos, false) || !field_ok(db, r->home, true) ||
		    !field_ok(db, r->shell, true)) {
			entra_set_reason(reason, rlen, "bad user record %u", i);
			return -EBADMSG;
		}
	}
	for (uint32_t i = 0; i < h->name_slots; i++) {
		if (db->name_index[i] > h->n_users) {
			entra_set_reason(reason, rlen, "bad name index");
			return -EBADMSG;
		}
	}
	for (uint32_t i = 0; i < h->uid_slots; i++) {
		if (db->uid_index[i] > h->n_users) {
			entra_set_reason(reason, rlen, "bad uid index");
			return -EBADMSG;
		}
	}
	for (uint32_t i = 0; i < h->n_admins; i++) {
		if (db->admins[i] >= h->n_users || !(db->records[db->admins[i]].flags & UDB_FLAG_ADMIN)) {
			entra_set_reason(reason, rlen, "bad admin list");
			return -EBADMSG;
		}
	}
	return 0;
}

/* ---- opening ------------------------------------------------------------ */

int entra_userdb_open_fd(int fd, struct entra_userdb **out, char *reason, size_t rlen)
{
	struct entra_userdb *db;
	struct stat st;
	void *map;
	int rc;

	*out = NULL;
	if (fstat(fd, &st) != 0)
		return -errno;
	if (!S_ISREG(st.st_mode)) {
		entra_set_reason(reason, rlen, "not a regular file");
		return -EBADMSG;
	}
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		entra_set_reason(reason, rlen, "owned by uid %u, not root", (unsigned)st.st_uid);
		return -EPERM;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		entra_set_reason(reason, rlen, "writable by group or others (mode %04o)",
			   (unsigned)(st.st_mode & 07777));
		return -EACCES;
	}
	if ((uint64_t)st.st_size > ENTRA_USERDB_MAX_SIZE) {
		entra_set_reason(reason, rlen, "larger than %lu bytes", ENTRA_USERDB_MAX_SIZE);
		return -EFBIG;
	}
	if ((size_t)st.st_size < sizeof(struct udb_header)) {
		entra_set_reason(reason, rlen, "truncated (%lld bytes)", (long long)st.st_size);
		return -EBADMSG;
	}
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		return -errno;
	db = calloc(1, sizeof(*db));
	if (db == NULL) {
		munmap(map, (size_t)st.st_size);
		return -ENOMEM;
	}
	db->base = map;
	db->size = (size_t)st.st_size;
	db->hdr = map;
	rc = validate(db, reason, rlen);
	if (rc != 0) {
		entra_userdb_close(db);
		return rc;
	}
	*out = db;
	return 0;
}

static int open_db_file(const char *db_dir, int flags)
{
	char path[ENTRA_USERDB_PATH_MAX];
	int fd, n = snprintf(path, sizeof(path), "%s/%s", db_dir, ENTRA_USERDB_FILE);

	if (n < 0 || (size_t)n >= sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, flags | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	return fd;
}

int entra_userdb_open(const char *db_dir, struct entra_userdb **out, char *reason, size_t rlen)
{
	int fd, rc;

	*out = NULL;
	fd = open_db_file(db_dir, O_RDONLY);
	if (fd < 0) {
		entra_set_reason(reason, rlen, "cannot open %s/%s: %s", db_dir, ENTRA_USERDB_FILE, strerror(-fd));
		return fd;
	}
	rc = entra_userdb_open_fd(fd, out, reason, rlen);
	close(fd);
	return rc;
}

void entra_userdb_close(struct entra_userdb *db)
{
	if (db == NULL)
		return;
	munmap((void *)db->base, db->size);
	free(db);
}

bool entra_userdb_is_stale(const struct entra_userdb *db)
{
	return __atomic_load_n(&db->hdr->stale, __ATOMIC_ACQUIRE) != 0;
}

void entra_userdb_get_info(const struct entra_userdb *db, struct entra_userdb_info *info)
{
	info->generation = db->hdr->generation;
	info->file_size = db->size;
	info->users = db->hdr->n_users;
	info->admins = db->hdr->n_admins;
	info->stale = entra_userdb_is_stale(db);
}

void entra_userdb_get_rules(const struct entra_userdb *db, struct entra_userdb_rules *rules)
{
	const struct udb_header *h = db->hdr;

	memset(rules, 0, sizeof(*rules));
	rules->mapping = (enum entra_userdb_mapping)h->mapping;
	rules->n_allowed_domains = h->n_domains;
	rules->n_local_users = h->n_local_users;
	rules->uid_min = h->uid_min;
	rules->uid_max = h->uid_max;
	rules->admin_group = str_at(db, h->admin_group);
	rules->admin_gid = h->admin_gid;
	rules->home_template = str_at(db, h->home_template);
	rules->shell = str_at(db, h->shell);
}

/* ---- lookups ------------------------------------------------------------ */

static void fill_user(const struct entra_userdb *db, const struct udb_record *r, struct entra_userdb_user *out)
{
	out->name = str_at(db, r->name);
	out->object_id = str_at(db, r->object_id);
	out->tenant_id = str_at(db, r->tenant_id);
	out->gecos = str_at(db, r->gecos);
	out->home = str_at(db, r->home);
	out->shell = str_at(db, r->shell);
	out->uid = r->uid;
	out->gid = r->uid;
	out->admin = (r->flags & UDB_FLAG_ADMIN) != 0;
	out->synthetic = false;
	out->first_login = r->first_login;
	out->last_login = r->last_login;
}

static bool eq_nocase(const char *a, const char *b, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
			return false;
	return true;
}

/* Record number of name, or -1. name must already be valid. */
static long find_name_index(const struct entra_userdb *db, const char *name, size_t len)
{
	uint32_t mask = db->hdr->name_slots - 1;
	uint32_t i = slot_of_hash(entra_userdb_name_hash(name, len), mask);

	for (uint32_t n = 0; n <= mask; n++) {
		uint32_t v = db->name_index[i];
		const struct udb_record *r;

		if (v == 0)
			return -1;
		r = &db->records[v - 1];
		if (r->name.len == len && eq_nocase(str_at(db, r->name), name, len))
			return (long)(v - 1);
		i = (i + 1) & mask;
	}
	return -1;
}

static long find_uid_index(const struct entra_userdb *db, uint32_t uid)
{
	uint32_t mask = db->hdr->uid_slots - 1;
	uint32_t i = slot_of_uid(uid, mask);

	for (uint32_t n = 0; n <= mask; n++) {
		uint32_t v = db->uid_index[i];

		if (v == 0)
			return -1;
		if (db->records[v - 1].uid == uid)
			return (long)(v - 1);
		i = (i + 1) & mask;
	}
	return -1;
}

int entra_userdb_find_name(const struct entra_userdb *db, const char *name, struct entra_userdb_user *out)
{
	long i;

	if (!entra_name_is_valid(name))
		return -ENOENT;
	i = find_name_index(db, name, strlen(name));
	if (i < 0)
		return -ENOENT;
	fill_user(db, &db->records[i], out);
	return 0;
}

int entra_userdb_find_uid(const struct entra_userdb *db, uint32_t uid, struct entra_userdb_user *out)
{
	long i = find_uid_index(db, uid);

	if (i < 0)
		return -ENOENT;
	fill_user(db, &db->records[i], out);
	return 0;
}

int entra_userdb_get_index(const struct entra_userdb *db, size_t i, struct entra_userdb_user *out)
{
	if (i >= db->hdr->n_users)
		return -ENOENT;
	fill_user(db, &db->records[i], out);
	return 0;
}

static bool list_has(const struct entra_userdb *db, uint32_t first, uint32_t count, const char *s, size_t len)
{
	for (uint32_t i = first; i < first + count; i++) {
		struct udb_str e = db->lists[i];

		if (e.len == len && eq_nocase(str_at(db, e), s, len))
			return true;
	}
	return false;
}

bool entra_userdb_name_matches(const struct entra_userdb *db, const char *name)
{
	const struct udb_header *h = db->hdr;
	const char *at;
	size_t len;

	if (!entra_name_is_valid(name))
		return false;
	len = strlen(name);
	if (h->admin_group.len == len && eq_nocase(str_at(db, h->admin_group), name, len))
		return false;
	if (list_has(db, h->n_domains, h->n_local_users, name, len))
		return false;
	at = strchr(name, '@');
	switch (h->mapping) {
	case ENTRA_USERDB_MAP_UPN:
		if (at == NULL || at == name || strchr(at + 1, '@') != NULL || at[1] == '\0')
			return false;
		return list_has(db, 0, h->n_domains, at + 1, strlen(at + 1));
	case ENTRA_USERDB_MAP_LOCALPART:
		return at == NULL && h->n_domains > 0;
	default:
		return false;
	}
}

int entra_userdb_pick_uid(const char *name, uint32_t uid_min, uint32_t uid_max, uint32_t admin_gid,
			  bool (*taken)(uint32_t uid, void *data), void *data, uint32_t *uid)
{
	uint64_t range = (uint64_t)uid_max - uid_min + 1;
	uint64_t off = entra_userdb_name_hash(name, strlen(name)) % range;

	for (uint64_t n = 0; n < range; n++) {
		uint32_t cand = (uint32_t)(uid_min + (off + n) % range);

		if (cand == admin_gid || cand == 0 || cand == UINT32_MAX)
			continue;
		if (taken != NULL && taken(cand, data))
			continue;
		*uid = cand;
		return 0;
	}
	return -ENOSPC;
}

static bool db_uid_taken(uint32_t uid, void *data)
{
	return find_uid_index(data, uid) >= 0;
}

/* Expand the home template: %u lower-cased name (stable whatever case the
 * name is typed in), %U uid, %% a percent sign. */
static int expand_home(const char *tmpl, const char *name, uint32_t uid, char *buf, size_t len)
{
	size_t o = 0;

	for (const char *p = tmpl; *p != '\0'; p++) {
		char num[16];
		const char *add = NULL;
		size_t addlen;
		bool lc = false;

		if (*p == '%' && p[1] == 'u') {
			add = name;
			lc = true;
			p++;
		} else if (*p == '%' && p[1] == 'U') {
			snprintf(num, sizeof(num), "%u", uid);
			add = num;
			p++;
		} else if (*p == '%' && p[1] == '%') {
			add = "%";
			p++;
		} else if (*p == '%') {
			return -EINVAL;
		} else {
			if (o + 1 >= len)
				return -ERANGE;
			buf[o++] = *p;
			continue;
		}
		addlen = strlen(add);
		if (o + addlen >= len)
			return -ERANGE;
		for (size_t i = 0; i < addlen; i++)
			buf[o + i] = (char)(lc ? lower((unsigned char)add[i]) : (unsigned char)add[i]);
		o += addlen;
	}
	if (o >= len)
		return -ERANGE;
	buf[o] = '\0';
	return 0;
}

int entra_userdb_resolve_name(const struct entra_userdb *db, const char *name,
			      struct entra_userdb_user *out, char *homebuf, size_t homelen)
{
	uint32_t uid;
	int rc;

	if (entra_userdb_find_name(db, name, out) == 0)
		return 0;
	if (!entra_userdb_name_matches(db, name))
		return -ENOENT;
	if (entra_userdb_pick_uid(name, db->hdr->uid_min, db->hdr->uid_max, db->hdr->admin_gid,
				  db_uid_taken, (void *)db, &uid) != 0)
		return -ENOENT;
	rc = expand_home(str_at(db, db->hdr->home_template), name, uid, homebuf, homelen);
	if (rc != 0)
		return rc == -ERANGE ? -ERANGE : -ENOENT;
	memset(out, 0, sizeof(*out));
	out->name = name;
	out->object_id = "";
	out->tenant_id = "";
	out->gecos = "";
	out->home = homebuf;
	out->shell = str_at(db, db->hdr->shell);
	out->uid = uid;
	out->gid = uid;
	out->synthetic = true;
	return 0;
}

/* ---- groups ------------------------------------------------------------- */

static void fill_admin_group(const struct entra_userdb *db, struct entra_userdb_group *out)
{
	out->name = str_at(db, db->hdr->admin_group);
	out->gid = db->hdr->admin_gid;
	out->admin_group = true;
	out->n_members = db->hdr->n_admins;
}

static void fill_private_group(const char *name, uint32_t gid, struct entra_userdb_group *out)
{
	out->name = name;
	out->gid = gid;
	out->admin_group = false;
	out->n_members = 0;
}

int entra_userdb_group_by_name(const struct entra_userdb *db, const char *name, struct entra_userdb_group *out)
{
	struct entra_userdb_user u;
	char home[ENTRA_USERDB_PATH_MAX];

	if (!entra_name_is_valid(name))
		return -ENOENT;
	if (db->hdr->admin_group.len == strlen(name) &&
	    eq_nocase(str_at(db, db->hdr->admin_group), name, db->hdr->admin_group.len)) {
		fill_admin_group(db, out);
		return 0;
	}
	if (entra_userdb_resolve_name(db, name, &u, home, sizeof(home)) != 0)
		return -ENOENT;
	fill_private_group(u.name, u.gid, out);
	return 0;
}

int entra_userdb_group_by_gid(const struct entra_userdb *db, uint32_t gid, struct entra_userdb_group *out)
{
	long i;

	if (gid == db->hdr->admin_gid) {
		fill_admin_group(db, out);
		return 0;
	}
	i = find_uid_index(db, gid);
	if (i < 0)
		return -ENOENT;
	fill_private_group(str_at(db, db->records[i].name), db->records[i].uid, out);
	return 0;
}

const char *entra_userdb_admin_member(const struct entra_userdb *db, uint32_t i)
{
	if (i >= db->hdr->n_admins)
		return NULL;
	return str_at(db, db->records[db->admins[i]].name);
}

int entra_userdb_group_by_index(const struct entra_userdb *db, size_t i, struct entra_userdb_group *out)
{
	if (i < db->hdr->n_users) {
		fill_private_group(str_at(db, db->records[i].name), db->records[i].uid, out);
		return 0;
	}
	if (i == db->hdr->n_users) {
		fill_admin_group(db, out);
		return 0;
	}
	return -ENOENT;
}

/* ---- cached reader ---------------------------------------------------- */

static int64_t coarse_seconds(void)
{
	struct timespec ts;

	/* CLOCK_MONOTONIC_COARSE is served by the vDSO: no syscall. */
	if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) != 0)
		return 0;
	return (int64_t)ts.tv_sec;
}

int entra_userdb_cache_set_dir(struct entra_userdb_cache *cache, const char *db_dir)
{
	size_t len = strlen(db_dir);

	if (len + 1 > sizeof(cache->dir) - sizeof(ENTRA_USERDB_FILE) - 1)
		return -ENAMETOOLONG;
	memcpy(cache->dir, db_dir, len + 1);
	return 0;
}

static bool cache_fresh(struct entra_userdb_cache *cache, int64_t now)
{
	return cache->db != NULL && !entra_userdb_is_stale(cache->db) &&
	       now < __atomic_load_n(&cache->next_check, __ATOMIC_RELAXED);
}

static void cache_swap(struct entra_userdb_cache *cache, struct entra_userdb *db)
{
	struct entra_userdb *old;

	pthread_rwlock_wrlock(&cache->lock);
	old = cache->db;
	cache->db = db;
	pthread_rwlock_unlock(&cache->lock);
	entra_userdb_close(old);
}

/* Called without the read lock; serialised by remap_lock. */
static void cache_refresh(struct entra_userdb_cache *cache)
{
	struct entra_userdb *db = NULL;
	int64_t now;
	struct stat st;
	int fd, rc;

	pthread_mutex_lock(&cache->remap_lock);
	now = coarse_seconds();
	if (cache_fresh(cache, now))
		goto out;
	if (cache->db == NULL && cache->last_error != 0 && now < cache->next_check)
		goto out; /* a missing or bad file is retried once a while */
	if (cache->db != NULL && !entra_userdb_is_stale(cache->db)) {
		/* Periodic check for a file replaced without marking. */
		char path[ENTRA_USERDB_PATH_MAX];

		int n = snprintf(path, sizeof(path), "%s/%s", cache->dir, ENTRA_USERDB_FILE);

		if (n > 0 && (size_t)n < sizeof(path) && stat(path, &st) == 0 && st.st_dev == cache->dev && st.st_ino == cache->ino) {
			__atomic_store_n(&cache->next_check, now + ENTRA_USERDB_RECHECK_SECONDS,
					 __ATOMIC_RELAXED);
			goto out;
		}
	}
	fd = open_db_file(cache->dir, O_RDONLY);
	if (fd < 0) {
		rc = fd;
	} else {
		rc = fstat(fd, &st) == 0 ? entra_userdb_open_fd(fd, &db, NULL, 0) : -errno;
		close(fd);
	}
	if (rc == 0) {
		cache->dev = st.st_dev;
		cache->ino = st.st_ino;
	}
	/* On failure the old mapping goes too: what the file says now counts. */
	cache_swap(cache, db);
	cache->last_error = rc;
	__atomic_store_n(&cache->next_check, now + (rc == 0 ? ENTRA_USERDB_RECHECK_SECONDS : 1),
			 __ATOMIC_RELAXED);
out:
	pthread_mutex_unlock(&cache->remap_lock);
}

const struct entra_userdb *entra_userdb_cache_acquire(struct entra_userdb_cache *cache, int *error)
{
	if (cache->dir[0] == '\0') {
		*error = -EINVAL;
		return NULL;
	}
	pthread_rwlock_rdlock(&cache->lock);
	if (cache_fresh(cache, coarse_seconds()))
		return cache->db;
	pthread_rwlock_unlock(&cache->lock);

	cache_refresh(cache);

	pthread_rwlock_rdlock(&cache->lock);
	if (cache->db != NULL)
		return cache->db;
	pthread_rwlock_unlock(&cache->lock);
	*error = cache->last_error != 0 ? cache->last_error : -ENOENT;
	return NULL;
}

void entra_userdb_cache_release(struct entra_userdb_cache *cache)
{
	pthread_rwlock_unlock(&cache->lock);
}

void entra_userdb_cache_reset(struct entra_userdb_cache *cache)
{
	pthread_mutex_lock(&cache->remap_lock);
	cache_swap(cache, NULL);
	cache->last_error = 0;
	cache->next_check = 0;
	pthread_mutex_unlock(&cache->remap_lock);
}

/* ---- rules ---------------------------------------------------------------- */

static bool template_ok(const char *t)
{
	if (t == NULL || t[0] != '/' || !entra_value_is_safe(t, 512) || strchr(t, ':') != NULL)
		return false;
	for (const char *p = t; *p != '\0'; p++) {
		if (*p == '%') {
			if (p[1] != 'u' && p[1] != 'U' && p[1] != '%')
				return false;
			p++;
		}
	}
	return true;
}

int entra_userdb_rules_check(const struct entra_userdb_rules *r, char *reason, size_t rlen)
{
	if (r->mapping > ENTRA_USERDB_MAP_LOCALPART) {
		entra_set_reason(reason, rlen, "unknown user mapping");
		return -EINVAL;
	}
	if (r->uid_min < 1000 || r->uid_min > r->uid_max || r->uid_max >= UINT32_MAX - 1) {
		entra_set_reason(reason, rlen, "uid range %u-%u: must lie within 1000-4294967293",
			   r->uid_min, r->uid_max);
		return -EINVAL;
	}
	if (r->admin_gid == 0 || (r->admin_gid >= r->uid_min && r->admin_gid <= r->uid_max)) {
		entra_set_reason(reason, rlen, "admin_gid %u must be non-zero and outside the uid range",
			   r->admin_gid);
		return -EINVAL;
	}
	if (!entra_name_is_valid(r->admin_group)) {
		entra_set_reason(reason, rlen, "admin group name is not valid");
		return -EINVAL;
	}
	if (!template_ok(r->home_template)) {
		entra_set_reason(reason, rlen, "home template must be an absolute path using only %%u, %%U, %%%%");
		return -EINVAL;
	}
	if (r->shell == NULL || r->shell[0] != '/' || !entra_value_is_safe(r->shell, 256) ||
	    strchr(r->shell, ':') != NULL) {
		entra_set_reason(reason, rlen, "shell must be an absolute path");
		return -EINVAL;
	}
	if (r->n_allowed_domains > UDB_MAX_LIST || r->n_local_users > UDB_MAX_LIST) {
		entra_set_reason(reason, rlen, "too many domains or local users");
		return -EINVAL;
	}
	for (size_t i = 0; i < r->n_allowed_domains; i++) {
		if (!entra_name_is_valid(r->allowed_domains[i]) || strchr(r->allowed_domains[i], '@')) {
			entra_set_reason(reason, rlen, "allowed domain '%s' is not valid", r->allowed_domains[i]);
			return -EINVAL;
		}
	}
	for (size_t i = 0; i < r->n_local_users; i++) {
		if (!entra_name_is_valid(r->local_users[i])) {
			entra_set_reason(reason, rlen, "local user '%s' is not valid", r->local_users[i]);
			return -EINVAL;
		}
	}
	return 0;
}

/* ---- writer: in-memory set -------------------------------------------- */

struct wuser {
	char *name, *oid, *tenant, *gecos, *home, *shell;
	uint32_t uid;
	bool admin;
	int64_t first, last;
};

struct wset {
	struct wuser *v;
	size_t n, cap;
	/* hash tables of index+1, rebuilt on growth and after removal */
	uint32_t *by_name, *by_uid;
	uint32_t slots;
	uint64_t generation;
};

static void wuser_free(struct wuser *u)
{
	free(u->name);
	free(u->oid);
	free(u->tenant);
	free(u->gecos);
	free(u->home);
	free(u->shell);
	memset(u, 0, sizeof(*u));
}

static void wset_free(struct wset *s)
{
	for (size_t i = 0; i < s->n; i++)
		wuser_free(&s->v[i]);
	free(s->v);
	free(s->by_name);
	free(s->by_uid);
	memset(s, 0, sizeof(*s));
}

static uint32_t table_slots(size_t n)
{
	uint32_t slots = 8;

	while (slots < 2 * n + 2)
		slots <<= 1;
	return slots;
}

static void wset_index_one(struct wset *s, size_t i)
{
	uint32_t mask = s->slots - 1;
	uint32_t k = slot_of_hash(entra_userdb_name_hash(s->v[i].name, strlen(s->v[i].name)), mask);

	while (s->by_name[k] != 0)
		k = (k + 1) & mask;
	s->by_name[k] = (uint32_t)i + 1;
	k = slot_of_uid(s->v[i].uid, mask);
	while (s->by_uid[k] != 0)
		k = (k + 1) & mask;
	s->by_uid[k] = (uint32_t)i + 1;
}

static int wset_reindex(struct wset *s, size_t want)
{
	uint32_t slots = table_slots(want);
	uint32_t *a = calloc(slots, sizeof(*a)), *b = calloc(slots, sizeof(*b));

	if (a == NULL || b == NULL) {
		free(a);
		free(b);
		return -ENOMEM;
	}
	free(s->by_name);
	free(s->by_uid);
	s->by_name = a;
	s->by_uid = b;
	s->slots = slots;
	for (size_t i = 0; i < s->n; i++)
		wset_index_one(s, i);
	return 0;
}

static long wset_find_name(const struct wset *s, const char *name)
{
	size_t len = strlen(name);
	uint32_t mask, k;

	if (s->slots == 0)
		return -1;
	mask = s->slots - 1;
	k = slot_of_hash(entra_userdb_name_hash(name, len), mask);
	while (s->by_name[k] != 0) {
		const struct wuser *u = &s->v[s->by_name[k] - 1];

		if (strlen(u->name) == len && eq_nocase(u->name, name, len))
			return (long)s->by_name[k] - 1;
		k = (k + 1) & mask;
	}
	return -1;
}

static long wset_find_uid(const struct wset *s, uint32_t uid)
{
	uint32_t mask, k;

	if (s->slots == 0)
		return -1;
	mask = s->slots - 1;
	k = slot_of_uid(uid, mask);
	while (s->by_uid[k] != 0) {
		if (s->v[s->by_uid[k] - 1].uid == uid)
			return (long)s->by_uid[k] - 1;
		k = (k + 1) & mask;
	}
	return -1;
}

static long wset_find_oid(const struct wset *s, const char *oid)
{
	/* Object ids are looked up once per login: a scan is fine. */
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i].oid[0] != '\0' && entra_streq_nocase(s->v[i].oid, oid))
			return (long)i;
	return -1;
}

static int wset_append(struct wset *s, struct wuser *u)
{
	if (s->n >= ENTRA_USERDB_MAX_USERS)
		return -ENOSPC;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		struct wuser *v = reallocarray(s->v, cap, sizeof(*v));

		if (v == NULL)
			return -ENOMEM;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = *u;
	memset(u, 0, sizeof(*u));
	if (2 * s->n + 2 > s->slots)
		return wset_reindex(s, s->n * 2);
	wset_index_one(s, s->n - 1);
	return 0;
}

static int wset_load(struct wset *s, const struct entra_userdb *db)
{
	struct entra_userdb_user u;
	int rc;

	s->generation = db->hdr->generation;
	for (size_t i = 0; i < db->hdr->n_users; i++) {
		struct wuser w = { 0 };

		entra_userdb_get_index(db, i, &u);
		w.name = strdup(u.name);
		w.oid = strdup(u.object_id);
		w.tenant = strdup(u.tenant_id);
		w.gecos = strdup(u.gecos);
		w.home = strdup(u.home);
		w.shell = strdup(u.shell);
		w.uid = u.uid;
		w.admin = u.admin;
		w.first = u.first_login;
		w.last = u.last_login;
		if (!w.name || !w.oid || !w.tenant || !w.gecos || !w.home || !w.shell) {
			wuser_free(&w);
			return -ENOMEM;
		}
		rc = wset_append(s, &w);
		if (rc != 0) {
			wuser_free(&w);
			return rc;
		}
	}
	return 0;
}

/* ---- writer: serialisation ------------------------------------------- */

struct interner {
	struct entra_buf buf;      /* the string table */
	uint32_t *slots;           /* offset+1 of interned strings */
	uint32_t nslots, used;
};

static int intern_grow(struct interner *in)
{
	uint32_t nslots = in->nslots ? in->nslots * 2 : 1024;
	uint32_t *slots = calloc(nslots, sizeof(*slots));

	if (slots == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < in->nslots; i++) {
		uint32_t v = in->slots[i], k;
		const char *s;

		if (v == 0)
			continue;
		s = in->buf.data + v - 1;
		k = slot_of_hash(entra_userdb_name_hash(s, strlen(s)) ^ strlen(s), nslots - 1);
		while (slots[k] != 0)
			k = (k + 1) & (nslots - 1);
		slots[k] = v;
	}
	free(in->slots);
	in->slots = slots;
	in->nslots = nslots;
	return 0;
}

/* Exact (case-sensitive) interning; the hash is case-blind, which only
 * costs a probe. */
static int intern(struct interner *in, const char *s, struct udb_str *out)
{
	size_t len = strlen(s);
	uint32_t k;
	int rc;

	if (len > UINT32_MAX / 2)
		return -E2BIG;
	if (2 * (in->used + 1) > in->nslots) {
		rc = intern_grow(in);
		if (rc != 0)
			return rc;
	}
	k = slot_of_hash(entra_userdb_name_hash(s, len) ^ len, in->nslots - 1);
	while (in->slots[k] != 0) {
		const char *t = in->buf.data + in->slots[k] - 1;

		if (strcmp(t, s) == 0) {
			out->off = in->slots[k] - 1;
			out->len = (uint32_t)len;
			return 0;
		}
		k = (k + 1) & (in->nslots - 1);
	}
	if (in->buf.len + len + 1 >= UINT32_MAX)
		return -E2BIG;
	out->off = (uint32_t)in->buf.len;
	out->len = (uint32_t)len;
	rc = entra_buf_append(&in->buf, s, len + 1);
	if (rc != 0)
		return rc;
	in->slots[k] = out->off + 1;
	in->used++;
	return 0;
}

static size_t align8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

static int serialise(const struct wset *s, const struct entra_userdb_rules *rules, uint64_t generation,
		     uint8_t **out, size_t *outlen)
{
	struct interner in = { 0 };
	struct udb_header h = { 0 };
	struct udb_record *recs = NULL;
	struct udb_str *lists = NULL;
	uint32_t *admins = NULL, *name_index = NULL, *uid_index = NULL;
	uint32_t n_admins = 0, slots = table_slots(s->n);
	size_t nlists = rules->n_allowed_domains + rules->n_local_users, off, total;
	uint8_t *img = NULL;
	int rc = -ENOMEM;

	entra_buf_init(&in.buf, ENTRA_USERDB_MAX_SIZE);
	recs = calloc(s->n ? s->n : 1, sizeof(*recs));
	admins = calloc(s->n ? s->n : 1, sizeof(*admins));
	lists = calloc(nlists ? nlists : 1, sizeof(*lists));
	name_index = calloc(slots, sizeof(*name_index));
	uid_index = calloc(slots, sizeof(*uid_index));
	if (!recs || !admins || !lists || !name_index || !uid_index)
		goto done;
	/* Offset 0 is the empty string. */
	rc = intern(&in, "", &h.home_template);
	if (rc != 0)
		goto done;
	for (size_t i = 0; i < s->n; i++) {
		const struct wuser *u = &s->v[i];
		struct udb_record *r = &recs[i];
		uint32_t k;

		r->uid = u->uid;
		r->flags = u->admin ? UDB_FLAG_ADMIN : 0;
		r->first_login = u->first;
		r->last_login = u->last;
		if ((rc = intern(&in, u->name, &r->name)) != 0 || (rc = intern(&in, u->oid, &r->object_id)) != 0 ||
		    (rc = intern(&in, u->tenant, &r->tenant_id)) != 0 ||
		    (rc = intern(&in, u->gecos, &r->gecos)) != 0 || (rc = intern(&in, u->home, &r->home)) != 0 ||
		    (rc = intern(&in, u->shell, &r->shell)) != 0)
			goto done;
		if (u->admin)
			admins[n_admins++] = (uint32_t)i;
		k = slot_of_hash(entra_userdb_name_hash(u->name, strlen(u->name)), slots - 1);
		while (name_index[k] != 0)
			k = (k + 1) & (slots - 1);
		name_index[k] = (uint32_t)i + 1;
		k = slot_of_uid(u->uid, slots - 1);
		while (uid_index[k] != 0)
			k = (k + 1) & (slots - 1);
		uid_index[k] = (uint32_t)i + 1;
	}
	for (size_t i = 0; i < rules->n_allowed_domains; i++)
		if ((rc = intern(&in, rules->allowed_domains[i], &lists[i])) != 0)
			goto done;
	for (size_t i = 0; i < rules->n_local_users; i++)
		if ((rc = intern(&in, rules->local_users[i], &lists[rules->n_allowed_domains + i])) != 0)
			goto done;
	if ((rc = intern(&in, rules->admin_group, &h.admin_group)) != 0 ||
	    (rc = intern(&in, rules->home_template, &h.home_template)) != 0 ||
	    (rc = intern(&in, rules->shell, &h.shell)) != 0)
		goto done;

	memcpy(h.magic, UDB_MAGIC, 8);
	h.version = UDB_VERSION;
	h.header_size = sizeof(h);
	h.generation = generation;
	h.n_users = (uint32_t)s->n;
	h.n_admins = n_admins;
	h.name_slots = slots;
	h.uid_slots = slots;
	h.n_domains = (uint32_t)rules->n_allowed_domains;
	h.n_local_users = (uint32_t)rules->n_local_users;
	h.mapping = (uint32_t)rules->mapping;
	h.uid_min = rules->uid_min;
	h.uid_max = rules->uid_max;
	h.admin_gid = rules->admin_gid;

	off = sizeof(h);
	h.records_off = off;
	off = align8(off + s->n * sizeof(*recs));
	h.name_index_off = off;
	off = align8(off + (size_t)slots * 4);
	h.uid_index_off = off;
	off = align8(off + (size_t)slots * 4);
	h.admins_off = off;
	off = align8(off + (size_t)n_admins * 4);
	h.lists_off = off;
	off = align8(off + nlists * sizeof(*lists));
	h.strings_off = off;
	h.strings_size = in.buf.len;
	total = align8(off + in.buf.len);
	if (total > ENTRA_USERDB_MAX_SIZE) {
		rc = -EFBIG;
		goto done;
	}
	h.file_size = total;

	img = calloc(1, total);
	if (img == NULL) {
		rc = -ENOMEM;
		goto done;
	}
	memcpy(img + h.records_off, recs, s->n * sizeof(*recs));
	memcpy(img + h.name_index_off, name_index, (size_t)slots * 4);
	memcpy(img + h.uid_index_off, uid_index, (size_t)slots * 4);
	memcpy(img + h.admins_off, admins, (size_t)n_admins * 4);
	memcpy(img + h.lists_off, lists, nlists * sizeof(*lists));
	memcpy(img + h.strings_off, in.buf.data, in.buf.len);
	memcpy(img, &h, sizeof(h));
	h.checksum = file_checksum(img, total);
	memcpy(img, &h, sizeof(h));
	*out = img;
	*outlen = total;
	img = NULL;
	rc = 0;
done:
	free(img);
	free(recs);
	free(admins);
	free(lists);
	free(name_index);
	free(uid_index);
	free(in.slots);
	entra_buf_free(&in.buf);
	return rc;
}

/* ---- writer: transaction ------------------------------------------------- */

struct txn {
	int dirfd;
	int lockfd;
	int oldfd; /* the published file, to mark stale after the rename */
	struct wset set;
};

static void txn_end(struct txn *t)
{
	if (t->oldfd >= 0)
		close(t->oldfd);
	if (t->lockfd >= 0)
		close(t->lockfd); /* releases the flock */
	if (t->dirfd >= 0)
		close(t->dirfd);
	wset_free(&t->set);
}

static int txn_begin(const struct entra_userdb_writer *w, struct txn *t, char *reason, size_t rlen)
{
	struct entra_userdb *db = NULL;
	int rc;

	memset(t, 0, sizeof(*t));
	t->dirfd = t->lockfd = t->oldfd = -1;
	rc = entra_userdb_rules_check(w->rules, reason, rlen);
	if (rc != 0)
		return rc;
	t->dirfd = entra_dir_open_or_create(w->db_dir, 0755, geteuid(), getegid());
	if (t->dirfd < 0) {
		rc = t->dirfd;
		entra_set_reason(reason, rlen, "database directory %s: %s", w->db_dir, strerror(-rc));
		return rc;
	}
	t->lockfd = openat(t->dirfd, ENTRA_USERDB_LOCK, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY,
			   0600);
	if (t->lockfd < 0) {
		rc = -errno;
		entra_set_reason(reason, rlen, "lock file: %s", strerror(-rc));
		return rc;
	}
	while (flock(t->lockfd, LOCK_EX) != 0) {
		if (errno != EINTR) {
			rc = -errno;
			entra_set_reason(reason, rlen, "lock: %s", strerror(-rc));
			return rc;
		}
	}
	t->oldfd = openat(t->dirfd, ENTRA_USERDB_FILE, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	if (t->oldfd < 0) {
		rc = -errno;
		if (rc == -ENOENT)
			return 0; /* a new database */
		entra_set_reason(reason, rlen, "cannot open the database: %s", strerror(-rc));
		return rc;
	}
	rc = entra_userdb_open_fd(t->oldfd, &db, reason, rlen);
	if (rc == 0 && db == NULL)
		rc = -EIO; /* 0 from a -errno that was 0: still no database */
	if (rc != 0)
		return rc; /* never overwrite a file we cannot read: users would vanish */
	rc = wset_load(&t->set, db);
	entra_userdb_close(db);
	return rc;
}

static int txn_commit(const struct entra_userdb_writer *w, struct txn *t, char *reason, size_t rlen)
{
	static const uint32_t one = 1;
	uint8_t *img = NULL;
	size_t len = 0;
	int rc;

	rc = serialise(&t->set, w->rules, t->set.generation + 1, &img, &len);
	if (rc != 0) {
		entra_set_reason(reason, rlen, "cannot build the database: %s", strerror(-rc));
		return rc;
	}
	rc = entra_write_file_atomic(t->dirfd, ENTRA_USERDB_FILE, img, len, 0644, geteuid(), getegid());
	free(img);
	if (rc != 0) {
		entra_set_reason(reason, rlen, "cannot write the database: %s", strerror(-rc));
		return rc;
	}
	/* The new file is in place: tell readers of the old one. */
	if (t->oldfd >= 0 &&
	    pwrite(t->oldfd, &one, sizeof(one), offsetof(struct udb_header, stale)) != sizeof(one))
		entra_log(w->log, LOG_WARNING, "userdb: could not mark the old database stale: %s",
			  strerror(errno));
	return 0;
}

/* ---- writer: system checks ------------------------------------------- */

static bool sys_uid_taken(uint32_t id, void *data)
{
	struct passwd pw, *pwr = NULL;
	struct group gr, *grr = NULL;
	char buf[16384];
	int rc;

	(void)data;
	rc = getpwuid_r((uid_t)id, &pw, buf, sizeof(buf), &pwr);
	if (pwr != NULL || (rc != 0 && rc != ENOENT && rc != ESRCH))
		return true; /* taken, or cannot tell: do not use it */
	rc = getgrgid_r((gid_t)id, &gr, buf, sizeof(buf), &grr);
	return grr != NULL || (rc != 0 && rc != ENOENT && rc != ESRCH);
}

static bool sys_name_taken(const char *name, uint32_t uid_min, uint32_t uid_max, void *data)
{
	struct passwd pw, *pwr = NULL;
	struct group gr, *grr = NULL;
	char buf[16384];

	(void)data;
	/* Our own NSS module answers first-login names with a uid inside the
	 * range; anything outside it is another account. */
	if (getpwnam_r(name, &pw, buf, sizeof(buf), &pwr) == 0 && pwr != NULL &&
	    (pwr->pw_uid < uid_min || pwr->pw_uid > uid_max))
		return true;
	if (getgrnam_r(name, &gr, buf, sizeof(buf), &grr) == 0 && grr != NULL &&
	    (grr->gr_gid < uid_min || grr->gr_gid > uid_max))
		return true;
	return false;
}

struct uid_probe {
	const struct wset *set;
	const struct entra_userdb_system *sys;
};

static bool writer_uid_taken(uint32_t uid, void *data)
{
	const struct uid_probe *p = data;

	if (wset_find_uid(p->set, uid) >= 0)
		return true;
	return p->sys->uid_taken(uid, p->sys->data);
}

/* ---- writer: operations ---------------------------------------------------- */

static char *sanitise_gecos(const char *s)
{
	size_t len = s ? strnlen(s, ENTRA_USERDB_GECOS_MAX) : 0;
	char *g = malloc(len + 1);

	if (g == NULL)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		g[i] = (char)((c < 0x20 || c == 0x7f || c == ':') ? ' ' : c);
	}
	g[len] = '\0';
	return g;
}

static bool list_contains(const char *const *list, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (entra_streq_nocase(list[i], s))
			return true;
	return false;
}

static int entry_from(const struct wuser *u, struct entra_userdb_entry *out)
{
	memset(out, 0, sizeof(*out));
	out->name = strdup(u->name);
	out->object_id = strdup(u->oid);
	out->tenant_id = strdup(u->tenant);
	out->gecos = strdup(u->gecos);
	out->home = strdup(u->home);
	out->shell = strdup(u->shell);
	out->uid = out->gid = u->uid;
	out->admin = u->admin;
	out->first_login = u->first;
	out->last_login = u->last;
	if (!out->name || !out->object_id || !out->tenant_id || !out->gecos || !out->home || !out->shell) {
		entra_userdb_entry_free(out);
		return -ENOMEM;
	}
	return 0;
}

void entra_userdb_entry_free(struct entra_userdb_entry *e)
{
	if (e == NULL)
		return;
	free(e->name);
	free(e->object_id);
	free(e->tenant_id);
	free(e->gecos);
	free(e->home);
	free(e->shell);
	memset(e, 0, sizeof(*e));
}

/* Applies one login to the set; index of the user in *idx. */
static int apply_login(const struct entra_userdb_writer *w, struct wset *set,
		       const struct entra_userdb_login *l, long *idx, char *reason, size_t rlen)
{
	static const struct entra_userdb_system real = { sys_uid_taken, sys_name_taken, NULL };
	const struct entra_userdb_system *sys = w->system ? w->system : &real;
	const struct entra_userdb_rules *rules = w->rules;
	const char *oid = l->object_id ? l->object_id : "";
	const char *tenant = l->tenant_id ? l->tenant_id : "";
	long by_oid = -1, by_name;
	struct wuser *u;
	char *gecos;
	int rc;

	if (!entra_name_is_valid(l->name)) {
		entra_set_reason(reason, rlen, "invalid user name");
		return -EINVAL;
	}
	if (oid[0] != '\0' && !entra_is_guid(oid)) {
		entra_set_reason(reason, rlen, "object id of %s is not a GUID", l->name);
		return -EINVAL;
	}
	if (tenant[0] != '\0' && !entra_is_guid(tenant)) {
		entra_set_reason(reason, rlen, "tenant id of %s is not a GUID", l->name);
		return -EINVAL;
	}
	if (entra_streq_nocase(l->name, rules->admin_group) ||
	    list_contains(rules->local_users, rules->n_local_users, l->name)) {
		entra_set_reason(reason, rlen, "%s is reserved (admin group or local user)", l->name);
		return -EEXIST;
	}
	by_name = wset_find_name(set, l->name);
	if (oid[0] != '\0')
		by_oid = wset_find_oid(set, oid);

	if (by_name >= 0 && by_oid < 0 && set->v[by_name].oid[0] != '\0' && oid[0] != '\0') {
		entra_set_reason(reason, rlen, "%s is bound to object id %s, refused for object id %s",
			   set->v[by_name].name, set->v[by_name].oid, oid);
		return -EEXIST;
	}
	if (by_oid >= 0 && by_name >= 0 && by_oid != by_name) {
		entra_set_reason(reason, rlen, "%s is bound to object id %s; object id %s (now %s) cannot take it",
			   set->v[by_name].name, set->v[by_name].oid[0] ? set->v[by_name].oid : "(none)", oid,
			   set->v[by_oid].name);
		return -EEXIST;
	}
	if (by_name < 0 && sys->name_taken(l->name, rules->uid_min, rules->uid_max, sys->data)) {
		entra_set_reason(reason, rlen, "%s is the name of an existing account outside the Entra range",
			   l->name);
		return -EEXIST;
	}
	gecos = sanitise_gecos(l->display_name);
	if (gecos == NULL)
		return -ENOMEM;

	if (by_oid >= 0 || by_name >= 0) {
		long i = by_oid >= 0 ? by_oid : by_name;

		u = &set->v[i];
		if (strcmp(u->name, l->name) != 0) {
			/* Renamed UPN (or a change of case): same uid, new name. */
			char *name = strdup(l->name);

			if (name == NULL) {
				free(gecos);
				return -ENOMEM;
			}
			if (!eq_nocase(u->name, l->name, strlen(l->name) + 1))
				entra_log(w->log, LOG_NOTICE, "userdb: object id %s renamed from %s to %s (uid %u kept)",
					  oid, u->name, l->name, u->uid);
			free(u->name);
			u->name = name;
			rc = wset_reindex(set, set->n * 2);
			if (rc != 0) {
				free(gecos);
				return rc;
			}
		}
		if (u->oid[0] == '\0' && oid[0] != '\0') {
			char *o = strdup(oid);

			if (o == NULL) {
				free(gecos);
				return -ENOMEM;
			}
			free(u->oid);
			u->oid = o;
		}
		if (tenant[0] != '\0') {
			char *t = strdup(tenant);

			if (t == NULL) {
				free(gecos);
				return -ENOMEM;
			}
			free(u->tenant);
			u->tenant = t;
		}
		if (l->display_name != NULL) {
			free(u->gecos);
			u->gecos = gecos;
		} else {
			free(gecos);
		}
		if (l->when != 0) {
			u->admin = l->admin;
			if (u->first == 0)
				u->first = l->when;
			u->last = l->when;
		} else {
			u->admin = l->admin;
		}
		*idx = i;
		return 0;
	} else {
		struct uid_probe probe = { set, sys };
		struct wuser nu = { 0 };
		char home[ENTRA_USERDB_PATH_MAX];

		rc = entra_userdb_pick_uid(l->name, rules->uid_min, rules->uid_max, rules->admin_gid,
					   writer_uid_taken, &probe, &nu.uid);
		if (rc != 0) {
			free(gecos);
			entra_set_reason(reason, rlen, "no free uid left in %u-%u", rules->uid_min, rules->uid_max);
			return rc;
		}
		rc = expand_home(rules->home_template, l->name, nu.uid, home, sizeof(home));
		if (rc != 0) {
			free(gecos);
			entra_set_reason(reason, rlen, "home directory path too long");
			return -EINVAL;
		}
		nu.name = strdup(l->name);
		nu.oid = strdup(oid);
		nu.tenant = strdup(tenant);
		nu.gecos = gecos;
		nu.home = strdup(home);
		nu.shell = strdup(rules->shell);
		nu.admin = l->admin;
		nu.first = nu.last = l->when;
		if (!nu.name || !nu.oid || !nu.tenant || !nu.home || !nu.shell) {
			wuser_free(&nu);
			return -ENOMEM;
		}
		rc = wset_append(set, &nu);
		if (rc != 0) {
			wuser_free(&nu);
			return rc;
		}
		entra_log(w->log, LOG_INFO, "userdb: recorded %s (object id %s) as uid %u", l->name,
			  oid[0] ? oid : "(none yet)", set->v[set->n - 1].uid);
		*idx = (long)set->n - 1;
		return 0;
	}
}

/* ---- writer: a login that changes nothing -------------------------------- */

static bool str_is(const struct entra_userdb *db, struct udb_str s, const char *v)
{
	return v != NULL && strlen(v) == s.len && memcmp(str_at(db, s), v, s.len) == 0;
}

/* The rules stored in the file are exactly those the writer would store. */
static bool rules_equal(const struct entra_userdb *db, const struct entra_userdb_rules *r)
{
	const struct udb_header *h = db->hdr;

	if (h->mapping != (uint32_t)r->mapping || h->uid_min != r->uid_min || h->uid_max != r->uid_max ||
	    h->admin_gid != r->admin_gid || h->n_domains != r->n_allowed_domains ||
	    h->n_local_users != r->n_local_users || !str_is(db, h->admin_group, r->admin_group) ||
	    !str_is(db, h->home_template, r->home_template) || !str_is(db, h->shell, r->shell))
		return false;
	for (size_t i = 0; i < r->n_allowed_domains; i++)
		if (!str_is(db, db->lists[i], r->allowed_domains[i]))
			return false;
	for (size_t i = 0; i < r->n_local_users; i++)
		if (!str_is(db, db->lists[r->n_allowed_domains + i], r->local_users[i]))
			return false;
	return true;
}

/* Would apply_login leave record i exactly as it is (last_login aside,
 * within ENTRA_USERDB_LAST_LOGIN_RESOLUTION)? Anything apply_login would
 * refuse or change answers false. */
static bool login_changes_nothing(const struct entra_userdb *db, const struct entra_userdb_rules *rules,
				  const struct entra_userdb_login *l, long i)
{
	const struct udb_record *r = &db->records[i];
	const char *oid = l->object_id, *tenant = l->tenant_id ? l->tenant_id : "";
	size_t oidlen;
	bool same;

	/* A login (not pre-provisioning) of a bound record, by its exact
	 * name (a change of case renames) and object id. */
	if (l->when <= 0 || oid == NULL || !entra_is_guid(oid) || !str_is(db, r->name, l->name) ||
	    !str_is(db, r->object_id, oid))
		return false;
	if (tenant[0] != '\0' && (!entra_is_guid(tenant) || !str_is(db, r->tenant_id, tenant)))
		return false;
	if (((r->flags & UDB_FLAG_ADMIN) != 0) != l->admin)
		return false;
	/* last_login moves forward only by the resolution; a clock that went
	 * back would rewrite it, so that case goes through the writer. */
	if (r->first_login == 0 || r->last_login > l->when ||
	    l->when - r->last_login >= ENTRA_USERDB_LAST_LOGIN_RESOLUTION)
		return false;
	if (entra_streq_nocase(l->name, rules->admin_group) ||
	    list_contains(rules->local_users, rules->n_local_users, l->name))
		return false; /* reserved: the writer refuses it */
	if (l->display_name != NULL) {
		char *gecos = sanitise_gecos(l->display_name);

		same = gecos != NULL && str_is(db, r->gecos, gecos);
		free(gecos);
		if (!same)
			return false;
	}
	/* The writer finds a record by object id first: no other record may
	 * carry it (the writer never lets that happen; a file that says
	 * otherwise goes through it and gets its answer). */
	oidlen = strlen(oid);
	for (uint32_t k = 0; k < db->hdr->n_users; k++) {
		const struct udb_record *o = &db->records[k];

		if ((long)k != i && o->object_id.len == oidlen && eq_nocase(str_at(db, o->object_id), oid, oidlen))
			return false;
	}
	return true;
}

/* The read-only path of a repeated login: the published file, mapped as
 * NSS maps it, without the lock file, a write or an fsync. 0 with out
 * filled (when not NULL); 1 when the writer must decide (any doubt:
 * no file, a file we do not trust or cannot read, other rules, a record
 * that would change); another -errno only for lack of memory. */
static int record_unchanged(const struct entra_userdb_writer *w, const struct entra_userdb_login *l,
			    struct entra_userdb_entry *out)
{
	struct entra_userdb *db = NULL;
	long i;
	int dirfd, fd, rc = 1;

	if (entra_userdb_rules_check(w->rules, NULL, 0) != 0)
		return 1;
	/* The directory the writer would use, with the same trust: ours, not
	 * writable by anyone else (so no one else can put a file here). */
	dirfd = entra_dir_open_trusted(w->db_dir, geteuid());
	if (dirfd < 0)
		return 1;
	fd = openat(dirfd, ENTRA_USERDB_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	close(dirfd);
	if (fd < 0)
		return 1;
	if (entra_userdb_open_fd(fd, &db, NULL, 0) != 0 || db == NULL) {
		close(fd);
		return 1;
	}
	close(fd);
	i = find_name_index(db, l->name, strlen(l->name));
	if (i < 0 || entra_userdb_is_stale(db) || !rules_equal(db, w->rules) ||
	    !login_changes_nothing(db, w->rules, l, i))
		goto done;
	rc = 0;
	if (out != NULL) {
		struct entra_userdb_user u;

		fill_user(db, &db->records[i], &u);
		out->name = strdup(u.name);
		out->object_id = strdup(u.object_id);
		out->tenant_id = strdup(u.tenant_id);
		out->gecos = strdup(u.gecos);
		out->home = strdup(u.home);
		out->shell = strdup(u.shell);
		out->uid = u.uid;
		out->gid = u.gid;
		out->admin = u.admin;
		out->first_login = u.first_login;
		out->last_login = u.last_login;
		if (!out->name || !out->object_id || !out->tenant_id || !out->gecos || !out->home ||
		    !out->shell) {
			entra_userdb_entry_free(out);
			rc = -ENOMEM;
		}
	}
done:
	entra_userdb_close(db);
	return rc;
}

int entra_userdb_record_login(const struct entra_userdb_writer *w, const struct entra_userdb_login *login,
			      struct entra_userdb_entry *out, char *reason, size_t rlen)
{
	int rc;

	if (out != NULL)
		memset(out, 0, sizeof(*out));
	/* Most logins are of a known user whose record would not change: no
	 * lock, no rewrite of the whole file, no fsync for those. */
	if (login != NULL && entra_name_is_valid(login->name)) {
		rc = record_unchanged(w, login, out);
		if (rc <= 0)
			return rc;
	}
	return entra_userdb_record_batch(w, login, 1, out, reason, rlen);
}

int entra_userdb_record_batch(const struct entra_userdb_writer *w, const struct entra_userdb_login *logins,
			      size_t n, struct entra_userdb_entry *out, char *reason, size_t rlen)
{
	struct txn t;
	long idx = -1;
	int rc;

	if (out != NULL)
		memset(out, 0, sizeof(*out));
	/* Refuse a bad name before any file operation (even the lock file). */
	for (size_t i = 0; i < n; i++) {
		if (logins == NULL || !entra_name_is_valid(logins[i].name)) {
			entra_set_reason(reason, rlen, "invalid user name");
			return -EINVAL;
		}
	}
	rc = txn_begin(w, &t, reason, rlen);
	if (rc != 0)
		goto done;
	if (t.set.slots == 0 && (rc = wset_reindex(&t.set, n * 2 + 16)) != 0)
		goto done;
	for (size_t i = 0; i < n; i++) {
		rc = apply_login(w, &t.set, &logins[i], &idx, reason, rlen);
		if (rc != 0) {
			entra_log(w->log, LOG_WARNING, "userdb: %s", reason ? reason : "login refused");
			goto done;
		}
	}
	rc = txn_commit(w, &t, reason, rlen);
	if (rc == 0 && out != NULL && idx >= 0)
		rc = entry_from(&t.set.v[idx], out);
done:
	txn_end(&t);
	return rc;
}

int entra_userdb_remove(const struct entra_userdb_writer *w, const char *key, char *reason, size_t rlen)
{
	struct txn t;
	long i = -1;
	int rc;

	rc = txn_begin(w, &t, reason, rlen);
	if (rc != 0)
		goto done;
	if (entra_is_guid(key))
		i = wset_find_oid(&t.set, key);
	if (i < 0 && entra_name_is_valid(key))
		i = wset_find_name(&t.set, key);
	if (i < 0) {
		entra_set_reason(reason, rlen, "no such user: %s", key);
		rc = -ENOENT;
		goto done;
	}
	entra_log(w->log, LOG_NOTICE, "userdb: removed %s (uid %u)", t.set.v[i].name, t.set.v[i].uid);
	wuser_free(&t.set.v[i]);
	memmove(&t.set.v[i], &t.set.v[i + 1], (t.set.n - (size_t)i - 1) * sizeof(t.set.v[0]));
	t.set.n--;
	rc = wset_reindex(&t.set, t.set.n * 2);
	if (rc == 0)
		rc = txn_commit(w, &t, reason, rlen);
done:
	txn_end(&t);
	return rc;
}

int entra_userdb_sync_rules(const struct entra_userdb_writer *w, char *reason, size_t rlen)
{
	struct txn t;
	int rc;

	rc = txn_begin(w, &t, reason, rlen);
	if (rc == 0)
		rc = txn_commit(w, &t, reason, rlen);
	txn_end(&t);
	return rc;
}
