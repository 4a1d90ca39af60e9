#include "config.h"
#include "session.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>
#include <unistd.h>
#include <json-c/json.h>

#include "buf.h"
#include "fsutil.h"
#include "json.h"
#include "names.h"

#define TOKEN_FILE "token"
#define WORKSPACE_FILE "config.json"
#define PRIVATE_DIR "private"
#define MAX_ENV_VARS 16
#define MAX_VALUE 512
#define MAX_TOKEN (64 * 1024)

int entra_session_new_id(char id[ENTRA_SESSION_ID_LEN + 1])
{
	return entra_random_hex(id, ENTRA_SESSION_ID_LEN);
}

bool entra_session_id_is_valid(const char *id)
{
	if (id == NULL || strlen(id) != ENTRA_SESSION_ID_LEN)
		return false;
	for (size_t i = 0; i < ENTRA_SESSION_ID_LEN; i++)
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
			return false;
	return true;
}

void entra_session_env_free(struct entra_session_env *env)
{
	if (env->vars == NULL)
		return;
	for (size_t i = 0; i < env->count; i++)
		entra_free_secret(env->vars[i]); /* may hold ENTRA_ACCESS_TOKEN */
	free(env->vars);
	env->vars = NULL;
	env->count = 0;
}

static int env_add(struct entra_session_env *env, const char *name, const char *value)
{
	size_t nlen, vlen;
	char *line;

	if (value == NULL)
		return 0;
	if (env->count + 1 >= MAX_ENV_VARS)
		return -E2BIG;
	/* One allocation of the exact size (no printf, no regrowth leaving
	 * copies of a token behind); values were checked by the caller. */
	nlen = strlen(name);
	vlen = strnlen(value, MAX_TOKEN + 1);
	if (vlen > MAX_TOKEN)
		return -E2BIG;
	line = malloc(nlen + vlen + 2);
	if (line == NULL)
		return -ENOMEM;
	memcpy(line, name, nlen);
	line[nlen] = '=';
	memcpy(line + nlen + 1, value, vlen);
	line[nlen + 1 + vlen] = '\0';
	env->vars[env->count++] = line;
	env->vars[env->count] = NULL;
	return 0;
}

/* Open run_dir (root's, 0755) and the per-uid directory below it (root's,
 * 0711): the user may reach but not list or alter it, so no one can plant
 * a link where root later writes. */
static int open_uid_dir(const struct entra_config *cfg, uid_t uid, int *run_fd_out)
{
	char uid_name[32];
	int run_fd, uid_fd;

	run_fd = entra_dir_open_or_create(cfg->run_dir, 0755, 0, 0);
	if (run_fd < 0)
		return run_fd;
	snprintf(uid_name, sizeof(uid_name), "%lu", (unsigned long)uid);
	uid_fd = entra_dir_open_or_create_at(run_fd, uid_name, 0711, 0, 0);
	if (uid_fd < 0) {
		close(run_fd);
		return uid_fd;
	}
	*run_fd_out = run_fd;
	return uid_fd;
}

/* The per-uid directory in one system call once it exists: reached with
 * no symlink on the way and checked as above (root's, 0711), which is
 * what keeps others out of the session directories below it. Any error
 * sends the caller to open_uid_dir, which creates, checks run_dir and
 * says precisely what is wrong. */
static int open_uid_dir_fast(const struct entra_config *cfg, uid_t uid)
{
	char path[PATH_MAX];
	int n = snprintf(path, sizeof(path), "%s/%lu", cfg->run_dir, (unsigned long)uid);

	if (n < 0 || (size_t)n >= sizeof(path))
		return -ENAMETOOLONG;
	return entra_dir_open_nolinks(path, 0711, 0);
}

bool entra_session_keeps_private(const struct entra_session_request *req)
{
	return req->refresh_token != NULL || req->login_time != 0;
}

