/* The store's front: opening a backend, running transactions with bounded
 * retries, one place for errors, and the operations handed to the backend.
 * See store.h and backend.h. */
#include "store/store.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/backend.h"

struct store {
  const store_backend_t *be;
  void *db;
  atomic_uint_fast64_t errors;
  atomic_uint_fast64_t retries; /* transactions run again after a serialisation failure */
  /* Guarded by its own mutex: store_last_error may be called by any thread. */
  pthread_mutex_t err_lock;
  char last_error[512];
};

int store_open(const store_backend_t *backend, const store_options_t *opts, store_t **out,
               char *err, size_t errlen) {
  *out = NULL;
  if (errlen) err[0] = '\0';
  store_t *s = calloc(1, sizeof *s);
  if (!s) {
    snprintf(err, errlen, "out of memory opening the store");
    return -ENOMEM;
  }
  s->be = backend;
  pthread_mutex_init(&s->err_lock, NULL);
  atomic_init(&s->errors, 0);
  atomic_init(&s->retries, 0);
  int r = backend->open(s, opts, &s->db, err, errlen);
  if (r < 0) {
    store_close(s);
    return r;
  }
  *out = s;
  return 0;
}

void store_close(store_t *s) {
  if (!s) return;
  if (s->db) s->be->close(s->db);
  pthread_mutex_destroy(&s->err_lock);
  free(s);
}

const char *store_backend_name(const store_t *s) { return s->be->name; }

int store_backend_failed(store_t *s, int code, const char *fmt, ...) {
  atomic_fetch_add(&s->errors, 1);
  pthread_mutex_lock(&s->err_lock);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s->last_error, sizeof s->last_error, fmt, ap);
  va_end(ap);
  pthread_mutex_unlock(&s->err_lock);
  return code;
}

const char *store_last_error(store_t *s) {
  /* A copy per thread: another thread's failure may overwrite the store's
   * buffer while the caller is still formatting this one. */
  static _Thread_local char copy[512];
  if (!s) return "no store";
  pthread_mutex_lock(&s->err_lock);
  memcpy(copy, s->last_error, sizeof copy);
  pthread_mutex_unlock(&s->err_lock);
  return copy;
}

uint64_t store_error_count(store_t *s) { return s ? (uint64_t)atomic_load(&s->errors) : 0; }

void store_write_metrics(store_t *s, FILE *f) {
  fprintf(f,
          "# HELP atrium_store_errors_total Failures of the store's database since the server "
          "started.\n"
          "# TYPE atrium_store_errors_total counter\n"
          "atrium_store_errors_total %llu\n"
          "# HELP atrium_store_txn_retries_total Transactions run again after a serialisation "
          "failure.\n"
          "# TYPE atrium_store_txn_retries_total counter\n"
          "atrium_store_txn_retries_total %llu\n"
          "# HELP atrium_store_info The store's backend; always 1.\n"
          "# TYPE atrium_store_info gauge\n"
          "atrium_store_info{backend=\"%s\"} 1\n",
          (unsigned long long)atomic_load(&s->errors), (unsigned long long)atomic_load(&s->retries),
          s->be->name);
}

int store_schema_version(store_t *s) { return s->be->schema(s->db); }
int store_code_schema_version(const store_t *s) { return s->be->schema_version; }
int store_integrity_check(store_t *s) { return s->be->integrity_check(s->db); }
store_t *store_of(store_txn_t *txn) { return txn->store; }

void store_now_rfc3339(char out[32]) {
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out + n, 32 - n, ".%03ldZ", ts.tv_nsec / 1000000L);
}

/* ---- transactions ---------------------------------------------------------------- */

int store_run_txn(store_t *s, const char *name, store_txn_fn fn, void *ctx) {
  int r = -EAGAIN;
  for (int attempt = 0; attempt < STORE_TXN_ATTEMPTS && r == -EAGAIN; attempt++) {
    if (attempt) atomic_fetch_add(&s->retries, 1);
    store_txn_t t = {.store = s, .name = name, .write = true};
    r = s->be->begin(s->db, true, &t.conn);
    if (r < 0) continue;
    r = fn(&t, ctx);
    if (r < 0) {
      s->be->rollback(&t);
      continue;
    }
    int c = s->be->commit(&t);
    if (c < 0) r = c;
  }
  if (r == -EAGAIN)
    store_backend_failed(s, r,
                         "%s: gave up after %d attempts that each conflicted with another "
                         "transaction",
                         name, STORE_TXN_ATTEMPTS);
  return r;
}

