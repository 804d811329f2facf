/* Published URLs over HTTP: the mobile configuration document, the telephony
 * web API base, the reverse-proxy list and nginx block, and the privacy
 * policy (its admin preview and the rendering the meeting page uses). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/api.h"
#include "conf/atlas.h"
#include "core/log.h"
#include "mod/published/privacy.h"
#include "mod/published/published.h"
#include "conf/settings.h"

static struct {
  char listen_address[64];
  char trusted[2048];
  char install[4096];
  char custom[4096];
  privacy_retention_t *retention;
  pthread_mutex_t lock; /* guards template_errno */
  int template_errno[PRIVACY_LANG_COUNT];
} P = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void log_retention(int days, bool changed, const char *why) {
  if (!changed) return;
  if (days < 0)
    log_warning("privacy policy: %s; the meeting page says the retention time could not be "
                "determined until atlas.xml is fixed",
                why);
  else
    log_info("privacy policy: retention time %d days (from atlas.xml)", days);
}

int api_published_init(const struct atlas_config *atlas) {
  snprintf(P.listen_address, sizeof P.listen_address, "%s", atlas->listen_address);
  snprintf(P.trusted, sizeof P.trusted, "%s", atlas->trusted_proxies);
  privacy_dirs(atlas->privacy_install, atlas->privacy_custom, atlas->path, P.install,
               sizeof P.install, P.custom, sizeof P.custom);
  privacy_retention_free(P.retention);
  P.retention = privacy_retention_new(atlas->path);
  if (!P.retention) return -ENOMEM;
  int days;
  bool changed;
  char why[512];
  privacy_retention_get(P.retention, &days, &changed, why, sizeof why);
  log_retention(days, changed, why);
  log_info("privacy policy templates: %s (customised copies in %s)", P.install, P.custom);
  return 0;
}

void api_published_shutdown(void) {
  api_pages_shutdown();
  privacy_retention_free(P.retention);
  P.retention = NULL;
}

static void upstream(published_upstream_t *up) {
  published_upstream_init(up, P.listen_address, http_port(), http_tls());
}

/* ---- mobile app and telephony web API ------------------------------------------- */

enum MHD_Result api_client_config(http_request_t *req) {
  settings_snapshot_t *snap = settings_acquire();
  json_t *doc = published_client_config(snap);
  settings_release(snap);
  return http_reply_json(req, MHD_HTTP_OK, doc);
}

enum MHD_Result api_webapi_info(http_request_t *req) {
  settings_snapshot_t *snap = settings_acquire();
  const char *url = settings_string(snap, "mobile.webapi_url");
  const char *host = http_request_host(req);
  /* "request" shows how this server saw the call: behind a reverse proxy it
   * tells the admin whether X-Forwarded-* arrive and are believed. */
  json_t *doc = json_pack(
      "{s:s, s:s, s:s, s:o, s:{s:b, s:s}, s:{s:s, s:s, s:o, s:b}}", "service",
      "telephony-webapi", "server", "Atrium", "version", ATRIUM_VERSION, "url",
      *url ? json_string(url) : json_null(), "telephony", "available", 0, "detail",
      "Telephony in the mobile app (device selection, Softphone Mobile) is provided by the "
      "telephony system; this base URL answers so that the app and the reverse proxy can be "
      "checked.",
      "request", "client", http_client_address(req), "scheme", http_request_scheme(req), "host",
      host ? json_string(host) : json_null(), "via_trusted_proxy", http_via_trusted_proxy(req));
  settings_release(snap);
  return http_reply_json(req, MHD_HTTP_OK, doc);
}

/* ---- reverse proxy ------------------------------------------------------------------ */

