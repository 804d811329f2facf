/* SQLite operations of push notifications: device push tokens and the
 * outbox. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "store/sqlite/internal.h"

int sq_push_device_set(store_txn_t *t, int64_t user_id, const char *device_id,
                       const char *push_token, int64_t now_ms) {
  char now[32];
  store_now_rfc3339(now);
  sqlite3_stmt *st = sq_prepare(
      t, "UPDATE devices SET push_registered_ms = CASE WHEN push_token IS ?3 THEN "
         "push_registered_ms ELSE ?4 END, push_token = ?3, updated_at = ?5 "
         "WHERE user_id = ?1 AND device_id = ?2");
  if (!st) return -EIO;
  sqlite3_bind_int64(st, 1, user_id);
  sq_bind_text(st, 2, device_id);
  sq_bind_text(st, 3, push_token);
  sqlite3_bind_int64(st, 4, now_ms);
  sq_bind_text(st, 5, now);
  int r = sq_done(t, st);
  return r == 0 && sqlite3_changes(sq_of(t)->db) == 0 ? -ENOENT : r;
}

int sq_push_devices(store_txn_t *t, int64_t user_id, store_push_device_fn fn, void *ctx) {
  sqlite3_stmt *st = sq_prepare(t, "SELECT device_id, platform, push_token, push_registered_ms "
                                   "FROM devices WHERE user_id = ?1 AND push_token IS NOT NULL "
                                   "AND push_token <> '' ORDER BY device_id");
  if (!st) return -EIO;
  sqlite3_bind_int64(st, 1, user_id);
  int r;
  while ((r = sq_step(t, st)) == 1) {
    store_push_device_t d = {
        .user_id = user_id,
        .device_id = (const char *)sqlite3_column_text(st, 0),
        .platform = (const char *)sqlite3_column_text(st, 1),
        .push_token = (const char *)sqlite3_column_text(st, 2),
        .registered_ms = sqlite3_column_int64(st, 3),
    };
    fn(&d, ctx);
  }
  sqlite3_reset(st);
  return r < 0 ? r : 0;
}

int sq_push_token_prune(store_txn_t *t, int64_t user_id, const char *device_id,
                        const char *push_token, int64_t before_ms, bool *pruned) {
  *pruned = false;
  sqlite3_stmt *st =
      sq_prepare(t, "UPDATE devices SET push_token = NULL WHERE user_id = ?1 AND device_id = ?2 "
                    "AND push_token = ?3 AND push_registered_ms < ?4");
  if (!st) return -EIO;
  sqlite3_bind_int64(st, 1, user_id);
  sq_bind_text(st, 2, device_id);
  sq_bind_text(st, 3, push_token);
  sqlite3_bind_int64(st, 4, before_ms);
  int r = sq_done(t, st);
  if (r == 0) *pruned = sqlite3_changes(sq_of(t)->db) > 0;
  return r;
}

int sq_push_enqueue(store_txn_t *t, store_push_t *p) {
  sqlite3_stmt *st = sq_prepare(
      t, "INSERT INTO push_outbox (user_id, device_id, platform, push_token, kind, ref_id, "
         "peer_id, payload, apns_id, collapse_id, push_type, priority, created_ms, expires_ms, "
         "next_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?13)");
  if (!st) return -EIO;
  sqlite3_bind_int64(st, 1, p->user_id);
  sq_bind_text(st, 2, p->device_id);
  sq_bind_text(st, 3, p->platform);
  sq_bind_text(st, 4, p->push_token);
  sq_bind_text(st, 5, p->kind);
  sqlite3_bind_int64(st, 6, p->ref_id);
  sqlite3_bind_int64(st, 7, p->peer_id);
  sq_bind_text(st, 8, p->payload);
  sq_bind_text(st, 9, p->apns_id);
  sq_bind_text(st, 10, p->collapse_id);
  sq_bind_text(st, 11, p->push_type);
  sqlite3_bind_int(st, 12, p->priority);
  sqlite3_bind_int64(st, 13, p->created_ms);
  sqlite3_bind_int64(st, 14, p->expires_ms);
  int r = sq_done(t, st);
  if (r == 0) {
    p->id = sqlite3_last_insert_rowid(sq_of(t)->db);
    p->next_ms = p->created_ms;
  }
  return r;
}

#define PUSH_COLUMNS                                                                               \
  "id, user_id, device_id, platform, push_token, kind, ref_id, peer_id, payload, apns_id, "       \
  "collapse_id, push_type, priority, created_ms, expires_ms, next_ms, attempts, state, reason, "  \
  "fetched_ms"

static void read_push(sqlite3_stmt *st, store_push_t *p) {
  memset(p, 0, sizeof *p);
  p->id = sqlite3_column_int64(st, 0);
  p->user_id = sqlite3_column_int64(st, 1);
  p->device_id = (const char *)sqlite3_column_text(st, 2);
  p->platform = (const char *)sqlite3_column_text(st, 3);
  p->push_token = (const char *)sqlite3_column_text(st, 4);
  p->kind = (const char *)sqlite3_column_text(st, 5);
  p->ref_id = sqlite3_column_int64(st, 6);
  p->peer_id = sqlite3_column_int64(st, 7);
  p->payload = (const char *)sqlite3_column_text(st, 8);
  p->apns_id = (const char *)sqlite3_column_text(st, 9);
  p->collapse_id = (const char *)sqlite3_column_text(st, 10);
  p->push_type = (const char *)sqlite3_column_text(st, 11);
  p->priority = sqlite3_column_int(st, 12);
  p->created_ms = sqlite3_column_int64(st, 13);
  p->expires_ms = sqlite3_column_int64(st, 14);
  p->next_ms = sqlite3_column_int64(st, 15);
  p->attempts = sqlite3_column_int64(st, 16);
  p->state = (const char *)sqlite3_column_text(st, 17);
  p->reason = (const char *)sqlite3_column_text(st, 18);
  p->fetched_ms = sqlite3_column_int64(st, 19);
}

static int each_push(store_txn_t *t, sqlite3_stmt *st, store_push_fn fn, void *ctx, int64_t *n) {
  int r;
  store_push_t p;
  if (n) *n = 0;
  while ((r = sq_step(t, st)) == 1) {
    read_push(st, &p);
    fn(&p, ctx);
    if (n) (*n)++;
  }
  sqlite3_reset(st);
  return r < 0 ? r : 0;
}

int sq_push_claim(store_txn_t *t, int64_t now_ms, int64_t lease_until_ms, const char *owner,
                  int64_t limit, store_push_fn fn, void *ctx) {
  /* One writer at a time holds the database, so the select and the update
   * cannot interleave with another claim. */
  sqlite3_stmt *st = sq_prepare(
      t, "UPDATE push_outbox SET lease_ms = ?2, lease_owner = ?3 WHERE id IN (SELECT id FROM "
         "push_outbox WHERE state = 'pending' AND next_ms <= ?1 AND lease_ms <= ?1 ORDER BY "
         "next_ms, id LIMIT ?4) RETURNING " PUSH_COLUMNS);
  if (!st) return -EIO;
  sqlite3_bind_int64(st, 1, now_ms);
  sqlite3_bind_int64(st, 2, lease_until_ms);
  sq_bind_text(st, 3, owner);
  sqlite3_bind_int64(st, 4, limit);
  return each_push(t, st, fn, ctx, NULL);
}

