#include "http/router.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Status codes the server answers with; anything else is counted as "other"
 * so that the label set stays bounded. */
static const unsigned codes[] = {101, 200, 201, 202, 204, 304, 400, 401, 403, 404, 405,
                                 409, 412, 413, 415, 422, 429, 500, 503};
#define NCODES (sizeof codes / sizeof codes[0])

/* Upper bounds in microseconds; rendered in seconds. */
static const uint64_t bucket_us[] = {250,    500,    1000,   2500,    5000,    10000,  25000,
                                     50000,  100000, 250000, 500000,  1000000, 2500000};
#define NBUCKETS (sizeof bucket_us / sizeof bucket_us[0])

typedef struct counters {
  atomic_uint_fast64_t requests[HTTP_METHOD_COUNT][NCODES + 1];
  atomic_uint_fast64_t buckets[NBUCKETS + 1]; /* not cumulative; the last is +Inf */
  atomic_uint_fast64_t duration_sum_us;
} counters_t;

typedef struct entry {
  const http_route_t *route;
  const char *owner;
  size_t pattern; /* index into patterns[] */
} entry_t;

struct http_router {
  entry_t *entries; /* most specific first */
  size_t count;
  const char **patterns; /* distinct paths, in first-seen order */
  size_t npatterns;
  counters_t *counters; /* npatterns + 1: the last is "unmatched" */
};

/* ---- patterns ------------------------------------------------------------------------- */

static bool segment_is_param(const char *s, size_t n) {
  return n >= 2 && s[0] == '{' && s[n - 1] == '}';
}

static bool path_matches(const char *pattern, const char *path) {
  while (*pattern && *path) {
    if (*pattern != '/' || *path != '/') return false;
    pattern++;
    path++;
    const char *pe = strchrnul(pattern, '/'), *qe = strchrnul(path, '/');
    size_t pl = (size_t)(pe - pattern), ql = (size_t)(qe - path);
    if (segment_is_param(pattern, pl)) {
      if (ql == 0) return false;
    } else if (pl != ql || memcmp(pattern, path, pl) != 0) {
      return false;
    }
    pattern = pe;
    path = qe;
  }
  return *pattern == '\0' && *path == '\0';
}

/* Orders patterns so that, segment by segment, a literal comes before a
 * parameter. 0 when the two have the same shape (match the same paths). */
static int shape_compare(const char *a, const char *b) {
  for (;;) {
    if (!*a || !*b) return (*a != 0) - (*b != 0);
    a += *a == '/';
    b += *b == '/';
    const char *ae = strchrnul(a, '/'), *be = strchrnul(b, '/');
    size_t al = (size_t)(ae - a), bl = (size_t)(be - b);
    bool ap = segment_is_param(a, al), bp = segment_is_param(b, bl);
    if (ap != bp) return ap ? 1 : -1;
    if (!ap) {
      int c = strncmp(a, b, al < bl ? al : bl);
      if (c == 0 && al != bl) c = al < bl ? -1 : 1;
      if (c) return c;
    }
    a = ae;
    b = be;
  }
}

static int entry_compare(const void *x, const void *y) {
  const entry_t *a = x, *b = y;
  int c = shape_compare(a->route->path, b->route->path);
  if (c) return c;
  return (int)a->route->method - (int)b->route->method;
}

/* ---- building -------------------------------------------------------------------------- */

void http_router_free(http_router_t *r) {
  if (!r) return;
  free(r->entries);
  free(r->patterns);
  free(r->counters);
  free(r);
}

static size_t pattern_index(http_router_t *r, const char *path) {
  for (size_t i = 0; i < r->npatterns; i++)
    if (strcmp(r->patterns[i], path) == 0) return i;
  r->patterns[r->npatterns] = path;
  return r->npatterns++;
}

int http_router_build(const http_route_set_t *sets, size_t nsets, http_router_t **out, char *err,
                      size_t errlen) {
  *out = NULL;
  size_t total = 0;
  for (size_t s = 0; s < nsets; s++) total += sets[s].count;
  http_router_t *r = calloc(1, sizeof *r);
  if (!r || !(r->entries = calloc(total ? total : 1, sizeof *r->entries)) ||
      !(r->patterns = calloc(total ? total : 1, sizeof *r->patterns))) {
    http_router_free(r);
    snprintf(err, errlen, "Out of memory building the route table.");
    return -ENOMEM;
  }
  for (size_t s = 0; s < nsets; s++)
    for (size_t i = 0; i < sets[s].count; i++) {
      const http_route_t *route = &sets[s].routes[i];
      if (!route->path || route->path[0] != '/' || !route->handler ||
          (unsigned)route->method >= HTTP_OTHER) {
        snprintf(err, errlen, "The module %s has a route that is not valid (%s); every route "
                 "needs a method, a path starting with '/' and a handler.",
                 sets[s].owner, route->path ? route->path : "no path");
        http_router_free(r);
        return -EINVAL;
      }
      r->entries[r->count++] = (entry_t){.route = route, .owner = sets[s].owner};
    }
  qsort(r->entries, r->count, sizeof *r->entries, entry_compare);
  for (size_t i = 0; i + 1 < r->count; i++) {
    const entry_t *a = &r->entries[i], *b = &r->entries[i + 1];
    if (entry_compare(a, b) == 0) {
      snprintf(err, errlen, "Two routes answer the same requests: %s %s of the module %s and "
               "%s %s of the module %s. Give one of them another path.",
               http_method_name(a->route->method), a->route->path, a->owner,
               http_method_name(b->route->method), b->route->path, b->owner);
      http_router_free(r);
      return -EEXIST;
    }
  }
  for (size_t i = 0; i < r->count; i++) r->entries[i].pattern = pattern_index(r, r->entries[i].route->path);
  if (!(r->counters = calloc(r->npatterns + 1, sizeof *r->counters))) {
    http_router_free(r);
    snprintf(err, errlen, "Out of memory building the route table.");
    return -ENOMEM;
  }
  *out = r;
  return 0;
}

