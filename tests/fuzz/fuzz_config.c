/* libFuzzer target: the config parser as the PAM module uses it:
 * entra_config_load on a file holding the input, entra_config_validate,
 * the user-database rules derived from it, and each line again as a
 * module argument (entra_config_apply_arg). The file is trusted input
 * (root's), so this looks for memory errors and broken invariants, not
 * for the text of error messages. */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "userdb.h"
#include "userdb_config.h"
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[128];

static void cleanup(void)
{
	unlink(path);
	rmdir(fuzz_scratch_dir());
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	snprintf(path, sizeof(path), "%s/pam_entra.conf", fuzz_scratch_dir());
	atexit(cleanup);
	return 0;
}

static void check_err(const char *err, size_t len)
{
	if (strnlen(err, len) >= len)
		abort();
}

static void check_config(const struct entra_config *cfg)
{
	struct entra_userdb_rules rules;
	char err[512];

	err[0] = '\0';
	if (entra_config_validate(cfg, err, sizeof(err)) != 0) {
		check_err(err, sizeof(err));
		return;
	}
	/* What validate accepts is sane. Schemes are case-insensitive
	 * (RFC 3986 3.1), as the config and the HTTP client treat them. */
	if (cfg->tenant == NULL || cfg->client_id == NULL || cfg->authority == NULL ||
	    strncasecmp(cfg->authority, "https://", 8) != 0 || cfg->login_timeout < 1 ||
	    cfg->http_timeout < 1 || cfg->clock_skew < 0 || cfg->clock_skew > 120 ||
	    cfg->uid_min > cfg->uid_max ||
	    (cfg->workspace_name != NULL) != (cfg->subscription_id != NULL) ||
	    (cfg->workspace_name != NULL) != (cfg->resource_group != NULL))
		abort();
	err[0] = '\0';
	if (entra_userdb_rules_from_config(cfg, &rules, err, sizeof(err)) == 0) {
		if (entra_userdb_rules_check(&rules, err, sizeof(err)) != 0)
			abort(); /* the writer would refuse what the config produced */
	}
	check_err(err, sizeof(err));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct entra_config *cfg;
	char err[512], arg[ENTRA_CONFIG_MAX_LINE + 1];
	int rc;

	fuzz_write(fuzz_scratch_dir(), "pam_entra.conf", data, size, 0644);
	cfg = entra_config_new();
	if (cfg == NULL)
		return 0;
	err[0] = '\0';
	rc = entra_config_load(cfg, path, false, err, sizeof(err));
	check_err(err, sizeof(err));
	if (rc == 0)
		check_config(cfg);
	else if (rc > 0)
		abort();
	entra_config_free(cfg);

	/* Each line as a module argument, applied in order. */
	cfg = entra_config_new();
	if (cfg == NULL)
		return 0;
	for (size_t pos = 0; pos < size;) {
		const char *start = (const char *)data + pos;
		const char *nl = memchr(start, '\n', size - pos);
		size_t len = nl ? (size_t)(nl - start) : size - pos;

		pos += len + 1;
		if (len >= sizeof(arg))
			continue;
		memcpy(arg, start, len);
		arg[len] = '\0';
		if (strncmp(arg, "conf=", 5) == 0)
			continue;
		err[0] = '\0';
		(void)entra_config_apply_arg(cfg, arg, err, sizeof(err));
		check_err(err, sizeof(err));
	}
	check_config(cfg);
	entra_config_free(cfg);
	return 0;
}
