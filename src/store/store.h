/* The store: everything the server keeps, as operations of the server's own
 * domain ("commit a settings change with its audit rows", "advance the
 * domain generation", "issue a client token"), never as SQL. A backend
 * implements the operations (store/backend.h): SQLite, embedded and the
 * default (store/sqlite/), and later PostgreSQL for several nodes. One
 * conformance suite (tests/unit/test_store.c) runs against every backend.
 *
 * Transactions. Every operation takes a store_txn_t *, which comes from
 *
 *   store_run_txn(store, "name", fn, ctx)   a read-write transaction around
 *        fn; fn returns >= 0 to commit and < 0 to roll back. When the backend
 *        reports a serialisation failure (-EAGAIN: another transaction won),
 *        the runner rolls back and runs fn again, at most STORE_TXN_ATTEMPTS
 *        times in all, so fn must do nothing but store operations (or be
 *        safe to repeat);
 *   store_read_begin / store_read_end       a read-only snapshot for a few
 *        reads that must agree with each other (a count and its page);
 *   store_begin / store_commit, store_rollback   the same for writes, when
 *        the caller handles -EAGAIN from the commit itself.
 *
 * Errors. Operations return 0 or a negative errno-style code: -ENOENT (no
 * such row), -EEXIST (a unique name taken), -EINVAL (a reference to a row
 * that does not exist, or a value the schema refuses), -EAGAIN (serialisation
 * failure; retried by store_run_txn), -ENOTCONN (the database cannot be
 * reached now: worth trying again later), -ENOMEM, -EIO (anything else). Every
 * failure of the database is counted and its message kept in one place
 * (store_error_count, store_last_error) whichever operation hit it. Nothing
 * here logs.
 *
 * Threads: a store_t is shared by every thread; a store_txn_t belongs to the
 * thread that began it until it ends. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct store store_t;
typedef struct store_txn store_txn_t;
typedef struct store_backend store_backend_t;

#define STORE_TXN_ATTEMPTS 5

typedef struct store_options {
  const char *data_dir; /* SQLite: <data_dir>/atrium.db */
  const char *conninfo; /* PostgreSQL: a libpq connection string */
} store_options_t;

/* Opens the store with the given backend (store_sqlite_backend(), ...) and
 * migrates its schema. On failure a sentence in err. */
int store_open(const store_backend_t *backend, const store_options_t *opts, store_t **out,
               char *err, size_t errlen);
void store_close(store_t *s); /* accepts NULL */
const char *store_backend_name(const store_t *s);

typedef int (*store_txn_fn)(store_txn_t *txn, void *ctx);
/* See the top of this file. `name` names the transaction in errors. Returns
 * what fn returned, or the error of BEGIN/COMMIT. */
int store_run_txn(store_t *s, const char *name, store_txn_fn fn, void *ctx);
/* A read-write transaction; end it with store_commit (-EAGAIN: lost to
 * another transaction, rolled back: try again) or store_rollback. Both free
 * the handle. */
int store_begin(store_t *s, const char *name, store_txn_t **txn);
int store_commit(store_txn_t *txn);
void store_rollback(store_txn_t *txn);
/* A read-only transaction; end it with store_read_end whatever happened. */
int store_read_begin(store_t *s, const char *name, store_txn_t **txn);
void store_read_end(store_txn_t *txn);
store_t *store_of(store_txn_t *txn);

/* Cross-node signals: after the commit of the transaction `txn`, every node
 * listening on `channel` gets `payload`. A single-node backend (SQLite) has
 * no other node: notify does nothing and listen never calls back. */
int store_notify(store_txn_t *txn, const char *channel, const char *payload);
typedef void (*store_listen_fn)(const char *channel, const char *payload, void *ctx);
int store_listen(store_t *s, const char *channel, store_listen_fn fn, void *ctx);

/* The last failure's message, copied per thread; never NULL. */
const char *store_last_error(store_t *s);
uint64_t store_error_count(store_t *s);
/* "# HELP"/"# TYPE"/sample lines for /metrics. */
void store_write_metrics(store_t *s, FILE *f);
int store_schema_version(store_t *s);
int store_code_schema_version(const store_t *s);
/* 0 when the database reports itself undamaged. */
int store_integrity_check(store_t *s);

