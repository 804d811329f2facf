/* PostgreSQL operations of the directory: domain generations, users, mobile
 * devices, client tokens, federation data and notification preferences. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg/internal.h"

/* ---- domain generations ------------------------------------------------------------- */

int pg_domain_current(store_txn_t *t, int64_t *generation, char *name, size_t len) {
  pg_params_t p = {0};
  int r = 0;
  PGresult *res = pg_exec(
      t, "SELECT generation, name FROM domains ORDER BY generation DESC LIMIT 1", &p, false, &r);
  if (!res) return r;
  if (PQntuples(res) == 0) {
    r = -ENOENT;
  } else {
    *generation = pg_i64(res, 0, 0);
    if (name) pg_copy(name, len, res, 0, 1);
  }
  PQclear(res);
  return r;
}

int pg_domain_add(store_txn_t *t, int64_t generation, const char *name, const char *actor) {
  if (!name || !actor) return -EINVAL;
  char now[32];
  store_now_rfc3339(now);
  pg_params_t p = {0};
  pp_int(&p, generation);
  pp_text(&p, name);
  pp_text(&p, now);
  pp_text(&p, actor);
  int64_t added = 0;
  int r = pg_cmd(t,
                 "INSERT INTO domains (generation, name, since, actor) VALUES ($1, $2, $3, $4) "
                 "ON CONFLICT DO NOTHING",
                 &p, false, &added);
  return r < 0 ? r : added ? 0 : -EEXIST;
}

int pg_domain_was(store_txn_t *t, const char *name, int64_t before, bool *was) {
  pg_params_t p = {0};
  pp_text(&p, name);
  pp_int(&p, before);
  int64_t n = 0;
  int r = pg_int(t,
                 "SELECT count(*) FROM (SELECT 1 FROM domains WHERE name = $1 AND "
                 "generation < $2 LIMIT 1) x",
                 &p, &n);
  *was = r == 0 && n > 0;
  return r;
}

int pg_domain_counts(store_txn_t *t, int64_t generation, store_domain_counts_t *out) {
  memset(out, 0, sizeof *out);
  pg_params_t p = {0};
  pp_int(&p, generation);
  int r = 0;
  PGresult *res = pg_exec(t,
                          "SELECT (SELECT count(*) FROM users), "
                          "(SELECT count(*) FROM devices WHERE generation = $1), "
                          "(SELECT count(*) FROM subscriptions)",
                          &p, false, &r);
  if (!res) return r;
  out->users = pg_i64(res, 0, 0);
  out->mobile_devices = pg_i64(res, 0, 1);
  out->subscriptions = pg_i64(res, 0, 2);
  PQclear(res);
  return 0;
}

/* ---- users -------------------------------------------------------------------------- */

#define USER_COLUMNS_OF(t)                                                                         \
  t "id, " t "name, " t "display_name, " t "windows_account, " t "enabled, " t                     \
    "password_hash IS NOT NULL, rfc3339(" t "created_at), rfc3339(" t "updated_at), "          \
    "(SELECT etag FROM user_pictures WHERE user_id = " t "id)"
#define USER_COLUMNS USER_COLUMNS_OF("")

/* Reads USER_COLUMNS starting at column c. */
static void read_user(const PGresult *res, int row, int c, store_user_t *u) {
  memset(u, 0, sizeof *u);
  u->id = pg_i64(res, row, c);
  pg_copy(u->name, sizeof u->name, res, row, c + 1);
  u->has_display_name = !PQgetisnull(res, row, c + 2);
  pg_copy(u->display_name, sizeof u->display_name, res, row, c + 2);
  u->has_windows_account = !PQgetisnull(res, row, c + 3);
  pg_copy(u->windows_account, sizeof u->windows_account, res, row, c + 3);
  u->enabled = pg_bool(res, row, c + 4);
  u->has_password = pg_bool(res, row, c + 5);
  pg_copy(u->created_at, sizeof u->created_at, res, row, c + 6);
  pg_copy(u->updated_at, sizeof u->updated_at, res, row, c + 7);
  pg_copy(u->picture, sizeof u->picture, res, row, c + 8);
}

