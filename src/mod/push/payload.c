/* The bodies sent to APNs, FCM and a Matrix push gateway. What a body may
 * say was fixed at enqueue by the content level (the stored payload holds
 * only what that level allows); here it is put in each provider's shape,
 * with the outbox id the app fetches the rest with. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mod/push/internal.h"

static const char *const provider_names[] = {"apns", "fcm", "gateway"};

const char *push_provider_name(push_provider_t p) {
  return (unsigned)p < PUSH_PROVIDER_COUNT ? provider_names[p] : "unknown";
}

static const char *title_for(const char *kind) {
  if (strcmp(kind, "call") == 0) return "Missed call";
  if (strcmp(kind, "test") == 0) return "Test notification";
  return "New message";
}


/* The text cut to at most `max` bytes at a UTF-8 boundary, with "…". */
static char *cut_text(const char *text, size_t max) {
  size_t n = strlen(text);
  if (n <= max) return strdup(text);
  size_t keep = max > 3 ? max - 3 : 0;
  while (keep > 0 && ((unsigned char)text[keep] & 0xC0) == 0x80) keep--;
  char *out = malloc(keep + 4);
  if (!out) return NULL;
  memcpy(out, text, keep);
  memcpy(out + keep, "\xE2\x80\xA6", 4);
  return out;
}

static json_t *apns_doc(const store_push_t *p, json_t *pl, const char *text) {
  const char *kind = p->kind;
  if (strcmp(kind, "clear") == 0)
    return json_pack("{s:{s:i}, s:{s:I, s:s, s:O?, s:O?}}", "aps", "content-available", 1,
                     "atrium", "id", (json_int_t)p->id, "kind", "clear", "peer_id",
                     json_object_get(pl, "peer_id"), "upto", json_object_get(pl, "upto"));
  const char *from = json_string_value(json_object_get(pl, "from_name"));
  if (!from) from = json_string_value(json_object_get(pl, "from"));
  json_t *alert = json_object();
  json_object_set_new(alert, "title", json_string(from ? from : title_for(kind)));
  if (text)
    json_object_set_new(alert, "body", json_string(text));
  else if (from)
    json_object_set_new(alert, "body", json_string(title_for(kind)));
  json_t *aps = json_pack("{s:o, s:s, s:i}", "alert", alert, "sound", "default",
                          "mutable-content", 1);
  if (p->peer_id) {
    char thread[32];
    snprintf(thread, sizeof thread, "c%lld", (long long)p->peer_id);
    json_object_set_new(aps, "thread-id", json_string(thread));
  }
  return json_pack("{s:o, s:{s:I, s:s}}", "aps", aps, "atrium", "id", (json_int_t)p->id, "kind",
                   kind);
}

static json_t *fcm_doc(const store_push_t *p, json_t *pl, const char *text, int64_t now_ms) {
  char id[24], ttl[32];
  snprintf(id, sizeof id, "%lld", (long long)p->id);
  int64_t left = (p->expires_ms - now_ms) / 1000;
  snprintf(ttl, sizeof ttl, "%llds", (long long)(left > 0 ? left : 0));
  json_t *data = json_pack("{s:s, s:s}", "atrium_id", id, "kind", p->kind);
  if (strcmp(p->kind, "clear") == 0) {
    json_t *v;
    if ((v = json_object_get(pl, "peer_id")))
      json_object_set_new(data, "peer_id", json_sprintf("%lld", (long long)json_integer_value(v)));
    if ((v = json_object_get(pl, "upto")))
      json_object_set_new(data, "upto", json_sprintf("%lld", (long long)json_integer_value(v)));
  }
  json_t *msg = json_pack("{s:s, s:o, s:{s:s, s:s, s:s}}", "token", p->push_token, "data", data,
                          "android", "priority", p->priority >= 10 ? "HIGH" : "NORMAL", "ttl",
                          ttl, "collapse_key", p->collapse_id);
  const char *from = json_string_value(json_object_get(pl, "from_name"));
  if (!from) from = json_string_value(json_object_get(pl, "from"));
  if (from && strcmp(p->kind, "clear") != 0)
    json_object_set_new(msg, "notification",
                        json_pack("{s:s, s:s}", "title", from, "body",
                                  text ? text : title_for(p->kind)));
  return json_pack("{s:o}", "message", msg);
}