/* RFC 3339, UTC, milliseconds ("2026-11-26T14:05:19.123Z"): the time stamps
 * every table uses, so that they sort as text in time order. */
void store_now_rfc3339(char out[32]);

/* ---- settings ------------------------------------------------------------------- */

/* Every stored setting: *values maps key to the stored JSON value (secrets as
 * the sealed string they were written with); *version the settings version
 * (0 for a new store). */
int store_settings_load(store_txn_t *t, json_t **values, uint64_t *version);
int store_settings_version(store_txn_t *t, uint64_t *version);
int store_settings_put(store_txn_t *t, const char *key, const char *value_json);
int store_settings_delete(store_txn_t *t, const char *key);
int store_settings_set_version(store_txn_t *t, uint64_t version);

/* Values fixed at first start (install defaults). *value malloc'd; -ENOENT. */
int store_meta_get(store_txn_t *t, const char *name, char **value);
int store_meta_put(store_txn_t *t, const char *name, const char *value);

/* ---- audit log ------------------------------------------------------------------- */

/* old_text/new_text are what the log shows (secrets already redacted); NULL
 * is stored as null. The time is now. */
int store_audit_add(store_txn_t *t, const char *actor, const char *key, const char *old_text,
                    const char *new_text);
#define STORE_AUDIT_LIMIT_MAX 500
/* Newest first: {"total", "offset", "limit", "entries": [{"id", "time", "actor", "key", "old",
 * "new"}]}. */
int store_audit_list(store_txn_t *t, int64_t offset, int64_t limit, json_t **page);

/* ---- admin accounts and sessions ---------------------------------------------------- */

int store_admin_count(store_txn_t *t, int64_t *count);
int store_admin_create(store_txn_t *t, const char *name, const char *password_hash);
int store_admin_get_hash(store_txn_t *t, const char *name, char **hash); /* malloc'd */

typedef struct store_session {
  char token_hash[65]; /* hex SHA-256 of the token: tokens themselves are never stored */
  char admin[128];
  char csrf[64];
  int64_t created;     /* unix seconds */
  int64_t expires;     /* unix seconds */
} store_session_t;

int store_session_put(store_txn_t *t, const store_session_t *session);
int store_session_delete(store_txn_t *t, const char *token_hash);
int store_session_purge(store_txn_t *t, int64_t now); /* those expired at `now` */
/* fn must not use the store. */
int store_session_each(store_txn_t *t, void (*fn)(const store_session_t *, void *), void *ctx);

/* ---- several admin accounts -------------------------------------------------------- */

/* store_admin_get_hash answers -ENOENT for a disabled account too: it cannot
 * log in, and a login must not tell it from a wrong name. */
typedef struct store_admin {
  char name[128];
  bool enabled;
  char created_at[32];
  char password_changed_at[32]; /* "" when the first password was never changed */
} store_admin_t;

/* Ordered by name. fn must not use the store. */
int store_admin_list(store_txn_t *t, void (*fn)(const store_admin_t *, void *), void *ctx);
/* -ENOENT when there is no account `name`. */
int store_admin_get(store_txn_t *t, const char *name, store_admin_t *out);
int store_admin_count_enabled(store_txn_t *t, int64_t *count);
/* -ENOENT when there is no account `name`; records the time of the change. */
int store_admin_set_password(store_txn_t *t, const char *name, const char *password_hash);
int store_admin_set_enabled(store_txn_t *t, const char *name, bool enabled);
/* Its sessions go with it. -ENOENT. */
int store_admin_delete(store_txn_t *t, const char *name);
/* Ends every session of `admin` but the one whose hash is keep_hash (NULL:
 * all of them); *deleted (may be NULL): how many ended. */
int store_session_delete_admin(store_txn_t *t, const char *admin, const char *keep_hash,
                               int64_t *deleted);

/* ---- the audit log of every admin action --------------------------------------------- */

/* What happened: "setting" (key = the setting), "domain.change",
 * "user.add" / "user.update" / "user.rename" / "user.delete" / "user.import" /
 * "user.sign_out" / "user.picture" (key = the user), "admin.add" / "admin.enable" /
 * "admin.disable" / "admin.remove" / "admin.password" / "admin.reset_password"
 * (key = the admin account), "admin.login" / "admin.login_failed" (key = the
 * name given). NULL strings are stored as null; the time is now. */
