/* Issue 6: published URLs (entries, reverse-proxy document, nginx block,
 * mobile configuration) against a real settings snapshot, and the privacy
 * policy module (language choice, renderer, template precedence, the
 * retention time read again when atlas.xml changes). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf/atlas.h"
#include "fixture.h"
#include "mod/meeting/privacy.h"
#include "mod/published/published.h"
#include "core/secret.h"
#include "conf/settings.h"
#include "store/store.h"

static void patch(const char *json) {
  json_t *body = json_loads(json, 0, NULL);
  assert_non_null(body);
  settings_outcome_t out;
  settings_change(body, SETTINGS_OP_PATCH, "tester", -1, &out);
  if (outcome_status(&out) != 200) {
    char *e = json_dumps(out.problem.errors, 0);
    fail_msg("PATCH %s: %d %s %s", json, outcome_status(&out), out.problem.detail, e ? e : "");
  }
  settings_outcome_clear(&out);
  json_decref(body);
}

/* ---- published ---------------------------------------------------------------------- */

static void test_upstream(void **state) {
  (void)state;
  published_upstream_t up;
  published_upstream_init(&up, "127.0.0.1", 8080, false);
  assert_string_equal(up.host, "127.0.0.1");
  assert_false(up.wildcard);
  published_upstream_init(&up, "::", 9000, true);
  assert_string_equal(up.host, "[::1]");
  assert_true(up.wildcard);
  assert_true(up.tls);
  published_upstream_init(&up, "0.0.0.0", 1, false);
  assert_string_equal(up.host, "127.0.0.1");
  assert_true(up.wildcard);
  published_upstream_init(&up, "fd00::5", 1, false);
  assert_string_equal(up.host, "[fd00::5]");
}

