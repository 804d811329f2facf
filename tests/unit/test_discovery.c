/* The discovery datagrams (parser table, amplification rule), the rate
 * limiter, and the principal → windows_account rule of kerberos.c. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "mod/publishing/discovery.h"
#include "mod/publishing/kerberos.h"

static const uint8_t NONCE[DISCOVERY_NONCE_LEN] = {1, 2, 3, 4, 5, 6, 7, 8,
                                                    9, 10, 11, 12, 13, 14, 15, 16};

static size_t query(uint8_t *buf, size_t len) {
  return discovery_build_query(NONCE, buf, len);
}

typedef struct parse_case {
  const char *name;
  size_t len;          /* datagram length */
  int poke_at;         /* byte to change, -1 none */
  uint8_t poke;
  int want;            /* 0 or -EBADMSG */
  discovery_drop_t why;
} parse_case_t;

static void test_parse_table(void **state) {
  static const parse_case_t cases[] = {
      {"minimum query", 512, -1, 0, 0, 0},
      {"largest query", 1024, -1, 0, 0, 0},
      {"one byte too long", 1025, -1, 0, -EBADMSG, DISCOVERY_DROP_OVERSIZED},
      {"jumbo", 9000, -1, 0, -EBADMSG, DISCOVERY_DROP_OVERSIZED},
      {"unpadded header only", 24, -1, 0, -EBADMSG, DISCOVERY_DROP_TRUNCATED},
      {"one byte short", 511, -1, 0, -EBADMSG, DISCOVERY_DROP_TRUNCATED},
      {"three bytes", 3, -1, 0, -EBADMSG, DISCOVERY_DROP_TRUNCATED},
      {"empty", 0, -1, 0, -EBADMSG, DISCOVERY_DROP_TRUNCATED},
      {"bad magic", 512, 0, 'X', -EBADMSG, DISCOVERY_DROP_GARBAGE},
      {"bad magic, short", 100, 3, 'X', -EBADMSG, DISCOVERY_DROP_GARBAGE},
      {"version 2", 512, 4, 2, -EBADMSG, DISCOVERY_DROP_VERSION},
      {"version 0", 512, 4, 0, -EBADMSG, DISCOVERY_DROP_VERSION},
      {"an answer", 512, 5, DISCOVERY_TYPE_ANSWER, -EBADMSG, DISCOVERY_DROP_TYPE},
      {"unknown type", 512, 5, 77, -EBADMSG, DISCOVERY_DROP_TYPE},
      {"reserved byte set", 512, 7, 1, -EBADMSG, DISCOVERY_DROP_PADDING},
      {"padding not zero", 512, 511, 0xff, -EBADMSG, DISCOVERY_DROP_PADDING},
      {"nonce may be anything", 512, 8, 0xff, 0, 0},
  };
  static uint8_t buf[9000];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const parse_case_t *c = &cases[i];
    memset(buf, 0, sizeof buf);
    query(buf, DISCOVERY_QUERY_MAX); /* the first 1024 bytes of a valid query */
    if (c->poke_at >= 0) buf[c->poke_at] = c->poke;
    discovery_query_t q;
    discovery_drop_t why = DISCOVERY_DROP_COUNT;
    int r = discovery_parse_query(buf, c->len, &q, &why);
    if (r != c->want || (r < 0 && why != c->why))
      fail_msg("%s: got %d (%s), want %d (%s)", c->name, r, discovery_drop_name(why), c->want,
               discovery_drop_name(c->why));
    if (r == 0) {
      assert_int_equal(q.len, c->len);
      if (c->poke_at != 8) assert_memory_equal(q.nonce, NONCE, DISCOVERY_NONCE_LEN);
    }
  }
}

static void test_build_query_clamps(void **state) {
  uint8_t buf[DISCOVERY_QUERY_MAX];
  assert_int_equal(query(buf, 10), DISCOVERY_QUERY_MIN);
  assert_int_equal(query(buf, 5000), DISCOVERY_QUERY_MAX);
  assert_int_equal(query(buf, 700), 700);
  discovery_query_t q;
  assert_int_equal(discovery_parse_query(buf, 700, &q, NULL), 0);
}

