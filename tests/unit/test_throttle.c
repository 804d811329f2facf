/* Unit tests for src/core/throttle.c on a clock the test moves: source
 * penalties, accounts slowed but never locked, success rate limits, exact
 * keys, and that no flood of fresh keys can push out or reset a penalty. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/netaddr.h"
#include "core/throttle.h"

#define T0 1000000

static throttle_t *make(size_t capacity) {
  throttle_policy_t p;
  throttle_default_policy(&p);
  p.capacity = capacity;
  throttle_t *t = throttle_new(&p);
  assert_non_null(t);
  return t;
}

/* One attempt: the verdict, and the outcome recorded when it went ahead. */
static throttle_verdict_t attempt(throttle_t *t, const char *account, const char *source,
                                  throttle_outcome_t outcome, int64_t now, int *wait) {
  int w = 0;
  throttle_verdict_t v = throttle_begin(t, "admin", account, source, now, &w);
  if (v == THROTTLE_GO) {
    assert_int_equal(w, 0);
    throttle_end(t, "admin", account, source, outcome, now);
  } else {
    assert_true(w >= 1);
  }
  if (wait) *wait = w;
  return v;
}

static void test_source_first(void **state) {
  (void)state;
  throttle_t *t = make(1024);
  int64_t now = T0;
  for (int i = 0; i < 5; i++)
    assert_int_equal(attempt(t, "admin", "127.0.12.2", THROTTLE_FAILED, now++, NULL), THROTTLE_GO);
  int wait;
  /* The guessing source is blocked, whatever it sends... */
  assert_int_equal(attempt(t, "admin", "127.0.12.2", THROTTLE_OK, now, &wait), THROTTLE_SOURCE);
  assert_int_equal(wait, 1);
  assert_int_equal(attempt(t, "other", "127.0.12.2", THROTTLE_OK, now, NULL), THROTTLE_SOURCE);
  /* ...and the owner from another address is not held back at all. */
  assert_int_equal(attempt(t, "admin", "127.0.12.1", THROTTLE_OK, now, NULL), THROTTLE_GO);
  /* The delay doubles with each failure after the block. */
  now += 1000;
  assert_int_equal(attempt(t, "admin", "127.0.12.2", THROTTLE_FAILED, now, NULL), THROTTLE_GO);
  assert_int_equal(attempt(t, "admin", "127.0.12.2", THROTTLE_FAILED, now, &wait), THROTTLE_SOURCE);
  assert_int_equal(wait, 2);
  /* A success does not wipe the source's count. */
  now += 2000;
  assert_int_equal(attempt(t, "mine", "127.0.12.2", THROTTLE_OK, now, NULL), THROTTLE_GO);
  assert_int_equal(attempt(t, "admin", "127.0.12.2", THROTTLE_FAILED, now, NULL), THROTTLE_GO);
  assert_int_equal(attempt(t, "admin", "127.0.12.2", THROTTLE_FAILED, now, &wait), THROTTLE_SOURCE);
  assert_int_equal(wait, 4);
  /* The window forgets. */
  now += 15 * 60 * 1000 + 1;
  assert_int_equal(attempt(t, "admin", "127.0.12.2", THROTTLE_FAILED, now, NULL), THROTTLE_GO);
  assert_int_equal(attempt(t, "admin", "127.0.12.2", THROTTLE_FAILED, now, NULL), THROTTLE_GO);
  throttle_free(t);
}

static void test_account_slowed_never_locked(void **state) {
  (void)state;
  throttle_t *t = make(1024);
  int64_t now = T0;
  char src[32];
  /* Seven sources failing once each: nothing is slowed. */
  for (int i = 1; i <= 7; i++) {
    snprintf(src, sizeof src, "10.12.0.%d", i);
    assert_int_equal(attempt(t, "alice", src, THROTTLE_FAILED, now, NULL), THROTTLE_GO);
  }
  assert_int_equal(attempt(t, "alice", "10.12.0.1", THROTTLE_FAILED, now, NULL), THROTTLE_GO);
  /* The eighth makes the account slowed: a source that failed for it waits... */
  assert_int_equal(attempt(t, "alice", "10.12.0.8", THROTTLE_FAILED, now, NULL), THROTTLE_GO);
  int wait;
  assert_int_equal(attempt(t, "alice", "10.12.0.8", THROTTLE_OK, now + 10, &wait),
                   THROTTLE_ACCOUNT);
  assert_true(wait >= 59 && wait <= 60);
  /* ...but a clean source still has its password checked, and succeeds. */
  assert_int_equal(attempt(t, "alice", "10.12.1.1", THROTTLE_OK, now + 10, NULL), THROTTLE_GO);
  /* Another account is not affected. */
  assert_int_equal(attempt(t, "bob", "10.12.0.8", THROTTLE_OK, now + 10, NULL), THROTTLE_GO);
  /* After the wait the failed source may try again. */
  assert_int_equal(attempt(t, "alice", "10.12.0.8", THROTTLE_OK, now + 60000, NULL), THROTTLE_GO);
  /* Any number of attacking sources never refuses a clean one. */
  for (int i = 0; i < 200; i++) {
    snprintf(src, sizeof src, "10.13.%d.%d", i / 250, i % 250 + 1);
    (void)attempt(t, "alice", src, THROTTLE_FAILED, now + 70000, NULL);
  }
  assert_int_equal(attempt(t, "alice", "10.14.0.1", THROTTLE_OK, now + 70000, NULL), THROTTLE_GO);
  throttle_free(t);
}

