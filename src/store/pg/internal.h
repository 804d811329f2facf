/* Shared by the files of the PostgreSQL backend: the pool of connections,
 * the listener, the statement helpers every operation uses. Private to
 * store/pg/. */
#pragma once

#include <libpq-fe.h>
#include <pthread.h>

#include "store/backend.h"
#include "store/pg/pg.h"

#define PG_POOL_SIZE 4          /* connections for transactions */
#define PG_POOL_WAIT_MS 30000   /* a begin waits this long for a free connection */
#define PG_CONNECT_TIMEOUT_S 10 /* unless the connection string says otherwise */
/* A link that drops packets (a failed switch, a cable) gives no error: a
 * query would wait for TCP to give up, some 15 minutes, holding an HTTP
 * thread. Sent data unanswered this long ends the connection (also a
 * connection attempt's SYN), and an idle one is probed: the caller sees the
 * store away and answers 503 instead. Over TCP only; unless the connection
 * string says otherwise. */
#define PG_TCP_USER_TIMEOUT_MS 3000
#define PG_KEEPALIVE_IDLE_S 5
#define PG_KEEPALIVE_INTERVAL_S 1
#define PG_KEEPALIVE_COUNT 3
/* After the store did not answer in time (not: refused), transactions fail
 * at once for this long, then one at a time tries again, so that every HTTP
 * thread does not wait its own timeout on a dead link. */
#define PG_AWAY_MS 1000
/* A BEGIN that failed faster than this met a connection the server had
 * closed while pooled: a new one is tried at once. A slower failure was a
 * timeout, and a new connection would only wait as long again. */
#define PG_STALE_FAIL_MS 500
#define PG_CACHE_MAX 128        /* prepared statements per connection */
#define PG_PARAMS_MAX 16
#define PG_LISTEN_MAX 32       /* subscriptions (channel, callback) per store */
#define PG_CHANNEL_MAX 63      /* NAMEDATALEN - 1: longer names are refused */
#define PG_PAYLOAD_MAX 7999    /* pg_notify refuses 8000 bytes and more */
#define PG_LISTEN_WAIT_MS 5000 /* store_listen waits this long for LISTEN */
#define PG_LISTEN_POLL_MS 250  /* how often the listener looks at `stop` */
#define PG_LISTEN_BACKOFF_MIN_MS 100
#define PG_LISTEN_BACKOFF_MAX_MS 1000 /* back within a second of the server: nodes converge fast */
#define PG_LISTEN_PROBE_MS 30000 /* an idle listener asks the server this often */
#define PG_LISTEN_CMD_MS 10000   /* a LISTEN or probe that takes longer: reconnect */

typedef struct pgb pgb_t;

/* One connection of the pool; a transaction's store_txn_t.conn. */
typedef struct pg_conn {
  pgb_t *b;
  PGconn *pc;
  /* The connection failed (lost, or an error we do not trust it after):
   * it is closed when given back and a new one is made at the next begin. */
  bool broken;
  /* A statement failed and the server aborted the transaction: every later
   * statement of it returns this code without being sent, and commit rolls
   * back and returns it. 0 while the transaction is usable. */
  int failed;
  char conflict[64]; /* the constraint a guarded statement broke, for pg_conflict */
  struct {
    const char *sql; /* a string literal: the cache is keyed by its address */
    char name[16];
  } cache[PG_CACHE_MAX];
  size_t ncache;
} pg_conn_t;

typedef struct pg_sub {
  char channel[PG_CHANNEL_MAX + 1];
  store_listen_fn fn;
  void *ctx;
} pg_sub_t;

/* The listener thread's shared state; everything below `lock` is guarded by
 * it. Subscriptions are only ever appended, so the thread may read
 * subs[i] for every i below an nsubs it read under the lock. */
typedef struct pg_listener {
  pthread_mutex_t lock;
  pthread_cond_t cond; /* `listened` moved, or the thread gave up waiting */
  pg_sub_t subs[PG_LISTEN_MAX];
  size_t nsubs;
  size_t listened; /* subs[0..listened) are LISTENed on the current connection */
  bool started, stop;
  bool late;   /* a store_listen returned before its LISTEN was in place */
  int wake[2]; /* a pipe: store_listen and close wake the thread's poll() */
  pthread_t thread;
} pg_listener_t;

struct pgb {
  store_t *store;
  char *conninfo;
  int schema_version;
  pthread_mutex_t lock; /* guards conns[] and busy[] */
  pthread_cond_t freed; /* a connection was given back */
  pg_conn_t *conns[PG_POOL_SIZE];
  bool busy[PG_POOL_SIZE];
  int64_t away_until_ms; /* monotonic; 0: the store answered last time */
  bool probing;          /* one begin is trying the store while away */
  char away_why[400];    /* the failure that made it away */
  pg_listener_t listener;
};

