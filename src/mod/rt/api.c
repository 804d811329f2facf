/* The real-time core's HTTP side, on the HTTP threads: the ticket and the
 * WebSocket upgrade, contacts, history, the journal, and the admin's
 * presence and retention. What they need of the hub is either in the shared
 * presence table (hub.c) or asked with loop_call. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "conf/settings.h"
#include "core/map.h"
#include "core/secret.h"
#include "core/timefmt.h"
#include "http/websocket.h"
#include "mod/directory/directory.h"
#include "mod/rt/internal.h"

static struct {
  store_t *store;
  loop_t *loop;
} A;

/* ---- small helpers ----------------------------------------------------------------------- */

static enum MHD_Result reply_no_content(http_request_t *req) {
  return http_reply_buffer(req, MHD_HTTP_NO_CONTENT, NULL, "", 0, NULL, NULL);
}

/* A query parameter as an integer in [min, max]; absent gives def. false
 * (and a reply) when it is not one. */
static bool query_int(http_request_t *req, const char *name, int64_t min, int64_t max,
                      int64_t def, int64_t *out, enum MHD_Result *reply) {
  if (http_parse_int_param(http_query(req, name), min, max, def, out) == 0) return true;
  char rule[120];
  snprintf(rule, sizeof rule, "a whole number from %" PRId64 " to %" PRId64, min, max);
  *reply = http_reply_bad_param(req, name, rule);
  return false;
}

static void lower(char *s) {
  for (; *s; s++)
    if (*s >= 'A' && *s <= 'Z') *s = (char)(*s + 32);
}

/* The local part of an address of this server's domain (lower-cased), or
 * false. */
static bool local_part(const char *address, char *name, size_t len) {
  char domain[256];
  rt_domain(domain, sizeof domain);
  const char *at = strrchr(address, '@');
  if (!at || strcasecmp(at + 1, domain) != 0 || (size_t)(at - address) >= len) return false;
  memcpy(name, address, (size_t)(at - address));
  name[at - address] = '\0';
  lower(name);
  return true;
}

/* The request's user, with the store's id: 0, or < 0 with *reply queued. */
typedef struct client {
  json_t *doc;
  const char *name;
  int64_t id;
} client_t;

static int client_of(http_request_t *req, client_t *c, enum MHD_Result *reply) {
  memset(c, 0, sizeof *c);
  int r = directory_client_user(req, &c->doc, reply);
  if (r < 0) return r;
  c->name = json_string_value(json_object_get(c->doc, "name"));
  store_txn_t *t;
  store_user_t u;
  r = store_read_begin(A.store, "real-time: client", &t);
  if (r == 0) {
    r = store_user_get(t, c->name ? c->name : "", &u);
    store_read_end(t);
  }
  if (r < 0) {
    json_decref(c->doc);
    c->doc = NULL;
    *reply = r == -ENOENT
                 ? http_reply_problem(req, MHD_HTTP_UNAUTHORIZED, "unauthorized", "Not logged in",
                                      "The user of this token no longer exists.", NULL)
                 : http_reply_store_failed(req);
    return r;
  }
  c->id = u.id;
  return 0;
}

static void client_clear(client_t *c) { json_decref(c->doc); }

static rt_who_t who_of(const json_t *doc, const char *client) {
  rt_who_t w = {0};
  snprintf(w.name, sizeof w.name, "%s", json_string_value(json_object_get(doc, "name")));
  const json_t *device = json_object_get(doc, "device");
  w.mobile = json_is_object(device);
  const char *platform = w.mobile ? json_string_value(json_object_get(device, "platform")) : NULL;
  snprintf(w.client, sizeof w.client, "%s", client ? client : platform ? platform : "desktop");
  return w;
}

/* ---- tickets --------------------------------------------------------------------------------- */

typedef struct ticket {
  rt_who_t who;
  int64_t expires; /* unix seconds */
} ticket_t;

