/* The settings pipeline against a real store in a temporary directory:
 * the catalogue sanity walk, precedence, persistence, secrets, cross-field
 * rules, conflicts, apply hooks and their rollback, QoS following the
 * meeting URL, import. */
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

/* Applies a PATCH given as JSON text; returns the status. */
static int patch(const char *json, settings_outcome_t *out) {
  json_error_t jerr;
  json_t *body = json_loads(json, JSON_DECODE_ANY, &jerr);
  if (!body) fail_msg("bad test JSON %s: %s", json, jerr.text);
  settings_change(body, SETTINGS_OP_PATCH, "tester", -1, out);
  json_decref(body);
  return out->status;
}

static int patch_status(const char *json) {
  settings_outcome_t out;
  int s = patch(json, &out);
  settings_outcome_clear(&out);
  return s;
}

static json_t *document(void) {
  settings_snapshot_t *snap = settings_acquire();
  json_t *doc = json_loads(settings_document(snap, NULL), 0, NULL);
  settings_release(snap);
  return doc;
}

static bool has_error(const settings_outcome_t *out, const char *key) {
  size_t i;
  json_t *e;
  json_array_foreach(out->errors, i, e) {
    if (strcmp(json_string_value(json_object_get(e, "key")), key) == 0) return true;
  }
  return false;
}

/* Redis' CONFIG sanity: for every key, write the value in force and read it
 * back, then reset it. A new row is covered the moment it is added. */
static void test_sanity_walk(void **state) {
  for (size_t i = 0; i < catalogue_count; i++) {
    const setting_def_t *def = &catalogue[i];
    if (def->flags & SETTING_F_OPERATION_ONLY) continue;
    settings_snapshot_t *snap = settings_acquire();
    json_t *v = json_deep_copy(settings_value(snap, def->key));
    json_t *doc = json_loads(settings_document(snap, NULL), 0, NULL);
    json_t *raw = json_deep_copy(
        json_object_get(json_object_get(json_object_get(doc, "settings"), def->key), "value"));
    json_decref(doc);
    settings_release(snap);
    json_t *body = json_object();
    /* Secrets: set one; everything else: the configured value itself. */
    json_object_set_new(body, def->key,
                        def->type == SETTING_SECRET ? json_string("s3cret-value") : json_incref(raw));
    settings_outcome_t out;
    settings_change(body, SETTINGS_OP_PATCH, "sanity", -1, &out);
    if (out.status != 200) {
      char *e = json_dumps(out.errors, 0);
      fail_msg("%s: writing its own value gave %d %s", def->key, out.status, e);
    }
    settings_outcome_clear(&out);
    snap = settings_acquire();
    if (def->type == SETTING_SECRET)
      assert_string_equal(json_string_value(settings_value(snap, def->key)), "s3cret-value");
    else if (!json_equal(v, settings_value(snap, def->key)))
      fail_msg("%s: read back differs", def->key);
    assert_int_equal(settings_source(snap, def->key), SETTING_SOURCE_STORE);
    settings_release(snap);
    json_object_set_new(body, def->key, json_null());
    settings_change(body, SETTINGS_OP_PATCH, "sanity", -1, &out);
    assert_int_equal(out.status, 200);
    settings_outcome_clear(&out);
    snap = settings_acquire();
    assert_int_equal(settings_source(snap, def->key), SETTING_SOURCE_DEFAULT);
    settings_release(snap);
    json_decref(body);
    json_decref(v);
    json_decref(raw);
  }
}

static void test_document_shape(void **state) {
  json_t *doc = document();
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
  json_t *qos = json_object_get(json_object_get(settings, "qos.policies"), "value");
  assert_int_equal(json_array_size(qos), 2);
  json_decref(doc);
}