/* Which unique constraint a failed write hit, as an API field name. */
static const char *conflict_field(const char *constraint) {
  if (strstr(constraint, "windows_account")) return "windows_account";
  if (strstr(constraint, "remote")) return "remote";
  return "name";
}

int pg_user_insert(store_txn_t *t, const store_user_write_t *u, const char **conflict) {
  if (!u->name) return -EINVAL;
  char now[32];
  store_now_rfc3339(now);
  pg_params_t p = {0};
  pp_text(&p, u->name);
  pp_text(&p, u->set_display_name ? u->display_name : NULL);
  pp_text(&p, u->set_windows_account ? u->windows_account : NULL);
  pp_text(&p, u->set_password_hash ? u->password_hash : NULL);
  pp_bool(&p, u->set_enabled ? u->enabled : true);
  pp_text(&p, now);
  /* No savepoint: an import inserts thousands of users in one transaction,
   * and a subtransaction each would slow every session of the server. A
   * taken name or account inserts nothing instead of failing. */
  int r = 0;
  PGresult *res = pg_exec(t,
                          "INSERT INTO users (name, display_name, windows_account, "
                          "password_hash, enabled, created_at, updated_at) VALUES ($1, $2, $3, "
                          "$4, $5, $6, $6) ON CONFLICT DO NOTHING RETURNING id",
                          &p, false, &r);
  if (!res) return r;
  int rows = PQntuples(res);
  PQclear(res);
  if (rows == 1) return 0;
  pg_params_t q = {0};
  pp_text(&q, u->name);
  int64_t taken = 0;
  if ((r = pg_int(t, "SELECT count(*) FROM users WHERE name = $1", &q, &taken)) < 0) return r;
  if (conflict) *conflict = taken ? "name" : "windows_account";
  return -EEXIST;
}

int pg_user_update(store_txn_t *t, const char *name, const store_user_write_t *u,
                   const char **conflict) {
  char now[32];
  store_now_rfc3339(now);
  pg_params_t p = {0};
  pp_bool(&p, u->set_name);
  pp_text(&p, u->name);
  pp_bool(&p, u->set_display_name);
  pp_text(&p, u->display_name);
  pp_bool(&p, u->set_windows_account);
  pp_text(&p, u->windows_account);
  pp_bool(&p, u->set_password_hash);
  pp_text(&p, u->password_hash);
  pp_bool(&p, u->set_enabled);
  pp_bool(&p, u->enabled);
  pp_text(&p, now);
  pp_text(&p, name);
  /* One statement whatever the fields: each flag picks new or old. */
  int64_t changed = 0;
  int r = pg_cmd(t,
                 "UPDATE users SET "
                 "name = CASE WHEN $1::boolean THEN $2::text ELSE name END, "
                 "display_name = CASE WHEN $3::boolean THEN $4::text ELSE display_name END, "
                 "windows_account = CASE WHEN $5::boolean THEN $6::text ELSE windows_account "
                 "END, "
                 "password_hash = CASE WHEN $7::boolean THEN $8::text ELSE password_hash END, "
                 "enabled = CASE WHEN $9::boolean THEN $10::boolean ELSE enabled END, "
                 "updated_at = $11 WHERE name = $12",
                 &p, true, &changed);
  if (r == -EEXIST && conflict) *conflict = conflict_field(pg_conflict(t));
  if (r == 0 && changed == 0) r = -ENOENT;
  return r;
}

int pg_user_delete(store_txn_t *t, const char *name) {
  pg_params_t p = {0};
  pp_text(&p, name);
  int64_t changed = 0;
  int r = pg_cmd(t, "DELETE FROM users WHERE name = $1", &p, false, &changed);
  if (r == 0 && changed == 0) r = -ENOENT;
  return r;
}

