/* SQLite operations of the cluster: one node, which writes its own row and
 * always holds the meeting host's lock (the epoch still goes up at every
 * start, so fencing means the same on both backends). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/sqlite/internal.h"

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int sq_node_beat(store_txn_t *t, const store_node_t *n) {
  sqlite3_stmt *st = sq_prepare(
      t, "INSERT INTO nodes (name, url, atrium_version, settings_version, settings_hash, "
         "started_ms, heartbeat_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) "
         "ON CONFLICT (name) DO UPDATE SET url = excluded.url, "
         "atrium_version = excluded.atrium_version, settings_version = excluded.settings_version, "
         "settings_hash = excluded.settings_hash, started_ms = excluded.started_ms, "
         "heartbeat_ms = excluded.heartbeat_ms");
  if (!st) return -EIO;
  if (n->settings_version > INT64_MAX) return -ERANGE;
  sq_bind_text(st, 1, n->name);
  sq_bind_text(st, 2, n->url);
  sq_bind_text(st, 3, n->atrium_version);
  sqlite3_bind_int64(st, 4, (int64_t)n->settings_version);
  sq_bind_text(st, 5, n->settings_hash);
  sqlite3_bind_int64(st, 6, n->started_ms);
  sqlite3_bind_int64(st, 7, wall_ms());
  return sq_done(t, st);
}

int sq_node_delete(store_txn_t *t, const char *name) {
  sqlite3_stmt *st = sq_prepare(t, "DELETE FROM nodes WHERE name = ?1");
  if (!st) return -EIO;
  sq_bind_text(st, 1, name);
  int r = sq_done(t, st);
  if (r == 0 && sqlite3_changes(sq_of(t)->db) == 0) r = -ENOENT;
  return r;
}

int sq_node_list(store_txn_t *t, store_node_fn fn, void *ctx) {
  sqlite3_stmt *st = sq_prepare(t, "SELECT name, url, atrium_version, settings_version, "
                                   "settings_hash, started_ms, ?1 - heartbeat_ms FROM nodes "
                                   "ORDER BY name");
  if (!st) return -EIO;
  sqlite3_bind_int64(st, 1, wall_ms());
  int r;
  while ((r = sq_step(t, st)) == 1) {
    store_node_t n;
    memset(&n, 0, sizeof n);
    sq_copy(n.name, sizeof n.name, st, 0);
    sq_copy(n.url, sizeof n.url, st, 1);
    sq_copy(n.atrium_version, sizeof n.atrium_version, st, 2);
    n.settings_version = (uint64_t)sqlite3_column_int64(st, 3);
    sq_copy(n.settings_hash, sizeof n.settings_hash, st, 4);
    n.started_ms = sqlite3_column_int64(st, 5);
    n.age_ms = sqlite3_column_int64(st, 6);
    fn(&n, ctx);
  }
  sqlite3_reset(st);
  return r < 0 ? r : 0;
}

int sq_session_get(store_txn_t *t, const char *token_hash, store_session_t *out) {
  memset(out, 0, sizeof *out);
  sqlite3_stmt *st = sq_prepare(
      t, "SELECT token_hash, admin, csrf, created, expires FROM sessions WHERE token_hash = ?1");
  if (!st) return -EIO;
  sq_bind_text(st, 1, token_hash);
  int r = sq_step(t, st);
  if (r == 1) {
    sq_copy(out->token_hash, sizeof out->token_hash, st, 0);
    sq_copy(out->admin, sizeof out->admin, st, 1);
    sq_copy(out->csrf, sizeof out->csrf, st, 2);
    out->created = sqlite3_column_int64(st, 3);
    out->expires = sqlite3_column_int64(st, 4);
    r = 0;
  } else if (r == 0) {
    r = -ENOENT;
  }
  sqlite3_reset(st);
  return r;
}

int sq_ticket_put(store_txn_t *t, const char *hash, const store_ticket_t *k) {
  sqlite3_stmt *st = sq_prepare(t, "INSERT INTO ws_tickets (hash, user_name, mobile, client, expires) "
                                   "VALUES (?1, ?2, ?3, ?4, ?5)");
  if (!st) return -EIO;
  sq_bind_text(st, 1, hash);
  sq_bind_text(st, 2, k->user);
  sqlite3_bind_int(st, 3, k->mobile);
  sq_bind_text(st, 4, k->client);
  sqlite3_bind_int64(st, 5, k->expires);
  return sq_done(t, st);
}

int sq_ticket_take(store_txn_t *t, const char *hash, int64_t now, store_ticket_t *out) {
  memset(out, 0, sizeof *out);
  sqlite3_stmt *st = sq_prepare(
      t, "SELECT user_name, mobile, client, expires FROM ws_tickets WHERE hash = ?1");
  if (!st) return -EIO;
  sq_bind_text(st, 1, hash);
  int r = sq_step(t, st);
  if (r == 1) {
    sq_copy(out->user, sizeof out->user, st, 0);
    out->mobile = sqlite3_column_int(st, 1) != 0;
    sq_copy(out->client, sizeof out->client, st, 2);
    out->expires = sqlite3_column_int64(st, 3);
  }
  sqlite3_reset(st);
  if (r < 0) return r;
  if (!(st = sq_prepare(t, "DELETE FROM ws_tickets WHERE hash = ?1 OR expires < ?2"))) return -EIO;
  sq_bind_text(st, 1, hash);
  sqlite3_bind_int64(st, 2, now);
  int d = sq_done(t, st);
  if (d < 0) return d;
  return r == 1 && out->expires >= now ? 0 : -ENOENT;
}

int sq_meeting_host(store_txn_t *t, int64_t *epoch, char *node, size_t len) {
  sqlite3_stmt *st = sq_prepare(t, "SELECT epoch, coalesce(node, '') FROM meeting_host WHERE id = 1");
  if (!st) return -EIO;
  int r = sq_step(t, st);
  *epoch = 0;
  if (len) node[0] = '\0';
  if (r == 1) {
    *epoch = sqlite3_column_int64(st, 0);
    if (len) sq_copy(node, len, st, 1);
    r = 0;
  }
  sqlite3_reset(st);
  return r;
}

int sq_meeting_fence(store_txn_t *t, int64_t epoch) {
  int64_t current = 0;
  /* The transaction holds SQLite's one write lock: no takeover can come
   * between this read and the commit. */
  int r = sq_int(t, "SELECT epoch FROM meeting_host WHERE id = 1", 0, &current);
  if (r < 0) return r;
  return current == epoch ? 0 : -ESTALE;
}

