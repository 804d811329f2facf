/* The push module's pure parts: the ES256 provider token in r||s form, the
 * key checks, the service-account parser, the bodies and their size limit,
 * the providers' error bodies. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <jansson.h>
#include <sodium.h>

#include "mod/push/internal.h"

/* A fresh private key as PEM: PKCS#8 or the older SEC1/PKCS#1 form. */
static char *make_key(gnutls_pk_algorithm_t alg, unsigned bits, bool pkcs8) {
  gnutls_x509_privkey_t k;
  assert_int_equal(gnutls_x509_privkey_init(&k), 0);
  assert_int_equal(gnutls_x509_privkey_generate(k, alg, bits, 0), 0);
  gnutls_datum_t out = {0};
  if (pkcs8)
    assert_int_equal(gnutls_x509_privkey_export2_pkcs8(k, GNUTLS_X509_FMT_PEM, NULL,
                                                       GNUTLS_PKCS_PLAIN, &out),
                     0);
  else
    assert_int_equal(gnutls_x509_privkey_export2(k, GNUTLS_X509_FMT_PEM, &out), 0);
  char *pem = strndup((const char *)out.data, out.size);
  gnutls_free(out.data);
  gnutls_x509_privkey_deinit(k);
  return pem;
}

static void b64url_decode(const char *s, size_t n, unsigned char *out, size_t cap, size_t *len) {
  assert_int_equal(sodium_base642bin(out, cap, s, n, NULL, len, NULL,
                                     sodium_base64_VARIANT_URLSAFE_NO_PADDING),
                   0);
}

static void test_es256_token_is_rs_and_verifies(void **state) {
  (void)state;
  char *pem = make_key(GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), true);
  gnutls_privkey_t key = NULL;
  char err[400];
  assert_int_equal(push_es256_key_load(pem, &key, err, sizeof err), 0);
  char *jwt = NULL;
  assert_int_equal(push_jwt_es256(key, "ABC123DEFG", "TEAM123456", 1764672000, &jwt), 0);
  const char *d1 = strchr(jwt, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
  assert_non_null(d2);
  unsigned char buf[256];
  size_t n = 0;
  b64url_decode(jwt, (size_t)(d1 - jwt), buf, sizeof buf, &n);
  assert_memory_equal(buf, "{\"alg\":\"ES256\",\"kid\":\"ABC123DEFG\"}", n);
  b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), buf, sizeof buf, &n);
  assert_memory_equal(buf, "{\"iss\":\"TEAM123456\",\"iat\":1764672000}", n);
  unsigned char rs[128];
  size_t rslen = 0;
  b64url_decode(d2 + 1, strlen(d2 + 1), rs, sizeof rs, &rslen);
  assert_int_equal(rslen, 64); /* r||s, never DER */
  /* Verify: back to DER for GnuTLS, with the key's public half. */
  gnutls_datum_t r = {.data = rs, .size = 32}, s = {.data = rs + 32, .size = 32}, der = {0};
  assert_int_equal(gnutls_encode_rs_value(&der, &r, &s), 0);
  gnutls_pubkey_t pub;
  assert_int_equal(gnutls_pubkey_init(&pub), 0);
  assert_int_equal(gnutls_pubkey_import_privkey(pub, key, 0, 0), 0);
  gnutls_datum_t data = {.data = (unsigned char *)jwt, .size = (unsigned)(d2 - jwt)};
  assert_true(gnutls_pubkey_verify_data2(pub, GNUTLS_SIGN_ECDSA_SHA256, 0, &data, &der) >= 0);
  /* One bit off and it does not. */
  jwt[2] ^= 1;
  assert_true(gnutls_pubkey_verify_data2(pub, GNUTLS_SIGN_ECDSA_SHA256, 0, &data, &der) < 0);
  gnutls_free(der.data);
  gnutls_pubkey_deinit(pub);
  gnutls_privkey_deinit(key);
  free(jwt);
  free(pem);
}