static int begin_heap(store_t *s, const char *name, bool write, store_txn_t **txn) {
  *txn = NULL;
  store_txn_t *t = calloc(1, sizeof *t);
  if (!t) return -ENOMEM;
  *t = (store_txn_t){.store = s, .name = name, .write = write};
  int r = s->be->begin(s->db, write, &t->conn);
  if (r < 0) {
    free(t);
    return r;
  }
  *txn = t;
  return 0;
}

int store_begin(store_t *s, const char *name, store_txn_t **txn) {
  return begin_heap(s, name, true, txn);
}

int store_commit(store_txn_t *t) {
  int r = t->store->be->commit(t);
  free(t);
  return r;
}

void store_rollback(store_txn_t *t) {
  if (!t) return;
  t->store->be->rollback(t);
  free(t);
}

int store_read_begin(store_t *s, const char *name, store_txn_t **txn) {
  return begin_heap(s, name, false, txn);
}

void store_read_end(store_txn_t *t) { store_rollback(t); }

int store_notify(store_txn_t *t, const char *channel, const char *payload) {
  return t->store->be->notify(t, channel, payload);
}

int store_listen(store_t *s, const char *channel, store_listen_fn fn, void *ctx) {
  return s->be->listen(s->db, channel, fn, ctx);
}

/* ---- operations: handed to the backend ----------------------------------------------- */

int store_settings_load(store_txn_t *t, json_t **values, uint64_t *version) {
  return t->store->be->settings_load(t, values, version);
}

int store_settings_version(store_txn_t *t, uint64_t *version) {
  return t->store->be->settings_version(t, version);
}

int store_settings_put(store_txn_t *t, const char *key, const char *value_json) {
  return t->store->be->settings_put(t, key, value_json);
}

int store_settings_delete(store_txn_t *t, const char *key) {
  return t->store->be->settings_delete(t, key);
}

int store_settings_set_version(store_txn_t *t, uint64_t version) {
  return t->store->be->settings_set_version(t, version);
}

int store_meta_get(store_txn_t *t, const char *name, char **value) {
  return t->store->be->meta_get(t, name, value);
}

int store_meta_put(store_txn_t *t, const char *name, const char *value) {
  return t->store->be->meta_put(t, name, value);
}

int store_audit_add(store_txn_t *t, const char *actor, const char *key, const char *old_text,
                    const char *new_text) {
  return t->store->be->audit_add(t, actor, key, old_text, new_text);
}

int store_audit_list(store_txn_t *t, int64_t offset, int64_t limit, json_t **page) {
  return t->store->be->audit_list(t, offset, limit, page);
}

int store_admin_count(store_txn_t *t, int64_t *count) {
  return t->store->be->admin_count(t, count);
}

int store_admin_create(store_txn_t *t, const char *name, const char *password_hash) {
  return t->store->be->admin_create(t, name, password_hash);
}

int store_admin_get_hash(store_txn_t *t, const char *name, char **hash) {
  return t->store->be->admin_get_hash(t, name, hash);
}

int store_session_put(store_txn_t *t, const store_session_t *session) {
  return t->store->be->session_put(t, session);
}

int store_session_delete(store_txn_t *t, const char *token_hash) {
  return t->store->be->session_delete(t, token_hash);
}

int store_session_purge(store_txn_t *t, int64_t now) { return t->store->be->session_purge(t, now); }

int store_session_each(store_txn_t *t, void (*fn)(const store_session_t *, void *), void *ctx) {
  return t->store->be->session_each(t, fn, ctx);
}

int store_domain_current(store_txn_t *t, int64_t *generation, char *name, size_t len) {
  return t->store->be->domain_current(t, generation, name, len);
}

