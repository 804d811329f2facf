/* PostgreSQL operations: several admin accounts, and the audit log of every
 * admin action with its filters. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg/internal.h"

static const char *or_null(const char *s) { return s && s[0] ? s : NULL; }

/* ---- admin accounts ------------------------------------------------------------------ */

static void admin_row(const PGresult *res, int i, store_admin_t *a) {
  memset(a, 0, sizeof *a);
  pg_copy(a->name, sizeof a->name, res, i, 0);
  a->enabled = pg_bool(res, i, 1);
  pg_copy(a->created_at, sizeof a->created_at, res, i, 2);
  pg_copy(a->password_changed_at, sizeof a->password_changed_at, res, i, 3);
}

int pg_admin_list(store_txn_t *t, void (*fn)(const store_admin_t *, void *), void *ctx) {
  pg_params_t p = {0};
  int r = 0;
  PGresult *res = pg_exec(t,
                          "SELECT name, enabled, rfc3339(created_at), rfc3339(password_changed_at) "
                          "FROM admins ORDER BY name",
                          &p, false, &r);
  if (!res) return r;
  for (int i = 0; i < PQntuples(res); i++) {
    store_admin_t a;
    admin_row(res, i, &a);
    fn(&a, ctx);
  }
  PQclear(res);
  return 0;
}

int pg_admin_get(store_txn_t *t, const char *name, store_admin_t *out) {
  pg_params_t p = {0};
  pp_text(&p, name);
  int r = 0;
  PGresult *res = pg_exec(t,
                          "SELECT name, enabled, rfc3339(created_at), rfc3339(password_changed_at) "
                          "FROM admins WHERE name = $1",
                          &p, false, &r);
  if (!res) return r;
  if (PQntuples(res) == 0)
    r = -ENOENT;
  else
    admin_row(res, 0, out);
  PQclear(res);
  return r;
}

int pg_admin_count_enabled(store_txn_t *t, int64_t *count) {
  pg_params_t p = {0};
  return pg_int(t, "SELECT count(*) FROM admins WHERE enabled", &p, count);
}

static int changed_one(int r, int64_t changed) { return r < 0 ? r : changed > 0 ? 0 : -ENOENT; }

int pg_admin_set_password(store_txn_t *t, const char *name, const char *password_hash) {
  char now[32];
  store_now_rfc3339(now);
  pg_params_t p = {0};
  pp_text(&p, name);
  pp_text(&p, password_hash);
  pp_text(&p, now);
  int64_t changed = 0;
  int r =
      pg_cmd(t, "UPDATE admins SET password_hash = $2, password_changed_at = $3 WHERE name = $1",
             &p, false, &changed);
  return changed_one(r, changed);
}

int pg_admin_set_enabled(store_txn_t *t, const char *name, bool enabled) {
  pg_params_t p = {0};
  pp_text(&p, name);
  pp_bool(&p, enabled);
  int64_t changed = 0;
  int r = pg_cmd(t, "UPDATE admins SET enabled = $2 WHERE name = $1", &p, false, &changed);
  return changed_one(r, changed);
}

int pg_admin_delete(store_txn_t *t, const char *name) {
  pg_params_t p = {0};
  pp_text(&p, name);
  int64_t changed = 0;
  int r = pg_cmd(t, "DELETE FROM admins WHERE name = $1", &p, false, &changed);
  return changed_one(r, changed);
}

int pg_session_delete_admin(store_txn_t *t, const char *admin, const char *keep_hash,
                            int64_t *deleted) {
  pg_params_t p = {0};
  pp_text(&p, admin);
  pp_text(&p, or_null(keep_hash));
  return pg_cmd(t,
                "DELETE FROM sessions WHERE admin = $1 AND ($2::text IS NULL OR token_hash <> $2)",
                &p, false, deleted);
}

/* ---- the audit log ------------------------------------------------------------------- */

int pg_audit_record(store_txn_t *t, const store_audit_entry_t *e) {
  char now[32];
  store_now_rfc3339(now);
  pg_params_t p = {0};
  pp_text(&p, now);
  pp_text(&p, e->actor ? e->actor : "");
  pp_text(&p, e->key ? e->key : "");
  pp_text(&p, e->old_text);
  pp_text(&p, e->new_text);
  pp_text(&p, e->action && e->action[0] ? e->action : "setting");
  pp_text(&p, or_null(e->address));
  return pg_cmd(t,
                "INSERT INTO audit (time, actor, key, old, new, action, address) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &p, false, NULL);
}

#define AUDIT_WHERE                                                                                \
  " WHERE ($1::text IS NULL OR actor = $1) AND ($2::text IS NULL OR key = $2)"                     \
  " AND ($3::text IS NULL OR left(key, length($3)) = $3) AND ($4::text IS NULL OR action = $4)"    \
  " AND ($5::timestamptz IS NULL OR time >= $5) AND ($6::timestamptz IS NULL OR time < $6)"

static void filter_params(pg_params_t *p, const store_audit_filter_t *f) {
  pp_text(p, or_null(f->actor));
  pp_text(p, or_null(f->key));
  pp_text(p, or_null(f->key_prefix));
  pp_text(p, or_null(f->action));
  pp_text(p, or_null(f->since));
  pp_text(p, or_null(f->until));
}

/* The column as a JSON string, or null. */
static json_t *column_json(const PGresult *res, int row, int col) {
  if (PQgetisnull(res, row, col)) return json_null();
  json_t *j = json_stringn(PQgetvalue(res, row, col), (size_t)PQgetlength(res, row, col));
  return j ? j : json_null();
}

int pg_audit_query(store_txn_t *t, const store_audit_filter_t *f, int64_t offset, int64_t limit,
                   json_t **page) {
  *page = NULL;
  if (offset < 0) offset = 0;
  if (limit < 1) limit = 1;
  if (limit > STORE_AUDIT_LIMIT_MAX) limit = STORE_AUDIT_LIMIT_MAX;
  pg_params_t cp = {0};
  filter_params(&cp, f);
  int64_t total = 0;
  int r = pg_int(t, "SELECT count(*) FROM audit" AUDIT_WHERE, &cp, &total);
  if (r < 0) return r;
  pg_params_t p = {0};
  filter_params(&p, f);
  pp_int(&p, limit);
  pp_int(&p, offset);
  PGresult *res = pg_exec(t,
                          "SELECT id, rfc3339(time), actor, key, old, new, action, address "
                          "FROM audit" AUDIT_WHERE " ORDER BY id DESC LIMIT $7 OFFSET $8",
                          &p, false, &r);
  if (!res) return r;
  json_t *entries = json_array();
  if (!entries) r = -ENOMEM;
  for (int i = 0; r == 0 && i < PQntuples(res); i++) {
    json_t *e = json_pack("{s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "id",
                          (json_int_t)pg_i64(res, i, 0), "time", column_json(res, i, 1), "actor",
                          column_json(res, i, 2), "key", column_json(res, i, 3), "old",
                          column_json(res, i, 4), "new", column_json(res, i, 5), "action",
                          column_json(res, i, 6), "address", column_json(res, i, 7));
    if (!e || json_array_append_new(entries, e) < 0) r = -ENOMEM;
  }
  PQclear(res);
  if (r < 0) {
    json_decref(entries);
    return r;
  }
  *page = json_pack("{s:I, s:I, s:I, s:o}", "total", (json_int_t)total, "offset",
                    (json_int_t)offset, "limit", (json_int_t)limit, "entries", entries);
  return *page ? 0 : -ENOMEM;
}
