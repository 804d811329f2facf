/* The push module's client routes: the app registers its push token, and
 * fetches with its own client token what an id_only notification
 * announced (the provider only ever saw the id). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mod/directory/directory.h"
#include "mod/push/internal.h"


static enum MHD_Result reply_field(http_request_t *req, const char *key, const char *message) {
  return push_reply_field(req, "Invalid device update", key, message);
}

static enum MHD_Result reply_store_failed(http_request_t *req) {
  return http_reply_problem(req, MHD_HTTP_SERVICE_UNAVAILABLE, "store", "Store unavailable",
                            "The server cannot reach its database; try again shortly.", NULL);
}

/* The client behind the bearer token: the user document and the user's id. */
static int client_of(http_request_t *req, json_t **doc, int64_t *user_id,
                     enum MHD_Result *reply) {
  int r = directory_client_user(req, doc, reply);
  if (r < 0) return r;
  const char *name = json_string_value(json_object_get(*doc, "name"));
  store_txn_t *t;
  store_user_t u;
  r = store_read_begin(http_store(req), "push: client", &t);
  if (r == 0) {
    r = store_user_get(t, name ? name : "", &u);
    store_read_end(t);
  }
  if (r < 0) {
    json_decref(*doc);
    *doc = NULL;
    *reply = r == -ENOENT
                 ? http_reply_problem(req, MHD_HTTP_UNAUTHORIZED, "unauthorized", "Not logged in",
                                      "The user of this token no longer exists.", NULL)
                 : reply_store_failed(req);
    return r;
  }
  *user_id = u.id;
  return 0;
}

/* A provider's token: printable ASCII without spaces, as APNs (hex) and
 * FCM (base64url and ':') tokens are. */
static bool token_ok(const char *s, size_t len) {
  if (len == 0 || len > STORE_PUSH_TOKEN_MAX) return false;
  for (size_t i = 0; i < len; i++)
    if (s[i] <= 0x20 || s[i] >= 0x7f || s[i] == '"' || s[i] == '\\' || s[i] == '/') return false;
  return true;
}

typedef struct device_txn {
  int64_t user_id;
  const char *device_id, *token;
  int64_t now;
} device_txn_t;

static int device_txn(store_txn_t *t, void *vctx) {
  device_txn_t *d = vctx;
  return store_push_device_set(t, d->user_id, d->device_id, d->token, d->now);
}

/* PUT /client/v1/device {"push_token": "..." | null}: the device this
 * client token was issued to gets (or loses) its push token. */
enum MHD_Result push_api_device_put(http_request_t *req) {
  const json_t *body = http_body_json(req);
  if (!json_is_object(body))
    return reply_field(req, "push_token", "Send {\"push_token\": \"<the provider's token>\"}.");
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)body, key, v) {
    if (strcmp(key, "push_token") != 0 && strcmp(key, "platform") != 0)
      return reply_field(req, key, "Is not a field of a device update; use push_token.");
  }
  const json_t *jt = json_object_get(body, "push_token");
  if (!jt) return reply_field(req, "push_token", "Is required (null removes the token).");
  if (!json_is_null(jt) &&
      (!json_is_string(jt) || !token_ok(json_string_value(jt), json_string_length(jt))))
    return reply_field(req, "push_token",
                       "Must be the token APNs or FCM gave the app: 1 to 4096 printable "
                       "characters without spaces, or null to remove it.");
  json_t *doc;
  int64_t user_id;
  enum MHD_Result reply;
  if (client_of(req, &doc, &user_id, &reply) < 0) return reply;
  const json_t *dev = json_object_get(doc, "device");
  if (!json_is_object(dev)) {
    json_decref(doc);
    return http_reply_problem(req, MHD_HTTP_CONFLICT, "no-device", "Not a mobile login",
                              "This client logged in without a device; log in with "
                              "\"device\": {\"id\", \"platform\"} to receive push "
                              "notifications.",
                              NULL);
  }
  const char *platform = json_string_value(json_object_get(dev, "platform"));
  const json_t *jp = json_object_get(body, "platform");
  if (jp && (!json_is_string(jp) || !platform || strcmp(json_string_value(jp), platform) != 0)) {
    char msg[200];
    snprintf(msg, sizeof msg, "Is %s for this device, as it logged in; log in again to change it.",
             platform ? platform : "unknown");
    json_decref(doc);
    return reply_field(req, "platform", msg);
  }
  device_txn_t d = {.user_id = user_id,
                    .device_id = json_string_value(json_object_get(dev, "id")),
                    .token = json_is_string(jt) ? json_string_value(jt) : NULL,
                    .now = push_wall_ms()};
  int r = store_run_txn(http_store(req), "push: device token", device_txn, &d);
  if (r == -ENOENT) {
    json_decref(doc);
    return http_reply_problem(req, MHD_HTTP_UNAUTHORIZED, "setup-again", "Set up the login again",
                              "This device's registration was removed; log in again.", NULL);
  }
  if (r < 0) {
    json_decref(doc);
    return reply_store_failed(req);
  }
  json_t *out = json_pack("{s:O, s:s?, s:b}", "device", json_object_get(dev, "id"), "platform",
                          platform, "push", d.token != NULL);
  json_decref(doc);
  return http_reply_json(req, MHD_HTTP_OK, out);
}

