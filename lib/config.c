/* The configuration: one table row per key, one setter shared by the
 * config file and the PAM module arguments, so both are checked alike. */
#include "config.h"
#include "names.h"
#include "rbac.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define UID_LAST 4294967294UL  /* (uid_t)-1 means "no uid" and is never valid */
#define STRING_MAX 2048        /* longest string value */
#define LIST_MAX_ITEMS 1024
#define LIST_ITEM_MAX ENTRA_NAME_MAX
#define KEY_NAME_MAX 64

enum key_type {
	KEY_STRING,
	KEY_PATH,   /* a string that must be an absolute path */
	KEY_URL,    /* http(s)://host[:port][/path], no query, fragment or user info */
	KEY_BOOL,
	KEY_INT,
	KEY_ULONG,
	KEY_RANGE,  /* "MIN-MAX" into two unsigned long fields; "none" = 0-0 */
	KEY_ENUM,
	KEY_LIST,
};

struct key_def {
	const char *name;
	enum key_type type;
	size_t offset;
	size_t offset2;                 /* KEY_RANGE: the field of MAX */
	unsigned long min, max;         /* KEY_INT, KEY_ULONG, KEY_RANGE; KEY_URL: min=1 for https only */
	const char *const *choices;     /* KEY_ENUM: NULL-terminated, index = enum value */
};

static const char *const mapping_names[] = { "upn", "localpart", "file", NULL };
static const char *const msi_names[] = { "auto", "imds", "azureml", "appservice", "arc", NULL };

#define OFF(field) offsetof(struct entra_config, field)
#define STR(k) { #k, KEY_STRING, OFF(k), 0, 0, 0, NULL }
#define PATH(k) { #k, KEY_PATH, OFF(k), 0, 0, 0, NULL }
#define BOOL(k) { #k, KEY_BOOL, OFF(k), 0, 0, 0, NULL }
#define LIST(k) { #k, KEY_LIST, OFF(k), 0, 0, 0, NULL }
#define INT(k, lo, hi) { #k, KEY_INT, OFF(k), 0, lo, hi, NULL }
#define ULONG(k, lo, hi) { #k, KEY_ULONG, OFF(k), 0, lo, hi, NULL }

static const struct key_def keys[] = {
	STR(tenant),
	STR(client_id),
	{ "authority", KEY_URL, OFF(authority), 0, 1, 0, NULL },
	PATH(ca_file),
	{ "https_proxy", KEY_URL, OFF(https_proxy), 0, 0, 0, NULL },
	STR(resource),
	STR(identity_claim),
	STR(username_claim),
	INT(http_timeout, 1, 120),
	INT(login_timeout, 10, 3600),
	INT(clock_skew, 0, 120),
	STR(subscription_id),
	STR(resource_group),
	STR(workspace_name),
	{ "user_mapping", KEY_ENUM, OFF(user_mapping), 0, 0, 0, mapping_names },
	LIST(allowed_domains),
	PATH(map_file),
	LIST(local_users),
	LIST(allow_users),
	LIST(allow_groups),
	LIST(allow_roles),
	LIST(admin_groups),
	LIST(admin_roles),
	PATH(cache_dir),
	PATH(run_dir),
	PATH(db_dir),
	ULONG(uid_min, 65536, UID_LAST),
	ULONG(uid_max, 65536, UID_LAST),
	STR(admin_group),
	ULONG(admin_gid, 1, UID_LAST),
	STR(home_template),
	PATH(shell),
	BOOL(create_home),
	{ "msi_source", KEY_ENUM, OFF(msi_source), 0, 0, 0, msi_names },
	{ "imds_endpoint", KEY_URL, OFF(imds_endpoint), 0, 0, 0, NULL },
	LIST(service_accounts),
	{ "service_uids", KEY_RANGE, OFF(service_uid_min), OFF(service_uid_max), 0, UID_LAST, NULL },
	STR(service_resource),
	STR(service_client_id),
	LIST(service_identities),
	BOOL(service_token_required),
	INT(tokend_port, 1, 65535),
	PATH(tokend_socket),
	{ "arm_url", KEY_URL, OFF(arm_url), 0, 1, 0, NULL },
	STR(arm_audience),
	STR(rbac_scope),
	LIST(rbac_login_actions),
	LIST(rbac_admin_actions),
	INT(rbac_cache_ttl, 0, 86400),
	BOOL(require_mfa),
	LIST(auth_context),
	LIST(client_capabilities),
	INT(sudo_reuse_window, 0, 3600),
	BOOL(export_token),
	BOOL(qr_code),
	BOOL(debug),
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

/* Enum fields are written through an int: both enums are int-sized. */
_Static_assert(sizeof(enum entra_user_mapping) == sizeof(int), "enum size");
_Static_assert(sizeof(enum entra_msi_source) == sizeof(int), "enum size");

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static const struct key_def *find_key(const char *name)
{
	/* The first byte first: most keys are skipped without a call. */
	for (size_t i = 0; i < NKEYS; i++)
		if (keys[i].name[0] == name[0] && strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

static char **str_field(struct entra_config *cfg, const struct key_def *k)
{
	return (char **)((char *)cfg + k->offset);
}

static struct entra_strlist *list_field(struct entra_config *cfg, const struct key_def *k)
{
	return (struct entra_strlist *)((char *)cfg + k->offset);
}

static void strlist_clear(struct entra_strlist *list)
{
	for (size_t i = 0; i < list->count; i++)
		free(list->items[i]);
	free(list->items);
	list->items = NULL;
	list->count = 0;
}

bool entra_strlist_contains(const struct entra_strlist *list, const char *s)
{
	if (list == NULL || s == NULL)
		return false;
	for (size_t i = 0; i < list->count; i++)
		if (entra_streq_nocase(list->items[i], s))
			return true;
	return false;
}

static int replace_string(char **field, const char *value)
{
	char *copy = strdup(value);

	if (copy == NULL)
		return -ENOMEM;
	free(*field);
	*field = copy;
	return 0;
}

/* Digits only: no sign, no spaces, no hex, no trailing text. */
static bool parse_ulong(const char *s, unsigned long *out)
{
	unsigned long v;
	char *end;

	if (s[0] < '0' || s[0] > '9')
		return false;
	for (const char *p = s; *p != '\0'; p++)
		if (*p < '0' || *p > '9')
			return false;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return false;
	*out = v;
	return true;
}

static bool parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return true;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return true;
		}
	}
	return false;
}