int store_domain_add(store_txn_t *t, int64_t generation, const char *name, const char *actor) {
  return t->store->be->domain_add(t, generation, name, actor);
}

int store_domain_was(store_txn_t *t, const char *name, int64_t before, bool *was) {
  return t->store->be->domain_was(t, name, before, was);
}

int store_domain_counts(store_txn_t *t, int64_t generation, store_domain_counts_t *out) {
  return t->store->be->domain_counts(t, generation, out);
}

int store_user_insert(store_txn_t *t, const store_user_write_t *u, const char **conflict) {
  return t->store->be->user_insert(t, u, conflict);
}

int store_user_update(store_txn_t *t, const char *name, const store_user_write_t *u,
                      const char **conflict) {
  return t->store->be->user_update(t, name, u, conflict);
}

int store_user_delete(store_txn_t *t, const char *name) {
  return t->store->be->user_delete(t, name);
}

int store_picture_put(store_txn_t *t, int64_t user_id, const void *data, size_t len,
                      const char *etag) {
  if (!data || len == 0 || len > STORE_PICTURE_BYTES_MAX || !etag || !*etag ||
      strlen(etag) > STORE_PICTURE_ETAG_MAX)
    return -EINVAL;
  return t->store->be->picture_put(t, user_id, data, len, etag);
}

int store_picture_get(store_txn_t *t, int64_t user_id, store_picture_t *out) {
  memset(out, 0, sizeof *out);
  return t->store->be->picture_get(t, user_id, out);
}

int store_picture_delete(store_txn_t *t, int64_t user_id) {
  return t->store->be->picture_delete(t, user_id);
}

void store_picture_clear(store_picture_t *p) {
  free(p->data);
  p->data = NULL;
  p->len = 0;
}

int store_user_get(store_txn_t *t, const char *name, store_user_t *out) {
  return t->store->be->user_get(t, name, out);
}

int store_user_by_windows_account(store_txn_t *t, const char *account, store_user_t *out) {
  return t->store->be->user_by_windows_account(t, account, out);
}

int store_user_credentials(store_txn_t *t, const char *name, int64_t *id, char **hash,
                           bool *enabled) {
  return t->store->be->user_credentials(t, name, id, hash, enabled);
}

int store_user_list(store_txn_t *t, const char *q, const char *exact, int64_t offset, int64_t limit,
                    int64_t *total, store_user_fn fn, void *ctx) {
  return t->store->be->user_list(t, q, exact, offset, limit, total, fn, ctx);
}

int store_user_names(store_txn_t *t, int64_t limit, void (*fn)(const char *name, void *ctx),
                     void *ctx) {
  return t->store->be->user_names(t, limit, fn, ctx);
}

int store_device_put(store_txn_t *t, int64_t user_id, const char *device_id, const char *platform,
                     const char *push_token, const char *login, int64_t generation) {
  return t->store->be->device_put(t, user_id, device_id, platform, push_token, login, generation);
}

int store_tokens_delete_device(store_txn_t *t, int64_t user_id, const char *device_id) {
  return t->store->be->tokens_delete_device(t, user_id, device_id);
}

int store_token_delete(store_txn_t *t, const char *token_hash) {
  return t->store->be->token_delete(t, token_hash);
}

int store_tokens_delete_user(store_txn_t *t, int64_t user_id, int64_t *deleted) {
  return t->store->be->tokens_delete_user(t, user_id, deleted);
}

int store_tokens_trim(store_txn_t *t, int64_t user_id, int64_t keep, int64_t *deleted) {
  return t->store->be->tokens_trim(t, user_id, keep, deleted);
}

int store_tokens_purge(store_txn_t *t, int64_t user_id, int64_t now) {
  return t->store->be->tokens_purge(t, user_id, now);
}

int store_token_put(store_txn_t *t, const char *token_hash, int64_t user_id, const char *device_id,
                    int64_t generation, int64_t created, int64_t expires) {
  return t->store->be->token_put(t, token_hash, user_id, device_id, generation, created, expires);
}

int store_token_find(store_txn_t *t, const char *token_hash, store_token_t *out) {
  return t->store->be->token_find(t, token_hash, out);
}