typedef struct fetch_txn {
  int64_t id, user_id;
  json_t *out;
  char kind[16];
  int64_t ref_id, peer_id, created_ms;
} fetch_txn_t;

static void on_row(const store_push_t *p, void *vctx) {
  fetch_txn_t *f = vctx;
  snprintf(f->kind, sizeof f->kind, "%s", p->kind);
  f->ref_id = p->ref_id;
  f->peer_id = p->peer_id;
  f->created_ms = p->created_ms;
}

static void on_message(const store_message_t *m, void *vctx) {
  fetch_txn_t *f = vctx;
  if (m->id != f->ref_id) return;
  json_object_set_new(f->out, "message",
                      json_pack("{s:I, s:s?, s:s?, s:s, s:s}", "id", (json_int_t)m->id, "from",
                                m->sender_name, "from_remote", m->sender_remote, "text", m->text,
                                "time", m->time));
}

static void on_journal(const store_journal_t *e, void *vctx) {
  fetch_txn_t *f = vctx;
  if (e->id != f->ref_id) return;
  json_object_set_new(f->out, "call",
                      json_pack("{s:I, s:s, s:s}", "id", (json_int_t)e->id, "peer", e->peer,
                                "started", e->started));
}

static int fetch_txn(store_txn_t *t, void *vctx) {
  fetch_txn_t *f = vctx;
  json_decref(f->out);
  f->out = NULL;
  int r = store_push_fetch(t, f->id, f->user_id, push_wall_ms(), on_row, f);
  if (r < 0) return r;
  f->out = json_pack("{s:I, s:s, s:I}", "id", (json_int_t)f->id, "kind", f->kind, "created_ms",
                     (json_int_t)f->created_ms);
  if (!f->out) return -ENOMEM;
  if (strcmp(f->kind, "message") == 0)
    r = store_message_history(t, f->user_id, f->peer_id, f->ref_id + 1, 1, on_message, f);
  else if (strcmp(f->kind, "call") == 0)
    r = store_journal_list(t, f->user_id, f->ref_id + 1, 1, on_journal, f);
  return r;
}

/* GET /client/v1/notifications/{id}: what the notification announced, for
 * the user it was for; the first fetch is the app's receipt. A message
 * deleted since (retention) comes back without "message". */
enum MHD_Result push_api_notification(http_request_t *req) {
  const char *raw = strrchr(http_path(req), '/');
  int64_t id = 0;
  if (!raw || !raw[1] || http_parse_int_param(raw + 1, 1, INT64_MAX, 0, &id) < 0 || id < 1)
    return http_reply_bad_param(req, "id", "the notification id from the push payload");
  json_t *doc;
  fetch_txn_t f = {.id = id};
  enum MHD_Result reply;
  if (client_of(req, &doc, &f.user_id, &reply) < 0) return reply;
  json_decref(doc);
  int r = store_run_txn(http_store(req), "push: fetch a notification", fetch_txn, &f);
  if (r == -ENOENT) {
    json_decref(f.out);
    return http_reply_problem(req, MHD_HTTP_NOT_FOUND, "not-found", "No such notification",
                              "There is no notification with this id for you (it may have "
                              "been removed after a day).",
                              NULL);
  }
  if (r < 0) {
    json_decref(f.out);
    return reply_store_failed(req);
  }
  return http_reply_json(req, MHD_HTTP_OK, f.out);
}
