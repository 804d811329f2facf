/* QoS policies applied by atriumd itself. See qos.h for the contract and
 * docs/operations/qos.md for what an operator sees. */
#include "mod/qos/qos.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

/* The longest policy path decoded on the stack; validated URLs are shorter. */
#define QOS_PATH_MAX 2048

/* ---- matching ---------------------------------------------------------------------------- */

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c; }

/* '*' matches any run of characters. Iterative with one back-tracking point:
 * linear in practice, O(n*m) at worst, and both sides are short. */
static bool glob_match(const char *p, size_t pn, const char *s, size_t sn, bool fold) {
  size_t pi = 0, si = 0, star = SIZE_MAX, mark = 0;
  while (si < sn) {
    if (pi < pn && p[pi] == '*') {
      star = pi++;
      mark = si;
    } else if (pi < pn && (fold ? lower(p[pi]) == lower(s[si]) : p[pi] == s[si])) {
      pi++;
      si++;
    } else if (star != SIZE_MAX) {
      pi = star + 1;
      si = ++mark;
    } else {
      return false;
    }
  }
  while (pi < pn && p[pi] == '*') pi++;
  return pi == pn;
}

typedef struct authority {
  const char *host, *port; /* host without IPv6 brackets; port NULL when absent */
  size_t host_len, port_len;
} authority_t;

static void split_authority(const char *a, size_t n, authority_t *out) {
  *out = (authority_t){.host = a, .host_len = n};
  if (n > 0 && a[0] == '[') {
    const char *close = memchr(a, ']', n);
    if (!close) return;
    out->host = a + 1;
    out->host_len = (size_t)(close - a) - 1;
    const char *rest = close + 1;
    if (rest < a + n && *rest == ':') {
      out->port = rest + 1;
      out->port_len = (size_t)(a + n - out->port);
    }
    return;
  }
  const char *colon = memchr(a, ':', n);
  /* Several colons without brackets: an IPv6 literal, no port. */
  if (!colon || memchr(colon + 1, ':', (size_t)(a + n - colon - 1))) return;
  out->host_len = (size_t)(colon - a);
  out->port = colon + 1;
  out->port_len = (size_t)(a + n - out->port);
}

/* 1-65535 from digits only; -1 otherwise. */
static long port_value(const char *s, size_t n) {
  if (n == 0 || n > 5) return -1;
  long v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v >= 1 && v <= 65535 ? v : -1;
}

static int hex_digit(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = lower(c);
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The policy's path with %XX decoded into buf (the request path arrives
 * decoded). Returns the length, or -1 when it does not fit. */
static long decode_path(const char *p, size_t n, char *buf, size_t len) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    if (o == len) return -1;
    int hi, lo;
    if (p[i] == '%' && i + 2 < n && (hi = hex_digit(p[i + 1])) >= 0 &&
        (lo = hex_digit(p[i + 2])) >= 0) {
      buf[o++] = (char)(hi << 4 | lo);
      i += 2;
    } else {
      buf[o++] = p[i];
    }
  }
  return (long)o;
}

static bool path_matches(const char *pat, size_t pn, const char *path, bool subdirs) {
  /* A trailing '/' is not significant: "/webmeeting" and "/webmeeting/" are
   * the same application. */
  while (pn > 0 && pat[pn - 1] == '/') pn--;
  size_t rn = strlen(path), stripped = rn;
  while (stripped > 0 && path[stripped - 1] == '/') stripped--;
  if (glob_match(pat, pn, path, rn, false) || glob_match(pat, pn, path, stripped, false))
    return true;
  if (!subdirs) return false;
  /* Every ancestor, cut at a '/': "/a/b/c" tries "", "/a", "/a/b". */
  for (size_t i = 0; i < rn; i++)
    if (path[i] == '/' && glob_match(pat, pn, path, i, false)) return true;
  return false;
}

