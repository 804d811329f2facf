/* Unit tests for secret: key file handling, sealing, passwords, tokens. */
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
#include <unistd.h>

#include <cmocka.h>

#include "fixture_dir.h"
#include "core/secret.h"

typedef struct fixture {
  char dir[PATH_MAX];
  char key_path[PATH_MAX + 16];
  secret_key_t *key;
} fixture_t;

static int setup(void **state) {
  fixture_t *f = calloc(1, sizeof(*f));
  if (!f)
    return -1;
  if (fixture_mkdtemp(f->dir, sizeof(f->dir), "test-secret") < 0)
    return -1;
  snprintf(f->key_path, sizeof(f->key_path), "%s/%s", f->dir, SECRET_KEY_FILE);
  char err[512];
  if (secret_key_open(f->dir, &f->key, err, sizeof(err)) < 0) {
    fprintf(stderr, "secret_key_open: %s\n", err);
    return -1;
  }
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture_t *f = *state;
  secret_key_close(f->key);
  fixture_rmtree(f->dir);
  free(f);
  return 0;
}

static void write_file(const char *path, const void *data, size_t len, mode_t mode) {
  unlink(path);
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, data, len), (ssize_t)len);
  close(fd);
  assert_int_equal(chmod(path, mode), 0);
}

/* ---- key file ------------------------------------------------------------------- */

static void test_key_created_0600(void **state) {
  fixture_t *f = *state;
  struct stat st;
  assert_int_equal(stat(f->key_path, &st), 0);
  assert_true(S_ISREG(st.st_mode));
  assert_int_equal(st.st_mode & 07777, 0600);
  assert_int_equal(st.st_size, 32);
}

static void test_reopen_same_key(void **state) {
  fixture_t *f = *state;
  char *sealed = NULL, *plain = NULL, err[512];
  assert_int_equal(secret_seal(f->key, "hunter2", &sealed), 0);
  secret_key_close(f->key);
  f->key = NULL;
  assert_int_equal(secret_key_open(f->dir, &f->key, err, sizeof(err)), 0);
  assert_int_equal(secret_unseal(f->key, sealed, &plain), 0);
  assert_string_equal(plain, "hunter2");
  free(sealed);
  free(plain);
}

static void test_key_0644_refused(void **state) {
  fixture_t *f = *state;
  char err[512] = "";
  secret_key_t *k = (secret_key_t *)1;
  assert_int_equal(chmod(f->key_path, 0644), 0);
  assert_true(secret_key_open(f->dir, &k, err, sizeof(err)) < 0);
  assert_null(k);
  assert_non_null(strstr(err, "chmod 600"));
  assert_non_null(strstr(err, f->key_path));
  /* Group-writable only is refused too. */
  assert_int_equal(chmod(f->key_path, 0620), 0);
  assert_true(secret_key_open(f->dir, &k, err, sizeof(err)) < 0);
  /* After the fix it opens again. */
  assert_int_equal(chmod(f->key_path, 0600), 0);
  assert_int_equal(secret_key_open(f->dir, &k, err, sizeof(err)), 0);
  secret_key_close(k);
}

static void test_key_wrong_size_refused(void **state) {
  fixture_t *f = *state;
  char err[512] = "";
  unsigned char data[33] = {0};
  secret_key_t *k = NULL;

  write_file(f->key_path, data, 16, 0600);
  assert_true(secret_key_open(f->dir, &k, err, sizeof(err)) < 0);
  assert_null(k);
  assert_non_null(strstr(err, "32"));
  assert_non_null(strstr(err, f->key_path));

  write_file(f->key_path, data, 33, 0600);
  assert_true(secret_key_open(f->dir, &k, err, sizeof(err)) < 0);

  write_file(f->key_path, data, 0, 0600);
  assert_true(secret_key_open(f->dir, &k, err, sizeof(err)) < 0);
  assert_null(k);
}

