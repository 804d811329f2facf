/* The persistent store: one SQLite database in the data directory.
 *
 * WAL mode, foreign keys on, synchronous=FULL (settings and accounts are small
 * and rare writes; a confirmed change must survive power loss). Schema
 * migrations are a table of SQL steps applied in order, tracked by
 * PRAGMA user_version, each in its own transaction.
 *
 * Concurrency: one connection, serialised by the store's mutex. Functions
 * marked "(locked)" must be called between store_lock() and store_unlock();
 * the others take the lock themselves. Functions return 0 or a negative
 * errno-style code (-EIO for an SQLite failure, -ENOENT for "no such row");
 * store_last_error() gives SQLite's message for logs. No function logs. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct store store_t;

#define STORE_FILE_NAME "atrium.db"

/* Opens (creating when absent) <data_dir>/atrium.db and migrates it. The
 * data directory must exist. On failure writes a sentence into err. */
int store_open(const char *data_dir, store_t **out, char *err, size_t errlen);
void store_close(store_t *s); /* accepts NULL */

void store_lock(store_t *s);
void store_unlock(store_t *s);

/* Transactions (locked). begin is BEGIN IMMEDIATE. */
int store_begin(store_t *s);
int store_commit(store_t *s);
void store_rollback(store_t *s);

const char *store_last_error(store_t *s);
/* Number of SQLite failures since open (exported in /metrics). */
uint64_t store_error_count(store_t *s);
/* Schema version after migration (PRAGMA user_version). */
int store_schema_version(store_t *s);
/* The schema version this code migrates to (the number of migration steps). */
int store_code_schema_version(void);

/* The time stamps every table uses: RFC 3339, UTC, milliseconds
 * ("2026-11-26T14:05:19.123Z"), so that they sort as text in time order. */
void store_now_rfc3339(char out[32]);

/* Runs PRAGMA integrity_check; 0 when "ok". */
int store_integrity_check(store_t *s);

/* For later modules with their own tables (directory, ...): the raw handle.
 * Use only under store_lock(). */
struct sqlite3 *store_db(store_t *s);

/* ---- settings ------------------------------------------------------------ */

/* Loads every stored setting: *values becomes a new JSON object mapping key
 * to the stored JSON value (secrets as the sealed string they were written
 * with); *version the settings version (0 for a new store). */
int store_settings_load(store_t *s, json_t **values, uint64_t *version);
/* (locked) Insert or replace one setting; value_json is its JSON text. */
int store_settings_put(store_t *s, const char *key, const char *value_json);
/* (locked) Remove one setting (it falls back to its default). */
int store_settings_delete(store_t *s, const char *key);
/* (locked) */
int store_settings_set_version(store_t *s, uint64_t version);

/* Small key/value table for values fixed at first start (the install
 * defaults of server.public_url and domain.name, ...). *value is malloc'd;
 * -ENOENT when absent. */
int store_meta_get(store_t *s, const char *name, char **value);
/* (locked) */
int store_meta_put(store_t *s, const char *name, const char *value);

/* ---- audit log ------------------------------------------------------------ */

/* (locked) One entry, time = now (UTC, RFC 3339 with milliseconds). old_text
 * and new_text are what the log shows (already redacted for secrets); NULL is
 * stored as null ("was not set", "reset to default"). */
int store_audit_add(store_t *s, const char *actor, const char *key, const char *old_text,
                    const char *new_text);
/* Newest first: *out = {"total": n, "offset": o, "limit": l,
 *   "entries": [{"id", "time", "actor", "key", "old", "new"}]} */
int store_audit_list(store_t *s, int64_t offset, int64_t limit, json_t **out);

/* ---- admin accounts and sessions -------------------------------------------- */

int store_admin_count(store_t *s, int64_t *count);
/* (locked) */
int store_admin_create(store_t *s, const char *name, const char *password_hash);
/* *hash malloc'd; -ENOENT for an unknown name. */
int store_admin_get_hash(store_t *s, const char *name, char **hash);

typedef struct store_session {
  char token_hash[65]; /* hex SHA-256 of the token: tokens themselves are never stored */
  char admin[128];
  char csrf[64];
  int64_t created;     /* unix seconds */
  int64_t expires;     /* unix seconds */
} store_session_t;

int store_session_put(store_t *s, const store_session_t *session);
int store_session_delete(store_t *s, const char *token_hash);
/* Calls fn for every session that has not expired at `now`; deletes the rest. */
int store_session_load_all(store_t *s, int64_t now, void (*fn)(const store_session_t *, void *),
                           void *ctx);