static void test_version_and_persistence(void **state) {
  fixture_t *f = *state;
  settings_snapshot_t *snap = settings_acquire();
  uint64_t v0 = settings_version(snap);
  settings_release(snap);
  assert_int_equal(patch_status("{\"proxy.port\": 3128, \"proxy.host\": \"Squid.Example.com\"}"), 200);
  assert_int_equal(patch_status("{\"proxy.port\": 3128}"), 200); /* no change: same version */
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
  assert_int_equal(patch_status("{\"proxy.password\": \"Tr0ub4dor&3\"}"), 200);
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
  assert_int_equal(store_settings_load(f->store, &stored, &version), 0);
  const char *sealed = json_string_value(json_object_get(stored, "proxy.password"));
  assert_non_null(sealed);
  assert_int_equal(strncmp(sealed, SECRET_SEALED_PREFIX, strlen(SECRET_SEALED_PREFIX)), 0);
  assert_null(strstr(sealed, "Tr0ub4dor"));
  json_decref(stored);
  json_t *audit = NULL;
  assert_int_equal(store_audit_list(f->store, 0, 10, &audit), 0);
  text = json_dumps(audit, 0);
  assert_null(strstr(text, "Tr0ub4dor"));
  assert_non_null(strstr(text, "(secret)"));
  free(text);
  json_decref(audit);
  /* "" clears it. */
  assert_int_equal(patch_status("{\"proxy.password\": \"\"}"), 200);
  snap = settings_acquire();
  assert_null(settings_value(snap, "proxy.password"));
  settings_release(snap);
}

static void test_bad_values_change_nothing(void **state) {
  json_t *before = document();
  static const struct {
    const char *body;
    int status;
    const char *keys[4];
  } cases[] = {
      {"{\"federation.enabled\": \"true\"}", 422, {"federation.enabled"}},
      {"{\"proxy.port\": 70000, \"login.discovery_port\": 0}", 422, {"proxy.port", "login.discovery_port"}},
      {"{\"mobile.app_url\": \"http://m.example.com/\"}", 422, {"mobile.app_url"}},
      {"{\"mobile.app_url\": \"https://m.example.com/a b\"}", 422, {"mobile.app_url"}},
      {"{\"federation.fqdn\": \"a.b.example.com\"}", 422, {"federation.fqdn"}},
      {"{\"federation.fqdn\": \"other.com\"}", 422, {"federation.fqdn"}},
      {"{\"no.such\": 1, \"proxy.port\": 1}", 422, {"no.such"}},
      {"{\"proxy.enabled\": true}", 422, {"proxy.host"}},
      {"{\"proxy.auth_required\": true}", 422, {"proxy.username"}},
      {"{\"qos.policies\": [{\"name\": \"x\", \"dscp\": 64, \"max_rate_mbps\": 5, \"url\": "
       "\"http://h/x\", \"include_subdirectories\": true, \"any_destination\": true}]}",
       422, {"qos.policies"}},
      {"{\"domain.name\": \"other.com\"}", 409, {"domain.name"}},
      {"{\"domain.name\": \"other.com\", \"proxy.port\": 0}", 409, {"domain.name", "proxy.port"}},
      {"[1, 2]", 400, {NULL}},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    settings_outcome_t out;
    int s = patch(cases[i].body, &out);
    if (s != cases[i].status) fail_msg("case %zu: status %d, want %d", i, s, cases[i].status);
    for (size_t k = 0; k < 4 && cases[i].keys[k]; k++)
      if (!has_error(&out, cases[i].keys[k])) fail_msg("case %zu: no error for %s", i, cases[i].keys[k]);
    assert_true(strlen(out.detail) > 10);
    settings_outcome_clear(&out);
    json_t *after = document();
    if (!json_equal(before, after)) fail_msg("case %zu changed the settings", i);
    json_decref(after);
  }
  json_decref(before);
}

static void test_good_cross_fields(void **state) {
  assert_int_equal(patch_status("{\"federation.fqdn\": \"sip.example.com\"}"), 200);
  assert_int_equal(patch_status("{\"federation.fqdn\": \"example.com\"}"), 200);
  assert_int_equal(patch_status("{\"proxy.enabled\": true, \"proxy.host\": \"10.0.0.1\"}"), 200);
  /* Clearing the host while the proxy stays on is refused. */
  assert_int_equal(patch_status("{\"proxy.host\": \"\"}"), 422);
  assert_int_equal(patch_status("{\"proxy.auth_required\": true, \"proxy.username\": \"svc\"}"), 200);
}

