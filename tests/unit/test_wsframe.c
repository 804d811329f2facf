/* Unit tests of the WebSocket frame parser (src/http/wsframe.c): frames as
 * a client sends them (masked), whole, fragmented, fed a byte at a time;
 * and every rule of RFC 6455 a client can break, each with its close code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http/wsframe.h"

/* A client frame: b0 as given (FIN, RSV, opcode), masked with a fixed key. */
static size_t client_frame(uint8_t *out, uint8_t b0, const void *payload, size_t len) {
  static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
  size_t n = 0;
  out[n++] = b0;
  if (len < 126) {
    out[n++] = (uint8_t)(0x80 | len);
  } else if (len < 65536) {
    out[n++] = 0x80 | 126;
    out[n++] = (uint8_t)(len >> 8);
    out[n++] = (uint8_t)len;
  } else {
    out[n++] = 0x80 | 127;
    for (int i = 0; i < 8; i++) out[n++] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
  }
  memcpy(out + n, key, 4);
  n += 4;
  for (size_t i = 0; i < len; i++) out[n + i] = ((const uint8_t *)payload)[i] ^ key[i & 3];
  return n + len;
}

typedef struct got {
  int count;
  uint8_t opcode[8];
  size_t len[8];
  char data[8][70000];
} got_t;

static int collect(void *ctx, uint8_t opcode, const uint8_t *data, size_t len) {
  got_t *g = ctx;
  if (g->count < 8) {
    g->opcode[g->count] = opcode;
    g->len[g->count] = len;
    memcpy(g->data[g->count], data, len < 70000 ? len : 70000);
  }
  g->count++;
  return 0;
}

static got_t *got_new(void) { return calloc(1, sizeof(got_t)); }

/* Feeds buf whole, or in pieces of `step` bytes. */
static int feed(wsf_parser_t *p, uint8_t *buf, size_t n, size_t step, got_t *g) {
  if (!step) return wsf_feed(p, buf, n, collect, g);
  for (size_t at = 0; at < n; at += step) {
    int r = wsf_feed(p, buf + at, n - at < step ? n - at : step, collect, g);
    if (r) return r;
  }
  return 0;
}

static void test_whole_and_split_messages(void **state) {
  (void)state;
  const size_t steps[] = {0, 1, 3, 7};
  const size_t sizes[] = {0, 5, 125, 126, 300, 65535, 65536};
  uint8_t *buf = malloc(70000);
  char *text = malloc(66000);
  for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
    for (size_t k = 0; k < sizeof steps / sizeof *steps; k++) {
      memset(text, 'a' + (int)s, sizes[s]);
      size_t n = client_frame(buf, 0x81, text, sizes[s]);
      wsf_parser_t p;
      wsf_init(&p, 65536);
      got_t *g = got_new();
      assert_int_equal(feed(&p, buf, n, steps[k], g), 0);
      assert_int_equal(g->count, 1);
      assert_int_equal(g->opcode[0], WSF_TEXT);
      assert_int_equal(g->len[0], sizes[s]);
      assert_memory_equal(g->data[0], text, sizes[s] < 70000 ? sizes[s] : 70000);
      assert_null(p.msg); /* nothing kept after the message */
      wsf_clear(&p);
      free(g);
    }
  free(buf);
  free(text);
}

static void test_fragments_and_interleaved_control(void **state) {
  (void)state;
  uint8_t buf[200];
  size_t n = 0;
  n += client_frame(buf + n, 0x01, "Hel", 3);        /* text, not final */
  n += client_frame(buf + n, 0x89, "p1", 2);         /* a ping in between */
  n += client_frame(buf + n, 0x00, "\xc3", 1);       /* continuation: half of ä */
  n += client_frame(buf + n, 0x80, "\xa4!", 2);      /* final: the other half */
  n += client_frame(buf + n, 0x82, "\x00\x01", 2);   /* binary */
  n += client_frame(buf + n, 0x88, "\x03\xe8ok", 4); /* close 1000 "ok" */
  for (size_t step = 0; step <= 2; step++) {
    wsf_parser_t p;
    wsf_init(&p, 1000);
    got_t *g = got_new();
    uint8_t copy[200];
    memcpy(copy, buf, n);
    assert_int_equal(feed(&p, copy, n, step, g), 0);
    assert_int_equal(g->count, 4);
    assert_int_equal(g->opcode[0], WSF_PING);
    assert_memory_equal(g->data[0], "p1", 2);
    assert_int_equal(g->opcode[1], WSF_TEXT);
    assert_int_equal(g->len[1], 6);
    assert_memory_equal(g->data[1], "Hel\xc3\xa4!", 6);
    assert_int_equal(g->opcode[2], WSF_BINARY);
    assert_int_equal(g->opcode[3], WSF_CLOSE);
    assert_int_equal(g->len[3], 4);
    wsf_clear(&p);
    free(g);
  }
}

typedef struct bad {
  const char *what;
  uint8_t b0;
  const char *payload;
  size_t len;
  int code;
} bad_t;