static int write_workspace_config(const struct entra_config *cfg, int dir_fd,
				  const struct entra_session_request *req)
{
	struct json_object *obj;
	const char *text;
	int rc;

	if (cfg->workspace_name == NULL)
		return 0;
	obj = json_object_new_object();
	if (obj == NULL)
		return -ENOMEM;
	json_object_object_add(obj, "subscription_id", json_object_new_string(cfg->subscription_id));
	json_object_object_add(obj, "resource_group", json_object_new_string(cfg->resource_group));
	json_object_object_add(obj, "workspace_name", json_object_new_string(cfg->workspace_name));
	text = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
	rc = entra_write_file_new(dir_fd, WORKSPACE_FILE, text, strlen(text), 0600, req->uid, req->gid);
	json_object_put(obj);
	return rc;
}

static int write_private_store(int run_fd, const char *session_id,
			       const struct entra_session_request *req)
{
	struct json_object *obj;
	const char *text;
	int priv_fd, rc;

	if (!entra_session_keeps_private(req))
		return 0;
	priv_fd = entra_dir_open_or_create_at(run_fd, PRIVATE_DIR, 0700, 0, 0);
	if (priv_fd < 0)
		return priv_fd;
	obj = json_object_new_object();
	if (obj == NULL) {
		close(priv_fd);
		return -ENOMEM;
	}
	json_object_object_add(obj, "user", json_object_new_string(req->user));
	json_object_object_add(obj, "uid", json_object_new_int64(req->uid));
	json_object_object_add(obj, "identity_kind", json_object_new_string(req->identity_kind));
	if (req->tenant_id)
		json_object_object_add(obj, "tenant_id", json_object_new_string(req->tenant_id));
	if (req->object_id)
		json_object_object_add(obj, "object_id", json_object_new_string(req->object_id));
	if (req->upn)
		json_object_object_add(obj, "upn", json_object_new_string(req->upn));
	json_object_object_add(obj, "resource", json_object_new_string(req->resource));
	if (req->refresh_token)
		json_object_object_add(obj, "refresh_token", json_object_new_string(req->refresh_token));
	if (req->login_time != 0) {
		/* The login, for sudo_reuse_window: the access token is less
		 * sensitive than the refresh token kept beside it. */
		json_object_object_add(obj, "login_time", json_object_new_int64(req->login_time));
		json_object_object_add(obj, "admin", json_object_new_boolean(req->admin));
		json_object_object_add(obj, "access_token", json_object_new_string(req->access_token));
	}
	text = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	/* private/ is root's 0700 and the session id is fresh: no one reads
	 * this entry before the session exists (see entra_write_file_new). */
	rc = entra_write_file_new(priv_fd, session_id, text, strlen(text), 0600, 0, 0);
	/* json-c's serialisation buffer holds the tokens: wipe it. */
	explicit_bzero((char *)text, strlen(text));
	json_object_put(obj);
	close(priv_fd);
	return rc;
}

static bool request_is_safe(const struct entra_session_request *req, const char **bad)
{
	struct { const char *name, *value; size_t max; bool required; } fields[] = {
		{ "identity kind", req->identity_kind, 32, true },
		{ "tenant id", req->tenant_id, 128, false },
		{ "object id", req->object_id, 128, false },
		{ "user principal name", req->upn, ENTRA_NAME_MAX, false },
		{ "resource", req->resource, MAX_VALUE, true },
		{ "access token", req->access_token, MAX_TOKEN, true },
		{ "refresh token", req->refresh_token, MAX_TOKEN, false },
	};

	if (!entra_name_is_valid(req->user)) {
		*bad = "user name";
		return false;
	}
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		if (fields[i].value == NULL && !fields[i].required)
			continue;
		if (fields[i].value == NULL || !entra_value_is_safe(fields[i].value, fields[i].max) ||
		    fields[i].value[0] == '\0') {
			*bad = fields[i].name;
			return false;
		}
	}
	return true;
}