static void test_missing_dir(void **state) {
  fixture_t *f = *state;
  char dir[PATH_MAX + 16], err[512] = "";
  secret_key_t *k = NULL;
  snprintf(dir, sizeof(dir), "%s/missing", f->dir);
  assert_true(secret_key_open(dir, &k, err, sizeof(err)) < 0);
  assert_null(k);
  assert_non_null(strstr(err, dir));
}

static void test_close_null(void **state) {
  (void)state;
  secret_key_close(NULL);
}

/* ---- sealing -------------------------------------------------------------------- */

static void test_seal_round_trip(void **state) {
  fixture_t *f = *state;
  const char *cases[] = {"", "p", "pässwörd ✓", "a much longer secret with spaces: 0123456789"};
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char *sealed = NULL, *plain = NULL;
    assert_int_equal(secret_seal(f->key, cases[i], &sealed), 0);
    assert_true(strncmp(sealed, SECRET_SEALED_PREFIX, strlen(SECRET_SEALED_PREFIX)) == 0);
    if (strlen(cases[i]) > 8) /* short strings may occur in base64 by chance */
      assert_null(strstr(sealed, cases[i]));
    assert_int_equal(secret_unseal(f->key, sealed, &plain), 0);
    assert_string_equal(plain, cases[i]);
    free(sealed);
    free(plain);
  }
}

static void test_seal_nonce_random(void **state) {
  fixture_t *f = *state;
  char *a, *b;
  assert_int_equal(secret_seal(f->key, "same", &a), 0);
  assert_int_equal(secret_seal(f->key, "same", &b), 0);
  assert_string_not_equal(a, b);
  free(a);
  free(b);
}

static void test_tampered_refused(void **state) {
  fixture_t *f = *state;
  char *sealed, *plain = (char *)1;
  assert_int_equal(secret_seal(f->key, "top secret", &sealed), 0);
  size_t len = strlen(sealed);
  size_t prefix = strlen(SECRET_SEALED_PREFIX);
  /* Flip one character at several places: nonce, ciphertext, tag. */
  size_t spots[] = {prefix, prefix + 10, prefix + 40, len - 4};
  for (size_t i = 0; i < sizeof(spots) / sizeof(spots[0]); i++) {
    char *t = strdup(sealed);
    t[spots[i]] = t[spots[i]] == 'A' ? 'B' : 'A';
    assert_int_equal(secret_unseal(f->key, t, &plain), -EINVAL);
    assert_null(plain);
    free(t);
  }
  /* Truncated, extended, garbage after the text. */
  char *t = strdup(sealed);
  t[len - 4] = '\0';
  assert_int_equal(secret_unseal(f->key, t, &plain), -EINVAL);
  free(t);
  size_t tlen = len + 8;
  t = malloc(tlen);
  snprintf(t, tlen, "%sAAAA", sealed);
  assert_int_equal(secret_unseal(f->key, t, &plain), -EINVAL);
  snprintf(t, tlen, "%s!", sealed);
  assert_int_equal(secret_unseal(f->key, t, &plain), -EINVAL);
  free(t);
  free(sealed);
}

static void test_other_key_refused(void **state) {
  fixture_t *f = *state;
  char dir[PATH_MAX], err[512];
  secret_key_t *other;
  assert_int_equal(fixture_mkdtemp(dir, sizeof(dir), "test-secret"), 0);
  assert_int_equal(secret_key_open(dir, &other, err, sizeof(err)), 0);
  char *sealed, *plain = NULL;
  assert_int_equal(secret_seal(other, "for the other key", &sealed), 0);
  assert_int_equal(secret_unseal(f->key, sealed, &plain), -EINVAL);
  assert_null(plain);
  assert_int_equal(secret_unseal(other, sealed, &plain), 0);
  assert_string_equal(plain, "for the other key");
  free(plain);
  free(sealed);
  secret_key_close(other);
  fixture_rmtree(dir);
}

