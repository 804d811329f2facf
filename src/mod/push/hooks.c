/* What is pushed, written into the outbox inside the transaction of its
 * event (the real-time core's hooks): a chat message or a missed call for a
 * user with a device token and no client connected, and a clear when the
 * user read on another client what a phone was already told of. */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf/settings.h"
#include "mod/push/internal.h"
#include "mod/push/push.h"
#include "mod/rt/rt.h"

#define MESSAGE_TTL_MS (24LL * 3600 * 1000)
#define CALL_TTL_MS (24LL * 3600 * 1000)
#define CLEAR_TTL_MS (24LL * 3600 * 1000)
#define TEST_TTL_MS (5LL * 60 * 1000)


/* A random (version 4) UUID, the APNs id of one notification and of every
 * retry of it. */
static void uuid_v4(char out[37]) {
  unsigned char b[16];
  randombytes_buf(b, sizeof b);
  b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
  b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
  snprintf(out, 37,
           "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
           b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
           b[15]);
}

typedef struct enqueue_ctx {
  store_push_t tmpl;
  int64_t queued;
  int64_t user_id;
  /* Copied from each device: the store's strings live only during its
   * callback, and the insert must not run inside a read of the devices. */
  struct device_copy {
    char id[129];
    char platform[16];
    char *token;
  } devices[16];
  size_t ndevices;
} enqueue_ctx_t;

static void on_device(const store_push_device_t *d, void *vctx) {
  enqueue_ctx_t *c = vctx;
  if (c->ndevices >= sizeof c->devices / sizeof c->devices[0]) return;
  struct device_copy *dc = &c->devices[c->ndevices];
  snprintf(dc->id, sizeof dc->id, "%s", d->device_id);
  snprintf(dc->platform, sizeof dc->platform, "%s", d->platform);
  if (!(dc->token = strdup(d->push_token))) return;
  c->ndevices++;
}

/* One row per device of the user that has a token. */
static int enqueue_devices(store_txn_t *t, enqueue_ctx_t *c) {
  int r = store_push_devices(t, c->user_id, on_device, c);
  for (size_t i = 0; i < c->ndevices; i++) {
    if (r == 0) {
      char apns_id[37];
      uuid_v4(apns_id);
      store_push_t p = c->tmpl;
      p.user_id = c->user_id;
      p.device_id = c->devices[i].id;
      p.platform = c->devices[i].platform;
      p.push_token = c->devices[i].token;
      p.apns_id = apns_id;
      r = store_push_enqueue(t, &p);
      if (r == 0) c->queued++;
    }
    free(c->devices[i].token);
  }
  c->ndevices = 0;
  return r;
}

typedef enum content { CONTENT_ID_ONLY, CONTENT_GENERIC, CONTENT_FULL } content_t;

static bool push_on(content_t *content) {
  settings_snapshot_t *snap = settings_acquire();
  if (!snap) return false;
  bool on = settings_bool(snap, "mobile.push_enabled");
  const char *c = settings_string(snap, "mobile.push_content");
  *content = strcmp(c, "full") == 0      ? CONTENT_FULL
             : strcmp(c, "generic") == 0 ? CONTENT_GENERIC
                                         : CONTENT_ID_ONLY;
  settings_release(snap);
  return on;
}

/* The payload a content level allows: ids only, or the sender, or both
 * sender and text. */
static char *payload_of(const char *kind, content_t content, const char *from,
                        const char *from_name, const char *text) {
  json_t *o = json_pack("{s:s}", "kind", kind);
  if (!o) return NULL;
  if (content >= CONTENT_GENERIC && from) {
    json_object_set_new(o, "from", json_string(from));
    if (from_name && *from_name) json_object_set_new(o, "from_name", json_string(from_name));
  }
  if (content == CONTENT_FULL && text) json_object_set_new(o, "text", json_string(text));
  char *s = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  return s;
}

