/* The store's conformance suite: every operation of store.h, run against
 * each backend in `backends` (the same tests, unchanged, for each), followed
 * by the tests of what only the SQLite backend has (its file, its pragmas,
 * its migrations). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "fixture_dir.h"
#include "store/sqlite/sqlite.h"
#include "store/store.h"

typedef struct backend_case {
  const char *name;
  const store_backend_t *(*backend)(void);
} backend_case_t;

static const backend_case_t backends[] = {
    {"sqlite", store_sqlite_backend},
};

static const backend_case_t *current;

typedef struct fixture {
  char dir[PATH_MAX];
  store_t *store;
} fixture_t;

static int open_store(fixture_t *f, char *err, size_t errlen) {
  const store_options_t so = {.data_dir = f->dir};
  return store_open(current->backend(), &so, &f->store, err, errlen);
}

static int setup(void **state) {
  fixture_t *f = calloc(1, sizeof(*f));
  if (!f) return -1;
  if (fixture_mkdtemp(f->dir, sizeof(f->dir), "test-store") < 0) return -1;
  char err[512];
  if (open_store(f, err, sizeof err) < 0) {
    fprintf(stderr, "store_open: %s\n", err);
    return -1;
  }
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture_t *f = *state;
  store_close(f->store);
  chmod(f->dir, 0700);
  fixture_rmtree(f->dir);
  free(f);
  return 0;
}

/* One write transaction that must commit; one read that must begin. */
static store_txn_t *w(store_t *s) {
  store_txn_t *t = NULL;
  assert_int_equal(store_begin(s, "test", &t), 0);
  return t;
}

static store_txn_t *r(store_t *s) {
  store_txn_t *t = NULL;
  assert_int_equal(store_read_begin(s, "test", &t), 0);
  return t;
}

static json_t *load_settings(store_t *s, uint64_t *version) {
  json_t *values = NULL;
  store_txn_t *t = r(s);
  assert_int_equal(store_settings_load(t, &values, version), 0);
  store_read_end(t);
  return values;
}

static json_t *audit_page(store_t *s, int64_t offset, int64_t limit) {
  json_t *page = NULL;
  store_txn_t *t = r(s);
  assert_int_equal(store_audit_list(t, offset, limit, &page), 0);
  store_read_end(t);
  return page;
}

static int meta_get(store_t *s, const char *name, char **v) {
  store_txn_t *t = r(s);
  int rc = store_meta_get(t, name, v);
  store_read_end(t);
  return rc;
}

/* ---- settings ------------------------------------------------------------------- */

static void test_settings_round_trip(void **state) {
  fixture_t *f = *state;
  store_t *s = f->store;
  uint64_t version = 99;
  json_t *values = load_settings(s, &version);
  assert_int_equal(version, 0);
  assert_int_equal(json_object_size(values), 0);
  json_decref(values);

  store_txn_t *t = w(s);
  assert_int_equal(store_settings_put(t, "proxy.host", "\"proxy.example.com\""), 0);
  assert_int_equal(store_settings_put(t, "proxy.port", "3128"), 0);
  assert_int_equal(store_settings_put(t, "proxy.enabled", "true"), 0);
  assert_int_equal(store_settings_put(t, "qos.policies", "[{\"name\":\"a\",\"dscp\":34}]"), 0);
  assert_int_equal(store_settings_set_version(t, 1), 0);
  assert_int_equal(store_commit(t), 0);

  values = load_settings(s, &version);
  assert_int_equal(version, 1);
  assert_int_equal(json_object_size(values), 4);
  assert_string_equal(json_string_value(json_object_get(values, "proxy.host")),
                      "proxy.example.com");
  assert_int_equal(json_integer_value(json_object_get(values, "proxy.port")), 3128);
  assert_true(json_is_true(json_object_get(values, "proxy.enabled")));
  json_t *pol = json_array_get(json_object_get(values, "qos.policies"), 0);
  assert_int_equal(json_integer_value(json_object_get(pol, "dscp")), 34);
  json_decref(values);

  /* Replace one, delete one, bump the version. */
  t = w(s);
  assert_int_equal(store_settings_put(t, "proxy.port", "8080"), 0);
  assert_int_equal(store_settings_delete(t, "proxy.host"), 0);
  assert_int_equal(store_settings_delete(t, "no.such.key"), 0);
  assert_int_equal(store_settings_set_version(t, 2), 0);
  uint64_t seen = 0;
  assert_int_equal(store_settings_version(t, &seen), 0);
  assert_int_equal(seen, 2);
  assert_int_equal(store_commit(t), 0);

  values = load_settings(s, &version);
  assert_int_equal(version, 2);
  assert_int_equal(json_object_size(values), 3);
  assert_null(json_object_get(values, "proxy.host"));
  assert_int_equal(json_integer_value(json_object_get(values, "proxy.port")), 8080);
  json_decref(values);
}

static void test_settings_put_refuses_invalid_json(void **state) {
  fixture_t *f = *state;
  store_txn_t *t = w(f->store);
  assert_int_equal(store_settings_put(t, "proxy.host", "not json"), -EINVAL);
  assert_int_equal(store_settings_put(t, "proxy.host", ""), -EINVAL);
  store_rollback(t);
}

