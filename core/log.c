/* log: leveled, line-oriented logging to stderr.  Each line is formatted
 * into one buffer and written with one write(2), so lines from the libvirt
 * thread and the loop thread never interleave.  Control characters in a
 * message are escaped so a hostile peer cannot forge log lines. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum log_level current = LOG_INFO;
static const char *const names[] = {"error", "warn", "info", "debug"};

void log_set_level(enum log_level level) { current = level; }
enum log_level log_get_level(void) { return current; }
int log_enabled(enum log_level level) { return level <= current; }

const char *log_level_name(enum log_level level)
{
	return (unsigned)level < 4 ? names[level] : "?";
}

int log_level_parse(const char *s, enum log_level *out)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(s, names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	return -1;
}

void log_write(enum log_level level, const char *module, const char *fmt, ...)
{
	if (level > current)
		return;
	char msg[2048], line[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);

	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = (size_t)snprintf(line, sizeof line,
				    "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ",
				    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
				    tm.tm_hour, tm.tm_min, tm.tm_sec,
				    ts.tv_nsec / 1000000, names[level], module);
	for (const char *p = msg; *p && n + 5 < sizeof line; p++) {
		unsigned char c = (unsigned char)*p;
		if (c < 0x20 || c == 0x7f)
			n += (size_t)snprintf(line + n, sizeof line - n, "\\x%02x", c);
		else
			line[n++] = (char)c;
	}
	line[n++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, n);
	(void)w;
}
