/* The persistent store: see store.h. */
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define AUDIT_LIMIT_MAX 500

struct store {
  sqlite3 *db;
  pthread_mutex_t lock; /* serialises every use of db */
  int schema_version;
  atomic_uint_fast64_t errors;
  /* The last failure's message. Guarded by its own mutex because
   * store_last_error() may be called by a thread that does not hold `lock`. */
  pthread_mutex_t err_lock;
  char last_error[512];
  char path[PATH_MAX];
};

/* Step i brings PRAGMA user_version from i to i+1. Append only: a released
 * step never changes, because stores in the field have already run it. */
static const char *const migrations[] = {
  /* 0 -> 1 */
  "CREATE TABLE settings ("
  "  key TEXT PRIMARY KEY,"
  "  value TEXT NOT NULL," /* JSON text */
  "  updated_at TEXT NOT NULL"
  ");"
  /* One row: the version is bumped in the same transaction as the values, so
   * If-Match can never see a version that does not match the rows. */
  "CREATE TABLE settings_state ("
  "  id INTEGER PRIMARY KEY CHECK (id = 1),"
  "  version INTEGER NOT NULL"
  ");"
  "INSERT INTO settings_state (id, version) VALUES (1, 0);"
  "CREATE TABLE meta ("
  "  name TEXT PRIMARY KEY,"
  "  value TEXT NOT NULL"
  ");"
  /* Newest first is ORDER BY id DESC, which walks the rowid b-tree backwards;
   * the time index serves "changes since" queries, where id cannot help. */
  "CREATE TABLE audit ("
  "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
  "  time TEXT NOT NULL,"
  "  actor TEXT NOT NULL,"
  "  key TEXT NOT NULL,"
  "  old TEXT,"
  "  new TEXT"
  ");"
  "CREATE INDEX audit_time ON audit (time DESC, id DESC);"
  "CREATE TABLE admins ("
  "  name TEXT PRIMARY KEY,"
  "  password_hash TEXT NOT NULL,"
  "  created_at TEXT NOT NULL"
  ");"
  "CREATE TABLE sessions ("
  "  token_hash TEXT PRIMARY KEY,"
  "  admin TEXT NOT NULL REFERENCES admins (name) ON DELETE CASCADE,"
  "  csrf TEXT NOT NULL,"
  "  created INTEGER NOT NULL,"
  "  expires INTEGER NOT NULL"
  ");"
  "CREATE INDEX sessions_admin ON sessions (admin);"
  "CREATE INDEX sessions_expires ON sessions (expires);",
  /* 1 -> 2: the directory (issue 3). Login names and IM addresses are not
   * stored: they are name@<current domain>, so a domain change writes one row
   * in `domains`. Devices, client tokens and subscriptions keep the domain
   * generation they were made under; an older generation means "set up again"
   * or "to be created again" without touching them. */
  "CREATE TABLE domains ("
  "  generation INTEGER PRIMARY KEY,"
  "  name TEXT NOT NULL,"
  "  since TEXT NOT NULL,"
  "  actor TEXT NOT NULL"
  ");"
  "CREATE INDEX domains_name ON domains (name);"
  "CREATE TABLE users ("
  "  id INTEGER PRIMARY KEY,"
  "  name TEXT NOT NULL UNIQUE,"
  "  display_name TEXT,"
  "  windows_account TEXT UNIQUE COLLATE NOCASE,"
  "  password_hash TEXT,"
  "  enabled INTEGER NOT NULL DEFAULT 1,"
  "  created_at TEXT NOT NULL,"
  "  updated_at TEXT NOT NULL"
  ");"
  "CREATE TABLE devices ("
  "  user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,"
  "  device_id TEXT NOT NULL,"
  "  platform TEXT NOT NULL,"
  "  push_token TEXT,"
  "  login TEXT NOT NULL," /* the login name used, as typed then */
  "  generation INTEGER NOT NULL,"
  "  created_at TEXT NOT NULL,"
  "  updated_at TEXT NOT NULL,"
  "  PRIMARY KEY (user_id, device_id)"
  ");"
  "CREATE INDEX devices_generation ON devices (generation);"
  "CREATE TABLE client_tokens ("
  "  token_hash TEXT PRIMARY KEY,"
  "  user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,"
  "  device_id TEXT," /* NULL for a desktop login */
  "  generation INTEGER NOT NULL,"
  "  created INTEGER NOT NULL,"
  "  expires INTEGER NOT NULL"
  ");"
  "CREATE INDEX client_tokens_user ON client_tokens (user_id, device_id);"
  "CREATE TABLE subscriptions ("
  "  id INTEGER PRIMARY KEY,"
  "  user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,"
  "  remote TEXT NOT NULL,"
  "  state TEXT NOT NULL CHECK (state IN ('active', 'pending', 'to-be-recreated')),"
  "  generation INTEGER NOT NULL,"
  "  created_at TEXT NOT NULL,"
  "  UNIQUE (user_id, remote)"
  ");"
  "CREATE TABLE contacts ("
  "  id INTEGER PRIMARY KEY,"
  "  user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,"
  "  remote TEXT NOT NULL,"
  "  display_name TEXT,"
  "  created_at TEXT NOT NULL,"
  "  UNIQUE (user_id, remote)"
  ");",
  /* 2 -> 3: notification preferences per user and channel (issue 6, the UM
   * settings page); a missing row means the defaults. */
  "CREATE TABLE user_notifications ("
  "  user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,"
  "  channel TEXT NOT NULL CHECK (channel IN ('voicemail', 'fax', 'sms')),"
  "  notify INTEGER NOT NULL,"
  "  email TEXT NOT NULL,"
  "  attach INTEGER NOT NULL,"
  "  updated_at TEXT NOT NULL,"
  "  PRIMARY KEY (user_id, channel)"
  ");",
};

