/* The rules the modules bring to the settings plane, with the plane itself
 * and a real store: federation.fqdn and the domain (directory), a complete
 * proxy configuration (outbound), the default QoS policies and their
 * following the meeting URL (qos), and the warnings (meeting, outbound). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/settings.h"
#include "fixture.h"
#include "mod/directory/directory.h"
#include "mod/meeting/meeting.h"
#include "mod/outbound/outbound.h"
#include "mod/qos/qos.h"

static char *no_env[] = {NULL};


/* The sanity walk with the modules' rules and computed defaults in force. */
static void test_sanity_walk(void **state) { fixture_sanity_walk(false); }

static void test_default_qos_policies(void **state) {
  json_t *doc = fixture_document();
  json_t *qos = json_object_get(json_object_get(json_object_get(doc, "settings"), "qos.policies"),
                                "value");
  assert_int_equal(json_array_size(qos), 2);
  assert_int_equal(json_integer_value(json_object_get(json_array_get(qos, 0), "dscp")), 34);
  json_decref(doc);
}

static void test_bad_cross_fields_change_nothing(void **state) {
  json_t *before = fixture_document();
  static const struct {
    const char *body;
    const char *keys[4];
  } cases[] = {
      {"{\"federation.fqdn\": \"a.b.example.com\"}", {"federation.fqdn"}},
      {"{\"federation.fqdn\": \"other.com\"}", {"federation.fqdn"}},
      {"{\"proxy.enabled\": true}", {"proxy.host"}},
      {"{\"proxy.auth_required\": true}", {"proxy.username"}},
      /* Every failing key, the invalid value and the broken rule alike. */
      {"{\"proxy.port\": 70000, \"federation.fqdn\": \"a.b.example.com\"}",
       {"proxy.port", "federation.fqdn"}},
      {"{\"proxy.port\": 0, \"proxy.enabled\": true, \"federation.fqdn\": \"other.com\"}",
       {"proxy.port", "proxy.host", "federation.fqdn"}},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    settings_outcome_t out;
    int s = fixture_patch(cases[i].body, &out);
    if (s != 422) fail_msg("case %zu: status %d, want 422", i, s);
    size_t want = 0;
    for (size_t k = 0; k < 4 && cases[i].keys[k]; k++, want++)
      if (!fixture_has_error(&out, cases[i].keys[k])) fail_msg("case %zu: no error for %s", i, cases[i].keys[k]);
    assert_int_equal(problem_error_count(&out.problem), want);
    assert_true(strlen(out.problem.detail) > 10);
    settings_outcome_clear(&out);
    json_t *after = fixture_document();
    if (!json_equal(before, after)) fail_msg("case %zu changed the settings", i);
    json_decref(after);
  }
  json_decref(before);
}

static void test_environment_must_fit_the_rules(void **state) {
  fixture_t *f = *state;
  char err[512];
  fixture_close(f);
  char *cross[] = {"ATRIUM_PROXY_ENABLED=true", NULL};
  assert_int_not_equal(fixture_open(f, cross, err, sizeof err), 0);
  assert_non_null(strstr(err, "proxy.host"));
  fixture_close(f);
  assert_int_equal(fixture_open(f, no_env, err, sizeof err), 0);
}

static void test_qos_follows_meeting_url(void **state) {
  assert_int_equal(fixture_patch_status("{\"meeting.url\": \"https://meet.example.com:7443/wm/\"}"), 200);
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
  assert_int_equal(outcome_status(&out), 200);
  settings_outcome_clear(&out);
  json_decref(body);
  assert_int_equal(fixture_patch_status("{\"meeting.url\": \"https://web.example.com/meet\"}"), 200);
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
  assert_int_equal(outcome_status(&out), 200);
  assert_int_equal(json_array_size(out.warnings), 2);
  settings_outcome_clear(&out);
  /* Validate wrote nothing. */
  settings_snapshot_t *snap = settings_acquire();
  assert_false(settings_bool(snap, "mobile.push_use_proxy"));
  settings_release(snap);
  json_decref(body);
}

static void test_good_cross_fields(void **state) {
  assert_int_equal(fixture_patch_status("{\"federation.fqdn\": \"sip.example.com\"}"), 200);
  assert_int_equal(fixture_patch_status("{\"federation.fqdn\": \"example.com\"}"), 200);
  assert_int_equal(fixture_patch_status("{\"proxy.enabled\": true, \"proxy.host\": \"10.0.0.1\"}"), 200);
  /* Clearing the host while the proxy stays on is refused. */
  assert_int_equal(fixture_patch_status("{\"proxy.host\": \"\"}"), 422);
  assert_int_equal(fixture_patch_status("{\"proxy.auth_required\": true, \"proxy.username\": \"svc\"}"), 200);
}

int main(void) {
  static const settings_owner_t *owners[5];
  owners[0] = directory_module.settings;
  owners[1] = outbound_module.settings;
  owners[2] = qos_module.settings;
  owners[3] = meeting_module.settings;
  fixture_owners = owners;
#define T(name) cmocka_unit_test_setup_teardown(name, fixture_setup, fixture_teardown)
  const struct CMUnitTest tests[] = {
      T(test_sanity_walk),
      T(test_default_qos_policies),
      T(test_bad_cross_fields_change_nothing),
      T(test_good_cross_fields),
      T(test_environment_must_fit_the_rules),
      T(test_qos_follows_meeting_url),
      T(test_warnings),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
