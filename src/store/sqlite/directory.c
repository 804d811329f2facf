/* SQLite operations of the directory: domain generations, users, mobile
 * devices, client tokens, federation data and notification preferences. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/sqlite/internal.h"

/* ---- domain generations ------------------------------------------------------------- */

int sq_domain_current(store_txn_t *t, int64_t *generation, char *name, size_t len) {
  sqlite3_stmt *st =
      sq_prepare(t, "SELECT generation, name FROM domains ORDER BY generation DESC LIMIT 1");
  if (!st) return -EIO;
  int r = sq_step(t, st);
  if (r == 1) {
    *generation = sqlite3_column_int64(st, 0);
    if (name) sq_copy(name, len, st, 1);
    r = 0;
  } else if (r == 0) {
    r = -ENOENT;
  }
  sqlite3_reset(st);
  return r;
}

int sq_domain_add(store_txn_t *t, int64_t generation, const char *name, const char *actor) {
  char now[32];
  store_now_rfc3339(now);
  sqlite3_stmt *st =
      sq_prepare(t, "INSERT INTO domains (generation, name, since, actor) VALUES (?1, ?2, ?3, ?4)");
  if (!st) return -EIO;
  sqlite3_bind_int64(st, 1, generation);
  sq_bind_text(st, 2, name);
  sq_bind_text(st, 3, now);
  sq_bind_text(st, 4, actor);
  return sq_done(t, st);
}

int sq_domain_was(store_txn_t *t, const char *name, int64_t before, bool *was) {
  sqlite3_stmt *st =
      sq_prepare(t, "SELECT 1 FROM domains WHERE name = ?1 AND generation < ?2 LIMIT 1");
  if (!st) return -EIO;
  sq_bind_text(st, 1, name);
  sqlite3_bind_int64(st, 2, before);
  int r = sq_step(t, st);
  *was = r == 1;
  sqlite3_reset(st);
  return r < 0 ? r : 0;
}

int sq_domain_counts(store_txn_t *t, int64_t generation, store_domain_counts_t *out) {
  memset(out, 0, sizeof *out);
  int r = sq_int(t, "SELECT count(*) FROM users", 0, &out->users);
  if (r == 0)
    r = sq_int(t, "SELECT count(*) FROM devices WHERE generation = ?1", generation,
                    &out->mobile_devices);
  if (r == 0) r = sq_int(t, "SELECT count(*) FROM subscriptions", 0, &out->subscriptions);
  return r;
}

/* ---- users -------------------------------------------------------------------------- */

#define USER_COLUMNS_OF(t)                                                                         \
  t "id, " t "name, " t "display_name, " t "windows_account, " t "enabled, " t                     \
    "password_hash IS NOT NULL, " t "created_at, " t "updated_at, "                            \
    "(SELECT etag FROM user_pictures WHERE user_id = " t "id)"
#define USER_COLUMNS USER_COLUMNS_OF("")

/* Reads USER_COLUMNS starting at column c. */
static void read_user(sqlite3_stmt *st, int c, store_user_t *u) {
  memset(u, 0, sizeof *u);
  u->id = sqlite3_column_int64(st, c);
  sq_copy(u->name, sizeof u->name, st, c + 1);
  u->has_display_name = sqlite3_column_type(st, c + 2) != SQLITE_NULL;
  sq_copy(u->display_name, sizeof u->display_name, st, c + 2);
  u->has_windows_account = sqlite3_column_type(st, c + 3) != SQLITE_NULL;
  sq_copy(u->windows_account, sizeof u->windows_account, st, c + 3);
  u->enabled = sqlite3_column_int(st, c + 4) != 0;
  u->has_password = sqlite3_column_int(st, c + 5) != 0;
  sq_copy(u->created_at, sizeof u->created_at, st, c + 6);
  sq_copy(u->updated_at, sizeof u->updated_at, st, c + 7);
  sq_copy(u->picture, sizeof u->picture, st, c + 8);
}

/* Which unique constraint a failed write hit, as an API field name. */
static const char *conflict_field(store_txn_t *t) {
  const char *m = sqlite3_errmsg(sq_of(t)->db);
  if (strstr(m, "windows_account")) return "windows_account";
  if (strstr(m, "remote")) return "remote";
  return "name";
}

