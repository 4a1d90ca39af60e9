/* Logging through a host hook: pam_syslog in the module, stderr in tools.
 * Never pass a token, secret or raw HTTP body to these functions. */
#ifndef ENTRA_LOG_H
#define ENTRA_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <syslog.h>

struct entra_log {
	/* Receives one finished line; priority is a syslog LOG_* value. */
	void (*emit)(void *host, int priority, const char *line);
	void *host;
	bool debug; /* LOG_DEBUG lines are dropped unless set */
};

/* A logger writing "pam_entra: <line>" to stderr, for tools and tests. */
extern const struct entra_log entra_log_stderr;

/* Format a reason for the caller's log line into reason[len]; does
 * nothing when reason is NULL or len is 0. */
void entra_set_reason(char *reason, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

void entra_log(const struct entra_log *log, int priority, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void entra_vlog(const struct entra_log *log, int priority, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

#endif