static void test_rollback_leaves_nothing(void **state) {
  fixture_t *f = *state;
  store_t *s = f->store;
  store_txn_t *t = w(s);
  assert_int_equal(store_settings_put(t, "proxy.host", "\"p\""), 0);
  assert_int_equal(store_settings_set_version(t, 7), 0);
  assert_int_equal(store_audit_add(t, "admin", "proxy.host", NULL, "p"), 0);
  assert_int_equal(store_meta_put(t, "install.domain", "example.com"), 0);
  store_rollback(t);

  uint64_t version;
  json_t *values = load_settings(s, &version);
  assert_int_equal(version, 0);
  assert_int_equal(json_object_size(values), 0);
  json_decref(values);
  json_t *audit = audit_page(s, 0, 10);
  assert_int_equal(json_integer_value(json_object_get(audit, "total")), 0);
  json_decref(audit);
  char *v;
  assert_int_equal(meta_get(s, "install.domain", &v), -ENOENT);
  assert_null(v);
}

static void test_meta(void **state) {
  fixture_t *f = *state;
  store_t *s = f->store;
  char *v = NULL;
  assert_int_equal(meta_get(s, "install.public_url", &v), -ENOENT);
  store_txn_t *t = w(s);
  assert_int_equal(store_meta_put(t, "install.public_url", "http://host:8443"), 0);
  assert_int_equal(store_commit(t), 0);
  assert_int_equal(meta_get(s, "install.public_url", &v), 0);
  assert_string_equal(v, "http://host:8443");
  free(v);
  t = w(s);
  assert_int_equal(store_meta_put(t, "install.public_url", "http://other"), 0);
  assert_int_equal(store_commit(t), 0);
  assert_int_equal(meta_get(s, "install.public_url", &v), 0);
  assert_string_equal(v, "http://other");
  free(v);
}

/* ---- transactions ------------------------------------------------------------------ */

typedef struct retry_ctx {
  int calls, fail_first;
} retry_ctx_t;

/* Writes a row, and reports a serialisation failure the first times. */
static int flaky(store_txn_t *t, void *vctx) {
  retry_ctx_t *c = vctx;
  c->calls++;
  int rc = store_meta_put(t, "flaky", "written");
  if (rc < 0) return rc;
  return c->calls <= c->fail_first ? -EAGAIN : 0;
}

static void test_run_txn_retries_serialisation_failures(void **state) {
  fixture_t *f = *state;
  retry_ctx_t c = {.fail_first = 2};
  assert_int_equal(store_run_txn(f->store, "flaky", flaky, &c), 0);
  assert_int_equal(c.calls, 3);
  char *v;
  assert_int_equal(meta_get(f->store, "flaky", &v), 0);
  assert_string_equal(v, "written");
  free(v);

  /* Bounded: it gives up, rolled back, with a sentence. */
  retry_ctx_t never = {.fail_first = 1000};
  uint64_t errors = store_error_count(f->store);
  assert_int_equal(store_run_txn(f->store, "hopeless", flaky, &never), -EAGAIN);
  assert_int_equal(never.calls, STORE_TXN_ATTEMPTS);
  assert_int_equal(store_error_count(f->store), errors + 1);
  assert_non_null(strstr(store_last_error(f->store), "hopeless"));
}

static int refuse(store_txn_t *t, void *vctx) {
  int rc = store_meta_put(t, "refused", "x");
  return rc < 0 ? rc : -EPERM;
}

static void test_run_txn_rolls_back_on_error(void **state) {
  fixture_t *f = *state;
  assert_int_equal(store_run_txn(f->store, "refuse", refuse, NULL), -EPERM);
  char *v;
  assert_int_equal(meta_get(f->store, "refused", &v), -ENOENT);
}

static void test_notify_listen_are_accepted(void **state) {
  /* Single-node backends accept both and have no one to tell. */
  fixture_t *f = *state;
  store_txn_t *t = w(f->store);
  assert_int_equal(store_notify(t, "settings", "5"), 0);
  assert_int_equal(store_commit(t), 0);
}

/* ---- audit ----------------------------------------------------------------------- */

