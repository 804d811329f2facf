/* PostgreSQL operations of push notifications: device push tokens and the
 * outbox. The same rows as the SQLite backend's push.c; claims take their
 * rows with SKIP LOCKED so that several nodes can share one outbox. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "store/pg/internal.h"

int pg_push_device_set(store_txn_t *t, int64_t user_id, const char *device_id,
                       const char *push_token, int64_t now_ms) {
  char now[32];
  store_now_rfc3339(now);
  pg_params_t p = {0};
  pp_int(&p, user_id);
  pp_text(&p, device_id);
  pp_text(&p, push_token);
  pp_int(&p, now_ms);
  pp_text(&p, now);
  int64_t changed = 0;
  int r = pg_cmd(t,
                 "UPDATE devices SET push_registered_ms = CASE WHEN push_token IS NOT DISTINCT "
                 "FROM $3::text THEN push_registered_ms ELSE $4::bigint END, push_token = "
                 "$3::text, updated_at = $5::timestamptz WHERE user_id = $1 AND device_id = $2",
                 &p, false, &changed);
  return r < 0 ? r : changed ? 0 : -ENOENT;
}

int pg_push_devices(store_txn_t *t, int64_t user_id, store_push_device_fn fn, void *ctx) {
  pg_params_t p = {0};
  pp_int(&p, user_id);
  int r = 0;
  PGresult *res = pg_exec(t,
                          "SELECT device_id, platform, push_token, push_registered_ms FROM "
                          "devices WHERE user_id = $1 AND push_token IS NOT NULL AND push_token "
                          "<> '' ORDER BY device_id",
                          &p, false, &r);
  if (!res) return r;
  for (int i = 0; i < PQntuples(res); i++) {
    store_push_device_t d = {
        .user_id = user_id,
        .device_id = pg_str(res, i, 0),
        .platform = pg_str(res, i, 1),
        .push_token = pg_str(res, i, 2),
        .registered_ms = pg_i64(res, i, 3),
    };
    fn(&d, ctx);
  }
  PQclear(res);
  return 0;
}

int pg_push_token_prune(store_txn_t *t, int64_t user_id, const char *device_id,
                        const char *push_token, int64_t before_ms, bool *pruned) {
  *pruned = false;
  pg_params_t p = {0};
  pp_int(&p, user_id);
  pp_text(&p, device_id);
  pp_text(&p, push_token);
  pp_int(&p, before_ms);
  int64_t changed = 0;
  int r = pg_cmd(t,
                 "UPDATE devices SET push_token = NULL WHERE user_id = $1 AND device_id = $2 AND "
                 "push_token = $3 AND push_registered_ms < $4",
                 &p, false, &changed);
  if (r == 0) *pruned = changed > 0;
  return r;
}

int pg_push_enqueue(store_txn_t *t, store_push_t *p) {
  pg_params_t q = {0};
  pp_int(&q, p->user_id);
  pp_text(&q, p->device_id);
  pp_text(&q, p->platform);
  pp_text(&q, p->push_token);
  pp_text(&q, p->kind);
  pp_int(&q, p->ref_id);
  pp_int(&q, p->peer_id);
  pp_text(&q, p->payload);
  pp_text(&q, p->apns_id);
  pp_text(&q, p->collapse_id);
  pp_text(&q, p->push_type);
  pp_int(&q, p->priority);
  pp_int(&q, p->created_ms);
  pp_int(&q, p->expires_ms);
  int r = 0;
  PGresult *res = pg_exec(
      t,
      "INSERT INTO push_outbox (user_id, device_id, platform, push_token, kind, ref_id, peer_id, "
      "payload, apns_id, collapse_id, push_type, priority, created_ms, expires_ms, next_ms) "
      "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $13) RETURNING id",
      &q, false, &r);
  if (!res) return r;
  p->id = pg_i64(res, 0, 0);
  p->next_ms = p->created_ms;
  PQclear(res);
  return 0;
}

#define PUSH_COLUMNS                                                                               \
  "id, user_id, device_id, platform, push_token, kind, ref_id, peer_id, payload, apns_id, "       \
  "collapse_id, push_type, priority, created_ms, expires_ms, next_ms, attempts, state, reason, "  \
  "fetched_ms"

static int each_push(store_txn_t *t, const char *sql, const pg_params_t *q, store_push_fn fn,
                     void *ctx, int64_t *n) {
  int r = 0;
  PGresult *res = pg_exec(t, sql, q, false, &r);
  if (!res) return r;
  for (int i = 0; i < PQntuples(res); i++) {
    store_push_t p = {
        .id = pg_i64(res, i, 0),
        .user_id = pg_i64(res, i, 1),
        .device_id = pg_str(res, i, 2),
        .platform = pg_str(res, i, 3),
        .push_token = pg_str(res, i, 4),
        .kind = pg_str(res, i, 5),
        .ref_id = pg_i64(res, i, 6),
        .peer_id = pg_i64(res, i, 7),
        .payload = pg_str(res, i, 8),
        .apns_id = pg_str(res, i, 9),
        .collapse_id = pg_str(res, i, 10),
        .push_type = pg_str(res, i, 11),
        .priority = (int)pg_i64(res, i, 12),
        .created_ms = pg_i64(res, i, 13),
        .expires_ms = pg_i64(res, i, 14),
        .next_ms = pg_i64(res, i, 15),
        .attempts = pg_i64(res, i, 16),
        .state = pg_str(res, i, 17),
        .reason = pg_str(res, i, 18),
        .fetched_ms = pg_i64(res, i, 19),
    };
    fn(&p, ctx);
  }
  if (n) *n = PQntuples(res);
  PQclear(res);
  return 0;
}

int pg_push_claim(store_txn_t *t, int64_t now_ms, int64_t lease_until_ms, const char *owner,
                  int64_t limit, store_push_fn fn, void *ctx) {
  pg_params_t q = {0};
  pp_int(&q, now_ms);
  pp_int(&q, lease_until_ms);
  pp_text(&q, owner);
  pp_limit(&q, limit);
  /* RETURNING gives the rows in no set order; the sender does not need one
   * beyond "the oldest due are taken first". */
  return each_push(t,
                   "UPDATE push_outbox SET lease_ms = $2, lease_owner = $3 WHERE id IN (SELECT id "
                   "FROM push_outbox WHERE state = 'pending' AND next_ms <= $1 AND lease_ms <= $1 "
                   "ORDER BY next_ms, id LIMIT $4 FOR UPDATE SKIP LOCKED) RETURNING " PUSH_COLUMNS,
                   &q, fn, ctx, NULL);
}

