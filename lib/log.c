#include "config.h"
#include "log.h"

#include <stdio.h>

static void emit_stderr(void *host, int priority, const char *line)
{
	(void)host;
	(void)priority;
	fprintf(stderr, "pam_entra: %s\n", line);
}

const struct entra_log entra_log_stderr = { emit_stderr, NULL, false };

void entra_vlog(const struct entra_log *log, int priority, const char *fmt, va_list ap)
{
	char line[1024];

	if (log == NULL || log->emit == NULL)
		return;
	if (priority == LOG_DEBUG && !log->debug)
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	log->emit(log->host, priority, line);
}

void entra_set_reason(char *reason, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (reason == NULL || len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(reason, len, fmt, ap);
	va_end(ap);
}

void entra_log(const struct entra_log *log, int priority, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	entra_vlog(log, priority, fmt, ap);
	va_end(ap);
}
