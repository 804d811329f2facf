/* The outbound client and "Test connection": the bypass matcher, proxy URL
 * and authentication mapping, the classification of failures and their
 * sentences, the merge and checks of unsaved values against a real settings
 * store, and real transfers against small servers on loopback (a stub that
 * plays a proxy answering 407 or 403 to CONNECT, a plain HTTP server, a closed
 * port). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>

#include "fixture.h"
#include "core/netaddr.h"
#include "mod/outbound/outbound.h"
#include "mod/outbound/proxy_test.h"
#include "conf/settings.h"

/* ---- bypass matching ---------------------------------------------------------------------- */

typedef struct bypass_case {
  const char *host;
  bool want;
} bypass_case_t;

static void test_bypass_table(void **state) {
  (void)state;
  json_t *list = json_pack("[s,s,s,s,s,s,s,s]", "intranet.example.com", "*.corp.example",
                           ".lab.example", "192.0.2.7", "10.0.0.0/8", "2001:db8::/32", "fd00::1",
                           "172.16.0.0/12");
  assert_non_null(list);
  static const bypass_case_t cases[] = {
      /* exact names, case and trailing dot do not matter */
      {"intranet.example.com", true},
      {"INTRANET.Example.COM", true},
      {"intranet.example.com.", true},
      {"www.intranet.example.com", false},
      {"example.com", false},
      {"intranet.example.co", false},
      /* "*.x" and ".x": names below x, not x itself */
      {"a.corp.example", true},
      {"a.b.corp.example", true},
      {"corp.example", false},
      {"xcorp.example", false},
      {"host.lab.example", true},
      {"lab.example", false},
      {"evil-lab.example", false},
      /* addresses */
      {"192.0.2.7", true},
      {"192.0.2.70", false},
      {"fd00::1", true},
      {"[fd00::1]", true},
      {"fd00:0:0:0:0:0:0:1", true},
      {"fd00::2", false},
      /* ranges */
      {"10.1.2.3", true},
      {"10.255.255.255", true},
      {"11.0.0.1", false},
      {"172.16.0.1", true},
      {"172.31.255.255", true},
      {"172.32.0.1", false},
      {"2001:db8:1::5", true},
      {"[2001:db8::1]", true},
      {"2001:db9::1", false},
      /* a name is never resolved to match a range or an address */
      {"localhost", false},
      {"10.example", false},
      /* nothing strange matches */
      {"", false},
      {"[]", false},
  };
  int failures = 0;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    bool got = outbound_bypass_match(list, cases[i].host);
    if (got != cases[i].want) {
      print_error("bypass \"%s\": got %d, want %d\n", cases[i].host, got, cases[i].want);
      failures++;
    }
  }
  assert_false(outbound_bypass_match(list, NULL));
  assert_false(outbound_bypass_match(NULL, "intranet.example.com"));
  json_t *empty = json_array();
  assert_false(outbound_bypass_match(empty, "intranet.example.com"));
  /* A range with host bits or a bad prefix never matches (not crashes). */
  json_t *odd = json_pack("[s,s,s,s]", "10.0.0.0/33", "10.0.0.0/x", "/8", "::/0");
  assert_false(outbound_bypass_match(odd, "10.0.0.1"));
  assert_true(outbound_bypass_match(odd, "2001:db8::1")); /* ::/0 is every IPv6 address */
  json_decref(odd);
  json_decref(empty);
  json_decref(list);
  assert_int_equal(failures, 0);
}

/* ---- proxy values ------------------------------------------------------------------------- */

static void test_proxy_url(void **state) {
  (void)state;
  outbound_proxy_t p = {.enabled = true, .port = 3128};
  char buf[300];
  assert_int_equal(outbound_proxy_url(&p, buf, sizeof buf), -EINVAL);
  snprintf(p.host, sizeof p.host, "proxy.example.com");
  assert_int_equal(outbound_proxy_url(&p, buf, sizeof buf), 0);
  assert_string_equal(buf, "http://proxy.example.com:3128");
  snprintf(p.host, sizeof p.host, "192.0.2.1");
  assert_int_equal(outbound_proxy_url(&p, buf, sizeof buf), 0);
  assert_string_equal(buf, "http://192.0.2.1:3128");
  snprintf(p.host, sizeof p.host, "2001:db8::1");
  assert_int_equal(outbound_proxy_url(&p, buf, sizeof buf), 0);
  assert_string_equal(buf, "http://[2001:db8::1]:3128");
  assert_int_equal(outbound_proxy_url(&p, buf, 10), -ENAMETOOLONG);
}

static void test_auth_mapping(void **state) {
  (void)state;
  outbound_auth_t a;
  assert_int_equal(outbound_auth_parse("basic", &a), 0);
  assert_int_equal(outbound_auth_curl(a), CURLAUTH_BASIC);
  assert_int_equal(outbound_auth_parse("digest", &a), 0);
  assert_int_equal(outbound_auth_curl(a), CURLAUTH_DIGEST);
  assert_int_equal(outbound_auth_parse("ntlm", &a), 0);
  assert_int_equal(outbound_auth_curl(a), CURLAUTH_NTLM);
  assert_int_equal(outbound_auth_parse("negotiate", &a), 0);
  assert_int_equal(outbound_auth_curl(a), CURLAUTH_NEGOTIATE);
  assert_int_equal(outbound_auth_parse("Basic", &a), -EINVAL);
  assert_int_equal(outbound_auth_parse(NULL, &a), -EINVAL);
  assert_int_equal(outbound_auth_curl(OUTBOUND_AUTH_NONE), 0);
}

