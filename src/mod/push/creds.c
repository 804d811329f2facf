/* Provider credentials and the JWTs made from them, signed with GnuTLS.
 * ES256 signatures are sent as r||s (64 bytes), as JWS requires: GnuTLS
 * gives DER, and a DER signature in a JWT (what some JWT libraries send)
 * is refused by APNs. */
#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mod/push/internal.h"

int push_b64url(const void *data, size_t len, char **out) {
  size_t cap = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  char *s = malloc(cap);
  if (!s) return -ENOMEM;
  sodium_bin2base64(s, cap, data, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  *out = s;
  return 0;
}

int push_ecdsa_der_to_rs(const unsigned char *der, size_t len, unsigned char rs[64]) {
  gnutls_datum_t sig = {.data = (unsigned char *)der, .size = (unsigned)len}, r = {0}, s = {0};
  if (gnutls_decode_rs_value(&sig, &r, &s) < 0) return -EINVAL;
  int ret = 0;
  const gnutls_datum_t *parts[2] = {&r, &s};
  memset(rs, 0, 64);
  for (int i = 0; i < 2 && ret == 0; i++) {
    const unsigned char *p = parts[i]->data;
    size_t n = parts[i]->size;
    while (n > 32 && *p == 0) p++, n--; /* DER's sign byte */
    if (n > 32) ret = -EINVAL;
    else memcpy(rs + i * 32 + (32 - n), p, n);
  }
  gnutls_free(r.data);
  gnutls_free(s.data);
  return ret;
}

/* A PKCS#8 PEM private key of the wanted algorithm. */
static int load_pkcs8(const char *pem, gnutls_pk_algorithm_t want, gnutls_privkey_t *out,
                      gnutls_x509_privkey_t *x509, char *err, size_t errlen) {
  if (!pem || !*pem) {
    snprintf(err, errlen, "Is not set.");
    return -EINVAL;
  }
  if (!strstr(pem, "-----BEGIN PRIVATE KEY-----")) {
    if (strstr(pem, "-----BEGIN EC PRIVATE KEY-----") ||
        strstr(pem, "-----BEGIN RSA PRIVATE KEY-----"))
      snprintf(err, errlen, "Is a key in the older SEC1/PKCS#1 form; it must be PKCS#8 "
                            "(\"BEGIN PRIVATE KEY\"), as the provider's download is. Convert it "
                            "with openssl pkcs8 -topk8 -nocrypt.");
    else if (strstr(pem, "-----BEGIN ENCRYPTED PRIVATE KEY-----"))
      snprintf(err, errlen, "Is an encrypted PKCS#8 key; paste the unencrypted key as "
                            "downloaded.");
    else
      snprintf(err, errlen, "Is not a PEM private key: paste the whole file, from "
                            "\"-----BEGIN PRIVATE KEY-----\" to \"-----END PRIVATE KEY-----\".");
    return -EINVAL;
  }
  gnutls_x509_privkey_t k;
  if (gnutls_x509_privkey_init(&k) < 0) return -ENOMEM;
  gnutls_datum_t d = {.data = (unsigned char *)pem, .size = (unsigned)strlen(pem)};
  int r = gnutls_x509_privkey_import_pkcs8(k, &d, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN);
  if (r < 0) {
    snprintf(err, errlen, "Is not a readable PKCS#8 private key (%s).", gnutls_strerror(r));
    gnutls_x509_privkey_deinit(k);
    return -EINVAL;
  }
  int alg = gnutls_x509_privkey_get_pk_algorithm2(k, NULL);
  if (alg != (int)want) {
    snprintf(err, errlen, "Is a %s key; it must be %s.",
             gnutls_pk_algorithm_get_name((gnutls_pk_algorithm_t)alg),
             want == GNUTLS_PK_ECDSA ? "an EC P-256 key (APNs .p8 keys are)"
                                     : "an RSA key (service-account keys are)");
    gnutls_x509_privkey_deinit(k);
    return -EINVAL;
  }
  gnutls_privkey_t pk;
  if (gnutls_privkey_init(&pk) < 0) {
    gnutls_x509_privkey_deinit(k);
    return -ENOMEM;
  }
  if ((r = gnutls_privkey_import_x509(pk, k, GNUTLS_PRIVKEY_IMPORT_COPY)) < 0) {
    snprintf(err, errlen, "Cannot be used for signing (%s).", gnutls_strerror(r));
    gnutls_privkey_deinit(pk);
    gnutls_x509_privkey_deinit(k);
    return -EINVAL;
  }
  *out = pk;
  if (x509)
    *x509 = k;
  else
    gnutls_x509_privkey_deinit(k);
  return 0;
}

int push_es256_key_load(const char *pem, gnutls_privkey_t *out, char *err, size_t errlen) {
  gnutls_x509_privkey_t x = NULL;
  int r = load_pkcs8(pem, GNUTLS_PK_ECDSA, out, &x, err, errlen);
  if (r < 0) return r;
  gnutls_ecc_curve_t curve = GNUTLS_ECC_CURVE_INVALID;
  gnutls_datum_t px = {0}, py = {0}, pk = {0};
  if (gnutls_x509_privkey_export_ecc_raw(x, &curve, &px, &py, &pk) < 0)
    curve = GNUTLS_ECC_CURVE_INVALID;
  gnutls_free(px.data);
  gnutls_free(py.data);
  if (pk.data) {
    sodium_memzero(pk.data, pk.size);
    gnutls_free(pk.data);
  }
  gnutls_x509_privkey_deinit(x);
  if (curve != GNUTLS_ECC_CURVE_SECP256R1) {
    snprintf(err, errlen, "Is an EC key on the curve %s; APNs keys are on P-256 (secp256r1), "
                          "as ES256 requires.",
             curve == GNUTLS_ECC_CURVE_INVALID ? "(unknown)" : gnutls_ecc_curve_get_name(curve));
    gnutls_privkey_deinit(*out);
    *out = NULL;
    return -EINVAL;
  }
  return 0;
}

static void copy_field(char *dst, size_t len, const json_t *v) {
  snprintf(dst, len, "%s", json_is_string(v) ? json_string_value(v) : "");
}

int push_fcm_account_parse(const char *text, push_fcm_account_t *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  json_error_t jerr;
  json_t *doc = json_loads(text ? text : "", 0, &jerr);
  if (!json_is_object(doc)) {
    snprintf(err, errlen, "Is not the JSON of a service-account key file (%s at line %d).",
             doc ? "not an object" : jerr.text, jerr.line);
    json_decref(doc);
    return -EINVAL;
  }
  const char *type = json_string_value(json_object_get(doc, "type"));
  if (type && strcmp(type, "service_account") != 0) {
    snprintf(err, errlen, "Is a key file of type \"%.64s\"; FCM needs a service-account key "
                          "(\"type\": \"service_account\").",
             type);
    json_decref(doc);
    return -EINVAL;
  }
  static const char *const need[] = {"project_id", "client_email", "private_key", "token_uri"};
  for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
    if (!json_is_string(json_object_get(doc, need[i])) ||
        !json_string_length(json_object_get(doc, need[i]))) {
      snprintf(err, errlen, "Lacks \"%s\": paste the whole key file as downloaded from the "
                            "Firebase console.",
               need[i]);
      json_decref(doc);
      return -EINVAL;
    }
  copy_field(out->project_id, sizeof out->project_id, json_object_get(doc, "project_id"));
  copy_field(out->client_email, sizeof out->client_email, json_object_get(doc, "client_email"));
  copy_field(out->token_uri, sizeof out->token_uri, json_object_get(doc, "token_uri"));
  if (strncmp(out->token_uri, "https://", 8) != 0) {
    snprintf(err, errlen, "Has a token_uri that is not https (%.200s): the OAuth2 token must be "
                          "fetched over an encrypted connection.",
             out->token_uri);
    json_decref(doc);
    return -EINVAL;
  }
  char kerr[256];
  int r = load_pkcs8(json_string_value(json_object_get(doc, "private_key")), GNUTLS_PK_RSA,
                     &out->key, NULL, kerr, sizeof kerr);
  json_decref(doc);
  if (r < 0) {
    snprintf(err, errlen, "Has a private_key that %s%s", kerr[0] == 'I' ? "i" : "", kerr + 1);
    return r;
  }
  return 0;
}

void push_fcm_account_clear(push_fcm_account_t *a) {
  if (a->key) gnutls_privkey_deinit(a->key);
  memset(a, 0, sizeof *a);
}

/* header.claims.signature, the signature from sign(). */
static int jwt_compose(gnutls_privkey_t key, bool ecdsa, const char *header, const char *claims,
                       char **out) {
  char *h = NULL, *c = NULL, *sig64 = NULL;
  int r = push_b64url(header, strlen(header), &h);
  if (r == 0) r = push_b64url(claims, strlen(claims), &c);
  char *input = NULL;
  if (r == 0 && asprintf(&input, "%s.%s", h, c) < 0) {
    input = NULL;
    r = -ENOMEM;
  }
  if (r == 0) {
    gnutls_datum_t data = {.data = (unsigned char *)input, .size = (unsigned)strlen(input)},
                   sig = {0};
    int g = gnutls_privkey_sign_data2(key, ecdsa ? GNUTLS_SIGN_ECDSA_SHA256 : GNUTLS_SIGN_RSA_SHA256,
                                      0, &data, &sig);
    if (g < 0) {
      r = -EIO;
    } else if (ecdsa) {
      unsigned char rs[64];
      r = push_ecdsa_der_to_rs(sig.data, sig.size, rs);
      if (r == 0) r = push_b64url(rs, sizeof rs, &sig64);
    } else {
      r = push_b64url(sig.data, sig.size, &sig64);
    }
    gnutls_free(sig.data);
  }
  if (r == 0 && asprintf(out, "%s.%s", input, sig64) < 0) r = -ENOMEM;
  free(h);
  free(c);
  free(input);
  free(sig64);
  return r;
}

int push_jwt_es256(gnutls_privkey_t key, const char *kid, const char *team, int64_t iat,
                   char **out) {
  char header[96], claims[96];
  snprintf(header, sizeof header, "{\"alg\":\"ES256\",\"kid\":\"%s\"}", kid);
  snprintf(claims, sizeof claims, "{\"iss\":\"%s\",\"iat\":%lld}", team, (long long)iat);
  return jwt_compose(key, true, header, claims, out);
}

int push_jwt_rs256(gnutls_privkey_t key, const push_fcm_account_t *a, int64_t iat, char **out) {
  json_t *c = json_pack("{s:s, s:s, s:s, s:I, s:I}", "iss", a->client_email, "scope",
                        "https://www.googleapis.com/auth/firebase.messaging", "aud", a->token_uri,
                        "iat", (json_int_t)iat, "exp", (json_int_t)(iat + 3600));
  char *claims = c ? json_dumps(c, JSON_COMPACT) : NULL;
  json_decref(c);
  if (!claims) return -ENOMEM;
  int r = jwt_compose(key, false, "{\"alg\":\"RS256\",\"typ\":\"JWT\"}", claims, out);
  free(claims);
  return r;
}
