/* userdb_config: struct entra_config -> struct entra_userdb_rules. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "userdb_config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int id_value(unsigned long v, const char *key, uint32_t *out, char *reason, size_t rlen)
{
	if (v == 0 || v >= UINT32_MAX - 1) {
		if (reason != NULL && rlen > 0)
			snprintf(reason, rlen, "%s: %lu is not a usable id", key, v);
		return -EINVAL;
	}
	*out = (uint32_t)v;
	return 0;
}

int entra_userdb_rules_from_config(const struct entra_config *cfg, struct entra_userdb_rules *rules,
				   char *reason, size_t rlen)
{
	int rc;

	memset(rules, 0, sizeof(*rules));
	switch (cfg->user_mapping) {
	case ENTRA_MAP_UPN:
		rules->mapping = ENTRA_USERDB_MAP_UPN;
		break;
	case ENTRA_MAP_LOCALPART:
		rules->mapping = ENTRA_USERDB_MAP_LOCALPART;
		break;
	default:
		rules->mapping = ENTRA_USERDB_MAP_NONE;
		break;
	}
	rules->allowed_domains = (const char *const *)cfg->allowed_domains.items;
	rules->n_allowed_domains = cfg->allowed_domains.count;
	rules->local_users = (const char *const *)cfg->local_users.items;
	rules->n_local_users = cfg->local_users.count;
	if ((rc = id_value(cfg->uid_min, "uid_min", &rules->uid_min, reason, rlen)) != 0 ||
	    (rc = id_value(cfg->uid_max, "uid_max", &rules->uid_max, reason, rlen)) != 0 ||
	    (rc = id_value(cfg->admin_gid, "admin_gid", &rules->admin_gid, reason, rlen)) != 0)
		return rc;
	rules->admin_group = cfg->admin_group;
	rules->home_template = cfg->home_template;
	rules->shell = cfg->shell;
	return entra_userdb_rules_check(rules, reason, rlen);
}
