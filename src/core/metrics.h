/* Prometheus metrics (text exposition format 0.0.4). Counters are C11
 * atomics: recording a request takes no lock. Requests are counted by route
 * pattern (not the raw path, which a client controls), method and status. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "http/http.h"
#include "store/store.h"

/* slot: from http_route_match (the route table's count for an unmatched path). */
void metrics_http_request(size_t slot, http_method_t method, unsigned status, uint64_t micros);
void metrics_login_failure(void);

/* A module that keeps its own counters (UDP discovery) writes its complete
 * "# HELP"/"# TYPE"/sample lines at the end of every exposition. At most
 * METRICS_RENDERERS_MAX; register at start, before the HTTP server runs.
 * 0 or -ENOSPC. */
#define METRICS_RENDERERS_MAX 8
typedef void (*metrics_render_fn)(FILE *f);
int metrics_register(metrics_render_fn fn);

/* The whole exposition; *text malloc'd. store may be NULL. 0 or -ENOMEM. */
int metrics_render(store_t *store, char **text, size_t *len);

/* Zeroes every counter (tests). */
void metrics_reset(void);
