/* The directory: see directory.h. */
#include "mod/directory/directory.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/secret.h"

#define IMPORT_ROWS_MAX 1000000
#define CSV_FIELD_MAX 4096
#define CSV_COLUMNS_MAX 16
#define ROW_FIELDS 5

/* ---- small helpers ---------------------------------------------------------------- */

static bool is_lower(int c) { return c >= 'a' && c <= 'z'; }
static bool is_digit(int c) { return c >= '0' && c <= '9'; }
static bool is_control(int c) { return (c >= 0 && c < 0x20) || c == 0x7f; }
static char to_lower(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c; }

static void lower_ascii(char *s) {
  for (; *s; s++) *s = to_lower(*s);
}

static int64_t now_seconds(void) { return (int64_t)time(NULL); }

void directory_error_clear(directory_error_t *e) {
  if (!e) return;
  json_decref(e->errors);
  e->errors = NULL;
  e->detail[0] = '\0';
}

static void set_detail(directory_error_t *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_detail(directory_error_t *e, const char *fmt, ...) {
  if (!e) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->detail, sizeof e->detail, fmt, ap);
  va_end(ap);
}

/* row and line are 0 when they do not apply. */
static void add_error(directory_error_t *e, const char *key, size_t row, size_t line,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void add_error(directory_error_t *e, const char *key, size_t row, size_t line,
                      const char *fmt, ...) {
  if (!e) return;
  if (!e->errors && !(e->errors = json_array())) return;
  if (json_array_size(e->errors) >= DIRECTORY_IMPORT_ERRORS_MAX) return; /* enough to fix first */
  char msg[VALIDATE_MESSAGE_MAX + 128];
  size_t n = 0;
  if (row && line)
    n = (size_t)snprintf(msg, sizeof msg, "Row %zu (line %zu): ", row, line);
  else if (row)
    n = (size_t)snprintf(msg, sizeof msg, "Row %zu: ", row);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg + n, sizeof msg - n, fmt, ap);
  va_end(ap);
  json_t *o = json_pack("{s:s, s:s}", "key", key, "message", msg);
  if (!o) {
    /* Input quoted in the message may not be UTF-8: show it as '?'. */
    char k[64];
    snprintf(k, sizeof k, "%s", key);
    for (char *p = k; *p; p++)
      if ((unsigned char)*p >= 0x80) *p = '?';
    for (char *p = msg; *p; p++)
      if ((unsigned char)*p >= 0x80) *p = '?';
    if (!(o = json_pack("{s:s, s:s}", "key", k, "message", msg))) return;
  }
  if (row) json_object_set_new(o, "row", json_integer((json_int_t)row));
  if (line) json_object_set_new(o, "line", json_integer((json_int_t)line));
  json_array_append_new(e->errors, o);
}

static size_t error_count(const directory_error_t *e) {
  return e && e->errors ? json_array_size(e->errors) : 0;
}

/* ---- validation -------------------------------------------------------------------- */

int directory_validate_name(const char *in, validate_error_t *err) {
  size_t n = in ? strlen(in) : 0;
  if (n == 0) return validate_fail(err, "Is required: the user's name, the part before the @.");
  if (n > DIRECTORY_NAME_MAX)
    return validate_fail(err, "Is %zu characters long; at most %d are allowed.", n,
                         DIRECTORY_NAME_MAX);
  for (size_t i = 0; i < n; i++) {
    char c = in[i];
    if (c >= 'A' && c <= 'Z')
      return validate_fail(err, "Must be lower case (\"%c\" at position %zu); login names are "
                                "lower case.", c, i + 1);
    if (!is_lower(c) && !is_digit(c) && c != '.' && c != '_' && c != '-')
      return validate_fail(err, "May contain only lower-case letters a-z, digits, '.', '_' and "
                                "'-'; the character at position %zu is not allowed.", i + 1);
    if (c == '.' && i + 1 < n && in[i + 1] == '.')
      return validate_fail(err, "May not contain two dots in a row.");
  }
  if (in[0] == '.' || in[0] == '-' || in[n - 1] == '.' || in[n - 1] == '-')
    return validate_fail(err, "May not start or end with '.' or '-'.");
  return 0;
}

/* Characters Active Directory refuses in account names. */
static bool windows_char_ok(char c) {
  return !is_control((unsigned char)c) && !strchr("\"/\\[]:;|=,+*?<>@", c);
}

int directory_validate_windows_account(const char *in, char **out, validate_error_t *err) {
  *out = NULL;
  size_t n = in ? strlen(in) : 0;
  if (n == 0 || n > DIRECTORY_WINDOWS_ACCOUNT_MAX)
    return validate_fail(err, "Must be DOMAIN\\account or a user principal name "
                              "(account@dns.domain), at most %d characters.",
                         DIRECTORY_WINDOWS_ACCOUNT_MAX);
  const char *bs = strchr(in, '\\'), *at = strchr(in, '@');
  if (bs && !at) {
    size_t dl = (size_t)(bs - in), sl = n - dl - 1;
    if (dl < 1 || dl > 15)
      return validate_fail(err, "The domain before the backslash must be a NetBIOS domain name "
                                "of 1 to 15 characters (DOMAIN\\account).");
    if (sl < 1 || sl > 20)
      return validate_fail(err, "The account after the backslash must be 1 to 20 characters "
                                "(the sAMAccountName).");
    for (size_t i = 0; i < n; i++)
      if (i != dl && (!windows_char_ok(in[i]) || in[i] == ' '))
        return validate_fail(err, "Contains a character Windows does not allow in account "
                                  "names (position %zu).", i + 1);
    return (*out = strdup(in)) ? 0 : -ENOMEM;
  }
  if (at && !bs && strchr(at + 1, '@') == NULL) {
    size_t ll = (size_t)(at - in);
    if (ll < 1 || ll > 64)
      return validate_fail(err, "The part before the @ of a user principal name must be 1 to 64 "
                                "characters.");
    for (size_t i = 0; i < ll; i++)
      if (!windows_char_ok(in[i]) || in[i] == ' ')
        return validate_fail(err, "Contains a character Windows does not allow in account "
                                  "names (position %zu).", i + 1);
    char *host = NULL;
    validate_error_t herr;
    if (validate_host(at + 1, HOST_TWO_LABELS, &host, &herr) != 0)
      return validate_fail(err, "The domain of the user principal name is not valid: %s",
                           herr.message);
    size_t len = ll + 1 + strlen(host) + 1;
    *out = malloc(len);
    if (!*out) {
      free(host);
      return -ENOMEM;
    }
    snprintf(*out, len, "%.*s@%s", (int)ll, in, host);
    free(host);
    return 0;
  }
  return validate_fail(err, "Must be DOMAIN\\account (for example CORP\\alice) or a user "
                            "principal name (alice@corp.example.com).");
}

int directory_validate_remote(const char *in, char **out, validate_error_t *err) {
  *out = NULL;
  size_t n = in ? strlen(in) : 0;
  const char *at = in ? strrchr(in, '@') : NULL;
  if (n == 0 || n > DIRECTORY_REMOTE_MAX || !at || at == in)
    return validate_fail(err, "Must be a federation address user@domain (for example "
                              "bob@partner.example.com).");
  size_t ll = (size_t)(at - in);
  if (ll > 64) return validate_fail(err, "The part before the @ is longer than 64 characters.");
  for (size_t i = 0; i < ll; i++) {
    unsigned char c = (unsigned char)in[i];
    if (c <= 0x20 || c >= 0x7f || strchr("@<>\"'", c))
      return validate_fail(err, "The part before the @ contains a character that is not "
                                "allowed (position %zu).", i + 1);
  }
  char *host = NULL;
  validate_error_t herr;
  if (validate_host(at + 1, HOST_TWO_LABELS, &host, &herr) != 0)
    return validate_fail(err, "The domain after the @ is not valid: %s", herr.message);
  size_t len = ll + 1 + strlen(host) + 1;
  *out = malloc(len);
  if (!*out) {
    free(host);
    return -ENOMEM;
  }
  snprintf(*out, len, "%.*s@%s", (int)ll, in, host);
  lower_ascii(*out);
  free(host);
  return 0;
}

/* Printable UTF-8 text of at most max bytes (display names). */
static int validate_text(const char *in, size_t len, size_t max, validate_error_t *err) {
  if (len > max) return validate_fail(err, "Is longer than %zu bytes.", max);
  for (size_t i = 0; i < len; i++)
    if (is_control((unsigned char)in[i]))
      return validate_fail(err, "Contains a control character (position %zu).", i + 1);
  json_t *probe = json_stringn(in, len); /* jansson checks UTF-8 */
  if (!probe) return validate_fail(err, "Is not valid UTF-8 text.");
  json_decref(probe);
  return 0;
}

static int validate_password(const char *in, size_t len, validate_error_t *err) {
  if (strlen(in) != len) return validate_fail(err, "May not contain a NUL character.");
  if (len < DIRECTORY_PASSWORD_MIN || len > DIRECTORY_PASSWORD_MAX)
    return validate_fail(err, "Must be %d to %d characters long.", DIRECTORY_PASSWORD_MIN,
                         DIRECTORY_PASSWORD_MAX);
  return 0;
}

