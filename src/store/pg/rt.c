/* PostgreSQL operations of the real-time core: chat messages, the journal,
 * users' own contact lists, and their retention. The same rows and keys as
 * the SQLite backend's rt.c. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg/internal.h"

/* The conversation key: two local users in order, or a local user and a
 * federated address. */
static void conv_key(char *out, size_t len, int64_t a, int64_t b, const char *remote) {
  if (remote)
    snprintf(out, len, "r:%" PRId64 ":%s", a, remote);
  else
    snprintf(out, len, "u:%" PRId64 ":%" PRId64, a < b ? a : b, a < b ? b : a);
}

#define MESSAGE_COLUMNS                                                                            \
  "m.id, m.sender, m.sender_remote, m.recipient, m.recipient_remote, m.text, m.time, "             \
  "m.created_ms, m.delivered_at IS NOT NULL, m.read_at IS NOT NULL, s.name, r.name"
/* The names come with the row: the caller would otherwise look each up. */
#define MESSAGE_FROM                                                                               \
  " FROM messages m LEFT JOIN users s ON s.id = m.sender LEFT JOIN users r ON r.id = "             \
  "m.recipient"

/* Reads MESSAGE_COLUMNS; the strings point into the result. */
static void read_message(const PGresult *res, int row, store_message_t *m) {
  memset(m, 0, sizeof *m);
  m->id = pg_i64(res, row, 0);
  m->sender = pg_i64(res, row, 1);
  m->sender_remote = pg_str(res, row, 2);
  m->recipient = pg_i64(res, row, 3);
  m->recipient_remote = pg_str(res, row, 4);
  m->text = pg_str(res, row, 5);
  pg_copy(m->time, sizeof m->time, res, row, 6);
  m->created_ms = pg_i64(res, row, 7);
  m->delivered = pg_bool(res, row, 8);
  m->read = pg_bool(res, row, 9);
  m->sender_name = pg_str(res, row, 10);
  m->recipient_name = pg_str(res, row, 11);
}

static int each_message(store_txn_t *t, const char *sql, const pg_params_t *p, store_message_fn fn,
                        void *ctx) {
  int r = 0;
  PGresult *res = pg_exec(t, sql, p, false, &r);
  if (!res) return r;
  store_message_t m;
  for (int i = 0; i < PQntuples(res); i++) {
    read_message(res, i, &m);
    fn(&m, ctx);
  }
  PQclear(res);
  return 0;
}

int pg_message_add(store_txn_t *t, store_message_t *m) {
  /* One of each side, and at least one of them ours. */
  if ((m->sender > 0) == (m->sender_remote != NULL) ||
      (m->recipient > 0) == (m->recipient_remote != NULL) || (!m->sender && !m->recipient) ||
      !m->text)
    return -EINVAL;
  char conv[400];
  if (m->sender && m->recipient)
    conv_key(conv, sizeof conv, m->sender, m->recipient, NULL);
  else
    conv_key(conv, sizeof conv, m->sender ? m->sender : m->recipient, 0,
             m->sender ? m->recipient_remote : m->sender_remote);
  /* Ids must increase in commit order (a reader asks for "id > the last one
   * seen"), and a sequence alone hands them out in start order: two
   * transactions could commit 6 before 5. The lock, taken before the id is
   * drawn (the row needs it), keeps every other writer of messages from
   * drawing one until this transaction ends. A user that does not exist
   * gives no row, which is the answer -EINVAL. */
  pg_params_t p = {0};
  pp_id(&p, m->sender);
  pp_text(&p, m->sender_remote);
  pp_id(&p, m->recipient);
  pp_text(&p, m->recipient_remote);
  pp_text(&p, conv);
  pp_text(&p, m->text);
  pp_text(&p, m->time);
  pp_int(&p, m->created_ms);
  int r = 0;
  PGresult *res = pg_exec(
      t,
      "WITH ordered AS (SELECT pg_advisory_xact_lock('messages'::regclass::oid::bigint)) "
      "INSERT INTO messages (sender, sender_remote, recipient, recipient_remote, conv, text, "
      "time, created_ms) SELECT $1::bigint, $2::text, $3::bigint, $4::text, $5::text, $6::text, "
      "$7::text, $8::bigint FROM ordered WHERE ($1::bigint IS NULL OR EXISTS (SELECT 1 FROM "
      "users WHERE id = $1)) AND ($3::bigint IS NULL OR EXISTS (SELECT 1 FROM users WHERE id = "
      "$3)) RETURNING id",
      &p, false, &r);
  if (!res) return r;
  r = PQntuples(res) == 1 ? 0 : -EINVAL;
  if (r == 0) m->id = pg_i64(res, 0, 0);
  PQclear(res);
  return r;
}

