/* Test rig for the PAM tests: a running fake Entra, PAM services under
 * pam_wrapper, a conversation that plays the person, and captured syslog
 * lines. */
#ifndef PAM_HARNESS_H
#define PAM_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <security/pam_appl.h>
#include <json-c/json.h>

enum person_action {
	PERSON_APPROVE,   /* approve at the fake with person_claims, then press Enter */
	PERSON_DECLINE,   /* decline at the fake, then press Enter */
	PERSON_IGNORE,    /* press Enter without signing in */
	PERSON_HANG_UP,   /* the conversation fails (no TTY, BatchMode) */
};

struct person {
	enum person_action action;
	const char *claims_json;  /* claims for approve, e.g. {"preferred_username":"alice@contoso.com"} */
	char prompt[8192];        /* the last echo-off prompt shown */
	char errors[4096];        /* PAM_ERROR_MSG texts, newline-separated */
	char user_code[64];
	int prompts;
};

struct harness {
	char dir[256];            /* temp dir holding everything */
	char fake_dir[300];
	char conf[300];           /* the default config file */
	char service_dir[300];
	char run_dir[300], cache_dir[300], db_dir[300];
	int https_port;
	int http_port;            /* the fake's managed-identity endpoints */
	char authority[128];
	char ca_file[320];
	char tenant_id[64];
	int fake_pid;
};

extern struct harness H;

/* Re-exec the program once with the PAM test double preloaded: pam_wrapper,
 * or in sanitizer builds tests/pam/pam_shim.so (pam_wrapper's
 * RTLD_DEEPBIND and the sanitizer runtime exclude each other). Returns
 * 0 when preloaded already, -1 when the re-exec failed. */
int harness_preload(char **argv);

/* The same, always with pam_shim.so: it needs no per-process set-up, so
 * tests that fork many PAM processes at once use it. */
int harness_preload_shim(char **argv);

/* Start the fake and lay out config, services and directories; returns
 * 0 or -1 (a message is printed). */
int harness_start(void);
void harness_stop(void);

/* Write a PAM service file `name` whose module lines carry args. */
int harness_service(const char *name, const char *args);

/* A production-like stack: pam_entra, then pam_permit standing for pam_unix. */
int harness_stack_service(const char *name);

/* Sessions as cron or su by root open them: no pam_entra auth, then
 * pam_entra's session (args) before pam_permit. */
int harness_service_session_stack(const char *name, const char *args);

/* Like sudo's stack: pam_entra for auth, account and session, then
 * pam_permit for the session. */
int harness_sudolike_service(const char *name);

/* Write a config file at path: the default config plus extra lines. */
int harness_write_config(const char *path, const char *extra);

/* POST JSON to /_control/<path> at the fake; 0 on HTTP 200. */
int fake_control(const char *path, const char *json);
/* GET /_control/requests: the count for one endpoint, or -1. */
int fake_count(const char *endpoint);
/* The "form" of the last logged request to endpoint, or NULL (caller puts). */
struct json_object *fake_last_form(const char *endpoint);

/* The conversation passed to libpamtest. */
int person_conv(int num_msg, const struct pam_message **msg, struct pam_response **resp,
		void *appdata);

/* Capture what the module logs (pam_wrapper prints syslog to stderr). */
void log_capture_begin(void);
/* Ends the capture; returns the captured text (static buffer). */
const char *log_capture_end(void);

/* The uid the user database gave name, or -1. */
long harness_uid_of(const char *name);

/* 1 when the user database has name as an admin, 0 when not, -1 unknown. */
int harness_admin_of(const char *name);

/* Look up NAME in a NULL-terminated env list; NULL when absent. */
const char *env_get(char **envlist, const char *name);

#endif
