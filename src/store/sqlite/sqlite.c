/* The SQLite backend: connection, migrations, transactions and helpers.
 * The operations are in config.c (settings, audit, admins) and directory.c
 * (users, devices, tokens, federation data). */
#include "store/sqlite/sqlite.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/sqlite/internal.h"

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
    /* 3 -> 4: chat messages, the journal and users' own contact lists (the
     * real-time core). A conversation is keyed by its two local users or by
     * a local user and a federated address, so history is one index range.
     * Pending messages (no client received them yet) have a partial index of
     * their own: offline delivery reads only those. */
    "CREATE TABLE messages ("
    "  id INTEGER PRIMARY KEY,"
    "  sender INTEGER REFERENCES users (id) ON DELETE CASCADE,"
    "  sender_remote TEXT,"
    "  recipient INTEGER REFERENCES users (id) ON DELETE CASCADE,"
    "  recipient_remote TEXT,"
    "  conv TEXT NOT NULL,"
    "  text TEXT NOT NULL,"
    "  time TEXT NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  delivered_at TEXT,"
    "  read_at TEXT,"
    "  CHECK ((sender IS NULL) <> (sender_remote IS NULL)),"
    "  CHECK ((recipient IS NULL) <> (recipient_remote IS NULL))"
    ");"
    "CREATE INDEX messages_conv ON messages (conv, id);"
    "CREATE INDEX messages_pending ON messages (recipient, id) WHERE delivered_at IS NULL;"
    "CREATE INDEX messages_created ON messages (created_ms);"
    "CREATE TABLE journal ("
    "  id INTEGER PRIMARY KEY,"
    "  user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,"
    "  kind TEXT NOT NULL CHECK (kind IN ('chat', 'call', 'meeting')),"
    "  direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),"
    "  peer TEXT NOT NULL,"
    "  started TEXT NOT NULL,"
    "  day TEXT," /* chats: one entry per peer and day */
    "  duration_s INTEGER,"
    "  answered INTEGER,"
    "  messages INTEGER NOT NULL DEFAULT 0,"
    "  created_ms INTEGER NOT NULL,"
    "  UNIQUE (user_id, kind, peer, day)"
    ");"
    "CREATE INDEX journal_user ON journal (user_id, id);"
    "CREATE INDEX journal_created ON journal (created_ms);"
    "CREATE TABLE roster ("
    "  user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,"
    "  entry TEXT NOT NULL," /* "u:<id>" or "r:<address>": one key for both kinds */
    "  contact INTEGER REFERENCES users (id) ON DELETE CASCADE,"
    "  remote TEXT,"
    "  created_at TEXT NOT NULL,"
    "  PRIMARY KEY (user_id, entry)"
    ");",
    /* 4 -> 5: several admin accounts (disabled ones cannot log in), and an
     * audit log of every admin action, not only settings: what happened
     * (action), from where (address), filtered by actor, key and time. */
    "ALTER TABLE admins ADD COLUMN enabled INTEGER NOT NULL DEFAULT 1;"
    "ALTER TABLE admins ADD COLUMN password_changed_at TEXT;"
    "ALTER TABLE audit ADD COLUMN action TEXT NOT NULL DEFAULT 'setting';"
    "ALTER TABLE audit ADD COLUMN address TEXT;"
    "UPDATE audit SET action = 'domain.change' WHERE key = 'domain.change';"
    "CREATE INDEX audit_actor ON audit (actor, id);"
    "CREATE INDEX audit_key ON audit (key, id);"
    "CREATE INDEX audit_action ON audit (action, id);",
    /* 5 -> 6: push notifications. A device's push token keeps when it was
     * registered (a provider's "unregistered since" is compared with it).
     * The outbox holds every notification from the transaction of its event
     * until it is sent, given up, or cancelled by a read; a lease (owner and
     * time) marks what a sender is working on, so that a crash leaves
     * nothing taken for good. */
    "ALTER TABLE devices ADD COLUMN push_registered_ms INTEGER NOT NULL DEFAULT 0;"
    "CREATE TABLE push_outbox ("
    "  id INTEGER PRIMARY KEY,"
    "  user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,"
    "  device_id TEXT NOT NULL,"
    "  platform TEXT NOT NULL,"
    "  push_token TEXT NOT NULL,"
    "  kind TEXT NOT NULL CHECK (kind IN ('message', 'call', 'clear', 'test')),"
    "  ref_id INTEGER NOT NULL,"
    "  peer_id INTEGER NOT NULL,"
    "  payload TEXT NOT NULL,"
    "  apns_id TEXT NOT NULL,"
    "  collapse_id TEXT NOT NULL,"
    "  push_type TEXT NOT NULL,"
    "  priority INTEGER NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  expires_ms INTEGER NOT NULL,"
    "  next_ms INTEGER NOT NULL,"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  lease_ms INTEGER NOT NULL DEFAULT 0,"
    "  lease_owner TEXT,"
    "  state TEXT NOT NULL DEFAULT 'pending' "
    "    CHECK (state IN ('pending', 'sent', 'failed', 'cancelled')),"
    "  reason TEXT,"
    "  done_ms INTEGER,"
    "  cleared INTEGER NOT NULL DEFAULT 0,"
    "  fetched_ms INTEGER NOT NULL DEFAULT 0"
    ");"
    "CREATE INDEX push_outbox_due ON push_outbox (next_ms) WHERE state = 'pending';"
    "CREATE INDEX push_outbox_conv ON push_outbox (user_id, peer_id, ref_id) "
    "  WHERE kind = 'message';"
    "CREATE INDEX push_outbox_done ON push_outbox (done_ms) WHERE state <> 'pending';",
    /* 6 -> 7: web meetings. The id is the unguessable part of the join link;
     * a meeting that started and has no end was running when the server
     * stopped, and is ended at the next start. */
    "CREATE TABLE meetings ("
    "  id TEXT PRIMARY KEY,"
    "  host_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,"
    "  title TEXT NOT NULL,"
    "  starts_at TEXT,"
    "  created_at TEXT NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  started_at TEXT,"
    "  ended_at TEXT,"
    "  end_reason TEXT"
    ");"
    "CREATE INDEX meetings_host ON meetings (host_id, created_ms);"
    "CREATE INDEX meetings_open ON meetings (created_ms) WHERE started_at IS NOT NULL AND "
    "ended_at IS NULL;",
    /* 7 -> 8: the cluster: a row per node (its heartbeat and the settings
     * it has in force) and the meeting host's epoch. */
    "CREATE TABLE nodes ("
    "  name TEXT PRIMARY KEY,"
    "  url TEXT NOT NULL,"
    "  atrium_version TEXT NOT NULL,"
    "  settings_version INTEGER NOT NULL,"
    "  settings_hash TEXT NOT NULL,"
    "  started_ms INTEGER NOT NULL,"
    "  heartbeat_ms INTEGER NOT NULL"
    ");"
    "CREATE TABLE meeting_host ("
    "  id INTEGER PRIMARY KEY CHECK (id = 1),"
    "  epoch INTEGER NOT NULL,"
    "  node TEXT,"
    "  since TEXT"
    ");"
    "INSERT INTO meeting_host (id, epoch) VALUES (1, 0);"
    /* The real-time core's WebSocket tickets, when any node may take them. */
    "CREATE TABLE ws_tickets ("
    "  hash TEXT PRIMARY KEY,"
    "  user_name TEXT NOT NULL,"
    "  mobile INTEGER NOT NULL,"
    "  client TEXT NOT NULL,"
    "  expires INTEGER NOT NULL"
    ");"
    "CREATE INDEX ws_tickets_expires ON ws_tickets (expires);",
    /* 8 -> 9: users' profile pictures, a row of their own so that listing
     * users does not read the bytes. */
    "CREATE TABLE user_pictures ("
    "  user_id INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,"
    "  etag TEXT NOT NULL,"
    "  data BLOB NOT NULL,"
    "  updated_at TEXT NOT NULL"
    ");",
};

