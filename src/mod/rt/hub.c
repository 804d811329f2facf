/* The hub: client connections, presence and delivery, on the event loop.
 * Everything here runs on the loop's thread (see internal.h); the HTTP
 * threads only reserve a place (rt_hub_reserve) and ask with loop_call. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/log.h"
#include "core/map.h"
#include "http/websocket.h"
#include "mod/rt/internal.h"
#include "mod/runtime/runtime.h"

typedef struct rt_conn rt_conn_t;
typedef struct rt_user rt_user_t;
typedef struct rt_target rt_target_t;

/* A watch is in two arrays, each entry knowing its place in the other, so
 * that either side leaves in constant time whatever the number of
 * watchers (one user watched by thousands). */
typedef struct watch_ref {
  rt_target_t *target;
  uint32_t index; /* in target->w */
} watch_ref_t;
typedef struct watcher_ref {
  rt_conn_t *conn;
  uint32_t index; /* in conn->watches */
} watcher_ref_t;

struct rt_target {
  char address[RT_ADDRESS_MAX + 1];
  bool remote; /* of another domain: the federation module watches it */
  watcher_ref_t *w;
  uint32_t n, cap;
};

typedef struct bucket {
  double tokens;
  uint64_t at_ms;
} bucket_t;

struct rt_user {
  char name[65];
  rt_conn_t *conns;
  uint32_t nconns;
  rt_state_t state;
  char *note; /* NULL: none (most users set none) */
  char since[32];
  bucket_t chats;
};

typedef struct queued {
  int64_t id;
  char *frame;
} queued_t;

struct rt_conn {
  rt_conn_t *prev, *next; /* in the user's list */
  ws_t *ws;
  rt_user_t *user;
  uint64_t session;
  rt_state_t state;
  watch_ref_t *watches;
  uint32_t nw, capw;
  map_t *watching; /* address -> target, to refuse a second watch of the same */
  bool synced;     /* offline messages sent: live ones go straight out */
  queued_t *q;     /* live messages that came while syncing */
  size_t nq, capq;
  /* Offline messages read but not yet sent: they go out as the client
   * reads, so that a long absence never fills its queue. */
  queued_t *backlog;
  size_t nbacklog, backlog_at;
  bool backlog_more;   /* the store has more after the backlog */
  int64_t backlog_last; /* the newest id read */
  int64_t max_sent; /* the newest message this connection got */
  bucket_t frames, chats;
  char client[33], address[48], since[32];
  unsigned strikes; /* refused frames in a row */
  bool told_flood;
  bool closing;
};

static struct {
  loop_t *loop;
  map_t *users;    /* name -> rt_user_t, while connected */
  map_t *targets;  /* address -> rt_target_t, while watched */
  map_t *sessions; /* session id -> rt_conn_t */
  uv_timer_t ping;
  bool ping_started;
  uint64_t next_session;
  atomic_size_t reserved; /* open and opening connections */
  atomic_uint_fast64_t frames_in, frames_refused, presence_out, chats_out;
  atomic_size_t users_connected;
  bool orphaned; /* connections outlived the shutdown: the maps stay for them */
  map_t *remote_pending; /* message id -> remote_pending_t: sent to another domain, no ok yet */
} H;

/* A message to a federated address waits for its domain's answer before
 * its sender hears ok. */
typedef struct remote_pending {
  uint64_t session;
  bool has_id;
  char id[RT_ID_MAX + 1];
  char from[65];
  char time[32];
  char *frame; /* the chat frame for the sender's other connections */
} remote_pending_t;

static void set_note(char **dst, const char *src) {
  free(*dst);
  *dst = src && *src ? strdup(src) : NULL;
}

/* ---- small helpers --------------------------------------------------------------------- */

static void now_rfc3339(char out[32]) { store_now_rfc3339(out); }

static void address_of(const char *name, char *out, size_t len) {
  char domain[256];
  rt_domain(domain, sizeof domain);
  snprintf(out, len, "%s@%s", name, domain);
}

/* A token bucket: `rate` per second, `burst` at most. true when a token was there. */
static bool take(bucket_t *b, double rate, double burst) {
  uint64_t now = loop_now_ms(H.loop);
  if (!b->at_ms) b->tokens = burst;
  b->tokens += (double)(now - b->at_ms) * rate / 1000.0;
  if (b->tokens > burst) b->tokens = burst;
  b->at_ms = now;
  if (b->tokens < 1.0) {
    b->tokens -= 1.0; /* owed: a flood digs itself deeper */
    if (b->tokens < -burst) b->tokens = -burst;
    return false;
  }
  b->tokens -= 1.0;
  return true;
}

static void send_text(rt_conn_t *c, const char *text) {
  if (c->closing) return;
  int r = ws_send(c->ws, false, text, strlen(text));
  if (r == -ENOBUFS) {
    /* A client that does not read is cut off rather than queued for. */
    c->closing = true;
    ws_close(c->ws, 1008, "not reading");
  }
}

/* Sends the object as a text frame and releases it. */
static void send_json(rt_conn_t *c, json_t *obj) {
  if (!obj) return;
  char *text = json_dumps(obj, JSON_COMPACT);
  json_decref(obj);
  if (text) send_text(c, text);
  free(text);
}

static void send_ok(rt_conn_t *c, const rt_frame_t *f) {
  if (f->has_id) send_json(c, json_pack("{s:s, s:s}", "type", "ok", "id", f->id));
}

static void send_error(rt_conn_t *c, bool has_id, const char *id, int status, const char *detail) {
  json_t *e = json_pack("{s:s, s:i, s:s}", "type", "error", "status", status, "detail", detail);
  if (e && has_id) json_object_set_new(e, "id", json_string(id));
  send_json(c, e);
}

static void bye(rt_conn_t *c, const char *reason, uint16_t code) {
  if (c->closing) return;
  send_json(c, json_pack("{s:s, s:s}", "type", "bye", "reason", reason));
  c->closing = true;
  ws_close(c->ws, code, reason);
}

/* ---- presence -------------------------------------------------------------------------- */