typedef struct store_audit_entry {
  const char *action, *actor, *key, *old_text, *new_text;
  const char *address; /* the client's address, NULL when not from the network */
} store_audit_entry_t;
int store_audit_record(store_txn_t *t, const store_audit_entry_t *e);

/* Every field NULL or "": no condition. key matches exactly, or, ending in
 * '*', as a prefix ("proxy.*"). since (inclusive) and until (exclusive) are
 * times as store_now_rfc3339 writes them. */
typedef struct store_audit_filter {
  const char *actor, *key, *action, *since, *until;
  const char *key_prefix; /* what backends see of a key ending in '*' (store.c sets it) */
} store_audit_filter_t;
/* store_audit_list with conditions; entries carry "action" and "address"
 * too; "total" counts the matches. */
int store_audit_query(store_txn_t *t, const store_audit_filter_t *f, int64_t offset,
                      int64_t limit, json_t **page);

/* ---- the directory: domain generations ----------------------------------------------- */

/* The newest generation and its domain. -ENOENT on a new store. */
int store_domain_current(store_txn_t *t, int64_t *generation, char *name, size_t len);
int store_domain_add(store_txn_t *t, int64_t generation, const char *name, const char *actor);
/* Whether `name` was the domain of a generation before `before`. */
int store_domain_was(store_txn_t *t, const char *name, int64_t before, bool *was);

typedef struct store_domain_counts {
  int64_t users;
  int64_t mobile_devices; /* registered under the given generation */
  int64_t subscriptions;
} store_domain_counts_t;
int store_domain_counts(store_txn_t *t, int64_t generation, store_domain_counts_t *out);

/* ---- the directory: users ------------------------------------------------------------- */

#define STORE_USER_NAME_MAX 64
#define STORE_USER_TEXT_MAX 256 /* display name, Windows account: bytes */
#define STORE_REMOTE_MAX 320
#define STORE_PICTURE_ETAG_MAX 64
#define STORE_PICTURE_BYTES_MAX (1024 * 1024)

typedef struct store_user {
  int64_t id;
  char name[STORE_USER_NAME_MAX + 1];
  bool has_display_name, has_windows_account;
  char display_name[STORE_USER_TEXT_MAX + 1];
  char windows_account[STORE_USER_TEXT_MAX + 1];
  bool enabled, has_password;
  char created_at[32], updated_at[32];
  char picture[STORE_PICTURE_ETAG_MAX + 1]; /* the profile picture's entity tag, "" for none */
} store_user_t;

/* What a create or update writes: each set_* flag picks the new value; a
 * NULL string with its flag set stores null (clears it). */
typedef struct store_user_write {
  bool set_name, set_display_name, set_windows_account, set_password_hash, set_enabled;
  const char *name, *display_name, *windows_account, *password_hash;
  bool enabled;
} store_user_write_t;

/* -EEXIST when the name or the Windows account is taken; *conflict (may be
 * NULL) is then "name" or "windows_account". */
int store_user_insert(store_txn_t *t, const store_user_write_t *u, const char **conflict);
/* -ENOENT when there is no user `name`. */
int store_user_update(store_txn_t *t, const char *name, const store_user_write_t *u,
                      const char **conflict);
int store_user_delete(store_txn_t *t, const char *name);
int store_user_get(store_txn_t *t, const char *name, store_user_t *out);
/* Case-insensitive. */
int store_user_by_windows_account(store_txn_t *t, const char *account, store_user_t *out);
/* For a password login: *hash malloc'd, NULL when the user has none. */
int store_user_credentials(store_txn_t *t, const char *name, int64_t *id, char **hash,
                           bool *enabled);

/* Users ordered by name. q (NULL: all) matches a substring of the name,
 * display name or Windows account case-insensitively, or `exact` (may be
 * NULL) as the whole name. *total counts every match. */
typedef void (*store_user_fn)(const store_user_t *user, void *ctx);
int store_user_list(store_txn_t *t, const char *q, const char *exact, int64_t offset,
                    int64_t limit, int64_t *total, store_user_fn fn, void *ctx);