#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

int store_code_schema_version(void) { return SCHEMA_VERSION; }

/* ---- errors ------------------------------------------------------------------ */

static void set_error(store_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_error(store_t *s, const char *fmt, ...) {
  va_list ap;
  pthread_mutex_lock(&s->err_lock);
  va_start(ap, fmt);
  vsnprintf(s->last_error, sizeof(s->last_error), fmt, ap);
  va_end(ap);
  pthread_mutex_unlock(&s->err_lock);
}

/* Records a failed SQLite call (the caller holds the lock, so the connection's
 * message is still the one for this call) and maps it to an errno code. */
static int fail(store_t *s, int rc) {
  atomic_fetch_add(&s->errors, 1);
  set_error(s, "%s", sqlite3_errmsg(s->db));
  switch (rc) {
  case SQLITE_CONSTRAINT_PRIMARYKEY:
  case SQLITE_CONSTRAINT_UNIQUE:
    return -EEXIST;
  case SQLITE_CONSTRAINT_FOREIGNKEY:
  case SQLITE_CONSTRAINT_NOTNULL:
  case SQLITE_CONSTRAINT_CHECK:
    return -EINVAL;
  default:
    return -EIO;
  }
}

const char *store_last_error(store_t *s) {
  /* A copy per thread: the store's buffer may be overwritten by another
   * thread's failure while the caller is still formatting this one. */
  static _Thread_local char copy[512];
  if (!s)
    return "no store";
  pthread_mutex_lock(&s->err_lock);
  memcpy(copy, s->last_error, sizeof(copy));
  pthread_mutex_unlock(&s->err_lock);
  return copy;
}

uint64_t store_error_count(store_t *s) {
  return s ? (uint64_t)atomic_load(&s->errors) : 0;
}

/* ---- small helpers ------------------------------------------------------------ */

void store_now_rfc3339(char out[32]) {
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out + n, 32 - n, ".%03ldZ", ts.tv_nsec / 1000000L);
}

static int prepare(store_t *s, const char *sql, sqlite3_stmt **st) {
  int rc = sqlite3_prepare_v2(s->db, sql, -1, st, NULL);
  if (rc != SQLITE_OK) {
    *st = NULL;
    return fail(s, rc);
  }
  return 0;
}