static int user_by(store_txn_t *t, const char *sql, const pg_params_t *p, store_user_t *out) {
  int r = 0;
  PGresult *res = pg_exec(t, sql, p, false, &r);
  if (!res) return r;
  if (PQntuples(res) == 0)
    r = -ENOENT;
  else
    read_user(res, 0, 0, out);
  PQclear(res);
  return r;
}

int pg_user_get(store_txn_t *t, const char *name, store_user_t *out) {
  pg_params_t p = {0};
  pp_text(&p, name);
  return user_by(t, "SELECT " USER_COLUMNS " FROM users WHERE name = $1", &p, out);
}

int pg_user_by_id(store_txn_t *t, int64_t id, store_user_t *out) {
  pg_params_t p = {0};
  pp_int(&p, id);
  return user_by(t, "SELECT " USER_COLUMNS " FROM users WHERE id = $1", &p, out);
}

int pg_user_by_windows_account(store_txn_t *t, const char *account, store_user_t *out) {
  pg_params_t p = {0};
  pp_text(&p, account);
  /* The expression of the unique index: ASCII case folded, as SQLite's
   * NOCASE does. */
  return user_by(t,
                 "SELECT " USER_COLUMNS " FROM users WHERE lower(windows_account) = "
                 "lower($1::text COLLATE \"C\")",
                 &p, out);
}

int pg_user_credentials(store_txn_t *t, const char *name, int64_t *id, char **hash, bool *enabled) {
  *hash = NULL;
  pg_params_t p = {0};
  pp_text(&p, name);
  int r = 0;
  PGresult *res =
      pg_exec(t, "SELECT id, password_hash, enabled FROM users WHERE name = $1", &p, false, &r);
  if (!res) return r;
  if (PQntuples(res) == 0) {
    r = -ENOENT;
  } else {
    *id = pg_i64(res, 0, 0);
    *hash = pg_strdup(res, 0, 1, &r);
    *enabled = pg_bool(res, 0, 2);
  }
  PQclear(res);
  return r;
}

/* "%q%" with LIKE's wildcards escaped by '\'. */
static char *like_pattern(const char *q) {
  size_t n = strlen(q);
  char *p = malloc(2 * n + 3);
  if (!p) return NULL;
  size_t o = 0;
  p[o++] = '%';
  for (size_t i = 0; i < n; i++) {
    if (q[i] == '%' || q[i] == '_' || q[i] == '\\') p[o++] = '\\';
    p[o++] = q[i];
  }
  p[o++] = '%';
  p[o] = '\0';
  return p;
}

/* ILIKE on "C" columns folds ASCII only, as SQLite's LIKE does. E'\\' is a
 * backslash whatever standard_conforming_strings says. */
#define USER_MATCH                                                                                 \
  " WHERE name ILIKE $1 ESCAPE E'\\\\' OR display_name ILIKE $1 ESCAPE E'\\\\' "                   \
  "OR windows_account ILIKE $1 ESCAPE E'\\\\' OR name = $2"

int pg_user_list(store_txn_t *t, const char *q, const char *exact, int64_t offset, int64_t limit,
                 int64_t *total, store_user_fn fn, void *ctx) {
  *total = 0;
  char *pattern = q ? like_pattern(q) : NULL;
  if (q && !pattern) return -ENOMEM;
  pg_params_t p = {0};
  if (q) {
    pp_text(&p, pattern);
    pp_text(&p, exact ? exact : "");
  }
  int r = pg_int(t, q ? "SELECT count(*) FROM users" USER_MATCH : "SELECT count(*) FROM users", &p,
                 total);
  PGresult *res = NULL;
  if (r == 0) {
    pp_limit(&p, limit);
    pp_offset(&p, offset);
    res = pg_exec(t,
                  q ? "SELECT " USER_COLUMNS " FROM users" USER_MATCH
                      " ORDER BY name LIMIT $3 OFFSET $4"
                    : "SELECT " USER_COLUMNS " FROM users ORDER BY name LIMIT $1 OFFSET $2",
                  &p, false, &r);
  }
  free(pattern);
  if (!res) return r;
  store_user_t u;
  for (int i = 0; i < PQntuples(res); i++) {
    read_user(res, i, 0, &u);
    fn(&u, ctx);
  }
  PQclear(res);
  return 0;
}

