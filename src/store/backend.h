/* What a store backend implements (store/sqlite/, later store/pg/): the
 * connection and transaction primitives, and one function per operation of
 * store.h with the same meaning. store.c runs transactions, retries
 * serialisation failures, and keeps the error count and message; a backend
 * reports every database failure through store_backend_failed so that it is
 * counted whichever operation hit it. Only store/ and its backends include
 * this file. */
#pragma once

#include "store/store.h"

struct store_txn {
  store_t *store;
  void *conn;       /* the backend's connection for this transaction */
  const char *name; /* for error messages */
  bool write;
};

/* The first member of each backend's own hold: store_hold_check and
 * store_hold_release find the backend through it. */
struct store_hold {
  const store_backend_t *be;
};

struct store_backend {
  const char *name;
  int schema_version; /* the version this code migrates to */

  /* Opens and migrates; *db is the backend's state, passed to the rest. */
  int (*open)(store_t *s, const store_options_t *opts, void **db, char *err, size_t errlen);
  void (*close)(void *db);
  /* A connection with an open transaction (write: read-write), or an error;
   * end it with commit or rollback, which give the connection back. */
  int (*begin)(void *db, bool write, void **conn);
  int (*commit)(store_txn_t *t); /* -EAGAIN: serialisation failure, rolled back */
  void (*rollback)(store_txn_t *t);
  int (*notify)(store_txn_t *t, const char *channel, const char *payload);
  int (*listen)(void *db, const char *channel, store_listen_fn fn, void *ctx);
  int (*schema)(void *db);
  int (*integrity_check)(void *db);

  int (*settings_load)(store_txn_t *t, json_t **values, uint64_t *version);
  int (*settings_version)(store_txn_t *t, uint64_t *version);
  int (*settings_put)(store_txn_t *t, const char *key, const char *value_json);
  int (*settings_delete)(store_txn_t *t, const char *key);
  int (*settings_set_version)(store_txn_t *t, uint64_t version);
  int (*meta_get)(store_txn_t *t, const char *name, char **value);
  int (*meta_put)(store_txn_t *t, const char *name, const char *value);

  int (*audit_add)(store_txn_t *t, const char *actor, const char *key, const char *old_text,
                   const char *new_text);
  int (*audit_list)(store_txn_t *t, int64_t offset, int64_t limit, json_t **page);

  int (*admin_count)(store_txn_t *t, int64_t *count);
  int (*admin_create)(store_txn_t *t, const char *name, const char *password_hash);
  int (*admin_get_hash)(store_txn_t *t, const char *name, char **hash);
  int (*session_put)(store_txn_t *t, const store_session_t *session);
  int (*session_delete)(store_txn_t *t, const char *token_hash);
  int (*session_purge)(store_txn_t *t, int64_t now);
  int (*session_each)(store_txn_t *t, void (*fn)(const store_session_t *, void *), void *ctx);

  int (*domain_current)(store_txn_t *t, int64_t *generation, char *name, size_t len);
  int (*domain_add)(store_txn_t *t, int64_t generation, const char *name, const char *actor);
  int (*domain_was)(store_txn_t *t, const char *name, int64_t before, bool *was);
  int (*domain_counts)(store_txn_t *t, int64_t generation, store_domain_counts_t *out);

  int (*user_insert)(store_txn_t *t, const store_user_write_t *u, const char **conflict);
  int (*user_update)(store_txn_t *t, const char *name, const store_user_write_t *u,
                     const char **conflict);
  int (*user_delete)(store_txn_t *t, const char *name);
  int (*picture_put)(store_txn_t *t, int64_t user_id, const void *data, size_t len,
                     const char *etag);
  int (*picture_get)(store_txn_t *t, int64_t user_id, store_picture_t *out);
  int (*picture_delete)(store_txn_t *t, int64_t user_id);
  int (*user_get)(store_txn_t *t, const char *name, store_user_t *out);
  int (*user_by_windows_account)(store_txn_t *t, const char *account, store_user_t *out);
  int (*user_credentials)(store_txn_t *t, const char *name, int64_t *id, char **hash,
                          bool *enabled);
  int (*user_list)(store_txn_t *t, const char *q, const char *exact, int64_t offset, int64_t limit,
                   int64_t *total, store_user_fn fn, void *ctx);
  int (*user_names)(store_txn_t *t, int64_t limit, void (*fn)(const char *name, void *ctx),
                    void *ctx);

