#include "config.h"
#include "pam_harness.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>

#include "userdb.h"

struct harness H;

static const char *python3(void)
{
	const char *p = getenv("ENTRA_PYTHON3");
	return p && *p ? p : "/usr/bin/python3";
}

static const char *srcdir(void)
{
	const char *p = getenv("ENTRA_SRCDIR");
	return p && *p ? p : TEST_SRCDIR;
}

static const char *builddir(void)
{
	const char *p = getenv("ENTRA_BUILDDIR");
	return p && *p ? p : TEST_BUILDDIR;
}

static int write_text(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	if (f == NULL)
		return -1;
	fputs(text, f);
	if (fclose(f) != 0)
		return -1;
	return chmod(path, mode);
}

static char *read_text(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long n;

	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = calloc(1, (size_t)n + 1);
	if (buf != NULL && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

static int wait_for_fake(void)
{
	char path[400], *text;
	struct json_object *obj, *v;

	snprintf(path, sizeof(path), "%s/fake.json", H.fake_dir);
	for (int i = 0; i < 200; i++) {
		text = read_text(path);
		if (text != NULL) {
			obj = json_tokener_parse(text);
			free(text);
			if (obj == NULL)
				return -1;
			if (json_object_object_get_ex(obj, "https_port", &v))
				H.https_port = json_object_get_int(v);
			if (json_object_object_get_ex(obj, "http_port", &v))
				H.http_port = json_object_get_int(v);
			if (json_object_object_get_ex(obj, "tenant_id", &v))
				snprintf(H.tenant_id, sizeof(H.tenant_id), "%s", json_object_get_string(v));
			if (json_object_object_get_ex(obj, "ca_file", &v))
				snprintf(H.ca_file, sizeof(H.ca_file), "%s", json_object_get_string(v));
			json_object_put(obj);
			return H.https_port > 0 ? 0 : -1;
		}
		usleep(50 * 1000);
	}
	return -1;
}

int harness_write_config(const char *path, const char *extra)
{
	char text[8192];

	snprintf(text, sizeof(text),
		 "# written by the PAM tests\n"
		 "tenant = %s\n"
		 "client_id = 4f6c3f2e-0d5a-4a3e-9a54-1c2b3d4e5f60\n"
		 "authority = %s\n"
		 "ca_file = %s\n"
		 "cache_dir = %s\n"
		 "run_dir = %s\n"
		 "db_dir = %s\n"
		 "user_mapping = upn\n"
		 "allowed_domains = contoso.com\n"
		 "local_users = breakglass\n"
		 "login_timeout = 20\n"
		 "http_timeout = 3\n"
		 "qr_code = no\n"
		 "home_template = %s/home/%%u\n"
		 "%s",
		 H.tenant_id, H.authority, H.ca_file, H.cache_dir, H.run_dir, H.db_dir, H.dir,
		 extra ? extra : "");
	return write_text(path, text, 0644);
}

/* Write service `name` from lines in which every "@ENTRA@" stands for the
 * module by absolute path with conf= and args. */
static int write_service(const char *name, const char *lines, const char *args)
{
	char path[400], module[1024], text[8192];
	size_t len = 0;
	const char *p = lines, *at;

	snprintf(module, sizeof(module), "%s/pam_module/.libs/pam_entra.so conf=%s %s", builddir(),
		 H.conf, args ? args : "");
	while ((at = strstr(p, "@ENTRA@")) != NULL && len < sizeof(text)) {
		len += (size_t)snprintf(text + len, sizeof(text) - len, "%.*s%s", (int)(at - p), p, module);
		p = at + strlen("@ENTRA@");
	}
	if (len >= sizeof(text) || (size_t)snprintf(text + len, sizeof(text) - len, "%s", p) >= sizeof(text) - len)
		return -1;
	snprintf(path, sizeof(path), "%s/%s", H.service_dir, name);
	return write_text(path, text, 0644);
}

int harness_service(const char *name, const char *args)
{
	return write_service(name,
			     "auth     required @ENTRA@\n"
			     "account  required @ENTRA@\n"
			     "session  required @ENTRA@\n"
			     "password required @ENTRA@\n", args);
}

int harness_stack_service(const char *name)
{
	return write_service(name,
			     "auth [success=done ignore=ignore user_unknown=ignore default=die] @ENTRA@\n"
			     "auth required pam_permit.so\n"
			     "account [success=ok ignore=ignore user_unknown=ignore default=bad] @ENTRA@\n"
			     "account required pam_permit.so\n", NULL);
}

int harness_service_session_stack(const char *name, const char *args)
{
	return write_service(name,
			     "auth     required pam_permit.so\n"
			     "account  required pam_permit.so\n"
			     "session  [success=ok ignore=ignore default=bad] @ENTRA@\n"
			     "session  required pam_permit.so\n", args);
}

int harness_sudolike_service(const char *name)
{
	return write_service(name,
			     "auth     required @ENTRA@\n"
			     "account  required @ENTRA@\n"
			     "session  [success=ok ignore=ignore user_unknown=ignore default=bad] @ENTRA@\n"
			     "session  required pam_permit.so\n", NULL);
}

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif

static int preload(char **argv, bool shim)
{
	char path[512];

	if (getenv("ENTRA_PAM_PRELOADED") != NULL)
		return 0;
	setenv("ENTRA_PAM_PRELOADED", "1", 1);
	if (shim) {
		snprintf(path, sizeof(path), "%s/tests/pam/.libs/pam_shim.so", builddir());
		setenv("LD_PRELOAD", path, 1);
		setenv("ASAN_OPTIONS", "verify_asan_link_order=0", 0);
	} else {
		setenv("PAM_WRAPPER", "1", 1);
		setenv("PAM_WRAPPER_DEBUGLEVEL", "2", 1);
		setenv("LD_PRELOAD", "libpam_wrapper.so", 1);
	}
	/* argv[0], not /proc/self/exe: under valgrind the latter is valgrind. */
	execv(argv[0], argv);
	perror("execv");
	return -1;
}

int harness_preload(char **argv)
{
#ifdef SANITIZED
	return preload(argv, true);
#else
	return preload(argv, false);
#endif
}

int harness_preload_shim(char **argv)
{
	return preload(argv, true);
}




int harness_start(void)
{
	char path[400];
	pid_t pid;

	snprintf(H.dir, sizeof(H.dir), "/tmp/pam_entra_test.XXXXXX");
	if (mkdtemp(H.dir) == NULL)
		return -1;
	snprintf(H.fake_dir, sizeof(H.fake_dir), "%s/fake", H.dir);
	snprintf(H.conf, sizeof(H.conf), "%s/pam_entra.conf", H.dir);
	snprintf(H.service_dir, sizeof(H.service_dir), "%s/pam.d", H.dir);
	snprintf(H.run_dir, sizeof(H.run_dir), "%s/run", H.dir);
	snprintf(H.cache_dir, sizeof(H.cache_dir), "%s/cache", H.dir);
	snprintf(H.db_dir, sizeof(H.db_dir), "%s/db", H.dir);
	if (chmod(H.dir, 0755) < 0 || mkdir(H.fake_dir, 0700) < 0 || mkdir(H.service_dir, 0755) < 0 ||
	    mkdir(H.db_dir, 0755) < 0)
		return -1;

	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		char script[400], log[400];
		int fd;

		snprintf(script, sizeof(script), "%s/tests/fake/fake_entra.py", srcdir());
		snprintf(log, sizeof(log), "%s/fake.stderr", H.dir);
		fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		/* The fake must not inherit the wrappers meant for the module. */
		unsetenv("LD_PRELOAD");
		execl(python3(), python3(), script, "--dir", H.fake_dir, (char *)NULL);
		_exit(127);
	}
	H.fake_pid = pid;
	if (wait_for_fake() < 0) {
		fprintf(stderr, "# the fake Entra did not start (see %s/fake.stderr)\n", H.dir);
		return -1;
	}
	snprintf(H.authority, sizeof(H.authority), "https://127.0.0.1:%d", H.https_port);

	if (harness_write_config(H.conf, NULL) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/other", H.service_dir);
	if (write_text(path, "auth required pam_deny.so\naccount required pam_deny.so\n"
			     "session required pam_deny.so\npassword required pam_deny.so\n", 0644) < 0)
		return -1;
	if (harness_service("entra", "") < 0)
		return -1;

	snprintf(path, sizeof(path), "%s/home", H.dir);
	if (mkdir(path, 0755) < 0)
		return -1;
	setenv("PAM_WRAPPER_SERVICE_DIR", H.service_dir, 1);
	setenv("ENTRA_PAM_CONFDIR", H.service_dir, 1);
	return 0;
}

static int remove_tree(const char *path)
{
	pid_t pid = fork();
	int status;

	if (pid == 0) {
		unsetenv("LD_PRELOAD");
		execl("/bin/rm", "rm", "-rf", path, (char *)NULL);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return -1;
	return 0;
}

void harness_stop(void)
{
	if (H.fake_pid > 0) {
		kill(H.fake_pid, SIGTERM);
		waitpid(H.fake_pid, NULL, 0);
		H.fake_pid = 0;
	}
	if (H.dir[0] != '\0' && getenv("ENTRA_KEEP_TEST_DIR") == NULL)
		remove_tree(H.dir);
}

struct response {
	char *data;
	size_t len;
};

static size_t collect(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct response *r = userdata;
	size_t n = size * nmemb;
	char *grown = realloc(r->data, r->len + n + 1);

	if (grown == NULL)
		return 0;
	memcpy(grown + r->len, ptr, n);
	r->data = grown;
	r->len += n;
	r->data[r->len] = '\0';
	return n;
}

static long control_request(const char *path, const char *json, struct response *out)
{
	char url[512];
	struct curl_slist *headers = NULL;
	long status = 0;
	CURL *c = curl_easy_init();

	if (c == NULL)
		return -1;
	snprintf(url, sizeof(url), "%s/_control/%s", H.authority, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CAINFO, H.ca_file);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
	if (json != NULL) {
		headers = curl_slist_append(headers, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
	}
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(headers);
	curl_easy_cleanup(c);
	return status;
}

int fake_control(const char *path, const char *json)
{
	struct response r = { NULL, 0 };
	long status = control_request(path, json ? json : "{}", &r);

	if (status != 200)
		fprintf(stderr, "# control %s -> %ld %s\n", path, status, r.data ? r.data : "");
	free(r.data);
	return status == 200 ? 0 : -1;
}

static struct json_object *fake_requests(void)
{
	struct response r = { NULL, 0 };
	struct json_object *obj = NULL;

	if (control_request("requests", NULL, &r) == 200 && r.data != NULL)
		obj = json_tokener_parse(r.data);
	free(r.data);
	return obj;
}

int fake_count(const char *endpoint)
{
	struct json_object *obj = fake_requests(), *counts, *v;
	int n = -1;

	if (obj == NULL)
		return -1;
	if (json_object_object_get_ex(obj, "counts", &counts)) {
		n = 0;
		if (json_object_object_get_ex(counts, endpoint, &v))
			n = json_object_get_int(v);
	}
	json_object_put(obj);
	return n;
}

struct json_object *fake_last_form(const char *endpoint)
{
	struct json_object *obj = fake_requests(), *log, *form = NULL, *e, *v;

	if (obj == NULL)
		return NULL;
	if (json_object_object_get_ex(obj, "log", &log)) {
		for (size_t i = json_object_array_length(log); i-- > 0;) {
			e = json_object_array_get_idx(log, i);
			if (json_object_object_get_ex(e, "endpoint", &v) &&
			    strcmp(json_object_get_string(v), endpoint) == 0 &&
			    json_object_object_get_ex(e, "form", &v)) {
				form = json_object_get(v);
				break;
			}
		}
	}
	json_object_put(obj);
	return form;
}

static void append_line(char *dst, size_t size, const char *text)
{
	size_t len = strlen(dst);

	snprintf(dst + len, size - len, "%s\n", text);
}

static void find_user_code(struct person *p)
{
	const char *s = strstr(p->prompt, "enter the code ");
	size_t n = 0;

	p->user_code[0] = '\0';
	if (s == NULL)
		return;
	s += strlen("enter the code ");
	while (n + 1 < sizeof(p->user_code) && ((s[n] >= 'A' && s[n] <= 'Z') || (s[n] >= '0' && s[n] <= '9')))
		n++;
	memcpy(p->user_code, s, n);
	p->user_code[n] = '\0';
}

int person_conv(int num_msg, const struct pam_message **msg, struct pam_response **resp,
		void *appdata)
{
	struct person *p = appdata;
	struct pam_response *replies;
	char body[4096];

	replies = calloc((size_t)num_msg, sizeof(*replies));
	if (replies == NULL)
		return PAM_BUF_ERR;
	for (int i = 0; i < num_msg; i++) {
		switch (msg[i]->msg_style) {
		case PAM_ERROR_MSG:
			append_line(p->errors, sizeof(p->errors), msg[i]->msg);
			break;
		case PAM_TEXT_INFO:
			break;
		case PAM_PROMPT_ECHO_OFF:
		case PAM_PROMPT_ECHO_ON:
			p->prompts++;
			snprintf(p->prompt, sizeof(p->prompt), "%s", msg[i]->msg);
			find_user_code(p);
			if (p->action == PERSON_HANG_UP) {
				free(replies);
				return PAM_CONV_ERR;
			}
			if (p->action == PERSON_APPROVE) {
				snprintf(body, sizeof(body), "{\"user_code\":\"%s\",\"claims\":%s}",
					 p->user_code, p->claims_json ? p->claims_json : "{}");
				fake_control("approve", body);
			} else if (p->action == PERSON_DECLINE) {
				snprintf(body, sizeof(body), "{\"user_code\":\"%s\"}", p->user_code);
				fake_control("decline", body);
			}
			replies[i].resp = strdup("");
			break;
		}
	}
	*resp = replies;
	return PAM_SUCCESS;
}

static int saved_stderr = -1;
static char log_path[400];
static char captured[65536];

void log_capture_begin(void)
{
	int fd;

	snprintf(log_path, sizeof(log_path), "%s/syslog.capture", H.dir);
	fflush(stderr);
	saved_stderr = dup(2);
	fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd >= 0) {
		dup2(fd, 2);
		close(fd);
	}
}

const char *log_capture_end(void)
{
	char *text;

	fflush(stderr);
	if (saved_stderr >= 0) {
		dup2(saved_stderr, 2);
		close(saved_stderr);
		saved_stderr = -1;
	}
	text = read_text(log_path);
	snprintf(captured, sizeof(captured), "%s", text ? text : "");
	free(text);
	return captured;
}

long harness_uid_of(const char *name)
{
	struct entra_userdb *db = NULL;
	struct entra_userdb_user user;
	long uid = -1;

	if (entra_userdb_open(H.db_dir, &db, NULL, 0) < 0)
		return -1;
	if (entra_userdb_find_name(db, name, &user) == 0)
		uid = (long)user.uid;
	entra_userdb_close(db);
	return uid;
}

int harness_admin_of(const char *name)
{
	struct entra_userdb *db = NULL;
	struct entra_userdb_user user;
	int admin = -1;

	if (entra_userdb_open(H.db_dir, &db, NULL, 0) < 0)
		return -1;
	if (entra_userdb_find_name(db, name, &user) == 0)
		admin = user.admin ? 1 : 0;
	entra_userdb_close(db);
	return admin;
}

const char *env_get(char **envlist, const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; envlist != NULL && envlist[i] != NULL; i++)
		if (strncmp(envlist[i], name, n) == 0 && envlist[i][n] == '=')
			return envlist[i] + n + 1;
	return NULL;
}