static struct {
  pthread_mutex_t lock;
  map_t *m; /* ticket text -> ticket_t */
} T = {.lock = PTHREAD_MUTEX_INITIALIZER};

typedef struct expired_ctx {
  int64_t now;
  char **keys;
  size_t n, cap;
} expired_ctx_t;

static void find_expired(const void *key, size_t len, void *value, void *vctx) {
  expired_ctx_t *e = vctx;
  if (((ticket_t *)value)->expires > e->now || e->n == e->cap) return;
  char *k = malloc(len + 1);
  if (!k) return;
  memcpy(k, key, len);
  k[len] = '\0';
  e->keys[e->n++] = k;
}

/* (T.lock) Drops expired tickets, a bounded number per call. */
static void purge_expired(int64_t now) {
  char *keys[256];
  expired_ctx_t e = {.now = now, .keys = keys, .cap = 256};
  map_each(T.m, find_expired, &e);
  for (size_t i = 0; i < e.n; i++) {
    free(map_del_str(T.m, keys[i]));
    free(keys[i]);
  }
}

/* Several nodes: the ticket is in the store, so that the node the
 * WebSocket reaches (the load balancer picks) need not be the one that
 * issued it. */
static int txn_ticket_put(store_txn_t *t, void *ctx) {
  void **a = ctx;
  return store_ticket_put(t, a[0], a[1]);
}

typedef struct take_ctx {
  const char *hash;
  store_ticket_t got;
} take_ctx_t;

static int txn_ticket_take(store_txn_t *t, void *vctx) {
  take_ctx_t *c = vctx;
  int r = store_ticket_take(t, c->hash, (int64_t)time(NULL), &c->got);
  /* Not found is an answer: commit what the take purged. */
  return r == -ENOENT ? 1 : r;
}

static int shared_ticket_issue(const char *text, const rt_who_t *who, int64_t expires) {
  store_ticket_t k = {.mobile = who->mobile, .expires = expires};
  snprintf(k.user, sizeof k.user, "%s", who->name);
  snprintf(k.client, sizeof k.client, "%s", who->client);
  char hash[65];
  secret_sha256_hex(text, hash);
  void *a[2] = {hash, &k};
  int r = store_run_txn(A.store, "real-time: keep a ticket", txn_ticket_put, a);
  return r < 0 ? -EAGAIN : 0;
}

static int shared_ticket_take(const char *ticket, rt_who_t *who) {
  char hash[65];
  secret_sha256_hex(ticket, hash);
  take_ctx_t c = {.hash = hash};
  int r = store_run_txn(A.store, "real-time: take a ticket", txn_ticket_take, &c);
  if (r != 0) return -ENOENT;
  snprintf(who->name, sizeof who->name, "%s", c.got.user);
  who->mobile = c.got.mobile;
  snprintf(who->client, sizeof who->client, "%s", c.got.client);
  return 0;
}