  int (*device_put)(store_txn_t *t, int64_t user_id, const char *device_id, const char *platform,
                    const char *push_token, const char *login, int64_t generation);
  int (*tokens_delete_device)(store_txn_t *t, int64_t user_id, const char *device_id);
  int (*tokens_delete_user)(store_txn_t *t, int64_t user_id, int64_t *deleted);
  int (*token_delete)(store_txn_t *t, const char *token_hash);
  int (*tokens_purge)(store_txn_t *t, int64_t user_id, int64_t now);
  int (*token_put)(store_txn_t *t, const char *token_hash, int64_t user_id, const char *device_id,
                   int64_t generation, int64_t created, int64_t expires);
  int (*token_find)(store_txn_t *t, const char *token_hash, store_token_t *out);
  int (*user_clients)(store_txn_t *t, int64_t user_id, int64_t now,
                      const store_client_fns_t *fns);

  int (*subscription_insert)(store_txn_t *t, const char *user, const char *remote,
                             const char *state, int64_t generation);
  int (*contact_insert)(store_txn_t *t, const char *user, const char *remote,
                        const char *display_name);
  int (*subscription_list)(store_txn_t *t, const char *user, const char *state, int64_t generation,
                           int64_t offset, int64_t limit, int64_t *total, store_federation_fn fn,
                           void *ctx);
  int (*contact_list)(store_txn_t *t, const char *user, int64_t offset, int64_t limit,
                      int64_t *total, store_federation_fn fn, void *ctx);

  int (*prefs_get)(store_txn_t *t, const char *user, store_pref_fn fn, void *ctx);
  int (*pref_put)(store_txn_t *t, const char *user, const char *channel, bool notify,
                  const char *email, bool attach);

  int (*message_add)(store_txn_t *t, store_message_t *m);
  int (*message_get)(store_txn_t *t, int64_t id, store_message_t *out);
  int (*messages_pending)(store_txn_t *t, int64_t recipient, int64_t after, int64_t limit,
                          store_message_fn fn, void *ctx);
  int (*messages_delivered)(store_txn_t *t, int64_t recipient, int64_t upto, const char *time,
                            int64_t limit, store_message_fn fn, void *ctx);
  int (*messages_read)(store_txn_t *t, int64_t reader, int64_t peer, int64_t upto, const char *time,
                       int64_t *marked, int64_t *newest);
  int (*message_history)(store_txn_t *t, int64_t user, int64_t peer, int64_t before, int64_t limit,
                         store_message_fn fn, void *ctx);
  int (*journal_chat)(store_txn_t *t, int64_t user, const char *peer, const char *direction,
                      const char *started, int64_t created_ms, int64_t count);
  int (*journal_add)(store_txn_t *t, store_journal_t *e);
  int (*journal_list)(store_txn_t *t, int64_t user, int64_t before, int64_t limit,
                      store_journal_fn fn, void *ctx);
  int (*retention_messages)(store_txn_t *t, int64_t cutoff_ms, bool delivered_only, int64_t limit,
                            int64_t *deleted);
  int (*retention_journal)(store_txn_t *t, int64_t cutoff_ms, int64_t limit, int64_t *deleted);
  int (*roster_put)(store_txn_t *t, int64_t user, int64_t contact, const char *remote);
  int (*roster_delete)(store_txn_t *t, int64_t user, int64_t contact, const char *remote);
  int (*roster_list)(store_txn_t *t, int64_t user, store_roster_fn fn, void *ctx);
  int (*user_by_id)(store_txn_t *t, int64_t id, store_user_t *out);

