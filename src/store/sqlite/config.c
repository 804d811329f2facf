/* SQLite operations: settings, install defaults, the audit log, admin
 * accounts and their sessions. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/sqlite/internal.h"

/* ---- settings ----------------------------------------------------------------------- */

int sq_settings_version(store_txn_t *t, uint64_t *version) {
  sqlite3_stmt *st = sq_prepare(t, "SELECT version FROM settings_state WHERE id = 1");
  if (!st) return -EIO;
  int r = sq_step(t, st);
  *version = r == 1 ? (uint64_t)sqlite3_column_int64(st, 0) : 0;
  sqlite3_reset(st);
  return r < 0 ? r : 0;
}

int sq_settings_load(store_txn_t *t, json_t **values, uint64_t *version) {
  *values = NULL;
  int r = sq_settings_version(t, version);
  if (r < 0) return r;
  json_t *obj = json_object();
  sqlite3_stmt *st = sq_prepare(t, "SELECT key, value FROM settings ORDER BY key");
  if (!obj || !st) {
    json_decref(obj);
    return obj ? -EIO : -ENOMEM;
  }
  while ((r = sq_step(t, st)) == 1) {
    const char *key = (const char *)sqlite3_column_text(st, 0);
    const char *text = (const char *)sqlite3_column_text(st, 1);
    json_error_t jerr;
    json_t *val = json_loads(text ? text : "", JSON_DECODE_ANY, &jerr);
    if (!val) {
      r = store_backend_failed(t->store, -EIO, "stored setting %s is not valid JSON: %s",
                               key ? key : "?", jerr.text);
      break;
    }
    if (json_object_set_new(obj, key ? key : "", val) < 0) {
      r = -ENOMEM;
      break;
    }
  }
  sqlite3_reset(st);
  if (r < 0) {
    json_decref(obj);
    return r;
  }
  *values = obj;
  return 0;
}

int sq_settings_put(store_txn_t *t, const char *key, const char *value_json) {
  /* A value that does not parse would make every later start fail. */
  json_t *check = json_loads(value_json, JSON_DECODE_ANY, NULL);
  if (!check) return -EINVAL;
  json_decref(check);
  char now[32];
  store_now_rfc3339(now);
  sqlite3_stmt *st = sq_prepare(t, "INSERT INTO settings (key, value, updated_at) VALUES (?1, ?2, "
                                   "?3) ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
                                   "updated_at = excluded.updated_at");
  if (!st) return -EIO;
  sq_bind_text(st, 1, key);
  sq_bind_text(st, 2, value_json);
  sq_bind_text(st, 3, now);
  return sq_done(t, st);
}

int sq_settings_delete(store_txn_t *t, const char *key) {
  sqlite3_stmt *st = sq_prepare(t, "DELETE FROM settings WHERE key = ?1");
  if (!st) return -EIO;
  sq_bind_text(st, 1, key);
  return sq_done(t, st);
}

int sq_settings_set_version(store_txn_t *t, uint64_t version) {
  if (version > INT64_MAX) return -ERANGE;
  sqlite3_stmt *st =
      sq_prepare(t, "INSERT OR REPLACE INTO settings_state (id, version) VALUES (1, ?1)");
  if (!st) return -EIO;
  sqlite3_bind_int64(st, 1, (int64_t)version);
  return sq_done(t, st);
}

int sq_meta_get(store_txn_t *t, const char *name, char **value) {
  *value = NULL;
  sqlite3_stmt *st = sq_prepare(t, "SELECT value FROM meta WHERE name = ?1");
  if (!st) return -EIO;
  sq_bind_text(st, 1, name);
  int r = sq_step(t, st);
  if (r == 1) {
    r = 0;
    if (!(*value = sq_strdup(st, 0, &r)) && r == 0) r = -ENOMEM;
  } else if (r == 0) {
    r = -ENOENT;
  }
  sqlite3_reset(st);
  return r;
}

int sq_meta_put(store_txn_t *t, const char *name, const char *value) {
  sqlite3_stmt *st = sq_prepare(t, "INSERT OR REPLACE INTO meta (name, value) VALUES (?1, ?2)");
  if (!st) return -EIO;
  sq_bind_text(st, 1, name);
  sq_bind_text(st, 2, value);
  return sq_done(t, st);
}

/* ---- audit -------------------------------------------------------------------------- */

int sq_audit_add(store_txn_t *t, const char *actor, const char *key, const char *old_text,
                 const char *new_text) {
  char now[32];
  store_now_rfc3339(now);
  sqlite3_stmt *st =
      sq_prepare(t, "INSERT INTO audit (time, actor, key, old, new) VALUES (?1, ?2, ?3, ?4, ?5)");
  if (!st) return -EIO;
  sq_bind_text(st, 1, now);
  sq_bind_text(st, 2, actor);
  sq_bind_text(st, 3, key);
  sq_bind_text(st, 4, old_text);
  sq_bind_text(st, 5, new_text);
  return sq_done(t, st);
}