#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

/* ---- helpers ------------------------------------------------------------------------ */

static int map_code(int rc) {
  switch (rc) {
  case SQLITE_CONSTRAINT_PRIMARYKEY:
  case SQLITE_CONSTRAINT_UNIQUE: return -EEXIST;
  case SQLITE_CONSTRAINT_FOREIGNKEY:
  case SQLITE_CONSTRAINT_NOTNULL:
  case SQLITE_CONSTRAINT_CHECK: return -EINVAL;
  default: break;
  }
  switch (rc & 0xff) {
  case SQLITE_BUSY:
  case SQLITE_LOCKED: return -EAGAIN;
  case SQLITE_NOMEM: return -ENOMEM;
  case SQLITE_CONSTRAINT: return -EINVAL;
  default: return -EIO;
  }
}

/* A failure on the connection outside any transaction (open, migrate). */
static int sq_conn_fail(sq_t *q, const char *what) {
  int code = map_code(sqlite3_extended_errcode(q->db));
  return store_backend_failed(q->store, code, "%s: %s", what, sqlite3_errmsg(q->db));
}

int sq_fail(store_txn_t *t) {
  sq_t *q = sq_of(t);
  int code = map_code(sqlite3_extended_errcode(q->db));
  /* A taken name or a missing reference is an answer the caller expects,
   * not a failure of the database. */
  if (code == -EEXIST || code == -EINVAL) return code;
  return store_backend_failed(q->store, code, "%s: %s", t->name, sqlite3_errmsg(q->db));
}