static int on_message(store_txn_t *t, const rt_message_event_t *m, void *ctx) {
  (void)ctx;
  content_t content;
  if (m->to_connected || m->to_id <= 0 || m->to_id == m->from_id || !push_on(&content)) return 0;
  const char *from = m->from ? m->from : m->from_remote;
  char from_name[STORE_USER_TEXT_MAX + 1] = "";
  if (content >= CONTENT_GENERIC && m->from_id > 0) {
    store_user_t u;
    int r = store_user_by_id(t, m->from_id, &u);
    if (r < 0 && r != -ENOENT) return r;
    if (r == 0 && u.has_display_name) snprintf(from_name, sizeof from_name, "%s", u.display_name);
  }
  char *payload = payload_of("message", content, from, from_name, m->text);
  if (!payload) return -ENOMEM;
  char collapse[32];
  snprintf(collapse, sizeof collapse, "m%lld", (long long)m->id);
  int64_t now = push_wall_ms();
  enqueue_ctx_t c = {
      .user_id = m->to_id,
      .tmpl = {.kind = "message", .ref_id = m->id, .peer_id = m->from_id, .payload = payload,
               .collapse_id = collapse, .push_type = "alert", .priority = 10,
               .created_ms = now, .expires_ms = now + MESSAGE_TTL_MS},
  };
  int r = enqueue_devices(t, &c);
  free(payload);
  return r;
}

static int on_read(store_txn_t *t, int64_t reader, int64_t peer, int64_t upto, void *ctx) {
  (void)ctx;
  int64_t cancelled = 0, to_clear = 0;
  int r = store_push_read(t, reader, peer, upto, &cancelled, &to_clear);
  if (r < 0 || to_clear == 0) return r;
  char payload[96], collapse[32];
  snprintf(payload, sizeof payload, "{\"kind\":\"clear\",\"peer_id\":%lld,\"upto\":%lld}",
           (long long)peer, (long long)upto);
  snprintf(collapse, sizeof collapse, "clear%lld", (long long)peer);
  int64_t now = push_wall_ms();
  enqueue_ctx_t c = {
      .user_id = reader,
      .tmpl = {.kind = "clear", .ref_id = upto, .peer_id = 0, .payload = payload,
               .collapse_id = collapse, .push_type = "background", .priority = 5,
               .created_ms = now, .expires_ms = now + CLEAR_TTL_MS},
  };
  return enqueue_devices(t, &c);
}

static int on_journal(store_txn_t *t, const store_journal_t *e, void *ctx) {
  (void)ctx;
  content_t content;
  if (strcmp(e->kind, "call") != 0 || strcmp(e->direction, "in") != 0 || e->answered != 0 ||
      !push_on(&content))
    return 0;
  store_user_t u;
  int r = store_user_by_id(t, e->user, &u);
  if (r < 0) return r == -ENOENT ? 0 : r;
  if (rt_user_connected(u.name)) return 0;
  char *payload = payload_of("call", content, e->peer, NULL, NULL);
  if (!payload) return -ENOMEM;
  char collapse[32];
  snprintf(collapse, sizeof collapse, "c%lld", (long long)e->id);
  int64_t now = push_wall_ms();
  enqueue_ctx_t c = {
      .user_id = e->user,
      .tmpl = {.kind = "call", .ref_id = e->id, .payload = payload, .collapse_id = collapse,
               .push_type = "alert", .priority = 10, .created_ms = now,
               .expires_ms = now + CALL_TTL_MS},
  };
  r = enqueue_devices(t, &c);
  free(payload);
  return r;
}

static void on_committed(void *ctx) {
  (void)ctx;
  push_sender_wake();
}

static const rt_hooks_t hooks = {
    .message_in_txn = on_message,
    .read_in_txn = on_read,
    .journal_in_txn = on_journal,
    .committed = on_committed,
};

int push_hooks_register(store_t *store) {
  (void)store;
  return rt_add_hooks(&hooks);
}

typedef struct test_txn {
  int64_t user_id, queued;
} test_txn_t;

static int test_txn(store_txn_t *t, void *vctx) {
  test_txn_t *tt = vctx;
  int64_t now = push_wall_ms();
  char collapse[32];
  snprintf(collapse, sizeof collapse, "test%lld", (long long)now);
  enqueue_ctx_t c = {
      .user_id = tt->user_id,
      .tmpl = {.kind = "test", .payload = "{\"kind\":\"test\"}", .collapse_id = collapse,
               .push_type = "alert", .priority = 10, .created_ms = now,
               .expires_ms = now + TEST_TTL_MS},
  };
  int r = enqueue_devices(t, &c);
  tt->queued = c.queued;
  return r;
}

int push_enqueue_test(store_t *store, int64_t user_id, int64_t *queued) {
  test_txn_t tt = {.user_id = user_id};
  int r = store_run_txn(store, "push test", test_txn, &tt);
  *queued = tt.queued;
  if (r >= 0) push_sender_wake();
  return r < 0 ? r : 0;
}
