#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "mod/publishing/ad_publish.h"
#include "mod/publishing/discovery.h"
#include "mod/publishing/internal.h"
#include "mod/publishing/kerberos.h"
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

/* Settings that are saved but cannot work as they stand: the save goes
 * through, the warning stays beside the field and on the Status page. */
static void warn(const settings_snapshot_t *snap, settings_warn_fn add, void *wctx) {
  const char *keytab = settings_string(snap, "login.kerberos_keytab");
  char principal[512], err[600];
  if (keytab[0]) {
    int r = kerberos_keytab_check(keytab, principal, sizeof principal, err, sizeof err);
    if (r != 0)
      add(wctx, "login.kerberos_keytab",
          r == -ENOENT ? "keytab-unreadable" : r == -ENODATA ? "keytab-empty" : "keytab-invalid",
          "%s", err);
  } else if (settings_bool(snap, "login.allow_automatic")) {
    add(wctx, "login.allow_automatic", "no-keytab",
        "Automatic login is allowed, but no Kerberos keytab is set (login.kerberos_keytab): "
        "clients cannot log in automatically until one is, or switch this off.");
  }
  const json_t *pw = settings_value(snap, "ad.bind_password");
  if (settings_bool(snap, "login.publish_address") && *settings_string(snap, "ad.uri") &&
      (!json_is_string(pw) || !json_string_length(pw)))
    add(wctx, "ad.bind_password", "no-bind-password",
        "Active Directory publishing is on, but no bind password is set: the server binds "
        "%s, which Active Directory refuses for writing the service connection point.",
        *settings_string(snap, "ad.bind_dn") ? "without a password" : "anonymously");
}

static const char *const sections[] = {"login", "ad", NULL};
/* The SCP carries the server's URL and the domain. */
static const char *const follows[] = {"server", "domain", NULL};

static const settings_owner_t owner = {
    .name = "publishing",
    .sections = sections,
    .follows = follows,
    .apply = apply,
    .warn = warn,
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

/* The worse of two states (off < ok < warning < failing). */
static module_state_t worse(module_state_t a, module_state_t b) { return a > b ? a : b; }

/* Keeps the most recent of the failures offered. */
static void newer_error(module_status_t *out, const char *text, int64_t at) {
  if (!text[0] || at < out->last_error_at || (at == 0 && out->last_error[0])) return;
  snprintf(out->last_error, sizeof out->last_error, "%s", text);
  out->last_error_at = at;
}

static void append(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void append(char *buf, size_t len, const char *fmt, ...) {
  size_t n = strlen(buf);
  if (n + 1 >= len) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf + n, len - n, fmt, ap);
  va_end(ap);
}

/* Discovery, AD publishing and Kerberos, each with its own verdict; the
 * module's state is the worst of them. */
static void status(module_status_t *out) {
  discovery_status_t d;
  ad_publish_status_t a;
  discovery_get_status(&d);
  ad_publish_get_status(&a);
  settings_snapshot_t *snap = settings_acquire();
  bool automatic = settings_bool(snap, "login.allow_automatic");
  char keytab[4096];
  snprintf(keytab, sizeof keytab, "%s", settings_string(snap, "login.kerberos_keytab"));
  settings_release(snap);

  module_state_t state = MODULE_OFF;
  char *s = out->sentence;
  size_t len = sizeof out->sentence;
  s[0] = '\0';
  if (!d.enabled) {
    append(s, len, "UDP discovery is off. ");
  } else if (!d.running) {
    state = worse(state, MODULE_FAILING);
    append(s, len, "UDP discovery is not answering. ");
  } else {
    state = worse(state, MODULE_OK);
    append(s, len, "UDP discovery answers on port %d. ", d.port);
  }
  if (strcmp(a.state, "error") == 0) {
    state = worse(state, MODULE_FAILING);
    append(s, len, "The Active Directory service connection point is not published. ");
  } else if (strcmp(a.state, "not_configured") == 0) {
    state = worse(state, MODULE_WARNING);
    append(s, len, "AD publishing is on but ad.uri or ad.container_dn is blank. ");
  } else if (strcmp(a.state, "off") != 0) {
    state = worse(state, MODULE_OK);
    append(s, len, "AD publishing: %s. ", a.state);
  }
  if (automatic) {
    char principal[512], err[600];
    if (kerberos_keytab_check(keytab, principal, sizeof principal, err, sizeof err) == 0) {
      state = worse(state, MODULE_OK);
      append(s, len, "Automatic login: the keytab holds %.200s.", principal);
    } else if (!keytab[0]) {
      /* Not set up rather than broken: allowed by default, configured by nobody yet. */
      state = worse(state, MODULE_WARNING);
      append(s, len, "Automatic login is allowed but not set up (no keytab).");
    } else {
      state = worse(state, MODULE_FAILING);
      append(s, len, "Automatic login cannot work: the keytab is missing or unusable.");
      newer_error(out, err, 0);
    }
  } else {
    append(s, len, "Automatic login is off.");
  }
  out->state = state;
  newer_error(out, d.message, d.last_failure);
  newer_error(out, a.message, a.last_failure);
  char kerr[768];
  int64_t kat = 0;
  publishing_login_auto_last_error(kerr, sizeof kerr, &kat);
  newer_error(out, kerr, kat);
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