/* The first `limit` names in order (the domain change's samples). */
int store_user_names(store_txn_t *t, int64_t limit, void (*fn)(const char *name, void *ctx),
                     void *ctx);

/* ---- the directory: profile pictures ------------------------------------------------------- */

/* A user's picture: the bytes the directory made (a re-encoded JPEG, never
 * an upload as it came) and their entity tag. One per user; it goes with
 * the user. */
typedef struct store_picture {
  uint8_t *data; /* malloc'd */
  size_t len;
  char etag[STORE_PICTURE_ETAG_MAX + 1];
  char updated_at[32];
} store_picture_t;

/* Sets (or replaces) the picture of the user `user_id`: -EINVAL when there
 * is no such user or the picture is empty or over STORE_PICTURE_BYTES_MAX. */
int store_picture_put(store_txn_t *t, int64_t user_id, const void *data, size_t len,
                      const char *etag);
/* -ENOENT when the user has no picture. Free *out with store_picture_clear. */
int store_picture_get(store_txn_t *t, int64_t user_id, store_picture_t *out);
/* -ENOENT when the user has no picture. */
int store_picture_delete(store_txn_t *t, int64_t user_id);
void store_picture_clear(store_picture_t *p); /* accepts a zeroed one */

/* ---- the directory: devices and client tokens ------------------------------------------- */

int store_device_put(store_txn_t *t, int64_t user_id, const char *device_id, const char *platform,
                     const char *push_token, const char *login, int64_t generation);
/* Revokes the tokens of one device of a user. */
int store_tokens_delete_device(store_txn_t *t, int64_t user_id, const char *device_id);
/* Revokes one token (a client logging out); -ENOENT when unknown. */
int store_token_delete(store_txn_t *t, const char *token_hash);
/* Revokes every token of a user ("sign out everywhere"); *deleted: how many. */
int store_tokens_delete_user(store_txn_t *t, int64_t user_id, int64_t *deleted);
/* Keeps only the `keep` newest tokens of a user (a new login calls it
 * before adding its own, so the oldest go); *deleted: how many went. */
int store_tokens_trim(store_txn_t *t, int64_t user_id, int64_t keep, int64_t *deleted);
/* Removes a user's tokens that expired at `now`. */
int store_tokens_purge(store_txn_t *t, int64_t user_id, int64_t now);
int store_token_put(store_txn_t *t, const char *token_hash, int64_t user_id,
                    const char *device_id, int64_t generation, int64_t created, int64_t expires);

typedef struct store_token {
  store_user_t user;
  int64_t generation, expires;
  bool mobile;            /* issued to a device (device_id not null) */
  char device_id[129];
  bool device_registered; /* the device's row still exists */
  char platform[16];
  char login[400];        /* the login name the device used */
  bool has_issued_domain;
  char issued_domain[256]; /* the domain of the token's generation */
} store_token_t;
/* -ENOENT for an unknown token. */
int store_token_find(store_txn_t *t, const char *token_hash, store_token_t *out);

/* What the admin page shows of a user's clients: the mobile devices
 * registered (with or without a token now) and the tokens not expired at
 * `now` (a desktop login has no device). The strings are valid during the
 * call only; neither carries a secret (no push token, no token hash). */
typedef struct store_client_device {
  const char *device_id, *platform, *login, *created_at, *updated_at;
  int64_t generation;
  bool has_push_token;
} store_client_device_t;
typedef struct store_client_token {
  const char *device_id; /* NULL for a desktop login */
  int64_t generation, created, expires; /* unix seconds */
} store_client_token_t;
typedef struct store_client_fns {
  void (*device)(const store_client_device_t *d, void *ctx);
  void (*token)(const store_client_token_t *k, void *ctx);
  void *ctx;
} store_client_fns_t;
/* Devices by id, then tokens newest first; bounded by the per-user token
 * limit and the devices a user registers. */
int store_user_clients(store_txn_t *t, int64_t user_id, int64_t now, const store_client_fns_t *fns);

/* ---- the directory: federation data ---------------------------------------------------------- */

/* -ENOENT when there is no user `user`; -EEXIST for a second row of the same
 * (user, remote). */
int store_subscription_insert(store_txn_t *t, const char *user, const char *remote,
                              const char *state, int64_t generation);
