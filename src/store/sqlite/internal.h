/* Shared by the files of the SQLite backend: the connection, its statement
 * cache and the small helpers every operation uses. Private to store/sqlite/. */
#pragma once

#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>

#include "store/backend.h"
#include "store/sqlite/sqlite.h"

#define SQ_CACHE_MAX 96

/* One connection, serialised by `lock` from begin to commit/rollback: a
 * transaction belongs to one thread at a time, and SQLite's own locking then
 * has nothing to arbitrate within the process. WAL lets another process
 * (sqlite3 on the command line, a backup) read meanwhile. */
typedef struct sq {
  store_t *store;
  sqlite3 *db;
  pthread_mutex_t lock;
  int schema_version;
  char path[PATH_MAX];
  struct {
    const char *sql;
    sqlite3_stmt *st;
  } cache[SQ_CACHE_MAX];
  size_t ncache;
} sq_t;

static inline sq_t *sq_of(store_txn_t *t) { return t->conn; }

/* A prepared statement for `sql` (a string literal: the cache is keyed by
 * its address), reset and with no bindings. NULL after recording the
 * failure. */
sqlite3_stmt *sq_prepare(store_txn_t *t, const char *sql);
/* Maps the connection's last error to a code; a real failure (not a
 * constraint the caller expects) is recorded with the transaction's name. */
int sq_fail(store_txn_t *t);
/* Steps a statement that returns no rows, then resets it. 0 or sq_fail. */
int sq_done(store_txn_t *t, sqlite3_stmt *st);
/* Steps: 1 for a row, 0 at the end, or sq_fail (the statement is reset). */
int sq_step(store_txn_t *t, sqlite3_stmt *st);
int sq_exec(store_txn_t *t, const char *sql);
/* One integer (a count): `sql` takes ?1 = param when it has a parameter. */
int sq_int(store_txn_t *t, const char *sql, int64_t param, int64_t *out);

/* Text or NULL. */
void sq_bind_text(sqlite3_stmt *st, int i, const char *s);
/* Copies column `col` into dst (truncated to len - 1; "" for NULL). */
void sq_copy(char *dst, size_t len, sqlite3_stmt *st, int col);
/* The column as a JSON string, or null (also for text that is not UTF-8:
 * written by hand into the database, shown as null rather than failing). */
json_t *sq_json(sqlite3_stmt *st, int col);
/* The column malloc'd, NULL for NULL; -ENOMEM through *r. */
char *sq_strdup(sqlite3_stmt *st, int col, int *r);

/* The operations (config.c, directory.c), one per entry of store_backend_t. */
int sq_settings_load(store_txn_t *t, json_t **values, uint64_t *version);
int sq_settings_version(store_txn_t *t, uint64_t *version);
int sq_settings_put(store_txn_t *t, const char *key, const char *value_json);
int sq_settings_delete(store_txn_t *t, const char *key);
int sq_settings_set_version(store_txn_t *t, uint64_t version);
int sq_meta_get(store_txn_t *t, const char *name, char **value);
int sq_meta_put(store_txn_t *t, const char *name, const char *value);
int sq_audit_add(store_txn_t *t, const char *actor, const char *key, const char *old_text,
                 const char *new_text);
int sq_audit_list(store_txn_t *t, int64_t offset, int64_t limit, json_t **page);
int sq_admin_count(store_txn_t *t, int64_t *count);
int sq_admin_create(store_txn_t *t, const char *name, const char *password_hash);
int sq_admin_get_hash(store_txn_t *t, const char *name, char **hash);
int sq_session_put(store_txn_t *t, const store_session_t *session);
int sq_session_delete(store_txn_t *t, const char *token_hash);
int sq_session_purge(store_txn_t *t, int64_t now);
int sq_session_each(store_txn_t *t, void (*fn)(const store_session_t *, void *), void *ctx);
int sq_domain_current(store_txn_t *t, int64_t *generation, char *name, size_t len);
int sq_domain_add(store_txn_t *t, int64_t generation, const char *name, const char *actor);
int sq_domain_was(store_txn_t *t, const char *name, int64_t before, bool *was);
int sq_domain_counts(store_txn_t *t, int64_t generation, store_domain_counts_t *out);
int sq_user_insert(store_txn_t *t, const store_user_write_t *u, const char **conflict);
int sq_user_update(store_txn_t *t, const char *name, const store_user_write_t *u,
                   const char **conflict);
