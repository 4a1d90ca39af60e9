/* Claims -> identity -> local account -> allow/deny/admin. Pure decisions:
 * no network, no NSS lookups; the only I/O is reading the map file. */
#include "config.h"
#include "policy.h"
#include "log.h"
#include "names.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define OBJECT_ID_MAX 128
#define SUBJECT_MAX 256
#define ISSUER_MAX 512
#define DISPLAY_NAME_MAX 256
#define CLAIM_VALUE_MAX 256  /* one group id or role value */
#define CLAIM_LIST_MAX 4096  /* entries in groups/roles; Entra emits at most 200 groups */


static void strlist_free(struct entra_strlist *list)
{
	for (size_t i = 0; i < list->count; i++)
		free(list->items[i]);
	free(list->items);
	list->items = NULL;
	list->count = 0;
}

void entra_identity_free(struct entra_identity *id)
{
	if (id == NULL)
		return;
	free(id->tenant_id);
	free(id->object_id);
	free(id->issuer);
	free(id->subject);
	free(id->username);
	free(id->display_name);
	strlist_free(&id->groups);
	strlist_free(&id->roles);
	memset(id, 0, sizeof(*id));
}

/* A string claim: -ENOENT absent, -EPROTO not a string, -EINVAL unsafe. */
static int string_claim(struct json_object *claims, const char *name, size_t max, char **out)
{
	struct json_object *v;
	const char *s;

	*out = NULL;
	if (!json_object_object_get_ex(claims, name, &v) || v == NULL)
		return -ENOENT;
	if (!json_object_is_type(v, json_type_string))
		return -EPROTO;
	s = json_object_get_string(v);
	/* An embedded NUL would make the C string shorter than the claim. */
	if ((size_t)json_object_get_string_len(v) != strlen(s) || s[0] == '\0' ||
	    !entra_value_is_safe(s, max))
		return -EINVAL;
	*out = strdup(s);
	return *out ? 0 : -ENOMEM;
}

static int string_array_claim(struct json_object *claims, const char *name,
			      struct entra_strlist *out)
{
	struct json_object *arr;
	size_t n;

	if (!json_object_object_get_ex(claims, name, &arr) || arr == NULL)
		return 0;
	if (!json_object_is_type(arr, json_type_array))
		return -EINVAL;
	n = json_object_array_length(arr);
	if (n > CLAIM_LIST_MAX)
		return -E2BIG;
	if (n == 0)
		return 0;
	out->items = calloc(n, sizeof(char *));
	if (out->items == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct json_object *v = json_object_array_get_idx(arr, i);
		const char *s;

		if (v == NULL || !json_object_is_type(v, json_type_string))
			return -EINVAL;
		s = json_object_get_string(v);
		if ((size_t)json_object_get_string_len(v) != strlen(s) || s[0] == '\0' ||
		    !entra_value_is_safe(s, CLAIM_VALUE_MAX))
			return -EINVAL;
		out->items[i] = strdup(s);
		if (out->items[i] == NULL)
			return -ENOMEM;
		out->count = i + 1;
	}
	return 0;
}

static const char *claim_error(int rc)
{
	switch (rc) {
	case -ENOENT:
		return "missing";
	case -ENOMEM:
		return "out of memory";
	case -E2BIG:
		return "too many entries";
	case -EPROTO:
		return "not a string";
	default:
		return "not a safe string";
	}
}

int entra_identity_from_claims(struct json_object *claims, const struct entra_config *cfg,
			       struct entra_identity *id, char *reason, size_t reason_len)
{
	const char *idc, *userc;
	struct json_object *v;
	int rc;

	if (id == NULL)
		return -EINVAL;
	memset(id, 0, sizeof(*id));
	if (claims == NULL || cfg == NULL || !json_object_is_type(claims, json_type_object)) {
		entra_set_reason(reason, reason_len, "token claims are not a JSON object");
		return -EINVAL;
	}
	idc = cfg->identity_claim ? cfg->identity_claim : "oid";
	userc = cfg->username_claim ? cfg->username_claim : "preferred_username";

