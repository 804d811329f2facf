/* Inside the push module: the provider credentials and their JWTs, the
 * payloads, the sender thread and the REST handlers. */
#pragma once

#include <gnutls/abstract.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/settings.h"
#include "http/http.h"
#include "store/store.h"

/* ---- helpers (util.c) -------------------------------------------------------------------- */

int64_t push_wall_ms(void); /* unix milliseconds */
/* mobile.push_gateway_url, with /_matrix/push/v1/notify added to a bare URL. */
void push_gateway_url(const settings_snapshot_t *snap, char *out, size_t len);
/* 422 naming the field. */
enum MHD_Result push_reply_field(http_request_t *req, const char *title, const char *key,
                                 const char *message);

/* ---- credentials (creds.c) ---------------------------------------------------------------- */

/* The .p8 key: PKCS#8 PEM of an EC P-256 private key. 0, or -EINVAL with a
 * sentence in err (not PEM, not PKCS#8, not EC, another curve). */
int push_es256_key_load(const char *pem, gnutls_privkey_t *out, char *err, size_t errlen);

typedef struct push_fcm_account {
  char project_id[128];
  char client_email[320];
  char token_uri[512];
  gnutls_privkey_t key; /* RSA */
} push_fcm_account_t;

/* A service-account key file (JSON). 0, or -EINVAL with a sentence. */
int push_fcm_account_parse(const char *json, push_fcm_account_t *out, char *err, size_t errlen);
void push_fcm_account_clear(push_fcm_account_t *a);

/* The APNs provider token: header {"alg":"ES256","kid"}, claims {"iss": team,
 * "iat"}, the signature r||s as 64 bytes (RFC 7518 3.4). *out malloc'd. */
int push_jwt_es256(gnutls_privkey_t key, const char *kid, const char *team, int64_t iat,
                   char **out);
/* The OAuth2 assertion for FCM: RS256 over {"iss", "scope", "aud", "iat", "exp"}. */
int push_jwt_rs256(gnutls_privkey_t key, const push_fcm_account_t *a, int64_t iat, char **out);
/* ECDSA's DER SEQUENCE {r, s} as r||s, each left-padded to 32 bytes. */
int push_ecdsa_der_to_rs(const unsigned char *der, size_t len, unsigned char rs[64]);
/* RFC 4648 base64url without padding; *out malloc'd. */
int push_b64url(const void *data, size_t len, char **out);

/* ---- payloads (payload.c) ------------------------------------------------------------------ */

#define PUSH_APNS_PAYLOAD_MAX 4096
#define PUSH_FCM_PAYLOAD_MAX 4096

typedef enum push_provider {
  PUSH_APNS,
  PUSH_FCM,
  PUSH_GATEWAY,
  PUSH_PROVIDER_COUNT,
} push_provider_t;

const char *push_provider_name(push_provider_t p);

/* The body of a notification for a provider, from an outbox row (its
 * payload is at the content level of its enqueue). Text that would take a
 * body over the provider's limit is cut (at a UTF-8 boundary, with "…"),
 * never sent too long. *out malloc'd. `gateway_app_id` for the gateway. */
int push_body(push_provider_t provider, const store_push_t *p, const char *gateway_app_id,
              int64_t now_ms, char **out, size_t *len);

/* What a provider's error body says: APNs {"reason"}, FCM's errorCode (or
 * its status), OAuth2's "error"; into buf. NULL when the body is not a JSON
 * object (*timestamp, may be NULL, gets APNs' 410 "timestamp", 0 if none). */
const char *push_answer_reason(const char *body, size_t len, char *buf, size_t buflen,
                               int64_t *timestamp);

/* ---- enqueue (hooks.c) ---------------------------------------------------------------------- */

int push_hooks_register(store_t *store);
/* A test notification to every device of `user_id` with a token, in its
 * own transaction; *queued how many. */
int push_enqueue_test(store_t *store, int64_t user_id, int64_t *queued);

/* ---- the sender (sender.c) -------------------------------------------------------------------- */

int push_sender_start(store_t *store, char *err, size_t errlen);
void push_sender_stop(void);
void push_sender_wake(void);

typedef struct push_counters {
  uint64_t sent[PUSH_PROVIDER_COUNT];
  uint64_t failed[PUSH_PROVIDER_COUNT];
  uint64_t retried, refused_streams, pruned, expired;
  int64_t apns_token_age_s; /* -1: none */
  int64_t fcm_token_age_s;
  uint64_t stream_window; /* streams the sender may keep open now */
} push_counters_t;
void push_counters(push_counters_t *out);
/* Failures by reason: "# TYPE" lines and samples. */
void push_write_reason_metrics(FILE *f);

/* The sender's view for status(): a warning or an error sentence, "" when none. */
void push_sender_status(char *warning, size_t wlen, char *error, size_t elen, int64_t *error_at);

/* ---- the staged test (test.c) ---------------------------------------------------------------- */

/* POST /api/v1/push/test: {"provider"?: "apns"|"fcm"|"gateway", "token"?: a device token}. */
enum MHD_Result push_api_test(http_request_t *req);

/* ---- REST (api.c) ------------------------------------------------------------------------------ */

enum MHD_Result push_api_device_put(http_request_t *req);
enum MHD_Result push_api_notification(http_request_t *req);

/* The endpoints of the providers; ATRIUM_PUSH_APNS_URL and
 * ATRIUM_PUSH_FCM_URL replace the hosts for the tests' stand-ins. */
void push_endpoints(const settings_snapshot_t *snap, char *apns, size_t alen, char *fcm,
                    size_t flen);
