/* The push module: its settings rules (the keys must be usable before they
 * are saved), the sender's life, metrics and status. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "mod/outbound/outbound.h"
#include "mod/push/internal.h"
#include "mod/push/push.h"

static struct {
  store_t *store;
  bool started;
} M;

/* A key that cannot sign is refused when it is set, not at the first push. */
static void check(const settings_snapshot_t *snap, problem_t *p) {
  char err[400];
  const json_t *key = settings_value(snap, "mobile.apns_key");
  if (json_is_string(key) && *json_string_value(key)) {
    gnutls_privkey_t k = NULL;
    if (push_es256_key_load(json_string_value(key), &k, err, sizeof err) < 0)
      problem_add_error(p, "mobile.apns_key", "%s", err);
    else
      gnutls_privkey_deinit(k);
  }
  const json_t *fcm = settings_value(snap, "mobile.fcm_service_account");
  if (json_is_string(fcm) && *json_string_value(fcm)) {
    push_fcm_account_t a;
    if (push_fcm_account_parse(json_string_value(fcm), &a, err, sizeof err) < 0)
      problem_add_error(p, "mobile.fcm_service_account", "%s", err);
    push_fcm_account_clear(&a);
  }
  if (settings_bool(snap, "mobile.push_enabled") &&
      strcmp(settings_string(snap, "mobile.push_mode"), "gateway") == 0 &&
      !*settings_string(snap, "mobile.push_gateway_url"))
    problem_add_error(p, "mobile.push_gateway_url",
                      "Is required when push notifications are sent through a gateway: enter "
                      "the gateway's https URL, or choose direct.");
}

static void warn(const settings_snapshot_t *snap, settings_warn_fn add, void *wctx) {
  if (!settings_bool(snap, "mobile.push_enabled") ||
      strcmp(settings_string(snap, "mobile.push_mode"), "direct") != 0)
    return;
  const json_t *key = settings_value(snap, "mobile.apns_key");
  const json_t *fcm = settings_value(snap, "mobile.fcm_service_account");
  bool apns = json_is_string(key) && *json_string_value(key) &&
              *settings_string(snap, "mobile.apns_key_id") &&
              *settings_string(snap, "mobile.apns_team_id") &&
              *settings_string(snap, "mobile.apns_topic");
  bool android = json_is_string(fcm) && *json_string_value(fcm);
  if (!apns)
    add(wctx, "mobile.apns_key", "apns-not-configured",
        "Push notifications are on, but APNs is not fully configured (key, key ID, team ID, "
        "topic): iPhones get none until it is.");
  if (!android)
    add(wctx, "mobile.fcm_service_account", "fcm-not-configured",
        "Push notifications are on, but no FCM service account is set: Android phones get none "
        "until it is.");
}

static const char *const follows[] = {"mobile", "proxy", NULL};

static const settings_owner_t owner = {
    .name = "push",
    .follows = follows,
    .check = check,
    .warn = warn,
};

static enum MHD_Result status_api(http_request_t *req);

static const http_route_t routes[] = {
    {.method = HTTP_PUT, .path = "/client/v1/device", .handler = push_api_device_put,
     .auth = HTTP_AUTH_NONE, .body = HTTP_BODY_JSON},
    {.method = HTTP_GET, .path = "/client/v1/notifications/{id}",
     .handler = push_api_notification, .auth = HTTP_AUTH_NONE},
    {.method = HTTP_POST, .path = "/api/v1/push/test", .handler = push_api_test,
     .auth = HTTP_AUTH_ADMIN, .body = HTTP_BODY_JSON_OPTIONAL},
    {.method = HTTP_GET, .path = "/api/v1/push/status", .handler = status_api,
     .auth = HTTP_AUTH_ADMIN},
};

static int init(const module_env_t *env, char *err, size_t errlen) {
  M.store = env->store;
  if (push_hooks_register(env->store) < 0) {
    snprintf(err, errlen, "The real-time core has no room for the push module's hooks.");
    return -ENOSPC;
  }
  return 0;
}