/* http(s)://host[:port][/path]; with https_only, only https. */
static bool url_is_ok(const char *s, bool https_only)
{
	const char *host;
	size_t hostlen;

	if (strncasecmp(s, "https://", 8) == 0)
		host = s + 8;
	else if (!https_only && strncasecmp(s, "http://", 7) == 0)
		host = s + 7;
	else
		return false;
	hostlen = strcspn(host, "/");
	if (hostlen == 0 || host[0] == ':')
		return false;
	/* No user info, query, fragment, spaces or backslashes anywhere. */
	return strpbrk(s, "@?# \\") == NULL;
}

static int set_list(struct entra_strlist *list, const char *value, const char *key,
		    char *err, size_t errlen)
{
	static const char seps[] = ", "; /* tabs never get here: control characters */
	struct entra_strlist fresh = { NULL, 0 };
	const char *p = value;

	while (*p != '\0') {
		size_t len;
		char **grown;

		p += strspn(p, seps);
		len = strcspn(p, seps);
		if (len == 0)
			break;
		if (len > LIST_ITEM_MAX) {
			set_err(err, errlen, "%s: an entry is longer than %d bytes", key,
				LIST_ITEM_MAX);
			goto fail;
		}
		if (fresh.count >= LIST_MAX_ITEMS) {
			set_err(err, errlen, "%s: more than %d entries", key, LIST_MAX_ITEMS);
			goto fail;
		}
		/* Room for the entry and the NULL that ends the array. */
		grown = realloc(fresh.items, (fresh.count + 2) * sizeof(*grown));
		if (grown == NULL)
			goto nomem;
		fresh.items = grown;
		fresh.items[fresh.count] = strndup(p, len);
		if (fresh.items[fresh.count] == NULL)
			goto nomem;
		fresh.count++;
		fresh.items[fresh.count] = NULL;
		p += len;
	}
	/* A new value replaces the list: a module argument overrides the file. */
	strlist_clear(list);
	*list = fresh;
	return 0;
nomem:
	set_err(err, errlen, "%s: out of memory", key);
	strlist_clear(&fresh);
	return -ENOMEM;
fail:
	strlist_clear(&fresh);
	return -EINVAL;
}