int rt_ticket_issue(const rt_who_t *who, char **ticket, int64_t *expires) {
  unsigned char raw[24];
  randombytes_buf(raw, sizeof raw);
  char text[sodium_base64_ENCODED_LEN(sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
  sodium_bin2base64(text, sizeof text, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  ticket_t *t = malloc(sizeof *t);
  char *copy = strdup(text);
  if (!t || !copy) {
    free(t);
    free(copy);
    return -ENOMEM;
  }
  t->who = *who;
  t->expires = (int64_t)time(NULL) + RT_TICKET_SECONDS;
  if (rt_relay_active()) {
    int r = shared_ticket_issue(text, who, t->expires);
    *expires = t->expires;
    free(t);
    if (r < 0) {
      free(copy);
      return r;
    }
    *ticket = copy;
    return 0;
  }
  pthread_mutex_lock(&T.lock);
  if (!T.m) T.m = map_new();
  if (T.m && map_count(T.m) >= RT_TICKETS_MAX / 2) purge_expired(time(NULL));
  int r = !T.m ? -ENOMEM : map_count(T.m) >= RT_TICKETS_MAX ? -EAGAIN
                                                            : map_put_str(T.m, text, t);
  pthread_mutex_unlock(&T.lock);
  if (r < 0) {
    free(t);
    free(copy);
    return r;
  }
  *ticket = copy;
  *expires = t->expires;
  return 0;
}

int rt_ticket_take(const char *ticket, rt_who_t *who) {
  if (rt_relay_active()) return shared_ticket_take(ticket, who);
  pthread_mutex_lock(&T.lock);
  ticket_t *t = T.m ? map_del_str(T.m, ticket) : NULL;
  pthread_mutex_unlock(&T.lock);
  if (!t) return -ENOENT;
  bool valid = t->expires >= (int64_t)time(NULL);
  if (valid) *who = t->who;
  free(t);
  return valid ? 0 : -ENOENT;
}

static void free_ticket(const void *key, size_t len, void *value, void *ctx) {
  (void)key, (void)len, (void)ctx;
  free(value);
}

void rt_tickets_clear(void) {
  pthread_mutex_lock(&T.lock);
  if (T.m) map_each(T.m, free_ticket, NULL);
  map_free(T.m);
  T.m = NULL;
  pthread_mutex_unlock(&T.lock);
}

static bool client_name_ok(const char *s) {
  size_t n = strlen(s);
  if (n < 1 || n > 32) return false;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
      return false;
  return true;
}

/* POST /client/v1/ws-ticket {"client"?}: browsers cannot set a header on a
 * WebSocket, so they trade their token for a single-use ticket. */
enum MHD_Result rt_api_ticket(http_request_t *req) {
  const json_t *body = http_body_json(req);
  const char *client = "web";
  if (body && !json_is_object(body)) return http_reply_field(req, "client", "Send {} or {\"client\"}.");
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)body, key, v) {
    if (strcmp(key, "client") != 0)
      return http_reply_field(req, key, "Is not a field of a ticket request; only client is.");
    if (!json_is_string(v) || !client_name_ok(json_string_value(v)))
      return http_reply_field(req, "client",
                         "Must be 1-32 characters of a-z, 0-9 and '-', naming the client "
                         "(\"web\", \"desktop\").");
    client = json_string_value(v);
  }
  json_t *user;
  enum MHD_Result reply;
  if (directory_client_user(req, &user, &reply) < 0) return reply;
  rt_who_t who = who_of(user, client);
  json_decref(user);
  char *ticket;
  int64_t expires;
  int r = rt_ticket_issue(&who, &ticket, &expires);
  if (r == -EAGAIN) {
    http_add_header(req, MHD_HTTP_HEADER_RETRY_AFTER, "5");
    return http_reply_problem(req, MHD_HTTP_SERVICE_UNAVAILABLE, "busy", "Too many tickets",
                              "Too many connections are being opened at once; try again.", NULL);
  }
  if (r < 0) return http_reply_oom(req);
  char when[TIMEFMT_LEN];
  time_rfc3339_s(expires, when);
  json_t *out = json_pack("{s:s, s:s}", "ticket", ticket, "expires", when);
  sodium_memzero(ticket, strlen(ticket));
  free(ticket);
  return http_reply_json(req, MHD_HTTP_OK, out);
}

/* "scheme://host[:port]" of a URL. */
static void url_origin(const char *url, char *out, size_t len) {
  const char *s = strstr(url, "://");
  size_t n = s ? (size_t)(strchrnul(s + 3, '/') - url) : 0;
  snprintf(out, len, "%.*s", (int)n, url);
}

static atomic_bool draining;
void rt_api_drain(bool on) { atomic_store(&draining, on); }

/* GET /client/v1/ws?ticket= (browsers) or with the bearer token (apps). */
enum MHD_Result rt_api_ws(http_request_t *req) {
  rt_who_t who;
  const char *ticket = http_query(req, "ticket");
  if (ticket) {
    if (rt_ticket_take(ticket, &who) != 0)
      return http_reply_problem(req, MHD_HTTP_UNAUTHORIZED, "ticket-invalid", "Ticket not valid",
                                "The ticket is unknown, used already or older than 30 seconds; "
                                "get a new one from POST /client/v1/ws-ticket.",
                                NULL);
  } else {
    json_t *user;
    enum MHD_Result reply;
    if (directory_client_user(req, &user, &reply) < 0) return reply;
    const char *client = http_query(req, "client");
    who = who_of(user, client && client_name_ok(client) ? client : NULL);
    json_decref(user);
  }
  if (atomic_load(&draining) || !rt_hub_reserve()) {
    http_add_header(req, MHD_HTTP_HEADER_RETRY_AFTER, "30");
    return http_reply_problem(req, MHD_HTTP_SERVICE_UNAVAILABLE, "busy", "Too many connections",
                              atomic_load(&draining)
                                  ? "The server is shutting down; connect again shortly."
                                  : "The server has as many open connections as its file "
                                    "descriptor limit allows; try again later.",
                              NULL);
  }
  rt_pending_t *p = calloc(1, sizeof *p);
  if (!p) {
    rt_hub_unreserve();
    return http_reply_oom(req);
  }
  p->who = who;
  snprintf(p->address, sizeof p->address, "%s", http_client_address(req));
  /* A web client published under server.public_url on another host. */
  char origin[1024];
  settings_snapshot_t *snap = settings_acquire();
  url_origin(settings_string(snap, "server.public_url"), origin, sizeof origin);
  settings_release(snap);
  ws_options_t o = {.loop = A.loop, .cb = &rt_ws_callbacks, .user = p,
                    .free_user = rt_pending_free, .max_message = RT_MAX_MESSAGE,
                    .max_queued = RT_MAX_QUEUED, .idle_seconds = RT_IDLE_SECONDS,
                    .extra_origin = origin};
  return http_websocket(req, &o);
}

/* ---- contacts ----------------------------------------------------------------------------------- */

static json_t *presence_fields(json_t *o, const char *name) {
  rt_state_t state;
  char note[RT_NOTE_MAX + 1], since[32];
  rt_presence_of(name, &state, note, sizeof note, since);
  json_object_set_new(o, "state", json_string(rt_state_name(state)));
  if (note[0]) json_object_set_new(o, "note", json_string(note));
  if (since[0]) json_object_set_new(o, "since", json_string(since));
  return o;
}

typedef struct roster_ctx {
  json_t *list;
  const char *domain;
} roster_ctx_t;

static void roster_row(const store_roster_row_t *row, void *vctx) {
  roster_ctx_t *c = vctx;
  json_t *o;
  if (row->contact) {
    char address[RT_ADDRESS_MAX + 1];
    snprintf(address, sizeof address, "%s@%s", row->name, c->domain);
    o = json_pack("{s:s, s:s?, s:b}", "address", address, "display_name", row->display_name,
                  "local", 1);
    if (o) presence_fields(o, row->name);
  } else {
    /* What the other domain last said, through the federation module. */
    o = json_pack("{s:s, s:n, s:b}", "address", row->remote, "display_name", "local", 0);
    if (o) presence_fields(o, row->remote);
  }
  if (o) json_array_append_new(c->list, o);
}

static enum MHD_Result contacts_search(http_request_t *req, const char *q) {
  int64_t limit;
  enum MHD_Result reply;
  if (!query_int(req, "limit", 1, 100, 20, &limit, &reply)) return reply;
  if (strlen(q) > 256) return http_reply_field(req, "q", "Must be at most 256 characters.");
  json_t *page = NULL;
  int r = directory_user_list(A.store, q, 0, limit, &page);
  if (r < 0) return http_reply_store_failed(req);
  json_t *results = json_array();
  size_t i;
  json_t *u;
  json_array_foreach(json_object_get(page, "users"), i, u) {
    if (!json_is_true(json_object_get(u, "enabled"))) continue;
    const char *name = json_string_value(json_object_get(u, "name"));
    json_t *o = json_pack("{s:O, s:O, s:b}", "address", json_object_get(u, "im_address"),
                          "display_name", json_object_get(u, "display_name"), "local", 1);
    if (o) json_array_append_new(results, presence_fields(o, name));
  }
  json_decref(page);
  return http_reply_json(req, MHD_HTTP_OK, json_pack("{s:o}", "results", results));
}

enum MHD_Result rt_api_contacts(http_request_t *req) {
  client_t c;
  enum MHD_Result reply;
  if (client_of(req, &c, &reply) < 0) return reply;
  const char *q = http_query(req, "q");
  if (q) {
    client_clear(&c);
    return contacts_search(req, q);
  }
  char domain[256];
  rt_domain(domain, sizeof domain);
  roster_ctx_t rc = {.list = json_array(), .domain = domain};
  store_txn_t *t;
  int r = store_read_begin(A.store, "real-time: contacts", &t);
  if (r == 0) {
    r = store_roster_list(t, c.id, roster_row, &rc);
    store_read_end(t);
  }
  client_clear(&c);
  if (r < 0) {
    json_decref(rc.list);
    return http_reply_store_failed(req);
  }
  return http_reply_json(req, MHD_HTTP_OK, json_pack("{s:o}", "contacts", rc.list));
}

typedef struct contact_txn {
  int64_t user;
  char name[65];      /* local contact */
  const char *remote; /* or a federated one */
  bool put;
} contact_txn_t;

static int contact_txn(store_txn_t *t, void *vctx) {
  contact_txn_t *c = vctx;
  int64_t contact = 0;
  if (!c->remote) {
    store_user_t u;
    int r = store_user_get(t, c->name, &u);
    if (r < 0) return r;
    contact = u.id;
  }
  return c->put ? store_roster_put(t, c->user, contact, c->remote)
                : store_roster_delete(t, c->user, contact, c->remote);
}

static enum MHD_Result contact_change(http_request_t *req, bool put) {
  const char *raw = strrchr(http_path(req), '/');
  char address[RT_ADDRESS_MAX + 2];
  snprintf(address, sizeof address, "%s", raw ? raw + 1 : "");
  if (!rt_address_ok(address))
    return http_reply_field(req, "address", "Must be an address name@domain.");
  client_t c;
  enum MHD_Result reply;
  if (client_of(req, &c, &reply) < 0) return reply;
  contact_txn_t ct = {.user = c.id, .put = put};
  char *remote = NULL;
  if (!local_part(address, ct.name, sizeof ct.name)) {
    validate_error_t verr;
    if (directory_validate_remote(address, &remote, &verr) < 0) {
      client_clear(&c);
      return http_reply_field(req, "address", verr.message);
    }
    ct.remote = remote;
  }
  int r = store_run_txn(A.store, put ? "real-time: keep a contact" : "real-time: drop a contact",
                        contact_txn, &ct);
  free(remote);
  client_clear(&c);
  if (r == -ENOENT)
    return http_reply_problem(req, MHD_HTTP_NOT_FOUND, "not-found", "Not found",
                              put ? "There is no user of that address on this server."
                                  : "That address is not on your contact list.",
                              NULL);
  if (r < 0) return http_reply_store_failed(req);
  return reply_no_content(req);
}

enum MHD_Result rt_api_contact_put(http_request_t *req) { return contact_change(req, true); }
enum MHD_Result rt_api_contact_delete(http_request_t *req) { return contact_change(req, false); }

/* ---- history ------------------------------------------------------------------------------------- */

typedef struct history_ctx {
  json_t *list;
  const char *domain;
} history_ctx_t;

static void history_row(const store_message_t *m, void *vctx) {
  history_ctx_t *h = vctx;
  char mid[24], from[RT_ADDRESS_MAX + 1], to[RT_ADDRESS_MAX + 1];
  snprintf(mid, sizeof mid, "%" PRId64, m->id);
  if (m->sender_name)
    snprintf(from, sizeof from, "%s@%s", m->sender_name, h->domain);
  else
    snprintf(from, sizeof from, "%s", m->sender_remote ? m->sender_remote : "");
  if (m->recipient_name)
    snprintf(to, sizeof to, "%s@%s", m->recipient_name, h->domain);
  else
    snprintf(to, sizeof to, "%s", m->recipient_remote ? m->recipient_remote : "");
  json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:b}", "message_id", mid, "from", from,
                        "to", to, "text", m->text ? m->text : "", "time", m->time, "delivered",
                        m->delivered, "read", m->read);
  if (o) json_array_append_new(h->list, o);
}

