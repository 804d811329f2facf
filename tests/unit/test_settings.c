/* The settings pipeline against a real store in a temporary directory:
 * the catalogue sanity walk, precedence, persistence, secrets, conflicts,
 * the owners' rules, derived values and apply hooks with their rollback,
 * import. The modules' own rules are tested with them (test_rules.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"
#include "conf/settings.h"

static char *no_env[] = {NULL};


/* Redis' CONFIG sanity: for every key, write the value in force and read it
 * back, then reset it. A new row is covered the moment it is added; a
 * default a module computes is walked with the modules (test_rules.c). */
static void test_sanity_walk(void **state) { fixture_sanity_walk(true); }

static void test_document_shape(void **state) {
  json_t *doc = fixture_document();
  json_t *settings = json_object_get(doc, "settings");
  assert_int_equal(json_object_size(settings), catalogue_count);
  json_t *um = json_object_get(settings, "um.url");
  assert_string_equal(json_string_value(json_object_get(um, "value")), "");
  char want[512];
  snprintf(want, sizeof want, "%s/umsettings/",
           json_string_value(json_object_get(json_object_get(settings, "server.public_url"), "value")));
  assert_string_equal(json_string_value(json_object_get(um, "effective")), want);
  assert_non_null(strstr(want, ":8080/umsettings/"));
  json_t *pw = json_object_get(settings, "proxy.password");
  assert_true(json_is_false(json_object_get(json_object_get(pw, "value"), "set")));
  assert_string_equal(json_string_value(json_object_get(json_object_get(settings, "domain.name"), "value")),
                      "example.com");
  json_t *fq = json_object_get(settings, "federation.fqdn");
  assert_string_equal(json_string_value(json_object_get(fq, "effective")), "example.com");
  json_decref(doc);
}

static void test_version_and_persistence(void **state) {
  fixture_t *f = *state;
  settings_snapshot_t *snap = settings_acquire();
  uint64_t v0 = settings_version(snap);
  settings_release(snap);
  assert_int_equal(fixture_patch_status("{\"proxy.port\": 3128, \"proxy.host\": \"Squid.Example.com\"}"), 200);
  assert_int_equal(fixture_patch_status("{\"proxy.port\": 3128}"), 200); /* no change: same version */
  fixture_close(f);
  char err[512];
  assert_int_equal(fixture_open(f, no_env, err, sizeof err), 0);
  snap = settings_acquire();
  assert_int_equal(settings_version(snap), v0 + 1);
  assert_int_equal(settings_int(snap, "proxy.port"), 3128);
  assert_string_equal(settings_string(snap, "proxy.host"), "squid.example.com");
  settings_release(snap);
}

static void test_secret_is_sealed_and_hidden(void **state) {
  fixture_t *f = *state;
  assert_int_equal(fixture_patch_status("{\"proxy.password\": \"Tr0ub4dor&3\"}"), 200);
  settings_snapshot_t *snap = settings_acquire();
  assert_string_equal(settings_string(snap, "proxy.password"), "Tr0ub4dor&3");
  assert_null(strstr(settings_document(snap, NULL), "Tr0ub4dor"));
  json_t *exp = settings_export(snap);
  char *text = json_dumps(exp, 0);
  assert_null(strstr(text, "Tr0ub4dor"));
  assert_null(json_object_get(json_object_get(exp, "settings"), "proxy.password"));
  free(text);
  json_decref(exp);
  settings_release(snap);
  json_t *stored = NULL;
  uint64_t version;
  store_txn_t *t;
  assert_int_equal(store_read_begin(f->store, "test", &t), 0);
  assert_int_equal(store_settings_load(t, &stored, &version), 0);
  const char *sealed = json_string_value(json_object_get(stored, "proxy.password"));
  assert_non_null(sealed);
  assert_int_equal(strncmp(sealed, SECRET_SEALED_PREFIX, strlen(SECRET_SEALED_PREFIX)), 0);
  assert_null(strstr(sealed, "Tr0ub4dor"));
  json_decref(stored);
  json_t *audit = NULL;
  assert_int_equal(store_audit_list(t, 0, 10, &audit), 0);
  store_read_end(t);
  text = json_dumps(audit, 0);
  assert_null(strstr(text, "Tr0ub4dor"));
  assert_non_null(strstr(text, "(secret)"));
  free(text);
  json_decref(audit);
  /* "" clears it. */
  assert_int_equal(fixture_patch_status("{\"proxy.password\": \"\"}"), 200);
  snap = settings_acquire();
  assert_null(settings_value(snap, "proxy.password"));
  settings_release(snap);
}