typedef struct sq_hold {
  store_hold_t base;
  sq_t *sq;
  bool held;
} sq_hold_t;

typedef struct take_ctx {
  const char *node;
  int64_t epoch;
} take_ctx_t;

static int take_txn(store_txn_t *t, void *vctx) {
  take_ctx_t *c = vctx;
  char now[32];
  store_now_rfc3339(now);
  sqlite3_stmt *st = sq_prepare(
      t, "UPDATE meeting_host SET epoch = epoch + 1, node = ?1, since = ?2 WHERE id = 1");
  if (!st) return -EIO;
  sq_bind_text(st, 1, c->node);
  sq_bind_text(st, 2, now);
  int r = sq_done(t, st);
  return r < 0 ? r : sq_int(t, "SELECT epoch FROM meeting_host WHERE id = 1", 0, &c->epoch);
}

int sq_hold_open(void *db, store_hold_t **hold) {
  sq_hold_t *h = calloc(1, sizeof *h);
  if (!h) return -ENOMEM;
  h->base.be = store_sqlite_backend();
  h->sq = db;
  *hold = &h->base;
  return 0;
}

int sq_hold_try(store_hold_t *hold, const char *node, int64_t *epoch) {
  sq_hold_t *h = (sq_hold_t *)hold;
  take_ctx_t c = {.node = node};
  int r = store_run_txn(h->sq->store, "take the meeting host", take_txn, &c);
  if (r < 0) return r;
  h->held = true;
  *epoch = c.epoch;
  return 1;
}

int sq_hold_check(store_hold_t *hold, int timeout_ms) {
  (void)timeout_ms;
  return ((sq_hold_t *)hold)->held ? 0 : -ENOTCONN;
}

void sq_hold_close(store_hold_t *hold) { free(hold); }