static void test_proxy_from_values(void **state) {
  (void)state;
  outbound_proxy_t p;
  /* Nothing given: the catalogue's defaults. */
  assert_int_equal(outbound_proxy_from_values(NULL, &p), 0);
  assert_false(p.enabled);
  assert_int_equal(p.port, 8080);
  assert_int_equal(p.auth, OUTBOUND_AUTH_NONE);
  assert_null(p.password);
  assert_int_equal(json_array_size(p.bypass), 0);
  outbound_proxy_clear(&p);

  json_t *v = json_pack("{s:b, s:s, s:i, s:b, s:s, s:s, s:s, s:[s]}", "proxy.enabled", 1,
                        "proxy.host", "[2001:db8::1]", "proxy.port", 3128, "proxy.auth_required",
                        1, "proxy.auth_method", "digest", "proxy.username", "alice",
                        "proxy.password", "s3cret", "proxy.bypass", "10.0.0.0/8");
  assert_int_equal(outbound_proxy_from_values(v, &p), 0);
  assert_true(p.enabled);
  assert_string_equal(p.host, "2001:db8::1");
  assert_int_equal(p.port, 3128);
  assert_int_equal(p.auth, OUTBOUND_AUTH_DIGEST);
  assert_string_equal(p.username, "alice");
  assert_string_equal(p.password, "s3cret");
  assert_true(outbound_bypass_match(p.bypass, "10.9.9.9"));
  outbound_proxy_clear(&p);
  outbound_proxy_clear(&p); /* cleared twice is fine */
  outbound_proxy_clear(NULL);

  /* Authentication off: no method, whatever the method says. */
  json_object_set_new(v, "proxy.auth_required", json_false());
  assert_int_equal(outbound_proxy_from_values(v, &p), 0);
  assert_int_equal(p.auth, OUTBOUND_AUTH_NONE);
  outbound_proxy_clear(&p);

  /* Wrong types are refused, not guessed. */
  json_object_set_new(v, "proxy.port", json_string("3128"));
  assert_int_equal(outbound_proxy_from_values(v, &p), -EINVAL);
  json_object_set_new(v, "proxy.port", json_integer(70000));
  assert_int_equal(outbound_proxy_from_values(v, &p), -EINVAL);
  json_object_set_new(v, "proxy.port", json_integer(3128));
  json_object_set_new(v, "proxy.auth_required", json_true());
  json_object_set_new(v, "proxy.auth_method", json_string("kerberos"));
  assert_int_equal(outbound_proxy_from_values(v, &p), -EINVAL);
  json_decref(v);
  json_t *not_object = json_array();
  assert_int_equal(outbound_proxy_from_values(not_object, &p), -EINVAL);
  json_decref(not_object);
}

/* ---- classification and sentences ---------------------------------------------------------- */

typedef struct classify_case {
  int curl_code;
  long connect_status, status;
  bool via_proxy;
  const char *proxy_error;
  outbound_stage_t want;
} classify_case_t;

