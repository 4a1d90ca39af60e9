/* entractl: the administrator's tool. Users of the local database, the
 * health of the node's pam_entra state, and a check of the whole setup. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "http.h"
#include "log.h"
#include "names.h"
#include "oidc.h"
#include "userdb.h"
#include "userdb_config.h"

#define EXIT_USAGE 2

static const char usage_text[] =
	"usage: entractl [--config PATH] [--debug] COMMAND\n"
	"\n"
	"commands:\n"
	"  users list                      list the Entra users known to this node\n"
	"  users show NAME                 one user (or how a new name would resolve)\n"
	"  users add UPN [--object-id GUID] [--admin]\n"
	"                                  pre-provision a user before the first login\n"
	"  users remove NAME|OBJECT-ID     forget a user (the uid may be reused)\n"
	"  sync                            write the config's rules into the database\n"
	"  status                          database health, caches, live sessions\n"
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
		       now - st.st_mtime > ENTRA_OIDC_TTL ? " (past the 24 h TTL: refetched at next login)" : "");
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
	http = entra_http_new(&opt, &logger);
	if (http == NULL) {
		problem("cannot set up HTTPS (libcurl)", "check that libcurl is installed and ca_file is readable");
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