int pg_push_finish(store_txn_t *t, int64_t id, const char *state, const char *reason,
                   int64_t now_ms) {
  pg_params_t q = {0};
  pp_int(&q, id);
  pp_text(&q, state);
  pp_text(&q, reason);
  pp_int(&q, now_ms);
  int64_t changed = 0;
  int r = pg_cmd(t,
                 "UPDATE push_outbox SET state = $2, reason = $3, done_ms = $4, lease_ms = 0, "
                 "lease_owner = NULL, attempts = attempts + CASE WHEN $2 <> 'cancelled' THEN 1 "
                 "ELSE 0 END WHERE id = $1 AND state = 'pending'",
                 &q, false, &changed);
  return r < 0 ? r : changed ? 0 : -ENOENT;
}

int pg_push_retry(store_txn_t *t, int64_t id, int64_t next_ms, bool count_attempt,
                  const char *reason) {
  pg_params_t q = {0};
  pp_int(&q, id);
  pp_int(&q, next_ms);
  pp_int(&q, count_attempt ? 1 : 0);
  pp_text(&q, reason);
  int64_t changed = 0;
  int r = pg_cmd(t,
                 "UPDATE push_outbox SET next_ms = $2, attempts = attempts + $3, reason = $4, "
                 "lease_ms = 0, lease_owner = NULL WHERE id = $1 AND state = 'pending'",
                 &q, false, &changed);
  return r < 0 ? r : changed ? 0 : -ENOENT;
}