static void test_audit_paging(void **state) {
  fixture_t *f = *state;
  store_t *s = f->store;
  char key[32], val[32];
  store_txn_t *t = w(s);
  for (int i = 0; i < 25; i++) {
    snprintf(key, sizeof(key), "key.%d", i);
    snprintf(val, sizeof(val), "v%d", i);
    assert_int_equal(store_audit_add(t, "admin", key, i == 0 ? NULL : "old", val), 0);
  }
  assert_int_equal(store_audit_add(t, "ctl", "proxy.password", "(set)", NULL), 0);
  assert_int_equal(store_commit(t), 0);

  json_t *page = audit_page(s, 0, 10);
  assert_int_equal(json_integer_value(json_object_get(page, "total")), 26);
  assert_int_equal(json_integer_value(json_object_get(page, "offset")), 0);
  assert_int_equal(json_integer_value(json_object_get(page, "limit")), 10);
  json_t *entries = json_object_get(page, "entries");
  assert_int_equal(json_array_size(entries), 10);
  /* Newest first: the last one added comes first. */
  json_t *e0 = json_array_get(entries, 0);
  assert_string_equal(json_string_value(json_object_get(e0, "key")), "proxy.password");
  assert_string_equal(json_string_value(json_object_get(e0, "actor")), "ctl");
  assert_string_equal(json_string_value(json_object_get(e0, "old")), "(set)");
  assert_true(json_is_null(json_object_get(e0, "new")));
  /* RFC 3339 UTC with milliseconds. */
  const char *time = json_string_value(json_object_get(e0, "time"));
  assert_int_equal(strlen(time), 24);
  assert_true(time[4] == '-' && time[10] == 'T' && time[19] == '.' && time[23] == 'Z');
  json_int_t prev = json_integer_value(json_object_get(e0, "id"));
  for (size_t i = 1; i < json_array_size(entries); i++) {
    json_int_t id = json_integer_value(json_object_get(json_array_get(entries, i), "id"));
    assert_true(id < prev);
    prev = id;
  }
  assert_string_equal(json_string_value(json_object_get(json_array_get(entries, 1), "key")),
                      "key.24");
  json_decref(page);

  /* Last page: oldest entry, with a null old value. */
  page = audit_page(s, 20, 10);
  entries = json_object_get(page, "entries");
  assert_int_equal(json_array_size(entries), 6);
  json_t *last = json_array_get(entries, 5);
  assert_string_equal(json_string_value(json_object_get(last, "key")), "key.0");
  assert_true(json_is_null(json_object_get(last, "old")));
  assert_string_equal(json_string_value(json_object_get(last, "new")), "v0");
  json_decref(page);

  /* Past the end: empty page, total still right. */
  page = audit_page(s, 100, 10);
  assert_int_equal(json_array_size(json_object_get(page, "entries")), 0);
  assert_int_equal(json_integer_value(json_object_get(page, "total")), 26);
  json_decref(page);

  /* Clamping. */
  page = audit_page(s, -5, 0);
  assert_int_equal(json_integer_value(json_object_get(page, "offset")), 0);
  assert_int_equal(json_integer_value(json_object_get(page, "limit")), 1);
  assert_int_equal(json_array_size(json_object_get(page, "entries")), 1);
  json_decref(page);
  page = audit_page(s, 0, 100000);
  assert_int_equal(json_integer_value(json_object_get(page, "limit")), 500);
  assert_int_equal(json_array_size(json_object_get(page, "entries")), 26);
  json_decref(page);
}

/* ---- admins and sessions ---------------------------------------------------------- */

static void test_admins(void **state) {
  fixture_t *f = *state;
  store_t *s = f->store;
  int64_t n = -1;
  char *hash = NULL;
  store_txn_t *t = r(s);
  assert_int_equal(store_admin_count(t, &n), 0);
  assert_int_equal(n, 0);
  assert_int_equal(store_admin_get_hash(t, "admin", &hash), -ENOENT);
  assert_null(hash);
  store_read_end(t);

  t = w(s);
  assert_int_equal(store_admin_create(t, "admin", "$argon2id$v=19$m=65536,t=2,p=1$x$y"), 0);
  assert_int_equal(store_commit(t), 0);
  t = r(s);
  assert_int_equal(store_admin_count(t, &n), 0);
  assert_int_equal(n, 1);
  assert_int_equal(store_admin_get_hash(t, "admin", &hash), 0);
  assert_string_equal(hash, "$argon2id$v=19$m=65536,t=2,p=1$x$y");
  free(hash);
  store_read_end(t);

  /* A second account of the same name is refused. A taken name is an
   * answer, not a failure of the database: not counted as a store error. */
  uint64_t errors = store_error_count(s);
  t = w(s);
  assert_int_equal(store_admin_create(t, "admin", "other"), -EEXIST);
  store_rollback(t);
  assert_int_equal(store_error_count(s), errors);
}

static void make_session(store_session_t *x, const char *token, const char *admin, int64_t created,
                         int64_t expires) {
  memset(x, 0, sizeof(*x));
  snprintf(x->token_hash, sizeof(x->token_hash), "%s", token);
  snprintf(x->admin, sizeof(x->admin), "%s", admin);
  snprintf(x->csrf, sizeof(x->csrf), "csrf-%s", token);
  x->created = created;
  x->expires = expires;
}

typedef struct collected {
  int n;
  store_session_t items[8];
} collected_t;

static void collect(const store_session_t *x, void *ctx) {
  collected_t *c = ctx;
  if (c->n < 8) c->items[c->n++] = *x;
}

static int put_session(store_t *s, const store_session_t *x) {
  store_txn_t *t = w(s);
  int rc = store_session_put(t, x);
  if (rc == 0) return store_commit(t);
  store_rollback(t);
  return rc;
}

static collected_t live_sessions(store_t *s, int64_t now) {
  collected_t c = {0};
  store_txn_t *t = w(s);
  assert_int_equal(store_session_purge(t, now), 0);
  assert_int_equal(store_session_each(t, collect, &c), 0);
  assert_int_equal(store_commit(t), 0);
  return c;
}