enum MHD_Result rt_api_messages(http_request_t *req) {
  const char *with = http_query(req, "with");
  char peer_name[65];
  if (!with || !rt_address_ok(with))
    return http_reply_field(req, "with", "Is required: the address of the other person, name@domain.");
  if (!local_part(with, peer_name, sizeof peer_name))
    return http_reply_field(req, "with",
                       "Conversations with other organisations need federation, which this "
                       "server does not offer yet; give an address of this server's domain.");
  int64_t before, limit;
  enum MHD_Result reply;
  if (!query_int(req, "before", 1, INT64_MAX, 0, &before, &reply) ||
      !query_int(req, "limit", 1, 200, 50, &limit, &reply))
    return reply;
  client_t c;
  if (client_of(req, &c, &reply) < 0) return reply;
  char domain[256];
  rt_domain(domain, sizeof domain);
  history_ctx_t h = {.list = json_array(), .domain = domain};
  store_txn_t *t;
  store_user_t peer;
  int r = store_read_begin(A.store, "real-time: history", &t);
  if (r == 0) {
    r = store_user_get(t, peer_name, &peer);
    if (r == 0) r = store_message_history(t, c.id, peer.id, before, limit, history_row, &h);
    store_read_end(t);
  }
  client_clear(&c);
  if (r == -ENOENT) {
    json_decref(h.list);
    return http_reply_problem(req, MHD_HTTP_NOT_FOUND, "not-found", "Not found",
                              "There is no user of that address on this server.", NULL);
  }
  if (r < 0) {
    json_decref(h.list);
    return http_reply_store_failed(req);
  }
  return http_reply_json(req, MHD_HTTP_OK, json_pack("{s:o}", "messages", h.list));
}