static void test_entries_follow_settings(void **state) {
  (void)state;
  patch("{\"server.public_url\": \"https://atrium.example.com\", \"mobile.app_url\": \"\","
        " \"meeting.enabled\": false, \"docs.url\": \"\"}");
  published_entry_t e[PUBLISHED_MAX_ENTRIES];
  settings_snapshot_t *snap = settings_acquire();
  int n = published_entries(snap, e, PUBLISHED_MAX_ENTRIES);
  settings_release(snap);
  assert_int_equal(n, 2);
  assert_string_equal(e[0].feature, "um");
  assert_string_equal(e[0].path, "/umsettings/");
  assert_int_equal(e[0].port, 443);
  assert_false(e[0].port_explicit);
  assert_string_equal(e[1].feature, "docs");

  patch("{\"mobile.app_url\": \"https://m.example.com:7443/app\","
        " \"mobile.webapi_url\": \"https://m.example.com:443/\", \"meeting.enabled\": true,"
        " \"meeting.url\": \"http://meet.example.com:8080/m/\","
        " \"docs.url\": \"https://docs.example.org/\"}");
  snap = settings_acquire();
  n = published_entries(snap, e, PUBLISHED_MAX_ENTRIES);
  assert_int_equal(n, 4);
  assert_string_equal(e[0].feature, "mobile.app");
  assert_int_equal(e[0].port, 7443);
  assert_true(e[0].port_explicit);
  assert_string_equal(e[0].path, "/app/"); /* a location needs the slash */
  assert_string_equal(e[1].url, "https://m.example.com/");
  assert_string_equal(e[1].path, "/");
  assert_int_equal(e[1].port, 443);
  assert_string_equal(e[3].feature, "meeting");
  assert_string_equal(e[3].scheme, "http");
  assert_int_equal(e[3].port, 8080);
  assert_true(e[3].websocket);
  assert_false(published_docs_builtin(snap));

  published_upstream_t up;
  published_upstream_init(&up, "127.0.0.1", 8080, false);
  json_t *doc = published_reverse_proxy_json(snap, &up);
  assert_non_null(doc);
  assert_int_equal(json_array_size(json_object_get(doc, "entries")), 4);
  /* m.example.com:7443, m.example.com:443, atrium.example.com, meet.example.com:8080 */
  assert_int_equal(json_array_size(json_object_get(doc, "servers")), 4);
  json_t *meeting = json_array_get(json_object_get(doc, "entries"), 3);
  assert_string_equal(json_string_value(json_object_get(meeting, "websocket_path")), "/m/ws");
  assert_string_equal(json_string_value(json_object_get(meeting, "upstream")),
                      "http://127.0.0.1:8080/webmeeting/");
  json_decref(doc);

  char *conf = NULL;
  published_nginx_opts_t opts = {0};
  assert_int_equal(published_nginx(snap, &up, &opts, &conf), 0);
  assert_non_null(strstr(conf, "listen 7443 ssl;"));
  assert_non_null(strstr(conf, "listen 443 ssl;"));
  /* The http meeting names atriumd's own port: nginx cannot take it, so the
   * block listens on 80 (no ssl) and says why. */
  assert_null(strstr(conf, "listen 8080;"));
  assert_non_null(strstr(conf, "listen 80;"));
  assert_non_null(strstr(conf, "names port 8080, which is atriumd's own: nginx listens on 80"));
  assert_non_null(strstr(conf, "location = /m/ws {"));
  assert_non_null(strstr(conf, "proxy_set_header Upgrade $http_upgrade;"));
  assert_non_null(
      strstr(conf, "location /app/ {\n        proxy_pass http://127.0.0.1:8080/client/;"));
  assert_null(strstr(conf, "/docs/"));
  free(conf);

  opts.listen = "[::1]:8081";
  opts.tls = true;
  assert_int_equal(published_nginx(snap, &up, &opts, &conf), 0);
  assert_non_null(strstr(conf, "listen [::1]:8081 ssl;"));
  free(conf);
  /* atriumd's own address and port, spelled three ways, is refused. */
  static const char *const own[] = {"8080", "127.0.0.1:8080", "0.0.0.0:8080"};
  for (size_t i = 0; i < sizeof own / sizeof own[0]; i++) {
    opts.listen = own[i];
    assert_int_equal(published_nginx(snap, &up, &opts, &conf), -EADDRINUSE);
    assert_null(conf);
  }
  opts.listen = "127.0.0.2:8080"; /* another loopback address: nginx can bind it */
  assert_int_equal(published_nginx(snap, &up, &opts, &conf), 0);
  free(conf);
  static const char *const bad[] = {"", "host:80", "1.2.3.4:0", "1.2.3.4:65536", "[::1]80",
                                    "80 ssl", "1.2.3.4:80;", "[zz]:80"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    opts.listen = bad[i];
    conf = NULL;
    if (*bad[i]) assert_int_equal(published_nginx(snap, &up, &opts, &conf), -EINVAL);
    assert_null(conf);
  }

  json_t *cfg = published_client_config(snap);
  json_t *urls = json_object_get(cfg, "urls");
  assert_string_equal(json_string_value(json_object_get(urls, "app")),
                      "https://m.example.com:7443/app");
  assert_string_equal(json_string_value(json_object_get(urls, "meeting")),
                      "http://meet.example.com:8080/m/");
  assert_string_equal(json_string_value(json_object_get(urls, "docs")),
                      "https://docs.example.org/");
  json_decref(cfg);
  settings_release(snap);
}

static void test_path_conflict(void **state) {
  (void)state;
  /* UM settings and the mobile app on one host and path cannot both be forwarded. */
  patch("{\"server.public_url\": \"https://atrium.example.com\", \"meeting.enabled\": false,"
        " \"mobile.webapi_url\": \"\", \"docs.url\": \"\","
        " \"mobile.app_url\": \"https://atrium.example.com/umsettings/\"}");
  settings_snapshot_t *snap = settings_acquire();
  published_upstream_t up;
  published_upstream_init(&up, "127.0.0.1", 8080, false);
  json_t *doc = published_reverse_proxy_json(snap, &up);
  assert_int_equal(json_array_size(json_object_get(doc, "conflicts")), 1);
  json_decref(doc);
  char *conf = NULL;
  published_nginx_opts_t opts = {0};
  assert_int_equal(published_nginx(snap, &up, &opts, &conf), 0);
  assert_non_null(strstr(conf, "# CONFLICT:"));
  free(conf);
  settings_release(snap);
  patch("{\"mobile.app_url\": \"\"}");
}

/* ---- privacy ------------------------------------------------------------------------------ */

