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
	/* A person's login, for sudo_reuse_window: when it was verified and
	 * whether it made an admin. login_time 0: nothing to reuse. */
	time_t login_time;
	bool admin;
};

/* Environment variables to set, "NAME=value", NULL-terminated. */
struct entra_session_env {
	char **vars;
	size_t count;
};

/* A fresh session id (ENTRA_SESSION_ID_LEN hex chars + NUL). 0 or -errno. */
int entra_session_new_id(char id[ENTRA_SESSION_ID_LEN + 1]);

/* Create run_dir/<uid>/<id>/ (0700, the user's), write the token file
 * (0600) and, with a workspace, config.json; keep the refresh token and,
 * with a login_time, the login (identity, access token, admin) in
 * run_dir/private/<id> (0600 root, directory 0700 root); fill env.
 * Values are checked (entra_value_is_safe) before they reach a file or
 * the environment. On failure nothing is left behind. 0 or -errno. */
int entra_session_open(const struct entra_config *cfg, const char *session_id,
		       const struct entra_session_request *req,
		       struct entra_session_env *env, const struct entra_log *log);

/* Whether entra_session_open keeps a private store entry for req. */
bool entra_session_keeps_private(const struct entra_session_request *req);

/* Remove run_dir/<uid>/<id>/ and, unless the caller knows there is none
 * (private false: see entra_session_keeps_private), the private store
 * entry. 0 when both are gone (also when they were never there). */
int entra_session_close(const struct entra_config *cfg, const char *session_id, uid_t uid,
			bool private, const struct entra_log *log);

bool entra_session_id_is_valid(const char *id);

/* From the account phase to open_session. sshd runs authentication and
 * the account phase in a child process and opens the session in its
 * parent, so nothing in memory crosses: the login is kept in
 * run_dir/private/pending-<handle> (0600 root) and only the random handle
 * travels, in the PAM environment. */
#define ENTRA_PENDING_MAX_AGE 300 /* seconds from account phase to session */

struct entra_pending_login {
	struct entra_session_request req; /* points into the strings below */
	char *user, *identity_kind, *tenant_id, *object_id, *upn;
	char *access_token, *resource, *refresh_token, *home;
};

/* Keep req (and the home directory) under a fresh handle. Expired
 * entries of earlier logins are removed on the way. 0 or -errno. */
int entra_session_stash(const struct entra_config *cfg, const struct entra_session_request *req,
			const char *home, char handle[ENTRA_SESSION_ID_LEN + 1],
			const struct entra_log *log);

/* Take the login kept under handle: it must be for user and younger than
 * ENTRA_PENDING_MAX_AGE. The entry is removed whatever the outcome.
 * 0, -ENOENT (none), -EPERM (another user's), -ETIMEDOUT (too old),
 * -EBADMSG (unreadable). */
int entra_session_claim(const struct entra_config *cfg, const char *handle, const char *user,
			struct entra_pending_login *out, const struct entra_log *log);

/* A session's login as kept in its private store entry, for sudo to reuse
 * (sudo_reuse_window). Only entries written with a login_time have one. */
struct entra_session_record {
	char *user, *tenant_id, *object_id, *upn, *access_token;
	uid_t uid;
	time_t login_time;
	bool admin;
};

/* Read run_dir/private/<session_id> (root's, 0600, no symlinks).
 * 0, -EINVAL (bad id), -ENOENT (no such session, or no login kept),
 * -EBADMSG, or another -errno. */
int entra_session_read_record(const struct entra_config *cfg, const char *session_id,
			      struct entra_session_record *out);
void entra_session_record_free(struct entra_session_record *record);

/* Wipes the tokens, then frees. */
void entra_pending_login_free(struct entra_pending_login *pending);

void entra_session_env_free(struct entra_session_env *env);

#endif
