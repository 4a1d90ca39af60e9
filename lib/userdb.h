/* userdb: the local database of Entra users behind the NSS module.
 *
 * One file, <db_dir>/users.db (root, 0644: names, object ids and uids, no
 * secrets), built so that a lookup from NSS is a few memory reads:
 *
 *   header   magic "ENTRAUDB", version, size, generation, stale word,
 *            checksum, counts, offsets, and the "rules" (mapping mode,
 *            allowed domains, local users, uid range, admin group, home
 *            template, shell) copied from the config by the writer, so
 *            that NSS never reads the config file;
 *   records  fixed-size user records (uid, flags, string references,
 *            first/last login);
 *   indexes  open-addressing hash tables (power-of-two slots, linear
 *            probing, always one empty slot) of record numbers by
 *            lower-cased name and by uid; the private group of a user has
 *            the user's name and gid = uid, so the same tables serve groups;
 *   admins   the record numbers of users whose last login granted admin:
 *            the members of the admin group;
 *   strings  NUL-terminated strings referenced by (offset, length).
 * All integers are in host byte order (the file never leaves the node).
 *
 * Replacement. Writers hold an exclusive flock on <db_dir>/users.lock for
 * the whole read-modify-write, write the new file to a temp file, fsync and
 * rename it over users.db (entra_write_file_atomic), and only then store 1
 * into the "stale" word of the OLD file through a descriptor opened before
 * the rename. Readers map the file MAP_SHARED read-only, so they see that
 * word change in their own mapping: checking it is one load, no syscall.
 * A reader that sees stale reopens users.db and is sure to get the new
 * file. Besides, a cached reader stat()s the path at most every few
 * seconds, for files replaced by other means (a restored backup).
 * Nothing else in a published file ever changes.
 *
 * Validation. A file is used only when every offset and count lies inside
 * it, every string is NUL-terminated at its recorded length and holds no
 * control character, every name passes entra_name_is_valid, no uid or gid
 * is 0, the index tables have a free slot, and the checksum over the whole
 * file (stale word and checksum field read as zero) matches. So a
 * corrupt, truncated or hostile file is rejected (-EBADMSG) and lookups
 * never read outside the mapping.
 *
 * First login. A name that is not recorded but matches the rules (mapping
 * "upn": local@domain with domain among allowed_domains; "localpart": a
 * short name, when at least one domain is allowed; never a local user or
 * the admin group) resolves to a synthetic user whose uid is the one the
 * writer will give it: uid_min + fnv1a64(lower(name)) mod range, then
 * linear probing past uids already recorded (and the admin gid). The writer
 * also skips uids and gids the system already knows (getpwuid/getgrgid).
 */
#ifndef ENTRA_USERDB_H
#define ENTRA_USERDB_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "log.h"

#define ENTRA_USERDB_FILE "users.db"
#define ENTRA_USERDB_LOCK "users.lock"
#define ENTRA_USERDB_MAX_SIZE (1024UL * 1024 * 1024) /* refuse larger files */
#define ENTRA_USERDB_MAX_USERS 4000000
#define ENTRA_USERDB_GECOS_MAX 256
#define ENTRA_USERDB_PATH_MAX 1024

enum entra_userdb_mapping {
	ENTRA_USERDB_MAP_NONE = 0,      /* no first-login resolution */
	ENTRA_USERDB_MAP_UPN = 1,       /* the local name is the UPN */
	ENTRA_USERDB_MAP_LOCALPART = 2, /* the local name is the part before '@' */
};

/* What the writer embeds for NSS; built by entra_userdb_rules_from_config
 * (userdb_config.h) or by hand in tests. */
struct entra_userdb_rules {
	enum entra_userdb_mapping mapping;
	const char *const *allowed_domains;
	size_t n_allowed_domains;
	const char *const *local_users; /* never resolved nor recorded */
	size_t n_local_users;
	uint32_t uid_min, uid_max;      /* 1000 <= uid_min <= uid_max */
	const char *admin_group;        /* a valid name */
	uint32_t admin_gid;             /* outside [uid_min, uid_max], not 0 */
	const char *home_template;      /* absolute; %u name, %U uid, %% */
	const char *shell;              /* absolute */
};

/* Checks the rules as the writer would. 0 or -EINVAL with a reason. */
int entra_userdb_rules_check(const struct entra_userdb_rules *rules, char *reason, size_t reasonlen);

/* ---- Reading ---------------------------------------------------------- */

/* An opened, validated mapping. Views below point into it and stay valid
 * until entra_userdb_close. */
struct entra_userdb;

struct entra_userdb_user {
	const char *name;       /* as first recorded (or as asked, if synthetic) */
	const char *object_id;  /* "" when pre-provisioned without one */
	const char *tenant_id;  /* "" when unknown */
	const char *gecos;
	const char *home;
	const char *shell;
	uint32_t uid, gid;
	bool admin;
	bool synthetic;         /* not recorded: first-login resolution */
	int64_t first_login, last_login; /* epoch seconds, 0 = never */
};

