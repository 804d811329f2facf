/* The staged push test: one request to the provider of the saved settings,
 * through the route real notifications take (the proxy when
 * mobile.push_use_proxy says so), reported hop by hop — proxy, CONNECT,
 * TLS, ALPN h2, token accepted, the provider's answer — with one sentence
 * for the first hop that failed. Without a device token the request
 * carries a token that cannot exist, so that a provider which checked our
 * credentials answers "bad device token": that answer is the success.
 * With {"user": name} it queues a test notification to that user's devices
 * instead. */
#include <curl/curl.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/log.h"
#include "mod/outbound/outbound.h"
#include "mod/push/internal.h"

#define TEST_TIMEOUT_MS 10000L
#define TEST_TOKEN_APNS "0000000000000000000000000000000000000000000000000000000000000000"
#define TEST_TOKEN_FCM "atrium-push-test-token"

static atomic_bool running;

typedef struct probe {
  push_provider_t provider;
  char token[STORE_PUSH_TOKEN_MAX + 1];
  bool own_token; /* a device's real token from the request */
  json_t *stages;
  bool ok;
  char message[1024];
  long elapsed_ms;
  /* the saved configuration */
  char apns_base[512], fcm_base[512], gateway_url[1024], gateway_app_id[256], topic[160];
  char key_id[16], team_id[16];
  char *apns_key_pem, *fcm_json;
  outbound_proxy_t proxy;
} probe_t;

static void stage(probe_t *p, const char *name, bool ok, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void stage(probe_t *p, const char *name, bool ok, const char *fmt, ...) {
  char detail[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof detail, fmt, ap);
  va_end(ap);
  json_array_append_new(p->stages, json_pack("{s:s, s:b, s:s}", "stage", name, "ok", ok,
                                             "detail", detail));
  if (!ok && p->ok) {
    p->ok = false;
    snprintf(p->message, sizeof p->message, "%s", detail);
  }
}

typedef struct reply {
  char *body;
  size_t len;
} reply_t;

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud) {
  reply_t *r = ud;
  size_t n = size * nmemb;
  if (r->len + n > 65536) return 0;
  char *b = realloc(r->body, r->len + n + 1);
  if (!b) return 0;
  memcpy(b + r->len, data, n);
  r->len += n;
  b[r->len] = '\0';
  r->body = b;
  return n;
}

typedef struct exchange {
  CURLcode rc;
  long status, connect, version;
  double appconnect;
  bool via_proxy;
  reply_t reply;
} exchange_t;

static void exchange(probe_t *p, const char *url, struct curl_slist *headers, const char *body,
                     exchange_t *x) {
  memset(x, 0, sizeof *x);
  CURL *h = curl_easy_init();
  if (!h || outbound_easy_setup(h, url, &p->proxy, &x->via_proxy) < 0) {
    x->rc = CURLE_FAILED_INIT;
    if (h) curl_easy_cleanup(h);
    return;
  }
  curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, TEST_TIMEOUT_MS);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, TEST_TIMEOUT_MS);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &x->reply);
  x->rc = curl_easy_perform(h);
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &x->status);
  curl_easy_getinfo(h, CURLINFO_HTTP_CONNECTCODE, &x->connect);
  curl_easy_getinfo(h, CURLINFO_HTTP_VERSION, &x->version);
  curl_easy_getinfo(h, CURLINFO_APPCONNECT_TIME, &x->appconnect);
  curl_easy_cleanup(h);
}

static const char *reason_of(const reply_t *r, char *buf, size_t len) {
  return push_answer_reason(r->body, r->len, buf, len, NULL);
}