sqlite3_stmt *sq_prepare(store_txn_t *t, const char *sql) {
  sq_t *q = sq_of(t);
  for (size_t i = 0; i < q->ncache; i++)
    if (q->cache[i].sql == sql) {
      sqlite3_reset(q->cache[i].st);
      sqlite3_clear_bindings(q->cache[i].st);
      return q->cache[i].st;
    }
  sqlite3_stmt *st = NULL;
  unsigned flags = q->ncache < SQ_CACHE_MAX ? SQLITE_PREPARE_PERSISTENT : 0;
  if (sqlite3_prepare_v3(q->db, sql, -1, flags, &st, NULL) != SQLITE_OK) {
    store_backend_failed(q->store, -EIO, "%s: %s", t->name, sqlite3_errmsg(q->db));
    return NULL;
  }
  if (q->ncache < SQ_CACHE_MAX) {
    q->cache[q->ncache].sql = sql;
    q->cache[q->ncache].st = st;
    q->ncache++;
  } else {
    /* More distinct statements than the cache holds means a statement is
     * built at run time: a programming error, not something to cache. */
    store_backend_failed(q->store, -EIO, "%s: the statement cache is full", t->name);
    sqlite3_finalize(st);
    return NULL;
  }
  return st;
}

int sq_done(store_txn_t *t, sqlite3_stmt *st) {
  int r = sqlite3_step(st) == SQLITE_DONE ? 0 : sq_fail(t);
  sqlite3_reset(st);
  return r;
}

int sq_step(store_txn_t *t, sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) return 1;
  if (rc == SQLITE_DONE) return 0;
  int r = sq_fail(t);
  sqlite3_reset(st);
  return r;
}