int pg_user_names(store_txn_t *t, int64_t limit, void (*fn)(const char *name, void *ctx),
                  void *ctx) {
  pg_params_t p = {0};
  pp_limit(&p, limit);
  int r = 0;
  PGresult *res = pg_exec(t, "SELECT name FROM users ORDER BY name LIMIT $1", &p, false, &r);
  if (!res) return r;
  for (int i = 0; i < PQntuples(res); i++) fn(PQgetvalue(res, i, 0), ctx);
  PQclear(res);
  return 0;
}

/* ---- devices and client tokens ------------------------------------------------------------ */

int pg_device_put(store_txn_t *t, int64_t user_id, const char *device_id, const char *platform,
                  const char *push_token, const char *login, int64_t generation) {
  if (!device_id || !platform || !login) return -EINVAL;
  char now[32];
  store_now_rfc3339(now);
  pg_params_t p = {0};
  pp_int(&p, user_id);
  pp_text(&p, device_id);
  pp_text(&p, platform);
  pp_text(&p, push_token);
  pp_text(&p, login);
  pp_int(&p, generation);
  pp_text(&p, now);
  int64_t put = 0;
  int r = pg_cmd(t,
                 "INSERT INTO devices (user_id, device_id, platform, push_token, login, "
                 "generation, created_at, updated_at, push_registered_ms) SELECT id, $2::text, "
                 "$3::text, $4::text, $5::text, $6::bigint, $7::timestamptz, $7::timestamptz, "
                 "(extract(epoch FROM clock_timestamp()) * 1000)::bigint FROM users WHERE id = $1 "
                 "ON CONFLICT (user_id, device_id) DO UPDATE SET platform = excluded.platform, "
                 "push_registered_ms = CASE WHEN devices.push_token IS NOT DISTINCT FROM "
                 "excluded.push_token THEN devices.push_registered_ms ELSE "
                 "excluded.push_registered_ms END, "
                 "push_token = excluded.push_token, login = excluded.login, "
                 "generation = excluded.generation, updated_at = excluded.updated_at",
                 &p, false, &put);
  return r < 0 ? r : put ? 0 : -EINVAL;
}

int pg_tokens_delete_device(store_txn_t *t, int64_t user_id, const char *device_id) {
  pg_params_t p = {0};
  pp_int(&p, user_id);
  pp_text(&p, device_id);
  return pg_cmd(t, "DELETE FROM client_tokens WHERE user_id = $1 AND device_id = $2", &p, false,
                NULL);
}

int pg_tokens_delete_user(store_txn_t *t, int64_t user_id, int64_t *deleted) {
  pg_params_t p = {0};
  pp_int(&p, user_id);
  *deleted = 0;
  return pg_cmd(t, "DELETE FROM client_tokens WHERE user_id = $1", &p, false, deleted);
}

int pg_token_delete(store_txn_t *t, const char *token_hash) {
  pg_params_t p = {0};
  pp_text(&p, token_hash);
  int64_t changed = 0;
  int r = pg_cmd(t, "DELETE FROM client_tokens WHERE token_hash = $1", &p, false, &changed);
  return r == 0 && changed == 0 ? -ENOENT : r;
}

int pg_tokens_purge(store_txn_t *t, int64_t user_id, int64_t now) {
  pg_params_t p = {0};
  pp_int(&p, user_id);
  pp_int(&p, now);
  return pg_cmd(t, "DELETE FROM client_tokens WHERE user_id = $1 AND expires <= $2", &p, false,
                NULL);
}

