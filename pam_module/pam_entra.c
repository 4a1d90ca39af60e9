/* pam_entra.so: thin glue from the pam_sm_* entry points to lib/.
 * Every decision lives in lib/; this file translates results to PAM
 * codes, talks to the conversation, and carries state between the calls
 * of one PAM transaction through pam_set_data. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PAM_SM_AUTH
#define PAM_SM_ACCOUNT
#define PAM_SM_SESSION
#define PAM_SM_PASSWORD
#include <security/pam_appl.h>
#include <security/pam_ext.h>
#include <security/pam_modules.h>

#include "buf.h"
#include "config.h"
#include "fsutil.h"
#include "log.h"
#include "http.h"
#include "login.h"
#include "msi.h"
#include "names.h"
#include "policy.h"
#include "session.h"
#include "tokend.h"
#include "userdb.h"
#include "userdb_config.h"

#define DATA_LOGIN "pam_entra_login"
#define DATA_SESSION "pam_entra_session"
#define DATA_CONFIG "pam_entra_config"
#define ENV_PENDING "PAM_ENTRA_PENDING" /* handle of the login kept for open_session */
#define EXPORT __attribute__((visibility("default")))

/* A parsed configuration with the module arguments it was parsed for,
 * shared by reference: by the entry points of one PAM handle (sshd runs
 * auth, account and session on one handle) and, in a long-lived process
 * (cron, a service manager) where the module stays loaded (it is linked
 * -z nodelete), by later handles while the file is unchanged. */
struct shared_config {
	struct entra_config *cfg;
	unsigned long refs; /* under config_lock */
	int argc;
	char **argv;
	char *path;
	struct stat id; /* fstat of the open file that was then read */
};

struct module_state {
	struct entra_config *cfg;
	struct shared_config *ref; /* not kept with the handle: free_state drops it */
	struct entra_log log;
};

/* The last configuration parsed in this process: one entry (a host runs
 * one stack line or a few). */
static pthread_mutex_t config_lock = PTHREAD_MUTEX_INITIALIZER;
static struct shared_config *config_cache;

/* A multithreaded host that forks while another thread holds config_lock
 * would leave the child's copy locked forever: fork waits for it (the
 * library stays loaded, -z nodelete, so these handlers stay valid). */
static void config_lock_prepare(void)
{
	pthread_mutex_lock(&config_lock);
}

static void config_lock_release(void)
{
	pthread_mutex_unlock(&config_lock);
}

__attribute__((constructor)) static void config_lock_at_fork(void)
{
	(void)pthread_atfork(config_lock_prepare, config_lock_release, config_lock_release);
}

/* A configuration file changed within this many seconds is read at every
 * call (entra_stat_settled). A symlink is never opened (O_NOFOLLOW), nor
 * matched (its identity is its own, statx without following). */
#define CONFIG_SETTLE_SECONDS 2

static void shared_config_free(struct shared_config *sc)
{
	if (sc == NULL)
		return;
	entra_config_free(sc->cfg);
	for (int i = 0; i < sc->argc; i++)
		free(sc->argv[i]);
	free(sc->argv);
	free(sc->path);
	free(sc);
}

static void shared_config_put(struct shared_config *sc)
{
	bool last;

	if (sc == NULL)
		return;
	pthread_mutex_lock(&config_lock);
	last = --sc->refs == 0;
	pthread_mutex_unlock(&config_lock);
	if (last)
		shared_config_free(sc);
}

/* What authenticate learned, for acct_mgmt and open_session. */
struct login_data {
	char user[ENTRA_NAME_MAX + 1];
	struct entra_login_result login;
	struct entra_decision decision;
	struct entra_userdb_entry account; /* as recorded in the user database */
	time_t login_time;  /* of a device-code login; 0 for a reused one */
	/* sudo_reuse_window: the login of the caller's session was reused.
	 * decision then holds that login's decision: the allow lists and RBAC
	 * cannot be evaluated again without the ID token (groups, roles) and
	 * a new ARM call, and the reuse window is that decision's lifetime. */
	bool reused;
};

struct session_data {
	char id[ENTRA_SESSION_ID_LEN + 1];
	uid_t uid;
	/* false when registration found no token service (nothing was
	 * sent): close_session has nothing to tell it. */
	bool tokend_may_know;
	bool private; /* a private store entry was kept */
};

static void emit_syslog(void *host, int priority, const char *line)
{
	pam_syslog((pam_handle_t *)host, priority, "%s", line);
}

static void cleanup_handle_config(pam_handle_t *pamh, void *data, int error_status)
{
	(void)pamh;
	(void)error_status;
	shared_config_put(data);
}