int entra_config_set(struct entra_config *cfg, const char *key, const char *value,
		     char *err, size_t errlen)
{
	const struct key_def *k;
	unsigned long v, v2;
	bool b;
	char *dash;
	char lo[32];

	if (cfg == NULL || key == NULL || value == NULL) {
		set_err(err, errlen, "internal error: no key or value");
		return -EINVAL;
	}
	if (!entra_value_is_safe(key, KEY_NAME_MAX) || (k = find_key(key)) == NULL) {
		if (entra_value_is_safe(key, KEY_NAME_MAX))
			set_err(err, errlen, "unknown key '%s'; see pam_entra.conf(5)", key);
		else
			set_err(err, errlen, "unknown key; see pam_entra.conf(5)");
		return -EINVAL;
	}
	if (!entra_value_is_safe(value, STRING_MAX)) {
		set_err(err, errlen, "%s: value too long or contains a control character", key);
		return -EINVAL;
	}

	switch (k->type) {
	case KEY_STRING:
	case KEY_PATH:
	case KEY_URL:
		if (value[0] == '\0') {
			set_err(err, errlen, "%s: empty value; remove the line to keep the default",
				key);
			return -EINVAL;
		}
		if (k->type == KEY_PATH && value[0] != '/') {
			set_err(err, errlen, "%s: '%s' is not an absolute path", key, value);
			return -EINVAL;
		}
		if (k->type == KEY_URL && !url_is_ok(value, k->min == 1)) {
			set_err(err, errlen,
				"%s: '%s' is not a URL of the form %s://host[:port][/path] "
				"(no query, fragment or user info)",
				key, value, k->min == 1 ? "https" : "http(s)");
			return -EINVAL;
		}
		/* The HTTP client tunnels through an http:// proxy only. */
		if (strcmp(key, "https_proxy") == 0 &&
		    (strncasecmp(value, "http://", 7) != 0 ||
		     strcspn(value + 7, "/") + 7 < strlen(value) - (value[strlen(value) - 1] == '/'))) {
			set_err(err, errlen, "https_proxy: '%s' is not of the form http://host[:port]", value);
			return -EINVAL;
		}
		if (replace_string(str_field(cfg, k), value) < 0) {
			set_err(err, errlen, "%s: out of memory", key);
			return -ENOMEM;
		}
		if (k->type == KEY_URL) {
			/* Other units append "/<tenant>/..." to it. */
			char *s = *str_field(cfg, k);
			size_t keep = (size_t)(strstr(s, "://") - s) + 4; /* scheme, one host byte */
			size_t n = strlen(s);

			while (n > keep && s[n - 1] == '/')
				s[--n] = '\0';
		}
		return 0;
	case KEY_BOOL:
		if (!parse_bool(value, &b)) {
			set_err(err, errlen, "%s: expected yes or no, not '%s'", key, value);
			return -EINVAL;
		}
		*(bool *)((char *)cfg + k->offset) = b;
		return 0;
	case KEY_INT:
	case KEY_ULONG:
		if (!parse_ulong(value, &v) || v < k->min || v > k->max) {
			set_err(err, errlen, "%s: expected a number from %lu to %lu, not '%s'", key,
				k->min, k->max, value);
			return -EINVAL;
		}
		if (k->type == KEY_INT)
			*(int *)((char *)cfg + k->offset) = (int)v;
		else
			*(unsigned long *)((char *)cfg + k->offset) = v;
		return 0;
	case KEY_RANGE:
		if (strcasecmp(value, "none") == 0) {
			v = v2 = 0;
		} else {
			dash = strchr(value, '-');
			if (dash == NULL || (size_t)(dash - value) >= sizeof(lo))
				goto bad_range;
			memcpy(lo, value, (size_t)(dash - value));
			lo[dash - value] = '\0';
			if (!parse_ulong(lo, &v) || !parse_ulong(dash + 1, &v2) || v > v2 ||
			    v < k->min || v2 > k->max)
				goto bad_range;
		}
		*(unsigned long *)((char *)cfg + k->offset) = v;
		*(unsigned long *)((char *)cfg + k->offset2) = v2;
		return 0;
	case KEY_ENUM:
		for (size_t i = 0; k->choices[i] != NULL; i++) {
			if (strcmp(value, k->choices[i]) == 0) {
				*(int *)((char *)cfg + k->offset) = (int)i;
				return 0;
			}
		}
		{
			char choices[128] = "";
			size_t used = 0;

			for (size_t i = 0; k->choices[i] != NULL && used < sizeof(choices); i++) {
				int n = snprintf(choices + used, sizeof(choices) - used, "%s%s",
						 i ? ", " : "", k->choices[i]);
				if (n < 0)
					break;
				used += (size_t)n;
			}
			set_err(err, errlen, "%s: expected one of %s, not '%s'", key, choices,
				value);
		}
		return -EINVAL;
	case KEY_LIST:
		return set_list(list_field(cfg, k), value, key, err, errlen);
	}
	set_err(err, errlen, "%s: internal error: unknown key type", key);
	return -EINVAL;
bad_range:
	set_err(err, errlen, "%s: expected MIN-MAX with MIN <= MAX <= %lu (or none), not '%s'", key,
		k->max, value);
	return -EINVAL;
}

struct entra_config *entra_config_new(void)
{
	static const struct {
		const char *key, *value;
	} defaults[] = {
		{ "authority", "https://login.microsoftonline.com" },
		{ "resource", "https://management.azure.com/.default" },
		{ "identity_claim", "oid" },
		{ "username_claim", "preferred_username" },
		{ "cache_dir", LOCALSTATEDIR "/cache/pam_entra" },
		{ "run_dir", RUNSTATEDIR "/pam_entra" },
		{ "db_dir", LOCALSTATEDIR "/lib/pam_entra" },
		{ "admin_group", "entra-admins" },
		{ "home_template", "/home/%u" },
		{ "shell", "/bin/bash" },
		{ "imds_endpoint", "http://169.254.169.254" },
		{ "tokend_socket", RUNSTATEDIR "/entra-tokend.sock" },
		{ "arm_url", "https://management.azure.com" },
		{ "arm_audience", "https://management.azure.com/" },
		{ "rbac_login_actions", "Microsoft.Compute/virtualMachines/login/action" },
		{ "rbac_admin_actions", "Microsoft.Compute/virtualMachines/loginAsAdmin/action" },
	};
	struct entra_config *cfg = calloc(1, sizeof(*cfg));