/* ---- matching ---------------------------------------------------------------------------- */

const http_route_t *http_router_match(const http_router_t *r, http_method_t method,
                                      const char *path, unsigned *allowed, size_t *pattern) {
  const entry_t *found = NULL;
  unsigned allow = 0;
  size_t first = r->npatterns;
  for (size_t i = 0; i < r->count; i++) {
    const entry_t *e = &r->entries[i];
    if (!path_matches(e->route->path, path)) continue;
    if (first == r->npatterns) first = e->pattern;
    allow |= 1u << e->route->method;
    if (e->route->method == HTTP_GET) allow |= 1u << HTTP_HEAD;
    bool same = e->route->method == method || (method == HTTP_HEAD && e->route->method == HTTP_GET);
    if (!found && same) found = e;
  }
  if (allowed) *allowed = allow;
  if (pattern) *pattern = found ? found->pattern : first;
  return found ? found->route : NULL;
}

size_t http_router_patterns(const http_router_t *r) { return r->npatterns; }

void http_allow_header(unsigned allowed, char *buf, size_t len) {
  size_t n = 0;
  if (len == 0) return;
  buf[0] = '\0';
  for (int m = 0; m < HTTP_OTHER; m++) {
    if (!(allowed & (1u << m))) continue;
    int w = snprintf(buf + n, len - n, "%s%s", n ? ", " : "", http_method_name((http_method_t)m));
    if (w < 0 || (size_t)w >= len - n) {
      buf[n] = '\0'; /* whole method names only */
      return;
    }
    n += (size_t)w;
  }
}

/* ---- counters ------------------------------------------------------------------------------- */

static size_t code_index(unsigned status) {
  for (size_t i = 0; i < NCODES; i++)
    if (codes[i] == status) return i;
  return NCODES;
}

void http_router_count(http_router_t *r, size_t pattern, http_method_t method, unsigned status,
                       uint64_t micros) {
  if (pattern > r->npatterns) pattern = r->npatterns;
  if ((unsigned)method >= HTTP_METHOD_COUNT) method = HTTP_OTHER;
  counters_t *c = &r->counters[pattern];
  atomic_fetch_add_explicit(&c->requests[method][code_index(status)], 1, memory_order_relaxed);
  size_t b = 0;
  while (b < NBUCKETS && micros > bucket_us[b]) b++;
  atomic_fetch_add_explicit(&c->buckets[b], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&c->duration_sum_us, micros, memory_order_relaxed);
}

void http_router_reset_counters(http_router_t *r) {
  memset(r->counters, 0, (r->npatterns + 1) * sizeof *r->counters);
}

static uint64_t load(const atomic_uint_fast64_t *v) {
  return atomic_load_explicit((atomic_uint_fast64_t *)v, memory_order_relaxed);
}

void http_router_write_metrics(const http_router_t *r, FILE *f) {
  fputs("# HELP atrium_http_requests_total HTTP requests by route pattern, method and status.\n"
        "# TYPE atrium_http_requests_total counter\n",
        f);
  for (size_t s = 0; s <= r->npatterns; s++) {
    const char *route = s < r->npatterns ? r->patterns[s] : "unmatched";
    const counters_t *c = &r->counters[s];
    for (size_t m = 0; m < HTTP_METHOD_COUNT; m++)
      for (size_t k = 0; k <= NCODES; k++) {
        uint64_t v = load(&c->requests[m][k]);
        if (!v) continue;
        char code[8];
        if (k < NCODES)
          snprintf(code, sizeof code, "%u", codes[k]);
        else
          snprintf(code, sizeof code, "other");
        fprintf(f, "atrium_http_requests_total{route=\"%s\",method=\"%s\",code=\"%s\"} %llu\n",
                route, http_method_name((http_method_t)m), code, (unsigned long long)v);
      }
  }
  fputs("# HELP atrium_http_request_duration_seconds Time from the request line to the end of "
        "the reply, by route pattern.\n"
        "# TYPE atrium_http_request_duration_seconds histogram\n",
        f);
  for (size_t s = 0; s <= r->npatterns; s++) {
    const counters_t *c = &r->counters[s];
    uint64_t counts[NBUCKETS + 1], total = 0;
    for (size_t b = 0; b <= NBUCKETS; b++) total += counts[b] = load(&c->buckets[b]);
    if (!total) continue;
    const char *route = s < r->npatterns ? r->patterns[s] : "unmatched";
    uint64_t cum = 0;
    for (size_t b = 0; b < NBUCKETS; b++) {
      cum += counts[b];
      fprintf(f, "atrium_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
              route, bucket_us[b] / 1e6, (unsigned long long)cum);
    }
    fprintf(f, "atrium_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n",
            route, (unsigned long long)total);
    fprintf(f, "atrium_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n", route,
            load(&c->duration_sum_us) / 1e6);
    fprintf(f, "atrium_http_request_duration_seconds_count{route=\"%s\"} %llu\n", route,
            (unsigned long long)total);
  }
}