int sq_user_delete(store_txn_t *t, const char *name);
int sq_picture_put(store_txn_t *t, int64_t user_id, const void *data, size_t len,
                   const char *etag);
int sq_picture_get(store_txn_t *t, int64_t user_id, store_picture_t *out);
int sq_picture_delete(store_txn_t *t, int64_t user_id);
int sq_user_get(store_txn_t *t, const char *name, store_user_t *out);
int sq_user_by_windows_account(store_txn_t *t, const char *account, store_user_t *out);
int sq_user_credentials(store_txn_t *t, const char *name, int64_t *id, char **hash, bool *enabled);
int sq_user_list(store_txn_t *t, const char *q, const char *exact, int64_t offset, int64_t limit,
                 int64_t *total, store_user_fn fn, void *ctx);
int sq_user_names(store_txn_t *t, int64_t limit, void (*fn)(const char *name, void *ctx),
                  void *ctx);
int sq_device_put(store_txn_t *t, int64_t user_id, const char *device_id, const char *platform,
                  const char *push_token, const char *login, int64_t generation);
int sq_tokens_delete_device(store_txn_t *t, int64_t user_id, const char *device_id);
int sq_tokens_delete_user(store_txn_t *t, int64_t user_id, int64_t *deleted);
int sq_token_delete(store_txn_t *t, const char *token_hash);
int sq_tokens_trim(store_txn_t *t, int64_t user_id, int64_t keep, int64_t *deleted);
int sq_tokens_purge(store_txn_t *t, int64_t user_id, int64_t now);
int sq_token_put(store_txn_t *t, const char *token_hash, int64_t user_id, const char *device_id,
                 int64_t generation, int64_t created, int64_t expires);
int sq_token_find(store_txn_t *t, const char *token_hash, store_token_t *out);
int sq_user_clients(store_txn_t *t, int64_t user_id, int64_t now,
                    const store_client_fns_t *fns);
int sq_subscription_set(store_txn_t *t, const char *user, const char *remote, const char *state,
                        int64_t generation);
int sq_subscription_delete(store_txn_t *t, const char *user, const char *remote);
int sq_subscription_insert(store_txn_t *t, const char *user, const char *remote, const char *state,
                           int64_t generation);
int sq_contact_insert(store_txn_t *t, const char *user, const char *remote,
                      const char *display_name);
int sq_subscription_list(store_txn_t *t, const char *user, const char *state, int64_t generation,
                         int64_t offset, int64_t limit, int64_t *total, store_federation_fn fn,
                         void *ctx);
int sq_contact_list(store_txn_t *t, const char *user, int64_t offset, int64_t limit, int64_t *total,
                    store_federation_fn fn, void *ctx);
int sq_prefs_get(store_txn_t *t, const char *user, store_pref_fn fn, void *ctx);
int sq_pref_put(store_txn_t *t, const char *user, const char *channel, bool notify,
                const char *email, bool attach);
int sq_message_add(store_txn_t *t, store_message_t *m);
int sq_message_get(store_txn_t *t, int64_t id, store_message_t *out);
int sq_messages_pending(store_txn_t *t, int64_t recipient, int64_t after, int64_t limit,
                        store_message_fn fn, void *ctx);
int sq_messages_delivered(store_txn_t *t, int64_t recipient, int64_t upto, const char *time,
                          int64_t limit, store_message_fn fn, void *ctx);
int sq_messages_read(store_txn_t *t, int64_t reader, int64_t peer, int64_t upto, const char *time,
                     int64_t *marked, int64_t *newest);
int sq_message_history(store_txn_t *t, int64_t user, int64_t peer, int64_t before, int64_t limit,
                       store_message_fn fn, void *ctx);
int sq_journal_chat(store_txn_t *t, int64_t user, const char *peer, const char *direction,
                    const char *started, int64_t created_ms, int64_t count);
int sq_journal_add(store_txn_t *t, store_journal_t *e);
int sq_journal_list(store_txn_t *t, int64_t user, int64_t before, int64_t limit,
                    store_journal_fn fn, void *ctx);
int sq_retention_messages(store_txn_t *t, int64_t cutoff_ms, bool delivered_only, int64_t limit,
                          int64_t *deleted);