static void test_pick_language(void **state) {
  (void)state;
  static const struct {
    const char *param, *accept;
    privacy_lang_t want;
  } cases[] = {
      {NULL, NULL, PRIVACY_LANG_EN},
      {"de", NULL, PRIVACY_LANG_DE},
      {"DE-at", "en", PRIVACY_LANG_DE},
      {"fr", "de", PRIVACY_LANG_DE}, /* an unknown ?lang= falls through */
      {"", "de-DE,de;q=0.9,en;q=0.8", PRIVACY_LANG_DE},
      {NULL, "en-US,en;q=0.9,de;q=0.8", PRIVACY_LANG_EN},
      {NULL, "de;q=0.5, en;q=0.6", PRIVACY_LANG_EN},
      {NULL, "en;q=0.5, de;q=0.6", PRIVACY_LANG_DE},
      {NULL, "fr, de;q=0.1", PRIVACY_LANG_DE},
      {NULL, "de;q=0, en;q=0.1", PRIVACY_LANG_EN},
      {NULL, "de;q=0", PRIVACY_LANG_EN},
      {NULL, "de;q=2", PRIVACY_LANG_EN}, /* not a qvalue: ignored */
      {NULL, "de;q=0.1234", PRIVACY_LANG_EN},
      {NULL, " de ; q=1.000 ", PRIVACY_LANG_DE},
      {NULL, "*", PRIVACY_LANG_EN},
      {NULL, ",,,;;;", PRIVACY_LANG_EN},
      {NULL, "deu", PRIVACY_LANG_EN},
      {NULL, "de_DE", PRIVACY_LANG_DE},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    privacy_lang_t got = privacy_pick_language(cases[i].param, cases[i].accept);
    if (got != cases[i].want)
      fail_msg("lang=%s Accept-Language=%s: got %s", cases[i].param ? cases[i].param : "(none)",
               cases[i].accept ? cases[i].accept : "(none)", privacy_lang_code(got));
  }
}

static void expect_render(const char *tmpl, int days, privacy_lang_t lang, const char *want) {
  char *out = NULL;
  size_t len = 0;
  assert_int_equal(privacy_render(tmpl, strlen(tmpl), days, lang, &out, &len), 0);
  assert_string_equal(out, want);
  assert_int_equal(len, strlen(want));
  free(out);
}

static void test_render(void **state) {
  (void)state;
  expect_render("", 5, PRIVACY_LANG_EN, "");
  expect_render("no placeholder", 5, PRIVACY_LANG_EN, "no placeholder");
  expect_render("{RetentionTime}", 365, PRIVACY_LANG_EN, "365");
  expect_render("a {RetentionTime} b {RetentionTime}{RetentionTime}", 0, PRIVACY_LANG_EN,
                "a 0 b 00");
  expect_render("{Foo} {RetentionTime {retentiontime} {RetentionTime}}", 7, PRIVACY_LANG_EN,
                "{Foo} {RetentionTime {retentiontime} 7}");
  expect_render("<p>{RetentionTime}</p>", -1, PRIVACY_LANG_EN,
                "<p>The retention time could not be determined; the operator has been "
                "notified.</p>");
  expect_render("{RetentionTime}", -1, PRIVACY_LANG_DE, privacy_unknown_sentence(PRIVACY_LANG_DE));
  char *out = NULL;
  assert_int_equal(privacy_render("x", PRIVACY_TEMPLATE_MAX + 1, 1, PRIVACY_LANG_EN, &out, NULL),
                   -EFBIG);
  assert_null(out);
}

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  assert_int_equal(fclose(f), 0);
}