static bool same_args(const struct shared_config *sc, int argc, const char **argv)
{
	if (sc->argc != argc)
		return false;
	for (int i = 0; i < argc; i++)
		if (strcmp(sc->argv[i], argv[i]) != 0)
			return false;
	return true;
}

/* A new shared configuration owning cfg (one reference), or NULL. */
static struct shared_config *shared_config_new(struct entra_config *cfg, const char *path, int argc,
					       const char **argv, const struct stat *id)
{
	struct shared_config *sc = calloc(1, sizeof(*sc));

	if (sc == NULL)
		return NULL;
	sc->refs = 1;
	sc->path = strdup(path);
	sc->argv = calloc((size_t)argc + 1, sizeof(char *));
	if (sc->path == NULL || sc->argv == NULL)
		goto fail;
	for (sc->argc = 0; sc->argc < argc; sc->argc++) {
		sc->argv[sc->argc] = strdup(argv[sc->argc]);
		if (sc->argv[sc->argc] == NULL)
			goto fail;
	}
	if (id != NULL)
		sc->id = *id;
	sc->cfg = cfg;
	return sc;
fail:
	shared_config_free(sc);
	return NULL;
}

/* Keep the call's reference with the handle for the next entry point;
 * on failure it stays the call's. Replacing an entry runs its cleanup: a
 * configuration of other arguments kept before is released here, and no
 * state of an earlier call points at it any more. */
static void keep_config(pam_handle_t *pamh, struct module_state *st)
{
	if (pam_set_data(pamh, DATA_CONFIG, st->ref, cleanup_handle_config) == PAM_SUCCESS)
		st->ref = NULL;
}

/* The process's configuration for these arguments when the file is the
 * one it was read from; a new reference, or NULL. */
static struct shared_config *cached_config(const char *path, int argc, const char **argv,
					   const struct stat *id)
{
	struct shared_config *sc = NULL;

	pthread_mutex_lock(&config_lock);
	if (config_cache != NULL && strcmp(config_cache->path, path) == 0 &&
	    same_args(config_cache, argc, argv) && entra_stat_unchanged(&config_cache->id, id)) {
		sc = config_cache;
		sc->refs++;
	}
	pthread_mutex_unlock(&config_lock);
	return sc;
}

static void cache_config(struct shared_config *sc)
{
	struct shared_config *old;

	pthread_mutex_lock(&config_lock);
	old = config_cache;
	config_cache = sc;
	sc->refs++;
	pthread_mutex_unlock(&config_lock);
	shared_config_put(old);
}

/* Config from conf= (or the default path), then module arguments through
 * the same setter, once per handle and arguments, and once per process
 * while the file stays the same. Any error is logged and fails the
 * call. */
static int load_state(pam_handle_t *pamh, int argc, const char **argv, struct module_state *st)
{
	const char *path = ENTRA_DEFAULT_CONFIG;
	struct shared_config *hc = NULL;
	struct entra_config *cfg;
	struct stat id;
	char err[512];
	int fd;

	st->log.emit = emit_syslog;
	st->log.host = pamh;
	st->log.debug = false;
	st->ref = NULL;
	st->cfg = NULL;
	if (pam_get_data(pamh, DATA_CONFIG, (const void **)&hc) == PAM_SUCCESS && hc != NULL &&
	    same_args(hc, argc, argv)) {
		st->cfg = hc->cfg;
		st->log.debug = st->cfg->debug;
		return PAM_SUCCESS;
	}
	for (int i = 0; i < argc; i++)
		if (strncmp(argv[i], "conf=", 5) == 0)
			path = argv[i] + 5;
	/* An unchanged file is recognised without opening it (statx asks an
	 * NFS server as an open would); anything else is opened, and the
	 * identity kept with the parse is that of the open file. */
	if (entra_config_identity(path, &id) == 0 && S_ISREG(id.st_mode)) {
		st->ref = cached_config(path, argc, argv, &id);
		if (st->ref != NULL)
			goto done;
	}
	fd = entra_config_open(path, &id);
	cfg = entra_config_new();
	if (cfg == NULL) {
		if (fd >= 0)
			close(fd);
		return PAM_BUF_ERR;
	}
	if ((fd >= 0 ? entra_config_load_fd(cfg, fd, &id, path, true, err, sizeof(err))
		     : entra_config_load(cfg, path, true, err, sizeof(err))) < 0) {
		if (fd >= 0)
			close(fd);
		goto bad;
	}
	if (fd >= 0)
		close(fd);
	for (int i = 0; i < argc; i++) {
		if (strncmp(argv[i], "conf=", 5) == 0)
			continue;
		if (entra_config_apply_arg(cfg, argv[i], err, sizeof(err)) < 0)
			goto bad;
	}
	if (entra_config_validate(cfg, err, sizeof(err)) < 0)
		goto bad;
	st->ref = shared_config_new(cfg, path, argc, argv, fd >= 0 ? &id : NULL);
	if (st->ref == NULL) {
		entra_config_free(cfg);
		return PAM_BUF_ERR;
	}
	if (fd >= 0 && entra_stat_settled(&id, CONFIG_SETTLE_SECONDS))
		cache_config(st->ref);
done:
	st->cfg = st->ref->cfg;
	st->log.debug = st->cfg->debug;
	keep_config(pamh, st);
	return PAM_SUCCESS;
bad:
	pam_syslog(pamh, LOG_ERR, "configuration %s: %s", path, err);
	entra_config_free(cfg);
	return PAM_SERVICE_ERR;
}