static int user_write(store_txn_t *t, sqlite3_stmt *st, const char **conflict) {
  int r = sqlite3_step(st) == SQLITE_DONE ? 0 : sq_fail(t);
  if (r == -EEXIST && conflict) *conflict = conflict_field(t);
  sqlite3_reset(st);
  return r;
}

int sq_user_insert(store_txn_t *t, const store_user_write_t *u, const char **conflict) {
  char now[32];
  store_now_rfc3339(now);
  sqlite3_stmt *st =
      sq_prepare(t, "INSERT INTO users (name, display_name, windows_account, password_hash, "
                    "enabled, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)");
  if (!st) return -EIO;
  sq_bind_text(st, 1, u->name);
  sq_bind_text(st, 2, u->set_display_name ? u->display_name : NULL);
  sq_bind_text(st, 3, u->set_windows_account ? u->windows_account : NULL);
  sq_bind_text(st, 4, u->set_password_hash ? u->password_hash : NULL);
  sqlite3_bind_int(st, 5, u->set_enabled ? u->enabled : 1);
  sq_bind_text(st, 6, now);
  return user_write(t, st, conflict);
}

int sq_user_update(store_txn_t *t, const char *name, const store_user_write_t *u,
                   const char **conflict) {
  char now[32];
  store_now_rfc3339(now);
  /* One statement whatever the fields: each flag picks new or old. */
  sqlite3_stmt *st =
      sq_prepare(t, "UPDATE users SET "
                    "name = CASE WHEN ?1 THEN ?2 ELSE name END, "
                    "display_name = CASE WHEN ?3 THEN ?4 ELSE display_name END, "
                    "windows_account = CASE WHEN ?5 THEN ?6 ELSE windows_account END, "
                    "password_hash = CASE WHEN ?7 THEN ?8 ELSE password_hash END, "
                    "enabled = CASE WHEN ?9 THEN ?10 ELSE enabled END, "
                    "updated_at = ?11 WHERE name = ?12");
  if (!st) return -EIO;
  sqlite3_bind_int(st, 1, u->set_name);
  sq_bind_text(st, 2, u->name);
  sqlite3_bind_int(st, 3, u->set_display_name);
  sq_bind_text(st, 4, u->display_name);
  sqlite3_bind_int(st, 5, u->set_windows_account);
  sq_bind_text(st, 6, u->windows_account);
  sqlite3_bind_int(st, 7, u->set_password_hash);
  sq_bind_text(st, 8, u->password_hash);
  sqlite3_bind_int(st, 9, u->set_enabled);
  sqlite3_bind_int(st, 10, u->enabled);
  sq_bind_text(st, 11, now);
  sq_bind_text(st, 12, name);
  int r = user_write(t, st, conflict);
  if (r == 0 && sqlite3_changes(sq_of(t)->db) == 0) r = -ENOENT;
  return r;
}

int sq_user_delete(store_txn_t *t, const char *name) {
  sqlite3_stmt *st = sq_prepare(t, "DELETE FROM users WHERE name = ?1");
  if (!st) return -EIO;
  sq_bind_text(st, 1, name);
  int r = sq_done(t, st);
  if (r == 0 && sqlite3_changes(sq_of(t)->db) == 0) r = -ENOENT;
  return r;
}

static int user_by(store_txn_t *t, const char *sql, const char *key, store_user_t *out) {
  sqlite3_stmt *st = sq_prepare(t, sql);
  if (!st) return -EIO;
  sq_bind_text(st, 1, key);
  int r = sq_step(t, st);
  if (r == 1) {
    read_user(st, 0, out);
    r = 0;
  } else if (r == 0) {
    r = -ENOENT;
  }
  sqlite3_reset(st);
  return r;
}

int sq_user_get(store_txn_t *t, const char *name, store_user_t *out) {
  return user_by(t, "SELECT " USER_COLUMNS " FROM users WHERE name = ?1", name, out);
}