/* The local part of an address of this server's domain, lower-cased. */
static bool local_name(const char *address, char *name, size_t len) {
  char domain[256];
  rt_domain(domain, sizeof domain);
  const char *at = strrchr(address, '@');
  if (!at || strcasecmp(at + 1, domain) != 0) return false;
  size_t n = (size_t)(at - address);
  if (n >= len) return false;
  for (size_t i = 0; i < n; i++)
    name[i] = (char)(address[i] >= 'A' && address[i] <= 'Z' ? address[i] + 32 : address[i]);
  name[n] = '\0';
  return true;
}

static rt_target_t *target_get(const char *address, bool create) {
  rt_target_t *t = map_get_str(H.targets, address);
  if (t || !create) return t;
  if (!(t = calloc(1, sizeof *t))) return NULL;
  snprintf(t->address, sizeof t->address, "%s", address);
  char name[65];
  t->remote = !local_name(address, name, sizeof name);
  if (map_put_str(H.targets, t->address, t) < 0) {
    free(t);
    return NULL;
  }
  const rt_federation_t *fed = rt_federation();
  if (t->remote && fed && fed->watch) fed->watch(t->address, fed->ctx);
  return t;
}

static void target_release(rt_target_t *t) {
  if (t->n) return;
  const rt_federation_t *fed = rt_federation();
  if (t->remote && fed && fed->unwatch) fed->unwatch(t->address, fed->ctx);
  map_del_str(H.targets, t->address);
  free(t->w);
  free(t);
}

static void remote_merge(const char *name, rt_state_t *state, char *note, size_t note_len,
                         char since[32]);

/* The presence of an address as watchers see it. A federated address is
 * what its domain last said (through the federation module), else offline.
 * A local user connected to other nodes of a cluster too is the most
 * available of what each node says. */
static json_t *presence_frame(const char *address) {
  rt_state_t state = RT_OFFLINE;
  char note[RT_NOTE_MAX + 1] = "", since[32] = "", name[65];
  if (local_name(address, name, sizeof name)) {
    rt_user_t *u = map_get_str(H.users, name);
    if (u) {
      state = u->state;
      snprintf(note, sizeof note, "%s", u->note ? u->note : "");
      snprintf(since, sizeof since, "%s", u->since);
    } else {
      rt_presence_of(name, &state, note, sizeof note, since);
      state = RT_OFFLINE;
    }
    remote_merge(name, &state, note, sizeof note, since);
  } else {
    rt_presence_of(address, &state, note, sizeof note, since);
  }
  if (!since[0]) now_rfc3339(since);
  json_t *f = json_pack("{s:s, s:s, s:s, s:s}", "type", "presence", "address", address, "state",
                        rt_state_name(state), "since", since);
  /* The note is what someone online says; offline, it would be stale. */
  if (f && note[0] && state != RT_OFFLINE) json_object_set_new(f, "note", json_string(note));
  return f;
}

/* Tells every watcher of the address: one frame, encoded once. */
static void fan_out(const char *address) {
  rt_target_t *t = target_get(address, false);
  if (!t || !t->n) return;
  json_t *f = presence_frame(address);
  char *text = f ? json_dumps(f, JSON_COMPACT) : NULL;
  json_decref(f);
  if (!text) return;
  for (uint32_t i = 0; i < t->n; i++) send_text(t->w[i].conn, text);
  atomic_fetch_add(&H.presence_out, t->n);
  free(text);
}

static void presence_changed(rt_user_t *u) {
  char address[RT_ADDRESS_MAX + 1];
  address_of(u->name, address, sizeof address);
  fan_out(address);
  rt_hooks_presence(u->name, u->state, u->note);
}

static void shared_put(const rt_user_t *u);
static void shared_conns(const char *name, int delta);
static void shared_set(const char *key, rt_state_t state, const char *note, const char *since);
static void lower_address(const char *in, char *out, size_t len);

/* The most available state over the user's connections. */
static void recompute(rt_user_t *u, bool note_changed) {
  rt_state_t best = RT_OFFLINE;
  for (rt_conn_t *c = u->conns; c; c = c->next)
    if (c->state < best) best = c->state;
  if (best == u->state && !note_changed) return;
  u->state = best;
  now_rfc3339(u->since);
  shared_put(u);
  presence_changed(u);
  /* This node's view of the user, for the others (their watchers combine it). */
  if (rt_relay_active()) (void)rt_writer_presence(u->name, u->state, u->note, u->since);
}

static int watch_add(rt_conn_t *c, const char *address) {
  if (!c->watching && !(c->watching = map_new())) return -ENOMEM;
  if (map_get_str(c->watching, address)) return 0;
  if (c->nw >= RT_WATCHES_PER_CONN) return -ENOSPC;
  rt_target_t *t = target_get(address, true);
  if (!t) return -ENOMEM;
  if (c->nw == c->capw) {
    uint32_t cap = c->capw ? c->capw * 2 : 8;
    watch_ref_t *w = realloc(c->watches, cap * sizeof *w);
    if (!w) return -ENOMEM;
    c->watches = w;
    c->capw = cap;
  }
  if (t->n == t->cap) {
    uint32_t cap = t->cap ? t->cap * 2 : 4;
    watcher_ref_t *w = realloc(t->w, cap * sizeof *w);
    if (!w) return -ENOMEM;
    t->w = w;
    t->cap = cap;
  }
  if (map_put_str(c->watching, t->address, t) < 0) return -ENOMEM;
  c->watches[c->nw] = (watch_ref_t){.target = t, .index = t->n};
  t->w[t->n] = (watcher_ref_t){.conn = c, .index = c->nw};
  c->nw++;
  t->n++;
  return 0;
}

/* Removes the conn's watch at ci from both arrays. */
static void watch_remove_at(rt_conn_t *c, uint32_t ci) {
  rt_target_t *t = c->watches[ci].target;
  uint32_t ti = c->watches[ci].index;
  /* Out of the target's array: the last watcher takes the hole. */
  t->w[ti] = t->w[--t->n];
  if (ti < t->n) t->w[ti].conn->watches[t->w[ti].index].index = ti;
  /* Out of the connection's array, the same way. */
  c->watches[ci] = c->watches[--c->nw];
  if (ci < c->nw) c->watches[ci].target->w[c->watches[ci].index].index = ci;
  map_del_str(c->watching, t->address);
  target_release(t);
}

