/* The catalogue table itself: every row well-formed, every default valid,
 * type checks and environment parsing per type. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/catalogue.h"

static void test_rows_are_well_formed(void **state) {
  for (size_t i = 0; i < catalogue_count; i++) {
    const setting_def_t *def = &catalogue[i];
    /* The key's prefix is its section, and the section is on the page. */
    size_t sl = strlen(def->section);
    assert_int_equal(strncmp(def->key, def->section, sl), 0);
    assert_int_equal(def->key[sl], '.');
    bool found = false;
    for (size_t s = 0; s < catalogue_section_count; s++)
      found |= strcmp(catalogue_sections[s].id, def->section) == 0;
    assert_true(found);
    assert_non_null(def->label);
    assert_true(strlen(def->help) > 10);
    assert_int_equal(catalogue_find(def->key), (int)i);
    if (def->type == SETTING_URL) assert_non_null(def->url_rule);
    if (def->type == SETTING_ENUM) assert_non_null(def->choices);
    if (def->type == SETTING_LIST) assert_non_null(def->check);
    if (def->flags & SETTING_F_BLANK_DEFAULT) assert_string_equal(def->default_json, "\"\"");
    for (size_t j = 0; j < i; j++) assert_string_not_equal(catalogue[j].key, def->key);
  }
  assert_int_equal(catalogue_find("no.such.key"), -1);
}

/* Every literal default passes its own row's check unchanged: a default the
 * API would refuse is a bug in the table. */
static void test_defaults_pass_their_check(void **state) {
  for (size_t i = 0; i < catalogue_count; i++) {
    const setting_def_t *def = &catalogue[i];
    if (!def->default_json) continue;
    json_t *v = json_loads(def->default_json, JSON_DECODE_ANY, NULL);
    assert_non_null(v);
    json_t *out = NULL;
    validate_error_t err;
    int r = catalogue_check(def, v, &out, &err);
    if (r != 0) fail_msg("%s: default %s refused: %s", def->key, def->default_json, err.message);
    assert_true(json_equal(v, out));
    json_decref(v);
    json_decref(out);
  }
}

static const struct type_case {
  const char *key;
  const char *json;
  bool ok;
  const char *expect; /* normalised JSON, or a substring of the message */
} type_cases[] = {
    {"federation.enabled", "true", true, "true"},
    {"federation.enabled", "\"true\"", false, "true or false"},
    {"federation.enabled", "1", false, "true or false"},
    {"proxy.port", "3128", true, "3128"},
    {"proxy.port", "0", false, "out of range"},
    {"proxy.port", "65536", false, "out of range"},
    {"proxy.port", "\"3128\"", false, "whole number"},
    {"proxy.port", "3128.5", false, "whole number"},
    {"proxy.auth_method", "\"ntlm\"", true, "\"ntlm\""},
    {"proxy.auth_method", "\"kerberos\"", false, "not one of the choices"},
    {"proxy.host", "\"\"", true, "\"\""},
    {"proxy.host", "\"Proxy.Example.COM\"", true, "\"proxy.example.com\""},
    {"proxy.host", "\"192.0.2.7\"", true, "\"192.0.2.7\""},
    {"proxy.host", "\"[2001:db8::1]\"", true, "\"2001:db8::1\""},
    {"proxy.username", "\"line\\nbreak\"", false, "control character"},
    {"proxy.bypass", "\"10.0.0.0/8\"", false, "list"},
    {"proxy.bypass", "[\"10.0.0.0/8\", \"*.Example.com\"]", true, "[\"10.0.0.0/8\", \"*.example.com\"]"},
    {"mobile.app_url", "\"https://m.example.com:443/app\"", true, "\"https://m.example.com/app\""},
    {"mobile.app_url", "\"https://m.example.com:7443/app\"", true, "\"https://m.example.com:7443/app\""},
    {"mobile.app_url", "\"http://m.example.com/\"", false, "https"},
    {"mobile.app_url", "\"https://192.0.2.1/\"", false, "IP"},
    {"mobile.app_url", "\"\"", true, "\"\""},
    /* Published paths become nginx locations. */
    {"um.url", "\"http://um.example.com/a;deny;/\"", false, "The path of um.url holds \";\""},
    {"um.url", "\"http://um.example.com/a%20b/\"", false, "location"},
    {"um.url", "\"http://um.example.com/a(b)/\"", false, "location"},
    {"meeting.url", "\"https://meet.example.com/a//b/\"", false, "segment"},
    {"meeting.url", "\"https://meet.example.com/a/../b/\"", false, "segment"},
    {"mobile.webapi_url", "\"https://m.example.com/x$y/\"", false, "mobile.webapi_url"},
    {"server.public_url", "\"https://atrium.example.com/a'b\"", false, "location"},
    {"um.url", "\"http://um.example.com/a-b_c.d~e/~user/\"", true,
     "\"http://um.example.com/a-b_c.d~e/~user/\""},
    {"um.url", "\"http://um.example.com/x?a=1;b\"", true, "\"http://um.example.com/x?a=1;b\""},
    /* Not published: an outside documentation site keeps any path. */
    {"docs.url", "\"https://docs.example.com/a;b(c)\"", true, "\"https://docs.example.com/a;b(c)\""},
    {"domain.name", "\"\"", false, "empty"},
    {"domain.name", "\"intranet\"", false, "label"},
    {"domain.name", "\"Bücher.Example\"", true, "\"xn--bcher-kva.example\""},
    {"ad.container_dn", "\"CN=Atrium,DC=example,DC=com\"", true, "\"CN=Atrium,DC=example,DC=com\""},
    {"ad.container_dn", "\"Atrium\"", false, "attribute=value"},
    {"login.kerberos_keytab", "\"etc/http.keytab\"", false, "absolute path"},
    {"ad.uri", "\"ldaps://dc1.example.com\"", true, "\"ldaps://dc1.example.com\""},
    {"ad.uri", "\"https://dc1.example.com\"", false, "ldap"},
    {"qos.policies", "{}", false, "list"},
    {"proxy.password", "42", false, "text"},
    {"mobile.push_gateway_url", "\"http://push.example.com/_matrix/push/v1/notify\"", false,
     "encrypted"},
    {"mobile.push_gateway_url", "\"https://push.example.com/_matrix/push/v1/notify\"", true,
     "\"https://push.example.com/_matrix/push/v1/notify\""},
    {"mobile.push_mode", "\"relay\"", false, "not one of the choices"},
    {"mobile.push_content", "\"full\"", true, "\"full\""},
    {"mobile.push_content", "\"everything\"", false, "not one of the choices"},
    {"mobile.apns_key_id", "\"ABC123DEFG\"", true, "\"ABC123DEFG\""},
    {"mobile.apns_key_id", "\"abc123defg\"", false, "10 characters"},
    {"mobile.apns_team_id", "\"TEAM\"", false, "10 characters"},
    {"mobile.apns_topic", "\"com.example.atrium\"", true, "\"com.example.atrium\""},
    {"mobile.apns_topic", "\"atrium\"", false, "bundle id"},
    {"mobile.apns_topic", "\"com..atrium\"", false, "bundle id"},
    {"mobile.apns_key", "\"-----BEGIN PRIVATE KEY-----\\nMIGT\\n-----END PRIVATE KEY-----\\n\"",
     true, "\"-----BEGIN PRIVATE KEY-----\\nMIGT\\n-----END PRIVATE KEY-----\\n\""},
    {"mobile.apns_key", "\"key\\u0001\"", false, "control character"},
    {"mobile.apns_environment", "\"development\"", false, "not one of the choices"},
};