/* ---- the journal ---------------------------------------------------------------------------------- */

static json_t *journal_json(const store_journal_t *e) {
  json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:s}", "id", (json_int_t)e->id, "kind", e->kind,
                        "direction", e->direction, "peer", e->peer, "started", e->started);
  if (!o) return NULL;
  if (e->duration_s >= 0) json_object_set_new(o, "duration_s", json_integer(e->duration_s));
  if (e->answered >= 0) json_object_set_new(o, "answered", json_boolean(e->answered));
  if (!strcmp(e->kind, "chat")) json_object_set_new(o, "messages", json_integer(e->messages));
  return o;
}

static void journal_row(const store_journal_t *e, void *ctx) {
  json_t *o = journal_json(e);
  if (o) json_array_append_new(ctx, o);
}

enum MHD_Result rt_api_journal(http_request_t *req) {
  int64_t before, limit;
  enum MHD_Result reply;
  if (!query_int(req, "before", 1, INT64_MAX, 0, &before, &reply) ||
      !query_int(req, "limit", 1, 200, 50, &limit, &reply))
    return reply;
  client_t c;
  if (client_of(req, &c, &reply) < 0) return reply;
  json_t *list = json_array();
  store_txn_t *t;
  int r = store_read_begin(A.store, "real-time: journal", &t);
  if (r == 0) {
    r = store_journal_list(t, c.id, before, limit, journal_row, list);
    store_read_end(t);
  }
  client_clear(&c);
  if (r < 0) {
    json_decref(list);
    return http_reply_store_failed(req);
  }
  return http_reply_json(req, MHD_HTTP_OK, json_pack("{s:o}", "entries", list));
}

