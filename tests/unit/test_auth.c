/* Authentication against a real store in a temporary data directory.
 * Argon2id costs ~0.1-0.5 s and 64 MiB per hash, so each test keeps its
 * number of logins small. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "core/throttle.h"
#include "http/auth.h"
#include "fixture_dir.h"
#include "core/secret.h"
#include "store/sqlite/sqlite.h"
#include "store/store.h"

#define ENV_PASSWORD "correct horse battery"

typedef struct fixture {
  char dir[1024];
  store_t *store;
  auth_bootstrap_t boot;
} fixture_t;

static void open_store(fixture_t *f) {
  char err[512];
  const store_options_t so = {.data_dir = f->dir};
  if (store_open(store_sqlite_backend(), &so, &f->store, err, sizeof err) != 0)
    fail_msg("store_open: %s", err);
}

static int64_t admin_count(store_t *s) {
  store_txn_t *t;
  int64_t n = -1;
  assert_int_equal(store_read_begin(s, "test", &t), 0);
  assert_int_equal(store_admin_count(t, &n), 0);
  store_read_end(t);
  return n;
}

static int session_put(store_t *s, const store_session_t *x) {
  store_txn_t *t;
  assert_int_equal(store_begin(s, "test", &t), 0);
  int r = store_session_put(t, x);
  if (r < 0) {
    store_rollback(t);
    return r;
  }
  return store_commit(t);
}

static void start_auth(fixture_t *f) {
  char err[512];
  int r = auth_init(f->store, f->dir, &f->boot, err, sizeof err);
  if (r != 0) fail_msg("auth_init: %d %s", r, err);
}

/* A new data directory and store; auth is started by the test, because the
 * environment decides how the first admin is made. */
static int setup(void **state) {
  fixture_t *f = calloc(1, sizeof *f);
  if (!f) return -1;
  if (fixture_mkdtemp(f->dir, sizeof f->dir, "auth") < 0) return -1;
  open_store(f);
  unsetenv("ATRIUM_ADMIN_PASSWORD");
  throttle_logins_reset();
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture_t *f = *state;
  auth_shutdown();
  auth_bootstrap_clear(&f->boot);
  store_close(f->store);
  int r = fixture_rmtree(f->dir);
  unsetenv("ATRIUM_ADMIN_PASSWORD");
  free(f);
  return r == 0 ? 0 : -1;
}

static void restart(fixture_t *f) {
  auth_shutdown();
  auth_bootstrap_clear(&f->boot);
  store_close(f->store);
  open_store(f);
  start_auth(f);
}

