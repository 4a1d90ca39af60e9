/* entractl: the administrator's tool. Guided setup of a node, users of
 * the local database, the health of the node's pam_entra state, and a
 * check of the whole setup. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "fsutil.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "login.h"
#include "names.h"
#include "oidc.h"
#include "tokend.h"
#include "policy.h"
#include "userdb.h"
#include "userdb_config.h"

#define EXIT_USAGE 2

static const char usage_text[] =
	"usage: entractl [--config PATH] [--debug] COMMAND\n"
	"\n"
	"commands:\n"
	"  setup [--non-interactive --tenant T --client-id C] [--allowed-domains D]\n"
	"        [--authority URL] [--ca-file F] [--set KEY=VALUE]... [--force]\n"
	"        [--offline] [--test-login USER]\n"
	"                                  write the configuration, sync, check, test a login\n"
	"  users list                      list the Entra users known to this node\n"
	"  users show NAME                 one user (or how a new name would resolve)\n"
	"  users add UPN [--object-id GUID] [--admin]\n"
	"                                  pre-provision a user before the first login\n"
	"  users remove NAME|OBJECT-ID     forget a user (the uid may be reused)\n"
	"  sync                            write the config's rules into the database\n"
	"  status                          database health, caches, live sessions, token service\n"
	"  check [--offline]               validate config, permissions, discovery and JWKS\n"
	"\n"
	"options:\n"
	"  --config PATH   configuration file (default " ENTRA_DEFAULT_CONFIG ")\n"
	"  --debug         more detail on stderr\n"
	"  --offline       check: skip the discovery and JWKS fetch\n";

static struct entra_log logger;
static const char *config_path = ENTRA_DEFAULT_CONFIG;

static void usage(FILE *out)
{
	fputs(usage_text, out);
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
	va_list ap;

	fputs("entractl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Loads and validates the config; the file must be root-owned when we
 * run as root (as the PAM module requires). NULL after printing why. */
static struct entra_config *load_config(bool strict_owner)
{
	struct entra_config *cfg = entra_config_new();
	char err[512] = "";

	if (cfg == NULL) {
		fail("out of memory");
		return NULL;
	}
	if (entra_config_load(cfg, config_path, strict_owner, err, sizeof(err)) != 0 ||
	    entra_config_validate(cfg, err, sizeof(err)) != 0) {
		fail("%s", err[0] ? err : "cannot load the configuration");
		entra_config_free(cfg);
		return NULL;
	}
	return cfg;
}

static void format_time(int64_t t, char *buf, size_t len)
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (t == 0 || gmtime_r(&tt, &tm) == NULL)
		snprintf(buf, len, "never");
	else
		strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void format_age(time_t now, time_t then, char *buf, size_t len)
{
	long s = (long)(now - then);

	if (s < 0)
		s = 0;
	if (s < 120)
		snprintf(buf, len, "%lds", s);
	else if (s < 7200)
		snprintf(buf, len, "%ldm", s / 60);
	else if (s < 172800)
		snprintf(buf, len, "%ldh%02ldm", s / 3600, s % 3600 / 60);
	else
		snprintf(buf, len, "%ldd", s / 86400);
}

static const char *mapping_name(enum entra_userdb_mapping m)
{
	switch (m) {
	case ENTRA_USERDB_MAP_UPN:
		return "upn";
	case ENTRA_USERDB_MAP_LOCALPART:
		return "localpart";
	default:
		return "none (map file: recorded users only)";
	}
}

static int open_db(const struct entra_config *cfg, struct entra_userdb **db)
{
	char reason[512] = "";
	int rc = entra_userdb_open(cfg->db_dir, db, reason, sizeof(reason));

	if (rc == -ENOENT)
		fail("no user database in %s yet: run 'entractl sync'", cfg->db_dir);
	else if (rc != 0)
		fail("user database %s/%s is not usable: %s", cfg->db_dir, ENTRA_USERDB_FILE, reason);
	return rc;
}

/* ---- users --------------------------------------------------------------- */

static int users_list(const struct entra_config *cfg)
{
	struct entra_userdb *db;
	struct entra_userdb_info info;
	struct entra_userdb_user u;

	if (open_db(cfg, &db) != 0)
		return EXIT_FAILURE;
	entra_userdb_get_info(db, &info);
	printf("%-40s %10s %-5s %-36s %s\n", "NAME", "UID", "ADMIN", "OBJECT-ID", "LAST-LOGIN");
	for (size_t i = 0; i < info.users; i++) {
		char when[32];

		entra_userdb_get_index(db, i, &u);
		format_time(u.last_login, when, sizeof(when));
		printf("%-40s %10u %-5s %-36s %s\n", u.name, u.uid, u.admin ? "yes" : "no",
		       u.object_id[0] ? u.object_id : "-", when);
	}
	entra_userdb_close(db);
	return EXIT_SUCCESS;
}

