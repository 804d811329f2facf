/* The store's conformance suite: every operation of store.h, run against
 * each backend in `backends` (the same tests, unchanged, for each), followed
 * by the tests of what only one backend has: SQLite's file, pragmas and
 * migrations; PostgreSQL's notifications, listener, pool and retries.
 *
 *   test_store                   SQLite, and PostgreSQL too when ATRIUM_TEST_PG is set
 *   test_store sqlite|postgresql the backends named
 *
 * ATRIUM_TEST_PG is a libpq connection string (scripts/with-postgres.sh makes
 * a throwaway server and sets it). Each PostgreSQL test gets a schema of its
 * own in that database, dropped afterwards. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "fixture_dir.h"
#include "store/pg/pg.h"
#include "store/sqlite/sqlite.h"
#include "store/store.h"

typedef struct backend_case {
  const char *name;
  const store_backend_t *(*backend)(void);
  bool pg;
} backend_case_t;

static const backend_case_t backends[] = {
    {"sqlite", store_sqlite_backend, false},
    {"postgresql", store_pg_backend, true},
};

static const backend_case_t *current;

typedef struct fixture {
  char dir[PATH_MAX];
  char schema[64];    /* PostgreSQL: this test's schema */
  char conninfo[2048]; /* PostgreSQL: ATRIUM_TEST_PG with the schema as search_path */
  store_t *store;
} fixture_t;

/* ---- PostgreSQL: a connection of the test's own, as an operator's psql ------------ */

static PGconn *admin_conn;

static void no_notices(void *arg, const char *message) {
  (void)arg;
  (void)message;
}

static PGconn *admin(void) {
  if (admin_conn && PQstatus(admin_conn) == CONNECTION_OK) return admin_conn;
  PQfinish(admin_conn);
  admin_conn = PQconnectdb(getenv("ATRIUM_TEST_PG"));
  PQsetNoticeProcessor(admin_conn, no_notices, NULL);
  if (PQstatus(admin_conn) != CONNECTION_OK)
    fprintf(stderr, "cannot connect to ATRIUM_TEST_PG: %s", PQerrorMessage(admin_conn));
  assert_int_equal(PQstatus(admin_conn), CONNECTION_OK);
  return admin_conn;
}

static PGresult *admin_query(const char *fmt, va_list ap) {
  char sql[2048];
  vsnprintf(sql, sizeof sql, fmt, ap);
  PGresult *res = PQexec(admin(), sql);
  ExecStatusType st = PQresultStatus(res);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
    fprintf(stderr, "%s: %s", sql, PQresultErrorMessage(res));
  assert_true(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK);
  return res;
}