static void test_classify_table(void **state) {
  (void)state;
  static const classify_case_t cases[] = {
      {CURLE_OK, 0, 200, false, NULL, OUTBOUND_STAGE_OK},
      {CURLE_OK, 200, 503, true, NULL, OUTBOUND_STAGE_OK}, /* the server's own 503 */
      {CURLE_OK, 0, 407, true, NULL, OUTBOUND_STAGE_PROXY_AUTH},
      {CURLE_OK, 0, 407, false, NULL, OUTBOUND_STAGE_OK}, /* not from a proxy */
      {CURLE_OK, 0, 503, true, "ERR_DNS_FAIL 0", OUTBOUND_STAGE_SERVER_RESOLVE},
      {CURLE_COULDNT_CONNECT, 407, 0, true, NULL, OUTBOUND_STAGE_PROXY_AUTH},
      {CURLE_RECV_ERROR, 407, 0, true, NULL, OUTBOUND_STAGE_PROXY_AUTH},
      {CURLE_COULDNT_CONNECT, 403, 0, true, "ERR_ACCESS_DENIED 0", OUTBOUND_STAGE_PROXY_TUNNEL},
      {CURLE_COULDNT_CONNECT, 503, 0, true, "ERR_DNS_FAIL 0", OUTBOUND_STAGE_SERVER_RESOLVE},
      {CURLE_COULDNT_CONNECT, 503, 0, true, "ERR_CONNECT_FAIL 111", OUTBOUND_STAGE_SERVER_CONNECT},
      {CURLE_COULDNT_CONNECT, 500, 0, true, "ERR_CANNOT_FORWARD 0", OUTBOUND_STAGE_SERVER_CONNECT},
      {CURLE_COULDNT_CONNECT, 500, 0, true, NULL, OUTBOUND_STAGE_PROXY_TUNNEL},
      {CURLE_COULDNT_CONNECT, 502, 0, true, NULL, OUTBOUND_STAGE_SERVER_CONNECT},
      {CURLE_COULDNT_CONNECT, 504, 0, true, NULL, OUTBOUND_STAGE_SERVER_TIMEOUT},
      {CURLE_COULDNT_RESOLVE_PROXY, 0, 0, true, NULL, OUTBOUND_STAGE_PROXY_RESOLVE},
      {CURLE_COULDNT_RESOLVE_HOST, 0, 0, false, NULL, OUTBOUND_STAGE_SERVER_RESOLVE},
      {CURLE_COULDNT_CONNECT, 0, 0, true, NULL, OUTBOUND_STAGE_PROXY_CONNECT},
      {CURLE_COULDNT_CONNECT, 0, 0, false, NULL, OUTBOUND_STAGE_SERVER_CONNECT},
      {CURLE_OPERATION_TIMEDOUT, 0, 0, true, NULL, OUTBOUND_STAGE_PROXY_TIMEOUT},
      {CURLE_OPERATION_TIMEDOUT, 200, 0, true, NULL, OUTBOUND_STAGE_SERVER_TIMEOUT},
      {CURLE_OPERATION_TIMEDOUT, 0, 0, false, NULL, OUTBOUND_STAGE_SERVER_TIMEOUT},
      {CURLE_GOT_NOTHING, 0, 0, true, NULL, OUTBOUND_STAGE_PROXY_CONNECT},
      {CURLE_GOT_NOTHING, 0, 0, false, NULL, OUTBOUND_STAGE_PROTOCOL},
      {CURLE_PEER_FAILED_VERIFICATION, 200, 0, true, NULL, OUTBOUND_STAGE_TLS},
      {CURLE_SSL_CONNECT_ERROR, 0, 0, false, NULL, OUTBOUND_STAGE_TLS},
      {CURLE_UNSUPPORTED_PROTOCOL, 0, 0, false, NULL, OUTBOUND_STAGE_INVALID},
      {CURLE_TOO_MANY_REDIRECTS, 0, 302, false, NULL, OUTBOUND_STAGE_PROTOCOL},
      {CURLE_OUT_OF_MEMORY, 0, 0, false, NULL, OUTBOUND_STAGE_INTERNAL},
  };
  int failures = 0;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const classify_case_t *c = &cases[i];
    outbound_stage_t got =
        outbound_classify(c->curl_code, c->connect_status, c->status, c->via_proxy, c->proxy_error);
    if (got != c->want) {
      print_error("case %zu (curl %d, CONNECT %ld, status %ld): %s, want %s\n", i, c->curl_code,
                  c->connect_status, c->status, outbound_stage_name(got),
                  outbound_stage_name(c->want));
      failures++;
    }
  }
  assert_int_equal(failures, 0);
  assert_string_equal(outbound_stage_name(OUTBOUND_STAGE_PROXY_AUTH), "proxy_auth");
  assert_string_equal(outbound_stage_name((outbound_stage_t)99), "internal");
}

typedef struct explain_case {
  outbound_response_t resp;
  outbound_auth_t auth;
  const char *stage;
  bool ok;
  long http_status;
  const char *has[3];
} explain_case_t;