static void print_user(const struct entra_userdb_user *u, const char *admin_group)
{
	char first[32], last[32];

	format_time(u->first_login, first, sizeof(first));
	format_time(u->last_login, last, sizeof(last));
	printf("name:        %s\n", u->name);
	printf("uid:         %u\n", u->uid);
	printf("gid:         %u (private group %s)\n", u->gid, u->name);
	printf("admin:       %s%s%s\n", u->admin ? "yes (member of " : "no", u->admin ? admin_group : "",
	       u->admin ? ")" : "");
	printf("object id:   %s\n", u->object_id[0] ? u->object_id : "(not bound yet: the first login binds it)");
	printf("tenant id:   %s\n", u->tenant_id[0] ? u->tenant_id : "-");
	printf("gecos:       %s\n", u->gecos);
	printf("home:        %s\n", u->home);
	printf("shell:       %s\n", u->shell);
	printf("first login: %s\n", first);
	printf("last login:  %s\n", last);
}

static int users_show(const struct entra_config *cfg, const char *name)
{
	struct entra_userdb *db;
	struct entra_userdb_user u;
	struct entra_userdb_rules rules;
	char home[ENTRA_USERDB_PATH_MAX];
	int rc;

	if (!entra_name_is_valid(name)) {
		fail("'%s' is not a valid user name", name);
		return EXIT_FAILURE;
	}
	if (open_db(cfg, &db) != 0)
		return EXIT_FAILURE;
	entra_userdb_get_rules(db, &rules);
	rc = entra_userdb_find_name(db, name, &u);
	if (rc == 0) {
		print_user(&u, rules.admin_group);
		entra_userdb_close(db);
		return EXIT_SUCCESS;
	}
	rc = entra_userdb_resolve_name(db, name, &u, home, sizeof(home));
	if (rc == 0) {
		printf("%s is not recorded yet; before the first login it resolves as\n"
		       "uid %u, home %s, shell %s (kept at the first login unless that uid\n"
		       "is taken by then).\n", name, u.uid, u.home, u.shell);
		entra_userdb_close(db);
		return EXIT_SUCCESS;
	}
	entra_userdb_close(db);
	fail("no such user: %s (not recorded, and the name does not match user_mapping/allowed_domains)", name);
	return EXIT_FAILURE;
}

static int users_add(const struct entra_config *cfg, const struct entra_userdb_rules *rules, int argc,
		     char **argv)
{
	static const struct option opts[] = {
		{ "object-id", required_argument, NULL, 'o' },
		{ "admin", no_argument, NULL, 'a' },
		{ NULL, 0, NULL, 0 },
	};
	struct entra_userdb_login login = { 0 };
	struct entra_userdb_writer w = { cfg->db_dir, rules, NULL, &logger };
	struct entra_userdb_entry e;
	char reason[512] = "";
	int c, rc;

	optind = 0; /* full re-initialisation (glibc); options may follow the UPN */
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'o':
			login.object_id = optarg;
			break;
		case 'a':
			login.admin = true;
			break;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind + 1 != argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	login.name = argv[optind];
	if (!entra_name_is_valid(login.name)) {
		fail("'%s' is not a valid user name", login.name);
		return EXIT_FAILURE;
	}
	if (login.object_id != NULL && !entra_is_guid(login.object_id)) {
		fail("--object-id must be a GUID (the user's object id in Entra)");
		return EXIT_FAILURE;
	}
	rc = entra_userdb_record_login(&w, &login, &e, reason, sizeof(reason));
	if (rc != 0) {
		fail("cannot add %s: %s", login.name, reason[0] ? reason : strerror(-rc));
		return EXIT_FAILURE;
	}
	printf("%s: uid %u, home %s%s\n", e.name, e.uid, e.home, e.admin ? ", admin" : "");
	entra_userdb_entry_free(&e);
	return EXIT_SUCCESS;
}

static int users_remove(const struct entra_config *cfg, const struct entra_userdb_rules *rules, const char *key)
{
	struct entra_userdb_writer w = { cfg->db_dir, rules, NULL, &logger };
	char reason[512] = "";
	int rc = entra_userdb_remove(&w, key, reason, sizeof(reason));

	if (rc != 0) {
		fail("cannot remove %s: %s", key, reason[0] ? reason : strerror(-rc));
		return EXIT_FAILURE;
	}
	printf("removed %s\n", key);
	return EXIT_SUCCESS;
}

static int sync_rules(const struct entra_config *cfg, const struct entra_userdb_rules *rules)
{
	struct entra_userdb_writer w = { cfg->db_dir, rules, NULL, &logger };
	char reason[512] = "";
	int rc = entra_userdb_sync_rules(&w, reason, sizeof(reason));

	if (rc != 0) {
		fail("cannot write the user database: %s", reason[0] ? reason : strerror(-rc));
		return EXIT_FAILURE;
	}
	printf("user database %s/%s written with the rules of %s\n", cfg->db_dir, ENTRA_USERDB_FILE, config_path);
	return EXIT_SUCCESS;
}

/* ---- status ----------------------------------------------------------------- */