int pg_token_put(store_txn_t *t, const char *token_hash, int64_t user_id, const char *device_id,
                 int64_t generation, int64_t created, int64_t expires) {
  if (!token_hash) return -EINVAL;
  pg_params_t p = {0};
  pp_text(&p, token_hash);
  pp_int(&p, user_id);
  pp_text(&p, device_id);
  pp_int(&p, generation);
  pp_int(&p, created);
  pp_int(&p, expires);
  int64_t added = 0;
  int r = pg_cmd(t,
                 "INSERT INTO client_tokens (token_hash, user_id, device_id, generation, "
                 "created, expires) SELECT $1::text, id, $3::text, $4::bigint, $5::bigint, "
                 "$6::bigint FROM users WHERE id = $2 ON CONFLICT DO NOTHING",
                 &p, false, &added);
  if (r < 0 || added) return r;
  /* Nothing inserted: the token exists, or the user does not. */
  int64_t users = 0;
  pg_params_t q = {0};
  pp_int(&q, user_id);
  if ((r = pg_int(t, "SELECT count(*) FROM users WHERE id = $1", &q, &users)) < 0) return r;
  return users ? -EEXIST : -EINVAL;
}

int pg_token_find(store_txn_t *t, const char *token_hash, store_token_t *out) {
  memset(out, 0, sizeof *out);
  pg_params_t p = {0};
  pp_text(&p, token_hash);
  int r = 0;
  PGresult *res = pg_exec(
      t,
      "SELECT t.device_id, t.generation, t.expires, d.platform, d.login, d.user_id, "
      "(SELECT name FROM domains WHERE generation = t.generation), " USER_COLUMNS_OF(
          "u.") " FROM client_tokens t JOIN users u ON u.id = t.user_id "
                "LEFT JOIN devices d ON d.user_id = t.user_id AND d.device_id = t.device_id "
                "WHERE t.token_hash = $1",
      &p, false, &r);
  if (!res) return r;
  if (PQntuples(res) == 0) {
    r = -ENOENT;
  } else {
    out->mobile = !PQgetisnull(res, 0, 0);
    pg_copy(out->device_id, sizeof out->device_id, res, 0, 0);
    out->generation = pg_i64(res, 0, 1);
    out->expires = pg_i64(res, 0, 2);
    pg_copy(out->platform, sizeof out->platform, res, 0, 3);
    pg_copy(out->login, sizeof out->login, res, 0, 4);
    out->device_registered = !PQgetisnull(res, 0, 5);
    out->has_issued_domain = !PQgetisnull(res, 0, 6);
    pg_copy(out->issued_domain, sizeof out->issued_domain, res, 0, 6);
    read_user(res, 0, 7, &out->user);
  }
  PQclear(res);
  return r;
}

int pg_user_clients(store_txn_t *t, int64_t user_id, int64_t now,
                    const store_client_fns_t *fns) {
  pg_params_t p = {0};
  pp_int(&p, user_id);
  int r = 0;
  PGresult *res = pg_exec(t,
                          "SELECT device_id, platform, login, generation, push_token IS NOT NULL "
                          "AND push_token <> '', rfc3339(created_at), rfc3339(updated_at) FROM "
                          "devices WHERE user_id = $1 ORDER BY device_id",
                          &p, false, &r);
  if (!res) return r;
  for (int i = 0; i < PQntuples(res); i++) {
    store_client_device_t d = {.device_id = pg_str(res, i, 0),
                               .platform = pg_str(res, i, 1),
                               .login = pg_str(res, i, 2),
                               .generation = pg_i64(res, i, 3),
                               .has_push_token = pg_bool(res, i, 4),
                               .created_at = pg_str(res, i, 5),
                               .updated_at = pg_str(res, i, 6)};
    fns->device(&d, fns->ctx);
  }
  PQclear(res);
  pp_int(&p, now);
  res = pg_exec(t,
                "SELECT device_id, generation, created, expires FROM client_tokens WHERE "
                "user_id = $1 AND expires > $2 ORDER BY created DESC, device_id",
                &p, false, &r);
  if (!res) return r;
  for (int i = 0; i < PQntuples(res); i++) {
    store_client_token_t k = {.device_id = pg_str(res, i, 0),
                              .generation = pg_i64(res, i, 1),
                              .created = pg_i64(res, i, 2),
                              .expires = pg_i64(res, i, 3)};
    fns->token(&k, fns->ctx);
  }
  PQclear(res);
  return 0;
}