static inline pg_conn_t *pg_of(store_txn_t *t) { return t->conn; }

/* Parameters of one statement, all sent as text. */
typedef struct pg_params {
  int n;
  bool overflow;
  const char *v[PG_PARAMS_MAX];
  char num[PG_PARAMS_MAX][24];
} pg_params_t;

void pp_text(pg_params_t *p, const char *s); /* NULL: SQL null */
void pp_int(pg_params_t *p, int64_t v);
void pp_id(pg_params_t *p, int64_t v); /* 0 (no row): SQL null */
void pp_bool(pg_params_t *p, bool v);
/* LIMIT and OFFSET as SQLite reads them: a negative limit is no limit, a
 * negative offset is 0 (PostgreSQL would refuse both). */
void pp_limit(pg_params_t *p, int64_t limit);
void pp_offset(pg_params_t *p, int64_t offset);

/* Runs the prepared statement `sql` (a string literal) in the transaction:
 * the result, or NULL with *r set to the mapped code (a failure of the
 * database recorded through store_backend_failed). A statement that can
 * fail with an answer the caller expects (a unique name taken, a missing
 * row referenced, a value a CHECK refuses) runs with `guard`: inside a
 * savepoint, so that such an answer leaves the transaction usable, as it
 * does in SQLite. */
PGresult *pg_exec(store_txn_t *t, const char *sql, const pg_params_t *p, bool guard, int *r);
/* pg_exec for a statement whose rows are not wanted: 0 or the code;
 * *changed (may be NULL) the number of rows it changed. */
int pg_cmd(store_txn_t *t, const char *sql, const pg_params_t *p, bool guard, int64_t *changed);
/* One integer (a count) of the first row; 0 when there is no row. */
int pg_int(store_txn_t *t, const char *sql, const pg_params_t *p, int64_t *out);
/* The name of the constraint the last failed guarded statement broke, or
 * "" (kept per connection until the next statement). */
const char *pg_conflict(store_txn_t *t);

int64_t pg_i64(const PGresult *res, int row, int col);
bool pg_bool(const PGresult *res, int row, int col);
/* The value, or NULL for SQL null; valid while `res` is. */
const char *pg_str(const PGresult *res, int row, int col);
/* Copies into dst (truncated to len - 1; "" for null). */
void pg_copy(char *dst, size_t len, const PGresult *res, int row, int col);
/* The value malloc'd, NULL for null; -ENOMEM through *r. */
char *pg_strdup(const PGresult *res, int row, int col, int *r);

/* The listener (listen.c). */
int pg_listener_init(pgb_t *b);
int pg_listen(void *db, const char *channel, store_listen_fn fn, void *ctx);
void pg_listener_stop(pgb_t *b);
/* A new connection, made as every connection of the backend is (timeout,
 * application name, UTF-8, no notices on stderr). NULL only on out of
 * memory; otherwise check PQstatus. `async`: PQconnectStartParams. */
PGconn *pg_connect(const pgb_t *b, const char *application, bool async);

/* The operations (config.c, directory.c, rt.c), one per entry of
 * store_backend_t. */
int pg_settings_load(store_txn_t *t, json_t **values, uint64_t *version);
int pg_settings_version(store_txn_t *t, uint64_t *version);
int pg_settings_put(store_txn_t *t, const char *key, const char *value_json);
int pg_settings_delete(store_txn_t *t, const char *key);
int pg_settings_set_version(store_txn_t *t, uint64_t version);
int pg_meta_get(store_txn_t *t, const char *name, char **value);
int pg_meta_put(store_txn_t *t, const char *name, const char *value);
int pg_audit_add(store_txn_t *t, const char *actor, const char *key, const char *old_text,
                 const char *new_text);
int pg_audit_list(store_txn_t *t, int64_t offset, int64_t limit, json_t **page);
int pg_admin_count(store_txn_t *t, int64_t *count);
int pg_admin_create(store_txn_t *t, const char *name, const char *password_hash);
int pg_admin_get_hash(store_txn_t *t, const char *name, char **hash);
int pg_session_put(store_txn_t *t, const store_session_t *session);
int pg_session_delete(store_txn_t *t, const char *token_hash);
int pg_session_purge(store_txn_t *t, int64_t now);
int pg_session_each(store_txn_t *t, void (*fn)(const store_session_t *, void *), void *ctx);
int pg_domain_current(store_txn_t *t, int64_t *generation, char *name, size_t len);
int pg_domain_add(store_txn_t *t, int64_t generation, const char *name, const char *actor);
int pg_domain_was(store_txn_t *t, const char *name, int64_t before, bool *was);
int pg_domain_counts(store_txn_t *t, int64_t generation, store_domain_counts_t *out);
int pg_user_insert(store_txn_t *t, const store_user_write_t *u, const char **conflict);
int pg_user_update(store_txn_t *t, const char *name, const store_user_write_t *u,
                   const char **conflict);
