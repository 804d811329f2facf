#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "mod/publishing/ad_publish.h"
#include "mod/publishing/discovery.h"
#include "mod/publishing/internal.h"
#include "mod/publishing/publishing.h"

static const http_route_t routes[] = {
    /* Integrated Windows login (Negotiate, no body) and the publishing state. */
    {.method = HTTP_POST, .path = "/client/v1/login/auto", .handler = publishing_login_auto,
     .auth = HTTP_AUTH_NONE},
    {.method = HTTP_GET, .path = "/api/v1/publishing/status", .handler = publishing_status_api,
     .auth = HTTP_AUTH_ADMIN},
};

/* One hook for both publishers: discovery first, since it can refuse (a
 * port in use); the AD worker only takes the new values. */
static int apply(const settings_snapshot_t *old_snap, const settings_snapshot_t *new_snap,
                 void *ctx, char *err, size_t errlen) {
  int r = discovery_apply(old_snap, new_snap, err, errlen);
  if (r == 0) ad_publish_follow(new_snap);
  return r;
}

static const char *const sections[] = {"login", "ad", NULL};
/* The SCP carries the server's URL and the domain. */
static const char *const follows[] = {"server", "domain", NULL};

static const settings_owner_t owner = {
    .name = "publishing",
    .sections = sections,
    .follows = follows,
    .apply = apply,
};

static int start(char *err, size_t errlen) {
  /* A busy UDP port or a dead LDAP server is not fatal: the admin sees it in
   * GET /api/v1/publishing/status and can change the settings. */
  settings_snapshot_t *snap = settings_acquire();
  char why[512];
  if (discovery_start(snap, why, sizeof why) != 0) log_warning("UDP discovery: %s", why);
  if (ad_publish_start(snap, why, sizeof why) != 0) log_warning("AD publishing: %s", why);
  settings_release(snap);
  return 0;
}

static void stop(void) {
  discovery_shutdown();
  ad_publish_shutdown();
}

static void metrics(FILE *f) { discovery_write_metrics(f); }

static void status(module_status_t *out) {
  discovery_status_t d;
  ad_publish_status_t a;
  discovery_get_status(&d);
  ad_publish_get_status(&a);
  bool d_fail = d.enabled && !d.running;
  bool a_fail = strcmp(a.state, "error") == 0;
  if (!d.enabled && strcmp(a.state, "off") == 0) {
    out->state = MODULE_OFF;
    snprintf(out->sentence, sizeof out->sentence,
             "The server's address is not published (login.publish_address is off).");
  } else if (d_fail || a_fail) {
    out->state = MODULE_FAILING;
    snprintf(out->sentence, sizeof out->sentence, "%s%s",
             d_fail ? "UDP discovery is not answering. " : "",
             a_fail ? "The Active Directory service connection point is not published." : "");
    snprintf(out->last_error, sizeof out->last_error, "%s", d_fail ? d.message : a.message);
  } else {
    out->state = MODULE_OK;
    snprintf(out->sentence, sizeof out->sentence,
             "UDP discovery answers on port %d; AD publishing is %s.", d.port, a.state);
  }
}

const atrium_module_t publishing_module = {
    .name = "publishing",
    MODULE_ROUTES(routes),
    .settings = &owner,
    .start = start,
    .stop = stop,
    .metrics = metrics,
    .status = status,
};