/* ---- federation data ------------------------------------------------------------------- */

static bool valid_state(const char *state) {
  return state && (strcmp(state, "active") == 0 || strcmp(state, "pending") == 0 ||
                   strcmp(state, "to-be-recreated") == 0);
}

static int user_count(store_txn_t *t, const char *name, int64_t *n) {
  pg_params_t p = {0};
  pp_text(&p, name);
  return pg_int(t, "SELECT count(*) FROM users WHERE name = $1", &p, n);
}

/* What a federation insert that inserted nothing, or was refused before it
 * ran (`refused`: a value the schema would not take), answers: SQLite's
 * INSERT ... SELECT from users finds no user first. */
static int federation_answer(store_txn_t *t, const char *user, bool refused) {
  int64_t n = 0;
  int r = user_count(t, user, &n);
  if (r < 0) return r;
  return !n ? -ENOENT : refused ? -EINVAL : -EEXIST;
}

int pg_subscription_insert(store_txn_t *t, const char *user, const char *remote, const char *state,
                           int64_t generation) {
  /* Checked here rather than by the table's CHECK: an import inserts
   * thousands in one transaction, each without a savepoint. */
  if (!remote || !valid_state(state)) return federation_answer(t, user, true);
  char now[32];
  store_now_rfc3339(now);
  pg_params_t p = {0};
  pp_text(&p, user);
  pp_text(&p, remote);
  pp_text(&p, state);
  pp_int(&p, generation);
  pp_text(&p, now);
  int64_t changed = 0;
  int r = pg_cmd(t,
                 "INSERT INTO subscriptions (user_id, remote, state, generation, created_at) "
                 "SELECT id, $2::text, $3::text, $4::bigint, $5::timestamptz FROM users "
                 "WHERE name = $1 ON CONFLICT DO NOTHING",
                 &p, false, &changed);
  return r < 0 || changed ? r : federation_answer(t, user, false);
}

int pg_contact_insert(store_txn_t *t, const char *user, const char *remote,
                      const char *display_name) {
  if (!remote) return federation_answer(t, user, true);
  char now[32];
  store_now_rfc3339(now);
  pg_params_t p = {0};
  pp_text(&p, user);
  pp_text(&p, remote);
  pp_text(&p, display_name);
  pp_text(&p, now);
  int64_t changed = 0;
  int r = pg_cmd(t,
                 "INSERT INTO contacts (user_id, remote, display_name, created_at) "
                 "SELECT id, $2::text, $3::text, $4::timestamptz FROM users WHERE name = $1 "
                 "ON CONFLICT DO NOTHING",
                 &p, false, &changed);
  return r < 0 || changed ? r : federation_answer(t, user, false);
}

/* The rows of one federation list: columns user, remote, state or display
 * name, created_at. */
static void federation_rows(const PGresult *res, bool subscriptions, store_federation_fn fn,
                            void *ctx) {
  for (int i = 0; i < PQntuples(res); i++) {
    store_federation_row_t row = {
        .user = pg_str(res, i, 0),
        .remote = pg_str(res, i, 1),
        .created_at = pg_str(res, i, 3),
    };
    if (subscriptions)
      row.state = pg_str(res, i, 2);
    else
      row.display_name = pg_str(res, i, 2);
    fn(&row, ctx);
  }
}

/* A subscription made under an earlier domain is to be created again. $1
 * user ("" for any), $2 state ("" for any), $3 the current generation. */