static int fill_env(const struct entra_config *cfg, const char *session_id,
		    const struct entra_session_request *req, struct entra_session_env *env)
{
	char dir[4096], file[4096 + 16], expires[32];
	int rc = 0;

	snprintf(dir, sizeof(dir), "%s/%lu/%s", cfg->run_dir, (unsigned long)req->uid, session_id);
	snprintf(file, sizeof(file), "%s/%s", dir, TOKEN_FILE);
	snprintf(expires, sizeof(expires), "%lld", (long long)req->expires_on);
	env->vars = calloc(MAX_ENV_VARS, sizeof(char *));
	if (env->vars == NULL)
		return -ENOMEM;
	env->count = 0;
	if ((rc = env_add(env, "ENTRA_SESSION_ID", session_id)) < 0 ||
	    (rc = env_add(env, "ENTRA_SESSION_DIR", dir)) < 0 ||
	    (rc = env_add(env, "ENTRA_TOKEN_FILE", file)) < 0 ||
	    (rc = env_add(env, "ENTRA_TOKEN_EXPIRES_ON", expires)) < 0 ||
	    (rc = env_add(env, "ENTRA_TOKEN_RESOURCE", req->resource)) < 0 ||
	    (rc = env_add(env, "ENTRA_IDENTITY_KIND", req->identity_kind)) < 0 ||
	    (rc = env_add(env, "AZURE_TENANT_ID", req->tenant_id)) < 0 ||
	    (rc = env_add(env, "ENTRA_UPN", req->upn)) < 0 ||
	    (rc = env_add(env, "ENTRA_OBJECT_ID", req->object_id)) < 0)
		goto fail;
	if (cfg->workspace_name != NULL &&
	    ((rc = env_add(env, "AZUREML_ARM_SUBSCRIPTION", cfg->subscription_id)) < 0 ||
	     (rc = env_add(env, "AZUREML_ARM_RESOURCEGROUP", cfg->resource_group)) < 0 ||
	     (rc = env_add(env, "AZUREML_ARM_WORKSPACE_NAME", cfg->workspace_name)) < 0))
		goto fail;
	if (cfg->export_token && (rc = env_add(env, "ENTRA_ACCESS_TOKEN", req->access_token)) < 0)
		goto fail;
	return 0;
fail:
	entra_session_env_free(env);
	return rc;
}

int entra_session_open(const struct entra_config *cfg, const char *session_id,
		       const struct entra_session_request *req,
		       struct entra_session_env *env, const struct entra_log *log)
{
	const char *bad = NULL;
	int run_fd = -1, uid_fd = -1, sess_fd = -1, rc;

	env->vars = NULL;
	env->count = 0;
	if (!entra_session_id_is_valid(session_id))
		return -EINVAL;
	if (!request_is_safe(req, &bad)) {
		entra_log(log, LOG_ERR, "session for %s refused: unsafe %s (control characters, empty or too long)",
			  entra_name_is_valid(req->user) ? req->user : "(invalid name)", bad);
		return -EINVAL;
	}
	/* run_dir itself only for the private store. */
	uid_fd = entra_session_keeps_private(req) ? -1 : open_uid_dir_fast(cfg, req->uid);
	if (uid_fd < 0)
		uid_fd = open_uid_dir(cfg, req->uid, &run_fd);
	if (uid_fd < 0) {
		entra_log(log, LOG_ERR, "cannot open session directory %s/%lu: %s",
			  cfg->run_dir, (unsigned long)req->uid, strerror(-uid_fd));
		return uid_fd;
	}
	/* A fresh directory, root's and 0700 while it is filled: no one else
	 * can enter it, so its files are written in place (no temp file,
	 * rename or fsync: they do not outlive the session, which does not
	 * outlive a reboot), and it becomes the user's only once complete. */
	sess_fd = entra_dir_create_at(uid_fd, session_id, 0700);
	if (sess_fd < 0) {
		rc = sess_fd;
		entra_log(log, LOG_ERR, "cannot create session directory for %s: %s",
			  req->user, strerror(-rc));
		goto out;
	}
	rc = entra_write_file_new(sess_fd, TOKEN_FILE, req->access_token,
				  strlen(req->access_token), 0600, req->uid, req->gid);
	if (rc == 0)
		rc = write_workspace_config(cfg, sess_fd, req);
	if (rc == 0 && fchown(sess_fd, req->uid, req->gid) != 0)
		rc = -errno;
	if (rc == 0)
		rc = write_private_store(run_fd, session_id, req);
	if (rc == 0)
		rc = fill_env(cfg, session_id, req, env);
	if (rc < 0) {
		entra_log(log, LOG_ERR, "cannot write session files for %s: %s", req->user, strerror(-rc));
		entra_session_close(cfg, session_id, req->uid, entra_session_keeps_private(req), log);
		goto out;
	}
out:
	if (sess_fd >= 0)
		close(sess_fd);
	close(uid_fd);
	if (run_fd >= 0)
		close(run_fd);
	return rc;
}