static int bind_texts(store_t *s, sqlite3_stmt *st, int n, const char *const *texts) {
  for (int i = 0; i < n; i++) {
    int rc = texts[i] ? sqlite3_bind_text(st, i + 1, texts[i], -1, SQLITE_STATIC)
                      : sqlite3_bind_null(st, i + 1);
    if (rc != SQLITE_OK)
      return fail(s, rc);
  }
  return 0;
}

/* Runs a statement that returns no rows, with text (or NULL) parameters. */
static int run_texts(store_t *s, const char *sql, int n, const char *const *texts) {
  sqlite3_stmt *st;
  int r = prepare(s, sql, &st);
  if (r < 0)
    return r;
  r = bind_texts(s, st, n, texts);
  if (r == 0) {
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
      r = fail(s, sqlite3_extended_errcode(s->db));
  }
  sqlite3_finalize(st);
  return r;
}

static int exec(store_t *s, const char *sql) {
  int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
  return rc == SQLITE_OK ? 0 : fail(s, sqlite3_extended_errcode(s->db));
}

/* For a query returning one integer (count(*), PRAGMA user_version, ...). */
static int query_int(store_t *s, const char *sql, int64_t *out) {
  sqlite3_stmt *st;
  int r = prepare(s, sql, &st);
  if (r < 0)
    return r;
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW)
    *out = sqlite3_column_int64(st, 0);
  else if (rc == SQLITE_DONE)
    r = -ENOENT;
  else
    r = fail(s, sqlite3_extended_errcode(s->db));
  sqlite3_finalize(st);
  return r;
}

/* One text column of one row, malloc'd; -ENOENT when there is no row. */
static int query_text(store_t *s, const char *sql, const char *param, char **out) {
  sqlite3_stmt *st;
  *out = NULL;
  int r = prepare(s, sql, &st);
  if (r < 0)
    return r;
  r = bind_texts(s, st, 1, &param);
  if (r == 0) {
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
      const char *v = (const char *)sqlite3_column_text(st, 0);
      *out = strdup(v ? v : "");
      if (!*out)
        r = -ENOMEM;
    } else if (rc == SQLITE_DONE) {
      r = -ENOENT;
    } else {
      r = fail(s, sqlite3_extended_errcode(s->db));
    }
  }
  sqlite3_finalize(st);
  return r;
}

/* ---- open, migrate, close ---------------------------------------------------- */

static int migrate(store_t *s, char *err, size_t errlen) {
  for (;;) {
    /* Read the version inside the write transaction so that two processes
     * opening the same store cannot both run a step. */
    int r = exec(s, "BEGIN IMMEDIATE");
    if (r < 0)
      goto failed;
    int64_t v;
    r = query_int(s, "PRAGMA user_version", &v);
    if (r < 0) {
      store_rollback(s);
      goto failed;
    }
    if (v > SCHEMA_VERSION) {
      store_rollback(s);
      snprintf(err, errlen,
               "the store %s has schema version %" PRId64 " but this atriumd knows only up to %d: "
               "it was written by a newer Atrium; run that version, or restore a backup taken "
               "before the upgrade",
               s->path, v, SCHEMA_VERSION);
      return -EPROTO;
    }
    if (v == SCHEMA_VERSION) {
      store_rollback(s);
      s->schema_version = (int)v;
      return 0;
    }
    char bump[64];
    snprintf(bump, sizeof(bump), "PRAGMA user_version = %d", (int)v + 1);
    if ((r = exec(s, migrations[v])) < 0 || (r = exec(s, bump)) < 0 ||
        (r = store_commit(s)) < 0) {
      store_rollback(s);
      snprintf(err, errlen,
               "cannot upgrade the store %s from schema version %" PRId64 " to %" PRId64
               ": %s; check that the disk is not full and the file is writable, then start again "
               "(the store is left at version %" PRId64 ")",
               s->path, v, v + 1, s->last_error, v);
      return r;
    }
  }
failed:
  snprintf(err, errlen,
           "cannot read the schema version of the store %s: %s; check that it is an Atrium store "
           "and not damaged (PRAGMA integrity_check), or restore it from a backup",
           s->path, s->last_error);
  return -EIO;
}