  /* hardening: bounded client tokens per user */
  int (*tokens_trim)(store_txn_t *t, int64_t user_id, int64_t keep, int64_t *deleted);
  /* several admin accounts, the audit log of every admin action */
  int (*admin_list)(store_txn_t *t, void (*fn)(const store_admin_t *, void *), void *ctx);
  int (*admin_get)(store_txn_t *t, const char *name, store_admin_t *out);
  int (*admin_count_enabled)(store_txn_t *t, int64_t *count);
  int (*admin_set_password)(store_txn_t *t, const char *name, const char *password_hash);
  int (*admin_set_enabled)(store_txn_t *t, const char *name, bool enabled);
  int (*admin_delete)(store_txn_t *t, const char *name);
  int (*session_delete_admin)(store_txn_t *t, const char *admin, const char *keep_hash,
                              int64_t *deleted);
  int (*audit_record)(store_txn_t *t, const store_audit_entry_t *e);
  int (*audit_query)(store_txn_t *t, const store_audit_filter_t *f, int64_t offset, int64_t limit,
                     json_t **page);
  /* push notifications: device push tokens and the outbox */
  int (*push_device_set)(store_txn_t *t, int64_t user_id, const char *device_id,
                         const char *push_token, int64_t now_ms);
  int (*push_devices)(store_txn_t *t, int64_t user_id, store_push_device_fn fn, void *ctx);
  int (*push_token_prune)(store_txn_t *t, int64_t user_id, const char *device_id,
                          const char *push_token, int64_t before_ms, bool *pruned);
  int (*push_enqueue)(store_txn_t *t, store_push_t *p);
  int (*push_claim)(store_txn_t *t, int64_t now_ms, int64_t lease_until_ms, const char *owner,
                    int64_t limit, store_push_fn fn, void *ctx);
  int (*push_finish)(store_txn_t *t, int64_t id, const char *state, const char *reason,
                     int64_t now_ms);
  int (*push_retry)(store_txn_t *t, int64_t id, int64_t next_ms, bool count_attempt,
                    const char *reason);
  int (*push_release)(store_txn_t *t, const char *owner, int64_t *released);
  int (*push_read)(store_txn_t *t, int64_t reader, int64_t peer, int64_t upto,
                   int64_t *cancelled, int64_t *to_clear);
  int (*push_fetch)(store_txn_t *t, int64_t id, int64_t user_id, int64_t now_ms,
                    store_push_fn fn, void *ctx);
  int (*push_stats)(store_txn_t *t, store_push_stats_t *out);
  int (*push_purge)(store_txn_t *t, int64_t before_ms, int64_t limit, int64_t *deleted);
  /* web meetings */
  int (*meeting_add)(store_txn_t *t, const store_meeting_t *m);
  int (*meeting_get)(store_txn_t *t, const char *id, store_meeting_t *out);
  int (*meeting_started)(store_txn_t *t, const char *id, const char *time);
  int (*meeting_end)(store_txn_t *t, const char *id, const char *time, const char *reason);
  int (*meeting_list)(store_txn_t *t, int64_t host, int64_t limit, store_meeting_fn fn,
                      void *ctx);
  int (*meeting_open)(store_txn_t *t, store_meeting_fn fn, void *ctx);
  /* cluster: nodes, sessions of other nodes, the meeting host */
  int (*node_beat)(store_txn_t *t, const store_node_t *node);
  int (*node_delete)(store_txn_t *t, const char *name);
  int (*node_list)(store_txn_t *t, store_node_fn fn, void *ctx);
  int (*session_get)(store_txn_t *t, const char *token_hash, store_session_t *out);
  int (*message_read)(store_txn_t *t, int64_t id, store_message_fn fn, void *ctx);
  int (*ticket_put)(store_txn_t *t, const char *hash, const store_ticket_t *ticket);
  int (*ticket_take)(store_txn_t *t, const char *hash, int64_t now, store_ticket_t *out);
  int (*meeting_host)(store_txn_t *t, int64_t *epoch, char *node, size_t len);
  int (*meeting_fence)(store_txn_t *t, int64_t epoch);
  int (*hold_open)(void *db, store_hold_t **hold);
  int (*hold_try)(store_hold_t *hold, const char *node, int64_t *epoch);
  int (*hold_check)(store_hold_t *hold, int timeout_ms);
  void (*hold_close)(store_hold_t *hold);
  /* federation consent (the SIP module) */
  int (*subscription_set)(store_txn_t *t, const char *user, const char *remote, const char *state,
                          int64_t generation);
  int (*subscription_delete)(store_txn_t *t, const char *user, const char *remote);
};

/* Records a database failure: counts it and keeps the message (printf
 * format) for store_last_error. Returns `code` for `return
 * store_backend_failed(...)`. */
int store_backend_failed(store_t *s, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