/* "true"/"false" and the usual spreadsheet spellings. */
static int parse_bool_text(const char *s, bool *out) {
  static const char *const yes[] = {"true", "1", "yes", "y", "on"};
  static const char *const no[] = {"false", "0", "no", "n", "off"};
  for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
    if (strcasecmp(s, yes[i]) == 0) return (*out = true), 0;
    if (strcasecmp(s, no[i]) == 0) return (*out = false), 0;
  }
  return -EINVAL;
}

/* ---- SQL helpers ------------------------------------------------------------------- */

static int sql_fail(sqlite3 *db) {
  int rc = sqlite3_extended_errcode(db);
  if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) return -EEXIST;
  if ((rc & 0xff) == SQLITE_CONSTRAINT) return -EINVAL;
  if ((rc & 0xff) == SQLITE_NOMEM) return -ENOMEM;
  return -EIO;
}

static int prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st) {
  if (sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK) {
    *st = NULL;
    return sql_fail(db);
  }
  return 0;
}

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *s) {
  if (s)
    sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
  else
    sqlite3_bind_null(st, i);
}

/* Runs a statement that returns no rows and finalizes it: 0 or sql_fail(). */
static int step_done(sqlite3 *db, sqlite3_stmt *st) {
  int r = sqlite3_step(st) == SQLITE_DONE ? 0 : sql_fail(db);
  sqlite3_finalize(st);
  return r;
}

static int exec_sql(sqlite3 *db, const char *sql) {
  return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : sql_fail(db);
}

static json_t *column_string(sqlite3_stmt *st, int col) {
  if (sqlite3_column_type(st, col) == SQLITE_NULL) return json_null();
  const char *t = (const char *)sqlite3_column_text(st, col);
  json_t *j = json_stringn(t ? t : "", (size_t)sqlite3_column_bytes(st, col));
  return j ? j : json_null();
}

/* ---- the domain generation ------------------------------------------------------------ */

int directory_domain_current(store_t *store, int64_t *generation, char **name) {
  sqlite3 *db = store_db(store);
  sqlite3_stmt *st;
  *generation = 0;
  if (name) *name = NULL;
  int r = prepare(db, "SELECT generation, name FROM domains ORDER BY generation DESC LIMIT 1", &st);
  if (r < 0) return r;
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    *generation = sqlite3_column_int64(st, 0);
    if (name && !(*name = strdup((const char *)sqlite3_column_text(st, 1)))) r = -ENOMEM;
  } else {
    r = rc == SQLITE_DONE ? -ENOENT : sql_fail(db);
  }
  sqlite3_finalize(st);
  return r;
}

/* The current generation and domain name, the name copied into buf. */
static int domain_current_copy(store_t *store, int64_t *generation, char *buf, size_t len) {
  char *name = NULL;
  int r = directory_domain_current(store, generation, &name);
  if (r < 0) return r;
  snprintf(buf, len, "%s", name);
  free(name);
  return 0;
}

static int insert_generation(sqlite3 *db, int64_t generation, const char *name, const char *actor) {
  sqlite3_stmt *st;
  int r = prepare(db, "INSERT INTO domains (generation, name, since, actor) VALUES (?1, ?2, ?3, ?4)",
                  &st);
  if (r < 0) return r;
  char now[32];
  store_now_rfc3339(now);
  sqlite3_bind_int64(st, 1, generation);
  sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, now, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 4, actor, -1, SQLITE_STATIC);
  return step_done(db, st);
}

int directory_sync_domain(store_t *store, const char *domain, const char *actor, bool *changed) {
  *changed = false;
  store_lock(store);
  sqlite3 *db = store_db(store);
  int r = store_begin(store);
  int64_t gen = 0;
  char *name = NULL;
  if (r == 0) {
    r = directory_domain_current(store, &gen, &name);
    if (r == -ENOENT) {
      r = insert_generation(db, 1, domain, actor);
    } else if (r == 0 && strcmp(name, domain) != 0) {
      r = insert_generation(db, gen + 1, domain, actor);
      *changed = r == 0;
    }
  }
  if (r == 0) r = store_commit(store);
  if (r < 0) {
    store_rollback(store);
    *changed = false;
  }
  store_unlock(store);
  free(name);
  return r;
}

static int count_query(sqlite3 *db, const char *sql, int64_t param, int64_t *out) {
  sqlite3_stmt *st;
  int r = prepare(db, sql, &st);
  if (r < 0) return r;
  if (sqlite3_bind_parameter_count(st) > 0) sqlite3_bind_int64(st, 1, param);
  if (sqlite3_step(st) == SQLITE_ROW)
    *out = sqlite3_column_int64(st, 0);
  else
    r = sql_fail(db);
  sqlite3_finalize(st);
  return r;
}

void directory_domain_counts_clear(directory_domain_counts_t *c) {
  if (!c) return;
  json_decref(c->samples);
  c->samples = NULL;
}

int directory_domain_count(store_t *store, const char *new_domain, size_t samples,
                           directory_domain_counts_t *out) {
  memset(out, 0, sizeof *out);
  sqlite3 *db = store_db(store);
  int r = domain_current_copy(store, &out->generation, out->old_domain, sizeof out->old_domain);
  if (r < 0) return r;
  if ((r = count_query(db, "SELECT count(*) FROM users", 0, &out->users)) < 0 ||
      (r = count_query(db, "SELECT count(*) FROM devices WHERE generation = ?1", out->generation,
                       &out->mobile_devices)) < 0 ||
      (r = count_query(db, "SELECT count(*) FROM subscriptions", 0, &out->subscriptions)) < 0)
    return r;
  if (!(out->samples = json_array())) return -ENOMEM;
  sqlite3_stmt *st;
  if ((r = prepare(db, "SELECT name FROM users ORDER BY name LIMIT ?1", &st)) < 0) return r;
  sqlite3_bind_int64(st, 1, (int64_t)samples);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const char *n = (const char *)sqlite3_column_text(st, 0);
    char a[400], b[400];
    snprintf(a, sizeof a, "%s@%s", n, out->old_domain);
    snprintf(b, sizeof b, "%s@%s", n, new_domain);
    if (json_array_append_new(out->samples, json_pack("{s:s, s:s}", "old", a, "new", b)) < 0) {
      r = -ENOMEM;
      break;
    }
  }
  if (r == 0 && rc != SQLITE_DONE) r = sql_fail(db);
  sqlite3_finalize(st);
  return r;
}

int directory_domain_advance(store_t *store, int64_t expected, const char *new_domain,
                             const char *actor) {
  int64_t gen;
  int r = directory_domain_current(store, &gen, NULL);
  if (r < 0) return r;
  if (gen != expected) return -ESTALE;
  return insert_generation(store_db(store), gen + 1, new_domain, actor);
}

/* ---- users ------------------------------------------------------------------------------ */

#define USER_COLUMNS_OF(t)                                                                       \
  t "name, " t "display_name, " t "windows_account, " t "enabled, " t "password_hash IS NOT "    \
  "NULL, " t "created_at, " t "updated_at"
#define USER_COLUMNS USER_COLUMNS_OF("")

/* Builds a user document from USER_COLUMNS starting at column `c`. */
static json_t *user_doc(sqlite3_stmt *st, int c, const char *domain) {
  const char *name = (const char *)sqlite3_column_text(st, c);
  char addr[400];
  snprintf(addr, sizeof addr, "%s@%s", name ? name : "", domain);
  return json_pack("{s:o, s:o, s:o, s:b, s:b, s:s, s:s, s:o, s:o}", "name", column_string(st, c),
                   "display_name", column_string(st, c + 1), "windows_account",
                   column_string(st, c + 2), "enabled", sqlite3_column_int(st, c + 3) != 0,
                   "has_password", sqlite3_column_int(st, c + 4) != 0, "login", addr,
                   "im_address", addr, "created_at", column_string(st, c + 5), "updated_at",
                   column_string(st, c + 6));
}

/* (locked) The local part for a user reference: "alice", or "alice@<current domain>". */
static int resolve_name(const char *ref, const char *domain, char *out, size_t outlen) {
  const char *at = strrchr(ref, '@');
  size_t n = at ? (size_t)(at - ref) : strlen(ref);
  if (at && strcasecmp(at + 1, domain) != 0) return -ENOENT;
  if (n == 0 || n >= outlen) return -ENOENT;
  memcpy(out, ref, n);
  out[n] = '\0';
  lower_ascii(out);
  return 0;
}

/* (locked) The local part of a user reference under the current domain. */
static int current_local_name(store_t *store, const char *ref, char *out, size_t outlen) {
  int64_t gen;
  char *domain = NULL;
  int r = directory_domain_current(store, &gen, &domain);
  if (r == 0) r = resolve_name(ref, domain, out, outlen);
  free(domain);
  return r;
}

/* (locked) The user in the one row that `sql` (USER_COLUMNS, ?1 = key) finds; -ENOENT when
 * none. */