typedef struct journal_txn {
  store_journal_t e;
} journal_txn_t;

static int journal_add_txn(store_txn_t *t, void *vctx) {
  journal_txn_t *j = vctx;
  int r = store_journal_add(t, &j->e);
  return r < 0 ? r : rt_hooks_journal(t, &j->e);
}

/* POST /client/v1/journal: a telephony client reports a call. */
enum MHD_Result rt_api_journal_add(http_request_t *req) {
  const json_t *body = http_body_json(req);
  if (!json_is_object(body))
    return http_reply_field(req, "direction",
                       "Send {\"direction\", \"peer\", \"started\", \"duration_s\", "
                       "\"answered\"}.");
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)body, key, v) {
    if (strcmp(key, "direction") && strcmp(key, "peer") && strcmp(key, "started") &&
        strcmp(key, "duration_s") && strcmp(key, "answered"))
      return http_reply_field(req, key,
                         "Is not a field of a call; use direction, peer, started, duration_s "
                         "and answered.");
  }
  const char *direction = json_string_value(json_object_get(body, "direction"));
  const char *peer = json_string_value(json_object_get(body, "peer"));
  const char *started = json_string_value(json_object_get(body, "started"));
  const json_t *duration = json_object_get(body, "duration_s");
  const json_t *answered = json_object_get(body, "answered");
  if (!direction || (strcmp(direction, "in") && strcmp(direction, "out")))
    return http_reply_field(req, "direction", "Must be \"in\" or \"out\".");
  if (!peer || !*peer || strlen(peer) > RT_ADDRESS_MAX)
    return http_reply_field(req, "peer",
                       "Is required: the other party, an address or a telephone number (at "
                       "most 320 characters).");
  for (const char *p = peer; *p; p++)
    if ((unsigned char)*p < 0x20 || *p == 0x7f)
      return http_reply_field(req, "peer", "Must not contain control characters.");
  int64_t started_ms;
  if (!started || !time_parse_rfc3339(started, &started_ms))
    return http_reply_field(req, "started",
                       "Must be an RFC 3339 time such as \"2026-12-01T10:00:00Z\".");
  if (started_ms > time_now_ms() + 5 * 60 * 1000)
    return http_reply_field(req, "started", "Must not be in the future.");
  if (!json_is_integer(duration) || json_integer_value(duration) < 0 ||
      json_integer_value(duration) > 86400)
    return http_reply_field(req, "duration_s", "Must be a whole number of seconds from 0 to 86400.");
  if (!json_is_boolean(answered))
    return http_reply_field(req, "answered", "Must be true or false.");
  client_t c;
  enum MHD_Result reply;
  if (client_of(req, &c, &reply) < 0) return reply;
  journal_txn_t j = {.e = {.user = c.id, .kind = "call", .direction = direction, .peer = peer,
                           .duration_s = json_integer_value(duration),
                           .answered = json_is_true(answered), .created_ms = started_ms}};
  time_rfc3339_ms(started_ms, j.e.started);
  int r = store_run_txn(A.store, "real-time: report a call", journal_add_txn, &j);
  client_clear(&c);
  if (r < 0) return http_reply_store_failed(req);
  rt_hooks_committed();
  return http_reply_json(req, MHD_HTTP_CREATED, journal_json(&j.e));
}