int sq_user_by_id(store_txn_t *t, int64_t id, store_user_t *out) {
  sqlite3_stmt *st = sq_prepare(t, "SELECT " USER_COLUMNS " FROM users WHERE id = ?1");
  if (!st) return -EIO;
  sqlite3_bind_int64(st, 1, id);
  int r = sq_step(t, st);
  if (r == 1) {
    read_user(st, 0, out);
    r = 0;
  } else if (r == 0) {
    r = -ENOENT;
  }
  sqlite3_reset(st);
  return r;
}

int sq_user_by_windows_account(store_txn_t *t, const char *account, store_user_t *out) {
  /* The column is COLLATE NOCASE: the comparison is case-insensitive. */
  return user_by(t, "SELECT " USER_COLUMNS " FROM users WHERE windows_account = ?1", account, out);
}

int sq_user_credentials(store_txn_t *t, const char *name, int64_t *id, char **hash, bool *enabled) {
  *hash = NULL;
  sqlite3_stmt *st = sq_prepare(t, "SELECT id, password_hash, enabled FROM users WHERE name = ?1");
  if (!st) return -EIO;
  sq_bind_text(st, 1, name);
  int r = sq_step(t, st);
  if (r == 1) {
    r = 0;
    *id = sqlite3_column_int64(st, 0);
    *hash = sq_strdup(st, 1, &r);
    *enabled = sqlite3_column_int(st, 2) != 0;
  } else if (r == 0) {
    r = -ENOENT;
  }
  sqlite3_reset(st);
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

#define USER_MATCH                                                                                 \
  " WHERE ?1 IS NULL OR name LIKE ?1 ESCAPE '\\' OR display_name LIKE ?1 ESCAPE '\\' "             \
  "OR windows_account LIKE ?1 ESCAPE '\\' OR name = ?2"

int sq_user_list(store_txn_t *t, const char *q, const char *exact, int64_t offset, int64_t limit,
                 int64_t *total, store_user_fn fn, void *ctx) {
  *total = 0;
  char *pattern = q ? like_pattern(q) : NULL;
  if (q && !pattern) return -ENOMEM;
  /* Without a search, plain statements: count(*) of the whole table and the
   * name index in order are what SQLite answers fastest. */
  sqlite3_stmt *count =
      sq_prepare(t, q ? "SELECT count(*) FROM users" USER_MATCH : "SELECT count(*) FROM users");
  int r = count ? 0 : -EIO;
  if (r == 0) {
    if (q) {
      sq_bind_text(count, 1, pattern);
      sq_bind_text(count, 2, exact ? exact : "");
    }
    r = sq_step(t, count);
    *total = r == 1 ? sqlite3_column_int64(count, 0) : 0;
    sqlite3_reset(count);
    if (r > 0) r = 0;
  }
  sqlite3_stmt *st = NULL;
  if (r == 0)
    st = sq_prepare(t, q ? "SELECT " USER_COLUMNS " FROM users" USER_MATCH
                           " ORDER BY name LIMIT ?3 OFFSET ?4"
                         : "SELECT " USER_COLUMNS " FROM users ORDER BY name LIMIT ?3 OFFSET ?4");
  if (r == 0 && !st) r = -EIO;
  if (r == 0) {
    if (q) {
      sq_bind_text(st, 1, pattern);
      sq_bind_text(st, 2, exact ? exact : "");
    }
    sqlite3_bind_int64(st, 3, limit);
    sqlite3_bind_int64(st, 4, offset);
    store_user_t u;
    while ((r = sq_step(t, st)) == 1) {
      read_user(st, 0, &u);
      fn(&u, ctx);
    }
    sqlite3_reset(st);
  }
  free(pattern);
  return r < 0 ? r : 0;
}

int sq_user_names(store_txn_t *t, int64_t limit, void (*fn)(const char *name, void *ctx),
                  void *ctx) {
  sqlite3_stmt *st = sq_prepare(t, "SELECT name FROM users ORDER BY name LIMIT ?1");
  if (!st) return -EIO;
  sqlite3_bind_int64(st, 1, limit);
  int r;
  while ((r = sq_step(t, st)) == 1) fn((const char *)sqlite3_column_text(st, 0), ctx);
  sqlite3_reset(st);
  return r < 0 ? r : 0;
}

/* ---- devices and client tokens ------------------------------------------------------------ */

int sq_device_put(store_txn_t *t, int64_t user_id, const char *device_id, const char *platform,
                  const char *push_token, const char *login, int64_t generation) {
  char now[32];
  store_now_rfc3339(now);
  sqlite3_stmt *st =
      sq_prepare(t, "INSERT INTO devices (user_id, device_id, platform, push_token, login, "
                    "generation, created_at, updated_at, push_registered_ms) VALUES (?1, ?2, ?3, "
                    "?4, ?5, ?6, ?7, ?7, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)) "
                    "ON CONFLICT (user_id, device_id) DO UPDATE SET platform = excluded.platform, "
                    "push_registered_ms = CASE WHEN devices.push_token IS excluded.push_token "
                    "THEN devices.push_registered_ms ELSE excluded.push_registered_ms END, "
                    "push_token = excluded.push_token, login = excluded.login, "
                    "generation = excluded.generation, updated_at = excluded.updated_at");
  if (!st) return -EIO;
  sqlite3_bind_int64(st, 1, user_id);
  sq_bind_text(st, 2, device_id);
  sq_bind_text(st, 3, platform);
  sq_bind_text(st, 4, push_token);
  sq_bind_text(st, 5, login);
  sqlite3_bind_int64(st, 6, generation);
  sq_bind_text(st, 7, now);
  return sq_done(t, st);
}

int sq_tokens_delete_device(store_txn_t *t, int64_t user_id, const char *device_id) {
  sqlite3_stmt *st =
      sq_prepare(t, "DELETE FROM client_tokens WHERE user_id = ?1 AND device_id = ?2");
  if (!st) return -EIO;
  sqlite3_bind_int64(st, 1, user_id);
  sq_bind_text(st, 2, device_id);
  return sq_done(t, st);
}

int sq_tokens_delete_user(store_txn_t *t, int64_t user_id, int64_t *deleted) {
  sqlite3_stmt *st = sq_prepare(t, "DELETE FROM client_tokens WHERE user_id = ?1");
  if (!st) return -EIO;
  sqlite3_bind_int64(st, 1, user_id);
  int r = sq_done(t, st);
  *deleted = r == 0 ? sqlite3_changes(sq_of(t)->db) : 0;
  return r;
}

int sq_token_delete(store_txn_t *t, const char *token_hash) {
  sqlite3_stmt *st = sq_prepare(t, "DELETE FROM client_tokens WHERE token_hash = ?1");
  if (!st) return -EIO;
  sq_bind_text(st, 1, token_hash);
  int r = sq_done(t, st);
  return r == 0 && sqlite3_changes(sq_of(t)->db) == 0 ? -ENOENT : r;
}

int sq_tokens_purge(store_txn_t *t, int64_t user_id, int64_t now) {
  sqlite3_stmt *st =
      sq_prepare(t, "DELETE FROM client_tokens WHERE user_id = ?1 AND expires <= ?2");
  if (!st) return -EIO;
  sqlite3_bind_int64(st, 1, user_id);
  sqlite3_bind_int64(st, 2, now);
  return sq_done(t, st);
}

int sq_token_put(store_txn_t *t, const char *token_hash, int64_t user_id, const char *device_id,
                 int64_t generation, int64_t created, int64_t expires) {
  sqlite3_stmt *st =
      sq_prepare(t, "INSERT INTO client_tokens (token_hash, user_id, device_id, generation, "
                    "created, expires) VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
  if (!st) return -EIO;
  sq_bind_text(st, 1, token_hash);
  sqlite3_bind_int64(st, 2, user_id);
  sq_bind_text(st, 3, device_id);
  sqlite3_bind_int64(st, 4, generation);
  sqlite3_bind_int64(st, 5, created);
  sqlite3_bind_int64(st, 6, expires);
  return sq_done(t, st);
}

int sq_token_find(store_txn_t *t, const char *token_hash, store_token_t *out) {
  memset(out, 0, sizeof *out);
  sqlite3_stmt *st = sq_prepare(
      t, "SELECT t.device_id, t.generation, t.expires, d.platform, d.login, d.user_id, "
         "(SELECT name FROM domains WHERE generation = t.generation), " USER_COLUMNS_OF(
             "u.") " FROM client_tokens t JOIN users u ON u.id = t.user_id "
                   "LEFT JOIN devices d ON d.user_id = t.user_id AND d.device_id = t.device_id "
                   "WHERE t.token_hash = ?1");
  if (!st) return -EIO;
  sq_bind_text(st, 1, token_hash);
  int r = sq_step(t, st);
  if (r == 1) {
    out->mobile = sqlite3_column_type(st, 0) != SQLITE_NULL;
    sq_copy(out->device_id, sizeof out->device_id, st, 0);
    out->generation = sqlite3_column_int64(st, 1);
    out->expires = sqlite3_column_int64(st, 2);
    sq_copy(out->platform, sizeof out->platform, st, 3);
    sq_copy(out->login, sizeof out->login, st, 4);
    out->device_registered = sqlite3_column_type(st, 5) != SQLITE_NULL;
    out->has_issued_domain = sqlite3_column_type(st, 6) != SQLITE_NULL;
    sq_copy(out->issued_domain, sizeof out->issued_domain, st, 6);
    read_user(st, 7, &out->user);
    r = 0;
  } else if (r == 0) {
    r = -ENOENT;
  }
  sqlite3_reset(st);
  return r;
}

int sq_user_clients(store_txn_t *t, int64_t user_id, int64_t now,
                    const store_client_fns_t *fns) {
  sqlite3_stmt *st = sq_prepare(t, "SELECT device_id, platform, login, generation, "
                                   "push_token IS NOT NULL AND push_token <> '', created_at, "
                                   "updated_at FROM devices WHERE user_id = ?1 ORDER BY device_id");
  if (!st) return -EIO;
  sqlite3_bind_int64(st, 1, user_id);
  int r;
  while ((r = sq_step(t, st)) == 1) {
    store_client_device_t d = {.device_id = (const char *)sqlite3_column_text(st, 0),
                               .platform = (const char *)sqlite3_column_text(st, 1),
                               .login = (const char *)sqlite3_column_text(st, 2),
                               .generation = sqlite3_column_int64(st, 3),
                               .has_push_token = sqlite3_column_int(st, 4) != 0,
                               .created_at = (const char *)sqlite3_column_text(st, 5),
                               .updated_at = (const char *)sqlite3_column_text(st, 6)};
    fns->device(&d, fns->ctx);
  }
  sqlite3_reset(st);
  if (r < 0) return r;
  st = sq_prepare(t, "SELECT device_id, generation, created, expires FROM client_tokens WHERE "
                     "user_id = ?1 AND expires > ?2 ORDER BY created DESC, device_id");
  if (!st) return -EIO;
  sqlite3_bind_int64(st, 1, user_id);
  sqlite3_bind_int64(st, 2, now);
  while ((r = sq_step(t, st)) == 1) {
    store_client_token_t k = {.device_id = (const char *)sqlite3_column_text(st, 0),
                              .generation = sqlite3_column_int64(st, 1),
                              .created = sqlite3_column_int64(st, 2),
                              .expires = sqlite3_column_int64(st, 3)};
    fns->token(&k, fns->ctx);
  }
  sqlite3_reset(st);
  return r < 0 ? r : 0;
}

/* ---- federation data ------------------------------------------------------------------- */

int sq_subscription_insert(store_txn_t *t, const char *user, const char *remote, const char *state,
                           int64_t generation) {
  char now[32];
  store_now_rfc3339(now);
  sqlite3_stmt *st =
      sq_prepare(t, "INSERT INTO subscriptions (user_id, remote, state, generation, created_at) "
                    "SELECT id, ?2, ?3, ?4, ?5 FROM users WHERE name = ?1");
  if (!st) return -EIO;
  sq_bind_text(st, 1, user);
  sq_bind_text(st, 2, remote);
  sq_bind_text(st, 3, state);
  sqlite3_bind_int64(st, 4, generation);
  sq_bind_text(st, 5, now);
  int r = sq_done(t, st);
  if (r == 0 && sqlite3_changes(sq_of(t)->db) == 0) r = -ENOENT;
  return r;
}

int sq_contact_insert(store_txn_t *t, const char *user, const char *remote,
                      const char *display_name) {
  char now[32];
  store_now_rfc3339(now);
  sqlite3_stmt *st = sq_prepare(t, "INSERT INTO contacts (user_id, remote, display_name, "
                                   "created_at) SELECT id, ?2, ?3, ?4 FROM users WHERE name = ?1");
  if (!st) return -EIO;
  sq_bind_text(st, 1, user);
  sq_bind_text(st, 2, remote);
  sq_bind_text(st, 3, display_name);
  sq_bind_text(st, 4, now);
  int r = sq_done(t, st);
  if (r == 0 && sqlite3_changes(sq_of(t)->db) == 0) r = -ENOENT;
  return r;
}

/* The count, then the page, of one federation list; the statements take ?1
 * user ("" for any), ?2 state ("" for any), ?3 the current generation, ?4
 * limit, ?5 offset. */
static int federation_list(store_txn_t *t, const char *count_sql, const char *page_sql,
                           bool subscriptions, const char *user, const char *state,
                           int64_t generation, int64_t offset, int64_t limit, int64_t *total,
                           store_federation_fn fn, void *ctx) {
  *total = 0;
  for (int pass = 0; pass < 2; pass++) {
    sqlite3_stmt *st = sq_prepare(t, pass == 0 ? count_sql : page_sql);
    if (!st) return -EIO;
    sq_bind_text(st, 1, user ? user : "");
    sq_bind_text(st, 2, state ? state : "");
    sqlite3_bind_int64(st, 3, generation);
    if (pass == 1) {
      sqlite3_bind_int64(st, 4, limit);
      sqlite3_bind_int64(st, 5, offset);
    }
    int r;
    while ((r = sq_step(t, st)) == 1) {
      if (pass == 0) {
        *total = sqlite3_column_int64(st, 0);
        continue;
      }
      store_federation_row_t row = {
          .user = (const char *)sqlite3_column_text(st, 0),
          .remote = (const char *)sqlite3_column_text(st, 1),
          .created_at = (const char *)sqlite3_column_text(st, 3),
      };
      if (subscriptions)
        row.state = (const char *)sqlite3_column_text(st, 2);
      else
        row.display_name = (const char *)sqlite3_column_text(st, 2);
      fn(&row, ctx);
    }
    sqlite3_reset(st);
    if (r < 0) return r;
  }
  return 0;
}

/* A subscription made under an earlier domain is to be created again. */
#define SUB_STATE "CASE WHEN s.generation < ?3 THEN 'to-be-recreated' ELSE s.state END"
#define SUB_FROM                                                                                   \
  " FROM subscriptions s JOIN users u ON u.id = s.user_id WHERE (?1 = '' OR u.name = ?1)"          \
  " AND (?2 = '' OR " SUB_STATE " = ?2)"
#define CONTACT_FROM                                                                               \
  " FROM contacts s JOIN users u ON u.id = s.user_id WHERE (?1 = '' OR u.name = ?1)"               \
  " AND ?2 = '' AND ?3 = ?3"

int sq_subscription_list(store_txn_t *t, const char *user, const char *state, int64_t generation,
                         int64_t offset, int64_t limit, int64_t *total, store_federation_fn fn,
                         void *ctx) {
  return federation_list(t, "SELECT count(*)" SUB_FROM,
                         "SELECT u.name, s.remote, " SUB_STATE ", s.created_at" SUB_FROM
                         " ORDER BY s.id LIMIT ?4 OFFSET ?5",
                         true, user, state, generation, offset, limit, total, fn, ctx);
}

int sq_contact_list(store_txn_t *t, const char *user, int64_t offset, int64_t limit, int64_t *total,
                    store_federation_fn fn, void *ctx) {
  return federation_list(t, "SELECT count(*)" CONTACT_FROM,
                         "SELECT u.name, s.remote, s.display_name, s.created_at" CONTACT_FROM
                         " ORDER BY s.id LIMIT ?4 OFFSET ?5",
                         false, user, NULL, 0, offset, limit, total, fn, ctx);
}

/* ---- notification preferences ----------------------------------------------------------- */

static int user_id_of(store_txn_t *t, const char *name, int64_t *id) {
  sqlite3_stmt *st = sq_prepare(t, "SELECT id FROM users WHERE name = ?1");
  if (!st) return -EIO;
  sq_bind_text(st, 1, name);
  int r = sq_step(t, st);
  if (r == 1) *id = sqlite3_column_int64(st, 0);
  sqlite3_reset(st);
  return r == 1 ? 0 : r == 0 ? -ENOENT : r;
}

int sq_prefs_get(store_txn_t *t, const char *user, store_pref_fn fn, void *ctx) {
  int64_t id;
  int r = user_id_of(t, user, &id);
  if (r < 0) return r;
  sqlite3_stmt *st = sq_prepare(
      t, "SELECT channel, notify, email, attach FROM user_notifications WHERE user_id = ?1");
  if (!st) return -EIO;
  sqlite3_bind_int64(st, 1, id);
  while ((r = sq_step(t, st)) == 1) {
    const char *email = (const char *)sqlite3_column_text(st, 2);
    fn((const char *)sqlite3_column_text(st, 0), sqlite3_column_int(st, 1) != 0, email ? email : "",
       sqlite3_column_int(st, 3) != 0, ctx);
  }
  sqlite3_reset(st);
  return r < 0 ? r : 0;
}

int sq_pref_put(store_txn_t *t, const char *user, const char *channel, bool notify,
                const char *email, bool attach) {
  int64_t id;
  int r = user_id_of(t, user, &id);
  if (r < 0) return r;
  char now[32];
  store_now_rfc3339(now);
  sqlite3_stmt *st =
      sq_prepare(t, "INSERT OR REPLACE INTO user_notifications (user_id, channel, notify, email, "
                    "attach, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
  if (!st) return -EIO;
  sqlite3_bind_int64(st, 1, id);
  sq_bind_text(st, 2, channel);
  sqlite3_bind_int(st, 3, notify);
  sq_bind_text(st, 4, email);
  sqlite3_bind_int(st, 5, attach);
  sq_bind_text(st, 6, now);
  return sq_done(t, st);
}

/* ---- profile pictures ------------------------------------------------------------------- */

int sq_picture_put(store_txn_t *t, int64_t user_id, const void *data, size_t len,
                   const char *etag) {
  char now[32];
  store_now_rfc3339(now);
  sqlite3_stmt *st = sq_prepare(
      t, "INSERT INTO user_pictures (user_id, etag, data, updated_at) VALUES (?1, ?2, ?3, ?4) "
         "ON CONFLICT (user_id) DO UPDATE SET etag = excluded.etag, data = excluded.data, "
         "updated_at = excluded.updated_at");
  if (!st) return -EIO;
  sqlite3_bind_int64(st, 1, user_id);
  sq_bind_text(st, 2, etag);
  sqlite3_bind_blob(st, 3, data, (int)len, SQLITE_TRANSIENT);
  sq_bind_text(st, 4, now);
  return sq_done(t, st); /* no such user: the foreign key's -EINVAL */
}

int sq_picture_get(store_txn_t *t, int64_t user_id, store_picture_t *out) {
  sqlite3_stmt *st =
      sq_prepare(t, "SELECT etag, data, updated_at FROM user_pictures WHERE user_id = ?1");
  if (!st) return -EIO;
  sqlite3_bind_int64(st, 1, user_id);
  int r = sq_step(t, st);
  if (r == 1) {
    sq_copy(out->etag, sizeof out->etag, st, 0);
    const void *b = sqlite3_column_blob(st, 1);
    int n = sqlite3_column_bytes(st, 1);
    sq_copy(out->updated_at, sizeof out->updated_at, st, 2);
    r = 0;
    if (n > 0 && b && (out->data = malloc((size_t)n))) {
      memcpy(out->data, b, (size_t)n);
      out->len = (size_t)n;
    } else {
      r = n > 0 ? -ENOMEM : -EIO;
    }
  } else if (r == 0) {
    r = -ENOENT;
  }
  sqlite3_reset(st);
  return r;
}

int sq_picture_delete(store_txn_t *t, int64_t user_id) {
  sqlite3_stmt *st = sq_prepare(t, "DELETE FROM user_pictures WHERE user_id = ?1");
  if (!st) return -EIO;
  sqlite3_bind_int64(st, 1, user_id);
  int r = sq_done(t, st);
  if (r == 0 && sqlite3_changes(sq_of(t)->db) == 0) r = -ENOENT;
  return r;
}
