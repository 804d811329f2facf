/* "Test connection": contacts the license server (license.server_url, the
 * saved value, never one from the request) with proxy values that may not be
 * saved yet, and says in one sentence which hop failed.
 *
 * Nothing is saved and nothing is audited. The module does not log; the
 * handler logs the stage and the time, never the values. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "mod/outbound/outbound.h"
#include "conf/settings.h"

/* The whole test, from the first DNS lookup to the last byte. */
#define PROXY_TEST_TIMEOUT_MS 10000L

typedef struct proxy_test_result {
  bool ok;
  const char *stage;  /* "ok", "proxy_resolve", ..., "server_http" (static) */
  char message[768];  /* one or two actionable sentences */
  long http_status;   /* the status worth showing (server's or the proxy's 407/403); 0: none */
  long elapsed_ms;
  bool via_proxy; /* the request went to the proxy (enabled and not bypassed) */
} proxy_test_result_t;

/* The proxy values to test: the saved proxy.* values of snap with the
 * request's proxy.* values on top. body (may be NULL) is an object; a key
 * outside proxy.*, an unknown key or an invalid value is an error naming the
 * key, and so is a violated cross-field rule (host required when the proxy is
 * enabled, user name when authentication is required). proxy.password left
 * out or given as {"set": true} means the saved password; null, "" or
 * {"set": false} mean none. null for another key means its default.
 *
 * Returns 0 with *values (new object of every proxy.* key, the password in
 * plain text or null), -EINVAL with *errors (new array of {"key",
 * "message"}), -EBADMSG when body is not an object, or -ENOMEM. */
int proxy_test_values(const settings_snapshot_t *snap, const json_t *body, json_t **values,
                      json_t **errors);

/* Runs the test against license_url with the values of proxy_test_values.
 * timeout_ms bounds the whole test (0: PROXY_TEST_TIMEOUT_MS). Returns 0 when
 * the test ran, whatever its outcome (see out->ok), or -ENOMEM / -EINVAL. */
int proxy_test_run(const json_t *values, const char *license_url, long timeout_ms,
                   proxy_test_result_t *out);

/* Turns a finished request into stage, message and status (exported for the
 * unit tests). */
void proxy_test_explain(const outbound_response_t *resp, const outbound_proxy_t *proxy,
                        const char *license_url, long timeout_ms, proxy_test_result_t *out);