static void test_der_to_rs_pads_and_strips(void **state) {
  (void)state;
  /* r with DER's sign byte (33 bytes), s short (31 bytes). */
  unsigned char r[33], s[31];
  r[0] = 0;
  memset(r + 1, 0x81, 32);
  memset(s, 0x22, sizeof s);
  gnutls_datum_t dr = {.data = r, .size = sizeof r}, ds = {.data = s, .size = sizeof s}, der;
  assert_int_equal(gnutls_encode_rs_value(&der, &dr, &ds), 0);
  unsigned char rs[64];
  assert_int_equal(push_ecdsa_der_to_rs(der.data, der.size, rs), 0);
  for (int i = 0; i < 32; i++) assert_int_equal(rs[i], 0x81);
  assert_int_equal(rs[32], 0);
  for (int i = 33; i < 64; i++) assert_int_equal(rs[i], 0x22);
  gnutls_free(der.data);
  const unsigned char junk[] = {0x30, 0x02, 0x01};
  assert_int_equal(push_ecdsa_der_to_rs(junk, sizeof junk, rs), -EINVAL);
}

static void test_apns_key_refusals(void **state) {
  (void)state;
  struct {
    char *pem;
    const char *want;
  } cases[] = {
      {make_key(GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), false),
       "PKCS#8"},
      {make_key(GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP384R1), true), "P-256"},
      {make_key(GNUTLS_PK_RSA, 2048, true), "EC P-256"},
      {strdup("hello"), "PEM"},
      {strdup("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), "PKCS#8"},
      {strdup(""), "not set"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    gnutls_privkey_t k = NULL;
    char err[400] = "";
    assert_int_equal(push_es256_key_load(cases[i].pem, &k, err, sizeof err), -EINVAL);
    assert_null(k);
    if (!strstr(err, cases[i].want)) fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err, cases[i].want);
    free(cases[i].pem);
  }
}

static char *account_json(const char *token_uri, bool with_key) {
  char *pem = make_key(GNUTLS_PK_RSA, 2048, true);
  json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "type", "service_account", "project_id",
                        "atrium-test", "client_email", "push@atrium-test.iam.gserviceaccount.com",
                        "token_uri", token_uri);
  if (with_key) json_object_set_new(o, "private_key", json_string(pem));
  char *s = json_dumps(o, JSON_INDENT(2));
  json_decref(o);
  free(pem);
  return s;
}

static void test_service_account(void **state) {
  (void)state;
  push_fcm_account_t a;
  char err[400];
  char *ok = account_json("https://oauth2.googleapis.com/token", true);
  assert_int_equal(push_fcm_account_parse(ok, &a, err, sizeof err), 0);
  assert_string_equal(a.project_id, "atrium-test");
  assert_string_equal(a.token_uri, "https://oauth2.googleapis.com/token");
  char *jwt = NULL;
  assert_int_equal(push_jwt_rs256(a.key, &a, 1764672000, &jwt), 0);
  const char *d1 = strchr(jwt, '.'), *d2 = strchr(d1 + 1, '.');
  unsigned char buf[1024];
  size_t n;
  b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), buf, sizeof buf, &n);
  json_t *claims = json_loadb((const char *)buf, n, 0, NULL);
  assert_string_equal(json_string_value(json_object_get(claims, "aud")), a.token_uri);
  assert_int_equal(json_integer_value(json_object_get(claims, "exp")), 1764672000 + 3600);
  json_decref(claims);
  b64url_decode(d2 + 1, strlen(d2 + 1), buf, sizeof buf, &n);
  assert_int_equal(n, 256); /* RSA-2048 */
  free(jwt);
  push_fcm_account_clear(&a);
  free(ok);

  char *nokey = account_json("https://oauth2.googleapis.com/token", false);
  assert_int_equal(push_fcm_account_parse(nokey, &a, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "private_key"));
  push_fcm_account_clear(&a);
  free(nokey);
  char *plain = account_json("http://oauth2.googleapis.com/token", true);
  assert_int_equal(push_fcm_account_parse(plain, &a, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "https"));
  push_fcm_account_clear(&a);
  free(plain);
  assert_int_equal(push_fcm_account_parse("[1]", &a, err, sizeof err), -EINVAL);
  assert_int_equal(push_fcm_account_parse("{\"type\":\"authorized_user\"}", &a, err, sizeof err),
                   -EINVAL);
  assert_non_null(strstr(err, "service-account"));
}

static store_push_t row(const char *kind, const char *payload) {
  return (store_push_t){.id = 77, .user_id = 1, .device_id = "d", .platform = "ios",
                        .push_token = "tok", .kind = kind, .ref_id = 5, .peer_id = 2,
                        .payload = payload, .apns_id = "u", .collapse_id = "m5",
                        .push_type = "alert", .priority = 10, .created_ms = 1000,
                        .expires_ms = 1000 + 86400000};
}

