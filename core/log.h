/* log: one line per event to stderr, `level module: message key=value`.
 * Never format a secret into a log line. */
#ifndef COCOD_LOG_H
#define COCOD_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parses "error|warn|info|debug"; returns 0 or -1. */
int log_level_parse(const char *s, enum log_level *out);
const char *log_level_name(enum log_level level);

/* True when a message at `level` would be written (skip costly formatting). */
int log_enabled(enum log_level level);

void log_write(enum log_level level, const char *module, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_error(mod, ...) log_write(LOG_ERROR, mod, __VA_ARGS__)
#define log_warn(mod, ...) log_write(LOG_WARN, mod, __VA_ARGS__)
#define log_info(mod, ...) log_write(LOG_INFO, mod, __VA_ARGS__)
#define log_debug(mod, ...)                                   \
	do {                                                  \
		if (log_enabled(LOG_DEBUG))                   \
			log_write(LOG_DEBUG, mod, __VA_ARGS__); \
	} while (0)

#endif
