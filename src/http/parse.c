#include "http/parse.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int http_parse_int_param(const char *text, int64_t min, int64_t max, int64_t dflt, int64_t *out) {
  if (!text) {
    *out = dflt;
    return 0;
  }
  if (*text == '\0') return -EINVAL;
  for (const char *p = text; *p; p++)
    if (*p < '0' || *p > '9') return -EINVAL;
  errno = 0;
  char *end;
  long long v = strtoll(text, &end, 10);
  if (errno == ERANGE) return -ERANGE;
  if (*end != '\0') return -EINVAL;
  if (v < min || v > max) return -ERANGE;
  *out = v;
  return 0;
}

int http_parse_if_match(const char *header, int64_t *version) {
  *version = -1;
  if (!header) return 0;
  while (*header == ' ' || *header == '\t') header++;
  size_t n = strlen(header);
  while (n > 0 && (header[n - 1] == ' ' || header[n - 1] == '\t')) n--;
  if (n == 1 && header[0] == '*') return 0;
  char digits[24];
  const char *start = header;
  /* Bare 5 is accepted as well as "5": atriumctl and curl users write both. */
  if (n >= 2 && header[0] == '"' && header[n - 1] == '"') {
    start++;
    n -= 2;
  }
  if (n == 0 || n >= sizeof digits) return -EINVAL;
  memcpy(digits, start, n);
  digits[n] = '\0';
  int64_t v;
  if (http_parse_int_param(digits, 0, INT64_MAX, 0, &v) != 0) return -EINVAL;
  *version = v;
  return 0;
}

bool http_content_type_is_json(const char *header) {
  if (!header) return false;
  while (*header == ' ' || *header == '\t') header++;
  static const char json[] = "application/json";
  if (strncasecmp(header, json, sizeof json - 1) != 0) return false;
  const char *p = header + sizeof json - 1;
  while (*p == ' ' || *p == '\t') p++;
  if (*p == '\0') return true;
  if (*p != ';') return false;
  /* Only the charset parameter is known, and JSON is UTF-8 (RFC 8259). */
  p++;
  while (*p == ' ' || *p == '\t') p++;
  if (strncasecmp(p, "charset=", 8) != 0) return false;
  p += 8;
  bool quoted = *p == '"';
  if (quoted) p++;
  if (strncasecmp(p, "utf-8", 5) != 0) return false;
  p += 5;
  if (quoted && *p++ != '"') return false;
  while (*p == ' ' || *p == '\t') p++;
  return *p == '\0';
}

const char *http_bearer_token(const char *authorization) {
  if (!authorization || strncasecmp(authorization, "Bearer", 6) != 0) return NULL;
  const char *p = authorization + 6;
  if (*p != ' ' && *p != '\t') return NULL;
  while (*p == ' ' || *p == '\t') p++;
  if (*p == '\0') return NULL;
  return p;
}

bool http_path_acceptable(const char *path, size_t len) {
  const unsigned char *p = (const unsigned char *)path;
  if (!p || len == 0 || p[0] != '/') return false;
  for (size_t i = 0; i < len;) {
    unsigned char c = p[i];
    if (c < 0x20 || c == 0x7f) return false;
    if (c < 0x80) {
      i++;
      continue;
    }
    /* UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing past U+10FFFF. */
    size_t n;
    unsigned lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) n = 1;
    else if (c == 0xe0) n = 2, lo = 0xa0;
    else if (c >= 0xe1 && c <= 0xec) n = 2;
    else if (c == 0xed) n = 2, hi = 0x9f;
    else if (c >= 0xee && c <= 0xef) n = 2;
    else if (c == 0xf0) n = 3, lo = 0x90;
    else if (c >= 0xf1 && c <= 0xf3) n = 3;
    else if (c == 0xf4) n = 3, hi = 0x8f;
    else return false;
    if (len - i - 1 < n) return false;
    if (p[i + 1] < lo || p[i + 1] > hi) return false;
    for (size_t k = 2; k <= n; k++)
      if (p[i + k] < 0x80 || p[i + k] > 0xbf) return false;
    /* C1 controls (U+0080..U+009F) steer terminals as well as C0 ones. */
    if (c == 0xc2 && p[i + 1] < 0xa0) return false;
    i += n + 1;
  }
  return true;
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

size_t http_unescape(char *s) {
  char *w = s;
  for (const char *r = s; *r;) {
    int hi, lo;
    if (r[0] == '%' && (hi = hex_value(r[1])) >= 0 && (lo = hex_value(r[2])) >= 0) {
      int c = hi * 16 + lo;
      *w++ = (char)(c == 0 ? 0x7f : c);
      r += 3;
    } else {
      *w++ = *r++;
    }
  }
  *w = '\0';
  return (size_t)(w - s);
}

bool http_plain_authority(const char *s) {
  if (!s || !*s || strlen(s) > 300) return false;
  for (const char *p = s; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
          *p == '.' || *p == '-' || *p == ':' || *p == '[' || *p == ']'))
      return false;
  return true;
}

void http_forwarded_client(const char *xff, http_trust_fn trusted, void *ctx, char *out,
                           size_t len) {
  if (!xff || !out || len == 0) return;
  size_t end = strlen(xff);
  while (end > 0) {
    size_t start = end;
    while (start > 0 && xff[start - 1] != ',') start--;
    size_t a = start, b = end;
    while (a < b && (xff[a] == ' ' || xff[a] == '\t')) a++;
    while (b > a && (xff[b - 1] == ' ' || xff[b - 1] == '\t')) b--;
    char hop[INET6_ADDRSTRLEN];
    unsigned char hb[16];
    if (b - a == 0 || b - a >= sizeof hop) break;
    memcpy(hop, xff + a, b - a);
    hop[b - a] = '\0';
    if (inet_pton(AF_INET, hop, hb) != 1 && inet_pton(AF_INET6, hop, hb) != 1) break;
    snprintf(out, len, "%s", hop);
    if (!trusted(hop, ctx)) break;
    end = start > 0 ? start - 1 : 0;
  }
}