static void free_state(struct module_state *st)
{
	shared_config_put(st->ref);
	st->ref = NULL;
	st->cfg = NULL;
}

static void cleanup_login_data(pam_handle_t *pamh, void *data, int error_status)
{
	struct login_data *ld = data;

	(void)pamh;
	(void)error_status;
	entra_login_result_free(&ld->login);
	entra_userdb_entry_free(&ld->account);
	explicit_bzero(ld, sizeof(*ld));
	free(ld);
}

static void cleanup_free(pam_handle_t *pamh, void *data, int error_status)
{
	(void)pamh;
	(void)error_status;
	free(data);
}

/* The device flow's prompt hook: one echo-off prompt, wait for Enter. */
static int conversation_prompt(void *host, const char *text)
{
	char *answer = NULL;
	int rc;

	rc = pam_prompt((pam_handle_t *)host, PAM_PROMPT_ECHO_OFF, &answer, "%s", text);
	if (answer != NULL)
		entra_free_secret(answer);
	else if (rc == PAM_SUCCESS)
		rc = PAM_CONV_ERR; /* a conversation that answers nothing cannot confirm */
	return rc == PAM_SUCCESS ? 0 : -1;
}

/* The login's info hook: text that travels with the next prompt. */
static void conversation_info(void *host, const char *text)
{
	pam_info((pam_handle_t *)host, "%s", text);
}

static void tell_person(pam_handle_t *pamh, const char *text)
{
	if (text != NULL && text[0] != '\0')
		pam_error(pamh, "%s", text);
}

static bool is_local_account(const struct entra_config *cfg, const char *user)
{
	return strcmp(user, "root") == 0 || entra_strlist_contains(&cfg->local_users, user);
}

/* PAM code for a name the module does not handle: explicit local accounts
 * are ignored, every other unknown name is "unknown" to this module. */
static int not_ours_code(const struct entra_config *cfg, const char *user)
{
	return is_local_account(cfg, user) ? PAM_IGNORE : PAM_USER_UNKNOWN;
}

static int get_user(pam_handle_t *pamh, const struct module_state *st, const char **user)
{
	int rc = pam_get_user(pamh, user, NULL);

	if (rc != PAM_SUCCESS || *user == NULL)
		return rc == PAM_SUCCESS ? PAM_USER_UNKNOWN : rc;
	if (!entra_name_is_valid(*user)) {
		entra_log(&st->log, LOG_NOTICE, "ignoring user name that is not valid for Entra login");
		return PAM_USER_UNKNOWN;
	}
	return PAM_SUCCESS;
}

/* Every entry point starts the same way: the configuration, then a user
 * name we can handle. On failure nothing is left to free. */
static int begin_call(pam_handle_t *pamh, int argc, const char **argv, struct module_state *st,
		      const char **user)
{
	int rc = load_state(pamh, argc, argv, st);

	if (rc != PAM_SUCCESS)
		return rc;
	rc = get_user(pamh, st, user);
	if (rc != PAM_SUCCESS)
		free_state(st);
	return rc;
}

/* The local account behind a name, looked up once per entry point (each
 * lookup walks every NSS source). */
struct local_account {
	bool exists;
	uid_t uid;
	gid_t gid;
};

static void lookup_account(const char *user, struct local_account *acct)
{
	struct passwd pw, *found = NULL;
	char buf[4096];

	acct->exists = getpwnam_r(user, &pw, buf, sizeof(buf), &found) == 0 && found != NULL;
	acct->uid = acct->exists ? found->pw_uid : (uid_t)-1;
	acct->gid = acct->exists ? found->pw_gid : (gid_t)-1;
}

static enum entra_account_kind classify(const struct entra_config *cfg, const char *user,
					struct local_account *acct)
{
	struct local_account own;

	if (acct == NULL)
		acct = &own;
	/* The uid decides for service_uids, and an existing account outside
	 * the Entra uid range (sshd, ubuntu, ...) is never an Entra account. */
	lookup_account(user, acct);
	return entra_classify_account(cfg, user, acct->exists ? (long)acct->uid : -1, NULL);
}

