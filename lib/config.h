/* /etc/security/pam_entra.conf: "key = value" lines, '#' comments.
 * Module arguments override file keys through the same setter
 * (entra_config_set), so both are validated identically. Unknown keys are
 * errors. The same parser serves the PAM module and entractl. */
#ifndef ENTRA_CONFIG_H
#define ENTRA_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "buf.h"

#define ENTRA_DEFAULT_CONFIG SYSCONFDIR "/security/pam_entra.conf"
#define ENTRA_CONFIG_MAX_FILE ((size_t)64 * 1024) /* bytes in the config file */
#define ENTRA_CONFIG_MAX_LINE 4096        /* bytes in one line, without the newline */
#define ENTRA_TOKEND_DEFAULT_PORT 40380
#define ENTRA_MAP_MAX_FILE ((size_t)1024 * 1024) /* bytes in the map file */

struct entra_strlist {
	char **items;  /* NULL-terminated when count > 0; NULL when empty */
	size_t count;
};

enum entra_user_mapping {
	ENTRA_MAP_UPN,        /* the local name is the full UPN (alice@contoso.com) */
	ENTRA_MAP_LOCALPART,  /* the local name is the part before '@'; domain must be in allowed_domains */
	ENTRA_MAP_FILE,       /* explicit "localname upn-or-objectid" lines in map_file */
};

enum entra_msi_source {
	ENTRA_MSI_AUTO,       /* detect as azure-identity does, from the environment */
	ENTRA_MSI_IMDS,
	ENTRA_MSI_AZUREML,    /* MSI_ENDPOINT + MSI_SECRET, 2017-09-01 */
	ENTRA_MSI_APPSERVICE, /* IDENTITY_ENDPOINT + IDENTITY_HEADER, 2019-08-01 */
	ENTRA_MSI_ARC,
};

struct entra_config {
	/* identity provider */
	char *tenant;           /* required: GUID or domain */
	char *client_id;        /* required: public-client app registration */
	char *authority;        /* default https://login.microsoftonline.com */
	char *ca_file;          /* CA bundle for TLS; NULL = system store */
	char *https_proxy;      /* proxy for the identity provider and ARM; NULL = none (the environment's is never used) */
	char *resource;         /* scope of the workspace token, default https://management.azure.com/.default */
	char *identity_claim;   /* default oid */
	char *username_claim;   /* default preferred_username */
	int http_timeout;       /* seconds per request, default 10 */
	int login_timeout;      /* seconds for a whole device-code login, default 100 (< sshd LoginGraceTime) */
	int clock_skew;         /* seconds allowed on exp/nbf/iat, default 120, at most 120 */

	/* workspace (all three or none) */
	char *subscription_id;
	char *resource_group;
	char *workspace_name;

	/* user mapping and authorization */
	enum entra_user_mapping user_mapping; /* key user_mapping = upn | localpart | file */
	struct entra_strlist allowed_domains; /* for localpart, and to restrict upn */
	char *map_file;
	struct entra_strlist local_users;     /* never handled by the module */
	struct entra_strlist allow_users;     /* UPNs or object ids */
	struct entra_strlist allow_groups;    /* group object ids ("groups" claim) */
	struct entra_strlist allow_roles;     /* app role values ("roles" claim) */
	struct entra_strlist admin_groups;    /* membership grants admin */
	struct entra_strlist admin_roles;

	/* local state */
	char *cache_dir;        /* discovery/JWKS/MSI cache, default LOCALSTATEDIR/cache/pam_entra */
	char *run_dir;          /* sessions, default RUNSTATEDIR/pam_entra */
	char *db_dir;           /* user database, default LOCALSTATEDIR/lib/pam_entra */

	/* accounts created for Entra users */
	unsigned long uid_min;  /* default 1900000000 */
	unsigned long uid_max;  /* default 1999999999 */
	char *admin_group;      /* default entra-admins */
	unsigned long admin_gid;/* default 1899999999 */
	char *home_template;    /* default /home/%u (%u user name, %U uid) */
	char *shell;            /* default /bin/bash */
	bool create_home;       /* default true */

	/* service accounts and managed identity */
	enum entra_msi_source msi_source;     /* key msi_source = auto|imds|azureml|appservice|arc */
	char *imds_endpoint;    /* default http://169.254.169.254 */
	struct entra_strlist service_accounts;/* names, or "@group" */
	unsigned long service_uid_min;        /* service_uids = MIN-MAX; 0-0 = none */
	unsigned long service_uid_max;
	char *service_resource; /* default = resource */
	char *service_client_id;/* user-assigned identity for all services; NULL = system-assigned */
	struct entra_strlist service_identities; /* "account:client-id" pairs */
	bool service_token_required; /* no token -> no session; default false: open without one, logged */