static void test_bad_values_change_nothing(void **state) {
  json_t *before = fixture_document();
  static const struct {
    const char *body;
    int status;
    const char *keys[4];
  } cases[] = {
      {"{\"federation.enabled\": \"true\"}", 422, {"federation.enabled"}},
      {"{\"proxy.port\": 70000, \"login.discovery_port\": 0}", 422, {"proxy.port", "login.discovery_port"}},
      {"{\"mobile.app_url\": \"http://m.example.com/\"}", 422, {"mobile.app_url"}},
      {"{\"mobile.app_url\": \"https://m.example.com/a b\"}", 422, {"mobile.app_url"}},
      {"{\"no.such\": 1, \"proxy.port\": 1}", 422, {"no.such"}},
      {"{\"qos.policies\": [{\"name\": \"x\", \"dscp\": 64, \"max_rate_mbps\": 5, \"url\": "
       "\"http://h/x\", \"include_subdirectories\": true, \"any_destination\": true}]}",
       422, {"qos.policies"}},
      {"{\"domain.name\": \"other.com\"}", 409, {"domain.name"}},
      {"{\"domain.name\": \"other.com\", \"proxy.port\": 0}", 409, {"domain.name", "proxy.port"}},
      {"[1, 2]", 400, {NULL}},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    settings_outcome_t out;
    int s = fixture_patch(cases[i].body, &out);
    if (s != cases[i].status) fail_msg("case %zu: status %d, want %d", i, s, cases[i].status);
    for (size_t k = 0; k < 4 && cases[i].keys[k]; k++)
      if (!fixture_has_error(&out, cases[i].keys[k])) fail_msg("case %zu: no error for %s", i, cases[i].keys[k]);
    assert_true(strlen(out.problem.detail) > 10);
    settings_outcome_clear(&out);
    json_t *after = fixture_document();
    if (!json_equal(before, after)) fail_msg("case %zu changed the settings", i);
    json_decref(after);
  }
  json_decref(before);
}

static void test_if_match(void **state) {
  settings_snapshot_t *snap = settings_acquire();
  int64_t v = (int64_t)settings_version(snap);
  settings_release(snap);
  json_t *body = json_pack("{s:i}", "proxy.port", 3129);
  settings_outcome_t out;
  settings_change(body, SETTINGS_OP_PATCH, "t", v + 5, &out);
  assert_int_equal(outcome_status(&out), 412);
  settings_outcome_clear(&out);
  settings_change(body, SETTINGS_OP_PATCH, "t", v, &out);
  assert_int_equal(outcome_status(&out), 200);
  assert_int_equal(out.version, (uint64_t)v + 1);
  /* The outcome holds the snapshot this change made, even after another change. */
  settings_snapshot_t *mine = out.snapshot;
  assert_non_null(mine);
  assert_int_equal(settings_version(mine), (uint64_t)v + 1);
  assert_int_equal(fixture_patch_status("{\"proxy.port\": 3130}"), 200);
  assert_int_equal(settings_version(mine), (uint64_t)v + 1);
  assert_int_equal(settings_int(mine, "proxy.port"), 3129);
  settings_outcome_clear(&out);
  assert_null(out.snapshot);
  json_decref(body);
}

