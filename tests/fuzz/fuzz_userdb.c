/* libFuzzer target: the user-database reader that the NSS module runs in
 * every process: entra_userdb_open_fd on a memfd holding the input, then
 * every lookup. The unit is compiled into this target (#include of
 * lib/userdb.c) so that the harness can give a mutated file a correct
 * size field and checksum, which random bytes would almost never have:
 * otherwise the fuzzer would only ever reach the checksum check. Byte 0
 * of the input decides whether to fix them (bit 0 clear) or not. */
#include "../../lib/userdb.c"

#include <sys/mman.h>

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_user(const struct entra_userdb_user *u)
{
	if (u->name == NULL || u->object_id == NULL || u->tenant_id == NULL || u->gecos == NULL ||
	    u->home == NULL || u->shell == NULL || u->uid == 0 || u->gid == 0)
		abort();
	if (!entra_name_is_valid(u->name) || !fuzz_printable(u->gecos) || !fuzz_printable(u->home) ||
	    strchr(u->gecos, ':') != NULL || strchr(u->home, ':') != NULL || strchr(u->shell, ':') != NULL ||
	    u->home[0] != '/' || u->shell[0] != '/')
		abort();
}

static void lookups(const struct entra_userdb *db)
{
	struct entra_userdb_info info;
	struct entra_userdb_user u, v;
	struct entra_userdb_group g;
	char home[ENTRA_USERDB_PATH_MAX];
	size_t i;

	entra_userdb_get_info(db, &info);
	for (i = 0; i < info.users && i < 64; i++) {
		if (entra_userdb_get_index(db, i, &u) != 0)
			abort();
		check_user(&u);
		/* A file that validates may still hold duplicates or an index
		 * that misses a record (only root writes it): lookups must
		 * then answer nothing or the record asked for, never another. */
		if (entra_userdb_find_name(db, u.name, &v) == 0) {
			check_user(&v);
			if (strcasecmp(v.name, u.name) != 0)
				abort();
		}
		if (entra_userdb_find_uid(db, u.uid, &v) == 0) {
			check_user(&v);
			if (v.uid != u.uid)
				abort();
		}
		if (entra_userdb_group_by_index(db, i, &g) != 0 || !entra_name_is_valid(g.name))
			abort();
	}
	if (entra_userdb_get_index(db, info.users, &u) != -ENOENT)
		abort();
	if (entra_userdb_group_by_index(db, info.users, &g) == 0) {
		if (!g.admin_group || g.n_members != info.admins)
			abort();
		for (uint32_t k = 0; k < g.n_members && k < 64; k++)
			if (entra_userdb_admin_member(db, k) == NULL)
				abort();
		if (entra_userdb_group_by_gid(db, g.gid, &g) != 0)
			abort();
	}
	static const char *const names[] = { "alice@contoso.com", "Alice@Contoso.COM", "bob", "root",
					     "entra-admins", "x@fabrikam.com", "breakglass" };
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		int rc = entra_userdb_resolve_name(db, names[i], &u, home, sizeof(home));

		if (rc == 0)
			check_user(&u);
		(void)entra_userdb_name_matches(db, names[i]);
		(void)entra_userdb_group_by_name(db, names[i], &g);
		(void)entra_userdb_resolve_name(db, names[i], &u, home, 4);
	}
	(void)entra_userdb_find_uid(db, 1900000000, &u);
	(void)entra_userdb_group_by_gid(db, 1899999999, &g);
	(void)entra_userdb_is_stale(db);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct entra_userdb *db = NULL;
	char reason[256];
	uint8_t *copy;
	int fd, rc;

	if (size < 1)
		return 0;
	copy = malloc(size - 1 ? size - 1 : 1);
	if (copy == NULL)
		return 0;
	memcpy(copy, data + 1, size - 1);
	size--;
	if ((data[0] & 1) == 0 && size >= sizeof(struct udb_header)) {
		struct udb_header h;

		memcpy(&h, copy, sizeof(h));
		h.file_size = size;
		memcpy(copy, &h, sizeof(h));
		h.checksum = file_checksum(copy, size);
		memcpy(copy, &h, sizeof(h));
	}
	fd = memfd_create("userdb", MFD_CLOEXEC);
	if (fd < 0 || fchmod(fd, 0644) != 0 || (size > 0 && write(fd, copy, size) != (ssize_t)size))
		abort();
	free(copy);
	reason[0] = '\0';
	rc = entra_userdb_open_fd(fd, &db, reason, sizeof(reason));
	close(fd); /* the mapping survives the descriptor */
	if (rc == 0) {
		lookups(db);
		entra_userdb_close(db);
	} else if (db != NULL || rc > 0 || !fuzz_printable(reason)) {
		abort();
	}
	return 0;
}