int store_user_clients(store_txn_t *t, int64_t user_id, int64_t now,
                       const store_client_fns_t *fns) {
  return t->store->be->user_clients(t, user_id, now, fns);
}

int store_subscription_insert(store_txn_t *t, const char *user, const char *remote,
                              const char *state, int64_t generation) {
  return t->store->be->subscription_insert(t, user, remote, state, generation);
}

int store_subscription_set(store_txn_t *t, const char *user, const char *remote,
                           const char *state, int64_t generation) {
  return t->store->be->subscription_set(t, user, remote, state, generation);
}

int store_subscription_delete(store_txn_t *t, const char *user, const char *remote) {
  return t->store->be->subscription_delete(t, user, remote);
}

int store_contact_insert(store_txn_t *t, const char *user, const char *remote,
                         const char *display_name) {
  return t->store->be->contact_insert(t, user, remote, display_name);
}

int store_subscription_list(store_txn_t *t, const char *user, const char *state, int64_t generation,
                            int64_t offset, int64_t limit, int64_t *total, store_federation_fn fn,
                            void *ctx) {
  return t->store->be->subscription_list(t, user, state, generation, offset, limit, total, fn, ctx);
}

int store_contact_list(store_txn_t *t, const char *user, int64_t offset, int64_t limit,
                       int64_t *total, store_federation_fn fn, void *ctx) {
  return t->store->be->contact_list(t, user, offset, limit, total, fn, ctx);
}

int store_prefs_get(store_txn_t *t, const char *user, store_pref_fn fn, void *ctx) {
  return t->store->be->prefs_get(t, user, fn, ctx);
}

int store_pref_put(store_txn_t *t, const char *user, const char *channel, bool notify,
                   const char *email, bool attach) {
  return t->store->be->pref_put(t, user, channel, notify, email, attach);
}
int store_message_get(store_txn_t *t, int64_t id, store_message_t *out) {
  return t->store->be->message_get(t, id, out);
}

int store_message_add(store_txn_t *t, store_message_t *m) {
  return t->store->be->message_add(t, m);
}

int store_messages_pending(store_txn_t *t, int64_t recipient, int64_t after, int64_t limit,
                           store_message_fn fn, void *ctx) {
  return t->store->be->messages_pending(t, recipient, after, limit, fn, ctx);
}

int store_messages_delivered(store_txn_t *t, int64_t recipient, int64_t upto, const char *time,
                             int64_t limit, store_message_fn fn, void *ctx) {
  return t->store->be->messages_delivered(t, recipient, upto, time, limit, fn, ctx);
}

int store_messages_read(store_txn_t *t, int64_t reader, int64_t peer, int64_t upto,
                        const char *time, int64_t *marked, int64_t *newest) {
  return t->store->be->messages_read(t, reader, peer, upto, time, marked, newest);
}

int store_message_history(store_txn_t *t, int64_t user, int64_t peer, int64_t before, int64_t limit,
                          store_message_fn fn, void *ctx) {
  return t->store->be->message_history(t, user, peer, before, limit, fn, ctx);
}

int store_journal_chat(store_txn_t *t, int64_t user, const char *peer, const char *direction,
                       const char *started, int64_t created_ms, int64_t count) {
  return t->store->be->journal_chat(t, user, peer, direction, started, created_ms, count);
}

int store_journal_add(store_txn_t *t, store_journal_t *e) {
  return t->store->be->journal_add(t, e);
}

int store_journal_list(store_txn_t *t, int64_t user, int64_t before, int64_t limit,
                       store_journal_fn fn, void *ctx) {
  return t->store->be->journal_list(t, user, before, limit, fn, ctx);
}

int store_retention_messages(store_txn_t *t, int64_t cutoff_ms, bool delivered_only, int64_t limit,
                             int64_t *deleted) {
  return t->store->be->retention_messages(t, cutoff_ms, delivered_only, limit, deleted);
}

int store_retention_journal(store_txn_t *t, int64_t cutoff_ms, int64_t limit, int64_t *deleted) {
  return t->store->be->retention_journal(t, cutoff_ms, limit, deleted);
}

