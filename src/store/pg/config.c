/* PostgreSQL operations: settings, install defaults, the audit log, admin
 * accounts and their sessions. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg/internal.h"

/* ---- settings ----------------------------------------------------------------------- */

int pg_settings_version(store_txn_t *t, uint64_t *version) {
  pg_params_t p = {0};
  int64_t v = 0;
  int r = pg_int(t, "SELECT version FROM settings_state WHERE id = 1", &p, &v);
  *version = r == 0 ? (uint64_t)v : 0;
  return r;
}

int pg_settings_load(store_txn_t *t, json_t **values, uint64_t *version) {
  *values = NULL;
  int r = pg_settings_version(t, version);
  if (r < 0) return r;
  pg_params_t p = {0};
  PGresult *res = pg_exec(t, "SELECT key, value FROM settings ORDER BY key", &p, false, &r);
  if (!res) return r;
  json_t *obj = json_object();
  if (!obj) r = -ENOMEM;
  for (int i = 0; r == 0 && i < PQntuples(res); i++) {
    const char *key = PQgetvalue(res, i, 0);
    json_error_t jerr;
    json_t *val = json_loads(PQgetvalue(res, i, 1), JSON_DECODE_ANY, &jerr);
    if (!val) {
      r = store_backend_failed(t->store, -EIO, "stored setting %s is not valid JSON: %s", key,
                               jerr.text);
      break;
    }
    if (json_object_set_new(obj, key, val) < 0) r = -ENOMEM;
  }
  PQclear(res);
  if (r < 0) {
    json_decref(obj);
    return r;
  }
  *values = obj;
  return 0;
}

/* Marks the transaction as Atrium's own settings write: the triggers that
 * raise the version and audit a change made by hand leave it alone (it
 * writes its version and audit rows itself). */
static int mark_writer(store_txn_t *t) {
  pg_params_t p = {0};
  return pg_cmd(t, "SELECT set_config('atrium.settings_writer', 'on', true)", &p, false, NULL);
}

int pg_settings_put(store_txn_t *t, const char *key, const char *value_json) {
  /* The same check as SQLite's: the column's json type would refuse less
   * (jansson is stricter), and a value that does not load would make every
   * later start fail. */
  if (!key || !value_json) return -EINVAL;
  json_t *check = json_loads(value_json, JSON_DECODE_ANY, NULL);
  if (!check) return -EINVAL;
  json_decref(check);
  int r = mark_writer(t);
  if (r < 0) return r;
  char now[32];
  store_now_rfc3339(now);
  pg_params_t p = {0};
  pp_text(&p, key);
  pp_text(&p, value_json);
  pp_text(&p, now);
  return pg_cmd(t,
                "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
                "updated_at = excluded.updated_at",
                &p, false, NULL);
}

int pg_settings_delete(store_txn_t *t, const char *key) {
  int r = mark_writer(t);
  if (r < 0) return r;
  pg_params_t p = {0};
  pp_text(&p, key);
  return pg_cmd(t, "DELETE FROM settings WHERE key = $1", &p, false, NULL);
}

int pg_settings_set_version(store_txn_t *t, uint64_t version) {
  if (version > INT64_MAX) return -ERANGE;
  pg_params_t p = {0};
  pp_int(&p, (int64_t)version);
  return pg_cmd(t,
                "INSERT INTO settings_state (id, version) VALUES (1, $1) "
                "ON CONFLICT (id) DO UPDATE SET version = excluded.version",
                &p, false, NULL);
}

int pg_meta_get(store_txn_t *t, const char *name, char **value) {
  *value = NULL;
  pg_params_t p = {0};
  pp_text(&p, name);
  int r = 0;
  PGresult *res = pg_exec(t, "SELECT value FROM meta WHERE name = $1", &p, false, &r);
  if (!res) return r;
  if (PQntuples(res) == 0)
    r = -ENOENT;
  else if (!(*value = pg_strdup(res, 0, 0, &r)) && r == 0)
    r = -ENOMEM;
  PQclear(res);
  return r;
}