#define SUB_STATE "CASE WHEN s.generation < $3 THEN 'to-be-recreated' ELSE s.state END"
#define SUB_FROM                                                                                   \
  " FROM subscriptions s JOIN users u ON u.id = s.user_id WHERE ($1::text = '' OR u.name = $1)"    \
  " AND ($2::text = '' OR " SUB_STATE " = $2)"

int pg_subscription_list(store_txn_t *t, const char *user, const char *state, int64_t generation,
                         int64_t offset, int64_t limit, int64_t *total, store_federation_fn fn,
                         void *ctx) {
  pg_params_t p = {0};
  pp_text(&p, user ? user : "");
  pp_text(&p, state ? state : "");
  pp_int(&p, generation);
  int r = pg_int(t, "SELECT count(*)" SUB_FROM, &p, total);
  if (r < 0) return r;
  pp_limit(&p, limit);
  pp_offset(&p, offset);
  PGresult *res = pg_exec(t,
                          "SELECT u.name, s.remote, " SUB_STATE ", rfc3339(s.created_at)" SUB_FROM
                          " ORDER BY s.id LIMIT $4 OFFSET $5",
                          &p, false, &r);
  if (!res) return r;
  federation_rows(res, true, fn, ctx);
  PQclear(res);
  return 0;
}

#define CONTACT_FROM                                                                               \
  " FROM contacts s JOIN users u ON u.id = s.user_id WHERE ($1::text = '' OR u.name = $1)"

int pg_contact_list(store_txn_t *t, const char *user, int64_t offset, int64_t limit, int64_t *total,
                    store_federation_fn fn, void *ctx) {
  pg_params_t p = {0};
  pp_text(&p, user ? user : "");
  int r = pg_int(t, "SELECT count(*)" CONTACT_FROM, &p, total);
  if (r < 0) return r;
  pp_limit(&p, limit);
  pp_offset(&p, offset);
  PGresult *res =
      pg_exec(t,
              "SELECT u.name, s.remote, s.display_name, rfc3339(s.created_at)" CONTACT_FROM
              " ORDER BY s.id LIMIT $2 OFFSET $3",
              &p, false, &r);
  if (!res) return r;
  federation_rows(res, false, fn, ctx);
  PQclear(res);
  return 0;
}

/* ---- notification preferences ----------------------------------------------------------- */

static int user_id_of(store_txn_t *t, const char *name, int64_t *id) {
  pg_params_t p = {0};
  pp_text(&p, name);
  int r = 0;
  PGresult *res = pg_exec(t, "SELECT id FROM users WHERE name = $1", &p, false, &r);
  if (!res) return r;
  if (PQntuples(res) == 0)
    r = -ENOENT;
  else
    *id = pg_i64(res, 0, 0);
  PQclear(res);
  return r;
}

int pg_prefs_get(store_txn_t *t, const char *user, store_pref_fn fn, void *ctx) {
  int64_t id;
  int r = user_id_of(t, user, &id);
  if (r < 0) return r;
  pg_params_t p = {0};
  pp_int(&p, id);
  PGresult *res =
      pg_exec(t, "SELECT channel, notify, email, attach FROM user_notifications WHERE user_id = $1",
              &p, false, &r);
  if (!res) return r;
  for (int i = 0; i < PQntuples(res); i++)
    fn(PQgetvalue(res, i, 0), pg_bool(res, i, 1), PQgetvalue(res, i, 2), pg_bool(res, i, 3), ctx);
  PQclear(res);
  return 0;
}

