/* SQLite operations: several admin accounts, and the audit log of every
 * admin action with its filters. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/sqlite/internal.h"

static const char *or_null(const char *s) { return s && s[0] ? s : NULL; }

/* ---- admin accounts ------------------------------------------------------------------ */

static void admin_row(sqlite3_stmt *st, store_admin_t *a) {
  memset(a, 0, sizeof *a);
  sq_copy(a->name, sizeof a->name, st, 0);
  a->enabled = sqlite3_column_int(st, 1) != 0;
  sq_copy(a->created_at, sizeof a->created_at, st, 2);
  sq_copy(a->password_changed_at, sizeof a->password_changed_at, st, 3);
}

int sq_admin_list(store_txn_t *t, void (*fn)(const store_admin_t *, void *), void *ctx) {
  sqlite3_stmt *st = sq_prepare(
      t, "SELECT name, enabled, created_at, password_changed_at FROM admins ORDER BY name");
  if (!st) return -EIO;
  int r;
  while ((r = sq_step(t, st)) == 1) {
    store_admin_t a;
    admin_row(st, &a);
    fn(&a, ctx);
  }
  sqlite3_reset(st);
  return r < 0 ? r : 0;
}

int sq_admin_get(store_txn_t *t, const char *name, store_admin_t *out) {
  sqlite3_stmt *st = sq_prepare(
      t, "SELECT name, enabled, created_at, password_changed_at FROM admins WHERE name = ?1");
  if (!st) return -EIO;
  sq_bind_text(st, 1, name);
  int r = sq_step(t, st);
  if (r == 1) admin_row(st, out);
  sqlite3_reset(st);
  return r < 0 ? r : r == 1 ? 0 : -ENOENT;
}

int sq_admin_count_enabled(store_txn_t *t, int64_t *count) {
  return sq_int(t, "SELECT count(*) FROM admins WHERE enabled", 0, count);
}

/* 0 when a row changed, -ENOENT when none did. */
static int changed_one(store_txn_t *t, sqlite3_stmt *st) {
  int r = sq_done(t, st);
  if (r < 0) return r;
  return sqlite3_changes(sq_of(t)->db) > 0 ? 0 : -ENOENT;
}

int sq_admin_set_password(store_txn_t *t, const char *name, const char *password_hash) {
  char now[32];
  store_now_rfc3339(now);
  sqlite3_stmt *st = sq_prepare(
      t, "UPDATE admins SET password_hash = ?2, password_changed_at = ?3 WHERE name = ?1");
  if (!st) return -EIO;
  sq_bind_text(st, 1, name);
  sq_bind_text(st, 2, password_hash);
  sq_bind_text(st, 3, now);
  return changed_one(t, st);
}

int sq_admin_set_enabled(store_txn_t *t, const char *name, bool enabled) {
  sqlite3_stmt *st = sq_prepare(t, "UPDATE admins SET enabled = ?2 WHERE name = ?1");
  if (!st) return -EIO;
  sq_bind_text(st, 1, name);
  sqlite3_bind_int(st, 2, enabled ? 1 : 0);
  return changed_one(t, st);
}

int sq_admin_delete(store_txn_t *t, const char *name) {
  sqlite3_stmt *st = sq_prepare(t, "DELETE FROM admins WHERE name = ?1");
  if (!st) return -EIO;
  sq_bind_text(st, 1, name);
  return changed_one(t, st);
}

int sq_session_delete_admin(store_txn_t *t, const char *admin, const char *keep_hash,
                            int64_t *deleted) {
  sqlite3_stmt *st =
      sq_prepare(t, "DELETE FROM sessions WHERE admin = ?1 AND (?2 IS NULL OR token_hash <> ?2)");
  if (!st) return -EIO;
  sq_bind_text(st, 1, admin);
  sq_bind_text(st, 2, or_null(keep_hash));
  int r = sq_done(t, st);
  if (r == 0 && deleted) *deleted = sqlite3_changes(sq_of(t)->db);
  return r;
}