	/* tid is Entra's; other providers may lack it. When present it must
	 * be a GUID and, if the configured tenant is a GUID, that tenant. */
	rc = string_claim(claims, "tid", OBJECT_ID_MAX, &id->tenant_id);
	if (rc == 0 && !entra_is_guid(id->tenant_id))
		rc = -EBADMSG;
	if (rc < 0 && rc != -ENOENT) {
		entra_set_reason(reason, reason_len, "claim 'tid': %s",
			   rc == -EBADMSG ? "not a tenant GUID" : claim_error(rc));
		goto fail;
	}
	if (id->tenant_id != NULL && cfg->tenant != NULL && entra_is_guid(cfg->tenant) &&
	    !entra_streq_nocase(id->tenant_id, cfg->tenant)) {
		entra_set_reason(reason, reason_len, "token is from tenant %s, not the configured %s",
			   id->tenant_id, cfg->tenant);
		rc = -EINVAL;
		goto fail;
	}

	rc = string_claim(claims, idc, OBJECT_ID_MAX, &id->object_id);
	if (rc < 0) {
		entra_set_reason(reason, reason_len, "identity claim '%s': %s", idc, claim_error(rc));
		goto fail;
	}
	rc = string_claim(claims, userc, ENTRA_NAME_MAX, &id->username);
	if (rc == 0 && !entra_name_is_valid(id->username))
		rc = -EBADMSG;
	if (rc < 0) {
		entra_set_reason(reason, reason_len, "username claim '%s': %s", userc,
			   rc == -EBADMSG ? "not a valid user name" : claim_error(rc));
		goto fail;
	}
	rc = string_claim(claims, "sub", SUBJECT_MAX, &id->subject);
	if (rc < 0) {
		entra_set_reason(reason, reason_len, "claim 'sub': %s", claim_error(rc));
		goto fail;
	}
	rc = string_claim(claims, "iss", ISSUER_MAX, &id->issuer);
	if (rc < 0 && rc != -ENOENT) {
		entra_set_reason(reason, reason_len, "claim 'iss': %s", claim_error(rc));
		goto fail;
	}
	/* The display name is cosmetic: an unsafe or odd one is dropped, not fatal. */
	rc = string_claim(claims, "name", DISPLAY_NAME_MAX, &id->display_name);
	if (rc == -ENOMEM) {
		entra_set_reason(reason, reason_len, "out of memory");
		goto fail;
	}

	rc = string_array_claim(claims, "groups", &id->groups);
	if (rc < 0) {
		entra_set_reason(reason, reason_len, "claim 'groups': %s",
			   rc == -EINVAL ? "not an array of safe strings" : claim_error(rc));
		goto fail;
	}
	rc = string_array_claim(claims, "roles", &id->roles);
	if (rc < 0) {
		entra_set_reason(reason, reason_len, "claim 'roles': %s",
			   rc == -EINVAL ? "not an array of safe strings" : claim_error(rc));
		goto fail;
	}
	/* Overage: the user is in too many groups for the token, which then
	 * points at Graph instead (_claim_names.groups, or hasgroups). */
	if (json_object_object_get_ex(claims, "_claim_names", &v) &&
	    json_object_is_type(v, json_type_object) &&
	    json_object_object_get_ex(v, "groups", NULL))
		id->groups_overage = true;
	if (json_object_object_get_ex(claims, "hasgroups", &v) &&
	    json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v))
		id->groups_overage = true;
	return 0;
fail:
	entra_identity_free(id);
	return rc == -ENOMEM ? -ENOMEM : -EINVAL;
}

/* user@domain with exactly one '@' and both parts non-empty; the domain
 * part is returned. */
static const char *upn_domain(const char *name)
{
	const char *at = strchr(name, '@');

	if (at == NULL || at == name || at[1] == '\0' || strchr(at + 1, '@') != NULL)
		return NULL;
	return at + 1;
}

/* The map file: "localname  upn-or-objectid" per line, '#' comments. */
struct map_entry {
	char *local;
	char *target;
};

struct map {
	struct map_entry *entries;
	size_t count;
};

static void map_free(struct map *map)
{
	for (size_t i = 0; i < map->count; i++) {
		free(map->entries[i].local);
		free(map->entries[i].target);
	}
	free(map->entries);
	map->entries = NULL;
	map->count = 0;
}

static bool map_target_ok(const char *t)
{
	return entra_is_guid(t) || (entra_name_is_valid(t) && upn_domain(t) != NULL);
}

/* Any malformed line refuses the whole file: a half-read map could map a
 * name to the wrong person. */