/* The hops below HTTP: proxy and CONNECT, TLS, ALPN. false when one failed. */
static bool transport_stages(probe_t *p, const exchange_t *x, const char *what) {
  outbound_stage_t st = outbound_classify((int)x->rc, x->connect, x->status, x->via_proxy, NULL);
  if (x->via_proxy) {
    if (st == OUTBOUND_STAGE_PROXY_RESOLVE || st == OUTBOUND_STAGE_PROXY_CONNECT ||
        st == OUTBOUND_STAGE_PROXY_TIMEOUT) {
      stage(p, "proxy", false, "The proxy %s:%d cannot be reached (%s): check proxy.host and "
            "proxy.port.", p->proxy.host, p->proxy.port, curl_easy_strerror(x->rc));
      return false;
    }
    stage(p, "proxy", true, "The proxy %s:%d answered.", p->proxy.host, p->proxy.port);
    if (x->connect != 200) {
      stage(p, "connect", false,
            x->connect == 407 ? "The proxy refuses our credentials for CONNECT (407): check "
                                "proxy.username and proxy.password."
                              : "The proxy answered CONNECT to %s with %ld: it does not open a "
                                "tunnel there (its access rules, or it cannot reach it).",
            what, x->connect);
      return false;
    }
    stage(p, "connect", true, "The proxy opened a tunnel to %s.", what);
  } else {
    if (st == OUTBOUND_STAGE_SERVER_RESOLVE || st == OUTBOUND_STAGE_SERVER_CONNECT ||
        st == OUTBOUND_STAGE_SERVER_TIMEOUT) {
      stage(p, "connect", false, "%s cannot be reached directly (%s)%s.", what,
            curl_easy_strerror(x->rc),
            p->proxy.enabled ? "" : "; if the Internet is only reachable through a proxy, turn "
                                    "on mobile.push_use_proxy");
      return false;
    }
    stage(p, "connect", true, "Connected to %s.", what);
  }
  if (st == OUTBOUND_STAGE_TLS || (x->rc != CURLE_OK && x->appconnect <= 0.0)) {
    stage(p, "tls", false, "TLS with %s failed (%s): its certificate is not trusted (see "
          "<CABundle> in atlas.xml) or a middlebox interferes.", what, curl_easy_strerror(x->rc));
    return false;
  }
  stage(p, "tls", true, "TLS with %s is up and its certificate verified.", what);
  if (x->rc != CURLE_OK) {
    stage(p, "answer", false, "%s did not answer: %s.", what, curl_easy_strerror(x->rc));
    return false;
  }
  return true;
}