static void status_caches(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	time_t now = time(NULL);
	int n = 0;

	printf("caches (%s):\n", dir);
	if (d == NULL) {
		printf("  none (%s)\n", strerror(errno));
		return;
	}
	while ((de = readdir(d)) != NULL) {
		struct stat st;
		const char *kind = NULL;
		char age[32];
		size_t len = strlen(de->d_name);

		if (len > 15 && strcmp(de->d_name + len - 15, ".discovery.json") == 0)
			kind = "discovery";
		else if (len > 10 && strcmp(de->d_name + len - 10, ".jwks.json") == 0)
			kind = "JWKS";
		if (kind == NULL || fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		format_age(now, st.st_mtime, age, sizeof(age));
		printf("  %-9s %s: age %s%s\n", kind, de->d_name, age,
		       now - st.st_mtime > (time_t)ENTRA_OIDC_TTL ? " (past the 24 h TTL: refetched at next login)" : "");
		n++;
	}
	closedir(d);
	if (n == 0)
		printf("  none yet (filled at the first login)\n");
}

static bool all_digits(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

/* Live sessions: run_dir/<uid>/<session-id>/ directories. */
static void status_sessions(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int users = 0, sessions = 0;

	printf("sessions (%s):\n", dir);
	if (d == NULL) {
		printf("  none (%s)\n", strerror(errno));
		return;
	}
	while ((de = readdir(d)) != NULL) {
		int fd;
		DIR *u;
		struct dirent *se;
		int here = 0;

		if (!all_digits(de->d_name))
			continue;
		fd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			continue;
		u = fdopendir(fd);
		if (u == NULL) {
			close(fd);
			continue;
		}
		while ((se = readdir(u)) != NULL)
			if (se->d_name[0] != '.' && se->d_type == DT_DIR)
				here++;
		closedir(u);
		if (here > 0) {
			printf("  uid %s: %d session%s\n", de->d_name, here, here == 1 ? "" : "s");
			users++;
			sessions += here;
		}
	}
	closedir(d);
	printf("  %d live session%s of %d user%s\n", sessions, sessions == 1 ? "" : "s", users,
	       users == 1 ? "" : "s");
}

/* The token service: is it answering, and how many sessions does it hold?
 * Informational: sessions open without it (no IDENTITY_ENDPOINT). */
static void status_tokend(const struct entra_config *cfg)
{
	struct json_object *answer = NULL, *list;
	size_t people = 0, managed = 0, n;
	int rc;

	printf("token service (%s):\n", cfg->tokend_socket);
	rc = entra_tokend_call(cfg->tokend_socket, "{\"op\":\"list\"}", &answer,
			       ENTRA_TOKEND_CLIENT_TIMEOUT_MS);
	if (rc == -ENOENT || rc == -ECONNREFUSED) {
		printf("  not running: sessions open without IDENTITY_ENDPOINT (enable entra-tokend.socket)\n");
		return;
	}
	if (rc < 0) {
		printf("  not answering: %s\n", strerror(-rc));
		return;
	}
	if (!json_object_object_get_ex(answer, "sessions", &list) ||
	    !json_object_is_type(list, json_type_array)) {
		const char *err = entra_json_get_string(answer, "error");

		printf("  refused the query: %s%s\n", err != NULL ? err : "no reason given",
		       geteuid() != 0 ? " (ask as root)" : "");
		json_object_put(answer);
		return;
	}
	n = json_object_array_length(list);
	for (size_t i = 0; i < n; i++) {
		const char *kind = entra_json_get_string(json_object_array_get_idx(list, i), "identity_kind");

		if (kind != NULL && strcmp(kind, "managed-identity") == 0)
			managed++;
		else
			people++;
	}
	printf("  running: %zu registered session%s (%zu of people, %zu of managed identities), tokens at 127.0.0.1:%d\n",
	       n, n == 1 ? "" : "s", people, managed, cfg->tokend_port);
	json_object_put(answer);
}

static int status(const struct entra_config *cfg)
{
	struct entra_userdb *db = NULL;
	struct entra_userdb_info info;
	struct entra_userdb_rules rules;
	char reason[512] = "";
	int rc, ret = EXIT_SUCCESS;

	printf("config: %s\n", config_path);
	printf("database (%s/%s):\n", cfg->db_dir, ENTRA_USERDB_FILE);
	rc = entra_userdb_open(cfg->db_dir, &db, reason, sizeof(reason));
	if (rc == 0) {
		entra_userdb_get_info(db, &info);
		entra_userdb_get_rules(db, &rules);
		printf("  state:      valid\n");
		printf("  users:      %u (%u admin%s in %s, gid %u)\n", info.users, info.admins,
		       info.admins == 1 ? "" : "s", rules.admin_group, rules.admin_gid);
		printf("  size:       %llu bytes\n", (unsigned long long)info.file_size);
		printf("  generation: %llu\n", (unsigned long long)info.generation);
		printf("  mapping:    %s, %zu allowed domain%s, uids %u-%u\n", mapping_name(rules.mapping),
		       rules.n_allowed_domains, rules.n_allowed_domains == 1 ? "" : "s", rules.uid_min,
		       rules.uid_max);
		entra_userdb_close(db);
	} else if (rc == -ENOENT) {
		printf("  state:      missing: names do not resolve before a first login; run 'entractl sync'\n");
		ret = EXIT_FAILURE;
	} else {
		printf("  state:      INVALID: %s\n", reason);
		printf("  fix:        NSS answers UNAVAIL for Entra users until this is fixed. Move the file\n"
		       "              aside, run 'entractl sync', and re-add users with 'entractl users add'\n"
		       "              (their next login also records them, with new uids if these changed).\n");
		ret = EXIT_FAILURE;
	}
	status_caches(cfg->cache_dir);
	status_sessions(cfg->run_dir);
	status_tokend(cfg);
	return ret;
}

/* ---- check ---------------------------------------------------------------------- */

static int problems;

static void problem(const char *what, const char *fix)
{
	problems++;
	printf("PROBLEM: %s\n  fix: %s\n", what, fix);
}

static void check_dir(const char *role, const char *path, bool must_exist, mode_t max_mode)
{
	struct stat st;
	char what[1024], fix[1024];

	if (lstat(path, &st) != 0) {
		if (errno == ENOENT && !must_exist) {
			printf("ok: %s %s does not exist yet (created when first needed)\n", role, path);
			return;
		}
		snprintf(what, sizeof(what), "%s %s: %s", role, path, strerror(errno));
		snprintf(fix, sizeof(fix), "create it: install -d -o root -g root -m %04o %s", (unsigned)max_mode,
			 path);
		problem(what, fix);
		return;
	}
	if (S_ISLNK(st.st_mode) || !S_ISDIR(st.st_mode)) {
		snprintf(what, sizeof(what), "%s %s is not a plain directory (symlink or file)", role, path);
		snprintf(fix, sizeof(fix), "replace it by a real directory owned by root, mode %04o",
			 (unsigned)max_mode);
		problem(what, fix);
		return;
	}
	if (st.st_uid != 0 || (st.st_mode & 07777 & ~max_mode) != 0) {
		snprintf(what, sizeof(what), "%s %s is owned by uid %u with mode %04o", role, path,
			 (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
		snprintf(fix, sizeof(fix), "chown root:root %s && chmod %04o %s", path, (unsigned)max_mode, path);
		problem(what, fix);
		return;
	}
	printf("ok: %s %s\n", role, path);
}

static bool rules_equal(const struct entra_userdb_rules *a, const struct entra_userdb_rules *b)
{
	return a->mapping == b->mapping && a->uid_min == b->uid_min && a->uid_max == b->uid_max &&
	       a->admin_gid == b->admin_gid && a->n_allowed_domains == b->n_allowed_domains &&
	       a->n_local_users == b->n_local_users && strcmp(a->admin_group, b->admin_group) == 0 &&
	       strcmp(a->home_template, b->home_template) == 0 && strcmp(a->shell, b->shell) == 0;
}

static void check_network(const struct entra_config *cfg)
{
	struct entra_http_options opt = { 0 };
	struct entra_http *http;
	struct entra_oidc oidc;
	char what[1024];
	int rc;

	opt.ca_file = cfg->ca_file;
	opt.timeout_ms = (long)cfg->http_timeout * 1000;
	opt.proxy = cfg->https_proxy;
	http = entra_http_new(&opt, &logger);
	if (http == NULL) {
		problem("cannot set up HTTPS (OpenSSL)", "see the log line above; check that libssl3 is installed");
		return;
	}
	rc = entra_oidc_init(&oidc, cfg->authority, cfg->tenant, NULL);
	if (rc != 0) {
		snprintf(what, sizeof(what), "authority %s or tenant %s is not usable", cfg->authority, cfg->tenant);
		problem(what, "authority must be an https URL; tenant a GUID or a verified domain name");
		entra_http_free(http);
		return;
	}
	rc = entra_oidc_load(&oidc, http, &logger, time(NULL));
	if (rc != 0) {
		snprintf(what, sizeof(what), "cannot load discovery/JWKS from %s: %s (details above)",
			 oidc.discovery_url, strerror(-rc));
		problem(what, "check network access and proxy (https_proxy) to the authority, ca_file, and that "
			      "the tenant exists; logins are refused until this works");
	} else {
		printf("ok: discovery %s (issuer %s)\n", oidc.discovery_url, oidc.metadata.issuer);
		printf("ok: device authorization endpoint %s\n", oidc.metadata.device_authorization_endpoint);
		printf("ok: JWKS %s (%zu signing key%s)\n", oidc.metadata.jwks_uri, oidc.jwks.count,
		       oidc.jwks.count == 1 ? "" : "s");
	}
	entra_oidc_free(&oidc);
	entra_http_free(http);
}

static int check(bool offline)
{
	struct entra_config *cfg;
	struct entra_userdb_rules rules, dbrules;
	struct entra_userdb *db;
	char reason[512] = "", what[1024];
	int rc;

	cfg = entra_config_new();
	if (cfg == NULL)
		return EXIT_FAILURE;
	/* The PAM module requires a root-owned, not group/world-writable file. */
	rc = entra_config_load(cfg, config_path, true, reason, sizeof(reason));
	if (rc != 0) {
		snprintf(what, sizeof(what), "configuration: %s", reason);
		problem(what, "fix the line named above (see pam_entra.conf(5)); the file must be a regular file "
			      "owned by root, mode 0644 or stricter");
		goto out;
	}
	printf("ok: configuration %s parsed\n", config_path);
	if (entra_config_validate(cfg, reason, sizeof(reason)) != 0) {
		snprintf(what, sizeof(what), "configuration: %s", reason);
		problem(what, "set the keys named above (see pam_entra.conf(5))");
		goto out;
	}
	if (entra_userdb_rules_from_config(cfg, &rules, reason, sizeof(reason)) != 0) {
		snprintf(what, sizeof(what), "account rules: %s", reason);
		problem(what, "adjust uid_min/uid_max/admin_gid/admin_group/home_template/shell");
		goto out;
	}
	printf("ok: configuration valid\n");
	if (rules.mapping != ENTRA_USERDB_MAP_NONE && rules.n_allowed_domains == 0)
		problem("allowed_domains is empty: no name resolves before its first login, so sshd answers "
			"\"Invalid user\" to new users",
			"list your domains in allowed_domains, or pre-provision users with 'entractl users add'");

	check_dir("database directory", cfg->db_dir, false, 0755);
	check_dir("cache directory", cfg->cache_dir, false, 0755);
	check_dir("session directory", cfg->run_dir, false, 0755);

	rc = entra_userdb_open(cfg->db_dir, &db, reason, sizeof(reason));
	if (rc == -ENOENT) {
		problem("no user database: names do not resolve before the first login", "run 'entractl sync'");
	} else if (rc != 0) {
		snprintf(what, sizeof(what), "user database: %s", reason);
		problem(what, "move the file aside, run 'entractl sync' and re-add users (see 'entractl status')");
	} else {
		entra_userdb_get_rules(db, &dbrules);
		if (!rules_equal(&rules, &dbrules))
			problem("the user database holds older rules than the configuration",
				"run 'entractl sync'");
		else
			printf("ok: user database valid and in step with the configuration\n");
		entra_userdb_close(db);
	}
	if (!offline)
		check_network(cfg);
out:
	entra_config_free(cfg);
	if (problems > 0) {
		printf("%d problem%s found\n", problems, problems == 1 ? "" : "s");
		return EXIT_FAILURE;
	}
	printf("all checks passed\n");
	return EXIT_SUCCESS;
}

/* ---- setup ------------------------------------------------------------------------ */

#define SETUP_MAX_KEYS 64
#define SETUP_MAX_TEXT ((size_t)16 * 1024)
#define SETUP_LINE 1024

struct setup_kv {
	char *key;
	char *value;
};

struct setup {
	struct setup_kv kv[SETUP_MAX_KEYS];
	size_t n;
	bool interactive;
	bool force;
	bool offline;
	char *test_user;
};

static void setup_free(struct setup *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->kv[i].key);
		free(s->kv[i].value);
	}
	free(s->test_user);
	memset(s, 0, sizeof(*s));
}

static const char *setup_get(const struct setup *s, const char *key)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->kv[i].key, key) == 0)
			return s->kv[i].value;
	return NULL;
}