/* PRAGMA statements that report their result as a row (journal_mode). */
static int pragma_text(store_t *s, const char *sql, char *out, size_t outlen) {
  sqlite3_stmt *st;
  int r = prepare(s, sql, &st);
  if (r < 0)
    return r;
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    const char *v = (const char *)sqlite3_column_text(st, 0);
    snprintf(out, outlen, "%s", v ? v : "");
  } else {
    r = fail(s, sqlite3_extended_errcode(s->db));
  }
  sqlite3_finalize(st);
  return r;
}

static int configure(store_t *s, char *err, size_t errlen) {
  /* busy_timeout first, so that switching to WAL waits for another process
   * holding a lock instead of failing at once. */
  sqlite3_busy_timeout(s->db, 5000);
  char mode[16];
  int r = pragma_text(s, "PRAGMA journal_mode = WAL", mode, sizeof(mode));
  if (r < 0) {
    int code = sqlite3_errcode(s->db) & 0xff;
    if (code == SQLITE_NOTADB || code == SQLITE_CORRUPT)
      snprintf(err, errlen,
               "the file %s is not an SQLite database or is damaged (%s); restore it from a backup "
               "or move it away to start with an empty store",
               s->path, s->last_error);
    else
      snprintf(err, errlen,
               "cannot use the store %s: %s; check the permissions of the file and of its "
               "directory (atriumd creates %s-wal and %s-shm beside it) and that the disk is not "
               "full",
               s->path, s->last_error, s->path, s->path);
    return r;
  }
  if (strcmp(mode, "wal") != 0) {
    snprintf(err, errlen,
             "the store %s cannot use write-ahead logging (journal mode stayed \"%s\"); put the "
             "data directory on a local file system that supports shared memory",
             s->path, mode);
    return -ENOTSUP;
  }
  if ((r = exec(s, "PRAGMA synchronous = FULL")) < 0 ||
      (r = exec(s, "PRAGMA foreign_keys = ON")) < 0) {
    snprintf(err, errlen, "cannot configure the store %s: %s", s->path, s->last_error);
    return r;
  }
  return 0;
}

int store_open(const char *data_dir, store_t **out, char *err, size_t errlen) {
  *out = NULL;
  if (errlen)
    err[0] = '\0';
  store_t *s = calloc(1, sizeof(*s));
  if (!s) {
    snprintf(err, errlen, "out of memory opening the store");
    return -ENOMEM;
  }
  pthread_mutex_init(&s->lock, NULL);
  pthread_mutex_init(&s->err_lock, NULL);
  atomic_init(&s->errors, 0);
  int n = snprintf(s->path, sizeof(s->path), "%s/%s", data_dir, STORE_FILE_NAME);
  if (n < 0 || (size_t)n >= sizeof(s->path)) {
    snprintf(err, errlen, "the data directory path %s is too long", data_dir);
    store_close(s);
    return -ENAMETOOLONG;
  }

  /* Created here rather than by SQLite so that it is 0600 whatever the umask:
   * it holds password hashes and session hashes. SQLite gives the -wal and
   * -shm files the mode of the database file. */
  int fd = open(s->path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    int e = errno;
    snprintf(err, errlen,
             "cannot open the store %s: %s; check that the data directory exists, that the user "
             "running atriumd has permission to write to it and to the file, and that the disk "
             "is not full",
             s->path, strerror(e));
    store_close(s);
    return -e;
  }
  close(fd);

  int rc = sqlite3_open_v2(s->path, &s->db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                           NULL);
  if (rc != SQLITE_OK) {
    int e = s->db ? sqlite3_system_errno(s->db) : 0;
    snprintf(err, errlen,
             "cannot open the store %s: %s%s%s; check the permissions of the file and of the "
             "data directory, and that the disk is not full",
             s->path, s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc), e ? ": " : "",
             e ? strerror(e) : "");
    atomic_fetch_add(&s->errors, 1);
    store_close(s);
    return -EIO;
  }
  sqlite3_extended_result_codes(s->db, 1);

  int r = configure(s, err, errlen);
  if (r == 0)
    r = migrate(s, err, errlen);
  if (r < 0) {
    store_close(s);
    return r;
  }
  *out = s;
  return 0;
}