static void test_sessions(void **state) {
  fixture_t *f = *state;
  store_t *s = f->store;
  store_txn_t *t = w(s);
  assert_int_equal(store_admin_create(t, "admin", "h"), 0);
  assert_int_equal(store_commit(t), 0);

  store_session_t x;
  make_session(&x, "aaaa", "admin", 1000, 2000);
  assert_int_equal(put_session(s, &x), 0);
  make_session(&x, "bbbb", "admin", 1000, 5000);
  assert_int_equal(put_session(s, &x), 0);
  make_session(&x, "cccc", "admin", 1000, 3000);
  assert_int_equal(put_session(s, &x), 0);
  make_session(&x, "dddd", "admin", 1000, 9000);
  assert_int_equal(put_session(s, &x), 0);
  t = w(s);
  assert_int_equal(store_session_delete(t, "dddd"), 0);
  assert_int_equal(store_commit(t), 0);

  /* A session for an unknown admin breaks the foreign key. */
  make_session(&x, "eeee", "nobody", 1000, 9000);
  assert_int_equal(put_session(s, &x), -EINVAL);

  collected_t c = live_sessions(s, 3000);
  assert_int_equal(c.n, 1); /* aaaa and cccc have expired at 3000 */
  assert_string_equal(c.items[0].token_hash, "bbbb");
  assert_string_equal(c.items[0].admin, "admin");
  assert_string_equal(c.items[0].csrf, "csrf-bbbb");
  assert_int_equal(c.items[0].created, 1000);
  assert_int_equal(c.items[0].expires, 5000);

  /* The expired rows are gone, not merely skipped. */
  c = live_sessions(s, 0);
  assert_int_equal(c.n, 1);
}

/* ---- the directory ------------------------------------------------------------------ */

static void test_domain_generations(void **state) {
  fixture_t *f = *state;
  store_t *s = f->store;
  int64_t gen = 0;
  char name[256];
  store_txn_t *t = w(s);
  assert_int_equal(store_domain_current(t, &gen, name, sizeof name), -ENOENT);
  assert_int_equal(store_domain_add(t, 1, "old.example", "test"), 0);
  assert_int_equal(store_domain_add(t, 2, "new.example", "test"), 0);
  assert_int_equal(store_domain_add(t, 2, "again.example", "test"), -EEXIST);
  assert_int_equal(store_domain_current(t, &gen, name, sizeof name), 0);
  assert_int_equal(gen, 2);
  assert_string_equal(name, "new.example");
  bool was = false;
  assert_int_equal(store_domain_was(t, "old.example", 2, &was), 0);
  assert_true(was);
  assert_int_equal(store_domain_was(t, "new.example", 2, &was), 0);
  assert_false(was);
  assert_int_equal(store_domain_was(t, "other.example", 9, &was), 0);
  assert_false(was);
  assert_int_equal(store_commit(t), 0);
}

static void user_w(store_user_write_t *u, const char *name, const char *windows) {
  *u = (store_user_write_t){.set_name = true, .name = name, .set_windows_account = windows != NULL,
                            .windows_account = windows, .set_display_name = true,
                            .display_name = "Some One", .set_password_hash = true,
                            .password_hash = "hash-of-secret"};
}

typedef struct names {
  int n;
  char items[8][65];
} names_t;

static void collect_user(const store_user_t *u, void *ctx) {
  names_t *c = ctx;
  if (c->n < 8) snprintf(c->items[c->n++], 65, "%s", u->name);
}