/* One "key = value" line of the file to be. The parser would refuse a
 * duplicate key or a value with a newline: refuse them here, by name. */
static int setup_put(struct setup *s, const char *key, const char *value)
{
	if (setup_get(s, key) != NULL) {
		fail("setup: %s given twice", key);
		return -1;
	}
	if (!entra_value_is_safe(value, ENTRA_CONFIG_MAX_LINE / 2) || !entra_value_is_safe(key, 64)) {
		fail("setup: the value of %s is too long or holds control characters", key);
		return -1;
	}
	if (s->n == SETUP_MAX_KEYS) {
		fail("setup: too many settings");
		return -1;
	}
	s->kv[s->n].key = strdup(key);
	s->kv[s->n].value = strdup(value);
	if (s->kv[s->n].key == NULL || s->kv[s->n].value == NULL) {
		free(s->kv[s->n].key);
		free(s->kv[s->n].value);
		fail("out of memory");
		return -1;
	}
	s->n++;
	return 0;
}

/* Reads one answer from stdin; surrounding blanks are dropped; an empty
 * answer takes def (when given). 1 with an answer, 0 for an empty one, -1
 * at end of input. */
static int ask(const char *question, const char *def, char *out, size_t len)
{
	size_t n;

	if (def != NULL && def[0] != '\0')
		printf("%s [%s]: ", question, def);
	else
		printf("%s: ", question);
	fflush(stdout);
	if (fgets(out, (int)len, stdin) == NULL)
		return -1;
	n = strlen(out);
	if (n > 0 && out[n - 1] != '\n' && !feof(stdin)) {
		int c;

		while ((c = getchar()) != '\n' && c != EOF)
			;
		fail("setup: answer too long");
		out[0] = '\0';
		return 0;
	}
	while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' ' || out[n - 1] == '\t'))
		out[--n] = '\0';
	n = strspn(out, " \t");
	memmove(out, out + n, strlen(out + n) + 1);
	if (out[0] == '\0' && def != NULL)
		snprintf(out, len, "%s", def);
	return out[0] != '\0';
}