int pg_pref_put(store_txn_t *t, const char *user, const char *channel, bool notify,
                const char *email, bool attach) {
  int64_t id;
  int r = user_id_of(t, user, &id);
  if (r < 0) return r;
  /* The table's CHECK and NOT NULL, answered without an error. */
  if (!channel || !email ||
      (strcmp(channel, "voicemail") != 0 && strcmp(channel, "fax") != 0 &&
       strcmp(channel, "sms") != 0))
    return -EINVAL;
  char now[32];
  store_now_rfc3339(now);
  pg_params_t p = {0};
  pp_int(&p, id);
  pp_text(&p, channel);
  pp_bool(&p, notify);
  pp_text(&p, email);
  pp_bool(&p, attach);
  pp_text(&p, now);
  return pg_cmd(t,
                "INSERT INTO user_notifications (user_id, channel, notify, email, attach, "
                "updated_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (user_id, channel) DO "
                "UPDATE SET notify = excluded.notify, email = excluded.email, "
                "attach = excluded.attach, updated_at = excluded.updated_at",
                &p, false, NULL);
}

/* ---- profile pictures ------------------------------------------------------------------- */

/* Parameters go as text: the bytes travel hex-encoded both ways. */
static int hexval(char c) {
  return c >= '0' && c <= '9'   ? c - '0'
         : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                : -1;
}

int pg_picture_put(store_txn_t *t, int64_t user_id, const void *data, size_t len,
                   const char *etag) {
  static const char digits[] = "0123456789abcdef";
  char *hex = malloc(len * 2 + 1);
  if (!hex) return -ENOMEM;
  const uint8_t *b = data;
  for (size_t i = 0; i < len; i++) {
    hex[2 * i] = digits[b[i] >> 4];
    hex[2 * i + 1] = digits[b[i] & 15];
  }
  hex[2 * len] = '\0';
  pg_params_t p = {0};
  pp_int(&p, user_id);
  pp_text(&p, etag);
  pp_text(&p, hex);
  char now[32];
  store_now_rfc3339(now);
  pp_text(&p, now);
  /* A user that does not exist inserts nothing: -EINVAL, as SQLite's
   * foreign key answers. */
  int64_t changed = 0;
  int r = pg_cmd(t,
                 "INSERT INTO user_pictures (user_id, etag, data, updated_at) "
                 "SELECT id, $2::text, decode($3::text, 'hex'), $4::text FROM users WHERE id = $1 "
                 "ON CONFLICT (user_id) DO UPDATE SET etag = excluded.etag, data = excluded.data, "
                 "updated_at = excluded.updated_at",
                 &p, true, &changed);
  free(hex);
  return r < 0 ? r : changed ? 0 : -EINVAL;
}

int pg_picture_get(store_txn_t *t, int64_t user_id, store_picture_t *out) {
  pg_params_t p = {0};
  pp_int(&p, user_id);
  int r = 0;
  PGresult *res = pg_exec(
      t, "SELECT etag, encode(data, 'hex'), updated_at FROM user_pictures WHERE user_id = $1", &p,
      false, &r);
  if (!res) return r;
  if (PQntuples(res) == 0) {
    PQclear(res);
    return -ENOENT;
  }
  pg_copy(out->etag, sizeof out->etag, res, 0, 0);
  pg_copy(out->updated_at, sizeof out->updated_at, res, 0, 2);
  const char *hex = pg_str(res, 0, 1);
  size_t n = hex ? strlen(hex) / 2 : 0;
  r = n ? 0 : -EIO;
  if (r == 0 && !(out->data = malloc(n))) r = -ENOMEM;
  for (size_t i = 0; r == 0 && i < n; i++) {
    int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) r = -EIO;
    else out->data[i] = (uint8_t)(hi << 4 | lo);
  }
  if (r == 0) out->len = n;
  else {
    free(out->data);
    out->data = NULL;
  }
  PQclear(res);
  return r;
}

int pg_picture_delete(store_txn_t *t, int64_t user_id) {
  pg_params_t p = {0};
  pp_int(&p, user_id);
  int64_t changed = 0;
  int r = pg_cmd(t, "DELETE FROM user_pictures WHERE user_id = $1", &p, false, &changed);
  return r < 0 ? r : changed ? 0 : -ENOENT;
}