static void test_users(void **state) {
  fixture_t *f = *state;
  store_t *s = f->store;
  store_txn_t *t = w(s);
  store_user_write_t u;
  const char *conflict = NULL;
  user_w(&u, "alice", "CORP\\alice");
  assert_int_equal(store_user_insert(t, &u, &conflict), 0);
  user_w(&u, "bob", NULL);
  assert_int_equal(store_user_insert(t, &u, &conflict), 0);
  user_w(&u, "alice", NULL);
  assert_int_equal(store_user_insert(t, &u, &conflict), -EEXIST);
  assert_string_equal(conflict, "name");
  conflict = NULL;
  user_w(&u, "carol", "corp\\ALICE"); /* Windows accounts compare without case */
  assert_int_equal(store_user_insert(t, &u, &conflict), -EEXIST);
  assert_string_equal(conflict, "windows_account");
  assert_int_equal(store_commit(t), 0);

  t = r(s);
  store_user_t got;
  assert_int_equal(store_user_get(t, "alice", &got), 0);
  assert_string_equal(got.name, "alice");
  assert_true(got.has_display_name);
  assert_string_equal(got.display_name, "Some One");
  assert_true(got.has_windows_account);
  assert_true(got.enabled);
  assert_true(got.has_password);
  assert_int_equal(strlen(got.created_at), 24);
  assert_int_equal(store_user_get(t, "bob", &got), 0);
  assert_false(got.has_windows_account);
  assert_int_equal(store_user_get(t, "nobody", &got), -ENOENT);
  assert_int_equal(store_user_by_windows_account(t, "Corp\\Alice", &got), 0);
  assert_string_equal(got.name, "alice");
  int64_t id = 0;
  char *hash = NULL;
  bool enabled = false;
  assert_int_equal(store_user_credentials(t, "alice", &id, &hash, &enabled), 0);
  assert_string_equal(hash, "hash-of-secret");
  assert_true(id > 0 && enabled);
  free(hash);

  names_t all = {0};
  int64_t total = 0;
  assert_int_equal(store_user_list(t, NULL, NULL, 0, 10, &total, collect_user, &all), 0);
  assert_int_equal(total, 2);
  assert_int_equal(all.n, 2);
  assert_string_equal(all.items[0], "alice");
  assert_string_equal(all.items[1], "bob");
  names_t found = {0};
  assert_int_equal(store_user_list(t, "SOME", NULL, 0, 10, &total, collect_user, &found), 0);
  assert_int_equal(total, 2); /* both display names contain it, case folded */
  names_t wild = {0};
  assert_int_equal(store_user_list(t, "%", NULL, 0, 10, &total, collect_user, &wild), 0);
  assert_int_equal(total, 0); /* LIKE's wildcards are literal */
  names_t exact = {0};
  assert_int_equal(store_user_list(t, "bob@x", "bob", 0, 10, &total, collect_user, &exact), 0);
  assert_int_equal(total, 1);
  assert_string_equal(exact.items[0], "bob");
  names_t paged = {0};
  assert_int_equal(store_user_list(t, NULL, NULL, 1, 1, &total, collect_user, &paged), 0);
  assert_int_equal(total, 2);
  assert_int_equal(paged.n, 1);
  assert_string_equal(paged.items[0], "bob");
  store_read_end(t);

  /* Update: rename and clear the display name; an unknown user is -ENOENT. */
  t = w(s);
  store_user_write_t up = {.set_name = true, .name = "alicia", .set_display_name = true,
                           .display_name = NULL, .set_enabled = true, .enabled = false};
  assert_int_equal(store_user_update(t, "alice", &up, &conflict), 0);
  assert_int_equal(store_user_update(t, "nobody", &up, &conflict), -ENOENT);
  store_user_write_t clash = {.set_name = true, .name = "bob"};
  assert_int_equal(store_user_update(t, "alicia", &clash, &conflict), -EEXIST);
  assert_int_equal(store_user_get(t, "alicia", &got), 0);
  assert_false(got.has_display_name);
  assert_false(got.enabled);
  assert_int_equal(store_user_delete(t, "bob"), 0);
  assert_int_equal(store_user_delete(t, "bob"), -ENOENT);
  assert_int_equal(store_commit(t), 0);
}

static void test_tokens_and_devices(void **state) {
  fixture_t *f = *state;
  store_t *s = f->store;
  store_txn_t *t = w(s);
  store_user_write_t u;
  user_w(&u, "alice", NULL);
  assert_int_equal(store_user_insert(t, &u, NULL), 0);
  assert_int_equal(store_domain_add(t, 1, "example.com", "test"), 0);
  int64_t id;
  char *hash;
  bool enabled;
  assert_int_equal(store_user_credentials(t, "alice", &id, &hash, &enabled), 0);
  free(hash);
  assert_int_equal(store_device_put(t, id, "phone-1", "ios", "apns-token", "alice@example.com", 1),
                   0);
  assert_int_equal(store_token_put(t, "hash-mobile", id, "phone-1", 1, 100, 5000), 0);
  assert_int_equal(store_token_put(t, "hash-desktop", id, NULL, 1, 100, 200), 0);
  assert_int_equal(store_token_put(t, "hash-desktop", id, NULL, 1, 100, 200), -EEXIST);
  store_domain_counts_t n;
  assert_int_equal(store_domain_counts(t, 1, &n), 0);
  assert_int_equal(n.users, 1);
  assert_int_equal(n.mobile_devices, 1);
  assert_int_equal(store_domain_counts(t, 2, &n), 0);
  assert_int_equal(n.mobile_devices, 0);
  assert_int_equal(store_commit(t), 0);

  t = r(s);
  store_token_t tok;
  assert_int_equal(store_token_find(t, "hash-mobile", &tok), 0);
  assert_true(tok.mobile);
  assert_true(tok.device_registered);
  assert_string_equal(tok.device_id, "phone-1");
  assert_string_equal(tok.platform, "ios");
  assert_string_equal(tok.login, "alice@example.com");
  assert_true(tok.has_issued_domain);
  assert_string_equal(tok.issued_domain, "example.com");
  assert_string_equal(tok.user.name, "alice");
  assert_int_equal(tok.expires, 5000);
  assert_int_equal(store_token_find(t, "hash-desktop", &tok), 0);
  assert_false(tok.mobile);
  assert_int_equal(store_token_find(t, "nope", &tok), -ENOENT);
  store_read_end(t);

  /* Purging removes the expired desktop token; a device's tokens go with it. */
  t = w(s);
  assert_int_equal(store_tokens_purge(t, id, 300), 0);
  assert_int_equal(store_token_find(t, "hash-desktop", &tok), -ENOENT);
  assert_int_equal(store_token_find(t, "hash-mobile", &tok), 0);
  assert_int_equal(store_tokens_delete_device(t, id, "phone-1"), 0);
  assert_int_equal(store_token_find(t, "hash-mobile", &tok), -ENOENT);
  assert_int_equal(store_commit(t), 0);
}