static void test_answer_round_trip_and_size_rule(void **state) {
  uint8_t qb[DISCOVERY_QUERY_MIN];
  discovery_query_t q;
  assert_int_equal(discovery_parse_query(qb, query(qb, 0), &q, NULL), 0);
  uint8_t ab[DISCOVERY_QUERY_MAX];
  int n = discovery_build_answer(&q, "example.com", "https://connect.example.com", "0.1.0", ab,
                                 sizeof ab);
  assert_true(n > 0);
  assert_true((size_t)n <= q.len);
  discovery_answer_t a;
  assert_int_equal(discovery_parse_answer(ab, (size_t)n, NONCE, &a), 0);
  assert_string_equal(a.domain, "example.com");
  assert_string_equal(a.url, "https://connect.example.com");
  assert_string_equal(a.version, "0.1.0");

  /* Another nonce: not our answer. */
  uint8_t other[DISCOVERY_NONCE_LEN] = {0};
  assert_int_equal(discovery_parse_answer(ab, (size_t)n, other, &a), -ESTALE);
  /* Cut anywhere inside a field: refused. Cut between two fields, it is a
   * shorter answer, valid once the URL is in it. */
  int url_end = DISCOVERY_HEADER_LEN + 3 + 11 + 3 + 27;
  for (int cut = DISCOVERY_HEADER_LEN + 1; cut < n; cut++)
    if ((discovery_parse_answer(ab, (size_t)cut, NONCE, &a) == 0) != (cut == url_end))
      fail_msg("an answer cut at %d of %d bytes: wrong verdict", cut, n);

  /* An answer longer than the query is never built: all or nothing. */
  char url[600];
  memset(url, 'u', sizeof url - 1);
  url[sizeof url - 1] = '\0';
  assert_int_equal(discovery_build_answer(&q, "example.com", url, "0.1.0", ab, sizeof ab),
                   -EMSGSIZE);
  q.len = DISCOVERY_QUERY_MAX; /* a client that pads more gets it */
  n = discovery_build_answer(&q, "example.com", url, "0.1.0", ab, sizeof ab);
  assert_true(n > 0 && (size_t)n <= q.len);
  /* The buffer bounds it too. */
  assert_int_equal(discovery_build_answer(&q, "example.com", url, "0.1.0", ab, 100), -EMSGSIZE);
}

static void test_answer_unknown_fields_skipped(void **state) {
  uint8_t b[64] = "ATRD";
  b[4] = DISCOVERY_VERSION;
  b[5] = DISCOVERY_TYPE_ANSWER;
  memcpy(b + 8, NONCE, DISCOVERY_NONCE_LEN);
  size_t p = DISCOVERY_HEADER_LEN;
  b[p++] = 99, b[p++] = 0, b[p++] = 2, b[p++] = 'x', b[p++] = 'y'; /* a later version's field */
  b[p++] = DISCOVERY_FIELD_URL, b[p++] = 0, b[p++] = 3, b[p++] = 'h', b[p++] = 't', b[p++] = 'p';
  discovery_answer_t a;
  assert_int_equal(discovery_parse_answer(b, p, NONCE, &a), 0);
  assert_string_equal(a.url, "htp");
  /* No URL at all: useless, refused. */
  assert_int_equal(discovery_parse_answer(b, DISCOVERY_HEADER_LEN + 5, NONCE, &a), -EBADMSG);
  /* A NUL inside a field. */
  b[p - 2] = 0;
  assert_int_equal(discovery_parse_answer(b, p, NONCE, &a), -EBADMSG);
}