EXPORT int pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	struct module_state st;
	struct login_data *ld = NULL;
	struct entra_device_hooks hooks = { conversation_prompt, NULL, pamh, conversation_info };
	enum entra_login_status status;
	const void *service = NULL;
	const char *user = NULL;
	char host[256] = "this host";
	bool admin = false;
	int rc;

	(void)flags;
	rc = begin_call(pamh, argc, argv, &st, &user);
	if (rc != PAM_SUCCESS)
		return rc;
	switch (classify(st.cfg, user, NULL)) {
	case ENTRA_ACCOUNT_SERVICE:
		entra_log(&st.log, LOG_DEBUG, "%s is a service account: authentication left to the stack", user);
		rc = PAM_IGNORE;
		goto out;
	case ENTRA_ACCOUNT_NOT_OURS:
		entra_log(&st.log, LOG_DEBUG, "%s is not an Entra account: left to the stack", user);
		rc = not_ours_code(st.cfg, user);
		goto out;
	case ENTRA_ACCOUNT_ENTRA:
		break;
	}

	ld = calloc(1, sizeof(*ld));
	if (ld == NULL) {
		rc = PAM_BUF_ERR;
		goto out;
	}
	snprintf(ld->user, sizeof(ld->user), "%s", user);
	if (gethostname(host, sizeof(host) - 1) < 0 || !entra_value_is_safe(host, sizeof(host)))
		snprintf(host, sizeof(host), "this host");

	if (pam_get_item(pamh, PAM_SERVICE, &service) != PAM_SUCCESS ||
	    !entra_value_is_safe(service, 64))
		service = NULL;
	/* The session id comes from the caller's environment: it is the
	 * person's own shell, and an id of anyone else's session fails the
	 * uid and object-id checks of entra_login_reuse. */
	if (entra_login_reuse(st.cfg, user, service, getenv("ENTRA_SESSION_ID"), &st.log, &ld->login,
			      &admin) == 0) {
		ld->reused = true;
		ld->decision.allowed = true;
		ld->decision.admin = admin;
		snprintf(ld->decision.reason, sizeof(ld->decision.reason),
			 "decision of the reused session login");
		rc = pam_set_data(pamh, DATA_LOGIN, ld, cleanup_login_data);
		if (rc == PAM_SUCCESS)
			ld = NULL;
		goto out;
	}
	ld->login_time = time(NULL);
	status = entra_login_authenticate(st.cfg, user, service, host, &hooks, &st.log, &ld->login);
	switch (status) {
	case ENTRA_LOGIN_OK:
		rc = pam_set_data(pamh, DATA_LOGIN, ld, cleanup_login_data);
		if (rc == PAM_SUCCESS)
			ld = NULL;
		break;
	case ENTRA_LOGIN_NOT_OURS:
		rc = not_ours_code(st.cfg, user);
		break;
	case ENTRA_LOGIN_NO_CONVERSATION:
		rc = PAM_CONV_ERR;
		break;
	case ENTRA_LOGIN_UNAVAILABLE:
	case ENTRA_LOGIN_TIMED_OUT:
		tell_person(pamh, ld->login.message);
		rc = PAM_AUTHINFO_UNAVAIL;
		break;
	case ENTRA_LOGIN_DENIED:
	default:
		tell_person(pamh, ld->login.message);
		rc = PAM_AUTH_ERR;
		break;
	}
out:
	if (ld != NULL)
		cleanup_login_data(pamh, ld, rc);
	free_state(&st);
	return rc;
}

EXPORT int pam_sm_setcred(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	(void)pamh; (void)flags; (void)argc; (void)argv;
	return PAM_SUCCESS;
}

/* Azure RBAC adds to the allow lists: both must allow; either makes an
 * admin (RBAC's admin implies its login). */
static void combine_rbac(struct entra_decision *decision, const struct entra_rbac_decision *rbac)
{
	char both[sizeof(decision->reason) + sizeof(rbac->reason) + 64];

	if (decision->allowed && !rbac->login_allowed)
		snprintf(both, sizeof(both), "denied by Azure RBAC: %s (allow lists: %s)", rbac->reason,
			 decision->reason);
	else
		snprintf(both, sizeof(both), "%s; Azure RBAC: %s", decision->reason, rbac->reason);
	/* The log line keeps what fits. */
	snprintf(decision->reason, sizeof(decision->reason), "%.*s",
		 (int)sizeof(decision->reason) - 1, both);
	if (!rbac->login_allowed)
		decision->allowed = false;
	if (rbac->admin && decision->allowed)
		decision->admin = true;
}