int store_contact_insert(store_txn_t *t, const char *user, const char *remote,
                         const char *display_name);
/* A remote watcher's subscription to `user`: its state ("active" once the
 * user allowed it, "pending" before) and the generation it now holds
 * (remote compared case-insensitively). -ENOENT when there is no such row. */
int store_subscription_set(store_txn_t *t, const char *user, const char *remote,
                           const char *state, int64_t generation);
int store_subscription_delete(store_txn_t *t, const char *user, const char *remote);

typedef struct store_federation_row {
  const char *user, *remote;
  const char *state;        /* subscriptions: "to-be-recreated" when made before the generation */
  const char *display_name; /* contacts; NULL when none */
  const char *created_at;
} store_federation_row_t;
typedef void (*store_federation_fn)(const store_federation_row_t *row, void *ctx);
/* user/state: "" or NULL for any. `generation` is the current one. */
int store_subscription_list(store_txn_t *t, const char *user, const char *state,
                            int64_t generation, int64_t offset, int64_t limit, int64_t *total,
                            store_federation_fn fn, void *ctx);
int store_contact_list(store_txn_t *t, const char *user, int64_t offset, int64_t limit,
                       int64_t *total, store_federation_fn fn, void *ctx);

/* ---- users' notification preferences (voicemail, fax, SMS) ------------------------------------ */

typedef void (*store_pref_fn)(const char *channel, bool notify, const char *email, bool attach,
                              void *ctx);
/* -ENOENT when there is no user `user`. Channels without a row are not reported. */
int store_prefs_get(store_txn_t *t, const char *user, store_pref_fn fn, void *ctx);
int store_pref_put(store_txn_t *t, const char *user, const char *channel, bool notify,
                   const char *email, bool attach);

/* ---- real-time: messages, the journal, contact lists -------------------------------------- */

#define STORE_MESSAGE_TEXT_MAX (16 * 1024)

/* One chat message. Exactly one of sender / sender_remote is set, and one of
 * recipient / recipient_remote (a federated address). */
typedef struct store_message {
  int64_t id; /* set by store_message_add: increasing in commit order */
  int64_t sender, recipient; /* users.id, 0 when remote */
  const char *sender_remote, *recipient_remote;
  const char *sender_name, *recipient_name; /* read back: the local users' names */
  const char *text;
  char time[32];      /* RFC 3339, milliseconds */
  int64_t created_ms; /* unix milliseconds: what retention compares */
  bool delivered, read;
} store_message_t;

int store_message_add(store_txn_t *t, store_message_t *m);
/* One message (-ENOENT). */
int store_message_get(store_txn_t *t, int64_t id, store_message_t *out);
typedef void (*store_message_fn)(const store_message_t *m, void *ctx);
/* The messages to `recipient` that no client of theirs has received, id >
 * after, oldest first, at most limit. */
int store_messages_pending(store_txn_t *t, int64_t recipient, int64_t after, int64_t limit,
                           store_message_fn fn, void *ctx);
/* Marks delivered every message to `recipient` with id <= upto not yet
 * delivered; fn is called for each one marked (at most limit). */
int store_messages_delivered(store_txn_t *t, int64_t recipient, int64_t upto, const char *time,
                             int64_t limit, store_message_fn fn, void *ctx);
/* Marks read every message from `peer` (a user) to `reader` with id <= upto
 * not yet read (delivered too, if it was not). *marked: how many; *newest:
 * the newest id marked (0: none). */
int store_messages_read(store_txn_t *t, int64_t reader, int64_t peer, int64_t upto,
                        const char *time, int64_t *marked, int64_t *newest);
/* The conversation of `user` with the user `peer`, newest first, id < before
 * (0: from the newest), at most limit. */
int store_message_history(store_txn_t *t, int64_t user, int64_t peer, int64_t before,
                          int64_t limit, store_message_fn fn, void *ctx);

typedef struct store_journal {
  int64_t id;
  int64_t user;
  const char *kind;      /* "chat", "call", "meeting" */
  const char *direction; /* "in", "out" */
  const char *peer;      /* an address */
  char started[32];      /* RFC 3339 */
  int64_t duration_s;    /* -1: none */
  int answered;          /* -1: none, else 0/1 */
  int64_t messages;      /* chats: the day's count; 0 otherwise */
  int64_t created_ms;
} store_journal_t;