static void test_explain_table(void **state) {
  (void)state;
  const char *url = "https://license.example.com:8443/v1/status";
  static const explain_case_t cases[] = {
      {.resp = {.stage = OUTBOUND_STAGE_OK, .status = 200}, .stage = "ok", .ok = true,
       .http_status = 200, .has = {"The license server could be contacted successfully."}},
      {.resp = {.stage = OUTBOUND_STAGE_OK, .status = 503}, .stage = "server_http",
       .http_status = 503, .has = {"license.example.com:8443", "HTTP 503"}},
      {.resp = {.stage = OUTBOUND_STAGE_OK, .status = 302}, .stage = "server_http",
       .http_status = 302, .has = {"redirect", "HTTP 302"}},
      {.resp = {.stage = OUTBOUND_STAGE_PROXY_RESOLVE, .via_proxy = true},
       .stage = "proxy_resolve",
       .has = {"The proxy host name squid.corp does not resolve", "working DNS server"}},
      {.resp = {.stage = OUTBOUND_STAGE_PROXY_CONNECT, .via_proxy = true},
       .stage = "proxy_connect", .has = {"squid.corp:3128 refuses the connection"}},
      {.resp = {.stage = OUTBOUND_STAGE_PROXY_TIMEOUT, .via_proxy = true},
       .stage = "proxy_timeout", .has = {"does not answer within 3 seconds"}},
      {.resp = {.stage = OUTBOUND_STAGE_PROXY_AUTH, .via_proxy = true, .connect_status = 407,
                .proxy_auth_offered = 1u << OUTBOUND_AUTH_BASIC},
       .stage = "proxy_auth", .http_status = 407,
       .has = {"demands authentication", "offers Basic"}},
      {.resp = {.stage = OUTBOUND_STAGE_PROXY_AUTH, .via_proxy = true, .connect_status = 407,
                .credentials_sent = true, .proxy_auth_offered = 1u << OUTBOUND_AUTH_BASIC},
       .auth = OUTBOUND_AUTH_BASIC, .stage = "proxy_auth", .http_status = 407,
       .has = {"rejects the credentials", "(Basic)"}},
      {.resp = {.stage = OUTBOUND_STAGE_PROXY_AUTH, .via_proxy = true, .connect_status = 407,
                .credentials_sent = true,
                .proxy_auth_offered = 1u << OUTBOUND_AUTH_DIGEST | 1u << OUTBOUND_AUTH_NTLM},
       .auth = OUTBOUND_AUTH_BASIC, .stage = "proxy_auth", .http_status = 407,
       .has = {"does not accept Basic", "Digest or NTLM"}},
      {.resp = {.stage = OUTBOUND_STAGE_PROXY_TUNNEL, .via_proxy = true, .connect_status = 403},
       .stage = "proxy_tunnel", .http_status = 403,
       .has = {"refuses to open a connection", "HTTP 403 to CONNECT"}},
      {.resp = {.stage = OUTBOUND_STAGE_SERVER_RESOLVE}, .stage = "server_resolve",
       .has = {"license server's name (license.example.com:8443) does not resolve",
               "working DNS server", "Use proxy server"}},
      {.resp = {.stage = OUTBOUND_STAGE_SERVER_RESOLVE, .via_proxy = true,
                .connect_status = 503},
       .stage = "server_resolve", .http_status = 503, .has = {"proxy squid.corp:3128 cannot resolve"}},
      {.resp = {.stage = OUTBOUND_STAGE_SERVER_CONNECT}, .stage = "server_connect",
       .has = {"refuses the connection", "Use proxy server"}},
      {.resp = {.stage = OUTBOUND_STAGE_SERVER_CONNECT, .via_proxy = true, .connect_status = 500},
       .stage = "server_connect", .http_status = 500,
       .has = {"squid.corp:3128 cannot reach the license server license.example.com:8443"}},
      {.resp = {.stage = OUTBOUND_STAGE_TLS, .curl_code = CURLE_PEER_FAILED_VERIFICATION},
       .stage = "tls", .has = {"certificate", "is not trusted", "<CABundle>"}},
      {.resp = {.stage = OUTBOUND_STAGE_TLS, .curl_code = CURLE_SSL_CONNECT_ERROR},
       .stage = "tls", .has = {"TLS handshake failed"}},
      {.resp = {.stage = OUTBOUND_STAGE_INTERNAL}, .stage = "internal", .has = {"Try again"}},
  };
  outbound_proxy_t proxy = {.enabled = true, .host = "squid.corp", .port = 3128};
  int failures = 0;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const explain_case_t *c = &cases[i];
    proxy.auth = c->auth;
    proxy_test_result_t res;
    proxy_test_explain(&c->resp, &proxy, url, 3000, &res);
    if (strcmp(res.stage, c->stage) != 0 || res.ok != c->ok || res.http_status != c->http_status) {
      print_error("case %zu: stage %s ok %d status %ld, want %s %d %ld\n", i, res.stage, res.ok,
                  res.http_status, c->stage, c->ok, c->http_status);
      failures++;
    }
    for (size_t k = 0; k < 3 && c->has[k]; k++)
      if (!strstr(res.message, c->has[k])) {
        print_error("case %zu: \"%s\" lacks \"%s\"\n", i, res.message, c->has[k]);
        failures++;
      }
    /* Every sentence ends as a sentence. */
    size_t n = strlen(res.message);
    if (n < 20 || res.message[n - 1] != '.') {
      print_error("case %zu: not a sentence: \"%s\"\n", i, res.message);
      failures++;
    }
  }
  assert_int_equal(failures, 0);
  proxy_test_result_t res;
  outbound_response_t ok = {.stage = OUTBOUND_STAGE_OK, .status = 200};
  proxy_test_explain(&ok, NULL, url, 0, &res);
  assert_string_equal(res.message, "The license server could be contacted successfully.");
}

/* ---- the values of a test, against a real settings store ------------------------------------ */

static void patch_ok(const char *text) {
  json_t *body = json_loads(text, 0, NULL);
  assert_non_null(body);
  settings_outcome_t out;
  settings_change(body, SETTINGS_OP_PATCH, "tester", -1, &out);
  if (outcome_status(&out) != 200) fail_msg("PATCH %s: %d %s", text, outcome_status(&out), out.problem.detail);
  settings_outcome_clear(&out);
  json_decref(body);
}

/* proxy_test_values on a body given as JSON text; returns the code and the
 * keys named in the errors, comma-separated. */
static int try_values(const char *text, json_t **values, char *keys, size_t keylen) {
  json_t *body = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
  if (text) assert_non_null(body);
  settings_snapshot_t *snap = settings_acquire();
  json_t *errors = NULL;
  int r = proxy_test_values(snap, body, values, &errors);
  settings_release(snap);
  keys[0] = '\0';
  size_t i;
  json_t *e;
  json_array_foreach(errors, i, e) {
    size_t used = strlen(keys);
    snprintf(keys + used, keylen - used, "%s%s", i ? "," : "",
             json_string_value(json_object_get(e, "key")));
    assert_non_null(json_string_value(json_object_get(e, "message")));
  }
  json_decref(errors);
  json_decref(body);
  return r;
}

static const char *str_of(const json_t *values, const char *key) {
  return json_string_value(json_object_get(values, key));
}

