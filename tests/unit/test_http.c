/* The HTTP layer's pure parts: the router built from modules' rows, header
 * and query parsing, problem documents, the metrics exposition. The server itself is exercised
 * by the integration tests, which talk to a real atriumd. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/log.h"
#include "core/metrics.h"
#include "http/http.h"
#include "http/router.h"

/* Handlers are only compared by address here. */
static enum MHD_Result h_settings_get(http_request_t *req) { return MHD_NO; }
static enum MHD_Result h_settings_patch(http_request_t *req) { return MHD_NO; }
static enum MHD_Result h_schema(http_request_t *req) { return MHD_NO; }
static enum MHD_Result h_other(http_request_t *req) { return MHD_NO; }
static enum MHD_Result h_user(http_request_t *req) { return MHD_NO; }
static enum MHD_Result h_import(http_request_t *req) { return MHD_NO; }

/* Rows as two modules would bring them (the shapes of the real ones). */
static const http_route_t admin_rows[] = {
    {.method = HTTP_POST, .path = "/api/v1/session", .handler = h_other, .auth = HTTP_AUTH_NONE},
    {.method = HTTP_GET, .path = "/api/v1/session", .handler = h_other, .auth = HTTP_AUTH_ADMIN},
    {.method = HTTP_DELETE, .path = "/api/v1/session", .handler = h_other,
     .auth = HTTP_AUTH_ADMIN},
    {.method = HTTP_GET, .path = "/api/v1/settings", .handler = h_settings_get,
     .auth = HTTP_AUTH_ADMIN},
    {.method = HTTP_PATCH, .path = "/api/v1/settings", .handler = h_settings_patch,
     .auth = HTTP_AUTH_ADMIN, .body = HTTP_BODY_JSON},
    {.method = HTTP_GET, .path = "/api/v1/settings/schema", .handler = h_schema,
     .auth = HTTP_AUTH_ADMIN},
    {.method = HTTP_POST, .path = "/api/v1/settings/validate", .handler = h_other,
     .auth = HTTP_AUTH_ADMIN},
    {.method = HTTP_POST, .path = "/api/v1/settings/import", .handler = h_other,
     .auth = HTTP_AUTH_ADMIN},
    {.method = HTTP_GET, .path = "/api/v1/audit", .handler = h_other, .auth = HTTP_AUTH_ADMIN},
    {.method = HTTP_GET, .path = "/healthz", .handler = h_other, .auth = HTTP_AUTH_NONE},
    {.method = HTTP_GET, .path = "/metrics", .handler = h_other, .auth = HTTP_AUTH_ADMIN},
};
/* The parameter row comes first on purpose: the literal must still win. */
static const http_route_t user_rows[] = {
    {.method = HTTP_GET, .path = "/api/v1/users", .handler = h_other},
    {.method = HTTP_POST, .path = "/api/v1/users/{name}", .handler = h_user},
    {.method = HTTP_GET, .path = "/api/v1/users/{name}", .handler = h_user},
    {.method = HTTP_DELETE, .path = "/api/v1/users/{name}", .handler = h_user},
    {.method = HTTP_POST, .path = "/api/v1/users/import", .handler = h_import},
};

static http_router_t *router;

static int build(void **state) {
  const http_route_set_t sets[] = {
      {.owner = "admin", .routes = admin_rows, .count = sizeof admin_rows / sizeof admin_rows[0]},
      {.owner = "directory", .routes = user_rows,
       .count = sizeof user_rows / sizeof user_rows[0]},
  };
  char err[256];
  return http_router_build(sets, 2, &router, err, sizeof err);
}

static int unbuild(void **state) {
  http_router_free(router);
  router = NULL;
  return 0;
}

static const http_route_t *match(const char *method, const char *path, unsigned *allowed,
                                 size_t *slot) {
  return http_router_match(router, http_method_parse(method), path, allowed, slot);
}