	if (cfg == NULL)
		return NULL;
	cfg->http_timeout = 10;
	cfg->login_timeout = 100;
	cfg->clock_skew = 120;
	cfg->user_mapping = ENTRA_MAP_UPN;
	cfg->uid_min = 1900000000UL;
	cfg->uid_max = 1999999999UL;
	cfg->admin_gid = 1899999999UL;
	cfg->create_home = true;
	cfg->msi_source = ENTRA_MSI_AUTO;
	cfg->qr_code = true;
	cfg->tokend_port = ENTRA_TOKEND_DEFAULT_PORT;
	cfg->rbac_cache_ttl = 300;
	cfg->check_owner = true;
	/* Constants, checked by the setter in the unit tests (test_config's
	 * defaults test): copied here without parsing, at every PAM handle. */
	for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
		const struct key_def *k = find_key(defaults[i].key);
		int rc = k->type == KEY_LIST ? set_list(list_field(cfg, k), defaults[i].value, k->name, NULL, 0)
					     : replace_string(str_field(cfg, k), defaults[i].value);

		if (rc < 0) {
			entra_config_free(cfg);
			return NULL;
		}
	}
	return cfg;
}

void entra_config_free(struct entra_config *cfg)
{
	if (cfg == NULL)
		return;
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key_def *k = &keys[i];

		if (k->type == KEY_STRING || k->type == KEY_PATH || k->type == KEY_URL)
			free(*str_field(cfg, k));
		else if (k->type == KEY_LIST)
			strlist_clear(list_field(cfg, k));
	}
	free(cfg);
}

int entra_config_open(const char *path, struct stat *st)
{
	int fd;

	if (path == NULL || path[0] == '\0')
		return -EINVAL;
	/* O_NONBLOCK: a FIFO must not hang us before fstat refuses it. */
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (fstat(fd, st) < 0) {
		int rc = -errno;

		close(fd);
		return rc;
	}
	return fd;
}

int entra_config_identity(const char *path, struct stat *st)
{
	const unsigned int wanted = STATX_TYPE | STATX_MODE | STATX_UID | STATX_GID | STATX_INO |
				    STATX_SIZE | STATX_MTIME | STATX_CTIME;
	struct statx sx;

	if (path == NULL || path[0] == '\0')
		return -EINVAL;
	if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW | AT_STATX_FORCE_SYNC, wanted, &sx) != 0)
		return -errno;
	if ((sx.stx_mask & wanted) != wanted)
		return -EIO; /* a file system that cannot say: open it */
	memset(st, 0, sizeof(*st));
	st->st_dev = makedev(sx.stx_dev_major, sx.stx_dev_minor);
	st->st_ino = sx.stx_ino;
	st->st_size = (off_t)sx.stx_size;
	st->st_mode = sx.stx_mode;
	st->st_uid = sx.stx_uid;
	st->st_gid = sx.stx_gid;
	st->st_mtim.tv_sec = sx.stx_mtime.tv_sec;
	st->st_mtim.tv_nsec = sx.stx_mtime.tv_nsec;
	st->st_ctim.tv_sec = sx.stx_ctime.tv_sec;
	st->st_ctim.tv_nsec = sx.stx_ctime.tv_nsec;
	return 0;
}

/* The checks and the read of entra_config_read_file on an open file. */
static int read_fd(int fd, const struct stat *stp, size_t max, bool check_owner,
		   struct entra_buf *out)
{
	const struct stat st = *stp;
	char chunk[4096];
	int rc = 0;

	entra_buf_init(out, max);
	if (!S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		goto out;
	}
	if (check_owner && st.st_uid != 0) {
		rc = -EPERM;
		goto out;
	}
	if (check_owner && (st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
		rc = -EACCES;
		goto out;
	}
	if ((unsigned long long)st.st_size > max) {
		rc = -EFBIG;
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			break;
		}
		if (n == 0)
			break;
		rc = entra_buf_append(out, chunk, (size_t)n);
		if (rc == -E2BIG)
			rc = -EFBIG; /* grew after fstat */
		if (rc < 0)
			break;
	}
	if (rc == 0 && out->data == NULL)
		rc = entra_buf_append(out, "", 0);
out:
	explicit_bzero(chunk, sizeof(chunk));
	if (rc < 0)
		entra_buf_free(out);
	return rc;
}

int entra_config_read_file(const char *path, size_t max, bool check_owner, struct entra_buf *out)
{
	struct stat st;
	int fd, rc;

	entra_buf_init(out, max);
	fd = entra_config_open(path, &st);
	if (fd < 0)
		return fd;
	rc = read_fd(fd, &st, max, check_owner, out);
	close(fd);
	return rc;
}

static const char *read_error_hint(int rc)
{
	switch (rc) {
	case -ENOENT:
		return "file not found";
	case -ELOOP:
		return "is a symbolic link; point to the real file";
	case -EINVAL:
		return "not a regular file";
	case -EPERM:
		return "not owned by root; run chown root:root on it";
	case -EACCES:
		return "writable by group or others (or unreadable); run chmod 0644 on it";
	case -EFBIG:
		return "file too large";
	default:
		return strerror(-rc);
	}
}

