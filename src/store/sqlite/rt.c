/* SQLite operations of the real-time core: chat messages, the journal,
 * users' own contact lists, and their retention. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/sqlite/internal.h"

/* The conversation key: two local users in order, or a local user and a
 * federated address. */
static void conv_key(char *out, size_t len, int64_t a, int64_t b, const char *remote) {
  if (remote)
    snprintf(out, len, "r:%" PRId64 ":%s", a, remote);
  else
    snprintf(out, len, "u:%" PRId64 ":%" PRId64, a < b ? a : b, a < b ? b : a);
}

#define MESSAGE_COLUMNS                                                                        \
  "m.id, m.sender, m.sender_remote, m.recipient, m.recipient_remote, m.text, m.time, "         \
  "m.created_ms, m.delivered_at IS NOT NULL, m.read_at IS NOT NULL, s.name, r.name"
/* The names come with the row: the caller would otherwise look each up. */
#define MESSAGE_FROM                                                                           \
  " FROM messages m LEFT JOIN users s ON s.id = m.sender LEFT JOIN users r ON r.id = "         \
  "m.recipient"

/* Reads MESSAGE_COLUMNS; the strings point into the statement's row. */
static void read_message(sqlite3_stmt *st, store_message_t *m) {
  memset(m, 0, sizeof *m);
  m->id = sqlite3_column_int64(st, 0);
  m->sender = sqlite3_column_int64(st, 1);
  m->sender_remote = (const char *)sqlite3_column_text(st, 2);
  m->recipient = sqlite3_column_int64(st, 3);
  m->recipient_remote = (const char *)sqlite3_column_text(st, 4);
  m->text = (const char *)sqlite3_column_text(st, 5);
  sq_copy(m->time, sizeof m->time, st, 6);
  m->created_ms = sqlite3_column_int64(st, 7);
  m->delivered = sqlite3_column_int(st, 8) != 0;
  m->read = sqlite3_column_int(st, 9) != 0;
  m->sender_name = (const char *)sqlite3_column_text(st, 10);
  m->recipient_name = (const char *)sqlite3_column_text(st, 11);
}

static int each_message(store_txn_t *t, sqlite3_stmt *st, store_message_fn fn, void *ctx) {
  int r;
  store_message_t m;
  while ((r = sq_step(t, st)) == 1) {
    read_message(st, &m);
    fn(&m, ctx);
  }
  sqlite3_reset(st);
  return r < 0 ? r : 0;
}