/* ---- the admin's presence and retention ---------------------------------------------------------- */

/* The loop fills the report; whoever of the two finishes last frees it, so
 * that a loop_call that timed out leaves nothing dangling. */
typedef struct report_call {
  atomic_int refs;
  json_t *out;
} report_call_t;

static void report_release(report_call_t *rc) {
  if (atomic_fetch_sub(&rc->refs, 1) == 1) {
    json_decref(rc->out);
    free(rc);
  }
}

static void report_on_loop(void *arg) {
  report_call_t *rc = arg;
  rt_hub_report(&rc->out);
  report_release(rc);
}

enum MHD_Result rt_api_presence(http_request_t *req) {
  report_call_t *rc = calloc(1, sizeof *rc);
  if (!rc) return http_reply_oom(req);
  atomic_init(&rc->refs, 2);
  int r = A.loop ? loop_call(A.loop, report_on_loop, rc, 2000) : -ESHUTDOWN;
  if (r != 0) {
    /* Timed out, the call may still run and release its reference;
     * otherwise it never will. */
    if (r != -ETIMEDOUT) report_release(rc);
    report_release(rc);
    http_add_header(req, MHD_HTTP_HEADER_RETRY_AFTER, "2");
    return http_reply_problem(req, MHD_HTTP_SERVICE_UNAVAILABLE, "busy", "Event loop busy",
                              "The event loop did not answer within 2 seconds; try again.",
                              NULL);
  }
  json_t *users = rc->out ? json_incref(rc->out) : json_array();
  report_release(rc);
  size_t connections = 0, i;
  json_t *u;
  json_array_foreach(users, i, u) connections += json_array_size(json_object_get(u, "connections"));
  return http_reply_json(req, MHD_HTTP_OK,
                         json_pack("{s:o, s:I}", "users", users, "connections",
                                   (json_int_t)connections));
}