static void watch_remove(rt_conn_t *c, const char *address) {
  rt_target_t *t = c->watching ? map_get_str(c->watching, address) : NULL;
  if (!t) return;
  for (uint32_t i = 0; i < c->nw; i++)
    if (c->watches[i].target == t) {
      watch_remove_at(c, i);
      return;
    }
}

/* ---- delivery --------------------------------------------------------------------------- */

static void deliver(rt_conn_t *c, int64_t id, const char *frame) {
  if (c->closing || id <= c->max_sent) return;
  if (!c->synced) {
    /* Offline messages are on their way: this one waits behind them. */
    if (c->nq == c->capq) {
      size_t cap = c->capq ? c->capq * 2 : 8;
      queued_t *q = realloc(c->q, cap * sizeof *q);
      if (!q) return; /* it stays pending in the store and comes at the next connection */
      c->q = q;
      c->capq = cap;
    }
    char *copy = strdup(frame);
    if (!copy) return;
    c->q[c->nq++] = (queued_t){.id = id, .frame = copy};
    return;
  }
  c->max_sent = id;
  send_text(c, frame);
  atomic_fetch_add(&H.chats_out, 1);
}

static char *chat_frame(int64_t id, const char *from_addr, const char *to_addr, const char *text,
                        const char *time) {
  char mid[24];
  snprintf(mid, sizeof mid, "%" PRId64, id);
  json_t *f = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "type", "chat", "message_id", mid, "from",
                        from_addr, "to", to_addr, "text", text, "time", time);
  char *out = f ? json_dumps(f, JSON_COMPACT) : NULL;
  json_decref(f);
  return out;
}

static void send_sent_ok(rt_conn_t *c, bool has_id, const char *id, int64_t message_id,
                         const char *time) {
  char mid[24];
  snprintf(mid, sizeof mid, "%" PRId64, message_id);
  json_t *ok = json_pack("{s:s, s:s, s:s}", "type", "ok", "message_id", mid, "time", time);
  if (ok && has_id) json_object_set_new(ok, "id", json_string(id));
  send_json(c, ok);
}

/* To every connection of the user but `except`. */
static void deliver_user(const char *name, rt_conn_t *except, int64_t id, const char *frame) {
  rt_user_t *u = map_get_str(H.users, name);
  for (rt_conn_t *r = u ? u->conns : NULL; r; r = r->next)
    if (r != except) deliver(r, id, frame);
}

void rt_hub_sent(rt_sent_t *s) {
  rt_conn_t *c = s->session ? map_get_u64(H.sessions, s->session) : NULL;
  if (s->status) {
    if (c) send_error(c, s->has_id, s->id, s->status, s->detail);
    return;
  }
  char from[RT_ADDRESS_MAX + 1], to[RT_ADDRESS_MAX + 1];
  if (s->from_remote[0])
    snprintf(from, sizeof from, "%s", s->from_remote);
  else
    address_of(s->from, from, sizeof from);
  if (s->to_remote[0])
    snprintf(to, sizeof to, "%s", s->to_remote);
  else
    address_of(s->to, to, sizeof to);
  char *frame = chat_frame(s->message_id, from, to, s->text, s->time);
  if (s->to_remote[0]) {
    /* Stored; its sender hears ok once the other domain has it. */
    remote_pending_t *p = calloc(1, sizeof *p);
    if (!p || map_put_u64(H.remote_pending, (uint64_t)s->message_id, p) < 0) {
      free(p);
      free(frame);
      if (c) send_error(c, s->has_id, s->id, 500, "The server ran out of memory; send again.");
      return;
    }
    p->session = s->session;
    p->has_id = s->has_id;
    memcpy(p->id, s->id, sizeof p->id);
    snprintf(p->from, sizeof p->from, "%s", s->from);
    memcpy(p->time, s->time, sizeof p->time);
    p->frame = frame;
    return;
  }
  if (c) send_sent_ok(c, s->has_id, s->id, s->message_id, s->time);
  /* Several nodes: every node (this one too) delivers what it hears from
   * the store, in commit order (rt_hub_relayed). */
  if (rt_relay_active()) {
    free(frame);
    return;
  }
  if (!frame) return;
  /* To every connection of the recipient, and of the sender but the one
   * that sent it: every device shows the conversation. */
  deliver_user(s->to, NULL, s->message_id, frame);
  if (s->from[0] && strcmp(s->from, s->to) != 0) deliver_user(s->from, c, s->message_id, frame);
  free(frame);
}

typedef struct remote_answer {
  int64_t message_id;
  int status;
  char detail[256];
} remote_answer_t;

static void remote_answered(void *arg) {
  remote_answer_t *a = arg;
  remote_pending_t *p = H.remote_pending ? map_del_u64(H.remote_pending, (uint64_t)a->message_id)
                                         : NULL;
  if (p) {
    rt_conn_t *c = p->session ? map_get_u64(H.sessions, p->session) : NULL;
    if (a->status) {
      if (c) send_error(c, p->has_id, p->id, a->status, a->detail);
    } else {
      if (c) send_sent_ok(c, p->has_id, p->id, a->message_id, p->time);
      if (p->frame) deliver_user(p->from, c, a->message_id, p->frame);
    }
    free(p->frame);
    free(p);
  }
  free(a);
}

void rt_federation_sent(int64_t message_id, int status, const char *detail) {
  remote_answer_t *a = calloc(1, sizeof *a);
  if (!a) return;
  a->message_id = message_id;
  a->status = status;
  snprintf(a->detail, sizeof a->detail, "%s",
           detail ? detail : "The other organisation's server did not take the message.");
  if (!H.loop || loop_post(H.loop, remote_answered, a) != 0) free(a);
}

typedef struct remote_presence {
  char address[RT_ADDRESS_MAX + 1];
} remote_presence_t;

static void remote_presence_changed(void *arg) {
  remote_presence_t *r = arg;
  if (H.targets) fan_out(r->address);
  free(r);
}