/* The questions of an interactive setup; values given as options are
 * not asked again. */
static int setup_ask(struct setup *s)
{
	static const struct {
		const char *key;
		const char *question;
		bool required;
	} questions[] = {
		{ "tenant", "Entra tenant (directory) ID or verified domain", true },
		{ "client_id", "Application (client) ID of the app registration", true },
		{ "allowed_domains", "Domains whose users may log in (space separated, empty: any of the tenant)",
		  false },
		{ "authority", "Authority (empty: https://login.microsoftonline.com)", false },
		{ "ca_file", "CA bundle for TLS (empty: the system trust store)", false },
	};
	char answer[SETUP_LINE];
	int rc;

	printf("pam_entra setup: answers go to %s (see pam_entra.conf(5)).\n", config_path);
	for (size_t i = 0; i < sizeof(questions) / sizeof(questions[0]); i++) {
		const char *def = NULL;

		if (setup_get(s, questions[i].key) != NULL)
			continue;
		if (strcmp(questions[i].key, "allowed_domains") == 0) {
			/* A domain-form tenant is the likely first allowed domain. */
			def = setup_get(s, "tenant");
			if (def != NULL && (entra_is_guid(def) || strchr(def, '.') == NULL))
				def = NULL;
		}
		for (;;) {
			rc = ask(questions[i].question, def, answer, sizeof(answer));
			if (rc < 0) {
				fail("setup: end of input");
				return -1;
			}
			if (rc > 0 || !questions[i].required)
				break;
			printf("  %s is required.\n", questions[i].key);
		}
		if (rc > 0 && setup_put(s, questions[i].key, answer) != 0)
			return -1;
	}
	if (s->test_user == NULL) {
		char test[SETUP_LINE];

		rc = ask("Entra user for a test login now (empty: skip)", NULL, test, sizeof(test));
		if (rc > 0) {
			s->test_user = strdup(test);
			if (s->test_user == NULL)
				return -1;
		}
	}
	return 0;
}