static int start(char *err, size_t errlen) {
  int r = push_sender_start(M.store, err, errlen);
  if (r == 0) M.started = true;
  return r;
}

static void stop(void) {
  push_sender_stop();
  M.started = false;
}

static int stats_txn(store_txn_t *t, void *vctx) { return store_push_stats(t, vctx); }

static void metrics(FILE *f) {
  push_counters_t c;
  push_counters(&c);
  store_push_stats_t st = {0};
  store_txn_t *t;
  if (store_read_begin(M.store, "push: metrics", &t) == 0) {
    if (stats_txn(t, &st) < 0) memset(&st, 0, sizeof st);
    store_read_end(t);
  }
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
  fputs("# HELP atrium_push_sent_total Notifications the provider accepted.\n"
        "# TYPE atrium_push_sent_total counter\n",
        f);
  for (int p = 0; p < PUSH_PROVIDER_COUNT; p++)
    fprintf(f, "atrium_push_sent_total{provider=\"%s\"} %" PRIu64 "\n",
            push_provider_name((push_provider_t)p), c.sent[p]);
  fputs("# HELP atrium_push_failed_total Notifications given up (refused, expired, too many "
        "attempts).\n# TYPE atrium_push_failed_total counter\n",
        f);
  for (int p = 0; p < PUSH_PROVIDER_COUNT; p++)
    fprintf(f, "atrium_push_failed_total{provider=\"%s\"} %" PRIu64 "\n",
            push_provider_name((push_provider_t)p), c.failed[p]);
  push_write_reason_metrics(f);
  fprintf(f,
          "# HELP atrium_push_retries_total Attempts that will be made again.\n"
          "# TYPE atrium_push_retries_total counter\n"
          "atrium_push_retries_total %" PRIu64 "\n"
          "# HELP atrium_push_lost_streams_total Streams that got no answer (GOAWAY, reset), "
          "sent again without counting an attempt.\n"
          "# TYPE atrium_push_lost_streams_total counter\n"
          "atrium_push_lost_streams_total %" PRIu64 "\n"
          "# HELP atrium_push_pruned_total Device push tokens removed because the provider "
          "said they are gone.\n"
          "# TYPE atrium_push_pruned_total counter\n"
          "atrium_push_pruned_total %" PRIu64 "\n"
          "# HELP atrium_push_outbox_depth Notifications waiting in the outbox.\n"
          "# TYPE atrium_push_outbox_depth gauge\n"
          "atrium_push_outbox_depth %" PRId64 "\n"
          "# HELP atrium_push_oldest_pending_seconds Age of the oldest waiting notification.\n"
          "# TYPE atrium_push_oldest_pending_seconds gauge\n"
          "atrium_push_oldest_pending_seconds %.3f\n"
          "# HELP atrium_push_provider_token_age_seconds Age of the provider token in use "
          "(-1: none yet).\n"
          "# TYPE atrium_push_provider_token_age_seconds gauge\n"
          "atrium_push_provider_token_age_seconds{provider=\"apns\"} %" PRId64 "\n"
          "atrium_push_provider_token_age_seconds{provider=\"fcm\"} %" PRId64 "\n"
          "# HELP atrium_http2_closed_stream_resets_cancelled_total Resets of already closed "
          "HTTP/2 streams that libcurl asked for and that were not sent.\n"
          "# TYPE atrium_http2_closed_stream_resets_cancelled_total counter\n"
          "atrium_http2_closed_stream_resets_cancelled_total %llu\n"
          "# HELP atrium_push_stream_window Streams the sender may keep open to a provider "
          "now (its round trip times its answer rate, 64 to 1000).\n"
          "# TYPE atrium_push_stream_window gauge\n"
          "atrium_push_stream_window %" PRIu64 "\n",
          c.retried, c.refused_streams, c.pruned, st.pending,
          st.oldest_pending_ms ? (double)(now - st.oldest_pending_ms) / 1000.0 : 0.0,
          c.apns_token_age_s, c.fcm_token_age_s, outbound_h2_resets_cancelled(), c.stream_window);
}

