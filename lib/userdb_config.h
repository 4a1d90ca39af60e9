/* The rules the user database embeds for NSS, taken from the config, so
 * that the PAM module and entractl write identical rules. */
#ifndef ENTRA_USERDB_CONFIG_H
#define ENTRA_USERDB_CONFIG_H

#include <stddef.h>

#include "config.h"
#include "userdb.h"

/* Fill rules from cfg; the pointers in rules point into cfg and live as
 * long as it does. user_mapping=file gives ENTRA_USERDB_MAP_NONE: the map
 * file is not read by NSS, so only recorded (or pre-provisioned) names
 * resolve. 0, or -EINVAL with a reason (values out of range for a uid,
 * rules entra_userdb_rules_check refuses). */
int entra_userdb_rules_from_config(const struct entra_config *cfg, struct entra_userdb_rules *rules,
				   char *reason, size_t reasonlen);

#endif
