/* libFuzzer target for src/validate.c: every validator sees the input as a
 * string, and the list validators see it as JSON when it parses. Besides
 * crashes and leaks it checks the contract: success yields an output, failure
 * yields a message, and normalising a normalised value changes nothing. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const validate_url_rule_t url_rules[] = {
    {.schemes = URL_SCHEME_HTTPS, .host_fqdn = true, .why_https = "an encrypted connection."},
    {.schemes = URL_SCHEME_HTTP | URL_SCHEME_HTTPS, .base = true},
    {.schemes = URL_SCHEME_HTTP | URL_SCHEME_HTTPS},
    {.schemes = URL_SCHEME_LDAP | URL_SCHEME_LDAPS, .no_path = true},
    {.schemes = URL_SCHEME_HTTP | URL_SCHEME_HTTPS | URL_SCHEME_LDAP | URL_SCHEME_LDAPS},
};

static void check_result(int rc, const char *out, const validate_error_t *err) {
  if (rc == 0) {
    if (!out)
      abort();
  } else if (rc != -EINVAL || out || err->message[0] == '\0' ||
             strnlen(err->message, sizeof err->message) == sizeof err->message) {
    abort();
  }
}

typedef int (*string_validator_t)(const char *in, const void *arg, char **out,
                                  validate_error_t *err);

static int host_fn(const char *in, const void *arg, char **out, validate_error_t *err) {
  return validate_host(in, *(const unsigned *)arg, out, err);
}

static int url_fn(const char *in, const void *arg, char **out, validate_error_t *err) {
  return validate_url(in, arg, out, err);
}

static int qos_url_fn(const char *in, const void *arg, char **out, validate_error_t *err) {
  return validate_qos_url(in, out, err);
}

static int bypass_fn(const char *in, const void *arg, char **out, validate_error_t *err) {
  return validate_bypass_entry(in, out, err);
}

/* Runs fn on in and, when it succeeds, on its own output, which must come back
 * unchanged: the stored value is re-validated on every load. */
static void run(string_validator_t fn, const char *in, const void *arg) {
  char *out = NULL;
  validate_error_t err = {.field = ""};
  int rc = fn(in, arg, &out, &err);
  check_result(rc, out, &err);
  if (rc != 0)
    return;
  char *again = NULL;
  rc = fn(out, arg, &again, &err);
  if (rc != 0 || strcmp(out, again) != 0) {
    fprintf(stderr, "not idempotent: \"%s\" -> \"%s\" -> %s\n", in, out,
            rc == 0 ? again : err.message);
    abort();
  }
  free(again);
  free(out);
}

/* A published URL: validated, then its path checked for an nginx location.
 * An accepted path must hold only the allowed characters and no "//", "/./"
 * or "/../", whatever the URL parser made of the input. */
static void run_proxy_path(const char *in) {
  char *out = NULL;
  validate_error_t err = {.field = ""};
  if (validate_url(in, &url_rules[2], &out, &err) != 0) return;
  int rc = validate_proxy_path(out, "um.url", &err);
  if (rc != 0 && (rc != -EINVAL || err.message[0] == '\0')) abort();
  if (rc == 0) {
    const char *p = strstr(out, "://");
    if (!p) abort();
    p += 3 + strcspn(p + 3, "/?#");
    size_t n = strcspn(p, "?#");
    for (size_t i = 0; i < n; i++)
      if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~/", p[i]))
        abort();
    char *path = strndup(p, n);
    if (path && (strstr(path, "//") || strstr(path, "/./") || strstr(path, "/../"))) abort();
    free(path);
  }
  free(out);
}

static void run_json(int (*fn)(const json_t *, json_t **, validate_error_t *), const json_t *in) {
  json_t *out = NULL;
  validate_error_t err = {.field = ""};
  int rc = fn(in, &out, &err);
  if (rc == 0) {
    json_t *again = NULL;
    if (!out || fn(out, &again, &err) != 0 || !json_equal(out, again))
      abort();
    json_decref(again);
  } else if (rc != -EINVAL || out || err.message[0] == '\0') {
    abort();
  }
  json_decref(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* Longer inputs only repeat what the length limits already refuse. */
  if (size > 4 * VALIDATE_URL_MAX)
    return 0;
  char *s = malloc(size + 1);
  if (!s)
    return 0;
  memcpy(s, data, size);
  s[size] = '\0';

  static const unsigned host_flags[] = {0, HOST_TWO_LABELS, HOST_ALLOW_IP,
                                        HOST_TWO_LABELS | HOST_ALLOW_IP};
  for (size_t i = 0; i < sizeof host_flags / sizeof host_flags[0]; i++)
    run(host_fn, s, &host_flags[i]);
  for (size_t i = 0; i < sizeof url_rules / sizeof url_rules[0]; i++)
    run(url_fn, s, &url_rules[i]);
  run(qos_url_fn, s, NULL);
  run(bypass_fn, s, NULL);
  run_proxy_path(s);
  (void)validate_is_ip_literal(s);

  json_t *json = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
  if (json) {
    run_json(validate_qos_policies, json);
    run_json(validate_bypass_list, json);
    json_decref(json);
  }
  free(s);
  return 0;
}