void store_close(store_t *s) {
  if (!s)
    return;
  if (s->db)
    sqlite3_close_v2(s->db); /* the last connection checkpoints and removes the -wal file */
  pthread_mutex_destroy(&s->err_lock);
  pthread_mutex_destroy(&s->lock);
  free(s);
}

void store_lock(store_t *s) { pthread_mutex_lock(&s->lock); }

void store_unlock(store_t *s) { pthread_mutex_unlock(&s->lock); }

int store_begin(store_t *s) { return exec(s, "BEGIN IMMEDIATE"); }

int store_commit(store_t *s) {
  int r = exec(s, "COMMIT");
  /* A failed COMMIT (SQLITE_BUSY, disk full) can leave the transaction open;
   * roll it back so the connection is usable and nothing half-done lingers. */
  if (r < 0 && !sqlite3_get_autocommit(s->db))
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
  return r;
}

void store_rollback(store_t *s) {
  /* Safe to call when SQLite already rolled back on its own (some errors do). */
  if (!sqlite3_get_autocommit(s->db))
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

int store_schema_version(store_t *s) { return s->schema_version; }

struct sqlite3 *store_db(store_t *s) { return s->db; }

int store_integrity_check(store_t *s) {
  store_lock(s);
  char result[256];
  int r = pragma_text(s, "PRAGMA integrity_check", result, sizeof(result));
  if (r == 0 && strcmp(result, "ok") != 0) {
    set_error(s, "integrity check: %s", result);
    r = -EIO;
  }
  store_unlock(s);
  return r;
}

/* ---- settings ------------------------------------------------------------------ */

int store_settings_load(store_t *s, json_t **values, uint64_t *version) {
  *values = NULL;
  json_t *obj = json_object();
  if (!obj)
    return -ENOMEM;
  store_lock(s);
  /* One read transaction, so the version matches the rows. */
  int r = exec(s, "BEGIN");
  if (r < 0)
    goto out;
  int64_t v = 0;
  r = query_int(s, "SELECT version FROM settings_state WHERE id = 1", &v);
  if (r == -ENOENT) {
    v = 0;
    r = 0;
  }
  if (r < 0)
    goto out;
  sqlite3_stmt *st;
  if ((r = prepare(s, "SELECT key, value FROM settings ORDER BY key", &st)) < 0)
    goto out;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const char *key = (const char *)sqlite3_column_text(st, 0);
    const char *text = (const char *)sqlite3_column_text(st, 1);
    json_error_t jerr;
    json_t *val = json_loads(text ? text : "", JSON_DECODE_ANY, &jerr);
    if (!val) {
      atomic_fetch_add(&s->errors, 1);
      set_error(s, "stored setting %s is not valid JSON: %s", key ? key : "?", jerr.text);
      r = -EIO;
      break;
    }
    if (json_object_set_new(obj, key ? key : "", val) < 0) {
      r = -ENOMEM;
      break;
    }
  }
  if (r == 0 && rc != SQLITE_DONE)
    r = fail(s, sqlite3_extended_errcode(s->db));
  sqlite3_finalize(st);
out:
  store_rollback(s); /* ends the read transaction */
  store_unlock(s);
  if (r < 0) {
    json_decref(obj);
    return r;
  }
  *values = obj;
  *version = (uint64_t)v;
  return 0;
}

int store_settings_put(store_t *s, const char *key, const char *value_json) {
  /* A value that does not parse would make every later start fail. */
  json_t *check = json_loads(value_json, JSON_DECODE_ANY, NULL);
  if (!check)
    return -EINVAL;
  json_decref(check);
  char now[32];
  store_now_rfc3339(now);
  const char *p[] = {key, value_json, now};
  return run_texts(s,
                   "INSERT INTO settings (key, value, updated_at) VALUES (?1, ?2, ?3) "
                   "ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
                   "updated_at = excluded.updated_at",
                   3, p);
}

int store_settings_delete(store_t *s, const char *key) {
  return run_texts(s, "DELETE FROM settings WHERE key = ?1", 1, &key);
}

int store_settings_set_version(store_t *s, uint64_t version) {
  if (version > INT64_MAX)
    return -ERANGE;
  char sql[96];
  snprintf(sql, sizeof(sql),
           "INSERT OR REPLACE INTO settings_state (id, version) VALUES (1, %" PRIu64 ")", version);
  return exec(s, sql);
}