/* `count` chat messages of `user` with `peer` on the day of started: one
 * entry per peer and day, its count raised by count. */
int store_journal_chat(store_txn_t *t, int64_t user, const char *peer, const char *direction,
                       const char *started, int64_t created_ms, int64_t count);
int store_journal_add(store_txn_t *t, store_journal_t *e);
typedef void (*store_journal_fn)(const store_journal_t *e, void *ctx);
/* Newest first, id < before (0: from the newest), at most limit. */
int store_journal_list(store_txn_t *t, int64_t user, int64_t before, int64_t limit,
                       store_journal_fn fn, void *ctx);

/* Retention: deletes at most `limit` rows created before cutoff_ms; with
 * delivered_only, the messages that a client has received whatever their
 * age instead (IMDeleteAfterDays 0). *deleted: how many went. */
int store_retention_messages(store_txn_t *t, int64_t cutoff_ms, bool delivered_only,
                             int64_t limit, int64_t *deleted);
int store_retention_journal(store_txn_t *t, int64_t cutoff_ms, int64_t limit, int64_t *deleted);

/* A user's own contact list: a local user (contact > 0) or a federated
 * address (remote). */
int store_roster_put(store_txn_t *t, int64_t user, int64_t contact, const char *remote);
/* -ENOENT when it was not on the list. */
int store_roster_delete(store_txn_t *t, int64_t user, int64_t contact, const char *remote);
typedef struct store_roster_row {
  int64_t contact;          /* users.id, 0 for a federated address */
  const char *name;         /* local: the user's name */
  const char *display_name; /* local: may be NULL */
  const char *remote;       /* federated: the address */
} store_roster_row_t;
typedef void (*store_roster_fn)(const store_roster_row_t *row, void *ctx);
/* Local contacts ordered by name, then federated ones by address. */
int store_roster_list(store_txn_t *t, int64_t user, store_roster_fn fn, void *ctx);
/* The user of an id (-ENOENT). */
int store_user_by_id(store_txn_t *t, int64_t id, store_user_t *out);

/* ---- push notifications: device push tokens and the outbox ------------------------------- */

#define STORE_PUSH_TOKEN_MAX 4096
#define STORE_PUSH_PAYLOAD_MAX 8192

/* A device's push token as a provider knows it. */
typedef struct store_push_device {
  int64_t user_id;
  const char *device_id, *platform, *push_token;
  int64_t registered_ms; /* when this token was registered (unix ms; 0: before it was kept) */
} store_push_device_t;
typedef void (*store_push_device_fn)(const store_push_device_t *d, void *ctx);

/* Sets the push token of a device the user logged in with (NULL removes it);
 * the registration time becomes now_ms when the token changes. -ENOENT when
 * the user has no such device. */
int store_push_device_set(store_txn_t *t, int64_t user_id, const char *device_id,
                          const char *push_token, int64_t now_ms);
/* The devices of a user that have a push token, by device id. */
int store_push_devices(store_txn_t *t, int64_t user_id, store_push_device_fn fn, void *ctx);
/* A provider said the token is gone: removes it when the device still has
 * exactly this token and it was registered before before_ms (a token
 * registered again since is newer than the provider's verdict). *pruned
 * says whether it went. */
int store_push_token_prune(store_txn_t *t, int64_t user_id, const char *device_id,
                           const char *push_token, int64_t before_ms, bool *pruned);

/* One notification of the outbox. Everything a retry must repeat is fixed
 * at enqueue: the APNs id, the collapse id, the type, the priority, the
 * expiry, the payload (already at the content level of that moment). */
typedef struct store_push {
  int64_t id;
  int64_t user_id;
  const char *device_id, *platform, *push_token;
  const char *kind; /* "message", "call", "clear", "test" */
  int64_t ref_id;   /* the message or journal entry */
  int64_t peer_id;  /* messages: the sender (users.id); 0 otherwise */
  const char *payload;     /* JSON text */
  const char *apns_id;     /* a UUID */
  const char *collapse_id; /* at most 64 bytes */
  const char *push_type;   /* "alert", "background" */
  int priority;            /* 10, 5 */
  int64_t created_ms, expires_ms, next_ms;
  int64_t attempts;
  const char *state;  /* "pending", "sent", "failed", "cancelled" */
  const char *reason; /* the last failure, or NULL */
  int64_t fetched_ms; /* when the app fetched it; 0: not yet */
} store_push_t;
typedef void (*store_push_fn)(const store_push_t *p, void *ctx);