static int user_by(sqlite3 *db, const char *sql, const char *key, const char *domain,
                   json_t **user) {
  sqlite3_stmt *st;
  int r = prepare(db, sql, &st);
  if (r < 0) return r;
  sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW)
    r = (*user = user_doc(st, 0, domain)) ? 0 : -ENOMEM;
  else
    r = rc == SQLITE_DONE ? -ENOENT : sql_fail(db);
  sqlite3_finalize(st);
  return r;
}

/* (locked) */
static int get_user_locked(store_t *store, const char *ref, json_t **user) {
  int64_t gen;
  char *domain = NULL;
  int r = directory_domain_current(store, &gen, &domain);
  if (r < 0) return r;
  char name[DIRECTORY_NAME_MAX + 1];
  if ((r = resolve_name(ref, domain, name, sizeof name)) == 0)
    r = user_by(store_db(store), "SELECT " USER_COLUMNS " FROM users WHERE name = ?1", name,
                domain, user);
  free(domain);
  return r;
}

int directory_user_get(store_t *store, const char *name, json_t **user) {
  *user = NULL;
  store_lock(store);
  int r = get_user_locked(store, name, user);
  store_unlock(store);
  return r;
}

int directory_find_by_windows_account(store_t *store, const char *account, json_t **user) {
  *user = NULL;
  store_lock(store);
  int64_t gen;
  char *domain = NULL;
  int r = directory_domain_current(store, &gen, &domain);
  if (r == 0)
    r = user_by(store_db(store), "SELECT " USER_COLUMNS " FROM users WHERE windows_account = ?1",
                account, domain, user);
  store_unlock(store);
  free(domain);
  return r;
}

/* Fields of a user as the API sends them, validated; strings malloc'd. */
typedef struct user_input {
  bool has_name, has_display, has_windows, has_password, has_enabled;
  char *name, *display, *windows, *password_hash;
  bool enabled;
} user_input_t;

static void user_input_clear(user_input_t *u) {
  free(u->name);
  free(u->display);
  free(u->windows);
  free(u->password_hash);
  memset(u, 0, sizeof *u);
}

/* Validates an API object; hashes the password. `create` requires a name and
 * refuses nulls for it. */
static int user_input_parse(const json_t *in, bool create, user_input_t *u, directory_error_t *err) {
  memset(u, 0, sizeof *u);
  if (!json_is_object(in)) {
    set_detail(err, "The request body must be a JSON object describing the user.");
    return -EINVAL;
  }
  const char *key;
  json_t *v;
  const char *password = NULL;
  json_object_foreach((json_t *)in, key, v) {
    validate_error_t verr;
    bool null_ok = !create || strcmp(key, "name") != 0;
    if (json_is_null(v) && strcmp(key, "name") != 0 && strcmp(key, "enabled") != 0) {
      /* null clears the field */
    } else if (strcmp(key, "enabled") == 0) {
      if (!json_is_boolean(v)) {
        add_error(err, key, 0, 0, "Must be true or false.");
        continue;
      }
    } else if (!json_is_string(v)) {
      add_error(err, key, 0, 0, "Must be a string%s.", null_ok ? " or null" : "");
      continue;
    }
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (strcmp(key, "name") == 0) {
      u->has_name = true;
      if (strlen(s) != len || directory_validate_name(s, &verr) != 0)
        add_error(err, key, 0, 0, "%s", strlen(s) != len ? "May not contain NUL." : verr.message);
      else if (!(u->name = strdup(s)))
        return -ENOMEM;
    } else if (strcmp(key, "display_name") == 0) {
      u->has_display = true;
      if (s && validate_text(s, len, DIRECTORY_DISPLAY_NAME_MAX, &verr) != 0)
        add_error(err, key, 0, 0, "%s", verr.message);
      else if (s && !(u->display = strdup(s)))
        return -ENOMEM;
    } else if (strcmp(key, "windows_account") == 0) {
      u->has_windows = true;
      if (s && (strlen(s) != len || directory_validate_windows_account(s, &u->windows, &verr) != 0))
        add_error(err, key, 0, 0, "%s", strlen(s) != len ? "May not contain NUL." : verr.message);
    } else if (strcmp(key, "password") == 0) {
      u->has_password = true;
      if (s && validate_password(s, len, &verr) != 0)
        add_error(err, key, 0, 0, "%s", verr.message);
      password = s;
    } else if (strcmp(key, "enabled") == 0) {
      u->has_enabled = true;
      u->enabled = json_is_true(v);
    } else {
      add_error(err, key, 0, 0, "Is not a field of a user; use name, display_name, "
                                "windows_account, password or enabled.");
    }
  }
  if (create && !u->has_name) add_error(err, "name", 0, 0, "Is required.");
  if (error_count(err)) {
    set_detail(err, "%zu field(s) are invalid; nothing was changed.", error_count(err));
    return -EINVAL;
  }
  if (password) {
    int r = secret_password_hash(password, &u->password_hash);
    if (r < 0) {
      set_detail(err, "The password could not be hashed (out of memory?); try again.");
      return r;
    }
  }
  return 0;
}

/* Which unique constraint a failed write hit, as an API field name. */
static const char *conflict_field(sqlite3 *db) {
  const char *m = sqlite3_errmsg(db);
  if (strstr(m, "windows_account")) return "windows_account";
  if (strstr(m, "remote")) return "remote";
  return "name";
}

static void conflict_error(sqlite3 *db, directory_error_t *err, const char *name,
                           const char *windows, size_t row, size_t line) {
  const char *f = conflict_field(db);
  if (strcmp(f, "windows_account") == 0)
    add_error(err, f, row, line, "The Windows account %s belongs to another user already%s.",
              windows ? windows : "", row ? " (or to an earlier row)" : "");
  else
    add_error(err, f, row, line, "A user named %s exists already%s.", name ? name : "",
              row ? " (or an earlier row has the same name)" : "");
}

/* Steps the INSERT or UPDATE of a user; a taken name or Windows account becomes a field error
 * and a detail saying the user was not `what` ("created", "changed"). */
static int user_write(sqlite3 *db, sqlite3_stmt *st, const user_input_t *u, const char *what,
                      directory_error_t *err) {
  if (sqlite3_step(st) == SQLITE_DONE) return 0;
  int r = sql_fail(db);
  if (r == -EEXIST) {
    conflict_error(db, err, u->name, u->windows, 0, 0);
    set_detail(err, "The user was not %s: the %s is taken.", what, conflict_field(db));
  }
  return r;
}