static void status(module_status_t *out) {
  settings_snapshot_t *snap = settings_acquire();
  bool on = snap && settings_bool(snap, "mobile.push_enabled");
  bool gateway = snap && strcmp(settings_string(snap, "mobile.push_mode"), "gateway") == 0;
  bool proxy = snap && settings_bool(snap, "mobile.push_use_proxy") &&
               settings_bool(snap, "proxy.enabled");
  settings_release(snap);
  char warning[512], error[1024];
  int64_t error_at = 0;
  push_sender_status(warning, sizeof warning, error, sizeof error, &error_at);
  snprintf(out->last_error, sizeof out->last_error, "%s", error);
  out->last_error_at = error_at;
  if (!on) {
    out->state = MODULE_OFF;
    snprintf(out->sentence, sizeof out->sentence, "Push notifications are off.");
    return;
  }
  push_counters_t c;
  push_counters(&c);
  if (warning[0]) {
    out->state = MODULE_WARNING;
    snprintf(out->sentence, sizeof out->sentence, "%s", warning);
    return;
  }
  /* Failing when the latest word is an error and nothing went out since. */
  uint64_t sent = c.sent[0] + c.sent[1] + c.sent[2];
  out->state = error[0] && sent == 0 ? MODULE_FAILING : error[0] ? MODULE_WARNING : MODULE_OK;
  snprintf(out->sentence, sizeof out->sentence,
           "Sending push notifications %s%s: %" PRIu64 " sent, %" PRIu64 " given up, %" PRIu64
           " tokens removed since the start.",
           gateway ? "through the push gateway" : "to APNs and FCM directly",
           proxy ? " via the proxy" : "", sent, c.failed[0] + c.failed[1] + c.failed[2],
           c.pruned);
}

/* GET /api/v1/push/status: what the Status page shows, with the numbers. */
static enum MHD_Result status_api(http_request_t *req) {
  module_status_t st = {0};
  status(&st);
  push_counters_t c;
  push_counters(&c);
  store_push_stats_t ps = {0};
  store_txn_t *t;
  int r = store_read_begin(M.store, "push: status", &t);
  if (r == 0) {
    r = stats_txn(t, &ps);
    store_read_end(t);
  }
  if (r < 0)
    return http_reply_problem(req, MHD_HTTP_SERVICE_UNAVAILABLE, "store", "Store unavailable",
                              "The push outbox cannot be read; try again shortly.", NULL);
  int64_t now = push_wall_ms();
  json_t *sent = json_object(), *failed = json_object();
  for (int p = 0; p < PUSH_PROVIDER_COUNT; p++) {
    json_object_set_new(sent, push_provider_name((push_provider_t)p), json_integer((json_int_t)c.sent[p]));
    json_object_set_new(failed, push_provider_name((push_provider_t)p),
                        json_integer((json_int_t)c.failed[p]));
  }
  return http_reply_json(
      req, MHD_HTTP_OK,
      json_pack("{s:s, s:s, s:s, s:I, s:{s:I, s:f}, s:o, s:o, s:I, s:I, s:I, s:I}", "state",
                module_state_name(st.state), "sentence", st.sentence, "last_error", st.last_error,
                "last_error_at", (json_int_t)st.last_error_at, "outbox", "pending",
                (json_int_t)ps.pending, "oldest_pending_s",
                ps.oldest_pending_ms ? (double)(now - ps.oldest_pending_ms) / 1000.0 : 0.0,
                "sent", sent, "failed", failed, "pruned", (json_int_t)c.pruned, "retried",
                (json_int_t)c.retried, "lost_streams", (json_int_t)c.refused_streams, "expired",
                (json_int_t)c.expired));
}

const atrium_module_t push_module = {
    .name = "push",
    MODULE_ROUTES(routes),
    .settings = &owner,
    .init = init,
    .start = start,
    .stop = stop,
    .metrics = metrics,
    .status = status,
};