static int login(const char *user, const char *password, const char *addr, auth_session_t *s,
                 int *retry_after) {
  auth_session_t tmp;
  int ra = 0;
  int r = auth_login(user, password, addr, s ? s : &tmp, &ra);
  if (!s) auth_session_clear(&tmp);
  if (retry_after) *retry_after = ra;
  return r;
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void password_file_path(const fixture_t *f, char *out, size_t outlen) {
  snprintf(out, outlen, "%s/%s", f->dir, AUTH_INITIAL_PASSWORD_FILE);
}

/* ---- bootstrap ---------------------------------------------------------------- */

static void test_bootstrap_env(void **state) {
  fixture_t *f = *state;
  setenv("ATRIUM_ADMIN_PASSWORD", ENV_PASSWORD, 1);
  start_auth(f);
  assert_true(f->boot.created);
  assert_true(f->boot.password_from_env);
  assert_null(f->boot.password);
  assert_string_equal(f->boot.password_file, "");
  char path[1200];
  password_file_path(f, path, sizeof path);
  assert_int_equal(access(path, F_OK), -1);

  assert_int_equal(login(AUTH_ADMIN_NAME, ENV_PASSWORD, "127.0.0.1", NULL, NULL), 0);

  /* No second bootstrap: the account exists, a new variable changes nothing. */
  setenv("ATRIUM_ADMIN_PASSWORD", "another password entirely", 1);
  restart(f);
  assert_false(f->boot.created);
  assert_null(f->boot.password);
  assert_int_equal(admin_count(f->store), 1);
}

static void test_bootstrap_short_env(void **state) {
  fixture_t *f = *state;
  setenv("ATRIUM_ADMIN_PASSWORD", "Abc1234", 1);
  char err[512] = "";
  assert_int_equal(auth_init(f->store, f->dir, &f->boot, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "ATRIUM_ADMIN_PASSWORD"));
  assert_non_null(strstr(err, "8 characters"));
  assert_null(strstr(err, "Abc1234"));
  assert_false(f->boot.created);
  assert_int_equal(admin_count(f->store), 0);
  /* A failed init leaves nothing behind: a corrected start works. */
  setenv("ATRIUM_ADMIN_PASSWORD", ENV_PASSWORD, 1);
  start_auth(f);
  assert_true(f->boot.created);
}

static void test_bootstrap_generated(void **state) {
  fixture_t *f = *state;
  char path[1200];
  password_file_path(f, path, sizeof path);
  /* A leftover file, too open and with old content, must be replaced. */
  int fd = open(path, O_CREAT | O_WRONLY, 0644);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, "stale-content-that-is-long\n", 27), 27);
  assert_int_equal(fchmod(fd, 0644), 0);
  close(fd);

  /* Nothing may reach stderr: the caller prints the password, once. */
  char errpath[1200];
  snprintf(errpath, sizeof errpath, "%s/stderr.txt", f->dir);
  fflush(stderr);
  int saved = dup(2);
  int efd = open(errpath, O_CREAT | O_TRUNC | O_WRONLY, 0600);
  assert_true(saved >= 0 && efd >= 0);
  assert_int_equal(dup2(efd, 2), 2);
  close(efd);
  mode_t old_mask = umask(0);
  start_auth(f);
  umask(old_mask);
  auth_session_t s;
  int r = login(AUTH_ADMIN_NAME, f->boot.password, "127.0.0.1", &s, NULL);
  int r_bad = login(AUTH_ADMIN_NAME, "wrong password", "127.0.0.1", NULL, NULL);
  fflush(stderr);
  assert_int_equal(dup2(saved, 2), 2);
  close(saved);

  assert_true(f->boot.created);
  assert_false(f->boot.password_from_env);
  assert_non_null(f->boot.password);
  assert_true(strlen(f->boot.password) >= 16);
  assert_string_equal(f->boot.password_file, path);

  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_true(S_ISREG(st.st_mode));
  assert_int_equal(st.st_mode & 07777, 0600);
  char content[256] = "";
  FILE *fp = fopen(path, "r");
  assert_non_null(fp);
  size_t n = fread(content, 1, sizeof content - 1, fp);
  fclose(fp);
  content[n] = '\0';
  char want[256];
  snprintf(want, sizeof want, "%s\n", f->boot.password);
  assert_string_equal(content, want);

  assert_int_equal(r, 0);
  assert_int_equal(r_bad, -EACCES);
  assert_non_null(s.token);
  auth_session_clear(&s);

  assert_int_equal(stat(errpath, &st), 0);
  assert_int_equal(st.st_size, 0);

  /* No second bootstrap: the file is left as it is. */
  restart(f);
  assert_false(f->boot.created);
  assert_null(f->boot.password);
  fp = fopen(path, "r");
  assert_non_null(fp);
  n = fread(content, 1, sizeof content - 1, fp);
  fclose(fp);
  content[n] = '\0';
  assert_string_equal(content, want);
}

/* ---- login, tokens, sessions ------------------------------------------------------ */

/* Counts rows on a second connection to the SQLite file, as an operator's
 * sqlite3 would. */