int store_roster_put(store_txn_t *t, int64_t user, int64_t contact, const char *remote) {
  return t->store->be->roster_put(t, user, contact, remote);
}

int store_roster_delete(store_txn_t *t, int64_t user, int64_t contact, const char *remote) {
  return t->store->be->roster_delete(t, user, contact, remote);
}

int store_roster_list(store_txn_t *t, int64_t user, store_roster_fn fn, void *ctx) {
  return t->store->be->roster_list(t, user, fn, ctx);
}

int store_user_by_id(store_txn_t *t, int64_t id, store_user_t *out) {
  return t->store->be->user_by_id(t, id, out);
}

int store_admin_list(store_txn_t *t, void (*fn)(const store_admin_t *, void *), void *ctx) {
  return t->store->be->admin_list(t, fn, ctx);
}

int store_admin_get(store_txn_t *t, const char *name, store_admin_t *out) {
  return t->store->be->admin_get(t, name, out);
}

int store_admin_count_enabled(store_txn_t *t, int64_t *count) {
  return t->store->be->admin_count_enabled(t, count);
}

int store_admin_set_password(store_txn_t *t, const char *name, const char *password_hash) {
  return t->store->be->admin_set_password(t, name, password_hash);
}

int store_admin_set_enabled(store_txn_t *t, const char *name, bool enabled) {
  return t->store->be->admin_set_enabled(t, name, enabled);
}

int store_admin_delete(store_txn_t *t, const char *name) {
  return t->store->be->admin_delete(t, name);
}

int store_session_delete_admin(store_txn_t *t, const char *admin, const char *keep_hash,
                               int64_t *deleted) {
  int64_t n = 0;
  int r = t->store->be->session_delete_admin(t, admin, keep_hash, &n);
  if (deleted) *deleted = n;
  return r;
}

int store_audit_record(store_txn_t *t, const store_audit_entry_t *e) {
  return t->store->be->audit_record(t, e);
}

int store_audit_query(store_txn_t *t, const store_audit_filter_t *f, int64_t offset,
                      int64_t limit, json_t **page) {
  store_audit_filter_t b = f ? *f : (store_audit_filter_t){0};
  /* Backends see an exact key or a prefix, never the '*'. */
  char prefix[512];
  size_t n = b.key ? strlen(b.key) : 0;
  b.key_prefix = NULL;
  if (n > 0 && b.key[n - 1] == '*') {
    if (n > sizeof prefix) return -EINVAL;
    memcpy(prefix, b.key, n - 1);
    prefix[n - 1] = '\0';
    b.key_prefix = prefix;
    b.key = NULL;
  }
  return t->store->be->audit_query(t, &b, offset, limit, page);
}

/* ---- push notifications ------------------------------------------------------------------ */

int store_push_device_set(store_txn_t *t, int64_t user_id, const char *device_id,
                          const char *push_token, int64_t now_ms) {
  return t->store->be->push_device_set(t, user_id, device_id, push_token, now_ms);
}

int store_push_devices(store_txn_t *t, int64_t user_id, store_push_device_fn fn, void *ctx) {
  return t->store->be->push_devices(t, user_id, fn, ctx);
}

int store_push_token_prune(store_txn_t *t, int64_t user_id, const char *device_id,
                           const char *push_token, int64_t before_ms, bool *pruned) {
  return t->store->be->push_token_prune(t, user_id, device_id, push_token, before_ms, pruned);
}

int store_push_enqueue(store_txn_t *t, store_push_t *p) { return t->store->be->push_enqueue(t, p); }

int store_push_claim(store_txn_t *t, int64_t now_ms, int64_t lease_until_ms, const char *owner,
                     int64_t limit, store_push_fn fn, void *ctx) {
  return t->store->be->push_claim(t, now_ms, lease_until_ms, owner, limit, fn, ctx);
}

int store_push_finish(store_txn_t *t, int64_t id, const char *state, const char *reason,
                      int64_t now_ms) {
  return t->store->be->push_finish(t, id, state, reason, now_ms);
}

int store_push_retry(store_txn_t *t, int64_t id, int64_t next_ms, bool count_attempt,
                     const char *reason) {
  return t->store->be->push_retry(t, id, next_ms, count_attempt, reason);
}

