/* Prometheus metrics (text exposition format 0.0.4): a registry of the
 * writers that add their lines to /metrics. Each part of the server (the
 * router, the store, admin auth, every feature module) registers one at
 * start and keeps its own counters, as C11 atomics, so that counting takes
 * no lock. */
#pragma once

#include <stddef.h>
#include <stdio.h>

#define METRICS_WRITERS_MAX 32

/* Writes complete "# HELP"/"# TYPE"/sample lines. */
typedef void (*metrics_write_fn)(FILE *f, void *ctx);

/* Register before the HTTP server runs. 0 or -ENOSPC. */
int metrics_register(metrics_write_fn fn, void *ctx);
/* Forgets every writer (at shutdown, and between tests). */
void metrics_clear(void);

/* atrium_build_info, then every writer in registration order; *text
 * malloc'd. 0 or -ENOMEM. */
int metrics_render(char **text, size_t *len);