static void probe_apns(probe_t *p) {
  gnutls_privkey_t key = NULL;
  char err[400];
  if (!p->key_id[0] || !p->team_id[0] || !p->topic[0] || !p->apns_key_pem) {
    stage(p, "config", false, "APNs is not configured: set mobile.apns_key_id, "
          "mobile.apns_team_id, mobile.apns_topic and mobile.apns_key.");
    return;
  }
  if (push_es256_key_load(p->apns_key_pem, &key, err, sizeof err) < 0) {
    stage(p, "config", false, "mobile.apns_key: %s", err);
    return;
  }
  char *jwt = NULL;
  int r = push_jwt_es256(key, p->key_id, p->team_id, time(NULL), &jwt);
  gnutls_privkey_deinit(key);
  if (r < 0) {
    stage(p, "config", false, "The provider token cannot be signed with mobile.apns_key.");
    return;
  }
  stage(p, "config", true, "The provider token is signed (ES256, key %s, team %s).", p->key_id,
        p->team_id);
  char url[8192], auth[1024], topic[256], id[64];
  snprintf(url, sizeof url, "%s/3/device/%s", p->apns_base, p->token);
  snprintf(auth, sizeof auth, "authorization: bearer %s", jwt);
  snprintf(topic, sizeof topic, "apns-topic: %s", p->topic);
  snprintf(id, sizeof id, "apns-id: %s", "00000000-0000-4000-8000-000000000000");
  free(jwt);
  struct curl_slist *hd = NULL;
  hd = curl_slist_append(hd, auth);
  hd = curl_slist_append(hd, topic);
  hd = curl_slist_append(hd, id);
  hd = curl_slist_append(hd, "apns-push-type: alert");
  hd = curl_slist_append(hd, "apns-priority: 10");
  hd = curl_slist_append(hd, "Content-Type: application/json");
  exchange_t x;
  exchange(p, url, hd, "{\"aps\":{\"alert\":{\"title\":\"Test notification\"}}}", &x);
  curl_slist_free_all(hd);
  if (transport_stages(p, &x, "APNs")) {
    if (x.version != CURL_HTTP_VERSION_2_0)
      stage(p, "alpn", false, "APNs answered over HTTP/1.1, not HTTP/2: something between us and "
            "APNs (a TLS-inspecting proxy) removed ALPN h2; APNs speaks HTTP/2 only.");
    else
      stage(p, "alpn", true, "HTTP/2 was negotiated (ALPN h2).");
  }
  if (p->ok) {
    char rb[128];
    const char *reason = reason_of(&x.reply, rb, sizeof rb);
    if (x.status == 403 && reason)
      stage(p, "token", false, "APNs refuses the provider token: %s. Check mobile.apns_key_id, "
            "mobile.apns_team_id and that mobile.apns_key is the key with that ID.", reason);
    else
      stage(p, "token", true, "APNs accepted the provider token.");
    if (p->ok) {
      if (x.status == 200)
        stage(p, "answer", true, "APNs accepted the notification for the device token.");
      else if (!p->own_token && x.status == 400 && reason && strcmp(reason, "BadDeviceToken") == 0)
        stage(p, "answer", true, "APNs checked our credentials and answered BadDeviceToken for "
              "the test's made-up device token, as expected: push notifications can be sent.");
      else if (!reason)
        stage(p, "answer", false, "APNs answered %ld with a body that is not JSON.", x.status);
      else
        stage(p, "answer", false, "APNs answered %ld %s%s.", x.status, reason,
              strcmp(reason, "DeviceTokenNotForTopic") == 0 || strcmp(reason, "BadTopic") == 0
                  ? ": check mobile.apns_topic (the app's bundle id)"
                  : "");
    }
  }
  free(x.reply.body);
}