static int64_t count_rows(const char *dir, const char *sql, const char *arg) {
  char path[1200];
  snprintf(path, sizeof path, "%s/%s", dir, STORE_SQLITE_FILE_NAME);
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;
  int64_t n = -1;
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
      sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
    if (arg) sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return n;
}

static void test_login_and_sessions(void **state) {
  fixture_t *f = *state;
  setenv("ATRIUM_ADMIN_PASSWORD", ENV_PASSWORD, 1);
  start_auth(f);

  auth_session_t a, b;
  int64_t before = (int64_t)time(NULL);
  assert_int_equal(login(AUTH_ADMIN_NAME, ENV_PASSWORD, "127.0.0.1", &a, NULL), 0);
  assert_int_equal(login(AUTH_ADMIN_NAME, ENV_PASSWORD, "::1", &b, NULL), 0);
  assert_non_null(a.token);
  assert_true(strlen(a.token) >= 40);
  assert_string_not_equal(a.token, b.token);
  assert_string_equal(a.admin, AUTH_ADMIN_NAME);
  assert_true(strlen(a.csrf) >= 20);
  assert_string_not_equal(a.csrf, b.csrf);
  assert_true(a.expires >= before + AUTH_SESSION_SECONDS);
  assert_true(a.expires <= (int64_t)time(NULL) + AUTH_SESSION_SECONDS);

  auth_session_t bad;
  int ra = -1;
  assert_int_equal(auth_login(AUTH_ADMIN_NAME, "wrong password", "127.0.0.1", &bad, &ra), -EACCES);
  assert_null(bad.token);
  assert_int_equal(ra, 0);
  assert_int_equal(login("nobody", ENV_PASSWORD, "127.0.0.1", NULL, NULL), -EACCES);
  assert_int_equal(login("", "", NULL, NULL, NULL), -EACCES);

  auth_identity_t who;
  assert_int_equal(auth_check_token(a.token, &who), 0);
  assert_string_equal(who.admin, AUTH_ADMIN_NAME);
  assert_string_equal(who.csrf, a.csrf);
  assert_int_equal(who.expires, a.expires);
  assert_int_equal(auth_check_token(b.token, NULL), 0);
  assert_int_equal(auth_check_token("not-a-token", &who), -EACCES);
  assert_string_equal(who.admin, "");
  assert_int_equal(auth_check_token("", &who), -EACCES);
  assert_int_equal(auth_check_token(NULL, &who), -EACCES);
  char *almost = strdup(a.token);
  almost[0] = almost[0] == 'A' ? 'B' : 'A';
  assert_int_equal(auth_check_token(almost, NULL), -EACCES);
  free(almost);

  /* The store keeps hashes, never tokens. */
  char hash[65];
  secret_sha256_hex(a.token, hash);
  assert_int_equal(count_rows(f->dir, "SELECT count(*) FROM sessions WHERE token_hash = ?1", hash),
                   1);
  assert_int_equal(
      count_rows(f->dir, "SELECT count(*) FROM sessions WHERE token_hash = ?1", a.token), 0);

  /* Logout ends that session only, here and in the store. */
  assert_int_equal(auth_logout(a.token), 0);
  assert_int_equal(auth_check_token(a.token, NULL), -EACCES);
  assert_int_equal(auth_check_token(b.token, NULL), 0);
  assert_int_equal(auth_logout(a.token), -EACCES);
  assert_int_equal(count_rows(f->dir, "SELECT count(*) FROM sessions WHERE token_hash = ?1", hash),
                   0);

  /* Sessions survive a restart of auth on a reopened store. */
  restart(f);
  assert_int_equal(auth_check_token(b.token, &who), 0);
  assert_string_equal(who.csrf, b.csrf);
  assert_int_equal(auth_check_token(a.token, NULL), -EACCES);

  auth_session_clear(&a);
  auth_session_clear(&b);
  assert_null(a.token);
  auth_session_clear(NULL);
}

/* An unknown user name must cost a full Argon2id verification: a bound far
 * below that would show a store lookup alone. */