void rt_federation_presence(const char *address, rt_state_t state, const char *note) {
  if (!rt_address_ok(address) || state >= RT_STATE_COUNT) return;
  remote_presence_t *r = calloc(1, sizeof *r);
  if (!r) return;
  lower_address(address, r->address, sizeof r->address);
  char since[32];
  now_rfc3339(since);
  shared_set(r->address, state, note, since);
  if (!H.loop || loop_post(H.loop, remote_presence_changed, r) != 0) free(r);
}

void rt_hub_marked(const rt_marked_t *m) {
  char mid[24], by[RT_ADDRESS_MAX + 1];
  snprintf(mid, sizeof mid, "%" PRId64, m->message_id);
  address_of(m->by, by, sizeof by);
  json_t *f = json_pack("{s:s, s:s, s:s, s:s}", "type", m->kind == 'r' ? "chat.read" : "chat.delivered",
                        "message_id", mid, "by", by, "time", m->time);
  char *text = f ? json_dumps(f, JSON_COMPACT) : NULL;
  json_decref(f);
  if (!text) return;
  rt_user_t *s = map_get_str(H.users, m->sender);
  for (rt_conn_t *c = s ? s->conns : NULL; c; c = c->next) send_text(c, text);
  /* Read on one device is read on all: the reader's other clients hear it. */
  if (m->kind == 'r' && strcmp(m->by, m->sender) != 0) {
    rt_user_t *r = map_get_str(H.users, m->by);
    for (rt_conn_t *c = r ? r->conns : NULL; c; c = c->next) send_text(c, text);
  }
  free(text);
}

static void flush_queue(rt_conn_t *c) {
  c->synced = true;
  for (size_t i = 0; i < c->nq; i++) {
    deliver(c, c->q[i].id, c->q[i].frame);
    free(c->q[i].frame);
  }
  free(c->q);
  c->q = NULL;
  c->nq = c->capq = 0;
}

/* Offline messages wait while this much is queued for the client. */
#define RT_SYNC_QUEUED (RT_MAX_QUEUED / 4)

static void backlog_free(rt_conn_t *c) {
  for (size_t i = c->backlog_at; i < c->nbacklog; i++) free(c->backlog[i].frame);
  free(c->backlog);
  c->backlog = NULL;
  c->nbacklog = c->backlog_at = 0;
}

/* Sends offline messages while the client keeps up; then the next page,
 * or the live ones that waited. */
static void backlog_pump(rt_conn_t *c) {
  while (c->backlog_at < c->nbacklog && !c->closing) {
    if (ws_queued(c->ws) > RT_SYNC_QUEUED) {
      ws_want_writable(c->ws); /* on_writable continues */
      return;
    }
    queued_t *q = &c->backlog[c->backlog_at++];
    if (q->id > c->max_sent) {
      c->max_sent = q->id;
      send_text(c, q->frame);
    }
    free(q->frame);
    q->frame = NULL;
  }
  if (c->closing) return;
  bool more = c->backlog_more;
  int64_t last = c->backlog_last;
  backlog_free(c);
  if (more && rt_writer_sync(c->session, c->user->name, last) == 0) return;
  flush_queue(c);
}

void rt_hub_synced(uint64_t session, const store_message_t *messages, size_t count, bool more,
                   int failed) {
  rt_conn_t *c = map_get_u64(H.sessions, session);
  if (!c) return;
  if (failed) {
    /* The store could not be read: live messages flow, and what was missed
     * stays pending for the next connection. */
    log_warning("real-time: offline messages for %s could not be read (%s)", c->user->name,
                strerror(-failed));
    flush_queue(c);
    return;
  }
  backlog_free(c);
  c->backlog = count ? calloc(count, sizeof *c->backlog) : NULL;
  if (count && !c->backlog) {
    flush_queue(c); /* they stay pending for the next connection */
    return;
  }
  char to[RT_ADDRESS_MAX + 1];
  address_of(c->user->name, to, sizeof to);
  for (size_t i = 0; i < count; i++) {
    const store_message_t *m = &messages[i];
    char from[RT_ADDRESS_MAX + 1];
    if (m->sender_name)
      address_of(m->sender_name, from, sizeof from);
    else
      snprintf(from, sizeof from, "%s", m->sender_remote ? m->sender_remote : "");
    char *frame = chat_frame(m->id, from, to, m->text, m->time);
    if (frame) c->backlog[c->nbacklog++] = (queued_t){.id = m->id, .frame = frame};
  }
  c->backlog_more = more && count;
  c->backlog_last = count ? messages[count - 1].id : 0;
  backlog_pump(c);
}

static void on_writable(ws_t *ws, void *user) {
  (void)ws;
  rt_pending_t *p = user;
  rt_conn_t *c = p->conn;
  if (c && !c->synced && c->backlog) backlog_pump(c);
}

/* ---- frames from the client ----------------------------------------------------------------- */

static void lower_address(const char *in, char *out, size_t len) {
  size_t i = 0;
  for (; in[i] && i + 1 < len; i++) out[i] = (char)(in[i] >= 'A' && in[i] <= 'Z' ? in[i] + 32 : in[i]);
  out[i] = '\0';
}