static void test_parallel_attempts_count(void **state) {
  (void)state;
  throttle_t *t = make(1024);
  int w;
  /* Five guesses in flight at once use up the free failures. */
  for (int i = 0; i < 5; i++)
    assert_int_equal(throttle_begin(t, "admin", "a", "192.0.2.9", T0, &w), THROTTLE_GO);
  assert_int_equal(throttle_begin(t, "admin", "a", "192.0.2.9", T0, &w), THROTTLE_SOURCE);
  for (int i = 0; i < 5; i++) throttle_end(t, "admin", "a", "192.0.2.9", THROTTLE_FAILED, T0);
  assert_int_equal(throttle_begin(t, "admin", "a", "192.0.2.9", T0, &w), THROTTLE_SOURCE);
  throttle_free(t);
}

static void test_success_rate(void **state) {
  (void)state;
  throttle_t *t = make(1024);
  char src[32];
  int wait;
  /* Ten logins of one account from anywhere, then one per 6 s. */
  for (int i = 0; i < 10; i++) {
    snprintf(src, sizeof src, "198.51.100.%d", i + 1);
    assert_int_equal(attempt(t, "carol", src, THROTTLE_OK, T0, NULL), THROTTLE_GO);
  }
  assert_int_equal(attempt(t, "carol", "198.51.100.99", THROTTLE_OK, T0, &wait), THROTTLE_RATE);
  assert_int_equal(wait, 6);
  assert_int_equal(attempt(t, "carol", "198.51.100.99", THROTTLE_OK, T0 + 6000, NULL), THROTTLE_GO);
  /* Thirty logins from one source, whichever accounts. */
  for (int i = 0; i < 30; i++) {
    snprintf(src, sizeof src, "u%d", i);
    assert_int_equal(attempt(t, src, "203.0.113.7", THROTTLE_OK, T0, NULL), THROTTLE_GO);
  }
  assert_int_equal(attempt(t, "u99", "203.0.113.7", THROTTLE_OK, T0, &wait), THROTTLE_RATE);
  assert_int_equal(wait, 2);
  throttle_free(t);
}

static void test_ipv6_by_64(void **state) {
  (void)state;
  throttle_t *t = make(1024);
  char src[64];
  for (int i = 1; i <= 5; i++) {
    snprintf(src, sizeof src, "2001:db8:12:1::%x", i);
    assert_int_equal(attempt(t, "admin", src, THROTTLE_FAILED, T0, NULL), THROTTLE_GO);
  }
  assert_int_equal(attempt(t, "admin", "2001:db8:12:1:ffff:ffff:ffff:ffff", THROTTLE_OK, T0, NULL),
                   THROTTLE_SOURCE);
  assert_int_equal(attempt(t, "admin", "2001:db8:12:2::1", THROTTLE_OK, T0, NULL), THROTTLE_GO);
  /* An IPv4 client written mapped is the same client. */
  for (int i = 0; i < 5; i++) (void)attempt(t, "x", "192.0.2.50", THROTTLE_FAILED, T0, NULL);
  assert_int_equal(attempt(t, "x", "::ffff:192.0.2.50", THROTTLE_OK, T0, NULL), THROTTLE_SOURCE);
  char key[NETADDR_KEY_MAX];
  netaddr_client_key_text("2001:db8:12:1:aaaa::1", key);
  assert_string_equal(key, "2001:db8:12:1::/64");
  netaddr_client_key_text("::ffff:10.1.2.3", key);
  assert_string_equal(key, "10.1.2.3");
  netaddr_client_key_text("not an address", key);
  assert_string_equal(key, "not an address");
  throttle_free(t);
}