static void test_unprefixed_refused(void **state) {
  fixture_t *f = *state;
  char *sealed, *plain = NULL;
  assert_int_equal(secret_seal(f->key, "x", &sealed), 0);
  const char *body = sealed + strlen(SECRET_SEALED_PREFIX);
  assert_int_equal(secret_unseal(f->key, body, &plain), -EINVAL);
  char other[256];
  snprintf(other, sizeof(other), "sbox2:%s", body);
  assert_int_equal(secret_unseal(f->key, other, &plain), -EINVAL);
  assert_int_equal(secret_unseal(f->key, "", &plain), -EINVAL);
  assert_int_equal(secret_unseal(f->key, "sbox1:", &plain), -EINVAL);
  assert_int_equal(secret_unseal(f->key, "sbox1:AAAA", &plain), -EINVAL);
  assert_int_equal(secret_unseal(f->key, "sbox1:not base64 at all", &plain), -EINVAL);
  assert_int_equal(secret_unseal(f->key, "plain text password", &plain), -EINVAL);
  assert_null(plain);
  free(sealed);
}

/* ---- passwords -------------------------------------------------------------------- */

static void test_password(void **state) {
  (void)state;
  char *hash = NULL, *hash2 = NULL;
  assert_int_equal(secret_password_hash("correct horse", &hash), 0);
  assert_true(strncmp(hash, "$argon2id$", 10) == 0);
  assert_int_equal(secret_password_verify(hash, "correct horse"), 0);
  assert_int_equal(secret_password_verify(hash, "correct horse "), -EACCES);
  assert_int_equal(secret_password_verify(hash, ""), -EACCES);
  /* Salted: the same password hashes differently each time. */
  assert_int_equal(secret_password_hash("correct horse", &hash2), 0);
  assert_string_not_equal(hash, hash2);
  assert_int_equal(secret_password_verify(hash2, "correct horse"), 0);
  free(hash);
  free(hash2);

  assert_int_equal(secret_password_hash("", &hash), 0);
  assert_int_equal(secret_password_verify(hash, ""), 0);
  assert_int_equal(secret_password_verify(hash, "x"), -EACCES);
  free(hash);

  assert_int_equal(secret_password_verify("", "x"), -EINVAL);
  assert_int_equal(secret_password_verify("plain", "plain"), -EINVAL);
  assert_int_equal(secret_password_verify("$argon2id$garbage", "x"), -EINVAL);
}

/* ---- tokens and hashes -------------------------------------------------------------- */

static void test_random_token(void **state) {
  (void)state;
  char *a = NULL, *b = NULL;
  assert_int_equal(secret_random_token(32, &a), 0);
  assert_int_equal(strlen(a), 43); /* ceil(32 * 4 / 3), no padding */
  for (const char *p = a; *p; p++)
    assert_non_null(
        strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", *p));
  assert_int_equal(secret_random_token(32, &b), 0);
  assert_string_not_equal(a, b);
  free(a);
  free(b);
  assert_int_equal(secret_random_token(3, &a), 0);
  assert_int_equal(strlen(a), 4);
  free(a);
  assert_int_equal(secret_random_token(16, &a), 0);
  assert_int_equal(strlen(a), 22);
  free(a);
  assert_int_equal(secret_random_token(0, &a), -EINVAL);
  assert_null(a);
}

static void test_sha256(void **state) {
  (void)state;
  char out[65];
  secret_sha256_hex("abc", out);
  assert_string_equal(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  secret_sha256_hex("", out);
  assert_string_equal(out, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_key_created_0600, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reopen_same_key, setup, teardown),
      cmocka_unit_test_setup_teardown(test_key_0644_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_key_wrong_size_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_missing_dir, setup, teardown),
      cmocka_unit_test(test_close_null),
      cmocka_unit_test_setup_teardown(test_seal_round_trip, setup, teardown),
      cmocka_unit_test_setup_teardown(test_seal_nonce_random, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tampered_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_other_key_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unprefixed_refused, setup, teardown),
      cmocka_unit_test(test_password),
      cmocka_unit_test(test_random_token),
      cmocka_unit_test(test_sha256),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