int sq_message_add(store_txn_t *t, store_message_t *m) {
  /* One of each side, and at least one of them ours: a message between two
   * federated addresses belongs to no user here (its key would be user 0's). */
  if ((m->sender > 0) == (m->sender_remote != NULL) ||
      (m->recipient > 0) == (m->recipient_remote != NULL) || (!m->sender && !m->recipient))
    return -EINVAL;
  char conv[400];
  if (m->sender && m->recipient)
    conv_key(conv, sizeof conv, m->sender, m->recipient, NULL);
  else
    conv_key(conv, sizeof conv, m->sender ? m->sender : m->recipient, 0,
             m->sender ? m->recipient_remote : m->sender_remote);
  sqlite3_stmt *st =
      sq_prepare(t, "INSERT INTO messages (sender, sender_remote, recipient, recipient_remote, "
                    "conv, text, time, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
  if (!st) return -EIO;
  if (m->sender)
    sqlite3_bind_int64(st, 1, m->sender);
  else
    sqlite3_bind_null(st, 1);
  sq_bind_text(st, 2, m->sender_remote);
  if (m->recipient)
    sqlite3_bind_int64(st, 3, m->recipient);
  else
    sqlite3_bind_null(st, 3);
  sq_bind_text(st, 4, m->recipient_remote);
  sq_bind_text(st, 5, conv);
  sq_bind_text(st, 6, m->text);
  sq_bind_text(st, 7, m->time);
  sqlite3_bind_int64(st, 8, m->created_ms);
  int r = sq_done(t, st);
  if (r == 0) m->id = sqlite3_last_insert_rowid(sq_of(t)->db);
  return r;
}

int sq_message_get(store_txn_t *t, int64_t id, store_message_t *out) {
  sqlite3_stmt *st = sq_prepare(t, "SELECT " MESSAGE_COLUMNS MESSAGE_FROM " WHERE m.id = ?1");
  if (!st) return -EIO;
  sqlite3_bind_int64(st, 1, id);
  int r = sq_step(t, st);
  if (r == 1) {
    /* The strings live until the statement is reset: copy the text out. */
    read_message(st, out);
    out->text = out->sender_remote = out->recipient_remote = NULL;
    out->sender_name = out->recipient_name = NULL;
    r = 0;
  } else if (r == 0) {
    r = -ENOENT;
  }
  sqlite3_reset(st);
  return r;
}

typedef struct counted {
  store_message_fn fn;
  void *ctx;
  int n;
} counted_t;

static void count_one(const store_message_t *m, void *vctx) {
  counted_t *c = vctx;
  c->n++;
  c->fn(m, c->ctx);
}

int sq_message_read(store_txn_t *t, int64_t id, store_message_fn fn, void *ctx) {
  sqlite3_stmt *st = sq_prepare(t, "SELECT " MESSAGE_COLUMNS MESSAGE_FROM " WHERE m.id = ?1");
  if (!st) return -EIO;
  sqlite3_bind_int64(st, 1, id);
  counted_t c = {.fn = fn, .ctx = ctx};
  int r = each_message(t, st, count_one, &c);
  return r < 0 ? r : c.n ? 0 : -ENOENT;
}

int sq_messages_pending(store_txn_t *t, int64_t recipient, int64_t after, int64_t limit,
                        store_message_fn fn, void *ctx) {
  sqlite3_stmt *st = sq_prepare(t, "SELECT " MESSAGE_COLUMNS MESSAGE_FROM " WHERE m.recipient = ?1 "
                                   "AND m.delivered_at IS NULL AND m.id > ?2 ORDER BY m.id LIMIT ?3");
  if (!st) return -EIO;
  sqlite3_bind_int64(st, 1, recipient);
  sqlite3_bind_int64(st, 2, after);
  sqlite3_bind_int64(st, 3, limit);
  return each_message(t, st, fn, ctx);
}

int sq_messages_delivered(store_txn_t *t, int64_t recipient, int64_t upto, const char *time,
                          int64_t limit, store_message_fn fn, void *ctx) {
  /* The rows first (the partial index finds them), then one update. */
  sqlite3_stmt *st = sq_prepare(t, "SELECT " MESSAGE_COLUMNS MESSAGE_FROM " WHERE m.recipient = ?1 "
                                   "AND m.delivered_at IS NULL AND m.id <= ?2 ORDER BY m.id LIMIT ?3");
  if (!st) return -EIO;
  sqlite3_bind_int64(st, 1, recipient);
  sqlite3_bind_int64(st, 2, upto);
  sqlite3_bind_int64(st, 3, limit);
  int r = each_message(t, st, fn, ctx);
  if (r < 0) return r;
  st = sq_prepare(t, "UPDATE messages SET delivered_at = ?3 WHERE recipient = ?1 "
                     "AND delivered_at IS NULL AND id <= ?2");
  if (!st) return -EIO;
  sqlite3_bind_int64(st, 1, recipient);
  sqlite3_bind_int64(st, 2, upto);
  sq_bind_text(st, 3, time);
  return sq_done(t, st);
}

int sq_messages_read(store_txn_t *t, int64_t reader, int64_t peer, int64_t upto, const char *time,
                     int64_t *marked, int64_t *newest) {
  *marked = *newest = 0;
  char conv[64];
  conv_key(conv, sizeof conv, reader, peer, NULL);
  sqlite3_stmt *st =
      sq_prepare(t, "SELECT count(*), coalesce(max(id), 0) FROM messages WHERE conv = ?1 AND "
                    "recipient = ?2 AND read_at IS NULL AND id <= ?3");
  if (!st) return -EIO;
  sq_bind_text(st, 1, conv);
  sqlite3_bind_int64(st, 2, reader);
  sqlite3_bind_int64(st, 3, upto);
  int r = sq_step(t, st);
  if (r == 1) {
    *marked = sqlite3_column_int64(st, 0);
    *newest = sqlite3_column_int64(st, 1);
  }
  sqlite3_reset(st);
  if (r < 0) return r;
  if (!*marked) return 0;
  st = sq_prepare(t, "UPDATE messages SET read_at = ?4, delivered_at = coalesce(delivered_at, ?4) "
                     "WHERE conv = ?1 AND recipient = ?2 AND read_at IS NULL AND id <= ?3");
  if (!st) return -EIO;
  sq_bind_text(st, 1, conv);
  sqlite3_bind_int64(st, 2, reader);
  sqlite3_bind_int64(st, 3, upto);
  sq_bind_text(st, 4, time);
  return sq_done(t, st);
}

int sq_message_history(store_txn_t *t, int64_t user, int64_t peer, int64_t before, int64_t limit,
                       store_message_fn fn, void *ctx) {
  char conv[64];
  conv_key(conv, sizeof conv, user, peer, NULL);
  sqlite3_stmt *st = sq_prepare(t, "SELECT " MESSAGE_COLUMNS MESSAGE_FROM " WHERE m.conv = ?1 AND "
                                   "(?2 = 0 OR m.id < ?2) ORDER BY m.id DESC LIMIT ?3");
  if (!st) return -EIO;
  sq_bind_text(st, 1, conv);
  sqlite3_bind_int64(st, 2, before);
  sqlite3_bind_int64(st, 3, limit);
  return each_message(t, st, fn, ctx);
}

/* ---- the journal ------------------------------------------------------------------------- */

int sq_journal_chat(store_txn_t *t, int64_t user, const char *peer, const char *direction,
                    const char *started, int64_t created_ms, int64_t count) {
  char day[11];
  snprintf(day, sizeof day, "%.10s", started);
  sqlite3_stmt *st = sq_prepare(
      t, "INSERT INTO journal (user_id, kind, direction, peer, started, day, messages, "
         "created_ms) VALUES (?1, 'chat', ?2, ?3, ?4, ?5, ?7, ?6) ON CONFLICT (user_id, kind, "
         "peer, day) DO UPDATE SET messages = messages + ?7");
  if (!st) return -EIO;
  sqlite3_bind_int64(st, 1, user);
  sq_bind_text(st, 2, direction);
  sq_bind_text(st, 3, peer);
  sq_bind_text(st, 4, started);
  sq_bind_text(st, 5, day);
  sqlite3_bind_int64(st, 6, created_ms);
  sqlite3_bind_int64(st, 7, count);
  return sq_done(t, st);
}

int sq_journal_add(store_txn_t *t, store_journal_t *e) {
  sqlite3_stmt *st = sq_prepare(
      t, "INSERT INTO journal (user_id, kind, direction, peer, started, duration_s, answered, "
         "created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
  if (!st) return -EIO;
  sqlite3_bind_int64(st, 1, e->user);
  sq_bind_text(st, 2, e->kind);
  sq_bind_text(st, 3, e->direction);
  sq_bind_text(st, 4, e->peer);
  sq_bind_text(st, 5, e->started);
  if (e->duration_s >= 0)
    sqlite3_bind_int64(st, 6, e->duration_s);
  else
    sqlite3_bind_null(st, 6);
  if (e->answered >= 0)
    sqlite3_bind_int(st, 7, e->answered);
  else
    sqlite3_bind_null(st, 7);
  sqlite3_bind_int64(st, 8, e->created_ms);
  int r = sq_done(t, st);
  if (r == 0) e->id = sqlite3_last_insert_rowid(sq_of(t)->db);
  return r;
}

int sq_journal_list(store_txn_t *t, int64_t user, int64_t before, int64_t limit,
                    store_journal_fn fn, void *ctx) {
  sqlite3_stmt *st = sq_prepare(
      t, "SELECT id, kind, direction, peer, started, coalesce(duration_s, -1), "
         "coalesce(answered, -1), messages, created_ms FROM journal WHERE user_id = ?1 AND "
         "(?2 = 0 OR id < ?2) ORDER BY id DESC LIMIT ?3");
  if (!st) return -EIO;
  sqlite3_bind_int64(st, 1, user);
  sqlite3_bind_int64(st, 2, before);
  sqlite3_bind_int64(st, 3, limit);
  int r;
  while ((r = sq_step(t, st)) == 1) {
    store_journal_t e = {.id = sqlite3_column_int64(st, 0),
                         .user = user,
                         .kind = (const char *)sqlite3_column_text(st, 1),
                         .direction = (const char *)sqlite3_column_text(st, 2),
                         .peer = (const char *)sqlite3_column_text(st, 3),
                         .duration_s = sqlite3_column_int64(st, 5),
                         .answered = sqlite3_column_int(st, 6),
                         .messages = sqlite3_column_int64(st, 7),
                         .created_ms = sqlite3_column_int64(st, 8)};
    sq_copy(e.started, sizeof e.started, st, 4);
    fn(&e, ctx);
  }
  sqlite3_reset(st);
  return r < 0 ? r : 0;
}

/* ---- retention ------------------------------------------------------------------------------ */

int sq_retention_messages(store_txn_t *t, int64_t cutoff_ms, bool delivered_only, int64_t limit,
                          int64_t *deleted) {
  *deleted = 0;
  sqlite3_stmt *st =
      delivered_only
          ? sq_prepare(t, "DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE "
                          "delivered_at IS NOT NULL ORDER BY id LIMIT ?2) AND ?1 = ?1")
          : sq_prepare(t, "DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE "
                          "created_ms < ?1 ORDER BY created_ms LIMIT ?2)");
  if (!st) return -EIO;
  sqlite3_bind_int64(st, 1, cutoff_ms);
  sqlite3_bind_int64(st, 2, limit);
  int r = sq_done(t, st);
  if (r == 0) *deleted = sqlite3_changes(sq_of(t)->db);
  return r;
}

int sq_retention_journal(store_txn_t *t, int64_t cutoff_ms, int64_t limit, int64_t *deleted) {
  *deleted = 0;
  sqlite3_stmt *st = sq_prepare(t, "DELETE FROM journal WHERE id IN (SELECT id FROM journal WHERE "
                                   "created_ms < ?1 ORDER BY created_ms LIMIT ?2)");
  if (!st) return -EIO;
  sqlite3_bind_int64(st, 1, cutoff_ms);
  sqlite3_bind_int64(st, 2, limit);
  int r = sq_done(t, st);
  if (r == 0) *deleted = sqlite3_changes(sq_of(t)->db);
  return r;
}

/* ---- contact lists ------------------------------------------------------------------------------ */

static void roster_entry(char *out, size_t len, int64_t contact, const char *remote) {
  if (remote)
    snprintf(out, len, "r:%s", remote);
  else
    snprintf(out, len, "u:%" PRId64, contact);
}

int sq_roster_put(store_txn_t *t, int64_t user, int64_t contact, const char *remote) {
  if ((contact > 0) == (remote != NULL)) return -EINVAL;
  char entry[400], now[32];
  roster_entry(entry, sizeof entry, contact, remote);
  store_now_rfc3339(now);
  sqlite3_stmt *st = sq_prepare(t, "INSERT INTO roster (user_id, entry, contact, remote, "
                                   "created_at) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING");
  if (!st) return -EIO;
  sqlite3_bind_int64(st, 1, user);
  sq_bind_text(st, 2, entry);
  if (contact > 0)
    sqlite3_bind_int64(st, 3, contact);
  else
    sqlite3_bind_null(st, 3);
  sq_bind_text(st, 4, remote);
  sq_bind_text(st, 5, now);
  return sq_done(t, st);
}

int sq_roster_delete(store_txn_t *t, int64_t user, int64_t contact, const char *remote) {
  char entry[400];
  roster_entry(entry, sizeof entry, contact, remote);
  sqlite3_stmt *st = sq_prepare(t, "DELETE FROM roster WHERE user_id = ?1 AND entry = ?2");
  if (!st) return -EIO;
  sqlite3_bind_int64(st, 1, user);
  sq_bind_text(st, 2, entry);
  int r = sq_done(t, st);
  if (r == 0 && sqlite3_changes(sq_of(t)->db) == 0) r = -ENOENT;
  return r;
}

int sq_roster_list(store_txn_t *t, int64_t user, store_roster_fn fn, void *ctx) {
  sqlite3_stmt *st = sq_prepare(
      t, "SELECT r.contact, u.name, u.display_name, r.remote FROM roster r LEFT JOIN users u ON "
         "u.id = r.contact WHERE r.user_id = ?1 ORDER BY r.remote IS NOT NULL, u.name, r.remote");
  if (!st) return -EIO;
  sqlite3_bind_int64(st, 1, user);
  int r;
  while ((r = sq_step(t, st)) == 1) {
    store_roster_row_t row = {.contact = sqlite3_column_int64(st, 0),
                              .name = (const char *)sqlite3_column_text(st, 1),
                              .display_name = (const char *)sqlite3_column_text(st, 2),
                              .remote = (const char *)sqlite3_column_text(st, 3)};
    fn(&row, ctx);
  }
  sqlite3_reset(st);
  return r < 0 ? r : 0;
}