static void test_environment(void **state) {
  fixture_t *f = *state;
  fixture_close(f);
  char *env[] = {"ATRIUM_PROXY_PORT=3128", "ATRIUM_PROXY_BYPASS=localhost,10.0.0.0/8", NULL};
  char err[512];
  assert_int_equal(fixture_open(f, env, err, sizeof err), 0);
  settings_snapshot_t *snap = settings_acquire();
  assert_int_equal(settings_int(snap, "proxy.port"), 3128);
  assert_int_equal(settings_source(snap, "proxy.port"), SETTING_SOURCE_ENV);
  settings_release(snap);
  settings_outcome_t out;
  assert_int_equal(fixture_patch("{\"proxy.port\": 8080}", &out), 409);
  assert_non_null(strstr(json_string_value(json_object_get(json_array_get(out.problem.errors, 0), "message")),
                         "ATRIUM_PROXY_PORT"));
  settings_outcome_clear(&out);
  fixture_close(f);

  char *bad[] = {"ATRIUM_PROXY_PORT=99999", NULL};
  assert_int_not_equal(fixture_open(f, bad, err, sizeof err), 0);
  assert_non_null(strstr(err, "ATRIUM_PROXY_PORT"));
  fixture_close(f);
  char *domain[] = {"ATRIUM_DOMAIN_NAME=x.example.com", NULL};
  assert_int_not_equal(fixture_open(f, domain, err, sizeof err), 0);
  assert_non_null(strstr(err, "domain change"));
  fixture_close(f);
  assert_int_equal(fixture_open(f, no_env, err, sizeof err), 0);
}

/* ---- apply hooks ---- */

typedef struct hook_log {
  int calls;
  int fail;
  json_int_t last_old, last_new;
} hook_log_t;

static int proxy_hook(const settings_snapshot_t *o, const settings_snapshot_t *n, void *ctx,
                      char *err, size_t errlen) {
  hook_log_t *log = ctx;
  log->calls++;
  log->last_old = settings_int(o, "proxy.port");
  log->last_new = settings_int(n, "proxy.port");
  if (log->fail) {
    snprintf(err, errlen, "port %lld is refused by the test hook", (long long)log->last_new);
    return -EINVAL;
  }
  return 0;
}

static const char *const proxy_section[] = {"proxy", NULL};

static void test_apply_hooks_and_rollback(void **state) {
  fixture_t *f = *state;
  static hook_log_t ok_log, bad_log;
  memset(&ok_log, 0, sizeof ok_log);
  memset(&bad_log, 0, sizeof bad_log);
  static const settings_owner_t ok_owner = {
      .name = "ok", .sections = proxy_section, .apply = proxy_hook, .ctx = &ok_log};
  static const settings_owner_t bad_owner = {
      .name = "bad", .sections = proxy_section, .apply = proxy_hook, .ctx = &bad_log};
  static const settings_owner_t *const first[] = {&ok_owner, NULL};
  static const settings_owner_t *const both[] = {&ok_owner, &bad_owner, NULL};
  char err[512];
  fixture_close(f);
  f->owners = first;
  assert_int_equal(fixture_open(f, no_env, err, sizeof err), 0);
  assert_int_equal(fixture_patch_status("{\"proxy.port\": 4000}"), 200);
  assert_int_equal(ok_log.calls, 1);
  assert_int_equal(ok_log.last_old, 8080);
  assert_int_equal(ok_log.last_new, 4000);
  /* A section that did not change does not run its hook. */
  assert_int_equal(fixture_patch_status("{\"meeting.enabled\": true}"), 200);
  assert_int_equal(ok_log.calls, 1);
  /* Two keys of the section: the hook runs once. */
  assert_int_equal(fixture_patch_status("{\"proxy.port\": 4001, \"proxy.host\": \"p.example.com\"}"),
                   200);
  assert_int_equal(ok_log.calls, 2);

  bad_log.fail = 1;
  fixture_close(f);
  f->owners = both;
  assert_int_equal(fixture_open(f, no_env, err, sizeof err), 0);
  json_t *before = fixture_document();
  settings_outcome_t out;
  assert_int_equal(fixture_patch("{\"proxy.port\": 5000}", &out), 422);
  assert_string_equal(out.problem.slug, "apply-failed");
  assert_true(fixture_has_error(&out, "proxy.port"));
  settings_outcome_clear(&out);
  /* The first hook applied 5000 and was then called back with (new, old). */
  assert_int_equal(ok_log.calls, 4);
  assert_int_equal(ok_log.last_old, 5000);
  assert_int_equal(ok_log.last_new, 4001);
  json_t *after = fixture_document();
  assert_true(json_equal(before, after));
  json_decref(before);
  json_decref(after);
  fixture_close(f);
  f->owners = NULL;
  assert_int_equal(fixture_open(f, no_env, err, sizeof err), 0);
}

/* ---- owners' rules: the mechanism, with rules of the test's own ---- */

/* The port must be even while the proxy is on; the bypass list follows the
 * host; a warning when the port is 8080. */