/* Record the login in the user database behind the NSS module: binds the
 * account name to the object id (a different person claiming a recorded
 * name is refused) and yields the uid, gid and home the session uses. */
static int record_account(pam_handle_t *pamh, const struct module_state *st, struct login_data *ld)
{
	struct entra_userdb_rules rules;
	struct entra_userdb_writer writer = { st->cfg->db_dir, &rules, NULL, &st->log };
	struct entra_userdb_login login = {
		.name = ld->user,
		.object_id = ld->login.identity.object_id,
		.tenant_id = ld->login.identity.tenant_id,
		.display_name = ld->login.identity.display_name,
		.admin = ld->decision.admin,
		.when = (int64_t)time(NULL),
	};
	char reason[256];
	int rc;

	if (entra_userdb_rules_from_config(st->cfg, &rules, reason, sizeof(reason)) < 0) {
		entra_log(&st->log, LOG_ERR, "account %s: user database rules: %s", ld->user, reason);
		return PAM_SYSTEM_ERR;
	}
	rc = entra_userdb_record_login(&writer, &login, &ld->account, reason, sizeof(reason));
	if (rc == -EEXIST) {
		entra_log(&st->log, LOG_WARNING, "account %s refused for object id %s: %s", ld->user,
			  ld->login.identity.object_id, reason);
		tell_person(pamh, "This account name belongs to another Entra user on this host. Ask your administrator.");
		return PAM_PERM_DENIED;
	}
	if (rc < 0) {
		entra_log(&st->log, LOG_ERR, "account %s: cannot record the login in %s: %s", ld->user,
			  st->cfg->db_dir, reason);
		return PAM_SYSTEM_ERR;
	}
	entra_log(&st->log, LOG_INFO, "account %s: uid %u%s", ld->user, ld->account.uid,
		  ld->account.admin ? ", member of the admin group" : "");
	return PAM_SUCCESS;
}

/* Keep the login for open_session, which sshd runs in another process:
 * only the handle travels, in the PAM environment. */
static int stash_login(pam_handle_t *pamh, const struct module_state *st, const struct login_data *ld)
{
	struct entra_session_request req = {
		.user = ld->user,
		.uid = ld->account.uid,
		.gid = ld->account.gid,
		.identity_kind = "user",
		.tenant_id = ld->login.identity.tenant_id,
		.object_id = ld->login.identity.object_id,
		.upn = ld->login.identity.username,
		.access_token = ld->login.tokens.access_token,
		.expires_on = ld->login.tokens.expires_on,
		.resource = st->cfg->resource,
		.refresh_token = ld->login.tokens.refresh_token,
		/* A reused login is not reusable again: the window counts
		 * from the device-code login only. */
		.login_time = ld->login_time,
		.admin = ld->decision.admin,
	};
	char handle[ENTRA_SESSION_ID_LEN + 1], var[sizeof(ENV_PENDING) + ENTRA_SESSION_ID_LEN + 1];

	if (entra_session_stash(st->cfg, &req, ld->account.home, handle, &st->log) < 0)
		return PAM_SYSTEM_ERR;
	snprintf(var, sizeof(var), ENV_PENDING "=%s", handle);
	return pam_putenv(pamh, var);
}

EXPORT int pam_sm_acct_mgmt(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	struct module_state st;
	struct login_data *ld = NULL;
	const char *user = NULL;
	int rc;

	(void)flags;
	rc = begin_call(pamh, argc, argv, &st, &user);
	if (rc != PAM_SUCCESS)
		return rc;
	if (pam_get_data(pamh, DATA_LOGIN, (const void **)&ld) != PAM_SUCCESS || ld == NULL) {
		/* Not authenticated by us in this transaction (a key, another
		 * module, or not an Entra account): not our decision. */
		entra_log(&st.log, LOG_DEBUG, "no Entra login for %s in this transaction: account left to the stack", user);
		rc = classify(st.cfg, user, NULL) == ENTRA_ACCOUNT_NOT_OURS ? not_ours_code(st.cfg, user) : PAM_IGNORE;
		goto out;
	}
	if (strcmp(ld->user, user) != 0) {
		entra_log(&st.log, LOG_ERR, "user changed from %s to %s after authentication: denied", ld->user, user);
		rc = PAM_PERM_DENIED;
		goto out;
	}
	if (!ld->reused) {
		entra_authorize(st.cfg, &ld->login.identity, &ld->decision);
		if (ld->login.rbac_checked)
			combine_rbac(&ld->decision, &ld->login.rbac);
	}
	entra_log(&st.log, ld->decision.allowed ? LOG_NOTICE : LOG_WARNING,
		  "account %s (%s, object id %s): %s%s", user, ld->login.identity.username,
		  ld->login.identity.object_id, ld->decision.reason, ld->decision.admin ? " [admin]" : "");
	if (!ld->decision.allowed) {
		tell_person(pamh, "You signed in, but your account is not allowed to log in to this host. Ask your administrator for access.");
		rc = PAM_PERM_DENIED;
		goto out;
	}
	rc = record_account(pamh, &st, ld);
	if (rc == PAM_SUCCESS)
		rc = stash_login(pamh, &st, ld);
out:
	free_state(&st);
	return rc;
}

