/* Unit tests for the store: a real SQLite file in a temporary directory. */
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
#include "store/store.h"

typedef struct fixture {
  char dir[PATH_MAX];
  store_t *store;
} fixture_t;

static int setup(void **state) {
  fixture_t *f = calloc(1, sizeof(*f));
  if (!f)
    return -1;
  if (fixture_mkdtemp(f->dir, sizeof(f->dir), "test-store") < 0)
    return -1;
  char err[512];
  if (store_open(f->dir, &f->store, err, sizeof(err)) < 0) {
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

static int64_t pragma_int(store_t *s, const char *sql) {
  sqlite3_stmt *st;
  int64_t v = -1;
  store_lock(s);
  assert_int_equal(sqlite3_prepare_v2(store_db(s), sql, -1, &st, NULL), SQLITE_OK);
  if (sqlite3_step(st) == SQLITE_ROW)
    v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  store_unlock(s);
  return v;
}

/* ---- open, schema, pragmas ------------------------------------------------------- */

static void test_new_store_schema(void **state) {
  fixture_t *f = *state;
  /* Every migration step ran; later issues add steps. */
  assert_true(store_code_schema_version() >= 1);
  assert_int_equal(store_schema_version(f->store), store_code_schema_version());
  assert_int_equal(pragma_int(f->store, "PRAGMA user_version"), store_code_schema_version());
  assert_int_equal(pragma_int(f->store, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' "
                                        "AND name IN ('settings', 'meta', 'audit', 'admins', "
                                        "'sessions')"),
                   5);
  assert_int_equal(store_error_count(f->store), 0);

  char path[PATH_MAX + 16];
  struct stat st;
  snprintf(path, sizeof(path), "%s/%s", f->dir, STORE_FILE_NAME);
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_pragmas(void **state) {
  fixture_t *f = *state;
  store_t *s = f->store;
  sqlite3_stmt *st;
  store_lock(s);
  assert_int_equal(sqlite3_prepare_v2(store_db(s), "PRAGMA journal_mode", -1, &st, NULL),
                   SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
  sqlite3_finalize(st);
  store_unlock(s);
  assert_int_equal(pragma_int(s, "PRAGMA foreign_keys"), 1);
  assert_int_equal(pragma_int(s, "PRAGMA synchronous"), 2); /* FULL */
  assert_int_equal(pragma_int(s, "PRAGMA busy_timeout"), 5000);
}

static void test_integrity_check(void **state) {
  fixture_t *f = *state;
  assert_int_equal(store_integrity_check(f->store), 0);
}

static void test_close_null(void **state) {
  (void)state;
  store_close(NULL);
}

/* ---- settings ------------------------------------------------------------------- */

static void test_settings_round_trip(void **state) {
  fixture_t *f = *state;
  store_t *s = f->store;
  json_t *values;
  uint64_t version = 99;

  assert_int_equal(store_settings_load(s, &values, &version), 0);
  assert_int_equal(version, 0);
  assert_int_equal(json_object_size(values), 0);
  json_decref(values);

  store_lock(s);
  assert_int_equal(store_begin(s), 0);
  assert_int_equal(store_settings_put(s, "proxy.host", "\"proxy.example.com\""), 0);
  assert_int_equal(store_settings_put(s, "proxy.port", "3128"), 0);
  assert_int_equal(store_settings_put(s, "proxy.enabled", "true"), 0);
  assert_int_equal(store_settings_put(s, "qos.policies", "[{\"name\":\"a\",\"dscp\":34}]"), 0);
  assert_int_equal(store_settings_set_version(s, 1), 0);
  assert_int_equal(store_commit(s), 0);
  store_unlock(s);

  assert_int_equal(store_settings_load(s, &values, &version), 0);
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
  store_lock(s);
  assert_int_equal(store_begin(s), 0);
  assert_int_equal(store_settings_put(s, "proxy.port", "8080"), 0);
  assert_int_equal(store_settings_delete(s, "proxy.host"), 0);
  assert_int_equal(store_settings_delete(s, "no.such.key"), 0);
  assert_int_equal(store_settings_set_version(s, 2), 0);
  assert_int_equal(store_commit(s), 0);
  store_unlock(s);

  assert_int_equal(store_settings_load(s, &values, &version), 0);
  assert_int_equal(version, 2);
  assert_int_equal(json_object_size(values), 3);
  assert_null(json_object_get(values, "proxy.host"));
  assert_int_equal(json_integer_value(json_object_get(values, "proxy.port")), 8080);
  json_decref(values);

  /* updated_at is RFC 3339 UTC with milliseconds. */
  sqlite3_stmt *st;
  store_lock(s);
  assert_int_equal(sqlite3_prepare_v2(store_db(s),
                                      "SELECT updated_at FROM settings WHERE key = 'proxy.port'",
                                      -1, &st, NULL),
                   SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  const char *t = (const char *)sqlite3_column_text(st, 0);
  assert_int_equal(strlen(t), 24);
  assert_true(t[4] == '-' && t[10] == 'T' && t[19] == '.' && t[23] == 'Z');
  sqlite3_finalize(st);
  store_unlock(s);
}

static void test_settings_put_refuses_invalid_json(void **state) {
  fixture_t *f = *state;
  store_lock(f->store);
  assert_int_equal(store_settings_put(f->store, "proxy.host", "not json"), -EINVAL);
  assert_int_equal(store_settings_put(f->store, "proxy.host", ""), -EINVAL);
  store_unlock(f->store);
}

static void test_rollback_leaves_nothing(void **state) {
  fixture_t *f = *state;
  store_t *s = f->store;
  store_lock(s);
  assert_int_equal(store_begin(s), 0);
  assert_int_equal(store_settings_put(s, "proxy.host", "\"p\""), 0);
  assert_int_equal(store_settings_set_version(s, 7), 0);
  assert_int_equal(store_audit_add(s, "admin", "proxy.host", NULL, "p"), 0);
  assert_int_equal(store_meta_put(s, "install.domain", "example.com"), 0);
  store_rollback(s);
  store_rollback(s); /* a second rollback is harmless */
  store_unlock(s);

  json_t *values, *audit;
  uint64_t version;
  char *v;
  assert_int_equal(store_settings_load(s, &values, &version), 0);
  assert_int_equal(version, 0);
  assert_int_equal(json_object_size(values), 0);
  json_decref(values);
  assert_int_equal(store_audit_list(s, 0, 10, &audit), 0);
  assert_int_equal(json_integer_value(json_object_get(audit, "total")), 0);
  json_decref(audit);
  assert_int_equal(store_meta_get(s, "install.domain", &v), -ENOENT);
  assert_null(v);
}

static void test_meta(void **state) {
  fixture_t *f = *state;
  store_t *s = f->store;
  char *v = NULL;
  assert_int_equal(store_meta_get(s, "install.public_url", &v), -ENOENT);
  store_lock(s);
  assert_int_equal(store_meta_put(s, "install.public_url", "http://host:8443"), 0);
  store_unlock(s);
  assert_int_equal(store_meta_get(s, "install.public_url", &v), 0);
  assert_string_equal(v, "http://host:8443");
  free(v);
  store_lock(s);
  assert_int_equal(store_meta_put(s, "install.public_url", "http://other"), 0);
  store_unlock(s);
  assert_int_equal(store_meta_get(s, "install.public_url", &v), 0);
  assert_string_equal(v, "http://other");
  free(v);
}

/* ---- audit ----------------------------------------------------------------------- */

static void test_audit_paging(void **state) {
  fixture_t *f = *state;
  store_t *s = f->store;
  char key[32], val[32];
  store_lock(s);
  assert_int_equal(store_begin(s), 0);
  for (int i = 0; i < 25; i++) {
    snprintf(key, sizeof(key), "key.%d", i);
    snprintf(val, sizeof(val), "v%d", i);
    assert_int_equal(store_audit_add(s, "admin", key, i == 0 ? NULL : "old", val), 0);
  }
  assert_int_equal(store_audit_add(s, "ctl", "proxy.password", "(set)", NULL), 0);
  assert_int_equal(store_commit(s), 0);
  store_unlock(s);

  json_t *page;
  assert_int_equal(store_audit_list(s, 0, 10, &page), 0);
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
  assert_int_equal(strlen(json_string_value(json_object_get(e0, "time"))), 24);
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
  assert_int_equal(store_audit_list(s, 20, 10, &page), 0);
  entries = json_object_get(page, "entries");
  assert_int_equal(json_array_size(entries), 6);
  json_t *last = json_array_get(entries, 5);
  assert_string_equal(json_string_value(json_object_get(last, "key")), "key.0");
  assert_true(json_is_null(json_object_get(last, "old")));
  assert_string_equal(json_string_value(json_object_get(last, "new")), "v0");
  json_decref(page);

  /* Past the end: empty page, total still right. */
  assert_int_equal(store_audit_list(s, 100, 10, &page), 0);
  assert_int_equal(json_array_size(json_object_get(page, "entries")), 0);
  assert_int_equal(json_integer_value(json_object_get(page, "total")), 26);
  json_decref(page);

  /* Clamping. */
  assert_int_equal(store_audit_list(s, -5, 0, &page), 0);
  assert_int_equal(json_integer_value(json_object_get(page, "offset")), 0);
  assert_int_equal(json_integer_value(json_object_get(page, "limit")), 1);
  assert_int_equal(json_array_size(json_object_get(page, "entries")), 1);
  json_decref(page);
  assert_int_equal(store_audit_list(s, 0, 100000, &page), 0);
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
  assert_int_equal(store_admin_count(s, &n), 0);
  assert_int_equal(n, 0);
  assert_int_equal(store_admin_get_hash(s, "admin", &hash), -ENOENT);
  assert_null(hash);

  store_lock(s);
  assert_int_equal(store_admin_create(s, "admin", "$argon2id$v=19$m=65536,t=2,p=1$x$y"), 0);
  store_unlock(s);
  assert_int_equal(store_admin_count(s, &n), 0);
  assert_int_equal(n, 1);
  assert_int_equal(store_admin_get_hash(s, "admin", &hash), 0);
  assert_string_equal(hash, "$argon2id$v=19$m=65536,t=2,p=1$x$y");
  free(hash);

  /* A second account of the same name is refused, and counted as a failure. */
  uint64_t errors = store_error_count(s);
  store_lock(s);
  assert_int_equal(store_admin_create(s, "admin", "other"), -EEXIST);
  store_unlock(s);
  assert_int_equal(store_error_count(s), errors + 1);
  assert_non_null(strstr(store_last_error(s), "UNIQUE"));
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
  if (c->n < 8)
    c->items[c->n++] = *x;
}

static void test_sessions(void **state) {
  fixture_t *f = *state;
  store_t *s = f->store;
  store_lock(s);
  assert_int_equal(store_admin_create(s, "admin", "h"), 0);
  store_unlock(s);

  store_session_t x;
  make_session(&x, "aaaa", "admin", 1000, 2000);
  assert_int_equal(store_session_put(s, &x), 0);
  make_session(&x, "bbbb", "admin", 1000, 5000);
  assert_int_equal(store_session_put(s, &x), 0);
  make_session(&x, "cccc", "admin", 1000, 3000);
  assert_int_equal(store_session_put(s, &x), 0);
  make_session(&x, "dddd", "admin", 1000, 9000);
  assert_int_equal(store_session_put(s, &x), 0);
  assert_int_equal(store_session_delete(s, "dddd"), 0);

  /* A session for an unknown admin breaks the foreign key. */
  make_session(&x, "eeee", "nobody", 1000, 9000);
  assert_int_equal(store_session_put(s, &x), -EINVAL);

  collected_t c = {0};
  assert_int_equal(store_session_load_all(s, 3000, collect, &c), 0);
  assert_int_equal(c.n, 1); /* aaaa and cccc have expired at 3000 */
  assert_string_equal(c.items[0].token_hash, "bbbb");
  assert_string_equal(c.items[0].admin, "admin");
  assert_string_equal(c.items[0].csrf, "csrf-bbbb");
  assert_int_equal(c.items[0].created, 1000);
  assert_int_equal(c.items[0].expires, 5000);

  /* The expired rows are gone, not merely skipped. */
  assert_int_equal(pragma_int(s, "SELECT count(*) FROM sessions"), 1);

  /* Deleting the admin takes its sessions with it. */
  store_lock(s);
  assert_int_equal(sqlite3_exec(store_db(s), "DELETE FROM admins", NULL, NULL, NULL), SQLITE_OK);
  store_unlock(s);
  assert_int_equal(pragma_int(s, "SELECT count(*) FROM sessions"), 0);
}

/* ---- reopening ------------------------------------------------------------------ */

static void test_reopen_keeps_data(void **state) {
  fixture_t *f = *state;
  store_t *s = f->store;
  store_lock(s);
  assert_int_equal(store_begin(s), 0);
  assert_int_equal(store_settings_put(s, "domain.name", "\"example.com\""), 0);
  assert_int_equal(store_settings_set_version(s, 5), 0);
  assert_int_equal(store_meta_put(s, "install.domain", "example.com"), 0);
  assert_int_equal(store_audit_add(s, "admin", "domain.name", NULL, "example.com"), 0);
  assert_int_equal(store_admin_create(s, "admin", "hash"), 0);
  assert_int_equal(store_commit(s), 0);
  store_unlock(s);
  store_session_t x;
  make_session(&x, "tok", "admin", 1, 10);
  assert_int_equal(store_session_put(s, &x), 0);
  store_close(s);
  f->store = NULL;

  char err[512];
  assert_int_equal(store_open(f->dir, &f->store, err, sizeof(err)), 0);
  s = f->store;
  assert_int_equal(store_schema_version(s), store_code_schema_version());
  json_t *values, *audit;
  uint64_t version;
  assert_int_equal(store_settings_load(s, &values, &version), 0);
  assert_int_equal(version, 5);
  assert_string_equal(json_string_value(json_object_get(values, "domain.name")), "example.com");
  json_decref(values);
  char *v;
  assert_int_equal(store_meta_get(s, "install.domain", &v), 0);
  assert_string_equal(v, "example.com");
  free(v);
  assert_int_equal(store_audit_list(s, 0, 10, &audit), 0);
  assert_int_equal(json_integer_value(json_object_get(audit, "total")), 1);
  json_decref(audit);
  assert_int_equal(store_admin_get_hash(s, "admin", &v), 0);
  free(v);
  collected_t c = {0};
  assert_int_equal(store_session_load_all(s, 5, collect, &c), 0);
  assert_int_equal(c.n, 1);
}

static void test_newer_store_refused(void **state) {
  fixture_t *f = *state;
  store_lock(f->store);
  assert_int_equal(sqlite3_exec(store_db(f->store), "PRAGMA user_version = 99", NULL, NULL, NULL),
                   SQLITE_OK);
  store_unlock(f->store);
  store_close(f->store);
  f->store = NULL;

  char err[512] = "";
  assert_true(store_open(f->dir, &f->store, err, sizeof(err)) < 0);
  assert_null(f->store);
  assert_non_null(strstr(err, "99"));
  assert_non_null(strstr(err, "newer"));
  assert_non_null(strstr(err, STORE_FILE_NAME));
}

static void test_not_a_database(void **state) {
  char dir[PATH_MAX], path[PATH_MAX + 16], err[512] = "";
  assert_int_equal(fixture_mkdtemp(dir, sizeof(dir), "test-store"), 0);
  snprintf(path, sizeof(path), "%s/%s", dir, STORE_FILE_NAME);
  FILE *fp = fopen(path, "w");
  assert_non_null(fp);
  for (int i = 0; i < 200; i++)
    fputs("this is not a database file at all.\n", fp);
  fclose(fp);
  store_t *s = (store_t *)1;
  assert_true(store_open(dir, &s, err, sizeof(err)) < 0);
  assert_null(s);
  assert_non_null(strstr(err, "not an SQLite database"));
  assert_non_null(strstr(err, path));
  fixture_rmtree(dir);
}

static void test_unwritable_directory(void **state) {
  char dir[PATH_MAX], err[512] = "";
  store_t *s = NULL;

  /* A directory that does not exist. */
  assert_int_equal(fixture_mkdtemp(dir, sizeof(dir), "test-store"), 0);
  char missing[PATH_MAX + 16];
  snprintf(missing, sizeof(missing), "%s/missing", dir);
  assert_true(store_open(missing, &s, err, sizeof(err)) < 0);
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
  int r = store_open(target, &s, err, sizeof(err));
  assert_true(r < 0);
  assert_null(s);
  assert_non_null(strstr(err, target));
  assert_non_null(strstr(err, "permission"));
  assert_non_null(strstr(err, "disk"));
  chmod(dir, 0700);
  fixture_rmtree(dir);
}

/* ---- concurrency ------------------------------------------------------------------ */

static void *writer(void *arg) {
  store_t *s = arg;
  char key[32];
  for (int i = 0; i < 50; i++) {
    snprintf(key, sizeof(key), "k%d", i);
    store_lock(s);
    if (store_begin(s) == 0) {
      store_audit_add(s, "t", key, NULL, "x");
      store_commit(s);
    }
    store_unlock(s);
    json_t *page;
    if (store_audit_list(s, 0, 5, &page) == 0)
      json_decref(page);
  }
  return NULL;
}

static void test_threads(void **state) {
  fixture_t *f = *state;
  pthread_t t[4];
  for (int i = 0; i < 4; i++)
    assert_int_equal(pthread_create(&t[i], NULL, writer, f->store), 0);
  for (int i = 0; i < 4; i++)
    pthread_join(t[i], NULL);
  json_t *page;
  assert_int_equal(store_audit_list(f->store, 0, 1, &page), 0);
  assert_int_equal(json_integer_value(json_object_get(page, "total")), 200);
  json_decref(page);
  assert_int_equal(store_error_count(f->store), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_new_store_schema, setup, teardown),
      cmocka_unit_test_setup_teardown(test_pragmas, setup, teardown),
      cmocka_unit_test_setup_teardown(test_integrity_check, setup, teardown),
      cmocka_unit_test(test_close_null),
      cmocka_unit_test_setup_teardown(test_settings_round_trip, setup, teardown),
      cmocka_unit_test_setup_teardown(test_settings_put_refuses_invalid_json, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rollback_leaves_nothing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_meta, setup, teardown),
      cmocka_unit_test_setup_teardown(test_audit_paging, setup, teardown),
      cmocka_unit_test_setup_teardown(test_admins, setup, teardown),
      cmocka_unit_test_setup_teardown(test_sessions, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reopen_keeps_data, setup, teardown),
      cmocka_unit_test_setup_teardown(test_newer_store_refused, setup, teardown),
      cmocka_unit_test(test_not_a_database),
      cmocka_unit_test(test_unwritable_directory),
      cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