int sq_push_finish(store_txn_t *t, int64_t id, const char *state, const char *reason,
                   int64_t now_ms) {
  sqlite3_stmt *st = sq_prepare(
      t, "UPDATE push_outbox SET state = ?2, reason = ?3, done_ms = ?4, lease_ms = 0, "
         "lease_owner = NULL, attempts = attempts + (?2 <> 'cancelled') WHERE id = ?1 AND "
         "state = 'pending'");
  if (!st) return -EIO;
  sqlite3_bind_int64(st, 1, id);
  sq_bind_text(st, 2, state);
  sq_bind_text(st, 3, reason);
  sqlite3_bind_int64(st, 4, now_ms);
  int r = sq_done(t, st);
  return r == 0 && sqlite3_changes(sq_of(t)->db) == 0 ? -ENOENT : r;
}

int sq_push_retry(store_txn_t *t, int64_t id, int64_t next_ms, bool count_attempt,
                  const char *reason) {
  sqlite3_stmt *st = sq_prepare(
      t, "UPDATE push_outbox SET next_ms = ?2, attempts = attempts + ?3, reason = ?4, "
         "lease_ms = 0, lease_owner = NULL WHERE id = ?1 AND state = 'pending'");
  if (!st) return -EIO;
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_int64(st, 2, next_ms);
  sqlite3_bind_int(st, 3, count_attempt ? 1 : 0);
  sq_bind_text(st, 4, reason);
  int r = sq_done(t, st);
  return r == 0 && sqlite3_changes(sq_of(t)->db) == 0 ? -ENOENT : r;
}