static void test_type_checks(void **state) {
  for (size_t i = 0; i < sizeof type_cases / sizeof type_cases[0]; i++) {
    const struct type_case *c = &type_cases[i];
    const setting_def_t *def = &catalogue[catalogue_find(c->key)];
    json_error_t jerr;
    json_t *in = json_loads(c->json, JSON_DECODE_ANY, &jerr);
    assert_non_null(in);
    json_t *out = NULL;
    validate_error_t err;
    int r = catalogue_check(def, in, &out, &err);
    if (c->ok) {
      if (r != 0) fail_msg("case %zu %s=%s refused: %s", i, c->key, c->json, err.message);
      json_t *expect = json_loads(c->expect, JSON_DECODE_ANY, NULL);
      char *got = json_dumps(out, JSON_ENCODE_ANY);
      if (!json_equal(expect, out)) fail_msg("case %zu %s: got %s, want %s", i, c->key, got, c->expect);
      free(got);
      json_decref(expect);
      json_decref(out);
    } else {
      if (r == 0) fail_msg("case %zu %s=%s accepted", i, c->key, c->json);
      assert_null(out);
      if (!strstr(err.message, c->expect))
        fail_msg("case %zu %s: message \"%s\" lacks \"%s\"", i, c->key, err.message, c->expect);
    }
    json_decref(in);
  }
}

static void test_env_parsing(void **state) {
  static const struct {
    const char *key, *text;
    bool ok;
    const char *expect;
  } cases[] = {
      {"proxy.enabled", "yes", true, "true"},     {"proxy.enabled", "OFF", true, "false"},
      {"proxy.enabled", "maybe", false, NULL},    {"proxy.port", "3128", true, "3128"},
      {"proxy.port", "3128x", false, NULL},       {"proxy.port", "99999", false, NULL},
      {"proxy.bypass", "a.example.com, 10.0.0.0/8", true, "[\"a.example.com\", \"10.0.0.0/8\"]"},
      {"proxy.bypass", "[\"localhost\"]", true, "[\"localhost\"]"},
      {"proxy.bypass", "[broken", false, NULL},   {"proxy.host", "squid.example.com", true, "\"squid.example.com\""},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const setting_def_t *def = &catalogue[catalogue_find(cases[i].key)];
    json_t *out = NULL;
    validate_error_t err;
    int r = catalogue_parse_env(def, cases[i].text, &out, &err);
    assert_int_equal(r == 0, cases[i].ok);
    if (cases[i].ok) {
      json_t *expect = json_loads(cases[i].expect, JSON_DECODE_ANY, NULL);
      assert_true(json_equal(expect, out));
      json_decref(expect);
    }
    json_decref(out);
  }
  char name[64];
  catalogue_env_name(&catalogue[catalogue_find("proxy.auth_required")], name, sizeof name);
  assert_string_equal(name, "ATRIUM_PROXY_AUTH_REQUIRED");
}

static void test_markdown_lists_every_key(void **state) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  catalogue_write_markdown(f);
  fclose(f);
  for (size_t i = 0; i < catalogue_count; i++) {
    char needle[128];
    snprintf(needle, sizeof needle, "| `%s` |", catalogue[i].key);
    if (!strstr(buf, needle)) fail_msg("%s missing from the reference", catalogue[i].key);
  }
  free(buf);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rows_are_well_formed),
      cmocka_unit_test(test_defaults_pass_their_check),
      cmocka_unit_test(test_type_checks),
      cmocka_unit_test(test_env_parsing),
      cmocka_unit_test(test_markdown_lists_every_key),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