/* In the transaction of its event. p->id is set; next_ms is created_ms. */
int store_push_enqueue(store_txn_t *t, store_push_t *p);
/* Leases at most `limit` pending notifications due at now_ms whose lease
 * (if any) ended, oldest due first, to `owner` until lease_until_ms; fn
 * sees each. On PostgreSQL the rows are taken with SKIP LOCKED, so that
 * nodes sharing the outbox never take the same one. */
int store_push_claim(store_txn_t *t, int64_t now_ms, int64_t lease_until_ms, const char *owner,
                     int64_t limit, store_push_fn fn, void *ctx);
/* Ends a notification: state "sent", "failed" or "cancelled", with a
 * reason (may be NULL). -ENOENT when there is no such pending one. */
int store_push_finish(store_txn_t *t, int64_t id, const char *state, const char *reason,
                      int64_t now_ms);
/* Back to pending, due at next_ms, the lease given up; count_attempt adds
 * one attempt (a stream refused by a GOAWAY is not one). */
int store_push_retry(store_txn_t *t, int64_t id, int64_t next_ms, bool count_attempt,
                     const char *reason);
/* Gives up every lease `owner` holds (a node starting again after a crash). */
int store_push_release(store_txn_t *t, const char *owner, int64_t *released);
/* `reader` read the messages from `peer` up to `upto`: their pending
 * notifications are cancelled (*cancelled), and the ones already sent and
 * not cleared yet are marked cleared; *to_clear says how many, so that the
 * caller enqueues a clear push. */
int store_push_read(store_txn_t *t, int64_t reader, int64_t peer, int64_t upto,
                    int64_t *cancelled, int64_t *to_clear);
/* A notification of the user (the app fetching what an id_only push
 * announced): fn sees it; the first fetch records now_ms. -ENOENT. */
int store_push_fetch(store_txn_t *t, int64_t id, int64_t user_id, int64_t now_ms,
                     store_push_fn fn, void *ctx);

typedef struct store_push_stats {
  int64_t pending;           /* the outbox depth */
  int64_t oldest_pending_ms; /* created_ms of the oldest pending one; 0: none */
  int64_t sent, failed, cancelled;
} store_push_stats_t;
int store_push_stats(store_txn_t *t, store_push_stats_t *out);
/* Deletes at most `limit` finished notifications that ended before
 * before_ms. */
int store_push_purge(store_txn_t *t, int64_t before_ms, int64_t limit, int64_t *deleted);
/* ---- web meetings ------------------------------------------------------------------------ */

#define STORE_MEETING_ID_MAX 32
#define STORE_MEETING_TITLE_MAX 200 /* bytes of UTF-8 */
#define STORE_MEETING_REASON_MAX 200

/* A meeting a user (its host) created. Times are RFC 3339; "" when not
 * (yet) so. */
typedef struct store_meeting {
  char id[STORE_MEETING_ID_MAX + 1]; /* the unguessable part of the join link */
  int64_t host;                      /* users.id */
  char host_name[65];                /* read back */
  char title[STORE_MEETING_TITLE_MAX + 1];
  char starts_at[32];  /* planned start, "" when none given */
  char created_at[32];
  int64_t created_ms;
  char started_at[32]; /* the host first opened it */
  char ended_at[32];
  char end_reason[STORE_MEETING_REASON_MAX + 1];
} store_meeting_t;

/* -EEXIST for an id taken, -EINVAL when the host does not exist. */
int store_meeting_add(store_txn_t *t, const store_meeting_t *m);
/* -ENOENT when there is no meeting `id`. */
int store_meeting_get(store_txn_t *t, const char *id, store_meeting_t *out);
/* Records the first start (later calls keep the first time). -ENOENT. */
int store_meeting_started(store_txn_t *t, const char *id, const char *time);
/* Ends a meeting that has not ended: 0, or -ENOENT when there is no such
 * meeting or it ended already. */