static char *trim(char *s)
{
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
		*--end = '\0';
	return s;
}

int entra_config_load(struct entra_config *cfg, const char *path, bool check_owner,
		      char *err, size_t errlen)
{
	struct stat st;
	int fd, rc;

	if (cfg == NULL || path == NULL) {
		set_err(err, errlen, "internal error: no configuration or path");
		return -EINVAL;
	}
	fd = entra_config_open(path, &st);
	if (fd < 0) {
		set_err(err, errlen, "%s: %s", path, read_error_hint(fd));
		return fd;
	}
	rc = entra_config_load_fd(cfg, fd, &st, path, check_owner, err, errlen);
	close(fd);
	return rc;
}

int entra_config_load_fd(struct entra_config *cfg, int fd, const struct stat *st, const char *path,
			 bool check_owner, char *err, size_t errlen)
{
	unsigned int first_line[NKEYS] = { 0 };
	struct entra_buf buf;
	char line[ENTRA_CONFIG_MAX_LINE + 1];
	char msg[512];
	size_t pos = 0;
	unsigned int lineno = 0;
	int rc;

	if (cfg == NULL || path == NULL || st == NULL) {
		set_err(err, errlen, "internal error: no configuration or path");
		return -EINVAL;
	}
	rc = read_fd(fd, st, ENTRA_CONFIG_MAX_FILE, check_owner, &buf);
	if (rc < 0) {
		if (rc == -EFBIG)
			set_err(err, errlen, "%s: larger than %zu bytes", path,
				ENTRA_CONFIG_MAX_FILE);
		else
			set_err(err, errlen, "%s: %s", path, read_error_hint(rc));
		return rc;
	}
	cfg->check_owner = check_owner;

	rc = 0;
	while (pos < buf.len) {
		const char *start = buf.data + pos;
		const char *nl = memchr(start, '\n', buf.len - pos);
		size_t len = nl ? (size_t)(nl - start) : buf.len - pos;
		const struct key_def *k;
		char *p, *eq, *key, *value;

		pos += len + (nl ? 1 : 0);
		lineno++;
		if (len > 0 && start[len - 1] == '\r')
			len--; /* tolerate CRLF */
		if (len > ENTRA_CONFIG_MAX_LINE) {
			set_err(err, errlen, "%s:%u: line longer than %d bytes", path, lineno,
				ENTRA_CONFIG_MAX_LINE);
			rc = -EINVAL;
			break;
		}
		memcpy(line, start, len);
		line[len] = '\0';
		if (strlen(line) != len) {
			set_err(err, errlen, "%s:%u: contains a NUL byte", path, lineno);
			rc = -EINVAL;
			break;
		}
		p = trim(line);
		if (*p == '\0' || *p == '#')
			continue;
		eq = strchr(p, '=');
		if (eq == NULL) {
			set_err(err, errlen, "%s:%u: expected 'key = value'", path, lineno);
			rc = -EINVAL;
			break;
		}
		*eq = '\0';
		key = trim(p);
		value = trim(eq + 1);
		if (*key == '\0') {
			set_err(err, errlen, "%s:%u: expected 'key = value', the key is missing",
				path, lineno);
			rc = -EINVAL;
			break;
		}
		k = find_key(key);
		if (k != NULL && first_line[k - keys] != 0) {
			set_err(err, errlen, "%s:%u: duplicate key '%s' (first set on line %u)",
				path, lineno, key, first_line[k - keys]);
			rc = -EINVAL;
			break;
		}
		rc = entra_config_set(cfg, key, value, msg, sizeof(msg));
		if (rc < 0) {
			set_err(err, errlen, "%s:%u: %s", path, lineno, msg);
			break;
		}
		first_line[k - keys] = lineno;
	}
	explicit_bzero(line, sizeof(line));
	entra_buf_free(&buf);
	return rc;
}

int entra_config_apply_arg(struct entra_config *cfg, const char *arg, char *err, size_t errlen)
{
	char key[KEY_NAME_MAX + 1];
	const char *eq;
	size_t len;

	if (cfg == NULL || arg == NULL) {
		set_err(err, errlen, "internal error: no argument");
		return -EINVAL;
	}
	if (!entra_value_is_safe(arg, ENTRA_CONFIG_MAX_LINE)) {
		set_err(err, errlen, "module argument too long or contains a control character");
		return -EINVAL;
	}
	eq = strchr(arg, '=');
	if (eq == NULL) {
		if (strcmp(arg, "debug") == 0) {
			cfg->debug = true;
			return 0;
		}
		set_err(err, errlen,
			"unknown module argument '%.64s'; use key=value (the only bare flag is debug)",
			arg);
		return -EINVAL;
	}
	len = (size_t)(eq - arg);
	if (len == 0 || len > KEY_NAME_MAX) {
		set_err(err, errlen, "module argument '%.64s': expected key=value", arg);
		return -EINVAL;
	}
	memcpy(key, arg, len);
	key[len] = '\0';
	/* conf= names the file; the caller reads it before the other arguments. */
	if (strcmp(key, "conf") == 0)
		return 0;
	return entra_config_set(cfg, key, eq + 1, err, errlen);
}