static void test_broken_rules(void **state) {
  (void)state;
  static const bad_t bad[] = {
      {"a reserved bit", 0xC1, "x", 1, WSF_CLOSE_PROTOCOL},
      {"an unknown data opcode", 0x83, "x", 1, WSF_CLOSE_PROTOCOL},
      {"an unknown control opcode", 0x8B, "", 0, WSF_CLOSE_PROTOCOL},
      {"a continuation with nothing to continue", 0x80, "x", 1, WSF_CLOSE_PROTOCOL},
      {"a fragmented ping", 0x09, "", 0, WSF_CLOSE_PROTOCOL},
      {"a close frame of one byte", 0x88, "\x03", 1, WSF_CLOSE_PROTOCOL},
      {"close code 999", 0x88, "\x03\xe7", 2, WSF_CLOSE_PROTOCOL},
      {"close code 1005 (never sent)", 0x88, "\x03\xed", 2, WSF_CLOSE_PROTOCOL},
      {"a close reason that is not UTF-8", 0x88, "\x03\xe8\xff", 3, WSF_CLOSE_PROTOCOL},
      {"an overlong form", 0x81, "\xc0\x80", 2, WSF_CLOSE_INVALID_DATA},
      {"a surrogate", 0x81, "\xed\xa0\x80", 3, WSF_CLOSE_INVALID_DATA},
      {"above U+10FFFF", 0x81, "\xf4\x90\x80\x80", 4, WSF_CLOSE_INVALID_DATA},
      {"a text cut in the middle of a character", 0x81, "ab\xe2\x82", 4,
       WSF_CLOSE_INVALID_DATA},
      {"over the message size", 0x82, "0123456789abcdef0", 17, WSF_CLOSE_TOO_BIG},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    uint8_t buf[64];
    size_t n = client_frame(buf, bad[i].b0, bad[i].payload, bad[i].len);
    wsf_parser_t p;
    wsf_init(&p, 16);
    got_t *g = got_new();
    int r = feed(&p, buf, n, 0, g);
    if (r != bad[i].code) fail_msg("%s: %d, not %d", bad[i].what, r, bad[i].code);
    wsf_clear(&p);
    free(g);
  }
}

static void test_framing_rules(void **state) {
  (void)state;
  wsf_parser_t p;
  got_t *g = got_new();
  /* Not masked. */
  uint8_t unmasked[] = {0x81, 0x01, 'x'};
  wsf_init(&p, 100);
  assert_int_equal(wsf_feed(&p, unmasked, sizeof unmasked, collect, g), WSF_CLOSE_PROTOCOL);
  /* A length of 5 in the 16-bit form: not the shortest. */
  uint8_t longform[] = {0x81, 0x80 | 126, 0x00, 0x05, 1, 2, 3, 4};
  wsf_init(&p, 100);
  assert_int_equal(wsf_feed(&p, longform, sizeof longform, collect, g), WSF_CLOSE_PROTOCOL);
  /* A ping of 126 bytes. */
  uint8_t big_ping[140];
  char pad[126] = {0};
  size_t n = client_frame(big_ping, 0x89, pad, 126);
  wsf_init(&p, 1000);
  assert_int_equal(wsf_feed(&p, big_ping, n, collect, g), WSF_CLOSE_PROTOCOL);
  /* A new text frame inside a fragmented message. */
  uint8_t two[32];
  n = client_frame(two, 0x01, "a", 1);
  n += client_frame(two + n, 0x81, "b", 1);
  wsf_init(&p, 1000);
  assert_int_equal(wsf_feed(&p, two, n, collect, g), WSF_CLOSE_PROTOCOL);
  wsf_clear(&p);
  /* The size limit counts the fragments together. */
  uint8_t frags[64];
  n = client_frame(frags, 0x02, "0123456789", 10);
  n += client_frame(frags + n, 0x80, "0123456789", 10);
  wsf_init(&p, 16);
  assert_int_equal(wsf_feed(&p, frags, n, collect, g), WSF_CLOSE_TOO_BIG);
  wsf_clear(&p);
  free(g);
}

static void test_server_headers(void **state) {
  (void)state;
  uint8_t h[10];
  assert_int_equal(wsf_header(h, WSF_TEXT, 0), 2);
  assert_int_equal(h[0], 0x81);
  assert_int_equal(h[1], 0);
  assert_int_equal(wsf_header(h, WSF_BINARY, 125), 2);
  assert_int_equal(h[1], 125);
  assert_int_equal(wsf_header(h, WSF_TEXT, 126), 4);
  assert_int_equal(h[1], 126);
  assert_int_equal(h[2] << 8 | h[3], 126);
  assert_int_equal(wsf_header(h, WSF_TEXT, 65535), 4);
  assert_int_equal(wsf_header(h, WSF_CLOSE, 65536), 10);
  assert_int_equal(h[0], 0x88);
  assert_int_equal(h[1], 127);
  assert_int_equal(h[7], 1);
  assert_true(wsf_utf8_valid((const uint8_t *)"Grüße \xf0\x9f\x91\x8b", 13));
  assert_false(wsf_utf8_valid((const uint8_t *)"\xf8\x88\x80\x80\x80", 5));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_whole_and_split_messages),
      cmocka_unit_test(test_fragments_and_interleaved_control),
      cmocka_unit_test(test_broken_rules),
      cmocka_unit_test(test_framing_rules),
      cmocka_unit_test(test_server_headers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