int pg_message_read(store_txn_t *t, int64_t id, store_message_fn fn, void *ctx) {
  pg_params_t p = {0};
  pp_int(&p, id);
  int r = 0;
  PGresult *res =
      pg_exec(t, "SELECT " MESSAGE_COLUMNS MESSAGE_FROM " WHERE m.id = $1", &p, false, &r);
  if (!res) return r;
  if (PQntuples(res) == 0) {
    r = -ENOENT;
  } else {
    store_message_t m;
    read_message(res, 0, &m);
    fn(&m, ctx);
  }
  PQclear(res);
  return r;
}

/* As in SQLite: the strings would die with the result, so only the fixed
 * fields come back. */
static void copy_fixed(const store_message_t *m, void *ctx) {
  store_message_t *out = ctx;
  *out = *m;
  out->text = out->sender_remote = out->recipient_remote = NULL;
  out->sender_name = out->recipient_name = NULL;
}

int pg_message_get(store_txn_t *t, int64_t id, store_message_t *out) {
  return pg_message_read(t, id, copy_fixed, out);
}

int pg_messages_pending(store_txn_t *t, int64_t recipient, int64_t after, int64_t limit,
                        store_message_fn fn, void *ctx) {
  pg_params_t p = {0};
  pp_int(&p, recipient);
  pp_int(&p, after);
  pp_limit(&p, limit);
  return each_message(t,
                      "SELECT " MESSAGE_COLUMNS MESSAGE_FROM " WHERE m.recipient = $1 AND "
                      "m.delivered_at IS NULL AND m.id > $2 ORDER BY m.id LIMIT $3",
                      &p, fn, ctx);
}

int pg_messages_delivered(store_txn_t *t, int64_t recipient, int64_t upto, const char *time,
                          int64_t limit, store_message_fn fn, void *ctx) {
  pg_params_t p = {0};
  pp_int(&p, recipient);
  pp_int(&p, upto);
  pp_limit(&p, limit);
  int r = each_message(t,
                       "SELECT " MESSAGE_COLUMNS MESSAGE_FROM " WHERE m.recipient = $1 AND "
                       "m.delivered_at IS NULL AND m.id <= $2 ORDER BY m.id LIMIT $3",
                       &p, fn, ctx);
  if (r < 0) return r;
  pg_params_t u = {0};
  pp_int(&u, recipient);
  pp_int(&u, upto);
  pp_text(&u, time);
  return pg_cmd(t,
                "UPDATE messages SET delivered_at = $3 WHERE recipient = $1 AND "
                "delivered_at IS NULL AND id <= $2",
                &u, false, NULL);
}

int pg_messages_read(store_txn_t *t, int64_t reader, int64_t peer, int64_t upto, const char *time,
                     int64_t *marked, int64_t *newest) {
  *marked = *newest = 0;
  char conv[64];
  conv_key(conv, sizeof conv, reader, peer, NULL);
  pg_params_t p = {0};
  pp_text(&p, conv);
  pp_int(&p, reader);
  pp_int(&p, upto);
  int r = 0;
  PGresult *res = pg_exec(t,
                          "SELECT count(*), coalesce(max(id), 0) FROM messages WHERE conv = $1 "
                          "AND recipient = $2 AND read_at IS NULL AND id <= $3",
                          &p, false, &r);
  if (!res) return r;
  *marked = pg_i64(res, 0, 0);
  *newest = pg_i64(res, 0, 1);
  PQclear(res);
  if (!*marked) return 0;
  pp_text(&p, time);
  return pg_cmd(t,
                "UPDATE messages SET read_at = $4, delivered_at = coalesce(delivered_at, $4) "
                "WHERE conv = $1 AND recipient = $2 AND read_at IS NULL AND id <= $3",
                &p, false, NULL);
}