static void test_values_merge(void **state) {
  (void)state;
  patch_ok("{\"proxy.enabled\": true, \"proxy.host\": \"saved.example.com\", \"proxy.port\": 3128,"
           " \"proxy.auth_required\": true, \"proxy.username\": \"bob\","
           " \"proxy.password\": \"saved-pw\"}");
  json_t *v = NULL;
  char keys[256];
  /* Nothing given: the saved values, the saved password. */
  assert_int_equal(try_values(NULL, &v, keys, sizeof keys), 0);
  assert_string_equal(str_of(v, "proxy.host"), "saved.example.com");
  assert_int_equal(json_integer_value(json_object_get(v, "proxy.port")), 3128);
  assert_string_equal(str_of(v, "proxy.password"), "saved-pw");
  json_decref(v);

  /* Unsaved values on top, normalised like a PATCH; {"set": true} keeps the password. */
  assert_int_equal(try_values("{\"proxy.host\": \"Other.Example.COM\", \"proxy.port\": 8081,"
                              " \"proxy.password\": {\"set\": true},"
                              " \"proxy.bypass\": [\"*.Example.org\"]}",
                              &v, keys, sizeof keys),
                   0);
  assert_string_equal(str_of(v, "proxy.host"), "other.example.com");
  assert_int_equal(json_integer_value(json_object_get(v, "proxy.port")), 8081);
  assert_string_equal(str_of(v, "proxy.password"), "saved-pw");
  assert_string_equal(json_string_value(json_array_get(json_object_get(v, "proxy.bypass"), 0)),
                      "*.example.org");
  json_decref(v);

  /* A new password, or none. */
  assert_int_equal(try_values("{\"proxy.password\": \"new-pw\"}", &v, keys, sizeof keys), 0);
  assert_string_equal(str_of(v, "proxy.password"), "new-pw");
  json_decref(v);
  assert_int_equal(try_values("{\"proxy.password\": null}", &v, keys, sizeof keys), 0);
  assert_true(json_is_null(json_object_get(v, "proxy.password")));
  json_decref(v);
  assert_int_equal(try_values("{\"proxy.password\": {\"set\": false}}", &v, keys, sizeof keys), 0);
  assert_true(json_is_null(json_object_get(v, "proxy.password")));
  json_decref(v);

  /* null: back to the default. */
  assert_int_equal(try_values("{\"proxy.port\": null}", &v, keys, sizeof keys), 0);
  assert_int_equal(json_integer_value(json_object_get(v, "proxy.port")), 8080);
  json_decref(v);

  /* Nothing was saved by any of this. */
  settings_snapshot_t *snap = settings_acquire();
  assert_string_equal(settings_string(snap, "proxy.host"), "saved.example.com");
  assert_int_equal(settings_int(snap, "proxy.port"), 3128);
  settings_release(snap);
}

static void test_values_refused(void **state) {
  (void)state;
  json_t *v = NULL;
  char keys[256];
  assert_int_equal(try_values("{\"license.server_url\": \"https://evil.example/\"}", &v, keys,
                              sizeof keys),
                   -EINVAL);
  assert_string_equal(keys, "license.server_url");
  assert_null(v);
  assert_int_equal(try_values("{\"proxy.nope\": 1, \"domain.name\": \"x.example\"}", &v, keys,
                              sizeof keys),
                   -EINVAL);
  assert_string_equal(keys, "proxy.nope,domain.name");
  assert_int_equal(try_values("{\"proxy.port\": 0, \"proxy.host\": \"bad host\"}", &v, keys,
                              sizeof keys),
                   -EINVAL);
  assert_non_null(strstr(keys, "proxy.port"));
  assert_non_null(strstr(keys, "proxy.host"));
  assert_int_equal(try_values("{\"proxy.bypass\": [\"*\"]}", &v, keys, sizeof keys), -EINVAL);
  assert_string_equal(keys, "proxy.bypass");
  assert_int_equal(try_values("{\"proxy.password\": {\"value\": \"x\"}}", &v, keys, sizeof keys),
                   -EINVAL);
  assert_string_equal(keys, "proxy.password");
  /* Cross-field rules on the merged values. */
  assert_int_equal(try_values("{\"proxy.enabled\": true, \"proxy.host\": \"\"}", &v, keys,
                              sizeof keys),
                   -EINVAL);
  assert_string_equal(keys, "proxy.host");
  assert_int_equal(try_values("{\"proxy.auth_required\": true, \"proxy.username\": \"\"}", &v,
                              keys, sizeof keys),
                   -EINVAL);
  assert_string_equal(keys, "proxy.username");
  assert_int_equal(try_values("[1]", &v, keys, sizeof keys), -EBADMSG);
}

static void test_push_purpose(void **state) {
  (void)state;
  patch_ok("{\"proxy.enabled\": true, \"proxy.host\": \"proxy.example.com\","
           " \"mobile.push_use_proxy\": false}");
  settings_snapshot_t *snap = settings_acquire();
  outbound_proxy_t p;
  assert_int_equal(outbound_proxy_from_settings(snap, OUTBOUND_LICENSE, &p), 0);
  assert_true(p.enabled);
  outbound_proxy_clear(&p);
  assert_int_equal(outbound_proxy_from_settings(snap, OUTBOUND_PUSH, &p), 0);
  assert_false(p.enabled);
  outbound_proxy_clear(&p);
  settings_release(snap);

  patch_ok("{\"mobile.push_use_proxy\": true}");
  snap = settings_acquire();
  assert_int_equal(outbound_proxy_from_settings(snap, OUTBOUND_PUSH, &p), 0);
  assert_true(p.enabled);
  assert_string_equal(p.host, "proxy.example.com");
  outbound_proxy_clear(&p);
  settings_release(snap);
}