static void test_bodies_and_the_size_limit(void **state) {
  (void)state;
  char *out = NULL;
  size_t len = 0;
  store_push_t p = row("message", "{\"kind\":\"message\"}");
  assert_int_equal(push_body(PUSH_APNS, &p, "", 1000, &out, &len), 0);
  json_t *doc = json_loads(out, 0, NULL);
  assert_int_equal(json_integer_value(json_object_get(json_object_get(doc, "atrium"), "id")), 77);
  assert_string_equal(json_string_value(json_object_get(
                          json_object_get(json_object_get(doc, "aps"), "alert"), "title")),
                      "New message");
  json_decref(doc);
  free(out);
  assert_int_equal(push_body(PUSH_FCM, &p, "", 1000, &out, &len), 0);
  assert_non_null(strstr(out, "\"ttl\":\"86400s\""));
  assert_null(strstr(out, "\"notification\""));
  free(out);
  /* 10,000 bytes of text needing escapes: cut at a character, under 4 KiB. */
  size_t n = 0;
  char *text = malloc(10001);
  while (n + 3 <= 10000) {
    memcpy(text + n, "\xC3\xA9\"", 3);
    n += 3;
  }
  text[n] = '\0';
  json_t *pl = json_pack("{s:s, s:s, s:s}", "kind", "message", "from", "alice", "text", text);
  char *pls = json_dumps(pl, JSON_COMPACT);
  json_decref(pl);
  p = row("message", pls);
  for (int prov = 0; prov < PUSH_PROVIDER_COUNT; prov++) {
    assert_int_equal(push_body((push_provider_t)prov, &p, "app.", 1000, &out, &len), 0);
    assert_true(len <= 4096);
    assert_int_equal(strlen(out), len);
    doc = json_loads(out, 0, NULL);
    assert_non_null(doc); /* valid JSON, so valid UTF-8 */
    assert_non_null(strstr(out, "\xE2\x80\xA6"));
    json_decref(doc);
    free(out);
  }
  free(pls);
  free(text);
  /* The gateway: the platform appended to an app id ending in a dot. */
  p = row("clear", "{\"kind\":\"clear\",\"peer_id\":2,\"upto\":9}");
  assert_int_equal(push_body(PUSH_GATEWAY, &p, "com.example.", 1000, &out, &len), 0);
  assert_non_null(strstr(out, "\"app_id\":\"com.example.ios\""));
  assert_non_null(strstr(out, "\"unread\":0"));
  assert_null(strstr(out, "event_id"));
  free(out);
}

static void test_answer_reasons(void **state) {
  (void)state;
  char buf[64];
  int64_t ts = -1;
  const char *b = "{\"reason\":\"Unregistered\",\"timestamp\":1764672000123}";
  assert_string_equal(push_answer_reason(b, strlen(b), buf, sizeof buf, &ts), "Unregistered");
  assert_int_equal(ts, 1764672000123);
  b = "{\"error\":{\"code\":404,\"status\":\"NOT_FOUND\",\"details\":[{\"@type\":\"x\","
      "\"errorCode\":\"UNREGISTERED\"}]}}";
  assert_string_equal(push_answer_reason(b, strlen(b), buf, sizeof buf, NULL), "UNREGISTERED");
  b = "{\"error\":{\"code\":503,\"status\":\"UNAVAILABLE\"}}";
  assert_string_equal(push_answer_reason(b, strlen(b), buf, sizeof buf, NULL), "UNAVAILABLE");
  b = "{\"error\":\"invalid_grant\",\"error_description\":\"x\"}";
  assert_string_equal(push_answer_reason(b, strlen(b), buf, sizeof buf, NULL), "invalid_grant");
  b = "<html>Service Unavailable</html>";
  assert_null(push_answer_reason(b, strlen(b), buf, sizeof buf, &ts));
  assert_int_equal(ts, 0);
  b = "{\"reason\":\"a\\\"b c\\n\"}";
  assert_string_equal(push_answer_reason(b, strlen(b), buf, sizeof buf, NULL), "a_b_c_");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_es256_token_is_rs_and_verifies),
      cmocka_unit_test(test_der_to_rs_pads_and_strips),
      cmocka_unit_test(test_apns_key_refusals),
      cmocka_unit_test(test_service_account),
      cmocka_unit_test(test_bodies_and_the_size_limit),
      cmocka_unit_test(test_answer_reasons),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
