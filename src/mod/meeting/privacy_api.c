/* The privacy policy of web meetings: its admin information and preview,
 * and the rendering the meeting pages show guests. {RetentionTime} is read
 * live from atlas.xml. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf/atlas.h"
#include "core/log.h"
#include "mod/meeting/internal.h"
#include "mod/meeting/privacy.h"

static struct {
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

int meeting_privacy_init(const atlas_config_t *atlas) {
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

void meeting_privacy_shutdown(void) {
  privacy_retention_free(P.retention);
  P.retention = NULL;
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

int meeting_privacy_render(int lang, char **html, size_t *len) {
  privacy_template_t t;
  int days;
  if (lang < 0 || lang >= PRIVACY_LANG_COUNT) lang = PRIVACY_LANG_EN;
  int r = render_policy((privacy_lang_t)lang, html, len, &t, &days);
  privacy_template_clear(&t);
  return r;
}

/* The shipped templates mark what the operator must fill in this way. */
static bool has_operator_marker(const privacy_template_t *t) {
  return t->text && (strstr(t->text, "[Operator:") || strstr(t->text, "[Betreiber:"));
}

bool meeting_privacy_unedited(char *which, size_t len) {
  if (len) which[0] = '\0';
  if (!P.install[0]) return false;
  bool any = false;
  for (int l = 0; l < PRIVACY_LANG_COUNT; l++) {
    privacy_template_t t;
    if (privacy_template_load(P.install, P.custom, (privacy_lang_t)l, &t) == 0 &&
        has_operator_marker(&t)) {
      size_t n = strlen(which);
      snprintf(which + n, len - n, "%s%s", any ? ", " : "", privacy_template_name(l));
      any = true;
    }
    privacy_template_clear(&t);
  }
  return any;
}

enum MHD_Result meeting_privacy_info(http_request_t *req) {
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
        templates, json_pack("{s:s, s:s, s:s, s:o, s:b}", "lang", privacy_lang_code(l), "file",
                             privacy_template_name(l), "source",
                             r == 0 ? (t.custom ? "custom" : "install")
                                    : r == -ENOENT ? "missing" : "unreadable",
                             "path", r == 0 || r != -ENOENT ? json_string(t.path) : json_null(),
                             "unedited", r == 0 && has_operator_marker(&t)));
    privacy_template_clear(&t);
  }
  json_t *doc = json_pack("{s:s, s:s, s:o, s:o, s:o}", "install_directory", P.install,
                          "custom_directory", P.custom, "templates", templates, "retention_days",
                          days >= 0 ? json_integer(days) : json_null(), "retention_error",
                          days >= 0 ? json_null() : json_string(why));
  return http_reply_json(req, MHD_HTTP_OK, doc);
}

enum MHD_Result meeting_privacy_preview(http_request_t *req) {
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