int sq_retention_journal(store_txn_t *t, int64_t cutoff_ms, int64_t limit, int64_t *deleted);
int sq_roster_put(store_txn_t *t, int64_t user, int64_t contact, const char *remote);
int sq_roster_delete(store_txn_t *t, int64_t user, int64_t contact, const char *remote);
int sq_roster_list(store_txn_t *t, int64_t user, store_roster_fn fn, void *ctx);
int sq_user_by_id(store_txn_t *t, int64_t id, store_user_t *out);
int sq_admin_list(store_txn_t *t, void (*fn)(const store_admin_t *, void *), void *ctx);
int sq_admin_get(store_txn_t *t, const char *name, store_admin_t *out);
int sq_admin_count_enabled(store_txn_t *t, int64_t *count);
int sq_admin_set_password(store_txn_t *t, const char *name, const char *password_hash);
int sq_admin_set_enabled(store_txn_t *t, const char *name, bool enabled);
int sq_admin_delete(store_txn_t *t, const char *name);
int sq_session_delete_admin(store_txn_t *t, const char *admin, const char *keep_hash,
                            int64_t *deleted);
int sq_audit_record(store_txn_t *t, const store_audit_entry_t *e);
int sq_audit_query(store_txn_t *t, const store_audit_filter_t *f, int64_t offset, int64_t limit,
                   json_t **page);
/* push.c */
int sq_push_device_set(store_txn_t *t, int64_t user_id, const char *device_id,
                       const char *push_token, int64_t now_ms);
int sq_push_devices(store_txn_t *t, int64_t user_id, store_push_device_fn fn, void *ctx);
int sq_push_token_prune(store_txn_t *t, int64_t user_id, const char *device_id,
                        const char *push_token, int64_t before_ms, bool *pruned);
int sq_push_enqueue(store_txn_t *t, store_push_t *p);
int sq_push_claim(store_txn_t *t, int64_t now_ms, int64_t lease_until_ms, const char *owner,
                  int64_t limit, store_push_fn fn, void *ctx);
int sq_push_finish(store_txn_t *t, int64_t id, const char *state, const char *reason,
                   int64_t now_ms);
int sq_push_retry(store_txn_t *t, int64_t id, int64_t next_ms, bool count_attempt,
                  const char *reason);
int sq_push_release(store_txn_t *t, const char *owner, int64_t *released);
int sq_push_read(store_txn_t *t, int64_t reader, int64_t peer, int64_t upto, int64_t *cancelled,
                 int64_t *to_clear);
int sq_push_fetch(store_txn_t *t, int64_t id, int64_t user_id, int64_t now_ms, store_push_fn fn,
                  void *ctx);
int sq_push_stats(store_txn_t *t, store_push_stats_t *out);
int sq_push_purge(store_txn_t *t, int64_t before_ms, int64_t limit, int64_t *deleted);

/* meeting.c */
int sq_meeting_add(store_txn_t *t, const store_meeting_t *m);
int sq_meeting_get(store_txn_t *t, const char *id, store_meeting_t *out);
int sq_meeting_started(store_txn_t *t, const char *id, const char *time);
int sq_meeting_end(store_txn_t *t, const char *id, const char *time, const char *reason);
int sq_meeting_list(store_txn_t *t, int64_t host, int64_t limit, store_meeting_fn fn, void *ctx);
int sq_meeting_open(store_txn_t *t, store_meeting_fn fn, void *ctx);

/* cluster.c */
int sq_node_beat(store_txn_t *t, const store_node_t *node);
int sq_node_delete(store_txn_t *t, const char *name);
int sq_node_list(store_txn_t *t, store_node_fn fn, void *ctx);
int sq_session_get(store_txn_t *t, const char *token_hash, store_session_t *out);
int sq_message_read(store_txn_t *t, int64_t id, store_message_fn fn, void *ctx); /* rt.c */
int sq_ticket_put(store_txn_t *t, const char *hash, const store_ticket_t *ticket);
int sq_ticket_take(store_txn_t *t, const char *hash, int64_t now, store_ticket_t *out);
int sq_meeting_host(store_txn_t *t, int64_t *epoch, char *node, size_t len);
int sq_meeting_fence(store_txn_t *t, int64_t epoch);
int sq_hold_open(void *db, store_hold_t **hold);
int sq_hold_try(store_hold_t *hold, const char *node, int64_t *epoch);
int sq_hold_check(store_hold_t *hold, int timeout_ms);
void sq_hold_close(store_hold_t *hold);