/* All of env into the PAM environment, or none of it: on a failure the
 * variables already set get back what they held before (pam_env or an
 * earlier module may have set AZURE_TENANT_ID), or are unset. */
static int put_env(pam_handle_t *pamh, const struct entra_session_env *env)
{
	char **before = calloc(env->count + 1, sizeof(char *));
	int rc = PAM_SUCCESS;
	size_t done;

	if (before == NULL)
		return PAM_BUF_ERR;
	for (done = 0; done < env->count; done++) {
		char *name = strndup(env->vars[done], strcspn(env->vars[done], "="));
		const char *old;

		if (name == NULL) {
			rc = PAM_BUF_ERR;
			break;
		}
		/* "NAME=old", or the bare name, which pam_putenv unsets. */
		old = pam_getenv(pamh, name);
		if (old == NULL) {
			before[done] = name;
		} else {
			if (asprintf(&before[done], "%s=%s", name, old) < 0)
				before[done] = NULL;
			free(name);
			if (before[done] == NULL) {
				rc = PAM_BUF_ERR;
				break;
			}
		}
		rc = pam_putenv(pamh, env->vars[done]);
		if (rc != PAM_SUCCESS) {
			done++; /* put back as it was, whatever it did */
			break;
		}
	}
	if (rc != PAM_SUCCESS)
		for (size_t i = 0; i < done; i++)
			if (before[i] != NULL)
				(void)pam_putenv(pamh, before[i]);
	for (size_t i = 0; i <= env->count; i++)
		entra_free_secret(before[i]);
	free(before);
	return rc;
}

/* What the token service said, for the session's log line. */
static const char *tokend_outcome(int reg)
{
	switch (reg) {
	case 0:
		return "registered";
	case -ENOENT:
		return "not running";
	default:
		return "not registered, see above";
	}
}

/* Create the session's directory and files for req, export its
 * environment, and remember its id for close_session. origin says where
 * the token came from, for the one log line of the session's opening. */
static int start_session(pam_handle_t *pamh, const struct module_state *st,
			 const struct entra_session_request *req, const char *origin)
{
	struct entra_session_env env = { NULL, 0 };
	struct session_data *sd = calloc(1, sizeof(*sd));
	int rc, reg;

	if (sd == NULL || entra_session_new_id(sd->id) < 0) {
		free(sd);
		return PAM_BUF_ERR;
	}
	sd->uid = req->uid;
	sd->private = entra_session_keeps_private(req);
	if (entra_session_open(st->cfg, sd->id, req, &env, &st->log) < 0) {
		free(sd);
		return PAM_SESSION_ERR;
	}
	rc = pam_set_data(pamh, DATA_SESSION, sd, cleanup_free);
	if (rc != PAM_SUCCESS) {
		entra_session_close(st->cfg, sd->id, req->uid, sd->private, &st->log);
		free(sd);
		entra_session_env_free(&env);
		return rc;
	}
	rc = put_env(pamh, &env);
	entra_session_env_free(&env);
	if (rc != PAM_SUCCESS) {
		entra_session_close(st->cfg, sd->id, req->uid, sd->private, &st->log);
		pam_set_data(pamh, DATA_SESSION, NULL, NULL); /* frees sd */
		return rc;
	}
	/* The token service is optional: without it the session keeps its
	 * token file (a reason other than its absence is logged by
	 * entra_tokend_register_session). */
	reg = entra_tokend_register_session(st->cfg, sd->id, req, &env, &st->log);
	sd->tokend_may_know = reg != -ENOENT && reg != -ECONNREFUSED;
	if (reg == 0 && put_env(pamh, &env) != PAM_SUCCESS) {
		entra_tokend_unregister_session(st->cfg, sd->id, &st->log);
		sd->tokend_may_know = false;
		reg = -ENOMEM;
	}
	entra_session_env_free(&env);
	entra_log(&st->log, LOG_INFO, "session %s opened for %s (uid %lu): %s; token service: %s",
		  sd->id, req->user, (unsigned long)req->uid, origin, tokend_outcome(reg));
	return PAM_SUCCESS;
}

/* The user-assigned identity of a service account: its own entry in
 * service_identities ("account:client-id"), else service_client_id, else
 * NULL (system-assigned). */