static void on_frame(rt_conn_t *c, const rt_frame_t *f) {
  switch (f->type) {
  case RT_FRAME_PING: send_ok(c, f); return;
  case RT_FRAME_PRESENCE_SET: {
    c->state = f->state;
    bool note_changed = false;
    if (f->has_note && strcmp(f->note, c->user->note ? c->user->note : "") != 0) {
      set_note(&c->user->note, f->note);
      note_changed = true;
    }
    recompute(c->user, note_changed);
    send_ok(c, f);
    return;
  }
  case RT_FRAME_PRESENCE_WATCH:
  case RT_FRAME_PRESENCE_UNWATCH: {
    size_t i;
    const json_t *v;
    json_array_foreach(f->addresses, i, v) {
      char address[RT_ADDRESS_MAX + 1];
      lower_address(json_string_value(v), address, sizeof address);
      if (f->type == RT_FRAME_PRESENCE_UNWATCH) {
        watch_remove(c, address);
        continue;
      }
      int r = watch_add(c, address);
      if (r == -ENOSPC) {
        send_error(c, f->has_id, f->id, 400,
                   "A connection watches at most 5,000 addresses; unwatch some first.");
        return;
      }
      if (r < 0) {
        send_error(c, f->has_id, f->id, 500, "The server ran out of memory; try again.");
        return;
      }
      send_json(c, presence_frame(address));
    }
    send_ok(c, f);
    return;
  }
  case RT_FRAME_CHAT_SEND: {
    char to[65];
    if (!take(&c->chats, RT_CHATS_PER_SECOND_CONN, RT_CHATS_PER_SECOND_CONN) ||
        !take(&c->user->chats, RT_CHATS_PER_SECOND_USER, RT_CHATS_PER_SECOND_USER)) {
      send_error(c, f->has_id, f->id, 429,
                 "Too many messages per second; wait a moment and send again.");
      return;
    }
    int r;
    if (local_name(f->to, to, sizeof to)) {
      r = rt_writer_send(c->session, f->id, f->has_id, c->user->name, to, f->text, f->text_len);
    } else if (rt_federation() && rt_federation()->send) {
      char remote[RT_ADDRESS_MAX + 1];
      lower_address(f->to, remote, sizeof remote);
      r = rt_writer_send_remote(c->session, f->id, f->has_id, c->user->name, remote, f->text,
                                f->text_len);
    } else {
      send_error(c, f->has_id, f->id, 501,
                 "Messages to other organisations need federation, which is not switched on; "
                 "write to an address of this server's domain.");
      return;
    }
    if (r < 0) send_error(c, f->has_id, f->id, 503, "The server is busy; send the message again.");
    return;
  }
  case RT_FRAME_CHAT_RECEIVED:
    if (f->message_id <= INT64_MAX) rt_writer_received(c->user->name, (int64_t)f->message_id);
    send_ok(c, f);
    return;
  case RT_FRAME_CHAT_READ:
    if (f->message_id <= INT64_MAX) rt_writer_read(c->user->name, (int64_t)f->message_id);
    send_ok(c, f);
    return;
  case RT_FRAME_TYPING: {
    char to[65], from[RT_ADDRESS_MAX + 1];
    if (!local_name(f->to, to, sizeof to)) return; /* federated typing is not carried */
    rt_user_t *u = map_get_str(H.users, to);
    if (!u) return;
    address_of(c->user->name, from, sizeof from);
    json_t *t = json_pack("{s:s, s:s}", "type", "typing", "from", from);
    char *text = t ? json_dumps(t, JSON_COMPACT) : NULL;
    json_decref(t);
    for (rt_conn_t *r = u->conns; text && r; r = r->next) send_text(r, text);
    free(text);
    return;
  }
  }
}

/* ---- the connection's life ------------------------------------------------------------------ */

static rt_user_t *user_get(const char *name) {
  rt_user_t *u = map_get_str(H.users, name);
  if (u) return u;
  if (!(u = calloc(1, sizeof *u))) return NULL;
  snprintf(u->name, sizeof u->name, "%s", name);
  u->state = RT_OFFLINE;
  /* The note outlives the connections: it is still there at the next one. */
  rt_state_t was;
  char note[RT_NOTE_MAX + 1];
  rt_presence_of(name, &was, note, sizeof note, u->since);
  set_note(&u->note, note);
  if (map_put_str(H.users, u->name, u) < 0) {
    free(u);
    return NULL;
  }
  atomic_fetch_add(&H.users_connected, 1);
  return u;
}

static void on_open(ws_t *ws, void *user) {
  rt_pending_t *p = user;
  rt_conn_t *c = calloc(1, sizeof *c);
  rt_user_t *u = c ? user_get(p->who.name) : NULL;
  if (!c || !u || u->nconns >= RT_CONNS_PER_USER) {
    /* ws_close ends in on_close, which frees the pending record. */
    ws_close(ws, u && u->nconns >= RT_CONNS_PER_USER ? 1008 : 1011,
             u ? "too many connections for this user" : "out of memory");
    free(c);
    return;
  }
  c->ws = ws;
  c->user = u;
  c->session = ++H.next_session;
  c->state = RT_AVAILABLE;
  snprintf(c->client, sizeof c->client, "%s", p->who.client);
  snprintf(c->address, sizeof c->address, "%s", p->address);
  now_rfc3339(c->since);
  if (map_put_u64(H.sessions, c->session, c) < 0) {
    ws_close(ws, 1011, "out of memory");
    free(c);
    return;
  }
  c->next = u->conns;
  if (u->conns) u->conns->prev = c;
  u->conns = c;
  u->nconns++;
  /* The pending record stays the ws's user: on_message and on_close find
   * the connection through it. */
  p->conn = c;
  shared_conns(u->name, +1);
  char address[RT_ADDRESS_MAX + 1], session[24], now[32];
  address_of(u->name, address, sizeof address);
  snprintf(session, sizeof session, "c%" PRIu64, c->session);
  now_rfc3339(now);
  send_json(c, json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", "hello", "user", u->name, "address",
                         address, "session", session, "server_time", now));
  recompute(u, false);
  if (rt_writer_sync(c->session, u->name, 0) < 0) flush_queue(c);
}

static void conn_free(rt_conn_t *c) {
  backlog_free(c);
  for (size_t i = 0; i < c->nq; i++) free(c->q[i].frame);
  free(c->q);
  free(c->watches);
  map_free(c->watching);
  free(c);
}

/* 400 for a frame that is wrong, then 1008 when a client keeps sending
 * nothing but wrong or too many frames: it is not a client of this protocol. */
#define RT_STRIKES_MAX (3 * RT_FRAMES_PER_SECOND)

static void strike(rt_conn_t *c) {
  atomic_fetch_add(&H.frames_refused, 1);
  if (++c->strikes > RT_STRIKES_MAX) {
    c->closing = true;
    ws_close(c->ws, 1008, "too many refused frames");
  }
}