struct entra_userdb_info {
	uint64_t generation;
	uint64_t file_size;
	uint32_t users, admins;
	bool stale;
};

/* Map and validate db_dir/users.db. The file must be a regular file owned
 * by root or by the caller's euid and not writable by group or others.
 * 0, -ENOENT, -EBADMSG (corrupt: reason filled), -EPERM/-EACCES (owner,
 * mode), -EFBIG, or another -errno. reason may be NULL. */
int entra_userdb_open(const char *db_dir, struct entra_userdb **out, char *reason, size_t reasonlen);
/* The same, for an open descriptor (not closed; the mapping survives it). */
int entra_userdb_open_fd(int fd, struct entra_userdb **out, char *reason, size_t reasonlen);
void entra_userdb_close(struct entra_userdb *db);

/* Has a writer replaced the file since it was mapped? One memory load. */
bool entra_userdb_is_stale(const struct entra_userdb *db);
void entra_userdb_get_info(const struct entra_userdb *db, struct entra_userdb_info *info);
/* The embedded rules; the pointers point into the mapping. Lists are
 * not exposed (lookups use them): counts only. */
void entra_userdb_get_rules(const struct entra_userdb *db, struct entra_userdb_rules *rules);

/* Recorded users only. 0 or -ENOENT (also for invalid names). */
int entra_userdb_find_name(const struct entra_userdb *db, const char *name, struct entra_userdb_user *out);
int entra_userdb_find_uid(const struct entra_userdb *db, uint32_t uid, struct entra_userdb_user *out);
/* Record number i, 0 <= i < info.users. 0 or -ENOENT. */
int entra_userdb_get_index(const struct entra_userdb *db, size_t i, struct entra_userdb_user *out);

/* Recorded user, else first-login resolution per the embedded rules. For
 * a synthetic user, name points to the caller's string and home is built
 * in homebuf. 0, -ENOENT (no match), -ERANGE (homebuf too small). */
int entra_userdb_resolve_name(const struct entra_userdb *db, const char *name,
			      struct entra_userdb_user *out, char *homebuf, size_t homelen);

/* Does name match the rules for first-login resolution? */
bool entra_userdb_name_matches(const struct entra_userdb *db, const char *name);

/* The uid a new user `name` gets from these rules, given a predicate
 * saying which uids are taken (the reader: recorded ones; the writer:
 * also the system's). 0 or -ENOSPC. */
int entra_userdb_pick_uid(const char *name, uint32_t uid_min, uint32_t uid_max, uint32_t admin_gid,
			  bool (*taken)(uint32_t uid, void *data), void *data, uint32_t *uid);
/* The stable hash of a name: FNV-1a 64 over its ASCII-lower-cased bytes. */
uint64_t entra_userdb_name_hash(const char *name, size_t len);

/* Groups: the admin group, or the private group of a recorded user. */
struct entra_userdb_group {
	const char *name;
	uint32_t gid;
	bool admin_group;       /* members via entra_userdb_admin_member */
	uint32_t n_members;     /* admin group: number of admins; private: 0 */
};
/* Private groups of first-login names resolve too (same rule as users). */
int entra_userdb_group_by_name(const struct entra_userdb *db, const char *name,
			       struct entra_userdb_group *out);
int entra_userdb_group_by_gid(const struct entra_userdb *db, uint32_t gid, struct entra_userdb_group *out);
/* Name of admin number i (0 <= i < n_members), or NULL. */
const char *entra_userdb_admin_member(const struct entra_userdb *db, uint32_t i);
/* Groups enumerated: 0..users-1 are private groups, users is the admin
 * group. 0 or -ENOENT past the end. */
int entra_userdb_group_by_index(const struct entra_userdb *db, size_t i, struct entra_userdb_group *out);

/* ---- A per-process cached reader (for NSS) ------------------------------ */

/* Maps once, remaps when the mapping is stale (one load per call) or when
 * a periodic stat (at most every ENTRA_USERDB_RECHECK_SECONDS, by the
 * coarse monotonic clock, which needs no syscall) shows another inode; a
 * missing or bad file is retried at most that often. Thread-safe: readers
 * hold a read lock on the mapping for the duration of a lookup. */
#define ENTRA_USERDB_RECHECK_SECONDS 5

struct entra_userdb_cache {
	pthread_rwlock_t lock;      /* protects db against remapping */
	pthread_mutex_t remap_lock; /* one remapper at a time */
	struct entra_userdb *db;
	char dir[ENTRA_USERDB_PATH_MAX];
	int64_t next_check;         /* coarse monotonic seconds */
	dev_t dev;
	ino_t ino;
	int last_error;
};
#define ENTRA_USERDB_CACHE_INIT \
	{ PTHREAD_RWLOCK_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, NULL, "", 0, 0, 0, 0 }

