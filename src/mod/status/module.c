/* GET /api/v1/status: see status.h. Modules are asked in start order; a
 * module without a status() is reported as running, saying that it reports
 * nothing more, so that the page lists every module there is. */
#include "mod/status/status.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/timefmt.h"
#include "mod/rt/rt.h"

static int64_t started_at;

static json_t *local_time(int64_t unix_seconds) {
  if (unix_seconds <= 0) return json_null();
  char t[TIMEFMT_LEN];
  time_rfc3339_local_ms(unix_seconds * 1000, t);
  return json_string(t);
}

static json_t *module_json(const atrium_module_t *m, module_state_t *state) {
  module_status_t st;
  memset(&st, 0, sizeof st);
  if (m->status) {
    m->status(&st);
  } else {
    st.state = MODULE_OK;
    snprintf(st.sentence, sizeof st.sentence, "Running; this module reports nothing more.");
  }
  *state = st.state;
  return json_pack("{s:s, s:s, s:s, s:o, s:o}", "name", m->name, "state",
                   module_state_name(st.state), "sentence", st.sentence, "last_error",
                   st.last_error[0] ? json_string(st.last_error) : json_null(), "last_error_at",
                   local_time(st.last_error_at));
}

/* The configuration warnings of the snapshot in force, as a list. */
static json_t *warnings_json(module_state_t *worst) {
  json_t *list = json_array();
  settings_snapshot_t *snap = settings_acquire();
  const json_t *by_key = snap ? settings_warnings(snap) : NULL;
  const char *key;
  json_t *items;
  json_object_foreach((json_t *)by_key, key, items) {
    size_t i;
    json_t *w;
    json_array_foreach(items, i, w) {
      json_t *o = json_pack("{s:s, s:O, s:O}", "key", key, "code", json_object_get(w, "code"),
                            "message", json_object_get(w, "message"));
      if (o) json_array_append_new(list, o);
    }
  }
  settings_release(snap);
  if (json_array_size(list) > 0 && *worst < MODULE_WARNING) *worst = MODULE_WARNING;
  return list;
}

static enum MHD_Result status_api(http_request_t *req) {
  size_t count;
  const atrium_module_t *const *list = modules_list(&count);
  json_t *mods = json_array();
  module_state_t worst = MODULE_OK;
  for (size_t i = 0; mods && i < count; i++) {
    if (list[i] == &status_module) continue;
    module_state_t s;
    json_t *o = module_json(list[i], &s);
    if (o) json_array_append_new(mods, o);
    if (s > worst) worst = s;
  }
  json_t *warnings = warnings_json(&worst);
  size_t users = 0, connections = 0;
  rt_client_counts(&users, &connections);
  json_t *body =
      json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:{s:I, s:I}}", "state", module_state_name(worst),
                "version", ATRIUM_VERSION, "checked_at", local_time((int64_t)time(NULL)),
                "started_at", local_time(started_at), "modules", mods, "warnings", warnings,
                "clients", "users", (json_int_t)users, "connections", (json_int_t)connections);
  return http_reply_json(req, MHD_HTTP_OK, body);
}

static const http_route_t routes[] = {
    {.method = HTTP_GET, .path = "/api/v1/status", .handler = status_api, .auth = HTTP_AUTH_ADMIN},
};

static int init(const module_env_t *env, char *err, size_t errlen) {
  started_at = (int64_t)time(NULL);
  return 0;
}

const atrium_module_t status_module = {
    .name = "status",
    MODULE_ROUTES(routes),
    .init = init,
};