static void probe_fcm(probe_t *p) {
  push_fcm_account_t a;
  char err[400];
  if (!p->fcm_json) {
    stage(p, "config", false, "FCM is not configured: set mobile.fcm_service_account.");
    return;
  }
  if (push_fcm_account_parse(p->fcm_json, &a, err, sizeof err) < 0) {
    stage(p, "config", false, "mobile.fcm_service_account: %s", err);
    return;
  }
  char *assertion = NULL;
  if (push_jwt_rs256(a.key, &a, time(NULL), &assertion) < 0) {
    stage(p, "config", false, "The OAuth2 request cannot be signed with the service account's "
          "private key.");
    push_fcm_account_clear(&a);
    return;
  }
  stage(p, "config", true, "The OAuth2 request is signed (RS256, %s).", a.client_email);
  char *enc = curl_easy_escape(NULL, assertion, 0);
  free(assertion);
  char *form = NULL;
  if (!enc || asprintf(&form, "grant_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3Agrant-type%%3Ajwt-"
                              "bearer&assertion=%s",
                       enc) < 0)
    form = NULL;
  curl_free(enc);
  struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/x-www-form-urlencoded");
  exchange_t x;
  exchange(p, a.token_uri, hd, form ? form : "", &x);
  curl_slist_free_all(hd);
  free(form);
  char what[600];
  snprintf(what, sizeof what, "the token endpoint %s", a.token_uri);
  char *access = NULL;
  if (transport_stages(p, &x, what)) {
    json_t *doc = x.reply.body ? json_loads(x.reply.body, 0, NULL) : NULL;
    const char *tok = json_string_value(json_object_get(doc, "access_token"));
    char rb[128];
    if (x.status == 200 && tok) {
      access = strdup(tok);
      stage(p, "token", true, "The token endpoint gave an OAuth2 access token.");
    } else {
      const char *reason = reason_of(&x.reply, rb, sizeof rb);
      stage(p, "token", false, "The token endpoint refused the service account: %ld %s. Check "
            "that mobile.fcm_service_account is a current key of an enabled account.",
            x.status, reason ? reason : "(not JSON)");
    }
    json_decref(doc);
  }
  free(x.reply.body);
  if (access) {
    char url[1024], auth[4096], body[4608];
    snprintf(url, sizeof url, "%s/v1/projects/%s/messages:send", p->fcm_base, a.project_id);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", access);
    json_t *b = json_pack("{s:b, s:{s:s, s:{s:s}}}", "validate_only", !p->own_token, "message",
                          "token", p->token, "data", "kind", "test");
    char *bs = b ? json_dumps(b, JSON_COMPACT) : NULL;
    json_decref(b);
    snprintf(body, sizeof body, "%s", bs ? bs : "{}");
    free(bs);
    free(access);
    hd = curl_slist_append(NULL, auth);
    hd = curl_slist_append(hd, "Content-Type: application/json");
    exchange(p, url, hd, body, &x);
    curl_slist_free_all(hd);
    if (transport_stages(p, &x, "FCM")) {
      stage(p, "alpn", x.version == CURL_HTTP_VERSION_2_0,
            x.version == CURL_HTTP_VERSION_2_0
                ? "HTTP/2 was negotiated (ALPN h2)."
                : "FCM answered over HTTP/1.1: something in between removed ALPN h2; "
                  "notifications would go one at a time.");
      char rb[128];
      const char *reason = reason_of(&x.reply, rb, sizeof rb);
      if (p->ok) {
        if (x.status == 200)
          stage(p, "answer", true, "FCM accepted the notification.");
        else if (!p->own_token && x.status == 400 && reason &&
                 (strcmp(reason, "INVALID_ARGUMENT") == 0 || strcmp(reason, "UNREGISTERED") == 0))
          stage(p, "answer", true, "FCM checked our credentials and refused the test's made-up "
                "device token, as expected: push notifications can be sent.");
        else
          stage(p, "answer", false, "FCM answered %ld %s.", x.status,
                reason ? reason : "with a body that is not JSON");
      }
    }
    free(x.reply.body);
  }
  push_fcm_account_clear(&a);
}

static void probe_gateway(probe_t *p) {
  if (!p->gateway_url[0]) {
    stage(p, "config", false, "mobile.push_gateway_url is not set.");
    return;
  }
  stage(p, "config", true, "The gateway is %s.", p->gateway_url);
  store_push_t row = {.id = 0, .platform = "ios", .push_token = p->token, .kind = "test",
                      .payload = "{\"kind\":\"test\"}", .collapse_id = "test", .priority = 10,
                      .expires_ms = (int64_t)time(NULL) * 1000 + 60000};
  char *body = NULL;
  size_t len = 0;
  if (push_body(PUSH_GATEWAY, &row, p->gateway_app_id, (int64_t)time(NULL) * 1000, &body, &len) <
      0)
    return;
  struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/json");
  exchange_t x;
  exchange(p, p->gateway_url, hd, body, &x);
  curl_slist_free_all(hd);
  free(body);
  if (transport_stages(p, &x, "the push gateway")) {
    stage(p, "alpn", true, x.version == CURL_HTTP_VERSION_2_0
                               ? "HTTP/2 was negotiated (ALPN h2)."
                               : "The gateway speaks HTTP/1.1 (allowed for gateways).");
    json_t *doc = x.reply.body ? json_loads(x.reply.body, 0, NULL) : NULL;
    if (x.status == 200 && json_is_object(doc))
      stage(p, "answer", true, "The gateway accepted the notification%s.",
            json_array_size(json_object_get(doc, "rejected"))
                ? " and rejected the test's made-up device token, as expected"
                : "");
    else if (x.status == 200)
      stage(p, "answer", false, "The gateway answered 200 with a body that is not JSON: is %s "
            "a Matrix push gateway's notify URL?", p->gateway_url);
    else
      stage(p, "answer", false, "The gateway answered %ld: check mobile.push_gateway_url (the "
            "path is /_matrix/push/v1/notify) and mobile.push_gateway_app_id.", x.status);
    json_decref(doc);
  }
  free(x.reply.body);
}