static void on_message(ws_t *ws, bool binary, const uint8_t *data, size_t len, void *user) {
  (void)ws;
  rt_pending_t *p = user;
  rt_conn_t *c = p->conn;
  if (!c || c->closing) return;
  atomic_fetch_add(&H.frames_in, 1);
  if (!take(&c->frames, RT_FRAMES_PER_SECOND, RT_FRAMES_PER_SECOND)) {
    /* Said once per second of flooding, not once per frame. */
    if (!c->told_flood) send_error(c, false, NULL, 429, "Too many frames per second; slow down.");
    c->told_flood = true;
    strike(c);
    return;
  }
  c->told_flood = false;
  if (binary) {
    /* Not a client of this protocol (1003: a kind of data it cannot take). */
    c->closing = true;
    ws_close(c->ws, 1003, "binary frames are not part of the protocol");
    return;
  }
  rt_frame_t f;
  int status = 0;
  char err[300];
  if (rt_frame_parse((const char *)data, len, &f, &status, err, sizeof err) != 0) {
    send_error(c, f.has_id, f.id, status, err);
    rt_frame_clear(&f);
    strike(c);
    return;
  }
  c->strikes = 0;
  on_frame(c, &f);
  rt_frame_clear(&f);
}

static void on_close(ws_t *ws, uint16_t code, void *user) {
  (void)ws;
  (void)code;
  rt_pending_t *p = user;
  rt_conn_t *c = p->conn;
  if (c) {
    while (c->nw) watch_remove_at(c, c->nw - 1);
    rt_user_t *u = c->user;
    if (c->prev)
      c->prev->next = c->next;
    else
      u->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    u->nconns--;
    map_del_u64(H.sessions, c->session);
    conn_free(c);
    recompute(u, false);
    shared_conns(u->name, -1);
    if (!u->nconns) {
      map_del_str(H.users, u->name);
      atomic_fetch_sub(&H.users_connected, 1);
      free(u->note);
      free(u);
    }
  }
  rt_pending_free(p);
}

const ws_callbacks_t rt_ws_callbacks = {
    .on_open = on_open, .on_message = on_message, .on_writable = on_writable,
    .on_close = on_close};

void rt_pending_free(void *pending) {
  free(pending);
  rt_hub_unreserve();
}

/* A place in the runtime's descriptor budget, shared with the other
 * modules' long-lived connections. */
bool rt_hub_reserve(void) {
  if (!runtime_connection_take()) return false;
  atomic_fetch_add(&H.reserved, 1);
  return true;
}

void rt_hub_unreserve(void) {
  atomic_fetch_sub(&H.reserved, 1);
  runtime_connection_give();
}
size_t rt_hub_connections(void) { return atomic_load(&H.reserved); }

/* ---- the shared presence table ---------------------------------------------------------------- */

/* What the REST handlers read without asking the loop: the presence of
 * every user seen since the start (offline ones keep the time they left,
 * which is what "since" means for them). */
typedef struct shared_presence {
  rt_state_t state;
  uint32_t conns; /* local users: client connections now */
  char *note;     /* NULL: none */
  char since[32];
} shared_presence_t;

static struct {
  pthread_rwlock_t lock;
  map_t *m; /* local name or federated address -> shared_presence_t */
} P = {.lock = PTHREAD_RWLOCK_INITIALIZER};

/* (P.lock held for writing) */
static shared_presence_t *shared_entry(const char *key) {
  shared_presence_t *e = P.m ? map_get_str(P.m, key) : NULL;
  if (!e && P.m && (e = calloc(1, sizeof *e))) {
    e->state = RT_OFFLINE;
    if (map_put_str(P.m, key, e) < 0) {
      free(e);
      e = NULL;
    }
  }
  return e;
}

static void shared_set(const char *key, rt_state_t state, const char *note, const char *since) {
  pthread_rwlock_wrlock(&P.lock);
  shared_presence_t *e = shared_entry(key);
  if (e) {
    e->state = state;
    set_note(&e->note, note);
    snprintf(e->since, sizeof e->since, "%s", since);
  }
  pthread_rwlock_unlock(&P.lock);
}

static void shared_put(const rt_user_t *u) { shared_set(u->name, u->state, u->note, u->since); }

static void shared_conns(const char *name, int delta) {
  pthread_rwlock_wrlock(&P.lock);
  shared_presence_t *e = shared_entry(name);
  if (e) e->conns = (uint32_t)((int)e->conns + delta);
  pthread_rwlock_unlock(&P.lock);
}

bool rt_presence_of(const char *name, rt_state_t *state, char *note, size_t note_len,
                    char since[32]) {
  pthread_rwlock_rdlock(&P.lock);
  shared_presence_t *e = P.m ? map_get_str(P.m, name) : NULL;
  if (e) {
    *state = e->state;
    if (note_len) snprintf(note, note_len, "%s", e->note ? e->note : "");
    snprintf(since, 32, "%s", e->since);
  }
  pthread_rwlock_unlock(&P.lock);
  if (!e) {
    *state = RT_OFFLINE;
    if (note_len) *note = '\0';
    since[0] = '\0';
  }
  return e != NULL;
}

bool rt_user_connected(const char *name) {
  pthread_rwlock_rdlock(&P.lock);
  shared_presence_t *e = P.m ? map_get_str(P.m, name) : NULL;
  bool connected = e && e->conns > 0;
  pthread_rwlock_unlock(&P.lock);
  return connected;
}

void rt_presence_forget(const char *name) {
  pthread_rwlock_wrlock(&P.lock);
  shared_presence_t *e = P.m ? map_del_str(P.m, name) : NULL;
  if (e) free(e->note);
  free(e);
  pthread_rwlock_unlock(&P.lock);
}

static void shared_free_entry(const void *key, size_t len, void *value, void *ctx) {
  (void)key, (void)len, (void)ctx;
  free(((shared_presence_t *)value)->note);
  free(value);
}

/* ---- the loop's own work ------------------------------------------------------------------------ */

static void each_conn(void (*fn)(rt_conn_t *c, void *ctx), void *ctx);

struct each_ctx {
  void (*fn)(rt_conn_t *c, void *ctx);
  void *ctx;
  rt_conn_t **list;
  size_t n;
};

static void collect(const void *key, size_t len, void *value, void *vctx) {
  (void)key, (void)len;
  struct each_ctx *e = vctx;
  e->list[e->n++] = value;
}