int pg_user_delete(store_txn_t *t, const char *name);
int pg_picture_put(store_txn_t *t, int64_t user_id, const void *data, size_t len,
                   const char *etag);
int pg_picture_get(store_txn_t *t, int64_t user_id, store_picture_t *out);
int pg_picture_delete(store_txn_t *t, int64_t user_id);
int pg_user_get(store_txn_t *t, const char *name, store_user_t *out);
int pg_user_by_windows_account(store_txn_t *t, const char *account, store_user_t *out);
int pg_user_credentials(store_txn_t *t, const char *name, int64_t *id, char **hash, bool *enabled);
int pg_user_list(store_txn_t *t, const char *q, const char *exact, int64_t offset, int64_t limit,
                 int64_t *total, store_user_fn fn, void *ctx);
int pg_user_names(store_txn_t *t, int64_t limit, void (*fn)(const char *name, void *ctx),
                  void *ctx);
int pg_device_put(store_txn_t *t, int64_t user_id, const char *device_id, const char *platform,
                  const char *push_token, const char *login, int64_t generation);
int pg_tokens_delete_device(store_txn_t *t, int64_t user_id, const char *device_id);
int pg_tokens_delete_user(store_txn_t *t, int64_t user_id, int64_t *deleted);
int pg_token_delete(store_txn_t *t, const char *token_hash);
int pg_tokens_trim(store_txn_t *t, int64_t user_id, int64_t keep, int64_t *deleted);
int pg_tokens_purge(store_txn_t *t, int64_t user_id, int64_t now);
int pg_token_put(store_txn_t *t, const char *token_hash, int64_t user_id, const char *device_id,
                 int64_t generation, int64_t created, int64_t expires);
int pg_token_find(store_txn_t *t, const char *token_hash, store_token_t *out);
int pg_user_clients(store_txn_t *t, int64_t user_id, int64_t now,
                    const store_client_fns_t *fns);
int pg_subscription_set(store_txn_t *t, const char *user, const char *remote, const char *state,
                        int64_t generation);
int pg_subscription_delete(store_txn_t *t, const char *user, const char *remote);
int pg_subscription_insert(store_txn_t *t, const char *user, const char *remote, const char *state,
                           int64_t generation);
int pg_contact_insert(store_txn_t *t, const char *user, const char *remote,
                      const char *display_name);
int pg_subscription_list(store_txn_t *t, const char *user, const char *state, int64_t generation,
                         int64_t offset, int64_t limit, int64_t *total, store_federation_fn fn,
                         void *ctx);
int pg_contact_list(store_txn_t *t, const char *user, int64_t offset, int64_t limit, int64_t *total,
                    store_federation_fn fn, void *ctx);
int pg_prefs_get(store_txn_t *t, const char *user, store_pref_fn fn, void *ctx);
int pg_pref_put(store_txn_t *t, const char *user, const char *channel, bool notify,
                const char *email, bool attach);
int pg_message_add(store_txn_t *t, store_message_t *m);
int pg_message_get(store_txn_t *t, int64_t id, store_message_t *out);
int pg_messages_pending(store_txn_t *t, int64_t recipient, int64_t after, int64_t limit,
                        store_message_fn fn, void *ctx);
int pg_messages_delivered(store_txn_t *t, int64_t recipient, int64_t upto, const char *time,
                          int64_t limit, store_message_fn fn, void *ctx);
int pg_messages_read(store_txn_t *t, int64_t reader, int64_t peer, int64_t upto, const char *time,
                     int64_t *marked, int64_t *newest);
int pg_message_history(store_txn_t *t, int64_t user, int64_t peer, int64_t before, int64_t limit,
                       store_message_fn fn, void *ctx);
int pg_journal_chat(store_txn_t *t, int64_t user, const char *peer, const char *direction,
                    const char *started, int64_t created_ms, int64_t count);