static json_t *retention_json(const rt_retention_state_t *s) {
  json_t *o = json_object();
  json_object_set_new(o, "im_delete_after_days",
                      s->im_days >= 0 ? json_integer(s->im_days) : json_null());
  json_object_set_new(o, "journal_delete_after_days",
                      s->journal_days >= 0 ? json_integer(s->journal_days) : json_null());
  json_object_set_new(o, "last_run", s->last_run[0] ? json_string(s->last_run) : json_null());
  json_object_set_new(o, "next_run", s->next_run[0] ? json_string(s->next_run) : json_null());
  json_object_set_new(o, "last_deleted",
                      json_pack("{s:I, s:I}", "messages", (json_int_t)s->last_messages,
                                "journal", (json_int_t)s->last_journal));
  json_object_set_new(o, "total_deleted",
                      json_pack("{s:I, s:I}", "messages", (json_int_t)s->total_messages,
                                "journal", (json_int_t)s->total_journal));
  json_object_set_new(o, "last_failed", json_boolean(s->last_failed));
  if (s->atlas_error[0]) json_object_set_new(o, "atlas_error", json_string(s->atlas_error));
  return o;
}

enum MHD_Result rt_api_retention(http_request_t *req) {
  rt_retention_state_t s;
  rt_writer_retention(&s);
  return http_reply_json(req, MHD_HTTP_OK, retention_json(&s));
}

enum MHD_Result rt_api_retention_run(http_request_t *req) {
  rt_retention_state_t s;
  int r = rt_writer_retention_run(&s);
  if (r == -ESHUTDOWN)
    return http_reply_problem(req, MHD_HTTP_SERVICE_UNAVAILABLE, "busy", "Not running",
                              "The server is shutting down.", NULL);
  json_t *o = retention_json(&s);
  json_object_set_new(o, "finished", json_boolean(r == 0));
  /* Still running after the wait: it goes on, and GET shows when it ends. */
  return http_reply_json(req, r == 0 ? MHD_HTTP_OK : MHD_HTTP_ACCEPTED, o);
}

void rt_api_init(store_t *store, loop_t *loop) {
  A.store = store;
  A.loop = loop;
  atomic_store(&draining, false);
}