enum MHD_Result api_reverse_proxy(http_request_t *req) {
  published_upstream_t up;
  upstream(&up);
  settings_snapshot_t *snap = settings_acquire();
  json_t *doc = published_reverse_proxy_json(snap, &up);
  settings_release(snap);
  if (!doc) return http_reply_oom(req);
  json_t *trusted = json_array(), *warnings = json_array();
  char list[sizeof P.trusted];
  snprintf(list, sizeof list, "%s", P.trusted);
  char *save = NULL;
  for (char *t = strtok_r(list, " ", &save); t; t = strtok_r(NULL, " ", &save))
    json_array_append_new(trusted, json_string(t));
  if (json_array_size(trusted) == 0)
    json_array_append_new(
        warnings, json_pack("{s:s, s:s}", "code", "no-trusted-proxies", "message",
                            "atlas.xml lists no <TrustedProxies>: atriumd ignores "
                            "X-Forwarded-* and sees the proxy's address as the client's. "
                            "Add the proxy's address there and restart."));
  if (up.wildcard)
    json_array_append_new(
        warnings, json_pack("{s:s, s:s}", "code", "upstream-guessed", "message",
                            "atriumd listens on every interface; the upstream address is "
                            "loopback, which is right only when the proxy runs on this machine."));
  json_object_set_new(doc, "trusted_proxies", trusted);
  json_object_set_new(doc, "warnings", warnings);
  return http_reply_json(req, MHD_HTTP_OK, doc);
}

static int parse_bool_param(const char *v, bool dflt, bool *out) {
  if (!v) {
    *out = dflt;
    return 0;
  }
  static const char *const yes[] = {"on", "true", "yes", "1"}, *const no[] = {"off", "false",
                                                                              "no", "0"};
  for (size_t i = 0; i < 4; i++) {
    if (strcasecmp(v, yes[i]) == 0) return *out = true, 0;
    if (strcasecmp(v, no[i]) == 0) return *out = false, 0;
  }
  return -EINVAL;
}

static void release_free(void *p) { free(p); }

enum MHD_Result api_reverse_proxy_nginx(http_request_t *req) {
  published_nginx_opts_t opts = {.listen = http_query(req, "listen")};
  if (opts.listen && !*opts.listen) opts.listen = NULL;
  if (parse_bool_param(http_query(req, "tls"), true, &opts.tls) != 0) {
    json_t *errors = json_pack("[{s:s, s:s}]", "key", "tls", "message", "use on or off");
    enum MHD_Result r = http_reply_problem(req, MHD_HTTP_BAD_REQUEST, "bad-parameter",
                                           "Bad parameter", "tls must be on or off.", errors);
    json_decref(errors);
    return r;
  }
  published_upstream_t up;
  upstream(&up);
  settings_snapshot_t *snap = settings_acquire();
  char *text = NULL;
  int r = published_nginx(snap, &up, &opts, &text);
  settings_release(snap);
  if (r == -EINVAL) {
    json_t *errors = json_pack("[{s:s, s:s}]", "key", "listen", "message",
                               "give PORT, IPv4:PORT or [IPv6]:PORT");
    enum MHD_Result ret = http_reply_problem(
        req, MHD_HTTP_BAD_REQUEST, "bad-parameter", "Bad parameter",
        "listen must be a port, or an address and a port (127.0.0.1:8443, [::1]:8443).", errors);
    json_decref(errors);
    return ret;
  }
  if (r != 0) return http_reply_oom(req);
  return http_reply_buffer(req, MHD_HTTP_OK, "text/plain; charset=utf-8", text, strlen(text),
                           release_free, text);
}

/* ---- privacy policy --------------------------------------------------------------- */

/* A template problem is logged when it first appears (or changes), not at
 * every page view. */
static void note_template(privacy_lang_t lang, int r, const char *path) {
  pthread_mutex_lock(&P.lock);
  bool news = P.template_errno[lang] != r;
  P.template_errno[lang] = r;
  pthread_mutex_unlock(&P.lock);
  if (!news || r == 0) return;
  if (r == -ENOENT)
    log_warning("privacy policy: no %s in %s or %s; the meeting page shows no privacy policy "
                "until it is installed",
                privacy_template_name(lang), P.custom, P.install);
  else
    log_warning("privacy policy: cannot read %s: %s", path, strerror(-r));
}

