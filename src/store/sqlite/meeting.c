/* SQLite operations of web meetings: the meetings users create, when they
 * ran and why they ended. The same rows as the PostgreSQL backend's
 * meeting.c. */
#include <errno.h>
#include <string.h>

#include "store/sqlite/internal.h"

#define MEETING_COLUMNS                                                                            \
  "m.id, m.host_id, u.name, m.title, coalesce(m.starts_at, ''), m.created_at, m.created_ms, "     \
  "coalesce(m.started_at, ''), coalesce(m.ended_at, ''), coalesce(m.end_reason, '')"
#define MEETING_FROM " FROM meetings m JOIN users u ON u.id = m.host_id"

static void read_meeting(sqlite3_stmt *st, store_meeting_t *m) {
  memset(m, 0, sizeof *m);
  sq_copy(m->id, sizeof m->id, st, 0);
  m->host = sqlite3_column_int64(st, 1);
  sq_copy(m->host_name, sizeof m->host_name, st, 2);
  sq_copy(m->title, sizeof m->title, st, 3);
  sq_copy(m->starts_at, sizeof m->starts_at, st, 4);
  sq_copy(m->created_at, sizeof m->created_at, st, 5);
  m->created_ms = sqlite3_column_int64(st, 6);
  sq_copy(m->started_at, sizeof m->started_at, st, 7);
  sq_copy(m->ended_at, sizeof m->ended_at, st, 8);
  sq_copy(m->end_reason, sizeof m->end_reason, st, 9);
}

int sq_meeting_add(store_txn_t *t, const store_meeting_t *m) {
  if (!m->id[0] || !m->title[0]) return -EINVAL;
  sqlite3_stmt *st = sq_prepare(t, "INSERT INTO meetings (id, host_id, title, starts_at, "
                                   "created_at, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
  if (!st) return -EIO;
  sq_bind_text(st, 1, m->id);
  sqlite3_bind_int64(st, 2, m->host);
  sq_bind_text(st, 3, m->title);
  sq_bind_text(st, 4, m->starts_at[0] ? m->starts_at : NULL);
  sq_bind_text(st, 5, m->created_at);
  sqlite3_bind_int64(st, 6, m->created_ms);
  return sq_done(t, st);
}

int sq_meeting_get(store_txn_t *t, const char *id, store_meeting_t *out) {
  sqlite3_stmt *st = sq_prepare(t, "SELECT " MEETING_COLUMNS MEETING_FROM " WHERE m.id = ?1");
  if (!st) return -EIO;
  sq_bind_text(st, 1, id);
  int r = sq_step(t, st);
  if (r == 1) {
    read_meeting(st, out);
    r = 0;
  } else if (r == 0) {
    r = -ENOENT;
  }
  sqlite3_reset(st);
  return r;
}

int sq_meeting_started(store_txn_t *t, const char *id, const char *time) {
  sqlite3_stmt *st = sq_prepare(
      t, "UPDATE meetings SET started_at = coalesce(started_at, ?2) WHERE id = ?1");
  if (!st) return -EIO;
  sq_bind_text(st, 1, id);
  sq_bind_text(st, 2, time);
  int r = sq_done(t, st);
  if (r == 0 && sqlite3_changes(sq_of(t)->db) == 0) r = -ENOENT;
  return r;
}

int sq_meeting_end(store_txn_t *t, const char *id, const char *time, const char *reason) {
  sqlite3_stmt *st = sq_prepare(t, "UPDATE meetings SET ended_at = ?2, end_reason = ?3 WHERE id "
                                   "= ?1 AND ended_at IS NULL");
  if (!st) return -EIO;
  sq_bind_text(st, 1, id);
  sq_bind_text(st, 2, time);
  sq_bind_text(st, 3, reason);
  int r = sq_done(t, st);
  if (r == 0 && sqlite3_changes(sq_of(t)->db) == 0) r = -ENOENT;
  return r;
}

static int each_meeting(store_txn_t *t, sqlite3_stmt *st, store_meeting_fn fn, void *ctx) {
  int r;
  store_meeting_t m;
  while ((r = sq_step(t, st)) == 1) {
    read_meeting(st, &m);
    fn(&m, ctx);
  }
  sqlite3_reset(st);
  return r;
}

int sq_meeting_list(store_txn_t *t, int64_t host, int64_t limit, store_meeting_fn fn, void *ctx) {
  sqlite3_stmt *st = sq_prepare(t, "SELECT " MEETING_COLUMNS MEETING_FROM
                                   " WHERE m.host_id = ?1 ORDER BY m.created_ms DESC, m.id "
                                   "LIMIT ?2");
  if (!st) return -EIO;
  sqlite3_bind_int64(st, 1, host);
  sqlite3_bind_int64(st, 2, limit);
  return each_meeting(t, st, fn, ctx);
}

int sq_meeting_open(store_txn_t *t, store_meeting_fn fn, void *ctx) {
  sqlite3_stmt *st = sq_prepare(t, "SELECT " MEETING_COLUMNS MEETING_FROM
                                   " WHERE m.started_at IS NOT NULL AND m.ended_at IS NULL "
                                   "ORDER BY m.created_ms");
  if (!st) return -EIO;
  return each_meeting(t, st, fn, ctx);
}
