/* Test helper: writes a user database with fixed test rules, so that the
 * NSS tests do not depend on the config parser.
 *   userdb_tool DIR sync [localpart]
 *   userdb_tool DIR add NAME OBJECT-ID [admin]
 *   userdb_tool DIR bulk PREFIX COUNT        (PREFIX<i>@contoso.com)
 *   userdb_tool DIR remove NAME */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "userdb.h"

static const char *const domains[] = { "contoso.com" };
static const char *const locals[] = { "breakglass" };

static bool none_taken(uint32_t id, void *data)
{
	(void)id;
	(void)data;
	return false;
}

static bool no_name_taken(const char *name, uint32_t lo, uint32_t hi, void *data)
{
	(void)name;
	(void)lo;
	(void)hi;
	(void)data;
	return false;
}

int main(int argc, char **argv)
{
	struct entra_userdb_rules rules = {
		.mapping = ENTRA_USERDB_MAP_UPN,
		.allowed_domains = domains, .n_allowed_domains = 1,
		.local_users = locals, .n_local_users = 1,
		.uid_min = 1900000000, .uid_max = 1999999999,
		.admin_group = "entra-admins", .admin_gid = 1899999999,
		.home_template = "/home/%u", .shell = "/bin/bash",
	};
	struct entra_userdb_system sys = { none_taken, no_name_taken, NULL };
	struct entra_userdb_writer w = { NULL, &rules, &sys, &entra_log_stderr };
	char reason[512] = "";
	int rc = -EINVAL;

	if (argc < 3) {
		fprintf(stderr, "usage: userdb_tool DIR sync|add|bulk|remove ...\n");
		return 2;
	}
	w.db_dir = argv[1];
	if (strcmp(argv[2], "sync") == 0) {
		if (argc > 3 && strcmp(argv[3], "localpart") == 0)
			rules.mapping = ENTRA_USERDB_MAP_LOCALPART;
		rc = entra_userdb_sync_rules(&w, reason, sizeof(reason));
	} else if (strcmp(argv[2], "add") == 0 && argc >= 5) {
		struct entra_userdb_login l = { argv[3], argv[4], NULL, "Test User", argc > 5, 1700000000 };
		struct entra_userdb_entry e;

		rc = entra_userdb_record_login(&w, &l, &e, reason, sizeof(reason));
		if (rc == 0) {
			printf("%s:%u:%u:%s:%s\n", e.name, e.uid, e.gid, e.home, e.shell);
			entra_userdb_entry_free(&e);
		}
	} else if (strcmp(argv[2], "bulk") == 0 && argc == 5) {
		long n = strtol(argv[4], NULL, 10);
		struct entra_userdb_login *l = calloc((size_t)(n > 0 ? n : 1), sizeof(*l));
		char *names = calloc((size_t)(n > 0 ? n : 1), 64 + 40);

		if (n <= 0 || l == NULL || names == NULL)
			return 1;
		for (long i = 0; i < n; i++) {
			char *name = names + i * 104, *oid = name + 64;

			snprintf(name, 64, "%s%ld@contoso.com", argv[3], i);
			snprintf(oid, 40, "%08lx-0000-4000-8000-%012lx", (unsigned long)i & 0xffffffffUL,
				 (unsigned long)i & 0xffffffffffffUL);
			l[i] = (struct entra_userdb_login){ name, oid, NULL, "Bulk User", i % 10 == 0, 1700000000 };
		}
		rc = entra_userdb_record_batch(&w, l, (size_t)n, NULL, reason, sizeof(reason));
		free(l);
		free(names);
	} else if (strcmp(argv[2], "remove") == 0 && argc == 4) {
		rc = entra_userdb_remove(&w, argv[3], reason, sizeof(reason));
	}
	if (rc != 0) {
		fprintf(stderr, "userdb_tool: %s (%s)\n", reason[0] ? reason : "bad arguments", strerror(-rc));
		return 1;
	}
	return 0;
}