/* ---- real transfers on loopback ------------------------------------------------------------ */

static int closed_port(void);

/* The proxy of the settings in force is used, and a change applies to the
 * very next request. */
static void test_request_follows_settings(void **state) {
  (void)state;
  int dead = closed_port();
  char patch[256];
  snprintf(patch, sizeof patch,
           "{\"proxy.enabled\": true, \"proxy.host\": \"127.0.0.1\", \"proxy.port\": %d}", dead);
  patch_ok(patch);
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/", closed_port());
  outbound_request_t req = {.purpose = OUTBOUND_LICENSE, .url = url, .connect_timeout_ms = 3000,
                            .timeout_ms = 5000, .max_redirects = -1};
  outbound_response_t resp;
  assert_int_equal(outbound_request(&req, &resp), -ECONNREFUSED);
  assert_int_equal(resp.stage, OUTBOUND_STAGE_PROXY_CONNECT);
  assert_true(resp.via_proxy);
  outbound_response_clear(&resp);

  /* Push does not use it until asked to. */
  req.purpose = OUTBOUND_PUSH;
  assert_int_equal(outbound_request(&req, &resp), -ECONNREFUSED);
  assert_int_equal(resp.stage, OUTBOUND_STAGE_SERVER_CONNECT);
  assert_false(resp.via_proxy);
  outbound_response_clear(&resp);

  patch_ok("{\"proxy.enabled\": false}");
  req.purpose = OUTBOUND_LICENSE;
  assert_int_equal(outbound_request(&req, &resp), -ECONNREFUSED);
  assert_int_equal(resp.stage, OUTBOUND_STAGE_SERVER_CONNECT);
  assert_false(resp.via_proxy);
  outbound_response_clear(&resp);
}

/* A one-shot server: accepts one connection, reads the request head, writes
 * a canned answer and closes. Every wait is bounded. */
typedef struct stub {
  int fd;
  int port;
  const char *answer;
  char request[4096];
  pthread_t thread;
} stub_t;

static void *stub_main(void *arg) {
  stub_t *s = arg;
  struct pollfd p = {.fd = s->fd, .events = POLLIN};
  if (poll(&p, 1, 5000) != 1) return NULL;
  int c = accept(s->fd, NULL, NULL);
  if (c < 0) return NULL;
  size_t len = 0;
  for (int rounds = 0; rounds < 100 && len + 1 < sizeof s->request; rounds++) {
    struct pollfd q = {.fd = c, .events = POLLIN};
    if (poll(&q, 1, 5000) != 1) break;
    ssize_t n = read(c, s->request + len, sizeof s->request - 1 - len);
    if (n <= 0) break;
    len += (size_t)n;
    s->request[len] = '\0';
    if (strstr(s->request, "\r\n\r\n")) break;
  }
  size_t total = strlen(s->answer);
  for (size_t off = 0; off < total;) {
    ssize_t n = write(c, s->answer + off, total - off);
    if (n <= 0) break;
    off += (size_t)n;
  }
  close(c);
  return NULL;
}

static int listen_loopback(int *port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(fd >= 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(fd, 4), 0);
  socklen_t al = sizeof a;
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
  *port = ntohs(a.sin_port);
  return fd;
}

static void stub_start(stub_t *s, const char *answer) {
  memset(s, 0, sizeof *s);
  s->answer = answer;
  s->fd = listen_loopback(&s->port);
  assert_int_equal(pthread_create(&s->thread, NULL, stub_main, s), 0);
}

static void stub_stop(stub_t *s) {
  pthread_join(s->thread, NULL);
  close(s->fd);
}

static int closed_port(void) {
  int port;
  int fd = listen_loopback(&port);
  close(fd);
  return port;
}

static outbound_request_t quick(const char *url) {
  return (outbound_request_t){.url = url, .connect_timeout_ms = 3000, .timeout_ms = 5000,
                              .max_redirects = -1};
}

static void test_direct_http(void **state) {
  (void)state;
  stub_t s;
  stub_start(&s, "HTTP/1.1 200 OK\r\nContent-Length: 11\r\nConnection: close\r\n\r\nhello world");
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/status", s.port);
  outbound_request_t req = quick(url);
  const char *const headers[] = {"X-Test: 1", NULL};
  req.headers = headers;
  outbound_response_t resp;
  assert_int_equal(outbound_perform(&req, NULL, &resp), 0);
  stub_stop(&s);
  assert_int_equal(resp.stage, OUTBOUND_STAGE_OK);
  assert_int_equal(resp.status, 200);
  assert_false(resp.via_proxy);
  assert_string_equal(resp.body, "hello world");
  assert_non_null(strstr(s.request, "GET /v1/status HTTP/1.1"));
  assert_non_null(strstr(s.request, "X-Test: 1"));
  assert_non_null(strstr(s.request, "User-Agent: Atrium/"));
  outbound_response_clear(&resp);
  outbound_response_clear(&resp);
  outbound_response_clear(NULL);
}