/* Remove uid_fd/session_id: the files entra_session_open wrote, named
 * through the session directory (which only root can replace: uid_fd is
 * root's 0711), then the directory; only when that says it is not empty
 * (the user or the token service put something there) or is not a
 * directory, the whole tree is walked, without following links or
 * leaving anything behind. unlinkat never follows a link in its last
 * component (a symlink named "token" is removed itself) and refuses a
 * directory. -ENOENT when there is no such session. */
static int remove_session_dir(const struct entra_config *cfg, int uid_fd, const char *session_id)
{
	char path[ENTRA_SESSION_ID_LEN + sizeof("/" WORKSPACE_FILE)];

	snprintf(path, sizeof(path), "%s/%s", session_id, TOKEN_FILE);
	unlinkat(uid_fd, path, 0);
	if (cfg->workspace_name != NULL) {
		snprintf(path, sizeof(path), "%s/%s", session_id, WORKSPACE_FILE);
		unlinkat(uid_fd, path, 0);
	}
	if (unlinkat(uid_fd, session_id, AT_REMOVEDIR) == 0)
		return 0;
	if (errno == ENOENT)
		return -ENOENT;
	if (errno != ENOTEMPTY && errno != EEXIST && errno != ENOTDIR)
		return -errno;
	return entra_remove_tree_at(uid_fd, session_id);
}

int entra_session_close(const struct entra_config *cfg, const char *session_id, uid_t uid,
			bool private, const struct entra_log *log)
{
	char uid_name[32];
	int run_fd = -1, fd, rc, rc2;

	if (!entra_session_id_is_valid(session_id))
		return -EINVAL;
	/* The private entry is removed only together with a session directory
	 * of this uid: an id from another user's session removes nothing. */
	fd = open_uid_dir_fast(cfg, uid);
	if (fd < 0 && fd != -ENOENT) {
		run_fd = entra_dir_open_trusted(cfg->run_dir, 0);
		if (run_fd == -ENOENT)
			return 0;
		if (run_fd < 0)
			return run_fd;
		/* What is removed below it is named through it
		 * ("<id>/token"): it must be one only root can change. */
		snprintf(uid_name, sizeof(uid_name), "%lu", (unsigned long)uid);
		fd = entra_dir_open_existing_at(run_fd, uid_name, 0711, 0);
	}
	if (fd < 0) {
		if (run_fd >= 0)
			close(run_fd);
		return fd == -ENOENT ? 0 : fd;
	}
	rc = remove_session_dir(cfg, fd, session_id);
	close(fd);
	if (rc == -ENOENT) {
		if (run_fd >= 0)
			close(run_fd);
		return 0;
	}
	if (private && run_fd < 0)
		run_fd = entra_dir_open_trusted(cfg->run_dir, 0);
	if (private && run_fd >= 0) {
		fd = openat(run_fd, PRIVATE_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0) {
			/* A file, as write_private_store leaves it; anything
			 * else there is removed as a tree, links never
			 * followed. */
			if (unlinkat(fd, session_id, 0) == 0 || errno == ENOENT)
				rc2 = 0;
			else
				rc2 = entra_remove_tree_at(fd, session_id);
			if (rc == 0)
				rc = rc2;
			close(fd);
		} else if (errno != ENOENT && rc == 0) {
			rc = -errno;
		}
	} else if (private && run_fd != -ENOENT && rc == 0) {
		rc = run_fd;
	}
	if (run_fd >= 0)
		close(run_fd);
	if (rc < 0)
		entra_log(log, LOG_ERR, "cannot remove session %s of uid %lu: %s",
			  session_id, (unsigned long)uid, strerror(-rc));
	else
		entra_log(log, LOG_INFO, "session %s of uid %lu closed", session_id, (unsigned long)uid);
	return rc;
}