static const char *service_client_id(const struct entra_config *cfg, const char *user)
{
	size_t len = strlen(user);

	for (size_t i = 0; i < cfg->service_identities.count; i++) {
		const char *entry = cfg->service_identities.items[i];
		if (strncmp(entry, user, len) == 0 && entry[len] == ':')
			return entry + len + 1;
	}
	return cfg->service_client_id;
}

/* open_session for a local service account: a managed-identity token from
 * the shared cache (or the endpoint), placed per the session contract. */
static int open_service_session(pam_handle_t *pamh, const struct module_state *st, const char *user,
				const struct local_account *acct)
{
	struct entra_http_options http_opt = {
		.ca_file = st->cfg->ca_file,
		.timeout_ms = (long)st->cfg->http_timeout * 1000,
		.allow_plain_http = true,
	};
	struct entra_msi_token tok;
	struct entra_session_request req;
	char **pam_env = NULL, origin[80];
	const char *resource = st->cfg->service_resource ? st->cfg->service_resource : st->cfg->resource;
	bool required = st->cfg->service_token_required;
	int rc = required ? PAM_SESSION_ERR : PAM_IGNORE;

	memset(&tok, 0, sizeof(tok));
	if (!acct->exists) {
		entra_log(&st->log, LOG_ERR, "service session for %s: no such local account", user);
		return PAM_SESSION_ERR;
	}
	/* The managed-identity variables come from the PAM environment
	 * (pam_env, /etc/environment), never from the calling process, whose
	 * environment the user of su or sudo controls. */
	pam_env = pam_getenvlist(pamh);
	{
		struct entra_msi_request mreq = {
			.source = st->cfg->msi_source,
			.env = (const char *const *)pam_env,
			.imds_host = st->cfg->imds_endpoint,
			.client_id = service_client_id(st->cfg, user),
			.resource = resource,
			.cache_dir = st->cfg->cache_dir,
			/* Room for IMDS's retries (0, 2, 6, 14 s), never
			 * more than a login may take. */
			.total_ms = (long)(st->cfg->login_timeout < 30 ? st->cfg->login_timeout : 30) * 1000,
			/* The HTTP handle (and its TLS context) only when the
			 * cache cannot answer. */
			.http_options = &http_opt,
		};
		if (entra_msi_get_token(&mreq, NULL, &st->log, &tok) < 0) {
			entra_log(&st->log, required ? LOG_ERR : LOG_WARNING,
				  "service session for %s %s without a managed-identity token: %s", user,
				  required ? "refused" : "opened", tok.error);
			goto out;
		}
	}
	req = (struct entra_session_request){
		.user = user,
		.uid = acct->uid,
		.gid = acct->gid,
		.identity_kind = "managed-identity",
		.tenant_id = tok.tenant_id,
		.object_id = tok.object_id,
		.access_token = tok.access_token,
		.expires_on = (time_t)tok.expires_on,
		.resource = resource,
	};
	snprintf(origin, sizeof(origin), "managed-identity token from %s%s",
		 entra_msi_source_name(tok.source), tok.from_cache ? " (cached)" : "");
	rc = start_session(pamh, st, &req, origin);
out:
	if (pam_env != NULL) {
		for (size_t i = 0; pam_env[i] != NULL; i++)
			entra_free_secret(pam_env[i]);
		free(pam_env);
	}
	entra_msi_token_clear(&tok);
	return rc;
}

/* The home directory at the first session: 0700, the user's, empty (use
 * pam_mkhomedir instead for /etc/skel). An existing path is left alone. */
static int create_home(const struct module_state *st, const char *home, uid_t uid, gid_t gid)
{
	char parent[ENTRA_USERDB_PATH_MAX];
	const char *base;
	int dir_fd, rc = 0;

	base = strrchr(home, '/');
	if (home[0] != '/' || base == NULL || base[1] == '\0' || !entra_name_is_valid(base + 1) ||
	    (size_t)(base - home) >= sizeof(parent)) {
		entra_log(&st->log, LOG_ERR, "home directory '%s' is not an absolute path ending in a valid name", home);
		return -EINVAL;
	}
	memcpy(parent, home, (size_t)(base - home));
	parent[base - home] = '\0';
	dir_fd = open(parent[0] ? parent : "/", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dir_fd < 0) {
		rc = -errno;
		entra_log(&st->log, LOG_ERR, "cannot open %s to create home directories: %s", parent, strerror(-rc));
		return rc;
	}
	if (mkdirat(dir_fd, base + 1, 0700) == 0) {
		if (fchownat(dir_fd, base + 1, uid, gid, AT_SYMLINK_NOFOLLOW) < 0) {
			rc = -errno;
			unlinkat(dir_fd, base + 1, AT_REMOVEDIR);
		} else {
			entra_log(&st->log, LOG_NOTICE, "created home directory %s", home);
		}
	} else if (errno != EEXIST) {
		rc = -errno;
	}
	if (rc < 0)
		entra_log(&st->log, LOG_ERR, "cannot create home directory %s: %s", home, strerror(-rc));
	close(dir_fd);
	return rc;
}