static int render_policy(privacy_lang_t lang, char **html, size_t *len, privacy_template_t *t,
                         int *days) {
  bool changed;
  char why[512];
  privacy_retention_get(P.retention, days, &changed, why, sizeof why);
  log_retention(*days, changed, why);
  int r = privacy_template_load(P.install, P.custom, lang, t);
  note_template(lang, r, t->path);
  if (r != 0) return r;
  r = privacy_render(t->text, t->len, *days, lang, html, len);
  if (r != 0) log_warning("privacy policy: cannot render %s: %s", t->path, strerror(-r));
  return r;
}

int api_privacy_render(int lang, char **html, size_t *len) {
  privacy_template_t t;
  int days;
  if (lang < 0 || lang >= PRIVACY_LANG_COUNT) lang = PRIVACY_LANG_EN;
  int r = render_policy((privacy_lang_t)lang, html, len, &t, &days);
  privacy_template_clear(&t);
  return r;
}

enum MHD_Result api_privacy_info(http_request_t *req) {
  int days;
  bool changed;
  char why[512];
  privacy_retention_get(P.retention, &days, &changed, why, sizeof why);
  log_retention(days, changed, why);
  json_t *templates = json_array();
  for (int l = 0; l < PRIVACY_LANG_COUNT; l++) {
    privacy_template_t t;
    int r = privacy_template_load(P.install, P.custom, (privacy_lang_t)l, &t);
    json_array_append_new(
        templates, json_pack("{s:s, s:s, s:s, s:o}", "lang", privacy_lang_code(l), "file",
                             privacy_template_name(l), "source",
                             r == 0 ? (t.custom ? "custom" : "install")
                                    : r == -ENOENT ? "missing" : "unreadable",
                             "path", r == 0 || r != -ENOENT ? json_string(t.path) : json_null()));
    privacy_template_clear(&t);
  }
  json_t *doc = json_pack("{s:s, s:s, s:o, s:o, s:o}", "install_directory", P.install,
                          "custom_directory", P.custom, "templates", templates, "retention_days",
                          days >= 0 ? json_integer(days) : json_null(), "retention_error",
                          days >= 0 ? json_null() : json_string(why));
  return http_reply_json(req, MHD_HTTP_OK, doc);
}

enum MHD_Result api_privacy_preview(http_request_t *req) {
  privacy_lang_t lang = privacy_pick_language(http_query(req, "lang"),
                                              http_header(req, MHD_HTTP_HEADER_ACCEPT_LANGUAGE));
  privacy_template_t t;
  int days;
  char *html = NULL;
  size_t len = 0;
  int r = render_policy(lang, &html, &len, &t, &days);
  if (r == -ENOENT) {
    privacy_template_clear(&t);
    char detail[600];
    snprintf(detail, sizeof detail,
             "There is no %s in %.200s or %.200s; install the templates or run "
             "'atriumctl privacy customize'.",
             privacy_template_name(lang), P.custom, P.install);
    return http_reply_problem(req, MHD_HTTP_NOT_FOUND, "privacy-template-missing",
                              "Privacy policy template missing", detail, NULL);
  }
  if (r != 0) {
    char detail[600];
    snprintf(detail, sizeof detail, "The template %.400s cannot be used: %s.", t.path,
             strerror(-r));
    privacy_template_clear(&t);
    return http_reply_problem(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "privacy-template",
                              "Privacy policy template unusable", detail, NULL);
  }
  json_t *doc = json_pack("{s:s, s:s, s:s, s:o, s:s#}", "lang", privacy_lang_code(lang),
                          "source", t.custom ? "custom" : "install", "path", t.path,
                          "retention_days", days >= 0 ? json_integer(days) : json_null(), "html",
                          html, len);
  privacy_template_clear(&t);
  free(html);
  return http_reply_json(req, MHD_HTTP_OK, doc);
}