/* The settings through the same setter, validation and account rules as
 * the module: a file setup writes is one the module loads. */
static struct entra_config *setup_validate(const struct setup *s)
{
	struct entra_config *cfg = entra_config_new();
	struct entra_userdb_rules rules;
	char err[512] = "";

	if (cfg == NULL) {
		fail("out of memory");
		return NULL;
	}
	for (size_t i = 0; i < s->n; i++) {
		if (entra_config_set(cfg, s->kv[i].key, s->kv[i].value, err, sizeof(err)) != 0)
			goto bad;
	}
	if (entra_config_validate(cfg, err, sizeof(err)) != 0 ||
	    entra_userdb_rules_from_config(cfg, &rules, err, sizeof(err)) != 0)
		goto bad;
	return cfg;
bad:
	fail("setup: %s", err[0] ? err : "invalid settings");
	entra_config_free(cfg);
	return NULL;
}

static char *setup_render(const struct setup *s)
{
	struct entra_buf b;
	char when[32];
	int rc;

	format_time((int64_t)time(NULL), when, sizeof(when));
	entra_buf_init(&b, SETUP_MAX_TEXT);
	rc = entra_buf_printf(&b,
			      "# %s -- Microsoft Entra ID login for this node.\n"
			      "# Written by \"entractl setup\" at %s. See pam_entra.conf(5) for every key,\n"
			      "# and /usr/share/doc/libpam-entra/examples/pam_entra.conf for a commented\n"
			      "# example. Keep it owned by root, mode 0644; check edits with \"entractl check\".\n"
			      "# No secret belongs here: the app registration is a public client.\n\n",
			      config_path, when);
	for (size_t i = 0; rc == 0 && i < s->n; i++)
		rc = entra_buf_printf(&b, "%s = %s\n", s->kv[i].key, s->kv[i].value);
	if (rc != 0) {
		entra_buf_free(&b);
		fail("setup: configuration too large");
		return NULL;
	}
	return entra_buf_steal(&b);
}

/* Writes the file atomically, root:root 0644, in a root-owned directory
 * that nobody else may write. An existing file is replaced only with
 * --force, and then kept as <file>.old. */
static int setup_write(const char *path, const char *text, bool force)
{
	char dir[4096];
	const char *slash = strrchr(path, '/');
	const char *name;
	char old[NAME_MAX + 1];
	struct stat st;
	int dfd, rc;

	if (path[0] != '/' || slash == NULL || slash[1] == '\0' || (size_t)(slash - path) >= sizeof(dir)) {
		fail("setup: --config must be an absolute file path");
		return -1;
	}
	name = slash + 1;
	if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	if (snprintf(old, sizeof(old), "%s.old", name) >= (int)sizeof(old)) {
		fail("setup: file name too long: %s", name);
		return -1;
	}
	dfd = entra_dir_open_trusted(dir, 0);
	if (dfd < 0) {
		fail("setup: directory %s: %s (it must be a directory owned by root that only root may write)",
		     dir, strerror(-dfd));
		return -1;
	}
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (!force) {
			fail("setup: %s exists; not overwritten (use --force to replace it; the old file is kept "
			     "as %s.old)", path, path);
			close(dfd);
			return -1;
		}
		if (!S_ISREG(st.st_mode)) {
			fail("setup: %s is not a regular file; not replaced", path);
			close(dfd);
			return -1;
		}
		/* Keep the old file under .old without a moment with no config:
		 * a hard link now, then the rename below replaces the name. */
		if ((unlinkat(dfd, old, 0) != 0 && errno != ENOENT) || linkat(dfd, name, dfd, old, 0) != 0) {
			fail("setup: cannot keep the old configuration as %s/%s: %s", dir, old, strerror(errno));
			close(dfd);
			return -1;
		}
	} else if (errno != ENOENT) {
		fail("setup: %s: %s", path, strerror(errno));
		close(dfd);
		return -1;
	}
	rc = entra_write_file_atomic(dfd, name, text, strlen(text), 0644, 0, 0);
	close(dfd);
	if (rc != 0) {
		fail("setup: cannot write %s: %s", path, strerror(-rc));
		return -1;
	}
	printf("wrote %s (root:root, 0644)\n", path);
	return 0;
}

