/*
 * Logging: one line per message on stderr, with a level. Messages never
 * carry secrets.
 */
#ifndef BERTH_LOG_H
#define BERTH_LOG_H

enum log_level {
	LOG_LEVEL_ERROR = 0,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
};

/*
 * Sends messages to syslog (facility daemon, with the pid) instead of
 * stderr from now on. Call before other threads start.
 */
void log_to_syslog(const char *ident);

/* Messages above this level are dropped. Default LOG_LEVEL_INFO. */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);

void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif /* BERTH_LOG_H */