/* Collected first: fn may close connections (which leave the map). */
static void each_conn(void (*fn)(rt_conn_t *c, void *ctx), void *ctx) {
  size_t n = map_count(H.sessions);
  if (!n) return;
  struct each_ctx e = {.fn = fn, .ctx = ctx, .list = malloc(n * sizeof(rt_conn_t *))};
  if (!e.list) return;
  map_each(H.sessions, collect, &e);
  for (size_t i = 0; i < e.n; i++) fn(e.list[i], ctx);
  free(e.list);
}

static void ping_one(rt_conn_t *c, void *ctx) {
  (void)ctx;
  if (!c->closing) ws_ping(c->ws);
}

/* A ping every RT_PING_SECONDS; the WebSocket's idle timer (RT_IDLE_SECONDS
 * without a frame or pong) closes the silent ones, and their presence goes
 * offline with them. */
static void on_ping_timer(uv_timer_t *t) {
  (void)t;
  each_conn(ping_one, NULL);
}

typedef struct close_req {
  const char *reason;
  uint16_t code;
  const char *name; /* NULL: everyone */
} close_req_t;

static void close_one(rt_conn_t *c, void *ctx) {
  const close_req_t *r = ctx;
  if (!r->name || strcmp(c->user->name, r->name) == 0) bye(c, r->reason, r->code);
}

void rt_hub_close_all(const char *reason, uint16_t code) {
  close_req_t r = {.reason = reason, .code = code};
  each_conn(close_one, &r);
}

void rt_hub_close_user(const char *name, const char *reason) {
  close_req_t r = {.reason = reason, .code = 1000, .name = name};
  rt_user_t *u = map_get_str(H.users, name);
  for (rt_conn_t *c = u ? u->conns : NULL; c; c = c->next) close_one(c, &r);
}

/* ---- the admin's view ------------------------------------------------------------------------- */

static void report_one(rt_conn_t *c, void *ctx) {
  json_t *users = ctx;
  json_t *u = json_object_get(users, c->user->name);
  if (!u) {
    char address[RT_ADDRESS_MAX + 1];
    address_of(c->user->name, address, sizeof address);
    u = json_pack("{s:s, s:s, s:s, s:s, s:[]}", "user", c->user->name, "address", address,
                  "state", rt_state_name(c->user->state), "since", c->user->since,
                  "connections");
    if (!u) return;
    if (c->user->note) json_object_set_new(u, "note", json_string(c->user->note));
    json_object_set_new(users, c->user->name, u);
  }
  char session[24];
  snprintf(session, sizeof session, "c%" PRIu64, c->session);
  json_array_append_new(json_object_get(u, "connections"),
                        json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I}", "session", session,
                                  "client", c->client, "address", c->address, "state",
                                  rt_state_name(c->state), "connected_at", c->since, "watches",
                                  (json_int_t)c->nw, "queued_bytes",
                                  (json_int_t)ws_queued(c->ws)));
}

static int by_user(const void *a, const void *b) {
  return strcmp(json_string_value(json_object_get(*(json_t *const *)a, "user")),
                json_string_value(json_object_get(*(json_t *const *)b, "user")));
}

void rt_hub_report(void *json_out) {
  json_t *users = json_object();
  if (!users) return;
  each_conn(report_one, users);
  /* Ordered by name, as every list of users is. */
  size_t n = json_object_size(users), i = 0;
  json_t **list = malloc((n ? n : 1) * sizeof *list), *arr = json_array();
  const char *key;
  json_t *v;
  if (list && arr) {
    json_object_foreach(users, key, v) list[i++] = v;
    qsort(list, n, sizeof *list, by_user);
    for (i = 0; i < n; i++) json_array_append(arr, list[i]);
  }
  free(list);
  json_decref(users);
  *(json_t **)json_out = arr;
}

void rt_hub_counters(rt_hub_counters_t *out) {
  out->frames_in = atomic_load(&H.frames_in);
  out->frames_refused = atomic_load(&H.frames_refused);
  out->presence_out = atomic_load(&H.presence_out);
  out->chats_out = atomic_load(&H.chats_out);
  out->users = atomic_load(&H.users_connected);
}

/* ---- start and stop --------------------------------------------------------------------------- */

static void start_on_loop(void *arg) {
  int *r = arg;
  *r = uv_timer_init(loop_uv(H.loop), &H.ping);
  if (*r == 0) {
    H.ping_started = true;
    uv_timer_start(&H.ping, on_ping_timer, RT_PING_SECONDS * 1000, RT_PING_SECONDS * 1000);
  }
}

int rt_hub_init(loop_t *loop) {
  H.loop = loop;
  H.users = map_new();
  H.targets = map_new();
  H.sessions = map_new();
  H.remote_pending = map_new();
  pthread_rwlock_wrlock(&P.lock);
  if (!P.m) P.m = map_new();
  bool shared_ok = P.m != NULL;
  pthread_rwlock_unlock(&P.lock);
  if (!H.users || !H.targets || !H.sessions || !H.remote_pending || !shared_ok) {
    rt_hub_shutdown();
    return -ENOMEM;
  }
  int r = -1;
  if (loop_call(loop, start_on_loop, &r, 2000) != 0 || r != 0) {
    rt_hub_shutdown();
    return -EIO;
  }
  return 0;
}

static void free_pending(const void *key, size_t len, void *value, void *ctx) {
  (void)key, (void)len, (void)ctx;
  free(((remote_pending_t *)value)->frame);
  free(value);
}

static void stop_on_loop(void *arg) {
  rt_hub_remote_clear();
  (void)arg;
  if (H.ping_started) uv_close((uv_handle_t *)&H.ping, NULL);
  H.ping_started = false;
  /* Connections that did not close in the drain close when the loop stops,
   * and their on_close needs the maps. */
  H.orphaned = map_count(H.sessions) > 0;
  if (H.orphaned) log_warning("real-time: %zu client connection(s) still open at shutdown",
                              map_count(H.sessions));
}

/* After drain: the connections are gone (or the loop closes them when it
 * stops, and their on_close runs there). */