typedef struct test_job {
  probe_t p;
} test_job_t;

static void job_free(void *ctx) {
  test_job_t *j = ctx;
  json_decref(j->p.stages);
  free(j->p.apns_key_pem);
  free(j->p.fcm_json);
  outbound_proxy_clear(&j->p.proxy);
  free(j);
}

static void job_run(void *ctx) {
  test_job_t *j = ctx;
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  j->p.ok = true;
  if (j->p.provider == PUSH_APNS) probe_apns(&j->p);
  else if (j->p.provider == PUSH_FCM) probe_fcm(&j->p);
  else probe_gateway(&j->p);
  clock_gettime(CLOCK_MONOTONIC, &b);
  j->p.elapsed_ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
  if (j->p.ok)
    snprintf(j->p.message, sizeof j->p.message,
             "Push notifications to %s work: every hop answered as it should.",
             j->p.provider == PUSH_APNS ? "APNs" : j->p.provider == PUSH_FCM ? "FCM"
                                                                          : "the push gateway");
  atomic_store(&running, false);
}

static enum MHD_Result job_reply(http_request_t *req, void *ctx) {
  test_job_t *j = ctx;
  log_info("push test: provider=%s ok=%s elapsed=%ld ms", push_provider_name(j->p.provider),
           j->p.ok ? "yes" : "no", j->p.elapsed_ms);
  return http_reply_json(req, MHD_HTTP_OK,
                         json_pack("{s:b, s:s, s:s, s:O, s:I}", "ok", j->p.ok, "provider",
                                   push_provider_name(j->p.provider), "message", j->p.message,
                                   "stages", j->p.stages, "elapsed_ms",
                                   (json_int_t)j->p.elapsed_ms));
}

static enum MHD_Result reply_field(http_request_t *req, const char *key, const char *message) {
  return push_reply_field(req, "Invalid push test", key, message);
}

static enum MHD_Result queue_for_user(http_request_t *req, const char *name) {
  store_txn_t *t;
  store_user_t u;
  int r = store_read_begin(http_store(req), "push test: user", &t);
  if (r == 0) {
    r = store_user_get(t, name, &u);
    store_read_end(t);
  }
  if (r == -ENOENT) return reply_field(req, "user", "There is no such user.");
  int64_t queued = 0;
  if (r == 0) r = push_enqueue_test(http_store(req), u.id, &queued);
  if (r < 0)
    return http_reply_problem(req, MHD_HTTP_SERVICE_UNAVAILABLE, "store", "Store unavailable",
                              "The test notification could not be queued; try again.", NULL);
  char msg[300];
  snprintf(msg, sizeof msg,
           queued ? "A test notification is queued for each of %s's %lld devices with a push "
                    "token."
                  : "%s has no device with a push token%.0lld: log in on the phone with push "
                    "allowed first.",
           name, (long long)queued);
  return http_reply_json(req, MHD_HTTP_OK,
                         json_pack("{s:b, s:I, s:s}", "ok", queued > 0, "queued",
                                   (json_int_t)queued, "message", msg));
}

