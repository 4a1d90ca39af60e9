#include "config.h"
#include "net_testserver.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>

#include "buf.h"
#include "fsutil.h"
#include "http.h"

int net_mkdtemp(char *out, size_t len)
{
	if (snprintf(out, len, "/tmp/entra-net-test-XXXXXX") >= (int)len)
		return -1;
	return mkdtemp(out) != NULL ? 0 : -1;
}

void net_rmtree(const char *path)
{
	const char *slash = strrchr(path, '/');
	char parent[PATH_MAX];
	int fd;

	if (slash == NULL || slash == path)
		return;
	snprintf(parent, sizeof(parent), "%.*s", (int)(slash - path), path);
	fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (entra_remove_tree_at(fd, slash + 1) != 0)
		fprintf(stderr, "# cannot remove %s\n", path);
	close(fd);
}

static int parse_ready(struct net_server *s, const char *path)
{
	char line[PATH_MAX + 32];
	FILE *f = fopen(path, "re");
	int found = 0;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		char *eq = strchr(line, '='), *end;
		long v;

		if (eq == NULL)
			continue;
		*eq++ = '\0';
		eq[strcspn(eq, "\n")] = '\0';
		if (strcmp(line, "ca") == 0) {
			snprintf(s->ca, sizeof(s->ca), "%s", eq);
			found++;
			continue;
		}
		v = strtol(eq, &end, 10);
		if (*end != '\0' || v <= 0 || v > 65535)
			continue;
		if (strcmp(line, "https") == 0)
			s->https = (int)v, found++;
		else if (strcmp(line, "untrusted") == 0)
			s->untrusted = (int)v, found++;
		else if (strcmp(line, "wrongname") == 0)
			s->wrongname = (int)v, found++;
		else if (strcmp(line, "http") == 0)
			s->http = (int)v, found++;
		else if (strcmp(line, "proxy") == 0)
			s->proxy = (int)v, found++;
	}
	fclose(f);
	return found == 6 ? 0 : -1;
}

int net_server_start(struct net_server *s)
{
	const char *python = getenv("ENTRA_PYTHON3");
	char script[PATH_MAX], ready[PATH_MAX + 8];

	memset(s, 0, sizeof(*s));
	if (python == NULL || *python == '\0')
		python = "/usr/bin/python3";
	snprintf(script, sizeof(script), "%s/tests/unit/net_server.py", TEST_SRCDIR);
	if (net_mkdtemp(s->dir, sizeof(s->dir)) != 0) {
		perror("# mkdtemp");
		return -1;
	}
	snprintf(ready, sizeof(ready), "%s/ready", s->dir);
	s->pid = fork();
	if (s->pid < 0) {
		perror("# fork");
		return -1;
	}
	if (s->pid == 0) {
		execl(python, python, script, s->dir, (char *)NULL);
		perror("# exec python3");
		_exit(127);
	}
	/* Key generation takes a moment; give it up to 30 s. */
	for (int i = 0; i < 300; i++) {
		int status;

		if (access(ready, R_OK) == 0 && parse_ready(s, ready) == 0)
			return 0;
		if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
			fprintf(stderr, "# test server exited early (status %d)\n", status);
			s->pid = 0;
			return -1;
		}
		usleep(100 * 1000);
	}
	fprintf(stderr, "# test server not ready after 30 s\n");
	net_server_stop(s);
	return -1;
}

void net_server_stop(struct net_server *s)
{
	if (s->pid > 0) {
		kill(s->pid, SIGTERM);
		waitpid(s->pid, NULL, 0);
		s->pid = 0;
	}
	if (s->dir[0] != '\0')
		net_rmtree(s->dir);
	s->dir[0] = '\0';
}

static int control(struct net_server *s, const char *path, const char *form,
		   struct entra_buf *out)
{
	struct entra_http_options opt = { s->ca, 10000, 0, false, NULL };
	struct entra_http *http = entra_http_new(&opt, &entra_log_stderr);
	struct entra_http_response resp;
	char url[512];
	int rc;

	if (http == NULL)
		return -ENOMEM;
	snprintf(url, sizeof(url), "https://127.0.0.1:%d%s", s->https, path);
	if (form != NULL)
		rc = entra_http_post_form(http, url, form, NULL, &resp);
	else
		rc = entra_http_get(http, url, NULL, &resp);
	if (rc == 0 && resp.status != 200)
		rc = -EPROTO;
	if (rc == 0 && out != NULL) {
		entra_buf_init(out, ENTRA_HTTP_MAX_BODY);
		rc = entra_buf_append(out, resp.body.data ? resp.body.data : "", resp.body.len);
	}
	entra_http_response_free(&resp);
	entra_http_free(http);
	return rc;
}

int net_server_reset(struct net_server *s)
{
	return control(s, "/_control/reset", "", NULL);
}

int net_server_route(struct net_server *s, const char *path, long status, const char *body,
		     const char *ctype)
{
	struct entra_buf form;
	char st[32];
	int rc;

	snprintf(st, sizeof(st), "%ld", status);
	entra_buf_init(&form, 4 * ENTRA_HTTP_MAX_BODY);
	rc = entra_form_add(&form, "path", path);
	if (rc == 0)
		rc = entra_form_add(&form, "status", st);
	if (rc == 0)
		rc = entra_form_add(&form, "body", body);
	if (rc == 0)
		rc = entra_form_add(&form, "ctype", ctype ? ctype : "application/json");
	if (rc == 0)
		rc = control(s, "/_control/route", form.data, NULL);
	entra_buf_free(&form);
	return rc;
}

long net_server_count(struct net_server *s, const char *path)
{
	struct entra_buf out;
	char url[512], *esc, *end;
	long n;

	esc = entra_url_escape(path);
	if (esc == NULL)
		return -1;
	snprintf(url, sizeof(url), "/_control/count?path=%s", esc);
	free(esc);
	if (control(s, url, NULL, &out) != 0)
		return -1;
	n = strtol(out.data, &end, 10);
	if (end == out.data || *end != '\0')
		n = -1;
	entra_buf_free(&out);
	return n;
}

char *net_server_jwks(struct net_server *s, const char *kid)
{
	struct entra_buf out;
	char url[512];

	snprintf(url, sizeof(url), "/_control/jwks?kid=%s", kid);
	if (control(s, url, NULL, &out) != 0)
		return NULL;
	return entra_buf_steal(&out);
}