void rt_hub_shutdown(void) {
  if (H.loop && loop_call(H.loop, stop_on_loop, NULL, 2000) != 0) H.orphaned = true;
  H.loop = NULL;
  if (H.orphaned) return;
  map_free(H.users);
  map_free(H.targets);
  map_free(H.sessions);
  if (H.remote_pending) map_each(H.remote_pending, free_pending, NULL);
  map_free(H.remote_pending);
  H.users = H.targets = H.sessions = H.remote_pending = NULL;
  pthread_rwlock_wrlock(&P.lock);
  if (P.m) map_each(P.m, shared_free_entry, NULL);
  map_free(P.m);
  P.m = NULL;
  pthread_rwlock_unlock(&P.lock);
}

/* ---- other nodes of a cluster (relay.c hears them) -------------------------------------------- */

#define RT_REMOTE_NODES_MAX 16

/* What other nodes say of a local user connected to them; loop thread. */
typedef struct remote_view {
  char node[64];
  rt_state_t state;
  char *note;
  char since[32];
} remote_view_t;
typedef struct remote_user {
  remote_view_t v[RT_REMOTE_NODES_MAX];
  size_t n;
} remote_user_t;

static map_t *remote_users; /* name -> remote_user_t */

static void remote_merge(const char *name, rt_state_t *state, char *note, size_t note_len,
                         char since[32]) {
  remote_user_t *r = remote_users ? map_get_str(remote_users, name) : NULL;
  for (size_t i = 0; r && i < r->n; i++) {
    if (r->v[i].state >= *state) continue;
    *state = r->v[i].state;
    if (note_len) snprintf(note, note_len, "%s", r->v[i].note ? r->v[i].note : "");
    snprintf(since, 32, "%s", r->v[i].since);
  }
}

/* Another node's view changed: the watchers here hear the combination. */
static void remote_changed(const char *name) {
  char address[RT_ADDRESS_MAX + 1];
  address_of(name, address, sizeof address);
  fan_out(address);
}

void rt_hub_remote_presence(void *arg) {
  rt_remote_presence_t *p = arg;
  if (!remote_users) remote_users = map_new();
  remote_user_t *r = remote_users ? map_get_str(remote_users, p->name) : NULL;
  if (!r && remote_users && p->state != RT_OFFLINE && (r = calloc(1, sizeof *r)) &&
      map_put_str(remote_users, p->name, r) < 0) {
    free(r);
    r = NULL;
  }
  if (r) {
    size_t i = 0;
    while (i < r->n && strcmp(r->v[i].node, p->node) != 0) i++;
    if (p->state == RT_OFFLINE) {
      if (i < r->n) {
        free(r->v[i].note);
        r->v[i] = r->v[--r->n];
      }
    } else if (i < r->n || r->n < RT_REMOTE_NODES_MAX) {
      if (i == r->n) {
        memset(&r->v[i], 0, sizeof r->v[i]);
        r->n++;
      }
      snprintf(r->v[i].node, sizeof r->v[i].node, "%s", p->node);
      r->v[i].state = p->state;
      set_note(&r->v[i].note, p->note[0] ? p->note : NULL);
      snprintf(r->v[i].since, sizeof r->v[i].since, "%s", p->since);
    }
    if (!r->n) {
      map_del_str(remote_users, p->name);
      free(r);
    }
  }
  remote_changed(p->name);
  free(p);
}

typedef struct forget_node_ctx {
  const char *node;
  char (*names)[65];
  size_t n, cap;
} forget_node_ctx_t;

static void collect_node(const void *key, size_t len, void *value, void *vctx) {
  (void)len;
  forget_node_ctx_t *c = vctx;
  remote_user_t *r = value;
  for (size_t i = 0; i < r->n; i++)
    if (strcmp(r->v[i].node, c->node) == 0 && c->n < c->cap) {
      snprintf(c->names[c->n++], 65, "%s", (const char *)key);
      break;
    }
}

/* A node (re)started: what it said before is void. */
void rt_hub_node_started(void *arg) {
  char *node = arg;
  size_t cap = remote_users ? map_count(remote_users) : 0;
  forget_node_ctx_t c = {.node = node, .cap = cap, .names = cap ? calloc(cap, 65) : NULL};
  if (c.names) map_each(remote_users, collect_node, &c);
  for (size_t i = 0; i < c.n; i++) {
    rt_remote_presence_t *p = calloc(1, sizeof *p);
    if (!p) break;
    snprintf(p->node, sizeof p->node, "%s", node);
    snprintf(p->name, sizeof p->name, "%s", c.names[i]);
    p->state = RT_OFFLINE;
    rt_hub_remote_presence(p);
  }
  free(c.names);
  free(node);
}

/* A message heard from the store: to the recipient's connections here,
 * and the sender's (but the one that sent it, on the node it sent from). */
void rt_hub_relayed(void *arg) {
  rt_relayed_t *m = arg;
  char from[RT_ADDRESS_MAX + 1], to[RT_ADDRESS_MAX + 1];
  if (m->from[0])
    address_of(m->from, from, sizeof from);
  else
    snprintf(from, sizeof from, "%s", m->from_remote);
  address_of(m->to, to, sizeof to);
  char *frame = chat_frame(m->id, from, to, m->text, m->time);
  if (frame) {
    rt_conn_t *sender = m->session ? map_get_u64(H.sessions, m->session) : NULL;
    deliver_user(m->to, NULL, m->id, frame);
    if (m->from[0] && strcmp(m->from, m->to) != 0) deliver_user(m->from, sender, m->id, frame);
    free(frame);
  }
  free(m->text);
  free(m);
}

void rt_hub_relayed_mark(void *arg) {
  rt_marked_t *m = arg;
  rt_hub_marked(m);
  free(m);
}

static void remote_user_free(const void *key, size_t len, void *value, void *ctx) {
  (void)key, (void)len, (void)ctx;
  remote_user_t *r = value;
  for (size_t i = 0; i < r->n; i++) free(r->v[i].note);
  free(r);
}

void rt_hub_remote_clear(void) {
  if (!remote_users) return;
  map_each(remote_users, remote_user_free, NULL);
  map_free(remote_users);
  remote_users = NULL;
}