int pg_journal_add(store_txn_t *t, store_journal_t *e);
int pg_admin_list(store_txn_t *t, void (*fn)(const store_admin_t *, void *), void *ctx);
int pg_admin_get(store_txn_t *t, const char *name, store_admin_t *out);
int pg_admin_count_enabled(store_txn_t *t, int64_t *count);
int pg_admin_set_password(store_txn_t *t, const char *name, const char *password_hash);
int pg_admin_set_enabled(store_txn_t *t, const char *name, bool enabled);
int pg_admin_delete(store_txn_t *t, const char *name);
int pg_session_delete_admin(store_txn_t *t, const char *admin, const char *keep_hash,
                            int64_t *deleted);
int pg_audit_record(store_txn_t *t, const store_audit_entry_t *e);
int pg_audit_query(store_txn_t *t, const store_audit_filter_t *f, int64_t offset, int64_t limit,
                   json_t **page);
int pg_journal_list(store_txn_t *t, int64_t user, int64_t before, int64_t limit,
                    store_journal_fn fn, void *ctx);
int pg_retention_messages(store_txn_t *t, int64_t cutoff_ms, bool delivered_only, int64_t limit,
                          int64_t *deleted);
int pg_retention_journal(store_txn_t *t, int64_t cutoff_ms, int64_t limit, int64_t *deleted);
int pg_roster_put(store_txn_t *t, int64_t user, int64_t contact, const char *remote);
int pg_roster_delete(store_txn_t *t, int64_t user, int64_t contact, const char *remote);
int pg_roster_list(store_txn_t *t, int64_t user, store_roster_fn fn, void *ctx);
int pg_user_by_id(store_txn_t *t, int64_t id, store_user_t *out);
/* push.c */
int pg_push_device_set(store_txn_t *t, int64_t user_id, const char *device_id,
                       const char *push_token, int64_t now_ms);
int pg_push_devices(store_txn_t *t, int64_t user_id, store_push_device_fn fn, void *ctx);
int pg_push_token_prune(store_txn_t *t, int64_t user_id, const char *device_id,
                        const char *push_token, int64_t before_ms, bool *pruned);
int pg_push_enqueue(store_txn_t *t, store_push_t *p);
int pg_push_claim(store_txn_t *t, int64_t now_ms, int64_t lease_until_ms, const char *owner,
                  int64_t limit, store_push_fn fn, void *ctx);
int pg_push_finish(store_txn_t *t, int64_t id, const char *state, const char *reason,
                   int64_t now_ms);
int pg_push_retry(store_txn_t *t, int64_t id, int64_t next_ms, bool count_attempt,
                  const char *reason);
int pg_push_release(store_txn_t *t, const char *owner, int64_t *released);
int pg_push_read(store_txn_t *t, int64_t reader, int64_t peer, int64_t upto, int64_t *cancelled,
                 int64_t *to_clear);
int pg_push_fetch(store_txn_t *t, int64_t id, int64_t user_id, int64_t now_ms, store_push_fn fn,
                  void *ctx);
int pg_push_stats(store_txn_t *t, store_push_stats_t *out);
int pg_push_purge(store_txn_t *t, int64_t before_ms, int64_t limit, int64_t *deleted);

/* meeting.c */
int pg_meeting_add(store_txn_t *t, const store_meeting_t *m);
int pg_meeting_get(store_txn_t *t, const char *id, store_meeting_t *out);
int pg_meeting_started(store_txn_t *t, const char *id, const char *time);
int pg_meeting_end(store_txn_t *t, const char *id, const char *time, const char *reason);
int pg_meeting_list(store_txn_t *t, int64_t host, int64_t limit, store_meeting_fn fn, void *ctx);
int pg_meeting_open(store_txn_t *t, store_meeting_fn fn, void *ctx);

/* cluster.c */
int pg_node_beat(store_txn_t *t, const store_node_t *node);
int pg_node_delete(store_txn_t *t, const char *name);
int pg_node_list(store_txn_t *t, store_node_fn fn, void *ctx);
int pg_session_get(store_txn_t *t, const char *token_hash, store_session_t *out);
int pg_message_read(store_txn_t *t, int64_t id, store_message_fn fn, void *ctx); /* rt.c */
int pg_ticket_put(store_txn_t *t, const char *hash, const store_ticket_t *ticket);
int pg_ticket_take(store_txn_t *t, const char *hash, int64_t now, store_ticket_t *out);
int pg_meeting_host(store_txn_t *t, int64_t *epoch, char *node, size_t len);
int pg_meeting_fence(store_txn_t *t, int64_t epoch);
int pg_hold_open(void *db, store_hold_t **hold);
int pg_hold_try(store_hold_t *hold, const char *node, int64_t *epoch);
int pg_hold_check(store_hold_t *hold, int timeout_ms);
void pg_hold_close(store_hold_t *hold);