int sq_exec(store_txn_t *t, const char *sql) {
  return sqlite3_exec(sq_of(t)->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : sq_fail(t);
}

int sq_int(store_txn_t *t, const char *sql, int64_t param, int64_t *out) {
  sqlite3_stmt *st = sq_prepare(t, sql);
  if (!st) return -EIO;
  if (sqlite3_bind_parameter_count(st) > 0) sqlite3_bind_int64(st, 1, param);
  int r = sq_step(t, st);
  *out = r == 1 ? sqlite3_column_int64(st, 0) : 0;
  sqlite3_reset(st);
  return r < 0 ? r : 0;
}

void sq_bind_text(sqlite3_stmt *st, int i, const char *s) {
  if (s)
    sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
  else
    sqlite3_bind_null(st, i);
}

void sq_copy(char *dst, size_t len, sqlite3_stmt *st, int col) {
  const char *v = (const char *)sqlite3_column_text(st, col);
  size_t n = v ? (size_t)sqlite3_column_bytes(st, col) : 0;
  if (n >= len) n = len - 1;
  if (n) memcpy(dst, v, n);
  dst[n] = '\0';
}

json_t *sq_json(sqlite3_stmt *st, int col) {
  if (sqlite3_column_type(st, col) == SQLITE_NULL) return json_null();
  const char *t = (const char *)sqlite3_column_text(st, col);
  json_t *j = json_stringn(t ? t : "", (size_t)sqlite3_column_bytes(st, col));
  return j ? j : json_null();
}

char *sq_strdup(sqlite3_stmt *st, int col, int *r) {
  if (sqlite3_column_type(st, col) == SQLITE_NULL) return NULL;
  const char *v = (const char *)sqlite3_column_text(st, col);
  char *c = strdup(v ? v : "");
  if (!c) *r = -ENOMEM;
  return c;
}

/* ---- open, migrate, close ------------------------------------------------------------ */

static int conn_exec(sq_t *q, const char *sql) {
  return sqlite3_exec(q->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : sq_conn_fail(q, sql);
}

static int conn_int(sq_t *q, const char *sql, int64_t *out) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(q->db, sql, -1, &st, NULL) != SQLITE_OK) return sq_conn_fail(q, sql);
  int rc = sqlite3_step(st), r = 0;
  if (rc == SQLITE_ROW)
    *out = sqlite3_column_int64(st, 0);
  else
    r = rc == SQLITE_DONE ? -ENOENT : sq_conn_fail(q, sql);
  sqlite3_finalize(st);
  return r;
}

/* PRAGMA statements that report their result as a row (journal_mode). */
static int conn_text(sq_t *q, const char *sql, char *out, size_t outlen) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(q->db, sql, -1, &st, NULL) != SQLITE_OK) return sq_conn_fail(q, sql);
  int r = 0;
  if (sqlite3_step(st) == SQLITE_ROW) {
    const char *v = (const char *)sqlite3_column_text(st, 0);
    snprintf(out, outlen, "%s", v ? v : "");
  } else {
    r = sq_conn_fail(q, sql);
  }
  sqlite3_finalize(st);
  return r;
}

static void conn_rollback(sq_t *q) {
  /* Safe when SQLite already rolled back on its own (some errors do). */
  if (!sqlite3_get_autocommit(q->db)) sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
}

static int migrate(sq_t *q, char *err, size_t errlen) {
  for (;;) {
    /* Read the version inside the write transaction so that two processes
     * opening the same store cannot both run a step. */
    int64_t v = 0;
    int r = conn_exec(q, "BEGIN IMMEDIATE");
    if (r == 0) r = conn_int(q, "PRAGMA user_version", &v);
    if (r < 0) {
      conn_rollback(q);
      snprintf(err, errlen,
               "cannot read the schema version of the store %s: %s; check that it is an Atrium "
               "store and not damaged (PRAGMA integrity_check), or restore it from a backup",
               q->path, sqlite3_errmsg(q->db));
      return -EIO;
    }
    if (v > SCHEMA_VERSION) {
      conn_rollback(q);
      snprintf(err, errlen,
               "the store %s has schema version %" PRId64 " but this atriumd knows only up to %d: "
               "it was written by a newer Atrium; run that version, or restore a backup taken "
               "before the upgrade",
               q->path, v, SCHEMA_VERSION);
      return -EPROTO;
    }
    if (v == SCHEMA_VERSION) {
      conn_rollback(q);
      q->schema_version = (int)v;
      return 0;
    }
    char bump[64];
    snprintf(bump, sizeof bump, "PRAGMA user_version = %d", (int)v + 1);
    if ((r = conn_exec(q, migrations[v])) < 0 || (r = conn_exec(q, bump)) < 0 ||
        (r = conn_exec(q, "COMMIT")) < 0) {
      char msg[256];
      snprintf(msg, sizeof msg, "%s", sqlite3_errmsg(q->db));
      conn_rollback(q);
      snprintf(err, errlen,
               "cannot upgrade the store %s from schema version %" PRId64 " to %" PRId64
               ": %s; check that the disk is not full and the file is writable, then start again "
               "(the store is left at version %" PRId64 ")",
               q->path, v, v + 1, msg, v);
      return r;
    }
  }
}