static void test_limiter_burst_and_refill(void **state) {
  discovery_limiter_t *l = discovery_limiter_new(64, 2, 5);
  assert_non_null(l);
  uint8_t a[4] = {10, 0, 0, 1}, b[4] = {10, 0, 0, 2};
  uint64_t t = 1000;
  for (int i = 0; i < 5; i++) assert_true(discovery_limiter_allow(l, a, 4, t));
  assert_false(discovery_limiter_allow(l, a, 4, t));
  assert_true(discovery_limiter_allow(l, b, 4, t)); /* its own bucket */
  assert_false(discovery_limiter_allow(l, a, 4, t + 499)); /* 0.998 tokens */
  assert_true(discovery_limiter_allow(l, a, 4, t + 500));
  assert_false(discovery_limiter_allow(l, a, 4, t + 500));
  /* A long pause refills to the burst, not beyond. */
  int n = 0;
  for (int i = 0; i < 20; i++) n += discovery_limiter_allow(l, a, 4, t + 3600000);
  assert_int_equal(n, 5);
  /* Clock going backwards refills nothing. */
  assert_false(discovery_limiter_allow(l, a, 4, t));
  discovery_limiter_free(l);
  discovery_limiter_free(NULL);
  assert_null(discovery_limiter_new(0, 1, 1));
  assert_null(discovery_limiter_new(64, 0, 1));
  assert_null(discovery_limiter_new(64, 1, 0));
}

static void test_limiter_table_is_bounded(void **state) {
  discovery_limiter_t *l = discovery_limiter_new(64, 1, 1);
  assert_non_null(l);
  /* 100 000 spoofed sources: the table never grows, and each new one gets a
   * bucket (the least recently seen entry is reused). */
  for (uint32_t i = 0; i < 100000; i++) {
    uint8_t k[16] = {0};
    memcpy(k, &i, sizeof i);
    assert_true(discovery_limiter_allow(l, k, 16, 1000 + i));
    assert_true(discovery_limiter_used(l) <= 64);
  }
  assert_int_equal(discovery_limiter_used(l), 64);
  uint8_t big[17] = {0};
  assert_false(discovery_limiter_allow(l, big, 17, 1));
  assert_false(discovery_limiter_allow(l, big, 0, 1));
  discovery_limiter_free(l);
}

static void test_drop_names(void **state) {
  assert_string_equal(discovery_drop_name(DISCOVERY_DROP_RATE), "rate_limited");
  assert_string_equal(discovery_drop_name(DISCOVERY_DROP_COUNT), "unknown");
  for (int i = 0; i < DISCOVERY_DROP_COUNT; i++)
    assert_string_not_equal(discovery_drop_name((discovery_drop_t)i), "unknown");
}

static void test_kerberos_account_rule(void **state) {
  char c[2][KERBEROS_NAME_MAX];
  assert_int_equal(kerberos_account_candidates("alice@ATRIUM.TEST", c, 2), 2);
  assert_string_equal(c[0], "alice@ATRIUM.TEST");
  assert_string_equal(c[1], "ATRIUM\\alice");
  assert_int_equal(kerberos_account_candidates("bob@CORP", c, 2), 2);
  assert_string_equal(c[1], "CORP\\bob");
  assert_int_equal(kerberos_account_candidates("alice@ATRIUM.TEST", c, 1), 1);
  /* Not user principals. */
  assert_int_equal(kerberos_account_candidates("HTTP/host.example.com@ATRIUM.TEST", c, 2), 0);
  assert_int_equal(kerberos_account_candidates("alice", c, 2), 0);
  assert_int_equal(kerberos_account_candidates("@ATRIUM.TEST", c, 2), 0);
  assert_int_equal(kerberos_account_candidates("alice@", c, 2), 0);
  assert_int_equal(kerberos_account_candidates(NULL, c, 2), 0);

  assert_true(kerberos_account_matches("alice@atrium.test", "alice@ATRIUM.TEST"));
  assert_true(kerberos_account_matches("atrium\\ALICE", "alice@ATRIUM.TEST"));
  assert_false(kerberos_account_matches("OTHER\\alice", "alice@ATRIUM.TEST"));
  assert_false(kerberos_account_matches("alice", "alice@ATRIUM.TEST"));
  assert_false(kerberos_account_matches("alice@atrium.test", "alice/admin@ATRIUM.TEST"));
  assert_false(kerberos_account_matches(NULL, "alice@ATRIUM.TEST"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_table),
      cmocka_unit_test(test_build_query_clamps),
      cmocka_unit_test(test_answer_round_trip_and_size_rule),
      cmocka_unit_test(test_answer_unknown_fields_skipped),
      cmocka_unit_test(test_limiter_burst_and_refill),
      cmocka_unit_test(test_limiter_table_is_bounded),
      cmocka_unit_test(test_drop_names),
      cmocka_unit_test(test_kerberos_account_rule),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