static void test_route_known(void **state) {
  unsigned allowed;
  size_t slot;
  const http_route_t *r = match("GET", "/api/v1/settings", &allowed, &slot);
  assert_non_null(r);
  assert_ptr_equal(r->handler, h_settings_get);
  assert_int_equal(r->auth, HTTP_AUTH_ADMIN);

  r = match("PATCH", "/api/v1/settings", &allowed, NULL);
  assert_non_null(r);
  assert_ptr_equal(r->handler, h_settings_patch);
  assert_int_equal(r->body, HTTP_BODY_JSON);

  /* Same path, same metrics slot, whatever the method. */
  size_t slot2;
  match("PATCH", "/api/v1/settings", NULL, &slot2);
  assert_int_equal(slot, slot2);

  r = match("POST", "/api/v1/session", NULL, NULL);
  assert_non_null(r);
  assert_int_equal(r->auth, HTTP_AUTH_NONE);
  r = match("GET", "/healthz", NULL, NULL);
  assert_non_null(r);
  assert_int_equal(r->auth, HTTP_AUTH_NONE);
  r = match("GET", "/metrics", NULL, NULL);
  assert_non_null(r);
  assert_int_equal(r->auth, HTTP_AUTH_ADMIN);
  r = match("GET", "/api/v1/settings/schema", NULL, NULL);
  assert_non_null(r);
  assert_ptr_equal(r->handler, h_schema);
}

static void test_route_head_is_get(void **state) {
  const http_route_t *r = match("HEAD", "/api/v1/settings", NULL, NULL);
  assert_non_null(r);
  assert_ptr_equal(r->handler, h_settings_get);
  /* No GET route, no HEAD. */
  unsigned allowed;
  assert_null(match("HEAD", "/api/v1/settings/import", &allowed, NULL));
  assert_int_equal(allowed, 1u << HTTP_POST);
}

static void test_route_unknown(void **state) {
  size_t n = http_router_patterns(router);
  unsigned allowed = 99;
  size_t slot = 0;
  assert_null(match("GET", "/api/v1/nothing", &allowed, &slot));
  assert_int_equal(allowed, 0);
  assert_int_equal(slot, n);
  /* Exact paths: no trailing slash, no prefix match, no case folding. */
  assert_null(match("GET", "/api/v1/settings/", &allowed, NULL));
  assert_int_equal(allowed, 0);
  assert_null(match("GET", "/api/v1/settingsx", &allowed, NULL));
  assert_int_equal(allowed, 0);
  assert_null(match("GET", "/API/v1/settings", &allowed, NULL));
  assert_int_equal(allowed, 0);
  assert_null(match("GET", "", &allowed, NULL));
  assert_int_equal(allowed, 0);
  assert_null(match("GET", "/no-such-page", &allowed, NULL));
  assert_int_equal(allowed, 0);
  assert_null(match("GET", "//api/v1/settings", &allowed, NULL));
  assert_int_equal(allowed, 0);
}

static void test_route_wrong_method(void **state) {
  unsigned allowed;
  char allow[96];
  assert_null(match("PUT", "/api/v1/settings", &allowed, NULL));
  assert_int_equal(allowed, (1u << HTTP_GET) | (1u << HTTP_HEAD) | (1u << HTTP_PATCH));
  http_allow_header(allowed, allow, sizeof allow);
  assert_string_equal(allow, "GET, HEAD, PATCH");

  assert_null(match("DELETE", "/api/v1/settings/validate", &allowed, NULL));
  http_allow_header(allowed, allow, sizeof allow);
  assert_string_equal(allow, "POST");

  assert_null(match("PATCH", "/api/v1/session", &allowed, NULL));
  http_allow_header(allowed, allow, sizeof allow);
  assert_string_equal(allow, "GET, HEAD, POST, DELETE");

  /* Lower-case methods are other methods (RFC 9110: case-sensitive). */
  assert_null(match("get", "/healthz", &allowed, NULL));
  http_allow_header(allowed, allow, sizeof allow);
  assert_string_equal(allow, "GET, HEAD");

  /* A buffer too small is cut at a whole method, still terminated. */
  char tiny[8];
  http_allow_header((1u << HTTP_GET) | (1u << HTTP_HEAD) | (1u << HTTP_PATCH), tiny, sizeof tiny);
  assert_string_equal(tiny, "GET");
}