int sq_audit_list(store_txn_t *t, int64_t offset, int64_t limit, json_t **page) {
  static const store_audit_filter_t none = {0};
  return sq_audit_query(t, &none, offset, limit, page);
}

/* ---- admins and sessions ------------------------------------------------------------ */

int sq_admin_count(store_txn_t *t, int64_t *count) {
  return sq_int(t, "SELECT count(*) FROM admins", 0, count);
}

int sq_admin_create(store_txn_t *t, const char *name, const char *password_hash) {
  char now[32];
  store_now_rfc3339(now);
  sqlite3_stmt *st =
      sq_prepare(t, "INSERT INTO admins (name, password_hash, created_at) VALUES (?1, ?2, ?3)");
  if (!st) return -EIO;
  sq_bind_text(st, 1, name);
  sq_bind_text(st, 2, password_hash);
  sq_bind_text(st, 3, now);
  return sq_done(t, st);
}

int sq_admin_get_hash(store_txn_t *t, const char *name, char **hash) {
  *hash = NULL;
  sqlite3_stmt *st =
      sq_prepare(t, "SELECT password_hash FROM admins WHERE name = ?1 AND enabled");
  if (!st) return -EIO;
  sq_bind_text(st, 1, name);
  int r = sq_step(t, st);
  if (r == 1) {
    r = 0;
    if (!(*hash = sq_strdup(st, 0, &r)) && r == 0) r = -ENOMEM;
  } else if (r == 0) {
    r = -ENOENT;
  }
  sqlite3_reset(st);
  return r;
}

int sq_session_put(store_txn_t *t, const store_session_t *session) {
  sqlite3_stmt *st = sq_prepare(t, "INSERT OR REPLACE INTO sessions (token_hash, admin, csrf, "
                                   "created, expires) VALUES (?1, ?2, ?3, ?4, ?5)");
  if (!st) return -EIO;
  /* Bounded lengths: the fields are fixed arrays that need not be terminated. */
  sqlite3_bind_text(st, 1, session->token_hash,
                    (int)strnlen(session->token_hash, sizeof session->token_hash), SQLITE_STATIC);
  sqlite3_bind_text(st, 2, session->admin, (int)strnlen(session->admin, sizeof session->admin),
                    SQLITE_STATIC);
  sqlite3_bind_text(st, 3, session->csrf, (int)strnlen(session->csrf, sizeof session->csrf),
                    SQLITE_STATIC);
  sqlite3_bind_int64(st, 4, session->created);
  sqlite3_bind_int64(st, 5, session->expires);
  return sq_done(t, st);
}

int sq_session_delete(store_txn_t *t, const char *token_hash) {
  sqlite3_stmt *st = sq_prepare(t, "DELETE FROM sessions WHERE token_hash = ?1");
  if (!st) return -EIO;
  sq_bind_text(st, 1, token_hash);
  return sq_done(t, st);
}

int sq_session_purge(store_txn_t *t, int64_t now) {
  sqlite3_stmt *st = sq_prepare(t, "DELETE FROM sessions WHERE expires <= ?1");
  if (!st) return -EIO;
  sqlite3_bind_int64(st, 1, now);
  return sq_done(t, st);
}

/* Copies a column into a fixed field; false when it does not fit. */
static bool copy_field(char *dst, size_t dstlen, sqlite3_stmt *st, int col) {
  const char *v = (const char *)sqlite3_column_text(st, col);
  int n = sqlite3_column_bytes(st, col);
  if (!v || n < 0 || (size_t)n >= dstlen) return false;
  memcpy(dst, v, (size_t)n);
  dst[n] = '\0';
  return true;
}

int sq_session_each(store_txn_t *t, void (*fn)(const store_session_t *, void *), void *ctx) {
  sqlite3_stmt *st =
      sq_prepare(t, "SELECT token_hash, admin, csrf, created, expires FROM sessions");
  if (!st) return -EIO;
  int r;
  while ((r = sq_step(t, st)) == 1) {
    store_session_t e = {0};
    /* A row that does not fit the fixed fields was not written by this code;
     * skipping it only means that session has to log in again. */
    if (!copy_field(e.token_hash, sizeof e.token_hash, st, 0) ||
        !copy_field(e.admin, sizeof e.admin, st, 1) || !copy_field(e.csrf, sizeof e.csrf, st, 2))
      continue;
    e.created = sqlite3_column_int64(st, 3);
    e.expires = sqlite3_column_int64(st, 4);
    fn(&e, ctx);
  }
  sqlite3_reset(st);
  return r < 0 ? r : 0;
}