#define PENDING_PREFIX "pending-"
#define PENDING_MAX_FILE (256 * 1024)

static void json_add_string(struct json_object *obj, const char *key, const char *value)
{
	if (value != NULL)
		json_object_object_add(obj, key, json_object_new_string(value));
}

/* Remove pending entries older than ENTRA_PENDING_MAX_AGE: logins whose
 * session never opened. */
static void remove_expired_pending(int priv_fd, time_t now)
{
	struct dirent *entry;
	struct stat st;
	int fd = dup(priv_fd);
	DIR *dir;

	if (fd < 0)
		return;
	dir = fdopendir(fd);
	if (dir == NULL) {
		close(fd);
		return;
	}
	while ((entry = readdir(dir)) != NULL) {
		if (strncmp(entry->d_name, PENDING_PREFIX, strlen(PENDING_PREFIX)) != 0)
			continue;
		if (fstatat(priv_fd, entry->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    st.st_mtime + ENTRA_PENDING_MAX_AGE < now)
			unlinkat(priv_fd, entry->d_name, 0);
	}
	closedir(dir);
}

int entra_session_stash(const struct entra_config *cfg, const struct entra_session_request *req,
			const char *home, char handle[ENTRA_SESSION_ID_LEN + 1],
			const struct entra_log *log)
{
	struct json_object *obj;
	char name[sizeof(PENDING_PREFIX) + ENTRA_SESSION_ID_LEN];
	const char *text;
	int run_fd, priv_fd, rc;

	rc = entra_session_new_id(handle);
	if (rc < 0)
		return rc;
	run_fd = entra_dir_open_or_create(cfg->run_dir, 0755, 0, 0);
	if (run_fd < 0) {
		entra_log(log, LOG_ERR, "cannot keep the login of %s for its session: run directory %s: %s",
			  req->user, cfg->run_dir, strerror(-run_fd));
		return run_fd;
	}
	priv_fd = entra_dir_open_or_create_at(run_fd, PRIVATE_DIR, 0700, 0, 0);
	close(run_fd);
	if (priv_fd < 0) {
		entra_log(log, LOG_ERR, "cannot keep the login of %s for its session: %s/" PRIVATE_DIR ": %s",
			  req->user, cfg->run_dir, strerror(-priv_fd));
		return priv_fd;
	}
	remove_expired_pending(priv_fd, time(NULL));
	obj = json_object_new_object();
	if (obj == NULL) {
		close(priv_fd);
		return -ENOMEM;
	}
	json_add_string(obj, "user", req->user);
	json_object_object_add(obj, "uid", json_object_new_int64(req->uid));
	json_object_object_add(obj, "gid", json_object_new_int64(req->gid));
	json_add_string(obj, "identity_kind", req->identity_kind);
	json_add_string(obj, "tenant_id", req->tenant_id);
	json_add_string(obj, "object_id", req->object_id);
	json_add_string(obj, "upn", req->upn);
	json_add_string(obj, "access_token", req->access_token);
	json_object_object_add(obj, "expires_on", json_object_new_int64(req->expires_on));
	json_add_string(obj, "resource", req->resource);
	json_add_string(obj, "refresh_token", req->refresh_token);
	json_add_string(obj, "home", home);
	json_object_object_add(obj, "login_time", json_object_new_int64(req->login_time));
	json_object_object_add(obj, "admin", json_object_new_boolean(req->admin));
	json_object_object_add(obj, "created", json_object_new_int64(time(NULL)));
	text = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	snprintf(name, sizeof(name), PENDING_PREFIX "%s", handle);
	/* private/ is root's 0700 and the handle fresh: the entry is read
	 * only by whoever gets the handle, after this returns. */
	rc = text ? entra_write_file_new(priv_fd, name, text, strlen(text), 0600, 0, 0) : -ENOMEM;
	if (text != NULL)
		explicit_bzero((char *)text, strlen(text));
	json_object_put(obj);
	close(priv_fd);
	if (rc < 0)
		entra_log(log, LOG_ERR, "cannot keep the login of %s for its session: %s", req->user, strerror(-rc));
	return rc;
}

void entra_pending_login_free(struct entra_pending_login *p)
{
	free(p->user);
	free(p->identity_kind);
	free(p->tenant_id);
	free(p->object_id);
	free(p->upn);
	entra_free_secret(p->access_token);
	free(p->resource);
	entra_free_secret(p->refresh_token);
	free(p->home);
	memset(p, 0, sizeof(*p));
}

static char *dup_member(struct json_object *obj, const char *key)
{
	const char *v = entra_json_get_string(obj, key);
	return v ? strdup(v) : NULL;
}

/* A boolean member that is present and true; anything else is false. */
static bool get_true(struct json_object *obj, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(obj, key, &v) && json_object_is_type(v, json_type_boolean) &&
	       json_object_get_boolean(v);
}

/* Wipe the parsed copies of the tokens, then put obj. */
static void put_wiped(struct json_object *obj)
{
	static const char *const secrets[] = { "access_token", "refresh_token" };

	if (obj == NULL)
		return;
	for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
		entra_json_wipe_member(obj, secrets[i]);
	json_object_put(obj);
}

#define PRIVATE_MAX_FILE (256 * 1024)

void entra_session_record_free(struct entra_session_record *r)
{
	free(r->user);
	free(r->tenant_id);
	free(r->object_id);
	free(r->upn);
	entra_free_secret(r->access_token);
	memset(r, 0, sizeof(*r));
}

int entra_session_read_record(const struct entra_config *cfg, const char *session_id,
			      struct entra_session_record *out)
{
	struct entra_buf text;
	struct json_object *obj;
	int64_t uid, login_time;
	int run_fd, priv_fd, rc;

	memset(out, 0, sizeof(*out));
	if (!entra_session_id_is_valid(session_id))
		return -EINVAL;
	run_fd = entra_dir_open_trusted(cfg->run_dir, 0);
	if (run_fd < 0)
		return run_fd;
	priv_fd = openat(run_fd, PRIVATE_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (priv_fd < 0) {
		rc = -errno;
		close(run_fd);
		return rc;
	}
	close(run_fd);
	rc = entra_read_file_trusted(priv_fd, session_id, PRIVATE_MAX_FILE, 0, &text);
	close(priv_fd);
	if (rc < 0)
		return rc;
	obj = entra_json_parse_object(text.data, text.len);
	entra_buf_free(&text);
	if (obj == NULL || entra_json_get_int64(obj, "uid", &uid) < 0 || uid < 0 ||
	    uid > (int64_t)UINT32_MAX) {
		put_wiped(obj);
		return -EBADMSG;
	}
	if (entra_json_get_int64(obj, "login_time", &login_time) < 0 || login_time <= 0) {
		put_wiped(obj);
		return -ENOENT; /* a session without a person's login to reuse */
	}
	out->uid = (uid_t)uid;
	out->login_time = (time_t)login_time;
	out->admin = get_true(obj, "admin");
	out->user = dup_member(obj, "user");
	out->tenant_id = dup_member(obj, "tenant_id");
	out->object_id = dup_member(obj, "object_id");
	out->upn = dup_member(obj, "upn");
	out->access_token = dup_member(obj, "access_token");
	put_wiped(obj);
	if (out->user == NULL || out->object_id == NULL || out->upn == NULL ||
	    out->access_token == NULL) {
		entra_session_record_free(out);
		return -EBADMSG;
	}
	return 0;
}

int entra_session_claim(const struct entra_config *cfg, const char *handle, const char *user,
			struct entra_pending_login *out, const struct entra_log *log)
{
	char name[sizeof(PENDING_PREFIX) + ENTRA_SESSION_ID_LEN];
	struct entra_buf text;
	struct json_object *obj = NULL;
	int64_t uid, gid, expires_on, created, login_time = 0;
	int run_fd, priv_fd, rc;

	memset(out, 0, sizeof(*out));
	if (!entra_session_id_is_valid(handle))
		return -ENOENT;
	run_fd = entra_dir_open_trusted(cfg->run_dir, 0);
	if (run_fd < 0)
		return run_fd == -ENOENT ? -ENOENT : run_fd;
	priv_fd = openat(run_fd, PRIVATE_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	close(run_fd);
	if (priv_fd < 0)
		return -ENOENT;
	snprintf(name, sizeof(name), PENDING_PREFIX "%s", handle);
	rc = entra_read_file_trusted(priv_fd, name, PENDING_MAX_FILE, 0, &text);
	unlinkat(priv_fd, name, 0); /* single use, whatever follows */
	close(priv_fd);
	if (rc < 0)
		return rc == -ENOENT ? -ENOENT : -EBADMSG;
	obj = entra_json_parse_object(text.data, text.len);
	entra_buf_free(&text);
	if (obj == NULL || entra_json_get_int64(obj, "uid", &uid) < 0 ||
	    entra_json_get_int64(obj, "gid", &gid) < 0 ||
	    entra_json_get_int64(obj, "expires_on", &expires_on) < 0 ||
	    entra_json_get_int64(obj, "created", &created) < 0) {
		rc = -EBADMSG;
		goto out;
	}
	out->user = dup_member(obj, "user");
	if (out->user == NULL || strcmp(out->user, user) != 0) {
		entra_log(log, LOG_INFO, "pending login %s is not for %s", handle, user);
		rc = -EPERM;
		goto out;
	}
	if (created > (int64_t)time(NULL) || created + ENTRA_PENDING_MAX_AGE < (int64_t)time(NULL)) {
		rc = -ETIMEDOUT;
		goto out;
	}
	if (entra_json_get_int64(obj, "login_time", &login_time) < 0)
		login_time = 0;
	out->identity_kind = dup_member(obj, "identity_kind");
	out->tenant_id = dup_member(obj, "tenant_id");
	out->object_id = dup_member(obj, "object_id");
	out->upn = dup_member(obj, "upn");
	out->access_token = dup_member(obj, "access_token");
	out->resource = dup_member(obj, "resource");
	out->refresh_token = dup_member(obj, "refresh_token");
	out->home = dup_member(obj, "home");
	if (out->identity_kind == NULL || out->access_token == NULL || out->resource == NULL) {
		rc = -EBADMSG;
		goto out;
	}
	out->req = (struct entra_session_request){
		.user = out->user,
		.uid = (uid_t)uid,
		.gid = (gid_t)gid,
		.identity_kind = out->identity_kind,
		.tenant_id = out->tenant_id,
		.object_id = out->object_id,
		.upn = out->upn,
		.access_token = out->access_token,
		.expires_on = (time_t)expires_on,
		.resource = out->resource,
		.refresh_token = out->refresh_token,
		.login_time = (time_t)login_time,
		.admin = get_true(obj, "admin"),
	};
	rc = 0;
out:
	put_wiped(obj); /* the parsed object holds copies of the tokens */
	if (rc < 0)
		entra_pending_login_free(out);
	return rc;
}