static void test_unknown_user_timing(void **state) {
  fixture_t *f = *state;
  setenv("ATRIUM_ADMIN_PASSWORD", ENV_PASSWORD, 1);
  start_auth(f);
  double t0 = now_seconds();
  assert_int_equal(login(AUTH_ADMIN_NAME, "wrong password", "198.51.100.1", NULL, NULL), -EACCES);
  double t1 = now_seconds();
  assert_int_equal(login("no-such-admin", "wrong password", "198.51.100.2", NULL, NULL), -EACCES);
  double t2 = now_seconds();
  double known = t1 - t0, unknown = t2 - t1;
  if (unknown < known / 4) fail_msg("unknown user took %.3f s, wrong password %.3f s", unknown, known);
}

static void test_expired_sessions(void **state) {
  fixture_t *f = *state;
  setenv("ATRIUM_ADMIN_PASSWORD", ENV_PASSWORD, 1);
  start_auth(f);
  /* Written as another process run would have: expired rows are not loaded. */
  store_session_t s = {.admin = AUTH_ADMIN_NAME, .csrf = "c"};
  int64_t now = (int64_t)time(NULL);
  secret_sha256_hex("expired-token", s.token_hash);
  s.created = now - 2 * AUTH_SESSION_SECONDS;
  s.expires = now - 1;
  assert_int_equal(session_put(f->store, &s), 0);
  secret_sha256_hex("live-token", s.token_hash);
  s.created = now;
  s.expires = now + 100;
  assert_int_equal(session_put(f->store, &s), 0);
  restart(f);
  assert_int_equal(auth_check_token("expired-token", NULL), -EACCES);
  assert_int_equal(auth_check_token("live-token", NULL), 0);
}

/* More sessions than the table holds: the oldest go, in memory and in the
 * store; then heavy removal must leave every other session findable (the
 * table's deletion moves entries around). */
static void test_session_capacity(void **state) {
  fixture_t *f = *state;
  setenv("ATRIUM_ADMIN_PASSWORD", ENV_PASSWORD, 1);
  start_auth(f);
  enum { CAP = 4096, EXTRA = 10, TOTAL = CAP + EXTRA };
  int64_t now = (int64_t)time(NULL);
  store_txn_t *st;
  assert_int_equal(store_begin(f->store, "test", &st), 0);
  for (int i = 0; i < TOTAL; i++) {
    char token[32];
    snprintf(token, sizeof token, "tok-%d", i);
    store_session_t s = {.admin = AUTH_ADMIN_NAME, .csrf = "c", .created = now - TOTAL + i,
                         .expires = now + 3600};
    secret_sha256_hex(token, s.token_hash);
    assert_int_equal(store_session_put(st, &s), 0);
  }
  assert_int_equal(store_commit(st), 0);

  restart(f);
  assert_int_equal(count_rows(f->dir, "SELECT count(*) FROM sessions", NULL), CAP);
  for (int i = 0; i < TOTAL; i++) {
    char token[32];
    snprintf(token, sizeof token, "tok-%d", i);
    assert_int_equal(auth_check_token(token, NULL), i < EXTRA ? -EACCES : 0);
  }
  srand(12345);
  static bool gone[TOTAL];
  for (int n = 0; n < CAP / 2; n++) {
    int i = EXTRA + rand() % CAP;
    char token[32];
    snprintf(token, sizeof token, "tok-%d", i);
    assert_int_equal(auth_logout(token), gone[i] ? -EACCES : 0);
    gone[i] = true;
  }
  for (int i = EXTRA; i < TOTAL; i++) {
    char token[32];
    snprintf(token, sizeof token, "tok-%d", i);
    if (auth_check_token(token, NULL) != (gone[i] ? -EACCES : 0))
      fail_msg("session %d: wrong answer after removals", i);
  }
}

/* ---- throttling ------------------------------------------------------------------------- */