static void admin_exec(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void admin_exec(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  PGresult *res = admin_query(fmt, ap);
  va_end(ap);
  PQclear(res);
}

/* The first column of the first row as an integer. */
static int64_t admin_int(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int64_t admin_int(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  PGresult *res = admin_query(fmt, ap);
  va_end(ap);
  assert_true(PQntuples(res) >= 1);
  int64_t v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
  PQclear(res);
  return v;
}

static int open_store(fixture_t *f, char *err, size_t errlen) {
  const store_options_t so = {.data_dir = f->dir, .conninfo = current->pg ? f->conninfo : NULL};
  return store_open(current->backend(), &so, &f->store, err, errlen);
}

static int setup(void **state) {
  fixture_t *f = calloc(1, sizeof(*f));
  if (!f) return -1;
  if (fixture_mkdtemp(f->dir, sizeof(f->dir), "test-store") < 0) return -1;
  if (current->pg) {
    static unsigned seq;
    snprintf(f->schema, sizeof f->schema, "test_%ld_%u", (long)getpid(), ++seq);
    admin_exec("CREATE SCHEMA %s", f->schema);
    snprintf(f->conninfo, sizeof f->conninfo, "%s options='-csearch_path=%s'",
             getenv("ATRIUM_TEST_PG"), f->schema);
  }
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
  if (f->schema[0]) admin_exec("DROP SCHEMA %s CASCADE", f->schema);
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

/* ---- several admin accounts, the audit log of every action ------------------------- */

static void collect_admin(const store_admin_t *a, void *ctx) {
  char *names = ctx;
  strcat(names, a->name);
  strcat(names, a->enabled ? "+ " : "- ");
}

static void test_admin_accounts(void **state) {
  fixture_t *f = *state;
  store_t *s = f->store;
  store_txn_t *t = w(s);
  assert_int_equal(store_admin_create(t, "root", "hash-root"), 0);
  assert_int_equal(store_admin_create(t, "bob", "hash-bob"), 0);
  assert_int_equal(store_commit(t), 0);

  store_admin_t a;
  int64_t n = -1;
  char *hash = NULL;
  t = r(s);
  assert_int_equal(store_admin_get(t, "bob", &a), 0);
  assert_string_equal(a.name, "bob");
  assert_true(a.enabled);
  assert_int_equal(strlen(a.created_at), 24);
  assert_string_equal(a.password_changed_at, "");
  assert_int_equal(store_admin_get(t, "nobody", &a), -ENOENT);
  assert_int_equal(store_admin_count_enabled(t, &n), 0);
  assert_int_equal(n, 2);
  store_read_end(t);

  /* Disabled: counted apart, and no hash for a login. */
  t = w(s);
  assert_int_equal(store_admin_set_enabled(t, "bob", false), 0);
  assert_int_equal(store_admin_set_enabled(t, "nobody", false), -ENOENT);
  assert_int_equal(store_admin_set_password(t, "root", "hash-root-2"), 0);
  assert_int_equal(store_admin_set_password(t, "nobody", "x"), -ENOENT);
  assert_int_equal(store_commit(t), 0);
  char names[256] = "";
  t = r(s);
  assert_int_equal(store_admin_list(t, collect_admin, names), 0);
  assert_string_equal(names, "bob- root+ ");
  assert_int_equal(store_admin_count_enabled(t, &n), 0);
  assert_int_equal(n, 1);
  assert_int_equal(store_admin_count(t, &n), 0);
  assert_int_equal(n, 2);
  assert_int_equal(store_admin_get_hash(t, "bob", &hash), -ENOENT);
  assert_int_equal(store_admin_get_hash(t, "root", &hash), 0);
  assert_string_equal(hash, "hash-root-2");
  free(hash);
  assert_int_equal(store_admin_get(t, "root", &a), 0);
  assert_int_equal(strlen(a.password_changed_at), 24);
  store_read_end(t);

  /* Sessions of one admin end, but the one kept; removal takes the rest. */
  store_session_t x;
  const char *tokens[] = {"r1", "r2", "r3", "b1"};
  t = w(s);
  for (int i = 0; i < 4; i++) {
    memset(&x, 0, sizeof x);
    snprintf(x.token_hash, sizeof x.token_hash, "%s", tokens[i]);
    snprintf(x.admin, sizeof x.admin, "%s", tokens[i][0] == 'r' ? "root" : "bob");
    x.created = 1;
    x.expires = 100;
    assert_int_equal(store_session_put(t, &x), 0);
  }
  int64_t ended = -1;
  assert_int_equal(store_session_delete_admin(t, "root", "r2", &ended), 0);
  assert_int_equal(ended, 2);
  assert_int_equal(store_session_delete_admin(t, "root", NULL, &ended), 0);
  assert_int_equal(ended, 1);
  assert_int_equal(store_admin_delete(t, "bob"), 0);
  assert_int_equal(store_admin_delete(t, "bob"), -ENOENT);
  assert_int_equal(store_commit(t), 0);
  collected_t c = live_sessions(s, 0);
  assert_int_equal(c.n, 0);
}

static json_t *audit_query(store_t *s, const store_audit_filter_t *f, int64_t limit) {
  json_t *page = NULL;
  store_txn_t *t = r(s);
  assert_int_equal(store_audit_query(t, f, 0, limit, &page), 0);
  store_read_end(t);
  return page;
}

static json_int_t total_of(json_t *page) {
  json_int_t n = json_integer_value(json_object_get(page, "total"));
  json_decref(page);
  return n;
}

static void test_audit_actions_and_filters(void **state) {
  fixture_t *f = *state;
  store_t *s = f->store;
  store_txn_t *t = w(s);
  assert_int_equal(store_audit_add(t, "root", "proxy.host", NULL, "p.example"), 0);
  store_audit_entry_t e = {.action = "user.add", .actor = "bob", .key = "alice",
                           .new_text = "alice", .address = "192.0.2.7"};
  assert_int_equal(store_audit_record(t, &e), 0);
  e = (store_audit_entry_t){.action = "admin.login_failed", .actor = "mallory", .key = "mallory"};
  assert_int_equal(store_audit_record(t, &e), 0);
  assert_int_equal(store_audit_add(t, "bob", "proxy.port", "3128", "8080"), 0);
  assert_int_equal(store_commit(t), 0);

  json_t *page = audit_query(s, NULL, 10);
  json_t *entries = json_object_get(page, "entries");
  assert_int_equal(json_array_size(entries), 4);
  json_t *newest = json_array_get(entries, 0);
  assert_string_equal(json_string_value(json_object_get(newest, "action")), "setting");
  assert_true(json_is_null(json_object_get(newest, "address")));
  json_t *user = json_array_get(entries, 2);
  assert_string_equal(json_string_value(json_object_get(user, "action")), "user.add");
  assert_string_equal(json_string_value(json_object_get(user, "address")), "192.0.2.7");
  const char *first_time = json_string_value(json_object_get(json_array_get(entries, 3), "time"));
  char since[32];
  snprintf(since, sizeof since, "%s", first_time);
  json_decref(page);

  assert_int_equal(total_of(audit_query(s, &(store_audit_filter_t){.actor = "bob"}, 10)), 2);
  assert_int_equal(total_of(audit_query(s, &(store_audit_filter_t){.key = "proxy.*"}, 10)), 2);
  assert_int_equal(total_of(audit_query(s, &(store_audit_filter_t){.key = "proxy."}, 10)), 0);
  assert_int_equal(total_of(audit_query(s, &(store_audit_filter_t){.key = "proxy.port"}, 10)), 1);
  assert_int_equal(
      total_of(audit_query(s, &(store_audit_filter_t){.action = "admin.login_failed"}, 10)), 1);
  assert_int_equal(
      total_of(audit_query(s, &(store_audit_filter_t){.actor = "bob", .key = "alice"}, 10)), 1);
  /* Time range: since inclusive, until exclusive. */
  assert_int_equal(total_of(audit_query(s, &(store_audit_filter_t){.since = since}, 10)), 4);
  assert_int_equal(total_of(audit_query(s, &(store_audit_filter_t){.until = since}, 10)), 0);
  assert_int_equal(
      total_of(audit_query(s, &(store_audit_filter_t){.since = "2999-01-01T00:00:00.000Z"}, 10)),
      0);
  assert_int_equal(
      total_of(audit_query(s, &(store_audit_filter_t){.until = "2999-01-01T00:00:00.000Z"}, 10)),
      4);
  /* A page of the matches only. */
  page = audit_query(s, &(store_audit_filter_t){.key = "proxy.*"}, 1);
  assert_int_equal(json_array_size(json_object_get(page, "entries")), 1);
  assert_int_equal(json_integer_value(json_object_get(page, "total")), 2);
  json_decref(page);
}

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
  /* A user that does not exist: refused, and the transaction goes on. */
  assert_int_equal(store_token_put(t, "hash-nobody", id + 1000, NULL, 1, 100, 200), -EINVAL);
  assert_int_equal(
      store_device_put(t, id + 1000, "phone-9", "ios", NULL, "nobody@example.com", 1), -EINVAL);
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

  /* One token revoked (a logout), then all of them (sign out everywhere). */
  t = w(s);
  assert_int_equal(store_token_put(t, "hash-a", id, NULL, 1, 100, 9000), 0);
  assert_int_equal(store_token_put(t, "hash-b", id, NULL, 1, 100, 9000), 0);
  assert_int_equal(store_token_put(t, "hash-c", id, NULL, 1, 100, 9000), 0);
  assert_int_equal(store_token_delete(t, "hash-a"), 0);
  assert_int_equal(store_token_delete(t, "hash-a"), -ENOENT);
  assert_int_equal(store_token_find(t, "hash-a", &tok), -ENOENT);
  assert_int_equal(store_token_find(t, "hash-b", &tok), 0);
  int64_t revoked = -1;
  assert_int_equal(store_tokens_delete_user(t, id, &revoked), 0);
  assert_int_equal(revoked, 2);
  assert_int_equal(store_token_find(t, "hash-c", &tok), -ENOENT);
  assert_int_equal(store_tokens_delete_user(t, id + 1000, &revoked), 0);
  assert_int_equal(revoked, 0);
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

/* The SIP module's consent: a watcher's state and generation change in
 * place; a refused watcher's row goes. */
static void test_federation_consent(void **state) {
  fixture_t *f = *state;
  store_t *s = f->store;
  store_txn_t *t = w(s);
  store_user_write_t u;
  user_w(&u, "alice", NULL);
  assert_int_equal(store_user_insert(t, &u, NULL), 0);
  assert_int_equal(store_subscription_insert(t, "alice", "bob@partner.test", "pending", 1), 0);
  assert_int_equal(store_subscription_set(t, "alice", "BOB@partner.test", "active", 2), 0);
  assert_int_equal(store_subscription_set(t, "alice", "eve@partner.test", "active", 2), -ENOENT);
  assert_int_equal(store_subscription_set(t, "nobody", "bob@partner.test", "active", 2), -ENOENT);
  assert_int_equal(store_commit(t), 0);
  t = r(s);
  rows_t c = {0};
  int64_t total = 0;
  assert_int_equal(store_subscription_list(t, "alice", NULL, 2, 0, 10, &total, collect_row, &c), 0);
  assert_int_equal(total, 1);
  /* generation 2 now: no longer to be re-created */
  assert_string_equal(c.state[0], "active");
  store_read_end(t);
  t = w(s);
  assert_int_equal(store_subscription_delete(t, "alice", "eve@partner.test"), -ENOENT);
  assert_int_equal(store_subscription_delete(t, "alice", "bob@PARTNER.test"), 0);
  assert_int_equal(store_commit(t), 0);
  t = r(s);
  assert_int_equal(store_subscription_list(t, "alice", NULL, 2, 0, 10, &total, collect_row, &c), 0);
  assert_int_equal(total, 0);
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

/* ---- real-time: messages, the journal, contact lists --------------------------------- */

static int64_t add_user(store_txn_t *t, const char *name) {
  store_user_write_t u;
  user_w(&u, name, NULL);
  assert_int_equal(store_user_insert(t, &u, NULL), 0);
  store_user_t got;
  assert_int_equal(store_user_get(t, name, &got), 0);
  return got.id;
}

/* A message at created_ms, its time "2026-03-01T10:00:SS.000Z" from it. */
static int add_message(store_txn_t *t, int64_t from, const char *from_remote, int64_t to,
                       const char *to_remote, const char *text, int64_t created_ms, int64_t *id) {
  store_message_t m = {.sender = from, .sender_remote = from_remote, .recipient = to,
                       .recipient_remote = to_remote, .text = text, .created_ms = created_ms};
  snprintf(m.time, sizeof m.time, "2026-03-01T10:00:%02d.000Z", (int)(created_ms / 1000 % 60));
  int rc = store_message_add(t, &m);
  if (id) *id = m.id;
  return rc;
}

static int64_t message(store_txn_t *t, int64_t from, const char *from_remote, int64_t to,
                       const char *to_remote, const char *text, int64_t created_ms) {
  int64_t id = 0;
  assert_int_equal(add_message(t, from, from_remote, to, to_remote, text, created_ms, &id), 0);
  assert_true(id > 0);
  return id;
}

typedef struct seen_message {
  int64_t id, sender, recipient, created_ms;
  char text[32], time[32], sender_name[32], recipient_name[32], sender_remote[64],
      recipient_remote[64];
  bool delivered, read, has_sender_name;
} seen_message_t;

typedef struct messages {
  int n;
  seen_message_t m[16];
} messages_t;

static void collect_message(const store_message_t *m, void *ctx) {
  messages_t *c = ctx;
  if (c->n >= 16) return;
  seen_message_t *s = &c->m[c->n++];
  s->id = m->id;
  s->sender = m->sender;
  s->recipient = m->recipient;
  s->created_ms = m->created_ms;
  s->delivered = m->delivered;
  s->read = m->read;
  s->has_sender_name = m->sender_name != NULL;
  snprintf(s->text, sizeof s->text, "%s", m->text ? m->text : "(null)");
  snprintf(s->time, sizeof s->time, "%s", m->time);
  snprintf(s->sender_name, sizeof s->sender_name, "%s", m->sender_name ? m->sender_name : "");
  snprintf(s->recipient_name, sizeof s->recipient_name, "%s",
           m->recipient_name ? m->recipient_name : "");
  snprintf(s->sender_remote, sizeof s->sender_remote, "%s",
           m->sender_remote ? m->sender_remote : "");
  snprintf(s->recipient_remote, sizeof s->recipient_remote, "%s",
           m->recipient_remote ? m->recipient_remote : "");
}

static messages_t pending(store_txn_t *t, int64_t recipient, int64_t after, int64_t limit) {
  messages_t c = {0};
  assert_int_equal(store_messages_pending(t, recipient, after, limit, collect_message, &c), 0);
  return c;
}

static messages_t history(store_txn_t *t, int64_t user, int64_t peer, int64_t before,
                          int64_t limit) {
  messages_t c = {0};
  assert_int_equal(store_message_history(t, user, peer, before, limit, collect_message, &c), 0);
  return c;
}

static void test_messages(void **state) {
  fixture_t *f = *state;
  store_t *s = f->store;
  store_txn_t *t = w(s);
  int64_t alice = add_user(t, "alice"), bob = add_user(t, "bob"), carol = add_user(t, "carol");
  int64_t m1 = message(t, alice, NULL, bob, NULL, "one", 1000);
  int64_t m2 = message(t, bob, NULL, alice, NULL, "two", 2000);
  int64_t m3 = message(t, alice, NULL, bob, NULL, "three", 3000);
  int64_t m4 = message(t, 0, "xavier@partner.test", alice, NULL, "four", 4000);
  int64_t m5 = message(t, alice, NULL, 0, "yves@partner.test", "five", 5000);
  assert_true(m1 < m2 && m2 < m3 && m3 < m4 && m4 < m5);

  /* Refused, and the transaction goes on: no sender, two senders, no
   * recipient, no local party at all, a user that does not exist. These are
   * answers, not failures of the database. */
  uint64_t errors = store_error_count(s);
  assert_int_equal(add_message(t, 0, NULL, bob, NULL, "x", 1, NULL), -EINVAL);
  assert_int_equal(add_message(t, alice, "a@partner.test", bob, NULL, "x", 1, NULL), -EINVAL);
  assert_int_equal(add_message(t, alice, NULL, 0, NULL, "x", 1, NULL), -EINVAL);
  assert_int_equal(add_message(t, bob, NULL, carol, "c@partner.test", "x", 1, NULL), -EINVAL);
  assert_int_equal(add_message(t, 0, "a@partner.test", 0, "b@partner.test", "x", 1, NULL),
                   -EINVAL);
  assert_int_equal(add_message(t, carol + 1000, NULL, bob, NULL, "x", 1, NULL), -EINVAL);
  assert_int_equal(add_message(t, alice, NULL, carol + 1000, NULL, "x", 1, NULL), -EINVAL);
  assert_int_equal(store_error_count(s), errors);
  assert_int_equal(store_commit(t), 0);

  t = r(s);
  store_message_t got;
  assert_int_equal(store_message_get(t, m1, &got), 0);
  assert_int_equal(got.id, m1);
  assert_int_equal(got.sender, alice);
  assert_int_equal(got.recipient, bob);
  assert_string_equal(got.time, "2026-03-01T10:00:01.000Z");
  assert_int_equal(got.created_ms, 1000);
  assert_false(got.delivered);
  assert_false(got.read);
  /* The fixed fields only: the strings would not outlive the call. */
  assert_null(got.text);
  assert_int_equal(store_message_get(t, m4, &got), 0);
  assert_int_equal(got.sender, 0);
  assert_int_equal(got.recipient, alice);
  assert_int_equal(store_message_get(t, m5 + 1000, &got), -ENOENT);

  /* Pending: to the recipient, not yet received, after `after`, oldest first. */
  messages_t p = pending(t, bob, 0, 10);
  assert_int_equal(p.n, 2);
  assert_string_equal(p.m[0].text, "one");
  assert_string_equal(p.m[1].text, "three");
  assert_string_equal(p.m[0].sender_name, "alice");
  assert_string_equal(p.m[0].recipient_name, "bob");
  assert_int_equal(p.m[0].sender, alice);
  assert_string_equal(p.m[0].time, "2026-03-01T10:00:01.000Z");
  p = pending(t, bob, m1, 10);
  assert_int_equal(p.n, 1);
  assert_int_equal(p.m[0].id, m3);
  p = pending(t, bob, 0, 1);
  assert_int_equal(p.n, 1);
  assert_int_equal(p.m[0].id, m1);
  p = pending(t, alice, 0, 10);
  assert_int_equal(p.n, 2);
  assert_string_equal(p.m[0].text, "two");
  assert_string_equal(p.m[1].text, "four");
  assert_int_equal(p.m[1].sender, 0);
  assert_false(p.m[1].has_sender_name);
  assert_string_equal(p.m[1].sender_remote, "xavier@partner.test");
  assert_int_equal(pending(t, carol, 0, 10).n, 0);
  assert_int_equal(pending(t, 0, 0, 10).n, 0); /* "to a federated address" is nobody's */

  /* History: both directions of one conversation, newest first. */
  messages_t h = history(t, alice, bob, 0, 10);
  assert_int_equal(h.n, 3);
  assert_int_equal(h.m[0].id, m3);
  assert_int_equal(h.m[1].id, m2);
  assert_int_equal(h.m[2].id, m1);
  assert_string_equal(h.m[1].sender_name, "bob");
  h = history(t, bob, alice, 0, 10);
  assert_int_equal(h.n, 3);
  assert_int_equal(h.m[0].id, m3);
  h = history(t, alice, bob, m3, 10);
  assert_int_equal(h.n, 2);
  assert_int_equal(h.m[0].id, m2);
  h = history(t, alice, bob, m1, 10);
  assert_int_equal(h.n, 0);
  h = history(t, alice, bob, 0, 2);
  assert_int_equal(h.n, 2);
  assert_int_equal(h.m[1].id, m2);
  assert_int_equal(history(t, alice, carol, 0, 10).n, 0);
  store_read_end(t);

  /* Delivered: up to an id, reported as they are marked. */
  t = w(s);
  messages_t d = {0};
  assert_int_equal(
      store_messages_delivered(t, bob, m1, "2026-03-01T11:00:00.000Z", 10, collect_message, &d),
      0);
  assert_int_equal(d.n, 1);
  assert_int_equal(d.m[0].id, m1);
  assert_string_equal(d.m[0].text, "one");
  p = pending(t, bob, 0, 10);
  assert_int_equal(p.n, 1);
  assert_int_equal(p.m[0].id, m3);
  assert_int_equal(store_message_get(t, m1, &got), 0);
  assert_true(got.delivered);
  assert_false(got.read);
  messages_t again = {0};
  assert_int_equal(
      store_messages_delivered(t, bob, m1, "2026-03-01T11:00:01.000Z", 10, collect_message, &again),
      0);
  assert_int_equal(again.n, 0);

  /* Read: every message from the peer up to an id, received or not. */
  int64_t marked = -1, newest = -1;
  assert_int_equal(
      store_messages_read(t, bob, alice, m3, "2026-03-01T12:00:00.000Z", &marked, &newest), 0);
  assert_int_equal(marked, 2);
  assert_int_equal(newest, m3);
  assert_int_equal(store_message_get(t, m3, &got), 0);
  assert_true(got.read);
  assert_true(got.delivered);
  assert_int_equal(pending(t, bob, 0, 10).n, 0);
  assert_int_equal(
      store_messages_read(t, bob, alice, m3, "2026-03-01T12:00:01.000Z", &marked, &newest), 0);
  assert_int_equal(marked, 0);
  assert_int_equal(newest, 0);
  /* Alice reads bob's one message; the federated one is not of that conversation. */
  assert_int_equal(
      store_messages_read(t, alice, bob, m5, "2026-03-01T12:00:02.000Z", &marked, &newest), 0);
  assert_int_equal(marked, 1);
  assert_int_equal(newest, m2);
  assert_int_equal(store_message_get(t, m4, &got), 0);
  assert_false(got.read);
  /* Nothing of alice's own messages was marked read by her reading. */
  assert_int_equal(store_message_get(t, m1, &got), 0);
  assert_true(got.read); /* bob read it */
  assert_int_equal(store_message_get(t, m5, &got), 0);
  assert_false(got.read);
  assert_int_equal(store_commit(t), 0);

  /* Delivered with a limit: every message up to the id is marked, at most
   * `limit` are reported. */
  t = w(s);
  int64_t c1 = message(t, alice, NULL, carol, NULL, "c1", 6000);
  int64_t c2 = message(t, alice, NULL, carol, NULL, "c2", 7000);
  message(t, alice, NULL, carol, NULL, "c3", 8000);
  d = (messages_t){0};
  assert_int_equal(
      store_messages_delivered(t, carol, INT64_MAX, "2026-03-01T13:00:00.000Z", 2, collect_message,
                               &d),
      0);
  assert_int_equal(d.n, 2);
  assert_int_equal(d.m[0].id, c1);
  assert_int_equal(d.m[1].id, c2);
  assert_int_equal(pending(t, carol, 0, 10).n, 0);
  assert_int_equal(store_commit(t), 0);

  /* A user's messages go with the user. */
  t = w(s);
  assert_int_equal(store_user_delete(t, "bob"), 0);
  assert_int_equal(store_message_get(t, m1, &got), -ENOENT);
  assert_int_equal(store_message_get(t, m2, &got), -ENOENT);
  assert_int_equal(history(t, alice, bob, 0, 10).n, 0);
  assert_int_equal(store_message_get(t, m4, &got), 0);
  assert_int_equal(store_commit(t), 0);
}

typedef struct journal_rows {
  int n;
  struct {
    int64_t id, user, duration_s, messages, created_ms;
    int answered;
    char kind[16], direction[8], peer[64], started[32];
  } e[16];
} journal_rows_t;

static void collect_journal(const store_journal_t *e, void *ctx) {
  journal_rows_t *c = ctx;
  if (c->n >= 16) return;
  c->e[c->n].id = e->id;
  c->e[c->n].user = e->user;
  c->e[c->n].duration_s = e->duration_s;
  c->e[c->n].answered = e->answered;
  c->e[c->n].messages = e->messages;
  c->e[c->n].created_ms = e->created_ms;
  snprintf(c->e[c->n].kind, sizeof c->e[c->n].kind, "%s", e->kind);
  snprintf(c->e[c->n].direction, sizeof c->e[c->n].direction, "%s", e->direction);
  snprintf(c->e[c->n].peer, sizeof c->e[c->n].peer, "%s", e->peer);
  snprintf(c->e[c->n].started, sizeof c->e[c->n].started, "%s", e->started);
  c->n++;
}

static journal_rows_t journal(store_txn_t *t, int64_t user, int64_t before, int64_t limit) {
  journal_rows_t c = {0};
  assert_int_equal(store_journal_list(t, user, before, limit, collect_journal, &c), 0);
  return c;
}

static store_journal_t entry(int64_t user, const char *kind, const char *direction,
                             const char *peer, const char *started, int64_t duration_s,
                             int answered, int64_t created_ms) {
  store_journal_t e = {.user = user, .kind = kind, .direction = direction, .peer = peer,
                       .duration_s = duration_s, .answered = answered,
                       .created_ms = created_ms};
  snprintf(e.started, sizeof e.started, "%s", started);
  return e;
}

static void test_journal(void **state) {
  fixture_t *f = *state;
  store_t *s = f->store;
  store_txn_t *t = w(s);
  int64_t alice = add_user(t, "alice"), bob = add_user(t, "bob");
  /* Chats: one entry per peer and day, its count raised. */
  assert_int_equal(
      store_journal_chat(t, alice, "bob@example.com", "out", "2026-03-01T10:00:00.000Z", 1000, 1),
      0);
  assert_int_equal(
      store_journal_chat(t, alice, "bob@example.com", "in", "2026-03-01T18:30:00.000Z", 1500, 2),
      0);
  assert_int_equal(
      store_journal_chat(t, alice, "bob@example.com", "out", "2026-03-02T09:00:00.000Z", 2000, 1),
      0);
  assert_int_equal(
      store_journal_chat(t, alice, "carol@example.com", "in", "2026-03-01T12:00:00.000Z", 1200, 1),
      0);
  store_journal_t call =
      entry(alice, "call", "in", "+4930123", "2026-03-02T10:00:00.000Z", 65, 1, 3000);
  assert_int_equal(store_journal_add(t, &call), 0);
  assert_true(call.id > 0);
  store_journal_t missed =
      entry(alice, "call", "in", "+4930999", "2026-03-02T11:00:00.000Z", -1, 0, 3100);
  assert_int_equal(store_journal_add(t, &missed), 0);
  store_journal_t meeting =
      entry(alice, "meeting", "out", "room-1", "2026-03-02T12:00:00.000Z", -1, -1, 3200);
  assert_int_equal(store_journal_add(t, &meeting), 0);
  assert_true(call.id < missed.id && missed.id < meeting.id);
  store_journal_t bobs = entry(bob, "call", "out", "+4930123", "2026-03-02T10:00:00.000Z", 5, 1,
                               3000);
  assert_int_equal(store_journal_add(t, &bobs), 0);

  /* Refused, and the transaction goes on: an unknown kind or direction, a
   * user that does not exist. */
  store_journal_t bad = entry(alice, "fax", "in", "x", "2026-03-02T10:00:00.000Z", -1, -1, 1);
  assert_int_equal(store_journal_add(t, &bad), -EINVAL);
  bad = entry(alice, "call", "up", "x", "2026-03-02T10:00:00.000Z", -1, -1, 1);
  assert_int_equal(store_journal_add(t, &bad), -EINVAL);
  bad = entry(bob + 1000, "call", "in", "x", "2026-03-02T10:00:00.000Z", -1, -1, 1);
  assert_int_equal(store_journal_add(t, &bad), -EINVAL);
  assert_int_equal(
      store_journal_chat(t, alice, "bob@example.com", "sideways", "2026-03-05T10:00:00.000Z", 1, 1),
      -EINVAL);
  assert_int_equal(
      store_journal_chat(t, bob + 1000, "bob@example.com", "in", "2026-03-05T10:00:00.000Z", 1, 1),
      -EINVAL);
  assert_int_equal(store_commit(t), 0);

  t = r(s);
  journal_rows_t j = journal(t, alice, 0, 10);
  assert_int_equal(j.n, 6);
  /* Newest first. */
  for (int i = 1; i < j.n; i++) assert_true(j.e[i].id < j.e[i - 1].id);
  assert_int_equal(j.e[0].id, meeting.id);
  assert_string_equal(j.e[0].kind, "meeting");
  assert_int_equal(j.e[0].duration_s, -1);
  assert_int_equal(j.e[0].answered, -1);
  assert_int_equal(j.e[1].id, missed.id);
  assert_int_equal(j.e[1].answered, 0);
  assert_int_equal(j.e[1].duration_s, -1);
  assert_int_equal(j.e[2].id, call.id);
  assert_string_equal(j.e[2].peer, "+4930123");
  assert_string_equal(j.e[2].direction, "in");
  assert_string_equal(j.e[2].started, "2026-03-02T10:00:00.000Z");
  assert_int_equal(j.e[2].duration_s, 65);
  assert_int_equal(j.e[2].answered, 1);
  assert_int_equal(j.e[2].messages, 0);
  assert_int_equal(j.e[2].created_ms, 3000);
  assert_int_equal(j.e[2].user, alice);
  assert_string_equal(j.e[3].peer, "carol@example.com");
  assert_int_equal(j.e[3].messages, 1);
  assert_string_equal(j.e[4].started, "2026-03-02T09:00:00.000Z");
  assert_int_equal(j.e[4].messages, 1);
  /* The first chat of the day keeps its start, direction and time; its
   * count is the day's. */
  assert_string_equal(j.e[5].kind, "chat");
  assert_string_equal(j.e[5].peer, "bob@example.com");
  assert_string_equal(j.e[5].direction, "out");
  assert_string_equal(j.e[5].started, "2026-03-01T10:00:00.000Z");
  assert_int_equal(j.e[5].messages, 3);
  assert_int_equal(j.e[5].duration_s, -1);
  assert_int_equal(j.e[5].answered, -1);
  assert_int_equal(j.e[5].created_ms, 1000);

  j = journal(t, alice, call.id, 10);
  assert_int_equal(j.n, 3);
  assert_string_equal(j.e[0].peer, "carol@example.com");
  j = journal(t, alice, 0, 2);
  assert_int_equal(j.n, 2);
  assert_int_equal(j.e[1].id, missed.id);
  j = journal(t, bob, 0, 10);
  assert_int_equal(j.n, 1);
  assert_int_equal(j.e[0].duration_s, 5);
  assert_int_equal(journal(t, bob + 1000, 0, 10).n, 0);
  store_read_end(t);
}

static void test_retention(void **state) {
  fixture_t *f = *state;
  store_t *s = f->store;
  store_txn_t *t = w(s);
  int64_t alice = add_user(t, "alice"), bob = add_user(t, "bob");
  int64_t b1 = message(t, alice, NULL, bob, NULL, "b1", 1000);
  int64_t b2 = message(t, alice, NULL, bob, NULL, "b2", 2000);
  int64_t b3 = message(t, alice, NULL, bob, NULL, "b3", 3000);
  /* Received, and younger than every cutoff below. */
  int64_t a1 = message(t, bob, NULL, alice, NULL, "a1", 9000);
  int64_t a2 = message(t, bob, NULL, alice, NULL, "a2", 9100);
  messages_t d = {0};
  assert_int_equal(
      store_messages_delivered(t, bob, b1, "2026-03-01T11:00:00.000Z", 10, collect_message, &d),
      0);
  assert_int_equal(
      store_messages_delivered(t, alice, a2, "2026-03-01T11:00:00.000Z", 10, collect_message, &d),
      0);
  for (int i = 0; i < 3; i++) {
    store_journal_t e = entry(alice, "call", "in", "+49301", "2026-03-02T10:00:00.000Z", 1, 1,
                              100 * (i + 1));
    assert_int_equal(store_journal_add(t, &e), 0);
  }
  assert_int_equal(store_commit(t), 0);

  t = w(s);
  store_message_t got;
  int64_t deleted = -1;
  /* "Created before the cutoff": the one created exactly at it stays. */
  assert_int_equal(store_retention_messages(t, 2000, false, 10, &deleted), 0);
  assert_int_equal(deleted, 1);
  assert_int_equal(store_message_get(t, b1, &got), -ENOENT);
  assert_int_equal(store_message_get(t, b2, &got), 0);
  /* Oldest first, at most limit; limit 0 deletes nothing. */
  assert_int_equal(store_retention_messages(t, 3001, false, 1, &deleted), 0);
  assert_int_equal(deleted, 1);
  assert_int_equal(store_message_get(t, b2, &got), -ENOENT);
  assert_int_equal(store_message_get(t, b3, &got), 0);
  assert_int_equal(store_retention_messages(t, 3001, false, 0, &deleted), 0);
  assert_int_equal(deleted, 0);
  assert_int_equal(store_message_get(t, b3, &got), 0);
  /* Delivered only: what a client received goes whatever its age (the
   * cutoff does not count), what none received stays. */
  assert_int_equal(store_retention_messages(t, 0, true, 1, &deleted), 0);
  assert_int_equal(deleted, 1);
  assert_int_equal(store_message_get(t, a1, &got), -ENOENT);
  assert_int_equal(store_retention_messages(t, 0, true, 10, &deleted), 0);
  assert_int_equal(deleted, 1);
  assert_int_equal(store_message_get(t, a2, &got), -ENOENT);
  assert_int_equal(store_message_get(t, b3, &got), 0);
  assert_int_equal(store_retention_messages(t, 0, true, 10, &deleted), 0);
  assert_int_equal(deleted, 0);

  /* The journal: the same rule for its entries. */
  assert_int_equal(store_retention_journal(t, 200, 10, &deleted), 0);
  assert_int_equal(deleted, 1);
  assert_int_equal(store_retention_journal(t, 200, 10, &deleted), 0);
  assert_int_equal(deleted, 0);
  assert_int_equal(store_retention_journal(t, 1000, 0, &deleted), 0);
  assert_int_equal(deleted, 0);
  assert_int_equal(store_retention_journal(t, 1000, 1, &deleted), 0);
  assert_int_equal(deleted, 1);
  journal_rows_t j = journal(t, alice, 0, 10);
  assert_int_equal(j.n, 1);
  assert_int_equal(j.e[0].created_ms, 300);
  assert_int_equal(store_commit(t), 0);
}

typedef struct roster_rows {
  int n;
  struct {
    int64_t contact;
    char name[32], display_name[32], remote[64];
    bool has_name, has_display_name, has_remote;
  } e[8];
} roster_rows_t;

static void collect_roster(const store_roster_row_t *row, void *ctx) {
  roster_rows_t *c = ctx;
  if (c->n >= 8) return;
  c->e[c->n].contact = row->contact;
  c->e[c->n].has_name = row->name != NULL;
  c->e[c->n].has_display_name = row->display_name != NULL;
  c->e[c->n].has_remote = row->remote != NULL;
  snprintf(c->e[c->n].name, sizeof c->e[c->n].name, "%s", row->name ? row->name : "");
  snprintf(c->e[c->n].display_name, sizeof c->e[c->n].display_name, "%s",
           row->display_name ? row->display_name : "");
  snprintf(c->e[c->n].remote, sizeof c->e[c->n].remote, "%s", row->remote ? row->remote : "");
  c->n++;
}

static roster_rows_t roster(store_txn_t *t, int64_t user) {
  roster_rows_t c = {0};
  assert_int_equal(store_roster_list(t, user, collect_roster, &c), 0);
  return c;
}

static void test_roster(void **state) {
  fixture_t *f = *state;
  store_t *s = f->store;
  store_txn_t *t = w(s);
  int64_t alice = add_user(t, "alice"), carol = add_user(t, "carol"), bob = add_user(t, "bob");
  int64_t dave = add_user(t, "dave");
  store_user_write_t plain = {.set_display_name = true, .display_name = NULL};
  assert_int_equal(store_user_update(t, "carol", &plain, NULL), 0);
  /* In an order other than the list's. */
  assert_int_equal(store_roster_put(t, alice, carol, NULL), 0);
  assert_int_equal(store_roster_put(t, alice, 0, "zed@partner.test"), 0);
  assert_int_equal(store_roster_put(t, alice, bob, NULL), 0);
  assert_int_equal(store_roster_put(t, alice, 0, "amy@partner.test"), 0);
  /* Putting one twice keeps one. */
  assert_int_equal(store_roster_put(t, alice, bob, NULL), 0);
  assert_int_equal(store_roster_put(t, alice, 0, "amy@partner.test"), 0);
  assert_int_equal(store_roster_put(t, bob, alice, NULL), 0);
  /* Refused, and the transaction goes on: both kinds or neither, a contact
   * or a user that does not exist. */
  assert_int_equal(store_roster_put(t, alice, bob, "bob@partner.test"), -EINVAL);
  assert_int_equal(store_roster_put(t, alice, 0, NULL), -EINVAL);
  assert_int_equal(store_roster_put(t, alice, dave + 1000, NULL), -EINVAL);
  assert_int_equal(store_roster_put(t, dave + 1000, bob, NULL), -EINVAL);
  assert_int_equal(store_commit(t), 0);

  t = r(s);
  roster_rows_t c = roster(t, alice);
  assert_int_equal(c.n, 4);
  /* Local contacts by name, then federated ones by address. */
  assert_int_equal(c.e[0].contact, bob);
  assert_string_equal(c.e[0].name, "bob");
  assert_string_equal(c.e[0].display_name, "Some One");
  assert_false(c.e[0].has_remote);
  assert_int_equal(c.e[1].contact, carol);
  assert_string_equal(c.e[1].name, "carol");
  assert_false(c.e[1].has_display_name);
  assert_int_equal(c.e[2].contact, 0);
  assert_false(c.e[2].has_name);
  assert_string_equal(c.e[2].remote, "amy@partner.test");
  assert_string_equal(c.e[3].remote, "zed@partner.test");
  c = roster(t, bob);
  assert_int_equal(c.n, 1);
  assert_string_equal(c.e[0].name, "alice");
  assert_int_equal(roster(t, dave).n, 0);
  store_read_end(t);

  t = w(s);
  assert_int_equal(store_roster_delete(t, alice, bob, NULL), 0);
  assert_int_equal(store_roster_delete(t, alice, bob, NULL), -ENOENT);
  assert_int_equal(store_roster_delete(t, alice, 0, "amy@partner.test"), 0);
  assert_int_equal(store_roster_delete(t, alice, 0, "nobody@partner.test"), -ENOENT);
  assert_int_equal(store_roster_delete(t, dave, alice, NULL), -ENOENT);
  /* A deleted user leaves every list it was on. */
  assert_int_equal(store_user_delete(t, "carol"), 0);
  c = roster(t, alice);
  assert_int_equal(c.n, 1);
  assert_string_equal(c.e[0].remote, "zed@partner.test");
  assert_int_equal(store_commit(t), 0);
}

static void test_user_by_id(void **state) {
  fixture_t *f = *state;
  store_t *s = f->store;
  store_txn_t *t = w(s);
  int64_t alice = add_user(t, "alice");
  store_user_write_t u;
  user_w(&u, "bob", "CORP\\bob");
  assert_int_equal(store_user_insert(t, &u, NULL), 0);
  assert_int_equal(store_commit(t), 0);

  t = r(s);
  store_user_t got;
  assert_int_equal(store_user_by_id(t, alice, &got), 0);
  assert_int_equal(got.id, alice);
  assert_string_equal(got.name, "alice");
  assert_string_equal(got.display_name, "Some One");
  assert_false(got.has_windows_account);
  assert_true(got.has_password);
  assert_true(got.enabled);
  assert_int_equal(strlen(got.created_at), 24);
  assert_int_equal(got.created_at[23], 'Z');
  store_user_t bob;
  assert_int_equal(store_user_get(t, "bob", &bob), 0);
  assert_int_equal(store_user_by_id(t, bob.id, &got), 0);
  assert_string_equal(got.windows_account, "CORP\\bob");
  assert_string_equal(got.updated_at, bob.updated_at);
  assert_int_equal(store_user_by_id(t, 0, &got), -ENOENT);
  assert_int_equal(store_user_by_id(t, -1, &got), -ENOENT);
  assert_int_equal(store_user_by_id(t, bob.id + 1000, &got), -ENOENT);
  store_read_end(t);
}

/* Profile pictures: one per user, replaced whole, read back byte for byte
 * (NULs and high bytes included), the etag in the user row, gone with the
 * user. */
static void test_pictures(void **state) {
  fixture_t *f = *state;
  store_t *s = f->store;
  store_txn_t *t = w(s);
  int64_t alice = add_user(t, "alice");
  int64_t bob = add_user(t, "bob");
  uint8_t bytes[3000];
  for (size_t i = 0; i < sizeof bytes; i++) bytes[i] = (uint8_t)(i * 7);
  bytes[0] = 0;
  bytes[1] = 0xff;
  assert_int_equal(store_picture_put(t, alice, bytes, sizeof bytes, "etag-1"), 0);
  assert_int_equal(store_picture_put(t, bob + 1000, bytes, sizeof bytes, "etag-x"), -EINVAL);
  assert_int_equal(store_picture_put(t, bob, bytes, 0, "etag-x"), -EINVAL);
  assert_int_equal(store_picture_put(t, bob, bytes, sizeof bytes, ""), -EINVAL);
  assert_int_equal(store_commit(t), 0);

  t = r(s);
  store_picture_t pic;
  assert_int_equal(store_picture_get(t, alice, &pic), 0);
  assert_int_equal(pic.len, sizeof bytes);
  assert_memory_equal(pic.data, bytes, sizeof bytes);
  assert_string_equal(pic.etag, "etag-1");
  assert_int_equal(strlen(pic.updated_at), 24);
  store_picture_clear(&pic);
  assert_int_equal(store_picture_get(t, bob, &pic), -ENOENT);
  store_user_t u;
  assert_int_equal(store_user_get(t, "alice", &u), 0);
  assert_string_equal(u.picture, "etag-1");
  assert_int_equal(store_user_by_id(t, bob, &u), 0);
  assert_string_equal(u.picture, "");
  store_read_end(t);

  /* Replaced, not added. */
  t = w(s);
  assert_int_equal(store_picture_put(t, alice, bytes + 10, 20, "etag-2"), 0);
  assert_int_equal(store_commit(t), 0);
  t = r(s);
  assert_int_equal(store_picture_get(t, alice, &pic), 0);
  assert_int_equal(pic.len, 20);
  assert_memory_equal(pic.data, bytes + 10, 20);
  assert_string_equal(pic.etag, "etag-2");
  store_picture_clear(&pic);
  store_read_end(t);

  t = w(s);
  assert_int_equal(store_picture_delete(t, alice), 0);
  assert_int_equal(store_picture_delete(t, alice), -ENOENT);
  assert_int_equal(store_picture_put(t, bob, bytes, 5, "etag-b"), 0);
  assert_int_equal(store_user_delete(t, "bob"), 0);
  assert_int_equal(store_commit(t), 0);
  t = r(s);
  assert_int_equal(store_picture_get(t, alice, &pic), -ENOENT);
  assert_int_equal(store_picture_get(t, bob, &pic), -ENOENT);
  assert_int_equal(store_user_get(t, "alice", &u), 0);
  assert_string_equal(u.picture, "");
  store_read_end(t);
}

/* Bounded tokens per user: the newest `keep` stay, others' are untouched. */
static void test_tokens_trim(void **state) {
  fixture_t *f = *state;
  store_t *s = f->store;
  store_txn_t *t = w(s);
  int64_t alice = add_user(t, "alice");
  int64_t bob = add_user(t, "bob");
  assert_int_equal(store_domain_add(t, 1, "example.com", "test"), 0);
  char hash[32];
  for (int i = 0; i < 6; i++) {
    snprintf(hash, sizeof hash, "alice-%d", i);
    assert_int_equal(store_token_put(t, hash, alice, NULL, 1, 100 + i, 9000), 0);
  }
  assert_int_equal(store_token_put(t, "bob-0", bob, NULL, 1, 50, 9000), 0);
  int64_t deleted = -1;
  assert_int_equal(store_tokens_trim(t, alice, 2, &deleted), 0);
  assert_int_equal(deleted, 4);
  store_token_t tok;
  assert_int_equal(store_token_find(t, "alice-5", &tok), 0);
  assert_int_equal(store_token_find(t, "alice-4", &tok), 0);
  assert_int_equal(store_token_find(t, "alice-3", &tok), -ENOENT);
  assert_int_equal(store_token_find(t, "alice-0", &tok), -ENOENT);
  assert_int_equal(store_token_find(t, "bob-0", &tok), 0);
  assert_int_equal(store_tokens_trim(t, alice, 2, &deleted), 0);
  assert_int_equal(deleted, 0);
  assert_int_equal(store_tokens_trim(t, alice, 0, &deleted), 0);
  assert_int_equal(deleted, 2);
  assert_int_equal(store_tokens_trim(t, alice, -1, &deleted), -EINVAL);
  assert_int_equal(store_commit(t), 0);
}

/* ---- push notifications ---------------------------------------------------------------- */

typedef struct push_seen {
  int n;
  int64_t id[16];
  char apns_id[16][40];
  char token[16][64];
  char kind[16][16];
  int64_t attempts[16];
} push_seen_t;

static void on_push(const store_push_t *p, void *ctx) {
  push_seen_t *s = ctx;
  if (s->n >= 16) return;
  s->id[s->n] = p->id;
  snprintf(s->apns_id[s->n], sizeof s->apns_id[0], "%s", p->apns_id);
  snprintf(s->token[s->n], sizeof s->token[0], "%s", p->push_token);
  snprintf(s->kind[s->n], sizeof s->kind[0], "%s", p->kind);
  s->attempts[s->n] = p->attempts;
  s->n++;
}

typedef struct device_seen {
  int n;
  char token[4][64];
  int64_t registered[4];
} device_seen_t;

static void on_device(const store_push_device_t *d, void *ctx) {
  device_seen_t *s = ctx;
  if (s->n >= 4) return;
  snprintf(s->token[s->n], sizeof s->token[0], "%s", d->push_token);
  s->registered[s->n] = d->registered_ms;
  s->n++;
}

static int64_t enqueue(store_txn_t *t, int64_t user, int64_t peer, int64_t ref, const char *kind,
                       const char *apns_id, int64_t created, int64_t expires) {
  store_push_t p = {.user_id = user, .device_id = "phone-1", .platform = "ios",
                    .push_token = "tok-a", .kind = kind, .ref_id = ref, .peer_id = peer,
                    .payload = "{\"id\":1}", .apns_id = apns_id, .collapse_id = "chat-2",
                    .push_type = "alert", .priority = 10, .created_ms = created,
                    .expires_ms = expires};
  assert_int_equal(store_push_enqueue(t, &p), 0);
  assert_true(p.id > 0);
  assert_int_equal(p.next_ms, created);
  return p.id;
}

static void test_push_outbox(void **state) {
  fixture_t *f = *state;
  store_t *s = f->store;
  store_txn_t *t = w(s);
  int64_t alice = add_user(t, "alice"), bob = add_user(t, "bob");
  assert_int_equal(store_device_put(t, alice, "phone-1", "ios", "tok-a", "alice@example.com", 1),
                   0);
  assert_int_equal(store_device_put(t, alice, "tablet", "android", NULL, "alice@example.com", 1),
                   0);
  /* Only devices with a token, and the registration time was kept. */
  device_seen_t d = {0};
  assert_int_equal(store_push_devices(t, alice, on_device, &d), 0);
  assert_int_equal(d.n, 1);
  assert_string_equal(d.token[0], "tok-a");
  assert_true(d.registered[0] > 1700000000000LL);
  /* Setting a token: a new one gets the given time, the same one keeps its
   * time; an unknown device is -ENOENT. */
  assert_int_equal(store_push_device_set(t, alice, "tablet", "fcm-1", 5000), 0);
  assert_int_equal(store_push_device_set(t, alice, "tablet", "fcm-1", 9000), 0);
  assert_int_equal(store_push_device_set(t, alice, "nothing", "fcm-1", 9000), -ENOENT);
  assert_int_equal(store_push_device_set(t, bob, "tablet", "fcm-1", 9000), -ENOENT);
  d = (device_seen_t){0};
  assert_int_equal(store_push_devices(t, alice, on_device, &d), 0);
  assert_int_equal(d.n, 2);
  assert_string_equal(d.token[1], "fcm-1");
  assert_int_equal(d.registered[1], 5000);
  /* A provider's verdict older than the registration leaves the token; a
   * newer one, for the same token, removes it. */
  bool pruned = true;
  assert_int_equal(store_push_token_prune(t, alice, "tablet", "fcm-1", 4000, &pruned), 0);
  assert_false(pruned);
  assert_int_equal(store_push_token_prune(t, alice, "tablet", "fcm-0", 6000, &pruned), 0);
  assert_false(pruned);
  assert_int_equal(store_push_token_prune(t, alice, "tablet", "fcm-1", 6000, &pruned), 0);
  assert_true(pruned);
  d = (device_seen_t){0};
  assert_int_equal(store_push_devices(t, alice, on_device, &d), 0);
  assert_int_equal(d.n, 1);

  int64_t a = enqueue(t, alice, bob, 10, "message", "uuid-a", 1000, 100000);
  int64_t b = enqueue(t, alice, bob, 11, "message", "uuid-b", 1001, 100000);
  int64_t c = enqueue(t, alice, 0, 3, "call", "uuid-c", 5000, 100000);
  assert_true(a < b && b < c);
  assert_int_equal(store_commit(t), 0);

  /* Claims take what is due, oldest first, and not what another holds. */
  t = w(s);
  push_seen_t seen = {0};
  assert_int_equal(store_push_claim(t, 2000, 32000, "node-1", 10, on_push, &seen), 0);
  assert_int_equal(seen.n, 2);
  assert_string_equal(seen.apns_id[0], "uuid-a");
  assert_string_equal(seen.token[0], "tok-a");
  assert_string_equal(seen.kind[1], "message");
  push_seen_t again = {0};
  assert_int_equal(store_push_claim(t, 6000, 36000, "node-2", 10, on_push, &again), 0);
  assert_int_equal(again.n, 1);
  assert_int_equal(again.id[0], c);
  /* Sent; retried (counted and not); finished twice is -ENOENT. */
  assert_int_equal(store_push_finish(t, a, "sent", NULL, 2100), 0);
  assert_int_equal(store_push_finish(t, a, "sent", NULL, 2100), -ENOENT);
  assert_int_equal(store_push_retry(t, b, 8000, true, "503 ServiceUnavailable"), 0);
  assert_int_equal(store_push_retry(t, c, 7000, false, "GOAWAY"), 0);
  assert_int_equal(store_push_retry(t, a, 7000, false, "x"), -ENOENT);
  assert_int_equal(store_commit(t), 0);

  t = w(s);
  seen = (push_seen_t){0};
  assert_int_equal(store_push_claim(t, 7500, 37500, "node-1", 10, on_push, &seen), 0);
  assert_int_equal(seen.n, 1);
  assert_int_equal(seen.id[0], c);
  assert_int_equal(seen.attempts[0], 0);
  seen = (push_seen_t){0};
  assert_int_equal(store_push_claim(t, 9000, 39000, "node-1", 10, on_push, &seen), 0);
  assert_int_equal(seen.n, 1);
  assert_int_equal(seen.id[0], b);
  assert_int_equal(seen.attempts[0], 1);
  /* A crash: the node's leases are given up, another node's are not. */
  int64_t released = 0;
  assert_int_equal(store_push_release(t, "node-1", &released), 0);
  assert_int_equal(released, 2);
  assert_int_equal(store_push_release(t, "node-2", &released), 0);
  assert_int_equal(released, 0);
  seen = (push_seen_t){0};
  assert_int_equal(store_push_claim(t, 9000, 39000, "node-1", 1, on_push, &seen), 0);
  assert_int_equal(seen.n, 1);

  store_push_stats_t st;
  assert_int_equal(store_push_stats(t, &st), 0);
  assert_int_equal(st.pending, 2);
  assert_int_equal(st.oldest_pending_ms, 1001);
  assert_int_equal(st.sent, 1);

  /* Reading cancels what is pending and asks for a clear of what was sent. */
  int64_t cancelled = -1, to_clear = -1;
  assert_int_equal(store_push_read(t, alice, bob, 11, &cancelled, &to_clear), 0);
  assert_int_equal(cancelled, 1);
  assert_int_equal(to_clear, 1);
  assert_int_equal(store_push_read(t, alice, bob, 11, &cancelled, &to_clear), 0);
  assert_int_equal(cancelled, 0);
  assert_int_equal(to_clear, 0);
  assert_int_equal(store_push_finish(t, b, "sent", NULL, 9100), -ENOENT);
  assert_int_equal(store_push_finish(t, c, "failed", "expired", 9100), 0);
  assert_int_equal(store_push_stats(t, &st), 0);
  assert_int_equal(st.pending, 0);
  assert_int_equal(st.oldest_pending_ms, 0);
  assert_int_equal(st.failed, 1);
  assert_int_equal(st.cancelled, 1);

  /* The app fetches its own notification only. */
  seen = (push_seen_t){0};
  assert_int_equal(store_push_fetch(t, a, alice, 9500, on_push, &seen), 0);
  assert_int_equal(seen.n, 1);
  assert_int_equal(store_push_fetch(t, a, bob, 9500, on_push, &seen), -ENOENT);
  assert_int_equal(store_push_fetch(t, c + 100, alice, 9500, on_push, &seen), -ENOENT);

  int64_t deleted = 0;
  assert_int_equal(store_push_purge(t, 9200, 100, &deleted), 0);
  assert_int_equal(deleted, 2); /* sent at 2100 and failed at 9100; not the read one (now) */
  assert_int_equal(store_commit(t), 0);
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

/* ---- PostgreSQL only: notifications, the listener, the pool, retries ------------------ */

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* What a listener heard, filled on the listener's thread. */
typedef struct heard {
  pthread_mutex_t lock;
  int n, nulls;
  char channel[32][64], payload[32][64];
} heard_t;

static void heard_init(heard_t *h) {
  memset(h, 0, sizeof *h);
  pthread_mutex_init(&h->lock, NULL);
}

static void on_heard(const char *channel, const char *payload, void *ctx) {
  heard_t *h = ctx;
  pthread_mutex_lock(&h->lock);
  if (!payload) {
    h->nulls++;
  } else if (h->n < 32) {
    snprintf(h->channel[h->n], sizeof h->channel[h->n], "%s", channel);
    snprintf(h->payload[h->n], sizeof h->payload[h->n], "%s", payload);
    h->n++;
  }
  pthread_mutex_unlock(&h->lock);
}

static bool has_payload(heard_t *h, const char *payload) {
  pthread_mutex_lock(&h->lock);
  bool found = false;
  for (int i = 0; i < h->n && !found; i++) found = strcmp(h->payload[i], payload) == 0;
  pthread_mutex_unlock(&h->lock);
  return found;
}

/* Polls for at most ms: true once `payload` (NULL: a NULL payload) was heard. */
static bool wait_heard(heard_t *h, const char *payload, int ms) {
  for (int64_t until = now_ms() + ms; now_ms() < until; sleep_ms(10)) {
    if (payload && has_payload(h, payload)) return true;
    if (!payload) {
      pthread_mutex_lock(&h->lock);
      int nulls = h->nulls;
      pthread_mutex_unlock(&h->lock);
      if (nulls > 0) return true;
    }
  }
  return false;
}

static int notify_then(store_t *s, const char *channel, const char *payload, bool commit) {
  store_txn_t *t = w(s);
  int rc = store_notify(t, channel, payload);
  if (rc < 0 || !commit) {
    store_rollback(t);
    return rc;
  }
  return store_commit(t);
}

static void test_pg_new_store_schema(void **state) {
  fixture_t *f = *state;
  int v = store_code_schema_version(f->store);
  assert_int_equal(store_schema_version(f->store), v);
  /* The same numbering as SQLite's: a node of either reports one version. */
  store_t *lite = NULL;
  char err[512];
  const store_options_t so = {.data_dir = f->dir};
  assert_int_equal(store_open(store_sqlite_backend(), &so, &lite, err, sizeof err), 0);
  assert_int_equal(store_code_schema_version(lite), v);
  store_close(lite);
  assert_int_equal(admin_int("SELECT max(version) FROM %s.schema_migrations", f->schema), v);
  assert_int_equal(admin_int("SELECT count(*) FROM %s.schema_migrations", f->schema), v);
  assert_int_equal(admin_int("SELECT count(*) FROM pg_tables WHERE schemaname = '%s' AND "
                             "tablename IN ('settings', 'settings_state', 'meta', 'audit', "
                             "'admins', 'sessions', 'users', 'messages', 'journal', 'roster')",
                             f->schema),
                   10);
  assert_string_equal(store_backend_name(f->store), "postgresql");
  assert_int_equal(store_error_count(f->store), 0);
  assert_int_equal(store_integrity_check(f->store), 0);
  /* Opening again finds nothing to do. */
  store_close(f->store);
  f->store = NULL;
  assert_int_equal(open_store(f, err, sizeof err), 0);
  assert_int_equal(admin_int("SELECT count(*) FROM %s.schema_migrations", f->schema), v);
}

static void test_pg_newer_store_refused(void **state) {
  fixture_t *f = *state;
  store_close(f->store);
  f->store = NULL;
  admin_exec("INSERT INTO %s.schema_migrations (version) VALUES (99)", f->schema);
  char err[512] = "";
  assert_true(open_store(f, err, sizeof err) < 0);
  assert_null(f->store);
  assert_non_null(strstr(err, "99"));
  assert_non_null(strstr(err, "newer"));
  char db[128];
  snprintf(db, sizeof db, "database \"%s\"", PQdb(admin()));
  assert_non_null(strstr(err, db));
}

/* Nodes starting together on a new database: one runs each migration step,
 * the others wait for it, and all of them open. */
typedef struct opener {
  const char *conninfo;
  store_t *store;
  int rc;
  char err[512];
} opener_t;

static void *open_node(void *arg) {
  opener_t *o = arg;
  const store_options_t so = {.conninfo = o->conninfo};
  o->rc = store_open(store_pg_backend(), &so, &o->store, o->err, sizeof o->err);
  return NULL;
}

static void test_pg_nodes_migrate_together(void **state) {
  fixture_t *f = *state;
  char schema[80], conninfo[sizeof f->conninfo + 80];
  snprintf(schema, sizeof schema, "%s_fresh", f->schema);
  admin_exec("CREATE SCHEMA %s", schema);
  snprintf(conninfo, sizeof conninfo, "%s options='-csearch_path=%s'", getenv("ATRIUM_TEST_PG"),
           schema);
  opener_t nodes[3];
  pthread_t th[3];
  for (int i = 0; i < 3; i++) {
    nodes[i] = (opener_t){.conninfo = conninfo};
    assert_int_equal(pthread_create(&th[i], NULL, open_node, &nodes[i]), 0);
  }
  for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
  int v = store_code_schema_version(f->store);
  for (int i = 0; i < 3; i++) {
    if (nodes[i].rc != 0) fprintf(stderr, "node %d: %s\n", i, nodes[i].err);
    assert_int_equal(nodes[i].rc, 0);
    assert_int_equal(store_schema_version(nodes[i].store), v);
  }
  assert_int_equal(admin_int("SELECT count(*) FROM %s.schema_migrations", schema), v);
  /* One store, seen from every node. */
  store_txn_t *t = w(nodes[0].store);
  assert_int_equal(store_meta_put(t, "written.by", "node 0"), 0);
  assert_int_equal(store_commit(t), 0);
  char *value = NULL;
  assert_int_equal(meta_get(nodes[2].store, "written.by", &value), 0);
  assert_string_equal(value, "node 0");
  free(value);
  for (int i = 0; i < 3; i++) store_close(nodes[i].store);
  admin_exec("DROP SCHEMA %s CASCADE", schema);
}

static void test_pg_open_refused(void **state) {
  (void)state;
  char dir[PATH_MAX], err[512] = "";
  assert_int_equal(fixture_mkdtemp(dir, sizeof dir, "test-store"), 0);
  store_t *s = (store_t *)1;
  store_options_t so = {.data_dir = dir};
  assert_int_equal(store_open(store_pg_backend(), &so, &s, err, sizeof err), -EINVAL);
  assert_null(s);
  assert_non_null(strstr(err, "conninfo"));
  /* A server that is not there: the sentence names where it looked and what
   * to check, and never the password. */
  char conninfo[PATH_MAX + 128];
  snprintf(conninfo, sizeof conninfo, "host=%s dbname=atrium user=atrium password=hunter2", dir);
  so.conninfo = conninfo;
  err[0] = '\0';
  assert_int_equal(store_open(store_pg_backend(), &so, &s, err, sizeof err), -EIO);
  assert_null(s);
  assert_non_null(strstr(err, "cannot connect"));
  assert_non_null(strstr(err, dir));
  assert_non_null(strstr(err, "check conninfo"));
  assert_null(strstr(err, "hunter2"));
  /* Not a connection string at all. */
  so.conninfo = "this is = not one";
  err[0] = '\0';
  assert_true(store_open(store_pg_backend(), &so, &s, err, sizeof err) < 0);
  assert_null(s);
  assert_non_null(strstr(err, "cannot connect"));
  fixture_rmtree(dir);
}

static void test_pg_integrity_check(void **state) {
  fixture_t *f = *state;
  assert_int_equal(store_integrity_check(f->store), 0);
  admin_exec("DROP TABLE %s.roster", f->schema);
  assert_int_equal(store_integrity_check(f->store), -EIO);
  assert_non_null(strstr(store_last_error(f->store), "roster"));
}

static void test_pg_notify_reaches_other_node(void **state) {
  fixture_t *f = *state;
  /* A second node: another store on the same database. */
  store_t *node2 = NULL;
  char err[512];
  const store_options_t so = {.conninfo = f->conninfo};
  assert_int_equal(store_open(store_pg_backend(), &so, &node2, err, sizeof err), 0);
  heard_t h;
  heard_init(&h);
  assert_int_equal(store_listen(node2, "atrium_test", on_heard, &h), 0);

  assert_int_equal(notify_then(f->store, "atrium_test", "rolled back", false), 0);
  assert_int_equal(notify_then(f->store, "other_channel", "elsewhere", true), 0);
  assert_int_equal(notify_then(f->store, "atrium_test", "committed", true), 0);
  assert_true(wait_heard(&h, "committed", 5000));
  /* Notifications arrive in commit order: one from the rolled back
   * transaction would have come first. */
  assert_false(has_payload(&h, "rolled back"));
  assert_false(has_payload(&h, "elsewhere"));
  assert_int_equal(h.nulls, 0);
  assert_string_equal(h.channel[0], "atrium_test");

  /* Refused: names and payloads PostgreSQL would not take. */
  char long_channel[80];
  memset(long_channel, 'c', 64);
  long_channel[64] = '\0';
  assert_int_equal(notify_then(f->store, "", "x", true), -EINVAL);
  assert_int_equal(notify_then(f->store, long_channel, "x", true), -EINVAL);
  char *big = malloc(8001);
  assert_non_null(big);
  memset(big, 'p', 8000);
  big[8000] = '\0';
  assert_int_equal(notify_then(f->store, "atrium_test", big, true), -EINVAL);
  free(big);
  assert_int_equal(store_listen(node2, "", on_heard, &h), -EINVAL);
  assert_int_equal(store_listen(node2, long_channel, on_heard, &h), -EINVAL);
  assert_int_equal(store_listen(node2, "atrium_test", NULL, &h), -EINVAL);

  int64_t start = now_ms();
  store_close(node2);
  assert_true(now_ms() - start < 2000);
  pthread_mutex_destroy(&h.lock);
}

static void test_pg_settings_trigger_notifies(void **state) {
  fixture_t *f = *state;
  heard_t h;
  heard_init(&h);
  assert_int_equal(store_listen(f->store, "settings", on_heard, &h), 0);
  /* By hand, as an operator would in psql. */
  admin_exec("UPDATE %s.settings_state SET version = 42", f->schema);
  assert_true(wait_heard(&h, "42", 5000));
  /* And through the store. */
  store_txn_t *t = w(f->store);
  assert_int_equal(store_settings_set_version(t, 43), 0);
  assert_int_equal(store_commit(t), 0);
  assert_true(wait_heard(&h, "43", 5000));
  t = w(f->store);
  assert_int_equal(store_settings_set_version(t, 44), 0);
  store_rollback(t);
  assert_int_equal(notify_then(f->store, "settings", "marker", true), 0);
  assert_true(wait_heard(&h, "marker", 5000));
  assert_false(has_payload(&h, "44"));
  store_close(f->store);
  f->store = NULL;
  pthread_mutex_destroy(&h.lock);
}

static void test_pg_listener_survives_terminate(void **state) {
  fixture_t *f = *state;
  heard_t h;
  heard_init(&h);
  assert_int_equal(store_listen(f->store, "atrium_test", on_heard, &h), 0);
  assert_int_equal(notify_then(f->store, "atrium_test", "before", true), 0);
  assert_true(wait_heard(&h, "before", 5000));
  assert_int_equal(h.nulls, 0);

  assert_true(admin_int("SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM "
                        "pg_stat_activity WHERE application_name = 'atriumd listener' AND "
                        "datname = current_database()) x") >= 1);
  /* It reconnects, listens again, and says "you may have missed something". */
  assert_true(wait_heard(&h, NULL, 10000));
  assert_int_equal(notify_then(f->store, "atrium_test", "after", true), 0);
  assert_true(wait_heard(&h, "after", 5000));
  /* A second subscription on the same listener. */
  heard_t h2;
  heard_init(&h2);
  assert_int_equal(store_listen(f->store, "atrium_second", on_heard, &h2), 0);
  assert_int_equal(notify_then(f->store, "atrium_second", "second", true), 0);
  assert_true(wait_heard(&h2, "second", 5000));
  assert_false(has_payload(&h, "second"));

  int64_t start = now_ms();
  store_close(f->store);
  f->store = NULL;
  assert_true(now_ms() - start < 2000);
  pthread_mutex_destroy(&h.lock);
  pthread_mutex_destroy(&h2.lock);
}

/* Two transactions that read the same row and both write it: the barrier
 * holds each first attempt until both have read. */
typedef struct race {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int arrived;
} race_t;

typedef struct racer {
  race_t *race;
  store_t *store;
  int calls, rc;
} racer_t;

static void race_wait(race_t *r) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 5;
  pthread_mutex_lock(&r->lock);
  r->arrived++;
  pthread_cond_broadcast(&r->cond);
  while (r->arrived < 2)
    if (pthread_cond_timedwait(&r->cond, &r->lock, &until) == ETIMEDOUT) break;
  pthread_mutex_unlock(&r->lock);
}

static int bump(store_txn_t *t, void *ctx) {
  racer_t *me = ctx;
  me->calls++;
  char *v = NULL;
  int rc = store_meta_get(t, "counter", &v);
  if (rc < 0) return rc;
  long n = strtol(v, NULL, 10);
  free(v);
  if (me->calls == 1) race_wait(me->race);
  char next[32];
  snprintf(next, sizeof next, "%ld", n + 1);
  return store_meta_put(t, "counter", next);
}

static void *run_bump(void *arg) {
  racer_t *me = arg;
  me->rc = store_run_txn(me->store, "bump", bump, me);
  return NULL;
}

static uint64_t metric(store_t *s, const char *name) {
  char *text = NULL;
  size_t len = 0;
  FILE *fp = open_memstream(&text, &len);
  assert_non_null(fp);
  store_write_metrics(s, fp);
  fclose(fp);
  char key[128];
  snprintf(key, sizeof key, "\n%s ", name);
  const char *at = strstr(text, key);
  assert_non_null(at);
  uint64_t v = strtoull(at + strlen(key), NULL, 10);
  free(text);
  return v;
}

static void test_pg_conflicting_writes_retry(void **state) {
  fixture_t *f = *state;
  store_txn_t *t = w(f->store);
  assert_int_equal(store_meta_put(t, "counter", "0"), 0);
  assert_int_equal(store_commit(t), 0);
  uint64_t retries = metric(f->store, "atrium_store_txn_retries_total");

  race_t race = {.arrived = 0};
  pthread_mutex_init(&race.lock, NULL);
  pthread_cond_init(&race.cond, NULL);
  racer_t a = {.race = &race, .store = f->store}, b = {.race = &race, .store = f->store};
  pthread_t ta, tb;
  assert_int_equal(pthread_create(&ta, NULL, run_bump, &a), 0);
  assert_int_equal(pthread_create(&tb, NULL, run_bump, &b), 0);
  pthread_join(ta, NULL);
  pthread_join(tb, NULL);
  /* Both succeed; one of them had to run again, after the other's commit. */
  assert_int_equal(a.rc, 0);
  assert_int_equal(b.rc, 0);
  assert_int_equal(a.calls + b.calls, 3);
  char *v = NULL;
  assert_int_equal(meta_get(f->store, "counter", &v), 0);
  assert_string_equal(v, "2");
  free(v);
  assert_int_equal(metric(f->store, "atrium_store_txn_retries_total"), retries + 1);
  /* A serialisation failure is not a failure of the database. */
  assert_int_equal(store_error_count(f->store), 0);
  pthread_cond_destroy(&race.cond);
  pthread_mutex_destroy(&race.lock);
}

/* Message ids increase in commit order: a reader that sees one sees every
 * smaller id. The first writer holds its transaction open while the second
 * adds and commits. */
typedef struct slow_writer {
  store_t *store;
  int64_t from, to, id;
  int rc;
  race_t *race;
} slow_writer_t;

static void *write_slowly(void *arg) {
  slow_writer_t *me = arg;
  store_txn_t *t = NULL;
  me->rc = store_begin(me->store, "slow", &t);
  if (me->rc < 0) return NULL;
  store_message_t m = {.sender = me->from, .recipient = me->to, .text = "first", .created_ms = 1};
  snprintf(m.time, sizeof m.time, "2026-03-01T10:00:00.000Z");
  me->rc = store_message_add(t, &m);
  me->id = m.id;
  race_wait(me->race); /* the other writer may start */
  sleep_ms(300);
  if (me->rc == 0)
    me->rc = store_commit(t);
  else
    store_rollback(t);
  return NULL;
}

static void test_pg_message_ids_in_commit_order(void **state) {
  fixture_t *f = *state;
  store_txn_t *t = w(f->store);
  int64_t alice = add_user(t, "alice"), bob = add_user(t, "bob");
  assert_int_equal(store_commit(t), 0);
  race_t race = {.arrived = 0};
  pthread_mutex_init(&race.lock, NULL);
  pthread_cond_init(&race.cond, NULL);
  slow_writer_t first = {.store = f->store, .from = alice, .to = bob, .race = &race};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, write_slowly, &first), 0);
  race_wait(&race);
  t = w(f->store);
  int64_t second = message(t, alice, NULL, bob, NULL, "second", 2);
  assert_int_equal(store_commit(t), 0);
  /* Right after the second commit: seeing it means seeing the first. */
  t = r(f->store);
  messages_t p = pending(t, bob, 0, 10);
  store_read_end(t);
  pthread_join(th, NULL);
  assert_int_equal(first.rc, 0);
  assert_true(second > first.id);
  assert_int_equal(p.n, 2);
  assert_int_equal(p.m[0].id, first.id);
  assert_int_equal(p.m[1].id, second);
  pthread_cond_destroy(&race.cond);
  pthread_mutex_destroy(&race.lock);
}

/* More threads than connections: begin waits for a free one. */
typedef struct pool_worker {
  store_t *store;
  char key[16];
  int failures;
} pool_worker_t;

static int put_counter(store_txn_t *t, void *ctx) {
  pool_worker_t *me = ctx;
  char *v = NULL;
  int rc = store_meta_get(t, me->key, &v);
  if (rc < 0 && rc != -ENOENT) return rc;
  char next[32];
  snprintf(next, sizeof next, "%ld", v ? strtol(v, NULL, 10) + 1 : 1);
  free(v);
  return store_meta_put(t, me->key, next);
}

static void *pool_work(void *arg) {
  pool_worker_t *me = arg;
  for (int i = 0; i < 25; i++) {
    if (store_run_txn(me->store, "pool", put_counter, me) != 0) me->failures++;
    store_txn_t *t;
    if (store_read_begin(me->store, "pool read", &t) != 0) {
      me->failures++;
      continue;
    }
    char *v = NULL;
    if (store_meta_get(t, me->key, &v) != 0) me->failures++;
    free(v);
    store_read_end(t);
  }
  return NULL;
}

static void test_pg_pool_more_threads_than_connections(void **state) {
  fixture_t *f = *state;
  pool_worker_t workers[8];
  pthread_t th[8];
  for (int i = 0; i < 8; i++) {
    workers[i] = (pool_worker_t){.store = f->store};
    snprintf(workers[i].key, sizeof workers[i].key, "k%d", i);
    assert_int_equal(pthread_create(&th[i], NULL, pool_work, &workers[i]), 0);
  }
  for (int i = 0; i < 8; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < 8; i++) {
    assert_int_equal(workers[i].failures, 0);
    char *v = NULL;
    assert_int_equal(meta_get(f->store, workers[i].key, &v), 0);
    assert_string_equal(v, "25");
    free(v);
  }
  /* Never more connections than the pool holds. */
  assert_true(admin_int("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                        "'atriumd' AND datname = current_database()") <= 8);
  assert_int_equal(store_error_count(f->store), 0);
}

static int64_t terminate_pool(void) {
  return admin_int("SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM "
                   "pg_stat_activity WHERE application_name = 'atriumd' AND "
                   "datname = current_database()) x");
}

static int put_after_terminate(store_txn_t *t, void *ctx) {
  int *calls = ctx;
  if (++*calls == 1) {
    /* The server ends this very transaction's connection. */
    terminate_pool();
    sleep_ms(50);
  }
  return store_meta_put(t, "survived", "yes");
}

static void test_pg_pool_reconnects(void **state) {
  fixture_t *f = *state;
  char *v = NULL;
  assert_int_equal(meta_get(f->store, "nothing", &v), -ENOENT);
  /* Connections the server dropped while they sat in the pool: replaced at
   * the next begin, without a failure. */
  assert_true(terminate_pool() >= 1);
  sleep_ms(50);
  uint64_t errors = store_error_count(f->store);
  store_txn_t *t = w(f->store);
  assert_int_equal(store_meta_put(t, "after", "reconnect"), 0);
  assert_int_equal(store_commit(t), 0);
  assert_int_equal(store_error_count(f->store), errors);
  assert_int_equal(meta_get(f->store, "after", &v), 0);
  assert_string_equal(v, "reconnect");
  free(v);

  /* Lost inside a transaction: -EAGAIN (nothing committed), so that
   * store_run_txn runs it again on a new connection. */
  int calls = 0;
  assert_int_equal(store_run_txn(f->store, "terminated", put_after_terminate, &calls), 0);
  assert_int_equal(calls, 2);
  assert_int_equal(meta_get(f->store, "survived", &v), 0);
  assert_string_equal(v, "yes");
  free(v);
  assert_non_null(strstr(store_last_error(f->store), "lost"));
}

static void test_pg_failed_statement_ends_transaction(void **state) {
  fixture_t *f = *state;
  /* A failure that is not an expected answer (here a table gone) aborts the
   * transaction on the server: the rest of it reports the same, and commit
   * rolls back. */
  admin_exec("DROP TABLE %s.meta", f->schema);
  store_txn_t *t = w(f->store);
  assert_int_equal(store_audit_add(t, "test", "k", NULL, "v"), 0);
  char *v = NULL;
  assert_int_equal(store_meta_get(t, "x", &v), -EIO);
  assert_int_equal(store_audit_add(t, "test", "k", NULL, "v2"), -EIO);
  assert_int_equal(store_commit(t), -EIO);
  json_t *page = audit_page(f->store, 0, 10);
  assert_int_equal(json_integer_value(json_object_get(page, "total")), 0);
  json_decref(page);
  assert_non_null(strstr(store_last_error(f->store), "meta"));
}


/* ---- web meetings --------------------------------------------------------------------------- */

typedef struct meeting_rows {
  int n;
  char ids[8][STORE_MEETING_ID_MAX + 1];
} meeting_rows_t;

static void collect_meeting(const store_meeting_t *m, void *ctx) {
  meeting_rows_t *c = ctx;
  if (c->n < 8) snprintf(c->ids[c->n], sizeof c->ids[0], "%s", m->id);
  c->n++;
}

static store_meeting_t meeting_row(const char *id, int64_t host, const char *title,
                                   int64_t created_ms) {
  store_meeting_t m = {.host = host, .created_ms = created_ms};
  snprintf(m.id, sizeof m.id, "%s", id);
  snprintf(m.title, sizeof m.title, "%s", title);
  snprintf(m.created_at, sizeof m.created_at, "2026-03-02T12:00:0%d.000Z", (int)(created_ms % 10));
  return m;
}

static void test_meetings(void **state) {
  fixture_t *f = *state;
  store_t *s = f->store;
  store_txn_t *t = w(s);
  int64_t alice = add_user(t, "alice"), bob = add_user(t, "bob");
  store_meeting_t a = meeting_row("m-one", alice, "Weekly", 1);
  snprintf(a.starts_at, sizeof a.starts_at, "2026-03-03T09:00:00.000Z");
  assert_int_equal(store_meeting_add(t, &a), 0);
  store_meeting_t b = meeting_row("m-two", alice, "Review", 2);
  assert_int_equal(store_meeting_add(t, &b), 0);
  store_meeting_t c = meeting_row("m-three", bob, "Bob's", 3);
  assert_int_equal(store_meeting_add(t, &c), 0);
  /* Refused, and the transaction goes on: an id taken, a host that does not exist. */
  store_meeting_t dup = meeting_row("m-one", bob, "Again", 4);
  assert_int_equal(store_meeting_add(t, &dup), -EEXIST);
  store_meeting_t orphan = meeting_row("m-four", bob + 1000, "Nobody", 5);
  assert_int_equal(store_meeting_add(t, &orphan), -EINVAL);
  assert_int_equal(store_meeting_started(t, "m-one", "2026-03-03T09:01:00.000Z"), 0);
  assert_int_equal(store_meeting_started(t, "m-one", "2026-03-03T09:05:00.000Z"), 0);
  assert_int_equal(store_meeting_started(t, "nope", "2026-03-03T09:05:00.000Z"), -ENOENT);
  assert_int_equal(store_meeting_started(t, "m-three", "2026-03-03T10:00:00.000Z"), 0);
  assert_int_equal(store_commit(t), 0);

  t = r(s);
  store_meeting_t got;
  assert_int_equal(store_meeting_get(t, "m-one", &got), 0);
  assert_string_equal(got.title, "Weekly");
  assert_string_equal(got.host_name, "alice");
  assert_int_equal(got.host, alice);
  assert_string_equal(got.starts_at, "2026-03-03T09:00:00.000Z");
  assert_string_equal(got.started_at, "2026-03-03T09:01:00.000Z"); /* the first start stays */
  assert_string_equal(got.ended_at, "");
  assert_int_equal(store_meeting_get(t, "m-two", &got), 0);
  assert_string_equal(got.starts_at, "");
  assert_int_equal(store_meeting_get(t, "m-four", &got), -ENOENT);
  meeting_rows_t rows = {0};
  assert_int_equal(store_meeting_list(t, alice, 10, collect_meeting, &rows), 0);
  assert_int_equal(rows.n, 2);
  assert_string_equal(rows.ids[0], "m-two"); /* newest first */
  assert_string_equal(rows.ids[1], "m-one");
  rows = (meeting_rows_t){0};
  assert_int_equal(store_meeting_list(t, alice, 1, collect_meeting, &rows), 0);
  assert_int_equal(rows.n, 1);
  rows = (meeting_rows_t){0};
  assert_int_equal(store_meeting_open(t, collect_meeting, &rows), 0);
  assert_int_equal(rows.n, 2);
  assert_string_equal(rows.ids[0], "m-one");
  assert_string_equal(rows.ids[1], "m-three");
  store_read_end(t);

  t = w(s);
  assert_int_equal(store_meeting_end(t, "m-one", "2026-03-03T10:00:00.000Z", "The host ended it."),
                   0);
  assert_int_equal(store_meeting_end(t, "m-one", "2026-03-03T11:00:00.000Z", "again"), -ENOENT);
  assert_int_equal(store_meeting_end(t, "nope", "2026-03-03T11:00:00.000Z", "x"), -ENOENT);
  assert_int_equal(store_commit(t), 0);
  t = r(s);
  assert_int_equal(store_meeting_get(t, "m-one", &got), 0);
  assert_string_equal(got.ended_at, "2026-03-03T10:00:00.000Z");
  assert_string_equal(got.end_reason, "The host ended it.");
  rows = (meeting_rows_t){0};
  assert_int_equal(store_meeting_open(t, collect_meeting, &rows), 0);
  assert_int_equal(rows.n, 1);
  store_read_end(t);

  /* A host's meetings go with the host. */
  t = w(s);
  assert_int_equal(store_user_delete(t, "bob"), 0);
  assert_int_equal(store_commit(t), 0);
  t = r(s);
  assert_int_equal(store_meeting_get(t, "m-three", &got), -ENOENT);
  store_read_end(t);
}

/* ---- the cluster --------------------------------------------------------------------- */

static void count_node(const store_node_t *n, void *ctx) {
  store_node_t *out = ctx;
  if (strcmp(n->name, "b") == 0) *out = *n;
  out[1].started_ms++;
}

static void test_nodes(void **state) {
  fixture_t *f = *state;
  store_node_t a = {.name = "a", .url = "http://a:8080", .atrium_version = "1.0",
                    .settings_version = 3, .settings_hash = "aa", .started_ms = 1000};
  store_node_t b = a;
  snprintf(b.name, sizeof b.name, "b");
  store_txn_t *t = w(f->store);
  assert_int_equal(store_node_beat(t, &a), 0);
  assert_int_equal(store_node_beat(t, &b), 0);
  b.settings_version = 4;
  snprintf(b.settings_hash, sizeof b.settings_hash, "bb");
  assert_int_equal(store_node_beat(t, &b), 0); /* the second beat refreshes the row */
  assert_int_equal(store_commit(t), 0);
  store_node_t seen[2];
  memset(seen, 0, sizeof seen);
  t = r(f->store);
  assert_int_equal(store_node_list(t, count_node, seen), 0);
  store_read_end(t);
  assert_int_equal(seen[1].started_ms, 2);
  assert_int_equal(seen[0].settings_version, 4);
  assert_string_equal(seen[0].settings_hash, "bb");
  assert_string_equal(seen[0].url, "http://a:8080");
  assert_true(seen[0].age_ms >= 0 && seen[0].age_ms < 5000);
  t = w(f->store);
  assert_int_equal(store_node_delete(t, "a"), 0);
  assert_int_equal(store_node_delete(t, "a"), -ENOENT);
  store_node_t nameless = {0};
  assert_int_equal(store_node_beat(t, &nameless), -EINVAL);
  assert_int_equal(store_commit(t), 0);
  memset(seen, 0, sizeof seen);
  t = r(f->store);
  assert_int_equal(store_node_list(t, count_node, seen), 0);
  store_read_end(t);
  assert_int_equal(seen[1].started_ms, 1);
}

static void test_session_get(void **state) {
  fixture_t *f = *state;
  store_txn_t *t = w(f->store);
  assert_int_equal(store_admin_create(t, "admin", "hash"), 0);
  store_session_t s = {.token_hash = "abc", .admin = "admin", .csrf = "c1", .created = 10,
                       .expires = 20};
  assert_int_equal(store_session_put(t, &s), 0);
  assert_int_equal(store_commit(t), 0);
  store_session_t got, none;
  t = r(f->store);
  assert_int_equal(store_session_get(t, "abc", &got), 0);
  assert_int_equal(store_session_get(t, "nope", &none), -ENOENT);
  store_read_end(t);
  assert_string_equal(got.admin, "admin");
  assert_string_equal(got.csrf, "c1");
  assert_int_equal(got.expires, 20);
}

static void copy_text(const store_message_t *m, void *ctx) {
  snprintf(ctx, 64, "%s>%s:%s", m->sender_name, m->recipient_name, m->text);
}

static void test_message_read(void **state) {
  fixture_t *f = *state;
  store_txn_t *t = w(f->store);
  store_user_write_t u = {.set_name = true, .name = "ann"};
  assert_int_equal(store_user_insert(t, &u, NULL), 0);
  u.name = "bob";
  assert_int_equal(store_user_insert(t, &u, NULL), 0);
  store_user_t ann, bob;
  assert_int_equal(store_user_get(t, "ann", &ann), 0);
  assert_int_equal(store_user_get(t, "bob", &bob), 0);
  store_message_t m = {.sender = ann.id, .recipient = bob.id, .text = "hi there", .created_ms = 1};
  snprintf(m.time, sizeof m.time, "2026-01-01T00:00:00.000Z");
  assert_int_equal(store_message_add(t, &m), 0);
  assert_int_equal(store_commit(t), 0);
  char got[64] = "";
  t = r(f->store);
  assert_int_equal(store_message_read(t, m.id, copy_text, got), 0);
  assert_int_equal(store_message_read(t, m.id + 100, copy_text, got), -ENOENT);
  store_read_end(t);
  assert_string_equal(got, "ann>bob:hi there");
}

static void test_tickets(void **state) {
  fixture_t *f = *state;
  store_ticket_t k = {.user = "ann", .mobile = true, .client = "ios", .expires = 1000}, got;
  store_ticket_t old = {.user = "bob", .client = "web", .expires = 10};
  store_txn_t *t = w(f->store);
  assert_int_equal(store_ticket_put(t, "h1", &k), 0);
  assert_int_equal(store_ticket_put(t, "h2", &old), 0);
  assert_int_equal(store_commit(t), 0);
  t = w(f->store);
  assert_int_equal(store_ticket_take(t, "h1", 500, &got), 0);
  assert_string_equal(got.user, "ann");
  assert_true(got.mobile);
  assert_string_equal(got.client, "ios");
  assert_int_equal(store_ticket_take(t, "h1", 500, &got), -ENOENT); /* once */
  assert_int_equal(store_ticket_take(t, "h2", 500, &got), -ENOENT); /* expired, and gone */
  assert_int_equal(store_ticket_take(t, "nope", 500, &got), -ENOENT);
  assert_int_equal(store_commit(t), 0);
}

static void test_meeting_host_epoch_and_fence(void **state) {
  fixture_t *f = *state;
  int64_t epoch = -1;
  char node[64];
  store_txn_t *t = r(f->store);
  assert_int_equal(store_meeting_host(t, &epoch, node, sizeof node), 0);
  store_read_end(t);
  assert_int_equal(epoch, 0);
  assert_string_equal(node, "");
  store_hold_t *h = NULL;
  assert_int_equal(store_hold_open(f->store, &h), 0);
  assert_int_equal(store_hold_check(h, 1000), -ENOTCONN); /* not taken yet */
  int64_t mine = 0;
  assert_int_equal(store_hold_try(h, "a", &mine), 1);
  assert_int_equal(mine, 1);
  assert_int_equal(store_hold_check(h, 1000), 0);
  t = w(f->store);
  assert_int_equal(store_meeting_fence(t, mine), 0);
  assert_int_equal(store_meeting_fence(t, mine - 1), -ESTALE);
  assert_int_equal(store_commit(t), 0);
  t = r(f->store);
  assert_int_equal(store_meeting_host(t, &epoch, node, sizeof node), 0);
  store_read_end(t);
  assert_int_equal(epoch, 1);
  assert_string_equal(node, "a");
  store_hold_close(h);
  store_hold_close(NULL);
}


/* Two nodes of one database: the second waits while the first holds, and
 * takes over (epoch up by one) the moment the first's connection ends. */
static void test_pg_hold_takeover(void **state) {
  fixture_t *f = *state;
  store_t *other = NULL;
  char err[512];
  const store_options_t so = {.data_dir = f->dir, .conninfo = f->conninfo};
  assert_int_equal(store_open(current->backend(), &so, &other, err, sizeof err), 0);
  store_hold_t *a = NULL, *b = NULL;
  assert_int_equal(store_hold_open(f->store, &a), 0);
  assert_int_equal(store_hold_open(other, &b), 0);
  int64_t ea = 0, eb = 0;
  assert_int_equal(store_hold_try(a, "a", &ea), 1);
  assert_int_equal(store_hold_try(b, "b", &eb), 0);
  assert_int_equal(store_hold_try(b, "b", &eb), 0);
  assert_int_equal(store_hold_check(a, 1000), 0);
  /* The old host's connection is killed, as a crash would end it. */
  admin_exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = "
             "'atriumd meeting host' AND pid <> pg_backend_pid() AND state = 'idle' AND pid IN "
             "(SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = 2 AND granted)");
  int got = 0;
  for (int i = 0; i < 100 && got == 0; i++) {
    got = store_hold_try(b, "b", &eb);
    if (got == 0) usleep(20000);
  }
  assert_int_equal(got, 1);
  assert_int_equal(eb, ea + 1);
  assert_int_equal(store_hold_check(a, 1000), -ENOTCONN);
  store_txn_t *t = w(f->store);
  assert_int_equal(store_meeting_fence(t, ea), -ESTALE);
  assert_int_equal(store_meeting_fence(t, eb), 0);
  assert_int_equal(store_commit(t), 0);
  store_hold_close(a);
  store_hold_close(b);
  store_close(other);
}

/* A settings row changed by hand raises the version (and so notifies) and
 * is audited; the store's own writes raise nothing behind its back. */
static void test_pg_settings_by_hand(void **state) {
  fixture_t *f = *state;
  store_txn_t *t = w(f->store);
  assert_int_equal(store_settings_put(t, "proxy.port", "3128"), 0);
  assert_int_equal(store_settings_set_version(t, 7), 0);
  assert_int_equal(store_commit(t), 0);
  assert_int_equal(admin_int("SELECT version FROM %s.settings_state", f->schema), 7);
  assert_int_equal(admin_int("SELECT count(*) FROM %s.audit", f->schema), 0);
  admin_exec("UPDATE %s.settings SET value = '8080' WHERE key = 'proxy.port'", f->schema);
  assert_int_equal(admin_int("SELECT version FROM %s.settings_state", f->schema), 8);
  admin_exec("DELETE FROM %s.settings WHERE key = 'proxy.port'", f->schema);
  assert_int_equal(admin_int("SELECT version FROM %s.settings_state", f->schema), 9);
  assert_int_equal(admin_int("SELECT count(*) FROM %s.audit WHERE key = 'proxy.port' AND actor "
                             "LIKE 'database:%%'",
                             f->schema),
                   2);
}

#define CONFORMANCE(t) cmocka_unit_test_setup_teardown(t, setup, teardown)

int main(int argc, char **argv) {
  bool want[2] = {argc < 2, argc < 2 && getenv("ATRIUM_TEST_PG")};
  for (int i = 1; i < argc; i++) {
    size_t b = 0;
    while (b < 2 && strcmp(argv[i], backends[b].name) != 0) b++;
    if (b == 2) {
      fprintf(stderr, "usage: %s [sqlite] [postgresql]\n", argv[0]);
      return 2;
    }
    want[b] = true;
  }
  if (want[1] && !getenv("ATRIUM_TEST_PG")) {
    fprintf(stderr, "test_store: the postgresql tests need ATRIUM_TEST_PG, a libpq connection "
                    "string; run them under scripts/with-postgres.sh\n");
    return 2;
  }
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
      CONFORMANCE(test_admin_accounts),
      CONFORMANCE(test_audit_actions_and_filters),
      CONFORMANCE(test_domain_generations),
      CONFORMANCE(test_users),
      CONFORMANCE(test_tokens_and_devices),
      CONFORMANCE(test_federation_rows),
      CONFORMANCE(test_federation_consent),
      CONFORMANCE(test_prefs),
      CONFORMANCE(test_messages),
      CONFORMANCE(test_journal),
      CONFORMANCE(test_retention),
      CONFORMANCE(test_roster),
      CONFORMANCE(test_nodes),
      CONFORMANCE(test_session_get),
      CONFORMANCE(test_meeting_host_epoch_and_fence),
      CONFORMANCE(test_message_read),
      CONFORMANCE(test_tickets),
      CONFORMANCE(test_user_by_id),
      CONFORMANCE(test_pictures),
      CONFORMANCE(test_tokens_trim),
      CONFORMANCE(test_push_outbox),
      CONFORMANCE(test_meetings),
      CONFORMANCE(test_reopen_keeps_data),
      CONFORMANCE(test_threads),
      cmocka_unit_test(test_close_null),
  };
  const struct CMUnitTest sqlite_only[] = {
      CONFORMANCE(test_sqlite_new_store_schema),
      CONFORMANCE(test_sqlite_pragmas),
      CONFORMANCE(test_sqlite_integrity_check),
      CONFORMANCE(test_sqlite_sessions_cascade),
      CONFORMANCE(test_sqlite_newer_store_refused),
      cmocka_unit_test(test_sqlite_not_a_database),
      cmocka_unit_test(test_sqlite_unwritable_directory),
  };
  const struct CMUnitTest pg_only[] = {
      CONFORMANCE(test_pg_new_store_schema),
      CONFORMANCE(test_pg_newer_store_refused),
      CONFORMANCE(test_pg_nodes_migrate_together),
      cmocka_unit_test(test_pg_open_refused),
      CONFORMANCE(test_pg_integrity_check),
      CONFORMANCE(test_pg_notify_reaches_other_node),
      CONFORMANCE(test_pg_settings_trigger_notifies),
      CONFORMANCE(test_pg_listener_survives_terminate),
      CONFORMANCE(test_pg_conflicting_writes_retry),
      CONFORMANCE(test_pg_message_ids_in_commit_order),
      CONFORMANCE(test_pg_pool_more_threads_than_connections),
      CONFORMANCE(test_pg_pool_reconnects),
      CONFORMANCE(test_pg_failed_statement_ends_transaction),
      CONFORMANCE(test_pg_hold_takeover),
      CONFORMANCE(test_pg_settings_by_hand),
  };
  int failed = 0;
  for (size_t b = 0; b < 2; b++) {
    if (!want[b]) continue;
    current = &backends[b];
    char name[64];
    snprintf(name, sizeof name, "store conformance: %s", current->name);
    failed += _cmocka_run_group_tests(name, conformance, sizeof conformance / sizeof conformance[0],
                                      NULL, NULL);
    if (!current->pg)
      failed += cmocka_run_group_tests_name("store: the SQLite backend", sqlite_only, NULL, NULL);
    else
      failed += cmocka_run_group_tests_name("store: the PostgreSQL backend", pg_only, NULL, NULL);
  }
  PQfinish(admin_conn);
  return failed;
}
