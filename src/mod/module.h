/* A feature module: everything atriumd knows of a feature is in one
 * atrium_module_t, as nginx's ngx_module_t is for its modules. main.c walks
 * one ordered list of them forward to start and backward to stop; the HTTP
 * layer, the metrics and the settings plane know no feature by name.
 *
 * Lifecycle, in order, each step for every module before the next:
 *   settings  the owner of the module's sections is registered (before the
 *             first settings snapshot exists)
 *   init      after the store, the settings and admin auth are up: read
 *             state, register hooks; no threads
 *   start     threads, sockets, timers (the runtime module first: the event
 *             loop and the worker pools)
 *   -         the HTTP server starts with every module's routes
 *   ...
 *   drain     the server no longer takes requests: close long-lived
 *             connections (WebSockets) while the HTTP server still runs
 *   -         the HTTP server stops
 *   stop      join threads, free what start and init made (reverse order)
 * Every hook may be NULL. stop is called for every module whose init ran,
 * so it must cope with a start that never happened.
 *
 * A module's folder is src/mod/<name>/; its public header is <name>.h, and
 * every other header in the folder is private to it (the layering check in
 * scripts/check-layers.py enforces that). */
#pragma once

#include <stdint.h>
#include <stdio.h>

#include "conf/atlas.h"
#include "conf/settings.h"
#include "core/secret.h"
#include "http/http.h"
#include "store/store.h"

/* What every module may use, given to init. */
typedef struct module_env {
  store_t *store;
  const secret_key_t *key;
  const atlas_config_t *atlas;
} module_env_t;

typedef enum module_state {
  MODULE_OFF,     /* switched off by its settings: nothing to run */
  MODULE_OK,      /* running as configured */
  MODULE_WARNING, /* running, but something needs the admin's attention */
  MODULE_FAILING, /* configured to run and not working */
} module_state_t;

typedef struct module_status {
  module_state_t state;
  char sentence[512];    /* what it runs or why not, for the status page */
  char last_error[1024]; /* the most recent failure, "" when none */
  int64_t last_error_at; /* unix seconds, 0 when none */
} module_status_t;

typedef struct atrium_module {
  const char *name;
  const http_route_t *routes;
  size_t route_count;
  const settings_owner_t *settings;
  int (*init)(const module_env_t *env, char *err, size_t errlen);
  int (*start)(char *err, size_t errlen);
  void (*drain)(void);
  void (*stop)(void);
  /* Complete "# HELP"/"# TYPE"/sample lines for /metrics. */
  void (*metrics)(FILE *f);
  void (*status)(module_status_t *out);
} atrium_module_t;

#define MODULE_ROUTES(table) .routes = (table), .route_count = sizeof(table) / sizeof((table)[0])

/* The modules in start order, as main.c set them (so that the admin API can
 * ask each for its status and metrics). */
void modules_set(const atrium_module_t *const *list, size_t count);
const atrium_module_t *const *modules_list(size_t *count);
const char *module_state_name(module_state_t state);