static void odd_check(const settings_snapshot_t *snap, problem_t *p) {
  if (settings_bool(snap, "proxy.enabled") && settings_int(snap, "proxy.port") % 2)
    problem_add_error(p, "proxy.port", "Must be even while the proxy is on (a test rule).");
}

static void follow_host(const settings_snapshot_t *cur, const settings_snapshot_t *probe,
                        const json_t *changes, json_t *stored) {
  if (json_object_get(changes, "proxy.bypass")) return;
  if (strcmp(settings_string(cur, "proxy.host"), settings_string(probe, "proxy.host")) == 0)
    return;
  json_object_set_new(stored, "proxy.bypass",
                      json_pack("[s]", settings_string(probe, "proxy.host")));
}

static void warn_8080(const settings_snapshot_t *snap, settings_warn_fn add, void *wctx) {
  if (settings_int(snap, "proxy.port") == 8080)
    add(wctx, "proxy.port", "test-port", "Port %d is the test's warning.", 8080);
}

static void test_owner_rules(void **state) {
  fixture_t *f = *state;
  static const settings_owner_t rules = {.name = "rules", .sections = proxy_section,
                                         .check = odd_check, .derive = follow_host,
                                         .warn = warn_8080};
  static const settings_owner_t *const owners[] = {&rules, NULL};
  char err[512];
  fixture_close(f);
  f->owners = owners;
  assert_int_equal(fixture_open(f, no_env, err, sizeof err), 0);
  /* A rule's error sits beside the key it names; every failing key is
   * listed, those with a bad value of their own and those a rule refuses. */
  settings_outcome_t out;
  assert_int_equal(fixture_patch("{\"proxy.enabled\": true, \"proxy.host\": \"p.example.com\", "
                         "\"proxy.port\": 3129, \"login.discovery_port\": 0}",
                         &out),
                   422);
  assert_true(fixture_has_error(&out, "proxy.port"));
  assert_true(fixture_has_error(&out, "login.discovery_port"));
  assert_int_equal(problem_error_count(&out.problem), 2);
  settings_outcome_clear(&out);
  /* An invalid value of a key a rule looks at gets its own error only. */
  assert_int_equal(fixture_patch("{\"proxy.enabled\": true, \"proxy.port\": 70001}", &out), 422);
  assert_int_equal(problem_error_count(&out.problem), 1);
  settings_outcome_clear(&out);
  /* derive: the bypass list follows the host. */
  assert_int_equal(fixture_patch_status("{\"proxy.host\": \"q.example.com\"}"), 200);
  settings_snapshot_t *snap = settings_acquire();
  assert_string_equal(json_string_value(json_array_get(settings_value(snap, "proxy.bypass"), 0)),
                      "q.example.com");
  settings_release(snap);
  /* warn: accepted, and said. */
  json_t *body = json_pack("{s:i}", "proxy.port", 8080);
  settings_change(body, SETTINGS_OP_VALIDATE, NULL, -1, &out);
  json_decref(body);
  assert_int_equal(outcome_status(&out), 200);
  assert_int_equal(json_array_size(out.warnings), 1);
  settings_outcome_clear(&out);
  /* The rules hold at start too: an environment that breaks one is refused. */
  fixture_close(f);
  char *odd[] = {"ATRIUM_PROXY_ENABLED=true", "ATRIUM_PROXY_HOST=p.example.com",
                 "ATRIUM_PROXY_PORT=3129", NULL};
  assert_int_not_equal(fixture_open(f, odd, err, sizeof err), 0);
  assert_non_null(strstr(err, "proxy.port"));
  fixture_close(f);
  f->owners = NULL;
  assert_int_equal(fixture_open(f, no_env, err, sizeof err), 0);
}

