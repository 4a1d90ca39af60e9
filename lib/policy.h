/* Who the token says the person is, which local account that may open,
 * and whether the allow lists let them in. Every decision comes with a
 * reason for the log. */
#ifndef ENTRA_POLICY_H
#define ENTRA_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <json-c/json.h>

#include "config.h"

struct entra_identity {
	char *tenant_id;   /* tid (Entra) */
	char *object_id;   /* identity_claim (oid by default) */
	char *issuer;      /* iss */
	char *subject;     /* sub */
	char *username;    /* username_claim (preferred_username by default) */
	char *display_name;/* name, or NULL */
	struct entra_strlist groups;
	struct entra_strlist roles;
	bool groups_overage; /* _claim_names.groups present: groups not in the token */
};

/* From verified ID-token claims. Requires identity_claim (<= 128 bytes),
 * username_claim and sub as strings; every value kept must pass
 * entra_value_is_safe (no control characters, bounded length), and
 * username must pass entra_name_is_valid. tid and iss are optional; a tid
 * must be a GUID and, when the configured tenant is a GUID, equal it.
 * groups/roles must be arrays of strings. An unsafe or non-string "name"
 * is dropped (display_name NULL), not fatal. 0, -EINVAL with reason, or
 * -ENOMEM; on failure id holds nothing to free. */
int entra_identity_from_claims(struct json_object *claims, const struct entra_config *cfg,
			       struct entra_identity *id, char *reason, size_t reason_len);
void entra_identity_free(struct entra_identity *id);

enum entra_account_kind {
	ENTRA_ACCOUNT_NOT_OURS, /* root, local_users, invalid names, unmapped names: leave to the stack */
	ENTRA_ACCOUNT_ENTRA,    /* a name an Entra user logs in as */
	ENTRA_ACCOUNT_SERVICE,  /* a local service account that gets a managed-identity token */
};

/* Classify a PAM user name before any network I/O: "NOT_OURS" must never
 * start a device flow. In order: invalid names, root/uid 0 and
 * local_users (case-insensitive) are NOT_OURS; service accounts are
 * those named exactly in service_accounts, members of a "@group" entry
 * (user_groups: the NULL-terminated group names of the user, looked up by
 * the caller; may be NULL), or with a uid in service_uids; an existing
 * account (uid known) outside uid_min..uid_max is NOT_OURS; then the
 * mapping decides (file mode reads the map file). uid is -1 or
 * (uid_t)-1 when unknown. */
enum entra_account_kind entra_classify_account(const struct entra_config *cfg, const char *user,
					       long uid, const char *const *user_groups);

/* The UPN expected for a local name under the mapping, e.g. "alice" ->
 * "alice@contoso.com" (localpart: with the first allowed domain). For the
 * file mapping, the map file is read: the first UPN entry of the name,
 * else its first object id. NULL when the name maps to no one. Free it. */
char *entra_expected_upn(const struct entra_config *cfg, const char *user);

/* Does the identity own this local account under the configured mapping?
 * UPN comparison is case-insensitive; the file mapping may name an object
 * id instead of a UPN. */
bool entra_identity_matches_account(const struct entra_config *cfg,
				    const struct entra_identity *id, const char *user,
				    char *reason, size_t reason_len);

struct entra_decision {
	bool allowed;
	bool admin;        /* admin_groups / admin_roles matched */
	char reason[256];  /* "allowed: role 'Login' in allow_roles", "denied: groups overage ..." */
};

/* Allow lists: allow_users (UPN or object id), allow_groups (group ids in
 * the groups claim; overage denies with a reason when groups are
 * required), allow_roles. Any configured list that matches allows; none
 * configured allows every user of the tenant. */
void entra_authorize(const struct entra_config *cfg, const struct entra_identity *id,
		     struct entra_decision *decision);

#endif
