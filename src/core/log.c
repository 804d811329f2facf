#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static log_level_t max_level = LOG_LEVEL_INFO;

static const struct {
  const char *name;
  log_level_t level;
} level_names[] = {
    {"error", LOG_LEVEL_ERR},   {"warning", LOG_LEVEL_WARNING}, {"notice", LOG_LEVEL_NOTICE},
    {"info", LOG_LEVEL_INFO},   {"debug", LOG_LEVEL_DEBUG},
};

void log_set_level(log_level_t level) { max_level = level; }

static char node_prefix[80];

void log_set_node(const char *name) {
  if (name && *name)
    snprintf(node_prefix, sizeof node_prefix, "node=%.63s: ", name);
  else
    node_prefix[0] = '\0';
}

int log_parse_level(const char *name, log_level_t *out) {
  for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
    if (strcasecmp(name, level_names[i].name) == 0) {
      *out = level_names[i].level;
      return 0;
    }
  }
  return -1;
}

static const char *level_word(log_level_t level) {
  for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++)
    if (level_names[i].level == level) return level_names[i].name;
  return "info";
}

void log_msg(log_level_t level, const char *fmt, ...) {
  if (level > max_level) return;
  /* Build the whole line first: one write per line keeps lines from
   * different threads from interleaving. */
  char line[2048];
  size_t n;
  if (getenv("JOURNAL_STREAM")) {
    n = (size_t)snprintf(line, sizeof line, "<%d>%s", (int)level, node_prefix);
  } else {
    char ts[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    n = (size_t)snprintf(line, sizeof line, "%s %s: %s", ts, level_word(level), node_prefix);
  }
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
  va_end(ap);
  if (m < 0) return;
  n += (size_t)m < sizeof line - n - 1 ? (size_t)m : sizeof line - n - 2;
  /* A message must stay one line for journald and grep. */
  for (size_t i = 0; i < n; i++)
    if (line[i] == '\n' || line[i] == '\r') line[i] = ' ';
  line[n++] = '\n';
  fwrite(line, 1, n, stderr);
}