int pg_push_release(store_txn_t *t, const char *owner, int64_t *released) {
  pg_params_t q = {0};
  pp_text(&q, owner);
  *released = 0;
  return pg_cmd(t,
                "UPDATE push_outbox SET lease_ms = 0, lease_owner = NULL WHERE state = 'pending' "
                "AND lease_owner = $1",
                &q, false, released);
}

int pg_push_read(store_txn_t *t, int64_t reader, int64_t peer, int64_t upto, int64_t *cancelled,
                 int64_t *to_clear) {
  *cancelled = *to_clear = 0;
  pg_params_t q = {0};
  pp_int(&q, reader);
  pp_int(&q, peer);
  pp_int(&q, upto);
  int r = pg_cmd(t,
                 "UPDATE push_outbox SET state = 'cancelled', reason = 'read', lease_ms = 0, "
                 "lease_owner = NULL, done_ms = (extract(epoch FROM clock_timestamp()) * "
                 "1000)::bigint WHERE user_id = $1 AND peer_id = $2 AND ref_id <= $3 AND kind = "
                 "'message' AND state = 'pending'",
                 &q, false, cancelled);
  if (r < 0) return r;
  return pg_cmd(t,
                "UPDATE push_outbox SET cleared = true WHERE user_id = $1 AND peer_id = $2 AND "
                "ref_id <= $3 AND kind = 'message' AND state = 'sent' AND NOT cleared",
                &q, false, to_clear);
}

int pg_push_fetch(store_txn_t *t, int64_t id, int64_t user_id, int64_t now_ms, store_push_fn fn,
                  void *ctx) {
  pg_params_t q = {0};
  pp_int(&q, id);
  pp_int(&q, user_id);
  pp_int(&q, now_ms);
  int64_t n = 0;
  int r = each_push(t,
                    "UPDATE push_outbox SET fetched_ms = CASE WHEN fetched_ms = 0 THEN $3 ELSE "
                    "fetched_ms END WHERE id = $1 AND user_id = $2 AND kind <> 'clear' "
                    "RETURNING " PUSH_COLUMNS,
                    &q, fn, ctx, &n);
  return r == 0 && n == 0 ? -ENOENT : r;
}

int pg_push_stats(store_txn_t *t, store_push_stats_t *out) {
  memset(out, 0, sizeof *out);
  int r = 0;
  pg_params_t none = {0};
  PGresult *res = pg_exec(
      t,
      "SELECT count(*) FILTER (WHERE state = 'pending'), coalesce(min(created_ms) FILTER (WHERE "
      "state = 'pending'), 0), count(*) FILTER (WHERE state = 'sent'), count(*) FILTER (WHERE "
      "state = 'failed'), count(*) FILTER (WHERE state = 'cancelled') FROM push_outbox",
      &none, false, &r);
  if (!res) return r;
  out->pending = pg_i64(res, 0, 0);
  out->oldest_pending_ms = pg_i64(res, 0, 1);
  out->sent = pg_i64(res, 0, 2);
  out->failed = pg_i64(res, 0, 3);
  out->cancelled = pg_i64(res, 0, 4);
  PQclear(res);
  return 0;
}

int pg_push_purge(store_txn_t *t, int64_t before_ms, int64_t limit, int64_t *deleted) {
  pg_params_t q = {0};
  pp_int(&q, before_ms);
  pp_limit(&q, limit);
  *deleted = 0;
  return pg_cmd(t,
                "DELETE FROM push_outbox WHERE id IN (SELECT id FROM push_outbox WHERE state <> "
                "'pending' AND done_ms < $1 ORDER BY done_ms LIMIT $2)",
                &q, false, deleted);
}