static void test_body_cap(void **state) {
  (void)state;
  stub_t s;
  stub_start(&s, "HTTP/1.1 200 OK\r\nContent-Length: 26\r\nConnection: close\r\n\r\n"
                 "abcdefghijklmnopqrstuvwxyz");
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/", s.port);
  outbound_request_t req = quick(url);
  req.max_body = 5;
  outbound_response_t resp;
  assert_int_equal(outbound_perform(&req, NULL, &resp), 0);
  stub_stop(&s);
  assert_int_equal(resp.status, 200);
  assert_true(resp.truncated);
  assert_int_equal(resp.body_len, 5);
  assert_string_equal(resp.body, "abcde");
  outbound_response_clear(&resp);
}

static void test_refused_and_invalid(void **state) {
  (void)state;
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/", closed_port());
  outbound_request_t req = quick(url);
  outbound_response_t resp;
  assert_int_equal(outbound_perform(&req, NULL, &resp), -ECONNREFUSED);
  assert_int_equal(resp.stage, OUTBOUND_STAGE_SERVER_CONNECT);
  outbound_response_clear(&resp);

  /* The same through a "proxy" on a closed port. */
  outbound_proxy_t proxy = {.enabled = true, .host = "127.0.0.1", .port = closed_port(),
                            .bypass = json_array()};
  assert_int_equal(outbound_perform(&req, &proxy, &resp), -ECONNREFUSED);
  assert_int_equal(resp.stage, OUTBOUND_STAGE_PROXY_CONNECT);
  assert_true(resp.via_proxy);
  outbound_response_clear(&resp);

  /* ...unless the destination is in the bypass list. */
  json_array_append_new(proxy.bypass, json_string("127.0.0.0/8"));
  assert_int_equal(outbound_perform(&req, &proxy, &resp), -ECONNREFUSED);
  assert_int_equal(resp.stage, OUTBOUND_STAGE_SERVER_CONNECT);
  assert_false(resp.via_proxy);
  outbound_response_clear(&resp);
  outbound_proxy_clear(&proxy);

  /* Only http and https, and nothing is sent for anything else. */
  static const char *const bad[] = {"ftp://127.0.0.1/", "file:///etc/passwd", "gopher://x/",
                                    "not a url", ""};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    req = quick(bad[i]);
    assert_int_equal(outbound_perform(&req, NULL, &resp), -EINVAL);
    assert_int_equal(resp.stage, OUTBOUND_STAGE_INVALID);
    outbound_response_clear(&resp);
  }
  assert_int_equal(outbound_perform(NULL, NULL, &resp), -EINVAL);
}

/* A stub proxy that answers CONNECT with 407: the stage, the schemes it
 * offered, and that the credentials went only to the proxy. */
static void test_connect_407(void **state) {
  (void)state;
  stub_t s;
  stub_start(&s, "HTTP/1.1 407 Proxy Authentication Required\r\n"
                 "Proxy-Authenticate: Digest realm=\"x\", nonce=\"abc\"\r\n"
                 "Proxy-Authenticate: NTLM\r\n"
                 "Content-Length: 0\r\nConnection: close\r\n\r\n");
  outbound_proxy_t proxy = {.enabled = true, .host = "127.0.0.1", .port = s.port,
                            .bypass = json_array()};
  outbound_request_t req = quick("https://license.example.com/v1/status");
  outbound_response_t resp;
  assert_int_equal(outbound_perform(&req, &proxy, &resp), -EACCES);
  stub_stop(&s);
  assert_int_equal(resp.stage, OUTBOUND_STAGE_PROXY_AUTH);
  assert_int_equal(resp.connect_status, 407);
  assert_false(resp.credentials_sent);
  assert_int_equal(resp.proxy_auth_offered,
                   1u << OUTBOUND_AUTH_DIGEST | 1u << OUTBOUND_AUTH_NTLM);
  assert_non_null(strstr(s.request, "CONNECT license.example.com:443 HTTP/1.1"));
  outbound_response_clear(&resp);
  outbound_proxy_clear(&proxy);

  /* With Basic credentials: sent to the proxy in Proxy-Authorization. */
  stub_start(&s, "HTTP/1.1 407 Proxy Authentication Required\r\n"
                 "Proxy-Authenticate: Basic realm=\"x\"\r\n"
                 "Content-Length: 0\r\nConnection: close\r\n\r\n");
  proxy = (outbound_proxy_t){.enabled = true, .host = "127.0.0.1", .port = s.port,
                             .auth = OUTBOUND_AUTH_BASIC, .username = "alice",
                             .password = strdup("pw"), .bypass = json_array()};
  assert_int_equal(outbound_perform(&req, &proxy, &resp), -EACCES);
  stub_stop(&s);
  assert_true(resp.credentials_sent);
  assert_non_null(strstr(s.request, "Proxy-Authorization: Basic YWxpY2U6cHc=")); /* alice:pw */
  outbound_response_clear(&resp);
  outbound_proxy_clear(&proxy);
}