int pg_meta_put(store_txn_t *t, const char *name, const char *value) {
  if (!name || !value) return -EINVAL;
  pg_params_t p = {0};
  pp_text(&p, name);
  pp_text(&p, value);
  return pg_cmd(t,
                "INSERT INTO meta (name, value) VALUES ($1, $2) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                &p, false, NULL);
}

/* ---- audit -------------------------------------------------------------------------- */

int pg_audit_add(store_txn_t *t, const char *actor, const char *key, const char *old_text,
                 const char *new_text) {
  if (!actor || !key) return -EINVAL;
  char now[32];
  store_now_rfc3339(now);
  pg_params_t p = {0};
  pp_text(&p, now);
  pp_text(&p, actor);
  pp_text(&p, key);
  pp_text(&p, old_text);
  pp_text(&p, new_text);
  return pg_cmd(t, "INSERT INTO audit (time, actor, key, old, new) VALUES ($1, $2, $3, $4, $5)", &p,
                false, NULL);
}

int pg_audit_list(store_txn_t *t, int64_t offset, int64_t limit, json_t **page) {
  static const store_audit_filter_t none = {0};
  return pg_audit_query(t, &none, offset, limit, page);
}

/* ---- admins and sessions ------------------------------------------------------------ */

int pg_admin_count(store_txn_t *t, int64_t *count) {
  pg_params_t p = {0};
  return pg_int(t, "SELECT count(*) FROM admins", &p, count);
}

int pg_admin_create(store_txn_t *t, const char *name, const char *password_hash) {
  if (!name || !password_hash) return -EINVAL;
  char now[32];
  store_now_rfc3339(now);
  pg_params_t p = {0};
  pp_text(&p, name);
  pp_text(&p, password_hash);
  pp_text(&p, now);
  int64_t added = 0;
  int r = pg_cmd(t,
                 "INSERT INTO admins (name, password_hash, created_at) VALUES ($1, $2, $3) "
                 "ON CONFLICT DO NOTHING",
                 &p, false, &added);
  return r < 0 ? r : added ? 0 : -EEXIST;
}

int pg_admin_get_hash(store_txn_t *t, const char *name, char **hash) {
  *hash = NULL;
  pg_params_t p = {0};
  pp_text(&p, name);
  int r = 0;
  PGresult *res =
      pg_exec(t, "SELECT password_hash FROM admins WHERE name = $1 AND enabled", &p, false, &r);
  if (!res) return r;
  if (PQntuples(res) == 0)
    r = -ENOENT;
  else if (!(*hash = pg_strdup(res, 0, 0, &r)) && r == 0)
    r = -ENOMEM;
  PQclear(res);
  return r;
}

/* A fixed field as a terminated string: the fields need not be terminated. */
static void field(char *dst, size_t dstlen, const char *src, size_t srclen) {
  size_t n = strnlen(src, srclen);
  if (n >= dstlen) n = dstlen - 1;
  memcpy(dst, src, n);
  dst[n] = '\0';
}

int pg_session_put(store_txn_t *t, const store_session_t *session) {
  char token[sizeof session->token_hash + 1], admin[sizeof session->admin + 1],
      csrf[sizeof session->csrf + 1];
  field(token, sizeof token, session->token_hash, sizeof session->token_hash);
  field(admin, sizeof admin, session->admin, sizeof session->admin);
  field(csrf, sizeof csrf, session->csrf, sizeof session->csrf);
  pg_params_t p = {0};
  pp_text(&p, token);
  pp_text(&p, admin);
  pp_text(&p, csrf);
  pp_int(&p, session->created);
  pp_int(&p, session->expires);
  /* SQLite's INSERT OR REPLACE; no row when there is no such admin (the
   * foreign key, answered without an error). */
  int64_t put = 0;
  int r = pg_cmd(t,
                 "INSERT INTO sessions (token_hash, admin, csrf, created, expires) "
                 "SELECT $1::text, name, $3::text, $4::bigint, $5::bigint FROM admins "
                 "WHERE name = $2 ON CONFLICT (token_hash) DO UPDATE SET "
                 "admin = excluded.admin, csrf = excluded.csrf, created = excluded.created, "
                 "expires = excluded.expires",
                 &p, false, &put);
  return r < 0 ? r : put ? 0 : -EINVAL;
}

int pg_session_delete(store_txn_t *t, const char *token_hash) {
  pg_params_t p = {0};
  pp_text(&p, token_hash);
  return pg_cmd(t, "DELETE FROM sessions WHERE token_hash = $1", &p, false, NULL);
}

int pg_session_purge(store_txn_t *t, int64_t now) {
  pg_params_t p = {0};
  pp_int(&p, now);
  return pg_cmd(t, "DELETE FROM sessions WHERE expires <= $1", &p, false, NULL);
}

/* Copies a column into a fixed field; false when it does not fit. */
static bool copy_field(char *dst, size_t dstlen, const PGresult *res, int row, int col) {
  size_t n = (size_t)PQgetlength(res, row, col);
  if (PQgetisnull(res, row, col) || n >= dstlen) return false;
  memcpy(dst, PQgetvalue(res, row, col), n);
  dst[n] = '\0';
  return true;
}

int pg_session_each(store_txn_t *t, void (*fn)(const store_session_t *, void *), void *ctx) {
  pg_params_t p = {0};
  int r = 0;
  PGresult *res =
      pg_exec(t, "SELECT token_hash, admin, csrf, created, expires FROM sessions", &p, false, &r);
  if (!res) return r;
  for (int i = 0; i < PQntuples(res); i++) {
    store_session_t e = {0};
    /* A row that does not fit the fixed fields was not written by this code;
     * skipping it only means that session has to log in again. */
    if (!copy_field(e.token_hash, sizeof e.token_hash, res, i, 0) ||
        !copy_field(e.admin, sizeof e.admin, res, i, 1) ||
        !copy_field(e.csrf, sizeof e.csrf, res, i, 2))
      continue;
    e.created = pg_i64(res, i, 3);
    e.expires = pg_i64(res, i, 4);
    fn(&e, ctx);
  }
  PQclear(res);
  return 0;
}