int directory_user_create(store_t *store, const json_t *in, json_t **user, directory_error_t *err) {
  *user = NULL;
  user_input_t u;
  int r = user_input_parse(in, true, &u, err);
  if (r < 0) {
    user_input_clear(&u);
    return r;
  }
  store_lock(store);
  sqlite3 *db = store_db(store);
  sqlite3_stmt *st;
  if ((r = prepare(db,
                   "INSERT INTO users (name, display_name, windows_account, password_hash, "
                   "enabled, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                   &st)) == 0) {
    char now[32];
    store_now_rfc3339(now);
    sqlite3_bind_text(st, 1, u.name, -1, SQLITE_STATIC);
    bind_text_or_null(st, 2, u.display);
    bind_text_or_null(st, 3, u.windows);
    bind_text_or_null(st, 4, u.password_hash);
    sqlite3_bind_int(st, 5, u.has_enabled ? u.enabled : 1);
    sqlite3_bind_text(st, 6, now, -1, SQLITE_STATIC);
    r = user_write(db, st, &u, "created", err);
    sqlite3_finalize(st);
  }
  if (r == 0) r = get_user_locked(store, u.name, user);
  store_unlock(store);
  user_input_clear(&u);
  return r;
}

int directory_user_update(store_t *store, const char *name, const json_t *patch, json_t **user,
                          directory_error_t *err) {
  *user = NULL;
  user_input_t u;
  int r = user_input_parse(patch, false, &u, err);
  if (r < 0) {
    user_input_clear(&u);
    return r;
  }
  store_lock(store);
  sqlite3 *db = store_db(store);
  char local[DIRECTORY_NAME_MAX + 1];
  sqlite3_stmt *st = NULL;
  if ((r = current_local_name(store, name, local, sizeof local)) < 0) goto out;
  /* One statement whatever the fields: each "has" flag picks new or old. */
  if ((r = prepare(db,
                   "UPDATE users SET "
                   "name = CASE WHEN ?1 THEN ?2 ELSE name END, "
                   "display_name = CASE WHEN ?3 THEN ?4 ELSE display_name END, "
                   "windows_account = CASE WHEN ?5 THEN ?6 ELSE windows_account END, "
                   "password_hash = CASE WHEN ?7 THEN ?8 ELSE password_hash END, "
                   "enabled = CASE WHEN ?9 THEN ?10 ELSE enabled END, "
                   "updated_at = ?11 WHERE name = ?12",
                   &st)) < 0)
    goto out;
  char now[32];
  store_now_rfc3339(now);
  sqlite3_bind_int(st, 1, u.has_name);
  bind_text_or_null(st, 2, u.name);
  sqlite3_bind_int(st, 3, u.has_display);
  bind_text_or_null(st, 4, u.display);
  sqlite3_bind_int(st, 5, u.has_windows);
  bind_text_or_null(st, 6, u.windows);
  sqlite3_bind_int(st, 7, u.has_password);
  bind_text_or_null(st, 8, u.password_hash);
  sqlite3_bind_int(st, 9, u.has_enabled);
  sqlite3_bind_int(st, 10, u.enabled);
  sqlite3_bind_text(st, 11, now, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 12, local, -1, SQLITE_STATIC);
  if ((r = user_write(db, st, &u, "changed", err)) < 0) goto out;
  if (sqlite3_changes(db) == 0) {
    r = -ENOENT;
    goto out;
  }
  r = get_user_locked(store, u.has_name ? u.name : local, user);
out:
  sqlite3_finalize(st);
  store_unlock(store);
  user_input_clear(&u);
  return r;
}

int directory_user_delete(store_t *store, const char *name) {
  store_lock(store);
  sqlite3 *db = store_db(store);
  char local[DIRECTORY_NAME_MAX + 1];
  sqlite3_stmt *st = NULL;
  int r = current_local_name(store, name, local, sizeof local);
  if (r == 0 && (r = prepare(db, "DELETE FROM users WHERE name = ?1", &st)) == 0) {
    sqlite3_bind_text(st, 1, local, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
      r = sql_fail(db);
    else if (sqlite3_changes(db) == 0)
      r = -ENOENT;
  }
  sqlite3_finalize(st);
  store_unlock(store);
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

/* The list answer {total, offset, limit, <key>: items}; takes items. r < 0 drops them. */
static int make_page(int r, int64_t total, int64_t offset, int64_t limit, const char *key,
                     json_t *items, json_t **page) {
  if (r < 0) {
    json_decref(items);
    return r;
  }
  *page = json_pack("{s:I, s:I, s:I, s:o}", "total", (json_int_t)total, "offset",
                    (json_int_t)offset, "limit", (json_int_t)limit, key, items);
  return *page ? 0 : -ENOMEM;
}

static int64_t clamp_limit(int64_t limit) {
  return limit < 1 ? 1 : limit > DIRECTORY_LIST_LIMIT_MAX ? DIRECTORY_LIST_LIMIT_MAX : limit;
}

int directory_user_list(store_t *store, const char *q, int64_t offset, int64_t limit,
                        json_t **page) {
  *page = NULL;
  if (offset < 0) offset = 0;
  limit = clamp_limit(limit);
  if (q && !*q) q = NULL;
  char *pattern = q ? like_pattern(q) : NULL;
  json_t *users = json_array();
  if ((q && !pattern) || !users) {
    free(pattern);
    json_decref(users);
    return -ENOMEM;
  }
  store_lock(store);
  sqlite3 *db = store_db(store);
  int64_t gen, total = 0;
  char *domain = NULL;
  sqlite3_stmt *st = NULL;
  char exact[DIRECTORY_NAME_MAX + 1] = "";
  int r = exec_sql(db, "BEGIN");
  if (r == 0) r = directory_domain_current(store, &gen, &domain);
  if (r < 0) goto out;
  /* "alice@<current domain>" finds alice by her login name. */
  if (q && strchr(q, '@') && resolve_name(q, domain, exact, sizeof exact) < 0) exact[0] = '\0';
  static const char where[] =
      " WHERE ?1 IS NULL OR name LIKE ?1 ESCAPE '\\' OR display_name LIKE ?1 ESCAPE '\\' "
      "OR windows_account LIKE ?1 ESCAPE '\\' OR name = ?2";
  {
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM users%s", q ? where : "");
    if ((r = prepare(db, sql, &st)) < 0) goto out;
    if (q) {
      sqlite3_bind_text(st, 1, pattern, -1, SQLITE_STATIC);
      sqlite3_bind_text(st, 2, exact, -1, SQLITE_STATIC);
    }
    if (sqlite3_step(st) == SQLITE_ROW)
      total = sqlite3_column_int64(st, 0);
    else
      r = sql_fail(db);
    sqlite3_finalize(st);
    st = NULL;
    if (r < 0) goto out;
    snprintf(sql, sizeof sql, "SELECT " USER_COLUMNS " FROM users%s ORDER BY name LIMIT ?3 OFFSET ?4",
             q ? where : " WHERE ?1 IS NULL AND ?2 IS NULL");
    if ((r = prepare(db, sql, &st)) < 0) goto out;
    if (q) {
      sqlite3_bind_text(st, 1, pattern, -1, SQLITE_STATIC);
      sqlite3_bind_text(st, 2, exact, -1, SQLITE_STATIC);
    }
    sqlite3_bind_int64(st, 3, limit);
    sqlite3_bind_int64(st, 4, offset);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      if (json_array_append_new(users, user_doc(st, 0, domain)) < 0) {
        r = -ENOMEM;
        break;
      }
    }
    if (r == 0 && rc != SQLITE_DONE) r = sql_fail(db);
  }
out:
  sqlite3_finalize(st);
  store_rollback(store); /* ends the read transaction */
  store_unlock(store);
  free(domain);
  free(pattern);
  return make_page(r, total, offset, limit, "users", users, page);
}

/* ---- bulk import: parsing ------------------------------------------------------------------ */

typedef struct import_row {
  char *f[ROW_FIELDS]; /* per kind, see kinds[] */
  bool enabled;
  uint32_t line;       /* CSV line where the row starts; 0 for JSON */
} import_row_t;

struct directory_batch {
  directory_import_kind_t kind;
  import_row_t *rows;
  size_t count, cap;
  size_t dropped; /* invalid rows: the import fails even if their message could not be kept */
};

typedef struct import_kind {
  const char *what; /* "user", "subscription", ... for messages */
  const char *columns[ROW_FIELDS + 1];
  const char *required[3];
} import_kind_t;

/* Column i of a kind lands in row->f[i] ("enabled" in row->enabled). */
static const import_kind_t kinds[] = {
    [DIRECTORY_IMPORT_USERS] = {.what = "user",
                                .columns = {"name", "display_name", "windows_account", "password",
                                            "enabled"},
                                .required = {"name"}},
    [DIRECTORY_IMPORT_SUBSCRIPTIONS] = {.what = "subscription",
                                        .columns = {"user", "remote", "state"},
                                        .required = {"user", "remote"}},
    [DIRECTORY_IMPORT_CONTACTS] = {.what = "contact",
                                   .columns = {"user", "remote", "display_name"},
                                   .required = {"user", "remote"}},
};

static int column_index(const import_kind_t *k, const char *name) {
  for (int i = 0; k->columns[i]; i++)
    if (strcmp(k->columns[i], name) == 0) return i;
  return -1;
}

size_t directory_batch_rows(const directory_batch_t *b) { return b ? b->count : 0; }

void directory_batch_free(directory_batch_t *b) {
  if (!b) return;
  for (size_t i = 0; i < b->count; i++)
    for (int f = 0; f < ROW_FIELDS; f++) {
      if (b->rows[i].f[f]) explicit_bzero(b->rows[i].f[f], strlen(b->rows[i].f[f]));
      free(b->rows[i].f[f]);
    }
  free(b->rows);
  free(b);
}

/* Checks one row given as column texts (NULL: absent or empty) and appends
 * it to the batch. Errors go to err and the row is dropped. */
static int add_row(directory_batch_t *b, const char *const vals[ROW_FIELDS], size_t row,
                   size_t line, directory_error_t *err) {
  const import_kind_t *k = &kinds[b->kind];
  import_row_t r = {.enabled = true, .line = (uint32_t)line};
  bool bad = false;
  validate_error_t verr;
  for (int i = 0; k->required[i]; i++) {
    int c = column_index(k, k->required[i]);
    if (!vals[c]) {
      add_error(err, k->required[i], row, line, "Is required.");
      bad = true;
    }
  }
  for (int c = 0; k->columns[c]; c++) {
    const char *v = vals[c], *col = k->columns[c];
    if (!v) continue;
    size_t len = strlen(v);
    int rc = 0;
    char *norm = NULL;
    if (b->kind == DIRECTORY_IMPORT_USERS && strcmp(col, "name") == 0) {
      rc = directory_validate_name(v, &verr);
    } else if (strcmp(col, "user") == 0) {
      /* name or name@domain; the domain is checked against the store later */
      const char *at = strrchr(v, '@');
      char local[DIRECTORY_NAME_MAX + 2];
      size_t n = at ? (size_t)(at - v) : len;
      if (n >= sizeof local) n = sizeof local - 1;
      memcpy(local, v, n);
      local[n] = '\0';
      rc = directory_validate_name(local, &verr);
    } else if (strcmp(col, "display_name") == 0) {
      rc = validate_text(v, len, DIRECTORY_DISPLAY_NAME_MAX, &verr);
    } else if (strcmp(col, "windows_account") == 0) {
      rc = directory_validate_windows_account(v, &norm, &verr);
    } else if (strcmp(col, "password") == 0) {
      rc = validate_password(v, len, &verr);
    } else if (strcmp(col, "enabled") == 0) {
      if (parse_bool_text(v, &r.enabled) != 0)
        rc = validate_fail(&verr, "Must be true or false.");
    } else if (strcmp(col, "remote") == 0) {
      rc = directory_validate_remote(v, &norm, &verr);
    } else if (strcmp(col, "state") == 0) {
      if (strcmp(v, "active") != 0 && strcmp(v, "pending") != 0 &&
          strcmp(v, "to-be-recreated") != 0)
        rc = validate_fail(&verr, "Must be active, pending or to-be-recreated.");
    }
    if (rc == -ENOMEM) return rc;
    if (rc != 0) {
      add_error(err, col, row, line, "%s", verr.message);
      bad = true;
      continue;
    }
    if (strcmp(col, "enabled") == 0) continue;
    r.f[c] = norm ? norm : strdup(v);
    if (!r.f[c]) return -ENOMEM;
  }
  if (bad) {
    b->dropped++;
    for (int f = 0; f < ROW_FIELDS; f++) free(r.f[f]);
    return 0;
  }
  if (b->count == b->cap) {
    size_t ncap = b->cap ? b->cap * 2 : 256;
    import_row_t *nr = realloc(b->rows, ncap * sizeof *nr);
    if (!nr) {
      for (int f = 0; f < ROW_FIELDS; f++) free(r.f[f]);
      return -ENOMEM;
    }
    b->rows = nr;
    b->cap = ncap;
  }
  b->rows[b->count++] = r;
  return 0;
}

static bool too_many_errors(const directory_error_t *err) {
  return error_count(err) >= DIRECTORY_IMPORT_ERRORS_MAX;
}

static int parse_json_rows(directory_batch_t *b, const json_t *arr, directory_error_t *err) {
  const import_kind_t *k = &kinds[b->kind];
  size_t i;
  json_t *obj;
  if (json_array_size(arr) > IMPORT_ROWS_MAX) {
    set_detail(err, "The import has %zu rows; at most %d are accepted at once: split the file.",
               json_array_size(arr), IMPORT_ROWS_MAX);
    return -EINVAL;
  }
  json_array_foreach(arr, i, obj) {
    if (too_many_errors(err)) break;
    size_t row = i + 1;
    if (!json_is_object(obj)) {
      add_error(err, "row", row, 0, "Must be a JSON object describing one %s.", k->what);
      b->dropped++;
      continue;
    }
    const char *vals[ROW_FIELDS] = {0};
    char enabled_text[6];
    bool bad = false;
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
      int c = column_index(k, key);
      if (c < 0) {
        add_error(err, key, row, 0, "Is not a field of a %s.", k->what);
        bad = true;
        continue;
      }
      if (json_is_null(v)) continue;
      if (strcmp(key, "enabled") == 0 && json_is_boolean(v)) {
        snprintf(enabled_text, sizeof enabled_text, "%s", json_is_true(v) ? "true" : "false");
        vals[c] = enabled_text;
        continue;
      }
      if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)) {
        add_error(err, key, row, 0, "Must be a %s.",
                  strcmp(key, "enabled") == 0 ? "boolean" : "string without NUL characters");
        bad = true;
        continue;
      }
      vals[c] = *json_string_value(v) ? json_string_value(v) : NULL;
    }
    if (bad) {
      b->dropped++;
      continue;
    }
    int r = add_row(b, vals, row, 0, err);
    if (r < 0) return r;
  }
  return 0;
}