static void test_export_import(void **state) {
  assert_int_equal(fixture_patch_status("{\"proxy.port\": 3130, \"proxy.password\": \"pw-1234\", "
                                "\"docs.url\": \"https://docs.example.com/\"}"), 200);
  settings_snapshot_t *snap = settings_acquire();
  json_t *exp = settings_export(snap);
  settings_release(snap);
  assert_int_equal(fixture_patch_status("{\"proxy.port\": 1, \"docs.url\": \"\"}"), 200);
  settings_outcome_t out;
  settings_change(exp, SETTINGS_OP_IMPORT, "t", -1, &out);
  assert_int_equal(outcome_status(&out), 200);
  assert_int_equal(out.changed, 2);
  settings_outcome_clear(&out);
  snap = settings_acquire();
  assert_int_equal(settings_int(snap, "proxy.port"), 3130);
  assert_string_equal(settings_string(snap, "proxy.password"), "pw-1234"); /* untouched */
  settings_release(snap);
  /* One bad value: nothing imported. */
  json_object_set_new(json_object_get(exp, "settings"), "proxy.port", json_integer(2));
  json_object_set_new(json_object_get(exp, "settings"), "mobile.app_url", json_string("http://x.example.com/"));
  json_t *before = fixture_document();
  settings_change(exp, SETTINGS_OP_IMPORT, "t", -1, &out);
  assert_int_equal(outcome_status(&out), 422);
  assert_true(fixture_has_error(&out, "mobile.app_url"));
  settings_outcome_clear(&out);
  json_t *after = fixture_document();
  assert_true(json_equal(before, after));
  json_decref(before);
  json_decref(after);
  json_object_set_new(exp, "format", json_string("something-else"));
  settings_change(exp, SETTINGS_OP_IMPORT, "t", -1, &out);
  assert_int_equal(outcome_status(&out), 400);
  settings_outcome_clear(&out);
  json_decref(exp);
}

static int txn_ok(store_txn_t *t, void *ctx, problem_t *p) {
  (*(int *)ctx)++;
  return store_meta_put(t, "test.marker", "written");
}

static int txn_fail(store_txn_t *t, void *ctx, problem_t *p) {
  store_meta_put(t, "test.marker", "must-not-stay");
  return problem_set(p, 500, "store", "Test", "the operation's own rows could not be written");
}

static int meta_marker(store_t *s, char **v) {
  store_txn_t *t;
  int r = store_read_begin(s, "test", &t);
  if (r == 0) r = store_meta_get(t, "test.marker", v);
  store_read_end(t);
  return r;
}

static void test_operation_owns_domain(void **state) {
  fixture_t *f = *state;
  json_t *changes = json_pack("{s:s, s:s}", "domain.name", "new.example", "federation.fqdn",
                              "sip.new.example");
  json_t *before = fixture_document();
  settings_outcome_t out;
  settings_change_operation(changes, "op", txn_fail, NULL, &out);
  assert_int_equal(outcome_status(&out), 500);
  assert_non_null(strstr(out.problem.detail, "own rows"));
  settings_outcome_clear(&out);
  json_t *after = fixture_document();
  assert_true(json_equal(before, after));
  char *marker = NULL;
  assert_int_equal(meta_marker(f->store, &marker), -ENOENT);

  int calls = 0;
  settings_change_operation(changes, "op", txn_ok, &calls, &out);
  assert_int_equal(outcome_status(&out), 200);
  assert_int_equal(calls, 1);
  settings_outcome_clear(&out);
  settings_snapshot_t *snap = settings_acquire();
  assert_string_equal(settings_string(snap, "domain.name"), "new.example");
  assert_string_equal(settings_string(snap, "federation.fqdn"), "sip.new.example");
  settings_release(snap);
  assert_int_equal(meta_marker(f->store, &marker), 0);
  assert_string_equal(marker, "written");
  free(marker);
  /* A plain PATCH still may not touch the domain. */
  assert_int_equal(fixture_patch_status("{\"domain.name\": \"x.example\"}"), 409);
  json_decref(changes);
  json_decref(before);
  json_decref(after);
}

static void test_schema(void **state) {
  json_t *schema = settings_schema();
  assert_int_equal(json_array_size(json_object_get(schema, "settings")), catalogue_count);
  assert_int_equal(json_array_size(json_object_get(schema, "sections")), catalogue_section_count);
  json_decref(schema);
}

int main(void) {
#define T(name) cmocka_unit_test_setup_teardown(name, fixture_setup, fixture_teardown)
  const struct CMUnitTest tests[] = {
      T(test_sanity_walk),       T(test_document_shape),   T(test_version_and_persistence),
      T(test_secret_is_sealed_and_hidden), T(test_bad_values_change_nothing),
      T(test_if_match),         T(test_environment),
      T(test_apply_hooks_and_rollback), T(test_owner_rules),
      T(test_export_import),     T(test_operation_owns_domain), T(test_schema),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