static int map_load(const struct entra_config *cfg, struct map *map)
{
	struct entra_buf buf;
	size_t pos = 0;
	int rc;

	map->entries = NULL;
	map->count = 0;
	if (cfg->map_file == NULL)
		return -ENOENT;
	rc = entra_config_read_file(cfg->map_file, ENTRA_MAP_MAX_FILE, cfg->check_owner, &buf);
	if (rc < 0)
		return rc;
	if (strlen(buf.data) != buf.len) {
		rc = -EINVAL;
		goto out;
	}
	while (pos < buf.len) {
		char *line = buf.data + pos, *nl = strchr(line, '\n');
		char *fields[3];
		size_t nfields = 0;
		struct map_entry *grown;
		char *p;

		if (nl != NULL)
			*nl = '\0';
		pos += strlen(line) + (nl ? 1 : 0);
		p = line;
		while (nfields < 3) {
			p += strspn(p, " \t\r");
			if (*p == '\0' || *p == '#')
				break;
			fields[nfields++] = p;
			p += strcspn(p, " \t\r");
			if (*p != '\0')
				*p++ = '\0';
		}
		if (nfields == 0)
			continue;
		if (nfields != 2 || !entra_name_is_valid(fields[0]) || !map_target_ok(fields[1])) {
			rc = -EINVAL;
			goto out;
		}
		grown = realloc(map->entries, (map->count + 1) * sizeof(*grown));
		if (grown == NULL) {
			rc = -ENOMEM;
			goto out;
		}
		map->entries = grown;
		map->entries[map->count].local = strdup(fields[0]);
		map->entries[map->count].target = strdup(fields[1]);
		map->count++;
		if (map->entries[map->count - 1].local == NULL ||
		    map->entries[map->count - 1].target == NULL) {
			rc = -ENOMEM;
			goto out;
		}
	}
out:
	entra_buf_free(&buf);
	if (rc < 0)
		map_free(map);
	return rc;
}

static bool map_has_local(const struct map *map, const char *user)
{
	for (size_t i = 0; i < map->count; i++)
		if (strcmp(map->entries[i].local, user) == 0)
			return true;
	return false;
}

enum entra_account_kind entra_classify_account(const struct entra_config *cfg, const char *user,
					       long uid, const char *const *user_groups)
{
	const char *domain;
	struct map map;
	bool found;

	if (cfg == NULL || user == NULL || !entra_name_is_valid(user))
		return ENTRA_ACCOUNT_NOT_OURS;
	if (strcmp(user, "root") == 0 || uid == 0)
		return ENTRA_ACCOUNT_NOT_OURS;
	if (entra_strlist_contains(&cfg->local_users, user))
		return ENTRA_ACCOUNT_NOT_OURS;

	/* Exact names here: a service account receives the node's identity,
	 * so "SVC-Train" must not pass for "svc-train". */
	for (size_t j = 0; j < cfg->service_accounts.count; j++)
		if (strcmp(cfg->service_accounts.items[j], user) == 0)
			return ENTRA_ACCOUNT_SERVICE;
	for (size_t i = 0; user_groups != NULL && user_groups[i] != NULL; i++) {
		for (size_t j = 0; j < cfg->service_accounts.count; j++) {
			const char *e = cfg->service_accounts.items[j];

			if (e[0] == '@' && strcmp(e + 1, user_groups[i]) == 0)
				return ENTRA_ACCOUNT_SERVICE;
		}
	}
	if (uid > 0 && cfg->service_uid_max != 0 && (unsigned long)uid >= cfg->service_uid_min &&
	    (unsigned long)uid <= cfg->service_uid_max)
		return ENTRA_ACCOUNT_SERVICE;

	/* An existing account outside the Entra uid range is a local
	 * account (ubuntu, sshd, ...): never start a device flow for it. */
	if (uid >= 0 && uid != (long)(uid_t)-1 &&
	    ((unsigned long)uid < cfg->uid_min || (unsigned long)uid > cfg->uid_max))
		return ENTRA_ACCOUNT_NOT_OURS;

	switch (cfg->user_mapping) {
	case ENTRA_MAP_UPN:
		domain = upn_domain(user);
		if (domain == NULL)
			return ENTRA_ACCOUNT_NOT_OURS;
		if (cfg->allowed_domains.count > 0 &&
		    !entra_strlist_contains(&cfg->allowed_domains, domain))
			return ENTRA_ACCOUNT_NOT_OURS;
		return ENTRA_ACCOUNT_ENTRA;
	case ENTRA_MAP_LOCALPART:
		if (strchr(user, '@') != NULL || cfg->allowed_domains.count == 0)
			return ENTRA_ACCOUNT_NOT_OURS;
		return ENTRA_ACCOUNT_ENTRA;
	case ENTRA_MAP_FILE:
		if (map_load(cfg, &map) < 0)
			return ENTRA_ACCOUNT_NOT_OURS;
		found = map_has_local(&map, user);
		map_free(&map);
		return found ? ENTRA_ACCOUNT_ENTRA : ENTRA_ACCOUNT_NOT_OURS;
	}
	return ENTRA_ACCOUNT_NOT_OURS;
}