int sq_push_release(store_txn_t *t, const char *owner, int64_t *released) {
  sqlite3_stmt *st = sq_prepare(t, "UPDATE push_outbox SET lease_ms = 0, lease_owner = NULL "
                                   "WHERE state = 'pending' AND lease_owner = ?1");
  if (!st) return -EIO;
  sq_bind_text(st, 1, owner);
  int r = sq_done(t, st);
  *released = r == 0 ? sqlite3_changes(sq_of(t)->db) : 0;
  return r;
}

int sq_push_read(store_txn_t *t, int64_t reader, int64_t peer, int64_t upto, int64_t *cancelled,
                 int64_t *to_clear) {
  *cancelled = *to_clear = 0;
  sqlite3_stmt *st = sq_prepare(
      t, "UPDATE push_outbox SET state = 'cancelled', reason = 'read', lease_ms = 0, "
         "lease_owner = NULL, done_ms = CAST((julianday('now') - 2440587.5) * 86400000 AS "
         "INTEGER) WHERE user_id = ?1 AND peer_id = ?2 AND ref_id <= ?3 AND kind = 'message' "
         "AND state = 'pending'");
  if (!st) return -EIO;
  sqlite3_bind_int64(st, 1, reader);
  sqlite3_bind_int64(st, 2, peer);
  sqlite3_bind_int64(st, 3, upto);
  int r = sq_done(t, st);
  if (r < 0) return r;
  *cancelled = sqlite3_changes(sq_of(t)->db);
  st = sq_prepare(t, "UPDATE push_outbox SET cleared = 1 WHERE user_id = ?1 AND peer_id = ?2 "
                     "AND ref_id <= ?3 AND kind = 'message' AND state = 'sent' AND cleared = 0");
  if (!st) return -EIO;
  sqlite3_bind_int64(st, 1, reader);
  sqlite3_bind_int64(st, 2, peer);
  sqlite3_bind_int64(st, 3, upto);
  r = sq_done(t, st);
  if (r == 0) *to_clear = sqlite3_changes(sq_of(t)->db);
  return r;
}

int sq_push_fetch(store_txn_t *t, int64_t id, int64_t user_id, int64_t now_ms, store_push_fn fn,
                  void *ctx) {
  sqlite3_stmt *st = sq_prepare(
      t, "UPDATE push_outbox SET fetched_ms = CASE WHEN fetched_ms = 0 THEN ?3 ELSE fetched_ms "
         "END WHERE id = ?1 AND user_id = ?2 AND kind <> 'clear' RETURNING " PUSH_COLUMNS);
  if (!st) return -EIO;
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_int64(st, 2, user_id);
  sqlite3_bind_int64(st, 3, now_ms);
  int64_t n = 0;
  int r = each_push(t, st, fn, ctx, &n);
  return r == 0 && n == 0 ? -ENOENT : r;
}

int sq_push_stats(store_txn_t *t, store_push_stats_t *out) {
  memset(out, 0, sizeof *out);
  sqlite3_stmt *st = sq_prepare(
      t, "SELECT (SELECT count(*) FROM push_outbox WHERE state = 'pending'), (SELECT "
         "coalesce(min(created_ms), 0) FROM push_outbox WHERE state = 'pending'), (SELECT "
         "count(*) FROM push_outbox WHERE state = 'sent'), (SELECT count(*) FROM push_outbox "
         "WHERE state = 'failed'), (SELECT count(*) FROM push_outbox WHERE state = 'cancelled')");
  if (!st) return -EIO;
  int r = sq_step(t, st);
  if (r == 1) {
    out->pending = sqlite3_column_int64(st, 0);
    out->oldest_pending_ms = sqlite3_column_int64(st, 1);
    out->sent = sqlite3_column_int64(st, 2);
    out->failed = sqlite3_column_int64(st, 3);
    out->cancelled = sqlite3_column_int64(st, 4);
    r = 0;
  } else if (r == 0) {
    r = -EIO;
  }
  sqlite3_reset(st);
  return r;
}

int sq_push_purge(store_txn_t *t, int64_t before_ms, int64_t limit, int64_t *deleted) {
  sqlite3_stmt *st =
      sq_prepare(t, "DELETE FROM push_outbox WHERE id IN (SELECT id FROM push_outbox WHERE "
                    "state <> 'pending' AND done_ms < ?1 ORDER BY done_ms LIMIT ?2)");
  if (!st) return -EIO;
  sqlite3_bind_int64(st, 1, before_ms);
  sqlite3_bind_int64(st, 2, limit);
  int r = sq_done(t, st);
  *deleted = r == 0 ? sqlite3_changes(sq_of(t)->db) : 0;
  return r;
}