static json_t *gateway_doc(const store_push_t *p, json_t *pl, const char *text,
                           const char *app_id) {
  char appid[256];
  size_t n = strlen(app_id);
  if (n && app_id[n - 1] == '.')
    snprintf(appid, sizeof appid, "%s%s", app_id, p->platform);
  else
    snprintf(appid, sizeof appid, "%s", app_id);
  char id[24];
  snprintf(id, sizeof id, "%lld", (long long)p->id);
  json_t *device = json_pack("{s:s, s:s, s:{s:s, s:s}}", "app_id", appid, "pushkey",
                             p->push_token, "data", "atrium_id", id, "kind", p->kind);
  json_t *note = json_pack("{s:s, s:[o]}", "prio", p->priority >= 10 ? "high" : "low", "devices",
                           device);
  if (strcmp(p->kind, "clear") == 0) {
    json_object_set_new(note, "counts", json_pack("{s:i}", "unread", 0));
  } else {
    json_object_set_new(note, "event_id", json_string(id));
    json_object_set_new(note, "type",
                        json_string(strcmp(p->kind, "call") == 0 ? "m.call.invite"
                                                                 : "m.room.message"));
    json_object_set_new(note, "counts", json_pack("{s:i}", "unread", 1));
    json_t *v;
    if ((v = json_object_get(pl, "from"))) json_object_set(note, "sender", v);
    if ((v = json_object_get(pl, "from_name"))) json_object_set(note, "sender_display_name", v);
    if (text) json_object_set_new(note, "content", json_pack("{s:s, s:s}", "msgtype", "m.text",
                                                             "body", text));
  }
  return json_pack("{s:o}", "notification", note);
}

int push_body(push_provider_t provider, const store_push_t *p, const char *gateway_app_id,
              int64_t now_ms, char **out, size_t *len) {
  json_t *pl = json_loads(p->payload ? p->payload : "{}", 0, NULL);
  if (!json_is_object(pl)) {
    json_decref(pl);
    pl = json_object();
  }
  const char *full = json_string_value(json_object_get(pl, "text"));
  size_t limit = provider == PUSH_FCM ? PUSH_FCM_PAYLOAD_MAX : PUSH_APNS_PAYLOAD_MAX;
  size_t text_max = full ? strlen(full) : 0;
  int r = -EMSGSIZE;
  /* Escaping can make the text longer in JSON than in bytes: cut again by
   * what is still over, a few times at most. */
  for (int round = 0; round < 6; round++) {
    char *text = full ? cut_text(full, text_max) : NULL;
    if (full && !text) {
      r = -ENOMEM;
      break;
    }
    json_t *doc = provider == PUSH_APNS  ? apns_doc(p, pl, text)
                  : provider == PUSH_FCM ? fcm_doc(p, pl, text, now_ms)
                                         : gateway_doc(p, pl, text, gateway_app_id ? gateway_app_id : "");
    free(text);
    char *s = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!s) {
      r = -ENOMEM;
      break;
    }
    size_t n = strlen(s);
    /* The gateway carries the payload on to the provider with its own
     * envelope; the same limit keeps room for it. */
    if (n <= limit) {
      *out = s;
      *len = n;
      r = 0;
      break;
    }
    free(s);
    if (!full || text_max == 0) break;
    size_t over = n - limit;
    text_max = text_max > over + 8 ? text_max - over - 8 : 0;
  }
  json_decref(pl);
  return r;
}

const char *push_answer_reason(const char *body, size_t len, char *buf, size_t buflen,
                               int64_t *timestamp) {
  if (timestamp) *timestamp = 0;
  if (buflen) buf[0] = '\0';
  json_t *doc = body ? json_loadb(body, len, 0, NULL) : NULL;
  if (!json_is_object(doc)) {
    json_decref(doc);
    return NULL;
  }
  const char *r = json_string_value(json_object_get(doc, "reason"));
  json_t *err = json_object_get(doc, "error");
  if (!r && json_is_object(err)) {
    /* FCM: the errorCode in details says more than the status. */
    json_t *d;
    size_t i;
    json_array_foreach(json_object_get(err, "details"), i, d) {
      const char *code = json_string_value(json_object_get(d, "errorCode"));
      if (code) r = code;
    }
    if (!r) r = json_string_value(json_object_get(err, "status"));
  } else if (!r && json_is_string(err)) {
    r = json_string_value(err); /* OAuth2: "invalid_grant" */
  }
  if (timestamp && json_is_integer(json_object_get(doc, "timestamp")))
    *timestamp = (int64_t)json_integer_value(json_object_get(doc, "timestamp"));
  /* Only printable ASCII goes on into logs and metrics labels. */
  size_t n = 0;
  for (const char *p = r ? r : ""; *p && n + 1 < buflen; p++)
    buf[n++] = (*p >= 0x21 && *p < 0x7f && *p != '"' && *p != '\\') ? *p : '_';
  if (buflen) buf[n] = '\0';
  json_decref(doc);
  return buf;
}