static void test_template_precedence(void **state) {
  fixture_t *f = *state;
  char install[400], custom[400], path[600];
  snprintf(install, sizeof install, "%s/install", f->dir);
  snprintf(custom, sizeof custom, "%s/custom", f->dir);
  assert_int_equal(mkdir(install, 0700), 0);
  privacy_template_t t;
  assert_int_equal(privacy_template_load(install, custom, PRIVACY_LANG_EN, &t), -ENOENT);
  privacy_template_clear(&t);
  snprintf(path, sizeof path, "%s/DataPrivacyStatement_EN.html", install);
  write_text(path, "install EN");
  snprintf(path, sizeof path, "%s/DataPrivacyStatement_DE.html", install);
  write_text(path, "install DE");
  assert_int_equal(privacy_template_load(install, custom, PRIVACY_LANG_EN, &t), 0);
  assert_string_equal(t.text, "install EN");
  assert_false(t.custom);
  privacy_template_clear(&t);
  assert_int_equal(mkdir(custom, 0700), 0);
  snprintf(path, sizeof path, "%s/DataPrivacyStatement_EN.html", custom);
  write_text(path, "custom EN");
  assert_int_equal(privacy_template_load(install, custom, PRIVACY_LANG_EN, &t), 0);
  assert_string_equal(t.text, "custom EN");
  assert_true(t.custom);
  privacy_template_clear(&t);
  assert_int_equal(privacy_template_load(install, custom, PRIVACY_LANG_DE, &t), 0);
  assert_string_equal(t.text, "install DE");
  privacy_template_clear(&t);
  /* A directory where the copy should be is an error, not a silent fallback. */
  snprintf(path, sizeof path, "%s/DataPrivacyStatement_DE.html", custom);
  assert_int_equal(mkdir(path, 0700), 0);
  assert_int_equal(privacy_template_load(install, custom, PRIVACY_LANG_DE, &t), -EINVAL);
  privacy_template_clear(&t);
  privacy_template_clear(NULL);

  char a[4096], b[4096];
  privacy_dirs("/srv/i", "/srv/c", "/etc/atrium/atlas.xml", a, sizeof a, b, sizeof b);
  assert_string_equal(a, "/srv/i");
  assert_string_equal(b, "/srv/c");
  privacy_dirs("", "", "/etc/atrium/atlas.xml", a, sizeof a, b, sizeof b);
  assert_string_equal(b, "/etc/atrium/privacy");
  assert_true(a[0] == '/');
}

static void test_retention_reread(void **state) {
  fixture_t *f = *state;
  char path[400];
  snprintf(path, sizeof path, "%s/atlas.xml", f->dir);
  write_text(path, "<Atlas><IMDeleteAfterDays>90</IMDeleteAfterDays>"
                   "<JournalDeleteAfterDays>365</JournalDeleteAfterDays></Atlas>");
  privacy_retention_t *r = privacy_retention_new(path);
  assert_non_null(r);
  int days;
  bool changed;
  char err[512];
  privacy_retention_get(r, &days, &changed, err, sizeof err);
  assert_int_equal(days, 365);
  assert_true(changed);
  privacy_retention_get(r, &days, &changed, err, sizeof err);
  assert_int_equal(days, 365);
  assert_false(changed); /* unchanged file: not parsed again */

  char tmp[420];
  snprintf(tmp, sizeof tmp, "%s.new", path);
  write_text(tmp, "<Atlas><IMDeleteAfterDays>400</IMDeleteAfterDays></Atlas>");
  assert_int_equal(rename(tmp, path), 0);
  privacy_retention_get(r, &days, &changed, err, sizeof err);
  assert_int_equal(days, 400);
  assert_true(changed);

  write_text(path, "<Atlas><IMDeleteAfterDays>4");
  privacy_retention_get(r, &days, &changed, err, sizeof err);
  assert_int_equal(days, -1);
  assert_true(changed);
  assert_non_null(strstr(err, "atlas.xml"));
  privacy_retention_get(r, &days, &changed, err, sizeof err);
  assert_false(changed); /* the warning is logged once, not per request */
  assert_int_equal(days, -1);

  assert_int_equal(unlink(path), 0);
  privacy_retention_get(r, &days, &changed, err, sizeof err);
  assert_int_equal(days, -1);
  assert_true(changed);
  assert_non_null(strstr(err, "cannot read"));
  privacy_retention_get(r, &days, &changed, err, sizeof err);
  assert_false(changed);

  write_text(path, "<Atlas/>");
  privacy_retention_get(r, &days, &changed, err, sizeof err);
  assert_int_equal(days, -1);
  assert_non_null(strstr(err, "neither"));
  privacy_retention_free(r);
  privacy_retention_free(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_upstream),
      cmocka_unit_test(test_entries_follow_settings),
      cmocka_unit_test(test_path_conflict),
      cmocka_unit_test(test_pick_language),
      cmocka_unit_test(test_render),
      cmocka_unit_test(test_template_precedence),
      cmocka_unit_test(test_retention_reread),
  };
  return cmocka_run_group_tests(tests, fixture_setup, fixture_teardown);
}