/* ---- meta ---------------------------------------------------------------------- */

int store_meta_get(store_t *s, const char *name, char **value) {
  store_lock(s);
  int r = query_text(s, "SELECT value FROM meta WHERE name = ?1", name, value);
  store_unlock(s);
  return r;
}

int store_meta_put(store_t *s, const char *name, const char *value) {
  const char *p[] = {name, value};
  return run_texts(s, "INSERT OR REPLACE INTO meta (name, value) VALUES (?1, ?2)", 2, p);
}

/* ---- audit ---------------------------------------------------------------------- */

int store_audit_add(store_t *s, const char *actor, const char *key, const char *old_text,
                    const char *new_text) {
  char now[32];
  store_now_rfc3339(now);
  const char *p[] = {now, actor, key, old_text, new_text};
  return run_texts(s, "INSERT INTO audit (time, actor, key, old, new) VALUES (?1, ?2, ?3, ?4, ?5)",
                   5, p);
}

/* NULL column -> JSON null; text that is not UTF-8 (written by hand into the
 * database) is shown as null rather than failing the whole page. */
static json_t *column_json(sqlite3_stmt *st, int col) {
  if (sqlite3_column_type(st, col) == SQLITE_NULL)
    return json_null();
  const char *t = (const char *)sqlite3_column_text(st, col);
  json_t *j = json_stringn(t ? t : "", (size_t)sqlite3_column_bytes(st, col));
  return j ? j : json_null();
}

int store_audit_list(store_t *s, int64_t offset, int64_t limit, json_t **out) {
  *out = NULL;
  if (offset < 0)
    offset = 0;
  if (limit < 1)
    limit = 1;
  if (limit > AUDIT_LIMIT_MAX)
    limit = AUDIT_LIMIT_MAX;
  json_t *entries = json_array();
  if (!entries)
    return -ENOMEM;

  store_lock(s);
  /* One read transaction: the total and the page describe the same log. */
  int64_t total = 0;
  int r = exec(s, "BEGIN");
  if (r < 0)
    goto out;
  if ((r = query_int(s, "SELECT count(*) FROM audit", &total)) < 0)
    goto out;
  sqlite3_stmt *st;
  if ((r = prepare(s,
                   "SELECT id, time, actor, key, old, new FROM audit "
                   "ORDER BY id DESC LIMIT ?1 OFFSET ?2",
                   &st)) < 0)
    goto out;
  sqlite3_bind_int64(st, 1, limit);
  sqlite3_bind_int64(st, 2, offset);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    json_t *e = json_pack("{s:I, s:o, s:o, s:o, s:o, s:o}", "id",
                          (json_int_t)sqlite3_column_int64(st, 0), "time", column_json(st, 1),
                          "actor", column_json(st, 2), "key", column_json(st, 3), "old",
                          column_json(st, 4), "new", column_json(st, 5));
    if (!e || json_array_append_new(entries, e) < 0) {
      r = -ENOMEM;
      break;
    }
  }
  if (r == 0 && rc != SQLITE_DONE)
    r = fail(s, sqlite3_extended_errcode(s->db));
  sqlite3_finalize(st);
out:
  store_rollback(s);
  store_unlock(s);
  if (r < 0) {
    json_decref(entries);
    return r;
  }
  *out = json_pack("{s:I, s:I, s:I, s:o}", "total", (json_int_t)total, "offset",
                   (json_int_t)offset, "limit", (json_int_t)limit, "entries", entries);
  return *out ? 0 : -ENOMEM;
}

/* ---- admins and sessions ------------------------------------------------------ */

int store_admin_count(store_t *s, int64_t *count) {
  store_lock(s);
  int r = query_int(s, "SELECT count(*) FROM admins", count);
  store_unlock(s);
  return r;
}

int store_admin_create(store_t *s, const char *name, const char *password_hash) {
  char now[32];
  store_now_rfc3339(now);
  const char *p[] = {name, password_hash, now};
  return run_texts(s, "INSERT INTO admins (name, password_hash, created_at) VALUES (?1, ?2, ?3)",
                   3, p);
}