static int configure(sq_t *q, char *err, size_t errlen) {
  /* busy_timeout first, so that switching to WAL waits for another process
   * holding a lock instead of failing at once. */
  sqlite3_busy_timeout(q->db, 5000);
  char mode[16];
  int r = conn_text(q, "PRAGMA journal_mode = WAL", mode, sizeof mode);
  if (r < 0) {
    int code = sqlite3_errcode(q->db) & 0xff;
    if (code == SQLITE_NOTADB || code == SQLITE_CORRUPT)
      snprintf(err, errlen,
               "the file %s is not an SQLite database or is damaged (%s); restore it from a backup "
               "or move it away to start with an empty store",
               q->path, sqlite3_errmsg(q->db));
    else
      snprintf(err, errlen,
               "cannot use the store %s: %s; check the permissions of the file and of its "
               "directory (atriumd creates %s-wal and %s-shm beside it) and that the disk is not "
               "full",
               q->path, sqlite3_errmsg(q->db), q->path, q->path);
    return r;
  }
  if (strcmp(mode, "wal") != 0) {
    snprintf(err, errlen,
             "the store %s cannot use write-ahead logging (journal mode stayed \"%s\"); put the "
             "data directory on a local file system that supports shared memory",
             q->path, mode);
    return -ENOTSUP;
  }
  if ((r = conn_exec(q, "PRAGMA synchronous = FULL")) < 0 ||
      (r = conn_exec(q, "PRAGMA foreign_keys = ON")) < 0) {
    snprintf(err, errlen, "cannot configure the store %s: %s", q->path, sqlite3_errmsg(q->db));
    return r;
  }
  return 0;
}

static void sq_close(void *db) {
  sq_t *q = db;
  if (!q) return;
  for (size_t i = 0; i < q->ncache; i++) sqlite3_finalize(q->cache[i].st);
  if (q->db) sqlite3_close_v2(q->db); /* the last connection checkpoints and removes -wal */
  pthread_mutex_destroy(&q->lock);
  free(q);
}

