/* Logging to stderr in a form journald understands.
 *
 * Each line starts with an sd-daemon(3) priority prefix ("<3>") when stderr
 * is connected to the journal (JOURNAL_STREAM is set), and with a level word
 * otherwise, so that both `journalctl -p err` and a terminal read well.
 * Library-like modules (validate, store, settings) do not log; they return
 * codes and sentences, and the daemon decides what to log. */
#pragma once

#include <stdarg.h>
#include <stddef.h>

typedef enum log_level {
  LOG_LEVEL_ERR = 3,
  LOG_LEVEL_WARNING = 4,
  LOG_LEVEL_NOTICE = 5,
  LOG_LEVEL_INFO = 6,
  LOG_LEVEL_DEBUG = 7,
} log_level_t;

/* Lines above this level are dropped. Default INFO; ATRIUM_LOG_LEVEL=debug etc. */
void log_set_level(log_level_t level);
int log_parse_level(const char *name, log_level_t *out);

/* Several nodes: every line names this node ("node=NAME: ..."), so that
 * the logs of a cluster gathered in one place say where each line came
 * from. NULL or "" for none (the default). Set once at start. */
void log_set_node(const char *name);

/* The one escape of every log line's message (log_msg uses it): newlines
 * become spaces, other control characters (ESC and the rest of C0, DEL,
 * C1) and bytes that are no UTF-8 become \xNN. Writes at most cap bytes of
 * out, cutting at a whole character; returns the bytes written. */
size_t log_escape(const char *in, size_t len, char *out, size_t cap);

void log_msg(log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_err(...) log_msg(LOG_LEVEL_ERR, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_LEVEL_NOTICE, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)
