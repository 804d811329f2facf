/* The outbound module: the one HTTP client every outbound request goes
 * through (it follows proxy.*), Test connection, and the rules that make a
 * proxy configuration complete. */
#include "mod/outbound/internal.h"
#include "mod/outbound/outbound.h"

static const http_route_t routes[] = {
    /* "Test connection" with unsaved proxy values; {} or no body tests the saved ones. */
    {.method = HTTP_POST, .path = "/api/v1/proxy/test", .handler = outbound_proxy_test_api,
     .auth = HTTP_AUTH_ADMIN, .body = HTTP_BODY_JSON_OPTIONAL},
};

static void check(const settings_snapshot_t *snap, problem_t *p) {
  if (settings_bool(snap, "proxy.enabled") && !*settings_string(snap, "proxy.host"))
    problem_add_error(p, "proxy.host",
                      "Is required when \"Use proxy server\" is on: enter the proxy's host name or "
                      "IP address, or turn the proxy off.");
  if (settings_bool(snap, "proxy.auth_required") && !*settings_string(snap, "proxy.username"))
    problem_add_error(p, "proxy.username",
                      "Is required when the proxy server requires authentication: enter the user "
                      "name, or turn authentication off.");
}

static void warn(const settings_snapshot_t *snap, settings_warn_fn add, void *wctx) {
  if (settings_bool(snap, "mobile.push_use_proxy") && !settings_bool(snap, "proxy.enabled"))
    add(wctx, "mobile.push_use_proxy", "proxy-disabled",
        "Push notifications are to be sent through the proxy, but \"Use proxy server\" is off: "
        "they go out directly until the proxy is enabled.");
}

static const char *const sections[] = {"proxy", "license", NULL};

static const settings_owner_t owner = {
    .name = "outbound",
    .sections = sections,
    .check = check,
    .warn = warn,
};

static int init(const module_env_t *env, char *err, size_t errlen) {
  /* Before any thread exists: curl_global_init is not thread-safe. */
  return outbound_init(env->atlas->ca_bundle, err, errlen);
}

static void status(module_status_t *out) {
  outbound_last_t l;
  outbound_last_result(&l);
  settings_snapshot_t *snap = settings_acquire();
  bool proxy = settings_bool(snap, "proxy.enabled");
  char via[300];
  snprintf(via, sizeof via, "%s%.200s", proxy ? "through the proxy " : "directly",
           proxy ? settings_string(snap, "proxy.host") : "");
  settings_release(snap);
  if (l.last_error[0]) {
    snprintf(out->last_error, sizeof out->last_error, "%s", l.last_error);
    out->last_error_at = l.last_error_at;
  }
  if (l.requests == 0) {
    out->state = MODULE_OK;
    snprintf(out->sentence, sizeof out->sentence,
             "Outbound requests go %s; none was made since the start (Test connection makes "
             "one).",
             via);
  } else if (l.last_failed) {
    out->state = MODULE_FAILING;
    snprintf(out->sentence, sizeof out->sentence,
             "The last outbound request (%s) failed; %llu since the start.", via,
             (unsigned long long)l.requests);
  } else {
    out->state = MODULE_OK;
    snprintf(out->sentence, sizeof out->sentence,
             "Outbound requests go %s; the last one succeeded (%llu since the start).", via,
             (unsigned long long)l.requests);
  }
}

const atrium_module_t outbound_module = {
    .name = "outbound",
    MODULE_ROUTES(routes),
    .settings = &owner,
    .init = init,
    .stop = outbound_shutdown,
    .status = status,
};