int pg_message_history(store_txn_t *t, int64_t user, int64_t peer, int64_t before, int64_t limit,
                       store_message_fn fn, void *ctx) {
  char conv[64];
  conv_key(conv, sizeof conv, user, peer, NULL);
  pg_params_t p = {0};
  pp_text(&p, conv);
  pp_int(&p, before);
  pp_limit(&p, limit);
  return each_message(t,
                      "SELECT " MESSAGE_COLUMNS MESSAGE_FROM " WHERE m.conv = $1 AND "
                      "($2::bigint = 0 OR m.id < $2) ORDER BY m.id DESC LIMIT $3",
                      &p, fn, ctx);
}

/* ---- the journal ------------------------------------------------------------------------- */

/* The table's CHECKs, answered without an error: a chat counts messages in
 * bulk, with no savepoint per statement. */
static bool valid_direction(const char *d) {
  return d && (strcmp(d, "in") == 0 || strcmp(d, "out") == 0);
}

static bool valid_kind(const char *k) {
  return k && (strcmp(k, "chat") == 0 || strcmp(k, "call") == 0 || strcmp(k, "meeting") == 0);
}

int pg_journal_chat(store_txn_t *t, int64_t user, const char *peer, const char *direction,
                    const char *started, int64_t created_ms, int64_t count) {
  if (!started || !peer || !valid_direction(direction)) return -EINVAL;
  char day[11];
  snprintf(day, sizeof day, "%.10s", started);
  pg_params_t p = {0};
  pp_int(&p, user);
  pp_text(&p, direction);
  pp_text(&p, peer);
  pp_text(&p, started);
  pp_text(&p, day);
  pp_int(&p, created_ms);
  pp_int(&p, count);
  int64_t put = 0;
  int r = pg_cmd(t,
                 "INSERT INTO journal (user_id, kind, direction, peer, started, day, messages, "
                 "created_ms) SELECT id, 'chat', $2::text, $3::text, $4::text, $5::text, "
                 "$7::bigint, $6::bigint FROM users WHERE id = $1 ON CONFLICT ON CONSTRAINT "
                 "journal_day_key DO UPDATE SET messages = journal.messages + excluded.messages",
                 &p, false, &put);
  return r < 0 ? r : put ? 0 : -EINVAL;
}

int pg_journal_add(store_txn_t *t, store_journal_t *e) {
  if (!valid_kind(e->kind) || !valid_direction(e->direction) || !e->peer) return -EINVAL;
  pg_params_t p = {0};
  pp_int(&p, e->user);
  pp_text(&p, e->kind);
  pp_text(&p, e->direction);
  pp_text(&p, e->peer);
  pp_text(&p, e->started);
  if (e->duration_s >= 0)
    pp_int(&p, e->duration_s);
  else
    pp_text(&p, NULL);
  if (e->answered >= 0)
    pp_bool(&p, e->answered != 0);
  else
    pp_text(&p, NULL);
  pp_int(&p, e->created_ms);
  int r = 0;
  PGresult *res = pg_exec(t,
                          "INSERT INTO journal (user_id, kind, direction, peer, started, "
                          "duration_s, answered, created_ms) SELECT id, $2::text, $3::text, "
                          "$4::text, $5::text, $6::bigint, $7::boolean, $8::bigint FROM users "
                          "WHERE id = $1 RETURNING id",
                          &p, false, &r);
  if (!res) return r;
  r = PQntuples(res) == 1 ? 0 : -EINVAL; /* no such user */
  if (r == 0) e->id = pg_i64(res, 0, 0);
  PQclear(res);
  return r;
}

int pg_journal_list(store_txn_t *t, int64_t user, int64_t before, int64_t limit,
                    store_journal_fn fn, void *ctx) {
  pg_params_t p = {0};
  pp_int(&p, user);
  pp_int(&p, before);
  pp_limit(&p, limit);
  int r = 0;
  PGresult *res = pg_exec(t,
                          "SELECT id, kind, direction, peer, started, coalesce(duration_s, -1), "
                          "coalesce(answered::int, -1), messages, created_ms FROM journal WHERE "
                          "user_id = $1 AND ($2::bigint = 0 OR id < $2) ORDER BY id DESC LIMIT $3",
                          &p, false, &r);
  if (!res) return r;
  for (int i = 0; i < PQntuples(res); i++) {
    store_journal_t e = {.id = pg_i64(res, i, 0),
                         .user = user,
                         .kind = pg_str(res, i, 1),
                         .direction = pg_str(res, i, 2),
                         .peer = pg_str(res, i, 3),
                         .duration_s = pg_i64(res, i, 5),
                         .answered = (int)pg_i64(res, i, 6),
                         .messages = pg_i64(res, i, 7),
                         .created_ms = pg_i64(res, i, 8)};
    pg_copy(e.started, sizeof e.started, res, i, 4);
    fn(&e, ctx);
  }
  PQclear(res);
  return 0;
}