typedef struct rows {
  int n;
  char remote[8][64], state[8][32];
} rows_t;

static void collect_row(const store_federation_row_t *row, void *ctx) {
  rows_t *c = ctx;
  if (c->n >= 8) return;
  snprintf(c->remote[c->n], 64, "%s", row->remote);
  snprintf(c->state[c->n], 32, "%s", row->state ? row->state : "");
  c->n++;
}

static void test_federation_rows(void **state) {
  fixture_t *f = *state;
  store_t *s = f->store;
  store_txn_t *t = w(s);
  store_user_write_t u;
  user_w(&u, "alice", NULL);
  assert_int_equal(store_user_insert(t, &u, NULL), 0);
  assert_int_equal(store_subscription_insert(t, "alice", "bob@partner.test", "active", 1), 0);
  assert_int_equal(store_subscription_insert(t, "alice", "eve@partner.test", "pending", 2), 0);
  assert_int_equal(store_subscription_insert(t, "alice", "bob@partner.test", "active", 2),
                   -EEXIST);
  assert_int_equal(store_subscription_insert(t, "nobody", "x@partner.test", "active", 2), -ENOENT);
  assert_int_equal(store_contact_insert(t, "alice", "bob@partner.test", "Bob"), 0);
  assert_int_equal(store_contact_insert(t, "nobody", "bob@partner.test", NULL), -ENOENT);
  assert_int_equal(store_commit(t), 0);

  t = r(s);
  rows_t c = {0};
  int64_t total = 0;
  /* At generation 2 the first subscription was made under an earlier domain. */
  assert_int_equal(store_subscription_list(t, NULL, NULL, 2, 0, 10, &total, collect_row, &c), 0);
  assert_int_equal(total, 2);
  assert_string_equal(c.state[0], "to-be-recreated");
  assert_string_equal(c.state[1], "pending");
  rows_t p = {0};
  assert_int_equal(store_subscription_list(t, "alice", "pending", 2, 0, 10, &total, collect_row,
                                           &p),
                   0);
  assert_int_equal(total, 1);
  assert_string_equal(p.remote[0], "eve@partner.test");
  rows_t k = {0};
  assert_int_equal(store_contact_list(t, "alice", 0, 10, &total, collect_row, &k), 0);
  assert_int_equal(total, 1);
  assert_string_equal(k.remote[0], "bob@partner.test");
  store_read_end(t);
}

typedef struct prefs {
  int n;
  char channel[4][16], email[4][64];
  bool notify[4], attach[4];
} prefs_t;

static void collect_pref(const char *channel, bool notify, const char *email, bool attach,
                         void *ctx) {
  prefs_t *p = ctx;
  if (p->n >= 4) return;
  snprintf(p->channel[p->n], 16, "%s", channel);
  snprintf(p->email[p->n], 64, "%s", email);
  p->notify[p->n] = notify;
  p->attach[p->n] = attach;
  p->n++;
}

static void test_prefs(void **state) {
  fixture_t *f = *state;
  store_t *s = f->store;
  store_txn_t *t = w(s);
  store_user_write_t u;
  user_w(&u, "alice", NULL);
  assert_int_equal(store_user_insert(t, &u, NULL), 0);
  assert_int_equal(store_pref_put(t, "alice", "voicemail", true, "a@example.com", true), 0);
  assert_int_equal(store_pref_put(t, "alice", "voicemail", false, "b@example.com", false), 0);
  assert_int_equal(store_pref_put(t, "nobody", "voicemail", true, "", false), -ENOENT);
  assert_int_equal(store_pref_put(t, "alice", "pager", true, "", false), -EINVAL);
  assert_int_equal(store_commit(t), 0);
  t = r(s);
  prefs_t p = {0};
  assert_int_equal(store_prefs_get(t, "alice", collect_pref, &p), 0);
  assert_int_equal(p.n, 1);
  assert_string_equal(p.channel[0], "voicemail");
  assert_string_equal(p.email[0], "b@example.com");
  assert_false(p.notify[0]);
  prefs_t none = {0};
  assert_int_equal(store_prefs_get(t, "nobody", collect_pref, &none), -ENOENT);
  store_read_end(t);
}

/* ---- reopening and threads ---------------------------------------------------------- */