char *entra_expected_upn(const struct entra_config *cfg, const char *user)
{
	const char *domain, *found = NULL;
	struct map map;
	char *upn;
	size_t len;

	if (cfg == NULL || user == NULL || !entra_name_is_valid(user))
		return NULL;
	switch (cfg->user_mapping) {
	case ENTRA_MAP_UPN:
		domain = upn_domain(user);
		if (domain == NULL || (cfg->allowed_domains.count > 0 &&
				       !entra_strlist_contains(&cfg->allowed_domains, domain)))
			return NULL;
		return strdup(user);
	case ENTRA_MAP_LOCALPART:
		/* With several allowed domains, the first is the primary one. */
		if (strchr(user, '@') != NULL || cfg->allowed_domains.count == 0)
			return NULL;
		len = strlen(user) + 1 + strlen(cfg->allowed_domains.items[0]) + 1;
		upn = malloc(len);
		if (upn != NULL)
			snprintf(upn, len, "%s@%s", user, cfg->allowed_domains.items[0]);
		return upn;
	case ENTRA_MAP_FILE:
		if (map_load(cfg, &map) < 0)
			return NULL;
		/* The first UPN entry for the name; else its first object id. */
		for (size_t i = 0; i < map.count; i++) {
			if (strcmp(map.entries[i].local, user) != 0)
				continue;
			if (upn_domain(map.entries[i].target) != NULL) {
				found = map.entries[i].target;
				break;
			}
			if (found == NULL)
				found = map.entries[i].target;
		}
		upn = found ? strdup(found) : NULL;
		map_free(&map);
		return upn;
	}
	return NULL;
}

bool entra_identity_matches_account(const struct entra_config *cfg,
				    const struct entra_identity *id, const char *user,
				    char *reason, size_t reason_len)
{
	const char *domain, *at;
	struct map map;
	bool named = false;
	int rc;

	if (cfg == NULL || id == NULL || id->username == NULL || user == NULL ||
	    !entra_name_is_valid(user)) {
		entra_set_reason(reason, reason_len, "no identity or invalid account name");
		return false;
	}
	switch (cfg->user_mapping) {
	case ENTRA_MAP_UPN:
		if (!entra_streq_nocase(id->username, user)) {
			entra_set_reason(reason, reason_len, "token is for %s, not for account %s",
				   id->username, user);
			return false;
		}
		domain = upn_domain(user);
		if (domain == NULL) {
			entra_set_reason(reason, reason_len, "account %s is not a UPN (user@domain)",
				   user);
			return false;
		}
		if (cfg->allowed_domains.count > 0 &&
		    !entra_strlist_contains(&cfg->allowed_domains, domain)) {
			entra_set_reason(reason, reason_len, "domain %s of %s is not in allowed_domains",
				   domain, id->username);
			return false;
		}
		entra_set_reason(reason, reason_len, "token is for %s", id->username);
		return true;
	case ENTRA_MAP_LOCALPART:
		domain = upn_domain(id->username);
		at = domain ? domain - 1 : NULL;
		if (domain == NULL || (size_t)(at - id->username) != strlen(user) ||
		    strncasecmp(id->username, user, strlen(user)) != 0) {
			entra_set_reason(reason, reason_len, "token is for %s, not for account %s",
				   id->username, user);
			return false;
		}
		if (!entra_strlist_contains(&cfg->allowed_domains, domain)) {
			entra_set_reason(reason, reason_len,
				   "token is for %s, whose domain is not in allowed_domains",
				   id->username);
			return false;
		}
		entra_set_reason(reason, reason_len, "token is for %s", id->username);
		return true;
	case ENTRA_MAP_FILE:
		rc = map_load(cfg, &map);
		if (rc < 0) {
			entra_set_reason(reason, reason_len, "map file %s unusable: %s",
				   cfg->map_file ? cfg->map_file : "(unset)",
				   rc == -EINVAL ? "malformed line" : strerror(-rc));
			return false;
		}
		for (size_t i = 0; i < map.count; i++) {
			const char *t = map.entries[i].target;

			if (strcmp(map.entries[i].local, user) != 0)
				continue;
			named = true;
			if (entra_is_guid(t) ? entra_streq_nocase(t, id->object_id)
					     : entra_streq_nocase(t, id->username)) {
				entra_set_reason(reason, reason_len, "map file maps %s to %s", user, t);
				map_free(&map);
				return true;
			}
		}
		map_free(&map);
		if (named)
			entra_set_reason(reason, reason_len,
				   "token is for %s (object id %s), which the map file does not "
				   "map to account %s",
				   id->username, id->object_id ? id->object_id : "?", user);
		else
			entra_set_reason(reason, reason_len, "account %s is not in the map file", user);
		return false;
	}
	entra_set_reason(reason, reason_len, "unknown user_mapping");
	return false;
}