/* Set the directory (before first use; copies it). 0 or -ENAMETOOLONG. */
int entra_userdb_cache_set_dir(struct entra_userdb_cache *cache, const char *db_dir);
/* Returns the current database read-locked (release it!), or NULL with
 * *error = -ENOENT/-EBADMSG/... (nothing to release). */
const struct entra_userdb *entra_userdb_cache_acquire(struct entra_userdb_cache *cache, int *error);
void entra_userdb_cache_release(struct entra_userdb_cache *cache);
/* Drop the mapping (tests, or a process that wants memory back). */
void entra_userdb_cache_reset(struct entra_userdb_cache *cache);

/* ---- Writing (PAM module after a login, entractl) ----------------------- */

/* A user as the writer hands it back: owned strings. */
struct entra_userdb_entry {
	char *name, *object_id, *tenant_id, *gecos, *home, *shell;
	uint32_t uid, gid;
	bool admin;
	int64_t first_login, last_login;
};
void entra_userdb_entry_free(struct entra_userdb_entry *entry);

/* last_login is rewritten only when the stored one is at least this old:
 * an hour tells which accounts are in use (entractl users list) without a
 * whole-file rewrite and fsync at every login; every login is in syslog. */
#define ENTRA_USERDB_LAST_LOGIN_RESOLUTION 3600

struct entra_userdb_login {
	const char *name;         /* local name (UPN or short name) */
	const char *object_id;    /* GUID; NULL only for pre-provisioning */
	const char *tenant_id;    /* GUID or NULL */
	const char *display_name; /* gecos; sanitised (':' and controls → ' ') */
	bool admin;
	int64_t when;             /* epoch seconds; 0 = pre-provisioned, no login yet */
};

/* How the writer learns which ids and names the system already uses.
 * NULL hooks: getpwuid_r/getgrgid_r/getpwnam_r of the system. */
struct entra_userdb_system {
	bool (*uid_taken)(uint32_t id, void *data); /* a passwd or group entry exists */
	/* name belongs to an account outside the Entra range (local, LDAP) */
	bool (*name_taken)(const char *name, uint32_t uid_min, uint32_t uid_max, void *data);
	void *data;
};

struct entra_userdb_writer {
	const char *db_dir;
	const struct entra_userdb_rules *rules;
	const struct entra_userdb_system *system; /* NULL: the real system */
	const struct entra_log *log;              /* may be NULL */
};

/* Record a login (or pre-provision when login->when == 0 and no object
 * id). Rules: a known object id keeps its uid (a new name renames the
 * record); a name bound to a different object id is refused (-EEXIST); a
 * record without an object id gets bound to the first one that logs in
 * with its name; a new user gets entra_userdb_pick_uid's uid, skipping uids
 * recorded, the admin gid, and those the system knows. out (may be NULL)
 * receives the stored entry.
 *
 * A login that would change nothing (same name, object id, tenant, gecos
 * and admin flag, the file's rules equal to w->rules, last_login less than
 * ENTRA_USERDB_LAST_LOGIN_RESOLUTION seconds before login->when) is
 * answered from the published file read-only, as NSS reads it: no lock,
 * no write, the generation unchanged, and out gets the stored last_login.
 * Any doubt (no file, a corrupt or untrusted one, a stale mapping, other
 * rules, a reserved name) goes through the transaction below. 0, -EEXIST (conflict), -EINVAL (bad input),
 * -ENOSPC (range full), -EBADMSG (existing file corrupt: refused, nothing
 * written), or another -errno; reason says why in words. */
int entra_userdb_record_login(const struct entra_userdb_writer *w, const struct entra_userdb_login *login,
			      struct entra_userdb_entry *out, char *reason, size_t reasonlen);

/* Several logins in one transaction (one file write): bulk
 * pre-provisioning and benchmarks. Stops at the first refusal (nothing is
 * written then); out (may be NULL) receives the last entry. */
int entra_userdb_record_batch(const struct entra_userdb_writer *w, const struct entra_userdb_login *logins,
			      size_t n, struct entra_userdb_entry *out, char *reason, size_t reasonlen);

/* Remove a user by name (case-insensitive) or object id. 0 or -ENOENT. */
int entra_userdb_remove(const struct entra_userdb_writer *w, const char *name_or_oid,
			char *reason, size_t reasonlen);

/* Rewrite the file with the current rules (creates an empty database).
 * Run after installing or changing the config so that first-login names
 * resolve. 0 or -errno. */
int entra_userdb_sync_rules(const struct entra_userdb_writer *w, char *reason, size_t reasonlen);

#endif