static void test_reopen_keeps_data(void **state) {
  fixture_t *f = *state;
  store_t *s = f->store;
  store_txn_t *t = w(s);
  assert_int_equal(store_settings_put(t, "domain.name", "\"example.com\""), 0);
  assert_int_equal(store_settings_set_version(t, 5), 0);
  assert_int_equal(store_meta_put(t, "install.domain", "example.com"), 0);
  assert_int_equal(store_audit_add(t, "admin", "domain.name", NULL, "example.com"), 0);
  assert_int_equal(store_admin_create(t, "admin", "hash"), 0);
  assert_int_equal(store_commit(t), 0);
  store_session_t x;
  make_session(&x, "tok", "admin", 1, 10);
  assert_int_equal(put_session(s, &x), 0);
  store_close(s);
  f->store = NULL;

  char err[512];
  assert_int_equal(open_store(f, err, sizeof(err)), 0);
  s = f->store;
  assert_int_equal(store_schema_version(s), store_code_schema_version(s));
  uint64_t version;
  json_t *values = load_settings(s, &version);
  assert_int_equal(version, 5);
  assert_string_equal(json_string_value(json_object_get(values, "domain.name")), "example.com");
  json_decref(values);
  char *v;
  assert_int_equal(meta_get(s, "install.domain", &v), 0);
  assert_string_equal(v, "example.com");
  free(v);
  json_t *audit = audit_page(s, 0, 10);
  assert_int_equal(json_integer_value(json_object_get(audit, "total")), 1);
  json_decref(audit);
  collected_t c = live_sessions(s, 5);
  assert_int_equal(c.n, 1);
}

static int audit_once(store_txn_t *t, void *key) {
  return store_audit_add(t, "t", key, NULL, "x");
}

static void *writer(void *arg) {
  store_t *s = arg;
  char key[32];
  for (int i = 0; i < 50; i++) {
    snprintf(key, sizeof(key), "k%d", i);
    store_run_txn(s, "audit", audit_once, key);
    store_txn_t *t;
    if (store_read_begin(s, "list", &t) == 0) {
      json_t *page;
      if (store_audit_list(t, 0, 5, &page) == 0) json_decref(page);
      store_read_end(t);
    }
  }
  return NULL;
}

static void test_threads(void **state) {
  fixture_t *f = *state;
  pthread_t t[4];
  for (int i = 0; i < 4; i++) assert_int_equal(pthread_create(&t[i], NULL, writer, f->store), 0);
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  json_t *page = audit_page(f->store, 0, 1);
  assert_int_equal(json_integer_value(json_object_get(page, "total")), 200);
  json_decref(page);
  assert_int_equal(store_error_count(f->store), 0);
}

static void test_close_null(void **state) {
  (void)state;
  store_close(NULL);
}

/* ---- SQLite only: the file, the pragmas, the migrations ------------------------------ */

/* A second connection to the file, as an operator's sqlite3 would open one. */
static int64_t sql_int(const char *dir, const char *sql) {
  char path[PATH_MAX + 16];
  snprintf(path, sizeof path, "%s/%s", dir, STORE_SQLITE_FILE_NAME);
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  sqlite3_stmt *st;
  int64_t v = -1;
  assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
  assert_true(rc == SQLITE_ROW || rc == SQLITE_DONE);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
}