int store_push_release(store_txn_t *t, const char *owner, int64_t *released) {
  return t->store->be->push_release(t, owner, released);
}

int store_push_read(store_txn_t *t, int64_t reader, int64_t peer, int64_t upto,
                    int64_t *cancelled, int64_t *to_clear) {
  return t->store->be->push_read(t, reader, peer, upto, cancelled, to_clear);
}

int store_push_fetch(store_txn_t *t, int64_t id, int64_t user_id, int64_t now_ms,
                     store_push_fn fn, void *ctx) {
  return t->store->be->push_fetch(t, id, user_id, now_ms, fn, ctx);
}

int store_push_stats(store_txn_t *t, store_push_stats_t *out) {
  return t->store->be->push_stats(t, out);
}

int store_push_purge(store_txn_t *t, int64_t before_ms, int64_t limit, int64_t *deleted) {
  return t->store->be->push_purge(t, before_ms, limit, deleted);
}

/* ---- web meetings ------------------------------------------------------------------------ */

int store_meeting_add(store_txn_t *t, const store_meeting_t *m) {
  return t->store->be->meeting_add(t, m);
}
int store_meeting_get(store_txn_t *t, const char *id, store_meeting_t *out) {
  return t->store->be->meeting_get(t, id, out);
}
int store_meeting_started(store_txn_t *t, const char *id, const char *time) {
  return t->store->be->meeting_started(t, id, time);
}
int store_meeting_end(store_txn_t *t, const char *id, const char *time, const char *reason) {
  return t->store->be->meeting_end(t, id, time, reason);
}
int store_meeting_list(store_txn_t *t, int64_t host, int64_t limit, store_meeting_fn fn,
                       void *ctx) {
  return t->store->be->meeting_list(t, host, limit, fn, ctx);
}
int store_meeting_open(store_txn_t *t, store_meeting_fn fn, void *ctx) {
  return t->store->be->meeting_open(t, fn, ctx);
}

/* ---- cluster ----------------------------------------------------------------------- */

int store_node_beat(store_txn_t *t, const store_node_t *node) {
  if (!node || !node->name[0]) return -EINVAL;
  return t->store->be->node_beat(t, node);
}

int store_node_delete(store_txn_t *t, const char *name) {
  return t->store->be->node_delete(t, name);
}

int store_node_list(store_txn_t *t, store_node_fn fn, void *ctx) {
  return t->store->be->node_list(t, fn, ctx);
}

int store_session_get(store_txn_t *t, const char *token_hash, store_session_t *out) {
  return t->store->be->session_get(t, token_hash, out);
}

int store_ticket_put(store_txn_t *t, const char *hash, const store_ticket_t *ticket) {
  if (!hash || !ticket || !ticket->user[0]) return -EINVAL;
  return t->store->be->ticket_put(t, hash, ticket);
}

int store_ticket_take(store_txn_t *t, const char *hash, int64_t now, store_ticket_t *out) {
  return t->store->be->ticket_take(t, hash, now, out);
}

int store_message_read(store_txn_t *t, int64_t id, store_message_fn fn, void *ctx) {
  return t->store->be->message_read(t, id, fn, ctx);
}

int store_meeting_host(store_txn_t *t, int64_t *epoch, char *node, size_t len) {
  return t->store->be->meeting_host(t, epoch, node, len);
}

int store_meeting_fence(store_txn_t *t, int64_t epoch) {
  return t->store->be->meeting_fence(t, epoch);
}

int store_hold_open(store_t *s, store_hold_t **hold) {
  *hold = NULL;
  return s->be->hold_open(s->db, hold);
}

int store_hold_try(store_hold_t *hold, const char *node, int64_t *epoch) {
  if (!hold || !node || !node[0]) return -EINVAL;
  return hold->be->hold_try(hold, node, epoch);
}

int store_hold_check(store_hold_t *hold, int timeout_ms) {
  return hold ? hold->be->hold_check(hold, timeout_ms) : -ENOTCONN;
}

void store_hold_close(store_hold_t *hold) {
  if (hold) hold->be->hold_close(hold);
}