static void test_if_match(void **state) {
  settings_snapshot_t *snap = settings_acquire();
  int64_t v = (int64_t)settings_version(snap);
  settings_release(snap);
  json_t *body = json_pack("{s:i}", "proxy.port", 3129);
  settings_outcome_t out;
  settings_change(body, SETTINGS_OP_PATCH, "t", v + 5, &out);
  assert_int_equal(out.status, 412);
  settings_outcome_clear(&out);
  settings_change(body, SETTINGS_OP_PATCH, "t", v, &out);
  assert_int_equal(out.status, 200);
  assert_int_equal(out.version, (uint64_t)v + 1);
  /* The outcome holds the snapshot this change made, even after another change. */
  settings_snapshot_t *mine = out.snapshot;
  assert_non_null(mine);
  assert_int_equal(settings_version(mine), (uint64_t)v + 1);
  assert_int_equal(patch_status("{\"proxy.port\": 3130}"), 200);
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
  assert_int_equal(patch("{\"proxy.port\": 8080}", &out), 409);
  assert_non_null(strstr(json_string_value(json_object_get(json_array_get(out.errors, 0), "message")),
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
  char *cross[] = {"ATRIUM_PROXY_ENABLED=true", NULL};
  assert_int_not_equal(fixture_open(f, cross, err, sizeof err), 0);
  assert_non_null(strstr(err, "proxy.host"));
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

static void test_apply_hooks_and_rollback(void **state) {
  static hook_log_t ok_log, bad_log;
  memset(&ok_log, 0, sizeof ok_log);
  memset(&bad_log, 0, sizeof bad_log);
  assert_int_equal(settings_register_apply("proxy", proxy_hook, &ok_log), 0);
  assert_int_equal(patch_status("{\"proxy.port\": 4000}"), 200);
  assert_int_equal(ok_log.calls, 1);
  assert_int_equal(ok_log.last_old, 8080);
  assert_int_equal(ok_log.last_new, 4000);
  /* A section that did not change does not run its hook. */
  assert_int_equal(patch_status("{\"meeting.enabled\": true}"), 200);
  assert_int_equal(ok_log.calls, 1);

  bad_log.fail = 1;
  assert_int_equal(settings_register_apply("proxy", proxy_hook, &bad_log), 0);
  json_t *before = document();
  settings_outcome_t out;
  assert_int_equal(patch("{\"proxy.port\": 5000}", &out), 422);
  assert_string_equal(out.type, "apply-failed");
  assert_true(has_error(&out, "proxy.port"));
  settings_outcome_clear(&out);
  /* The first hook applied 5000 and was then called back with (new, old). */
  assert_int_equal(ok_log.calls, 3);
  assert_int_equal(ok_log.last_old, 5000);
  assert_int_equal(ok_log.last_new, 4000);
  json_t *after = document();
  assert_true(json_equal(before, after));
  json_decref(before);
  json_decref(after);
}

static void test_qos_follows_meeting_url(void **state) {
  assert_int_equal(patch_status("{\"meeting.url\": \"https://meet.example.com:7443/wm/\"}"), 200);
  settings_snapshot_t *snap = settings_acquire();
  const json_t *qos = settings_value(snap, "qos.policies");
  assert_string_equal(json_string_value(json_object_get(json_array_get(qos, 0), "url")),
                      "http://meet.example.com/wm");
  assert_string_equal(json_string_value(json_object_get(json_array_get(qos, 1), "url")),
                      "https://meet.example.com/wm");
  json_t *custom = json_deep_copy(qos);
  settings_release(snap);
  /* Stored policies: the default URL follows, a custom one stays. */
  json_object_set_new(json_array_get(custom, 0), "dscp", json_integer(46));
  json_object_set_new(json_array_get(custom, 1), "url", json_string("https://other.example.com/x*"));
  json_t *body = json_pack("{s:o}", "qos.policies", custom);
  settings_outcome_t out;
  settings_change(body, SETTINGS_OP_PATCH, "t", -1, &out);
  assert_int_equal(out.status, 200);
  settings_outcome_clear(&out);
  json_decref(body);
  assert_int_equal(patch_status("{\"meeting.url\": \"https://web.example.com/meet\"}"), 200);
  snap = settings_acquire();
  qos = settings_value(snap, "qos.policies");
  assert_string_equal(json_string_value(json_object_get(json_array_get(qos, 0), "url")),
                      "http://web.example.com/meet");
  assert_int_equal(json_integer_value(json_object_get(json_array_get(qos, 0), "dscp")), 46);
  assert_string_equal(json_string_value(json_object_get(json_array_get(qos, 1), "url")),
                      "https://other.example.com/x*");
  settings_release(snap);
}

static void test_warnings(void **state) {
  settings_outcome_t out;
  json_t *body = json_pack("{s:s, s:b}", "meeting.url", "http://meet.example.com/", "mobile.push_use_proxy", 1);
  settings_change(body, SETTINGS_OP_VALIDATE, NULL, -1, &out);
  assert_int_equal(out.status, 200);
  assert_int_equal(json_array_size(out.warnings), 2);
  settings_outcome_clear(&out);
  /* Validate wrote nothing. */
  settings_snapshot_t *snap = settings_acquire();
  assert_false(settings_bool(snap, "mobile.push_use_proxy"));
  settings_release(snap);
  json_decref(body);
}

static void test_export_import(void **state) {
  assert_int_equal(patch_status("{\"proxy.port\": 3130, \"proxy.password\": \"pw-1234\", "
                                "\"docs.url\": \"https://docs.example.com/\"}"), 200);
  settings_snapshot_t *snap = settings_acquire();
  json_t *exp = settings_export(snap);
  settings_release(snap);
  assert_int_equal(patch_status("{\"proxy.port\": 1, \"docs.url\": \"\"}"), 200);
  settings_outcome_t out;
  settings_change(exp, SETTINGS_OP_IMPORT, "t", -1, &out);
  assert_int_equal(out.status, 200);
  assert_int_equal(out.changed, 2);
  settings_outcome_clear(&out);
  snap = settings_acquire();
  assert_int_equal(settings_int(snap, "proxy.port"), 3130);
  assert_string_equal(settings_string(snap, "proxy.password"), "pw-1234"); /* untouched */
  settings_release(snap);
  /* One bad value: nothing imported. */
  json_object_set_new(json_object_get(exp, "settings"), "proxy.port", json_integer(2));
  json_object_set_new(json_object_get(exp, "settings"), "mobile.app_url", json_string("http://x.example.com/"));
  json_t *before = document();
  settings_change(exp, SETTINGS_OP_IMPORT, "t", -1, &out);
  assert_int_equal(out.status, 422);
  assert_true(has_error(&out, "mobile.app_url"));
  settings_outcome_clear(&out);
  json_t *after = document();
  assert_true(json_equal(before, after));
  json_decref(before);
  json_decref(after);
  json_object_set_new(exp, "format", json_string("something-else"));
  settings_change(exp, SETTINGS_OP_IMPORT, "t", -1, &out);
  assert_int_equal(out.status, 400);
  settings_outcome_clear(&out);
  json_decref(exp);
}

static int txn_ok(store_t *store, void *ctx, char *err, size_t errlen) {
  (*(int *)ctx)++;
  return store_meta_put(store, "test.marker", "written");
}

static int txn_fail(store_t *store, void *ctx, char *err, size_t errlen) {
  store_meta_put(store, "test.marker", "must-not-stay");
  snprintf(err, errlen, "the operation's own rows could not be written");
  return -EIO;
}

static void test_operation_owns_domain(void **state) {
  fixture_t *f = *state;
  json_t *changes = json_pack("{s:s, s:s}", "domain.name", "new.example", "federation.fqdn",
                              "sip.new.example");
  json_t *before = document();
  settings_outcome_t out;
  settings_change_operation(changes, "op", txn_fail, NULL, &out);
  assert_int_equal(out.status, 500);
  assert_non_null(strstr(out.detail, "own rows"));
  settings_outcome_clear(&out);
  json_t *after = document();
  assert_true(json_equal(before, after));
  char *marker = NULL;
  assert_int_equal(store_meta_get(f->store, "test.marker", &marker), -ENOENT);

  int calls = 0;
  settings_change_operation(changes, "op", txn_ok, &calls, &out);
  assert_int_equal(out.status, 200);
  assert_int_equal(calls, 1);
  settings_outcome_clear(&out);
  settings_snapshot_t *snap = settings_acquire();
  assert_string_equal(settings_string(snap, "domain.name"), "new.example");
  assert_string_equal(settings_string(snap, "federation.fqdn"), "sip.new.example");
  settings_release(snap);
  assert_int_equal(store_meta_get(f->store, "test.marker", &marker), 0);
  assert_string_equal(marker, "written");
  free(marker);
  /* A plain PATCH still may not touch the domain. */
  assert_int_equal(patch_status("{\"domain.name\": \"x.example\"}"), 409);
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
      T(test_good_cross_fields), T(test_if_match),         T(test_environment),
      T(test_apply_hooks_and_rollback), T(test_qos_follows_meeting_url), T(test_warnings),
      T(test_export_import),     T(test_operation_owns_domain), T(test_schema),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