static void test_connect_403_squid(void **state) {
  (void)state;
  stub_t s;
  stub_start(&s, "HTTP/1.1 403 Forbidden\r\nX-Squid-Error: ERR_ACCESS_DENIED 0\r\n"
                 "Content-Length: 0\r\nConnection: close\r\n\r\n");
  outbound_proxy_t proxy = {.enabled = true, .host = "127.0.0.1", .port = s.port,
                            .bypass = json_array()};
  outbound_request_t req = quick("https://license.example.com:8443/");
  outbound_response_t resp;
  assert_int_equal(outbound_perform(&req, &proxy, &resp), -EPERM);
  stub_stop(&s);
  assert_int_equal(resp.stage, OUTBOUND_STAGE_PROXY_TUNNEL);
  assert_int_equal(resp.connect_status, 403);
  assert_string_equal(resp.proxy_error, "ERR_ACCESS_DENIED 0");
  outbound_response_clear(&resp);

  stub_start(&s, "HTTP/1.1 503 Service Unavailable\r\nX-Squid-Error: ERR_DNS_FAIL 0\r\n"
                 "Content-Length: 0\r\nConnection: close\r\n\r\n");
  proxy.port = s.port;
  assert_int_equal(outbound_perform(&req, &proxy, &resp), -EHOSTUNREACH);
  stub_stop(&s);
  assert_int_equal(resp.stage, OUTBOUND_STAGE_SERVER_RESOLVE);
  outbound_response_clear(&resp);
  outbound_proxy_clear(&proxy);
}

static int global_setup(void **state) {
  (void)state;
  char err[256];
  /* Where the environment names a proxy, it must make no difference. */
  setenv("http_proxy", "http://127.0.0.1:1", 1);
  setenv("https_proxy", "http://127.0.0.1:1", 1);
  setenv("HTTPS_PROXY", "http://127.0.0.1:1", 1);
  return outbound_init(NULL, err, sizeof err) == 0 ? 0 : -1;
}

static int global_teardown(void **state) {
  (void)state;
  outbound_shutdown();
  return 0;
}

static void test_init_ca_bundle(void **state) {
  (void)state;
  char err[512];
  assert_int_equal(outbound_init("/nonexistent/ca.pem", err, sizeof err), -ENOENT);
  assert_non_null(strstr(err, "<CABundle>"));
  assert_int_equal(outbound_init(NULL, err, sizeof err), 0);
}

/* The network matcher the bypass list and the trusted proxies share. */
static void test_netaddr(void **state) {
  static const struct {
    const char *net, *addr;
    int parses, contains;
  } cases[] = {
      {"10.0.0.0/8", "10.255.1.2", 1, 1},     {"10.0.0.0/8", "11.0.0.1", 1, 0},
      {"172.16.0.0/12", "172.31.9.9", 1, 1},  {"172.16.0.0/12", "172.32.0.1", 1, 0},
      {"192.0.2.7", "192.0.2.7", 1, 1},       {"192.0.2.7", "192.0.2.8", 1, 0},
      {"0.0.0.0/0", "203.0.113.9", 1, 1},     {"fd00::/8", "fdab::1", 1, 1},
      {"2001:db8::/33", "2001:db8:7fff::1", 1, 1}, {"2001:db8::/33", "2001:db8:8000::1", 1, 0},
      {"::1", "::1", 1, 1},                   {"10.0.0.0/8", "::ffff:10.0.0.1", 1, 0},
      {"10.0.0.0/33", NULL, 0, 0},            {"fd00::/129", NULL, 0, 0},
      {"10.0.0.0/", NULL, 0, 0},              {"10.0.0.0/+8", NULL, 0, 0},
      {"10.0.0.0/8x", NULL, 0, 0},            {"/8", NULL, 0, 0},
      {"example.com/8", NULL, 0, 0},          {"[::1]", NULL, 0, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    netaddr_net_t net;
    int parsed = netaddr_net_parse(cases[i].net, &net) == 0;
    if (parsed != cases[i].parses) fail_msg("%s: parses %d", cases[i].net, parsed);
    if (!parsed) continue;
    int family;
    unsigned char addr[16];
    assert_int_equal(netaddr_parse(cases[i].addr, &family, addr), 0);
    if (netaddr_net_contains(&net, family, addr) != cases[i].contains)
      fail_msg("%s contains %s: want %d", cases[i].net, cases[i].addr, cases[i].contains);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_netaddr),
      cmocka_unit_test(test_bypass_table),
      cmocka_unit_test(test_proxy_url),
      cmocka_unit_test(test_auth_mapping),
      cmocka_unit_test(test_proxy_from_values),
      cmocka_unit_test(test_classify_table),
      cmocka_unit_test(test_explain_table),
      cmocka_unit_test_setup_teardown(test_values_merge, fixture_setup, fixture_teardown),
      cmocka_unit_test_setup_teardown(test_values_refused, fixture_setup, fixture_teardown),
      cmocka_unit_test_setup_teardown(test_push_purpose, fixture_setup, fixture_teardown),
      cmocka_unit_test_setup_teardown(test_request_follows_settings, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test(test_init_ca_bundle),
      cmocka_unit_test(test_direct_http),
      cmocka_unit_test(test_body_cap),
      cmocka_unit_test(test_refused_and_invalid),
      cmocka_unit_test(test_connect_407),
      cmocka_unit_test(test_connect_403_squid),
  };
  return cmocka_run_group_tests(tests, global_setup, global_teardown);
}