static void setup_advice(const struct entra_config *cfg)
{
	printf("\nNext steps (not done by setup):\n"
	       "  1. sshd: in /etc/ssh/sshd_config (or a file in /etc/ssh/sshd_config.d/):\n"
	       "         KbdInteractiveAuthentication yes\n"
	       "         UsePAM yes\n"
	       "     then: systemctl reload ssh\n"
	       "  2. sudo for Entra admins (admin_roles/admin_groups make a user a member of %s):\n"
	       "         echo '%%%s ALL=(ALL:ALL) ALL' > /etc/sudoers.d/entra-admins\n"
	       "         chmod 0440 /etc/sudoers.d/entra-admins && visudo -c\n"
	       "  3. PAM: pam-auth-update --enable entra   (undo: pam-auth-update --disable entra)\n"
	       "  4. NSS: libnss-entra adds 'entra' to passwd/group in /etc/nsswitch.conf.\n\n",
	       cfg->admin_group, cfg->admin_group);
}

/* The device-code prompt in the terminal: show the text, wait for Enter.
 * Reads from stdin, so that a script can drive it too. */
static int terminal_prompt(void *host, const char *text)
{
	char line[256];

	(void)host;
	fputs(text, stdout);
	fflush(stdout);
	if (fgets(line, sizeof(line), stdin) == NULL)
		return -1;
	return 0;
}

/* Why another sign-in round is needed (a claims challenge): shown before
 * the next prompt. */
static void terminal_info(void *host, const char *text)
{
	(void)host;
	printf("%s\n", text);
	fflush(stdout);
}

/* A device-code login through the core library, with no PAM stack: who
 * signed in, and what the module would decide for them. Nothing is
 * recorded in the user database and no session is opened. */
static int test_login(const struct entra_config *cfg, const char *user)
{
	struct entra_device_hooks hooks = { .prompt = terminal_prompt, .info = terminal_info };
	struct entra_login_result result;
	struct entra_decision decision;
	enum entra_login_status outcome;
	char host[256];
	int ret = EXIT_FAILURE;

	if (!entra_name_is_valid(user)) {
		fail("test login: '%s' is not a valid user name", user);
		return EXIT_FAILURE;
	}
	if (gethostname(host, sizeof(host) - 1) != 0 || !entra_value_is_safe(host, sizeof(host)))
		snprintf(host, sizeof(host), "this host");
	host[sizeof(host) - 1] = '\0';
	memset(&result, 0, sizeof(result));
	printf("test login as %s (no PAM stack is used; nothing is recorded)\n", user);
	fflush(stdout);
	/* As the sshd service: that is the login people make first, and it
	 * selects the authentication context configured for it. */
	outcome = entra_login_authenticate(cfg, user, "sshd", host, &hooks, &logger, &result);
	switch (outcome) {
	case ENTRA_LOGIN_OK: {
		bool allowed, admin;

		entra_authorize(cfg, &result.identity, &decision);
		/* The module's rule: allow lists and Azure RBAC must both allow;
		 * either one makes an admin. */
		allowed = decision.allowed && (!result.rbac_checked || result.rbac.login_allowed);
		admin = allowed && (decision.admin || (result.rbac_checked && result.rbac.admin));
		printf("\nsigned in: %s (%s), object id %s, tenant %s\n", result.identity.username,
		       result.identity.display_name ? result.identity.display_name : "no display name",
		       result.identity.object_id, result.identity.tenant_id ? result.identity.tenant_id : "-");
		printf("allow lists: %s\n", decision.reason);
		if (result.rbac_checked)
			printf("Azure RBAC:  %s\n", result.rbac.reason);
		printf("login:       %s%s\n", allowed ? "allowed" : "DENIED", admin ? " [admin]" : "");
		ret = allowed ? EXIT_SUCCESS : EXIT_FAILURE;
		break;
	}
	case ENTRA_LOGIN_NOT_OURS:
		fail("test login: %s is not an Entra account under this configuration (user_mapping, "
		     "allowed_domains, local_users)", user);
		break;
	default:
		fail("test login failed (%s)%s%s", entra_login_status_str(outcome), result.message[0] ? ": " : "",
		     result.message);
		break;
	}
	entra_login_result_free(&result);
	return ret;
}