EXPORT int pam_sm_open_session(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	struct module_state st;
	struct entra_pending_login pending;
	struct local_account acct;
	char handle_copy[ENTRA_SESSION_ID_LEN + 1];
	const char *user = NULL, *handle;
	int rc, claim;

	(void)flags;
	memset(&pending, 0, sizeof(pending));
	rc = begin_call(pamh, argc, argv, &st, &user);
	if (rc != PAM_SUCCESS)
		return rc;
	if (classify(st.cfg, user, &acct) == ENTRA_ACCOUNT_SERVICE) {
		rc = open_service_session(pamh, &st, user, &acct);
		goto out;
	}
	handle = pam_getenv(pamh, ENV_PENDING);
	if (handle == NULL) {
		entra_log(&st.log, LOG_DEBUG, "no Entra login for %s in this transaction: no session token", user);
		rc = PAM_IGNORE;
		goto out;
	}
	snprintf(handle_copy, sizeof(handle_copy), "%s", handle);
	pam_putenv(pamh, ENV_PENDING); /* never into the user's environment */
	claim = entra_session_claim(st.cfg, handle_copy, user, &pending, &st.log);
	if (claim == -EPERM) {
		/* sudo (or sudo -u) authenticates the invoking user and opens
		 * the session of the target account: the login stays with its
		 * owner and gives the target no token. */
		entra_log(&st.log, LOG_NOTICE, "no Entra session for %s: the login in this transaction was another account's (sudo or su to a different user)", user);
		rc = PAM_IGNORE;
		goto out;
	}
	if (claim < 0) {
		entra_log(&st.log, LOG_ERR, "session for %s refused: the login kept by the account phase %s",
			  user, claim == -ETIMEDOUT ? "is too old" : claim == -EPERM ? "is another user's" :
			  "is missing or unreadable");
		rc = PAM_SESSION_ERR;
		goto out;
	}
	if (st.cfg->create_home && pending.home != NULL &&
	    create_home(&st, pending.home, pending.req.uid, pending.req.gid) < 0) {
		rc = PAM_SESSION_ERR;
		goto out;
	}
	rc = start_session(pamh, &st, &pending.req, "token of the Entra login");
out:
	entra_pending_login_free(&pending);
	free_state(&st);
	return rc;
}

EXPORT int pam_sm_close_session(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	struct module_state st;
	const struct session_data *sd = NULL;
	struct local_account acct = { .exists = false };
	const char *user = NULL, *id;
	bool tokend_may_know = true, private = true;
	uid_t uid;
	int rc;

	(void)flags;
	rc = begin_call(pamh, argc, argv, &st, &user);
	if (rc != PAM_SUCCESS)
		return rc;
	if (pam_get_data(pamh, DATA_SESSION, (const void **)&sd) == PAM_SUCCESS && sd != NULL) {
		id = sd->id;
		uid = sd->uid;
		tokend_may_know = sd->tokend_may_know;
		private = sd->private;
	} else {
		/* A different handle closes the session (e.g. a re-exec): the
		 * id travels in the PAM environment. */
		id = pam_getenv(pamh, "ENTRA_SESSION_ID");
		if (id != NULL)
			lookup_account(user, &acct);
		if (id == NULL || !acct.exists) {
			rc = PAM_IGNORE;
			goto out;
		}
		uid = acct.uid;
	}
	if (tokend_may_know)
		entra_tokend_unregister_session(st.cfg, id, &st.log);
	rc = entra_session_close(st.cfg, id, uid, private, &st.log) == 0 ? PAM_SUCCESS : PAM_SESSION_ERR;
out:
	free_state(&st);
	return rc;
}

EXPORT int pam_sm_chauthtok(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	struct module_state st;
	const char *user = NULL;
	int rc;

	(void)flags;
	rc = begin_call(pamh, argc, argv, &st, &user);
	if (rc != PAM_SUCCESS)
		return rc;
	if (classify(st.cfg, user, NULL) == ENTRA_ACCOUNT_ENTRA) {
		entra_log(&st.log, LOG_NOTICE, "password change for %s refused: Entra accounts have no local password", user);
		tell_person(pamh, "This account signs in with Microsoft Entra ID; change your password there (https://aka.ms/sspr).");
		rc = PAM_AUTHTOK_ERR;
	} else {
		rc = PAM_IGNORE;
	}
	free_state(&st);
	return rc;
}