	/* token service (entra-tokend) */
	int tokend_port;        /* 127.0.0.1 port of the managed-identity endpoint, default 40380 */
	char *tokend_socket;    /* registration socket, default RUNSTATEDIR/entra-tokend.sock */
	/* Azure RBAC and conditional access */
	char *arm_url;          /* ARM base URL, default https://management.azure.com */
	char *arm_audience;     /* aud of ARM access tokens, default https://management.azure.com/ */
	char *rbac_scope;       /* ARM resource id whose permissions decide; NULL = RBAC off */
	struct entra_strlist rbac_login_actions; /* any one allows login (dataActions; "action:" prefix = control plane) */
	struct entra_strlist rbac_admin_actions; /* any one makes the user an admin */
	int rbac_cache_ttl;     /* seconds a decision is reused, default 300, 0 = off */
	bool require_mfa;       /* the ARM access token must carry "mfa" in amr */
	struct entra_strlist auth_context;       /* "service:cN": authentication context per PAM service */
	struct entra_strlist client_capabilities;/* sent as xms_cc, e.g. cp1 (continuous access evaluation) */
	int sudo_reuse_window;  /* seconds sudo may reuse the session's login, default 0 = off */

	/* session */
	bool export_token;      /* put the raw access token in ENTRA_ACCESS_TOKEN, default false */
	bool qr_code;           /* show a QR code of the verification URL, default true */
	bool debug;

	/* Not a key: whether admin files named by this configuration (the
	 * map file) must be root-owned and not group/other-writable. Set by
	 * entra_config_load from its check_owner argument; true by default. */
	bool check_owner;
};

/* Defaults filled in; NULL on allocation failure. */
struct entra_config *entra_config_new(void);
void entra_config_free(struct entra_config *cfg);

/* Set one key from text. 0, or -EINVAL with a message in err
 * ("unknown key 'x'", "login_timeout: expected seconds 1-3600", ...). */
int entra_config_set(struct entra_config *cfg, const char *key, const char *value,
		     char *err, size_t errlen);

/* Read a config file. When check_owner, the file must be a regular file
 * (not a symlink) owned by root and not writable by group or others.
 * Errors name the line: "pam_entra.conf:12: unknown key 'tenat'". A key
 * given twice in the file is an error. On error cfg may hold part of the
 * file: discard it. Sets cfg->check_owner. */
int entra_config_load(struct entra_config *cfg, const char *path, bool check_owner,
		      char *err, size_t errlen);

/* The same in two steps, for a caller that decides from the file's
 * identity whether to parse it: open path as entra_config_read_file does
 * (O_NOFOLLOW, never blocking) and fstat it into *st; the descriptor or
 * -errno. Then load from that descriptor (path names it in messages). */
int entra_config_open(const char *path, struct stat *st);
/* The identity entra_config_open would give (of path itself, a symlink
 * not followed) in one statx, without opening; AT_STATX_FORCE_SYNC makes
 * NFS ask the server, as an open would. Only the fields a caller compares
 * to recognise an unchanged file are set: dev, ino, size, mode, uid, gid,
 * mtime, ctime. 0 or -errno. */
int entra_config_identity(const char *path, struct stat *st);
int entra_config_load_fd(struct entra_config *cfg, int fd, const struct stat *st, const char *path,
			 bool check_owner, char *err, size_t errlen);

/* Apply one PAM module argument, "key=value" or a bare flag ("debug").
 * "conf=" is handled by the caller before the file is read. */
int entra_config_apply_arg(struct entra_config *cfg, const char *arg, char *err, size_t errlen);

/* Cross-key checks after everything is set: required keys present,
 * workspace all-or-none, uid ranges sane, mapping needs. */
int entra_config_validate(const struct entra_config *cfg, char *err, size_t errlen);

/* Read an admin file (the config file, the map file): O_NOFOLLOW, a
 * regular file, at most max bytes; when check_owner, owned by root and
 * not writable by group or others. out is initialised here. 0, or
 * -ENOENT, -ELOOP (symlink), -EINVAL (not a regular file), -EPERM (not
 * owned by root), -EACCES (group/other-writable or unreadable), -EFBIG. */
int entra_config_read_file(const char *path, size_t max, bool check_owner, struct entra_buf *out);

/* Does the list contain s (ASCII case-insensitive)? */
bool entra_strlist_contains(const struct entra_strlist *list, const char *s);

#endif