static int setup_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "non-interactive", no_argument, NULL, 'N' },
		{ "tenant", required_argument, NULL, 't' },
		{ "client-id", required_argument, NULL, 'C' },
		{ "allowed-domains", required_argument, NULL, 'D' },
		{ "authority", required_argument, NULL, 'A' },
		{ "ca-file", required_argument, NULL, 'F' },
		{ "set", required_argument, NULL, 'S' },
		{ "config", required_argument, NULL, 'c' },
		{ "force", no_argument, NULL, 'f' },
		{ "offline", no_argument, NULL, 'n' },
		{ "test-login", required_argument, NULL, 'T' },
		{ NULL, 0, NULL, 0 },
	};
	struct setup s;
	struct entra_config *cfg = NULL;
	struct entra_userdb_rules rules;
	char reason[512] = "";
	char *text = NULL;
	bool non_interactive = false;
	int c, rc = 0, ret = EXIT_FAILURE;

	memset(&s, 0, sizeof(s));
	optind = 0;
	while (rc == 0 && (c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		char *eq;

		switch (c) {
		case 'N':
			non_interactive = true;
			break;
		case 't':
			rc = setup_put(&s, "tenant", optarg);
			break;
		case 'C':
			rc = setup_put(&s, "client_id", optarg);
			break;
		case 'D':
			rc = setup_put(&s, "allowed_domains", optarg);
			break;
		case 'A':
			rc = setup_put(&s, "authority", optarg);
			break;
		case 'F':
			rc = setup_put(&s, "ca_file", optarg);
			break;
		case 'S':
			eq = strchr(optarg, '=');
			if (eq == NULL || eq == optarg) {
				fail("setup: --set wants KEY=VALUE");
				rc = -1;
				break;
			}
			*eq = '\0';
			rc = setup_put(&s, optarg, eq + 1);
			*eq = '=';
			break;
		case 'c':
			config_path = optarg;
			break;
		case 'f':
			s.force = true;
			break;
		case 'n':
			s.offline = true;
			break;
		case 'T':
			free(s.test_user);
			s.test_user = strdup(optarg);
			rc = s.test_user == NULL ? -1 : 0;
			break;
		default:
			usage(stderr);
			setup_free(&s);
			return EXIT_USAGE;
		}
	}
	if (rc != 0)
		goto out;
	if (optind != argc) {
		usage(stderr);
		setup_free(&s);
		return EXIT_USAGE;
	}
	if (geteuid() != 0) {
		fail("setup: run as root (the configuration and the user database are root's)");
		goto out;
	}
	s.interactive = !non_interactive;
	if (s.interactive) {
		if (!isatty(STDIN_FILENO)) {
			fail("setup: no terminal; use --non-interactive --tenant T --client-id C");
			goto out;
		}
		if (setup_ask(&s) != 0)
			goto out;
	} else if (setup_get(&s, "tenant") == NULL || setup_get(&s, "client_id") == NULL) {
		fail("setup: --non-interactive needs --tenant and --client-id");
		usage(stderr);
		setup_free(&s);
		return EXIT_USAGE;
	}

	cfg = setup_validate(&s);
	if (cfg == NULL)
		goto out;
	text = setup_render(&s);
	if (text == NULL || setup_write(config_path, text, s.force) != 0)
		goto out;
	setup_advice(cfg);

	/* NSS resolves names before their first login only from the
	 * database: write it now with the new rules (entractl sync). */
	if (entra_userdb_rules_from_config(cfg, &rules, reason, sizeof(reason)) != 0) {
		fail("configuration: %s", reason);
		goto out;
	}
	if (sync_rules(cfg, &rules) != EXIT_SUCCESS)
		goto out;

	printf("\nchecking the setup (entractl check%s):\n", s.offline ? " --offline" : "");
	ret = check(s.offline);
	if (ret != EXIT_SUCCESS) {
		printf("setup: the configuration is written, but the check found problems (above)\n");
		goto out;
	}
	if (s.test_user != NULL) {
		printf("\n");
		ret = test_login(cfg, s.test_user);
	}
out:
	free(text);
	entra_config_free(cfg);
	setup_free(&s);
	return ret;
}

/* ---- main ---------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "debug", no_argument, NULL, 'd' },
		{ "offline", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct entra_config *cfg;
	struct entra_userdb_rules rules;
	char reason[512] = "";
	bool offline = false;
	const char *cmd;
	int c, ret;

	logger = entra_log_stderr;
	while ((c = getopt_long(argc, argv, "+c:dh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config_path = optarg;
			break;
		case 'd':
			logger.debug = true;
			break;
		case 'n':
			offline = true;
			break;
		case 'h':
			usage(stdout);
			return EXIT_SUCCESS;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	cmd = argv[optind];
	argc -= optind;
	argv += optind;

	if (strcmp(cmd, "setup") == 0)
		return setup_main(argc, argv);

	if (strcmp(cmd, "check") == 0 && (argc == 1 || (argc == 2 && strcmp(argv[1], "--offline") == 0)))
		return check(offline || argc == 2);

	if (!(strcmp(cmd, "status") == 0 && argc == 1) && !(strcmp(cmd, "sync") == 0 && argc == 1) &&
	    !(strcmp(cmd, "users") == 0 && argc >= 2)) {
		fail("unknown command or wrong arguments: %s", cmd);
		usage(stderr);
		return EXIT_USAGE;
	}
	cfg = load_config(geteuid() == 0);
	if (cfg == NULL)
		return EXIT_FAILURE;
	if (entra_userdb_rules_from_config(cfg, &rules, reason, sizeof(reason)) != 0) {
		fail("configuration: %s", reason);
		entra_config_free(cfg);
		return EXIT_FAILURE;
	}
	if (strcmp(cmd, "status") == 0) {
		ret = status(cfg);
	} else if (strcmp(cmd, "sync") == 0) {
		ret = sync_rules(cfg, &rules);
	} else if (strcmp(argv[1], "list") == 0 && argc == 2) {
		ret = users_list(cfg);
	} else if (strcmp(argv[1], "show") == 0 && argc == 3) {
		ret = users_show(cfg, argv[2]);
	} else if (strcmp(argv[1], "add") == 0 && argc >= 3) {
		ret = users_add(cfg, &rules, argc - 1, argv + 1);
	} else if (strcmp(argv[1], "remove") == 0 && argc == 3) {
		ret = users_remove(cfg, &rules, argv[2]);
	} else {
		fail("unknown users command: %s", argv[1]);
		usage(stderr);
		ret = EXIT_USAGE;
	}
	entra_config_free(cfg);
	return ret;
}