/* A DNS name with at least two labels: letters, digits, hyphens. */
static bool is_dns_name(const char *s)
{
	size_t total = strlen(s), label = 0, labels = 0;

	if (total == 0 || total > 253)
		return false;
	for (size_t i = 0; i <= total; i++) {
		char c = s[i];

		if (c == '.' || c == '\0') {
			if (label == 0 || label > 63 || s[i - 1] == '-')
				return false;
			labels++;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-'))
			return false;
		if (label == 0 && c == '-')
			return false;
		label++;
	}
	return labels >= 2;
}

static bool chars_in(const char *s, const char *extra, size_t min, size_t max)
{
	size_t len = strlen(s);

	if (len < min || len > max)
		return false;
	for (const char *p = s; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || strchr(extra, *p) != NULL))
			return false;
	return true;
}

static bool home_template_ok(const char *t)
{
	bool has_user = false;

	size_t len = strlen(t);

	if (t[0] != '/' || strstr(t, "/../") != NULL || strstr(t, "/./") != NULL ||
	    (len >= 3 && strcmp(t + len - 3, "/..") == 0) ||
	    (len >= 2 && strcmp(t + len - 2, "/.") == 0))
		return false;
	for (const char *p = t; *p != '\0'; p++) {
		if (*p != '%')
			continue;
		p++;
		if (*p == 'u' || *p == 'U')
			has_user = true;
		else if (*p != '%')
			return false;
	}
	return has_user;
}

static int check_list(const struct entra_strlist *list, const char *key,
		      bool (*ok)(const char *), const char *what, char *err, size_t errlen)
{
	for (size_t i = 0; i < list->count; i++) {
		if (!ok(list->items[i])) {
			set_err(err, errlen, "%s: '%s' is not %s", key, list->items[i], what);
			return -EINVAL;
		}
	}
	return 0;
}

static bool service_account_ok(const char *s)
{
	return entra_name_is_valid(s[0] == '@' ? s + 1 : s);
}

static bool service_identity_ok(const char *s)
{
	const char *colon = strchr(s, ':');
	char account[LIST_ITEM_MAX + 1];
	size_t len;

	if (colon == NULL || !entra_is_guid(colon + 1))
		return false;
	len = (size_t)(colon - s);
	if (len == 0 || len > LIST_ITEM_MAX)
		return false;
	memcpy(account, s, len);
	account[len] = '\0';
	return entra_name_is_valid(account);
}

static bool allow_user_ok(const char *s)
{
	return entra_is_guid(s) || (entra_name_is_valid(s) && strchr(s, '@') != NULL);
}

static bool claim_value_ok(const char *s)
{
	return s[0] != '\0' && entra_value_is_safe(s, LIST_ITEM_MAX);
}

static bool ranges_overlap(unsigned long a0, unsigned long a1, unsigned long b0, unsigned long b1)
{
	return a0 <= b1 && b0 <= a1;
}

/* "service:cN" with a PAM service name and an authentication context
 * id c1..c25. */