int store_admin_get_hash(store_t *s, const char *name, char **hash) {
  store_lock(s);
  int r = query_text(s, "SELECT password_hash FROM admins WHERE name = ?1", name, hash);
  store_unlock(s);
  return r;
}

int store_session_put(store_t *s, const store_session_t *session) {
  sqlite3_stmt *st;
  store_lock(s);
  int r = prepare(s,
                  "INSERT OR REPLACE INTO sessions (token_hash, admin, csrf, created, expires) "
                  "VALUES (?1, ?2, ?3, ?4, ?5)",
                  &st);
  if (r == 0) {
    /* Bounded lengths: the fields are fixed arrays that need not be terminated. */
    sqlite3_bind_text(st, 1, session->token_hash,
                      (int)strnlen(session->token_hash, sizeof(session->token_hash)),
                      SQLITE_STATIC);
    sqlite3_bind_text(st, 2, session->admin, (int)strnlen(session->admin, sizeof(session->admin)),
                      SQLITE_STATIC);
    sqlite3_bind_text(st, 3, session->csrf, (int)strnlen(session->csrf, sizeof(session->csrf)),
                      SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, session->created);
    sqlite3_bind_int64(st, 5, session->expires);
    if (sqlite3_step(st) != SQLITE_DONE)
      r = fail(s, sqlite3_extended_errcode(s->db));
    sqlite3_finalize(st);
  }
  store_unlock(s);
  return r;
}

int store_session_delete(store_t *s, const char *token_hash) {
  store_lock(s);
  int r = run_texts(s, "DELETE FROM sessions WHERE token_hash = ?1", 1, &token_hash);
  store_unlock(s);
  return r;
}

/* Copies a column into a fixed field; false when it does not fit. */
static bool copy_field(char *dst, size_t dstlen, sqlite3_stmt *st, int col) {
  const char *t = (const char *)sqlite3_column_text(st, col);
  int n = sqlite3_column_bytes(st, col);
  if (!t || n < 0 || (size_t)n >= dstlen)
    return false;
  memcpy(dst, t, (size_t)n);
  dst[n] = '\0';
  return true;
}

int store_session_load_all(store_t *s, int64_t now, void (*fn)(const store_session_t *, void *),
                           void *ctx) {
  store_session_t *list = NULL;
  size_t count = 0, cap = 0;
  sqlite3_stmt *st = NULL;

  store_lock(s);
  int r = store_begin(s);
  if (r < 0)
    goto out;
  char sql[96];
  snprintf(sql, sizeof(sql), "DELETE FROM sessions WHERE expires <= %" PRId64, now);
  if ((r = exec(s, sql)) < 0)
    goto out;
  if ((r = prepare(s, "SELECT token_hash, admin, csrf, created, expires FROM sessions", &st)) < 0)
    goto out;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (count == cap) {
      size_t ncap = cap ? cap * 2 : 16;
      store_session_t *nl = realloc(list, ncap * sizeof(*list));
      if (!nl) {
        r = -ENOMEM;
        break;
      }
      list = nl;
      cap = ncap;
    }
    store_session_t *e = &list[count];
    memset(e, 0, sizeof(*e));
    /* A row that does not fit the fixed fields was not written by this code;
     * skipping it only means that session has to log in again. */
    if (!copy_field(e->token_hash, sizeof(e->token_hash), st, 0) ||
        !copy_field(e->admin, sizeof(e->admin), st, 1) ||
        !copy_field(e->csrf, sizeof(e->csrf), st, 2))
      continue;
    e->created = sqlite3_column_int64(st, 3);
    e->expires = sqlite3_column_int64(st, 4);
    count++;
  }
  if (r == 0 && rc != SQLITE_DONE)
    r = fail(s, sqlite3_extended_errcode(s->db));
  sqlite3_finalize(st);
  if (r == 0)
    r = store_commit(s);
out:
  if (r < 0)
    store_rollback(s);
  store_unlock(s);
  /* Called without the lock, so fn may use the store. */
  if (r == 0)
    for (size_t i = 0; i < count; i++)
      fn(&list[i], ctx);
  free(list);
  return r;
}