static void test_sqlite_new_store_schema(void **state) {
  fixture_t *f = *state;
  /* Every migration step ran; later issues add steps. */
  assert_true(store_code_schema_version(f->store) >= 1);
  assert_int_equal(store_schema_version(f->store), store_code_schema_version(f->store));
  assert_int_equal(sql_int(f->dir, "PRAGMA user_version"), store_code_schema_version(f->store));
  assert_int_equal(sql_int(f->dir, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' "
                                   "AND name IN ('settings', 'meta', 'audit', 'admins', "
                                   "'sessions')"),
                   5);
  assert_int_equal(store_error_count(f->store), 0);
  assert_string_equal(store_backend_name(f->store), "sqlite");

  char path[PATH_MAX + 16];
  struct stat st;
  snprintf(path, sizeof(path), "%s/%s", f->dir, STORE_SQLITE_FILE_NAME);
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_sqlite_pragmas(void **state) {
  fixture_t *f = *state;
  /* WAL is a property of the file; the others are per connection, so they
   * are seen through the store's own. */
  assert_int_equal(sql_int(f->dir, "SELECT count(*) FROM pragma_journal_mode WHERE journal_mode = "
                                   "'wal'"),
                   1);
  /* A foreign key violation is refused: foreign_keys is on. */
  store_txn_t *t = w(f->store);
  store_session_t x;
  make_session(&x, "zz", "nobody", 1, 2);
  assert_int_equal(store_session_put(t, &x), -EINVAL);
  store_rollback(t);
}

static void test_sqlite_integrity_check(void **state) {
  fixture_t *f = *state;
  assert_int_equal(store_integrity_check(f->store), 0);
}

static void test_sqlite_sessions_cascade(void **state) {
  fixture_t *f = *state;
  store_txn_t *t = w(f->store);
  assert_int_equal(store_admin_create(t, "admin", "h"), 0);
  store_session_t x;
  make_session(&x, "aaaa", "admin", 1000, 9000);
  assert_int_equal(store_session_put(t, &x), 0);
  assert_int_equal(store_commit(t), 0);
  assert_int_equal(sql_int(f->dir, "SELECT count(*) FROM sessions"), 1);
  /* Deleting the admin takes its sessions with it. */
  assert_int_equal(sql_int(f->dir, "PRAGMA foreign_keys = ON"), -1);
  char path[PATH_MAX + 16];
  snprintf(path, sizeof path, "%s/%s", f->dir, STORE_SQLITE_FILE_NAME);
  sqlite3 *db;
  assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  assert_int_equal(sqlite3_exec(db, "PRAGMA foreign_keys = ON; DELETE FROM admins", NULL, NULL,
                                NULL),
                   SQLITE_OK);
  sqlite3_close(db);
  assert_int_equal(sql_int(f->dir, "SELECT count(*) FROM sessions"), 0);
}

static void test_sqlite_newer_store_refused(void **state) {
  fixture_t *f = *state;
  store_close(f->store);
  f->store = NULL;
  assert_int_equal(sql_int(f->dir, "PRAGMA user_version = 99"), -1);

  char err[512] = "";
  assert_true(open_store(f, err, sizeof(err)) < 0);
  assert_null(f->store);
  assert_non_null(strstr(err, "99"));
  assert_non_null(strstr(err, "newer"));
  assert_non_null(strstr(err, STORE_SQLITE_FILE_NAME));
}

static void test_sqlite_not_a_database(void **state) {
  char dir[PATH_MAX], path[PATH_MAX + 16], err[512] = "";
  assert_int_equal(fixture_mkdtemp(dir, sizeof(dir), "test-store"), 0);
  snprintf(path, sizeof(path), "%s/%s", dir, STORE_SQLITE_FILE_NAME);
  FILE *fp = fopen(path, "w");
  assert_non_null(fp);
  for (int i = 0; i < 200; i++) fputs("this is not a database file at all.\n", fp);
  fclose(fp);
  store_t *s = (store_t *)1;
  const store_options_t so = {.data_dir = dir};
  assert_true(store_open(store_sqlite_backend(), &so, &s, err, sizeof(err)) < 0);
  assert_null(s);
  assert_non_null(strstr(err, "not an SQLite database"));
  assert_non_null(strstr(err, path));
  fixture_rmtree(dir);
}

static void test_sqlite_unwritable_directory(void **state) {
  char dir[PATH_MAX], err[512] = "";
  store_t *s = NULL;

  /* A directory that does not exist. */
  assert_int_equal(fixture_mkdtemp(dir, sizeof(dir), "test-store"), 0);
  char missing[PATH_MAX + 16];
  snprintf(missing, sizeof(missing), "%s/missing", dir);
  store_options_t so = {.data_dir = missing};
  assert_true(store_open(store_sqlite_backend(), &so, &s, err, sizeof(err)) < 0);
  assert_null(s);
  assert_non_null(strstr(err, missing));
  assert_non_null(strstr(err, "check"));

  /* A directory we may not write to. Root ignores mode bits, so it gets a
   * directory no one can create files in instead. */
  const char *target = dir;
  if (geteuid() == 0)
    target = "/proc/self";
  else
    assert_int_equal(chmod(dir, 0500), 0);
  err[0] = '\0';
  so.data_dir = target;
  int rc = store_open(store_sqlite_backend(), &so, &s, err, sizeof(err));
  assert_true(rc < 0);
  assert_null(s);
  assert_non_null(strstr(err, target));
  assert_non_null(strstr(err, "permission"));
  assert_non_null(strstr(err, "disk"));
  chmod(dir, 0700);
  fixture_rmtree(dir);
}

#define CONFORMANCE(t) cmocka_unit_test_setup_teardown(t, setup, teardown)

int main(void) {
  const struct CMUnitTest conformance[] = {
      CONFORMANCE(test_settings_round_trip),
      CONFORMANCE(test_settings_put_refuses_invalid_json),
      CONFORMANCE(test_rollback_leaves_nothing),
      CONFORMANCE(test_meta),
      CONFORMANCE(test_run_txn_retries_serialisation_failures),
      CONFORMANCE(test_run_txn_rolls_back_on_error),
      CONFORMANCE(test_notify_listen_are_accepted),
      CONFORMANCE(test_audit_paging),
      CONFORMANCE(test_admins),
      CONFORMANCE(test_sessions),
      CONFORMANCE(test_domain_generations),
      CONFORMANCE(test_users),
      CONFORMANCE(test_tokens_and_devices),
      CONFORMANCE(test_federation_rows),
      CONFORMANCE(test_prefs),
      CONFORMANCE(test_reopen_keeps_data),
      CONFORMANCE(test_threads),
      cmocka_unit_test(test_close_null),
  };
  int failed = 0;
  for (size_t b = 0; b < sizeof backends / sizeof backends[0]; b++) {
    current = &backends[b];
    char name[64];
    snprintf(name, sizeof name, "store conformance: %s", current->name);
    failed += _cmocka_run_group_tests(name, conformance, sizeof conformance / sizeof conformance[0],
                                      NULL, NULL);
  }
  current = &backends[0];
  const struct CMUnitTest sqlite_only[] = {
      CONFORMANCE(test_sqlite_new_store_schema),
      CONFORMANCE(test_sqlite_pragmas),
      CONFORMANCE(test_sqlite_integrity_check),
      CONFORMANCE(test_sqlite_sessions_cascade),
      CONFORMANCE(test_sqlite_newer_store_refused),
      cmocka_unit_test(test_sqlite_not_a_database),
      cmocka_unit_test(test_sqlite_unwritable_directory),
  };
  failed += cmocka_run_group_tests_name("store: the SQLite backend", sqlite_only, NULL, NULL);
  return failed;
}
