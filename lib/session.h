/* The session contract (DESIGN.md): a per-session directory under run_dir
 * owned by the user, holding the workspace access token and config.json;
 * environment variables describing it; the refresh token in a root-only
 * store. Everything here runs as root in open/close_session. */
#ifndef ENTRA_SESSION_H
#define ENTRA_SESSION_H

#include <stdbool.h>
#include <sys/types.h>
#include <time.h>

#include "config.h"
#include "log.h"

#define ENTRA_SESSION_ID_LEN 32 /* hex characters of 128 random bits */

struct entra_session_request {
	const char *user;
	uid_t uid;
	gid_t gid;
	const char *identity_kind;   /* "user" or "managed-identity" */
	const char *tenant_id;       /* may be NULL */
	const char *object_id;       /* may be NULL */
	const char *upn;             /* may be NULL */
	const char *access_token;
	time_t expires_on;
	const char *resource;        /* what the access token is for */
	const char *refresh_token;   /* NULL: none to keep */
};

/* Environment variables to set, "NAME=value", NULL-terminated. */
struct entra_session_env {
	char **vars;
	size_t count;
};

/* A fresh session id (ENTRA_SESSION_ID_LEN hex chars + NUL). 0 or -errno. */
int entra_session_new_id(char id[ENTRA_SESSION_ID_LEN + 1]);

/* Create run_dir/<uid>/<id>/ (0700, the user's), write the token file
 * (0600) and, with a workspace, config.json; keep the refresh token in
 * run_dir/private/<id> (0600 root, directory 0700 root); fill env.
 * Values are checked (entra_value_is_safe) before they reach a file or
 * the environment. On failure nothing is left behind. 0 or -errno. */
int entra_session_open(const struct entra_config *cfg, const char *session_id,
		       const struct entra_session_request *req,
		       struct entra_session_env *env, const struct entra_log *log);

/* Remove run_dir/<uid>/<id>/ and the private store entry. 0 when both
 * are gone (also when they were never there). */
int entra_session_close(const struct entra_config *cfg, const char *session_id, uid_t uid,
			const struct entra_log *log);

bool entra_session_id_is_valid(const char *id);

void entra_session_env_free(struct entra_session_env *env);

#endif