enum MHD_Result push_api_test(http_request_t *req) {
  const json_t *body = http_body_json(req);
  if (body && !json_is_object(body))
    return reply_field(req, "provider", "Send {} or {\"provider\", \"token\"} or {\"user\"}.");
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)body, key, v) {
    if (strcmp(key, "provider") && strcmp(key, "token") && strcmp(key, "user"))
      return reply_field(req, key, "Is not a field of a push test; use provider, token or user.");
  }
  const json_t *ju = json_object_get(body, "user");
  if (ju) {
    if (!json_is_string(ju) || !json_string_length(ju))
      return reply_field(req, "user", "Must be a user's name.");
    return queue_for_user(req, json_string_value(ju));
  }
  settings_snapshot_t *snap = settings_acquire();
  if (!snap) return http_reply_oom(req);
  test_job_t *j = calloc(1, sizeof *j);
  if (!j) {
    settings_release(snap);
    return http_reply_oom(req);
  }
  probe_t *p = &j->p;
  p->stages = json_array();
  bool gateway = strcmp(settings_string(snap, "mobile.push_mode"), "gateway") == 0;
  const char *prov = json_string_value(json_object_get(body, "provider"));
  const json_t *jp = json_object_get(body, "provider");
  if (jp && !(prov && (!strcmp(prov, "apns") || !strcmp(prov, "fcm") || !strcmp(prov, "gateway")))) {
    settings_release(snap);
    job_free(j);
    return reply_field(req, "provider", "Must be apns, fcm or gateway.");
  }
  p->provider = prov ? (!strcmp(prov, "apns") ? PUSH_APNS : !strcmp(prov, "fcm") ? PUSH_FCM
                                                                               : PUSH_GATEWAY)
                     : gateway ? PUSH_GATEWAY : PUSH_APNS;
  const json_t *jt = json_object_get(body, "token");
  if (jt) {
    if (!json_is_string(jt) || !json_string_length(jt) ||
        json_string_length(jt) > STORE_PUSH_TOKEN_MAX || strpbrk(json_string_value(jt), " /\"\\")) {
      settings_release(snap);
      job_free(j);
      return reply_field(req, "token", "Must be a device's push token (printable, no spaces).");
    }
    snprintf(p->token, sizeof p->token, "%s", json_string_value(jt));
    p->own_token = true;
  } else {
    snprintf(p->token, sizeof p->token, "%s",
             p->provider == PUSH_APNS ? TEST_TOKEN_APNS : TEST_TOKEN_FCM);
  }
  push_endpoints(snap, p->apns_base, sizeof p->apns_base, p->fcm_base, sizeof p->fcm_base);
  push_gateway_url(snap, p->gateway_url, sizeof p->gateway_url);
  snprintf(p->gateway_app_id, sizeof p->gateway_app_id, "%s",
           settings_string(snap, "mobile.push_gateway_app_id"));
  snprintf(p->topic, sizeof p->topic, "%s", settings_string(snap, "mobile.apns_topic"));
  snprintf(p->key_id, sizeof p->key_id, "%s", settings_string(snap, "mobile.apns_key_id"));
  snprintf(p->team_id, sizeof p->team_id, "%s", settings_string(snap, "mobile.apns_team_id"));
  const json_t *k = settings_value(snap, "mobile.apns_key");
  if (json_is_string(k) && *json_string_value(k)) p->apns_key_pem = strdup(json_string_value(k));
  const json_t *f = settings_value(snap, "mobile.fcm_service_account");
  if (json_is_string(f) && *json_string_value(f)) p->fcm_json = strdup(json_string_value(f));
  int r = outbound_proxy_from_settings(snap, OUTBOUND_PUSH, &p->proxy);
  settings_release(snap);
  if (r < 0) {
    job_free(j);
    return http_reply_oom(req);
  }
  bool expected = false;
  if (!atomic_compare_exchange_strong(&running, &expected, true)) {
    job_free(j);
    return http_reply_problem(req, MHD_HTTP_CONFLICT, "busy", "A push test is running",
                              "Another push test is still running; try again when it is done.",
                              NULL);
  }
  return http_defer(req, job_run, job_reply, j, job_free);
}