/* ---- the audit log ------------------------------------------------------------------- */

int sq_audit_record(store_txn_t *t, const store_audit_entry_t *e) {
  char now[32];
  store_now_rfc3339(now);
  sqlite3_stmt *st = sq_prepare(t, "INSERT INTO audit (time, actor, key, old, new, action, "
                                   "address) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
  if (!st) return -EIO;
  sq_bind_text(st, 1, now);
  sq_bind_text(st, 2, e->actor ? e->actor : "");
  sq_bind_text(st, 3, e->key ? e->key : "");
  sq_bind_text(st, 4, e->old_text);
  sq_bind_text(st, 5, e->new_text);
  sq_bind_text(st, 6, e->action && e->action[0] ? e->action : "setting");
  sq_bind_text(st, 7, or_null(e->address));
  return sq_done(t, st);
}

#define AUDIT_WHERE                                                                                \
  " WHERE (?1 IS NULL OR actor = ?1) AND (?2 IS NULL OR key = ?2)"                                 \
  " AND (?3 IS NULL OR substr(key, 1, length(?3)) = ?3) AND (?4 IS NULL OR action = ?4)"           \
  " AND (?5 IS NULL OR time >= ?5) AND (?6 IS NULL OR time < ?6)"

/* The filter's parameters ?1..?6. */
static void bind_filter(sqlite3_stmt *st, const store_audit_filter_t *f) {
  sq_bind_text(st, 1, or_null(f->actor));
  sq_bind_text(st, 2, or_null(f->key));
  sq_bind_text(st, 3, or_null(f->key_prefix));
  sq_bind_text(st, 4, or_null(f->action));
  sq_bind_text(st, 5, or_null(f->since));
  sq_bind_text(st, 6, or_null(f->until));
}

int sq_audit_query(store_txn_t *t, const store_audit_filter_t *f, int64_t offset, int64_t limit,
                   json_t **page) {
  *page = NULL;
  if (offset < 0) offset = 0;
  if (limit < 1) limit = 1;
  if (limit > STORE_AUDIT_LIMIT_MAX) limit = STORE_AUDIT_LIMIT_MAX;
  sqlite3_stmt *st = sq_prepare(t, "SELECT count(*) FROM audit" AUDIT_WHERE);
  if (!st) return -EIO;
  bind_filter(st, f);
  int r = sq_step(t, st);
  int64_t total = r == 1 ? sqlite3_column_int64(st, 0) : 0;
  sqlite3_reset(st);
  if (r < 0) return r;
  json_t *entries = json_array();
  st = sq_prepare(t, "SELECT id, time, actor, key, old, new, action, address FROM audit" AUDIT_WHERE
                     " ORDER BY id DESC LIMIT ?7 OFFSET ?8");
  if (!entries || !st) {
    json_decref(entries);
    return entries ? -EIO : -ENOMEM;
  }
  bind_filter(st, f);
  sqlite3_bind_int64(st, 7, limit);
  sqlite3_bind_int64(st, 8, offset);
  while ((r = sq_step(t, st)) == 1) {
    json_t *e = json_pack("{s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "id",
                          (json_int_t)sqlite3_column_int64(st, 0), "time", sq_json(st, 1), "actor",
                          sq_json(st, 2), "key", sq_json(st, 3), "old", sq_json(st, 4), "new",
                          sq_json(st, 5), "action", sq_json(st, 6), "address", sq_json(st, 7));
    if (!e || json_array_append_new(entries, e) < 0) {
      r = -ENOMEM;
      break;
    }
  }
  sqlite3_reset(st);
  if (r < 0) {
    json_decref(entries);
    return r;
  }
  *page = json_pack("{s:I, s:I, s:I, s:o}", "total", (json_int_t)total, "offset",
                    (json_int_t)offset, "limit", (json_int_t)limit, "entries", entries);
  return *page ? 0 : -ENOMEM;
}