static bool policy_matches(const json_t *policy, const char *scheme, const char *host,
                           const char *path) {
  const char *url = json_string_value(json_object_get(policy, "url"));
  const char *sep = url ? strstr(url, "://") : NULL;
  if (!sep) return false;
  const char *auth = sep + 3;
  size_t auth_len = strcspn(auth, "/?");
  const char *ppath = auth + auth_len;
  size_t ppath_len = strcspn(ppath, "?");

  /* The path first: it is what tells most requests apart, and the cheapest. */
  bool subdirs = json_is_true(json_object_get(policy, "include_subdirectories"));
  if (memchr(ppath, '%', ppath_len)) {
    char buf[QOS_PATH_MAX];
    long n = decode_path(ppath, ppath_len, buf, sizeof buf);
    if (n < 0 || !path_matches(buf, (size_t)n, path, subdirs)) return false;
  } else if (!path_matches(ppath, ppath_len, path, subdirs)) {
    return false;
  }

  if (!glob_match(url, (size_t)(sep - url), scheme, strlen(scheme), true)) return false;

  authority_t want, got;
  split_authority(auth, auth_len, &want);
  split_authority(host, strlen(host), &got);
  /* "example.com." is the same host as "example.com". */
  if (got.host_len > 1 && got.host[got.host_len - 1] == '.') got.host_len--;
  if (!glob_match(want.host, want.host_len, got.host, got.host_len, true)) return false;
  if (!want.port || (want.port_len == 1 && want.port[0] == '*')) return true;
  long port = got.port && got.port_len ? port_value(got.port, got.port_len)
                                       : strcmp(scheme, "https") == 0 ? 443 : 80;
  return port > 0 && port == port_value(want.port, want.port_len);
}

const json_t *qos_match(const json_t *policies, const char *scheme, const char *host,
                        const char *path) {
  if (!json_is_array(policies) || !path) return NULL;
  size_t i;
  const json_t *policy;
  json_array_foreach(policies, i, policy) {
    if (policy_matches(policy, scheme ? scheme : "http", host ? host : "", path)) return policy;
  }
  return NULL;
}

/* ---- marking a socket ----------------------------------------------------------------------- */

static int set_pacing(int fd, long max_rate_mbps) {
  if (max_rate_mbps <= 0) {
    unsigned unlimited = ~0U;
    return setsockopt(fd, SOL_SOCKET, SO_MAX_PACING_RATE, &unlimited, sizeof unlimited) == 0
               ? 0
               : -errno;
  }
  uint64_t bytes = (uint64_t)max_rate_mbps * 125000u; /* Mbit/s to bytes per second */
  if (bytes < UINT32_MAX) {
    unsigned v = (unsigned)bytes;
    return setsockopt(fd, SOL_SOCKET, SO_MAX_PACING_RATE, &v, sizeof v) == 0 ? 0 : -errno;
  }
  /* Above ~34 Gbit/s the 32-bit form cannot say it; 64-bit kernels read a
   * 64-bit value when given eight bytes. */
  return setsockopt(fd, SOL_SOCKET, SO_MAX_PACING_RATE, &bytes, sizeof bytes) == 0 ? 0 : -errno;
}

int qos_apply_fd(int fd, int family, int dscp, long max_rate_mbps) {
  if (dscp < 0 || dscp > 63 || (family != AF_INET && family != AF_INET6)) return -EINVAL;
  /* DSCP is the upper six bits of the former TOS byte; the kernel keeps the
   * two ECN bits of a TCP socket for itself. */
  int tos = dscp << 2;
  int r = 0;
  if (family == AF_INET6) {
    if (setsockopt(fd, IPPROTO_IPV6, IPV6_TCLASS, &tos, sizeof tos) != 0) r = -errno;
    /* IPv4 clients of a dual-stack socket are sent with IP_TOS; on an
     * IPv6-only socket this is simply unused, so its result does not count. */
    (void)setsockopt(fd, IPPROTO_IP, IP_TOS, &tos, sizeof tos);
  } else if (setsockopt(fd, IPPROTO_IP, IP_TOS, &tos, sizeof tos) != 0) {
    r = -errno;
  }
  int p = set_pacing(fd, max_rate_mbps);
  return r ? r : p;
}