static int sq_open(store_t *s, const store_options_t *opts, void **out, char *err, size_t errlen) {
  *out = NULL;
  sq_t *q = calloc(1, sizeof *q);
  if (!q) {
    snprintf(err, errlen, "out of memory opening the store");
    return -ENOMEM;
  }
  q->store = s;
  pthread_mutex_init(&q->lock, NULL);
  const char *dir = opts && opts->data_dir ? opts->data_dir : ".";
  int n = snprintf(q->path, sizeof q->path, "%s/%s", dir, STORE_SQLITE_FILE_NAME);
  if (n < 0 || (size_t)n >= sizeof q->path) {
    snprintf(err, errlen, "the data directory path %s is too long", dir);
    sq_close(q);
    return -ENAMETOOLONG;
  }
  /* Created here rather than by SQLite so that it is 0600 whatever the
   * umask: it holds password hashes and session hashes. SQLite gives the
   * -wal and -shm files the mode of the database file. */
  int fd = open(q->path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    int e = errno;
    snprintf(err, errlen,
             "cannot open the store %s: %s; check that the data directory exists, that the user "
             "running atriumd has permission to write to it and to the file, and that the disk "
             "is not full",
             q->path, strerror(e));
    sq_close(q);
    return -e;
  }
  close(fd);
  int rc = sqlite3_open_v2(
      q->path, &q->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
  if (rc != SQLITE_OK) {
    int e = q->db ? sqlite3_system_errno(q->db) : 0;
    snprintf(err, errlen,
             "cannot open the store %s: %s%s%s; check the permissions of the file and of the "
             "data directory, and that the disk is not full",
             q->path, q->db ? sqlite3_errmsg(q->db) : sqlite3_errstr(rc), e ? ": " : "",
             e ? strerror(e) : "");
    store_backend_failed(s, -EIO, "open %s: %s", q->path, sqlite3_errstr(rc));
    sq_close(q);
    return -EIO;
  }
  sqlite3_extended_result_codes(q->db, 1);
  int r = configure(q, err, errlen);
  if (r == 0) r = migrate(q, err, errlen);
  if (r < 0) {
    sq_close(q);
    return r;
  }
  *out = q;
  return 0;
}

/* ---- transactions --------------------------------------------------------------------- */

static void reset_all(sq_t *q) {
  for (size_t i = 0; i < q->ncache; i++) sqlite3_reset(q->cache[i].st);
}

static int sq_begin(void *db, bool write, void **conn) {
  sq_t *q = db;
  pthread_mutex_lock(&q->lock);
  if (sqlite3_exec(q->db, write ? "BEGIN IMMEDIATE" : "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
    int r = sq_conn_fail(q, write ? "BEGIN IMMEDIATE" : "BEGIN");
    pthread_mutex_unlock(&q->lock);
    return r;
  }
  *conn = q;
  return 0;
}

static int sq_commit(store_txn_t *t) {
  sq_t *q = sq_of(t);
  reset_all(q);
  int r = 0;
  if (sqlite3_exec(q->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
    r = sq_fail(t);
    /* A failed COMMIT (disk full, busy) can leave the transaction open; roll
     * it back so nothing half-done lingers on the connection. */
    conn_rollback(q);
  }
  pthread_mutex_unlock(&q->lock);
  return r;
}

static void sq_rollback(store_txn_t *t) {
  sq_t *q = sq_of(t);
  reset_all(q);
  conn_rollback(q);
  pthread_mutex_unlock(&q->lock);
}

static int sq_notify(store_txn_t *t, const char *channel, const char *payload) { return 0; }

static int sq_listen(void *db, const char *channel, store_listen_fn fn, void *ctx) { return 0; }

static int sq_schema(void *db) { return ((sq_t *)db)->schema_version; }

static int sq_integrity_check(void *db) {
  sq_t *q = db;
  pthread_mutex_lock(&q->lock);
  char result[256];
  int r = conn_text(q, "PRAGMA integrity_check", result, sizeof result);
  if (r == 0 && strcmp(result, "ok") != 0)
    r = store_backend_failed(q->store, -EIO, "integrity check: %s", result);
  pthread_mutex_unlock(&q->lock);
  return r;
}

/* ---- the backend ------------------------------------------------------------------------ */

static const store_backend_t backend = {
    .name = "sqlite",
    .schema_version = SCHEMA_VERSION,
    .open = sq_open,
    .close = sq_close,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .notify = sq_notify,
    .listen = sq_listen,
    .schema = sq_schema,
    .integrity_check = sq_integrity_check,
    .settings_load = sq_settings_load,
    .settings_version = sq_settings_version,
    .settings_put = sq_settings_put,
    .settings_delete = sq_settings_delete,
    .settings_set_version = sq_settings_set_version,
    .meta_get = sq_meta_get,
    .meta_put = sq_meta_put,
    .audit_add = sq_audit_add,
    .audit_list = sq_audit_list,
    .admin_count = sq_admin_count,
    .admin_create = sq_admin_create,
    .admin_get_hash = sq_admin_get_hash,
    .session_put = sq_session_put,
    .session_delete = sq_session_delete,
    .session_purge = sq_session_purge,
    .session_each = sq_session_each,
    .domain_current = sq_domain_current,
    .domain_add = sq_domain_add,
    .domain_was = sq_domain_was,
    .domain_counts = sq_domain_counts,
    .user_insert = sq_user_insert,
    .user_update = sq_user_update,
    .user_delete = sq_user_delete,
    .picture_put = sq_picture_put,
    .picture_get = sq_picture_get,
    .picture_delete = sq_picture_delete,
    .user_get = sq_user_get,
    .user_by_windows_account = sq_user_by_windows_account,
    .user_credentials = sq_user_credentials,
    .user_list = sq_user_list,
    .user_names = sq_user_names,
    .device_put = sq_device_put,
    .tokens_delete_device = sq_tokens_delete_device,
    .tokens_delete_user = sq_tokens_delete_user,
    .token_delete = sq_token_delete,
    .tokens_purge = sq_tokens_purge,
    .token_put = sq_token_put,
    .token_find = sq_token_find,
    .user_clients = sq_user_clients,
    .subscription_insert = sq_subscription_insert,
    .contact_insert = sq_contact_insert,
    .subscription_list = sq_subscription_list,
    .contact_list = sq_contact_list,
    .prefs_get = sq_prefs_get,
    .pref_put = sq_pref_put,
    .message_add = sq_message_add,
    .message_get = sq_message_get,
    .messages_pending = sq_messages_pending,
    .messages_delivered = sq_messages_delivered,
    .messages_read = sq_messages_read,
    .message_history = sq_message_history,
    .journal_chat = sq_journal_chat,
    .journal_add = sq_journal_add,
    .journal_list = sq_journal_list,
    .retention_messages = sq_retention_messages,
    .retention_journal = sq_retention_journal,
    .roster_put = sq_roster_put,
    .roster_delete = sq_roster_delete,
    .roster_list = sq_roster_list,
    .user_by_id = sq_user_by_id,
    .tokens_trim = sq_tokens_trim,
    .admin_list = sq_admin_list,
    .admin_get = sq_admin_get,
    .admin_count_enabled = sq_admin_count_enabled,
    .admin_set_password = sq_admin_set_password,
    .admin_set_enabled = sq_admin_set_enabled,
    .admin_delete = sq_admin_delete,
    .session_delete_admin = sq_session_delete_admin,
    .audit_record = sq_audit_record,
    .audit_query = sq_audit_query,
    .push_device_set = sq_push_device_set,
    .push_devices = sq_push_devices,
    .push_token_prune = sq_push_token_prune,
    .push_enqueue = sq_push_enqueue,
    .push_claim = sq_push_claim,
    .push_finish = sq_push_finish,
    .push_retry = sq_push_retry,
    .push_release = sq_push_release,
    .push_read = sq_push_read,
    .push_fetch = sq_push_fetch,
    .push_stats = sq_push_stats,
    .push_purge = sq_push_purge,
    /* web meetings */
    .meeting_add = sq_meeting_add,
    .meeting_get = sq_meeting_get,
    .meeting_started = sq_meeting_started,
    .meeting_end = sq_meeting_end,
    .meeting_list = sq_meeting_list,
    .meeting_open = sq_meeting_open,
    .node_beat = sq_node_beat,
    .node_delete = sq_node_delete,
    .node_list = sq_node_list,
    .session_get = sq_session_get,
    .message_read = sq_message_read,
    .ticket_put = sq_ticket_put,
    .ticket_take = sq_ticket_take,
    .meeting_host = sq_meeting_host,
    .meeting_fence = sq_meeting_fence,
    .hold_open = sq_hold_open,
    .hold_try = sq_hold_try,
    .hold_check = sq_hold_check,
    .hold_close = sq_hold_close,
    /* federation consent */
    .subscription_set = sq_subscription_set,
    .subscription_delete = sq_subscription_delete,
};

const store_backend_t *store_sqlite_backend(void) { return &backend; }