static void test_route_parameters(void **state) {
  unsigned allowed;
  size_t slot, slot_user;
  const http_route_t *r = match("GET", "/api/v1/users/alice", &allowed, &slot_user);
  assert_non_null(r);
  assert_ptr_equal(r->handler, h_user);
  r = match("DELETE", "/api/v1/users/bob", NULL, &slot);
  assert_ptr_equal(r->handler, h_user);
  assert_int_equal(slot, slot_user);
  /* A parameter matches exactly one non-empty segment. */
  assert_null(match("GET", "/api/v1/users/", &allowed, NULL));
  assert_int_equal(allowed, 0);
  assert_null(match("GET", "/api/v1/users/a/b", &allowed, NULL));
  assert_int_equal(allowed, 0);
  /* A literal segment wins over a parameter whatever the order the module
   * listed them in; "import" is still a {name} for the other methods. */
  r = match("POST", "/api/v1/users/import", NULL, &slot);
  assert_ptr_equal(r->handler, h_import);
  assert_int_not_equal(slot, slot_user);
  r = match("GET", "/api/v1/users/import", NULL, &slot);
  assert_ptr_equal(r->handler, h_user);
  assert_int_equal(slot, slot_user);
  r = match("POST", "/api/v1/users/carol", NULL, NULL);
  assert_ptr_equal(r->handler, h_user);
}

static void test_route_conflicts(void **state) {
  /* Two rows that answer the same requests: a start-up error naming both. */
  static const http_route_t a[] = {{.method = HTTP_GET, .path = "/admin/{file}", .handler = h_other}};
  static const http_route_t b[] = {{.method = HTTP_GET, .path = "/admin/{name}", .handler = h_user}};
  const http_route_set_t sets[] = {{.owner = "admin", .routes = a, .count = 1},
                                   {.owner = "meeting", .routes = b, .count = 1}};
  http_router_t *r = NULL;
  char err[256] = "";
  assert_int_equal(http_router_build(sets, 2, &r, err, sizeof err), -EEXIST);
  assert_null(r);
  assert_non_null(strstr(err, "GET /admin/{file} of the module admin"));
  assert_non_null(strstr(err, "GET /admin/{name} of the module meeting"));
  /* The same path with another method, or another literal, is no conflict. */
  static const http_route_t c[] = {{.method = HTTP_POST, .path = "/admin/{file}", .handler = h_user},
                                   {.method = HTTP_GET, .path = "/admin/x", .handler = h_user}};
  const http_route_set_t ok[] = {{.owner = "admin", .routes = a, .count = 1},
                                 {.owner = "other", .routes = c, .count = 2}};
  assert_int_equal(http_router_build(ok, 2, &r, err, sizeof err), 0);
  http_router_free(r);
  /* A row without a handler or a path that is not absolute is refused. */
  static const http_route_t bad[] = {{.method = HTTP_GET, .path = "admin", .handler = h_user}};
  const http_route_set_t badset[] = {{.owner = "broken", .routes = bad, .count = 1}};
  assert_int_equal(http_router_build(badset, 1, &r, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "broken"));
}

static void test_method_names(void **state) {
  assert_int_equal(http_method_parse("GET"), HTTP_GET);
  assert_int_equal(http_method_parse("PATCH"), HTTP_PATCH);
  assert_int_equal(http_method_parse("DELETE"), HTTP_DELETE);
  assert_int_equal(http_method_parse("BREW"), HTTP_OTHER);
  assert_int_equal(http_method_parse(NULL), HTTP_OTHER);
  assert_string_equal(http_method_name(HTTP_OPTIONS), "OPTIONS");
  assert_string_equal(http_method_name((http_method_t)99), "OTHER");
}

static void test_if_match(void **state) {
  int64_t v = 7;
  assert_int_equal(http_parse_if_match(NULL, &v), 0);
  assert_int_equal(v, -1);
  assert_int_equal(http_parse_if_match("\"5\"", &v), 0);
  assert_int_equal(v, 5);
  assert_int_equal(http_parse_if_match("5", &v), 0);
  assert_int_equal(v, 5);
  assert_int_equal(http_parse_if_match("  \"12\" ", &v), 0);
  assert_int_equal(v, 12);
  assert_int_equal(http_parse_if_match("\"0\"", &v), 0);
  assert_int_equal(v, 0);
  assert_int_equal(http_parse_if_match("*", &v), 0);
  assert_int_equal(v, -1);
  assert_int_equal(http_parse_if_match("\"9223372036854775807\"", &v), 0);
  assert_int_equal(v, INT64_MAX);

  static const char *const bad[] = {
      "",         "  ",        "\"\"",     "W/\"5\"", "\"5\", \"6\"", "5,6",  "-1",
      "\"-1\"",   "+5",        "0x10",     "5a",      "\"5",          "5\"",  "'5'",
      "\"5 \"",   "1e3",       "\"9223372036854775808\"", "99999999999999999999999",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    v = 42;
    if (http_parse_if_match(bad[i], &v) != -EINVAL) fail_msg("If-Match %s accepted", bad[i]);
  }
}