static bool auth_context_ok(const char *s)
{
	const char *colon = strchr(s, ':');
	char *end;
	long n;

	if (colon == NULL || colon == s || (size_t)(colon - s) > 64)
		return false;
	for (const char *p = s; p < colon; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.'))
			return false;
	if (colon[1] != 'c' || colon[2] < '1' || colon[2] > '9')
		return false;
	errno = 0;
	n = strtol(colon + 2, &end, 10);
	return errno == 0 && *end == '\0' && n >= 1 && n <= 25;
}

static bool capability_ok(const char *s)
{
	if (*s == '\0' || strlen(s) > 32)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9')))
			return false;
	return true;
}

/* RBAC and conditional-access keys: they read the ARM access token, so
 * the session's resource must be ARM. */
static int validate_access_checks(const struct entra_config *cfg, char *err, size_t errlen)
{
	const struct entra_strlist *lists[] = { &cfg->rbac_login_actions, &cfg->rbac_admin_actions };
	const char *names[] = { "rbac_login_actions", "rbac_admin_actions" };
	char why[256];
	size_t len;

	if (cfg->rbac_scope != NULL && !entra_rbac_scope_is_valid(cfg->rbac_scope)) {
		set_err(err, errlen,
			"rbac_scope: '%s' is not an ARM resource id; use the id of the VM or "
			"workspace, like /subscriptions/<guid>/resourceGroups/<rg>/providers/...",
			cfg->rbac_scope);
		return -EINVAL;
	}
	for (size_t l = 0; l < 2; l++) {
		if (cfg->rbac_scope != NULL && lists[l]->count == 0 && l == 0) {
			set_err(err, errlen, "rbac_login_actions: empty; with rbac_scope set, name the "
				"action that allows login (default Microsoft.Compute/virtualMachines/login/action)");
			return -EINVAL;
		}
		for (size_t i = 0; i < lists[l]->count; i++) {
			if (entra_rbac_action_check(lists[l]->items[i], why, sizeof(why)) < 0) {
				set_err(err, errlen, "%s: %s", names[l], why);
				return -EINVAL;
			}
		}
	}
	for (size_t i = 0; i < cfg->auth_context.count; i++) {
		if (!auth_context_ok(cfg->auth_context.items[i])) {
			set_err(err, errlen,
				"auth_context: '%s' must be service:cN, a PAM service name and an "
				"authentication context id c1-c25, such as sudo:c2",
				cfg->auth_context.items[i]);
			return -EINVAL;
		}
	}
	for (size_t i = 0; i < cfg->client_capabilities.count; i++) {
		if (!capability_ok(cfg->client_capabilities.items[i])) {
			set_err(err, errlen,
				"client_capabilities: '%s' is not a capability name such as cp1",
				cfg->client_capabilities.items[i]);
			return -EINVAL;
		}
	}
	if (cfg->arm_audience == NULL || strncmp(cfg->arm_audience, "https://", 8) != 0) {
		set_err(err, errlen, "arm_audience: must be an https URL such as https://management.azure.com/");
		return -EINVAL;
	}
	len = strlen(cfg->arm_audience);
	if (cfg->arm_audience[len - 1] == '/')
		len--;
	if ((cfg->rbac_scope != NULL || cfg->require_mfa || cfg->auth_context.count > 0) &&
	    strncmp(cfg->resource, cfg->arm_audience, len) != 0) {
		set_err(err, errlen,
			"resource: rbac_scope, require_mfa and auth_context read the Azure Resource "
			"Manager token, so resource must be %.*s/.default",
			(int)len, cfg->arm_audience);
		return -EINVAL;
	}
	return 0;
}

int entra_config_validate(const struct entra_config *cfg, char *err, size_t errlen)
{
	int workspace_keys;

	if (cfg == NULL) {
		set_err(err, errlen, "internal error: no configuration");
		return -EINVAL;
	}
	if (cfg->tenant == NULL) {
		set_err(err, errlen,
			"tenant: required; set it to your Entra tenant ID (a GUID) or primary domain");
		return -EINVAL;
	}
	if (entra_streq_nocase(cfg->tenant, "common") ||
	    entra_streq_nocase(cfg->tenant, "organizations") ||
	    entra_streq_nocase(cfg->tenant, "consumers")) {
		set_err(err, errlen,
			"tenant: '%s' would let accounts of any tenant sign in; set it to your "
			"Entra tenant ID (a GUID) or primary domain",
			cfg->tenant);
		return -EINVAL;
	}
	if (!entra_is_guid(cfg->tenant) && !is_dns_name(cfg->tenant)) {
		set_err(err, errlen,
			"tenant: '%s' is neither a GUID nor a domain name; set it to your Entra "
			"tenant ID or primary domain (contoso.onmicrosoft.com)",
			cfg->tenant);
		return -EINVAL;
	}
	if (cfg->client_id == NULL) {
		set_err(err, errlen,
			"client_id: required; set it to the application (client) ID of the app "
			"registration (a GUID)");
		return -EINVAL;
	}
	if (!entra_is_guid(cfg->client_id)) {
		set_err(err, errlen,
			"client_id: '%s' is not a GUID; copy the application (client) ID from the "
			"app registration",
			cfg->client_id);
		return -EINVAL;
	}
	if (cfg->authority == NULL || !url_is_ok(cfg->authority, true)) {
		set_err(err, errlen,
			"authority: must be an https URL without query or fragment, such as "
			"https://login.microsoftonline.com");
		return -EINVAL;
	}
	if (cfg->resource == NULL || cfg->resource[0] == '\0') {
		set_err(err, errlen,
			"resource: required; the default is https://management.azure.com/.default");
		return -EINVAL;
	}
	if (cfg->identity_claim == NULL || !chars_in(cfg->identity_claim, "_", 1, 64) ||
	    cfg->username_claim == NULL || !chars_in(cfg->username_claim, "_", 1, 64)) {
		set_err(err, errlen,
			"identity_claim, username_claim: must be claim names of letters, digits "
			"and '_' (defaults: oid, preferred_username)");
		return -EINVAL;
	}
	if (cfg->http_timeout > cfg->login_timeout) {
		set_err(err, errlen,
			"http_timeout: %d s is longer than login_timeout (%d s); lower it",
			cfg->http_timeout, cfg->login_timeout);
		return -EINVAL;
	}

	workspace_keys = (cfg->subscription_id != NULL) + (cfg->resource_group != NULL) +
			 (cfg->workspace_name != NULL);
	if (workspace_keys != 0 && workspace_keys != 3) {
		set_err(err, errlen,
			"subscription_id, resource_group, workspace_name: set all three to "
			"describe the workspace, or none");
		return -EINVAL;
	}
	if (cfg->subscription_id != NULL && !entra_is_guid(cfg->subscription_id)) {
		set_err(err, errlen, "subscription_id: '%s' is not a GUID", cfg->subscription_id);
		return -EINVAL;
	}
	if (cfg->resource_group != NULL &&
	    (!chars_in(cfg->resource_group, "._()-", 1, 90) ||
	     cfg->resource_group[strlen(cfg->resource_group) - 1] == '.')) {
		set_err(err, errlen,
			"resource_group: '%s' is not a resource group name (1-90 letters, digits, "
			"'.', '_', '-', '(', ')', not ending in '.')",
			cfg->resource_group);
		return -EINVAL;
	}
	if (cfg->workspace_name != NULL &&
	    (!chars_in(cfg->workspace_name, "_-", 3, 33) || cfg->workspace_name[0] == '-' ||
	     cfg->workspace_name[0] == '_')) {
		set_err(err, errlen,
			"workspace_name: '%s' is not a workspace name (3-33 letters, digits, '-', "
			"'_', starting with a letter or digit)",
			cfg->workspace_name);
		return -EINVAL;
	}

	if (check_list(&cfg->allowed_domains, "allowed_domains", is_dns_name, "a domain name",
		       err, errlen) < 0)
		return -EINVAL;
	if (cfg->user_mapping == ENTRA_MAP_LOCALPART && cfg->allowed_domains.count == 0) {
		set_err(err, errlen,
			"user_mapping: localpart needs allowed_domains; list the domains whose "
			"users may log in (allowed_domains = contoso.com)");
		return -EINVAL;
	}
	if (cfg->user_mapping == ENTRA_MAP_FILE && cfg->map_file == NULL) {
		set_err(err, errlen,
			"user_mapping: file needs map_file; set it to the path of the map file");
		return -EINVAL;
	}
	if (check_list(&cfg->local_users, "local_users", entra_name_is_valid, "a user name", err,
		       errlen) < 0 ||
	    check_list(&cfg->allow_users, "allow_users", allow_user_ok,
		       "a UPN (user@domain) or an object id (GUID)", err, errlen) < 0 ||
	    check_list(&cfg->allow_groups, "allow_groups", claim_value_ok, "a group id", err,
		       errlen) < 0 ||
	    check_list(&cfg->allow_roles, "allow_roles", claim_value_ok, "an app role value", err,
		       errlen) < 0 ||
	    check_list(&cfg->admin_groups, "admin_groups", claim_value_ok, "a group id", err,
		       errlen) < 0 ||
	    check_list(&cfg->admin_roles, "admin_roles", claim_value_ok, "an app role value", err,
		       errlen) < 0 ||
	    check_list(&cfg->service_accounts, "service_accounts", service_account_ok,
		       "a user name or @group", err, errlen) < 0 ||
	    check_list(&cfg->service_identities, "service_identities", service_identity_ok,
		       "of the form account:client-id (a GUID)", err, errlen) < 0)
		return -EINVAL;

	if (cfg->uid_min >= cfg->uid_max) {
		set_err(err, errlen, "uid_min: %lu must be below uid_max (%lu)", cfg->uid_min,
			cfg->uid_max);
		return -EINVAL;
	}
	if (cfg->admin_gid >= cfg->uid_min && cfg->admin_gid <= cfg->uid_max) {
		set_err(err, errlen,
			"admin_gid: %lu lies inside uid_min-uid_max (%lu-%lu); pick a gid outside "
			"the range of Entra users",
			cfg->admin_gid, cfg->uid_min, cfg->uid_max);
		return -EINVAL;
	}
	if (cfg->service_uid_max != 0 &&
	    ranges_overlap(cfg->service_uid_min, cfg->service_uid_max, cfg->uid_min,
			   cfg->uid_max)) {
		set_err(err, errlen,
			"service_uids: %lu-%lu overlaps uid_min-uid_max (%lu-%lu); Entra users "
			"would be treated as service accounts",
			cfg->service_uid_min, cfg->service_uid_max, cfg->uid_min, cfg->uid_max);
		return -EINVAL;
	}
	if (cfg->service_uid_max != 0 && cfg->service_uid_min == 0) {
		set_err(err, errlen,
			"service_uids: the range must not include uid 0; start it above 0");
		return -EINVAL;
	}
	if (cfg->admin_group == NULL || !entra_name_is_valid(cfg->admin_group)) {
		set_err(err, errlen, "admin_group: must be a valid group name");
		return -EINVAL;
	}
	if (cfg->home_template == NULL || !home_template_ok(cfg->home_template)) {
		set_err(err, errlen,
			"home_template: must be an absolute path containing %%u (user name) or "
			"%%U (uid), such as /home/%%u");
		return -EINVAL;
	}
	if (cfg->service_client_id != NULL && !entra_is_guid(cfg->service_client_id)) {
		set_err(err, errlen,
			"service_client_id: '%s' is not a GUID; use the client ID of the "
			"user-assigned managed identity",
			cfg->service_client_id);
		return -EINVAL;
	}
	if (cfg->imds_endpoint == NULL || !url_is_ok(cfg->imds_endpoint, false)) {
		set_err(err, errlen, "imds_endpoint: must be an http(s) URL");
		return -EINVAL;
	}
	return validate_access_checks(cfg, err, errlen);
}