/* Failures for one user from many addresses slow that user down for the
 * failing addresses only: the right password from a clean one still works. */
static void test_throttle_user(void **state) {
  fixture_t *f = *state;
  setenv("ATRIUM_ADMIN_PASSWORD", ENV_PASSWORD, 1);
  start_auth(f);
  char addr[32];
  int ra;
  for (int i = 0; i < 12; i++) {
    snprintf(addr, sizeof addr, "10.0.0.%d", i + 1);
    assert_int_equal(login(AUTH_ADMIN_NAME, "wrong password", addr, NULL, &ra), -EACCES);
    assert_int_equal(ra, 0);
  }
  /* A failed address is held back for this user... */
  assert_int_equal(login(AUTH_ADMIN_NAME, ENV_PASSWORD, "10.0.0.12", NULL, &ra), -EAGAIN);
  assert_true(ra >= 1);
  /* ...a clean one is not. */
  assert_int_equal(login(AUTH_ADMIN_NAME, ENV_PASSWORD, "10.0.1.1", NULL, &ra), 0);
  assert_int_equal(ra, 0);
  /* Another user's failures do not hold this one back. */
  assert_int_equal(login("operator", "wrong password", "10.0.0.12", NULL, &ra), -EACCES);
}

static void test_throttle_address(void **state) {
  fixture_t *f = *state;
  setenv("ATRIUM_ADMIN_PASSWORD", ENV_PASSWORD, 1);
  start_auth(f);
  int ra;
  /* Guessing user names from one address: each name fails once. */
  for (int i = 0; i < AUTH_FAILURES_BEFORE_DELAY; i++) {
    char user[32];
    snprintf(user, sizeof user, "guess%d", i);
    assert_int_equal(login(user, "password1", "192.0.2.1", NULL, &ra), -EACCES);
  }
  assert_int_equal(login(AUTH_ADMIN_NAME, ENV_PASSWORD, "192.0.2.1", NULL, &ra), -EAGAIN);
  assert_true(ra > 0);
  /* The user itself is not held back from elsewhere. */
  assert_int_equal(login(AUTH_ADMIN_NAME, ENV_PASSWORD, "192.0.2.2", NULL, &ra), 0);
  assert_int_equal(ra, 0);
}

static void test_not_initialised(void **state) {
  (void)state;
  auth_session_t s;
  int ra = -1;
  assert_int_equal(auth_login(AUTH_ADMIN_NAME, "x", NULL, &s, &ra), -EINVAL);
  assert_null(s.token);
  assert_int_equal(ra, 0);
  assert_int_equal(auth_check_token("anything", NULL), -EACCES);
  assert_int_equal(auth_logout("anything"), -EACCES);
  auth_bootstrap_clear(NULL);
  auth_shutdown();
  char err[128];
  assert_int_equal(auth_init(NULL, "/tmp", NULL, err, sizeof err), -EINVAL);
}

static void test_init_twice(void **state) {
  fixture_t *f = *state;
  setenv("ATRIUM_ADMIN_PASSWORD", ENV_PASSWORD, 1);
  start_auth(f);
  char err[256];
  auth_bootstrap_t boot;
  assert_int_equal(auth_init(f->store, f->dir, &boot, err, sizeof err), -EALREADY);
  assert_false(boot.created);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_not_initialised),
      cmocka_unit_test_setup_teardown(test_bootstrap_env, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bootstrap_short_env, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bootstrap_generated, setup, teardown),
      cmocka_unit_test_setup_teardown(test_login_and_sessions, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unknown_user_timing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_expired_sessions, setup, teardown),
      cmocka_unit_test_setup_teardown(test_session_capacity, setup, teardown),
      cmocka_unit_test_setup_teardown(test_throttle_user, setup, teardown),
      cmocka_unit_test_setup_teardown(test_throttle_address, setup, teardown),
      cmocka_unit_test_setup_teardown(test_init_twice, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