/* One CSV record. Fields are NUL-terminated strings in buf at offsets. */
typedef struct csv_reader {
  const char *p, *end;
  size_t line;
  char *buf;
  size_t len, cap;
  size_t offs[CSV_COLUMNS_MAX];
  size_t nfields;
} csv_reader_t;

static int csv_put(csv_reader_t *c, char ch) {
  if (c->len + 1 >= c->cap) {
    size_t ncap = c->cap ? c->cap * 2 : 256;
    char *nb = realloc(c->buf, ncap);
    if (!nb) return -ENOMEM;
    c->buf = nb;
    c->cap = ncap;
  }
  c->buf[c->len++] = ch;
  return 0;
}

/* Appends one character of a field, quoted or not: a NUL byte or an over-long field is
 * malformed (-EINVAL, message in msg). */
static int csv_field_char(csv_reader_t *c, char ch, size_t *flen, char *msg, size_t msglen) {
  if (ch == '\0') {
    snprintf(msg, msglen, "Line %zu contains a NUL byte.", c->line);
    return -EINVAL;
  }
  if (++*flen > CSV_FIELD_MAX) {
    snprintf(msg, msglen, "A field on line %zu is longer than %d bytes.", c->line, CSV_FIELD_MAX);
    return -EINVAL;
  }
  return csv_put(c, ch);
}

/* Reads one record. 1: a record (start line in *line); 0: end of input;
 * -EINVAL: malformed (message in msg); -ENOMEM. Blank lines are skipped. */
static int csv_next(csv_reader_t *c, size_t *line, char *msg, size_t msglen) {
  for (;;) {
    if (c->p >= c->end) return 0;
    c->len = 0;
    c->nfields = 0;
    *line = c->line;
    bool any = false;
    for (;;) { /* one field per turn */
      if (c->nfields == CSV_COLUMNS_MAX) {
        snprintf(msg, msglen, "Line %zu has more than %d fields.", *line, CSV_COLUMNS_MAX);
        return -EINVAL;
      }
      c->offs[c->nfields] = c->len;
      size_t flen = 0;
      if (c->p < c->end && *c->p == '"') {
        any = true;
        c->p++;
        for (;;) {
          if (c->p >= c->end) {
            snprintf(msg, msglen, "The quoted field that starts on line %zu is never closed.",
                     *line);
            return -EINVAL;
          }
          char ch = *c->p++;
          if (ch == '"') {
            if (c->p < c->end && *c->p == '"') {
              c->p++;
            } else {
              break;
            }
          } else if (ch == '\n') {
            c->line++;
          }
          int r = csv_field_char(c, ch, &flen, msg, msglen);
          if (r < 0) return r;
        }
        if (c->p < c->end && *c->p != ',' && *c->p != '\n' && *c->p != '\r') {
          snprintf(msg, msglen, "Line %zu: after a closing quote comes a comma or the end of the "
                   "line; write a quote inside a quoted field as \"\".", c->line);
          return -EINVAL;
        }
      } else {
        while (c->p < c->end && *c->p != ',' && *c->p != '\n' && *c->p != '\r') {
          char ch = *c->p++;
          any = true;
          if (ch == '"') {
            snprintf(msg, msglen, "Line %zu: a quote inside a field that does not start with a "
                     "quote; put the field in quotes and write the quote as \"\".", c->line);
            return -EINVAL;
          }
          int r = csv_field_char(c, ch, &flen, msg, msglen);
          if (r < 0) return r;
        }
      }
      if (csv_put(c, '\0') < 0) return -ENOMEM;
      c->nfields++;
      if (c->p < c->end && *c->p == ',') {
        any = true;
        c->p++;
        continue;
      }
      if (c->p < c->end && *c->p == '\r') {
        if (c->p + 1 >= c->end || c->p[1] != '\n') {
          snprintf(msg, msglen, "Line %zu ends in a carriage return without a line feed.",
                   c->line);
          return -EINVAL;
        }
        c->p++;
      }
      if (c->p < c->end && *c->p == '\n') {
        c->p++;
        c->line++;
      }
      break;
    }
    if (any) return 1;
  }
}

static const char *csv_field(const csv_reader_t *c, size_t i) { return c->buf + c->offs[i]; }