/* ---- retention ------------------------------------------------------------------------------ */

int pg_retention_messages(store_txn_t *t, int64_t cutoff_ms, bool delivered_only, int64_t limit,
                          int64_t *deleted) {
  *deleted = 0;
  pg_params_t p = {0};
  if (delivered_only) {
    pp_limit(&p, limit);
    return pg_cmd(t,
                  "DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE "
                  "delivered_at IS NOT NULL ORDER BY id LIMIT $1)",
                  &p, false, deleted);
  }
  pp_int(&p, cutoff_ms);
  pp_limit(&p, limit);
  return pg_cmd(t,
                "DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE "
                "created_ms < $1 ORDER BY created_ms LIMIT $2)",
                &p, false, deleted);
}

int pg_retention_journal(store_txn_t *t, int64_t cutoff_ms, int64_t limit, int64_t *deleted) {
  *deleted = 0;
  pg_params_t p = {0};
  pp_int(&p, cutoff_ms);
  pp_limit(&p, limit);
  return pg_cmd(t,
                "DELETE FROM journal WHERE id IN (SELECT id FROM journal WHERE "
                "created_ms < $1 ORDER BY created_ms LIMIT $2)",
                &p, false, deleted);
}

/* ---- contact lists ------------------------------------------------------------------------------
 */

static void roster_entry(char *out, size_t len, int64_t contact, const char *remote) {
  if (remote)
    snprintf(out, len, "r:%s", remote);
  else
    snprintf(out, len, "u:%" PRId64, contact);
}

int pg_roster_put(store_txn_t *t, int64_t user, int64_t contact, const char *remote) {
  if ((contact > 0) == (remote != NULL)) return -EINVAL;
  char entry[400], now[32];
  roster_entry(entry, sizeof entry, contact, remote);
  store_now_rfc3339(now);
  pg_params_t p = {0};
  pp_int(&p, user);
  pp_text(&p, entry);
  pp_id(&p, contact > 0 ? contact : 0);
  pp_text(&p, remote);
  pp_text(&p, now);
  return pg_cmd(t,
                "INSERT INTO roster (user_id, entry, contact, remote, created_at) VALUES ($1, $2, "
                "$3, $4, $5) ON CONFLICT DO NOTHING",
                &p, true, NULL);
}

int pg_roster_delete(store_txn_t *t, int64_t user, int64_t contact, const char *remote) {
  char entry[400];
  roster_entry(entry, sizeof entry, contact, remote);
  pg_params_t p = {0};
  pp_int(&p, user);
  pp_text(&p, entry);
  int64_t changed = 0;
  int r = pg_cmd(t, "DELETE FROM roster WHERE user_id = $1 AND entry = $2", &p, false, &changed);
  if (r == 0 && changed == 0) r = -ENOENT;
  return r;
}

int pg_roster_list(store_txn_t *t, int64_t user, store_roster_fn fn, void *ctx) {
  pg_params_t p = {0};
  pp_int(&p, user);
  int r = 0;
  PGresult *res = pg_exec(t,
                          "SELECT r.contact, u.name, u.display_name, r.remote FROM roster r LEFT "
                          "JOIN users u ON u.id = r.contact WHERE r.user_id = $1 ORDER BY "
                          "r.remote IS NOT NULL, u.name, r.remote",
                          &p, false, &r);
  if (!res) return r;
  for (int i = 0; i < PQntuples(res); i++) {
    store_roster_row_t row = {.contact = pg_i64(res, i, 0),
                              .name = pg_str(res, i, 1),
                              .display_name = pg_str(res, i, 2),
                              .remote = pg_str(res, i, 3)};
    fn(&row, ctx);
  }
  PQclear(res);
  return 0;
}