/* The old table shared a slot between colliding keys, so one failure under
 * a second name reset the first name's count. Here 200,000 distinct keys
 * pass through a table of 64: quiet ones are evicted, live ones never. */
static void test_flood_cannot_reset(void **state) {
  (void)state;
  throttle_t *t = make(64);
  int64_t now = T0;
  for (int i = 0; i < 5; i++) (void)attempt(t, "alice", "127.0.12.2", THROTTLE_FAILED, now, NULL);
  for (int i = 1; i <= 8; i++) {
    char src[32];
    snprintf(src, sizeof src, "10.20.0.%d", i);
    (void)attempt(t, "bob", src, THROTTLE_FAILED, now, NULL);
  }
  char key[48];
  /* Quiet keys (attempts that neither failed nor succeeded): evicted. */
  for (int i = 0; i < 100000; i++) {
    snprintf(key, sizeof key, "fresh-%d", i);
    char src[32];
    snprintf(src, sizeof src, "172.16.%d.%d", (i / 250) % 250, i % 250 + 1);
    (void)attempt(t, key, src, THROTTLE_ERROR, now, NULL);
  }
  /* Failing keys, each from its own source: live, so they overflow. */
  for (int i = 0; i < 100000; i++) {
    snprintf(key, sizeof key, "guess-%d", i);
    char src[32];
    snprintf(src, sizeof src, "172.17.%d.%d", (i / 250) % 250, i % 250 + 1);
    (void)attempt(t, key, src, THROTTLE_FAILED, now, NULL);
  }
  throttle_stats_t st;
  throttle_get_stats(t, &st);
  assert_true(st.sources <= 64 && st.accounts <= 64);
  assert_true(st.evicted > 0);
  assert_true(st.overflowed > 0);
  int wait;
  assert_int_equal(attempt(t, "alice", "127.0.12.2", THROTTLE_OK, now + 10, &wait),
                   THROTTLE_SOURCE);
  assert_int_equal(attempt(t, "bob", "10.20.0.3", THROTTLE_OK, now + 10, &wait), THROTTLE_ACCOUNT);
  /* Newcomers to the full table share one entry: together they are blocked
   * like one source, so fresh addresses buy no fresh guesses. */
  assert_int_equal(attempt(t, "zed", "172.18.0.1", THROTTLE_OK, now + 10, NULL), THROTTLE_SOURCE);
  /* Once the penalties expire, the table makes room again. */
  now += 16 * 60 * 1000;
  assert_int_equal(attempt(t, "zed", "172.18.0.1", THROTTLE_OK, now, NULL), THROTTLE_GO);
  throttle_free(t);
}

static void test_exact_keys(void **state) {
  (void)state;
  throttle_t *t = make(4096);
  /* Many accounts each slowed by their own sources do not slow others. */
  char acc[32], src[32];
  for (int a = 0; a < 300; a++) {
    snprintf(acc, sizeof acc, "acct%d", a);
    for (int s = 1; s <= 8; s++) {
      snprintf(src, sizeof src, "10.30.%d.%d", a % 200, s);
      throttle_end(t, "client", acc, src, THROTTLE_FAILED, T0);
    }
  }
  int w;
  for (int a = 300; a < 1300; a++) {
    snprintf(acc, sizeof acc, "acct%d", a);
    assert_int_equal(throttle_begin(t, "client", acc, "10.30.0.1", T0, &w), THROTTLE_GO);
    throttle_end(t, "client", acc, "10.30.0.1", THROTTLE_ERROR, T0);
  }
  /* Realms are separate namespaces. */
  assert_int_equal(throttle_begin(t, "admin", "acct0", "10.30.0.1", T0, &w), THROTTLE_GO);
  throttle_end(t, "admin", "acct0", "10.30.0.1", THROTTLE_ERROR, T0);
  assert_int_equal(throttle_begin(t, "client", "acct0", "10.30.0.1", T0, &w), THROTTLE_ACCOUNT);
  throttle_free(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_source_first),
      cmocka_unit_test(test_account_slowed_never_locked),
      cmocka_unit_test(test_parallel_attempts_count),
      cmocka_unit_test(test_success_rate),
      cmocka_unit_test(test_ipv6_by_64),
      cmocka_unit_test(test_flood_cannot_reset),
      cmocka_unit_test(test_exact_keys),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