static int parse_csv_rows(directory_batch_t *b, const char *data, size_t len,
                          directory_error_t *err) {
  const import_kind_t *k = &kinds[b->kind];
  csv_reader_t c = {.p = data, .end = data + len, .line = 1};
  if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0) c.p += 3; /* Excel writes a BOM */
  char msg[256];
  size_t line;
  int map[CSV_COLUMNS_MAX];
  size_t ncols = 0;
  int r = csv_next(&c, &line, msg, sizeof msg);
  if (r == 0) {
    set_detail(err, "The CSV is empty: the first line must name the columns (%s%s%s...).",
               k->columns[0], k->columns[1] ? ", " : "", k->columns[1] ? k->columns[1] : "");
    r = -EINVAL;
    goto out;
  }
  if (r < 0) {
    if (r == -EINVAL) set_detail(err, "The CSV is malformed: %s", msg);
    goto out;
  }
  ncols = c.nfields;
  bool seen[ROW_FIELDS] = {false}, header_ok = true;
  for (size_t i = 0; i < ncols; i++) {
    char name[64];
    snprintf(name, sizeof name, "%s", csv_field(&c, i));
    /* Spreadsheets add spaces and capitals to headers. */
    char *s = name;
    while (*s == ' ') s++;
    size_t n = strlen(s);
    while (n && s[n - 1] == ' ') s[--n] = '\0';
    lower_ascii(s);
    map[i] = column_index(k, s);
    if (map[i] < 0 || seen[map[i]]) header_ok = false;
    if (map[i] < 0)
      add_error(err, s, 0, 1, "Line 1: \"%s\" is not a column of a %s import; the columns are "
                "%s%s%s%s%s%s%s%s%s.", s, k->what, k->columns[0],
                k->columns[1] ? ", " : "", k->columns[1] ? k->columns[1] : "",
                k->columns[2] ? ", " : "", k->columns[2] ? k->columns[2] : "",
                k->columns[3] ? ", " : "", k->columns[3] ? k->columns[3] : "",
                k->columns[4] ? ", " : "", k->columns[4] ? k->columns[4] : "");
    else if (seen[map[i]])
      add_error(err, s, 0, 1, "Line 1: the column \"%s\" appears twice.", s);
    else
      seen[map[i]] = true;
  }
  for (int i = 0; k->required[i]; i++)
    if (!seen[column_index(k, k->required[i])]) {
      header_ok = false;
      add_error(err, k->required[i], 0, 1, "Line 1: the required column \"%s\" is missing.",
                k->required[i]);
    }
  if (!header_ok) {
    set_detail(err, "The header line of the CSV is not right; nothing was imported.");
    r = -EINVAL;
    goto out;
  }
  size_t row = 0;
  while ((r = csv_next(&c, &line, msg, sizeof msg)) == 1) {
    row++;
    if (row > IMPORT_ROWS_MAX) {
      set_detail(err, "The import has more than %d rows; split the file.", IMPORT_ROWS_MAX);
      r = -EINVAL;
      goto out;
    }
    if (c.nfields != ncols) {
      add_error(err, "row", row, line, "Has %zu field(s) but the header names %zu column(s).",
                c.nfields, ncols);
      b->dropped++;
    } else {
      const char *vals[ROW_FIELDS] = {0};
      for (size_t i = 0; i < ncols; i++) {
        const char *f = csv_field(&c, i);
        vals[map[i]] = *f ? f : NULL;
      }
      if ((r = add_row(b, vals, row, line, err)) < 0) goto out;
    }
    if (too_many_errors(err)) break;
  }
  if (r == -EINVAL) {
    add_error(err, "row", row + 1, line, "%s", msg);
    b->dropped++;
  } else if (r < 0) {
    goto out;
  }
  r = 0;
out:
  free(c.buf);
  return r;
}

int directory_import_parse(directory_import_kind_t kind, const char *data, size_t len, bool csv,
                           directory_batch_t **out, directory_error_t *err) {
  *out = NULL;
  if ((unsigned)kind >= sizeof kinds / sizeof kinds[0]) return -EINVAL;
  directory_batch_t *b = calloc(1, sizeof *b);
  if (!b) return -ENOMEM;
  b->kind = kind;
  int r;
  json_t *doc = NULL;
  if (csv) {
    r = parse_csv_rows(b, data, len, err);
  } else {
    json_error_t jerr;
    doc = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc) {
      set_detail(err, "The import is not valid JSON: %s (line %d, column %d). Send a JSON array "
                 "of objects, or CSV with Content-Type: text/csv.", jerr.text, jerr.line,
                 jerr.column);
      r = -EINVAL;
    } else if (json_is_array(doc)) {
      r = parse_json_rows(b, doc, err);
    } else if (json_is_object(doc) && json_object_size(doc) == 1 &&
               json_is_string(json_object_get(doc, "csv"))) {
      json_t *t = json_object_get(doc, "csv");
      r = parse_csv_rows(b, json_string_value(t), json_string_length(t), err);
    } else {
      set_detail(err, "The import must be a JSON array of %s objects (or {\"csv\": \"...\"}).",
                 kinds[kind].what);
      r = -EINVAL;
    }
  }
  json_decref(doc);
  if (r == 0 && (error_count(err) || b->dropped)) r = -EINVAL;
  if (r == -EINVAL && !err->detail[0])
    set_detail(err, "%zu row(s) are invalid%s; nothing was imported.", error_count(err),
               too_many_errors(err) ? " (checking stopped at the first ones)" : "");
  if (r == 0 && b->count == 0) {
    set_detail(err, "The import holds no rows; nothing was imported.");
    r = -EINVAL;
  }
  if (r < 0) {
    directory_batch_free(b);
    return r;
  }
  *out = b;
  return 0;
}

/* ---- bulk import: writing ---------------------------------------------------------------------- */

static const char *row_user_local(char *buf, size_t len, const char *ref) {
  const char *at = strrchr(ref, '@');
  size_t n = at ? (size_t)(at - ref) : strlen(ref);
  if (n >= len) n = len - 1;
  memcpy(buf, ref, n);
  buf[n] = '\0';
  return buf;
}

int directory_import_apply(store_t *store, directory_batch_t *b, int64_t *imported,
                           directory_error_t *err) {
  *imported = 0;
  /* Hashing is the slow part: done before the store is locked. */
  if (b->kind == DIRECTORY_IMPORT_USERS) {
    for (size_t i = 0; i < b->count; i++) {
      char *pw = b->rows[i].f[3];
      if (!pw) continue;
      char *hash = NULL;
      int r = secret_password_hash(pw, &hash);
      explicit_bzero(pw, strlen(pw));
      free(pw);
      b->rows[i].f[3] = hash;
      if (r < 0) return r;
    }
  }
  store_lock(store);
  sqlite3 *db = store_db(store);
  sqlite3_stmt *st = NULL;
  int64_t gen = 0;
  char *domain = NULL;
  int r = store_begin(store);
  if (r == 0) r = directory_domain_current(store, &gen, &domain);
  if (r < 0) goto out;
  static const char *const sql[] = {
      [DIRECTORY_IMPORT_USERS] =
          "INSERT INTO users (name, display_name, windows_account, password_hash, enabled, "
          "created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
      [DIRECTORY_IMPORT_SUBSCRIPTIONS] =
          "INSERT INTO subscriptions (user_id, remote, state, generation, created_at) "
          "SELECT id, ?2, ?3, ?5, ?6 FROM users WHERE name = ?1",
      [DIRECTORY_IMPORT_CONTACTS] =
          "INSERT INTO contacts (user_id, remote, display_name, created_at) "
          "SELECT id, ?2, ?3, ?6 FROM users WHERE name = ?1",
  };
  if ((r = prepare(db, sql[b->kind], &st)) < 0) goto out;
  char now[32];
  store_now_rfc3339(now);
  for (size_t i = 0; i < b->count; i++) {
    import_row_t *row = &b->rows[i];
    size_t rowno = i + 1;
    char local[DIRECTORY_NAME_MAX + 2];
    sqlite3_reset(st);
    if (b->kind == DIRECTORY_IMPORT_USERS) {
      sqlite3_bind_text(st, 1, row->f[0], -1, SQLITE_STATIC);
      bind_text_or_null(st, 2, row->f[1]);
      bind_text_or_null(st, 3, row->f[2]);
      bind_text_or_null(st, 4, row->f[3]);
      sqlite3_bind_int(st, 5, row->enabled);
    } else {
      const char *at = strrchr(row->f[0], '@');
      if (at && strcasecmp(at + 1, domain) != 0) {
        add_error(err, "user", rowno, row->line, "%s is not an address of this server's domain "
                  "%s; write the user's name.", row->f[0], domain);
        r = -EINVAL;
        goto out;
      }
      sqlite3_bind_text(st, 1, row_user_local(local, sizeof local, row->f[0]), -1, SQLITE_STATIC);
      sqlite3_bind_text(st, 2, row->f[1], -1, SQLITE_STATIC);
      if (b->kind == DIRECTORY_IMPORT_SUBSCRIPTIONS)
        sqlite3_bind_text(st, 3, row->f[2] ? row->f[2] : "active", -1, SQLITE_STATIC);
      else
        bind_text_or_null(st, 3, row->f[2]);
      sqlite3_bind_int64(st, 5, gen);
    }
    sqlite3_bind_text(st, 6, now, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) {
      r = sql_fail(db);
      if (r == -EEXIST && b->kind == DIRECTORY_IMPORT_USERS) {
        conflict_error(db, err, row->f[0], row->f[2], rowno, row->line);
        r = -EINVAL;
      } else if (r == -EEXIST) {
        add_error(err, "remote", rowno, row->line, "%s has a %s for %s already (or an earlier row "
                  "has).", local, kinds[b->kind].what, row->f[1]);
        r = -EINVAL;
      }
      goto out;
    }
    if (b->kind != DIRECTORY_IMPORT_USERS && sqlite3_changes(db) == 0) {
      add_error(err, "user", rowno, row->line, "There is no user named %s.", local);
      r = -EINVAL;
      goto out;
    }
  }
  r = store_commit(store);
  if (r == 0) *imported = (int64_t)b->count;
out:
  if (r == -EINVAL && !err->detail[0])
    set_detail(err, "The import was refused at row %zu; nothing was imported.",
               error_count(err) ? (size_t)json_integer_value(json_object_get(
                                      json_array_get(err->errors, 0), "row"))
                                : 0);
  sqlite3_finalize(st);
  if (r < 0) store_rollback(store);
  store_unlock(store);
  free(domain);
  return r;
}