static void test_int_param(void **state) {
  int64_t v;
  assert_int_equal(http_parse_int_param(NULL, 1, 500, 50, &v), 0);
  assert_int_equal(v, 50);
  assert_int_equal(http_parse_int_param("1", 1, 500, 50, &v), 0);
  assert_int_equal(v, 1);
  assert_int_equal(http_parse_int_param("500", 1, 500, 50, &v), 0);
  assert_int_equal(v, 500);
  assert_int_equal(http_parse_int_param("0", 0, INT64_MAX, 0, &v), 0);
  assert_int_equal(v, 0);
  assert_int_equal(http_parse_int_param("007", 0, INT64_MAX, 0, &v), 0);
  assert_int_equal(v, 7);
  assert_int_equal(http_parse_int_param("9223372036854775807", 0, INT64_MAX, 0, &v), 0);
  assert_int_equal(v, INT64_MAX);

  assert_int_equal(http_parse_int_param("0", 1, 500, 50, &v), -ERANGE);
  assert_int_equal(http_parse_int_param("501", 1, 500, 50, &v), -ERANGE);
  assert_int_equal(http_parse_int_param("9223372036854775808", 0, INT64_MAX, 0, &v), -ERANGE);
  static const char *const bad[] = {"", "-1", "+1", " 1", "1 ", "1.0", "0x10", "1e2", "abc",
                                    "1,2", "\t1", "-0"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (http_parse_int_param(bad[i], 0, INT64_MAX, 0, &v) != -EINVAL)
      fail_msg("parameter \"%s\" accepted", bad[i]);
}

static void test_content_type(void **state) {
  assert_true(http_content_type_is_json("application/json"));
  assert_true(http_content_type_is_json("Application/JSON"));
  assert_true(http_content_type_is_json("application/json; charset=utf-8"));
  assert_true(http_content_type_is_json("application/json;charset=UTF-8"));
  assert_true(http_content_type_is_json("application/json; charset=\"utf-8\""));
  assert_true(http_content_type_is_json(" application/json "));
  assert_false(http_content_type_is_json(NULL));
  assert_false(http_content_type_is_json(""));
  assert_false(http_content_type_is_json("text/plain"));
  assert_false(http_content_type_is_json("application/jsonx"));
  assert_false(http_content_type_is_json("application/json-patch+json"));
  assert_false(http_content_type_is_json("application/x-www-form-urlencoded"));
  assert_false(http_content_type_is_json("multipart/form-data; boundary=x"));
  assert_false(http_content_type_is_json("application/json; charset=latin1"));
  assert_false(http_content_type_is_json("application/json; boundary=x"));
  assert_false(http_content_type_is_json("application/json; charset=utf-8; x=y"));
}

static void test_bearer(void **state) {
  assert_string_equal(http_bearer_token("Bearer abc"), "abc");
  assert_string_equal(http_bearer_token("bearer   abc-_"), "abc-_");
  assert_null(http_bearer_token(NULL));
  assert_null(http_bearer_token("Bearer"));
  assert_null(http_bearer_token("Bearer "));
  assert_null(http_bearer_token("Bearerabc"));
  assert_null(http_bearer_token("Basic YWRtaW46eA=="));
}

static void test_path_acceptable(void **state) {
  static const char *const good[] = {"/", "/admin/", "/api/v1/users/alice", "/m/caf\xc3\xa9",
                                     "/m/\xe2\x82\xac", "/m/\xf0\x9f\x98\x80", "/a%20b"};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
    if (!http_path_acceptable(good[i], strlen(good[i]))) fail_msg("path %s refused", good[i]);
  static const char *const bad[] = {
      "",                 "admin",          "/admin/\xff\xfe", "/\xc3",          "/\xc0\xaf",
      "/\xe0\x80\xaf", "/\xed\xa0\x80", "/\xf4\x90\x80\x80", "/a\x1b[31m", "/a\x7f",
      "/a\tb",           "/a\xc2\x9b",     "/\xf0\x9f\x98",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (http_path_acceptable(bad[i], strlen(bad[i]))) fail_msg("path #%zu accepted", i);
  assert_false(http_path_acceptable(NULL, 0));
}

static void test_unescape(void **state) {
  char a[] = "/a%20b%2Fc%zz%4";
  assert_int_equal(http_unescape(a), strlen("/a b/c%zz%4"));
  assert_string_equal(a, "/a b/c%zz%4");
  char b[] = "/healthz%00x";
  assert_int_equal(http_unescape(b), 10);
  assert_string_equal(b, "/healthz\x7fx");
  assert_false(http_path_acceptable(b, strlen(b)));
}

static bool trust_10(const char *address, void *ctx) {
  (void)ctx;
  return strncmp(address, "10.", 3) == 0;
}

static void test_forwarded_client(void **state) {
  char out[64];
  snprintf(out, sizeof out, "10.0.0.1");
  http_forwarded_client("203.0.113.9, 10.0.0.2", trust_10, NULL, out, sizeof out);
  assert_string_equal(out, "203.0.113.9");
  /* A claim left of the first untrusted hop is not believed. */
  snprintf(out, sizeof out, "10.0.0.1");
  http_forwarded_client("198.51.100.1, 203.0.113.9", trust_10, NULL, out, sizeof out);
  assert_string_equal(out, "203.0.113.9");
  /* Garbage stops the walk at the last good hop. */
  snprintf(out, sizeof out, "10.0.0.1");
  http_forwarded_client("203.0.113.9, evil", trust_10, NULL, out, sizeof out);
  assert_string_equal(out, "10.0.0.1");
  snprintf(out, sizeof out, "10.0.0.1");
  http_forwarded_client(",,, ", trust_10, NULL, out, sizeof out);
  assert_string_equal(out, "10.0.0.1");
  snprintf(out, sizeof out, "10.0.0.1");
  http_forwarded_client("2001:db8::1,10.9.9.9", trust_10, NULL, out, sizeof out);
  assert_string_equal(out, "2001:db8::1");
}

static void test_log_escape(void **state) {
  char out[64];
  static const char in[] = "a\x1b[2Jb\nc\x07\xff\xc2\x9b caf\xc3\xa9";
  size_t n = log_escape(in, sizeof in - 1, out, sizeof out);
  out[n] = '\0';
  assert_string_equal(out, "a\\x1b[2Jb c\\x07\\xff\\xc2\\x9b caf\xc3\xa9");
  /* Never more than cap bytes, and never half an escape. */
  n = log_escape("\x1b\x1b\x1b", 3, out, 6);
  assert_int_equal(n, 4);
}

static void test_problem_shape(void **state) {
  json_t *p = http_problem_json(404, "not-found", "Not found", "Nothing here.", NULL);
  assert_non_null(p);
  assert_int_equal(json_object_size(p), 5);
  assert_string_equal(json_string_value(json_object_get(p, "type")),
                      "https://atrium.invalid/problems/not-found");
  assert_string_equal(json_string_value(json_object_get(p, "title")), "Not found");
  assert_int_equal(json_integer_value(json_object_get(p, "status")), 404);
  assert_string_equal(json_string_value(json_object_get(p, "detail")), "Nothing here.");
  /* errors is always there, an empty array when there is nothing to list. */
  assert_true(json_is_array(json_object_get(p, "errors")));
  assert_int_equal(json_array_size(json_object_get(p, "errors")), 0);
  json_decref(p);

  json_t *errors = json_pack("[{s:s, s:s}, {s:s, s:s}]", "key", "proxy.port", "message", "bad",
                             "key", "proxy.host", "message", "required");
  p = http_problem_json(422, "validation", "Invalid settings", "2 settings.", errors);
  assert_non_null(p);
  const json_t *e = json_object_get(p, "errors");
  assert_int_equal(json_array_size(e), 2);
  assert_string_equal(json_string_value(json_object_get(json_array_get(e, 1), "key")),
                      "proxy.host");
  /* A copy: the caller's array is not shared. */
  assert_ptr_not_equal(e, errors);
  json_decref(errors);
  json_decref(p);

  /* Defaults: a missing title is the reason phrase, a missing detail "". */
  p = http_problem_json(413, "payload-too-large", NULL, NULL, NULL);
  assert_non_null(p);
  assert_string_equal(json_string_value(json_object_get(p, "title")), "Content Too Large");
  assert_string_equal(json_string_value(json_object_get(p, "detail")), "");
  json_decref(p);
}

static void write_router(FILE *f, void *r) { http_router_write_metrics(r, f); }

static void test_metrics_render(void **state) {
  http_router_reset_counters(router);
  metrics_clear();
  metrics_register(write_router, router);
  size_t n = http_router_patterns(router), slot;
  match("GET", "/api/v1/settings", NULL, &slot);
  http_router_count(router, slot, HTTP_GET, 200, 300);
  http_router_count(router, slot, HTTP_GET, 200, 300);
  http_router_count(router, slot, HTTP_PATCH, 422, 2000000);
  http_router_count(router, n, HTTP_GET, 404, 10);
  http_router_count(router, n, HTTP_OTHER, 418, 10);

  char *text;
  size_t len;
  assert_int_equal(metrics_render(&text, &len), 0);
  assert_int_equal(strlen(text), len);
  assert_non_null(strstr(text, "atrium_build_info{version=\"" ATRIUM_VERSION "\"} 1\n"));
  assert_non_null(strstr(
      text, "atrium_http_requests_total{route=\"/api/v1/settings\",method=\"GET\",code=\"200\"} 2\n"));
  assert_non_null(strstr(
      text,
      "atrium_http_requests_total{route=\"/api/v1/settings\",method=\"PATCH\",code=\"422\"} 1\n"));
  assert_non_null(
      strstr(text, "atrium_http_requests_total{route=\"unmatched\",method=\"GET\",code=\"404\"} 1\n"));
  assert_non_null(strstr(
      text, "atrium_http_requests_total{route=\"unmatched\",method=\"OTHER\",code=\"other\"} 1\n"));
  /* Histogram: cumulative buckets, +Inf equals the count. */
  assert_non_null(strstr(
      text, "atrium_http_request_duration_seconds_bucket{route=\"/api/v1/settings\",le=\"0.0005\"} 2\n"));
  assert_non_null(strstr(
      text, "atrium_http_request_duration_seconds_bucket{route=\"/api/v1/settings\",le=\"+Inf\"} 3\n"));
  assert_non_null(
      strstr(text, "atrium_http_request_duration_seconds_count{route=\"/api/v1/settings\"} 3\n"));
  assert_non_null(
      strstr(text, "atrium_http_request_duration_seconds_sum{route=\"/api/v1/settings\"} 2.000600\n"));
  /* Routes nobody asked for stay out. */
  assert_null(strstr(text, "route=\"/api/v1/audit\""));
  /* Every line is a comment or a sample; the text ends with a newline. */
  assert_true(len > 0 && text[len - 1] == '\n');
  free(text);
  metrics_clear();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_route_known),      cmocka_unit_test(test_route_head_is_get),
      cmocka_unit_test(test_route_unknown),    cmocka_unit_test(test_route_wrong_method),
      cmocka_unit_test(test_route_parameters), cmocka_unit_test(test_route_conflicts),
      cmocka_unit_test(test_method_names),
      cmocka_unit_test(test_if_match),         cmocka_unit_test(test_int_param),
      cmocka_unit_test(test_content_type),     cmocka_unit_test(test_bearer),
      cmocka_unit_test(test_path_acceptable),  cmocka_unit_test(test_forwarded_client),
      cmocka_unit_test(test_log_escape),       cmocka_unit_test(test_unescape),
      cmocka_unit_test(test_problem_shape),    cmocka_unit_test(test_metrics_render),
  };
  return cmocka_run_group_tests(tests, build, unbuild);
}