/* The first entry of list found among values, or NULL. */
static const char *first_common(const struct entra_strlist *list,
				const struct entra_strlist *values)
{
	for (size_t i = 0; i < values->count; i++)
		if (entra_strlist_contains(list, values->items[i]))
			return values->items[i];
	return NULL;
}

void entra_authorize(const struct entra_config *cfg, const struct entra_identity *id,
		     struct entra_decision *d)
{
	const char *hit;
	bool any_list;
	bool admin_overage = false;
	char admin_why[96] = "";

	if (d == NULL)
		return;
	d->allowed = false;
	d->admin = false;
	if (cfg == NULL || id == NULL || id->username == NULL || id->object_id == NULL) {
		snprintf(d->reason, sizeof(d->reason), "denied: no identity");
		return;
	}

	/* Admin first: admin lists also allow login. */
	if ((hit = first_common(&cfg->admin_roles, &id->roles)) != NULL) {
		d->admin = true;
		snprintf(admin_why, sizeof(admin_why), "role '%s' in admin_roles", hit);
	} else if ((hit = first_common(&cfg->admin_groups, &id->groups)) != NULL) {
		d->admin = true;
		snprintf(admin_why, sizeof(admin_why), "group %s in admin_groups", hit);
	} else if (cfg->admin_groups.count > 0 && id->groups_overage) {
		admin_overage = true;
	}

	/* Admin lists grant sudo; they do not turn on allow-listing. */
	any_list = cfg->allow_users.count + cfg->allow_groups.count + cfg->allow_roles.count > 0;

	if (entra_strlist_contains(&cfg->allow_users, id->username)) {
		d->allowed = true;
		snprintf(d->reason, sizeof(d->reason), "allowed: %s in allow_users", id->username);
	} else if (entra_strlist_contains(&cfg->allow_users, id->object_id)) {
		d->allowed = true;
		snprintf(d->reason, sizeof(d->reason), "allowed: object id %s in allow_users",
			 id->object_id);
	} else if ((hit = first_common(&cfg->allow_roles, &id->roles)) != NULL) {
		d->allowed = true;
		snprintf(d->reason, sizeof(d->reason), "allowed: role '%s' in allow_roles", hit);
	} else if ((hit = first_common(&cfg->allow_groups, &id->groups)) != NULL) {
		d->allowed = true;
		snprintf(d->reason, sizeof(d->reason), "allowed: group %s in allow_groups", hit);
	} else if (d->admin) {
		d->allowed = true;
		snprintf(d->reason, sizeof(d->reason), "allowed: %s", admin_why);
	} else if (!any_list) {
		d->allowed = true;
		snprintf(d->reason, sizeof(d->reason),
			 "allowed: no allow list configured, every user of the tenant may log in");
	} else if (id->groups_overage && cfg->allow_groups.count > 0) {
		snprintf(d->reason, sizeof(d->reason),
			 "denied: groups overage: token lists no groups for %s; configure app "
			 "roles (allow_roles) or assign groups to the application",
			 id->username);
	} else {
		char lists[64] = "";

		snprintf(lists, sizeof(lists), "%s%s%s",
			 cfg->allow_users.count ? " allow_users" : "",
			 cfg->allow_roles.count ? " allow_roles" : "",
			 cfg->allow_groups.count ? " allow_groups" : "");
		snprintf(d->reason, sizeof(d->reason),
			 "denied: %s (object id %s, %zu roles, %zu groups) matches none of%s",
			 id->username, id->object_id, id->roles.count, id->groups.count, lists);
	}

	if (d->allowed && d->admin) {
		size_t n = strlen(d->reason);

		if (strstr(d->reason, admin_why) == NULL)
			snprintf(d->reason + n, sizeof(d->reason) - n, "; admin: %s", admin_why);
	} else if (d->allowed && admin_overage) {
		size_t n = strlen(d->reason);

		snprintf(d->reason + n, sizeof(d->reason) - n,
			 "; not admin: groups overage, token lists no groups");
	}
	if (!d->allowed)
		d->admin = false;
}