/* ---- federation data: lists -------------------------------------------------------------------- */

/* Shared by the subscription and contact lists: one count and one page. */
static int federation_list(store_t *store, bool subscriptions, const char *user, const char *state,
                           int64_t offset, int64_t limit, json_t **page) {
  *page = NULL;
  if (offset < 0) offset = 0;
  limit = clamp_limit(limit);
  json_t *items = json_array();
  if (!items) return -ENOMEM;
  store_lock(store);
  sqlite3 *db = store_db(store);
  int64_t gen = 0, total = 0;
  char *domain = NULL;
  char local[DIRECTORY_NAME_MAX + 2] = "";
  sqlite3_stmt *st = NULL;
  int r = exec_sql(db, "BEGIN");
  if (r == 0) r = directory_domain_current(store, &gen, &domain);
  if (r < 0) goto out;
  if (user && *user) row_user_local(local, sizeof local, user);
  /* A subscription made under an earlier domain is to be created again. */
  static const char eff_state[] =
      "CASE WHEN s.generation < ?3 THEN 'to-be-recreated' ELSE s.state END";
  char where[400];
  if (subscriptions)
    snprintf(where, sizeof where,
             " FROM subscriptions s JOIN users u ON u.id = s.user_id WHERE (?1 = '' OR u.name = ?1)"
             " AND (?2 = '' OR %s = ?2)", eff_state);
  else
    snprintf(where, sizeof where,
             " FROM contacts s JOIN users u ON u.id = s.user_id WHERE (?1 = '' OR u.name = ?1)"
             " AND ?2 = '' AND ?3 = ?3");
  char sql[900];
  for (int pass = 0; pass < 2 && r == 0; pass++) {
    if (pass == 0)
      snprintf(sql, sizeof sql, "SELECT count(*)%s", where);
    else if (subscriptions)
      snprintf(sql, sizeof sql, "SELECT u.name, s.remote, %s, s.created_at%s "
               "ORDER BY s.id LIMIT ?4 OFFSET ?5", eff_state, where);
    else
      snprintf(sql, sizeof sql, "SELECT u.name, s.remote, s.display_name, s.created_at%s "
               "ORDER BY s.id LIMIT ?4 OFFSET ?5", where);
    if ((r = prepare(db, sql, &st)) < 0) break;
    sqlite3_bind_text(st, 1, local, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, state ? state : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, gen);
    if (pass == 1) {
      sqlite3_bind_int64(st, 4, limit);
      sqlite3_bind_int64(st, 5, offset);
    }
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      if (pass == 0) {
        total = sqlite3_column_int64(st, 0);
        continue;
      }
      const char *n = (const char *)sqlite3_column_text(st, 0);
      char addr[400];
      snprintf(addr, sizeof addr, "%s@%s", n ? n : "", domain);
      json_t *o = subscriptions
                      ? json_pack("{s:o, s:s, s:o, s:o, s:o}", "user", column_string(st, 0),
                                  "im_address", addr, "remote", column_string(st, 1), "state",
                                  column_string(st, 2), "created_at", column_string(st, 3))
                      : json_pack("{s:o, s:o, s:o, s:o}", "user", column_string(st, 0), "remote",
                                  column_string(st, 1), "display_name", column_string(st, 2),
                                  "created_at", column_string(st, 3));
      if (json_array_append_new(items, o) < 0) {
        r = -ENOMEM;
        break;
      }
    }
    if (r == 0 && rc != SQLITE_DONE) r = sql_fail(db);
    sqlite3_finalize(st);
    st = NULL;
  }
out:
  sqlite3_finalize(st);
  store_rollback(store); /* ends the read transaction */
  store_unlock(store);
  free(domain);
  return make_page(r, total, offset, limit, subscriptions ? "subscriptions" : "contacts", items,
                   page);
}

int directory_subscription_list(store_t *store, const char *user, const char *state,
                                int64_t offset, int64_t limit, json_t **page) {
  return federation_list(store, true, user, state, offset, limit, page);
}

int directory_contact_list(store_t *store, const char *user, int64_t offset, int64_t limit,
                           json_t **page) {
  return federation_list(store, false, user, NULL, offset, limit, page);
}

/* ---- client logins ------------------------------------------------------------------------------ */

/* A wrong login name costs the same Argon2id work as a wrong password, so
 * the answer time does not tell which names exist. */
static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;
static char *dummy_hash;

static void make_dummy_hash(void) {
  if (secret_password_hash("atrium-timing-equaliser", &dummy_hash) < 0) dummy_hash = NULL;
}

void directory_shutdown(void) {
  free(dummy_hash);
  dummy_hash = NULL;
}

void directory_login_clear(directory_login_t *l) {
  if (!l) return;
  if (l->token) explicit_bzero(l->token, strlen(l->token));
  free(l->token);
  memset(l, 0, sizeof *l);
}

typedef struct device_input {
  const char *id, *platform, *push_token;
} device_input_t;

static int device_parse(const json_t *device, device_input_t *d, directory_error_t *err) {
  memset(d, 0, sizeof *d);
  if (!device || json_is_null(device)) return 0;
  if (!json_is_object(device)) {
    add_error(err, "device", 0, 0, "Must be an object {\"id\", \"platform\", \"push_token\"}.");
    set_detail(err, "The device description is not valid.");
    return -EINVAL;
  }
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)device, key, v) {
    if (strcmp(key, "push_token") == 0 && json_is_null(v)) continue;
    if (strcmp(key, "id") != 0 && strcmp(key, "platform") != 0 && strcmp(key, "push_token") != 0) {
      add_error(err, "device", 0, 0, "\"%s\" is not a field of a device; use id, platform and "
                "push_token.", key);
      continue;
    }
    const char *s = json_string_value(v);
    if (!s || strlen(s) != json_string_length(v)) {
      add_error(err, "device", 0, 0, "device.%s must be a string.", key);
      continue;
    }
    size_t n = strlen(s);
    if (strcmp(key, "id") == 0) {
      bool ok = n >= 1 && n <= 128;
      for (size_t i = 0; ok && i < n; i++) ok = s[i] > 0x20 && s[i] < 0x7f;
      if (!ok)
        add_error(err, "device", 0, 0, "device.id must be 1 to 128 printable ASCII characters "
                  "without spaces.");
      d->id = s;
    } else if (strcmp(key, "platform") == 0) {
      if (strcmp(s, "ios") != 0 && strcmp(s, "android") != 0)
        add_error(err, "device", 0, 0, "device.platform must be \"ios\" or \"android\".");
      d->platform = s;
    } else {
      bool ok = n <= 4096;
      for (size_t i = 0; ok && i < n; i++) ok = !is_control((unsigned char)s[i]);
      if (!ok)
        add_error(err, "device", 0, 0, "device.push_token must be printable and at most 4096 "
                  "bytes.");
      d->push_token = s;
    }
  }
  if (!error_count(err) && (!d->id || !d->platform))
    add_error(err, "device", 0, 0, "A device needs an id and a platform.");
  if (error_count(err)) {
    set_detail(err, "The device description is not valid; fix it and log in again.");
    return -EINVAL;
  }
  return 0;
}

typedef struct login_lookup {
  int64_t user_id;
  char *hash;
  bool enabled;
  bool stale_domain; /* the login name carries an earlier domain */
  int64_t generation;
  char domain[256];
  char local[DIRECTORY_NAME_MAX + 1];
} login_lookup_t;

/* (locked) Finds the user a login name means. -ENOENT when none. */
static int login_lookup(store_t *store, const char *login, login_lookup_t *out) {
  sqlite3 *db = store_db(store);
  int r = domain_current_copy(store, &out->generation, out->domain, sizeof out->domain);
  if (r < 0) return r;
  const char *at = strrchr(login, '@');
  size_t n = at ? (size_t)(at - login) : strlen(login);
  if (n == 0 || n > DIRECTORY_NAME_MAX) return -ENOENT;
  memcpy(out->local, login, n);
  out->local[n] = '\0';
  lower_ascii(out->local);
  if (at) {
    char *host = NULL;
    validate_error_t verr;
    if (validate_host(at + 1, HOST_TWO_LABELS, &host, &verr) != 0) return -ENOENT;
    bool current = strcmp(host, out->domain) == 0;
    if (!current) {
      sqlite3_stmt *st;
      if ((r = prepare(db, "SELECT 1 FROM domains WHERE name = ?1 AND generation < ?2", &st)) < 0) {
        free(host);
        return r;
      }
      sqlite3_bind_text(st, 1, host, -1, SQLITE_STATIC);
      sqlite3_bind_int64(st, 2, out->generation);
      int rc = sqlite3_step(st);
      sqlite3_finalize(st);
      free(host);
      if (rc != SQLITE_ROW) return rc == SQLITE_DONE ? -ENOENT : sql_fail(db);
      out->stale_domain = true;
    } else {
      free(host);
    }
  }
  sqlite3_stmt *st;
  if ((r = prepare(db, "SELECT id, password_hash, enabled FROM users WHERE name = ?1", &st)) < 0)
    return r;
  sqlite3_bind_text(st, 1, out->local, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    out->user_id = sqlite3_column_int64(st, 0);
    const char *h = (const char *)sqlite3_column_text(st, 1);
    out->enabled = sqlite3_column_int(st, 2) != 0;
    if (h && !(out->hash = strdup(h))) r = -ENOMEM;
  } else {
    r = rc == SQLITE_DONE ? -ENOENT : sql_fail(db);
  }
  sqlite3_finalize(st);
  return r;
}

