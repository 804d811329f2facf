#include "core/metrics.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "conf/settings.h"

/* Status codes the API answers with; anything else is counted as "other"
 * so that the label set stays bounded. */
static const unsigned codes[] = {200, 201, 204, 304, 400, 401, 403, 404, 405,
                                 409, 412, 413, 415, 422, 429, 500, 503};
#define NCODES (sizeof codes / sizeof codes[0])
#define SLOTS (HTTP_MAX_ROUTES + 1)

/* Upper bounds in microseconds; rendered in seconds. */
static const uint64_t bucket_us[] = {250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000,
                                     250000, 500000, 1000000, 2500000};
#define NBUCKETS (sizeof bucket_us / sizeof bucket_us[0])

static atomic_uint_fast64_t requests[SLOTS][HTTP_METHOD_COUNT][NCODES + 1];
static atomic_uint_fast64_t buckets[SLOTS][NBUCKETS + 1]; /* not cumulative; last is +Inf */
static atomic_uint_fast64_t duration_sum_us[SLOTS];
static atomic_uint_fast64_t login_failures;

static size_t code_index(unsigned status) {
  for (size_t i = 0; i < NCODES; i++)
    if (codes[i] == status) return i;
  return NCODES;
}

void metrics_http_request(size_t slot, http_method_t method, unsigned status, uint64_t micros) {
  if (slot >= SLOTS) slot = SLOTS - 1;
  if ((unsigned)method >= HTTP_METHOD_COUNT) method = HTTP_OTHER;
  atomic_fetch_add_explicit(&requests[slot][method][code_index(status)], 1, memory_order_relaxed);
  size_t b = 0;
  while (b < NBUCKETS && micros > bucket_us[b]) b++;
  atomic_fetch_add_explicit(&buckets[slot][b], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&duration_sum_us[slot], micros, memory_order_relaxed);
}

void metrics_login_failure(void) {
  atomic_fetch_add_explicit(&login_failures, 1, memory_order_relaxed);
}

static metrics_render_fn renderers[METRICS_RENDERERS_MAX];
static atomic_size_t renderer_count; /* published after the slot is written */

int metrics_register(metrics_render_fn fn) {
  size_t n = atomic_load(&renderer_count);
  if (n >= METRICS_RENDERERS_MAX) return -ENOSPC;
  renderers[n] = fn;
  atomic_store(&renderer_count, n + 1);
  return 0;
}

void metrics_reset(void) {
  for (size_t s = 0; s < SLOTS; s++) {
    for (size_t m = 0; m < HTTP_METHOD_COUNT; m++)
      for (size_t c = 0; c <= NCODES; c++) atomic_store(&requests[s][m][c], 0);
    for (size_t b = 0; b <= NBUCKETS; b++) atomic_store(&buckets[s][b], 0);
    atomic_store(&duration_sum_us[s], 0);
  }
  atomic_store(&login_failures, 0);
}

static uint64_t load(atomic_uint_fast64_t *v) {
  return atomic_load_explicit(v, memory_order_relaxed);
}

int metrics_render(store_t *store, char **text, size_t *len) {
  *text = NULL;
  *len = 0;
  char *buf = NULL;
  size_t size = 0;
  FILE *f = open_memstream(&buf, &size);
  if (!f) return -ENOMEM;

  size_t nroutes;
  const http_route_t *routes = http_routes(&nroutes);
  if (nroutes >= SLOTS) nroutes = SLOTS - 1;

  fputs("# HELP atrium_build_info Atrium version; always 1.\n"
        "# TYPE atrium_build_info gauge\n"
        "atrium_build_info{version=\"" ATRIUM_VERSION "\"} 1\n",
        f);

  fputs("# HELP atrium_http_requests_total HTTP requests by route pattern, method and status.\n"
        "# TYPE atrium_http_requests_total counter\n",
        f);
  for (size_t s = 0; s <= nroutes; s++) {
    const char *route = s < nroutes ? routes[s].path : "unmatched";
    for (size_t m = 0; m < HTTP_METHOD_COUNT; m++) {
      for (size_t c = 0; c <= NCODES; c++) {
        uint64_t v = load(&requests[s][m][c]);
        if (!v) continue;
        char code[8];
        if (c < NCODES)
          snprintf(code, sizeof code, "%u", codes[c]);
        else
          snprintf(code, sizeof code, "other");
        fprintf(f, "atrium_http_requests_total{route=\"%s\",method=\"%s\",code=\"%s\"} %llu\n",
                route, http_method_name((http_method_t)m), code, (unsigned long long)v);
      }
    }
  }

  fputs("# HELP atrium_http_request_duration_seconds Time from the request line to the end of "
        "the reply, by route pattern.\n"
        "# TYPE atrium_http_request_duration_seconds histogram\n",
        f);
  for (size_t s = 0; s <= nroutes; s++) {
    uint64_t counts[NBUCKETS + 1], total = 0;
    for (size_t b = 0; b <= NBUCKETS; b++) total += counts[b] = load(&buckets[s][b]);
    if (!total) continue;
    const char *route = s < nroutes ? routes[s].path : "unmatched";
    uint64_t cum = 0;
    for (size_t b = 0; b < NBUCKETS; b++) {
      cum += counts[b];
      fprintf(f, "atrium_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
              route, bucket_us[b] / 1e6, (unsigned long long)cum);
    }
    fprintf(f, "atrium_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n",
            route, (unsigned long long)total);
    fprintf(f, "atrium_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n", route,
            load(&duration_sum_us[s]) / 1e6);
    fprintf(f, "atrium_http_request_duration_seconds_count{route=\"%s\"} %llu\n", route,
            (unsigned long long)total);
  }

  settings_snapshot_t *snap = settings_acquire();
  if (snap) {
    fprintf(f,
            "# HELP atrium_settings_version Version of the settings in force.\n"
            "# TYPE atrium_settings_version gauge\n"
            "atrium_settings_version %llu\n",
            (unsigned long long)settings_version(snap));
    settings_release(snap);
  }
  if (store)
    fprintf(f,
            "# HELP atrium_store_errors_total SQLite failures since the server started.\n"
            "# TYPE atrium_store_errors_total counter\n"
            "atrium_store_errors_total %llu\n",
            (unsigned long long)store_error_count(store));
  fprintf(f,
          "# HELP atrium_login_failures_total Failed or refused admin logins.\n"
          "# TYPE atrium_login_failures_total counter\n"
          "atrium_login_failures_total %llu\n",
          (unsigned long long)load(&login_failures));
  for (size_t i = 0, n = atomic_load(&renderer_count); i < n; i++) renderers[i](f);

  if (ferror(f)) {
    fclose(f);
    free(buf);
    return -ENOMEM;
  }
  if (fclose(f) != 0) {
    free(buf);
    return -ENOMEM;
  }
  *text = buf;
  *len = size;
  return 0;
}