int store_meeting_end(store_txn_t *t, const char *id, const char *time, const char *reason);
typedef void (*store_meeting_fn)(const store_meeting_t *m, void *ctx);
/* The meetings of `host`, newest first, at most limit. */
int store_meeting_list(store_txn_t *t, int64_t host, int64_t limit, store_meeting_fn fn,
                       void *ctx);
/* Every meeting that has started and not ended (after a crash: to end them). */
int store_meeting_open(store_txn_t *t, store_meeting_fn fn, void *ctx);
/* ---- cluster: nodes, admin sessions looked up by any node, the meeting host ---------- */

#define STORE_NODE_NAME_MAX 63

/* One node's row, written by its heartbeat. */
typedef struct store_node {
  char name[STORE_NODE_NAME_MAX + 1];
  char url[256];            /* where the load balancer and the other nodes reach it */
  char atrium_version[32];
  uint64_t settings_version; /* the snapshot the node has in force */
  char settings_hash[65];    /* hex SHA-256 of that snapshot's document */
  int64_t started_ms;        /* unix milliseconds */
  int64_t age_ms;            /* read back: since its last heartbeat, by the database's clock */
} store_node_t;

/* Inserts or refreshes the node's row; the heartbeat is now. */
int store_node_beat(store_txn_t *t, const store_node_t *node);
/* Removes the row of a node that stops (-ENOENT when there is none). */
int store_node_delete(store_txn_t *t, const char *name);
typedef void (*store_node_fn)(const store_node_t *node, void *ctx);
/* Every node's row, by name. */
int store_node_list(store_txn_t *t, store_node_fn fn, void *ctx);

/* One admin session by the hash of its token (-ENOENT): a session started
 * on another node. */
int store_session_get(store_txn_t *t, const char *token_hash, store_session_t *out);

/* A WebSocket ticket of the real-time core kept in the store, so that the
 * node that takes it need not be the node that issued it. By the hash of
 * the ticket: tickets themselves are never stored. */
typedef struct store_ticket {
  char user[65];
  bool mobile;
  char client[33];
  int64_t expires; /* unix seconds */
} store_ticket_t;
int store_ticket_put(store_txn_t *t, const char *hash, const store_ticket_t *ticket);
/* Takes a ticket once: 0 and *out, then it is gone; -ENOENT when unknown,
 * already taken or expired at `now`. Also forgets every expired ticket. */
int store_ticket_take(store_txn_t *t, const char *hash, int64_t now, store_ticket_t *out);

/* One message with its text and names, given to fn (valid during the
 * call): what another node delivers (-ENOENT). */
int store_message_read(store_txn_t *t, int64_t id, store_message_fn fn, void *ctx);

/* The meeting host's epoch and node ("" before the first host): the epoch
 * goes up by one at every takeover. */
int store_meeting_host(store_txn_t *t, int64_t *epoch, char *node, size_t len);
/* Fencing: 0 when `epoch` is still the current one, -ESTALE when another
 * host took over since. The row stays locked until the transaction ends,
 * so a takeover waits for the writes this check guards. */
int store_meeting_fence(store_txn_t *t, int64_t epoch);

/* Holding the meeting host's lock. On PostgreSQL a session advisory lock on
 * a connection of its own (free the moment that connection ends, whatever
 * ended it: a crash, a kill, a lost network, or the server's
 * idle_session_timeout of a few seconds for a node that stopped running);
 * SQLite has one node, which always gets it. Used by one thread. */
typedef struct store_hold store_hold_t;
int store_hold_open(store_t *s, store_hold_t **hold);
/* Tries to take the lock for `node` (connecting first when needed): 1 when
 * taken, with the new *epoch (the epoch row went up by one on the holding
 * connection); 0 when another node holds it; a negative code when the
 * database cannot be reached. */
int store_hold_try(store_hold_t *hold, const char *node, int64_t *epoch);
/* Asks the holding connection, waiting at most timeout_ms: 0 while it
 * holds, -ENOTCONN once it is lost or did not answer in time (the
 * connection is then closed: the lock is no longer ours). */
int store_hold_check(store_hold_t *hold, int timeout_ms);
/* Gives the lock up (closing its connection) and frees; accepts NULL. */
void store_hold_close(store_hold_t *hold);