/* (locked, in a transaction) The device row and the token. */
static int issue_token(store_t *store, const login_lookup_t *who, const device_input_t *dev,
                       const char *login_used, directory_login_t *out) {
  sqlite3 *db = store_db(store);
  sqlite3_stmt *st = NULL;
  char now[32];
  store_now_rfc3339(now);
  int64_t t = now_seconds();
  int r = 0;
  char hash[65];
  if ((r = secret_random_token(32, &out->token)) < 0) return r;
  secret_sha256_hex(out->token, hash);
  if (dev->id) {
    if ((r = prepare(db,
                     "INSERT INTO devices (user_id, device_id, platform, push_token, login, "
                     "generation, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7) "
                     "ON CONFLICT (user_id, device_id) DO UPDATE SET platform = excluded.platform, "
                     "push_token = excluded.push_token, login = excluded.login, "
                     "generation = excluded.generation, updated_at = excluded.updated_at",
                     &st)) < 0)
      return r;
    sqlite3_bind_int64(st, 1, who->user_id);
    sqlite3_bind_text(st, 2, dev->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, dev->platform, -1, SQLITE_STATIC);
    bind_text_or_null(st, 4, dev->push_token);
    sqlite3_bind_text(st, 5, login_used, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, who->generation);
    sqlite3_bind_text(st, 7, now, -1, SQLITE_STATIC);
    if ((r = step_done(db, st)) < 0) return r;
    /* One device, one live token: a new login replaces the last one. */
    if ((r = prepare(db, "DELETE FROM client_tokens WHERE user_id = ?1 AND device_id = ?2", &st)) <
        0)
      return r;
    sqlite3_bind_int64(st, 1, who->user_id);
    sqlite3_bind_text(st, 2, dev->id, -1, SQLITE_STATIC);
    if ((r = step_done(db, st)) < 0) return r;
  }
  if ((r = prepare(db, "DELETE FROM client_tokens WHERE user_id = ?1 AND expires <= ?2", &st)) < 0)
    return r;
  sqlite3_bind_int64(st, 1, who->user_id);
  sqlite3_bind_int64(st, 2, t);
  if ((r = step_done(db, st)) < 0) return r;
  if ((r = prepare(db,
                   "INSERT INTO client_tokens (token_hash, user_id, device_id, generation, created, "
                   "expires) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                   &st)) < 0)
    return r;
  out->expires = t + DIRECTORY_TOKEN_SECONDS;
  sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, who->user_id);
  bind_text_or_null(st, 3, dev->id);
  sqlite3_bind_int64(st, 4, who->generation);
  sqlite3_bind_int64(st, 5, t);
  sqlite3_bind_int64(st, 6, out->expires);
  return step_done(db, st);
}

/* (locked, in a transaction) Commits a login or rolls it back, unlocks the store, and drops
 * the token of a login that failed. */
static int login_finish(store_t *store, int r, directory_login_t *out) {
  if (r == 0) r = store_commit(store);
  if (r < 0) store_rollback(store);
  store_unlock(store);
  if (r < 0) {
    free(out->token);
    out->token = NULL;
  }
  return r;
}

int directory_login(store_t *store, const char *login, const char *password, const json_t *device,
                    directory_login_t *out, directory_error_t *err) {
  memset(out, 0, sizeof *out);
  device_input_t dev;
  int r = device_parse(device, &dev, err);
  if (r < 0) return r;
  if (!login || !password || strlen(login) > 400) return -EACCES;

  login_lookup_t who = {0};
  store_lock(store);
  r = login_lookup(store, login, &who);
  store_unlock(store);
  if (r < 0 && r != -ENOENT) return r;

  /* Argon2id outside the lock: it is the slow part, and logins must not
   * queue behind each other on the store. */
  pthread_once(&dummy_once, make_dummy_hash);
  const char *hash = who.hash ? who.hash : dummy_hash;
  int v = hash ? secret_password_verify(hash, password) : -EACCES;
  bool ok = r == 0 && who.hash && v == 0 && who.enabled;
  free(who.hash);
  if (!ok) return -EACCES;
  snprintf(out->login, sizeof out->login, "%s@%s", who.local, who.domain);
  if (who.stale_domain) return -ESTALE;

  store_lock(store);
  int64_t gen;
  r = store_begin(store);
  if (r == 0) r = directory_domain_current(store, &gen, NULL);
  /* The domain changed while the password was checked: the name is stale. */
  if (r == 0 && gen != who.generation) r = -EAGAIN;
  if (r == 0) r = issue_token(store, &who, &dev, login, out);
  r = login_finish(store, r, out);
  if (r == -EAGAIN) {
    set_detail(err, "The server's domain changed just now; log in again.");
    return -EACCES;
  }
  return r;
}

int directory_login_windows(store_t *store, const char *name, directory_login_t *out,
                            directory_error_t *err) {
  memset(out, 0, sizeof *out);
  if (!name || strchr(name, '@')) return -EINVAL;
  login_lookup_t who = {0};
  const device_input_t none = {0};
  store_lock(store);
  int r = store_begin(store);
  if (r == 0) r = login_lookup(store, name, &who);
  free(who.hash);
  if (r == -ENOENT || (r == 0 && !who.enabled)) {
    set_detail(err, r == 0 ? "The user %s is disabled; ask the administrator to enable it."
                           : "There is no user %s any more.", name);
    r = -EACCES;
  }
  if (r == 0) {
    snprintf(out->login, sizeof out->login, "%s@%s", who.local, who.domain);
    r = issue_token(store, &who, &none, out->login, out);
  }
  return login_finish(store, r, out);
}

int directory_token_user(store_t *store, const char *token, json_t **user, directory_error_t *err) {
  *user = NULL;
  if (!token || !*token || strlen(token) > 256) {
    set_detail(err, "The token is not valid; log in again.");
    return -EACCES;
  }
  char hash[65];
  secret_sha256_hex(token, hash);
  store_lock(store);
  sqlite3 *db = store_db(store);
  int64_t gen = 0;
  char *domain = NULL;
  sqlite3_stmt *st = NULL;
  int r = directory_domain_current(store, &gen, &domain);
  if (r < 0) goto out;
  if ((r = prepare(db,
                   "SELECT t.device_id, t.generation, t.expires, d.platform, d.login, "
                   "d.generation, (SELECT name FROM domains WHERE generation = t.generation), "
                   USER_COLUMNS_OF("u.") " FROM client_tokens t JOIN users u ON u.id = t.user_id "
                   "LEFT JOIN devices d ON d.user_id = t.user_id AND d.device_id = t.device_id "
                   "WHERE t.token_hash = ?1",
                   &st)) < 0)
    goto out;
  sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  if (rc != SQLITE_ROW) {
    r = rc == SQLITE_DONE ? -EACCES : sql_fail(db);
    if (r == -EACCES) set_detail(err, "The token is not valid (logged out or replaced); log in "
                                      "again.");
    goto out;
  }
  const char *name = (const char *)sqlite3_column_text(st, 7);
  bool mobile = sqlite3_column_type(st, 0) != SQLITE_NULL;
  if (sqlite3_column_int64(st, 2) <= now_seconds()) {
    set_detail(err, "The token has expired; log in again.");
    r = -EACCES;
  } else if (!sqlite3_column_int(st, 10)) {
    set_detail(err, "The account %s@%s is disabled; ask your administrator.", name, domain);
    r = -EACCES;
  } else if (mobile && sqlite3_column_int64(st, 1) < gen) {
    const char *old = (const char *)sqlite3_column_text(st, 6);
    set_detail(err, "The server's domain changed from %s to %s: set up the login again on this "
               "device with the login name %s@%s.", old ? old : "an earlier domain", domain, name,
               domain);
    r = -ESTALE;
  } else if (mobile && sqlite3_column_type(st, 3) == SQLITE_NULL) {
    set_detail(err, "This device's registration was removed; set up the login again.");
    r = -EACCES;
  }
  if (r < 0) goto out;
  if (!(*user = user_doc(st, 7, domain))) {
    r = -ENOMEM;
    goto out;
  }
  json_t *d = mobile ? json_pack("{s:o, s:o, s:o}", "id", column_string(st, 0), "platform",
                                 column_string(st, 3), "login", column_string(st, 4))
                     : json_null();
  json_object_set_new(*user, "device", d ? d : json_null());
out:
  sqlite3_finalize(st);
  store_unlock(store);
  free(domain);
  if (r < 0) {
    json_decref(*user);
    *user = NULL;
  }
  return r;
}
