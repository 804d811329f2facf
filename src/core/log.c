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

/* Length of the well-formed UTF-8 sequence at p (at most len bytes), 0 for
 * none: overlong forms, surrogates and bytes past U+10FFFF are refused. */
static size_t utf8_sequence(const unsigned char *p, size_t len) {
  unsigned char c = p[0];
  size_t n;
  unsigned lo = 0x80, hi = 0xbf;
  if (c >= 0xc2 && c <= 0xdf) n = 1;
  else if (c == 0xe0) n = 2, lo = 0xa0;
  else if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef) n = 2;
  else if (c == 0xed) n = 2, hi = 0x9f;
  else if (c == 0xf0) n = 3, lo = 0x90;
  else if (c >= 0xf1 && c <= 0xf3) n = 3;
  else if (c == 0xf4) n = 3, hi = 0x8f;
  else return 0;
  if (len < n + 1 || p[1] < lo || p[1] > hi) return 0;
  for (size_t k = 2; k <= n; k++)
    if (p[k] < 0x80 || p[k] > 0xbf) return 0;
  return n + 1;
}

size_t log_escape(const char *in, size_t len, char *out, size_t cap) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *p = (const unsigned char *)in;
  size_t o = 0;
  for (size_t i = 0; i < len;) {
    unsigned char c = p[i];
    char esc[5] = {0};
    size_t take = 1, elen;
    if (c == '\n' || c == '\r') {
      /* A message must stay one line for journald and grep. */
      esc[0] = ' ';
      elen = 1;
    } else if (c == '\t' || (c >= 0x20 && c < 0x7f)) {
      esc[0] = (char)c;
      elen = 1;
    } else if (c >= 0x80 && (take = utf8_sequence(p + i, len - i)) != 0 &&
               !(c == 0xc2 && p[i + 1] < 0xa0)) {
      /* Text in any script stays readable; only C1 controls (U+0080..U+009F)
       * are escaped, since terminals act on them as on ESC. */
      if (o + take > cap) break;
      memcpy(out + o, p + i, take);
      o += take;
      i += take;
      continue;
    } else {
      /* Terminal escapes, other controls and bytes that are no UTF-8 are
       * shown as \xNN: a name or path from a request cannot move the cursor,
       * recolour or retitle the terminal of whoever reads the log. */
      take = 1;
      esc[0] = '\\';
      esc[1] = 'x';
      esc[2] = hex[c >> 4];
      esc[3] = hex[c & 15];
      elen = 4;
    }
    if (o + elen > cap) break;
    memcpy(out + o, esc, elen);
    o += elen;
    i += take;
  }
  return o;
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
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (m < 0) return;
  size_t mlen = (size_t)m < sizeof msg ? (size_t)m : sizeof msg - 1;
  n += log_escape(msg, mlen, line + n, sizeof line - n - 1);
  line[n++] = '\n';
  fwrite(line, 1, n, stderr);
}
